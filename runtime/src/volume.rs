//! The volume store: `DATA/volumes/NAME/` holds `_data/` (what containers mount, Docker's
//! layout) and `volume.json` (when it was made, its labels and options). Volumes belong to no
//! container: which containers use one is read from the containers' configs.
//!
//! Every change happens under one `flock` (`DATA/volumes/.lock`, see [`Store::lock`]), which a
//! container's creation also holds from making its volumes until its config is written: a
//! volume can never be removed between being found unused and a new container naming it.
//! A volume appears whole or not at all: it is made in `.tmp-*` and renamed into place, and
//! removed by a rename to `.rm-*` first; whatever a killed Forge left of either is swept by
//! the next lock.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::mounts::{check_volume_name, MountError};

/// The label Docker (23+) puts on anonymous volumes, which `volume prune` removes by default.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error(transparent)]
    Name(#[from] MountError),
    #[error("no such volume: {0}")]
    NotFound(String),
    #[error("volume {name} is in use by container {}", containers.join(", "))]
    InUse {
        name: String,
        containers: Vec<String>,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> VolumeError {
    let path = path.to_path_buf();
    move |source| VolumeError::Io { what, path, source }
}

/// One volume, as `volume.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    /// Seconds since the epoch.
    pub created: u64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The driver options it was made with (none yet: the local driver's defaults).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Volume {
    /// Made for one container (`-v /ctr`, an image's VOLUME) rather than by name.
    pub fn is_anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

/// The volumes of one data root.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// Held while volumes are made, removed, or checked for use (see the module's header).
pub struct StoreLock {
    _file: fs::File,
}

const META: &str = "volume.json";
const DATA: &str = "_data";

impl Store {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Where the volume's files are: what a container mounts, and `Mountpoint` in `inspect`.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name).join(DATA)
    }

    /// Takes the store's lock (blocks until it is free), then removes what a killed Forge left
    /// half made or half removed.
    pub fn lock(&self) -> Result<StoreLock, VolumeError> {
        fs::create_dir_all(&self.dir).map_err(io_err("creating", &self.dir))?;
        let path = self.dir.join(".lock");
        let file = crate::sys::lock_exclusive(&path).map_err(io_err("locking", &path))?;
        self.sweep();
        Ok(StoreLock { _file: file })
    }

    /// Removes `.tmp-*` and `.rm-*` leftovers; only called with the lock held, so none of them
    /// belongs to a live Forge.
    fn sweep(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".tmp-") || name.starts_with(".rm-") {
                if let Err(e) = fs::remove_dir_all(entry.path()) {
                    tracing::warn!("removing the leftover {}: {e}", entry.path().display());
                }
            }
        }
    }

    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        check_volume_name(name)?;
        let path = self.dir.join(name).join(META);
        match fs::read(&path) {
            Ok(raw) => serde_json::from_slice(&raw)
                .map_err(|e| io_err("reading", &path)(io::Error::other(e))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(VolumeError::NotFound(name.to_string()))
            }
            Err(e) => Err(io_err("reading", &path)(e)),
        }
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<Volume>, VolumeError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("listing", &self.dir)(e)),
        };
        let mut all: Vec<Volume> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| check_volume_name(name).is_ok())
            .filter_map(|name| self.get(&name).ok())
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// Makes volume `name` unless it exists; returns it and whether it was made now.
    pub fn create(
        &self,
        _lock: &StoreLock,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(Volume, bool), VolumeError> {
        check_volume_name(name)?;
        match self.get(name) {
            Ok(volume) => return Ok((volume, false)),
            Err(VolumeError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let volume = Volume {
            name: name.to_string(),
            created: crate::status::now_secs(),
            labels: labels.clone(),
            options: BTreeMap::new(),
        };
        let tmp = self.dir.join(format!(".tmp-{}", crate::names::new_id()));
        let made = (|| {
            fs::create_dir(&tmp)?;
            // Docker's _data is 0755 root:root: the container's users need to reach it.
            fs::create_dir(tmp.join(DATA))?;
            fs::write(
                tmp.join(META),
                serde_json::to_vec_pretty(&volume).map_err(io::Error::other)?,
            )?;
            fs::rename(&tmp, self.dir.join(name))
        })();
        if let Err(e) = made {
            let _ = fs::remove_dir_all(&tmp);
            return Err(io_err("creating volume", &self.dir.join(name))(e));
        }
        Ok((volume, true))
    }

    /// Removes volume `name` and its files (the caller has checked that no container uses it).
    pub fn remove(&self, _lock: &StoreLock, name: &str) -> Result<(), VolumeError> {
        self.get(name)?;
        let doomed = self.dir.join(format!(".rm-{}", crate::names::new_id()));
        let path = self.dir.join(name);
        fs::rename(&path, &doomed).map_err(io_err("removing volume", &path))?;
        fs::remove_dir_all(&doomed).map_err(io_err("removing", &doomed))
    }

    /// Bytes of the regular files of a volume (what `prune` reclaims).
    pub fn size(&self, name: &str) -> u64 {
        fn walk(dir: &Path) -> u64 {
            let Ok(entries) = fs::read_dir(dir) else {
                return 0;
            };
            entries
                .filter_map(|e| e.ok())
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
                    _ => 0,
                })
                .sum()
        }
        walk(&self.data_dir(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_are_made_whole_listed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("volumes"));
        let lock = store.lock().unwrap();
        let labels = BTreeMap::from([("a".to_string(), "1".to_string())]);
        let (made, new) = store.create(&lock, "data", &labels).unwrap();
        assert!(new);
        assert_eq!(made.labels, labels);
        assert!(store.data_dir("data").is_dir());
        let (again, new) = store.create(&lock, "data", &BTreeMap::new()).unwrap();
        assert!(!new);
        assert_eq!(again, made);
        assert!(store.create(&lock, "x", &labels).is_err());
        store.create(&lock, "other", &BTreeMap::new()).unwrap();
        let names: Vec<String> = store.list().unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["data", "other"]);
        store.remove(&lock, "data").unwrap();
        assert!(matches!(store.get("data"), Err(VolumeError::NotFound(_))));
        assert!(matches!(
            store.remove(&lock, "data"),
            Err(VolumeError::NotFound(_))
        ));
    }

    #[test]
    fn leftovers_of_a_killed_forge_are_swept_and_never_listed() {
        let dir = tempfile::tempdir().unwrap();
        let volumes = dir.path().join("volumes");
        fs::create_dir_all(volumes.join(".tmp-1/_data")).unwrap();
        fs::create_dir_all(volumes.join(".rm-2/_data")).unwrap();
        let store = Store::new(volumes.clone());
        assert!(store.list().unwrap().is_empty());
        drop(store.lock().unwrap());
        let left: Vec<_> = fs::read_dir(&volumes)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        assert_eq!(left, [".lock"]);
    }
}
