//! The events an agent records: every retry, queueing, drop and delivery, with narration.
//!
//! Drops and queueing are aggregated per step and table (one event with a count rather than one
//! per record), which keeps a long outage from flooding the bounded event log while still
//! accounting for every record.

use std::collections::BTreeMap;

use cmksim_sim::{EventKind, SimTime};
use serde::Serialize;

/// An agent event (source `agent/<name>`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum AgentEvent {
    /// A send failed; the agent will retry.
    Retry {
        agent: String,
        workspace: String,
        attempt: u32,
        reason: String,
        records_held: u64,
        next_attempt_at: SimTime,
        /// When the retry period ends and the data is queued (`None` once queueing).
        retry_until: Option<SimTime>,
    },
    /// Records entered the local queue (after `retry_for` of failures, or collected while queueing).
    Queued {
        agent: String,
        workspace: String,
        records: u64,
        queue_records: u64,
        queue_capacity_records: u64,
        why: String,
    },
    /// Records were dropped by the agent.
    Dropped {
        agent: String,
        workspace: String,
        table: String,
        records: u64,
        reason: String,
    },
    /// A batch reached the service; its per-record outcomes as the service reported them.
    Delivered {
        agent: String,
        workspace: String,
        table: String,
        records: u64,
        stored: u64,
        buffered: u64,
        dropped: BTreeMap<String, u64>,
        after_failed_attempts: u32,
    },
}

impl EventKind for AgentEvent {
    fn kind(&self) -> &'static str {
        match self {
            AgentEvent::Retry { .. } => "agent.retry",
            AgentEvent::Queued { .. } => "agent.queued",
            AgentEvent::Dropped { .. } => "agent.dropped",
            AgentEvent::Delivered { .. } => "agent.delivered",
        }
    }

    fn narrate(&self) -> String {
        match self {
            AgentEvent::Retry {
                agent,
                attempt,
                reason,
                records_held,
                next_attempt_at,
                retry_until,
                ..
            } => match retry_until {
                Some(until) => format!(
                    "agent {agent} could not send ({reason}); attempt {attempt} failed, {records_held} records held in the local cache; next try at {next_attempt_at}, queueing after {until}"
                ),
                None => format!(
                    "agent {agent} is queueing and still cannot send ({reason}); attempt {attempt} failed, {records_held} records queued; next try at {next_attempt_at}"
                ),
            },
            AgentEvent::Queued {
                agent,
                records,
                queue_records,
                queue_capacity_records,
                why,
                ..
            } => format!(
                "agent {agent} queued {records} records ({why}); queue holds {queue_records} of {queue_capacity_records}"
            ),
            AgentEvent::Dropped {
                agent,
                table,
                records,
                reason,
                ..
            } => format!("agent {agent} dropped {records} {table} records: {reason}"),
            AgentEvent::Delivered {
                agent,
                workspace,
                table,
                records,
                stored,
                buffered,
                dropped,
                after_failed_attempts,
            } => {
                let dropped_total: u64 = dropped.values().sum();
                let mut text = format!(
                    "agent {agent} delivered {records} {table} records to {workspace}: {stored} stored, {buffered} buffered, {dropped_total} dropped by the service"
                );
                if *after_failed_attempts > 0 {
                    text.push_str(&format!(" (after {after_failed_attempts} failed attempts)"));
                }
                text
            }
        }
    }
}
