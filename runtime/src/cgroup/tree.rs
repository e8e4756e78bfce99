//! The cgroup directories Forge owns: it marks every directory it makes with the extended
//! attribute `trusted.forge.owned`, so that later it removes exactly those (once empty, however
//! many containers and Forge processes shared them) and enables controllers only in them, and
//! leaves every cgroup it did not make as it found it.
//!
//! Where the hierarchy has no xattr support (cgroup v1 without the `xattr` mount option), the
//! only shared parent Forge removes is one named `forge`, the default.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{io_err, CgroupError};

const OWNED: &std::ffi::CStr = c"trusted.forge.owned";

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

/// Marks `dir` as made by Forge. `Ok(false)`: the file system keeps no xattrs.
fn mark_owned(dir: &Path) -> io::Result<bool> {
    let path = c_path(dir)?;
    // SAFETY: both strings are NUL-terminated and outlive the call; the value is one byte long.
    let rc = unsafe { libc::setxattr(path.as_ptr(), OWNED.as_ptr(), c"1".as_ptr().cast(), 1, 0) };
    if rc == 0 {
        return Ok(true);
    }
    match io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::ENOTSUP) => Ok(false),
        e => Err(e),
    }
}

/// Whether Forge made `dir` (it carries the mark).
pub fn is_owned(dir: &Path) -> bool {
    let Ok(path) = c_path(dir) else { return false };
    // SAFETY: both strings are NUL-terminated; a null buffer of size 0 only asks for the length.
    unsafe { libc::getxattr(path.as_ptr(), OWNED.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
}

/// Creates `dir` and its missing parents, marking each one made. Another container's removal may
/// delete a shared parent between two mkdirs, or between a mkdir and its mark (it goes once
/// empty); the walk starts again then.
pub fn create_owned(dir: &Path) -> Result<(), CgroupError> {
    for _ in 0..20 {
        let missing: Vec<&Path> = dir.ancestors().take_while(|p| !p.exists()).collect();
        let mut raced = false;
        for path in missing.into_iter().rev() {
            match fs::create_dir(path) {
                // Gone again before its mark: removed as an empty shared parent by another
                // container's teardown in between. Start the walk again.
                Ok(()) => match mark_owned(path) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        raced = true;
                        break;
                    }
                    Err(e) => return Err(io_err("marking", path, e)),
                },
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    raced = true;
                    break;
                }
                Err(e) => return Err(io_err("creating", path, e)),
            }
        }
        if !raced {
            return Ok(());
        }
    }
    fs::create_dir(dir).map_err(|e| io_err("creating", dir, e))
}

/// Removes the container's directory `dir`, then each parent Forge made, as long as it is empty.
pub fn remove_owned(dir: &Path) -> Result<(), CgroupError> {
    let marks = is_owned(dir);
    remove_one(dir)?;
    for parent in dir.ancestors().skip(1) {
        let ours = if marks {
            is_owned(parent)
        } else {
            parent.file_name().is_some_and(|n| n == "forge")
        };
        // Busy while other containers use it: fine, the last one out removes it.
        if !ours || fs::remove_dir(parent).is_err() {
            break;
        }
    }
    Ok(())
}

/// Removes one cgroup directory (none of its parents), retrying while its last processes are
/// still exiting (a killed fork bomb on a loaded machine can take over a second to drain).
pub fn remove_one(path: &Path) -> Result<(), CgroupError> {
    for _ in 0..500 {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => return Err(io_err("removing", path, e)),
        }
    }
    fs::remove_dir(path).map_err(|e| io_err("removing", path, e))
}
