//! A root that paths are resolved in: the container's (its PID 1's `/proc/PID/root`, or its
//! overlay mounted in no namespace at all) or the host's own `/`.
//!
//! Every lookup is `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` on the root's fd, so `..`,
//! absolute symlinks and symlinks to `../../..` stay below the root, and `/proc/self/...`-style
//! magic links are refused. Callers open a parent directory once and work on its fd from there
//! (`*at` calls with `O_NOFOLLOW`), so a component swapped for a symlink after the lookup
//! (CVE-2018-15664, `docker cp`) changes nothing: at worst the copy lands elsewhere inside the
//! same root.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::FileStat;

use crate::userns::IdMap;

/// A directory fd that paths are resolved in, and how its owners map to the IDs a user sees.
pub struct Root {
    fd: OwnedFd,
    /// A container with its own user namespace: its ID `n` is the host's `map.uid + n`.
    map: Option<IdMap>,
}

impl Root {
    /// The host's own root: paths mean what they mean to the caller.
    pub fn host() -> io::Result<Self> {
        let fd = nix::fcntl::open(
            "/",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        // SAFETY: open just returned this fd and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd, map: None })
    }

    /// A container's root, open as `fd`, with its ID mapping.
    pub fn new(fd: OwnedFd, map: Option<IdMap>) -> Self {
        Self { fd, map }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens `path` (absolute, or relative to the root) inside the root. `follow`: whether
    /// a symlink as the last component is followed (inside the root) or opened itself.
    pub fn open(&self, path: &Path, flags: OFlag, follow: bool) -> io::Result<OwnedFd> {
        open_in(self.fd(), path, flags, follow)
    }

    /// `lstat` (or `stat` with `follow`) of `path` inside the root.
    pub fn stat(&self, path: &Path, follow: bool) -> io::Result<FileStat> {
        let fd = self.open(path, OFlag::O_PATH, follow)?;
        Ok(nix::sys::stat::fstat(fd.as_raw_fd())?)
    }

    /// The target of the symlink `path` (its last component not followed).
    pub fn readlink(&self, path: &Path) -> io::Result<std::ffi::OsString> {
        let fd = self.open(path, OFlag::O_PATH, false)?;
        Ok(nix::fcntl::readlinkat(Some(fd.as_raw_fd()), "")?)
    }

    /// The user-visible ID of host uid `uid` (the container's view).
    pub fn uid_out(&self, uid: u32) -> u32 {
        self.map.map_or(uid, |m| shift_out(uid, m.uid, m.size))
    }

    pub fn gid_out(&self, gid: u32) -> u32 {
        self.map.map_or(gid, |m| shift_out(gid, m.gid, m.size))
    }

    /// The host uid that stands for the root's `uid` (65534, nobody, when it is unmapped).
    pub fn uid_in(&self, uid: u32) -> u32 {
        self.map.map_or(uid, |m| shift_in(uid, m.uid, m.size))
    }

    pub fn gid_in(&self, gid: u32) -> u32 {
        self.map.map_or(gid, |m| shift_in(gid, m.gid, m.size))
    }
}

/// The filesystem capabilities the kernel drops from the effective set when the fsuid stops
/// being 0 (capabilities(7)); raised again, from the permitted set, for the copy.
const FS_CAPS: [caps::Capability; 7] = [
    caps::Capability::CAP_CHOWN,
    caps::Capability::CAP_DAC_OVERRIDE,
    caps::Capability::CAP_DAC_READ_SEARCH,
    caps::Capability::CAP_FOWNER,
    caps::Capability::CAP_FSETID,
    caps::Capability::CAP_MKNOD,
    caps::Capability::CAP_LINUX_IMMUTABLE,
];

/// This thread writing as the container's root: its fsuid and fsgid while alive.
pub struct ActingAs {
    _private: (),
}

impl Root {
    /// Makes this thread create files as the root's own root (its mapped ID): a container
    /// with its own user namespace has its overlay mounted there, where the host's uid 0 is
    /// not mapped, so a file made with fsuid 0 would be refused (EOVERFLOW). `None` for a
    /// root without a mapping. Undone when the guard is dropped.
    pub fn act_as_root(&self) -> io::Result<Option<ActingAs>> {
        let Some(map) = self.map else {
            return Ok(None);
        };
        // SAFETY: setfsuid and setfsgid change only this thread's filesystem IDs.
        unsafe {
            libc::setfsgid(map.gid);
            libc::setfsuid(map.uid);
        }
        for cap in FS_CAPS {
            caps::raise(None, caps::CapSet::Effective, cap).map_err(io::Error::other)?;
        }
        Ok(Some(ActingAs { _private: () }))
    }
}

impl Drop for ActingAs {
    fn drop(&mut self) {
        // SAFETY: as above; back to root's IDs, which gives the capabilities back.
        unsafe {
            libc::setfsuid(0);
            libc::setfsgid(0);
        }
    }
}

fn shift_out(id: u32, base: u32, size: u32) -> u32 {
    match id.checked_sub(base) {
        Some(n) if n < size => n,
        _ => 65534,
    }
}

fn shift_in(id: u32, base: u32, size: u32) -> u32 {
    if id < size {
        base + id
    } else {
        base + 65534.min(size - 1)
    }
}

/// `path` below `root`, resolved as if `root` were `/`.
pub fn open_in(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
    follow: bool,
) -> io::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let mut flags = flags | OFlag::O_CLOEXEC;
    if !follow {
        flags |= OFlag::O_NOFOLLOW;
    }
    crate::sys::openat2_in_root(root, rel, flags)
}

/// `name` as a C string for the `*at` calls.
pub fn c_name(name: &std::ffi::OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Refuses a directory in procfs or sysfs: writing there as the host's root would reach the
/// kernel's knobs, and reading would show the host's view (a symlink in the container?).
pub fn check_not_kernel_fs(dir: BorrowedFd<'_>) -> io::Result<()> {
    use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC, SYSFS_MAGIC};
    let fs = fstatfs(dir)?;
    if fs.filesystem_type() == PROC_SUPER_MAGIC || fs.filesystem_type() == SYSFS_MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "refused: it is in /proc or /sys",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_shift_by_the_map_and_unmapped_ones_are_nobody() {
        assert_eq!(shift_out(100_005, 100_000, 65536), 5);
        assert_eq!(shift_out(5, 100_000, 65536), 65534);
        assert_eq!(shift_in(5, 100_000, 65536), 100_005);
        assert_eq!(shift_in(70_000, 100_000, 65536), 165_534);
    }

    #[test]
    fn symlinks_out_of_the_root_stay_inside_it() {
        let dir = tempfile::tempdir().unwrap();
        let root_dir = dir.path().join("root");
        std::fs::create_dir_all(root_dir.join("etc")).unwrap();
        std::fs::write(root_dir.join("etc/hostname"), "inside").unwrap();
        std::os::unix::fs::symlink("/", root_dir.join("evil")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root_dir.join("up")).unwrap();
        let fd = nix::fcntl::open(&root_dir, OFlag::O_PATH, nix::sys::stat::Mode::empty()).unwrap();
        // SAFETY: open just returned this fd and nothing else owns it.
        let root = Root::new(unsafe { OwnedFd::from_raw_fd(fd) }, None);
        for path in ["/evil/etc/hostname", "/up/hostname", "/../../etc/hostname"] {
            let fd = root.open(Path::new(path), OFlag::O_RDONLY, true).unwrap();
            let text = std::io::read_to_string(std::fs::File::from(fd)).unwrap();
            assert_eq!(text, "inside", "{path}");
        }
    }
}
