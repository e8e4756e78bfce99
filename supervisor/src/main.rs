//! `forge-supervise compose.toml`: runs a set of services as Forge containers and keeps them
//! running, like `docker compose up`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use forge_runtime::CgroupManager as Manager;
use std::sync::Arc;

use forge_supervisor::compose::{Compose, LoadOptions};
use forge_supervisor::output::{note, LossyStderr, Style};
use forge_supervisor::up::socket::Loader;
use forge_supervisor::up::Options;

#[derive(Parser)]
#[command(name = "forge-supervise", version, about)]
struct Cli {
    /// Validate the file and exit without starting anything
    #[arg(long)]
    check: bool,
    /// Print the model the files give (defaults filled in, variables substituted, extends,
    /// merges and replicas resolved), as `docker compose config`, and exit
    #[arg(long, value_name = "FORMAT", num_args = 0..=1, default_missing_value = "yaml", value_parser = ["yaml", "json"])]
    config: Option<String>,
    /// Remove what the project left (its containers and networks; with -v its volumes) and
    /// exit, as `docker compose down` does for a project no supervisor runs
    #[arg(long, conflicts_with = "check")]
    down: bool,
    /// Project name [default: the compose file's directory name]
    #[arg(long, short = 'p')]
    project_name: Option<String>,
    #[command(flatten)]
    output: forge_supervisor::output::OutputFlags,
    /// Stop every service when one exits
    #[arg(long)]
    abort_on_container_exit: bool,
    /// Exit with this service's exit code (implies --abort-on-container-exit)
    #[arg(long, value_name = "SERVICE")]
    exit_code_from: Option<String>,
    /// At shutdown also remove the project's volumes (not external ones) and the containers'
    /// anonymous volumes, as `docker compose down -v`
    #[arg(long, short = 'v')]
    remove_volumes: bool,
    /// Who makes the containers' cgroups, as `forge run --cgroup-manager`: `systemd` (the
    /// default on cgroup v2 hosts booted with systemd) or `cgroupfs`
    #[arg(long, env = "FORGE_CGROUP_MANAGER", value_name = "MANAGER", value_parser = str::parse::<Manager>)]
    cgroup_manager: Option<Manager>,
    /// Data root, as `forge --root`
    #[arg(long, env = "FORGE_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
    /// Run root, as `forge --run-root`
    #[arg(long, env = "FORGE_RUN_ROOT", value_name = "DIR")]
    run_root: Option<PathBuf>,
    /// Variables for the file's `${VAR}`s, instead of the `.env` beside it (repeatable)
    #[arg(long, value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Run N containers of SERVICE instead of the file's replicas (repeatable)
    #[arg(long, value_name = "SERVICE=N", value_parser = forge_supervisor::compose::parse_scale)]
    scale: Vec<(String, u32)>,
    /// Pull images as this policy says instead of each service's pull_policy
    #[arg(long, value_name = "POLICY", value_parser = str::parse::<forge_supervisor::compose::PullPolicy>)]
    pull: Option<forge_supervisor::compose::PullPolicy>,
    /// Run only this service and those it depends on (repeatable), as `docker compose up
    /// SERVICE...`
    #[arg(long, value_name = "SERVICE")]
    service: Vec<String>,
    /// Enable the services of this profile too (repeatable; default: COMPOSE_PROFILES)
    #[arg(long, value_name = "PROFILE")]
    profile: Vec<String>,
    /// A compose file, repeatable: each is merged over the ones before it, as `docker compose
    /// -f A -f B` merges them
    #[arg(long = "file", short = 'f', value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The compose file: compose.yaml (Compose's format) or compose.toml, after any -f
    /// [default: the first of compose.yaml, compose.yml, docker-compose.yaml,
    /// docker-compose.yml, compose.toml here]
    file: Option<PathBuf>,
    /// Keep supervising when every service has exited, until stopped: the project can still be
    /// started, changed and stopped through its socket (`forge compose up -d` runs it so)
    #[arg(long, hide = true)]
    stay_up: bool,
}

fn main() -> ExitCode {
    // Container inits and joins (exec, health checks) re-execute this binary: they must start
    // no thread and parse nothing first.
    forge_host::dispatch();
    let cli = Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .init();
    let (compose, file) = match load(&cli) {
        Ok(loaded) => loaded,
        Err(e) => {
            note(e);
            return ExitCode::from(2);
        }
    };
    for warning in &compose.warnings {
        note(format_args!("warning: {}: {warning}", file.display()));
    }
    if let Some(service) = &cli.exit_code_from {
        if !compose.services.contains_key(service) {
            note(format_args!(
                "--exit-code-from: no service {service:?} in {}",
                file.display()
            ));
            return ExitCode::from(2);
        }
    }
    let project = forge_supervisor::project::name_of(cli.project_name.as_deref(), &compose, &file);
    if let Some(format) = &cli.config {
        let model = forge_supervisor::compose::render::to_json(&compose, &project);
        let text = match format.as_str() {
            "json" => format!("{model:#}\n"),
            _ => forge_supervisor::compose::render::to_yaml(&model),
        };
        let _ = std::io::stdout().write_all(text.as_bytes());
        return ExitCode::SUCCESS;
    }
    if cli.check {
        let _ = writeln!(
            std::io::stdout(),
            "{}: {} services, valid",
            file.display(),
            compose.services.len()
        );
        return ExitCode::SUCCESS;
    }
    if !nix::unistd::geteuid().is_root() {
        note("must be run as root (uid 0): containers need namespaces and mounts");
        return ExitCode::from(1);
    }
    if let Err(e) = forge_runtime::check_cgroup_manager(cli.cgroup_manager) {
        note(e);
        return ExitCode::from(2);
    }
    let opts = Options {
        project,
        style: Style {
            color: !cli.output.no_color && std::io::stdout().is_terminal(),
            prefix: !cli.output.no_log_prefix,
            timestamps: cli.output.timestamps,
        },
        abort_on_container_exit: cli.abort_on_container_exit || cli.exit_code_from.is_some(),
        exit_code_from: cli.exit_code_from.clone(),
        cgroup_manager: cli.cgroup_manager,
        remove_volumes: cli.remove_volumes,
        stay_up: cli.stay_up,
    };
    let roots = forge_runtime::Roots::new(cli.root, cli.run_root);
    let netd = forge_host::netd(&roots);
    let runtime = forge_host::runtime(roots);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    let lock = match forge_supervisor::lock_project(&runtime, &opts.project) {
        Ok(lock) => lock,
        Err(e) => {
            note(e);
            return ExitCode::from(1);
        }
    };
    let code = if cli.down {
        tokio.block_on(forge_supervisor::up::down(runtime, netd, compose, opts))
    } else {
        let loader = reloader(opts.project.clone());
        tokio.block_on(forge_supervisor::up::up(
            runtime, netd, compose, opts, loader,
        ))
    };
    drop(lock);
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// The files the command line names (or the one found here), read into the model; and the
/// first file, which names the project.
fn load(cli: &Cli) -> Result<(Compose, PathBuf), String> {
    let mut files = cli.files.clone();
    files.extend(cli.file.clone());
    if files.is_empty() {
        files.push(default_file()?);
    }
    let load = LoadOptions {
        env_files: cli.env_file.clone(),
        profiles: cli.profile.clone(),
        scale: cli.scale.clone(),
        pull: cli.pull,
        only: cli.service.clone(),
    };
    let compose = forge_supervisor::compose::load_all(&files, &load).map_err(|e| e.to_string())?;
    Ok((compose, files.swap_remove(0)))
}

/// Reads the files again for a running `project`: with a second `up`'s arguments, or (on
/// SIGHUP) with this process's own. They must still name the same project.
fn reloader(project: String) -> Loader {
    Arc::new(move |args: Option<&[String]>| {
        let cli = match args {
            Some(args) => {
                let argv =
                    std::iter::once("forge-supervise").chain(args.iter().map(String::as_str));
                Cli::try_parse_from(argv)
            }
            None => Cli::try_parse(),
        }
        .map_err(|e| e.to_string().trim_end().to_string())?;
        let (compose, file) = load(&cli)?;
        let name = forge_supervisor::project::name_of(cli.project_name.as_deref(), &compose, &file);
        if name != project {
            return Err(format!("the files are project {name}'s, not {project}'s"));
        }
        Ok(compose)
    })
}

/// The compose file in the current directory, as `docker compose` finds it.
fn default_file() -> Result<PathBuf, String> {
    let names = forge_supervisor::compose::DEFAULT_FILES.join(", ");
    let (first, others) = forge_supervisor::compose::find_default(Path::new(""))
        .ok_or_else(|| format!("no compose file named and none here (looked for {names})"))?;
    for other in others {
        note(format_args!(
            "warning: found several compose files here: using {}, not {}",
            first.display(),
            other.display()
        ));
    }
    Ok(first)
}
