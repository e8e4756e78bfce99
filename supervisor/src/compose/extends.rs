//! `extends`: a service built on another one, of this file (`extends: base`, or `{ service:
//! base }`) or of another (`{ file: common.yaml, service: base }`), merged on the document
//! tree before any key is read, by Compose's merge rules: the local service wins; mappings merge
//! key by key (`environment` and `labels` in either form); `command`, `entrypoint` and
//! `healthcheck.test` are replaced; `volumes`, `secrets`, `configs` and `tmpfs` are merged by
//! destination; other lists are joined, without repeats.
//!
//! A service of another file keeps its positions in that file (see `sources.rs`), and its
//! relative bind sources and `env_file`s are made relative to that file's directory.

use std::path::{Path, PathBuf};

use super::node::Invalid;
use super::tree::{Key, Tree, Value};

/// Chains longer than this are taken for a cycle through files.
const MAX_DEPTH: usize = 16;

/// Why a file's `extends` could not be resolved: a place in this file, or another file's error.
pub(crate) enum Failure {
    Here(Invalid),
    There(super::ComposeError),
}

impl From<Invalid> for Failure {
    fn from(invalid: Invalid) -> Self {
        Failure::Here(invalid)
    }
}

/// Reads another compose file (parsed and interpolated, not checked) as a tree.
pub(crate) type Load<'l> = dyn Fn(&Path) -> Result<Tree, super::ComposeError> + 'l;

/// Resolves every service's `extends` in `tree`, a file in `dir`.
pub(crate) fn resolve(tree: &mut Tree, dir: &Path, load: &Load) -> Result<(), Failure> {
    resolve_at(tree, dir, load, 0)
}

fn resolve_at(tree: &mut Tree, dir: &Path, load: &Load, depth: usize) -> Result<(), Failure> {
    let Some(services) = map_get_mut(tree, "services") else {
        return Ok(());
    };
    let Value::Map(entries) = &services.value else {
        return Ok(());
    };
    let names: Vec<String> = entries.iter().map(|(k, _)| k.name.clone()).collect();
    for name in names {
        let mut chain = Vec::new();
        resolve_service(services, &name, dir, load, depth, &mut chain)?;
    }
    Ok(())
}

/// Resolves service `name` of the `services` map in place; `chain` holds the services being
/// resolved, to find a cycle.
fn resolve_service(
    services: &mut Tree,
    name: &str,
    dir: &Path,
    load: &Load,
    depth: usize,
    chain: &mut Vec<String>,
) -> Result<(), Failure> {
    let field = |key: &str| format!("services.{name}.{key}");
    let Some(service) = map_get_mut(services, name) else {
        return Ok(());
    };
    let Some(extends) = map_remove(service, "extends") else {
        return Ok(());
    };
    let here = |message: String, at: usize, key: &str| Invalid {
        at,
        field: field(key),
        message,
    };
    let (file, base) = match &extends.value {
        Value::Str { text, .. } => (None, text.clone()),
        Value::Map(entries) => {
            let mut file = None;
            let mut base = None;
            for (key, value) in entries {
                let text = match &value.value {
                    Value::Str { text, .. } => text.clone(),
                    _ => {
                        return Err(here(
                            "expected a string".into(),
                            value.at,
                            &format!("extends.{}", key.name),
                        )
                        .into())
                    }
                };
                match key.name.as_str() {
                    "service" => base = Some(text),
                    "file" => file = Some(text),
                    other => {
                        return Err(here(
                            format!("unknown key {other:?} (expected service and file)"),
                            key.at,
                            &format!("extends.{other}"),
                        )
                        .into())
                    }
                }
            }
            let base = base.ok_or_else(|| {
                here(
                    "missing key \"service\" (the service to extend)".into(),
                    extends.at,
                    "extends",
                )
            })?;
            (file, base)
        }
        _ => {
            return Err(here(
                "expected a service name or a table { service, file }".into(),
                extends.at,
                "extends",
            )
            .into())
        }
    };
    let base_tree = match file {
        None => {
            if base == name || chain.contains(&base) {
                chain.push(name.to_string());
                chain.push(base.clone());
                return Err(here(
                    format!("extends cycle: {}", chain.join(" -> ")),
                    extends.at,
                    "extends",
                )
                .into());
            }
            chain.push(name.to_string());
            resolve_service(services, &base, dir, load, depth, chain)?;
            chain.pop();
            map_get_mut(services, &base)
                .ok_or_else(|| {
                    here(
                        format!("extends unknown service {base:?}"),
                        extends.at,
                        "extends",
                    )
                })?
                .clone()
        }
        Some(file) => {
            if depth >= MAX_DEPTH {
                return Err(here(
                    format!("extends goes through more than {MAX_DEPTH} files (a cycle?)"),
                    extends.at,
                    "extends",
                )
                .into());
            }
            let path = PathBuf::from(forge_runtime::bind_source(&file, dir));
            let mut other = load(&path).map_err(Failure::There)?;
            let other_dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
            resolve_at(&mut other, &other_dir, load, depth + 1)?;
            let mut base_tree = map_get_mut(&mut other, "services")
                .and_then(|s| map_get_mut(s, &base))
                .ok_or_else(|| {
                    here(
                        format!("{} has no service {base:?}", path.display()),
                        extends.at,
                        "extends",
                    )
                })?
                .clone();
            rebase(&mut base_tree, &other_dir);
            base_tree
        }
    };
    let service = map_get_mut(services, name).expect("found above");
    let local = std::mem::replace(service, Tree::new(0, Value::Null));
    *service = merge(base_tree, local, "");
    Ok(())
}

fn map_get_mut<'t>(tree: &'t mut Tree, name: &str) -> Option<&'t mut Tree> {
    match &mut tree.value {
        Value::Map(entries) => entries
            .iter_mut()
            .find(|(k, _)| k.name == name)
            .map(|(_, t)| t),
        _ => None,
    }
}

pub(crate) fn map_remove(tree: &mut Tree, name: &str) -> Option<Tree> {
    match &mut tree.value {
        Value::Map(entries) => {
            let i = entries.iter().position(|(k, _)| k.name == name)?;
            Some(entries.remove(i).1)
        }
        _ => None,
    }
}

/// Makes a whole file's relative paths relative to `dir`, its directory: its services' bind
/// sources and env files, its secrets' and configs' files.
pub(crate) fn rebase_file(tree: &mut Tree, dir: &Path) {
    if let Some(Tree {
        value: Value::Map(services),
        ..
    }) = map_get_mut(tree, "services")
    {
        for (_, service) in services {
            rebase(service, dir);
        }
    }
    for section in ["secrets", "configs"] {
        let Some(Tree {
            value: Value::Map(definitions),
            ..
        }) = map_get_mut(tree, section)
        else {
            continue;
        };
        for (_, definition) in definitions {
            if let Some(Tree {
                value: Value::Str { text, .. },
                ..
            }) = map_get_mut(definition, "file")
            {
                *text = forge_runtime::bind_source(text, dir);
            }
        }
    }
}

/// Makes a service's relative bind sources and env files relative to `dir`, its file's.
fn rebase(service: &mut Tree, dir: &Path) {
    let absolute = |path: &str| forge_runtime::bind_source(path, dir);
    let relative = |path: &str| path.starts_with("./") || path.starts_with("../") || path == ".";
    if let Some(volumes) = map_get_mut(service, "volumes") {
        if let Value::List(items) = &mut volumes.value {
            for item in items {
                match &mut item.value {
                    Value::Str { text, .. } => {
                        if let Some((source, rest)) = text.split_once(':') {
                            if relative(source) {
                                *text = format!("{}:{rest}", absolute(source));
                            }
                        }
                    }
                    Value::Map(_) => {
                        if let Some(source) = map_get_mut(item, "source") {
                            if let Value::Str { text, .. } = &mut source.value {
                                if relative(text) {
                                    *text = absolute(text);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    if let Some(env_file) = map_get_mut(service, "env_file") {
        rebase_env_files(env_file, &absolute);
    }
}

fn rebase_env_files(tree: &mut Tree, absolute: &dyn Fn(&str) -> String) {
    match &mut tree.value {
        Value::Str { text, .. } => *text = absolute(text),
        Value::List(items) => items
            .iter_mut()
            .for_each(|item| rebase_env_files(item, absolute)),
        Value::Map(_) => {
            if let Some(path) = map_get_mut(tree, "path") {
                rebase_env_files(path, absolute);
            }
        }
        _ => {}
    }
}

/// A whole compose file merged over the ones before it (`-f A -f B`), by the same rules.
pub(crate) fn merge_documents(base: Tree, over: Tree) -> Tree {
    merge(base, over, "")
}

/// Compose's merge of `local` over `base`; `key` is the key both are under.
fn merge(base: Tree, local: Tree, key: &str) -> Tree {
    let (base, local) = if matches!(key, "environment" | "labels" | "depends_on" | "networks") {
        (as_map(base), as_map(local))
    } else {
        (base, local)
    };
    match (base.value, local.value) {
        (Value::Map(base_entries), Value::Map(local_entries)) => {
            let mut merged: Vec<(Key, Tree)> = Vec::new();
            let mut local_entries: Vec<Option<(Key, Tree)>> =
                local_entries.into_iter().map(Some).collect();
            for (k, b) in base_entries {
                let found = local_entries
                    .iter_mut()
                    .find(|e| e.as_ref().is_some_and(|(lk, _)| lk.name == k.name))
                    .and_then(Option::take);
                match found {
                    Some((lk, l)) => {
                        let name = lk.name.clone();
                        merged.push((lk, merge(b, l, &name)));
                    }
                    None => merged.push((k, b)),
                }
            }
            merged.extend(local_entries.into_iter().flatten());
            Tree::new(local.at, Value::Map(merged))
        }
        (Value::List(base_items), Value::List(local_items))
            if !matches!(key, "command" | "entrypoint" | "test") =>
        {
            let by_target = matches!(key, "volumes" | "secrets" | "configs" | "tmpfs");
            let mut items: Vec<Tree> = base_items
                .into_iter()
                .filter(|b| {
                    !local_items.iter().any(|l| {
                        l.value == b.value
                            || (by_target && target(l).is_some_and(|t| Some(t) == target(b)))
                    })
                })
                .collect();
            items.extend(local_items);
            Tree::new(local.at, Value::List(items))
        }
        (_, value) => Tree::new(local.at, value),
    }
}

/// Where a `volumes`, `secrets`, `configs` or `tmpfs` entry lands, to merge by it.
fn target(tree: &Tree) -> Option<String> {
    match &tree.value {
        Value::Str { text, .. } => {
            let parts: Vec<&str> = text.split(':').collect();
            match parts.as_slice() {
                [_, target, ..] if target.starts_with('/') => Some(target.to_string()),
                [first, ..] => Some(first.to_string()),
                [] => None,
            }
        }
        Value::Map(entries) => ["target", "source"].iter().find_map(|name| {
            entries
                .iter()
                .find(|(k, _)| k.name == *name)
                .and_then(|(_, t)| match &t.value {
                    Value::Str { text, .. } => Some(text.clone()),
                    _ => None,
                })
        }),
        _ => None,
    }
}

/// `["K=V", "BARE"]` or `["db"]` as a map (`K: V`, `BARE:`, `db:`); a map as it is.
fn as_map(tree: Tree) -> Tree {
    let strings = match &tree.value {
        Value::List(items) => items.iter().all(|i| matches!(i.value, Value::Str { .. })),
        _ => false,
    };
    // Anything else is left for the reader to refuse.
    let (true, Value::List(items)) = (strings, tree.value.clone()) else {
        return tree;
    };
    let entries = items
        .into_iter()
        .map(|item| {
            let text = match &item.value {
                Value::Str { text, .. } => text.clone(),
                _ => return None,
            };
            let (name, value) = match text.split_once('=') {
                Some((k, v)) => (
                    k.to_string(),
                    Value::Str {
                        text: v.to_string(),
                        plain: false,
                    },
                ),
                None => (text, Value::Null),
            };
            Some((Key { name, at: item.at }, Tree::new(item.at, value)))
        })
        .collect::<Option<Vec<_>>>()
        .expect("all strings");
    Tree::new(tree.at, Value::Map(entries))
}
