//! How a service is plugged in: `networks` (a list, or a map with `aliases` and
//! `ipv4_address`), `network_mode` and `ports` (Docker's short form with ranges, a bare number, or the long form).

use std::net::Ipv4Addr;

use forge_runtime::network::PublishedPort;

use super::node::{Invalid, Node, Spot};

/// A service's networks in order (the first routes everything else), with its aliases and its
/// fixed address on the first one.
#[derive(Debug, Default)]
pub(super) struct Attachments {
    pub networks: Vec<(String, Spot)>,
    pub aliases: Vec<String>,
    /// The address and where it was given.
    pub ipv4_address: Option<(Ipv4Addr, Spot)>,
}

/// `["default", "back"]`, or `{ back: { aliases: [db], ipv4_address: 10.89.1.5 }, front: }`.
pub(super) fn networks(node: &Node) -> Result<Attachments, Invalid> {
    let mut out = Attachments::default();
    if node.is_array() {
        out.networks = node.strings("a list of network names", "a network name")?;
    } else {
        let what = "a list of network names or a table { NAME = { aliases, ipv4_address } }";
        for (i, entry) in node.table(what)?.entries().into_iter().enumerate() {
            out.networks
                .push((entry.key.to_string(), entry.key_spot.clone()));
            let table = entry.node.table("a table { aliases, ipv4_address }")?;
            table.only(&["aliases", "ipv4_address"])?;
            if let Some(aliases) = table.get("aliases") {
                for (alias, spot) in aliases.strings("a list of names", "a name")? {
                    forge_runtime::check_container_name(&alias).map_err(|e| spot.err(e))?;
                    if !out.aliases.contains(&alias) {
                        out.aliases.push(alias);
                    }
                }
            }
            if let Some(address) = table.get("ipv4_address") {
                if i > 0 {
                    return Err(address.err(
                        "ipv4_address is supported on the service's first network only (Forge fixes one address per container)",
                    ));
                }
                let text = address.string("an IPv4 address like \"10.89.1.5\"")?;
                let ip = text.parse().map_err(|_| {
                    address.err(format!(
                        "invalid ipv4_address {text:?}: expected an IPv4 address like 10.89.1.5"
                    ))
                })?;
                out.ipv4_address = Some((ip, address.spot.clone()));
            }
        }
    }
    if out.networks.is_empty() {
        return Err(node.err("empty list of networks (leave it out to join \"default\")"));
    }
    for (i, (name, spot)) in out.networks.iter().enumerate() {
        if out.networks[..i].iter().any(|(earlier, _)| earlier == name) {
            return Err(spot.err(format!("network {name:?} is listed twice")));
        }
    }
    Ok(out)
}

/// `network_mode`: `none` (no network, only `lo`); the others are refused by name.
pub(super) fn network_mode(
    mode: &Node,
    networks: Option<&Node>,
    ports: Option<&Node>,
) -> Result<Attachments, Invalid> {
    let text = mode.string("a network mode like \"none\"")?;
    if text != "none" {
        let kind = text.split_once(':').map_or(text, |(kind, _)| kind);
        return Err(mode.err(match kind {
            "host" | "bridge" | "service" | "container" => format!(
                "network_mode {text:?} is not supported yet (only \"none\"; give networks instead)"
            ),
            _ => format!(
                "unknown network_mode {text:?} (expected none, host, bridge, service:NAME or container:NAME)"
            ),
        }));
    }
    if let Some(node) = networks {
        return Err(node.err("networks cannot be given with network_mode"));
    }
    if let Some(node) = ports {
        return Err(node.err("a service with network_mode \"none\" cannot publish ports"));
    }
    Ok(Attachments::default())
}

/// Every mapping of `ports`, each placed at its element.
pub(super) fn ports(node: &Node) -> Result<Vec<(PublishedPort, Spot)>, Invalid> {
    let mut out = Vec::new();
    for element in node.array("a list of ports")? {
        let spec = match (element.as_str(), element.as_integer()) {
            (Some(text), _) => text.to_string(),
            (_, Some(port)) => port.to_string(),
            _ if element.table("").is_ok() && !element.is_null() => long_port(&element)?,
            _ => return Err(element.wrong_type("a port like \"8080:80\"")),
        };
        let ports = PublishedPort::parse_ranges(&spec).map_err(|e| element.err(e))?;
        out.extend(ports.into_iter().map(|p| (p, element.spot.clone())));
    }
    Ok(out)
}

/// `{ target: 80, published: "8080", host_ip: 127.0.0.1, protocol: udp, mode: host, name,
/// app_protocol }` as the short form's text.
fn long_port(node: &Node) -> Result<String, Invalid> {
    let table = node.table("a table { target, published, host_ip, protocol }")?;
    table.only(&[
        "target",
        "published",
        "host_ip",
        "protocol",
        "mode",
        "name",
        "app_protocol",
    ])?;
    let text = |key: &str, what: &str| -> Result<Option<String>, Invalid> {
        let Some(n) = table.get(key) else {
            return Ok(None);
        };
        match (n.as_str(), n.as_integer()) {
            (Some(s), _) => Ok(Some(s.to_string())),
            (_, Some(i)) => Ok(Some(i.to_string())),
            _ => Err(n.wrong_type(what)),
        }
    };
    let target = text("target", "a container port like 80")?.ok_or_else(|| {
        table
            .spot
            .err("missing key \"target\" (the container's port)")
    })?;
    let published = text("published", "a host port like \"8080\"")?;
    let host_ip = text("host_ip", "an IPv4 address")?;
    if let Some(mode) = table.get("mode") {
        // Outside a swarm Compose publishes "ingress" ports on the host, as "host" does.
        let text = mode.string("\"host\" or \"ingress\"")?;
        if text != "host" && text != "ingress" {
            return Err(mode.err(format!("unknown mode {text:?} (expected host or ingress)")));
        }
    }
    for key in ["name", "app_protocol"] {
        if let Some(n) = table.get(key) {
            n.string("a name")?;
        }
    }
    let mut spec = match (host_ip, published) {
        (Some(ip), published) => format!("{ip}:{}:{target}", published.unwrap_or_default()),
        (None, Some(published)) => format!("{published}:{target}"),
        (None, None) => target,
    };
    if let Some(protocol) = text("protocol", "\"tcp\" or \"udp\"")? {
        spec = format!("{spec}/{protocol}");
    }
    Ok(spec)
}
