//! The commands that look at or act on existing containers and images.

use std::io::{Read, Write};
use std::time::Duration;

use forge_image::host::build_host_image;
use forge_runtime::now_secs;
use forge_runtime::parse_signal;
use forge_runtime::{Container, Runtime, Status};

use crate::format;
use crate::report;

/// Exit code of a management command when some container could not be handled.
const EXIT_FAILED: i32 = 1;

#[derive(clap::Args)]
pub struct PsArgs {
    /// Show all containers, not only running ones
    #[arg(long, short = 'a')]
    all: bool,
    /// Only print container ids
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(clap::Args)]
pub struct StartArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct StopArgs {
    /// Seconds to wait for the container to exit before killing it
    #[arg(long = "time", short = 't', default_value_t = 10)]
    time: u64,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct KillArgs {
    /// Signal to send
    #[arg(long, short = 's', default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct RmArgs {
    /// Kill a running container before removing it
    #[arg(long, short = 'f')]
    force: bool,
    /// Also remove the container's anonymous volumes (named volumes stay)
    #[arg(long, short = 'v')]
    volumes: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct LogsArgs {
    /// Follow the output until the container exits
    #[arg(long, short = 'f')]
    follow: bool,
    container: String,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct StatsArgs {
    /// Print one sample and exit
    #[arg(long)]
    no_stream: bool,
    /// Containers to show [default: all running]
    containers: Vec<String>,
}

#[derive(clap::Subcommand)]
pub enum ImageCommand {
    /// Build an image from the host's binaries and the libraries they need
    BuildHost {
        name: String,
        /// A binary to include, by path or by name on PATH [default: busybox's applets]
        #[arg(long = "bin", value_name = "PATH|NAME")]
        bins: Vec<String>,
    },
    /// List images
    Ls,
    /// Remove an image
    Rm { name: String },
    /// Show an image's configuration and layers as JSON
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// Runs `action` on each named container; reports failures and says whether all succeeded.
fn each(names: &[String], mut action: impl FnMut(&str) -> Result<(), String>) -> i32 {
    let mut code = 0;
    for name in names {
        match action(name) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                report(&e);
                code = EXIT_FAILED;
            }
        }
    }
    code
}

pub(crate) fn status_text(c: &Container, now: u64) -> String {
    let mut text = status_word(c, now);
    if let Some(health) = &c.state.health {
        text.push_str(&format!(" ({health})"));
    }
    match c.state.restarts {
        0 => {}
        1 => text.push_str(", 1 restart"),
        n => text.push_str(&format!(", {n} restarts")),
    }
    text
}

fn status_word(c: &Container, now: u64) -> String {
    match c.state.status {
        Status::Created => "Created".to_string(),
        Status::Running => format!(
            "Up {}",
            format::duration(now.saturating_sub(c.state.started_at.unwrap_or(now)))
        ),
        Status::Exited => {
            let code = c.state.exit.as_ref().map_or(-1, |e| e.code);
            let when = c
                .state
                .finished_at
                .map(|t| format!(" {}", format::ago(t, now)))
                .unwrap_or_default();
            format!("Exited ({code}){when}")
        }
    }
}

pub fn ps(runtime: &Runtime, args: &PsArgs) -> i32 {
    let containers = match runtime.list() {
        Ok(list) => list,
        Err(e) => {
            report(&e);
            return EXIT_FAILED;
        }
    };
    let shown: Vec<&Container> = containers
        .iter()
        .filter(|c| args.all || c.state.status == Status::Running)
        .collect();
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for c in shown {
            let _ = writeln!(out, "{}", &c.id()[..12]);
        }
        return 0;
    }
    let now = now_secs();
    let _ = writeln!(
        out,
        "{:<12}  {:<12}  {:<22}  {:<16}  {:<26}  {:<8}  {:<15}  {:<24}  NAMES",
        "CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PID", "IP", "PORTS"
    );
    for c in shown {
        let pid = c
            .state
            .pid
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into());
        let ip = c.state.ip.map_or_else(|| "-".into(), |ip| ip.to_string());
        // As docker ps: the ports published by the running container, host ports as chosen.
        let ports: Vec<String> = c.state.ports.iter().map(|p| p.to_string()).collect();
        let _ = writeln!(
            out,
            "{:<12}  {:<12}  {:<22}  {:<16}  {:<26}  {:<8}  {:<15}  {:<24}  {}",
            &c.id()[..12],
            c.config.image,
            format::command(&c.config.args, 20),
            format::ago(c.config.created, now),
            status_text(c, now),
            pid,
            ip,
            if ports.is_empty() {
                "-".into()
            } else {
                ports.join(", ")
            },
            c.name()
        );
    }
    0
}

/// Starts each stopped container under a detached monitor, as `docker start` does; one that
/// runs already is left alone.
pub fn start(runtime: &Runtime, args: &StartArgs) -> i32 {
    each(&args.containers, |name| {
        let c = runtime.get(name).map_err(|e| e.to_string())?;
        if c.is_running() {
            return Ok(());
        }
        runtime
            .start_detached(&c)
            .map(drop)
            .map_err(|e| e.to_string())
    })
}

pub fn stop(runtime: &Runtime, args: &StopArgs) -> i32 {
    each(&args.containers, |name| {
        runtime
            .stop(name, Duration::from_secs(args.time))
            .map_err(|e| e.to_string())
    })
}

pub fn kill(runtime: &Runtime, args: &KillArgs) -> i32 {
    let sig = match parse_signal(&args.signal) {
        Ok(sig) => sig,
        Err(e) => {
            report(&e);
            return EXIT_FAILED;
        }
    };
    each(&args.containers, |name| {
        runtime.kill(name, sig).map_err(|e| e.to_string())
    })
}

pub fn rm(runtime: &Runtime, args: &RmArgs) -> i32 {
    each(&args.containers, |name| {
        if args.volumes {
            runtime.remove_with_volumes(name, args.force)
        } else {
            runtime.remove(name, args.force)
        }
        .map_err(|e| e.to_string())
    })
}

pub fn logs(runtime: &Runtime, args: &LogsArgs) -> i32 {
    let container = match runtime.get(&args.container) {
        Ok(c) => c,
        Err(e) => {
            report(&e);
            return EXIT_FAILED;
        }
    };
    let path = runtime.log_path(&container);
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report(&format!(
                "container {} has no log: only detached containers (-d) write one",
                container.name()
            ));
            return EXIT_FAILED;
        }
        Err(e) => {
            report(&format!("reading {}: {e}", path.display()));
            return EXIT_FAILED;
        }
    };
    let mut out = std::io::stdout();
    let _ = out.write_all(&crate::log_files::rotated_text(runtime, &container));
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if file.read_to_end(&mut buf).is_ok() && !buf.is_empty() {
            let _ = out.write_all(&buf);
            let _ = out.flush();
            continue;
        }
        if !args.follow {
            return 0;
        }
        if let Some(newer) = crate::log_files::reopened(&file, &path) {
            file = newer;
            continue;
        }
        let running = runtime.get(container.id()).is_ok_and(|c| c.is_running());
        if !running {
            // One last read: output written between our read and the exit.
            buf.clear();
            let _ = file.read_to_end(&mut buf);
            let _ = out.write_all(&buf);
            return 0;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn inspect(runtime: &Runtime, args: &InspectArgs) -> i32 {
    let mut code = 0;
    let mut found = Vec::new();
    for name in &args.containers {
        match runtime.get(name) {
            Ok(c) => found.push(serde_json::json!({ "Config": c.config, "State": c.state })),
            Err(e) => {
                report(&e);
                code = EXIT_FAILED;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&found).expect("json"));
    code
}

pub fn image(runtime: &Runtime, cmd: ImageCommand) -> i32 {
    match cmd {
        ImageCommand::Ls => crate::images::list(runtime, false),
        ImageCommand::BuildHost { name, bins } => {
            if let Err(e) = crate::require_root() {
                report(&e);
                return EXIT_FAILED;
            }
            match build_host_image(runtime.images(), &name, &bins) {
                Ok(image) => {
                    println!("{} ({})", image.name, format::size(image.config.size));
                    0
                }
                Err(e) => {
                    report(&e);
                    EXIT_FAILED
                }
            }
        }
        ImageCommand::Rm { name } => crate::images::remove(runtime, &[name], false),
        ImageCommand::Inspect { names } => crate::images::inspect(runtime, &names),
    }
}

/// Total memory of the host, for MEM % of containers without a memory limit.
fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        })
        .map_or(0, |kb| kb * 1024)
}

fn running_containers(runtime: &Runtime, names: &[String]) -> Result<Vec<Container>, String> {
    if names.is_empty() {
        let all = runtime.list().map_err(|e| e.to_string())?;
        return Ok(all.into_iter().filter(|c| c.is_running()).collect());
    }
    names
        .iter()
        .map(|n| runtime.get(n).map_err(|e| e.to_string()))
        .collect()
}

/// `forge stats`: CPU %, memory use and limit, and process count, from the containers' cgroups.
pub fn stats(runtime: &Runtime, args: &StatsArgs) -> i32 {
    let interval = Duration::from_secs(1);
    let host_memory = host_memory();
    let mut previous: std::collections::HashMap<String, (u64, std::time::Instant)> =
        Default::default();
    loop {
        let containers = match running_containers(runtime, &args.containers) {
            Ok(list) => list,
            Err(e) => {
                report(&e);
                return EXIT_FAILED;
            }
        };
        // The first CPU figure needs two samples, as `docker stats --no-stream` takes.
        if previous.is_empty() {
            for c in &containers {
                previous.insert(
                    c.id().to_string(),
                    (runtime.stats(c).cpu_usage_ns, std::time::Instant::now()),
                );
            }
            std::thread::sleep(interval);
        }
        let mut out = String::new();
        if !args.no_stream {
            out.push_str("\x1b[2J\x1b[H");
        }
        out.push_str(&format!(
            "{:<12}  {:<20}  {:>7}  {:>22}  {:>7}  {:>5}\n",
            "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"
        ));
        for c in &containers {
            let now = std::time::Instant::now();
            let stats = runtime.stats(c);
            let (cpu_before, at) = previous
                .get(c.id())
                .copied()
                .unwrap_or((stats.cpu_usage_ns, now));
            let elapsed = now.duration_since(at).as_nanos().max(1) as f64;
            let cpu = stats.cpu_usage_ns.saturating_sub(cpu_before) as f64 / elapsed * 100.0;
            previous.insert(c.id().to_string(), (stats.cpu_usage_ns, now));
            let limit = stats.memory_limit.unwrap_or(host_memory).max(1);
            out.push_str(&format!(
                "{:<12}  {:<20}  {:>6.2}%  {:>22}  {:>6.2}%  {:>5}\n",
                &c.id()[..12],
                c.name(),
                cpu,
                format!(
                    "{} / {}",
                    format::binary_size(stats.memory_bytes),
                    format::binary_size(limit)
                ),
                stats.memory_bytes as f64 / limit as f64 * 100.0,
                stats.pids
            ));
        }
        print!("{out}");
        let _ = std::io::stdout().flush();
        if args.no_stream {
            return 0;
        }
        std::thread::sleep(interval);
    }
}
