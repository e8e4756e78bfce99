//! Input Forge must refuse: each is exit 125, one clear line on stderr that names the culprit,
//! and nothing left behind under the data root.

mod common;

use common::{Forge, Out};

/// Runs `forge run ARGS...` and checks the refusal; returns it for further checks.
fn refused(forge: &Forge, args: &[&str], culprit: &str) -> Out {
    let mut full = vec!["run"];
    full.extend_from_slice(args);
    let out = forge.run(&full);
    assert_eq!(out.code, 125, "forge {full:?}: {out}");
    assert!(
        out.forge_error_line().contains(culprit),
        "the error does not mention {culprit:?}: {out}"
    );
    assert_eq!(out.stdout, "", "{out}");
    forge.assert_no_containers();
    out
}

#[test]
fn unknown_image_is_refused() {
    let forge = Forge::new();
    refused(&forge, &["no-such-image", "true"], "no-such-image");
}

#[test]
fn env_without_equals_is_refused() {
    let forge = Forge::new();
    refused(&forge, &["-e", "NOEQUALS", "host", "true"], "NOEQUALS");
}

#[test]
fn env_with_empty_key_is_refused() {
    let forge = Forge::new();
    refused(&forge, &["-e", "=value", "host", "true"], "=value");
}

#[test]
fn missing_workdir_is_refused() {
    let forge = Forge::new();
    refused(
        &forge,
        &["-w", "/does/not/exist", "host", "true"],
        "/does/not/exist",
    );
}

#[test]
fn relative_workdir_is_refused() {
    let forge = Forge::new();
    refused(&forge, &["-w", "tmp", "host", "true"], "tmp");
}

#[test]
fn path_like_name_is_refused() {
    let forge = Forge::new();
    refused(&forge, &["--name", "../x", "host", "true"], "../x");
    assert!(
        !forge.root().join("x").exists(),
        "the name escaped the names directory"
    );
}

#[test]
fn invalid_hostname_is_refused() {
    let forge = Forge::new();
    refused(
        &forge,
        &["--hostname", "bad_host!", "host", "true"],
        "bad_host!",
    );
}

#[test]
fn unknown_network_is_refused() {
    let forge = Forge::new();
    refused(&forge, &["--net", "nosuch", "host", "true"], "nosuch");
}

#[test]
fn not_root_is_refused() {
    use std::os::unix::process::CommandExt;
    let forge = Forge::new();
    let mut cmd = forge.command_unprivileged(&["run", "host", "true"]);
    cmd.uid(65534).gid(65534);
    let out = common::output(&mut cmd, common::COMMAND_TIMEOUT);
    assert_eq!(out.code, 125, "{out}");
    assert_eq!(
        out.stderr_lines().len(),
        1,
        "not exactly one error line: {out}"
    );
    assert!(
        out.stderr.contains("root"),
        "the error does not say root is needed: {out}"
    );
    forge.assert_no_containers();
}

#[test]
fn an_unknown_cgroup_manager_is_refused() {
    let forge = Forge::new();
    refused(
        &forge,
        &["--cgroup-manager", "upstart", "host", "true"],
        "--cgroup-manager \"upstart\"",
    );
}

/// The systemd manager where the host cannot have it is refused with the reason; where it can
/// (a v2 host booted with systemd), the container runs in its scope.
#[test]
fn the_systemd_cgroup_manager_is_refused_where_the_host_has_no_systemd_or_no_v2() {
    let forge = Forge::new();
    let args = ["--cgroup-manager", "systemd", "--rm", "host", "true"];
    if !common::cgroup::systemd_booted() {
        refused(&forge, &args, "systemd is not running as init");
    } else if !common::cgroup::Mode::host().is_v2() {
        refused(&forge, &args, "needs the unified cgroup v2 hierarchy");
    } else {
        let mut full = vec!["run"];
        full.extend_from_slice(&args);
        forge.ok(&full);
    }
}

/// As `docker run`: clearing the entrypoint without giving a command leaves nothing to run,
/// which is refused before anything is created (it was a panic in PID 1, exit 139).
#[test]
fn an_empty_entrypoint_without_a_command_is_refused() {
    let forge = Forge::new();
    refused(
        &forge,
        &["--rm", "--entrypoint", "", "host"],
        "no command specified",
    );
}

#[test]
fn a_bad_or_missing_env_file_is_refused_naming_the_file_and_line() {
    let forge = Forge::new();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.env");
    std::fs::write(&bad, "GOOD=1\nNOT A LINE\n").unwrap();
    let bad = bad.to_str().unwrap();
    let out = refused(
        &forge,
        &["--env-file", bad, "host", "true"],
        &format!("{bad}:2: invalid variable name \"NOT A LINE\""),
    );
    assert_eq!(out.stderr.lines().count(), 1, "{out}");
    let missing = dir.path().join("missing.env");
    let missing = missing.to_str().unwrap();
    refused(
        &forge,
        &["--env-file", missing, "host", "true"],
        &format!("{missing}: cannot read the env file: No such file or directory"),
    );
}
