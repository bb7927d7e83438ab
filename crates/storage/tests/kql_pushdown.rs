//! The KQL pushdown gives the same answers: a query run over rows from `DataPlane::scan_rows`
//! (only the columns `Query::projection` keeps, only the rows `Query::row_filter` keeps) equals
//! the same query run over every column of every record, as read by `DataPlane::query`, for a
//! mix of queries over data with absent columns, dynamic columns, several blocks and both tiers.

use std::collections::BTreeMap;
use std::time::Duration;

use cmksim_kql as kql;
use cmksim_sim::SimTime;
use cmksim_storage::data::bench::{cmk_account, open_plane, sealing};
use cmksim_storage::data::tier::ScanRequest;
use cmksim_storage::data::{DataPlane, Record, RowScan, Value, SUMMARIZE_GROUPS_MAX};

const ACCOUNT: &str = "cluster:pushdown";
const WORKSPACE: &str = "ws-pushdown";
const TABLE: &str = "Events";
/// Small blocks, so the data spans many of them.
const BLOCK_BYTES: usize = 4 * 1024;

/// The table's columns as the front end orders them: `TimeGenerated`, then the rest by name.
fn columns() -> Vec<kql::Column> {
    use kql::ColumnType as T;
    [
        ("TimeGenerated", T::DateTime),
        ("Category", T::String),
        ("Computer", T::String),
        ("Latency", T::Real),
        ("Level", T::Long),
        ("Ok", T::Bool),
        ("Props", T::Dynamic),
        ("Seen", T::DateTime),
    ]
    .into_iter()
    .map(|(name, t)| kql::Column::new(name, t))
    .collect()
}

/// The `n`th record: every column is sometimes absent, `Props` is an object, an array, a JSON
/// null or a string.
fn record(n: i64, time_ms: i64) -> Record {
    let mut r = Record::new(TABLE, time_ms);
    if n % 7 != 0 {
        let kind = ["web", "db", "app"][(n % 3) as usize];
        r = r.with("Computer", Value::String(format!("{kind}-{:02}", n % 11)));
    }
    if n % 5 != 1 {
        r = r.with(
            "Category",
            Value::String(["Direct Agent", "OpsManager", ""][(n % 3) as usize].into()),
        );
    }
    if n % 4 != 2 {
        r = r.with("Level", Value::Long(n % 6));
    }
    if n % 6 != 3 {
        r = r.with("Latency", Value::Real((n % 13) as f64 * 1.5));
    }
    if n % 9 != 4 {
        r = r.with("Ok", Value::Bool(n % 2 == 0));
    }
    if n % 8 != 5 {
        r = r.with("Seen", Value::DateTime(time_ms - (n % 4) * 86_400_000));
    }
    let props = match n % 5 {
        0 => {
            let kind = ["a", "b"][(n % 2) as usize];
            Some(serde_json::json!({"level": n % 4, "kind": kind}))
        }
        1 => Some(serde_json::json!(["a", n % 3, {"x": true}])),
        2 => Some(serde_json::Value::Null),
        3 => Some(serde_json::json!("plain")),
        _ => None,
    };
    if let Some(p) = props {
        r = r.with("Props", Value::Dynamic(p));
    }
    r
}

struct World {
    plane: DataPlane,
    aek: cmksim_storage::data::Aek,
    now: SimTime,
    from: SimTime,
    to: SimTime,
    _dir: tempfile::TempDir,
}

/// 3,000 records over three days ending now (so the newest blocks also have hot copies), in
/// batches of 100.
fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let plane = open_plane(dir.path(), BLOCK_BYTES, 0).unwrap();
    let now = SimTime::DEFAULT_EPOCH.add(Duration::from_secs(100 * 86_400));
    let aek = cmk_account(&plane, ACCOUNT, now).unwrap();
    let span_ms = 3 * 86_400_000;
    let start = now.0 - span_ms;
    let step = span_ms / 3_000;
    for batch in 0..30 {
        let records: Vec<Record> = (batch * 100..(batch + 1) * 100)
            .map(|n| record(n, start + n * step))
            .collect();
        plane
            .append(ACCOUNT, sealing(&aek), WORKSPACE, TABLE, &records, now)
            .unwrap();
    }
    World {
        plane,
        aek,
        now,
        from: SimTime(start),
        to: SimTime(now.0 + 1),
        _dir: dir,
    }
}

fn request(w: &World) -> ScanRequest<'_> {
    ScanRequest {
        account: ACCOUNT,
        aek: Some(&w.aek),
        workspace: WORKSPACE,
        table: TABLE,
        from: w.from,
        to: w.to,
        now: w.now,
    }
}

/// The query over every column of every record (as the front end read them before the
/// pushdown): records in time order, absent columns null.
fn reference(w: &World, query: &kql::Query) -> Result<kql::Table, kql::ExecError> {
    let columns = columns();
    let records = w
        .plane
        .query(ACCOUNT, Some(&w.aek), WORKSPACE, TABLE, w.from, w.to, w.now)
        .unwrap()
        .records;
    let rows = records
        .into_iter()
        .map(|mut r| {
            columns
                .iter()
                .map(|c| match c.name.as_str() {
                    "TimeGenerated" => kql::Value::DateTime(r.time_generated_ms),
                    name => r
                        .columns
                        .remove(name)
                        .map_or(kql::Value::Null, cmksim_storage::data::record::kql_cell),
                })
                .collect()
        })
        .collect();
    let table = kql::Table {
        name: TABLE.into(),
        columns,
        rows,
    };
    kql::execute(
        query,
        &BTreeMap::from([(TABLE.to_string(), table)]),
        w.now.unix_ms(),
    )
}

/// The query over what the pushed-down scan keeps, in time order (as the gRPC query returns
/// rows), on `threads` threads; and how many rows the scan kept.
fn pushed_down(
    w: &World,
    query: &kql::Query,
    threads: usize,
) -> (Result<kql::Table, kql::ExecError>, usize) {
    let all = columns();
    let columns = query.projection(TABLE, &all).unwrap_or(all);
    let filter = match query.row_filter(TABLE, &columns) {
        Ok(f) => f,
        Err(e) => return (Err(e), 0),
    };
    let mut rows = Vec::new();
    w.plane
        .scan_rows_on(
            threads,
            &request(w),
            &RowScan {
                columns: &columns,
                filter: filter.as_ref(),
                now_ms: w.now.unix_ms(),
            },
            &mut |_, _, time_ms, row| rows.push((time_ms, row)),
        )
        .unwrap();
    rows.sort_by_key(|(t, _)| *t); // stable: ties keep scan order, as the query's heap does
    let kept = rows.len();
    let table = kql::Table {
        name: TABLE.into(),
        columns,
        rows: rows.into_iter().map(|(_, r)| r).collect(),
    };
    let result = kql::execute(
        query,
        &BTreeMap::from([(TABLE.to_string(), table)]),
        w.now.unix_ms(),
    );
    (result, kept)
}

const QUERIES: &[&str] = &[
    "Events | where Computer contains \"web\" | summarize count() by Category, bin(TimeGenerated, 5m)",
    "Events | where isnotempty(Category) | summarize dcount(Computer), sum(Level), avg(Latency), min(TimeGenerated), max(Level) by Category",
    "Events | where Props.level > 1 | project TimeGenerated, Computer, Props",
    "Events | where Level between (1 .. 3) and Ok == true | count",
    "Events | where isnull(Latency) | summarize count() by bin(TimeGenerated, 1h)",
    "Events | where Props[0] == \"a\" | distinct Computer",
    "Events | extend L2 = Level * 2 | where L2 > 4 | summarize dcount(Props) by Ok",
    "Events | where Computer startswith \"db\" | summarize make_set(Category), arg_max(Level, Computer) by Ok",
    "Events | summarize count() by tostring(Props.kind), bin(Seen, 1d)",
    "Events | where Level in (1, 2) or Computer has \"app\" | project Computer, Level | take 20",
    "Events | where Seen < ago(1d) | summarize max(Seen), dcount(Level)",
    "Events | where isnull(Props) | summarize count() by Computer | order by Computer asc",
    "Events | where Latency > 3.0 and not(Computer contains \"db\") | summarize percentile(Latency, 90) by bin(TimeGenerated, 6h)",
    "Events | where Computer =~ \"WEB-01\" | top 5 by Latency desc",
    "Events | where Ok | project-away Props | take 7",
    "Events | where TimeGenerated > ago(2d) | summarize countif(Level > 2) by Category",
    "Events | summarize count()",
    "Events | where Unknown == 1 | count",
    "Events | where Computer == 5 | count",
];

#[test]
fn pushed_down_queries_answer_as_over_every_column_and_row() {
    let w = world();
    let mut narrowed = 0;
    for text in QUERIES {
        let query = kql::parse(text).unwrap();
        let expected = reference(&w, &query);
        for threads in [1, 2] {
            let (got, kept) = pushed_down(&w, &query, threads);
            assert_eq!(got, expected, "{text} on {threads} threads");
            if threads == 1 && expected.is_ok() && kept < 3_000 {
                narrowed += 1;
            }
        }
    }
    // The filters really ran in the scan for most of the queries (not only after it).
    assert!(
        narrowed >= 12,
        "{narrowed} queries kept fewer rows than the table"
    );
}

#[test]
fn projection_keeps_only_what_the_query_reads() {
    let all = columns();
    let names = |text: &str| {
        kql::parse(text)
            .unwrap()
            .projection(TABLE, &all)
            .map(|c| c.into_iter().map(|c| c.name).collect::<Vec<_>>())
    };
    assert_eq!(
        names("Events | where Computer contains 'x' | summarize count() by bin(TimeGenerated, 5m)"),
        Some(vec!["TimeGenerated".to_string(), "Computer".to_string()])
    );
    assert_eq!(
        names("Events | extend L = Level | project L, Props.level"),
        Some(vec!["Level".to_string(), "Props".to_string()])
    );
    assert_eq!(
        names("Events | where Level > 1 | count"),
        Some(vec!["Level".to_string()])
    );
    // Every column may be output or read.
    assert_eq!(names("Events | where Level > 1"), None);
    assert_eq!(names("Events | project-away Props | project Level"), None);
    assert_eq!(names("Events | summarize arg_max(Level, *)"), None);
    assert_eq!(names("Events | distinct *"), None);
    assert_eq!(names("union Events, Other | count"), None);
    assert_eq!(names("Other | count"), None);
}

#[test]
fn the_stats_count_every_record_in_range_kept_or_not() {
    let w = world();
    let query = kql::parse("Events | where Level == 5 | count").unwrap();
    let all = columns();
    let columns = query.projection(TABLE, &all).unwrap();
    let filter = query.row_filter(TABLE, &columns).unwrap();
    let mut kept = 0;
    let stats = w
        .plane
        .scan_rows(
            &request(&w),
            &RowScan {
                columns: &columns,
                filter: filter.as_ref(),
                now_ms: w.now.unix_ms(),
            },
            &mut |_, _, _, row| {
                assert_eq!(row, vec![kql::Value::Long(5)]);
                kept += 1;
            },
        )
        .unwrap();
    assert_eq!(stats.records, 3_000);
    assert!(stats.blocks_read > 10 && stats.served_from_hot > 0);
    // n % 6 == 5 and n % 4 != 2: every 6th record, none of which is even, so all of them.
    assert_eq!(kept, 500);
}

/// Summarize queries whose aggregates merge exactly: groups split across blocks (every group
/// spans many 4 KiB blocks), blocks where the filter keeps nothing, no kept row at all, dcount
/// and avg merges, and operators after the summarize.
const SUMMARIZED: &[&str] = &[
    "Events | where Computer contains \"web\" | summarize count() by Category, bin(TimeGenerated, 5m)",
    "Events | summarize count(), dcount(Computer), sum(Level), avg(Level), min(TimeGenerated), max(Computer) by Category",
    "Events | where Level == 5 | summarize count() by bin(TimeGenerated, 1h)",
    "Events | where Level == 99 | summarize count(), sum(Level), min(Computer)",
    "Events | where Level == 99 | summarize count() by Computer",
    "Events | summarize countif(Ok), dcount(Props) by Ok, bin(Seen, 1d) | order by countif_Ok desc",
    "Events | where TimeGenerated > ago(2d) | summarize n = count() by Computer | top 3 by n",
    "Events | summarize count()",
    // Counted per key in columnar blocks (count() by string columns and bins of the time):
    // time ranges and bins that cut blocks, blocks wholly inside or outside the range, two
    // keys with nulls and empty strings, nothing kept, and filters that count rows instead.
    "Events | where TimeGenerated between (ago(2d) .. ago(1d)) and Computer contains \"web\" | summarize count() by Category, bin(TimeGenerated, 5m)",
    "Events | where TimeGenerated > ago(1d) | summarize count() by Computer, Category",
    "Events | where TimeGenerated >= ago(100d) | summarize n = count() by bin(TimeGenerated, 7h), Category | order by n desc | take 5",
    "Events | where TimeGenerated < ago(30d) | summarize count() by Category",
    "Events | where Category == \"\" and Computer !contains \"db\" | summarize count() by Computer",
    "Events | where Computer !contains \"db\" and Level > 2 | summarize count() by bin(TimeGenerated, 1h)",
    "Events | where Level > 2 or Computer == \"web-01\" | summarize count() by Category",
    "Events | where now() > ago(1h) and Computer has \"app\" | summarize count() by Computer, bin(TimeGenerated, 1d)",
    "Events | where 1 == 2 | summarize count() by Computer",
    "Events | summarize count() by bin(TimeGenerated, 1ms), Category | count",
];

/// The query with its summarize folded into groups in the scan (`DataPlane::summarize_rows`) on
/// `threads` threads, finished by the plan.
fn summarized(w: &World, query: &kql::Query, threads: usize) -> kql::Table {
    let all = columns();
    let columns = query.projection(TABLE, &all).unwrap_or(all);
    let filter = query.row_filter(TABLE, &columns).unwrap();
    let plan = query
        .summarize_plan(TABLE, &columns)
        .unwrap()
        .expect("a mergeable summarize");
    let scan = RowScan {
        columns: &columns,
        filter: filter.as_ref(),
        now_ms: w.now.unix_ms(),
    };
    let done = w
        .plane
        .summarize_rows_on(threads, &request(w), &scan, &plan, SUMMARIZE_GROUPS_MAX)
        .unwrap();
    assert_eq!(done.stats.records, 3_000);
    assert_eq!(done.kept_from_hot + done.kept_from_cold, done.groups.rows());
    let result = plan.finish(done.groups, w.now.unix_ms()).unwrap();
    // The same with the query's own time bounds as the scan's range (as the front end asks):
    // a range that cuts blocks.
    let (from, to) = query.time_bounds(w.now.unix_ms());
    let narrowed = ScanRequest {
        from: SimTime(from.map_or(w.from.0, |f| f.clamp(w.from.0, w.to.0))),
        to: SimTime(to.map_or(w.to.0, |t| t.clamp(w.from.0, w.to.0))),
        ..request(w)
    };
    let done = w
        .plane
        .summarize_rows_on(threads, &narrowed, &scan, &plan, SUMMARIZE_GROUPS_MAX)
        .unwrap();
    assert_eq!(plan.finish(done.groups, w.now.unix_ms()).unwrap(), result);
    result
}

#[test]
fn summarizing_in_the_scan_answers_as_over_every_column_and_row() {
    let w = world();
    for text in SUMMARIZED {
        let query = kql::parse(text).unwrap();
        let expected = reference(&w, &query).unwrap();
        for threads in [1, 2, 3] {
            assert_eq!(
                summarized(&w, &query, threads),
                expected,
                "{text} on {threads} threads"
            );
        }
    }
    // Floats and order-keeping aggregates are not summarized in parts.
    for text in [
        "Events | summarize avg(Latency) by Category",
        "Events | summarize make_set(Category)",
        "Events | where Ok | count",
    ] {
        let query = kql::parse(text).unwrap();
        let all = columns();
        let columns = query.projection(TABLE, &all).unwrap_or(all);
        assert!(
            query.summarize_plan(TABLE, &columns).unwrap().is_none(),
            "{text}"
        );
    }
}

/// A summarize with more groups than the scan may hold is refused, naming the bound, rather
/// than held in memory; with room for its groups the same query answers.
#[test]
fn a_summarize_past_its_groups_bound_is_refused() {
    let w = world();
    let query = kql::parse("Events | summarize count() by bin(TimeGenerated, 1ms)").unwrap();
    let all = columns();
    let columns = query.projection(TABLE, &all).unwrap_or(all);
    let plan = query.summarize_plan(TABLE, &columns).unwrap().unwrap();
    let scan = RowScan {
        columns: &columns,
        filter: None,
        now_ms: w.now.unix_ms(),
    };
    let groups = w
        .plane
        .summarize_rows_on(1, &request(&w), &scan, &plan, SUMMARIZE_GROUPS_MAX)
        .unwrap()
        .groups
        .len();
    assert!(groups > 100, "{groups} groups");
    for threads in [1, 2] {
        let refused = w
            .plane
            .summarize_rows_on(threads, &request(&w), &scan, &plan, groups - 1)
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            format!(
                "the summarize of {ACCOUNT}/{WORKSPACE}/{TABLE} makes more than {} groups",
                groups - 1
            )
        );
        let exact = w
            .plane
            .summarize_rows_on(threads, &request(&w), &scan, &plan, groups)
            .unwrap();
        assert_eq!(exact.groups.len(), groups);
    }
}
