//! Calendar arithmetic for `datetime` and `timespan`, without a clock.
//!
//! Datetimes are Unix milliseconds (UTC) and timespans milliseconds, so the evaluator never
//! needs a date library: the conversions between a civil date and a day number are Howard
//! Hinnant's `days_from_civil` / `civil_from_days`, exact over the proleptic Gregorian calendar.
//! Nothing here reads the time: "now" is always an argument of the caller.

/// Milliseconds in a second, minute, hour and day.
pub(crate) const MS_PER_SECOND: i64 = 1_000;
pub(crate) const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
pub(crate) const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
pub(crate) const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

/// Years a datetime literal may name: Kusto's datetime range is years 1 to 9999.
const YEAR_MIN: i64 = 1;
const YEAR_MAX: i64 = 9999;

/// Days since 1970-01-01 of the civil date `y-m-d` (m in 1..=12, d in 1..=31).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(y, m, d)` of a day number since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Reads `n` ASCII digits at `*pos`, advancing it.
fn digits(b: &[u8], pos: &mut usize, n: usize) -> Option<i64> {
    let s = b.get(*pos..*pos + n)?;
    if !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    *pos += n;
    Some(s.iter().fold(0, |acc, d| acc * 10 + i64::from(d - b'0')))
}

/// Parses the text of a `datetime(...)` literal or a `todatetime()` string: ISO 8601
/// `YYYY-MM-DD`, optionally followed by `T` or a space and `hh:mm[:ss[.fraction]]`, optionally
/// by `Z` or an offset `±hh:mm`. Fractions beyond milliseconds are truncated (the cell keeps ms).
/// Returns Unix milliseconds, or `None` when the text is not such a datetime.
pub fn parse_datetime(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    let mut pos = 0;
    let y = digits(b, &mut pos, 4)?;
    if b.get(pos) != Some(&b'-') {
        return None;
    }
    pos += 1;
    let m = digits(b, &mut pos, 2)?;
    if b.get(pos) != Some(&b'-') {
        return None;
    }
    pos += 1;
    let d = digits(b, &mut pos, 2)?;
    if !(YEAR_MIN..=YEAR_MAX).contains(&y) || !(1..=12).contains(&m) {
        return None;
    }
    if d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let mut ms = days_from_civil(y, m, d) * MS_PER_DAY;
    if matches!(b.get(pos), Some(b'T') | Some(b' ')) {
        pos += 1;
        let hh = digits(b, &mut pos, 2)?;
        if b.get(pos) != Some(&b':') {
            return None;
        }
        pos += 1;
        let mm = digits(b, &mut pos, 2)?;
        let mut ss = 0;
        let mut frac_ms = 0;
        if b.get(pos) == Some(&b':') {
            pos += 1;
            ss = digits(b, &mut pos, 2)?;
            if b.get(pos) == Some(&b'.') {
                pos += 1;
                let start = pos;
                let mut scale = 100;
                while let Some(c) = b.get(pos).filter(|c| c.is_ascii_digit()) {
                    frac_ms += i64::from(c - b'0') * scale;
                    scale /= 10;
                    pos += 1;
                }
                if pos == start {
                    return None;
                }
            }
        }
        if hh > 23 || mm > 59 || ss > 59 {
            return None;
        }
        ms += hh * MS_PER_HOUR + mm * MS_PER_MINUTE + ss * MS_PER_SECOND + frac_ms;
        match b.get(pos) {
            Some(b'Z') => pos += 1,
            Some(sign @ (b'+' | b'-')) => {
                let sign = if *sign == b'+' { 1 } else { -1 };
                pos += 1;
                let oh = digits(b, &mut pos, 2)?;
                if b.get(pos) == Some(&b':') {
                    pos += 1;
                }
                let om = digits(b, &mut pos, 2)?;
                if oh > 23 || om > 59 {
                    return None;
                }
                ms -= sign * (oh * MS_PER_HOUR + om * MS_PER_MINUTE);
            }
            _ => {}
        }
    }
    (pos == b.len()).then_some(ms)
}

/// Formats Unix milliseconds as Kusto prints a datetime: `2020-07-05T12:00:00Z`, or with seven
/// fraction digits (`2020-07-05T12:00:00.1230000Z`) when the milliseconds are not zero.
pub fn format_datetime(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss, frac) = (
        in_day / MS_PER_HOUR,
        in_day % MS_PER_HOUR / MS_PER_MINUTE,
        in_day % MS_PER_MINUTE / MS_PER_SECOND,
        in_day % MS_PER_SECOND,
    );
    if frac == 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{frac:03}0000Z")
    }
}

/// Formats milliseconds as Kusto prints a timespan: `[-][d.]hh:mm:ss[.fffffff]`
/// (`01:00:00`, `1.00:00:00`, `00:00:00.1000000`).
pub fn format_timespan(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    let day = MS_PER_DAY.unsigned_abs();
    let (days, rest) = (abs / day, abs % day);
    let hour = MS_PER_HOUR.unsigned_abs();
    let minute = MS_PER_MINUTE.unsigned_abs();
    let second = MS_PER_SECOND.unsigned_abs();
    let (hh, mm, ss, frac) = (
        rest / hour,
        rest % hour / minute,
        rest % minute / second,
        rest % second,
    );
    let mut out = String::from(sign);
    if days > 0 {
        out.push_str(&format!("{days}."));
    }
    out.push_str(&format!("{hh:02}:{mm:02}:{ss:02}"));
    if frac > 0 {
        out.push_str(&format!(".{frac:03}0000"));
    }
    out
}

/// The milliseconds of one unit of a timespan literal suffix (`2d`, `1h`, `5m`, `30s`,
/// `100ms`), with Kusto's long spellings; `None` for anything else.
pub(crate) fn timespan_unit_ms(unit: &str) -> Option<f64> {
    Some(match unit {
        "d" | "day" | "days" => MS_PER_DAY as f64,
        "h" | "hr" | "hrs" | "hour" | "hours" => MS_PER_HOUR as f64,
        "m" | "min" | "minute" | "minutes" => MS_PER_MINUTE as f64,
        "s" | "sec" | "second" | "seconds" => MS_PER_SECOND as f64,
        "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1.0,
        "microsecond" | "microseconds" => 0.001,
        "tick" | "ticks" => 0.000_1,
        _ => return None,
    })
}

/// Parses a timespan as `totimespan()` reads a string: `[-][d.]hh:mm[:ss[.fraction]]`
/// (`01:30:00`, `1.00:00:00`) or a literal such as `5m`, `1.5h`. Returns milliseconds.
pub(crate) fn parse_timespan_text(text: &str) -> Option<i64> {
    let t = text.trim();
    let (sign, t) = match t.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, t),
    };
    if let Some(unit_at) = t.find(|c: char| c.is_ascii_alphabetic()) {
        let n: f64 = t[..unit_at].parse().ok()?;
        let ms = n * timespan_unit_ms(&t[unit_at..])?;
        return (ms.is_finite() && ms.abs() < i64::MAX as f64 / 2.0)
            .then(|| sign * ms.round() as i64);
    }
    let (days, clock) = match t.split_once(':') {
        Some((head, _)) => match head.split_once('.') {
            Some((d, _)) => (d.parse::<i64>().ok()?, &t[d.len() + 1..]),
            None => (0, t),
        },
        None => return None,
    };
    let mut parts = clock.split(':');
    let hh: i64 = parts.next()?.parse().ok()?;
    let mm: i64 = parts.next()?.parse().ok()?;
    let (ss, frac_ms) = match parts.next() {
        Some(sec) => match sec.split_once('.') {
            Some((s, f)) => {
                let digits: String = f.chars().chain("000".chars()).take(3).collect();
                (s.parse::<i64>().ok()?, digits.parse::<i64>().ok()?)
            }
            None => (sec.parse::<i64>().ok()?, 0),
        },
        None => (0, 0),
    };
    if parts.next().is_some() || hh > 23 || mm > 59 || ss > 59 || !(0..=10_675_199).contains(&days)
    {
        return None;
    }
    Some(
        sign * (days * MS_PER_DAY
            + hh * MS_PER_HOUR
            + mm * MS_PER_MINUTE
            + ss * MS_PER_SECOND
            + frac_ms),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_dates() {
        let ms = parse_datetime("2020-07-05T12:00:00Z").expect("valid");
        assert_eq!(ms, 1_593_950_400_000);
        assert_eq!(format_datetime(ms), "2020-07-05T12:00:00Z");
        assert_eq!(parse_datetime("2020-07-05"), Some(1_593_907_200_000));
        assert_eq!(
            parse_datetime("2020-07-05 12:00:00.123"),
            Some(1_593_950_400_123)
        );
        assert_eq!(
            format_datetime(1_593_950_400_123),
            "2020-07-05T12:00:00.1230000Z"
        );
        assert_eq!(
            parse_datetime("2020-07-05T14:00:00+02:00"),
            Some(1_593_950_400_000)
        );
        assert_eq!(parse_datetime("2020-02-30"), None);
        assert_eq!(parse_datetime("2020-07-05T25:00"), None);
        assert_eq!(format_datetime(-1), "1969-12-31T23:59:59.9990000Z");
    }

    #[test]
    fn formats_timespans() {
        assert_eq!(format_timespan(MS_PER_HOUR), "01:00:00");
        assert_eq!(
            format_timespan(MS_PER_DAY + 5 * MS_PER_MINUTE),
            "1.00:05:00"
        );
        assert_eq!(format_timespan(-100), "-00:00:00.1000000");
        assert_eq!(
            parse_timespan_text("1.02:00:00"),
            Some(MS_PER_DAY + 2 * MS_PER_HOUR)
        );
        assert_eq!(parse_timespan_text("00:00:01.5"), Some(1_500));
        assert_eq!(parse_timespan_text("-5m"), Some(-5 * MS_PER_MINUTE));
        assert_eq!(parse_timespan_text("x"), None);
    }
}
