//! Cgroups: the container's limits on CPU, memory and processes, its resource accounting, and
//! killing every process it has.
//!
//! The mode is detected at run time as the kernel reports it: cgroup2 at the root is `Unified`;
//! a tmpfs root with cgroup2 at `unified/` is `Hybrid` (v1 controllers, v2 for process tracking and
//! `cgroup.kill`); otherwise `Legacy`.
//!
//! Two managers place the cgroups, as runc's and Podman's do:
//! - `cgroupfs`: Forge writes the hierarchy itself. On v1 and hybrid hosts a container's cgroups
//!   go below the cgroup the calling process runs in (`OWN/forge/ID`), so Forge never escapes the
//!   limits it was given; on v2 below a subtree Forge owns at the root (`/forge/ID`, see [`v2`]),
//!   as the no-internal-processes rule forbids controllers below a cgroup with processes.
//! - `systemd`: on v2 hosts booted with systemd (the default there), systemd makes a transient
//!   delegated scope per container (`forge.slice/forge-ID.scope`, see [`systemd`]).
//!
//! Paths are resolved once, when the container is created, and stored with it: later commands
//! run from other cgroups find them. Ordering: cgroupfs creates and limits them before the
//! container's PID 1 exists, systemd around PID 1 ([`Cgroup::place`]); either way PID 1 is in
//! them before `Go`.

pub mod device_filter;
mod oom;
mod systemd;
mod tree;
mod v1;
mod v2;

pub use systemd::OomWatch;
/// For the kernel tests in `runtime/tests/` (cgroup_v1.rs, cgroup_tree.rs); not an API.
#[doc(hidden)]
pub mod testing {
    pub use super::tree::{create_owned, is_owned, remove_owned};
    pub use super::v1::V1;
    pub use super::v2::{enable_controllers, V2};
}

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::limits::Limits;

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Legacy,
    Hybrid,
    Unified,
}

/// Who makes and removes the cgroups (`--cgroup-manager`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Manager {
    Cgroupfs,
    Systemd,
}

impl std::str::FromStr for Manager {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cgroupfs" => Ok(Self::Cgroupfs),
            "systemd" => Ok(Self::Systemd),
            other => Err(format!(
                "--cgroup-manager {other:?}: expected \"systemd\" or \"cgroupfs\""
            )),
        }
    }
}

impl Manager {
    /// The manager to use in `mode`: the one asked for, else systemd where it is PID 1 on a
    /// v2 host (as Podman's default), else cgroupfs.
    pub fn choose(asked: Option<Self>, mode: Mode) -> Result<Self, CgroupError> {
        let booted = systemd::booted();
        match asked {
            Some(Self::Systemd) if !booted => Err(CgroupError::NoSystemd),
            Some(Self::Systemd) if mode != Mode::Unified => Err(CgroupError::SystemdNeedsV2(mode)),
            Some(manager) => Ok(manager),
            None if booted && mode == Mode::Unified => Ok(Self::Systemd),
            None => Ok(Self::Cgroupfs),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("detecting the cgroup mode at {path}: {source}")]
    Detect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading /proc/self/cgroup: {0}")]
    OwnCgroup(#[source] io::Error),
    #[error("device controller: {0}")]
    Devices(#[from] device_filter::DeviceFilterError),
    #[error("cgroup controller {0} is not available on this host")]
    MissingController(&'static str),
    #[error("cgroup controller {controller} is not available in {} (its cgroup.controllers lacks it: the host does not delegate it)", cgroup.display())]
    NotAvailable {
        controller: &'static str,
        cgroup: PathBuf,
    },
    #[error("cgroup controller {controller} is not enabled for the children of {}, a cgroup Forge did not make (its cgroup.subtree_control lacks it); enable it there or choose another --cgroup-parent", cgroup.display())]
    NotDelegated {
        controller: &'static str,
        cgroup: PathBuf,
    },
    #[error("--cgroup-manager systemd: systemd is not running as init on this host (no /run/systemd/system); use --cgroup-manager cgroupfs")]
    NoSystemd,
    #[error(
        "--cgroup-manager systemd needs the unified cgroup v2 hierarchy; this host runs {0:?}"
    )]
    SystemdNeedsV2(Mode),
    #[error("--cgroup-parent {0:?}: the systemd cgroup manager takes a slice name (NAME.slice)")]
    NotASlice(String),
    #[error("systemd: {0}")]
    Systemd(#[from] systemd::SystemdError),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(action: &'static str, path: &Path, source: io::Error) -> CgroupError {
    CgroupError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|e| io_err("writing", path, e))
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// The value of `key` in a flat-keyed file such as `memory.events` or `cpu.stat`.
pub(crate) fn keyed_value(path: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// How the kernel mounts cgroups under `root` (normally `/sys/fs/cgroup`).
/// The manager to use on this host: `asked`, or the host's default; refused when the host
/// cannot have it (checked before anything is made).
pub fn check_manager(asked: Option<Manager>) -> Result<Manager, CgroupError> {
    Manager::choose(asked, detect(Path::new(CGROUP_ROOT))?)
}

pub fn detect(root: &Path) -> Result<Mode, CgroupError> {
    let fs_type = |path: &Path| {
        nix::sys::statfs::statfs(path)
            .map(|s| s.filesystem_type())
            .map_err(|e| CgroupError::Detect {
                path: path.to_path_buf(),
                source: e.into(),
            })
    };
    if fs_type(root)? == nix::sys::statfs::CGROUP2_SUPER_MAGIC {
        return Ok(Mode::Unified);
    }
    let unified = root.join("unified");
    if unified.is_dir() && fs_type(&unified)? == nix::sys::statfs::CGROUP2_SUPER_MAGIC {
        return Ok(Mode::Hybrid);
    }
    Ok(Mode::Legacy)
}

/// The calling process's cgroup path for a v1 `controller`, or for v2 with `None`,
/// from the text of `/proc/self/cgroup`.
pub fn own_path(proc_self_cgroup: &str, controller: Option<&str>) -> Option<String> {
    proc_self_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = match controller {
            None => controllers.is_empty(),
            Some(c) => controllers.split(',').any(|x| x == c),
        };
        matches.then(|| path.to_string())
    })
}

/// Where one container's cgroups are, resolved when it is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPaths {
    pub mode: Mode,
    /// v1: one directory per controller (`memory`, `cpu`, …); v2: the one directory under `""`.
    pub dirs: Vec<(String, PathBuf)>,
    /// Hybrid: the container's directory in the unified hierarchy, for tracking and `cgroup.kill`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unified: Option<PathBuf>,
    /// The systemd manager: the container's scope unit, whose cgroup is `dirs[0]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<systemd::Scope>,
}

/// Resource use, as `forge stats` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu_usage_ns: u64,
    pub memory_bytes: u64,
    pub memory_limit: Option<u64>,
    pub pids: u64,
}

/// One container's cgroups, whatever the mode.
pub trait Cgroup {
    /// Creates the directories and writes the limits; with `restrict_devices`, the container
    /// may use only the standard device nodes (v1's devices controller, v2's eBPF device filter).
    fn create(&self, limits: &Limits, restrict_devices: bool) -> Result<(), CgroupError>;
    /// Moves `pid` into every one of the container's existing cgroups (`forge exec`).
    fn add(&self, pid: i32) -> Result<(), CgroupError>;
    /// Places the container's PID 1 in its cgroups, after [`Cgroup::create`]. The systemd
    /// manager makes its scope here, as a scope can only be made around a process.
    fn place(
        &self,
        pid: i32,
        _limits: &Limits,
        _restrict_devices: bool,
    ) -> Result<(), CgroupError> {
        self.add(pid)
    }
    /// SIGKILLs every process in the cgroups.
    fn kill_all(&self) -> Result<(), CgroupError>;
    fn stats(&self) -> Stats;
    /// Whether the kernel's OOM killer has killed a process of this container.
    fn oom_killed(&self) -> bool;
    /// Removes the directories (after the processes are gone); missing ones are fine.
    fn remove(&self) -> Result<(), CgroupError>;
}

impl CgroupPaths {
    /// Resolves the paths of container `id` for `manager`, below `parent` (see the module
    /// docs for the default), for the calling process as described by `proc_self_cgroup`.
    pub fn resolve(
        root: &Path,
        mode: Mode,
        manager: Manager,
        proc_self_cgroup: &str,
        parent: Option<&str>,
        id: &str,
    ) -> Result<Self, CgroupError> {
        let below = |own: &str| -> PathBuf {
            let base = match parent {
                Some(p) if p.starts_with('/') => PathBuf::from(p),
                Some(p) => Path::new(own).join(p),
                None => Path::new(own).join("forge"),
            };
            base.strip_prefix("/").unwrap_or(&base).join(id)
        };
        match (mode, manager) {
            (Mode::Unified, Manager::Systemd) => {
                let scope = systemd::Scope::new(parent.unwrap_or(systemd::DEFAULT_SLICE), id)
                    .ok_or_else(|| CgroupError::NotASlice(parent.unwrap_or_default().into()))?;
                Ok(Self {
                    mode,
                    dirs: vec![(String::new(), root.join(scope.cgroup()))],
                    unified: None,
                    systemd: Some(scope),
                })
            }
            // Below the root, not our own cgroup: that one has processes (ours).
            (Mode::Unified, Manager::Cgroupfs) => Ok(Self {
                mode,
                dirs: vec![(String::new(), root.join(below("/")))],
                unified: None,
                systemd: None,
            }),
            (Mode::Legacy | Mode::Hybrid, _) => {
                let mut dirs = Vec::new();
                for controller in v1::CONTROLLERS {
                    let own = own_path(proc_self_cgroup, Some(controller))
                        .ok_or(CgroupError::MissingController(controller))?;
                    dirs.push((
                        controller.to_string(),
                        root.join(controller).join(below(&own)),
                    ));
                }
                // Optional: a kernel without it still runs containers (with a wider /dev).
                if let Some(own) = own_path(proc_self_cgroup, Some(v1::DEVICES)) {
                    dirs.push((
                        v1::DEVICES.to_string(),
                        root.join(v1::DEVICES).join(below(&own)),
                    ));
                }
                let unified = (mode == Mode::Hybrid).then(|| {
                    let own = own_path(proc_self_cgroup, None).unwrap_or_else(|| "/".into());
                    root.join("unified").join(below(&own))
                });
                Ok(Self {
                    mode,
                    dirs,
                    unified,
                    systemd: None,
                })
            }
        }
    }

    /// Resolves the paths for the calling process on this host, with the manager asked for (or
    /// the host's default).
    pub fn for_this_process(
        manager: Option<Manager>,
        parent: Option<&str>,
        id: &str,
    ) -> Result<Self, CgroupError> {
        let root = Path::new(CGROUP_ROOT);
        let mode = detect(root)?;
        let manager = Manager::choose(manager, mode)?;
        let own = fs::read_to_string("/proc/self/cgroup").map_err(CgroupError::OwnCgroup)?;
        Self::resolve(root, mode, manager, &own, parent, id)
    }

    pub fn driver(&self) -> Box<dyn Cgroup + '_> {
        match (self.mode, &self.systemd) {
            (Mode::Unified, Some(scope)) => Box::new(systemd::ScopeCgroup {
                scope,
                dir: &self.dirs[0].1,
            }),
            (Mode::Unified, None) => Box::new(v2::V2 {
                root: Path::new(CGROUP_ROOT),
                dir: &self.dirs[0].1,
            }),
            (Mode::Legacy | Mode::Hybrid, _) => Box::new(v1::V1 { paths: self }),
        }
    }
}

/// SIGKILLs every process listed in `dir`'s `cgroup.procs`, for hierarchies without `cgroup.kill`.
pub(crate) fn kill_procs(dir: &Path) {
    for pid in procs(dir) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Pids listed in a `cgroup.procs` file.
pub(crate) fn procs(dir: &Path) -> Vec<i32> {
    read_trimmed(&dir.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str =
        "9:name=systemd:/\n8:pids:/\n4:memory:/jobs/a\n2:cpuacct:/\n1:cpu:/\n6:freezer:/\n0::/u\n";

    #[test]
    fn own_paths_per_controller() {
        assert_eq!(own_path(HYBRID, Some("memory")).as_deref(), Some("/jobs/a"));
        assert_eq!(own_path(HYBRID, None).as_deref(), Some("/u"));
        assert_eq!(
            own_path("5:cpu,cpuacct:/x\n", Some("cpuacct")).as_deref(),
            Some("/x")
        );
        assert_eq!(own_path(HYBRID, Some("blkio")), None);
    }

    #[test]
    fn containers_go_below_our_own_cgroup() {
        let p = CgroupPaths::resolve(
            Path::new("/cg"),
            Mode::Hybrid,
            Manager::Cgroupfs,
            HYBRID,
            None,
            "id1",
        )
        .unwrap();
        let memory = &p.dirs.iter().find(|(c, _)| c == "memory").unwrap().1;
        assert_eq!(memory, Path::new("/cg/memory/jobs/a/forge/id1"));
        assert_eq!(
            p.unified.as_deref(),
            Some(Path::new("/cg/unified/u/forge/id1"))
        );
    }

    #[test]
    fn v2_containers_go_below_forges_own_subtree_not_the_callers_cgroup() {
        let resolve = |manager, parent| {
            CgroupPaths::resolve(
                Path::new("/cg"),
                Mode::Unified,
                manager,
                "0::/user.slice/s\n",
                parent,
                "id2",
            )
        };
        let dir = |p: CgroupPaths| p.dirs[0].1.clone();
        let cgroupfs = Manager::Cgroupfs;
        assert_eq!(
            dir(resolve(cgroupfs, None).unwrap()),
            Path::new("/cg/forge/id2")
        );
        assert_eq!(
            dir(resolve(cgroupfs, Some("ci")).unwrap()),
            Path::new("/cg/ci/id2")
        );
        assert_eq!(
            dir(resolve(cgroupfs, Some("/ci/a")).unwrap()),
            Path::new("/cg/ci/a/id2")
        );
        let systemd = resolve(Manager::Systemd, None).unwrap();
        assert_eq!(systemd.systemd.as_ref().unwrap().unit, "forge-id2.scope");
        assert_eq!(dir(systemd), Path::new("/cg/forge.slice/forge-id2.scope"));
        let nested = resolve(Manager::Systemd, Some("forge-ci.slice")).unwrap();
        assert_eq!(
            dir(nested),
            Path::new("/cg/forge.slice/forge-ci.slice/forge-id2.scope")
        );
        assert!(matches!(
            resolve(Manager::Systemd, Some("/ci")),
            Err(CgroupError::NotASlice(_))
        ));
    }

    #[test]
    fn keyed_files() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("memory.events");
        fs::write(&file, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n").unwrap();
        assert_eq!(keyed_value(&file, "oom_kill"), Some(1));
        assert_eq!(keyed_value(&file, "oom"), Some(1));
        assert_eq!(keyed_value(&file, "nope"), None);
    }

    #[test]
    fn this_host_is_detected() {
        // These machines run hybrid; any answer must at least be consistent with the mounts.
        let mode = detect(Path::new(CGROUP_ROOT)).unwrap();
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
        let v2_at_root = mounts
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(CGROUP_ROOT) && l.contains("cgroup2"));
        assert_eq!(mode == Mode::Unified, v2_at_root);
    }
}
