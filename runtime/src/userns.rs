//! `--userns=auto`: a user namespace per container, mapping container IDs 0..65535 to a host
//! range taken from the subordinate IDs of the user `containers` (podman's convention), so that
//! root inside is an unprivileged user outside.
//!
//! Allocation: a container's range is recorded in its `config.json`; [`lock`] serialises the
//! scan of every container's range and the write of the new config, so ranges never overlap.
//! A range is free again once its container's files are removed (whatever removed them), so a
//! crashed Forge's ranges are reclaimed by the same reconciliation as the rest of its state.
//!
//! Start-up order: PID 1 is cloned with `CLONE_NEWUSER` and the other namespaces together (so
//! the new user namespace owns them); the caller writes `uid_map`/`gid_map`, makes idmapped
//! copies of the image layers, binds and disk volumes and hands them over ([`hand_over`]); only
//! then does PID 1 become root of its namespace ([`become_root`]) and build its root filesystem.
//!
//! Binds and volumes are idmapped, not chowned: the container sees a host file of UID N as its
//! own UID N (host root's files as its root's), writes land on disk with the IDs it sees, and
//! nothing on disk is changed, so one volume serves containers of different ranges and
//! containers without a user namespace alike (Podman's `:idmap`; its `U` is the other choice,
//! and also available). Every file system in a bind must support idmapped mounts (ext4, xfs,
//! btrfs since 5.12-5.15, tmpfs since 6.3): one that does not is refused with the reason.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::channel::{Channel, Message};
use crate::spec::{InitMount, InitSpec, MountWhat, VolumeFs};

/// Container IDs 0..65535 are mapped: every ID a Debian image uses, `nobody` (65534) included.
pub const RANGE_SIZE: u32 = 65536;
/// The user whose subordinate IDs Forge hands out, as podman does.
pub const SUBID_USER: &str = "containers";

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("invalid --userns {0:?}: expected auto or host")]
    BadMode(String),
    #[error("--userns=auto needs subordinate IDs for user {SUBID_USER} in {path}: add a line such as \"{SUBID_USER}:2147483647:2147483648\"")]
    NoSubIds { path: PathBuf },
    #[error("--userns=auto: every range of {RANGE_SIZE} IDs of user {SUBID_USER} in {uid_file} and {gid_file} is in use")]
    Exhausted {
        uid_file: PathBuf,
        gid_file: PathBuf,
    },
    #[error("--userns=auto cannot be combined with {0}")]
    Conflict(&'static str),
    #[error("--userns=auto: the range of user {SUBID_USER} in {path} includes ID 0, which would make the container's root the host's")]
    RangeWithRoot { path: PathBuf },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> UsernsError {
    let path = path.to_path_buf();
    move |source| UsernsError::Io { what, path, source }
}

/// `--userns`: the host's user namespace (the default) or a fresh one with its own range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Host,
    Auto,
}

impl std::str::FromStr for Mode {
    type Err = UsernsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "host" | "" => Ok(Self::Host),
            "auto" => Ok(Self::Auto),
            other => Err(UsernsError::BadMode(other.to_string())),
        }
    }
}

/// Container IDs `0..size` are host UIDs `uid..uid+size` and host GIDs `gid..gid+size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub uid: u32,
    pub gid: u32,
    pub size: u32,
}

impl IdMap {
    fn overlaps(&self, other: &IdMap) -> bool {
        let meets = |a: u32, b: u32| {
            let (a, b, n, m) = (a as u64, b as u64, self.size as u64, other.size as u64);
            a < b + m && b < a + n
        };
        meets(self.uid, other.uid) || meets(self.gid, other.gid)
    }

    /// The line for `/proc/PID/uid_map` (`gid_map` with `gid`).
    fn map_line(start: u32, size: u32) -> String {
        format!("0 {start} {size}\n")
    }
}

/// What PID 1 needs: the mapping, and where to attach the idmapped image layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsernsSpec {
    pub map: IdMap,
    /// An empty directory per image layer (`0`, `1`, … in overlay order), made by the caller.
    pub layers_dir: PathBuf,
}

/// `/etc/subuid` and `/etc/subgid`, or the files named by `FORGE_SUBUID_FILE`/`FORGE_SUBGID_FILE`.
pub fn subid_files() -> (PathBuf, PathBuf) {
    let file = |var: &str, default: &str| {
        std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
    };
    (
        file("FORGE_SUBUID_FILE", "/etc/subuid"),
        file("FORGE_SUBGID_FILE", "/etc/subgid"),
    )
}

/// The `(start, count)` ranges of `user` in a subuid/subgid file (`NAME:START:COUNT` lines).
pub fn parse_subids(text: &str, user: &str) -> Vec<(u32, u32)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let (name, start, count) = (fields.next()?, fields.next()?, fields.next()?);
            (name == user).then_some(())?;
            Some((start.parse().ok()?, count.parse().ok()?))
        })
        .collect()
}

/// Every whole block of `RANGE_SIZE` IDs in the ranges, the n-th UID block paired with the
/// n-th GID block.
pub fn blocks(uids: &[(u32, u32)], gids: &[(u32, u32)]) -> Vec<IdMap> {
    let split = |ranges: &[(u32, u32)]| -> Vec<u32> {
        ranges
            .iter()
            .flat_map(|&(start, count)| {
                let end = start as u64 + count as u64;
                (0..count / RANGE_SIZE)
                    .map(move |n| start as u64 + n as u64 * RANGE_SIZE as u64)
                    // The last ID must fit in a u32 (and -1 is never a valid ID).
                    .filter(move |&s| s + RANGE_SIZE as u64 <= end.min(u32::MAX as u64))
                    .map(|s| s as u32)
            })
            .collect()
    };
    split(uids)
        .into_iter()
        .zip(split(gids))
        .map(|(uid, gid)| IdMap {
            uid,
            gid,
            size: RANGE_SIZE,
        })
        .collect()
}

/// The first candidate that overlaps none of the ranges in use.
pub fn pick(candidates: &[IdMap], used: &[IdMap]) -> Option<IdMap> {
    candidates
        .iter()
        .find(|c| !used.iter().any(|u| c.overlaps(u)))
        .copied()
}

/// Every range of the user `containers` (read before anything is created: a missing entry is
/// refused first).
pub fn candidates() -> Result<Vec<IdMap>, UsernsError> {
    let (uid_file, gid_file) = subid_files();
    let ranges = |path: &Path| -> Result<Vec<(u32, u32)>, UsernsError> {
        let text = match fs::read_to_string(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            other => other.map_err(io_err("reading", path))?,
        };
        let ranges = parse_subids(&text, SUBID_USER);
        if ranges.iter().any(|&(start, _)| start == 0) {
            return Err(UsernsError::RangeWithRoot {
                path: path.to_path_buf(),
            });
        }
        if ranges.iter().all(|&(_, count)| count < RANGE_SIZE) {
            return Err(UsernsError::NoSubIds {
                path: path.to_path_buf(),
            });
        }
        Ok(ranges)
    };
    Ok(blocks(&ranges(&uid_file)?, &ranges(&gid_file)?))
}

/// The first of `candidates` that no container in `used` holds.
pub fn allocate(candidates: &[IdMap], used: &[IdMap]) -> Result<IdMap, UsernsError> {
    pick(candidates, used).ok_or_else(|| {
        let (uid_file, gid_file) = subid_files();
        UsernsError::Exhausted { uid_file, gid_file }
    })
}

/// Held while ranges are scanned and the new container's config is written.
pub struct AllocationLock {
    _file: fs::File,
}

/// Takes the allocation lock of the data root `data` (blocks until it is free).
pub fn lock(data: &Path) -> Result<AllocationLock, UsernsError> {
    let path = data.join("userns.lock");
    let file = crate::sys::lock_exclusive(&path).map_err(io_err("locking", &path))?;
    Ok(AllocationLock { _file: file })
}

/// Lets the container's root (an unprivileged user on the host) reach the container's files
/// below Forge's roots: the roots get o+x (as Docker does with userns-remap), and every
/// directory above them must already allow it.
pub fn make_searchable(root: &Path) -> Result<(), UsernsError> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(root).map_err(io_err("creating", root))?;
    let meta = fs::metadata(root).map_err(io_err("checking", root))?;
    let mode = meta.permissions().mode();
    if mode & 0o001 == 0 {
        fs::set_permissions(root, fs::Permissions::from_mode(mode | 0o001))
            .map_err(io_err("making searchable", root))?;
    }
    for dir in root.ancestors().skip(1) {
        let mode = fs::metadata(dir)
            .map_err(io_err("checking", dir))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(io_err(
                "--userns=auto needs other users to be able to search",
                dir,
            )(io::Error::from(
                io::ErrorKind::PermissionDenied,
            )));
        }
    }
    Ok(())
}

/// Makes `path` belong to the container's root (upper and work dir, the files bound into /etc).
pub fn chown_to_root(path: &Path, map: &IdMap) -> Result<(), UsernsError> {
    std::os::unix::fs::chown(path, Some(map.uid), Some(map.gid))
        .map_err(io_err("handing to the container's root", path))
}

/// The caller's side, between `Pid` and `Ready`: writes PID 1's ID maps (as a privileged
/// writer, so `setgroups` stays allowed), then sends PID 1 an idmapped, detached copy of each
/// image layer (`Layer` messages with the fds, in `lower` order), one of each of its mounts
/// that it cannot make itself (`MountTree`, in mount order), and `Mapped`.
pub fn hand_over(
    pid: libc::pid_t,
    spec: &UsernsSpec,
    lower: &[PathBuf],
    mounts: &[InitMount],
    channel: &Channel,
) -> Result<(), UsernsError> {
    let userns = map_process(pid, &spec.map)?;
    for layer in lower {
        let tree = idmapped_layer(layer, userns.as_fd())?;
        channel
            .send_with_fd(&Message::Layer, Some(tree.as_fd()))
            .map_err(io_err("sending the idmapped layer", layer))?;
    }
    for m in mounts.iter().filter(|m| m.made_by_caller()) {
        let (tree, source) = idmapped_mount(m, userns.as_fd())?;
        channel
            .send_with_fd(&Message::MountTree, Some(tree.as_fd()))
            .map_err(io_err("sending the idmapped mount of", source))?;
    }
    channel.send(&Message::Mapped).map_err(io_err(
        "telling the container it is mapped",
        Path::new(&format!("/proc/{pid}")),
    ))
}

/// Writes the ID maps of process `pid` (just made with a user namespace of its own); its
/// user namespace.
fn map_process(pid: libc::pid_t, map: &IdMap) -> Result<fs::File, UsernsError> {
    for (file, start) in [("uid_map", map.uid), ("gid_map", map.gid)] {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        fs::write(&path, IdMap::map_line(start, map.size)).map_err(io_err("writing", &path))?;
    }
    let ns_path = PathBuf::from(format!("/proc/{pid}/ns/user"));
    fs::File::open(&ns_path).map_err(io_err("opening", &ns_path))
}

/// A user namespace mapped as `map` that no process lives in, to idmap mounts with (`forge cp`
/// of a stopped container): a child is cloned into it, mapped, and ends once it is open.
///
/// # Safety
/// The caller must be single-threaded (see [`crate::sys::clone_fork`]).
pub unsafe fn new_namespace(map: &IdMap) -> Result<fs::File, UsernsError> {
    let proc = Path::new("/proc/self/ns/user");
    let (wait_r, wait_w) =
        nix::unistd::pipe().map_err(|e| io_err("making a pipe", proc)(e.into()))?;
    // SAFETY: the caller is single-threaded.
    match unsafe { crate::sys::clone_fork(libc::CLONE_NEWUSER) } {
        Err(e) => Err(io_err("creating a user namespace", proc)(e)),
        Ok(crate::sys::Forked::Child) => {
            drop(wait_w);
            // Until the parent has opened the namespace (or died): EOF either way.
            let _ = nix::unistd::read(wait_r.as_raw_fd(), &mut [0u8]);
            // SAFETY: _exit ends this forked child without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        Ok(crate::sys::Forked::Parent { child }) => {
            drop(wait_r);
            let userns = map_process(child, map);
            drop(wait_w);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
            userns
        }
    }
}

/// The idmapped, read-only copy of an image layer (its opaque directories marked as a user
/// namespace's overlay reads them).
pub fn idmapped_layer(
    layer: &Path,
    userns: std::os::fd::BorrowedFd<'_>,
) -> Result<OwnedFd, UsernsError> {
    forge_image::opaque::ensure_user_opaque(layer)
        .map_err(io_err("marking the opaque directories of", layer))?;
    idmapped_copy(layer, userns)
}

/// A detached bind mount of `dir` whose owners are seen through `userns`'s mapping: host root's
/// files belong to the container's root, and nothing on disk is changed.
fn idmapped_copy(dir: &Path, userns: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd, UsernsError> {
    let tree = crate::sys::open_tree_clone(dir).map_err(io_err("cloning the mount of", dir))?;
    crate::sys::mount_setattr_idmap(tree.as_fd(), userns)
        .map_err(io_err("idmapping the mount of", dir))?;
    Ok(tree)
}

/// The detached, idmapped mount of a bind (with the mounts below its source) or disk volume
/// `m`, and the path it is of.
pub fn idmapped_mount<'m>(
    m: &'m InitMount,
    userns: std::os::fd::BorrowedFd<'_>,
) -> Result<(OwnedFd, &'m Path), UsernsError> {
    let (tree, source) = match &m.what {
        MountWhat::Bind { source, .. } => {
            let tree = crate::sys::open_path(source)
                .and_then(|src| crate::sys::open_tree_clone_recursive(src.as_fd()))
                .map_err(io_err("cloning the mount of", source))?;
            (tree, source.as_path())
        }
        MountWhat::Filesystem {
            fs: VolumeFs::Disk { image },
            ..
        } => {
            let tree = crate::disk::mount_detached(image)
                .map_err(io_err("mounting the volume's filesystem", image))?;
            (tree, image.as_path())
        }
        _ => unreachable!("only binds and disk volumes are made by the caller"),
    };
    crate::sys::mount_setattr_idmap_recursive(tree.as_fd(), userns).map_err(|e| {
        let what = if e.raw_os_error() == Some(libc::EINVAL) {
            "idmapping for --userns=auto (a file system in it does not support idmapped mounts)"
        } else {
            "idmapping for --userns=auto"
        };
        io_err(what, source)(e)
    })?;
    Ok((tree, source))
}

/// What the caller mounted for PID 1 of a user namespace (nothing without one).
#[derive(Debug, Default)]
pub struct Handed {
    /// The idmapped image layers, in `lower` order.
    pub layers: Vec<OwnedFd>,
    /// The idmapped binds and disk volumes, by target.
    pub trees: HashMap<String, OwnedFd>,
}

/// PID 1's side of [`hand_over`]: the layers and mount trees, once the caller says the maps
/// are written.
pub fn receive(channel: &Channel, spec: &InitSpec) -> Result<Handed, String> {
    let targets: Vec<&str> = spec
        .mounts
        .iter()
        .filter(|m| m.made_by_caller())
        .map(|m| m.target.as_str())
        .collect();
    let mut layers = Vec::new();
    let mut trees = Vec::new();
    loop {
        match channel.recv() {
            Ok(Some((Message::Layer, Some(fd)))) => layers.push(fd),
            Ok(Some((Message::MountTree, Some(fd)))) => trees.push(fd),
            Ok(Some((Message::Layer | Message::MountTree, None))) => {
                return Err("an idmapped mount arrived without its fd".into())
            }
            Ok(Some((Message::Mapped, _)))
                if layers.len() == spec.lower.len() && trees.len() == targets.len() =>
            {
                let trees = targets.iter().map(|t| t.to_string()).zip(trees).collect();
                return Ok(Handed { layers, trees });
            }
            Ok(Some((Message::Mapped, _))) => {
                return Err(format!(
                    "{} idmapped image layers and {} mounts arrived for {} and {}",
                    layers.len(),
                    trees.len(),
                    spec.lower.len(),
                    targets.len()
                ))
            }
            Ok(Some((other, _))) => {
                return Err(format!("waiting for the user namespace map, got {other:?}"))
            }
            Ok(None) => return Err("the caller hung up before mapping the user namespace".into()),
            Err(e) => return Err(format!("waiting for the user namespace map: {e}")),
        }
    }
}

/// Becomes root of the (mapped) user namespace just entered: until then this process is the
/// host's root, an unmapped user there, and could create no file in the container's layers.
pub fn become_root() -> Result<(), String> {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    let root = (Uid::from_raw(0), Gid::from_raw(0));
    setgroups(&[])
        .and_then(|()| setresgid(root.1, root.1, root.1))
        .and_then(|()| setresuid(root.0, root.0, root.0))
        .map_err(|e| format!("becoming root of the user namespace: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_lines_of_the_user_are_read() {
        let text = "alice:100000:65536\ncontainers:200000:131072\n#x\nbad\ncontainers:1:x\n";
        assert_eq!(parse_subids(text, "containers"), vec![(200000, 131072)]);
        assert!(parse_subids(text, "bob").is_empty());
    }

    #[test]
    fn ranges_split_into_whole_blocks_paired_by_position() {
        let b = blocks(&[(100000, 3 * 65536 - 1)], &[(500000, 10 * 65536)]);
        assert_eq!(b.len(), 2);
        assert_eq!((b[1].uid, b[1].gid), (100000 + 65536, 500000 + 65536));
        // podman's default range ends at u32::MAX, which is not a valid ID.
        let top = blocks(&[(2147483647, 2147483648)], &[(2147483647, 2147483648)]);
        assert_eq!(top.len(), 32768);
        assert!(top
            .iter()
            .all(|m| m.uid as u64 + RANGE_SIZE as u64 <= u32::MAX as u64));
    }

    #[test]
    fn picks_the_first_range_nobody_uses() {
        let all = blocks(&[(0, 4 * 65536)], &[(0, 4 * 65536)]);
        assert_eq!(pick(&all, &[]), Some(all[0]));
        assert_eq!(pick(&all, &[all[0], all[2]]), Some(all[1]));
        // An odd range of an older configuration overlapping two blocks blocks both.
        let odd = IdMap {
            uid: 65536 + 10,
            gid: 900_000,
            size: 65536,
        };
        assert_eq!(pick(&all, &[all[0], odd]), Some(all[3]));
        assert_eq!(pick(&all, &all), None);
    }

    #[test]
    fn modes_parse() {
        assert_eq!("auto".parse::<Mode>().unwrap(), Mode::Auto);
        assert_eq!("host".parse::<Mode>().unwrap(), Mode::Host);
        let err = "bogus".parse::<Mode>().unwrap_err().to_string();
        assert!(err.contains("\"bogus\""), "{err}");
    }
}
