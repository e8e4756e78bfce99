//! `forge`: a Docker-like command line over forge-runtime. Parses arguments, calls the library,
//! prints. When re-executed as a container's init, joining or monitor process (see
//! `forge_runtime::init::dispatch`) it is that process instead.

mod compose;
mod cp;
mod exec;
mod format;
mod images;
mod log_files;
mod manage;
mod network;
mod run;
mod volume;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "forge",
    version,
    about = "Run isolated Linux containers",
    disable_help_subcommand = true
)]
struct Cli {
    /// Data root: images, containers' layers, configs and logs.
    #[arg(long, global = true, env = "FORGE_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
    /// Run root: live state [default: /run/forge, or ROOT/run with --root].
    #[arg(long, global = true, env = "FORGE_RUN_ROOT", value_name = "DIR")]
    run_root: Option<PathBuf>,
    /// Diagnostic log format on stderr (filter with RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Create and run a container
    Run(Box<run::RunArgs>),
    /// Run a command in a running container
    Exec(exec::ExecArgs),
    /// List containers
    Ps(manage::PsArgs),
    /// Copy files and directories between a container and the host (or a tar stream)
    Cp(cp::CpArgs),
    /// Start stopped containers again, detached
    Start(manage::StartArgs),
    /// Stop containers: SIGTERM, then SIGKILL after the grace period
    Stop(manage::StopArgs),
    /// Send a signal to containers
    Kill(manage::KillArgs),
    /// Remove containers
    Rm(manage::RmArgs),
    /// Show the output of a container
    Logs(manage::LogsArgs),
    /// Show CPU, memory and process use of running containers
    Stats(manage::StatsArgs),
    /// Show a container's configuration and state as JSON
    Inspect(manage::InspectArgs),
    /// List images
    Images {
        /// Show manifest digests
        #[arg(long)]
        digests: bool,
    },
    /// Pull an image from a registry
    Pull(images::PullArgs),
    /// Store credentials for a registry (checked first) in ~/.docker/config.json
    Login(images::LoginArgs),
    /// Load images from an OCI-layout or `docker save` archive
    Load(images::LoadArgs),
    /// Save an image as an OCI-layout archive
    Save(images::SaveArgs),
    /// Remove images (and the layers no other image needs)
    Rmi(images::RmiArgs),
    /// Manage images
    #[command(subcommand)]
    Image(manage::ImageCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Run a compose project (compose.yaml or compose.toml) through forge-supervise
    Compose(compose::ComposeArgs),
}

fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    // Container inits, joins (exec, health checks) and detached containers' monitors
    // re-execute this binary: they must start no thread and parse nothing first.
    forge_host::dispatch();
    let cli = Cli::parse();
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`forge inspect x | head`). The monitor (dispatched above) keeps ignoring it: it must
    // outlive its caller.
    // SAFETY: resetting a signal to its default disposition has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    init_logging(cli.log_format);
    let roots = forge_runtime::Roots::new(cli.root, cli.run_root);
    let runtime = forge_host::runtime(roots);
    let code = match cli.command {
        Command::Run(args) => run::run(&runtime, *args),
        Command::Exec(args) => exec::exec(&runtime, &args),
        Command::Ps(args) => manage::ps(&runtime, &args),
        Command::Cp(args) => cp::cp(&runtime, &args),
        Command::Start(args) => manage::start(&runtime, &args),
        Command::Stop(args) => manage::stop(&runtime, &args),
        Command::Kill(args) => manage::kill(&runtime, &args),
        Command::Rm(args) => manage::rm(&runtime, &args),
        Command::Logs(args) => manage::logs(&runtime, &args),
        Command::Stats(args) => manage::stats(&runtime, &args),
        Command::Inspect(args) => manage::inspect(&runtime, &args),
        Command::Images { digests } => images::list(&runtime, digests),
        Command::Load(args) => images::load(&runtime, &args),
        Command::Pull(args) => images::pull(&runtime, &args),
        Command::Login(args) => images::login(&args),
        Command::Save(args) => images::save(&runtime, &args),
        Command::Rmi(args) => images::rmi(&runtime, &args),
        Command::Image(cmd) => manage::image(&runtime, cmd),
        Command::Network(cmd) => network::network(&forge_host::netd(runtime.roots()), cmd),
        Command::Volume(cmd) => volume::volume(&runtime, cmd),
        Command::Compose(args) => compose::compose(&runtime, &args),
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// Prints one error line the way every command does.
pub(crate) fn report(err: &dyn std::fmt::Display) {
    eprintln!("forge: {err}");
}

/// Forge needs root for namespaces, mounts and device nodes; say so before touching anything.
pub(crate) fn require_root() -> Result<(), String> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err("must be run as root (uid 0): forge creates namespaces, mounts and device nodes".into())
    }
}
