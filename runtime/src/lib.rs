//! forge-runtime: one container's life on one host.
//!
//! The library API ([`Runtime`]) creates, starts, waits for, signals, lists and removes containers;
//! the `forge` CLI and the supervisor both sit on it. Container set-up runs in a freshly exec'ed,
//! single-threaded copy of the calling binary ([`init::main`]), because a forked child of a
//! multi-threaded process may do nothing but async-signal-safe work before `exec`.

pub mod caps;
pub mod cgroup;
pub mod channel;
pub mod container;
pub mod init;
pub mod launch;
pub mod limits;
pub mod monitor;
pub mod names;
pub mod paths;
pub mod sealed_exe;
pub mod seccomp;
pub mod security_opt;
pub mod signal;
pub mod spec;
pub mod status;
pub mod sys;
pub mod tmpfs;
pub mod tty;
pub mod user;
pub mod userns;
mod wait_async;

pub use channel::EXIT_FORGE_ERROR;
pub use container::{Container, CreateOptions, NetSpec, Runtime, RuntimeError};
pub use launch::{LaunchIo, Started};
pub use paths::Roots;
pub use signal::Signaller;
pub use status::{ExitInfo, State, Status};
