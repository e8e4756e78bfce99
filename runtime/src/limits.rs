//! Resource limits as users write them (`--cpus 0.5 --memory 256m --pids-limit 100 --storage 1g`),
//! parsed and checked before anything is created.

use serde::{Deserialize, Serialize};

/// The smallest memory limit Forge accepts, as Docker's: below it the container cannot even start.
pub const MIN_MEMORY: u64 = 6 * 1024 * 1024;
/// The smallest writable layer: an ext4 filesystem needs a few MiB for itself.
pub const MIN_STORAGE: u64 = 16 * 1024 * 1024;
/// The process limit of a container that sets none, as podman's (Docker sets none): a fork bomb
/// stops there instead of exhausting the host's pids. `--pids-limit 0` or `-1` lifts it.
pub const DEFAULT_PIDS: u64 = 2048;
/// The CFS period Forge uses; `--cpus N` becomes a quota of N periods.
pub const CPU_PERIOD_US: u64 = 100_000;

/// What a container may use. `Default` is no limit at all; a container that asks for none
/// gets [`Limits::for_new_container`] (the default pids limit).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// CPUs as a fraction: 0.5 is half of one CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// Memory plus swap in bytes; `Some(-1)` is unlimited swap. Defaults to twice `memory`, as Docker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    /// Size of the writable layer in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error("invalid {field} {value:?}: expected a size like 512k, 256m or 2g")]
    BadSize { field: &'static str, value: String },
    #[error("invalid {field} {value:?}: the minimum is {min}")]
    TooSmall {
        field: &'static str,
        value: String,
        min: &'static str,
    },
    #[error("invalid --cpus {0:?}: expected a number of CPUs above 0, like 0.5 or 2")]
    BadCpus(String),
    #[error("invalid --cpus {value:?}: this machine has {available} CPUs")]
    TooManyCpus { value: String, available: usize },
    #[error("invalid --pids-limit {0:?}: expected a whole number of processes, or 0 or -1 for unlimited")]
    BadPids(String),
    #[error("invalid --memory-swap {swap:?}: it must be at least --memory ({memory}), or -1 for unlimited")]
    SwapBelowMemory { swap: String, memory: String },
    #[error("--memory-swap needs --memory")]
    SwapWithoutMemory,
}

/// Parses `512`, `512b`, `64k`, `256m`, `2g` (binary units, case-insensitive, optional `b`/`ib`).
pub fn parse_size(field: &'static str, text: &str) -> Result<u64, LimitError> {
    let bad = || LimitError::BadSize {
        field,
        value: text.to_string(),
    };
    let lower = text.trim().to_ascii_lowercase();
    let trimmed = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, shift) = match trimmed.chars().last() {
        Some('k') => (&trimmed[..trimmed.len() - 1], 10),
        Some('m') => (&trimmed[..trimmed.len() - 1], 20),
        Some('g') => (&trimmed[..trimmed.len() - 1], 30),
        Some('t') => (&trimmed[..trimmed.len() - 1], 40),
        _ => (trimmed, 0),
    };
    let value: f64 = digits.parse().map_err(|_| bad())?;
    if !value.is_finite() || value < 0.0 || digits.is_empty() {
        return Err(bad());
    }
    let bytes = value * (1u64 << shift) as f64;
    if bytes > u64::MAX as f64 / 2.0 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// The flags as text, as the CLI and compose files give them.
#[derive(Debug, Default, Clone)]
pub struct LimitArgs<'a> {
    pub cpus: Option<&'a str>,
    pub memory: Option<&'a str>,
    pub memory_swap: Option<&'a str>,
    pub pids: Option<&'a str>,
    pub storage: Option<&'a str>,
}

impl Limits {
    /// Parses and checks every limit; `available_cpus` is the machine's online CPU count.
    pub fn parse(args: &LimitArgs<'_>, available_cpus: usize) -> Result<Self, LimitError> {
        let mut limits = Limits::default();
        if let Some(text) = args.cpus {
            let cpus: f64 = text
                .trim()
                .parse()
                .map_err(|_| LimitError::BadCpus(text.into()))?;
            if !cpus.is_finite() || cpus < 0.01 {
                return Err(LimitError::BadCpus(text.into()));
            }
            if cpus > available_cpus as f64 {
                return Err(LimitError::TooManyCpus {
                    value: text.into(),
                    available: available_cpus,
                });
            }
            limits.cpus = Some(cpus);
        }
        if let Some(text) = args.memory {
            let bytes = parse_size("--memory", text)?;
            if bytes < MIN_MEMORY {
                return Err(LimitError::TooSmall {
                    field: "--memory",
                    value: text.into(),
                    min: "6m",
                });
            }
            limits.memory = Some(bytes);
        }
        if let Some(text) = args.memory_swap {
            let memory = limits.memory.ok_or(LimitError::SwapWithoutMemory)?;
            let swap = if text.trim() == "-1" {
                -1
            } else {
                parse_size("--memory-swap", text)? as i64
            };
            if swap != -1 && (swap as u64) < memory {
                return Err(LimitError::SwapBelowMemory {
                    swap: text.into(),
                    memory: args.memory.unwrap_or("").into(),
                });
            }
            limits.memory_swap = Some(swap);
        }
        limits.pids = match args.pids.map(str::trim) {
            None => Some(DEFAULT_PIDS),
            Some("0" | "-1") => None,
            Some(text) => Some(text.parse().map_err(|_| LimitError::BadPids(text.into()))?),
        };
        if let Some(text) = args.storage {
            let bytes = parse_size("--storage", text)?;
            if bytes < MIN_STORAGE {
                return Err(LimitError::TooSmall {
                    field: "--storage",
                    value: text.into(),
                    min: "16m",
                });
            }
            limits.storage = Some(bytes);
        }
        Ok(limits)
    }

    /// The limits of a container that asks for none: [`DEFAULT_PIDS`] processes.
    pub fn for_new_container() -> Self {
        Limits {
            pids: Some(DEFAULT_PIDS),
            ..Limits::default()
        }
    }

    /// CFS quota in microseconds per [`CPU_PERIOD_US`].
    pub fn cpu_quota_us(&self) -> Option<u64> {
        self.cpus
            .map(|c| ((c * CPU_PERIOD_US as f64).round() as u64).max(1000))
    }

    /// The memory+swap limit to write, if memory is limited: Docker's default is twice the memory.
    pub fn memory_and_swap(&self) -> Option<i64> {
        let memory = self.memory? as i64;
        Some(self.memory_swap.unwrap_or(memory * 2))
    }

    pub fn any_cgroup_limit(&self) -> bool {
        self.cpus.is_some() || self.memory.is_some() || self.pids.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: LimitArgs<'_>) -> Result<Limits, LimitError> {
        Limits::parse(&args, 2)
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("x", "512").unwrap(), 512);
        assert_eq!(parse_size("x", "64k").unwrap(), 64 << 10);
        assert_eq!(parse_size("x", "256M").unwrap(), 256 << 20);
        assert_eq!(parse_size("x", "1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("x", "2GiB").unwrap(), 2 << 30);
        for bad in ["", "abc", "-5m", "1x", "m"] {
            assert!(parse_size("x", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn good_limits() {
        let l = parse(LimitArgs {
            cpus: Some("0.5"),
            memory: Some("256m"),
            pids: Some("100"),
            storage: Some("512m"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(l.cpu_quota_us(), Some(50_000));
        assert_eq!(l.memory, Some(256 << 20));
        assert_eq!(l.memory_and_swap(), Some(512 << 20));
        assert_eq!(l.pids, Some(100));
        assert_eq!(l.storage, Some(512 << 20));
    }

    #[test]
    fn pids_default_to_2048_and_0_or_minus_1_lift_the_limit() {
        let pids = |text| {
            parse(LimitArgs {
                pids: text,
                ..Default::default()
            })
            .unwrap()
            .pids
        };
        assert_eq!(pids(None), Some(DEFAULT_PIDS));
        assert_eq!(
            parse(LimitArgs::default()).unwrap(),
            Limits::for_new_container()
        );
        assert_eq!(pids(Some("0")), None);
        assert_eq!(pids(Some(" -1")), None);
        assert_eq!(pids(Some("10")), Some(10));
        for bad in ["-2", "1.5", "many", ""] {
            let err = parse(LimitArgs {
                pids: Some(bad),
                ..Default::default()
            })
            .unwrap_err();
            assert_eq!(err, LimitError::BadPids(bad.trim().into()), "{bad:?}");
        }
    }

    #[test]
    fn nonsense_is_refused_with_the_field_named() {
        let err = |a| parse(a).unwrap_err().to_string();
        assert!(err(LimitArgs {
            memory: Some("abc"),
            ..Default::default()
        })
        .contains("--memory"));
        assert!(err(LimitArgs {
            memory: Some("1k"),
            ..Default::default()
        })
        .contains("minimum is 6m"));
        assert!(err(LimitArgs {
            cpus: Some("0"),
            ..Default::default()
        })
        .contains("--cpus"));
        assert!(err(LimitArgs {
            cpus: Some("3"),
            ..Default::default()
        })
        .contains("has 2 CPUs"));
        assert!(err(LimitArgs {
            pids: Some("-5"),
            ..Default::default()
        })
        .contains("--pids-limit"));
        assert!(err(LimitArgs {
            storage: Some("0"),
            ..Default::default()
        })
        .contains("--storage"));
        assert!(err(LimitArgs {
            memory: Some("64m"),
            memory_swap: Some("32m"),
            ..Default::default()
        })
        .contains("--memory-swap"));
    }
}
