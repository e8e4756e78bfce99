//! Detached containers and the commands that manage them: `run -d`, `ps`, `logs`, `stop`,
//! `kill`, `rm`, and names.

mod common;

use std::time::Duration;

use common::{eventually, process_alive, Forge, COMMAND_TIMEOUT};

/// Starts `sh -c SCRIPT` detached as `name` and returns what `run -d` printed.
fn detached(forge: &Forge, name: &str, script: &str) -> String {
    forge
        .ok(&["run", "-d", "--name", name, "host", "sh", "-c", script])
        .stdout
}

/// Waits until the container's log holds `text`.
fn await_log(forge: &Forge, name: &str, text: &str) {
    eventually(
        Duration::from_secs(10),
        &format!("{text:?} in the log of {name}"),
        || {
            forge
                .ok(&["logs", name])
                .stdout
                .contains(text)
                .then_some(())
        },
    );
}

#[test]
fn detached_run_prints_the_container_id() {
    let forge = Forge::new();
    let out = detached(&forge, "x", "sleep 100");
    let id = out.trim();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "run -d printed {out:?}, not an id"
    );
    assert_eq!(
        forge.container_ids(),
        [id],
        "the printed id is not the container's"
    );
}

#[test]
fn detached_run_returns_while_the_container_runs() {
    let forge = Forge::new();
    detached(&forge, "x", "sleep 100");
    assert_eq!(forge.status("x"), "running");
}

#[test]
fn ps_lists_a_running_container_with_its_pid_command_and_age() {
    let forge = Forge::new();
    detached(&forge, "x", "sleep 100");
    let pid = forge.running_pid("x");
    let line = forge.ps_line(&[], "x");
    assert!(line.contains(" Up "), "x is not shown running: {line}");
    assert!(
        line.split_whitespace().any(|w| w == pid.to_string()),
        "ps does not show pid {pid}: {line}"
    );
    assert!(
        line.contains("sh -c"),
        "ps does not show the command: {line}"
    );
    assert!(line.contains(" ago "), "ps does not show the age: {line}");
}

#[test]
fn ps_hides_exited_containers_and_ps_all_shows_them() {
    let forge = Forge::new();
    forge.ok(&["run", "--name", "done", "host", "true"]);
    let names = |out: String| {
        out.lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().last().map(String::from))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(forge.ok(&["ps"]).stdout), Vec::<String>::new());
    let all = forge.ok(&["ps", "-a"]).stdout;
    assert_eq!(names(all.clone()), ["done"]);
    assert!(all.contains("Exited (0)"), "{all}");
}

#[test]
fn logs_show_a_detached_containers_output() {
    let forge = Forge::new();
    detached(&forge, "x", "echo hi; echo err >&2; sleep 100");
    await_log(&forge, "x", "err");
    let out = forge.ok(&["logs", "x"]).stdout;
    assert_eq!(out.lines().collect::<Vec<_>>(), ["hi", "err"]);
}

#[test]
fn logs_follow_returns_when_the_container_exits() {
    let forge = Forge::new();
    detached(&forge, "x", "echo first; sleep 0.5; echo last");
    let out = forge.ok(&["logs", "-f", "x"]);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["first", "last"],
        "{out}"
    );
    assert_eq!(forge.status("x"), "exited");
}

#[test]
fn stop_ends_a_container_that_ignores_sigterm() {
    let forge = Forge::new();
    detached(&forge, "x", "echo hi; sleep 100");
    let pid = forge.running_pid("x");
    forge.ok(&["stop", "-t", "1", "x"]);
    let exit = forge.inspect("x")["State"].clone();
    assert_eq!(
        exit["status"], "exited",
        "stop returned before the exit was recorded: {exit}"
    );
    let code = exit["exit"]["code"].as_i64();
    assert!(matches!(code, Some(137 | 143)), "exit after stop: {exit}");
    assert!(
        !process_alive(pid),
        "the container's process {pid} is still alive after stop"
    );
}

#[test]
fn stop_lets_a_container_that_handles_sigterm_exit_cleanly() {
    let forge = Forge::new();
    detached(
        &forge,
        "x",
        "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.05; done",
    );
    await_log(&forge, "x", "ready");
    forge.ok(&["stop", "-t", "10", "x"]);
    assert_eq!(forge.inspect("x")["State"]["exit"]["code"], 0);
    assert!(forge.ok(&["logs", "x"]).stdout.contains("bye"));
}

#[test]
fn kill_sends_the_given_signal() {
    let forge = Forge::new();
    detached(
        &forge,
        "x",
        "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done",
    );
    await_log(&forge, "x", "ready");
    forge.ok(&["kill", "-s", "TERM", "x"]);
    assert_eq!(forge.exit_of("x")["code"], 42);
}

#[test]
fn kill_defaults_to_sigkill() {
    let forge = Forge::new();
    detached(&forge, "x", "sleep 100");
    let pid = forge.running_pid("x");
    forge.ok(&["kill", "x"]);
    let exit = forge.exit_of("x");
    assert_eq!(exit["code"], 137, "{exit}");
    assert_eq!(exit["signal"], 9, "{exit}");
    assert!(!process_alive(pid));
}

#[test]
fn rm_refuses_a_running_container_without_force() {
    let forge = Forge::new();
    detached(&forge, "x", "sleep 100");
    let pid = forge.running_pid("x");
    let out = forge.run(&["rm", "x"]);
    assert_ne!(out.code, 0, "rm of a running container succeeded: {out}");
    assert!(
        out.stderr.contains('x') && out.stderr.contains("running"),
        "{out}"
    );
    assert!(process_alive(pid), "rm without -f killed the container");
    assert_eq!(forge.status("x"), "running");
}

#[test]
fn rm_force_kills_and_removes_a_running_container() {
    let forge = Forge::new();
    detached(&forge, "x", "sleep 100");
    let pid = forge.running_pid("x");
    forge.ok(&["rm", "-f", "x"]);
    assert!(
        !process_alive(pid),
        "the container's process {pid} survived rm -f"
    );
    forge.assert_no_containers();
}

#[test]
fn rm_that_cannot_remove_everything_fails_and_names_what_is_left() {
    let forge = Forge::new();
    forge.ok(&["run", "--name", "x", "host", "true"]);
    let id = forge.inspect("x")["Config"]["id"]
        .as_str()
        .expect("container id")
        .to_string();
    // A mount inside the container's data directory makes its removal fail with EBUSY.
    let busy = forge.root().join("containers").join(&id).join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&busy)
        .status()
        .unwrap();
    assert!(mount.success(), "mounting a tmpfs at {}", busy.display());
    let out = forge.run(&["rm", "x"]);
    let umount = std::process::Command::new("umount").arg(&busy).status();
    assert!(
        umount.is_ok_and(|s| s.success()),
        "unmounting {}",
        busy.display()
    );
    assert_ne!(
        out.code, 0,
        "rm of a container it could not remove succeeded: {out}"
    );
    assert!(
        out.stderr.contains(&id),
        "rm did not name what is left: {out}"
    );
    let _ = std::fs::remove_dir_all(forge.root().join("containers").join(&id));
}

#[test]
fn rm_removes_an_exited_container() {
    let forge = Forge::new();
    forge.ok(&["run", "--name", "x", "host", "true"]);
    assert_eq!(forge.container_ids().len(), 1);
    forge.ok(&["rm", "x"]);
    forge.assert_no_containers();
}

#[test]
fn detached_rm_flag_removes_the_container_when_it_exits() {
    let forge = Forge::new();
    forge.ok(&["run", "-d", "--rm", "--name", "x", "host", "sleep", "0.2"]);
    // Its name goes last, after its files.
    eventually(
        Duration::from_secs(10),
        "the --rm container and its name to be removed",
        || {
            let gone = ["containers", "run/containers", "names"]
                .iter()
                .all(|dir| forge.entries(dir).is_empty());
            gone.then_some(())
        },
    );
    forge.assert_no_containers();
}

#[test]
fn name_in_use_is_refused_and_creates_nothing() {
    let forge = Forge::new();
    detached(&forge, "taken", "sleep 100");
    let before = forge.container_ids();
    let out = forge.run(&["run", "--name", "taken", "host", "true"]);
    assert_eq!(out.code, 125, "{out}");
    assert_eq!(out.stderr_lines().len(), 1, "not one error line: {out}");
    assert!(
        out.stderr.contains("taken"),
        "the error does not name the name: {out}"
    );
    assert_eq!(
        forge.container_ids(),
        before,
        "a container was created anyway"
    );
    assert_eq!(forge.entries("run/containers").len(), 1);
}

#[test]
fn name_is_free_again_after_rm() {
    let forge = Forge::new();
    forge.ok(&["run", "--name", "again", "host", "true"]);
    forge.ok(&["rm", "again"]);
    forge.ok(&["run", "--name", "again", "host", "true"]);
}

#[test]
fn generated_names_are_unique() {
    let forge = Forge::new();
    for _ in 0..5 {
        forge.ok(&["run", "host", "true"]);
    }
    let mut names = forge.entries("names");
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 5, "names: {names:?}");
}

#[test]
fn commands_accept_an_id_prefix() {
    let forge = Forge::new();
    let id = detached(&forge, "x", "sleep 100").trim().to_string();
    let state = forge.inspect(&id[..12]);
    assert_eq!(state["Config"]["name"], "x");
    forge.ok(&["rm", "-f", &id[..12]]);
    forge.assert_no_containers();
}

#[test]
fn logs_follow_streams_output_as_it_comes() {
    let forge = Forge::new();
    detached(
        &forge,
        "x",
        "echo one; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo two",
    );
    let mut follower = forge.spawn(&["logs", "-f", "x"]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !follower.has_exited(),
        "logs -f returned while the container runs"
    );
    // Release the container from inside: a file in its own filesystem.
    let pid = forge.running_pid("x");
    std::fs::write(format!("/proc/{pid}/root/tmp/go"), "")
        .expect("writing into the container's /tmp");
    let out = follower.finish(COMMAND_TIMEOUT);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["one", "two"],
        "{out}"
    );
}

/// Regression: `forge inspect` racing the monitor overwrote the exit the monitor had just
/// recorded with 255 "monitor lost". Polling `inspect` while containers exit is what users do;
/// several pollers per container make the race likely.
#[test]
fn inspect_racing_the_exit_keeps_the_recorded_exit_code() {
    let forge = Forge::new();
    for i in 0..10 {
        let name = format!("racer{i}");
        detached(&forge, &name, "sleep 0.1; exit 3");
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| forge.exit_of(&name));
            }
        });
        let exit = forge.exit_of(&name);
        assert_eq!(exit["code"], 3, "container {name}: {exit}");
    }
}

/// `forge inspect X | head -1` must not end in a Rust panic when the reader goes away.
#[test]
fn inspect_into_a_closed_pipe_does_not_panic() {
    let forge = Forge::new();
    forge.ok(&["run", "--name", "x", "host", "true"]);
    let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
    drop(read_end);
    let out = forge
        .command(&["inspect", "x"])
        .stdout(std::process::Stdio::from(write_end))
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("running forge inspect");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "forge inspect panicked on a closed pipe:\n{stderr}"
    );
}
