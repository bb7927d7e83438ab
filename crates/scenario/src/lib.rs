//! Scenario files: the teaching stories cmksim runs, and the judge of every run.
//!
//! A scenario says what the world looks like at T+0 (tenants, vaults, keys, clusters,
//! workspaces), what traffic flows (agents), what happens when (a timeline of management
//! actions and faults, with narration) and what must be seen (expectations). This crate owns
//! everything about scenarios that does not need the running services:
//!
//! - the format: [`raw`] (the TOML shape, with spans) and [`model`] (the validated scenario);
//! - reading it with precise errors: [`parse`], [`validate`] and [`errors`] (`FILE:LINE:COLUMN`);
//! - what a run of it would cost, and the limits it must stay under: [`work`];
//! - the event contract the services emit ([`events`]) and the facts derived from it
//!   ([`history`]: storage and key states over time);
//! - judging a run: [`expect`] (the scenario's expectations) and [`oracle`] (the invariants of
//!   SPEC §8), both pure functions over the event log, producing [`verdict::Verdict`]s with
//!   evidence;
//! - chaos sweeps: [`chaos`] (the `[chaos]` fault space, the seeded draw of a fault schedule,
//!   the scenario it makes, shrinking, the regression file);
//! - showing a run: [`narrate`] (the terminal timeline), [`summary`] (the table and exit code)
//!   and [`report`] (a self-contained HTML page with an SVG swimlane chart).
//!
//! The runner that executes a scenario against the services lives with the CLI; it reads
//! [`model::Scenario::schedule`] and feeds the resulting events back here.

#![forbid(unsafe_code)]

pub mod bill;
pub mod chaos;
pub mod errors;
pub mod events;
pub mod expect;
pub mod history;
pub mod lever;
pub mod limits;
pub mod model;
pub mod narrate;
pub mod oracle;
pub mod parse;
pub mod raw;
pub mod report;
pub mod summary;
pub mod validate;
pub mod verdict;
pub mod work;

pub use errors::{Diagnostic, Diagnostics};
pub use model::Scenario;
pub use validate::{validate_file, validate_str};
pub use verdict::{Evidence, Outcome, Verdict};
