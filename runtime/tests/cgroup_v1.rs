//! The cgroup v1 driver against the real v1 hierarchies. Needs root and a host with v1
//! hierarchies (legacy or hybrid); fails, saying which, where it has neither.

use std::path::Path;

use forge_runtime::cgroup::testing::V1;
use forge_runtime::cgroup::{detect, Cgroup, CgroupPaths, Manager, Mode, CGROUP_ROOT};
use forge_runtime::Limits;

/// The freeze–kill–thaw path that pure v1 hosts use (hybrid hosts use `cgroup.kill`), on the
/// real v1 hierarchies: every process of the cgroup dies, the cgroups are removed.
#[test]
fn freezer_kill_path_kills_every_process_and_removes_the_cgroups() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: it creates cgroups"
    );
    let root = Path::new(CGROUP_ROOT);
    assert_ne!(
        detect(root).unwrap(),
        Mode::Unified,
        "this test needs cgroup v1 hierarchies (a legacy or hybrid host); this host has only v2"
    );
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let id = format!("freezer-test-{}", std::process::id());
    let mut paths =
        CgroupPaths::resolve(root, Mode::Legacy, Manager::Cgroupfs, &own, None, &id).unwrap();
    paths.unified = None; // force the v1 path even on a hybrid host
    let cgroup = V1 { paths: &paths };
    cgroup.create(&Limits::default(), true).unwrap();
    let mut children: Vec<std::process::Child> = (0..3)
        .map(|_| {
            std::process::Command::new("sleep")
                .arg("100")
                .spawn()
                .unwrap()
        })
        .collect();
    for child in &children {
        cgroup.add(child.id() as i32).unwrap();
    }
    cgroup.kill_all().unwrap();
    for child in &mut children {
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
    }
    cgroup.remove().unwrap();
    for (_, dir) in &paths.dirs {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}
