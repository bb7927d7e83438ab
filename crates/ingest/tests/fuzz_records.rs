//! Seeded fuzzing of the ingest record validation the front end applies (`check_declaration`
//! for a custom table's declared columns, then `validate_records` for the batch).
//!
//! Feeds: random records, with column names of random bytes (any Unicode) and lengths up to
//! 2,000, random value kinds (non-finite reals, extreme datetimes and longs included), dynamic
//! values that are JSON nested up to 200 levels or broken JSON, and now and then a string of
//! over a mebibyte; against a custom schema that declares some of the records' own columns (so
//! values reach the type checks) and against a standard table. Asserts: no panic; a refusal is
//! an `IngestError` whose message is not empty; an acceptance returns one record per input.
//!
//! The seed is fixed, so a failure reproduces. The default iteration count keeps the test at
//! about two seconds in the debug profile; a long run:
//! `CMKSIM_FUZZ_ITERATIONS=200000 cargo test -p cmksim-ingest --test fuzz_records`.
//!
//! Why not cargo-fuzz: it needs a nightly toolchain, and this project builds and tests on stable
//! only. This is the stable substitute: deterministic, bounded, and part of `cargo test`.

use std::collections::BTreeMap;

use cmksim_ingest::record::{ColumnType, RawRecord, Value};
use cmksim_ingest::schema::{check_declaration, standard_table, TableKind, TableSchema};
use cmksim_ingest::validate::{validate_records, IngestLimits};
use cmksim_sim::SimTime;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The fixed seed of every run.
const SEED: u64 = 0x1A6E_57ED;
/// Batches per run unless `CMKSIM_FUZZ_ITERATIONS` says otherwise.
const ITERATIONS_DEFAULT: u64 = 2_000;
/// The longest column name generated, in characters.
const NAME_CHARS_MAX: usize = 2_000;
/// The deepest dynamic value generated.
const DEPTH_MAX: usize = 200;
const NOW: SimTime = SimTime::DEFAULT_EPOCH;
const TYPES: [ColumnType; 6] = [
    ColumnType::String,
    ColumnType::Long,
    ColumnType::Real,
    ColumnType::Bool,
    ColumnType::DateTime,
    ColumnType::Dynamic,
];

fn iterations() -> u64 {
    std::env::var("CMKSIM_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ITERATIONS_DEFAULT)
}

fn random_name(rng: &mut ChaCha8Rng) -> String {
    let len = match rng.gen_range(0..4) {
        0 => rng.gen_range(0..=NAME_CHARS_MAX),
        _ => rng.gen_range(0..50),
    };
    (0..len)
        .map(|_| match rng.gen_range(0..4) {
            0 => rng.gen::<char>(),
            1 => rng.gen_range(0u8..0x80) as char,
            _ => rng.gen_range(b'a'..=b'z') as char,
        })
        .collect()
}

fn random_json(rng: &mut ChaCha8Rng, depth: usize) -> String {
    if depth == 0 {
        return match rng.gen_range(0..4) {
            0 => "null".into(),
            1 => rng.gen::<i64>().to_string(),
            2 => format!("{:?}", random_name(rng)),
            _ => "1e999".into(),
        };
    }
    let inner = random_json(rng, depth - 1);
    if rng.gen() {
        format!("[{inner}]")
    } else {
        format!("{{\"k\":{inner}}}")
    }
}

fn random_value(rng: &mut ChaCha8Rng) -> Value {
    match rng.gen_range(0..6) {
        0 => {
            let len = if rng.gen_ratio(1, 200) {
                rng.gen_range(1_000_000..1_200_000)
            } else {
                rng.gen_range(0..100)
            };
            Value::String("s".repeat(len))
        }
        1 => Value::Long(rng.gen()),
        2 => Value::Real(match rng.gen_range(0..4) {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => f64::from_bits(rng.gen()),
            _ => rng.gen(),
        }),
        3 => Value::Bool(rng.gen()),
        4 => Value::DateTime(SimTime(match rng.gen_range(0..3) {
            0 => rng.gen(),
            1 => i64::MAX,
            _ => NOW.0 + rng.gen_range(-10_000_000_000..10_000_000_000),
        })),
        _ => {
            let depth = rng.gen_range(0..=DEPTH_MAX);
            let mut text = random_json(rng, depth);
            if rng.gen_ratio(1, 4) && !text.is_empty() {
                let mut cut = rng.gen_range(0..text.len());
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
            }
            Value::Dynamic(text)
        }
    }
}

fn random_record(rng: &mut ChaCha8Rng) -> RawRecord {
    RawRecord {
        time_generated: match rng.gen_range(0..8) {
            0 => None,
            1 => Some(SimTime(rng.gen())),
            _ => Some(NOW),
        },
        columns: (0..rng.gen_range(0..8))
            .map(|_| {
                let name = if rng.gen_ratio(1, 20) {
                    "TimeGenerated".to_string()
                } else {
                    random_name(rng)
                };
                (name, random_value(rng))
            })
            .collect(),
    }
}

#[test]
fn random_records_never_panic_and_refusals_are_typed() {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let limits = IngestLimits::default();
    let perf = standard_table("Perf").expect("Perf is a standard table");
    for _ in 0..iterations() {
        let records: Vec<RawRecord> = (0..rng.gen_range(1..4))
            .map(|_| random_record(&mut rng))
            .collect();
        // The front end first checks a custom table's declaration, then validates against it.
        let mut declared: Vec<(String, String)> = Vec::new();
        for (name, value) in records.iter().flat_map(|r| r.columns.iter()) {
            if rng.gen_ratio(1, 4) {
                continue;
            }
            let ty = if rng.gen() {
                value.column_type()
            } else {
                TYPES[rng.gen_range(0..TYPES.len())]
            };
            declared.push((name.clone(), ty.name().to_string()));
        }
        if let Err(e) = check_declaration(None, "ws", "Fuzz_CL", &declared) {
            assert!(!e.to_string().is_empty());
        }
        // Validation itself, against a schema that knows the columns whatever their names.
        let schema = TableSchema {
            name: "Fuzz_CL".into(),
            kind: TableKind::Custom,
            columns: declared
                .iter()
                .filter_map(|(n, t)| Some((n.clone(), ColumnType::parse(t)?)))
                .collect::<BTreeMap<_, _>>(),
        };
        for schema in [&schema, &perf] {
            match validate_records(schema, records.clone(), NOW, &limits) {
                Ok(valid) => assert_eq!(valid.len(), records.len()),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }
}
