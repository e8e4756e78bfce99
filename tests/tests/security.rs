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
