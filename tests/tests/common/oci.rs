//! Images for the image tests, made with the real tools (umoci, skopeo) from busybox-static;
//! reading and writing the blobs of their OCI layouts; and what a test checks of Forge's store.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Forge;

/// Runs a shell script (the image-building tools), failing the test if it fails.
pub fn sh(script: &str) {
    let out = Command::new("sh")
        .args(["-euc", script])
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An OCI layout at DIR/lay with two tags made by umoci from busybox-static:
/// v1 = busybox, /a.txt, /dir/x, /keep, exposing 80/tcp and stopping with SIGUSR1;
/// v2 = v1 minus /a.txt, with /dir replaced by /dir/y.
/// Also DIR/oci.tar (the layout as a tar) and DIR/docker.tar (`skopeo copy` to docker-archive).
pub fn build_images(dir: &Path) {
    sh(&format!(
        r#"cd {dir}
umoci init --layout lay
umoci new --image lay:v1
umoci unpack --image lay:v1 b1 >/dev/null
mkdir -p b1/rootfs/bin b1/rootfs/dir
cp "$(command -v busybox)" b1/rootfs/bin/busybox
ln -s busybox b1/rootfs/bin/sh
echo a > b1/rootfs/a.txt; echo x > b1/rootfs/dir/x; echo k > b1/rootfs/keep
umoci repack --image lay:v1 b1
umoci config --image lay:v1 --config.env FROM_IMAGE=yes --config.workingdir /dir \
    --config.entrypoint /bin/sh --config.entrypoint -c --config.cmd 'echo default-cmd' \
    --config.stopsignal SIGUSR1 --config.exposedports 80/tcp
umoci unpack --image lay:v1 b2 >/dev/null
rm b2/rootfs/a.txt; rm -rf b2/rootfs/dir; mkdir b2/rootfs/dir; echo y > b2/rootfs/dir/y
umoci repack --image lay:v2 b2
(cd lay && tar -cf ../oci.tar .)
skopeo copy -q oci:lay:v2 docker-archive:{dir}/docker.tar:example.org/app:v2
rm -rf b1 b2"#,
        dir = dir.display()
    ));
}

pub fn tools_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("forge-e2e-oci-")
        .tempdir()
        .unwrap()
}

/// The sha256 of `data`, in hex, as `sha256sum` prints it.
pub fn sha256_hex(data: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(data)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The OCI architecture name of the machine the tests run on (busybox-static is built for it).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The OCI layout's descriptor for `tag` (from its index.json).
pub fn layout_descriptor(layout: &Path, tag: &str) -> serde_json::Value {
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

pub fn blob_file(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").expect("a sha256 digest"))
}

pub fn read_blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(blob_file(layout, digest)).unwrap()
}

/// Stores `data` as a blob of the layout; returns its descriptor (`mediaType`, `digest`, `size`).
pub fn write_blob(layout: &Path, media_type: &str, data: &[u8]) -> serde_json::Value {
    let digest = format!("sha256:{}", sha256_hex(data));
    std::fs::write(blob_file(layout, &digest), data).unwrap();
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": data.len()})
}

/// The manifest of `tag` in the layout, parsed.
pub fn layout_manifest(layout: &Path, tag: &str) -> serde_json::Value {
    let desc = layout_descriptor(layout, tag);
    serde_json::from_slice(&read_blob(layout, desc["digest"].as_str().unwrap())).unwrap()
}

/// Every entry of the store's image, blob and layer directories (as `DIR/NAME`).
pub fn store_entries(forge: &Forge) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for dir in ["images", "blobs/sha256", "layers/sha256"] {
        for name in forge.entries(dir) {
            all.insert(format!("{dir}/{name}"));
        }
    }
    all
}

/// Fails unless no temporary entry (`.tmp-*` or any dot file) is left in the store.
pub fn assert_no_temporaries(forge: &Forge) {
    let temps: Vec<String> = store_entries(forge)
        .into_iter()
        .filter(|e| e.rsplit('/').next().is_some_and(|n| n.starts_with('.')))
        .collect();
    assert!(
        temps.is_empty(),
        "temporary files left in the store: {temps:?}"
    );
}
