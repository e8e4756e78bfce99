//! Waiting for a container's exit on tokio's reactor, for callers that watch many containers
//! from one thread (the supervisor): readiness of the pidfd, then a reap that cannot block.

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::launch::Started;
use crate::status::ExitInfo;

impl Started {
    /// Waits until PID 1 exits and reaps it, as [`Started::wait`] does, without holding a
    /// thread. With an OOM watch, reads `memory.events` on every change meanwhile: under systemd
    /// the cgroup (and the file) may be gone by the time the exit is seen.
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
        if let Some(pidfd) = pidfd {
            match (&self.oom, events) {
                (Some(oom), Some(events)) => loop {
                    tokio::select! {
                        _ = pidfd.readable() => break,
                        ready = events.readable() => {
                            oom.check();
                            if let Ok(mut guard) = ready {
                                guard.clear_ready();
                            }
                        }
                    }
                },
                _ => {
                    let _ = pidfd.readable().await;
                }
            }
        }
        // PID 1 has exited (or its pidfd could not be watched): the reap returns at once.
        if let Some(oom) = &self.oom {
            oom.check();
        }
        let mut exit = self.reap();
        self.note_oom(&mut exit);
        exit
    }
}
