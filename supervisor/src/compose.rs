//! compose.toml: the Compose specification's vocabulary in TOML, parsed and checked in full
//! before anything starts. Every error names the file, the line and column (1-based) of the
//! offending key or value, and its field path:
//!
//! ```text
//! compose.toml:12:11: services.web.restart: unknown restart policy "sometimes" (expected no, always, on-failure[:N], unless-stopped)
//! ```
//!
//! The schema (every key optional unless marked; unknown keys are errors):
//!
//! ```toml
//! name = "shop"                    # the project's name (default: the directory's; -p wins)
//! version = "3.8"                  # accepted and ignored; x-… keys are allowed at every level
//! [x-backoff]                      # global restart backoff (Docker's defaults shown)
//! initial = "100ms"                # durations: "1m30s", "500ms", "2.5s" — a unit is required
//! max = "60s"
//! reset_after = "10s"
//!
//! [networks.back]                  # "default" exists implicitly and may be given here too
//! subnet = "10.89.1.0/24"
//! gateway = "10.89.1.1"            # needs subnet
//! internal = false
//! name = "shared-back"             # the network's name instead of PROJECT_back
//! # external = true                # made by `forge network create` (named KEY, or name):
//! #                                # must exist, never made or removed here; no subnet etc.
//!
//! [volumes.data]                   # PROJECT_data, kept across runs; removed by --remove-volumes
//! name = "shared-data"             # the volume's name instead of PROJECT_data
//! labels = { tier = "db" }         # or ["tier=db"]
//! external = false                 # true: made by `forge volume create` (named KEY), never made or removed here
//! driver = "local"                 # the only driver
//! driver_opts = { size = "1g" }    # as `forge volume create --opt`: size (a hard limit), or
//! #   { type = "tmpfs", o = "size=64m" }, or { type = "none", o = "bind", device = "/srv/db" }
//!
//! [services.web]                   # name: [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 63
//! image = "host"                   # required
//! entrypoint = "/bin/sh -c"        # string (split into words like a shell, never run by one)
//! command = ["httpd", "-f"]        #   or list; never empty
//! environment = { PORT = 80 }      # or ["PORT=80"]; values strings, numbers or booleans
//! env_file = [{ path = "web.env", required = false }]   # or "web.env", or a list of names;
//! #   Compose's format, relative to this file, read now; environment wins over it
//! working_dir = "/srv"             # absolute
//! user = "1000:1000"               # or a number
//! hostname = "www"
//! init = false
//! # deploy = { replicas = 2, resources = { limits = { memory = "256m" } }, restart_policy = { condition = "on-failure", max_attempts = 3, delay = "5s", window = "30s" } }
//! #                                # replicas (or scale = 2): services web-1, web-2, both answering to web
//! #                                # Compose's spelling of limits and restart (one or the other)
//! container_name = "shop-db"      # default PROJECT-SERVICE
//! labels = { "com.example.tier" = "back" }   # or ["com.example.tier=back"]
//! expose = ["8080", "53/udp"]      # documentation only, as in Docker
//! pull_policy = "missing"          # (default) pull an image not in the store; "always", "never"
//! depends_on = ["db"]              # = service_started; or
//! # depends_on = { db = { condition = "service_healthy" } }   (or _started, _completed_successfully;
//! #   required = false: left out, with a warning, when db is not an enabled service)
//! restart = "on-failure:5"         # "no" (default), "always", "on-failure[:N]", "unless-stopped"
//! x-backoff = { initial = "1s" }   # overrides [x-backoff] key by key
//! limits = { cpus = 0.5, memory = "256m", memory_swap = "512m", pids = 100, storage = "1g" }
//! networks = ["back"]              # default ["default"]; or network_mode = "none" (only lo)
//! ports = ["8080:80", "127.0.0.1:5353:53/udp"]
//! stop_signal = "SIGTERM"          # or "TERM" or 15; default: the image's StopSignal, else SIGTERM
//! stop_grace_period = "10s"
//! cap_add = ["NET_ADMIN"]          # to Docker's default set; with or without CAP_, or "ALL"
//! cap_drop = ["ALL"]               # dropped first, then cap_add added (as Docker does)
//! privileged = false               # every capability, no masked paths, no seccomp
//! security_opt = ["no-new-privileges:true"]  # also "seccomp=unconfined", "seccomp=PROFILE.json"
//! #   (Docker's format; a relative path is relative to this file's directory; read and checked now)
//! read_only = false                # the root filesystem read-only
//! tmpfs = ["/run", "/tmp:size=64m"]  # or one string; PATH[:OPTIONS] as for `forge run --tmpfs`
//! userns_mode = "host"             # or "auto" (a user namespace of its own; not with limits.storage)
//! volumes = [                      # as `forge run -v`; relative host paths from this file's directory
//!   "data:/var/lib/db",            #   a volume of [volumes] (named PROJECT_data)
//!   "./site:/www:ro",              #   a bind ("./", "../", "~/" or absolute: made when missing)
//!   "/cache",                      #   an anonymous volume
//!   # the long form (TOML wants each inline table on one line):
//!   { type = "bind", source = "./conf", target = "/etc/app", read_only = true, bind = { propagation = "rslave", create_host_path = false } },
//!   { type = "volume", source = "data", target = "/seed", volume = { nocopy = true } },
//!   { type = "tmpfs", target = "/scratch", tmpfs = { size = "64m", mode = 0o1777 } },
//! ]
//!
//! secrets = ["db_pw"]              # or { source = "db_pw", target = "pw" }: /run/secrets/pw, read-only
//! configs = [{ source = "app", target = "/etc/app.ini" }]   # default target /NAME
//!
//! [services.web.healthcheck]       # Compose's defaults: 30s, 30s, 3, 0s
//! test = ["CMD", "true"]           # or ["CMD-SHELL", "..."], a string (CMD-SHELL), ["NONE"]
//! interval = "30s"
//! timeout = "30s"
//! retries = 3                      # at least 1
//! start_period = "0s"
//! start_interval = "5s"            # between probes during the start period (default: interval)
//! disable = false
//!
//! [secrets.db_pw]                  # from a file, relative to this one, which must exist
//! file = "./db_pw.txt"
//! [configs.app]
//! file = "./app.ini"
//!
//! [services.db]
//! image = "host"
//! # extends = "web"                # or { service = "base", file = "common.yaml" }: merged first
//! command = "sleep 1d"
//! networks = ["back"]
//! ```
//!
//! compose.yaml, Docker Compose's own format, is read into the same [`tree::Tree`] as this
//! TOML (`compose/yaml.rs`), interpolated (`compose/interpolate.rs`), then checked by the same
//! code: the schema above, in Compose's YAML spelling.
//!
//! Reading a service's fields is in `compose/service.rs`; the checks that span services (dependencies,
//! networks, published ports) are here.

mod attach;
mod deploy;
mod extends;
pub mod files;
mod include;
mod interpolate;
pub mod logging;
mod node;
pub mod render;
mod security;
mod service;
mod sources;
mod tree;
mod volumes;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use forge_netd::ipam::Subnet;
use forge_netd::ports::PortMapping;
use forge_runtime::network::PublishedPort;
use forge_runtime::Limits;
use forge_runtime::Privileges;
use nix::sys::signal::Signal;
use toml_edit::ImDocument;

pub use crate::backoff::Backoff;
pub use interpolate::Variables;
use node::{line_col, Invalid, Node, Spot};
use service::Placed;
pub use volumes::VolumeDef;

/// The names looked for in the current directory when no file is named, in Docker Compose's
/// order, then Forge's own.
pub const DEFAULT_FILES: [&str; 5] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
    "compose.toml",
];

/// What the command line adds to the file: its variables and profiles.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--env-file`s, instead of the `.env` beside the compose file.
    pub env_files: Vec<PathBuf>,
    /// `--profile`s; when none, `COMPOSE_PROFILES` (comma-separated); `*` enables all.
    pub profiles: Vec<String>,
    /// `--scale SERVICE=N`: replicas instead of the file's.
    pub scale: Vec<(String, u32)>,
    /// `--pull`: every service's pull policy instead of the file's.
    pub pull: Option<PullPolicy>,
    /// `up SERVICE...`: only these services and their dependencies (none: all).
    pub only: Vec<String>,
}

/// The network every service without `networks` joins; always defined, implicitly.
pub const DEFAULT_NETWORK: &str = "default";

#[derive(Debug, Clone, PartialEq)]
pub struct Compose {
    pub path: PathBuf,
    pub services: BTreeMap<String, Service>,
    /// The networks under `[networks]`, plus `default` when a service joins it.
    pub networks: BTreeMap<String, NetworkDef>,
    /// The volumes under `[volumes]`, by key.
    pub volumes: BTreeMap<String, VolumeDef>,
    /// The global `[x-backoff]` (already merged into each service's own `backoff`).
    pub backoff: Backoff,
    /// The top-level `name`: the project's name unless `-p` gives one.
    pub name: Option<String>,
    /// What was read but deserves a word: unset variables, as Compose warns of them.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkDef {
    pub subnet: Option<Subnet>,
    pub gateway: Option<Ipv4Addr>,
    pub internal: bool,
    /// `name`: the network's name in Forge instead of `PROJECT_KEY`.
    pub name: Option<String>,
    /// `external`: made by `forge network create`; must exist, never made or removed here.
    pub external: bool,
}

/// When the supervisor pulls a service's image (Compose's `pull_policy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull it when the store does not have it (`missing`, `if_not_present`).
    #[default]
    Missing,
    /// Pull it at every start, to catch a newer one.
    Always,
    /// Never pull: a missing image is an error.
    Never,
}

impl std::fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Missing => "missing",
            Self::Always => "always",
            Self::Never => "never",
        })
    }
}

impl std::str::FromStr for PullPolicy {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "missing" | "if_not_present" => Ok(Self::Missing),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            "build" => Err("pull_policy \"build\" is not supported yet: Forge has no forge build".into()),
            other => Err(format!(
                "unknown pull policy {other:?} (expected missing, always or never; daily, weekly and every_ are not supported)"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    /// `K=V`, in the file's order.
    pub environment: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub init: bool,
    pub pull_policy: PullPolicy,
    /// `container_name`: the container's name instead of `PROJECT-SERVICE`.
    pub container_name: Option<String>,
    /// `labels`, on the container beside Forge's own.
    pub labels: BTreeMap<String, String>,
    pub depends_on: BTreeMap<String, Condition>,
    /// `depends_on.NAME.restart = true`: the dependencies whose restart or re-creation by a
    /// Compose command (`restart`, a second `up`) restarts this service too.
    pub restarts_with: BTreeSet<String>,
    pub restart: RestartPolicy,
    pub backoff: Backoff,
    /// `None` when absent, `disable = true` or `test = ["NONE"]`.
    pub healthcheck: Option<Healthcheck>,
    pub limits: Limits,
    /// `["default"]` unless given; empty for `network_mode = "none"`.
    pub networks: Vec<String>,
    /// `networks.NAME.aliases`: more names its neighbours reach it by, on all its networks.
    pub aliases: Vec<String>,
    /// `networks.NAME.ipv4_address` of its first network.
    pub ipv4_address: Option<Ipv4Addr>,
    pub ports: Vec<PublishedPort>,
    /// `None`: the image's StopSignal, else SIGTERM (as compose does).
    pub stop_signal: Option<Signal>,
    pub stop_grace_period: Duration,
    /// Capabilities, no_new_privs and seccomp, resolved from `cap_add`, `cap_drop`,
    /// `privileged` and `security_opt` (a seccomp profile is read when the file is).
    pub privileges: Privileges,
    pub read_only: bool,
    /// `PATH[:OPTIONS]`, as `forge run --tmpfs` takes them.
    pub tmpfs: Vec<String>,
    pub userns: forge_runtime::UsernsMode,
    /// `volumes`: binds, volumes (named ones by their key in `[volumes]`) and tmpfs mounts.
    pub volumes: Vec<forge_runtime::Mount>,
    /// Secrets and configs from values (the environment, a config's content): the supervisor
    /// writes each and binds it read-only.
    pub generated: Vec<files::Generated>,
    /// `logging`: the container's log file, rotated, or none.
    pub logging: logging::Logging,
    /// `profiles`: the service runs only when one of them is enabled; always when empty.
    pub profiles: Vec<String>,
}

/// When a dependency counts as ready for its dependents to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Started,
    Healthy,
    CompletedSuccessfully,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    No,
    Always,
    /// Restart on a non-zero exit, at most `max_restarts` times (no limit when `None`).
    OnFailure {
        max_restarts: Option<u32>,
    },
    UnlessStopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    pub test: HealthTest,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
    /// Docker 25's `start_interval`: the time between probes during the start period, while
    /// still `starting` (`interval` when not given).
    pub start_interval: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthTest {
    /// `["CMD", program, args...]`: run directly.
    Cmd(Vec<String>),
    /// `["CMD-SHELL", "..."]` or a string: run with `/bin/sh -c`.
    Shell(String),
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "service_started",
            Condition::Healthy => "service_healthy",
            Condition::CompletedSuccessfully => "service_completed_successfully",
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Condition {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        [
            Condition::Started,
            Condition::Healthy,
            Condition::CompletedSuccessfully,
        ]
        .into_iter()
        .find(|c| c.as_str() == text)
        .ok_or_else(|| {
            format!("unknown condition {text:?} (expected service_started, service_healthy or service_completed_successfully)")
        })
    }
}

impl std::fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::OnFailure { max_restarts: None } => f.write_str("on-failure"),
            RestartPolicy::OnFailure {
                max_restarts: Some(n),
            } => write!(f, "on-failure:{n}"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

impl FromStr for RestartPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "no" => Ok(RestartPolicy::No),
            "always" => Ok(RestartPolicy::Always),
            "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
            "on-failure" => Ok(RestartPolicy::OnFailure { max_restarts: None }),
            _ => match text.strip_prefix("on-failure:") {
                Some(count) => match count.parse::<u32>() {
                    Ok(n) if n > 0 => Ok(RestartPolicy::OnFailure {
                        max_restarts: Some(n),
                    }),
                    _ => Err(format!(
                        "invalid restart count {count:?} in {text:?}: expected a whole number of restarts, at least 1 (or on-failure for no limit)"
                    )),
                },
                None => Err(format!(
                    "unknown restart policy {text:?} (expected no, always, on-failure[:N], unless-stopped)"
                )),
            },
        }
    }
}

/// A compose file that cannot be read, is not TOML, or does not describe a valid project.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.render())]
pub struct ComposeError {
    pub path: PathBuf,
    /// 1-based line and column of the offending key or value; `None` when the file is unreadable.
    pub location: Option<(usize, usize)>,
    /// The field path, like `services.web.restart`; empty when the file is unreadable or not TOML.
    pub field: String,
    pub message: String,
    #[source]
    pub source: Option<std::io::Error>,
}

impl ComposeError {
    fn render(&self) -> String {
        let mut out = self.path.display().to_string();
        if let Some((line, column)) = self.location {
            out.push_str(&format!(":{line}:{column}"));
        }
        if !self.field.is_empty() {
            out.push_str(": ");
            out.push_str(&self.field);
        }
        out.push_str(": ");
        out.push_str(&self.message);
        out
    }

    fn at(path: &Path, text: &str, invalid: Invalid) -> Self {
        ComposeError {
            path: path.to_path_buf(),
            location: Some(line_col(text, invalid.at)),
            field: invalid.field,
            message: invalid.message,
            source: None,
        }
    }
}

/// Reads and checks a compose file.
pub fn load(path: &Path) -> Result<Compose, ComposeError> {
    load_with(path, &LoadOptions::default())
}

/// Reads and checks a compose file with the command line's env files and profiles.
pub fn load_with(path: &Path, opts: &LoadOptions) -> Result<Compose, ComposeError> {
    parse_with(path, &read(path)?, opts)
}

fn read(path: &Path) -> Result<String, ComposeError> {
    std::fs::read_to_string(path).map_err(|err| ComposeError {
        path: path.to_path_buf(),
        location: None,
        field: String::new(),
        message: format!("cannot read: {}", io_reason(&err)),
        source: Some(err),
    })
}

/// The first of [`DEFAULT_FILES`] in `dir`, and the others found there (which Compose warns
/// are not read).
pub fn find_default(dir: &Path) -> Option<(PathBuf, Vec<PathBuf>)> {
    let mut found = DEFAULT_FILES
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| path.is_file());
    let first = found.next()?;
    Some((first, found.collect()))
}

/// `No such file or directory`, without Rust's ` (os error 2)`.
fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

/// Parses and checks compose text; `path` only names the file in errors and in the result.
pub fn parse(path: &Path, text: &str) -> Result<Compose, ComposeError> {
    parse_with(path, text, &LoadOptions::default())
}

/// `--scale SERVICE=N`, as `docker compose up --scale` takes it.
pub fn parse_scale(text: &str) -> Result<(String, u32), String> {
    let (service, n) = text
        .split_once('=')
        .ok_or_else(|| format!("invalid --scale {text:?}: expected SERVICE=N"))?;
    match n.parse::<u32>() {
        Ok(n @ 0..=1000) => Ok((service.to_string(), n)),
        _ => Err(format!(
            "invalid --scale {text:?}: N is a number of containers from 0 to 1000"
        )),
    }
}

/// A file whose name ends in `.toml` is compose.toml; any other is Compose's YAML.
pub fn is_toml(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "toml")
}

fn parse_with(path: &Path, text: &str, opts: &LoadOptions) -> Result<Compose, ComposeError> {
    parse_files(&[(path.to_path_buf(), text.to_string())], opts)
}

/// Reads and checks several compose files as one project, each merged over the ones before it
/// by Compose's rules (as `extends` merges a service), as `docker compose -f A -f B` does.
/// Relative paths in all of them are relative to the first one's directory, Compose's project
/// directory.
pub fn load_all(paths: &[PathBuf], opts: &LoadOptions) -> Result<Compose, ComposeError> {
    let files = paths
        .iter()
        .map(|path| Ok((path.clone(), read(path)?)))
        .collect::<Result<Vec<_>, ComposeError>>()?;
    parse_files(&files, opts)
}

fn parse_files(files: &[(PathBuf, String)], opts: &LoadOptions) -> Result<Compose, ComposeError> {
    let mut compose = parse_all_of(files, opts)?;
    if !opts.only.is_empty() {
        compose
            .keep_only(&opts.only)
            .map_err(|message| ComposeError {
                path: files[0].0.clone(),
                location: None,
                field: String::new(),
                message,
                source: None,
            })?;
    }
    Ok(compose)
}

fn parse_all_of(files: &[(PathBuf, String)], opts: &LoadOptions) -> Result<Compose, ComposeError> {
    let (path, _) = files.first().expect("at least one compose file");
    // Relative paths in the file are relative to its directory, whatever the working directory
    // is when the containers start.
    let dir_of = |path: &Path| {
        let dir = path.parent().unwrap_or(Path::new(""));
        std::env::current_dir()
            .map(|cwd| cwd.join(dir))
            .unwrap_or_else(|_| dir.to_path_buf())
    };
    let dir = dir_of(path);
    let vars = Variables::read(&dir, &opts.env_files).map_err(|message| ComposeError {
        path: path.to_path_buf(),
        location: None,
        field: String::new(),
        message,
        source: None,
    })?;
    let sources = std::cell::RefCell::new(sources::Sources::default());
    let warnings = std::cell::RefCell::new(Vec::new());
    let load = |file: &Path, text: &str| -> Result<tree::Tree, ComposeError> {
        let (mut tree, found) = document(file, text, &vars)?;
        sources.borrow_mut().add(file, text, &mut tree);
        warnings.borrow_mut().extend(found);
        Ok(tree)
    };
    let load_other = |file: &Path| load(file, &read(file)?);
    let mut merged: Option<tree::Tree> = None;
    for (file, text) in files {
        let mut tree = load(file, text)?;
        let located = |failure| match failure {
            extends::Failure::Here(invalid) => sources.borrow().error(invalid),
            extends::Failure::There(err) => err,
        };
        include::resolve(&mut tree, &dir_of(file), &load_other).map_err(located)?;
        extends::resolve(&mut tree, &dir_of(file), &load_other).map_err(located)?;
        merged = Some(match merged {
            None => tree,
            Some(base) => extends::merge_documents(base, tree),
        });
    }
    let tree = merged.expect("at least one file");
    let profiles = enabled_profiles(opts, &vars);
    let mut compose = read_document(&tree, &dir, &vars, &profiles, opts)
        .map_err(|invalid| sources.borrow().error(invalid))?;
    compose.path = path.to_path_buf();
    let mut all = warnings.into_inner();
    all.append(&mut compose.warnings);
    compose.warnings = all;
    Ok(compose)
}

/// A compose file's text as a tree: TOML, or YAML interpolated (with its warnings).
fn document(
    path: &Path,
    text: &str,
    vars: &Variables,
) -> Result<(tree::Tree, Vec<String>), ComposeError> {
    let at = |invalid| ComposeError::at(path, text, invalid);
    if is_toml(path) {
        let doc = ImDocument::parse(text.to_string()).map_err(|err| {
            let message = err.message().trim().replace('\n', "; ");
            at(Invalid {
                at: err.span().map_or(0, |span| span.start),
                field: String::new(),
                message: format!("invalid TOML: {message}"),
            })
        })?;
        Ok((tree::from_toml(&doc), Vec::new()))
    } else {
        let mut tree = yaml::parse(text).map_err(at)?;
        let warnings = interpolate::interpolate(&mut tree, vars).map_err(at)?;
        Ok((tree, warnings))
    }
}

/// `--profile`s, else `COMPOSE_PROFILES` (from the environment or `.env`).
fn enabled_profiles(opts: &LoadOptions, vars: &Variables) -> Vec<String> {
    if !opts.profiles.is_empty() {
        return opts.profiles.clone();
    }
    vars.get("COMPOSE_PROFILES")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl Compose {
    /// Service names, dependencies first (see [`crate::order`]).
    ///
    /// # Panics
    ///
    /// If `services` was changed after parsing to hold a cycle or an unknown dependency.
    pub fn start_order(&self) -> Vec<String> {
        crate::order::start_order(&self.services).expect("dependencies were checked when parsing")
    }

    /// The reverse of [`Compose::start_order`].
    pub fn stop_order(&self) -> Vec<String> {
        let mut order = self.start_order();
        order.reverse();
        order
    }
}

fn read_document(
    tree: &tree::Tree,
    dir: &Path,
    vars: &Variables,
    profiles: &[String],
    opts: &LoadOptions,
) -> Result<Compose, Invalid> {
    let root = Node::root(tree).table("a table")?;
    // `version` is obsolete in Compose too: accepted and ignored.
    root.only(&[
        "name",
        "version",
        "services",
        "networks",
        "volumes",
        "secrets",
        "configs",
        "x-backoff",
    ])?;
    let mut files = BTreeMap::new();
    for kind in [files::Kind::Secret, files::Kind::Config] {
        let defined = match root.get(kind.key()) {
            Some(node) => files::read_definitions(&node, dir, kind, vars)?,
            None => BTreeMap::new(),
        };
        files.insert(kind.key(), defined);
    }
    let name = root.get("name").map(|n| project_name(&n)).transpose()?;
    let backoff = match root.get("x-backoff") {
        Some(node) => service::backoff(&node, &Backoff::default())?,
        None => Backoff::default(),
    };
    let mut networks = match root.get("networks") {
        Some(node) => read_networks(&node)?,
        None => BTreeMap::new(),
    };
    let volumes = match root.get("volumes") {
        Some(node) => volumes::read_definitions(&node)?,
        None => BTreeMap::new(),
    };
    let services_node = root.get("services").ok_or_else(|| Invalid {
        at: 0,
        field: "services".into(),
        message: "no services defined (add a [services.NAME] table)".into(),
    })?;
    let table = services_node.table("a table of services, like [services.web]")?;
    if table.is_empty() {
        return Err(services_node.err("no services defined (add a [services.NAME] table)"));
    }
    let mut services = BTreeMap::new();
    let mut places = Vec::new();
    let mut disabled = BTreeMap::new();
    for entry in table.entries() {
        check_name(entry.key, &entry.key_spot, "service")?;
        let (service, placed) = service::read(entry.key, &entry.node, &backoff, dir, vars)?;
        let enabled = service.profiles.is_empty()
            || profiles
                .iter()
                .any(|p| p == "*" || service.profiles.contains(p));
        if enabled {
            services.insert(entry.key.to_string(), service);
            places.push((entry.key, placed));
        } else {
            disabled.insert(entry.key.to_string(), service.profiles);
        }
    }
    if services.is_empty() {
        return Err(services_node.err(format!(
            "no service is enabled: every one is in a profile (enable one with --profile {})",
            disabled
                .values()
                .flatten()
                .next()
                .expect("services were read")
        )));
    }
    for (name, n) in &opts.scale {
        let Some((_, placed)) = places.iter_mut().find(|(p, _)| p == name) else {
            return Err(services_node.err(format!("--scale: no enabled service {name:?}")));
        };
        placed.replicas = Some((*n, services_node.spot.clone()));
    }
    if let Some(policy) = opts.pull {
        services.values_mut().for_each(|s| s.pull_policy = policy);
    }
    let mut warnings = drop_optional_dependencies(&mut places, &mut services);
    check_profiles(&places, &disabled)?;
    grant_files(&places, &files, &mut services)?;
    check_networks(&places, &networks)?;
    check_volumes(&places, &volumes)?;
    check_dependencies(&places, &services)?;
    check_ports(&places)?;
    check_container_names(&places, &services)?;
    warnings.extend(expand_replicas(&places, &mut services)?);
    if services
        .values()
        .any(|s| s.networks.iter().any(|n| n == DEFAULT_NETWORK))
    {
        networks.entry(DEFAULT_NETWORK.to_string()).or_default();
    }
    Ok(Compose {
        path: PathBuf::new(),
        services,
        networks,
        volumes,
        backoff,
        name,
        warnings,
    })
}

/// Leaves out each `required = false` dependency that is not an enabled service, as Compose
/// does; the warnings say which.
fn drop_optional_dependencies(
    places: &mut [(&str, Placed)],
    services: &mut BTreeMap<String, Service>,
) -> Vec<String> {
    let enabled: Vec<String> = services.keys().cloned().collect();
    let mut warnings = Vec::new();
    for (name, placed) in places.iter_mut() {
        let missing: Vec<String> = placed
            .optional
            .iter()
            .filter(|dep| !enabled.contains(dep))
            .cloned()
            .collect();
        for dep in missing {
            placed.depends_on.retain(|(d, _)| *d != dep);
            services
                .get_mut(*name)
                .expect("placed services are read")
                .depends_on
                .remove(&dep);
            if let Some(service) = services.get_mut(*name) {
                service.restarts_with.remove(&dep);
            }
            warnings.push(format!(
                "service {name}: optional dependency {dep:?} is not an enabled service: starting without it"
            ));
        }
    }
    warnings
}

/// Adds each service's secrets and configs to its mounts (a file) or its generated files (a
/// value), refusing undefined ones and a destination another of its mounts has.
fn grant_files(
    places: &[(&str, Placed)],
    files: &BTreeMap<&str, BTreeMap<String, files::Source>>,
    services: &mut BTreeMap<String, Service>,
) -> Result<(), Invalid> {
    for (name, placed) in places {
        let service = services.get_mut(*name).expect("placed services are read");
        for grant in &placed.grants {
            match files::grant(grant, &files[grant.kind.key()])? {
                Ok(mount) => service.volumes.push(mount),
                Err(generated) => service.generated.push(generated),
            }
            let mut mounts = service.volumes.clone();
            mounts.extend(service.generated.iter().map(|g| forge_runtime::Mount {
                kind: forge_runtime::MountType::Bind,
                target: g.target.clone(),
                ..forge_runtime::Mount::default()
            }));
            let tmpfs = service::tmpfs_paths(&service.tmpfs);
            if forge_runtime::check_mount_targets(&mounts, &tmpfs).is_err() {
                return Err(grant.spot.err(format!(
                    "{} is also the destination of another of the service's mounts",
                    grant.target
                )));
            }
        }
    }
    Ok(())
}

/// An enabled service cannot depend on one whose profiles are not enabled.
fn check_profiles(
    places: &[(&str, Placed)],
    disabled: &BTreeMap<String, Vec<String>>,
) -> Result<(), Invalid> {
    for (name, placed) in places {
        for (dep, spot) in &placed.depends_on {
            if let Some(profiles) = disabled.get(dep) {
                return Err(spot.err(format!(
                    "service {name} depends on {dep}, whose profiles ({}) are not enabled (enable one with --profile {})",
                    profiles.join(", "),
                    profiles[0]
                )));
            }
        }
    }
    Ok(())
}

/// A project name as Compose takes it: lowercase letters, digits, `_` and `-`, starting with a
/// letter or digit.
fn project_name(node: &Node) -> Result<String, Invalid> {
    let name = node.string("a project name")?;
    let mut chars = name.chars();
    let lower_or_digit = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if chars.next().is_some_and(lower_or_digit)
        && chars.all(|c| lower_or_digit(c) || "_-".contains(c))
    {
        Ok(name.to_string())
    } else {
        Err(node.err(format!(
            "invalid project name {name:?}: use lowercase letters, digits, '_' and '-', starting with a letter or digit"
        )))
    }
}

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`: Compose's names of services, networks and profiles.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// A name by [`is_name`], at most 63 characters (a host name's label).
fn check_name(name: &str, spot: &Spot, what: &str) -> Result<(), Invalid> {
    if name.len() <= 63 && is_name(name) {
        Ok(())
    } else {
        Err(spot.err(format!(
            "invalid {what} name {name:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit (at most 63)"
        )))
    }
}

fn read_networks(node: &Node) -> Result<BTreeMap<String, NetworkDef>, Invalid> {
    let mut networks = BTreeMap::new();
    for entry in node
        .table("a table of networks, like [networks.back]")?
        .entries()
    {
        check_name(entry.key, &entry.key_spot, "network")?;
        let table = entry.node.table("a table, like [networks.back]")?;
        table.only(&["subnet", "gateway", "internal", "name", "external"])?;
        let mut def = NetworkDef::default();
        if let Some(node) = table.get("name") {
            let name = node.string("a network name")?;
            check_name(name, &node.spot, "network")?;
            def.name = Some(name.to_string());
        }
        if let Some(node) = table.get("external") {
            def.external = node.boolean()?;
            if def.external {
                if let Some(key) = ["subnet", "gateway", "internal"]
                    .into_iter()
                    .find(|key| table.get(key).is_some())
                {
                    return Err(table.get(key).expect("found").err(format!(
                        "an external network is made by forge network create: {key} cannot be given here"
                    )));
                }
            }
        }
        if let Some(node) = table.get("subnet") {
            let text = node.string("a subnet like \"10.89.1.0/24\"")?;
            def.subnet = Some(text.parse().map_err(|err| node.err(err))?);
        }
        if let Some(node) = table.get("gateway") {
            let text = node.string("an IPv4 address like \"10.89.1.1\"")?;
            let ip: Ipv4Addr = text.parse().map_err(|_| {
                node.err(format!(
                    "invalid gateway {text:?}: expected an IPv4 address like 10.89.1.1"
                ))
            })?;
            let subnet = def
                .subnet
                .ok_or_else(|| node.err("a gateway needs a subnet in the same network"))?;
            if !subnet.contains(ip) || ip == subnet.network || ip == subnet.broadcast() {
                return Err(node.err(format!(
                    "gateway {ip} is not a host address of subnet {subnet}"
                )));
            }
            def.gateway = Some(ip);
        }
        if let Some(node) = table.get("internal") {
            def.internal = node.boolean()?;
        }
        networks.insert(entry.key.to_string(), def);
    }
    Ok(networks)
}

fn check_networks(
    places: &[(&str, Placed)],
    networks: &BTreeMap<String, NetworkDef>,
) -> Result<(), Invalid> {
    for (_, placed) in places {
        for (name, spot) in &placed.networks {
            if name != DEFAULT_NETWORK && !networks.contains_key(name) {
                return Err(spot.err(format!(
                    "unknown network {name:?} (define it as [networks.{name}])"
                )));
            }
        }
    }
    // A fixed address needs a subnet the file gives (Docker's rule), inside it, and once.
    let mut taken: Vec<(Ipv4Addr, &str)> = Vec::new();
    for (service, placed) in places {
        let Some((ip, spot)) = &placed.ipv4_address else {
            continue;
        };
        let network = &placed.networks[0].0;
        let Some(subnet) = networks.get(network).and_then(|n| n.subnet) else {
            return Err(spot.err(format!(
                "a fixed ipv4_address needs a subnet: give network {network:?} one"
            )));
        };
        let gateway = networks[network].gateway.unwrap_or(subnet.first_host());
        if !subnet.contains(*ip)
            || *ip == subnet.network
            || *ip == subnet.broadcast()
            || *ip == gateway
        {
            return Err(spot.err(format!(
                "{ip} is not a free host address of network {network:?} ({subnet})"
            )));
        }
        if let Some((_, other)) = taken.iter().find(|(t, _)| t == ip) {
            return Err(spot.err(format!("{ip} is also service {other}'s ipv4_address")));
        }
        taken.push((*ip, service));
    }
    Ok(())
}

fn check_volumes(
    places: &[(&str, Placed)],
    volumes: &BTreeMap<String, VolumeDef>,
) -> Result<(), Invalid> {
    for (_, placed) in places {
        for (name, spot) in &placed.volumes {
            if !volumes.contains_key(name) {
                return Err(spot.err(format!(
                    "undefined volume {name:?} (define it as [volumes.{name}])"
                )));
            }
        }
    }
    Ok(())
}

fn check_dependencies(
    places: &[(&str, Placed)],
    services: &BTreeMap<String, Service>,
) -> Result<(), Invalid> {
    for (name, placed) in places {
        for (dep, spot) in &placed.depends_on {
            if dep == name {
                return Err(spot.err(format!("service {name} cannot depend on itself")));
            }
            let Some(dependency) = services.get(dep) else {
                let known: Vec<&str> = services.keys().map(String::as_str).collect();
                return Err(spot.err(format!(
                    "unknown service {dep:?} (services are: {})",
                    known.join(", ")
                )));
            };
            // Forge's images carry no HEALTHCHECK: only the file can give one.
            if services[*name].depends_on.get(dep) == Some(&Condition::Healthy)
                && dependency.healthcheck.is_none()
            {
                return Err(spot.err(format!(
                    "service {dep:?} has no healthcheck, so condition service_healthy could never be met (give {dep} a healthcheck, or use service_started)"
                )));
            }
        }
    }
    if let Some(cycle) = crate::order::find_cycle(services) {
        let (_, placed) = places
            .iter()
            .find(|(name, _)| *name == cycle[0])
            .expect("a cycle starts at a service");
        let (_, spot) = placed
            .depends_on
            .iter()
            .find(|(dep, _)| *dep == cycle[1])
            .expect("a cycle follows a dependency");
        return Err(spot.err(format!("dependency cycle: {}", cycle.join(" -> "))));
    }
    Ok(())
}

impl Compose {
    /// The services `wanted` names, a replicated one by each of its replicas (`web`: `web-1`
    /// …); all when none is named. `Err`: a name that is no service's.
    pub fn services_named(&self, wanted: &[String]) -> Result<Vec<String>, String> {
        if wanted.is_empty() {
            return Ok(self.services.keys().cloned().collect());
        }
        let mut names = Vec::new();
        for want in wanted {
            let before = names.len();
            names.extend(
                self.services
                    .values()
                    .filter(|svc| {
                        svc.name == *want
                            || (svc.aliases.first() == Some(want) && is_replica(&svc.name, want))
                    })
                    .map(|svc| svc.name.clone()),
            );
            if names.len() == before {
                return Err(format!("no such service: {want}"));
            }
        }
        Ok(names)
    }
}

impl Compose {
    /// Keeps only the services `wanted` names and those they depend on, transitively, and the
    /// networks they join (`docker compose up SERVICE...`).
    pub fn keep_only(&mut self, wanted: &[String]) -> Result<(), String> {
        let mut kept = self.services_named(wanted)?;
        let mut i = 0;
        while i < kept.len() {
            for dep in self.services[&kept[i]].depends_on.keys() {
                if !kept.contains(dep) {
                    kept.push(dep.clone());
                }
            }
            i += 1;
        }
        self.services.retain(|name, _| kept.contains(name));
        let services = &self.services;
        self.networks
            .retain(|key, _| services.values().any(|svc| svc.networks.contains(key)));
        Ok(())
    }
}

/// Whether `name` is one of `service`'s replicas' names (`web-2` of `web`).
pub fn is_replica(name: &str, service: &str) -> bool {
    name.strip_prefix(service)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A service of N replicas becomes services `NAME-1` … `NAME-N` (containers
/// `PROJECT-NAME-1` …, as Compose names them), each answering to `NAME` too; a dependency on
/// it waits for every one. What one container alone can have is refused: a `container_name`, a
/// fixed address, a fixed host port. A service of 0 replicas runs no container: it is left
/// out, and its dependants start without it (the warnings say which).
fn expand_replicas(
    places: &[(&str, Placed)],
    services: &mut BTreeMap<String, Service>,
) -> Result<Vec<String>, Invalid> {
    let mut expanded: BTreeMap<String, u32> = BTreeMap::new();
    for (name, placed) in places {
        let Some((n, spot)) = &placed.replicas else {
            continue;
        };
        if *n == 0 {
            expanded.insert(name.to_string(), 0);
            continue;
        }
        if *n == 1 {
            continue;
        }
        let service = &services[*name];
        let refuse = |what: &str| Err(spot.err(format!("{n} replicas cannot share {what}")));
        if service.container_name.is_some() {
            return refuse("one container_name");
        }
        if service.ipv4_address.is_some() {
            return refuse("one ipv4_address");
        }
        if let Some((port, _)) = placed.ports.iter().find(|(p, _)| p.host_port != 0) {
            return refuse(&format!("host port {} (publish the container port alone: a free host port is chosen for each)", port.host_port));
        }
        expanded.insert(name.to_string(), *n);
    }
    for (name, n) in &expanded {
        let service = services.remove(name).expect("a placed service");
        for i in 1..=*n {
            let mut replica = service.clone();
            replica.name = format!("{name}-{i}");
            replica.aliases.insert(0, name.clone());
            if services.contains_key(&replica.name) {
                let (_, placed) = places.iter().find(|(p, _)| p == name).expect("placed");
                let spot = &placed.replicas.as_ref().expect("replicated").1;
                return Err(spot.err(format!(
                    "replica {} would have the name of another service",
                    replica.name
                )));
            }
            services.insert(replica.name.clone(), replica);
        }
    }
    let mut warnings = Vec::new();
    for service in services.values_mut() {
        for dep in service.depends_on.keys() {
            if expanded.get(dep) == Some(&0) {
                warnings.push(format!(
                    "service {}: dependency {dep:?} has 0 replicas: starting without it",
                    service.name
                ));
            }
        }
        let restarts_with = std::mem::take(&mut service.restarts_with);
        for dep in restarts_with {
            match expanded.get(&dep) {
                Some(n) => service
                    .restarts_with
                    .extend((1..=*n).map(|i| format!("{dep}-{i}"))),
                None => {
                    service.restarts_with.insert(dep);
                }
            }
        }
        let deps = std::mem::take(&mut service.depends_on);
        for (dep, condition) in deps {
            match expanded.get(&dep) {
                Some(n) => service
                    .depends_on
                    .extend((1..=*n).map(|i| (format!("{dep}-{i}"), condition))),
                None => {
                    service.depends_on.insert(dep, condition);
                }
            }
        }
    }
    Ok(warnings)
}

/// Two services cannot name the same container.
fn check_container_names(
    places: &[(&str, Placed)],
    services: &BTreeMap<String, Service>,
) -> Result<(), Invalid> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, placed) in places {
        let Some(container) = services[*name].container_name.as_deref() else {
            continue;
        };
        if let Some(first) = seen.insert(container, name) {
            return Err(placed
                .container_name
                .clone()
                .expect("read with the name")
                .err(format!(
                    "container name {container:?} is also service {first}'s container_name"
                )));
        }
    }
    Ok(())
}

fn check_ports(places: &[(&str, Placed)]) -> Result<(), Invalid> {
    // netd's own rule, as ports are refused when the services start.
    let mut published: Vec<(&str, PortMapping, &Spot)> = Vec::new();
    for (name, placed) in places {
        for (port, spot) in &placed.ports {
            let mapping = forge_host::ports::to_netd(port);
            if let Some((owner, _, first)) =
                published.iter().find(|(_, p, _)| p.clashes_with(&mapping))
            {
                let host = match port.host_ip {
                    Some(ip) => format!("{ip}:{}", port.host_port),
                    None => port.host_port.to_string(),
                };
                return Err(spot.err(format!(
                    "host port {host}/{} is already published by service {owner} ({})",
                    port.protocol, first.field
                )));
            }
            published.push((name, mapping, spot));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod yaml_tests;
