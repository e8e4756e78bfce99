//! Packs a tree of a [`Root`] into a tar stream, as `docker cp` archives a source: modes,
//! owners (as the root's user sees them), nanosecond times (PAX `mtime`/`atime`), xattrs (PAX
//! `SCHILY.xattr.*`), symlinks as symlinks, hard links within the tree, device nodes and fifos
//! as nodes (never their contents).
//!
//! The walk goes from directory fd to directory fd with `O_NOFOLLOW`, and a regular file is
//! opened `O_NONBLOCK` and checked to be the regular file that was listed: a process in the
//! container swapping an entry for a symlink, a fifo or a device node cannot make the copy read
//! anything but the container's own regular files.

use std::collections::HashMap;
use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode};
use tar::{EntryType, Header};

use super::plan::Source;
use super::root::{c_name, check_not_kernel_fs, Root};
use crate::init::copy_up::{entries, xattr_call};

/// Writes the archive of `src` (found in `root`) to `out`, its top entry named `top`
/// (`.` for a directory's contents), and ends the archive.
pub fn pack(root: &Root, src: &Source, top: &str, out: impl Write) -> io::Result<()> {
    let parent = root.open(&src.dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, true)?;
    check_not_kernel_fs(std::os::fd::AsFd::as_fd(&parent))?;
    let mut packer = Packer {
        root,
        tar: tar::Builder::new(out),
        links: HashMap::new(),
    };
    if src.base == "." {
        let st = nix::sys::stat::fstat(parent.as_raw_fd())?;
        packer.dir(&parent, &st, top)?;
    } else {
        let name = c_name(OsStr::new(&src.base))?;
        let st = nix::sys::stat::fstatat(
            Some(parent.as_raw_fd()),
            name.as_c_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        packer.entry(&parent, &name, &st, top)?;
    }
    packer.tar.finish()
}

struct Packer<'a, W: Write> {
    root: &'a Root,
    tar: tar::Builder<W>,
    /// (device, inode) of a multiply-linked file already archived → its name there.
    links: HashMap<(u64, u64), String>,
}

impl<W: Write> Packer<'_, W> {
    fn entry(
        &mut self,
        parent: &OwnedFd,
        name: &CStr,
        st: &FileStat,
        as_name: &str,
    ) -> io::Result<()> {
        let kind = st.st_mode & libc::S_IFMT;
        if kind != libc::S_IFDIR && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key).cloned() {
                let mut h = self.header(st, EntryType::Link);
                return self.tar.append_link(&mut h, as_name, first);
            }
            self.links.insert(key, as_name.to_string());
        }
        match kind {
            libc::S_IFDIR => match open_at(parent, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
                Ok(dir) => self.dir(&dir, st, as_name),
                // Removed while we walk (a live container): as docker, leave it out.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
                Err(e) => Err(e),
            },
            libc::S_IFREG => self.file(parent, name, st, as_name),
            libc::S_IFLNK => {
                let target = nix::fcntl::readlinkat(Some(parent.as_raw_fd()), name)?;
                let mut h = self.header(st, EntryType::Symlink);
                self.tar.append_link(&mut h, as_name, target)
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                let kind = match kind {
                    libc::S_IFCHR => EntryType::Char,
                    libc::S_IFBLK => EntryType::Block,
                    _ => EntryType::Fifo,
                };
                let mut h = self.header(st, kind);
                if kind != EntryType::Fifo {
                    h.set_device_major(libc::major(st.st_rdev))?;
                    h.set_device_minor(libc::minor(st.st_rdev))?;
                }
                self.tar.append_data(&mut h, as_name, io::empty())
            }
            // Sockets cannot be archived (docker skips them too).
            _ => Ok(()),
        }
    }

    fn dir(&mut self, dir: &OwnedFd, st: &FileStat, as_name: &str) -> io::Result<()> {
        self.extensions(st, Some(dir))?;
        let mut h = self.header(st, EntryType::Directory);
        self.tar
            .append_data(&mut h, format!("{as_name}/"), io::empty())?;
        // A running container's /proc and /sys are the kernel's, not files: their mount
        // points are archived empty, as in the image.
        if check_not_kernel_fs(std::os::fd::AsFd::as_fd(dir)).is_err() {
            return Ok(());
        }
        let mut names = entries(dir)?;
        names.sort();
        for name in names {
            let st = match nix::sys::stat::fstatat(
                Some(dir.as_raw_fd()),
                name.as_c_str(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(st) => st,
                // Removed while we walk (a live container): as docker, leave it out.
                Err(nix::errno::Errno::ENOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            let child = format!(
                "{as_name}/{}",
                OsStr::from_bytes(name.to_bytes()).to_string_lossy()
            );
            self.entry(dir, &name, &st, &child)?;
        }
        Ok(())
    }

    fn file(
        &mut self,
        parent: &OwnedFd,
        name: &CStr,
        listed: &FileStat,
        as_name: &str,
    ) -> io::Result<()> {
        let fd = open_at(parent, name, OFlag::O_RDONLY | OFlag::O_NONBLOCK)?;
        let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG
            || (st.st_dev, st.st_ino) != (listed.st_dev, listed.st_ino)
        {
            return Err(io::Error::other(format!(
                "{as_name} changed while it was copied"
            )));
        }
        self.extensions(&st, Some(&fd))?;
        let mut h = self.header(&st, EntryType::Regular);
        h.set_size(st.st_size as u64);
        // Exactly the size in the header, even if the file shrinks or grows meanwhile.
        let body = File::from(fd)
            .take(st.st_size as u64)
            .chain(io::repeat(0))
            .take(st.st_size as u64);
        self.tar.append_data(&mut h, as_name, body)
    }

    /// A GNU header (long names and links) with what `st` says.
    fn header(&self, st: &FileStat, kind: EntryType) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(u64::from(self.root.uid_out(st.st_uid)));
        h.set_gid(u64::from(self.root.gid_out(st.st_gid)));
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        h
    }

    /// The PAX record before an entry: nanosecond times and the xattrs of `fd`.
    fn extensions(&mut self, st: &FileStat, fd: Option<&OwnedFd>) -> io::Result<()> {
        let mut records: Vec<(String, Vec<u8>)> = vec![
            (
                "mtime".into(),
                time(st.st_mtime, st.st_mtime_nsec).into_bytes(),
            ),
            (
                "atime".into(),
                time(st.st_atime, st.st_atime_nsec).into_bytes(),
            ),
        ];
        if let Some(fd) = fd {
            for (name, value) in xattrs(fd)? {
                records.push((format!("SCHILY.xattr.{name}"), value));
            }
        }
        self.tar
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }
}

/// `SECS.NANOS` as PAX writes times.
fn time(secs: i64, nanos: i64) -> String {
    format!("{secs}.{nanos:09}")
}

fn open_at(dir: &OwnedFd, name: &CStr, flags: OFlag) -> io::Result<OwnedFd> {
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: openat just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Every extended attribute of the open file `fd`, as (name, value).
pub fn xattrs(fd: &OwnedFd) -> io::Result<Vec<(String, Vec<u8>)>> {
    let raw = fd.as_raw_fd();
    let names = xattr_call(|buf, len| {
        // SAFETY: `buf` has room for `len` bytes (or is null with 0); `raw` is an open fd.
        unsafe { libc::flistxattr(raw, buf.cast(), len) }
    })?;
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let c = std::ffi::CString::new(name).expect("split at NUL");
        let value = xattr_call(|buf, len| {
            // SAFETY: `c` is a valid C string; `buf` has room for `len` bytes (or is null with 0).
            unsafe { libc::fgetxattr(raw, c.as_ptr(), buf.cast(), len) }
        })?;
        out.push((String::from_utf8_lossy(name).into_owned(), value));
    }
    Ok(out)
}
