//! The root of a stopped container for `forge cp`: its overlay (and its volumes and binds)
//! mounted by a re-executed, single-threaded helper in a mount namespace of its own, and handed
//! back as a detached mount (`open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`) over the set-up socket.
//!
//! The helper exits at once, taking its namespace with it: the tree the caller holds is in no
//! mount table, host's or other, and goes when its fd is closed — also when Forge is killed —
//! so nothing is ever mounted on the host and nothing can be left behind. The caller holds the
//! container's rootfs lock meanwhile, which `start` takes too: the overlay is never mounted
//! twice at once.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use serde::{Deserialize, Serialize};

use crate::channel::{self, Channel};
use crate::init::INIT_FD;
use crate::spec::{InitMount, MountWhat, Storage};

/// The argument that makes the Forge binary the mount helper.
pub const MOUNT_ARG: &str = "__forge_cp_mount";

/// What to mount: the container's overlay and the mounts on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountRequest {
    /// Top-most first, as overlayfs lists them.
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub storage: Option<Storage>,
    /// An empty directory to mount on, in the helper's namespace only.
    pub rootfs: PathBuf,
    /// Binds and volumes (tmpfs mounts would be empty: they are left out).
    pub mounts: Vec<InitMount>,
    /// `--userns=auto`: the layers, binds and disk volumes are idmapped as the container sees
    /// them, so the tree shows the same host IDs as a running container's `/proc/PID/root`.
    pub userns: Option<crate::userns::UsernsSpec>,
    /// `--read-only`: the root is made read-only once the mounts are on it (their volumes and
    /// binds stay as they are), as the running container sees it.
    pub read_only: bool,
}

#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    /// The tree rides along.
    Mounted,
    Failed(String),
}

/// Mounts `request` through the helper; the detached tree of the container's root.
pub fn mount_root(exe: &str, request: &MountRequest) -> Result<OwnedFd, String> {
    use std::os::unix::process::CommandExt;
    let (ours, theirs) = channel::pair().map_err(|e| format!("creating a socket: {e}"))?;
    ours.send_as(request, None)
        .map_err(|e| format!("sending the mount request: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg0("forge-cp").arg(MOUNT_ARG).env_clear();
    crate::launch::give_channel(&mut cmd, theirs);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting the mount helper: {e}"))?;
    drop(cmd);
    let reply = ours.recv_as::<Reply>();
    let _ = child.wait();
    match reply {
        Ok(Some((Reply::Mounted, Some(tree)))) => Ok(tree),
        Ok(Some((Reply::Failed(message), _))) => Err(message),
        Ok(_) => Err("the mount helper ended without an answer".into()),
        Err(e) => Err(format!("reading the mount helper's answer: {e}")),
    }
}

/// Entry point of the helper (`argv[1] == MOUNT_ARG`), single-threaded, fd 3 its socket.
pub fn main() -> ! {
    // SAFETY: the caller hands us fd 3 as our end of the socket and nothing else uses it.
    let channel = Channel::from_fd(unsafe { OwnedFd::from_raw_fd(INIT_FD) });
    let reply = match channel.recv_as::<MountRequest>() {
        Ok(Some((request, _))) => mount_all(&request),
        _ => std::process::exit(channel::EXIT_FORGE_ERROR),
    };
    let sent = match &reply {
        Ok(tree) => channel.send_as(&Reply::Mounted, Some(tree.as_fd())),
        Err(message) => channel.send_as(&Reply::Failed(message.clone()), None),
    };
    std::process::exit(if sent.is_ok() && reply.is_ok() {
        0
    } else {
        channel::EXIT_FORGE_ERROR
    })
}

fn mount_all(request: &MountRequest) -> Result<OwnedFd, String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("creating a mount namespace: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making the mount namespace private: {e}"))?;
    if let Some(storage) = &request.storage {
        crate::init::rootfs::mount_storage(storage, &request.upper, &request.work)
            .map_err(|e| e.to_string())?;
    }
    let userns = match &request.userns {
        Some(userns) => {
            // SAFETY: the helper is single-threaded.
            let ns = unsafe { crate::userns::new_namespace(&userns.map) };
            Some(ns.map_err(|e| e.to_string())?)
        }
        None => None,
    };
    if let (Some(spec), Some(ns)) = (&request.userns, &userns) {
        for (n, layer) in request.lower.iter().enumerate() {
            let tree =
                crate::userns::idmapped_layer(layer, ns.as_fd()).map_err(|e| e.to_string())?;
            let target = spec.layers_dir.join(n.to_string());
            std::fs::create_dir_all(&target)
                .and_then(|()| crate::sys::move_mount_to(tree.as_fd(), &target))
                .map_err(|e| format!("attaching an idmapped layer at {}: {e}", target.display()))?;
        }
    }
    let data = crate::init::rootfs::overlay_data(
        &request.lower,
        request.userns.as_ref(),
        &request.upper,
        &request.work,
    );
    mount(
        Some("overlay"),
        &request.rootfs,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| {
        format!(
            "mounting the container's overlay on {}: {e}",
            request.rootfs.display()
        )
    })?;
    for m in request.mounts.iter().filter(|m| m.made_by_caller()) {
        // What the next start does (copy-up, `U`) is left to it.
        let m = &InitMount {
            what: match &m.what {
                MountWhat::Bind { source, .. } => MountWhat::Bind {
                    source: source.clone(),
                    copy_up: false,
                },
                MountWhat::Filesystem { fs, .. } => MountWhat::Filesystem {
                    fs: fs.clone(),
                    copy_up: false,
                },
                other => other.clone(),
            },
            chown: None,
            ..m.clone()
        };
        let prepared = match &userns {
            Some(ns) => Some(
                crate::userns::idmapped_mount(m, ns.as_fd())
                    .map_err(|e| e.to_string())?
                    .0,
            ),
            None => None,
        };
        crate::init::mount_in::apply(&request.rootfs, m, prepared)
            .map_err(|e| format!("mounting at {}: {e}", m.target))?;
    }
    if request.read_only {
        mount(
            None::<&str>,
            &request.rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| format!("making the root read-only: {e}"))?;
    }
    let fd = nix::fcntl::open(
        &request.rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("opening {}: {e}", request.rootfs.display()))?;
    // SAFETY: open just returned this fd and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let tree = crate::sys::open_tree_clone_recursive(fd.as_fd())
        .map_err(|e| format!("detaching the container's root: {e}"))?;
    Ok(tree)
}
