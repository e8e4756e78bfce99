//! The health-check state machine, with Docker's semantics. The supervisor runs the probe every
//! `interval` (killing it after `timeout`, which counts as a failure) and feeds each result here.
//!
//! - The status is `starting` until the first success.
//! - While still `starting`, failures of probes begun within `start_period` do not count.
//! - `retries` consecutive counted failures make the service `unhealthy`.
//! - Any success makes it `healthy` and clears the failure streak.

use std::time::{Duration, Instant};

use crate::compose::Healthcheck;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        })
    }
}

/// One container run's health: make a new one each time the service (re)starts.
#[derive(Debug, Clone)]
pub struct HealthMachine {
    started: Instant,
    start_period: Duration,
    retries: u32,
    failing_streak: u32,
    status: Health,
}

impl HealthMachine {
    /// `started` is when the container started.
    pub fn new(check: &Healthcheck, started: Instant) -> Self {
        HealthMachine {
            started,
            start_period: check.start_period,
            retries: check.retries.max(1),
            failing_streak: 0,
            status: Health::Starting,
        }
    }

    /// Records one probe's result; `now` is when that probe began (Docker measures the start
    /// period against the probe's start, so a slow probe begun in time still gets the grace).
    pub fn record(&mut self, ok: bool, now: Instant) -> Health {
        if ok {
            self.failing_streak = 0;
            self.status = Health::Healthy;
        } else if !self.in_grace(now) {
            self.failing_streak = self.failing_streak.saturating_add(1);
            if self.failing_streak >= self.retries {
                self.status = Health::Unhealthy;
            }
        }
        self.status
    }

    pub fn status(&self) -> Health {
        self.status
    }

    /// Consecutive failures counted so far (for `forge ps` and the log).
    pub fn failing_streak(&self) -> u32 {
        self.failing_streak
    }

    /// Whether `now` is in the start period of a service still `starting`: failures do not
    /// count, and probes come every `start_interval`.
    pub fn in_grace(&self, now: Instant) -> bool {
        self.status == Health::Starting
            && now.saturating_duration_since(self.started) < self.start_period
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::HealthTest;

    fn check(retries: u32, start_period_s: u64) -> Healthcheck {
        Healthcheck {
            test: HealthTest::Shell("true".into()),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            retries,
            start_period: Duration::from_secs(start_period_s),
            start_interval: None,
        }
    }

    /// Feeds results at 1 s, 2 s, 3 s … after `t0` and returns each status.
    fn run(machine: &mut HealthMachine, t0: Instant, results: &[bool]) -> Vec<Health> {
        results
            .iter()
            .enumerate()
            .map(|(i, ok)| machine.record(*ok, t0 + Duration::from_secs(i as u64 + 1)))
            .collect()
    }

    use Health::*;

    #[test]
    fn starting_until_first_success_then_healthy() {
        let t0 = Instant::now();
        let mut machine = HealthMachine::new(&check(3, 0), t0);
        assert_eq!(machine.status(), Starting);
        assert_eq!(
            run(&mut machine, t0, &[false, false, true, true]),
            [Starting, Starting, Healthy, Healthy]
        );
        assert_eq!(machine.failing_streak(), 0);
    }

    #[test]
    fn retries_consecutive_failures_make_it_unhealthy() {
        let t0 = Instant::now();
        let mut machine = HealthMachine::new(&check(3, 0), t0);
        assert_eq!(
            run(
                &mut machine,
                t0,
                &[true, false, false, true, false, false, false]
            ),
            [Healthy, Healthy, Healthy, Healthy, Healthy, Healthy, Unhealthy]
        );
        assert_eq!(machine.failing_streak(), 3);
    }

    #[test]
    fn never_healthy_becomes_unhealthy_after_retries() {
        let t0 = Instant::now();
        let mut machine = HealthMachine::new(&check(2, 0), t0);
        assert_eq!(
            run(&mut machine, t0, &[false, false]),
            [Starting, Unhealthy]
        );
    }

    #[test]
    fn failures_in_the_start_period_do_not_count() {
        let t0 = Instant::now();
        let mut machine = HealthMachine::new(&check(1, 5), t0);
        // Probes at 1..4 s fail within the 5 s start period; the one at 5 s counts.
        assert_eq!(
            run(&mut machine, t0, &[false, false, false, false, false]),
            [Starting, Starting, Starting, Starting, Unhealthy]
        );
    }

    #[test]
    fn after_a_success_the_start_period_no_longer_shields() {
        let t0 = Instant::now();
        let mut machine = HealthMachine::new(&check(2, 60), t0);
        assert_eq!(
            run(&mut machine, t0, &[true, false, false]),
            [Healthy, Healthy, Unhealthy]
        );
    }

    #[test]
    fn recovers_from_unhealthy_on_one_success() {
        let t0 = Instant::now();
        let mut machine = HealthMachine::new(&check(1, 0), t0);
        assert_eq!(
            run(&mut machine, t0, &[false, true, false, true]),
            [Unhealthy, Healthy, Unhealthy, Healthy]
        );
        assert_eq!(machine.status(), Healthy);
        assert_eq!(Unhealthy.to_string(), "unhealthy");
    }
}
