//! `kql = "..."` on a `query` step and a `query` expectation: a bad query is reported at its
//! character inside the TOML string, the accepted shapes reach the model, and a KQL probe's event
//! is told apart from another query's.

use std::path::Path;
use std::time::Duration;

use cmksim_scenario::events::Emit;
use cmksim_scenario::expect::evaluate;
use cmksim_scenario::model::{Action, StepKind, Subject};
use cmksim_scenario::validate_str;
use cmksim_sim::EventLog;
use serde_json::json;

mod common;
use common::diagnostics::{assert_one, at, errors};
use common::{m, START};

const DASHBOARD: &str = "Heartbeat | summarize count() by bin(TimeGenerated, 5m)";

/// A world with one linked workspace, then `extra`.
fn file(extra: &str) -> String {
    format!(
        "[scenario]\nname = \"t\"\ntitle = \"T\"\nduration = \"4h\"\n\
         [[vaults]]\nname = \"kv1\"\nlocation = \"westeurope\"\npurge_protection = true\n\
         [[keys]]\nvault = \"kv1\"\nname = \"k\"\nkty = \"RSA\"\n\
         [[clusters]]\nname = \"cl1\"\nlocation = \"westeurope\"\n\
         key = {{ vault = \"kv1\", name = \"k\", version = \"latest\" }}\n\
         [[workspaces]]\nname = \"wsp1\"\nlocation = \"westeurope\"\nlink = \"cl1\"\n{extra}"
    )
}

fn kql_error(query: &str) -> (u32, u32, String) {
    let e = cmksim_kql::parse(query).expect_err("the query is malformed");
    (e.line, e.column, e.message)
}

fn step(kql_literal: &str) -> String {
    file(&format!(
        "[[timeline]]\nat = \"1h\"\naction = \"query\"\nworkspace = \"wsp1\"\nkql = {kql_literal}\n"
    ))
}

#[test]
fn a_syntax_error_in_a_step_points_inside_the_string() {
    let query = "Heartbeat | summarize count( by Computer";
    let (line, column, message) = kql_error(query);
    assert_eq!(line, 1);
    let text = step(&format!("\"{query}\""));
    // The string's start column + 1 (the quote) + the KQL column - 1.
    let expected = at(&text, &format!("\"{query}\""), column as usize);
    assert_one(&text, &expected, &format!("kql: {message}"));
    assert_eq!(errors(&text).len(), 1, "{:?}", errors(&text));
}

#[test]
fn a_syntax_error_after_an_escape_is_still_at_its_character() {
    // `\"` is two characters in the file and one in the query: later columns shift by one.
    let query = "Heartbeat | where Computer == \"web\" | tke 5";
    let (_, column, message) = kql_error(query);
    let literal = format!("\"{}\"", query.replace('"', "\\\""));
    let text = step(&literal);
    assert_eq!(query[column as usize - 1..].split(' ').next(), Some("tke"));
    assert_one(&text, &at(&text, "tke 5", 0), &format!("kql: {message}"));
}

#[test]
fn a_syntax_error_in_a_multi_line_string_is_on_its_line() {
    // The newline after `"""` is not part of the query: KQL line 2 is the second line below it.
    let query = "Heartbeat\n| summarize by\n";
    let (line, _, message) = kql_error(query);
    assert_eq!(line, 3, "the parser wants a column after `by`: {message}");
    let text = step("\"\"\"\nHeartbeat\n| where Computer ==\n| take 5\n\"\"\"");
    let (line, column, message) = kql_error("Heartbeat\n| where Computer ==\n| take 5\n");
    assert_eq!((line, column), (3, 1), "{message}");
    assert_one(&text, &at(&text, "| take 5", 0), &format!("kql: {message}"));
}

#[test]
fn an_error_at_the_end_of_the_query_is_the_closing_quote() {
    let query = "Heartbeat |";
    let (_, column, message) = kql_error(query);
    assert_eq!(column as usize, query.chars().count() + 1);
    let text = step(&format!("\"{query}\""));
    assert_one(
        &text,
        &at(&text, &format!("\"{query}\""), query.len() + 1),
        &format!("kql: {message}"),
    );
}

#[test]
fn a_syntax_error_in_an_expectation_points_inside_the_string() {
    let query = "Heartbeat | summarize count() by bin(TimeGenerated 5m)";
    let (_, column, message) = kql_error(query);
    let text = file(&format!(
        "[[expect]]\nquery = \"wsp1\"\nkql = \"{query}\"\noutcome = \"succeeds\"\nat = \"2h\"\n"
    ));
    let expected = at(&text, &format!("\"{query}\""), column as usize);
    assert_one(&text, &expected, &format!("kql: {message}"));
}

#[test]
fn misplaced_kql() {
    // `table` and `kql` exclude each other.
    let text = file(&format!(
        "[[timeline]]\nat = \"1h\"\naction = \"query\"\nworkspace = \"wsp1\"\ntable = \"Perf\"\nkql = \"{DASHBOARD}\"\n"
    ));
    assert_one(
        &text,
        &at(&text, "\"Perf\"", 0),
        "`table` and `kql` exclude each other",
    );
    // Only the query action takes it.
    let text = file(&format!(
        "[[timeline]]\nat = \"1h\"\naction = \"ingest\"\nworkspace = \"wsp1\"\ntable = \"Perf\"\nkql = \"{DASHBOARD}\"\n"
    ));
    assert_one(
        &text,
        &at(&text, &format!("\"{DASHBOARD}\""), 0),
        "`kql` does not apply to action `ingest`",
    );
    // On an expectation: only with `query`, and only with `at`.
    let text = file(&format!(
        "[[expect]]\nstorage = \"cl1\"\nstate = \"revoked\"\nkql = \"{DASHBOARD}\"\nby = \"2h\"\n"
    ));
    assert_one(
        &text,
        &at(&text, &format!("\"{DASHBOARD}\""), 0),
        "`kql` does not apply to a `storage` expectation",
    );
    let text = file(&format!(
        "[[expect]]\nquery = \"wsp1\"\nkql = \"{DASHBOARD}\"\noutcome = \"fails\"\nby = \"2h\"\n"
    ));
    assert_one(
        &text,
        &at(&text, &format!("\"{DASHBOARD}\""), 0),
        "`kql` goes with `at`",
    );
    let text =
        file("[[expect]]\nquery = \"wsp1\"\nkql = \"  \"\noutcome = \"fails\"\nat = \"2h\"\n");
    assert_one(&text, &at(&text, "\"  \"", 0), "kql must not be empty");
}

#[test]
fn accepted_shapes_reach_the_model() {
    let text = file(&format!(
        "[[timeline]]\nid = \"dash\"\nat = \"1h\"\naction = \"query\"\nworkspace = \"wsp1\"\nkql = \"{DASHBOARD}\"\nsince = \"1h\"\n\
         [[expect]]\nquery = \"wsp1\"\nkql = '''\nunion Perf, Heartbeat\n| count\n'''\noutcome = \"succeeds\"\nmin_records = 1\nat = \"2h\"\n\
         [[expect]]\nquery = \"wsp1\"\noutcome = \"succeeds\"\nat = \"2h\"\n"
    ));
    let s = validate_str(Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{e:?}"));
    let StepKind::Action(Action::Query {
        table, kql, since, ..
    }) = &s.step("dash").unwrap().what
    else {
        panic!("a query step")
    };
    assert_eq!(table, &None);
    let kql = kql.as_ref().unwrap();
    assert_eq!(kql.text, DASHBOARD);
    assert_eq!(kql.tables, vec!["Heartbeat".to_string()]);
    assert_eq!(*since, Some(Duration::from_secs(3600)));
    let Subject::Query { kql: Some(k), .. } = &s.expectations[0].subject else {
        panic!("a KQL query expectation")
    };
    assert_eq!(k.event_table(), "Heartbeat,Perf");
    assert!(s.expectations[0]
        .description
        .contains("union Perf, Heartbeat | count"));
    // Two probes at the same moment: the KQL one and the plain one.
    let probes = s.query_probes();
    assert_eq!(probes.len(), 2);
    assert_eq!(probes[0].kql, None);
    assert_eq!(
        probes[1].kql.as_deref(),
        Some("union Perf, Heartbeat\n| count\n")
    );
}

#[test]
fn a_kql_probe_is_judged_by_the_event_of_its_tables() {
    let text = file(&format!(
        "[[expect]]\nid = \"kql\"\nquery = \"wsp1\"\nkql = \"{DASHBOARD}\"\noutcome = \"succeeds\"\nmin_records = 3\nat = \"2h\"\n\
         [[expect]]\nid = \"plain\"\nquery = \"wsp1\"\noutcome = \"fails\"\nat = \"2h\"\n"
    ));
    let s = validate_str(Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{e:?}"));
    let log = EventLog::new(1000);
    Emit { log: &log }.started(START, "t", 1, "azure-2020", 4 * 3_600_000);
    // At T+2h a plain query of another table fails first; then the KQL probe answers 12 rows.
    log.record_raw(
        m(120.0),
        "ingest",
        "query.failed",
        "query of wsp1/Perf failed".into(),
        json!({"workspace": "wsp1", "table": "Perf", "error_code": "Revoked", "reason": "revoked"}),
    );
    log.record_raw(
        m(120.0),
        "ingest",
        "query.ok",
        "query of wsp1/Heartbeat: 12 rows".into(),
        json!({"workspace": "wsp1", "table": "Heartbeat", "records": 12, "record_workspaces": ["wsp1"]}),
    );
    let verdicts = evaluate(&s, &log.snapshot());
    assert!(verdicts[0].held(), "{}", verdicts[0].detail);
    // The plain probe takes the first query of the workspace, as before.
    assert!(verdicts[1].held(), "{}", verdicts[1].detail);

    // Too few rows breaks it; no event of its tables breaks it too.
    let log = EventLog::new(1000);
    Emit { log: &log }.started(START, "t", 1, "azure-2020", 4 * 3_600_000);
    log.record_raw(
        m(120.0),
        "ingest",
        "query.ok",
        "query of wsp1/Heartbeat: 2 rows".into(),
        json!({"workspace": "wsp1", "table": "Heartbeat", "records": 2, "record_workspaces": ["wsp1"]}),
    );
    assert!(!evaluate(&s, &log.snapshot())[0].held());
    let log = EventLog::new(1000);
    Emit { log: &log }.started(START, "t", 1, "azure-2020", 4 * 3_600_000);
    log.record_raw(
        m(120.0),
        "ingest",
        "query.ok",
        "query of wsp1/Perf".into(),
        json!({"workspace": "wsp1", "table": "Perf", "records": 50, "record_workspaces": ["wsp1"]}),
    );
    let verdict = &evaluate(&s, &log.snapshot())[0];
    assert!(!verdict.held());
    assert!(verdict.detail.contains("no query"), "{}", verdict.detail);
}
