//! The monitor of a detached container (`forge run -d`): a re-executed copy of the caller's
//! binary in a session of its own that starts the container with its output going to the log,
//! reports how the start went, then waits for the container and records its exit.
//!
//! The caller ([`Runtime::run_detached`]) and the monitor ([`main`], dispatched from
//! [`crate::init::dispatch`]) talk over a set-up socket of the kind init uses
//! ([`crate::channel`]), passed as fd 3:
//! 1. caller → monitor: [`MonitorRequest`] (queued before the monitor starts)
//! 2. monitor → caller: [`MonitorReport`], `Started` or `Failed`; then the monitor closes the
//!    socket, so the caller returns while the container runs on. A close without a report
//!    means the monitor died before it could start the container.
//!
//! The monitor must not die with the caller's terminal: it starts a new session, and keeps
//! ignoring SIGPIPE as Rust programs do by default.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::channel::{self, Channel, EXIT_FORGE_ERROR};
use crate::init::INIT_FD;
use crate::launch::{LaunchError, LaunchIo};
use crate::network::NetworkFor;
use crate::{Container, Roots, Runtime, RuntimeError};

/// The argument that makes a Forge binary run as a detached container's monitor.
pub const MONITOR_ARG: &str = "__forge_monitor";

/// Which container the monitor starts, and under which roots.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorRequest {
    pub data_root: PathBuf,
    pub run_root: PathBuf,
    pub id: String,
}

/// How the start went, from the monitor to its caller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MonitorReport {
    /// The container runs; the monitor waits for it.
    Started { id: String },
    /// The start failed with the exit code `forge run` ends with, and why.
    Failed { code: i32, message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("starting the container monitor: {0}")]
    Spawn(#[source] io::Error),
    #[error("container {name}: the monitor exited before starting it")]
    Vanished { name: String },
    /// The monitor could not start the container (it has dealt with the container already).
    #[error("{message}")]
    Start { code: i32, message: String },
}

impl MonitorError {
    /// The exit code for `forge run -d`: the container's own for a command that could not be
    /// executed, 125 for any other failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Start { code, .. } => *code,
            _ => EXIT_FORGE_ERROR,
        }
    }
}

impl Runtime {
    /// Starts the created container `c` under a detached monitor (see the module docs) and
    /// returns its id once it runs. When no monitor could start it, `c` is removed.
    pub fn run_detached(&self, c: &Container) -> Result<String, MonitorError> {
        let result = self.spawn_monitor(c);
        if matches!(
            result,
            Err(MonitorError::Spawn(_) | MonitorError::Vanished { .. })
        ) {
            self.discard(c);
        }
        result
    }

    /// Starts the stopped container `c` again under a detached monitor (`forge start`) and
    /// returns its id once it runs; unlike [`Runtime::run_detached`] it never removes `c`.
    pub fn start_detached(&self, c: &Container) -> Result<String, MonitorError> {
        self.spawn_monitor(c)
    }

    fn spawn_monitor(&self, c: &Container) -> Result<String, MonitorError> {
        let (channel, theirs) = channel::pair().map_err(MonitorError::Spawn)?;
        let request = MonitorRequest {
            data_root: self.roots().data.clone(),
            run_root: self.roots().run.clone(),
            id: c.id().to_string(),
        };
        channel
            .send_as(&request, None)
            .map_err(MonitorError::Spawn)?;
        let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
        let mut cmd = Command::new(exe);
        // The id is there for `ps` only: the monitor goes by the request on the socket.
        cmd.arg(MONITOR_ARG)
            .arg(c.id())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: setsid is async-signal-safe; the monitor must not die with our terminal session.
        unsafe {
            cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(io::Error::from));
        }
        crate::launch::give_channel(&mut cmd, theirs);
        let child = cmd.spawn().map_err(MonitorError::Spawn)?;
        // Closes our copy of the monitor's end, so that its death shows as EOF.
        drop(cmd);
        // The monitor lives on; it is reparented to init when the caller exits: don't wait.
        drop(child);
        match channel.recv_as::<MonitorReport>() {
            Ok(Some((MonitorReport::Started { id }, _))) => Ok(id),
            Ok(Some((MonitorReport::Failed { code, message }, _))) => {
                Err(MonitorError::Start { code, message })
            }
            Ok(None) | Err(_) => Err(MonitorError::Vanished {
                name: c.name().to_string(),
            }),
        }
    }

    /// Deals with a container whose start failed with `err`, and returns the exit code. A
    /// command that could not be executed leaves an exited container behind, as Docker does;
    /// any other failure removes what was created.
    pub fn settle_failed_start(&self, c: &Container, err: &RuntimeError) -> i32 {
        match err {
            RuntimeError::Launch {
                source: LaunchError::Exec { code, .. },
                ..
            } => *code,
            _ => {
                self.discard(c);
                EXIT_FORGE_ERROR
            }
        }
    }
}

/// Entry point of the monitor process (`argv[1] == MONITOR_ARG`): exits with the container's
/// exit code, or the failed start's. Its runtime plugs containers in through `network_for`.
pub fn main(network_for: NetworkFor) -> ! {
    // SAFETY: the caller hands us fd 3 as our end of the set-up socket, and nothing has opened
    // an fd since exec, so it is still that socket and ours alone.
    let channel = Channel::from_fd(unsafe { OwnedFd::from_raw_fd(INIT_FD) });
    // Not for the container's processes: the caller must see EOF when the monitor is gone.
    let _ = nix::fcntl::fcntl(
        channel.raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let request = match channel.recv_as::<MonitorRequest>() {
        Ok(Some((request, _))) => request,
        _ => std::process::exit(EXIT_FORGE_ERROR),
    };
    std::process::exit(monitor(channel, &request, network_for))
}

fn monitor(channel: Channel, request: &MonitorRequest, network_for: NetworkFor) -> i32 {
    let say = |report: MonitorReport| {
        let _ = channel.send_as(&report, None);
    };
    let roots = Roots::new(
        Some(request.data_root.clone()),
        Some(request.run_root.clone()),
    );
    let runtime = Runtime::new(roots.clone(), network_for(&roots));
    let mut container = match runtime.get(&request.id) {
        Ok(c) => c,
        Err(e) => {
            say(MonitorReport::Failed {
                code: EXIT_FORGE_ERROR,
                message: e.to_string(),
            });
            return EXIT_FORGE_ERROR;
        }
    };
    let log_path = runtime.log_path(&container);
    let (log, io) = match log_io(&log_path) {
        Ok(opened) => opened,
        Err(e) => {
            say(MonitorReport::Failed {
                code: EXIT_FORGE_ERROR,
                message: format!("opening log {}: {e}", log_path.display()),
            });
            runtime.discard(&container);
            return EXIT_FORGE_ERROR;
        }
    };
    let started = match runtime.start(&mut container, io, true) {
        Ok(started) => started,
        Err(err) => {
            let code = runtime.settle_failed_start(&container, &err);
            say(MonitorReport::Failed {
                code,
                message: err.to_string(),
            });
            return code;
        }
    };
    say(MonitorReport::Started {
        id: container.id().to_string(),
    });
    // Let go of the socket so that `forge run -d` returns now.
    drop(channel);
    if let Some(master) = &started.pty {
        copy_to_log(master, &log);
    }
    runtime.wait(&mut container, &started).code
}

/// The log file, and stdio for a detached container that writes both streams to it.
fn log_io(path: &Path) -> io::Result<(std::fs::File, LaunchIo)> {
    let log = OpenOptions::new().create(true).append(true).open(path)?;
    let io = LaunchIo {
        stdin: Stdio::null(),
        stdout: log.try_clone()?.into(),
        stderr: log.try_clone()?.into(),
    };
    Ok((log, io))
}

/// With `-dt` the container writes to a pty; its output goes to the log until it hangs up.
fn copy_to_log(master: &OwnedFd, mut log: &std::fs::File) {
    let mut buf = [0u8; 8192];
    loop {
        match nix::unistd::read(master.as_raw_fd(), &mut buf) {
            Ok(0) | Err(nix::errno::Errno::EIO) => return,
            Ok(n) => {
                if log.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_cross_the_channel() {
        let (a, b) = channel::pair().unwrap();
        let b = Channel::from_fd(b);
        let failed = MonitorReport::Failed {
            code: 127,
            message: "not found".into(),
        };
        a.send_as(&failed, None).unwrap();
        drop(a);
        match b.recv_as::<MonitorReport>().unwrap() {
            Some((MonitorReport::Failed { code, message }, None)) => {
                assert_eq!((code, message.as_str()), (127, "not found"))
            }
            other => panic!("{other:?}"),
        }
        assert!(b.recv_as::<MonitorReport>().unwrap().is_none());
    }

    #[test]
    fn only_a_refused_command_keeps_its_own_exit_code() {
        let start = |code| MonitorError::Start {
            code,
            message: String::new(),
        };
        assert_eq!(start(127).exit_code(), 127);
        let vanished = MonitorError::Vanished { name: "x".into() };
        assert_eq!(vanished.exit_code(), EXIT_FORGE_ERROR);
    }
}
