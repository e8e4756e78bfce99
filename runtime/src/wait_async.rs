//! Waiting for a container's exit on tokio's reactor, for callers that watch many containers
//! from one thread (the supervisor): readiness of the pidfd, then a reap that never blocks.

use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::launch::Started;
use crate::status::ExitInfo;

/// How often to try the reap when the pidfd cannot be watched (it always can on Linux 5.3+).
const POLL_WITHOUT_PIDFD: Duration = Duration::from_millis(50);

impl Started {
    /// Waits until PID 1 exits and reaps it, as [`Started::wait`] does, without holding a
    /// thread: a worker of the caller's runtime is never blocked, even by a readiness that
    /// comes before the exit. With an OOM watch, reads `memory.events` on every change
    /// meanwhile: under systemd the cgroup (and the file) may be gone by the time the exit is seen.
    pub async fn exited(&self) -> ExitInfo {
        let pidfd = self.pidfd.try_clone().ok().and_then(|fd| {
            // SAFETY: the AsyncFd owns this duplicate, so the fd stays open while it is registered.
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok()
        });
        let events = self.oom.as_ref().and_then(|oom| {
            let fd = oom.fd().try_clone_to_owned().ok()?;
            // SAFETY: as above, the AsyncFd owns the duplicate it watches.
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok()
        });
        loop {
            if let Some(mut exit) = self.try_reap() {
                if let Some(oom) = &self.oom {
                    oom.check();
                }
                self.note_oom(&mut exit);
                return exit;
            }
            let Some(pidfd) = &pidfd else {
                tokio::time::sleep(POLL_WITHOUT_PIDFD).await;
                continue;
            };
            tokio::select! {
                ready = pidfd.readable() => {
                    // Cleared before the next reap: an exit after it makes the pidfd ready anew.
                    if let Ok(mut guard) = ready {
                        guard.clear_ready();
                    }
                }
                ready = readable(events.as_ref()) => {
                    if let Some(oom) = &self.oom {
                        oom.check();
                    }
                    if let Ok(mut guard) = ready {
                        guard.clear_ready();
                    }
                }
            }
        }
    }
}

/// `fd`'s next readiness; never, without one.
async fn readable<T: std::os::fd::AsRawFd>(
    fd: Option<&AsyncFd<T>>,
) -> std::io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, T>> {
    match fd {
        Some(fd) => fd.readable().await,
        None => std::future::pending().await,
    }
}
