//! libFuzzer target: the ingest front end's record checks, `check_declaration` (a custom
//! table's declared columns) then `validate_records` (a batch against a custom schema and
//! against the standard `Perf` table).
//!
//! The input is read as structured data (`arbitrary`): records of columns with any names and
//! any values (non-finite reals, extreme datetimes, dynamic text that is nested or broken JSON),
//! each column declared or not, with its own type or another. Checked, as in
//! `crates/ingest/tests/fuzz_records.rs`: no panic; a refusal has a message; an acceptance
//! returns one record per input.

#![no_main]

use std::collections::BTreeMap;

use cmksim_ingest::record::{ColumnType, RawRecord, Value};
use cmksim_ingest::schema::{check_declaration, standard_table, TableKind, TableSchema};
use cmksim_ingest::validate::{validate_records, IngestLimits};
use cmksim_sim::SimTime;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const NOW: SimTime = SimTime::DEFAULT_EPOCH;
/// Records per batch and columns per record, at most (libFuzzer's input size bounds the rest).
const RECORDS_MAX: usize = 4;
const COLUMNS_MAX: usize = 8;
const TYPES: [ColumnType; 6] = [
    ColumnType::String,
    ColumnType::Long,
    ColumnType::Real,
    ColumnType::Bool,
    ColumnType::DateTime,
    ColumnType::Dynamic,
];

fn value(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => Value::String(u.arbitrary()?),
        1 => Value::Long(u.arbitrary()?),
        2 => Value::Real(f64::from_bits(u.arbitrary()?)),
        3 => Value::Bool(u.arbitrary()?),
        4 => Value::DateTime(SimTime(u.arbitrary()?)),
        _ => Value::Dynamic(u.arbitrary()?),
    })
}

fn record(u: &mut Unstructured<'_>) -> Result<RawRecord> {
    let time_generated = match u.int_in_range(0..=2u8)? {
        0 => None,
        1 => Some(SimTime(u.arbitrary()?)),
        _ => Some(NOW),
    };
    let mut columns = Vec::new();
    for _ in 0..u.int_in_range(0..=COLUMNS_MAX)? {
        let name: String = if u.ratio(1, 16)? {
            "TimeGenerated".into()
        } else {
            u.arbitrary()?
        };
        columns.push((name, value(u)?));
    }
    Ok(RawRecord {
        time_generated,
        columns,
    })
}

fn batch(u: &mut Unstructured<'_>) -> Result<(Vec<RawRecord>, Vec<(String, String)>)> {
    let mut records = Vec::new();
    for _ in 0..u.int_in_range(1..=RECORDS_MAX)? {
        records.push(record(u)?);
    }
    let mut declared = Vec::new();
    for (name, value) in records.iter().flat_map(|r| r.columns.iter()) {
        match u.int_in_range(0..=3u8)? {
            0 => continue,
            1 => declared.push((name.clone(), value.column_type().name().to_string())),
            2 => declared.push((name.clone(), (*u.choose(&TYPES)?).name().to_string())),
            _ => declared.push((name.clone(), u.arbitrary()?)),
        }
    }
    Ok((records, declared))
}

fuzz_target!(|data: &[u8]| {
    let Ok((records, declared)) = batch(&mut Unstructured::new(data)) else {
        return;
    };
    if let Err(e) = check_declaration(None, "ws", "Fuzz_CL", &declared) {
        assert!(!e.to_string().is_empty());
    }
    let schema = TableSchema {
        name: "Fuzz_CL".into(),
        kind: TableKind::Custom,
        columns: declared
            .iter()
            .filter_map(|(n, t)| Some((n.clone(), ColumnType::parse(t)?)))
            .collect::<BTreeMap<_, _>>(),
    };
    let perf = standard_table("Perf").expect("Perf is a standard table");
    for schema in [&schema, &perf] {
        match validate_records(schema, records.clone(), NOW, &IngestLimits::default()) {
            Ok(valid) => assert_eq!(valid.len(), records.len()),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
});
