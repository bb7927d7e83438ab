//! Chaos control: faults a scenario or a person switches on at run time, applied at the top of
//! every `keyvault.v1.KeyVault` call (not to ChaosControl itself, nor to health or identity).
//!
//! Modes, each shaped like the real failure it imitates:
//! - `up`: no fault.
//! - `down`: the call fails at once with UNAVAILABLE "connection refused", as a refused TCP
//!   connection does (no Azure body: nothing answered).
//! - `blackhole`: the call hangs until the caller's deadline (`grpc-timeout`), at most
//!   [`BLACKHOLE_HOLD_MAX`] of simulated time, then fails with DEADLINE_EXCEEDED.
//! - `error_rate`: each call fails with 503 with the given probability, drawn from a seeded
//!   stream so the same seed fails the same calls.
//! - `throttle`: every call gets 429 (RESOURCE_EXHAUSTED) with `retry-after` metadata.
//!
//! Added latency applies in every mode and sleeps on the simulation clock, never the wall clock.
//! The decision ([`ChaosSettings::decide`]) is a pure function of the settings and a random
//! draw; only [`Chaos::gate`] sleeps.

use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;

use cmksim_sim::{Clock, RandomSource};

use crate::errors::KvError;

/// Longest a blackholed call is held (simulated time).
pub const BLACKHOLE_HOLD_MAX: Duration = Duration::from_secs(10 * 60);
/// Longest added latency accepted (simulated time).
pub const ADDED_LATENCY_MAX_MS: u64 = 10 * 60 * 1000;
/// Largest retry-after accepted.
pub const RETRY_AFTER_MAX_SECONDS: u32 = 3_600;

/// The chaos modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChaosMode {
    Up,
    Down,
    Blackhole,
    ErrorRate,
    Throttle,
}

impl ChaosMode {
    /// Its name in events.
    pub fn as_str(self) -> &'static str {
        match self {
            ChaosMode::Up => "up",
            ChaosMode::Down => "down",
            ChaosMode::Blackhole => "blackhole",
            ChaosMode::ErrorRate => "error_rate",
            ChaosMode::Throttle => "throttle",
        }
    }
}

/// The current fault settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChaosSettings {
    pub mode: ChaosMode,
    pub error_rate: f64,
    pub retry_after_seconds: u32,
    pub added_latency_ms: u64,
}

impl Default for ChaosSettings {
    fn default() -> Self {
        ChaosSettings {
            mode: ChaosMode::Up,
            error_rate: 0.0,
            retry_after_seconds: 0,
            added_latency_ms: 0,
        }
    }
}

/// What the gate does with a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Refuse,
    Hold,
    /// 503.
    Fail(),
    Throttle {
        retry_after_seconds: u32,
    },
}

impl ChaosSettings {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) || self.error_rate.is_nan() {
            return Err(format!(
                "error_rate must be in [0, 1], got {}",
                self.error_rate
            ));
        }
        if self.added_latency_ms > ADDED_LATENCY_MAX_MS {
            return Err(format!(
                "added_latency_ms must be at most {ADDED_LATENCY_MAX_MS}"
            ));
        }
        if self.retry_after_seconds > RETRY_AFTER_MAX_SECONDS {
            return Err(format!(
                "retry_after_seconds must be at most {RETRY_AFTER_MAX_SECONDS}"
            ));
        }
        Ok(())
    }

    /// The verdict for one call, given a uniform draw in [0, 1).
    pub fn decide(&self, draw: f64) -> Verdict {
        match self.mode {
            ChaosMode::Up => Verdict::Pass,
            ChaosMode::Down => Verdict::Refuse,
            ChaosMode::Blackhole => Verdict::Hold,
            ChaosMode::ErrorRate if draw < self.error_rate => Verdict::Fail(),
            ChaosMode::ErrorRate => Verdict::Pass,
            ChaosMode::Throttle => Verdict::Throttle {
                retry_after_seconds: self.retry_after_seconds.max(1),
            },
        }
    }
}

/// Why the gate stopped a call.
#[derive(Debug)]
pub enum GateError {
    /// Connection refused: no Azure body.
    Refused,
    /// Held until the deadline.
    DeadlineExceeded,
    /// An Azure error (503, 429).
    Azure(KvError),
}

/// The live chaos control.
pub struct Chaos {
    settings: Mutex<ChaosSettings>,
    rng: Mutex<RandomSource>,
    clock: Clock,
}

impl std::fmt::Debug for Chaos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chaos")
            .field("settings", &self.settings())
            .finish()
    }
}

impl Chaos {
    /// A control starting in `up`, drawing from `rng`.
    pub fn new(clock: Clock, rng: RandomSource) -> Chaos {
        Chaos {
            settings: Mutex::new(ChaosSettings::default()),
            rng: Mutex::new(rng),
            clock,
        }
    }

    /// The current settings.
    pub fn settings(&self) -> ChaosSettings {
        *self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the settings (validated).
    pub fn set(&self, settings: ChaosSettings) -> Result<(), String> {
        settings.validate()?;
        *self.settings.lock().unwrap_or_else(|p| p.into_inner()) = settings;
        Ok(())
    }

    /// Applies the current settings to one call; `deadline` is the caller's remaining time
    /// (real/tokio time, from `grpc-timeout`).
    pub async fn gate(&self, deadline: Option<Duration>) -> Result<(), GateError> {
        let settings = self.settings();
        if settings.added_latency_ms > 0 {
            self.clock
                .sleep(Duration::from_millis(settings.added_latency_ms))
                .await;
        }
        let draw = if settings.mode == ChaosMode::ErrorRate {
            self.rng
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .gen::<f64>()
        } else {
            0.0
        };
        match settings.decide(draw) {
            Verdict::Pass => Ok(()),
            Verdict::Refuse => Err(GateError::Refused),
            Verdict::Hold => {
                let hold_max = self.clock.to_real(BLACKHOLE_HOLD_MAX);
                tokio::time::sleep(deadline.map_or(hold_max, |d| d.min(hold_max))).await;
                Err(GateError::DeadlineExceeded)
            }
            Verdict::Fail() => Err(GateError::Azure(KvError::ServiceUnavailable)),
            Verdict::Throttle {
                retry_after_seconds,
            } => Err(GateError::Azure(KvError::Throttled {
                retry_after_seconds,
            })),
        }
    }
}

/// An HSM fault as `ChaosControl.SetHsmFault` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HsmFaultMode {
    Ok,
    DeviceError,
    Latency(Duration),
    Tamper,
}

impl HsmFaultMode {
    /// Parses `mode` ("ok", "device-error", "latency", "tamper"; `_` is accepted for `-`) with
    /// its latency (only for "latency", at most [`ADDED_LATENCY_MAX_MS`]).
    pub fn parse(mode: &str, latency_ms: u64) -> Result<HsmFaultMode, String> {
        let mode = mode.trim().to_ascii_lowercase().replace('_', "-");
        if mode != "latency" && latency_ms != 0 {
            return Err(format!(
                "latency_ms goes with mode \"latency\", not {mode:?}"
            ));
        }
        match mode.as_str() {
            "ok" | "" => Ok(HsmFaultMode::Ok),
            "device-error" => Ok(HsmFaultMode::DeviceError),
            "tamper" => Ok(HsmFaultMode::Tamper),
            "latency" if latency_ms == 0 => Err("mode \"latency\" needs latency_ms > 0".into()),
            "latency" if latency_ms > ADDED_LATENCY_MAX_MS => {
                Err(format!("latency_ms must be at most {ADDED_LATENCY_MAX_MS}"))
            }
            "latency" => Ok(HsmFaultMode::Latency(Duration::from_millis(latency_ms))),
            other => Err(format!(
                "unknown HSM fault mode {other:?} (ok, device-error, latency, tamper)"
            )),
        }
    }
}

/// Parses a `grpc-timeout` header value (e.g. `5S`, `100m`, `250000u`).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_follow_the_mode() {
        let mut s = ChaosSettings::default();
        assert_eq!(s.decide(0.0), Verdict::Pass);
        s.mode = ChaosMode::ErrorRate;
        s.error_rate = 0.25;
        assert_eq!(s.decide(0.2), Verdict::Fail());
        assert_eq!(s.decide(0.3), Verdict::Pass);
        s.mode = ChaosMode::Throttle;
        s.retry_after_seconds = 7;
        assert_eq!(
            s.decide(0.0),
            Verdict::Throttle {
                retry_after_seconds: 7
            }
        );
        s.error_rate = 1.5;
        assert!(s.validate().is_err());
    }

    #[test]
    fn hsm_fault_modes_parse() {
        assert_eq!(HsmFaultMode::parse("ok", 0), Ok(HsmFaultMode::Ok));
        assert_eq!(
            HsmFaultMode::parse("device-error", 0),
            Ok(HsmFaultMode::DeviceError)
        );
        assert_eq!(
            HsmFaultMode::parse("device_error", 0),
            Ok(HsmFaultMode::DeviceError)
        );
        assert_eq!(HsmFaultMode::parse("tamper", 0), Ok(HsmFaultMode::Tamper));
        assert_eq!(
            HsmFaultMode::parse("latency", 250),
            Ok(HsmFaultMode::Latency(Duration::from_millis(250)))
        );
        assert!(HsmFaultMode::parse("latency", 0).is_err());
        assert!(HsmFaultMode::parse("latency", ADDED_LATENCY_MAX_MS + 1).is_err());
        assert!(HsmFaultMode::parse("tamper", 5).is_err());
        assert!(HsmFaultMode::parse("melt", 0).is_err());
    }

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("x"), None);
    }
}
