//! Volumes in a compose file: a service's `volumes` (Compose's short form `"data:/db:ro"` and
//! long form `{ type, source, target, ... }`) and the top-level `[volumes.NAME]`. Each mount is
//! checked with forge-runtime's own rules for `-v` and `--mount`, at the element that is wrong.
//!
//! A named volume's `source` stays the key of `[volumes]` here; the name Forge gives it
//! (`PROJECT_KEY`, or `name`) is known once the project is (`up::setup::volume_name`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use forge_runtime::{
    bind_source, check_mount_target, parse_volume, Mount, MountError, MountType, Propagation,
};

use super::node::{Invalid, Node, Spot, Table};

/// A top-level `[volumes.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeDef {
    /// `name`: the volume's name in Forge instead of `PROJECT_NAME`.
    pub name: Option<String>,
    /// `external = true`: made outside the project; never created or removed by it.
    pub external: bool,
    pub labels: BTreeMap<String, String>,
    /// `driver_opts`: the local driver's options, as `forge volume create --opt` takes them.
    pub driver_opts: BTreeMap<String, String>,
}

const TOP_KEYS: &[&str] = &["driver", "driver_opts", "labels", "name", "external"];

/// `[volumes]`: each key checked as a service name is.
pub(super) fn read_definitions(node: &Node) -> Result<BTreeMap<String, VolumeDef>, Invalid> {
    let mut defs = BTreeMap::new();
    for entry in node
        .table("a table of volumes, like [volumes.data]")?
        .entries()
    {
        // Stricter than Compose: a key is a volume name too (`-v KEY:/path`), so Forge's rule
        // for those (at least two characters) applies.
        super::check_name(entry.key, &entry.key_spot, "volume")?;
        if forge_runtime::check_volume_name(entry.key).is_err() {
            return Err(entry.key_spot.err(format!(
                "invalid volume name {:?}: Forge's volume names have at least two characters",
                entry.key
            )));
        }
        let table = entry.node.table("a table, like [volumes.data]")?;
        defs.insert(entry.key.to_string(), definition(&table)?);
    }
    Ok(defs)
}

fn definition(table: &Table) -> Result<VolumeDef, Invalid> {
    table.only(TOP_KEYS)?;
    let mut def = VolumeDef::default();
    if let Some(node) = table.get("external") {
        def.external = node.boolean()?;
    }
    if def.external {
        // Compose's rule: an external volume is only named.
        if let Some(entry) = table
            .entries()
            .into_iter()
            .find(|e| !["external", "name"].contains(&e.key))
        {
            return Err(entry.key_spot.err(format!(
                "an external volume takes only \"name\", not {:?}",
                entry.key
            )));
        }
    }
    if let Some(node) = table.get("name") {
        let name = node.string("a volume name")?;
        forge_runtime::check_volume_name(name).map_err(|e| node.err(e))?;
        def.name = Some(name.to_string());
    }
    if let Some(node) = table.get("driver") {
        let driver = node.string("a driver name")?;
        if driver != "local" {
            return Err(node.err(format!(
                "unknown volume driver {driver:?}: Forge has only \"local\""
            )));
        }
    }
    if let Some(node) = table.get("driver_opts") {
        for entry in node
            .table("a table of driver options, like { size = \"1g\" }")?
            .entries()
        {
            let value = match entry.node.as_integer() {
                Some(n) => n.to_string(),
                None => entry.node.string("a string")?.to_string(),
            };
            def.driver_opts.insert(entry.key.to_string(), value);
        }
        forge_runtime::VolumeKind::from_options(&def.driver_opts).map_err(|e| node.err(e))?;
    }
    if let Some(node) = table.get("labels") {
        def.labels = labels(&node)?;
    }
    Ok(def)
}

/// `{ K = "V" }` or `["K=V"]`.
fn labels(node: &Node) -> Result<BTreeMap<String, String>, Invalid> {
    let mut labels = BTreeMap::new();
    if node.is_array() {
        for (pair, spot) in node.strings("a list of \"KEY=VALUE\"", "a string \"KEY=VALUE\"")? {
            match pair.split_once('=') {
                Some((key, value)) if !key.is_empty() => {
                    labels.insert(key.to_string(), value.to_string());
                }
                _ => return Err(spot.err(format!("invalid label {pair:?}: expected KEY=VALUE"))),
            }
        }
        return Ok(labels);
    }
    for entry in node
        .table("a table { KEY = \"VALUE\" } or a list [\"KEY=VALUE\"]")?
        .entries()
    {
        let value = entry.node.string("a string")?;
        labels.insert(entry.key.to_string(), value.to_string());
    }
    Ok(labels)
}

/// A service's `volumes`, in order, each with its place; `dir` is the compose file's directory
/// (relative bind sources are relative to it).
pub(super) fn read_service(node: &Node, dir: &Path) -> Result<Vec<(Mount, Spot)>, Invalid> {
    let mut mounts = Vec::new();
    for element in node.array("a list of volumes, like [\"data:/var/lib/db\"]")? {
        let mount = match element.as_str() {
            Some(text) => short(text, &element, dir)?,
            None => long(
                &element.table("a string like \"data:/db\" or a table")?,
                dir,
            )?,
        };
        mounts.push((mount, element.spot));
    }
    let all: Vec<Mount> = mounts.iter().map(|(m, _)| m.clone()).collect();
    if let Err(MountError::Duplicate(target)) = forge_runtime::check_mount_targets(&all, &[]) {
        let (_, spot) = mounts
            .iter()
            .filter(|(m, _)| m.target == target)
            .nth(1)
            .expect("a duplicate has a second mount");
        return Err(spot.err(format!("{target} is the destination of two volumes")));
    }
    Ok(mounts)
}

/// `[SOURCE:]TARGET[:MODE]`, read as `forge run -v` reads it; `~/` is the user's home.
fn short(text: &str, node: &Node, dir: &Path) -> Result<Mount, Invalid> {
    let expanded;
    let text = match (text.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => {
            expanded = format!("{}/{rest}", PathBuf::from(home).display());
            expanded.as_str()
        }
        _ => text,
    };
    parse_volume(text, dir).map_err(|e| node.err(in_compose_terms(e)))
}

const LONG_KEYS: &[&str] = &[
    "type",
    "source",
    "target",
    "read_only",
    "bind",
    "volume",
    "tmpfs",
    "consistency",
];

/// `{ type, source, target, read_only, bind = { propagation, create_host_path, selinux },
/// volume = { nocopy }, tmpfs = { size, mode } }`.
fn long(table: &Table, dir: &Path) -> Result<Mount, Invalid> {
    table.only(LONG_KEYS)?;
    let type_node = table.get("type").ok_or_else(|| {
        table
            .spot
            .err("missing key \"type\" (volume, bind or tmpfs)")
    })?;
    let kind = match type_node.string("a mount type")? {
        "volume" => MountType::Volume,
        "bind" => MountType::Bind,
        "tmpfs" => MountType::Tmpfs,
        other => {
            return Err(type_node.err(format!(
                "unknown mount type {other:?} (volume, bind or tmpfs)"
            )))
        }
    };
    let target_node = table.get("target").ok_or_else(|| {
        table
            .spot
            .err("missing key \"target\" (the path in the container)")
    })?;
    let mut mount = Mount {
        kind,
        target: check_mount_target(target_node.string("an absolute path")?)
            .map_err(|e| target_node.err(e))?,
        ..Mount::default()
    };
    if let Some(node) = table.get("read_only") {
        mount.read_only = node.boolean()?;
    }
    // Each sub-table belongs to one type.
    for (key, owner) in [
        ("bind", MountType::Bind),
        ("volume", MountType::Volume),
        ("tmpfs", MountType::Tmpfs),
    ] {
        if let (Some(node), true) = (table.get(key), owner != kind) {
            return Err(node.err(format!(
                "{key} does not apply to type {:?}",
                type_word(kind)
            )));
        }
    }
    let source = table.get("source");
    match kind {
        MountType::Volume => {
            if let Some(node) = &source {
                let name = node.string("a volume name")?;
                forge_runtime::check_volume_name(name).map_err(|e| node.err(e))?;
                mount.source = name.to_string();
            }
            if let Some(node) = table.get("volume") {
                let sub = node.table("a table { nocopy = true }")?;
                sub.only(&["nocopy"])?;
                if let Some(n) = sub.get("nocopy") {
                    mount.nocopy = n.boolean()?;
                }
            }
        }
        MountType::Bind => {
            let node =
                source.ok_or_else(|| table.spot.err("a bind needs \"source\" (a host path)"))?;
            let path = node.string("a host path")?;
            if path.is_empty() {
                return Err(node.err("must not be empty"));
            }
            mount.source = bind_source(path, dir);
            if let Some(node) = table.get("bind") {
                bind_options(&node, &mut mount)?;
            }
        }
        MountType::Tmpfs => {
            if let Some(node) = source {
                return Err(node.err("a tmpfs takes no source"));
            }
            mount.tmpfs_options = tmpfs_options(table.get("tmpfs"))?;
        }
    }
    Ok(mount)
}

fn type_word(kind: MountType) -> &'static str {
    match kind {
        MountType::Bind => "bind",
        MountType::Volume => "volume",
        MountType::Tmpfs => "tmpfs",
    }
}

/// `bind = { propagation = "rslave", create_host_path = true, selinux = "z" }`.
fn bind_options(node: &Node, mount: &mut Mount) -> Result<(), Invalid> {
    let sub = node.table("a table { propagation = \"rslave\", create_host_path = true }")?;
    sub.only(&["propagation", "create_host_path", "selinux"])?;
    if let Some(n) = sub.get("propagation") {
        let word = n.string("a propagation mode")?;
        mount.propagation = Propagation::from_name(word).ok_or_else(|| {
            n.err(format!(
                "unknown propagation {word:?} (rprivate, private, rslave, slave, rshared, shared)"
            ))
        })?;
    }
    if let Some(n) = sub.get("create_host_path") {
        mount.create_source = n.boolean()?;
    }
    // SELinux relabelling: Forge has no SELinux support (accepted, as `-v …:z` is).
    if let Some(n) = sub.get("selinux") {
        let word = n.string("\"z\" or \"Z\"")?;
        if word != "z" && word != "Z" {
            return Err(n.err(format!("unknown selinux option {word:?} (z or Z)")));
        }
    }
    Ok(())
}

/// `tmpfs = { size = "64m" | 67108864, mode = 0o1777 | "1777" }` as tmpfs mount data.
fn tmpfs_options(node: Option<Node>) -> Result<String, Invalid> {
    let mut options = Vec::new();
    let mut mode = "1777".to_string();
    if let Some(node) = node {
        let sub = node.table("a table { size = \"64m\", mode = 0o1777 }")?;
        sub.only(&["size", "mode"])?;
        if let Some(n) = sub.get("size") {
            let size = match (n.as_integer(), n.as_str()) {
                (Some(bytes), _) if bytes > 0 => bytes.to_string(),
                (_, Some(text)) if forge_runtime::is_tmpfs_size(text) => text.to_string(),
                _ => {
                    return Err(
                        n.err("expected a size: bytes, or a string with k, m or g like \"64m\"")
                    )
                }
            };
            options.push(format!("size={size}"));
        }
        if let Some(n) = sub.get("mode") {
            let bits = match (n.as_integer(), n.as_str()) {
                (Some(bits), _) => u32::try_from(bits).ok(),
                (_, Some(text)) => u32::from_str_radix(text, 8).ok(),
                _ => None,
            };
            match bits {
                Some(bits) if bits <= 0o7777 => mode = format!("{bits:o}"),
                _ => {
                    return Err(n.err(
                        "expected a mode: an octal integer like 0o1777 or a string like \"1777\"",
                    ))
                }
            }
        }
    }
    options.push(format!("mode={mode}"));
    Ok(options.join(","))
}

/// `forge run`'s message names its flag; in a compose file the element is already named.
fn in_compose_terms(err: MountError) -> String {
    match err {
        MountError::Invalid { spec, reason, .. } => format!("invalid volume {spec:?}: {reason}"),
        other => other.to_string(),
    }
}
