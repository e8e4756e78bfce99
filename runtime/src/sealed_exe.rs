//! The Forge binary that container set-up runs from: one the container cannot write, so a process
//! in a container can never overwrite the host's binary through `/proc/PID/exe` (CVE-2019-5736).
//!
//! The init and join processes are re-executions of Forge that become visible inside the
//! container (PID 1 with `--init` stays one for the container's life). Their `/proc/PID/exe` is
//! what they were executed from, so that must refuse writes. Two ways, as runc 1.2 has them:
//!
//! - A read-only overlayfs over the binary's directory, made with `fsopen`/`fsmount` as a
//!   detached mount (in no mount table: no mount event, nothing to clean up; it lives as long as
//!   the fd on the binary). Writing through it fails with `EROFS`, and it costs no copy (about
//!   0.2 ms). Needs CAP_SYS_ADMIN and overlayfs, which Forge needs anyway.
//! - Otherwise a sealed memfd copy (no write, no resize, no change of seals: `EPERM`). It costs a
//!   copy of the ~10 MB binary: `forge run --rm host true` took 18 ms longer (median of 100
//!   interleaved runs) on the development machine, which is why it is only the fallback. The
//!   overlay costs nothing measurable there.
//!
//! Either is made once per calling process and reused (a long-lived forge-supervise pays once),
//! and exec'ed through `/proc/self/fd/N`, which in the forked child names the same open file.
//!
//! # Caveats
//! A caller that outlives an upgrade of the binary keeps starting containers with the version
//! it first opened, as a running daemon would anyway.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[derive(Debug, thiserror::Error)]
#[error("making a sealed copy of the forge binary {source_path}: {source}")]
pub struct SealError {
    pub source_path: String,
    #[source]
    pub source: io::Error,
}

/// The seals that make the copy immutable: no write, no resize, no further change of seals.
const SEALS: libc::c_int = libc::F_SEAL_SEAL
    | libc::F_SEAL_SHRINK
    | libc::F_SEAL_GROW
    | libc::F_SEAL_WRITE
    | libc::F_SEAL_FUTURE_WRITE;

/// The lowest fd number the copy may have: the launcher `dup2`s onto 0..=3 in the child before
/// exec, which must not replace the file it is about to execute.
const MIN_FD: libc::c_int = 4;

/// The Forge binary as a close-on-exec fd that cannot be written through: on a read-only
/// overlay, or a sealed memfd copy.
#[derive(Debug)]
pub struct SealedExe {
    fd: OwnedFd,
}

impl SealedExe {
    /// `path` seen through a read-only overlayfs of its directory, or a sealed copy of it when
    /// such an overlay cannot be made here.
    pub fn of(path: &str) -> Result<Self, SealError> {
        match Self::read_only_view_of(path) {
            Ok(exe) => Ok(exe),
            Err(e) => {
                tracing::debug!("no read-only overlay for {path} ({e}); copying it to a memfd");
                Self::copy_of(path)
            }
        }
    }

    /// Opens `path` through a detached read-only overlayfs whose top layer is its directory.
    /// Overlayfs has no lower-only mode with one layer, so an empty directory is the second.
    pub fn read_only_view_of(path: &str) -> Result<Self, SealError> {
        let err = |source| SealError {
            source_path: path.to_string(),
            source,
        };
        let real = std::fs::canonicalize(path).map_err(err)?;
        let (Some(dir), Some(name)) = (real.parent(), real.file_name()) else {
            return Err(err(io::Error::from(io::ErrorKind::InvalidInput)));
        };
        let empty = empty_layer(dir).map_err(err)?;
        let escape = crate::init::rootfs::overlay_escape;
        let lower = format!("{}:{}", escape(dir), escape(&empty));
        let mount = overlay_mount(&lower).map_err(err)?;
        let flags = nix::fcntl::OFlag::O_PATH
            | nix::fcntl::OFlag::O_NOFOLLOW
            | nix::fcntl::OFlag::O_CLOEXEC;
        let raw = nix::fcntl::openat(
            Some(mount.as_raw_fd()),
            name,
            flags,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| err(e.into()))?;
        // SAFETY: openat just returned this fd and nothing else owns it.
        let file = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        let fd = crate::sys::dup_at_least(&file, MIN_FD).map_err(err)?;
        Ok(Self { fd })
    }

    /// Copies `path` into a new memfd and seals it.
    pub fn copy_of(path: &str) -> Result<Self, SealError> {
        let err = |source| SealError {
            source_path: path.to_string(),
            source,
        };
        let mut file = File::open(path).map_err(err)?;
        let memfd = crate::sys::memfd_create(c"forge", libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
            .map_err(err)?;
        // Plain reads and writes: sendfile's internal pipe may still hold the memfd's pages when
        // it returns, and F_SEAL_WRITE then fails with EBUSY.
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(err)?;
        File::from(memfd.try_clone().map_err(err)?)
            .write_all(&bytes)
            .map_err(err)?;
        crate::sys::add_seals(&memfd, SEALS).map_err(err)?;
        let fd = crate::sys::dup_at_least(&memfd, MIN_FD).map_err(err)?;
        Ok(Self { fd })
    }

    /// The path that executes the copy, valid in this process and in children forked from it.
    pub fn exec_path(&self) -> String {
        format!("/proc/self/fd/{}", self.fd.as_raw_fd())
    }

    #[cfg(test)]
    fn file(&self) -> File {
        File::from(self.fd.try_clone().expect("dup of the memfd"))
    }
}

/// The process-wide sealed copy of `source`, made on first use; later calls reuse it (the
/// source is fixed for a process: `/proc/self/exe` or the harness's `FORGE_INIT_EXE`).
pub fn shared(source: &str) -> Result<&'static SealedExe, SealError> {
    static SHARED: OnceLock<SealedExe> = OnceLock::new();
    if let Some(exe) = SHARED.get() {
        return Ok(exe);
    }
    let exe = SealedExe::of(source)?;
    Ok(SHARED.get_or_init(|| exe))
}

/// The overlay's empty second layer: `.forge-empty` in /run (else /dev/shm, else the temp
/// directory), made once and kept, so that a Forge killed at any point leaves nothing new behind.
/// Never nested with the binary's directory `dir`: overlayfs refuses nested layers. Only ever
/// looked through for the binary's name, which the top layer has.
fn empty_layer(dir: &Path) -> io::Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    for base in [
        PathBuf::from("/run"),
        "/dev/shm".into(),
        std::env::temp_dir(),
    ] {
        if base.starts_with(dir) || dir.starts_with(&base) {
            continue;
        }
        let empty = base.join(".forge-empty");
        match std::fs::create_dir(&empty) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => continue,
            _ => {}
        }
        let meta = std::fs::symlink_metadata(&empty)?;
        if meta.is_dir() && meta.uid() == me && std::fs::read_dir(&empty)?.next().is_none() {
            return Ok(empty);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "no empty directory of our own for the overlay's second layer",
    ))
}

/// A detached read-only overlayfs of the `lowerdir` list.
fn overlay_mount(lowerdir: &str) -> io::Result<OwnedFd> {
    let ctx = crate::sys::fsopen(c"overlay")?;
    crate::sys::fsconfig_set(&ctx, c"lowerdir", lowerdir)?;
    // Only to keep dmesg quiet when the layers are on different filesystems.
    let _ = crate::sys::fsconfig_set(&ctx, c"xino", "off");
    let attrs = crate::sys::MOUNT_ATTR_RDONLY
        | crate::sys::MOUNT_ATTR_NOSUID
        | crate::sys::MOUNT_ATTR_NODEV;
    crate::sys::fsmount_detached(&ctx, attrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_copy_is_identical_and_cannot_be_written_or_resized() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("bin");
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &content).unwrap();
        let exe = SealedExe::copy_of(src.to_str().unwrap()).unwrap();
        assert!(exe.fd.as_raw_fd() >= MIN_FD);

        let path = exe.exec_path();
        assert_eq!(std::fs::read(&path).unwrap(), content);

        let write = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"x"));
        assert!(write.is_err(), "appending to the sealed copy succeeded");
        let truncate = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path);
        assert!(truncate.is_err(), "truncating the sealed copy succeeded");
        assert!(exe.file().set_len(1).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), content, "the copy changed");
    }

    #[test]
    fn a_missing_source_names_the_path() {
        let err = SealedExe::copy_of("/nonexistent/forge").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/forge"), "{err}");
    }
}
