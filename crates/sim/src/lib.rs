//! The simulation core every cmksim service is built on.
//!
//! The simulator promises that the same scenario and seed give the same event log byte for byte,
//! and that the same code runs in simulated time (days in seconds) and live. Both promises rest on
//! this crate being the only place that knows where time and randomness come from:
//!
//! - [`time`]: [`SimTime`] (a point in simulated time) and the [`Clock`] that produces it, either
//!   from tokio's (possibly virtual) clock or, in live mode only, from the wall clock, scaled.
//! - [`rng`]: one root seed and an independent, named stream per component ([`SeedTree`]), so that
//!   adding a component never shifts another's random choices.
//! - [`ids`]: GUIDs and 32-hex key versions drawn from those streams.
//! - [`dcr`]: the rules of data collection rules, shared by the HTTPS door and `validate`.
//! - [`durable`]: the one flush that makes a service's acknowledged write durable, deferred to
//!   the databases' close on a simulated world's thread.
//! - [`duration`]: "90s", "1h30m", "14d" parsing with precise errors, and the inverse formatting.
//! - [`event`]: the typed event log that narration, reports and the oracle all read.
//! - [`net`]: one network code path: real TCP live, turmoil's simulated TCP in simulation.
//! - [`profile`]: the behaviour profiles of `sim-config/` (every timing and limit, by name).
//! - [`governance`]: the profile sections of Customer Lockbox, BYOS and the bill.
//! - [`rules`]: the rules a service applies to what it creates (names, regions, capacity, key
//!   facts), shared with `cmksim validate` so both refuse the same files.
//! - [`text`]: user input echoed into error messages, cut to a stated length.

#![forbid(unsafe_code)]

pub mod dcr;
pub mod durable;
pub mod duration;
pub mod event;
pub mod governance;
pub mod ids;
pub mod lru;
pub mod net;
pub mod profile;
pub mod rng;
pub mod rules;
pub mod text;
pub mod time;

pub use duration::{format_duration, parse_duration, DurationParseError};
pub use event::{Event, EventKind, EventLog};
pub use profile::Profile;
pub use rng::{RandomSource, SeedTree};
pub use time::{Clock, SimTime};
