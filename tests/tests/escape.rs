//! Escape attempts from a default container: each one must fail, and the host must be unchanged
//! afterwards (its processes, mounts, kernel settings, hostname, clock, cgroup files, keys).
//! `docs/security.md` lists every attempt with what Forge and Docker's default do about it.
//!
//! The attempts that busybox cannot express are made by `escape-probe` (tests/src/bin), which
//! prints `ESCAPED ...` and exits 0 when an attempt works, and prints the errno and exits 1 when
//! it does not; each test builds a `probe` image of it with `forge image build-host`.
//!
//! Covered elsewhere, in `security.rs`: Docker's capability set and no_new_privs, the masked
//! /proc/interrupts and /sys/firmware, mknod + open of a disk and /dev/mem, the sysrq trigger,
//! the read-only root, and seccomp refusing user namespaces. In `limits.rs`: `--pids-limit` and
//! `--memory` themselves.

mod common;

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::cgroup::{self, Mode};
use common::{eventually, output, process_alive, Forge, Netns, Out, COMMAND_TIMEOUT};

const PROBE: &str = env!("CARGO_BIN_EXE_escape-probe");

/// Builds the `probe` image (the probe, and busybox for `sleep`) in this test's root.
fn build_probe_image(forge: &Forge) {
    forge.ok(&[
        "image",
        "build-host",
        "probe",
        "--bin",
        PROBE,
        "--bin",
        "busybox",
    ]);
}

/// `forge run --rm FLAGS... probe escape-probe ARGS...`, which must fail without escaping.
fn refused(forge: &Forge, flags: &[&str], probe: &[&str]) -> Out {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["probe", "escape-probe"]);
    args.extend_from_slice(probe);
    let out = forge.run(&args);
    assert!(!out.stdout.contains("ESCAPED"), "{probe:?} escaped: {out}");
    assert_eq!(out.code, 1, "{probe:?} should have failed: {out}");
    out
}

/// `forge run --rm --net none host sh -c SCRIPT`; returns its stdout lines.
fn lines_of(forge: &Forge, script: &str) -> Vec<String> {
    forge.sh(script).lines().map(str::to_string).collect()
}

/// A word that names this test run: paths and keys made from it cannot exist by chance.
fn nonce() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("esc{}x{}", std::process::id(), now.subsec_nanos())
}

/// A `sleep 600` on the host, killed on drop: the target of the signal and ptrace attempts.
struct HostProcess(Child);

impl HostProcess {
    fn start() -> Self {
        let child = Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .spawn()
            .expect("starting sleep on the host");
        Self(child)
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }

    fn tracer(&self) -> String {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))
            .expect("reading the host process's status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("TracerPid:"))
            .map(|v| v.trim().to_string())
            .expect("TracerPid in status")
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn host_processes_cannot_be_seen_signalled_or_traced() {
    let forge = Forge::new();
    build_probe_image(&forge);
    let host = HostProcess::start();
    let pid = host.pid();
    let net = ["--net", "none"];
    let proc_path = format!("/proc/{pid}");
    let via_root = format!("/proc/1/root/proc/{pid}");
    refused(&forge, &net, &["visible", &proc_path, &via_root]);
    let killed = refused(&forge, &net, &["signal", &pid]);
    assert!(killed.stdout.contains("No such process"), "{killed}");
    let traced = refused(&forge, &net, &["ptrace", &pid]);
    assert!(traced.stdout.contains("No such process"), "{traced}");
    // busybox's kill and ps, the way a user would try.
    let script =
        format!("kill -9 {pid} 2>/dev/null || echo kill-refused; ps -o pid | grep -cx ' *{pid}'");
    let out = forge.run(&["run", "--rm", "--net", "none", "host", "sh", "-c", &script]);
    assert_eq!(out.stdout, "kill-refused\n0\n", "{out}");
    assert!(process_alive(host.0.id().into()), "the host process died");
    assert_eq!(host.tracer(), "0", "the host process is being traced");
}

/// `MAJ:MIN` of the host's root filesystem.
fn host_root_device() -> String {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.get(4) == Some(&"/"))
        .map(|f| f[2].to_string())
        .expect("the host's / in mountinfo")
}

/// Mount lines in the test process's and the host init's mount namespaces that mention `word`.
fn host_mounts_naming(word: &str) -> Vec<String> {
    ["/proc/self/mountinfo", "/proc/1/mountinfo"]
        .iter()
        .flat_map(|file| {
            std::fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.contains(word))
        .collect()
}

#[test]
fn the_hosts_disk_proc_sys_and_cgroups_cannot_be_mounted() {
    let forge = Forge::new();
    build_probe_image(&forge);
    let (major, minor) = host_root_device()
        .split_once(':')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap();
    let dir = format!("/{}", nonce());
    let script = format!(
        "mkdir {dir}; mknod /tmp/disk b {major} {minor} && echo made; \
         mount /tmp/disk {dir} 2>/dev/null || echo disk-refused; \
         mount -t ext4 /tmp/disk {dir} 2>/dev/null || echo ext4-refused; \
         head -c 512 /tmp/disk 2>/dev/null | wc -c; \
         mount -t proc proc {dir} 2>/dev/null || echo proc-refused; \
         mount -t sysfs sysfs {dir} 2>/dev/null || echo sysfs-refused; \
         mount -t cgroup -o pids cgroup {dir} 2>/dev/null || echo cgroup-refused; \
         mount -t cgroup2 cgroup2 {dir} 2>/dev/null || echo cgroup2-refused; \
         mount --bind /proc/1/root {dir} 2>/dev/null || echo bind-refused; \
         grep -c {dir} /proc/self/mountinfo || true"
    );
    let lines = lines_of(&forge, &script);
    assert_eq!(
        lines,
        [
            "made",
            "disk-refused",
            "ext4-refused",
            "0",
            "proc-refused",
            "sysfs-refused",
            "cgroup-refused",
            "cgroup2-refused",
            "bind-refused",
            "0"
        ],
        "{script}"
    );
    // The new mount API is refused too.
    for fstype in ["proc", "ext4", "cgroup2"] {
        refused(&forge, &["--net", "none"], &["fsopen", fstype]);
    }
    assert_eq!(host_mounts_naming(&dir[1..]), Vec::<String>::new());
}

/// Writes `value` to each host file from inside a container; all must be refused.
fn write_refused(forge: &Forge, files: &[(&str, String)]) {
    let script: String = files
        .iter()
        .map(|(file, value)| format!("(printf '%s\\n' '{value}' > {file}) 2>/dev/null && echo wrote {file} || echo refused; "))
        .collect();
    let lines = lines_of(forge, &script);
    assert_eq!(lines, vec!["refused"; files.len()], "{script}");
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
        .trim_end()
        .to_string()
}

#[test]
fn kernel_settings_and_sys_cannot_be_written() {
    let forge = Forge::new();
    // Global, not namespaced, settings. The values written are the current ones (or, for the
    // harmless printk burst, one more) so that a failure of the test does not hurt the machine.
    let burst = "/proc/sys/kernel/printk_ratelimit_burst";
    let files: Vec<&str> = [
        burst,
        "/proc/sys/kernel/core_pattern",
        "/proc/sys/kernel/modprobe",
        "/sys/kernel/uevent_helper",
        "/sys/kernel/mm/transparent_hugepage/enabled",
    ]
    .into_iter()
    .filter(|f| Path::new(f).exists())
    .collect();
    assert_eq!(files[0], burst);
    let before: Vec<String> = files.iter().map(|f| read_trimmed(f)).collect();
    let writes: Vec<(&str, String)> = files
        .iter()
        .zip(&before)
        .map(|(file, value)| {
            let value = match *file {
                f if f == burst => (value.parse::<u64>().unwrap() + 1).to_string(),
                // The selected mode is the one in brackets.
                "/sys/kernel/mm/transparent_hugepage/enabled" => value
                    .split_once('[')
                    .and_then(|(_, rest)| rest.split_once(']'))
                    .map_or("madvise".into(), |(mode, _)| mode.to_string()),
                _ => value.clone(),
            };
            (*file, value)
        })
        .collect();
    write_refused(&forge, &writes);
    let after: Vec<String> = files.iter().map(|f| read_trimmed(f)).collect();
    if after[0] != before[0] {
        let _ = std::fs::write(burst, &before[0]);
    }
    assert_eq!(after, before, "host settings changed");
}

#[test]
fn kernel_modules_keyrings_and_file_handles_are_refused() {
    let forge = Forge::new();
    build_probe_image(&forge);
    let net = ["--net", "none"];
    let modules = refused(&forge, &net, &["module"]);
    assert_eq!(
        modules.stdout.matches("Operation not permitted").count(),
        2,
        "{modules}"
    );
    let key = nonce();
    let keys = refused(&forge, &net, &["keyctl", &key]);
    assert_eq!(
        keys.stdout.matches("Operation not permitted").count(),
        2,
        "{keys}"
    );
    assert!(
        !read_trimmed("/proc/keys").contains(&key),
        "the key reached the host"
    );
    let handle = refused(&forge, &net, &["handle"]);
    assert!(
        handle.stdout.contains("Operation not permitted"),
        "{handle}"
    );
    // busybox's insmod, as a user would try (no module file is needed to be refused).
    let out = forge.run(&[
        "run",
        "--rm",
        "--net",
        "none",
        "host",
        "sh",
        "-c",
        "insmod /bin/busybox",
    ]);
    assert_ne!(out.code, 0, "{out}");
}

#[test]
fn kernel_memory_and_masked_proc_files_read_nothing() {
    let forge = Forge::new();
    // Only the files this kernel has: a missing one would read nothing anyway.
    let files: Vec<&str> = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
    ]
    .into_iter()
    .filter(|f| Path::new(f).exists())
    .collect();
    let script: String = files
        .iter()
        .map(|f| format!("head -c 4096 {f} 2>/dev/null | wc -c; "))
        .chain(["test -e /dev/mem || echo no-mem; test -e /dev/kmem || echo no-kmem; test -e /dev/vda || echo no-disk".to_string()])
        .collect();
    let lines: Vec<String> = lines_of(&forge, &script)
        .iter()
        .map(|l| l.trim().to_string())
        .collect();
    let mut expected = vec!["0"; files.len()];
    expected.extend(["no-mem", "no-kmem", "no-disk"]);
    assert_eq!(lines, expected, "{script}");
    // The host's files are not empty: the mask is what hides them.
    assert!(!read_trimmed("/proc/timer_list").is_empty());
    if Path::new("/proc/kcore").exists() {
        let mut kcore = [0u8; 4];
        let mut file = std::fs::File::open("/proc/kcore").unwrap();
        std::io::Read::read_exact(&mut file, &mut kcore).unwrap();
        assert_eq!(&kcore, b"\x7fELF");
    }
}

/// A file on the host outside every container, named so that nothing else has it.
fn host_marker(forge: &Forge) -> PathBuf {
    let marker = forge.root().join(nonce());
    std::fs::write(&marker, "host").unwrap();
    marker
}

#[test]
fn the_chroot_escape_ends_at_the_containers_root() {
    let forge = Forge::new();
    build_probe_image(&forge);
    let marker = host_marker(&forge);
    let marker = marker.to_str().unwrap();
    // The probe can tell: outside a container the marker is in plain sight.
    let host = output(
        Command::new(PROBE).args(["visible", marker]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(host.code, 0, "{host}");
    let out = refused(&forge, &["--net", "none"], &["chroot-escape", marker]);
    assert!(
        out.stdout.contains("not visible"),
        "chroot was refused, not defeated: {out}"
    );
}

#[test]
fn the_old_root_cannot_be_reached() {
    let forge = Forge::new();
    build_probe_image(&forge);
    let marker = host_marker(&forge);
    let marker = marker.to_str().unwrap();
    let paths = [
        "",
        "/proc/1/root",
        "/proc/self/root",
        "/proc/1/cwd",
        "/proc/self/cwd/..",
    ]
    .map(|prefix| format!("{prefix}{marker}"));
    let mut args = vec!["visible"];
    args.extend(paths.iter().map(String::as_str));
    refused(&forge, &["--net", "none"], &args);
    // No mount in the container is the host's root filesystem at its top, and only one is "/".
    let host_root = host_root_device();
    let mountinfo = forge.sh("cat /proc/self/mountinfo");
    let fields: Vec<Vec<&str>> = mountinfo.lines().map(|l| l.split(' ').collect()).collect();
    let old_root: Vec<_> = fields
        .iter()
        .filter(|f| f[2] == host_root && f[3] == "/")
        .collect();
    assert!(
        old_root.is_empty(),
        "the host's root is mounted: {old_root:?}\n{mountinfo}"
    );
    assert_eq!(
        fields.iter().filter(|f| f[4] == "/").count(),
        1,
        "{mountinfo}"
    );
}

/// `forge ARGS...` started with a directory fd of the host at fd 5, inherited without
/// close-on-exec, as a careless caller would leak it.
fn with_leaked_fd(forge: &Forge, args: &[&str]) -> Out {
    use std::os::unix::process::CommandExt;
    let dir = std::fs::File::open("/").expect("opening the host's /");
    let raw = dir.as_raw_fd();
    let mut cmd = forge.command(args);
    // SAFETY: dup2 and fcntl are async-signal-safe and the closure allocates nothing; `dir`
    // stays open in the child until exec.
    unsafe {
        cmd.pre_exec(move || {
            // When `raw` is 5 already, dup2 is a no-op: clear close-on-exec by hand.
            if libc::dup2(raw, 5) == -1 || libc::fcntl(5, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = output(&mut cmd, COMMAND_TIMEOUT);
    forge.note_ids(forge.container_ids());
    drop(dir);
    out
}

/// The fds the probe listed, after checking that none leads out of the container.
fn listed_fds(out: &Out) -> BTreeSet<String> {
    assert!(!out.stdout.contains("ESCAPED"), "{out}");
    assert_eq!(out.code, 1, "{out}");
    out.stdout
        .lines()
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn no_fd_of_the_host_reaches_the_container_or_exec() {
    let forge = Forge::new();
    build_probe_image(&forge);
    let std_fds: BTreeSet<String> = ["0", "1", "2"].map(String::from).into();
    let run = refused(&forge, &["--net", "none"], &["fds"]);
    assert_eq!(listed_fds(&run), std_fds, "{run}");
    let leaked = with_leaked_fd(
        &forge,
        &[
            "run",
            "--rm",
            "--net",
            "none",
            "probe",
            "escape-probe",
            "fds",
        ],
    );
    assert_eq!(
        listed_fds(&leaked),
        std_fds,
        "a leaked fd reached forge run's container: {leaked}"
    );
    forge.ok(&[
        "run", "-d", "--name", "box", "--net", "none", "probe", "busybox", "sleep", "600",
    ]);
    let exec = with_leaked_fd(&forge, &["exec", "box", "escape-probe", "fds"]);
    assert_eq!(
        listed_fds(&exec),
        std_fds,
        "a leaked fd reached forge exec's command: {exec}"
    );
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC in seconds: it moves when someone sets the clock.
fn clock_offset() -> f64 {
    let read = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to fill.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    };
    read(libc::CLOCK_REALTIME) - read(libc::CLOCK_MONOTONIC)
}

#[test]
fn the_hosts_hostname_and_clock_cannot_be_changed() {
    let forge = Forge::new();
    build_probe_image(&forge);
    let hostname = read_trimmed("/proc/sys/kernel/hostname");
    let offset = clock_offset();
    let evil = nonce();
    let script = format!(
        "hostname {evil} 2>/dev/null || echo refused; \
         (echo {evil} > /proc/sys/kernel/hostname) 2>/dev/null || echo refused; \
         date -s @$(date +%s) 2>&1 >/dev/null | grep -q \"can't set\" && echo refused; hostname"
    );
    let lines = lines_of(&forge, &script);
    assert_eq!(lines[..3], ["refused", "refused", "refused"], "{script}");
    assert_ne!(lines[3], evil);
    let out = refused(&forge, &["--net", "none"], &["settime"]);
    assert_eq!(
        out.stdout.matches("Operation not permitted").count(),
        2,
        "{out}"
    );
    assert_eq!(read_trimmed("/proc/sys/kernel/hostname"), hostname);
    // The attempts set the current second: success would have moved the clock by up to 1 s.
    let moved = (clock_offset() - offset).abs();
    assert!(moved < 0.05, "the host's clock moved by {moved} s");
}

#[test]
fn a_raw_socket_sees_only_the_containers_own_traffic() {
    let forge = Forge::new();
    build_probe_image(&forge);
    // Traffic that never goes to the container: on lo of the test's namespace, and over a veth
    // pair between it and another namespace.
    let peer = Netns::new();
    forge.netns.ok(
        "ip",
        &[
            "link",
            "add",
            "escA",
            "type",
            "veth",
            "peer",
            "name",
            "escB",
            "netns",
            &peer.path(),
        ],
    );
    forge
        .netns
        .ok("ip", &["addr", "add", "192.168.251.1/30", "dev", "escA"]);
    forge.netns.ok("ip", &["link", "set", "escA", "up"]);
    peer.ok("ip", &["addr", "add", "192.168.251.2/30", "dev", "escB"]);
    peer.ok("ip", &["link", "set", "escB", "up"]);
    let marker = nonce();
    let stop = AtomicBool::new(false);
    let out = std::thread::scope(|scope| {
        scope.spawn(|| {
            forge.netns.within(|| {
                let udp = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
                while !stop.load(Ordering::Relaxed) {
                    for to in ["127.0.0.1:9", "192.168.251.2:9"] {
                        let _ = udp.send_to(marker.as_bytes(), to);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        });
        let out = forge.run(&[
            "run",
            "--rm",
            "--net",
            "bridge",
            "probe",
            "escape-probe",
            "sniff",
            "3",
            &marker,
        ]);
        stop.store(true, Ordering::Relaxed);
        out
    });
    assert!(!out.stdout.contains("ESCAPED"), "{out}");
    assert_eq!(out.code, 1, "{out}");
    let own: u64 = out
        .stdout
        .split_whitespace()
        .skip_while(|w| *w != "own")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of own packets: {out}"));
    assert!(
        own > 0,
        "the socket saw not even the container's own packets: {out}"
    );
    // The peer namespace did receive the traffic the container did not see.
    let link: serde_json::Value =
        serde_json::from_str(&peer.ok("ip", &["-j", "-s", "link", "show", "escB"])).unwrap();
    let received = link[0]["stats64"]["rx"]["packets"].as_u64().unwrap_or(0);
    assert!(
        received > 10,
        "the peer received only {received} packets: {link}"
    );
}

fn read_in(dir: &Path, file: &str) -> String {
    read_trimmed(dir.join(file).to_str().unwrap())
}

#[test]
fn the_hosts_cgroup_files_cannot_be_written() {
    let forge = Forge::new();
    forge.ok(&[
        "run", "-d", "--name", "box", "--net", "none", "host", "sleep", "600",
    ]);
    let info = forge.inspect("box");
    let pids = cgroup::dir(&info, "pids");
    let memory = cgroup::dir(&info, "memory");
    let parent = pids.parent().unwrap().to_path_buf();
    // The memory limit and one harmless control file, as each mode names them.
    let (memory_limit, control) = if Mode::of(&info).is_v2() {
        ("memory.max", "cgroup.max.descendants")
    } else {
        ("memory.limit_in_bytes", "notify_on_release")
    };
    let watched = [
        (pids.clone(), "pids.max"),
        (parent.clone(), "pids.max"),
        (memory.clone(), memory_limit),
        (pids.clone(), control),
    ];
    let before: Vec<String> = watched.iter().map(|(d, f)| read_in(d, f)).collect();
    // Inside, /sys/fs/cgroup is sysfs's empty, read-only directory: the host's cgroup files are
    // neither there nor mountable (v1's nor v2's names), and the container's own paths name
    // nothing.
    let mut attempts = vec![
        (
            "/sys/fs/cgroup/pids/pids.max".to_string(),
            "max".to_string(),
        ),
        ("/sys/fs/cgroup/release_agent".into(), "/evil".into()),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes".into(),
            "-1".into(),
        ),
        ("/sys/fs/cgroup/pids.max".into(), "max".into()),
        ("/sys/fs/cgroup/memory.max".into(), "max".into()),
        (
            "/sys/fs/cgroup/cgroup.subtree_control".into(),
            "+memory".into(),
        ),
    ];
    for (dir, file) in &watched {
        attempts.push((dir.join(file).to_string_lossy().into_owned(), "1".into()));
    }
    let script: String = attempts
        .iter()
        .map(|(f, v)| format!("(echo {v} > {f}) 2>/dev/null && echo wrote {f} || echo refused; "))
        .chain([
            "mkdir /sys/fs/cgroup/x 2>/dev/null || echo refused; ls -A /sys/fs/cgroup | wc -l"
                .into(),
        ])
        .collect();
    let out = forge.ok(&["exec", "box", "sh", "-c", &script]);
    let mut expected = vec!["refused"; attempts.len() + 1];
    expected.push("0");
    assert_eq!(
        out.stdout.lines().map(str::trim).collect::<Vec<_>>(),
        expected,
        "{script}"
    );
    let after: Vec<String> = watched.iter().map(|(d, f)| read_in(d, f)).collect();
    assert_eq!(after, before, "a cgroup file changed");
    assert_eq!(before[0], "2048", "the default pids limit");
}

/// Host commands that finish within a second while something runs: the host stays responsive.
fn assert_host_responsive() {
    for _ in 0..3 {
        let started = Instant::now();
        let out = output(
            Command::new("ls").arg("/proc/self/"),
            Duration::from_secs(5),
        );
        assert_eq!(out.code, 0, "{out}");
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "a host command took {took:?}"
        );
        let fork = Command::new("true")
            .status()
            .expect("the host can still fork");
        assert!(fork.success());
    }
}

#[test]
fn a_fork_bomb_stops_at_the_default_pids_limit_and_the_host_stays_responsive() {
    let forge = Forge::new();
    // Every bomb process stays alive (it forks two and sleeps), so the count reaches the limit.
    let bomb = "b() { b & b & sleep 1000; }; b & exec sleep 1000";
    forge.ok(&[
        "run", "-d", "--name", "bomb", "--net", "none", "host", "sh", "-c", bomb,
    ]);
    let info = forge.inspect("bomb");
    assert_eq!(info["Config"]["limits"]["pids"], 2048, "{info}");
    eventually(
        Duration::from_secs(60),
        "the bomb to hit the pids limit",
        || (cgroup::pids_refused(&info) > 0).then_some(()),
    );
    assert_host_responsive();
    let current = cgroup::pids_current(&info);
    assert!(
        (1900..=2048).contains(&current),
        "pids.current {current} under the default 2048"
    );
    let started = Instant::now();
    forge.ok(&["rm", "-f", "bomb"]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "rm -f took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_memory_hog_is_oom_killed_and_the_host_stays_responsive() {
    let forge = Forge::new();
    let mut hog = forge.spawn(&[
        "run",
        "--rm",
        "--net",
        "none",
        "--memory",
        "64m",
        "host",
        "sh",
        "-c",
        "sleep 1; dd if=/dev/zero of=/dev/null bs=200M count=1",
    ]);
    assert_host_responsive();
    let out = hog.finish(COMMAND_TIMEOUT);
    assert_eq!(out.code, 137, "{out}");
    assert!(out.stderr.contains("OOM killed"), "{out}");
}
