//! Finding and executing the user's command inside the container, with the exit codes a shell
//! uses when that fails: 127 for "not found", 126 for "found but cannot be executed".

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::channel::{EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND};

#[derive(Debug, PartialEq, Eq)]
pub struct ExecFailure {
    pub code: i32,
    pub message: String,
}

/// The file `execvp` would run for `program`, searched in `path` below `root` ("/" once pivoted).
pub fn resolve(root: &Path, program: &str, path: &str) -> Result<PathBuf, ExecFailure> {
    if program.is_empty() {
        return Err(ExecFailure {
            code: EXIT_NOT_FOUND,
            message: "no command given and the image has none".into(),
        });
    }
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let inside = |dir: &str| root.join(dir.trim_start_matches('/')).join(program);
    let mut found_not_executable = None;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = inside(dir);
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
            return Ok(Path::new(dir).join(program));
        }
        found_not_executable.get_or_insert(Path::new(dir).join(program));
    }
    match found_not_executable {
        Some(p) => Ok(p), // execve reports why it cannot run it
        None => Err(ExecFailure {
            code: EXIT_NOT_FOUND,
            message: format!("executable file not found in $PATH: {program}"),
        }),
    }
}

/// Replaces this process with `file`; returns only on failure.
pub fn exec(file: &Path, args: &[String], env: &[String]) -> ExecFailure {
    let to_c =
        |s: &str| CString::new(s).map_err(|_| format!("argument contains a NUL byte: {s:?}"));
    let prepared = (|| -> Result<_, String> {
        let file = CString::new(file.as_os_str().as_bytes())
            .map_err(|_| "path contains a NUL byte".to_string())?;
        let args = args
            .iter()
            .map(|a| to_c(a))
            .collect::<Result<Vec<_>, _>>()?;
        let env = env.iter().map(|e| to_c(e)).collect::<Result<Vec<_>, _>>()?;
        Ok((file, args, env))
    })();
    let (cfile, cargs, cenv) = match prepared {
        Ok(p) => p,
        Err(message) => {
            return ExecFailure {
                code: EXIT_CANNOT_EXECUTE,
                message,
            }
        }
    };
    reset_signals();
    let errno = nix::unistd::execve(&cfile, &cargs, &cenv).unwrap_err();
    let shown = file.display();
    match errno {
        Errno::ENOENT => ExecFailure {
            code: EXIT_NOT_FOUND,
            message: format!("{shown}: no such file or directory"),
        },
        Errno::EACCES => ExecFailure {
            code: EXIT_CANNOT_EXECUTE,
            message: format!("{shown}: permission denied"),
        },
        Errno::ENOEXEC => ExecFailure {
            code: EXIT_CANNOT_EXECUTE,
            message: format!("{shown}: exec format error"),
        },
        e => ExecFailure {
            code: EXIT_CANNOT_EXECUTE,
            message: format!("{shown}: {}", e.desc()),
        },
    }
}

/// Gives the command every signal's default disposition and an empty mask, whatever Forge
/// inherited: ignored signals survive `execve`, and a `forge run` started from a background job
/// (`nohup ... &`) has SIGINT and SIGQUIT ignored, which a shell in the container would pass on
/// to its children, so Ctrl-C would not stop them. Docker's containers start the same way from
/// a daemon.
fn reset_signals() {
    /// The kernel's `struct sigaction` (glibc's `signal` refuses 32 and 33, which it keeps for
    /// itself, and those can be ignored too).
    #[repr(C)]
    struct KernelSigaction {
        handler: libc::sighandler_t,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for signal in 1..=libc::SIGRTMAX() {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            // SAFETY: installs no handler, reads only `default`, which outlives the call.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    signal,
                    &default,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8,
                )
            };
        }
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn search_follows_path_and_reports_missing_programs() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("bin")).unwrap();
        fs::create_dir_all(root.path().join("usr/bin")).unwrap();
        let tool = root.path().join("usr/bin/tool");
        fs::write(&tool, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(root.path().join("bin/tool"), "not executable").unwrap();

        assert_eq!(
            resolve(root.path(), "tool", "/bin:/usr/bin").unwrap(),
            Path::new("/usr/bin/tool")
        );
        assert_eq!(
            resolve(root.path(), "/x/y", "/bin").unwrap(),
            Path::new("/x/y")
        );
        let missing = resolve(root.path(), "nope", "/bin:/usr/bin").unwrap_err();
        assert_eq!(missing.code, EXIT_NOT_FOUND);
        assert!(missing.message.contains("nope"));
    }
}
