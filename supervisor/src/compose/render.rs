//! The model a compose file gives, written back out in Compose's canonical spelling (as
//! `docker compose config` does): every default filled in, every short form long, variables
//! substituted, `extends`, merges and replicas resolved. JSON, or YAML made from the same value.

use serde_json::{json, Map, Value};

use super::files::{self, Kind};
use super::{Compose, HealthTest, Service};
use forge_runtime::MountType;

/// The project as one JSON value.
pub fn to_json(compose: &Compose, project: &str) -> Value {
    let services: Map<String, Value> = compose
        .services
        .iter()
        .map(|(name, svc)| (name.clone(), service(svc)))
        .collect();
    let networks: Map<String, Value> = compose
        .networks
        .iter()
        .map(|(name, def)| {
            let mut out = Map::new();
            if let Some(subnet) = def.subnet {
                out.insert("subnet".into(), json!(subnet.to_string()));
            }
            if let Some(gateway) = def.gateway {
                out.insert("gateway".into(), json!(gateway.to_string()));
            }
            out.insert("internal".into(), json!(def.internal));
            out.insert("external".into(), json!(def.external));
            if let Some(n) = &def.name {
                out.insert("name".into(), json!(n));
            }
            (name.clone(), Value::Object(out))
        })
        .collect();
    let volumes: Map<String, Value> = compose
        .volumes
        .iter()
        .map(|(name, def)| {
            let mut out = Map::new();
            if let Some(n) = &def.name {
                out.insert("name".into(), json!(n));
            }
            out.insert("external".into(), json!(def.external));
            out.insert("labels".into(), json!(def.labels));
            out.insert("driver_opts".into(), json!(def.driver_opts));
            (name.clone(), Value::Object(out))
        })
        .collect();
    let mut out = json!({
        "name": project,
        "services": services,
        "networks": networks,
        "volumes": volumes,
    });
    for kind in [Kind::Secret, Kind::Config] {
        let defined = definitions(compose, kind);
        if !defined.is_empty() {
            out[kind.key()] = Value::Object(defined);
        }
    }
    out
}

/// The top-level secrets or configs that come from values (those from files are binds).
fn definitions(compose: &Compose, kind: Kind) -> Map<String, Value> {
    let generated = compose.services.values().flat_map(|svc| &svc.generated);
    generated
        .filter(|g| g.kind == kind)
        .map(|g| {
            let source = match &g.value {
                files::Value::Environment { var, .. } => json!({ "environment": var }),
                files::Value::Content(text) => json!({ "content": text }),
            };
            (g.name.clone(), source)
        })
        .collect()
}

fn duration(d: std::time::Duration) -> Value {
    json!(crate::duration::format_duration(d))
}

fn service(svc: &Service) -> Value {
    let mut out = Map::new();
    // What is empty is left out, as Compose leaves it out.
    let mut put = |key: &str, value: Value| {
        let empty = match &value {
            Value::Null => true,
            Value::Array(items) => items.is_empty(),
            Value::Object(map) => map.is_empty(),
            _ => false,
        };
        if !empty {
            out.insert(key.to_string(), value);
        }
    };
    put("image", json!(svc.image));
    put("entrypoint", json!(svc.entrypoint));
    put("command", json!(svc.command));
    let environment: Map<String, Value> = svc
        .environment
        .iter()
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k.to_string(), json!(v))
        })
        .collect();
    put("environment", Value::Object(environment));
    put("working_dir", json!(svc.working_dir));
    put("user", json!(svc.user));
    put("hostname", json!(svc.hostname));
    put("init", json!(svc.init));
    put("container_name", json!(svc.container_name));
    put("labels", json!(svc.labels));
    put("profiles", json!(svc.profiles));
    let depends_on: Map<String, Value> = svc
        .depends_on
        .iter()
        .map(|(dep, c)| {
            let mut entry = json!({ "condition": c.as_str() });
            if svc.restarts_with.contains(dep) {
                entry["restart"] = json!(true);
            }
            (dep.clone(), entry)
        })
        .collect();
    put("depends_on", Value::Object(depends_on));
    put("restart", json!(svc.restart.to_string()));
    put(
        "x-backoff",
        json!({
            "initial": duration(svc.backoff.initial),
            "max": duration(svc.backoff.max),
            "reset_after": duration(svc.backoff.reset_after),
        }),
    );
    if let Some(h) = &svc.healthcheck {
        let test = match &h.test {
            HealthTest::Cmd(words) => {
                let mut test = vec!["CMD".to_string()];
                test.extend(words.iter().cloned());
                test
            }
            HealthTest::Shell(script) => vec!["CMD-SHELL".to_string(), script.clone()],
        };
        let mut check = json!({
            "test": test,
            "interval": duration(h.interval),
            "timeout": duration(h.timeout),
            "retries": h.retries,
            "start_period": duration(h.start_period),
        });
        if let Some(start_interval) = h.start_interval {
            check["start_interval"] = duration(start_interval);
        }
        put("healthcheck", check);
    }
    put("limits", json!(svc.limits));
    let networks: Map<String, Value> = svc
        .networks
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut attach = Map::new();
            if !svc.aliases.is_empty() {
                attach.insert("aliases".into(), json!(svc.aliases));
            }
            if let (0, Some(ip)) = (i, svc.ipv4_address) {
                attach.insert("ipv4_address".into(), json!(ip.to_string()));
            }
            (n.clone(), Value::Object(attach))
        })
        .collect();
    if svc.networks.is_empty() {
        put("network_mode", json!("none"));
    } else {
        put("networks", Value::Object(networks));
    }
    let ports: Vec<Value> = svc
        .ports
        .iter()
        .map(|p| {
            let mut port = json!({
                "target": p.container_port,
                "protocol": p.protocol.to_string(),
            });
            if p.host_port != 0 {
                port["published"] = json!(p.host_port.to_string());
            }
            if let Some(ip) = p.host_ip {
                port["host_ip"] = json!(ip.to_string());
            }
            port
        })
        .collect();
    put("ports", json!(ports));
    put("stop_signal", json!(svc.stop_signal.map(|s| s.as_str())));
    put("stop_grace_period", duration(svc.stop_grace_period));
    // What cap_add, cap_drop and privileged resolved to.
    put("x-forge-capabilities", json!(svc.privileges.capabilities));
    put("privileged", json!(svc.privileges.privileged));
    put("read_only", json!(svc.read_only));
    put("tmpfs", json!(svc.tmpfs));
    put(
        "userns_mode",
        json!(match svc.userns {
            forge_runtime::UsernsMode::Host => "host",
            forge_runtime::UsernsMode::Auto => "auto",
        }),
    );
    let volumes: Vec<Value> = svc
        .volumes
        .iter()
        .map(|m| {
            let kind = match m.kind {
                MountType::Bind => "bind",
                MountType::Volume => "volume",
                MountType::Tmpfs => "tmpfs",
            };
            let mut mount = json!({ "type": kind, "target": m.target, "read_only": m.read_only });
            if !m.source.is_empty() {
                mount["source"] = json!(m.source);
            }
            mount
        })
        .collect();
    put("volumes", json!(volumes));
    if !svc.logging.is_default() {
        let mut options = Map::new();
        if let Some(size) = svc.logging.max_size {
            options.insert("max-size".into(), json!(size.to_string()));
        }
        if svc.logging.driver != super::logging::LogDriver::None {
            options.insert("max-file".into(), json!(svc.logging.max_file.to_string()));
        }
        put(
            "logging",
            json!({ "driver": svc.logging.driver.as_str(), "options": options }),
        );
    }
    for kind in [Kind::Secret, Kind::Config] {
        let granted: Vec<Value> = svc
            .generated
            .iter()
            .filter(|g| g.kind == kind)
            .map(|g| json!({ "source": g.name, "target": g.target }))
            .collect();
        put(kind.key(), json!(granted));
    }
    Value::Object(out)
}

/// YAML of a JSON value: block mappings and sequences, strings bare where that reads back the
/// same and double-quoted elsewhere (JSON's escapes are YAML's), so that every scalar reads
/// back as the type it is.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    yaml_into(value, 0, &mut out);
    out
}

fn yaml_into(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, v) in map {
                out.push_str(&format!("{pad}{}:", scalar(&json!(key))));
                block_or_inline(v, indent, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for v in items {
                out.push_str(&format!("{pad}-"));
                block_or_inline(v, indent, out);
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

fn block_or_inline(value: &Value, indent: usize, out: &mut String) {
    let nested = match value {
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => !items.is_empty(),
        _ => false,
    };
    if nested {
        out.push('\n');
        yaml_into(value, indent + 2, out);
    } else {
        out.push_str(&format!(" {}\n", scalar(value)));
    }
}

/// A scalar: a string bare when YAML reads it back as that string, else double-quoted.
fn scalar(value: &Value) -> String {
    match value {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        // `$` as `$$`: the output is a compose file, read back without a second interpolation.
        Value::String(text) if plain_ok(text) => text.clone(),
        Value::String(text) => json!(text.replace('$', "$$")).to_string(),
        other => other.to_string(),
    }
}

fn plain_ok(text: &str) -> bool {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    text.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '/' || c == '_')
        && text.chars().all(safe)
        && matches!(
            super::yaml::resolve_plain(text),
            super::tree::Value::Str { .. }
        )
}
