//! Unpacking layers into real directories: owners, device nodes, trusted.* xattrs and the
//! entries hostile layers use to escape. Needs root (chown, mknod, trusted xattrs); as a
//! non-root user these fail, saying so.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use common::layer::{header, unpack, Layer, Sandbox};
use common::{lgetxattr, needs_root};
use forge_image::unpack::{unpack_layer, Compression, UnpackError, UnpackOptions};
use nix::sys::stat;
use tar::EntryType;

const WHY: &str = "it unpacks files owned by other users, device nodes and trusted.* xattrs";

#[test]
fn keeps_files_and_their_metadata() {
    needs_root(WHY);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path();
    let long = format!("usr/share/{}/file", "d".repeat(120));
    let mut layer = Layer::new().dir("./", 0o755).dir("etc/", 0o750);
    let mut h = header(EntryType::Regular, b"etc/hosts", b"", 0o640, 5);
    h.set_uid(1000);
    h.set_gid(1001);
    h.set_mtime(1_000_000);
    h.set_cksum();
    layer
        .0
        .append_pax_extensions([
            ("SCHILY.xattr.user.forge", &b"hello"[..]),
            ("SCHILY.xattr.trusted.overlay.redirect", &b"/x"[..]),
            ("mtime", &b"1000000.25"[..]),
        ])
        .unwrap();
    layer = layer.raw(h, b"hosts");
    let mut layer = layer
        .raw(header(EntryType::Regular, b"bin/su", b"", 0o4755, 2), b"su")
        .dir("tmp", 0o1777)
        .symlink("bin/sh", "busybox")
        .hard_link("etc/hosts.bak", "etc/hosts")
        .raw(header(EntryType::Fifo, b"run/fifo", b"", 0o620, 0), b"");
    let mut h = header(EntryType::Regular, b"", b"", 0o600, 4);
    h.set_size(4);
    layer.0.append_data(&mut h, &long, &b"long"[..]).unwrap();
    let mut h = header(EntryType::Symlink, b"bin/link", b"/etc/hosts", 0o777, 0);
    h.set_uid(5);
    h.set_gid(6);
    h.set_cksum();
    layer
        .0
        .append_pax_extensions([("SCHILY.xattr.trusted.forge", &b"on a link"[..])])
        .unwrap();
    layer = layer.raw(h, b"");
    // A dir entry after files were written into it: its mtime must still be the entry's.
    let mut h = header(EntryType::Directory, b"etc", b"", 0o750, 0);
    h.set_mtime(2_000_000);
    h.set_cksum();
    let bytes = layer.raw(h, b"").bytes();

    let stats = unpack(&bytes, dest, &UnpackOptions::default()).unwrap();
    assert_eq!(stats.entries, 11);
    assert_eq!(stats.bytes, 5 + 2 + 4);
    assert_eq!(stats.whiteouts, 0);

    let mode = |p: &str| fs::symlink_metadata(dest.join(p)).unwrap().mode();
    assert_eq!(mode("") & 0o7777, 0o755, "the root entry's mode");
    assert_eq!(mode("etc") & 0o7777, 0o750);
    assert_eq!(mode("tmp"), libc::S_IFDIR | 0o1777);
    assert_eq!(mode("bin/su"), libc::S_IFREG | 0o4755);
    assert_eq!(mode("bin") & 0o7777, 0o755, "a missing parent is made 0755");
    assert_eq!(fs::read(dest.join("etc/hosts")).unwrap(), b"hosts");
    assert_eq!(fs::read(dest.join(&long)).unwrap(), b"long");
    let hosts = fs::metadata(dest.join("etc/hosts")).unwrap();
    assert_eq!((hosts.uid(), hosts.gid()), (1000, 1001));
    assert_eq!(hosts.permissions().mode() & 0o7777, 0o640);
    assert_eq!(
        (hosts.mtime(), hosts.mtime_nsec()),
        (1_000_000, 250_000_000)
    );
    assert_eq!(hosts.nlink(), 2);
    assert_eq!(
        fs::metadata(dest.join("etc/hosts.bak")).unwrap().ino(),
        hosts.ino()
    );
    assert_eq!(
        lgetxattr(&dest.join("etc/hosts"), "user.forge").unwrap(),
        b"hello"
    );
    assert_eq!(
        lgetxattr(&dest.join("etc/hosts"), "trusted.overlay.redirect"),
        Option::None
    );
    assert_eq!(fs::metadata(dest.join("etc")).unwrap().mtime(), 2_000_000);
    assert_eq!(
        fs::read_link(dest.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let link = fs::symlink_metadata(dest.join("bin/link")).unwrap();
    assert!(link.file_type().is_symlink());
    assert_eq!(
        (link.uid(), link.gid(), link.mtime()),
        (5, 6, 1_600_000_000)
    );
    assert_eq!(
        fs::read_link(dest.join("bin/link")).unwrap(),
        Path::new("/etc/hosts")
    );
    let fifo = fs::symlink_metadata(dest.join("run/fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o620);
}

#[test]
fn gzip_and_zstd_round_trip() {
    needs_root(WHY);
    let bytes = Layer::new().dir("a", 0o755).file("a/b", b"data").bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&bytes).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::stream::encode_all(&bytes[..], 3).unwrap();
    for blob in [gz, zst] {
        let compression = Compression::sniff(&blob);
        assert_ne!(compression, Compression::None);
        let tmp = tempfile::tempdir().unwrap();
        let stats = unpack_layer(
            &blob[..],
            compression,
            tmp.path(),
            &UnpackOptions::default(),
        )
        .unwrap();
        assert_eq!((stats.entries, stats.bytes), (2, 4));
        assert_eq!(fs::read(tmp.path().join("a/b")).unwrap(), b"data");
    }
    // Garbage is a read error, not a panic.
    let tmp = tempfile::tempdir().unwrap();
    let err = unpack_layer(
        &b"not gzip"[..],
        Compression::Gzip,
        tmp.path(),
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::Read { .. }), "{err}");
}

#[test]
fn whiteouts_and_opaque_directories() {
    needs_root(WHY);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path();
    let bytes = Layer::new()
        .dir("a", 0o755)
        .file("a/.wh.gone", b"")
        .file("b/.wh..wh..opq", b"")
        .file("b/new", b"new")
        .file(".wh..wh.plnk", b"")
        .bytes();
    let stats = unpack(&bytes, dest, &UnpackOptions::default()).unwrap();
    assert_eq!(stats.whiteouts, 2);
    let gone = fs::symlink_metadata(dest.join("a/gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    assert!(!dest.join("a/.wh.gone").exists());
    for xattr in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        assert_eq!(lgetxattr(&dest.join("b"), xattr).unwrap(), b"y", "{xattr}");
    }
    assert!(!dest.join("b/.wh..wh..opq").exists());
    assert_eq!(fs::read(dest.join("b/new")).unwrap(), b"new");
    assert!(!dest.join(".wh..wh.plnk").exists() && !dest.join(".wh.plnk").exists());
}

#[test]
fn later_entries_replace_earlier_ones() {
    needs_root(WHY);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path();
    let bytes = Layer::new()
        .file("x", b"file")
        .dir("x", 0o700)
        .dir("d", 0o755)
        .file("d/inner", b"inner")
        .symlink("d", "x")
        .file("f", b"one")
        .file("f", b"two")
        .dir("keep", 0o755)
        .file("keep/child", b"c")
        .dir("keep", 0o711)
        .bytes();
    unpack(&bytes, dest, &UnpackOptions::default()).unwrap();
    assert!(fs::symlink_metadata(dest.join("x")).unwrap().is_dir());
    assert_eq!(fs::read_link(dest.join("d")).unwrap(), Path::new("x"));
    assert_eq!(fs::read(dest.join("f")).unwrap(), b"two");
    assert_eq!(fs::read(dest.join("keep/child")).unwrap(), b"c");
    assert_eq!(
        fs::metadata(dest.join("keep")).unwrap().mode() & 0o7777,
        0o711
    );
}

#[test]
fn devices_only_when_allowed() {
    needs_root(WHY);
    let bytes = Layer::new()
        .dir("dev", 0o755)
        .device("dev/null", 1, 3)
        .bytes();
    let tmp = tempfile::tempdir().unwrap();
    let stats = unpack(&bytes, tmp.path(), &UnpackOptions::default()).unwrap();
    assert_eq!(stats.entries, 2);
    assert!(fs::symlink_metadata(tmp.path().join("dev/null")).is_err());

    let tmp = tempfile::tempdir().unwrap();
    let opts = UnpackOptions {
        allow_devices: true,
    };
    unpack(&bytes, tmp.path(), &opts).unwrap();
    let null = fs::symlink_metadata(tmp.path().join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), stat::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
}

#[test]
fn hostile_absolute_names_land_inside() {
    needs_root(WHY);
    let sandbox = Sandbox::new();
    let outside = format!("{}/pwned", sandbox.outside());
    let bytes = Layer::new()
        .file("/abs/path", b"abs")
        .file(&outside, b"x")
        .file("/a/../b", b"b")
        .bytes();
    sandbox.unpack(&bytes).unwrap();
    let dest = sandbox.dest();
    assert_eq!(fs::read(dest.join("abs/path")).unwrap(), b"abs");
    assert_eq!(
        fs::read(dest.join(outside.trim_start_matches('/'))).unwrap(),
        b"x"
    );
    assert_eq!(fs::read(dest.join("b")).unwrap(), b"b");
    sandbox.check();
}

#[test]
fn hostile_symlinks_are_not_written_through() {
    needs_root(WHY);
    let sandbox = Sandbox::new();
    let outside = sandbox.outside();
    // Absolute symlink out, then a file, a directory and a file in it through it.
    for second in ["out/pwned", "out/sub/", "out/sub/pwned"] {
        let sandbox = Sandbox::new();
        let mut layer = Layer::new().symlink("out", &sandbox.outside());
        layer = if second.ends_with('/') {
            layer.dir(second, 0o755)
        } else {
            layer.file(second, b"pwned")
        };
        let err = sandbox.unpack(&layer.bytes()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("layer entry {second:?}")),
            "{err}"
        );
        sandbox.check();
    }
    // Relative symlinks that climb: resolved as if the layer were `/`.
    let sandbox = Sandbox::new();
    let bytes = Layer::new()
        .symlink("a", "../../..")
        .file("a/x", b"x")
        .symlink("up", "../outside")
        .dir("outside", 0o755)
        .file("up/y", b"y")
        .bytes();
    sandbox.unpack(&bytes).unwrap();
    assert_eq!(fs::read(sandbox.dest().join("x")).unwrap(), b"x");
    assert_eq!(fs::read(sandbox.dest().join("outside/y")).unwrap(), b"y");
    sandbox.check();
    // `etc -> /etc` then `etc/passwd`: a loop inside the layer, never the host's /etc.
    let passwd = fs::read("/etc/passwd").ok();
    let sandbox = Sandbox::new();
    let bytes = Layer::new()
        .symlink("etc", "/etc")
        .file("etc/passwd", b"x")
        .bytes();
    assert!(sandbox.unpack(&bytes).is_err());
    assert_eq!(fs::read("/etc/passwd").ok(), passwd);
    sandbox.check();
    // A symlink out as the last component is replaced, not written through.
    let sandbox = Sandbox::new();
    let bytes = Layer::new()
        .symlink("f", &format!("{outside}/f"))
        .file("f", b"inside")
        .symlink("v", &sandbox.victim())
        .file("v", b"inside")
        .bytes();
    sandbox.unpack(&bytes).unwrap();
    assert_eq!(fs::read(sandbox.dest().join("f")).unwrap(), b"inside");
    assert_eq!(fs::read(sandbox.dest().join("v")).unwrap(), b"inside");
    sandbox.check();
    // An in-layer absolute symlink to a directory of the layer works like in a chroot.
    let sandbox = Sandbox::new();
    let bytes = Layer::new()
        .dir("usr/lib", 0o755)
        .symlink("lib", "/usr/lib")
        .file("lib/libc.so", b"libc")
        .bytes();
    sandbox.unpack(&bytes).unwrap();
    assert_eq!(
        fs::read(sandbox.dest().join("usr/lib/libc.so")).unwrap(),
        b"libc"
    );
    sandbox.check();
}

#[test]
fn hostile_hard_links_are_refused() {
    needs_root(WHY);
    let sandbox = Sandbox::new();
    let victim = sandbox.victim();
    let cases = [
        (victim.clone(), "is not an earlier file of this layer"),
        ("../victim".to_string(), "path leaves the layer"),
        (
            "/etc/passwd".to_string(),
            "is not an earlier file of this layer",
        ),
        ("etc".to_string(), "is not an earlier file of this layer"),
    ];
    for (target, why) in cases {
        let bytes = Layer::new()
            .dir("etc", 0o755)
            .hard_link("h", &target)
            .bytes();
        let err = sandbox.unpack(&bytes).unwrap_err();
        assert!(matches!(err, UnpackError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains(why), "{err}");
        assert!(
            err.to_string()
                .starts_with("layer entry \"h\": hard link target"),
            "{err}"
        );
        sandbox.check();
    }
    // A link to an earlier symlink that points out links the symlink, not the victim.
    let sandbox = Sandbox::new();
    let bytes = Layer::new()
        .symlink("s", &sandbox.victim())
        .hard_link("h", "s")
        .file("data", b"d")
        .hard_link("/d2", "/data")
        .bytes();
    sandbox.unpack(&bytes).unwrap();
    let h = fs::symlink_metadata(sandbox.dest().join("h")).unwrap();
    assert!(h.file_type().is_symlink());
    assert_eq!(h.nlink(), 2);
    assert_eq!(fs::metadata(sandbox.dest().join("d2")).unwrap().nlink(), 2);
    sandbox.check();
    // A link through a symlinked directory resolves inside the layer.
    let sandbox = Sandbox::new();
    let bytes = Layer::new()
        .symlink("out", &sandbox.outside())
        .hard_link("out/h", "s")
        .bytes();
    assert!(sandbox.unpack(&bytes).is_err());
    sandbox.check();
}

#[test]
fn errors_name_the_entry() {
    needs_root(WHY);
    let tmp = tempfile::tempdir().unwrap();
    let bytes = Layer::new().file("x", b"x").bytes();
    let err = unpack(&bytes[..512], tmp.path(), &UnpackOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "layer entry \"x\": the archive ends after 0 of its 1 bytes"
    );
    let err = unpack(&bytes[..600], tmp.path(), &UnpackOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("reading the layer archive after entry \"x\": "),
        "{err}"
    );
    let err = unpack_layer(
        &bytes[..],
        Compression::None,
        &tmp.path().join("missing"),
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::Dest { .. }), "{err}");
}
