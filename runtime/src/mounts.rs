//! `-v`/`--volume` and `--mount`: a container's binds, volumes and tmpfs mounts, read from the
//! user's words into [`Mount`]s with Docker's meaning. Plain code, no I/O: what the paths name on
//! the host is checked when the container is created ([`crate::Runtime::create`]), and the
//! destinations are resolved inside the container's root by its init (`init/mount_in.rs`).
//!
//! # Caveats
//!
//! `--mount` fields are split at every comma: Docker's CSV quoting (`"src=a,b"`) is not read.
//! Stricter than Docker: `nocopy` on a bind and a destination in or over `/proc` or `/sys` (runc
//! refuses most of those too, since CVE-2019-19921) are refused. Podman's `U` is read: the
//! source is handed to the container's user at each start.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What is mounted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// A host file or directory, with the mounts below it.
    Bind,
    /// A named or anonymous volume of the data root.
    #[default]
    Volume,
    Tmpfs,
}

/// How mount and unmount events travel between the bind and its source (`mount --make-*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Propagation {
    #[default]
    Rprivate,
    Private,
    Rslave,
    Slave,
    Rshared,
    Shared,
}

impl Propagation {
    const NAMES: [(&'static str, Propagation); 6] = [
        ("rprivate", Self::Rprivate),
        ("private", Self::Private),
        ("rslave", Self::Rslave),
        ("slave", Self::Slave),
        ("rshared", Self::Rshared),
        ("shared", Self::Shared),
    ];

    /// `rslave` → [`Propagation::Rslave`].
    pub fn from_name(word: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(name, _)| *name == word)
            .map(|(_, p)| *p)
    }

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("rprivate", |(name, _)| name)
    }

    /// Whether it applies to the mounts below the bind too.
    pub fn recursive(self) -> bool {
        matches!(self, Self::Rprivate | Self::Rslave | Self::Rshared)
    }
}

/// One mount of a container, as its config records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: MountType,
    /// Bind: the absolute host path. Volume: its name (empty until an anonymous volume is named
    /// when the container is created). Tmpfs: empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Absolute path inside the container, without `.` or `..`.
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub propagation: Propagation,
    /// Volumes: do not copy the image's files at the destination into an empty volume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nocopy: bool,
    /// `-v HOST:CTR`: a missing host directory is created (`--mount type=bind` refuses it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_source: bool,
    /// A volume made for this container (`-v /ctr`, an image's VOLUME): `rm -v` and `--rm`
    /// remove it with the container.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
    /// Podman's `U`: the source's files are chowned to the container's user at each start.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub chown: bool,
    /// Tmpfs: its mount data (`size=64m,mode=1777`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tmpfs_options: String,
}

/// Why a `-v` or `--mount` is refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MountError {
    #[error("invalid {flag} {spec:?}: {reason}")]
    Invalid {
        flag: &'static str,
        spec: String,
        reason: String,
    },
    #[error("duplicate mount point {0}: it is the destination of two mounts")]
    Duplicate(String),
    #[error("invalid volume name {0:?}: use at least two letters, digits, '_', '.' and '-', starting with a letter or digit (a host path must be absolute or start with ./)")]
    BadVolumeName(String),
}

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (at least two characters;
/// at most 255, the longest directory name).
pub fn check_volume_name(name: &str) -> Result<(), MountError> {
    if name.len() >= 2 && crate::names::follows_docker_rule(name, 255) {
        Ok(())
    } else {
        Err(MountError::BadVolumeName(name.to_string()))
    }
}

/// A mount destination made canonical (`/a//b/` → `/a/b`), or why it is refused.
pub fn check_target(target: &str) -> Result<String, String> {
    if !target.starts_with('/') {
        return Err(format!(
            "the destination {target:?} must be an absolute path"
        ));
    }
    let mut parts = Vec::new();
    for part in Path::new(target).components() {
        match part {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                return Err(format!("the destination {target:?} must not contain '..'"))
            }
            _ => {}
        }
    }
    let Some(first) = parts.first() else {
        return Err("the destination must not be '/'".into());
    };
    if first == "proc" || first == "sys" {
        return Err(format!(
            "the destination {target:?} is in /{first}, where Forge mounts nothing of the user's (runc's CVE-2019-19921)"
        ));
    }
    Ok(format!("/{}", parts.join("/")))
}

/// `-v [SOURCE:]TARGET[:OPTIONS]`. A SOURCE that is an absolute path (or starts with `.`,
/// relative to `base`) is a bind, anything else the name of a volume; without SOURCE the mount
/// is an anonymous volume.
pub fn parse_volume(spec: &str, base: &Path) -> Result<Mount, MountError> {
    let invalid = |reason: String| MountError::Invalid {
        flag: "-v",
        spec: spec.to_string(),
        reason,
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, options) = match parts[..] {
        [target] => ("", target, ""),
        [source, target]
            if !target.is_empty() && !target.starts_with('/') && parse_options(target).is_ok() =>
        {
            return Err(invalid(format!(
                "an anonymous volume takes no options: give it a name (NAME:{source}:{target})"
            )))
        }
        [source, target] => (source, target, ""),
        [source, target, options] => (source, target, options),
        _ => {
            return Err(invalid(
                "expected [HOST-PATH|NAME:]CONTAINER-PATH[:OPTIONS]".into(),
            ))
        }
    };
    let target = check_target(target).map_err(invalid)?;
    let mut mount = Mount {
        target,
        ..Mount::default()
    };
    if source.starts_with('/') || source.starts_with('.') {
        mount.kind = MountType::Bind;
        mount.source = host_path(source, base);
        mount.create_source = true;
    } else if !source.is_empty() {
        check_volume_name(source)?;
        mount.source = source.to_string();
    }
    let options = parse_options(options).map_err(invalid)?;
    mount.read_only = options.read_only;
    mount.propagation = options.propagation.unwrap_or_default();
    mount.nocopy = options.nocopy;
    mount.chown = options.chown;
    if mount.nocopy && mount.kind == MountType::Bind {
        return Err(invalid("nocopy applies to volumes, not to binds".into()));
    }
    Ok(mount)
}

/// What the OPTIONS of a `-v` say.
#[derive(Debug, Default)]
struct Options {
    read_only: bool,
    propagation: Option<Propagation>,
    nocopy: bool,
    chown: bool,
}

const OPTIONS_HELP: &str =
    "ro, rw, nocopy, z, Z, U, rprivate, private, rslave, slave, rshared, shared";

fn parse_options(text: &str) -> Result<Options, String> {
    let mut options = Options::default();
    let mut access: Option<&str> = None;
    for word in text.split(',').filter(|w| !w.is_empty()) {
        match word {
            "ro" | "rw" => {
                if access.is_some_and(|a| a != word) {
                    return Err("ro and rw contradict each other".into());
                }
                access = Some(word);
                options.read_only = word == "ro";
            }
            "nocopy" => options.nocopy = true,
            // SELinux relabelling: Forge has no SELinux support, as Docker on such hosts.
            "z" | "Z" => {}
            "U" => options.chown = true,
            other => match Propagation::from_name(other) {
                Some(_) if options.propagation.is_some() => {
                    return Err("more than one propagation mode".into())
                }
                Some(p) => options.propagation = Some(p),
                None => return Err(format!("unknown option {other:?} ({OPTIONS_HELP})")),
            },
        }
    }
    Ok(options)
}

/// An absolute host path, `.`-relative ones joined to `base`, made canonical without touching
/// the filesystem (`..` is kept: the host path is the user's own).
pub fn host_path(source: &str, base: &Path) -> String {
    let path = if source.starts_with('/') {
        PathBuf::from(source)
    } else {
        base.join(source)
    };
    crate::cp::plan::clean(&path).to_string_lossy().into_owned()
}

const MOUNT_KEYS: &str = "type, source, target, readonly, bind-propagation, volume-nocopy, tmpfs-size, tmpfs-mode, consistency";

/// `--mount type=bind|volume|tmpfs,src=…,dst=…[,readonly][,bind-propagation=…]
/// [,volume-nocopy][,tmpfs-size=…][,tmpfs-mode=…]`, as Docker reads it (type defaults to volume).
pub fn parse_mount(spec: &str, base: &Path) -> Result<Mount, MountError> {
    let invalid = |reason: String| MountError::Invalid {
        flag: "--mount",
        spec: spec.to_string(),
        reason,
    };
    let mut kind = MountType::Volume;
    let mut source = None;
    let mut target = None;
    let mut mount = Mount::default();
    // Which type each type-specific key needs, to refuse a mix after the type is known.
    let mut needs: Vec<(&str, MountType)> = Vec::new();
    let mut tmpfs = Vec::new();
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (field, None),
        };
        let value_of = || value.ok_or_else(|| invalid(format!("{key} needs a value ({key}=…)")));
        match key {
            "type" => {
                kind = match value_of()? {
                    "bind" => MountType::Bind,
                    "volume" => MountType::Volume,
                    "tmpfs" => MountType::Tmpfs,
                    other => {
                        return Err(invalid(format!(
                            "unknown type {other:?} (bind, volume or tmpfs)"
                        )))
                    }
                }
            }
            "source" | "src" => source = Some(value_of()?.to_string()),
            "destination" | "dst" | "target" => target = Some(value_of()?.to_string()),
            "readonly" | "ro" => mount.read_only = boolean(key, value).map_err(invalid)?,
            "bind-propagation" => {
                let word = value_of()?;
                mount.propagation = Propagation::from_name(word).ok_or_else(|| {
                    invalid(format!(
                        "unknown bind-propagation {word:?} (rprivate, private, rslave, slave, rshared, shared)"
                    ))
                })?;
                needs.push((key, MountType::Bind));
            }
            "volume-nocopy" => {
                mount.nocopy = boolean(key, value).map_err(invalid)?;
                needs.push((key, MountType::Volume));
            }
            "tmpfs-size" => {
                let size = value_of()?;
                if !is_size(size) {
                    return Err(invalid(format!(
                        "invalid tmpfs-size {size:?}: expected bytes, or a number with k, m or g"
                    )));
                }
                tmpfs.push(format!("size={size}"));
                needs.push((key, MountType::Tmpfs));
            }
            "tmpfs-mode" => {
                let mode = value_of()?;
                if mode.is_empty() || !u32::from_str_radix(mode, 8).is_ok_and(|m| m <= 0o7777) {
                    return Err(invalid(format!(
                        "invalid tmpfs-mode {mode:?}: expected an octal mode such as 1777"
                    )));
                }
                tmpfs.push(format!("mode={mode}"));
                needs.push((key, MountType::Tmpfs));
            }
            // macOS's bind consistency: meaningless on Linux, accepted and ignored as Docker does.
            "consistency" => {}
            other => return Err(invalid(format!("unknown key {other:?} ({MOUNT_KEYS})"))),
        }
    }
    if let Some((key, _)) = needs.iter().find(|(_, t)| *t != kind) {
        return Err(invalid(format!(
            "{key} does not apply to type={}",
            type_name(kind)
        )));
    }
    let target = target.ok_or_else(|| invalid("missing the destination (dst=…)".into()))?;
    mount.target = check_target(&target).map_err(invalid)?;
    mount.kind = kind;
    match (kind, source) {
        (MountType::Bind, None) => return Err(invalid("a bind needs a source (src=…)".into())),
        (MountType::Bind, Some(src)) if src.starts_with('/') || src.starts_with('.') => {
            mount.source = host_path(&src, base);
        }
        (MountType::Bind, Some(src)) => {
            return Err(invalid(format!(
                "the bind source {src:?} must be an absolute path (or start with ./)"
            )))
        }
        (MountType::Volume, Some(name)) => {
            check_volume_name(&name)?;
            mount.source = name;
        }
        (MountType::Volume, None) => {}
        (MountType::Tmpfs, Some(_)) => return Err(invalid("a tmpfs takes no source".into())),
        (MountType::Tmpfs, None) => {
            if !tmpfs.iter().any(|o| o.starts_with("mode=")) {
                tmpfs.push("mode=1777".into());
            }
            mount.tmpfs_options = tmpfs.join(",");
        }
    }
    Ok(mount)
}

fn type_name(kind: MountType) -> &'static str {
    match kind {
        MountType::Bind => "bind",
        MountType::Volume => "volume",
        MountType::Tmpfs => "tmpfs",
    }
}

/// A bare flag (`readonly`) is true; `=true|1|false|0` says.
fn boolean(key: &str, value: Option<&str>) -> Result<bool, String> {
    match value {
        None | Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(format!("invalid {key} value {other:?} (true or false)")),
    }
}

/// `1048576`, `64k`, `64m`, `1g`: what tmpfs's `size=` takes, percentages aside.
pub fn is_size(value: &str) -> bool {
    let digits = value.trim_end_matches(|c: char| "kKmMgG".contains(c));
    let suffix = &value[digits.len()..];
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && suffix.len() <= 1
}

/// Every `-v` and then every `--mount` of one container; no destination may be given twice,
/// nor be one of `others` (its `--tmpfs` paths).
pub fn parse_all(
    volumes: &[String],
    mounts: &[String],
    others: &[&str],
    base: &Path,
) -> Result<Vec<Mount>, MountError> {
    let mut parsed = Vec::new();
    for spec in volumes {
        parsed.push(parse_volume(spec, base)?);
    }
    for spec in mounts {
        parsed.push(parse_mount(spec, base)?);
    }
    check_distinct(&parsed, others)?;
    Ok(parsed)
}

/// Refuses a destination that two mounts share (the `--tmpfs` paths `others` included).
pub fn check_distinct(mounts: &[Mount], others: &[&str]) -> Result<(), MountError> {
    let mut seen: BTreeSet<String> = others
        .iter()
        .map(|p| check_target(p).unwrap_or_else(|_| p.to_string()))
        .collect();
    for mount in mounts {
        if !seen.insert(mount.target.clone()) {
            return Err(MountError::Duplicate(mount.target.clone()));
        }
    }
    Ok(())
}

/// The mounts in the order they are made: shallower destinations first, so that a mount
/// inside another one's destination lands on top of it (Docker sorts the same way).
pub fn in_mount_order<T>(mut mounts: Vec<T>, target: impl Fn(&T) -> &str) -> Vec<T> {
    mounts.sort_by_key(|m| target(m).split('/').filter(|p| !p.is_empty()).count());
    mounts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(spec: &str) -> Result<Mount, MountError> {
        parse_volume(spec, Path::new("/work/dir"))
    }

    fn m(spec: &str) -> Result<Mount, MountError> {
        parse_mount(spec, Path::new("/work/dir"))
    }

    fn reason(result: Result<Mount, MountError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn volume_flags_name_binds_volumes_and_anonymous_volumes() {
        let bind = v("/srv/site/:/usr/share/www:ro").unwrap();
        assert_eq!(bind.kind, MountType::Bind);
        assert_eq!(bind.source, "/srv/site");
        assert_eq!(bind.target, "/usr/share/www");
        assert!(bind.read_only && bind.create_source);
        let relative = v("./site/../conf:/etc/app").unwrap();
        assert_eq!(relative.source, "/work/dir/conf");
        let named = v("data:/var/lib/db:nocopy,rw,z").unwrap();
        assert!(!named.chown && v("data:/db:U,ro").unwrap().chown);
        assert_eq!(
            (
                named.kind,
                named.source.as_str(),
                named.nocopy,
                named.read_only
            ),
            (MountType::Volume, "data", true, false)
        );
        let anonymous = v("/cache//").unwrap();
        assert_eq!(
            (
                anonymous.kind,
                anonymous.source.as_str(),
                anonymous.target.as_str()
            ),
            (MountType::Volume, "", "/cache")
        );
        let slave = v("/a:/b:rslave,Z").unwrap();
        assert_eq!(slave.propagation, Propagation::Rslave);
        assert_eq!(v("/a:/b").unwrap().propagation, Propagation::Rprivate);
    }

    #[test]
    fn bad_volume_flags_say_what_is_wrong() {
        assert!(reason(v("data:rel")).contains("must be an absolute path"));
        assert!(reason(v("/data:ro")).contains("anonymous volume takes no options"));
        assert!(reason(v("a:/b:c:d")).contains("expected [HOST-PATH|NAME:]"));
        assert!(reason(v("/a:/b:rx")).contains("unknown option \"rx\""));
        assert!(reason(v("/a:/b:ro,rw")).contains("contradict"));
        assert!(reason(v("/a:/b:shared,slave")).contains("more than one propagation"));
        assert!(reason(v("/a:/b:nocopy")).contains("nocopy applies to volumes"));
        assert!(reason(v("/a:/b:U,X")).contains("unknown option \"X\""));
        assert!(reason(v("/a:/")).contains("must not be '/'"));
        assert!(reason(v("/a:/x/../y")).contains("'..'"));
        assert!(reason(v("bad!name:/x")).contains("invalid volume name \"bad!name\""));
        assert!(reason(v("x:/x")).contains("invalid volume name \"x\""));
        for target in ["/proc", "/proc/sys", "/sys/fs", "//proc/./x"] {
            let err = reason(v(&format!("/a:{target}")));
            assert!(
                err.contains("where Forge mounts nothing"),
                "{target}: {err}"
            );
        }
        assert!(v("/a:/process").is_ok());
    }

    #[test]
    fn mount_flags_follow_dockers_keys() {
        let bind = m("type=bind,src=/srv,dst=/www,readonly,bind-propagation=rshared").unwrap();
        assert_eq!(
            (bind.kind, bind.source.as_str(), bind.target.as_str()),
            (MountType::Bind, "/srv", "/www")
        );
        assert!(bind.read_only && !bind.create_source);
        assert_eq!(bind.propagation, Propagation::Rshared);
        let volume = m("source=data,target=/db,volume-nocopy,ro=false").unwrap();
        assert_eq!(volume.kind, MountType::Volume);
        assert!(volume.nocopy && !volume.read_only);
        let anonymous = m("destination=/cache").unwrap();
        assert_eq!(
            (anonymous.kind, anonymous.source.as_str()),
            (MountType::Volume, "")
        );
        let tmpfs = m("type=tmpfs,dst=/scratch,tmpfs-size=64m").unwrap();
        assert_eq!(tmpfs.tmpfs_options, "size=64m,mode=1777");
        let tmpfs = m("type=tmpfs,dst=/s,tmpfs-mode=700,consistency=cached").unwrap();
        assert_eq!(tmpfs.tmpfs_options, "mode=700");
    }

    #[test]
    fn bad_mount_flags_say_what_is_wrong() {
        assert!(reason(m("type=bind,src=/a")).contains("missing the destination"));
        assert!(reason(m("type=bind,dst=/a")).contains("needs a source"));
        assert!(reason(m("type=bind,src=rel,dst=/a")).contains("must be an absolute path"));
        assert!(reason(m("type=nfs,dst=/a")).contains("unknown type \"nfs\""));
        assert!(reason(m("type=bind,src=/a,dst=/b,colour=red")).contains("unknown key \"colour\""));
        assert!(reason(m("dst=rel")).contains("must be an absolute path"));
        assert!(reason(m("type=tmpfs,src=x,dst=/a")).contains("takes no source"));
        assert!(
            reason(m("type=volume,dst=/a,tmpfs-size=1m")).contains("does not apply to type=volume")
        );
        assert!(reason(m("type=bind,src=/a,dst=/b,volume-nocopy")).contains("does not apply"));
        assert!(reason(m("type=tmpfs,dst=/a,tmpfs-size=lots")).contains("tmpfs-size \"lots\""));
        assert!(reason(m("type=tmpfs,dst=/a,tmpfs-mode=999")).contains("tmpfs-mode \"999\""));
        assert!(reason(m("type=bind,src=/a,dst=/b,bind-propagation=up")).contains("\"up\""));
        assert!(reason(m("dst=/a,readonly=maybe")).contains("\"maybe\""));
        assert!(reason(m("type,dst=/a")).contains("type needs a value"));
        assert!(reason(m("src=-x,dst=/a")).contains("invalid volume name"));
        assert!(reason(m("type=bind,src=/a,dst=/sys")).contains("/sys"));
    }

    #[test]
    fn destinations_are_distinct_and_made_shallow_first() {
        let base = Path::new("/");
        let both = parse_all(&["a1:/x".into()], &["dst=/x/".into()], &[], base);
        assert_eq!(both, Err(MountError::Duplicate("/x".into())));
        let tmpfs = parse_all(&["a1:/run".into()], &[], &["/run"], base);
        assert_eq!(tmpfs, Err(MountError::Duplicate("/run".into())));
        let ordered = in_mount_order(vec!["/a/b/c", "/a", "/z/y", "/b"], |s| s);
        assert_eq!(ordered, vec!["/a", "/b", "/z/y", "/a/b/c"]);
    }

    #[test]
    fn volume_names_follow_dockers_rule() {
        for ok in ["data", "a1", "my_vol.2-x", "0abc"] {
            assert!(check_volume_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "-x", ".x", "_x", "a/b", "a b", "ü1"] {
            assert!(check_volume_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn propagation_names_round_trip() {
        for (name, p) in Propagation::NAMES {
            assert_eq!(Propagation::from_name(name), Some(p));
            assert_eq!(p.name(), name);
        }
        assert!(Propagation::Rslave.recursive() && !Propagation::Slave.recursive());
    }
}
