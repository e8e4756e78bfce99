//! `--tmpfs PATH[:OPTIONS]` and Compose's `tmpfs`: checked when the container is created (and
//! when a compose file is read), so that a mount the kernel would refuse fails before anything
//! exists rather than in the container's set-up.
//!
//! # Caveats
//!
//! OPTIONS go to the kernel as tmpfs mount data, so only what tmpfs parses there is accepted:
//! its own parameters (`size`, `mode`, `uid`, …) and the superblock flags (`ro`, `sync`, …).
//! Per-mount flags such as `noexec` are not translated into mount flags (Docker does that) and
//! are refused; every tmpfs is mounted `nosuid,nodev`.

/// Why a tmpfs spec is refused. Displayed after `invalid --tmpfs ` (or `invalid tmpfs `).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TmpfsError {
    #[error("{0:?}: expected an absolute path without '..', optionally :OPTIONS")]
    Path(String),
    #[error("{spec:?}: {reason}")]
    Option { spec: String, reason: String },
    #[error("{0:?} is given twice")]
    Twice(String),
}

/// Options without a value: the superblock flags the kernel takes from mount data for any
/// filesystem, and tmpfs's own.
const FLAGS: &[&str] = &[
    "ro",
    "rw",
    "sync",
    "async",
    "dirsync",
    "lazytime",
    "nolazytime",
    "mand",
    "nomand",
    "inode32",
    "inode64",
    "noswap",
];

/// Each `PATH[:OPTIONS]` of one container → (PATH, OPTIONS); a path may be given once.
pub fn parse_all<S: AsRef<str>>(specs: &[S]) -> Result<Vec<(String, String)>, TmpfsError> {
    let mut parsed: Vec<(String, String)> = Vec::new();
    for spec in specs {
        let (path, options) = parse(spec.as_ref())?;
        if parsed.iter().any(|(p, _)| *p == path) {
            return Err(TmpfsError::Twice(path));
        }
        parsed.push((path, options));
    }
    Ok(parsed)
}

/// `PATH[:OPTIONS]` → (PATH, OPTIONS).
pub fn parse(spec: &str) -> Result<(String, String), TmpfsError> {
    let (path, options) = spec.split_once(':').unwrap_or((spec, ""));
    let ok = path.starts_with('/')
        && path != "/"
        && !std::path::Path::new(path)
            .components()
            .any(|c| c == std::path::Component::ParentDir);
    if !ok {
        return Err(TmpfsError::Path(spec.to_string()));
    }
    for option in options.split(',').filter(|o| !o.is_empty()) {
        check_option(option).map_err(|reason| TmpfsError::Option {
            spec: spec.to_string(),
            reason,
        })?;
    }
    Ok((path.to_string(), options.to_string()))
}

pub(crate) fn check_option(option: &str) -> Result<(), String> {
    let Some((key, value)) = option.split_once('=') else {
        return if FLAGS.contains(&option) {
            Ok(())
        } else {
            Err(format!(
                "unknown option {option:?} (size, nr_blocks, nr_inodes, mode, uid, gid, huge, mpol, ro, sync, …)"
            ))
        };
    };
    let ok = match key {
        "size" | "nr_blocks" | "nr_inodes" => is_size(value),
        "mode" => !value.is_empty() && u32::from_str_radix(value, 8).is_ok_and(|m| m <= 0o7777),
        "uid" | "gid" => value.parse::<u32>().is_ok(),
        "huge" => ["never", "always", "within_size", "advise", "deny", "force"].contains(&value),
        "mpol" => !value.is_empty(),
        _ => {
            return Err(format!(
                "unknown option {key:?} (size, nr_blocks, nr_inodes, mode, uid, gid, huge, mpol, ro, sync, …)"
            ))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("invalid value {value:?} for {key}"))
    }
}

/// `64m`, `1g`, `1024`, `10%`: a number with an optional binary suffix or a percentage.
fn is_size(value: &str) -> bool {
    let digits = value.trim_end_matches(|c: char| "kKmMgGtTpPeE%".contains(c));
    let suffix = &value[digits.len()..];
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && suffix.len() <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_options() {
        assert_eq!(parse("/run"), Ok(("/run".into(), String::new())));
        assert_eq!(
            parse("/tmp:size=64m,mode=1777"),
            Ok(("/tmp".into(), "size=64m,mode=1777".into()))
        );
        for ok in [
            "/a:size=10%",
            "/a:ro,uid=0,gid=0,huge=never",
            "/a:nr_inodes=1k",
            "/a:",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for path in ["relative", "/", "/a/../b", ""] {
            assert_eq!(parse(path), Err(TmpfsError::Path(path.into())));
        }
        let err = |spec| parse(spec).unwrap_err().to_string();
        assert!(err("/a:noexec").contains("unknown option \"noexec\""));
        assert!(err("/a:size=lots").contains("invalid value \"lots\" for size"));
        assert!(err("/a:mode=999").contains("invalid value \"999\" for mode"));
        assert!(err("/a:huge=bogus").contains("for huge"));
    }
}
