//! The seam between the supervisor's core (service loops, health checks, stopping) and the
//! containers it runs: [`Engine`]. The runtime implements it in production
//! ([`super::runtime_engine::RuntimeEngine`]); unit tests drive the core with a scripted fake
//! on tokio's paused clock.

use std::future::Future;
use std::time::Duration;

use forge_runtime::ExitInfo;
use nix::sys::signal::Signal;

use crate::compose::Compose;
use crate::health::Health;

/// Why a service's container did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// It could not be created: retrying cannot help.
    Create(String),
    /// It exists but did not start: a restart may succeed.
    Start(String),
    /// The user removed it (`forge rm -f`) while it was to start: the next start creates it
    /// again from the file, at once.
    Removed,
}

/// One container per service, started, waited for and signalled by the service's name.
pub trait Engine: Send + Sync + 'static {
    /// Creates the service's container on its first start and starts it, recording `restarts`
    /// for `forge ps`; returns PID 1's host pid.
    fn start(
        &self,
        service: &str,
        restarts: u32,
    ) -> impl Future<Output = Result<i32, StartError>> + Send;

    /// Waits for the running container to exit.
    fn exited(&self, service: &str) -> impl Future<Output = ExitInfo> + Send;

    /// Records the exit: releases the container's cgroups and network, drains its output, and
    /// returns the exit as recorded (an OOM kill named as such).
    fn record_exit(&self, service: &str, exit: ExitInfo) -> impl Future<Output = ExitInfo> + Send;

    /// Whether the container's last run was ended by the user (`forge stop`): its restart
    /// policy must not bring it back (Docker's rule).
    fn stopped_by_user(&self, service: &str) -> bool;

    /// Whether the service's container is running now.
    fn running(&self, service: &str) -> bool;

    /// Sends `signal` to the running container's PID 1; nothing when none runs.
    fn signal(&self, service: &str, signal: Signal);

    /// SIGKILL to the running container's PID 1 and everything in its cgroups.
    fn kill(&self, service: &str);

    /// The signal the image asks to be stopped with, else SIGTERM.
    fn image_stop_signal(&self, service: &str) -> Signal;

    /// Runs the health test inside the running container: whether it succeeded within `timeout`.
    fn probe(
        &self,
        service: &str,
        test: &[String],
        timeout: Duration,
    ) -> impl Future<Output = bool> + Send;

    /// Records the container's health for `forge ps`.
    fn record_health(&self, service: &str, health: Health);

    /// The name of the service's container, for what the user is told.
    fn container_name(&self, service: &str) -> String;

    /// Makes ready what a changed model needs before its services start: `news` holds the
    /// services to start and the networks and volumes the change defines (the rest exists
    /// already); their images, networks, volumes and files are made. `added` are the services
    /// new to the project, whose container names must be free (or held by what an earlier run
    /// of theirs left).
    fn prepare(
        &self,
        news: &Compose,
        added: &[String],
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Takes the service's definition from `compose`: a new service, or a changed one whose
    /// old container [`Engine::remove`] removed.
    fn define(&self, compose: &Compose, service: &str);

    /// Removes the service's container, which no longer runs, and forgets it.
    fn remove(&self, service: &str) -> impl Future<Output = ()> + Send;
}
