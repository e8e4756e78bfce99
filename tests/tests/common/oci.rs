//! Images for the image tests, made with the real tools (umoci, skopeo) from busybox-static.

use std::path::Path;
use std::process::Command;

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
