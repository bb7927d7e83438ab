//! Simulated agents (seed 003): the traffic of every scenario.
//!
//! - [`source`]: what an agent collects: Heartbeat every minute, Perf counters, Windows events or
//!   Syslog messages, at configured rates from a seeded random stream.
//! - [`machine`]: what it does when the service cannot take the data: retry every
//!   `retry_interval` for `retry_for`, then queue up to `queue_capacity_records`, dropping the
//!   `drop_first_table` (Perf) first when full. A pure state machine: time is an argument.
//! - [`events`]: the typed events (`agent.retry`, `agent.queued`, `agent.dropped`,
//!   `agent.delivered`) with their narration.
//! - [`driver`]: the async task that runs source and machine on the simulation [`Clock`] and sends
//!   through the Ingestion gRPC client.
//!
//! [`Clock`]: cmksim_sim::Clock

pub mod driver;
pub mod events;
pub mod machine;
pub mod source;

pub use driver::{AgentDriver, BatchSender, SendError};
pub use events::AgentEvent;
pub use machine::{AgentMachine, AgentPolicy, AgentStats, Attempt, BatchResult, Phase};
pub use source::{AgentConfig, OsType, PerfCounter, RecordSource};
