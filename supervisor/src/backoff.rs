//! Restart policy and backoff, as Docker applies them: whether an exited service is started
//! again, and how long to wait first. Pure arithmetic; the supervisor owns the clock.

use std::time::Duration;

use crate::compose::RestartPolicy;

/// Delays between restarts: `initial`, doubling up to `max`; back to `initial` once a run has
/// lasted `reset_after`. Written `[x-backoff]` globally or `x-backoff = {...}` per service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Default for Backoff {
    /// Docker's: 100 ms, doubling, capped at 60 s, reset after a 10 s run.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(60),
            reset_after: Duration::from_secs(10),
        }
    }
}

/// One service's restart history: how many restarts so far and the last delay.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    backoff: Backoff,
    restarts: u32,
    last_delay: Option<Duration>,
}

impl RestartTracker {
    pub fn new(backoff: Backoff) -> Self {
        RestartTracker {
            backoff,
            restarts: 0,
            last_delay: None,
        }
    }

    /// Called when a run that lasted `ran_for` ended and the service will be restarted; returns
    /// the delay before the next start and counts the restart. The first delay is `initial`,
    /// each next one doubles up to `max`, and a run of at least `reset_after` starts over at
    /// `initial`. The restart count is never reset: `on-failure:N` counts every restart.
    pub fn next_delay(&mut self, ran_for: Duration) -> Duration {
        let delay = match self.last_delay {
            Some(last) if ran_for < self.backoff.reset_after => {
                last.saturating_mul(2).min(self.backoff.max)
            }
            _ => self.backoff.initial.min(self.backoff.max),
        };
        self.last_delay = Some(delay);
        self.restarts = self.restarts.saturating_add(1);
        delay
    }

    /// Restarts scheduled so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }
}

/// Whether a service that exited with `exit_code` (128+N for death by signal N) is started
/// again, with Docker's semantics: `always` and `unless-stopped` restart on any exit, `on-failure`
/// only on a non-zero code and at most N times, `no` never; and nothing restarts while the
/// supervisor is stopping. (`unless-stopped` differs from `always` only when a daemon restarts,
/// which a supervisor that stops its services on exit never sees.)
pub fn should_restart(
    policy: &RestartPolicy,
    exit_code: i32,
    restarts_so_far: u32,
    stopping: bool,
) -> bool {
    if stopping {
        return false;
    }
    match policy {
        RestartPolicy::No => false,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure { max_restarts } => {
            exit_code != 0 && !matches!(max_restarts, Some(max) if restarts_so_far >= *max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_from_initial_up_to_max() {
        let mut tracker = RestartTracker::new(Backoff::default());
        let delays: Vec<u64> = (0..12)
            .map(|_| tracker.next_delay(ms(50)).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]
        );
        assert_eq!(tracker.restarts(), 12);
    }

    #[test]
    fn a_long_run_resets_the_delay_but_not_the_count() {
        let mut tracker = RestartTracker::new(Backoff::default());
        for _ in 0..4 {
            tracker.next_delay(ms(10));
        }
        assert_eq!(tracker.next_delay(ms(9_999)), ms(1600));
        assert_eq!(tracker.next_delay(ms(10_000)), ms(100));
        assert_eq!(tracker.next_delay(ms(10)), ms(200));
        assert_eq!(tracker.restarts(), 7);
    }

    #[test]
    fn configured_backoff_is_used() {
        let mut tracker = RestartTracker::new(Backoff {
            initial: ms(10),
            max: ms(35),
            reset_after: ms(500),
        });
        let delays: Vec<Duration> = (0..4).map(|_| tracker.next_delay(ms(1))).collect();
        assert_eq!(delays, [ms(10), ms(20), ms(35), ms(35)]);
        assert_eq!(tracker.next_delay(ms(500)), ms(10));
    }

    #[test]
    fn restart_table() {
        use RestartPolicy::*;
        let five = OnFailure {
            max_restarts: Some(5),
        };
        let unlimited = OnFailure { max_restarts: None };
        // (policy, exit code, restarts so far, stopping, expected)
        let table = [
            (No, 0, 0, false, false),
            (No, 1, 0, false, false),
            (Always, 0, 0, false, true),
            (Always, 137, 1000, false, true),
            (Always, 1, 0, true, false),
            (UnlessStopped, 0, 3, false, true),
            (UnlessStopped, 1, 0, true, false),
            (five, 0, 0, false, false),
            (five, 1, 0, false, true),
            (five, 1, 4, false, true),
            (five, 1, 5, false, false),
            (five, 143, 2, true, false),
            (unlimited, 2, 1_000_000, false, true),
            (unlimited, 0, 0, false, false),
        ];
        for (policy, code, restarts, stopping, expected) in table {
            assert_eq!(
                should_restart(&policy, code, restarts, stopping),
                expected,
                "{policy:?} exit {code} after {restarts} restarts, stopping={stopping}"
            );
        }
    }
}
