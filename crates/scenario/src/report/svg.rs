//! The swimlane chart: what each key, each cluster's storage, the polls and the ingest did over
//! the run, on one time axis.
//!
//! Lanes, top to bottom: faults (bands while a fault is in force), one per key (enabled /
//! disabled / deleted / purged), one per cluster's storage (healthy, degraded, unavailable,
//! revoked, resuming, ...), one per cluster for poll results (a tick per poll: success,
//! transient, denied), one per workspace for ingest (per time bucket, the shares of stored,
//! buffered and dropped records). Timeline steps are dashed vertical lines, narration is a dot
//! with its text as a tooltip (`<title>`, no script). Styling is CSS classes defined inside the
//! SVG, so the chart also stands alone.

use std::collections::BTreeMap;
use std::fmt::Write;

use cmksim_sim::{Event, SimTime};

use super::escape;
use crate::events::{self, cluster_of, str_field, u64_field};
use crate::history::{self, Span};

/// Width of the lane labels, in pixels (where the plotted time range starts).
pub(crate) const LABEL_WIDTH_PX: f64 = 170.0;
/// Width of the plotted time range, in pixels.
pub(crate) const CHART_WIDTH_PX: f64 = 900.0;
const LANE_HEIGHT_PX: f64 = 22.0;
const LANE_GAP_PX: f64 = 6.0;
/// Room above the lanes for step labels.
const TOP_PX: f64 = 40.0;
/// Number of ingest buckets across the chart.
const INGEST_BUCKETS: usize = 120;
/// Most lanes drawn per kind (a huge world stays readable; the rest are counted).
const LANES_PER_KIND_MAX: usize = 24;

const STYLE: &str = "\
.lane-label{font:12px sans-serif;fill:#333}\
.axis{font:11px sans-serif;fill:#555}\
.grid{stroke:#ddd;stroke-width:1}\
.step{stroke:#444;stroke-width:1;stroke-dasharray:4 3}\
.step-label{font:10px sans-serif;fill:#444}\
.narr{fill:#2a6fdb}\
.lane-bg{fill:#f6f6f6}\
.k-enabled,.s-healthy,.p-ok,.i-stored{fill:#3a9d5d}\
.k-disabled,.s-revoked,.p-denied,.i-dropped{fill:#d64541}\
.k-deleted{fill:#7f7f7f}.k-purged,.s-shredded{fill:#111}\
.s-degraded{fill:#e8c547}.s-unavailable,.p-transient,.i-buffered{fill:#f39c34}\
.s-resuming{fill:#6cc4a1}.s-provisioning{fill:#9ab7d3}.s-deleted{fill:#7f7f7f}\
.fault{fill:#9b59b6;opacity:.7}\
.legend{font:11px sans-serif;fill:#333}";

/// Maps times to x coordinates.
struct Axis {
    start: i64,
    end: i64,
}

impl Axis {
    fn x(&self, at_ms: i64) -> f64 {
        let span = (self.end - self.start).max(1) as f64;
        let clamped = at_ms.clamp(self.start, self.end);
        LABEL_WIDTH_PX + (clamped - self.start) as f64 / span * CHART_WIDTH_PX
    }
}

/// Renders the chart for events between `start` and `end`.
pub fn render_swimlanes(events: &[Event], start: SimTime, end: SimTime) -> String {
    let end = if end <= start {
        SimTime(start.0 + 60_000)
    } else {
        end
    };
    let axis = Axis {
        start: start.0,
        end: end.0,
    };
    let mut lanes = String::new();
    let mut y = TOP_PX;
    let lane = |label: &str, body: &str, lanes: &mut String, y: &mut f64| {
        let _ = writeln!(
            lanes,
            "<g class=\"lane\"><rect class=\"lane-bg\" x=\"{lx:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\"/>\
             <text class=\"lane-label\" x=\"4\" y=\"{ty:.1}\">{label}</text>{body}</g>",
            lx = LABEL_WIDTH_PX,
            w = CHART_WIDTH_PX,
            h = LANE_HEIGHT_PX,
            ty = *y + LANE_HEIGHT_PX * 0.7,
            label = escape(label),
        );
        *y += LANE_HEIGHT_PX + LANE_GAP_PX;
    };

    // Faults.
    let faults = fault_bands(events, &axis, end);
    lane(
        "faults",
        &bands_body(&faults, &axis, y, start),
        &mut lanes,
        &mut y,
    );

    // Keys.
    for (name, spans) in history::key_spans(events, end)
        .iter()
        .take(LANES_PER_KIND_MAX)
    {
        let bands: Vec<(String, Span<String>)> = spans
            .iter()
            .map(|s| {
                (
                    format!("k-{}", s.state.as_str()),
                    Span {
                        state: s.state.as_str().to_string(),
                        from_ms: s.from_ms,
                        until_ms: s.until_ms,
                        seq: s.seq,
                    },
                )
            })
            .collect();
        lane(
            &format!("key {name}"),
            &bands_body(&bands, &axis, y, start),
            &mut lanes,
            &mut y,
        );
    }

    // Storage state per cluster, then polls per cluster.
    let storage = history::storage_spans(events, end);
    for (cluster, spans) in storage.iter().take(LANES_PER_KIND_MAX) {
        let bands: Vec<(String, Span<String>)> = spans
            .iter()
            .map(|s| {
                (
                    format!("s-{}", s.state.as_str()),
                    Span {
                        state: s.state.as_str().to_string(),
                        from_ms: s.from_ms,
                        until_ms: s.until_ms,
                        seq: s.seq,
                    },
                )
            })
            .collect();
        lane(
            &format!("storage {cluster}"),
            &bands_body(&bands, &axis, y, start),
            &mut lanes,
            &mut y,
        );
    }
    let mut polls: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.kind.starts_with("storage.poll."))
    {
        polls
            .entry(cluster_of(e).unwrap_or("").to_string())
            .or_default()
            .push(e);
    }
    for (cluster, list) in polls.iter().take(LANES_PER_KIND_MAX) {
        let mut body = String::new();
        for e in list {
            let class = match e.kind.as_str() {
                events::POLL_OK => "p-ok",
                events::POLL_DENIED => "p-denied",
                _ => "p-transient",
            };
            let (top, height) = if class == "p-ok" {
                (y + 8.0, LANE_HEIGHT_PX - 8.0)
            } else {
                (y, LANE_HEIGHT_PX)
            };
            let _ = write!(
                body,
                "<rect class=\"{class}\" x=\"{:.1}\" y=\"{top:.1}\" width=\"1.2\" height=\"{height:.1}\"><title>{} {}</title></rect>",
                axis.x(e.at_ms),
                e.at().offset_label(start),
                escape(&e.kind),
            );
        }
        lane(&format!("polls {cluster}"), &body, &mut lanes, &mut y);
    }

    // Ingest per workspace, bucketed.
    let mut ingest: BTreeMap<String, Vec<[u64; 3]>> = BTreeMap::new();
    let bucket_ms = ((end.0 - start.0) as f64 / INGEST_BUCKETS as f64).max(1.0);
    for e in events.iter().filter(|e| e.kind == events::INGEST_BATCH) {
        let buckets = ingest
            .entry(str_field(e, "workspace").unwrap_or("").to_string())
            .or_insert_with(|| vec![[0; 3]; INGEST_BUCKETS]);
        let i = (((e.at_ms - start.0) as f64 / bucket_ms) as usize).min(INGEST_BUCKETS - 1);
        for (slot, field) in buckets[i].iter_mut().zip(["stored", "buffered", "dropped"]) {
            *slot += u64_field(e, field);
        }
    }
    for (ws, buckets) in ingest.iter().take(LANES_PER_KIND_MAX) {
        let mut body = String::new();
        let width = CHART_WIDTH_PX / INGEST_BUCKETS as f64;
        for (i, counts) in buckets.iter().enumerate() {
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let x = LABEL_WIDTH_PX + i as f64 * width;
            let mut top = y;
            for (count, class) in counts
                .iter()
                .zip(["i-stored", "i-buffered", "i-dropped"])
                .rev()
            {
                if *count == 0 {
                    continue;
                }
                let h = LANE_HEIGHT_PX * *count as f64 / total as f64;
                let t0 = SimTime(start.0 + (i as f64 * bucket_ms) as i64);
                let _ = write!(
                    body,
                    "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{top:.1}\" width=\"{w:.1}\" height=\"{h:.1}\"><title>{} {count} {}</title></rect>",
                    t0.offset_label(start),
                    &class[2..],
                    w = (width - 0.5).max(0.5),
                );
                top += h;
            }
        }
        lane(&format!("ingest {ws}"), &body, &mut lanes, &mut y);
    }

    let lanes_bottom = y;
    let mut out = String::new();
    let height = lanes_bottom + 60.0;
    let width = LABEL_WIDTH_PX + CHART_WIDTH_PX + 20.0;
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"swimlanes\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"timeline chart\">\n<style>{STYLE}</style>\n"
    );
    // Time axis and grid.
    let step_ms = tick_step_ms(end.0 - start.0);
    let mut tick = 0i64;
    while start.0 + tick <= end.0 {
        let x = axis.x(start.0 + tick);
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{TOP_PX:.1}\" x2=\"{x:.1}\" y2=\"{lanes_bottom:.1}\"/>\
             <text class=\"axis\" x=\"{x:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\">{}</text>",
            short_label(tick),
            ty = lanes_bottom + 14.0,
        );
        tick += step_ms;
    }
    out.push_str(&lanes);
    // Steps and narration markers.
    for e in events.iter().filter(|e| e.kind == events::SCENARIO_STEP) {
        let x = axis.x(e.at_ms);
        let _ = writeln!(
            out,
            "<line class=\"step\" x1=\"{x:.1}\" y1=\"{a:.1}\" x2=\"{x:.1}\" y2=\"{lanes_bottom:.1}\"><title>{} {}</title></line>\
             <text class=\"step-label\" x=\"{tx:.1}\" y=\"{ty:.1}\" transform=\"rotate(-30 {tx:.1} {ty:.1})\">{}</text>",
            e.at().offset_label(start),
            escape(&e.message),
            escape(str_field(e, "step").unwrap_or("")),
            a = TOP_PX - 6.0,
            tx = x + 2.0,
            ty = TOP_PX - 8.0,
        );
    }
    for e in events.iter().filter(|e| e.kind == events::SCENARIO_NARRATE) {
        let _ = writeln!(
            out,
            "<circle class=\"narr\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\"><title>{} {}</title></circle>",
            axis.x(e.at_ms),
            TOP_PX - 3.0,
            e.at().offset_label(start),
            escape(&e.message)
        );
    }
    // Legend.
    let legend = [
        ("s-healthy", "healthy / enabled / stored / poll ok"),
        ("s-degraded", "degraded"),
        ("s-unavailable", "unavailable / buffered / transient"),
        ("s-revoked", "revoked / disabled / dropped / denied"),
        ("s-resuming", "resuming"),
        ("k-deleted", "deleted"),
        ("fault", "fault in force"),
    ];
    let mut lx = LABEL_WIDTH_PX;
    let ly = lanes_bottom + 30.0;
    for (class, text) in legend {
        let _ = write!(
            out,
            "<rect class=\"{class}\" x=\"{lx:.1}\" y=\"{ly:.1}\" width=\"10\" height=\"10\"/><text class=\"legend\" x=\"{tx:.1}\" y=\"{ty:.1}\">{text}</text>",
            tx = lx + 14.0,
            ty = ly + 9.0,
        );
        lx += 14.0 + text.len() as f64 * 5.6 + 12.0;
    }
    out.push_str("\n</svg>\n");
    out
}

/// Colour bands of one lane: (css class, span).
fn bands_body(bands: &[(String, Span<String>)], axis: &Axis, y: f64, start: SimTime) -> String {
    let mut body = String::new();
    for (class, span) in bands {
        let x0 = axis.x(span.from_ms);
        let x1 = axis.x(span.until_ms);
        let _ = write!(
            body,
            "<rect class=\"{class}\" x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{LANE_HEIGHT_PX:.1}\"><title>{} {} – {}</title></rect>",
            escape(&span.state),
            SimTime(span.from_ms).offset_label(start),
            SimTime(span.until_ms).offset_label(start),
            w = (x1 - x0).max(1.0),
        );
    }
    body
}

/// Bands while faults are in force: from `scenario.fault.applied` to the next restoration.
fn fault_bands(events: &[Event], axis: &Axis, end: SimTime) -> Vec<(String, Span<String>)> {
    let mut out = Vec::new();
    for (i, e) in events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == events::FAULT_APPLIED)
    {
        let fault = str_field(e, "fault").unwrap_or("");
        // Restorations are recorded as applied faults too when written as steps ("keyvault up").
        if is_restoration(fault) {
            continue;
        }
        let until = events[i + 1..]
            .iter()
            .find(|r| {
                r.kind == events::FAULT_RESTORED
                    || (r.kind == events::FAULT_APPLIED
                        && is_restoration(str_field(r, "fault").unwrap_or("")))
            })
            .map(|r| r.at_ms)
            .unwrap_or(end.0)
            .min(axis.end);
        out.push((
            "fault".to_string(),
            Span {
                state: fault.to_string(),
                from_ms: e.at_ms,
                until_ms: until,
                seq: e.seq,
            },
        ));
    }
    out
}

fn is_restoration(fault: &str) -> bool {
    ["keyvault up", "repair", "release", "restart", "hsm ok"]
        .iter()
        .any(|p| fault.starts_with(p))
}

/// A tick interval giving at most about a dozen ticks.
fn tick_step_ms(span_ms: i64) -> i64 {
    const MINUTE: i64 = 60_000;
    let steps = [1, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080].map(|m| m * MINUTE);
    steps
        .into_iter()
        .find(|s| span_ms / s <= 12)
        .unwrap_or(30 * 1440 * MINUTE)
}

/// `T+hh:mm` for an offset in milliseconds.
fn short_label(offset_ms: i64) -> String {
    let minutes = offset_ms / 60_000;
    format!("T+{:02}:{:02}", minutes / 60, minutes % 60)
}
