//! Log records and their compact encoding inside a block.
//!
//! A [`Record`] is one row of a Log Analytics table: its `TimeGenerated` (milliseconds since the
//! Unix epoch), its table, and typed columns in a `BTreeMap` (so the encoding, and anything printed
//! from it, has one order). Inside a block the records are a JSON array of
//! `{"t": <time_generated_ms>, "c": {<column>: <value>}}` where a value is one of
//! `{"s": "text"}`, `{"l": 42}`, `{"r": 1.5}`, `{"b": true}`, `{"d": <ms since epoch>}`,
//! `{"j": <any JSON>}` (a dynamic value). The table is
//! not repeated per record: it is in the block header and restored on decode.
//!
//! Why JSON and not protobuf: records are schemaless maps, which prost would encode as a map of
//! oneofs at about the same size; serde_json needs no schema, is readable when debugging a
//! decrypted block, and its cost is measured beside the sealing in `cmksim bench storage`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::DataError;

/// A typed column value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    #[serde(rename = "s")]
    String(String),
    #[serde(rename = "l")]
    Long(i64),
    /// Must be finite (JSON has no NaN or infinity).
    #[serde(rename = "r")]
    Real(f64),
    #[serde(rename = "b")]
    Bool(bool),
    /// Milliseconds since the Unix epoch.
    #[serde(rename = "d")]
    DateTime(i64),
    /// A `dynamic` column's JSON document, kept as a nested value (`{"j": <json>}`).
    #[serde(rename = "j")]
    Dynamic(serde_json::Value),
}

/// One log record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub time_generated_ms: i64,
    pub table: String,
    pub columns: BTreeMap<String, Value>,
}

impl Record {
    /// A record with no columns yet.
    pub fn new(table: &str, time_generated_ms: i64) -> Record {
        Record {
            time_generated_ms,
            table: table.to_string(),
            columns: BTreeMap::new(),
        }
    }

    /// Adds a column (builder style).
    pub fn with(mut self, column: &str, value: Value) -> Record {
        self.columns.insert(column.to_string(), value);
        self
    }
}

#[derive(Serialize)]
struct WireRef<'a> {
    t: i64,
    c: &'a BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct Wire {
    t: i64,
    c: BTreeMap<String, Value>,
}

/// Checks a record against the table it is appended to; `index` is its position in the batch.
pub(crate) fn validate(index: usize, record: &Record, table: &str) -> Result<(), DataError> {
    let invalid = |reason: String| DataError::InvalidRecord { index, reason };
    if record.table != table {
        return Err(invalid(format!(
            "table {:?} differs from the batch's table {table:?}",
            record.table
        )));
    }
    for (name, value) in &record.columns {
        if name.is_empty() {
            return Err(invalid("a column name is empty".into()));
        }
        if let Value::Real(r) = value {
            if !r.is_finite() {
                return Err(invalid(format!("column {name:?} is not a finite real")));
            }
        }
    }
    Ok(())
}

/// The encoding of one record (an element of a block's JSON array).
pub(crate) fn encode_one(record: &Record) -> Result<Vec<u8>, DataError> {
    Ok(serde_json::to_vec(&WireRef {
        t: record.time_generated_ms,
        c: &record.columns,
    })?)
}

/// Joins encoded records into a block payload (a JSON array).
pub(crate) fn join(encoded: &[Vec<u8>]) -> Vec<u8> {
    let len: usize = encoded.iter().map(|e| e.len() + 1).sum::<usize>() + 2;
    let mut out = Vec::with_capacity(len);
    out.push(b'[');
    for (i, e) in encoded.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e);
    }
    out.push(b']');
    out
}

/// Decodes a block payload, restoring each record's table from the header.
pub(crate) fn decode(payload: &[u8], table: &str) -> Result<Vec<Record>, serde_json::Error> {
    let wire: Vec<Wire> = serde_json::from_slice(payload)?;
    Ok(wire
        .into_iter()
        .map(|w| Record {
            time_generated_ms: w.t,
            table: table.to_string(),
            columns: w.c,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_every_value_type() {
        let r = Record::new("Heartbeat", 1_000)
            .with("Computer", Value::String("vm1".into()))
            .with("Count", Value::Long(-3))
            .with("Cpu", Value::Real(0.25))
            .with("Ok", Value::Bool(true))
            .with("Seen", Value::DateTime(999));
        let payload = join(&[encode_one(&r).unwrap(), encode_one(&r).unwrap()]);
        assert_eq!(
            decode(&payload, "Heartbeat").unwrap(),
            vec![r.clone(), r.clone()]
        );
        assert!(validate(0, &r, "Heartbeat").is_ok());
        assert!(validate(0, &r, "Perf").is_err());
        let nan = Record::new("T", 0).with("x", Value::Real(f64::NAN));
        assert!(matches!(
            validate(4, &nan, "T"),
            Err(DataError::InvalidRecord { index: 4, .. })
        ));
    }
}
