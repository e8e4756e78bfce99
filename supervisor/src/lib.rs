//! forge-supervisor: runs the services of a compose.toml over time.
//!
//! The pure parts, each plain code with plain unit tests:
//! - [`compose`]: parsing and checking compose.toml, with errors that name file, line, column
//!   and field;
//! - [`duration`]: Compose's durations (`1m30s`, `500ms`);
//! - [`order`]: dependency order (start) and its reverse (stop);
//! - [`gate`]: whether a service may start yet, given its dependencies' phases;
//! - [`backoff`]: restart policy and the delay before each restart;
//! - [`health`]: the health-check state machine.
//!
//! And the supervisor itself: [`up`] (one tokio task per service, behind [`up::engine::Engine`]), [`launcher`] (the threads
//! that start containers), [`output`] (multiplexed logs), [`project`] (name, lock).

pub mod backoff;
pub mod compose;
pub mod duration;
pub mod gate;
pub mod health;
pub mod launcher;
pub mod order;
pub mod output;
pub mod project;
pub mod up;

pub use project::{lock_project, project_name};
