//! `forge load`, `forge save`, `forge rmi` and the image list: OCI archives in and out of the
//! store.

use std::path::PathBuf;

use forge_image::oci;
use forge_image::reference::Reference;
use forge_runtime::Runtime;

use crate::{format, report};

const EXIT_FAILED: i32 = 1;

#[derive(clap::Args)]
pub struct LoadArgs {
    /// The archive: an OCI layout or a `docker save` tar (optionally gzip- or zstd-compressed)
    #[arg(long, short = 'i', value_name = "ARCHIVE")]
    input: PathBuf,
}

#[derive(clap::Args)]
pub struct PullArgs {
    /// Pull for this platform instead of the host's, e.g. linux/arm64
    #[arg(long, value_name = "OS/ARCH")]
    platform: Option<String>,
    /// busybox, library/alpine:3.20, host:5000/app@sha256:...
    image: String,
}

/// `os/arch[/variant]` → a platform.
fn parse_platform(text: &str) -> Result<oci::Platform, String> {
    let parts: Vec<&str> = text.split('/').collect();
    match parts.as_slice() {
        [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(oci::Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        }),
        _ => Err(format!(
            "invalid platform {text:?}: expected OS/ARCH[/VARIANT], e.g. linux/amd64"
        )),
    }
}

/// Pulls `image`, printing progress as plain lines on stderr; the short name pulled.
pub fn pull_image(
    runtime: &Runtime,
    image: &str,
    platform: Option<&str>,
) -> Result<String, String> {
    use forge_image::{pull, reference::Reference};
    let reference = Reference::parse(image).map_err(|e| e.to_string())?;
    let platform = platform.map(parse_platform).transpose()?;
    let name = reference.familiar();
    let bars = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(Bars::default);
    let progress = |event: pull::Progress| match &bars {
        Some(bars) => bars.update(event),
        None => plain_progress(&name, event),
    };
    let pulled = pull::pull(runtime.images(), &reference, platform.as_ref(), &progress)
        .map_err(|e| e.to_string())?;
    drop(bars);
    if pulled.up_to_date {
        eprintln!("{}: image is up to date ({})", pulled.name, pulled.digest);
    } else {
        eprintln!("{}: pulled {}", pulled.name, pulled.digest);
    }
    Ok(pulled.name)
}

/// Pull progress when stderr is not a terminal: a line when a layer starts and ends.
fn plain_progress(name: &str, event: forge_image::pull::Progress) {
    if let Some(line) = event.plain_line(name) {
        eprintln!("{line}");
    }
}

/// One progress bar per layer on a terminal.
#[derive(Default)]
struct Bars {
    all: indicatif::MultiProgress,
    layers: std::sync::Mutex<std::collections::HashMap<String, indicatif::ProgressBar>>,
}

impl Bars {
    fn update(&self, event: forge_image::pull::Progress) {
        use forge_image::pull::Progress;
        let mut layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Progress::Started { layer, size } => {
                let bar = self.all.add(indicatif::ProgressBar::new(size));
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{prefix}: [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .expect("a valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(layer.to_string());
                layers.insert(layer.to_string(), bar);
            }
            Progress::Received { layer, bytes } => {
                if let Some(bar) = layers.get(layer) {
                    bar.inc(bytes);
                }
            }
            Progress::Done { layer } => {
                if let Some(bar) = layers.get(layer) {
                    bar.finish_with_message("done");
                }
            }
            Progress::Unpacking => {
                let _ = self.all.println("unpacking");
            }
        }
    }
}

pub fn pull(runtime: &Runtime, args: &PullArgs) -> i32 {
    match crate::require_root()
        .and_then(|()| pull_image(runtime, &args.image, args.platform.as_deref()))
    {
        Ok(name) => {
            println!("{name}");
            0
        }
        Err(e) => {
            report(&e);
            EXIT_FAILED
        }
    }
}

#[derive(clap::Args)]
pub struct LoginArgs {
    #[arg(long, short = 'u')]
    username: String,
    /// Read the password from stdin (a single line)
    #[arg(long)]
    password_stdin: bool,
    /// The registry, e.g. 127.0.0.1:5000 or ghcr.io
    registry: String,
}

pub fn login(args: &LoginArgs) -> i32 {
    if !args.password_stdin {
        report(&"give the password on stdin with --password-stdin (it must not be an argument)");
        return EXIT_FAILED;
    }
    let mut password = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut password) {
        report(&format!("reading the password from stdin: {e}"));
        return EXIT_FAILED;
    }
    let password = password.trim_end_matches(['\n', '\r']);
    match forge_image::pull::login(&args.registry, &args.username, password) {
        Ok(path) => {
            println!("Login Succeeded (credentials in {})", path.display());
            0
        }
        Err(e) => {
            report(&e);
            EXIT_FAILED
        }
    }
}

#[derive(clap::Args)]
pub struct SaveArgs {
    /// Where to write the OCI-layout tar archive
    #[arg(long, short = 'o', value_name = "ARCHIVE")]
    output: PathBuf,
    image: String,
}

#[derive(clap::Args)]
pub struct RmiArgs {
    /// Remove even when containers use the image (they keep running on its layers)
    #[arg(long, short = 'f')]
    force: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn load(runtime: &Runtime, args: &LoadArgs) -> i32 {
    if let Err(e) = crate::require_root() {
        report(&e);
        return EXIT_FAILED;
    }
    let store = runtime.images();
    match oci::load_archive(store, &store.blobs(), &args.input) {
        Ok(names) => {
            for name in names {
                println!("Loaded image: {name}");
            }
            0
        }
        Err(e) => {
            report(&format!("loading {}: {e}", args.input.display()));
            EXIT_FAILED
        }
    }
}

pub fn save(runtime: &Runtime, args: &SaveArgs) -> i32 {
    let store = runtime.images();
    let saved = store
        .get(&args.image)
        .map_err(|e| e.to_string())
        .and_then(|image| {
            oci::save_archive(&store.blobs(), &image.config, &image.name, &args.output)
                .map_err(|e| e.to_string())
        });
    match saved {
        Ok(()) => 0,
        Err(e) => {
            report(&format!("saving {}: {e}", args.image));
            EXIT_FAILED
        }
    }
}

pub fn rmi(runtime: &Runtime, args: &RmiArgs) -> i32 {
    remove(runtime, &args.images, args.force)
}

/// Removes images unless containers use them (or `force`), then the layers nothing needs.
pub fn remove(runtime: &Runtime, names: &[String], force: bool) -> i32 {
    let store = runtime.images();
    let containers = runtime.list().unwrap_or_default();
    let mut code = 0;
    for name in names {
        let image = match store.get(name) {
            Ok(image) => image,
            Err(e) => {
                report(&e);
                code = EXIT_FAILED;
                continue;
            }
        };
        let users: Vec<&str> = containers
            .iter()
            .filter(|c| store.get(&c.config.image).is_ok_and(|i| i.key == image.key))
            .map(|c| c.name())
            .collect();
        if !users.is_empty() && !force {
            report(&format!(
                "image {name} is used by containers: {} (remove them first, or use -f)",
                users.join(", ")
            ));
            code = EXIT_FAILED;
            continue;
        }
        match store.remove(name) {
            Ok(()) => println!("Untagged: {}", image.name),
            Err(e) => {
                report(&e);
                code = EXIT_FAILED;
            }
        }
    }
    // Layers of a removed image that a running container still stacks stay until the next rmi
    // without users: a forced removal must not pull a layer from under a container.
    let in_use = containers.iter().any(|c| c.is_running());
    if !(force && in_use) {
        if let Err(e) = oci::collect_garbage(store, &store.blobs()) {
            report(&format!("removing unused layers: {e}"));
            code = EXIT_FAILED;
        }
    }
    code
}

/// `forge images`: name, digest, age and size of every image.
pub fn list(runtime: &Runtime, digests: bool) -> i32 {
    let images = match runtime.images().list() {
        Ok(images) => images,
        Err(e) => {
            report(&e);
            return EXIT_FAILED;
        }
    };
    let now = forge_runtime::now_secs();
    if digests {
        println!("{:<40}  {:<20}  {:<16}  SIZE", "NAME", "DIGEST", "CREATED");
    } else {
        println!("{:<40}  {:<16}  SIZE", "NAME", "CREATED");
    }
    for image in images {
        let age = format::ago(image.config.created, now);
        let size = format::size(image.config.size);
        if digests {
            let digest = image.config.digest.as_deref().unwrap_or("-");
            let short = &digest[..digest.len().min(19)];
            println!("{:<40}  {short:<20}  {age:<16}  {size}", image.name);
        } else {
            println!("{:<40}  {age:<16}  {size}", image.name);
        }
    }
    0
}

/// `forge image inspect`: what Forge knows of each image, shaped like `docker image inspect`.
pub fn inspect(runtime: &Runtime, names: &[String]) -> i32 {
    let mut code = 0;
    let mut found = Vec::new();
    for name in names {
        match runtime.images().get(name) {
            Ok(image) => found.push(describe(&image)),
            Err(e) => {
                report(&e);
                code = EXIT_FAILED;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&found).expect("json"));
    code
}

fn describe(image: &forge_image::Image) -> serde_json::Value {
    let c = &image.config;
    let parsed = c.reference.as_deref().map(Reference::parse);
    let repo_digests: Vec<String> = match (parsed, &c.digest) {
        (Some(Ok(reference)), Some(digest)) => vec![format!("{}@{digest}", reference.name())],
        _ => Vec::new(),
    };
    let exposed: serde_json::Map<String, serde_json::Value> = c
        .exposed_ports
        .iter()
        .map(|p| (p.clone(), serde_json::json!({})))
        .collect();
    serde_json::json!({
        "Name": image.name,
        "Reference": c.reference,
        "Digest": c.digest,
        "RepoDigests": repo_digests,
        "Created": c.created,
        "Size": c.size,
        "Config": {
            "Env": c.env,
            "Entrypoint": c.entrypoint,
            "Cmd": c.cmd,
            "WorkingDir": c.working_dir,
            "User": c.user,
            "ExposedPorts": exposed,
            "Volumes": c.volumes.iter().map(|v| (v.clone(), serde_json::json!({}))).collect::<serde_json::Map<_, _>>(),
            "StopSignal": c.stop_signal,
        },
        "RootFS": { "Type": "layers", "Layers": c.layers },
    })
}
