//! Published ports as the user writes them: `-p [[HOSTIP:]HOSTPORT:]CONTAINERPORT[/tcp|udp]`,
//! Docker's form. Without a host port (`-p 80`, `-p 127.0.0.1::80`, `-P`) the network chooses
//! a free one at each start.

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

/// A port of the host forwarded to one of the container's.
///
/// forge-netd has a type of the same shape for its rules and its state: the runtime must not
/// depend on netd, and netd on no Forge crate, so each owns its own, and forge-host converts
/// between them (its `ports` module, the only place that does). The serde shape is the one
/// `config.json` and `state.json` have always had.
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

impl PublishedPort {
    /// Docker's form with port ranges too: `8080-8081:80-81` is two mappings, `9000-9002` three
    /// (each on a free host port); a host range needs a container range of the same length.
    pub fn parse_ranges(spec: &str) -> Result<Vec<Self>, PortError> {
        let (ports, protocol) = match spec.rsplit_once('/') {
            Some((ports, protocol)) => (ports, Some(protocol)),
            None => (spec, None),
        };
        let (front, container) = match ports.rsplit_once(':') {
            Some((front, container)) => (Some(front), container),
            None => (None, ports),
        };
        if !container.contains('-') && !front.is_some_and(|f| f.contains('-')) {
            return Ok(vec![spec.parse()?]);
        }
        let bad = |why: String| PortError {
            spec: spec.to_string(),
            why,
        };
        let range = |text: &str| -> Result<(u16, u16), PortError> {
            let (low, high) = text.split_once('-').unwrap_or((text, text));
            match (low.parse::<u16>(), high.parse::<u16>()) {
                (Ok(low), Ok(high)) if low >= 1 && low <= high => Ok((low, high)),
                _ => Err(bad(format!("{text:?} is not a port range like 8080-8081"))),
            }
        };
        let (ip, host) = match front.map(|f| f.rsplit_once(':').unwrap_or(("", f))) {
            Some((ip, host)) if !host.is_empty() => (ip, Some(range(host)?)),
            Some((ip, _)) => (ip, None),
            None => ("", None),
        };
        let (low, high) = range(container)?;
        if let Some((host_low, host_high)) = host {
            if host_high - host_low != high - low {
                return Err(bad(format!(
                    "the host range has {} ports and the container range {}",
                    host_high - host_low + 1,
                    high - low + 1
                )));
            }
        }
        (low..=high)
            .map(|port| {
                let host = host.map_or(String::new(), |(host_low, _)| {
                    (host_low + (port - low)).to_string()
                });
                let mut one = match (ip, host.is_empty()) {
                    ("", true) => port.to_string(),
                    ("", false) => format!("{host}:{port}"),
                    (ip, _) => format!("{ip}:{host}:{port}"),
                };
                if let Some(protocol) = protocol {
                    one = format!("{one}/{protocol}");
                }
                one.parse().map_err(|e: PortError| bad(e.why))
            })
            .collect()
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

    #[test]
    fn ranges_are_one_mapping_per_port() {
        let ports = PublishedPort::parse_ranges("127.0.0.1:8080-8082:80-82/udp").unwrap();
        let got: Vec<String> = ports.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "127.0.0.1:8080->80/udp",
                "127.0.0.1:8081->81/udp",
                "127.0.0.1:8082->82/udp"
            ]
        );
        let got = PublishedPort::parse_ranges("9000-9001").unwrap();
        assert_eq!(got, ["9000".parse().unwrap(), "9001".parse().unwrap()]);
        let got = PublishedPort::parse_ranges("127.0.0.1::53-54").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(PublishedPort::parse_ranges("8080:80").unwrap().len(), 1);
        for (bad, why) in [
            (
                "8080-8081:80",
                "the host range has 2 ports and the container range 1",
            ),
            ("80-79", "\"80-79\" is not a port range like 8080-8081"),
            ("0-3", "\"0-3\" is not a port range like 8080-8081"),
            (
                "65535-65536",
                "\"65535-65536\" is not a port range like 8080-8081",
            ),
            ("80-81/sctp", "unknown protocol \"sctp\""),
        ] {
            let err = PublishedPort::parse_ranges(bad).unwrap_err();
            assert_eq!((err.spec.as_str(), err.why.as_str()), (bad, why));
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
