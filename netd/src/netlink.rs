//! Links, addresses and routes through rtnetlink: the bridge, the veth pairs and the container's
//! `eth0`. Every call blocks on a small current-thread tokio runtime of its own, so callers (the
//! CLI, the supervisor's blocking threads) need no runtime; nothing here forks.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::ipam::Subnet;

#[derive(Debug, thiserror::Error)]
#[error("{action}: {source}")]
pub struct NetlinkError {
    pub action: String,
    #[source]
    pub source: io::Error,
}

const ENODEV: i32 = libc::ENODEV;
const EEXIST: i32 = libc::EEXIST;

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

fn to_io(e: rtnetlink::Error) -> io::Error {
    match errno(&e) {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::other(e.to_string()),
    }
}

/// A bridge made sure of by [`Netlink::ensure_bridge`].
pub struct Bridge {
    pub index: u32,
    /// It did not exist before the call.
    pub created: bool,
}

/// One rtnetlink socket, bound to the network namespace it was opened in.
pub struct Netlink {
    runtime: tokio::runtime::Runtime,
    handle: Handle,
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    pub fn here() -> Result<Self, NetlinkError> {
        let err = |source| NetlinkError {
            action: "opening a netlink socket".into(),
            source,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(err)?;
        let (connection, handle, _) = {
            let _enter = runtime.enter();
            rtnetlink::new_connection().map_err(err)?
        };
        runtime.spawn(connection);
        Ok(Self { runtime, handle })
    }

    /// A socket in the network namespace `netns` (an open `/proc/PID/ns/net`). The socket is made
    /// by a short-lived thread that enters the namespace, so the caller's threads never change
    /// namespace; a socket keeps the namespace it was created in.
    pub fn in_netns(netns: BorrowedFd<'_>) -> Result<Self, NetlinkError> {
        let raw = netns.as_raw_fd();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: `raw` stays open for the whole scope (borrowed from the caller).
                    let fd = unsafe { BorrowedFd::borrow_raw(raw) };
                    nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                        NetlinkError {
                            action: "entering the container's network namespace".into(),
                            source: e.into(),
                        }
                    })?;
                    Self::here()
                })
                .join()
                .expect("the netlink thread does not panic")
        })
    }

    fn run<T>(
        &self,
        action: impl FnOnce() -> String,
        fut: impl std::future::Future<Output = Result<T, rtnetlink::Error>>,
    ) -> Result<T, NetlinkError> {
        self.runtime.block_on(fut).map_err(|e| NetlinkError {
            action: action(),
            source: to_io(e),
        })
    }

    /// The index of link `name`, `None` if there is none.
    pub fn link_index(&self, name: &str) -> Result<Option<u32>, NetlinkError> {
        let request = self.handle.link().get().match_name(name).execute();
        let found = self.runtime.block_on(async {
            let mut links = request;
            links.try_next().await
        });
        match found {
            Ok(link) => Ok(link.map(|l| l.header.index)),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(NetlinkError {
                action: format!("looking up link {name}"),
                source: to_io(e),
            }),
        }
    }

    /// Names of every link in this namespace.
    pub fn link_names(&self) -> Result<Vec<String>, NetlinkError> {
        let links: Vec<LinkMessage> = self.run(
            || "listing links".into(),
            self.handle.link().get().execute().try_collect(),
        )?;
        Ok(links
            .iter()
            .filter_map(|l| {
                l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                })
            })
            .collect())
    }

    /// Makes sure bridge `name` exists, holds `gateway/prefix` and is up; returns its index.
    /// Idempotent, so a set-up interrupted half-way is completed by the next call.
    pub fn ensure_bridge(
        &self,
        name: &str,
        gateway: Ipv4Addr,
        subnet: Subnet,
    ) -> Result<Bridge, NetlinkError> {
        let existing = self.link_index(name)?;
        let index = match existing {
            Some(index) => index,
            None => {
                let add = self
                    .handle
                    .link()
                    .add(LinkBridge::new(name).build())
                    .execute();
                match self.runtime.block_on(add) {
                    Err(e) if errno(&e) != Some(EEXIST) => {
                        return Err(NetlinkError {
                            action: format!("creating bridge {name}"),
                            source: to_io(e),
                        })
                    }
                    _ => {}
                }
                self.link_index(name)?.ok_or_else(|| NetlinkError {
                    action: format!("creating bridge {name}"),
                    source: io::Error::from_raw_os_error(ENODEV),
                })?
            }
        };
        self.ensure_address(index, name, gateway, subnet.prefix)?;
        self.set_up(index, name)?;
        Ok(Bridge {
            index,
            created: existing.is_none(),
        })
    }

    fn ensure_address(
        &self,
        index: u32,
        link: &str,
        ip: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), NetlinkError> {
        let add = self
            .handle
            .address()
            .add(index, IpAddr::V4(ip), prefix)
            .execute();
        match self.runtime.block_on(add) {
            Err(e) if errno(&e) != Some(EEXIST) => Err(NetlinkError {
                action: format!("adding address {ip}/{prefix} to {link}"),
                source: to_io(e),
            }),
            _ => Ok(()),
        }
    }

    fn set_up(&self, index: u32, link: &str) -> Result<(), NetlinkError> {
        let message = LinkUnspec::new_with_index(index).up().build();
        self.run(
            || format!("bringing {link} up"),
            self.handle.link().set(message).execute(),
        )
    }

    /// Deletes link `name`; a link that is already gone is fine.
    pub fn delete_link(&self, name: &str) -> Result<(), NetlinkError> {
        let Some(index) = self.link_index(name)? else {
            return Ok(());
        };
        match self
            .runtime
            .block_on(self.handle.link().del(index).execute())
        {
            Err(e) if errno(&e) != Some(ENODEV) => Err(NetlinkError {
                action: format!("deleting link {name}"),
                source: to_io(e),
            }),
            _ => Ok(()),
        }
    }

    /// Creates veth `host` on the bridge with index `bridge`, up, and its peer directly inside
    /// the namespace `netns`, named `peer` (one request: the peer never appears on the host).
    pub fn add_veth(
        &self,
        host: &str,
        bridge: u32,
        peer: &str,
        netns: BorrowedFd<'_>,
    ) -> Result<(), NetlinkError> {
        let peer_message = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .setns_by_fd(netns.as_raw_fd())
            .build();
        let message = LinkVeth::new(host, peer)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_message)))
            .controller(bridge)
            .up()
            .build();
        self.run(
            || format!("creating veth pair {host} (host) / {peer} (container)"),
            self.handle.link().add(message).execute(),
        )
    }

    /// Gives link `name` (in this socket's namespace) its address, brings it up and, with a
    /// `gateway`, routes everything else through it.
    pub fn configure_interface(
        &self,
        name: &str,
        ip: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Result<(), NetlinkError> {
        let index = self.link_index(name)?.ok_or_else(|| NetlinkError {
            action: format!("finding {name} in the container"),
            source: io::Error::from_raw_os_error(ENODEV),
        })?;
        self.ensure_address(index, name, ip, prefix)?;
        self.set_up(index, name)?;
        let Some(gateway) = gateway else {
            return Ok(());
        };
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .output_interface(index)
            .build();
        self.run(
            || format!("adding the default route via {gateway}"),
            self.handle.route().add(route).execute(),
        )
    }

    /// IPv4 destinations of every route in every table (to pick subnets that do not clash).
    pub fn route_destinations(&self) -> Result<Vec<Subnet>, NetlinkError> {
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let routes: Vec<_> = self.run(
            || "listing routes".into(),
            self.handle.route().get(query).execute().try_collect(),
        )?;
        Ok(routes
            .iter()
            .filter(|r| r.header.address_family == AddressFamily::Inet)
            .filter(|r| r.header.destination_prefix_length > 0)
            .filter_map(|r| {
                r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => {
                        Some(Subnet::covering(*ip, r.header.destination_prefix_length))
                    }
                    _ => None,
                })
            })
            .collect())
    }

    /// Every IPv4 address of this namespace (what "the host" answers to).
    pub fn local_addresses(&self) -> Result<Vec<Ipv4Addr>, NetlinkError> {
        let addresses: Vec<_> = self.run(
            || "listing addresses".into(),
            self.handle.address().get().execute().try_collect(),
        )?;
        let mut ips: Vec<Ipv4Addr> = addresses
            .iter()
            .flat_map(|a| a.attributes.iter())
            .filter_map(|a| match a {
                AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            })
            .collect();
        ips.sort();
        ips.dedup();
        Ok(ips)
    }
}
