// cmksim live dashboard: one page for both modes, no build step, no dependencies.
//
// Both modes read a stream of frames pushed by the server as the event log is written
// (Server-Sent Events through EventSource, which reconnects by itself from the last frame id
// it read): each frame carries the clock, the states, the new narration lines and, when they
// changed, the page's heading and levers (meta) and the verdicts. A frame is applied to the
// document as it arrives, touching only what changed (no redraw of the whole page per frame).
// The swimlanes (SVG drawn by the same code as the report) are fetched at most every
// LANES_EVERY_MS when events were added.
// Simulation mode (`cmksim demo NAME --web`): /_cmksim/demo/stream, levers and pace posted to
// /_cmksim/demo/lever and /_cmksim/demo/pace; after each frame the page reports the simulated
// time it now shows to /_cmksim/demo/drawn (one report in flight at most), and the run does not
// go more than a simulated minute past the slowest page's report.
// Live mode (`cmksim serve all --rest-listen`, page at `/` of the HTTPS door):
// /_cmksim/dashboard/stream and /_cmksim/dashboard/lever, authorised by the session cookie the
// door's one-time link sets (the page never holds a token).
"use strict";

const LANES_EVERY_MS = 1000;    // the chart is redrawn at most this often
const FEED_LINES_MAX = 2000;    // narration lines kept on the page (oldest removed first)
const CLOCK_AHEAD_MS = 500;     // the clock runs ahead of the newest frame at most this long

const $ = (id) => document.getElementById(id);

// What the page measured about itself (read by the browser test; shown nowhere).
const stats = {
  frames: 0, frameMsMax: 0, frameMsTotal: 0, bytes: 0,
  lanes: 0, lanesMsMax: 0, lanesBytes: 0,
  drawnReports: 0, drawnRefused: 0,
};
window.cmksimStats = stats;

// Sets an element's text only when it changes (a write of the same text still costs a layout).
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function pad(n) { return String(n).padStart(2, "0"); }

// T+hh:mm:ss (days shown as hours, like the narration).
function offsetLabel(ms) {
  const sign = ms < 0 ? "-" : "+";
  const s = Math.floor(Math.abs(ms) / 1000);
  return "T" + sign + pad(Math.floor(s / 3600)) + ":" + pad(Math.floor(s / 60) % 60) + ":" + pad(s % 60);
}

function setResult(text, refused) {
  const el = $("lever-result");
  el.textContent = text;
  el.classList.toggle("refused", !!refused);
}

function appendFeed(lines) {
  if (!lines.length) return;
  const feed = $("feed");
  const atBottom = feed.scrollTop + feed.clientHeight >= feed.scrollHeight - 4;
  for (const line of lines) {
    const li = document.createElement("li");
    li.textContent = line.text;
    li.dataset.atMs = line.t_ms;
    if (line.class) li.className = line.class;
    feed.appendChild(li);
  }
  while (feed.children.length > FEED_LINES_MAX) feed.removeChild(feed.firstChild);
  if (atBottom) feed.scrollTop = feed.scrollHeight;
}

// Updates the state panel in place (a state that changes keeps its element).
function renderStates(states) {
  const dl = $("states");
  for (const s of states) {
    let dd = document.getElementById(s.id);
    if (!dd) {
      const dt = document.createElement("dt");
      dt.textContent = s.label;
      dd = document.createElement("dd");
      dd.id = s.id;
      dl.append(dt, dd);
    }
    if (dd.dataset.state !== s.state) {
      dd.dataset.state = s.state;
      dd.textContent = s.state;
    }
  }
}

function renderVerdicts(verdicts) {
  const body = document.querySelector("#verdicts tbody");
  body.replaceChildren();
  for (const v of verdicts) {
    const tr = document.createElement("tr");
    tr.dataset.id = v.id;
    tr.dataset.outcome = v.outcome;
    const id = document.createElement("td");
    id.textContent = v.id;
    const outcome = document.createElement("td");
    outcome.textContent = v.outcome_label;
    outcome.className = v.outcome;
    const what = document.createElement("td");
    what.textContent = v.title + (v.detail ? " — " + v.detail : "");
    tr.append(id, outcome, what);
    body.appendChild(tr);
  }
}

function renderLevers(levers, send) {
  const box = $("levers");
  if (box.dataset.ready) return;
  box.dataset.ready = "1";
  for (const lever of levers) {
    const b = document.createElement("button");
    b.type = "button";
    b.id = "lever-" + lever.id;
    b.dataset.lever = lever.id;
    b.textContent = lever.label;
    b.addEventListener("click", () => send(lever));
    box.appendChild(b);
  }
}

async function postJson(url, body, headers) {
  const response = await fetch(url, {
    method: "POST",
    headers: Object.assign({ "content-type": "application/json" }, headers || {}),
    body: JSON.stringify(body),
  });
  let answer = {};
  try { answer = await response.json(); } catch (e) { answer = {}; }
  return { ok: response.ok, answer };
}

// ---- the stream of frames (both modes) ------------------------------------------------------

// The clock moves between two frames at the rate the world was last seen moving (simulated ms
// per wall ms, measured from the frames, so a world slower than its speed is not overtaken),
// for at most CLOCK_AHEAD_MS; data-sim-ms is what it shows, data-data-sim-ms the world's time
// in the newest frame.
const clockModel = { tMs: 0, simMs: 0, at: 0, rate: 0, ceiling: 0 };

function clockSample(clock, running, speed) {
  const now = performance.now();
  if (running && clockModel.at > 0 && now > clockModel.at && clock.sim_now_ms >= clockModel.simMs) {
    const rate = (clock.sim_now_ms - clockModel.simMs) / (now - clockModel.at);
    // Smoothed: frames come every few ms, each one a small, noisy step.
    clockModel.rate = 0.8 * clockModel.rate + 0.2 * Math.max(0, Math.min(rate, speed * 1.2));
  } else if (!running) {
    clockModel.rate = 0;
  }
  clockModel.tMs = clock.t_ms;
  clockModel.simMs = clock.sim_now_ms;
  clockModel.at = now;
  $("clock").dataset.dataSimMs = clock.sim_now_ms;
  clockDraw();
}

function clockDraw() {
  const ahead = Math.min(performance.now() - clockModel.at, CLOCK_AHEAD_MS) * clockModel.rate;
  const clock = $("clock");
  const tMs = Math.floor(clockModel.tMs + ahead);
  clock.textContent = offsetLabel(tMs);
  clock.dataset.tMs = tMs;
  clock.dataset.simMs = Math.floor(clockModel.simMs + ahead);
}

function clockLoop() {
  clockDraw();
  requestAnimationFrame(clockLoop);
}

const view = { mode: "", meta: null, events: -1, lanesAt: 0, lanesEvents: -1, lanesTimer: 0, title: false, finishedDrawn: false, finishedControls: null };

function lanesUrl() {
  return view.mode === "live" ? "/_cmksim/dashboard/swimlanes.svg" : "/_cmksim/demo/swimlanes.svg";
}

// Redraws the chart when events were added, at most every LANES_EVERY_MS (a trailing redraw
// is scheduled so that the last change is always drawn).
function lanesMaybe(force) {
  if (view.lanesTimer) return;
  const since = Date.now() - view.lanesAt;
  if (!force && view.events === view.lanesEvents) return;
  const wait = force ? 0 : Math.max(0, LANES_EVERY_MS - since);
  view.lanesTimer = setTimeout(async () => {
    view.lanesTimer = 0;
    view.lanesAt = Date.now();
    view.lanesEvents = view.events;
    try {
      const response = await fetch(lanesUrl(), { credentials: "same-origin" });
      if (response.ok) {
        const svg = await response.text();
        const began = performance.now();
        $("lanes").innerHTML = svg;
        const took = performance.now() - began;
        stats.lanes += 1;
        stats.lanesBytes = svg.length;
        stats.lanesMsMax = Math.max(stats.lanesMsMax, took);
      }
    } catch (e) { /* the next frame schedules another */ }
    if (view.lanesEvents !== view.events) lanesMaybe(false);
  }, wait);
}

function showFrame(frame) {
  if (frame.reset) $("feed").replaceChildren();
  const s = frame.status;
  if (s && s.clock) {
    if (s.meta) view.meta = s.meta;
    if (view.mode === "live") liveShow(s); else simShow(s);
    view.events = s.events;
    if (s.verdicts) renderVerdicts(s.verdicts);
    setText($("verdicts-note"), s.phase === "finished"
      ? "final: the run has ended"
      : (view.mode === "live" ? "the invariants on the live events so far" : "judged on the events so far; final when the run ends"));
    const finished = s.phase === "finished";
    lanesMaybe(finished && !view.finishedDrawn);
    if (finished) view.finishedDrawn = true;
  }
  appendFeed(frame.lines || []);
}

// The page's reports of what it has drawn (simulation mode): the page's number (from the first
// frame of each stream), the newest simulated time shown and the newest reported.
const drawn = { page: null, simMs: 0, sentMs: 0, inFlight: false };

function reportDrawn() {
  if (view.mode !== "simulation" || drawn.page === null || drawn.inFlight) return;
  if (drawn.simMs <= drawn.sentMs) return;
  const page = drawn.page;
  const simMs = drawn.simMs;
  drawn.inFlight = true;
  fetch("/_cmksim/demo/drawn", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ page: page, sim_ms: simMs }),
  }).then((response) => {
    // 410: this stream's number is over (the page reconnects and gets a new one).
    if (response.ok) stats.drawnReports += 1; else stats.drawnRefused += 1;
  }, () => { stats.drawnRefused += 1; }).finally(() => {
    if (drawn.page === page) drawn.sentMs = Math.max(drawn.sentMs, simMs);
    drawn.inFlight = false;
    reportDrawn();
  });
}

function follow(url) {
  const source = new EventSource(url);
  source.addEventListener("frame", (e) => {
    const began = performance.now();
    let frame;
    try { frame = JSON.parse(e.data); } catch (err) { return; }
    if (frame.page !== undefined && frame.page !== drawn.page) {
      drawn.page = frame.page;
      drawn.simMs = 0;
      drawn.sentMs = 0;
    }
    showFrame(frame);
    const took = performance.now() - began;
    stats.frames += 1;
    stats.bytes += e.data.length;
    stats.frameMsTotal += took;
    stats.frameMsMax = Math.max(stats.frameMsMax, took);
    if (frame.status && frame.status.clock) {
      drawn.simMs = Math.max(drawn.simMs, frame.status.clock.sim_now_ms);
      reportDrawn();
    }
  });
  source.addEventListener("dropped", (e) => setResult(e.data, true));
  source.onerror = () => {
    $("phase").textContent = "reconnecting";
    $("phase").dataset.phase = "disconnected";
  };
}

// ---- simulation mode ---------------------------------------------------------------------

async function simLever(lever) {
  setResult("sending " + lever.label.toLowerCase() + "…");
  const { ok, answer } = await postJson("/_cmksim/demo/lever", { lever: lever.id });
  setResult(ok ? answer.message : "refused: " + (answer.error || "no answer"), !ok);
}

async function simPace(change) {
  const { ok, answer } = await postJson("/_cmksim/demo/pace", change);
  if (!ok) setResult("refused: " + (answer.error || "no answer"), true);
}

function simShow(state) {
  const meta = view.meta;
  if (!view.title && meta) {
    view.title = true;
    $("title").textContent = meta.title;
    document.title = "cmksim · " + meta.name;
    $("meta").textContent = "scenario " + meta.name + " · seed " + meta.seed + " · profile " + meta.profile + " · simulated time";
    $("story").textContent = meta.story;
    $("story-section").hidden = !meta.story;
    renderLevers(meta.levers, simLever);
    $("play").disabled = false;
    $("speed").disabled = false;
  }
  clockSample(state.clock, state.phase === "running", state.pace.speed);
  setText($("scale"), state.pace.speed + "× · " + state.clock.end_label);
  const phase = $("phase");
  setText(phase, state.phase);
  if (phase.dataset.phase !== state.phase) phase.dataset.phase = state.phase;
  const play = $("play");
  setText(play, state.pace.paused ? "Play" : "Pause");
  const pressed = state.pace.paused ? "true" : "false";
  if (play.getAttribute("aria-pressed") !== pressed) play.setAttribute("aria-pressed", pressed);
  const speed = $("speed");
  if (document.activeElement !== speed && speed.value !== String(state.pace.speed)) {
    speed.value = String(state.pace.speed);
  }
  const finished = state.phase === "finished";
  if (view.finishedControls !== finished) {
    view.finishedControls = finished;
    for (const b of document.querySelectorAll("#levers button")) b.disabled = finished;
    play.disabled = finished;
    speed.disabled = finished;
  }
  renderStates(state.states || []);
}

function simStart() {
  view.mode = "simulation";
  $("play").addEventListener("click", () => {
    const paused = $("play").getAttribute("aria-pressed") === "true";
    simPace({ paused: !paused });
  });
  $("speed").addEventListener("change", () => simPace({ speed: Number($("speed").value) }));
  requestAnimationFrame(clockLoop);
  follow("/_cmksim/demo/stream");
}

// ---- live mode -----------------------------------------------------------------------------

async function liveLever(lever) {
  setResult("sending " + lever.label.toLowerCase() + "…");
  const { ok, answer } = await postJson("/_cmksim/dashboard/lever", { lever: lever.id },
    { "x-cmksim-dashboard": "1" });
  setResult(ok ? answer.message : "refused: " + (answer.error || "no answer"), !ok);
}

function liveShow(state) {
  const meta = view.meta;
  if (!view.title && meta) {
    view.title = true;
    $("title").textContent = meta.title;
    document.title = "cmksim · live";
    renderLevers(meta.levers, liveLever);
  }
  setText($("meta"), "live services · " + (state.target || "no cluster with a customer-managed key yet") +
    (state.profile ? " · invariants judged under " + state.profile : ""));
  clockSample(state.clock, true, state.pace.speed);
  setText($("scale"), state.pace.speed + "× · " + state.clock.end_label);
  setText($("phase"), state.phase);
  $("phase").dataset.phase = "running";
  renderStates(state.states || []);
}

async function liveStart() {
  view.mode = "live";
  $("meta").textContent = "live services";
  $("levers-hint").textContent = "Each button acts on the live services as the administrator " +
    "(on the first cluster with a customer-managed key) and is written to the event log " +
    "(dashboard.lever, also in /_cmksim/events): the chart, the narration and the invariants see it.";
  $("play").hidden = true;
  $("speed").hidden = true;
  document.querySelector("label[for=speed]").hidden = true;
  let response;
  try {
    response = await fetch("/_cmksim/dashboard/session", { credentials: "same-origin" });
  } catch (e) {
    $("phase").textContent = "disconnected";
    return;
  }
  if (!response.ok) {
    $("live-login").hidden = false;
    $("phase").textContent = "not signed in";
    return;
  }
  requestAnimationFrame(clockLoop);
  follow("/_cmksim/dashboard/stream");
}

// ---- start -------------------------------------------------------------------------------

(async () => {
  let simulation = false;
  try {
    const probe = await fetch("/_cmksim/demo/clock");
    simulation = probe.ok;
  } catch (e) {
    simulation = false;
  }
  if (simulation) simStart(); else liveStart();
})();
