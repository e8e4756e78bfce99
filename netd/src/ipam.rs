//! IP address management: subnets, and which address of a subnet a container gets. Pure code;
//! the leases themselves live in the network store ([`crate::store`]), changed under its lock.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("invalid subnet {0:?}: expected an IPv4 network like 10.89.1.0/24 (prefix 8 to 30)")]
    BadSubnet(String),
    #[error("address {ip} is outside subnet {subnet}")]
    Outside { ip: Ipv4Addr, subnet: Subnet },
    #[error("address {ip} is reserved in subnet {subnet} (network, broadcast or gateway)")]
    Reserved { ip: Ipv4Addr, subnet: Subnet },
    #[error("address {ip} is already leased to container {owner}")]
    Taken { ip: Ipv4Addr, owner: String },
    #[error("subnet {0} has no free address left")]
    Full(Subnet),
}

/// An IPv4 subnet: network address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl serde::Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Subnet {
    type Err = IpamError;

    /// Parses `A.B.C.D/N`; host bits must be zero, as `ip route` would insist.
    fn from_str(text: &str) -> Result<Self, IpamError> {
        let bad = || IpamError::BadSubnet(text.to_string());
        let (addr, prefix) = text.split_once('/').ok_or_else(bad)?;
        let network: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        let subnet = Subnet { network, prefix };
        if u32::from(network) & !subnet.mask() != 0 {
            return Err(bad());
        }
        Ok(subnet)
    }
}

impl Subnet {
    pub fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !self.mask())
    }

    /// The first usable address, the conventional gateway.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// The subnet of length `prefix` that holds `ip` (host bits cleared), as routes report them.
    pub fn covering(ip: Ipv4Addr, prefix: u8) -> Subnet {
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        Subnet {
            network: Ipv4Addr::from(u32::from(ip) & mask),
            prefix,
        }
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        let shorter = self.prefix.min(other.prefix);
        let mask = u32::MAX << (32 - shorter);
        u32::from(self.network) & mask == u32::from(other.network) & mask
    }
}

/// Leases of one network, as stored: address → container id.
pub type Leases = BTreeMap<Ipv4Addr, String>;

/// Picks an address for `owner`: its existing lease if it has one (a restarted service keeps
/// its address), else `requested` if free, else the lowest free address.
pub fn choose(
    leases: &Leases,
    subnet: Subnet,
    gateway: Ipv4Addr,
    owner: &str,
    requested: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, IpamError> {
    if let Some((&ip, _)) = leases
        .iter()
        .find(|(ip, o)| o.as_str() == owner && requested.is_none_or(|r| r == **ip))
    {
        return Ok(ip);
    }
    let reserved = |ip: Ipv4Addr| ip == subnet.network || ip == subnet.broadcast() || ip == gateway;
    if let Some(ip) = requested {
        if !subnet.contains(ip) {
            return Err(IpamError::Outside { ip, subnet });
        }
        if reserved(ip) {
            return Err(IpamError::Reserved { ip, subnet });
        }
        if let Some(other) = leases.get(&ip) {
            return Err(IpamError::Taken {
                ip,
                owner: other.clone(),
            });
        }
        return Ok(ip);
    }
    let first = u32::from(subnet.network) + 1;
    let last = u32::from(subnet.broadcast()) - 1;
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|ip| !reserved(*ip) && !leases.contains_key(ip))
        .ok_or(IpamError::Full(subnet))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> (Subnet, Ipv4Addr) {
        let subnet: Subnet = "10.89.1.0/29".parse().unwrap();
        (subnet, subnet.first_host())
    }

    #[test]
    fn subnets_parse_and_compare() {
        let s: Subnet = "10.89.1.0/24".parse().unwrap();
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 89, 1, 255));
        assert!(s.contains(Ipv4Addr::new(10, 89, 1, 7)));
        assert!(!s.contains(Ipv4Addr::new(10, 89, 2, 7)));
        assert!(s.overlaps(&"10.89.0.0/16".parse().unwrap()));
        assert!(!s.overlaps(&"10.89.2.0/24".parse().unwrap()));
        for bad in [
            "10.89.1.1/24",
            "10.89.1.0",
            "10.89.1.0/31",
            "x/24",
            "10.89.1.0/7",
        ] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn lowest_free_address_skips_reserved_ones_and_the_subnet_fills_up() {
        let (subnet, gw) = net();
        let mut leases = Leases::new();
        // /29: .0 network, .1 gateway, .7 broadcast → .2 to .6 usable.
        for (n, want) in (2..=6).enumerate() {
            let ip = choose(&leases, subnet, gw, &format!("c{n}"), None).unwrap();
            assert_eq!(ip, Ipv4Addr::new(10, 89, 1, want));
            leases.insert(ip, format!("c{n}"));
        }
        assert_eq!(
            choose(&leases, subnet, gw, "late", None),
            Err(IpamError::Full(subnet))
        );
    }

    #[test]
    fn an_owner_keeps_its_address_and_requests_are_checked() {
        let (subnet, gw) = net();
        let mut leases = Leases::new();
        leases.insert(Ipv4Addr::new(10, 89, 1, 4), "web".into());
        assert_eq!(
            choose(&leases, subnet, gw, "web", None).unwrap(),
            Ipv4Addr::new(10, 89, 1, 4)
        );
        let taken = choose(&leases, subnet, gw, "db", Some(Ipv4Addr::new(10, 89, 1, 4)));
        assert!(matches!(taken, Err(IpamError::Taken { .. })));
        let outside = choose(&leases, subnet, gw, "db", Some(Ipv4Addr::new(10, 90, 0, 2)));
        assert!(matches!(outside, Err(IpamError::Outside { .. })));
        let gateway = choose(&leases, subnet, gw, "db", Some(gw));
        assert!(matches!(gateway, Err(IpamError::Reserved { .. })));
        assert_eq!(
            choose(&leases, subnet, gw, "db", Some(Ipv4Addr::new(10, 89, 1, 5))).unwrap(),
            Ipv4Addr::new(10, 89, 1, 5)
        );
    }
}
