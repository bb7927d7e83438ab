//! `Query::summarize_plan`: a summarize evaluated in parts (a reader's blocks), each row given
//! its place in the input (`RowAt`), and merged in any order, directly or through bytes
//! (`SummarizePlan::encode`/`decode`), answers exactly what `execute` answers over the rows in
//! that order, wherever the input is cut; and only the aggregates that merge exactly get a plan.

use std::collections::BTreeMap;

use cmksim_kql::{bin_datetime, execute, parse, Column, ColumnType, KeyPart, RowAt, Table, Value};

const NOW_MS: i64 = 1_600_000_000_000 + 86_400_000;

/// 60 rows with nulls, empty strings, negative and huge longs, and groups that recur.
fn events() -> Table {
    let columns = vec![
        Column::new("TimeGenerated", ColumnType::DateTime),
        Column::new("Computer", ColumnType::String),
        Column::new("Level", ColumnType::Long),
        Column::new("Latency", ColumnType::Real),
        Column::new("Took", ColumnType::TimeSpan),
    ];
    let rows = (0..60i64)
        .map(|i| {
            vec![
                Value::DateTime(1_600_000_000_000 + i * 97_000),
                if i % 7 == 3 {
                    Value::Null
                } else {
                    Value::String(["web-1", "db-2", "", "app-3"][(i % 4) as usize].into())
                },
                match i % 9 {
                    4 => Value::Null,
                    // Sums past i64's range in the middle of the input, back inside at the end.
                    5 if i < 30 => Value::Long(i64::MAX - 3),
                    5 => Value::Long(-(i64::MAX - 3)),
                    _ => Value::Long(i % 6 - 2),
                },
                Value::Real((i % 5) as f64 * 0.1),
                Value::TimeSpan((i % 3) * 1_000),
            ]
        })
        .collect();
    Table {
        name: "Events".into(),
        columns,
        rows,
    }
}

/// Row `i` of the input, in input order.
fn at(i: usize) -> RowAt {
    RowAt {
        time_ms: 0,
        part: 0,
        seq: i as u64,
    }
}

/// How the parts' groups reach the merge.
#[derive(Clone, Copy, Debug)]
enum Merge {
    /// In input order, as they are.
    InOrder,
    /// Last part first, each through `encode` and `decode` (its rank as the part).
    ReversedThroughBytes,
}

/// The query in parts: the table cut at `cuts` (ascending row indexes), each part's kept rows
/// folded into its own groups, the parts merged in order.
fn in_parts(text: &str, table: &Table, cuts: &[usize]) -> Result<Table, String> {
    in_parts_merged(text, table, cuts, Merge::InOrder)
}

fn in_parts_merged(
    text: &str,
    table: &Table,
    cuts: &[usize],
    merge: Merge,
) -> Result<Table, String> {
    let query = parse(text).unwrap();
    let plan = query
        .summarize_plan("Events", &table.columns)
        .map_err(|e| e.to_string())?
        .ok_or("no plan")?;
    let filter = query
        .row_filter("Events", &table.columns)
        .map_err(|e| e.to_string())?;
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(table.rows.len());
    let mut parts = Vec::new();
    for part in bounds.windows(2) {
        let mut groups = plan.groups();
        for (i, row) in table.rows.iter().enumerate().take(part[1]).skip(part[0]) {
            if filter.as_ref().is_none_or(|f| f.keeps(row, NOW_MS)) {
                plan.add(&mut groups, row, NOW_MS, at(i));
            }
        }
        parts.push(groups);
    }
    let mut merged = plan.groups();
    match merge {
        Merge::InOrder => parts.into_iter().for_each(|g| plan.merge(&mut merged, g)),
        Merge::ReversedThroughBytes => {
            for groups in parts.into_iter().rev() {
                let rows = groups.rows();
                // Every row's seq is its index, so the part rank (0 for all) breaks no tie.
                let decoded = plan.decode(&plan.encode(&groups), 0).unwrap();
                assert_eq!((decoded.rows(), decoded.len()), (rows, groups.len()));
                plan.merge(&mut merged, decoded);
            }
        }
    }
    plan.finish(merged, NOW_MS).map_err(|e| e.to_string())
}

fn whole(text: &str, table: &Table) -> Result<Table, String> {
    let tables = BTreeMap::from([("Events".to_string(), table.clone())]);
    execute(&parse(text).unwrap(), &tables, NOW_MS).map_err(|e| e.to_string())
}

const MERGEABLE: &[&str] = &[
    "Events | summarize count()",
    "Events | where Level > 100 | summarize count(), sum(Level), min(Computer)",
    "Events | where Level > 100 | summarize count() by Computer",
    "Events | summarize count(), dcount(Level), min(TimeGenerated), max(Computer) by Computer",
    "Events | where Computer contains 'b' | summarize count() by Computer, bin(TimeGenerated, 5m)",
    "Events | summarize sum(Level), avg(Level), countif(Level > 0) by bin(TimeGenerated, 20m)",
    "Events | summarize sum(Took), max(Took), min(Level) by Computer",
    "Events | where isnotempty(Computer) | summarize n = count() by c = tolower(Computer) | order by n desc | take 2",
    "Events | summarize count() by Computer | where count_ > 10 | project Computer",
    "Events | summarize dcount(Computer), dcount(bin(TimeGenerated, 1h)) by Level",
];

#[test]
fn parts_merged_in_order_answer_as_one_pass_wherever_the_input_is_cut() {
    let table = events();
    let n = table.rows.len();
    let mut cut_sets: Vec<Vec<usize>> = vec![vec![], vec![0], vec![n], vec![1, 2, 3, n - 1]];
    cut_sets.extend((1..n).step_by(7).map(|c| vec![c]));
    // Every row its own part, and parts with no rows (the same cut twice).
    cut_sets.push((1..n).collect());
    cut_sets.push(vec![10, 10, 10, 40, 40]);
    for text in MERGEABLE {
        let expected = whole(text, &table).unwrap();
        for cuts in &cut_sets {
            for merge in [Merge::InOrder, Merge::ReversedThroughBytes] {
                assert_eq!(
                    in_parts_merged(text, &table, cuts, merge).as_ref(),
                    Ok(&expected),
                    "{text} cut at {cuts:?}, {merge:?}"
                );
            }
        }
    }
}

/// A reader whose input is not in time order (storage's blocks, several storages) gives each
/// row its time, part and place: the groups come out as `execute` gives them over the rows
/// sorted by (time, part, place), which is how the Logs Query API's rows path hands them over.
#[test]
fn groups_come_in_the_order_of_their_first_rows_by_time_part_and_place() {
    let table = events();
    let n = table.rows.len();
    // Two storages (parts 0 and 1) each holding rows out of time order.
    let place = |i: usize| -> RowAt {
        let Value::DateTime(t) = table.rows[i][0] else {
            panic!("a time")
        };
        RowAt {
            // Times that repeat and go backwards.
            time_ms: t / 1_000_000 * 1_000_000 - (i as i64 % 5) * 1_000_000,
            part: u32::from(i.is_multiple_of(3)),
            seq: ((i * 37) % n) as u64,
        }
    };
    let mut sorted: Vec<usize> = (0..n).collect();
    sorted.sort_by_key(|&i| place(i));
    for text in MERGEABLE {
        let query = parse(text).unwrap();
        let plan = query
            .summarize_plan("Events", &table.columns)
            .unwrap()
            .unwrap();
        let filter = query.row_filter("Events", &table.columns).unwrap();
        let mut by_time = table.clone();
        by_time.rows = sorted.iter().map(|&i| table.rows[i].clone()).collect();
        let expected = whole(text, &by_time).unwrap();
        // Parts of 7 rows in input order, merged last first (not through bytes: the decoder
        // sets one part for a whole part's groups, and these rows' parts differ within one).
        let mut merged = plan.groups();
        for chunk in (0..n).collect::<Vec<_>>().chunks(7).rev() {
            let mut groups = plan.groups();
            for &i in chunk {
                let row = &table.rows[i];
                if filter.as_ref().is_none_or(|f| f.keeps(row, NOW_MS)) {
                    plan.add(&mut groups, row, NOW_MS, place(i));
                }
            }
            plan.merge(&mut merged, groups);
        }
        assert_eq!(plan.finish(merged, NOW_MS).unwrap(), expected, "{text}");
    }
}

#[test]
fn bytes_that_are_not_the_plans_groups_are_refused() {
    let table = events();
    let plan_of = |text: &str| {
        parse(text)
            .unwrap()
            .summarize_plan("Events", &table.columns)
            .unwrap()
            .unwrap()
    };
    let plan = plan_of("Events | summarize count(), dcount(Level), min(Computer) by Computer");
    let mut groups = plan.groups();
    for (i, row) in table.rows.iter().enumerate() {
        plan.add(&mut groups, row, NOW_MS, at(i));
    }
    let bytes = plan.encode(&groups);
    assert_eq!(plan.decode(&bytes, 3).unwrap().len(), groups.len());
    let refused = |bytes: &[u8]| plan.decode(bytes, 0).unwrap_err().to_string();
    // Every cut is refused, none panics.
    for cut in 0..bytes.len() {
        assert!(refused(&bytes[..cut]).starts_with("malformed summarize groups"));
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        refused(&longer),
        "malformed summarize groups: 1 bytes left over"
    );
    // Another query's groups: other aggregates, or another number of keys.
    let other = plan_of("Events | summarize sum(Level), count(), min(Computer) by Computer");
    let mut their = other.groups();
    other.add(&mut their, &table.rows[0], NOW_MS, at(0));
    assert!(refused(&other.encode(&their)).contains("another kind"));
    let keyless = plan_of("Events | summarize count(), dcount(Level), min(Computer)");
    assert!(keyless.decode(&bytes, 0).is_err());
    // A group twice: the count says two, the same group's bytes follow twice.
    let one = plan_of("Events | summarize count() by Computer");
    let mut g = one.groups();
    one.add(&mut g, &table.rows[0], NOW_MS, at(0));
    let single = one.encode(&g);
    let body = &single[16..];
    let mut twice = single[..12].to_vec();
    twice.extend_from_slice(&2u32.to_le_bytes());
    twice.extend_from_slice(body);
    twice.extend_from_slice(body);
    assert_eq!(
        one.decode(&twice, 0).unwrap_err().to_string(),
        "malformed summarize groups: a group key twice"
    );
    // A length past the end is refused before anything is allocated for it.
    let mut huge = single[..12].to_vec();
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(one
        .decode(&huge, 0)
        .unwrap_err()
        .to_string()
        .contains("length"));
}

#[test]
fn a_sum_out_of_range_only_at_the_end_is_null_and_back_in_range_is_exact() {
    let table = events();
    // The running sum leaves i64's range after the first huge value and comes back: exact.
    let text = "Events | summarize sum(Level)";
    let expected = whole(text, &table).unwrap();
    assert!(matches!(expected.rows[0][0], Value::Long(_)));
    assert_eq!(in_parts(text, &table, &[5, 33]).unwrap(), expected);
    // Only the first half: the sum ends out of range, so it is null however it is cut.
    let mut first_half = table.clone();
    first_half.rows.truncate(30);
    let expected = whole(text, &first_half).unwrap();
    assert_eq!(expected.rows[0][0], Value::Null);
    assert_eq!(in_parts(text, &first_half, &[14]).unwrap(), expected);
}

#[test]
fn only_exactly_mergeable_summarizes_get_a_plan() {
    let table = events();
    let plan = |text: &str| {
        parse(text)
            .unwrap()
            .summarize_plan("Events", &table.columns)
            .map(|p| p.is_some())
    };
    for text in MERGEABLE {
        assert_eq!(plan(text), Ok(true), "{text}");
    }
    for text in [
        // Float sums depend on their order; these keep values or rows in input order.
        "Events | summarize sum(Latency)",
        "Events | summarize avg(Latency) by Computer",
        "Events | summarize max(Latency)",
        "Events | summarize percentile(Level, 50)",
        "Events | summarize make_set(Computer), count()",
        "Events | summarize make_list(Level)",
        "Events | summarize arg_max(Level, Computer)",
        // Not a leading summarize of this one table.
        "Events | extend x = 1 | summarize count()",
        "Events | where Level > 1 | take 5 | summarize count()",
        "Events | count",
        "Events | where Level > 1",
        "Other | summarize count()",
        "union Events, Other | summarize count()",
        "Events | summarize count() | union Other",
    ] {
        assert_eq!(plan(text), Ok(false), "{text}");
    }
    // A summarize that does not bind is the error execute gives.
    let err = plan("Events | summarize sum(Nope)").unwrap_err();
    assert_eq!(
        err.to_string(),
        whole("Events | summarize sum(Nope)", &table).unwrap_err()
    );
}

/// The query in parts as a reader with [`cmksim_kql::SummarizePlan::counted_keys`] runs it:
/// each part's kept rows counted per distinct key (computed from the cells as each
/// [`KeyPart`] says), the keys added with their counts in the order of their first row.
fn counted_in_parts(text: &str, table: &Table, cuts: &[usize]) -> Table {
    let query = parse(text).unwrap();
    let plan = query
        .summarize_plan("Events", &table.columns)
        .unwrap()
        .unwrap();
    let parts = plan.counted_keys().expect("counted keys");
    let filter = query.row_filter("Events", &table.columns).unwrap();
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(table.rows.len());
    let mut merged = plan.groups();
    for part in bounds.windows(2) {
        // Keys in order of first appearance, with their counts and first rows (a linear
        // search: few keys).
        let mut counts: Vec<(Vec<Value>, u64, usize)> = Vec::new();
        for (i, row) in table.rows.iter().enumerate().take(part[1]).skip(part[0]) {
            if !filter.as_ref().is_none_or(|f| f.keeps(row, NOW_MS)) {
                continue;
            }
            let key: Vec<Value> = parts
                .iter()
                .map(|p| match *p {
                    KeyPart::Cell(at) => row[at].clone(),
                    KeyPart::DateTimeBin { cell, step_ms } => match row[cell] {
                        Value::DateTime(t) => {
                            bin_datetime(t, step_ms).map_or(Value::Null, Value::DateTime)
                        }
                        ref other => panic!("a datetime cell, found {other:?}"),
                    },
                })
                .collect();
            match counts.iter_mut().find(|(k, _, _)| *k == key) {
                Some((_, n, _)) => *n += 1,
                None => counts.push((key, 1, i)),
            }
        }
        let mut groups = plan.groups();
        for (key, n, first) in counts {
            plan.add_counts(&mut groups, key, n, at(first));
        }
        plan.merge(&mut merged, groups);
    }
    plan.finish(merged, NOW_MS).unwrap()
}

#[test]
fn counting_per_key_answers_as_adding_rows() {
    let table = events();
    let n = table.rows.len();
    let counted = [
        "Events | summarize count()",
        "Events | where Level > 100 | summarize count() by Computer",
        "Events | where Computer contains 'b' | summarize count() by Computer, bin(TimeGenerated, 5m)",
        "Events | summarize n = count(), count() by bin(TimeGenerated, 20m), Level",
        "Events | summarize count() by Level, Computer | order by count_ desc",
        "Events | where TimeGenerated > datetime(2020-09-13T12:50:00Z) | summarize count() by TimeGenerated",
    ];
    for text in counted {
        let expected = whole(text, &table).unwrap();
        for cuts in [
            vec![],
            vec![1, 2, 3, n - 1],
            vec![17, 17, 40],
            (1..n).collect(),
        ] {
            assert_eq!(
                counted_in_parts(text, &table, &cuts),
                expected,
                "{text} cut at {cuts:?}"
            );
        }
    }
    let parts = |text: &str| {
        parse(text)
            .unwrap()
            .summarize_plan("Events", &table.columns)
            .unwrap()
            .unwrap()
            .counted_keys()
    };
    assert_eq!(
        parts("Events | summarize count() by Computer, bin(TimeGenerated, 5m)"),
        Some(vec![
            KeyPart::Cell(1),
            KeyPart::DateTimeBin {
                cell: 0,
                step_ms: 300_000
            }
        ])
    );
    assert_eq!(parts("Events | summarize count()"), Some(vec![]));
    for text in [
        "Events | summarize count(), sum(Level) by Computer",
        "Events | summarize countif(Level > 1) by Computer",
        "Events | summarize dcount(Level)",
        "Events | summarize count() by tolower(Computer)",
        "Events | summarize count() by bin(Level, 2)",
        "Events | summarize count() by bin(TimeGenerated, 0s)",
        "Events | summarize count() by bin(TimeGenerated, -5m)",
        "Events | summarize count() by bin(Took, 1s)",
    ] {
        assert_eq!(parts(text), None, "{text}");
    }
}
