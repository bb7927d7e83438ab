//! Human durations as scenario files and profiles write them: `500ms`, `90s`, `45m`, `1h30m`,
//! `14d`, `2w`. Units may be combined from largest to smallest, each at most once. Errors say
//! where in the text the problem is and what was expected, so that a scenario error can be
//! reported at its exact column.

use std::time::Duration;

/// Why a duration could not be parsed. `position` is the byte offset in the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?} at character {}: {expected}", position + 1)]
pub struct DurationParseError {
    /// The text that was parsed.
    pub input: String,
    /// Byte offset of the problem.
    pub position: usize,
    /// What was expected there.
    pub expected: String,
}

const UNITS: [(&str, u64); 6] = [
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a duration such as `1h30m` or `14d`.
pub fn parse_duration(input: &str) -> Result<Duration, DurationParseError> {
    let err = |position: usize, expected: &str| DurationParseError {
        input: input.to_string(),
        position,
        expected: expected.to_string(),
    };
    let bytes = input.as_bytes();
    if bytes.is_empty() {
        return Err(err(
            0,
            "a number followed by a unit (ms, s, m, h, d, w), e.g. \"90s\"",
        ));
    }
    let mut pos = 0;
    let mut total_ms: u64 = 0;
    // Index into UNITS of the last unit used: units must go from largest to smallest.
    let mut last_unit: Option<usize> = None;
    while pos < bytes.len() {
        let digits_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == digits_start {
            return Err(err(pos, "a digit"));
        }
        let number: u64 = input[digits_start..pos]
            .parse()
            .map_err(|_| err(digits_start, "a smaller number"))?;
        let unit_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit = &input[unit_start..pos];
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(err(unit_start, "a unit: ms, s, m, h, d or w"));
        };
        if last_unit.is_some_and(|last| index <= last) {
            return Err(err(
                unit_start,
                "units from largest to smallest, each once (e.g. 1h30m)",
            ));
        }
        last_unit = Some(index);
        let part = number
            .checked_mul(UNITS[index].1)
            .ok_or_else(|| err(digits_start, "a smaller number"))?;
        total_ms = total_ms
            .checked_add(part)
            .ok_or_else(|| err(digits_start, "a smaller number"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration in the same notation, e.g. `1h30m`, `14d`, `0s`.
pub fn format_duration(duration: Duration) -> String {
    let mut remaining_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if remaining_ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    // Weeks are left out: "14d" reads better than "2w" in timelines.
    for (name, unit_ms) in UNITS.iter().skip(1) {
        if remaining_ms >= *unit_ms {
            out.push_str(&format!("{}{name}", remaining_ms / unit_ms));
            remaining_ms %= unit_ms;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_durations() {
        let cases = [
            ("90s", 90_000),
            ("1h30m", 5_400_000),
            ("14d", 14 * 86_400_000),
            ("2w", 14 * 86_400_000),
            ("500ms", 500),
            ("1m30s250ms", 90_250),
            ("0s", 0),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_with_position() {
        let cases = [
            ("", 0),
            ("90", 2),
            ("h", 0),
            ("5x", 1),
            ("30m1h", 4),
            ("1h1h", 3),
            ("1h 30m", 2),
            ("99999999999999999999s", 0),
        ];
        for (text, position) in cases {
            let e = parse_duration(text).unwrap_err();
            assert_eq!(e.position, position, "{text}: {e}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["1h30m", "14d", "90s", "6s", "1d1h1m1s1ms"] {
            let d = parse_duration(text).unwrap();
            let formatted = format_duration(d);
            assert_eq!(parse_duration(&formatted).unwrap(), d);
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
