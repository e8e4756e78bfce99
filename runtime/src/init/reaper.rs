//! `--init` / compose `init = true`: PID 1 stays Forge and runs the command as its child. It
//! forwards every signal it gets to that child (a plain PID 1 ignores signals it has no handler
//! for), reaps every orphan that the PID namespace hands it, and exits as the child did.

use std::path::Path;

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::channel::{Channel, EXIT_FORGE_ERROR};
use crate::spec::InitSpec;
use crate::sys::{clone_fork, Forked};

/// Runs `file` as PID 1's child and supervises it; never returns.
pub fn run(channel: &Channel, spec: &InitSpec, file: &Path) -> ! {
    let all = SigSet::all();
    let mut old = SigSet::empty();
    if let Err(e) = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), Some(&mut old))
    {
        super::fail(channel, EXIT_FORGE_ERROR, format!("blocking signals: {e}"));
    }
    // SAFETY: PID 1 is single-threaded (a fresh exec, cloned without threads).
    let child = match unsafe { clone_fork(0) } {
        Ok(Forked::Child) => {
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            super::exec_command(channel, spec, file)
        }
        Ok(Forked::Parent { child }) => Pid::from_raw(child),
        Err(e) => super::fail(
            channel,
            EXIT_FORGE_ERROR,
            format!("starting the command: {e}"),
        ),
    };
    // The caller learns that the command started when the set-up socket closes: the child's copy
    // closes on exec, ours now.
    // SAFETY: we never return from here, so nothing uses or closes the channel's fd after this.
    unsafe { libc::close(channel.raw_fd()) };
    loop {
        match all.wait() {
            Ok(Signal::SIGCHLD) => reap(child),
            Ok(signal) => {
                let _ = kill(child, signal);
            }
            Err(_) => continue,
        }
    }
}

/// Reaps every exited process; exits like `child` once it is among them.
fn reap(child: Pid) {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => std::process::exit(code),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => {
                std::process::exit(128 + signal as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}
