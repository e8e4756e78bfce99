//! Podman's `U`: before a bind or volume is mounted, its files are handed to the container's
//! user (by the IDs the container sees), so that a non-root user in the container can write
//! to a host directory. Every step is relative to a directory fd and never follows a symlink
//! (links themselves are chowned), so nothing in the tree can point the walk elsewhere.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::fcntl::{AtFlags, OFlag};
use nix::unistd::{Gid, Uid};

use super::copy_up::{entries, is_dir, open_at, reopen_dir};

/// Chowns what `top` (an `O_PATH` fd or a detached mount) names, and everything below it if it
/// is a directory, to `uid`:`gid`.
pub fn hand_tree_to(top: BorrowedFd<'_>, (uid, gid): (u32, u32)) -> io::Result<()> {
    let owner = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    nix::unistd::fchownat(
        Some(top.as_raw_fd()),
        c"",
        owner.0,
        owner.1,
        AtFlags::AT_EMPTY_PATH,
    )?;
    if is_dir(&nix::sys::stat::fstat(top.as_raw_fd())?) {
        walk(&reopen_dir(top)?, owner)?;
    }
    Ok(())
}

fn walk(dir: &OwnedFd, owner: (Option<Uid>, Option<Gid>)) -> io::Result<()> {
    for name in entries(dir)? {
        let name: &CStr = &name;
        nix::unistd::fchownat(
            Some(dir.as_raw_fd()),
            name,
            owner.0,
            owner.1,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        let st =
            nix::sys::stat::fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        if is_dir(&st) {
            walk(
                &open_at(dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?,
                owner,
            )?;
        }
    }
    Ok(())
}
