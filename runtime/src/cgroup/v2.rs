//! The cgroup v2 driver (cgroupfs manager): one directory per container, in a subtree that
//! Forge makes and owns (`/forge` by default, below the root of the hierarchy, as Docker's
//! `/docker` and Podman's `/libpod_parent`).
//!
//! v2 forbids processes in a cgroup whose children have domain controllers (the
//! no-internal-processes rule), and the cgroup Forge was started from (a login session's scope,
//! a service) always has processes — Forge's own. So containers never go below it. Controllers
//! are enabled top-down, but only in directories Forge made: a cgroup made by someone else (the
//! root included: systemd or the init system manages it) must already pass down the controllers
//! a limit needs, or the container is refused with the controller and the cgroup named. Every controller that
//! limits or `stats` use (cpu, memory, pids, io) is enabled where it is available, so `stats` is
//! true without limits. Directories are made, and their controllers enabled, under an flock of
//! the hierarchy's root, so two Forge processes never see each other's half-made parent.

use std::fs::File;
use std::path::Path;

use super::device_filter;
use super::{io_err, keyed_value, read_trimmed, tree, write_file, Cgroup, CgroupError, Stats};
use crate::limits::{Limits, CPU_PERIOD_US};

/// The controllers Forge enables in its subtree, for limits and for `stats`.
const CONTROLLERS: [&str; 4] = ["cpu", "memory", "pids", "io"];

pub struct V2<'a> {
    /// The root of the hierarchy as Forge sees it (`/sys/fs/cgroup`).
    pub root: &'a Path,
    /// The container's cgroup.
    pub dir: &'a Path,
}

/// The files to write for `limits`, in order, as (file, value).
pub fn limit_writes(limits: &Limits) -> Vec<(&'static str, String)> {
    let mut writes = Vec::new();
    if let Some(quota) = limits.cpu_quota_us() {
        writes.push(("cpu.max", format!("{quota} {CPU_PERIOD_US}")));
    }
    if let Some(memory) = limits.memory {
        writes.push(("memory.max", memory.to_string()));
        // v2 limits swap alone, where Docker's flag means memory plus swap.
        let swap = match limits.memory_and_swap() {
            Some(-1) | None => "max".to_string(),
            Some(total) => (total as u64).saturating_sub(memory).to_string(),
        };
        writes.push(("memory.swap.max", swap));
    }
    if let Some(pids) = limits.pids {
        writes.push(("pids.max", pids.to_string()));
    }
    writes
}

/// The controllers `limits` needs, as `cgroup.subtree_control` names them.
pub(crate) fn needed_controllers(limits: &Limits) -> Vec<&'static str> {
    let mut wanted = Vec::new();
    if limits.cpus.is_some() {
        wanted.push("cpu");
    }
    if limits.memory.is_some() {
        wanted.push("memory");
    }
    if limits.pids.is_some() {
        wanted.push("pids");
    }
    wanted
}

fn words(path: &Path) -> Vec<String> {
    read_trimmed(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Enables the controllers along the way from `root` down to `leaf`'s parent, where Forge may:
/// in a directory Forge made, every available controller of [`CONTROLLERS`]. A cgroup that is
/// not Forge's, the root included, is never written: it must already enable each controller in
/// `needed`. Everything is checked before anything is
/// written, so a refused container changes nothing.
pub fn enable_controllers(
    root: &Path,
    leaf: &Path,
    needed: &[&'static str],
) -> Result<(), CgroupError> {
    let Ok(below_root) = leaf.strip_prefix(root) else {
        return Ok(());
    };
    let mut chain = vec![root.to_path_buf()];
    for part in below_root.parent().into_iter().flat_map(Path::components) {
        let next = chain[chain.len() - 1].join(part);
        chain.push(next);
    }
    // A child's available controllers are what its parent enables (the kernel's rule).
    let mut available = words(&root.join("cgroup.controllers"));
    let mut plan = Vec::new();
    for dir in &chain {
        let enabled = words(&dir.join("cgroup.subtree_control"));
        let ours = tree::is_owned(dir);
        let mut enable = Vec::new();
        for controller in CONTROLLERS.iter().chain(needed).copied() {
            let needed = needed.contains(&controller);
            if enabled.iter().any(|e| e == controller) || enable.contains(&controller) {
                continue;
            }
            if !available.iter().any(|a| a == controller) {
                if needed {
                    return Err(CgroupError::NotAvailable {
                        controller,
                        cgroup: dir.clone(),
                    });
                }
            } else if ours {
                enable.push(controller);
            } else if needed {
                return Err(CgroupError::NotDelegated {
                    controller,
                    cgroup: dir.clone(),
                });
            }
        }
        available = enabled;
        available.extend(enable.iter().map(|c| c.to_string()));
        plan.push((dir, enable));
    }
    for (dir, enable) in plan.into_iter().filter(|(_, e)| !e.is_empty()) {
        let line: Vec<String> = enable.iter().map(|c| format!("+{c}")).collect();
        write_file(&dir.join("cgroup.subtree_control"), &line.join(" "))?;
    }
    Ok(())
}

/// An exclusive flock of the hierarchy's root, held while Forge's shared parents are made,
/// enabled or removed.
fn lock(root: &Path) -> Result<nix::fcntl::Flock<File>, CgroupError> {
    let dir = File::open(root).map_err(|e| io_err("opening", root, e))?;
    nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io_err("locking", root, e.into()))
}

impl Cgroup for V2<'_> {
    fn create(&self, limits: &Limits, restrict_devices: bool) -> Result<(), CgroupError> {
        {
            let _lock = lock(self.root)?;
            if let Some(parent) = self.dir.parent() {
                tree::create_owned(parent)?;
            }
            enable_controllers(self.root, self.dir, &needed_controllers(limits))?;
            tree::create_owned(self.dir)?;
        }
        write_limits(self.dir, limits)?;
        if restrict_devices {
            let prog = device_filter::program(&device_filter::default_rules());
            device_filter::attach(self.dir, &prog)?;
        }
        Ok(())
    }

    fn add(&self, pid: i32) -> Result<(), CgroupError> {
        write_file(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    fn kill_all(&self) -> Result<(), CgroupError> {
        kill_all(self.dir)
    }

    fn stats(&self) -> Stats {
        stats(self.dir)
    }

    fn oom_killed(&self) -> bool {
        oom_killed(self.dir)
    }

    fn remove(&self) -> Result<(), CgroupError> {
        let _lock = lock(self.root)?;
        tree::remove_owned(self.dir)
    }
}

/// Writes `limits` into the container's cgroup `dir`.
pub(crate) fn write_limits(dir: &Path, limits: &Limits) -> Result<(), CgroupError> {
    for (file, value) in limit_writes(limits) {
        let path = dir.join(file);
        if file == "memory.swap.max" && !path.exists() {
            continue; // the kernel has no swap accounting
        }
        write_file(&path, &value)?;
    }
    Ok(())
}

/// SIGKILLs every process in `dir` and below.
pub(crate) fn kill_all(dir: &Path) -> Result<(), CgroupError> {
    let kill = dir.join("cgroup.kill");
    if kill.exists() {
        return write_file(&kill, "1");
    }
    super::kill_procs(dir);
    Ok(())
}

pub(crate) fn stats(dir: &Path) -> Stats {
    let number = |file: &str| read_trimmed(&dir.join(file)).and_then(|s| s.parse::<u64>().ok());
    Stats {
        cpu_usage_ns: keyed_value(&dir.join("cpu.stat"), "usage_usec").unwrap_or(0) * 1000,
        memory_bytes: number("memory.current").unwrap_or(0),
        memory_limit: number("memory.max"),
        pids: number("pids.current").unwrap_or(0),
    }
}

pub(crate) fn oom_killed(dir: &Path) -> bool {
    keyed_value(&dir.join("memory.events"), "oom_kill").is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_map_to_v2_files() {
        let limits = Limits {
            cpus: Some(1.5),
            memory: Some(256 << 20),
            memory_swap: Some(-1),
            pids: Some(10),
            ..Default::default()
        };
        let writes = limit_writes(&limits);
        assert_eq!(writes[0], ("cpu.max", "150000 100000".to_string()));
        assert_eq!(writes[1], ("memory.max", (256u64 << 20).to_string()));
        assert_eq!(writes[2], ("memory.swap.max", "max".to_string()));
        assert_eq!(writes[3], ("pids.max", "10".to_string()));
        let default_swap = limit_writes(&Limits {
            memory: Some(100),
            ..Default::default()
        });
        assert_eq!(default_swap[1], ("memory.swap.max", "100".to_string()));
    }
}
