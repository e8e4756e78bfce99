//! What a default container may not do: capabilities beyond Docker's default set, new
//! privileges through exec, and the host's kernel state under /proc and /sys.

mod common;

use common::Forge;

/// Docker's default capability set as the kernel prints it (CapEff/CapBnd).
const DOCKER_DEFAULT_CAPS: &str = "00000000a80425fb";

fn status_field(out: &str, field: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("{field} missing in {out}"))
}

fn caps_of(forge: &Forge, extra: &[&str]) -> String {
    let mut args = vec!["run", "--rm", "--net", "none"];
    args.extend_from_slice(extra);
    args.extend(["host", "cat", "/proc/self/status"]);
    forge.ok(&args).stdout
}

#[test]
fn the_command_has_dockers_default_capabilities_and_no_new_privileges() {
    let forge = Forge::new();
    let status = caps_of(&forge, &[]);
    for field in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(
            status_field(&status, field),
            DOCKER_DEFAULT_CAPS,
            "{field}: {status}"
        );
    }
    assert_eq!(status_field(&status, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&status, "CapAmb"), "0000000000000000");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    // So the classic privileged operations fail.
    let script = "hostname evil 2>/dev/null || echo hostname-refused; mkdir -p /m; \
        mount -t tmpfs t /m 2>/dev/null || echo mount-refused; \
        (echo 1 > /proc/sysrq-trigger) 2>/dev/null || echo sysrq-refused; \
        ip link add d0 type veth peer name d1 2>/dev/null || echo link-refused";
    let out = forge.run(&["run", "--rm", "--net", "none", "host", "sh", "-c", script]);
    for refused in [
        "hostname-refused",
        "mount-refused",
        "sysrq-refused",
        "link-refused",
    ] {
        assert!(out.stdout.contains(refused), "{refused}: {out}");
    }
}

#[test]
fn exec_gets_the_same_bounds() {
    let forge = Forge::new();
    forge.ok(&[
        "run", "-d", "--name", "box", "--net", "none", "host", "sleep", "60",
    ]);
    let status = forge
        .ok(&["exec", "box", "cat", "/proc/self/status"])
        .stdout;
    assert_eq!(
        status_field(&status, "CapEff"),
        DOCKER_DEFAULT_CAPS,
        "{status}"
    );
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
}

#[test]
fn cap_add_cap_drop_and_privileged() {
    let forge = Forge::new();
    let added = caps_of(&forge, &["--cap-add", "NET_ADMIN", "--cap-drop", "net_raw"]);
    let eff = u64::from_str_radix(&status_field(&added, "CapEff"), 16).unwrap();
    assert_ne!(eff & (1 << 12), 0, "NET_ADMIN missing: {added}");
    assert_eq!(eff & (1 << 13), 0, "NET_RAW kept: {added}");
    let none = caps_of(&forge, &["--cap-drop", "ALL"]);
    assert_eq!(status_field(&none, "CapEff"), "0000000000000000");
    let privileged = caps_of(&forge, &["--privileged"]);
    let all = u64::from_str_radix(&status_field(&privileged, "CapEff"), 16).unwrap();
    assert!(all.count_ones() > 35, "{privileged}");
    assert_eq!(status_field(&privileged, "NoNewPrivs"), "0");
    let bad = forge.run(&["run", "--rm", "--cap-add", "FLY", "host", "true"]);
    assert_eq!(bad.code, 125, "{bad}");
    assert_eq!(bad.stderr_lines().len(), 1, "{bad}");
    assert!(bad.stderr.contains("FLY"), "{bad}");
    forge.assert_no_containers();
}

#[test]
fn the_hosts_kernel_state_is_masked_unless_privileged() {
    let forge = Forge::new();
    let host_interrupts = std::fs::read_to_string("/proc/interrupts").unwrap();
    assert!(!host_interrupts.is_empty());
    let script = "wc -c < /proc/interrupts; (ls -A /sys/firmware 2>/dev/null || true) | wc -l; \
        awk '$5 == \"/proc/bus\" {print substr($6, 1, 2)}' /proc/self/mountinfo";
    let out = forge.ok(&["run", "--rm", "--net", "none", "host", "sh", "-c", script]);
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        ["0", "0", "ro"],
        "interrupts size, firmware entries, /proc/bus: {out}"
    );
    let unmasked = "wc -c < /proc/interrupts";
    let privileged = forge.ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "--privileged",
        "host",
        "sh",
        "-c",
        unmasked,
    ]);
    assert_ne!(privileged.stdout.trim(), "0", "{privileged}");
}

#[test]
fn device_nodes_beyond_the_standard_ones_cannot_be_opened() {
    let forge = Forge::new();
    // mknod itself is allowed (as in Docker); opening a disk or /dev/mem through it is not.
    let script = "mknod /tmp/disk b 8 0 && echo made; \
        (head -c1 /tmp/disk >/dev/null) 2>&1 | grep -c 'not permitted'; \
        mknod /dev/mem2 c 1 1; (head -c1 /dev/mem2 >/dev/null) 2>&1 | grep -c 'not permitted'; \
        echo x > /dev/null && head -c1 /dev/urandom | wc -c";
    let out = forge.ok(&["run", "--rm", "--net", "none", "host", "sh", "-c", script]);
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    assert_eq!(lines, ["made", "1", "1", "1"], "{out}");
}

#[test]
fn read_only_root_with_writable_tmpfs() {
    let forge = Forge::new();
    let script =
        "touch /x 2>/dev/null || echo root-read-only; touch /tmp/y && echo tmpfs-writable; \
        awk '$5 == \"/run\" {print $9, $NF}' /proc/self/mountinfo";
    let out = forge.ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/run:size=1m",
        "host",
        "sh",
        "-c",
        script,
    ]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..2], ["root-read-only", "tmpfs-writable"], "{out}");
    assert!(
        lines[2].starts_with("tmpfs ") && lines[2].contains("size=1024k"),
        "{out}"
    );
    // Without --read-only the root is writable, and a bad --tmpfs is refused.
    forge.ok(&["run", "--rm", "--net", "none", "host", "touch", "/x"]);
    let bad = forge.run(&["run", "--rm", "--tmpfs", "relative", "host", "true"]);
    assert_eq!(bad.code, 125, "{bad}");
    assert!(bad.stderr.contains("relative"), "{bad}");
    forge.assert_no_containers();
}

#[test]
fn seccomp_refuses_new_namespaces_and_kernel_interfaces() {
    let forge = Forge::new();
    // A user namespace needs no capability: only the seccomp filter stops it, as in Docker.
    let script = "grep '^Seccomp:' /proc/self/status; \
        unshare -U -r true 2>/dev/null && echo userns-created || echo userns-refused";
    let out = forge.ok(&["run", "--rm", "--net", "none", "host", "sh", "-c", script]);
    assert_eq!(out.stdout, "Seccomp:\t2\nuserns-refused\n", "{out}");
    let exec = forge.run(&[
        "run", "-d", "--name", "box", "--net", "none", "host", "sleep", "60",
    ]);
    assert_eq!(exec.code, 0, "{exec}");
    let joined = forge.ok(&["exec", "box", "sh", "-c", script]);
    assert_eq!(joined.stdout, out.stdout, "exec is filtered too");
    let unconfined = forge.ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "--security-opt",
        "seccomp=unconfined",
        "host",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(
        unconfined.stdout, "Seccomp:\t0\nuserns-created\n",
        "{unconfined}"
    );
    let bad = forge.run(&[
        "run",
        "--rm",
        "--security-opt",
        "apparmor=x",
        "host",
        "true",
    ]);
    assert_eq!(bad.code, 125, "{bad}");
    assert!(bad.stderr.contains("apparmor=x"), "{bad}");
}

fn fixture(name: &str) -> String {
    format!("{}/fixtures/seccomp/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `script` under the seccomp profile `profile` with extra `run` flags.
fn run_with_profile(forge: &Forge, profile: &str, extra: &[&str], script: &str) -> String {
    let opt = format!("seccomp={profile}");
    let mut args = vec!["run", "--rm", "--net", "none", "--security-opt", &opt];
    args.extend_from_slice(extra);
    args.extend(["host", "sh", "-c", script]);
    forge.ok(&args).stdout
}

#[test]
fn a_docker_format_default_profile_replaces_the_built_in_filter() {
    let forge = Forge::new();
    let profile = fixture("docker-style-default.json");
    let script = "grep '^Seccomp' /proc/self/status; \
        unshare -U -r true 2>/dev/null && echo userns-created || echo userns-refused; \
        ls /etc >/dev/null && echo 'date' > /tmp/f && cat /tmp/f && linux64 true && echo ordinary-ok";
    let out = run_with_profile(&forge, &profile, &[], script);
    // One filter (the profile) instead of the built-in default's two.
    assert_eq!(
        out,
        "Seccomp:\t2\nSeccomp_filters:\t1\nuserns-refused\ndate\nordinary-ok\n"
    );
    // With SYS_ADMIN the profile allows new namespaces but still refuses swap, which the
    // built-in default allows with SYS_ADMIN: the kernel itself answers EINVAL for a file
    // that is not swap space, the profile answers EPERM before the kernel looks.
    let swap = "unshare -U -r true && echo userns-created; swapon /etc/hostname 2>&1; true";
    let admin = ["--cap-add", "SYS_ADMIN"];
    let out = run_with_profile(&forge, &profile, &admin, swap);
    assert_eq!(
        out,
        "userns-created\nswapon: /etc/hostname: Operation not permitted\n"
    );
    let mut args = vec!["run", "--rm", "--net", "none", "--cap-add", "SYS_ADMIN"];
    args.extend(["host", "sh", "-c", swap]);
    let builtin = forge.ok(&args).stdout;
    assert_eq!(
        builtin,
        "userns-created\nswapon: /etc/hostname: Invalid argument\n"
    );
    forge.assert_no_containers();
}

#[test]
fn a_custom_profile_returns_its_own_errno_in_run_and_exec() {
    let forge = Forge::new();
    let profile = fixture("mkdir-eacces.json");
    let script = "mkdir /made 2>&1; linux32 true 2>&1; linux64 true && echo linux64-ok; \
        touch /file && echo touch-ok";
    let expected = "mkdir: can't create directory '/made': Permission denied\n\
        linux32: personality(0x8): Operation not supported\n\
        linux64-ok\ntouch-ok\n";
    assert_eq!(run_with_profile(&forge, &profile, &[], script), expected);
    let opt = format!("seccomp={profile}");
    forge.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "--net",
        "none",
        "--security-opt",
        &opt,
        "host",
        "sleep",
        "60",
    ]);
    let joined = forge.ok(&["exec", "box", "sh", "-c", script]);
    assert_eq!(joined.stdout, expected, "exec gets the container's profile");
    forge.ok(&["rm", "-f", "box"]);
}

#[test]
fn bad_seccomp_profiles_are_refused_before_anything_is_created() {
    let forge = Forge::new();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let not_json = write("broken.json", "{\n  \"defaultAction\": SCMP_ACT_ALLOW\n}\n");
    let unknown_call = write(
        "typo.json",
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdri"], "action": "SCMP_ACT_ERRNO"}]}"#,
    );
    let unknown_action = write("action.json", r#"{"defaultAction": "SCMP_ACT_PERHAPS"}"#);
    let notify = write("notify.json", r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#);
    let missing = dir.path().join("missing.json").display().to_string();
    let cases = [
        (&not_json, "invalid JSON at line 2 column 20"),
        (&unknown_call, "unknown system call \"mkdri\""),
        (&unknown_action, "unknown action \"SCMP_ACT_PERHAPS\""),
        (&notify, "SCMP_ACT_NOTIFY"),
        (&missing, "No such file or directory"),
    ];
    for (path, what) in cases {
        let opt = format!("seccomp={path}");
        let out = forge.run(&["run", "--rm", "--security-opt", &opt, "host", "true"]);
        assert_eq!(out.code, 125, "{out}");
        let lines = out.stderr_lines();
        assert_eq!(lines.len(), 1, "{out}");
        assert!(
            lines[0].contains(path.as_str()) && lines[0].contains(what),
            "{out}"
        );
    }
    assert_eq!(forge.ok(&["ps", "-a", "-q"]).stdout, "");
    forge.assert_no_containers();
}

#[test]
fn no_new_privileges_false_keeps_the_seccomp_filter_for_root_and_other_users() {
    let forge = Forge::new();
    let profile = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/seccomp/mkdir-eacces.json"
    );
    for extra in [
        &["--security-opt", "no-new-privileges=false"][..],
        &["--security-opt", "no-new-privileges=false", "-u", "65534"],
        &[
            "--security-opt",
            "no-new-privileges=false",
            "--security-opt",
            &format!("seccomp={profile}"),
            "-u",
            "65534",
        ],
    ] {
        let status = caps_of(&forge, extra);
        assert_eq!(
            status_field(&status, "NoNewPrivs"),
            "0",
            "{extra:?}: {status}"
        );
        assert_ne!(status_field(&status, "Seccomp"), "0", "{extra:?}: {status}");
    }
    // And by default no_new_privs is on, with the filter.
    let status = caps_of(&forge, &[]);
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    assert_eq!(status_field(&status, "Seccomp"), "2");
}
