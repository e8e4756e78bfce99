//! Opaque directories as overlayfs reads them in a user namespace. Mounted with `userxattr`
//! (`--userns=auto`), overlayfs looks for `user.overlay.opaque` instead of
//! `trusted.overlay.opaque`. Layers unpacked by an older Forge carry only the latter, so before a
//! layer first serves a user-namespaced container, every directory marked opaque one way is
//! marked the other way too. A layer that has been through this carries [`DONE`], so it is
//! walked once in its life.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const TRUSTED: &str = "trusted.overlay.opaque";
const USER: &str = "user.overlay.opaque";
/// Set on a layer's top directory once its opaque directories carry both xattrs. `trusted.*`:
/// invisible to unprivileged readers, and not overlayfs's.
const DONE: &str = "trusted.forge.user-opaque";

/// Gives every directory of `layer` marked opaque for overlayfs the `user.*` marker as well.
pub fn ensure_user_opaque(layer: &Path) -> io::Result<()> {
    if get(layer, DONE)?.is_some() {
        return Ok(());
    }
    mark(layer)?;
    set(layer, DONE, b"1")
}

fn mark(dir: &Path) -> io::Result<()> {
    if get(dir, TRUSTED)?.as_deref() == Some(b"y") && get(dir, USER)?.as_deref() != Some(b"y") {
        set(dir, USER, b"y")?;
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        // Symlinks are not followed: file_type does not follow them.
        if entry.file_type()?.is_dir() {
            mark(&entry.path())?;
        }
    }
    Ok(())
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// The value of xattr `name` of `path` (not following a symlink); `None` when it has none.
fn get(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let (path, name) = (
        c_path(path)?,
        CString::new(name).expect("no NUL in a constant"),
    );
    let mut buf = [0u8; 16];
    // SAFETY: both strings are NUL-terminated and buf is valid for buf.len() bytes.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    match n {
        -1 => match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::ENODATA) => Ok(None),
            e => Err(e),
        },
        n => Ok(Some(buf[..n as usize].to_vec())),
    }
}

fn set(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let (path, name) = (
        c_path(path)?,
        CString::new(name).expect("no NUL in a constant"),
    );
    // SAFETY: both strings are NUL-terminated and value is valid for its length.
    let rc = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
