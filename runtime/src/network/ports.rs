//! Published ports as the user writes them: `-p [[HOSTIP:]HOSTPORT:]CONTAINERPORT[/tcp|udp]`,
//! Docker's form. Without a host port (`-p 80`, `-p 127.0.0.1::80`, `-P`) the network chooses
//! a free one at each start.
//!
//! forge-netd has a type of the same shape for its rules and its state: the runtime must not
//! depend on netd, and netd on no Forge crate, so each owns its own, and forge-host converts
//! between them (its `ports` module, the only place that does). The serde shape is the one
//! `config.json` and `state.json` have always had.

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
pub struct PublishedPort {
    /// Only connections to this host address are forwarded; `None` means every host address.
    pub host_ip: Option<Ipv4Addr>,
    /// 0 until a free port is chosen for a mapping that named none.
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid port mapping {spec:?}: {why} (expected [[HOSTIP:]HOSTPORT:]CONTAINERPORT[/tcp|udp], e.g. 8080:80)")]
pub struct PortError {
    pub spec: String,
    pub why: String,
}

impl std::str::FromStr for PublishedPort {
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
            [container] => (None, None, *container),
            [host, container] => (None, Some(*host), *container),
            [ip, host, container] => {
                let ip: Ipv4Addr = ip
                    .parse()
                    .map_err(|_| bad(&format!("{ip:?} is not an IPv4 address")))?;
                (Some(ip), Some(*host).filter(|h| !h.is_empty()), *container)
            }
            _ => return Err(bad("too many ':'")),
        };
        let port = |text: &str, which: &str| match text.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad(&format!("{which} port {text:?} is not in 1-65535"))),
            Ok(port) => Ok(port),
        };
        Ok(PublishedPort {
            host_ip: host_ip.filter(|ip| !ip.is_unspecified()),
            host_port: host_port.map_or(Ok(0), |h| port(h, "host"))?,
            container_port: port(container_port, "container")?,
            protocol,
        })
    }
}

impl std::fmt::Display for PublishedPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        write!(
            f,
            "{ip}:{}->{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_forms_parse() {
        let p: PublishedPort = "8080:80".parse().unwrap();
        assert_eq!(
            p,
            PublishedPort {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp
            }
        );
        let p: PublishedPort = "127.0.0.1:53:5353/udp".parse().unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!((p.host_port, p.container_port), (53, 5353));
        assert_eq!(p.protocol, Protocol::Udp);
        assert_eq!(p.to_string(), "127.0.0.1:53->5353/udp");
        let p: PublishedPort = "80".parse().unwrap();
        assert_eq!((p.host_ip, p.host_port, p.container_port), (None, 0, 80));
        let p: PublishedPort = "127.0.0.1::53/udp".parse().unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!((p.host_port, p.container_port), (0, 53));
        for bad in [
            "",
            "0:80",
            ":80",
            "8080:70000",
            "x:80",
            "1.2.3:80:80",
            "80:80/sctp",
            "1:2:3:4",
        ] {
            let err = bad.parse::<PublishedPort>().unwrap_err();
            assert_eq!(err.spec, bad);
        }
    }

    /// `config.json` and `state.json` written before the type moved here still load.
    #[test]
    fn the_stored_shape_is_kept() {
        let p: PublishedPort = "127.0.0.1:8080:80/udp".parse().unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"host_ip":"127.0.0.1","host_port":8080,"container_port":80,"protocol":"udp"}"#
        );
        let all: PublishedPort = serde_json::from_str(
            r#"{"host_ip":null,"host_port":0,"container_port":53,"protocol":"tcp"}"#,
        )
        .unwrap();
        assert_eq!(all, "53".parse().unwrap());
    }
}
