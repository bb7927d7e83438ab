//! The HTML report and its SVG chart: self-contained, well-formed, complete and deterministic.

use std::path::Path;

use cmksim_scenario::expect::evaluate;
use cmksim_scenario::narrate::{render_jsonl, render_timeline, NarrateOptions};
use cmksim_scenario::oracle::check_invariants;
use cmksim_scenario::report::{render_html, render_swimlanes, ReportInput};
use cmksim_scenario::summary::{exit_code, render_summary, Counts};
use cmksim_scenario::validate_file;

mod common;
use common::{flagship, Run, START};

/// Checks that every opened tag is closed in order (void and self-closing tags excepted) and
/// returns the tag names seen.
fn balanced(doc: &str) -> Result<Vec<String>, String> {
    const VOID: [&str; 3] = ["meta", "br", "!DOCTYPE"];
    let mut stack: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut rest = doc;
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').ok_or("unterminated tag")? + open;
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        if tag.contains('<') {
            return Err(format!("'<' inside tag {tag:?}"));
        }
        let self_closing = tag.ends_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/')
            .collect();
        if let Some(closing) = tag.strip_prefix('/') {
            let closing = closing.trim();
            match stack.pop() {
                Some(top) if top == closing => {}
                other => return Err(format!("</{closing}> closes {other:?}")),
            }
        } else if !self_closing && !VOID.contains(&name.as_str()) {
            stack.push(name.clone());
        }
        seen.push(name);
    }
    if stack.is_empty() {
        Ok(seen)
    } else {
        Err(format!("unclosed: {stack:?}"))
    }
}

fn report() -> String {
    let scenario = validate_file(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/revocation.toml"),
    )
    .unwrap();
    let events = flagship(Run {
        revoke_after: 0.5,
        resume_after: 30.0,
    });
    let expectations = evaluate(&scenario, &events);
    let invariants = check_invariants(&scenario, &events);
    render_html(&ReportInput::new(
        &scenario,
        &events,
        &expectations,
        &invariants,
    ))
}

#[test]
fn html_report_is_self_contained_well_formed_and_deterministic() {
    let html = report();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.html");
    std::fs::write(&path, &html).unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written, report(), "same events → same bytes");

    let tags = balanced(&written).unwrap_or_else(|e| panic!("{e}"));
    for tag in [
        "html", "svg", "style", "table", "rect", "line", "circle", "title",
    ] {
        assert!(tags.iter().any(|t| t == tag), "no <{tag}>");
    }
    // One inline script, the time slider's; nothing loaded from elsewhere.
    assert_eq!(written.matches("<script").count(), 1, "one script");
    assert!(written.contains("<script>(function(){"), "inline");
    assert!(!written.contains("src="), "no external assets");
    assert_eq!(written.matches("http").count(), 1, "only the SVG namespace");
    for lane in [
        ">faults<",
        ">key contoso-kv/logs-cmk<",
        ">storage contosologs<",
        ">polls contosologs<",
        ">ingest ws-ops<",
        ">ingest ws-sec<",
    ] {
        assert!(written.contains(lane), "missing lane {lane}");
    }
    for class in [
        "s-healthy",
        "s-revoked",
        "s-resuming",
        "k-disabled",
        "p-denied",
        "i-dropped",
        "i-stored",
        "fault",
    ] {
        assert!(
            written.contains(&format!("class=\"{class}\"")),
            "no band of class {class}"
        );
    }
    assert!(written.contains("revoked-within-1h"), "verdicts listed");
    assert!(written.contains("T+01:00"), "time axis in T+hh:mm");
    assert!(
        written.contains("» The cluster is healthy.")
            || written.contains("The cluster is healthy.")
    );
}

#[test]
fn the_time_slider_spans_the_run_and_every_narrated_line_has_its_time() {
    let html = report();
    let events = flagship(Run {
        revoke_after: 0.5,
        resume_after: 30.0,
    });
    let run = cmksim_scenario::history::RunSpan::of(&events);
    let span_s = (run.end.0 - run.start.0) / 1000;
    assert!(span_s > 0);
    assert!(
        html.contains(&format!("id=\"slider\" min=\"0\" max=\"{span_s}\"")),
        "the slider covers T+0 to the run's end"
    );
    assert!(html.contains("<label for=\"slider\">"), "labelled");
    assert!(
        html.contains("<div id=\"scrub\" class=\"scrub\" hidden>"),
        "hidden until the script shows it"
    );
    assert!(html.contains(&format!("data-start-ms=\"{}\"", run.start.0)));
    let rows = html.matches("<tr data-t-ms=").count()
        + html.matches("<tr class=\"narration\" data-t-ms=").count();
    let timeline_rows = html
        .split("id=\"timeline-box\"")
        .nth(1)
        .unwrap()
        .matches("<tr")
        .count();
    assert_eq!(
        rows,
        timeline_rows - 1,
        "every line but the header row has a time"
    );
    // The narrated line of the revocation at T+01:00:30 carries that offset.
    assert!(html.contains("<tr data-t-ms=\"3630000\"><td>T+01:00:30</td>"));
    assert!(!cmksim_scenario::report::html::SLIDER_SCRIPT.contains('<'));
}

#[test]
fn svg_alone_is_well_formed_and_escapes_text() {
    let mut events = flagship(Run {
        revoke_after: 0.5,
        resume_after: 30.0,
    });
    events[1].data["key"] = serde_json::json!("<k&\"1\">");
    let svg = render_swimlanes(
        &events,
        START,
        START.add(std::time::Duration::from_secs(4 * 3600)),
    );
    balanced(&svg).unwrap_or_else(|e| panic!("{e}"));
    assert!(svg.contains("&lt;k&amp;&quot;1&quot;&gt;"));
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
}

#[test]
fn summary_and_exit_code() {
    let scenario = validate_file(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/revocation.toml"),
    )
    .unwrap();
    let good = flagship(Run {
        revoke_after: 0.5,
        resume_after: 30.0,
    });
    let (e, i) = (
        evaluate(&scenario, &good),
        check_invariants(&scenario, &good),
    );
    assert_eq!(exit_code(&e, &i), 0);
    let counts = Counts::from_events(&good);
    assert_eq!(counts.workspaces["ws-ops"].batches, 240);
    let text = render_summary(&e, &i, &counts, false);
    assert!(text.contains("HELD    revoked-within-1h"), "{text}");
    assert!(
        text.contains("every expectation and invariant held"),
        "{text}"
    );
    assert!(!text.contains('\x1b'));

    let bad = flagship(Run {
        revoke_after: 70.0,
        resume_after: 30.0,
    });
    let (e, i) = (evaluate(&scenario, &bad), check_invariants(&scenario, &bad));
    assert_eq!(exit_code(&e, &i), 1);
    let text = render_summary(&e, &i, &Counts::from_events(&bad), true);
    assert!(text.contains("\x1b[1;31mBROKEN"), "{text}");
}

#[test]
fn timeline_and_jsonl_are_deterministic() {
    let a = flagship(Run {
        revoke_after: 0.5,
        resume_after: 30.0,
    });
    let b = flagship(Run {
        revoke_after: 0.5,
        resume_after: 30.0,
    });
    assert_eq!(render_jsonl(&a), render_jsonl(&b));
    let text = render_timeline(&a, START, NarrateOptions::default());
    assert_eq!(text, render_timeline(&b, START, NarrateOptions::default()));
    assert!(
        text.lines()
            .any(|l| l.starts_with("T+01:00:30  storage/contosologs") && l.contains("revoked")),
        "{text}"
    );
    // Routine polls are folded: far fewer lines than events.
    assert!(
        text.lines().count() * 10 < a.len(),
        "{} lines for {} events",
        text.lines().count(),
        a.len()
    );
}
