//! Service output multiplexed on stdout like `docker compose up`: `name | line`, the prefix padded
//! to the longest name and coloured per service. The pumps of `up::log_file` feed it, and the
//! container's log file, which `forge logs -f NAME` follows.

use std::io::Write;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    pub color: bool,
    pub prefix: bool,
    pub timestamps: bool,
}

/// Prints whole lines of every service to stdout, one line at a time.
pub struct Printer {
    style: Style,
    width: usize,
    stdout: Mutex<std::io::Stdout>,
}

/// Standard error that drops what it cannot write (a closed pipe: `forge-supervise … 2>&1 |
/// head`): the services must outlive their audience. Given to tracing-subscriber, which would
/// otherwise report a failed write with `eprintln!`, and panic in it.
#[derive(Debug, Clone, Copy)]
pub struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// `forge-supervise: TEXT` on standard error, dropped if it cannot be written.
pub fn note(text: impl std::fmt::Display) {
    let _ = writeln!(LossyStderr, "forge-supervise: {text}");
}

/// Colours that read on dark and light terminals, assigned by the service's position.
const COLOURS: [&str; 6] = ["36", "33", "32", "35", "34", "91"];

impl Printer {
    pub fn new(names: &[&str], style: Style) -> Self {
        Self {
            style,
            width: names.iter().map(|n| n.len()).max().unwrap_or(0),
            stdout: Mutex::new(std::io::stdout()),
        }
    }

    /// The prefix for service number `index` named `name`.
    pub fn prefix(&self, name: &str, index: usize) -> String {
        if !self.style.prefix {
            return String::new();
        }
        let padded = format!("{name:<width$} | ", width = self.width);
        if self.style.color {
            format!("\x1b[{}m{padded}\x1b[0m", COLOURS[index % COLOURS.len()])
        } else {
            padded
        }
    }

    pub fn line(&self, prefix: &str, text: &str) {
        let stamp = if self.style.timestamps {
            format!("{} ", timestamp())
        } else {
            String::new()
        };
        let mut out = self.stdout.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{prefix}{stamp}{text}");
        let _ = out.flush();
    }
}

/// Now in RFC 3339 UTC with milliseconds.
fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    forge_runtime::rfc3339_utc(now.as_secs(), Some(now.subsec_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_padded_and_coloured_only_when_asked() {
        let plain = Printer::new(
            &["web", "client"],
            Style {
                prefix: true,
                ..Style::default()
            },
        );
        assert_eq!(plain.prefix("web", 0), "web    | ");
        let coloured = Printer::new(
            &["web", "client"],
            Style {
                prefix: true,
                color: true,
                timestamps: false,
            },
        );
        assert_eq!(coloured.prefix("web", 1), "\x1b[33mweb    | \x1b[0m");
        let bare = Printer::new(&["web"], Style::default());
        assert_eq!(bare.prefix("web", 0), "");
    }

    #[test]
    fn timestamps_look_like_rfc3339() {
        let t = timestamp();
        assert_eq!(t.len(), 24, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{t}"
        );
    }
}

/// The output flags, as forge-supervise and `forge compose up` take them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OutputFlags {
    /// No colours in the output
    #[arg(long)]
    pub no_color: bool,
    /// No `service |` prefix on output lines
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Prefix output lines with a timestamp
    #[arg(long)]
    pub timestamps: bool,
}

impl OutputFlags {
    /// The flags again, to pass them on.
    pub fn to_args(&self) -> Vec<&'static str> {
        [
            (self.no_color, "--no-color"),
            (self.no_log_prefix, "--no-log-prefix"),
            (self.timestamps, "--timestamps"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, flag)| flag)
        .collect()
    }
}
