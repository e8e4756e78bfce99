//! Mounts at a path of the container, made by PID 1 before `pivot_root`: the destination is
//! resolved inside the container's root as the container would see it, and never outside it.
//!
//! Every lookup is `openat2(RESOLVE_IN_ROOT)` on a directory fd of the new root, so `..`,
//! absolute symlinks and symlinks to `../../..` in the image stay below the root (an image whose
//! `/data` links to `/etc` gets the mount on the container's `/etc`, never on the host's).
//! Missing components are created with `mkdirat` in the directory fd they resolved to (a dangling
//! symlink is followed, inside the root, to what it names), and the mount goes onto the opened fd
//! itself (`move_mount` for binds, `/proc/self/fd/N` for tmpfs): nothing is looked up twice, so a
//! component swapped for a symlink in between (runc's CVE-2021-30465) changes nothing.
//! Destinations that resolve into procfs or sysfs, or to the root itself, are refused.
//!
//! # Caveats
//!
//! `ro` binds are made read-only recursively with `mount_setattr(AT_RECURSIVE)`, which needs
//! Linux 5.12: older kernels refuse them (ENOSYS, with the reason) rather than leave submounts
//! writable.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;

use crate::mounts::Propagation;
use crate::spec::{InitMount, MountWhat, VolumeFs};

/// How many symlinks one destination may pass through (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// Makes `m` inside the root filesystem mounted at `root`; why not, to follow the destination.
/// `prepared`: the mount the caller made of `m`'s source for a user namespace (idmapped, see
/// [`InitMount::made_by_caller`]), used instead of opening or mounting the source here.
pub fn apply(root: &Path, m: &InitMount, prepared: Option<OwnedFd>) -> Result<(), String> {
    let fail = |what: &str, e: io::Error| format!("{what}: {e}");
    let root_fd = open_root(root).map_err(|e| format!("opening {}: {e}", root.display()))?;
    match &m.what {
        MountWhat::Bind { source, copy_up } => {
            let src =
                match prepared {
                    Some(tree) => Source::Tree(tree),
                    None => Source::Path(crate::sys::open_path(source).map_err(|e| {
                        format!("opening the mount source {}: {e}", source.display())
                    })?),
                };
            let is_dir = nix::sys::stat::fstat(src.fd().as_raw_fd())
                .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
                .map_err(|e| format!("checking {}: {e}", source.display()))?;
            // Docker copies up only what the image has (not a directory made for the mount).
            let copy_up = *copy_up && is_dir && in_image(root_fd.as_fd(), &m.target);
            let target = resolve(root_fd.as_fd(), &m.target, is_dir)
                .map_err(|e| fail("resolving it in the container", e))?;
            check_destination(root_fd.as_fd(), target.as_fd())?;
            if copy_up {
                super::copy_up::copy_if_empty(target.as_fd(), src.fd()).map_err(|e| {
                    format!("copying the image's files into {}: {e}", source.display())
                })?;
            }
            hand_to_owner(src.fd(), m).map_err(|e| {
                format!("handing {} to the container's user: {e}", source.display())
            })?;
            let tree = match src {
                Source::Tree(tree) => tree,
                Source::Path(path) => crate::sys::open_tree_clone_recursive(path.as_fd())
                    .map_err(|e| format!("mounting {}: {e}", source.display()))?,
            };
            attach(tree, target.as_fd(), m)
                .map_err(|e| format!("mounting {}: {e}", source.display()))
        }
        MountWhat::Filesystem { fs, copy_up } => {
            let copy_up = *copy_up && in_image(root_fd.as_fd(), &m.target);
            let target = resolve(root_fd.as_fd(), &m.target, true)
                .map_err(|e| fail("resolving it in the container", e))?;
            check_destination(root_fd.as_fd(), target.as_fd())?;
            let (what, mounted) = match (fs, prepared) {
                (_, Some(tree)) => ("the volume's filesystem", Ok(tree)),
                (VolumeFs::Disk { image }, None) => (
                    "the volume's filesystem",
                    crate::disk::mount_detached(image),
                ),
                (VolumeFs::Tmpfs { data }, None) => ("a tmpfs volume", tmpfs_detached(data)),
            };
            let mounted = mounted.map_err(|e| fail(&format!("mounting {what}"), e))?;
            if copy_up {
                super::copy_up::copy_if_empty(target.as_fd(), mounted.as_fd())
                    .map_err(|e| fail("copying the image's files into the volume", e))?;
            }
            hand_to_owner(mounted.as_fd(), m)
                .map_err(|e| fail("handing the volume to the container's user", e))?;
            attach(mounted, target.as_fd(), m).map_err(|e| fail(&format!("mounting {what}"), e))
        }
        MountWhat::Tmpfs { data } => {
            let target = resolve(root_fd.as_fd(), &m.target, true)
                .map_err(|e| fail("resolving it in the container", e))?;
            check_destination(root_fd.as_fd(), target.as_fd())?;
            let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
            if m.read_only {
                flags |= MsFlags::MS_RDONLY;
            }
            nix::mount::mount(
                Some("tmpfs"),
                &fd_path(target.as_fd()),
                Some("tmpfs"),
                flags,
                Some(data.as_str()),
            )
            .map_err(|e| fail("mounting a tmpfs", e.into()))
        }
    }
}

/// A bind's source: a path opened here, or the caller's idmapped mount of it.
enum Source {
    Path(OwnedFd),
    Tree(OwnedFd),
}

impl Source {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Self::Path(fd) | Self::Tree(fd) => fd.as_fd(),
        }
    }
}

/// Podman's `U`, if `m` asks for it.
fn hand_to_owner(source: BorrowedFd<'_>, m: &InitMount) -> io::Result<()> {
    m.chown
        .map_or(Ok(()), |owner| super::chown::hand_tree_to(source, owner))
}

fn open_root(root: &Path) -> io::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: open just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `/proc/self/fd/N`: a path that names exactly what the fd does, for the calls that take paths.
fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Whether the container's root has something at `target` before any mount is made there.
fn in_image(root: BorrowedFd<'_>, target: &str) -> bool {
    open_in(root, Path::new(target), OFlag::empty()).is_ok()
}

/// `path` below `root`, resolved as if `root` were `/`.
fn open_in(root: BorrowedFd<'_>, path: &Path, flags: OFlag) -> io::Result<OwnedFd> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    crate::sys::openat2_in_root(root, path, flags | OFlag::O_PATH)
}

/// Opens the container path `target` below `root` (an `O_PATH` fd), creating what is missing:
/// directories, and for `leaf_dir == false` the last component as an empty file.
pub fn resolve(root: BorrowedFd<'_>, target: &str, leaf_dir: bool) -> io::Result<OwnedFd> {
    let mut pending: VecDeque<OsString> = components(Path::new(target));
    // What resolved so far: a path that names an existing directory when resolved in the root.
    let mut done = PathBuf::new();
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        let candidate = done.join(&part);
        match open_in(root, &candidate, OFlag::empty()) {
            Ok(fd) if pending.is_empty() => return Ok(fd),
            Ok(_) => {
                done = candidate;
                continue;
            }
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(e),
            Err(_) => {}
        }
        let parent = open_in(root, &done, OFlag::O_DIRECTORY)?;
        match nix::fcntl::readlinkat(Some(parent.as_raw_fd()), part.as_os_str()) {
            // A dangling symlink: go on from what it names, inside the root.
            Ok(link) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Errno::ELOOP.into());
                }
                if Path::new(&link).is_absolute() {
                    done = PathBuf::new();
                }
                for (n, piece) in components(Path::new(&link)).into_iter().enumerate() {
                    pending.insert(n, piece);
                }
                continue;
            }
            Err(Errno::ENOENT | Errno::EINVAL) => {}
            Err(e) => return Err(e.into()),
        }
        let made = if pending.is_empty() && !leaf_dir {
            nix::fcntl::openat(
                Some(parent.as_raw_fd()),
                part.as_os_str(),
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_WRONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .map(|fd| {
                // SAFETY: openat just returned this fd and nothing else owns it.
                drop(unsafe { OwnedFd::from_raw_fd(fd) })
            })
        } else {
            nix::sys::stat::mkdirat(
                Some(parent.as_raw_fd()),
                part.as_os_str(),
                Mode::from_bits_truncate(0o755),
            )
        };
        match made {
            Ok(()) | Err(Errno::EEXIST) => pending.push_front(part),
            Err(e) => return Err(e.into()),
        }
    }
    open_in(root, &done, OFlag::empty())
}

/// The `Normal` and `..` parts of a path (`.` and the root dropped).
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// Refuses a resolved destination in procfs or sysfs, or the root itself.
fn check_destination(root: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), String> {
    use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC, SYSFS_MAGIC};
    let fs = fstatfs(target).map_err(|e| format!("checking it: {e}"))?;
    if fs.filesystem_type() == PROC_SUPER_MAGIC || fs.filesystem_type() == SYSFS_MAGIC {
        return Err("refused: it resolves into /proc or /sys (a symlink in the image?)".into());
    }
    let id = |fd: BorrowedFd<'_>| {
        nix::sys::stat::fstat(fd.as_raw_fd())
            .map(|st| (st.st_dev, st.st_ino))
            .map_err(|e| format!("checking it: {e}"))
    };
    if id(target)? == id(root)? {
        return Err(
            "refused: it resolves to the container's root (a symlink in the image?)".into(),
        );
    }
    Ok(())
}

/// A new tmpfs as a detached mount (`nosuid,nodev`), its mount data given option by option.
fn tmpfs_detached(data: &str) -> io::Result<OwnedFd> {
    let ctx = crate::sys::fsopen(c"tmpfs")?;
    for option in data.split(',').filter(|o| !o.is_empty()) {
        let (key, value) = option.split_once('=').unwrap_or((option, ""));
        let key = std::ffi::CString::new(key).map_err(io::Error::other)?;
        match option.contains('=') {
            true => crate::sys::fsconfig_set(&ctx, &key, value)?,
            false => crate::sys::fsconfig_flag(&ctx, &key)?,
        }
    }
    crate::sys::fsmount_detached(
        &ctx,
        crate::sys::MOUNT_ATTR_NOSUID | crate::sys::MOUNT_ATTR_NODEV,
    )
}

/// Attaches the detached mount `tree` onto `target`: made read-only (all of it) before, then
/// given its propagation.
fn attach(tree: OwnedFd, target: BorrowedFd<'_>, m: &InitMount) -> io::Result<()> {
    if m.read_only {
        crate::sys::mount_setattr_rdonly_recursive(tree.as_fd()).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOSYS) {
                io::Error::other(
                    "a read-only bind needs mount_setattr (Linux 5.12 or later) to make its submounts read-only too",
                )
            } else {
                e
            }
        })?;
    }
    crate::sys::move_mount_onto(tree.as_fd(), target)?;
    let mut flags = match m.propagation {
        Propagation::Rprivate | Propagation::Private => MsFlags::MS_PRIVATE,
        Propagation::Rslave | Propagation::Slave => MsFlags::MS_SLAVE,
        Propagation::Rshared | Propagation::Shared => MsFlags::MS_SHARED,
    };
    if m.propagation.recursive() {
        flags |= MsFlags::MS_REC;
    }
    // The tree's fd names the mount just attached.
    nix::mount::mount(
        None::<&str>,
        &fd_path(tree.as_fd()),
        None::<&str>,
        flags,
        None::<&str>,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn resolved(root: &Path, target: &str, leaf_dir: bool) -> PathBuf {
        let root_fd = open_root(root).unwrap();
        let fd = resolve(root_fd.as_fd(), target, leaf_dir).unwrap();
        std::fs::read_link(fd_path(fd.as_fd())).unwrap()
    }

    #[test]
    fn symlinks_in_the_image_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        symlink("/etc", root.join("data")).unwrap();
        symlink("../../..", root.join("up")).unwrap();
        symlink("/nowhere/deep", root.join("dangling")).unwrap();
        assert_eq!(resolved(&root, "/data", true), root.join("etc"));
        assert_eq!(resolved(&root, "/data/app", true), root.join("etc/app"));
        assert!(root.join("etc/app").is_dir());
        assert_eq!(resolved(&root, "/up", true), root);
        assert_eq!(resolved(&root, "/up/x", true), root.join("x"));
        assert!(!dir.path().join("x").exists());
        // A dangling symlink is followed to what it names, made inside the root.
        assert_eq!(
            resolved(&root, "/dangling", true),
            root.join("nowhere/deep")
        );
        assert!(!Path::new("/nowhere").exists());
        // A file destination is made as an empty file.
        assert_eq!(
            resolved(&root, "/data/conf.ini", false),
            root.join("etc/conf.ini")
        );
        assert!(root.join("etc/conf.ini").is_file());
    }

    #[test]
    fn symlink_loops_and_files_in_the_way_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        symlink("/b", root.join("a")).unwrap();
        symlink("/a", root.join("b")).unwrap();
        std::fs::write(root.join("file"), "").unwrap();
        let root_fd = open_root(root).unwrap();
        let err = resolve(root_fd.as_fd(), "/a", true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
        let err = resolve(root_fd.as_fd(), "/file/x", true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR), "{err}");
    }

    #[test]
    fn the_root_itself_is_refused_as_a_destination() {
        let dir = tempfile::tempdir().unwrap();
        symlink("../..", dir.path().join("up")).unwrap();
        let root_fd = open_root(dir.path()).unwrap();
        let target = resolve(root_fd.as_fd(), "/up", true).unwrap();
        let err = check_destination(root_fd.as_fd(), target.as_fd()).unwrap_err();
        assert!(err.contains("container's root"), "{err}");
        let proc = open_root(Path::new("/proc/self")).unwrap();
        let err = check_destination(root_fd.as_fd(), proc.as_fd()).unwrap_err();
        assert!(err.contains("/proc or /sys"), "{err}");
    }
}
