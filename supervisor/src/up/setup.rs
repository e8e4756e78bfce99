//! The project's set-up and tear-down: the images its services need, what a killed earlier run
//! left, its networks and its volumes.

use std::collections::BTreeMap;

use forge_image::host::ensure_default_image;
use forge_netd::{Netd, NetworkOptions};
use forge_runtime::Runtime;

use super::say;
use crate::compose::{Compose, NetworkDef, PullPolicy, Service, VolumeDef};

/// The container of `project`'s service `key`: its `container_name`, else `PROJECT-KEY`.
pub fn container_name(project: &str, key: &str, svc: &Service) -> String {
    svc.container_name
        .clone()
        .unwrap_or_else(|| format!("{project}-{key}"))
}

/// Each service's key and its container's name.
fn service_containers(compose: &Compose, project: &str) -> Vec<(String, String)> {
    compose
        .services
        .iter()
        .map(|(key, svc)| (key.clone(), container_name(project, key, svc)))
        .collect()
}

/// The name in Forge of the project's network `key`: its `name`, else `PROJECT_KEY`, or `KEY`
/// for an external one (Compose's rules, as for volumes).
pub fn network_name(project: &str, key: &str, def: &NetworkDef) -> String {
    object_name(project, key, def.name.as_deref(), def.external)
}

/// Compose's name for a project's network or volume `key`: the `name` it is given, else
/// `KEY` for an external one, else `PROJECT_KEY`.
fn object_name(project: &str, key: &str, name: Option<&str>, external: bool) -> String {
    match (name, external) {
        (Some(name), _) => name.to_string(),
        (None, true) => key.to_string(),
        (None, false) => format!("{project}_{key}"),
    }
}

/// The labels Docker Compose puts on a project's networks; the supervisor removes only
/// networks that carry them.
fn network_labels(project: &str, key: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("com.docker.compose.project".into(), project.into()),
        ("com.docker.compose.network".into(), key.into()),
    ])
}

/// Whether the network `name` exists (`None` when not), and if so, whether it was made for
/// `project`'s `key`.
fn projects_network(netd: &Netd, name: &str, project: &str, key: &str) -> Option<bool> {
    let (network, _) = netd.inspect(name).ok()?;
    Some(network.labels == network_labels(project, key))
}

/// Refuses to start, before anything is made, when an external network does not exist or
/// when a network of another origin holds the name of one the project makes.
fn check_networks(
    netd: &Netd,
    networks: &BTreeMap<String, NetworkDef>,
    project: &str,
) -> Result<(), String> {
    for (key, def) in networks {
        let name = network_name(project, key, def);
        let ours = projects_network(netd, &name, project, key);
        if def.external && ours.is_none() {
            return Err(format!(
                "external network {name:?} not found (networks.{key}): create it with `forge network create {name}`"
            ));
        }
        if !def.external && ours == Some(false) {
            return Err(format!(
                "network {name:?} exists but was not made by this project (networks.{key}): mark it external to use it, or remove it with `forge network rm {name}`"
            ));
        }
    }
    Ok(())
}

/// The name in Forge of the project's volume `key`: its `name`, else `PROJECT_KEY`, or `KEY`
/// for an external one (Compose's rules).
pub fn volume_name(project: &str, key: &str, def: &VolumeDef) -> String {
    object_name(project, key, def.name.as_deref(), def.external)
}

/// The labels Docker Compose puts on a project's volumes, and the file's own.
fn volume_labels(project: &str, key: &str, def: &VolumeDef) -> BTreeMap<String, String> {
    let mut labels = def.labels.clone();
    labels.insert("com.docker.compose.project".into(), project.into());
    labels.insert("com.docker.compose.volume".into(), key.into());
    labels
}

/// Refuses to start when an external volume does not exist: before anything is made.
fn check_external_volumes(
    runtime: &Runtime,
    compose: &Compose,
    project: &str,
) -> Result<(), String> {
    for (key, def) in compose.volumes.iter().filter(|(_, def)| def.external) {
        let name = volume_name(project, key, def);
        if runtime.inspect_volume(&name).is_err() {
            return Err(format!(
                "external volume {name:?} not found (volumes.{key}): create it with `forge volume create {name}`"
            ));
        }
    }
    Ok(())
}

/// Makes the project's volumes that do not exist yet (an existing one is reused, as Compose
/// does).
fn make_volumes(runtime: &Runtime, compose: &Compose, project: &str) -> Result<(), String> {
    for (key, def) in compose.volumes.iter().filter(|(_, def)| !def.external) {
        let name = volume_name(project, key, def);
        match runtime.inspect_volume(&name).ok() {
            Some(info) => {
                if info
                    .volume
                    .labels
                    .get("com.docker.compose.project")
                    .map(String::as_str)
                    != Some(project)
                {
                    say(&format!(
                        "volume {name:?} already exists but was not made by this project: using it (mark it external = true to say so)"
                    ));
                }
            }
            None => {
                runtime
                    .create_volume(
                        Some(&name),
                        &volume_labels(project, key, def),
                        &def.driver_opts,
                    )
                    .map_err(|e| format!("creating volume {name}: {e}"))?;
            }
        }
    }
    Ok(())
}

/// Cleans up what a killed earlier run left (its containers, its networks), then creates the
/// project's networks and its volumes that do not exist yet.
pub(super) async fn prepare(
    runtime: &Runtime,
    netd: &Netd,
    compose: &Compose,
    project: &str,
) -> Result<(), String> {
    let runtime = runtime.clone();
    let netd = netd.clone();
    let networks = project_networks(compose);
    // `default` only when a service joins it (it is then in the file's networks).
    let used: Vec<String> = compose.networks.keys().cloned().collect();
    let services = service_containers(compose, project);
    let project = project.to_string();
    let images = images_of(compose);
    let compose = compose.clone();
    tokio::task::spawn_blocking(move || {
        check_external_volumes(&runtime, &compose, &project)?;
        check_networks(&netd, &networks, &project)?;
        let leftovers = leftover_containers(&runtime, &project, &services)?;
        for (image, policy) in &images {
            ensure_image(&runtime, image, *policy)?;
        }
        remove_leftovers(&runtime, &leftovers)?;
        for (short, def) in networks.iter().filter(|(_, def)| !def.external) {
            let name = network_name(&project, short, def);
            // Left over from a killed run: check_networks let only the project's own through.
            if netd.inspect(&name).is_ok() {
                netd.remove_network(&name)
                    .map_err(|e| format!("removing network {name}: {e}"))?;
            }
            if used.contains(short) {
                create_network(&netd, &project, short, def)?;
            }
        }
        make_volumes(&runtime, &compose, &project)?;
        super::generated::write_all(&runtime, &compose, &project)
    })
    .await
    .expect("the preparation does not panic")
}

/// For a changed model of a running project (`compose` holds only what it adds: the services
/// to start, the networks and volumes defined anew): their images, networks, volumes and
/// files, and the containers an earlier run of its `added` services left (refused when
/// foreign). What exists stays: the running services use it.
pub(super) async fn prepare_more(
    runtime: &Runtime,
    netd: &Netd,
    compose: &Compose,
    project: &str,
    added: &[String],
) -> Result<(), String> {
    let runtime = runtime.clone();
    let netd = netd.clone();
    let services: Vec<(String, String)> = service_containers(compose, project)
        .into_iter()
        .filter(|(key, _)| added.contains(key))
        .collect();
    let project = project.to_string();
    let images = images_of(compose);
    let compose = compose.clone();
    tokio::task::spawn_blocking(move || {
        check_external_volumes(&runtime, &compose, &project)?;
        check_networks(&netd, &compose.networks, &project)?;
        let leftovers = leftover_containers(&runtime, &project, &services)?;
        for (image, policy) in &images {
            ensure_image(&runtime, image, *policy)?;
        }
        remove_leftovers(&runtime, &leftovers)?;
        for (short, def) in compose.networks.iter().filter(|(_, def)| !def.external) {
            if netd.inspect(&network_name(&project, short, def)).is_err() {
                create_network(&netd, &project, short, def)?;
            }
        }
        make_volumes(&runtime, &compose, &project)?;
        super::generated::write_all(&runtime, &compose, &project)
    })
    .await
    .expect("the preparation does not panic")
}

/// Each image once, with the pull policy of the service that asks most: `always` over
/// `missing`, either over `never`.
fn images_of(compose: &Compose) -> BTreeMap<String, PullPolicy> {
    let mut images: BTreeMap<String, PullPolicy> = BTreeMap::new();
    for svc in compose.services.values() {
        let policy = images.entry(svc.image.clone()).or_insert(svc.pull_policy);
        if svc.pull_policy == PullPolicy::Always || *policy == PullPolicy::Never {
            *policy = svc.pull_policy;
        }
    }
    images
}

fn remove_leftovers(runtime: &Runtime, leftovers: &[String]) -> Result<(), String> {
    for name in leftovers {
        say(&format!("removing {name}, left over from an earlier run"));
        runtime
            .remove(name, true)
            .map_err(|e| format!("removing {name}: {e}"))?;
    }
    Ok(())
}

fn create_network(netd: &Netd, project: &str, key: &str, def: &NetworkDef) -> Result<(), String> {
    let name = network_name(project, key, def);
    let opts = NetworkOptions {
        subnet: def.subnet,
        gateway: def.gateway,
        internal: def.internal,
        labels: network_labels(project, key),
    };
    netd.create_network(&name, &opts)
        .map(drop)
        .map_err(|e| format!("creating network {name}: {e}"))
}

/// Makes sure the store has `image`: the default image is built from the host's binaries; any
/// other is pulled as `policy` says, with `forge pull`'s progress lines.
fn ensure_image(runtime: &Runtime, image: &str, policy: PullPolicy) -> Result<(), String> {
    let store = runtime.images();
    if image == forge_image::DEFAULT_IMAGE {
        if ensure_default_image(store, image).map_err(|e| e.to_string())? {
            say(&format!(
                "built the default image {image:?} from the host's binaries"
            ));
        }
        return Ok(());
    }
    let present = store.exists(image);
    match policy {
        PullPolicy::Never if !present => {
            return Err(format!(
                "image {image:?} is not in the store and its pull_policy is never: pull it with forge pull {image}"
            ))
        }
        PullPolicy::Missing | PullPolicy::Never if present => return Ok(()),
        _ => {}
    }
    let reference = forge_image::reference::Reference::parse(image)
        .map_err(|e| format!("image {image:?}: {e}"))?;
    let name = reference.familiar();
    say(&format!("pulling {name}"));
    let progress = |event: forge_image::pull::Progress| {
        if let Some(line) = event.plain_line(&name) {
            say(&line);
        }
    };
    let pulled = forge_image::pull::pull(store, &reference, None, &progress)
        .map_err(|e| format!("pulling {name}: {e}"))?;
    match pulled.up_to_date {
        true => say(&format!("{name}: image is up to date ({})", pulled.digest)),
        false => say(&format!("{name}: pulled {}", pulled.digest)),
    }
    Ok(())
}

/// The containers an earlier run of this project left (named `PROJECT-SERVICE` and labelled
/// as that project's service); refuses, before anything is made, when a container of another
/// origin (`forge run --name`, another project's) holds one of the names.
fn leftover_containers(
    runtime: &Runtime,
    project: &str,
    services: &[(String, String)],
) -> Result<Vec<String>, String> {
    let mut leftovers = Vec::new();
    for (service, name) in services {
        let Ok(c) = runtime.get(name) else { continue };
        if !is_service(&c, project, service) {
            return Err(format!(
                "container {name} exists and is not service {service} of project {project} (made with forge run --name?): remove or rename it, or choose another project name with -p"
            ));
        }
        leftovers.push(name.clone());
    }
    Ok(leftovers)
}

/// Whether `c` carries the labels of `project`'s `service`.
pub(super) fn is_service(c: &forge_runtime::Container, project: &str, service: &str) -> bool {
    let label = |key: &str| c.config.labels.get(key).map(String::as_str);
    label(PROJECT_LABEL) == Some(project) && label(SERVICE_LABEL) == Some(service)
}

/// The labels that mark a container as a project's service.
pub const PROJECT_LABEL: &str = "forge.project";
pub const SERVICE_LABEL: &str = "forge.service";

/// The networks the project may have made: its own, and always `default` (to clean up after a
/// run whose services joined it).
fn project_networks(compose: &Compose) -> BTreeMap<String, NetworkDef> {
    let mut networks = compose.networks.clone();
    networks
        .entry(crate::compose::DEFAULT_NETWORK.to_string())
        .or_default();
    networks
}

/// Removes every container and network of the project; with `remove_volumes` its volumes too
/// (not external ones) and its containers' anonymous volumes.
pub(super) async fn tear_down(
    runtime: &Runtime,
    netd: &Netd,
    compose: &Compose,
    opts: &super::Options,
) {
    let (project, remove_volumes) = (opts.project.as_str(), opts.remove_volumes);
    let runtime = runtime.clone();
    let netd = netd.clone();
    let services = service_containers(compose, project);
    let networks: Vec<(String, String)> = project_networks(compose)
        .iter()
        .filter(|(_, def)| !def.external)
        .map(|(key, def)| (key.clone(), network_name(project, key, def)))
        .collect();
    let volumes: Vec<String> = match remove_volumes {
        true => compose
            .volumes
            .iter()
            .filter(|(_, def)| !def.external)
            .map(|(key, def)| volume_name(project, key, def))
            .collect(),
        false => Vec::new(),
    };
    let project = project.to_string();
    tokio::task::spawn_blocking(move || {
        for (service, name) in &services {
            // Only this project's: one made by hand under the name meanwhile stays.
            if runtime
                .get(name)
                .is_ok_and(|c| is_service(&c, &project, service))
            {
                let removed = if remove_volumes {
                    runtime.remove_with_volumes(name, true)
                } else {
                    runtime.remove(name, true)
                };
                if let Err(e) = removed {
                    tracing::warn!("removing {name}: {e}");
                }
            }
        }
        super::generated::remove_all(&runtime, &project);
        for name in &volumes {
            match runtime.remove_volume(name, true) {
                Ok(()) => say(&format!("removed volume {name}")),
                Err(e) => tracing::warn!("removing volume {name}: {e}"),
            }
        }
        for (key, name) in &networks {
            // Only this project's: one made by hand under the name meanwhile stays.
            if projects_network(&netd, name, &project, key) != Some(true) {
                continue;
            }
            if let Err(e) = netd.remove_network(name) {
                tracing::warn!("removing network {name}: {e}");
            }
        }
    })
    .await
    .expect("the tear-down does not panic");
}
