//! A service's event log over gRPC.
//!
//! In simulated time every service records into one in-process [`EventLog`], and the oracle reads
//! it when the run ends. Live services are separate processes, each with its own log; so each
//! hosts the `events.v1.Events` service ([`server`]), and `cmksim run --live` follows the three
//! of them ([`follow`]) into one log of its own, from which the same oracle judges the run.
//!
//! Both ends live here so that the protocol's one subtlety is in one place: a stream ends when
//! its reader falls behind or the process restarts, and the follower resumes from the last seq
//! it saw, or from the start of a new process's log (a restarted process numbers from 1 again,
//! which the `instance` of its clock tells).

#![forbid(unsafe_code)]

pub mod follow;
pub mod server;

pub use follow::{follow, Follower, FollowerProgress};
pub use server::{events_service, EventsService};
