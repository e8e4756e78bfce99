//! forge-host: a Forge host, the runtime wired to netd.
//!
//! forge-runtime reaches the network only through its [`Network`] seam, and forge-netd knows no
//! Forge crate; this crate is the one place that knows both. Binaries that run containers on
//! this host call [`dispatch`] first thing in `main`, then take their [`runtime`] (and their
//! [`netd`], to manage networks) from here.

mod network;
pub mod ports;

use std::sync::Arc;

use forge_netd::Netd;
use forge_runtime::network::Network;
use forge_runtime::{Roots, Runtime};

/// Netd over the host's networks, kept under the data root.
pub fn netd(roots: &Roots) -> Netd {
    // An attachment is stale once its container's PID 1 is gone.
    Netd::new(roots.data.join("networks"), forge_runtime::process_alive)
}

/// The runtime over `roots`, plugging containers into netd's networks.
pub fn runtime(roots: Roots) -> Runtime {
    let network = network_for(&roots);
    Runtime::new(roots, network)
}

fn network_for(roots: &Roots) -> Arc<dyn Network> {
    Arc::new(network::NetdNetwork::new(netd(roots)))
}

/// [`forge_runtime::dispatch`] for a host binary: a re-executed role (container init,
/// join, detached monitor) runs instead of the program, and the monitor's runtime uses netd.
pub fn dispatch() {
    forge_runtime::dispatch(network_for);
}
