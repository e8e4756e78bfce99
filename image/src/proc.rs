//! The two small host helpers the image store needs; forge-runtime has its own copies
//! (`sys::running_since`, `status::now_secs`), kept apart so that forge-image depends on nothing
//! of the runtime's.

/// Whether process `pid` is alive (neither gone nor a zombie waiting to be reaped), read from
/// `/proc/PID/stat`: decides whether a `.tmp-PID-...` entry still has an owner.
pub(crate) fn is_running(pid: libc::pid_t) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name (field 2) may hold spaces and parentheses; fields after it follow the last ')'.
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    let mut fields = stat.get(close + 2..).unwrap_or("").split(' ');
    !matches!(fields.next(), Some("Z" | "X") | None)
}

/// Seconds since the epoch (0 if the clock is before it).
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
