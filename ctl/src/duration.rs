//! Durations as kubectl's flags take them: Go's `time.Duration` syntax
//! (`1m0s`, `3s`, `500ms`, `1h30m`, `0`).

use crate::report::usage;
use std::time::Duration;

/// Parses a Go duration; `flag` names the flag in the error, the way cobra
/// reports a bad value (`invalid argument "soon" for "--timeout" flag: ...`).
pub fn parse(text: &str, flag: &str) -> anyhow::Result<Duration> {
    parse_go(text).map_err(|why| usage(format!("invalid argument \"{text}\" for \"{flag}\" flag: {why}")))
}

/// Go's `time.ParseDuration`, for non-negative durations.
fn parse_go(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration \"{text}\"");
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() || rest.starts_with('-') {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let nanos_per_unit = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration \"{text}\"")),
            other => return Err(format!("time: unknown unit \"{other}\" in duration \"{text}\"")),
        };
        total += value * nanos_per_unit;
        rest = after;
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse("1m0s", "--x").expect("valid"), Duration::from_secs(60));
        assert_eq!(parse("3s", "--x").expect("valid"), Duration::from_secs(3));
        assert_eq!(parse("1h30m", "--x").expect("valid"), Duration::from_secs(5400));
        assert_eq!(parse("250ms", "--x").expect("valid"), Duration::from_millis(250));
        assert_eq!(parse("1.5s", "--x").expect("valid"), Duration::from_millis(1500));
        assert_eq!(parse("0", "--x").expect("valid"), Duration::ZERO);
    }

    #[test]
    fn bad_durations_are_reported_like_cobra() {
        let e = parse("10", "--timeout").expect_err("no unit");
        assert_eq!(
            e.to_string(),
            "invalid argument \"10\" for \"--timeout\" flag: time: missing unit in duration \"10\""
        );
        let e = parse("soon", "--timeout").expect_err("not a number");
        assert_eq!(e.to_string(), "invalid argument \"soon\" for \"--timeout\" flag: time: invalid duration \"soon\"");
        assert!(parse("5y", "--x").is_err());
    }
}
