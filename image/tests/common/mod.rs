//! Helpers shared by the root-only integration tests of forge-image.

#![allow(dead_code)]

pub mod layer;
pub mod store;

use std::ffi::CString;
use std::io;
use std::path::Path;

/// Fails the test (it does not skip it) unless it runs as root; `why` says what needs root.
pub fn needs_root(why: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: {why}"
    );
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_encoded_bytes()).unwrap()
}

/// The value of xattr `name` of `path` (not following a symlink), `None` when it has none;
/// any other error fails the test.
pub fn lgetxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let (cpath, cname) = (c_path(path), CString::new(name).unwrap());
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and buf is valid for buf.len() bytes.
    let n = unsafe {
        libc::lgetxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        assert_eq!(
            err.raw_os_error(),
            Some(libc::ENODATA),
            "lgetxattr {} {name}: {err}",
            path.display()
        );
        return None;
    }
    Some(buf[..n as usize].to_vec())
}

/// Sets xattr `name` of `path` (not following a symlink) to `value`; failure fails the test.
pub fn lsetxattr(path: &Path, name: &str, value: &[u8]) {
    let (cpath, cname) = (c_path(path), CString::new(name).unwrap());
    // SAFETY: both strings are NUL-terminated and value is valid for its length.
    let rc = unsafe {
        libc::lsetxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    let err = io::Error::last_os_error();
    assert_eq!(rc, 0, "lsetxattr {} {name}: {err}", path.display());
}
