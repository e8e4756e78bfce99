//! `forge pull`: the OCI distribution API. Manifests and indexes (the host's platform is picked),
//! OCI and Docker schema 2 media types, Bearer-token and basic authentication, plain HTTP for
//! loopback registries (and those in `FORGE_INSECURE_REGISTRIES`), HTTPS otherwise. Blobs are
//! verified while they stream into the store ([`Blobs::put_blob`]); layers download at once, a
//! thread each; a failed pull takes back everything it added.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use super::oci::{
    self, Assembled, Blobs, Descriptor, Index, Manifest, OciConfig, OciError, Platform,
    MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST,
};
use super::reference::Reference;
use super::tls;
use super::ImageStore;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("pulling {reference}: {message}")]
    Registry { reference: String, message: String },
    #[error("pulling {reference}: {source}")]
    Store {
        reference: String,
        #[source]
        source: OciError,
    },
}

/// What a pull reports as it goes; `layer` is the short digest (12 hex digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress<'a> {
    Started {
        layer: &'a str,
        size: u64,
    },
    /// `bytes` more of the layer arrived.
    Received {
        layer: &'a str,
        bytes: u64,
    },
    Done {
        layer: &'a str,
    },
    Unpacking,
}

impl Progress<'_> {
    /// The line a pull of `name` prints for this event where no progress bars are drawn
    /// (`forge pull` to a pipe, forge-supervise): when a layer starts and ends, and unpacking.
    pub fn plain_line(&self, name: &str) -> Option<String> {
        match self {
            Self::Started { layer, size } => {
                Some(format!("{name}: {layer}: downloading {size} bytes"))
            }
            Self::Done { layer } => Some(format!("{name}: {layer}: done")),
            Self::Unpacking => Some(format!("{name}: unpacking")),
            Self::Received { .. } => None,
        }
    }
}

/// A reader that reports every chunk to `progress`.
struct Counting<'a, R> {
    inner: R,
    layer: &'a str,
    progress: &'a (dyn Fn(Progress) + Sync),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(Progress::Received {
            layer: self.layer,
            bytes: n as u64,
        });
        Ok(n)
    }
}

/// What a pull did.
pub struct Pulled {
    pub name: String,
    pub digest: String,
    /// The manifest was already in the store (nothing downloaded).
    pub up_to_date: bool,
}

/// An authenticated conversation with one registry about one repository.
#[derive(Clone)]
struct Session {
    agent: ureq::Agent,
    base: String,
    repository: String,
    reference: String,
    /// `Authorization` header value, once known.
    auth: Option<String>,
    basic: Option<String>,
}

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Basic credentials for `host` from a Docker-format config.json (`auths.HOST.auth`).
fn credentials(host: &str) -> Option<String> {
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(auth_file()?).ok()?).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let wanted = [
        host.to_string(),
        format!("https://{host}"),
        format!("http://{host}"),
    ];
    let entry = auths
        .iter()
        .find(|(k, _)| wanted.iter().any(|w| w == k.trim_end_matches('/')))?;
    entry.1.get("auth")?.as_str().map(str::to_string)
}

/// Where credentials live: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn auth_file() -> Option<std::path::PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => Some(std::path::PathBuf::from(dir).join("config.json")),
        None => {
            Some(std::path::PathBuf::from(std::env::var_os("HOME")?).join(".docker/config.json"))
        }
    }
}

/// `forge login`: checks `user`/`password` against `registry` (its `/v2/` endpoint, through a
/// token realm when it has one) and stores them in the credentials file; returns its path.
pub fn login(registry: &str, user: &str, password: &str) -> Result<std::path::PathBuf, PullError> {
    use base64::Engine;
    let reference =
        Reference::parse(&format!("{registry}/login-check")).map_err(|e| PullError::Registry {
            reference: registry.to_string(),
            message: e.to_string(),
        })?;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut session = Session::new(&reference)?;
    session.reference = registry.to_string();
    session.basic = Some(basic.clone());
    let url = format!("{}/v2/", session.base);
    let agent = session.agent.clone();
    // Boxed: ureq's error carries a whole response.
    let check = |auth: Option<&str>| -> Result<(), Box<ureq::Error>> {
        let mut request = agent.get(&url);
        if let Some(auth) = auth {
            request = request.set("Authorization", auth);
        }
        request.call().map(|_| ()).map_err(Box::new)
    };
    match check(None).map_err(|e| *e) {
        Ok(()) => {}
        Err(ureq::Error::Status(401, response)) => {
            let challenge = response
                .header("WWW-Authenticate")
                .unwrap_or("")
                .to_string();
            session.authenticate(&challenge)?;
            let auth = session.auth.clone();
            match check(auth.as_deref()).map_err(|e| *e) {
                Ok(()) => {}
                Err(ureq::Error::Status(401, _)) => {
                    return Err(session.fail("login refused: wrong user name or password"))
                }
                Err(e) => return Err(session.fail(format!("checking the login: {e}"))),
            }
        }
        Err(e) => return Err(session.fail(format!("cannot reach {}: {e}", session.base))),
    }
    let path = auth_file()
        .ok_or_else(|| session.fail("no HOME or DOCKER_CONFIG for the credentials file"))?;
    let mut config: serde_json::Value = std::fs::read(&path)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    config["auths"][registry] = serde_json::json!({ "auth": basic });
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        std::io::Write::write_all(
            &mut file,
            &serde_json::to_vec_pretty(&config).expect("json"),
        )?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| session.fail(format!("writing {}: {e}", path.display())))?;
    Ok(path)
}

/// `bytes START-END/SIZE` → START.
fn range_start(content_range: &str) -> Option<u64> {
    let range = content_range.trim().strip_prefix("bytes ")?;
    range.split('-').next()?.parse().ok()
}

fn insecure(reference: &Reference) -> bool {
    reference.is_insecure_default()
        || std::env::var("FORGE_INSECURE_REGISTRIES")
            .unwrap_or_default()
            .split(',')
            .any(|h| !h.is_empty() && h == reference.registry)
}

/// `key="value"` pairs of a `WWW-Authenticate: Bearer ...` header.
fn challenge_params(header: &str) -> BTreeMap<String, String> {
    let rest = header
        .trim_start_matches("Bearer")
        .trim_start_matches("bearer");
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        let key: String = chars
            .by_ref()
            .skip_while(|c| *c == ',' || c.is_whitespace())
            .take_while(|c| *c != '=')
            .collect();
        if key.is_empty() {
            return params;
        }
        let value: String = if chars.peek() == Some(&'"') {
            chars.next();
            chars.by_ref().take_while(|c| *c != '"').collect()
        } else {
            chars.by_ref().take_while(|c| *c != ',').collect()
        };
        params.insert(key.trim().to_string(), value);
    }
}

impl Session {
    fn new(reference: &Reference) -> Result<Self, PullError> {
        let plain = insecure(reference);
        let mut agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(60))
            .redirects(5);
        if !plain {
            let tls = tls::client_config(&reference.registry).map_err(|e| PullError::Registry {
                reference: reference.familiar(),
                message: e.to_string(),
            })?;
            agent = agent.tls_config(tls);
        }
        let scheme = if plain { "http" } else { "https" };
        Ok(Self {
            agent: agent.build(),
            base: format!("{scheme}://{}", reference.api_host()),
            repository: reference.repository.clone(),
            reference: reference.familiar(),
            auth: None,
            basic: credentials(&reference.registry),
        })
    }

    fn fail(&self, message: impl Into<String>) -> PullError {
        PullError::Registry {
            reference: self.reference.clone(),
            message: message.into(),
        }
    }

    /// GETs `path` below `/v2/REPOSITORY/`, authenticating once when the registry asks to.
    fn get(&mut self, path: &str, accept: &str) -> Result<ureq::Response, PullError> {
        self.get_from(path, accept, 0)
    }

    /// GETs `path` from byte `from` on (a Range request; the registry may still send it all).
    fn get_from(
        &mut self,
        path: &str,
        accept: &str,
        from: u64,
    ) -> Result<ureq::Response, PullError> {
        let url = format!("{}/v2/{}/{path}", self.base, self.repository);
        for attempt in 0..2 {
            let mut request = self.agent.get(&url).set("Accept", accept);
            if let Some(auth) = &self.auth {
                request = request.set("Authorization", auth);
            }
            if from > 0 {
                request = request.set("Range", &format!("bytes={from}-"));
            }
            match request.call() {
                Ok(response) => return Ok(response),
                Err(ureq::Error::Status(401, response)) if attempt == 0 => {
                    let header = response.header("WWW-Authenticate").unwrap_or("").to_string();
                    self.authenticate(&header)?;
                }
                Err(ureq::Error::Status(401, _)) => {
                    return Err(self.fail(match self.basic {
                        Some(_) => "authentication refused: the credentials in config.json were not accepted",
                        None => "authentication required: add credentials for this registry to ~/.docker/config.json (auths)",
                    }))
                }
                Err(ureq::Error::Status(404, _)) => {
                    return Err(self.fail(format!("not found in the registry ({path})")))
                }
                Err(ureq::Error::Status(code, response)) => {
                    let body = response.into_string().unwrap_or_default();
                    return Err(self.fail(format!("registry answered {code}: {}", body.trim())));
                }
                Err(ureq::Error::Transport(t)) => {
                    return Err(self.fail(format!("cannot reach {}: {t}", self.base)))
                }
            }
        }
        unreachable!("the second attempt returns")
    }

    /// Answers a 401: basic credentials as they are, or a Bearer token from the realm.
    fn authenticate(&mut self, challenge: &str) -> Result<(), PullError> {
        if challenge.to_ascii_lowercase().starts_with("basic") {
            let basic = self.basic.clone().ok_or_else(|| {
                self.fail("authentication required: add credentials for this registry to ~/.docker/config.json (auths)")
            })?;
            self.auth = Some(format!("Basic {basic}"));
            return Ok(());
        }
        let params = challenge_params(challenge);
        let realm = params.get("realm").ok_or_else(|| {
            self.fail(format!(
                "unsupported authentication challenge {challenge:?}"
            ))
        })?;
        let mut request = self.agent.get(realm);
        if let Some(service) = params.get("service") {
            request = request.query("service", service);
        }
        let scope = params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{}:pull", self.repository));
        request = request.query("scope", &scope);
        if let Some(basic) = &self.basic {
            request = request.set("Authorization", &format!("Basic {basic}"));
        }
        let body: serde_json::Value = request
            .call()
            .map_err(|e| self.fail(format!("getting a token from {realm}: {e}")))?
            .into_json()
            .map_err(|e| self.fail(format!("reading the token from {realm}: {e}")))?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| self.fail(format!("{realm} returned no token")))?;
        self.auth = Some(format!("Bearer {token}"));
        Ok(())
    }

    /// The manifest or index at `reference`, with its media type and digest.
    fn manifest(&mut self, reference: &str) -> Result<(Vec<u8>, String, String), PullError> {
        let response = self.get(&format!("manifests/{reference}"), ACCEPT)?;
        let media_type = response
            .header("Content-Type")
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let mut body = Vec::new();
        response
            .into_reader()
            .take(8 << 20)
            .read_to_end(&mut body)
            .map_err(|e| self.fail(format!("reading the manifest: {e}")))?;
        let digest = format!("sha256:{:x}", <sha2::Sha256 as sha2::Digest>::digest(&body));
        if reference.starts_with("sha256:") && reference != digest {
            return Err(self.fail(format!(
                "manifest digest mismatch: asked for {reference}, got {digest}"
            )));
        }
        Ok((body, media_type, digest))
    }

    /// Streams blob `desc` into the store (verified on the way), reporting what arrives.
    fn blob(
        &mut self,
        blobs: &Blobs,
        desc: &Descriptor,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<(), PullError> {
        if blobs.blob_path(&desc.digest).is_some_and(|p| p.is_file()) {
            return Ok(());
        }
        let path = format!("blobs/{}", desc.digest);
        let layer = &desc.digest[7..19.min(desc.digest.len())];
        let reference = self.reference.clone();
        let store = |source| PullError::Store {
            reference: reference.clone(),
            source,
        };
        let Some(mut partial) = blobs.resume(desc).map_err(store)? else {
            // Another pull is downloading it right now: fetch a copy of our own.
            let response = self.get(&path, "*/*")?;
            let reader = Counting {
                inner: response.into_reader(),
                layer,
                progress,
            };
            blobs.put_blob(desc, reader).map_err(store)?;
            return Ok(());
        };
        if partial.len() < desc.size {
            let response = self.get_from(&path, "*/*", partial.len())?;
            let resumed_at = (response.status() == 206)
                .then(|| response.header("Content-Range"))
                .flatten()
                .and_then(range_start);
            if resumed_at == Some(partial.len()) {
                progress(Progress::Received {
                    layer,
                    bytes: partial.len(),
                });
            } else {
                partial
                    .restart()
                    .map_err(|e| self.fail(format!("restarting blob {}: {e}", desc.digest)))?;
            }
            let reader = Counting {
                inner: response.into_reader(),
                layer,
                progress,
            };
            // One byte more than the blob may have: a registry that sends too much is caught
            // by the size check without filling the disk.
            let room = desc.size - partial.len() + 1;
            partial.append(reader.take(room)).map_err(|e| {
                self.fail(format!(
                    "downloading blob {} (kept {} bytes for the next pull): {e}",
                    desc.digest,
                    partial.len()
                ))
            })?;
        }
        blobs.complete(partial, desc).map_err(store)?;
        Ok(())
    }
}

fn store_err(reference: &Reference) -> impl Fn(OciError) -> PullError + '_ {
    move |source| PullError::Store {
        reference: reference.familiar(),
        source,
    }
}

/// Pulls `reference` for `platform` (the host's by default) and records it in `store`.
/// `progress` hears of every layer's start, bytes and end (a terminal draws bars from them).
pub fn pull(
    store: &ImageStore,
    reference: &Reference,
    platform: Option<&Platform>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Pulled, PullError> {
    let blobs = store.blobs();
    blobs.sweep_stale();
    let result = pull_into(store, &blobs, reference, platform, progress);
    if result.is_err() {
        blobs.take_back();
    }
    result
}

fn pull_into(
    store: &ImageStore,
    blobs: &Blobs,
    reference: &Reference,
    platform: Option<&Platform>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Pulled, PullError> {
    let mut session = Session::new(reference)?;
    let (mut body, mut media_type, mut digest) = session.manifest(reference.reference_for_api())?;
    if matches!(media_type.as_str(), MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST) {
        let index: Index = serde_json::from_slice(&body)
            .map_err(|e| session.fail(format!("bad image index: {e}")))?;
        let wanted = platform.cloned().unwrap_or_else(oci::host_platform);
        let chosen = index
            .manifests
            .iter()
            .find(|m| {
                m.platform.as_ref().is_some_and(|p| {
                    p.os == wanted.os
                        && p.architecture == wanted.architecture
                        && (wanted.variant.is_none() || p.variant == wanted.variant)
                })
            })
            .ok_or_else(|| {
                session.fail(format!(
                    "no image for {}/{} in the index",
                    wanted.os, wanted.architecture
                ))
            })?
            .clone();
        (body, media_type, digest) = session.manifest(&chosen.digest)?;
    }
    if !matches!(
        media_type.as_str(),
        MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST | ""
    ) {
        return Err(session.fail(format!("unsupported manifest type {media_type:?}")));
    }
    let manifest: Manifest =
        serde_json::from_slice(&body).map_err(|e| session.fail(format!("bad manifest: {e}")))?;
    // With an explicit platform the config is read (already stored: cheap) to check it.
    let up_to_date = platform.is_none()
        && store
            .get(&reference.familiar())
            .is_ok_and(|i| i.config.digest.as_deref() == Some(digest.as_str()));
    if up_to_date {
        return Ok(Pulled {
            name: reference.familiar(),
            digest,
            up_to_date: true,
        });
    }
    let manifest_desc = Descriptor {
        media_type: media_type.clone(),
        digest: digest.clone(),
        size: body.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
    };
    blobs
        .put_blob(&manifest_desc, &body[..])
        .map_err(store_err(reference))?;
    session.blob(blobs, &manifest.config, &|_| {})?;
    let config: OciConfig = serde_json::from_slice(
        &blobs
            .read_blob(&manifest.config.digest)
            .map_err(store_err(reference))?,
    )
    .map_err(|e| session.fail(format!("bad image config: {e}")))?;
    if let Some(wanted) = platform {
        if (config.os.as_str(), config.architecture.as_str())
            != (wanted.os.as_str(), wanted.architecture.as_str())
        {
            return Err(session.fail(format!(
                "no image for {}/{}: this image is for {}/{}",
                wanted.os, wanted.architecture, config.os, config.architecture
            )));
        }
    }
    // Layers download at once, each on its own connection.
    let results: Vec<Result<(), PullError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = manifest
            .layers
            .iter()
            .map(|layer| {
                let mut layer_session = session.clone();
                scope.spawn(move || {
                    let short = &layer.digest[7..19.min(layer.digest.len())];
                    progress(Progress::Started {
                        layer: short,
                        size: layer.size,
                    });
                    let done = layer_session.blob(blobs, layer, progress);
                    if done.is_ok() {
                        progress(Progress::Done { layer: short });
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a download thread does not panic"))
            .collect()
    });
    results.into_iter().collect::<Result<(), _>>()?;
    progress(Progress::Unpacking);
    let name = oci::record(
        store,
        blobs,
        &Assembled {
            reference: reference.clone(),
            manifest_digest: digest.clone(),
            config,
            layers: manifest.layers,
        },
    )
    .map_err(store_err(reference))?;
    Ok(Pulled {
        name,
        digest,
        up_to_date: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse() {
        let p = challenge_params(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/busybox:pull");
    }
}
