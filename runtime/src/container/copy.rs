//! `forge cp`: the container side of a copy, running or stopped.
//!
//! A running container's root is its PID 1's `/proc/PID/root`, opened and then checked to
//! still be that process (its start time), so a recycled pid cannot point the copy at another
//! process's root; its volumes and binds are there, as its processes see them. A stopped
//! container's root is its overlay with its volumes and binds, mounted in no namespace (see
//! [`crate::cp::stopped`]) while the container's rootfs lock is held: [`Runtime::start`] takes
//! it too, so a start waits for the copy to end.
//!
//! # Caveats
//!
//! A stopped container's tmpfs mounts and Forge's `/etc/hosts`,
//! `/etc/hostname` and `/etc/resolv.conf` are not there. A stopped `--read-only` container's
//! root is mounted read-only, its volumes and binds as they are: a copy into a writable volume
//! works, one into the root fails with EROFS, as while it runs (Docker's rule).
//! Mounting a stopped container's volumes makes their missing mount points in its writable
//! layer, as its next start would; that happens before the paths are looked up.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;

use super::{io_err, Container, Runtime, RuntimeError};
use crate::cp::{self, Owners, Root};

/// One side of `forge cp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyPath {
    /// A path of the caller's (relative to its working directory).
    Host(String),
    /// `CONTAINER:PATH`, the path inside the container (relative to its `/`).
    Container { container: String, path: String },
    /// `-`: a tar stream on stdin or stdout.
    Stream,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// `-a`: keep the archive's or the files' uid and gid.
    pub archive: bool,
    /// `-L`: a symlink at the end of the source is copied as what it points to.
    pub follow_link: bool,
}

/// The container's root and, for a stopped one, its rootfs lock until the copy is done.
struct Opened {
    c: Container,
    root: Root,
    _lock: Option<File>,
}

impl Runtime {
    /// Copies `src` to `dst` as `docker cp` does; exactly one of them is in a container.
    pub fn copy(
        &self,
        src: &CopyPath,
        dst: &CopyPath,
        opts: CopyOptions,
        stdin: &mut dyn Read,
        stdout: &mut dyn Write,
    ) -> Result<(), RuntimeError> {
        let follow = opts.follow_link;
        match (src, dst) {
            (CopyPath::Container { .. }, CopyPath::Container { .. }) => Err(RuntimeError::BadCopy(
                "copying between containers is not supported".into(),
            )),
            (CopyPath::Container { container, path }, to) => {
                let o = self.open_root(container)?;
                let name = o.c.name().to_string();
                let source = cp::source(&o.root, &name, path, follow)?;
                match to {
                    CopyPath::Stream => Ok(cp::to_stream(&o.root, &name, &source, stdout)?),
                    CopyPath::Host(host) => {
                        let host_root = Root::host().map_err(io_err("opening", Path::new("/")))?;
                        let dest = cp::dest(&host_root, "", &absolute(host))?;
                        let plan = cp::prepare("", &source, &dest)?;
                        let owners = if opts.archive {
                            Owners::Archive
                        } else {
                            Owners::Caller
                        };
                        Ok(cp::copy(
                            (&o.root, &name),
                            &source,
                            (&host_root, ""),
                            &plan,
                            owners,
                        )?)
                    }
                    CopyPath::Container { .. } => unreachable!("refused above"),
                }
            }
            (from, CopyPath::Container { container, path }) => {
                let o = self.open_root(container)?;
                let name = o.c.name().to_string();
                let dest = cp::dest(&o.root, &name, path)?;
                let owners = if opts.archive {
                    Owners::Archive
                } else {
                    Owners::Fixed(o.root.uid_in(0), o.root.gid_in(0))
                };
                match from {
                    CopyPath::Stream => Ok(cp::from_stream(&o.root, &name, &dest, stdin, owners)?),
                    CopyPath::Host(host) => {
                        let host_root = Root::host().map_err(io_err("opening", Path::new("/")))?;
                        let source = cp::source(&host_root, "", &absolute(host), follow)?;
                        let plan = cp::prepare(&name, &source, &dest)?;
                        Ok(cp::copy(
                            (&host_root, ""),
                            &source,
                            (&o.root, &name),
                            &plan,
                            owners,
                        )?)
                    }
                    CopyPath::Container { .. } => unreachable!("refused above"),
                }
            }
            _ => Err(RuntimeError::BadCopy(
                "must specify at least one container source (CONTAINER:PATH)".into(),
            )),
        }
    }

    /// The root of container `name`, running or stopped.
    fn open_root(&self, name: &str) -> Result<Opened, RuntimeError> {
        let c = self.get(name)?;
        if let Some(root) = running_root(&c) {
            return Ok(Opened {
                c,
                root,
                _lock: None,
            });
        }
        let lock_path = self.roots.container_data(c.id()).join("rootfs.lock");
        let lock = crate::sys::lock_exclusive(&lock_path).map_err(io_err("locking", &lock_path))?;
        // It may have been started while we waited for the lock.
        let c = self.get(name)?;
        if let Some(root) = running_root(&c) {
            return Ok(Opened {
                c,
                root,
                _lock: None,
            });
        }
        let refuse = |why: &str| RuntimeError::CopyRoot {
            name: c.name().to_string(),
            message: why.to_string(),
        };
        let spec = self.init_spec(&c, false)?;
        std::fs::create_dir_all(&spec.rootfs).map_err(io_err("creating", &spec.rootfs))?;
        let request = cp::stopped::MountRequest {
            lower: spec.lower,
            upper: spec.upper,
            work: spec.work,
            storage: spec.storage,
            rootfs: spec.rootfs,
            mounts: spec.mounts,
            userns: spec.userns,
            read_only: c.config.read_only,
        };
        let exe = crate::launch::init_exe()?;
        let tree = cp::stopped::mount_root(&exe, &request).map_err(|m| refuse(&m))?;
        Ok(Opened {
            root: Root::new(tree, c.config.userns),
            c,
            _lock: Some(lock),
        })
    }
}

/// `/proc/PID/root` of a running container's PID 1, checked after opening to be of that very
/// process; `None` when it is not running (any more).
fn running_root(c: &Container) -> Option<Root> {
    let (Some(pid), Some(start)) = (c.state.pid, c.state.pid_start) else {
        return None;
    };
    if !c.is_running() {
        return None;
    }
    let fd = nix::fcntl::open(
        format!("/proc/{pid}/root").as_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()?;
    // SAFETY: open just returned this fd and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // The pid could have been recycled between the check above and the open: the start time
    // tells (a pid does not come back to an earlier process).
    crate::status::process_alive(pid, start).then(|| Root::new(fd, c.config.userns))
}

/// A host path made absolute against the working directory, keeping a trailing `/` or `/.`.
fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        return path.to_string();
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    format!("{}/{path}", cwd.display())
}
