//! The runtime's library API used the way the supervisor will use it: from many threads of one
//! process at once. Every container must start, report its own exit code, and leave neither a
//! zombie nor a file behind.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use forge_runtime::network::NoNetwork;
use forge_runtime::LaunchIo;
use forge_runtime::{CreateOptions, Roots, Runtime};

/// Children of this process that are zombies (exited, never reaped).
fn zombie_children() -> Vec<String> {
    let mut zombies = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children.split_whitespace() {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            {
                zombies.push(pid.to_string());
            }
        }
    }
    zombies
}

#[test]
fn containers_started_from_many_threads_at_once_exit_with_their_own_codes_and_leave_no_zombies() {
    common::require_root();
    let root = tempfile::tempdir().unwrap();
    let built = std::process::Command::new(common::forge_bin())
        .arg("--root")
        .arg(root.path())
        .args(["image", "build-host", "host"])
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");
    // The test binary is not forge: point the re-exec at the real binary.
    std::env::set_var("FORGE_INIT_EXE", common::forge_bin());
    // Containers on no network: the runtime alone, without netd.
    let runtime = Runtime::new(
        Roots::new(Some(root.path().to_path_buf()), None),
        Arc::new(NoNetwork),
    );

    let threads: Vec<_> = (0..8)
        .map(|n| {
            let runtime = runtime.clone();
            std::thread::spawn(move || {
                let opts = CreateOptions {
                    image: "host".into(),
                    args: vec!["sh".into(), "-c".into(), format!("sleep 0.2; exit {n}")],
                    auto_remove: true,
                    ..Default::default()
                };
                let mut container = runtime.create(&opts).expect("create");
                let io = LaunchIo {
                    stdin: Stdio::null(),
                    stdout: Stdio::null(),
                    stderr: Stdio::null(),
                };
                // Threads end while others still run: the container must not die with its thread.
                let started = runtime.start(&mut container, io, false).expect("start");
                runtime.wait(&mut container, &started).code
            })
        })
        .collect();
    let codes: Vec<i32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(codes, (0..8).collect::<Vec<_>>());

    common::eventually(Duration::from_secs(5), "no zombie children", || {
        zombie_children().is_empty().then_some(())
    });
    assert!(
        runtime.list().unwrap().is_empty(),
        "--rm containers were not removed"
    );
    let leftover: Vec<_> = std::fs::read_dir(root.path().join("containers"))
        .unwrap()
        .flatten()
        .collect();
    assert!(
        leftover.is_empty(),
        "container directories left: {leftover:?}"
    );
}
