//! `--security-opt`: seccomp=unconfined, seccomp=PROFILE.json (Docker's format) and
//! no-new-privileges[=true|false], applied to the container's resolved privileges.

use std::path::Path;

use forge_runtime::caps::Privileges;
use forge_runtime::seccomp::{compile, load_profile};

/// The seccomp choice the options make; the last one counts.
enum Seccomp<'a> {
    Default,
    Unconfined,
    Profile(&'a str),
}

/// Applies `opts` in order. A profile is read and resolved against the final capabilities,
/// and compiled once here so that every error in it comes before anything is created.
/// `--privileged` keeps seccomp off, as in Docker.
pub fn apply(privileges: &mut Privileges, opts: &[String]) -> Result<(), String> {
    let mut seccomp = Seccomp::Default;
    for opt in opts {
        let value = opt
            .strip_prefix("seccomp=")
            .or_else(|| opt.strip_prefix("seccomp:"));
        match (value, opt.as_str()) {
            (Some("unconfined"), _) => seccomp = Seccomp::Unconfined,
            (Some(""), _) => return Err("--security-opt seccomp= needs a profile path".into()),
            (Some(path), _) => seccomp = Seccomp::Profile(path),
            (None, "no-new-privileges=false") => privileges.no_new_privs = false,
            (None, "no-new-privileges" | "no-new-privileges=true") => {
                privileges.no_new_privs = true
            }
            (None, other) => {
                return Err(format!(
                    "unsupported --security-opt {other:?} (seccomp=unconfined, seccomp=PROFILE.json, no-new-privileges[=false])"
                ))
            }
        }
    }
    match seccomp {
        Seccomp::Default => {}
        Seccomp::Unconfined => privileges.seccomp_unconfined = true,
        Seccomp::Profile(path) => {
            let profile = load_profile(Path::new(path), &privileges.capabilities)
                .map_err(|e| e.to_string())?;
            compile::compile(&profile).map_err(|e| e.to_string())?;
            if !privileges.privileged {
                privileges.seccomp_profile = Some(profile);
            }
        }
    }
    Ok(())
}
