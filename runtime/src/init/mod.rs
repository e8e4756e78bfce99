//! The container's init process: a freshly exec'ed, single-threaded copy of Forge.
//!
//! Stage 1 reads the spec from the set-up socket (fd 3), then `clone`s the container's PID 1 with
//! new PID, mount, UTS, IPC and network namespaces and `CLONE_PARENT`, so PID 1 becomes a child of
//! the caller (who waits for it through a pidfd) and stage 1 can exit at once.
//! Stage 2 is PID 1: it builds the root filesystem, pivots into it, reports `Ready`, waits for `Go`
//! (the caller has placed it in its cgroups and network meanwhile), enters a new cgroup namespace,
//! and only then executes the user's command.
//! With `--userns=auto` the clone adds `CLONE_NEWUSER` (so the new user namespace owns the
//! others) and PID 1 waits for the caller to map it before doing anything (see [`crate::userns`]).

mod chown;
pub(crate) mod copy_up;
mod exec;
pub mod join;
pub(crate) mod mount_in;
mod reaper;
pub mod rootfs;

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::channel::{Channel, Message, EXIT_FORGE_ERROR};
use crate::spec::InitSpec;
use crate::sys::{clone_fork, Forked};

/// The argument that makes the Forge binary run as a container's init process.
pub const INIT_ARG: &str = "__forge_init";
/// The fd number on which the init process finds its end of the set-up socket.
pub const INIT_FD: i32 = 3;

const NAMESPACES: libc::c_int = libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWNET;

/// Runs the init, join, monitor or `forge cp` mount process instead of the program when this
/// binary was re-executed as one (`argv[1]` is [`INIT_ARG`], [`join::JOIN_ARG`],
/// [`crate::monitor::MONITOR_ARG`] or [`crate::cp::stopped::MOUNT_ARG`]); returns otherwise. Call it first thing
/// in `main` of every binary that starts containers, before any thread starts. The monitor's
/// runtime gets its network seam from `network_for`, as the caller's own runtime would.
pub fn dispatch(network_for: crate::network::NetworkFor) {
    match std::env::args_os().nth(1) {
        Some(a) if a == INIT_ARG => {
            hide_from_container(c"forge-init");
            main()
        }
        Some(a) if a == join::JOIN_ARG => {
            hide_from_container(c"forge-exec");
            join::main()
        }
        Some(a) if a == crate::monitor::MONITOR_ARG => crate::monitor::main(network_for),
        Some(a) if a == crate::cp::stopped::MOUNT_ARG => crate::cp::stopped::main(),
        _ => {}
    }
}

/// Makes this process non-dumpable until it executes the user's command (exec resets the flag),
/// as runc does: without CAP_SYS_PTRACE a process in the container can then not open
/// `/proc/PID/exe`, `fd/` or `mem` of Forge's processes as they join it. Also names the process,
/// which was executed as `/proc/self/fd/N` and would otherwise show up as "N" in `ps`.
fn hide_from_container(name: &std::ffi::CStr) {
    // SAFETY: PR_SET_DUMPABLE and PR_SET_NAME change only this process's attributes; the name is
    // a NUL-terminated string that outlives the call.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0);
    }
}

/// Fails unless the working directory is reachable from the root directory: a directory fd or
/// cwd inherited from outside would make `getcwd` report it as unreachable (glibc: `ENOENT`).
pub(crate) fn check_cwd_inside_root() -> Result<(), String> {
    match nix::unistd::getcwd() {
        Ok(dir) if dir.is_absolute() => Ok(()),
        Ok(dir) => Err(format!(
            "working directory {dir:?} is outside the container"
        )),
        Err(e) => Err(format!("working directory is outside the container: {e}")),
    }
}

/// Entry point of the init process. Call it first thing in `main` when `argv[1] == INIT_ARG`,
/// before any thread is started.
pub fn main() -> ! {
    // SAFETY: the caller hands us fd 3 as the init end of the set-up socket and nothing else uses it.
    let channel = Channel::from_fd(unsafe { OwnedFd::from_raw_fd(INIT_FD) });
    let spec = match channel.recv() {
        Ok(Some((Message::Spec(spec), _))) => spec,
        _ => std::process::exit(EXIT_FORGE_ERROR),
    };
    // PID 1 must not speak before stage 1 has sent its pid, or the caller would read `Ready`
    // where it expects `Pid` (stage 1 can be preempted right after clone). PID 1 waits for EOF
    // on this pipe, which comes when stage 1 exits.
    let (gate_read, gate_write) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(pipe) => pipe,
        Err(e) => fail(&channel, EXIT_FORGE_ERROR, format!("creating a pipe: {e}")),
    };
    let userns = match spec.userns {
        Some(_) => libc::CLONE_NEWUSER,
        None => 0,
    };
    // SAFETY: this process was just exec'ed and has started no threads; it is single-threaded.
    match unsafe { clone_fork(libc::CLONE_PARENT | NAMESPACES | userns) } {
        Ok(Forked::Parent { child }) => {
            let _ = channel.send(&Message::Pid(child));
            std::process::exit(0)
        }
        Ok(Forked::Child) => {
            drop(gate_write);
            let mut byte = [0u8; 1];
            while let Err(nix::errno::Errno::EINTR) =
                nix::unistd::read(gate_read.as_raw_fd(), &mut byte)
            {}
            drop(gate_read);
            container_init(&channel, &spec)
        }
        Err(e) => fail(
            &channel,
            EXIT_FORGE_ERROR,
            format!("creating the container's namespaces: {e}"),
        ),
    }
}

fn fail(channel: &Channel, code: i32, message: String) -> ! {
    let _ = channel.send(&Message::Failed { code, message });
    std::process::exit(code)
}

/// PID 1 of the container.
fn container_init(channel: &Channel, spec: &InitSpec) -> ! {
    let handed = match spec.userns {
        Some(_) => crate::userns::receive(channel, spec)
            .and_then(|handed| crate::userns::become_root().map(|()| handed)),
        None => Ok(Default::default()),
    };
    if let Err(message) = handed.and_then(|handed| prepare(channel, spec, handed)) {
        fail(channel, EXIT_FORGE_ERROR, message);
    }
    match channel.recv() {
        Ok(Some((Message::Go, _))) => {}
        _ => std::process::exit(EXIT_FORGE_ERROR), // the caller gave up or died
    }
    if let Err(message) = enter(spec) {
        fail(channel, EXIT_FORGE_ERROR, message);
    }
    // create refuses an empty command; a spec without one is not trusted to index.
    let Some(command) = spec.args.first() else {
        fail(
            channel,
            EXIT_FORGE_ERROR,
            "no command specified".to_string(),
        );
    };
    let file = match exec::resolve(Path::new("/"), command, spec.path_var()) {
        Ok(file) => file,
        Err(failure) => fail(channel, failure.code, failure.message),
    };
    // Before the reaper forks, so that PID 1 is bounded as tightly as the command.
    if let Err(message) = spec.privileges.apply_bounds() {
        fail(channel, EXIT_FORGE_ERROR, message);
    }
    if spec.init {
        reaper::run(channel, spec, &file)
    }
    exec_command(channel, spec, &file)
}

/// Becomes the user's command (as its user); reports over the channel if that fails.
fn exec_command(channel: &Channel, spec: &InitSpec, file: &Path) -> ! {
    let switch_user = || spec.user.as_ref().map_or(Ok(()), crate::user::switch_to);
    if let Err(message) = spec.privileges.seal(switch_user) {
        fail(channel, EXIT_FORGE_ERROR, message);
    }
    let failure = exec::exec(file, &spec.args, &spec.env);
    fail(channel, failure.code, failure.message)
}

/// Everything that can run before the caller says go: mounts, pivot_root, hostname, pty.
/// `handed`: what the caller mounted for a user namespace (nothing without one).
fn prepare(
    channel: &Channel,
    spec: &InitSpec,
    handed: crate::userns::Handed,
) -> Result<(), String> {
    use nix::sys::prctl;
    if spec.die_with_parent {
        prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .map_err(|e| format!("setting the parent-death signal: {e}"))?;
    }
    nix::unistd::setsid().map_err(|e| format!("starting a session: {e}"))?;
    rootfs::apply(spec, &rootfs::plan(spec), handed).map_err(|e| e.to_string())?;
    rootfs::pivot(&spec.rootfs).map_err(|e| e.to_string())?;
    nix::unistd::sethostname(&spec.hostname)
        .map_err(|e| format!("setting hostname {:?}: {e}", spec.hostname))?;
    bring_up_loopback().map_err(|e| format!("bringing up lo: {e}"))?;
    if spec.tty {
        let slave = open_pty(channel)?;
        attach_terminal(slave, spec.user.as_ref())?;
    }
    channel
        .send(&Message::Ready)
        .map_err(|e| format!("reporting ready: {e}"))
}

/// The last steps after `Go`: a cgroup namespace rooted at the cgroup we were just placed in,
/// the working directory, and no fd of ours left open across exec.
fn enter(spec: &InitSpec) -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
        .map_err(|e| format!("creating the cgroup namespace: {e}"))?;
    let cwd = if spec.cwd.is_empty() {
        "/"
    } else {
        spec.cwd.as_str()
    };
    nix::unistd::chdir(cwd)
        .map_err(|e| format!("working directory {cwd:?} in the container: {}", e.desc()))?;
    check_cwd_inside_root()?;
    crate::sys::cloexec_from(3).map_err(|e| format!("closing inherited fds: {e}"))
}

/// Opens a pty in the container's own devpts, sends the master to the caller, returns the slave.
fn open_pty(channel: &Channel) -> Result<OwnedFd, String> {
    use nix::fcntl::OFlag;
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| format!("opening /dev/ptmx: {e}"))?;
    grantpt(&master)
        .and_then(|()| unlockpt(&master))
        .map_err(|e| format!("unlocking the pty: {e}"))?;
    let name = ptsname_r(&master).map_err(|e| format!("naming the pty: {e}"))?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("opening {name}: {e}"))?;
    channel
        .send_with_fd(&Message::Pty, Some(master.as_fd()))
        .map_err(|e| format!("sending the pty: {e}"))?;
    // SAFETY: open just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(slave) })
}

/// Makes the pty slave our controlling terminal and stdin, stdout and stderr, owned by the
/// command's `user` (the group stays devpts's), so that it can reopen its own terminal.
fn attach_terminal(slave: OwnedFd, user: Option<&crate::user::User>) -> Result<(), String> {
    use nix::errno::Errno;
    use std::os::fd::AsRawFd;
    nix::ioctl_write_int_bad!(tiocsctty, libc::TIOCSCTTY);
    if let Some(user) = user {
        let uid = Some(nix::unistd::Uid::from_raw(user.uid));
        match nix::unistd::fchown(slave.as_raw_fd(), uid, None) {
            // As runc: an id the user namespace does not map leaves the terminal as it is.
            Ok(()) | Err(Errno::EINVAL | Errno::EPERM) => {}
            Err(e) => return Err(format!("giving the pty to uid {}: {e}", user.uid)),
        }
    }
    // SAFETY: TIOCSCTTY takes an int argument; we are a session leader without a terminal (setsid above).
    unsafe { tiocsctty(slave.as_raw_fd(), 0) }
        .map_err(|e| format!("taking the pty as controlling terminal: {e}"))?;
    for target in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), target)
            .map_err(|e| format!("attaching the pty: {e}"))?;
    }
    Ok(())
}

/// `ip link set lo up` through an ioctl on a throwaway socket: cheaper than a netlink round trip.
fn bring_up_loopback() -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads into the ifreq we own, which outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: after SIOCGIFFLAGS the flags member of the union is the active one.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own, which outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
