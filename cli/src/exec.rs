//! `forge exec NAME CMD...`: run a command inside a running container, on a pty of the
//! container's with `-t` (relayed as `forge run -t` does).

use std::process::Stdio;

use forge_runtime::EXIT_FORGE_ERROR;
use forge_runtime::{Container, ExitInfo, Runtime};

use crate::report;

#[derive(clap::Args)]
#[command(trailing_var_arg = true)]
pub struct ExecArgs {
    /// Set environment variables (KEY=VALUE)
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Keep stdin open
    #[arg(long, short = 'i')]
    interactive: bool,
    /// Allocate a pseudo-terminal
    #[arg(long, short = 't')]
    tty: bool,
    container: String,
    /// Command and arguments
    #[arg(required = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

impl ExecArgs {
    /// What `forge compose exec` runs in a service's container.
    pub fn new(
        container: String,
        command: &[String],
        env: &[String],
        interactive: bool,
        tty: bool,
    ) -> Self {
        ExecArgs {
            env: env.to_vec(),
            interactive,
            tty,
            container,
            command: command.to_vec(),
        }
    }
}

pub fn exec(runtime: &Runtime, args: &ExecArgs) -> i32 {
    let container = crate::require_root()
        .and_then(|()| runtime.get(&args.container).map_err(|e| e.to_string()));
    let result = container.and_then(|c| match args.tty {
        true => with_tty(runtime, &c, args),
        false => without_tty(runtime, &c, args),
    });
    result.unwrap_or_else(|e| {
        report(&e);
        EXIT_FORGE_ERROR
    })
}

fn without_tty(runtime: &Runtime, c: &Container, args: &ExecArgs) -> Result<i32, String> {
    let mut command = runtime
        .exec_command(c, &args.command, &args.env)
        .map_err(|e| e.to_string())?;
    if !args.interactive {
        command.stdin(Stdio::null());
    }
    let status = command
        .status()
        .map_err(|e| format!("starting the exec process: {e}"))?;
    Ok(ExitInfo::from_status(status).code)
}

fn with_tty(runtime: &Runtime, c: &Container, args: &ExecArgs) -> Result<i32, String> {
    let mut joined = runtime
        .exec_tty(c, &args.command, &args.env)
        .map_err(|e| e.to_string())?;
    if let Some(master) = &joined.pty {
        if let Err(e) = forge_runtime::proxy_tty(master, args.interactive) {
            tracing::warn!("terminal: {e}");
        }
    }
    // Hangs up the pty should the relay have ended early, so that the wait below ends too.
    drop(joined.pty.take());
    let status = joined
        .child
        .wait()
        .map_err(|e| format!("waiting for the exec process: {e}"))?;
    Ok(ExitInfo::from_status(status).code)
}
