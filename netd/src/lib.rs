//! forge-netd: host networking for Forge containers.
//!
//! A network is a Linux bridge with a subnet ([`store::Network`]); a container attached to it gets
//! a veth pair (host end on the bridge, peer created inside the container's namespace as `eth0`,
//! `eth1`, ... one per network), an address from IPAM, a default route via its first network's
//! bridge, an `/etc/hosts` naming its neighbours and any published ports. The state lives in one locked file ([`store`]); the nftables table
//! ([`nft`]) and the hosts files are rebuilt from that state, never patched, so a crash or a
//! repeated set-up cannot leave stale or duplicated rules.

pub mod hosts;
pub mod ipam;
pub mod netlink;
pub mod nft;
pub mod ports;
pub mod store;

use std::net::Ipv4Addr;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use ipam::{IpamError, Subnet};
use netlink::{Netlink, NetlinkError};
use nft::NftError;
use ports::PortMapping;
use store::{Endpoint, Locked, Network, Store, StoreError};

/// The network `forge run` uses unless told otherwise, created on first use.
pub const DEFAULT_NETWORK: &str = "bridge";
pub const DEFAULT_BRIDGE: &str = "forge0";

/// The interface a container sees for its `index`-th network: eth0, eth1, ...
pub fn container_ifname(index: usize) -> String {
    format!("eth{index}")
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("no such network: {0} (see `forge network ls`)")]
    NoSuchNetwork(String),
    #[error("{0} networks: a container can be on at most {MAX_NETWORKS}")]
    TooManyNetworks(usize),
    #[error("network {0} already exists")]
    Exists(String),
    #[error("invalid network name {0:?}: use letters, digits, '_', '.', '-' (at most 64, starting with a letter or digit)")]
    BadName(String),
    #[error("network {0} is predefined and cannot be removed")]
    Predefined(String),
    #[error("subnet {subnet} overlaps {other}")]
    Overlap { subnet: Subnet, other: String },
    #[error("no free subnet left for a new network in 10.89.0.0/16 - 10.99.0.0/16; give one with --subnet")]
    NoFreeSubnet,
    #[error("gateway {gateway} is not a host address of subnet {subnet}")]
    BadGateway { gateway: Ipv4Addr, subnet: Subnet },
    #[error("network {network} still has containers attached: {containers}")]
    InUse { network: String, containers: String },
    #[error("network {0} is internal: it cannot publish ports")]
    InternalPorts(String),
    #[error("port {port} is already published by container {container}")]
    PortTaken {
        port: PortMapping,
        container: String,
    },
    #[error("port {port} is given twice")]
    PortTwice { port: PortMapping },
    #[error(transparent)]
    NoFreePort(#[from] ports::NoFreePort),
    #[error("network {network}: {source}")]
    Ipam {
        network: String,
        #[source]
        source: IpamError,
    },
    #[error("setting {path} to {value}: {source}")]
    Sysctl {
        path: String,
        value: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Nft(#[from] NftError),
}

#[derive(Debug, Clone, Default)]
pub struct NetworkOptions {
    pub subnet: Option<Subnet>,
    pub gateway: Option<Ipv4Addr>,
    pub internal: bool,
    /// Kept with the network: who made it (Compose's project labels) and the user's own.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// What to plug into a container that is set up and waiting to run.
pub struct AttachRequest<'a> {
    pub container_id: &'a str,
    /// Names its neighbours reach it by.
    pub names: &'a [String],
    /// In order: the `n`-th one is the container's `eth{n}`, and only the first one gets the
    /// default route.
    pub networks: &'a [String],
    /// A fixed address on the first network.
    pub ip: Option<Ipv4Addr>,
    /// Published to the container's address on its first network.
    pub ports: &'a [PortMapping],
    pub pid: i32,
    pub pid_start: u64,
    /// The container's network namespace (`/proc/PID/ns/net`).
    pub netns: BorrowedFd<'a>,
    /// The container's `/etc/hosts` on the host (bind-mounted into it).
    pub hosts_file: &'a Path,
}

/// One network of an [`AttachRequest`], with what the container asks of it.
struct Place<'a> {
    network: &'a str,
    index: usize,
    ip: Option<Ipv4Addr>,
    ports: &'a [PortMapping],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub network: String,
    pub ip: Ipv4Addr,
    /// The published ports, with the host ports chosen for those that named none.
    pub ports: Vec<PortMapping>,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
}

/// Whether process `pid` that started at `start` (clock ticks after boot) still runs.
pub type IsAlive = fn(pid: i32, start: u64) -> bool;

/// Host networking over one state directory.
#[derive(Debug, Clone)]
pub struct Netd {
    store: Store,
    is_alive: IsAlive,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// The host end of a container's veth pair: fixed by its id and network position, so a crashed
/// set-up is found again: `fg`, 12 characters of the id and the position in base 36 — 15
/// bytes, IFNAMSIZ's limit. Every position of one container gets its own name (a name shared
/// by two positions would make the second attach delete the first pair).
pub fn veth_name(container_id: &str, index: usize) -> String {
    let id = &container_id[..container_id.len().min(12)];
    let position = char::from_digit((index % MAX_NETWORKS) as u32, MAX_NETWORKS as u32)
        .expect("a digit below the radix");
    format!("{VETH_PREFIX}{id}{position}")
}

/// How many networks one container may be on: one base-36 digit of its veth names.
pub const MAX_NETWORKS: usize = 36;

const VETH_PREFIX: &str = "fg";

/// Candidate subnets for networks created without `--subnet`, in order.
fn candidate_subnets() -> impl Iterator<Item = Subnet> {
    (89..=99u8).flat_map(|b| {
        (0..=255u8).map(move |c| Subnet {
            network: Ipv4Addr::new(10, b, c, 0),
            prefix: 24,
        })
    })
}

fn write_sysctl(path: String, value: &'static str) -> Result<bool, NetError> {
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    if old.trim() == value {
        return Ok(false);
    }
    std::fs::write(&path, value).map_err(|source| NetError::Sysctl {
        path,
        value,
        source,
    })?;
    Ok(true)
}

impl Netd {
    pub fn new(dir: impl Into<PathBuf>, is_alive: IsAlive) -> Self {
        Self {
            store: Store::new(dir),
            is_alive,
        }
    }

    /// Every network with the containers attached to it (stale attachments and stray veths
    /// cleaned up first).
    pub fn list(&self) -> Result<Vec<(Network, Vec<Endpoint>)>, NetError> {
        let mut locked = self.store.lock()?;
        self.reconcile(&mut locked)?;
        self.sweep_veths(&locked)?;
        let state = &locked.state;
        Ok(state
            .networks
            .values()
            .map(|n| (n.clone(), state.members(&n.name).cloned().collect()))
            .collect())
    }

    /// Refuses networks a container cannot be attached to: more than [`MAX_NETWORKS`], or one
    /// not recorded (the default network is made on first use). A cheap check for `forge run`:
    /// no reconcile, no link sweep.
    pub fn check(&self, networks: &[String]) -> Result<(), NetError> {
        if networks.len() > MAX_NETWORKS {
            return Err(NetError::TooManyNetworks(networks.len()));
        }
        let named: Vec<&String> = networks.iter().filter(|n| *n != DEFAULT_NETWORK).collect();
        if named.is_empty() {
            return Ok(()); // the common case, without the lock
        }
        let locked = self.store.lock()?;
        match named
            .into_iter()
            .find(|n| !locked.state.networks.contains_key(*n))
        {
            Some(name) => Err(NetError::NoSuchNetwork(name.clone())),
            None => Ok(()),
        }
    }

    pub fn inspect(&self, name: &str) -> Result<(Network, Vec<Endpoint>), NetError> {
        self.list()?
            .into_iter()
            .find(|(n, _)| n.name == name)
            .ok_or_else(|| NetError::NoSuchNetwork(name.to_string()))
    }

    /// Creates a network: its bridge, its gateway address and its rules. Nothing is left behind
    /// when it fails.
    pub fn create_network(&self, name: &str, opts: &NetworkOptions) -> Result<Network, NetError> {
        let mut locked = self.store.lock()?;
        self.reconcile(&mut locked)?;
        self.create_locked(&mut locked, name, opts, false)
    }

    fn create_locked(
        &self,
        locked: &mut Locked,
        name: &str,
        opts: &NetworkOptions,
        builtin: bool,
    ) -> Result<Network, NetError> {
        if !valid_name(name) {
            return Err(NetError::BadName(name.to_string()));
        }
        if locked.state.networks.contains_key(name) {
            return Err(NetError::Exists(name.to_string()));
        }
        let nl = Netlink::here()?;
        let taken = self.taken_subnets(locked, &nl)?;
        let clash = |subnet: Subnet| taken.iter().find(|(s, _)| s.overlaps(&subnet));
        let subnet = match opts.subnet {
            Some(subnet) => match clash(subnet) {
                Some((_, other)) => {
                    return Err(NetError::Overlap {
                        subnet,
                        other: other.clone(),
                    })
                }
                None => subnet,
            },
            None => candidate_subnets()
                .find(|s| clash(*s).is_none())
                .ok_or(NetError::NoFreeSubnet)?,
        };
        let gateway = opts.gateway.unwrap_or(subnet.first_host());
        if !subnet.contains(gateway) || gateway == subnet.network || gateway == subnet.broadcast() {
            return Err(NetError::BadGateway { gateway, subnet });
        }
        let bridge = if builtin {
            DEFAULT_BRIDGE.to_string()
        } else {
            let used: Vec<&str> = locked
                .state
                .networks
                .values()
                .map(|n| n.bridge.as_str())
                .collect();
            (1..)
                .map(|n| format!("forge{n}"))
                .find(|b| !used.contains(&b.as_str()))
                .expect("an unused bridge name")
        };
        let network = Network {
            name: name.to_string(),
            bridge,
            subnet,
            gateway,
            internal: opts.internal,
            builtin,
            labels: opts.labels.clone(),
        };
        // Recorded before the bridge exists: a crash in between leaves a record that the next
        // attach completes, or `network rm` removes.
        locked
            .state
            .networks
            .insert(name.to_string(), network.clone());
        locked.save()?;
        if let Err(e) = self.bring_up(&nl, locked, &network) {
            locked.state.networks.remove(name);
            let _ = nl.delete_link(&network.bridge);
            let _ = self.apply_rules(&nl, locked);
            locked.save()?;
            return Err(e);
        }
        tracing::info!(network = name, bridge = %network.bridge, %subnet, "network created");
        Ok(network)
    }

    /// Host routes and existing networks, each with a description for the overlap error.
    fn taken_subnets(
        &self,
        locked: &Locked,
        nl: &Netlink,
    ) -> Result<Vec<(Subnet, String)>, NetError> {
        let mut taken: Vec<(Subnet, String)> = locked
            .state
            .networks
            .values()
            .map(|n| (n.subnet, format!("network {}", n.name)))
            .collect();
        for route in nl.route_destinations()? {
            taken.push((route, format!("the host route to {route}")));
        }
        Ok(taken)
    }

    /// Makes the network's bridge exist and its rules current (after a reboot, or a crash in
    /// the middle of creating it).
    fn bring_up(&self, nl: &Netlink, locked: &Locked, network: &Network) -> Result<u32, NetError> {
        let bridge = nl.ensure_bridge(&network.bridge, network.gateway, network.subnet)?;
        if bridge.created {
            // 127.0.0.1:PORT reaches published ports only if the bridge may route loopback sources.
            write_sysctl(
                format!("/proc/sys/net/ipv4/conf/{}/route_localnet", network.bridge),
                "1",
            )?;
            if !network.internal && write_sysctl("/proc/sys/net/ipv4/ip_forward".into(), "1")? {
                // Logged, not printed: `forge run`'s stderr belongs to the container.
                tracing::info!("enabled net.ipv4.ip_forward so that containers reach the outside");
            }
            self.apply_rules(nl, locked)?;
        }
        Ok(bridge.index)
    }

    /// Rebuilds Forge's nftables table from the state, as one atomic batch.
    fn apply_rules(&self, nl: &Netlink, locked: &Locked) -> Result<(), NetError> {
        let state = &locked.state;
        if state.networks.is_empty() {
            nft::remove()?;
            return Ok(());
        }
        let networks = state
            .networks
            .values()
            .map(|n| nft::NetRule {
                bridge: n.bridge.clone(),
                subnet: n.subnet,
                internal: n.internal,
            })
            .collect();
        let ports = state
            .endpoints
            .values()
            .flat_map(|e| {
                e.ports.iter().map(|p| nft::PortRule {
                    proto: match p.protocol {
                        ports::Protocol::Tcp => nft::Proto::Tcp,
                        ports::Protocol::Udp => nft::Proto::Udp,
                    },
                    host_ip: p.host_ip,
                    host_port: p.host_port,
                    container_ip: e.ip,
                    container_port: p.container_port,
                })
            })
            .collect();
        let host_addrs = nl.local_addresses()?;
        nft::apply(&nft::Ruleset {
            networks,
            ports,
            host_addrs,
        })?;
        Ok(())
    }

    /// Forgets attachments whose container is gone (Forge was killed before it could detach):
    /// deletes their veths, then rebuilds rules and hosts files if anything changed.
    fn reconcile(&self, locked: &mut Locked) -> Result<(), NetError> {
        let stale: Vec<Endpoint> = locked
            .state
            .endpoints
            .values()
            .filter(|e| !(self.is_alive)(e.pid, e.pid_start))
            .cloned()
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        let nl = Netlink::here()?;
        for e in &stale {
            tracing::info!(container = %e.container_id, ip = %e.ip, "releasing a stale attachment");
            nl.delete_link(&e.veth)?;
            locked.state.endpoints.remove(&e.key());
        }
        locked.save()?;
        self.apply_rules(&nl, locked)?;
        for e in &stale {
            hosts::update_network(&locked.state, &e.network);
        }
        Ok(())
    }

    /// Deletes Forge veths that belong to no attachment: a detached container's veth that
    /// outlived its namespace (something still held the namespace open).
    fn sweep_veths(&self, locked: &Locked) -> Result<(), NetError> {
        let nl = Netlink::here()?;
        let known: Vec<&str> = locked
            .state
            .endpoints
            .values()
            .map(|e| e.veth.as_str())
            .collect();
        for link in nl.link_names()? {
            if link.starts_with(VETH_PREFIX) && !known.contains(&link.as_str()) {
                tracing::debug!(link, "deleting a stray veth");
                nl.delete_link(&link)?;
            }
        }
        Ok(())
    }

    /// Plugs a container into each of its networks, in order; its attachments. On failure it is
    /// on none of them.
    pub fn attach(&self, req: &AttachRequest<'_>) -> Result<Vec<Attachment>, NetError> {
        let mut attachments = Vec::with_capacity(req.networks.len());
        for (index, network) in req.networks.iter().enumerate() {
            let primary = index == 0;
            let place = Place {
                network,
                index,
                ip: req.ip.filter(|_| primary),
                ports: if primary { req.ports } else { &[] },
            };
            match self.attach_one(req, &place) {
                Ok(attachment) => attachments.push(attachment),
                Err(e) => {
                    if let Err(undo) = self.detach(req.container_id) {
                        tracing::warn!(
                            "detaching {} after a failed attach: {undo}",
                            req.container_id
                        );
                    }
                    return Err(e);
                }
            }
        }
        Ok(attachments)
    }

    /// Plugs a container into one network (creating the default network on first use). On
    /// failure nothing of this attachment is left.
    fn attach_one(
        &self,
        req: &AttachRequest<'_>,
        place: &Place<'_>,
    ) -> Result<Attachment, NetError> {
        let mut locked = self.store.lock()?;
        self.reconcile(&mut locked)?;
        if place.network == DEFAULT_NETWORK && !locked.state.networks.contains_key(DEFAULT_NETWORK)
        {
            self.create_locked(
                &mut locked,
                DEFAULT_NETWORK,
                &NetworkOptions::default(),
                true,
            )?;
        }
        let network = locked
            .state
            .networks
            .get(place.network)
            .cloned()
            .ok_or_else(|| NetError::NoSuchNetwork(place.network.to_string()))?;
        self.check_ports(&locked, &network, place.ports)?;
        let leases = locked.state.leases(&network.name);
        let ip = ipam::choose(
            &leases,
            network.subnet,
            network.gateway,
            req.container_id,
            place.ip,
        )
        .map_err(|source| NetError::Ipam {
            network: network.name.clone(),
            source,
        })?;
        let taken: Vec<PortMapping> = locked
            .state
            .endpoints
            .values()
            .flat_map(|e| e.ports.iter().copied())
            .collect();
        // Start the search at a place of the container's own, so concurrent starts rarely
        // probe the same ports.
        let start = u16::from_str_radix(req.container_id.get(..4).unwrap_or("0"), 16).unwrap_or(0);
        let ports = ports::choose_host_ports(place.ports, &taken, start, ports::bindable)?;
        let endpoint = Endpoint {
            container_id: req.container_id.to_string(),
            names: req.names.to_vec(),
            network: network.name.clone(),
            ip,
            ports,
            index: place.index,
            veth: veth_name(req.container_id, place.index),
            pid: req.pid,
            pid_start: req.pid_start,
            hosts_file: req.hosts_file.to_path_buf(),
        };
        // The lease is recorded before the veth exists, so that a crash in between is found
        // (the container's process is gone) and cleaned up by the next reconcile.
        locked
            .state
            .endpoints
            .insert(endpoint.key(), endpoint.clone());
        locked.save()?;
        let nl = Netlink::here()?;
        let bridge = match self.bring_up(&nl, &locked, &network) {
            Ok(bridge) => bridge,
            Err(e) => return Err(self.undo_attach(locked, &nl, &endpoint, e)),
        };
        // Creating and configuring the veth is the slow part: it runs without the lock, so
        // concurrent starts do not queue behind it. The lease recorded above keeps it ours.
        drop(locked);
        let plugged = self.plug(&nl, bridge, &network, &endpoint, req.netns);
        let locked = self.store.lock()?;
        let ruled = match (&plugged, endpoint.ports.is_empty()) {
            (Ok(()), false) => self.apply_rules(&nl, &locked),
            _ => Ok(()),
        };
        if let Err(e) = plugged.and(ruled) {
            return Err(self.undo_attach(locked, &nl, &endpoint, e));
        }
        hosts::update_network(&locked.state, &network.name);
        Ok(Attachment {
            ports: endpoint.ports,
            network: network.name,
            ip,
            subnet: network.subnet,
            gateway: network.gateway,
        })
    }

    fn check_ports(
        &self,
        locked: &Locked,
        network: &Network,
        ports: &[PortMapping],
    ) -> Result<(), NetError> {
        if network.internal && !ports.is_empty() {
            return Err(NetError::InternalPorts(network.name.clone()));
        }
        for (n, port) in ports.iter().enumerate() {
            if ports[..n].iter().any(|p| p.clashes_with(port)) {
                return Err(NetError::PortTwice { port: *port });
            }
            for other in locked.state.endpoints.values() {
                if other.ports.iter().any(|p| p.clashes_with(port)) {
                    return Err(NetError::PortTaken {
                        port: *port,
                        container: other.names.first().cloned().unwrap_or_default(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Takes back a failed attachment: its lease, its veth and its rules; returns `error`.
    fn undo_attach(
        &self,
        mut locked: Locked,
        nl: &Netlink,
        endpoint: &Endpoint,
        error: NetError,
    ) -> NetError {
        locked.state.endpoints.remove(&endpoint.key());
        let _ = nl.delete_link(&endpoint.veth);
        if let Err(e) = locked.save() {
            tracing::warn!("{e}");
        }
        if !endpoint.ports.is_empty() {
            let _ = self.apply_rules(nl, &locked);
        }
        error
    }

    /// The container's side: a veth pair on `bridge`, eth0 addressed and routed.
    fn plug(
        &self,
        nl: &Netlink,
        bridge: u32,
        network: &Network,
        endpoint: &Endpoint,
        netns: BorrowedFd<'_>,
    ) -> Result<(), NetError> {
        // A restarted container reuses its id, so its veth's name: the old pair may still be
        // waiting for the kernel to tear down the old namespace.
        nl.delete_link(&endpoint.veth)?;
        let ifname = container_ifname(endpoint.index);
        nl.add_veth(&endpoint.veth, bridge, &ifname, netns)?;
        let default_route = (endpoint.index == 0).then_some(network.gateway);
        Netlink::in_netns(netns)?.configure_interface(
            &ifname,
            endpoint.ip,
            network.subnet.prefix,
            default_route,
        )?;
        Ok(())
    }

    /// Unplugs a container whose processes are gone: its lease, its published ports and its
    /// hosts entries. The veth pair goes with the container's network namespace (the kernel
    /// removes both ends when the namespace dies, without the ~25 ms a synchronous delete
    /// costs); one that outlives it is swept by [`Netd::list`]. Never attached is fine.
    pub fn detach(&self, container_id: &str) -> Result<(), NetError> {
        let mut locked = self.store.lock()?;
        let gone: Vec<Endpoint> = locked
            .state
            .of_container(container_id)
            .into_iter()
            .cloned()
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        for endpoint in &gone {
            locked.state.endpoints.remove(&endpoint.key());
        }
        locked.save()?;
        let nl = Netlink::here()?;
        if gone.iter().any(|e| !e.ports.is_empty()) {
            self.apply_rules(&nl, &locked)?;
        }
        for endpoint in &gone {
            // The kernel removes the pair with the container's namespace, but later, from a
            // work queue: delete the host end now, so nothing is seen left once `rm` returns.
            if let Err(e) = nl.delete_link(&endpoint.veth) {
                tracing::warn!("deleting {}: {e}", endpoint.veth);
            }
            hosts::update_network(&locked.state, &endpoint.network);
        }
        Ok(())
    }

    /// Removes a network: its bridge and its rules. Refused while containers are attached.
    pub fn remove_network(&self, name: &str) -> Result<(), NetError> {
        let mut locked = self.store.lock()?;
        self.reconcile(&mut locked)?;
        self.sweep_veths(&locked)?;
        let network = locked
            .state
            .networks
            .get(name)
            .cloned()
            .ok_or_else(|| NetError::NoSuchNetwork(name.to_string()))?;
        if network.builtin {
            return Err(NetError::Predefined(name.to_string()));
        }
        let attached: Vec<String> = locked
            .state
            .members(name)
            .map(|e| e.names.first().cloned().unwrap_or_default())
            .collect();
        if !attached.is_empty() {
            return Err(NetError::InUse {
                network: name.to_string(),
                containers: attached.join(", "),
            });
        }
        let nl = Netlink::here()?;
        nl.delete_link(&network.bridge)?;
        locked.state.networks.remove(name);
        locked.save()?;
        self.apply_rules(&nl, &locked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_veths() {
        assert!(valid_name("backend_1.net-a"));
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
        let veth = veth_name("0123456789abcdef0123", 0);
        assert_eq!(veth, "fg0123456789ab0");
        // An id whose 12th character is the position's digit: still one name per position.
        let id = "0123456789a1cdef0123";
        let names: std::collections::BTreeSet<String> =
            (0..MAX_NETWORKS).map(|n| veth_name(id, n)).collect();
        assert_eq!(names.len(), MAX_NETWORKS);
        assert!(names.iter().all(|n| n.len() <= 15), "IFNAMSIZ: {names:?}");
        assert_eq!(veth_name(id, 35), "fg0123456789a1z");
    }

    #[test]
    fn default_subnets_skip_what_is_taken() {
        let taken: Subnet = "10.89.0.0/16".parse().unwrap();
        let first = candidate_subnets().find(|s| !s.overlaps(&taken)).unwrap();
        assert_eq!(first.to_string(), "10.90.0.0/24");
    }
}
