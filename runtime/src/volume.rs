//! The volume store: `DATA/volumes/NAME/` holds `_data/` (what containers mount, Docker's
//! layout) and `volume.json` (when it was made, its labels and options). Volumes belong to no
//! container: which containers use one is read from the containers' configs.
//!
//! Options choose what a volume is (see [`VolumeKind`]): Docker's local driver's `type`, `o`
//! and `device` for tmpfs and bind volumes, and `size` for a volume with a hard size limit on
//! any filesystem, an ext4 image (`disk.img`) that only containers mount.
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
    #[error("invalid volume option {0}")]
    Option(String),
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
    /// The driver options it was made with (`--opt`), as given.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Volume {
    /// Made for one container (`-v /ctr`, an image's VOLUME) rather than by name.
    pub fn is_anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }

    pub fn kind(&self) -> Result<VolumeKind, VolumeError> {
        VolumeKind::from_options(&self.options)
    }
}

/// What a volume is, from its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeKind {
    /// No options: a directory under the data root.
    Directory,
    /// `size=N`: an ext4 filesystem of N bytes in `disk.img`; writes past it fail with ENOSPC.
    /// Forge's own: Docker's local driver limits size only on XFS with project quotas.
    Disk { bytes: u64 },
    /// `type=tmpfs [device=tmpfs] [o=OPTIONS]`: a tmpfs with these mount options. Each container
    /// mounts a fresh one (Docker shares one between the containers running at the same time).
    Tmpfs { data: String },
    /// `type=none o=bind device=/PATH`: a host directory, bound recursively.
    Bind { device: PathBuf },
}

const OPTION_KEYS: [&str; 4] = ["size", "type", "o", "device"];

impl VolumeKind {
    /// Checks `options` (`forge volume create --opt`, compose `driver_opts`).
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Self, VolumeError> {
        let bad = |message: String| Err(VolumeError::Option(message));
        if let Some(key) = options.keys().find(|k| !OPTION_KEYS.contains(&k.as_str())) {
            return bad(format!(
                "{key:?}: the local driver takes {}",
                OPTION_KEYS.join(", ")
            ));
        }
        let get = |key: &str| options.get(key).map(String::as_str);
        match (get("size"), get("type")) {
            (Some(_), Some(_)) => bad("size: it cannot be combined with type (a sized volume is an ext4 filesystem of Forge's)".into()),
            (Some(""), None) => bad("size: it needs a size, like size=1g".into()),
            (Some(size), None) => {
                if let Some(key) = ["o", "device"].into_iter().find(|k| options.contains_key(*k)) {
                    return bad(format!("{key}: it needs type (size takes no other options)"));
                }
                let bytes = crate::limits::parse_size("size", size)
                    .map_err(|_| VolumeError::Option(format!("size={size:?}: expected a size like 512m or 1g")))?;
                if bytes < crate::limits::MIN_STORAGE {
                    return bad(format!("size={size:?}: the minimum is 16m"));
                }
                Ok(Self::Disk { bytes })
            }
            (None, None) if options.is_empty() => Ok(Self::Directory),
            (None, None) => bad(format!(
                "{}: it needs type (type=tmpfs or type=none with o=bind)",
                options.keys().next().expect("not empty")
            )),
            (None, Some("tmpfs")) => {
                if let Some(device) = get("device").filter(|d| *d != "tmpfs") {
                    return bad(format!("device={device:?}: a tmpfs volume's device is tmpfs"));
                }
                let data = get("o").unwrap_or("").to_string();
                for option in data.split(',').filter(|o| !o.is_empty()) {
                    crate::tmpfs::check_option(option)
                        .map_err(|reason| VolumeError::Option(format!("o={data:?}: {reason}")))?;
                }
                Ok(Self::Tmpfs { data })
            }
            (None, Some("none")) => {
                let o = get("o").unwrap_or("");
                if !o.split(',').all(|w| matches!(w, "bind" | "rbind"))
                    || !o.split(',').any(|w| !w.is_empty())
                {
                    return bad(format!(
                        "o={o:?}: with type=none it must be bind (Forge binds recursively; ro goes on the mount, -v NAME:/DST:ro)"
                    ));
                }
                let device = get("device").unwrap_or("");
                if !device.starts_with('/') {
                    return bad(format!("device={device:?}: a bind volume needs an absolute host directory"));
                }
                Ok(Self::Bind { device: PathBuf::from(device) })
            }
            (None, Some(other)) => bad(format!(
                "type={other:?}: not supported (Forge makes tmpfs volumes with type=tmpfs, binds with type=none,o=bind, and sized ones with size=)"
            )),
        }
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
const DISK: &str = "disk.img";

impl Store {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Where the volume's files are: what a container mounts, and `Mountpoint` in `inspect`.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name).join(DATA)
    }

    /// The ext4 image of a sized volume.
    pub fn disk_image(&self, name: &str) -> PathBuf {
        self.dir.join(name).join(DISK)
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

    /// Makes volume `name` unless it exists; returns it and whether it was made now. An
    /// existing volume is returned as it is, whatever `labels` and `options` say (as Docker).
    pub fn create(
        &self,
        _lock: &StoreLock,
        name: &str,
        labels: &BTreeMap<String, String>,
        options: &BTreeMap<String, String>,
    ) -> Result<(Volume, bool), VolumeError> {
        check_volume_name(name)?;
        let kind = VolumeKind::from_options(options)?;
        if let VolumeKind::Bind { device } = &kind {
            if !device.is_dir() {
                return Err(VolumeError::Option(format!(
                    "device={:?}: no such directory on this host",
                    device.display().to_string()
                )));
            }
        }
        match self.get(name) {
            Ok(volume) => return Ok((volume, false)),
            Err(VolumeError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let volume = Volume {
            name: name.to_string(),
            created: crate::status::now_secs(),
            labels: labels.clone(),
            options: options.clone(),
        };
        let tmp = self.dir.join(format!(".tmp-{}", crate::names::new_id()));
        let made = (|| {
            fs::create_dir(&tmp)?;
            // Docker's _data is 0755 root:root: the container's users need to reach it.
            fs::create_dir(tmp.join(DATA))?;
            if let VolumeKind::Disk { bytes } = kind {
                crate::disk::make(&tmp.join(DISK), bytes, true)?;
            }
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

    /// Bytes of the regular files of a volume (what `prune` reclaims); of a sized one, what its
    /// image takes on disk.
    pub fn size(&self, name: &str) -> u64 {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = fs::metadata(self.disk_image(name)) {
            return meta.blocks() * 512;
        }
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
        let (made, new) = store
            .create(&lock, "data", &labels, &BTreeMap::new())
            .unwrap();
        assert!(new);
        assert_eq!(made.labels, labels);
        assert!(store.data_dir("data").is_dir());
        let (again, new) = store
            .create(&lock, "data", &BTreeMap::new(), &BTreeMap::new())
            .unwrap();
        assert!(!new);
        assert_eq!(again, made);
        assert!(store.create(&lock, "x", &labels, &BTreeMap::new()).is_err());
        store
            .create(&lock, "other", &BTreeMap::new(), &BTreeMap::new())
            .unwrap();
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

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_choose_the_kind_of_volume() {
        let kind = |pairs: &[(&str, &str)]| VolumeKind::from_options(&options(pairs));
        assert_eq!(kind(&[]).unwrap(), VolumeKind::Directory);
        assert_eq!(
            kind(&[("size", "1g")]).unwrap(),
            VolumeKind::Disk { bytes: 1 << 30 }
        );
        assert_eq!(
            kind(&[
                ("type", "tmpfs"),
                ("device", "tmpfs"),
                ("o", "size=64m,mode=0700")
            ])
            .unwrap(),
            VolumeKind::Tmpfs {
                data: "size=64m,mode=0700".into()
            }
        );
        assert_eq!(
            kind(&[("type", "none"), ("o", "bind"), ("device", "/srv/db")]).unwrap(),
            VolumeKind::Bind {
                device: "/srv/db".into()
            }
        );
    }

    #[test]
    fn bad_options_name_the_option() {
        for (pairs, want) in [
            (&[("size", "")][..], "size: it needs a size"),
            (&[("size", "lots")][..], "size=\"lots\": expected a size"),
            (&[("size", "1m")][..], "the minimum is 16m"),
            (
                &[("size", "1g"), ("type", "tmpfs")][..],
                "cannot be combined with type",
            ),
            (&[("size", "1g"), ("o", "x")][..], "o: it needs type"),
            (&[("o", "size=1m")][..], "o: it needs type"),
            (
                &[("colour", "red")][..],
                "\"colour\": the local driver takes size, type, o, device",
            ),
            (
                &[("type", "ext4"), ("device", "/dev/sdb")][..],
                "type=\"ext4\": not supported",
            ),
            (
                &[("type", "tmpfs"), ("o", "size=big")][..],
                "o=\"size=big\": invalid value",
            ),
            (
                &[("type", "tmpfs"), ("device", "/dev/x")][..],
                "device is tmpfs",
            ),
            (
                &[("type", "none"), ("device", "/srv")][..],
                "o=\"\": with type=none it must be bind",
            ),
            (
                &[("type", "none"), ("o", "bind,ro"), ("device", "/srv")][..],
                "must be bind",
            ),
            (
                &[("type", "none"), ("o", "bind"), ("device", "srv")][..],
                "absolute host directory",
            ),
        ] {
            let err = VolumeKind::from_options(&options(pairs))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("invalid volume option "), "{err}");
            assert!(err.contains(want), "{pairs:?}: {err}");
        }
    }
}
