//! Watching a container's `memory.events` for OOM kills while it runs (as conmon and the
//! containerd shim do). Under the systemd manager the scope's cgroup disappears as soon as its last
//! process exits, before the exit could be followed by a read of the file; the kernel notifies
//! every change of the file, so the waiter reads it on each one and keeps what it saw.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

pub struct OomWatch {
    inotify: Inotify,
    dir: PathBuf,
    seen: AtomicBool,
}

impl OomWatch {
    /// Watches the cgroup `dir`; `None` when it has no `memory.events` (no memory controller).
    pub fn new(dir: &Path) -> Option<Self> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        inotify
            .add_watch(&dir.join("memory.events"), AddWatchFlags::IN_MODIFY)
            .ok()?;
        let watch = Self {
            inotify,
            dir: dir.to_path_buf(),
            seen: AtomicBool::new(false),
        };
        watch.check(); // a kill before the watch existed
        Some(watch)
    }

    /// Readable when `memory.events` changed: then call [`OomWatch::check`].
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// Takes the pending notifications and reads the file while it is there.
    pub fn check(&self) -> bool {
        while self.inotify.read_events().is_ok_and(|e| !e.is_empty()) {}
        if super::v2::oom_killed(&self.dir) {
            self.seen.store(true, Ordering::Relaxed);
        }
        self.killed()
    }

    /// Whether an OOM kill has been seen.
    pub fn killed(&self) -> bool {
        self.seen.load(Ordering::Relaxed)
    }
}
