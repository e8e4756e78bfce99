//! The caller's side of starting a container: spawn the init process, drive the set-up protocol
//! (see [`crate::channel`]), and hand back the container's PID 1 as a child of the caller. Also
//! the caller's side of `forge exec -t`: the same socket brings back the joined command's pty.
//!
//! Safe to call from a multi-threaded (tokio) process: the only work between fork and exec is a
//! `dup2`, and PID 1 is watched through a pidfd, never with `waitpid(-1)`.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::channel::{self, Channel, Message};
use crate::init::{INIT_ARG, INIT_FD};
use crate::sealed_exe::{self, SealError};
use crate::spec::InitSpec;
use crate::status::ExitInfo;
use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("starting the init process {exe}: {source}")]
    Spawn {
        exe: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("talking to the container's init process: {0}")]
    Channel(#[source] io::Error),
    #[error("the container's init process ended without a word (exit status {0:?})")]
    Vanished(String),
    #[error("{message}")]
    Setup { message: String },
    #[error("setting up the user namespace: {0}")]
    Userns(#[source] crate::userns::UsernsError),
    /// The command could not be executed; the container ended with `code` (126 or 127).
    #[error("{message}")]
    Exec { code: i32, message: String },
}

/// Where the container's stdin, stdout and stderr go (ignored for those a tty replaces).
pub struct LaunchIo {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

/// A container whose PID 1 exists and is set up, waiting for [`Pending::go`].
pub struct Pending {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub pty: Option<OwnedFd>,
    channel: Channel,
    started: bool,
}

/// A running container's PID 1, a child of the calling process.
pub struct Started {
    pub pid: i32,
    /// Shared with the run's [`crate::Signaller`]s.
    pub(crate) pidfd: std::sync::Arc<OwnedFd>,
    pub pty: Option<OwnedFd>,
    /// Set where the cgroup may be gone before the exit is recorded (the systemd manager).
    pub oom: Option<crate::cgroup::OomWatch>,
}

/// The Forge binary to re-exec as init or join, as a container cannot write it (a read-only
/// overlay view or a sealed copy, see [`crate::sealed_exe`]) of `/proc/self/exe`, or of
/// `$FORGE_INIT_EXE` when a test harness says which binary plays Forge.
pub(crate) fn init_exe() -> Result<String, SealError> {
    let source = std::env::var("FORGE_INIT_EXE").unwrap_or_else(|_| "/proc/self/exe".to_string());
    Ok(sealed_exe::shared(&source)?.exec_path())
}

/// Makes `theirs` fd [`INIT_FD`] of the process `cmd` spawns (and only there: it stays
/// close-on-exec in ours).
fn pass_channel(cmd: &mut Command, theirs: &OwnedFd) {
    let theirs_raw = theirs.as_raw_fd();
    // SAFETY: the closure runs between fork and exec and calls only dup2 and fcntl, which are
    // async-signal-safe; it allocates nothing and takes no lock.
    unsafe { cmd.pre_exec(move || onto_init_fd(theirs_raw)) };
}

/// As [`pass_channel`], for a command the caller spawns later: `cmd` owns `theirs` and keeps it
/// open until the command is dropped.
pub(crate) fn give_channel(cmd: &mut Command, theirs: OwnedFd) {
    // SAFETY: as in `pass_channel`: only dup2 and fcntl run between fork and exec. The closure
    // owns the fd, so it is open whenever the command is spawned.
    unsafe { cmd.pre_exec(move || onto_init_fd(theirs.as_raw_fd())) };
}

/// In a forked child: makes `theirs` its fd [`INIT_FD`], open across exec. Async-signal-safe.
fn onto_init_fd(theirs_raw: RawFd) -> io::Result<()> {
    // SAFETY: dup2 and fcntl on plain fd numbers touch no memory of ours.
    unsafe {
        if theirs_raw == INIT_FD {
            // dup2 onto itself keeps FD_CLOEXEC; clear it so the socket survives exec.
            if libc::fcntl(INIT_FD, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
        } else if libc::dup2(theirs_raw, INIT_FD) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A command joined to a running container on a pty (`forge exec -t`), a child of the caller.
pub struct Joined {
    pub child: std::process::Child,
    /// The pty's master; `None` when joining failed before the pty existed.
    pub pty: Option<OwnedFd>,
}

/// Spawns the join command `cmd` (see [`crate::init::join`]), which holds the other end of
/// `channel` (see [`give_channel`]), and waits for the pty master it sends back before it
/// executes the command.
pub fn join_with_pty(mut cmd: Command, channel: Channel) -> Result<Joined, LaunchError> {
    let mut child = cmd.spawn().map_err(|source| LaunchError::Spawn {
        exe: cmd.get_program().to_string_lossy().into_owned(),
        source,
    })?;
    // Closes our copy of the joining process's end, so that its exec shows as EOF.
    drop(cmd);
    let unexpected = match channel.recv() {
        Ok(Some((Message::Pty, Some(master)))) => {
            return Ok(Joined {
                child,
                pty: Some(master),
            })
        }
        // Joining failed; the process has said why and exits with 125.
        Ok(None) => return Ok(Joined { child, pty: None }),
        Ok(Some(other)) => LaunchError::Vanished(format!("unexpected message {other:?}")),
        Err(e) => LaunchError::Channel(e),
    };
    // The command must not run unseen: stop and reap the joining process (its child follows
    // through the parent-death signal).
    let _ = child.kill();
    let _ = child.wait();
    Err(unexpected)
}

pub fn launch(spec: &InitSpec, io: LaunchIo) -> Result<Pending, LaunchError> {
    let exe = init_exe()?;
    let (channel, theirs) = channel::pair().map_err(LaunchError::Channel)?;
    let mut cmd = Command::new(&exe);
    cmd.arg0("forge-init")
        .arg(INIT_ARG)
        .env_clear()
        .stdin(io.stdin)
        .stdout(io.stdout)
        .stderr(io.stderr);
    pass_channel(&mut cmd, &theirs);
    let mut stage1 = cmd.spawn().map_err(|source| LaunchError::Spawn {
        exe: exe.clone(),
        source,
    })?;
    drop(theirs);
    drop(cmd);

    let spec_msg = Message::Spec(Box::new(spec.clone()));
    let sent = channel.send(&spec_msg);
    let reply = sent.and_then(|()| channel.recv());
    // Stage 1 exits right after cloning PID 1 (or on failure); reap it either way.
    let stage1_status = stage1.wait();
    let pid = match reply.map_err(LaunchError::Channel)? {
        Some((Message::Pid(pid), _)) => pid,
        Some((Message::Failed { message, .. }, _)) => return Err(LaunchError::Setup { message }),
        other => {
            return Err(LaunchError::Vanished(format!(
                "{stage1_status:?} after {other:?}"
            )))
        }
    };
    let pidfd = match sys::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
            return Err(LaunchError::Channel(e));
        }
    };
    let mut pending = Pending {
        pid,
        pidfd,
        pty: None,
        channel,
        started: false,
    };
    if let Some(userns) = &spec.userns {
        crate::userns::hand_over(pid, userns, &spec.lower, &spec.mounts, &pending.channel)
            .map_err(LaunchError::Userns)?;
    }
    loop {
        match pending.channel.recv().map_err(LaunchError::Channel)? {
            Some((Message::Pty, fd)) => {
                // Sized before the command can start and ask (the relay follows SIGWINCH later).
                if let (Some(master), Some(size)) = (&fd, crate::tty::caller_window_size()) {
                    crate::tty::set_window_size(std::os::fd::AsFd::as_fd(master), size);
                }
                pending.pty = fd
            }
            Some((Message::Ready, _)) => return Ok(pending),
            Some((Message::Failed { message, .. }, _)) => {
                return Err(LaunchError::Setup { message })
            }
            Some((other, _)) => {
                return Err(LaunchError::Vanished(format!(
                    "unexpected message {other:?}"
                )))
            }
            None => return Err(LaunchError::Vanished(pending.reap_status())),
        }
    }
}

impl Pending {
    /// Lets PID 1 execute the user's command; returns once it has (or could not).
    pub fn go(mut self) -> Result<Started, LaunchError> {
        self.channel
            .send(&Message::Go)
            .map_err(LaunchError::Channel)?;
        match self.channel.recv().map_err(LaunchError::Channel)? {
            // The socket is close-on-exec: EOF means the command is running.
            None => {}
            Some((Message::Failed { code, message }, _)) => {
                // PID 1 exits with `code` right after saying so; reap it here.
                self.reap_status();
                return Err(LaunchError::Exec { code, message });
            }
            Some((other, _)) => {
                return Err(LaunchError::Vanished(format!(
                    "unexpected message {other:?}"
                )))
            }
        }
        self.started = true;
        let pidfd = self.pidfd.try_clone().map_err(LaunchError::Channel)?;
        Ok(Started {
            oom: None,
            pid: self.pid,
            pidfd: std::sync::Arc::new(pidfd),
            pty: self.pty.take(),
        })
    }

    fn reap_status(&mut self) -> String {
        self.started = true;
        format!("{:?}", waitpid(Pid::from_raw(self.pid), None))
    }
}

impl Drop for Pending {
    /// A container that never got `Go` is killed and reaped, so a failed start leaves no process.
    fn drop(&mut self) {
        if !self.started {
            let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
            let _ = waitpid(Pid::from_raw(self.pid), None);
        }
    }
}

impl Started {
    /// Blocks until PID 1 exits and reaps it. Waits for this pid only, never `-1`.
    pub fn wait(&self) -> ExitInfo {
        if let Some(oom) = &self.oom {
            self.watch_oom_until_exit(oom);
        }
        let mut exit = self.reap();
        self.note_oom(&mut exit);
        exit
    }

    /// Reads `memory.events` on every change until PID 1 has exited (its pidfd is readable).
    fn watch_oom_until_exit(&self, oom: &crate::cgroup::OomWatch) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        loop {
            let mut fds = [
                PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(oom.fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
                Ok(_) => {}
            }
            if fds[1].any().unwrap_or(false) {
                oom.check();
            }
            if fds[0].any().unwrap_or(true) {
                oom.check();
                return;
            }
        }
    }

    /// Marks `exit` as an OOM kill when the watch saw one.
    pub(crate) fn note_oom(&self, exit: &mut ExitInfo) {
        if self.oom.as_ref().is_some_and(|oom| oom.killed()) {
            exit.reason = crate::container::OOM_REASON.to_string();
        }
    }

    /// The exit of PID 1 if it has exited (and is reaped now), without waiting.
    pub(crate) fn try_reap(&self) -> Option<ExitInfo> {
        self.reap_with(Some(nix::sys::wait::WaitPidFlag::WNOHANG))
    }

    fn reap(&self) -> ExitInfo {
        loop {
            if let Some(exit) = self.reap_with(None) {
                return exit;
            }
        }
    }

    /// One `waitpid` for PID 1 with `flags`: its exit, or `None` while it runs (or only stopped).
    fn reap_with(&self, flags: Option<nix::sys::wait::WaitPidFlag>) -> Option<ExitInfo> {
        loop {
            match waitpid(Pid::from_raw(self.pid), flags) {
                Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                    return Some(ExitInfo::from_wait(status))
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => return None,
                Err(e) => {
                    return Some(ExitInfo {
                        code: 255,
                        signal: None,
                        reason: format!("waiting for the container: {e}"),
                    })
                }
            }
        }
    }

    pub fn signal(&self, sig: libc::c_int) -> io::Result<()> {
        sys::pidfd_send_signal(self.pidfd.as_raw_fd(), sig)
    }
}
