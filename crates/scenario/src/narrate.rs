//! The narrated terminal timeline: `T+hh:mm:ss  source  message`, one line per event worth
//! reading.
//!
//! A four-hour run records hundreds of polls and batches; printing each buries the story. By
//! default the [`Narrator`] prints every state change, step, fault and narration, and a routine
//! event (a poll, a batch, a query) only when its result differs from the previous one of the
//! same stream — so "polls start being denied" appears once, when it starts. `verbose` prints
//! everything. Colour is ANSI and only on request (the caller knows whether stdout is a TTY).
//! The narrator is a small state machine so it can run as an event-log sink while the scenario
//! runs, or over a finished log.

use std::collections::BTreeMap;

use cmksim_sim::{Event, SimTime};

use crate::events::{self, str_field, u64_field};

/// How to narrate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NarrateOptions {
    /// ANSI colours.
    pub color: bool,
    /// Every event, including each routine poll and batch.
    pub verbose: bool,
}

/// Width of the source column, in characters.
const SOURCE_WIDTH: usize = 14;

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const MAGENTA: &str = "\x1b[35m";

/// Turns events into narrated lines, remembering what routine streams last said.
#[derive(Clone, Debug)]
pub struct Narrator {
    start: SimTime,
    options: NarrateOptions,
    /// Routine stream (e.g. `poll c1`) → the class of its last printed result.
    last: BTreeMap<String, String>,
}

impl Narrator {
    pub fn new(start: SimTime, options: NarrateOptions) -> Narrator {
        Narrator {
            start,
            options,
            last: BTreeMap::new(),
        }
    }

    /// The line for an event, or `None` when it is routine and repeats the previous result.
    pub fn line(&mut self, event: &Event) -> Option<String> {
        if !self.options.verbose {
            if let Some((stream, class)) = routine(event) {
                if self.last.get(&stream) == Some(&class) {
                    return None;
                }
                self.last.insert(stream, class);
            }
        }
        let time = event.at().offset_label(self.start);
        let source = pad(&event.source, SOURCE_WIDTH);
        let narration = event.kind == events::SCENARIO_NARRATE;
        if !self.options.color {
            let marker = if narration { "» " } else { "" };
            return Some(format!("{time}  {source}  {marker}{}", event.message));
        }
        let colour = colour_of(event);
        let message = if narration {
            format!("{BOLD}{CYAN}» {}{RESET}", event.message)
        } else {
            format!("{colour}{}{RESET}", event.message)
        };
        Some(format!("{DIM}{time}{RESET}  {source}  {message}"))
    }
}

/// Narrates a whole log.
pub fn render_timeline(events: &[Event], start: SimTime, options: NarrateOptions) -> String {
    let mut narrator = Narrator::new(start, options);
    let mut out = String::new();
    for e in events {
        if let Some(line) = narrator.line(e) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// The event log as JSON Lines (one `Event::to_json_line` per line).
pub fn render_jsonl(events: &[Event]) -> String {
    let mut out = String::new();
    for e in events {
        out.push_str(&e.to_json_line());
        out.push('\n');
    }
    out
}

/// Routine events: (stream, result class). Everything else always prints.
fn routine(e: &Event) -> Option<(String, String)> {
    let k = e.kind.as_str();
    if k.starts_with("storage.poll.") {
        let stream = format!("poll {}", events::cluster_of(e).unwrap_or(""));
        return Some((stream, k.to_string()));
    }
    if k == events::INGEST_BATCH {
        let stream = format!(
            "batch {}/{}",
            str_field(e, "workspace").unwrap_or(""),
            str_field(e, "table").unwrap_or("")
        );
        let class = format!(
            "{}{}{}{}",
            u64_field(e, "stored") > 0,
            u64_field(e, "buffered") > 0,
            u64_field(e, "dropped") > 0,
            str_field(e, "reason").unwrap_or("")
        );
        return Some((stream, class));
    }
    if k.starts_with("sentinel.poll.") {
        let stream = format!("poll {}", e.source);
        return Some((stream, k.to_string()));
    }
    if k.starts_with("agent.") {
        return Some((format!("{} {k}", e.source), String::new()));
    }
    None
}

fn colour_of(e: &Event) -> &'static str {
    let k = e.kind.as_str();
    let bad = [
        "revoked", "denied", "failed", "dropped", "broken", "shredded", "tampered", "purged",
        "expired",
    ];
    let warn = [
        "unavailable",
        "transient",
        "degraded",
        "disabled",
        "deleted",
        "fault",
        "error",
        "buffered",
        "resuming",
    ];
    if k == events::INGEST_BATCH {
        return if u64_field(e, "dropped") > 0 {
            RED
        } else if u64_field(e, "buffered") > 0 {
            YELLOW
        } else {
            GREEN
        };
    }
    if bad.iter().any(|w| k.contains(w)) {
        RED
    } else if warn.iter().any(|w| k.contains(w)) {
        YELLOW
    } else if k.starts_with("scenario.") {
        MAGENTA
    } else if k.ends_with(".healthy")
        || k.ends_with(".ok")
        || k.ends_with(".succeeded")
        || k.ends_with(".held")
        || k.ends_with(".enabled")
    {
        GREEN
    } else {
        ""
    }
}

fn pad(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count >= width {
        text.to_string()
    } else {
        format!("{text}{}", " ".repeat(width - count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Emit;
    use crate::model::StorageState;
    use cmksim_sim::EventLog;

    fn sample() -> Vec<Event> {
        let log = EventLog::new(100);
        let emit = Emit { log: &log };
        let s = SimTime::DEFAULT_EPOCH;
        let m = |n: u64| s.add(std::time::Duration::from_secs(60 * n));
        emit.started(s, "demo", 1, "azure-2020", 0);
        emit.poll(m(1), "c1", events::POLL_OK, "");
        emit.poll(m(2), "c1", events::POLL_OK, "");
        emit.narrate(m(3), "disable", "The customer disables the key.");
        emit.poll(m(4), "c1", events::POLL_DENIED, "KeyDisabled");
        emit.poll(m(5), "c1", events::POLL_DENIED, "KeyDisabled");
        emit.state(
            m(5),
            "c1",
            Some(StorageState::Healthy),
            StorageState::Revoked,
            "403",
        );
        log.snapshot()
    }

    #[test]
    fn quiet_narration_prints_changes_only() {
        let text = render_timeline(&sample(), SimTime::DEFAULT_EPOCH, NarrateOptions::default());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(
            lines[0],
            "T+00:00:00  scenario        scenario demo starts (seed 1, profile azure-2020)"
        );
        assert!(lines[2].starts_with("T+00:03:00  scenario        » The customer"));
        assert!(lines[3].contains("storage/c1") && lines[3].contains("denied"));
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn verbose_and_colour() {
        let options = NarrateOptions {
            color: true,
            verbose: true,
        };
        let text = render_timeline(&sample(), SimTime::DEFAULT_EPOCH, options);
        assert_eq!(text.lines().count(), 7);
        assert!(text.contains(RED) && text.contains(CYAN));
    }

    #[test]
    fn jsonl_is_one_event_per_line() {
        let events = sample();
        let text = render_jsonl(&events);
        assert_eq!(text.lines().count(), events.len());
        let back: Event = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(back, events[0]);
    }
}
