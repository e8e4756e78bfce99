//! The project's set-up and tear-down: the images its services need, what a killed earlier run
//! left, and its networks.

use std::collections::BTreeMap;

use forge_image::host::ensure_default_image;
use forge_netd::{Netd, NetworkOptions};
use forge_runtime::Runtime;

use super::say;
use crate::compose::{Compose, NetworkDef};

pub fn container_name(project: &str, service: &str) -> String {
    format!("{project}-{service}")
}

pub fn network_name(project: &str, network: &str) -> String {
    format!("{project}_{network}")
}

/// Cleans up what a killed earlier run left (its containers, its networks), then creates the
/// project's networks.
pub(super) async fn prepare(
    runtime: &Runtime,
    netd: &Netd,
    compose: &Compose,
    project: &str,
) -> Result<(), String> {
    let runtime = runtime.clone();
    let netd = netd.clone();
    let networks = project_networks(compose);
    let services: Vec<String> = compose.services.keys().cloned().collect();
    let project = project.to_string();
    let images: Vec<String> = compose.services.values().map(|s| s.image.clone()).collect();
    tokio::task::spawn_blocking(move || {
        for image in &images {
            if ensure_default_image(runtime.images(), image).map_err(|e| e.to_string())? {
                say(&format!(
                    "built the default image {image:?} from the host's binaries"
                ));
            }
        }
        for service in &services {
            let name = container_name(&project, service);
            if runtime.get(&name).is_ok() {
                say(&format!("removing {name}, left over from an earlier run"));
                runtime
                    .remove(&name, true)
                    .map_err(|e| format!("removing {name}: {e}"))?;
            }
        }
        for (short, def) in &networks {
            let name = network_name(&project, short);
            if netd.inspect(&name).is_ok() {
                netd.remove_network(&name)
                    .map_err(|e| format!("removing network {name}: {e}"))?;
            }
            let opts = NetworkOptions {
                subnet: def.subnet,
                gateway: def.gateway,
                internal: def.internal,
            };
            netd.create_network(&name, &opts)
                .map_err(|e| format!("creating network {name}: {e}"))?;
        }
        Ok(())
    })
    .await
    .expect("the preparation does not panic")
}

/// The networks the project creates and removes: its own, and always `default`.
fn project_networks(compose: &Compose) -> BTreeMap<String, NetworkDef> {
    let mut networks = compose.networks.clone();
    networks
        .entry(crate::compose::DEFAULT_NETWORK.to_string())
        .or_default();
    networks
}

/// Removes every container and network of the project.
pub(super) async fn tear_down(runtime: &Runtime, netd: &Netd, compose: &Compose, project: &str) {
    let runtime = runtime.clone();
    let netd = netd.clone();
    let services: Vec<String> = compose.services.keys().cloned().collect();
    let networks: Vec<String> = project_networks(compose).into_keys().collect();
    let project = project.to_string();
    tokio::task::spawn_blocking(move || {
        for service in &services {
            let name = container_name(&project, service);
            if runtime.get(&name).is_ok() {
                if let Err(e) = runtime.remove(&name, true) {
                    tracing::warn!("removing {name}: {e}");
                }
            }
        }
        for short in &networks {
            let name = network_name(&project, short);
            if let Err(e) = netd.remove_network(&name) {
                tracing::warn!("removing network {name}: {e}");
            }
        }
    })
    .await
    .expect("the tear-down does not panic");
}
