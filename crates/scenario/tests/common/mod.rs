//! A hand-built event log of the flagship scenario, shared by the oracle and report tests.
#![allow(dead_code)]

pub mod diagnostics;

use std::time::Duration;

use cmksim_scenario::events::{self, reason, Emit};
use cmksim_scenario::model::StorageState::*;
use cmksim_sim::{Event, EventLog, SimTime};

pub const START: SimTime = SimTime::DEFAULT_EPOCH;

pub fn m(minutes: f64) -> SimTime {
    START.add(Duration::from_secs_f64(minutes * 60.0))
}

/// Knobs of a simulated flagship run (minutes).
pub struct Run {
    pub revoke_after: f64,
    pub resume_after: f64,
}

pub const CLUSTER: &str = "contosologs";

/// A plausible event log of scenarios/revocation.toml.
pub fn flagship(run: Run) -> Vec<Event> {
    let log = EventLog::new(100_000);
    let e = Emit { log: &log };
    e.started(START, "revocation", 7, "azure-2020", 4 * 3_600_000);
    e.key(
        START,
        events::KEY_CREATED,
        "contoso-kv",
        "logs-cmk",
        "v1hex",
    );
    e.policy(
        START,
        events::POLICY_SET,
        "contoso-kv",
        "cluster:contosologs",
        &["get", "wrapKey", "unwrapKey"],
    );
    e.state(START, CLUSTER, None, Healthy, "provisioned with CMK");
    e.narrate(START, "#1", "The cluster is healthy.");
    e.fault(m(20.0), "#9", "keyvault latency 2s", false);
    e.restored(m(25.0), "#9", "keyvault up");
    let revoked_at = 60.0 + run.revoke_after;
    let back_at = 150.5;
    let healthy_at = back_at + run.resume_after;
    let state_at = |t: f64| {
        if t < revoked_at {
            Healthy
        } else if t < back_at {
            Revoked
        } else if t < healthy_at {
            Resuming
        } else {
            Healthy
        }
    };
    let mut current = Healthy;
    let mut minute = 0.5;
    while minute <= 240.0 {
        // Steps at their planned offsets.
        if minute == 60.0 {
            e.step(m(60.0), "disable-key", 2, "update-key");
            e.key(m(60.0), events::KEY_DISABLED, "contoso-kv", "logs-cmk", "");
            e.step_ok(m(60.0), "disable-key", "update-key");
        }
        if minute == 120.0 {
            e.step(m(120.0), "query-while-revoked", 3, "query");
            e.query_failed(m(120.0), "ws-ops", reason::REVOKED);
        }
        if minute == 135.0 {
            e.query_failed(m(135.0), "ws-sec", reason::REVOKED);
        }
        if minute == 150.0 {
            e.step(m(150.0), "enable-key", 4, "update-key");
            e.key(m(150.0), events::KEY_ENABLED, "contoso-kv", "logs-cmk", "");
        }
        if minute == 225.0 {
            e.query_ok(m(225.0), "ws-ops", 180, &["ws-ops"]);
        }
        let state = state_at(minute);
        let poll = if state == Revoked {
            events::POLL_DENIED
        } else {
            events::POLL_OK
        };
        e.poll(
            m(minute),
            CLUSTER,
            poll,
            if state == Revoked { "KeyDisabled" } else { "" },
        );
        if state != current {
            e.state(m(minute), CLUSTER, Some(current), state, "poll");
            current = state;
        }
        if minute.fract() == 0.0 {
            for ws in ["ws-ops", "ws-sec"] {
                if state == Healthy {
                    e.batch(m(minute), ws, "Heartbeat", (1, 0, 0), None);
                } else {
                    e.batch(m(minute), ws, "Heartbeat", (0, 0, 1), Some(reason::REVOKED));
                }
            }
        }
        minute += 0.5;
    }
    log.record_raw(
        m(240.0),
        "scenario",
        events::SCENARIO_FINISHED,
        "done".into(),
        serde_json::json!({}),
    );
    log.snapshot()
}
