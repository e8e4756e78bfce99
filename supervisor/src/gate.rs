//! Dependency gating: whether a service may start yet, given where each of its dependencies
//! is ([`Phase`]) and the condition its `depends_on` asks of it (service_started,
//! service_healthy, service_completed_successfully). [`dependency_verdict`] is the pure rule;
//! [`wait_for_dependencies`] waits on each dependency's published phase until the rule decides.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::watch;

use crate::compose::Condition;
use crate::health::Health;

/// Where a service is, as its dependants see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Waiting,
    Running(Option<Health>),
    /// Exited and will be restarted.
    Restarting,
    /// Exited for good with this code.
    Done(i32),
    /// Will never run: why.
    Failed(String),
}

/// Every service's published phase, by name.
pub type Phases = HashMap<String, Arc<watch::Sender<Phase>>>;

/// Waits until every dependency in `depends_on` allows the service to start; `Err(why)` if one
/// never will. `phases` holds every service's published phase.
pub async fn wait_for_dependencies(
    phases: &Phases,
    depends_on: &BTreeMap<String, Condition>,
) -> Result<(), String> {
    for (dep, condition) in depends_on {
        let Some(mut phase) = phases.get(dep).map(|p| p.subscribe()) else {
            return Err(format!("{dep} is gone"));
        };
        let verdict = phase
            .wait_for(|p| dependency_verdict(p, *condition).is_some())
            .await
            .map(|p| dependency_verdict(&p, *condition).expect("decided"));
        match verdict {
            Ok(Ok(())) => {}
            Ok(Err(why)) => return Err(format!("{dep} {why}")),
            Err(_) => return Err(format!("{dep} is gone")),
        }
    }
    Ok(())
}

/// `Some(Ok)` when `phase` satisfies `condition`, `Some(Err(why))` when it never will.
pub fn dependency_verdict(phase: &Phase, condition: Condition) -> Option<Result<(), String>> {
    match (condition, phase) {
        (_, Phase::Failed(why)) => Some(Err(format!("could not start: {why}"))),
        (Condition::Started, Phase::Running(_) | Phase::Done(_)) => Some(Ok(())),
        (Condition::Healthy, Phase::Running(Some(Health::Healthy))) => Some(Ok(())),
        (Condition::Healthy, Phase::Running(Some(Health::Unhealthy))) => {
            Some(Err("is unhealthy".into()))
        }
        (Condition::Healthy, Phase::Running(None)) => Some(Err("has no health check".into())),
        (Condition::Healthy, Phase::Done(code)) => Some(Err(format!("exited with code {code}"))),
        (Condition::CompletedSuccessfully, Phase::Done(0)) => Some(Ok(())),
        (Condition::CompletedSuccessfully, Phase::Done(code)) => {
            Some(Err(format!("exited with code {code}")))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use Condition::{CompletedSuccessfully, Healthy, Started};

    fn ok() -> Option<Result<(), String>> {
        Some(Ok(()))
    }

    fn err(why: &str) -> Option<Result<(), String>> {
        Some(Err(why.to_string()))
    }

    fn failed() -> Phase {
        Phase::Failed("no such image".into())
    }

    #[test]
    fn service_started_is_satisfied_by_running_or_exited() {
        assert_eq!(dependency_verdict(&Phase::Running(None), Started), ok());
        let starting = Phase::Running(Some(Health::Starting));
        assert_eq!(dependency_verdict(&starting, Started), ok());
        let unhealthy = Phase::Running(Some(Health::Unhealthy));
        assert_eq!(dependency_verdict(&unhealthy, Started), ok());
        assert_eq!(dependency_verdict(&Phase::Done(0), Started), ok());
        // It did start: an exit, even a failing one, satisfies service_started.
        assert_eq!(dependency_verdict(&Phase::Done(3), Started), ok());
    }

    #[test]
    fn service_healthy_is_satisfied_only_by_healthy() {
        let healthy = Phase::Running(Some(Health::Healthy));
        assert_eq!(dependency_verdict(&healthy, Healthy), ok());
    }

    #[test]
    fn service_completed_successfully_is_satisfied_only_by_exit_zero() {
        assert_eq!(
            dependency_verdict(&Phase::Done(0), CompletedSuccessfully),
            ok()
        );
    }

    #[test]
    fn every_condition_refuses_a_dependency_that_failed() {
        for condition in [Started, Healthy, CompletedSuccessfully] {
            assert_eq!(
                dependency_verdict(&failed(), condition),
                err("could not start: no such image"),
                "{condition:?}"
            );
        }
    }

    #[test]
    fn a_non_zero_exit_refuses_healthy_and_completed_successfully() {
        assert_eq!(
            dependency_verdict(&Phase::Done(3), Healthy),
            err("exited with code 3")
        );
        assert_eq!(
            dependency_verdict(&Phase::Done(3), CompletedSuccessfully),
            err("exited with code 3")
        );
    }

    #[test]
    fn an_exit_zero_still_refuses_healthy() {
        assert_eq!(
            dependency_verdict(&Phase::Done(0), Healthy),
            err("exited with code 0")
        );
    }

    #[test]
    fn restarting_leaves_every_condition_pending() {
        for condition in [Started, Healthy, CompletedSuccessfully] {
            assert_eq!(
                dependency_verdict(&Phase::Restarting, condition),
                None,
                "{condition:?}"
            );
        }
    }

    #[test]
    fn waiting_leaves_every_condition_pending() {
        for condition in [Started, Healthy, CompletedSuccessfully] {
            assert_eq!(
                dependency_verdict(&Phase::Waiting, condition),
                None,
                "{condition:?}"
            );
        }
    }

    #[test]
    fn service_healthy_is_pending_while_starting_and_refused_when_unhealthy_or_unchecked() {
        let starting = Phase::Running(Some(Health::Starting));
        assert_eq!(dependency_verdict(&starting, Healthy), None);
        let unhealthy = Phase::Running(Some(Health::Unhealthy));
        assert_eq!(dependency_verdict(&unhealthy, Healthy), err("is unhealthy"));
        assert_eq!(
            dependency_verdict(&Phase::Running(None), Healthy),
            err("has no health check")
        );
    }

    #[test]
    fn service_completed_successfully_is_pending_while_running() {
        for running in [
            Phase::Running(None),
            Phase::Running(Some(Health::Starting)),
            Phase::Running(Some(Health::Healthy)),
        ] {
            assert_eq!(
                dependency_verdict(&running, CompletedSuccessfully),
                None,
                "{running:?}"
            );
        }
    }

    fn phases(names: &[&str]) -> Phases {
        names
            .iter()
            .map(|name| (name.to_string(), Arc::new(watch::channel(Phase::Waiting).0)))
            .collect()
    }

    fn deps(edges: &[(&str, Condition)]) -> BTreeMap<String, Condition> {
        edges
            .iter()
            .map(|(dep, condition)| (dep.to_string(), *condition))
            .collect()
    }

    #[tokio::test]
    async fn no_dependencies_starts_at_once() {
        assert_eq!(
            wait_for_dependencies(&phases(&[]), &deps(&[])).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn dependencies_already_satisfied_start_at_once() {
        let phases = phases(&["db", "init", "web"]);
        phases["db"].send_replace(Phase::Running(Some(Health::Healthy)));
        phases["init"].send_replace(Phase::Done(0));
        phases["web"].send_replace(Phase::Running(None));
        let depends_on = deps(&[
            ("db", Healthy),
            ("init", CompletedSuccessfully),
            ("web", Started),
        ]);
        assert_eq!(wait_for_dependencies(&phases, &depends_on).await, Ok(()));
    }

    #[tokio::test]
    async fn a_refusal_names_the_dependency() {
        let phases = phases(&["db"]);
        phases["db"].send_replace(Phase::Done(2));
        let depends_on = deps(&[("db", CompletedSuccessfully)]);
        assert_eq!(
            wait_for_dependencies(&phases, &depends_on).await,
            Err("db exited with code 2".into())
        );
        phases["db"].send_replace(failed());
        assert_eq!(
            wait_for_dependencies(&phases, &depends_on).await,
            Err("db could not start: no such image".into())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn service_healthy_waits_for_as_long_as_the_dependency_is_not_healthy() {
        let phases = phases(&["db"]);
        let depends_on = deps(&[("db", Healthy)]);
        let wait = wait_for_dependencies(&phases, &depends_on);
        tokio::pin!(wait);
        // Through starting, a restart and a start again: never decided.
        for phase in [
            Phase::Running(Some(Health::Starting)),
            Phase::Restarting,
            Phase::Running(Some(Health::Starting)),
        ] {
            phases["db"].send_replace(phase);
            let pending = tokio::time::timeout(Duration::from_secs(3600), &mut wait).await;
            assert!(pending.is_err(), "decided early: {pending:?}");
        }
        phases["db"].send_replace(Phase::Running(Some(Health::Healthy)));
        let decided = tokio::time::timeout(Duration::from_secs(1), &mut wait).await;
        assert_eq!(decided, Ok(Ok(())));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_wait_ends_when_the_dependency_fails() {
        let phases = phases(&["db"]);
        let depends_on = deps(&[("db", Healthy)]);
        let wait = wait_for_dependencies(&phases, &depends_on);
        tokio::pin!(wait);
        phases["db"].send_replace(Phase::Running(Some(Health::Starting)));
        let pending = tokio::time::timeout(Duration::from_secs(24 * 3600), &mut wait).await;
        assert!(pending.is_err(), "decided early: {pending:?}");
        phases["db"].send_replace(Phase::Running(Some(Health::Unhealthy)));
        let decided = tokio::time::timeout(Duration::from_secs(1), &mut wait).await;
        assert_eq!(decided, Ok(Err("db is unhealthy".into())));
    }

    #[tokio::test(start_paused = true)]
    async fn dependencies_are_waited_for_one_after_another() {
        let phases = phases(&["a", "b"]);
        let depends_on = deps(&[("a", Started), ("b", CompletedSuccessfully)]);
        let wait = wait_for_dependencies(&phases, &depends_on);
        tokio::pin!(wait);
        phases["a"].send_replace(Phase::Running(None));
        phases["b"].send_replace(Phase::Running(None));
        let pending = tokio::time::timeout(Duration::from_secs(3600), &mut wait).await;
        assert!(pending.is_err(), "decided early: {pending:?}");
        phases["b"].send_replace(Phase::Done(0));
        let decided = tokio::time::timeout(Duration::from_secs(1), &mut wait).await;
        assert_eq!(decided, Ok(Ok(())));
    }
}
