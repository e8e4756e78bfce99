//! `secrets` and `configs`: defined at the top level (`secrets: { db_pw: { file: ./pw.txt } }`,
//! `{ environment: VAR }`, and for configs `{ content: "..." }`), granted per service
//! (`secrets: [db_pw]`, or `{ source, target }`), and bind-mounted read-only: secrets at
//! `/run/secrets/TARGET` (default the name), configs at `TARGET` (default `/NAME`), as Docker
//! Compose does outside a swarm. A file is bound as it is; a value (from the environment, or
//! the content) is written by the supervisor under its run root and bound from there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use forge_runtime::{Mount, MountType};

use super::interpolate::Variables;
use super::node::{Invalid, Node, Spot};

/// Which of the two kinds: they differ only in where they land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
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

/// Where a secret's or config's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Source {
    /// A host file, absolute, checked to exist: bound as it is.
    File(PathBuf),
    /// A value, written to a file of the supervisor's.
    Value(Value),
}

/// A value and where it was given, which `config` prints back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `environment: VAR`, with the variable's value when the file was read.
    Environment { var: String, value: String },
    /// `content: "..."` (configs only).
    Content(String),
}

impl Value {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Value::Environment { value, .. } => value.as_bytes(),
            Value::Content(text) => text.as_bytes(),
        }
    }
}

/// A secret or config from a value, granted to a service: written by the supervisor, bound
/// read-only at `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub kind: Kind,
    pub name: String,
    pub target: String,
    pub value: Value,
}

/// The top-level `secrets` or `configs`: each name's source.
pub(super) fn read_definitions(
    node: &Node,
    dir: &Path,
    kind: Kind,
    vars: &Variables,
) -> Result<BTreeMap<String, Source>, Invalid> {
    let mut files = BTreeMap::new();
    let like = format!(
        "a table of {}, like {{ NAME = {{ file = \"./NAME.txt\" }} }}",
        kind.key()
    );
    let one_of = match kind {
        Kind::Secret => "file or environment",
        Kind::Config => "file, environment or content",
    };
    for entry in node.table(&like)?.entries() {
        let table = entry.node.table("a table { file = \"./NAME.txt\" }")?;
        table.only(&["file", "environment", "content", "external", "name"])?;
        for key in ["external", "name"] {
            if let Some(node) = table.get(key) {
                return Err(node.err(format!(
                    "{key} is not supported: Forge has no swarm to keep {} in",
                    kind.key()
                )));
            }
        }
        let given: Vec<&str> = ["file", "environment", "content"]
            .into_iter()
            .filter(|key| table.get(key).is_some())
            .collect();
        if given.len() != 1 {
            return Err(table.spot.err(format!("give one of {one_of}")));
        }
        let source = if let Some(file) = table.get("file") {
            let path = PathBuf::from(forge_runtime::bind_source(file.string("a file name")?, dir));
            if !path.is_file() {
                return Err(file.err(format!("{}: no such file", path.display())));
            }
            Source::File(path)
        } else if let Some(node) = table.get("environment") {
            let var = node.string("a variable's name")?.to_string();
            let value = vars
                .get(&var)
                .ok_or_else(|| node.err(format!("the variable {var} is not set")))?;
            Source::Value(Value::Environment { var, value })
        } else {
            let node = table.get("content").expect("one of the three is given");
            if kind == Kind::Secret {
                return Err(
                    node.err("content is for configs (give a secret's file or environment)")
                );
            }
            Source::Value(Value::Content(
                node.string("the config's text")?.to_string(),
            ))
        };
        files.insert(entry.key.to_string(), source);
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

/// What a grant gives: the read-only bind of a file, or a value to write and bind.
pub(super) fn grant(
    grant: &Grant,
    files: &BTreeMap<String, Source>,
) -> Result<Result<Mount, Generated>, Invalid> {
    let source = files.get(&grant.name).ok_or_else(|| {
        grant.spot.err(format!(
            "undefined {} {:?} (define it under the top-level {})",
            &grant.kind.key()[..grant.kind.key().len() - 1],
            grant.name,
            grant.kind.key()
        ))
    })?;
    Ok(match source {
        Source::File(path) => Ok(Mount {
            kind: MountType::Bind,
            source: path.display().to_string(),
            target: grant.target.clone(),
            read_only: true,
            ..Mount::default()
        }),
        Source::Value(value) => Err(Generated {
            kind: grant.kind,
            name: grant.name.clone(),
            target: grant.target.clone(),
            value: value.clone(),
        }),
    })
}
