//! `docker cp`'s path rules as plain data (moby's `pkg/archive/copy.go`): what a source and a
//! destination are, and from them which directory the archive is extracted into and what its
//! top entry is renamed to.
//!
//! A source is archived as its last component (`/a/b` as `b/...`; `/a/b/.` as `./...`, its
//! contents); [`prepare`] then decides, as `PrepareArchiveCopy` does:
//! destination an existing directory → extract into it as is; an existing file and a directory
//! source → refused; otherwise (a file to replace, or a missing destination whose parent
//! exists) → extract into the destination's parent with the top entry renamed to the
//! destination's name. A missing destination that ends in `/` (asserts a directory) takes only
//! a directory source.

use std::path::{Component, Path, PathBuf};

/// What the source is. `path` is clean; `base` is its last component (`.` for `dir/.`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The directory the source is in.
    pub dir: PathBuf,
    /// Its name there, `.` when the source is that directory's contents.
    pub base: String,
    pub is_dir: bool,
    /// `-L` followed a symlink: the archive's top entry takes the link's own name.
    pub rebase: Option<String>,
}

impl Source {
    /// The name the archive's top entry has before [`Plan::top`] renames it.
    pub fn archived_as(&self) -> &str {
        self.rebase.as_deref().unwrap_or(&self.base)
    }
}

/// What the destination is, after following symlinks at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    pub path: PathBuf,
    pub exists: bool,
    pub is_dir: bool,
    /// The user's path ended in `/` or `/.`: it must be a directory.
    pub asserts_dir: bool,
}

/// Where and how to extract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// An existing directory to extract into.
    pub extract_dir: PathBuf,
    /// The name the archive's top entry gets (`None`: as archived).
    pub top: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("cannot copy a directory to a file: {0}")]
    DirToFile(PathBuf),
    #[error("no such directory: {0}")]
    NoSuchDirectory(PathBuf),
}

/// Docker's `PrepareArchiveCopy`.
pub fn prepare(src: &Source, dst: &Dest) -> Result<Plan, PlanError> {
    let (dst_dir, dst_base) = split(&dst.path);
    if dst.exists && dst.is_dir {
        return Ok(Plan {
            extract_dir: dst.path.clone(),
            top: None,
        });
    }
    if dst.exists && src.is_dir {
        return Err(PlanError::DirToFile(dst.path.clone()));
    }
    if !dst.exists && !src.is_dir && dst.asserts_dir {
        return Err(PlanError::NoSuchDirectory(dst.path.clone()));
    }
    Ok(Plan {
        extract_dir: dst_dir,
        top: Some(dst_base),
    })
}

/// Lexically cleaned absolute path (Go's `filepath.Clean` on `/` + `path`, as docker does).
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Whether the user's path says "a directory": a trailing `/` or `/.`.
pub fn asserts_dir(path: &str) -> bool {
    path.ends_with('/') || specifies_current_dir(path)
}

fn specifies_current_dir(path: &str) -> bool {
    path == "." || path.ends_with("/.")
}

/// Docker's `SplitPathDirEntry`: the cleaned path's parent and last component, where `dir/.`
/// splits into `dir` and `.` (and `/` into `/` and `.`).
pub fn split_entry(path: &str) -> (PathBuf, String) {
    let cleaned = clean(Path::new(path));
    if specifies_current_dir(path) || cleaned == Path::new("/") {
        return (cleaned, ".".into());
    }
    split(&cleaned)
}

fn split(path: &Path) -> (PathBuf, String) {
    let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let base = path
        .file_name()
        .map_or_else(|| ".".into(), |n| n.to_string_lossy().into_owned());
    (parent, base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(path: &str, is_dir: bool) -> Source {
        let (dir, base) = split_entry(path);
        Source {
            dir,
            base,
            is_dir,
            rebase: None,
        }
    }

    fn dst(path: &str, exists: bool, is_dir: bool) -> Dest {
        Dest {
            path: clean(Path::new(path)),
            exists,
            is_dir,
            asserts_dir: asserts_dir(path),
        }
    }

    fn plan(dir: &str, top: Option<&str>) -> Result<Plan, PlanError> {
        Ok(Plan {
            extract_dir: dir.into(),
            top: top.map(Into::into),
        })
    }

    #[test]
    fn splitting_keeps_the_trailing_dot_and_cleans_the_rest() {
        assert_eq!(split_entry("/a/b/"), ("/a".into(), "b".into()));
        assert_eq!(split_entry("/a/b/."), ("/a/b".into(), ".".into()));
        assert_eq!(split_entry("a/../b"), ("/".into(), "b".into()));
        assert_eq!(split_entry("/"), ("/".into(), ".".into()));
        assert!(asserts_dir("/x/") && asserts_dir("/x/.") && !asserts_dir("/x"));
    }

    #[test]
    fn a_file_goes_into_a_directory_replaces_a_file_or_is_created() {
        let f = src("/etc/app.conf", false);
        assert_eq!(prepare(&f, &dst("/d", true, true)), plan("/d", None));
        assert_eq!(
            prepare(&f, &dst("/d/x", true, false)),
            plan("/d", Some("x"))
        );
        assert_eq!(
            prepare(&f, &dst("/d/new", false, false)),
            plan("/d", Some("new"))
        );
        assert_eq!(
            prepare(&f, &dst("/d/new/", false, false)),
            Err(PlanError::NoSuchDirectory("/d/new".into()))
        );
    }

    #[test]
    fn a_directory_is_copied_as_a_subdirectory_or_created_with_its_contents() {
        let d = src("/conf.d", true);
        assert_eq!(prepare(&d, &dst("/etc", true, true)), plan("/etc", None));
        assert_eq!(
            prepare(&d, &dst("/etc/new", false, false)),
            plan("/etc", Some("new"))
        );
        assert_eq!(
            prepare(&d, &dst("/etc/new/", false, false)),
            plan("/etc", Some("new"))
        );
        assert_eq!(
            prepare(&d, &dst("/etc/passwd", true, false)),
            Err(PlanError::DirToFile("/etc/passwd".into()))
        );
        // `dir/.`: its contents, into an existing directory or a new one.
        let dot = src("/conf.d/.", true);
        assert_eq!(dot.archived_as(), ".");
        assert_eq!(prepare(&dot, &dst("/etc", true, true)), plan("/etc", None));
        assert_eq!(
            prepare(&dot, &dst("/new", false, false)),
            plan("/", Some("new"))
        );
    }
}
