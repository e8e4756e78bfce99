//! Published ports between the runtime's type and netd's: the same fields, the only conversion
//! (see `forge_runtime::network::PublishedPort` for why there are two).

use forge_netd::ports::{PortMapping, Protocol as NetdProtocol};
use forge_runtime::network::{Protocol, PublishedPort};

pub fn to_netd(port: &PublishedPort) -> PortMapping {
    PortMapping {
        host_ip: port.host_ip,
        host_port: port.host_port,
        container_port: port.container_port,
        protocol: match port.protocol {
            Protocol::Tcp => NetdProtocol::Tcp,
            Protocol::Udp => NetdProtocol::Udp,
        },
    }
}

pub fn from_netd(port: &PortMapping) -> PublishedPort {
    PublishedPort {
        host_ip: port.host_ip,
        host_port: port.host_port,
        container_port: port.container_port,
        protocol: match port.protocol {
            NetdProtocol::Tcp => Protocol::Tcp,
            NetdProtocol::Udp => Protocol::Udp,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_convert_both_ways_unchanged() {
        for text in ["8080:80", "127.0.0.1::53/udp", "80"] {
            let port: PublishedPort = text.parse().unwrap();
            let netd = to_netd(&port);
            assert_eq!(netd.to_string(), port.to_string());
            assert_eq!(from_netd(&netd), port);
        }
    }
}
