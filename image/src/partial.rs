//! Blob downloads that survive an interrupted pull. The bytes received so far stay in
//! `blobs/sha256/.partial-HEX` (a true prefix of the blob: it is only ever appended to), so the
//! next pull asks the registry for the rest with an HTTP Range request instead of starting over.
//! The whole blob is still verified (digest and size) before it is stored; a partial file that
//! turns out wrong is dropped. A partial file is flocked while a pull writes it, so two pulls of
//! the same blob never write one file; partial files untouched for a day are swept.

use std::fs;
use std::io::{self, Read, Seek, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

use super::oci::{io_err, Blobs, Descriptor, OciError};

const PREFIX: &str = ".partial-";
/// How long an abandoned partial download is kept for a later pull to finish.
const KEEP: Duration = Duration::from_secs(24 * 3600);

/// A blob being downloaded, locked by this process, with the hash of the bytes it holds.
pub struct Partial {
    path: PathBuf,
    file: Flock<fs::File>,
    hasher: Sha256,
    len: u64,
}

impl Blobs {
    /// The download of `expected`'s blob, holding what an earlier pull kept of it (hashed again
    /// here); `None` when another pull is writing it right now.
    pub fn resume(&self, expected: &Descriptor) -> Result<Option<Partial>, OciError> {
        let path = self.partial_path(&expected.digest)?;
        let dir = path.parent().expect("a partial file has a parent");
        fs::create_dir_all(dir).map_err(io_err("creating", &path))?;
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("opening", &path))?;
        let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(file) => file,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, errno)) => return Err(io_err("locking", &path)(errno.into())),
        };
        let mut partial = Partial {
            path,
            file,
            hasher: Sha256::new(),
            len: 0,
        };
        partial
            .rehash(expected.size)
            .map_err(io_err("reading", &partial.path))?;
        Ok(Some(partial))
    }

    /// Verifies the finished download and stores it as the blob; a wrong one is dropped.
    pub fn complete(&self, partial: Partial, expected: &Descriptor) -> Result<PathBuf, OciError> {
        let target = self
            .partial_path(&expected.digest)?
            .with_file_name(expected.digest.trim_start_matches("sha256:"));
        let actual = format!("sha256:{:x}", partial.hasher.clone().finalize());
        if actual != expected.digest || partial.len != expected.size {
            let _ = fs::remove_file(&partial.path);
            return Err(OciError::Digest {
                what: format!("blob {}", expected.digest),
                expected: format!("{} ({} bytes)", expected.digest, expected.size),
                actual: format!("{actual} ({} bytes)", partial.len),
            });
        }
        partial
            .file
            .sync_data()
            .map_err(io_err("writing", &partial.path))?;
        fs::rename(&partial.path, &target).map_err(io_err("storing", &target))?;
        self.note_added(&target);
        Ok(target)
    }

    /// Removes partial downloads nobody has touched for a day (and nobody holds).
    pub(super) fn sweep_partials(&self, dir: &std::path::Path) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let is_partial = entry.file_name().to_string_lossy().starts_with(PREFIX);
            let age = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok());
            if !is_partial || age.is_none_or(|age| age <= KEEP) {
                continue;
            }
            // Removed only while locked by nobody else (a pull may still be writing it).
            let Ok(file) = fs::File::open(entry.path()) else {
                continue;
            };
            if let Ok(_locked) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    fn partial_path(&self, digest: &str) -> Result<PathBuf, OciError> {
        let blob = self.blob_path(digest).ok_or_else(|| OciError::Archive {
            archive: format!("blob {digest}"),
            message: "unsupported digest (only sha256 is)".into(),
        })?;
        let name = blob
            .file_name()
            .expect("a blob has a name")
            .to_string_lossy();
        Ok(blob.with_file_name(format!("{PREFIX}{name}")))
    }
}

impl Partial {
    /// How many bytes of the blob it holds: where the rest starts.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops what it holds (the registry sent the whole blob instead of the rest).
    pub fn restart(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }

    /// Appends what `reader` yields until it ends; what arrived before an error is kept.
    pub fn append(&mut self, mut reader: impl Read) -> io::Result<()> {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.file.write_all(&buf[..n])?;
            self.hasher.update(&buf[..n]);
            self.len += n as u64;
        }
    }

    /// Hashes what the file holds and positions it at its end; a file longer than the blob
    /// cannot be a prefix of it and starts over.
    fn rehash(&mut self, size: u64) -> io::Result<()> {
        if self.file.metadata()?.len() > size {
            return self.restart();
        }
        self.file.rewind()?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = self.file.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            self.hasher.update(&buf[..n]);
            self.len += n as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(data: &[u8]) -> Descriptor {
        Descriptor {
            media_type: "application/octet-stream".into(),
            digest: format!("sha256:{:x}", Sha256::digest(data)),
            size: data.len() as u64,
            platform: None,
            annotations: Default::default(),
        }
    }

    #[test]
    fn an_interrupted_download_resumes_where_it_stopped_and_is_verified() {
        let tmp = tempfile::tempdir().unwrap();
        let blobs = Blobs::new(tmp.path());
        let data: Vec<u8> = (0..200_000u32).map(|n| (n % 251) as u8).collect();
        let desc = descriptor(&data);
        let mut first = blobs.resume(&desc).unwrap().unwrap();
        assert!(first.is_empty());
        // A second pull of the same blob meanwhile does not get it.
        assert!(blobs.resume(&desc).unwrap().is_none());
        first.append(&data[..70_000]).unwrap();
        drop(first);
        let mut again = blobs.resume(&desc).unwrap().unwrap();
        assert_eq!(again.len(), 70_000);
        again.append(&data[70_000..]).unwrap();
        let stored = blobs.complete(again, &desc).unwrap();
        assert_eq!(fs::read(stored).unwrap(), data);
        let left: Vec<_> = fs::read_dir(tmp.path().join("blobs/sha256"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, [desc.digest[7..].to_string()]);
    }

    #[test]
    fn a_wrong_download_is_dropped_and_a_too_long_one_starts_over() {
        let tmp = tempfile::tempdir().unwrap();
        let blobs = Blobs::new(tmp.path());
        let desc = descriptor(b"the real blob");
        let mut partial = blobs.resume(&desc).unwrap().unwrap();
        partial.append(&b"the fake blob"[..]).unwrap();
        let err = blobs.complete(partial, &desc).unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        assert!(blobs.resume(&desc).unwrap().unwrap().is_empty());
        let mut long = blobs.resume(&desc).unwrap().unwrap();
        long.append(&b"the real blob, and more"[..]).unwrap();
        drop(long);
        assert!(blobs.resume(&desc).unwrap().unwrap().is_empty());
    }
}
