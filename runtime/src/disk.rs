//! Size-limited filesystems in a file: an ext4 image, attached to a loop device only inside a
//! container's mount namespace. `--storage` gives a container's writable layer one; a volume
//! made with `--opt size=` is one that containers share.
//!
//! Two loop devices on one image would be two ext4 instances writing the same blocks, so every
//! mount of an image goes through the one device it is attached to: found (or attached by the
//! first) under an `flock` on the image itself. The kernel then hands every container the same
//! superblock. Devices detach themselves once their last mount is gone (autoclear), so a killed
//! Forge or container leaves none.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

/// Makes `image`: a sparse file of `bytes` holding an empty ext4 filesystem, which the kernel
/// keeps from growing past its size (writes fail with ENOSPC). With `bare_root` its root holds
/// nothing, not even `lost+found`, so that a volume starts empty (copy-up, and programs such as
/// initdb that want an empty directory).
pub fn make(image: &Path, bytes: u64, bare_root: bool) -> io::Result<()> {
    let file = fs::File::create(image)?;
    file.set_len(bytes)?;
    drop(file);
    // No crate makes filesystems; mke2fs (e2fsprogs) is the tool every distribution has.
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-m",
            "0",
            "-O",
            "^has_journal",
            "-E",
            "lazy_itable_init=1,nodiscard",
        ],
        image,
    )?;
    if bare_root {
        // debugfs edits the image without mounting it (nothing is ever mounted on the host).
        run("debugfs", &["-w", "-R", "rmdir lost+found"], image)?;
    }
    Ok(())
}

fn run(program: &str, args: &[&str], image: &Path) -> io::Result<()> {
    let output = std::process::Command::new(program)
        .args(args)
        .arg(image)
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running {program}: {e}")))?;
    // debugfs reports a failed request on stderr and still exits 0.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let failed = stderr
        .lines()
        .any(|l| !l.starts_with("debugfs ") && !l.trim().is_empty());
    if !output.status.success() || (program == "debugfs" && failed) {
        return Err(io::Error::other(format!("{program}: {}", stderr.trim())));
    }
    Ok(())
}

/// The ext4 filesystem of `image` as a detached mount (`nosuid,nodev`), through the image's one
/// loop device. For PID 1's set-up, in the container's mount namespace.
pub fn mount_detached(image: &Path) -> io::Result<OwnedFd> {
    // Held until this returns, when the file is closed.
    let locked = crate::sys::lock_exclusive(image)?;
    // Either fd keeps the device from clearing itself until the mount holds it.
    let (device, _open_until_mounted) = match crate::sys::find_loop(&locked)? {
        Some(found) => found,
        None => crate::sys::attach_loop(image)?,
    };
    let ctx = crate::sys::fsopen(c"ext4")?;
    crate::sys::fsconfig_set(&ctx, c"source", &device.to_string_lossy())?;
    crate::sys::fsmount_detached(
        &ctx,
        crate::sys::MOUNT_ATTR_NOSUID | crate::sys::MOUNT_ATTR_NODEV,
    )
}
