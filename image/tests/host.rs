//! Images built from the host's binaries, run with chroot(8). Needs root (chroot, and files
//! owned by root in the image); as a non-root user these fail, saying so.

mod common;

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::needs_root;
use common::store::leftovers;
use forge_image::host::{build_host_image, testing, HostImageError};
use forge_image::{Image, ImageError, ImageStore};

const WHY: &str = "it builds images owned by root and runs them with chroot";

fn chroot(rootfs: &Path, argv: &[&str]) -> String {
    let out = Command::new("chroot")
        .arg(rootfs)
        .args(argv)
        .output()
        .expect("run chroot");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "chroot {argv:?}: {} {stderr}",
        out.status
    );
    String::from_utf8(out.stdout).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn assert_skeleton(image: &Image) {
    let root = &image.layers[0];
    for dir in ["proc", "sys", "dev", "etc", "home", "run", "var"] {
        assert!(root.join(dir).is_dir(), "{dir}");
    }
    assert_eq!(mode(&root.join("tmp")), 0o1777);
    assert_eq!(mode(&root.join("root")), 0o700);
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(
        passwd.starts_with("root:x:0:0:root:/root:/bin/sh\n"),
        "{passwd}"
    );
    assert!(passwd.contains("nobody:x:65534:65534:nobody:/nonexistent:/bin/false"));
    let group = fs::read_to_string(root.join("etc/group")).unwrap();
    assert_eq!(group, "root:x:0:\nnogroup:x:65534:\n");
    for file in ["hostname", "hosts", "resolv.conf"] {
        assert_eq!(
            fs::metadata(root.join("etc").join(file)).unwrap().len(),
            0,
            "{file}"
        );
    }
    let config = &image.config;
    assert_eq!(config.env, [format!("PATH={}", testing::DEFAULT_PATH)]);
    assert_eq!(config.working_dir, "/");
    assert!(config.created > 0);
    assert_eq!(
        config.size,
        forge_image::testing::regular_file_bytes(root).unwrap()
    );
}

#[test]
fn bash_image_runs_in_chroot() {
    needs_root(WHY);
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::new(tmp.path().join("images"));
    // A binary off PATH gets a /usr/local/bin link.
    let own = tmp.path().join("tools/mytrue");
    fs::create_dir_all(own.parent().unwrap()).unwrap();
    fs::copy("/bin/true", &own).unwrap();
    let bins = [
        "/bin/bash".to_string(),
        "ls".into(),
        own.to_string_lossy().into_owned(),
    ];
    let image = build_host_image(&store, "bash", &bins).unwrap();
    assert_skeleton(&image);
    assert_eq!(image.config.cmd, ["/bin/bash"]);
    let script = "echo ok; ls / >/dev/null; PATH=/usr/local/bin; mytrue && echo path-ok";
    assert_eq!(
        chroot(&image.layers[0], &["/bin/bash", "-c", script]),
        "ok\npath-ok\n"
    );
    // Merged /usr and the loader's link are mirrored, not flattened.
    for link in ["bin", "lib64"] {
        let host = Path::new("/").join(link);
        if host.is_symlink() {
            let got = fs::read_link(image.layers[0].join(link)).unwrap();
            assert_eq!(got, fs::read_link(&host).unwrap(), "{link}");
        }
    }
    assert_eq!(
        mode(&image.layers[0].join("usr/bin/bash")),
        mode(Path::new("/usr/bin/bash"))
    );
    assert!(
        leftovers(&store) == [OsString::from("bash")],
        "{:?}",
        leftovers(&store)
    );
}

#[test]
fn default_image_is_static_busybox() {
    needs_root(WHY);
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::new(tmp.path());
    assert!(
        testing::static_busybox().is_some(),
        "busybox-static is a test prerequisite"
    );
    let image = build_host_image(&store, "bb", &[]).unwrap();
    assert_skeleton(&image);
    let root = &image.layers[0];
    assert!(fs::symlink_metadata(root.join("bin/busybox"))
        .unwrap()
        .is_file());
    assert_eq!(
        fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        fs::read_link(root.join("usr/bin/wget")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(image.config.cmd, ["/bin/sh"]);
    assert_eq!(
        chroot(
            root,
            &["/bin/sh", "-c", "wget --help 2>&1 | head -c0; echo ok"]
        ),
        "ok\n"
    );

    let again = build_host_image(&store, "bb", &[]).unwrap_err();
    assert!(
        matches!(again, HostImageError::Image(ImageError::Exists { .. })),
        "{again}"
    );
}

#[test]
fn default_image_without_busybox_is_bash_and_coreutils() {
    needs_root(WHY);
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::new(tmp.path());
    let image = testing::build(&store, "basic", &[], || None).unwrap();
    assert_skeleton(&image);
    assert_eq!(image.config.cmd, ["/bin/sh"]);
    let script = "cd /etc && ls >/dev/null && grep -c root passwd | head -n1 && id -u";
    assert_eq!(
        chroot(&image.layers[0], &["/bin/sh", "-c", script]),
        "1\n0\n"
    );
}
