//! Layers built in memory entry by entry, and a sandbox that checks an unpack wrote nothing
//! outside its layer directory. Shared by `image/tests/unpack.rs` and the unpack unit tests
//! in `image/src/unpack.rs` (which include this file with `#[path]`).

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use forge_image::unpack::{unpack_layer, Compression, UnpackError, UnpackOptions, UnpackStats};
use tar::{EntryType, Header};

/// A GNU header with `name` and `link` written as raw bytes (no checks on what they hold).
pub fn header(kind: EntryType, name: &[u8], link: &[u8], mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name);
        gnu.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    h
}

/// Builds a layer in memory, entry by entry.
pub struct Layer(pub tar::Builder<Vec<u8>>);

impl Layer {
    pub fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }
    pub fn raw(mut self, h: Header, data: &[u8]) -> Self {
        self.0.append(&h, data).unwrap();
        self
    }
    pub fn dir(self, name: &str, mode: u32) -> Self {
        self.raw(
            header(EntryType::Directory, name.as_bytes(), b"", mode, 0),
            b"",
        )
    }
    pub fn file(self, name: &str, data: &[u8]) -> Self {
        let h = header(
            EntryType::Regular,
            name.as_bytes(),
            b"",
            0o644,
            data.len() as u64,
        );
        self.raw(h, data)
    }
    pub fn symlink(self, name: &str, target: &str) -> Self {
        let h = header(
            EntryType::Symlink,
            name.as_bytes(),
            target.as_bytes(),
            0o777,
            0,
        );
        self.raw(h, b"")
    }
    pub fn hard_link(self, name: &str, target: &str) -> Self {
        let h = header(
            EntryType::Link,
            name.as_bytes(),
            target.as_bytes(),
            0o644,
            0,
        );
        self.raw(h, b"")
    }
    pub fn device(self, name: &str, major: u32, minor: u32) -> Self {
        let mut h = header(EntryType::Char, name.as_bytes(), b"", 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.raw(h, b"")
    }
    pub fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// Unpacks an uncompressed layer.
pub fn unpack(bytes: &[u8], dest: &Path, opts: &UnpackOptions) -> Result<UnpackStats, UnpackError> {
    unpack_layer(bytes, Compression::None, dest, opts)
}

/// A sandbox: the layer directory, an `outside` directory that must stay empty, and a
/// `victim` file that must stay as it is.
pub struct Sandbox {
    tmp: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("layer")).unwrap();
        fs::create_dir(tmp.path().join("outside")).unwrap();
        fs::write(tmp.path().join("victim"), b"secret").unwrap();
        Self { tmp }
    }
    pub fn dest(&self) -> PathBuf {
        self.tmp.path().join("layer")
    }
    pub fn outside(&self) -> String {
        self.tmp
            .path()
            .join("outside")
            .to_str()
            .unwrap()
            .to_string()
    }
    pub fn victim(&self) -> String {
        self.tmp.path().join("victim").to_str().unwrap().to_string()
    }
    pub fn unpack(&self, bytes: &[u8]) -> Result<UnpackStats, UnpackError> {
        unpack(bytes, &self.dest(), &UnpackOptions::default())
    }
    /// Nothing was made or changed outside the layer directory.
    pub fn check(&self) {
        let mut names: Vec<_> = fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["layer", "outside", "victim"]);
        assert_eq!(
            fs::read_dir(self.tmp.path().join("outside"))
                .unwrap()
                .count(),
            0
        );
        let victim = fs::metadata(self.victim()).unwrap();
        assert_eq!(victim.nlink(), 1);
        assert_eq!(victim.permissions().mode() & 0o7777, 0o644);
        assert_eq!(fs::read(self.victim()).unwrap(), b"secret");
    }
}
