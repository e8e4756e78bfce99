//! The project: its name and its lock.

use std::path::Path;

use forge_runtime::Runtime;

/// The project's name: `-p`, else the file's top-level `name`, else its directory's.
pub fn name_of(flag: Option<&str>, compose: &crate::compose::Compose, first_file: &Path) -> String {
    flag.map(str::to_string)
        .or_else(|| compose.name.clone())
        .unwrap_or_else(|| project_name(first_file))
}

/// The compose file's directory name, as `docker compose` picks it: lowercase letters, digits,
/// `_` and `-` only.
pub fn project_name(file: &Path) -> String {
    let dir = std::fs::canonicalize(file)
        .ok()
        .and_then(|p| p.parent()?.file_name()?.to_str().map(str::to_string))
        .unwrap_or_default();
    let name: String = dir
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    if name.is_empty() {
        "default".into()
    } else {
        name
    }
}

/// Held while a supervisor runs the project: a second one would fight over its containers.
pub fn lock_project(
    runtime: &Runtime,
    project: &str,
) -> Result<nix::fcntl::Flock<std::fs::File>, String> {
    let dir = runtime.roots().data.join("projects");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let path = dir.join(format!("{project}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(
        |_| {
            format!(
                "project {project} is already being supervised (lock {} is held)",
                path.display()
            )
        },
    )?;
    // Who holds it, for `forge compose down` to signal.
    let mut holder: &std::fs::File = &lock;
    let _ = holder.set_len(0);
    let _ = std::io::Write::write_all(&mut holder, format!("{}\n", std::process::id()).as_bytes());
    Ok(lock)
}

/// The PID of the supervisor that holds `project`'s lock, if one does.
pub fn supervisor_of(root: &std::path::Path, project: &str) -> Option<i32> {
    let path = root.join("projects").join(format!("{project}.lock"));
    let file = std::fs::File::open(&path).ok()?;
    // Lockable by us: nobody holds it.
    if nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockSharedNonblock).is_ok() {
        return None;
    }
    std::fs::read_to_string(&path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_come_from_the_directory() {
        let dir = tempfile::Builder::new()
            .prefix("My.App_1-")
            .tempdir()
            .unwrap();
        let file = dir.path().join("compose.toml");
        std::fs::write(&file, "").unwrap();
        let name = project_name(&file);
        assert!(name.starts_with("myapp_1-"), "{name}");
    }
}
