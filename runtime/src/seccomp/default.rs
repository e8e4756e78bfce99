//! The built-in default seccomp filter (seccompiler, no profile file): system calls that
//! Docker's default profile refuses to a container without the matching capability return EPERM (kernel modules, kexec, keyrings, bpf, perf,
//! userfaultfd, handle-based opens, clocks, reboot, swap, accounting, and — unless SYS_ADMIN was
//! added — mounts and new namespaces, including `clone` with namespace flags). `clone3` returns
//! ENOSYS, as in Docker, because its flags cannot be inspected: libc falls back to `clone`.
//! Installed right before the command is executed (see `Privileges::seal` for the order).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::caps::Privileges;

/// Refused whatever the capabilities (Docker blocks them outright or nobody in a container
/// needs them).
const ALWAYS: &[i64] = &[
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_userfaultfd,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_lookup_dcookie,
    libc::SYS_uselib,
    libc::SYS_vhangup,
];

/// Refused unless the named capability was added.
const BY_CAPABILITY: &[(&str, &[i64])] = &[
    (
        "SYS_ADMIN",
        &[
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_pivot_root,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_fsopen,
            libc::SYS_fsconfig,
            libc::SYS_fsmount,
            libc::SYS_fspick,
            libc::SYS_move_mount,
            libc::SYS_open_tree,
            libc::SYS_mount_setattr,
            libc::SYS_quotactl,
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
            libc::SYS_syslog,
            libc::SYS_swapon,
            libc::SYS_swapoff,
        ],
    ),
    (
        "SYS_MODULE",
        &[
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_delete_module,
        ],
    ),
    ("SYS_BOOT", &[libc::SYS_reboot]),
    ("SYS_PACCT", &[libc::SYS_acct]),
    ("SYS_RAWIO", &[libc::SYS_iopl, libc::SYS_ioperm]),
    (
        "SYS_TIME",
        &[
            libc::SYS_settimeofday,
            libc::SYS_clock_settime,
            libc::SYS_clock_adjtime,
            libc::SYS_adjtimex,
        ],
    ),
];

/// The namespace flags `clone` may not carry without SYS_ADMIN.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];

fn arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|_| {
        format!(
            "seccomp: unsupported architecture {}",
            std::env::consts::ARCH
        )
    })
}

/// The programs to install for `privileges` (none when privileged).
pub fn default_programs(privileges: &Privileges) -> Result<Vec<BpfProgram>, String> {
    if privileges.privileged {
        return Ok(Vec::new());
    }
    let has = |cap: &str| privileges.capabilities.iter().any(|c| c == cap);
    let mut refused: BTreeMap<i64, Vec<SeccompRule>> =
        ALWAYS.iter().map(|nr| (*nr, Vec::new())).collect();
    for (cap, syscalls) in BY_CAPABILITY {
        if !has(cap) {
            refused.extend(syscalls.iter().map(|nr| (*nr, Vec::new())));
        }
    }
    if !has("SYS_ADMIN") {
        // One rule per flag: the rules of a syscall are alternatives.
        let rules = NAMESPACE_FLAGS
            .iter()
            .map(|flag| {
                let cond = SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Qword,
                    SeccompCmpOp::MaskedEq(*flag),
                    *flag,
                )
                .and_then(|c| SeccompRule::new(vec![c]));
                cond.map_err(|e| format!("seccomp: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        refused.insert(libc::SYS_clone, rules);
    }
    let eperm = SeccompFilter::new(
        refused,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch()?,
    )
    .map_err(|e| format!("seccomp: {e}"))?;
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch()?,
    )
    .map_err(|e| format!("seccomp: {e}"))?;
    [eperm, clone3]
        .into_iter()
        .map(|f| BpfProgram::try_from(f).map_err(|e| format!("seccomp: {e}")))
        .collect()
}

/// Installs the default filter in the calling thread (which is about to exec).
pub fn install(privileges: &Privileges) -> Result<(), String> {
    for program in default_programs(privileges)? {
        crate::sys::seccomp_set_filter(&program).map_err(|e| format!("installing seccomp: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_compile_and_privileged_gets_none() {
        let default = default_programs(&Privileges::default()).unwrap();
        assert_eq!(default.len(), 2);
        let with_admin =
            Privileges::resolve(&["SYS_ADMIN".into()], &[], false).expect("known capability");
        // Fewer refusals: a shorter program.
        assert!(default_programs(&with_admin).unwrap()[0].len() < default[0].len());
        let privileged = Privileges::resolve(&[], &[], true).unwrap();
        assert!(default_programs(&privileged).unwrap().is_empty());
    }
}
