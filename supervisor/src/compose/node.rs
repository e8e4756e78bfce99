//! Typed reading of a compose document (TOML or YAML, as a [`Tree`]) that keeps, for every key
//! and value, its field path (`services.web.restart`) and its byte offset, so each complaint can
//! say where it is.

use std::fmt::Display;

use super::tree::{Key, Tree, Value};

/// What is wrong and where: the byte offset in the text and the field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub at: usize,
    pub field: String,
    pub message: String,
}

/// A place in the document: byte offset and field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spot {
    pub at: usize,
    pub field: String,
}

impl Spot {
    pub fn err(&self, message: impl Display) -> Invalid {
        Invalid {
            at: self.at,
            field: self.field.clone(),
            message: message.to_string(),
        }
    }
}

/// A key's value or a list's element, with its place.
#[derive(Debug, Clone)]
pub(crate) struct Node<'a> {
    tree: &'a Tree,
    pub spot: Spot,
}

/// A table (a YAML mapping), with its place.
pub(crate) struct Table<'a> {
    entries: &'a [(Key, Tree)],
    pub spot: Spot,
}

/// One key of a table: the key's own place and its value.
pub(crate) struct Entry<'a> {
    pub key: &'a str,
    pub key_spot: Spot,
    pub node: Node<'a>,
}

impl<'a> Node<'a> {
    pub fn root(tree: &'a Tree) -> Self {
        Node {
            tree,
            spot: Spot {
                at: tree.at,
                field: String::new(),
            },
        }
    }

    pub fn err(&self, message: impl Display) -> Invalid {
        self.spot.err(message)
    }

    /// The type, as a phrase: "a string", "a table" …
    pub fn kind(&self) -> &'static str {
        match self.tree.value {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str { .. } => "a string",
            Value::Datetime => "a date-time",
            Value::List(_) => "an array",
            Value::Map(_) => "a table",
        }
    }

    /// "expected {what}, found an integer"
    pub fn wrong_type(&self, what: &str) -> Invalid {
        self.err(format!("expected {what}, found {}", self.kind()))
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match &self.tree.value {
            Value::Str { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn as_integer(&self) -> Option<i64> {
        match self.tree.value {
            Value::Int(i) => Some(i),
            _ => None,
        }
    }

    pub fn as_float(&self) -> Option<f64> {
        match self.tree.value {
            Value::Float(f) => Some(f),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.tree.value {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        self.tree.value == Value::Null
    }

    pub fn string(&self, what: &str) -> Result<&'a str, Invalid> {
        self.as_str().ok_or_else(|| self.wrong_type(what))
    }

    pub fn boolean(&self) -> Result<bool, Invalid> {
        self.as_bool()
            .ok_or_else(|| self.wrong_type("true or false"))
    }

    pub fn is_array(&self) -> bool {
        matches!(self.tree.value, Value::List(_))
    }

    /// The elements, each placed at `path[i]`; `what` describes the expected array.
    pub fn array(&self, what: &str) -> Result<Vec<Node<'a>>, Invalid> {
        let Value::List(items) = &self.tree.value else {
            return Err(self.wrong_type(what));
        };
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, tree)| Node {
                tree,
                spot: Spot {
                    at: tree.at,
                    field: format!("{}[{i}]", self.spot.field),
                },
            })
            .collect())
    }

    /// Every element as a string, or an error at the first one that is not.
    pub fn strings(&self, what: &str, each: &str) -> Result<Vec<(String, Spot)>, Invalid> {
        self.array(what)?
            .into_iter()
            .map(|node| Ok((node.string(each)?.to_string(), node.spot)))
            .collect()
    }

    /// A table; a YAML null (`networks: {back: }`) is an empty one, as in Compose.
    pub fn table(&self, what: &str) -> Result<Table<'a>, Invalid> {
        let entries: &'a [(Key, Tree)] = match &self.tree.value {
            Value::Map(entries) => entries,
            Value::Null => &[],
            _ => return Err(self.wrong_type(what)),
        };
        Ok(Table {
            entries,
            spot: self.spot.clone(),
        })
    }
}

impl<'a> Table<'a> {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys in document order, each with its own place and its value's.
    pub fn entries(&self) -> Vec<Entry<'a>> {
        self.entries
            .iter()
            .map(|(key, tree)| self.entry(key, tree))
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<Node<'a>> {
        let (key, tree) = self.entries.iter().find(|(key, _)| key.name == name)?;
        Some(self.entry(key, tree).node)
    }

    fn entry(&self, key: &'a Key, tree: &'a Tree) -> Entry<'a> {
        let field = join(&self.spot.field, &key.name);
        Entry {
            key: &key.name,
            key_spot: Spot {
                at: key.at,
                field: field.clone(),
            },
            node: Node {
                tree,
                spot: Spot { at: tree.at, field },
            },
        }
    }

    /// Refuses any key not in `allowed`, at the key: a key of the Compose specification as one
    /// Forge does not support yet, any other with the nearest allowed one. Extension fields
    /// (`x-…`) are allowed at every level, as in Compose.
    pub fn only(&self, allowed: &[&str]) -> Result<(), Invalid> {
        for entry in self.entries() {
            if !allowed.contains(&entry.key) && !entry.key.starts_with("x-") {
                let hint = match nearest(entry.key, allowed) {
                    // A real key of another meaning is not a misspelling (ulimits, external).
                    _ if COMPOSE_KEYS.contains(&entry.key) => {
                        "a Compose key that Forge does not support yet".to_string()
                    }
                    Some(near) => format!("did you mean {near:?}?"),
                    None => format!("expected one of: {}", allowed.join(", ")),
                };
                return Err(entry
                    .key_spot
                    .err(format!("unknown key {:?} ({hint})", entry.key)));
            }
        }
        Ok(())
    }
}

/// The keys of the Compose specification, at any level: one that Forge does not read here is
/// not a misspelling of one it does.
const COMPOSE_KEYS: &[&str] = &[
    // top level
    "version",
    "name",
    "include",
    "services",
    "networks",
    "volumes",
    "configs",
    "secrets",
    "models",
    // services
    "annotations",
    "attach",
    "blkio_config",
    "build",
    "cpu_count",
    "cpu_percent",
    "cpu_shares",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_runtime",
    "cpu_rt_period",
    "cpus",
    "cpuset",
    "cgroup",
    "cgroup_parent",
    "container_name",
    "credential_spec",
    "depends_on",
    "deploy",
    "develop",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "extends",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "isolation",
    "labels",
    "label_file",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "network_mode",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "post_start",
    "pre_stop",
    "privileged",
    "profiles",
    "provider",
    "pull_policy",
    "read_only",
    "restart",
    "runtime",
    "scale",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "use_api_socket",
    "user",
    "userns_mode",
    "uts",
    "volumes_from",
    "working_dir",
    // networks, volumes, healthchecks
    "driver",
    "driver_opts",
    "attachable",
    "enable_ipv6",
    "external",
    "ipam",
    "internal",
    "test",
    "interval",
    "timeout",
    "retries",
    "start_period",
    "start_interval",
    "disable",
    // deploy
    "mode",
    "placement",
    "update_config",
    "rollback_config",
    "endpoint_mode",
    "reservations",
    "condition",
    "delay",
    "max_attempts",
    "window",
];

/// `parent.key`, quoting the key as TOML would when it is not a bare key.
pub(crate) fn join(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// The allowed key closest to a misspelt one, if it is close (at most 2 edits).
fn nearest<'k>(key: &str, allowed: &[&'k str]) -> Option<&'k str> {
    allowed
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, text.find('"').unwrap()), (2, 6));
        assert_eq!(line_col(text, 999), (3, 1));
    }

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("imgae", "image"), 2);
        assert_eq!(nearest("imgae", &["image", "init"]), Some("image"));
        assert_eq!(nearest("comand", &["command", "image"]), Some("command"));
        assert_eq!(nearest("volumes", &["image", "init"]), None);
    }

    #[test]
    fn compose_keys_of_another_meaning_are_not_misspellings_and_extensions_pass() {
        let doc: toml_edit::ImDocument<String> =
            "ulimits = 1\nexternal = true\nx-anything = { a = 1 }\nlimitz = 2\n"
                .parse()
                .unwrap();
        let tree = super::super::tree::from_toml(&doc);
        let root = Node::root(&tree).table("a table").unwrap();
        let message = |allowed: &[&str]| root.only(allowed).unwrap_err().message;
        assert_eq!(
            message(&["limits", "internal"]),
            "unknown key \"ulimits\" (a Compose key that Forge does not support yet)"
        );
        assert_eq!(
            message(&["limits", "internal", "ulimits"]),
            "unknown key \"external\" (a Compose key that Forge does not support yet)"
        );
        assert_eq!(
            message(&["limits", "ulimits", "external"]),
            "unknown key \"limitz\" (did you mean \"limits\"?)"
        );
        root.only(&["limitz", "ulimits", "external"]).unwrap();
    }

    #[test]
    fn paths_quote_what_is_not_a_bare_key() {
        assert_eq!(join("", "services"), "services");
        assert_eq!(join("services", "web"), "services.web");
        assert_eq!(join("services", "a.b"), "services.\"a.b\"");
    }
}
