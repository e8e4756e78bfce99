//! Turns a resolved [`SeccompProfile`] into a libseccomp filter, and installs it. Compiling needs
//! no privilege, so `forge run` compiles the profile once before creating anything (every error
//! a user can cause shows up then) and the container's init compiles it again and loads it.
//!
//! Two libseccomp rules shape the translation, as in runc: a rule whose action is the default
//! action is left out (libseccomp refuses it, and it changes nothing), and a rule comparing the
//! same argument twice becomes one rule per comparison (libseccomp compares each argument once
//! per rule).

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};

use super::profile::{Action, ArgCmp, CmpOp, Rule, SeccompProfile};

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("seccomp profile {path}: {what}: {source}")]
    Libseccomp {
        path: std::path::PathBuf,
        what: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
}

fn action(action: Action) -> ScmpAction {
    match action {
        Action::Allow => ScmpAction::Allow,
        Action::Errno(errno) => ScmpAction::Errno(i32::from(errno)),
        Action::KillThread => ScmpAction::KillThread,
        Action::KillProcess => ScmpAction::KillProcess,
        Action::Trap => ScmpAction::Trap,
        Action::Log => ScmpAction::Log,
        Action::Trace(value) => ScmpAction::Trace(value),
    }
}

fn compare(arg: &ArgCmp) -> ScmpArgCompare {
    let (op, datum) = match arg.op {
        CmpOp::Eq => (ScmpCompareOp::Equal, arg.value),
        CmpOp::Ne => (ScmpCompareOp::NotEqual, arg.value),
        CmpOp::Lt => (ScmpCompareOp::Less, arg.value),
        CmpOp::Le => (ScmpCompareOp::LessOrEqual, arg.value),
        CmpOp::Gt => (ScmpCompareOp::Greater, arg.value),
        CmpOp::Ge => (ScmpCompareOp::GreaterEqual, arg.value),
        CmpOp::MaskedEq => (ScmpCompareOp::MaskedEqual(arg.value), arg.value_two),
    };
    ScmpArgCompare::new(arg.index, op, datum)
}

/// The comparison sets `rule` stands for: all of its comparisons at once, or one each when an
/// argument is compared more than once.
fn comparison_sets(rule: &Rule) -> Vec<Vec<ScmpArgCompare>> {
    let mut indexes: Vec<u32> = rule.args.iter().map(|a| a.index).collect();
    indexes.sort_unstable();
    indexes.dedup();
    if indexes.len() == rule.args.len() {
        vec![rule.args.iter().map(compare).collect()]
    } else {
        rule.args.iter().map(|a| vec![compare(a)]).collect()
    }
}

/// The filter for `profile`, not yet loaded.
pub fn compile(profile: &SeccompProfile) -> Result<ScmpFilterContext, CompileError> {
    let fail = |what: String| {
        move |source| CompileError::Libseccomp {
            path: profile.source.clone(),
            what,
            source,
        }
    };
    let default = action(profile.default_action);
    let mut filter = ScmpFilterContext::new(default).map_err(fail("creating the filter".into()))?;
    for name in &profile.arches {
        let arch: ScmpArch = name.parse().map_err(fail(format!("architecture {name}")))?;
        let present = filter
            .is_arch_present(arch)
            .map_err(fail(format!("architecture {name}")))?;
        if !present {
            filter
                .add_arch(arch)
                .map_err(fail(format!("architecture {name}")))?;
        }
    }
    for rule in &profile.rules {
        let rule_action = action(rule.action);
        if rule_action == default {
            continue;
        }
        let what = || format!("rule for {:?}", rule.syscall);
        let syscall = libseccomp::ScmpSyscall::from_name(&rule.syscall).map_err(fail(what()))?;
        for comparisons in comparison_sets(rule) {
            filter
                .add_rule_conditional(rule_action, syscall, &comparisons)
                .map_err(fail(what()))?;
        }
    }
    Ok(filter)
}

/// Compiles and loads `profile` into the calling thread (which is about to exec).
pub fn install(profile: &SeccompProfile) -> Result<(), CompileError> {
    let mut filter = compile(profile)?;
    // no_new_privs is the caller's choice (Privileges::seal), not libseccomp's default.
    filter
        .set_ctl_nnp(false)
        .map_err(|source| CompileError::Libseccomp {
            path: profile.source.clone(),
            what: "leaving no_new_privs alone".into(),
            source,
        })?;
    filter.load().map_err(|source| CompileError::Libseccomp {
        path: profile.source.clone(),
        what: "loading the filter".into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::super::profile::{resolve, Target};
    use super::*;

    fn profile(text: &str) -> SeccompProfile {
        let target = Target::host(&["CHOWN".to_string()]).unwrap();
        resolve(std::path::Path::new("/p.json"), text, &target).unwrap()
    }

    /// The filter as libseccomp's pseudo-code, to look for what it compiled.
    fn pfc(profile: &SeccompProfile) -> String {
        let filter = compile(profile).unwrap();
        let mut file = tempfile::tempfile().unwrap();
        filter.export_pfc(&file).unwrap();
        use std::io::{Read, Seek};
        file.rewind().unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn docker_style_profile_compiles_without_privilege() {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/seccomp/docker-style-default.json"
        ));
        let code = pfc(&profile(text));
        assert!(code.contains("# filter for arch x86_64"), "{code}");
        assert!(code.contains("# filter for arch x86 "), "{code}");
        assert!(code.contains("# filter for syscall \"clone3\""), "{code}");
        assert!(code.contains("action ERRNO(38)"), "{code}");
    }

    #[test]
    fn rules_with_the_default_action_are_left_out_and_repeated_args_split() {
        let text = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#;
        let code = pfc(&profile(text));
        assert!(!code.contains("\"getpid\""), "{code}");
        // Either value lets personality through: two rules, not one impossible conjunction.
        assert!(code.contains("$a0.lo32 == 8"), "{code}");
        assert!(code.contains("$a0.lo32 == 0"), "{code}");
    }
}
