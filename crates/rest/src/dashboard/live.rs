//! Live mode of the dashboard at `/` of the HTTPS door (`cmksim serve all --rest-listen`): the
//! same swimlanes, narration, clock and verdicts as `cmksim demo --web`, drawn from the three
//! services' event logs, and the levers live services can do, each acted through the services'
//! gRPC APIs as the administrator and recorded in the dashboard's event log.
//!
//! Signing in, and why this way: the page never holds a token. `serve` prints a one-time link
//! (`/_cmksim/dashboard/login?code=…`, as Jupyter prints its token URL); opening it sets a
//! session cookie (`HttpOnly`, `Secure`, `SameSite=Strict`, path `/_cmksim/dashboard`) and
//! sends the browser to `/`. Of the two ways the issue offered, the other — the page getting a
//! token from the identity endpoint with a credential given on the command line — would put the
//! administrator's secret or a bearer token into the page's script, where any script of the
//! origin and every screenshot of the devtools can read it, and would make the operator type a
//! secret into a browser. The cookie cannot be read by script, is sent only to the dashboard's
//! own routes, only same-site, and the link is spent on first use (a new one:
//! `POST /_cmksim/dashboard/links` with the administrator's token). A lever is a `POST` that must
//! also carry the `x-cmksim-dashboard` header, which a cross-site form cannot send. Codes and
//! session ids are 256 random bits from the operating system (ring's `SystemRandom`); they are
//! compared in constant time, never logged; the one-time link is printed on the server's
//! standard output once, like the first start's credentials. At most [`LINKS_MAX`] unspent links
//! and [`SESSIONS_MAX`] sessions (the oldest is signed out first).
//!
//! Tokens for the services: the door acts as the administrator of `credentials.json`, with the
//! identity crate's [`TokenSource`] (one token per audience, renewed before it expires).
//!
//! Events: on the first page, one follower per service subscribes to its event log (after the
//! last seq it saw, again every [`RESUBSCRIBE_AFTER`] while the service is away, until the door
//! stops) and records into a log of at most [`LIVE_EVENTS_MAX`] events (the oldest are
//! evicted). Verdicts: the oracle's invariants (those that need no scenario timeline) judged on
//! that log with a scenario that has no world of its own, under the behaviour profile the
//! services run — `--profile` and every `--profile-override`, handed over by `serve all`
//! ([`LiveBoard::judge_under`]) — so that a deadline the invariants check is the one the
//! services were started with; the default profile only for a door started alone (`serve rest`),
//! which does not know the services' profile.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cmksim_identity::{audience, AuthChannel, TokenSource};
use cmksim_proto::events::v1 as evp;
use cmksim_proto::keyvault::v1 as kvp;
use cmksim_proto::storage::v1 as stp;
use cmksim_scenario::lever::Lever;
use cmksim_scenario::{oracle, report, Scenario};
use cmksim_sim::{Event, EventLog, SimTime};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_stream::StreamExt;

use super::push::{self, Feed, Hub};
use crate::auth::{admin_caller, forward};
use crate::error::echo;
use crate::AppState;

/// Events the dashboard keeps in memory (the oldest are evicted past this).
pub const LIVE_EVENTS_MAX: usize = 200_000;
/// Unspent one-time links at most (the oldest is forgotten first).
pub const LINKS_MAX: usize = 8;
/// Signed-in browsers at most (the oldest is signed out first).
pub const SESSIONS_MAX: usize = 8;
/// How long a follower waits before subscribing again to a service that went away.
pub const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);
/// The invariants are judged again this often when events were added (wall time;
/// presentation only).
const JUDGE_EVERY: Duration = Duration::from_millis(500);
/// The session cookie.
pub const COOKIE: &str = "cmksim_dashboard";
/// The header a lever's request must carry (a cross-site form cannot).
pub const LEVER_HEADER: &str = "x-cmksim-dashboard";
/// Largest request body read.
const BODY_BYTES_MAX: usize = 4096;
/// The permissions a restored access policy gets when the removed one is not known.
const CLUSTER_KEY_PERMISSIONS: [&str; 3] = ["get", "wrapKey", "unwrapKey"];
/// The scenario the invariants are judged with: no world, no timeline, the default profile.
const LIVE_SCENARIO: &str = r#"[scenario]
name = "live"
title = "Live services"
seed = 0
profile = "azure-2020"
duration = "1h"
"#;

/// Why a sign-in or a lever was refused.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("the operating system's random source failed; no sign-in link can be made")]
    Random,
    #[error(
        "this sign-in link is not valid: it was used already or belongs to another server; \
         get a new one with POST /_cmksim/dashboard/links and the administrator's token"
    )]
    BadLink,
    #[error("not signed in: open the one-time dashboard link that `cmksim serve` printed")]
    NotSignedIn,
    #[error("a lever must be sent by the dashboard page (header {LEVER_HEADER})")]
    NotFromThePage,
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "no cluster with a customer-managed key in subscription {0}: create one (and give it a \
         key) before pulling a lever"
    )]
    NoCmkCluster(String),
    #[error("{service} refused: {message}")]
    Refused {
        service: &'static str,
        message: String,
    },
}

impl LiveError {
    fn status(&self) -> StatusCode {
        match self {
            LiveError::Random => StatusCode::INTERNAL_SERVER_ERROR,
            LiveError::BadLink | LiveError::NotFromThePage => StatusCode::FORBIDDEN,
            LiveError::NotSignedIn => StatusCode::UNAUTHORIZED,
            LiveError::BadRequest(_) => StatusCode::BAD_REQUEST,
            LiveError::NoCmkCluster(_) => StatusCode::CONFLICT,
            LiveError::Refused { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    fn refused(service: &'static str) -> impl Fn(tonic::Status) -> LiveError {
        move |status| LiveError::Refused {
            service,
            message: status.message().to_string(),
        }
    }
}

impl IntoResponse for LiveError {
    fn into_response(self) -> Response {
        (self.status(), Json(json!({ "error": self.to_string() }))).into_response()
    }
}

/// 256 random bits, hex.
fn secret() -> Result<String, LiveError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| LiveError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Equal, in time that does not depend on where two strings of equal length differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// One-time links and the sessions they opened.
#[derive(Default)]
struct Sessions {
    links: Mutex<VecDeque<String>>,
    sessions: Mutex<VecDeque<String>>,
}

impl Sessions {
    fn new_link(&self) -> Result<String, LiveError> {
        let code = secret()?;
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        if links.len() >= LINKS_MAX {
            links.pop_front();
        }
        links.push_back(code.clone());
        Ok(code)
    }

    /// Spends `code`; a new session id.
    fn redeem(&self, code: &str) -> Result<String, LiveError> {
        {
            let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
            let at = links
                .iter()
                .position(|c| same(c, code))
                .ok_or(LiveError::BadLink)?;
            links.remove(at);
        }
        let session = secret()?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= SESSIONS_MAX {
            sessions.pop_front();
        }
        sessions.push_back(session.clone());
        Ok(session)
    }

    fn signed_in(&self, headers: &HeaderMap) -> Result<(), LiveError> {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let found = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| name == COOKIE && sessions.iter().any(|s| same(s, value)));
        if found {
            Ok(())
        } else {
            Err(LiveError::NotSignedIn)
        }
    }
}

/// What the page shows that is judged from the whole log.
#[derive(Default)]
struct Judged {
    events_seen: u64,
    verdicts: Value,
    states: Value,
    states_events: u64,
}

/// The cluster the levers act on.
#[derive(Clone, Debug)]
struct Target {
    cluster: stp::ClusterRef,
    vault: String,
    key: String,
    key_vault_uri: String,
    principal: String,
    tenant: String,
}

impl Target {
    fn label(&self) -> String {
        format!(
            "cluster {} (key {}/{})",
            self.cluster.cluster_name, self.vault, self.key
        )
    }
}

/// The live dashboard of one door.
pub struct LiveBoard {
    sessions: Sessions,
    log: EventLog,
    feed: Arc<Mutex<Feed>>,
    hub: Arc<Hub>,
    state_events: Arc<super::StateEvents>,
    following: AtomicBool,
    judged: Mutex<Judged>,
    /// The scenario the invariants are judged with ([`LIVE_SCENARIO`] under the services'
    /// profile once [`LiveBoard::judge_under`] gave it).
    scenario: Mutex<Option<Scenario>>,
    /// True once the services' profile was given (the default's until then).
    profile_given: AtomicBool,
    target: Mutex<Option<Target>>,
    /// Key permissions of access policies removed by a lever, per (vault, object id).
    removed: Mutex<BTreeMap<(String, String), Vec<String>>>,
    pulled: AtomicU64,
}

impl LiveBoard {
    /// A board whose T+0 is the services' simulated `epoch`.
    pub fn new(epoch: SimTime) -> LiveBoard {
        let log = EventLog::new(LIVE_EVENTS_MAX);
        let feed = Arc::new(Mutex::new(Feed::starting_at(epoch)));
        let hub = Arc::new(Hub::new());
        let state_events = Arc::new(super::StateEvents::default());
        {
            let (feed, hub, state_events) = (feed.clone(), hub.clone(), state_events.clone());
            log.add_sink(Box::new(move |event| {
                feed.lock().unwrap_or_else(|p| p.into_inner()).push(event);
                state_events.push(event);
                hub.wake();
            }));
        }
        let scenario =
            cmksim_scenario::validate_str(std::path::Path::new("live.toml"), LIVE_SCENARIO).ok();
        LiveBoard {
            sessions: Sessions::default(),
            log,
            feed,
            hub,
            state_events,
            following: AtomicBool::new(false),
            judged: Mutex::new(Judged::default()),
            scenario: Mutex::new(scenario),
            profile_given: AtomicBool::new(false),
            target: Mutex::new(None),
            removed: Mutex::new(BTreeMap::new()),
            pulled: AtomicU64::new(0),
        }
    }

    /// Judges the invariants under `profile` (the one the services run, overrides applied)
    /// instead of the default profile.
    pub fn judge_under(&self, profile: cmksim_sim::profile::Profile) {
        let mut scenario = self.scenario.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(scenario) = scenario.as_mut() {
            scenario.meta.profile_name = profile.name.clone();
            scenario.profile = profile;
            self.profile_given.store(true, Ordering::SeqCst);
        }
        // Judged again at the next frame under the new profile.
        let mut judged = self.judged.lock().unwrap_or_else(|p| p.into_inner());
        judged.events_seen = 0;
    }

    /// How the page names the profile of the invariants: the services' own (given by
    /// [`LiveBoard::judge_under`]) or the default.
    fn profile_label(&self) -> Option<String> {
        let name = self.profile_name()?;
        let given = self.profile_given.load(Ordering::SeqCst);
        Some(if given {
            format!("the services' profile {name}")
        } else {
            format!("the default profile {name} (a door alone does not know the services')")
        })
    }

    /// The name of the profile the invariants are judged under.
    pub fn profile_name(&self) -> Option<String> {
        self.scenario
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|s| s.meta.profile_name.clone())
    }

    /// A new one-time sign-in link's path and query (`/_cmksim/dashboard/login?code=…`).
    pub fn new_login_path(&self) -> Result<String, LiveError> {
        Ok(format!(
            "/_cmksim/dashboard/login?code={}",
            self.sessions.new_link()?
        ))
    }

    /// The levers pulled so far and those pulled from now on, as `/_cmksim/events` shows
    /// events (`"service": "dashboard"`); ends when the reader falls `buffer_events` behind.
    pub fn lever_events(
        &self,
        buffer_events: usize,
    ) -> impl tokio_stream::Stream<Item = Value> + Send + 'static {
        let (backlog, receiver) = self.log.subscribe(0, buffer_events);
        tokio_stream::iter(backlog)
            .chain(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .filter(|e| e.kind == push::LEVER_EVENT)
            .map(|e| {
                json!({
                    "service": "dashboard",
                    "seq": e.seq,
                    "at": e.time,
                    "atMs": e.at_ms,
                    "source": e.source,
                    "kind": e.kind,
                    "message": e.message,
                    "data": e.data,
                })
            })
    }

    /// The events in time order (three services' logs interleave as they arrive).
    fn events(&self) -> Vec<Event> {
        let mut events = self.log.snapshot();
        events.sort_by_key(|e| e.at_ms);
        events
    }

    /// The page's status (the hub sends its `meta` and `verdicts` only when they changed).
    fn status(&self, state: &AppState) -> Value {
        let mut judged = self.judged.lock().unwrap_or_else(|p| p.into_inner());
        let recorded = self.log.recorded_events();
        if judged.states_events != recorded {
            judged.states = self.state_events.states_json();
            judged.states_events = recorded;
        }
        let now = state.clock.now();
        let epoch = state.clock.epoch();
        let target = self
            .target
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(Target::label);
        json!({
            "mode": "live",
            "phase": "live",
            "clock": {
                "t_ms": now.unix_ms() - epoch.unix_ms(),
                "sim_now_ms": now.unix_ms(),
                "end_label": format!("since {}", epoch.to_rfc3339()),
            },
            "pace": {"paused": false, "speed": state.clock.time_scale()},
            "meta": {
                "title": "Live services",
                "levers": Lever::ALL
                    .iter()
                    .filter(|l| l.live())
                    .map(|l| json!({"id": l.as_str(), "label": l.label()}))
                    .collect::<Vec<_>>(),
            },
            "target": target,
            "profile": self.profile_label(),
            "states": judged.states.clone(),
            "events": recorded,
            "verdicts": judged.verdicts.clone(),
        })
    }

    /// Judges the invariants on the whole log (it may hold [`LIVE_EVENTS_MAX`] events) when
    /// events were added, without the lock a frame reads, so a frame is never built behind a
    /// judging ([`judge_loop`] calls it every [`JUDGE_EVERY`]).
    fn judge(&self) {
        let recorded = self.log.recorded_events();
        let seen = self
            .judged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .events_seen;
        if seen == recorded {
            return;
        }
        let scenario = self
            .scenario
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(scenario) = scenario else {
            return;
        };
        let invariants = oracle::check_invariants(&scenario, &self.events());
        let verdicts = super::verdicts_json(&[], &invariants);
        let mut judged = self.judged.lock().unwrap_or_else(|p| p.into_inner());
        judged.verdicts = verdicts;
        judged.events_seen = recorded;
    }

    /// Starts following the services and publishing frames (once).
    fn follow(self: &Arc<Self>, state: &Arc<AppState>) {
        if self.following.swap(true, Ordering::SeqCst) {
            return;
        }
        for service in ["keyvault", "storage", "ingest"] {
            tokio::spawn(follow_service(self.clone(), state.clone(), service));
        }
        let status: push::StatusSource = {
            let (board, state) = (self.clone(), state.clone());
            Arc::new(move || board.status(&state))
        };
        tokio::spawn(judge_loop(self.clone(), state.stopping.clone()));
        tokio::spawn(push::publish_loop(
            self.hub.clone(),
            self.feed.clone(),
            status,
            state.stopping.clone(),
        ));
    }
}

/// Judges the invariants every [`JUDGE_EVERY`] until the door stops; one judging at a time, off
/// the async workers.
async fn judge_loop(board: Arc<LiveBoard>, mut stopping: tokio::sync::watch::Receiver<bool>) {
    // Unbounded on purpose, one judging per JUDGE_EVERY at most: the verdicts follow the live
    // events for as long as the door serves.
    loop {
        tokio::select! {
            () = crate::listener::stopped(&mut stopping) => return,
            () = tokio::time::sleep(JUDGE_EVERY) => {}
        }
        let board = board.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || board.judge()).await {
            tracing::warn!("dashboard: judging the live events failed: {e}");
        }
    }
}

/// Follows one service's event log into the board until the door stops.
async fn follow_service(board: Arc<LiveBoard>, state: Arc<AppState>, service: &'static str) {
    let channel = match service {
        "keyvault" => state.upstream.keyvault.clone(),
        "storage" => state.upstream.storage.clone(),
        _ => state.upstream.ingest.clone(),
    };
    let mut stopping = state.stopping.clone();
    let mut after_seq = 0;
    // Unbounded on purpose, one subscription per RESUBSCRIBE_AFTER at most: the dashboard
    // follows the services for as long as the door serves.
    loop {
        let mut client = evp::events_client::EventsClient::new(channel.clone());
        let request = evp::SubscribeRequest { after_seq };
        let subscribed = tokio::select! {
            () = crate::listener::stopped(&mut stopping) => return,
            answer = client.subscribe(request) => answer,
        };
        match subscribed {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                loop {
                    let item = tokio::select! {
                        () = crate::listener::stopped(&mut stopping) => return,
                        item = stream.next() => item,
                    };
                    let Some(Ok(event)) = item else { break };
                    after_seq = event.seq;
                    let data = serde_json::from_str(&event.data_json).unwrap_or(Value::Null);
                    board.log.record_raw(
                        SimTime(event.at_ms),
                        &event.source,
                        &event.kind,
                        event.message,
                        data,
                    );
                }
            }
            Err(status) => {
                tracing::debug!(
                    "dashboard: {service} events: {} (again in {RESUBSCRIBE_AFTER:?})",
                    status.message()
                );
            }
        }
        tokio::select! {
            () = crate::listener::stopped(&mut stopping) => return,
            () = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
        }
    }
}

/// The live routes of the dashboard.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/_cmksim/dashboard/login", get(login))
        .route("/_cmksim/dashboard/links", post(new_link))
        .route("/_cmksim/dashboard/session", get(session))
        .route("/_cmksim/dashboard/stream", get(stream))
        .route("/_cmksim/dashboard/swimlanes.svg", get(swimlanes))
        .route("/_cmksim/dashboard/lever", post(lever))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_BYTES_MAX))
}

#[derive(Deserialize)]
struct LoginQuery {
    #[serde(default)]
    code: String,
}

async fn login(
    State(state): State<Arc<AppState>>,
    Query(q): Query<LoginQuery>,
) -> Result<Response, LiveError> {
    let session = state.dashboard.sessions.redeem(&q.code)?;
    let cookie =
        format!("{COOKIE}={session}; Path=/_cmksim/dashboard; HttpOnly; Secure; SameSite=Strict");
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, super::PAGE_PATH.to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response())
}

async fn new_link(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> crate::error::RestResult<Response> {
    admin_caller(&state, &headers)?;
    let path = state
        .dashboard
        .new_login_path()
        .map_err(|e| crate::RestError::startup(e.to_string()))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "url": format!("{}{path}", state.public_url) })),
    )
        .into_response())
}

async fn session(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, LiveError> {
    state.dashboard.sessions.signed_in(&headers)?;
    Ok(Json(json!({"signedIn": true})).into_response())
}

#[derive(Deserialize)]
struct StreamQuery {
    after: Option<usize>,
}

async fn stream(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Response, LiveError> {
    state.dashboard.sessions.signed_in(&headers)?;
    state.dashboard.follow(&state);
    if let Err(e) = find_target(&state).await {
        tracing::debug!("dashboard: no lever target yet: {e}");
    }
    let after = push::last_event_id(&headers, q.after);
    Ok(push::stream_response(
        &state.dashboard.hub,
        &state.dashboard.feed,
        after,
    ))
}

async fn swimlanes(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, LiveError> {
    state.dashboard.sessions.signed_in(&headers)?;
    let board = state.dashboard.clone();
    let epoch = state.clock.epoch();
    let now = state.clock.now();
    let svg =
        tokio::task::spawn_blocking(move || report::render_swimlanes(&board.events(), epoch, now))
            .await
            .map_err(|e| LiveError::BadRequest(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeverBody {
    lever: String,
}

async fn lever(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, LiveError> {
    state.dashboard.sessions.signed_in(&headers)?;
    if headers.get(LEVER_HEADER).is_none() {
        return Err(LiveError::NotFromThePage);
    }
    let body: LeverBody = serde_json::from_slice(&body).map_err(|e| {
        LiveError::BadRequest(format!(
            "lever: expected {{\"lever\": \"disable-key\"}}: {}",
            echo(&e.to_string())
        ))
    })?;
    let live: Vec<&str> = Lever::ALL
        .iter()
        .filter(|l| l.live())
        .map(|l| l.as_str())
        .collect();
    let lever = Lever::parse(&body.lever)
        .filter(|l| l.live())
        .ok_or_else(|| {
            LiveError::BadRequest(format!(
                "no live lever named '{}' (the levers: {})",
                echo(&body.lever),
                live.join(", ")
            ))
        })?;
    let n = state.dashboard.pulled.fetch_add(1, Ordering::SeqCst) + 1;
    let step = format!("web-{n}-{}", lever.as_str());
    let outcome = pull(&state, lever).await;
    let (message, ok) = match &outcome {
        Ok(done) => (
            format!(
                "From the dashboard: {} — {done}.",
                lever.label().to_lowercase()
            ),
            true,
        ),
        Err(e) => (
            format!(
                "From the dashboard: {} — refused: {e}",
                lever.label().to_lowercase()
            ),
            false,
        ),
    };
    state.dashboard.log.record_raw(
        state.clock.now(),
        "dashboard",
        push::LEVER_EVENT,
        message,
        json!({"step": step, "lever": lever.as_str(), "ok": ok}),
    );
    let done = outcome?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "message": format!("{}: {done}", lever.label()) })),
    )
        .into_response())
}

/// The administrator's tokens: the door's one source ([`AppState::door_tokens`]), so that a
/// lever or a status reuses a token instead of having one issued per request.
fn tokens(state: &AppState) -> Arc<TokenSource> {
    state.door_tokens.clone()
}

/// The first cluster (by name) of the administrator's subscription that has a customer-managed
/// key; remembered for the status.
async fn find_target(state: &AppState) -> Result<Target, LiveError> {
    let storage = AuthChannel::new(state.upstream.storage.clone(), Some(tokens(state)));
    let mut clusters = stp::clusters_client::ClustersClient::new(storage)
        .list_clusters_by_subscription(stp::ListClustersBySubscriptionRequest {
            subscription_id: state.credentials.subscription_id.clone(),
        })
        .await
        .map_err(LiveError::refused("storage"))?
        .into_inner()
        .clusters;
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    let found = clusters.into_iter().find_map(|c| {
        let kv = c.key_vault_properties.as_ref()?;
        if kv.key_name.is_empty() || c.deleted_unix_ms.is_some() {
            return None;
        }
        let host = kv.key_vault_uri.trim().trim_start_matches("https://");
        let vault = crate::keyvault::vault_of_host(host.trim_end_matches('/'))?;
        let identity = c.identity.clone().unwrap_or_default();
        let parts: Vec<&str> = c.id.split('/').collect();
        // /subscriptions/{s}/resourceGroups/{rg}/providers/.../clusters/{name}
        let (subscription, group) = (parts.get(2)?, parts.get(4)?);
        Some(Target {
            cluster: stp::ClusterRef {
                subscription_id: subscription.to_string(),
                resource_group: group.to_string(),
                cluster_name: c.name.clone(),
            },
            vault,
            key: kv.key_name.clone(),
            key_vault_uri: kv.key_vault_uri.clone(),
            principal: identity.principal_id,
            tenant: identity.tenant_id,
        })
    });
    let target =
        found.ok_or_else(|| LiveError::NoCmkCluster(state.credentials.subscription_id.clone()))?;
    *state
        .dashboard
        .target
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some(target.clone());
    Ok(target)
}

/// Does `lever` to the live world; what was done, in words.
async fn pull(state: &AppState, lever: Lever) -> Result<String, LiveError> {
    let source = tokens(state);
    let token = |aud: &'static str| {
        let source = source.clone();
        async move {
            source
                .token(aud)
                .await
                .map_err(LiveError::refused("the identity authority"))
        }
    };
    let mut kv = kvp::key_vault_client::KeyVaultClient::new(state.upstream.keyvault.clone());
    let chaos = |mode: kvp::ChaosMode| {
        let channel = state.upstream.keyvault.clone();
        let token = token(audience::MANAGEMENT);
        async move {
            let token = token.await?;
            kvp::chaos_control_client::ChaosControlClient::new(channel)
                .set_chaos(forward(
                    Some(&token),
                    kvp::ChaosSettings {
                        mode: mode as i32,
                        ..Default::default()
                    },
                ))
                .await
                .map_err(LiveError::refused("Key Vault"))
        }
    };
    match lever {
        Lever::KeyvaultDown => {
            chaos(kvp::ChaosMode::Down).await?;
            return Ok("Key Vault is down".into());
        }
        Lever::KeyvaultUp => {
            chaos(kvp::ChaosMode::Up).await?;
            return Ok("Key Vault is up".into());
        }
        _ => {}
    }
    let target = find_target(state).await?;
    let key_ref = |version: &str| kvp::KeyRef {
        vault_name: target.vault.clone(),
        key_name: target.key.clone(),
        version: version.to_string(),
    };
    match lever {
        Lever::DisableKey | Lever::EnableKey => {
            let enabled = lever == Lever::EnableKey;
            let token = token(audience::VAULT).await?;
            kv.update_key(forward(
                Some(&token),
                kvp::UpdateKeyRequest {
                    key: Some(key_ref("")),
                    enabled: Some(enabled),
                    ..Default::default()
                },
            ))
            .await
            .map_err(LiveError::refused("Key Vault"))?;
            Ok(format!(
                "key {}/{} {}",
                target.vault,
                target.key,
                if enabled { "enabled" } else { "disabled" }
            ))
        }
        Lever::RotateKey => {
            let token = token(audience::VAULT).await?;
            let key = kv
                .rotate_key(forward(Some(&token), key_ref("")))
                .await
                .map_err(LiveError::refused("Key Vault"))?
                .into_inner();
            let kid = key.key.map(|k| k.kid).unwrap_or_default();
            Ok(format!(
                "key {}/{} rotated: {kid}",
                target.vault, target.key
            ))
        }
        Lever::RemoveAccessPolicy => {
            let token = token(audience::MANAGEMENT).await?;
            let vault = kv
                .get_vault(forward(
                    Some(&token),
                    kvp::VaultRef {
                        vault_name: target.vault.clone(),
                    },
                ))
                .await
                .map_err(LiveError::refused("Key Vault"))?
                .into_inner();
            if let Some(policy) = vault
                .access_policies
                .iter()
                .find(|p| p.object_id == target.principal)
            {
                state
                    .dashboard
                    .removed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(
                        (target.vault.clone(), target.principal.clone()),
                        policy.key_permissions.clone(),
                    );
            }
            kv.remove_access_policy(forward(
                Some(&token),
                kvp::RemoveAccessPolicyRequest {
                    vault_name: target.vault.clone(),
                    object_id: target.principal.clone(),
                },
            ))
            .await
            .map_err(LiveError::refused("Key Vault"))?;
            Ok(format!(
                "the access policy of cluster {}'s identity removed from vault {}",
                target.cluster.cluster_name, target.vault
            ))
        }
        Lever::RestoreAccessPolicy => {
            let token = token(audience::MANAGEMENT).await?;
            let permissions = state
                .dashboard
                .removed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&(target.vault.clone(), target.principal.clone()))
                .cloned()
                .unwrap_or_else(|| CLUSTER_KEY_PERMISSIONS.map(String::from).to_vec());
            kv.set_access_policy(forward(
                Some(&token),
                kvp::SetAccessPolicyRequest {
                    vault_name: target.vault.clone(),
                    policy: Some(kvp::AccessPolicy {
                        tenant_id: target.tenant.clone(),
                        object_id: target.principal.clone(),
                        key_permissions: permissions.clone(),
                    }),
                },
            ))
            .await
            .map_err(LiveError::refused("Key Vault"))?;
            Ok(format!(
                "cluster {}'s identity given {} on vault {}",
                target.cluster.cluster_name,
                permissions.join(", "),
                target.vault
            ))
        }
        Lever::UpdateCluster => {
            let token = token(audience::VAULT).await?;
            let key = kv
                .get_key(forward(Some(&token), key_ref("")))
                .await
                .map_err(LiveError::refused("Key Vault"))?
                .into_inner();
            let kid = key.key.map(|k| k.kid).unwrap_or_default();
            let version = kid.rsplit('/').next().unwrap_or_default().to_string();
            let storage = AuthChannel::new(state.upstream.storage.clone(), Some(source.clone()));
            stp::clusters_client::ClustersClient::new(storage)
                .update_cluster(stp::UpdateClusterRequest {
                    cluster: Some(target.cluster.clone()),
                    key_vault_properties: Some(stp::KeyVaultProperties {
                        key_vault_uri: target.key_vault_uri.clone(),
                        key_name: target.key.clone(),
                        key_version: version.clone(),
                    }),
                    ..Default::default()
                })
                .await
                .map_err(LiveError::refused("cluster storage"))?;
            Ok(format!(
                "cluster {} given key version {version}",
                target.cluster.cluster_name
            ))
        }
        // Not live (Lever::live), refused before.
        Lever::PartitionStorage
        | Lever::RepairStorage
        | Lever::KeyvaultDown
        | Lever::KeyvaultUp => Err(LiveError::BadRequest(format!(
            "{} cannot be done to live services",
            lever.as_str()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_opens_one_session_once() {
        let sessions = Sessions::default();
        let code = sessions.new_link().unwrap();
        assert_eq!(code.len(), 64);
        let session = sessions.redeem(&code).unwrap();
        assert!(matches!(sessions.redeem(&code), Err(LiveError::BadLink)));
        assert!(matches!(sessions.redeem("nope"), Err(LiveError::BadLink)));
        let mut headers = HeaderMap::new();
        assert!(matches!(
            sessions.signed_in(&headers),
            Err(LiveError::NotSignedIn)
        ));
        headers.insert(
            header::COOKIE,
            format!("other=1; {COOKIE}={session}").parse().unwrap(),
        );
        assert!(sessions.signed_in(&headers).is_ok());
        headers.insert(header::COOKIE, format!("{COOKIE}={code}").parse().unwrap());
        assert!(
            sessions.signed_in(&headers).is_err(),
            "a code is no session"
        );
    }

    #[test]
    fn links_and_sessions_are_bounded() {
        let sessions = Sessions::default();
        let first = sessions.new_link().unwrap();
        for _ in 0..LINKS_MAX {
            sessions.new_link().unwrap();
        }
        assert!(
            sessions.redeem(&first).is_err(),
            "the oldest link is forgotten"
        );
        let mut opened = Vec::new();
        for _ in 0..=SESSIONS_MAX {
            let code = sessions.new_link().unwrap();
            opened.push(sessions.redeem(&code).unwrap());
        }
        let cookie = |s: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::COOKIE, format!("{COOKIE}={s}").parse().unwrap());
            h
        };
        assert!(sessions.signed_in(&cookie(&opened[0])).is_err());
        assert!(sessions.signed_in(&cookie(&opened[SESSIONS_MAX])).is_ok());
    }

    #[test]
    fn the_live_scenario_validates() {
        let board = LiveBoard::new(SimTime(0));
        assert!(
            board.profile_name().is_some(),
            "LIVE_SCENARIO must validate"
        );
        assert_eq!(board.profile_name().as_deref(), Some("azure-2020"));
    }

    #[test]
    fn the_invariants_are_judged_under_the_services_profile() {
        let board = LiveBoard::new(SimTime(0));
        let mut profile = cmksim_sim::profile::Profile::builtin("azure-2021").unwrap();
        profile.key_access.revocation_deadline = std::time::Duration::from_secs(7 * 60);
        board.judge_under(profile.clone());
        assert_eq!(board.profile_name().as_deref(), Some("azure-2021"));
        assert_eq!(
            board.profile_label().as_deref(),
            Some("the services' profile azure-2021")
        );
        let scenario = board.scenario.lock().unwrap().clone().unwrap();
        assert_eq!(scenario.profile, profile, "the overrides too");
    }

    #[test]
    fn comparison_is_exact() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
