//! `secrets` and `configs` from files: defined at the top level (`secrets: { db_pw: { file:
//! ./pw.txt } }`), granted per service (`secrets: [db_pw]`, or `{ source, target }`), and
//! bind-mounted read-only: secrets at `/run/secrets/TARGET` (default the name), configs at
//! `TARGET` (default `/NAME`), as Docker Compose does outside a swarm.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use forge_runtime::{Mount, MountType};

use super::node::{Invalid, Node, Spot};

/// Which of the two kinds: they differ only in where they land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Secret,
    Config,
}

impl Kind {
    /// The top-level key and the service key.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Secret => "secrets",
            Kind::Config => "configs",
        }
    }

    fn target(self, name: &str, given: Option<&str>) -> String {
        match (self, given) {
            (_, Some(path)) if path.starts_with('/') => path.to_string(),
            (Kind::Secret, given) => format!("/run/secrets/{}", given.unwrap_or(name)),
            (Kind::Config, given) => format!("/{}", given.unwrap_or(name)),
        }
    }
}

/// The top-level `secrets` or `configs`: each name's file, absolute, checked to exist.
pub(super) fn read_definitions(
    node: &Node,
    dir: &Path,
    kind: Kind,
) -> Result<BTreeMap<String, PathBuf>, Invalid> {
    let mut files = BTreeMap::new();
    let like = format!(
        "a table of {}, like {{ NAME = {{ file = \"./NAME.txt\" }} }}",
        kind.key()
    );
    for entry in node.table(&like)?.entries() {
        let table = entry.node.table("a table { file = \"./NAME.txt\" }")?;
        table.only(&["file", "environment", "content", "external", "name"])?;
        for key in ["environment", "content", "external", "name"] {
            if let Some(node) = table.get(key) {
                return Err(node.err(format!(
                    "{key} is not supported yet: Forge reads {} from files only (give file)",
                    kind.key()
                )));
            }
        }
        let file = table
            .get("file")
            .ok_or_else(|| table.spot.err("missing key \"file\""))?;
        let path = PathBuf::from(forge_runtime::bind_source(file.string("a file name")?, dir));
        if !path.is_file() {
            return Err(file.err(format!("{}: no such file", path.display())));
        }
        files.insert(entry.key.to_string(), path);
    }
    Ok(files)
}

/// A service's grant: the name it asks for, where it lands, and where it was given.
#[derive(Debug, Clone)]
pub(super) struct Grant {
    pub kind: Kind,
    pub name: String,
    pub target: String,
    pub spot: Spot,
}

/// A service's `secrets` or `configs`: `[NAME]` or `[{ source, target }]`.
pub(super) fn read_grants(node: &Node, kind: Kind) -> Result<Vec<Grant>, Invalid> {
    let mut grants = Vec::new();
    for element in node.array(&format!("a list of {} names", kind.key()))? {
        let (name, target) = match element.as_str() {
            Some(name) => (name.to_string(), None),
            None => {
                let table = element.table("a name or a table { source, target }")?;
                table.only(&["source", "target", "uid", "gid", "mode"])?;
                for key in ["uid", "gid", "mode"] {
                    if let Some(node) = table.get(key) {
                        return Err(node.err(format!(
                            "{key} is not supported: the file is bind-mounted as it is on the host"
                        )));
                    }
                }
                let source = table
                    .get("source")
                    .ok_or_else(|| table.spot.err("missing key \"source\""))?;
                let target = table
                    .get("target")
                    .map(|t| t.string("a path").map(str::to_string))
                    .transpose()?;
                (source.string("a name")?.to_string(), target)
            }
        };
        let target = forge_runtime::check_mount_target(&kind.target(&name, target.as_deref()))
            .map_err(|e| element.err(e))?;
        grants.push(Grant {
            kind,
            name,
            target,
            spot: element.spot.clone(),
        });
    }
    Ok(grants)
}

/// The read-only bind of a granted file.
pub(super) fn mount(grant: &Grant, files: &BTreeMap<String, PathBuf>) -> Result<Mount, Invalid> {
    let source = files.get(&grant.name).ok_or_else(|| {
        grant.spot.err(format!(
            "undefined {} {:?} (define it under the top-level {})",
            &grant.kind.key()[..grant.kind.key().len() - 1],
            grant.name,
            grant.kind.key()
        ))
    })?;
    Ok(Mount {
        kind: MountType::Bind,
        source: source.display().to_string(),
        target: grant.target.clone(),
        read_only: true,
        ..Mount::default()
    })
}
