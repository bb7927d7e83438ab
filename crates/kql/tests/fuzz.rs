//! No input makes the parser or the evaluator panic: every prefix of every query of the table
//! tests, a few thousand seeded random byte strings, and a few thousand random sequences of KQL
//! tokens (which reach far deeper into the grammar than random bytes do). The seed is fixed,
//! so a failure reproduces.

mod common;

use cmksim_kql::{execute, parse};
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
