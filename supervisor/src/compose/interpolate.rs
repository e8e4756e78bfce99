//! Interpolation of a compose.yaml's values (`${TAG:-latest}`, see [`forge_runtime::template`])
//! from the caller's environment and the `.env` file beside the compose file (or the
//! `--env-file` ones), the caller winning, as in Docker Compose. Keys are not interpolated. A
//! plain scalar is typed again after it (`replicas: ${N}` is a number).
//!
//! compose.toml is not interpolated: it is Forge's own format, whose strings are literal (its
//! scripts use the shell's `$` freely).

use std::collections::BTreeMap;
use std::path::Path;

use forge_runtime::template::{substitute, LoneDollar};

use super::node::{join, Invalid};
use super::tree::{Tree, Value};

/// The variables a compose file may use.
#[derive(Debug, Default, Clone)]
pub struct Variables {
    /// From the env files, overridden by the caller's environment.
    files: BTreeMap<String, String>,
}

impl Variables {
    /// `env_files` as given (`--env-file`), else `DIR/.env` when it exists.
    pub fn read(dir: &Path, env_files: &[std::path::PathBuf]) -> Result<Self, String> {
        let default = dir.join(".env");
        let files: Vec<&Path> = if env_files.is_empty() {
            if default.is_file() {
                vec![default.as_path()]
            } else {
                Vec::new()
            }
        } else {
            env_files.iter().map(|p| p.as_path()).collect()
        };
        let mut vars = Variables::default();
        for file in files {
            for pair in forge_runtime::read_env_file(file).map_err(|e| e.to_string())? {
                let (key, value) = pair.split_once('=').expect("KEY=VALUE");
                vars.files.insert(key.to_string(), value.to_string());
            }
        }
        Ok(vars)
    }

    pub fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| self.files.get(name).cloned())
    }
}

/// Substitutes every string value in `tree`; returns Compose's warning for each unset
/// variable, once per variable.
pub(crate) fn interpolate(tree: &mut Tree, vars: &Variables) -> Result<Vec<String>, Invalid> {
    let mut unset = Vec::new();
    walk(tree, "", vars, &mut unset)?;
    let mut warnings = Vec::new();
    for name in unset {
        let warning = format!("The \"{name}\" variable is not set. Defaulting to a blank string.");
        if !warnings.contains(&warning) {
            warnings.push(warning);
        }
    }
    Ok(warnings)
}

fn walk(
    tree: &mut Tree,
    field: &str,
    vars: &Variables,
    unset: &mut Vec<String>,
) -> Result<(), Invalid> {
    match &mut tree.value {
        Value::Str { text, plain } if text.contains('$') => {
            let lookup = |name: &str| vars.get(name);
            let done =
                substitute(text, &lookup, LoneDollar::Refused).map_err(|message| Invalid {
                    at: tree.at,
                    field: field.to_string(),
                    message,
                })?;
            unset.extend(done.unset);
            // An empty result stays a string: `image: ${IMAGE}` is "", not null.
            tree.value = if *plain && !done.text.is_empty() {
                super::yaml::resolve_plain(&done.text)
            } else {
                Value::Str {
                    text: done.text,
                    plain: false,
                }
            };
        }
        Value::List(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &format!("{field}[{i}]"), vars, unset)?;
            }
        }
        Value::Map(entries) => {
            for (key, value) in entries {
                walk(value, &join(field, &key.name), vars, unset)?;
            }
        }
        _ => {}
    }
    Ok(())
}
