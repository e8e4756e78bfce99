//! Nothing of a container outlives it: no process, no mount (in any mount namespace), no loop
//! device, no cgroup, no state. Each test checks only its own data root and containers, so the
//! tests run in any order and in parallel with the other test binaries.

mod common;

use std::time::Duration;

use common::{eventually, process_alive, Forge, COMMAND_TIMEOUT};

/// Starts a foreground `forge run --name NAME host sleep 100`, waits until its container runs,
/// SIGKILLs the forge process and returns the host pid of the container's PID 1.
fn kill_foreground_forge(forge: &Forge, name: &str) -> i64 {
    let mut run = forge.spawn(&["run", "--name", name, "host", "sleep", "100"]);
    let pid = forge.running_pid_of(name, &mut run);
    run.kill();
    assert_eq!(run.finish(COMMAND_TIMEOUT).code, 128 + libc::SIGKILL);
    pid
}

#[test]
fn container_dies_with_a_sigkilled_foreground_forge() {
    let forge = Forge::new();
    let pid = kill_foreground_forge(&forge, "orphan");
    eventually(
        Duration::from_secs(5),
        &format!("container pid {pid} to die with its forge"),
        || (!process_alive(pid)).then_some(()),
    );
}

#[test]
fn container_of_a_sigkilled_forge_is_listed_as_exited() {
    let forge = Forge::new();
    let pid = kill_foreground_forge(&forge, "orphan");
    eventually(Duration::from_secs(5), "the container to die", || {
        (!process_alive(pid)).then_some(())
    });
    let line = forge.ps_line(&["-a"], "orphan");
    assert!(
        line.contains("Exited") && !line.contains(" Up "),
        "the killed container is not shown exited: {line}"
    );
    assert_eq!(forge.status("orphan"), "exited");
}

/// Nothing is alive to clean up after a SIGKILLed forge; the next forge command must.
#[test]
fn nothing_is_left_after_a_sigkilled_forge_and_the_next_command() {
    let forge = Forge::new();
    let pid = kill_foreground_forge(&forge, "orphan");
    eventually(Duration::from_secs(5), "the container to die", || {
        (!process_alive(pid)).then_some(())
    });
    forge.ok(&["ps", "-a"]);
    let left = forge.leftovers();
    assert!(
        left.is_empty(),
        "left behind by a SIGKILLed forge run:\n{}",
        left.join("\n")
    );
}

/// A `--rm` container's id, printed by the container itself from its root mount's upper layer.
const PRINT_ID: &str =
    "grep -o 'containers/[0-9a-f]*' /proc/self/mountinfo | head -1 | cut -d/ -f2";

/// Notes the container id that `out` printed (first line) for the leak check.
fn note_printed_id(forge: &Forge, out: &common::Out) {
    let id = out.stdout.lines().next().unwrap_or_default().trim();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "no container id printed: {out}"
    );
    forge.note_ids([id.to_string()]);
}

#[test]
fn nothing_is_left_after_every_kind_of_container() {
    let forge = Forge::new();
    forge.ok(&["run", "--name", "fg", "host", "true"]);
    let script = format!("{PRINT_ID}; sleep 100 & exit 4");
    let auto = forge.run(&["run", "--rm", "host", "sh", "-c", &script]);
    assert_eq!(auto.code, 4, "{auto}");
    note_printed_id(&forge, &auto);
    assert_eq!(
        forge
            .run(&["run", "--rm", "host", "no-such-command-xyz"])
            .code,
        127
    );
    let detached_auto = forge.ok(&["run", "-d", "--rm", "host", "sleep", "0.1"]);
    note_printed_id(&forge, &detached_auto);
    forge.ok(&["run", "-d", "--name", "stopped", "host", "sleep", "100"]);
    forge.ok(&["run", "-d", "--name", "removed", "host", "sleep", "100"]);
    forge.ok(&["run", "-d", "--name", "done", "host", "true"]);
    let mut foreground = forge.spawn(&["run", "--name", "killed", "host", "sleep", "100"]);
    forge.running_pid_of("killed", &mut foreground);
    forge.ok(&["kill", "killed"]);
    assert_eq!(foreground.finish(COMMAND_TIMEOUT).code, 137);
    forge.ok(&["stop", "-t", "1", "stopped"]);
    forge.ok(&["rm", "-f", "removed"]);
    forge.exit_of("done");
    forge.ok(&["rm", "fg", "stopped", "done", "killed"]);
    eventually(
        Duration::from_secs(10),
        "the detached --rm container to go",
        || forge.container_ids().is_empty().then_some(()),
    );

    let left = forge.leftovers();
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
    forge.assert_no_containers();
}

#[test]
fn background_processes_die_with_the_container() {
    let forge = Forge::new();
    let out = forge.sh("sleep 100 & echo $!; sleep 100 & echo $!");
    assert_eq!(out.lines().count(), 2);
    // Their host pids are unknown, but any survivor would still hold the container's mounts.
    let left = forge.leftovers();
    assert!(
        left.is_empty(),
        "background processes survived their container:\n{}",
        left.join("\n")
    );
}

/// The checker above is only worth something if it sees a leak: a process in a private mount
/// namespace holding a tmpfs below the test's root, with the root in its command line (a builtin
/// `read` keeps the shell itself waiting), must show up as both a process and a mount.
#[test]
fn leak_check_finds_a_leftover_process_and_mount() {
    let forge = Forge::new();
    let target = forge.root().join("leak");
    std::fs::create_dir(&target).expect("mkdir");
    let script = format!(
        "mount -t tmpfs forge-e2e-leak {t} && echo mounted && read _ {t}",
        t = target.display()
    );
    let mut leak = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawning unshare");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(leak.stdout.take().expect("piped")),
        &mut line,
    )
    .expect("reading");
    assert_eq!(line.trim(), "mounted");
    let found = common::leftovers(forge.root());
    leak.kill().expect("killing the leak");
    leak.wait().expect("reaping the leak");
    assert!(
        found.iter().any(|l| l.starts_with("process ")),
        "the leftover process was not found: {found:?}"
    );
    assert!(
        found
            .iter()
            .any(|l| l.starts_with("mount ") && l.contains("forge-e2e-leak")),
        "the leftover mount was not found: {found:?}"
    );
    let left = forge.leftovers();
    assert!(
        left.is_empty(),
        "still reported after the leak was killed: {left:?}"
    );
}

#[test]
fn nothing_is_left_after_containers_with_their_own_storage() {
    let forge = Forge::new();
    let script = format!("{PRINT_ID}; echo data > /file");
    let auto = forge.ok(&[
        "run",
        "--rm",
        "--storage",
        "64m",
        "host",
        "sh",
        "-c",
        &script,
    ]);
    note_printed_id(&forge, &auto);
    forge.ok(&[
        "run",
        "-d",
        "--name",
        "big",
        "--storage",
        "64m",
        "host",
        "sleep",
        "100",
    ]);
    forge.running_pid("big");
    forge.ok(&["rm", "-f", "big"]);
    let left = forge.leftovers();
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
    forge.assert_no_containers();
}
