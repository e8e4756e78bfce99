//! The cgroup v2 device filter against the real kernel: a cgroup below this process's own one in
//! the unified hierarchy gets Forge's program; a child moved into it may make device nodes but
//! open only the standard ones. Needs root; fails (does not skip) without it.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use forge_runtime::cgroup::device_filter;

/// The unified (v2) hierarchy: at the root in unified mode, at `unified/` in hybrid mode.
fn unified_root() -> PathBuf {
    let hybrid = PathBuf::from("/sys/fs/cgroup/unified");
    if hybrid.join("cgroup.procs").exists() {
        hybrid
    } else {
        PathBuf::from("/sys/fs/cgroup")
    }
}

/// A fresh cgroup below this process's own v2 cgroup, removed on drop.
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn new() -> Self {
        let own = std::fs::read_to_string("/proc/self/cgroup").expect("reading /proc/self/cgroup");
        let rel = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("this process has a cgroup v2 entry");
        let dir = unified_root()
            .join(rel.trim_start_matches('/'))
            .join(format!("forge-devfilter-test-{}", std::process::id()));
        std::fs::create_dir(&dir).expect("creating the test cgroup");
        Self(dir)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Runs `script` with `sh` in a child that first moves itself into `cgroup`.
fn run_in(cgroup: &TestCgroup, script: &str) -> String {
    let procs = CString::new(cgroup.0.join("cgroup.procs").to_str().unwrap()).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script);
    // SAFETY: between fork and exec the closure calls only open, write and close (all
    // async-signal-safe) on memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // "0" moves the writing process itself.
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            if written != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("running sh in the test cgroup");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const SCRIPT: &str = r#"
    d=$(mktemp -d)
    mknod "$d/disk" b 8 0 && echo mknod-disk-ok
    mknod "$d/null" c 1 3 && echo mknod-null-ok
    mknod "$d/loopctl" c 10 237 && echo mknod-loopctl-ok
    # Only open them: the subshell's redirection is the open(2) the filter decides on.
    if (exec 3<"$d/disk") 2>"$d/err"; then echo open-disk-ok; else cat "$d/err"; fi
    if (exec 3<"$d/loopctl") 2>"$d/err"; then echo open-loopctl-ok; else cat "$d/err"; fi
    echo hi > "$d/null" && echo open-null-ok
    rm -rf "$d"
"#;

#[test]
fn the_device_filter_allows_the_standard_nodes_and_refuses_a_disk() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test loads a BPF program and creates cgroups: run it as root"
    );
    // Without the filter the disk opens or fails for another reason than the cgroup.
    let plain = TestCgroup::new();
    let before = run_in(&plain, SCRIPT);
    assert!(before.contains("open-loopctl-ok"), "{before}");
    assert!(
        !before.contains("Operation not permitted"),
        "the host already refuses: {before}"
    );
    drop(plain);

    let filtered = TestCgroup::new();
    let prog = device_filter::program(&device_filter::default_rules());
    device_filter::attach(&filtered.0, &prog).expect("loading and attaching the device filter");
    let out = run_in(&filtered, SCRIPT);
    for made in [
        "mknod-disk-ok",
        "mknod-null-ok",
        "mknod-loopctl-ok",
        "open-null-ok",
    ] {
        assert!(out.contains(made), "{made} missing: {out}");
    }
    assert!(!out.contains("open-disk-ok"), "the disk opened: {out}");
    assert!(
        !out.contains("open-loopctl-ok"),
        "loop-control opened: {out}"
    );
    assert_eq!(
        out.matches("Operation not permitted").count(),
        2,
        "the disk and loop-control opens fail with EPERM: {out}"
    );
}
