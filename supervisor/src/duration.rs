//! Durations as Compose writes them (Go's `time.ParseDuration`): `1m30s`, `500ms`, `2.5s`, `1h`.
//!
//! A bare number is refused: `10` could mean seconds or nanoseconds, and Compose users have been
//! bitten by both.

use std::time::Duration;

const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a sequence of `NUMBER UNIT` terms (units h, m, s, ms, us, ns; fractions allowed).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| {
        format!(
            "invalid duration {text:?}: {why} (expected a number with a unit, like 1m30s, 500ms or 2.5s; units h, m, s, ms, us, ns)"
        )
    };
    if text.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut rest = text;
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        if number.is_empty() {
            return Err(bad(&format!("{unit:?} has no number before it")));
        }
        if unit.is_empty() {
            return Err(bad(&format!("{number} has no unit")));
        }
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| bad(&format!("unknown unit {unit:?}")))?;
        let term =
            scaled(number, scale).ok_or_else(|| bad(&format!("{number:?} is not a number")))?;
        nanos = nanos.saturating_add(term);
        rest = tail;
    }
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| bad("it is too long"))
}

/// `number × scale` in nanoseconds, exactly for the fraction digits that matter.
fn scaled(number: &str, scale: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    // Beyond 18 fraction digits nothing is left to measure in nanoseconds.
    let fraction = &fraction[..fraction.len().min(18)];
    let fraction_nanos = if fraction.is_empty() {
        0
    } else {
        let digits: u128 = fraction.parse().ok()?;
        digits * scale / 10u128.pow(fraction.len() as u32)
    };
    whole.checked_mul(scale)?.checked_add(fraction_nanos)
}

/// A duration as Compose writes one: `1h2m3s`, `1m30s`, `500ms`, `1.5s`, `0s`.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    if d.subsec_nanos() != 0 {
        return match d.as_secs() {
            0 if d.subsec_nanos().is_multiple_of(1_000_000) => format!("{}ms", d.subsec_millis()),
            _ => format!("{}s", d.as_secs_f64()),
        };
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_durations_parse_back() {
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3723), "1h2m3s"),
            (Duration::from_secs(3600), "1h"),
        ] {
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text).unwrap(), d, "{text}");
        }
    }

    #[test]
    fn compose_forms() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("10s").unwrap(), ms(10_000));
        assert_eq!(parse_duration("500ms").unwrap(), ms(500));
        assert_eq!(parse_duration("1m30s").unwrap(), ms(90_000));
        assert_eq!(parse_duration("1h").unwrap(), ms(3_600_000));
        assert_eq!(parse_duration("2.5s").unwrap(), ms(2_500));
        assert_eq!(parse_duration(".5s").unwrap(), ms(500));
        assert_eq!(parse_duration("1us").unwrap(), Duration::from_micros(1));
        assert_eq!(parse_duration("1µs").unwrap(), Duration::from_micros(1));
        assert_eq!(parse_duration("7ns").unwrap(), Duration::from_nanos(7));
        assert_eq!(parse_duration("1h2m3s4ms").unwrap(), ms(3_723_004));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_duration("0.000000001s").unwrap(),
            Duration::from_nanos(1)
        );
    }

    #[test]
    fn bad_forms_say_what_is_expected() {
        for bad in [
            "", "10", "1.5", "s", "5x", "1..2s", "-1s", "1 s", "1m30", "10S", ".s",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("like 1m30s, 500ms"), "{bad:?}: {err}");
        }
        assert!(parse_duration("10").unwrap_err().contains("has no unit"));
        assert!(parse_duration("5x")
            .unwrap_err()
            .contains("unknown unit \"x\""));
        assert!(parse_duration("99999999999h")
            .unwrap_err()
            .contains("too long"));
    }
}
