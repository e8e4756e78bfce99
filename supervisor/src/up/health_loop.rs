//! The health probes of one run: the service's test every interval inside the container, its
//! results through [`HealthMachine`], each change published to dependants and `forge ps`.

use std::sync::Arc;

use tokio::time::Instant;

use super::engine::Engine;
use super::{say, Core};
use crate::compose::{HealthTest, Healthcheck};
use crate::gate::Phase;
use crate::health::HealthMachine;

/// Runs until aborted (the run's exit ends it).
pub(super) async fn check_health<E: Engine>(core: Arc<Core<E>>, name: String, check: Healthcheck) {
    let mut machine = HealthMachine::new(&check, Instant::now().into_std());
    let test = match &check.test {
        HealthTest::Cmd(args) => args.clone(),
        HealthTest::Shell(script) => vec!["/bin/sh".into(), "-c".into(), script.clone()],
    };
    let mut last = None;
    loop {
        let pause = match check.start_interval {
            Some(quick) if machine.in_grace(Instant::now().into_std()) => quick,
            _ => check.interval,
        };
        tokio::time::sleep(pause).await;
        // The start period counts against the probe's start, as Docker does.
        let began = Instant::now();
        let ok = core.engine.probe(&name, &test, check.timeout).await;
        let health = machine.record(ok, began.into_std());
        if last != Some(health) {
            say(&format!("{name}: {health}"));
            core.engine.record_health(&name, health);
            core.set_phase(&name, Phase::Running(Some(health)));
            last = Some(health);
        }
    }
}
