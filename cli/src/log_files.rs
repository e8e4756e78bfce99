//! Reading a container's log as forge-supervise's `logging` rotates it: the rotated files
//! first, then the current one, which a follower reopens when it was rotated away.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use forge_runtime::{Container, Runtime};

/// What the rotated files hold, oldest first.
pub fn rotated_text(runtime: &Runtime, c: &Container) -> Vec<u8> {
    let mut text = Vec::new();
    for path in runtime.rotated_logs(c) {
        if let Ok(bytes) = std::fs::read(path) {
            text.extend(bytes);
        }
    }
    text
}

/// The file now at `path` when it is not `file` (the writer rotated `file` away, and `file`
/// was read to its end).
pub fn reopened(file: &File, path: &Path) -> Option<File> {
    let now = std::fs::metadata(path).ok()?;
    let open = file.metadata().ok()?;
    if (now.dev(), now.ino()) == (open.dev(), open.ino()) {
        return None;
    }
    File::open(path).ok()
}
