//! `cmksim demo NAME --web`: the live dashboard's server for a simulated run.
//!
//! The page and its assets are the HTTPS door's ([`cmksim_rest::dashboard`]); this module adds
//! the small API the page polls while the simulation runs in this process:
//!
//! - `GET /_cmksim/demo/state?after=N`: the clock, the pace, the key's and each storage's state,
//!   the narration lines after the N-th, and the verdicts on the events so far (the run's own,
//!   final ones once it has ended).
//! - `GET /_cmksim/demo/swimlanes.svg`: the report's swimlane chart of the events so far, drawn
//!   by the report's code ([`cmksim_scenario::report::svg`]) over the scenario's whole span.
//! - `POST /_cmksim/demo/pace` `{"paused"?, "speed"?}` and `POST /_cmksim/demo/lever`
//!   `{"lever"}`: steer the run through [`cmksim_world::control::Control`], which turns a lever
//!   into a timeline step that the driver plays like the scenario's own.
//!
//! Why it lives in the binary rather than in the door: it needs the world (the run) and the
//! scenario crate's judges, which the door does not depend on; the door needs only the page.
//! The server runs on a thread of its own with its own runtime, because the simulation owns the
//! main thread. Plain HTTP on loopback by default: a demo is watched from this machine's browser.
//! The wall clock is read only to rate-limit the judging; it never reaches the simulation.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cmksim_scenario::narrate::{NarrateOptions, Narrator};
use cmksim_scenario::{expect, history, oracle, report, Scenario, Verdict};
use cmksim_sim::{Event, EventLog, SimTime};
use cmksim_world::control::{Control, Lever, LeverError};
use serde::Deserialize;
use serde_json::{json, Value};

/// Narration lines kept for the page; past this, lines are counted but not kept.
const FEED_LINES_MAX: usize = 100_000;
/// Lines sent in one answer (a page that fell behind catches up over a few polls).
const FEED_LINES_PER_ANSWER_MAX: usize = 500;
/// Events held back before T+0 (the world being built), as the terminal narrator does.
const HELD_EVENTS_MAX: usize = 10_000;
/// The verdicts are recomputed from the whole log at most this often (the states, cheap, at
/// every request).
const JUDGE_EVERY: Duration = Duration::from_millis(200);
/// Largest request body the API reads.
const BODY_BYTES_MAX: usize = 4096;

/// One narrated line for the page.
#[derive(Clone, Debug)]
struct FeedLine {
    text: String,
    t_ms: i64,
    class: &'static str,
}

/// The narration, built by a sink of the event log as events are recorded.
#[derive(Default)]
struct Feed {
    narrator: Option<Narrator>,
    start: Option<SimTime>,
    held: Vec<Event>,
    lines: Vec<FeedLine>,
    lines_not_kept: u64,
}

impl Feed {
    fn push(&mut self, event: &Event) {
        if self.narrator.is_none() {
            if event.kind != cmksim_scenario::events::SCENARIO_STARTED {
                if self.held.len() < HELD_EVENTS_MAX {
                    self.held.push(event.clone());
                }
                return;
            }
            self.narrator = Some(Narrator::new(event.at(), NarrateOptions::default()));
            self.start = Some(event.at());
            for held in std::mem::take(&mut self.held) {
                self.narrate(&held);
            }
        }
        self.narrate(event);
    }

    fn narrate(&mut self, event: &Event) {
        let (Some(narrator), Some(start)) = (self.narrator.as_mut(), self.start) else {
            return;
        };
        let Some(text) = narrator.line(event) else {
            return;
        };
        if self.lines.len() >= FEED_LINES_MAX {
            self.lines_not_kept += 1;
            return;
        }
        let lever = event.kind == cmksim_scenario::events::SCENARIO_STEP
            && cmksim_scenario::events::str_field(event, "step")
                .is_some_and(|s| s.starts_with("web-"));
        let class = if event.kind == cmksim_scenario::events::SCENARIO_NARRATE {
            "narration"
        } else if lever {
            "lever"
        } else {
            ""
        };
        self.lines.push(FeedLine {
            text,
            t_ms: event.at_ms - start.0,
            class,
        });
    }
}

/// What the page shows that is judged from the whole log (recomputed at most every
/// [`JUDGE_EVERY`], and only when events were added).
#[derive(Default)]
struct Judged {
    events_seen: u64,
    at: Option<Instant>,
    version: u64,
    states: Value,
    verdicts: Value,
    swimlanes: String,
    swimlanes_events: u64,
}

/// The dashboard of one simulated run.
pub struct DemoWeb {
    scenario: Arc<Scenario>,
    events: EventLog,
    control: Control,
    feed: Arc<Mutex<Feed>>,
    judged: Mutex<Judged>,
    /// Set with the run's final verdicts once it has ended.
    finished: AtomicBool,
}

/// Starts the dashboard of `scenario`'s run on `listen`: binds now (an address in use fails
/// before the run), adds the narration sink to `events`, serves on a thread of its own.
/// Returns the dashboard and the URL it serves.
pub fn start(
    listen: SocketAddr,
    scenario: &Scenario,
    events: &EventLog,
    control: Control,
) -> anyhow::Result<(Arc<DemoWeb>, String)> {
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("--listen {listen}: cannot listen there"))?;
    listener
        .set_nonblocking(true)
        .context("the dashboard's listener")?;
    let url = format!("http://{}/", listener.local_addr()?);
    let feed = Arc::new(Mutex::new(Feed::default()));
    {
        let feed = feed.clone();
        events.add_sink(Box::new(move |event| {
            feed.lock().unwrap_or_else(|p| p.into_inner()).push(event);
        }));
    }
    let web = Arc::new(DemoWeb {
        scenario: Arc::new(scenario.clone()),
        events: events.clone(),
        control,
        feed,
        judged: Mutex::new(Judged::default()),
        finished: AtomicBool::new(false),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_io()
        .enable_time()
        .build()
        .context("starting the dashboard's runtime")?;
    let app = router(web.clone());
    let listener = {
        let _inside = runtime.enter();
        tokio::net::TcpListener::from_std(listener).context("the dashboard's listener")?
    };
    std::thread::Builder::new()
        .name("dashboard".into())
        .spawn(move || {
            if let Err(e) = runtime.block_on(axum::serve(listener, app).into_future()) {
                eprintln!("cmksim demo --web: the dashboard stopped: {e}");
            }
        })
        .context("starting the dashboard's thread")?;
    Ok((web, url))
}

impl DemoWeb {
    /// The run has ended: the page shows these verdicts (the ones the summary printed).
    pub fn finish(&self, expectations: &[Verdict], invariants: &[Verdict]) {
        let mut judged = self.judged.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = self.events.snapshot();
        judged.states = states(&snapshot);
        judged.verdicts = verdicts_json(expectations, invariants);
        judged.version += 1;
        judged.events_seen = self.events.recorded_events();
        self.finished.store(true, Ordering::SeqCst);
    }

    fn phase(&self, started: bool) -> &'static str {
        if self.finished.load(Ordering::SeqCst) {
            "finished"
        } else if !started {
            "building the world"
        } else if self.control.pace().paused {
            "paused"
        } else {
            "running"
        }
    }

    /// Re-judges the log when events were added and [`JUDGE_EVERY`] has passed (never after
    /// the run's final verdicts are in).
    fn judge(&self, judged: &mut Judged) {
        let recorded = self.events.recorded_events();
        let fresh = judged.at.is_some_and(|at| at.elapsed() < JUDGE_EVERY);
        if self.finished.load(Ordering::SeqCst) || recorded == judged.events_seen || fresh {
            return;
        }
        let snapshot = self.events.snapshot();
        let expectations = expect::evaluate(&self.scenario, &snapshot);
        let invariants = oracle::check_invariants(&self.scenario, &snapshot);
        judged.verdicts = verdicts_json(&expectations, &invariants);
        judged.events_seen = recorded;
        judged.at = Some(Instant::now());
        judged.version += 1;
    }

    fn state(&self, after: usize) -> Value {
        let (narration, next, start) = {
            let feed = self.feed.lock().unwrap_or_else(|p| p.into_inner());
            let from = after.min(feed.lines.len());
            let to = (from + FEED_LINES_PER_ANSWER_MAX).min(feed.lines.len());
            let lines: Vec<Value> = feed.lines[from..to]
                .iter()
                .map(|l| json!({"text": l.text, "t_ms": l.t_ms, "class": l.class}))
                .collect();
            (lines, to, feed.start)
        };
        let mut judged = self.judged.lock().unwrap_or_else(|p| p.into_inner());
        self.judge(&mut judged);
        if !self.finished.load(Ordering::SeqCst) {
            judged.states = states(&self.events.snapshot());
        }
        let now_ms = self.control.now_unix_ms();
        let t_ms = start.map(|s| now_ms - s.unix_ms()).unwrap_or(0).max(0);
        let pace = self.control.pace();
        let meta = &self.scenario.meta;
        json!({
            "name": meta.name,
            "title": meta.title,
            "story": meta.story,
            "seed": meta.seed,
            "profile": meta.profile_name,
            "phase": self.phase(start.is_some()),
            "clock": {
                "t_ms": t_ms,
                "sim_now_ms": now_ms,
                "end_label": format!("of {}", cmksim_sim::format_duration(meta.duration)),
            },
            "pace": {"paused": pace.paused, "speed": pace.speed},
            "levers": Lever::ALL
                .iter()
                .map(|l| json!({"id": l.as_str(), "label": l.label()}))
                .collect::<Vec<_>>(),
            "states": judged.states.clone(),
            "narration": narration,
            "next": next,
            "events": judged.events_seen,
            "verdicts_version": judged.version,
            "verdicts": judged.verdicts.clone(),
        })
    }

    fn swimlanes(&self) -> String {
        let recorded = self.events.recorded_events();
        let mut judged = self.judged.lock().unwrap_or_else(|p| p.into_inner());
        if judged.swimlanes.is_empty() || judged.swimlanes_events != recorded {
            let start = self.feed.lock().unwrap_or_else(|p| p.into_inner()).start;
            let snapshot = self.events.snapshot();
            judged.swimlanes = match start {
                // Over the scenario's whole span: the chart fills in from the left as it runs.
                Some(start) => report::render_swimlanes(
                    &snapshot,
                    start,
                    start.add(self.scenario.meta.duration),
                ),
                None => String::new(),
            };
            judged.swimlanes_events = recorded;
        }
        judged.swimlanes.clone()
    }
}

/// The key's and each storage's current state, as the report's lanes see them.
fn states(events: &[Event]) -> Value {
    let end = events.last().map(|e| e.at()).unwrap_or(SimTime(0));
    let mut out = Vec::new();
    for (key, spans) in history::key_spans(events, end) {
        if let Some(last) = spans.last() {
            out.push(json!({
                "id": format!("key-state-{}", key.replace('/', "-")),
                "label": format!("key {key}"),
                "state": last.state.as_str(),
            }));
        }
    }
    for (cluster, spans) in history::storage_spans(events, end) {
        if let Some(last) = spans.last() {
            out.push(json!({
                "id": format!("storage-state-{cluster}"),
                "label": format!("storage of {cluster}"),
                "state": last.state.as_str(),
            }));
        }
    }
    Value::Array(out)
}

fn verdicts_json(expectations: &[Verdict], invariants: &[Verdict]) -> Value {
    let family = |family: &'static str, verdicts: &[Verdict]| -> Vec<Value> {
        verdicts
            .iter()
            .map(|v| {
                json!({
                    "family": family,
                    "id": v.id,
                    "outcome": serde_json::to_value(v.outcome).unwrap_or(Value::Null),
                    "outcome_label": v.outcome.as_str(),
                    "title": v.title,
                    "detail": v.detail,
                })
            })
            .collect()
    };
    let mut all = family("expectation", expectations);
    all.extend(family("invariant", invariants));
    Value::Array(all)
}

fn router(web: Arc<DemoWeb>) -> Router {
    Router::new()
        .route("/_cmksim/demo/state", get(get_state))
        .route("/_cmksim/demo/swimlanes.svg", get(get_swimlanes))
        .route("/_cmksim/demo/pace", post(set_pace))
        .route("/_cmksim/demo/lever", post(pull_lever))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(web)
        .merge(cmksim_rest::dashboard::routes())
}

#[derive(Deserialize)]
struct StateQuery {
    #[serde(default)]
    after: usize,
}

async fn get_state(State(web): State<Arc<DemoWeb>>, Query(q): Query<StateQuery>) -> Response {
    // Judging walks the whole log: off the async workers.
    match tokio::task::spawn_blocking(move || web.state(q.after)).await {
        Ok(state) => ([(header::CACHE_CONTROL, "no-store")], Json(state)).into_response(),
        Err(e) => refusal(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn get_swimlanes(State(web): State<Arc<DemoWeb>>) -> Response {
    match tokio::task::spawn_blocking(move || web.swimlanes()).await {
        Ok(svg) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            svg,
        )
            .into_response(),
        Err(e) => refusal(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn refusal(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PaceBody {
    paused: Option<bool>,
    speed: Option<f64>,
}

async fn set_pace(State(web): State<Arc<DemoWeb>>, body: axum::body::Bytes) -> Response {
    let body: PaceBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                &format!(
                    "pace: expected {{\"paused\": true|false, \"speed\": 60..3600}}: {}",
                    cmksim_sim::text::echo(&e.to_string())
                ),
            )
        }
    };
    match web.control.set_pace(body.paused, body.speed) {
        Ok(pace) => Json(json!({"paused": pace.paused, "speed": pace.speed})).into_response(),
        Err(e) => refusal(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeverBody {
    lever: String,
}

async fn pull_lever(State(web): State<Arc<DemoWeb>>, body: axum::body::Bytes) -> Response {
    let body: LeverBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                &format!(
                    "lever: expected {{\"lever\": \"disable-key\"}}: {}",
                    cmksim_sim::text::echo(&e.to_string())
                ),
            )
        }
    };
    let Some(lever) = Lever::parse(&body.lever) else {
        let known: Vec<&str> = Lever::ALL.iter().map(|l| l.as_str()).collect();
        return refusal(
            StatusCode::BAD_REQUEST,
            &format!(
                "no lever named '{}' (the levers: {})",
                cmksim_sim::text::echo(&body.lever),
                known.join(", ")
            ),
        );
    };
    if web.finished.load(Ordering::SeqCst) {
        return refusal(StatusCode::CONFLICT, &LeverError::Ended.to_string());
    }
    match web.control.pull(&web.scenario, lever) {
        Ok(()) => {
            let paused = web.control.pace().paused;
            let message = format!(
                "{}: sent to the world{}",
                lever.label(),
                if paused {
                    " (it runs when you press Play)"
                } else {
                    ""
                }
            );
            (StatusCode::ACCEPTED, Json(json!({ "message": message }))).into_response()
        }
        Err(e @ LeverError::Busy) => refusal(StatusCode::TOO_MANY_REQUESTS, &e.to_string()),
        Err(e @ LeverError::Ended) => refusal(StatusCode::CONFLICT, &e.to_string()),
        Err(e) => refusal(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, at_ms: i64, kind: &str, data: Value) -> Event {
        let log = EventLog::default();
        let mut e = log.record_raw(SimTime(at_ms), "scenario", kind, kind.to_string(), data);
        e.seq = seq;
        e
    }

    #[test]
    fn the_feed_starts_at_t0_and_marks_levers_and_narration() {
        let mut feed = Feed::default();
        feed.push(&event(1, 1_000, "identity.tenant.created", json!({})));
        assert!(feed.lines.is_empty(), "held back until T+0");
        feed.push(&event(2, 5_000, "scenario.started", json!({})));
        feed.push(&event(
            3,
            65_000,
            "scenario.step",
            json!({"step": "web-1-disable-key", "what": "update-key"}),
        ));
        feed.push(&event(4, 65_000, "scenario.narrate", json!({"text": "x"})));
        let classes: Vec<&str> = feed.lines.iter().map(|l| l.class).collect();
        assert_eq!(classes, ["", "", "lever", "narration"]);
        assert_eq!(feed.lines[0].t_ms, -4_000, "a held event, relative to T+0");
        assert_eq!(feed.lines[2].t_ms, 60_000);
    }
}
