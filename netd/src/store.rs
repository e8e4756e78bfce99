//! Forge's network state: the networks and the containers attached to them (their address
//! leases and published ports). One JSON file under the state root, changed only while holding an
//! exclusive `flock` on a lock file beside it, so concurrent `forge run`s in separate processes
//! never lease the same address or publish the same port. Everything on the host (bridges, veths,
//! nftables rules, `/etc/hosts` files) is derived from this state.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ipam::{Leases, Subnet};
use crate::ports::PortMapping;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub bridge: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    pub internal: bool,
    /// Created by Forge itself on first use (the default `bridge` network).
    pub builtin: bool,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A container attached to a network (a container on several networks has one per network).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub container_id: String,
    /// Its interface in the container: `eth{index}`.
    #[serde(default)]
    pub index: usize,
    /// Names the others reach it by (the container's name, its hostname, aliases).
    pub names: Vec<String>,
    pub network: String,
    pub ip: Ipv4Addr,
    pub ports: Vec<PortMapping>,
    /// The host end of its veth pair.
    pub veth: String,
    /// The container's PID 1 and its start time: the endpoint is stale once that process is gone.
    pub pid: i32,
    pub pid_start: u64,
    /// The container's `/etc/hosts` (bind-mounted), rewritten as neighbours come and go.
    pub hosts_file: PathBuf,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub networks: BTreeMap<String, Network>,
    /// Keyed by [`Endpoint::key`].
    pub endpoints: BTreeMap<String, Endpoint>,
}

impl Endpoint {
    /// Where the state keeps it: one per container and network.
    pub fn key(&self) -> String {
        format!("{}/{}", self.container_id, self.network)
    }
}

impl State {
    pub fn members<'a>(&'a self, network: &'a str) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.endpoints
            .values()
            .filter(move |e| e.network == network)
    }

    /// The attachments of container `id`, first network first.
    pub fn of_container<'a>(&'a self, id: &'a str) -> Vec<&'a Endpoint> {
        let mut found: Vec<&Endpoint> = self
            .endpoints
            .values()
            .filter(|e| e.container_id == id)
            .collect();
        found.sort_by_key(|e| e.index);
        found
    }

    /// The address leases of `network`: address → container id.
    pub fn leases(&self, network: &str) -> Leases {
        self.members(network)
            .map(|e| (e.ip, e.container_id.clone()))
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {message}")]
pub struct StoreError {
    pub action: &'static str,
    pub path: PathBuf,
    pub message: String,
}

fn store_err(action: &'static str, path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError {
        action,
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The state file and its lock.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// The state, read under the lock; the lock is held until this is dropped.
pub struct Locked {
    pub state: State,
    path: PathBuf,
    _lock: nix::fcntl::Flock<fs::File>,
}

impl Locked {
    /// Writes the state back (atomically: a crash leaves the old or the new file, never half).
    pub fn save(&self) -> Result<(), StoreError> {
        let tmp = self.path.with_extension("tmp");
        let json = serde_json::to_vec_pretty(&self.state).expect("state serialises");
        fs::write(&tmp, json)
            .and_then(|()| fs::rename(&tmp, &self.path))
            .map_err(|e| store_err("writing", &self.path, e))
    }
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the exclusive lock (waiting for other Forge processes) and reads the state.
    pub fn lock(&self) -> Result<Locked, StoreError> {
        fs::create_dir_all(&self.dir).map_err(|e| store_err("creating", &self.dir, e))?;
        let lock_path = self.dir.join("state.lock");
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| store_err("opening", &lock_path, e))?;
        // Released when dropped, also when this process dies: the kernel drops flocks.
        let lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| store_err("locking", &lock_path, e))?;
        let path = self.dir.join("state.json");
        let state = match fs::read(&path) {
            Ok(raw) => serde_json::from_slice(&raw).map_err(|e| store_err("reading", &path, e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(store_err("reading", &path, e)),
        };
        Ok(Locked {
            state,
            path,
            _lock: lock,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::choose;

    fn endpoint(id: &str, ip: Ipv4Addr) -> Endpoint {
        Endpoint {
            container_id: id.into(),
            index: 0,
            names: vec![id.into()],
            network: "n".into(),
            ip,
            ports: vec![],
            veth: format!("fg{id}"),
            pid: 1,
            pid_start: 1,
            hosts_file: PathBuf::from("/nonexistent"),
        }
    }

    #[test]
    fn state_persists_across_locks() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let mut locked = store.lock().unwrap();
        let ip = Ipv4Addr::new(10, 89, 1, 2);
        let a = endpoint("a", ip);
        locked.state.endpoints.insert(a.key(), a);
        locked.save().unwrap();
        drop(locked);
        let again = store.lock().unwrap();
        assert_eq!(
            again.state.leases("n").get(&ip).map(String::as_str),
            Some("a")
        );
    }

    #[test]
    fn concurrent_allocations_never_share_an_address() {
        // flock belongs to each open file description, so threads that each open the lock file
        // exclude one another exactly as separate processes do.
        let tmp = tempfile::tempdir().unwrap();
        let subnet: Subnet = "10.89.1.0/24".parse().unwrap();
        std::thread::scope(|scope| {
            for n in 0..20 {
                let store = Store::new(tmp.path());
                scope.spawn(move || {
                    let mut locked = store.lock().unwrap();
                    let id = format!("c{n}");
                    let leases = locked.state.leases("n");
                    let ip = choose(&leases, subnet, subnet.first_host(), &id, None).unwrap();
                    let e = endpoint(&id, ip);
                    locked.state.endpoints.insert(e.key(), e);
                    locked.save().unwrap();
                });
            }
        });
        let state = Store::new(tmp.path()).lock().unwrap().state;
        assert_eq!(
            state.leases("n").len(),
            20,
            "20 owners, 20 addresses: {state:?}"
        );
    }
}
