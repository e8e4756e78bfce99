//! The systemd cgroup manager: on a v2 host booted with systemd, every container's cgroup is a
//! transient scope that systemd makes, `forge-ID.scope` in `forge.slice` (or the slice given as
//! `--cgroup-parent`), asked for over D-Bus as runc's `--systemd-cgroup` and Podman do, so that
//! Forge never writes a cgroup that systemd owns and systemd never undoes Forge's work.
//!
//! The scope is delegated (`Delegate=yes`): Forge writes the limits and attaches the device
//! filter in it. The same limits are unit properties, so a `systemctl daemon-reload` keeps them,
//! and accounting is on for cpu, memory, pids and io, so `stats` is true without limits.
//! Ordering: a scope can only be made around a process, so it is started once PID 1 exists and
//! before `Go`, with PID 1 in it ([`Cgroup::place`]). systemd removes the scope's cgroup as soon as
//! its last process exits, so the OOM kill is watched while the container runs ([`OomWatch`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use zbus::zvariant::{OwnedObjectPath, Value};

use super::{v2, Cgroup, CgroupError, Stats};
use crate::limits::Limits;

pub use super::oom::OomWatch;

pub const DEFAULT_SLICE: &str = "forge.slice";

const DESTINATION: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";

/// How long systemd may take to run the scope's start job.
const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("connecting to the system bus: {0}")]
    Connect(#[source] Box<zbus::Error>),
    #[error("starting {unit}: {source}")]
    Start {
        unit: String,
        #[source]
        source: Box<zbus::Error>,
    },
    #[error(
        "{unit} did not take PID {pid} within {START_TIMEOUT:?} (journalctl -u {unit} may say why)"
    )]
    NotPlaced { unit: String, pid: i32 },
    #[error("{unit}: systemd placed PID {pid} in {found}, not /{expected} (is Forge in a cgroup namespace of its own?)")]
    Elsewhere {
        unit: String,
        pid: i32,
        found: String,
        expected: String,
    },
    #[error("stopping {unit}: {source}")]
    Stop {
        unit: String,
        #[source]
        source: Box<zbus::Error>,
    },
}

/// Whether systemd is the init system (as `sd_booted(3)` tells).
pub fn booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// A container's scope unit and the slice it goes in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub unit: String,
    pub slice: String,
}

impl Scope {
    /// The scope of container `id` in `slice`; `None` when `slice` is not a slice unit's name.
    pub fn new(slice: &str, id: &str) -> Option<Self> {
        let prefix = slice.strip_suffix(".slice")?;
        let valid = |c: char| c.is_ascii_alphanumeric() || "-_.:".contains(c);
        let nested_ok = prefix == "-"
            || (!prefix.is_empty()
                && !prefix.starts_with('-')
                && !prefix.ends_with('-')
                && !prefix.contains("--"));
        (nested_ok && prefix.chars().all(valid)).then(|| Self {
            unit: format!("forge-{id}.scope"),
            slice: slice.to_string(),
        })
    }

    /// The scope's cgroup, relative to the hierarchy's root: systemd nests `a-b.slice` in
    /// `a.slice`, and `-.slice` is the root.
    pub fn cgroup(&self) -> PathBuf {
        let mut path = PathBuf::new();
        let prefix = self.slice.trim_end_matches(".slice");
        if prefix != "-" {
            let parts: Vec<&str> = prefix.split('-').collect();
            for n in 1..=parts.len() {
                path.push(format!("{}.slice", parts[..n].join("-")));
            }
        }
        path.join(&self.unit)
    }
}

/// The unit properties of the scope around `pid`, limits included.
fn properties(scope: &Scope, pid: i32, limits: &Limits) -> Vec<(&'static str, Value<'static>)> {
    let mut props: Vec<(&'static str, Value<'static>)> = vec![
        (
            "Description",
            Value::from(format!("Forge container {}", scope.unit)),
        ),
        ("Slice", Value::from(scope.slice.clone())),
        ("Delegate", Value::from(true)),
        ("PIDs", Value::from(vec![pid as u32])),
        ("DefaultDependencies", Value::from(false)),
        // An OOM-killed (failed) scope is collected too, not left for `reset-failed`.
        ("CollectMode", Value::from("inactive-or-failed")),
        ("CPUAccounting", Value::from(true)),
        ("MemoryAccounting", Value::from(true)),
        ("TasksAccounting", Value::from(true)),
        ("IOAccounting", Value::from(true)),
    ];
    // One source of truth: the same values the delegated cgroup's files get.
    let number = |value: &str| match value {
        "max" => u64::MAX,
        n => n.parse().unwrap_or(u64::MAX),
    };
    for (file, value) in v2::limit_writes(limits) {
        match file {
            "cpu.max" => {
                let (quota, period) = value.split_once(' ').unwrap_or((&value, "100000"));
                let (quota, period) = (number(quota), number(period).max(1));
                props.push(("CPUQuotaPerSecUSec", Value::U64(quota * 1_000_000 / period)));
                props.push(("CPUQuotaPeriodUSec", Value::U64(period)));
            }
            "memory.max" => props.push(("MemoryMax", Value::U64(number(&value)))),
            "memory.swap.max" => props.push(("MemorySwapMax", Value::U64(number(&value)))),
            "pids.max" => props.push(("TasksMax", Value::U64(number(&value)))),
            _ => {}
        }
    }
    // Without a limit, systemd would apply its DefaultTasksMax (15% of pid_max) to the scope.
    if limits.pids.is_none() {
        props.push(("TasksMax", Value::U64(u64::MAX)));
    }
    props
}

fn manager(conn: &zbus::blocking::Connection) -> Result<zbus::blocking::Proxy<'_>, zbus::Error> {
    zbus::blocking::Proxy::new(conn, DESTINATION, MANAGER_PATH, MANAGER)
}

/// The process's one connection to the system bus, made on first use: a supervisor starts and
/// stops many scopes, `forge run --rm` one scope twice.
fn system_bus() -> Result<zbus::blocking::Connection, SystemdError> {
    static BUS: std::sync::Mutex<Option<zbus::blocking::Connection>> = std::sync::Mutex::new(None);
    let mut bus = BUS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(conn) = bus.as_ref() {
        return Ok(conn.clone());
    }
    let conn =
        zbus::blocking::Connection::system().map_err(|e| SystemdError::Connect(Box::new(e)))?;
    *bus = Some(conn.clone());
    Ok(conn)
}

/// Asks systemd for the scope around `pid` and waits until `pid` is in it.
fn start_scope(scope: &Scope, pid: i32, limits: &Limits) -> Result<(), SystemdError> {
    let start_err = |source| SystemdError::Start {
        unit: scope.unit.clone(),
        source: Box::new(source),
    };
    let conn = system_bus()?;
    let manager = manager(&conn).map_err(start_err)?;
    let aux: Vec<(&str, Vec<(&str, Value)>)> = Vec::new();
    let _job: OwnedObjectPath = manager
        .call(
            "StartTransientUnit",
            &(&scope.unit, "fail", properties(scope, pid, limits), aux),
        )
        .map_err(start_err)?;
    // The job moves the PID; its end is seen in /proc, without subscribing to signals.
    let expected = scope.cgroup();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let found = super::own_path(&own, None).unwrap_or_default();
        if Path::new(&found) == Path::new("/").join(&expected) {
            return Ok(());
        }
        if found.ends_with(&scope.unit) {
            return Err(SystemdError::Elsewhere {
                unit: scope.unit.clone(),
                pid,
                found,
                expected: expected.display().to_string(),
            });
        }
        if Instant::now() > deadline {
            return Err(SystemdError::NotPlaced {
                unit: scope.unit.clone(),
                pid,
            });
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Stops the scope (a no-op when systemd has already collected it).
fn stop_scope(unit: &str) -> Result<(), SystemdError> {
    let stop_err = |source| SystemdError::Stop {
        unit: unit.to_string(),
        source: Box::new(source),
    };
    let conn = system_bus()?;
    let manager = manager(&conn).map_err(stop_err)?;
    match manager.call::<_, _, OwnedObjectPath>("StopUnit", &(unit, "replace")) {
        Ok(_) => Ok(()),
        Err(zbus::Error::MethodError(name, _, _)) if name.as_str() == NO_SUCH_UNIT => Ok(()),
        Err(e) => Err(stop_err(e)),
    }
}

/// One container's cgroup under the systemd manager: its scope, whose cgroup is `dir`.
pub struct ScopeCgroup<'a> {
    pub scope: &'a Scope,
    pub dir: &'a Path,
}

impl Cgroup for ScopeCgroup<'_> {
    /// Checks, before PID 1 exists, that the host has the controllers the limits need.
    fn create(&self, limits: &Limits, _restrict_devices: bool) -> Result<(), CgroupError> {
        let root = Path::new(super::CGROUP_ROOT);
        let available =
            std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        for controller in v2::needed_controllers(limits) {
            if !available.split_whitespace().any(|c| c == controller) {
                return Err(CgroupError::NotAvailable {
                    controller,
                    cgroup: root.to_path_buf(),
                });
            }
        }
        Ok(())
    }

    fn place(&self, pid: i32, limits: &Limits, restrict_devices: bool) -> Result<(), CgroupError> {
        start_scope(self.scope, pid, limits)?;
        v2::write_limits(self.dir, limits)?;
        if restrict_devices {
            let prog = super::device_filter::program(&super::device_filter::default_rules());
            super::device_filter::attach(self.dir, &prog)?;
        }
        Ok(())
    }

    fn add(&self, pid: i32) -> Result<(), CgroupError> {
        super::write_file(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    fn kill_all(&self) -> Result<(), CgroupError> {
        if !self.dir.exists() {
            return Ok(()); // systemd has collected the empty scope
        }
        v2::kill_all(self.dir)
    }

    fn stats(&self) -> Stats {
        v2::stats(self.dir)
    }

    fn oom_killed(&self) -> bool {
        v2::oom_killed(self.dir)
    }

    fn remove(&self) -> Result<(), CgroupError> {
        stop_scope(&self.scope.unit)?;
        // systemd removes the cgroup once the scope is stopped; wait so nothing is seen left.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.dir.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        // A process that joined the scope's cgroup as systemd deactivated it (an exec, a health
        // probe) keeps the directory from systemd, which never looks at it again (seen in the CI
        // guest: "Deactivated successfully", the directory left with no process): Forge made
        // it, so Forge removes it once it is empty.
        if self.dir.exists() {
            if let Err(e) = super::tree::remove_one(self.dir) {
                tracing::warn!("{e}");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_nest_as_systemd_nests_them() {
        let scope = |slice| Scope::new(slice, "abc").map(|s| s.cgroup());
        assert_eq!(
            scope("forge.slice"),
            Some(PathBuf::from("forge.slice/forge-abc.scope"))
        );
        assert_eq!(
            scope("machine-forge-ci.slice"),
            Some(PathBuf::from(
                "machine.slice/machine-forge.slice/machine-forge-ci.slice/forge-abc.scope"
            ))
        );
        assert_eq!(scope("-.slice"), Some(PathBuf::from("forge-abc.scope")));
        for bad in [
            "forge",
            "/forge.slice",
            "a--b.slice",
            "-a.slice",
            ".slice",
            "a b.slice",
        ] {
            assert_eq!(scope(bad), None, "{bad}");
        }
    }

    #[test]
    fn limits_become_unit_properties_with_the_cgroup_files_values() {
        let scope = Scope::new(DEFAULT_SLICE, "abc").unwrap();
        let limits = Limits {
            cpus: Some(0.5),
            memory: Some(64 << 20),
            memory_swap: Some(-1),
            pids: Some(100),
            ..Default::default()
        };
        let props = properties(&scope, 42, &limits);
        let get = |name: &str| {
            props
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
                .unwrap_or_else(|| panic!("no {name}"))
        };
        assert_eq!(get("Slice"), "\"forge.slice\"");
        assert_eq!(get("Delegate"), "true");
        assert_eq!(get("PIDs"), "[uint32 42]");
        assert_eq!(get("CPUQuotaPerSecUSec"), "uint64 500000");
        assert_eq!(get("CPUQuotaPeriodUSec"), "uint64 100000");
        assert_eq!(get("MemoryMax"), format!("uint64 {}", 64u64 << 20));
        assert_eq!(get("MemorySwapMax"), format!("uint64 {}", u64::MAX));
        assert_eq!(get("TasksMax"), "uint64 100");
        let unlimited = properties(&scope, 42, &Limits::default());
        let maxima: Vec<String> = unlimited
            .iter()
            .filter(|(n, _)| n.ends_with("Max"))
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        assert_eq!(maxima, [format!("TasksMax=uint64 {}", u64::MAX)]);
        assert!(unlimited.iter().any(|(n, _)| *n == "MemoryAccounting"));
    }
}
