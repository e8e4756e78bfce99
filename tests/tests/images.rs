//! OCI images: `forge load` of archives made by real tools (umoci, skopeo), layers stacked with
//! their whiteouts, `forge save` read back by skopeo, `rmi` and its garbage collection, and
//! archives that lie (corrupt blobs, hostile layers).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::oci::{build_images, sh, sha256_hex, tools_dir};
use common::Forge;

#[test]
fn loaded_layers_stack_with_their_whiteouts_and_the_config_applies() {
    let forge = Forge::new();
    let tmp = tools_dir();
    build_images(tmp.path());
    let oci = tmp.path().join("oci.tar");
    let out = forge.ok(&["load", "-i", oci.to_str().unwrap()]);
    assert!(
        out.stdout.contains("Loaded image: oci:v1") && out.stdout.contains("oci:v2"),
        "{out}"
    );
    let v2 = forge.ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "oci:v2",
        "pwd; echo $FROM_IMAGE; ls /dir; cat /keep; ls /a.txt 2>&1 || true",
    ]);
    let lines: Vec<&str> = v2.stdout.lines().collect();
    assert_eq!(&lines[..4], ["/dir", "yes", "y", "k"], "{v2}");
    assert!(
        lines[4].contains("No such file"),
        "a whiteout did not hide /a.txt: {v2}"
    );
    let v1 = forge.ok(&["run", "--rm", "--net", "none", "oci:v1"]);
    assert_eq!(v1.stdout, "default-cmd\n", "entrypoint + cmd: {v1}");
    let v1_files = forge.ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "oci:v1",
        "cat /a.txt; ls /dir",
    ]);
    assert_eq!(v1_files.stdout, "a\nx\n", "{v1_files}");
    let inspect = forge.ok(&["image", "inspect", "oci:v1"]);
    let v1: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("json");
    let config = &v1[0]["Config"];
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c"]),
        "{inspect}"
    );
    assert_eq!(
        config["Cmd"],
        serde_json::json!(["echo default-cmd"]),
        "{inspect}"
    );
    assert_eq!(config["StopSignal"], "SIGUSR1", "{inspect}");
    assert!(config["ExposedPorts"].get("80/tcp").is_some(), "{inspect}");
    assert_eq!(v1[0]["RootFS"]["Layers"].as_array().map(Vec::len), Some(1));
    let unknown = forge.run(&["image", "inspect", "oci:nope"]);
    assert_ne!(unknown.code, 0);
    assert_eq!(unknown.stderr_lines().len(), 1, "{unknown}");
    // v1's layer is shared with v2: stored once.
    let layers = std::fs::read_dir(forge.root().join("layers/sha256"))
        .unwrap()
        .count();
    assert_eq!(
        layers, 2,
        "two distinct layers for two images that share one"
    );
}

#[test]
fn stop_sends_the_images_stop_signal() {
    let forge = Forge::new();
    let tmp = tools_dir();
    build_images(tmp.path());
    forge.ok(&["load", "-i", tmp.path().join("oci.tar").to_str().unwrap()]);
    // PID 1 ignores SIGTERM (no handler) but traps the image's SIGUSR1.
    let script = "trap 'exit 7' USR1; while true; do sleep 0.1; done";
    forge.ok(&[
        "run", "-d", "--name", "box", "--net", "none", "oci:v1", script,
    ]);
    let started = std::time::Instant::now();
    forge.ok(&["stop", "-t", "10", "box"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "SIGUSR1 was not sent"
    );
    assert_eq!(forge.exit_of("box")["code"], 7);
}

#[test]
fn docker_archives_load_and_saved_images_are_valid_oci() {
    let forge = Forge::new();
    let tmp = tools_dir();
    build_images(tmp.path());
    let docker = tmp.path().join("docker.tar");
    let out = forge.ok(&["load", "-i", docker.to_str().unwrap()]);
    assert!(
        out.stdout.contains("Loaded image: example.org/app:v2"),
        "{out}"
    );
    let run = forge.ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "example.org/app:v2",
        "ls /dir",
    ]);
    assert_eq!(run.stdout, "y\n");
    let saved = tmp.path().join("saved.tar");
    forge.ok(&["save", "-o", saved.to_str().unwrap(), "example.org/app:v2"]);
    let inspect = Command::new("skopeo")
        .args(["inspect", &format!("oci-archive:{}", saved.display())])
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(json["Layers"].as_array().map(Vec::len), Some(2), "{json}");
    // Round trip: remove, load what was saved, run again.
    forge.ok(&["rmi", "example.org/app:v2"]);
    forge.ok(&["load", "-i", saved.to_str().unwrap()]);
    let again = forge.ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "example.org/app:v2",
        "cat /keep",
    ]);
    assert_eq!(again.stdout, "k\n");
}

#[test]
fn rmi_refuses_while_used_and_collects_unused_layers() {
    let forge = Forge::new();
    let tmp = tools_dir();
    build_images(tmp.path());
    forge.ok(&["load", "-i", tmp.path().join("oci.tar").to_str().unwrap()]);
    forge.ok(&[
        "run", "-d", "--name", "user", "--net", "none", "oci:v1", "sleep 60",
    ]);
    let refused = forge.run(&["rmi", "oci:v1"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("user"), "{refused}");
    forge.ok(&["rm", "-f", "user"]);
    forge.ok(&["rmi", "oci:v1"]);
    // v2 still needs both layers.
    let count = |dir: &str| std::fs::read_dir(forge.root().join(dir)).map_or(0, |d| d.count());
    assert_eq!(count("layers/sha256"), 2);
    forge.ok(&["rmi", "oci:v2"]);
    assert_eq!(count("layers/sha256"), 0, "unused layers stay");
    assert_eq!(count("blobs/sha256"), 0, "unused blobs stay");
    let gone = forge.run(&["run", "--rm", "--net", "none", "oci:v2", "true"]);
    assert_eq!(gone.code, 125, "{gone}");
}

/// The store holds nothing of a failed load: no image, no blob or layer, no temporary.
fn assert_store_empty(forge: &Forge) {
    for dir in ["blobs/sha256", "layers/sha256", "load"] {
        let path: PathBuf = forge.root().join(dir);
        let left: Vec<String> = std::fs::read_dir(&path)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "{} holds {left:?}", path.display());
    }
    let images = forge.ok(&["images"]).stdout;
    assert_eq!(
        images.lines().count(),
        2,
        "only the header and host: {images}"
    );
}

#[test]
fn a_corrupt_blob_fails_the_load_and_leaves_nothing() {
    let forge = Forge::new();
    let tmp = tools_dir();
    build_images(tmp.path());
    // Flip one byte in the middle of the biggest blob (busybox's layer).
    sh(&format!(
        r#"cd {dir}/lay/blobs/sha256
big=$(ls -S | head -1)
size=$(stat -c %s "$big")
printf 'Z' | dd of="$big" bs=1 seek=$((size / 2)) conv=notrunc status=none
cd {dir}/lay && tar -cf ../bad.tar ."#,
        dir = tmp.path().display()
    ));
    let bad = forge.run(&["load", "-i", tmp.path().join("bad.tar").to_str().unwrap()]);
    assert_ne!(bad.code, 0, "{bad}");
    assert!(bad.stderr.contains("digest mismatch"), "{bad}");
    assert_eq!(bad.stderr_lines().len(), 1, "{bad}");
    assert_store_empty(&forge);
    // A good archive still loads afterwards.
    build_images(&tmp.path().join("again").tap_mkdir());
    forge.ok(&[
        "load",
        "-i",
        tmp.path().join("again/oci.tar").to_str().unwrap(),
    ]);
}

#[test]
fn a_hostile_layer_is_refused_and_writes_nothing_outside() {
    let forge = Forge::new();
    let tmp = tools_dir();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    // A docker-archive whose layer climbs out with `..` and through a symlink it made itself.
    let layer = hostile_layer(&outside);
    let diff = sha256_hex(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["sha256:{diff}"]}}}}"#
    );
    let manifest = r#"[{"Config":"config.json","RepoTags":["hostile:1"],"Layers":["layer.tar"]}]"#;
    let mut archive = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("manifest.json", manifest.as_bytes()),
        ("config.json", config.as_bytes()),
        ("layer.tar", &layer[..]),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_path(name).unwrap();
        header.set_cksum();
        archive.append(&header, data).unwrap();
    }
    std::fs::write(
        tmp.path().join("hostile.tar"),
        archive.into_inner().unwrap(),
    )
    .unwrap();
    let out = forge.run(&[
        "load",
        "-i",
        tmp.path().join("hostile.tar").to_str().unwrap(),
    ]);
    if out.code == 0 {
        // Neutralised instead of refused: the files must be inside the layer.
        let run = forge.ok(&["run", "--rm", "--net", "none", "hostile:1", "true"]);
        assert_eq!(run.code, 0);
    } else {
        assert_eq!(out.stderr_lines().len(), 1, "{out}");
    }
    let escaped: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
    assert!(
        escaped.is_empty(),
        "a layer wrote outside the store: {escaped:?}"
    );
    assert!(!tmp.path().join("climbed").exists() && !Path::new("/climbed").exists());
}

/// A layer tar with a symlink to `outside`, a file written through it, and a `../../` entry.
fn hostile_layer(outside: &Path) -> Vec<u8> {
    let mut layer = tar::Builder::new(Vec::new());
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    link.set_mode(0o777);
    link.set_path("link").unwrap();
    link.set_link_name(outside).unwrap();
    link.set_cksum();
    layer.append(&link, &[][..]).unwrap();
    for name in ["link/through-symlink", "../../climbed"] {
        let mut file = tar::Header::new_gnu();
        file.set_size(5);
        file.set_mode(0o644);
        // Raw name bytes: the tar crate refuses to *write* `..` through set_path.
        let raw = &mut file.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        file.set_cksum();
        layer.append(&file, &b"pwned"[..]).unwrap();
    }
    layer.into_inner().unwrap()
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
