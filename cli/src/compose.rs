//! `forge compose`: Docker Compose's command line over forge-supervise, which does the work.
//! `up` runs it in the foreground (or, with `-d`, in a session of its own with its output in
//! `ROOT/projects/PROJECT.log`, returning once every service has started); a second `up -d`,
//! `stop`, `start`, `restart` and `down` ask the running supervisor through its socket
//! (`down` then removes what is left); `ps` and `logs` read the project's containers;
//! `config` prints the model.

use std::io::{IsTerminal, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use forge_runtime::{Container, Runtime};

use crate::report;

mod logs;

/// How long `up -d` waits for every service to start, and `down` for the supervisor to stop.
const WAIT: Duration = Duration::from_secs(120);

#[derive(clap::Args)]
pub struct ComposeArgs {
    /// A compose file (repeatable: merged in order) [default: compose.yaml … in this directory]
    #[arg(long = "file", short = 'f', value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Project name [default: the file's `name`, else its directory's]
    #[arg(long, short = 'p', value_name = "NAME")]
    project_name: Option<String>,
    /// Enable a profile's services (repeatable)
    #[arg(long, value_name = "PROFILE")]
    profile: Vec<String>,
    /// Variables for the files instead of .env (repeatable)
    #[arg(long, value_name = "FILE")]
    env_file: Vec<PathBuf>,
    #[command(subcommand)]
    command: ComposeCommand,
}

#[derive(clap::Subcommand)]
enum ComposeCommand {
    /// Create and start the project's containers, and supervise them
    Up {
        /// Run in the background and return once every service has started
        #[arg(long, short = 'd')]
        detach: bool,
        /// Stop every service when one exits
        #[arg(long, conflicts_with = "detach")]
        abort_on_container_exit: bool,
        /// Exit with this service's exit code
        #[arg(long, value_name = "SERVICE", conflicts_with = "detach")]
        exit_code_from: Option<String>,
        /// Run N containers of SERVICE (repeatable)
        #[arg(long, value_name = "SERVICE=N", value_parser = forge_supervisor::compose::parse_scale)]
        scale: Vec<(String, u32)>,
        /// Pull images: missing (as each service's pull_policy says by default), always, never
        #[arg(long, value_name = "POLICY", value_parser = str::parse::<forge_supervisor::compose::PullPolicy>)]
        pull: Option<forge_supervisor::compose::PullPolicy>,
        /// Build images before starting (not supported yet: Forge has no image builder)
        #[arg(long)]
        build: bool,
        /// Only these services and those they depend on [default: all]
        services: Vec<String>,
        #[command(flatten)]
        output: forge_supervisor::output::OutputFlags,
    },
    /// Stop the project and remove its containers and networks
    Down {
        /// Also remove its volumes (not external ones) and its containers' anonymous volumes
        #[arg(long, short = 'v')]
        volumes: bool,
        /// Seconds each container has to stop before it is killed [default: its
        /// stop_grace_period]
        #[arg(long, short = 't', value_name = "SECONDS")]
        timeout: Option<u64>,
    },
    /// Stop services (all when none is named); they stay stopped until started
    Stop {
        /// Seconds each has to stop before it is killed [default: its stop_grace_period]
        #[arg(long, short = 't', value_name = "SECONDS")]
        timeout: Option<u64>,
        services: Vec<String>,
    },
    /// Start stopped services (all when none is named)
    Start { services: Vec<String> },
    /// Stop and start services again (all when none is named)
    Restart {
        /// Seconds each has to stop before it is killed [default: its stop_grace_period]
        #[arg(long, short = 't', value_name = "SECONDS")]
        timeout: Option<u64>,
        services: Vec<String>,
    },
    /// List the project's containers
    Ps {
        /// Also the stopped ones
        #[arg(long, short = 'a')]
        all: bool,
        /// Only the containers' IDs
        #[arg(long, short = 'q')]
        quiet: bool,
        /// table, or json (one object per line, as `docker compose ps --format json`)
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Show the output of the project's containers
    Logs {
        /// Follow the output until the project goes down
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only the last N lines of each container ("all": every line)
        #[arg(long, short = 'n', value_name = "N", default_value = "all", value_parser = logs::parse_tail)]
        tail: logs::Tail,
        /// Only these services
        services: Vec<String>,
    },
    /// Run a command in a service's running container
    #[command(trailing_var_arg = true)]
    Exec {
        /// No pseudo-terminal (by default there is one when stdin is a terminal)
        #[arg(short = 'T', long = "no-TTY")]
        no_tty: bool,
        /// Set environment variables (KEY=VALUE)
        #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Which replica of a replicated service
        #[arg(long, value_name = "N", default_value_t = 1)]
        index: u32,
        service: String,
        /// Command and arguments
        #[arg(required = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Pull the services' images (all when none is named)
    Pull { services: Vec<String> },
    /// Print the model the files give
    Config {
        /// yaml or json
        #[arg(long, default_value = "yaml", value_parser = ["yaml", "json"])]
        format: String,
    },
}

pub fn compose(runtime: &Runtime, args: &ComposeArgs) -> i32 {
    let (scale, pull, only) = match &args.command {
        ComposeCommand::Up {
            scale,
            pull,
            services,
            ..
        } => (scale.clone(), *pull, services.clone()),
        _ => (Vec::new(), None, Vec::new()),
    };
    let project = match Project::load(args, scale, pull, only) {
        Ok(project) => project,
        Err(e) => {
            report(&e);
            return 2;
        }
    };
    match &args.command {
        ComposeCommand::Up { build: true, .. } => {
            report(&"up --build: Forge cannot build images yet (no forge build); services run pulled images or the host image");
            2
        }
        ComposeCommand::Config { format } => {
            let err = project
                .supervise(runtime, &[&format!("--config={format}")])
                .exec();
            report(&format!("running forge-supervise: {err}"));
            1
        }
        ComposeCommand::Up {
            detach: false,
            abort_on_container_exit,
            exit_code_from,
            output,
            ..
        } => {
            let mut flags: Vec<String> = output.to_args().into_iter().map(String::from).collect();
            if *abort_on_container_exit {
                flags.push("--abort-on-container-exit".into());
            }
            if let Some(service) = exit_code_from {
                flags.push(format!("--exit-code-from={service}"));
            }
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            let err = project.supervise(runtime, &flags).exec();
            report(&format!("running forge-supervise: {err}"));
            1
        }
        ComposeCommand::Up { detach: true, .. } => up_detached(runtime, &project),
        ComposeCommand::Down { volumes, timeout } => down(runtime, &project, *volumes, *timeout),
        ComposeCommand::Stop { timeout, services } => {
            let request =
                serde_json::json!({"action": "stop", "services": services, "timeout": timeout});
            // Nothing runs without its supervisor: nothing to stop, as Compose says nothing.
            if forge_supervisor::project::supervisor_of(&runtime.roots().data, &project.name)
                .is_none()
            {
                return 0;
            }
            ask(runtime, &project, &request)
        }
        ComposeCommand::Start { services } => ask(
            runtime,
            &project,
            &serde_json::json!({"action": "start", "services": services}),
        ),
        ComposeCommand::Restart { timeout, services } => {
            let request =
                serde_json::json!({"action": "restart", "services": services, "timeout": timeout});
            ask(runtime, &project, &request)
        }
        ComposeCommand::Ps { all, quiet, format } => {
            ps(runtime, &project, *all, *quiet, format == "json")
        }
        ComposeCommand::Logs {
            follow,
            tail,
            services,
        } => match project.services_named(services) {
            Ok(services) => logs::logs(runtime, &project, &services, *follow, *tail),
            Err(e) => {
                report(&e);
                1
            }
        },
        ComposeCommand::Exec {
            no_tty,
            env,
            index,
            service,
            command,
        } => {
            let tty = !no_tty && std::io::stdin().is_terminal();
            match project.container_of(runtime, service, *index) {
                Ok(container) => {
                    let args = crate::exec::ExecArgs::new(container, command, env, true, tty);
                    crate::exec::exec(runtime, &args)
                }
                Err(e) => {
                    report(&e);
                    1
                }
            }
        }
        ComposeCommand::Pull { services } => pull_images(runtime, &project, services),
    }
}

/// The files, the project's name and its model, as forge-supervise will read them.
struct Project {
    files: Vec<PathBuf>,
    name: String,
    compose: forge_supervisor::compose::Compose,
    /// forge-supervise's arguments for these files.
    args: Vec<String>,
}

impl Project {
    /// `scale`, `pull` and `only` (its services): `up`'s arguments, which change what the
    /// project is.
    fn load(
        args: &ComposeArgs,
        scale: Vec<(String, u32)>,
        pull: Option<forge_supervisor::compose::PullPolicy>,
        only: Vec<String>,
    ) -> Result<Self, String> {
        let mut files = args.files.clone();
        if files.is_empty() {
            let (first, _) =
                forge_supervisor::compose::find_default(Path::new("")).ok_or_else(|| {
                    format!(
                        "no compose file given and none here (looked for {})",
                        forge_supervisor::compose::DEFAULT_FILES.join(", ")
                    )
                })?;
            files.push(first);
        }
        let mut flags = Vec::new();
        for (service, n) in &scale {
            flags.push(format!("--scale={service}={n}"));
        }
        if let Some(policy) = pull {
            flags.push(format!("--pull={policy}"));
        }
        for service in &only {
            flags.push(format!("--service={service}"));
        }
        let opts = forge_supervisor::compose::LoadOptions {
            env_files: args.env_file.clone(),
            profiles: args.profile.clone(),
            scale,
            pull,
            only,
        };
        let compose =
            forge_supervisor::compose::load_all(&files, &opts).map_err(|e| e.to_string())?;
        let name =
            forge_supervisor::project::name_of(args.project_name.as_deref(), &compose, &files[0]);
        flags.extend(["-p".to_string(), name.clone()]);
        for profile in &args.profile {
            flags.push(format!("--profile={profile}"));
        }
        // Absolute: a second `up` from another directory hands them to the running supervisor.
        let absolute = |file: &PathBuf| std::path::absolute(file).unwrap_or_else(|_| file.clone());
        for file in &args.env_file {
            flags.push(format!("--env-file={}", absolute(file).display()));
        }
        for file in &files {
            flags.push(format!("--file={}", absolute(file).display()));
        }
        Ok(Project {
            files,
            name,
            compose,
            args: flags,
        })
    }

    /// `forge-supervise` for this project, over the same roots, with `flags` first.
    fn supervise(&self, runtime: &Runtime, flags: &[&str]) -> Command {
        let mut cmd = Command::new(supervise_binary());
        let roots = runtime.roots();
        cmd.env("FORGE_ROOT", &roots.data)
            .env("FORGE_RUN_ROOT", &roots.run)
            .args(flags)
            .args(&self.args);
        cmd
    }

    /// The project's containers, by service.
    fn containers(&self, runtime: &Runtime) -> Result<Vec<(String, Container)>, String> {
        let mut found: Vec<(String, Container)> = runtime
            .list()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|c| c.config.labels.get("forge.project") == Some(&self.name))
            .filter_map(|c| Some((c.config.labels.get("forge.service")?.clone(), c)))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }

    fn services_named(&self, wanted: &[String]) -> Result<Vec<String>, String> {
        self.compose
            .services_named(wanted)
            .map_err(|e| format!("{e} (in {})", self.files[0].display()))
    }

    /// The container of `service` (its replica `index` when it has replicas), as it runs:
    /// `up --scale` may have made replicas the file does not have.
    fn container_of(&self, runtime: &Runtime, service: &str, index: u32) -> Result<String, String> {
        let containers = self.containers(runtime)?;
        let replica = format!("{service}-{index}");
        let found = containers
            .iter()
            .find(|(label, _)| *label == replica || (index == 1 && label == service));
        match found {
            Some((_, c)) => Ok(c.name().to_string()),
            None if containers
                .iter()
                .any(|(label, _)| forge_supervisor::compose::is_replica(label, service)) =>
            {
                Err(format!("service {service} has no replica {index}"))
            }
            None => self.services_named(&[service.to_string()]).and_then(|_| {
                Err(format!(
                    "service {service} has no container: forge compose up -d starts it"
                ))
            }),
        }
    }

    fn log_path(&self, runtime: &Runtime) -> PathBuf {
        runtime
            .roots()
            .data
            .join("projects")
            .join(format!("{}.log", self.name))
    }
}

/// forge-supervise: `FORGE_SUPERVISE_BIN`, else beside this binary, else on the PATH.
fn supervise_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FORGE_SUPERVISE_BIN") {
        return PathBuf::from(path);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("forge-supervise")))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("forge-supervise"))
}

/// Asks the project's running supervisor, printing its answer; the exit code.
fn ask(runtime: &Runtime, project: &Project, request: &serde_json::Value) -> i32 {
    let root = &runtime.roots().data;
    if forge_supervisor::project::supervisor_of(root, &project.name).is_none() {
        report(&format!(
            "project {} is not up (forge compose up -d starts it)",
            project.name
        ));
        return 1;
    }
    let run_root = &runtime.roots().run;
    match forge_supervisor::up::socket::ask(run_root, &project.name, request, |line| {
        println!("{line}")
    }) {
        Ok(()) => 0,
        Err(e) => {
            report(&e);
            1
        }
    }
}

fn up_detached(runtime: &Runtime, project: &Project) -> i32 {
    let root = &runtime.roots().data;
    if forge_supervisor::project::supervisor_of(root, &project.name).is_some() {
        if project.args.iter().any(|a| a.starts_with("--service=")) {
            report(&format!("project {} is up: up -d of some of its services is not supported yet (forge compose up -d converges all of them; forge compose start|restart SERVICE...)", project.name));
            return 1;
        }
        // Compose's convergence, done by the running supervisor.
        let request = serde_json::json!({"action": "up", "args": project.args});
        return ask(runtime, project, &request);
    }
    let log_path = project.log_path(runtime);
    let open = std::fs::create_dir_all(root.join("projects")).and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&log_path)
    });
    let log = match open {
        Ok(log) => log,
        Err(e) => {
            report(&format!("opening {}: {e}", log_path.display()));
            return 1;
        }
    };
    let mut cmd = project.supervise(runtime, &["--no-color", "--stay-up"]);
    let spawned = log.try_clone().and_then(|err| {
        cmd.stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            // A session of its own: the caller's terminal and its signals are not its.
            .process_group(0)
            .spawn()
    });
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            report(&format!("running forge-supervise: {e}"));
            return 1;
        }
    };
    let started = |text: &str, service: &str| text.contains(&format!(" {service}: started (pid"));
    let t0 = Instant::now();
    let mut said = Vec::new();
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        for service in project.compose.services.keys() {
            if !said.contains(service) && started(&text, service) {
                println!("Container {}-{service}  Started", project.name);
                said.push(service.clone());
            }
        }
        if said.len() == project.compose.services.len() {
            return 0;
        }
        // A service that cannot start, or whose dependency failed, will not: say so now (the
        // supervisor goes on with the others, as Compose's containers do).
        if let Some(line) = text
            .lines()
            .find(|l| l.contains(": cannot start: ") || l.contains(": not starting: "))
        {
            report(&format!(
                "{}; the others go on (forge compose down stops them)",
                line.trim()
            ));
            return 1;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let _ = std::io::stderr().write_all(text.as_bytes());
            report(&format!(
                "forge-supervise ended ({status}) before every service started"
            ));
            return 1;
        }
        if t0.elapsed() > WAIT {
            report(&format!(
                "not every service started within {WAIT:?}; the supervisor goes on (see {})",
                log_path.display()
            ));
            return 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn down(runtime: &Runtime, project: &Project, volumes: bool, timeout: Option<u64>) -> i32 {
    let root = &runtime.roots().data;
    if let Some(pid) = forge_supervisor::project::supervisor_of(root, &project.name) {
        let pid = nix::unistd::Pid::from_raw(pid);
        let request = serde_json::json!({"action": "down", "timeout": timeout, "volumes": volumes});
        let run_root = &runtime.roots().run;
        let asked = forge_supervisor::up::socket::ask(run_root, &project.name, &request, |_| {});
        if asked.is_err() {
            // No socket (yet): SIGTERM stops it as Ctrl-C does, with each service's grace.
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        let t0 = Instant::now();
        let mut killed = false;
        while forge_supervisor::project::supervisor_of(root, &project.name).is_some() {
            if t0.elapsed() > WAIT && !killed {
                // A second signal kills everything at once, as a second Ctrl-C does.
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Asked, it removed everything itself (its volumes too with -v) before it exited.
        if asked.is_ok() && !killed {
            return 0;
        }
    }
    // What a killed supervisor (or one that could not be asked) left, and the volumes if asked.
    let mut flags = vec!["--down"];
    if volumes {
        flags.push("--remove-volumes");
    }
    match project.supervise(runtime, &flags).status() {
        Ok(status) if status.success() => 0,
        Ok(status) => status.code().unwrap_or(1),
        Err(e) => {
            report(&format!("running forge-supervise: {e}"));
            1
        }
    }
}

fn ps(runtime: &Runtime, project: &Project, all: bool, quiet: bool, json: bool) -> i32 {
    let containers = match project.containers(runtime) {
        Ok(c) => c,
        Err(e) => {
            report(&e);
            return 1;
        }
    };
    let now = forge_runtime::now_secs();
    let mut out = std::io::stdout().lock();
    if !quiet && !json {
        let _ = writeln!(
            out,
            "{:<24}  {:<12}  {:<16}  {:<26}  PORTS",
            "NAME", "SERVICE", "CREATED", "STATUS"
        );
    }
    for (service, c) in containers.iter().filter(|(_, c)| all || c.is_running()) {
        let ports: Vec<String> = c.state.ports.iter().map(|p| p.to_string()).collect();
        let status = crate::manage::status_text(c, now);
        let line = if quiet {
            c.id().to_string()
        } else if json {
            serde_json::json!({
                "ID": c.id(),
                "Name": c.name(),
                "Service": service,
                "Project": project.name,
                "Image": c.config.image,
                "Created": c.config.created,
                "State": if c.is_running() { "running" } else { "exited" },
                "Status": status,
                "Health": c.state.health.clone().unwrap_or_default(),
                "ExitCode": c.state.exit.as_ref().map_or(0, |e| e.code),
                "Ports": ports.join(", "),
            })
            .to_string()
        } else {
            format!(
                "{:<24}  {:<12}  {:<16}  {:<26}  {}",
                c.name(),
                service,
                crate::format::ago(c.config.created, now),
                status,
                ports.join(", ")
            )
        };
        let _ = writeln!(out, "{line}");
    }
    0
}

/// `pull`: the services' images, each once (the default image is built, not pulled).
fn pull_images(runtime: &Runtime, project: &Project, services: &[String]) -> i32 {
    let names = match crate::require_root().and_then(|()| project.services_named(services)) {
        Ok(names) => names,
        Err(e) => {
            report(&e);
            return 1;
        }
    };
    let mut images: Vec<&str> = names
        .iter()
        .map(|name| project.compose.services[name].image.as_str())
        .filter(|image| *image != forge_image::DEFAULT_IMAGE)
        .collect();
    images.sort_unstable();
    images.dedup();
    let mut code = 0;
    for image in images {
        if let Err(e) = crate::images::pull_image(runtime, image, None) {
            report(&e);
            code = 1;
        }
    }
    code
}
