//! A tiny registry written for the tests, serving one image of an OCI layout and misbehaving on
//! purpose (a corrupted or cut-off blob, Bearer-token authentication), on a thread of the test.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::oci::{layout_descriptor, read_blob};
use super::Netns;

/// A tiny registry that serves one image (manifest by tag and digest, blobs, honouring
/// `Range: bytes=N-`), optionally behind Bearer-token authentication, and that spoils one blob
/// while `corrupt` is set: flips a byte in its middle, or cuts the connection there. Lives in
/// the test's namespace; stopped on drop.
pub struct FakeRegistry {
    pub port: u16,
    /// While set, the bad blob is spoiled.
    pub corrupt: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Request lines served, each followed by ` auth=` and ` range=` and those headers.
    requests: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// path → (content type, body)
type Routes = BTreeMap<String, (String, Vec<u8>)>;

/// How the fake registry behaves.
#[derive(Default)]
pub struct Fake<'a> {
    /// The blob to corrupt (while `FakeRegistry::corrupt` is set, initially true).
    pub bad_digest: Option<&'a str>,
    /// Demand `Authorization: Bearer TOKEN`, handed out by `GET /token` (the challenge's realm).
    pub token: Option<&'a str>,
    /// Spoil the bad blob by closing the connection halfway instead of flipping a byte.
    pub cut: bool,
}

impl FakeRegistry {
    /// Serves `repo`:`tag` of `layout`.
    pub fn start(netns: &Netns, layout: &Path, repo: &str, tag: &str, fake: Fake) -> Self {
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
    pub fn served(&self, needle: &str) -> Vec<String> {
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
