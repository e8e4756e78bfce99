//! A checker that runs inside a container and tries one escape per subcommand (the escape tests in
//! `tests/tests/escape.rs` copy it into an image). It prints `ESCAPED ...` and exits 0 when the
//! attempt worked; otherwise it prints what stopped it (the errno) and exits 1. Usage errors exit 2.
//!
//! Subcommands:
//! - `signal PID`, `ptrace PID`: SIGKILL or attach to a host pid.
//! - `visible PATH...`: whether any of the host paths can be reached.
//! - `chroot-escape PATH`: the chroot + fchdir + `..` loop, then whether PATH is visible.
//! - `fds`: the open fds (`N TARGET` per line) and whether `..` of a directory fd leads out.
//! - `module`, `keyctl DESC`, `handle`, `fsopen FSTYPE`, `settime`: kernel interfaces that must
//!   be refused with EPERM (any other errno means the call got past the capability check).
//! - `sniff SECONDS MARKER`: counts packets carrying MARKER on an AF_PACKET socket, and the
//!   probe's own UDP packets to its gateway (proof that the socket sees the container's traffic).

use std::ffi::CString;
use std::io::Error;
use std::process::exit;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let escaped = match (args.first().map(String::as_str), rest.as_slice()) {
        (Some("signal"), [pid]) => signal(pid_arg(pid)),
        (Some("ptrace"), [pid]) => ptrace(pid_arg(pid)),
        (Some("visible"), paths) if !paths.is_empty() => any_visible(paths),
        (Some("chroot-escape"), [marker]) => chroot_escape(marker),
        (Some("fds"), []) => fds(),
        (Some("module"), []) => module(),
        (Some("keyctl"), [desc]) => keyring(desc),
        (Some("handle"), []) => handle(),
        (Some("fsopen"), [fstype]) => fsopen(fstype),
        (Some("settime"), []) => settime(),
        (Some("sniff"), [secs, marker]) => sniff(secs.parse().unwrap_or(3), marker),
        _ => {
            eprintln!("usage: escape-probe SUBCOMMAND ARGS... (see the source)");
            exit(2)
        }
    };
    exit(if escaped { 0 } else { 1 })
}

fn pid_arg(text: &str) -> libc::pid_t {
    text.parse().unwrap_or_else(|_| {
        eprintln!("not a pid: {text}");
        exit(2)
    })
}

fn cstring(text: &str) -> CString {
    CString::new(text).expect("no NUL in arguments")
}

/// Reports a call's outcome: `ok` means the attempt worked.
fn report(what: &str, ret: libc::c_long) -> bool {
    if ret >= 0 {
        println!("ESCAPED {what} returned {ret}");
        true
    } else {
        println!("{what}: {}", Error::last_os_error());
        false
    }
}

/// Reports a call that must be refused by the capability check or seccomp: EPERM is the only
/// acceptable failure, anything else means the kernel went on to look at the arguments.
fn report_eperm(what: &str, ret: libc::c_long) -> bool {
    let err = Error::last_os_error();
    if ret < 0 && err.raw_os_error() == Some(libc::EPERM) {
        println!("{what}: {err}");
        false
    } else if ret < 0 {
        println!("ESCAPED {what} got past the permission check: {err}");
        true
    } else {
        println!("ESCAPED {what} returned {ret}");
        true
    }
}

fn signal(pid: libc::pid_t) -> bool {
    // SAFETY: kill takes plain integers.
    report("kill", unsafe { libc::kill(pid, libc::SIGKILL) }
        as libc::c_long)
}

fn ptrace(pid: libc::pid_t) -> bool {
    // SAFETY: PTRACE_SEIZE takes a pid and null address/data; no memory of ours is used.
    let ret = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0usize, 0usize) };
    report("ptrace(PTRACE_SEIZE)", ret)
}

fn visible(path: &str) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn any_visible(paths: &[&str]) -> bool {
    let mut escaped = false;
    for path in paths {
        if visible(path) {
            println!("ESCAPED {path} is visible");
            escaped = true;
        } else {
            println!("{path}: not visible");
        }
    }
    escaped
}

/// The classic escape from a chroot: keep a directory fd outside a new chroot, fchdir to it and
/// climb with `..`. After pivot_root the climb ends at the container's root.
fn chroot_escape(marker: &str) -> bool {
    let dir = "/tmp/escape-jail";
    let _ = std::fs::create_dir_all(dir);
    let outside = std::fs::File::open("/").expect("opening /");
    let dir_c = cstring(dir);
    // SAFETY: chroot takes a valid NUL-terminated path.
    if unsafe { libc::chroot(dir_c.as_ptr()) } != 0 {
        println!("chroot: {}", Error::last_os_error());
        return false;
    }
    use std::os::fd::AsRawFd;
    // SAFETY: fchdir takes an fd that `outside` keeps open.
    if unsafe { libc::fchdir(outside.as_raw_fd()) } != 0 {
        println!("fchdir: {}", Error::last_os_error());
        return false;
    }
    let up = cstring("..");
    for _ in 0..256 {
        // SAFETY: chdir takes a valid NUL-terminated path.
        unsafe { libc::chdir(up.as_ptr()) };
    }
    let here = cstring(".");
    // SAFETY: chroot takes a valid NUL-terminated path.
    if unsafe { libc::chroot(here.as_ptr()) } != 0 {
        println!("chroot(.): {}", Error::last_os_error());
        return false;
    }
    any_visible(&[marker])
}

/// Lists the open fds; a directory fd whose `..` chain leads somewhere the container's `/` does
/// not (its device and inode differ from those of `/`) points outside the container.
fn fds() -> bool {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/").expect("stat /");
    let list: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .expect("reading /proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let mut escaped = false;
    for fd in list {
        let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{fd}")) else {
            continue; // the directory handle of read_dir, already closed
        };
        println!("{fd} {}", target.display());
        let mut path = format!("/proc/self/fd/{fd}");
        for _ in 0..64 {
            path.push_str("/..");
        }
        if let Ok(top) = std::fs::metadata(&path) {
            if (top.dev(), top.ino()) != (root.dev(), root.ino()) {
                println!("ESCAPED fd {fd} leads to a root that is not the container's");
                escaped = true;
            }
        }
    }
    escaped
}

fn module() -> bool {
    let empty = cstring("");
    // SAFETY: a zero-length image and a valid empty parameter string.
    let init = unsafe {
        libc::syscall(
            libc::SYS_init_module,
            std::ptr::null::<u8>(),
            0,
            empty.as_ptr(),
        )
    };
    let a = report_eperm("init_module", init);
    let file = std::fs::File::open("/proc/self/exe").expect("opening the probe");
    use std::os::fd::AsRawFd;
    // SAFETY: an fd we hold open and a valid empty parameter string.
    let finit =
        unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), empty.as_ptr(), 0) };
    let b = report_eperm("finit_module", finit);
    a || b
}

fn keyring(desc: &str) -> bool {
    const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
    const KEYCTL_UNLINK: libc::c_long = 9;
    const KEY_SPEC_USER_KEYRING: libc::c_long = -4;
    // SAFETY: keyctl with integer arguments only.
    let id = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            KEY_SPEC_USER_KEYRING,
            0,
        )
    };
    let a = report_eperm("keyctl(KEYCTL_GET_KEYRING_ID)", id);
    let (kind, desc_c, payload) = (cstring("user"), cstring(desc), b"forge");
    // SAFETY: valid NUL-terminated type and description, a payload of the given length.
    let key = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            kind.as_ptr(),
            desc_c.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            KEY_SPEC_USER_KEYRING,
        )
    };
    let b = report_eperm("add_key", key);
    if key >= 0 {
        // Leave no key behind on the host's keyring.
        // SAFETY: keyctl with integer arguments only.
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_UNLINK, key, KEY_SPEC_USER_KEYRING) };
    }
    a || b
}

/// The "shocker" exploit: open a file by a forged handle (inode 2, the root of most filesystems).
fn handle() -> bool {
    #[repr(C)]
    struct FileHandle {
        handle_bytes: u32,
        handle_type: i32,
        f_handle: [u8; 8],
    }
    let mut forged = FileHandle {
        handle_bytes: 8,
        handle_type: 1,
        f_handle: [2, 0, 0, 0, 0, 0, 0, 0],
    };
    let mount = std::fs::File::open("/").expect("opening /");
    use std::os::fd::AsRawFd;
    // SAFETY: `forged` is a valid file_handle of 8 handle bytes that outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount.as_raw_fd(),
            &mut forged as *mut FileHandle,
            libc::O_RDONLY,
        )
    };
    report_eperm("open_by_handle_at", fd)
}

fn fsopen(fstype: &str) -> bool {
    let name = cstring(fstype);
    // SAFETY: a valid NUL-terminated filesystem name and no flags.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), 0) };
    report_eperm("fsopen", fd)
}

/// Sets the clock to the time it already has (harmless should it ever succeed).
fn settime() -> bool {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    // SAFETY: `now` is a valid timespec.
    let set = unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &now) };
    let a = report_eperm("clock_settime", set as libc::c_long);
    let tv = libc::timeval {
        tv_sec: now.tv_sec,
        tv_usec: now.tv_nsec / 1000,
    };
    // SAFETY: `tv` is a valid timeval and the timezone is null.
    let b = unsafe { libc::settimeofday(&tv, std::ptr::null()) };
    a | report_eperm("settimeofday", b as libc::c_long)
}

/// The gateway of the default route, from /proc/net/route (little-endian hex).
fn gateway() -> Option<std::net::Ipv4Addr> {
    let routes = std::fs::read_to_string("/proc/net/route").ok()?;
    routes.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let hex = (fields.get(1) == Some(&"00000000")).then(|| fields.get(2))??;
        let raw = u32::from_str_radix(hex, 16).ok()?;
        Some(std::net::Ipv4Addr::from(raw.to_le_bytes()))
    })
}

fn sniff(seconds: u64, marker: &str) -> bool {
    use std::os::fd::FromRawFd;
    let all = (libc::ETH_P_ALL as u16).to_be() as libc::c_int;
    // SAFETY: socket takes plain integers.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, all) };
    if raw < 0 {
        println!("socket(AF_PACKET): {}", Error::last_os_error());
        return false;
    }
    // SAFETY: `raw` is a fresh fd that nothing else owns.
    let socket = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
    let own = format!("own-{marker}");
    let udp = std::net::UdpSocket::bind("0.0.0.0:0").expect("binding a UDP socket");
    let gateway = gateway();
    let (mut foreign, mut own_seen) = (0, 0);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut buf = vec![0u8; 65536];
    while Instant::now() < end {
        if let Some(gw) = gateway {
            let _ = udp.send_to(own.as_bytes(), (gw, 9));
        }
        while let Some(n) = recv_packet(&socket, &mut buf) {
            let packet = &buf[..n];
            if contains(packet, own.as_bytes()) {
                own_seen += 1;
            } else if contains(packet, marker.as_bytes()) {
                foreign += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("own {own_seen} foreign {foreign}");
    if foreign > 0 {
        println!("ESCAPED saw {foreign} packets of the host's traffic");
    }
    foreign > 0
}

fn recv_packet(socket: &std::os::fd::OwnedFd, buf: &mut [u8]) -> Option<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: `buf` is valid for `buf.len()` bytes for the duration of the call.
    let n = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    (n > 0).then_some(n as usize)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
