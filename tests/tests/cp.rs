//! `forge cp`: docker cp's rules for files, directories, `dir/.` and `-` tar streams, into and
//! out of running and stopped containers; modes, times, symlinks and (with `-a`) owners kept;
//! container paths that symlinks (planted or swapped in a loop) try to point at the host; and
//! every refusal of bad input (exit 125, one line, nothing made).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{Forge, Out};

/// A running container `name` (no network) that sleeps.
fn running(forge: &Forge, name: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name, "--net", "none"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["host", "sleep", "1000"]);
    forge.ok(&args);
}

/// `forge exec NAME sh -c SCRIPT`'s stdout; fails unless it exits 0.
fn exec(forge: &Forge, name: &str, script: &str) -> String {
    forge.ok(&["exec", name, "sh", "-c", script]).stdout
}

/// `forge cp ARGS...` run in `cwd`.
fn cp_in(forge: &Forge, cwd: &Path, args: &[&str]) -> Out {
    let mut full = vec!["cp"];
    full.extend_from_slice(args);
    let mut cmd = forge.command(&full);
    cmd.current_dir(cwd);
    common::output(&mut cmd, common::COMMAND_TIMEOUT)
}

fn cp(forge: &Forge, args: &[&str]) -> Out {
    cp_in(forge, Path::new("/"), args)
}

fn cp_ok(forge: &Forge, args: &[&str]) {
    let out = cp(forge, args);
    assert_eq!(out.code, 0, "forge cp {args:?}: {out}");
}

/// `forge cp SRC -`: the tar stream it writes, read with the tar crate as (name, content, uid).
fn cp_to_stream(forge: &Forge, src: &str) -> Vec<(String, Vec<u8>, u64)> {
    let out = forge
        .command(&["cp", src, "-"])
        .stdout(Stdio::piped())
        .output()
        .expect("forge cp");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut archive = tar::Archive::new(out.stdout.as_slice());
    let mut entries = Vec::new();
    for entry in archive.entries().expect("a tar stream") {
        let mut entry = entry.expect("an entry");
        let name = entry.path().unwrap().display().to_string();
        let uid = entry.header().uid().unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        entries.push((name, data, uid));
    }
    entries
}

/// `forge cp [-a] - DST` with `tar` on stdin.
fn cp_from_stream(forge: &Forge, archive: bool, dst: &str, tar: &[u8]) -> Out {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), tar).unwrap();
    let args: Vec<&str> = if archive {
        vec!["cp", "-a", "-", dst]
    } else {
        vec!["cp", "-", dst]
    };
    let mut cmd = forge.command(&args);
    cmd.stdin(std::fs::File::open(file.path()).unwrap());
    let out = cmd.output().expect("forge cp");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A host directory for one test.
fn host_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("forge-cp-")
        .tempdir()
        .unwrap()
}

/// A fresh host directory holding file `name` with `content`; the file's path.
fn host_file(name: &str, content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = host_dir();
    let file = dir.path().join(name);
    std::fs::write(&file, content).unwrap();
    (dir, file)
}

/// A test's Forge with a running container `web` (`extra`: more `run` flags).
fn with_web(extra: &[&str]) -> Forge {
    let forge = Forge::new();
    running(&forge, "web", extra);
    forge
}

/// A directory on the host that containers must never reach: `secret` says HOST.
struct Canary {
    dir: PathBuf,
}

impl Canary {
    fn new() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let dir = PathBuf::from(format!(
            "/tmp/forge-cp-canary-{}-{}",
            std::process::id(),
            now.subsec_nanos()
        ));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("secret"), "HOST\n").unwrap();
        Self { dir }
    }

    fn path(&self) -> String {
        self.dir.display().to_string()
    }

    /// Fails unless the canary holds exactly `secret`, still saying HOST.
    fn assert_untouched(&self) {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["secret"],
            "something was written into the host's {}",
            self.path()
        );
        assert_eq!(
            std::fs::read_to_string(self.dir.join("secret")).unwrap(),
            "HOST\n"
        );
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    let t = nix::sys::time::TimeSpec::new(secs, nanos);
    nix::sys::stat::utimensat(
        None,
        path,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

#[test]
fn a_file_goes_in_and_out_of_a_running_container_with_its_mode_and_nanosecond_mtime() {
    let forge = with_web(&[]);
    let (dir, file) = host_file("app.conf", "setting=1\n");
    std::fs::set_permissions(&file, PermissionsExt::from_mode(0o751)).unwrap();
    set_mtime(&file, 1_600_000_000, 123_456_789);
    // Into an existing directory, and as a new name.
    cp_ok(&forge, &[&file.display().to_string(), "web:/etc/"]);
    cp_ok(&forge, &[&file.display().to_string(), "web:/tmp/renamed"]);
    assert_eq!(
        exec(
            &forge,
            "web",
            "cat /etc/app.conf /tmp/renamed; stat -c '%a %u:%g %Y' /etc/app.conf"
        ),
        "setting=1\nsetting=1\n751 0:0 1600000000\n"
    );
    // Over an existing file.
    exec(&forge, "web", "echo changed > /etc/app.conf");
    // Out, relative to the caller's working directory.
    let out = cp_in(&forge, dir.path(), &["web:/etc/app.conf", "."]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "changed\n");
    let back = host_dir();
    cp_ok(
        &forge,
        &[
            "web:/tmp/renamed",
            &back.path().join("f").display().to_string(),
        ],
    );
    let meta = std::fs::metadata(back.path().join("f")).unwrap();
    assert_eq!(
        std::fs::read_to_string(back.path().join("f")).unwrap(),
        "setting=1\n"
    );
    assert_eq!(meta.mode() & 0o7777, 0o751);
    assert_eq!(
        (meta.mtime(), meta.mtime_nsec()),
        (1_600_000_000, 123_456_789)
    );
}

#[test]
fn directories_follow_docker_rules_for_new_existing_and_dot_destinations() {
    let forge = with_web(&[]);
    let dir = host_dir();
    let src = dir.path().join("conf.d");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a"), "A").unwrap();
    std::fs::write(src.join("sub/b"), "B").unwrap();
    std::os::unix::fs::symlink("../a", src.join("sub/link")).unwrap();
    std::fs::hard_link(src.join("a"), src.join("hard")).unwrap();
    std::fs::set_permissions(&src, PermissionsExt::from_mode(0o750)).unwrap();
    set_mtime(&src.join("sub"), 1_500_000_000, 5);
    let s = src.display().to_string();
    exec(&forge, "web", "mkdir /existing /dots");
    // Missing destination: made, with the source's contents.
    cp_ok(&forge, &[&s, "web:/made"]);
    // Existing directory: the source goes in as a subdirectory.
    cp_ok(&forge, &[&s, "web:/existing"]);
    // `SRC/.`: the contents go into the existing directory.
    cp_ok(&forge, &[&format!("{s}/."), "web:/dots"]);
    let seen = exec(
        &forge,
        "web",
        "cat /made/a /made/sub/b /existing/conf.d/a /dots/sub/b; echo; \
         readlink /made/sub/link; stat -c '%a %i' /made /dots; stat -c %i /made/a /made/hard; \
         stat -c %Y /made/sub; ls /existing; ls /dots",
    );
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[0], "ABAB", "{seen}");
    assert_eq!(lines[1], "../a", "{seen}");
    assert!(
        lines[2].starts_with("750 ") && lines[3].starts_with("750 "),
        "{seen}"
    );
    assert_eq!(lines[4], lines[5], "the hard link is not one: {seen}");
    assert_eq!(lines[6], "1500000000", "{seen}");
    assert_eq!(lines[7], "conf.d", "{seen}");
    assert_eq!(&lines[8..], ["a", "hard", "sub"], "{seen}");
    // Round trip out: `CTR:/made/.` into a new host directory.
    let out_dir = host_dir();
    let target = out_dir.path().join("copy");
    cp_ok(&forge, &["web:/made/.", &target.display().to_string()]);
    assert_eq!(std::fs::read_to_string(target.join("sub/b")).unwrap(), "B");
    assert_eq!(
        std::fs::read_link(target.join("sub/link")).unwrap(),
        Path::new("../a")
    );
    assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o7777, 0o750);
    let sub = std::fs::metadata(target.join("sub")).unwrap();
    assert_eq!((sub.mtime(), sub.mtime_nsec()), (1_500_000_000, 5));
}

#[test]
fn tar_streams_go_both_ways_and_owners_are_the_containers_root_unless_a() {
    let forge = with_web(&[]);
    let mut builder = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o640);
    h.set_uid(1234);
    h.set_gid(4321);
    h.set_mtime(1_400_000_000);
    builder.append_data(&mut h, "in/file", &b"abc"[..]).unwrap();
    let tar = builder.into_inner().unwrap();
    exec(&forge, "web", "mkdir /plain /kept");
    let out = cp_from_stream(&forge, false, "web:/plain", &tar);
    assert_eq!(out.code, 0, "{out}");
    let out = cp_from_stream(&forge, true, "web:/kept", &tar);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        exec(
            &forge,
            "web",
            "stat -c '%a %u:%g %Y' /plain/in/file /kept/in/file; cat /kept/in/file"
        ),
        "640 0:0 1400000000\n640 1234:4321 1400000000\nabc"
    );
    // Out: the tar names the source's last component and keeps owners.
    let entries = cp_to_stream(&forge, "web:/kept/in");
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, ["in/", "in/file"]);
    assert_eq!(entries[1].1, b"abc");
    assert_eq!(entries[1].2, 1234);
    // `-` into something that is not a directory is refused.
    let out = cp_from_stream(&forge, false, "web:/kept/in/file", &tar);
    assert_eq!(out.code, 125, "{out}");
    assert!(out.stderr.contains("must be a directory"), "{out}");
}

#[test]
fn a_keeps_uid_and_gid_when_copying_in_and_the_default_gives_the_containers_root() {
    let forge = with_web(&[]);
    let (_dir, file) = host_file("owned", "x");
    nix::unistd::chown(&file, Some(1234.into()), Some(5678.into())).unwrap();
    let f = file.display().to_string();
    cp_ok(&forge, &["-a", &f, "web:/kept"]);
    cp_ok(&forge, &[&f, "web:/rooted"]);
    assert_eq!(
        exec(&forge, "web", "stat -c %u:%g /kept /rooted"),
        "1234:5678\n0:0\n"
    );
}

#[test]
fn stopped_containers_are_copied_into_and_out_of_and_start_with_the_copy() {
    let forge = with_web(&["-v", "data:/data"]);
    exec(
        &forge,
        "web",
        "echo inside > /data/vol; echo layer > /etc/mine",
    );
    forge.ok(&["stop", "-t", "1", "web"]);
    assert_eq!(forge.status("web"), "exited", "not stopped");
    let (_dir, file) = host_file("new.conf", "copied while stopped\n");
    cp_ok(&forge, &[&file.display().to_string(), "web:/etc/new.conf"]);
    cp_ok(&forge, &[&file.display().to_string(), "web:/data/"]);
    // Out of the writable layer and out of the volume.
    let entries = cp_to_stream(&forge, "web:/etc/mine");
    assert_eq!(entries[0].1, b"layer\n");
    let entries = cp_to_stream(&forge, "web:/data/vol");
    assert_eq!(entries[0].1, b"inside\n");
    // Nothing of the copy is mounted anywhere.
    assert!(common::mounts_naming(&forge.container_ids().into_iter().collect()).is_empty());
    forge.ok(&["start", "web"]);
    assert_eq!(
        exec(&forge, "web", "cat /etc/new.conf /data/new.conf"),
        "copied while stopped\ncopied while stopped\n"
    );
}

#[test]
fn a_volume_of_a_running_container_is_seen_by_cp() {
    let forge = with_web(&["-v", "data:/var/lib/db"]);
    exec(&forge, "web", "echo row > /var/lib/db/table");
    let entries = cp_to_stream(&forge, "web:/var/lib/db/table");
    assert_eq!(entries[0].1, b"row\n");
    let on_disk = forge.root().join("volumes/data/_data/table");
    assert_eq!(std::fs::read_to_string(on_disk).unwrap(), "row\n");
}

#[test]
fn symlinks_in_the_container_to_the_hosts_paths_resolve_inside_the_container() {
    let forge = Forge::new();
    let canary = Canary::new();
    let c = canary.path();
    running(&forge, "web", &[]);
    exec(
        &forge,
        "web",
        &format!(
            "ln -s / /evil; ln -s ../../../../.. /up; mkdir -p {c}; echo CONTAINER > {c}/secret"
        ),
    );
    let (_dir, file) = host_file("x", "payload");
    let f = file.display().to_string();
    // In: through an absolute and a climbing symlink.
    cp_ok(&forge, &[&f, &format!("web:/evil{c}/")]);
    cp_ok(&forge, &[&f, &format!("web:/up{c}/y")]);
    // A tar whose entry climbs out is refused.
    let mut builder = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    let name = format!("../../../..{c}/z");
    // The tar crate refuses `..` in set_path: write the name bytes directly.
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    builder.append(&h, &b"!"[..]).unwrap();
    let out = cp_from_stream(&forge, false, "web:/tmp", &builder.into_inner().unwrap());
    assert_ne!(out.code, 0, "{out}");
    canary.assert_untouched();
    assert_eq!(
        exec(&forge, "web", &format!("cat {c}/x {c}/y")),
        "payloadpayload"
    );
    // Out: the container's file, never the host's.
    for src in [format!("web:/evil{c}/secret"), format!("web:/up{c}/secret")] {
        let entries = cp_to_stream(&forge, &src);
        assert_eq!(entries[0].1, b"CONTAINER\n", "{src}");
    }
    // -L follows a link that climbs out, inside the container.
    exec(
        &forge,
        "web",
        &format!("ln -s ../../../..{c}/secret /sneaky"),
    );
    let out_dir = host_dir();
    let got = out_dir.path().join("got");
    cp_ok(&forge, &["-L", "web:/sneaky", &got.display().to_string()]);
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "CONTAINER\n");
    // Without -L the link itself is copied.
    let link = out_dir.path().join("link");
    cp_ok(&forge, &["web:/sneaky", &link.display().to_string()]);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    canary.assert_untouched();
}

#[test]
fn a_directory_swapped_for_a_symlink_to_root_in_a_loop_never_reaches_the_host() {
    let forge = Forge::new();
    let canary = Canary::new();
    let c = canary.path();
    running(&forge, "web", &[]);
    exec(
        &forge,
        "web",
        &format!("mkdir -p /race {c}; echo CONTAINER > {c}/secret"),
    );
    // A process in the container swaps /race/d between a directory and a link to /.
    let swapper = format!(
        "while :; do mkdir -p /race/d{c}; echo RACE > /race/d{c}/secret; rm -rf /race/d; \
         ln -s / /race/d; rm /race/d; done"
    );
    let mut bg = forge.spawn(&["exec", "web", "sh", "-c", &swapper]);
    let (_dir, file) = host_file("payload", "payload");
    let f = file.display().to_string();
    // At least 60 rounds, and on until some copy has gone through the link (into the
    // container's own directory), so that the race was really run: how often a copy meets the
    // link depends on the machine's load.
    let through_link = || {
        exec(&forge, "web", &format!("ls {c}"))
            .lines()
            .any(|l| l.starts_with('p'))
    };
    let deadline = std::time::Instant::now() + common::scaled(std::time::Duration::from_secs(120));
    let mut n = 0;
    loop {
        let _ = cp(&forge, &[&f, &format!("web:/race/d{c}/p{n}")]);
        let out = forge
            .command(&["cp", &format!("web:/race/d{c}/secret"), "-"])
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                !text.contains("HOST"),
                "read the host's file through the race"
            );
        }
        canary.assert_untouched();
        n += 1;
        if n >= 60 && n % 20 == 0 && through_link() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no copy went through the link in {n} rounds"
        );
    }
    bg.kill();
    canary.assert_untouched();
}

#[test]
fn bad_input_is_one_line_exit_125_and_makes_nothing() {
    let forge = with_web(&[]);
    let (dir, file) = host_file("f", "f");
    let f = file.display().to_string();
    let d = dir.path().display().to_string();
    let missing_host = dir.path().join("missing").display().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![f.clone(), "nosuch:/tmp".into()], "nosuch"),
        (vec!["web:/no/such".into(), d.clone()], "/no/such"),
        (vec![f.clone(), "web:/no/dir/x".into()], "/no/dir"),
        (vec![missing_host.clone(), "web:/tmp".into()], "missing"),
        (
            vec![f.clone(), "web:/tmp/newdir/".into()],
            "no such directory",
        ),
        (
            vec![d.clone(), "web:/etc/hostname".into()],
            "cannot copy a directory to a file",
        ),
        (vec![f.clone(), "web:".into()], "web:"),
        (vec![f.clone(), d.clone()], "at least one container"),
        (
            vec!["web:/etc".into(), "web:/tmp".into()],
            "between containers",
        ),
        (
            vec!["web:/etc/hostname/".into(), d.clone()],
            "not a directory",
        ),
    ];
    for (args, culprit) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cp(&forge, &args);
        assert_eq!(out.code, 125, "forge cp {args:?}: {out}");
        assert!(
            out.forge_error_line().contains(culprit),
            "{culprit:?} not named: {out}"
        );
    }
    // Nothing was made, in the container or on the host.
    assert_eq!(
        exec(&forge, "web", "ls /tmp; ls -d /no 2>/dev/null; true"),
        ""
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["f"]);
}

#[test]
fn a_start_waits_for_the_rootfs_lock_a_copy_holds() {
    let forge = with_web(&[]);
    forge.ok(&["stop", "-t", "1", "web"]);
    let ids = forge.container_ids();
    assert_eq!(ids.len(), 1);
    let lock_path = forge
        .root()
        .join("containers")
        .join(&ids[0])
        .join("rootfs.lock");
    // Hold the lock as a copy into the stopped root does.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&lock);
    // SAFETY: flock takes an fd we own and touches no memory.
    let locked = unsafe { libc::flock(fd, libc::LOCK_EX) };
    assert_eq!(locked, 0);
    let mut start = forge.spawn(&["start", "web"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(!start.has_exited(), "start did not wait for the lock");
    assert_eq!(forge.status("web"), "exited");
    drop(lock);
    let out = start.finish(common::COMMAND_TIMEOUT);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(exec(&forge, "web", "echo up"), "up\n");
}

#[test]
fn xattrs_go_in_and_come_back_out() {
    let forge = with_web(&[]);
    let (dir, file) = host_file("tagged", "x");
    let set = |path: &Path, name: &str, value: &[u8]| {
        let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        let n = std::ffi::CString::new(name).unwrap();
        // SAFETY: both strings are valid and `value` holds `value.len()` bytes.
        unsafe {
            libc::setxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        }
    };
    if set(&file, "user.forge", b"kept") != 0 {
        panic!("the host's {} holds no user xattrs", dir.path().display());
    }
    cp_ok(&forge, &[&file.display().to_string(), "web:/tagged"]);
    let back = host_dir();
    let copy = back.path().join("again");
    cp_ok(&forge, &["web:/tagged", &copy.display().to_string()]);
    let p = std::ffi::CString::new(copy.as_os_str().as_encoded_bytes()).unwrap();
    let mut buf = [0u8; 16];
    // SAFETY: valid strings; `buf` has room for 16 bytes.
    let n = unsafe {
        libc::getxattr(
            p.as_ptr(),
            c"user.forge".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(n, 4, "user.forge lost on the way");
    assert_eq!(&buf[..4], b"kept");
}

#[test]
fn a_userns_auto_container_sees_copied_files_with_its_own_ids() {
    let forge = Forge::new();
    let (subuid, subgid) = (forge.root().join("subuid"), forge.root().join("subgid"));
    std::fs::write(&subuid, "containers:3500000000:65536\n").unwrap();
    std::fs::write(&subgid, "containers:3600000000:65536\n").unwrap();
    let args = [
        "run",
        "-d",
        "--name",
        "web",
        "--net",
        "none",
        "--userns=auto",
        "-v",
        "data:/data",
    ];
    let mut cmd = forge.command(&[&args[..], &["host", "sleep", "1000"]].concat());
    cmd.env("FORGE_SUBUID_FILE", &subuid)
        .env("FORGE_SUBGID_FILE", &subgid);
    let out = common::output(&mut cmd, common::COMMAND_TIMEOUT);
    assert_eq!(out.code, 0, "{out}");
    let (dir, file) = host_file("f", "mapped");
    nix::unistd::chown(&file, Some(5.into()), Some(6.into())).unwrap();
    let f = file.display().to_string();
    cp_ok(&forge, &[&f, "web:/rooted"]);
    cp_ok(&forge, &["-a", &f, "web:/kept"]);
    assert_eq!(
        exec(&forge, "web", "stat -c %u:%g /rooted /kept; cat /kept"),
        "0:0\n5:6\nmapped"
    );
    // Out: the tar and -a give the container's IDs, not the host's shifted ones.
    assert_eq!(cp_to_stream(&forge, "web:/kept")[0].2, 5);
    let back = dir.path().join("back");
    cp_ok(&forge, &["-a", "web:/kept", &back.display().to_string()]);
    let meta = std::fs::metadata(&back).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (5, 6));

    // Stopped, the same: the layers and volumes are idmapped as the container sees them, so a
    // directory of the image copied up into the writable layer (/etc, for /etc/group) stays
    // its root's, and what goes into a volume lands with the container's IDs.
    forge.ok(&["stop", "-t", "1", "web"]);
    assert_eq!(cp_to_stream(&forge, "web:/kept")[0].2, 5);
    cp_ok(&forge, &[&f, "web:/stopped"]);
    cp_ok(&forge, &[&f, "web:/etc/group"]);
    cp_ok(&forge, &["-a", &f, "web:/data/kept"]);
    forge.ok(&["start", "web"]);
    assert_eq!(
        exec(
            &forge,
            "web",
            "stat -c %u:%g /stopped /etc /etc/group /data/kept; cat /etc/group"
        ),
        "0:0\n0:0\n0:0\n5:6\nmapped"
    );
    let on_disk = std::fs::metadata(forge.root().join("volumes/data/_data/kept")).unwrap();
    assert_eq!((on_disk.uid(), on_disk.gid()), (5, 6));
}

#[test]
fn a_stopped_read_only_container_takes_copies_into_its_volumes_but_not_its_root() {
    let forge = with_web(&["--read-only", "-v", "data:/data"]);
    forge.ok(&["stop", "-t", "1", "web"]);
    let (_dir, file) = host_file("in.conf", "into the volume\n");
    let f = file.display().to_string();
    cp_ok(&forge, &[&f, "web:/data/"]);
    let refused = cp(&forge, &[&f, "web:/etc/in.conf"]);
    assert_eq!(refused.code, 125, "{refused}");
    assert!(
        refused.forge_error_line().contains("Read-only file system"),
        "{refused}"
    );
    let on_disk = forge.root().join("volumes/data/_data/in.conf");
    assert_eq!(
        std::fs::read_to_string(on_disk).unwrap(),
        "into the volume\n"
    );
    forge.ok(&["start", "web"]);
    assert_eq!(
        exec(
            &forge,
            "web",
            "cat /data/in.conf; ls /etc/in.conf 2>&1 || true"
        ),
        "into the volume\nls: /etc/in.conf: No such file or directory\n"
    );
}
