//! What a running project is asked through its socket (or SIGHUP): converge on a changed
//! model, stop, start or restart services, go down. Each request is answered with lines for
//! the user and a last line, `ok` or `error: WHY`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::engine::Engine;
use super::tasks::Tasks;
use super::{lock, Core};
use crate::compose::Compose;
use crate::gate::Phase;

pub struct Request {
    pub action: Action,
    /// The answer's lines; the last is `ok` or `error: WHY`, then the sender is dropped.
    pub reply: mpsc::UnboundedSender<String>,
}

#[derive(Debug)]
pub enum Action {
    /// A second `up` or SIGHUP: unchanged services keep running, changed ones are re-created,
    /// new ones start, removed ones stop and go, stopped ones start again.
    Converge(Box<Compose>),
    /// Services (their replicas too; none: all) and a grace period instead of their own.
    Stop {
        services: Vec<String>,
        timeout: Option<Duration>,
    },
    Start {
        services: Vec<String>,
    },
    Restart {
        services: Vec<String>,
        timeout: Option<Duration>,
    },
    /// Stop the project as a signal does, with this grace period for every service; with
    /// `volumes` its volumes go too (`down -v`).
    Down {
        timeout: Option<Duration>,
        volumes: bool,
    },
}

pub(super) async fn handle<E: Engine>(core: &Arc<Core<E>>, tasks: &mut Tasks<E>, request: Request) {
    let Request { action, reply } = request;
    // `Some(names)`: services started, whose starts the answer waits for.
    let answer: Result<Option<Vec<String>>, String> = match action {
        Action::Converge(compose) => converge(core, tasks, *compose, &reply).await.map(Some),
        Action::Stop { services, timeout } => match resolve(core, &services) {
            Ok(names) => {
                stop(core, tasks, &names, timeout, &reply).await;
                Ok(None)
            }
            Err(e) => Err(e),
        },
        Action::Start { services } => resolve(core, &services).map(|names| {
            let started: Vec<String> = names.into_iter().filter(|n| !tasks.is_live(n)).collect();
            spawn_in_order(core, tasks, &started);
            Some(started)
        }),
        Action::Restart { services, timeout } => match resolve(core, &services) {
            Ok(names) => {
                let names = with_dependants(&core.compose(), names);
                stop(core, tasks, &names, timeout, &reply).await;
                spawn_in_order(core, tasks, &names);
                Ok(Some(names))
            }
            Err(e) => Err(e),
        },
        Action::Down { timeout, volumes } => {
            *lock(&core.grace) = timeout;
            if volumes {
                *lock(&core.remove_volumes) = true;
            }
            core.stopping.send_replace(true);
            Ok(None)
        }
    };
    match answer {
        Ok(Some(started)) => report_starts(core, started, reply),
        Ok(None) => {
            let _ = reply.send("ok".to_string());
        }
        Err(e) => {
            let _ = reply.send(format!("error: {e}"));
        }
    }
}

fn resolve<E>(core: &Core<E>, wanted: &[String]) -> Result<Vec<String>, String> {
    core.compose().services_named(wanted)
}

/// `names` and every service that restarts with one of them (`depends_on.NAME.restart`),
/// transitively.
fn with_dependants(compose: &Compose, mut names: Vec<String>) -> Vec<String> {
    let mut i = 0;
    while i < names.len() {
        for svc in compose.services.values() {
            if svc.restarts_with.contains(&names[i]) && !names.contains(&svc.name) {
                names.push(svc.name.clone());
            }
        }
        i += 1;
    }
    names
}

async fn stop<E: Engine>(
    core: &Arc<Core<E>>,
    tasks: &mut Tasks<E>,
    names: &[String],
    timeout: Option<Duration>,
    reply: &mpsc::UnboundedSender<String>,
) {
    let live: Vec<String> = names.iter().filter(|n| tasks.is_live(n)).cloned().collect();
    tasks.retire(&live, timeout).await;
    for name in live {
        let _ = reply.send(format!(
            "Container {}  Stopped",
            core.engine.container_name(&name)
        ));
    }
}

/// Starts the loops of `names`, dependencies first (their phases exist before a dependant
/// waits on them).
fn spawn_in_order<E: Engine>(core: &Arc<Core<E>>, tasks: &mut Tasks<E>, names: &[String]) {
    let order = crate::order::start_order(&core.compose().services).unwrap_or_default();
    for name in order.iter().filter(|n| names.contains(n)) {
        if !tasks.is_live(name) {
            tasks.spawn(name);
        }
    }
}

/// Says `Started` for each of `names` once it runs (or ran), `error` for one that cannot
/// start, then the last line; in a task of its own, so that the project goes on meanwhile.
fn report_starts<E: Engine>(
    core: &Arc<Core<E>>,
    names: Vec<String>,
    reply: mpsc::UnboundedSender<String>,
) {
    let core = Arc::clone(core);
    tokio::spawn(async move {
        let mut failures = Vec::new();
        let mut stopping = core.stopping.subscribe();
        for name in names {
            let Some(published) = core.phase(&name) else {
                continue;
            };
            let mut phase = published.subscribe();
            let settled = |p: &Phase| !matches!(p, Phase::Waiting | Phase::Restarting);
            let outcome = tokio::select! {
                outcome = phase.wait_for(settled) => outcome.map(|p| p.clone()).ok(),
                _ = stopping.wait_for(|s| *s) => None,
            };
            let container = core.engine.container_name(&name);
            match outcome {
                Some(Phase::Failed(why)) => failures.push(format!("{name}: {why}")),
                Some(_) => {
                    let _ = reply.send(format!("Container {container}  Started"));
                }
                None => failures.push(format!("{name}: the project is stopping")),
            }
        }
        let _ = reply.send(if failures.is_empty() {
            "ok".to_string()
        } else {
            format!("error: {}", failures.join("; "))
        });
    });
}

async fn converge<E: Engine>(
    core: &Arc<Core<E>>,
    tasks: &mut Tasks<E>,
    new: Compose,
    reply: &mpsc::UnboundedSender<String>,
) -> Result<Vec<String>, String> {
    crate::order::start_order(&new.services).map_err(|e| e.to_string())?;
    let old = core.compose();
    check_networks(&old, &new)?;
    let only_in = |a: &Compose, b: &Compose| -> Vec<String> {
        let missing = a
            .services
            .keys()
            .filter(|name| !b.services.contains_key(*name));
        missing.cloned().collect()
    };
    let (removed, added) = (only_in(&old, &new), only_in(&new, &old));
    let changed: Vec<String> = new
        .services
        .keys()
        .filter(|name| {
            old.services
                .get(*name)
                .is_some_and(|was| *was != new.services[*name])
        })
        .cloned()
        .collect();
    // Nothing is stopped before what the new model needs is there: a failure here leaves the
    // project as it was.
    let mut starting = changed.clone();
    starting.extend(added.iter().cloned());
    core.engine
        .prepare(&news(&old, &new, &starting), &added)
        .await?;
    let mut going = changed.clone();
    going.extend(removed.iter().cloned());
    // Those that restart with a re-created dependency stop now and start with it.
    let mut stopping = with_dependants(&new, changed.clone());
    stopping.retain(|name| !changed.contains(name));
    stopping.extend(going.iter().cloned());
    tasks.retire(&stopping, None).await;
    for name in &going {
        let container = core.engine.container_name(name);
        core.engine.remove(name).await;
        if removed.contains(name) {
            let _ = reply.send(format!("Container {container}  Removed"));
        }
    }
    {
        let mut dropped = lock(&core.dropped_networks);
        for (key, def) in &old.networks {
            if !new.networks.contains_key(key) {
                dropped.insert(key.clone(), def.clone());
            }
        }
    }
    core.set_compose(new);
    {
        let mut phases = lock(&core.phases);
        for name in &removed {
            phases.remove(name);
        }
        for name in &added {
            phases.insert(name.clone(), Arc::new(watch::channel(Phase::Waiting).0));
        }
    }
    let compose = core.compose();
    for name in changed.iter().chain(&added) {
        core.engine.define(&compose, name);
    }
    for name in &changed {
        let _ = reply.send(format!(
            "Container {}  Recreated",
            core.engine.container_name(name)
        ));
    }
    let starting: Vec<String> = compose
        .services
        .keys()
        .filter(|name| !tasks.is_live(name))
        .cloned()
        .collect();
    for name in compose.services.keys().filter(|n| tasks.is_live(n)) {
        let _ = reply.send(format!(
            "Container {}  Running",
            core.engine.container_name(name)
        ));
    }
    spawn_in_order(core, tasks, &starting);
    Ok(starting)
}

/// What `new` has that `old` has not, to be made before `starting` (the changed and added
/// services) start: their definitions, and the networks and volumes defined anew.
fn news(old: &Compose, new: &Compose, starting: &[String]) -> Compose {
    let mut news = new.clone();
    news.services.retain(|name, _| starting.contains(name));
    news.networks
        .retain(|key, def| old.networks.get(key) != Some(def));
    news.volumes
        .retain(|key, def| old.volumes.get(key) != Some(def));
    news
}

/// A network both models define must be defined alike: its containers would have to be
/// disconnected to re-make it, which Forge does not do to a running project.
fn check_networks(old: &Compose, new: &Compose) -> Result<(), String> {
    for (key, def) in &new.networks {
        if old.networks.get(key).is_some_and(|was| was != def) {
            return Err(format!(
                "network {key}'s definition changed: a running project's networks stay as they are (forge compose down, then up, makes them anew)"
            ));
        }
    }
    Ok(())
}
