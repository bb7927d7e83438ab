//! The live teaching dashboard: one page, its script and its style, embedded in the binary.
//!
//! The same page serves two modes. `cmksim demo NAME --web` serves it for a simulated run, with
//! the run's own small API beside it (`/_cmksim/demo/…`, in `cmksim`'s `web` module: the
//! simulation lives in that process). `cmksim serve all` serves it at `/` of this HTTPS door for
//! live services, with the door's own API beside it (`/_cmksim/dashboard/…`, [`live`]: sign-in
//! by a one-time link, the services' events followed, the live levers). The page finds out
//! which by asking for `/_cmksim/demo/clock` (absent here). Both modes push the page's data as
//! it is written ([`push`]: the feed, the hub of open pages, the frames), and both describe the
//! world with the same two functions below ([`states_json`], [`verdicts_json`]).
//!
//! Why plain HTML, CSS and JavaScript with SVG: the swimlane chart is the report's own SVG,
//! drawn by the server from the event log by the code that draws the report, so the page only
//! swaps it in; nothing is left for a charting library to do, and with no framework there is no
//! build step, nothing to fetch from a CDN, and the files below are what the browser runs.

pub mod live;
pub mod push;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use cmksim_scenario::{history, Verdict};
use cmksim_sim::{Event, SimTime};
use serde_json::{json, Value};

/// The page.
pub const INDEX_HTML: &str = include_str!("index.html");
/// Its script: the stream of frames both modes read, and the levers.
pub const DASHBOARD_JS: &str = include_str!("dashboard.js");
/// Its style.
pub const DASHBOARD_CSS: &str = include_str!("dashboard.css");

/// Where the page is served (the door's root) and where its assets are.
pub const PAGE_PATH: &str = "/";
pub const JS_PATH: &str = "/_cmksim/dashboard/dashboard.js";
pub const CSS_PATH: &str = "/_cmksim/dashboard/dashboard.css";

/// The page and its assets, for any router state (the door's, or the demo server's).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(PAGE_PATH, get(page))
        .route(JS_PATH, get(script))
        .route(CSS_PATH, get(style))
}

async fn page() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", DASHBOARD_JS)
}

async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", DASHBOARD_CSS)
}

/// An embedded file; not cached, so that a rebuilt binary is seen at the next load.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
}

/// Events kept for the state panel at most (the oldest are dropped past this; they are rare:
/// key and vault changes and storage state transitions).
pub const STATE_EVENTS_MAX: usize = 100_000;

/// The events that change a lane's state ([`history::changes_state`]), kept apart from the log
/// as they are recorded, so that the states can be read at every frame without copying the
/// whole log.
#[derive(Default)]
pub struct StateEvents {
    events: std::sync::Mutex<Vec<Event>>,
}

impl StateEvents {
    /// Keeps `event` when it can change a state.
    pub fn push(&self, event: &Event) {
        if !history::changes_state(event) {
            return;
        }
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.len() >= STATE_EVENTS_MAX {
            events.remove(0);
        }
        events.push(event.clone());
    }

    /// The current states ([`states_json`] of the kept events).
    pub fn states_json(&self) -> Value {
        states_json(&self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The key's and each storage's current state, as the report's lanes see them.
pub fn states_json(events: &[Event]) -> Value {
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

/// The expectations and invariants as the page lists them.
pub fn verdicts_json(expectations: &[Verdict], invariants: &[Verdict]) -> Value {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_only_embedded_assets() {
        assert!(INDEX_HTML.contains(JS_PATH));
        assert!(INDEX_HTML.contains(CSS_PATH));
        // Offline: nothing is loaded from another host.
        for asset in [INDEX_HTML, DASHBOARD_JS, DASHBOARD_CSS] {
            assert!(!asset.contains("http://"), "an absolute URL in an asset");
            assert!(!asset.contains("https://") || asset == INDEX_HTML);
        }
    }

    #[test]
    fn every_control_of_the_page_is_a_labelled_button_or_field() {
        assert!(INDEX_HTML.contains("<button type=\"button\" id=\"play\""));
        assert!(INDEX_HTML.contains("<label for=\"speed\">"));
        // Live mode signs in by a one-time link (a session cookie): no token field to paste in.
        assert!(!INDEX_HTML.contains("type=\"password\""));
        // Levers are made by the script as <button type="button"> with their label as text.
        assert!(DASHBOARD_JS.contains("document.createElement(\"button\")"));
    }
}
