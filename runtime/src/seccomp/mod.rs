//! Seccomp: the filter installed in the container's command (and in what `forge exec` runs)
//! right before exec: after no_new_privs and the user switch, or without no_new_privs before the
//! user switch (`Privileges::seal`).
//!
//! Either the built-in default ([`default`], compiled with seccompiler) or a profile in Docker's
//! JSON format given with `--security-opt seccomp=PATH`: [`profile`] reads it and resolves its
//! conditions (capabilities, architecture, kernel version) when the container is created, so
//! that every error comes before anything exists; the resolved rules travel as plain data in the
//! spec and [`compile`] turns them into a libseccomp filter in the container.

pub mod compile;
pub mod default;
pub mod profile;

pub use profile::{load_profile, ProfileError, SeccompProfile};

use crate::caps::Privileges;

/// Installs the container's filter in the calling thread (which is about to exec): its
/// profile when it has one, the built-in default otherwise.
pub fn install(privileges: &Privileges) -> Result<(), String> {
    match &privileges.seccomp_profile {
        Some(profile) => compile::install(profile).map_err(|e| e.to_string()),
        None => default::install(privileges),
    }
}
