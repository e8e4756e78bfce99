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

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use common::fake_registry::{Fake, FakeRegistry};
use common::oci::{
    assert_no_temporaries, build_images, host_arch, layout_descriptor, layout_manifest, read_blob,
    sh, store_entries, tools_dir, write_blob,
};
use common::registry::{
    docker_config, forge_with_config, http_get, Registry, MANIFEST_TYPES, TOOL_TIMEOUT,
};
use common::{assert_one_line_error, Forge, Out};

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
    let line = forge
        .images_line(&reference)
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

/// A registry in `forge`'s namespace with the test images as `app:v1` and `app:v2`; the tools
/// directory (which holds the layout, `lay`), the registry and the two references.
fn registry_with_v1_and_v2(forge: &Forge) -> (tempfile::TempDir, Registry<'_>, String, String) {
    let tmp = tools_dir();
    build_images(tmp.path());
    let layout = tmp.path().join("lay");
    let registry = Registry::start(&forge.netns, None);
    registry.push(&layout, "v1", "app:v1", false);
    registry.push(&layout, "v2", "app:v2", false);
    let (v1, v2) = (registry.reference("app:v1"), registry.reference("app:v2"));
    (tmp, registry, v1, v2)
}

#[test]
fn run_pulls_a_missing_image_and_obeys_pull_never_and_always() {
    let forge = Forge::new();
    let (tmp, registry, v1, v2) = registry_with_v1_and_v2(&forge);
    let layout = tmp.path().join("lay");

    // Missing (the default): pulled first; the container's output alone is on stdout.
    let first = forge.ok(&["run", "--rm", "--net", "none", &v1]);
    assert_eq!(first.stdout, "default-cmd\n", "entrypoint + cmd: {first}");
    assert!(forge.images_line(&v1).is_some(), "{v1} was not kept");

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
    let line = forge.images_line(&reference).expect("pulled image listed");
    assert!(
        line.contains(&host_digest[..19]),
        "{line} (host's {host_digest})"
    );
    let run = forge.ok(&["run", "--rm", "--net", "none", &reference, V2_SCRIPT]);
    assert_v2_files(&run);

    // --platform picks the other entry.
    let platform = format!("linux/{other_arch}");
    forge.ok(&["pull", "--platform", &platform, &reference]);
    let line = forge.images_line(&reference).expect("pulled image listed");
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

    let closed = format!("127.0.0.1:{}", forge.netns.free_port());
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
    assert!(forge.images_line(&reference).is_none());

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
    assert!(forge.images_line(&reference).is_none());
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

#[test]
fn forge_supervise_pulls_a_missing_image_with_progress_and_obeys_pull_policy_never() {
    use common::supervisor::{compose_file, stop_cleanly, Supervisor, UP};
    let forge = Forge::new();
    let (_tmp, registry, v1, v2) = registry_with_v1_and_v2(&forge);
    let script = "cat /a.txt; trap 'exit 0' TERM; while true; do sleep 1 & wait $!; done";
    let file = compose_file(&format!(
        "[services.app]\nimage = \"{v1}\"\ncommand = [\"{script}\"]\n"
    ));
    let mut sup = Supervisor::start(&forge, "pulled", &file.path, &[]);
    sup.wait_output("app", "a.txt", |t| t == "a");
    let said = sup.err.text();
    assert!(said.contains(&format!("pulling {v1}")), "{}", sup.dump());
    assert!(
        said.contains(": downloading ") && said.contains(": done"),
        "{}",
        sup.dump()
    );
    assert!(forge.images_line(&v1).is_some(), "{v1} was not kept");
    stop_cleanly(&forge, &mut sup);

    // never, with the image absent: the start fails naming it, and the registry is not asked.
    let manifests = registry.requests("/v2/app/manifests/");
    let file = compose_file(&format!(
        "[services.app]\nimage = \"{v2}\"\npull_policy = \"never\"\ncommand = [\"{script}\"]\n"
    ));
    let mut sup = Supervisor::start(&forge, "never", &file.path, &[]);
    assert_eq!(sup.finish(UP), 1, "{}", sup.dump());
    assert!(
        sup.err.text().contains("its pull_policy is never"),
        "{}",
        sup.dump()
    );
    assert_eq!(registry.requests("/v2/app/manifests/"), manifests);
    assert!(forge.images_line(&v2).is_none());
}

#[test]
fn forge_compose_pull_fetches_each_services_image_once_and_then_finds_it_up_to_date() {
    let forge = Forge::new();
    let (_tmp, registry, v1, v2) = registry_with_v1_and_v2(&forge);
    let file = common::supervisor::compose_file(&format!(
        "[services.a]\nimage = \"{v1}\"\n\n[services.b]\nimage = \"{v1}\"\n\n[services.c]\nimage = \"{v2}\"\n\n[services.d]\nimage = \"host\"\n"
    ));
    let path = file.path.to_str().unwrap();
    // Only the named service's image.
    forge.ok(&["compose", "-f", path, "pull", "c"]);
    assert!(forge.images_line(&v2).is_some(), "{v2} was not pulled");
    assert!(forge.images_line(&v1).is_none(), "{v1} was pulled for c");
    // Every service's: v1 once for a and b, v2 again (up to date); the host image is not asked for.
    let manifests = registry.requests("/v2/app/manifests/");
    let all = forge.ok(&["compose", "-f", path, "pull"]);
    assert!(forge.images_line(&v1).is_some(), "{all}");
    assert!(
        all.stderr.contains(&format!("{v2}: image is up to date")),
        "{all}"
    );
    assert_eq!(all.stderr.matches("pulled sha256:").count(), 1, "{all}");
    assert!(
        registry.requests("/v2/app/manifests/") >= manifests + 2,
        "{all}"
    );
    let unknown = forge.run(&["compose", "-f", path, "pull", "nope"]);
    assert_eq!(unknown.code, 1, "{unknown}");
    assert!(
        unknown.stderr.contains("no such service: nope"),
        "{unknown}"
    );
}
