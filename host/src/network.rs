//! The runtime's network seam, implemented by netd.

use forge_netd::Netd;
use forge_runtime::network::{AttachRequest, Attachment, Network, NetworkError};

use crate::ports::{from_netd, to_netd};

#[derive(Debug)]
pub(crate) struct NetdNetwork {
    netd: Netd,
}

impl NetdNetwork {
    pub(crate) fn new(netd: Netd) -> Self {
        Self { netd }
    }
}

impl Network for NetdNetwork {
    fn check(&self, networks: &[String]) -> Result<(), NetworkError> {
        Ok(self.netd.check(networks)?)
    }

    fn attach(&self, request: &AttachRequest<'_>) -> Result<Option<Attachment>, NetworkError> {
        let ports: Vec<_> = request.ports.iter().map(to_netd).collect();
        let attachments = self.netd.attach(&forge_netd::AttachRequest {
            container_id: request.container_id,
            names: request.names,
            networks: request.networks,
            ip: request.ip,
            ports: &ports,
            pid: request.pid,
            pid_start: request.pid_start,
            netns: request.netns,
            hosts_file: request.hosts_file,
        })?;
        Ok(attachments.into_iter().next().map(|first| Attachment {
            ip: first.ip,
            ports: first.ports.iter().map(from_netd).collect(),
        }))
    }

    fn detach(&self, container_id: &str) -> Result<(), NetworkError> {
        Ok(self.netd.detach(container_id)?)
    }

    fn resolv_conf(&self, host: &str) -> String {
        forge_netd::hosts::container_resolv_conf(host)
    }
}
