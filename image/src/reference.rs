//! Docker-compatible image references: `[registry/]repository[:tag][@digest]`.
//!
//! The grammar is the one of `github.com/distribution/reference`, normalised the way
//! `docker pull` does it:
//!
//! - the first `/`-separated component is a registry if it contains `.` or `:` or is `localhost`;
//!   otherwise the registry is `docker.io` (and `index.docker.io` is spelled `docker.io`);
//! - a one-component repository on `docker.io` lives under `library/` (`busybox` is
//!   `docker.io/library/busybox`);
//! - a reference with neither tag nor digest gets the tag `latest`; one with a digest keeps only
//!   what was written.
//!
//! ```text
//! reference      := name [ ":" tag ] [ "@" digest ]
//! name           := [ registry "/" ] path-component [ "/" path-component ]*
//! registry       := host [ ":" port ]
//! host           := domain-name | IPv4 | "[" IPv6 "]"
//! path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag            := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! digest         := "sha256:" [0-9a-f]{64} | "sha512:" [0-9a-f]{128}
//! ```
//!
//! The name (registry, `/` and repository, after normalisation) is at most 255 characters.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The registry that references without one name.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Another spelling of [`DEFAULT_REGISTRY`], normalised to it.
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
/// Where the API of [`DEFAULT_REGISTRY`] is served.
pub const DEFAULT_API_HOST: &str = "registry-1.docker.io";
/// The namespace of official images on [`DEFAULT_REGISTRY`].
const OFFICIAL_PREFIX: &str = "library/";
/// The tag of a reference that names neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// The longest name (registry, `/` and repository) allowed.
pub const NAME_MAX: usize = 255;
/// The longest tag allowed.
pub const TAG_MAX: usize = 128;
/// Store keys longer than this are shortened and completed by a hash of the reference.
const STORE_KEY_MAX: usize = 200;
/// How much of a long store key is kept in front of the hash.
const STORE_KEY_PREFIX: usize = 100;

/// A parsed and normalised image reference.
///
/// `tag` is `Some` unless the reference was written with a digest and no tag; a reference made by
/// [`Reference::parse`] always has a tag or a digest, or both.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The registry host, with its port when one was given: `docker.io`, `localhost:5000`,
    /// `[::1]:5000`.
    pub registry: String,
    /// The repository path within the registry: `library/busybox`, `user/app`.
    pub repository: String,
    /// The tag, without the `:`.
    pub tag: Option<String>,
    /// The digest, `algorithm:hex`, without the `@`.
    pub digest: Option<String>,
}

/// Why a text is not an image reference. Every message names the reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference \"\": the reference is empty")]
    Empty,
    #[error("invalid reference {text:?}: a name is missing before the tag or digest")]
    MissingName { text: String },
    #[error("invalid reference {text:?}: repository names must be lowercase")]
    Uppercase { text: String },
    #[error("invalid reference {text:?}: {reason}")]
    InvalidName { text: String, reason: String },
    #[error("invalid reference {text:?}: invalid registry {registry:?} ({reason})")]
    InvalidRegistry {
        text: String,
        registry: String,
        reason: &'static str,
    },
    #[error(
        "invalid reference {text:?}: the name is {len} characters long (at most {NAME_MAX} are allowed)"
    )]
    TooLong { text: String, len: usize },
    #[error(
        "invalid reference {text:?}: invalid tag {tag:?} (expected 1 to {TAG_MAX} letters, digits, '_', '.' and '-', not starting with '.' or '-')"
    )]
    InvalidTag { text: String, tag: String },
    #[error(
        "invalid reference {text:?}: invalid digest {digest:?} (expected sha256:<64 hex> or sha512:<128 hex>, lowercase)"
    )]
    InvalidDigest { text: String, digest: String },
    #[error(
        "invalid reference {text:?}: a 64-character hexadecimal string is an image ID, not a repository name"
    )]
    LooksLikeId { text: String },
}

impl Reference {
    /// Parses and normalises `text` (see the module documentation).
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        if text.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let shown = for_message(text);
        if text.len() == 64 && text.bytes().all(is_lower_hex) {
            return Err(ReferenceError::LooksLikeId { text: shown });
        }

        let (name_tag, digest) = match text.split_once('@') {
            Some((before, digest)) => (before, Some(digest)),
            None => (text, None),
        };
        // A ':' after the last '/' starts the tag; one before it belongs to the registry's port.
        let (name, tag) = match name_tag.rfind(':') {
            Some(colon) if name_tag[colon..].find('/').is_none() => {
                (&name_tag[..colon], Some(&name_tag[colon + 1..]))
            }
            _ => (name_tag, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::MissingName { text: shown });
        }

        let (registry, remainder) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first, rest)
            }
            _ => (DEFAULT_REGISTRY, name),
        };
        if let Err(reason) = check_registry(registry) {
            return Err(ReferenceError::InvalidRegistry {
                text: shown,
                registry: for_message(registry),
                reason,
            });
        }
        let registry = if registry == LEGACY_DEFAULT_REGISTRY {
            DEFAULT_REGISTRY
        } else {
            registry
        };

        for component in remainder.split('/') {
            check_component(component).map_err(|reason| match reason {
                ComponentError::Uppercase => ReferenceError::Uppercase {
                    text: shown.clone(),
                },
                ComponentError::Invalid(reason) => ReferenceError::InvalidName {
                    text: shown.clone(),
                    reason,
                },
            })?;
        }
        let repository = if registry == DEFAULT_REGISTRY && !remainder.contains('/') {
            format!("{OFFICIAL_PREFIX}{remainder}")
        } else {
            remainder.to_owned()
        };
        let len = registry.len() + 1 + repository.len();
        if len > NAME_MAX {
            return Err(ReferenceError::TooLong { text: shown, len });
        }

        if let Some(tag) = tag {
            if !is_valid_tag(tag) {
                return Err(ReferenceError::InvalidTag {
                    text: shown,
                    tag: for_message(tag),
                });
            }
        }
        if let Some(digest) = digest {
            if !is_valid_digest(digest) {
                return Err(ReferenceError::InvalidDigest {
                    text: shown,
                    digest: for_message(digest),
                });
            }
        }
        let tag = match (tag, digest) {
            (None, None) => Some(DEFAULT_TAG),
            (tag, _) => tag,
        };

        Ok(Reference {
            registry: registry.to_owned(),
            repository,
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    /// `registry/repository`, without tag or digest: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The full normalised form: `docker.io/library/busybox:latest`,
    /// `localhost:5000/app@sha256:…`, `docker.io/library/a:1@sha256:…`.
    pub fn canonical(&self) -> String {
        let mut out = self.name();
        self.push_tag_digest(&mut out);
        out
    }

    /// Docker's short form: `busybox:latest`, `user/app:1`, `127.0.0.1:5000/app:v1`. The
    /// `docker.io/` registry is dropped, and `library/` too when nothing else follows it.
    pub fn familiar(&self) -> String {
        let mut out = if self.registry == DEFAULT_REGISTRY {
            match self.repository.strip_prefix(OFFICIAL_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_owned(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        };
        self.push_tag_digest(&mut out);
        out
    }

    fn push_tag_digest(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
    }

    /// The host (and port) to send distribution API requests to: `registry-1.docker.io` for
    /// `docker.io`, the registry itself otherwise.
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            DEFAULT_API_HOST
        } else {
            &self.registry
        }
    }

    /// Whether the registry is on a loopback address (`localhost`, `127.0.0.0/8`, `[::1]`), where
    /// plain HTTP is allowed without configuration.
    pub fn is_insecure_default(&self) -> bool {
        let host = registry_host(&self.registry);
        if host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        if let Ok(v4) = host.parse::<Ipv4Addr>() {
            return v4.is_loopback();
        }
        if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            if let Ok(v6) = inner.parse::<Ipv6Addr>() {
                return v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback());
            }
        }
        false
    }

    /// What to ask the registry's manifest endpoint for: the digest when there is one, else the
    /// tag.
    pub fn reference_for_api(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// A name for the reference that is safe as one directory name in the local store.
    ///
    /// It is the canonical form with every byte other than `a-z`, `0-9`, `_`, `-` and a
    /// non-leading `.` written as `%XX` (uppercase hex): `docker.io%2Flibrary%2Fbusybox%3Alatest`.
    /// Distinct references give distinct keys, even on a case-insensitive file system, and a key
    /// never contains `/`, starts with `.` or is empty. A key that would exceed 200 bytes is cut to
    /// its first 100 bytes followed by `~` and the SHA-256 of the canonical form (`~` never occurs
    /// in a short key), which keeps it under the file name limit.
    pub fn store_key(&self) -> String {
        let canonical = self.canonical();
        let mut key = String::with_capacity(canonical.len() + 16);
        for (i, byte) in canonical.bytes().enumerate() {
            let plain = byte.is_ascii_lowercase()
                || byte.is_ascii_digit()
                || byte == b'_'
                || byte == b'-'
                || (byte == b'.' && i > 0);
            if plain {
                key.push(char::from(byte));
            } else {
                key.push('%');
                key.push(char::from(HEX_UPPER[usize::from(byte >> 4)]));
                key.push(char::from(HEX_UPPER[usize::from(byte & 0xf)]));
            }
        }
        if key.len() <= STORE_KEY_MAX {
            return key;
        }
        // Cut before an escape that would be split (the key is ASCII, so any index is a boundary).
        let mut cut = STORE_KEY_PREFIX;
        if let Some(percent) = key[cut.saturating_sub(2)..cut].find('%') {
            cut = cut - 2 + percent;
        }
        key.truncate(cut);
        key.push('~');
        for byte in <sha2::Sha256 as sha2::Digest>::digest(canonical.as_bytes()) {
            key.push(char::from(HEX_LOWER[usize::from(byte >> 4)]));
            key.push(char::from(HEX_LOWER[usize::from(byte & 0xf)]));
        }
        key
    }
}

impl fmt::Display for Reference {
    /// The canonical form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Reference::parse(text)
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// `text` as error messages show it: cut after 100 characters.
fn for_message(text: &str) -> String {
    const MAX: usize = 100;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

fn is_lower_hex(byte: u8) -> bool {
    byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)
}

fn is_lower_alnum(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit()
}

/// The host part of a registry, without its port: `localhost`, `127.0.0.1`, `[::1]`.
fn registry_host(registry: &str) -> &str {
    if registry.starts_with('[') {
        match registry.find(']') {
            Some(end) => &registry[..=end],
            None => registry,
        }
    } else {
        registry.split_once(':').map_or(registry, |(host, _)| host)
    }
}

fn check_registry(registry: &str) -> Result<(), &'static str> {
    let host = registry_host(registry);
    let port = &registry[host.len()..];
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("unterminated IPv6 address")?;
        inner
            .parse::<Ipv6Addr>()
            .map_err(|_| "invalid IPv6 address")?;
    } else {
        let valid_label = |label: &str| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
                && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if !host.split('.').all(valid_label) {
            return Err(
                "host names are letters, digits and '-' in '.'-separated labels, or an IP address",
            );
        }
    }
    if !port.is_empty() {
        let digits = port
            .strip_prefix(':')
            .ok_or("unexpected text after the host")?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("the port must be a number");
        }
        digits
            .parse::<u16>()
            .map_err(|_| "the port must be at most 65535")?;
    }
    Ok(())
}

enum ComponentError {
    /// The component would be valid in lowercase.
    Uppercase,
    Invalid(String),
}

fn check_component(component: &str) -> Result<(), ComponentError> {
    if component.is_empty() {
        return Err(ComponentError::Invalid(
            "the repository has an empty path component (a leading, trailing or double '/')"
                .to_owned(),
        ));
    }
    if is_valid_component(component.as_bytes()) {
        return Ok(());
    }
    if component.bytes().any(|b| b.is_ascii_uppercase())
        && is_valid_component(component.to_ascii_lowercase().as_bytes())
    {
        return Err(ComponentError::Uppercase);
    }
    Err(ComponentError::Invalid(format!(
        "invalid repository path component {:?} (expected lowercase letters and digits separated by '.', '_', '__' or '-')",
        for_message(component)
    )))
}

/// `[a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*`
fn is_valid_component(bytes: &[u8]) -> bool {
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && is_lower_alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// `[A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}`
fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    !bytes.is_empty()
        && bytes.len() <= TAG_MAX
        && word(&bytes[0])
        && bytes[1..]
            .iter()
            .all(|b| word(b) || *b == b'.' || *b == b'-')
}

/// `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>`.
fn is_valid_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len && hex.bytes().all(is_lower_hex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const D256: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn d512() -> String {
        format!("sha512:{}", "0123456789abcdef".repeat(8))
    }

    #[test]
    fn good_references_normalise_like_docker() {
        let d512 = d512();
        // (input, canonical, familiar)
        let cases: Vec<(String, String, String)> = vec![
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
            ),
            (
                "library/alpine:3.20",
                "docker.io/library/alpine:3.20",
                "alpine:3.20",
            ),
            (
                "docker.io/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "index.docker.io/library/busybox:1",
                "docker.io/library/busybox:1",
                "busybox:1",
            ),
            (
                "index.docker.io/user/app",
                "docker.io/user/app:latest",
                "user/app:latest",
            ),
            ("user/app", "docker.io/user/app:latest", "user/app:latest"),
            ("user/app:1", "docker.io/user/app:1", "user/app:1"),
            (
                "docker.io/library/a/b",
                "docker.io/library/a/b:latest",
                "library/a/b:latest",
            ),
            ("ghcr.io/x/y:1.0", "ghcr.io/x/y:1.0", "ghcr.io/x/y:1.0"),
            (
                "127.0.0.1:5000/a/b:v1",
                "127.0.0.1:5000/a/b:v1",
                "127.0.0.1:5000/a/b:v1",
            ),
            (
                "127.0.0.1:5000/app:v1",
                "127.0.0.1:5000/app:v1",
                "127.0.0.1:5000/app:v1",
            ),
            (
                "localhost/app",
                "localhost/app:latest",
                "localhost/app:latest",
            ),
            (
                "localhost",
                "docker.io/library/localhost:latest",
                "localhost:latest",
            ),
            (
                "localhost:5000",
                "docker.io/library/localhost:5000",
                "localhost:5000",
            ),
            (
                "[::1]:5000/app:v1",
                "[::1]:5000/app:v1",
                "[::1]:5000/app:v1",
            ),
            (
                "[fe80::1]/app",
                "[fe80::1]/app:latest",
                "[fe80::1]/app:latest",
            ),
            (
                "Registry.Example.COM/a/b",
                "Registry.Example.COM/a/b:latest",
                "Registry.Example.COM/a/b:latest",
            ),
            (
                "reg-1.example.com/a__b/c--d/e.f_g:Tag_1.0-rc",
                "reg-1.example.com/a__b/c--d/e.f_g:Tag_1.0-rc",
                "reg-1.example.com/a__b/c--d/e.f_g:Tag_1.0-rc",
            ),
            ("a:_", "docker.io/library/a:_", "a:_"),
        ]
        .into_iter()
        .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
        .chain([
            (
                format!("localhost:5000/app@{D256}"),
                format!("localhost:5000/app@{D256}"),
                format!("localhost:5000/app@{D256}"),
            ),
            (
                format!("busybox@{D256}"),
                format!("docker.io/library/busybox@{D256}"),
                format!("busybox@{D256}"),
            ),
            (
                format!("a:1@{D256}"),
                format!("docker.io/library/a:1@{D256}"),
                format!("a:1@{D256}"),
            ),
            (
                format!("ghcr.io/x/y@{d512}"),
                format!("ghcr.io/x/y@{d512}"),
                format!("ghcr.io/x/y@{d512}"),
            ),
            (
                "a".repeat(NAME_MAX - "docker.io/library/".len()),
                format!("docker.io/library/{}:latest", "a".repeat(237)),
                format!("{}:latest", "a".repeat(237)),
            ),
            (
                format!("busybox:{}", "t".repeat(TAG_MAX)),
                format!("docker.io/library/busybox:{}", "t".repeat(TAG_MAX)),
                format!("busybox:{}", "t".repeat(TAG_MAX)),
            ),
        ])
        .collect();

        for (input, canonical, familiar) in &cases {
            let reference =
                Reference::parse(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"));
            assert_eq!(&reference.canonical(), canonical, "canonical of {input:?}");
            assert_eq!(&reference.familiar(), familiar, "familiar of {input:?}");
            assert_eq!(reference.to_string(), *canonical);
            // Both forms parse back to the same reference.
            assert_eq!(Reference::parse(canonical).as_ref(), Ok(&reference));
            assert_eq!(familiar.parse::<Reference>().as_ref(), Ok(&reference));
        }
    }

    #[test]
    fn fields_tag_and_digest() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(
            r,
            Reference {
                registry: "docker.io".into(),
                repository: "library/busybox".into(),
                tag: Some("latest".into()),
                digest: None,
            }
        );
        assert_eq!(r.name(), "docker.io/library/busybox");
        assert_eq!(r.reference_for_api(), "latest");

        let r = Reference::parse(&format!("localhost:5000/app@{D256}")).unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "app");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D256));
        assert_eq!(r.reference_for_api(), D256);

        let r = Reference::parse(&format!("a:1@{D256}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.reference_for_api(), D256);
    }

    #[test]
    fn api_host_and_insecure_default() {
        let cases = [
            ("busybox", "registry-1.docker.io", false),
            ("index.docker.io/x/y", "registry-1.docker.io", false),
            ("ghcr.io/x/y", "ghcr.io", false),
            ("localhost/app", "localhost", true),
            ("localhost:5000/app", "localhost:5000", true),
            ("LOCALHOST:5000/app", "LOCALHOST:5000", true),
            ("127.0.0.1:5000/app", "127.0.0.1:5000", true),
            ("127.9.8.7/app", "127.9.8.7", true),
            ("[::1]:5000/app", "[::1]:5000", true),
            (
                "[::ffff:127.0.0.1]:5000/app",
                "[::ffff:127.0.0.1]:5000",
                true,
            ),
            ("[fe80::1]:5000/app", "[fe80::1]:5000", false),
            ("10.0.0.1:5000/app", "10.0.0.1:5000", false),
            ("localhost.example.com/app", "localhost.example.com", false),
            ("127.0.0.1.nip.io/app", "127.0.0.1.nip.io", false),
        ];
        for (input, host, insecure) in cases {
            let r = Reference::parse(input).unwrap();
            assert_eq!(r.api_host(), host, "api host of {input}");
            assert_eq!(
                r.is_insecure_default(),
                insecure,
                "insecure default of {input}"
            );
        }
    }

    #[test]
    fn bad_references_say_why() {
        use ReferenceError as E;
        type Kind = fn(&E) -> bool;
        let empty: Kind = |e| matches!(e, E::Empty);
        let missing: Kind = |e| matches!(e, E::MissingName { .. });
        let upper: Kind = |e| matches!(e, E::Uppercase { .. });
        let name: Kind = |e| matches!(e, E::InvalidName { .. });
        let registry: Kind = |e| matches!(e, E::InvalidRegistry { .. });
        let long: Kind = |e| matches!(e, E::TooLong { .. });
        let tag: Kind = |e| matches!(e, E::InvalidTag { .. });
        let digest: Kind = |e| matches!(e, E::InvalidDigest { .. });
        let id: Kind = |e| matches!(e, E::LooksLikeId { .. });

        let cases: Vec<(String, Kind)> = vec![
            ("".into(), empty),
            (":tag".into(), missing),
            (":".into(), missing),
            (format!("@{D256}"), missing),
            ("Foo".into(), upper),
            ("user/App".into(), upper),
            ("ghcr.io/X/y:1".into(), upper),
            ("busybox:".into(), tag),
            ("busybox:-x".into(), tag),
            ("busybox:.x".into(), tag),
            ("busybox:a+b".into(), tag),
            (format!("busybox:{}", "t".repeat(TAG_MAX + 1)), tag),
            ("busybox@".into(), digest),
            ("busybox@sha256:abc".into(), digest),
            (format!("busybox@{}", D256.to_uppercase()), digest),
            (format!("busybox@{}", D256.replace("sha256", "md5")), digest),
            (format!("busybox@{}0", D256), digest),
            (format!("busybox@{}", &d512()[..100]), digest),
            (format!("busybox@{D256}@{D256}"), digest),
            ("user/app/".into(), name),
            ("user//app".into(), name),
            ("/app".into(), name),
            ("busybox/".into(), name),
            ("ghcr.io/".into(), name),
            ("a_-b".into(), name),
            ("a___b".into(), name),
            ("a..b".into(), name),
            ("-a".into(), name),
            ("a-".into(), name),
            ("a b".into(), name),
            ("caf\u{e9}".into(), name),
            ("busybox:latest:1".into(), name),
            ("localhost:abc/app".into(), registry),
            ("localhost:/app".into(), registry),
            ("localhost:99999/app".into(), registry),
            ("ex_ample.com/app".into(), registry),
            ("-bad.com/app".into(), registry),
            ("bad..com/app".into(), registry),
            ("[::1/app".into(), registry),
            ("[zz::1]:5000/app".into(), registry),
            ("[::1]x/app".into(), registry),
            ("a".repeat(NAME_MAX - "docker.io/library/".len() + 1), long),
            ("a".repeat(300), long),
            (format!("ghcr.io/{}", "a/".repeat(130) + "a"), long),
            ("0123456789abcdef".repeat(4), id),
        ];
        for (input, kind) in &cases {
            match Reference::parse(input) {
                Ok(r) => panic!("{input:?} should be rejected, parsed as {r:?}"),
                Err(e) => {
                    assert!(kind(&e), "{input:?} gave the wrong error: {e:?}");
                    if !input.is_empty() {
                        let message = e.to_string();
                        assert!(message.starts_with("invalid reference \""), "{message}");
                        assert!(message.len() < 600, "{message}");
                    }
                }
            }
        }
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            Reference::parse("Foo").unwrap_err().to_string(),
            "invalid reference \"Foo\": repository names must be lowercase"
        );
        assert_eq!(
            Reference::parse("").unwrap_err().to_string(),
            "invalid reference \"\": the reference is empty"
        );
        let e = Reference::parse("busybox@sha256:abc")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid digest \"sha256:abc\""), "{e}");
        assert!(e.contains("expected sha256:<64 hex>"), "{e}");
        let e = Reference::parse("busybox:-x").unwrap_err().to_string();
        assert!(e.contains("invalid tag \"-x\""), "{e}");
        let e = Reference::parse(&"a".repeat(1000)).unwrap_err().to_string();
        assert!(e.contains("1018 characters long"), "{e}");
        assert!(e.len() < 300, "long input is cut in messages: {e}");
    }

    fn assert_safe_key(key: &str) {
        assert!(!key.is_empty());
        // Every escape is whole, also where a long key was cut.
        let bytes = key.as_bytes();
        for (i, _) in key.match_indices('%') {
            assert!(
                bytes.len() > i + 2 && bytes[i + 1..i + 3].iter().all(|b| HEX_UPPER.contains(b)),
                "{key} has a broken escape at {i}"
            );
        }
        assert!(key.len() <= STORE_KEY_MAX, "{key} is too long");
        assert!(!key.starts_with('.'), "{key}");
        assert!(key != "." && key != "..");
        assert!(
            key.bytes().all(|b| b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || b"_-.%~ABCDEF".contains(&b)),
            "{key} has unsafe characters"
        );
    }

    #[test]
    fn store_keys_are_safe_and_distinct() {
        let inputs: Vec<String> = [
            "busybox",
            "busybox:latest",
            "busybox:Latest",
            "busybox:1",
            "library/busybox:1.0",
            "busybox:1_0",
            "busybox:1-0",
            "user/app",
            "user/app:1",
            "user_app",
            "user__app",
            "user.app",
            "user-app",
            "user/app/x",
            "user/app_x",
            "localhost/app",
            "localhost:5000/app",
            "localhost:5000/app:5000",
            "127.0.0.1:5000/a/b:v1",
            "127.0.0.1:5000/a_b:v1",
            "127.0.0.1:5000/a/b_v1",
            "[::1]:5000/app",
            "ghcr.io/x/y:1.0",
            "GHCR.io/x/y:1.0",
            "ghcr.io/x/y:1.0a",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            format!("busybox@{D256}"),
            format!("busybox:latest@{D256}"),
            format!("busybox@{}", d512()),
            format!("ghcr.io/{}:{}@{}", "a".repeat(240), "t".repeat(128), d512()),
            format!("ghcr.io/{}:{}@{}", "a".repeat(240), "u".repeat(128), d512()),
            format!("ghcr.io/{}:{}", "a".repeat(240), "t".repeat(128)),
            format!("ghcr.io/{}", "a/".repeat(100) + "a"),
            format!("ghcr.io/{}", "a/".repeat(100) + "b"),
        ])
        .collect();

        let mut hashed = 0;
        let mut by_key = HashSet::new();
        let mut by_canonical = HashSet::new();
        for input in &inputs {
            let r = Reference::parse(input).unwrap();
            let key = r.store_key();
            assert_safe_key(&key);
            if key.contains('~') {
                hashed += 1;
                assert_eq!(key.len(), key.find('~').unwrap() + 1 + 64, "{key}");
            }
            // Distinct references get distinct keys; the same reference the same key, also when
            // compared without case.
            let new_reference = by_canonical.insert(r.canonical());
            let new_key = by_key.insert(key.to_ascii_lowercase());
            assert_eq!(new_reference, new_key, "{input:?} -> {key}");
        }
        assert_eq!(hashed, 5, "long references get hashed keys");
        assert_eq!(
            Reference::parse("busybox").unwrap().store_key(),
            "docker.io%2Flibrary%2Fbusybox%3Alatest"
        );
        assert_eq!(
            Reference::parse("busybox").unwrap().store_key(),
            Reference::parse("docker.io/library/busybox:latest")
                .unwrap()
                .store_key()
        );
    }

    #[test]
    fn store_key_of_hand_made_references_is_safe() {
        let r = Reference {
            registry: ".hidden".into(),
            repository: "../../etc".into(),
            tag: None,
            digest: None,
        };
        let key = r.store_key();
        assert_safe_key(&key);
        assert_eq!(key, "%2Ehidden%2F..%2F..%2Fetc");
        assert_eq!(r.reference_for_api(), "latest");
    }
}
