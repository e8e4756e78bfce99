//! Where Forge keeps things: a data root for images, containers' layers, configs and logs
//! (default `/var/lib/forge`) and a run root for live state that must not survive a reboot
//! (default `/run/forge`).

use std::path::{Path, PathBuf};

pub const DEFAULT_DATA_ROOT: &str = "/var/lib/forge";
pub const DEFAULT_RUN_ROOT: &str = "/run/forge";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    pub data: PathBuf,
    pub run: PathBuf,
}

impl Roots {
    /// `data` and `run` as given; a data root other than the default without an explicit run root
    /// gets `DATA/run`, so that two Forge roots on one host never share live state.
    pub fn new(data: Option<PathBuf>, run: Option<PathBuf>) -> Self {
        let data = data.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_ROOT));
        let run = run.unwrap_or_else(|| {
            if data == Path::new(DEFAULT_DATA_ROOT) {
                PathBuf::from(DEFAULT_RUN_ROOT)
            } else {
                data.join("run")
            }
        });
        Self { data, run }
    }

    pub fn images(&self) -> PathBuf {
        self.data.join("images")
    }

    /// Named and anonymous volumes: `volumes/NAME/_data` (see `volume.rs`).
    pub fn volumes(&self) -> PathBuf {
        self.data.join("volumes")
    }

    pub fn names(&self) -> PathBuf {
        self.data.join("names")
    }

    /// Config, writable layer and log of one container.
    pub fn container_data(&self, id: &str) -> PathBuf {
        self.data.join("containers").join(id)
    }

    /// Live state and the rootfs mount point of one container.
    pub fn container_run(&self, id: &str) -> PathBuf {
        self.run.join("containers").join(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_root_follows_a_custom_data_root() {
        let default = Roots::new(None, None);
        assert_eq!(default.run, Path::new(DEFAULT_RUN_ROOT));
        let custom = Roots::new(Some("/tmp/f".into()), None);
        assert_eq!(custom.run, Path::new("/tmp/f/run"));
        let both = Roots::new(Some("/tmp/f".into()), Some("/tmp/r".into()));
        assert_eq!(both.run, Path::new("/tmp/r"));
    }
}
