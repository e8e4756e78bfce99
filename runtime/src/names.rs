//! Container names and ids: generated names like Docker's, validation, and the name index.
//!
//! The index is a directory of symlinks `NAME -> ID`; `symlink(2)` fails when the name exists,
//! so two processes can never claim the same name.

use std::io;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum NameError {
    #[error("invalid container name {0:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit")]
    Invalid(String),
    #[error("container name {0:?} is already in use (remove it with `forge rm {0}` or choose another --name)")]
    InUse(String),
    #[error("recording container name {name:?}: {source}")]
    Io {
        name: String,
        #[source]
        source: io::Error,
    },
}

const ADJECTIVES: &[&str] = &[
    "agile", "bold", "brave", "calm", "clever", "eager", "fancy", "gentle", "happy", "keen",
    "lucid", "merry", "nimble", "proud", "quiet", "rapid", "sharp", "steady", "swift", "witty",
];
const NOUNS: &[&str] = &[
    "anvil", "bellows", "chisel", "ember", "file", "flux", "furnace", "hammer", "ingot", "kiln",
    "ladle", "mould", "ore", "poker", "quench", "rivet", "slag", "smelter", "tongs", "vise",
];

/// Docker's rule for container and volume names, `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, up to `max` bytes.
pub(crate) fn follows_docker_rule(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

pub fn validate(name: &str) -> Result<(), NameError> {
    if follows_docker_rule(name, 64) {
        Ok(())
    } else {
        Err(NameError::Invalid(name.to_string()))
    }
}

/// A fresh random hex id (64 characters, like Docker's).
pub fn new_id() -> String {
    let mut bytes = [0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        // Not cryptographic; uniqueness only. Time and pid differ between any two callers.
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        for (i, b) in seed.bytes().enumerate() {
            bytes[i % 32] ^= b;
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A name like `swift_anvil`, derived from the id's randomness.
pub fn generated(id: &str, attempt: usize) -> String {
    let n = usize::from_str_radix(&id[..8], 16)
        .unwrap_or(0)
        .wrapping_add(attempt * 7919);
    let base = format!(
        "{}_{}",
        ADJECTIVES[n % ADJECTIVES.len()],
        NOUNS[(n / ADJECTIVES.len()) % NOUNS.len()]
    );
    if attempt < 4 {
        base
    } else {
        format!("{base}_{attempt}")
    }
}

/// Claims `name` for `id` in the index directory `dir`.
pub fn claim(dir: &Path, name: &str, id: &str) -> Result<(), NameError> {
    validate(name)?;
    let io_err = |source| NameError::Io {
        name: name.to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io_err)?;
    match std::os::unix::fs::symlink(id, dir.join(name)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(NameError::InUse(name.to_string()))
        }
        Err(e) => Err(io_err(e)),
    }
}

/// The id that `name` points at, if any.
pub fn lookup(dir: &Path, name: &str) -> Option<String> {
    validate(name).ok()?;
    std::fs::read_link(dir.join(name))
        .ok()?
        .into_os_string()
        .into_string()
        .ok()
}

pub fn release(dir: &Path, name: &str) {
    if validate(name).is_ok() {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_can_be_claimed_once() {
        let tmp = tempfile::tempdir().unwrap();
        claim(tmp.path(), "web", "abc").unwrap();
        assert!(matches!(
            claim(tmp.path(), "web", "def"),
            Err(NameError::InUse(_))
        ));
        assert_eq!(lookup(tmp.path(), "web").as_deref(), Some("abc"));
        release(tmp.path(), "web");
        claim(tmp.path(), "web", "def").unwrap();
    }

    #[test]
    fn generated_names_are_valid_and_ids_differ() {
        let id = new_id();
        assert_eq!(id.len(), 64);
        assert_ne!(id, new_id());
        for attempt in 0..6 {
            validate(&generated(&id, attempt)).unwrap();
        }
        assert!(validate("../etc").is_err());
    }
}
