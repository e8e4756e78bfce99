//! forge-runtime: one container's life on one host.
//!
//! The library API ([`Runtime`]) creates, starts, waits for, signals, lists and removes containers;
//! the `forge` CLI and the supervisor both sit on it. Networking is a seam its caller hands it
//! ([`network::Network`]): the runtime does not know forge-netd. Container set-up runs in a
//! freshly exec'ed, single-threaded copy of the calling binary ([`dispatch`]), because a forked
//! child of a multi-threaded process may do nothing but async-signal-safe work before `exec`.
//!
//! The API is what this file exports; the modules are the runtime's own.

mod caps;
// Public only for the kernel tests in runtime/tests/ (cgroup trees, device filter, sealed
// copies); not an API.
#[doc(hidden)]
pub mod cgroup;
mod channel;
mod container;
mod cp;
mod disk;
mod env_file;
mod init;
mod launch;
mod limits;
mod monitor;
mod mounts;
mod names;
/// The network seam: what a caller implements to plug containers into networks.
pub mod network;
mod paths;
#[doc(hidden)]
pub mod sealed_exe;
mod seccomp;
mod security_opt;
mod signal;
mod spec;
mod status;
mod sys;
pub mod template;
mod tmpfs;
mod tty;
mod user;
mod userns;
mod volume;
mod wait_async;

// The runtime, its containers, and how they end.
pub use channel::EXIT_FORGE_ERROR;
pub use container::{
    Container, ContainerConfig, CopyOptions, CopyPath, CreateOptions, NetSpec, Runtime,
    RuntimeError, VolumeInfo, OOM_REASON,
};
pub use cp::CopyError;
pub use launch::{Joined, LaunchError, LaunchIo, Started};
pub use names::{validate as check_container_name, NameError};
pub use paths::Roots;
pub use signal::{parse_signal, BadSignal, Signaller};
pub use status::{now_secs, process_alive, rfc3339_utc, ExitInfo, State, Status};

// What create options are made of, parsed from the user's words.
pub use caps::{check_name as check_capability, Privileges, UnknownCapability};
pub use cgroup::{check_manager as check_cgroup_manager, CgroupError, Manager as CgroupManager};
pub use env_file::{read as read_env_file, EnvFileError};
pub use limits::{parse_size, LimitArgs, LimitError, Limits};
pub use mounts::{
    check_distinct as check_mount_targets, check_target as check_mount_target, check_volume_name,
    host_path as bind_source, is_size as is_tmpfs_size, parse_all as parse_mounts, parse_mount,
    parse_volume, Mount, MountError, MountType, Propagation,
};
pub use security_opt::{
    apply as apply_security_opts, parse_and_apply as parse_security_opts, SecurityOpt,
    SecurityOptError,
};
pub use tmpfs::{parse as parse_tmpfs, TmpfsError};
pub use userns::{Mode as UsernsMode, UsernsError};
pub use volume::{Volume, VolumeError, VolumeKind, ANONYMOUS_LABEL};

// The process roles (init, join, monitor) a Forge binary becomes, and the terminal.
pub use init::dispatch;
pub use tty::proxy as proxy_tty;
