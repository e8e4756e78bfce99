//! Security options as `docker run --security-opt` and Compose's `security_opt` spell them:
//! `seccomp=unconfined`, `seccomp=PROFILE.json` (Docker's format) and
//! `no-new-privileges[=true|false]` (`:` works as well as `=`, as in Docker), applied to a
//! container's resolved [`Privileges`]. `forge run` and the compose reader share this, so both
//! refuse the same options with the same reasons before anything is created.
//!
//! Order: capabilities first ([`Privileges::resolve`]), then [`apply`], because a profile's
//! conditions are resolved against the final capability set.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::caps::Privileges;
use crate::seccomp::compile::{self, CompileError};
use crate::seccomp::{load_profile, ProfileError};

/// One option, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityOpt {
    /// `seccomp=unconfined`: no seccomp filter.
    SeccompUnconfined,
    /// `seccomp=PATH`: a profile in Docker's JSON format.
    SeccompProfile(PathBuf),
    /// `no-new-privileges`, `no-new-privileges=true|false`.
    NoNewPrivileges(bool),
}

/// Messages name `--security-opt`, as `forge run` prints them; the compose reader words the
/// syntax errors ([`SecurityOptError::EmptySeccompPath`], [`SecurityOptError::Unsupported`])
/// in its own terms.
#[derive(Debug, thiserror::Error)]
pub enum SecurityOptError {
    #[error("--security-opt seccomp= needs a profile path")]
    EmptySeccompPath,
    #[error("unsupported --security-opt {0:?} (seccomp=unconfined, seccomp=PROFILE.json, no-new-privileges[=false])")]
    Unsupported(String),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Compile(#[from] CompileError),
}

impl FromStr for SecurityOpt {
    type Err = SecurityOptError;

    fn from_str(opt: &str) -> Result<Self, Self::Err> {
        let split = opt.split_once('=').or_else(|| opt.split_once(':'));
        match split.unwrap_or((opt, "")) {
            ("seccomp", "unconfined") => Ok(Self::SeccompUnconfined),
            ("seccomp", "") if split.is_some() => Err(SecurityOptError::EmptySeccompPath),
            ("seccomp", path) if split.is_some() => Ok(Self::SeccompProfile(PathBuf::from(path))),
            ("no-new-privileges", "") if split.is_none() => Ok(Self::NoNewPrivileges(true)),
            ("no-new-privileges", "true") => Ok(Self::NoNewPrivileges(true)),
            ("no-new-privileges", "false") => Ok(Self::NoNewPrivileges(false)),
            _ => Err(SecurityOptError::Unsupported(opt.to_string())),
        }
    }
}

impl SecurityOpt {
    /// A relative profile path taken as relative to `dir` (Compose: the compose file's
    /// directory); everything else unchanged.
    pub fn relative_to(self, dir: &Path) -> Self {
        match self {
            Self::SeccompProfile(path) if path.is_relative() => {
                Self::SeccompProfile(dir.join(path))
            }
            other => other,
        }
    }

    pub fn is_seccomp(&self) -> bool {
        !matches!(self, Self::NoNewPrivileges(_))
    }
}

/// Applies `opts` in order; the last seccomp option counts. A profile is read, resolved
/// against the final capabilities and compiled once here, so that every error in it comes
/// before anything is created. `--privileged` keeps seccomp off, as in Docker.
pub fn apply(privileges: &mut Privileges, opts: &[SecurityOpt]) -> Result<(), SecurityOptError> {
    // `Some(None)`: unconfined; `Some(Some(path))`: that profile.
    let mut seccomp: Option<Option<&Path>> = None;
    for opt in opts {
        match opt {
            SecurityOpt::NoNewPrivileges(on) => privileges.no_new_privs = *on,
            SecurityOpt::SeccompUnconfined => seccomp = Some(None),
            SecurityOpt::SeccompProfile(path) => seccomp = Some(Some(path)),
        }
    }
    match seccomp {
        None => {}
        Some(None) => privileges.seccomp_unconfined = true,
        Some(Some(path)) => {
            let profile = load_profile(path, &privileges.capabilities)?;
            compile::compile(&profile)?;
            if !privileges.privileged {
                privileges.seccomp_profile = Some(profile);
            }
        }
    }
    Ok(())
}

/// Parses every option, then [`apply`]: what `forge run --security-opt` does.
pub fn parse_and_apply(
    privileges: &mut Privileges,
    opts: &[String],
) -> Result<(), SecurityOptError> {
    let parsed = opts
        .iter()
        .map(|opt| opt.parse())
        .collect::<Result<Vec<SecurityOpt>, _>>()?;
    apply(privileges, &parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(opt: &str) -> Result<SecurityOpt, String> {
        opt.parse().map_err(|e: SecurityOptError| e.to_string())
    }

    #[test]
    fn docker_spellings() {
        use SecurityOpt::*;
        assert_eq!(parse("seccomp=unconfined"), Ok(SeccompUnconfined));
        assert_eq!(parse("seccomp:unconfined"), Ok(SeccompUnconfined));
        assert_eq!(parse("seccomp=p.json"), Ok(SeccompProfile("p.json".into())));
        assert_eq!(
            parse("seccomp:/a/p.json"),
            Ok(SeccompProfile("/a/p.json".into()))
        );
        assert_eq!(parse("no-new-privileges"), Ok(NoNewPrivileges(true)));
        assert_eq!(parse("no-new-privileges=true"), Ok(NoNewPrivileges(true)));
        assert_eq!(parse("no-new-privileges:true"), Ok(NoNewPrivileges(true)));
        assert_eq!(parse("no-new-privileges=false"), Ok(NoNewPrivileges(false)));
        assert_eq!(parse("no-new-privileges:false"), Ok(NoNewPrivileges(false)));
    }

    #[test]
    fn refusals_keep_forge_runs_wording() {
        assert_eq!(
            parse("seccomp="),
            Err("--security-opt seccomp= needs a profile path".into())
        );
        for bad in [
            "apparmor=x",
            "no-new-privileges=yes",
            "no-new-privileges=",
            "no-new-privileges:",
            "seccomp",
            "label:disable",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(
                err.starts_with(&format!("unsupported --security-opt {bad:?} (")),
                "{err}"
            );
        }
    }

    #[test]
    fn relative_profiles_follow_the_given_directory() {
        let dir = Path::new("/srv/app");
        let rel = SecurityOpt::SeccompProfile("p.json".into()).relative_to(dir);
        assert_eq!(rel, SecurityOpt::SeccompProfile("/srv/app/p.json".into()));
        let abs = SecurityOpt::SeccompProfile("/etc/p.json".into()).relative_to(dir);
        assert_eq!(abs, SecurityOpt::SeccompProfile("/etc/p.json".into()));
    }

    #[test]
    fn the_last_seccomp_option_counts_and_no_new_privs_follows_order() {
        let mut p = Privileges::default();
        let opts = [
            SecurityOpt::SeccompProfile("/nonexistent.json".into()),
            SecurityOpt::SeccompUnconfined,
            SecurityOpt::NoNewPrivileges(false),
        ];
        apply(&mut p, &opts).unwrap();
        assert!(p.seccomp_unconfined && !p.no_new_privs);
        let mut p = Privileges::default();
        let err = apply(
            &mut p,
            &[SecurityOpt::SeccompProfile("/nonexistent.json".into())],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent.json"), "{err}");
    }
}
