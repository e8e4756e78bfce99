//! How the CLI shows times, sizes and commands in tables.

pub fn ago(then: u64, now: u64) -> String {
    format!("{} ago", duration(now.saturating_sub(then)))
}

/// "5 seconds", "3 minutes", "2 hours", "4 days", like Docker's human durations.
pub fn duration(secs: u64) -> String {
    match secs {
        0 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".to_string(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".to_string(),
        s if s < 172_800 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + UNITS[unit]
    }
}

/// Bytes in binary units as `docker stats` shows them: "12.5MiB", "1GiB".
pub fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string() + UNITS[unit]
}

/// The command as one quoted, shortened string, as `docker ps` shows it.
pub fn command(args: &[String], width: usize) -> String {
    let joined = args.join(" ");
    let shown = if joined.chars().count() > width {
        joined
            .chars()
            .take(width.saturating_sub(1))
            .collect::<String>()
            + "…"
    } else {
        joined
    };
    format!("\"{shown}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(duration(5), "5 seconds");
        assert_eq!(duration(90), "About a minute");
        assert_eq!(duration(600), "10 minutes");
        assert_eq!(ago(100, 103), "3 seconds ago");
        assert_eq!(size(999), "999B");
        assert_eq!(binary_size(64 << 20), "64MiB");
        assert_eq!(binary_size(1536), "1.5KiB");
        assert_eq!(size(1_500_000), "1.5MB");
        assert_eq!(
            command(&["sleep".into(), "1000".into()], 20),
            "\"sleep 1000\""
        );
        assert_eq!(
            command(&["a".repeat(30)], 10),
            format!("\"{}…\"", "a".repeat(9))
        );
    }
}
