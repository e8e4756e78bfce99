//! Stopping: the first interrupt stops every service in reverse dependency order (its stop
//! signal, SIGKILL after its grace period); a second one kills everything at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, watch};

use super::engine::Engine;
use super::{say, Core};
use crate::compose::Service;
use crate::gate::Phase;

/// How long a stopped service's loop may take to record its exit after SIGKILL.
const RECORD_EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// SIGINT and SIGTERM of this process, one message each.
pub(super) fn interrupts() -> mpsc::UnboundedReceiver<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = mpsc::unbounded_channel();
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::spawn(async move {
                loop {
                    tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
                    if tx.send(()).is_err() {
                        return;
                    }
                }
            });
        }
        _ => tracing::error!("cannot install signal handlers"),
    }
    rx
}

/// First interrupt: a clean stop. Second: kill everything at once.
pub(super) async fn handle_interrupts<E: Engine>(
    core: Arc<Core<E>>,
    mut interrupts: mpsc::UnboundedReceiver<()>,
) {
    if interrupts.recv().await.is_none() {
        return;
    }
    crate::output::note("stopping, press Ctrl-C again to force");
    core.stopping.send_replace(true);
    if interrupts.recv().await.is_none() {
        return;
    }
    crate::output::note("killing everything");
    for service in core.phases().keys() {
        core.engine.kill(service);
    }
}

/// Stops the services in reverse dependency order: a service stops only after every service
/// that depends on it has; independent ones stop at the same time.
pub(super) async fn stop_all<E: Engine>(core: &Arc<Core<E>>) {
    let compose = core.compose();
    let order = crate::order::start_order(&compose.services).unwrap_or_default();
    let grace = *super::lock(&core.grace);
    let mut stopped = Vec::new();
    let mut done: HashMap<&str, watch::Receiver<bool>> = HashMap::new();
    for name in order.iter().rev() {
        let (done_tx, done_rx) = watch::channel(false);
        let dependants: Vec<watch::Receiver<bool>> = compose
            .services
            .iter()
            .filter(|(_, s)| s.depends_on.contains_key(name))
            .filter_map(|(dependant, _)| done.get(dependant.as_str()).cloned())
            .collect();
        let core = Arc::clone(core);
        let name_owned = name.clone();
        stopped.push(tokio::spawn(async move {
            for mut dependant in dependants {
                let _ = dependant.wait_for(|done| *done).await;
            }
            stop_one(&core, &name_owned, grace).await;
            done_tx.send_replace(true);
        }));
        done.insert(name, done_rx);
    }
    for task in stopped {
        let _ = task.await;
    }
}

/// The compose file's stop_signal, else the image's StopSignal, else SIGTERM.
fn stop_signal<E: Engine>(core: &Core<E>, name: &str, svc: &Service) -> Signal {
    svc.stop_signal
        .unwrap_or_else(|| core.engine.image_stop_signal(name))
}

/// The service's stop signal, then SIGKILL after `grace` (else its own grace period); returns
/// once its loop is done (or after [`RECORD_EXIT_TIMEOUT`]).
pub(super) async fn stop_one<E: Engine>(core: &Core<E>, name: &str, grace: Option<Duration>) {
    let (Some(svc), Some(published)) =
        (core.compose().services.get(name).cloned(), core.phase(name))
    else {
        return;
    };
    let mut phase = published.subscribe();
    let finished = |p: &Phase| matches!(p, Phase::Done(_) | Phase::Failed(_) | Phase::Waiting);
    if core.engine.running(name) {
        let signal = stop_signal(core, name, &svc);
        let grace = grace.unwrap_or(svc.stop_grace_period);
        say(&format!("{name}: stopping ({})", signal.as_str()));
        core.engine.signal(name, signal);
        let exited = tokio::time::timeout(grace, phase.wait_for(finished)).await;
        if exited.is_err() {
            say(&format!(
                "{name}: did not stop within {grace:?}, killing it"
            ));
            core.engine.kill(name);
        }
    }
    let _ = tokio::time::timeout(RECORD_EXIT_TIMEOUT, phase.wait_for(finished)).await;
}

/// Stops a container whose start was in flight when the project began to stop, so the stop
/// sequence found nothing to stop: its stop signal now, SIGKILL after its grace period.
pub(super) fn stop_late_start<E: Engine>(core: &Arc<Core<E>>, name: &str, svc: &Service) {
    let signal = stop_signal(core, name, svc);
    say(&format!(
        "{name}: started while stopping: stopping ({})",
        signal.as_str()
    ));
    core.engine.signal(name, signal);
    let core = Arc::clone(core);
    let name = name.to_string();
    let grace = svc.stop_grace_period;
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        core.engine.kill(&name);
    });
}
