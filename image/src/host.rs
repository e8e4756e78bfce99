//! Builds an image out of the host's own binaries and the shared libraries they need
//! (`forge image build-host NAME [--bin PATH|NAME ...]`).
//!
//! Planning reads the host and produces a [`Plan`]: the list of directories, copied files,
//! symlinks and generated files of the root filesystem. Only then is the plan written into the
//! store's staging directory, which is removed if anything fails and published otherwise.
//!
//! Host paths keep their place in the image, symlinks included: every component of a copied path
//! is resolved one at a time, so `/bin -> usr/bin` (merged `/usr`) or
//! `/lib64/ld-linux-x86-64.so.2 -> ../lib/...` appear in the image as the same links, with
//! their targets copied too.
//!
//! Without `--bin` the image is busybox when a static busybox is installed (every applet a
//! symlink to `/bin/busybox`), otherwise bash and the coreutils basics.
//!
//! # Caveats
//!
//! Libraries loaded with `dlopen` (NSS modules, `gconv`, plugins) are not found, as with `ldd`;
//! ownership and timestamps are not preserved, file modes are.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use super::elf::{self, ElfError};
use super::{validate_name, Image, ImageConfig, ImageError, ImageStore};

/// The search path inside every image, and on the host when `PATH` is unset.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Copied into the image when no static busybox is available and no binaries are requested.
const BASIC_TOOLS: &[&str] = &[
    "bash", "sh", "ls", "cat", "echo", "ps", "sleep", "mkdir", "rm", "cp", "mv", "env", "id",
    "hostname", "true", "false", "grep", "head", "tail", "wc", "touch", "uname", "readlink", "dd",
];

/// Symlinks followed while resolving one path before giving up, as the kernel's limit.
const MAX_SYMLINKS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum HostImageError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Elf(#[from] ElfError),
    #[error("binary {name} not found on PATH ({path})")]
    NotOnPath { name: String, path: String },
    #[error("binary {path} not found")]
    NoSuchBinary { path: PathBuf },
    #[error("no binaries to copy: neither a static busybox nor bash is installed")]
    NothingToCopy,
    #[error("reading {path} on the host: {source}")]
    Host {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("running {path} --list-full: {source}")]
    Busybox {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} would be both a directory and a file or link in the image")]
    Conflict { path: PathBuf },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{error} (removing {path} afterwards also failed: {cleanup})")]
    Cleanup {
        path: PathBuf,
        error: Box<HostImageError>,
        #[source]
        cleanup: io::Error,
    },
}

/// Builds the image `name` from the host binaries `bins` (paths, or names looked up in `PATH`);
/// with none, a busybox or bash based default. Fails with [`ImageError::Exists`] if it exists.
/// Builds the default image on first use, when `name` is it and it does not exist yet; returns
/// whether it built it. Another Forge building it at the same moment is fine.
pub fn ensure_default_image(store: &ImageStore, name: &str) -> Result<bool, HostImageError> {
    if name != super::DEFAULT_IMAGE || store.exists(name) {
        return Ok(false);
    }
    match build_host_image(store, name, &[]) {
        Ok(_) => Ok(true),
        Err(_) if store.exists(name) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn build_host_image(
    store: &ImageStore,
    name: &str,
    bins: &[String],
) -> Result<Image, HostImageError> {
    build(store, name, bins, static_busybox)
}

/// [`build_host_image`] with the search for a static busybox as a parameter.
fn build(
    store: &ImageStore,
    name: &str,
    bins: &[String],
    find_busybox: fn() -> Option<PathBuf>,
) -> Result<Image, HostImageError> {
    validate_name(name)?;
    if store.exists(name) {
        return Err(ImageError::Exists {
            name: name.to_string(),
        }
        .into());
    }
    let (plan, config) = if !bins.is_empty() {
        plan_binaries(bins)?
    } else if let Some(busybox) = find_busybox() {
        plan_busybox(&busybox)?
    } else {
        tracing::info!("no static busybox on the host; building from bash and coreutils");
        plan_basic_tools()?
    };
    publish(store, name, &plan, config)
}

/// Writes `plan` into a staging directory and publishes it, or removes the staging directory.
fn publish(
    store: &ImageStore,
    name: &str,
    plan: &Plan,
    config: ImageConfig,
) -> Result<Image, HostImageError> {
    let staging = store.staging_dir(name)?;
    let built = plan.apply(&staging.join("rootfs")).and_then(|size| {
        let config = ImageConfig { size, ..config };
        Ok(store.publish(name, &staging, &config)?)
    });
    built.map_err(|error| match fs::remove_dir_all(&staging) {
        Err(cleanup) if cleanup.kind() != io::ErrorKind::NotFound => HostImageError::Cleanup {
            path: staging,
            error: Box::new(error),
            cleanup,
        },
        _ => error,
    })
}

/// Plans an image of the requested binaries, each also reachable through `PATH`.
fn plan_binaries(bins: &[String]) -> Result<(Plan, ImageConfig), HostImageError> {
    let paths = bins
        .iter()
        .map(|bin| find_binary(bin))
        .collect::<Result<Vec<_>, _>>()?;
    let mut plan = Plan::skeleton()?;
    plan.mirror_merged_usr()?;
    for path in &paths {
        plan.add_binary(path)?;
        let on_path = path
            .parent()
            .is_some_and(|dir| DEFAULT_PATH.split(':').any(|p| Path::new(p) == dir));
        if let (false, Some(file)) = (on_path, path.file_name()) {
            let link = plan.resolve(&Path::new("/usr/local/bin").join(file));
            if !plan.entries.contains_key(&link) {
                plan.add_generated(&link, Entry::Symlink(path.clone()))?;
            }
        }
    }
    let config = config_for(&plan, &paths[0]);
    Ok((plan, config))
}

/// Plans the busybox image: `/bin/busybox` and a symlink to it for every applet.
fn plan_busybox(busybox: &Path) -> Result<(Plan, ImageConfig), HostImageError> {
    let host_err = |source| HostImageError::Host {
        path: busybox.to_path_buf(),
        source,
    };
    let real = fs::canonicalize(busybox).map_err(host_err)?;
    let mode = fs::metadata(&real).map_err(host_err)?.permissions().mode() & 0o7777;
    let mut plan = Plan::skeleton()?;
    let target = PathBuf::from("/bin/busybox");
    plan.add_generated(&target, Entry::Copy { src: real, mode })?;
    for applet in busybox_applets(busybox)? {
        if applet != target {
            plan.add_generated(&applet, Entry::Symlink(target.clone()))?;
        }
    }
    let config = config_for(&plan, &target);
    Ok((plan, config))
}

/// Plans bash and the basic tools that the host has; `/bin/sh` is the host's or bash.
fn plan_basic_tools() -> Result<(Plan, ImageConfig), HostImageError> {
    let found: Vec<PathBuf> = BASIC_TOOLS
        .iter()
        .filter_map(|t| find_binary(t).ok())
        .collect();
    let Some(first) = found.first() else {
        return Err(HostImageError::NothingToCopy);
    };
    let mut plan = Plan::skeleton()?;
    plan.mirror_merged_usr()?;
    for path in &found {
        plan.add_binary(path)?;
    }
    // `sh` may have been found elsewhere on PATH; scripts want /bin/sh.
    let sh = plan.resolve(Path::new("/bin/sh"));
    if !plan.entries.contains_key(&sh) && Path::new("/bin/sh").is_file() {
        plan.add_binary(Path::new("/bin/sh"))?;
    }
    let bash = found
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == "bash"));
    if let (false, Some(bash)) = (plan.entries.contains_key(&sh), bash) {
        plan.add_generated(&sh, Entry::Symlink(bash.clone()))?;
    }
    let config = config_for(&plan, first);
    Ok((plan, config))
}

fn config_for(plan: &Plan, first_binary: &Path) -> ImageConfig {
    let has_sh = plan
        .entries
        .contains_key(&plan.resolve(Path::new("/bin/sh")));
    let cmd = if has_sh {
        Path::new("/bin/sh")
    } else {
        first_binary
    };
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    ImageConfig {
        env: vec![format!("PATH={DEFAULT_PATH}")],
        cmd: vec![cmd.to_string_lossy().into_owned()],
        working_dir: "/".into(),
        created,
        ..ImageConfig::default()
    }
}

/// `/bin/busybox` or busybox on `PATH`, if it is a static binary.
fn static_busybox() -> Option<PathBuf> {
    let path = Some(PathBuf::from("/bin/busybox"))
        .filter(|p| p.is_file())
        .or_else(|| find_binary("busybox").ok())?;
    match elf::dependencies(&path) {
        Ok(deps) if deps.is_empty() => Some(path),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "not using busybox");
            None
        }
    }
}

/// The applet paths `busybox --list-full` prints (`usr/bin/wget`), made absolute.
fn busybox_applets(busybox: &Path) -> Result<Vec<PathBuf>, HostImageError> {
    let err = |source| HostImageError::Busybox {
        path: busybox.to_path_buf(),
        source,
    };
    let output = Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(err)?;
    if !output.status.success() {
        return Err(err(io::Error::other(format!(
            "exited with {}",
            output.status
        ))));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let applets = text
        .lines()
        .map(|line| Path::new("/").join(line.trim().trim_start_matches('/')))
        .filter(|p| {
            p.components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        })
        .filter(|p| p != Path::new("/"))
        .collect();
    Ok(applets)
}

/// A path (anything containing '/') or a name looked up in the host's `PATH`.
fn find_binary(bin: &str) -> Result<PathBuf, HostImageError> {
    if bin.contains('/') {
        let path = std::path::absolute(bin).unwrap_or_else(|_| PathBuf::from(bin));
        return if path.is_file() {
            Ok(path)
        } else {
            Err(HostImageError::NoSuchBinary { path })
        };
    }
    let search = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_string());
    search
        .split(':')
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| Path::new(dir).join(bin))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
        .ok_or_else(|| HostImageError::NotOnPath {
            name: bin.to_string(),
            path: search,
        })
}

/// One thing to create in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir { mode: u32 },
    Copy { src: PathBuf, mode: u32 },
    Symlink(PathBuf),
    Write { data: Vec<u8>, mode: u32 },
}

/// The image's root filesystem as data: entries keyed by their absolute path in the image,
/// kept in the order they must be created (parents first).
#[derive(Debug, Default)]
struct Plan {
    order: Vec<PathBuf>,
    entries: HashMap<PathBuf, Entry>,
}

impl Plan {
    /// The directories and files every image has.
    fn skeleton() -> Result<Self, HostImageError> {
        let mut plan = Plan::default();
        for (dir, mode) in [
            ("/proc", 0o755),
            ("/sys", 0o755),
            ("/dev", 0o755),
            ("/etc", 0o755),
            ("/tmp", 0o1777),
            ("/root", 0o700),
            ("/home", 0o755),
            ("/run", 0o755),
            ("/var", 0o755),
        ] {
            plan.add(Path::new(dir), Entry::Dir { mode })?;
        }
        let passwd =
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
        let files = [
            ("/etc/passwd", passwd),
            ("/etc/group", "root:x:0:\nnogroup:x:65534:\n"),
            // Bind-mount targets for the container's own copies.
            ("/etc/hostname", ""),
            ("/etc/hosts", ""),
            ("/etc/resolv.conf", ""),
        ];
        for (path, text) in files {
            let data = text.as_bytes().to_vec();
            plan.add(Path::new(path), Entry::Write { data, mode: 0o644 })?;
        }
        Ok(plan)
    }

    fn add(&mut self, path: &Path, entry: Entry) -> Result<(), HostImageError> {
        match self.entries.get(path) {
            None => {
                self.order.push(path.to_path_buf());
                self.entries.insert(path.to_path_buf(), entry);
                Ok(())
            }
            Some(Entry::Dir { .. }) if matches!(entry, Entry::Dir { .. }) => Ok(()),
            Some(old) if *old == entry => Ok(()),
            Some(_) => Err(HostImageError::Conflict {
                path: path.to_path_buf(),
            }),
        }
    }

    /// Adds an entry that is not a host path, creating missing parents as `0755` directories.
    /// `path` must already be resolved through the plan's symlinks ([`Plan::resolve`]).
    fn add_generated(&mut self, path: &Path, entry: Entry) -> Result<(), HostImageError> {
        let mut parents: Vec<&Path> = path.ancestors().skip(1).collect();
        parents.pop(); // "/"
        for dir in parents.into_iter().rev() {
            self.add(dir, Entry::Dir { mode: 0o755 })?;
        }
        self.add(path, entry)
    }

    /// Mirrors the host's top-level symlinks of a merged `/usr` (`/bin -> usr/bin`, ...), so
    /// that `/bin/sh` and friends resolve in the image as they do on the host.
    fn mirror_merged_usr(&mut self) -> Result<(), HostImageError> {
        for dir in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            if Path::new(dir).is_symlink() && Path::new(dir).is_dir() {
                self.add_host_path(Path::new(dir))?;
            }
        }
        Ok(())
    }

    /// Adds a host binary and everything it needs to run.
    fn add_binary(&mut self, path: &Path) -> Result<(), HostImageError> {
        self.add_host_path(path)?;
        for dep in elf::dependencies(path)? {
            self.add_host_path(&dep)?;
        }
        Ok(())
    }

    /// Adds the host's `path` at the same place: each directory on the way, each symlink met
    /// (and then its target), and finally the file.
    fn add_host_path(&mut self, path: &Path) -> Result<(), HostImageError> {
        walk(path, |at, last| {
            let host_err = |source| HostImageError::Host {
                path: at.to_path_buf(),
                source,
            };
            let meta = fs::symlink_metadata(at).map_err(host_err)?;
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(at).map_err(host_err)?;
                self.add(at, Entry::Symlink(target.clone()))?;
                return Ok(Some(target));
            }
            let entry = if meta.is_dir() {
                Entry::Dir { mode }
            } else if last && meta.is_file() {
                Entry::Copy {
                    src: at.to_path_buf(),
                    mode,
                }
            } else {
                let kind = io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
                return Err(host_err(kind));
            };
            self.add(at, entry)?;
            Ok(None)
        })
        .map(drop)
    }

    /// Where `path` lands in the image once the planned symlinks among its parent directories
    /// are followed (the last component is not followed).
    fn resolve(&self, path: &Path) -> PathBuf {
        let lookup = |at: &Path, last: bool| match self.entries.get(at) {
            Some(Entry::Symlink(target)) if !last => Ok(Some(target.clone())),
            _ => Ok(None),
        };
        walk(path, lookup).unwrap_or_else(|_: HostImageError| path.to_path_buf())
    }

    /// Creates the planned tree below `rootfs` (which exists) and returns the total size of
    /// its regular files. Directories get their final modes last, so that a read-only one
    /// does not stop its children from being created.
    fn apply(&self, rootfs: &Path) -> Result<u64, HostImageError> {
        let mut size = 0;
        for path in &self.order {
            let dest = rootfs.join(path.strip_prefix("/").unwrap_or(path));
            let write_err = |source| HostImageError::Write {
                path: dest.clone(),
                source,
            };
            match &self.entries[path] {
                Entry::Dir { .. } => fs::create_dir(&dest).map_err(write_err)?,
                Entry::Copy { src, mode } => {
                    size += fs::copy(src, &dest).map_err(|source| HostImageError::Host {
                        path: src.clone(),
                        source,
                    })?;
                    set_mode(&dest, *mode).map_err(write_err)?;
                }
                Entry::Symlink(target) => symlink(target, &dest).map_err(write_err)?,
                Entry::Write { data, mode } => {
                    fs::write(&dest, data).map_err(write_err)?;
                    set_mode(&dest, *mode).map_err(write_err)?;
                    size += data.len() as u64;
                }
            }
        }
        for path in self.order.iter().rev() {
            if let Entry::Dir { mode } = self.entries[path] {
                let dest = rootfs.join(path.strip_prefix("/").unwrap_or(path));
                set_mode(&dest, mode)
                    .map_err(|source| HostImageError::Write { path: dest, source })?;
            }
        }
        Ok(size)
    }
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Walks absolute `path` one component at a time. `visit(prefix, is_last)` returns the target
/// when `prefix` is a symlink to follow; the walk then continues through the target (relative
/// to the link's directory, or to `/`). Returns the final resolved path.
fn walk(
    path: &Path,
    mut visit: impl FnMut(&Path, bool) -> Result<Option<PathBuf>, HostImageError>,
) -> Result<PathBuf, HostImageError> {
    let parts = |p: &Path| -> Vec<OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect()
    };
    let mut rest: VecDeque<OsString> = parts(path).into();
    let mut current = PathBuf::from("/");
    let mut followed = 0;
    while let Some(part) = rest.pop_front() {
        if part == ".." {
            current.pop();
            continue;
        }
        let next = current.join(&part);
        let Some(target) = visit(&next, rest.is_empty())? else {
            current = next;
            continue;
        };
        followed += 1;
        if followed > MAX_SYMLINKS {
            let source = io::Error::from_raw_os_error(libc::ELOOP);
            return Err(HostImageError::Host {
                path: path.to_path_buf(),
                source,
            });
        }
        if target.is_absolute() {
            current = PathBuf::from("/");
        }
        for part in parts(&target).into_iter().rev() {
            rest.push_front(part);
        }
    }
    Ok(current)
}

/// For the root-only tests in `image/tests/host.rs`; not an API.
#[doc(hidden)]
pub mod testing {
    use std::path::PathBuf;

    use super::{HostImageError, Image, ImageStore};

    pub const DEFAULT_PATH: &str = super::DEFAULT_PATH;

    pub fn static_busybox() -> Option<PathBuf> {
        super::static_busybox()
    }

    /// [`super::build_host_image`] with the search for a static busybox as a parameter.
    pub fn build(
        store: &ImageStore,
        name: &str,
        bins: &[String],
        find_busybox: fn() -> Option<PathBuf>,
    ) -> Result<Image, HostImageError> {
        super::build(store, name, bins, find_busybox)
    }
}

/// `leftovers`, which `tests/host.rs` uses too (the tests that build images as root are there).
#[cfg(test)]
#[path = "../tests/common/store.rs"]
mod test_store;

#[cfg(test)]
mod tests {
    use super::test_store::leftovers;
    use super::*;

    #[test]
    fn unknown_binary_fails_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::new(tmp.path());
        let bins = ["bash".to_string(), "forge-no-such-binary".into()];
        let err = build_host_image(&store, "x", &bins).unwrap_err();
        assert!(
            matches!(&err, HostImageError::NotOnPath { name, .. } if name == "forge-no-such-binary")
        );
        assert!(
            err.to_string()
                .starts_with("binary forge-no-such-binary not found on PATH"),
            "{err}"
        );
        let err = build_host_image(&store, "x", &["/no/such/bin".into()]).unwrap_err();
        assert_eq!(err.to_string(), "binary /no/such/bin not found");
        assert!(leftovers(&store).is_empty());
    }

    #[test]
    fn failure_while_writing_removes_the_staging_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::new(tmp.path());
        let mut plan = Plan::skeleton().unwrap();
        let src = tmp.path().join("vanished");
        plan.add_generated(Path::new("/bin/gone"), Entry::Copy { src, mode: 0o755 })
            .unwrap();
        let err = publish(&store, "x", &plan, ImageConfig::default()).unwrap_err();
        assert!(err.to_string().contains("vanished"), "{err}");
        assert!(leftovers(&store).is_empty(), "{:?}", leftovers(&store));
        assert!(!store.exists("x"));
    }

    #[test]
    fn plan_follows_its_own_symlinks() {
        let mut plan = Plan::default();
        plan.add_generated(Path::new("/usr/bin/sh"), Entry::Symlink("dash".into()))
            .unwrap();
        plan.add(Path::new("/bin"), Entry::Symlink("usr/bin".into()))
            .unwrap();
        plan.add(
            Path::new("/lib64"),
            Entry::Symlink("/usr/lib/../lib64".into()),
        )
        .unwrap();
        assert_eq!(plan.resolve(Path::new("/bin/sh")), Path::new("/usr/bin/sh"));
        assert_eq!(
            plan.resolve(Path::new("/lib64/ld.so")),
            Path::new("/usr/lib64/ld.so")
        );
        assert_eq!(
            plan.resolve(Path::new("/bin/../etc/x")),
            Path::new("/usr/etc/x")
        );
        let err = plan
            .add(Path::new("/bin"), Entry::Dir { mode: 0o755 })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/bin would be both a directory and a file or link in the image"
        );
        plan.add(Path::new("/loop"), Entry::Symlink("/loop".into()))
            .unwrap();
        assert_eq!(plan.resolve(Path::new("/loop/x")), Path::new("/loop/x"));
    }
}
