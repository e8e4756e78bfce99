//! A service's `deploy` as Compose (not Swarm) reads it on one host: `replicas`,
//! `resources.limits` (more spellings of the keys of `limits`) and `restart_policy` (a
//! restart policy, its delay the backoff's first step and its window the run that resets it).
//! Swarm's placement, update and rollback keys are refused by name.

use std::time::Duration;

use super::node::{Invalid, Node, Spot, Table};
use super::RestartPolicy;

/// What `deploy` says.
#[derive(Default)]
pub(super) struct Deploy<'a> {
    /// `resources.limits`, read by the caller with the other spellings of `limits`.
    pub limits: Option<Table<'a>>,
    pub restart: Option<Restart>,
    /// `replicas`, and where it was given.
    pub replicas: Option<(u32, Spot)>,
}

/// `replicas` (or the service's `scale`): how many containers run the service (0: none).
pub(super) fn replicas(node: &Node) -> Result<u32, Invalid> {
    match node.as_integer() {
        Some(n) if (0..=1000).contains(&n) => Ok(n as u32),
        Some(_) => Err(node.err("expected a number of containers from 0 to 1000")),
        None => Err(node.wrong_type("a number of containers")),
    }
}

pub(super) struct Restart {
    pub policy: RestartPolicy,
    pub delay: Option<Duration>,
    pub window: Option<Duration>,
}

pub(super) fn read<'a>(node: &Node<'a>) -> Result<Deploy<'a>, Invalid> {
    let table = node.table("a table { replicas, resources, restart_policy }")?;
    table.only(&["replicas", "resources", "restart_policy"])?;
    let mut deploy = Deploy::default();
    if let Some(node) = table.get("replicas") {
        deploy.replicas = Some((replicas(&node)?, node.spot.clone()));
    }
    if let Some(resources) = table.get("resources") {
        let resources = resources.table("a table { limits = { cpus, memory, pids } }")?;
        resources.only(&["limits"])?;
        if let Some(limits) = resources.get("limits") {
            let limits =
                limits.table("a table { cpus = \"0.5\", memory = \"256m\", pids = 100 }")?;
            limits.only(&["cpus", "memory", "pids"])?;
            deploy.limits = Some(limits);
        }
    }
    if let Some(node) = table.get("restart_policy") {
        deploy.restart = Some(restart_policy(&node)?);
    }
    Ok(deploy)
}

fn restart_policy(node: &Node) -> Result<Restart, Invalid> {
    let table = node.table("a table { condition, max_attempts, delay, window }")?;
    table.only(&["condition", "max_attempts", "delay", "window"])?;
    let max_attempts = match table.get("max_attempts") {
        Some(n) => match n.as_integer() {
            Some(count) if (0..=i64::from(u32::MAX)).contains(&count) => Some(count as u32),
            _ => return Err(n.wrong_type("a number of restarts")),
        },
        None => None,
    };
    let condition = table.get("condition");
    let text = condition
        .as_ref()
        .map(|n| n.string("a condition: none, on-failure or any"))
        .transpose()?
        .unwrap_or("any");
    let policy = match (text, max_attempts) {
        ("none", _) => RestartPolicy::No,
        ("on-failure", max_restarts) => RestartPolicy::OnFailure { max_restarts },
        ("any", None) => RestartPolicy::Always,
        ("any", Some(_)) => return Err(table.get("max_attempts").expect("given").err(
            "max_attempts with condition any is not supported yet (use condition = \"on-failure\")",
        )),
        (other, _) => {
            let at = condition.expect("a condition was read");
            return Err(at.err(format!(
                "unknown condition {other:?} (expected none, on-failure or any)"
            )));
        }
    };
    let duration = |key| {
        table
            .get(key)
            .map(|n| super::service::duration(&n))
            .transpose()
    };
    Ok(Restart {
        policy,
        delay: duration("delay")?,
        window: duration("window")?,
    })
}
