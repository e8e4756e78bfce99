//! `forge run` in the foreground (this process waits for the container) or detached (a
//! `forge __monitor` process in its own session waits, and writes output to the log).

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};

use forge_netd::ports::PortError;
use forge_runtime::channel::EXIT_FORGE_ERROR;
use forge_runtime::container::NetSpec;
use forge_runtime::container::OOM_REASON;
use forge_runtime::image::{host::ensure_default_image, DEFAULT_IMAGE};
use forge_runtime::launch::{LaunchError, LaunchIo, Started};
use forge_runtime::limits::{LimitArgs, Limits};
use forge_runtime::{Container, CreateOptions, Runtime, RuntimeError};

use crate::report;

#[derive(clap::Args)]
#[command(trailing_var_arg = true, disable_help_flag = true)]
pub struct RunArgs {
    /// Print help (`-h` is --hostname, as in docker run)
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Assign a name to the container
    #[arg(long)]
    name: Option<String>,
    /// Run the command as NAME|UID[:GROUP|GID] (resolved in the image)
    #[arg(long, short = 'u', value_name = "USER")]
    user: Option<String>,
    /// Run a small init as PID 1 that forwards signals and reaps orphans
    #[arg(long)]
    init: bool,
    /// Add a capability to Docker's default set (ALL for every one)
    #[arg(long, value_name = "CAP")]
    cap_add: Vec<String>,
    /// Drop a capability from the default set (ALL for every one)
    #[arg(long, value_name = "CAP")]
    cap_drop: Vec<String>,
    /// seccomp=unconfined (no seccomp filter), seccomp=PROFILE.json (Docker's format) or
    /// no-new-privileges[=false]
    #[arg(long, value_name = "OPT")]
    security_opt: Vec<String>,
    /// Mount the container's root filesystem read-only
    #[arg(long)]
    read_only: bool,
    /// Mount a tmpfs at PATH (OPTIONS as for mount, e.g. size=64m)
    #[arg(long, value_name = "PATH[:OPTIONS]")]
    tmpfs: Vec<String>,
    /// Every capability, no masked /proc or /sys paths, no no_new_privs: the explicit opt-out
    #[arg(long)]
    privileged: bool,
    /// User namespace: host (the default) or auto (a fresh one mapping root inside to an
    /// unprivileged range of the subordinate IDs of user `containers` outside)
    #[arg(long, default_value = "host", value_name = "MODE")]
    userns: String,
    /// Pull the image: missing (when not in the store), always, or never
    #[arg(long, default_value = "missing", value_name = "WHEN", value_parser = ["missing", "always", "never"])]
    pull: String,
    /// Replace the image's entrypoint ("" clears it)
    #[arg(long, value_name = "CMD")]
    entrypoint: Option<String>,
    /// Container hostname [default: the container's name]
    #[arg(long, short = 'h')]
    hostname: Option<String>,
    /// Set environment variables (KEY=VALUE)
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory inside the container
    #[arg(long, short = 'w', value_name = "DIR")]
    workdir: Option<String>,
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Run in the background and print the container id
    #[arg(long, short = 'd')]
    detach: bool,
    /// Keep stdin open
    #[arg(long, short = 'i')]
    interactive: bool,
    /// Allocate a pseudo-terminal
    #[arg(long, short = 't')]
    tty: bool,
    /// CPUs the container may use, e.g. 0.5 or 2
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    cpus: Option<String>,
    /// Memory limit, e.g. 256m
    #[arg(long, short = 'm', value_name = "SIZE", allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory plus swap limit, or -1 for unlimited swap [default: twice --memory]
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Maximum number of processes; 0 or -1 for unlimited [default: 2048]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pids_limit: Option<String>,
    /// Size of the container's writable layer, e.g. 512m (an ext4 image on a loop device)
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    storage: Option<String>,
    /// Where the container's cgroup goes: a cgroup path (cgroupfs manager) [default: /forge on
    /// cgroup v2, forge/ below forge's own cgroup on v1], or a slice (systemd) [default: forge.slice]
    #[arg(long, value_name = "PATH")]
    cgroup_parent: Option<String>,
    /// Who makes the container's cgroup: `systemd` (a transient scope; the default on cgroup v2
    /// hosts booted with systemd) or `cgroupfs` (Forge writes /sys/fs/cgroup itself)
    #[arg(long, value_name = "MANAGER", env = "FORGE_CGROUP_MANAGER")]
    cgroup_manager: Option<String>,
    /// Network to connect to: `bridge` (the default network), a network's name, or `none`;
    /// repeat it to join several (the first one routes to the outside)
    #[arg(
        long,
        alias = "network",
        default_value = "bridge",
        value_name = "NETWORK"
    )]
    net: Vec<String>,
    /// A fixed IPv4 address on the network
    #[arg(long, value_name = "IP")]
    ip: Option<std::net::Ipv4Addr>,
    /// Publish a port: [[HOSTIP:]HOSTPORT:]CONTAINERPORT[/tcp|udp] (no host port: a free one)
    #[arg(long = "publish", short = 'p', value_name = "PORTS")]
    publish: Vec<String>,
    /// Publish every port the image exposes, each on a free host port
    #[arg(long = "publish-all", short = 'P')]
    publish_all: bool,
    /// Another name the containers on the network reach this one by
    #[arg(long = "network-alias", value_name = "NAME")]
    network_alias: Vec<String>,
    image: String,
    /// Command and arguments [default: the image's command]
    #[arg(allow_hyphen_values = true)]
    command: Vec<String>,
}

pub fn run(runtime: &Runtime, args: RunArgs) -> i32 {
    match create(runtime, &args) {
        Ok(container) if args.detach => detach(runtime, container),
        Ok(container) => foreground(runtime, container),
        Err(message) => {
            report(&message);
            EXIT_FORGE_ERROR
        }
    }
}

/// Everything that can be refused before a container exists.
fn create(runtime: &Runtime, args: &RunArgs) -> Result<Container, String> {
    crate::require_root()?;
    check_kernel()?;
    let net = parse_net(args)?;
    let mut privileges =
        forge_runtime::caps::Privileges::resolve(&args.cap_add, &args.cap_drop, args.privileged)
            .map_err(|e| e.to_string())?;
    forge_runtime::security_opt::parse_and_apply(&mut privileges, &args.security_opt)
        .map_err(|e| e.to_string())?;
    let limits = parse_limits(args)?;
    let cgroup_manager = args.cgroup_manager.as_deref().map(str::parse).transpose()?;
    if cgroup_manager.is_some() {
        // Before any image is built or pulled: a manager the host cannot have changes nothing.
        let root = std::path::Path::new(forge_runtime::cgroup::CGROUP_ROOT);
        forge_runtime::cgroup::detect(root)
            .and_then(|mode| forge_runtime::cgroup::Manager::choose(cgroup_manager, mode))
            .map_err(|e| e.to_string())?;
    }
    let userns: forge_runtime::userns::Mode = args.userns.parse().map_err(|e| format!("{e}"))?;
    if args.image == DEFAULT_IMAGE && !runtime.images().exists(DEFAULT_IMAGE) {
        eprintln!("forge: building the default image {DEFAULT_IMAGE:?} from the host's binaries");
        ensure_default_image(runtime.images(), DEFAULT_IMAGE).map_err(|e| e.to_string())?;
    } else {
        let present = runtime.images().exists(&args.image);
        match args.pull.as_str() {
            "always" => {
                crate::images::pull_image(runtime, &args.image, None)?;
            }
            "missing" if !present => {
                crate::images::pull_image(runtime, &args.image, None)?;
            }
            "never" if !present => {
                return Err(format!(
                    "image {} is not in the store and --pull=never forbids pulling it",
                    args.image
                ))
            }
            _ => {}
        }
    }
    let opts = CreateOptions {
        name: args.name.clone(),
        image: args.image.clone(),
        entrypoint: args.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                vec![]
            } else {
                vec![e.clone()]
            }
        }),
        args: args.command.clone(),
        env: args.env.clone(),
        workdir: args.workdir.clone(),
        hostname: args.hostname.clone(),
        tty: args.tty,
        interactive: args.interactive,
        auto_remove: args.rm,
        limits,
        cgroup_parent: args.cgroup_parent.clone(),
        cgroup_manager,
        net,
        labels: Default::default(),
        user: args.user.clone(),
        init: args.init,
        privileges,
        read_only: args.read_only,
        tmpfs: args.tmpfs.clone(),
        userns,
    };
    runtime.create(&opts).map_err(|e| e.to_string())
}

fn parse_net(args: &RunArgs) -> Result<NetSpec, String> {
    let ports = args
        .publish
        .iter()
        .map(|p| p.parse().map_err(|e: PortError| e.to_string()))
        .collect::<Result<_, _>>()?;
    let none = args.net.iter().any(|n| n == "none");
    if none && args.net.len() > 1 {
        return Err("--net none cannot be combined with other networks".into());
    }
    Ok(NetSpec {
        networks: if none { Vec::new() } else { args.net.clone() },
        ip: args.ip,
        ports,
        publish_all: args.publish_all,
        aliases: args.network_alias.clone(),
    })
}

fn parse_limits(args: &RunArgs) -> Result<Limits, String> {
    let flags = LimitArgs {
        cpus: args.cpus.as_deref(),
        memory: args.memory.as_deref(),
        memory_swap: args.memory_swap.as_deref(),
        pids: args.pids_limit.as_deref(),
        storage: args.storage.as_deref(),
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    Limits::parse(&flags, cpus).map_err(|e| e.to_string())
}

/// The kernel features a container needs, checked before anything is created.
fn check_kernel() -> Result<(), String> {
    // File systems (overlay), loop devices, veth, bridge and nf_tables are not checked here: the
    // kernel loads their modules on first use, and the step that uses them names what is missing.
    for ns in ["pid", "mnt", "uts", "ipc", "net", "cgroup"] {
        if !std::path::Path::new(&format!("/proc/self/ns/{ns}")).exists() {
            return Err(format!("the kernel has no {ns} namespace support"));
        }
    }
    Ok(())
}

/// The container's host pidfd, for the signal handler that forwards signals to it.
static FORWARD_TO: AtomicI32 = AtomicI32::new(-1);

extern "C" fn forward_signal(sig: libc::c_int) {
    let fd = FORWARD_TO.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: pidfd_send_signal is a plain syscall, async-signal-safe; a null siginfo is allowed.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                sig,
                std::ptr::null_mut::<libc::c_void>(),
                0,
            )
        };
    }
}

/// Like `docker run`'s sig-proxy: signals sent to forge go to the container's PID 1.
fn forward_signals(started: &Started) {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    FORWARD_TO.store(started.pidfd.as_raw_fd(), Ordering::Relaxed);
    let action = SigAction::new(
        SigHandler::Handler(forward_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        // SAFETY: the handler only reads an atomic and makes one syscall, both async-signal-safe.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// The exit code of a failed start. A command that could not be executed leaves an exited
/// container behind, as Docker does; any other failure removes what was created.
fn start_failed(runtime: &Runtime, container: &Container, err: &RuntimeError) -> i32 {
    match err {
        RuntimeError::Launch {
            source: LaunchError::Exec { code, .. },
            ..
        } => *code,
        _ => {
            runtime.discard(container);
            EXIT_FORGE_ERROR
        }
    }
}

fn foreground(runtime: &Runtime, mut container: Container) -> i32 {
    let io = LaunchIo {
        stdin: if container.config.interactive {
            Stdio::inherit()
        } else {
            Stdio::null()
        },
        stdout: Stdio::inherit(),
        stderr: Stdio::inherit(),
    };
    tracing::debug!(id = container.id(), "created");
    let started = match runtime.start(&mut container, io, true) {
        Ok(started) => started,
        Err(err) => {
            report(&err);
            return start_failed(runtime, &container, &err);
        }
    };
    tracing::debug!(pid = started.pid, "started");
    forward_signals(&started);
    if let Some(master) = &started.pty {
        if let Err(e) = forge_runtime::tty::proxy(master, container.config.interactive) {
            tracing::warn!("terminal: {e}");
        }
    }
    let exit = runtime.wait(&mut container, &started);
    tracing::debug!(code = exit.code, "exited and recorded");
    if exit.reason == OOM_REASON {
        report(&format!("container {}: {OOM_REASON}", container.name()));
    }
    exit.code
}

/// Starts `forge __monitor ID` in its own session and relays its one-line report.
fn detach(runtime: &Runtime, container: Container) -> i32 {
    let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    let mut cmd = Command::new(exe);
    cmd.arg("--root")
        .arg(&runtime.roots().data)
        .arg("--run-root")
        .arg(&runtime.roots().run);
    cmd.arg("__monitor").arg(container.id());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe; the monitor must not die with our terminal session.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            report(&format!("starting the container monitor: {e}"));
            runtime.discard(&container);
            return EXIT_FORGE_ERROR;
        }
    };
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line);
    // The monitor lives on; it is reparented to init when we exit, so don't wait for it.
    std::mem::forget(child);
    match line.trim_end().split_once(' ') {
        None if line.trim_end() == "ok" => {
            println!("{}", container.id());
            0
        }
        Some((code, message)) => {
            report(&message);
            code.parse().unwrap_or(EXIT_FORGE_ERROR)
        }
        None => {
            report(&format!(
                "container {}: the monitor exited before starting it",
                container.name()
            ));
            runtime.discard(&container);
            EXIT_FORGE_ERROR
        }
    }
}

/// `forge __monitor ID`: starts a detached container with output to its log, reports `ok` or
/// `CODE MESSAGE` on stdout, then waits for the container and records its exit.
pub fn monitor(runtime: &Runtime, id: &str) -> i32 {
    let mut report_to = std::io::stdout();
    let mut say = |text: &str| {
        let _ = writeln!(report_to, "{text}");
        let _ = report_to.flush();
    };
    let mut container = match runtime.get(id) {
        Ok(c) => c,
        Err(e) => {
            say(&format!("{EXIT_FORGE_ERROR} {e}"));
            return EXIT_FORGE_ERROR;
        }
    };
    let log_path = runtime.log_path(&container);
    let (log, io) = match log_io(&log_path) {
        Ok(opened) => opened,
        Err(e) => {
            say(&format!(
                "{EXIT_FORGE_ERROR} opening log {}: {e}",
                log_path.display()
            ));
            runtime.discard(&container);
            return EXIT_FORGE_ERROR;
        }
    };
    let started = match runtime.start(&mut container, io, true) {
        Ok(started) => started,
        Err(err) => {
            let code = start_failed(runtime, &container, &err);
            say(&format!("{code} {err}"));
            return code;
        }
    };
    say("ok");
    // Let go of the reporting pipe so `forge run -d` returns now.
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
    }
    if let Some(master) = &started.pty {
        copy_to_log(master, &log);
    }
    runtime.wait(&mut container, &started).code
}

/// The log file, and stdio for a detached container that writes both streams to it.
fn log_io(path: &std::path::Path) -> std::io::Result<(std::fs::File, LaunchIo)> {
    let log = OpenOptions::new().create(true).append(true).open(path)?;
    let io = LaunchIo {
        stdin: Stdio::null(),
        stdout: log.try_clone()?.into(),
        stderr: log.try_clone()?.into(),
    };
    Ok((log, io))
}

/// With `-dt` the container writes to a pty; its output goes to the log until it hangs up.
fn copy_to_log(master: &OwnedFd, mut log: &std::fs::File) {
    let mut buf = [0u8; 8192];
    loop {
        match nix::unistd::read(master.as_raw_fd(), &mut buf) {
            Ok(0) | Err(nix::errno::Errno::EIO) => return,
            Ok(n) => {
                if log.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}
