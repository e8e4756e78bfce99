//! The corpus of malformed compose files in `tests/bad/`: each must be refused with an error that
//! names the file, the line and column, and says what is wrong. Each file's first line is
//! `# expect: LINE:COL PHRASE`, so an end-to-end test of `forge-supervise --check` can reuse it.

use std::path::{Path, PathBuf};

use forge_supervisor::compose::load;

/// `(line:col, phrase)` from the file's first line.
fn expectation(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let first = text.lines().next().unwrap_or_default();
    let rest = first.strip_prefix("# expect: ").unwrap_or_else(|| {
        panic!(
            "{}: first line must be `# expect: LINE:COL PHRASE`",
            path.display()
        )
    });
    let (position, phrase) = rest.split_once(' ').expect("LINE:COL then a phrase");
    (position.to_string(), phrase.to_string())
}

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_bad_file_is_refused_where_it_is_wrong() {
    let files = corpus();
    assert!(files.len() >= 15, "the corpus has {} files", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let (position, phrase) = expectation(path);
        let name = path.file_name().unwrap().to_string_lossy();
        let error = match load(path) {
            Ok(_) => {
                failures.push(format!("{name}: accepted"));
                continue;
            }
            Err(error) => error.to_string(),
        };
        let located = format!("{name}:{position}: ");
        if !error.contains(&located) || !error.contains(&phrase) {
            failures.push(format!(
                "{name}:\n  got:  {error}\n  want: {located}… {phrase}"
            ));
        }
        assert_eq!(error.lines().count(), 1, "one line: {error}");
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_corpus_covers_every_required_case() {
    let names: Vec<String> = corpus()
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for required in [
        "unknown-key",
        "wrong-type",
        "cycle",
        "unknown-dependency",
        "self-dependency",
        "bad-duration",
        "bad-limit",
        "duplicate-port",
        "bad-port",
        "unknown-network",
        "unknown-restart-policy",
        "bad-on-failure-count",
        "empty-command",
        "no-services",
        "syntax-error",
    ] {
        assert!(
            names.iter().any(|n| n == required),
            "missing tests/bad/{required}.toml"
        );
    }
}
