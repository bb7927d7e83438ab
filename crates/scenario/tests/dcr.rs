//! Data collection rules in scenario files (`[[dcrs]]`) and the `upload` step: the format reads
//! into the model, each mistake is reported at its `FILE:LINE:COLUMN` with the rule the HTTPS
//! door applies too (`cmksim_sim::dcr`), and an `ingest` step of a custom table is refused
//! before the run instead of failing during it.

use cmksim_scenario::model::{Action, StepKind};
use cmksim_sim::dcr::StreamType;

mod common;
use common::diagnostics::{assert_one, at, valid as scenario};

const FILE: &str = r#"[scenario]
name = "t"
title = "T"
duration = "2h"

[[workspaces]]
name = "ws-app"
location = "westeurope"

[[dcrs]]
name = "app-dcr"
workspace = "ws-app"
streams = [
  { name = "Custom-App", columns = [
      { name = "Message", type = "string" },
      { name = "Level", type = "int" },
      { name = "Ok", type = "Boolean" },
  ] },
  { name = "Custom-Audit", columns = [{ name = "Who", type = "string" }] },
]
flows = [
  { streams = ["Custom-App"], output = "Custom-App_CL" },
  { streams = ["Custom-App", "Custom-Audit"], output = "Microsoft-Syslog" },
  { streams = ["Custom-Audit"] },
]

[[timeline]]
id = "send"
at = "10m"
action = "upload"
dcr = "app-dcr"
stream = "Custom-App"
records = 250
"#;

#[test]
fn a_rule_and_an_upload_read_into_the_model() {
    let s = scenario(FILE);
    let rule = &s.world.dcrs[0];
    assert_eq!(rule.name, "app-dcr");
    assert_eq!(rule.workspace, "ws-app");
    assert_eq!(
        rule.stream("Custom-App").unwrap().columns,
        vec![
            ("Message".to_string(), StreamType::String),
            ("Level".to_string(), StreamType::Int),
            ("Ok".to_string(), StreamType::Boolean),
        ]
    );
    // Flow order, each table once; a flow without `output` writes its first stream's table.
    assert_eq!(rule.tables_of("Custom-App"), vec!["App_CL", "Syslog"]);
    assert_eq!(rule.tables_of("Custom-Audit"), vec!["Syslog", "Audit"]);
    let StepKind::Action(Action::Upload {
        dcr,
        stream,
        records,
    }) = &s.timeline[0].what
    else {
        panic!("{:?}", s.timeline[0].what)
    };
    assert_eq!(
        (dcr.as_str(), stream.as_str(), *records),
        ("app-dcr", "Custom-App", 250)
    );
}

#[test]
fn mistakes_in_a_rule_are_reported_where_they_are() {
    let text = FILE.replacen("\"Custom-Audit\", columns", "\"Audit\", columns", 1);
    assert_one(
        &text,
        &at(&text, "\"Audit\", columns", 0),
        "stream \"Audit\" must be named `Custom-<name>`",
    );
    let text = FILE.replacen("\"Level\"", "\"2Level\"", 1);
    assert_one(
        &text,
        &at(&text, "\"2Level\"", 0),
        "column name \"2Level\" is not valid",
    );
    let text = FILE.replacen("type = \"int\"", "type = \"integer\"", 1);
    assert_one(
        &text,
        &at(&text, "\"integer\"", 0),
        "column `Level` has type \"integer\"; expected one of string, int, long, real, boolean, datetime, dynamic",
    );
    let text = FILE.replacen("{ name = \"Ok\"", "{ name = \"level\"", 1);
    assert_one(
        &text,
        &at(&text, "\"level\"", 0),
        "column `level` is declared twice in `Custom-App`",
    );
    let text = FILE.replacen("output = \"Custom-App_CL\"", "output = \"App_CL\"", 1);
    assert_one(
        &text,
        &at(&text, "\"App_CL\"", 0),
        "output stream \"App_CL\" names no table",
    );
    let text = FILE.replacen(
        "{ streams = [\"Custom-Audit\"] }",
        "{ streams = [\"Custom-Other\"] }",
        1,
    );
    assert_one(
        &text,
        &at(&text, "\"Custom-Other\"", 0),
        "data flow stream \"Custom-Other\" is not declared in `streams`",
    );
    let text = FILE.replacen(
        "workspace = \"ws-app\"\nstreams",
        "workspace = \"ws-nope\"\nstreams",
        1,
    );
    assert_one(
        &text,
        &at(&text, "\"ws-nope\"", 0),
        "unknown workspace `ws-nope`",
    );
}

#[test]
fn an_upload_names_a_declared_rule_and_stream() {
    let text = FILE.replacen("dcr = \"app-dcr\"", "dcr = \"other-dcr\"", 1);
    assert_one(
        &text,
        &at(&text, "\"other-dcr\"", 0),
        "unknown data collection rule `other-dcr` (known: `app-dcr`)",
    );
    let text = FILE.replacen("stream = \"Custom-App\"", "stream = \"Custom-Nope\"", 1);
    assert_one(
        &text,
        &at(&text, "\"Custom-Nope\"", 0),
        "rule `app-dcr` declares no stream \"Custom-Nope\" (declared: Custom-App, Custom-Audit)",
    );
    let text = FILE.replacen("records = 250", "records = 0", 1);
    assert_one(&text, &at(&text, "records = 0", 10), "records");
    let text = FILE.replacen("stream = \"Custom-App\"\n", "", 1);
    assert_one(
        &text,
        &at(&text, "\"upload\"", 0),
        "action `upload` needs `stream`",
    );
}

#[test]
fn an_ingest_step_of_a_custom_table_is_refused_before_the_run() {
    let text = FILE.replacen(
        "action = \"upload\"\ndcr = \"app-dcr\"\nstream = \"Custom-App\"",
        "action = \"ingest\"\nworkspace = \"ws-app\"\ntable = \"App_CL\"",
        1,
    );
    assert_one(
        &text,
        &at(&text, "\"App_CL\"", 0),
        "an ingest step sends a standard table (Event, Heartbeat, Perf, Syslog), not `App_CL`",
    );
}
