//! The raw syscalls that nix does not wrap, each turning `-1` into `io::Error`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// What a fork-like `clone` returned.
pub enum Forked {
    Parent { child: libc::pid_t },
    Child,
}

/// `clone(flags | SIGCHLD)` without a new stack: behaves like `fork` plus the namespace flags.
///
/// # Safety
/// The caller must be single-threaded (the child gets a copy of only the calling thread).
pub unsafe fn clone_fork(flags: libc::c_int) -> io::Result<Forked> {
    // SAFETY: with a null stack pointer the kernel gives the child a copy-on-write copy of the
    // caller's stack, exactly as fork(2) does; the caller guarantees there are no other threads.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match check(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            child: pid as libc::pid_t,
        }),
    }
}

/// A pidfd for `pid`: readable once the process has exited, immune to pid reuse.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is passed.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends `sig` through a pidfd, so a recycled pid can never be hit.
pub fn pidfd_send_signal(pidfd: RawFd, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: a null siginfo is allowed and means "as kill(2) would send it".
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            std::ptr::null_mut::<libc::c_void>(),
            0,
        )
    })?;
    Ok(())
}

pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let new_root = cstr(new_root)?;
    let put_old = cstr(put_old)?;
    // SAFETY: both arguments are valid NUL-terminated strings that outlive the call.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })?;
    Ok(())
}

/// Marks every fd from `first` upwards close-on-exec, so nothing of Forge's leaks into the container.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes fd flags in this process; no memory is passed.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) })?;
    Ok(())
}

fn cstr(path: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// When live process `pid` started (field 22 of `/proc/PID/stat`, clock ticks since boot);
/// `None` when it is gone or a zombie waiting to be reaped. Together with the pid, the start
/// time names one process for good, across pid reuse.
pub fn running_since(pid: libc::pid_t) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; fields after it follow the last ')'.
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split(' ');
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Opens (creating it) the lock file `path` and takes an exclusive `flock` on it, waiting for
/// other holders; released when the file is closed, also when this process dies.
pub fn lock_exclusive(path: &Path) -> io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    loop {
        // SAFETY: flock takes an fd we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(file);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `struct loop_info64` from `<linux/loop.h>`.
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config` from `<linux/loop.h>`, for `LOOP_CONFIGURE`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// Attaches `backing` to a free loop device that detaches itself once its last user is gone, and
/// returns the device's path and an open fd of it. Keep the fd until the device is mounted: closing
/// it before that is the last close, which detaches the device again. Retries when another
/// process takes the same device.
pub fn attach_loop(backing: &Path) -> io::Result<(std::path::PathBuf, std::fs::File)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(backing)?;
    let control = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")?;
    for _ in 0..32 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number or -1.
        let n =
            check(unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) } as libc::c_long)?;
        let path = std::path::PathBuf::from(format!("/dev/loop{n}"));
        let device = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        {
            Ok(device) => device,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        // SAFETY: LoopConfig is plain old data; all-zero is a valid value.
        let mut config: LoopConfig = unsafe { std::mem::zeroed() };
        config.fd = file.as_raw_fd() as u32;
        config.info.flags = LO_FLAGS_AUTOCLEAR;
        // SAFETY: LOOP_CONFIGURE reads the LoopConfig we own, which outlives the call.
        let ret = unsafe { libc::ioctl(device.as_raw_fd(), LOOP_CONFIGURE, &config) };
        match check(ret as libc::c_long) {
            Ok(_) => return Ok((path, device)),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => continue, // raced with another process
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::ResourceBusy,
        "no free loop device after 32 attempts",
    ))
}

const LOOP_GET_STATUS64: libc::c_ulong = 0x4C05;

/// The bound loop device whose backing file is `backing` (same device and inode), opened, if
/// there is one. Opening before asking keeps a device that is clearing itself from being taken:
/// one that is no longer bound answers ENXIO and is passed over.
pub fn find_loop(
    backing: &std::fs::File,
) -> io::Result<Option<(std::path::PathBuf, std::fs::File)>> {
    use std::os::unix::fs::MetadataExt;
    let meta = backing.metadata()?;
    let entries = match std::fs::read_dir("/sys/block") {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| n.starts_with("loop")) else {
            continue;
        };
        // Only a bound device has the `loop` attributes.
        if !entry.path().join("loop").exists() {
            continue;
        }
        let path = std::path::PathBuf::from(format!("/dev/{name}"));
        let Ok(device) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        else {
            continue;
        };
        // SAFETY: LoopInfo64 is plain old data; all-zero is a valid value.
        let mut info: LoopInfo64 = unsafe { std::mem::zeroed() };
        // SAFETY: LOOP_GET_STATUS64 writes one LoopInfo64 into the value we own.
        let ret = unsafe { libc::ioctl(device.as_raw_fd(), LOOP_GET_STATUS64, &mut info) };
        if ret == 0 && info.device == meta.dev() && info.inode == meta.ino() {
            return Ok(Some((path, device)));
        }
    }
    Ok(None)
}

/// `struct mount_attr` from `<linux/mount.h>`, for `mount_setattr`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// `open_tree(OPEN_TREE_CLONE)`: a detached bind mount of `dir` (not of its submounts), gone
/// once the fd is closed unless it is attached somewhere first.
pub fn open_tree_clone(dir: &Path) -> io::Result<OwnedFd> {
    let dir = cstr(dir)?;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: the path is a valid NUL-terminated string that outlives the call.
    let fd =
        check(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, dir.as_ptr(), flags) })?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `openat2(root, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: `path` resolved as
/// if `root` were `/`. The kernel answers EAGAIN when a rename or mount anywhere on the system
/// raced a `..` in the lookup (it cannot then prove the walk stayed inside); that is retried,
/// as openat2(2) suggests, a bounded number of times.
pub fn openat2_in_root(
    root: std::os::fd::BorrowedFd<'_>,
    path: &Path,
    flags: nix::fcntl::OFlag,
) -> io::Result<OwnedFd> {
    use nix::fcntl::{OpenHow, ResolveFlag};
    const ATTEMPTS: usize = 256;
    let how = OpenHow::new()
        .flags(flags | nix::fcntl::OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let mut attempt = 1;
    loop {
        match nix::fcntl::openat2(root.as_raw_fd(), path, how) {
            // SAFETY: openat2 just returned this fd and nothing else owns it.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(nix::errno::Errno::EAGAIN) if attempt < ATTEMPTS => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// An `O_PATH` fd of `path` (symlinks followed): names it without needing to read it.
pub fn open_path(path: &Path) -> io::Result<OwnedFd> {
    let path = cstr(path)?;
    // SAFETY: the path is a valid NUL-terminated string that outlives the call.
    let fd = check(unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) }.into())?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)` of what `fd` names: a detached bind mount of it
/// with every mount below it, gone once the fd is closed unless it is attached first.
pub fn open_tree_clone_recursive(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as libc::c_uint
        | libc::AT_RECURSIVE as libc::c_uint
        | libc::AT_EMPTY_PATH as libc::c_uint;
    // SAFETY: the empty path with AT_EMPTY_PATH names `fd` itself; no other memory is passed.
    let tree =
        check(unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) })?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(tree as RawFd) })
}

/// Makes the detached mount `tree` and every mount below it read-only (`mount_setattr`,
/// Linux 5.12+: ENOSYS before).
pub fn mount_setattr_rdonly_recursive(tree: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    mount_setattr(tree, u64::from(MOUNT_ATTR_RDONLY), None, true)
}

/// `mount_setattr(2)` on the detached mount `tree` (with every mount below it if `recursive`):
/// sets `attrs`, and the idmapping of `userns` if given.
fn mount_setattr(
    tree: std::os::fd::BorrowedFd<'_>,
    attrs: u64,
    userns: Option<std::os::fd::BorrowedFd<'_>>,
    recursive: bool,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: attrs | userns.map_or(0, |_| MOUNT_ATTR_IDMAP),
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.map_or(0, |fd| fd.as_raw_fd() as u64),
    };
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: the empty path with AT_EMPTY_PATH names `tree` itself; `attr` is a valid
    // mount_attr that outlives the call and its size is passed along.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(())
}

/// Attaches the detached mount `tree` on what the fd `target` names (an `O_PATH` fd of a
/// directory or file already resolved), so no path is looked up again.
pub fn move_mount_onto(
    tree: std::os::fd::BorrowedFd<'_>,
    target: std::os::fd::BorrowedFd<'_>,
) -> io::Result<()> {
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    // SAFETY: both paths are empty NUL-terminated strings with the EMPTY_PATH flags, naming the
    // two fds themselves.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// A new anonymous memory file (`memfd_create(2)`).
pub fn memfd_create(name: &std::ffi::CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let fd = check(unsafe { libc::memfd_create(name.as_ptr(), flags) } as libc::c_long)?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Makes the detached mount `tree` show its files' owners through the mapping of `userns`, and
/// read-only: it shows the shared image store to a container whose root would own it.
pub fn mount_setattr_idmap(
    tree: std::os::fd::BorrowedFd<'_>,
    userns: std::os::fd::BorrowedFd<'_>,
) -> io::Result<()> {
    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    mount_setattr(tree, u64::from(attrs), Some(userns), false)
}

/// Makes the detached mount `tree` and every mount below it show owners through the mapping
/// of `userns` (a bind or volume of a `--userns=auto` container; init makes it read-only if
/// asked). Every file system below must support idmapped mounts (EINVAL otherwise).
pub fn mount_setattr_idmap_recursive(
    tree: std::os::fd::BorrowedFd<'_>,
    userns: std::os::fd::BorrowedFd<'_>,
) -> io::Result<()> {
    mount_setattr(tree, 0, Some(userns), true)
}

/// Attaches the detached mount `tree` at the directory `target` of this mount namespace.
pub fn move_mount_to(tree: std::os::fd::BorrowedFd<'_>, target: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let target = cstr(target)?;
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call; the empty one
    // with MOVE_MOUNT_F_EMPTY_PATH names `tree` itself.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// Adds `seals` (`F_SEAL_*`) to a memfd made with `MFD_ALLOW_SEALING`.
pub fn add_seals(fd: &impl AsRawFd, seals: libc::c_int) -> io::Result<()> {
    // SAFETY: F_ADD_SEALS takes an int argument and changes only the file's seals.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } as libc::c_long)?;
    Ok(())
}

/// A close-on-exec duplicate of `fd` numbered `min` or higher.
pub fn dup_at_least(fd: &impl AsRawFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an int argument and returns a new fd or -1.
    let new =
        check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) } as libc::c_long)?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new as RawFd) })
}

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
pub const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
pub const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
pub const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;

/// A new filesystem context (`fsopen(2)`) for `fstype`.
pub fn fsopen(fstype: &std::ffi::CStr) -> io::Result<OwnedFd> {
    // SAFETY: the name is a valid NUL-terminated string that outlives the call.
    let fd = check(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sets the string option `key` of a filesystem context.
pub fn fsconfig_set(ctx: &impl AsRawFd, key: &std::ffi::CStr, value: &str) -> io::Result<()> {
    let value = CString::new(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: key and value are valid NUL-terminated strings that outlive the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    })?;
    Ok(())
}

/// Sets the flag option `key` (one without a value, like `ro`) of a filesystem context.
pub fn fsconfig_flag(ctx: &impl AsRawFd, key: &std::ffi::CStr) -> io::Result<()> {
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: the key is a valid NUL-terminated string that outlives the call; a flag has no value.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            FSCONFIG_SET_FLAG,
            key.as_ptr(),
            null,
            0,
        )
    })?;
    Ok(())
}

/// Creates the filesystem of a configured context and returns it as a detached mount with
/// `attrs` (`MOUNT_ATTR_*`): in no mount table, gone once the last fd on it is closed.
pub fn fsmount_detached(ctx: &impl AsRawFd, attrs: libc::c_uint) -> io::Result<OwnedFd> {
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: FSCONFIG_CMD_CREATE takes no key or value.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            null,
            null,
            0,
        )
    })?;
    // SAFETY: fsmount takes the context fd and two flag words.
    let fd = check(unsafe {
        libc::syscall(libc::SYS_fsmount, ctx.as_raw_fd(), FSMOUNT_CLOEXEC, attrs)
    })?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Installs a classic-BPF seccomp filter on the calling thread. Unlike seccompiler's
/// `apply_filter` it does not set no_new_privs: without it the kernel asks for CAP_SYS_ADMIN.
pub fn seccomp_set_filter(program: &[seccompiler::sock_filter]) -> io::Result<()> {
    let len = u16::try_from(program.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "seccomp program too long"))?;
    let prog = libc::sock_fprog {
        len,
        // seccompiler's sock_filter is #[repr(C)] with the same fields as the kernel's.
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points to `len` valid instructions that outlive the call; the kernel copies
    // the program.
    check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        )
    })?;
    Ok(())
}
