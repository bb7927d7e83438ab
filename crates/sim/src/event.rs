//! The event log: the one record of everything that happens in a run.
//!
//! Every state change anywhere (a key disabled, a poll result, a storage state transition, a batch
//! stored or dropped, an expectation met or missed) is recorded once as an [`Event`]: its
//! simulated time, its source, a kind, a sentence a person can follow, and typed data. The
//! narrated timeline, the JSONL file, the report chart and the oracle all read these same events.
//!
//! Each crate declares its own events as a serde-serialisable enum implementing [`EventKind`], so
//! the domain stays typed while this crate needs to know none of them. Serialisation is
//! deterministic: fields in declaration order, maps (serde_json's default `BTreeMap`) sorted, and
//! sequence numbers assigned under one lock, so the same run gives the same bytes.
//!
//! The in-memory log is bounded (`capacity_events`); sinks (a JSONL writer, a narrator) see every
//! event even when the oldest have been evicted from memory, and evictions are counted.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::SimTime;

/// A typed event of one domain. `Serialize` gives the event's data (use
/// `#[serde(tag = "kind")]`-free plain enums or structs; the kind is taken from [`EventKind::kind`]).
pub trait EventKind: Serialize {
    /// A stable dotted name, e.g. `keyvault.key.disabled`, `storage.state.revoked`.
    fn kind(&self) -> &'static str;
    /// One sentence a person can follow: what happened and, where it matters, why.
    fn narrate(&self) -> String;
}

/// One recorded event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the run, from 1.
    pub seq: u64,
    /// Simulated time in Unix milliseconds.
    pub at_ms: i64,
    /// The same time, RFC 3339.
    pub time: String,
    /// Who recorded it: `keyvault`, `storage/c1`, `ingest`, `agent/a1`, `scenario`, `oracle`.
    pub source: String,
    /// [`EventKind::kind`].
    pub kind: String,
    /// [`EventKind::narrate`].
    pub message: String,
    /// The event's typed fields.
    pub data: serde_json::Value,
}

impl Event {
    /// The simulated time of the event.
    pub fn at(&self) -> SimTime {
        SimTime(self.at_ms)
    }

    /// The event as one JSON line (no trailing newline).
    pub fn to_json_line(&self) -> String {
        // Serialising a struct of strings, integers and a Value cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A consumer that sees every event as it is recorded (narrator, JSONL writer, metrics).
pub type EventSink = Box<dyn FnMut(&Event) + Send>;

struct Inner {
    events: VecDeque<Event>,
    capacity_events: usize,
    evicted_events: u64,
    next_seq: u64,
    sinks: Vec<EventSink>,
    /// Live readers (see [`EventLog::subscribe`]); one that is full or gone is dropped.
    subscribers: Vec<tokio::sync::mpsc::Sender<Event>>,
}

/// A shared, bounded, append-only event log. Cloning shares the same log.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("EventLog")
            .field("events", &inner.events.len())
            .field("evicted_events", &inner.evicted_events)
            .finish()
    }
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::new(EventLog::DEFAULT_CAPACITY_EVENTS)
    }
}

impl EventLog {
    /// Enough for a 30-day soak of one cluster with polls every 6–60 s and a batch a minute.
    pub const DEFAULT_CAPACITY_EVENTS: usize = 1_000_000;

    /// An empty log holding at most `capacity_events` events in memory.
    pub fn new(capacity_events: usize) -> EventLog {
        EventLog {
            inner: Arc::new(Mutex::new(Inner {
                events: VecDeque::new(),
                capacity_events: capacity_events.max(1),
                evicted_events: 0,
                next_seq: 1,
                sinks: Vec::new(),
                subscribers: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a log that is still consistent (pushes are
        // atomic), so a poisoned lock is taken over rather than propagated.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a sink that sees every event recorded from now on.
    pub fn add_sink(&self, sink: EventSink) {
        self.lock().sinks.push(sink);
    }

    /// Records an event at simulated time `at` and returns it.
    ///
    /// The event's fields become `data` at the top level: an externally tagged enum variant
    /// (`{"KeyDisabled": {...}}`, serde's default for enums) is unwrapped, since the kind already
    /// names the variant. Consumers (oracle, report) can then read `data.cluster` whatever crate
    /// the event came from.
    ///
    /// Nothing is returned: the services record on their hot paths and never read the event
    /// back, so it is moved into the log, not copied (a copy of its JSON data was ~1% of a
    /// soak's CPU).
    pub fn record<K: EventKind>(&self, at: SimTime, source: &str, event: &K) {
        let data = unwrap_variant(serde_json::to_value(event).unwrap_or(serde_json::Value::Null));
        let draft = Draft {
            at,
            source,
            kind: event.kind(),
            message: event.narrate(),
            data,
        };
        self.push(draft, |_| ());
    }

    /// Records an event whose kind and data were built by hand (used by the scenario runner for
    /// narration lines and by tests).
    pub fn record_raw(
        &self,
        at: SimTime,
        source: &str,
        kind: &str,
        message: String,
        data: serde_json::Value,
    ) -> Event {
        let draft = Draft {
            at,
            source,
            kind,
            message,
            data,
        };
        self.push(draft, Event::clone)
    }

    /// Records an event; `echo` sees it (numbered) before it is moved into the log.
    fn push<R>(&self, draft: Draft<'_>, echo: impl FnOnce(&Event) -> R) -> R {
        let Draft {
            at,
            source,
            kind,
            message,
            data,
        } = draft;
        let mut inner = self.lock();
        let event = Event {
            seq: inner.next_seq,
            at_ms: at.0,
            time: at.to_rfc3339(),
            source: source.to_string(),
            kind: kind.to_string(),
            message,
            data,
        };
        inner.next_seq += 1;
        for sink in inner.sinks.iter_mut() {
            sink(&event);
        }
        // A subscriber that cannot keep up is cut off rather than allowed to grow without bound
        // or to slow the recorder: its stream ends and it reads again from its last seq.
        inner
            .subscribers
            .retain(|tx| tx.try_send(event.clone()).is_ok());
        if inner.events.len() == inner.capacity_events {
            inner.events.pop_front();
            inner.evicted_events += 1;
        }
        let echoed = echo(&event);
        inner.events.push_back(event);
        echoed
    }

    /// The events still in memory with `seq > after_seq`, and a receiver of every event recorded
    /// from now on, taken together so that nothing falls between the two. The receiver holds at
    /// most `buffer_events` unread events; past that the log drops it (the receiver then sees
    /// the channel closed) and the reader subscribes again from the last seq it saw.
    pub fn subscribe(
        &self,
        after_seq: u64,
        buffer_events: usize,
    ) -> (Vec<Event>, tokio::sync::mpsc::Receiver<Event>) {
        let mut inner = self.lock();
        let backlog = inner
            .events
            .iter()
            .filter(|e| e.seq > after_seq)
            .cloned()
            .collect();
        let (tx, rx) = tokio::sync::mpsc::channel(buffer_events.max(1));
        inner.subscribers.push(tx);
        (backlog, rx)
    }

    /// A copy of the events still in memory, oldest first.
    pub fn snapshot(&self) -> Vec<Event> {
        self.lock().events.iter().cloned().collect()
    }

    /// Events in memory whose kind starts with `prefix`.
    pub fn of_kind(&self, prefix: &str) -> Vec<Event> {
        self.lock()
            .events
            .iter()
            .filter(|e| e.kind.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// How many events were recorded in all: the seq of the last one (0 before the first).
    pub fn recorded_events(&self) -> u64 {
        self.lock().next_seq - 1
    }

    /// How many events were evicted from memory because the log was full.
    pub fn evicted_events(&self) -> u64 {
        self.lock().evicted_events
    }

    /// The events in memory as JSON Lines.
    pub fn to_jsonl(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        for event in &inner.events {
            out.push_str(&event.to_json_line());
            out.push('\n');
        }
        out
    }
}

/// An event before the log numbers it.
struct Draft<'a> {
    at: SimTime,
    source: &'a str,
    kind: &'a str,
    message: String,
    data: serde_json::Value,
}

/// `{"Variant": {fields}}` → `{fields}`; anything else unchanged. Variant names are
/// CamelCase and field names snake_case, which tells a wrapper from a one-field struct.
fn unwrap_variant(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) if map.len() == 1 => {
            let (name, inner) = map.into_iter().next().expect("one entry");
            let is_variant = name.chars().next().is_some_and(|c| c.is_ascii_uppercase());
            if is_variant && inner.is_object() {
                // Moved out, not copied.
                inner
            } else {
                serde_json::Value::Object(serde_json::Map::from_iter([(name, inner)]))
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    enum Sample {
        KeyDisabled { vault: String, key: String },
        Tagged { tags: BTreeMap<String, String> },
    }

    impl EventKind for Sample {
        fn kind(&self) -> &'static str {
            match self {
                Sample::KeyDisabled { .. } => "keyvault.key.disabled",
                Sample::Tagged { .. } => "test.tagged",
            }
        }
        fn narrate(&self) -> String {
            match self {
                Sample::KeyDisabled { vault, key } => format!("key {key} in {vault} disabled"),
                Sample::Tagged { tags } => format!("{} tags", tags.len()),
            }
        }
    }

    #[test]
    fn only_a_variant_wrapping_an_object_is_unwrapped() {
        use serde_json::json;
        assert_eq!(
            unwrap_variant(json!({"KeyDisabled": {"vault": "v"}})),
            json!({"vault": "v"})
        );
        // One field that is not a variant name, or a variant whose value is not an object: kept.
        assert_eq!(
            unwrap_variant(json!({"tags": {"a": 1}})),
            json!({"tags": {"a": 1}})
        );
        assert_eq!(unwrap_variant(json!({"Count": 3})), json!({"Count": 3}));
        assert_eq!(
            unwrap_variant(json!({"A": {"x": 1}, "B": {}})),
            json!({"A": {"x": 1}, "B": {}})
        );
        assert_eq!(unwrap_variant(json!("Unit")), json!("Unit"));
    }

    #[test]
    fn records_in_order_with_sequence_numbers() {
        let log = EventLog::new(10);
        log.record(
            SimTime(1000),
            "keyvault",
            &Sample::KeyDisabled {
                vault: "v".into(),
                key: "k".into(),
            },
        );
        log.record(
            SimTime(2000),
            "keyvault",
            &Sample::Tagged {
                tags: BTreeMap::new(),
            },
        );
        let returned = log.record_raw(
            SimTime(3000),
            "scenario",
            "scenario.note",
            "a note".into(),
            serde_json::json!({"n": 1}),
        );
        let events = log.snapshot();
        assert_eq!(events.len(), 3);
        assert_eq!(
            returned, events[2],
            "record_raw returns the event the log holds"
        );
        assert_eq!(returned.seq, 3);
        let (e1, e2) = (&events[0], &events[1]);
        assert_eq!((e1.seq, e2.seq), (1, 2));
        assert_eq!(e1.kind, "keyvault.key.disabled");
        assert_eq!(e1.message, "key k in v disabled");
        assert_eq!(e1.data["vault"], "v", "the variant wrapper is unwrapped");
        assert_eq!(log.of_kind("keyvault.key").len(), 1);
    }

    #[test]
    fn jsonl_is_byte_stable_and_sorted() {
        let make = || {
            let log = EventLog::new(10);
            let mut tags = BTreeMap::new();
            tags.insert("z".to_string(), "1".to_string());
            tags.insert("a".to_string(), "2".to_string());
            log.record(SimTime(5), "s", &Sample::Tagged { tags });
            log.to_jsonl()
        };
        let a = make();
        assert_eq!(a, make());
        assert!(a.find("\"a\"").unwrap() < a.find("\"z\"").unwrap(), "{a}");
        assert!(
            a.starts_with("{\"seq\":1,\"at_ms\":5,\"time\":\"1970-01-01T00:00:00.005Z\""),
            "{a}"
        );
    }

    fn raw(log: &EventLog, at: i64) -> Event {
        log.record_raw(
            SimTime(at),
            "s",
            "test.raw",
            String::new(),
            serde_json::json!({}),
        )
    }

    #[test]
    fn subscribers_get_the_backlog_then_live_events_without_gaps() {
        let log = EventLog::new(10);
        for at in 0..3 {
            raw(&log, at);
        }
        let (backlog, mut rx) = log.subscribe(1, 8);
        assert_eq!(backlog.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
        raw(&log, 3);
        assert_eq!(rx.try_recv().map(|e| e.seq), Ok(4));
        assert!(rx.try_recv().is_err(), "nothing else yet");
        assert_eq!(log.recorded_events(), 4);
    }

    #[test]
    fn a_subscriber_that_falls_behind_is_cut_off_not_buffered_forever() {
        let log = EventLog::new(100);
        let (_, mut rx) = log.subscribe(0, 2);
        for at in 0..5 {
            raw(&log, at);
        }
        let mut got = Vec::new();
        while let Ok(e) = rx.try_recv() {
            got.push(e.seq);
        }
        assert_eq!(got, [1, 2], "two buffered, then cut off");
        assert!(
            matches!(
                rx.try_recv(),
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)
            ),
            "the reader learns it was cut off and can read again from seq 2"
        );
        let (backlog, _) = log.subscribe(2, 2);
        assert_eq!(backlog.len(), 3);
    }

    #[test]
    fn bounded_memory_and_sinks_see_everything() {
        let log = EventLog::new(2);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_in_sink = seen.clone();
        log.add_sink(Box::new(move |e| seen_in_sink.lock().unwrap().push(e.seq)));
        for i in 0..5 {
            log.record(
                SimTime(i),
                "s",
                &Sample::Tagged {
                    tags: BTreeMap::new(),
                },
            );
        }
        assert_eq!(
            log.snapshot().iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![4, 5]
        );
        assert_eq!(log.evicted_events(), 3);
        assert_eq!(log.recorded_events(), 5);
        assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3, 4, 5]);
    }
}
