//! `forge-supervise up`: one tokio task per service starts its container when its dependencies
//! allow, watches it, restarts it with backoff, and runs its health check; a signal stops
//! everything in reverse dependency order.
//!
//! - [`setup`]: the project's set-up and tear-down (images, leftovers, networks);
//! - [`service`]: one service's loop, from its dependencies to its last exit;
//! - [`health_loop`]: the health probes of one run;
//! - [`stop`]: signals, reverse-order stop, the second Ctrl-C;
//! - [`engine`]: the seam to the containers, and [`runtime_engine`] its production side.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use forge_netd::Netd;
use forge_runtime::Runtime;
use tokio::sync::{mpsc, watch};

use crate::compose::Compose;
use crate::gate::Phase;
use crate::output::Style;
use engine::Engine;

pub mod engine;
mod health_loop;
mod runtime_engine;
mod service;
mod setup;
mod stop;
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
}

/// What every service's task shares.
struct Core<E> {
    engine: Arc<E>,
    compose: Compose,
    abort_on_container_exit: bool,
    exit_code_from: Option<String>,
    phases: HashMap<String, watch::Sender<Phase>>,
    stopping: watch::Sender<bool>,
    /// Some service could not be started at all.
    failed: Mutex<bool>,
}

impl<E> Core<E> {
    fn set_phase(&self, service: &str, phase: Phase) {
        self.phases[service].send_replace(phase);
    }

    fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    fn mark_failed(&self) {
        *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = true;
    }

    fn exit_code(&self) -> i32 {
        if let Some(service) = &self.exit_code_from {
            return match &*self.phases[service].borrow() {
                Phase::Done(code) => *code,
                _ => 1,
            };
        }
        i32::from(*self.failed.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn say(text: &str) {
    tracing::info!("{text}");
}

/// Removes what a project no supervisor runs has left: its containers and networks (only
/// those carrying its labels), with `remove_volumes` its volumes too.
pub async fn down(runtime: Runtime, netd: Netd, compose: Compose, opts: Options) -> i32 {
    setup::tear_down(&runtime, &netd, &compose, &opts).await;
    0
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
    if let Err(e) = setup::prepare(&runtime, &netd, &compose, &opts.project).await {
        tracing::error!("{e}");
        return 1;
    }
    let engine = runtime_engine::RuntimeEngine::new(runtime.clone(), &compose, &order, &opts);
    let code = supervise_all(
        Arc::new(engine),
        compose.clone(),
        &opts,
        &order,
        stop::interrupts(),
    )
    .await;
    setup::tear_down(&runtime, &netd, &compose, &opts).await;
    code
}

/// Runs every service in `order` until all are done for good or a stop was asked for (the
/// first message on `interrupts`; a second one kills everything); returns the exit code.
async fn supervise_all<E: Engine>(
    engine: Arc<E>,
    compose: Compose,
    opts: &Options,
    order: &[String],
    interrupts: mpsc::UnboundedReceiver<()>,
) -> i32 {
    let core = Arc::new(Core {
        engine,
        phases: order
            .iter()
            .map(|name| (name.clone(), watch::channel(Phase::Waiting).0))
            .collect(),
        compose,
        abort_on_container_exit: opts.abort_on_container_exit,
        exit_code_from: opts.exit_code_from.clone(),
        stopping: watch::channel(false).0,
        failed: Mutex::new(false),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for name in order {
        tasks.spawn(service::supervise(Arc::clone(&core), name.clone()));
    }
    let mut stopping = core.stopping.subscribe();
    let signals = tokio::spawn(stop::handle_interrupts(Arc::clone(&core), interrupts));
    tokio::select! {
        _ = async { while tasks.join_next().await.is_some() {} } => {}
        _ = stopping.wait_for(|s| *s) => {}
    }
    if core.is_stopping() {
        stop::stop_all(&core, order).await;
    }
    while tasks.join_next().await.is_some() {}
    signals.abort();
    core.exit_code()
}
