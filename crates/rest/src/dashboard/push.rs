//! Pushing the dashboard's data to the page as it is written: the narration feed built from the
//! event log, and a hub that streams frames to every open page as Server-Sent Events.
//!
//! Why push: a page that polled every 100 ms trailed a 3600× run by 1.5–3 simulated minutes
//! (one poll interval alone is six simulated minutes there, plus the answer's judging). Here the
//! event log's sink and the run's clock wake a publisher, which sends one frame — the clock, the
//! states, the new narration lines, and the [`STICKY_KEYS`] (the page's heading and levers, the
//! verdicts) only when they changed — to every open page at most every [`FRAME_EVERY_MIN`]
//! (10 ms: 36 simulated seconds at 3600×; 5 ms was tried and measured slower: at 200 frames a
//! second the page, its reports and the publisher took CPU from the run, which reached 1,000–
//! 1,600× instead of 2,400–2,700× on this two-core machine), and at least every
//! [`IDLE_FRAME_EVERY`] so that a quiet live world still shows its clock moving. A frame is a few hundred bytes: the heading,
//! the story and the levers (1.5 KB) went out in every frame before, and the verdicts every
//! time they were judged, changed or not.
//!
//! Each stream is a page with a number of its own ([`Subscription::page`], in the first frame
//! as `"page"`), so that a simulated run can be paced against what each page has drawn
//! (`cmksim_world::pacer`: the page reports it, the run waits for the slowest).
//!
//! Bounds, and why a run is never held up by a page: each page has its own buffer of
//! [`CLIENT_FRAMES_MAX`] frames, filled by the publisher with `try_send` only. A page that falls
//! that far behind is dropped: its stream delivers what it had buffered, then a `dropped` event
//! that says so, and ends; the browser's `EventSource` reconnects by itself after
//! [`RECONNECT_AFTER`], sending the last frame id it read (`Last-Event-ID`, the number of
//! narration lines it has), and the new stream starts with the lines it missed. At most
//! [`CLIENTS_MAX`] pages at once; narration lines kept: [`FEED_LINES_MAX`].
//!
//! One home for both modes: `cmksim demo --web` (a simulated run in that process) and the HTTPS
//! door's live mode use this feed, hub and frame shape; only the status (clock, states,
//! verdicts) comes from each mode's own source. The wall clock is read here only to space frames
//! (presentation), never as simulation input.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use cmksim_scenario::narrate::{NarrateOptions, Narrator};
use cmksim_sim::{Event, SimTime};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Notify};
use tokio_stream::{Stream, StreamExt};

/// Frames a page may have waiting before it is dropped (at 100 frames a second, 2.5 s).
pub const CLIENT_FRAMES_MAX: usize = 256;
/// Pages streaming at once; one more is refused with 503.
pub const CLIENTS_MAX: usize = 16;
/// The shortest wall time between two frames.
pub const FRAME_EVERY_MIN: Duration = Duration::from_millis(10);
/// The longest wall time without a frame (the clock of a quiet world still moves).
pub const IDLE_FRAME_EVERY: Duration = Duration::from_millis(500);
/// Narration lines in one frame; more wait for the next frame (sent at once).
pub const LINES_PER_FRAME_MAX: usize = 500;
/// Narration lines kept for the page; past this, lines are counted but not kept.
pub const FEED_LINES_MAX: usize = 100_000;
/// Events held back before T+0 (the world being built), as the terminal narrator does.
pub const HELD_EVENTS_MAX: usize = 10_000;
/// How long a dropped page's browser waits before it reconnects.
pub const RECONNECT_AFTER: Duration = Duration::from_millis(250);

/// The event kind of the scenario's start (T+0 of a simulated run).
const SCENARIO_STARTED: &str = "scenario.started";
/// Event kinds shown in the lever colour: a dashboard lever pulled in live mode.
pub const LEVER_EVENT: &str = "dashboard.lever";
/// Keys of a status sent to a page only when their value changed (and always in a page's first
/// frame): the page's heading and levers (`meta`), the verdicts.
pub const STICKY_KEYS: [&str; 2] = ["meta", "verdicts"];

/// One narrated line for the page.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedLine {
    pub text: String,
    /// Simulated milliseconds since T+0.
    pub t_ms: i64,
    /// `narration` (the scenario's own words), `lever` (a dashboard lever) or empty.
    pub class: &'static str,
}

/// The narration, built line by line as events are recorded.
pub struct Feed {
    narrator: Option<Narrator>,
    start: Option<SimTime>,
    held: Vec<Event>,
    lines: Vec<FeedLine>,
    lines_not_kept: u64,
}

impl Default for Feed {
    fn default() -> Feed {
        Feed::new()
    }
}

impl Feed {
    /// A feed whose T+0 is the run's `scenario.started` event (events before it are held).
    pub fn new() -> Feed {
        Feed {
            narrator: None,
            start: None,
            held: Vec::new(),
            lines: Vec::new(),
            lines_not_kept: 0,
        }
    }

    /// A feed whose T+0 is `start` (live services: their simulated epoch).
    pub fn starting_at(start: SimTime) -> Feed {
        Feed {
            narrator: Some(Narrator::new(start, NarrateOptions::default())),
            start: Some(start),
            ..Feed::new()
        }
    }

    /// T+0, once known.
    pub fn start(&self) -> Option<SimTime> {
        self.start
    }

    /// The lines kept so far, oldest first.
    pub fn lines(&self) -> &[FeedLine] {
        &self.lines
    }

    /// Lines narrated past [`FEED_LINES_MAX`] and not kept.
    pub fn lines_not_kept(&self) -> u64 {
        self.lines_not_kept
    }

    /// Narrates `event` (or holds it until T+0).
    pub fn push(&mut self, event: &Event) {
        if self.narrator.is_none() {
            if event.kind != SCENARIO_STARTED {
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
        let web_step = event.kind == cmksim_scenario::events::SCENARIO_STEP
            && cmksim_scenario::events::str_field(event, "step")
                .is_some_and(|s| s.starts_with("web-"));
        let class = if event.kind == cmksim_scenario::events::SCENARIO_NARRATE {
            "narration"
        } else if web_step || event.kind == LEVER_EVENT {
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

fn lines_json(lines: &[FeedLine]) -> Value {
    Value::Array(
        lines
            .iter()
            .map(|l| json!({"text": l.text, "t_ms": l.t_ms, "class": l.class}))
            .collect(),
    )
}

/// A frame on its way to one page: its id (narration lines up to it) and its JSON.
type Frame = (usize, Arc<str>);

struct Client {
    tx: mpsc::Sender<Frame>,
    /// Set when the page fell [`CLIENT_FRAMES_MAX`] frames behind and was dropped.
    dropped: Arc<AtomicBool>,
}

struct HubInner {
    clients: Vec<Client>,
    /// Narration lines already sent in frames (a new page's backlog ends here).
    next: usize,
    /// The newest status sent, without the sticky keys (a new page's first frame).
    status: Value,
    /// The newest value of each of the [`STICKY_KEYS`] (merged into a new page's first frame).
    sticky: serde_json::Map<String, Value>,
    /// Pages dropped for being slow, since the start.
    dropped: u64,
    /// The number the next page gets.
    next_page: u64,
}

/// A page's stream and its number.
pub struct Subscription<S> {
    /// The page's number, unique in this hub (also in its first frame, `"page"`).
    pub page: u64,
    pub stream: S,
}

/// Why a page's stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error("{CLIENTS_MAX} pages are already following this dashboard; close one and reload")]
    Full,
}

/// The open pages and what they have been sent.
pub struct Hub {
    inner: Mutex<HubInner>,
    wake: Arc<Notify>,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub::new()
    }
}

impl Hub {
    pub fn new() -> Hub {
        Hub {
            inner: Mutex::new(HubInner {
                clients: Vec::new(),
                next: 0,
                status: Value::Null,
                sticky: serde_json::Map::new(),
                dropped: 0,
                next_page: 1,
            }),
            wake: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the publisher for a frame (cheap; called by the event sink at every event).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The notifier [`Hub::wake`] uses, for a producer that holds no reference to the hub (the
    /// run's clock).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Pages following now.
    pub fn clients(&self) -> usize {
        self.lock().clients.len()
    }

    /// Pages dropped for being slow, since the start.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Sends `status` (its [`STICKY_KEYS`] only when they changed) and the narration lines not
    /// sent yet to every page; a page whose buffer is full is dropped. Returns true when lines
    /// are left for the next frame.
    pub fn publish(&self, feed: &Mutex<Feed>, mut status: Value) -> bool {
        let feed = feed.lock().unwrap_or_else(|p| p.into_inner());
        let mut inner = self.lock();
        let lines = feed.lines();
        let from = inner.next.min(lines.len());
        let to = (from + LINES_PER_FRAME_MAX).min(lines.len());
        if let Value::Object(map) = &mut status {
            for key in STICKY_KEYS {
                let Some(value) = map.remove(key) else {
                    continue;
                };
                if inner.sticky.get(key) != Some(&value) {
                    inner.sticky.insert(key.to_string(), value.clone());
                    map.insert(key.to_string(), value);
                }
            }
        }
        let frame = json!({"status": status, "lines": lines_json(&lines[from..to]), "next": to});
        if let Value::Object(map) = &mut status {
            for key in STICKY_KEYS {
                map.remove(key);
            }
        }
        inner.status = status;
        inner.next = to;
        let frame: Frame = (to, Arc::from(frame.to_string()));
        let mut dropped = 0;
        inner
            .clients
            .retain(|client| match client.tx.try_send(frame.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    client.dropped.store(true, Ordering::SeqCst);
                    dropped += 1;
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        inner.dropped += dropped;
        to < lines.len()
    }

    /// A new page's stream, starting after its `after` narration lines (its `Last-Event-ID`;
    /// an id past what this server has sent, from an earlier server, starts from the first
    /// line and tells the page to clear its feed).
    pub fn subscribe(
        &self,
        feed: &Mutex<Feed>,
        after: usize,
    ) -> Result<
        Subscription<impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static>,
        SubscribeError,
    > {
        let feed = feed.lock().unwrap_or_else(|p| p.into_inner());
        let mut inner = self.lock();
        if inner.clients.len() >= CLIENTS_MAX {
            return Err(SubscribeError::Full);
        }
        let next = inner.next.min(feed.lines().len());
        let from = if after > next { 0 } else { after };
        let page = inner.next_page;
        inner.next_page += 1;
        let mut status = inner.status.clone();
        if let Value::Object(map) = &mut status {
            for (key, value) in &inner.sticky {
                map.insert(key.clone(), value.clone());
            }
        }
        // The backlog in frames of at most LINES_PER_FRAME_MAX lines; the status in each (the
        // sticky keys in the first), so that the page draws at once.
        let mut backlog: Vec<Frame> = Vec::new();
        let mut at = from;
        loop {
            let to = (at + LINES_PER_FRAME_MAX).min(next);
            let frame = json!({
                "status": status,
                "lines": lines_json(&feed.lines()[at..to]),
                "next": to,
                "reset": at == from && from == 0,
                "page": page,
            });
            if let Value::Object(map) = &mut status {
                for key in STICKY_KEYS {
                    map.remove(key);
                }
            }
            backlog.push((to, Arc::from(frame.to_string())));
            at = to;
            if at >= next {
                break;
            }
        }
        let (tx, rx) = mpsc::channel(CLIENT_FRAMES_MAX);
        let dropped = Arc::new(AtomicBool::new(false));
        inner.clients.push(Client {
            tx,
            dropped: dropped.clone(),
        });
        drop(inner);
        drop(feed);
        let mut first = true;
        let frames = tokio_stream::iter(backlog)
            .chain(tokio_stream::wrappers::ReceiverStream::new(rx))
            .map(move |(id, data)| {
                let mut event = SseEvent::default()
                    .id(id.to_string())
                    .event("frame")
                    .data(&*data);
                if std::mem::take(&mut first) {
                    event = event.retry(RECONNECT_AFTER);
                }
                Ok(event)
            });
        let farewell = tokio_stream::once(()).filter_map(move |()| {
            dropped.load(Ordering::SeqCst).then(|| {
                Ok(SseEvent::default().event("dropped").data(format!(
                    "this page fell {CLIENT_FRAMES_MAX} frames behind the run and was \
                     disconnected; it reconnects from the last line it has"
                )))
            })
        });
        Ok(Subscription {
            page,
            stream: frames.chain(farewell),
        })
    }
}

/// The `Last-Event-ID` a reconnecting `EventSource` sends (or `?after=`), as a line count.
pub fn last_event_id(headers: &http::HeaderMap, query_after: Option<usize>) -> usize {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(query_after)
        .unwrap_or(0)
}

/// The SSE response of a page's stream (or 503 when [`CLIENTS_MAX`] pages follow already).
pub fn stream_response(hub: &Hub, feed: &Mutex<Feed>, after: usize) -> Response {
    match hub.subscribe(feed, after) {
        Ok(subscription) => sse_response(subscription.stream),
        Err(e) => full_response(&e),
    }
}

/// A page's stream as an SSE response.
pub fn sse_response(
    stream: impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static,
) -> Response {
    (
        [(http::header::CACHE_CONTROL, "no-store")],
        Sse::new(stream).keep_alive(KeepAlive::default()),
    )
        .into_response()
}

/// The refusal of a stream (503).
pub fn full_response(e: &SubscribeError) -> Response {
    (
        http::StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({ "error": e.to_string() })),
    )
        .into_response()
}

/// The status of one frame, built off the async workers (it may walk the whole event log).
pub type StatusSource = Arc<dyn Fn() -> Value + Send + Sync>;

/// Publishes frames until `stopping` turns true: waits for a wake (an event, the clock) or
/// [`IDLE_FRAME_EVERY`], spaces frames by [`FRAME_EVERY_MIN`], builds the status only while a
/// page follows.
pub async fn publish_loop(
    hub: Arc<Hub>,
    feed: Arc<Mutex<Feed>>,
    status: StatusSource,
    mut stopping: watch::Receiver<bool>,
) {
    let wake = hub.waker();
    let mut last = Instant::now();
    let mut more = false;
    loop {
        if !more {
            tokio::select! {
                () = crate::listener::stopped(&mut stopping) => return,
                () = wake.notified() => {}
                () = tokio::time::sleep(IDLE_FRAME_EVERY) => {}
            }
        }
        if let Some(wait) = FRAME_EVERY_MIN.checked_sub(last.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        last = Instant::now();
        if hub.clients() == 0 {
            more = false;
            continue;
        }
        let status = status.clone();
        let value = match tokio::task::spawn_blocking(move || status()).await {
            Ok(value) => value,
            Err(e) => {
                tracing::warn!("dashboard: building a frame failed: {e}");
                continue;
            }
        };
        more = hub.publish(&feed, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmksim_sim::EventLog;

    fn event(seq: u64, at_ms: i64, kind: &str, data: Value) -> Event {
        let log = EventLog::default();
        let mut e = log.record_raw(SimTime(at_ms), "scenario", kind, kind.to_string(), data);
        e.seq = seq;
        e
    }

    #[test]
    fn the_feed_starts_at_t0_and_marks_levers_and_narration() {
        let mut feed = Feed::new();
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
        feed.push(&event(
            5,
            70_000,
            LEVER_EVENT,
            json!({"lever": "disable-key"}),
        ));
        let classes: Vec<&str> = feed.lines.iter().map(|l| l.class).collect();
        assert_eq!(classes, ["", "", "lever", "narration", "lever"]);
        assert_eq!(feed.lines[0].t_ms, -4_000, "a held event, relative to T+0");
        assert_eq!(feed.lines[2].t_ms, 60_000);
    }

    #[test]
    fn a_live_feed_starts_at_the_given_epoch() {
        let mut feed = Feed::starting_at(SimTime(10_000));
        feed.push(&event(1, 70_000, "keyvault.key.created", json!({})));
        assert_eq!(feed.lines().len(), 1);
        assert_eq!(feed.lines()[0].t_ms, 60_000);
    }

    fn feed_of(lines: usize) -> Mutex<Feed> {
        let mut feed = Feed::starting_at(SimTime(0));
        for i in 0..lines {
            // Distinct kinds: a routine repeat would not be narrated.
            feed.push(&event(
                i as u64,
                i as i64,
                &format!("test.kind{i}"),
                json!({}),
            ));
        }
        Mutex::new(feed)
    }

    fn frames(
        stream: impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static,
    ) -> Vec<String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async move {
            tokio::pin!(stream);
            let mut out = Vec::new();
            // Bounded: the test's streams end (the hub dropped their sender) after a few frames.
            for _ in 0..10_000 {
                match stream.next().await {
                    Some(Ok(e)) => out.push(format!("{e:?}")),
                    Some(Err(never)) => match never {},
                    None => break,
                }
            }
            out
        })
    }

    #[test]
    fn a_page_gets_its_backlog_then_the_new_frames() {
        let feed = feed_of(3);
        let hub = Hub::new();
        assert!(!hub.publish(&feed, json!({"clock": 1, "verdicts": ["v"]})));
        let stream = hub.subscribe(&feed, 1).unwrap().stream;
        feed.lock()
            .unwrap()
            .push(&event(9, 9, "test.new", json!({})));
        assert!(!hub.publish(&feed, json!({"clock": 2})));
        assert_eq!(hub.clients(), 1);
        // Dropping every page (a full hub closes nothing: the page is gone when unsubscribed).
        hub.lock().clients.clear();
        let got = frames(stream);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].contains("test.kind1") && got[0].contains("test.kind2"));
        assert!(
            !got[0].contains("test.kind0"),
            "only the lines after the page's id"
        );
        assert!(
            got[0].contains("verdicts"),
            "the first frame carries the verdicts"
        );
        assert!(got[1].contains("test.new") && got[1].contains("\\\"clock\\\":2"));
    }

    #[test]
    fn a_slow_page_is_dropped_with_a_message_and_never_blocks() {
        let feed = feed_of(1);
        let hub = Hub::new();
        let stream = hub.subscribe(&feed, 0).unwrap().stream;
        // The publisher never waits: past the buffer the page is dropped.
        for clock in 0..CLIENT_FRAMES_MAX + 5 {
            hub.publish(&feed, json!({ "clock": clock }));
        }
        assert_eq!(hub.clients(), 0);
        assert_eq!(hub.dropped(), 1);
        let got = frames(stream);
        assert_eq!(
            got.len(),
            1 + CLIENT_FRAMES_MAX + 1,
            "backlog, buffer, farewell"
        );
        assert!(got.last().unwrap().contains("fell 256 frames behind"));
        // It reconnects from its last id and is followed again.
        assert!(hub.subscribe(&feed, 1).is_ok());
        assert_eq!(hub.clients(), 1);
    }

    #[test]
    fn an_id_from_another_server_starts_over_and_the_pages_are_bounded() {
        let feed = feed_of(2);
        let hub = Hub::new();
        hub.publish(&feed, json!({}));
        let stream = hub.subscribe(&feed, 99).unwrap().stream;
        hub.lock().clients.clear();
        let got = frames(stream);
        assert!(got[0].contains("\\\"reset\\\":true") && got[0].contains("test.kind0"));
        let mut streams = Vec::new();
        for _ in 0..CLIENTS_MAX {
            streams.push(hub.subscribe(&feed, 0).map(|_| ()));
        }
        assert!(streams.iter().all(Result::is_ok));
        assert_eq!(
            hub.subscribe(&feed, 0).map(|_| ()),
            Err(SubscribeError::Full)
        );
    }

    #[test]
    fn sticky_keys_go_out_when_they_change_and_in_every_first_frame() {
        let feed = feed_of(0);
        let hub = Hub::new();
        let meta = json!({"title": "T", "levers": ["disable-key"]});
        hub.publish(&feed, json!({"clock": 1, "meta": meta, "verdicts": [1]}));
        let first = hub.subscribe(&feed, 0).unwrap();
        let second = hub.subscribe(&feed, 0).unwrap();
        assert_ne!(first.page, second.page, "each page has its own number");
        // Unchanged meta and verdicts: not sent again; changed verdicts: sent.
        hub.publish(&feed, json!({"clock": 2, "meta": meta, "verdicts": [1]}));
        hub.publish(&feed, json!({"clock": 3, "meta": meta, "verdicts": [2]}));
        let late = hub.subscribe(&feed, 0).unwrap();
        hub.lock().clients.clear();
        let got = frames(first.stream);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].contains("\\\"title\\\"") && got[0].contains("\\\"page\\\":1"));
        assert!(
            !got[1].contains("title") && !got[1].contains("verdicts"),
            "{}",
            got[1]
        );
        assert!(!got[2].contains("title") && got[2].contains("\\\"verdicts\\\":[2]"));
        // A page that comes later gets the newest of each in its first frame.
        let got = frames(late.stream);
        assert!(got[0].contains("title") && got[0].contains("\\\"verdicts\\\":[2]"));
        assert!(got[0].contains(&format!("\\\"page\\\":{}", late.page)));
    }

    #[test]
    fn last_event_id_wins_over_the_query() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(last_event_id(&headers, Some(4)), 4);
        headers.insert("last-event-id", "17".parse().unwrap());
        assert_eq!(last_event_id(&headers, Some(4)), 17);
        assert_eq!(last_event_id(&http::HeaderMap::new(), None), 0);
    }
}
