//! `forge-supervise up`: one tokio task per service starts its container when its dependencies
//! allow, watches it, restarts it with backoff, and runs its health check; a signal stops
//! everything in reverse dependency order.
//!
//! - [`setup`]: the project's set-up and tear-down (images, leftovers, networks);
//! - [`service`]: one service's loop, from its dependencies to its last exit;
//! - [`health_loop`]: the health probes of one run;
//! - [`stop`]: signals, reverse-order stop, the second Ctrl-C;
//! - [`engine`]: the seam to the containers, and [`runtime_engine`] its production side.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use forge_netd::Netd;
use forge_runtime::Runtime;
use tokio::sync::{mpsc, watch};

use crate::compose::{Compose, NetworkDef};
use crate::gate::{Phase, Phases};
use crate::output::Style;
use engine::Engine;

pub mod control;
pub mod engine;
mod generated;
mod health_loop;
mod log_file;
mod runtime_engine;
mod service;
mod setup;
pub mod socket;
mod stop;
mod tasks;
#[cfg(test)]
mod tests;

pub use setup::{container_name, network_name, volume_name};

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub project: String,
    pub style: Style,
    pub abort_on_container_exit: bool,
    pub exit_code_from: Option<String>,
    pub cgroup_manager: Option<forge_runtime::CgroupManager>,
    /// `--remove-volumes`: the project's volumes (not external ones) and its containers'
    /// anonymous volumes go at shutdown, as `docker compose down -v`.
    pub remove_volumes: bool,
    /// Stay up when every service has exited, until stopped (`forge compose up -d`): the
    /// project can still be started, changed and stopped through its socket.
    pub stay_up: bool,
}

/// What every service's task shares.
struct Core<E> {
    engine: Arc<E>,
    /// The model being run: replaced when the project converges on a changed file.
    compose: RwLock<Arc<Compose>>,
    /// Networks of earlier models that the current one dropped: removed at the end too.
    dropped_networks: Mutex<BTreeMap<String, NetworkDef>>,
    abort_on_container_exit: bool,
    exit_code_from: Option<String>,
    phases: Mutex<Phases>,
    stopping: watch::Sender<bool>,
    /// `down -t N`: every service's grace period when the project stops.
    grace: Mutex<Option<Duration>>,
    /// The project's volumes go at the end (`--remove-volumes`, or `down -v` asked).
    remove_volumes: Mutex<bool>,
    /// Some service could not be started at all.
    failed: Mutex<bool>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl<E> Core<E> {
    fn compose(&self) -> Arc<Compose> {
        Arc::clone(&self.compose.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn set_compose(&self, compose: Compose) {
        *self.compose.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(compose);
    }

    fn phases(&self) -> Phases {
        lock(&self.phases).clone()
    }

    fn phase(&self, service: &str) -> Option<Arc<watch::Sender<Phase>>> {
        lock(&self.phases).get(service).cloned()
    }

    fn set_phase(&self, service: &str, phase: Phase) {
        if let Some(published) = self.phase(service) {
            published.send_replace(phase);
        }
    }

    fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    fn mark_failed(&self) {
        *lock(&self.failed) = true;
    }

    fn exit_code(&self) -> i32 {
        if let Some(service) = &self.exit_code_from {
            return match self.phase(service).map(|p| p.borrow().clone()) {
                Some(Phase::Done(code)) => code,
                _ => 1,
            };
        }
        i32::from(*lock(&self.failed))
    }

    /// The model to tear down: the current one, with the networks earlier ones made.
    fn tear_down_model(&self) -> Compose {
        let mut model = (*self.compose()).clone();
        for (key, def) in lock(&self.dropped_networks).iter() {
            model
                .networks
                .entry(key.clone())
                .or_insert_with(|| def.clone());
        }
        model
    }
}

fn say(text: &str) {
    tracing::info!("{text}");
}

/// Removes what a project no supervisor runs has left: its containers and networks (only
/// those carrying its labels), with `remove_volumes` its volumes too.
pub async fn down(runtime: Runtime, netd: Netd, compose: Compose, opts: Options) -> i32 {
    // A killed supervisor's socket too (the project's lock is held: nobody serves it).
    let _ = std::fs::remove_file(socket::socket_path(&runtime.roots().run, &opts.project));
    setup::tear_down(&runtime, &netd, &compose, &opts).await;
    0
}

/// Brings the project up and supervises it until a signal (or `--abort-on-container-exit`);
/// returns the exit code. `loader` reads the files again for a changed model (SIGHUP, a second
/// `up`), which the project then converges on.
pub async fn up(
    runtime: Runtime,
    netd: Netd,
    compose: Compose,
    opts: Options,
    loader: socket::Loader,
) -> i32 {
    let order = match crate::order::start_order(&compose.services) {
        Ok(order) => order,
        Err(e) => {
            tracing::error!("{e}");
            return 2;
        }
    };
    if let Err(e) = setup::prepare(&runtime, &netd, &compose, &opts.project).await {
        tracing::error!("{e}");
        return 1;
    }
    let (requests_tx, requests) = mpsc::unbounded_channel();
    let server = socket::serve(&runtime, &opts.project, loader, requests_tx);
    let engine =
        runtime_engine::RuntimeEngine::new(runtime.clone(), netd.clone(), &compose, &order, &opts);
    let (code, last, remove_volumes) = supervise_all(
        Arc::new(engine),
        compose,
        &opts,
        stop::interrupts(),
        requests,
    )
    .await;
    drop(server);
    let opts = Options {
        remove_volumes,
        ..opts
    };
    setup::tear_down(&runtime, &netd, &last, &opts).await;
    code
}

/// Runs every service until all are done for good (unless `opts.stay_up`) or a stop was asked
/// for (the first message on `interrupts`; a second one kills everything), serving `requests`
/// meanwhile; returns the exit code, the model to tear down and whether its volumes go.
async fn supervise_all<E: Engine>(
    engine: Arc<E>,
    compose: Compose,
    opts: &Options,
    interrupts: mpsc::UnboundedReceiver<()>,
    mut requests: mpsc::UnboundedReceiver<control::Request>,
) -> (i32, Compose, bool) {
    let order = crate::order::start_order(&compose.services).unwrap_or_default();
    let core = Arc::new(Core {
        engine,
        phases: Mutex::new(
            order
                .iter()
                .map(|name| (name.clone(), Arc::new(watch::channel(Phase::Waiting).0)))
                .collect(),
        ),
        compose: RwLock::new(Arc::new(compose)),
        dropped_networks: Mutex::default(),
        abort_on_container_exit: opts.abort_on_container_exit,
        exit_code_from: opts.exit_code_from.clone(),
        stopping: watch::channel(false).0,
        grace: Mutex::new(None),
        remove_volumes: Mutex::new(opts.remove_volumes),
        failed: Mutex::new(false),
    });
    let (mut tasks, mut finished) = tasks::Tasks::new(Arc::clone(&core));
    for name in &order {
        tasks.spawn(name);
    }
    let mut stopping = core.stopping.subscribe();
    let signals = tokio::spawn(stop::handle_interrupts(Arc::clone(&core), interrupts));
    while opts.stay_up || tasks.live() > 0 {
        tokio::select! {
            Some((name, generation)) = finished.recv() => tasks.finished(&name, generation),
            _ = stopping.wait_for(|s| *s) => break,
            Some(request) = requests.recv() => control::handle(&core, &mut tasks, request).await,
        }
    }
    if core.is_stopping() {
        stop::stop_all(&core).await;
    }
    tasks.join_all().await;
    signals.abort();
    let remove_volumes = *lock(&core.remove_volumes);
    (core.exit_code(), core.tear_down_model(), remove_volumes)
}
