//! `forge exec`: a command joins a running container's namespaces, root, cgroups and environment.

mod common;

use common::Forge;

#[test]
fn exec_runs_inside_the_container() {
    let forge = Forge::new();
    forge.ok(&[
        "run", "-d", "--name", "box", "-e", "FOO=bar", "-w", "/tmp", "host", "sleep", "60",
    ]);
    let out = forge.ok(&[
        "exec", "-e", "EXTRA=1", "box", "sh", "-c",
        "echo pid=$$ foo=$FOO extra=$EXTRA; hostname; pwd; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /home | wc -l",
    ]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("pid=") && !lines[0].starts_with("pid=1 "),
        "{out}"
    );
    let pid: u32 = lines[0][4..].split(' ').next().unwrap().parse().unwrap();
    assert!(pid < 100, "not in the container's PID namespace: {out}");
    assert!(lines[0].ends_with("foo=bar extra=1"), "{out}");
    assert_eq!(&lines[1..4], ["box", "/tmp", "sleep 60 "], "{out}");
    assert_eq!(lines[4], "0", "the host's /home is visible: {out}");
}

#[test]
fn exec_joins_the_cgroups_and_dies_with_the_container() {
    let forge = Forge::new();
    forge.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "--pids-limit",
        "20",
        "host",
        "sleep",
        "60",
    ]);
    let mut exec = forge.spawn(&["exec", "box", "sleep", "60"]);
    let info = forge.inspect("box");
    // Every one of the container's cgroups: one per v1 controller (and hybrid's unified one),
    // or v2's one directory.
    let dirs = common::cgroup::dirs(&info);
    common::eventually(
        std::time::Duration::from_secs(5),
        "exec to join each of the container's cgroups",
        || {
            // PID 1, the joining process and the command.
            dirs.iter()
                .all(|(_, dir)| common::cgroup::procs_in(dir).len() >= 3)
                .then_some(())
        },
    );
    forge.ok(&["rm", "-f", "box"]);
    let out = exec.finish(common::COMMAND_TIMEOUT);
    assert_eq!(
        out.code, 137,
        "the exec'd command outlived its container: {out}"
    );
}

#[test]
fn exec_exit_codes_and_errors() {
    let forge = Forge::new();
    forge.ok(&["run", "-d", "--name", "box", "host", "sleep", "60"]);
    assert_eq!(forge.run(&["exec", "box", "sh", "-c", "exit 3"]).code, 3);
    let missing = forge.run(&["exec", "box", "no-such-command"]);
    assert_eq!(missing.code, 127, "{missing}");
    assert!(missing.stderr.contains("no-such-command"), "{missing}");
    let nobody = forge.run(&["exec", "nobody", "true"]);
    assert_eq!(nobody.code, 125);
    assert!(
        nobody.stderr.contains("no such container: nobody"),
        "{nobody}"
    );
    forge.ok(&["stop", "-t", "1", "box"]);
    let stopped = forge.run(&["exec", "box", "true"]);
    assert_eq!(stopped.code, 125);
    assert!(stopped.stderr.contains("not running"), "{stopped}");
}
