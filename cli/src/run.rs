//! `forge run` in the foreground (this process waits for the container) or detached (the
//! runtime's monitor waits, see `forge_runtime::monitor`).

use std::process::Stdio;

use forge_image::{host::ensure_default_image, DEFAULT_IMAGE};
use forge_runtime::network::PortError;
use forge_runtime::LaunchIo;
use forge_runtime::NetSpec;
use forge_runtime::EXIT_FORGE_ERROR;
use forge_runtime::OOM_REASON;
use forge_runtime::{Container, CreateOptions, Runtime};
use forge_runtime::{LimitArgs, Limits};

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
    /// Bind a host path (created when missing), mount a named volume (created when missing) or
    /// an anonymous one; OPTIONS: ro, rw, nocopy, rprivate|private|rslave|slave|rshared|shared
    #[arg(
        long = "volume",
        short = 'v',
        value_name = "[HOST-PATH|NAME:]PATH[:OPTIONS]"
    )]
    volume: Vec<String>,
    /// type=bind|volume|tmpfs,src=…,dst=…[,readonly][,bind-propagation=…][,volume-nocopy]
    /// [,tmpfs-size=…][,tmpfs-mode=…] (a bind's source must exist)
    #[arg(long, value_name = "KEY=VALUE,…")]
    mount: Vec<String>,
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
    /// Read environment variables from a file, in Compose's format (`-e` wins over it)
    #[arg(long, value_name = "FILE")]
    env_file: Vec<std::path::PathBuf>,
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
        forge_runtime::Privileges::resolve(&args.cap_add, &args.cap_drop, args.privileged)
            .map_err(|e| e.to_string())?;
    forge_runtime::parse_security_opts(&mut privileges, &args.security_opt)
        .map_err(|e| e.to_string())?;
    let limits = parse_limits(args)?;
    let cgroup_manager = args.cgroup_manager.as_deref().map(str::parse).transpose()?;
    if cgroup_manager.is_some() {
        // Before any image is built or pulled: a manager the host cannot have changes nothing.
        forge_runtime::check_cgroup_manager(cgroup_manager).map_err(|e| e.to_string())?;
    }
    let userns: forge_runtime::UsernsMode = args.userns.parse().map_err(|e| format!("{e}"))?;
    let mounts = parse_mounts(args)?;
    let mut env = Vec::new();
    for file in &args.env_file {
        env.extend(forge_runtime::read_env_file(file).map_err(|e| e.to_string())?);
    }
    env.extend(args.env.iter().cloned());
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
        env,
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
        mounts,
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

/// `-v` and `--mount`, relative host paths from the working directory (a destination that a
/// `--tmpfs` takes too is refused by the runtime).
fn parse_mounts(args: &RunArgs) -> Result<Vec<forge_runtime::Mount>, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("reading the working directory: {e}"))?;
    forge_runtime::parse_mounts(&args.volume, &args.mount, &[], &cwd).map_err(|e| e.to_string())
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
            return runtime.settle_failed_start(&container, &err);
        }
    };
    tracing::debug!(pid = started.pid, "started");
    started.forward_signals();
    if let Some(master) = &started.pty {
        if let Err(e) = forge_runtime::proxy_tty(master, container.config.interactive) {
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

/// Starts the container under a detached monitor and prints its id.
fn detach(runtime: &Runtime, container: Container) -> i32 {
    match runtime.run_detached(&container) {
        Ok(id) => {
            println!("{id}");
            0
        }
        Err(err) => {
            report(&err);
            err.exit_code()
        }
    }
}
