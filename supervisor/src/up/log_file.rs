//! A container's log file as its service's `logging` keeps it: appended to by the output
//! pumps of both streams, rotated at `max-size` (`container.log` → `container.log.1` → … up
//! to `max-file` files, the oldest dropped), or not kept at all (`none`).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::compose::logging::{LogDriver, Logging};
use crate::output::Printer;

/// Copies `reader` line by line to the printer (with `prefix`) and to `log`, until EOF.
pub async fn pump(
    reader: impl AsyncRead + Unpin,
    printer: &Printer,
    prefix: &str,
    log: Option<SharedLog>,
) {
    let mut lines = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Some(log) = &log {
            log.lock().unwrap_or_else(|e| e.into_inner()).write(&line);
        }
        let text = String::from_utf8_lossy(&line);
        printer.line(prefix, text.trim_end_matches(['\n', '\r']));
    }
}

pub struct LogFile {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    logging: Logging,
}

/// Shared by a run's stdout and stderr pumps.
pub type SharedLog = Arc<Mutex<LogFile>>;

impl LogFile {
    /// The log at `path`, appended to; `None` for the `none` driver or a file that cannot be
    /// opened (the output is still printed).
    pub fn open(path: &Path, logging: Logging) -> Option<SharedLog> {
        if logging.driver == LogDriver::None {
            return None;
        }
        let file = append(path).ok()?;
        let written = file.metadata().map_or(0, |m| m.len());
        let log = LogFile {
            path: path.to_path_buf(),
            file: Some(file),
            written,
            logging,
        };
        Some(Arc::new(Mutex::new(log)))
    }

    /// Appends `line`, rotating first when it would pass `max-size`; a write that fails ends
    /// the log (the output is still printed).
    pub fn write(&mut self, line: &[u8]) {
        let len = line.len() as u64;
        if self
            .logging
            .max_size
            .is_some_and(|max| self.written > 0 && self.written + len > max)
        {
            self.rotate();
        }
        let Some(file) = self.file.as_mut() else {
            return;
        };
        if file.write_all(line).is_err() {
            self.file = None;
        }
        self.written += len;
    }

    fn rotate(&mut self) {
        self.file = None;
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        let keep = self.logging.max_file;
        // The oldest goes; each other moves up one; the current one becomes .1.
        if keep > 1 {
            let _ = std::fs::remove_file(numbered(keep - 1));
            for n in (1..keep - 1).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            let _ = std::fs::rename(&self.path, numbered(1));
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
        self.file = append(&self.path).ok();
        self.written = 0;
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logging(max_size: u64, max_file: u32) -> Logging {
        Logging {
            driver: LogDriver::JsonFile,
            max_size: Some(max_size),
            max_file,
        }
    }

    #[test]
    fn rotation_keeps_max_file_files_each_under_max_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let log = LogFile::open(&path, logging(10, 3)).unwrap();
        for n in 0..7 {
            log.lock().unwrap().write(format!("line {n}\n").as_bytes());
        }
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        // 7 bytes a line: one per file; the current and two rotated ones are kept.
        assert_eq!(read("container.log"), "line 6\n");
        assert_eq!(read("container.log.1"), "line 5\n");
        assert_eq!(read("container.log.2"), "line 4\n");
        assert!(!dir.path().join("container.log.3").exists());
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["container.log", "container.log.1", "container.log.2"]
        );
    }

    #[test]
    fn one_file_is_emptied_at_max_size_and_none_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let log = LogFile::open(&path, logging(10, 1)).unwrap();
        log.lock().unwrap().write(b"first 1\n");
        log.lock().unwrap().write(b"second\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second\n");
        assert!(!dir.path().join("container.log.1").exists());
        let none = Logging {
            driver: LogDriver::None,
            ..Logging::default()
        };
        let other = dir.path().join("other.log");
        assert!(LogFile::open(&other, none).is_none());
        assert!(!other.exists());
    }
}
