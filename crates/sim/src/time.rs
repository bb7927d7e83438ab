//! Simulated time.
//!
//! [`SimTime`] is a point in simulated time, in milliseconds since the Unix epoch: domain logic
//! receives it as an argument and never asks for the time itself, which is what makes every
//! state machine testable without waiting. [`Clock`] is the one producer of `SimTime` for running
//! services. In simulation it reads tokio's clock (virtual under turmoil or `tokio::time::pause`),
//! multiplied by a scale; in live mode it may read the wall clock, scaled from a shared epoch so
//! that separate processes agree on the simulated time. No other code reads a system clock.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point in simulated time: milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SimTime(pub i64);

impl SimTime {
    /// 2020-07-05T00:00:00Z, the date of the 2020 CMK document; the default scenario epoch.
    pub const DEFAULT_EPOCH: SimTime = SimTime(1_593_907_200_000);

    /// Milliseconds since the Unix epoch.
    pub fn unix_ms(self) -> i64 {
        self.0
    }

    /// This time plus a duration (saturating). A method rather than `ops::Add` because it
    /// saturates instead of overflowing, and callers across the workspace use it by name.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, duration: Duration) -> SimTime {
        SimTime(self.0.saturating_add(duration_ms(duration)))
    }

    /// This time minus a duration (saturating).
    #[allow(clippy::should_implement_trait)]
    pub fn sub(self, duration: Duration) -> SimTime {
        SimTime(self.0.saturating_sub(duration_ms(duration)))
    }

    /// The duration from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: SimTime) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    /// RFC 3339 in UTC with millisecond precision, e.g. `2020-07-05T01:02:03.004Z`.
    pub fn to_rfc3339(self) -> String {
        let total_ms = self.0;
        let days = total_ms.div_euclid(86_400_000);
        let ms_of_day = total_ms.rem_euclid(86_400_000);
        let (year, month, day) = civil_from_days(days);
        let hours = ms_of_day / 3_600_000;
        let minutes = (ms_of_day / 60_000) % 60;
        let seconds = (ms_of_day / 1000) % 60;
        let millis = ms_of_day % 1000;
        format!("{year:04}-{month:02}-{day:02}T{hours:02}:{minutes:02}:{seconds:02}.{millis:03}Z")
    }

    /// Parses RFC 3339 / ISO 8601 as Azure APIs send it: `2020-07-05T01:02:03Z`, with an optional
    /// fraction (to any number of digits; kept to the millisecond, truncated), `Z` or an offset
    /// `±hh:mm`, a space instead of `T`, or a date alone (`2020-07-05`, midnight UTC). A date-time
    /// without a zone is taken as UTC (Azure does the same). The error says what was expected.
    pub fn parse_rfc3339(text: &str) -> Result<SimTime, String> {
        let bytes = text.trim().as_bytes();
        let digits = |at: usize, n: usize| -> Result<i64, String> {
            let part = bytes
                .get(at..at + n)
                .filter(|p| p.iter().all(u8::is_ascii_digit))
                .ok_or_else(|| format!("expected {n} digits at character {}", at + 1))?;
            Ok(part.iter().fold(0i64, |v, d| v * 10 + i64::from(d - b'0')))
        };
        let expect = |at: usize, what: &[u8]| -> Result<(), String> {
            match bytes.get(at) {
                Some(b) if what.contains(b) => Ok(()),
                _ => Err(format!(
                    "expected '{}' at character {}",
                    String::from_utf8_lossy(what),
                    at + 1
                )),
            }
        };
        let year = digits(0, 4)?;
        expect(4, b"-")?;
        let month = digits(5, 2)?;
        expect(7, b"-")?;
        let day = digits(8, 2)?;
        if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
            return Err(format!("{year:04}-{month:02}-{day:02} is not a date"));
        }
        let date_ms = days_from_civil(year, month as u32, day as u32) * 86_400_000;
        if bytes.len() == 10 {
            return Ok(SimTime(date_ms));
        }
        expect(10, b"Tt ")?;
        let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
        expect(13, b":")?;
        expect(16, b":")?;
        if hour > 23 || minute > 59 || second > 60 {
            return Err(format!(
                "{hour:02}:{minute:02}:{second:02} is not a time of day"
            ));
        }
        let mut at = 19;
        let mut millis = 0i64;
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            let start = at;
            while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                if at - start < 3 {
                    millis = millis * 10 + i64::from(bytes[at] - b'0');
                }
                at += 1;
            }
            if at == start {
                return Err(format!(
                    "expected digits after '.' at character {}",
                    start + 1
                ));
            }
            for _ in (at - start)..3 {
                millis *= 10;
            }
        }
        let offset_ms = match bytes.get(at) {
            None => 0,
            Some(b'Z' | b'z') if at + 1 == bytes.len() => 0,
            Some(sign @ (b'+' | b'-')) if at + 6 == bytes.len() => {
                expect(at + 3, b":")?;
                let minutes = digits(at + 1, 2)? * 60 + digits(at + 4, 2)?;
                let signed = if *sign == b'+' { minutes } else { -minutes };
                signed * 60_000
            }
            _ => {
                return Err(format!(
                    "expected 'Z', an offset like +02:00, or the end at character {}",
                    at + 1
                ))
            }
        };
        let time_ms = ((hour * 60 + minute) * 60 + second) * 1000 + millis;
        Ok(SimTime(date_ms + time_ms - offset_ms))
    }

    /// `T+hh:mm:ss` relative to a scenario start (`T-…` before it); hours may exceed 24.
    pub fn offset_label(self, start: SimTime) -> String {
        let delta_ms = self.0 - start.0;
        let sign = if delta_ms < 0 { '-' } else { '+' };
        let secs = delta_ms.unsigned_abs() / 1000;
        format!(
            "T{sign}{:02}:{:02}:{:02}",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        )
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Where a [`Clock`] reads elapsed time from.
#[derive(Clone, Debug)]
enum Source {
    /// tokio's clock: virtual in simulation (turmoil, `tokio::time::pause`), real otherwise.
    Tokio { origin: tokio::time::Instant },
    /// turmoil's simulation clock: shared by every host of a simulation and unaffected by a
    /// host's crash and restart (a restarted host gets a new tokio runtime, but not a new epoch).
    Turmoil,
    /// The wall clock, for live processes that must agree on simulated time: `epoch` corresponds
    /// to the wall-clock instant `wall_origin_unix_ms`.
    Wall { wall_origin_unix_ms: i64 },
}

/// The only producer of [`SimTime`] for running services: `epoch + elapsed × time_scale`.
#[derive(Clone, Debug)]
pub struct Clock {
    epoch: SimTime,
    time_scale: f64,
    source: Source,
}

impl Clock {
    /// A clock starting at `epoch` now, advancing `time_scale` simulated seconds per tokio second.
    /// Under a paused or simulated tokio runtime, time advances only when the runtime says so.
    ///
    /// # Panics
    /// If `time_scale` is not finite and positive (a programming error: callers validate input).
    pub fn tokio(epoch: SimTime, time_scale: f64) -> Clock {
        assert!(
            time_scale.is_finite() && time_scale > 0.0,
            "time_scale must be > 0"
        );
        Clock {
            epoch,
            time_scale,
            source: Source::Tokio {
                origin: tokio::time::Instant::now(),
            },
        }
    }

    /// A clock for a turmoil host or client: `epoch` at the start of the simulation, advancing
    /// with turmoil's virtual time. Outside a simulation it stays at `epoch`.
    pub fn turmoil(epoch: SimTime) -> Clock {
        Clock {
            epoch,
            time_scale: 1.0,
            source: Source::Turmoil,
        }
    }

    /// A live clock for separate processes: simulated time `epoch` corresponds to the wall-clock
    /// instant `wall_origin_unix_ms`; from there it advances `time_scale` times faster than the
    /// wall clock. Every process given the same pair agrees on the simulated time.
    ///
    /// # Panics
    /// If `time_scale` is not finite and positive.
    pub fn wall(epoch: SimTime, wall_origin_unix_ms: i64, time_scale: f64) -> Clock {
        assert!(
            time_scale.is_finite() && time_scale > 0.0,
            "time_scale must be > 0"
        );
        Clock {
            epoch,
            time_scale,
            source: Source::Wall {
                wall_origin_unix_ms,
            },
        }
    }

    /// The wall clock in Unix milliseconds: used only to build a live [`Clock::wall`].
    pub fn wall_now_unix_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(duration_ms)
            .unwrap_or(0)
    }

    /// Simulated seconds per real (or tokio) second.
    pub fn time_scale(&self) -> f64 {
        self.time_scale
    }

    /// The simulated time at which this clock started.
    pub fn epoch(&self) -> SimTime {
        self.epoch
    }

    /// For a live clock, the wall-clock instant (Unix ms) that counts as the epoch; `None` for
    /// the tokio and turmoil clocks.
    pub fn wall_origin_unix_ms(&self) -> Option<i64> {
        match &self.source {
            Source::Wall {
                wall_origin_unix_ms,
            } => Some(*wall_origin_unix_ms),
            _ => None,
        }
    }

    /// The current simulated time.
    pub fn now(&self) -> SimTime {
        let elapsed_ms = match &self.source {
            Source::Tokio { origin } => origin.elapsed().as_secs_f64() * 1000.0,
            Source::Turmoil => turmoil::sim_elapsed().unwrap_or_default().as_secs_f64() * 1000.0,
            Source::Wall {
                wall_origin_unix_ms,
            } => (Self::wall_now_unix_ms() - wall_origin_unix_ms) as f64,
        };
        SimTime(self.epoch.0 + (elapsed_ms * self.time_scale).round() as i64)
    }

    /// The real (tokio) duration that corresponds to a simulated duration.
    pub fn to_real(&self, simulated: Duration) -> Duration {
        Duration::from_secs_f64(simulated.as_secs_f64() / self.time_scale)
    }

    /// Sleeps for a simulated duration.
    pub async fn sleep(&self, simulated: Duration) {
        tokio::time::sleep(self.to_real(simulated)).await;
    }

    /// Sleeps until a simulated time (returns at once if it has passed).
    pub async fn sleep_until(&self, at: SimTime) {
        let now = self.now();
        if at > now {
            self.sleep(at.since(now)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_what_it_formats_and_the_forms_azure_sends() {
        for ms in [
            0,
            1_593_907_200_000,
            1_593_907_200_123,
            -86_400_001,
            4_102_444_799_999,
        ] {
            let t = SimTime(ms);
            assert_eq!(SimTime::parse_rfc3339(&t.to_rfc3339()), Ok(t));
        }
        let at = |s: &str| SimTime::parse_rfc3339(s).map(|t| t.0);
        assert_eq!(at("2020-07-05"), Ok(1_593_907_200_000));
        assert_eq!(at("2020-07-05T00:00:00Z"), Ok(1_593_907_200_000));
        assert_eq!(at("2020-07-05 00:00:00"), Ok(1_593_907_200_000));
        assert_eq!(
            at("2020-07-05T02:00:00.1234567+02:00"),
            Ok(1_593_907_200_123)
        );
        assert_eq!(at("2020-07-04T23:00:00-01:00"), Ok(1_593_907_200_000));
        for bad in [
            "",
            "2020-7-05",
            "2020-02-30",
            "2020-07-05T25:00:00Z",
            "2020-07-05T00:00:00X",
            "2020-07-05T00:00:00.Z",
            "2020-07-05T00:00",
        ] {
            assert!(at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rfc3339_formats_known_dates() {
        assert_eq!(SimTime(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            SimTime::DEFAULT_EPOCH.to_rfc3339(),
            "2020-07-05T00:00:00.000Z"
        );
        // 2000-02-29 (leap day) 12:34:56.789
        assert_eq!(
            SimTime(951_827_696_789).to_rfc3339(),
            "2000-02-29T12:34:56.789Z"
        );
        assert_eq!(SimTime(-1).to_rfc3339(), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn offset_labels() {
        let start = SimTime(1_000_000);
        assert_eq!(
            start
                .add(Duration::from_secs(3 * 3600 + 10 * 60 + 5))
                .offset_label(start),
            "T+03:10:05"
        );
        assert_eq!(
            start
                .add(Duration::from_secs(30 * 3600))
                .offset_label(start),
            "T+30:00:00"
        );
        assert_eq!(
            start.sub(Duration::from_secs(61)).offset_label(start),
            "T-00:01:01"
        );
    }

    #[test]
    fn since_saturates_at_zero() {
        assert_eq!(SimTime(10).since(SimTime(20)), Duration::ZERO);
        assert_eq!(SimTime(20).since(SimTime(10)), Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_scales_virtual_time() {
        let clock = Clock::tokio(SimTime::DEFAULT_EPOCH, 60.0);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            clock.now(),
            SimTime::DEFAULT_EPOCH.add(Duration::from_secs(120))
        );
        // Sleeping one simulated hour takes one virtual minute.
        let before = tokio::time::Instant::now();
        clock.sleep(Duration::from_secs(3600)).await;
        assert_eq!(before.elapsed(), Duration::from_secs(60));
    }
}
