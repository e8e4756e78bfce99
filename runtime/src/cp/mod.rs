//! The copy engine behind `forge cp`: `docker cp`'s rules between two [`Root`]s, or between a
//! root and a tar stream.
//!
//! [`source`] and [`dest`] look the user's paths up in their roots (as moby's
//! `CopyInfoSourcePath` and `CopyInfoDestinationPath` do), [`plan::prepare`] decides where the
//! archive goes, and the tree is packed ([`pack`]) on one thread while it is unpacked
//! ([`unpack`]) on the other. Nothing is written before every lookup and the plan have
//! succeeded, so bad input leaves nothing behind.
//!
//! # Caveats
//!
//! A tar stream that breaks off in the middle leaves what was extracted until then, as
//! `docker cp` does.

pub mod pack;
pub mod plan;
pub mod root;
pub mod stopped;
pub mod unpack;

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

pub use plan::{Dest, Plan, PlanError, Source};
pub use root::Root;
pub use unpack::Owners;

/// How many symlinks at the end of a path are followed (docker's limit).
const MAX_LINKS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// `at` is `CONTAINER:PATH`, or the host's path alone.
    #[error("no such file or directory: {at}")]
    NotFound { at: String },
    #[error("not a directory: {at}")]
    NotADirectory { at: String },
    #[error("too many levels of symbolic links: {at}")]
    TooManyLinks { at: String },
    #[error("{source}{}", in_place(.place))]
    Plan {
        place: String,
        #[source]
        source: PlanError,
    },
    #[error("destination {at} must be a directory")]
    StreamNeedsDir { at: String },
    #[error("{what} {at}: {source}")]
    Io {
        what: &'static str,
        at: String,
        #[source]
        source: io::Error,
    },
}

impl CopyError {
    /// Whether the user asked for something that cannot be (a missing path, a directory onto a
    /// file), rather than the copy failing on the way.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }
}

fn in_place(place: &str) -> String {
    if place.is_empty() {
        String::new()
    } else {
        format!(" (in container {place})")
    }
}

/// `CONTAINER:PATH`, or `PATH` on the host (`place` empty).
fn at(place: &str, path: &str) -> String {
    if place.is_empty() {
        path.to_string()
    } else {
        format!("{place}:{path}")
    }
}

fn io_err(what: &'static str, place: &str, path: &Path) -> impl FnOnce(io::Error) -> CopyError {
    let at = at(place, &path.display().to_string());
    move |source| CopyError::Io { what, at, source }
}

/// A missing path, or the error looking it up.
fn lookup_err(place: &str, shown: &str, e: io::Error) -> CopyError {
    let at = at(place, shown);
    match e.raw_os_error() {
        Some(libc::ENOENT) => CopyError::NotFound { at },
        Some(libc::ENOTDIR) => CopyError::NotADirectory { at },
        Some(libc::ELOOP) => CopyError::TooManyLinks { at },
        _ => CopyError::Io {
            what: "looking up",
            at,
            source: e,
        },
    }
}

/// `path`'s target, absolute, if it is a symlink (a relative one from its directory).
fn link_target(root: &Root, path: &Path) -> io::Result<Option<PathBuf>> {
    let st = root.stat(path, false)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
        return Ok(None);
    }
    let target = PathBuf::from(root.readlink(path)?);
    let parent = path.parent().unwrap_or(Path::new("/"));
    Ok(Some(plan::clean(&parent.join(target))))
}

/// The source `user_path` in `root` (`place` names it in messages). `follow`: `-L`, a
/// symlink at its end is copied as what it points to, under the link's name.
pub fn source(
    root: &Root,
    place: &str,
    user_path: &str,
    follow: bool,
) -> Result<Source, CopyError> {
    let (mut dir, mut base) = plan::split_entry(user_path);
    let mut path = if base == "." {
        dir.clone()
    } else {
        dir.join(&base)
    };
    let mut rebase = None;
    if follow {
        for n in 0.. {
            match link_target(root, &path).map_err(|e| lookup_err(place, user_path, e))? {
                None => break,
                Some(_) if n == MAX_LINKS => {
                    return Err(lookup_err(
                        place,
                        user_path,
                        io::Error::from_raw_os_error(libc::ELOOP),
                    ))
                }
                Some(target) => {
                    rebase.get_or_insert_with(|| base.clone());
                    path = target;
                }
            }
        }
        if rebase.is_some() {
            (dir, base) = plan::split_entry(&path.to_string_lossy());
        }
    }
    // A trailing `/` or `/.` follows a symlink to a directory, as the kernel does.
    let is_dir = is_dir(root, place, user_path, &path, plan::asserts_dir(user_path))?;
    Ok(Source {
        dir,
        base,
        is_dir,
        rebase,
    })
}

/// The destination `user_path` in `root`, symlinks at its end followed (inside the root): it
/// exists, or its parent is an existing directory.
pub fn dest(root: &Root, place: &str, user_path: &str) -> Result<Dest, CopyError> {
    let mut path = plan::clean(Path::new(user_path));
    let asserts_dir = plan::asserts_dir(user_path);
    for n in 0.. {
        match link_target(root, &path) {
            Ok(None) => break,
            Ok(Some(_)) if n == MAX_LINKS => {
                return Err(lookup_err(
                    place,
                    user_path,
                    io::Error::from_raw_os_error(libc::ELOOP),
                ))
            }
            Ok(Some(target)) => path = target,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let parent = path.parent().unwrap_or(Path::new("/"));
                let shown = parent.display().to_string();
                let st = root
                    .stat(parent, true)
                    .map_err(|e| lookup_err(place, &shown, e))?;
                if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                    return Err(lookup_err(
                        place,
                        &shown,
                        io::Error::from_raw_os_error(libc::ENOTDIR),
                    ));
                }
                return Ok(Dest {
                    path,
                    exists: false,
                    is_dir: false,
                    asserts_dir,
                });
            }
            Err(e) => return Err(lookup_err(place, user_path, e)),
        }
    }
    let is_dir = is_dir(root, place, user_path, &path, false)?;
    Ok(Dest {
        path,
        exists: true,
        is_dir,
        asserts_dir,
    })
}

/// Whether `path` (the user's `user_path`) is a directory; a path that ends in `/` or `/.`
/// must be one (`follow`: a symlink at its end is followed).
fn is_dir(
    root: &Root,
    place: &str,
    user_path: &str,
    path: &Path,
    follow: bool,
) -> Result<bool, CopyError> {
    let st = root
        .stat(path, follow)
        .map_err(|e| lookup_err(place, user_path, e))?;
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if plan::asserts_dir(user_path) && !is_dir {
        return Err(lookup_err(
            place,
            user_path,
            io::Error::from_raw_os_error(libc::ENOTDIR),
        ));
    }
    Ok(is_dir)
}

/// The plan for `src` onto `dst`, refused as docker refuses it.
pub fn prepare(place: &str, src: &Source, dst: &Dest) -> Result<Plan, CopyError> {
    plan::prepare(src, dst).map_err(|source| CopyError::Plan {
        place: place.to_string(),
        source,
    })
}

/// Copies `src` of `from` as `plan` says into `to`.
pub fn copy(
    (from, from_place): (&Root, &str),
    src: &Source,
    (to, to_place): (&Root, &str),
    plan: &Plan,
    owners: Owners,
) -> Result<(), CopyError> {
    let top = plan
        .top
        .clone()
        .unwrap_or_else(|| src.archived_as().to_string());
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(16);
    let src_path = src.dir.join(&src.base);
    std::thread::scope(|s| {
        let packer = s.spawn(move || pack::pack(from, src, &top, ChunkWriter(tx)));
        let unpacked = unpack::unpack(to, &plan.extract_dir, ChunkReader::new(rx), owners)
            .map_err(io_err("copying into", to_place, &plan.extract_dir));
        let packed = packer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the packing thread panicked")))
            .map_err(io_err("reading", from_place, &src_path));
        // A failed unpack stops the packer (its channel closes); report the unpack's reason.
        unpacked.and(packed)
    })
}

/// Writes the archive of `src` of `root` to `out`, as `docker cp CTR:SRC -` does.
pub fn to_stream(root: &Root, place: &str, src: &Source, out: impl Write) -> Result<(), CopyError> {
    let top = src.archived_as().to_string();
    pack::pack(root, src, &top, out).map_err(io_err("reading", place, &src.dir.join(&src.base)))
}

/// Extracts the archive `input` into the existing directory `dst` of `root`, as
/// `docker cp - CTR:DST` does.
pub fn from_stream(
    root: &Root,
    place: &str,
    dst: &Dest,
    input: impl Read,
    owners: Owners,
) -> Result<(), CopyError> {
    if !(dst.exists && dst.is_dir) {
        return Err(CopyError::StreamNeedsDir {
            at: at(place, &dst.path.display().to_string()),
        });
    }
    unpack::unpack(root, &dst.path, input, owners).map_err(io_err("copying into", place, &dst.path))
}

/// The writing end of the in-process pipe between the packer and the unpacker.
struct ChunkWriter(mpsc::SyncSender<Vec<u8>>);

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct ChunkReader {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl ChunkReader {
    fn new(rx: mpsc::Receiver<Vec<u8>>) -> Self {
        Self {
            rx,
            chunk: Vec::new(),
            at: 0,
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn root_at(dir: &Path) -> Root {
        let fd = nix::fcntl::open(
            dir,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        // SAFETY: open just returned this fd and nothing else owns it.
        Root::new(unsafe { OwnedFd::from_raw_fd(fd) }, None)
    }

    #[test]
    fn a_tree_is_copied_between_roots_with_links_modes_and_nanosecond_times() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(a.join("src/sub")).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("src/sub/f"), "data").unwrap();
        std::fs::set_permissions(a.join("src/sub/f"), PermissionsExt::from_mode(0o604)).unwrap();
        std::fs::hard_link(a.join("src/sub/f"), a.join("src/h")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", a.join("src/l")).unwrap();
        let t = nix::sys::time::TimeSpec::new(1_234_567_890, 987_654_321);
        nix::sys::stat::utimensat(
            None,
            &a.join("src/sub"),
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
        let (from, to) = (root_at(&a), root_at(&b));
        let src = source(&from, "", "/src", false).unwrap();
        let dst = dest(&to, "x", "/copy").unwrap();
        let plan = prepare("x", &src, &dst).unwrap();
        assert_eq!(plan.top.as_deref(), Some("copy"));
        copy((&from, ""), &src, (&to, "x"), &plan, Owners::Caller).unwrap();
        let f = std::fs::metadata(b.join("copy/sub/f")).unwrap();
        assert_eq!(
            std::fs::read_to_string(b.join("copy/sub/f")).unwrap(),
            "data"
        );
        assert_eq!(f.mode() & 0o7777, 0o604);
        assert_eq!(f.ino(), std::fs::metadata(b.join("copy/h")).unwrap().ino());
        assert_eq!(
            std::fs::read_link(b.join("copy/l")).unwrap(),
            Path::new("/etc/passwd")
        );
        let sub = std::fs::metadata(b.join("copy/sub")).unwrap();
        assert_eq!(
            (sub.mtime(), sub.mtime_nsec()),
            (1_234_567_890, 987_654_321)
        );
        // A missing source and a directory onto a file are refused before anything is made.
        assert!(matches!(
            source(&from, "", "/nope", false),
            Err(CopyError::NotFound { .. })
        ));
        let onto_file = dest(&to, "x", "/copy/sub/f").unwrap();
        assert!(matches!(
            prepare("x", &src, &onto_file),
            Err(CopyError::Plan { .. })
        ));
    }
}
