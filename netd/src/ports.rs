//! Published ports: `-p [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]`, as Docker writes them.

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
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid port mapping {spec:?}: {why} (expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp], e.g. 8080:80)")]
pub struct PortError {
    pub spec: String,
    pub why: String,
}

impl std::str::FromStr for PortMapping {
    type Err = PortError;

    fn from_str(spec: &str) -> Result<Self, PortError> {
        let bad = |why: &str| PortError {
            spec: spec.to_string(),
            why: why.to_string(),
        };
        let (ports, protocol) = match spec.rsplit_once('/') {
            Some((ports, "tcp")) => (ports, Protocol::Tcp),
            Some((ports, "udp")) => (ports, Protocol::Udp),
            Some((_, other)) => return Err(bad(&format!("unknown protocol {other:?}"))),
            None => (spec, Protocol::Tcp),
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let (host_ip, host_port, container_port) = match parts.as_slice() {
            [host, container] => (None, *host, *container),
            [ip, host, container] => {
                let ip: Ipv4Addr = ip
                    .parse()
                    .map_err(|_| bad(&format!("{ip:?} is not an IPv4 address")))?;
                (Some(ip), *host, *container)
            }
            [_] => return Err(bad("a host port is required")),
            _ => return Err(bad("too many ':'")),
        };
        let port = |text: &str, which: &str| match text.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad(&format!("{which} port {text:?} is not in 1-65535"))),
            Ok(port) => Ok(port),
        };
        Ok(PortMapping {
            host_ip: host_ip.filter(|ip| !ip.is_unspecified()),
            host_port: port(host_port, "host")?,
            container_port: port(container_port, "container")?,
            protocol,
        })
    }
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

impl PortMapping {
    /// Whether both cannot be published at once: same protocol and port, and host addresses
    /// that overlap (no address means all of them).
    pub fn clashes_with(&self, other: &PortMapping) -> bool {
        self.protocol == other.protocol
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

    #[test]
    fn docker_forms_parse() {
        let p: PortMapping = "8080:80".parse().unwrap();
        assert_eq!(
            p,
            PortMapping {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp
            }
        );
        let p: PortMapping = "127.0.0.1:53:5353/udp".parse().unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!((p.host_port, p.container_port), (53, 5353));
        assert_eq!(p.protocol, Protocol::Udp);
        assert_eq!(p.to_string(), "127.0.0.1:53->5353/udp");
        for bad in [
            "80",
            "0:80",
            "8080:70000",
            "x:80",
            "1.2.3:80:80",
            "80:80/sctp",
            "1:2:3:4",
        ] {
            let err = bad.parse::<PortMapping>().unwrap_err();
            assert_eq!(err.spec, bad);
        }
    }

    #[test]
    fn clashes_need_the_same_port_protocol_and_an_overlapping_address() {
        let p = |s: &str| s.parse::<PortMapping>().unwrap();
        assert!(p("8080:80").clashes_with(&p("8080:81")));
        assert!(p("127.0.0.1:8080:80").clashes_with(&p("8080:80")));
        assert!(!p("127.0.0.1:8080:80").clashes_with(&p("127.0.0.2:8080:80")));
        assert!(!p("8080:80").clashes_with(&p("8080:80/udp")));
        assert!(!p("8080:80").clashes_with(&p("8081:80")));
    }
}
