//! Facts derived from the event log: when the run started and ended, and the state of each
//! cluster's storage and each key over time.
//!
//! The oracle, the expectations and the report chart all ask the same questions ("what was the
//! state of c1 at T+1h?", "when did k1 become disabled?"). Answering them once, here, from the
//! events alone keeps the three consistent. Everything is ordered (`BTreeMap`, event order), so
//! the answers are deterministic.

use std::collections::BTreeMap;

use cmksim_sim::{Event, SimTime};

use crate::events::{self, cluster_of, str_field};
use crate::model::StorageState;

/// The start and end of a run, from its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunSpan {
    pub start: SimTime,
    pub end: SimTime,
}

impl RunSpan {
    /// Start: the `scenario.started` event, else the first event, else the default epoch.
    /// End: `scenario.finished`, else the last event, else the start.
    pub fn of(events: &[Event]) -> RunSpan {
        let start = events
            .iter()
            .find(|e| e.kind == events::SCENARIO_STARTED)
            .or_else(|| events.first())
            .map(Event::at)
            .unwrap_or(SimTime::DEFAULT_EPOCH);
        let end = events
            .iter()
            .rev()
            .find(|e| e.kind == events::SCENARIO_FINISHED)
            .or_else(|| events.last())
            .map(Event::at)
            .unwrap_or(start)
            .max(start);
        RunSpan { start, end }
    }
}

/// A state held over `[from_ms, until_ms)`, entered by event `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span<S> {
    pub state: S,
    pub from_ms: i64,
    pub until_ms: i64,
    pub seq: u64,
}

/// The storage state spans of every cluster that has `storage.state.*` events.
pub fn storage_spans(events: &[Event], end: SimTime) -> BTreeMap<String, Vec<Span<StorageState>>> {
    let mut out: BTreeMap<String, Vec<Span<StorageState>>> = BTreeMap::new();
    for e in events {
        let (Some(state), Some(cluster)) = (events::storage_state(e), cluster_of(e)) else {
            continue;
        };
        let spans = out.entry(cluster.to_string()).or_default();
        if let Some(last) = spans.last_mut() {
            last.until_ms = e.at_ms;
        }
        spans.push(Span {
            state,
            from_ms: e.at_ms,
            until_ms: end.0.max(e.at_ms),
            seq: e.seq,
        });
    }
    // Drop zero-length spans left by two transitions at the same instant, keeping the last.
    for spans in out.values_mut() {
        let mut kept: Vec<Span<StorageState>> = Vec::with_capacity(spans.len());
        for s in spans.drain(..) {
            if kept.last().is_some_and(|k| k.from_ms == s.from_ms) {
                kept.pop();
            }
            kept.push(s);
        }
        *spans = kept;
    }
    out
}

/// The last `storage.state.*` event of `cluster` at or before `at`.
pub fn state_event_at<'e>(events: &'e [Event], cluster: &str, at: SimTime) -> Option<&'e Event> {
    events.iter().rev().find(|e| {
        e.at_ms <= at.0 && cluster_of(e) == Some(cluster) && events::storage_state(e).is_some()
    })
}

/// The storage state of `cluster` at `at`.
pub fn state_at(events: &[Event], cluster: &str, at: SimTime) -> Option<StorageState> {
    state_event_at(events, cluster, at).and_then(events::storage_state)
}

/// The state of a key (all its versions, as a whole, following its newest version).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyState {
    Enabled,
    Disabled,
    Deleted,
    Purged,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "enabled",
            KeyState::Disabled => "disabled",
            KeyState::Deleted => "deleted",
            KeyState::Purged => "purged",
        }
    }
}

/// Versions of each key (`vault/key` → versions in creation order), from created/rotated events.
pub fn key_versions(events: &[Event], until: SimTime) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.at_ms <= until.0) {
        if e.kind == events::KEY_CREATED || e.kind == events::KEY_ROTATED {
            if let (Some(vault), Some(key)) = (str_field(e, "vault"), str_field(e, "key")) {
                let version = str_field(e, "version").unwrap_or("").to_string();
                out.entry(format!("{vault}/{key}"))
                    .or_default()
                    .push(version);
            }
        }
    }
    out
}

/// True when `e` can change a state that [`key_spans`] or [`storage_spans`] reports (the kinds
/// their matches act on): a reader that keeps only these events gets the same current states
/// from them as from the whole log (the live dashboard does, to avoid copying the log at every
/// frame). Keep in step with the two functions' matches.
pub fn changes_state(e: &Event) -> bool {
    events::storage_state(e).is_some()
        || matches!(
            e.kind.as_str(),
            events::KEY_CREATED
                | events::KEY_ROTATED
                | events::KEY_ENABLED
                | events::KEY_DISABLED
                | events::KEY_DELETED
                | events::KEY_RECOVERED
                | events::KEY_PURGED
                | events::VAULT_DELETED
                | events::VAULT_RECOVERED
                | events::VAULT_PURGED
        )
}

/// Key state spans per `vault/key`. Enabling or disabling an older version shows as an event
/// marker in the report but does not change the key's lane, which follows the newest version.
pub fn key_spans(events: &[Event], end: SimTime) -> BTreeMap<String, Vec<Span<KeyState>>> {
    let mut out: BTreeMap<String, Vec<Span<KeyState>>> = BTreeMap::new();
    let mut latest: BTreeMap<String, String> = BTreeMap::new();
    let mut before_delete: BTreeMap<String, KeyState> = BTreeMap::new();
    let mut vault_keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events {
        let Some(vault) = str_field(e, "vault") else {
            continue;
        };
        let mut targets: Vec<String> = Vec::new();
        let key = str_field(e, "key");
        let name = key.map(|k| format!("{vault}/{k}"));
        let current = |out: &BTreeMap<String, Vec<Span<KeyState>>>, n: &str| {
            out.get(n).and_then(|s| s.last()).map(|s| s.state)
        };
        let new_state = match (e.kind.as_str(), &name) {
            (events::KEY_CREATED | events::KEY_ROTATED, Some(n)) => {
                latest.insert(n.clone(), str_field(e, "version").unwrap_or("").to_string());
                let keys = vault_keys.entry(vault.to_string()).or_default();
                if !keys.contains(n) {
                    keys.push(n.clone());
                }
                targets.push(n.clone());
                Some(KeyState::Enabled)
            }
            (events::KEY_ENABLED | events::KEY_DISABLED, Some(n)) => {
                let version = str_field(e, "version").unwrap_or("");
                let newest = latest.get(n).map(String::as_str).unwrap_or("");
                if version.is_empty() || version == newest {
                    targets.push(n.clone());
                }
                Some(if e.kind == events::KEY_ENABLED {
                    KeyState::Enabled
                } else {
                    KeyState::Disabled
                })
            }
            (events::KEY_DELETED, Some(n)) => {
                if let Some(s) = current(&out, n) {
                    before_delete.insert(n.clone(), s);
                }
                targets.push(n.clone());
                Some(KeyState::Deleted)
            }
            (events::KEY_RECOVERED, Some(n)) => {
                targets.push(n.clone());
                Some(before_delete.get(n).copied().unwrap_or(KeyState::Enabled))
            }
            (events::KEY_PURGED, Some(n)) => {
                targets.push(n.clone());
                Some(KeyState::Purged)
            }
            (events::VAULT_DELETED | events::VAULT_RECOVERED | events::VAULT_PURGED, None) => {
                // A vault's fate is its keys' fate.
                for n in vault_keys.get(vault).cloned().unwrap_or_default() {
                    if e.kind == events::VAULT_DELETED {
                        if let Some(s) = current(&out, &n) {
                            before_delete.insert(n.clone(), s);
                        }
                    }
                    targets.push(n);
                }
                None
            }
            _ => None,
        };
        for n in targets {
            let state = match (new_state, e.kind.as_str()) {
                (Some(s), _) => s,
                (None, events::VAULT_DELETED) => KeyState::Deleted,
                (None, events::VAULT_PURGED) => KeyState::Purged,
                (None, _) => before_delete.get(&n).copied().unwrap_or(KeyState::Enabled),
            };
            let spans = out.entry(n).or_default();
            if spans.last().is_some_and(|s| s.state == state) {
                continue;
            }
            if let Some(last) = spans.last_mut() {
                last.until_ms = e.at_ms;
            }
            spans.push(Span {
                state,
                from_ms: e.at_ms,
                until_ms: end.0.max(e.at_ms),
                seq: e.seq,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Emit;
    use cmksim_sim::EventLog;

    #[test]
    fn storage_spans_follow_transitions() {
        let log = EventLog::new(100);
        let emit = Emit { log: &log };
        let t = |m: i64| SimTime(m * 60_000);
        emit.started(t(0), "s", 1, "azure-2020", 0);
        emit.state(t(0), "c1", None, StorageState::Healthy, "start");
        emit.state(
            t(60),
            "c1",
            Some(StorageState::Healthy),
            StorageState::Revoked,
            "403",
        );
        emit.state(
            t(150),
            "c1",
            Some(StorageState::Revoked),
            StorageState::Resuming,
            "ok",
        );
        let events = log.snapshot();
        let spans = storage_spans(&events, t(240));
        let c1 = &spans["c1"];
        assert_eq!(c1.len(), 3);
        assert_eq!(
            (c1[1].state, c1[1].from_ms, c1[1].until_ms),
            (StorageState::Revoked, t(60).0, t(150).0)
        );
        assert_eq!(c1[2].until_ms, t(240).0);
        assert_eq!(state_at(&events, "c1", t(59)), Some(StorageState::Healthy));
        assert_eq!(state_at(&events, "c1", t(60)), Some(StorageState::Revoked));
        assert_eq!(state_at(&events, "c2", t(60)), None);
    }

    /// The last state of every lane, as the live dashboard shows it.
    fn last_states(events: &[Event]) -> Vec<String> {
        let end = events.last().map(|e| e.at()).unwrap_or(SimTime(0));
        let keys = key_spans(events, end)
            .into_iter()
            .map(|(k, s)| format!("{k} {:?}", s.last().map(|s| s.state)));
        let storages = storage_spans(events, end)
            .into_iter()
            .map(|(c, s)| format!("{c} {:?}", s.last().map(|s| s.state)));
        keys.chain(storages).collect()
    }

    #[test]
    fn the_events_that_change_a_state_give_the_same_states_as_the_whole_log() {
        let log = EventLog::new(1000);
        let emit = Emit { log: &log };
        let t = |m: i64| SimTime(m * 60_000);
        let noise = |at: SimTime| {
            // A poll names the vault and the key but changes no lane.
            log.record_raw(
                at,
                "storage/c1",
                "storage.poll.succeeded",
                "poll".into(),
                serde_json::json!({"cluster": "c1", "vault": "kv", "key": "k"}),
            );
        };
        emit.key(t(0), events::KEY_CREATED, "kv", "k", "v1");
        emit.state(t(0), "c1", None, StorageState::Healthy, "start");
        noise(t(5));
        emit.key(t(10), events::KEY_ROTATED, "kv", "k", "v2");
        emit.key(t(20), events::KEY_DISABLED, "kv", "k", "v1");
        noise(t(25));
        emit.key(t(30), events::KEY_DISABLED, "kv", "k", "v2");
        emit.state(
            t(31),
            "c1",
            Some(StorageState::Healthy),
            StorageState::Revoked,
            "403",
        );
        noise(t(35));
        emit.key(t(40), events::KEY_DELETED, "kv", "k", "");
        emit.key(t(50), events::KEY_RECOVERED, "kv", "k", "");
        noise(t(55));
        let events = log.snapshot();
        assert!(
            events.iter().any(|e| !changes_state(e)),
            "the test has noise"
        );
        for n in 1..=events.len() {
            let kept: Vec<Event> = events[..n]
                .iter()
                .filter(|e| changes_state(e))
                .cloned()
                .collect();
            assert_eq!(
                last_states(&kept),
                last_states(&events[..n]),
                "after {n} events"
            );
        }
    }

    #[test]
    fn key_spans_follow_the_newest_version() {
        let log = EventLog::new(100);
        let emit = Emit { log: &log };
        let t = |m: i64| SimTime(m * 60_000);
        emit.key(t(0), events::KEY_CREATED, "kv", "k", "v1");
        emit.key(t(10), events::KEY_ROTATED, "kv", "k", "v2");
        emit.key(t(20), events::KEY_DISABLED, "kv", "k", "v1"); // old version: lane unchanged
        emit.key(t(30), events::KEY_DISABLED, "kv", "k", "v2");
        emit.key(t(40), events::KEY_DELETED, "kv", "k", "");
        emit.key(t(50), events::KEY_RECOVERED, "kv", "k", "");
        let events = log.snapshot();
        let spans = key_spans(&events, t(60));
        let states: Vec<KeyState> = spans["kv/k"].iter().map(|s| s.state).collect();
        assert_eq!(
            states,
            vec![
                KeyState::Enabled,
                KeyState::Disabled,
                KeyState::Deleted,
                KeyState::Disabled
            ]
        );
        assert_eq!(key_versions(&events, t(60))["kv/k"], vec!["v1", "v2"]);
    }
}
