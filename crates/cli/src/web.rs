//! `cmksim demo NAME --web`: the live dashboard's server for a simulated run.
//!
//! The page and its assets are the HTTPS door's ([`cmksim_rest::dashboard`]); this module adds
//! the small API the page reads while the simulation runs in this process:
//!
//! - `GET /_cmksim/demo/stream`: the page's data pushed as it is written (Server-Sent Events,
//!   [`cmksim_rest::dashboard::push`]: the event log's sink and the run's clock wake a publisher
//!   that sends a frame at most every 10 ms; a page too slow for its buffer is dropped and
//!   reconnects from its last frame id).
//! - `POST /_cmksim/demo/drawn` `{"page", "sim_ms"}`: the page has drawn the frame of that
//!   simulated time. The run does not go more than a simulated minute past the slowest page's
//!   drawn frame ([`cmksim_world::pacer`]: the run waits, bounded; a page that stops reporting
//!   stops holding it after two seconds, a page whose stream ends at once), so that the picture
//!   a class sees is never more than a minute old, even at 3600×.
//! - `GET /_cmksim/demo/state?after=N`: the same status in one answer — the clock, the pace, the
//!   key's and each storage's state, the narration lines after the N-th, and the verdicts on the
//!   events so far (the run's own, final ones once it has ended); `GET /_cmksim/demo/clock`: the
//!   run's simulated time, how far the slowest page is behind it and what pacing has cost.
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
//! The verdicts are judged on a loop of their own ([`JUDGE_EVERY`]), never while a frame is
//! built, so that a frame costs the same early and late in a run. The wall clock is read only to
//! space the judging and to pace against the pages; it never reaches the simulation.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cmksim_rest::dashboard;
use cmksim_rest::dashboard::push::{self, Feed, Hub};
use cmksim_scenario::{expect, oracle, report, Scenario, Verdict};
use cmksim_sim::EventLog;
use cmksim_world::control::{Control, Lever, LeverError};
use serde::Deserialize;
use serde_json::{json, Value};

/// Lines sent in one answer of `/state` (a reader that fell behind catches up over a few).
const FEED_LINES_PER_ANSWER_MAX: usize = 500;
/// The verdicts are recomputed from the whole log at most this often (the states, cheaper,
/// whenever events were added).
const JUDGE_EVERY: Duration = Duration::from_millis(200);
/// Largest request body the API reads.
const BODY_BYTES_MAX: usize = 4096;

/// What the page shows that is judged from the whole log (recomputed at most every
/// [`JUDGE_EVERY`], and only when events were added).
#[derive(Default)]
struct Judged {
    events_seen: u64,
    states: Value,
    verdicts: Value,
    swimlanes: String,
    swimlanes_events: u64,
    /// Events the states were last computed from.
    states_events: u64,
}

/// The dashboard of one simulated run.
pub struct DemoWeb {
    scenario: Arc<Scenario>,
    events: EventLog,
    control: Control,
    feed: Arc<Mutex<Feed>>,
    hub: Arc<Hub>,
    /// The events that change a lane's state (the state panel, read at every frame).
    state_events: Arc<dashboard::StateEvents>,
    judged: Mutex<Judged>,
    /// Set with the run's final verdicts once it has ended.
    finished: AtomicBool,
    /// Never turned true: the dashboard serves until the process ends (its publisher too).
    _serving: tokio::sync::watch::Sender<bool>,
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
    let feed = Arc::new(Mutex::new(Feed::new()));
    let hub = Arc::new(Hub::new());
    let state_events = Arc::new(dashboard::StateEvents::default());
    {
        let (feed, hub, state_events) = (feed.clone(), hub.clone(), state_events.clone());
        events.add_sink(Box::new(move |event| {
            feed.lock().unwrap_or_else(|p| p.into_inner()).push(event);
            state_events.push(event);
            hub.wake();
        }));
    }
    // The clock moving is news too (a frame is pushed even when no event was recorded).
    control.wake_on_time(hub.waker());
    let (serving, serving_rx) = tokio::sync::watch::channel(false);
    let web = Arc::new(DemoWeb {
        scenario: Arc::new(scenario.clone()),
        events: events.clone(),
        control,
        feed: feed.clone(),
        hub: hub.clone(),
        state_events,
        judged: Mutex::new(Judged::default()),
        finished: AtomicBool::new(false),
        _serving: serving,
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
    let status: push::StatusSource = {
        let web = web.clone();
        Arc::new(move || web.status())
    };
    runtime.spawn(judge_loop(web.clone(), serving_rx.clone()));
    runtime.spawn(push::publish_loop(hub, feed, status, serving_rx));
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
        judged.states = dashboard::states_json(&snapshot);
        judged.verdicts = dashboard::verdicts_json(expectations, invariants);
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

    /// Re-judges the log when events were added (never after the run's final verdicts are
    /// in). The log is judged without the lock on what the page reads, so a frame is never
    /// built behind a judging.
    fn judge(&self) {
        let recorded = self.events.recorded_events();
        let seen = self
            .judged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .events_seen;
        if self.finished.load(Ordering::SeqCst) || recorded == seen {
            return;
        }
        let snapshot = self.events.snapshot();
        let expectations = expect::evaluate(&self.scenario, &snapshot);
        let invariants = oracle::check_invariants(&self.scenario, &snapshot);
        let verdicts = dashboard::verdicts_json(&expectations, &invariants);
        let mut judged = self.judged.lock().unwrap_or_else(|p| p.into_inner());
        // The run may have ended meanwhile: its final verdicts win.
        if !self.finished.load(Ordering::SeqCst) {
            judged.verdicts = verdicts;
            judged.events_seen = recorded;
        }
    }

    /// The page's status: clock, pace, states, the page's heading and levers (`meta`) and the
    /// verdicts (the hub sends those two only when they changed).
    fn status(&self) -> Value {
        let start = self.feed.lock().unwrap_or_else(|p| p.into_inner()).start();
        let mut judged = self.judged.lock().unwrap_or_else(|p| p.into_inner());
        let recorded = self.events.recorded_events();
        if !self.finished.load(Ordering::SeqCst) && judged.states_events != recorded {
            judged.states = self.state_events.states_json();
            judged.states_events = recorded;
        }
        let now_ms = self.control.now_unix_ms();
        let t_ms = start.map(|s| now_ms - s.unix_ms()).unwrap_or(0).max(0);
        let pace = self.control.pace();
        let meta = &self.scenario.meta;
        json!({
            "mode": "simulation",
            "meta": {
                "name": meta.name,
                "title": meta.title,
                "story": meta.story,
                "seed": meta.seed,
                "profile": meta.profile_name,
                "levers": Lever::ALL
                    .iter()
                    .map(|l| json!({"id": l.as_str(), "label": l.label()}))
                    .collect::<Vec<_>>(),
            },
            "phase": self.phase(start.is_some()),
            "clock": {
                "t_ms": t_ms,
                "sim_now_ms": now_ms,
                "end_label": format!("of {}", cmksim_sim::format_duration(meta.duration)),
            },
            "pace": {"paused": pace.paused, "speed": pace.speed},
            "states": judged.states.clone(),
            "events": recorded,
            "verdicts": judged.verdicts.clone(),
        })
    }

    /// The status with the narration lines after the `after`-th (the `/state` answer).
    fn state(&self, after: usize) -> Value {
        let (narration, next) = {
            let feed = self.feed.lock().unwrap_or_else(|p| p.into_inner());
            let lines = feed.lines();
            let from = after.min(lines.len());
            let to = (from + FEED_LINES_PER_ANSWER_MAX).min(lines.len());
            let out: Vec<Value> = lines[from..to]
                .iter()
                .map(|l| json!({"text": l.text, "t_ms": l.t_ms, "class": l.class}))
                .collect();
            (out, to)
        };
        let mut state = self.status();
        state["narration"] = Value::Array(narration);
        state["next"] = json!(next);
        state
    }

    fn swimlanes(&self) -> String {
        let recorded = self.events.recorded_events();
        let mut judged = self.judged.lock().unwrap_or_else(|p| p.into_inner());
        if judged.swimlanes.is_empty() || judged.swimlanes_events != recorded {
            let start = self.feed.lock().unwrap_or_else(|p| p.into_inner()).start();
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

/// Judges the log every [`JUDGE_EVERY`] (when events were added) until the dashboard stops;
/// one judging at a time, off the async workers.
async fn judge_loop(web: Arc<DemoWeb>, mut stopping: tokio::sync::watch::Receiver<bool>) {
    // Unbounded on purpose, one judging per JUDGE_EVERY at most: the verdicts follow the run
    // for as long as the dashboard serves.
    loop {
        tokio::select! {
            changed = stopping.changed() => {
                if changed.is_err() || *stopping.borrow() {
                    return;
                }
            }
            () = tokio::time::sleep(JUDGE_EVERY) => {}
        }
        let web = web.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || web.judge()).await {
            eprintln!("cmksim demo --web: judging the events failed: {e}");
        }
    }
}

fn router(web: Arc<DemoWeb>) -> Router {
    Router::new()
        .route("/_cmksim/demo/state", get(get_state))
        .route("/_cmksim/demo/stream", get(get_stream))
        .route("/_cmksim/demo/clock", get(get_clock))
        .route("/_cmksim/demo/swimlanes.svg", get(get_swimlanes))
        .route("/_cmksim/demo/pace", post(set_pace))
        .route("/_cmksim/demo/lever", post(pull_lever))
        .route("/_cmksim/demo/drawn", post(page_drew))
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

/// The page's stream of frames (Server-Sent Events, [`push`]): from the `Last-Event-ID` a
/// reconnecting page sends, or `?after=`.
async fn get_stream(
    State(web): State<Arc<DemoWeb>>,
    headers: HeaderMap,
    Query(q): Query<StateQuery>,
) -> Response {
    let after = push::last_event_id(&headers, Some(q.after));
    let subscription = match web.hub.subscribe(&web.feed, after) {
        Ok(subscription) => subscription,
        Err(e) => return push::full_response(&e),
    };
    // The page paces the run from now until its stream ends (the guard, dropped with the
    // stream, says so to the run).
    let page = subscription.page;
    web.control.page_joined(page);
    let guard = PageGuard {
        control: web.control.clone(),
        page,
    };
    let stream = tokio_stream::StreamExt::map(subscription.stream, move |event| {
        let _following = &guard;
        event
    });
    push::sse_response(stream)
}

/// Tells the run that a page stopped following when its stream is dropped.
struct PageGuard {
    control: Control,
    page: u64,
}

impl Drop for PageGuard {
    fn drop(&mut self) {
        self.control.page_left(self.page);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrawnBody {
    page: u64,
    sim_ms: i64,
}

/// A page has drawn the frame of `sim_ms` (the run may go a simulated minute past it).
async fn page_drew(State(web): State<Arc<DemoWeb>>, body: axum::body::Bytes) -> Response {
    let body: DrawnBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                &format!(
                    "drawn: expected {{\"page\": 1, \"sim_ms\": 1593907200000}}: {}",
                    cmksim_sim::text::echo(&e.to_string())
                ),
            )
        }
    };
    if web.control.page_drew(body.page, body.sim_ms) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        refusal(
            StatusCode::GONE,
            &format!(
                "page {} is not following this run (its stream ended); it is given a new \
                 number when it reconnects",
                body.page
            ),
        )
    }
}

/// The run's simulated time alone, cheap (the lag test's reference).
async fn get_clock(State(web): State<Arc<DemoWeb>>) -> Response {
    let now_ms = web.control.now_unix_ms();
    let phase = web.phase(
        web.feed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .start()
            .is_some(),
    );
    let (pages, stats) = web.control.pacer_stats();
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "sim_now_ms": now_ms,
            "phase": phase,
            "pages": pages,
            "pages_behind_ms": web.control.pages_behind_ms(),
            "holds": stats.holds,
            "held_ms": stats.held_wall.as_millis() as u64,
        })),
    )
        .into_response()
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
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;

    fn revocation() -> Scenario {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scenarios/revocation.toml"
        );
        cmksim_scenario::validate_file(std::path::Path::new(path)).expect("the library scenario")
    }

    /// One HTTP/1.1 request on its own connection; the status and the body.
    fn request(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let status = answer[9..12].parse().unwrap();
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (status, body)
    }

    fn pages(addr: &str) -> u64 {
        let (status, body) = request(addr, "GET", "/_cmksim/demo/clock", "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["pages"]
            .as_u64()
            .unwrap()
    }

    #[test]
    fn a_page_joins_with_its_stream_reports_what_it_drew_and_leaves_with_it() {
        let scenario = revocation();
        let control = Control::new(cmksim_world::control::Pace {
            paused: false,
            speed: 3600.0,
        });
        let events = EventLog::default();
        let listen = "127.0.0.1:0".parse().unwrap();
        let (_web, url) = start(listen, &scenario, &events, control.clone()).unwrap();
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        assert_eq!(pages(&addr), 0);

        // A stream: its first frame names the page.
        let mut stream = TcpStream::connect(&addr).unwrap();
        write!(
            stream,
            "GET /_cmksim/demo/stream HTTP/1.1\r\nhost: {addr}\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut page = None;
        // Bounded: the headers and the first frame are a few dozen lines.
        for _ in 0..200 {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if let Some(data) = line.strip_prefix("data: ") {
                let frame: Value = serde_json::from_str(data.trim()).unwrap();
                page = frame["page"].as_u64();
                break;
            }
        }
        let page = page.expect("the first frame names the page");
        assert_eq!(pages(&addr), 1);

        let drawn = format!("{{\"page\": {page}, \"sim_ms\": 1593907200000}}");
        assert_eq!(request(&addr, "POST", "/_cmksim/demo/drawn", &drawn).0, 204);
        let (status, body) = request(
            &addr,
            "POST",
            "/_cmksim/demo/drawn",
            "{\"page\": 99, \"sim_ms\": 0}",
        );
        assert_eq!(status, 410, "{body}");
        assert!(body.contains("page 99 is not following this run"), "{body}");
        let (status, body) = request(&addr, "POST", "/_cmksim/demo/drawn", "{\"page\": \"x\"}");
        assert_eq!(status, 400, "{body}");

        // The stream closed: the page leaves (bounded wait for the server to notice).
        drop(reader);
        drop(stream);
        let mut left = false;
        for _ in 0..500 {
            if pages(&addr) == 0 {
                left = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(left, "the page still follows after its stream closed");
    }
}
