//! `forge compose logs [-f] [--tail N] [SERVICE...]`: the output of the project's containers,
//! each line prefixed with its service. `-f` follows every container's log (containers
//! re-created meanwhile too) until the project's supervisor is gone.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Duration;

use forge_runtime::Runtime;

use super::Project;
use crate::report;

/// `--tail`: a count of lines, or all of them (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail(pub Option<usize>);

pub fn parse_tail(text: &str) -> Result<Tail, String> {
    match text {
        "all" | "-1" => Ok(Tail(None)),
        n => n
            .parse()
            .map(|n| Tail(Some(n)))
            .map_err(|_| format!("--tail {n:?}: expected a number of lines or \"all\"")),
    }
}

/// One container's log as read so far.
struct Followed {
    service: String,
    path: std::path::PathBuf,
    file: std::fs::File,
    /// The end of a line not written yet.
    partial: Vec<u8>,
}

pub fn logs(
    runtime: &Runtime,
    project: &Project,
    services: &[String],
    follow: bool,
    tail: Tail,
) -> i32 {
    let mut followed: HashMap<String, Followed> = HashMap::new();
    let mut out = std::io::stdout().lock();
    loop {
        let containers = match project.containers(runtime) {
            Ok(c) => c,
            Err(e) => {
                report(&e);
                return 1;
            }
        };
        // `web` names its replicas too, also those `up --scale` made.
        let wanted = |label: &str| {
            services
                .iter()
                .any(|s| s == label || forge_supervisor::compose::is_replica(label, s))
        };
        for (service, c) in containers.iter().filter(|(s, _)| wanted(s)) {
            if followed.contains_key(c.id()) {
                continue;
            }
            let path = runtime.log_path(c);
            let Ok(mut file) = std::fs::File::open(&path) else {
                continue;
            };
            let mut text = crate::log_files::rotated_text(runtime, c);
            let _ = file.read_to_end(&mut text);
            let (lines, partial) = split_lines(&text);
            let skip = tail.0.map_or(0, |n| lines.len().saturating_sub(n));
            for line in &lines[skip..] {
                write_line(&mut out, service, line);
            }
            let partial = partial.to_vec();
            let service = service.clone();
            followed.insert(
                c.id().to_string(),
                Followed {
                    service,
                    path,
                    file,
                    partial,
                },
            );
        }
        if !follow {
            return 0;
        }
        let root = &runtime.roots().data;
        let up = forge_supervisor::project::supervisor_of(root, &project.name).is_some();
        for log in followed.values_mut() {
            read_new(log, &mut out);
        }
        let _ = out.flush();
        if !up {
            return 0;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_new(log: &mut Followed, out: &mut impl Write) {
    let mut more = Vec::new();
    // A container removed meanwhile: its file is gone, what was read stays.
    if log.file.read_to_end(&mut more).is_err() {
        return;
    }
    if more.is_empty() {
        // Rotated away, and read to its end: on with the new file.
        if let Some(newer) = crate::log_files::reopened(&log.file, &log.path) {
            log.file = newer;
            read_new(log, out);
        }
        return;
    }
    log.partial.extend_from_slice(&more);
    let text = std::mem::take(&mut log.partial);
    let (lines, partial) = split_lines(&text);
    for line in lines {
        write_line(out, &log.service, line);
    }
    log.partial = partial.to_vec();
}

/// The complete lines (without their newlines), and what follows the last newline.
fn split_lines(text: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    match text.iter().rposition(|&b| b == b'\n') {
        Some(end) => (
            text[..end].split(|&b| b == b'\n').collect(),
            &text[end + 1..],
        ),
        None => (Vec::new(), text),
    }
}

fn write_line(out: &mut impl Write, service: &str, line: &[u8]) {
    let _ = out.write_all(format!("{service} | ").as_bytes());
    let _ = out.write_all(line);
    let _ = out.write_all(b"\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_at_newlines_and_a_partial_line_waits() {
        let (lines, partial) = split_lines(b"a\n\nc\nhalf");
        assert_eq!(lines, [b"a".as_slice(), b"", b"c"]);
        assert_eq!(partial, b"half");
        assert_eq!(split_lines(b"half"), (Vec::<&[u8]>::new(), &b"half"[..]));
        assert_eq!(parse_tail("all"), Ok(Tail(None)));
        assert_eq!(parse_tail("2"), Ok(Tail(Some(2))));
        assert!(parse_tail("x").is_err());
    }
}
