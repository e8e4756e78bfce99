//! What a container can reach of Forge itself: the binary its init and join processes run from
//! (the `/proc/self/exe` attack, CVE-2019-5736), the file descriptors and the working directory
//! of whoever started Forge (the leaked-fd escape).
//!
//! The binary tests run Forge's set-up from a copy of the forge binary (`FORGE_INIT_EXE`), so an
//! attack that worked would damage only that copy; its hash before and after tells.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use common::{output, Forge, Out, COMMAND_TIMEOUT};

/// A copy of the forge binary for set-up to run from, and its hash.
struct Victim {
    _dir: tempfile::TempDir,
    path: PathBuf,
    hash: String,
}

impl Victim {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir for the forge copy");
        let path = dir.path().join("forge-victim");
        std::fs::copy(common::forge_bin(), &path).expect("copying the forge binary");
        let hash = common::oci::sha256_hex(&std::fs::read(&path).unwrap());
        Self {
            _dir: dir,
            path,
            hash,
        }
    }

    /// Whether `line` names the binary as Forge runs it: the sealed memfd copy, or the file at
    /// the root of the detached read-only overlay (`/forge-victim`), never its host path.
    fn sealed(&self, line: &str) -> bool {
        let name = self.path.file_name().unwrap().to_string_lossy();
        let overlay = format!("/{name}");
        !line.contains(&*self.path.to_string_lossy())
            && (line.contains("/memfd:forge") || line.ends_with(&overlay))
    }

    fn assert_unchanged(&self) {
        let now = common::oci::sha256_hex(&std::fs::read(&self.path).unwrap());
        assert_eq!(now, self.hash, "the forge binary on the host was modified");
    }

    /// `forge ARGS...` whose init and join processes are re-executions of this copy.
    fn run(&self, forge: &Forge, args: &[&str]) -> Out {
        let mut cmd = forge.command(args);
        cmd.env("FORGE_INIT_EXE", &self.path);
        let out = output(&mut cmd, COMMAND_TIMEOUT);
        forge.note_ids(forge.container_ids());
        out
    }
}

/// Tries to write to PID 1's executable the ways the attack does: appending and truncating.
const WRITE_PID1_EXE: &str = r#"
    echo "exe=$(readlink /proc/1/exe || echo unreadable)"
    (echo PWNED >> /proc/1/exe) 2>&1 && echo append-worked
    (: > /proc/1/exe) 2>&1 && echo truncate-worked
    echo done
"#;

#[test]
fn an_init_pid1_runs_from_a_sealed_copy_that_the_container_cannot_write() {
    let forge = Forge::new();
    let victim = Victim::new();
    // With SYS_PTRACE the container may open /proc/1/exe: only the seals stand in the way.
    let out = victim.run(
        &forge,
        &[
            "run",
            "--rm",
            "--net",
            "none",
            "--init",
            "--cap-add",
            "SYS_PTRACE",
            "host",
            "sh",
            "-c",
            WRITE_PID1_EXE,
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        victim.sealed(out.stdout.lines().next().unwrap_or_default()),
        "PID 1 does not run from a sealed view of the binary: {out}"
    );
    assert!(!out.stdout.contains("worked"), "{out}");
    assert!(out.stdout.contains("done"), "{out}");
    victim.assert_unchanged();

    // Without it (the default), PID 1 is not even dumpable: /proc/1/exe does not open.
    let out = victim.run(
        &forge,
        &[
            "run",
            "--rm",
            "--net",
            "none",
            "--init",
            "host",
            "sh",
            "-c",
            WRITE_PID1_EXE,
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("exe=unreadable"), "{out}");
    assert!(!out.stdout.contains("worked"), "{out}");
    victim.assert_unchanged();
    assert_eq!(forge.leftovers(), Vec::<String>::new());
}

/// PID 1 of the attacked container: watches for new processes, stops each one, holds its
/// executable open, and once it has exited writes through the held fd (the CVE-2019-5736 flow:
/// the file is no longer busy then). Reports each catch as `caught PID TARGET`.
const CATCH_EXEC: &str = r#"
    seen=" 1 $$ "
    n=0
    while :; do
        for d in /proc/[0-9]*; do
            p=${d#/proc/}
            case "$seen" in *" $p "*) continue;; esac
            seen="$seen$p "
            kill -STOP "$p" 2>/dev/null || continue
            n=$((n + 1))
            # A failed redirection of `exec` would end this shell: try it in a subshell first.
            if (: <"/proc/$p/exe") 2>/dev/null; then exec 3<"/proc/$p/exe"; else exec 3</dev/null; fi
            kill -CONT "$p"
            target=$(readlink /proc/$$/fd/3 2>/dev/null) || continue
            case "$target" in
                *forge*)
                    echo "caught $p $target" >> /tmp/caught
                    (
                        exec 4<&3
                        i=0
                        while [ $i -lt 100 ]; do
                            if (echo PWNED >> /proc/self/fd/4) 2>/dev/null; then
                                echo "wrote $p" >> /tmp/caught; exit
                            fi
                            i=$((i + 1)); sleep 0.05
                        done
                    ) &
                    ;;
            esac
            exec 3<&-
        done
    done
"#;

#[test]
fn processes_forge_exec_starts_cannot_be_used_to_overwrite_the_forge_binary() {
    let forge = Forge::new();
    let victim = Victim::new();
    let out = victim.run(
        &forge,
        &[
            "run",
            "-d",
            "--name",
            "attacker",
            "--net",
            "none",
            "--cap-add",
            "SYS_PTRACE",
            "host",
            "sh",
            "-c",
            // The catcher runs below a PID 1 that starts it again should it end: a process that
            // exits between its checks and its `exec 3<` ends the shell, and with PID 1 the
            // container (the exec under test then fails with ENOMEM or SIGKILL).
            "while :; do sh -c \"$1\"; done",
            "sh",
            CATCH_EXEC,
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    for _ in 0..40 {
        let out = victim.run(&forge, &["exec", "attacker", "true"]);
        assert_eq!(out.code, 0, "{out}");
    }
    // Give the writers time to try after the last exec.
    std::thread::sleep(std::time::Duration::from_secs(6));
    let caught = victim.run(&forge, &["exec", "attacker", "cat", "/tmp/caught"]);
    eprintln!("what the attacker caught:\n{}", caught.stdout);
    for line in caught.stdout.lines() {
        assert!(!line.starts_with("wrote"), "the attacker wrote: {caught}");
        assert!(
            victim.sealed(line),
            "a join process ran from the host binary: {line}"
        );
    }
    victim.assert_unchanged();
    forge.ok(&["rm", "-f", "attacker"]);
    assert_eq!(forge.leftovers(), Vec::<String>::new());
}

/// `forge ARGS...` started from a host process that holds a host directory open as fd 7 (not
/// close-on-exec) and has `cwd` as its working directory.
fn run_with_host_fd(forge: &Forge, held: &Path, cwd: &Path, args: &[&str]) -> Out {
    let dir = std::fs::File::open(held).expect("opening the host directory");
    let raw = dir.as_raw_fd();
    let mut cmd = forge.command(args);
    cmd.current_dir(cwd);
    // SAFETY: dup2 is async-signal-safe; the closure allocates nothing, and `dir` stays open in
    // the parent until `output` has spawned the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 7) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = output(&mut cmd, COMMAND_TIMEOUT);
    drop(dir);
    forge.note_ids(forge.container_ids());
    out
}

/// Prints the fds of a process the command starts (`ls`, which adds its own directory fd), and
/// the command's and PID 1's working directories. ls's complaint about its own closed directory
/// fd is dropped: on a pty it would land among the listing.
const SHOW_FDS_AND_CWD: &str = r#"
    ls -l /proc/self/fd 2>/dev/null
    echo "cwd $(readlink /proc/self/cwd)"
    echo "pid1cwd $(readlink /proc/1/cwd)"
"#;

fn assert_only_stdio_and_container_cwd(out: &Out, cwd: &str) {
    assert_eq!(out.code, 0, "{out}");
    // "lrwx------ 1 root root 64 DATE N -> TARGET": the fd number and its target. ls's own
    // directory fd (3) is left out: its target is /proc/PID/fd or, once closed, gone.
    let fds: Vec<(&str, &str)> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with('l'))
        .map(|l| {
            let (left, target) = l.split_once(" -> ").unwrap_or((l, ""));
            (left.rsplit(' ').next().unwrap(), target)
        })
        .filter(|(fd, target)| !(*fd == "3" && (target.is_empty() || target.starts_with("/proc/"))))
        .collect();
    let numbers: Vec<&str> = fds.iter().map(|(fd, _)| *fd).collect();
    assert_eq!(
        numbers,
        ["0", "1", "2"],
        "fds of the container's command: {out}"
    );
    assert!(
        out.stdout.lines().any(|l| l == format!("cwd {cwd}")),
        "cwd: {out}"
    );
    assert!(
        out.stdout.lines().any(|l| l == format!("pid1cwd {cwd}")),
        "PID 1's cwd: {out}"
    );
}

#[test]
fn no_fd_or_working_directory_of_the_caller_reaches_a_container() {
    let forge = Forge::new();
    let host = tempfile::tempdir().unwrap();
    let out = run_with_host_fd(
        &forge,
        host.path(),
        host.path(),
        &[
            "run",
            "--rm",
            "--net",
            "none",
            "host",
            "sh",
            "-c",
            SHOW_FDS_AND_CWD,
        ],
    );
    assert_only_stdio_and_container_cwd(&out, "/");

    forge.ok(&[
        "run", "-d", "--name", "box", "--net", "none", "-w", "/tmp", "host", "sleep", "60",
    ]);
    let out = run_with_host_fd(
        &forge,
        host.path(),
        host.path(),
        &["exec", "box", "sh", "-c", SHOW_FDS_AND_CWD],
    );
    assert_only_stdio_and_container_cwd(&out, "/tmp");
    // With a pty, neither the set-up socket nor the pty's master reaches the command either.
    let out = run_with_host_fd(
        &forge,
        host.path(),
        host.path(),
        &["exec", "-t", "box", "sh", "-c", SHOW_FDS_AND_CWD],
    );
    assert_only_stdio_and_container_cwd(&out, "/tmp");
    forge.ok(&["rm", "-f", "box"]);
    assert_eq!(forge.leftovers(), Vec::<String>::new());
}
