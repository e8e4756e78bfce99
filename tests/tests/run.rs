//! `forge run` in the foreground: what the command sees inside the container (PID 1, processes,
//! hostname, filesystem, mounts, devices, network, environment) and the exit codes it gets.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{eventually, Forge, COMMAND_TIMEOUT};

/// `(major:minor, root, mount point, fstype, super options)` of each line of a mountinfo file.
fn mounts(mountinfo: &str) -> Vec<(String, String, String, String, String)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (ours, theirs) = line.split_once(" - ")?;
            let f: Vec<&str> = ours.split_whitespace().collect();
            let t: Vec<&str> = theirs.split_whitespace().collect();
            Some((
                f[2].into(),
                f[3].into(),
                f[4].into(),
                t[0].into(),
                t.get(2).copied().unwrap_or("").into(),
            ))
        })
        .collect()
}

// ---- PID namespace ----

#[test]
fn command_is_pid_1() {
    let forge = Forge::new();
    assert_eq!(forge.sh("echo $$").trim(), "1");
}

#[test]
fn ps_lists_only_the_containers_processes() {
    let forge = Forge::new();
    let out =
        forge.sh("sleep 100 & until grep -q sleep /proc/$!/comm; do :; done; ps -o pid,comm; true");
    let mut comms: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    comms.sort_unstable();
    assert_eq!(
        comms,
        ["ps", "sh", "sleep"],
        "ps inside the container printed:\n{out}"
    );
}

#[test]
fn host_processes_are_not_in_the_containers_proc() {
    let forge = Forge::new();
    let me = std::process::id().to_string();
    let out = forge.sh("ls /proc");
    let pids: Vec<&str> = out
        .split_whitespace()
        .filter(|e| e.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    assert!(
        !pids.contains(&me.as_str()),
        "the test process (host pid {me}) is visible: {pids:?}"
    );
    // sh and ls, and nothing else.
    assert!(
        pids.len() <= 2,
        "more processes than the container's own in /proc: {pids:?}"
    );
}

// ---- UTS namespace ----

/// A `forge run` started with signals ignored or blocked (from a background job, `nohup`, or a
/// program that ignores SIGPIPE, as Rust's runtime does) still gives the command every signal's
/// default: with SIGINT ignored, Ctrl-C would not stop a shell's children; with SIGPIPE
/// ignored, `yes | head` would never end.
#[test]
fn the_command_gets_default_signal_dispositions_whatever_forge_inherited() {
    use std::os::unix::process::CommandExt;
    let forge = Forge::new();
    for init in [&[][..], &["--init"][..]] {
        let mut args = vec!["run", "--rm", "--net", "none"];
        args.extend_from_slice(init);
        args.extend_from_slice(&["host", "grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"]);
        let mut cmd = forge.command(&args);
        // SAFETY: signal, sigemptyset, sigaddset and sigprocmask are async-signal-safe, and the
        // closure allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                for signal in [libc::SIGINT, libc::SIGQUIT, libc::SIGPIPE, libc::SIGHUP] {
                    libc::signal(signal, libc::SIG_IGN);
                }
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGUSR1);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                Ok(())
            })
        };
        let out = common::output(&mut cmd, COMMAND_TIMEOUT);
        assert_eq!(out.code, 0, "{init:?}: {out}");
        assert_eq!(
            out.stdout, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
            "{init:?}"
        );
    }
}

#[test]
fn hostname_defaults_to_the_container_name() {
    let forge = Forge::new();
    let out = forge.ok(&["run", "--rm", "--name", "web-1", "host", "hostname"]);
    assert_eq!(out.stdout.trim(), "web-1");
}

#[test]
fn hostname_defaults_to_a_generated_name() {
    let forge = Forge::new();
    let out = forge.ok(&["run", "host", "hostname"]);
    let id = &forge.container_ids()[0];
    assert_eq!(
        out.stdout.trim(),
        forge.inspect(id)["Config"]["name"],
        "{out}"
    );
}

#[test]
fn hostname_flag_sets_the_hostname() {
    let forge = Forge::new();
    let out = forge.ok(&["run", "--rm", "--hostname", "foo", "host", "hostname"]);
    assert_eq!(out.stdout.trim(), "foo");
}

#[test]
fn etc_hostname_and_hosts_name_the_container() {
    let forge = Forge::new();
    let out = forge.ok(&[
        "run",
        "--rm",
        "-h",
        "foo",
        "host",
        "sh",
        "-c",
        "cat /etc/hostname; grep -c foo /etc/hosts",
    ]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines, ["foo", "1"], "{out}");
}

#[test]
fn host_hostname_is_unchanged_by_a_container() {
    let forge = Forge::new();
    let before = nix::unistd::gethostname().expect("host hostname");
    forge.ok(&[
        "run",
        "--rm",
        "--hostname",
        "not-the-host",
        // Setting the hostname needs CAP_SYS_ADMIN, which containers lack by default.
        "--cap-add",
        "SYS_ADMIN",
        "host",
        "hostname",
        "also-not-the-host",
    ]);
    assert_eq!(nix::unistd::gethostname().expect("host hostname"), before);
}

// ---- filesystem and mounts ----

#[test]
fn home_is_empty() {
    let forge = Forge::new();
    assert_eq!(forge.sh("ls -A /home"), "");
}

#[test]
fn host_files_are_unreachable() {
    let forge = Forge::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = format!("forge-e2e-marker-{}", std::process::id());
    let path = dir.path().join(&marker);
    std::fs::write(&path, "secret").expect("writing the marker");
    let script = format!(
        "test -e {p} && echo reachable; find / -xdev -name {marker} 2>/dev/null; true",
        p = path.display()
    );
    assert_eq!(
        forge.sh(&script),
        "",
        "the host's marker file {} is visible inside",
        path.display()
    );
}

#[test]
fn no_host_mount_is_visible() {
    let forge = Forge::new();
    let host = std::fs::read_to_string("/proc/self/mountinfo").expect("host mountinfo");
    let host: HashSet<(String, String)> = mounts(&host)
        .into_iter()
        .map(|(dev, root, ..)| (dev, root))
        .collect();
    let inside = forge.sh("cat /proc/1/mountinfo");
    // The same filesystem and subtree mounted inside as on the host means a host mount leaked in.
    let leaked: Vec<_> = mounts(&inside)
        .into_iter()
        .filter(|(dev, root, ..)| host.contains(&(dev.clone(), root.clone())))
        .collect();
    assert!(
        leaked.is_empty(),
        "host mounts visible inside: {leaked:?}\nmountinfo inside:\n{inside}"
    );
    for (_, _, point, ..) in mounts(&inside) {
        assert!(
            !point.starts_with("/work") && !point.starts_with("/sys/fs/cgroup"),
            "host mount point {point} inside:\n{inside}"
        );
    }
}

#[test]
fn root_is_an_overlay_with_the_containers_layer_on_top() {
    let forge = Forge::new();
    let inside = forge.sh("cat /proc/1/mountinfo");
    let root = mounts(&inside)
        .into_iter()
        .find(|(_, _, point, ..)| point == "/")
        .expect("a mount at /");
    assert_eq!(root.3, "overlay", "root mount: {root:?}");
    let upper = format!("upperdir={}/containers/", forge.root().display());
    assert!(
        root.4.contains(&upper),
        "the overlay's upper layer is not under the test's data root: {root:?}"
    );
}

#[test]
fn writes_stay_in_the_containers_layer() {
    let forge = Forge::new();
    forge.sh("echo x > /bin/forge-e2e-written");
    assert_eq!(
        forge.sh("ls /bin/forge-e2e-written 2>/dev/null; true"),
        "",
        "a second container sees the first one's write"
    );
    assert!(
        !forge
            .root()
            .join("images/host/rootfs/bin/forge-e2e-written")
            .exists(),
        "the write reached the image"
    );
}

#[test]
fn proc_sys_is_read_only() {
    let forge = Forge::new();
    let out = forge.run(&[
        "run",
        "--rm",
        "host",
        "sh",
        "-c",
        "echo forge > /proc/sys/kernel/domainname",
    ]);
    assert_ne!(out.code, 0, "writing /proc/sys succeeded: {out}");
    assert!(out.stderr.contains("Read-only file system"), "{out}");
}

#[test]
fn sys_is_read_only() {
    let forge = Forge::new();
    let out = forge.run(&["run", "--rm", "host", "mkdir", "/sys/forge-e2e"]);
    assert_ne!(out.code, 0, "creating a directory in /sys succeeded: {out}");
    assert!(out.stderr.contains("Read-only file system"), "{out}");
}

#[test]
fn dev_has_the_standard_devices() {
    let forge = Forge::new();
    let out = forge.sh("cd /dev && for d in null zero full random urandom tty ptmx pts/ptmx; do stat -c '%n %F %t:%T' $d; done");
    let expected = [
        "null character special file 1:3",
        "zero character special file 1:5",
        "full character special file 1:7",
        "random character special file 1:8",
        "urandom character special file 1:9",
        "tty character special file 5:0",
        "pts/ptmx character special file 5:2",
    ];
    for line in expected {
        assert!(
            out.lines().any(|l| l == line),
            "missing {line:?} in /dev:\n{out}"
        );
    }
    // /dev/ptmx may be the device or a link to pts/ptmx; either way it must resolve.
    assert!(
        out.lines().any(|l| l.starts_with("ptmx ")),
        "no /dev/ptmx:\n{out}"
    );
}

#[test]
fn dev_null_and_zero_work() {
    let forge = Forge::new();
    assert_eq!(
        forge
            .sh("echo gone > /dev/null; head -c 5 /dev/zero | wc -c")
            .trim(),
        "5"
    );
}

#[test]
fn dev_shm_is_a_tmpfs_and_dev_pts_a_devpts() {
    let forge = Forge::new();
    let inside = forge.sh("cat /proc/self/mountinfo");
    let fstype = |at: &str| mounts(&inside).into_iter().find(|m| m.2 == at).map(|m| m.3);
    assert_eq!(fstype("/dev/shm").as_deref(), Some("tmpfs"), "{inside}");
    assert_eq!(fstype("/dev/pts").as_deref(), Some("devpts"), "{inside}");
}

// ---- network namespace ----

#[test]
fn network_has_only_loopback_and_it_is_up() {
    let forge = Forge::new();
    let script = "ls /sys/class/net; cat /sys/class/net/lo/flags";
    let out = forge
        .ok(&["run", "--rm", "--net", "none", "host", "sh", "-c", script])
        .stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"lo"), "interfaces: {out}");
    assert_eq!(lines.len(), 2, "interfaces other than lo: {out}");
    let flags = i64::from_str_radix(lines[1].trim_start_matches("0x"), 16).expect("lo flags");
    assert_eq!(
        flags & libc::IFF_UP as i64,
        libc::IFF_UP as i64,
        "lo is down (flags {})",
        lines[1]
    );
}

// ---- environment and working directory ----

#[test]
fn path_is_set_and_finds_commands() {
    let forge = Forge::new();
    let out = forge.sh("echo $PATH; which ls");
    let lines: Vec<&str> = out.lines().collect();
    let path: Vec<&str> = lines[0].split(':').collect();
    assert!(
        path.contains(&"/bin") && path.contains(&"/usr/bin"),
        "PATH={}",
        lines[0]
    );
    assert!(
        lines.get(1).is_some_and(|l| l.ends_with("/ls")),
        "ls not found on PATH: {out}"
    );
}

#[test]
fn env_flag_adds_a_variable() {
    let forge = Forge::new();
    let out = forge.ok(&[
        "run",
        "--rm",
        "-e",
        "GREETING=hello world",
        "host",
        "sh",
        "-c",
        "echo \"$GREETING\"",
    ]);
    assert_eq!(out.stdout.trim(), "hello world");
}

#[test]
fn env_flag_overrides_a_default() {
    let forge = Forge::new();
    let out = forge.ok(&[
        "run",
        "--rm",
        "-e",
        "HOME=/tmp",
        "host",
        "sh",
        "-c",
        "echo $HOME",
    ]);
    assert_eq!(out.stdout.trim(), "/tmp");
}

#[test]
fn later_env_flag_wins() {
    let forge = Forge::new();
    let out = forge.ok(&[
        "run",
        "--rm",
        "-e",
        "X=1",
        "-e",
        "X=2",
        "host",
        "sh",
        "-c",
        "env | grep ^X=",
    ]);
    assert_eq!(out.stdout.trim(), "X=2");
}

#[test]
fn workdir_flag_sets_the_working_directory() {
    let forge = Forge::new();
    let out = forge.ok(&["run", "--rm", "-w", "/tmp", "host", "pwd"]);
    assert_eq!(out.stdout.trim(), "/tmp");
}

#[test]
fn default_working_directory_is_root() {
    let forge = Forge::new();
    assert_eq!(forge.ok(&["run", "--rm", "host", "pwd"]).stdout.trim(), "/");
}

// ---- exit codes ----

#[test]
fn exit_code_is_the_containers() {
    let forge = Forge::new();
    assert_eq!(
        forge
            .run(&["run", "--rm", "host", "sh", "-c", "exit 7"])
            .code,
        7
    );
}

#[test]
fn death_by_sigkill_gives_137() {
    let forge = Forge::new();
    let mut run = forge.spawn(&["run", "--name", "victim", "host", "sleep", "100"]);
    forge.running_pid_of("victim", &mut run);
    forge.ok(&["kill", "-s", "KILL", "victim"]);
    let out = run.finish(COMMAND_TIMEOUT);
    assert_eq!(out.code, 137, "{out}");
}

#[test]
fn death_by_sigterm_with_a_handler_is_reported_by_the_handler() {
    let forge = Forge::new();
    let mut run = forge.spawn(&[
        "run",
        "--name",
        "trapper",
        "host",
        "sh",
        "-c",
        "trap 'exit 42' TERM; while :; do sleep 0.05; done",
    ]);
    forge.running_pid_of("trapper", &mut run);
    // The trap is set as the shell's first act; give kill a few tries in case it is not yet.
    eventually(
        Duration::from_secs(5),
        "the trap to take the SIGTERM",
        || {
            let _ = forge.run(&["kill", "-s", "TERM", "trapper"]);
            std::thread::sleep(Duration::from_millis(100));
            run.has_exited().then_some(())
        },
    );
    let out = run.finish(COMMAND_TIMEOUT);
    assert_eq!(out.code, 42, "{out}");
}

#[test]
fn unknown_command_gives_127_and_names_it() {
    let forge = Forge::new();
    let out = forge.run(&["run", "--rm", "host", "no-such-command-xyz"]);
    assert_eq!(out.code, 127, "{out}");
    assert!(
        out.stderr.contains("no-such-command-xyz"),
        "the error does not name the command: {out}"
    );
}

#[test]
fn non_executable_file_gives_126() {
    let forge = Forge::new();
    let out = forge.run(&["run", "--rm", "host", "/etc/hostname"]);
    assert_eq!(out.code, 126, "{out}");
    assert!(
        out.stderr.contains("/etc/hostname"),
        "the error does not name the file: {out}"
    );
}

// ---- --rm ----

#[test]
fn rm_flag_removes_everything_of_the_container() {
    let forge = Forge::new();
    let out = forge.ok(&[
        "run",
        "--rm",
        "--name",
        "gone",
        "host",
        "sh",
        "-c",
        "cat /proc/self/mountinfo | grep -o 'containers/[0-9a-f]*' | head -1",
    ]);
    let id = out.stdout.trim().trim_start_matches("containers/");
    assert_eq!(id.len(), 64, "could not learn the container's id: {out}");
    assert!(
        !forge.root().join("containers").join(id).exists(),
        "DATA/containers/{id} remains"
    );
    assert!(
        !forge.root().join("run/containers").join(id).exists(),
        "RUN/containers/{id} remains"
    );
    assert!(
        std::fs::symlink_metadata(forge.root().join("names/gone")).is_err(),
        "the name link remains"
    );
    forge.assert_no_containers();
}

#[test]
fn rm_flag_removes_a_failed_container_too() {
    let forge = Forge::new();
    assert_eq!(
        forge
            .run(&["run", "--rm", "--name", "fails", "host", "sh", "-c", "exit 3"])
            .code,
        3
    );
    forge.assert_no_containers();
}

#[test]
fn rm_flag_removes_a_container_whose_command_is_missing() {
    let forge = Forge::new();
    assert_eq!(
        forge
            .run(&["run", "--rm", "host", "no-such-command-xyz"])
            .code,
        127
    );
    forge.assert_no_containers();
}

/// Regression: stage 1's `Pid` message and PID 1's `Ready` share one socket, and under load
/// `Ready` arrived first: "the container's init process ended without a word … after Ready".
#[test]
fn concurrent_starts_all_succeed() {
    let forge = Forge::new();
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..12)
            .map(|_| scope.spawn(|| forge.run(&["run", "--rm", "host", "true"])))
            .collect();
        for run in runs {
            let out = run.join().expect("forge run thread");
            assert_eq!(out.code, 0, "{out}");
        }
    });
}

// ---- --user and --init ----

#[test]
fn user_drops_root_for_the_command() {
    let forge = Forge::new();
    let out = forge.ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "-u",
        "1000:1000",
        "host",
        "sh",
        "-c",
        "id -u; id -g; grep CapEff /proc/self/status; touch /etc/forge-x 2>/dev/null && echo wrote; true",
    ]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(&lines[..2], ["1000", "1000"], "{out}");
    assert!(
        lines[2].ends_with("0000000000000000"),
        "capabilities kept: {out}"
    );
    assert!(
        !out.stdout.contains("wrote"),
        "uid 1000 wrote to /etc: {out}"
    );
    let named = forge.ok(&[
        "run", "--rm", "--net", "none", "-u", "nobody", "host", "id", "-un",
    ]);
    assert_eq!(named.stdout.trim(), "nobody");
}

#[test]
fn unknown_user_is_refused_before_anything_runs() {
    let forge = Forge::new();
    let out = forge.run(&[
        "run",
        "--rm",
        "--net",
        "none",
        "-u",
        "no-such-user",
        "host",
        "true",
    ]);
    assert_eq!(out.code, 125, "{out}");
    assert!(out.stderr.contains("no-such-user"), "{out}");
    forge.assert_no_containers();
}

#[test]
fn init_forwards_signals_and_reaps_orphans() {
    let forge = Forge::new();
    // An orphan (the backgrounded sleep's subshell exits at once) must be reaped by PID 1.
    let out = forge.ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "--init",
        "host",
        "sh",
        "-c",
        "(sleep 0.2 &); sleep 0.6; echo pid=$$; ps -o pid,stat,comm",
    ]);
    assert!(
        out.stdout.contains("pid=2"),
        "the command is not PID 1's child: {out}"
    );
    assert!(
        !out.stdout.lines().any(|l| l.contains(" Z")),
        "a zombie is left: {out}"
    );
    // A shell as PID 1 ignores SIGTERM; behind --init it gets it and stop is quick.
    forge.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "--net",
        "none",
        "--init",
        "host",
        "sh",
        "-c",
        "sleep 100",
    ]);
    let started = std::time::Instant::now();
    forge.ok(&["stop", "-t", "10", "box"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "SIGTERM was not forwarded"
    );
    assert_eq!(forge.exit_of("box")["code"], 143);
    let code = forge.run(&[
        "run", "--rm", "--net", "none", "--init", "host", "sh", "-c", "exit 4",
    ]);
    assert_eq!(code.code, 4, "{code}");
}

#[test]
fn env_files_are_read_in_composes_format_and_env_flags_win() {
    let forge = Forge::new();
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.env");
    let second = dir.path().join("second.env");
    std::fs::write(
        &first,
        "# settings\nexport A=one # a comment\nB=\"two\\tlines\nend\"\nC='$NOT_EXPANDED'\nD=${A}-d\nE=from-file\n",
    )
    .unwrap();
    std::fs::write(&second, "A=again\n").unwrap();
    let out = forge.ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "--env-file",
        first.to_str().unwrap(),
        "--env-file",
        second.to_str().unwrap(),
        "-e",
        "E=from-flag",
        "host",
        "sh",
        "-c",
        "printf '%s|' \"$A\" \"$B\" \"$C\" \"$D\" \"$E\"",
    ]);
    assert_eq!(
        out.stdout,
        "again|two\tlines\nend|$NOT_EXPANDED|one-d|from-flag|"
    );
}
