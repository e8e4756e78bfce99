//! One `[services.NAME]` table, field by field, and the small tables inside it (healthcheck,
//! limits, x-backoff; the security keys are in `security.rs`). Checks that need other services are left to the caller, with the places
//! they need in [`Placed`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use forge_runtime::network::PublishedPort;
use forge_runtime::parse_signal;
use forge_runtime::UsernsMode as Mode;
use forge_runtime::{LimitArgs, LimitError, Limits};
use nix::sys::signal::Signal;

use super::node::{Invalid, Node, Spot, Table};
use super::Variables;
use super::{Backoff, Condition, HealthTest, Healthcheck, PullPolicy, RestartPolicy, Service};
use crate::duration::parse_duration;

const SERVICE_KEYS: &[&str] = &[
    "image",
    "container_name",
    "labels",
    "expose",
    "pull_policy",
    "entrypoint",
    "command",
    "environment",
    "env_file",
    "working_dir",
    "user",
    "hostname",
    "init",
    "depends_on",
    "restart",
    "x-backoff",
    "healthcheck",
    "limits",
    "deploy",
    "scale",
    "cpus",
    "mem_limit",
    "memswap_limit",
    "pids_limit",
    "networks",
    "ports",
    "stop_signal",
    "stop_grace_period",
    "cap_add",
    "cap_drop",
    "privileged",
    "security_opt",
    "read_only",
    "tmpfs",
    "userns_mode",
    "volumes",
    "profiles",
    "secrets",
    "configs",
    "network_mode",
    "logging",
    "tty",
    "stdin_open",
];

/// Where a service names other services, networks and ports, for the checks across services.
#[derive(Debug, Default)]
pub(super) struct Placed {
    pub depends_on: Vec<(String, Spot)>,
    pub networks: Vec<(String, Spot)>,
    pub ports: Vec<(PublishedPort, Spot)>,
    /// The named volumes it mounts (keys of `[volumes]`).
    pub volumes: Vec<(String, Spot)>,
    /// Where its `container_name` is.
    pub container_name: Option<Spot>,
    /// Its fixed address on its first network, checked against that network's subnet.
    pub ipv4_address: Option<(std::net::Ipv4Addr, Spot)>,
    /// `deploy.replicas` or `scale`, and where it was given.
    pub replicas: Option<(u32, Spot)>,
    /// Dependencies with `required = false`: left out, with a warning, when not in the file
    /// or not enabled.
    pub optional: Vec<String>,
    /// The secrets and configs it is granted, made into mounts once the file's are read.
    pub grants: Vec<super::files::Grant>,
}

/// `dir` is the compose file's directory, for relative paths in the service.
pub(super) fn read(
    name: &str,
    node: &Node,
    global_backoff: &Backoff,
    dir: &Path,
    vars: &Variables,
) -> Result<(Service, Placed), Invalid> {
    let table = node.table("a table, like [services.web]")?;
    table.only(SERVICE_KEYS)?;
    let get = |key| table.get(key);
    let mut placed = Placed::default();

    let image = match get("image") {
        Some(node) => non_empty(&node, node.string("an image name")?)?.to_string(),
        None => return Err(node.err("missing required key \"image\"")),
    };
    let mut restarts_with = BTreeSet::new();
    let depends_on = match get("depends_on") {
        Some(node) => depends_on(
            &node,
            &mut placed.depends_on,
            &mut placed.optional,
            &mut restarts_with,
        )?,
        None => BTreeMap::new(),
    };
    let attachments = match (get("network_mode"), get("networks")) {
        (Some(mode), networks) => {
            super::attach::network_mode(&mode, networks.as_ref(), get("ports").as_ref())?
        }
        (None, Some(node)) => super::attach::networks(&node)?,
        (None, None) => super::attach::Attachments {
            networks: vec![(super::DEFAULT_NETWORK.to_string(), node.spot.clone())],
            ..Default::default()
        },
    };
    // The supervisor has no terminal to give a container: only the defaults are taken.
    for key in ["tty", "stdin_open"] {
        if let Some(node) = get(key) {
            if node.boolean()? {
                return Err(node.err(format!(
                    "{key} = true is not supported: forge-supervise gives its containers no terminal or input (use forge run -it)"
                )));
            }
        }
    }
    placed.networks = attachments.networks;
    placed.ipv4_address = attachments.ipv4_address.clone();
    placed.container_name = get("container_name").map(|n| n.spot);
    if let Some(node) = get("expose") {
        expose(&node)?;
    }
    for kind in [super::files::Kind::Secret, super::files::Kind::Config] {
        if let Some(node) = get(kind.key()) {
            placed
                .grants
                .extend(super::files::read_grants(&node, kind)?);
        }
    }
    if let Some(node) = get("ports") {
        placed.ports = super::attach::ports(&node)?;
    }
    let security = super::security::read(&table, dir)?;
    let mut volumes = Vec::new();
    if let Some(node) = get("volumes") {
        let tmpfs = tmpfs_paths(&security.tmpfs);
        for (mount, spot) in super::volumes::read_service(&node, dir)? {
            if forge_runtime::check_mount_targets(std::slice::from_ref(&mount), &tmpfs).is_err() {
                return Err(spot.err(format!("{} is also a tmpfs of this service", mount.target)));
            }
            if mount.kind == forge_runtime::MountType::Volume && !mount.source.is_empty() {
                placed.volumes.push((mount.source.clone(), spot));
            }
            volumes.push(mount);
        }
    }
    let deploy = get("deploy")
        .map(|n| super::deploy::read(&n))
        .transpose()?
        .unwrap_or_default();
    let limits = limits(&table, deploy.limits.as_ref())?;
    placed.replicas = match (get("scale"), deploy.replicas.clone()) {
        (Some(node), Some(_)) => return Err(node.err("give scale or deploy.replicas, not both")),
        (Some(node), None) => Some((super::deploy::replicas(&node)?, node.spot.clone())),
        (None, replicas) => replicas,
    };
    if let (Mode::Auto, Some(_)) = (security.userns, &limits.storage) {
        let spot = get("userns_mode").expect("auto was given").spot;
        return Err(spot.err("userns_mode = \"auto\" cannot be combined with limits.storage"));
    }
    let service = Service {
        name: name.to_string(),
        image,
        entrypoint: get("entrypoint")
            .map(|n| words(&n, "entrypoint"))
            .transpose()?,
        command: get("command").map(|n| words(&n, "command")).transpose()?,
        environment: {
            let mut env = get("env_file").map_or(Ok(Vec::new()), |n| env_files(&n, dir))?;
            env.extend(get("environment").map_or(Ok(Vec::new()), |n| environment(&n, vars))?);
            env
        },
        working_dir: get("working_dir").map(|n| working_dir(&n)).transpose()?,
        user: get("user").map(|n| user(&n)).transpose()?,
        hostname: get("hostname")
            .map(|n| {
                n.string("a host name")
                    .and_then(|t| non_empty(&n, t))
                    .map(str::to_string)
            })
            .transpose()?,
        init: get("init").map_or(Ok(false), |n| n.boolean())?,
        pull_policy: get("pull_policy").map_or(Ok(PullPolicy::Missing), |n| pull_policy(&n))?,
        container_name: get("container_name")
            .map(|n| container_name(&n))
            .transpose()?,
        labels: get("labels").map_or(Ok(BTreeMap::new()), |n| labels(&n))?,
        depends_on,
        restarts_with,
        restart: match (get("restart"), &deploy.restart) {
            (Some(node), Some(_)) => {
                return Err(node.err("give restart or deploy.restart_policy, not both"))
            }
            (Some(node), None) => restart(&node)?,
            (None, Some(deployed)) => deployed.policy,
            (None, None) => RestartPolicy::No,
        },
        backoff: {
            let mut backoff =
                get("x-backoff").map_or(Ok(*global_backoff), |n| backoff(&n, global_backoff))?;
            if let Some(deployed) = &deploy.restart {
                if let Some(delay) = deployed.delay {
                    backoff.initial = delay;
                    backoff.max = backoff.max.max(delay);
                }
                if let Some(window) = deployed.window {
                    backoff.reset_after = window;
                }
            }
            backoff
        },
        healthcheck: get("healthcheck").map_or(Ok(None), |n| healthcheck(&n))?,
        limits,
        networks: placed.networks.iter().map(|(n, _)| n.clone()).collect(),
        aliases: attachments.aliases,
        ipv4_address: attachments.ipv4_address.map(|(ip, _)| ip),
        ports: placed.ports.iter().map(|(p, _)| *p).collect(),
        stop_signal: get("stop_signal").map(|n| signal(&n)).transpose()?,
        stop_grace_period: get("stop_grace_period")
            .map_or(Ok(Duration::from_secs(10)), |n| duration(&n))?,
        privileges: security.privileges,
        read_only: security.read_only,
        tmpfs: security.tmpfs,
        userns: security.userns,
        volumes,
        generated: Vec::new(),
        logging: get("logging").map_or(Ok(Default::default()), |n| super::logging::read(&n))?,
        profiles: get("profiles").map_or(Ok(Vec::new()), |n| profiles(&n))?,
    };
    Ok((service, placed))
}

/// The destinations of `tmpfs` entries (`PATH[:OPTIONS]`).
pub(super) fn tmpfs_paths(tmpfs: &[String]) -> Vec<&str> {
    tmpfs
        .iter()
        .map(|t| t.split_once(':').map_or(t.as_str(), |(path, _)| path))
        .collect()
}

fn non_empty<'t>(node: &Node, text: &'t str) -> Result<&'t str, Invalid> {
    if text.trim().is_empty() {
        Err(node.err("must not be empty"))
    } else {
        Ok(text)
    }
}

pub(super) fn duration(node: &Node) -> Result<Duration, Invalid> {
    let text = node.string("a duration like \"10s\" or \"1m30s\"")?;
    parse_duration(text).map_err(|err| node.err(err))
}

/// A command line: a list of words, or a string split as a shell splits words (quotes and
/// backslashes) but never run through a shell.
fn words(node: &Node, what: &str) -> Result<Vec<String>, Invalid> {
    let words = match node.as_str() {
        Some(text) => shell_words::split(text)
            .map_err(|err| node.err(format!("cannot split {text:?} into words: {err}")))?,
        None => node
            .strings("a string or a list of strings", "a string")?
            .into_iter()
            .map(|(word, _)| word)
            .collect(),
    };
    if words.is_empty() {
        return Err(node.err(format!(
            "empty {what}: give the program to run and its arguments"
        )));
    }
    Ok(words)
}

/// `{ K = "V", N = 1 }` or `["K=V"]`, as `K=V` strings. A bare `K` (or `K:` with no value in
/// YAML) takes the caller's value, or the `.env` file's, and is left out when neither has one,
/// as in Compose.
fn environment(node: &Node, vars: &Variables) -> Result<Vec<String>, Invalid> {
    let passed = |key: &str| vars.get(key).map(|value| format!("{key}={value}"));
    if node.is_array() {
        let list = node.strings("a list of \"KEY=VALUE\"", "a string \"KEY=VALUE\"")?;
        let mut env = Vec::new();
        for (pair, spot) in list {
            match pair.split_once('=') {
                Some((key, _)) if !key.is_empty() => env.push(pair),
                None if !pair.is_empty() => env.extend(passed(&pair)),
                _ => return Err(spot.err(format!("invalid variable {pair:?}: expected KEY=VALUE"))),
            }
        }
        return Ok(env);
    }
    let table = node.table("a table { KEY = \"VALUE\" } or a list [\"KEY=VALUE\"]")?;
    let mut env = Vec::new();
    for entry in table.entries() {
        let value = match (
            entry.node.as_str(),
            entry.node.as_integer(),
            entry.node.as_float(),
            entry.node.as_bool(),
        ) {
            (Some(s), ..) => s.to_string(),
            (_, Some(i), ..) => i.to_string(),
            (_, _, Some(f), _) => f.to_string(),
            (.., Some(b)) => b.to_string(),
            _ if entry.node.is_null() => {
                env.extend(passed(entry.key));
                continue;
            }
            _ => return Err(entry.node.wrong_type("a string, number or boolean")),
        };
        env.push(format!("{}={value}", entry.key));
    }
    Ok(env)
}

/// `["debug", "tools"]`: names as Compose allows them.
fn profiles(node: &Node) -> Result<Vec<String>, Invalid> {
    let list = node.strings("a list of profile names", "a profile name")?;
    for (name, spot) in &list {
        if !super::is_name(name) {
            return Err(spot.err(format!(
                "invalid profile name {name:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
            )));
        }
    }
    Ok(list.into_iter().map(|(name, _)| name).collect())
}

/// `".env"`, `[".env", "more.env"]` or `[{ path = "x.env", required = false }]`, relative to
/// the compose file's directory: each file read now, in order (`environment` wins over them).
fn env_files(node: &Node, dir: &Path) -> Result<Vec<String>, Invalid> {
    let mut files: Vec<(String, bool, Node)> = Vec::new();
    if node.as_str().is_some() {
        files.push((node.string("a file name")?.to_string(), true, node.clone()));
    } else {
        for element in node.array("a file name or a list of them")? {
            match element.as_str() {
                Some(path) => files.push((path.to_string(), true, element.clone())),
                None => {
                    let table = element.table("a file name or a table { path, required }")?;
                    table.only(&["path", "required"])?;
                    let path = table
                        .get("path")
                        .ok_or_else(|| table.spot.err("missing key \"path\""))?;
                    let required = table.get("required").map_or(Ok(true), |n| n.boolean())?;
                    files.push((
                        path.string("a file name")?.to_string(),
                        required,
                        element.clone(),
                    ));
                }
            }
        }
    }
    let mut env = Vec::new();
    for (path, required, node) in files {
        let full = dir.join(&path);
        if !required && !full.exists() {
            continue;
        }
        env.extend(forge_runtime::read_env_file(&full).map_err(|e| node.err(e))?);
    }
    Ok(env)
}

fn working_dir(node: &Node) -> Result<String, Invalid> {
    let dir = node.string("an absolute path")?;
    if !dir.starts_with('/') {
        return Err(node.err(format!("{dir:?} is not an absolute path")));
    }
    Ok(dir.to_string())
}

/// `"1000"`, `"1000:1000"`, `"nobody"` or a number.
fn user(node: &Node) -> Result<String, Invalid> {
    match node.as_integer() {
        Some(uid) if uid >= 0 => Ok(uid.to_string()),
        _ => {
            let text = node.string("a user name or uid[:gid]")?;
            Ok(non_empty(node, text)?.to_string())
        }
    }
}

/// `["db"]` (started), or `{ db = { condition = "service_healthy", required = false } }`.
fn depends_on(
    node: &Node,
    places: &mut Vec<(String, Spot)>,
    optional: &mut Vec<String>,
    restarts_with: &mut BTreeSet<String>,
) -> Result<BTreeMap<String, Condition>, Invalid> {
    let mut deps = BTreeMap::new();
    if node.is_array() {
        for (dep, spot) in node.strings("a list of service names", "a service name")? {
            if deps.insert(dep.clone(), Condition::Started).is_some() {
                return Err(spot.err(format!("service {dep:?} is listed twice")));
            }
            places.push((dep, spot));
        }
        return Ok(deps);
    }
    let what = "a list of service names or a table { NAME = { condition = \"...\" } }";
    for entry in node.table(what)?.entries() {
        let table = entry.node.table("a table { condition = \"...\" }")?;
        table.only(&["condition", "required", "restart"])?;
        if let Some(node) = table.get("restart") {
            if node.boolean()? {
                restarts_with.insert(entry.key.to_string());
            }
        }
        if let Some(node) = table.get("required") {
            if !node.boolean()? {
                optional.push(entry.key.to_string());
            }
        }
        let condition = match table.get("condition") {
            Some(node) => {
                let text = node.string("a condition like \"service_healthy\"")?;
                text.parse().map_err(|err| node.err(err))?
            }
            None => Condition::Started,
        };
        deps.insert(entry.key.to_string(), condition);
        places.push((entry.key.to_string(), entry.key_spot));
    }
    Ok(deps)
}

/// A container name as `forge run --name` takes it.
fn container_name(node: &Node) -> Result<String, Invalid> {
    let name = node.string("a container name")?;
    forge_runtime::check_container_name(name).map_err(|e| node.err(e))?;
    Ok(name.to_string())
}

/// `{ KEY = "VALUE" }` or `["KEY=VALUE"]`; Forge's own `forge.*` labels are refused.
fn labels(node: &Node) -> Result<BTreeMap<String, String>, Invalid> {
    let mut labels = BTreeMap::new();
    let mut add = |key: String, value: String, spot: &Spot| {
        if key.is_empty() || key.starts_with("forge.") {
            return Err(spot.err(format!(
                "invalid label {key:?}: labels need a key, and forge.* ones are Forge's own"
            )));
        }
        labels.insert(key, value);
        Ok(())
    };
    if node.is_array() {
        for (text, spot) in node.strings("a table or list of labels", "a label like \"K=V\"")? {
            let (key, value) = text.split_once('=').unwrap_or((&text, ""));
            add(key.to_string(), value.to_string(), &spot)?;
        }
    } else {
        for entry in node.table("a table or list of labels")?.entries() {
            let value = entry.node.string("a label's value")?.to_string();
            add(entry.key.to_string(), value, &entry.key_spot)?;
        }
    }
    Ok(labels)
}

/// `expose`: ports the service listens on, as documentation (Docker publishes them only with
/// `-P`, which compose has not); checked, not acted on.
fn expose(node: &Node) -> Result<(), Invalid> {
    for (text, spot) in node.strings("a list of ports", "a port like \"8080\" or \"53/udp\"")? {
        let (port, proto) = text.split_once('/').unwrap_or((&text, "tcp"));
        let ports_ok = port
            .split_once('-')
            .map_or(vec![port], |(a, b)| vec![a, b])
            .iter()
            .all(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
        if !ports_ok || !["tcp", "udp", "sctp"].contains(&proto) {
            return Err(spot.err(format!(
                "invalid port {text:?}: expected PORT[-PORT][/tcp|udp|sctp]"
            )));
        }
    }
    Ok(())
}

fn pull_policy(node: &Node) -> Result<PullPolicy, Invalid> {
    let text = node.string("a pull policy like \"missing\"")?;
    text.parse().map_err(|err| node.err(err))
}

fn restart(node: &Node) -> Result<RestartPolicy, Invalid> {
    let text = node.string("a restart policy like \"on-failure:5\"")?;
    text.parse().map_err(|err| node.err(err))
}

/// `initial`, `max` and `reset_after`, each overriding `base`'s.
pub(super) fn backoff(node: &Node, base: &Backoff) -> Result<Backoff, Invalid> {
    let table =
        node.table("a table { initial = \"100ms\", max = \"60s\", reset_after = \"10s\" }")?;
    table.only(&["initial", "max", "reset_after"])?;
    let mut backoff = *base;
    let field = |key, default| table.get(key).map_or(Ok(default), |n| duration(&n));
    backoff.initial = field("initial", base.initial)?;
    backoff.max = field("max", base.max)?;
    backoff.reset_after = field("reset_after", base.reset_after)?;
    let blame = |keys: &[&str]| -> Spot {
        keys.iter()
            .find_map(|key| table.get(key))
            .map_or(table.spot.clone(), |n| n.spot)
    };
    if backoff.initial.is_zero() {
        return Err(blame(&["initial"]).err("the initial delay must be more than 0"));
    }
    if backoff.max < backoff.initial {
        return Err(blame(&["max", "initial"]).err(format!(
            "max ({:?}) is less than initial ({:?})",
            backoff.max, backoff.initial
        )));
    }
    Ok(backoff)
}

/// Compose's healthcheck; `None` when disabled.
fn healthcheck(node: &Node) -> Result<Option<Healthcheck>, Invalid> {
    let table = node.table("a table, like [services.web.healthcheck]")?;
    table.only(&[
        "test",
        "interval",
        "timeout",
        "retries",
        "start_period",
        "start_interval",
        "disable",
    ])?;
    let positive = |key, default: Duration| -> Result<Duration, Invalid> {
        let Some(node) = table.get(key) else {
            return Ok(default);
        };
        let value = duration(&node)?;
        if value.is_zero() {
            return Err(node.err(format!("{key} must be more than 0")));
        }
        Ok(value)
    };
    let interval = positive("interval", Duration::from_secs(30))?;
    let timeout = positive("timeout", Duration::from_secs(30))?;
    let start_period = table
        .get("start_period")
        .map_or(Ok(Duration::ZERO), |n| duration(&n))?;
    let start_interval = match table.get("start_interval") {
        Some(_) => Some(positive("start_interval", Duration::ZERO)?),
        None => None,
    };
    let retries = match table.get("retries") {
        Some(node) => match node.as_integer() {
            Some(n) if n >= 1 && n <= i64::from(u32::MAX) => n as u32,
            Some(_) => return Err(node.err("retries must be at least 1")),
            None => return Err(node.wrong_type("a number of retries")),
        },
        None => 3,
    };
    let disabled = table.get("disable").map_or(Ok(false), |n| n.boolean())?;
    let test = match table.get("test") {
        Some(node) => health_test(&node)?,
        None if disabled => None,
        None => {
            return Err(table
                .spot
                .err("missing key \"test\" (like test = [\"CMD\", \"true\"])"))
        }
    };
    Ok(test.filter(|_| !disabled).map(|test| Healthcheck {
        test,
        interval,
        timeout,
        retries,
        start_period,
        start_interval,
    }))
}

/// `["CMD", ...]`, `["CMD-SHELL", "..."]`, a string (CMD-SHELL), or `["NONE"]` (`None`).
fn health_test(node: &Node) -> Result<Option<HealthTest>, Invalid> {
    if let Some(text) = node.as_str() {
        return Ok(Some(HealthTest::Shell(non_empty(node, text)?.to_string())));
    }
    let what = "a string or a list like [\"CMD\", \"program\", \"arg\"]";
    let mut words = node.strings(what, "a string")?.into_iter().map(|(w, _)| w);
    let kind = words
        .next()
        .ok_or_else(|| node.err("empty test: start it with \"CMD\", \"CMD-SHELL\" or \"NONE\""))?;
    let rest: Vec<String> = words.collect();
    match (kind.as_str(), rest.as_slice()) {
        ("NONE", []) => Ok(None),
        ("CMD", [_, ..]) => Ok(Some(HealthTest::Cmd(rest))),
        ("CMD-SHELL", [script]) if !script.trim().is_empty() => {
            Ok(Some(HealthTest::Shell(script.clone())))
        }
        ("NONE", _) => Err(node.err("[\"NONE\"] takes nothing after it")),
        ("CMD", _) => Err(node.err("[\"CMD\", ...] needs a program after \"CMD\"")),
        ("CMD-SHELL", _) => {
            Err(node.err("[\"CMD-SHELL\", ...] takes exactly one non-empty command string"))
        }
        _ => Err(node.err(format!(
            "unknown test kind {kind:?} (expected \"CMD\", \"CMD-SHELL\" or \"NONE\" first)"
        ))),
    }
}

/// `{ cpus, memory, memory_swap, pids, storage }`, checked as `forge run` checks its flags.
/// Compose's service-level spellings of the keys of `limits`.
const LIMIT_ALIASES: [(&str, &str); 4] = [
    ("cpus", "cpus"),
    ("mem_limit", "memory"),
    ("memswap_limit", "memory_swap"),
    ("pids_limit", "pids"),
];

/// The service's `limits = { … }`, with Compose's `cpus`, `mem_limit`, `memswap_limit` and
/// `pids_limit` beside it and `deploy.resources.limits` as other spellings of the same keys
/// (one spelling per limit).
fn limits(service: &Table, deployed: Option<&Table>) -> Result<Limits, Invalid> {
    let keys = ["cpus", "memory", "memory_swap", "pids", "storage"];
    // Each key's text and the place an error about it points at.
    let mut given: BTreeMap<&str, (String, Spot)> = BTreeMap::new();
    let table = service
        .get("limits")
        .map(|node| node.table("a table { cpus = 0.5, memory = \"256m\", pids = 100 }"))
        .transpose()?;
    if let Some(table) = &table {
        table.only(&keys)?;
        for key in keys {
            if let Some(node) = table.get(key) {
                given.insert(key, (limit_text(&node)?, node.spot));
            }
        }
    }
    let aliases = LIMIT_ALIASES
        .iter()
        .filter_map(|(alias, key)| Some((service.get(alias)?, *key)));
    let deployed = ["cpus", "memory", "pids"]
        .into_iter()
        .filter_map(|key| Some((deployed?.get(key)?, key)));
    for (node, key) in aliases.chain(deployed) {
        if given.contains_key(key) {
            return Err(node.err(format!(
                "the same limit as limits.{key}: give one of the two"
            )));
        }
        given.insert(key, (limit_text(&node)?, node.spot));
    }
    let text = |key| given.get(key).map(|(text, _)| text.as_str());
    let args = LimitArgs {
        cpus: text("cpus"),
        memory: text("memory"),
        memory_swap: text("memory_swap"),
        pids: text("pids"),
        storage: text("storage"),
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    Limits::parse(&args, cpus).map_err(|err| {
        let spot = given.get(limit_key(&err)).map_or_else(
            || {
                table
                    .as_ref()
                    .map_or(service.spot.clone(), |t| t.spot.clone())
            },
            |(_, spot)| spot.clone(),
        );
        spot.err(in_compose_terms(&err.to_string()))
    })
}

/// A limit as the text `forge run` would get: numbers may be written bare.
fn limit_text(node: &Node) -> Result<String, Invalid> {
    match (node.as_str(), node.as_integer(), node.as_float()) {
        (Some(text), ..) => Ok(text.to_string()),
        (_, Some(n), _) => Ok(n.to_string()),
        (.., Some(f)) => Ok(f.to_string()),
        _ => Err(node.wrong_type("a number or a string like \"256m\"")),
    }
}

/// The key of `limits` that an error from [`Limits::parse`] is about.
fn limit_key(err: &LimitError) -> &'static str {
    match err {
        LimitError::BadCpus(_) | LimitError::TooManyCpus { .. } => "cpus",
        LimitError::BadPids(_) => "pids",
        LimitError::SwapBelowMemory { .. } | LimitError::SwapWithoutMemory => "memory_swap",
        LimitError::BadSize { field, .. } | LimitError::TooSmall { field, .. } => match *field {
            "--memory" => "memory",
            "--memory-swap" => "memory_swap",
            _ => "storage",
        },
    }
}

/// `forge run`'s messages name its flags; here the keys of `limits` are meant.
fn in_compose_terms(message: &str) -> String {
    [
        ("--memory-swap", "memory_swap"),
        ("--memory", "memory"),
        ("--pids-limit", "pids"),
        ("--cpus", "cpus"),
        ("--storage", "storage"),
    ]
    .iter()
    .fold(message.to_string(), |text, (flag, key)| {
        text.replace(flag, key)
    })
}

/// `"SIGTERM"`, `"TERM"`, `"15"` or `15`.
fn signal(node: &Node) -> Result<Signal, Invalid> {
    let text = match node.as_integer() {
        Some(n) => n.to_string(),
        None => node
            .string("a signal like \"SIGTERM\" or a number")?
            .to_string(),
    };
    parse_signal(&text).map_err(|err| node.err(err))
}
