//! One service, from its dependencies to its last exit: start, wait, restart with backoff.

use std::sync::Arc;

use forge_runtime::ExitInfo;
use tokio::sync::watch;
use tokio::time::Instant;

use super::engine::{Engine, StartError};
use super::{health_loop, say, stop, Core};
use crate::backoff::{should_restart, RestartTracker};
use crate::gate::{wait_for_dependencies, Phase};

/// A service loop's reasons to end: the project stops, or the loop is retired (its service
/// stopped, restarted or re-created).
struct Ending {
    project: watch::Receiver<bool>,
    retired: watch::Receiver<bool>,
}

impl Ending {
    fn now(&self) -> bool {
        *self.project.borrow() || *self.retired.borrow()
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.project.wait_for(|s| *s) => {}
            _ = self.retired.wait_for(|s| *s) => {}
        }
    }
}

pub(super) async fn supervise<E: Engine>(
    core: Arc<Core<E>>,
    name: String,
    retired: watch::Receiver<bool>,
) {
    let Some(svc) = core.compose().services.get(&name).cloned() else {
        return;
    };
    let mut ending = Ending {
        project: core.stopping.subscribe(),
        retired,
    };
    let phases = core.phases();
    let ready = tokio::select! {
        ready = wait_for_dependencies(&phases, &svc.depends_on) => ready,
        () = ending.wait() => Err("the project is stopping".into()),
    };
    if let Err(why) = ready {
        if *ending.retired.borrow() {
            return;
        }
        say(&format!("{name}: not starting: {why}"));
        // A service that could not start makes the exit code non-zero, unless we are stopping.
        if !core.is_stopping() {
            core.mark_failed();
        }
        core.set_phase(&name, Phase::Failed(format!("a dependency failed: {why}")));
        return;
    }
    let mut tracker = RestartTracker::new(svc.backoff);
    while !ending.now() {
        // A run's length counts from its start, not from the start-up work before it.
        let mut began = Instant::now();
        let exit = match core.engine.start(&name, tracker.restarts()).await {
            Ok(pid) => {
                began = Instant::now();
                if ending.now() {
                    stop::stop_late_start(&core, &name, &svc);
                }
                run_once(&core, &name, &svc, pid).await
            }
            Err(StartError::Removed) => continue,
            // A restart that cannot start counts as a failed run: it is retried with backoff.
            Err(StartError::Start(why)) if tracker.restarts() > 0 => {
                tracing::error!("{name}: restart failed: {why}");
                ExitInfo {
                    code: forge_runtime::EXIT_FORGE_ERROR,
                    signal: None,
                    reason: format!("restart failed: {why}"),
                }
            }
            Err(StartError::Start(why) | StartError::Create(why)) => {
                return give_up(&core, &name, why)
            }
        };
        say(&format!(
            "{name}: exited with code {} ({})",
            exit.code, exit.reason
        ));
        let stop_now = ending.now();
        let by_user = core.engine.stopped_by_user(&name);
        if by_user && !stop_now {
            say(&format!(
                "{name}: stopped by the user (forge stop): not restarting it"
            ));
        }
        if stop_now
            || by_user
            || !should_restart(&svc.restart, exit.code, tracker.restarts(), stop_now)
        {
            core.set_phase(&name, Phase::Done(exit.code));
            if core.abort_on_container_exit && !stop_now {
                say(&format!(
                    "{name} exited: stopping the project (--abort-on-container-exit)"
                ));
                core.stopping.send_replace(true);
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
        core.set_phase(&name, Phase::Restarting);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            () = ending.wait() => {
                core.set_phase(&name, Phase::Done(exit.code));
                return;
            }
        }
    }
}

/// One run of a started container: health checks until it exits; its exit, recorded.
async fn run_once<E: Engine>(
    core: &Arc<Core<E>>,
    name: &str,
    svc: &crate::compose::Service,
    pid: i32,
) -> ExitInfo {
    say(&format!("{name}: started (pid {pid})"));
    let check = svc.healthcheck.clone();
    core.set_phase(
        name,
        Phase::Running(check.as_ref().map(|_| crate::health::Health::Starting)),
    );
    let health = check.map(|check| {
        tokio::spawn(health_loop::check_health(
            Arc::clone(core),
            name.to_string(),
            check,
        ))
    });
    let exit = core.engine.exited(name).await;
    // Before the exit is recorded: a probe of a container that is gone must not count.
    if let Some(task) = health {
        task.abort();
        let _ = task.await;
    }
    core.engine.record_exit(name, exit).await
}

fn give_up<E>(core: &Core<E>, name: &str, why: String) {
    tracing::error!("{name}: cannot start: {why}");
    core.mark_failed();
    core.set_phase(name, Phase::Failed(why));
}
