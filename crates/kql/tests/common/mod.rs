//! The fixed dataset the KQL tests run over: four tables of a small Log Analytics workspace on
//! 2020-07-05, with "now" at 14:00 UTC. Shared by the table-driven tests and the fuzz test.

#![allow(dead_code)]

use std::collections::BTreeMap;

use cmksim_kql::{parse_datetime, Column, ColumnType, Table, Value};
use serde_json::json;

/// "Now" for every test: 2020-07-05T14:00:00Z.
pub const NOW_MS: i64 = 1_593_957_600_000;

/// Milliseconds in a minute.
pub const MINUTE_MS: i64 = 60_000;

/// 2020-07-05 at `hh:mm` UTC, in Unix ms.
pub fn at(hh: i64, mm: i64) -> i64 {
    let midnight = parse_datetime("2020-07-05").expect("a valid date");
    midnight + hh * 60 * MINUTE_MS + mm * MINUTE_MS
}

fn s(text: &str) -> Value {
    Value::String(text.to_string())
}

fn table(name: &str, columns: &[(&str, ColumnType)], rows: Vec<Vec<Value>>) -> Table {
    Table {
        name: name.to_string(),
        columns: columns.iter().map(|(n, t)| Column::new(*n, *t)).collect(),
        rows,
    }
}

/// Heartbeat: 20 rows, every 5 minutes from 12:00 to 13:35, round-robin over four computers;
/// the last five have an empty Category.
fn heartbeat() -> Table {
    let computers = ["web-01", "web-02", "db-01", "DB-02"];
    let rows = (0..20)
        .map(|i: i64| {
            let c = computers[usize::try_from(i % 4).expect("small")];
            vec![
                Value::DateTime(at(12, 0) + 5 * i * MINUTE_MS),
                s(c),
                s(if i < 15 { "Direct Agent" } else { "" }),
                s(if i % 4 < 2 { "Linux" } else { "Windows" }),
            ]
        })
        .collect();
    use ColumnType as T;
    table(
        "Heartbeat",
        &[
            ("TimeGenerated", T::DateTime),
            ("Computer", T::String),
            ("Category", T::String),
            ("OSType", T::String),
        ],
        rows,
    )
}

fn perf() -> Table {
    let rows = [
        (0, "web-01", "% Processor Time", Some(10.0)),
        (0, "web-02", "% Processor Time", Some(20.0)),
        (5, "web-01", "% Processor Time", Some(30.0)),
        (5, "web-02", "% Processor Time", Some(40.0)),
        (10, "web-01", "Available MBytes", Some(1000.0)),
        (10, "web-02", "Available MBytes", Some(2000.0)),
        (15, "db-01", "% Processor Time", Some(50.0)),
        (15, "db-01", "Available MBytes", Some(500.0)),
        (20, "web-01", "% Processor Time", Some(15.5)),
        (20, "db-01", "% Processor Time", None),
        (25, "web-02", "Available MBytes", Some(2500.0)),
        (30, "db-01", "% Processor Time", Some(70.0)),
    ]
    .into_iter()
    .map(|(m, c, n, v)| {
        vec![
            Value::DateTime(at(12, m)),
            s(c),
            s(n),
            v.map_or(Value::Null, Value::Real),
        ]
    })
    .collect();
    use ColumnType as T;
    table(
        "Perf",
        &[
            ("TimeGenerated", T::DateTime),
            ("Computer", T::String),
            ("CounterName", T::String),
            ("CounterValue", T::Real),
        ],
        rows,
    )
}

fn event() -> Table {
    let rows = [
        (
            1,
            "db-01",
            Some(4624),
            "An account was successfully logged on",
            json!({"user": "alice", "level": 4, "tags": ["auth", "ok"]}),
        ),
        (
            2,
            "db-01",
            Some(4625),
            "An account failed to log on",
            json!({"user": "bob", "level": 2, "tags": ["auth", "fail"]}),
        ),
        (
            3,
            "web-01",
            Some(7036),
            "The Windows Update service entered the running state",
            json!({"user": "system", "level": 4}),
        ),
        (
            4,
            "web-01",
            Some(1000),
            "Application Error: disk full",
            json!({"level": 1}),
        ),
        (
            5,
            "DB-02",
            Some(4624),
            "An account was successfully logged on",
            json!({"user": "Alice", "level": 4}),
        ),
        (
            6,
            "web-02",
            Some(6005),
            "The Event log service was started",
            serde_json::Value::Null,
        ),
        (
            7,
            "db-01",
            Some(4625),
            "An account failed to log on",
            json!({"user": "carol", "level": 2}),
        ),
        (
            8,
            "web-02",
            None,
            "KustoExplorerQueryRun finished",
            json!({"level": 3}),
        ),
    ]
    .into_iter()
    .map(|(m, c, id, d, props)| {
        vec![
            Value::DateTime(at(12, m)),
            s(c),
            id.map_or(Value::Null, Value::Long),
            s(d),
            if props.is_null() {
                Value::Null
            } else {
                Value::Dynamic(props)
            },
        ]
    })
    .collect();
    use ColumnType as T;
    table(
        "Event",
        &[
            ("TimeGenerated", T::DateTime),
            ("Computer", T::String),
            ("EventID", T::Long),
            ("RenderedDescription", T::String),
            ("Props", T::Dynamic),
        ],
        rows,
    )
}

fn custom() -> Table {
    let rows = [
        (0, "deploy started", 1, 90_000, true),
        (10, "deploy failed: timeout", 3, 300_000, false),
        (20, "deploy retried", 2, 120_000, true),
        (30, "deploy ok", 1, 30_000, true),
        (40, "health check 'quoted'", 0, 100, true),
    ]
    .into_iter()
    .map(|(m, msg, sev, dur, ok)| {
        vec![
            Value::DateTime(at(13, m)),
            s(msg),
            Value::Long(sev),
            Value::TimeSpan(dur),
            Value::Bool(ok),
        ]
    })
    .collect();
    use ColumnType as T;
    table(
        "Custom_CL",
        &[
            ("TimeGenerated", T::DateTime),
            ("Message", T::String),
            ("Severity", T::Long),
            ("Duration", T::TimeSpan),
            ("Ok", T::Bool),
        ],
        rows,
    )
}

/// The four tables by name.
pub fn dataset() -> BTreeMap<String, Table> {
    [heartbeat(), perf(), event(), custom()]
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect()
}
