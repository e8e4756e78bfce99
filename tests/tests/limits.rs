//! Resource limits against the real kernel: `--cpus`, `--memory`/`--memory-swap`,
//! `--pids-limit` and `--storage` are enforced by the cgroup files and the loop device Forge sets
//! up, the OOM kill is reported, `stop`/`kill` end every process of the cgroup and remove it, the
//! cgroups sit in Forge's own subtree and no cgroup outside it changes, `stats` shows the limits
//! and the use, and bad limits create nothing.
//!
//! Mode-aware: the same tests run on cgroup v1/hybrid hosts (v1 controllers, cgroup2 without
//! controllers at /sys/fs/cgroup/unified; these machines) and on pure cgroup v2, with the
//! cgroupfs or the systemd manager. Paths come from `forge inspect`'s `Config.cgroup`, the
//! files' meaning from its mode (`common::cgroup`).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::cgroup::{self, CallerCgroups, Manager, Mode, Phase};
use common::{cgroups_named, eventually, Forge, Out};
use serde_json::Value;

const MIB: u64 = 1024 * 1024;

/// `forge run -d --name NAME FLAGS... host sh -c SCRIPT`; waits until it runs and returns its
/// `inspect` entry.
fn detached(forge: &Forge, name: &str, flags: &[&str], script: &str) -> Value {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["host", "sh", "-c", script]);
    forge.ok(&args);
    forge.running_pid(name);
    forge.inspect(name)
}

/// The host pid of the container's PID 1 in an `inspect` entry.
fn pid_of(info: &Value) -> i64 {
    info["State"]["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no State.pid in {info}"))
}

/// A process's start time (field 22 of /proc/PID/stat) while it is alive and not a zombie.
fn start_time(pid: i64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may contain ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first().is_some_and(|s| matches!(*s, "Z" | "X")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Every process in any of the container's cgroups, as (pid, start time) so that a reused pid
/// is not mistaken for a survivor.
fn processes_in(info: &Value) -> BTreeSet<(i64, u64)> {
    cgroup::dirs(info)
        .iter()
        .flat_map(|(_, dir)| cgroup::procs_in(dir))
        .filter_map(|pid| Some((pid, start_time(pid)?)))
        .collect()
}

/// Those of `processes` that are still alive.
fn survivors(processes: &BTreeSet<(i64, u64)>) -> Vec<i64> {
    processes
        .iter()
        .filter(|&&(pid, start)| start_time(pid) == Some(start))
        .map(|&(pid, _)| pid)
        .collect()
}

/// The container's cgroup directories that still exist.
fn existing_cgroups(info: &Value) -> Vec<PathBuf> {
    cgroup::dirs(info)
        .into_iter()
        .map(|(_, dir)| dir)
        .filter(|dir| dir.exists())
        .collect()
}

/// Loop devices whose backing file lies below `root`.
fn loop_devices_below(root: &Path) -> Vec<String> {
    let Ok(devices) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    devices
        .filter_map(|e| e.ok())
        .filter_map(|dev| {
            let file = std::fs::read_to_string(dev.path().join("loop/backing_file")).ok()?;
            Path::new(file.trim())
                .starts_with(root)
                .then(|| format!("{} -> {}", dev.file_name().to_string_lossy(), file.trim()))
        })
        .collect()
}

/// A `--cgroup-parent` unique to this test, in the form this host's manager takes: on v1/hybrid
/// a name relative to our own cgroup (`forge-e2e-parent-PID-N`); on v2 with cgroupfs an
/// absolute one from the root (`/forge-e2e-parent-PID-N`, which Forge removes once empty); on
/// v2 with systemd a slice (`forge-e2e_PID_N.slice`: underscores, so that systemd nests it in
/// `forge.slice` alone and makes no other parent slice of ours). On drop every cgroup directory
/// of that name is removed again, in every hierarchy (v1 keeps a `--cgroup-parent`, as docker
/// does) and a slice is stopped. Create it before the [`Forge`] so that it drops after the
/// containers are gone.
struct CgroupParent {
    /// The cgroup directory's name.
    name: String,
    /// What to pass to `--cgroup-parent`.
    arg: String,
    manager: Manager,
}

impl CgroupParent {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let (pid, n) = (std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let manager = Manager::host_default();
        let (name, arg) = match (Mode::host().is_v2(), manager) {
            (true, Manager::Systemd) => {
                let slice = format!("forge-e2e_{pid}_{n}.slice");
                (slice.clone(), slice)
            }
            (true, Manager::Cgroupfs) => {
                let name = format!("forge-e2e-parent-{pid}-{n}");
                (name.clone(), format!("/{name}"))
            }
            (false, _) => {
                let name = format!("forge-e2e-parent-{pid}-{n}");
                (name.clone(), name)
            }
        };
        Self { name, arg, manager }
    }

    /// Every directory of this name below /sys/fs/cgroup.
    fn dirs(&self) -> Vec<String> {
        cgroups_named(&BTreeSet::from([self.name.clone()]))
            .into_iter()
            .map(|found| found.trim_start_matches("cgroup ").to_string())
            .collect()
    }
}

impl Drop for CgroupParent {
    fn drop(&mut self) {
        fn remove(dir: &Path) {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.filter_map(|e| e.ok()) {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        remove(&entry.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(dir);
        }
        if self.manager == Manager::Systemd && Mode::host().is_v2() && !self.dirs().is_empty() {
            let _ = std::process::Command::new("systemctl")
                .args(["stop", &self.name])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        for dir in self.dirs() {
            remove(Path::new(&dir));
        }
    }
}

// --- CPU -------------------------------------------------------------------------------------

#[test]
fn cpus_flag_sets_the_cpu_quota() {
    let forge = Forge::new();
    let info = detached(&forge, "x", &["--cpus", "0.5"], "sleep 100");
    // v1: cpu.cfs_quota_us 50000 and cpu.cfs_period_us 100000; v2: cpu.max "50000 100000".
    assert_eq!(
        cgroup::cpu_quota(&info),
        (Some(50_000), 100_000),
        "(quota, period) in {}",
        cgroup::dir(&info, "cpu").display()
    );
}

#[test]
fn cpu_quota_is_unlimited_without_cpus() {
    let forge = Forge::new();
    let info = detached(&forge, "x", &[], "sleep 100");
    let (quota, period) = cgroup::cpu_quota(&info);
    assert_eq!(quota, None, "a quota without --cpus");
    assert!(period > 0, "period {period}");
}

#[test]
fn busy_loop_under_cpus_half_uses_half_a_cpu() {
    let forge = Forge::new();
    let info = detached(&forge, "x", &["--cpus", "0.5"], "while :; do :; done");
    // The cgroup's own accounting (v1 cpuacct.usage, v2 cpu.stat usage_usec), not `forge
    // stats`' rounded percentage.
    let before = (Instant::now(), cgroup::cpu_usage_ns(&info));
    std::thread::sleep(Duration::from_secs(3));
    let after = (Instant::now(), cgroup::cpu_usage_ns(&info));
    let share = (after.1 - before.1) as f64 / (after.0 - before.0).as_nanos() as f64;
    // The limit is what matters: at most 60% of a CPU. The lower bound is only there to show
    // the loop ran; on this 2-core machine the other tests of this binary run alongside and can
    // starve the loop a little, hence 35% over 3 s rather than 40%.
    assert!(
        (0.35..=0.60).contains(&share),
        "a busy loop under --cpus 0.5 used {:.1}% of a CPU over {:?}",
        share * 100.0,
        after.0 - before.0
    );
}

// --- Memory ----------------------------------------------------------------------------------

#[test]
fn memory_flag_sets_the_memory_limit() {
    let forge = Forge::new();
    let info = detached(&forge, "x", &["--memory", "64m"], "sleep 100");
    // v1 memory.limit_in_bytes, v2 memory.max.
    assert_eq!(cgroup::memory_limit(&info), Some(64 * MIB));
}

#[test]
fn memory_is_unlimited_without_memory() {
    let forge = Forge::new();
    let info = detached(&forge, "x", &[], "sleep 100");
    assert_eq!(cgroup::memory_limit(&info), None);
}

/// Docker's default `--memory-swap` is twice `--memory`: as much swap as memory.
#[test]
fn memory_swap_defaults_to_twice_the_memory_limit() {
    let forge = Forge::new();
    let info = detached(&forge, "x", &["--memory", "64m"], "sleep 100");
    let expected = match Mode::of(&info) {
        // memory.memsw.limit_in_bytes: memory plus swap.
        Mode::Legacy | Mode::Hybrid => 128 * MIB,
        // memory.swap.max: swap alone, 2 x 64 MiB - 64 MiB.
        Mode::Unified => 64 * MIB,
    };
    assert_eq!(cgroup::swap_limit(&info), Some(expected));
}

#[test]
fn memory_swap_flag_sets_the_swap_limit() {
    let forge = Forge::new();
    let info = detached(
        &forge,
        "x",
        &["--memory", "64m", "--memory-swap", "96m"],
        "sleep 100",
    );
    assert_eq!(cgroup::memory_limit(&info), Some(64 * MIB));
    let expected = match Mode::of(&info) {
        // memory.memsw.limit_in_bytes: memory plus swap, as the flag says.
        Mode::Legacy | Mode::Hybrid => 96 * MIB,
        // memory.swap.max: swap alone, 96 MiB - 64 MiB.
        Mode::Unified => 32 * MIB,
    };
    assert_eq!(cgroup::swap_limit(&info), Some(expected));
}

#[test]
fn memory_swap_minus_one_leaves_swap_unlimited() {
    let forge = Forge::new();
    let info = detached(
        &forge,
        "x",
        &["--memory", "64m", "--memory-swap", "-1"],
        "sleep 100",
    );
    assert_eq!(cgroup::memory_limit(&info), Some(64 * MIB));
    // v1: the largest page-aligned value the kernel stores; v2: "max".
    assert_eq!(cgroup::swap_limit(&info), None, "swap is limited");
}

/// 200 MB for a 64 MiB container: busybox dd allocates its whole block and fills it.
const MEMORY_HOG: [&str; 5] = ["dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"];

#[test]
fn memory_hog_is_oom_killed_and_run_exits_137_saying_so() {
    let forge = Forge::new();
    let mut args = vec!["run", "--rm", "--memory", "64m", "host"];
    args.extend_from_slice(&MEMORY_HOG);
    let out = forge.run(&args);
    assert_eq!(out.code, 137, "{out}");
    assert!(
        out.stderr.contains("OOM killed"),
        "forge run does not say the container was OOM killed: {out}"
    );
}

#[test]
fn oom_kill_is_recorded_in_inspect() {
    let forge = Forge::new();
    let mut args = vec!["run", "--name", "hog", "--memory", "64m", "host"];
    args.extend_from_slice(&MEMORY_HOG);
    assert_eq!(forge.run(&args).code, 137);
    let exit = forge.exit_of("hog");
    assert_eq!(exit["code"], 137, "{exit}");
    assert_eq!(exit["signal"], 9, "{exit}");
    assert_eq!(
        exit["reason"], "OOM killed: the container exceeded its memory limit",
        "{exit}"
    );
}

#[test]
fn containers_run_normally_after_an_oom_kill() {
    let forge = Forge::new();
    let mut args = vec!["run", "--rm", "--memory", "64m", "host"];
    args.extend_from_slice(&MEMORY_HOG);
    assert_eq!(forge.run(&args).code, 137);
    let out = forge.ok(&["run", "--rm", "--memory", "64m", "host", "echo", "alive"]);
    assert_eq!(out.stdout, "alive\n", "{out}");
    assert!(!out.stderr.contains("OOM"), "{out}");
}

#[test]
fn allocation_below_the_memory_limit_succeeds() {
    let forge = Forge::new();
    let out = forge.run(&[
        "run",
        "--name",
        "fits",
        "--memory",
        "64m",
        "host",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=16M",
        "count=1",
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert!(!out.stderr.contains("OOM"), "{out}");
    let exit = forge.exit_of("fits");
    assert_eq!(exit["code"], 0, "{exit}");
    let reason = exit["reason"].as_str().unwrap_or_default();
    assert!(!reason.contains("OOM"), "reported as {exit}");
}

/// SIGKILL from `forge kill` is not an OOM kill, even under a memory limit.
#[test]
fn kill_under_a_memory_limit_is_not_reported_as_oom() {
    let forge = Forge::new();
    detached(&forge, "x", &["--memory", "64m"], "sleep 100");
    forge.ok(&["kill", "x"]);
    let exit = forge.exit_of("x");
    assert_eq!(exit["code"], 137, "{exit}");
    let reason = exit["reason"].as_str().unwrap_or_default();
    assert!(!reason.contains("OOM"), "a plain kill reported as {exit}");
}

/// A process that joins the container (`forge exec`) is under its memory limit too: the kernel
/// OOM-kills it, counts the kill in the container's cgroup, and the container runs on.
#[test]
fn exec_past_the_memory_limit_is_oom_killed_in_the_containers_cgroup() {
    let forge = Forge::new();
    let info = detached(&forge, "x", &["--memory", "64m"], "sleep 100");
    assert_eq!(cgroup::oom_kills(&info), 0, "OOM kills before the hog");
    let mut args = vec!["exec", "x"];
    args.extend_from_slice(&MEMORY_HOG);
    let out = forge.run(&args);
    assert_eq!(out.code, 137, "{out}");
    // v1 memory.oom_control, v2 memory.events: oom_kill.
    assert!(
        cgroup::oom_kills(&info) >= 1,
        "no OOM kill counted in {}",
        cgroup::dir(&info, "memory").display()
    );
    assert_eq!(
        forge.status("x"),
        "running",
        "the container ended with its exec"
    );
    assert!(cgroup::procs(&info).contains(&pid_of(&info)));
}

// --- Processes -------------------------------------------------------------------------------

#[test]
fn pids_limit_flag_sets_pids_max() {
    let forge = Forge::new();
    let info = detached(&forge, "x", &["--pids-limit", "100"], "sleep 100");
    assert_eq!(cgroup::pids_max(&info), Some(100));
}

#[test]
fn pids_limit_defaults_to_2048_and_0_or_minus_1_lift_it() {
    let forge = Forge::new();
    let info = detached(&forge, "default", &[], "sleep 100");
    assert_eq!(info["Config"]["limits"]["pids"], 2048, "{info}");
    assert_eq!(cgroup::pids_max(&info), Some(2048));
    for (name, unlimited) in [("zero", "0"), ("minus-one", "-1")] {
        let info = detached(&forge, name, &["--pids-limit", unlimited], "sleep 100");
        let limits = &info["Config"]["limits"];
        assert!(limits.get("pids").is_none(), "{unlimited}: {limits}");
        assert_eq!(
            cgroup::pids_max(&info),
            None,
            "pids.max under --pids-limit {unlimited}"
        );
    }
}

/// The classic fork bomb: every process forks two that do the same.
const FORK_BOMB: &str = "b() { b | b & }; b; exec sleep 1000";

/// A fork bomb whose processes stay alive (each forks two and sleeps), so that `stop` and
/// `kill` have many processes to end. PID 1 does not take part, so the container lives on.
const LIVE_FORK_BOMB: &str = "b() { b & b & sleep 1000; }; b & exec sleep 1000";

/// Waits until the pids controller has refused a fork, i.e. the bomb has hit the limit.
fn await_pids_max(info: &Value) {
    eventually(Duration::from_secs(10), "pids.events max > 0", || {
        (cgroup::pids_refused(info) > 0).then_some(())
    });
}

#[test]
fn fork_bomb_never_exceeds_the_pids_limit() {
    let forge = Forge::new();
    let info = detached(&forge, "bomb", &["--pids-limit", "100"], FORK_BOMB);
    let mut samples = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline || cgroup::pids_refused(&info) == 0 {
        samples.push(cgroup::pids_current(&info));
        assert!(
            Instant::now() < deadline + Duration::from_secs(10),
            "the fork bomb never hit the limit; pids.current samples: {samples:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let most = samples.iter().copied().max().unwrap_or_default();
    assert!(
        most <= 100,
        "pids.current reached {most} under --pids-limit 100"
    );
    assert!(cgroup::pids_refused(&info) > 0, "no fork was refused");
    assert!(
        most >= 50,
        "the bomb never got near the limit (at most {most} processes)"
    );
}

#[test]
fn stop_ends_a_fork_bomb_and_removes_its_cgroups() {
    let forge = Forge::new();
    let info = detached(&forge, "bomb", &["--pids-limit", "100"], LIVE_FORK_BOMB);
    await_pids_max(&info);
    let processes = processes_in(&info);
    assert!(processes.len() > 10, "few live processes: {processes:?}");
    forge.ok(&["stop", "-t", "1", "bomb"]);
    assert_eq!(
        survivors(&processes),
        Vec::<i64>::new(),
        "processes of the container survived stop"
    );
    assert_eq!(
        existing_cgroups(&info),
        Vec::<PathBuf>::new(),
        "cgroups left after stop"
    );
}

#[test]
fn kill_ends_a_fork_bomb_and_removes_its_cgroups() {
    let forge = Forge::new();
    let info = detached(&forge, "bomb", &["--pids-limit", "100"], LIVE_FORK_BOMB);
    await_pids_max(&info);
    let processes = processes_in(&info);
    assert!(processes.len() > 10, "few live processes: {processes:?}");
    forge.ok(&["kill", "bomb"]);
    forge.exit_of("bomb");
    eventually(Duration::from_secs(5), "no survivor of kill", || {
        survivors(&processes).is_empty().then_some(())
    });
    eventually(Duration::from_secs(5), "the cgroups to be removed", || {
        existing_cgroups(&info).is_empty().then_some(())
    });
}

#[test]
fn stop_kills_every_process_in_the_cgroup_not_just_pid_1() {
    let forge = Forge::new();
    let info = detached(&forge, "x", &[], "sleep 1000 & sleep 1000 & wait");
    eventually(
        Duration::from_secs(5),
        "sh and two sleeps in the cgroup",
        || (cgroup::procs(&info).len() == 3).then_some(()),
    );
    let processes = processes_in(&info);
    assert_eq!(processes.len(), 3, "{processes:?}");
    forge.ok(&["stop", "-t", "1", "x"]);
    assert_eq!(
        survivors(&processes),
        Vec::<i64>::new(),
        "processes of the container survived stop"
    );
    assert_eq!(
        existing_cgroups(&info),
        Vec::<PathBuf>::new(),
        "cgroups left after stop"
    );
}

// --- Storage ---------------------------------------------------------------------------------

#[test]
fn writing_past_the_storage_limit_fails_with_enospc() {
    let forge = Forge::new();
    let out = forge.run(&[
        "run",
        "--rm",
        "--storage",
        "512m",
        "host",
        "sh",
        "-c",
        "dd if=/dev/zero of=/tmp/bigfile bs=1M count=600; echo dd $?; stat -c %s /tmp/bigfile",
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stderr.contains("No space left on device"),
        "dd did not hit ENOSPC: {out}"
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        matches!(lines.as_slice(), [dd, _] if *dd != "dd 0"),
        "dd did not fail: {out}"
    );
    let size: u64 = lines[1].parse().unwrap_or_else(|_| panic!("{out}"));
    assert!(
        size < 512 * MIB,
        "the file grew to {size} bytes under --storage 512m"
    );
}

#[test]
fn storage_loop_device_is_released_when_the_container_is_removed() {
    let forge = Forge::new();
    detached(&forge, "x", &["--storage", "64m"], "sleep 100");
    assert_ne!(
        loop_devices_below(forge.root()),
        Vec::<String>::new(),
        "no loop device backs the running container's storage"
    );
    forge.ok(&["rm", "-f", "x"]);
    let left = common::settled(|| loop_devices_below(forge.root()));
    assert_eq!(left, Vec::<String>::new(), "loop devices left after rm");
}

// --- Where the cgroups are -------------------------------------------------------------------

#[test]
fn cgroups_are_in_forges_own_subtree_in_every_hierarchy() {
    let forge = Forge::new();
    for (name, flags) in [("plain", &[][..]), ("limited", &["--memory", "64m"][..])] {
        let info = detached(&forge, name, flags, "sleep 100");
        let layout = &info["Config"]["cgroup"];
        assert_eq!(
            Mode::of(&info),
            Mode::host(),
            "{name}: the mode of {layout}"
        );
        assert_eq!(
            Manager::of(&info),
            Manager::host_default(),
            "{name}: the manager of {layout}"
        );
        let dirs = cgroup::dirs(&info);
        assert_eq!(
            dirs,
            cgroup::expected_dirs(&info, None),
            "{name}: the cgroups"
        );
        for (controller, dir) in &dirs {
            assert!(
                dir.is_dir(),
                "{name}: {controller} {} is missing",
                dir.display()
            );
        }
        if Mode::of(&info).is_v2() {
            let dir = &dirs[0].1;
            // Every controller Forge uses that it may have, with or without limits, so that
            // `stats` holds.
            let have = cgroup::controllers(dir);
            let expected = cgroup::v2_expected_controllers(&info);
            assert!(
                expected.is_subset(&have),
                "{name}: {} has the controllers {have:?}, not all of {expected:?}",
                dir.display()
            );
            // Never below the caller's own cgroup, which has processes (ours).
            let own = cgroup::own_cgroup(None).expect("a cgroup2 line in /proc/self/cgroup");
            if own != "/" {
                let own = Path::new(cgroup::ROOT).join(own.trim_start_matches('/'));
                assert!(
                    !dir.starts_with(&own),
                    "{name}: {} is below ours",
                    dir.display()
                );
            }
            if Manager::of(&info) == Manager::Systemd {
                assert_eq!(
                    layout["systemd"],
                    cgroup::expected_scope(&info, None),
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn container_process_is_in_each_of_its_cgroups() {
    let forge = Forge::new();
    let info = detached(&forge, "x", &["--pids-limit", "10"], "sleep 100");
    let pid = pid_of(&info);
    for (controller, dir) in cgroup::dirs(&info) {
        assert!(
            cgroup::procs_in(&dir).contains(&pid),
            "PID 1 ({pid}) is not in the {controller:?} cgroup {}",
            dir.display()
        );
    }
}

#[test]
fn cgroup_parent_flag_places_the_cgroups_below_it() {
    let parent = CgroupParent::new();
    let forge = Forge::new();
    let info = detached(&forge, "x", &["--cgroup-parent", &parent.arg], "sleep 100");
    let dirs = cgroup::dirs(&info);
    assert_eq!(
        dirs,
        cgroup::expected_dirs(&info, Some(&parent.arg)),
        "the cgroups under --cgroup-parent {}",
        parent.arg
    );
    for (controller, dir) in &dirs {
        assert!(
            cgroup::procs_in(dir).contains(&pid_of(&info)),
            "PID 1 is not in the {controller:?} cgroup {}",
            dir.display()
        );
    }
    if Manager::of(&info) == Manager::Systemd {
        let scope = &info["Config"]["cgroup"]["systemd"];
        assert_eq!(*scope, cgroup::expected_scope(&info, Some(&parent.arg)));
    }
    assert_ne!(
        parent.dirs(),
        Vec::<String>::new(),
        "no {} cgroup",
        parent.name
    );
    forge.ok(&["rm", "-f", "x"]);
    let left = common::settled(|| {
        existing_cgroups(&info)
            .iter()
            .map(|d| d.display().to_string())
            .collect()
    });
    assert_eq!(
        left,
        Vec::<String>::new(),
        "the container's cgroups after rm"
    );
    if (Mode::of(&info), Manager::of(&info)) == (Mode::Unified, Manager::Cgroupfs) {
        // v2 cgroupfs: Forge made the parent (marked trusted.forge.owned) and removes it.
        assert_eq!(
            common::settled(|| parent.dirs()),
            Vec::<String>::new(),
            "Forge left the --cgroup-parent {} it made",
            parent.arg
        );
    }
}

#[test]
fn unified_cgroup_tracks_pid_1_and_is_removed_when_it_exits() {
    let forge = Forge::new();
    let info = detached(
        &forge,
        "x",
        &[],
        "while [ ! -e /tmp/go ]; do sleep 0.05; done",
    );
    // Hybrid's cgroup2 directory, v2's one; on a legacy host (no cgroup2) the pids one.
    let tracking = cgroup::v2_dir(&info).unwrap_or_else(|| cgroup::procs_dir(&info));
    let pid = pid_of(&info);
    assert!(
        cgroup::procs_in(&tracking).contains(&pid),
        "PID 1 ({pid}) not in {}/cgroup.procs",
        tracking.display()
    );
    if let Some(populated) = cgroup::populated(&info) {
        assert!(
            populated,
            "{}/cgroup.events: not populated",
            tracking.display()
        );
    }
    // Let the container end by itself: no stop, kill or rm.
    std::fs::write(format!("/proc/{pid}/root/tmp/go"), "").expect("writing /tmp/go");
    forge.exit_of("x");
    eventually(
        Duration::from_secs(5),
        "the container's cgroup to be removed",
        || (!tracking.exists()).then_some(()),
    );
}

#[test]
fn container_sees_its_own_cgroup_as_the_root() {
    let forge = Forge::new();
    let out = forge.sh("cat /proc/self/cgroup");
    let lines: Vec<&str> = out.lines().collect();
    assert!(!lines.is_empty(), "empty /proc/self/cgroup");
    for line in lines {
        assert!(
            line.ends_with(":/"),
            "/proc/self/cgroup in the container is not rooted at its cgroup: {line}\n{out}"
        );
    }
}

/// A `--rm` container's id, printed by the container itself from its root mount's upper layer.
const PRINT_ID: &str =
    "grep -o 'containers/[0-9a-f]*' /proc/self/mountinfo | head -1 | cut -d/ -f2";

/// The containers of [`no_cgroup_outside_forges_own_is_changed`]: the default and each limit.
const LIMITED: [(&str, &[&str]); 4] = [
    ("default", &[]),
    ("memory", &["--memory", "64m"]),
    ("cpus", &["--cpus", "0.5"]),
    ("pids", &["--pids-limit", "100"]),
];

/// The caller's own cgroup and every ancestor up to the root, in every hierarchy (their control
/// files, `cgroup.subtree_control` first, and child directories) are the same before, while
/// and after containers with and without limits run, except for Forge's own subtree (see
/// [`CallerCgroups::changes_since`]); and no cgroup of theirs is left. Alone in its binary:
/// the other tests' containers would come and go in what it compares.
#[test]
fn no_cgroup_outside_forges_own_is_changed() {
    let forge = Forge::alone();
    let before = CallerCgroups::take();
    assert!(
        !before.own().is_empty(),
        "no cgroup of our own among {:?}",
        before.paths()
    );
    let infos: Vec<Value> = LIMITED
        .iter()
        .map(|(name, flags)| detached(&forge, name, flags, "sleep 100"))
        .collect();
    let script = format!("{PRINT_ID}; cat /proc/self/cgroup");
    let foreground = forge.ok(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "100",
        "host",
        "sh",
        "-c",
        &script,
    ]);
    let foreground_id = foreground.stdout.lines().next().unwrap_or_default().trim();
    assert_eq!(
        foreground_id.len(),
        64,
        "no container id printed: {foreground}"
    );
    forge.note_ids([foreground_id.to_string()]);

    let changed = CallerCgroups::take().changes_since(&before, Phase::Running);
    assert!(
        changed.is_empty(),
        "changed while the containers ran:\n{}",
        changed.join("\n")
    );
    for (name, _) in LIMITED {
        forge.ok(&["stop", "-t", "1", name]);
    }
    let mut rm = vec!["rm"];
    rm.extend(LIMITED.iter().map(|(name, _)| *name));
    forge.ok(&rm);
    for info in &infos {
        assert_eq!(
            existing_cgroups(info),
            Vec::<PathBuf>::new(),
            "cgroups of {} left after rm",
            info["Name"]
        );
    }
    let changed = common::settled(|| CallerCgroups::take().changes_since(&before, Phase::Done));
    assert!(
        changed.is_empty(),
        "changed by containers that are gone:\n{}",
        changed.join("\n")
    );
    let ids: BTreeSet<String> = infos
        .iter()
        .map(cgroup::id_of)
        .chain([foreground_id.to_string()])
        .collect();
    assert_eq!(
        common::settled(|| cgroups_named(&ids)),
        Vec::<String>::new(),
        "cgroups named after the containers"
    );
}

/// The check above is only worth something if it sees a change: a directory made in the
/// caller's own cgroup of each hierarchy (where a misplaced container cgroup would go) shows up.
#[test]
fn cgroup_change_check_sees_a_new_cgroup_in_the_callers_own() {
    /// Removes the probe directories, also when the test fails.
    struct Probes(Vec<PathBuf>);
    impl Drop for Probes {
        fn drop(&mut self) {
            for dir in &self.0 {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
    let _forge = Forge::alone();
    let before = CallerCgroups::take();
    let name = format!("forge-e2e-probe-{}", std::process::id());
    let probes = Probes(before.own().iter().map(|own| own.join(&name)).collect());
    for dir in &probes.0 {
        std::fs::create_dir(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    }
    let changed = CallerCgroups::take().changes_since(&before, Phase::Done);
    for dir in &probes.0 {
        assert!(
            changed
                .iter()
                .any(|c| *c == format!("{}: a new cgroup", dir.display())),
            "{} was not seen: {changed:?}",
            dir.display()
        );
    }
    drop(probes);
    let changed = CallerCgroups::take().changes_since(&before, Phase::Done);
    assert_eq!(changed, Vec::<String>::new(), "after the probes went");
}

// --- Reporting -------------------------------------------------------------------------------

#[test]
fn inspect_shows_the_limits() {
    let forge = Forge::new();
    let info = detached(
        &forge,
        "x",
        &[
            "--cpus",
            "0.5",
            "--memory",
            "64m",
            "--memory-swap",
            "96m",
            "--pids-limit",
            "100",
            "--storage",
            "64m",
        ],
        "sleep 100",
    );
    let limits = &info["Config"]["limits"];
    assert_eq!(limits["cpus"], 0.5, "{limits}");
    assert_eq!(limits["memory"], 64 * MIB, "{limits}");
    assert_eq!(limits["memory_swap"], 96 * MIB, "{limits}");
    assert_eq!(limits["pids"], 100, "{limits}");
    assert_eq!(limits["storage"], 64 * MIB, "{limits}");
    let layout = &info["Config"]["cgroup"];
    assert_eq!(
        layout["mode"],
        Mode::host().name(),
        "the mode this host mounts"
    );
    assert_eq!(
        layout["systemd"].is_object(),
        Manager::host_default() == Manager::Systemd,
        "the manager: {layout}"
    );
}

/// The line of `forge stats --no-stream NAME` for `name`, split into its columns: id, name,
/// CPU %, memory use, "/", memory limit, MEM %, PIDS.
fn stats_columns(forge: &Forge, name: &str) -> Vec<String> {
    let out = forge.ok(&["stats", "--no-stream", name]);
    let line = out
        .stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("{name} not in stats:\n{out}"));
    let columns: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    assert!(
        columns.len() == 8 && columns[4] == "/",
        "not the columns of stats: {line}"
    );
    columns
}

/// A size as `forge stats` prints it (`256KiB`, `23.54GiB`), in bytes.
fn parse_size(text: &str) -> u64 {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or_else(|| panic!("{text:?} has no unit"));
    let (number, unit) = text.split_at(split);
    let factor: u64 = match unit {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => panic!("{text:?}: unknown unit"),
    };
    let number: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("{text:?} is not a size"));
    (number * factor as f64) as u64
}

#[test]
fn stats_shows_the_memory_limit_and_pids() {
    let forge = Forge::new();
    detached(&forge, "limited", &["--memory", "100m"], "sleep 100");
    let columns = stats_columns(&forge, "limited");
    assert_eq!(columns[5], "100MiB", "the limit: {columns:?}");
    let pids: u64 = columns[7]
        .parse()
        .unwrap_or_else(|_| panic!("no PIDS column: {columns:?}"));
    assert!(pids >= 1, "PIDS is {pids}: {columns:?}");
}

/// Without `--memory` the memory in use is still counted (on v2 the memory controller is
/// enabled for every container), against the host's memory as the limit.
#[test]
fn stats_shows_memory_use_without_a_memory_limit() {
    let forge = Forge::new();
    detached(&forge, "plain", &[], "sleep 100");
    let columns = stats_columns(&forge, "plain");
    let used = parse_size(&columns[3]);
    assert!(
        used > 0,
        "no memory use shown for a running sleep: {columns:?} (on v2 with cgroupfs the root \
         must pass memory down: its cgroup.subtree_control is {:?})",
        std::fs::read_to_string("/sys/fs/cgroup/cgroup.subtree_control").unwrap_or_default()
    );
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("reading /proc/meminfo");
    let host_kib: u64 = meminfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .expect("MemTotal in /proc/meminfo");
    let (limit, host) = (parse_size(&columns[5]) as f64, (host_kib * 1024) as f64);
    assert!(
        (limit - host).abs() <= host / 100.0,
        "the limit without --memory is not the host's {host} bytes: {columns:?}"
    );
    let pids: u64 = columns[7]
        .parse()
        .unwrap_or_else(|_| panic!("no PIDS column: {columns:?}"));
    assert!(pids >= 1, "PIDS is {pids}: {columns:?}");
}

// --- Bad input -------------------------------------------------------------------------------

/// Runs `forge run --cgroup-parent UNIQUE FLAGS... host true` and checks the refusal: exit 125,
/// one `forge:` line mentioning each of `mentions`, and nothing created, neither a container
/// nor a cgroup (the unique parent would be the first cgroup created).
fn refused(flags: &[&str], mentions: &[&str]) -> Out {
    let parent = CgroupParent::new();
    let forge = Forge::new();
    let mut args = vec!["run", "--cgroup-parent", &parent.arg];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["host", "true"]);
    let out = forge.run(&args);
    assert_eq!(out.code, 125, "forge {args:?}: {out}");
    let line = out.forge_error_line();
    for text in mentions {
        assert!(line.contains(text), "the error lacks {text:?}: {out}");
    }
    assert_eq!(out.stdout, "", "{out}");
    forge.assert_no_containers();
    assert_eq!(
        parent.dirs(),
        Vec::<String>::new(),
        "cgroups were created for a refused run"
    );
    out
}

#[test]
fn memory_that_is_not_a_size_is_refused() {
    refused(&["--memory", "abc"], &["--memory", "abc"]);
}

#[test]
fn memory_below_the_minimum_is_refused_naming_the_minimum() {
    refused(&["--memory", "1k"], &["--memory", "6m"]);
}

#[test]
fn zero_cpus_is_refused() {
    refused(&["--cpus", "0"], &["--cpus"]);
}

#[test]
fn more_cpus_than_the_machine_has_is_refused() {
    refused(&["--cpus", "99"], &["--cpus", "99"]);
}

#[test]
fn one_cpu_more_than_the_machine_has_is_refused() {
    // SAFETY: sysconf only reads a system value.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    assert!(online > 0, "sysconf(_SC_NPROCESSORS_ONLN) failed");
    let too_many = (online + 1).to_string();
    refused(&["--cpus", &too_many], &["--cpus"]);
}

/// A negative number is a bad value like 0, not an unknown option.
#[test]
fn negative_cpus_is_refused() {
    refused(&["--cpus", "-1"], &["--cpus"]);
}

#[test]
fn negative_pids_limit_is_refused() {
    refused(&["--pids-limit", "-5"], &["--pids-limit"]);
}

#[test]
fn zero_storage_is_refused() {
    refused(&["--storage", "0"], &["--storage"]);
}

#[test]
fn memory_swap_below_memory_is_refused() {
    refused(
        &["--memory", "64m", "--memory-swap", "32m"],
        &["--memory-swap"],
    );
}
