//! The network seam: how a container is plugged into its networks, handed to
//! [`crate::Runtime::new`] by the caller. The runtime knows what a container asks for
//! ([`crate::NetSpec`]) and when it is ready to be plugged in (set up, placed in its cgroups, not
//! yet running its command); what a network is, and how to attach to one, is the caller's: Forge's
//! binaries hand it forge-netd through forge-host, callers without networking [`NoNetwork`].
//!
//! A container on no network (`--net none`) never reaches the seam.

mod ports;

use std::net::Ipv4Addr;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::Arc;

pub use ports::{PortError, Protocol, PublishedPort};

use crate::Roots;

/// Whatever a network implementation fails with; shown to the user as it says.
pub type NetworkError = Box<dyn std::error::Error + Send + Sync>;

/// Builds the seam for a runtime over `roots`, for the roles that make their own runtime (the
/// detached monitor, see [`crate::init::dispatch`]).
pub type NetworkFor = fn(&Roots) -> Arc<dyn Network>;

pub trait Network: std::fmt::Debug + Send + Sync {
    /// Refuses networks that cannot be attached (too many, unknown) before anything is created.
    fn check(&self, networks: &[String]) -> Result<(), NetworkError>;
    /// Plugs the set-up container into all its networks; its attachment to the first one. On
    /// failure it is on none of them.
    fn attach(&self, request: &AttachRequest<'_>) -> Result<Option<Attachment>, NetworkError>;
    /// Unplugs a container whose processes are gone; one that was never attached is fine.
    fn detach(&self, container_id: &str) -> Result<(), NetworkError>;
    /// The container's `/etc/resolv.conf`, given the host's.
    fn resolv_conf(&self, host: &str) -> String;
}

/// What the runtime knows of a container that is set up and waiting to run.
pub struct AttachRequest<'a> {
    pub container_id: &'a str,
    /// Names its neighbours reach it by: its name, its hostname, its aliases.
    pub names: &'a [String],
    /// In order: the first one routes everything else.
    pub networks: &'a [String],
    /// A fixed address on the first network.
    pub ip: Option<Ipv4Addr>,
    /// Published to the container's address on its first network.
    pub ports: &'a [PublishedPort],
    /// The container's PID 1 and its start time, which tell when the attachment is stale.
    pub pid: i32,
    pub pid_start: u64,
    /// The container's network namespace (`/proc/PID/ns/net`).
    pub netns: BorrowedFd<'a>,
    /// The container's `/etc/hosts` on the host (bind-mounted into it).
    pub hosts_file: &'a Path,
}

/// A container's place on its first network, as `forge ps` and `inspect` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub ip: Ipv4Addr,
    /// The published ports, with the host ports chosen for those that named none.
    pub ports: Vec<PublishedPort>,
}

/// For callers without networking: every container runs with `--net none`.
#[derive(Debug, Clone, Copy)]
pub struct NoNetwork;

#[derive(Debug, thiserror::Error)]
#[error("network {0}: this runtime has no networking; run the container with --net none")]
struct NoNetworking(String);

impl NoNetwork {
    fn refuse(networks: &[String]) -> Result<(), NetworkError> {
        match networks.first() {
            Some(network) => Err(NoNetworking(network.clone()).into()),
            None => Ok(()),
        }
    }
}

impl Network for NoNetwork {
    fn check(&self, networks: &[String]) -> Result<(), NetworkError> {
        Self::refuse(networks)
    }

    fn attach(&self, request: &AttachRequest<'_>) -> Result<Option<Attachment>, NetworkError> {
        Self::refuse(request.networks).map(|()| None)
    }

    fn detach(&self, _container_id: &str) -> Result<(), NetworkError> {
        Ok(())
    }

    /// Never asked for a container with networks (they are refused): the host's as it is.
    fn resolv_conf(&self, host: &str) -> String {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_network_refuses_every_network_and_names_it() {
        assert!(NoNetwork.check(&[]).is_ok());
        let err = NoNetwork.check(&["bridge".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "network bridge: this runtime has no networking; run the container with --net none"
        );
        assert!(NoNetwork.detach("any").is_ok());
    }
}
