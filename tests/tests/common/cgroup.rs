//! A container's cgroups in every mode Forge runs in, for the end-to-end tests: where they are
//! (from `forge inspect`'s `Config.cgroup`), where they must be, what their files say, and a
//! snapshot of the cgroups that are not Forge's, to show that Forge changed none of them.
//!
//! The layouts (see `runtime/src/cgroup`):
//! - legacy and hybrid: one directory per v1 controller, `/sys/fs/cgroup/C/OWN/forge/ID` (OWN the
//!   caller's cgroup in that hierarchy), and in hybrid `unified` in `/sys/fs/cgroup/unified/...`;
//! - unified, cgroupfs manager: `dirs = [["", /sys/fs/cgroup/forge/ID]]`, below the root and never
//!   below the caller's (populated) cgroup;
//! - unified, systemd manager: `dirs = [["", /sys/fs/cgroup/forge.slice/forge-ID.scope]]` and
//!   `systemd = {unit, slice}`.
//!
//! The mode and manager of a container are read from its `Config.cgroup` (`mode`, and whether
//! `systemd` is there); [`Mode::host`] and [`Manager::host_default`] say independently what they
//! must be on this host, from its mounts and environment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Where the kernel's cgroup hierarchies are mounted.
pub const ROOT: &str = "/sys/fs/cgroup";

/// The v1 controllers Forge always uses (the devices controller is added where the kernel has it).
pub const V1_CONTROLLERS: [&str; 5] = ["cpu", "cpuacct", "memory", "pids", "freezer"];

/// The controllers Forge wants for every container on v2, limited or not (`stats` uses them):
/// the systemd manager turns on accounting for all of them; cgroupfs enables those that the
/// cgroups it did not make (the root included) pass down ([`v2_expected_controllers`]).
pub const V2_CONTROLLERS: [&str; 4] = ["cpu", "memory", "pids", "io"];

/// The slice the systemd manager puts containers in by default.
pub const DEFAULT_SLICE: &str = "forge.slice";

/// An "unlimited" v1 limit is the largest page-aligned value the kernel stores.
const V1_UNLIMITED: u64 = 1 << 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// v1 controllers only.
    Legacy,
    /// v1 controllers, and cgroup2 without controllers at /sys/fs/cgroup/unified.
    Hybrid,
    /// Pure cgroup v2 at /sys/fs/cgroup.
    Unified,
}

impl Mode {
    /// The mode a container was created in: its `Config.cgroup.mode`.
    pub fn of(info: &Value) -> Self {
        match info["Config"]["cgroup"]["mode"].as_str() {
            Some("legacy") => Self::Legacy,
            Some("hybrid") => Self::Hybrid,
            Some("unified") => Self::Unified,
            other => panic!("Config.cgroup.mode is {other:?} in {info}"),
        }
    }

    /// The mode this host runs, from its mounts: cgroup2 at /sys/fs/cgroup is unified, cgroup2
    /// at /sys/fs/cgroup/unified hybrid, anything else legacy.
    pub fn host() -> Self {
        let mounts =
            std::fs::read_to_string("/proc/self/mounts").expect("reading /proc/self/mounts");
        let cgroup2_at = |point: &str| {
            mounts.lines().any(|l| {
                let fields: Vec<&str> = l.split(' ').collect();
                fields.get(1) == Some(&point) && fields.get(2) == Some(&"cgroup2")
            })
        };
        if cgroup2_at(ROOT) {
            Self::Unified
        } else if cgroup2_at(&format!("{ROOT}/unified")) {
            Self::Hybrid
        } else {
            Self::Legacy
        }
    }

    pub fn is_v2(self) -> bool {
        self == Self::Unified
    }

    /// As `Config.cgroup.mode` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::Hybrid => "hybrid",
            Self::Unified => "unified",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    Cgroupfs,
    Systemd,
}

impl Manager {
    /// Who made a container's cgroups: systemd when its `Config.cgroup` names a scope.
    pub fn of(info: &Value) -> Self {
        let systemd = &info["Config"]["cgroup"]["systemd"];
        if systemd.is_null() {
            Self::Cgroupfs
        } else {
            Self::Systemd
        }
    }

    /// The manager Forge must choose for the tests' commands on this host: the one named in
    /// `FORGE_CGROUP_MANAGER` (the tests pass it through), else systemd on a v2 host booted
    /// with systemd, else cgroupfs.
    pub fn host_default() -> Self {
        match std::env::var("FORGE_CGROUP_MANAGER").ok().as_deref() {
            Some("systemd") => Self::Systemd,
            Some("cgroupfs") => Self::Cgroupfs,
            Some(other) => panic!("FORGE_CGROUP_MANAGER={other:?} is neither systemd nor cgroupfs"),
            None if Mode::host().is_v2() && systemd_booted() => Self::Systemd,
            None => Self::Cgroupfs,
        }
    }
}

/// Whether systemd is PID 1 (`sd_booted(3)`).
pub fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The container's id, `Config.id`.
pub fn id_of(info: &Value) -> String {
    info["Config"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no Config.id in {info}"))
        .to_string()
}

/// Every cgroup directory of the container as `(controller, path)`: one per v1 controller and
/// `("unified", path)` in hybrid mode; on v2 the one directory, as `("", path)`.
pub fn dirs(info: &Value) -> Vec<(String, PathBuf)> {
    let cgroup = &info["Config"]["cgroup"];
    let mut dirs: Vec<(String, PathBuf)> = cgroup["dirs"]
        .as_array()
        .unwrap_or_else(|| panic!("no Config.cgroup.dirs in {info}"))
        .iter()
        .map(|pair| {
            let controller = pair[0].as_str().expect("controller name");
            let path = pair[1].as_str().expect("cgroup path");
            (controller.to_string(), PathBuf::from(path))
        })
        .collect();
    if let Some(unified) = cgroup["unified"].as_str() {
        dirs.push(("unified".into(), PathBuf::from(unified)));
    }
    assert!(!dirs.is_empty(), "no cgroup directories in {info}");
    if Mode::of(info).is_v2() {
        assert!(
            dirs.len() == 1 && dirs[0].0.is_empty(),
            "a v2 container has one cgroup directory, named \"\": {cgroup}"
        );
    }
    dirs
}

/// The container's directory that holds `controller`'s files: on v1 that hierarchy's
/// ("unified" for the cgroup2 one in hybrid mode), on v2 the one directory, whatever is asked.
pub fn dir(info: &Value, controller: &str) -> PathBuf {
    let dirs = dirs(info);
    if Mode::of(info).is_v2() {
        return dirs[0].1.clone();
    }
    dirs.into_iter()
        .find(|(c, _)| c == controller)
        .unwrap_or_else(|| panic!("no {controller} cgroup in {}", info["Config"]["cgroup"]))
        .1
}

/// The container's directory in a cgroup2 hierarchy (hybrid's unified one or v2's), if any.
pub fn v2_dir(info: &Value) -> Option<PathBuf> {
    match Mode::of(info) {
        Mode::Unified => Some(dir(info, "")),
        Mode::Hybrid => Some(dir(info, "unified")),
        Mode::Legacy => None,
    }
}

/// The directory whose `cgroup.procs` lists every process of the container: v1's pids
/// hierarchy, v2's one directory.
pub fn procs_dir(info: &Value) -> PathBuf {
    dir(info, "pids")
}

/// The caller's cgroup in the hierarchy of v1 `controller`, or the cgroup2 one for `None`, as
/// /proc/self/cgroup shows it. Forge runs as the test's child, so it is Forge's cgroup too.
pub fn own_cgroup(controller: Option<&str>) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").expect("reading /proc/self/cgroup");
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = match controller {
            None => controllers.is_empty(),
            Some(c) => controllers.split(',').any(|x| x == c),
        };
        matches.then(|| path.to_string())
    })
}

/// Like [`own_cgroup`], failing the test when the hierarchy is not in /proc/self/cgroup.
fn own_cgroup_or_fail(controller: Option<&str>) -> String {
    own_cgroup(controller).unwrap_or_else(|| {
        panic!(
            "{controller:?} not in /proc/self/cgroup:\n{}",
            std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default()
        )
    })
}

/// The cgroup of slice unit `slice`, relative to the root: systemd nests `a-b.slice` in
/// `a.slice` (systemd.slice(5)), and `-.slice` is the root itself.
pub fn slice_path(slice: &str) -> PathBuf {
    let prefix = slice
        .strip_suffix(".slice")
        .unwrap_or_else(|| panic!("{slice:?} is not a slice unit's name"));
    let mut path = PathBuf::new();
    if prefix != "-" {
        let parts: Vec<&str> = prefix.split('-').collect();
        for n in 1..=parts.len() {
            path.push(format!("{}.slice", parts[..n].join("-")));
        }
    }
    path
}

/// Where the container's cgroup directories must be, as `(controller, path)` in the order of
/// [`dirs`], for the container's mode and manager and its `--cgroup-parent` (`None`: the default).
pub fn expected_dirs(info: &Value, parent: Option<&str>) -> Vec<(String, PathBuf)> {
    let id = id_of(info);
    let mode = Mode::of(info);
    match (mode, Manager::of(info)) {
        (Mode::Unified, Manager::Systemd) => {
            let slice = parent.unwrap_or(DEFAULT_SLICE);
            let dir = Path::new(ROOT)
                .join(slice_path(slice))
                .join(format!("forge-{id}.scope"));
            vec![(String::new(), dir)]
        }
        // From the root, relative or absolute, as Docker's cgroupfs driver.
        (Mode::Unified, Manager::Cgroupfs) => {
            let base = parent.unwrap_or("forge").trim_start_matches('/');
            vec![(String::new(), Path::new(ROOT).join(base).join(&id))]
        }
        (Mode::Legacy | Mode::Hybrid, Manager::Systemd) => {
            panic!("a {mode:?} container made by systemd: {info}")
        }
        (Mode::Legacy | Mode::Hybrid, Manager::Cgroupfs) => {
            // Below our own cgroup in each hierarchy; an absolute parent from the hierarchy's root.
            let below = |mount: &str, own: &str| {
                let base = match parent {
                    Some(p) if p.starts_with('/') => p.to_string(),
                    Some(p) => format!("{}/{p}", own.trim_end_matches('/')),
                    None => format!("{}/forge", own.trim_end_matches('/')),
                };
                PathBuf::from(format!("{ROOT}/{mount}{base}/{id}"))
            };
            let mut controllers: Vec<&str> = V1_CONTROLLERS.to_vec();
            if own_cgroup(Some("devices")).is_some() {
                controllers.push("devices");
            }
            let mut dirs: Vec<(String, PathBuf)> = controllers
                .into_iter()
                .map(|c| (c.to_string(), below(c, &own_cgroup_or_fail(Some(c)))))
                .collect();
            if mode == Mode::Hybrid {
                let own = own_cgroup_or_fail(None);
                dirs.push(("unified".into(), below("unified", &own)));
            }
            dirs
        }
    }
}

/// The scope unit and slice the systemd manager must have made for the container.
pub fn expected_scope(info: &Value, parent: Option<&str>) -> Value {
    serde_json::json!({
        "unit": format!("forge-{}.scope", id_of(info)),
        "slice": parent.unwrap_or(DEFAULT_SLICE),
    })
}

/// A cgroup file's content, trimmed.
pub fn read(dir: &Path, file: &str) -> String {
    let path = dir.join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// A cgroup file holding one number.
pub fn read_number(dir: &Path, file: &str) -> u64 {
    let text = read(dir, file);
    text.parse()
        .unwrap_or_else(|_| panic!("{}/{file} holds {text:?}, not a number", dir.display()))
}

/// A limit file: a number, or unlimited (`None`) for v2's `max` and v1's huge values.
fn read_limit(dir: &Path, file: &str) -> Option<u64> {
    match read(dir, file).as_str() {
        "max" => None,
        _ => Some(read_number(dir, file)).filter(|&n| n < V1_UNLIMITED),
    }
}

/// The counter `key` of a flat keyed file such as pids.events, memory.events or cgroup.events.
pub fn keyed(dir: &Path, file: &str, key: &str) -> u64 {
    let text = read(dir, file);
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {}/{file}: {text:?}", dir.display()))
}

/// The pids listed in a cgroup's cgroup.procs (empty when the cgroup is gone).
pub fn procs_in(dir: &Path) -> Vec<i64> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The pids in the container's cgroup (see [`procs_dir`]).
pub fn procs(info: &Value) -> Vec<i64> {
    procs_in(&procs_dir(info))
}

/// The controllers a cgroup2 directory has (its `cgroup.controllers`).
pub fn controllers(dir: &Path) -> BTreeSet<String> {
    read(dir, "cgroup.controllers")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The controllers a v2 container must have in its `cgroup.controllers`, without limits: every
/// one of [`V2_CONTROLLERS`] under the systemd manager (accounting on for each); under cgroupfs
/// those of them that the parent of Forge's subtree (a cgroup Forge did not make: the root for
/// the default `/forge`) passes down in its `cgroup.subtree_control`.
pub fn v2_expected_controllers(info: &Value) -> BTreeSet<String> {
    let wanted = V2_CONTROLLERS.iter().map(|c| c.to_string());
    match Manager::of(info) {
        Manager::Systemd => wanted.collect(),
        Manager::Cgroupfs => {
            let root = Path::new(ROOT);
            let passed = read(root, "cgroup.subtree_control");
            let passed: BTreeSet<&str> = passed.split_whitespace().collect();
            wanted.filter(|c| passed.contains(c.as_str())).collect()
        }
    }
}

/// The CPU bandwidth limit as `(quota, period)` in µs, `None` for no quota: v1's
/// cpu.cfs_quota_us (-1) and cpu.cfs_period_us, v2's cpu.max (`max 100000`).
pub fn cpu_quota(info: &Value) -> (Option<u64>, u64) {
    let cpu = dir(info, "cpu");
    if Mode::of(info).is_v2() {
        let text = read(&cpu, "cpu.max");
        let (quota, period) = text
            .split_once(' ')
            .unwrap_or_else(|| panic!("{}/cpu.max holds {text:?}", cpu.display()));
        let period = period
            .parse()
            .unwrap_or_else(|_| panic!("cpu.max {text:?}"));
        let quota =
            (quota != "max").then(|| quota.parse().unwrap_or_else(|_| panic!("cpu.max {text:?}")));
        (quota, period)
    } else {
        let quota = read(&cpu, "cpu.cfs_quota_us");
        let quota = (quota != "-1").then(|| read_number(&cpu, "cpu.cfs_quota_us"));
        (quota, read_number(&cpu, "cpu.cfs_period_us"))
    }
}

/// CPU time the container has used, in ns: v1's cpuacct.usage, v2's cpu.stat `usage_usec`.
pub fn cpu_usage_ns(info: &Value) -> u64 {
    if Mode::of(info).is_v2() {
        keyed(&dir(info, "cpu"), "cpu.stat", "usage_usec") * 1000
    } else {
        read_number(&dir(info, "cpuacct"), "cpuacct.usage")
    }
}

/// The memory limit in bytes, `None` for unlimited: v1's memory.limit_in_bytes, v2's memory.max.
pub fn memory_limit(info: &Value) -> Option<u64> {
    let file = if Mode::of(info).is_v2() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    read_limit(&dir(info, "memory"), file)
}

/// The swap limit in bytes as the mode's own file states it, `None` for unlimited. The
/// semantics differ: v1's memory.memsw.limit_in_bytes is memory **plus** swap, v2's
/// memory.swap.max is swap alone. The file is missing where the kernel has no swap accounting;
/// then the limit cannot be checked and the test fails saying so.
pub fn swap_limit(info: &Value) -> Option<u64> {
    let file = if Mode::of(info).is_v2() {
        "memory.swap.max"
    } else {
        "memory.memsw.limit_in_bytes"
    };
    let memory = dir(info, "memory");
    assert!(
        memory.join(file).exists(),
        "{}/{file} is missing: the kernel has no swap accounting, so the swap limit cannot be checked",
        memory.display()
    );
    read_limit(&memory, file)
}

/// The pids limit, `None` for `max`.
pub fn pids_max(info: &Value) -> Option<u64> {
    read_limit(&dir(info, "pids"), "pids.max")
}

/// The number of processes in the container now (`pids.current`).
pub fn pids_current(info: &Value) -> u64 {
    read_number(&dir(info, "pids"), "pids.current")
}

/// How many forks the pids limit has refused (`pids.events`' `max`).
pub fn pids_refused(info: &Value) -> u64 {
    keyed(&dir(info, "pids"), "pids.events", "max")
}

/// How many processes the kernel's OOM killer has killed in the container: v1's
/// memory.oom_control `oom_kill`, v2's memory.events `oom_kill`.
pub fn oom_kills(info: &Value) -> u64 {
    let file = if Mode::of(info).is_v2() {
        "memory.events"
    } else {
        "memory.oom_control"
    };
    keyed(&dir(info, "memory"), file, "oom_kill")
}

/// Whether cgroup2's `cgroup.events` says the container's cgroup has processes (hybrid's
/// unified directory or v2's); `None` in legacy mode, which has no such file.
pub fn populated(info: &Value) -> Option<bool> {
    v2_dir(info).map(|dir| keyed(&dir, "cgroup.events", "populated") == 1)
}

// --- The cgroups that are not Forge's --------------------------------------------------------

/// Files of a cgroup that a container must never change, v1's and v2's (those a directory has
/// are compared).
const WATCHED_FILES: &[&str] = &[
    "cgroup.subtree_control",
    "cgroup.type",
    "cgroup.max.depth",
    "cgroup.max.descendants",
    "cgroup.freeze",
    "cpu.max",
    "cpu.weight",
    "memory.max",
    "memory.high",
    "memory.swap.max",
    "pids.max",
    "io.max",
    "cgroup.clone_children",
    "notify_on_release",
    "cpu.cfs_quota_us",
    "cpu.cfs_period_us",
    "cpu.shares",
    "memory.limit_in_bytes",
    "memory.memsw.limit_in_bytes",
    "memory.use_hierarchy",
    "freezer.state",
];

/// One of the caller's cgroups (its own or an ancestor) in one hierarchy, as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DirState {
    /// The caller's own cgroup in this hierarchy (not an ancestor).
    own: bool,
    /// The root of a unified host's hierarchy (it has no cgroup.type): Forge's cgroupfs subtree
    /// `forge` and systemd's `forge.slice` are made there.
    unified_root: bool,
    /// On v1 and hybrid hosts (every hierarchy, the cgroup2 one too) Forge's subtree is
    /// OWN/forge: `forge` below the caller's own cgroup is Forge's.
    subtree_below_own: bool,
    files: BTreeMap<String, String>,
    children: BTreeSet<String>,
}

/// When a [`CallerCgroups`] snapshot is compared with an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Containers are running: Forge's own subtree may exist where it had not.
    Running,
    /// Every container is gone: Forge's subtree directories must be gone too.
    Done,
}

/// The caller's cgroup and each ancestor up to the root, in every hierarchy Forge uses: their
/// control files and the names of their child directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerCgroups {
    dirs: BTreeMap<PathBuf, DirState>,
}

impl CallerCgroups {
    /// The hierarchies Forge uses, as (mount point, the caller's cgroup there).
    fn hierarchies() -> Vec<(PathBuf, String)> {
        let mut found = Vec::new();
        let mut seen = BTreeSet::new();
        let v2_mount = match Mode::host() {
            Mode::Unified => Some(PathBuf::from(ROOT)),
            Mode::Hybrid => Some(Path::new(ROOT).join("unified")),
            Mode::Legacy => None,
        };
        if let (Some(mount), Some(own)) = (v2_mount, own_cgroup(None)) {
            found.push((mount, own));
        }
        if !Mode::host().is_v2() {
            for controller in V1_CONTROLLERS.iter().chain(&["devices"]) {
                let Some(own) = own_cgroup(Some(controller)) else {
                    continue;
                };
                // Co-mounted controllers (cpu,cpuacct) are one hierarchy.
                let mount = Path::new(ROOT).join(controller);
                let real = std::fs::canonicalize(&mount).unwrap_or(mount);
                if seen.insert(real.clone()) {
                    found.push((real, own));
                }
            }
        }
        found
    }

    /// Takes the snapshot.
    pub fn take() -> Self {
        let mut dirs = BTreeMap::new();
        for (mount, own) in Self::hierarchies() {
            let own_dir = match own.trim_start_matches('/') {
                "" => mount.clone(),
                below => mount.join(below),
            };
            for (i, dir) in own_dir.ancestors().enumerate() {
                if !dir.starts_with(&mount) {
                    break;
                }
                let files = WATCHED_FILES
                    .iter()
                    .filter_map(|f| {
                        let text = std::fs::read_to_string(dir.join(f)).ok()?;
                        Some((f.to_string(), text.trim().to_string()))
                    })
                    .collect();
                let children = std::fs::read_dir(dir)
                    .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect();
                let unified = Mode::host().is_v2();
                let state = DirState {
                    own: i == 0,
                    unified_root: unified && dir == mount && !dir.join("cgroup.type").exists(),
                    subtree_below_own: !unified,
                    files,
                    children,
                };
                dirs.insert(dir.to_path_buf(), state);
            }
        }
        assert!(!dirs.is_empty(), "no cgroup hierarchy found for the caller");
        Self { dirs }
    }

    /// The directories in the snapshot.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.dirs.keys().cloned().collect()
    }

    /// The caller's own cgroup directories (one per hierarchy).
    pub fn own(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .filter(|(_, s)| s.own)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// What differs in `self` (taken later) from `before` that Forge could have changed and
    /// must not have, at `phase`. Allowed, as the layouts document:
    /// - v1/hybrid: `forge` below the caller's own cgroup in each hierarchy (Forge's subtree;
    ///   other tests and other Forge processes on the host share it, so it comes and goes);
    /// - unified with the systemd manager: at the root, Forge's controllers enabled or disabled
    ///   in `cgroup.subtree_control` by systemd (the accounting Forge asks of it), and
    ///   `forge.slice` (systemd keeps the slice unit);
    /// - unified with cgroupfs: `forge` at the root while containers run (it may also go, once
    ///   empty); the root's files are never written (not Forge's);
    /// - anywhere: `forge-e2e-*` directories that other test processes on this host made
    ///   (named with their pid).
    ///
    /// Below an ancestor (not the caller's own cgroup) other sessions' cgroups come and go on a
    /// shared host, so only the children Forge could make there are compared: those named
    /// `forge*` (container ids are looked for everywhere by `cgroups_named`).
    pub fn changes_since(&self, before: &Self, phase: Phase) -> Vec<String> {
        let mut changes = Vec::new();
        let paths: BTreeSet<&PathBuf> = before.dirs.keys().chain(self.dirs.keys()).collect();
        for path in paths {
            let (Some(was), Some(now)) = (before.dirs.get(path), self.dirs.get(path)) else {
                changes.push(format!("{}: in only one snapshot", path.display()));
                continue;
            };
            let shown = path.display();
            for (file, old) in &was.files {
                let Some(new) = now.files.get(file) else {
                    continue; // a controller's files go with the controller, seen in the parent
                };
                if old == new {
                    continue;
                }
                // The systemd manager asks systemd for accounting of Forge's controllers and a
                // delegated scope (which gets cpuset too): systemd enables them at the root for
                // forge.slice, and disables them again once no unit needs them. Forge itself
                // (cgroupfs) never writes the root.
                if file == "cgroup.subtree_control"
                    && was.unified_root
                    && Manager::host_default() == Manager::Systemd
                {
                    let old: BTreeSet<&str> = old.split_whitespace().collect();
                    let new: BTreeSet<&str> = new.split_whitespace().collect();
                    let forges = |c: &&str| V2_CONTROLLERS.contains(c) || *c == "cpuset";
                    if old.symmetric_difference(&new).all(forges) {
                        continue;
                    }
                }
                changes.push(format!("{shown}/{file}: {old:?} became {new:?}"));
            }
            let compared = |children: &BTreeSet<String>| -> BTreeSet<String> {
                children
                    .iter()
                    .filter(|name| was.own || name.starts_with("forge"))
                    .filter(|name| !made_by_another_test_process(name))
                    .filter(|name| !(was.subtree_below_own && was.own && *name == "forge"))
                    .filter(|name| !(was.unified_root && *name == "forge.slice"))
                    .cloned()
                    .collect()
            };
            let (old, new) = (compared(&was.children), compared(&now.children));
            for name in new.difference(&old) {
                let forges_while_running =
                    was.unified_root && name == "forge" && phase == Phase::Running;
                if !forges_while_running {
                    changes.push(format!("{shown}/{name}: a new cgroup"));
                }
            }
            for name in old.difference(&new) {
                if !(was.unified_root && name == "forge") {
                    changes.push(format!("{shown}/{name}: removed"));
                }
            }
        }
        changes
    }
}

/// Whether cgroup `name` is a `forge-e2e-*` one that another live test process made: such names
/// carry the pid of the process that made them (`forge-e2e-parent-PID-N`, `forge-e2e_PID_N.slice`,
/// `forge-e2e-probe-PID`). Ours, and any other, are compared.
fn made_by_another_test_process(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("forge-e2e") else {
        return false;
    };
    let me = std::process::id();
    let mut numbers = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    let first = numbers.next();
    first.is_some_and(|pid| pid != me && Path::new(&format!("/proc/{pid}")).exists())
}
