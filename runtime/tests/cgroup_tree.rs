//! Forge's own cgroup directories (marked with a trusted.* xattr, which needs CAP_SYS_ADMIN)
//! and the v2 driver over fake cgroup2 directories in a temporary directory. Needs root; fails
//! without it.

use std::fs;
use std::path::Path;

use forge_runtime::cgroup::testing::{
    create_owned, enable_controllers, is_owned, remove_owned, V2,
};
use forge_runtime::cgroup::{Cgroup, CgroupError};

#[test]
fn only_the_directories_forge_made_are_removed() {
    needs_root();
    let tmp = tempfile::tempdir().unwrap();
    let theirs = tmp.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    let leaf = theirs.join("ci/forge/c1");
    create_owned(&leaf).unwrap();
    assert!(!is_owned(&theirs));
    assert!(is_owned(&theirs.join("ci")) && is_owned(&leaf));
    let sibling = theirs.join("ci/forge/c2");
    create_owned(&sibling).unwrap();
    remove_owned(&leaf).unwrap();
    assert!(
        !leaf.exists() && sibling.exists(),
        "the shared parent stays while used"
    );
    remove_owned(&sibling).unwrap();
    assert!(
        !theirs.join("ci").exists(),
        "the last one out removes what Forge made"
    );
    assert!(theirs.exists(), "a directory Forge did not make stays");
}

/// A fake cgroup2 directory with `controllers` available and `enabled` for its children.
fn fake_cgroup(dir: &Path, controllers: &str, enabled: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("cgroup.controllers"), controllers).unwrap();
    fs::write(dir.join("cgroup.subtree_control"), enabled).unwrap();
}

fn subtree_control(dir: &Path) -> String {
    fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap()
}

#[test]
fn every_controller_the_root_passes_down_is_enabled_in_forges_own_directories() {
    needs_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fake_cgroup(root, "cpuset cpu io memory pids", "cpu io memory pids");
    create_owned(&root.join("forge")).unwrap();
    fake_cgroup(&root.join("forge"), "cpu io memory pids", "");
    enable_controllers(root, &root.join("forge/c1"), &["memory", "pids"]).unwrap();
    assert_eq!(
        subtree_control(root),
        "cpu io memory pids",
        "the root is not Forge's"
    );
    assert_eq!(
        subtree_control(&root.join("forge")),
        "+cpu +memory +pids +io"
    );
    // Nothing is written twice.
    fs::write(root.join("forge/cgroup.subtree_control"), "cpu memory io").unwrap();
    enable_controllers(root, &root.join("forge/c2"), &[]).unwrap();
    assert_eq!(subtree_control(&root.join("forge")), "+pids");
}

#[test]
fn a_cgroup_forge_did_not_make_is_never_written() {
    needs_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // A root as systemd leaves it: memory and pids for its accounting, not cpu or io.
    fake_cgroup(root, "cpu io memory pids", "memory pids");
    fake_cgroup(&root.join("session.scope"), "memory pids", "");
    let forge = root.join("forge");
    create_owned(&forge).unwrap();
    fake_cgroup(&forge, "memory pids", "");
    // What the root passes down is enabled; stats-only controllers it keeps are skipped.
    enable_controllers(root, &forge.join("c1"), &["pids"]).unwrap();
    assert_eq!(subtree_control(&forge), "+memory +pids");
    let err = enable_controllers(root, &forge.join("c2"), &["cpu"]).unwrap_err();
    assert!(
        matches!(&err, CgroupError::NotDelegated { controller: "cpu", cgroup } if cgroup == root),
        "{err}"
    );
    assert_eq!(subtree_control(root), "memory pids");
    // Below a cgroup of someone else's, with processes: never written, refused when needed.
    let leaf = root.join("session.scope/forge/c1");
    create_owned(leaf.parent().unwrap()).unwrap();
    let err = enable_controllers(root, &leaf, &["memory"]).unwrap_err();
    assert!(
        matches!(&err, CgroupError::NotDelegated { controller: "memory", cgroup }
            if cgroup == &root.join("session.scope")),
        "{err}"
    );
    enable_controllers(root, &leaf, &[]).unwrap();
    assert_eq!(subtree_control(&root.join("session.scope")), "");
}

#[test]
fn a_controller_the_host_does_not_have_is_named() {
    needs_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fake_cgroup(root, "memory pids", "memory pids");
    create_owned(&root.join("forge")).unwrap();
    let err = enable_controllers(root, &root.join("forge/c1"), &["cpu"]).unwrap_err();
    assert!(
        matches!(&err, CgroupError::NotAvailable { controller: "cpu", cgroup } if cgroup == root),
        "{err}"
    );
    assert!(
        !root.join("forge/cgroup.subtree_control").exists(),
        "nothing is enabled in Forge's own directory when the start is refused"
    );
}

#[test]
fn kill_stats_oom_and_remove_use_the_v2_files() {
    needs_root();
    let tmp = tempfile::tempdir().unwrap();
    let leaf = tmp.path().join("forge/c3");
    create_owned(&leaf).unwrap();
    fs::write(leaf.join("cgroup.kill"), "").unwrap();
    fs::write(leaf.join("memory.events"), "oom 1\noom_kill 1\n").unwrap();
    fs::write(leaf.join("cpu.stat"), "usage_usec 2500\nuser_usec 2000\n").unwrap();
    fs::write(leaf.join("memory.current"), "4096\n").unwrap();
    fs::write(leaf.join("pids.current"), "3\n").unwrap();
    let cg = V2 {
        root: tmp.path(),
        dir: &leaf,
    };
    cg.kill_all().unwrap();
    assert_eq!(fs::read_to_string(leaf.join("cgroup.kill")).unwrap(), "1");
    assert!(cg.oom_killed());
    let stats = cg.stats();
    assert_eq!(
        (stats.cpu_usage_ns, stats.memory_bytes, stats.pids),
        (2_500_000, 4096, 3)
    );
    for f in [
        "cgroup.kill",
        "memory.events",
        "cpu.stat",
        "memory.current",
        "pids.current",
        "memory.swap.max",
    ] {
        let _ = fs::remove_file(leaf.join(f));
    }
    cg.remove().unwrap();
    assert!(!leaf.exists());
}

fn needs_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: it marks directories with trusted.* xattrs (CAP_SYS_ADMIN)"
    );
}
