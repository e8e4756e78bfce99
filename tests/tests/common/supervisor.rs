//! A `forge-supervise` run in the background inside a test's network namespace (see
//! [`Forge::supervise`]), its stdout (service output, `name | line`) and stderr (its own events,
//! `INFO name: started ...`) read line by line as they come, each line stamped with the time it
//! arrived; compose files and service commands for it, and the checks that it stopped cleanly.
//!
//! # Caveats
//! Dropping a [`Supervisor`] that still runs sends SIGTERM, then SIGKILL after 15 s, so a failed
//! test still stops its containers before [`Forge`]'s own leak check.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{exit_code, scaled, Forge};

/// How long a supervisor may take to bring something up or to stop, before the test fails.
pub const UP: Duration = Duration::from_secs(20);

/// The lines of one output stream as they arrive.
#[derive(Default)]
pub struct Stream {
    lines: Mutex<Vec<(Instant, String)>>,
    closed: AtomicBool,
}

impl Stream {
    fn read(pipe: impl std::io::Read + Send + 'static) -> Arc<Self> {
        let stream = Arc::new(Stream::default());
        let writer = Arc::clone(&stream);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                writer
                    .lines
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((Instant::now(), line));
            }
            writer.closed.store(true, Ordering::SeqCst);
        });
        stream
    }

    pub fn lines(&self) -> Vec<(Instant, String)> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn text(&self) -> String {
        self.lines()
            .into_iter()
            .map(|(_, l)| l + "\n")
            .collect::<String>()
    }
}

/// One of the supervisor's own log lines: `service: message`.
#[derive(Debug, Clone)]
pub struct Event {
    /// Position among all stderr lines (for ordering).
    pub index: usize,
    pub at: Instant,
    /// What follows `service: `.
    pub message: String,
}

/// A line of a service's output: `service | text`.
#[derive(Debug, Clone)]
pub struct Line {
    pub index: usize,
    pub at: Instant,
    pub text: String,
}

/// The message of a tracing line, without its level: ` INFO web: started` -> `web: started`.
fn message(line: &str) -> &str {
    let line = line.trim_start();
    for level in ["INFO ", "WARN ", "ERROR ", "DEBUG ", "TRACE "] {
        if let Some(rest) = line.strip_prefix(level) {
            return rest.trim_start();
        }
    }
    line
}

pub struct Supervisor {
    child: Child,
    what: String,
    /// Its stdout: the services' output, `name | line`.
    pub out: Arc<Stream>,
    /// Its stderr: its own events, `INFO name: started ...`.
    pub err: Arc<Stream>,
    code: Option<i32>,
}

impl Supervisor {
    /// `forge-supervise --root ROOT -p PROJECT EXTRA... FILE` in the test's network namespace.
    pub fn start(forge: &Forge, project: &str, file: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(forge, project, file, extra, &[])
    }

    /// [`Supervisor::start`] with environment variables `env` set for the supervisor.
    pub fn start_with_env(
        forge: &Forge,
        project: &str,
        file: &Path,
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> Self {
        let file = file.to_str().expect("utf-8 path");
        let mut args = vec!["-p", project];
        args.extend_from_slice(extra);
        args.push(file);
        let mut cmd = forge.supervise(&args);
        cmd.envs(env.iter().copied());
        Self::spawn(&mut cmd, &format!("forge-supervise {}", args.join(" ")))
    }

    /// Starts the supervisor command `cmd` (from [`Forge::supervise`]), described as `what`.
    pub fn spawn(cmd: &mut std::process::Command, what: &str) -> Self {
        let what = what.to_string();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning forge-supervise");
        let out = Stream::read(child.stdout.take().expect("piped"));
        let err = Stream::read(child.stderr.take().expect("piped"));
        Self {
            child,
            what,
            out,
            err,
            code: None,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig)
            .expect("signalling forge-supervise");
    }

    /// The exit code (128 + N for signal N) once it has exited.
    pub fn exited(&mut self) -> Option<i32> {
        if self.code.is_none() {
            if let Some(status) = self.child.try_wait().expect("waiting for forge-supervise") {
                self.code = Some(exit_code(status));
            }
        }
        self.code
    }

    /// Everything it printed so far, for failure messages.
    pub fn dump(&self) -> String {
        format!(
            "{} ({})\n--- stdout ---\n{}--- stderr ---\n{}",
            self.what,
            match self.code {
                Some(code) => format!("exited {code}"),
                None => "running".into(),
            },
            self.out.text(),
            self.err.text()
        )
    }

    /// The supervisor's events about `service`, in order.
    fn events(&self, service: &str) -> Vec<Event> {
        let prefix = format!("{service}: ");
        self.err
            .lines()
            .into_iter()
            .enumerate()
            .filter_map(|(index, (at, line))| {
                let message = message(&line).strip_prefix(&prefix)?.to_string();
                Some(Event { index, at, message })
            })
            .collect()
    }

    /// Events of `service` whose message starts with `start`.
    pub fn events_starting(&self, service: &str, start: &str) -> Vec<Event> {
        self.events(service)
            .into_iter()
            .filter(|e| e.message.starts_with(start))
            .collect()
    }

    /// `service`'s output lines, in order.
    pub fn output(&self, service: &str) -> Vec<Line> {
        self.out
            .lines()
            .into_iter()
            .enumerate()
            .filter_map(|(index, (at, line))| {
                let (name, text) = line.split_once(" | ")?;
                (name.trim() == service).then(|| Line {
                    index,
                    at,
                    text: text.to_string(),
                })
            })
            .collect()
    }

    /// Polls `check` until it gives `Some`; fails with the output so far after `timeout`, or
    /// as soon as the supervisor has exited and said all it will say without `check` holding.
    pub fn until<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            let ended = self.exited().is_some()
                && self.out.closed.load(Ordering::SeqCst)
                && self.err.closed.load(Ordering::SeqCst);
            if let Some(value) = check(self) {
                return value;
            }
            if ended {
                panic!(
                    "forge-supervise ended while waiting for {what}:\n{}",
                    self.dump()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}:\n{}",
                    self.dump()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the `n`th (1-based) event of `service` starting with `start`.
    pub fn wait_event(&mut self, service: &str, start: &str, n: usize) -> Event {
        self.until(UP, &format!("event #{n} `{service}: {start}`"), |s| {
            s.events_starting(service, start).into_iter().nth(n - 1)
        })
    }

    /// Waits for an output line of `service` for which `pred` holds.
    pub fn wait_output(&mut self, service: &str, what: &str, pred: impl Fn(&str) -> bool) -> Line {
        self.until(UP, &format!("{service} to print {what}"), |s| {
            s.output(service).into_iter().find(|l| pred(&l.text))
        })
    }

    /// Host pid of the latest start of `service`, from its `started (pid N)` event; waits for
    /// the event, which the supervisor may log after the container's first output line.
    pub fn started_pid(&mut self, service: &str) -> i64 {
        let event = self.until(UP, &format!("{service} to start"), |s| {
            s.events_starting(service, "started (pid ").pop()
        });
        event
            .message
            .trim_start_matches("started (pid ")
            .trim_end_matches(')')
            .parse()
            .unwrap_or_else(|_| panic!("a pid in {:?}", event.message))
    }

    /// Waits for the supervisor to exit and for its output to end; its exit code.
    pub fn finish(&mut self, timeout: Duration) -> i32 {
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        let code = loop {
            if let Some(code) = self.exited() {
                break code;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not exit within {timeout:?}:\n{}",
                    self.what,
                    self.dump()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // A process that outlives the supervisor (a leaked container) would hold its pipes open.
        let closed = Instant::now() + scaled(Duration::from_secs(5));
        while !(self.out.closed.load(Ordering::SeqCst) && self.err.closed.load(Ordering::SeqCst)) {
            if Instant::now() >= closed {
                panic!(
                    "forge-supervise exited but something still holds its output open:\n{}",
                    self.dump()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        code
    }
}

impl Drop for Supervisor {
    /// A test that failed half-way still stops its supervisor: SIGTERM, then SIGKILL.
    fn drop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A compose file written into a temp dir of its own.
pub struct ComposeFile {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn compose_file(text: &str) -> ComposeFile {
    compose_file_named("compose.toml", text)
}

/// A compose file named `name` (`compose.yaml` …) in a temp dir of its own.
pub fn compose_file_named(name: &str, text: &str) -> ComposeFile {
    let dir = tempfile::Builder::new()
        .prefix("forge-compose-")
        .tempdir()
        .expect("compose tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {name}: {e}"));
    ComposeFile { _dir: dir, path }
}

/// A `command` for a service that says `NAME up`, then waits; on SIGTERM it says
/// `NAME stopping`, takes `stop_secs` to finish, says `NAME stopped` and exits 0.
pub fn daemon(name: &str, stop_secs: &str) -> String {
    format!(
        r#"["sh", "-c", '''
trap 'echo {name} stopping; sleep {stop_secs}; echo {name} stopped; exit 0' TERM
echo {name} up
while true; do sleep 1 & wait $!; done
''']"#
    )
}

/// A `command` that runs `script`, then waits until SIGTERM and exits 0.
pub fn report_then_wait(script: &str) -> String {
    format!(
        r#"["sh", "-c", '''
trap 'exit 0' TERM
{script}
while true; do sleep 1 & wait $!; done
''']"#
    )
}

/// Fails unless everything the supervisor made is gone: containers, links, nftables rules,
/// processes, mounts, cgroups and address leases.
pub fn assert_torn_down(forge: &Forge) {
    assert_eq!(
        forge.ps(&["-a"]),
        Vec::<String>::new(),
        "forge ps -a after the stop"
    );
    forge.assert_no_containers();
    assert_eq!(
        forge.netns.links(),
        vec!["lo".to_string()],
        "links left in the test's network namespace"
    );
    let ruleset = forge.netns.ok("nft", &["list", "ruleset"]);
    assert!(
        !ruleset.contains("forge"),
        "nftables rules left behind:\n{ruleset}"
    );
    let left = forge.leftovers();
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
}

/// Sends SIGTERM and waits for the supervisor to exit; its exit code and how long it took.
pub fn terminate(sup: &mut Supervisor) -> (i32, Duration) {
    let t0 = Instant::now();
    sup.signal(Signal::SIGTERM);
    let code = sup.finish(UP);
    let took = t0.elapsed();
    eprintln!("{}: stopped in {took:?}, exit code {code}", sup.what);
    (code, took)
}

/// SIGTERM: the supervisor must exit 0 and leave nothing of the project behind.
pub fn stop_cleanly(forge: &Forge, sup: &mut Supervisor) {
    let (code, _) = terminate(sup);
    assert_eq!(code, 0, "{}", sup.dump());
    assert_torn_down(forge);
}

/// `restarting in DELAY (...)` -> `DELAY`.
pub fn restart_delay(message: &str) -> &str {
    message
        .strip_prefix("restarting in ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("not a restart event: {message:?}"))
}

/// Parses Rust's `Debug` of a `Duration` as the supervisor prints it (`50ms`, `1.6s`).
pub fn parse_debug_duration(text: &str) -> Duration {
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic() || c == 'µ')
        .map(|i| text.split_at(i))
        .unwrap_or_else(|| panic!("a duration: {text:?}"));
    let number: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("a duration: {text:?}"));
    let secs = match unit {
        "s" => number,
        "ms" => number / 1e3,
        "µs" | "us" => number / 1e6,
        "ns" => number / 1e9,
        _ => panic!("a duration unit: {text:?}"),
    };
    Duration::from_secs_f64(secs)
}
