//! A container's live state as recorded under the run root, and how its process ended.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

/// How the container's main process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// What `forge run` exits with: the code, or 128 + the signal number.
    pub code: i32,
    /// Set when a signal ended the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Why, in words: "exited", "killed by SIGKILL", "command not found", "monitor lost" …
    pub reason: String,
}

impl ExitInfo {
    /// From a finished `std::process::Command`.
    pub fn from_status(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Self {
                code,
                signal: None,
                reason: "exited".into(),
            },
            (None, Some(sig)) => Self {
                code: 128 + sig,
                signal: Some(sig),
                reason: format!("killed by signal {sig}"),
            },
            (None, None) => Self {
                code: 255,
                signal: None,
                reason: "unknown exit status".into(),
            },
        }
    }

    pub fn from_wait(status: nix::sys::wait::WaitStatus) -> Self {
        use nix::sys::wait::WaitStatus;
        match status {
            WaitStatus::Exited(_, code) => Self {
                code,
                signal: None,
                reason: "exited".into(),
            },
            WaitStatus::Signaled(_, sig, _) => Self {
                code: 128 + sig as i32,
                signal: Some(sig as i32),
                reason: format!("killed by {}", sig.as_str()),
            },
            other => Self {
                code: 255,
                signal: None,
                reason: format!("unexpected wait status {other:?}"),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    /// Host pid of the container's PID 1 while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// `/proc/PID/stat` start time of that pid, to tell it apart from a recycled pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    /// Host pid of the process that waits for the container (the CLI, a monitor, the supervisor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    /// Health-check status (`starting`, `healthy`, `unhealthy`) when a supervisor checks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// How often a supervisor has restarted the container.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restarts: u32,
    /// The container's address on its network while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::Ipv4Addr>,
    /// The published ports while it runs, with the host ports chosen at this start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<crate::network::PublishedPort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitInfo>,
}

impl State {
    pub fn created() -> Self {
        Self {
            status: Status::Created,
            pid: None,
            pid_start: None,
            monitor_pid: None,
            started_at: None,
            ip: None,
            ports: Vec::new(),
            health: None,
            restarts: 0,
            finished_at: None,
            exit: None,
        }
    }

    /// True when the recorded pid still names the process that was started.
    pub fn process_alive(&self) -> bool {
        match (self.pid, self.pid_start) {
            (Some(pid), Some(start)) => process_alive(pid, start),
            _ => false,
        }
    }
}

/// Whether process `pid` that started at `start` (clock ticks after boot, `/proc/PID/stat`)
/// still runs: false once it is gone or its pid was reused.
pub fn process_alive(pid: i32, start: u64) -> bool {
    crate::sys::running_since(pid) == Some(start)
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `secs` since the epoch in RFC 3339, UTC (`2024-05-01T12:00:00Z`; with `millis`,
/// `…:00.250Z`), without a date crate: Howard Hinnant's days-to-civil algorithm.
pub fn rfc3339_utc(secs: u64, millis: Option<u32>) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let fraction = millis.map(|ms| format!(".{ms:03}")).unwrap_or_default();
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
    )
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::sys::wait::WaitStatus;
    use nix::unistd::Pid;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339_utc(0, None), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_utc(951_782_400, Some(5)),
            "2000-02-29T00:00:00.005Z"
        );
        assert_eq!(rfc3339_utc(1_735_689_599, None), "2024-12-31T23:59:59Z");
    }

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        let code = ExitInfo::from_wait(WaitStatus::Exited(Pid::from_raw(1), 7));
        assert_eq!((code.code, code.signal), (7, None));
        let killed = ExitInfo::from_wait(WaitStatus::Signaled(
            Pid::from_raw(1),
            Signal::SIGKILL,
            false,
        ));
        assert_eq!((killed.code, killed.signal), (137, Some(9)));
        assert_eq!(killed.reason, "killed by SIGKILL");
    }

    #[test]
    fn own_process_is_alive_and_a_wrong_start_time_is_not() {
        let pid = std::process::id() as i32;
        let start = crate::sys::running_since(pid).unwrap();
        let mut state = State {
            pid: Some(pid),
            pid_start: Some(start),
            ..State::created()
        };
        assert!(state.process_alive());
        state.pid_start = Some(start + 1);
        assert!(!state.process_alive());
    }
}
