//! The sealed executable's read-only overlay view against the real kernel: it mounts a detached
//! overlay (fsopen/fsmount), which needs CAP_SYS_ADMIN. Needs root; fails without it.

use forge_runtime::sealed_exe::SealedExe;

#[test]
fn the_overlay_view_is_the_same_file_and_read_only() {
    needs_root();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("bin");
    std::fs::write(&src, b"#!/bin/sh\necho sealed\n").unwrap();
    let exe = SealedExe::read_only_view_of(src.to_str().unwrap()).unwrap();
    let path = exe.exec_path();
    assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&src).unwrap());
    let write = std::fs::OpenOptions::new().append(true).open(&path);
    assert_eq!(
        write.unwrap_err().raw_os_error(),
        Some(libc::EROFS),
        "the overlay view is writable"
    );
    // The overlay is in no mount table.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(".forge-empty"), "{mounts}");
}

fn needs_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: it mounts an overlay (CAP_SYS_ADMIN)"
    );
}
