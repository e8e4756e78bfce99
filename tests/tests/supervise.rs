//! `forge-supervise` end to end, against the real kernel: the demo, `depends_on` conditions,
//! restart policies and backoff, the stop sequence, recovery after a SIGKILL, the corpus of
//! malformed files, and `--abort-on-container-exit` / `--exit-code-from`.
//!
//! Each test writes its compose file into a temp dir and runs the supervisor in the background
//! inside its Forge's private network namespace, reading its output line by line as it comes
//! (see `common::supervisor`).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::supervisor::{
    assert_torn_down, compose_file, compose_file_named, daemon, parse_debug_duration,
    report_then_wait, restart_delay, stop_cleanly, terminate, Supervisor, UP,
};
use common::{
    cgroups_named, mounts_naming, process_alive, scaled, workspace_file, Forge, COMMAND_TIMEOUT,
};
use nix::sys::signal::Signal;

// ---------------------------------------------------------------------------------------------
// 1. The demo.

#[test]
fn the_demo_comes_up_client_reaches_web_by_name_and_sigterm_cleans_up() {
    let forge = Forge::new();
    let demo = workspace_file("configs/demo.toml");
    let mut sup = Supervisor::start(&forge, "demo", &demo, &[]);

    let hello = sup.wait_output("client", "the page from web", |t| t == "hello from web");
    let ping = sup.wait_output("client", "a ping reply", |t| {
        t.starts_with("64 bytes from ")
    });
    let web_ip = forge.inspect("demo-web")["State"]["ip"]
        .as_str()
        .expect("web has an address")
        .to_string();
    assert!(
        ping.text.starts_with(&format!("64 bytes from {web_ip}: ")),
        "client pinged `web` but the reply is not from web's address {web_ip}: {:?}\n{}",
        ping.text,
        sup.dump()
    );
    let healthy = sup.wait_event("web", "healthy", 1);
    let client = sup.wait_event("client", "started (pid", 1);
    assert!(
        healthy.index < client.index,
        "client (service_healthy) started before web was healthy:\n{}",
        sup.dump()
    );
    // stdout and stderr are read by separate threads, and the container may print before the
    // supervisor logs its start: compare with web's health, long before client could start.
    assert!(hello.at >= healthy.at, "{}", sup.dump());
    // Output is prefixed with the service name padded to the longest one, without colour.
    sup.wait_output("flaky", "its first line", |t| t == "up; failing in 2 s");
    assert!(
        sup.out.text().contains("flaky  | up; failing in 2 s\n"),
        "{}",
        sup.dump()
    );
    assert!(
        !sup.out.text().contains('\x1b'),
        "colour on a pipe:\n{}",
        sup.dump()
    );

    let web = forge.ps_line(&["-a"], "demo-web");
    assert!(
        web.contains("Up ") && web.contains("(healthy)"),
        "forge ps: {web}"
    );
    assert!(forge.ps_line(&["-a"], "demo-client").contains("Up "));
    let web_pid = sup.started_pid("web");
    assert!(process_alive(web_pid));

    let (code, took) = terminate(&mut sup);
    assert_eq!(code, 0, "exit code after SIGTERM:\n{}", sup.dump());
    assert!(
        sup.err
            .text()
            .contains("stopping, press Ctrl-C again to force"),
        "{}",
        sup.dump()
    );
    // Every service traps SIGTERM: none is killed at the end of its grace period (web's is
    // 3 s). The supervisor's own report says so whatever the machine's speed.
    for service in ["web", "client", "flaky"] {
        let killed = sup.events_starting(service, "did not stop within");
        assert!(
            killed.is_empty(),
            "{service} had to be killed (the stop took {took:?}):\n{}",
            sup.dump()
        );
        for exit in sup.events_starting(service, "exited with code") {
            assert!(
                !exit.message.contains("SIGKILL"),
                "{service} was killed: {:?}\n{}",
                exit.message,
                sup.dump()
            );
        }
    }
    assert!(!process_alive(web_pid), "web's process survived the stop");
    assert_torn_down(&forge);
}

#[test]
fn the_demos_flaky_service_restarts_with_growing_delays_and_gives_up_after_five() {
    let forge = Forge::new();
    // The demo with flaky failing after 0.2 s instead of 2 s.
    let demo = std::fs::read_to_string(workspace_file("configs/demo.toml")).expect("the demo");
    let (head, flaky) = demo
        .split_once("[services.flaky]")
        .expect("the demo has a flaky service");
    let quick = flaky.replace("sleep 2 & wait $!", "sleep 0.2 & wait $!");
    assert_ne!(
        quick, flaky,
        "the demo's flaky service no longer sleeps 2 s"
    );
    let file = compose_file(&format!("{head}[services.flaky]{quick}"));
    let mut sup = Supervisor::start(&forge, "demo", &file.path, &[]);

    sup.wait_event("flaky", "exited with code", 6);
    // A restart would be announced right after the exit; give it ample time not to come.
    std::thread::sleep(Duration::from_millis(500));
    let exits = sup.events_starting("flaky", "exited with code");
    assert_eq!(exits.len(), 6, "{}", sup.dump());
    for exit in &exits {
        assert_eq!(
            exit.message,
            "exited with code 1 (exited)",
            "{}",
            sup.dump()
        );
    }
    let restarts = sup.events_starting("flaky", "restarting in ");
    let delays: Vec<&str> = restarts.iter().map(|e| restart_delay(&e.message)).collect();
    assert_eq!(
        delays,
        ["100ms", "200ms", "400ms", "800ms", "1.6s"],
        "{}",
        sup.dump()
    );
    for (n, restart) in restarts.iter().enumerate() {
        assert!(
            restart
                .message
                .ends_with(&format!("(exit code 1, exited; restart {})", n + 1)),
            "restart {}: {:?}",
            n + 1,
            restart.message
        );
    }
    let starts = sup.events_starting("flaky", "started (pid ");
    assert_eq!(starts.len(), 6, "{}", sup.dump());
    // Each restart really waited its delay (and not much longer).
    for (restart, next) in restarts.iter().zip(&starts[1..]) {
        let delay = parse_debug_duration(restart_delay(&restart.message));
        let waited = next.at.duration_since(restart.at);
        assert!(
            waited + Duration::from_millis(50) >= delay,
            "restarted after {waited:?}, announced {delay:?}:\n{}",
            sup.dump()
        );
        // The slack is the container's start, which software emulation stretches.
        assert!(
            waited < delay + scaled(Duration::from_secs(2)),
            "restarted after {waited:?}, announced {delay:?}:\n{}",
            sup.dump()
        );
    }
    assert_eq!(
        sup.output("flaky")
            .iter()
            .filter(|l| l.text == "exiting with 1")
            .count(),
        6
    );
    let flaky_ps = forge.ps_line(&["-a"], "demo-flaky");
    assert!(
        flaky_ps.contains("Exited (1)") && flaky_ps.contains("5 restarts"),
        "forge ps -a: {flaky_ps}"
    );

    stop_cleanly(&forge, &mut sup);
}

// ---------------------------------------------------------------------------------------------
// 2. depends_on.

#[test]
fn depends_on_service_started_waits_for_the_start_only() {
    let forge = Forge::new();
    // base's health check would first run after 30 s: started, but neither healthy nor done.
    let file = compose_file(&format!(
        r#"
[services.base]
image = "host"
command = {base}
healthcheck = {{ test = ["CMD", "true"], interval = "30s" }}

[services.table]
image = "host"
depends_on = {{ base = {{ condition = "service_started" }} }}
command = {table}

[services.list]
image = "host"
depends_on = ["base"]
command = {list}
"#,
        base = daemon("base", "0"),
        table = daemon("table", "0"),
        list = daemon("list", "0"),
    ));
    let mut sup = Supervisor::start(&forge, "started", &file.path, &[]);
    let base = sup.wait_event("base", "started (pid", 1);
    for dependant in ["table", "list"] {
        let started = sup.wait_event(dependant, "started (pid", 1);
        assert!(
            base.index < started.index,
            "{dependant} started before base:\n{}",
            sup.dump()
        );
        sup.wait_output(dependant, "that it is up", |t| t.ends_with(" up"));
    }
    assert!(
        sup.events_starting("base", "healthy").is_empty(),
        "{}",
        sup.dump()
    );
    stop_cleanly(&forge, &mut sup);
}

#[test]
fn depends_on_service_healthy_starts_the_dependant_only_once_healthy() {
    let forge = Forge::new();
    // web turns healthy once /tmp/ready exists, a second after it started; failed probes in
    // the start period do not count.
    let file = compose_file(&format!(
        r#"
[services.web]
image = "host"
command = ["sh", "-c", '''
trap 'exit 0' TERM
sleep 1
touch /tmp/ready
echo web ready
while true; do sleep 1 & wait $!; done
''']

[services.web.healthcheck]
test = ["CMD-SHELL", "test -f /tmp/ready"]
interval = "200ms"
retries = 2
start_period = "5s"

[services.app]
image = "host"
depends_on = {{ web = {{ condition = "service_healthy" }} }}
command = {app}
"#,
        app = daemon("app", "0"),
    ));
    let mut sup = Supervisor::start(&forge, "healthy", &file.path, &[]);
    let web = sup.wait_event("web", "started (pid", 1);
    let app = sup.wait_event("app", "started (pid", 1);
    let healthy = sup.wait_event("web", "healthy", 1);
    assert!(
        healthy.index < app.index,
        "app started before web was healthy:\n{}",
        sup.dump()
    );
    assert!(
        app.at.duration_since(web.at) >= Duration::from_millis(900),
        "app started {:?} after web, which needs 1 s to be ready:\n{}",
        app.at.duration_since(web.at),
        sup.dump()
    );
    assert!(
        sup.events_starting("web", "unhealthy").is_empty(),
        "{}",
        sup.dump()
    );
    sup.wait_output("app", "that it is up", |t| t == "app up");
    assert!(forge.ps_line(&["-a"], "healthy-web").contains("(healthy)"));
    stop_cleanly(&forge, &mut sup);
}

#[test]
fn depends_on_service_completed_successfully_waits_for_a_zero_exit() {
    let forge = Forge::new();
    let file = compose_file(&format!(
        r#"
[services.job]
image = "host"
command = ["sh", "-c", "sleep 0.5; echo job done; true"]

[services.app]
image = "host"
depends_on = {{ job = {{ condition = "service_completed_successfully" }} }}
command = {app}

[services.failing]
image = "host"
command = ["sh", "-c", "sleep 0.3; exit 1"]

[services.blocked]
image = "host"
depends_on = {{ failing = {{ condition = "service_completed_successfully" }} }}
command = {blocked}
"#,
        app = daemon("app", "0"),
        blocked = daemon("blocked", "0"),
    ));
    let mut sup = Supervisor::start(&forge, "completed", &file.path, &[]);
    let done = sup.wait_event("job", "exited with code 0", 1);
    let app = sup.wait_event("app", "started (pid", 1);
    assert!(
        done.index < app.index,
        "app started before job completed:\n{}",
        sup.dump()
    );
    sup.wait_output("app", "that it is up", |t| t == "app up");
    let refused = sup.wait_event("blocked", "not starting", 1);
    assert!(
        refused.message.contains("failing") && refused.message.contains("code 1"),
        "blocked should say that failing exited with code 1: {:?}",
        refused.message
    );
    assert!(
        sup.events_starting("blocked", "started").is_empty(),
        "{}",
        sup.dump()
    );
    assert!(
        sup.events_starting("job", "restarting").is_empty(),
        "{}",
        sup.dump()
    );
    sup.signal(Signal::SIGTERM);
    let code = sup.finish(UP);
    assert_torn_down(&forge);
    // "non-zero when a service could not be started" (issue 5), as `docker compose up` does.
    assert_ne!(
        code,
        0,
        "a service could not be started, yet the exit code is 0:\n{}",
        sup.dump()
    );
}

#[test]
fn a_dependency_that_never_becomes_healthy_keeps_its_dependant_from_starting() {
    let forge = Forge::new();
    let file = compose_file(&format!(
        r#"
[services.sick]
image = "host"
command = {sick}
healthcheck = {{ test = ["CMD", "false"], retries = 1, interval = "200ms" }}

[services.app]
image = "host"
depends_on = {{ sick = {{ condition = "service_healthy" }} }}
command = {app}
"#,
        sick = daemon("sick", "0"),
        app = daemon("app", "0"),
    ));
    let mut sup = Supervisor::start(&forge, "sick", &file.path, &[]);
    let unhealthy = sup.wait_event("sick", "unhealthy", 1);
    let refused = sup.wait_event("app", "not starting", 1);
    assert!(
        refused.message.contains("sick") && refused.message.contains("unhealthy"),
        "app should say that sick is unhealthy: {:?}",
        refused.message
    );
    assert!(unhealthy.index < refused.index, "{}", sup.dump());
    assert!(
        refused.at.duration_since(unhealthy.at) < Duration::from_secs(2),
        "{}",
        sup.dump()
    );
    // Still not started a while later, and no container for it.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        sup.events_starting("app", "started").is_empty(),
        "{}",
        sup.dump()
    );
    assert!(sup.output("app").is_empty(), "{}", sup.dump());
    let ps = forge.ps(&["-a"]);
    assert!(
        !ps.iter().any(|l| l.ends_with(" sick-app")),
        "forge ps -a:\n{}",
        ps.join("\n")
    );
    assert!(forge.ps_line(&["-a"], "sick-sick").contains("(unhealthy)"));
    sup.signal(Signal::SIGTERM);
    let code = sup.finish(UP);
    assert_torn_down(&forge);
    // "non-zero when a service could not be started" (issue 5), as `docker compose up` does.
    assert_ne!(
        code,
        0,
        "app could not be started, yet the exit code is 0:\n{}",
        sup.dump()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Restart policies and backoff.

#[test]
fn restart_always_restarts_after_exit_zero_with_the_global_backoff() {
    let forge = Forge::new();
    let file = compose_file(
        r#"
[x-backoff]
initial = "50ms"

[services.again]
image = "host"
command = ["sh", "-c", "echo run; sleep 0.1; exit 0"]
restart = "always"
"#,
    );
    let mut sup = Supervisor::start(&forge, "always", &file.path, &[]);
    sup.wait_event("again", "started (pid", 4);
    let restarts = sup.events_starting("again", "restarting in ");
    assert!(restarts.len() >= 3, "{}", sup.dump());
    let delays: Vec<&str> = restarts[..3]
        .iter()
        .map(|e| restart_delay(&e.message))
        .collect();
    assert_eq!(delays, ["50ms", "100ms", "200ms"], "{}", sup.dump());
    for restart in &restarts {
        assert!(
            restart.message.contains("(exit code 0, exited; "),
            "{}",
            sup.dump()
        );
    }
    assert!(sup.output("again").len() >= 3, "{}", sup.dump());
    stop_cleanly(&forge, &mut sup);
}

#[test]
fn quick_restarts_of_the_same_container_keep_working() {
    let forge = Forge::new();
    // A restarted service reuses its container (and so its veth's name) right after the
    // previous run's network namespace died.
    let file = compose_file(
        r#"
[services.rapid]
image = "host"
command = ["true"]
restart = "always"
x-backoff = { initial = "1ms", max = "1ms" }
"#,
    );
    let mut sup = Supervisor::start(&forge, "rapid", &file.path, &[]);
    sup.until(UP, "30 starts, or an error", |s| {
        let started = s.events_starting("rapid", "started (pid").len();
        let failed = s.events_starting("rapid", "cannot start").len();
        (started >= 30 || failed > 0).then_some(())
    });
    forge.note_ids(forge.container_ids());
    assert!(
        sup.events_starting("rapid", "cannot start").is_empty(),
        "a restart failed:\n{}",
        sup.dump()
    );
    stop_cleanly(&forge, &mut sup);
}

#[test]
fn restart_no_never_restarts_and_the_supervisor_ends_when_all_are_done() {
    let forge = Forge::new();
    let file = compose_file(
        r#"
[services.ok]
image = "host"
command = ["sh", "-c", "echo once; exit 0"]
restart = "no"

[services.fails]
image = "host"
command = ["sh", "-c", "echo once; exit 1"]

[services.fine]
image = "host"
command = ["sh", "-c", "echo once; exit 0"]
restart = "on-failure"
"#,
    );
    let mut sup = Supervisor::start(&forge, "never", &file.path, &[]);
    // Nothing to restart, nothing left running: the supervisor ends by itself.
    let code = sup.finish(UP);
    for (service, exit) in [("ok", 0), ("fails", 1), ("fine", 0)] {
        assert_eq!(
            sup.events_starting(service, "started (pid").len(),
            1,
            "{service}:\n{}",
            sup.dump()
        );
        let exits = sup.events_starting(service, "exited with code");
        assert_eq!(exits.len(), 1, "{service}:\n{}", sup.dump());
        assert!(
            exits[0]
                .message
                .starts_with(&format!("exited with code {exit} ")),
            "{}",
            sup.dump()
        );
        assert!(
            sup.events_starting(service, "restarting").is_empty(),
            "{service} restarted:\n{}",
            sup.dump()
        );
        let lines: Vec<String> = sup.output(service).into_iter().map(|l| l.text).collect();
        assert_eq!(lines, ["once"], "{service}:\n{}", sup.dump());
    }
    eprintln!("forge-supervise exited {code} after its services ended by themselves");
    assert_torn_down(&forge);
}

#[test]
fn backoff_grows_and_resets_after_a_run_longer_than_reset_after() {
    let forge = Forge::new();
    // Runs 3 and 6 last 1.6 s (longer than reset_after), the others exit at once; the counter
    // lives in the container's writable layer, which persists across restarts. Both times
    // stretch under emulation, where even a run that exits at once takes a while; on a loaded
    // host such a run took over 300 ms, so reset_after leaves it 800.
    let reset_after = common::scaled(Duration::from_millis(800)).as_millis();
    let long_run = common::scaled(Duration::from_millis(1600)).as_secs_f64();
    let file = compose_file(&format!(
        r#"
[services.bouncy]
image = "host"
command = ["sh", "-c", '''
n=$(cat /tmp/n 2>/dev/null || echo 0)
n=$((n + 1))
echo $n > /tmp/n
echo run $n
if [ $((n % 3)) -eq 0 ]; then sleep {long_run}; fi
exit 1
''']
restart = "on-failure"
x-backoff = {{ initial = "50ms", reset_after = "{reset_after}ms" }}
"#
    ));
    let mut sup = Supervisor::start(&forge, "bouncy", &file.path, &[]);
    sup.wait_event("bouncy", "restarting in ", 6);
    let delays: Vec<String> = sup
        .events_starting("bouncy", "restarting in ")
        .iter()
        .take(6)
        .map(|e| restart_delay(&e.message).to_string())
        .collect();
    assert_eq!(
        delays,
        ["50ms", "100ms", "50ms", "100ms", "200ms", "50ms"],
        "{}",
        sup.dump()
    );
    let runs: Vec<String> = sup
        .output("bouncy")
        .into_iter()
        .take(6)
        .map(|l| l.text)
        .collect();
    assert_eq!(
        runs,
        ["run 1", "run 2", "run 3", "run 4", "run 5", "run 6"],
        "{}",
        sup.dump()
    );
    stop_cleanly(&forge, &mut sup);
}

// ---------------------------------------------------------------------------------------------
// 4. Stopping, and recovering from a killed supervisor.

#[test]
fn sigterm_stops_in_reverse_dependency_order_within_the_grace_periods() {
    let forge = Forge::new();
    // a <- b <- c; each takes 0.3 s to stop. d ignores SIGTERM and is killed after 1 s.
    let file = compose_file(&format!(
        r#"
[services.a]
image = "host"
command = {a}
stop_grace_period = "2s"

[services.b]
image = "host"
depends_on = ["a"]
command = {b}
stop_grace_period = "2s"

[services.c]
image = "host"
depends_on = ["b"]
command = {c}
stop_grace_period = "2s"

[services.d]
image = "host"
command = ["sh", "-c", "trap '' TERM; echo d up; while true; do sleep 1; done"]
stop_grace_period = "1s"
"#,
        a = daemon("a", "0.3"),
        b = daemon("b", "0.3"),
        c = daemon("c", "0.3"),
    ));
    let mut sup = Supervisor::start(&forge, "order", &file.path, &[]);
    for service in ["a", "b", "c", "d"] {
        sup.wait_output(service, "that it is up", |t| t.ends_with(" up"));
    }
    let start_order: Vec<usize> = ["a", "b", "c"]
        .iter()
        .map(|s| sup.wait_event(s, "started (pid", 1).index)
        .collect();
    assert!(
        start_order.windows(2).all(|w| w[0] < w[1]),
        "not started in dependency order:\n{}",
        sup.dump()
    );
    let pids: Vec<i64> = ["a", "b", "c", "d"]
        .iter()
        .map(|s| sup.started_pid(s))
        .collect();
    forge.note_ids(forge.container_ids());

    let (code, took) = terminate(&mut sup);
    assert_eq!(code, 0, "{}", sup.dump());
    let stdout: Vec<String> = sup.out.lines().into_iter().map(|(_, l)| l).collect();
    let position = |service: &str, text: &str| {
        sup.output(service)
            .iter()
            .find(|l| l.text == text)
            .map(|l| l.index)
            .unwrap_or_else(|| panic!("{service} never printed {text:?}:\n{}", sup.dump()))
    };
    let sequence: Vec<usize> = ["c", "b", "a"]
        .iter()
        .flat_map(|s| {
            [
                position(s, &format!("{s} stopping")),
                position(s, &format!("{s} stopped")),
            ]
        })
        .collect();
    assert!(
        sequence.windows(2).all(|w| w[0] < w[1]),
        "not stopped one after the other in the order c, b, a:\n{}",
        stdout.join("\n")
    );
    let killed = sup.events_starting("d", "did not stop within 1s");
    assert_eq!(killed.len(), 1, "{}", sup.dump());
    let d_exit = sup.wait_event("d", "exited with code", 1);
    assert!(
        d_exit.message.contains("137") && d_exit.message.contains("SIGKILL"),
        "{}",
        sup.dump()
    );
    // c, b and a one after the other (0.9 s), d killed after 1 s at the same time: far less
    // than the 7 s the grace periods add up to.
    assert!(
        took >= Duration::from_millis(900),
        "the stop took only {took:?}:\n{}",
        sup.dump()
    );
    assert!(
        took < Duration::from_secs(5),
        "the stop took {took:?}:\n{}",
        sup.dump()
    );
    for pid in pids {
        assert!(!process_alive(pid), "pid {pid} survived the stop");
    }
    assert_torn_down(&forge);
}

#[test]
fn a_second_signal_kills_at_once_without_waiting_for_the_grace_period() {
    let forge = Forge::new();
    let file = compose_file(
        r#"
[services.stubborn]
image = "host"
command = ["sh", "-c", "trap '' TERM INT; echo stubborn up; while true; do sleep 1; done"]
stop_grace_period = "30s"
"#,
    );
    let mut sup = Supervisor::start(&forge, "stubborn", &file.path, &[]);
    sup.wait_output("stubborn", "that it is up", |t| t == "stubborn up");
    let pid = sup.started_pid("stubborn");
    forge.note_ids(forge.container_ids());
    let t0 = Instant::now();
    // Ctrl-C: a clean stop, which this service ignores...
    sup.signal(Signal::SIGINT);
    sup.wait_event("stubborn", "stopping (SIGTERM)", 1);
    std::thread::sleep(Duration::from_millis(200));
    assert!(sup.exited().is_none(), "{}", sup.dump());
    // ...and a second signal kills it at once.
    sup.signal(Signal::SIGTERM);
    let code = sup.finish(UP);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the forced stop took {took:?} (grace period 30 s):\n{}",
        sup.dump()
    );
    assert!(
        sup.err
            .text()
            .contains("stopping, press Ctrl-C again to force"),
        "{}",
        sup.dump()
    );
    assert!(!process_alive(pid), "pid {pid} survived");
    eprintln!("forge-supervise exited {code} after a forced stop");
    assert_torn_down(&forge);
}

/// What of a supervisor's run could leak, for a before/after comparison.
#[derive(Debug, PartialEq)]
struct Snapshot {
    links: Vec<String>,
    ruleset: String,
}

fn snapshot(forge: &Forge) -> Snapshot {
    let mut links = forge.netns.links();
    links.sort();
    Snapshot {
        links,
        ruleset: forge.netns.ok("nft", &["list", "ruleset"]),
    }
}

#[test]
fn after_a_sigkill_the_next_start_cleans_up_what_the_killed_run_left() {
    let forge = Forge::new();
    let before = snapshot(&forge);
    let file = compose_file(&format!(
        r#"
[services.web]
image = "host"
command = {web}
ports = ["8080:80"]

[services.worker]
image = "host"
depends_on = ["web"]
command = {worker}
"#,
        web = daemon("web", "0"),
        worker = daemon("worker", "0"),
    ));

    let mut first = Supervisor::start(&forge, "killed", &file.path, &[]);
    for service in ["web", "worker"] {
        first.wait_output(service, "that it is up", |t| t.ends_with(" up"));
    }
    let old_pids: Vec<i64> = ["web", "worker"]
        .iter()
        .map(|s| first.started_pid(s))
        .collect();
    let old_ids: BTreeSet<String> = forge.container_ids().into_iter().collect();
    assert_eq!(old_ids.len(), 2, "{old_ids:?}");
    forge.note_ids(old_ids.clone());
    let old_veths: Vec<String> = forge
        .netns
        .links()
        .into_iter()
        .filter(|l| l.starts_with("fg"))
        .collect();
    assert_eq!(old_veths.len(), 2, "veths of the first run: {old_veths:?}");
    assert!(
        !cgroups_named(&old_ids).is_empty(),
        "the containers have cgroups"
    );
    assert!(
        !mounts_naming(&old_ids).is_empty(),
        "the containers have mounts"
    );

    let first_rules = forge.netns.ok("nft", &["list", "ruleset"]);
    assert!(first_rules.contains("dport 8080"), "{first_rules}");
    first.signal(Signal::SIGKILL);
    assert_eq!(first.finish(UP), 128 + 9, "{}", first.dump());
    // The containers die with the supervisor.
    common::eventually(
        Duration::from_secs(5),
        "the first run's processes to die",
        || {
            old_pids
                .iter()
                .all(|&pid| !process_alive(pid))
                .then_some(())
        },
    );

    let mut second = Supervisor::start(&forge, "killed", &file.path, &[]);
    for service in ["web", "worker"] {
        second.wait_output(service, "that it is up", |t| t == format!("{service} up"));
    }
    let new_ids: BTreeSet<String> = forge.container_ids().into_iter().collect();
    forge.note_ids(new_ids.clone());
    assert_eq!(new_ids.len(), 2, "{new_ids:?}");
    assert!(
        new_ids.is_disjoint(&old_ids),
        "the killed run's containers are still there: old {old_ids:?}, now {new_ids:?}"
    );
    for pid in &old_pids {
        assert!(!process_alive(*pid), "pid {pid} of the killed run is alive");
    }
    let left = common::settled(|| {
        let mut found = cgroups_named(&old_ids);
        found.extend(mounts_naming(&old_ids));
        let links = forge.netns.links();
        found.extend(
            old_veths
                .iter()
                .filter(|v| links.contains(v))
                .map(|v| format!("veth {v}")),
        );
        let state =
            std::fs::read_to_string(forge.root().join("networks/state.json")).unwrap_or_default();
        found.extend(
            old_ids
                .iter()
                .filter(|id| state.contains(id.as_str()))
                .map(|id| format!("address lease of {id}")),
        );
        found
    });
    assert!(
        left.is_empty(),
        "left by the killed run:\n{}\n{}",
        left.join("\n"),
        second.dump()
    );
    let links = forge.netns.links();
    assert_eq!(
        links.iter().filter(|l| l.starts_with("fg")).count(),
        2,
        "veths during the second run: {links:?}"
    );
    assert_eq!(
        links
            .iter()
            .filter(|l| !l.starts_with("fg") && *l != "lo")
            .count(),
        1,
        "one bridge during the second run: {links:?}"
    );
    // The same rules as in the first run: no stale port mapping, no address still leased.
    assert_eq!(
        forge.netns.ok("nft", &["list", "ruleset"]),
        first_rules,
        "nftables rules of the second run differ from the first's"
    );
    // The second run works: web is published and the services run.
    assert!(forge.ps_line(&["-a"], "killed-web").contains("Up "));
    assert!(forge.ps_line(&["-a"], "killed-worker").contains("Up "));

    let (code, _) = terminate(&mut second);
    assert_eq!(code, 0, "{}", second.dump());
    assert_eq!(
        snapshot(&forge),
        before,
        "the namespace differs from before"
    );
    let all: BTreeSet<String> = old_ids.union(&new_ids).cloned().collect();
    assert_eq!(cgroups_named(&all), Vec::<String>::new());
    assert_eq!(mounts_naming(&all), Vec::<String>::new());
    assert_torn_down(&forge);
}

// ---------------------------------------------------------------------------------------------
// 5. Malformed files.

/// `(LINE:COL, phrase)` from a corpus file's `# expect: LINE:COL phrase` first line.
fn expectation(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).expect("reading a corpus file");
    let first = text.lines().next().unwrap_or_default();
    let rest = first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{}: no `# expect:` line", path.display()));
    let (position, phrase) = rest.split_once(' ').expect("LINE:COL then a phrase");
    (position.to_string(), phrase.to_string())
}

#[test]
fn every_malformed_file_exits_2_with_one_located_error_and_starts_nothing() {
    let forge = Forge::new();
    let dir = workspace_file("supervisor/tests/bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the corpus")
        .map(|e| e.expect("a corpus entry").path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "toml" || e == "yaml" || e == "yml")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 15, "the corpus has {} files", files.len());

    // A valid file passes --check and starts nothing either.
    let demo = workspace_file("configs/demo.toml");
    let demo = demo.to_str().expect("utf-8 path");
    let out = common::output(&mut forge.supervise(&["--check", demo]), COMMAND_TIMEOUT);
    assert_eq!(out.code, 0, "--check of the demo: {out}");
    assert!(out.stdout.contains("valid"), "{out}");

    let mut failures = Vec::new();
    for path in &files {
        let (position, phrase) = expectation(path);
        let file = path.to_str().expect("utf-8 path");
        for check in [true, false] {
            let mut args = vec!["-p", "bad"];
            if check {
                args.push("--check");
            }
            args.push(file);
            let out = common::output(&mut forge.supervise(&args), COMMAND_TIMEOUT);
            let lines = out.stderr_lines();
            let located = format!("{file}:{position}: ");
            let ok = out.code == 2
                && lines.len() == 1
                && lines[0].contains(&located)
                && lines[0].contains(&phrase)
                && out.stdout.is_empty();
            if !ok {
                failures.push(format!(
                    "forge-supervise {}: want exit 2 and one stderr line with {located:?} and {phrase:?}; got {out}",
                    args.join(" ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));

    // --exit-code-from a service that does not exist is refused the same way.
    let out = common::output(
        &mut forge.supervise(&["-p", "bad", "--exit-code-from", "nosuch", demo]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(out.code, 2, "{out}");
    assert_eq!(out.stderr_lines().len(), 1, "{out}");
    assert!(out.stderr.contains("nosuch"), "{out}");

    assert_eq!(forge.ps(&["-a"]), Vec::<String>::new());
    forge.assert_no_containers();
    assert_eq!(forge.netns.links(), vec!["lo".to_string()]);
    let ruleset = forge.netns.ok("nft", &["list", "ruleset"]);
    assert!(!ruleset.contains("forge"), "{ruleset}");
    assert!(
        !forge.root().join("networks").exists() || forge.entries("networks").is_empty(),
        "networks under the root: {:?}",
        forge.entries("networks")
    );
}

// ---------------------------------------------------------------------------------------------
// 6. --abort-on-container-exit and --exit-code-from.

#[test]
fn exit_code_from_a_service_that_exits_3_stops_the_others_and_exits_3() {
    let forge = Forge::new();
    // The worker must outlive the start of server and then client (slower under emulation).
    let work = common::scaled(Duration::from_millis(1500)).as_secs_f64();
    let file = compose_file(&format!(
        r#"
[services.worker]
image = "host"
command = ["sh", "-c", "echo working; sleep {work}; exit 3"]

[services.server]
image = "host"
command = {server}

[services.client]
image = "host"
depends_on = ["server"]
command = {client}
"#,
        server = daemon("server", "0"),
        client = daemon("client", "0"),
    ));
    let mut sup = Supervisor::start(&forge, "abort", &file.path, &["--exit-code-from", "worker"]);
    sup.wait_output("server", "that it is up", |t| t == "server up");
    sup.wait_output("client", "that it is up", |t| t == "client up");
    forge.note_ids(forge.container_ids());
    let pids: Vec<i64> = ["server", "client"]
        .iter()
        .map(|s| sup.started_pid(s))
        .collect();
    let code = sup.finish(UP);
    assert_eq!(code, 3, "{}", sup.dump());
    let exit = sup.wait_event("worker", "exited with code 3", 1);
    let server = sup.wait_output("server", "that it stops", |t| t == "server stopping");
    let client = sup.wait_output("client", "that it stops", |t| t == "client stopping");
    assert!(client.index < server.index, "{}", sup.dump());
    // Stopped at once (the default grace period is 10 s).
    assert!(
        server.at.duration_since(exit.at) < Duration::from_secs(5),
        "{}",
        sup.dump()
    );
    assert!(
        sup.events_starting("server", "restarting").is_empty(),
        "{}",
        sup.dump()
    );
    for pid in pids {
        assert!(!process_alive(pid), "pid {pid} survived");
    }
    assert_torn_down(&forge);
}

#[test]
fn abort_on_container_exit_stops_everything_when_one_service_exits() {
    let forge = Forge::new();
    let file = compose_file(&format!(
        r#"
[services.oneshot]
image = "host"
command = ["sh", "-c", "sleep 0.5; exit 0"]

[services.server]
image = "host"
command = {server}
"#,
        server = daemon("server", "0"),
    ));
    let mut sup = Supervisor::start(&forge, "abort", &file.path, &["--abort-on-container-exit"]);
    sup.wait_output("server", "that it is up", |t| t == "server up");
    forge.note_ids(forge.container_ids());
    let code = sup.finish(UP);
    sup.wait_event("oneshot", "exited with code 0", 1);
    sup.wait_output("server", "that it stops", |t| t == "server stopping");
    assert!(
        sup.err.text().contains("--abort-on-container-exit"),
        "{}",
        sup.dump()
    );
    eprintln!("forge-supervise --abort-on-container-exit exited {code}");
    assert_torn_down(&forge);
}

#[test]
fn services_on_several_networks_reach_each_network_by_service_name() {
    let forge = Forge::new();
    let file = compose_file(&format!(
        r#"
[networks.front]
[networks.back]

[services.db]
image = "host"
networks = ["back"]
command = {db}

[services.web]
image = "host"
networks = ["front"]
command = {web}

[services.app]
image = "host"
networks = ["front", "back"]
depends_on = ["db", "web"]
command = ["sh", "-c", "ping -c1 -W2 db >/dev/null && echo reached db; ping -c1 -W2 web >/dev/null && echo reached web || {{ cat /etc/hosts; ip addr; ip route; }}; sleep 60"]

[services.probe]
image = "host"
networks = ["back"]
depends_on = ["web"]
command = ["sh", "-c", "ping -c1 -W1 web >/dev/null 2>&1 || echo web unreachable; sleep 60"]
"#,
        db = daemon("db", "0"),
        web = daemon("web", "0"),
    ));
    let mut sup = Supervisor::start(&forge, "multi", &file.path, &[]);
    sup.wait_output("app", "app to reach db", |t| t == "reached db");
    sup.wait_output("app", "app to reach web", |t| t == "reached web");
    sup.wait_output("probe", "probe to miss web", |t| t == "web unreachable");
    stop_cleanly(&forge, &mut sup);
}

#[test]
fn without_a_stop_signal_in_the_file_the_images_stop_signal_is_sent() {
    let forge = Forge::new();
    let tools = common::oci::tools_dir();
    common::oci::build_images(tools.path());
    forge.ok(&["load", "-i", tools.path().join("oci.tar").to_str().unwrap()]);
    // oci:v1 says StopSignal SIGUSR1 and runs its command with `sh -c`; SIGTERM is ignored.
    let file = compose_file(
        r#"
[services.app]
image = "oci:v1"
command = ["trap '' TERM; trap 'echo app got usr1; exit 0' USR1; echo app up; while true; do sleep 0.1; done"]
stop_grace_period = "30s"
"#,
    );
    let mut sup = Supervisor::start(&forge, "img", &file.path, &[]);
    sup.wait_output("app", "that it is up", |t| t == "app up");
    forge.note_ids(forge.container_ids());
    let (code, took) = terminate(&mut sup);
    assert!(
        !sup.events_starting("app", "stopping (SIGUSR1)").is_empty(),
        "{}",
        sup.dump()
    );
    assert!(
        sup.output("app").iter().any(|l| l.text == "app got usr1"),
        "{}",
        sup.dump()
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(code, 0, "{}", sup.dump());
    assert_torn_down(&forge);
}

// ---------------------------------------------------------------------------------------------
// 7. Security keys.

#[test]
fn cap_add_cap_drop_read_only_tmpfs_and_security_opt_reach_the_container() {
    let forge = Forge::new();
    let script = "echo CapEff=$(awk '/^CapEff/ {print $2}' /proc/self/status); \
        echo NoNewPrivs=$(awk '/^NoNewPrivs/ {print $2}' /proc/self/status); \
        echo Seccomp=$(awk '/^Seccomp:/ {print $2}' /proc/self/status); \
        touch /x 2>/dev/null && echo root=writable || echo root=not-writable; \
        touch /scratch/y 2>/dev/null && echo scratch=writable || echo scratch=not-writable; \
        echo done";
    let file = compose_file(&format!(
        r#"
[services.locked]
image = "host"
cap_drop = ["ALL"]
cap_add = ["NET_BIND_SERVICE"]
read_only = true
tmpfs = ["/scratch"]
security_opt = ["no-new-privileges:true"]
command = {command}

[services.open]
image = "host"
security_opt = ["seccomp=unconfined", "no-new-privileges:false"]
command = {command}
"#,
        command = report_then_wait(script)
    ));
    let mut sup = Supervisor::start(&forge, "sec", &file.path, &[]);
    for service in ["locked", "open"] {
        sup.wait_output(service, "its report", |t| t == "done");
    }
    forge.note_ids(forge.container_ids());
    let report = |service: &str| -> Vec<String> {
        sup.output(service)
            .into_iter()
            .map(|l| l.text)
            .take_while(|t| t != "done")
            .collect()
    };
    assert_eq!(
        report("locked"),
        [
            "CapEff=0000000000000400",
            "NoNewPrivs=1",
            "Seccomp=2",
            "root=not-writable",
            "scratch=writable"
        ],
        "{}",
        sup.dump()
    );
    // Without the keys: Docker's 14 default capabilities, a writable root and no /scratch; and
    // seccomp=unconfined and no-new-privileges:false reach the container as well.
    assert_eq!(
        report("open"),
        [
            "CapEff=00000000a80425fb",
            "NoNewPrivs=0",
            "Seccomp=0",
            "root=writable",
            "scratch=not-writable"
        ],
        "{}",
        sup.dump()
    );
    stop_cleanly(&forge, &mut sup);
}

#[test]
fn userns_mode_auto_is_root_inside_and_a_subordinate_id_outside() {
    const UID_START: u32 = 3_000_000_000;
    const GID_START: u32 = 3_100_000_000;
    let forge = Forge::new();
    // Subordinate IDs of our own, so the host's /etc/subuid is neither needed nor changed.
    let subuid = forge.root().join("subuid");
    let subgid = forge.root().join("subgid");
    std::fs::write(&subuid, format!("containers:{UID_START}:262144\n")).unwrap();
    std::fs::write(&subgid, format!("containers:{GID_START}:262144\n")).unwrap();
    let file = compose_file(&format!(
        r#"
[services.mapped]
image = "host"
userns_mode = "auto"
command = {}
"#,
        report_then_wait("echo uid=$(id -u)")
    ));
    let env = [
        ("FORGE_SUBUID_FILE", subuid.as_path()),
        ("FORGE_SUBGID_FILE", subgid.as_path()),
    ];
    let mut sup = Supervisor::start_with_env(&forge, "uns", &file.path, &[], &env);
    sup.wait_output("mapped", "its uid", |t| t.starts_with("uid="));
    forge.note_ids(forge.container_ids());
    assert_eq!(sup.output("mapped")[0].text, "uid=0", "{}", sup.dump());
    let pid = sup.started_pid("mapped");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ids = |field: &str| -> Vec<String> {
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("no {field} in:\n{status}"));
        line.split_whitespace()
            .skip(1)
            .map(str::to_string)
            .collect()
    };
    assert_eq!(ids("Uid:"), vec![UID_START.to_string(); 4], "{status}");
    assert_eq!(ids("Gid:"), vec![GID_START.to_string(); 4], "{status}");
    stop_cleanly(&forge, &mut sup);
}

// ---------------------------------------------------------------------------------------------
// 8. What the user does to a project's containers, and to its output.

#[test]
fn a_container_made_by_hand_under_a_services_name_is_refused_and_left_alone() {
    let forge = Forge::new();
    forge.ok(&[
        "run", "-d", "--net", "none", "--name", "hand-web", "host", "sleep", "300",
    ]);
    let file = compose_file(&format!(
        "[services.web]\nimage = \"host\"\ncommand = {}\n",
        daemon("web", "0")
    ));
    let mut sup = Supervisor::start(&forge, "hand", &file.path, &[]);
    let code = sup.finish(UP);
    assert_eq!(code, 1, "{}", sup.dump());
    assert!(
        sup.err
            .text()
            .contains("container hand-web exists and is not service web of project hand"),
        "{}",
        sup.dump()
    );
    // The user's container still runs, untouched; no network was made for the project.
    let running = forge.ps(&[]);
    assert!(
        running.len() == 1 && running[0].contains("hand-web"),
        "{running:?}"
    );
    assert_eq!(forge.netns.links(), vec!["lo".to_string()]);
    forge.ok(&["rm", "-f", "hand-web"]);
}

#[test]
fn a_container_the_user_removes_is_created_again_from_the_file() {
    let forge = Forge::new();
    // Thousands of files in its writable layer make the removal slow, and a 1 ms backoff
    // restarts the killed container while `forge rm` is still deleting them.
    let file = compose_file(&format!(
        "[x-backoff]\ninitial = \"1ms\"\n\n[services.web]\nimage = \"host\"\nrestart = \"always\"\ncommand = {}\n",
        report_then_wait("mkdir /junk && cd /junk && seq 4000 | xargs touch && echo filled")
    ));
    let mut sup = Supervisor::start(&forge, "gone", &file.path, &[]);
    sup.wait_output("web", "filled", |t| t == "filled");
    let first = forge.inspect("gone-web")["Config"]["id"].clone();
    forge.ok(&["rm", "-f", "gone-web"]);
    sup.wait_event("web", "its container gone-web was removed", 1);
    sup.wait_event("web", "started (pid", 2);
    let second = forge.inspect("gone-web")["Config"]["id"].clone();
    assert_ne!(first, second, "the removed container came back");
    assert!(
        sup.events_starting("web", "restart failed").is_empty(),
        "{}",
        sup.dump()
    );
    forge.note_ids(forge.container_ids());
    stop_cleanly(&forge, &mut sup);
}

#[test]
fn forge_stop_keeps_a_restart_always_service_stopped() {
    let forge = Forge::new();
    let file = compose_file(&format!(
        "[x-backoff]\ninitial = \"50ms\"\n\n[services.web]\nimage = \"host\"\nrestart = \"always\"\ncommand = {}\n\n[services.other]\nimage = \"host\"\ncommand = {}\n",
        daemon("web", "0"),
        daemon("other", "0")
    ));
    let mut sup = Supervisor::start(&forge, "held", &file.path, &[]);
    sup.wait_event("web", "started (pid", 1);
    sup.wait_event("other", "started (pid", 1);
    forge.ok(&["stop", "-t", "5", "held-web"]);
    sup.wait_event("web", "stopped by the user", 1);
    // Well past the 50 ms backoff: still one start, and the container shows as exited.
    std::thread::sleep(scaled(Duration::from_secs(1)));
    assert_eq!(
        sup.events_starting("web", "started (pid").len(),
        1,
        "{}",
        sup.dump()
    );
    assert_eq!(forge.inspect("held-web")["State"]["status"], "exited");
    stop_cleanly(&forge, &mut sup);
}

#[test]
fn a_closed_output_pipe_leaves_the_services_running() {
    let forge = Forge::new();
    let file = compose_file(
        "[services.talker]\nimage = \"host\"\ncommand = [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do echo tick; sleep 0.05; done\"]\n",
    );
    // `forge-supervise FILE 2>&1 | head -2`: one pipe for both, its reader gone after two lines.
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let mut cmd = forge.supervise(&["-p", "piped", file.path.to_str().unwrap()]);
    cmd.stdout(std::process::Stdio::from(write.try_clone().unwrap()))
        .stderr(std::process::Stdio::from(write));
    let mut child = cmd.spawn().expect("spawning forge-supervise");
    drop(cmd);
    let mut reader = std::io::BufReader::new(std::fs::File::from(read));
    for _ in 0..2 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    }
    drop(reader);
    std::thread::sleep(scaled(Duration::from_secs(2)));
    assert_eq!(child.try_wait().unwrap(), None, "forge-supervise ended");
    let running = forge.ps(&[]);
    assert!(
        running.len() == 1 && running[0].contains("piped-talker"),
        "{running:?}"
    );
    forge.note_ids(forge.container_ids());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_torn_down(&forge);
}

#[test]
fn container_name_and_labels_reach_the_container_and_limits_take_composes_spellings() {
    let forge = Forge::new();
    let file = compose_file(&format!(
        "name = \"shop\"\nx-anchor = \"ignored\"\n\n[services.db]\nimage = \"host\"\ncontainer_name = \"shop-database\"\nlabels = {{ \"com.example.tier\" = \"back\" }}\nmem_limit = \"64m\"\npids_limit = 40\ncommand = {}\n",
        daemon("db", "0")
    ));
    // No -p: the file's name is the project's.
    let mut cmd = forge.supervise(&[file.path.to_str().unwrap()]);
    let mut sup = Supervisor::spawn(&mut cmd, "forge-supervise (file named shop)");
    sup.wait_event("db", "started (pid", 1);
    let config = forge.inspect("shop-database")["Config"].clone();
    assert_eq!(config["labels"]["com.example.tier"], "back", "{config}");
    assert_eq!(config["labels"]["forge.project"], "shop", "{config}");
    assert_eq!(config["limits"]["memory"], 64 << 20, "{config}");
    assert_eq!(config["limits"]["pids"], 40, "{config}");
    forge.note_ids(forge.container_ids());
    stop_cleanly(&forge, &mut sup);
}

// ---------------------------------------------------------------------------------------------
// 9. compose.yaml as Compose users write it.

#[test]
fn a_compose_yaml_found_in_the_directory_runs_with_anchors_env_file_values_and_profiles() {
    let forge = Forge::new();
    let dir = tempfile::Builder::new()
        .prefix("forge-compose-yaml-")
        .tempdir()
        .unwrap();
    std::fs::write(
        dir.path().join("compose.yaml"),
        r#"name: yamlshop
x-service: &service
  image: host
  stop_signal: SIGKILL
  environment:
    GREETING: ${GREETING:-unset}
services:
  web:
    <<: *service
    command: ["sh", "-c", "echo web says $$GREETING ${TAG:?TAG is in .env}; exec sleep 1d"]
  tools:
    <<: *service
    profiles: [tools]
    command: sleep 1d
"#,
    )
    .unwrap();
    std::fs::write(dir.path().join(".env"), "GREETING=hello\nTAG=v2\n").unwrap();
    // No file named: compose.yaml is found in the working directory.
    let mut cmd = forge.supervise(&[]);
    cmd.current_dir(dir.path());
    let mut sup = Supervisor::spawn(&mut cmd, "forge-supervise (in a compose.yaml directory)");
    let line = sup.wait_output("web", "its greeting", |l| l.contains("web says"));
    assert_eq!(line.text, "web says hello v2", "{}", sup.dump());
    // The profile's service is not started; web is the project's only container.
    assert_eq!(container_names(&forge), ["yamlshop-web"], "{}", sup.dump());
    forge.note_ids(forge.container_ids());
    stop_cleanly(&forge, &mut sup);
}

#[test]
fn network_aliases_and_a_fixed_address_of_the_map_form_reach_the_neighbours() {
    let forge = Forge::new();
    let file = compose_file_named(
        "compose.yml",
        r#"networks:
  back:
    subnet: 10.89.77.0/24
services:
  db:
    image: host
    stop_signal: SIGKILL
    command: ["sh", "-c", "ip -4 addr show eth0 | grep -o 'inet [0-9.]*'; exec sleep 1d"]
    networks:
      back:
        aliases: [database]
        ipv4_address: 10.89.77.5
  client:
    image: host
    stop_signal: SIGKILL
    depends_on: [db]
    command: ["sh", "-c", "grep -w database /etc/hosts; exec sleep 1d"]
    networks: [back]
"#,
    );
    let mut sup = Supervisor::start(&forge, "alias", &file.path, &[]);
    let db = sup.wait_output("db", "its address", |l| l.starts_with("inet"));
    assert_eq!(db.text, "inet 10.89.77.5", "{}", sup.dump());
    let hosts = sup.wait_output("client", "the alias in /etc/hosts", |l| !l.is_empty());
    let words: Vec<&str> = hosts.text.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"10.89.77.5"), "{}", sup.dump());
    assert!(
        words.contains(&"database") && words.contains(&"db"),
        "{}",
        hosts.text
    );
    forge.note_ids(forge.container_ids());
    stop_cleanly(&forge, &mut sup);
}

/// The names of every container, as `forge ps -a` lists them, sorted.
fn container_names(forge: &Forge) -> Vec<String> {
    let mut names: Vec<String> = forge
        .ps(&["-a"])
        .iter()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// The names `forge network ls` lists.
fn network_names(forge: &Forge) -> Vec<String> {
    let ls = forge.ok(&["network", "ls"]).stdout;
    let mut names: Vec<String> = ls
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[test]
fn external_and_named_networks_are_used_made_and_removed_by_compose_rules() {
    let forge = Forge::new();
    forge.ok(&["network", "create", "--subnet", "10.89.78.0/24", "ext1"]);
    let file = compose_file_named(
        "compose.yaml",
        r#"networks:
  outside:
    external: true
    name: ext1
  own:
    name: shared-own
services:
  web:
    image: host
    stop_signal: SIGKILL
    command: ["sh", "-c", "ip -4 addr show eth0 | grep -o 'inet [0-9.]*'; exec sleep 1d"]
    networks: [outside, own]
"#,
    );
    let mut sup = Supervisor::start(&forge, "nets", &file.path, &[]);
    let addr = sup.wait_output("web", "its address", |l| l.starts_with("inet"));
    assert!(
        addr.text.starts_with("inet 10.89.78."),
        "on ext1 first: {}",
        sup.dump()
    );
    assert_eq!(network_names(&forge), ["ext1", "shared-own"]);
    let own: serde_json::Value =
        serde_json::from_str(&forge.ok(&["network", "inspect", "shared-own"]).stdout).unwrap();
    assert_eq!(
        own[0]["network"]["labels"]["com.docker.compose.project"], "nets",
        "{own}"
    );
    forge.note_ids(forge.container_ids());
    assert_eq!(terminate(&mut sup).0, 0, "{}", sup.dump());
    // The external network stays; the one the project made is gone.
    assert_eq!(network_names(&forge), ["ext1"]);

    // A network of the same name made by hand is refused, and left alone.
    forge.ok(&["network", "create", "shared-own"]);
    let mut sup = Supervisor::start(&forge, "nets", &file.path, &[]);
    assert_eq!(sup.finish(UP), 1, "{}", sup.dump());
    assert!(
        sup.err.text().contains(
            "network \"shared-own\" exists but was not made by this project (networks.own)"
        ),
        "{}",
        sup.dump()
    );
    assert_eq!(network_names(&forge), ["ext1", "shared-own"]);
    assert_eq!(forge.ps(&["-a"]), Vec::<String>::new());
    // An external network that is not there is refused before anything is made.
    forge.ok(&["network", "rm", "ext1"]);
    forge.ok(&["network", "rm", "shared-own"]);
    let mut sup = Supervisor::start(&forge, "nets", &file.path, &[]);
    assert_eq!(sup.finish(UP), 1, "{}", sup.dump());
    assert!(
        sup.err.text().contains("external network \"ext1\" not found (networks.outside): create it with `forge network create ext1`"),
        "{}",
        sup.dump()
    );
    assert_eq!(network_names(&forge), Vec::<String>::new());
    assert_torn_down(&forge);
}

#[test]
fn secrets_and_configs_are_mounted_read_only_where_compose_puts_them() {
    let forge = Forge::new();
    let file = compose_file_named(
        "compose.yaml",
        r#"secrets:
  db_pw:
    file: ./pw.txt
  api:
    environment: API_TOKEN
configs:
  app:
    file: ./app.ini
  motd:
    content: "hi there"
services:
  web:
    image: host
    stop_signal: SIGKILL
    user: "1000"
    secrets: [db_pw, api]
    configs: [{source: app, target: /etc/app.ini}, motd]
    command: ["sh", "-c", "echo pw=$$(cat /run/secrets/db_pw) conf=$$(cat /etc/app.ini) api=$$(cat /run/secrets/api) motd=$$(cat /motd); echo x > /run/secrets/api || echo read-only; exec sleep 1d"]
"#,
    );
    let dir = file.path.parent().unwrap();
    std::fs::write(dir.join("pw.txt"), "s3cret").unwrap();
    std::fs::write(dir.join("app.ini"), "[app]").unwrap();
    std::fs::write(dir.join(".env"), "API_TOKEN=t0ken\n").unwrap();
    let mut sup = Supervisor::start(&forge, "files", &file.path, &[]);
    let line = sup.wait_output("web", "the files", |l| l.starts_with("pw="));
    assert_eq!(
        line.text,
        "pw=s3cret conf=[app] api=t0ken motd=hi there",
        "{}",
        sup.dump()
    );
    sup.wait_output("web", "the write refused", |l| l == "read-only");
    assert_eq!(
        std::fs::read_to_string(dir.join("pw.txt")).unwrap(),
        "s3cret"
    );
    // The values' files live under the run root, only root may enter, and go with the project.
    let generated = forge.root().join("run/projects/files.files");
    assert_eq!(
        std::fs::read_to_string(generated.join("web/0")).unwrap(),
        "t0ken"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(generated.join("web"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
    forge.note_ids(forge.container_ids());
    stop_cleanly(&forge, &mut sup);
    assert!(!generated.exists(), "{} is left", generated.display());
}

#[test]
fn replicas_run_as_project_service_n_and_all_answer_to_the_service_name() {
    let forge = Forge::new();
    let file = compose_file_named(
        "compose.yaml",
        r#"services:
  web:
    image: host
    stop_signal: SIGKILL
    deploy:
      replicas: 3
    command: ["sh", "-c", "echo up as $$(hostname); exec sleep 1d"]
  client:
    image: host
    stop_signal: SIGKILL
    depends_on: [web]
    command: ["sh", "-c", "echo web is $$(grep -cw web /etc/hosts) addresses; exec sleep 1d"]
"#,
    );
    let mut sup = Supervisor::start(&forge, "rep", &file.path, &[]);
    for i in 1..=3 {
        let line = sup.wait_output(&format!("web-{i}"), "its hostname", |l| {
            l.starts_with("up as")
        });
        assert_eq!(line.text, format!("up as web-{i}"), "{}", sup.dump());
    }
    let line = sup.wait_output("client", "the count", |l| l.starts_with("web is"));
    assert_eq!(line.text, "web is 3 addresses", "{}", sup.dump());
    assert_eq!(
        container_names(&forge),
        ["rep-client", "rep-web-1", "rep-web-2", "rep-web-3"]
    );
    forge.note_ids(forge.container_ids());
    stop_cleanly(&forge, &mut sup);
}

#[test]
fn network_mode_none_runs_with_only_the_loopback_and_makes_no_network() {
    let forge = Forge::new();
    let file = compose_file_named(
        "compose.yaml",
        r#"services:
  alone:
    image: host
    stop_signal: SIGKILL
    network_mode: none
    command: ["sh", "-c", "echo links: $$(ls /sys/class/net); exec sleep 1d"]
"#,
    );
    let mut sup = Supervisor::start(&forge, "none", &file.path, &[]);
    let line = sup.wait_output("alone", "its links", |l| l.starts_with("links:"));
    assert_eq!(line.text, "links: lo", "{}", sup.dump());
    assert_eq!(network_names(&forge), Vec::<String>::new());
    assert_eq!(forge.netns.links(), vec!["lo".to_string()]);
    forge.note_ids(forge.container_ids());
    stop_cleanly(&forge, &mut sup);
}

#[test]
fn down_removes_what_a_killed_supervisor_left_and_only_that() {
    let forge = Forge::new();
    forge.ok(&[
        "run",
        "-d",
        "--net",
        "none",
        "--name",
        "bystander",
        "host",
        "sleep",
        "300",
    ]);
    let file = compose_file_named(
        "compose.yaml",
        "services:\n  web:\n    image: host\n    stop_signal: SIGKILL\n    command: [sleep, 1d]\n",
    );
    let path = file.path.to_str().unwrap();
    let mut sup = Supervisor::start(&forge, "gone", &file.path, &[]);
    sup.wait_event("web", "started (pid", 1);
    // While it runs, --down is refused: the supervisor owns the project.
    let out = common::output(
        &mut forge.supervise(&["-p", "gone", "--down", path]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains("project gone is already being supervised"),
        "{out}"
    );
    let socket = forge.root().join("run/projects/gone.sock");
    assert!(
        socket.exists(),
        "the supervisor serves {}",
        socket.display()
    );
    sup.signal(Signal::SIGKILL);
    sup.finish(UP);
    forge.note_ids(forge.container_ids());
    let out = common::output(
        &mut forge.supervise(&["-p", "gone", "--down", path]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(!socket.exists(), "the killed supervisor's socket is left");
    assert_eq!(container_names(&forge), ["bystander"]);
    assert_eq!(network_names(&forge), Vec::<String>::new());
    forge.ok(&["rm", "-f", "bystander"]);
    assert_torn_down(&forge);
}

// ---------------------------------------------------------------------------------------------
// 10. forge compose: the Docker Compose front.

#[test]
fn forge_compose_up_d_ps_logs_and_down_as_docker_compose_does() {
    let forge = Forge::new();
    let file = compose_file_named(
        "compose.yaml",
        r#"name: front
services:
  db:
    image: host
    stop_signal: SIGKILL
    command: ["sh", "-c", "echo db ready; exec sleep 1d"]
    healthcheck: {test: ["CMD", "true"], interval: 1s, start_interval: 100ms, start_period: 5s}
  web:
    image: host
    stop_signal: SIGKILL
    depends_on: {db: {condition: service_healthy}}
    command: ["sh", "-c", "echo web up; exec sleep 1d"]
"#,
    );
    let path = file.path.to_str().unwrap();
    let up = forge.ok(&["compose", "-f", path, "up", "-d", "--scale", "web=2"]);
    // db first (web waits for it to be healthy); the replicas in the order they started.
    let mut lines: Vec<&str> = up.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"Container front-db  Started"), "{up}");
    lines[1..].sort_unstable();
    assert_eq!(
        lines,
        [
            "Container front-db  Started",
            "Container front-web-1  Started",
            "Container front-web-2  Started"
        ],
        "{up}"
    );
    forge.note_ids(forge.container_ids());
    // The caller is gone; the project runs on.
    let ps = forge.ok(&["compose", "-f", path, "ps"]).stdout;
    let rows: Vec<(String, String)> = ps
        .lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[0].to_string(), cols[1].to_string())
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("front-db".to_string(), "db".to_string()),
            ("front-web-1".to_string(), "web-1".to_string()),
            ("front-web-2".to_string(), "web-2".to_string())
        ],
        "{ps}"
    );
    assert!(ps.contains("Up"), "{ps}");
    // Nothing changed: the running project is left as it is.
    let pids = |names: &[&str]| -> Vec<serde_json::Value> {
        names
            .iter()
            .map(|n| forge.inspect(n)["State"]["pid"].clone())
            .collect()
    };
    let before = pids(&["front-db", "front-web-1", "front-web-2"]);
    let again = forge.ok(&["compose", "-f", path, "up", "-d", "--scale", "web=2"]);
    let mut said: Vec<&str> = again.stdout.lines().collect();
    said.sort_unstable();
    assert_eq!(
        said,
        [
            "Container front-db  Running",
            "Container front-web-1  Running",
            "Container front-web-2  Running"
        ],
        "{again}"
    );
    assert_eq!(pids(&["front-db", "front-web-1", "front-web-2"]), before);
    // Logs are the services' own output, by service.
    let deadline = Instant::now() + UP;
    loop {
        let logs = forge.ok(&["compose", "-f", path, "logs", "web"]).stdout;
        if logs == "web-1 | web up\nweb-2 | web up\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "forge compose logs web: {logs:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let down = forge.ok(&["compose", "-f", path, "down"]);
    assert_eq!(down.code, 0, "{down}");
    assert_eq!(container_names(&forge), Vec::<String>::new());
    assert_torn_down(&forge);
}

/// The host PID of `name`'s PID 1 as `forge inspect` says it.
fn pid_of(forge: &Forge, name: &str) -> serde_json::Value {
    forge.inspect(name)["State"]["pid"].clone()
}

/// The stdout lines of `forge compose`, sorted.
fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn a_second_up_d_recreates_only_what_changed_and_sighup_does_the_same_in_place() {
    let forge = Forge::new();
    let service = |name: &str, word: &str| {
        format!("  {name}:\n    image: host\n    stop_signal: SIGKILL\n    command: [\"sh\", \"-c\", \"echo {word}; exec sleep 1d\"]\n")
    };
    let text = |services: &[String]| format!("name: conv\nservices:\n{}", services.concat());
    let file = compose_file_named(
        "compose.yaml",
        &text(&[service("a", "a1"), service("b", "b1"), service("c", "c1")]),
    );
    let path = file.path.to_str().unwrap();
    forge.ok(&["compose", "-f", path, "up", "-d"]);
    let (a, b, c) = (
        pid_of(&forge, "conv-a"),
        pid_of(&forge, "conv-b"),
        pid_of(&forge, "conv-c"),
    );
    // b's command changes: only b is re-created; a and c keep their processes.
    std::fs::write(
        &file.path,
        text(&[service("a", "a1"), service("b", "b2"), service("c", "c1")]),
    )
    .unwrap();
    let up = forge.ok(&["compose", "-f", path, "up", "-d"]);
    assert_eq!(
        sorted_lines(&up.stdout),
        [
            "Container conv-a  Running",
            "Container conv-b  Recreated",
            "Container conv-b  Started",
            "Container conv-c  Running"
        ],
        "{up}"
    );
    assert_eq!(pid_of(&forge, "conv-a"), a);
    assert_eq!(pid_of(&forge, "conv-c"), c);
    assert_ne!(pid_of(&forge, "conv-b"), b);
    let logs = forge.ok(&["compose", "-f", path, "logs", "b"]).stdout;
    assert_eq!(logs, "b | b2\n", "the re-created b runs the new command");
    // stop keeps b stopped; start brings it back; restart gives it a new process.
    let stop = forge.ok(&["compose", "-f", path, "stop", "-t", "1", "b"]);
    assert_eq!(stop.stdout, "Container conv-b  Stopped\n", "{stop}");
    assert_eq!(forge.inspect("conv-b")["State"]["status"], "exited");
    let start = forge.ok(&["compose", "-f", path, "start", "b"]);
    assert_eq!(start.stdout, "Container conv-b  Started\n", "{start}");
    let b = pid_of(&forge, "conv-b");
    let restart = forge.ok(&["compose", "-f", path, "restart", "b"]);
    assert_eq!(
        restart.stdout, "Container conv-b  Stopped\nContainer conv-b  Started\n",
        "{restart}"
    );
    assert_ne!(pid_of(&forge, "conv-b"), b);
    let unknown = forge.run(&["compose", "-f", path, "restart", "nope"]);
    assert_eq!(unknown.code, 1, "{unknown}");
    assert!(
        unknown.stderr.contains("no such service: nope"),
        "{unknown}"
    );
    // SIGHUP: c goes, d comes, a and b stay as they are.
    let b = pid_of(&forge, "conv-b");
    std::fs::write(
        &file.path,
        text(&[service("a", "a1"), service("b", "b2"), service("d", "d1")]),
    )
    .unwrap();
    let lock = forge.root().join("projects").join("conv.lock");
    let supervisor: i32 = std::fs::read_to_string(&lock)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervisor), Signal::SIGHUP).unwrap();
    let deadline = Instant::now() + UP;
    while forge.try_inspect("conv-c").is_some()
        || forge
            .try_inspect("conv-d")
            .is_none_or(|d| d["State"]["status"] != "running")
    {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not converge: {:?}",
            container_names(&forge)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(pid_of(&forge, "conv-a"), a);
    assert_eq!(pid_of(&forge, "conv-b"), b);
    // A file that does not load changes nothing, and says why.
    std::fs::write(&file.path, "services: [\n").unwrap();
    let bad = forge.run(&["compose", "-f", path, "up", "-d"]);
    assert_ne!(bad.code, 0, "{bad}");
    assert_eq!(pid_of(&forge, "conv-a"), a);
    std::fs::write(
        &file.path,
        text(&[service("a", "a1"), service("b", "b2"), service("d", "d1")]),
    )
    .unwrap();
    forge.note_ids(forge.container_ids());
    forge.ok(&["compose", "-f", path, "down", "-t", "1"]);
    assert_eq!(container_names(&forge), Vec::<String>::new());
    assert_torn_down(&forge);
}

#[test]
fn forge_compose_exec_logs_tail_and_follow_and_ps_json_reach_the_services() {
    let forge = Forge::new();
    let file = compose_file_named(
        "compose.yaml",
        r#"name: ops
services:
  app:
    image: host
    stop_signal: SIGKILL
    command: ["sh", "-c", "echo one; echo two; echo three; exec sleep 1d"]
  side:
    image: host
    stop_signal: SIGKILL
    deploy: {replicas: 2}
    command: ["sh", "-c", "echo side; exec sleep 1d"]
"#,
    );
    let path = file.path.to_str().unwrap();
    forge.ok(&["compose", "-f", path, "up", "-d"]);
    forge.note_ids(forge.container_ids());
    // exec runs in the service's container, with its exit code; --index picks a replica.
    let answer = forge.run(&[
        "compose",
        "-f",
        path,
        "exec",
        "-T",
        "app",
        "sh",
        "-c",
        "hostname; exit 3",
    ]);
    assert_eq!(answer.code, 3, "{answer}");
    let hostname = |name: &str| {
        forge.inspect(name)["Config"]["hostname"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(answer.stdout.trim(), hostname("ops-app"), "{answer}");
    let replica = forge.ok(&[
        "compose",
        "-f",
        path,
        "exec",
        "-T",
        "--index",
        "2",
        "side",
        "cat",
        "/etc/hostname",
    ]);
    let second = forge.inspect("ops-side-2")["Config"]["hostname"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(replica.stdout.trim(), second, "{replica}");
    let none = forge.run(&[
        "compose", "-f", path, "exec", "-T", "--index", "3", "side", "true",
    ]);
    assert_eq!(none.code, 1, "{none}");
    assert!(
        none.stderr.contains("service side has no replica 3"),
        "{none}"
    );
    // --tail: the last lines of each container.
    let deadline = Instant::now() + UP;
    loop {
        let tail = forge
            .ok(&["compose", "-f", path, "logs", "--tail", "2", "app"])
            .stdout;
        if tail == "app | two\napp | three\n" {
            break;
        }
        assert!(Instant::now() < deadline, "logs --tail 2 app: {tail:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // -f: what the container writes later comes too, until the project goes down.
    let mut follow = common::Background::spawn(
        &mut forge.command(&["compose", "-f", path, "logs", "-f", "--tail", "0", "app"]),
    );
    std::thread::sleep(scaled(Duration::from_millis(300)));
    forge.ok(&[
        "compose",
        "-f",
        path,
        "exec",
        "-T",
        "app",
        "sh",
        "-c",
        "echo later > /proc/1/fd/1",
    ]);
    // ps --format json: one object per container, Docker Compose's field names.
    let ps = forge
        .ok(&["compose", "-f", path, "ps", "--format", "json"])
        .stdout;
    let rows: Vec<(String, String, String)> = ps
        .lines()
        .map(|l| {
            let row: serde_json::Value = serde_json::from_str(l).unwrap();
            let field = |k: &str| row[k].as_str().unwrap_or_default().to_string();
            (field("Name"), field("Service"), field("State"))
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("ops-app".into(), "app".into(), "running".into()),
            ("ops-side-1".into(), "side-1".into(), "running".into()),
            ("ops-side-2".into(), "side-2".into(), "running".into())
        ],
        "{ps}"
    );
    forge.ok(&["compose", "-f", path, "down", "-t", "1"]);
    let followed = follow.finish(COMMAND_TIMEOUT);
    assert_eq!(followed.code, 0, "{followed}");
    assert_eq!(followed.stdout, "app | later\n", "{followed}");
    assert_torn_down(&forge);
}

#[test]
fn logging_rotates_the_log_file_at_max_size_and_none_keeps_none() {
    let forge = Forge::new();
    let file = compose_file_named(
        "compose.yaml",
        r#"services:
  chatty:
    image: host
    stop_signal: SIGKILL
    logging: {driver: json-file, options: {max-size: "100", max-file: "2"}}
    command: ["sh", "-c", "seq 1 100; echo done; exec sleep 1d"]
  quiet:
    image: host
    stop_signal: SIGKILL
    logging: {driver: none}
    command: ["sh", "-c", "echo hidden; exec sleep 1d"]
"#,
    );
    let mut sup = Supervisor::start(&forge, "rot", &file.path, &[]);
    sup.wait_output("chatty", "its last line", |l| l == "done");
    sup.wait_output("quiet", "its line", |l| l == "hidden");
    let dir = forge.root().join("containers").join(
        forge.inspect("rot-chatty")["Config"]["id"]
            .as_str()
            .unwrap(),
    );
    let size = |name: &str| std::fs::metadata(dir.join(name)).map(|m| m.len()).ok();
    assert!(
        size("container.log").is_some_and(|n| n <= 100),
        "{:?}",
        size("container.log")
    );
    assert!(
        size("container.log.1").is_some_and(|n| n <= 100),
        "{:?}",
        size("container.log.1")
    );
    assert_eq!(size("container.log.2"), None, "max-file 2 keeps two files");
    // forge logs reads the rotated file, then the current one: the newest lines, in order.
    let logs = forge.ok(&["logs", "rot-chatty"]).stdout;
    assert!(logs.ends_with("99\n100\ndone\n"), "{logs:?}");
    assert!(
        !logs.starts_with("1\n"),
        "the oldest lines were rotated out: {logs:?}"
    );
    let numbers: Vec<u32> = logs.lines().filter_map(|l| l.parse().ok()).collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{logs:?}");
    let quiet_dir = forge
        .root()
        .join("containers")
        .join(forge.inspect("rot-quiet")["Config"]["id"].as_str().unwrap());
    assert!(
        !quiet_dir.join("container.log").exists(),
        "the none driver keeps no log"
    );
    forge.note_ids(forge.container_ids());
    stop_cleanly(&forge, &mut sup);
}

#[test]
fn forge_compose_up_of_one_service_starts_it_and_its_dependencies_only() {
    let forge = Forge::new();
    let file = compose_file_named(
        "compose.yaml",
        "name: some\nvolumes:\n  data: {}\nservices:\n  a:\n    image: host\n    stop_signal: SIGKILL\n    volumes: [\"data:/data\"]\n    command: [sleep, 1d]\n  b:\n    image: host\n    stop_signal: SIGKILL\n    depends_on: [a]\n    command: [sleep, 1d]\n  c:\n    image: host\n    command: [sleep, 1d]\n",
    );
    let path = file.path.to_str().unwrap();
    let up = forge.ok(&["compose", "-f", path, "up", "-d", "b"]);
    assert_eq!(
        sorted_lines(&up.stdout),
        ["Container some-a  Started", "Container some-b  Started"],
        "{up}"
    );
    forge.note_ids(forge.container_ids());
    assert_eq!(container_names(&forge), ["some-a", "some-b"]);
    let more = forge.run(&["compose", "-f", path, "up", "-d", "c"]);
    assert_eq!(more.code, 1, "{more}");
    assert!(
        more.stderr
            .contains("up -d of some of its services is not supported yet"),
        "{more}"
    );
    assert_eq!(container_names(&forge), ["some-a", "some-b"]);
    let volumes = || forge.ok(&["volume", "ls", "-q"]).stdout;
    // down keeps the project's volumes; down -v removes them, as Compose's.
    forge.ok(&["compose", "-f", path, "down", "-t", "1"]);
    assert_eq!(volumes(), "some_data\n");
    forge.ok(&["compose", "-f", path, "up", "-d", "a"]);
    forge.note_ids(forge.container_ids());
    forge.ok(&["compose", "-f", path, "down", "-v", "-t", "1"]);
    assert_eq!(volumes(), "");
    assert_torn_down(&forge);
}
