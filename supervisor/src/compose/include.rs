//! `include`: other compose files whose services, networks, volumes, secrets and configs join
//! this file's, as Compose's top-level `include` does (`include: [common.yaml]` or
//! `[{ path: [a.yaml, b.yaml] }]`). Each included file is read as a whole first (its own
//! `include` and `extends` resolved), its relative paths made relative to its own directory;
//! a name both files define is an error, as in Compose, which does not merge them.

use std::path::{Path, PathBuf};

use super::extends::{self, map_remove, Failure, Load};
use super::node::Invalid;
use super::tree::{Key, Tree, Value};

/// Includes deeper than this are taken for a cycle.
const MAX_DEPTH: usize = 16;

/// The top-level sections an included file adds to.
const SECTIONS: [&str; 5] = ["services", "networks", "volumes", "secrets", "configs"];

/// Resolves `tree`'s `include` (a file in `dir`), and the included files' own.
pub(crate) fn resolve(tree: &mut Tree, dir: &Path, load: &Load) -> Result<(), Failure> {
    resolve_at(tree, dir, load, 0)
}

fn resolve_at(tree: &mut Tree, dir: &Path, load: &Load, depth: usize) -> Result<(), Failure> {
    let Some(include) = map_remove(tree, "include") else {
        return Ok(());
    };
    for (path, at, field) in paths(&include)? {
        if depth >= MAX_DEPTH {
            let message = format!("include goes through more than {MAX_DEPTH} files (a cycle?)");
            return Err(invalid(at, &field, message).into());
        }
        let path = PathBuf::from(forge_runtime::bind_source(&path, dir));
        let mut other = load(&path).map_err(Failure::There)?;
        let other_dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        resolve_at(&mut other, &other_dir, load, depth + 1)?;
        extends::resolve(&mut other, &other_dir, load)?;
        extends::rebase_file(&mut other, &other_dir);
        add(tree, other, &path, at, &field)?;
    }
    Ok(())
}

/// Each file an `include` names: its path as written, and where (offset, field).
fn paths(include: &Tree) -> Result<Vec<(String, usize, String)>, Invalid> {
    let Value::List(items) = &include.value else {
        let message = "expected a list of files, like [\"common.yaml\"]";
        return Err(invalid(include.at, "include", message));
    };
    let mut paths = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("include[{i}]");
        match &item.value {
            Value::Str { text, .. } => paths.push((text.clone(), item.at, field)),
            Value::Map(entries) => {
                for (key, value) in entries {
                    let field = format!("{field}.{}", key.name);
                    match (key.name.as_str(), &value.value) {
                        ("path", Value::Str { text, .. }) => {
                            paths.push((text.clone(), value.at, field))
                        }
                        ("path", Value::List(files)) => {
                            for (j, file) in files.iter().enumerate() {
                                let Value::Str { text, .. } = &file.value else {
                                    return Err(invalid(file.at, &field, "expected a file name"));
                                };
                                paths.push((text.clone(), file.at, format!("{field}[{j}]")));
                            }
                        }
                        ("path", _) => {
                            return Err(invalid(
                                value.at,
                                &field,
                                "expected a file or a list of files",
                            ))
                        }
                        ("project_directory" | "env_file", _) => {
                            let message = format!("{} is not supported yet: an included file is read with the including project's variables and its own directory", key.name);
                            return Err(invalid(key.at, &field, message));
                        }
                        (other, _) => {
                            let message = format!("unknown key {other:?} (expected path)");
                            return Err(invalid(key.at, &field, message));
                        }
                    }
                }
            }
            _ => {
                let message = "expected a file name or a table { path }";
                return Err(invalid(item.at, &field, message));
            }
        }
    }
    Ok(paths)
}

/// Adds `other`'s sections to `tree`'s, refusing a name both define.
fn add(
    tree: &mut Tree,
    mut other: Tree,
    path: &Path,
    at: usize,
    field: &str,
) -> Result<(), Invalid> {
    for section in SECTIONS {
        let Some(Tree {
            value: Value::Map(entries),
            ..
        }) = map_remove(&mut other, section)
        else {
            continue;
        };
        let Some(mine) = section_of(tree, section, at) else {
            // This file's own section is malformed: reading it says so.
            continue;
        };
        for (key, value) in entries {
            if mine.iter().any(|(k, _)| k.name == key.name) {
                let message = format!(
                    "{section}.{} is defined both here and in the included {} (include does not merge them: rename one)",
                    key.name,
                    path.display()
                );
                return Err(invalid(at, field, message));
            }
            mine.push((key, value));
        }
    }
    Ok(())
}

/// The entries of `tree`'s top-level map `section`, made (empty, at `at`) when missing or
/// null (an empty `services:` in YAML); `None` when it is not a map.
fn section_of<'t>(
    tree: &'t mut Tree,
    section: &str,
    at: usize,
) -> Option<&'t mut Vec<(Key, Tree)>> {
    let Value::Map(top) = &mut tree.value else {
        return None;
    };
    let i = match top.iter().position(|(k, _)| k.name == section) {
        Some(i) => i,
        None => {
            let key = Key {
                name: section.to_string(),
                at,
            };
            top.push((key, Tree::new(at, Value::Null)));
            top.len() - 1
        }
    };
    let value = &mut top[i].1;
    if value.value == Value::Null {
        value.value = Value::Map(Vec::new());
    }
    match &mut value.value {
        Value::Map(entries) => Some(entries),
        _ => None,
    }
}

fn invalid(at: usize, field: &str, message: impl std::fmt::Display) -> Invalid {
    Invalid {
        at,
        field: field.to_string(),
        message: message.to_string(),
    }
}
