//! Published ports, as netd records them and makes rules for. A mapping without a host port
//! (`-p 80`, `-p 127.0.0.1::80`, `-P`) gets a free one at attach time from Linux's default
//! ephemeral range, as Docker does.
//!
//! The user's text is parsed by forge-runtime, whose type of the same shape forge-host converts
//! to this one: netd depends on no Forge crate.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// Only connections to this host address are forwarded; `None` means every host address.
    pub host_ip: Option<Ipv4Addr>,
    /// 0 until a free port is chosen for a mapping that named none.
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        write!(
            f,
            "{ip}:{}->{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

/// The range Linux hands out for ephemeral ports by default (net.ipv4.ip_local_port_range).
const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("no free host port for {container_port}/{protocol} in {}-{}", EPHEMERAL.start(), EPHEMERAL.end())]
pub struct NoFreePort {
    pub container_port: u16,
    pub protocol: Protocol,
}

/// `requested` with a host port chosen for each mapping that has none: the first port from
/// `start` on (wrapping within the ephemeral range) that clashes with nothing in `taken` or
/// already chosen, and that `is_free` on the host.
pub fn choose_host_ports(
    requested: &[PortMapping],
    taken: &[PortMapping],
    start: u16,
    is_free: impl Fn(&PortMapping) -> bool,
) -> Result<Vec<PortMapping>, NoFreePort> {
    let span = EPHEMERAL.end() - EPHEMERAL.start() + 1;
    let mut chosen: Vec<PortMapping> = requested
        .iter()
        .filter(|p| p.host_port != 0)
        .copied()
        .collect();
    let mut result = Vec::with_capacity(requested.len());
    for mapping in requested {
        if mapping.host_port != 0 {
            result.push(*mapping);
            continue;
        }
        let found = (0..span)
            .map(|n| {
                EPHEMERAL.start() + ((u32::from(start) + u32::from(n)) % u32::from(span)) as u16
            })
            .map(|host_port| PortMapping {
                host_port,
                ..*mapping
            })
            .find(|candidate| {
                !taken
                    .iter()
                    .chain(&chosen)
                    .any(|p| p.clashes_with(candidate))
                    && is_free(candidate)
            })
            .ok_or(NoFreePort {
                container_port: mapping.container_port,
                protocol: mapping.protocol,
            })?;
        chosen.push(found);
        result.push(found);
    }
    Ok(result)
}

/// Whether a host socket could bind the mapping's address and port right now (a host service
/// already listening there would lose its traffic to the forwarding rule).
pub fn bindable(mapping: &PortMapping) -> bool {
    let addr = (
        mapping.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
        mapping.host_port,
    );
    match mapping.protocol {
        Protocol::Tcp => std::net::TcpListener::bind(addr).is_ok(),
        Protocol::Udp => std::net::UdpSocket::bind(addr).is_ok(),
    }
}

impl PortMapping {
    /// Whether both cannot be published at once: same protocol and port, and host addresses
    /// that overlap (no address means all of them). A port not chosen yet clashes with nothing.
    pub fn clashes_with(&self, other: &PortMapping) -> bool {
        self.protocol == other.protocol
            && self.host_port != 0
            && self.host_port == other.host_port
            && match (self.host_ip, other.host_ip) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host_port: u16, container_port: u16) -> PortMapping {
        PortMapping {
            host_ip: None,
            host_port,
            container_port,
            protocol: Protocol::Tcp,
        }
    }

    fn udp(mapping: PortMapping) -> PortMapping {
        PortMapping {
            protocol: Protocol::Udp,
            ..mapping
        }
    }

    fn on(ip: [u8; 4], mapping: PortMapping) -> PortMapping {
        PortMapping {
            host_ip: Some(ip.into()),
            ..mapping
        }
    }

    #[test]
    fn clashes_need_the_same_port_protocol_and_an_overlapping_address() {
        assert!(tcp(8080, 80).clashes_with(&tcp(8080, 81)));
        assert!(on([127, 0, 0, 1], tcp(8080, 80)).clashes_with(&tcp(8080, 80)));
        assert!(!on([127, 0, 0, 1], tcp(8080, 80)).clashes_with(&on([127, 0, 0, 2], tcp(8080, 80))));
        assert!(!tcp(8080, 80).clashes_with(&udp(tcp(8080, 80))));
        assert!(!tcp(8080, 80).clashes_with(&tcp(8081, 80)));
    }

    #[test]
    fn host_ports_are_chosen_free_distinct_and_within_the_ephemeral_range() {
        let taken = [tcp(32770, 80)];
        let requested = [tcp(0, 80), tcp(8080, 81), tcp(0, 82), udp(tcp(0, 82))];
        let busy = |m: &PortMapping| m.host_port != 32771;
        let chosen = choose_host_ports(&requested, &taken, 2, busy).unwrap();
        let ports: Vec<u16> = chosen.iter().map(|m| m.host_port).collect();
        // 32770/tcp is another container's, 32771 is bound on the host; 32770/udp is free.
        assert_eq!(ports, [32772, 8080, 32773, 32770]);
        let wraps = choose_host_ports(&[tcp(0, 80)], &[], 28232, |_| true).unwrap();
        assert_eq!(wraps[0].host_port, 32768);
        // From any start, every port of the range is tried once.
        let tried = std::cell::RefCell::new(std::collections::BTreeSet::new());
        let _ = choose_host_ports(&[tcp(0, 80)], &[], 60000, |m| {
            tried.borrow_mut().insert(m.host_port);
            false
        });
        assert_eq!(tried.borrow().len(), 28232);
        let none = choose_host_ports(&[tcp(0, 80)], &[], 0, |_| false).unwrap_err();
        assert_eq!(
            none.to_string(),
            "no free host port for 80/tcp in 32768-60999"
        );
    }
}
