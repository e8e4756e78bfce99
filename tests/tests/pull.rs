//! `forge pull` and `forge run --pull=...` against a real registry (Debian's `docker-registry`)
//! started by the test inside its own network namespace, with images made by real tools (umoci,
//! skopeo) from busybox-static: layers with whiteouts, a multi-platform index, basic auth, bad
//! input, and a small test server that corrupts a blob.
//!
//! # Caveats
//! Every registry (real or fake) listens on 127.0.0.1 inside the test's private network namespace
//! and forge runs there too, so no traffic leaves it. Registries are killed and their temporary
//! directories removed when a test ends, pass or fail.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::oci::{build_images, sh, sha256_hex, tools_dir};
use common::{Forge, Netns, Out};

/// How long image-building and pushing tools may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

fn base64(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The OCI architecture name of the machine the tests run on (busybox-static is built for it).
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A port on 127.0.0.1 that nothing listens on inside `netns` (the namespace is the test's own,
/// so nothing else takes it afterwards).
fn free_port(netns: &Netns) -> u16 {
    netns.within(|| {
        TcpListener::bind("127.0.0.1:0")
            .expect("binding a port in the test's namespace")
            .local_addr()
            .unwrap()
            .port()
    })
}

/// One HTTP/1.0 GET to 127.0.0.1:`port` from inside `netns`: status, headers (lowercase names)
/// and body, or `None` when nothing answers.
fn http_get(
    netns: &Netns,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, BTreeMap<String, String>, Vec<u8>)> {
    netns.within(|| {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).ok()?;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.lines();
        let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Some((status, headers, raw[split + 4..].to_vec()))
    })
}

const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Debian's `docker-registry` serving HTTP on 127.0.0.1 inside the test's network namespace,
/// storing in a temporary directory; killed (and the directory removed) on drop.
struct Registry<'a> {
    netns: &'a Netns,
    child: Child,
    /// 127.0.0.1, or the address its TLS certificate names.
    ip: String,
    port: u16,
    /// `user:pass` when the registry wants basic authentication.
    creds: Option<String>,
    dir: tempfile::TempDir,
}

impl<'a> Registry<'a> {
    /// Starts a registry, with htpasswd basic auth for `creds` (`(user, password)`) if given.
    fn start(netns: &'a Netns, creds: Option<(&str, &str)>) -> Self {
        Self::start_on(netns, "127.0.0.1", creds, None)
    }

    /// Starts a registry serving HTTPS on `ip` with `tls`'s server.crt and server.key.
    fn start_tls(netns: &'a Netns, ip: &str, tls: &Path) -> Self {
        Self::start_on(netns, ip, None, Some(tls))
    }

    fn start_on(
        netns: &'a Netns,
        ip: &str,
        creds: Option<(&str, &str)>,
        tls: Option<&Path>,
    ) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("forge-e2e-registry-")
            .tempdir()
            .unwrap();
        let port = free_port(netns);
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
             http:\n  addr: {ip}:{port}\n  secret: forge-e2e\n",
            storage = dir.path().join("storage").display()
        );
        if let Some(tls) = tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                tls.join("server.crt").display(),
                tls.join("server.key").display()
            ));
        }
        if let Some((user, password)) = creds {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd (apache2-utils) is installed");
            assert!(out.status.success(), "htpasswd -Bbn failed");
            std::fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: forge-e2e\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        // The access log goes to stdout, errors to stderr: both to one file the test can read.
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        netns.enter(&mut cmd);
        let child = cmd
            .spawn()
            .expect("docker-registry (Debian's docker-registry package) is installed");
        let mut registry = Self {
            netns,
            child,
            ip: ip.to_string(),
            port,
            creds: creds.map(|(u, p)| format!("{u}:{p}")),
            dir,
        };
        common::eventually(Duration::from_secs(20), "the registry to answer", || {
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!(
                    "docker-registry exited ({status}) before answering:\n{}",
                    registry.log()
                );
            }
            if tls.is_some() {
                return netns.within(|| TcpStream::connect((ip, port)).ok().map(drop));
            }
            http_get(netns, port, "/v2/", &[])
                .filter(|(status, _, _)| [200, 401].contains(status))
                .map(drop)
        });
        registry
    }

    /// `IP:PORT`
    fn host(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// `IP:PORT/REPO_TAG`
    fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host())
    }

    /// What the registry logged so far (access log lines included).
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many requests the access log shows whose request line contains `needle`
    /// (e.g. `/v2/app/blobs/`).
    fn requests(&self, needle: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains(" HTTP/1.1\" ") && l.contains(needle))
            .count()
    }

    /// `skopeo copy [--all] oci:LAYOUT:TAG docker://IP:PORT/DEST`, inside the namespace.
    fn push(&self, layout: &Path, tag: &str, dest: &str, all: bool) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "-q", "--dest-tls-verify=false"]);
        if all {
            cmd.arg("--all");
        }
        if let Some(creds) = &self.creds {
            cmd.args(["--dest-creds", creds]);
        }
        cmd.arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}", self.reference(dest)))
            .stdin(Stdio::null());
        self.netns.enter(&mut cmd);
        let out = common::output(&mut cmd, TOOL_TIMEOUT);
        assert_eq!(out.code, 0, "skopeo push failed: {out}\n{}", self.log());
    }

    /// The digest the registry gives the manifest (or index) at `repo`:`tag`.
    fn manifest_digest(&self, repo: &str, tag: &str) -> String {
        let auth = self
            .creds
            .as_ref()
            .map(|c| format!("Basic {}", base64(c.as_bytes())));
        let mut headers = vec![("Accept", MANIFEST_TYPES)];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth));
        }
        let (status, headers, _) = http_get(
            self.netns,
            self.port,
            &format!("/v2/{repo}/manifests/{tag}"),
            &headers,
        )
        .expect("the registry answers");
        assert_eq!(status, 200, "manifest {repo}:{tag}: {}", self.log());
        headers["docker-content-digest"].clone()
    }
}

impl Drop for Registry<'_> {
    fn drop(&mut self) {
        let pid = self.child.id();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            assert!(
                !common::process_alive(i64::from(pid)),
                "the registry (pid {pid}) outlived its test"
            );
        }
    }
}

/// The OCI layout's descriptor for `tag` (from its index.json).
fn layout_descriptor(layout: &Path, tag: &str) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {index}"))
        .clone()
}

fn blob_file(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").expect("a sha256 digest"))
}

fn read_blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(blob_file(layout, digest)).unwrap()
}

/// Stores `data` as a blob of the layout; returns its descriptor (`mediaType`, `digest`, `size`).
fn write_blob(layout: &Path, media_type: &str, data: &[u8]) -> serde_json::Value {
    let digest = format!("sha256:{}", sha256_hex(data));
    std::fs::write(blob_file(layout, &digest), data).unwrap();
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": data.len()})
}

/// The manifest of `tag` in the layout, parsed.
fn layout_manifest(layout: &Path, tag: &str) -> serde_json::Value {
    let desc = layout_descriptor(layout, tag);
    serde_json::from_slice(&read_blob(layout, desc["digest"].as_str().unwrap())).unwrap()
}

/// Every entry of the store's image, blob and layer directories (as `DIR/NAME`).
fn store_entries(forge: &Forge) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for dir in ["images", "blobs/sha256", "layers/sha256"] {
        for name in forge.entries(dir) {
            all.insert(format!("{dir}/{name}"));
        }
    }
    all
}

/// Fails unless no temporary entry (`.tmp-*` or any dot file) is left in the store.
fn assert_no_temporaries(forge: &Forge) {
    let temps: Vec<String> = store_entries(forge)
        .into_iter()
        .filter(|e| e.rsplit('/').next().is_some_and(|n| n.starts_with('.')))
        .collect();
    assert!(
        temps.is_empty(),
        "temporary files left in the store: {temps:?}"
    );
}

/// Fails unless `out` failed with exactly one line on stderr containing every one of `needles`
/// (case-insensitively).
fn assert_one_line_error(out: &Out, needles: &[&str]) {
    assert_ne!(out.code, 0, "{out}");
    assert_eq!(out.stderr_lines().len(), 1, "one error line: {out}");
    let line = out.stderr.to_lowercase();
    for needle in needles {
        assert!(
            line.contains(&needle.to_lowercase()),
            "the error should mention {needle:?}: {out}"
        );
    }
}

/// The `forge images --digests` line of image `name`.
fn images_line(forge: &Forge, name: &str) -> Option<String> {
    forge
        .ok(&["images", "--digests"])
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(str::to_string)
}

/// `forge ARGS...` with `DOCKER_CONFIG=docker_config` (forge reads credentials from there).
fn forge_with_config(forge: &Forge, docker_config: &Path, args: &[&str]) -> Out {
    let mut cmd = forge.command(args);
    cmd.env("DOCKER_CONFIG", docker_config);
    let out = common::output(&mut cmd, common::COMMAND_TIMEOUT);
    forge.note_ids(forge.container_ids());
    out
}

/// The script and expected output that check v2's files: /dir replaced (opaque: only y), /a.txt
/// deleted (whiteout), /keep from the lower layer, no whiteout file visible, the config applied.
const V2_SCRIPT: &str = "pwd; echo $FROM_IMAGE; ls -A /dir; cat /dir/y /keep; \
    ls /a.txt 2>&1 || true; find / -xdev -name '.wh.*'; echo end";

fn assert_v2_files(out: &Out) {
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    assert_eq!(&lines[..5], ["/dir", "yes", "y", "y", "k"], "{out}");
    assert!(
        lines[5].contains("No such file"),
        "a whiteout did not hide /a.txt: {out}"
    );
    assert_eq!(lines[6], "end", "whiteout files are visible: {out}");
}

#[test]
fn a_multi_layer_image_pulls_runs_with_its_whiteouts_and_a_second_pull_is_up_to_date() {
    let forge = Forge::new();
    let tmp = tools_dir();
    build_images(tmp.path());
    let layout = tmp.path().join("lay");
    let registry = Registry::start(&forge.netns, None);
    registry.push(&layout, "v2", "app:v2", false);
    let reference = registry.reference("app:v2");
    let digest = registry.manifest_digest("app", "v2");
    let manifest = layout_manifest(&layout, "v2");

    forge.ok(&["pull", &reference]);
    assert_no_temporaries(&forge);
    let run = forge.ok(&["run", "--rm", "--net", "none", &reference, V2_SCRIPT]);
    assert_v2_files(&run);

    // The image is listed under its reference with the registry's manifest digest.
    let line = images_line(&forge, &reference)
        .unwrap_or_else(|| panic!("{reference} not in `forge images`"));
    assert!(line.contains(&digest[..19]), "{line} (digest {digest})");
    let inspect = forge.ok(&["image", "inspect", &reference]);
    let repo_digest = format!("{}/app@{digest}", registry.host());
    assert!(inspect.stdout.contains(&repo_digest), "{inspect}");

    // The config and both layers are stored by digest; two layers unpacked.
    let blobs = forge.entries("blobs/sha256");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for desc in layers.iter().chain([&manifest["config"]]) {
        let hex = &desc["digest"].as_str().unwrap()[7..];
        assert!(
            blobs.iter().any(|b| b == hex),
            "blob {hex} not in {blobs:?}"
        );
    }
    assert_eq!(forge.entries("layers/sha256").len(), 2);

    // Pulling again: up to date, no blob downloaded, nothing added.
    let before = store_entries(&forge);
    let blob_gets = registry.requests("/v2/app/blobs/");
    let again = forge.ok(&["pull", &reference]);
    assert!(
        format!("{}{}", again.stdout, again.stderr)
            .to_lowercase()
            .contains("up to date"),
        "a second pull should say the image is up to date: {again}"
    );
    assert_eq!(
        registry.requests("/v2/app/blobs/"),
        blob_gets,
        "blobs downloaded again"
    );
    assert_eq!(store_entries(&forge), before);

    // The same image by digest: its blobs and layers are shared, none downloaded again.
    let by_digest = registry.reference(&format!("app@{digest}"));
    forge.ok(&["pull", &by_digest]);
    assert_eq!(
        registry.requests("/v2/app/blobs/"),
        blob_gets,
        "blobs downloaded again"
    );
    assert_eq!(forge.entries("layers/sha256").len(), 2, "layers not shared");
    let run = forge.ok(&["run", "--rm", "--net", "none", &by_digest, V2_SCRIPT]);
    assert_v2_files(&run);
}

#[test]
fn run_pulls_a_missing_image_and_obeys_pull_never_and_always() {
    let forge = Forge::new();
    let tmp = tools_dir();
    build_images(tmp.path());
    let layout = tmp.path().join("lay");
    let registry = Registry::start(&forge.netns, None);
    registry.push(&layout, "v1", "app:v1", false);
    registry.push(&layout, "v2", "app:v2", false);
    let v1 = registry.reference("app:v1");
    let v2 = registry.reference("app:v2");

    // Missing (the default): pulled first; the container's output alone is on stdout.
    let first = forge.ok(&["run", "--rm", "--net", "none", &v1]);
    assert_eq!(first.stdout, "default-cmd\n", "entrypoint + cmd: {first}");
    assert!(images_line(&forge, &v1).is_some(), "{v1} was not kept");

    // Never, with the image absent: exit 125 naming the reference; the registry is not asked.
    let manifests = registry.requests("/v2/app/manifests/");
    let before = store_entries(&forge);
    let never = forge.run(&["run", "--pull=never", "--rm", "--net", "none", &v2, "true"]);
    assert_eq!(never.code, 125, "{never}");
    assert_one_line_error(&never, &[&v2]);
    assert_eq!(registry.requests("/v2/app/manifests/"), manifests);
    assert_eq!(store_entries(&forge), before);
    // Never, with the image present: runs.
    let present = forge.ok(&[
        "run",
        "--pull=never",
        "--rm",
        "--net",
        "none",
        &v1,
        "cat /a.txt",
    ]);
    assert_eq!(present.stdout, "a\n");

    // The registry's v1 now names v2's content.
    registry.push(&layout, "v2", "app:v1", false);
    let manifests = registry.requests("/v2/app/manifests/");
    // Missing (default and explicit), image present: the old content, the registry not asked.
    for policy in [None, Some("--pull=missing")] {
        let mut args = vec!["run", "--rm", "--net", "none"];
        args.extend(policy);
        args.extend([v1.as_str(), "cat /a.txt; ls /dir"]);
        let old = forge.ok(&args);
        assert_eq!(old.stdout, "a\nx\n", "{policy:?}: {old}");
    }
    assert_eq!(registry.requests("/v2/app/manifests/"), manifests);
    // Always: pulled again, the new content runs, and stays for later runs.
    let always = forge.ok(&[
        "run",
        "--pull=always",
        "--rm",
        "--net",
        "none",
        &v1,
        V2_SCRIPT,
    ]);
    assert_v2_files(&always);
    assert!(registry.requests("/v2/app/manifests/") > manifests);
    let later = forge.ok(&["run", "--rm", "--net", "none", &v1, V2_SCRIPT]);
    assert_v2_files(&later);
    // v2's lower layer is v1's: shared, so two layers in all.
    assert_eq!(forge.entries("layers/sha256").len(), 2);
}

/// Adds tag `multi` to the layout: an OCI index listing `other_arch` first (v1's files, its
/// config saying `other_arch`) and then the host's architecture (v2). Returns the manifest
/// digests (host's, other's).
fn add_multi_platform_index(layout: &Path, other_arch: &str) -> (String, String) {
    let host = layout_descriptor(layout, "v2");
    let mut other_manifest = layout_manifest(layout, "v1");
    let config_digest = other_manifest["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut config: serde_json::Value =
        serde_json::from_slice(&read_blob(layout, &config_digest)).unwrap();
    config["architecture"] = other_arch.into();
    let config_desc = write_blob(
        layout,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    );
    other_manifest["config"] = config_desc;
    let other = write_blob(
        layout,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&other_manifest).unwrap(),
    );
    let entry = |desc: &serde_json::Value, arch: &str| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": desc["digest"],
            "size": desc["size"],
            "platform": {"os": "linux", "architecture": arch},
        })
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&other, other_arch), entry(&host, host_arch())],
    });
    let mut index_desc = write_blob(
        layout,
        "application/vnd.oci.image.index.v1+json",
        &serde_json::to_vec(&index).unwrap(),
    );
    index_desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "multi"});
    let top_path = layout.join("index.json");
    let mut top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&top_path).unwrap()).unwrap();
    top["manifests"].as_array_mut().unwrap().push(index_desc);
    std::fs::write(&top_path, serde_json::to_vec(&top).unwrap()).unwrap();
    (
        host["digest"].as_str().unwrap().to_string(),
        other["digest"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_multi_platform_index_gives_the_hosts_image_or_the_one_asked_for() {
    let forge = Forge::new();
    let tmp = tools_dir();
    build_images(tmp.path());
    let layout = tmp.path().join("lay");
    let other_arch = if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let (host_digest, other_digest) = add_multi_platform_index(&layout, other_arch);
    let registry = Registry::start(&forge.netns, None);
    registry.push(&layout, "multi", "app:multi", true);
    let reference = registry.reference("app:multi");
    let index_digest = registry.manifest_digest("app", "multi");
    assert_ne!(
        index_digest, host_digest,
        "the registry should serve an index"
    );

    // No --platform: the host's entry (listed second).
    forge.ok(&["pull", &reference]);
    let line = images_line(&forge, &reference).expect("pulled image listed");
    assert!(
        line.contains(&host_digest[..19]),
        "{line} (host's {host_digest})"
    );
    let run = forge.ok(&["run", "--rm", "--net", "none", &reference, V2_SCRIPT]);
    assert_v2_files(&run);

    // --platform picks the other entry.
    let platform = format!("linux/{other_arch}");
    forge.ok(&["pull", "--platform", &platform, &reference]);
    let line = images_line(&forge, &reference).expect("pulled image listed");
    assert!(
        line.contains(&other_digest[..19]),
        "{line} (other {other_digest})"
    );

    // A platform the index lacks: a clear error, nothing added.
    let before = store_entries(&forge);
    let missing = forge.run(&["pull", "--platform", "linux/s390x", &reference]);
    assert_one_line_error(&missing, &[&reference, "linux/s390x"]);
    assert_eq!(store_entries(&forge), before);
    assert_no_temporaries(&forge);
}

/// A directory holding a Docker-format config.json with `auths` for `host`.
fn docker_config(parent: &Path, name: &str, host: &str, user_pass: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    let config = serde_json::json!({"auths": {host: {"auth": base64(user_pass.as_bytes())}}});
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir
}

#[test]
fn basic_auth_uses_the_credentials_of_docker_config() {
    let forge = Forge::new();
    let tmp = tools_dir();
    build_images(tmp.path());
    let registry = Registry::start(&forge.netns, Some(("forge-user", "s3cret-pass")));
    registry.push(&tmp.path().join("lay"), "v2", "app:v2", false);
    let reference = registry.reference("app:v2");
    let before = store_entries(&forge);

    // No credentials at all (an empty config directory): refused, nothing stored.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let anonymous = forge_with_config(&forge, &empty, &["pull", &reference]);
    assert_one_line_error(&anonymous, &[&reference, "auth"]);
    assert_eq!(store_entries(&forge), before);

    // Wrong password: refused, nothing stored.
    let wrong = docker_config(tmp.path(), "wrong", &registry.host(), "forge-user:nope");
    let refused = forge_with_config(&forge, &wrong, &["pull", &reference]);
    assert_one_line_error(&refused, &[&reference, "auth"]);
    assert_eq!(store_entries(&forge), before);
    assert_no_temporaries(&forge);

    // The right credentials: pulled, and it runs.
    let right = docker_config(
        tmp.path(),
        "right",
        &registry.host(),
        "forge-user:s3cret-pass",
    );
    let out = forge_with_config(&forge, &right, &["pull", &reference]);
    assert_eq!(out.code, 0, "{out}");
    let run = forge.ok(&["run", "--rm", "--net", "none", &reference, V2_SCRIPT]);
    assert_v2_files(&run);
}

#[test]
fn bad_references_unknown_tags_and_unreachable_registries_fail_cleanly() {
    let forge = Forge::new();
    let tmp = tools_dir();
    build_images(tmp.path());
    let registry = Registry::start(&forge.netns, None);
    registry.push(&tmp.path().join("lay"), "v1", "app:v1", false);
    // Something in the store already, so that "unchanged" means something.
    forge.ok(&["pull", &registry.reference("app:v1")]);
    let before = store_entries(&forge);
    let unchanged = |what: &str| {
        assert_eq!(store_entries(&forge), before, "{what} changed the store");
        assert_no_temporaries(&forge);
    };

    let malformed = forge.run(&["pull", "UPPER/case"]);
    assert_one_line_error(&malformed, &["UPPER/case"]);
    unchanged("a malformed reference");

    let nope = registry.reference("app:nope");
    let unknown = forge.run(&["pull", &nope]);
    assert_one_line_error(&unknown, &[&nope]);
    assert!(
        ["not found", "unknown"]
            .iter()
            .any(|w| unknown.stderr.to_lowercase().contains(w)),
        "{unknown}"
    );
    unchanged("an unknown tag");

    let absent_digest = registry.reference(&format!("app@sha256:{}", "0".repeat(64)));
    let unknown_digest = forge.run(&["pull", &absent_digest]);
    assert_one_line_error(&unknown_digest, &[&absent_digest]);
    unchanged("an unknown digest");

    let unknown_repo = registry.reference("nothing/here:v1");
    let no_repo = forge.run(&["pull", &unknown_repo]);
    assert_one_line_error(&no_repo, &[&unknown_repo]);
    unchanged("an unknown repository");

    let closed = format!("127.0.0.1:{}", free_port(&forge.netns));
    let unreachable = forge.run(&["pull", &format!("{closed}/app:v1")]);
    assert_one_line_error(&unreachable, &[&closed]);
    unchanged("an unreachable registry");

    // `run` of an unknown tag fails the same way, with docker's exit code for it (a line saying
    // that it pulls may come first).
    let run = forge.run(&["run", "--rm", "--net", "none", &nope, "true"]);
    assert_eq!(run.code, 125, "{run}");
    let last = run
        .stderr_lines()
        .last()
        .map(|l| l.to_string())
        .unwrap_or_default();
    assert!(last.contains(&nope), "the error should name {nope}: {run}");
    unchanged("a run of an unknown tag");
    forge.assert_no_containers();
}

/// A tiny registry that serves one image (manifest by tag and digest, blobs, honouring
/// `Range: bytes=N-`), optionally behind Bearer-token authentication, and that spoils one blob
/// while `corrupt` is set: flips a byte in its middle, or cuts the connection there. Lives in
/// the test's namespace; stopped on drop.
struct FakeRegistry {
    port: u16,
    corrupt: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Request lines served, each followed by ` auth=` and ` range=` and those headers.
    requests: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// path → (content type, body)
type Routes = BTreeMap<String, (String, Vec<u8>)>;

/// How the fake registry behaves.
#[derive(Default)]
struct Fake<'a> {
    /// The blob to corrupt (while `FakeRegistry::corrupt` is set, initially true).
    bad_digest: Option<&'a str>,
    /// Demand `Authorization: Bearer TOKEN`, handed out by `GET /token` (the challenge's realm).
    token: Option<&'a str>,
    /// Spoil the bad blob by closing the connection halfway instead of flipping a byte.
    cut: bool,
}

impl FakeRegistry {
    /// Serves `repo`:`tag` of `layout`.
    fn start(netns: &Netns, layout: &Path, repo: &str, tag: &str, fake: Fake) -> Self {
        let desc = layout_descriptor(layout, tag);
        let manifest_digest = desc["digest"].as_str().unwrap();
        let media_type = desc["mediaType"].as_str().unwrap().to_string();
        let manifest_bytes = read_blob(layout, manifest_digest);
        let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
        let mut routes = Routes::new();
        routes.insert("/v2/".into(), ("application/json".into(), b"{}".to_vec()));
        for reference in [tag, manifest_digest] {
            routes.insert(
                format!("/v2/{repo}/manifests/{reference}"),
                (media_type.clone(), manifest_bytes.clone()),
            );
        }
        let layers = manifest["layers"].as_array().unwrap();
        for blob in layers.iter().chain([&manifest["config"]]) {
            let digest = blob["digest"].as_str().unwrap();
            routes.insert(
                format!("/v2/{repo}/blobs/{digest}"),
                ("application/octet-stream".into(), read_blob(layout, digest)),
            );
        }
        let bad_path = fake.bad_digest.map(|d| format!("/v2/{repo}/blobs/{d}"));
        if let Some(bad) = &bad_path {
            assert!(routes.contains_key(bad), "{bad} is not served");
        }
        let listener = netns.within(|| TcpListener::bind("127.0.0.1:0").unwrap());
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        if let Some(token) = fake.token {
            let body = serde_json::json!({"token": token}).to_string().into_bytes();
            routes.insert("/token".into(), ("application/json".into(), body));
        }
        let server = Server {
            routes,
            bad_path,
            cut: fake.cut,
            token: fake.token.map(str::to_string),
            realm: format!("http://127.0.0.1:{port}/token"),
        };
        let corrupt = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (corrupt, stop, requests) = (corrupt.clone(), stop.clone(), requests.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let flip = corrupt.load(Ordering::SeqCst);
                            if let Some(line) = server.serve(stream, flip) {
                                requests.lock().unwrap().push(line);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => panic!("accept: {e}"),
                    }
                }
            })
        };
        Self {
            port,
            corrupt,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    /// The requests served whose line contains `needle`.
    fn served(&self, needle: &str) -> Vec<String> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| r.contains(needle))
            .cloned()
            .collect()
    }
}

struct Server {
    routes: Routes,
    bad_path: Option<String>,
    cut: bool,
    token: Option<String>,
    realm: String,
}

fn response(status: &str, headers: &[(&str, &str)], body: &[u8], with_body: bool) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut out = head.into_bytes();
    if with_body {
        out.extend_from_slice(body);
    }
    out
}

impl Server {
    /// Answers one request on `stream` (the connection is closed after it); returns its request
    /// line and Authorization header.
    fn serve(&self, stream: TcpStream, flip: bool) -> Option<String> {
        stream.set_nonblocking(false).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).ok()?;
        let (mut auth, mut range) = (String::new(), String::new());
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).ok()? == 0 || header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "authorization" => auth = value.trim().to_string(),
                    "range" => range = value.trim().to_string(),
                    _ => {}
                }
            }
        }
        let mut parts = request_line.split_whitespace();
        let (method, target) = (parts.next()?, parts.next()?);
        let path = target.split('?').next()?;
        let with_body = method != "HEAD";
        let mut stream = reader.into_inner();
        let authorized = match &self.token {
            Some(token) => path == "/token" || auth == format!("Bearer {token}"),
            None => true,
        };
        let out = match self.routes.get(path) {
            _ if !authorized => {
                let challenge = format!(
                    r#"Bearer realm="{}",service="fake-registry",scope="repository:app:pull""#,
                    self.realm
                );
                let body =
                    br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
                response(
                    "401 Unauthorized",
                    &[
                        ("Content-Type", "application/json"),
                        ("WWW-Authenticate", &challenge),
                    ],
                    body,
                    with_body,
                )
            }
            Some((content_type, body)) => {
                let mut body = body.clone();
                let middle = body.len() / 2;
                let spoil = flip && self.bad_path.as_deref() == Some(path);
                if spoil && !self.cut {
                    body[middle] ^= 0xff;
                }
                let mut headers = vec![("Content-Type", content_type.as_str())];
                let last = path.rsplit('/').next().unwrap_or_default();
                if last.starts_with("sha256:") {
                    headers.push(("Docker-Content-Digest", last));
                }
                let from = range
                    .strip_prefix("bytes=")
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| *n < body.len());
                let content_range;
                let mut out = match from {
                    Some(from) => {
                        content_range = format!("bytes {from}-{}/{}", body.len() - 1, body.len());
                        headers.push(("Content-Range", &content_range));
                        response("206 Partial Content", &headers, &body[from..], with_body)
                    }
                    None => response("200 OK", &headers, &body, with_body),
                };
                if spoil && self.cut {
                    // Everything up to the middle of the body, then the connection closes.
                    out.truncate(out.len() - (body.len() - middle));
                }
                out
            }
            None => response(
                "404 Not Found",
                &[("Content-Type", "application/json")],
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"not found"}]}"#,
                with_body,
            ),
        };
        let _ = stream.write_all(&out);
        let _ = stream.flush();
        Some(format!("{} auth={auth} range={range}", request_line.trim()))
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let joined = thread.join();
            if !std::thread::panicking() {
                joined.expect("the fake registry's thread");
            }
        }
    }
}

#[test]
fn a_corrupted_blob_fails_the_pull_and_leaves_no_trace() {
    let forge = Forge::new();
    let tmp = tools_dir();
    build_images(tmp.path());
    let layout = tmp.path().join("lay");
    let manifest = layout_manifest(&layout, "v2");
    // The biggest layer (busybox's); v2's other layer is served intact and must go too.
    let bad = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64())
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let fake = Fake {
        bad_digest: Some(&bad),
        ..Fake::default()
    };
    let server = FakeRegistry::start(&forge.netns, &layout, "app", "v2", fake);
    let reference = format!("127.0.0.1:{}/app:v2", server.port);
    let before = store_entries(&forge);

    let pulled = forge.run(&["pull", &reference]);
    // Progress lines of the layers may come before the error.
    assert_ne!(pulled.code, 0, "{pulled}");
    let errors: Vec<&str> = pulled
        .stderr_lines()
        .into_iter()
        .filter(|l| l.starts_with("forge:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {pulled}");
    assert!(
        errors[0].contains(&reference) && errors[0].contains("digest mismatch"),
        "{pulled}"
    );
    assert!(
        !server.served(&bad).is_empty(),
        "the bad blob was not asked for"
    );
    let hex = &bad[7..];
    let blobs = forge.entries("blobs/sha256");
    assert!(
        !blobs.iter().any(|b| b.contains(hex)),
        "{blobs:?} holds the bad blob"
    );
    assert_no_temporaries(&forge);
    assert_eq!(
        store_entries(&forge),
        before,
        "a failed pull left something"
    );
    assert!(images_line(&forge, &reference).is_none());

    // Served intact now: the next pull completes and the image runs.
    server.corrupt.store(false, Ordering::SeqCst);
    forge.ok(&["pull", &reference]);
    let run = forge.ok(&["run", "--rm", "--net", "none", &reference, V2_SCRIPT]);
    assert_v2_files(&run);
    assert_no_temporaries(&forge);
}

#[test]
fn bearer_token_authentication_gets_a_token_from_the_realm() {
    let forge = Forge::new();
    let tmp = tools_dir();
    build_images(tmp.path());
    let fake = Fake {
        token: Some("forge-e2e-token"),
        ..Fake::default()
    };
    let server = FakeRegistry::start(&forge.netns, &tmp.path().join("lay"), "app", "v2", fake);
    let reference = format!("127.0.0.1:{}/app:v2", server.port);
    forge.ok(&["pull", &reference]);
    let run = forge.ok(&["run", "--rm", "--net", "none", &reference, V2_SCRIPT]);
    assert_v2_files(&run);
    // The token was asked for with the challenge's service and scope, and then every blob
    // was fetched with it.
    let tokens = server.served("GET /token");
    assert!(!tokens.is_empty(), "no token asked for");
    assert!(
        tokens
            .iter()
            .all(|t| t.contains("service=fake-registry") && t.contains("scope=repository")),
        "{tokens:?}"
    );
    let blobs = server.served("/v2/app/blobs/");
    assert!(!blobs.is_empty());
    assert!(
        blobs
            .iter()
            .any(|b| b.contains("auth=Bearer forge-e2e-token ")),
        "{blobs:?}"
    );
}

#[test]
fn docker_schema_2_manifests_pull_too() {
    let forge = Forge::new();
    let tmp = tools_dir();
    build_images(tmp.path());
    let registry = Registry::start(&forge.netns, None);
    // skopeo converts to a Docker schema 2 manifest (and docker media types) on the way.
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "-q", "--dest-tls-verify=false", "--format", "v2s2"])
        .arg(format!("oci:{}:v2", tmp.path().join("lay").display()))
        .arg(format!("docker://{}", registry.reference("app:docker")))
        .stdin(Stdio::null());
    forge.netns.enter(&mut cmd);
    let out = common::output(&mut cmd, TOOL_TIMEOUT);
    assert_eq!(out.code, 0, "{out}");
    let (_, headers, _) = http_get(
        &forge.netns,
        registry.port,
        "/v2/app/manifests/docker",
        &[("Accept", MANIFEST_TYPES)],
    )
    .unwrap();
    assert_eq!(
        headers["content-type"], "application/vnd.docker.distribution.manifest.v2+json",
        "skopeo did not push a schema 2 manifest"
    );
    let reference = registry.reference("app:docker");
    forge.ok(&["pull", &reference]);
    let run = forge.ok(&["run", "--rm", "--net", "none", &reference, V2_SCRIPT]);
    assert_v2_files(&run);
}

#[test]
fn a_single_platform_image_is_refused_for_another_platform() {
    let forge = Forge::new();
    let tmp = tools_dir();
    build_images(tmp.path());
    let registry = Registry::start(&forge.netns, None);
    registry.push(&tmp.path().join("lay"), "v1", "app:v1", false);
    let reference = registry.reference("app:v1");
    // The manifest (no index) is for the host's platform, as its config says.
    let before = store_entries(&forge);
    let other = forge.run(&["pull", "--platform", "linux/s390x", &reference]);
    assert_one_line_error(&other, &[&reference, "linux/s390x"]);
    assert_eq!(store_entries(&forge), before);
    // Not "up to date" either once the host's is in the store.
    forge.ok(&["pull", &reference]);
    let before = store_entries(&forge);
    let other = forge.run(&["pull", "--platform", "linux/s390x", &reference]);
    assert_one_line_error(&other, &[&reference, "linux/s390x"]);
    assert_eq!(store_entries(&forge), before);
    // The host's own platform, asked for by name, is fine.
    let host = format!("linux/{}", host_arch());
    forge.ok(&["pull", "--platform", &host, &reference]);
}

/// `forge login -u USER --password-stdin REGISTRY` with `password` on stdin, in `config_dir`.
fn login(forge: &Forge, config_dir: &Path, user: &str, password: &str, registry: &str) -> Out {
    use std::io::Write;
    let mut cmd = forge.command(&["login", "-u", user, "--password-stdin", registry]);
    cmd.env("DOCKER_CONFIG", config_dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("forge login");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    Out {
        code: common::exit_code(out.status),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn login_checks_the_password_and_stores_it_for_pulls() {
    let forge = Forge::new();
    let tmp = tools_dir();
    build_images(tmp.path());
    let registry = Registry::start(&forge.netns, Some(("forge-user", "s3cret-pass")));
    registry.push(&tmp.path().join("lay"), "v2", "app:v2", false);
    let config = tmp.path().join("login");
    std::fs::create_dir(&config).unwrap();
    let wrong = login(&forge, &config, "forge-user", "nope", &registry.host());
    assert_ne!(wrong.code, 0, "{wrong}");
    assert!(wrong.stderr.contains("refused"), "{wrong}");
    assert!(
        !config.join("config.json").exists(),
        "a refused login was stored"
    );
    let right = login(
        &forge,
        &config,
        "forge-user",
        "s3cret-pass",
        &registry.host(),
    );
    assert_eq!(right.code, 0, "{right}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(config.join("config.json"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "credentials readable by others");
    let out = forge_with_config(&forge, &config, &["pull", &registry.reference("app:v2")]);
    assert_eq!(out.code, 0, "{out}");
}

/// A CA (ca.crt) and a server certificate it signed for `ip` (server.crt, server.key), in `dir`.
fn make_certificates(dir: &Path, ip: &str) {
    sh(&format!(
        r#"cd {dir}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=forge-e2e-ca -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj /CN={ip} -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=IP:{ip}\n' > san.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile san.ext -out server.crt 2>/dev/null"#,
        dir = dir.display()
    ));
}

#[test]
fn an_https_registry_is_trusted_only_with_its_ca_in_certs_d() {
    let forge = Forge::new();
    let tmp = tools_dir();
    build_images(tmp.path());
    // Not a loopback address, so Forge speaks HTTPS to it (loopback registries get HTTP).
    let ip = "10.200.0.1";
    forge
        .netns
        .ok("ip", &["addr", "add", &format!("{ip}/32"), "dev", "lo"]);
    let tls = tmp.path().join("tls");
    std::fs::create_dir(&tls).unwrap();
    make_certificates(&tls, ip);
    let registry = Registry::start_tls(&forge.netns, ip, &tls);
    registry.push(&tmp.path().join("lay"), "v2", "app:v2", false);
    let reference = registry.reference("app:v2");
    let certs_d = tmp.path().join("certs.d");
    std::fs::create_dir(&certs_d).unwrap();
    let pull = |forge: &Forge| {
        let mut cmd = forge.command(&["pull", &reference]);
        cmd.env("FORGE_CERTS_DIR", &certs_d);
        common::output(&mut cmd, common::COMMAND_TIMEOUT)
    };

    let before = store_entries(&forge);
    let refused = pull(&forge);
    assert_ne!(refused.code, 0, "an unknown CA was trusted: {refused}");
    assert_one_line_error(&refused, &[&reference, "certificate"]);
    assert_eq!(
        store_entries(&forge),
        before,
        "a refused pull changed the store"
    );

    let host_dir = certs_d.join(registry.host());
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::copy(tls.join("ca.crt"), host_dir.join("ca.crt")).unwrap();
    let pulled = pull(&forge);
    assert_eq!(pulled.code, 0, "{pulled}");
    let run = forge.ok(&["run", "--rm", "--net", "none", &reference, V2_SCRIPT]);
    assert_v2_files(&run);
    assert!(
        registry.requests("/v2/app/blobs/") > 0,
        "{}",
        registry.log()
    );
}

/// The script for `a_full_disk_during_unpack_...`: on a 4 MiB tmpfs of a private mount namespace,
/// pull (fails), list the store, grow the disk, pull again and list the images.
const FULL_DISK_SCRIPT: &str = r#"root=$1 forge=$2 ref=$3
mount -t tmpfs -o size=4m forge-e2e-full "$root"
"$forge" --root "$root" pull "$ref"; echo "exit=$?"
store() { echo "store:" $(cd "$root" && ls -A images blobs/sha256 layers/sha256 | grep -v ':$'); }
store
mount -o remount,size=64m "$root"
"$forge" --root "$root" pull "$ref" >/dev/null 2>&1; echo "exit=$?"
store
"$forge" --root "$root" images"#;

#[test]
fn a_full_disk_during_unpack_fails_cleanly_and_a_later_pull_completes() {
    let forge = Forge::new();
    let tmp = tools_dir();
    // 8 MiB of zeros: a few KiB compressed (the download fits), too big to unpack on 4 MiB.
    sh(&format!(
        r#"cd {dir}
umoci init --layout lay
umoci new --image lay:big
umoci unpack --image lay:big b >/dev/null
head -c 8388608 /dev/zero > b/rootfs/big
umoci repack --image lay:big b"#,
        dir = tmp.path().display()
    ));
    let registry = Registry::start(&forge.netns, None);
    registry.push(&tmp.path().join("lay"), "big", "big:v1", false);
    let reference = registry.reference("big:v1");
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        FULL_DISK_SCRIPT,
        "sh",
    ])
    .arg(&root)
    .arg(common::forge_bin())
    .arg(&reference);
    forge.netns.enter(&mut cmd);
    let out = common::output(&mut cmd, TOOL_TIMEOUT);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    // stderr also has the plain progress lines; one of them is the error.
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("forge:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {out}");
    let error = errors[0];
    assert!(
        error.contains(&reference) && error.contains("No space left on device"),
        "{error}"
    );
    assert_eq!(lines[0], "exit=1", "{out}");
    assert_eq!(lines[1], "store:", "the failed pull left something: {out}");
    assert_eq!(lines[2], "exit=0", "the pull after growing the disk: {out}");
    // Manifest, config and layer blobs, the unpacked layer, the image record.
    assert!(lines[3].split_whitespace().count() >= 5, "{out}");
    assert!(lines[5].starts_with(&reference), "{out}");
    // The size shown is the unpacked one (8 MiB of zeros), not the 21 KiB download.
    assert!(lines[5].trim_end().ends_with("8.389MB"), "{out}");
}

#[test]
fn an_interrupted_pull_keeps_what_arrived_and_the_next_fetches_only_the_rest() {
    let forge = Forge::new();
    let tmp = tools_dir();
    build_images(tmp.path());
    let layout = tmp.path().join("lay");
    let manifest = layout_manifest(&layout, "v2");
    let big = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64())
        .unwrap()
        .clone();
    let (digest, size) = (
        big["digest"].as_str().unwrap(),
        big["size"].as_u64().unwrap(),
    );
    let fake = Fake {
        bad_digest: Some(digest),
        cut: true,
        ..Fake::default()
    };
    let server = FakeRegistry::start(&forge.netns, &layout, "app", "v2", fake);
    let reference = format!("127.0.0.1:{}/app:v2", server.port);

    let cut = forge.run(&["pull", &reference]);
    assert_ne!(cut.code, 0, "{cut}");
    let errors: Vec<&str> = cut
        .stderr_lines()
        .into_iter()
        .filter(|l| l.starts_with("forge:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {cut}");
    let half = size / 2;
    assert!(
        errors[0].contains(&reference) && errors[0].contains(&format!("kept {half} bytes")),
        "{cut}"
    );
    assert!(images_line(&forge, &reference).is_none());
    // What arrived is kept aside, not as a blob.
    let partial = format!("blobs/sha256/.partial-{}", &digest[7..]);
    let kept = std::fs::metadata(forge.root().join(&partial)).expect("the partial download");
    assert_eq!(kept.len(), half);
    assert!(!forge
        .entries("blobs/sha256")
        .iter()
        .any(|b| b == &digest[7..]));

    server.corrupt.store(false, Ordering::SeqCst);
    forge.ok(&["pull", &reference]);
    let gets = server.served(&format!("/blobs/{digest}"));
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert!(gets[0].ends_with("range="), "{gets:?}");
    assert!(
        gets[1].ends_with(&format!("range=bytes={half}-")),
        "{gets:?}"
    );
    assert_no_temporaries(&forge);
    let run = forge.ok(&["run", "--rm", "--net", "none", &reference, V2_SCRIPT]);
    assert_v2_files(&run);
}
