//! The image store: read-only root filesystems that containers are made from.
//!
//! Layout under the data root: `images/NAME/rootfs/` (the tree, used as the overlay's lower layer
//! and never written once built) and `images/NAME/image.json` (the config below). An image appears
//! by an atomic rename of a fully built temporary directory, so a crash never leaves half an image.

pub mod elf;
pub mod host;

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
    /// Total bytes of regular files in the root filesystem.
    #[serde(default)]
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub rootfs: PathBuf,
    pub config: ImageConfig,
}

/// The images directory of one data root.
#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
}

/// Checks that `name` can be used as a directory name and a reference.
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
        validate_name(name).is_ok() && self.image_dir(name).join("image.json").is_file()
    }

    pub fn get(&self, name: &str) -> Result<Image, ImageError> {
        validate_name(name)?;
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
        let config = serde_json::from_slice(&raw).map_err(|source| ImageError::Corrupt {
            name: name.to_string(),
            source,
        })?;
        Ok(Image {
            name: name.to_string(),
            rootfs: dir.join("rootfs"),
            config,
        })
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
            .filter_map(|name| self.get(&name).ok())
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
        validate_name(name)?;
        let dir = self.image_dir(name);
        if !dir.join("image.json").is_file() {
            return Err(ImageError::NotFound {
                name: name.to_string(),
            });
        }
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
        assert!(image.rootfs.is_dir());
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
