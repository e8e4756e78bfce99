//! The certificates a registry's HTTPS must chain to: the system's CA bundle (Debian's
//! ca-certificates), or the Mozilla roots built in when there is none, plus every `*.crt` in the
//! registry's own directory under certs.d — where Docker (`/etc/docker/certs.d/HOST:PORT/ca.crt`)
//! and Podman (`/etc/containers/certs.d`) look, so a private registry's CA set up for either
//! works for Forge too.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const CERTS_DIRS: &[&str] = &[
    "/etc/forge/certs.d",
    "/etc/containers/certs.d",
    "/etc/docker/certs.d",
];

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading CA certificates {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("CA certificates {path}: {message}")]
    Bad { path: PathBuf, message: String },
}

/// Where per-registry certificates live: `$FORGE_CERTS_DIR` alone when set, else Forge's,
/// Podman's and Docker's certs.d.
fn certs_dirs() -> Vec<PathBuf> {
    match std::env::var_os("FORGE_CERTS_DIR") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => CERTS_DIRS.iter().map(PathBuf::from).collect(),
    }
}

/// A client configuration that trusts the system's roots and `registry`'s own CAs.
pub fn client_config(registry: &str) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match std::fs::read(SYSTEM_BUNDLE) {
        // A certificate of the system bundle that rustls cannot use is skipped, not fatal.
        Ok(pem) => {
            roots.add_parsable_certificates(CertificateDer::pem_slice_iter(&pem).flatten());
        }
        Err(_) => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    for dir in certs_dirs() {
        add_registry_cas(&mut roots, &dir.join(registry))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Bad {
            path: PathBuf::from(SYSTEM_BUNDLE),
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Adds every certificate of every `*.crt` in `dir` (absent: nothing); a file that holds no
/// usable certificate is an error, so a misplaced key or a typo does not go unnoticed.
fn add_registry_cas(roots: &mut RootCertStore, dir: &Path) -> Result<(), TlsError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(TlsError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    files.sort();
    for path in files {
        let pem = std::fs::read(&path).map_err(|source| TlsError::Read {
            path: path.clone(),
            source,
        })?;
        let bad = |message: String| TlsError::Bad {
            path: path.clone(),
            message,
        };
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".to_string()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_certificate_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), "not a certificate\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let mut roots = RootCertStore::empty();
        let err = add_registry_cas(&mut roots, dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("ca.crt: no PEM certificate"),
            "{err}"
        );
        let absent = add_registry_cas(&mut roots, &dir.path().join("nope"));
        assert!(absent.is_ok());
    }
}
