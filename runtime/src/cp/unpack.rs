//! Extracts a tar stream into a directory of a [`Root`], as `docker cp` does: modes,
//! nanosecond times, xattrs, symlinks and hard links kept; owners as [`Owners`] says; a
//! directory never replaced by a file nor a file by a directory (docker's
//! `NoOverwriteDirNonDir`); an existing file replaced by unlinking it and creating a new one
//! (`O_CREAT | O_EXCL | O_NOFOLLOW`), so a device node, fifo or symlink planted there is never
//! opened or followed.
//!
//! Every entry's directory is looked up in the root (`openat2(RESOLVE_IN_ROOT)`) and the entry is
//! made relative to that fd; entries naming `..` are refused, and a symlink the archive (or the
//! container, racing) put on the way resolves inside the root. Directories' times are set last,
//! once nothing more is made in them.

use std::ffi::{CStr, CString, OsStr};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;
use tar::EntryType;

use super::root::{c_name, check_not_kernel_fs, Root};

/// Who owns what is extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owners {
    /// Whoever extracts (docker's copy out: the caller).
    Caller,
    /// The root's user `(uid, gid)` (docker's copy in: the container's root).
    Fixed(u32, u32),
    /// As the archive says, in the root's IDs (`-a`).
    Archive,
}

/// What an entry's metadata is, in host IDs.
struct Meta {
    mode: u32,
    owner: Option<(u32, u32)>,
    mtime: TimeSpec,
    atime: TimeSpec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

/// Extracts `input` into the existing directory `dir` of `root`.
pub fn unpack(root: &Root, dir: &Path, input: impl Read, owners: Owners) -> io::Result<()> {
    let _acting = root.act_as_root()?;
    let top = root.open(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, true)?;
    check_not_kernel_fs(top.as_fd())?;
    drop(top);
    let mut archive = tar::Archive::new(input);
    let mut dirs: Vec<(PathBuf, Meta)> = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let names = parts(&entry.path_bytes())?;
        let meta = meta(root, &mut entry, owners)?;
        let kind = entry.header().entry_type();
        let Some((name, parents)) = names.split_last() else {
            // `./`: the destination directory itself.
            if kind == EntryType::Directory {
                dirs.push((dir.to_path_buf(), meta));
            }
            continue;
        };
        let parent_path = parents.iter().fold(dir.to_path_buf(), |p, c| p.join(c));
        let parent = open_dir(root, &parent_path)?;
        check_not_kernel_fs(parent.as_fd())?;
        let shown = parent_path.join(name);
        let name = c_name(OsStr::new(name))?;
        let existing = nix::sys::stat::fstatat(
            Some(parent.as_raw_fd()),
            name.as_c_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ok()
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
        let make_room = || -> io::Result<()> {
            match existing {
                Some(true) => Err(io::Error::other(format!(
                    "cannot overwrite directory {} with non-directory",
                    shown.display()
                ))),
                Some(false) => Ok(nix::unistd::unlinkat(
                    Some(parent.as_raw_fd()),
                    name.as_c_str(),
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                )?),
                None => Ok(()),
            }
        };
        match kind {
            EntryType::Directory => {
                match existing {
                    Some(true) => {}
                    Some(false) => {
                        return Err(io::Error::other(format!(
                            "cannot overwrite non-directory {} with directory",
                            shown.display()
                        )))
                    }
                    None => nix::sys::stat::mkdirat(
                        Some(parent.as_raw_fd()),
                        name.as_c_str(),
                        Mode::from_bits_truncate(0o700),
                    )?,
                }
                dirs.push((shown, meta));
            }
            EntryType::Regular | EntryType::Continuous => {
                make_room()?;
                let fd = create(&parent, &name)?;
                let mut file = std::fs::File::from(fd);
                io::copy(&mut entry, &mut file)?;
                apply_fd(&OwnedFd::from(file), &meta)?;
            }
            EntryType::Symlink => {
                make_room()?;
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| io::Error::other("symlink without a target"))?;
                let target = c_name(OsStr::from_bytes(&target))?;
                nix::unistd::symlinkat(
                    target.as_c_str(),
                    Some(parent.as_raw_fd()),
                    name.as_c_str(),
                )?;
                if let Some((uid, gid)) = meta.owner {
                    chown_at(&parent, &name, uid, gid)?;
                }
                nix::sys::stat::utimensat(
                    Some(parent.as_raw_fd()),
                    name.as_c_str(),
                    &meta.atime,
                    &meta.mtime,
                    nix::sys::stat::UtimensatFlags::NoFollowSymlink,
                )?;
            }
            EntryType::Link => {
                make_room()?;
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| io::Error::other("hard link without a target"))?;
                let rel: PathBuf = parts(&target)?.iter().collect();
                let first = root.open(&dir.join(rel), OFlag::O_PATH, false)?;
                nix::unistd::linkat(
                    Some(first.as_raw_fd()),
                    c"",
                    Some(parent.as_raw_fd()),
                    name.as_c_str(),
                    AtFlags::AT_EMPTY_PATH,
                )?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                make_room()?;
                let (kind, dev) = match kind {
                    EntryType::Char => (SFlag::S_IFCHR, device(&entry)?),
                    EntryType::Block => (SFlag::S_IFBLK, device(&entry)?),
                    _ => (SFlag::S_IFIFO, 0),
                };
                nix::sys::stat::mknodat(
                    Some(parent.as_raw_fd()),
                    name.as_c_str(),
                    kind,
                    Mode::from_bits_truncate(0o600),
                    dev,
                )?;
                let node = super::root::open_in(
                    parent.as_fd(),
                    Path::new(OsStr::from_bytes(name.to_bytes())),
                    OFlag::O_PATH,
                    false,
                )?;
                apply_path(&node, &meta)?;
            }
            // PAX and GNU long-name records are read by the tar crate; others are skipped.
            _ => {}
        }
    }
    // Deepest first, so that setting a directory's times is the last change to it.
    for (path, meta) in dirs.iter().rev() {
        let fd = root.open(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY, false)?;
        apply_fd(&fd, meta)?;
    }
    Ok(())
}

/// The normal components of an entry name; `..` is refused, `.` and `/` dropped.
fn parts(name: &[u8]) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for part in name.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                return Err(io::Error::other(format!(
                    "archive entry {:?} leaves the destination",
                    String::from_utf8_lossy(name)
                )))
            }
            p => out.push(String::from_utf8_lossy(p).into_owned()),
        }
    }
    Ok(out)
}

/// Opens directory `path` of the root, making what is missing (as docker's `MkdirAll`).
fn open_dir(root: &Root, path: &Path) -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
    match root.open(path, flags, true) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            let parent = path.parent().unwrap_or(Path::new("/"));
            let fd = open_dir(root, parent)?;
            let name = c_name(path.file_name().unwrap_or_default())?;
            match nix::sys::stat::mkdirat(
                Some(fd.as_raw_fd()),
                name.as_c_str(),
                Mode::from_bits_truncate(0o755),
            ) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => root.open(path, flags, true),
                Err(e) => Err(e.into()),
            }
        }
        other => other,
    }
}

fn create(dir: &OwnedFd, name: &CStr) -> io::Result<OwnedFd> {
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )?;
    // SAFETY: openat just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn device<R: Read>(entry: &tar::Entry<'_, R>) -> io::Result<libc::dev_t> {
    let major = entry.header().device_major()?.unwrap_or(0);
    let minor = entry.header().device_minor()?.unwrap_or(0);
    Ok(libc::makedev(major, minor))
}

fn chown_at(dir: &OwnedFd, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    nix::unistd::fchownat(
        Some(dir.as_raw_fd()),
        name,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

/// The entry's metadata: PAX times and xattrs over the header's, owners per `owners`.
fn meta<R: Read>(root: &Root, entry: &mut tar::Entry<'_, R>, owners: Owners) -> io::Result<Meta> {
    let h = entry.header();
    let secs = h.mtime().unwrap_or(0) as i64;
    let mode = h.mode()? & 0o7777;
    let owner = match owners {
        Owners::Caller => None,
        Owners::Fixed(uid, gid) => Some((uid, gid)),
        Owners::Archive => Some((root.uid_in(h.uid()? as u32), root.gid_in(h.gid()? as u32))),
    };
    let mut meta = Meta {
        mode,
        owner,
        mtime: TimeSpec::new(secs, 0),
        atime: TimeSpec::new(secs, 0),
        xattrs: Vec::new(),
    };
    let mut atime = None;
    if let Some(pax) = entry.pax_extensions()? {
        for ext in pax {
            let ext = ext?;
            let key = ext.key().unwrap_or_default();
            if key == "mtime" {
                meta.mtime = parse_time(ext.value_bytes()).unwrap_or(meta.mtime);
            } else if key == "atime" {
                atime = parse_time(ext.value_bytes());
            } else if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                meta.xattrs
                    .push((c_name(OsStr::new(name))?, ext.value_bytes().to_vec()));
            }
        }
    }
    meta.atime = atime.unwrap_or(meta.mtime);
    Ok(meta)
}

/// PAX's `SECS[.FRACTION]`.
fn parse_time(value: &[u8]) -> Option<TimeSpec> {
    let text = std::str::from_utf8(value).ok()?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    Some(TimeSpec::new(secs.parse().ok()?, digits.parse().ok()?))
}

/// Owner, then mode (a chown clears setuid bits), then xattrs (security.capability too is
/// cleared by a chown), then times, all on the open fd.
fn apply_fd(fd: &OwnedFd, meta: &Meta) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    if let Some((uid, gid)) = meta.owner {
        nix::unistd::fchown(
            raw,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )?;
    }
    nix::sys::stat::fchmod(raw, Mode::from_bits_truncate(meta.mode))?;
    for (name, value) in &meta.xattrs {
        // SAFETY: `name` is a valid C string and `value` holds `value.len()` bytes.
        let set =
            unsafe { libc::fsetxattr(raw, name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
        if set != 0 {
            let e = io::Error::last_os_error();
            if !matches!(e.raw_os_error(), Some(libc::ENOTSUP | libc::EPERM)) {
                return Err(e);
            }
        }
    }
    nix::sys::stat::futimens(raw, &meta.atime, &meta.mtime)?;
    Ok(())
}

/// [`apply_fd`] for an `O_PATH` fd of a device node or fifo, which must not be opened: through
/// `/proc/self/fd/N`, which names exactly that inode.
fn apply_path(node: &OwnedFd, meta: &Meta) -> io::Result<()> {
    let path = PathBuf::from(format!("/proc/self/fd/{}", node.as_raw_fd()));
    if let Some((uid, gid)) = meta.owner {
        nix::unistd::fchownat(
            Some(node.as_raw_fd()),
            "",
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
            AtFlags::AT_EMPTY_PATH,
        )?;
    }
    nix::sys::stat::fchmodat(
        None,
        &path,
        Mode::from_bits_truncate(meta.mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )?;
    nix::sys::stat::utimensat(
        None,
        &path,
        &meta.atime,
        &meta.mtime,
        nix::sys::stat::UtimensatFlags::FollowSymlink,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_are_cleaned_and_dotdot_is_refused() {
        assert_eq!(parts(b"./a//b/").unwrap(), ["a", "b"]);
        assert!(parts(b"./").unwrap().is_empty());
        assert!(parts(b"a/../../etc").is_err());
    }

    #[test]
    fn pax_times_keep_nanoseconds() {
        assert_eq!(parse_time(b"12.5"), Some(TimeSpec::new(12, 500_000_000)));
        assert_eq!(parse_time(b"7"), Some(TimeSpec::new(7, 0)));
    }
}
