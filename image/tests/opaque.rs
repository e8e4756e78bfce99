//! Opaque directories of a layer unpacked by an older Forge get the user.* marker. Needs root
//! (trusted.* xattrs need CAP_SYS_ADMIN); as a non-root user this fails, saying so.

mod common;

use common::{lgetxattr, lsetxattr, needs_root};
use forge_image::opaque::ensure_user_opaque;

// The xattrs as overlayfs and Forge name them on disk.
const TRUSTED: &str = "trusted.overlay.opaque";
const USER: &str = "user.overlay.opaque";
const DONE: &str = "trusted.forge.user-opaque";

#[test]
fn opaque_directories_of_an_old_layer_get_the_user_marker_once() {
    needs_root("it reads and writes trusted.* xattrs (CAP_SYS_ADMIN)");
    let layer = tempfile::tempdir().unwrap();
    let opaque = layer.path().join("a/b");
    let plain = layer.path().join("c");
    std::fs::create_dir_all(&opaque).unwrap();
    std::fs::create_dir_all(&plain).unwrap();
    lsetxattr(&opaque, TRUSTED, b"y");
    ensure_user_opaque(layer.path()).unwrap();
    assert_eq!(lgetxattr(&opaque, USER).as_deref(), Some(&b"y"[..]));
    assert_eq!(lgetxattr(&plain, USER), None);
    assert!(lgetxattr(layer.path(), DONE).is_some());
    // Done once: a directory marked later is left alone (the walk does not run again).
    lsetxattr(&plain, TRUSTED, b"y");
    ensure_user_opaque(layer.path()).unwrap();
    assert_eq!(lgetxattr(&plain, USER), None);
}
