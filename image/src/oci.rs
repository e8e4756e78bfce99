//! OCI images in the store: blobs by digest, layers unpacked once and shared, and `forge load` /
//! `forge save` of OCI-layout and `docker save` archives.
//!
//! Layout under the data root: `blobs/sha256/HEX` (manifests, configs and layer blobs as they
//! came), `layers/sha256/DIFFID/` (a layer unpacked for overlayfs, named by the digest of its
//! uncompressed tar), `images/KEY/image.json` (an [`ImageConfig`] naming its layers, lowest first).
//! Everything appears by rename of a complete temporary file or directory, so an interrupted load
//! leaves nothing half-made under a final name.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::reference::Reference;
use super::unpack::{unpack_layer, Compression, UnpackOptions};
use super::{ImageConfig, ImageError, ImageStore};

pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

// These are Forge's own types on purpose, not the `oci-spec` crate's `image` module
// (`Descriptor`, `ImageManifest`, `ImageIndex`, `ImageConfiguration`): there `mediaType` is
// required on every descriptor and `architecture`/`os` on a config, where Forge reads them as
// empty when absent (so inputs loaded today would be refused); the digest is a parsed `Digest`
// and platforms are `Arch`/`Os` enums, so a bad input fails in serde with oci-spec's message
// instead of Forge's (`bad manifest: ...`, `OciError::Digest`); and the fields are private behind
// getters and fallible builders, which would rewrite every construction and field access here and
// in pull.rs (and in the callers of these public types) for about eighty lines of plain structs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

/// The parts of an OCI image config Forge uses.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OciConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: RunConfig,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// One entry of a `docker save` archive's manifest.json.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("{archive}: {message}")]
    Archive { archive: String, message: String },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    Digest {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{0}")]
    Image(#[from] ImageError),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub(super) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> OciError + 'a {
    move |source| OciError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// `sha256:HEX` → `HEX`, refusing anything that is not a sha256 digest (it becomes a file name).
fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then_some(hex)
}

/// How the file at `path` is compressed, from its first bytes.
fn sniff_file(path: &Path) -> Result<Compression, OciError> {
    let mut magic = [0u8; 4];
    let mut file = fs::File::open(path).map_err(io_err("opening", path))?;
    let n = file.read(&mut magic).map_err(io_err("reading", path))?;
    Ok(Compression::sniff(&magic[..n]))
}

/// Reads everything from `reader` into `out` while hashing it; returns `sha256:HEX` and the size.
fn copy_hashing(mut reader: impl Read, mut out: impl Write) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        size += n as u64;
    }
    Ok((format!("sha256:{:x}", hasher.finalize()), size))
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The content-addressed part of the store: blobs and unpacked layers.
#[derive(Debug, Clone)]
pub struct Blobs {
    data: PathBuf,
    /// What this handle added, so that a failed load or pull can take exactly that back.
    added: std::sync::Arc<std::sync::Mutex<Vec<PathBuf>>>,
}

impl Blobs {
    pub fn new(data: impl Into<PathBuf>) -> Self {
        Self {
            data: data.into(),
            added: Default::default(),
        }
    }

    pub(super) fn note_added(&self, path: &Path) {
        self.added
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path.to_path_buf());
    }

    /// Removes what a killed load or pull left half-written: temporaries (`.tmp-PID-N`) of
    /// processes that no longer run, and partial downloads abandoned long ago. Called before
    /// each load and pull.
    pub fn sweep_stale(&self) {
        self.sweep_partials(&self.data.join("blobs/sha256"));
        for dir in ["blobs/sha256", "layers/sha256", "load"] {
            let Ok(entries) = fs::read_dir(self.data.join(dir)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(pid) = name
                    .strip_prefix(".tmp-")
                    .and_then(|rest| rest.split('-').next())
                    .and_then(|pid| pid.parse::<i32>().ok())
                else {
                    continue;
                };
                if !crate::proc::is_running(pid) {
                    let path = entry.path();
                    let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
                }
            }
        }
    }

    /// Removes every blob and layer this handle added (after a failed load or pull).
    pub fn take_back(&self) {
        let added = std::mem::take(&mut *self.added.lock().unwrap_or_else(|e| e.into_inner()));
        for path in added {
            let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
        }
    }

    pub fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        digest_hex(digest).map(|hex| self.data.join("blobs/sha256").join(hex))
    }

    pub fn layer_path(&self, diff_id: &str) -> Option<PathBuf> {
        digest_hex(diff_id).map(|hex| self.data.join("layers/sha256").join(hex))
    }

    fn tmp_path(&self, kind: &str) -> PathBuf {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.data
            .join(kind)
            .join(format!(".tmp-{}-{n}", std::process::id()))
    }

    /// Stores the blob read from `reader`, verified against `expected` (digest and size) while it
    /// streams; nothing is kept on a mismatch.
    pub fn put_blob(&self, expected: &Descriptor, reader: impl Read) -> Result<PathBuf, OciError> {
        let what = format!("blob {}", expected.digest);
        let target = self
            .blob_path(&expected.digest)
            .ok_or_else(|| OciError::Archive {
                archive: what.clone(),
                message: "unsupported digest (only sha256 is)".into(),
            })?;
        if target.is_file() {
            return Ok(target);
        }
        let tmp = self.tmp_path("blobs/sha256");
        let dir = tmp.parent().expect("tmp has a parent");
        fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        let file = fs::File::create(&tmp).map_err(io_err("creating", &tmp))?;
        let result = copy_hashing(reader, io::BufWriter::new(file));
        let (actual, size) = match result {
            Ok(done) => done,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(io_err("writing", &tmp)(e));
            }
        };
        if actual != expected.digest || size != expected.size {
            let _ = fs::remove_file(&tmp);
            return Err(OciError::Digest {
                what,
                expected: format!("{} ({} bytes)", expected.digest, expected.size),
                actual: format!("{actual} ({size} bytes)"),
            });
        }
        fs::rename(&tmp, &target).map_err(io_err("storing", &target))?;
        self.note_added(&target);
        Ok(target)
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, OciError> {
        let path = self.blob_path(digest).ok_or_else(|| OciError::Archive {
            archive: digest.to_string(),
            message: "unsupported digest".into(),
        })?;
        fs::read(&path).map_err(io_err("reading", &path))
    }

    /// Unpacks the stored layer blob `layer` once; its uncompressed digest must be `diff_id`.
    pub fn unpack(&self, layer: &Descriptor, diff_id: &str) -> Result<PathBuf, OciError> {
        let target = self.layer_path(diff_id).ok_or_else(|| OciError::Archive {
            archive: format!("layer {}", layer.digest),
            message: format!("unsupported diff id {diff_id}"),
        })?;
        if target.is_dir() {
            return Ok(target);
        }
        let blob = self
            .blob_path(&layer.digest)
            .expect("stored blobs have sha256 digests");
        let compression = match Compression::from_media_type(&layer.media_type) {
            Some(compression) => compression,
            None => sniff_file(&blob)?,
        };
        let file = fs::File::open(&blob).map_err(io_err("opening", &blob))?;
        let tmp = self.tmp_path("layers/sha256");
        fs::create_dir_all(&tmp).map_err(io_err("creating", &tmp))?;
        let fail = |e: OciError| {
            let _ = fs::remove_dir_all(&tmp);
            e
        };
        // The diff id is the digest of the *uncompressed* tar: hash what the unpacker reads after
        // decompression. Decompress here so the hasher sits between decompressor and tar reader.
        let decompressed: Box<dyn Read> = match compression {
            Compression::None => Box::new(file),
            Compression::Gzip => Box::new(flate2::read::GzDecoder::new(file)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(file)
                    .map_err(|e| fail(io_err("decompressing", &blob)(e)))?,
            ),
        };
        let mut hashing = HashingReader {
            inner: decompressed,
            hasher: Sha256::new(),
        };
        unpack_layer(
            &mut hashing,
            Compression::None,
            &tmp,
            &UnpackOptions::default(),
        )
        .map_err(|e| {
            fail(OciError::Archive {
                archive: format!("layer {}", layer.digest),
                message: e.to_string(),
            })
        })?;
        // Drain trailing padding so the digest covers the whole stream.
        io::copy(&mut hashing, &mut io::sink()).map_err(|e| fail(io_err("reading", &blob)(e)))?;
        let actual = format!("sha256:{:x}", hashing.hasher.finalize());
        if actual != diff_id {
            return Err(fail(OciError::Digest {
                what: format!("layer {} (uncompressed)", layer.digest),
                expected: diff_id.to_string(),
                actual,
            }));
        }
        match fs::rename(&tmp, &target) {
            Ok(()) => {
                self.note_added(&target);
                Ok(target)
            }
            // Unpacked by someone else meanwhile: theirs is as good.
            Err(_) if target.is_dir() => {
                let _ = fs::remove_dir_all(&tmp);
                Ok(target)
            }
            Err(e) => Err(fail(io_err("storing", &target)(e))),
        }
    }
}

/// What a loaded or pulled image is made of, ready to be recorded in the image store.
pub struct Assembled {
    pub reference: Reference,
    pub manifest_digest: String,
    pub config: OciConfig,
    pub layers: Vec<Descriptor>,
}

/// Unpacks the layers of `image` and records it under its reference (replacing an older image
/// of the same name, as a re-tag does).
pub fn record(store: &ImageStore, blobs: &Blobs, image: &Assembled) -> Result<String, OciError> {
    let diff_ids = &image.config.rootfs.diff_ids;
    if diff_ids.len() != image.layers.len() {
        return Err(OciError::Archive {
            archive: image.reference.familiar(),
            message: format!(
                "the config lists {} layers but the manifest {}",
                diff_ids.len(),
                image.layers.len()
            ),
        });
    }
    let mut size = 0;
    for (layer, diff_id) in image.layers.iter().zip(diff_ids) {
        let tree = blobs.unpack(layer, diff_id)?;
        size += super::regular_file_bytes(&tree).map_err(io_err("measuring", &tree))?;
    }
    let run = &image.config.config;
    let config = ImageConfig {
        env: run.env.clone().unwrap_or_default(),
        cmd: run.cmd.clone().unwrap_or_default(),
        entrypoint: run.entrypoint.clone().unwrap_or_default(),
        working_dir: run.working_dir.clone().unwrap_or_default(),
        user: run.user.clone().filter(|u| !u.is_empty()),
        stop_signal: run.stop_signal.clone(),
        exposed_ports: run
            .exposed_ports
            .as_ref()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default(),
        volumes: run
            .volumes
            .as_ref()
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default(),
        created: crate::proc::now_secs(),
        size,
        layers: diff_ids.clone(),
        reference: Some(image.reference.canonical()),
        digest: Some(image.manifest_digest.clone()),
    };
    let key = image.reference.store_key();
    store.put_record(&key, &config)?;
    Ok(image.reference.familiar())
}

/// Which image format an extracted archive holds.
enum Layout {
    Oci,
    Docker,
}

/// `forge load -i ARCHIVE`: imports every image of an OCI-layout or `docker save` archive.
/// Returns the names it loaded.
pub fn load_archive(
    store: &ImageStore,
    blobs: &Blobs,
    archive: &Path,
) -> Result<Vec<String>, OciError> {
    let name = archive.display().to_string();
    let bad = |message: String| OciError::Archive {
        archive: name.clone(),
        message,
    };
    blobs.sweep_stale();
    let file = fs::File::open(archive).map_err(io_err("opening", archive))?;
    // The archive is untrusted: extract it with the same hostile-archive rules as layers.
    let scratch = blobs.tmp_path("load");
    fs::create_dir_all(&scratch).map_err(io_err("creating", &scratch))?;
    let result = (|| {
        unpack_layer(
            file,
            sniff_file(archive)?,
            &scratch,
            &UnpackOptions::default(),
        )
        .map_err(|e| bad(e.to_string()))?;
        let layout = if scratch.join("index.json").is_file() {
            Layout::Oci
        } else if scratch.join("manifest.json").is_file() {
            Layout::Docker
        } else {
            return Err(bad(
                "neither an OCI layout (index.json) nor a docker save archive (manifest.json)"
                    .into(),
            ));
        };
        let stem = archive
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("loaded")
            .to_lowercase();
        let images = match layout {
            Layout::Oci => from_oci_layout(blobs, &scratch, &stem, &bad)?,
            Layout::Docker => from_docker_archive(blobs, &scratch, &bad)?,
        };
        let mut loaded = Vec::new();
        for image in &images {
            match record(store, blobs, image) {
                Ok(name) => loaded.push(name),
                Err(e) => {
                    // All or nothing: the images recorded so far lose their blobs below.
                    for done in &images[..loaded.len()] {
                        let _ = store.remove(&done.reference.store_key());
                    }
                    return Err(e);
                }
            }
        }
        Ok(loaded)
    })();
    let _ = fs::remove_dir_all(&scratch);
    if result.is_err() {
        blobs.take_back();
    }
    result
}

fn read_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
    bad: &dyn Fn(String) -> OciError,
) -> Result<T, OciError> {
    let raw = fs::read(path).map_err(|e| bad(format!("reading {}: {e}", path.display())))?;
    serde_json::from_slice(&raw).map_err(|e| bad(format!("{}: {e}", path.display())))
}

/// The platform Forge runs: the host's, in OCI's names.
pub fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    Platform {
        architecture: architecture.into(),
        os: "linux".into(),
        variant: None,
    }
}

/// Picks the host's platform out of an image index.
pub fn pick_platform<'a>(index: &'a Index, what: &str) -> Result<&'a Descriptor, OciError> {
    let host = host_platform();
    index
        .manifests
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == host.os && p.architecture == host.architecture)
        })
        .ok_or_else(|| OciError::Archive {
            archive: what.to_string(),
            message: format!(
                "no image for {}/{} in the index (it has: {})",
                host.os,
                host.architecture,
                index
                    .manifests
                    .iter()
                    .filter_map(|m| m.platform.as_ref())
                    .map(|p| format!("{}/{}", p.os, p.architecture))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

/// Imports the blob `desc` from an OCI layout's `blobs/` directory (verified).
fn import_blob(blobs: &Blobs, layout: &Path, desc: &Descriptor) -> Result<(), OciError> {
    let hex = digest_hex(&desc.digest).ok_or_else(|| OciError::Archive {
        archive: layout.display().to_string(),
        message: format!("unsupported digest {}", desc.digest),
    })?;
    let path = layout.join("blobs/sha256").join(hex);
    let file = fs::File::open(&path).map_err(io_err("opening", &path))?;
    blobs.put_blob(desc, file)?;
    Ok(())
}

fn from_oci_layout(
    blobs: &Blobs,
    layout: &Path,
    stem: &str,
    bad: &dyn Fn(String) -> OciError,
) -> Result<Vec<Assembled>, OciError> {
    let index: Index = read_json(&layout.join("index.json"), bad)?;
    let mut images = Vec::new();
    for (n, entry) in index.manifests.iter().enumerate() {
        let ref_name = entry
            .annotations
            .get("io.containerd.image.name")
            .or_else(|| entry.annotations.get("org.opencontainers.image.ref.name"))
            .cloned()
            .unwrap_or_else(|| format!("{n}"));
        // A bare tag ("v1") names the image after the archive: `ARCHIVE:v1`.
        let reference = match ref_name.contains(['/', ':']) {
            true => Reference::parse(&ref_name),
            false => Reference::parse(&format!("{stem}:{ref_name}")),
        }
        .map_err(|e| bad(e.to_string()))?;
        import_blob(blobs, layout, entry)?;
        let mut manifest_desc = entry.clone();
        if matches!(
            entry.media_type.as_str(),
            MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST
        ) {
            let nested: Index = serde_json::from_slice(&blobs.read_blob(&entry.digest)?)
                .map_err(|e| bad(format!("index {}: {e}", entry.digest)))?;
            manifest_desc = pick_platform(&nested, &reference.familiar())?.clone();
            import_blob(blobs, layout, &manifest_desc)?;
        }
        let manifest: Manifest =
            serde_json::from_slice(&blobs.read_blob(&manifest_desc.digest)?)
                .map_err(|e| bad(format!("manifest {}: {e}", manifest_desc.digest)))?;
        import_blob(blobs, layout, &manifest.config)?;
        for layer in &manifest.layers {
            import_blob(blobs, layout, layer)?;
        }
        let config: OciConfig = serde_json::from_slice(&blobs.read_blob(&manifest.config.digest)?)
            .map_err(|e| bad(format!("config {}: {e}", manifest.config.digest)))?;
        images.push(Assembled {
            reference,
            manifest_digest: manifest_desc.digest.clone(),
            config,
            layers: manifest.layers,
        });
    }
    Ok(images)
}

/// Stores `bytes` as a blob and describes it.
fn put_bytes(blobs: &Blobs, media_type: &str, bytes: &[u8]) -> Result<Descriptor, OciError> {
    let desc = Descriptor {
        media_type: media_type.into(),
        digest: format!("sha256:{:x}", Sha256::digest(bytes)),
        size: bytes.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
    };
    blobs.put_blob(&desc, bytes)?;
    Ok(desc)
}

/// Describes a file of the archive by hashing it, then stores it.
fn put_file(blobs: &Blobs, media_type: &str, path: &Path) -> Result<Descriptor, OciError> {
    let file = fs::File::open(path).map_err(io_err("opening", path))?;
    let (digest, size) = copy_hashing(file, io::sink()).map_err(io_err("reading", path))?;
    let desc = Descriptor {
        media_type: media_type.into(),
        digest,
        size,
        platform: None,
        annotations: BTreeMap::new(),
    };
    let file = fs::File::open(path).map_err(io_err("opening", path))?;
    blobs.put_blob(&desc, file)?;
    Ok(desc)
}

fn from_docker_archive(
    blobs: &Blobs,
    root: &Path,
    bad: &dyn Fn(String) -> OciError,
) -> Result<Vec<Assembled>, OciError> {
    let entries: Vec<DockerEntry> = read_json(&root.join("manifest.json"), bad)?;
    let inside = |rel: &str| -> Result<PathBuf, OciError> {
        let rel = Path::new(rel);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(bad(format!(
                "manifest.json names {} outside the archive",
                rel.display()
            )));
        }
        Ok(root.join(rel))
    };
    let mut images = Vec::new();
    for entry in entries {
        let config_bytes = fs::read(inside(&entry.config)?)
            .map_err(|e| bad(format!("reading {}: {e}", entry.config)))?;
        let config: OciConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| bad(format!("{}: {e}", entry.config)))?;
        let config_desc = put_bytes(blobs, MEDIA_OCI_CONFIG, &config_bytes)?;
        let mut layers = Vec::new();
        for layer in &entry.layers {
            let path = inside(layer)?;
            let media_type = match sniff_file(&path)? {
                Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
                Compression::None => MEDIA_OCI_LAYER,
            };
            layers.push(put_file(blobs, media_type, &path)?);
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: MEDIA_OCI_MANIFEST.into(),
            config: config_desc,
            layers: layers.clone(),
        };
        let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
        let manifest_desc = put_bytes(blobs, MEDIA_OCI_MANIFEST, &manifest_bytes)?;
        let tags = entry.repo_tags.unwrap_or_default();
        if tags.is_empty() {
            let short = &manifest_desc.digest[7..19];
            images.push(Assembled {
                reference: Reference::parse(&format!("loaded:{short}"))
                    .map_err(|e| bad(e.to_string()))?,
                manifest_digest: manifest_desc.digest.clone(),
                config: config.clone(),
                layers: layers.clone(),
            });
        }
        for tag in tags {
            images.push(Assembled {
                reference: Reference::parse(&tag).map_err(|e| bad(e.to_string()))?,
                manifest_digest: manifest_desc.digest.clone(),
                config: config.clone(),
                layers: layers.clone(),
            });
        }
    }
    Ok(images)
}

/// `forge save -o ARCHIVE REF`: writes the image as an OCI-layout tar archive.
pub fn save_archive(
    blobs: &Blobs,
    config: &ImageConfig,
    name: &str,
    out: &Path,
) -> Result<(), OciError> {
    let bad = |message: String| OciError::Archive {
        archive: out.display().to_string(),
        message,
    };
    let digest = config
        .digest
        .as_deref()
        .ok_or_else(|| bad(format!("image {name} was built from the host's binaries, not pulled or loaded: it has no OCI manifest to save")))?;
    let manifest_bytes = blobs.read_blob(digest)?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| bad(format!("manifest {digest}: {e}")))?;
    let mut annotations = BTreeMap::new();
    if let Some(reference) = &config.reference {
        annotations.insert("io.containerd.image.name".to_string(), reference.clone());
        if let Ok(r) = Reference::parse(reference) {
            if let Some(tag) = &r.tag {
                annotations.insert("org.opencontainers.image.ref.name".to_string(), tag.clone());
            }
        }
    }
    let index = Index {
        schema_version: 2,
        media_type: MEDIA_OCI_INDEX.into(),
        manifests: vec![Descriptor {
            media_type: MEDIA_OCI_MANIFEST.into(),
            digest: digest.to_string(),
            size: manifest_bytes.len() as u64,
            platform: None,
            annotations,
        }],
    };
    let tmp = out.with_extension("tmp");
    let file = fs::File::create(&tmp).map_err(io_err("creating", &tmp))?;
    let result = (|| -> io::Result<()> {
        let mut tar = tar::Builder::new(io::BufWriter::new(file));
        let mut add_bytes = |path: &str, bytes: &[u8]| -> io::Result<()> {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_cksum();
            tar.append_data(&mut header, path, bytes)
        };
        add_bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        add_bytes(
            "index.json",
            &serde_json::to_vec(&index).expect("index serialises"),
        )?;
        add_bytes(&format!("blobs/sha256/{}", &digest[7..]), &manifest_bytes)?;
        for desc in std::iter::once(&manifest.config).chain(&manifest.layers) {
            let path = blobs
                .blob_path(&desc.digest)
                .ok_or_else(|| io::Error::other(format!("unsupported digest {}", desc.digest)))?;
            tar.append_path_with_name(&path, format!("blobs/sha256/{}", &desc.digest[7..]))?;
        }
        tar.into_inner()?.flush()
    })();
    match result.and_then(|()| fs::rename(&tmp, out)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(io_err("writing", out)(e))
        }
    }
}

/// Removes the blobs and unpacked layers that no image in `store` needs any more (after
/// `forge rmi`); returns how many it removed. Entries being written (`.tmp-*`) are left alone.
pub fn collect_garbage(store: &ImageStore, blobs: &Blobs) -> Result<usize, OciError> {
    let mut keep_blobs = std::collections::HashSet::new();
    let mut keep_layers = std::collections::HashSet::new();
    for image in store.list()? {
        keep_layers.extend(image.config.layers.iter().cloned());
        let Some(digest) = &image.config.digest else {
            continue;
        };
        keep_blobs.insert(digest.clone());
        if let Ok(manifest) = serde_json::from_slice::<Manifest>(&blobs.read_blob(digest)?) {
            keep_blobs.insert(manifest.config.digest.clone());
            keep_blobs.extend(manifest.layers.iter().map(|l| l.digest.clone()));
        }
    }
    let mut removed = 0;
    for (dir, keep) in [
        ("blobs/sha256", &keep_blobs),
        ("layers/sha256", &keep_layers),
    ] {
        let dir = blobs.data.join(dir);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || keep.contains(&format!("sha256:{name}")) {
                continue;
            }
            let path = entry.path();
            let gone = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            gone.map_err(io_err("removing", &path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_become_file_names_only_when_they_are_sha256() {
        let hex = "a".repeat(64);
        assert_eq!(digest_hex(&format!("sha256:{hex}")), Some(hex.as_str()));
        for bad in [
            "sha256:../../etc",
            "sha512:aa",
            "sha256:ABC",
            &format!("sha256:{hex}0"),
        ] {
            assert_eq!(digest_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn temporaries_of_dead_processes_are_swept() {
        let tmp = tempfile::tempdir().unwrap();
        let blobs = Blobs::new(tmp.path());
        let dir = tmp.path().join("blobs/sha256");
        fs::create_dir_all(&dir).unwrap();
        let mine = dir.join(format!(".tmp-{}-0", std::process::id()));
        // Pid 0x7ffffffe is above pid_max: never a running process.
        let dead = dir.join(".tmp-2147483646-0");
        fs::write(&mine, b"x").unwrap();
        fs::write(&dead, b"x").unwrap();
        blobs.sweep_stale();
        assert!(mine.exists(), "a live process's temporary was removed");
        assert!(!dead.exists(), "a dead process's temporary stays");
    }

    #[test]
    fn blobs_are_verified_while_they_stream_and_bad_ones_leave_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let blobs = Blobs::new(tmp.path());
        let good = b"hello";
        let desc = Descriptor {
            media_type: String::new(),
            digest: format!("sha256:{:x}", Sha256::digest(good)),
            size: 5,
            platform: None,
            annotations: BTreeMap::new(),
        };
        let path = blobs.put_blob(&desc, &good[..]).unwrap();
        assert_eq!(fs::read(path).unwrap(), good);
        let mut wrong = desc.clone();
        wrong.digest = format!("sha256:{}", "0".repeat(64));
        let err = blobs.put_blob(&wrong, &good[..]).unwrap_err();
        assert!(matches!(err, OciError::Digest { .. }), "{err}");
        let dir = tmp.path().join("blobs/sha256");
        let left: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "only the good blob stays: {left:?}");
    }
}
