//! `forge cp`: copies files and directories between the host and a container, running or
//! stopped, with `docker cp`'s rules (see `forge_runtime::Runtime::copy`). Parses and prints.

use forge_runtime::{CopyOptions, CopyPath, Runtime, RuntimeError, EXIT_FORGE_ERROR};

use crate::report;

#[derive(clap::Args)]
pub struct CpArgs {
    /// Keep the uid and gid of what is copied (default: the container's root when copying in,
    /// the caller when copying out)
    #[arg(long, short = 'a')]
    archive: bool,
    /// Follow a symlink at the end of the source path
    #[arg(long = "follow-link", short = 'L')]
    follow_link: bool,
    /// CONTAINER:SRC_PATH, a host path, or - for a tar stream on stdin
    #[arg(allow_hyphen_values = true)]
    src: String,
    /// CONTAINER:DEST_PATH, a host path, or - for a tar stream on stdout
    #[arg(allow_hyphen_values = true)]
    dest: String,
}

pub fn cp(runtime: &Runtime, args: &CpArgs) -> i32 {
    let result = parse(&args.src)
        .and_then(|src| Ok((src, parse(&args.dest)?)))
        .and_then(|(src, dst)| {
            let opts = CopyOptions {
                archive: args.archive,
                follow_link: args.follow_link,
            };
            runtime
                .copy(
                    &src,
                    &dst,
                    opts,
                    &mut std::io::stdin().lock(),
                    &mut std::io::stdout().lock(),
                )
                .map_err(|e| e.to_string())
        });
    match result {
        Ok(()) => 0,
        Err(e) => {
            report(&e);
            EXIT_FORGE_ERROR
        }
    }
}

/// Docker's `splitCpArg`: `-`, an absolute or `.`-relative host path, `CONTAINER:PATH`, or any
/// other host path.
fn parse(arg: &str) -> Result<CopyPath, String> {
    if arg == "-" {
        return Ok(CopyPath::Stream);
    }
    if arg.is_empty() {
        return Err(RuntimeError::BadCopy("empty path".into()).to_string());
    }
    if arg.starts_with('/') || arg.starts_with('.') {
        return Ok(CopyPath::Host(arg.to_string()));
    }
    match arg.split_once(':') {
        None => Ok(CopyPath::Host(arg.to_string())),
        Some((container, path)) if container.is_empty() || path.is_empty() => Err(format!(
            "malformed CONTAINER:PATH {arg:?}: both parts are needed"
        )),
        Some((container, path)) => Ok(CopyPath::Container {
            container: container.to_string(),
            path: path.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_as_docker_splits_them() {
        assert_eq!(parse("-"), Ok(CopyPath::Stream));
        assert_eq!(parse("/a:b"), Ok(CopyPath::Host("/a:b".into())));
        assert_eq!(parse("./x:y"), Ok(CopyPath::Host("./x:y".into())));
        assert_eq!(parse("file"), Ok(CopyPath::Host("file".into())));
        assert_eq!(
            parse("web:/etc/"),
            Ok(CopyPath::Container {
                container: "web".into(),
                path: "/etc/".into()
            })
        );
        assert!(parse("web:").is_err() && parse(":/x").is_err() && parse("").is_err());
    }
}
