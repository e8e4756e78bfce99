//! Image store helpers. Shared by `image/tests/host.rs` and the host unit tests in
//! `image/src/host.rs` (which include this file with `#[path]`).

use std::ffi::OsString;
use std::fs;

use forge_image::ImageStore;

/// The names in the store's directory: the images and anything a failed build left behind.
pub fn leftovers(store: &ImageStore) -> Vec<OsString> {
    fs::read_dir(store.dir())
        .map(|entries| entries.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default()
}
