//! Debian's `docker-registry` serving on 127.0.0.1 inside a test's network namespace (plain HTTP,
//! basic auth or TLS), pushed to with skopeo; a small HTTP client for asking it directly; and the
//! Docker-format credentials forge reads.
//!
//! # Caveats
//! The registry and forge both run inside the test's private namespace, so no traffic leaves it.
//! The registry is killed and its temporary directory removed when the test ends, pass or fail.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Forge, Netns, Out};

/// How long image-building and pushing tools may take.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// Standard base64 with padding, for basic-auth headers and Docker config files.
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

/// One HTTP/1.0 GET to 127.0.0.1:`port` from inside `netns`: status, headers (lowercase names)
/// and body, or `None` when nothing answers.
pub fn http_get(
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

/// What a client accepts as a manifest: OCI and Docker, single images and indexes.
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Debian's `docker-registry` serving HTTP on 127.0.0.1 inside the test's network namespace,
/// storing in a temporary directory; killed (and the directory removed) on drop.
pub struct Registry<'a> {
    netns: &'a Netns,
    child: Child,
    /// 127.0.0.1, or the address its TLS certificate names.
    ip: String,
    pub port: u16,
    /// `user:pass` when the registry wants basic authentication.
    creds: Option<String>,
    dir: tempfile::TempDir,
}

impl<'a> Registry<'a> {
    /// Starts a registry, with htpasswd basic auth for `creds` (`(user, password)`) if given.
    pub fn start(netns: &'a Netns, creds: Option<(&str, &str)>) -> Self {
        Self::start_on(netns, "127.0.0.1", creds, None)
    }

    /// Starts a registry serving HTTPS on `ip` with `tls`'s server.crt and server.key.
    pub fn start_tls(netns: &'a Netns, ip: &str, tls: &Path) -> Self {
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
        let port = netns.free_port();
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
        super::eventually(Duration::from_secs(20), "the registry to answer", || {
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
    pub fn host(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// `IP:PORT/REPO_TAG`
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host())
    }

    /// What the registry logged so far (access log lines included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many requests the access log shows whose request line contains `needle`
    /// (e.g. `/v2/app/blobs/`).
    pub fn requests(&self, needle: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains(" HTTP/1.1\" ") && l.contains(needle))
            .count()
    }

    /// `skopeo copy [--all] oci:LAYOUT:TAG docker://IP:PORT/DEST`, inside the namespace.
    pub fn push(&self, layout: &Path, tag: &str, dest: &str, all: bool) {
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
        let out = super::output(&mut cmd, TOOL_TIMEOUT);
        assert_eq!(out.code, 0, "skopeo push failed: {out}\n{}", self.log());
    }

    /// The digest the registry gives the manifest (or index) at `repo`:`tag`.
    pub fn manifest_digest(&self, repo: &str, tag: &str) -> String {
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
                !super::process_alive(i64::from(pid)),
                "the registry (pid {pid}) outlived its test"
            );
        }
    }
}

/// A directory holding a Docker-format config.json with `auths` for `host`.
pub fn docker_config(parent: &Path, name: &str, host: &str, user_pass: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    let config = serde_json::json!({"auths": {host: {"auth": base64(user_pass.as_bytes())}}});
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir
}

/// `forge ARGS...` with `DOCKER_CONFIG=docker_config` (forge reads credentials from there).
pub fn forge_with_config(forge: &Forge, docker_config: &Path, args: &[&str]) -> Out {
    let mut cmd = forge.command(args);
    cmd.env("DOCKER_CONFIG", docker_config);
    let out = super::output(&mut cmd, super::COMMAND_TIMEOUT);
    forge.note_ids(forge.container_ids());
    out
}
