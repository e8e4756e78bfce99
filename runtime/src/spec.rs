//! What the init process needs to set up one container, sent to it over the set-up socket.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A host file bind-mounted over a path in the container (e.g. `/etc/hosts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindFile {
    pub source: PathBuf,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitSpec {
    pub id: String,
    pub hostname: String,
    /// Overlay layers: image layers (lowest last, as overlayfs lists them), then the writable pair.
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// A size-limited filesystem image that holds `upper` and `work`, mounted at its `mountpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// Empty directory where the overlay is mounted inside the container's mount namespace only.
    pub rootfs: PathBuf,
    pub bind_files: Vec<BindFile>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// Allocate a pty inside the container and hand its master back to the caller.
    pub tty: bool,
    /// Kill the container when the process that started it dies (the CLI in the foreground).
    pub die_with_parent: bool,
    /// Run the command as this user instead of root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<crate::user::User>,
    /// PID 1 stays a small reaper that runs the command as its child (`--init`).
    #[serde(default)]
    pub init: bool,
    /// Capabilities and no_new_privs of the command; `privileged` also unmasks /proc and /sys.
    #[serde(default)]
    pub privileges: crate::caps::Privileges,
    /// `--read-only`: the root filesystem is mounted read-only (tmpfs mounts stay writable).
    #[serde(default)]
    pub read_only: bool,
    /// Binds, volumes and tmpfs mounts (`-v`, `--mount`, `--tmpfs`, the image's VOLUMEs), in
    /// the order they are made (shallow destinations first).
    #[serde(default)]
    pub mounts: Vec<InitMount>,
    /// `--userns=auto`: PID 1 gets a user namespace of its own, mapped by the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns: Option<crate::userns::UsernsSpec>,
}

/// A mount that init makes at a path of the container, resolved inside its root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitMount {
    /// Absolute path inside the container.
    pub target: String,
    pub what: MountWhat,
    pub read_only: bool,
    pub propagation: crate::mounts::Propagation,
    /// Podman's `U`: the source's files are handed to this UID and GID (as the container sees
    /// them) before it is mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chown: Option<(u32, u32)>,
}

impl InitMount {
    /// In a user namespace, whether the caller makes this mount and hands it over idmapped:
    /// a host directory, or a disk volume PID 1 could not mount (only the host's root can
    /// mount ext4 or idmap a host file system).
    pub fn made_by_caller(&self) -> bool {
        matches!(
            self.what,
            MountWhat::Bind { .. }
                | MountWhat::Filesystem {
                    fs: VolumeFs::Disk { .. },
                    ..
                }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountWhat {
    /// A host file or directory (a volume's `_data` too), recursively. `copy_up`: an empty
    /// source directory first gets a copy of what the image has at the destination.
    Bind { source: PathBuf, copy_up: bool },
    /// A fresh tmpfs with this mount data.
    Tmpfs { data: String },
    /// A volume that is a filesystem of its own rather than a host directory. `copy_up` as for
    /// `Bind`.
    Filesystem { fs: VolumeFs, copy_up: bool },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeFs {
    /// The ext4 image of a sized volume (`--opt size=`).
    Disk { image: PathBuf },
    /// A tmpfs volume (`--opt type=tmpfs`) with this mount data.
    Tmpfs { data: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Storage {
    pub image: PathBuf,
    pub mountpoint: PathBuf,
}

impl InitSpec {
    /// `PATH` from the container's environment, as the exec lookup sees it.
    pub fn path_var(&self) -> &str {
        path_var(&self.env)
    }
}

/// `PATH` from an environment (the last one wins), or the default.
pub fn path_var(env: &[String]) -> &str {
    env.iter()
        .rev()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
}

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
