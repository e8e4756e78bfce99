//! The image store: read-only root filesystems that containers are made from.
//!
//! Layout under the data root: `images/NAME/image.json` (the config below) and either
//! `images/NAME/rootfs/` (an image built from the host's binaries: one tree, the overlay's lower
//! layer, never written once built) or a list of layers shared in `layers/` (pulled and loaded OCI
//! images, see [`oci`]; NAME is then the reference's [`reference::Reference::store_key`]). An
//! image appears by an atomic rename, so a crash never leaves half an image.

// Lets the unit tests include helpers from `tests/common/`, which name this crate `forge_image`.
#[cfg(test)]
extern crate self as forge_image;

pub mod elf;
pub mod host;
pub mod oci;
pub mod opaque;
pub mod partial;
mod proc;
pub mod pull;
pub mod reference;
pub mod tls;
pub mod unpack;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The name of the image that Forge builds from the host's binaries when it is missing.
pub const DEFAULT_IMAGE: &str = "host";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image not found: {name} (list images with `forge images`; build one with `forge image build-host {name}`)")]
    NotFound { name: String },
    #[error("invalid image name {name:?}: use letters, digits, '.', '_' and '-', starting with a letter or digit")]
    InvalidName { name: String },
    #[error("image {name} already exists")]
    Exists { name: String },
    #[error("reading image {name}: {source}")]
    Read {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("image {name} has a corrupt image.json: {source}")]
    Corrupt {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing image {name} at {path}: {source}")]
    Write {
        name: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What an image says about how to run it (a subset of the OCI image config).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageConfig {
    /// `KEY=VALUE` pairs every container of this image starts with.
    #[serde(default)]
    pub env: Vec<String>,
    /// Command run when `forge run` is given none.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Working directory inside the container; empty means `/`.
    #[serde(default)]
    pub working_dir: String,
    /// Seconds since the epoch when the image was built.
    #[serde(default)]
    pub created: u64,
    /// Total bytes of the regular files of its layers, unpacked (what `forge images` shows).
    #[serde(default)]
    pub size: u64,
    /// Prepended to the command (OCI Entrypoint).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    /// The user the command runs as unless `--user` says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed_ports: Vec<String>,
    /// Paths the image declares as volumes (`VOLUME`): each container gets an anonymous volume
    /// there unless it mounts something else at that path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// OCI images: the diff ids of their layers in `layers/`, lowest first (empty: `rootfs/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
    /// OCI images: the canonical reference and the manifest digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Image {
    /// What the user calls it: `host`, or a reference's short form (`busybox:latest`).
    pub name: String,
    /// The directory name in the store.
    pub key: String,
    /// The trees stacked to make its root filesystem, lowest first.
    pub layers: Vec<PathBuf>,
    pub config: ImageConfig,
}

impl Image {
    /// `rel` (a path inside the image) in the top-most layer that has it, `None` if no layer has
    /// it or the top-most mention is an overlay whiteout. Symlinks are not followed.
    pub fn find(&self, rel: &str) -> Option<PathBuf> {
        use std::os::unix::fs::FileTypeExt;
        let rel = rel.trim_start_matches('/');
        for layer in self.layers.iter().rev() {
            let path = layer.join(rel);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_char_device() => return None,
                Ok(_) => return Some(path),
                Err(_) => continue,
            }
        }
        None
    }
}

/// The images directory of one data root.
#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
}

/// For the root-only tests in `image/tests/`; not an API.
#[doc(hidden)]
pub mod testing {
    use std::io;
    use std::path::Path;

    /// Total bytes of the regular files below `dir`, as an image's `size` counts them.
    pub fn regular_file_bytes(dir: &Path) -> io::Result<u64> {
        super::regular_file_bytes(dir)
    }
}

/// Checks that `name` can be used as a directory name and a reference.
/// Total bytes of the regular files below `dir` (symlinks not followed; a hard link counts
/// each time): the size of an image's tree as `forge images` shows it.
pub(crate) fn regular_file_bytes(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            total += regular_file_bytes(&entry.path())?;
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

pub fn validate_name(name: &str) -> Result<(), ImageError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ImageError::InvalidName {
            name: name.to_string(),
        })
    }
}

impl ImageStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn image_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn exists(&self, name: &str) -> bool {
        self.key_of(name).is_some()
    }

    /// The store key of `name`: itself for an image built from the host's binaries, else the key
    /// of the reference it parses as (`busybox` → docker.io/library/busybox:latest's).
    fn key_of(&self, name: &str) -> Option<String> {
        let has = |key: &str| self.image_dir(key).join("image.json").is_file();
        if validate_name(name).is_ok() && has(name) {
            return Some(name.to_string());
        }
        let key = reference::Reference::parse(name).ok()?.store_key();
        has(&key).then_some(key)
    }

    /// The data root this store lives in (blobs and layers sit beside `images/`).
    pub fn data_root(&self) -> &Path {
        self.dir.parent().unwrap_or(&self.dir)
    }

    pub fn blobs(&self) -> oci::Blobs {
        oci::Blobs::new(self.data_root())
    }

    pub fn get(&self, name: &str) -> Result<Image, ImageError> {
        let key = self.key_of(name).ok_or_else(|| ImageError::NotFound {
            name: name.to_string(),
        })?;
        self.get_key(&key)
    }

    fn get_key(&self, name: &str) -> Result<Image, ImageError> {
        let dir = self.image_dir(name);
        let raw = match fs::read(dir.join("image.json")) {
            Ok(raw) => raw,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::NotFound {
                    name: name.to_string(),
                })
            }
            Err(source) => {
                return Err(ImageError::Read {
                    name: name.to_string(),
                    source,
                })
            }
        };
        let config: ImageConfig =
            serde_json::from_slice(&raw).map_err(|source| ImageError::Corrupt {
                name: name.to_string(),
                source,
            })?;
        let layers = if config.layers.is_empty() {
            vec![dir.join("rootfs")]
        } else {
            let blobs = self.blobs();
            config
                .layers
                .iter()
                .map(|d| {
                    blobs.layer_path(d).ok_or_else(|| ImageError::Read {
                        name: name.to_string(),
                        source: io::Error::other(format!("bad layer digest {d}")),
                    })
                })
                .collect::<Result<_, _>>()?
        };
        let shown = match &config.reference {
            Some(r) => reference::Reference::parse(r).map_or(r.clone(), |r| r.familiar()),
            None => name.to_string(),
        };
        Ok(Image {
            name: shown,
            key: name.to_string(),
            layers,
            config,
        })
    }

    /// Records an OCI image under `key` (replacing an older record, as a re-tag does).
    pub fn put_record(&self, key: &str, config: &ImageConfig) -> Result<(), ImageError> {
        let write_err = |path: &Path, source| ImageError::Write {
            name: key.to_string(),
            path: path.to_path_buf(),
            source,
        };
        let dir = self.image_dir(key);
        fs::create_dir_all(&dir).map_err(|e| write_err(&dir, e))?;
        let path = dir.join("image.json");
        let tmp = dir.join("image.json.tmp");
        let json = serde_json::to_vec_pretty(config).expect("image config serialises");
        fs::write(&tmp, json)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| write_err(&path, e))
    }

    /// All images, sorted by name. Unreadable entries (a build in progress) are skipped.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(ImageError::Read {
                    name: String::new(),
                    source,
                })
            }
        };
        let mut images: Vec<Image> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.'))
            .filter_map(|name| self.get_key(&name).ok())
            .collect();
        images.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(images)
    }

    /// Publishes a fully built image: writes its config into `staging` and renames `staging`
    /// (a directory below this store holding `rootfs/`) to the image's name in one step.
    pub fn publish(
        &self,
        name: &str,
        staging: &Path,
        config: &ImageConfig,
    ) -> Result<Image, ImageError> {
        validate_name(name)?;
        let write_err = |path: &Path, source| ImageError::Write {
            name: name.to_string(),
            path: path.to_path_buf(),
            source,
        };
        let json = serde_json::to_vec_pretty(config).expect("image config serialises");
        let config_path = staging.join("image.json");
        fs::write(&config_path, json).map_err(|e| write_err(&config_path, e))?;
        let target = self.image_dir(name);
        // rename(2) onto an existing non-empty directory fails, so a concurrent build of the same
        // name loses cleanly instead of mixing two trees.
        match fs::rename(staging, &target) {
            Ok(()) => self.get(name),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {
                Err(ImageError::Exists {
                    name: name.to_string(),
                })
            }
            Err(e) => Err(write_err(&target, e)),
        }
    }

    /// A fresh staging directory below the store for building `name`; the caller removes it on failure.
    pub fn staging_dir(&self, name: &str) -> Result<PathBuf, ImageError> {
        validate_name(name)?;
        let path = self
            .dir
            .join(format!(".build-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(path.join("rootfs")).map_err(|source| ImageError::Write {
            name: name.to_string(),
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// Removes an image's directory. The caller checks that no container uses it.
    pub fn remove(&self, name: &str) -> Result<(), ImageError> {
        let name = &self.key_of(name).ok_or_else(|| ImageError::NotFound {
            name: name.to_string(),
        })?;
        let dir = self.image_dir(name);
        // Rename first so that a half-removed tree is never visible under the image's name.
        let doomed = self.dir.join(format!(".rm-{name}-{}", std::process::id()));
        fs::rename(&dir, &doomed)
            .and_then(|()| fs::remove_dir_all(&doomed))
            .map_err(|source| ImageError::Write {
                name: name.to_string(),
                path: dir,
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("host").is_ok());
        assert!(validate_name("my-img_1.0").is_ok());
        for bad in ["", ".hidden", "a/b", "../x", "a b", "-x"] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn publish_then_get_and_list() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::new(tmp.path());
        let staging = store.staging_dir("one").unwrap();
        let config = ImageConfig {
            cmd: vec!["sh".into()],
            ..Default::default()
        };
        let image = store.publish("one", &staging, &config).unwrap();
        assert_eq!(image.config, config);
        assert!(image.layers[0].is_dir());
        assert_eq!(store.list().unwrap().len(), 1);
        assert!(matches!(store.get("two"), Err(ImageError::NotFound { .. })));

        let again = store.staging_dir("one").unwrap();
        std::fs::write(again.join("rootfs/x"), b"x").unwrap();
        assert!(matches!(
            store.publish("one", &again, &config),
            Err(ImageError::Exists { .. })
        ));
        store.remove("one").unwrap();
        assert!(store.list().unwrap().is_empty());
    }
}
