//! libFuzzer target: the HTTPS front door's pure request-body and path functions — a data
//! collection rule's ARM body (`Dcr::from_arm`), a Logs Ingestion body on the wire
//! (`decode_body`, gzip or not) and its records (`parse_records`), a query's ISO 8601 timespan
//! (`parse_timespan`, `parse_duration_ms`), and a Key Vault request's path and host
//! (`normalise_path`, `vault_of_host`).
//!
//! The first byte of the input chooses the function (and for `decode_body` the
//! Content-Encoding); the rest is its input. Checked, as in `crates/rest/tests/fuzz_bodies.rs`:
//! no panic; a refusal is a client error (400..=413) with a message of at most 4 KiB; a
//! normalised path has no empty segment.

#![no_main]

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue};
use cmksim_rest::keyvault::{normalise_path, vault_of_host};
use cmksim_rest::monitor::dcr::{Dcr, StreamColumn, StreamType};
use cmksim_rest::monitor::ingestion::{decode_body, parse_records};
use cmksim_rest::monitor::query::{parse_duration_ms, parse_timespan};
use cmksim_rest::RestError;
use cmksim_sim::SimTime;
use libfuzzer_sys::fuzz_target;

const NOW: SimTime = SimTime::DEFAULT_EPOCH;
/// The longest refusal message accepted: echoed input is clipped.
const MESSAGE_BYTES_MAX: usize = 4 * 1024;
const ENCODINGS: [&str; 5] = ["gzip", "GZIP", "identity", "br", ""];

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

/// A stream declaration with every column type the ingestion API knows.
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

fuzz_target!(|data: &[u8]| {
    let Some((&choice, input)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(input);
    match choice % 6 {
        0 => {
            let Ok(body) = serde_json::from_slice::<serde_json::Value>(input) else {
                return;
            };
            if let Err(e) = Dcr::from_arm("/x", "r", &body, "dcr-0".into()) {
                check("Dcr::from_arm", &e);
            }
        }
        1 => {
            if let Err(e) = parse_records(&text, &columns(), NOW) {
                check("parse_records", &e);
            }
        }
        2 => {
            let mut headers = HeaderMap::new();
            // The rest of the first byte: one of the encodings, or no Content-Encoding at all.
            let selector = usize::from(choice / 6) % (ENCODINGS.len() + 1);
            if let Some(encoding) = ENCODINGS.get(selector) {
                headers.insert("content-encoding", HeaderValue::from_static(encoding));
            }
            match decode_body(&headers, &Bytes::copy_from_slice(input)) {
                Ok(text) => {
                    if let Err(e) = parse_records(&text, &columns(), NOW) {
                        check("parse_records after decode_body", &e);
                    }
                }
                Err(e) => check("decode_body", &e),
            }
        }
        3 => {
            let _ = parse_duration_ms(&text);
            if let Err(message) = parse_timespan(&text, NOW) {
                assert!(message.len() <= MESSAGE_BYTES_MAX, "{}", message.len());
            }
        }
        4 => {
            if let Some(normal) = normalise_path(&text) {
                assert!(!normal.contains("//"), "{text:?} became {normal:?}");
            }
        }
        _ => {
            let _ = vault_of_host(&text);
        }
    }
});
