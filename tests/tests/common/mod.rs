//! Helpers for the end-to-end tests: find the `forge` binary, give each test its own data root
//! (sharing one `host` image built once per test binary), run commands with a deadline, and on
//! drop force-remove the test's containers and check that nothing of them is left.
//!
//! # Caveats
//! Every test needs root and fails (does not skip) without it. Test binaries that include this
//! module but use only some helpers would warn about the rest, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod cgroup;
pub mod fake_registry;
pub mod oci;
pub mod pty;
pub mod registry;
pub mod supervisor;

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long any single forge command may take before the test fails (stretched by [`scaled`]).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A file of the workspace, by its path relative to the workspace root.
pub fn workspace_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// A binary under test: `$VAR`, else the workspace's `target/debug/NAME`.
fn binary(var: &str, name: &str) -> PathBuf {
    let bin = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_file(&format!("target/debug/{name}")));
    assert!(
        bin.is_file(),
        "{name} binary not found at {} (run `cargo build` first or set {var})",
        bin.display()
    );
    bin
}

/// The forge binary under test: `$FORGE_BIN`, else the workspace's `target/debug/forge`.
pub fn forge_bin() -> PathBuf {
    binary("FORGE_BIN", "forge")
}

/// The forge-supervise binary under test: `$FORGE_SUPERVISE_BIN`, else the workspace's
/// `target/debug/forge-supervise`.
pub fn supervise_bin() -> PathBuf {
    binary("FORGE_SUPERVISE_BIN", "forge-supervise")
}

/// Fails the calling test when not root: these tests need the real kernel's privileges.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the end-to-end tests must run as root (they create namespaces and mounts); not skipping"
    );
}

/// A forge command for `root` with a clean environment for the variables forge reads.
fn forge_command(root: &Path) -> Command {
    root_command(forge_bin(), root)
}

/// `PROGRAM --root ROOT`, stdin from /dev/null, without the variables forge's binaries read.
fn root_command(program: PathBuf, root: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg("--root").arg(root);
    for var in ["FORGE_ROOT", "FORGE_RUN_ROOT", "FORGE_INIT_EXE", "RUST_LOG"] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// A private network namespace (with `lo` up) that lives as long as this value and the processes
/// in it. Every forge command of a test runs in one, so bridges, veths and nftables rules are made
/// there and never touch the host's network.
pub struct Netns {
    fd: std::os::fd::OwnedFd,
}

impl Netns {
    pub fn new() -> Self {
        // A thread of its own enters the new namespace: the test's other threads stay put.
        let fd = std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("unshare(CLONE_NEWNET)");
            let fd = std::fs::File::open("/proc/thread-self/ns/net").expect("opening the netns");
            let up = Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status();
            assert!(up.is_ok_and(|s| s.success()), "ip link set lo up failed");
            std::os::fd::OwnedFd::from(fd)
        })
        .join()
        .expect("creating a network namespace");
        Self { fd }
    }

    /// Makes `cmd` run inside this namespace.
    pub fn enter(&self, cmd: &mut Command) {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let raw = self.fd.as_raw_fd();
        // SAFETY: setns is a plain syscall (async-signal-safe); the closure allocates nothing and
        // `raw` stays open in the child until exec (it is inherited across fork).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// A path that opens this namespace, for `ip link set ... netns PATH`.
    pub fn path(&self) -> String {
        use std::os::fd::AsRawFd;
        format!("/proc/{}/fd/{}", std::process::id(), self.fd.as_raw_fd())
    }

    /// Runs `f` on a thread inside this namespace (sockets it opens live there).
    pub fn within<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    nix::sched::setns(&self.fd, nix::sched::CloneFlags::CLONE_NEWNET)
                        .expect("setns into the test's network namespace");
                    f()
                })
                .join()
                .expect("thread inside the network namespace")
        })
    }

    /// Runs a host tool (`ip`, `nft`, ...) inside the namespace; returns what it printed.
    pub fn run(&self, program: &str, args: &[&str]) -> Out {
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null());
        self.enter(&mut cmd);
        output(&mut cmd, COMMAND_TIMEOUT)
    }

    /// Like [`Netns::run`], failing the test unless the tool exits 0.
    pub fn ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.run(program, args);
        assert_eq!(out.code, 0, "{program} {args:?} failed: {out}");
        out.stdout
    }

    /// A port on 127.0.0.1 that nothing listens on inside the namespace (the namespace is the
    /// test's own, so nothing else takes it afterwards).
    pub fn free_port(&self) -> u16 {
        self.within(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .expect("binding a port in the test's namespace")
                .local_addr()
                .expect("the bound port")
                .port()
        })
    }

    /// Names of the links in the namespace.
    pub fn links(&self) -> Vec<String> {
        self.ok("ip", &["-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_string())
            .collect()
    }
}

static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_template() {
    if let Some(dir) = TEMPLATE.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A data root holding the `host` image, built once per test binary and removed at exit.
fn template_root() -> &'static Path {
    TEMPLATE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("forge-e2e-images-")
            .tempdir()
            .expect("template tempdir")
            .keep();
        // SAFETY: `remove_template` is an `extern "C" fn()` that stays valid for the whole
        // process; atexit only records it.
        unsafe { libc::atexit(remove_template) };
        let out = output(
            forge_command(&dir).args(["image", "build-host", "host"]),
            Duration::from_secs(300),
        );
        assert_eq!(out.code, 0, "building the shared host image failed: {out}");
        dir
    })
}

/// What a finished command did. `code` is the exit code, or 128 + N for death by signal N.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Out {
    /// The non-empty lines of stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    /// The one line a refusal prints on stderr, `forge: ...`; fails the test unless stderr is
    /// exactly that one line.
    pub fn forge_error_line(&self) -> &str {
        let lines = self.stderr_lines();
        assert_eq!(lines.len(), 1, "not exactly one error line: {self}");
        assert!(
            lines[0].starts_with("forge: "),
            "the error line is not Forge's: {self}"
        );
        lines[0]
    }
}

/// Fails unless `out` failed with exactly one line on stderr containing every one of `needles`
/// (case-insensitively).
pub fn assert_one_line_error(out: &Out, needles: &[&str]) {
    assert_ne!(out.code, 0, "{out}");
    assert_eq!(out.stderr_lines().len(), 1, "one error line: {out}");
    let line = out.stderr.to_lowercase();
    for needle in needles {
        assert!(
            line.contains(&needle.to_lowercase()),
            "the error should mention {needle:?}: {out}"
        );
    }
}

/// The exit code of a status the way a shell reports it.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// Waits for `child` up to `timeout` (stretched by [`scaled`]: it guards against a hang, it is
/// no speed limit); kills it and fails the test when it takes longer.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration, what: &str) -> i32 {
    let timeout = scaled(timeout);
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return exit_code(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A started command whose output is being collected.
pub struct Background {
    child: Child,
    what: String,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Background {
    pub fn spawn(cmd: &mut Command) -> Self {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning a command");
        let stdout = read_in_background(child.stdout.take().expect("piped"));
        let stderr = read_in_background(child.stderr.take().expect("piped"));
        Self {
            child,
            what,
            stdout,
            stderr,
        }
    }

    pub fn has_exited(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("waiting for a child")
            .is_some()
    }

    /// Sends SIGKILL.
    pub fn kill(&mut self) {
        self.child.kill().expect("killing a child");
    }

    /// Waits for the command to end, failing the test after `timeout`.
    pub fn finish(&mut self, timeout: Duration) -> Out {
        let code = wait_with_timeout(&mut self.child, timeout, &self.what);
        // A process that outlives the command (a leaked container) may hold the pipes open.
        let what = &self.what;
        let collect = |rx: &mpsc::Receiver<String>| {
            rx.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| {
                panic!("{what} exited but something still holds its output open")
            })
        };
        Out {
            code,
            stdout: collect(&self.stdout),
            stderr: collect(&self.stderr),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if !self.has_exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `cmd` to completion with captured output, failing the test after `timeout`.
pub fn output(cmd: &mut Command, timeout: Duration) -> Out {
    Background::spawn(cmd).finish(timeout)
}

/// Polls `check` until it returns `Some`, failing the test with `what` after `timeout`.
/// A deadline for waiting, stretched by `$FORGE_TEST_TIME_SCALE` (the v2 guest under qemu's
/// software emulation runs several times slower than a host; scripts/vm-test.sh sets it).
pub fn scaled(timeout: Duration) -> Duration {
    let scale = std::env::var("FORGE_TEST_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s >= 1.0)
        .unwrap_or(1.0);
    timeout.mul_f64(scale)
}

pub fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let timeout = scaled(timeout);
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pids in /proc, as their directory names.
fn proc_pids() -> std::io::Result<Vec<String>> {
    Ok(std::fs::read_dir("/proc")?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        .collect())
}

/// The command name of host pid `pid` and the fields of its `/proc/PID/stat` that follow it
/// (state first, then the parent's pid), `None` when there is no such process.
fn proc_stat(pid: i64) -> Option<(String, Vec<String>)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name is in parentheses and may itself contain ')'.
    let (head, rest) = stat.rsplit_once(')')?;
    let (_, comm) = head.split_once('(')?;
    Some((
        comm.to_string(),
        rest.split_whitespace().map(String::from).collect(),
    ))
}

/// Whether host pid `pid` is a live (not zombie) process.
pub fn process_alive(pid: i64) -> bool {
    proc_stat(pid).is_some_and(|(_, fields)| {
        !fields
            .first()
            .is_some_and(|state| state.starts_with(['Z', 'X']))
    })
}

/// Host pids of the live children of `parent` whose command name is `comm`.
pub fn children_named(parent: i64, comm: &str) -> Vec<i64> {
    let parent = parent.to_string();
    proc_pids()
        .unwrap_or_default()
        .iter()
        .filter_map(|pid| pid.parse().ok())
        .filter(|&pid| {
            proc_stat(pid).is_some_and(|(name, fields)| {
                name == comm
                    && fields.first().is_some_and(|state| state != "Z")
                    && fields.get(1) == Some(&parent)
            })
        })
        .collect()
}

/// Whether `pid`'s process group is the foreground group of its controlling terminal: the one
/// that a Ctrl-C there signals.
pub fn in_foreground(pid: i64) -> bool {
    // After the name: state, ppid, pgrp, session, tty_nr, tpgid.
    proc_stat(pid).is_some_and(|(_, fields)| fields.len() > 5 && fields[2] == fields[5])
}

/// Mount lines for which `wanted` holds, read once from every mount namespace on the host (the
/// host's own included), each named with its namespace and the pid it was read through.
fn mounts_where(wanted: impl Fn(&str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    let mut namespaces = HashSet::new();
    for pid in proc_pids().unwrap_or_default() {
        let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/mnt")) else {
            continue;
        };
        if !namespaces.insert(ns.clone()) {
            continue;
        }
        if let Ok(mountinfo) = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")) {
            for line in mountinfo.lines().filter(|l| wanted(l)) {
                found.push(format!("mount in {} (pid {pid}): {line}", ns.display()));
            }
        }
    }
    found
}

/// Mounts in any mount namespace whose line names one of `ids`.
pub fn mounts_naming(ids: &BTreeSet<String>) -> Vec<String> {
    mounts_where(|line| ids.iter().any(|id| line.contains(id.as_str())))
}

/// Everything on the host that still refers to `root`: processes whose command line names it,
/// and mounts naming it in any process's mount namespace (the host's own included).
pub fn leftovers(root: &Path) -> Vec<String> {
    let needle = root.to_str().expect("utf-8 temp path");
    let me = std::process::id().to_string();
    let Ok(pids) = proc_pids() else {
        return vec!["cannot read /proc".into()];
    };
    let mut found = Vec::new();
    for pid in pids.into_iter().filter(|pid| *pid != me) {
        if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) && process_alive(pid.parse().unwrap_or(0)) {
                found.push(format!("process {pid}: {cmdline}"));
            }
        }
    }
    found.extend(mounts_where(|line| line.contains(needle)));
    if let Ok(devices) = std::fs::read_dir("/sys/block") {
        for dev in devices.filter_map(|e| e.ok()) {
            let backing = dev.path().join("loop/backing_file");
            if let Ok(file) = std::fs::read_to_string(&backing) {
                if file.contains(needle) {
                    found.push(format!(
                        "loop device {}: {}",
                        dev.file_name().to_string_lossy(),
                        file.trim()
                    ));
                }
            }
        }
    }
    found
}

/// Cgroup directories anywhere below /sys/fs/cgroup named after one of `ids` (Forge names a
/// container's cgroups by its id, and the systemd manager its scope `forge-ID.scope`), or named
/// exactly one of `ids` (a cgroup parent's name).
pub fn cgroups_named(ids: &BTreeSet<String>) -> Vec<String> {
    let named = |name: &str| {
        ids.contains(name)
            || name
                .strip_prefix("forge-")
                .and_then(|n| n.strip_suffix(".scope"))
                .is_some_and(|id| ids.contains(id))
    };
    fn walk(dir: &Path, depth: usize, named: &dyn Fn(&str) -> bool, found: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            // Only real directories: cgroup v1 has links like cpu -> cpu,cpuacct.
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            if entry.file_name().to_str().is_some_and(named) {
                found.push(format!("cgroup {}", path.display()));
            } else if depth > 0 {
                walk(&path, depth - 1, named, found);
            }
        }
    }
    let mut found = Vec::new();
    if !ids.is_empty() {
        walk(Path::new("/sys/fs/cgroup"), 12, &named, &mut found);
    }
    found
}

/// Polls `check` for up to 3 s until it finds nothing; returns what it found last.
pub fn settled(mut check: impl FnMut() -> Vec<String>) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let found = check();
        if found.is_empty() || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Who may run containers now: every [`Forge`] of the test binary shares the gate, and a test
/// that compares host-wide cgroup state ([`Forge::alone`]) holds it alone, so that the other
/// tests of its binary (which run in parallel) change nothing it looks at. A thread that holds
/// the gate passes again (a test may make a second `Forge`); a waiting exclusive holder keeps
/// new tests out, so it waits only for the ones running.
struct Gate {
    state: Mutex<GateState>,
    changed: std::sync::Condvar,
}

#[derive(Default)]
struct GateState {
    /// Shared holds per thread.
    shared: std::collections::HashMap<std::thread::ThreadId, usize>,
    exclusive: Option<std::thread::ThreadId>,
    waiting_exclusive: usize,
}

static GATE: OnceLock<Gate> = OnceLock::new();

fn gate() -> &'static Gate {
    GATE.get_or_init(|| Gate {
        state: Mutex::default(),
        changed: std::sync::Condvar::new(),
    })
}

/// A hold of the [`Gate`], released on drop (on whichever thread).
struct GateHold {
    thread: std::thread::ThreadId,
    exclusive: bool,
}

impl GateHold {
    fn shared() -> Self {
        let me = std::thread::current().id();
        let gate = gate();
        let mut state = gate.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let reentrant = state.exclusive == Some(me) || state.shared.contains_key(&me);
            if reentrant || (state.exclusive.is_none() && state.waiting_exclusive == 0) {
                break;
            }
            state = gate.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        *state.shared.entry(me).or_default() += 1;
        Self {
            thread: me,
            exclusive: false,
        }
    }

    fn exclusive() -> Self {
        let me = std::thread::current().id();
        let gate = gate();
        let mut state = gate.state.lock().unwrap_or_else(|e| e.into_inner());
        state.waiting_exclusive += 1;
        while state.exclusive.is_some() || state.shared.keys().any(|t| *t != me) {
            state = gate.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.waiting_exclusive -= 1;
        state.exclusive = Some(me);
        Self {
            thread: me,
            exclusive: true,
        }
    }
}

impl Drop for GateHold {
    fn drop(&mut self) {
        let gate = gate();
        let mut state = gate.state.lock().unwrap_or_else(|e| e.into_inner());
        if self.exclusive {
            state.exclusive = None;
        } else if let Some(count) = state.shared.get_mut(&self.thread) {
            *count -= 1;
            if *count == 0 {
                state.shared.remove(&self.thread);
            }
        }
        gate.changed.notify_all();
    }
}

/// One test's Forge: a fresh data root (run root `ROOT/run`) sharing the prebuilt `host` image.
/// Dropping it force-removes its containers and fails the test if anything of them remains.
pub struct Forge {
    root: tempfile::TempDir,
    /// The test's own network namespace: Forge's bridges and rules are made there.
    pub netns: Netns,
    /// Ids of every container seen under the root, to find their cgroups after they are gone.
    seen: Mutex<BTreeSet<String>>,
    /// Held until the test's containers are gone (dropped after [`Forge`]'s own drop).
    _gate: GateHold,
}

impl Forge {
    pub fn new() -> Self {
        Self::with_gate(GateHold::shared())
    }

    /// A Forge for a test that compares host-wide cgroup state: no other test of this binary
    /// has a Forge (so no container) while it lives; it waits for the running ones to end.
    pub fn alone() -> Self {
        Self::with_gate(GateHold::exclusive())
    }

    fn with_gate(gate: GateHold) -> Self {
        require_root();
        let template = template_root();
        let root = tempfile::Builder::new()
            .prefix("forge-e2e-")
            .tempdir()
            .expect("test root tempdir");
        std::fs::create_dir(root.path().join("images")).expect("creating images/");
        std::os::unix::fs::symlink(
            template.join("images/host"),
            root.path().join("images/host"),
        )
        .expect("linking the shared host image");
        Self {
            root,
            netns: Netns::new(),
            seen: Mutex::default(),
            _gate: gate,
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `forge --root ROOT ARGS...`, stdin from /dev/null, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = forge_command(self.root());
        cmd.args(args);
        self.netns.enter(&mut cmd);
        cmd
    }

    /// `forge-supervise --root ROOT ARGS...` inside the test's network namespace, stdin from
    /// /dev/null, with a clean environment for the variables it reads; not yet started.
    pub fn supervise(&self, args: &[&str]) -> Command {
        let mut cmd = root_command(supervise_bin(), self.root());
        cmd.args(args);
        self.netns.enter(&mut cmd);
        cmd
    }

    /// Like [`Forge::command`] but left in the test process's network namespace (for a command
    /// that drops root, and so could not enter the test's namespace).
    pub fn command_unprivileged(&self, args: &[&str]) -> Command {
        let mut cmd = forge_command(self.root());
        cmd.args(args);
        cmd
    }

    /// Runs `forge ARGS...` to completion.
    pub fn run(&self, args: &[&str]) -> Out {
        let out = output(&mut self.command(args), COMMAND_TIMEOUT);
        self.note_ids(self.container_ids());
        out
    }

    /// Remembers container ids (e.g. of `--rm` containers, learnt from inside) for the leak check.
    pub fn note_ids(&self, ids: impl IntoIterator<Item = String>) {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(ids);
    }

    /// Everything of this test's containers still on the host: processes, mounts and loop
    /// devices naming the root, and cgroups named after a container seen during the test.
    pub fn leftovers(&self) -> Vec<String> {
        let ids = self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        settled(|| {
            let mut found = leftovers(self.root());
            found.extend(cgroups_named(&ids));
            found.extend(self.network_leftovers());
            found
        })
    }

    /// Veths and address leases of containers that are gone.
    pub fn network_leftovers(&self) -> Vec<String> {
        let mut found: Vec<String> = self
            .netns
            .links()
            .into_iter()
            .filter(|l| l.starts_with("fg"))
            .map(|l| format!("veth {l}"))
            .collect();
        let state = self.root().join("networks/state.json");
        if let Ok(raw) = std::fs::read(&state) {
            let state: serde_json::Value = serde_json::from_slice(&raw).expect("netd state JSON");
            if let Some(endpoints) = state["endpoints"].as_object() {
                found.extend(endpoints.keys().map(|id| format!("address lease of {id}")));
            }
        }
        found
    }

    /// Runs `forge ARGS...` and fails the test unless it exits 0.
    pub fn ok(&self, args: &[&str]) -> Out {
        let out = self.run(args);
        assert_eq!(out.code, 0, "forge {args:?} failed: {out}");
        out
    }

    /// `forge run --rm host sh -c SCRIPT`, failing unless it exits 0; returns its stdout.
    pub fn sh(&self, script: &str) -> String {
        self.ok(&["run", "--rm", "host", "sh", "-c", script]).stdout
    }

    /// The container's entry of `forge inspect NAME`.
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        self.try_inspect(name)
            .unwrap_or_else(|| panic!("forge inspect {name} failed"))
    }

    /// The container's entry of `forge inspect NAME`, `None` when there is no such container.
    pub fn try_inspect(&self, name: &str) -> Option<serde_json::Value> {
        let out = self.run(&["inspect", name]);
        if out.code != 0 {
            return None;
        }
        let mut all: serde_json::Value =
            serde_json::from_str(&out.stdout).expect("inspect prints JSON");
        Some(all[0].take())
    }

    /// The container's `State.status` (created, running, exited).
    pub fn status(&self, name: &str) -> String {
        self.inspect(name)["State"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the container runs and returns the host pid of its PID 1.
    pub fn running_pid(&self, name: &str) -> i64 {
        eventually(
            Duration::from_secs(10),
            &format!("container {name} to run"),
            || {
                let state = self.try_inspect(name)?["State"].take();
                (state["status"] == "running")
                    .then(|| state["pid"].as_i64())
                    .flatten()
            },
        )
    }

    /// Starts `forge ARGS...` in the background with its output collected.
    pub fn spawn(&self, args: &[&str]) -> Background {
        Background::spawn(&mut self.command(args))
    }

    /// Like [`Forge::running_pid`] for a container that the foreground `forge run` in `run`
    /// starts; fails at once with its output if that forge ends first.
    pub fn running_pid_of(&self, name: &str, run: &mut Background) -> i64 {
        eventually(
            Duration::from_secs(10),
            &format!("container {name} to run"),
            || {
                if run.has_exited() {
                    panic!(
                        "forge run of {name} ended before its container ran: {}",
                        run.finish(COMMAND_TIMEOUT)
                    );
                }
                let state = self.try_inspect(name)?["State"].take();
                (state["status"] == "running")
                    .then(|| state["pid"].as_i64())
                    .flatten()
            },
        )
    }

    /// Waits until `forge inspect` shows the container exited and returns its `State.exit`.
    pub fn exit_of(&self, name: &str) -> serde_json::Value {
        eventually(
            Duration::from_secs(10),
            &format!("container {name} to exit"),
            || {
                let state = self.inspect(name)["State"].take();
                (state["status"] == "exited").then(|| state["exit"].clone())
            },
        )
    }

    /// The lines of `forge ps ARGS...` below its header.
    pub fn ps(&self, args: &[&str]) -> Vec<String> {
        let mut full = vec!["ps"];
        full.extend_from_slice(args);
        self.ok(&full)
            .stdout
            .lines()
            .skip(1)
            .map(str::to_string)
            .collect()
    }

    /// The `forge ps ARGS...` line of container `name`.
    pub fn ps_line(&self, args: &[&str], name: &str) -> String {
        let all = self.ps(args);
        all.iter()
            .find(|l| l.split_whitespace().last() == Some(name))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in forge ps {args:?}:\n{}", all.join("\n")))
    }

    /// The `forge images --digests` line of image `name`.
    pub fn images_line(&self, name: &str) -> Option<String> {
        self.ok(&["images", "--digests"])
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(str::to_string)
    }

    /// Entries of a directory below the root (empty when it does not exist).
    pub fn entries(&self, rel: &str) -> Vec<String> {
        match std::fs::read_dir(self.root().join(rel)) {
            Ok(dir) => dir
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Ids of every container with data under this root.
    pub fn container_ids(&self) -> Vec<String> {
        self.entries("containers")
    }

    /// Fails the test unless no container, state directory or name exists under this root.
    pub fn assert_no_containers(&self) {
        for dir in ["containers", "run/containers", "names"] {
            assert_eq!(
                self.entries(dir),
                Vec::<String>::new(),
                "{dir} under the root should be empty"
            );
        }
    }
}

impl Forge {
    /// The supervisors `forge compose up -d` left running over this root (a failed test did
    /// not bring its project down): the PIDs their projects' locks name, checked to be this
    /// root's by their environment.
    fn detached_supervisors(&self) -> Vec<i32> {
        let Ok(locks) = std::fs::read_dir(self.root().join("projects")) else {
            return Vec::new();
        };
        let ours = format!("FORGE_ROOT={}", self.root().display());
        locks
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "lock"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
            .filter(|pid: &i32| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == ours.as_bytes()))
            })
            .collect()
    }
}

impl Drop for Forge {
    fn drop(&mut self) {
        // A killed supervisor takes its containers with it; what it leaves is removed below.
        for pid in self.detached_supervisors() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let deadline = Instant::now() + scaled(COMMAND_TIMEOUT);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let ids = self.container_ids();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            // Not `run`: a timeout there panics, and a panic while a failed test unwinds aborts
            // the whole test binary, leaving every other test's containers behind.
            let mut cmd = self.command(&args);
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Ok(mut child) = cmd.spawn() {
                let deadline = Instant::now() + scaled(COMMAND_TIMEOUT);
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let left = self.leftovers();
        if !left.is_empty() && !std::thread::panicking() {
            panic!(
                "left behind after the test (root {}):\n{}",
                self.root().display(),
                left.join("\n")
            );
        }
    }
}
