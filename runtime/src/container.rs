//! The library API: create, start, wait, signal, stop, list and remove containers.
//!
//! On disk, per container: `DATA/containers/ID/` holds `config.json`, the writable layer
//! (`upper/`, `work/`), the files bind-mounted over `/etc/hostname`, `/etc/hosts` and
//! `/etc/resolv.conf`, and `container.log`; `RUN/containers/ID/` holds `state.json` and the
//! rootfs mount point. `DATA/names/NAME` links a name to its id. Volumes are in
//! `DATA/volumes/` (see `volume.rs`); a config names the ones its container uses. The process that starts a
//! container (the CLI, a detached monitor, the supervisor) waits for it and records its exit.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

mod copy;
mod start;
mod volumes;

pub use copy::{CopyOptions, CopyPath};

pub use volumes::VolumeInfo;

use crate::cgroup::{CgroupError, CgroupPaths, Stats};
use crate::launch::{self, LaunchError, Started};
use crate::limits::Limits;
use crate::mounts::Mount;
use crate::names::{self, NameError};
use crate::network::{Network, NetworkError, PublishedPort};
use crate::paths::Roots;
use crate::spec::{BindFile, InitSpec, Storage, DEFAULT_PATH};
use crate::status::{now_secs, ExitInfo, State, Status};
use forge_image::{ImageError, ImageStore};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// `rm` tried every teardown step; these are the ones that failed.
    #[error("removing {name}: {}", failures.join("; "))]
    Teardown { name: String, failures: Vec<String> },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Seal(#[from] crate::sealed_exe::SealError),
    #[error("invalid environment variable {0:?}: expected KEY=VALUE with a non-empty KEY")]
    BadEnv(String),
    #[error("invalid hostname {0:?}: use at most 63 letters, digits, '-' and '.'")]
    BadHostname(String),
    #[error("working directory {dir:?} does not exist in image {image}")]
    NoWorkdir { dir: String, image: String },
    #[error("no command specified: image {0} has no entrypoint or command and none was given")]
    NoCommand(String),
    #[error("working directory {0:?} must be an absolute path")]
    RelativeWorkdir(String),
    #[error("image {image} exposes {port:?}, which is not PORT[/tcp|udp]")]
    BadExposedPort { image: String, port: String },
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("container {0} is running: stop it first or use `forge rm -f`")]
    Running(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("container {name}: {source}")]
    Launch {
        name: String,
        #[source]
        source: LaunchError,
    },
    #[error("container {name}: cgroups: {source}")]
    Cgroup {
        name: String,
        #[source]
        source: CgroupError,
    },
    #[error("container {name}: network: {source}")]
    Network {
        name: String,
        #[source]
        source: NetworkError,
    },
    /// A start failed, and so did undoing some of what it had made.
    #[error("{error} (and cleaning up failed: {})", cleanup.join("; "))]
    StartFailed {
        #[source]
        error: Box<RuntimeError>,
        cleanup: Vec<String>,
    },
    #[error(transparent)]
    User(#[from] crate::user::UserError),
    #[error("{0} needs a network; it cannot be used with --net none")]
    NeedsNetwork(&'static str),
    #[error("invalid --tmpfs {0}")]
    BadTmpfs(#[from] crate::tmpfs::TmpfsError),
    #[error("network {0} is given twice")]
    NetworkTwice(String),
    /// A network option refused before the container exists.
    #[error(transparent)]
    NetworkOption(NetworkError),
    #[error(transparent)]
    Userns(#[from] crate::userns::UsernsError),
    #[error(transparent)]
    Mount(#[from] crate::mounts::MountError),
    #[error(transparent)]
    Volume(#[from] crate::volume::VolumeError),
    #[error("bind source path does not exist: {0} (--mount type=bind needs it; -v creates it)")]
    NoBindSource(String),
    #[error("image {image} declares VOLUME {path:?}: {reason}")]
    BadImageVolume {
        image: String,
        path: String,
        reason: String,
    },
    #[error(transparent)]
    Copy(#[from] crate::cp::CopyError),
    #[error("{0}")]
    BadCopy(String),
    #[error("copying with container {name}: {message}")]
    CopyRoot { name: String, message: String },
    #[error("signalling container {name}: {source}")]
    Signal {
        name: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RuntimeError {
    let path = path.to_path_buf();
    move |source| RuntimeError::Io { what, path, source }
}

/// What the user asked for; validated by [`Runtime::create`].
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub name: Option<String>,
    pub image: String,
    /// Replaces the image's entrypoint (`Some(vec![])` clears it).
    pub entrypoint: Option<Vec<String>>,
    /// The command; empty means the image's.
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub hostname: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub auto_remove: bool,
    pub limits: Limits,
    /// Where to create the container's cgroups instead of the default (a slice for systemd).
    pub cgroup_parent: Option<String>,
    /// Who makes the cgroups; `None`: the host's default (see [`crate::cgroup::Manager::choose`]).
    pub cgroup_manager: Option<crate::cgroup::Manager>,
    pub net: NetSpec,
    /// Free-form key/value pairs (the supervisor records project and service).
    pub labels: std::collections::BTreeMap<String, String>,
    /// `NAME|UID[:GROUP|GID]` to run the command as, resolved in the image.
    pub user: Option<String>,
    /// Run a reaping init as PID 1, with the command as its child.
    pub init: bool,
    /// Capabilities and no_new_privs (Docker's defaults unless changed).
    pub privileges: crate::caps::Privileges,
    pub read_only: bool,
    /// `PATH[:OPTIONS]` tmpfs mounts.
    pub tmpfs: Vec<String>,
    /// `-v` and `--mount` (see [`crate::mounts`]); anonymous volumes are named at create.
    pub mounts: Vec<Mount>,
    /// `--userns`: the host's user namespace, or one of its own with a range of subordinate IDs.
    pub userns: crate::userns::Mode,
}

/// How a container is networked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetSpec {
    /// The networks to attach to, the first one routing everything else; none is `--net none`
    /// (a namespace with only `lo`).
    #[serde(default)]
    pub networks: Vec<String>,
    /// A fixed address on the first network instead of the next free one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::Ipv4Addr>,
    /// Host port 0: one is chosen at each start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PublishedPort>,
    /// `-P`: also publish every port the image exposes, each on a free host port.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub publish_all: bool,
    /// More names the other containers on the network reach it by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// A container's fixed configuration, as stored in `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub id: String,
    pub name: String,
    pub image: String,
    pub created: u64,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub hostname: String,
    pub tty: bool,
    pub interactive: bool,
    pub auto_remove: bool,
    #[serde(default)]
    pub limits: Limits,
    /// Resolved when the container is created, from the cgroup of the process that created it.
    pub cgroup: CgroupPaths,
    #[serde(default)]
    pub net: NetSpec,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<crate::user::User>,
    #[serde(default)]
    pub init: bool,
    /// What `forge stop` sends first: the image's StopSignal, else SIGTERM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<i32>,
    #[serde(default)]
    pub privileges: crate::caps::Privileges,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<(String, String)>,
    /// Binds and volumes (the image's VOLUMEs as anonymous volumes), and `--mount type=tmpfs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// `--userns=auto`: the host IDs of the container's 0..65535, reserved until it is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns: Option<crate::userns::IdMap>,
}

/// The message for an exit caused by the memory cgroup's OOM killer.
pub const OOM_REASON: &str = "OOM killed: the container exceeded its memory limit";

#[derive(Debug, Clone)]
pub struct Container {
    pub config: ContainerConfig,
    pub state: State,
}

impl Container {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    pub fn is_running(&self) -> bool {
        self.state.status == Status::Running && self.state.process_alive()
    }
}

/// Forge's container runtime over one pair of roots, plugging containers into networks through
/// the seam its caller gives it.
#[derive(Debug, Clone)]
pub struct Runtime {
    roots: Roots,
    images: ImageStore,
    network: Arc<dyn Network>,
}

/// `net` with `-P` applied: each port the image exposes (`80/tcp`, `53/udp`, `8080`) and that is
/// not published already gets a mapping whose host port is chosen at start, as `docker run -P`.
fn with_exposed_ports(
    net: &NetSpec,
    image: &str,
    exposed: &[String],
) -> Result<NetSpec, RuntimeError> {
    let mut net = net.clone();
    if !net.publish_all {
        return Ok(net);
    }
    for port in exposed {
        if port.ends_with("/sctp") {
            tracing::warn!("image {image} exposes {port}: SCTP cannot be published; skipped");
            continue;
        }
        let bad = || RuntimeError::BadExposedPort {
            image: image.to_string(),
            port: port.clone(),
        };
        let mapping: PublishedPort = port.parse().map_err(|_| bad())?;
        if mapping.host_port != 0 || mapping.host_ip.is_some() {
            return Err(bad());
        }
        let published = net
            .ports
            .iter()
            .any(|p| p.container_port == mapping.container_port && p.protocol == mapping.protocol);
        if !published {
            net.ports.push(mapping);
        }
    }
    Ok(net)
}

/// A signal as images name it: `SIGQUIT`, `QUIT` or `3`.
fn parse_signal(text: &str) -> Option<i32> {
    use std::str::FromStr;
    if let Ok(n) = text.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).ok().map(|s| s as i32);
    }
    let name = text.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    nix::sys::signal::Signal::from_str(&name)
        .ok()
        .map(|s| s as i32)
}

fn validate_env(env: &[String]) -> Result<(), RuntimeError> {
    for kv in env {
        match kv.split_once('=') {
            Some((key, _)) if !key.is_empty() && !key.contains('\0') => {}
            _ => return Err(RuntimeError::BadEnv(kv.clone())),
        }
    }
    Ok(())
}

fn validate_hostname(name: &str) -> Result<(), RuntimeError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::BadHostname(name.to_string()))
    }
}

/// `base` with `extra` layered on top, later keys replacing earlier ones as `docker run -e` does.
fn merge_env(base: &[String], extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for kv in base.iter().chain(extra) {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        out.retain(|old| old.split_once('=').map_or(old.as_str(), |(k, _)| k) != key);
        out.push(kv.clone());
    }
    out
}

/// Whether `dir` names a directory inside the image root, following symlinks within the image.
fn image_has_dir(root: &Path, dir: &str) -> bool {
    let mut path = root.to_path_buf();
    for part in Path::new(dir).components() {
        match part {
            std::path::Component::Normal(p) => path.push(p),
            std::path::Component::ParentDir if path != root => {
                path.pop();
            }
            _ => {}
        }
        if let Ok(target) = fs::read_link(&path) {
            let base = if target.is_absolute() {
                root.to_path_buf()
            } else {
                path.parent().unwrap_or(root).to_path_buf()
            };
            let joined = base.join(target.strip_prefix("/").unwrap_or(&target));
            if !joined.starts_with(root) {
                return false;
            }
            path = joined;
        }
    }
    path.is_dir()
}

fn write_json(path: &Path, value: &impl Serialize) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(
        &tmp,
        serde_json::to_vec_pretty(value).map_err(io::Error::other)?,
    )?;
    fs::rename(&tmp, path)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<T> {
    serde_json::from_slice(&fs::read(path)?).map_err(io::Error::other)
}

impl Runtime {
    pub fn new(roots: Roots, network: Arc<dyn Network>) -> Self {
        let images = ImageStore::new(roots.images());
        Self {
            roots,
            images,
            network,
        }
    }

    pub fn roots(&self) -> &Roots {
        &self.roots
    }

    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    pub fn log_path(&self, c: &Container) -> PathBuf {
        self.roots.container_data(c.id()).join("container.log")
    }

    /// The log files a rotating writer (forge-supervise's `logging`) left before the current
    /// one, oldest first: `container.log.N` … `container.log.1`.
    pub fn rotated_logs(&self, c: &Container) -> Vec<PathBuf> {
        let current = self.log_path(c);
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", current.display()));
        let count = (1..).take_while(|n| numbered(*n).exists()).count() as u32;
        (1..=count).rev().map(numbered).collect()
    }

    /// Validates `opts`, claims the name and writes everything the container needs on disk.
    /// On failure nothing is left behind.
    pub fn create(&self, opts: &CreateOptions) -> Result<Container, RuntimeError> {
        validate_env(&opts.env)?;
        if let Some(h) = &opts.hostname {
            validate_hostname(h)?;
        }
        if let Some(name) = &opts.name {
            names::validate(name)?;
        }
        self.check_net(&opts.net)?;
        let image = self.images.get(&opts.image)?;
        // As `docker run`: the entrypoint, then the given command or the image's.
        let args: Vec<String> = opts
            .entrypoint
            .as_ref()
            .unwrap_or(&image.config.entrypoint)
            .iter()
            .chain(if opts.args.is_empty() && opts.entrypoint.is_none() {
                &image.config.cmd
            } else {
                &opts.args
            })
            .cloned()
            .collect();
        if args.is_empty() {
            return Err(RuntimeError::NoCommand(opts.image.clone()));
        }
        let cwd = match &opts.workdir {
            Some(dir) if !dir.starts_with('/') => {
                return Err(RuntimeError::RelativeWorkdir(dir.clone()))
            }
            Some(dir) => dir.clone(),
            None if image.config.working_dir.is_empty() => "/".to_string(),
            None => image.config.working_dir.clone(),
        };
        // Layers are searched top-down (whiteouts in between are not considered).
        if !image
            .layers
            .iter()
            .rev()
            .any(|layer| image_has_dir(layer, &cwd))
        {
            return Err(RuntimeError::NoWorkdir {
                dir: cwd,
                image: opts.image.clone(),
            });
        }
        let user = match opts.user.as_ref().or(image.config.user.as_ref()) {
            Some(spec) => Some(crate::user::resolve(&image, spec)?),
            None => None,
        };
        let net = with_exposed_ports(&opts.net, &opts.image, &image.config.exposed_ports)?;
        let tmpfs = crate::tmpfs::parse_all(&opts.tmpfs)?;
        let mut mounts = self.check_mounts(opts, &image, &tmpfs)?;
        // Held until the config (which records the range) is written: ranges never overlap.
        let (userns, _userns_lock) = match opts.userns {
            crate::userns::Mode::Host => (None, None),
            crate::userns::Mode::Auto => {
                if opts.limits.storage.is_some() {
                    return Err(crate::userns::UsernsError::Conflict("--storage").into());
                }
                let (map, lock) = self.allocate_ids()?;
                (Some(map), Some(lock))
            }
        };
        let id = names::new_id();
        let cgroup =
            CgroupPaths::for_this_process(opts.cgroup_manager, opts.cgroup_parent.as_deref(), &id)
                .map_err(|source| RuntimeError::Cgroup {
                    name: opts.name.clone().unwrap_or_default(),
                    source,
                })?;
        let name = self.claim_name(opts.name.as_deref(), &id)?;
        let hostname = opts.hostname.clone().unwrap_or_else(|| name.clone());
        let mut env = merge_env(&[format!("PATH={DEFAULT_PATH}")], &image.config.env);
        let home = user
            .as_ref()
            .and_then(|u| u.home.clone())
            .unwrap_or_else(|| "/root".to_string());
        env = merge_env(
            &env,
            &[format!("HOSTNAME={hostname}"), format!("HOME={home}")],
        );
        if opts.tty {
            env = merge_env(&env, &["TERM=xterm".to_string()]);
        }
        env = merge_env(&env, &opts.env);
        let config = ContainerConfig {
            id: id.clone(),
            name: name.clone(),
            image: opts.image.clone(),
            created: now_secs(),
            args,
            env,
            cwd,
            hostname,
            tty: opts.tty,
            interactive: opts.interactive,
            auto_remove: opts.auto_remove,
            limits: opts.limits.clone(),
            cgroup,
            net,
            labels: opts.labels.clone(),
            user,
            init: opts.init,
            stop_signal: image.config.stop_signal.as_deref().and_then(parse_signal),
            privileges: opts.privileges.clone(),
            read_only: opts.read_only,
            tmpfs,
            mounts: std::mem::take(&mut mounts),
            userns,
        };
        let container = Container {
            config,
            state: State::created(),
        };
        // Held until the config naming its volumes is written: none is removed meanwhile.
        let volumes = match self.make_volumes(&container.config.mounts) {
            Ok(made) => made,
            Err(e) => {
                self.delete_files(&container, false);
                return Err(e);
            }
        };
        if let Err(e) = self.write_new(&container) {
            self.delete_files(&container, false);
            volumes.undo(&self.volume_store());
            return Err(e);
        }
        Ok(container)
    }

    /// A free range of subordinate IDs, and the lock that keeps it free until the config that
    /// records it is written. Forge's roots are made searchable for the container's root.
    fn allocate_ids(
        &self,
    ) -> Result<(crate::userns::IdMap, crate::userns::AllocationLock), RuntimeError> {
        let candidates = crate::userns::candidates()?;
        crate::userns::make_searchable(&self.roots.data)?;
        crate::userns::make_searchable(&self.roots.run)?;
        let lock = crate::userns::lock(&self.roots.data)?;
        // Listing also reconciles: the ranges of containers a crash left behind are freed first.
        let used: Vec<_> = self
            .list()?
            .iter()
            .filter_map(|c| c.config.userns)
            .collect();
        Ok((crate::userns::allocate(&candidates, &used)?, lock))
    }

    /// Refuses network options that cannot work before anything is created.
    fn check_net(&self, net: &NetSpec) -> Result<(), RuntimeError> {
        if net.networks.is_empty() {
            if net.ip.is_some() {
                return Err(RuntimeError::NeedsNetwork("--ip"));
            }
            if !net.ports.is_empty() {
                return Err(RuntimeError::NeedsNetwork("-p"));
            }
            if net.publish_all {
                return Err(RuntimeError::NeedsNetwork("-P"));
            }
        }
        for (n, network) in net.networks.iter().enumerate() {
            if net.networks[..n].contains(network) {
                return Err(RuntimeError::NetworkTwice(network.clone()));
            }
        }
        self.network
            .check(&net.networks)
            .map_err(RuntimeError::NetworkOption)
    }

    fn claim_name(&self, wanted: Option<&str>, id: &str) -> Result<String, RuntimeError> {
        if let Some(name) = wanted {
            names::claim(&self.roots.names(), name, id)?;
            return Ok(name.to_string());
        }
        for attempt in 0.. {
            let name = names::generated(id, attempt);
            match names::claim(&self.roots.names(), &name, id) {
                Err(NameError::InUse(_)) => continue,
                other => return other.map(|()| name).map_err(Into::into),
            }
        }
        unreachable!("the attempt counter makes every generated name distinct")
    }

    fn write_new(&self, c: &Container) -> Result<(), RuntimeError> {
        let data = self.roots.container_data(c.id());
        let run = self.roots.container_run(c.id());
        let mut dirs = vec![data.clone(), run.join("rootfs")];
        match c.config.limits.storage {
            Some(_) => dirs.push(run.join("storage")),
            None => dirs.extend([data.join("upper"), data.join("work")]),
        }
        for dir in dirs {
            fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        }
        if let Some(bytes) = c.config.limits.storage {
            let image = data.join("storage.img");
            crate::disk::make(&image, bytes, false)
                .map_err(io_err("making a filesystem in", &image))?;
        }
        let hosts = format!(
            "127.0.0.1\tlocalhost {h}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            h = c.config.hostname
        );
        let resolv_conf = if c.config.net.networks.is_empty() {
            "# no network: this container runs with --net none\n".to_string()
        } else {
            self.network
                .resolv_conf(&fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
        };
        let files = [
            ("hostname", format!("{}\n", c.config.hostname)),
            ("hosts", hosts),
            ("resolv.conf", resolv_conf),
        ];
        for (file, content) in files {
            let path = data.join(file);
            fs::write(&path, content).map_err(io_err("writing", &path))?;
        }
        if let Some(map) = &c.config.userns {
            // The container's root writes its layer and its /etc files, as root does without one.
            for entry in ["upper", "work", "hostname", "hosts", "resolv.conf"] {
                crate::userns::chown_to_root(&data.join(entry), map)?;
            }
        }
        let config_path = data.join("config.json");
        write_json(&config_path, &c.config).map_err(io_err("writing", &config_path))?;
        self.write_state(c.id(), &c.state)
    }

    fn write_state(&self, id: &str, state: &State) -> Result<(), RuntimeError> {
        let path = self.roots.container_run(id).join("state.json");
        write_json(&path, state).map_err(io_err("writing", &path))
    }

    fn init_spec(&self, c: &Container, die_with_parent: bool) -> Result<InitSpec, RuntimeError> {
        let image = self.images.get(&c.config.image)?;
        let data = self.roots.container_data(c.id());
        let bind = |file: &str| BindFile {
            source: data.join(file),
            target: format!("/etc/{file}"),
        };
        let (storage, writable) = match c.config.limits.storage {
            Some(_) => {
                let mountpoint = self.roots.container_run(c.id()).join("storage");
                let image = data.join("storage.img");
                (
                    Some(Storage {
                        image,
                        mountpoint: mountpoint.clone(),
                    }),
                    mountpoint,
                )
            }
            None => (None, data.clone()),
        };
        Ok(InitSpec {
            id: c.config.id.clone(),
            hostname: c.config.hostname.clone(),
            // overlayfs lists lower layers top-most first.
            lower: image.layers.iter().rev().cloned().collect(),
            upper: writable.join("upper"),
            work: writable.join("work"),
            storage,
            rootfs: self.roots.container_run(c.id()).join("rootfs"),
            // A file the user mounts there (`-v ./hosts:/etc/hosts`) wins, as in Docker.
            bind_files: ["hostname", "hosts", "resolv.conf"]
                .into_iter()
                .map(bind)
                .filter(|f| !c.config.mounts.iter().any(|m| m.target == f.target))
                .collect(),
            args: c.config.args.clone(),
            env: c.config.env.clone(),
            cwd: c.config.cwd.clone(),
            tty: c.config.tty,
            die_with_parent,
            user: c.config.user.clone(),
            init: c.config.init,
            privileges: c.config.privileges.clone(),
            read_only: c.config.read_only,
            mounts: self.init_mounts(&c.config)?,
            userns: c.config.userns.map(|map| crate::userns::UsernsSpec {
                map,
                layers_dir: self.roots.container_run(c.id()).join("layers"),
            }),
        })
    }

    /// Unplugs the container from its network (its veth, address, ports and hosts entries);
    /// the failure, if any.
    fn try_release_network(&self, config: &ContainerConfig) -> Option<String> {
        if config.net.networks.is_empty() {
            return None;
        }
        self.network
            .detach(&config.id)
            .err()
            .map(|e| format!("detaching {} from its network: {e}", config.name))
    }

    /// Waits for a started container to exit, records how, and removes it if it was `--rm`.
    pub fn wait(&self, c: &mut Container, started: &Started) -> ExitInfo {
        let exit = started.wait();
        tracing::debug!(code = exit.code, "container exited");
        self.record_exit(c, exit)
    }

    /// Records that the container's process is gone: kills whatever is left in its cgroups,
    /// removes them, and removes an auto-remove container entirely.
    pub fn record_exit(&self, c: &mut Container, mut exit: ExitInfo) -> ExitInfo {
        if c.config.cgroup.driver().oom_killed() {
            exit.reason = OOM_REASON.to_string();
        }
        c.state.status = Status::Exited;
        c.state.pid = None;
        c.state.pid_start = None;
        c.state.monitor_pid = None;
        c.state.ip = None;
        c.state.ports.clear();
        c.state.health = None;
        c.state.finished_at = Some(now_secs());
        c.state.exit = Some(exit.clone());
        if c.config.auto_remove {
            self.delete_files(c, true);
        } else {
            self.release_resources(c);
            if let Err(e) = self.write_state(c.id(), &c.state) {
                tracing::warn!("recording the exit of {}: {e}", c.name());
            }
        }
        exit
    }

    /// Removes a created or failed container that never ran (e.g. its start was refused), and
    /// the anonymous volumes made for it.
    pub fn discard(&self, c: &Container) {
        self.delete_files(c, true);
    }

    /// Kills whatever is left in the container's cgroups, removes them and unplugs it from its
    /// network. Every way a container ends (exit, failed start, `rm -f`, a lost monitor) comes
    /// through here.
    fn release_resources(&self, c: &Container) {
        for e in self.try_release_resources(c) {
            tracing::warn!("{e}");
        }
    }

    /// [`Self::release_resources`]: tries every step, returns every failure.
    fn try_release_resources(&self, c: &Container) -> Vec<String> {
        let mut failures = Vec::from_iter(try_remove_cgroups(&c.config));
        failures.extend(self.try_release_network(&c.config));
        failures
    }

    /// Removes the container; with `volumes`, its anonymous volumes too.
    fn delete_files(&self, c: &Container, volumes: bool) {
        for e in self.try_delete_files(c, volumes) {
            tracing::warn!("{e}");
        }
    }

    /// [`Self::delete_files`]: tries every step, returns every failure.
    fn try_delete_files(&self, c: &Container, volumes: bool) -> Vec<String> {
        // Cgroups first: they must not outlive the container, whatever path led here.
        let mut failures = self.try_release_resources(c);
        // Release the name last, so it cannot be reused while the old files still exist.
        for dir in [
            self.roots.container_run(c.id()),
            self.roots.container_data(c.id()),
        ] {
            if let Err(e) = fs::remove_dir_all(&dir) {
                if e.kind() != io::ErrorKind::NotFound {
                    failures.push(format!("removing {}: {e}", dir.display()));
                }
            }
        }
        if names::lookup(&self.roots.names(), c.name()).as_deref() == Some(c.id()) {
            names::release(&self.roots.names(), c.name());
        }
        // After the container: a crash in between leaves a volume for `prune`, not a container
        // without its volume.
        if volumes {
            failures.extend(self.try_remove_anonymous_volumes(c));
        }
        failures
    }

    fn load(&self, id: &str) -> Option<Container> {
        let config: ContainerConfig =
            read_json(&self.roots.container_data(id).join("config.json")).ok()?;
        let state =
            read_json(&self.roots.container_run(id).join("state.json")).unwrap_or_else(|_| State {
                // The run root is gone (e.g. after a reboot): the container cannot still be running.
                status: Status::Exited,
                exit: Some(ExitInfo {
                    code: 255,
                    signal: None,
                    reason: "state lost (host rebooted?)".into(),
                }),
                ..State::created()
            });
        Some(Container { config, state })
    }

    /// Finds a container by name, full id or unique id prefix.
    pub fn get(&self, name_or_id: &str) -> Result<Container, RuntimeError> {
        let not_found = || RuntimeError::NotFound(name_or_id.to_string());
        if let Some(id) = names::lookup(&self.roots.names(), name_or_id) {
            return self
                .load(&id)
                .and_then(|c| self.reconcile(c))
                .ok_or_else(not_found);
        }
        if name_or_id.len() >= 3 && name_or_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<Container> = self
                .list()?
                .into_iter()
                .filter(|c| c.id().starts_with(name_or_id))
                .collect();
            if matches.len() == 1 {
                return Ok(matches.into_iter().next().expect("one match"));
            }
        }
        Err(not_found())
    }

    /// Every container, oldest first. Containers whose waiting process died are marked exited
    /// (and removed when they were `--rm`): a crash of Forge is cleaned up by the next command.
    pub fn list(&self) -> Result<Vec<Container>, RuntimeError> {
        let dir = self.roots.data.join("containers");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("listing", &dir)(e)),
        };
        let mut all: Vec<Container> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|id| self.load(&id))
            .filter_map(|c| self.reconcile(c))
            .collect();
        all.sort_by(|a, b| (a.config.created, a.id()).cmp(&(b.config.created, b.id())));
        Ok(all)
    }

    /// A container whose process is gone but whose state still says running: its monitor records
    /// the exit within moments; if the monitor is gone too (Forge was killed), record it here.
    /// `None` when the container was removed meanwhile (`--rm`).
    fn reconcile(&self, c: Container) -> Option<Container> {
        if c.state.status != Status::Running || c.state.process_alive() {
            return Some(c);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut fresh = self.load(c.id())?;
            if fresh.state.status != Status::Running {
                return Some(fresh);
            }
            let monitor_alive = fresh
                .state
                .monitor_pid
                .is_some_and(|pid| crate::sys::running_since(pid).is_some());
            if !monitor_alive || Instant::now() >= deadline {
                // The monitor records the exit before it exits: read the state once more now that
                // it is gone, or we would overwrite what it wrote after our read above.
                fresh = self.load(c.id())?;
                if fresh.state.status != Status::Running {
                    return Some(fresh);
                }
                let lost = ExitInfo {
                    code: 255,
                    signal: None,
                    reason: "monitor lost".into(),
                };
                self.record_exit(&mut fresh, lost);
                return (!fresh.config.auto_remove).then_some(fresh);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn pidfd_of(&self, c: &Container) -> Result<std::os::fd::OwnedFd, RuntimeError> {
        let not_running = || RuntimeError::NotRunning(c.name().to_string());
        let pid = c.state.pid.ok_or_else(not_running)?;
        let pidfd = crate::sys::pidfd_open(pid).map_err(|_| not_running())?;
        // Checked after opening: if the start time still matches, the pidfd names our process.
        if !c.state.process_alive() {
            return Err(not_running());
        }
        Ok(pidfd)
    }

    /// Sends `sig` to the container's PID 1.
    pub fn kill(&self, name: &str, sig: nix::sys::signal::Signal) -> Result<(), RuntimeError> {
        let c = self.get(name)?;
        let pidfd = self.pidfd_of(&c)?;
        crate::sys::pidfd_send_signal(pidfd.as_raw_fd(), sig as i32).map_err(|source| {
            RuntimeError::Signal {
                name: c.name().to_string(),
                source,
            }
        })
    }

    /// SIGTERM, then SIGKILL after `grace`; returns once the exit has been recorded.
    pub fn stop(&self, name: &str, grace: Duration) -> Result<(), RuntimeError> {
        let c = self.get(name)?;
        let Ok(pidfd) = self.pidfd_of(&c) else {
            return Ok(());
        };
        // Docker's rule: a container stopped by the user stays stopped, whatever its restart
        // policy, until it is started again (which removes the mark).
        let stopped = self.stopped_marker(&c);
        fs::write(&stopped, b"").map_err(io_err("marking as stopped", &stopped))?;
        let signal_err = |source| RuntimeError::Signal {
            name: c.name().to_string(),
            source,
        };
        let first = c.config.stop_signal.unwrap_or(libc::SIGTERM);
        crate::sys::pidfd_send_signal(pidfd.as_raw_fd(), first).map_err(signal_err)?;
        if !wait_readable(&pidfd, grace) {
            crate::sys::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGKILL).map_err(signal_err)?;
            let _ = c.config.cgroup.driver().kill_all();
            wait_readable(&pidfd, Duration::from_secs(10));
        }
        self.await_recorded_exit(&c);
        Ok(())
    }

    /// Once the process is gone: lets the monitor record the exit, or records it if the monitor is gone.
    fn await_recorded_exit(&self, c: &Container) {
        if let Some(fresh) = self.load(c.id()) {
            self.reconcile(fresh);
        }
    }

    /// Whether the container's last end was a `forge stop` (not undone by a start since): a
    /// restart policy must not bring it back.
    pub fn stopped_by_user(&self, c: &Container) -> bool {
        self.stopped_marker(c).exists()
    }

    fn stopped_marker(&self, c: &Container) -> PathBuf {
        self.roots.container_data(c.id()).join("stopped-by-user")
    }

    /// Records a supervisor's view of the container (health, restarts) for `forge ps`.
    pub fn save_state(&self, c: &Container) -> Result<(), RuntimeError> {
        self.write_state(c.id(), &c.state)
    }

    /// A command that runs `args` inside the running container `c` (its namespaces, cgroups,
    /// root, working directory and environment plus `env`), as `forge exec` does. The caller
    /// spawns and waits for it; its exit code is the command's (125 when joining failed).
    pub fn exec_command(
        &self,
        c: &Container,
        args: &[String],
        env: &[String],
    ) -> Result<std::process::Command, RuntimeError> {
        // The spec waits in the socket's queue; the joining process reads it and closes it.
        let (cmd, _channel) = self.join_command(c, args, &merge_env(&c.config.env, env), false)?;
        Ok(cmd)
    }

    /// `forge exec -t`: starts `args` in the running container `c` as [`Self::exec_command`]
    /// does, but on a new pty of the container's as its controlling terminal (`TERM=xterm`
    /// unless `env` says otherwise). Returns the joining process and the pty's master, which is
    /// `None` when joining failed (the process says why on its stderr, which is the caller's,
    /// and exits with 125).
    pub fn exec_tty(
        &self,
        c: &Container,
        args: &[String],
        env: &[String],
    ) -> Result<launch::Joined, RuntimeError> {
        let env = merge_env(&merge_env(&c.config.env, &["TERM=xterm".into()]), env);
        let (mut cmd, channel) = self.join_command(c, args, &env, true)?;
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        launch::join_with_pty(cmd, channel).map_err(|source| RuntimeError::Launch {
            name: c.name().to_string(),
            source,
        })
    }

    /// The `__forge_join` command for `c` with the command's whole environment `env`, and our
    /// end of its set-up socket, on which its spec is already sent (see [`crate::channel`]).
    fn join_command(
        &self,
        c: &Container,
        args: &[String],
        env: &[String],
        tty: bool,
    ) -> Result<(std::process::Command, crate::channel::Channel), RuntimeError> {
        use std::os::unix::process::CommandExt;
        validate_env(env)?;
        let not_running = || RuntimeError::NotRunning(c.name().to_string());
        let (Some(pid), Some(pid_start)) = (c.state.pid, c.state.pid_start) else {
            return Err(not_running());
        };
        if !c.is_running() {
            return Err(not_running());
        }
        let spec = crate::init::join::JoinSpec {
            pid,
            pid_start,
            cgroup: c.config.cgroup.clone(),
            cwd: c.config.cwd.clone(),
            env: env.to_vec(),
            user: c.config.user.clone(),
            privileges: c.config.privileges.clone(),
            userns: c.config.userns.is_some(),
            tty,
            window: tty.then(crate::tty::caller_window_size).flatten(),
        };
        let launch_err = |source| RuntimeError::Launch {
            name: c.name().to_string(),
            source,
        };
        let (channel, theirs) = crate::channel::pair()
            .and_then(|(ours, theirs)| {
                ours.send(&crate::channel::Message::Join(Box::new(spec)))?;
                Ok((ours, theirs))
            })
            .map_err(|e| launch_err(LaunchError::Channel(e)))?;
        let mut cmd = std::process::Command::new(launch::init_exe()?);
        cmd.arg0("forge-exec")
            .arg(crate::init::join::JOIN_ARG)
            .args(args)
            .env_clear();
        launch::give_channel(&mut cmd, theirs);
        Ok((cmd, channel))
    }

    /// CPU, memory and process counts of a running container.
    pub fn stats(&self, c: &Container) -> Stats {
        c.config.cgroup.driver().stats()
    }

    /// Removes a container; a running one only with `force` (it is killed first).
    pub fn remove(&self, name: &str, force: bool) -> Result<(), RuntimeError> {
        self.remove_container(name, force, false)
    }

    /// `forge rm -v`: [`Self::remove`], and the container's anonymous volumes that no other
    /// container uses. Named volumes stay.
    pub fn remove_with_volumes(&self, name: &str, force: bool) -> Result<(), RuntimeError> {
        self.remove_container(name, force, true)
    }

    fn remove_container(&self, name: &str, force: bool, volumes: bool) -> Result<(), RuntimeError> {
        let c = self.get(name)?;
        // Held until the files are gone, as a start takes it too: a supervisor restarting the
        // container meanwhile waits, then finds it removed, instead of starting half of it.
        let lock_path = self.roots.container_data(c.id()).join("rootfs.lock");
        let _rootfs_lock = crate::sys::lock_exclusive(&lock_path).ok();
        // What it is now that nothing starts it (it may have been restarted meanwhile).
        let c = self.get(name)?;
        if c.is_running() {
            if !force {
                return Err(RuntimeError::Running(c.name().to_string()));
            }
            if let Ok(pidfd) = self.pidfd_of(&c) {
                let _ = crate::sys::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGKILL);
                let _ = c.config.cgroup.driver().kill_all();
                wait_readable(&pidfd, Duration::from_secs(10));
            }
            self.await_recorded_exit(&c);
        }
        let failures = self.try_delete_files(&c, volumes);
        if failures.is_empty() {
            Ok(())
        } else {
            Err(RuntimeError::Teardown {
                name: c.name().to_string(),
                failures,
            })
        }
    }
}

/// Kills whatever is left in the container's cgroups and removes them; the failure, if any.
fn try_remove_cgroups(config: &ContainerConfig) -> Option<String> {
    let cgroup = config.cgroup.driver();
    let _ = cgroup.kill_all();
    cgroup
        .remove()
        .err()
        .map(|e| format!("removing the cgroups of {}: {e}", config.name))
}

/// Waits until a pidfd reports that its process exited, up to `timeout`.
fn wait_readable(pidfd: &std::os::fd::OwnedFd, timeout: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(n) if n > 0 => return true,
            Ok(_) => return false,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_stop_signals_parse() {
        assert_eq!(parse_signal("SIGQUIT"), Some(libc::SIGQUIT));
        assert_eq!(parse_signal("quit"), Some(libc::SIGQUIT));
        assert_eq!(parse_signal("9"), Some(libc::SIGKILL));
        assert_eq!(parse_signal("SIGNOPE"), None);
    }

    #[test]
    fn env_is_checked_and_later_keys_win() {
        assert!(validate_env(&["A=1".into(), "B=".into()]).is_ok());
        assert!(validate_env(&["NOEQUALS".into()]).is_err());
        assert!(validate_env(&["=x".into()]).is_err());
        let merged = merge_env(&["PATH=/bin".into(), "A=1".into()], &["A=2".into()]);
        assert_eq!(merged, vec!["PATH=/bin".to_string(), "A=2".to_string()]);
    }

    #[test]
    fn hostnames_are_checked() {
        assert!(validate_hostname("web-1.local").is_ok());
        assert!(validate_hostname("").is_err());
        assert!(validate_hostname("a_b").is_err());
        assert!(validate_hostname(&"x".repeat(64)).is_err());
    }

    #[test]
    fn workdir_lookup_stays_inside_the_image() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("usr/share")).unwrap();
        std::os::unix::fs::symlink("/usr", root.path().join("u")).unwrap();
        std::os::unix::fs::symlink("/", root.path().join("up")).unwrap();
        assert!(image_has_dir(root.path(), "/usr/share"));
        assert!(image_has_dir(root.path(), "/u/share"));
        assert!(image_has_dir(root.path(), "/"));
        assert!(!image_has_dir(root.path(), "/nope"));
        assert!(!image_has_dir(root.path(), "/up/tmp")); // /tmp of the host, not of the image
    }
}
