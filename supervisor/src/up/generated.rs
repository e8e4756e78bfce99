//! The files of secrets and configs that come from values (the environment, a config's
//! content): written under the run root, `RUN_ROOT/projects/PROJECT.files/SERVICE/N` (a
//! tmpfs on most hosts, as Docker keeps secrets; the directories only root may enter),
//! bound read-only into the service's container, removed when the project goes down.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use forge_runtime::{Mount, MountType, Runtime};

use crate::compose::{Compose, Service};

fn project_dir(run_root: &Path, project: &str) -> PathBuf {
    run_root.join("projects").join(format!("{project}.files"))
}

fn file(run_root: &Path, project: &str, service: &str, index: usize) -> PathBuf {
    project_dir(run_root, project)
        .join(service)
        .join(index.to_string())
}

/// Writes every service's generated files, each replaced whole (a running container keeps
/// the file it has).
pub(super) fn write_all(runtime: &Runtime, compose: &Compose, project: &str) -> Result<(), String> {
    let run_root = &runtime.roots().run;
    for svc in compose.services.values() {
        for (index, generated) in svc.generated.iter().enumerate() {
            let path = file(run_root, project, &svc.name, index);
            let dir = path.parent().expect("a file in a directory");
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            let temporary = dir.join(format!(".{index}.new"));
            let written = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                // Readable by the container's user, whoever it is, as Compose's default 0444.
                .mode(0o444)
                .open(&temporary)
                .and_then(|mut f| f.write_all(generated.value.bytes()))
                .and_then(|()| std::fs::rename(&temporary, &path));
            written.map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// The read-only binds of a service's generated files.
pub(super) fn mounts(run_root: &Path, project: &str, svc: &Service) -> Vec<Mount> {
    let at = |index| file(run_root, project, &svc.name, index);
    svc.generated
        .iter()
        .enumerate()
        .map(|(index, generated)| Mount {
            kind: MountType::Bind,
            source: at(index).display().to_string(),
            target: generated.target.clone(),
            read_only: true,
            ..Mount::default()
        })
        .collect()
}

/// Removes the project's generated files.
pub(super) fn remove_all(runtime: &Runtime, project: &str) {
    let dir = project_dir(&runtime.roots().run, project);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!("removing {}: {e}", dir.display())
        }
        _ => {}
    }
}
