//! The cgroup v2 driver: one directory, controllers enabled top-down through
//! `cgroup.subtree_control` of every ancestor below the one Forge runs in, processes only in leaves.

use std::path::Path;

use super::device_filter;
use super::{keyed_value, read_trimmed, remove_dir, write_file, Cgroup, CgroupError, Stats};
use crate::limits::{Limits, CPU_PERIOD_US};

pub struct V2<'a> {
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

/// The controllers `limits` needs, as `cgroup.subtree_control` wants them.
fn needed_controllers(limits: &Limits) -> Vec<&'static str> {
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

/// Enables `controllers` in every ancestor of `leaf` from the first one that already has them
/// available, top-down, so the leaf gets its interface files.
fn enable_controllers(leaf: &Path, controllers: &[&str]) -> Result<(), CgroupError> {
    let mut ancestors: Vec<&Path> = leaf
        .ancestors()
        .skip(1)
        .take_while(|p| p.join("cgroup.controllers").exists())
        .collect();
    ancestors.reverse();
    for dir in ancestors {
        let enabled = read_trimmed(&dir.join("cgroup.subtree_control")).unwrap_or_default();
        let missing: Vec<String> = controllers
            .iter()
            .filter(|c| !enabled.split(' ').any(|e| e == **c))
            .map(|c| format!("+{c}"))
            .collect();
        if !missing.is_empty() {
            write_file(&dir.join("cgroup.subtree_control"), &missing.join(" "))?;
        }
    }
    Ok(())
}

impl Cgroup for V2<'_> {
    fn create(&self, limits: &Limits, restrict_devices: bool) -> Result<(), CgroupError> {
        if let Some(parent) = self.dir.parent() {
            super::create_dir(parent)?;
        }
        enable_controllers(self.dir, &needed_controllers(limits))?;
        super::create_dir(self.dir)?;
        for (file, value) in limit_writes(limits) {
            let path = self.dir.join(file);
            if file == "memory.swap.max" && !path.exists() {
                continue; // the kernel has no swap accounting
            }
            write_file(&path, &value)?;
        }
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
        let kill = self.dir.join("cgroup.kill");
        if kill.exists() {
            return write_file(&kill, "1");
        }
        super::kill_procs(self.dir);
        Ok(())
    }

    fn stats(&self) -> Stats {
        let number =
            |file: &str| read_trimmed(&self.dir.join(file)).and_then(|s| s.parse::<u64>().ok());
        Stats {
            cpu_usage_ns: keyed_value(&self.dir.join("cpu.stat"), "usage_usec").unwrap_or(0) * 1000,
            memory_bytes: number("memory.current").unwrap_or(0),
            memory_limit: number("memory.max"),
            pids: number("pids.current").unwrap_or(0),
        }
    }

    fn oom_killed(&self) -> bool {
        keyed_value(&self.dir.join("memory.events"), "oom_kill").is_some_and(|n| n > 0)
    }

    fn remove(&self) -> Result<(), CgroupError> {
        remove_dir(self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A fake cgroup2 tree: root and `own` with every controller available, nothing enabled.
    fn fake_tree() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for dir in ["", "own", "own/forge"] {
            let d = tmp.path().join(dir);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("cgroup.controllers"), "cpu memory pids io").unwrap();
            fs::write(d.join("cgroup.subtree_control"), "").unwrap();
        }
        tmp
    }

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

    #[test]
    fn controllers_are_enabled_top_down_and_limits_written_in_the_leaf() {
        let tree = fake_tree();
        let leaf = tree.path().join("own/forge/c1");
        let limits = Limits {
            memory: Some(64 << 20),
            pids: Some(5),
            ..Default::default()
        };
        // The fake kernel does not create interface files; pre-create the ones the leaf would get.
        fs::create_dir_all(&leaf).unwrap();
        fs::write(leaf.join("memory.swap.max"), "max").unwrap();
        V2 { dir: &leaf }.create(&limits, false).unwrap();
        for dir in ["", "own", "own/forge"] {
            let enabled =
                fs::read_to_string(tree.path().join(dir).join("cgroup.subtree_control")).unwrap();
            assert_eq!(enabled, "+memory +pids", "in {dir:?}");
        }
        assert_eq!(
            fs::read_to_string(leaf.join("memory.max")).unwrap(),
            (64u64 << 20).to_string()
        );
        assert_eq!(fs::read_to_string(leaf.join("pids.max")).unwrap(), "5");
        assert!(!leaf.join("cpu.max").exists());
    }

    #[test]
    fn already_enabled_controllers_are_not_written_again() {
        let tree = fake_tree();
        fs::write(tree.path().join("cgroup.subtree_control"), "cpu memory").unwrap();
        enable_controllers(&tree.path().join("own/forge/c2"), &["memory", "pids"]).unwrap();
        assert_eq!(
            fs::read_to_string(tree.path().join("cgroup.subtree_control")).unwrap(),
            "+pids"
        );
    }

    #[test]
    fn kill_stats_oom_and_remove_use_the_v2_files() {
        let tree = fake_tree();
        let leaf = tree.path().join("own/forge/c3");
        fs::create_dir_all(&leaf).unwrap();
        fs::write(leaf.join("cgroup.kill"), "").unwrap();
        fs::write(leaf.join("memory.events"), "oom 1\noom_kill 1\n").unwrap();
        fs::write(leaf.join("cpu.stat"), "usage_usec 2500\nuser_usec 2000\n").unwrap();
        fs::write(leaf.join("memory.current"), "4096\n").unwrap();
        fs::write(leaf.join("pids.current"), "3\n").unwrap();
        let cg = V2 { dir: &leaf };
        cg.kill_all().unwrap();
        assert_eq!(fs::read_to_string(leaf.join("cgroup.kill")).unwrap(), "1");
        assert!(cg.oom_killed());
        let stats = cg.stats();
        assert_eq!(
            (stats.cpu_usage_ns, stats.memory_bytes, stats.pids),
            (2_500_000, 4096, 3)
        );
        for f in [
            "cgroup.kill",
            "memory.events",
            "cpu.stat",
            "memory.current",
            "pids.current",
            "memory.swap.max",
        ] {
            let _ = fs::remove_file(leaf.join(f));
        }
        cg.remove().unwrap();
        assert!(!leaf.exists());
    }
}
