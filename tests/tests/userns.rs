//! `--userns=auto`: the container's root is root inside its own user namespace and an
//! unprivileged range of subordinate IDs outside, with the image, devices, networking, binds,
//! volumes and `forge exec` working as without one.
//!
//! Each test names its own subordinate ID files (FORGE_SUBUID_FILE/FORGE_SUBGID_FILE), so the
//! host's /etc/subuid and /etc/subgid are neither needed nor changed.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use common::{output, Forge, Out, COMMAND_TIMEOUT};

const UID_START: u32 = 3_000_000_000;
const GID_START: u32 = 3_100_000_000;
const RANGE: u32 = 65536;

/// A test's forge with subordinate ID files of its own: four ranges for user `containers`.
struct Userns {
    forge: Forge,
    subuid: PathBuf,
    subgid: PathBuf,
}

impl Userns {
    fn new() -> Self {
        let forge = Forge::new();
        let subuid = forge.root().join("subuid");
        let subgid = forge.root().join("subgid");
        let lines =
            |start: u32| format!("someone:100000:65536\ncontainers:{start}:{}\n", 4 * RANGE);
        std::fs::write(&subuid, lines(UID_START)).unwrap();
        std::fs::write(&subgid, lines(GID_START)).unwrap();
        Self {
            forge,
            subuid,
            subgid,
        }
    }

    fn run(&self, args: &[&str]) -> Out {
        let mut cmd = self.forge.command(args);
        cmd.env("FORGE_SUBUID_FILE", &self.subuid)
            .env("FORGE_SUBGID_FILE", &self.subgid);
        let out = output(&mut cmd, COMMAND_TIMEOUT);
        self.forge.note_ids(self.forge.container_ids());
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.code, 0, "forge {args:?} failed: {out}");
        out.stdout
    }

    /// `forge run -d --userns=auto --name NAME host sh -c SCRIPT`; the host pid of its PID 1.
    fn start(&self, name: &str, net: &str, script: &str) -> i64 {
        self.ok(&[
            "run",
            "-d",
            "--userns=auto",
            "--net",
            net,
            "--name",
            name,
            "host",
            "sh",
            "-c",
            script,
        ]);
        self.forge.running_pid(name)
    }

    /// `forge run --rm --net none ARGS...`; its stdout.
    fn run_rm(&self, args: &[&str]) -> String {
        let mut full = vec!["run", "--rm", "--net", "none"];
        full.extend_from_slice(args);
        self.ok(&full)
    }

    fn exec(&self, name: &str, script: &str) -> String {
        self.ok(&["exec", name, "sh", "-c", script])
    }

    /// The host (uid, gid) of the container's root, as `forge inspect` shows the mapping.
    fn mapping(&self, name: &str) -> (u32, u32) {
        let map = self.forge.inspect(name)["Config"]["userns"].clone();
        assert_eq!(map["size"], RANGE, "{map}");
        let id = |key: &str| map[key].as_u64().unwrap_or_else(|| panic!("{map}")) as u32;
        (id("uid"), id("gid"))
    }

    fn upper(&self, name: &str) -> PathBuf {
        let id = self.forge.inspect(name)["Config"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        self.forge.root().join("containers").join(id).join("upper")
    }
}

/// The four IDs of a `/proc/PID/status` line such as `Uid:`.
fn status_ids(pid: i64, field: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("{field} missing: {status}"))
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

fn words(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

#[test]
fn root_inside_is_the_first_id_of_a_subordinate_range_outside() {
    let t = Userns::new();
    let pid = t.start("box", "none", "touch /made-inside; sleep 60");
    let (uid, gid) = t.mapping("box");
    assert_eq!((uid, gid), (UID_START, GID_START));
    assert_eq!(status_ids(pid, "Uid:"), vec![uid; 4]);
    assert_eq!(status_ids(pid, "Gid:"), vec![gid; 4]);

    let inside = t.exec(
        "box",
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map",
    );
    let expected = format!("0\n0\n0 {UID_START} {RANGE}\n0 {GID_START} {RANGE}");
    assert_eq!(
        inside
            .lines()
            .map(|l| words(l).join(" "))
            .collect::<Vec<_>>(),
        expected.lines().collect::<Vec<_>>()
    );
    // exec is in the container's user namespace, not merely mapped alike.
    let host_ns = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    let exec_ns = t.exec("box", "readlink /proc/self/ns/user");
    assert_eq!(exec_ns.trim(), host_ns.to_str().unwrap());

    // The image's files (owned by host root, shared by every container) belong to root inside.
    let owners = t.exec("box", "stat -c '%u:%g' /bin/busybox /etc /");
    assert_eq!(words(&owners), vec!["0:0"; 3]);
    // ... and what root creates inside belongs to the range outside.
    let made = std::fs::metadata(t.upper("box").join("made-inside")).unwrap();
    assert_eq!((made.uid(), made.gid()), (uid, gid));

    let devices = t.exec(
        "box",
        "echo gone > /dev/null && head -c 16 /dev/urandom | wc -c && head -c 3 /dev/zero | wc -c",
    );
    assert_eq!(words(&devices), vec!["16", "3"]);
}

/// (uid, gid) of a host path.
fn owner(path: &std::path::Path) -> (u32, u32) {
    let meta =
        std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.uid(), meta.gid())
}

#[test]
fn binds_and_volumes_are_idmapped_so_the_container_sees_and_writes_the_ids_on_disk() {
    let t = Userns::new();
    let root = t.forge.root();
    let site = root.join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("by-root"), "r\n").unwrap();
    std::fs::write(site.join("by-user"), "u\n").unwrap();
    std::os::unix::fs::chown(site.join("by-user"), Some(1000), Some(1000)).unwrap();
    t.ok(&["volume", "create", "data"]);
    t.ok(&["volume", "create", "--opt", "size=20m", "disk"]);
    let bind = format!("{}:/site", site.display());
    let read_only = format!("{}:/ro:ro", site.display());
    let out = t.run_rm(&[
        "--userns=auto",
        "-v",
        &bind,
        "-v",
        &read_only,
        "-v",
        "data:/data",
        "-v",
        "disk:/disk",
        "-v",
        "cfg:/etc",
        "host",
        "sh",
        "-c",
        "stat -c %u:%g /site/by-root /site/by-user /data /disk /etc/passwd; \
         touch /site/new /data/new /disk/new && echo wrote; touch /ro/new 2>&1; true",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..6],
        ["0:0", "1000:1000", "0:0", "0:0", "0:0", "wrote"],
        "{out}"
    );
    assert!(lines[6].contains("Read-only file system"), "{out}");
    // What the container's root wrote is root's on disk, not the range's; the image's /etc
    // was copied into the empty volume with its owners as they are in the image.
    let volume = |name: &str| root.join("volumes").join(name).join("_data");
    assert_eq!(owner(&site.join("new")), (0, 0));
    assert_eq!(owner(&volume("data").join("new")), (0, 0));
    assert_eq!(owner(&volume("cfg").join("passwd")), (0, 0));
    // So a container without a user namespace reads the volumes as its own too.
    let plain = t.run_rm(&[
        "-v",
        "disk:/disk",
        "-v",
        "data:/data",
        "host",
        "stat",
        "-c",
        "%u",
        "/disk/new",
        "/data/new",
    ]);
    assert_eq!(words(&plain), ["0", "0"], "{plain}");

    // Podman's U under a user namespace: the files become the container user's, by the IDs
    // the container sees, and that user can write there.
    let code = root.join("code");
    std::fs::create_dir(&code).unwrap();
    std::fs::write(code.join("main.c"), "int main;\n").unwrap();
    let out = t.run_rm(&[
        "--userns=auto",
        "-u",
        "1000:1000",
        "-v",
        &format!("{}:/code:U", code.display()),
        "host",
        "sh",
        "-c",
        "touch /code/built && stat -c %u:%g /code /code/main.c /code/built",
    ]);
    assert_eq!(words(&out), ["1000:1000"; 3], "{out}");
    for file in ["", "main.c", "built"] {
        assert_eq!(owner(&code.join(file)), (1000, 1000), "{file}");
    }
}

#[test]
fn files_of_the_hosts_root_are_nobodys_to_the_containers_root() {
    let t = Userns::new();
    t.start("box", "none", "sleep 60");
    // A directory and a secret of the host's root, placed into the container's view from outside.
    let upper = t.upper("box");
    let dir = upper.join("hostdir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = upper.join("secret");
    std::fs::write(&secret, "host secret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(std::fs::metadata(&secret).unwrap().uid(), 0);

    let out = t.exec(
        "box",
        "stat -c %u /hostdir /secret; \
         touch /hostdir/new 2>/dev/null && echo created || echo create-refused; \
         cat /secret 2>/dev/null || echo read-refused",
    );
    assert_eq!(
        words(&out),
        vec!["65534", "65534", "create-refused", "read-refused"],
        "{out}"
    );
    assert!(!dir.join("new").exists());
}

#[test]
fn concurrent_containers_get_disjoint_ranges_and_removal_frees_them() {
    let t = Userns::new();
    t.start("a", "none", "sleep 60");
    t.start("b", "none", "sleep 60");
    let (a, b) = (t.mapping("a"), t.mapping("b"));
    let disjoint = |x: u32, y: u32| x + RANGE <= y || y + RANGE <= x;
    assert!(disjoint(a.0, b.0) && disjoint(a.1, b.1), "{a:?} {b:?}");
    for (uid, gid) in [a, b] {
        let in_file = |id: u32, start: u32| id >= start && id + RANGE <= start + 4 * RANGE;
        assert!(in_file(uid, UID_START) && in_file(gid, GID_START));
    }
    t.ok(&["rm", "-f", "a"]);
    t.start("c", "none", "sleep 60");
    assert_eq!(t.mapping("c"), a, "a's range is free once a is removed");
    t.ok(&["rm", "-f", "b", "c"]);
    t.forge.assert_no_containers();
    // The idmapped layers were mounts of the container's namespace only: none is on the host.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = t.forge.root().to_str().unwrap().to_string();
    assert!(!mounts.lines().any(|l| l.contains(&root)), "{mounts}");
}

#[test]
fn a_bridged_container_has_its_network_and_sysfs() {
    let t = Userns::new();
    let out = t.ok(&[
        "run",
        "--rm",
        "--userns=auto",
        "host",
        "sh",
        "-c",
        "id -u; ip -4 -o addr show eth0 | wc -l; ls /sys/class/net; \
         awk '$5 == \"/sys\" { split($6, o, \",\"); print o[1] }' /proc/self/mountinfo",
    ]);
    let out = words(&out);
    assert_eq!(out[..2], ["0", "1"], "{out:?}");
    assert!(out.contains(&"eth0") && out.contains(&"lo"), "{out:?}");
    assert_eq!(out.last(), Some(&"ro"), "{out:?}");
}

#[test]
fn bad_userns_input_is_refused_and_leaves_nothing() {
    let t = Userns::new();
    let bogus = t.run(&["run", "--rm", "--userns=bogus", "host", "true"]);
    assert_eq!(bogus.code, 125, "{bogus}");
    assert_eq!(bogus.stderr_lines().len(), 1, "{bogus}");
    assert!(bogus.stderr.contains("\"bogus\""), "{bogus}");

    std::fs::write(&t.subgid, "someone:100000:65536\n").unwrap();
    let missing = t.run(&["run", "--rm", "--userns=auto", "host", "true"]);
    assert_eq!(missing.code, 125, "{missing}");
    assert_eq!(missing.stderr_lines().len(), 1, "{missing}");
    assert!(
        missing.stderr.contains("containers:")
            && missing.stderr.contains(t.subgid.to_str().unwrap()),
        "{missing}"
    );
    // A range that includes ID 0 would make the container's root the host's.
    std::fs::write(&t.subgid, "containers:0:131072\n").unwrap();
    let root = t.run(&["run", "--rm", "--userns=auto", "host", "true"]);
    assert_eq!(root.code, 125, "{root}");
    assert_eq!(root.stderr_lines().len(), 1, "{root}");
    assert!(root.stderr.contains("includes ID 0"), "{root}");
    t.forge.assert_no_containers();
}

/// Removes `user.overlay.opaque` from every directory below `dir`; how many had it.
fn strip_user_opaque(dir: &std::path::Path) -> usize {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: both strings are NUL-terminated.
    let removed = unsafe { libc::lremovexattr(path.as_ptr(), c"user.overlay.opaque".as_ptr()) };
    let mut count = usize::from(removed == 0);
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            count += strip_user_opaque(&entry.path());
        }
    }
    count
}

#[test]
fn image_layers_stack_with_their_whiteouts_and_opaque_directories() {
    let t = Userns::new();
    let tools = common::oci::tools_dir();
    common::oci::build_images(tools.path());
    // v3 = v1 plus a layer whose /dir is opaque (`.wh..wh..opq`): only its own /dir/z shows.
    common::oci::sh(&format!(
        r#"cd {dir}
mkdir -p opq/dir && touch opq/dir/.wh..wh..opq && echo z > opq/dir/z
tar -C opq -cf opq.tar dir
umoci raw add-layer --image lay:v1 --tag v3 opq.tar
(cd lay && tar -cf ../oci.tar .)"#,
        dir = tools.path().display()
    ));
    t.ok(&["load", "-i", tools.path().join("oci.tar").to_str().unwrap()]);
    // As an older Forge unpacked them: opaque for overlayfs in trusted.* only. The first
    // user-namespaced start must mark them for userxattr too.
    let stripped = strip_user_opaque(&t.forge.root().join("layers/sha256"));
    assert_eq!(stripped, 1, "one opaque directory in the store");
    let run = |image: &str, script: &str| {
        t.ok(&[
            "run",
            "--rm",
            "--userns=auto",
            "--net",
            "none",
            image,
            script,
        ])
    };
    // v2 deletes /a.txt and /dir/x of v1 with whiteouts.
    let v2 = run(
        "oci:v2",
        "ls -A /dir; ls /a.txt 2>/dev/null || echo no-a; cat /keep",
    );
    assert_eq!(words(&v2), ["y", "no-a", "k"], "{v2}");
    let v3 = run("oci:v3", "ls -A /dir; cat /a.txt");
    assert_eq!(words(&v3), ["z", "a"], "{v3}");
}

#[test]
fn exec_tty_opens_a_pty_of_the_containers_devpts_as_its_root() {
    let t = Userns::new();
    t.start("box", "none", "sleep 60");
    let out = t.ok(&[
        "exec",
        "-t",
        "box",
        "sh",
        "-c",
        "tty; stat -c %u $(tty); id -u",
    ]);
    assert_eq!(words(&out), vec!["/dev/pts/0", "0", "0"], "{out}");
}
