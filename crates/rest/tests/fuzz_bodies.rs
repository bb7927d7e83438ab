//! Seeded fuzzing of the pure functions behind the HTTPS door's request bodies and paths:
//! `Dcr::from_arm` (a data collection rule's ARM body), `ingestion::decode_body` and
//! `ingestion::parse_records` (a Logs Ingestion API call), `query::parse_timespan` and
//! `query::parse_duration_ms` (a Log Analytics query's timespan), and `keyvault::normalise_path`
//! and `keyvault::vault_of_host` (how a Key Vault request is routed).
//!
//! Feeds: a valid rule body with random JSON grafted over random nodes; valid record batches
//! mutated as text (byte flips, deletions, insertions of JSON-significant characters,
//! truncations) and random JSON; random bytes, gzip of random text and truncated gzip, with
//! and without `Content-Encoding: gzip`; mutated ISO 8601 durations and intervals; random paths
//! and hosts. Asserts: no panic; every `RestError` has a status in 400..=413 and a message of
//! at most [`MESSAGE_BYTES_MAX`] bytes (echoed input stays cut); a normalised path has no empty
//! segment.
//!
//! The seed is fixed, so a failure reproduces. The default iteration count keeps the test at
//! about two seconds in the debug profile; a long run:
//! `CMKSIM_FUZZ_ITERATIONS=200000 cargo test -p cmksim-rest --test fuzz_bodies`.
//!
//! Why not cargo-fuzz: it needs a nightly toolchain, and this project builds and tests on stable
//! only. This is the stable substitute: deterministic, bounded, and part of `cargo test`.

use std::io::Write;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue};
use cmksim_rest::keyvault::{normalise_path, vault_of_host};
use cmksim_rest::monitor::dcr::{Dcr, StreamColumn, StreamType};
use cmksim_rest::monitor::ingestion::{decode_body, parse_records};
use cmksim_rest::monitor::query::{parse_duration_ms, parse_timespan};
use cmksim_rest::RestError;
use cmksim_sim::SimTime;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// The fixed seed of every run.
const SEED: u64 = 0x00B0_D1E5;
/// Inputs per run unless `CMKSIM_FUZZ_ITERATIONS` says otherwise.
const ITERATIONS_DEFAULT: u64 = 6_000;
/// The longest message a refusal may carry.
const MESSAGE_BYTES_MAX: usize = 4 * 1024;
const NOW: SimTime = SimTime::DEFAULT_EPOCH;
const JSON_SIGNIFICANT: &[u8] = b"{}[]\":,.-eE0\\ ";

fn iterations() -> u64 {
    std::env::var("CMKSIM_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ITERATIONS_DEFAULT)
}

fn check(what: &str, error: &RestError) {
    assert!(
        (400..=413).contains(&error.status),
        "{what}: status {} ({})",
        error.status,
        error.message
    );
    assert!(
        error.message.len() <= MESSAGE_BYTES_MAX,
        "{what}: a message of {} bytes",
        error.message.len()
    );
}

fn rule() -> Value {
    let ws =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws";
    json!({
        "location": "eastus",
        "kind": "Direct",
        "properties": {
            "streamDeclarations": {"Custom-Drill": {"columns": [
                {"name": "TimeGenerated", "type": "datetime"},
                {"name": "Computer", "type": "string"},
                {"name": "Level", "type": "long"}]}},
            "destinations": {"logAnalytics": [{"name": "la", "workspaceResourceId": ws}]},
            "dataFlows": [{"streams": ["Custom-Drill"], "destinations": ["la"],
                           "outputStream": "Custom-Drill_CL", "transformKql": "source"}]
        }
    })
}

fn random_string(rng: &mut ChaCha8Rng, len_max: usize) -> String {
    let len = if rng.gen_ratio(1, 50) {
        rng.gen_range(0..100_000)
    } else {
        rng.gen_range(0..len_max)
    };
    (0..len)
        .map(|_| match rng.gen_range(0..5) {
            0 => rng.gen::<char>(),
            1 => JSON_SIGNIFICANT[rng.gen_range(0..JSON_SIGNIFICANT.len())] as char,
            _ => rng.gen_range(0x20u8..0x7f) as char,
        })
        .collect()
}

fn random_json(rng: &mut ChaCha8Rng, depth: usize) -> Value {
    match rng.gen_range(0..if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.gen::<bool>()),
        2 => json!(rng.gen::<i64>()),
        3 => json!(rng.gen::<f64>() * 1e300),
        4 => json!(random_string(rng, 40)),
        5 => Value::Array(
            (0..rng.gen_range(0..4))
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let keys = [
                "location",
                "properties",
                "streamDeclarations",
                "columns",
                "name",
                "type",
                "destinations",
                "logAnalytics",
                "dataFlows",
                "streams",
                "outputStream",
                "transformKql",
                "workspaceResourceId",
            ];
            Value::Object(
                (0..rng.gen_range(0..4))
                    .map(|_| {
                        let key = if rng.gen() {
                            keys[rng.gen_range(0..keys.len())].to_string()
                        } else {
                            random_string(rng, 12)
                        };
                        (key, random_json(rng, depth - 1))
                    })
                    .collect(),
            )
        }
    }
}

/// Replaces one node of `value`, chosen by a random walk, with random JSON.
fn graft(rng: &mut ChaCha8Rng, value: &mut Value) {
    let stop = rng.gen_ratio(1, 3);
    match value {
        Value::Object(map) if !stop && !map.is_empty() => {
            let i = rng.gen_range(0..map.len());
            let key = map
                .keys()
                .nth(i)
                .cloned()
                .expect("an index below the length");
            if rng.gen_ratio(1, 6) {
                map.remove(&key);
            } else if let Some(child) = map.get_mut(&key) {
                graft(rng, child);
            }
        }
        Value::Array(items) if !stop && !items.is_empty() => {
            let i = rng.gen_range(0..items.len());
            graft(rng, &mut items[i]);
        }
        _ => *value = random_json(rng, 3),
    }
}

fn mutate_text(rng: &mut ChaCha8Rng, text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let at = rng.gen_range(0..=bytes.len());
        match rng.gen_range(0..4) {
            0 if at < bytes.len() => bytes[at] ^= 1 << rng.gen_range(0..8),
            1 if at < bytes.len() => {
                let to = (at + rng.gen_range(1..16)).min(bytes.len());
                bytes.drain(at..to);
            }
            2 => bytes.truncate(at),
            _ => bytes.insert(
                at,
                JSON_SIGNIFICANT[rng.gen_range(0..JSON_SIGNIFICANT.len())],
            ),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn columns() -> Vec<StreamColumn> {
    [
        ("TimeGenerated", StreamType::Datetime),
        ("Computer", StreamType::String),
        ("Level", StreamType::Long),
        ("Count", StreamType::Int),
        ("Ratio", StreamType::Real),
        ("Ok", StreamType::Boolean),
        ("Props", StreamType::Dynamic),
    ]
    .into_iter()
    .map(|(name, column_type)| StreamColumn {
        name: name.into(),
        column_type,
    })
    .collect()
}

fn batch(rng: &mut ChaCha8Rng) -> String {
    let records: Vec<Value> = (0..rng.gen_range(0..4))
        .map(|_| {
            json!({
                "TimeGenerated": "2020-07-05T00:00:00Z",
                "Computer": "web1",
                "Level": rng.gen_range(-5i64..5),
                "Count": rng.gen_range(0..1000),
                "Ratio": rng.gen::<f64>(),
                "Ok": rng.gen::<bool>(),
                "Props": {"a": [1, 2, {"b": null}]},
            })
        })
        .collect();
    let mut value = Value::Array(records);
    if rng.gen_ratio(1, 3) {
        graft(rng, &mut value);
    }
    value.to_string()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("writing to a Vec");
    encoder.finish().expect("finishing into a Vec")
}

const DURATIONS: [&str; 8] = [
    "PT1H",
    "P1DT2H",
    "PT0.5S",
    "PT3600.0S",
    "P7D",
    "2020-07-05T00:00:00Z/2020-07-06T00:00:00Z",
    "2020-07-05T00:00:00Z/PT1H",
    "PT1H/2020-07-05T00:00:00Z",
];

#[test]
fn random_and_mutated_bodies_never_panic_and_refusals_are_client_errors() {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let columns = columns();
    let rule = rule();
    for _ in 0..iterations() {
        // A data collection rule.
        let mut body = rule.clone();
        for _ in 0..rng.gen_range(1..=3) {
            graft(&mut rng, &mut body);
        }
        if let Err(e) = Dcr::from_arm("/x", "r", &body, "dcr-0".into()) {
            check("Dcr::from_arm", &e);
        }

        // A Logs Ingestion API body, as text and then on the wire.
        let mut text = batch(&mut rng);
        if rng.gen() {
            text = mutate_text(&mut rng, &text);
        } else if rng.gen_ratio(1, 10) {
            text = random_string(&mut rng, 200);
        }
        if let Err(e) = parse_records(&text, &columns, NOW) {
            check("parse_records", &e);
        }
        let mut headers = HeaderMap::new();
        let wire = match rng.gen_range(0..4) {
            0 => (0..rng.gen_range(0..300))
                .map(|_| rng.gen::<u8>())
                .collect(),
            1 => text.into_bytes(),
            2 => gzip(text.as_bytes()),
            _ => {
                let mut z = gzip(text.as_bytes());
                let cut = rng.gen_range(0..=z.len());
                z.truncate(cut);
                if !z.is_empty() && rng.gen() {
                    let i = rng.gen_range(0..z.len());
                    z[i] ^= 1 << rng.gen_range(0..8);
                }
                z
            }
        };
        if rng.gen_ratio(2, 3) {
            let encoding = ["gzip", "GZIP", "identity", "br", ""][rng.gen_range(0..5)];
            headers.insert("content-encoding", HeaderValue::from_static(encoding));
        }
        if let Err(e) = decode_body(&headers, &Bytes::from(wire)) {
            check("decode_body", &e);
        }

        // A query's timespan.
        let duration = DURATIONS[rng.gen_range(0..DURATIONS.len())];
        let span = mutate_text(&mut rng, duration);
        let _ = parse_duration_ms(&span);
        if let Err(message) = parse_timespan(&span, NOW) {
            assert!(message.len() <= MESSAGE_BYTES_MAX, "{}", message.len());
        }

        // A Key Vault request's path and host.
        let path = mutate_text(&mut rng, "/keys/k//unwrapkey/");
        if let Some(normal) = normalise_path(&path) {
            assert!(!normal.contains("//"), "{path:?} became {normal:?}");
        }
        let host = mutate_text(&mut rng, "contoso-vault.vault.azure.net:8443");
        let _ = vault_of_host(&host);
    }
}
