//! `forge volume create|ls|inspect|rm|prune`: named and anonymous volumes, as Docker's local
//! driver shows them.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use forge_runtime::{Runtime, RuntimeError, VolumeError, EXIT_FORGE_ERROR};

use crate::report;

/// Exit code when a volume could not be found or handled for another reason than bad input.
const EXIT_FAILED: i32 = 1;

#[derive(clap::Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (a random name when none is given); an existing one is left as it is
    Create {
        /// Set metadata on the volume (KEY=VALUE)
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Driver option: size=SIZE (a hard limit, an ext4 filesystem), type=tmpfs with
        /// o=OPTIONS, or type=none with o=bind and device=/DIR
        #[arg(long = "opt", short = 'o', value_name = "KEY=VALUE")]
        options: Vec<String>,
        /// Volume driver (only local)
        #[arg(long, short = 'd', default_value = "local")]
        driver: String,
        name: Option<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Only print volume names
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Show volumes and the containers using them as JSON
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes (refused while a container, running or not, uses one)
    #[command(alias = "remove")]
    Rm {
        /// No error for a volume that does not exist
        #[arg(long, short = 'f')]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove unused anonymous volumes (every unused volume with -a)
    Prune {
        /// Remove every volume no container uses, named ones too
        #[arg(long, short = 'a')]
        all: bool,
        /// Do not ask for confirmation
        #[arg(long, short = 'f')]
        force: bool,
    },
}

pub fn volume(runtime: &Runtime, cmd: VolumeCommand) -> i32 {
    if let Err(e) = crate::require_root() {
        report(&e);
        return EXIT_FORGE_ERROR;
    }
    match cmd {
        VolumeCommand::Create {
            labels,
            options,
            driver,
            name,
        } => create(runtime, &labels, &options, &driver, name.as_deref()),
        VolumeCommand::Ls { quiet } => list(runtime, quiet),
        VolumeCommand::Inspect { names } => inspect(runtime, &names),
        VolumeCommand::Rm { force, names } => remove(runtime, &names, force),
        VolumeCommand::Prune { all, force } => prune(runtime, all, force),
    }
}

/// Refusals of the user's input exit 125 (as `forge run`'s do); other failures 1.
fn exit_code(err: &RuntimeError) -> i32 {
    match err {
        RuntimeError::Mount(_)
        | RuntimeError::Volume(
            VolumeError::Name(_) | VolumeError::InUse { .. } | VolumeError::Option(_),
        ) => EXIT_FORGE_ERROR,
        _ => EXIT_FAILED,
    }
}

/// `KEY=VALUE` (or `KEY`, an empty value) pairs of `flag` (`--label`, `--opt`); a key given
/// twice is refused.
fn parse_pairs(flag: &str, pairs: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut parsed = BTreeMap::new();
    for pair in pairs {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key.is_empty() {
            return Err(format!("invalid {flag} {pair:?}: expected KEY=VALUE"));
        }
        if parsed.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("invalid {flag} {pair:?}: {key} is given twice"));
        }
    }
    Ok(parsed)
}

fn create(
    runtime: &Runtime,
    labels: &[String],
    options: &[String],
    driver: &str,
    name: Option<&str>,
) -> i32 {
    let parsed = (|| {
        if driver != "local" {
            return Err(format!(
                "invalid --driver {driver:?}: Forge has only the local driver"
            ));
        }
        Ok((
            parse_pairs("--label", labels)?,
            parse_pairs("--opt", options)?,
        ))
    })();
    let (labels, options) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            report(&e);
            return EXIT_FORGE_ERROR;
        }
    };
    match runtime.create_volume(name, &labels, &options) {
        Ok(volume) => {
            println!("{}", volume.name);
            0
        }
        Err(e) => {
            report(&e);
            exit_code(&e)
        }
    }
}

fn list(runtime: &Runtime, quiet: bool) -> i32 {
    let volumes = match runtime.list_volumes() {
        Ok(volumes) => volumes,
        Err(e) => {
            report(&e);
            return exit_code(&e);
        }
    };
    let mut out = std::io::stdout().lock();
    if !quiet {
        let _ = writeln!(out, "{:<10}VOLUME NAME", "DRIVER");
    }
    for volume in volumes {
        let _ = match quiet {
            true => writeln!(out, "{}", volume.name),
            false => writeln!(out, "{:<10}{}", "local", volume.name),
        };
    }
    0
}

fn inspect(runtime: &Runtime, names: &[String]) -> i32 {
    let mut code = 0;
    let mut found = Vec::new();
    for name in names {
        match runtime.inspect_volume(name) {
            Ok(info) => found.push(serde_json::json!({
                "CreatedAt": forge_runtime::rfc3339_utc(info.volume.created, None),
                "Driver": "local",
                "Labels": info.volume.labels,
                "Mountpoint": info.mountpoint,
                "Name": info.volume.name,
                "Options": info.volume.options,
                "Scope": "local",
                "Containers": info.containers,
            })),
            Err(e) => {
                report(&e);
                code = code.max(exit_code(&e));
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&found).expect("json"));
    code
}

fn remove(runtime: &Runtime, names: &[String], force: bool) -> i32 {
    let mut code = 0;
    for name in names {
        match runtime.remove_volume(name, force) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                report(&e);
                code = code.max(exit_code(&e));
            }
        }
    }
    code
}

fn prune(runtime: &Runtime, all: bool, force: bool) -> i32 {
    if !force {
        let which = if all {
            "all local volumes"
        } else {
            "anonymous local volumes"
        };
        eprint!(
            "WARNING! This will remove {which} not used by at least one container.\nAre you sure you want to continue? [y/N] "
        );
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES") {
            eprintln!();
            report(&"volume prune cancelled (use -f to skip this question)");
            return EXIT_FAILED;
        }
    }
    match runtime.prune_volumes(all) {
        Ok(removed) => {
            if !removed.is_empty() {
                println!("Deleted Volumes:");
                for (name, _) in &removed {
                    println!("{name}");
                }
                println!();
            }
            let bytes = removed.iter().map(|(_, size)| size).sum();
            println!("Total reclaimed space: {}", crate::format::size(bytes));
            0
        }
        Err(e) => {
            report(&e);
            exit_code(&e)
        }
    }
}
