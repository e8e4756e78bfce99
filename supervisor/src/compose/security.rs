//! A service's security keys, as Docker Compose spells them: `cap_add`, `cap_drop`,
//! `privileged`, `security_opt`, `read_only`, `tmpfs` and `userns_mode`. They are resolved
//! with forge-runtime's own code for `forge run`'s flags (capabilities, then security options,
//! whose seccomp profile is read and compiled here), so a file is refused for exactly what
//! `forge run` would refuse, at the element that is wrong.

use std::path::Path;

use forge_runtime::UsernsMode as Mode;
use forge_runtime::{apply_security_opts, SecurityOpt, SecurityOptError};
use forge_runtime::{check_capability, Privileges};

use super::node::{Invalid, Node, Spot, Table};

/// What the security keys resolve to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Security {
    pub privileges: Privileges,
    pub read_only: bool,
    /// `PATH[:OPTIONS]`, each checked.
    pub tmpfs: Vec<String>,
    pub userns: Mode,
}

/// Reads the security keys of a service's table; `dir` is the compose file's directory, which
/// a relative seccomp profile path is relative to (as in Compose).
pub(super) fn read(table: &Table, dir: &Path) -> Result<Security, Invalid> {
    let cap_add = capabilities(table.get("cap_add"))?;
    let cap_drop = capabilities(table.get("cap_drop"))?;
    let privileged = table.get("privileged").map_or(Ok(false), |n| n.boolean())?;
    let mut privileges = Privileges::resolve(&cap_add, &cap_drop, privileged)
        .expect("every capability name was checked");
    if let Some(node) = table.get("security_opt") {
        security_opts(&node, dir, &mut privileges)?;
    }
    Ok(Security {
        privileges,
        read_only: table.get("read_only").map_or(Ok(false), |n| n.boolean())?,
        tmpfs: table.get("tmpfs").map_or(Ok(Vec::new()), |n| tmpfs(&n))?,
        userns: table
            .get("userns_mode")
            .map_or(Ok(Mode::Host), |n| userns(&n))?,
    })
}

/// `["NET_ADMIN", "CAP_SYS_TIME", "ALL"]`, each name checked where it stands.
fn capabilities(node: Option<Node>) -> Result<Vec<String>, Invalid> {
    let Some(node) = node else {
        return Ok(Vec::new());
    };
    let list = node.strings(
        "a list of capabilities like [\"NET_ADMIN\"]",
        "a capability",
    )?;
    list.into_iter()
        .map(|(name, spot)| {
            check_capability(&name).map_err(|err| spot.err(err))?;
            Ok(name)
        })
        .collect()
}

/// `["seccomp=profile.json", "no-new-privileges:true"]`: each option parsed where it stands;
/// the profile (the last seccomp option counts) is read, resolved and compiled, and its errors
/// are put at that option.
fn security_opts(node: &Node, dir: &Path, privileges: &mut Privileges) -> Result<(), Invalid> {
    let list = node.strings(
        "a list like [\"no-new-privileges:true\"]",
        "a security option",
    )?;
    let mut opts = Vec::new();
    let mut seccomp_spot: Option<Spot> = None;
    for (text, spot) in list {
        let opt: SecurityOpt = text
            .parse()
            .map_err(|err| spot.err(in_compose_terms(&err)))?;
        if opt.is_seccomp() {
            seccomp_spot = Some(spot);
        }
        opts.push(opt.relative_to(dir));
    }
    apply_security_opts(privileges, &opts).map_err(|err| {
        seccomp_spot
            .unwrap_or_else(|| node.spot.clone())
            .err(in_compose_terms(&err))
    })
}

/// The syntax errors name `--security-opt`; here the key is meant.
fn in_compose_terms(err: &SecurityOptError) -> String {
    match err {
        SecurityOptError::EmptySeccompPath => "seccomp= needs a profile path".into(),
        SecurityOptError::Unsupported(opt) => format!(
            "unsupported security option {opt:?} (seccomp=unconfined, seccomp=PROFILE.json, no-new-privileges[:true|false])"
        ),
        other => other.to_string(),
    }
}

/// `"/run"` or `["/run", "/tmp:size=64m"]`.
fn tmpfs(node: &Node) -> Result<Vec<String>, Invalid> {
    let list = match node.as_str() {
        Some(text) => vec![(text.to_string(), node.spot.clone())],
        None => node.strings(
            "a path or a list like [\"/run\", \"/tmp:size=64m\"]",
            "a path[:options]",
        )?,
    };
    let mut paths: Vec<String> = Vec::new();
    for (spec, spot) in &list {
        let (path, _) = forge_runtime::parse_tmpfs(spec)
            .map_err(|err| spot.err(format!("invalid tmpfs {err}")))?;
        if paths.contains(&path) {
            return Err(spot.err(format!("tmpfs {path:?} is listed twice")));
        }
        paths.push(path);
    }
    Ok(list.into_iter().map(|(spec, _)| spec).collect())
}

/// `"host"` or `"auto"`.
fn userns(node: &Node) -> Result<Mode, Invalid> {
    let text = node.string("\"host\" or \"auto\"")?;
    match text.parse() {
        Ok(mode) if !text.is_empty() => Ok(mode),
        _ => Err(node.err(format!(
            "unknown userns_mode {text:?} (expected \"host\" or \"auto\")"
        ))),
    }
}
