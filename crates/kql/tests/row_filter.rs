//! `Query::row_filter`: the leading `where`s a reader applies page by page must keep exactly
//! the rows the whole query would keep at that point, and nothing for queries they do not
//! cover.

use std::collections::BTreeMap;

use cmksim_kql::{execute, parse, Column, ColumnType, Table, Value};

fn syslog() -> Table {
    let columns = vec![
        Column::new("TimeGenerated", ColumnType::DateTime),
        Column::new("Computer", ColumnType::String),
        Column::new("Severity", ColumnType::Long),
    ];
    let rows = (0..40)
        .map(|i| {
            vec![
                Value::DateTime(1_600_000_000_000 + i * 60_000),
                Value::String(format!("host-{}", i % 4)),
                Value::Long(i % 7),
            ]
        })
        .collect();
    Table {
        name: "Syslog".into(),
        columns,
        rows,
    }
}

#[test]
fn the_filter_keeps_what_the_query_keeps() {
    let table = syslog();
    let now = 1_600_000_000_000 + 3_600_000;
    let text = "Syslog | where Computer == 'host-1' | where Severity > 2 | summarize count()";
    let query = parse(text).unwrap();
    let filter = query.row_filter("Syslog", &table.columns).unwrap().unwrap();
    let kept: Vec<_> = table
        .rows
        .iter()
        .filter(|r| filter.keeps(r, now))
        .cloned()
        .collect();
    assert!(!kept.is_empty() && kept.len() < table.rows.len());
    // The query over the filtered rows answers what it answers over all of them.
    let whole = execute(
        &query,
        &BTreeMap::from([("Syslog".into(), table.clone())]),
        now,
    )
    .unwrap();
    let filtered = Table {
        rows: kept.clone(),
        ..table.clone()
    };
    let part = execute(&query, &BTreeMap::from([("Syslog".into(), filtered)]), now).unwrap();
    assert_eq!(whole, part);
    assert_eq!(whole.rows, vec![vec![Value::Long(kept.len() as i64)]]);
}

#[test]
fn no_filter_where_none_applies() {
    let table = syslog();
    for text in [
        "Syslog | take 3",
        "Syslog | project Computer | where Computer == 'x'",
        "union Syslog, Heartbeat | where Computer == 'x'",
    ] {
        let query = parse(text).unwrap();
        assert!(
            query
                .row_filter("Syslog", &table.columns)
                .unwrap()
                .is_none(),
            "{text}"
        );
    }
    let query = parse("Syslog | where Computer == 'x'").unwrap();
    assert!(query
        .row_filter("Heartbeat", &table.columns)
        .unwrap()
        .is_none());
}

#[test]
fn a_filter_on_an_unknown_column_is_the_query_s_own_error() {
    let table = syslog();
    let query = parse("Syslog\n| where Nope == 1").unwrap();
    let e = query.row_filter("Syslog", &table.columns).unwrap_err();
    assert_eq!(e.to_string(), "2:9: unknown column 'Nope'");
}
