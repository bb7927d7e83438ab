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

/// `RowFilter::conjunct_datetime_range`: the range it gives keeps exactly the datetimes the
/// conjunct keeps, at and around each bound and at the ends of i64; other shapes give none.
#[test]
fn a_datetime_range_keeps_exactly_what_its_conjunct_keeps() {
    let table = syslog();
    let now = 1_600_000_000_000 + 3_600_000;
    let c = 1_600_000_000_000i64;
    let ranged = [
        "TimeGenerated between (datetime(2020-09-13T12:26:40Z) .. datetime(2020-09-13T12:36:40Z))",
        "TimeGenerated between (datetime(2020-09-13T12:26:40Z) .. 10m)",
        "TimeGenerated between (datetime(2020-09-13T12:36:40Z) .. datetime(2020-09-13T12:26:40Z))",
        "TimeGenerated == datetime(2020-09-13T12:26:40Z)",
        "TimeGenerated > datetime(2020-09-13T12:26:40Z)",
        "TimeGenerated >= datetime(2020-09-13T12:26:40Z)",
        "TimeGenerated < datetime(2020-09-13T12:26:40Z)",
        "TimeGenerated <= datetime(2020-09-13T12:26:40Z)",
        "datetime(2020-09-13T12:26:40Z) < TimeGenerated",
        "datetime(2020-09-13T12:26:40Z) >= TimeGenerated",
        "TimeGenerated > ago(1h)",
        "now() - 30m >= TimeGenerated",
    ];
    let unranged = [
        "TimeGenerated != datetime(2020-09-13T12:26:40Z)",
        "TimeGenerated !between (datetime(2020-09-13T12:26:40Z) .. 10m)",
        "TimeGenerated between (TimeGenerated .. datetime(2020-09-13T12:26:40Z))",
        "TimeGenerated > TimeGenerated",
        "bin(TimeGenerated, 1h) == datetime(2020-09-13T12:00:00Z)",
        "TimeGenerated > datetime(null)",
        "Severity between (1 .. 3)",
        "Computer == 'host-1'",
        "TimeGenerated > ago(1h) or Severity == 2",
    ];
    let mut times = vec![i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX, now];
    for edge in [c, c + 600_000, now - 3_600_000, now - 1_800_000] {
        times.extend([edge - 1, edge, edge + 1]);
    }
    for (text, want_range) in ranged
        .iter()
        .map(|t| (t, true))
        .chain(unranged.iter().map(|t| (t, false)))
    {
        let query = parse(&format!("Syslog | where {text}")).unwrap();
        let filter = query.row_filter("Syslog", &table.columns).unwrap().unwrap();
        assert_eq!(filter.conjuncts(), 1, "{text}");
        let range = filter.conjunct_datetime_range(0, now);
        assert_eq!(range.is_some(), want_range, "{text}: {range:?}");
        let Some((at, low, high)) = range else {
            continue;
        };
        assert_eq!(at, 0, "{text}");
        let mut kept = 0;
        for &t in &times {
            let row = [
                Value::DateTime(t),
                Value::String("host-1".into()),
                Value::Long(2),
            ];
            let keeps = filter.conjunct_keeps(0, &row, now);
            assert_eq!(keeps, low <= t && t <= high, "{text} at {t}");
            kept += usize::from(keeps);
        }
        // Each range keeps some of the times and drops others (the tests can fail).
        if !text.contains("12:36:40Z) .. datetime(2020-09-13T12:26") {
            assert!(kept > 0 && kept < times.len(), "{text}: {kept}");
        } else {
            assert_eq!(kept, 0, "an inverted between keeps nothing");
        }
    }
}
