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
