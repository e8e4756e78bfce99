//! Starting a created container, as one transaction. In order: its cgroups, its PID 1 (set up,
//! waiting for `Go`), PID 1 placed in the cgroups, its networks; then `Go`. A failure on the way
//! undoes what was made — PID 1 killed and reaped, the cgroups removed, the networks detached —
//! and an undo that fails too is reported with the failure. From `Go` on, what was made belongs
//! to the container: its exit releases it ([`Runtime::record_exit`]).

use std::fs;
use std::path::Path;

use super::{io_err, try_remove_cgroups, Container, ContainerConfig, Runtime, RuntimeError};
use crate::launch::{self, LaunchError, LaunchIo, Pending, Started};
use crate::network::{AttachRequest, Attachment};
use crate::spec::InitSpec;
use crate::status::{now_secs, ExitInfo, Status};

/// What a start has made so far, undone when dropped unless the start commits. PID 1 is not
/// here: its [`Pending`] is a guard of its own (dropping it kills and reaps PID 1), dropped
/// before this one is undone.
struct Made<'a> {
    runtime: &'a Runtime,
    config: &'a ContainerConfig,
    cgroups: bool,
    attached: bool,
}

impl Made<'_> {
    /// Undoes what was made; what could not be undone.
    fn undo(&mut self) -> Vec<String> {
        let mut failures = Vec::new();
        if std::mem::take(&mut self.cgroups) {
            failures.extend(try_remove_cgroups(self.config));
        }
        if std::mem::take(&mut self.attached) {
            failures.extend(self.runtime.try_release_network(self.config));
        }
        failures
    }

    /// The start failed with `error`: undoes what was made, and keeps both errors if that fails.
    fn fail(mut self, error: RuntimeError) -> RuntimeError {
        let cleanup = self.undo();
        if cleanup.is_empty() {
            error
        } else {
            RuntimeError::StartFailed {
                error: Box::new(error),
                cleanup,
            }
        }
    }

    /// PID 1 got `Go` (even if its command then could not be executed: that is an exit): what
    /// was made is the container's now, released when its exit is recorded.
    fn commit(mut self) {
        self.cgroups = false;
        self.attached = false;
    }
}

impl Drop for Made<'_> {
    /// A start that ends without [`Made::fail`] (a panic) still undoes; no one is left to tell.
    fn drop(&mut self) {
        for e in self.undo() {
            tracing::warn!("{e}");
        }
    }
}

/// A container set up and waiting for `Go`.
struct SetUp {
    pending: Pending,
    /// PID 1's start time, which tells it apart from a later process with its pid.
    pid_start: Option<u64>,
    /// Its attachment to its first network.
    first: Option<Attachment>,
}

impl Runtime {
    /// Starts a created container; the calling process becomes its parent and must [`Runtime::wait`]
    /// for it. With `die_with_parent`, the container is killed if the calling thread dies.
    /// On failure nothing of the start is left, except for a command that could not be executed:
    /// that is an exit, recorded as one.
    pub fn start(
        &self,
        c: &mut Container,
        io: LaunchIo,
        die_with_parent: bool,
    ) -> Result<Started, RuntimeError> {
        // Waits for a `forge cp` into the stopped root (see `copy.rs`) to end: the overlay
        // must never be mounted twice at once.
        let lock_path = self.roots.container_data(c.id()).join("rootfs.lock");
        let _rootfs_lock =
            crate::sys::lock_exclusive(&lock_path).map_err(io_err("locking", &lock_path))?;
        // Removed while we waited for the lock (`forge rm -f` holds it until its files go).
        if self.load(c.id()).is_none() {
            return Err(RuntimeError::NotFound(c.name().to_string()));
        }
        let spec = self.init_spec(c, die_with_parent)?;
        self.make_bind_sources(&c.config)?;
        // Started again: a `forge stop` before no longer holds back its restart policy.
        let stopped = self.stopped_marker(c);
        match fs::remove_file(&stopped) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_err("removing", &stopped)(e))
            }
            _ => {}
        }
        if let Some(userns) = &spec.userns {
            // Where PID 1 attaches the idmapped layers, in its own mount namespace only.
            for n in 0..spec.lower.len() {
                let dir = userns.layers_dir.join(n.to_string());
                fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
            }
        }
        let mut made = Made {
            runtime: self,
            config: &c.config,
            cgroups: false,
            attached: false,
        };
        let SetUp {
            pending,
            pid_start,
            first,
        } = match self.set_up(&mut made, c, &spec, io) {
            Ok(set_up) => set_up,
            Err(e) => return Err(made.fail(e)),
        };
        c.state.ip = first.as_ref().map(|a| a.ip);
        c.state.ports = first.map(|a| a.ports).unwrap_or_default();
        c.state.pid = Some(pending.pid);
        c.state.pid_start = pid_start;
        c.state.monitor_pid = Some(std::process::id() as i32);
        c.state.started_at = Some(now_secs());
        // Under systemd the cgroup goes with its last process: watch for OOM kills from now on.
        let paths = &c.config.cgroup;
        let oom = paths
            .systemd
            .is_some()
            .then(|| crate::cgroup::OomWatch::new(&paths.dirs[0].1))
            .flatten();
        let launch_err = |source| RuntimeError::Launch {
            name: c.config.name.clone(),
            source,
        };
        match pending.go() {
            Ok(mut started) => {
                made.commit();
                started.oom = oom;
                c.state.status = Status::Running;
                self.write_state(c.id(), &c.state)?;
                Ok(started)
            }
            Err(LaunchError::Exec { code, message }) => {
                made.commit();
                let error = launch_err(LaunchError::Exec {
                    code,
                    message: message.clone(),
                });
                self.record_exit(
                    c,
                    ExitInfo {
                        code,
                        signal: None,
                        reason: message,
                    },
                );
                Err(error)
            }
            // PID 1 is gone with `pending`.
            Err(e) => Err(made.fail(launch_err(e))),
        }
    }

    /// Everything before `Go`, each step recorded in `made`: PID 1 waiting, in its cgroups and
    /// on its networks. On failure PID 1 is killed (with the [`Pending`]) before `made` is
    /// undone.
    fn set_up(
        &self,
        made: &mut Made<'_>,
        c: &Container,
        spec: &InitSpec,
        io: LaunchIo,
    ) -> Result<SetUp, RuntimeError> {
        let name = c.name();
        let cgroup_err = |source| RuntimeError::Cgroup {
            name: name.to_string(),
            source,
        };
        let cgroup = c.config.cgroup.driver();
        let restrict_devices = !c.config.privileges.privileged;
        // Before creating: a failed create may leave some of the directories.
        made.cgroups = true;
        cgroup
            .create(&c.config.limits, restrict_devices)
            .map_err(cgroup_err)?;
        let pending = launch::launch(spec, io).map_err(|source| RuntimeError::Launch {
            name: name.to_string(),
            source,
        })?;
        tracing::debug!(pid = pending.pid, "container set up, waiting for go");
        // PID 1 joins its cgroups before it may execute anything of the user's ...
        cgroup
            .place(pending.pid, &c.config.limits, restrict_devices)
            .map_err(cgroup_err)?;
        let pid_start = crate::sys::running_since(pending.pid);
        // ... and is on its network before it runs, so the command finds eth0 ready.
        let first = self.attach_network(c, pending.pid, pid_start.unwrap_or_default())?;
        made.attached = true;
        Ok(SetUp {
            pending,
            pid_start,
            first,
        })
    }

    /// Plugs the set-up container (PID `pid`) into its networks; its attachment to the first
    /// one (address and published ports). On failure it is on none of them.
    fn attach_network(
        &self,
        c: &Container,
        pid: i32,
        pid_start: u64,
    ) -> Result<Option<Attachment>, RuntimeError> {
        let net = &c.config.net;
        if net.networks.is_empty() {
            return Ok(None);
        }
        let ns_path = format!("/proc/{pid}/ns/net");
        let netns = fs::File::open(&ns_path).map_err(io_err("opening", Path::new(&ns_path)))?;
        let mut names = vec![c.config.name.clone()];
        for name in std::iter::once(&c.config.hostname).chain(&net.aliases) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let request = AttachRequest {
            container_id: c.id(),
            names: &names,
            networks: &net.networks,
            ip: net.ip,
            ports: &net.ports,
            pid,
            pid_start,
            netns: std::os::fd::AsFd::as_fd(&netns),
            hosts_file: &self.roots.container_data(c.id()).join("hosts"),
        };
        self.network
            .attach(&request)
            .map_err(|source| RuntimeError::Network {
                name: c.name().to_string(),
                source,
            })
    }
}
