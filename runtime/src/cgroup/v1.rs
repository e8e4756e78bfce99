//! The cgroup v1 driver: one directory per controller, plus (in hybrid mode) a directory in the
//! unified hierarchy that tracks the processes and can kill them all with `cgroup.kill`.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{
    keyed_value, kill_procs, read_trimmed, tree, write_file, Cgroup, CgroupError, CgroupPaths,
    Stats,
};
use crate::limits::{Limits, CPU_PERIOD_US};

/// The controllers Forge uses; each is mounted at `/sys/fs/cgroup/NAME` (a symlink where co-mounted).
pub const CONTROLLERS: [&str; 5] = ["cpu", "cpuacct", "memory", "pids", "freezer"];

/// The devices controller, used when the kernel has it.
pub const DEVICES: &str = "devices";

/// What a container may open besides making nodes: the standard nodes of its /dev (null, zero,
/// full, random, urandom, tty, console, ptmx, its pts), as Docker allows. `m` (mknod) stays
/// allowed for every node, but opening one that is not listed fails.
pub const DEVICE_ALLOW: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

pub struct V1<'a> {
    pub paths: &'a CgroupPaths,
}

/// The files to write for `limits`, in order, as (controller, file, value).
pub fn limit_writes(limits: &Limits) -> Vec<(&'static str, &'static str, String)> {
    let mut writes = Vec::new();
    if let Some(quota) = limits.cpu_quota_us() {
        writes.push(("cpu", "cpu.cfs_period_us", CPU_PERIOD_US.to_string()));
        writes.push(("cpu", "cpu.cfs_quota_us", quota.to_string()));
    }
    if let Some(memory) = limits.memory {
        writes.push(("memory", "memory.limit_in_bytes", memory.to_string()));
        // memsw must be written after the memory limit: the kernel requires memsw >= memory.
        writes.push((
            "memory",
            "memory.memsw.limit_in_bytes",
            limits.memory_and_swap().unwrap_or(-1).to_string(),
        ));
    }
    if let Some(pids) = limits.pids {
        writes.push(("pids", "pids.max", pids.to_string()));
    }
    writes
}

impl V1<'_> {
    fn dir(&self, controller: &str) -> Option<&Path> {
        self.paths
            .dirs
            .iter()
            .find(|(c, _)| c == controller)
            .map(|(_, p)| p.as_path())
    }

    /// Every directory of the container: one per controller, plus the unified one in hybrid mode.
    fn all_dirs(&self) -> impl Iterator<Item = &Path> {
        let controllers = self.paths.dirs.iter().map(|(_, d)| d.as_path());
        controllers.chain(self.paths.unified.as_deref())
    }

    fn freeze(&self, state: &str) -> Result<(), CgroupError> {
        let Some(dir) = self.dir("freezer") else {
            return Ok(());
        };
        write_file(&dir.join("freezer.state"), state)?;
        let deadline = Instant::now() + Duration::from_secs(2);
        while read_trimmed(&dir.join("freezer.state")).is_some_and(|s| s != state)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

impl Cgroup for V1<'_> {
    fn create(&self, limits: &Limits, restrict_devices: bool) -> Result<(), CgroupError> {
        for dir in self.all_dirs() {
            tree::create_owned(dir)?;
        }
        if let (true, Some(dir)) = (restrict_devices, self.dir(DEVICES)) {
            write_file(&dir.join("devices.deny"), "a")?;
            for rule in DEVICE_ALLOW {
                write_file(&dir.join("devices.allow"), rule)?;
            }
        }
        for (controller, file, value) in limit_writes(limits) {
            let path = self
                .dir(controller)
                .ok_or(CgroupError::MissingController(controller))?
                .join(file);
            // Without swap accounting (swapaccount=0) there is no memsw file: no swap to limit.
            if file == "memory.memsw.limit_in_bytes" && !path.exists() {
                continue;
            }
            write_file(&path, &value)?;
        }
        Ok(())
    }

    fn add(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in self.all_dirs() {
            write_file(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn kill_all(&self) -> Result<(), CgroupError> {
        if let Some(unified) = &self.paths.unified {
            let kill = unified.join("cgroup.kill");
            if kill.exists() {
                return write_file(&kill, "1");
            }
        }
        // Freeze first so nothing can fork between reading the list and signalling it.
        self.freeze("FROZEN")?;
        if let Some(dir) = self.dir("freezer").or_else(|| self.dir("pids")) {
            kill_procs(dir);
        }
        self.freeze("THAWED")
    }

    fn stats(&self) -> Stats {
        let read = |controller: &str, file: &str| {
            self.dir(controller)
                .and_then(|d| read_trimmed(&d.join(file)))
        };
        let number = |controller: &str, file: &str| {
            read(controller, file).and_then(|s| s.parse::<u64>().ok())
        };
        // An unlimited v1 memory cgroup reports a huge page-rounded number as its limit.
        let memory_limit =
            number("memory", "memory.limit_in_bytes").filter(|&l| l < i64::MAX as u64 / 2);
        Stats {
            cpu_usage_ns: number("cpuacct", "cpuacct.usage").unwrap_or(0),
            memory_bytes: number("memory", "memory.usage_in_bytes").unwrap_or(0),
            memory_limit,
            pids: number("pids", "pids.current").unwrap_or(0),
        }
    }

    fn oom_killed(&self) -> bool {
        self.dir("memory")
            .and_then(|d| keyed_value(&d.join("memory.oom_control"), "oom_kill"))
            .is_some_and(|n| n > 0)
    }

    fn remove(&self) -> Result<(), CgroupError> {
        let mut first_error = None;
        for dir in self.all_dirs() {
            // Keep going: a failure in one hierarchy must not leak the others.
            if let Err(e) = tree::remove_owned(dir) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_map_to_v1_files_in_a_valid_order() {
        let limits = Limits {
            cpus: Some(0.5),
            memory: Some(64 << 20),
            pids: Some(100),
            ..Default::default()
        };
        let writes = limit_writes(&limits);
        let files: Vec<&str> = writes.iter().map(|w| w.1).collect();
        assert_eq!(
            files,
            [
                "cpu.cfs_period_us",
                "cpu.cfs_quota_us",
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
                "pids.max"
            ]
        );
        assert_eq!(writes[1].2, "50000");
        assert_eq!(writes[3].2, (128u64 << 20).to_string());
        assert!(limit_writes(&Limits::default()).is_empty());
    }
}
