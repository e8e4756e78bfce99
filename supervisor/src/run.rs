//! `forge-supervise up`: one tokio task per service starts its container when its dependencies
//! allow, watches it through a pidfd, restarts it with backoff, and runs its health check; a
//! signal stops everything in reverse dependency order.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use forge_image::host::ensure_default_image;
use forge_netd::{Netd, NetworkOptions};
use forge_runtime::cgroup::OomWatch;
use forge_runtime::launch::LaunchIo;
use forge_runtime::{Container, CreateOptions, ExitInfo, NetSpec, Runtime};
use nix::sys::signal::Signal;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::backoff::{should_restart, RestartTracker};
use crate::compose::{Compose, HealthTest, Service};
use crate::gate::{wait_for_dependencies, Phase};
use crate::health::{Health, HealthMachine};
use crate::launcher::Launcher;
use crate::output::{pump, Printer, Style};

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub project: String,
    pub style: Style,
    pub abort_on_container_exit: bool,
    pub exit_code_from: Option<String>,
    pub cgroup_manager: Option<forge_runtime::cgroup::Manager>,
}

/// A running container, as the stop sequence needs it.
struct Live {
    pidfd: OwnedFd,
    container: Container,
}

struct Shared {
    runtime: Runtime,
    netd: Netd,
    compose: Compose,
    opts: Options,
    printer: Printer,
    launcher: Launcher,
    phases: HashMap<String, watch::Sender<Phase>>,
    live: Mutex<HashMap<String, Live>>,
    stopping: watch::Sender<bool>,
    /// Some service could not be started at all.
    failed: Mutex<bool>,
}

pub fn container_name(project: &str, service: &str) -> String {
    format!("{project}-{service}")
}

pub fn network_name(project: &str, network: &str) -> String {
    format!("{project}_{network}")
}

fn say(text: &str) {
    tracing::info!("{text}");
}

/// Brings the project up and supervises it until a signal (or `--abort-on-container-exit`);
/// returns the exit code.
pub async fn up(runtime: Runtime, netd: Netd, compose: Compose, opts: Options) -> i32 {
    let order = match crate::order::start_order(&compose.services) {
        Ok(order) => order,
        Err(e) => {
            tracing::error!("{e}");
            return 2;
        }
    };
    if let Err(e) = prepare(&runtime, &netd, &compose, &opts).await {
        tracing::error!("{e}");
        return 1;
    }
    let names: Vec<&str> = order.iter().map(String::as_str).collect();
    let printer = Printer::new(&names, opts.style);
    let phases = order
        .iter()
        .map(|name| (name.clone(), watch::channel(Phase::Waiting).0))
        .collect();
    let shared = Arc::new(Shared {
        runtime,
        netd,
        compose,
        opts,
        printer,
        launcher: Launcher::new(4),
        phases,
        live: Mutex::default(),
        stopping: watch::channel(false).0,
        failed: Mutex::new(false),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (index, name) in order.iter().enumerate() {
        tasks.spawn(supervise(Arc::clone(&shared), name.clone(), index));
    }
    let mut stopping = shared.stopping.subscribe();
    let signals = tokio::spawn(handle_signals(Arc::clone(&shared)));
    // Ends when every service is done for good, or when a stop was asked for.
    tokio::select! {
        _ = async { while tasks.join_next().await.is_some() {} } => {}
        _ = stopping.wait_for(|s| *s) => {}
    }
    if *shared.stopping.borrow() {
        stop_all(&shared, &order).await;
    }
    while tasks.join_next().await.is_some() {}
    signals.abort();
    tear_down(&shared).await;
    exit_code(&shared)
}

fn exit_code(shared: &Shared) -> i32 {
    if let Some(service) = &shared.opts.exit_code_from {
        return match &*shared.phases[service].borrow() {
            Phase::Done(code) => *code,
            _ => 1,
        };
    }
    i32::from(*shared.failed.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Cleans up what a killed earlier run left (its containers, its networks), then creates the
/// project's networks.
async fn prepare(
    runtime: &Runtime,
    netd: &Netd,
    compose: &Compose,
    opts: &Options,
) -> Result<(), String> {
    let runtime = runtime.clone();
    let netd = netd.clone();
    let networks = project_networks(compose);
    let services: Vec<String> = compose.services.keys().cloned().collect();
    let project = opts.project.clone();
    let images: Vec<String> = compose.services.values().map(|s| s.image.clone()).collect();
    tokio::task::spawn_blocking(move || {
        for image in &images {
            if ensure_default_image(runtime.images(), image).map_err(|e| e.to_string())? {
                say(&format!(
                    "built the default image {image:?} from the host's binaries"
                ));
            }
        }
        for service in &services {
            let name = container_name(&project, service);
            if runtime.get(&name).is_ok() {
                say(&format!("removing {name}, left over from an earlier run"));
                runtime
                    .remove(&name, true)
                    .map_err(|e| format!("removing {name}: {e}"))?;
            }
        }
        for (short, def) in &networks {
            let name = network_name(&project, short);
            if netd.inspect(&name).is_ok() {
                netd.remove_network(&name)
                    .map_err(|e| format!("removing network {name}: {e}"))?;
            }
            let opts = NetworkOptions {
                subnet: def.subnet,
                gateway: def.gateway,
                internal: def.internal,
            };
            netd.create_network(&name, &opts)
                .map_err(|e| format!("creating network {name}: {e}"))?;
        }
        Ok(())
    })
    .await
    .expect("the preparation does not panic")
}

/// The networks the project creates and removes: its own, and always `default`.
fn project_networks(compose: &Compose) -> BTreeMap<String, crate::compose::NetworkDef> {
    let mut networks = compose.networks.clone();
    networks
        .entry(crate::compose::DEFAULT_NETWORK.to_string())
        .or_default();
    networks
}

/// Removes every container and network of the project.
async fn tear_down(shared: &Arc<Shared>) {
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        let project = &shared.opts.project;
        for service in shared.compose.services.keys() {
            let name = container_name(project, service);
            if shared.runtime.get(&name).is_ok() {
                if let Err(e) = shared.runtime.remove(&name, true) {
                    tracing::warn!("removing {name}: {e}");
                }
            }
        }
        for short in project_networks(&shared.compose).keys() {
            let name = network_name(project, short);
            if let Err(e) = shared.netd.remove_network(&name) {
                tracing::warn!("removing network {name}: {e}");
            }
        }
    })
    .await
    .expect("the tear-down does not panic");
}

fn set_phase(shared: &Shared, service: &str, phase: Phase) {
    shared.phases[service].send_replace(phase);
}

fn create_options(shared: &Shared, name: &str, svc: &Service) -> CreateOptions {
    let project = &shared.opts.project;

    CreateOptions {
        name: Some(container_name(project, name)),
        image: svc.image.clone(),
        entrypoint: svc.entrypoint.clone(),
        args: svc.command.clone().unwrap_or_default(),
        env: svc.environment.clone(),
        workdir: svc.working_dir.clone(),
        hostname: Some(svc.hostname.clone().unwrap_or_else(|| name.to_string())),
        limits: svc.limits.clone(),
        user: svc.user.clone(),
        init: svc.init,
        privileges: svc.privileges.clone(),
        read_only: svc.read_only,
        tmpfs: svc.tmpfs.clone(),
        userns: svc.userns,
        net: NetSpec {
            networks: svc
                .networks
                .iter()
                .map(|n| network_name(project, n))
                .collect(),
            ip: None,
            ports: svc.ports.clone(),
            publish_all: false,
            aliases: vec![name.to_string()],
        },
        cgroup_manager: shared.opts.cgroup_manager,
        labels: BTreeMap::from([
            ("forge.project".to_string(), project.clone()),
            ("forge.service".to_string(), name.to_string()),
        ]),
        ..CreateOptions::default()
    }
}

/// A pipe whose write end the container gets; the read end as a tokio reader.
fn output_pipe() -> std::io::Result<(tokio::net::unix::pipe::Receiver, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((
        tokio::net::unix::pipe::Receiver::from_owned_fd(read)?,
        write,
    ))
}

/// One service, from its dependencies to its last exit.
async fn supervise(shared: Arc<Shared>, name: String, index: usize) {
    let svc = shared.compose.services[&name].clone();
    let mut stopping = shared.stopping.subscribe();
    let ready = tokio::select! {
        ready = wait_for_dependencies(&shared.phases, &svc.depends_on) => ready,
        _ = stopping.wait_for(|s| *s) => Err("the project is stopping".into()),
    };
    if let Err(why) = ready {
        say(&format!("{name}: not starting: {why}"));
        // A service that could not start makes the exit code non-zero, unless we are stopping.
        if !*stopping.borrow() {
            *shared.failed.lock().unwrap_or_else(|e| e.into_inner()) = true;
        }
        set_phase(
            &shared,
            &name,
            Phase::Failed(format!("a dependency failed: {why}")),
        );
        return;
    }
    let prefix = shared.printer.prefix(&name, index);
    let mut tracker = RestartTracker::new(svc.backoff);
    let mut container: Option<Container> = None;
    loop {
        if *stopping.borrow() {
            break;
        }
        let c = match container.take() {
            Some(c) => c,
            None => {
                let runtime = shared.runtime.clone();
                let opts = create_options(&shared, &name, &svc);
                match tokio::task::spawn_blocking(move || runtime.create(&opts)).await {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => return give_up(&shared, &name, e.to_string()),
                    Err(e) => return give_up(&shared, &name, e.to_string()),
                }
            }
        };
        // A run's length counts from its start, not from the start-up work before it.
        let mut began = Instant::now();
        let (mut c, exit) = match start(&shared, c).await {
            Ok((c, started)) => {
                began = Instant::now();
                if *stopping.borrow() {
                    stop_late_start(&name, &svc, &c, &started.pidfd);
                }
                run_once(&shared, &name, &svc, &prefix, c, started).await
            }
            // A restart that cannot start counts as a failed run: it is retried with backoff.
            Err((c, why)) if tracker.restarts() > 0 => {
                tracing::error!("{name}: restart failed: {why}");
                let exit = ExitInfo {
                    code: forge_runtime::channel::EXIT_FORGE_ERROR,
                    signal: None,
                    reason: format!("restart failed: {why}"),
                };
                (c, exit)
            }
            Err((_, why)) => return give_up(&shared, &name, why),
        };
        say(&format!(
            "{name}: exited with code {} ({})",
            exit.code, exit.reason
        ));
        let stop_now = *stopping.borrow();
        if stop_now || !should_restart(&svc.restart, exit.code, tracker.restarts(), stop_now) {
            set_phase(&shared, &name, Phase::Done(exit.code));
            if shared.opts.abort_on_container_exit && !stop_now {
                say(&format!(
                    "{name} exited: stopping the project (--abort-on-container-exit)"
                ));
                shared.stopping.send_replace(true);
            }
            return;
        }
        let delay = tracker.next_delay(began.elapsed());
        say(&format!(
            "{name}: restarting in {delay:?} (exit code {}, {}; restart {})",
            exit.code,
            exit.reason,
            tracker.restarts()
        ));
        set_phase(&shared, &name, Phase::Restarting);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopping.wait_for(|s| *s) => {
                set_phase(&shared, &name, Phase::Done(exit.code));
                return;
            }
        }
        c.state.restarts = tracker.restarts();
        container = Some(c);
    }
}

/// One run of a started container: output, health checks, exit; returns it with its exit
/// recorded (its cgroups and network released).
async fn run_once(
    shared: &Arc<Shared>,
    name: &str,
    svc: &Service,
    prefix: &str,
    c: Container,
    started: Running,
) -> (Container, ExitInfo) {
    say(&format!("{name}: started (pid {})", started.pid));
    let pumps = spawn_pumps(shared, &c, prefix, started.output);
    set_phase(
        shared,
        name,
        Phase::Running(svc.healthcheck.as_ref().map(|_| Health::Starting)),
    );
    let health = svc.healthcheck.clone().map(|check| {
        tokio::spawn(check_health(
            Arc::clone(shared),
            name.to_string(),
            c.clone(),
            check,
        ))
    });
    let exit = wait_exit(&started.pidfd, started.oom.as_ref()).await;
    if let Some(task) = health {
        task.abort();
        let _ = task.await;
    }
    shared
        .live
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(name);
    let runtime = shared.runtime.clone();
    let mut c = c;
    let recorded = tokio::task::spawn_blocking(move || {
        let exit = runtime.record_exit(&mut c, exit);
        (c, exit)
    })
    .await
    .expect("recording an exit does not panic");
    for pump in pumps {
        let _ = pump.await;
    }
    recorded
}

fn give_up(shared: &Shared, name: &str, why: String) {
    tracing::error!("{name}: cannot start: {why}");
    *shared.failed.lock().unwrap_or_else(|e| e.into_inner()) = true;
    set_phase(shared, name, Phase::Failed(why));
}

struct Running {
    pid: i32,
    pidfd: OwnedFd,
    oom: Option<OomWatch>,
    output: [tokio::net::unix::pipe::Receiver; 2],
}

/// Starts the container on a launcher thread, its output going to pipes of ours.
async fn start(
    shared: &Arc<Shared>,
    mut c: Container,
) -> Result<(Container, Running), (Container, String)> {
    let pipes = output_pipe().and_then(|out| Ok((out, output_pipe()?)));
    let ((out_read, out_write), (err_read, err_write)) = match pipes {
        Ok(pipes) => pipes,
        Err(e) => return Err((c, format!("creating a pipe: {e}"))),
    };
    let io = LaunchIo {
        stdin: Stdio::null(),
        stdout: out_write.into(),
        stderr: err_write.into(),
    };
    let runtime = shared.runtime.clone();
    let (c, started) = shared
        .launcher
        .run(move || {
            let started = runtime.start(&mut c, io, true);
            (c, started)
        })
        .await;
    let started = match started {
        Ok(started) => started,
        Err(e) => return Err((c, e.to_string())),
    };
    // The stop sequence signals through its own duplicate of the pidfd.
    if let Ok(pidfd) = started.pidfd.try_clone() {
        let service = c
            .config
            .labels
            .get("forge.service")
            .cloned()
            .unwrap_or_default();
        let live = Live {
            pidfd,
            container: c.clone(),
        };
        shared
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(service, live);
    }
    Ok((
        c,
        Running {
            pid: started.pid,
            pidfd: started.pidfd,
            oom: started.oom,
            output: [out_read, err_read],
        },
    ))
}

fn spawn_pumps(
    shared: &Arc<Shared>,
    c: &Container,
    prefix: &str,
    output: [tokio::net::unix::pipe::Receiver; 2],
) -> Vec<tokio::task::JoinHandle<()>> {
    let log_path = shared.runtime.log_path(c);
    output
        .into_iter()
        .map(|reader| {
            let shared = Arc::clone(shared);
            let prefix = prefix.to_string();
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .ok();
            tokio::spawn(async move { pump(reader, &shared.printer, &prefix, log).await })
        })
        .collect()
}

/// Waits until the process behind `pidfd` exits, and reaps it: no polling, no zombie. With an
/// OOM watch, reads the container's `memory.events` on every change meanwhile.
async fn wait_exit(pidfd: &OwnedFd, oom: Option<&OomWatch>) -> ExitInfo {
    if let Ok(owned) = pidfd.try_clone() {
        // SAFETY: the AsyncFd owns this duplicate, so the fd stays open while it is registered.
        let registered =
            unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) };
        if let Ok(fd) = registered {
            let events = oom.and_then(|o| {
                let owned = o.fd().try_clone_to_owned().ok()?;
                // SAFETY: the AsyncFd owns this duplicate, so the fd stays open while registered.
                unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }
                    .ok()
            });
            match (oom, events) {
                (Some(oom), Some(events)) => loop {
                    tokio::select! {
                        _ = fd.readable() => break,
                        ready = events.readable() => {
                            oom.check();
                            if let Ok(mut guard) = ready {
                                guard.clear_ready();
                            }
                        }
                    }
                },
                _ => {
                    let _ = fd.readable().await;
                }
            }
        }
    }
    let pidfd = pidfd.try_clone().expect("duplicating a pidfd");
    let mut exit = tokio::task::spawn_blocking(move || reap(&pidfd))
        .await
        .expect("reaping does not panic");
    if oom.is_some_and(|o| o.check()) {
        exit.reason = forge_runtime::container::OOM_REASON.to_string();
    }
    exit
}

/// `waitid(P_PIDFD)`: the exit status of the process behind `pidfd`.
fn reap(pidfd: &OwnedFd) -> ExitInfo {
    loop {
        // SAFETY: siginfo_t is plain data; zeroed is valid, and waitid fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes into `info`, which we own and which outlives the call.
        let ret = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED,
            )
        };
        if ret == 0 {
            // SAFETY: after a successful waitid with WEXITED these fields are the child's status.
            let (code, status) = unsafe { (info.si_code, info.si_status()) };
            return if code == libc::CLD_EXITED {
                ExitInfo {
                    code: status,
                    signal: None,
                    reason: "exited".into(),
                }
            } else {
                let name = nix::sys::signal::Signal::try_from(status)
                    .map_or_else(|_| format!("signal {status}"), |s| s.as_str().to_string());
                ExitInfo {
                    code: 128 + status,
                    signal: Some(status),
                    reason: format!("killed by {name}"),
                }
            };
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return ExitInfo {
                code: 255,
                signal: None,
                reason: format!("waiting for the container: {e}"),
            };
        }
    }
}

/// Runs the service's health check every interval inside the container; publishes the status.
async fn check_health(
    shared: Arc<Shared>,
    name: String,
    mut c: Container,
    check: crate::compose::Healthcheck,
) {
    let mut machine = HealthMachine::new(&check, Instant::now().into_std());
    let args = match &check.test {
        HealthTest::Cmd(args) => args.clone(),
        HealthTest::Shell(script) => vec!["/bin/sh".into(), "-c".into(), script.clone()],
    };
    let mut last = None;
    loop {
        tokio::time::sleep(check.interval).await;
        let ok = match shared.runtime.exec_command(&c, &args, &[]) {
            Ok(cmd) => {
                let mut cmd = tokio::process::Command::from(cmd);
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .kill_on_drop(true);
                match cmd.spawn() {
                    Ok(mut child) => matches!(
                        tokio::time::timeout(check.timeout, child.wait()).await,
                        Ok(Ok(status)) if status.success()
                    ),
                    Err(_) => false,
                }
            }
            Err(_) => false,
        };
        let health = machine.record(ok, Instant::now().into_std());
        if last != Some(health) {
            say(&format!("{name}: {}", health_word(health)));
            c.state.health = Some(health_word(health).to_string());
            let _ = shared.runtime.save_state(&c);
            set_phase(&shared, &name, Phase::Running(Some(health)));
            last = Some(health);
        }
    }
}

fn health_word(health: Health) -> &'static str {
    match health {
        Health::Starting => "starting",
        Health::Healthy => "healthy",
        Health::Unhealthy => "unhealthy",
    }
}

/// First signal: a clean stop. Second: kill everything at once.
async fn handle_signals(shared: Arc<Shared>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
    eprintln!("forge-supervise: stopping, press Ctrl-C again to force");
    shared.stopping.send_replace(true);
    tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
    eprintln!("forge-supervise: killing everything");
    kill_all(&shared);
}

fn kill_all(shared: &Shared) {
    let live = shared.live.lock().unwrap_or_else(|e| e.into_inner());
    for entry in live.values() {
        let _ = forge_runtime::sys::pidfd_send_signal(entry.pidfd.as_raw_fd(), libc::SIGKILL);
        let _ = entry.container.config.cgroup.driver().kill_all();
    }
}

/// Stops the services in reverse dependency order: a service stops only after every service
/// that depends on it has; independent ones stop at the same time.
async fn stop_all(shared: &Arc<Shared>, order: &[String]) {
    let mut stopped: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut handles: HashMap<String, tokio::sync::watch::Receiver<bool>> = HashMap::new();
    for name in order.iter().rev() {
        let (done_tx, done_rx) = watch::channel(false);
        let dependants: Vec<watch::Receiver<bool>> = shared
            .compose
            .services
            .iter()
            .filter(|(_, s)| s.depends_on.contains_key(name))
            .filter_map(|(dependant, _)| handles.get(dependant).cloned())
            .collect();
        let shared = Arc::clone(shared);
        let name_owned = name.clone();
        stopped.push(tokio::spawn(async move {
            for mut dependant in dependants {
                let _ = dependant.wait_for(|done| *done).await;
            }
            stop_one(&shared, &name_owned).await;
            done_tx.send_replace(true);
        }));
        handles.insert(name.clone(), done_rx);
    }
    for task in stopped {
        let _ = task.await;
    }
}

/// The compose file's stop_signal, else the image's StopSignal, else SIGTERM.
fn stop_signal(svc: &Service, container: &Container) -> Signal {
    svc.stop_signal
        .or_else(|| {
            let image_signal = container.config.stop_signal?;
            Signal::try_from(image_signal).ok()
        })
        .unwrap_or(Signal::SIGTERM)
}

/// Stops a container whose start was in flight when the project began to stop, so the stop
/// sequence found nothing to stop: its stop signal now, SIGKILL after its grace period.
fn stop_late_start(name: &str, svc: &Service, c: &Container, pidfd: &OwnedFd) {
    let Ok(pidfd) = pidfd.try_clone() else {
        return;
    };
    let signal = stop_signal(svc, c);
    say(&format!(
        "{name}: started while stopping: stopping ({})",
        signal.as_str()
    ));
    let _ = forge_runtime::sys::pidfd_send_signal(pidfd.as_raw_fd(), signal as i32);
    let grace = svc.stop_grace_period;
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        // The pidfd names this process only: no other one can be hit once it is gone.
        let _ = forge_runtime::sys::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGKILL);
    });
}

/// The service's stop signal, then SIGKILL after its grace period.
async fn stop_one(shared: &Shared, name: &str) {
    let svc = &shared.compose.services[name];
    let target = {
        let live = shared.live.lock().unwrap_or_else(|e| e.into_inner());
        live.get(name).and_then(|entry| {
            let pidfd = entry.pidfd.try_clone().ok()?;
            Some((pidfd, stop_signal(svc, &entry.container)))
        })
    };
    let mut phase = shared.phases[name].subscribe();
    let finished = |p: &Phase| matches!(p, Phase::Done(_) | Phase::Failed(_) | Phase::Waiting);
    if let Some((pidfd, signal)) = target {
        say(&format!("{name}: stopping ({})", signal.as_str()));
        let _ = forge_runtime::sys::pidfd_send_signal(pidfd.as_raw_fd(), signal as i32);
        let exited = tokio::time::timeout(svc.stop_grace_period, phase.wait_for(finished)).await;
        if exited.is_err() {
            say(&format!(
                "{name}: did not stop within {:?}, killing it",
                svc.stop_grace_period
            ));
            let _ = forge_runtime::sys::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGKILL);
            if let Some(entry) = shared
                .live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
            {
                let _ = entry.container.config.cgroup.driver().kill_all();
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(15), phase.wait_for(finished)).await;
}
