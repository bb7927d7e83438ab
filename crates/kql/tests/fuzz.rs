//! No input makes the parser or the evaluator panic: every prefix of every query of the table
//! tests, a few thousand seeded random byte strings, and a few thousand random sequences of KQL
//! tokens (which reach far deeper into the grammar than random bytes do). The seed is fixed,
//! so a failure reproduces.

mod common;

use std::collections::BTreeMap;

use cmksim_kql::{execute, parse, Column, ColumnType, Table, Value};
use common::{dataset, NOW_MS};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Queries whose prefixes are fed to the parser (a sample of every construct).
const SEEDS: &[&str] = &[
    "Heartbeat | where TimeGenerated > ago(1h) and Computer contains \"web\" | summarize count() by bin(TimeGenerated, 5m), Computer | order by count_ desc | take 10",
    "union Heartbeat, (Perf | where CounterValue between (1 .. 2.5)) | project a = strcat(Computer, '-', tostring(CounterValue)), b = iff(isnull(CounterValue), 0.0, CounterValue) | top 3 by b asc nulls last",
    "let t = datetime(2020-07-05T12:00:00Z);\nEvent // c\n| where Props[\"level\"] == 2 or Props.user in~ ('ALICE', \"bob\") | extend d = now() - TimeGenerated, s = split(RenderedDescription, ' ')[0] | project-away Props | distinct Computer, d",
    "Custom_CL | where Message !has_cs @'x''y' and Severity !in (1, 2) and Duration < 1.5h | summarize sum(Duration), avg(Severity), dcount(Message), countif(Ok), min(TimeGenerated), max(TimeGenerated) | count",
    "['Perf'] | where not(isempty(CounterName)) | extend x = -CounterValue * 2 / 3 % 4 + round(1.25, 1) | project-rename y = x | sort by y, Computer asc | limit 5",
    "Heartbeat | where TimeGenerated between (datetime(2020-07-05) .. 1d) | extend z = case(OSType == 'Linux', 1, OSType =~ 'windows', 2, 3), w = dynamic({\"a\": [1, 2]}).a[1] | summarize by z",
    "Perf | summarize arg_max(TimeGenerated, *), arg_min(CounterValue, Computer), percentile(CounterValue, 99.5), make_set(Computer, 2), make_list(CounterName) by bin(TimeGenerated, 1h) | render timechart with (title = 'cpu (avg)')",
    "Perf | summarize arg_max(TimeGenerated, *), arg_min(CounterValue, Computer), percentile(CounterValue, 99.5), make_set(Computer, 2), make_list(CounterName) by bin(TimeGenerated, 1h) | render timechart with (title = 'cpu (avg)')",
];

/// Fragments random token soups are made of.
const VOCABULARY: &[&str] = &[
    "Heartbeat",
    "Perf",
    "Event",
    "Custom_CL",
    "|",
    "where",
    "project",
    "project-away",
    "extend",
    "summarize",
    "by",
    "order",
    "sort",
    "take",
    "limit",
    "top",
    "count",
    "distinct",
    "union",
    "let",
    ";",
    "=",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "=~",
    "!~",
    "and",
    "or",
    "not",
    "(",
    ")",
    "[",
    "]",
    ",",
    ".",
    "..",
    "+",
    "-",
    "*",
    "/",
    "%",
    "contains",
    "!contains",
    "has",
    "!has",
    "startswith",
    "endswith",
    "in",
    "!in",
    "in~",
    "between",
    "!between",
    "asc",
    "desc",
    "nulls",
    "first",
    "last",
    "TimeGenerated",
    "Computer",
    "CounterValue",
    "Props",
    "Severity",
    "Duration",
    "Ok",
    "EventID",
    "ago",
    "now",
    "bin",
    "iff",
    "case",
    "strcat",
    "tostring",
    "toint",
    "split",
    "substring",
    "round",
    "count()",
    "sum",
    "avg",
    "min",
    "max",
    "dcount",
    "countif",
    "1",
    "0",
    "-5",
    "2.5",
    "1h",
    "5m",
    "100ms",
    "'a'",
    "\"b\"",
    "true",
    "false",
    "datetime(2020-07-05)",
    "dynamic([1,{\"a\":2}])",
    "long(null)",
    "['x']",
    "//c\n",
    "\n",
    "@'v'",
    "1e308",
    "9223372036854775807",
];

/// Parses and, when that succeeds, runs `text`; true when it parsed. Errors are fine; panics
/// are not.
fn run(text: &str) -> bool {
    let Ok(q) = parse(text) else {
        return false;
    };
    let _ = q.tables();
    let _ = q.time_bounds(NOW_MS);
    let _ = execute(&q, &dataset(), NOW_MS);
    true
}

#[test]
fn every_prefix_of_every_seed_query() {
    for seed in SEEDS {
        parse(seed).unwrap_or_else(|e| panic!("seed query does not parse: {e}\n{seed}"));
        for (i, _) in seed.char_indices() {
            run(&seed[..i]);
        }
        let q = parse(seed).expect("parses");
        execute(&q, &dataset(), NOW_MS).unwrap_or_else(|e| panic!("seed query fails: {e}\n{seed}"));
    }
}

#[test]
fn random_bytes() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x006b_716c);
    for _ in 0..3_000 {
        let len = rng.gen_range(0..80);
        let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        run(&String::from_utf8_lossy(&bytes));
        // And ASCII only, which the lexer gets further with.
        let ascii: String = (0..len)
            .map(|_| char::from(rng.gen_range(0x20u8..0x7f)))
            .collect();
        run(&ascii);
    }
}

#[test]
fn random_token_soups() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut parsed = 0;
    for _ in 0..3_000 {
        let mut text = String::from(VOCABULARY[rng.gen_range(0..4)]);
        for _ in 0..rng.gen_range(0..30) {
            text.push(' ');
            text.push_str(VOCABULARY[rng.gen_range(0..VOCABULARY.len())]);
        }
        parsed += usize::from(run(&text));
    }
    eprintln!("{parsed} of 3000 token soups parsed");
    assert!(
        parsed >= 30,
        "only {parsed} token soups parsed: the evaluator is barely exercised"
    );
}

/// Every function and operator over the extremes of every type: i64::MIN/MAX datetimes,
/// timespans and longs, NaN and infinite reals, empty and non-ASCII strings, odd JSON.
#[test]
fn extreme_values() {
    use ColumnType as T;
    let columns = [
        ("TimeGenerated", T::DateTime),
        ("n", T::Long),
        ("r", T::Real),
        ("t", T::TimeSpan),
        ("s", T::String),
        ("d", T::Dynamic),
        ("b", T::Bool),
    ]
    .iter()
    .map(|(n, t)| Column::new(*n, *t))
    .collect();
    let extremes = [
        (
            i64::MIN,
            i64::MIN,
            f64::NAN,
            i64::MIN,
            "",
            serde_json::json!(null),
        ),
        (
            i64::MAX,
            i64::MAX,
            f64::INFINITY,
            i64::MAX,
            "ÄÖ-ü ß",
            serde_json::json!([[], {}]),
        ),
        (
            -1,
            -1,
            f64::NEG_INFINITY,
            -1,
            "x",
            serde_json::json!({"a": {"b": [1.5e300, -0.0]}}),
        ),
        (0, 0, -0.0, 0, "\u{0}", serde_json::json!("2020-07-05")),
    ];
    let rows = extremes
        .iter()
        .map(|(dt, n, r, t, s, d)| {
            vec![
                Value::DateTime(*dt),
                Value::Long(*n),
                Value::Real(*r),
                Value::TimeSpan(*t),
                Value::String(s.to_string()),
                Value::Dynamic(d.clone()),
                Value::Null,
            ]
        })
        .collect();
    let mut tables = BTreeMap::new();
    tables.insert(
        "X".to_string(),
        Table {
            name: "X".into(),
            columns,
            rows,
        },
    );
    let exprs = [
        "n + 1",
        "n - 1",
        "n * 2",
        "n / -1",
        "n % -1",
        "-n",
        "abs(n)",
        "r * 2",
        "r / 0",
        "n / 0",
        "TimeGenerated + t",
        "TimeGenerated - TimeGenerated",
        "t * 2.5",
        "t / 0",
        "t / t",
        "bin(TimeGenerated, 7d)",
        "bin(n, 3)",
        "bin(r, 0.5)",
        "bin(t, 1h)",
        "floor(n, 7)",
        "round(r, 2)",
        "round(n, -2)",
        "sqrt(r)",
        "pow(r, n)",
        "startofday(TimeGenerated)",
        "tostring(TimeGenerated)",
        "tostring(t)",
        "tostring(r)",
        "tostring(d)",
        "tolong(r)",
        "toint(s)",
        "todouble(s)",
        "todatetime(d)",
        "totimespan(s)",
        "tobool(s)",
        "strlen(s)",
        "toupper(s)",
        "substring(s, n, n)",
        "substring(s, -5)",
        "split(s, '')",
        "split(s, '-', n)",
        "replace_string(s, '', 'x')",
        "indexof(s, 'ü')",
        "d.a.b[n]",
        "d[-1]",
        "d['a']",
        "array_length(d)",
        "parse_json(s)",
        "iff(b, n, r)",
        "case(b, r, n)",
        "coalesce(d, d)",
        "isempty(d)",
        "s has 'ü'",
        "s contains_cs ''",
        "d == n",
        "d > TimeGenerated",
        "n between (-1 .. 1)",
        "TimeGenerated between (ago(1d) .. 1d)",
        "ago(t)",
        "now(t)",
    ];
    for e in exprs {
        for q in [
            format!("X | extend v = {e} | order by v asc | summarize count(), dcount(v), min(v), max(v) by v"),
            format!("X | where isnotnull({e}) | project v = {e}, w = tostring({e}) | distinct v, w"),
        ] {
            let parsed = parse(&q).unwrap_or_else(|err| panic!("{q}: {err}"));
            let _ = parsed.time_bounds(i64::MAX);
            let _ = execute(&parsed, &tables, i64::MIN);
            let _ = execute(&parsed, &tables, i64::MAX);
        }
    }
    for q in [
        "X | summarize sum(n), sum(t), avg(n), sum(r), avg(r), countif(b)",
        "X | where TimeGenerated > ago(1h)",
        "X | top 2 by r asc nulls last",
    ] {
        let parsed = parse(q).expect("parses");
        let _ = execute(&parsed, &tables, i64::MIN);
    }
}
