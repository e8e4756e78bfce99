//! The supervisor's core on tokio's paused clock, against a scripted [`Fake`] engine: restart
//! backoff, restart policies, dependency conditions, health checks, stopping. Each test reads
//! the fake's log of what happened when, in virtual milliseconds since the start.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use forge_runtime::ExitInfo;
use nix::sys::signal::Signal;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::control::{Action, Request};
use super::engine::{Engine, StartError};
use super::{supervise_all, Options};
use crate::compose::Compose;
use crate::health::Health;

/// How one run of a fake service's container behaves.
#[derive(Debug, Clone)]
struct Run {
    start: Result<(), StartError>,
    /// It exits on its own with `code` after this long.
    lasts: Duration,
    code: i32,
    /// It exits (128 + signal) on its stop signal; otherwise only SIGKILL ends it.
    obeys_stop: bool,
    /// Its health probes' results in turn, the last one repeating.
    probes: Vec<bool>,
    /// Its exit was a `forge stop` of the user's.
    stopped_by_user: bool,
}

impl Run {
    fn exiting(code: i32, after_ms: u64) -> Self {
        Run {
            start: Ok(()),
            lasts: ms(after_ms),
            code,
            obeys_stop: true,
            probes: vec![true],
            stopped_by_user: false,
        }
    }

    fn stopped_by_user(mut self) -> Self {
        self.stopped_by_user = true;
        self
    }

    fn daemon() -> Self {
        Self::exiting(0, 1_000_000_000)
    }

    fn ignoring_stop(mut self) -> Self {
        self.obeys_stop = false;
        self
    }

    fn probes(mut self, probes: &[bool]) -> Self {
        self.probes = probes.to_vec();
        self
    }

    fn failing_start(why: StartError) -> Self {
        Run {
            start: Err(why),
            ..Self::daemon()
        }
    }
}

struct Current {
    run: Run,
    end: watch::Sender<Option<i32>>,
    probes_done: usize,
}

/// An engine whose containers follow scripts: service → its runs in order, the last repeating.
struct Fake {
    t0: Instant,
    scripts: HashMap<String, Vec<Run>>,
    image_stop_signal: Signal,
    started: Mutex<HashMap<String, usize>>,
    current: Mutex<HashMap<String, Current>>,
    log: Mutex<Vec<(u64, String)>>,
    /// The services whose last run the user stopped.
    user_stopped: Mutex<Vec<String>>,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl Fake {
    fn new(scripts: &[(&str, Vec<Run>)]) -> Self {
        Fake {
            t0: Instant::now(),
            scripts: scripts
                .iter()
                .map(|(name, runs)| (name.to_string(), runs.clone()))
                .collect(),
            image_stop_signal: Signal::SIGTERM,
            started: Mutex::default(),
            current: Mutex::default(),
            log: Mutex::default(),
            user_stopped: Mutex::default(),
        }
    }

    fn note(&self, service: &str, what: &str) {
        let at = self.t0.elapsed().as_millis() as u64;
        self.log
            .lock()
            .unwrap()
            .push((at, format!("{service} {what}")));
    }

    fn end(&self, service: &str, code: i32) {
        if let Some(current) = self.current.lock().unwrap().get(service) {
            current.end.send_replace(Some(code));
        }
    }
}

impl Engine for Fake {
    async fn start(&self, service: &str, restarts: u32) -> Result<i32, StartError> {
        let n = {
            let mut started = self.started.lock().unwrap();
            let n = started.entry(service.to_string()).or_default();
            *n += 1;
            *n
        };
        let runs = &self.scripts[service];
        let run = runs[(n - 1).min(runs.len() - 1)].clone();
        if let Err(e) = &run.start {
            self.note(service, &format!("start failed ({restarts} restarts)"));
            return Err(e.clone());
        }
        self.note(service, &format!("start ({restarts} restarts)"));
        let current = Current {
            run,
            end: watch::channel(None).0,
            probes_done: 0,
        };
        self.current
            .lock()
            .unwrap()
            .insert(service.to_string(), current);
        Ok(1000 + n as i32)
    }

    async fn exited(&self, service: &str) -> ExitInfo {
        let (lasts, code, mut end) = {
            let current = self.current.lock().unwrap();
            let c = &current[service];
            (c.run.lasts, c.run.code, c.end.subscribe())
        };
        let code = tokio::select! {
            _ = tokio::time::sleep(lasts) => code,
            ended = end.wait_for(Option::is_some) => ended.map_or(255, |c| c.expect("some")),
        };
        ExitInfo {
            code,
            signal: None,
            reason: "exited".into(),
        }
    }

    async fn record_exit(&self, service: &str, exit: ExitInfo) -> ExitInfo {
        let ended = self.current.lock().unwrap().remove(service);
        if ended.is_some_and(|c| c.run.stopped_by_user) {
            self.user_stopped.lock().unwrap().push(service.to_string());
        }
        self.note(service, &format!("exit {}", exit.code));
        exit
    }

    fn stopped_by_user(&self, service: &str) -> bool {
        self.user_stopped
            .lock()
            .unwrap()
            .iter()
            .any(|s| s == service)
    }

    fn running(&self, service: &str) -> bool {
        self.current.lock().unwrap().contains_key(service)
    }

    fn signal(&self, service: &str, signal: Signal) {
        let obeys = match self.current.lock().unwrap().get(service) {
            Some(current) => current.run.obeys_stop,
            None => return,
        };
        self.note(service, &format!("signal {}", signal.as_str()));
        if obeys {
            self.end(service, 128 + signal as i32);
        }
    }

    fn kill(&self, service: &str) {
        if self.running(service) {
            self.note(service, "kill");
            self.end(service, 137);
        }
    }

    fn image_stop_signal(&self, _service: &str) -> Signal {
        self.image_stop_signal
    }

    async fn probe(&self, service: &str, _test: &[String], _timeout: Duration) -> bool {
        let mut current = self.current.lock().unwrap();
        let Some(c) = current.get_mut(service) else {
            return false;
        };
        let probes = &c.run.probes;
        let ok = probes
            .get(c.probes_done)
            .or(probes.last())
            .copied()
            .unwrap_or(false);
        c.probes_done += 1;
        ok
    }

    fn record_health(&self, service: &str, health: Health) {
        self.note(service, &format!("health {health}"));
    }

    fn container_name(&self, service: &str) -> String {
        format!("p-{service}")
    }

    async fn prepare(&self, news: &Compose, added: &[String]) -> Result<(), String> {
        self.note("project", &format!("prepare {}", added.join(" ")));
        let services: Vec<&str> = news.services.keys().map(String::as_str).collect();
        self.note("project", &format!("news {}", services.join(" ")));
        Ok(())
    }

    fn define(&self, _compose: &Compose, service: &str) {
        self.note(service, "define");
    }

    async fn remove(&self, service: &str) {
        self.note(service, "remove");
    }
}

fn compose(text: &str) -> Compose {
    crate::compose::parse(Path::new("compose.toml"), text).unwrap_or_else(|e| panic!("{e}"))
}

/// What a test gets back: the exit code, and the log.
struct Outcome {
    code: i32,
    log: Vec<(u64, String)>,
}

impl Outcome {
    /// The log lines of `service` that start with `what`, as (ms, line).
    fn of(&self, service: &str, what: &str) -> Vec<u64> {
        let prefix = format!("{service} {what}");
        self.log
            .iter()
            .filter(|(_, line)| line.starts_with(&prefix))
            .map(|(at, _)| *at)
            .collect()
    }

    /// When exactly `line` was logged.
    fn at(&self, line: &str) -> Vec<u64> {
        self.log
            .iter()
            .filter(|(_, logged)| logged == line)
            .map(|(at, _)| *at)
            .collect()
    }

    fn lines(&self) -> Vec<String> {
        self.log
            .iter()
            .map(|(at, line)| format!("{at} {line}"))
            .collect()
    }
}

/// Runs `text`'s services against `fake`, sending an interrupt at each of `interrupts_at`.
async fn supervise(text: &str, fake: Fake, opts: Options, interrupts_at: &[u64]) -> Outcome {
    supervise_asked(text, fake, opts, interrupts_at, Vec::new()).await
}

/// [`supervise`], asking each of `requests` at its time; their answers' lines go in the log
/// as `reply LINE`.
async fn supervise_asked(
    text: &str,
    fake: Fake,
    opts: Options,
    interrupts_at: &[u64],
    requests: Vec<(u64, Action)>,
) -> Outcome {
    let compose = compose(text);
    let fake = Arc::new(fake);
    let (requests_tx, requests_rx) = mpsc::unbounded_channel();
    for (at, action) in requests {
        let (requests_tx, fake) = (requests_tx.clone(), Arc::clone(&fake));
        tokio::spawn(async move {
            tokio::time::sleep(ms(at)).await;
            let (reply, mut lines) = mpsc::unbounded_channel();
            let _ = requests_tx.send(Request { action, reply });
            while let Some(line) = lines.recv().await {
                fake.note("reply", &line);
            }
        });
    }
    drop(requests_tx);
    let (tx, rx) = mpsc::unbounded_channel();
    for &at in interrupts_at {
        let tx = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ms(at)).await;
            let _ = tx.send(());
        });
    }
    let (code, _, _) = supervise_all(Arc::clone(&fake), compose, &opts, rx, requests_rx).await;
    let log = fake.log.lock().unwrap().clone();
    Outcome { code, log }
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_up_to_max_and_resets_after_a_long_run() {
    let text = r#"
[x-backoff]
initial = "1s"
max = "4s"
reset_after = "10s"

[services.app]
image = "host"
restart = "always"
"#;
    let short = Run::exiting(0, 500);
    let runs = vec![
        short.clone(),
        short.clone(),
        short.clone(),
        short.clone(),
        Run::exiting(0, 20_000),
        short,
    ];
    let out = supervise(
        text,
        Fake::new(&[("app", runs)]),
        Options::default(),
        &[40_000],
    )
    .await;
    // Exits 0.5 s after each start; delays 1, 2, 4, 4 (capped); after the 20 s run 1 s again,
    // then doubling anew (2 s).
    assert_eq!(
        out.of("app", "start"),
        [0, 1_500, 4_000, 8_500, 13_000, 34_000, 36_500],
        "{:#?}",
        out.lines()
    );
    assert_eq!(out.of("app", "start (5 restarts)"), [34_000]);
    assert_eq!(out.code, 0);
}

#[tokio::test(start_paused = true)]
async fn a_container_the_user_stopped_is_not_restarted_by_restart_always() {
    let text = r#"
[x-backoff]
initial = "1s"

[services.app]
image = "host"
restart = "always"
"#;
    let runs = vec![
        Run::exiting(0, 500),
        Run::exiting(143, 500).stopped_by_user(),
    ];
    // No interrupt: once its container was stopped by the user, nothing is left to supervise.
    let out = supervise(text, Fake::new(&[("app", runs)]), Options::default(), &[]).await;
    assert_eq!(out.of("app", "start"), [0, 1_500], "{:#?}", out.lines());
    assert_eq!(out.of("app", "exit"), [500, 2_000], "{:#?}", out.lines());
}

#[tokio::test(start_paused = true)]
async fn on_failure_n_restarts_n_times_and_never_after_a_zero_exit() {
    let text = r#"
[x-backoff]
initial = "1s"

[services.flaky]
image = "host"
restart = "on-failure:2"

[services.clean]
image = "host"
restart = "on-failure"
"#;
    let fake = Fake::new(&[
        ("flaky", vec![Run::exiting(3, 100)]),
        ("clean", vec![Run::exiting(0, 100)]),
    ]);
    // No interrupt: the supervisor ends by itself once every service is done for good.
    let out = supervise(text, fake, Options::default(), &[]).await;
    assert_eq!(
        out.of("flaky", "start"),
        [0, 1_100, 3_200],
        "{:#?}",
        out.lines()
    );
    assert_eq!(out.of("flaky", "exit 3"), [100, 1_200, 3_300]);
    assert_eq!(out.of("clean", "start"), [0]);
    assert_eq!(out.code, 0);
}

#[tokio::test(start_paused = true)]
async fn each_depends_on_condition_waits_for_its_event() {
    let text = r#"
[services.db]
image = "host"
healthcheck = { test = ["CMD", "true"], interval = "1s", retries = 3 }

[services.migrate]
image = "host"
restart = "no"

[services.web]
image = "host"
depends_on = { db = { condition = "service_healthy" }, migrate = { condition = "service_completed_successfully" } }

[services.sidecar]
image = "host"
depends_on = { web = { condition = "service_started" } }
"#;
    let fake = Fake::new(&[
        ("db", vec![Run::daemon().probes(&[false, false, true])]),
        ("migrate", vec![Run::exiting(0, 5_000)]),
        ("web", vec![Run::daemon()]),
        ("sidecar", vec![Run::daemon()]),
    ]);
    let out = supervise(text, fake, Options::default(), &[10_000]).await;
    assert_eq!(
        out.of("db", "health healthy"),
        [3_000],
        "{:#?}",
        out.lines()
    );
    // Healthy at 3 s, but migrate completes only at 5 s.
    assert_eq!(out.of("web", "start"), [5_000]);
    assert_eq!(out.of("sidecar", "start"), [5_000]);
    assert_eq!(out.code, 0);
}

#[tokio::test(start_paused = true)]
async fn a_dependency_that_fails_or_never_gets_healthy_keeps_its_dependants_down() {
    let text = r#"
[services.db]
image = "host"
healthcheck = { test = ["CMD", "true"], interval = "1s", retries = 2 }

[services.job]
image = "host"
restart = "no"

[services.web]
image = "host"
depends_on = { db = { condition = "service_healthy" } }

[services.report]
image = "host"
depends_on = { job = { condition = "service_completed_successfully" } }
"#;
    let fake = Fake::new(&[
        ("db", vec![Run::daemon().probes(&[false])]),
        ("job", vec![Run::exiting(1, 1_000)]),
        ("web", vec![Run::daemon()]),
        ("report", vec![Run::daemon()]),
    ]);
    let out = supervise(text, fake, Options::default(), &[60_000]).await;
    assert_eq!(
        out.of("db", "health unhealthy"),
        [2_000],
        "{:#?}",
        out.lines()
    );
    assert!(out.of("web", "start").is_empty());
    assert!(out.of("report", "start").is_empty());
    // A service that could not start makes the exit code non-zero.
    assert_eq!(out.code, 1);
}

#[tokio::test(start_paused = true)]
async fn failures_in_the_start_period_do_not_count_then_retries_do() {
    let text = r#"
[services.db]
image = "host"
healthcheck = { test = ["CMD", "true"], interval = "1s", retries = 2, start_period = "5s" }
"#;
    let fake = Fake::new(&[("db", vec![Run::daemon().probes(&[false])])]);
    let out = supervise(text, fake, Options::default(), &[20_000]).await;
    // Probes at 1..4 s fall in the start period; those at 5 and 6 s count: unhealthy at 6 s.
    assert_eq!(
        out.of("db", "health starting"),
        [1_000],
        "{:#?}",
        out.lines()
    );
    assert_eq!(out.of("db", "health unhealthy"), [6_000]);
    assert!(out.of("db", "health healthy").is_empty());
}

#[tokio::test(start_paused = true)]
async fn start_interval_probes_quickly_during_the_start_period_then_interval_takes_over() {
    let text = r#"
[services.db]
image = "host"
healthcheck = { test = ["CMD", "true"], interval = "10s", retries = 1, start_period = "3s", start_interval = "500ms" }
"#;
    let fake = Fake::new(&[(
        "db",
        vec![Run::daemon().probes(&[false, false, true, false])],
    )]);
    let out = supervise(text, fake, Options::default(), &[40_000]).await;
    // Probes at 0.5, 1 and 1.5 s (the third succeeds); once healthy, every 10 s: 11.5 s fails.
    assert_eq!(
        out.of("db", "health healthy"),
        [1_500],
        "{:#?}",
        out.lines()
    );
    assert_eq!(
        out.of("db", "health unhealthy"),
        [11_500],
        "{:#?}",
        out.lines()
    );
}

#[tokio::test(start_paused = true)]
async fn stop_goes_in_reverse_order_and_kills_after_the_grace_period() {
    let text = r#"
[services.db]
image = "host"

[services.web]
image = "host"
depends_on = ["db"]
stop_grace_period = "2s"
stop_signal = "SIGQUIT"

[services.cache]
image = "host"
"#;
    let fake = Fake::new(&[
        ("db", vec![Run::daemon()]),
        ("web", vec![Run::daemon().ignoring_stop()]),
        ("cache", vec![Run::daemon()]),
    ]);
    let out = supervise(text, fake, Options::default(), &[5_000]).await;
    // web and cache have no dependants: both are signalled at once, cache exits on its signal.
    assert_eq!(
        out.of("cache", "signal SIGTERM"),
        [5_000],
        "{:#?}",
        out.lines()
    );
    assert_eq!(out.of("cache", "exit 143"), [5_000]);
    assert_eq!(out.of("web", "signal SIGQUIT"), [5_000]);
    // web ignores it: SIGKILL after its 2 s grace period.
    assert_eq!(out.of("web", "kill"), [7_000]);
    assert_eq!(out.of("web", "exit 137"), [7_000]);
    // db only once web, which depends on it, is gone.
    let db_signal = out
        .lines()
        .iter()
        .position(|l| l == "7000 db signal SIGTERM");
    let web_exit = out.lines().iter().position(|l| l == "7000 web exit 137");
    assert!(db_signal > web_exit, "{:#?}", out.lines());
    assert_eq!(out.of("db", "exit 143"), [7_000]);
    assert_eq!(out.code, 0);
}

#[tokio::test(start_paused = true)]
async fn a_second_interrupt_kills_everything_at_once() {
    let text = r#"
[services.a]
image = "host"
stop_grace_period = "30s"

[services.b]
image = "host"
stop_grace_period = "30s"
"#;
    let fake = Fake::new(&[
        ("a", vec![Run::daemon().ignoring_stop()]),
        ("b", vec![Run::daemon().ignoring_stop()]),
    ]);
    let began = Instant::now();
    let out = supervise(text, fake, Options::default(), &[5_000, 6_000]).await;
    assert_eq!(out.of("a", "kill"), [6_000], "{:#?}", out.lines());
    assert_eq!(out.of("b", "kill"), [6_000]);
    assert!(began.elapsed() < ms(7_000), "waited {:?}", began.elapsed());
}

#[tokio::test(start_paused = true)]
async fn without_a_stop_signal_in_the_file_the_images_is_sent() {
    let text = r#"
[services.app]
image = "host"
"#;
    let mut fake = Fake::new(&[("app", vec![Run::daemon()])]);
    fake.image_stop_signal = Signal::SIGUSR1;
    let out = supervise(text, fake, Options::default(), &[1_000]).await;
    assert_eq!(
        out.of("app", "signal SIGUSR1"),
        [1_000],
        "{:#?}",
        out.lines()
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_first_start_gives_up_but_a_failed_restart_is_retried() {
    let text = r#"
[x-backoff]
initial = "1s"

[services.broken]
image = "host"

[services.flaky]
image = "host"
restart = "always"
"#;
    let fake = Fake::new(&[
        (
            "broken",
            vec![Run::failing_start(StartError::Start("no such file".into()))],
        ),
        (
            "flaky",
            vec![
                Run::exiting(1, 100),
                Run::failing_start(StartError::Start("busy".into())),
                Run::daemon(),
            ],
        ),
    ]);
    let out = supervise(text, fake, Options::default(), &[10_000]).await;
    assert_eq!(out.of("broken", "start failed"), [0], "{:#?}", out.lines());
    assert_eq!(out.of("broken", "start"), [0], "never tried again");
    // Exit at 0.1 s, restart at 1.1 s fails (counts as a run), next at 3.1 s after 2 s.
    assert_eq!(out.of("flaky", "start failed"), [1_100]);
    assert_eq!(out.of("flaky", "start (2 restarts)"), [3_100]);
    assert_eq!(out.code, 1, "a service could not be started at all");
}

#[tokio::test(start_paused = true)]
async fn exit_code_from_stops_the_others_and_returns_that_services_code() {
    let text = r#"
[services.test]
image = "host"
restart = "no"

[services.db]
image = "host"
"#;
    let fake = Fake::new(&[
        ("test", vec![Run::exiting(3, 2_000)]),
        ("db", vec![Run::daemon()]),
    ]);
    let opts = Options {
        abort_on_container_exit: true,
        exit_code_from: Some("test".into()),
        ..Options::default()
    };
    let out = supervise(text, fake, opts, &[]).await;
    assert_eq!(
        out.of("db", "signal SIGTERM"),
        [2_000],
        "{:#?}",
        out.lines()
    );
    assert_eq!(out.code, 3);
}

const TWO_DAEMONS: &str = r#"
[services.db]
image = "host"
command = ["db"]

[services.web]
image = "host"
command = ["web"]
restart = "always"
depends_on = ["db"]
"#;

/// Runs `text` against `fake`, converging on `new` at 1 s, stopping at 5 s.
async fn converge_at_1s(text: &str, fake: Fake, new: &str) -> Outcome {
    let converge = Action::Converge(Box::new(compose(new)));
    let requests = vec![(1_000, converge)];
    supervise_asked(text, fake, Options::default(), &[5_000], requests).await
}

#[tokio::test(start_paused = true)]
async fn converging_recreates_only_the_changed_service_and_starts_the_new_one() {
    let changed = format!(
        "{}\n[services.cache]\nimage = \"host\"\n",
        TWO_DAEMONS.replace(r#"["web"]"#, r#"["web", "-v"]"#)
    );
    let fake = Fake::new(&[
        ("db", vec![Run::daemon()]),
        ("web", vec![Run::daemon()]),
        ("cache", vec![Run::daemon()]),
    ]);
    let out = converge_at_1s(TWO_DAEMONS, fake, &changed).await;
    let lines = out.lines();
    assert_eq!(out.of("db", "start"), [0], "{lines:#?}");
    assert!(
        out.of("db", "signal").iter().all(|&at| at >= 5_000),
        "{lines:#?}"
    );
    assert_eq!(out.of("web", "signal"), [1_000, 5_000], "{lines:#?}");
    assert_eq!(out.of("web", "remove"), [1_000], "{lines:#?}");
    assert_eq!(out.of("web", "start"), [0, 1_000], "{lines:#?}");
    assert_eq!(out.of("cache", "start"), [1_000], "{lines:#?}");
    assert_eq!(out.of("project", "prepare cache"), [1_000], "{lines:#?}");
    assert_eq!(out.at("project news cache web"), [1_000], "{lines:#?}");
    for said in [
        "reply Container p-web  Recreated",
        "reply Container p-db  Running",
        "reply Container p-web  Started",
        "reply Container p-cache  Started",
        "reply ok",
    ] {
        assert_eq!(out.at(said), [1_000], "{said}: {lines:#?}");
    }
    assert_eq!(out.code, 0);
}

#[tokio::test(start_paused = true)]
async fn converging_on_a_file_without_a_service_stops_and_removes_it() {
    let fake = Fake::new(&[("db", vec![Run::daemon()]), ("web", vec![Run::daemon()])]);
    let only_db = "[services.db]\nimage = \"host\"\ncommand = [\"db\"]\n";
    let out = converge_at_1s(TWO_DAEMONS, fake, only_db).await;
    let lines = out.lines();
    assert_eq!(out.of("web", "signal"), [1_000], "{lines:#?}");
    assert_eq!(out.of("web", "remove"), [1_000], "{lines:#?}");
    assert_eq!(out.of("web", "start"), [0], "{lines:#?}");
    assert_eq!(out.of("db", "start"), [0], "{lines:#?}");
    assert_eq!(
        out.at("reply Container p-web  Removed"),
        [1_000],
        "{lines:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_service_stopped_through_the_socket_stays_stopped_until_started() {
    let fake = Fake::new(&[("db", vec![Run::daemon()]), ("web", vec![Run::daemon()])]);
    let stop = Action::Stop {
        services: vec!["web".into()],
        timeout: Some(ms(300)),
    };
    let start = Action::Start {
        services: vec!["web".into()],
    };
    let unknown = Action::Restart {
        services: vec!["nope".into()],
        timeout: None,
    };
    let opts = Options {
        stay_up: true,
        ..Options::default()
    };
    let out = supervise_asked(
        TWO_DAEMONS,
        fake,
        opts,
        &[9_000],
        vec![(1_000, stop), (4_000, start), (6_000, unknown)],
    )
    .await;
    let lines = out.lines();
    // restart = "always" does not bring it back: the user stopped it.
    assert_eq!(out.of("web", "start"), [0, 4_000], "{lines:#?}");
    assert_eq!(out.of("web", "signal"), [1_000, 9_000], "{lines:#?}");
    assert_eq!(out.of("db", "start"), [0], "{lines:#?}");
    assert_eq!(
        out.at("reply Container p-web  Stopped"),
        [1_000],
        "{lines:#?}"
    );
    assert_eq!(
        out.at("reply Container p-web  Started"),
        [4_000],
        "{lines:#?}"
    );
    assert_eq!(
        out.at("reply error: no such service: nope"),
        [6_000],
        "{lines:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn down_through_the_socket_stops_everything_with_its_grace_period() {
    let fake = Fake::new(&[
        ("db", vec![Run::daemon()]),
        ("web", vec![Run::daemon().ignoring_stop()]),
    ]);
    let down = Action::Down {
        timeout: Some(ms(2_000)),
        volumes: false,
    };
    let out = supervise_asked(
        TWO_DAEMONS,
        fake,
        Options::default(),
        &[],
        vec![(1_000, down)],
    )
    .await;
    let lines = out.lines();
    assert_eq!(out.of("web", "signal"), [1_000], "{lines:#?}");
    assert_eq!(out.of("web", "kill"), [3_000], "{lines:#?}");
    assert_eq!(out.of("db", "signal"), [3_000], "{lines:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_changed_network_definition_is_refused_and_nothing_changes() {
    let with_net = |subnet: &str| {
        format!("{TWO_DAEMONS}\n[networks.default]\nsubnet = \"{subnet}\"\n")
            .replace(r#"["web"]"#, r#"["web", "x"]"#)
    };
    let fake = Fake::new(&[("db", vec![Run::daemon()]), ("web", vec![Run::daemon()])]);
    let out = converge_at_1s(&with_net("10.89.6.0/24"), fake, &with_net("10.89.7.0/24")).await;
    let lines = out.lines();
    assert_eq!(out.of("web", "start"), [0], "{lines:#?}");
    assert!(out.of("project", "prepare").is_empty(), "{lines:#?}");
    let refused = out
        .log
        .iter()
        .find(|(_, l)| l.starts_with("reply error: network default's definition changed"));
    assert!(refused.is_some(), "{lines:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_dependant_with_restart_true_restarts_with_its_dependency_and_only_it() {
    let text = format!(
        "{TWO_DAEMONS}\n[services.api]\nimage = \"host\"\ndepends_on = {{ db = {{ condition = \"service_started\", restart = true }} }}\n"
    );
    let fake = Fake::new(&[
        ("db", vec![Run::daemon()]),
        ("web", vec![Run::daemon()]),
        ("api", vec![Run::daemon()]),
    ]);
    let restart = Action::Restart {
        services: vec!["db".into()],
        timeout: None,
    };
    let changed_db = text.replacen(r#"["db"]"#, r#"["db", "-v"]"#, 1);
    let converge = Action::Converge(Box::new(compose(&changed_db)));
    let out = supervise_asked(
        &text,
        fake,
        Options::default(),
        &[9_000],
        vec![(1_000, restart), (4_000, converge)],
    )
    .await;
    let lines = out.lines();
    assert_eq!(out.of("db", "start"), [0, 1_000, 4_000], "{lines:#?}");
    assert_eq!(out.of("api", "start"), [0, 1_000, 4_000], "{lines:#?}");
    assert_eq!(out.of("api", "remove"), Vec::<u64>::new(), "{lines:#?}");
    assert_eq!(out.of("web", "start"), [0], "{lines:#?}");
}
