//! The HTML page: story, verdicts with evidence, the chart, counts and the narrated timeline.
//!
//! Plain HTML and CSS in one string, every piece of text escaped; no fonts, images or scripts
//! from elsewhere. Sections appear in the order a reader asks: what was this about, did it hold,
//! what happened when. One inline script ([`SLIDER_SCRIPT`]) drives the time slider: it draws a
//! cursor over the chart at the chosen moment, dims the narrated lines after it and scrolls the
//! last one before it into view. The slider is `hidden` until the script shows it, so a reader
//! whose mail client strips scripts sees the report as it was.

use std::fmt::Write;

use cmksim_sim::{Event, SimTime};

use super::{escape, svg};
use crate::history::RunSpan;
use crate::model::Scenario;
use crate::narrate::{NarrateOptions, Narrator};
use crate::summary::Counts;
use crate::verdict::{Outcome, Verdict};

/// Everything a report shows.
#[derive(Clone, Debug)]
pub struct ReportInput<'a> {
    pub name: String,
    pub title: String,
    pub story: String,
    pub seed: u64,
    pub profile: String,
    pub events: &'a [Event],
    pub expectations: &'a [Verdict],
    pub invariants: &'a [Verdict],
}

impl<'a> ReportInput<'a> {
    pub fn new(
        scenario: &Scenario,
        events: &'a [Event],
        expectations: &'a [Verdict],
        invariants: &'a [Verdict],
    ) -> ReportInput<'a> {
        ReportInput {
            name: scenario.meta.name.clone(),
            title: scenario.meta.title.clone(),
            story: scenario.meta.story.clone(),
            seed: scenario.meta.seed,
            profile: scenario.meta.profile_name.clone(),
            events,
            expectations,
            invariants,
        }
    }
}

const CSS: &str = "\
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1120px;color:#222;padding:0 1em}\
h1{margin-bottom:.2em}.meta{color:#666;margin-top:0}\
.story{background:#f4f7fb;border-left:4px solid #2a6fdb;padding:.5em 1em}\
table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}\
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #e4e4e4;vertical-align:top}\
th{background:#fafafa}\
.held{color:#1e7d3f;font-weight:bold}.broken{color:#c0392b;font-weight:bold}.na{color:#888}\
.evidence{margin:.2em 0 0;padding-left:1.2em;color:#555;font-size:12px}\
.timeline td{font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap}\
.narration td{color:#2a6fdb;font-weight:bold}\
.chart{overflow-x:auto}\
.scrub{display:flex;gap:.8em;align-items:center;margin:.3em 0}.scrub input{flex:1}\
.scrub output{font-family:ui-monospace,monospace;min-width:8em}\
.timeline-box{max-height:36em;overflow-y:auto;border:1px solid #eee}\
.timeline tr.future td{opacity:.35}.timeline tr.now td{background:#fff6d5}";

/// The time slider's script. It contains no `<` (so no HTML parser can take it for a tag) and no
/// URL; the SVG element is made in the chart's own namespace.
pub const SLIDER_SCRIPT: &str = "(function(){\
var chart=document.getElementById('chart'),slider=document.getElementById('slider'),\
out=document.getElementById('slider-at'),box=document.getElementById('timeline-box');\
if(!chart||!slider||!box)return;var svg=chart.querySelector('svg');if(!svg)return;\
var start=+chart.dataset.startMs,end=+chart.dataset.endMs,x0=+chart.dataset.x0,w=+chart.dataset.width;\
var h=svg.viewBox.baseVal.height,cursor=document.createElementNS(svg.namespaceURI,'line');\
cursor.setAttribute('y1','0');cursor.setAttribute('y2',String(h));\
cursor.setAttribute('style','stroke:#e67e22;stroke-width:2');svg.appendChild(cursor);\
var rows=Array.prototype.slice.call(box.querySelectorAll('tr[data-t-ms]'));\
function two(n){return (n+100).toString().slice(1);}\
function label(ms){var s=Math.floor(Math.abs(ms)/1000);return 'T'+(0>ms?'-':'+')+two(Math.floor(s/3600))+':'+two(Math.floor(s/60)%60)+':'+two(s%60);}\
function show(){var t=+slider.value*1000,x=x0+w*Math.min(1,Math.max(0,t/Math.max(1,end-start)));\
cursor.setAttribute('x1',String(x));cursor.setAttribute('x2',String(x));out.textContent=label(t);\
var now=null;rows.forEach(function(r){var future=+r.dataset.tMs>t;r.classList.toggle('future',future);\
r.classList.remove('now');if(!future)now=r;});\
if(now){now.classList.add('now');box.scrollTop=Math.max(0,now.offsetTop-box.clientHeight/2);}}\
slider.addEventListener('input',show);document.getElementById('scrub').hidden=false;show();})();";

/// Renders the page; the same input gives the same bytes.
pub fn render_html(input: &ReportInput<'_>) -> String {
    let run = RunSpan::of(input.events);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n\
         <h1>{title}</h1>\n<p class=\"meta\">scenario <code>{name}</code> · seed {seed} · profile {profile} · {from} → {to}</p>\n",
        title = escape(&input.title),
        name = escape(&input.name),
        seed = input.seed,
        profile = escape(&input.profile),
        from = run.start,
        to = run.end.offset_label(run.start),
    );
    if !input.story.trim().is_empty() {
        out.push_str("<section class=\"story\">\n");
        for paragraph in input.story.split("\n\n").filter(|p| !p.trim().is_empty()) {
            let _ = writeln!(out, "<p>{}</p>", escape(paragraph.trim()));
        }
        out.push_str("</section>\n");
    }
    verdict_table(&mut out, "Expectations", input.expectations, run.start);
    verdict_table(&mut out, "Invariants", input.invariants, run.start);

    let span_s = (run.end.0 - run.start.0).max(0) / 1000;
    let _ = write!(
        out,
        "<h2>Timeline chart</h2>\n<div id=\"scrub\" class=\"scrub\" hidden><label for=\"slider\">Time</label>\
         <input type=\"range\" id=\"slider\" min=\"0\" max=\"{span_s}\" step=\"1\" value=\"{span_s}\"/>\
         <output id=\"slider-at\" for=\"slider\"></output></div>\n\
         <div class=\"chart\" id=\"chart\" data-start-ms=\"{start}\" data-end-ms=\"{end}\" data-x0=\"{x0}\" data-width=\"{width}\">\n",
        start = run.start.0,
        end = run.end.0,
        x0 = svg::LABEL_WIDTH_PX,
        width = svg::CHART_WIDTH_PX,
    );
    out.push_str(&svg::render_swimlanes(input.events, run.start, run.end));
    out.push_str("</div>\n");

    let counts = Counts::from_events(input.events);
    if !counts.workspaces.is_empty() {
        out.push_str("<h2>Counts</h2>\n<table>\n<tr><th>workspace</th><th>batches</th><th>accepted</th><th>stored</th><th>buffered</th><th>dropped</th><th>queries ok</th><th>queries failed</th></tr>\n");
        for (ws, w) in &counts.workspaces {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(ws), w.batches, w.accepted, w.stored, w.buffered, w.dropped, w.queries_ok, w.queries_failed
            );
        }
        out.push_str("</table>\n");
    }
    // The bill (seeds 000, 001), from the run's `bill.day` events.
    out.push_str(&crate::bill::html_section(input.events));

    out.push_str("<h2>Narrated timeline</h2>\n<div class=\"timeline-box\" id=\"timeline-box\">\n<table class=\"timeline\">\n<tr><th>time</th><th>source</th><th>what happened</th></tr>\n");
    let mut narrator = Narrator::new(run.start, NarrateOptions::default());
    for e in input.events {
        if narrator.line(e).is_none() {
            continue;
        }
        let class = if e.kind == crate::events::SCENARIO_NARRATE {
            " class=\"narration\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<tr{class} data-t-ms=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.at_ms - run.start.0,
            e.at().offset_label(run.start),
            escape(&e.source),
            escape(&e.message)
        );
    }
    let _ = write!(
        out,
        "</table>\n</div>\n<p class=\"meta\">{} events.</p>\n<script>{SLIDER_SCRIPT}</script>\n</body>\n</html>\n",
        input.events.len()
    );
    out
}

fn verdict_table(out: &mut String, heading: &str, verdicts: &[Verdict], start: SimTime) {
    let _ = writeln!(out, "<h2>{heading}</h2>");
    if verdicts.is_empty() {
        out.push_str("<p class=\"na\">none</p>\n");
        return;
    }
    out.push_str("<table>\n<tr><th>id</th><th>outcome</th><th>what</th><th>why, and the evidence</th></tr>\n");
    for v in verdicts {
        let class = match v.outcome {
            Outcome::Held => "held",
            Outcome::Broken => "broken",
            Outcome::NotApplicable => "na",
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"{class}\">{}</td><td>{}</td><td>{}",
            escape(&v.id),
            v.outcome.as_str(),
            escape(&v.title),
            escape(&v.detail)
        );
        if !v.evidence.is_empty() {
            out.push_str("<ul class=\"evidence\">");
            for e in &v.evidence {
                let _ = write!(out, "<li>{}</li>", escape(&e.line(start)));
            }
            out.push_str("</ul>");
        }
        out.push_str("</td></tr>\n");
    }
    out.push_str("</table>\n");
}
