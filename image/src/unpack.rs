//! Unpacking one image layer (a tar stream, plain, gzip or zstd) into a directory in the form
//! overlayfs expects of a lower layer.
//!
//! Layers come from registries and archives that Forge does not trust, so nothing here goes
//! through a path string that a layer could redirect. Every entry is created relative to a
//! directory fd: its parent directory is opened with `openat2(RESOLVE_IN_ROOT)` from a fd of the
//! layer directory (symlinks that a layer made are followed as if the layer directory were `/`,
//! the way Docker unpacks inside a chroot, so they can never lead out), and the entry itself is
//! made with `mkdirat`/`openat(O_CREAT|O_EXCL|O_NOFOLLOW)`/`symlinkat`/`linkat`/`mknodat` on that
//! fd and never followed. Names are cleaned lexically first: an absolute name is made relative
//! (as Docker does) and a `..` that would climb above the layer is an error.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{self, FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{self, Gid, Uid, UnlinkatFlags};

/// The prefix of a whiteout entry: `.wh.NAME` deletes NAME of the layers below.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The name (after [`WHITEOUT_PREFIX`]) of the marker that makes its directory opaque.
const OPAQUE_MARKER: &[u8] = b".wh..opq";
/// The xattrs overlayfs reads to know that a directory hides the same directory of lower layers:
/// `trusted.*` normally, `user.*` when mounted with `userxattr` (in a user namespace).
const OPAQUE_XATTRS: [&[u8]; 2] = [b"trusted.overlay.opaque\0", b"user.overlay.opaque\0"];
/// Bytes read from the stream (and written to a file) at a time.
const CHUNK: usize = 128 * 1024;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression of a layer from its OCI or Docker media type; `None` for a type that is
    /// not a layer Forge can unpack.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        let media_type = media_type.split(';').next().unwrap_or_default().trim();
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Self::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Self::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(Self::Zstd),
            _ => None,
        }
    }

    /// The compression of a blob from its first bytes (gzip `1f 8b`, zstd `28 b5 2f fd`,
    /// anything else is taken as a plain tar).
    pub fn sniff(first_bytes: &[u8]) -> Self {
        if first_bytes.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if first_bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::None
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct UnpackOptions {
    /// Create block and character devices found in the layer (they are skipped otherwise).
    pub allow_devices: bool,
}

/// What one unpack did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    /// Archive entries seen (metadata-only headers such as PAX records not counted).
    pub entries: u64,
    /// Bytes of regular-file data written.
    pub bytes: u64,
    /// Whiteouts and opaque markers turned into their overlayfs form.
    pub whiteouts: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("opening layer directory {}: {source}", path.display())]
    Dest {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The stream is not a readable (compressed) tar archive.
    #[error("reading the layer archive{}: {source}", after_entry(.after))]
    Read {
        /// The last entry read before the failure.
        after: Option<String>,
        #[source]
        source: io::Error,
    },
    /// An entry that Forge refuses: it would leave the layer, or it is malformed.
    #[error("layer entry {path:?}: {reason}")]
    Invalid { path: String, reason: String },
    /// A system call failed while writing an entry (disk full, permissions, ...).
    #[error("layer entry {path:?}: {action}: {source}")]
    Io {
        path: String,
        action: String,
        #[source]
        source: io::Error,
    },
}

fn after_entry(after: &Option<String>) -> String {
    after
        .as_ref()
        .map(|path| format!(" after entry {path:?}"))
        .unwrap_or_default()
}

fn invalid(path: &str, reason: impl Into<String>) -> UnpackError {
    UnpackError::Invalid {
        path: path.to_string(),
        reason: reason.into(),
    }
}

fn io_err<E: Into<io::Error>>(path: &str, action: &'static str) -> impl FnOnce(E) -> UnpackError {
    let path = path.to_string();
    move |e| UnpackError::Io {
        path,
        action: action.to_string(),
        source: e.into(),
    }
}

/// Unpacks one layer tar stream into the empty directory `dest`, in the form overlayfs expects
/// of a lower layer:
/// - whiteouts `.wh.NAME` become a character device 0:0 named NAME; an opaque marker
///   `DIR/.wh..wh..opq` sets the xattrs `trusted.overlay.opaque=y` and `user.overlay.opaque=y`
///   (read in user namespaces) on DIR (made if missing);
/// - regular files, directories, symlinks, hard links (to an earlier entry of the same layer),
///   fifos; modes (setuid, sticky ...), ownership, mtimes and xattrs (PAX `SCHILY.xattr.*`, except
///   overlayfs' own `trusted.overlay.*`/`user.overlay.*`, which only whiteouts may set) are kept;
/// - block and character devices only with `opts.allow_devices` (skipped with a warning otherwise);
/// - an entry at a path that an earlier entry used replaces it (a directory stays and takes the
///   new metadata).
///
/// No entry can create or change anything outside `dest`, whatever `..`, absolute names,
/// symlinks or hard links it uses. The stream is read to its end, so a caller that hashes it
/// while it streams sees every byte.
pub fn unpack_layer(
    reader: impl Read,
    compression: Compression,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let root = fcntl::open(
        dest,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Dest {
        path: dest.to_path_buf(),
        source: e.into(),
    })?;
    let root = owned(root);
    match compression {
        Compression::None => unpack_tar(io::BufReader::with_capacity(CHUNK, reader), root, opts),
        Compression::Gzip => unpack_tar(flate2::read::MultiGzDecoder::new(reader), root, opts),
        Compression::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::new(reader).map_err(|source| UnpackError::Read {
                    after: None,
                    source,
                })?;
            unpack_tar(decoder, root, opts)
        }
    }
}

fn unpack_tar<R: Read>(
    stream: R,
    root: OwnedFd,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let mut archive = tar::Archive::new(stream);
    let mut layer = Layer {
        root: Rc::new(root),
        opts,
        cache: None,
        files: HashSet::new(),
        dir_times: Vec::new(),
        buf: vec![0; CHUNK],
        stats: UnpackStats::default(),
    };
    let mut last: Option<String> = None;
    let entries = archive.entries().map_err(|source| UnpackError::Read {
        after: None,
        source,
    })?;
    for entry in entries {
        let mut entry = entry.map_err(|source| UnpackError::Read {
            after: last.take(),
            source,
        })?;
        let raw = entry.path_bytes().into_owned();
        let path = String::from_utf8_lossy(&raw).into_owned();
        layer.entry(&mut entry, &raw, &path)?;
        last = Some(path);
    }
    layer.finish()?;
    // The end-of-archive blocks, the record padding and the compressed stream's trailer.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(|source| UnpackError::Read {
        after: last,
        source,
    })?;
    Ok(layer.stats)
}

/// Takes ownership of a fd that a nix call just returned.
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open call and nothing else owns or closes it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Splits an entry's name into its components: empty and `.` components dropped, `..` applied,
/// a leading `/` ignored. An empty result is the layer's root.
fn normalize(raw: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    let mut components: Vec<Vec<u8>> = Vec::new();
    for component in raw.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                if components.pop().is_none() {
                    return Err("path leaves the layer");
                }
            }
            name => components.push(name.to_vec()),
        }
    }
    Ok(components)
}

/// Parses a PAX time (`1700000000`, `1700000000.123456789`, `-1.5`).
fn parse_pax_time(value: &[u8]) -> Option<TimeSpec> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let nanos: i64 = format!("{:0<9}", &frac[..frac.len().min(9)]).parse().ok()?;
    Some(if !negative {
        TimeSpec::new(secs, nanos)
    } else if nanos == 0 {
        TimeSpec::new(-secs, 0)
    } else {
        TimeSpec::new(-secs - 1, 1_000_000_000 - nanos)
    })
}

/// What an entry says about its file besides its type and data.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    atime: TimeSpec,
    mtime: TimeSpec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

impl Meta {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>, path: &str) -> Result<Self, UnpackError> {
        let header = entry.header();
        let field =
            |what: &'static str| move |e: io::Error| invalid(path, format!("bad {what}: {e}"));
        let mode = header.mode().map_err(field("mode"))? & 0o7777;
        let uid = header.uid().map_err(field("uid"))?;
        let gid = header.gid().map_err(field("gid"))?;
        let mtime = header.mtime().map_err(field("mtime"))?;
        let uid =
            u32::try_from(uid).map_err(|_| invalid(path, format!("uid {uid} is too large")))?;
        let gid =
            u32::try_from(gid).map_err(|_| invalid(path, format!("gid {gid} is too large")))?;
        let mut mtime = TimeSpec::new(i64::try_from(mtime).unwrap_or(i64::MAX), 0);
        let mut atime = None;
        let mut xattrs = Vec::new();
        if let Some(extensions) = entry.pax_extensions().map_err(field("PAX header"))? {
            for extension in extensions {
                let extension = extension.map_err(field("PAX record"))?;
                let key = extension.key_bytes();
                let value = extension.value_bytes();
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
                        tracing::warn!(entry = %path, xattr = %String::from_utf8_lossy(name),
                            "dropping an overlayfs xattr from a layer (only whiteouts may set them)");
                        continue;
                    }
                    let name = CString::new(name).map_err(|_| invalid(path, "bad xattr name"))?;
                    xattrs.push((name, value.to_vec()));
                } else if key == b"mtime" {
                    mtime = parse_pax_time(value).ok_or_else(|| invalid(path, "bad PAX mtime"))?;
                } else if key == b"atime" {
                    atime =
                        Some(parse_pax_time(value).ok_or_else(|| invalid(path, "bad PAX atime"))?);
                }
            }
        }
        Ok(Self {
            mode,
            uid,
            gid,
            atime: atime.unwrap_or(mtime),
            mtime,
            xattrs,
        })
    }

    fn mode(&self) -> Mode {
        Mode::from_bits_truncate(self.mode)
    }

    fn owner(&self) -> (Option<Uid>, Option<Gid>) {
        (Some(Uid::from_raw(self.uid)), Some(Gid::from_raw(self.gid)))
    }
}

/// Sets one xattr; a file system or a file type that does not take it is worth a warning only.
fn set_xattr(result: libc::c_int, name: &CString, path: &str) -> Result<(), UnpackError> {
    if result == 0 {
        return Ok(());
    }
    let errno = Errno::last();
    if matches!(errno, Errno::ENOTSUP | Errno::EPERM) {
        tracing::warn!(entry = %path, xattr = %name.to_string_lossy(), "xattr not kept: {errno}");
        return Ok(());
    }
    Err(UnpackError::Io {
        path: path.to_string(),
        action: format!("setting xattr {}", name.to_string_lossy()),
        source: errno.into(),
    })
}

/// Owner, mode and xattrs through an open fd of a regular file or directory.
fn set_meta_fd(fd: RawFd, meta: &Meta, path: &str) -> Result<(), UnpackError> {
    let (uid, gid) = meta.owner();
    // Owner before mode: chown clears the setuid and setgid bits.
    unistd::fchown(fd, uid, gid).map_err(io_err(path, "setting the owner"))?;
    stat::fchmod(fd, meta.mode()).map_err(io_err(path, "setting the mode"))?;
    for (name, value) in &meta.xattrs {
        // SAFETY: fd is open, name is NUL-terminated and value is valid for value.len() bytes.
        let result =
            unsafe { libc::fsetxattr(fd, name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
        set_xattr(result, name, path)?;
    }
    Ok(())
}

/// Owner, mode, xattrs and times of `name` in directory `dir` without following it (for
/// symlinks, fifos and devices, which cannot be opened to be changed through a fd).
fn set_meta_at(
    dir: RawFd,
    name: &[u8],
    meta: &Meta,
    symlink: bool,
    path: &str,
) -> Result<(), UnpackError> {
    let (uid, gid) = meta.owner();
    unistd::fchownat(Some(dir), name, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(io_err(path, "setting the owner"))?;
    if !symlink {
        // `name` was made by this unpack a moment ago as a fifo or device, not a symlink.
        stat::fchmodat(Some(dir), name, meta.mode(), FchmodatFlags::FollowSymlink)
            .map_err(io_err(path, "setting the mode"))?;
    }
    if !meta.xattrs.is_empty() {
        // The magic link names exactly the directory `dir`; lsetxattr does not follow `name`.
        let mut proc_path = format!("/proc/self/fd/{dir}/").into_bytes();
        proc_path.extend_from_slice(name);
        let proc_path = CString::new(proc_path).map_err(|_| invalid(path, "NUL in name"))?;
        for (xattr, value) in &meta.xattrs {
            // SAFETY: both strings are NUL-terminated and value is valid for value.len() bytes.
            let result = unsafe {
                libc::lsetxattr(
                    proc_path.as_ptr(),
                    xattr.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            };
            set_xattr(result, xattr, path)?;
        }
    }
    stat::utimensat(
        Some(dir),
        name,
        &meta.atime,
        &meta.mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io_err(path, "setting the times"))
}

/// Opens the directory at `components` below `root`, resolving symlinks as if `root` were `/`.
fn open_dir_in(root: RawFd, components: &[Vec<u8>]) -> Result<OwnedFd, Errno> {
    if components.is_empty() {
        return fcntl::openat(
            Some(root),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map(owned);
    }
    let path = components.join(&b'/');
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let mut tries = 0;
    loop {
        match fcntl::openat2(root, path.as_slice(), how) {
            Ok(fd) => return Ok(owned(fd)),
            // A rename elsewhere on the system raced with the lookup: the kernel asks to retry.
            Err(Errno::EAGAIN) if tries < 8 => tries += 1,
            // A kernel before 5.6 (or a seccomp filter that hides openat2): refuse symlinks in
            // parents instead of resolving them.
            Err(Errno::ENOSYS) => return open_dir_nofollow(root, components),
            Err(e) => return Err(e),
        }
    }
}

/// Opens `components` below `root` one at a time, refusing any symlink on the way.
fn open_dir_nofollow(root: RawFd, components: &[Vec<u8>]) -> Result<OwnedFd, Errno> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut current: Option<OwnedFd> = None;
    for name in components {
        let at = current.as_ref().map_or(root, |fd| fd.as_raw_fd());
        current = Some(fcntl::openat(Some(at), name.as_slice(), flags, Mode::empty()).map(owned)?);
    }
    match current {
        Some(fd) => Ok(fd),
        None => fcntl::openat(Some(root), ".", flags, Mode::empty()).map(owned),
    }
}

/// Removes `name` in `dir` and everything below it, never following a symlink.
fn remove_tree(dir: RawFd, name: &[u8]) -> Result<(), Errno> {
    let fd = fcntl::openat(
        Some(dir),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut listing = nix::dir::Dir::from_fd(fd)?;
    let mut children = Vec::new();
    for child in listing.iter() {
        let child = child?;
        let child = child.file_name().to_bytes();
        if child != b"." && child != b".." {
            children.push(child.to_vec());
        }
    }
    let fd = listing.as_raw_fd();
    for child in children {
        match unistd::unlinkat(Some(fd), child.as_slice(), UnlinkatFlags::NoRemoveDir) {
            Err(Errno::EISDIR) => remove_tree(fd, &child)?,
            result => result?,
        }
    }
    drop(listing);
    unistd::unlinkat(Some(dir), name, UnlinkatFlags::RemoveDir)
}

fn is_dir_at(dir: RawFd, name: &[u8]) -> Result<bool, Errno> {
    let st = stat::fstatat(Some(dir), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// The state of one unpack.
struct Layer<'o> {
    root: Rc<OwnedFd>,
    opts: &'o UnpackOptions,
    /// The last parent directory opened, by its components (entries come directory by directory).
    cache: Option<(Vec<Vec<u8>>, Rc<OwnedFd>)>,
    /// Non-directories made by this layer: the only targets hard links may use.
    files: HashSet<Vec<Vec<u8>>>,
    /// Directory times, set at the end (entries written into a directory change its mtime).
    dir_times: Vec<(Vec<Vec<u8>>, TimeSpec, TimeSpec)>,
    buf: Vec<u8>,
    stats: UnpackStats,
}

impl Layer<'_> {
    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
        path: &str,
    ) -> Result<(), UnpackError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        self.stats.entries += 1;
        let components = normalize(raw).map_err(|reason| invalid(path, reason))?;
        let Some((name, parent)) = components.split_last() else {
            // `./` or `/`: the layer's root directory itself.
            if !kind.is_dir() {
                return Err(invalid(path, "the layer's root must be a directory"));
            }
            let meta = Meta::read(entry, path)?;
            set_meta_fd(self.root.as_raw_fd(), &meta, path)?;
            self.dir_times.push((components, meta.atime, meta.mtime));
            return Ok(());
        };
        let name = name.as_slice();
        if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(parent, target, path);
        }
        // Old archives mark directories with a trailing slash on a regular entry.
        let is_dir = kind.is_dir() || (kind.is_file() && raw.ends_with(b"/"));
        if is_dir {
            let meta = Meta::read(entry, path)?;
            self.directory(parent, name, &meta, path)?;
            self.dir_times.push((components, meta.atime, meta.mtime));
        } else if kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse() {
            let meta = Meta::read(entry, path)?;
            self.regular(entry, parent, name, &meta, path)?;
            self.files.insert(components);
        } else if kind.is_symlink() {
            let meta = Meta::read(entry, path)?;
            let target = match entry.link_name_bytes() {
                Some(target) if !target.is_empty() => target.into_owned(),
                _ => return Err(invalid(path, "symlink without a target")),
            };
            let dir = self.parent(parent, path)?;
            let dir = dir.as_raw_fd();
            self.create(dir, name, || {
                unistd::symlinkat(target.as_slice(), Some(dir), name)
            })
            .map_err(io_err(path, "creating the symlink"))?;
            set_meta_at(dir, name, &meta, true, path)?;
            self.files.insert(components);
        } else if kind.is_hard_link() {
            self.hard_link(entry, &components, path)?;
        } else if kind.is_fifo() {
            let meta = Meta::read(entry, path)?;
            self.node(parent, name, SFlag::S_IFIFO, 0, &meta, path)?;
            self.files.insert(components);
        } else if kind.is_character_special() || kind.is_block_special() {
            if !self.opts.allow_devices {
                tracing::warn!(entry = %path, "skipping a device node (layers may only create them when allowed)");
                return Ok(());
            }
            let header = entry.header();
            let major = header.device_major();
            let minor = header.device_minor();
            let (major, minor) = match (major, minor) {
                (Ok(Some(major)), Ok(Some(minor))) => (major, minor),
                _ => return Err(invalid(path, "bad device numbers")),
            };
            let meta = Meta::read(entry, path)?;
            let kind = if kind.is_character_special() {
                SFlag::S_IFCHR
            } else {
                SFlag::S_IFBLK
            };
            let dev = stat::makedev(major.into(), minor.into());
            self.node(parent, name, kind, dev, &meta, path)?;
            self.files.insert(components);
        } else {
            return Err(invalid(
                path,
                format!("unsupported entry type {:?}", kind.as_byte() as char),
            ));
        }
        Ok(())
    }

    /// The directory `components` below the root, made (mode 0755) where missing.
    fn parent(&mut self, components: &[Vec<u8>], path: &str) -> Result<Rc<OwnedFd>, UnpackError> {
        if components.is_empty() {
            return Ok(self.root.clone());
        }
        if let Some((cached, fd)) = &self.cache {
            if cached.as_slice() == components {
                return Ok(fd.clone());
            }
        }
        let fd = Rc::new(self.make_dirs(components).map_err(io_err(
            path,
            "opening its parent directory inside the layer",
        ))?);
        self.cache = Some((components.to_vec(), fd.clone()));
        Ok(fd)
    }

    fn make_dirs(&self, components: &[Vec<u8>]) -> Result<OwnedFd, Errno> {
        let root = self.root.as_raw_fd();
        match open_dir_in(root, components) {
            Err(Errno::ENOENT) => {}
            result => return result,
        }
        let mut current: Option<OwnedFd> = None;
        for (i, name) in components.iter().enumerate() {
            let fd = match open_dir_in(root, &components[..=i]) {
                Err(Errno::ENOENT) => {
                    let at = current.as_ref().map_or(root, |fd| fd.as_raw_fd());
                    match stat::mkdirat(Some(at), name.as_slice(), Mode::from_bits_truncate(0o755))
                    {
                        Ok(()) => {
                            let fd = fcntl::openat(
                                Some(at),
                                name.as_slice(),
                                OFlag::O_RDONLY
                                    | OFlag::O_DIRECTORY
                                    | OFlag::O_NOFOLLOW
                                    | OFlag::O_CLOEXEC,
                                Mode::empty(),
                            )
                            .map(owned)?;
                            // Independent of the process umask.
                            stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(0o755))?;
                            fd
                        }
                        // The name exists but does not resolve: a dangling symlink.
                        Err(Errno::EEXIST) => return Err(Errno::ENOENT),
                        Err(e) => return Err(e),
                    }
                }
                result => result?,
            };
            current = Some(fd);
        }
        Ok(current.expect("components is not empty"))
    }

    /// Runs `create`; if `name` already exists, removes it (a whole tree for a directory) and
    /// runs `create` again.
    fn create<T>(
        &mut self,
        dir: RawFd,
        name: &[u8],
        mut create: impl FnMut() -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        match create() {
            Err(Errno::EEXIST) => {
                self.remove(dir, name)?;
                create()
            }
            result => result,
        }
    }

    fn remove(&mut self, dir: RawFd, name: &[u8]) -> Result<(), Errno> {
        // A removed directory or symlink can change what a cached path resolves to.
        self.cache = None;
        match unistd::unlinkat(Some(dir), name, UnlinkatFlags::NoRemoveDir) {
            Err(Errno::EISDIR) => remove_tree(dir, name),
            result => result,
        }
    }

    fn directory(
        &mut self,
        parent: &[Vec<u8>],
        name: &[u8],
        meta: &Meta,
        path: &str,
    ) -> Result<(), UnpackError> {
        let dir = self.parent(parent, path)?;
        let dir = dir.as_raw_fd();
        let mkdir = || stat::mkdirat(Some(dir), name, Mode::from_bits_truncate(0o700));
        match mkdir() {
            Err(Errno::EEXIST) if !is_dir_at(dir, name).map_err(io_err(path, "inspecting"))? => {
                self.remove(dir, name)
                    .and_then(|()| mkdir())
                    .map_err(io_err(path, "replacing it with a directory"))?;
            }
            // An existing directory stays and takes this entry's metadata.
            Err(Errno::EEXIST) => {}
            result => result.map_err(io_err(path, "creating the directory"))?,
        }
        let fd = fcntl::openat(
            Some(dir),
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map(owned)
        .map_err(io_err(path, "opening the directory"))?;
        set_meta_fd(fd.as_raw_fd(), meta, path)
    }

    fn regular<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        parent: &[Vec<u8>],
        name: &[u8],
        meta: &Meta,
        path: &str,
    ) -> Result<(), UnpackError> {
        let dir = self.parent(parent, path)?;
        let dir = dir.as_raw_fd();
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = self
            .create(dir, name, || {
                fcntl::openat(Some(dir), name, flags, Mode::from_bits_truncate(0o600))
            })
            .map_err(io_err(path, "creating the file"))?;
        let mut file = File::from(owned(fd));
        let size = entry.size();
        let mut written = 0;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(path, "reading its data")(e)),
            };
            file.write_all(&self.buf[..n])
                .map_err(io_err(path, "writing its data"))?;
            written += n as u64;
        }
        self.stats.bytes += written;
        if written != size {
            return Err(invalid(
                path,
                format!("the archive ends after {written} of its {size} bytes"),
            ));
        }
        set_meta_fd(file.as_raw_fd(), meta, path)?;
        stat::futimens(file.as_raw_fd(), &meta.atime, &meta.mtime)
            .map_err(io_err(path, "setting the times"))
    }

    fn hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        components: &[Vec<u8>],
        path: &str,
    ) -> Result<(), UnpackError> {
        let target = match entry.link_name_bytes() {
            Some(target) if !target.is_empty() => target.into_owned(),
            _ => return Err(invalid(path, "hard link without a target")),
        };
        let shown = String::from_utf8_lossy(&target).into_owned();
        let target = normalize(&target)
            .map_err(|reason| invalid(path, format!("hard link target {shown:?}: {reason}")))?;
        if !self.files.contains(&target) {
            return Err(invalid(
                path,
                format!("hard link target {shown:?} is not an earlier file of this layer"),
            ));
        }
        if target == components {
            return Ok(());
        }
        let (name, parent) = components
            .split_last()
            .expect("the root is not a hard link");
        let (target_name, target_parent) = target.split_last().expect("files are not the root");
        let dir = self.parent(parent, path)?;
        let dir = dir.as_raw_fd();
        // Removing an existing `name` first may drop the cached parent; hold the target's after.
        match unistd::unlinkat(Some(dir), name.as_slice(), UnlinkatFlags::NoRemoveDir) {
            Err(Errno::ENOENT) => {}
            Err(Errno::EISDIR) => {
                self.cache = None;
                remove_tree(dir, name).map_err(io_err(path, "replacing an existing entry"))?;
            }
            result => {
                self.cache = None;
                result.map_err(io_err(path, "replacing an existing entry"))?;
            }
        }
        let target_dir = self.parent(target_parent, path)?;
        // No AT_SYMLINK_FOLLOW: a symlink target is linked itself, never what it points to.
        unistd::linkat(
            Some(target_dir.as_raw_fd()),
            target_name.as_slice(),
            Some(dir),
            name.as_slice(),
            AtFlags::empty(),
        )
        .map_err(io_err(path, "creating the hard link"))?;
        self.files.insert(components.to_vec());
        Ok(())
    }

    fn node(
        &mut self,
        parent: &[Vec<u8>],
        name: &[u8],
        kind: SFlag,
        dev: libc::dev_t,
        meta: &Meta,
        path: &str,
    ) -> Result<(), UnpackError> {
        let dir = self.parent(parent, path)?;
        let dir = dir.as_raw_fd();
        self.create(dir, name, || {
            stat::mknodat(Some(dir), name, kind, Mode::from_bits_truncate(0o600), dev)
        })
        .map_err(io_err(path, "creating the node"))?;
        set_meta_at(dir, name, meta, false, path)
    }

    fn whiteout(
        &mut self,
        parent: &[Vec<u8>],
        target: &[u8],
        path: &str,
    ) -> Result<(), UnpackError> {
        if target == OPAQUE_MARKER {
            let dir = self.parent(parent, path)?;
            let value = b"y";
            for xattr in OPAQUE_XATTRS {
                // SAFETY: dir is an open directory, the name is NUL-terminated and value is
                // valid for its length.
                let result = unsafe {
                    libc::fsetxattr(
                        dir.as_raw_fd(),
                        xattr.as_ptr().cast(),
                        value.as_ptr().cast(),
                        value.len(),
                        0,
                    )
                };
                if result != 0 {
                    return Err(io_err(path, "marking the directory opaque")(Errno::last()));
                }
            }
            self.stats.whiteouts += 1;
            return Ok(());
        }
        if target.starts_with(WHITEOUT_PREFIX) {
            // Other `.wh..wh.*` names are AUFS bookkeeping with no meaning for overlayfs.
            tracing::debug!(entry = %path, "skipping AUFS metadata");
            return Ok(());
        }
        if matches!(target, b"" | b"." | b"..") {
            return Err(invalid(path, "whiteout of no file"));
        }
        let dir = self.parent(parent, path)?;
        let dir = dir.as_raw_fd();
        self.create(dir, target, || {
            stat::mknodat(
                Some(dir),
                target,
                SFlag::S_IFCHR,
                Mode::empty(),
                stat::makedev(0, 0),
            )
        })
        .map_err(io_err(path, "creating the whiteout"))?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    /// Sets the directories' times, now that nothing more is written into them.
    fn finish(&mut self) -> Result<(), UnpackError> {
        let root = self.root.as_raw_fd();
        for (components, atime, mtime) in std::mem::take(&mut self.dir_times) {
            let shown = String::from_utf8_lossy(&components.join(&b'/')).into_owned();
            let Some((name, parent)) = components.split_last() else {
                stat::futimens(root, &atime, &mtime)
                    .map_err(io_err(&shown, "setting the times"))?;
                continue;
            };
            let dir = match open_dir_in(root, parent) {
                Ok(dir) => dir,
                // A later entry replaced it: its times went with it.
                Err(Errno::ENOENT | Errno::ENOTDIR) => continue,
                Err(e) => {
                    return Err(io_err(
                        &shown,
                        "opening its parent directory inside the layer",
                    )(e))
                }
            };
            match stat::utimensat(
                Some(dir.as_raw_fd()),
                name.as_slice(),
                &atime,
                &mtime,
                UtimensatFlags::NoFollowSymlink,
            ) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(io_err(&shown, "setting the times")(e)),
            }
        }
        Ok(())
    }
}

/// The layer builder and sandbox that `tests/unpack.rs` uses too (the tests that unpack as root
/// are there).
#[cfg(test)]
#[path = "../tests/common/layer.rs"]
mod test_layer;

#[cfg(test)]
mod tests {
    use super::test_layer::{header, Layer, Sandbox};
    use super::*;
    use tar::EntryType;

    #[test]
    fn media_types_and_magic() {
        use Compression::*;
        let oci = "application/vnd.oci.image.layer.v1.tar";
        assert_eq!(Compression::from_media_type(oci), Some(None));
        assert_eq!(
            Compression::from_media_type(&format!("{oci}+gzip")),
            Some(Gzip)
        );
        assert_eq!(
            Compression::from_media_type(&format!("{oci}+zstd")),
            Some(Zstd)
        );
        let docker = "application/vnd.docker.image.rootfs.diff.tar.gzip";
        assert_eq!(Compression::from_media_type(docker), Some(Gzip));
        assert_eq!(
            Compression::from_media_type("application/vnd.docker.image.rootfs.diff.tar"),
            Some(None)
        );
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.config.v1+json"),
            Option::None
        );
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Gzip);
        assert_eq!(Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Zstd);
        assert_eq!(Compression::sniff(b"etc/"), None);
        assert_eq!(Compression::sniff(b""), None);
    }

    #[test]
    fn pax_times_parse() {
        assert_eq!(parse_pax_time(b"12"), Some(TimeSpec::new(12, 0)));
        assert_eq!(
            parse_pax_time(b"12.5"),
            Some(TimeSpec::new(12, 500_000_000))
        );
        assert_eq!(
            parse_pax_time(b"12.1234567891"),
            Some(TimeSpec::new(12, 123_456_789))
        );
        assert_eq!(
            parse_pax_time(b"-1.5"),
            Some(TimeSpec::new(-2, 500_000_000))
        );
        assert_eq!(parse_pax_time(b"x"), Option::None);
        assert_eq!(parse_pax_time(b"1.x"), Option::None);
    }

    #[test]
    fn hostile_dot_dot_is_refused() {
        let sandbox = Sandbox::new();
        for name in ["../x", "../../x", "a/../../x", "./../outside/x"] {
            let h = header(EntryType::Regular, name.as_bytes(), b"", 0o644, 1);
            let bytes = Layer::new().raw(h, b"x").bytes();
            let err = sandbox.unpack(&bytes).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("layer entry {name:?}: path leaves the layer")
            );
            sandbox.check();
        }
    }
}
