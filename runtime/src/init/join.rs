//! `forge exec` and health checks: run a command inside a running container. A freshly exec'ed,
//! single-threaded copy of Forge joins the container's cgroups and namespaces (as `nsenter`
//! would), forks so the command lands in the container's PID namespace, and relays its exit.
//! No fd but 0, 1 and 2 survives into the command, whatever the caller of `forge exec` leaked.
//!
//! The caller passes the set-up socket as fd 3, as to init, with the spec already queued on it
//! (`Join`), so the spec is on no command line. With a tty (`forge exec -t`) the socket stays
//! open: the forked child starts a session, opens a pty in the container's devpts, sends the master back
//! (`Pty`) and takes the slave as its controlling terminal and stdio before it executes the
//! command. Until then its errors go to the caller's stderr; afterwards to the pty.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cgroup::CgroupPaths;
use crate::channel::{Channel, Message, EXIT_FORGE_ERROR};
use crate::status::ExitInfo;
use crate::sys::{clone_fork, Forked};

/// The argument that makes the Forge binary join a container: `__forge_join CMD...`.
pub const JOIN_ARG: &str = "__forge_join";

/// What the joining process needs to know about the container (sent on the set-up socket).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinSpec {
    pub pid: i32,
    /// PID 1's start time: a recycled pid must not be joined.
    pub pid_start: u64,
    pub cgroup: CgroupPaths,
    pub cwd: String,
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<crate::user::User>,
    #[serde(default)]
    pub privileges: crate::caps::Privileges,
    /// The container has a user namespace of its own: join it first and become its root.
    #[serde(default)]
    pub userns: bool,
    /// Give the command a pty of the container's; the caller gets the master on fd 3.
    #[serde(default)]
    pub tty: bool,
    /// The pty's first window size (rows, columns): the caller's terminal's, set before the
    /// command starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<(u16, u16)>,
}

/// The namespaces to join, in order; the mount namespace last, since it changes what paths mean.
const NAMESPACES: [(&str, libc::c_int); 6] = [
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("mnt", libc::CLONE_NEWNS),
];

fn die(message: String) -> ! {
    eprintln!("forge exec: {message}");
    std::process::exit(EXIT_FORGE_ERROR)
}

/// Entry point: call first thing in `main` when `argv[1] == JOIN_ARG`, before any thread starts.
pub fn main() -> ! {
    let command: Vec<String> = std::env::args().skip(2).collect();
    // SAFETY: the caller hands us fd 3 as our end of the set-up socket, and nothing has opened
    // an fd since exec, so it is still that socket and ours alone.
    let channel = Channel::from_fd(unsafe { OwnedFd::from_raw_fd(super::INIT_FD) });
    let spec = match channel.recv() {
        Ok(Some((Message::Join(spec), _))) => spec,
        Ok(other) => die(format!("reading the join spec: unexpected {other:?}")),
        Err(e) => die(format!("reading the join spec: {e}")),
    };
    // Only with a tty is there more to say (the pty's master); otherwise let go of it now.
    let channel = spec.tty.then_some(channel);
    if command.is_empty() {
        die("no command given".into());
    }
    if let Err(e) = join(&spec) {
        die(e);
    }
    // SAFETY: this process was just exec'ed and has started no threads; it is single-threaded.
    match unsafe { clone_fork(0) } {
        Ok(Forked::Child) => run(&spec, &command, channel.as_ref()),
        Ok(Forked::Parent { child }) => {
            // Only the child speaks; the caller sees EOF once it has exec'ed or died.
            drop(channel);
            let status = loop {
                match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    Ok(status) => break ExitInfo::from_wait(status),
                    Err(e) => die(format!("waiting for the command: {e}")),
                }
            };
            std::process::exit(status.code)
        }
        Err(e) => die(format!("forking into the container: {e}")),
    }
}

/// Joins the container's cgroups, then its namespaces and root directory.
fn join(spec: &JoinSpec) -> Result<(), String> {
    if crate::sys::running_since(spec.pid) != Some(spec.pid_start) {
        return Err("the container is not running".into());
    }
    let open = |what: &str| -> Result<OwnedFd, String> {
        let path = format!("/proc/{}/{what}", spec.pid);
        std::fs::File::open(&path)
            .map(OwnedFd::from)
            .map_err(|e| format!("opening {path}: {e}"))
    };
    // Everything is opened before the first setns: /proc means something else afterwards.
    let namespaces = NAMESPACES
        .iter()
        .map(|(name, flag)| Ok((*name, *flag, open(&format!("ns/{name}"))?)))
        .collect::<Result<Vec<_>, String>>()?;
    let root = open("root")?;
    let userns = match spec.userns {
        true => Some(open("ns/user")?),
        false => None,
    };
    spec.cgroup
        .driver()
        .add(std::process::id() as i32)
        .map_err(|e| format!("joining the container's cgroups: {e}"))?;
    // First, so that the namespaces it owns are joined as its root (as runc's nsexec does).
    if let Some(fd) = userns {
        // SAFETY: setns takes an fd we own and a namespace type; no memory is involved.
        if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWUSER) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(format!("joining the container's user namespace: {e}"));
        }
        crate::userns::become_root()?;
    }
    for (name, flag, fd) in &namespaces {
        // SAFETY: setns takes an fd we own and a namespace type; no memory is involved.
        if unsafe { libc::setns(fd.as_raw_fd(), *flag) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(format!("joining the container's {name} namespace: {e}"));
        }
    }
    nix::unistd::fchdir(root.as_raw_fd())
        .and_then(|()| nix::unistd::chroot("."))
        .map_err(|e| format!("entering the container's root: {e}"))
}

/// The forked child, now in the container's PID namespace: becomes the command, on a pty of
/// the container's when there is a `channel` to send the master over.
fn run(spec: &JoinSpec, command: &[String], channel: Option<&Channel>) -> ! {
    use nix::sys::prctl;
    // A health check that times out kills the joining process; the command must not linger.
    let _ = prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    if let Some(channel) = channel {
        if let Err(e) = take_terminal(spec, channel) {
            die(e);
        }
    }
    // Relative to the container's root, where `join` left us: never the caller's directory.
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    if let Err(e) = nix::unistd::chdir(cwd) {
        die(format!(
            "working directory {cwd:?} in the container: {}",
            e.desc()
        ));
    }
    if let Err(e) = super::check_cwd_inside_root() {
        die(e);
    }
    // The container's limits apply to what is executed in it, as to its own command.
    if let Err(e) = spec.privileges.apply_bounds() {
        die(e);
    }
    let switch_user = || spec.user.as_ref().map_or(Ok(()), crate::user::switch_to);
    if let Err(e) = spec.privileges.seal(switch_user) {
        die(e);
    }
    // Nothing the caller left open (a host directory would lead out of the root, its sockets,
    // the sealed binary) reaches the command: every fd above stderr closes on exec.
    if let Err(e) = crate::sys::cloexec_from(3) {
        die(format!("closing inherited fds: {e}"));
    }
    let path = crate::spec::path_var(&spec.env);
    // The callers refuse an empty command; the library's is not trusted to index.
    let Some(program) = command.first() else {
        die("no command specified".to_string());
    };
    let failure = match super::exec::resolve(Path::new("/"), program, path) {
        Ok(file) => super::exec::exec(&file, command, &spec.env),
        Err(failure) => failure,
    };
    eprintln!("forge exec: {}", failure.message);
    std::process::exit(failure.code)
}

/// Starts a session whose controlling terminal is a new pty in the container's devpts (the
/// mount namespace and root are the container's by now); the master goes to the caller.
fn take_terminal(spec: &JoinSpec, channel: &Channel) -> Result<(), String> {
    nix::unistd::setsid().map_err(|e| format!("starting a session: {e}"))?;
    let slave = super::open_pty(channel)?;
    if let Some(size) = spec.window {
        crate::tty::set_window_size(std::os::fd::AsFd::as_fd(&slave), size);
    }
    super::attach_terminal(slave, spec.user.as_ref())
}
