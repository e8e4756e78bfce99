//! The runtime's library API used the way the supervisor will use it: from many threads of one
//! process at once. Every container must start, report its own exit code, and leave neither a
//! zombie nor a file behind; a start that fails leaves nothing of itself.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use forge_runtime::network::{AttachRequest, Attachment, Network, NetworkError, NoNetwork};
use forge_runtime::LaunchIo;
use forge_runtime::{CreateOptions, NetSpec, Roots, Runtime};

fn is_zombie(pid: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}

/// Children of this process that are zombies (exited, never reaped).
fn zombie_children() -> Vec<String> {
    let mut zombies = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        zombies.extend(
            children
                .split_whitespace()
                .filter(|pid| is_zombie(pid))
                .map(str::to_string),
        );
    }
    zombies
}

/// A runtime over a fresh root that holds the host image, plugging containers in through
/// `network`.
fn runtime_with(network: Arc<dyn Network>) -> (tempfile::TempDir, Runtime) {
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
    let runtime = Runtime::new(Roots::new(Some(root.path().to_path_buf()), None), network);
    (root, runtime)
}

fn no_io() -> LaunchIo {
    LaunchIo {
        stdin: Stdio::null(),
        stdout: Stdio::null(),
        stderr: Stdio::null(),
    }
}

#[test]
fn containers_started_from_many_threads_at_once_exit_with_their_own_codes_and_leave_no_zombies() {
    // Containers on no network: the runtime alone, without netd.
    let (root, runtime) = runtime_with(Arc::new(NoNetwork));

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
                // Threads end while others still run: the container must not die with its thread.
                let started = runtime
                    .start(&mut container, no_io(), false)
                    .expect("start");
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

/// How [`SabotagedNetwork`] makes a start fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sabotage {
    /// The attach is refused.
    RefuseAttach,
    /// The attach kills PID 1, so that the start fails at `Go`; the detach that undoes the
    /// attach fails too.
    KillPid1,
}

/// A network seam that makes starts fail on purpose, and notes the PID 1 it was to attach.
#[derive(Debug)]
struct SabotagedNetwork {
    sabotage: Sabotage,
    pid1: Mutex<Option<i32>>,
}

impl Network for SabotagedNetwork {
    fn check(&self, _networks: &[String]) -> Result<(), NetworkError> {
        Ok(())
    }

    fn attach(&self, request: &AttachRequest<'_>) -> Result<Option<Attachment>, NetworkError> {
        *self.pid1.lock().unwrap() = Some(request.pid);
        if self.sabotage == Sabotage::RefuseAttach {
            return Err("refused by the test".into());
        }
        let pid = nix::unistd::Pid::from_raw(request.pid);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL)?;
        // Dead, its end of the set-up socket closed; reaping it is the start's job.
        common::eventually(Duration::from_secs(5), "PID 1 to die", || {
            is_zombie(&request.pid.to_string()).then_some(())
        });
        Ok(Some(Attachment {
            ip: Ipv4Addr::new(10, 0, 0, 2),
            ports: Vec::new(),
        }))
    }

    fn detach(&self, _container_id: &str) -> Result<(), NetworkError> {
        match self.sabotage {
            Sabotage::RefuseAttach => Ok(()),
            Sabotage::KillPid1 => Err("detach refused by the test".into()),
        }
    }

    fn resolv_conf(&self, host: &str) -> String {
        host.to_string()
    }
}

/// Starts a container on a network that `sabotage`s the start, checks that the failed start
/// left neither its PID 1 nor a cgroup, and returns its error.
fn failed_start(sabotage: Sabotage) -> String {
    let network = Arc::new(SabotagedNetwork {
        sabotage,
        pid1: Mutex::default(),
    });
    let (_root, runtime) = runtime_with(network.clone());
    let opts = CreateOptions {
        name: Some("doomed".into()),
        image: "host".into(),
        args: vec!["true".into()],
        net: NetSpec {
            networks: vec!["test".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let mut container = runtime.create(&opts).expect("create");
    let Err(err) = runtime.start(&mut container, no_io(), false) else {
        panic!("a sabotaged start succeeded");
    };
    let pid1 = network
        .pid1
        .lock()
        .unwrap()
        .expect("no attach was asked for");
    assert!(
        !Path::new(&format!("/proc/{pid1}")).exists(),
        "PID 1 ({pid1}) outlived its failed start: {err}"
    );
    let paths = &container.config.cgroup;
    let cgroups: Vec<_> = paths
        .dirs
        .iter()
        .map(|(_, dir)| dir)
        .chain(&paths.unified)
        .filter(|dir| dir.exists())
        .collect();
    assert!(
        cgroups.is_empty(),
        "cgroups left by a failed start: {cgroups:?}"
    );
    runtime.discard(&container);
    assert!(runtime.list().unwrap().is_empty());
    err.to_string()
}

#[test]
fn a_start_refused_by_its_network_leaves_no_process_and_no_cgroup() {
    assert_eq!(
        failed_start(Sabotage::RefuseAttach),
        "container doomed: network: refused by the test"
    );
}

#[test]
fn a_failed_start_whose_undo_fails_too_reports_both() {
    let err = failed_start(Sabotage::KillPid1);
    assert!(err.starts_with("container doomed: "), "{err}");
    assert!(
        err.ends_with(
            " (and cleaning up failed: detaching doomed from its network: detach refused by the test)"
        ),
        "{err}"
    );
}
