//! Capabilities: the container's command keeps Docker's default set and nothing more (adjusted
//! by `--cap-add`/`--cap-drop`, all of them with `--privileged`), with `no_new_privs` set so that
//! no setuid binary or file capability can widen that afterwards.

use std::str::FromStr;

use caps::{CapSet, Capability};
use serde::{Deserialize, Serialize};

/// Docker's default capability set.
pub const DEFAULT: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// What the command may do, resolved when the container is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Privileges {
    /// Capability names without the `CAP_` prefix, sorted.
    pub capabilities: Vec<String>,
    /// Set `no_new_privs` before executing the command.
    pub no_new_privs: bool,
    /// `--privileged`: every capability, and no masked paths.
    #[serde(default)]
    pub privileged: bool,
    /// `--security-opt seccomp=unconfined`: no seccomp filter.
    #[serde(default)]
    pub seccomp_unconfined: bool,
    /// `--security-opt seccomp=PATH`: that profile, resolved, instead of the built-in default.
    #[serde(default)]
    pub seccomp_profile: Option<crate::seccomp::SeccompProfile>,
}

impl Default for Privileges {
    fn default() -> Self {
        Self::resolve(&[], &[], false).expect("the default set is valid")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown capability {0:?} (e.g. NET_ADMIN, SYS_PTRACE, or ALL)")]
pub struct UnknownCapability(pub String);

fn parse(name: &str) -> Result<Capability, UnknownCapability> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    Capability::from_str(&full).map_err(|_| UnknownCapability(name.to_string()))
}

/// Checks one `--cap-add`/`--cap-drop` name: with or without `CAP_`, any case, or `ALL`.
pub fn check_name(name: &str) -> Result<(), UnknownCapability> {
    if name.eq_ignore_ascii_case("ALL") {
        Ok(())
    } else {
        parse(name).map(drop)
    }
}

fn short(cap: Capability) -> String {
    cap.to_string().trim_start_matches("CAP_").to_string()
}

impl Privileges {
    /// The default set, then `drop` (ALL empties it), then `add` (ALL fills it), as Docker does.
    pub fn resolve(
        add: &[String],
        drop: &[String],
        privileged: bool,
    ) -> Result<Self, UnknownCapability> {
        let all = || caps::all().into_iter().collect::<Vec<_>>();
        let mut set: Vec<Capability> = if privileged {
            all()
        } else {
            DEFAULT.iter().map(|n| parse(n).expect("known")).collect()
        };
        for name in drop {
            if name.eq_ignore_ascii_case("ALL") {
                set.clear();
            } else {
                let cap = parse(name)?;
                set.retain(|c| *c != cap);
            }
        }
        for name in add {
            if name.eq_ignore_ascii_case("ALL") {
                set = all();
            } else {
                let cap = parse(name)?;
                if !set.contains(&cap) {
                    set.push(cap);
                }
            }
        }
        let mut capabilities: Vec<String> = set.into_iter().map(short).collect();
        capabilities.sort();
        Ok(Self {
            capabilities,
            no_new_privs: !privileged,
            privileged,
            seccomp_unconfined: privileged,
            seccomp_profile: None,
        })
    }

    /// In the process about to execute the command (still root, before any user switch):
    /// shrinks the bounding set to the kept capabilities and clears the inheritable and ambient
    /// sets, so that what the command runs with after exec is at most the kept set.
    pub fn apply_bounds(&self) -> Result<(), String> {
        let keep: Vec<Capability> = self
            .capabilities
            .iter()
            .filter_map(|n| parse(n).ok())
            .collect();
        for cap in caps::all() {
            if !keep.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(|e| format!("dropping {cap} from the bounding set: {e}"))?;
            }
        }
        caps::clear(None, CapSet::Inheritable)
            .and_then(|()| caps::clear(None, CapSet::Ambient))
            .map_err(|e| format!("clearing inheritable capabilities: {e}"))
    }

    /// The last steps before exec: `switch_user` (to the container's user), `no_new_privs`
    /// unless opted out, and the seccomp filter. With no_new_privs the filter comes last, as late
    /// as possible; without it the kernel wants CAP_SYS_ADMIN to load a filter, so it comes
    /// before the user switch drops the capabilities (as runc does).
    pub fn seal(&self, switch_user: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
        let filter = || match self.seccomp_unconfined {
            true => Ok(()),
            false => crate::seccomp::install(self),
        };
        if !self.no_new_privs {
            filter()?;
            return switch_user();
        }
        switch_user()?;
        nix::sys::prctl::set_no_new_privs().map_err(|e| format!("setting no_new_privs: {e}"))?;
        filter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_defaults_with_adds_and_drops() {
        let default = Privileges::default();
        assert_eq!(default.capabilities.len(), 14);
        assert!(default.no_new_privs);
        let p = Privileges::resolve(&["net_admin".into()], &["NET_RAW".into()], false).unwrap();
        assert!(p.capabilities.contains(&"NET_ADMIN".to_string()));
        assert!(!p.capabilities.contains(&"NET_RAW".to_string()));
        let none = Privileges::resolve(&[], &["ALL".into()], false).unwrap();
        assert!(none.capabilities.is_empty());
        let only = Privileges::resolve(&["CAP_KILL".into()], &["all".into()], false).unwrap();
        assert_eq!(only.capabilities, ["KILL"]);
        let all = Privileges::resolve(&[], &[], true).unwrap();
        assert!(all.capabilities.len() > 35 && !all.no_new_privs);
        assert_eq!(check_name("cap_net_admin"), Ok(()));
        assert_eq!(check_name("all"), Ok(()));
        assert_eq!(check_name("FLY"), Err(UnknownCapability("FLY".into())));
        assert_eq!(
            Privileges::resolve(&["FLY".into()], &[], false),
            Err(UnknownCapability("FLY".into()))
        );
    }
}
