//! Seccomp profiles in Docker's JSON format (`defaultAction`, `architectures`/`archMap`,
//! `syscalls[]` with `names`, `action`, `errnoRet`, `args` and `includes`/`excludes`): read,
//! checked and resolved for one container on this host into a [`SeccompProfile`], plain data
//! that travels in the spec. Resolution follows Docker: an entry applies when its `excludes`
//! match nothing and its `includes` all hold, where `arches` are Go's names for the host
//! (`amd64`, `arm64`), `caps` the container's capabilities and `minKernel` the running kernel.
//!
//! Unlike Docker, a system call name that libseccomp does not know on any architecture is an
//! error rather than silently skipped; names of other architectures (`chown32`, `set_tls`) are
//! fine, and entries that do not apply here are not looked at.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a rule (or the default) does to a matching system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Allow,
    Errno(u16),
    KillThread,
    KillProcess,
    Trap,
    Log,
    Trace(u16),
}

/// How an argument is compared (`SCMP_CMP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `(arg & value) == value_two`.
    MaskedEq,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgCmp {
    pub index: u32,
    pub op: CmpOp,
    pub value: u64,
    pub value_two: u64,
}

/// One system call, what to do with it, and when (all `args` hold).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub syscall: String,
    pub action: Action,
    pub args: Vec<ArgCmp>,
}

/// A profile resolved for one container: what [`super::compile`] turns into a filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompProfile {
    /// Where it was read from, for messages.
    pub source: PathBuf,
    pub default_action: Action,
    /// `SCMP_ARCH_*` names besides the native one (e.g. x86 and x32 on x86_64).
    pub arches: Vec<String>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("seccomp profile {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("seccomp profile {path}: invalid JSON at line {line} column {column}: {message}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("seccomp profile {path}: unknown system call {name:?}")]
    UnknownSyscall { path: PathBuf, name: String },
    #[error("seccomp profile {path}: unknown action {action:?} (SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, SCMP_ACT_TRAP, SCMP_ACT_LOG, SCMP_ACT_TRACE)")]
    UnknownAction { path: PathBuf, action: String },
    #[error(
        "seccomp profile {path}: SCMP_ACT_NOTIFY needs a seccomp agent, which forge does not run"
    )]
    Notify { path: PathBuf },
    #[error("seccomp profile {path}: unknown comparison {op:?} (SCMP_CMP_EQ, NE, LT, LE, GT, GE, MASKED_EQ)")]
    UnknownOp { path: PathBuf, op: String },
    #[error("seccomp profile {path}: argument index {index} of {name:?} is out of range (0 to 5)")]
    ArgIndex {
        path: PathBuf,
        name: String,
        index: u32,
    },
    #[error("seccomp profile {path}: errno {value} is out of range (0 to 65535)")]
    Errno { path: PathBuf, value: u64 },
    #[error("seccomp profile {path}: unknown architecture {arch:?} (e.g. SCMP_ARCH_X86_64)")]
    UnknownArch { path: PathBuf, arch: String },
    #[error("seccomp profile {path}: both architectures and archMap are given")]
    ArchitecturesAndArchMap { path: PathBuf },
    #[error("seccomp profile {path}: minKernel {value:?} is not a kernel version like 4.8")]
    MinKernel { path: PathBuf, value: String },
    #[error("seccomp profile {path}: a syscalls entry has neither names nor name")]
    NoNames { path: PathBuf },
    #[error("seccomp: this host ({0}) has no seccomp architecture forge knows")]
    HostArch(&'static str),
}

/// The file as Docker writes it; unknown fields (`comment`, `flags`) are ignored, as Docker does.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerProfile {
    default_action: String,
    default_errno_ret: Option<u64>,
    architectures: Option<Vec<String>>,
    arch_map: Option<Vec<ArchMapEntry>>,
    syscalls: Option<Vec<SyscallEntry>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMapEntry {
    architecture: String,
    sub_architectures: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SyscallEntry {
    names: Option<Vec<String>>,
    name: Option<String>,
    action: String,
    errno_ret: Option<u64>,
    args: Option<Vec<DockerArg>>,
    #[serde(default)]
    includes: Conditions,
    #[serde(default)]
    excludes: Conditions,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerArg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conditions {
    caps: Option<Vec<String>>,
    arches: Option<Vec<String>>,
    min_kernel: Option<String>,
}

/// What the conditions of a profile are resolved against.
#[derive(Debug, Clone)]
pub struct Target {
    /// Go's name for the host architecture, as `includes.arches` spells it (`amd64`).
    pub go_arch: &'static str,
    /// libseccomp's name for it, as `archMap` spells it (`SCMP_ARCH_X86_64`).
    pub scmp_arch: &'static str,
    /// The running kernel's major and minor version.
    pub kernel: (u32, u32),
    /// The container's capabilities, without `CAP_`.
    pub capabilities: Vec<String>,
}

/// (Rust's name, Go's name, libseccomp's name) of the architectures a host may have.
const ARCHES: &[(&str, &str, &str)] = &[
    ("x86_64", "amd64", "SCMP_ARCH_X86_64"),
    ("x86", "386", "SCMP_ARCH_X86"),
    ("aarch64", "arm64", "SCMP_ARCH_AARCH64"),
    ("arm", "arm", "SCMP_ARCH_ARM"),
    ("riscv64", "riscv64", "SCMP_ARCH_RISCV64"),
    ("s390x", "s390x", "SCMP_ARCH_S390X"),
    ("powerpc64", "ppc64le", "SCMP_ARCH_PPC64LE"),
    ("loongarch64", "loong64", "SCMP_ARCH_LOONGARCH64"),
];

impl Target {
    /// This host, for a container with `capabilities`.
    pub fn host(capabilities: &[String]) -> Result<Self, ProfileError> {
        let rust_arch = std::env::consts::ARCH;
        let (_, go_arch, scmp_arch) = ARCHES
            .iter()
            .find(|(rust, _, _)| *rust == rust_arch)
            .ok_or(ProfileError::HostArch(rust_arch))?;
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            go_arch,
            scmp_arch,
            kernel: parse_kernel(&release).unwrap_or((0, 0)),
            capabilities: capabilities.to_vec(),
        })
    }

    fn has_cap(&self, name: &str) -> bool {
        let short = name.to_ascii_uppercase();
        let short = short.trim_start_matches("CAP_");
        self.capabilities.iter().any(|c| c == short)
    }
}

/// `6.18.0-1-amd64` → (6, 18); `4.8` → (4, 8).
fn parse_kernel(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Reads the profile at `path` and resolves it for a container with `capabilities` on this host.
pub fn load_profile(path: &Path, capabilities: &[String]) -> Result<SeccompProfile, ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    resolve(path, &text, &Target::host(capabilities)?)
}

/// Parses `text` (read from `path`) and resolves it for `target`.
pub fn resolve(path: &Path, text: &str, target: &Target) -> Result<SeccompProfile, ProfileError> {
    let docker: DockerProfile = serde_json::from_str(text).map_err(|e| ProfileError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: json_message(&e),
    })?;
    let resolver = Resolver { path, target };
    let default_action = resolver.action(&docker.default_action, docker.default_errno_ret)?;
    let arches = resolver.arches(&docker)?;
    let mut rules = Vec::new();
    for entry in docker.syscalls.as_deref().unwrap_or_default() {
        if resolver.applies(entry)? {
            rules.extend(resolver.rules(entry)?);
        }
    }
    Ok(SeccompProfile {
        source: path.to_path_buf(),
        default_action,
        arches,
        rules,
    })
}

/// serde_json's message without its own " at line L column C" (ours says it once).
fn json_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    match full.rfind(" at line ") {
        Some(at) => full[..at].to_string(),
        None => full,
    }
}

struct Resolver<'a> {
    path: &'a Path,
    target: &'a Target,
}

impl Resolver<'_> {
    fn path(&self) -> PathBuf {
        self.path.to_path_buf()
    }

    /// `SCMP_ACT_*` with its errno (EPERM when not given) or trace value.
    fn action(&self, name: &str, errno_ret: Option<u64>) -> Result<Action, ProfileError> {
        let value = |default: u64| {
            let value = errno_ret.unwrap_or(default);
            u16::try_from(value).map_err(|_| ProfileError::Errno {
                path: self.path(),
                value,
            })
        };
        Ok(match name {
            "SCMP_ACT_ALLOW" => Action::Allow,
            "SCMP_ACT_ERRNO" => Action::Errno(value(libc::EPERM as u64)?),
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
            "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
            "SCMP_ACT_TRAP" => Action::Trap,
            "SCMP_ACT_LOG" => Action::Log,
            "SCMP_ACT_TRACE" => Action::Trace(value(libc::EPERM as u64)?),
            "SCMP_ACT_NOTIFY" => return Err(ProfileError::Notify { path: self.path() }),
            other => {
                return Err(ProfileError::UnknownAction {
                    path: self.path(),
                    action: other.to_string(),
                })
            }
        })
    }

    /// `architectures`, or the host's `archMap` entry with its sub-architectures, checked
    /// against libseccomp's names.
    fn arches(&self, docker: &DockerProfile) -> Result<Vec<String>, ProfileError> {
        let listed = docker.architectures.clone().unwrap_or_default();
        let map = docker.arch_map.as_deref().unwrap_or_default();
        if !listed.is_empty() && !map.is_empty() {
            return Err(ProfileError::ArchitecturesAndArchMap { path: self.path() });
        }
        let mut arches = listed;
        if let Some(entry) = map.iter().find(|e| e.architecture == self.target.scmp_arch) {
            arches.push(entry.architecture.clone());
            arches.extend(entry.sub_architectures.clone().unwrap_or_default());
        }
        for arch in &arches {
            if arch.parse::<libseccomp::ScmpArch>().is_err() {
                return Err(ProfileError::UnknownArch {
                    path: self.path(),
                    arch: arch.clone(),
                });
            }
        }
        Ok(arches)
    }

    /// Docker's rule: no exclusion matches, and every inclusion holds.
    fn applies(&self, entry: &SyscallEntry) -> Result<bool, ProfileError> {
        let t = self.target;
        let (inc, exc) = (&entry.includes, &entry.excludes);
        let arch_in = |arches: &Option<Vec<String>>| {
            arches
                .as_deref()
                .is_some_and(|a| a.iter().any(|a| a == t.go_arch))
        };
        let nonempty = |list: &Option<Vec<String>>| list.as_deref().is_some_and(|l| !l.is_empty());
        let caps = |list: &Option<Vec<String>>| list.clone().unwrap_or_default();
        if arch_in(&exc.arches) || caps(&exc.caps).iter().any(|c| t.has_cap(c)) {
            return Ok(false);
        }
        if let Some(min) = &exc.min_kernel {
            if t.kernel >= self.kernel(min)? {
                return Ok(false);
            }
        }
        if nonempty(&inc.arches) && !arch_in(&inc.arches) {
            return Ok(false);
        }
        if !caps(&inc.caps).iter().all(|c| t.has_cap(c)) {
            return Ok(false);
        }
        if let Some(min) = &inc.min_kernel {
            if t.kernel < self.kernel(min)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn kernel(&self, value: &str) -> Result<(u32, u32), ProfileError> {
        parse_kernel(value).ok_or_else(|| ProfileError::MinKernel {
            path: self.path(),
            value: value.to_string(),
        })
    }

    /// One rule per name, each name known to libseccomp.
    fn rules(&self, entry: &SyscallEntry) -> Result<Vec<Rule>, ProfileError> {
        let names: Vec<&String> = entry
            .names
            .iter()
            .flatten()
            .chain(entry.name.as_ref())
            .collect();
        if names.is_empty() {
            return Err(ProfileError::NoNames { path: self.path() });
        }
        let action = self.action(&entry.action, entry.errno_ret)?;
        let mut rules = Vec::new();
        for name in names {
            if libseccomp::ScmpSyscall::from_name(name).is_err() {
                return Err(ProfileError::UnknownSyscall {
                    path: self.path(),
                    name: name.clone(),
                });
            }
            let args = entry
                .args
                .iter()
                .flatten()
                .map(|arg| self.arg(name, arg))
                .collect::<Result<_, _>>()?;
            rules.push(Rule {
                syscall: name.clone(),
                action,
                args,
            });
        }
        Ok(rules)
    }

    fn arg(&self, name: &str, arg: &DockerArg) -> Result<ArgCmp, ProfileError> {
        if arg.index > 5 {
            return Err(ProfileError::ArgIndex {
                path: self.path(),
                name: name.to_string(),
                index: arg.index,
            });
        }
        let op = match arg.op.as_str() {
            "SCMP_CMP_EQ" => CmpOp::Eq,
            "SCMP_CMP_NE" => CmpOp::Ne,
            "SCMP_CMP_LT" => CmpOp::Lt,
            "SCMP_CMP_LE" => CmpOp::Le,
            "SCMP_CMP_GT" => CmpOp::Gt,
            "SCMP_CMP_GE" => CmpOp::Ge,
            "SCMP_CMP_MASKED_EQ" => CmpOp::MaskedEq,
            other => {
                return Err(ProfileError::UnknownOp {
                    path: self.path(),
                    op: other.to_string(),
                })
            }
        };
        Ok(ArgCmp {
            index: arg.index,
            op,
            value: arg.value,
            value_two: arg.value_two,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_STYLE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/seccomp/docker-style-default.json"
    ));

    fn target(go_arch: &'static str, scmp_arch: &'static str, caps: &[&str]) -> Target {
        Target {
            go_arch,
            scmp_arch,
            kernel: (6, 1),
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn amd64(caps: &[&str]) -> Target {
        target("amd64", "SCMP_ARCH_X86_64", caps)
    }

    fn parse(text: &str, target: &Target) -> Result<SeccompProfile, ProfileError> {
        resolve(Path::new("/p.json"), text, target)
    }

    fn actions_for<'a>(profile: &'a SeccompProfile, name: &str) -> Vec<&'a Rule> {
        profile.rules.iter().filter(|r| r.syscall == name).collect()
    }

    #[test]
    fn docker_style_profile_resolves_for_default_capabilities() {
        let caps: Vec<&str> = crate::caps::DEFAULT.to_vec();
        let profile = parse(DOCKER_STYLE, &amd64(&caps)).unwrap();
        assert_eq!(profile.default_action, Action::Errno(1));
        assert_eq!(
            profile.arches,
            ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        );
        // SYS_ADMIN-only calls stay out; SYS_CHROOT (a default capability) lets chroot in.
        assert!(actions_for(&profile, "unshare").is_empty());
        assert_eq!(actions_for(&profile, "chroot")[0].action, Action::Allow);
        let clone = actions_for(&profile, "clone");
        assert_eq!(clone.len(), 1, "only the non-s390 masked rule: {clone:?}");
        assert_eq!(clone[0].args[0].op, CmpOp::MaskedEq);
        assert_eq!(clone[0].args[0].index, 0);
        assert_eq!(actions_for(&profile, "clone3")[0].action, Action::Errno(38));
        assert_eq!(actions_for(&profile, "personality").len(), 5);
        assert!(!actions_for(&profile, "arch_prctl").is_empty());
        assert!(actions_for(&profile, "set_tls").is_empty());
        // minKernel 4.8 holds on 6.1.
        assert_eq!(actions_for(&profile, "ptrace").len(), 1);
    }

    #[test]
    fn capabilities_and_arches_switch_entries() {
        let admin = parse(DOCKER_STYLE, &amd64(&["SYS_ADMIN"])).unwrap();
        assert_eq!(actions_for(&admin, "unshare")[0].action, Action::Allow);
        assert!(actions_for(&admin, "clone3")
            .iter()
            .all(|r| r.action == Action::Allow));
        // On arm64 the arm entry applies: names that are not x86_64's are no error.
        let arm = parse(DOCKER_STYLE, &target("arm64", "SCMP_ARCH_AARCH64", &[])).unwrap();
        assert_eq!(arm.arches, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
        assert!(!actions_for(&arm, "set_tls").is_empty());
        assert!(actions_for(&arm, "arch_prctl").is_empty());
        let old = Target {
            kernel: (4, 4),
            ..amd64(&[])
        };
        assert!(actions_for(&parse(DOCKER_STYLE, &old).unwrap(), "ptrace").is_empty());
    }

    #[test]
    fn actions_errnos_and_comparisons() {
        let text = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
            {"name": "rmdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["kill"], "action": "SCMP_ACT_KILL"},
            {"names": ["tkill"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
            {"names": ["personality"], "action": "SCMP_ACT_LOG",
             "args": [{"index": 0, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"},
                      {"index": 1, "value": 3, "op": "SCMP_CMP_GE"}]}]}"#;
        let p = parse(text, &amd64(&[])).unwrap();
        let got: Vec<(&str, Action)> = p
            .rules
            .iter()
            .map(|r| (r.syscall.as_str(), r.action))
            .collect();
        assert_eq!(
            got,
            [
                ("mkdir", Action::Errno(libc::EPERM as u16)),
                ("rmdir", Action::Errno(13)),
                ("kill", Action::KillThread),
                ("tkill", Action::KillProcess),
                ("ptrace", Action::Trace(7)),
                ("personality", Action::Log),
            ]
        );
        let args = &p.rules[5].args;
        assert_eq!(
            (args[0].op, args[0].value, args[0].value_two),
            (CmpOp::MaskedEq, 255, 8)
        );
        assert_eq!((args[1].op, args[1].index), (CmpOp::Ge, 1));
        assert!(p.arches.is_empty());
    }

    fn error(text: &str) -> String {
        parse(text, &amd64(&[])).unwrap_err().to_string()
    }

    #[test]
    fn bad_profiles_say_what_and_where() {
        let json = error("{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",,\n}");
        assert!(
            json.starts_with("seccomp profile /p.json: invalid JSON at line 2 column 37: "),
            "{json}"
        );
        let unknown = error(
            r#"{"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getpid", "mkdri"], "action": "SCMP_ACT_ERRNO"}]}"#,
        );
        assert_eq!(
            unknown,
            "seccomp profile /p.json: unknown system call \"mkdri\""
        );
        assert!(error(r#"{"defaultAction": "SCMP_ACT_MAYBE"}"#)
            .contains("unknown action \"SCMP_ACT_MAYBE\""));
        assert!(error(r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#).contains("SCMP_ACT_NOTIFY"));
        assert!(error(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"],
                "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}]}]}"#
        )
        .contains("unknown comparison \"SCMP_CMP_LIKE\""));
        assert!(error(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}"#
        )
        .contains("SCMP_ARCH_Z80"));
        assert!(
            error(r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}"#)
                .contains("70000")
        );
        // An unknown name in an entry for another architecture is not looked at.
        parse(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdri"],
                "action": "SCMP_ACT_ERRNO", "includes": {"arches": ["s390x"]}}]}"#,
            &amd64(&[]),
        )
        .unwrap();
        let missing = load_profile(Path::new("/nonexistent/p.json"), &[]).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "seccomp profile /nonexistent/p.json: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(parse_kernel("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel("four"), None);
    }
}
