//! `forge exec NAME CMD...`: run a command inside a running container.

use std::process::Stdio;

use forge_runtime::channel::EXIT_FORGE_ERROR;
use forge_runtime::Runtime;

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
    container: String,
    /// Command and arguments
    #[arg(required = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub fn exec(runtime: &Runtime, args: &ExecArgs) -> i32 {
    let command = crate::require_root()
        .and_then(|()| runtime.get(&args.container).map_err(|e| e.to_string()))
        .and_then(|c| {
            runtime
                .exec_command(&c, &args.command, &args.env)
                .map_err(|e| e.to_string())
        });
    let mut command = match command {
        Ok(command) => command,
        Err(e) => {
            report(&e);
            return EXIT_FORGE_ERROR;
        }
    };
    if !args.interactive {
        command.stdin(Stdio::null());
    }
    match command.status() {
        Ok(status) => forge_runtime::ExitInfo::from_status(status).code,
        Err(e) => {
            report(&format!("starting the exec process: {e}"));
            EXIT_FORGE_ERROR
        }
    }
}
