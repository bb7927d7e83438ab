// cmksim live dashboard: one page for both modes, no build step, no dependencies.
//
// Simulation mode (`cmksim demo NAME --web`): the page polls /_cmksim/demo/state every
// POLL_MS for the clock, the pace, the states, new narration lines and the verdicts, and
// fetches the swimlanes (SVG drawn by the same code as the report) when events were added.
// Live mode (`cmksim serve all`, page at `/` of the HTTPS door): the page reads the
// services' event stream /_cmksim/events (Server-Sent Events, read with fetch so that it can
// carry the administrator's token) and switches Key Vault's chaos mode.
"use strict";

const POLL_MS = 100;            // how often the simulation state is asked for
const LANES_EVERY_MS = 1000;    // the chart is redrawn at most this often
const FEED_LINES_MAX = 2000;    // narration lines kept on the page (oldest removed first)
const LIVE_EVENTS_MAX = 100000; // events read from a live stream before the page stops reading

const $ = (id) => document.getElementById(id);

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

// ---- simulation mode ---------------------------------------------------------------------

// The clock moves between two polls at the rate the world was last seen moving (simulated ms
// per wall ms, measured from the last two answers, so a world slower than its speed is not
// overtaken), for at most CLOCK_AHEAD_POLLS polls' worth; data-sim-ms is what it shows,
// data-data-sim-ms the world's time in the newest answer.
const CLOCK_AHEAD_POLLS = 2;
const clockModel = { tMs: 0, simMs: 0, at: 0, rate: 0 };

function clockSample(state) {
  const now = performance.now();
  const running = state.phase === "running";
  if (running && clockModel.at > 0 && now > clockModel.at) {
    const rate = (state.clock.sim_now_ms - clockModel.simMs) / (now - clockModel.at);
    clockModel.rate = Math.max(0, Math.min(rate, state.pace.speed * 1.2));
  } else {
    clockModel.rate = 0;
  }
  clockModel.tMs = state.clock.t_ms;
  clockModel.simMs = state.clock.sim_now_ms;
  clockModel.at = now;
  $("clock").dataset.dataSimMs = state.clock.sim_now_ms;
  clockDraw();
}

function clockDraw() {
  const ahead = Math.min(performance.now() - clockModel.at, CLOCK_AHEAD_POLLS * POLL_MS) * clockModel.rate;
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

const sim = { next: 0, events: -1, lanesAt: 0, lanesEvents: -1, verdictsVersion: -1, title: false };

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
  if (!sim.title) {
    sim.title = true;
    $("title").textContent = state.title;
    document.title = "cmksim · " + state.name;
    $("meta").textContent = "scenario " + state.name + " · seed " + state.seed + " · profile " + state.profile + " · simulated time";
    $("story").textContent = state.story;
    $("story-section").hidden = !state.story;
    renderLevers(state.levers, simLever);
    $("play").disabled = false;
    $("speed").disabled = false;
  }
  clockSample(state);
  $("scale").textContent = state.pace.speed + "× · " + state.clock.end_label;
  const phase = $("phase");
  phase.textContent = state.phase;
  phase.dataset.phase = state.phase;
  const play = $("play");
  play.textContent = state.pace.paused ? "Play" : "Pause";
  play.setAttribute("aria-pressed", state.pace.paused ? "true" : "false");
  const speed = $("speed");
  if (document.activeElement !== speed) speed.value = String(state.pace.speed);
  const finished = state.phase === "finished";
  for (const b of document.querySelectorAll("#levers button")) b.disabled = finished;
  play.disabled = finished;
  speed.disabled = finished;
  renderStates(state.states);
  appendFeed(state.narration);
  sim.next = state.next;
  sim.events = state.events;
  if (state.verdicts_version !== sim.verdictsVersion) {
    sim.verdictsVersion = state.verdicts_version;
    renderVerdicts(state.verdicts);
    $("verdicts-note").textContent = state.phase === "finished"
      ? "final: the run has ended"
      : "judged on the events so far; final when the run ends";
  }
}

async function simLanes(force) {
  const now = Date.now();
  if (!force && (sim.events === sim.lanesEvents || now - sim.lanesAt < LANES_EVERY_MS)) return;
  sim.lanesAt = now;
  sim.lanesEvents = sim.events;
  const response = await fetch("/_cmksim/demo/swimlanes.svg");
  if (response.ok) $("lanes").innerHTML = await response.text();
}

async function simLoop() {
  let finishedDrawn = false;
  for (;;) {
    try {
      const response = await fetch("/_cmksim/demo/state?after=" + sim.next);
      if (response.ok) {
        const state = await response.json();
        simShow(state);
        const finished = state.phase === "finished";
        await simLanes(finished && !finishedDrawn);
        if (finished) finishedDrawn = true;
      } else {
        $("phase").textContent = "server said " + response.status;
      }
    } catch (e) {
      $("phase").textContent = "disconnected";
      $("phase").dataset.phase = "disconnected";
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

function simStart() {
  $("play").addEventListener("click", () => {
    const paused = $("play").getAttribute("aria-pressed") === "true";
    simPace({ paused: !paused });
  });
  $("speed").addEventListener("change", () => simPace({ speed: Number($("speed").value) }));
  requestAnimationFrame(clockLoop);
  simLoop();
}

// ---- live mode -----------------------------------------------------------------------------

const LIVE_LEVERS = [
  { id: "keyvault-down", label: "Key Vault down", mode: "down" },
  { id: "keyvault-up", label: "Key Vault up", mode: "up" },
];

function liveStart() {
  $("meta").textContent = "live services · the HTTPS door's event stream";
  $("live-login").hidden = false;
  $("verdicts-note").textContent = "verdicts need a scenario: run one with `cmksim run --live FILE --report`";
  $("lanes").innerHTML = "<p class=\"na\">The swimlanes are drawn for a scenario run: `cmksim run --live FILE --report` draws them for live services.</p>";
  $("connect").addEventListener("click", () => liveConnect($("token").value.trim()));
}

async function liveConnect(token) {
  const auth = { authorization: "Bearer " + token };
  const clock = await fetch("/_cmksim/clock", { headers: auth });
  if (!clock.ok) { setResult("the door refused the token (" + clock.status + ")", true); return; }
  const c = await clock.json();
  $("live-login").hidden = true;
  $("scale").textContent = c.timeScale + "×";
  $("phase").textContent = "live";
  $("phase").dataset.phase = "running";
  renderLevers(LIVE_LEVERS, async (lever) => {
    const response = await fetch("/_cmksim/chaos", {
      method: "PUT",
      headers: Object.assign({ "content-type": "application/json" }, auth),
      body: JSON.stringify({ keyvault: { mode: lever.mode } }),
    });
    setResult(response.ok ? "Key Vault is " + lever.mode : "refused (" + response.status + ")", !response.ok);
  });
  const epochMs = Date.parse(c.simulatedEpoch);
  const stream = await fetch("/_cmksim/events", { headers: auth });
  if (!stream.ok || !stream.body) { setResult("no event stream (" + stream.status + ")", true); return; }
  const reader = stream.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let read = 0;
  while (read < LIVE_EVENTS_MAX) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    const lines = buffer.split("\n");
    buffer = lines.pop();
    const out = [];
    for (const line of lines) {
      if (!line.startsWith("data:")) continue;
      read += 1;
      let e;
      try { e = JSON.parse(line.slice(5)); } catch (err) { continue; }
      const t = e.atMs - epochMs;
      $("clock").textContent = offsetLabel(t);
      $("clock").dataset.tMs = t;
      out.push({ text: offsetLabel(t) + "  " + e.service + "  " + e.message, t_ms: t });
    }
    appendFeed(out);
  }
  setResult("the event stream ended; reload the page to read it again", true);
}

// ---- start -------------------------------------------------------------------------------

(async () => {
  let simulation = false;
  try {
    const probe = await fetch("/_cmksim/demo/state?after=0");
    simulation = probe.ok;
  } catch (e) {
    simulation = false;
  }
  if (simulation) simStart(); else liveStart();
})();
