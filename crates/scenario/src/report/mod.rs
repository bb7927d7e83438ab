//! The run report: one self-contained HTML page (no external assets) with the story, the
//! verdicts and their evidence, an SVG swimlane chart of the run and the narrated timeline, and
//! a time slider that moves a cursor over the chart and follows it in the narration (one small
//! inline script; without scripts the slider stays hidden and the rest reads the same).
//!
//! A report is something one mails to a colleague or attaches to a CI run, so it must open
//! anywhere and stay the same: the same events give the same bytes (no clock, no random ids,
//! fixed number formatting, ordered maps). [`svg`] draws the chart from the events alone;
//! [`html`] assembles the page.

pub mod html;
pub mod svg;

pub use html::{render_html, ReportInput};
pub use svg::render_swimlanes;

/// Escapes text for HTML and SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
