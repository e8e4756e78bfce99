//! A container's mounts and the volumes behind them: checked when it is created (before
//! anything exists), its volumes made under the store's lock until its config is written,
//! handed to init in mount order, and its anonymous volumes removed with it when asked
//! (`rm -v`, `--rm`). Also the `forge volume` commands, which need to know which containers
//! use a volume.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::{io_err, read_json, Container, ContainerConfig, CreateOptions, Runtime, RuntimeError};
use crate::mounts::{check_target, in_mount_order, Mount, MountType};
use crate::spec::{InitMount, MountWhat, VolumeFs};
use crate::volume::{Store, StoreLock, Volume, VolumeError, VolumeKind, ANONYMOUS_LABEL};

/// The volumes a create made, and the lock that keeps every volume it names in place until
/// its config is written (or until [`MadeVolumes::undo`]).
pub(super) struct MadeVolumes {
    lock: Option<StoreLock>,
    made: Vec<String>,
}

impl MadeVolumes {
    /// Removes the volumes made for a container whose creation failed after all.
    pub(super) fn undo(self, store: &Store) {
        let Some(lock) = &self.lock else { return };
        for name in &self.made {
            if let Err(e) = store.remove(lock, name) {
                tracing::warn!("{e}");
            }
        }
    }
}

/// A volume with where its files are and the containers that use it, for `volume inspect`.
#[derive(Debug, Clone)]
pub struct VolumeInfo {
    pub volume: Volume,
    pub mountpoint: PathBuf,
    pub containers: Vec<String>,
}

impl Runtime {
    pub(crate) fn volume_store(&self) -> Store {
        Store::new(self.roots.volumes())
    }

    /// The container's mounts: the user's, then an anonymous volume for each of the image's
    /// VOLUMEs that nothing else is mounted at. Refuses a destination given twice and a missing
    /// `--mount type=bind` source. Makes nothing.
    pub(super) fn check_mounts(
        &self,
        opts: &CreateOptions,
        image: &forge_image::Image,
        tmpfs: &[(String, String)],
    ) -> Result<Vec<Mount>, RuntimeError> {
        let mut mounts = opts.mounts.clone();
        let taken = |mounts: &[Mount], path: &str| {
            mounts.iter().any(|m| m.target == path) || tmpfs.iter().any(|(p, _)| p == path)
        };
        for path in &image.config.volumes {
            let target = check_target(path).map_err(|reason| RuntimeError::BadImageVolume {
                image: opts.image.clone(),
                path: path.clone(),
                reason,
            })?;
            if !taken(&mounts, &target) {
                mounts.push(Mount {
                    target,
                    ..Mount::default()
                });
            }
        }
        let tmpfs_paths: Vec<&str> = tmpfs.iter().map(|(p, _)| p.as_str()).collect();
        crate::mounts::check_distinct(&mounts, &tmpfs_paths)?;
        for m in &mut mounts {
            match m.kind {
                MountType::Bind if !m.create_source && fs::symlink_metadata(&m.source).is_err() => {
                    return Err(RuntimeError::NoBindSource(m.source.clone()))
                }
                MountType::Volume if m.source.is_empty() => {
                    m.source = crate::names::new_id();
                    m.anonymous = true;
                }
                _ => {}
            }
        }
        Ok(mounts)
    }

    /// Makes the volumes `mounts` name that do not exist yet, under the store's lock, which the
    /// result holds. On failure nothing of it is left.
    pub(super) fn make_volumes(&self, mounts: &[Mount]) -> Result<MadeVolumes, RuntimeError> {
        let mut made = MadeVolumes {
            lock: None,
            made: Vec::new(),
        };
        let volumes: Vec<&Mount> = mounts
            .iter()
            .filter(|m| m.kind == MountType::Volume)
            .collect();
        if volumes.is_empty() {
            return Ok(made);
        }
        let store = self.volume_store();
        let lock = made.lock.insert(store.lock()?);
        for m in volumes {
            let labels = if m.anonymous {
                BTreeMap::from([(ANONYMOUS_LABEL.to_string(), String::new())])
            } else {
                BTreeMap::new()
            };
            match store.create(lock, &m.source, &labels, &BTreeMap::new()) {
                Ok((_, true)) => made.made.push(m.source.clone()),
                Ok((_, false)) => {}
                Err(e) => {
                    made.undo(&store);
                    return Err(e.into());
                }
            }
        }
        Ok(made)
    }

    /// Creates the missing host directories of `-v HOST:CTR` binds (as Docker, at each start).
    pub(super) fn make_bind_sources(&self, config: &ContainerConfig) -> Result<(), RuntimeError> {
        for m in &config.mounts {
            if m.kind == MountType::Bind && m.create_source {
                let path = Path::new(&m.source);
                if fs::symlink_metadata(path).is_err() {
                    fs::create_dir_all(path).map_err(io_err("creating the bind source", path))?;
                }
            }
        }
        Ok(())
    }

    /// What init mounts, in mount order: `--tmpfs`, binds and volumes.
    pub(super) fn init_mounts(
        &self,
        config: &ContainerConfig,
    ) -> Result<Vec<InitMount>, RuntimeError> {
        let store = self.volume_store();
        let tmpfs = config.tmpfs.iter().map(|(path, options)| InitMount {
            target: path.clone(),
            what: MountWhat::Tmpfs {
                data: if options.is_empty() {
                    "mode=1777".into()
                } else {
                    options.clone()
                },
            },
            read_only: false,
            propagation: Default::default(),
            chown: None,
        });
        // `U` hands the files to the container's user, by the IDs the container sees.
        let owner = config.user.as_ref().map_or((0, 0), |u| (u.uid, u.gid));
        let mut mounts: Vec<InitMount> = tmpfs.collect();
        for m in &config.mounts {
            let what = match m.kind {
                MountType::Bind => MountWhat::Bind {
                    source: PathBuf::from(&m.source),
                    copy_up: false,
                },
                MountType::Volume => volume_mount(&store, &m.source, !m.nocopy)?,
                MountType::Tmpfs => MountWhat::Tmpfs {
                    data: m.tmpfs_options.clone(),
                },
            };
            mounts.push(InitMount {
                target: m.target.clone(),
                what,
                read_only: m.read_only,
                propagation: m.propagation,
                chown: m.chown.then_some(owner),
            });
        }
        Ok(in_mount_order(mounts, |m| &m.target))
    }

    /// Which containers (by name) use each volume, read from the configs alone: no state is
    /// reconciled, so it is safe under the store's lock.
    fn volume_users(&self) -> Result<BTreeMap<String, Vec<String>>, RuntimeError> {
        let dir = self.roots.data.join("containers");
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(users),
            Err(e) => return Err(io_err("listing", &dir)(e)),
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let Ok(config) = read_json::<ContainerConfig>(&entry.path().join("config.json")) else {
                continue;
            };
            for m in config.mounts.iter().filter(|m| m.kind == MountType::Volume) {
                let names = users.entry(m.source.clone()).or_default();
                if !names.contains(&config.name) {
                    names.push(config.name.clone());
                }
            }
        }
        Ok(users)
    }

    /// Removes the anonymous volumes of the (already removed) container `c` that no other
    /// container uses; what failed.
    pub(super) fn try_remove_anonymous_volumes(&self, c: &Container) -> Vec<String> {
        let anonymous: Vec<&Mount> = c
            .config
            .mounts
            .iter()
            .filter(|m| m.kind == MountType::Volume && m.anonymous)
            .collect();
        if anonymous.is_empty() {
            return Vec::new();
        }
        let store = self.volume_store();
        let (lock, users) = match store.lock().map_err(RuntimeError::from).and_then(|lock| {
            let users = self.volume_users()?;
            Ok((lock, users))
        }) {
            Ok(locked) => locked,
            Err(e) => return vec![format!("removing the volumes of {}: {e}", c.name())],
        };
        let mut failures = Vec::new();
        for m in anonymous {
            if users.get(&m.source).is_some_and(|u| !u.is_empty()) {
                continue;
            }
            match store.remove(&lock, &m.source) {
                Ok(()) | Err(VolumeError::NotFound(_)) => {}
                Err(e) => failures.push(e.to_string()),
            }
        }
        failures
    }

    /// `forge volume create [--opt K=V] [NAME]`: a random 64-hex name when none is given, as
    /// Docker's. An existing volume of that name is returned as it is.
    pub fn create_volume(
        &self,
        name: Option<&str>,
        labels: &BTreeMap<String, String>,
        options: &BTreeMap<String, String>,
    ) -> Result<Volume, RuntimeError> {
        let name = name.map_or_else(crate::names::new_id, str::to_string);
        crate::mounts::check_volume_name(&name)?;
        VolumeKind::from_options(options)?;
        let store = self.volume_store();
        let lock = store.lock()?;
        Ok(store.create(&lock, &name, labels, options)?.0)
    }

    /// Every volume, by name.
    pub fn list_volumes(&self) -> Result<Vec<Volume>, RuntimeError> {
        Ok(self.volume_store().list()?)
    }

    pub fn inspect_volume(&self, name: &str) -> Result<VolumeInfo, RuntimeError> {
        let store = self.volume_store();
        let volume = store.get(name)?;
        let containers = self.volume_users()?.remove(name).unwrap_or_default();
        Ok(VolumeInfo {
            mountpoint: store.data_dir(name),
            volume,
            containers,
        })
    }

    /// `forge volume rm [-f]`: refused while any container (running or not) uses it; `force`
    /// only makes a missing volume no error, as in Docker.
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<(), RuntimeError> {
        crate::mounts::check_volume_name(name)?;
        let store = self.volume_store();
        let lock = store.lock()?;
        if let Some(containers) = self.volume_users()?.remove(name) {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                containers,
            }
            .into());
        }
        match store.remove(&lock, name) {
            Err(VolumeError::NotFound(_)) if force => Ok(()),
            other => Ok(other?),
        }
    }

    /// `forge volume prune [-a]`: removes the unused anonymous volumes (every unused one with
    /// `all`, as Docker 23+); the names and sizes of those removed.
    pub fn prune_volumes(&self, all: bool) -> Result<Vec<(String, u64)>, RuntimeError> {
        let store = self.volume_store();
        let lock = store.lock()?;
        let users = self.volume_users()?;
        let mut removed = Vec::new();
        for volume in store.list()? {
            if users.contains_key(&volume.name) || !(all || volume.is_anonymous()) {
                continue;
            }
            let size = store.size(&volume.name);
            store.remove(&lock, &volume.name)?;
            removed.push((volume.name, size));
        }
        Ok(removed)
    }
}

/// How init mounts volume `name`, from what kind of volume it is.
fn volume_mount(store: &Store, name: &str, copy_up: bool) -> Result<MountWhat, RuntimeError> {
    Ok(match store.get(name)?.kind()? {
        VolumeKind::Directory => MountWhat::Bind {
            source: store.data_dir(name),
            copy_up,
        },
        VolumeKind::Bind { device } => MountWhat::Bind {
            source: device,
            copy_up,
        },
        VolumeKind::Disk { .. } => MountWhat::Filesystem {
            fs: VolumeFs::Disk {
                image: store.disk_image(name),
            },
            copy_up,
        },
        VolumeKind::Tmpfs { data } => MountWhat::Filesystem {
            fs: VolumeFs::Tmpfs { data },
            copy_up,
        },
    })
}
