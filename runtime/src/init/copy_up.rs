//! Docker's copy-up: an empty volume mounted where the image has files first gets a copy of
//! them — contents, owners, modes, timestamps, xattrs, symlinks (as links), hard links, device
//! nodes and fifos — and the owner and mode of the image's directory itself.
//!
//! Runs in PID 1 before the volume is mounted, from the destination's fd (resolved inside the
//! root, see `mount_in`) into the volume's directory. Every step is relative to a directory fd
//! and never follows a symlink, so nothing in the image can point the copy elsewhere.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::sys::time::TimeSpec;

/// Copies the directory `image` (an fd of the destination in the container's root) into the
/// directory `volume` if the volume is empty; whether it copied.
pub fn copy_if_empty(image: BorrowedFd<'_>, volume: BorrowedFd<'_>) -> io::Result<bool> {
    // A file at the destination: nothing to copy (and the mount says why it cannot go there).
    if !is_dir(&nix::sys::stat::fstat(image.as_raw_fd())?) {
        return Ok(false);
    }
    let src = reopen_dir(image)?;
    let dst = reopen_dir(volume)?;
    if !entries(&dst)?.is_empty() {
        return Ok(false);
    }
    let mut copy = Copy {
        root: dst.try_clone()?,
        links: HashMap::new(),
    };
    copy.children(&src, &dst, Path::new(""))?;
    let st = nix::sys::stat::fstat(src.as_raw_fd())?;
    set_metadata(&src, &dst, c".", &st)?;
    Ok(true)
}

struct Copy {
    /// The volume's directory, for hard links to files copied earlier.
    root: OwnedFd,
    /// (device, inode) of a multiply-linked source file → its copy, relative to `root`.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Copy {
    fn children(&mut self, src: &OwnedFd, dst: &OwnedFd, rel: &Path) -> io::Result<()> {
        for name in entries(src)? {
            let st = nix::sys::stat::fstatat(
                Some(src.as_raw_fd()),
                name.as_c_str(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
            let rel = rel.join(OsStr::from_bytes(name.to_bytes()));
            self.entry(src, dst, &name, &st, &rel)?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        src: &OwnedFd,
        dst: &OwnedFd,
        name: &CStr,
        st: &FileStat,
        rel: &Path,
    ) -> io::Result<()> {
        let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
        if kind != SFlag::S_IFDIR && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                return nix::unistd::linkat(
                    Some(self.root.as_raw_fd()),
                    first.as_path(),
                    Some(dst.as_raw_fd()),
                    Path::new(OsStr::from_bytes(name.to_bytes())),
                    AtFlags::empty(),
                )
                .map_err(Into::into);
            }
            self.links.insert(key, rel.to_path_buf());
        }
        match kind {
            SFlag::S_IFDIR => {
                nix::sys::stat::mkdirat(
                    Some(dst.as_raw_fd()),
                    name,
                    Mode::from_bits_truncate(0o700),
                )?;
                let from = open_at(src, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
                let to = open_at(dst, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
                self.children(&from, &to, rel)?;
            }
            SFlag::S_IFREG => {
                let mut from = File::from(open_at(src, name, OFlag::O_RDONLY)?);
                let fd = nix::fcntl::openat(
                    Some(dst.as_raw_fd()),
                    name,
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )?;
                // SAFETY: openat just returned this fd and nothing else owns it.
                let mut to = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
                io::copy(&mut from, &mut to)?;
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(Some(src.as_raw_fd()), name)?;
                nix::unistd::symlinkat(target.as_os_str(), Some(dst.as_raw_fd()), name)?;
            }
            _ => {
                nix::sys::stat::mknodat(
                    Some(dst.as_raw_fd()),
                    name,
                    kind,
                    Mode::from_bits_truncate(0o600),
                    st.st_rdev,
                )?;
            }
        }
        set_metadata(src, dst, name, st)
    }
}

pub(super) fn is_dir(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// A readable directory fd for what the `O_PATH` fd `fd` names.
pub(super) fn reopen_dir(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    open_at(&fd, c".", OFlag::O_RDONLY | OFlag::O_DIRECTORY)
}

pub(super) fn open_at(dir: &impl AsFd, name: &CStr, flags: OFlag) -> io::Result<OwnedFd> {
    let fd = nix::fcntl::openat(
        Some(dir.as_fd().as_raw_fd()),
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: openat just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The names in a directory, without `.` and `..`.
pub(crate) fn entries(dir: &OwnedFd) -> io::Result<Vec<CString>> {
    let fd = open_at(dir, c".", OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
    let listing = nix::dir::Dir::from_fd(fd.as_raw_fd())?;
    // The Dir owns the fd from here on.
    std::mem::forget(fd);
    let mut names = Vec::new();
    for entry in listing {
        let name = entry?.file_name().to_owned();
        if name.as_bytes() != b"." && name.as_bytes() != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// Gives `dst/name` the owner, mode, xattrs and times of `src/name` (owner before mode, which
/// a chown would clear the setuid bits of; times last, which writing would change).
fn set_metadata(src: &OwnedFd, dst: &OwnedFd, name: &CStr, st: &FileStat) -> io::Result<()> {
    let link = st.st_mode & libc::S_IFMT == libc::S_IFLNK;
    nix::unistd::fchownat(
        Some(dst.as_raw_fd()),
        name,
        Some(nix::unistd::Uid::from_raw(st.st_uid)),
        Some(nix::unistd::Gid::from_raw(st.st_gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    if !link {
        nix::sys::stat::fchmodat(
            Some(dst.as_raw_fd()),
            name,
            Mode::from_bits_truncate(st.st_mode & 0o7777),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )?;
    }
    copy_xattrs(&at_path(src, name), &at_path(dst, name))?;
    nix::sys::stat::utimensat(
        Some(dst.as_raw_fd()),
        name,
        &TimeSpec::new(st.st_atime, st.st_atime_nsec),
        &TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )?;
    Ok(())
}

/// `/proc/self/fd/DIR/NAME`: the entry, for the xattr calls that take only paths.
fn at_path(dir: &OwnedFd, name: &CStr) -> CString {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.to_bytes());
    CString::new(path).expect("a C string's bytes and a number hold no NUL")
}

/// Copies every extended attribute of `src` to `dst` (neither followed if a symlink). A target
/// that cannot hold one (no xattr support, user.* on a symlink) goes without it.
fn copy_xattrs(src: &CStr, dst: &CStr) -> io::Result<()> {
    let names = xattr_call(|buf, len| {
        // SAFETY: `src` is a valid C string; `buf` has room for `len` bytes (or is null with 0).
        unsafe { libc::llistxattr(src.as_ptr(), buf.cast(), len) }
    })?;
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = CString::new(name).expect("split at NUL");
        let value = xattr_call(|buf, len| {
            // SAFETY: both strings are valid; `buf` has room for `len` bytes (or is null with 0).
            unsafe { libc::lgetxattr(src.as_ptr(), name.as_ptr(), buf.cast(), len) }
        })?;
        // SAFETY: both strings are valid and `value` holds `value.len()` bytes.
        let set = unsafe {
            libc::lsetxattr(
                dst.as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if set != 0 {
            let e = io::Error::last_os_error();
            if !matches!(e.raw_os_error(), Some(libc::ENOTSUP | libc::EPERM)) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Calls a `*xattr` function that fills a buffer: first for the size, then for the bytes
/// (again if it grew meanwhile). No xattr support reads as none.
pub(crate) fn xattr_call(call: impl Fn(*mut u8, usize) -> isize) -> io::Result<Vec<u8>> {
    loop {
        let size = call(std::ptr::null_mut(), 0);
        if size < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOTSUP) => Ok(Vec::new()),
                _ => Err(e),
            };
        }
        let mut buf = vec![0u8; size as usize];
        let got = call(buf.as_mut_ptr(), buf.len());
        if got >= 0 {
            buf.truncate(got as usize);
            return Ok(buf);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    fn opath(path: &Path) -> OwnedFd {
        let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).unwrap();
        // SAFETY: open just returned this fd and nothing else owns it.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    #[test]
    fn an_empty_volume_gets_the_tree_with_links_modes_and_times() {
        let dir = tempfile::tempdir().unwrap();
        let (image, volume) = (dir.path().join("image"), dir.path().join("volume"));
        std::fs::create_dir_all(image.join("sub/deeper")).unwrap();
        std::fs::create_dir(&volume).unwrap();
        std::fs::write(image.join("sub/file"), "content").unwrap();
        std::fs::set_permissions(image.join("sub/file"), PermissionsExt::from_mode(0o640)).unwrap();
        std::fs::hard_link(image.join("sub/file"), image.join("hard")).unwrap();
        symlink("/etc/passwd", image.join("link")).unwrap();
        std::fs::set_permissions(&image, PermissionsExt::from_mode(0o750)).unwrap();
        let old = TimeSpec::new(1_000_000, 0);
        nix::sys::stat::utimensat(
            None,
            &image.join("sub"),
            &old,
            &old,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
        let copied = copy_if_empty(opath(&image).as_fd(), opath(&volume).as_fd()).unwrap();
        assert!(copied);
        assert_eq!(
            std::fs::read_to_string(volume.join("sub/file")).unwrap(),
            "content"
        );
        let file = std::fs::metadata(volume.join("sub/file")).unwrap();
        assert_eq!(file.mode() & 0o7777, 0o640);
        assert_eq!(file.nlink(), 2);
        assert_eq!(
            file.ino(),
            std::fs::metadata(volume.join("hard")).unwrap().ino()
        );
        assert_eq!(
            std::fs::read_link(volume.join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert!(volume.join("sub/deeper").is_dir());
        assert_eq!(
            std::fs::metadata(volume.join("sub")).unwrap().mtime(),
            1_000_000
        );
        assert_eq!(std::fs::metadata(&volume).unwrap().mode() & 0o7777, 0o750);
        // A volume with something in it is left alone.
        std::fs::write(image.join("new"), "").unwrap();
        let again = copy_if_empty(opath(&image).as_fd(), opath(&volume).as_fd()).unwrap();
        assert!(!again);
        assert!(!volume.join("new").exists());
    }
}
