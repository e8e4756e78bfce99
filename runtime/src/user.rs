//! `--user NAME|UID[:GROUP|GID]`: resolved against the image's own `/etc/passwd` and
//! `/etc/group` when the container is created, as Docker does; the init process then drops to
//! that user right before it executes the command.

use serde::{Deserialize, Serialize};

use forge_image::Image;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the user's memberships in the image's /etc/group).
    #[serde(default)]
    pub groups: Vec<u32>,
    /// The user's home directory from /etc/passwd, for `HOME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("invalid user {0:?}: expected NAME|UID[:GROUP|GID]")]
    Malformed(String),
    #[error("user {user:?} not found in the image's /etc/passwd")]
    NoSuchUser { user: String },
    #[error("group {group:?} not found in the image's /etc/group")]
    NoSuchGroup { group: String },
}

/// Reads `etc/NAME` of an image (its top-most layer that has it) without following a symlink
/// out of it: a missing or symlinked file reads as empty, so names cannot be resolved but
/// numbers still can.
fn image_file(image: &Image, name: &str) -> String {
    let Some(path) = image.find(&format!("etc/{name}")) else {
        return String::new();
    };
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() => std::fs::read_to_string(&path).unwrap_or_default(),
        _ => String::new(),
    }
}

/// Resolves `spec` against the image's /etc/passwd and /etc/group.
pub fn resolve(image: &Image, spec: &str) -> Result<User, UserError> {
    resolve_in(
        &image_file(image, "passwd"),
        &image_file(image, "group"),
        spec,
    )
}

fn resolve_in(passwd: &str, group: &str, spec: &str) -> Result<User, UserError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    if !valid(user) || grp.is_some_and(|g| !valid(g)) {
        return Err(UserError::Malformed(spec.to_string()));
    }
    // name:password:uid:gid:gecos:home:shell
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let entry = entries
        .iter()
        .find(|f| f[0] == user || (user.parse::<u32>().is_ok() && f[2] == user));
    let (uid, primary, name, home) = match (entry, user.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse()
                .map_err(|_| UserError::Malformed(spec.into()))?,
            f[3].parse()
                .map_err(|_| UserError::Malformed(spec.into()))?,
            Some(f[0]),
            Some(f[5].to_string()),
        ),
        // A number with no entry: that uid, group 0, as Docker does.
        (None, Ok(uid)) => (uid, 0, None, None),
        (None, Err(_)) => {
            return Err(UserError::NoSuchUser {
                user: user.to_string(),
            })
        }
    };
    // name:password:gid:member,member
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    let gid = match grp {
        None => primary,
        Some(g) => match groups.iter().find(|f| f[0] == g) {
            Some(f) => f[2]
                .parse()
                .map_err(|_| UserError::Malformed(spec.into()))?,
            None => g.parse().map_err(|_| UserError::NoSuchGroup {
                group: g.to_string(),
            })?,
        },
    };
    let supplementary = match name {
        Some(name) => groups
            .iter()
            .filter(|f| f[3].split(',').any(|m| m == name))
            .filter_map(|f| f[2].parse().ok())
            .filter(|g| *g != gid)
            .collect(),
        None => Vec::new(),
    };
    Ok(User {
        uid,
        gid,
        groups: supplementary,
        home,
    })
}

/// Drops from root to `user`: supplementary groups first, then gid, then uid (the order that
/// still has the privilege for each step).
pub fn switch_to(user: &User) -> Result<(), String> {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    let groups: Vec<Gid> = user.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    setgroups(&groups).map_err(|e| format!("setting supplementary groups: {e}"))?;
    setgid(Gid::from_raw(user.gid)).map_err(|e| format!("setting gid {}: {e}", user.gid))?;
    setuid(Uid::from_raw(user.uid)).map_err(|e| format!("setting uid {}: {e}", user.uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwww:x:33:\nstaff:x:50:www,other\n";

    #[test]
    fn names_and_numbers_resolve_like_docker() {
        let www = resolve_in(PASSWD, GROUP, "www").unwrap();
        assert_eq!((www.uid, www.gid, www.groups.clone()), (33, 33, vec![50]));
        assert_eq!(www.home.as_deref(), Some("/var/www"));
        let by_uid = resolve_in(PASSWD, GROUP, "33:staff").unwrap();
        assert_eq!((by_uid.uid, by_uid.gid), (33, 50));
        let unknown_uid = resolve_in(PASSWD, GROUP, "1234").unwrap();
        assert_eq!((unknown_uid.uid, unknown_uid.gid), (1234, 0));
        assert_eq!(resolve_in("", "", "1000:1000").unwrap().gid, 1000);
    }

    #[test]
    fn unknown_names_and_bad_specs_are_errors() {
        assert!(matches!(
            resolve_in(PASSWD, GROUP, "nobody"),
            Err(UserError::NoSuchUser { .. })
        ));
        assert!(matches!(
            resolve_in(PASSWD, GROUP, "www:wheel"),
            Err(UserError::NoSuchGroup { .. })
        ));
        for bad in ["", ":", "a:b:c", "we ird", "1000:"] {
            assert!(resolve_in(PASSWD, GROUP, bad).is_err(), "{bad}");
        }
    }
}
