//! The container's root filesystem, as a plan of mount steps (plain data, unit-tested) and the
//! small function that applies it.
//!
//! Runs in PID 1 of the container, inside its new mount namespace, before `pivot_root`: the overlay
//! and everything below it exist only in that namespace, so they vanish with the container and can
//! never leak onto the host. Order matters: the namespace a slave of the host's first (nothing
//! leaks back), then the overlay, then the filesystems on top of it (the user's mounts before
//! `--read-only` turns the root read-only, since their destinations may have to be made), then
//! `pivot_root`. Mounts at paths of the container are resolved inside its root (`mount_in`).
//!
//! In a user namespace (`--userns=auto`) three things differ: the image layers are the caller's
//! idmapped copies, attached first (below Forge's run root, in this namespace only); overlayfs
//! keeps its own markers in `user.overlay.*` xattrs (`trusted.*` needs the host's root); and the
//! devices are bind mounts of the host's nodes, since no namespace but the host's may `mknod`.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{symlink, DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

use crate::mounts::Propagation;
use crate::spec::{InitMount, InitSpec, MountWhat};

#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct RootfsError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Mount {
        source: String,
        target: PathBuf,
        fstype: Option<&'static str>,
        flags: MsFlags,
        data: Option<String>,
    },
    /// Bind `target` onto itself and make it read-only (a read-only view of part of a mount).
    ReadOnlyBind {
        target: PathBuf,
    },
    Mkdir {
        path: PathBuf,
        mode: u32,
    },
    /// Create an empty file to bind-mount over, if it is missing.
    Touch {
        path: PathBuf,
    },
    CharDevice {
        path: PathBuf,
        major: u64,
        minor: u64,
    },
    Symlink {
        target: &'static str,
        link: PathBuf,
    },
    /// Hide a file of /proc or /sys behind the container's /dev/null (if the file exists).
    MaskFile {
        target: PathBuf,
        null: PathBuf,
    },
    /// Hide a directory behind an empty read-only tmpfs (if it exists).
    MaskDir {
        target: PathBuf,
    },
    /// [`Step::ReadOnlyBind`] when the path exists (it is known only once /proc is mounted).
    ReadOnlyIfPresent {
        target: PathBuf,
    },
    /// Makes an existing mount read-only (this mount only: its submounts keep their flags).
    RemountReadOnly {
        target: PathBuf,
    },
    /// A bind or tmpfs at a path of the container, resolved inside the root (`mount_in`).
    InRoot(InitMount),
}

/// Files of /proc that leak the host's kernel state (Docker's masked paths).
const MASKED_FILES: &[&str] = &[
    "proc/interrupts",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
];

const MASKED_DIRS: &[&str] = &[
    "proc/acpi",
    "proc/asound",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

/// Read-only beyond /proc/sys and /proc/sysrq-trigger.
const READ_ONLY: &[&str] = &["proc/bus", "proc/fs", "proc/irq"];

/// Character devices every container gets, as Docker's default set: (name, major, minor).
pub const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

const DEV_LINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("pts/ptmx", "ptmx"),
];

/// Escapes a path for overlayfs's comma- and colon-separated option string.
pub(crate) fn overlay_escape(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        if matches!(c, ',' | ':' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The overlay's mount data: `lower` top-most first, or with a user namespace the idmapped
/// copies of them attached below its `layers_dir`, read with `user.overlay.*` xattrs.
pub(crate) fn overlay_data(
    lower: &[PathBuf],
    userns: Option<&crate::userns::UsernsSpec>,
    upper: &Path,
    work: &Path,
) -> String {
    let lower: Vec<String> = match userns {
        Some(userns) => (0..lower.len())
            .map(|n| overlay_escape(&userns.layers_dir.join(n.to_string())))
            .collect(),
        None => lower.iter().map(|p| overlay_escape(p)).collect(),
    };
    let userxattr = if userns.is_some() { ",userxattr" } else { "" };
    format!(
        "lowerdir={},upperdir={},workdir={}{userxattr}",
        lower.join(":"),
        overlay_escape(upper),
        overlay_escape(work)
    )
}

pub fn plan(spec: &InitSpec) -> Vec<Step> {
    let root = &spec.rootfs;
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let mut steps = vec![
        Step::Mount {
            source: "overlay".into(),
            target: root.clone(),
            fstype: Some("overlay"),
            flags: MsFlags::empty(),
            data: Some(overlay_data(
                &spec.lower,
                spec.userns.as_ref(),
                &spec.upper,
                &spec.work,
            )),
        },
        Step::Mkdir {
            path: at("proc"),
            mode: 0o555,
        },
        Step::Mount {
            source: "proc".into(),
            target: at("proc"),
            fstype: Some("proc"),
            flags: nosuid_nodev_noexec,
            data: None,
        },
        Step::ReadOnlyBind {
            target: at("proc/sys"),
        },
        Step::ReadOnlyBind {
            target: at("proc/sysrq-trigger"),
        },
        Step::Mkdir {
            path: at("sys"),
            mode: 0o555,
        },
        Step::Mount {
            source: "sysfs".into(),
            target: at("sys"),
            fstype: Some("sysfs"),
            flags: nosuid_nodev_noexec | MsFlags::MS_RDONLY,
            data: None,
        },
        Step::Mkdir {
            path: at("dev"),
            mode: 0o755,
        },
        Step::Mount {
            source: "tmpfs".into(),
            target: at("dev"),
            fstype: Some("tmpfs"),
            flags: MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
            data: Some("mode=755,size=65536k".into()),
        },
    ];
    for &(name, major, minor) in DEVICES {
        let path = at(&format!("dev/{name}"));
        if spec.userns.is_some() {
            steps.push(Step::Touch { path: path.clone() });
            steps.push(Step::Mount {
                source: format!("/dev/{name}"),
                target: path,
                fstype: None,
                flags: MsFlags::MS_BIND,
                data: None,
            });
        } else {
            steps.push(Step::CharDevice { path, major, minor });
        }
    }
    for &(target, name) in DEV_LINKS {
        steps.push(Step::Symlink {
            target,
            link: at(&format!("dev/{name}")),
        });
    }
    steps.extend([
        Step::Mkdir {
            path: at("dev/pts"),
            mode: 0o755,
        },
        Step::Mount {
            source: "devpts".into(),
            target: at("dev/pts"),
            fstype: Some("devpts"),
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            data: Some("newinstance,ptmxmode=0666,mode=0620,gid=5".into()),
        },
        Step::Mkdir {
            path: at("dev/shm"),
            mode: 0o1777,
        },
        Step::Mount {
            source: "shm".into(),
            target: at("dev/shm"),
            fstype: Some("tmpfs"),
            flags: nosuid_nodev_noexec,
            data: Some("mode=1777,size=65536k".into()),
        },
        Step::Mkdir {
            path: at("dev/mqueue"),
            mode: 0o755,
        },
        Step::Mount {
            source: "mqueue".into(),
            target: at("dev/mqueue"),
            fstype: Some("mqueue"),
            flags: nosuid_nodev_noexec,
            data: None,
        },
        Step::Mkdir {
            path: at("etc"),
            mode: 0o755,
        },
    ]);
    // Before the root may turn read-only: missing destinations are made in it.
    steps.extend(spec.mounts.iter().cloned().map(Step::InRoot));
    if spec.read_only {
        // Last of the root's own changes: everything above needed it writable.
        steps.push(Step::RemountReadOnly {
            target: root.clone(),
        });
    }
    if !spec.privileges.privileged {
        let null = at("dev/null");
        for file in MASKED_FILES {
            steps.push(Step::MaskFile {
                target: at(file),
                null: null.clone(),
            });
        }
        for dir in MASKED_DIRS {
            steps.push(Step::MaskDir { target: at(dir) });
        }
        for dir in READ_ONLY {
            steps.push(Step::ReadOnlyIfPresent { target: at(dir) });
        }
    }
    for file in &spec.bind_files {
        steps.push(Step::InRoot(InitMount {
            target: file.target.clone(),
            what: MountWhat::Bind {
                source: file.source.clone(),
                copy_up: false,
            },
            read_only: false,
            propagation: Propagation::Rprivate,
            chown: None,
        }));
    }
    steps
}

/// `handed`: what the caller mounted for a user namespace: the idmapped image layers, attached
/// before the steps run, and the idmapped binds and volumes, used by the steps they are for.
pub fn apply(
    spec: &InitSpec,
    steps: &[Step],
    handed: crate::userns::Handed,
) -> Result<(), RootfsError> {
    // Nothing mounted from here on may propagate back to the host's mount namespace; the
    // host's mounts still reach the copies here (runc's default, rslave), which is what an
    // `rslave` bind shows. Every bind sets its own propagation (rprivate unless asked).
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| err("making a slave", Path::new("/"), e.into()))?;
    if let Some(storage) = &spec.storage {
        mount_storage(storage, &spec.upper, &spec.work)?;
    }
    if let Some(userns) = &spec.userns {
        for (n, layer) in handed.layers.iter().enumerate() {
            let target = userns.layers_dir.join(n.to_string());
            crate::sys::move_mount_to(layer.as_fd(), &target)
                .map_err(|e| err("attaching the idmapped layer at", &target, e))?;
        }
    }
    let mut trees = handed.trees;
    for step in steps {
        apply_step(step, &spec.rootfs, &mut trees)?;
    }
    Ok(())
}

/// Mounts the container's size-limited writable filesystem (an ext4 image on a loop device).
/// The mount lives in this mount namespace only and the loop device clears itself when the mount
/// goes, so neither can outlive the container.
pub(crate) fn mount_storage(
    storage: &crate::spec::Storage,
    upper: &Path,
    work: &Path,
) -> Result<(), RootfsError> {
    let (device, _open_until_mounted) = crate::sys::attach_loop(&storage.image)
        .map_err(|e| err("attaching a loop device to", &storage.image, e))?;
    mount(
        Some(&device),
        &storage.mountpoint,
        Some("ext4"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(|e| err("mounting", &storage.mountpoint, e.into()))?;
    for dir in [upper, work] {
        match fs::create_dir(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(err("creating", dir, e))
            }
            _ => {}
        }
    }
    Ok(())
}

fn err(action: &'static str, path: &Path, source: io::Error) -> RootfsError {
    RootfsError {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn apply_step(
    step: &Step,
    root: &Path,
    trees: &mut HashMap<String, OwnedFd>,
) -> Result<(), RootfsError> {
    match step {
        Step::InRoot(m) => {
            super::mount_in::apply(root, m, trees.remove(&m.target)).map_err(|message| {
                err(
                    "mount destination",
                    Path::new(&m.target),
                    io::Error::other(message),
                )
            })
        }
        Step::Mount {
            source,
            target,
            fstype,
            flags,
            data,
        } => mount(
            Some(source.as_str()),
            target,
            *fstype,
            *flags,
            data.as_deref(),
        )
        .map_err(|e| match (e, fstype) {
            // The kernel loads a file system's module on the first mount; ENODEV: none to load.
            (nix::errno::Errno::ENODEV, Some(fs)) => err(
                "mounting",
                target,
                io::Error::other(format!(
                    "the kernel has no {fs} file system, nor a module for it (modprobe {fs})"
                )),
            ),
            (e, _) => err("mounting", target, e.into()),
        }),
        // A path this kernel does not have (e.g. no sysrq support) needs no protecting.
        Step::ReadOnlyBind { target } if fs::symlink_metadata(target).is_err() => Ok(()),
        Step::MaskFile { target, null } => {
            if fs::symlink_metadata(target).is_err() {
                return Ok(());
            }
            // Only the real null device may be bound over a file of /proc.
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            let meta = fs::metadata(null).map_err(|e| err("checking", null, e))?;
            if !meta.file_type().is_char_device() || meta.rdev() != makedev(1, 3) {
                return Err(err(
                    "refusing to mask with",
                    null,
                    io::Error::other("not the null device (1:3)"),
                ));
            }
            mount(
                Some(null),
                target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| err("masking", target, e.into()))
        }
        Step::RemountReadOnly { target } => mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| err("making read-only", target, e.into())),
        Step::ReadOnlyIfPresent { target } => match target.exists() {
            true => apply_step(
                &Step::ReadOnlyBind {
                    target: target.clone(),
                },
                root,
                trees,
            ),
            false => Ok(()),
        },
        Step::MaskDir { target } => {
            if !target.is_dir() {
                return Ok(());
            }
            mount(
                Some("tmpfs"),
                target,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0"),
            )
            .map_err(|e| err("masking", target, e.into()))
        }
        Step::ReadOnlyBind { target } => mount(
            Some(target),
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .and_then(|()| {
            let ro = MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC;
            mount(None::<&str>, target, None::<&str>, ro, None::<&str>)
        })
        .map_err(|e| err("making read-only", target, e.into())),
        Step::Mkdir { path, mode } => match fs::DirBuilder::new().mode(*mode).create(path) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(err("creating", path, e)),
            _ => Ok(()),
        },
        Step::Touch { path } => {
            if fs::symlink_metadata(path).is_ok() {
                return Ok(());
            }
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .map(drop)
                .map_err(|e| err("creating", path, e))
        }
        Step::CharDevice { path, major, minor } => {
            mknod(
                path.as_path(),
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o666),
                makedev(*major, *minor),
            )
            .map_err(|e| err("creating device", path, e.into()))?;
            // mknod is subject to the umask; devices must be usable by every user.
            nix::sys::stat::fchmodat(
                None,
                path.as_path(),
                Mode::from_bits_truncate(0o666),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| err("setting mode of", path, e.into()))
        }
        Step::Symlink { target, link } => {
            symlink(target, link).map_err(|e| err("linking", link, e))
        }
    }
}

/// Makes `new_root` the root of this mount namespace and detaches the old root entirely.
pub fn pivot(new_root: &Path) -> Result<(), RootfsError> {
    nix::unistd::chdir(new_root).map_err(|e| err("entering", new_root, e.into()))?;
    // pivot_root(".", ".") stacks the old root on top of the new one (as runc does), so no
    // put_old directory is needed inside the image; unmounting "." then removes the old root.
    crate::sys::pivot_root(Path::new("."), Path::new("."))
        .map_err(|e| err("pivot_root into", new_root, e))?;
    umount2(".", MntFlags::MNT_DETACH)
        .map_err(|e| err("detaching the old root at", Path::new("/"), e.into()))?;
    nix::unistd::chdir("/").map_err(|e| err("entering", Path::new("/"), e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::BindFile;

    fn spec() -> InitSpec {
        InitSpec {
            id: "x".into(),
            hostname: "h".into(),
            lower: vec!["/img/a,b".into(), "/img/base".into()],
            upper: "/c/upper".into(),
            work: "/c/work".into(),
            rootfs: "/c/rootfs".into(),
            bind_files: vec![BindFile {
                source: "/c/hosts".into(),
                target: "/etc/hosts".into(),
            }],
            storage: None,
            args: vec!["sh".into()],
            env: vec![],
            cwd: "/".into(),
            tty: false,
            die_with_parent: false,
            user: None,
            init: false,
            privileges: Default::default(),
            read_only: false,
            mounts: vec![],
            userns: None,
        }
    }

    #[test]
    fn overlay_comes_first_with_escaped_layers() {
        let steps = plan(&spec());
        let Step::Mount {
            target,
            fstype,
            data,
            ..
        } = &steps[0]
        else {
            panic!("{:?}", steps[0])
        };
        assert_eq!(target, Path::new("/c/rootfs"));
        assert_eq!(*fstype, Some("overlay"));
        assert_eq!(
            data.as_deref(),
            Some("lowerdir=/img/a\\,b:/img/base,upperdir=/c/upper,workdir=/c/work")
        );
    }

    #[test]
    fn in_a_user_namespace_layers_are_the_attached_copies_and_devices_are_bound() {
        let mut spec = spec();
        spec.userns = Some(crate::userns::UsernsSpec {
            map: crate::userns::IdMap {
                uid: 100000,
                gid: 100000,
                size: 65536,
            },
            layers_dir: "/r/layers".into(),
        });
        let steps = plan(&spec);
        let Step::Mount { data, .. } = &steps[0] else {
            panic!("{:?}", steps[0])
        };
        assert_eq!(
            data.as_deref(),
            Some("lowerdir=/r/layers/0:/r/layers/1,upperdir=/c/upper,workdir=/c/work,userxattr")
        );
        assert!(!steps.iter().any(|s| matches!(s, Step::CharDevice { .. })));
        assert!(steps.contains(&Step::Mount {
            source: "/dev/null".into(),
            target: "/c/rootfs/dev/null".into(),
            fstype: None,
            flags: MsFlags::MS_BIND,
            data: None,
        }));
    }

    #[test]
    fn proc_sys_and_sys_are_read_only() {
        let steps = plan(&spec());
        assert!(steps.contains(&Step::ReadOnlyBind {
            target: "/c/rootfs/proc/sys".into()
        }));
        let sys = steps.iter().find_map(|s| match s {
            Step::Mount { target, flags, .. } if target == Path::new("/c/rootfs/sys") => {
                Some(*flags)
            }
            _ => None,
        });
        assert!(sys.unwrap().contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn every_target_is_inside_the_rootfs_and_mounted_after_its_parent_exists() {
        let steps = plan(&spec());
        for step in &steps {
            let path = match step {
                Step::Mount { target, .. }
                | Step::ReadOnlyBind { target }
                | Step::MaskFile { target, .. }
                | Step::MaskDir { target }
                | Step::ReadOnlyIfPresent { target }
                | Step::RemountReadOnly { target } => target,
                Step::Mkdir { path, .. } | Step::Touch { path } | Step::CharDevice { path, .. } => {
                    path
                }
                Step::Symlink { link, .. } => link,
                Step::InRoot(m) => {
                    assert!(m.target.starts_with('/'), "{m:?}");
                    continue;
                }
            };
            assert!(path.starts_with("/c/rootfs"), "{path:?}");
        }
        let pos = |want: &Step| steps.iter().position(|s| s == want).unwrap();
        assert!(
            pos(&Step::Mkdir {
                path: "/c/rootfs/dev/pts".into(),
                mode: 0o755
            }) > 8
        );
        let hosts = steps
            .iter()
            .position(|s| matches!(s, Step::InRoot(m) if m.target == "/etc/hosts"))
            .unwrap();
        assert!(
            hosts
                > pos(&Step::Mkdir {
                    path: "/c/rootfs/etc".into(),
                    mode: 0o755
                })
        );
    }
}
