//! Volumes and binds (`-v`, `--mount`, `forge volume`): data that outlives containers,
//! read-only mounts, Docker's copy-up, anonymous volumes going with their container, the
//! volume commands, mount destinations that symlinks in the image try to point at the host,
//! and every refusal of bad input (exit 125, one line, nothing made).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{output, Forge, Out, COMMAND_TIMEOUT};

/// `forge run --rm --net none ARGS...`; fails unless it exits 0; its stdout.
fn run(forge: &Forge, args: &[&str]) -> String {
    let mut full = vec!["run", "--rm", "--net", "none"];
    full.extend_from_slice(args);
    forge.ok(&full).stdout
}

/// The names `forge volume ls -q` prints.
fn volumes(forge: &Forge) -> Vec<String> {
    let out = forge.ok(&["volume", "ls", "-q"]).stdout;
    out.lines().map(str::to_string).collect()
}

/// Builds image `name` from the host's busybox, then runs `script` (sh) with `$R` set to its
/// root filesystem, to add what the test needs.
fn build_image(forge: &Forge, name: &str, script: &str) -> PathBuf {
    forge.ok(&["image", "build-host", name]);
    let rootfs = forge.root().join("images").join(name).join("rootfs");
    assert!(rootfs.is_dir(), "no rootfs at {}", rootfs.display());
    let status = Command::new("sh")
        .args(["-euc", script])
        .env("R", &rootfs)
        .status()
        .expect("sh");
    assert!(status.success(), "{script}");
    rootfs
}

/// Fails unless `out` is a refusal: exit 125, one `forge:` line naming `culprit`, no stdout,
/// and no container and no volume left.
fn assert_refused(forge: &Forge, out: &Out, culprit: &str) {
    assert_eq!(out.code, 125, "{out}");
    assert!(
        out.forge_error_line().contains(culprit),
        "the error does not mention {culprit:?}: {out}"
    );
    assert_eq!(out.stdout, "", "{out}");
    forge.assert_no_containers();
    assert_eq!(volumes(forge), Vec::<String>::new(), "a volume was made");
}

fn nonce() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("vol{}x{}", std::process::id(), now.subsec_nanos())
}

#[test]
fn a_named_volume_keeps_what_one_container_wrote_for_the_next() {
    let forge = Forge::new();
    run(
        &forge,
        &[
            "-v",
            "data:/data",
            "host",
            "sh",
            "-c",
            "echo kept > /data/f",
        ],
    );
    assert_eq!(volumes(&forge), ["data"]);
    let read = run(
        &forge,
        &[
            "--mount",
            "source=data,target=/elsewhere",
            "host",
            "cat",
            "/elsewhere/f",
        ],
    );
    assert_eq!(read, "kept\n");
    let on_disk = forge.root().join("volumes/data/_data/f");
    assert_eq!(std::fs::read_to_string(on_disk).unwrap(), "kept\n");
    // A file bound over one of the /etc files Forge writes replaces it, as in Docker.
    let hosts = forge.root().join("my-hosts");
    std::fs::write(&hosts, "10.1.2.3 mine\n").unwrap();
    let bound = format!("{}:/etc/hosts:ro", hosts.display());
    assert_eq!(
        run(&forge, &["-v", &bound, "host", "cat", "/etc/hosts"]),
        "10.1.2.3 mine\n"
    );
    forge.assert_no_containers();
}

#[test]
fn option_u_hands_a_bind_and_a_volume_to_the_containers_user_without_following_links() {
    use std::os::unix::fs::MetadataExt;
    let forge = Forge::new();
    let owner = |path: &Path| {
        let meta = std::fs::symlink_metadata(path).unwrap();
        (meta.uid(), meta.gid())
    };
    let dir = forge.root().join("code");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/file"), "x\n").unwrap();
    // A link to a host file outside the bind: the link is chowned, never what it names.
    let outside = forge.root().join("outside");
    std::fs::write(&outside, "host\n").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
    let out = run(
        &forge,
        &[
            "-u",
            "4242:4343",
            "-v",
            &format!("{}:/code:U", dir.display()),
            "-v",
            "owned:/owned:U",
            "host",
            "sh",
            "-c",
            "touch /code/new /owned/new && stat -c %u:%g /code/sub/file /owned /owned/new",
        ],
    );
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["4242:4343"; 3],
        "{out}"
    );
    for path in ["", "sub", "sub/file", "link", "new"] {
        assert_eq!(owner(&dir.join(path)), (4242, 4343), "{path}");
    }
    assert_eq!(
        owner(&outside),
        (0, 0),
        "U followed a symlink out of the bind"
    );
    let volume = forge.root().join("volumes/owned/_data");
    assert_eq!(owner(&volume), (4242, 4343));
}

#[test]
fn read_only_volumes_and_binds_give_erofs_also_in_the_submounts_of_a_recursive_bind() {
    let forge = Forge::new();
    let try_write = "touch /d/new 2>&1; cat /d/sub/f; touch /d/sub/new 2>&1; true";
    run(
        &forge,
        &[
            "-v",
            "data:/d",
            "host",
            "sh",
            "-c",
            "mkdir /d/sub; echo v > /d/sub/f",
        ],
    );
    let ro = run(&forge, &["-v", "data:/d:ro", "host", "sh", "-c", try_write]);
    assert_eq!(ro.matches("Read-only file system").count(), 2, "{ro}");
    // A host directory with a tmpfs mounted below it, in a mount namespace of forge's own: the
    // bind brings the submount along, and `ro` covers it too.
    let src = forge.root().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let in_own_namespace = |mount: &str| {
        let forge_bin = common::forge_bin();
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs tmpfs \"$1/sub\" && echo inner > \"$1/sub/f\" && shift && exec \"$@\"")
            .arg("sh")
            .arg(&src)
            .arg(forge_bin)
            .arg("--root")
            .arg(forge.root())
            .args(["run", "--rm", "--net", "none", "--mount", mount, "host", "sh", "-c", try_write]);
        for var in ["FORGE_ROOT", "FORGE_RUN_ROOT", "FORGE_INIT_EXE", "RUST_LOG"] {
            cmd.env_remove(var);
        }
        cmd.stdin(std::process::Stdio::null());
        forge.netns.enter(&mut cmd);
        let out = output(&mut cmd, COMMAND_TIMEOUT);
        assert_eq!(out.code, 0, "{out}");
        out.stdout
    };
    let src_text = src.to_str().unwrap();
    let rw = in_own_namespace(&format!("type=bind,src={src_text},dst=/d"));
    assert_eq!(
        rw, "inner\n",
        "the submount is not in the bind, or not writable"
    );
    let ro = in_own_namespace(&format!("type=bind,src={src_text},dst=/d,readonly"));
    assert_eq!(ro.matches("Read-only file system").count(), 2, "{ro}");
    assert!(ro.contains("inner"), "{ro}");
    assert!(
        src.join("new").exists(),
        "the writable bind did not reach the host directory"
    );
}

#[test]
fn an_empty_volume_gets_a_copy_of_the_images_files_unless_nocopy() {
    let forge = Forge::new();
    build_image(
        &forge,
        "seeded",
        "mkdir -p $R/srv/app/sub; echo seed > $R/srv/app/seed; ln -s seed $R/srv/app/link
         chown 123:45 $R/srv/app/seed; chmod 0640 $R/srv/app/seed; chmod 0750 $R/srv/app
         chown 7:8 $R/srv/app; touch -h -d @981173106 $R/srv/app/seed",
    );
    // An xattr on the image's file (where the host's filesystem keeps user xattrs).
    let seed = forge.root().join("images/seeded/rootfs/srv/app/seed");
    let xattr = set_user_xattr(&seed, "user.forge", b"kept");
    let listing = run(
        &forge,
        &["-v", "copied:/srv/app", "seeded", "ls", "-ln", "/srv/app"],
    );
    assert!(listing.contains("123      45"), "{listing}");
    let data = forge.root().join("volumes/copied/_data");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(data.join("seed")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (123, 45, 0o640)
    );
    assert_eq!(
        meta.mtime(),
        981_173_106,
        "mtime of 2001-02-03 04:05:06 UTC"
    );
    assert_eq!(
        std::fs::read_link(data.join("link")).unwrap(),
        Path::new("seed")
    );
    assert!(data.join("sub").is_dir());
    let top = std::fs::metadata(&data).unwrap();
    assert_eq!((top.uid(), top.gid(), top.mode() & 0o7777), (7, 8, 0o750));
    if xattr {
        assert_eq!(
            get_user_xattr(&data.join("seed"), "user.forge"),
            Some(b"kept".to_vec())
        );
    }
    // Not again once the volume holds something: what the container changed stays.
    run(
        &forge,
        &["-v", "copied:/srv/app", "seeded", "rm", "/srv/app/seed"],
    );
    let again = run(
        &forge,
        &["-v", "copied:/srv/app", "seeded", "ls", "/srv/app"],
    );
    assert_eq!(again, "link\nsub\n");
    let nocopy = run(
        &forge,
        &[
            "-v",
            "bare:/srv/app:nocopy",
            "seeded",
            "ls",
            "-A",
            "/srv/app",
        ],
    );
    assert_eq!(nocopy, "");
    let nocopy = run(
        &forge,
        &[
            "--mount",
            "src=bare2,dst=/srv/app,volume-nocopy",
            "seeded",
            "ls",
            "-A",
            "/srv/app",
        ],
    );
    assert_eq!(nocopy, "");
    // A bind is never copied into.
    let host = forge.root().join("bind");
    run(
        &forge,
        &[
            "-v",
            &format!("{}:/srv/app", host.display()),
            "seeded",
            "true",
        ],
    );
    assert_eq!(
        std::fs::read_dir(&host).unwrap().count(),
        0,
        "a bind got the image's files"
    );
}

/// Sets a user xattr; false when the filesystem does not keep them (the check is then skipped).
fn set_user_xattr(path: &Path, name: &str, value: &[u8]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: both strings are valid and `value` holds `value.len()` bytes.
    let ret = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if ret != 0 {
        let e = std::io::Error::last_os_error();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::ENOTSUP),
            "setting {name:?}: {e}"
        );
    }
    ret == 0
}

fn get_user_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are valid and `buf` has room for `buf.len()` bytes.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

#[test]
fn anonymous_volumes_go_with_rm_v_and_with_rm_while_named_ones_stay() {
    let forge = Forge::new();
    let write = "echo x > /anon/f; echo y > /named/f";
    forge.ok(&[
        "run",
        "--name",
        "a",
        "--net",
        "none",
        "-v",
        "/anon",
        "-v",
        "named:/named",
        "host",
        "sh",
        "-c",
        write,
    ]);
    let both = volumes(&forge);
    assert_eq!(both.len(), 2, "{both:?}");
    let anonymous: Vec<&String> = both.iter().filter(|v| *v != "named").collect();
    assert_eq!(
        anonymous[0].len(),
        64,
        "an anonymous volume has a 64-hex name: {both:?}"
    );
    forge.ok(&["rm", "-v", "a"]);
    assert_eq!(volumes(&forge), ["named"]);
    run(
        &forge,
        &[
            "-v",
            "/anon",
            "-v",
            "named:/named",
            "host",
            "sh",
            "-c",
            write,
        ],
    );
    assert_eq!(volumes(&forge), ["named"], "--rm left its anonymous volume");
    // A plain rm leaves the anonymous volume behind, for `volume prune`.
    forge.ok(&[
        "run",
        "--name",
        "b",
        "--net",
        "none",
        "-v",
        "/anon",
        "host",
        "sh",
        "-c",
        "echo x > /anon/f",
    ]);
    forge.ok(&["rm", "b"]);
    assert_eq!(volumes(&forge).len(), 2);
    let pruned = forge.ok(&["volume", "prune", "-f"]).stdout;
    assert!(pruned.starts_with("Deleted Volumes:\n"), "{pruned}");
    assert!(pruned.contains("Total reclaimed space: 2B"), "{pruned}");
    assert_eq!(volumes(&forge), ["named"]);
}

/// An OCI image (umoci, from busybox-static) declaring `VOLUME /vol` with /vol/seed in it.
fn load_image_with_a_volume(forge: &Forge) {
    let tmp = common::oci::tools_dir();
    common::oci::sh(&format!(
        r#"cd {dir}
umoci init --layout lay
umoci new --image lay:vol
umoci unpack --image lay:vol b >/dev/null
mkdir -p b/rootfs/bin b/rootfs/vol
cp "$(command -v busybox)" b/rootfs/bin/busybox
ln -s busybox b/rootfs/bin/sh
echo seeded > b/rootfs/vol/seed
umoci repack --image lay:vol b
umoci config --image lay:vol --config.volume /vol --config.cmd sh
(cd lay && tar -cf ../oci.tar .)"#,
        dir = tmp.path().display()
    ));
    let oci = tmp.path().join("oci.tar");
    forge.ok(&["load", "-i", oci.to_str().unwrap()]);
}

#[test]
fn an_images_volume_becomes_an_anonymous_volume_with_its_files() {
    let forge = Forge::new();
    load_image_with_a_volume(&forge);
    let inspect = forge.ok(&["image", "inspect", "oci:vol"]).stdout;
    assert!(inspect.contains("\"/vol\""), "{inspect}");
    forge.ok(&[
        "run",
        "--name",
        "v",
        "--net",
        "none",
        "oci:vol",
        "sh",
        "-c",
        "cat /vol/seed; echo more > /vol/more",
    ]);
    let made = volumes(&forge);
    assert_eq!(made.len(), 1, "{made:?}");
    let data = forge.root().join("volumes").join(&made[0]).join("_data");
    assert_eq!(
        std::fs::read_to_string(data.join("seed")).unwrap(),
        "seeded\n"
    );
    assert!(data.join("more").exists());
    forge.ok(&["rm", "-v", "v"]);
    assert_eq!(volumes(&forge), Vec::<String>::new());
    // Something else mounted there replaces it; --rm removes an image's volume too.
    assert_eq!(
        run(
            &forge,
            &["-v", "mine:/vol", "oci:vol", "sh", "-c", "cat /vol/seed"]
        ),
        "seeded\n"
    );
    assert_eq!(volumes(&forge), ["mine"]);
    run(&forge, &["oci:vol", "sh", "-c", "true"]);
    assert_eq!(volumes(&forge), ["mine"]);
}

#[test]
fn volume_commands_list_inspect_remove_and_prune_and_refuse_a_volume_in_use() {
    let forge = Forge::new();
    assert_eq!(
        forge
            .ok(&["volume", "create", "--label", "tier=db", "--label", "x", "data"])
            .stdout,
        "data\n"
    );
    assert_eq!(
        forge.ok(&["volume", "create", "data"]).stdout,
        "data\n",
        "create is idempotent"
    );
    let random = forge.ok(&["volume", "create"]).stdout;
    let random = random.trim();
    assert!(
        random.len() == 64 && random.bytes().all(|b| b.is_ascii_hexdigit()),
        "{random}"
    );
    let mut sorted = vec![random.to_string(), "data".to_string()];
    sorted.sort();
    let rows: String = sorted.iter().map(|n| format!("local     {n}\n")).collect();
    let ls = forge.ok(&["volume", "ls"]).stdout;
    assert_eq!(ls, format!("DRIVER    VOLUME NAME\n{rows}"));

    forge.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--net",
        "none",
        "-v",
        "data:/data",
        "host",
        "sleep",
        "600",
    ]);
    forge.running_pid("web");
    let busy = forge.run(&["volume", "rm", "data"]);
    assert_eq!(busy.code, 125, "{busy}");
    assert!(
        busy.forge_error_line()
            .contains("volume data is in use by container web"),
        "{busy}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&forge.ok(&["volume", "inspect", "data"]).stdout).unwrap();
    let v = &inspect[0];
    assert_eq!(v["Name"], "data");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Labels"], serde_json::json!({"tier": "db", "x": ""}));
    assert_eq!(v["Options"], serde_json::json!({}));
    assert_eq!(v["Containers"], serde_json::json!(["web"]));
    let mountpoint = forge.root().join("volumes/data/_data");
    assert_eq!(v["Mountpoint"], mountpoint.to_str().unwrap());
    let created = v["CreatedAt"].as_str().unwrap();
    assert!(
        created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "{created}"
    );
    forge.ok(&["rm", "-f", "web"]);
    // A stopped container holds it too.
    forge.ok(&[
        "run",
        "--name",
        "stopped",
        "--net",
        "none",
        "-v",
        "data:/data",
        "host",
        "true",
    ]);
    let busy = forge.run(&["volume", "rm", "-f", "data"]);
    assert_eq!(busy.code, 125, "{busy}");
    assert!(
        busy.forge_error_line()
            .contains("in use by container stopped"),
        "{busy}"
    );
    assert!(mountpoint.is_dir());
    let missing = forge.run(&["volume", "inspect", "nosuch"]);
    assert_eq!(missing.code, 1, "{missing}");
    assert!(
        missing
            .forge_error_line()
            .contains("no such volume: nosuch"),
        "{missing}"
    );
    assert_eq!(forge.run(&["volume", "rm", "-f", "nosuch"]).code, 0);
    // prune: anonymous only, or every unused one with -a; "data" is still used.
    forge.ok(&[
        "run", "--name", "anon", "--net", "none", "-v", "/a", "host", "true",
    ]);
    forge.ok(&["rm", "anon"]);
    assert_eq!(volumes(&forge).len(), 3);
    let cancelled = forge.run(&["volume", "prune"]);
    assert_eq!(cancelled.code, 1, "{cancelled}");
    assert_eq!(
        volumes(&forge).len(),
        3,
        "prune without -f and without a yes removed something"
    );
    forge.ok(&["volume", "prune", "-f"]);
    let left = volumes(&forge);
    assert_eq!(
        left, sorted,
        "prune removed a named volume or kept the anonymous one"
    );
    let all = forge.ok(&["volume", "prune", "-a", "-f"]).stdout;
    assert!(all.contains(random) && !all.contains("data\n"), "{all}");
    assert_eq!(volumes(&forge), ["data"]);
    forge.ok(&["rm", "stopped"]);
    assert_eq!(forge.ok(&["volume", "rm", "data"]).stdout, "data\n");
    assert_eq!(volumes(&forge), Vec::<String>::new());
    assert_eq!(
        forge.entries("volumes"),
        [".lock"],
        "temporary leftovers in the store"
    );
}

#[test]
fn symlinked_destinations_in_the_image_resolve_inside_the_containers_root() {
    let forge = Forge::new();
    build_image(
        &forge,
        "evil",
        "ln -s /etc $R/data; ln -s ../../.. $R/up; ln -s ../../../../../../../../etc $R/far
         ln -s /proc/sys/kernel $R/ps; ln -s /nowhere/deep $R/dangling",
    );
    let host_etc = etc_listing();
    let word = nonce();
    let script = format!(
        "echo {word} > /data/{word}; cat /etc/{word}; grep -c ' /etc ' /proc/self/mountinfo"
    );
    let out = run(&forge, &["-v", "attack:/data", "evil", "sh", "-c", &script]);
    assert_eq!(
        out,
        format!("{word}\n1\n"),
        "the volume is not on the container's /etc"
    );
    let out = run(
        &forge,
        &[
            "-v",
            "far:/far",
            "evil",
            "sh",
            "-c",
            &script.replace("/data/", "/far/"),
        ],
    );
    assert_eq!(
        out,
        format!("{word}\n1\n"),
        "../../.. climbed out of the root"
    );
    let tmpfs = run(
        &forge,
        &[
            "--tmpfs",
            "/data",
            "evil",
            "sh",
            "-c",
            "grep ' /etc ' /proc/self/mountinfo",
        ],
    );
    assert!(
        tmpfs.contains("tmpfs"),
        "--tmpfs /data did not land on the container's /etc: {tmpfs}"
    );
    assert!(
        !Path::new("/etc").join(&word).exists(),
        "the host's /etc was written"
    );
    assert_eq!(etc_listing(), host_etc, "the host's /etc changed");
    let dangling = run(
        &forge,
        &[
            "-v",
            "d1:/dangling",
            "evil",
            "sh",
            "-c",
            "echo ok > /nowhere/deep/f; cat /dangling/f",
        ],
    );
    assert_eq!(dangling, "ok\n");
    assert!(
        !Path::new("/nowhere").exists(),
        "a dangling symlink was followed on the host"
    );
    // To the root itself, or into /proc: refused at start, one line, nothing of it left.
    let bind = forge.root().join("h");
    std::fs::create_dir_all(&bind).unwrap();
    for args in [
        vec!["-v".to_string(), format!("{}:/up", bind.display())],
        vec!["--tmpfs".into(), "/up".into()],
        vec!["-v".into(), "/ps".into()],
    ] {
        let mut full: Vec<&str> = vec!["run", "--rm", "--net", "none"];
        full.extend(args.iter().map(String::as_str));
        full.extend(["evil", "true"]);
        let out = forge.run(&full);
        assert_eq!(out.code, 125, "{out}");
        let line = out.forge_error_line();
        assert!(
            line.contains("resolves to the container's root")
                || line.contains("resolves into /proc or /sys"),
            "{out}"
        );
        forge.assert_no_containers();
    }
    assert_eq!(std::fs::read_dir(&bind).unwrap().count(), 0);
}

/// The names in the host's /etc.
fn etc_listing() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/etc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

#[test]
fn bad_mounts_and_volume_names_are_refused_with_one_line_and_nothing_made() {
    let forge = Forge::new();
    let missing = forge.root().join("no-such-dir");
    let missing_bind = format!("type=bind,src={},dst=/x", missing.display());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--mount", "type=bind,src=/tmp,dst=/x,colour=red"],
            "unknown key \"colour\"",
        ),
        (
            vec!["--mount", "type=bind,src=/tmp"],
            "missing the destination",
        ),
        (
            vec!["--mount", "type=volume,dst=relative"],
            "\"relative\" must be an absolute path",
        ),
        (
            vec!["-v", "data:relative"],
            "\"relative\" must be an absolute path",
        ),
        (vec!["-v", "/tmp:/x:rx"], "unknown option \"rx\""),
        (
            vec!["-v", "bad!name:/x"],
            "invalid volume name \"bad!name\"",
        ),
        (vec!["--mount", "type=nfs,dst=/x"], "unknown type \"nfs\""),
        (
            vec!["--mount", &missing_bind],
            "bind source path does not exist",
        ),
        (
            vec!["-v", "a1:/x", "-v", "a2:/x/"],
            "duplicate mount point /x",
        ),
        (
            vec!["-v", "a1:/run", "--tmpfs", "/run"],
            "duplicate mount point /run",
        ),
        (vec!["-v", "a1:/x:ro,rw"], "contradict"),
        (vec!["-v", "a1:/proc/x"], "/proc"),
        (vec!["-v", "/tmp:/proc"], "/proc"),
        (vec!["--mount", "type=tmpfs,dst=/sys/fs"], "/sys"),
        (vec!["-v", "a1:/"], "must not be '/'"),
        (vec!["-v", "/tmp:/x:U,u"], "unknown option \"u\""),
    ];
    for (flags, culprit) in cases {
        let mut args = vec!["run", "--rm", "--net", "none"];
        args.extend_from_slice(&flags);
        args.extend(["host", "true"]);
        let out = forge.run(&args);
        assert_refused(&forge, &out, culprit);
    }
    assert!(
        !missing.exists(),
        "--mount type=bind made its missing source"
    );
    for args in [
        vec!["volume", "create", "bad!name"],
        vec!["volume", "create", "x"],
        vec!["volume", "rm", "../etc"],
    ] {
        let out = forge.run(&args);
        let culprit = args[2];
        assert_refused(&forge, &out, &format!("invalid volume name \"{culprit}\""));
    }
    let label = forge.run(&["volume", "create", "--label", "=v", "ok1"]);
    assert_refused(&forge, &label, "invalid --label \"=v\"");
    let bind_device = "device=".to_string() + missing.to_str().unwrap();
    for (opts, culprit) in [
        (
            &["size="][..],
            "invalid volume option size: it needs a size",
        ),
        (&["size=lots"][..], "invalid volume option size=\"lots\""),
        (&["size=1m"][..], "the minimum is 16m"),
        (&["colour=red"][..], "invalid volume option \"colour\""),
        (
            &["type=nfs", "o=addr=10.0.0.1"][..],
            "type=\"nfs\": not supported",
        ),
        (&["type=tmpfs", "o=size=big"][..], "o=\"size=big\""),
        (
            &["type=none", "o=bind", bind_device.as_str()][..],
            "no such directory",
        ),
        (&["size=1g", "size=2g"][..], "size is given twice"),
    ] {
        let mut args = vec!["volume", "create"];
        for opt in opts {
            args.extend(["--opt", opt]);
        }
        args.push("ok2");
        assert_refused(&forge, &forge.run(&args), culprit);
    }
    let driver = forge.run(&["volume", "create", "-d", "nfs", "ok3"]);
    assert_refused(&forge, &driver, "invalid --driver \"nfs\"");
}

/// Loop devices bound to a file under `root`.
fn loop_devices_under(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("loop/backing_file")).ok())
        .filter(|file| file.starts_with(root.to_str().unwrap()))
        .collect()
}

#[test]
fn a_sized_volume_stops_writes_at_its_size_and_is_shared_by_running_containers() {
    let forge = Forge::new();
    forge.ok(&["volume", "create", "--opt", "size=20m", "sized"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&forge.ok(&["volume", "inspect", "sized"]).stdout).unwrap();
    assert_eq!(inspect[0]["Options"]["size"], "20m", "{inspect}");
    // Empty at first (no lost+found), and writes stop at the limit with ENOSPC.
    let fill = run(
        &forge,
        &[
            "-v",
            "sized:/d",
            "host",
            "sh",
            "-c",
            "ls -A /d; echo kept > /d/keep; dd if=/dev/zero of=/d/big bs=1M count=40 2>&1; \
             ls -l /d/big",
        ],
    );
    assert!(!fill.starts_with("lost+found"), "{fill}");
    assert!(fill.contains("No space left on device"), "{fill}");
    let size: u64 = fill
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {fill}"));
    assert!(size < 20 << 20, "wrote {size} bytes into a 20m volume");
    // Two running containers share one filesystem: what one writes the other reads at once.
    forge.ok(&[
        "run", "-d", "--name", "a", "--net", "none", "-v", "sized:/d", "host", "sleep", "60",
    ]);
    let b = run(
        &forge,
        &[
            "-v",
            "sized:/d",
            "host",
            "sh",
            "-c",
            "rm /d/big; echo from-b > /d/b; cat /d/keep",
        ],
    );
    assert_eq!(b, "kept\n");
    assert_eq!(forge.ok(&["exec", "a", "cat", "/d/b"]).stdout, "from-b\n");
    forge.ok(&["rm", "-f", "a"]);
    // Nothing of it on the host: no mount, and no loop device once no container uses it.
    let leftover = common::settled(|| loop_devices_under(forge.root()));
    assert_eq!(leftover, Vec::<String>::new(), "loop devices left");
    assert_eq!(
        std::fs::read_dir(forge.root().join("volumes/sized/_data"))
            .unwrap()
            .count(),
        0,
        "the volume's files appeared on the host"
    );
    forge.ok(&["volume", "rm", "sized"]);
    assert_eq!(volumes(&forge), Vec::<String>::new());
}

#[test]
fn tmpfs_and_bind_volumes_take_the_local_drivers_options() {
    let forge = Forge::new();
    forge.ok(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=5m,mode=0700",
        "scratch",
    ]);
    let mount = run(
        &forge,
        &[
            "-v",
            "scratch:/t",
            "host",
            "sh",
            "-c",
            "grep ' /t ' /proc/mounts; stat -c %a /t",
        ],
    );
    assert!(mount.starts_with("none /t tmpfs "), "{mount}");
    assert!(mount.contains("size=5120k"), "{mount}");
    assert!(mount.ends_with("\n700\n"), "{mount}");
    let host = forge.root().join("served");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("index"), "from the host\n").unwrap();
    let device = format!("device={}", host.display());
    forge.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &device,
        "site",
    ]);
    let read = run(
        &forge,
        &[
            "-v",
            "site:/www",
            "host",
            "sh",
            "-c",
            "cat /www/index; echo back > /www/new",
        ],
    );
    assert_eq!(read, "from the host\n");
    assert_eq!(std::fs::read_to_string(host.join("new")).unwrap(), "back\n");
    forge.ok(&["volume", "rm", "site", "scratch"]);
    assert!(
        host.join("index").exists(),
        "removing a bind volume removed its directory"
    );
}

// ---------------------------------------------------------------------------------------------
// Compose: a service's `volumes` and the top-level `[volumes]`.

/// A project with a named volume (short form), an external one and a bind (long form, relative
/// to the compose file), an anonymous volume and a tmpfs: the first run writes, the second reads
/// what the first wrote; `--remove-volumes` removes the project's volumes, never the external one.
#[test]
fn compose_volumes_survive_a_stop_and_start_and_go_with_remove_volumes() {
    use common::supervisor::{assert_torn_down, compose_file, stop_cleanly, Supervisor};

    let forge = Forge::new();
    forge.ok(&["volume", "create", "outside"]);
    let file = compose_file(&format!(
        r#"
[volumes.db]
labels = {{ tier = "db" }}
[volumes.shared]
name = "outside"
external = true

[services.app]
image = "host"
volumes = [
    "db:/var/lib/db",
    "/scratch-anon",
    {{ type = "bind", source = "./site", target = "/www", read_only = true, bind = {{ create_host_path = true }} }},
    {{ type = "volume", source = "shared", target = "/shared" }},
    {{ type = "tmpfs", target = "/tmp/t", tmpfs = {{ size = "1m" }} }},
]
command = {}
"#,
        common::supervisor::report_then_wait(
            "cat /var/lib/db/count 2>/dev/null || echo none; \
             echo $(( $(cat /var/lib/db/count 2>/dev/null || echo 0) + 1 )) > /var/lib/db/count; \
             echo run >> /shared/log; \
             echo site=$(cat /www/index 2>/dev/null || echo missing); \
             touch /www/x 2>/dev/null && echo www-writable || echo www-ro; \
             grep ' /tmp/t ' /proc/mounts | grep -o 'size=[0-9]*k'; \
             echo ready"
        )
    ));
    let site = file.path.parent().unwrap().join("site");
    // The first run makes ./site (create_host_path); give it a file for the second.
    let first = |sup: &mut Supervisor| -> Vec<String> {
        sup.wait_output("app", "ready", |t| t == "ready");
        sup.output("app").into_iter().map(|l| l.text).collect()
    };
    let mut sup = Supervisor::start(&forge, "proj", &file.path, &[]);
    let lines = first(&mut sup);
    assert_eq!(
        lines,
        ["none", "site=missing", "www-ro", "size=1024k", "ready"],
        "{}",
        sup.dump()
    );
    assert!(
        site.is_dir(),
        "create_host_path made ./site next to the file"
    );
    stop_cleanly(&forge, &mut sup);
    let mut names = volumes(&forge);
    names.sort();
    assert_eq!(
        names.len(),
        3,
        "db, outside and one anonymous volume: {names:?}"
    );
    assert!(names.contains(&"proj_db".to_string()), "{names:?}");
    let info = forge.ok(&["volume", "inspect", "proj_db"]).stdout;
    let info: serde_json::Value = serde_json::from_str(&info).expect("inspect prints JSON");
    let labels = &info[0]["Labels"];
    assert_eq!(labels["tier"], "db", "{info}");
    assert_eq!(labels["com.docker.compose.project"], "proj", "{info}");

    std::fs::write(site.join("index"), "hello\n").unwrap();
    let mut sup = Supervisor::start(&forge, "proj", &file.path, &["--remove-volumes"]);
    let lines = first(&mut sup);
    assert_eq!(
        lines,
        ["1", "site=hello", "www-ro", "size=1024k", "ready"],
        "the second run reads what the first wrote:\n{}",
        sup.dump()
    );
    stop_cleanly(&forge, &mut sup);
    // The first run's anonymous volume was orphaned by its container's removal (as with
    // `docker compose down` without -v); the second run's went with --remove-volumes.
    let mut left = volumes(&forge);
    left.retain(|n| n != "outside");
    assert_eq!(
        left.len(),
        1,
        "only the first run's anonymous volume: {left:?}"
    );
    assert_ne!(left[0], "proj_db");
    let log = forge.ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "-v",
        "outside:/o",
        "host",
        "cat",
        "/o/log",
    ]);
    assert_eq!(log.stdout, "run\nrun\n", "the external volume is kept");
    forge.ok(&["volume", "rm", &left[0], "outside"]);
    assert_torn_down(&forge);
}

#[test]
fn compose_volume_errors_are_caught_by_check_with_the_place() {
    let forge = Forge::new();
    let file = common::supervisor::compose_file(
        "[services.app]\nimage = \"host\"\nvolumes = [\"data:/d\"]\n",
    );
    let out = output(
        &mut forge.supervise(&["--check", file.path.to_str().unwrap()]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(out.code, 2, "{out}");
    assert_eq!(
        out.stderr.trim(),
        format!(
            "forge-supervise: {}:3:12: services.app.volumes[0]: undefined volume \"data\" (define it as [volumes.data])",
            file.path.display()
        )
    );
    // An external volume that does not exist stops the start before any container is made.
    let file = common::supervisor::compose_file(
        "[volumes.xy]\nexternal = true\n[services.app]\nimage = \"host\"\nvolumes = [\"xy:/d\"]\n",
    );
    let out = output(
        &mut forge.supervise(&["-p", "p", file.path.to_str().unwrap()]),
        COMMAND_TIMEOUT,
    );
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains("external volume \"xy\" not found (volumes.xy)"),
        "{out}"
    );
    forge.assert_no_containers();
    assert_eq!(volumes(&forge), Vec::<String>::new());
}
