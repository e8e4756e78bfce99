//! Signal names as users type them: `KILL`, `SIGKILL`, `kill` or `9`; and forwarding the
//! signals a foreground `forge run` receives to its container.

use nix::sys::signal::Signal;
use std::os::fd::AsRawFd;
use std::str::FromStr;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::cgroup::CgroupPaths;
use crate::container::Container;
use crate::launch::Started;

#[derive(Debug, thiserror::Error)]
#[error("invalid signal {0:?}: use a name like TERM or SIGKILL, or a number")]
pub struct BadSignal(pub String);

pub fn parse_signal(text: &str) -> Result<Signal, BadSignal> {
    let bad = || BadSignal(text.to_string());
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| bad())
}

/// The container's host pidfd, for the signal handler that forwards signals to it.
static FORWARD_TO: AtomicI32 = AtomicI32::new(-1);

extern "C" fn forward_signal(sig: libc::c_int) {
    let fd = FORWARD_TO.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: pidfd_send_signal is a plain syscall, async-signal-safe; a null siginfo is allowed.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                sig,
                std::ptr::null_mut::<libc::c_void>(),
                0,
            )
        };
    }
}

impl Started {
    /// Like `docker run`'s sig-proxy: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent
    /// to this process go to the container's PID 1 from now on. For a process that waits for
    /// one container in the foreground; `self` must outlive the forwarding (its pidfd is used).
    pub fn forward_signals(&self) {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
        FORWARD_TO.store(self.pidfd.as_raw_fd(), Ordering::Relaxed);
        let action = SigAction::new(
            SigHandler::Handler(forward_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for sig in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
        ] {
            // SAFETY: the handler only reads an atomic and makes one syscall, both async-signal-safe.
            let _ = unsafe { sigaction(sig, &action) };
        }
    }
}

/// Signals one run of a container from anywhere, while another task waits for its exit: PID 1's
/// pidfd, which names that process only (a recycled pid is never hit), and the container's
/// cgroups for what PID 1 leaves behind.
#[derive(Debug, Clone)]
pub struct Signaller {
    pidfd: std::sync::Arc<std::os::fd::OwnedFd>,
    cgroup: CgroupPaths,
}

impl Signaller {
    /// Sends `signal` to PID 1; an exited PID 1 is not an error worth reporting here.
    pub fn signal(&self, signal: Signal) {
        let _ = crate::sys::pidfd_send_signal(self.pidfd.as_raw_fd(), signal as i32);
    }

    /// SIGKILL to PID 1 and to every process left in the container's cgroups.
    pub fn kill(&self) {
        self.signal(Signal::SIGKILL);
        let _ = self.cgroup.driver().kill_all();
    }
}

impl Started {
    /// A [`Signaller`] for this run of `c`.
    pub fn signaller(&self, c: &Container) -> Signaller {
        Signaller {
            pidfd: std::sync::Arc::clone(&self.pidfd),
            cgroup: c.config.cgroup.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
