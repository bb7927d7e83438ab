//! Log records and their compact encoding inside a block.
//!
//! A [`Record`] is one row of a Log Analytics table: its `TimeGenerated` (milliseconds since the
//! Unix epoch), its table, and typed columns in a `BTreeMap` (so the encoding, and anything printed
//! from it, has one order). The table is not repeated per record: it is in the block header and
//! restored on decode. A block's payload has one of three formats; the block header's format
//! version says which ([`PayloadFormat`]):
//!
//! - **Columnar** (block format 3, what this code writes since issue 11's scan work): each
//!   column stored contiguously, strings dictionary-coded per block; see [`super::columnar`].
//! - **Binary** (block format 2, written before format 3, still read; its encoder is kept for
//!   tests that prove old blocks stay readable): records are encoded once, straight
//!   from the typed columns, with each column name written once per block. Layout, integers
//!   little-endian, `varint` = unsigned LEB128 (at most 10 bytes):
//!
//!   | part | encoding |
//!   |------|----------|
//!   | records | per record: `TimeGenerated` (i64, 8 bytes), column count (varint), then per column: name index (varint, into the dictionary), type tag (1 byte), value |
//!   | dictionary | name count (varint), then per name: length (varint) and UTF-8 |
//!   | trailer | dictionary offset (u32, 4 bytes) |
//!
//!   Values by tag: 1 string (varint length, UTF-8), 2 long (i64), 3 real (f64 bits),
//!   4 bool (1 byte, 0 or 1), 5 datetime (i64 ms), 6 dynamic (varint length, the JSON document).
//!   The dictionary sits after the records so that a block is written in one pass and one
//!   buffer. Why binary: the query scan decoded JSON at about 0.4 of the decryption floor (issue
//!   15); this format decodes without parsing text and is smaller (no column name per record).
//! - **JSON** (block format 1, written before issue 15, still read): a JSON array of
//!   `{"t": <time_generated_ms>, "c": {<column>: <value>}}` where a value is one of
//!   `{"s": "text"}`, `{"l": 42}`, `{"r": 1.5}`, `{"b": true}`, `{"d": <ms since epoch>}`,
//!   `{"j": <any JSON>}` (a dynamic value).

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

/// How a block's payload encodes its records (the block format version says which).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadFormat {
    /// Block format 1: a JSON array (read only; written before issue 15).
    Json,
    /// Block format 2: the binary encoding documented above (read only; written before
    /// issue 11's columnar payload).
    Binary,
    /// Block format 3: the columnar encoding of [`super::columnar`] (written now).
    Columnar,
}

pub(crate) const TAG_STRING: u8 = 1;
pub(crate) const TAG_LONG: u8 = 2;
pub(crate) const TAG_REAL: u8 = 3;
pub(crate) const TAG_BOOL: u8 = 4;
pub(crate) const TAG_DATETIME: u8 = 5;
pub(crate) const TAG_DYNAMIC: u8 = 6;
/// Bytes of the trailer (the dictionary offset).
const TRAILER_BYTES: usize = 4;

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Builds one block's binary payload (format 2), record by record, in one buffer: no longer
/// written (format 3 is), kept for the tests that prove format-2 blocks stay readable.
///
/// The dictionary holds the distinct column names of the block (a linear search: tables have
/// tens of columns, where a search in a short vector beats hashing). [`BlockEncoder::mark`] and
/// [`BlockEncoder::rollback`] take back the last record when it would overflow the block.
#[cfg(test)]
pub(crate) struct BlockEncoder<'a> {
    names: Vec<&'a str>,
    /// Encoded size of the dictionary's entries (without the count).
    names_bytes: usize,
    body: Vec<u8>,
    records: u32,
    min_time_ms: i64,
    max_time_ms: i64,
}

#[cfg(test)]
/// Where a [`BlockEncoder`] stood before a record (see [`BlockEncoder::rollback`]).
#[derive(Clone, Copy)]
pub(crate) struct Mark {
    names: usize,
    names_bytes: usize,
    body: usize,
    records: u32,
    min_time_ms: i64,
    max_time_ms: i64,
}

#[cfg(test)]
impl<'a> BlockEncoder<'a> {
    pub(crate) fn new() -> BlockEncoder<'a> {
        BlockEncoder {
            names: Vec::new(),
            names_bytes: 0,
            body: Vec::new(),
            records: 0,
            min_time_ms: i64::MAX,
            max_time_ms: i64::MIN,
        }
    }

    /// The payload's size if it were finished now, in bytes.
    pub(crate) fn encoded_len(&self) -> usize {
        self.body.len() + varint_len(self.names.len() as u64) + self.names_bytes + TRAILER_BYTES
    }

    pub(crate) fn mark(&self) -> Mark {
        Mark {
            names: self.names.len(),
            names_bytes: self.names_bytes,
            body: self.body.len(),
            records: self.records,
            min_time_ms: self.min_time_ms,
            max_time_ms: self.max_time_ms,
        }
    }

    /// Takes back everything pushed since `mark`.
    pub(crate) fn rollback(&mut self, mark: Mark) {
        self.names.truncate(mark.names);
        self.names_bytes = mark.names_bytes;
        self.body.truncate(mark.body);
        self.records = mark.records;
        self.min_time_ms = mark.min_time_ms;
        self.max_time_ms = mark.max_time_ms;
    }

    fn name_index(&mut self, name: &'a str) -> usize {
        match self.names.iter().position(|n| *n == name) {
            Some(i) => i,
            None => {
                self.names.push(name);
                self.names_bytes += varint_len(name.len() as u64) + name.len();
                self.names.len() - 1
            }
        }
    }

    /// Appends one record (validated by [`validate`]).
    pub(crate) fn push(&mut self, record: &'a Record) -> Result<(), DataError> {
        self.body
            .extend_from_slice(&record.time_generated_ms.to_le_bytes());
        put_varint(&mut self.body, record.columns.len() as u64);
        for (name, value) in &record.columns {
            let index = self.name_index(name);
            put_varint(&mut self.body, index as u64);
            match value {
                Value::String(s) => {
                    self.body.push(TAG_STRING);
                    put_varint(&mut self.body, s.len() as u64);
                    self.body.extend_from_slice(s.as_bytes());
                }
                Value::Long(v) => {
                    self.body.push(TAG_LONG);
                    self.body.extend_from_slice(&v.to_le_bytes());
                }
                Value::Real(v) => {
                    self.body.push(TAG_REAL);
                    self.body.extend_from_slice(&v.to_bits().to_le_bytes());
                }
                Value::Bool(v) => {
                    self.body.push(TAG_BOOL);
                    self.body.push(u8::from(*v));
                }
                Value::DateTime(v) => {
                    self.body.push(TAG_DATETIME);
                    self.body.extend_from_slice(&v.to_le_bytes());
                }
                Value::Dynamic(v) => {
                    self.body.push(TAG_DYNAMIC);
                    let json = serde_json::to_vec(v)?;
                    put_varint(&mut self.body, json.len() as u64);
                    self.body.extend_from_slice(&json);
                }
            }
        }
        self.records += 1;
        self.min_time_ms = self.min_time_ms.min(record.time_generated_ms);
        self.max_time_ms = self.max_time_ms.max(record.time_generated_ms);
        Ok(())
    }

    /// The finished payload, its record count and time range (`(i64::MAX, i64::MIN)` if empty).
    pub(crate) fn finish(mut self) -> (Vec<u8>, u32, i64, i64) {
        let offset = u32::try_from(self.body.len()).expect("blocks are far below 4 GiB");
        self.body.reserve(self.encoded_len() - self.body.len());
        put_varint(&mut self.body, self.names.len() as u64);
        for name in &self.names {
            put_varint(&mut self.body, name.len() as u64);
            self.body.extend_from_slice(name.as_bytes());
        }
        self.body.extend_from_slice(&offset.to_le_bytes());
        (self.body, self.records, self.min_time_ms, self.max_time_ms)
    }
}

#[cfg(test)]
/// Encodes records into one binary payload (no size limit: the caller split them already).
pub(crate) fn encode_block(records: &[Record]) -> Result<Vec<u8>, DataError> {
    let mut encoder = BlockEncoder::new();
    for r in records {
        encoder.push(r)?;
    }
    Ok(encoder.finish().0)
}

/// Decodes a block payload of `format`, restoring each record's table from the header.
pub(crate) fn decode(
    payload: &[u8],
    format: PayloadFormat,
    table: &str,
) -> Result<Vec<Record>, String> {
    match format {
        PayloadFormat::Json => decode_json(payload, table).map_err(|e| e.to_string()),
        PayloadFormat::Binary => decode_binary(payload, table),
        PayloadFormat::Columnar => super::columnar::Columns::parse(payload)?.records(table),
    }
}

fn decode_json(payload: &[u8], table: &str) -> Result<Vec<Record>, serde_json::Error> {
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

/// A cursor over a binary payload; every read is bounds-checked (a payload is authenticated
/// before it is decoded, but a decoder must not trust it with a panic either).
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pub(crate) at: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, at: 0 }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or("payload truncated")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    pub(crate) fn varint(&mut self) -> Result<u64, String> {
        // Most varints (name indexes, short lengths) are one byte.
        if let Some(&b) = self.bytes.get(self.at) {
            if b < 0x80 {
                self.at += 1;
                return Ok(u64::from(b));
            }
        }
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("payload: varint longer than 10 bytes".into())
    }

    pub(crate) fn len(&mut self) -> Result<usize, String> {
        usize::try_from(self.varint()?).map_err(|_| "payload: length overflows".into())
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, String> {
        let n = self.len()?;
        utf8(self.take(n)?)
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| "payload: string is not UTF-8".into())
}

/// A binary payload's dictionary of column names, and where the records end (its offset).
fn dictionary(payload: &[u8]) -> Result<(Vec<&str>, usize), String> {
    let body_end = payload
        .len()
        .checked_sub(TRAILER_BYTES)
        .ok_or("binary payload shorter than its trailer")?;
    let offset = u32::from_le_bytes(payload[body_end..].try_into().expect("4 bytes")) as usize;
    if offset > body_end {
        return Err("binary payload: dictionary offset past the end".into());
    }
    let mut dict = Cursor {
        bytes: &payload[..body_end],
        at: offset,
    };
    let count = dict.len()?;
    // Each name takes at least one byte: a count beyond the bytes left is corrupt.
    if count > body_end - offset {
        return Err("binary payload: dictionary count exceeds its bytes".into());
    }
    let names = (0..count)
        .map(|_| dict.str())
        .collect::<Result<Vec<_>, _>>()?;
    if dict.at != body_end {
        return Err("binary payload: bytes after the dictionary".into());
    }
    Ok((names, offset))
}

fn decode_binary(payload: &[u8], table: &str) -> Result<Vec<Record>, String> {
    let (names, offset) = dictionary(payload)?;
    let mut body = Cursor {
        bytes: &payload[..offset],
        at: 0,
    };
    let mut records = Vec::new();
    while body.at < offset {
        let time_generated_ms = body.i64()?;
        let columns = body.len()?;
        let mut map = BTreeMap::new();
        for _ in 0..columns {
            let name = *names
                .get(body.len()?)
                .ok_or("binary payload: column name index out of the dictionary")?;
            let value = match body.u8()? {
                TAG_STRING => Value::String(body.str()?.to_string()),
                TAG_LONG => Value::Long(body.i64()?),
                TAG_REAL => Value::Real(f64::from_bits(body.i64()? as u64)),
                TAG_BOOL => match body.u8()? {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    b => return Err(format!("binary payload: bool byte {b}")),
                },
                TAG_DATETIME => Value::DateTime(body.i64()?),
                TAG_DYNAMIC => {
                    let n = body.len()?;
                    Value::Dynamic(
                        serde_json::from_slice(body.take(n)?)
                            .map_err(|e| format!("binary payload: dynamic value: {e}"))?,
                    )
                }
                tag => return Err(format!("binary payload: unknown value tag {tag}")),
            };
            if map.insert(name.to_string(), value).is_some() {
                return Err(format!("binary payload: column {name:?} twice in a record"));
            }
        }
        records.push(Record {
            time_generated_ms,
            table: table.to_string(),
            columns: map,
        });
    }
    Ok(records)
}

/// Where a projected decode puts a record's values: `cells[i]` is the output cell of
/// dictionary name (or JSON column) `i`'s column, `time` the cell of `TimeGenerated`.
pub(crate) struct Projection<'a> {
    /// The wanted columns, in output order.
    pub columns: &'a [&'a str],
    /// The output position of `TimeGenerated` among `columns`, if it is wanted.
    pub time: Option<usize>,
}

/// A storage value as a KQL cell (moved, not copied): the one conversion a scan that feeds KQL
/// uses (the front end's is the same mapping over the wire form).
pub fn kql_cell(value: Value) -> cmksim_kql::Value {
    match value {
        Value::String(s) => cmksim_kql::Value::String(s),
        Value::Long(n) => cmksim_kql::Value::Long(n),
        Value::Real(x) => cmksim_kql::Value::Real(x),
        Value::Bool(b) => cmksim_kql::Value::Bool(b),
        Value::DateTime(ms) => cmksim_kql::Value::DateTime(ms),
        Value::Dynamic(json) => cmksim_kql::Value::Dynamic(json),
    }
}

/// Decodes a block payload straight into rows of the projection's columns (absent: null), each
/// handed to `visit` with its `TimeGenerated`; the values of other columns are skipped without
/// being built (a binary payload's strings are not copied, its dynamic documents not parsed).
/// The row `visit` gets is one buffer reused from record to record (its strings keep their
/// allocations): `visit` copies the rows it keeps, so a row it drops costs no allocation.
/// Returns how many records the payload held and the least and greatest `TimeGenerated`
/// (`i64::MAX`, `i64::MIN` for none), which the caller checks against the authenticated header.
pub(crate) fn decode_rows(
    payload: &[u8],
    format: PayloadFormat,
    table: &str,
    projection: &Projection<'_>,
    visit: &mut dyn FnMut(i64, &mut Vec<cmksim_kql::Value>),
) -> Result<(usize, i64, i64), String> {
    let width = projection.columns.len();
    let new_row = |time_ms: i64| {
        let mut row = vec![cmksim_kql::Value::Null; width];
        if let Some(at) = projection.time {
            row[at] = cmksim_kql::Value::DateTime(time_ms);
        }
        row
    };
    let (mut least, mut greatest) = (i64::MAX, i64::MIN);
    if format != PayloadFormat::Binary {
        let records = decode(payload, format, table)?;
        let count = records.len();
        for mut r in records {
            least = least.min(r.time_generated_ms);
            greatest = greatest.max(r.time_generated_ms);
            let mut row = new_row(r.time_generated_ms);
            for (at, name) in projection.columns.iter().enumerate() {
                if Some(at) != projection.time {
                    if let Some(v) = r.columns.remove(*name) {
                        row[at] = kql_cell(v);
                    }
                }
            }
            visit(r.time_generated_ms, &mut row);
        }
        return Ok((count, least, greatest));
    }
    let (names, offset) = dictionary(payload)?;
    // Each dictionary name's output position, once per block.
    let slots: Vec<Option<usize>> = names
        .iter()
        .map(|n| {
            projection
                .columns
                .iter()
                .position(|c| c == n)
                .filter(|at| Some(*at) != projection.time)
        })
        .collect();
    let mut body = Cursor {
        bytes: &payload[..offset],
        at: 0,
    };
    let mut count = 0usize;
    let mut row = new_row(0);
    // Which cells this record set (the others are reset to null after it is decoded).
    let mut set = vec![false; width];
    while body.at < offset {
        let time_generated_ms = body.i64()?;
        least = least.min(time_generated_ms);
        greatest = greatest.max(time_generated_ms);
        let columns = body.len()?;
        set.iter_mut().for_each(|s| *s = false);
        if let Some(at) = projection.time {
            row[at] = cmksim_kql::Value::DateTime(time_generated_ms);
            set[at] = true;
        }
        for _ in 0..columns {
            let slot = *slots
                .get(body.len()?)
                .ok_or("binary payload: column name index out of the dictionary")?;
            let tag = body.u8()?;
            let Some(at) = slot else {
                skip_value(&mut body, tag)?;
                continue;
            };
            if set[at] {
                return Err(format!(
                    "binary payload: column {:?} twice in a record",
                    projection.columns[at]
                ));
            }
            set[at] = true;
            let value = match tag {
                TAG_STRING => {
                    let n = body.len()?;
                    let bytes = body.take(n)?;
                    if let cmksim_kql::Value::String(buffer) = &mut row[at] {
                        // The same text as the last record's cell (a host or a category
                        // repeats): nothing to check or copy.
                        if buffer.as_bytes() != bytes {
                            buffer.clear();
                            buffer.push_str(utf8(bytes)?);
                        }
                        continue;
                    }
                    cmksim_kql::Value::String(utf8(bytes)?.to_string())
                }
                TAG_LONG => cmksim_kql::Value::Long(body.i64()?),
                TAG_REAL => cmksim_kql::Value::Real(f64::from_bits(body.i64()? as u64)),
                TAG_BOOL => cmksim_kql::Value::Bool(bool_byte(body.u8()?)?),
                TAG_DATETIME => cmksim_kql::Value::DateTime(body.i64()?),
                TAG_DYNAMIC => {
                    let n = body.len()?;
                    cmksim_kql::Value::Dynamic(
                        serde_json::from_slice(body.take(n)?)
                            .map_err(|e| format!("binary payload: dynamic value: {e}"))?,
                    )
                }
                tag => return Err(format!("binary payload: unknown value tag {tag}")),
            };
            row[at] = value;
        }
        for (cell, set) in row.iter_mut().zip(&set) {
            if !set {
                *cell = cmksim_kql::Value::Null;
            }
        }
        count += 1;
        visit(time_generated_ms, &mut row);
    }
    Ok((count, least, greatest))
}

fn bool_byte(b: u8) -> Result<bool, String> {
    match b {
        0 => Ok(false),
        1 => Ok(true),
        b => Err(format!("binary payload: bool byte {b}")),
    }
}

/// Steps over one value of `tag` (checking only what its length needs).
fn skip_value(body: &mut Cursor<'_>, tag: u8) -> Result<(), String> {
    match tag {
        TAG_STRING | TAG_DYNAMIC => {
            let n = body.len()?;
            body.take(n)?;
        }
        TAG_LONG | TAG_REAL | TAG_DATETIME => {
            body.take(8)?;
        }
        TAG_BOOL => {
            bool_byte(body.u8()?)?;
        }
        tag => return Err(format!("binary payload: unknown value tag {tag}")),
    }
    Ok(())
}

/// A block payload in the old JSON format (block format 1), as written before issue 15: tests
/// use it to prove old data directories stay readable.
#[cfg(test)]
pub(crate) fn encode_json_for_tests(records: &[Record]) -> Vec<u8> {
    #[derive(Serialize)]
    struct WireRef<'a> {
        t: i64,
        c: &'a BTreeMap<String, Value>,
    }
    let wire: Vec<WireRef<'_>> = records
        .iter()
        .map(|r| WireRef {
            t: r.time_generated_ms,
            c: &r.columns,
        })
        .collect();
    serde_json::to_vec(&wire).expect("records serialise")
}

/// A record of `table` with a column of every value type (tests of the payload encodings).
#[cfg(test)]
pub(crate) fn every_type_for_tests(table: &str, t: i64) -> Record {
    Record::new(table, t)
        .with("Computer", Value::String("vm1 ✓".into()))
        .with("Count", Value::Long(-3))
        .with("Cpu", Value::Real(0.25))
        .with("Ok", Value::Bool(true))
        .with("Seen", Value::DateTime(-999))
        .with(
            "Props",
            Value::Dynamic(serde_json::json!({"a": [1, null, {"b": "c"}]})),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_type(t: i64) -> Record {
        every_type_for_tests("Heartbeat", t)
    }

    #[test]
    fn binary_encoding_round_trips_every_value_type_and_writes_each_name_once() {
        let records = vec![
            every_type(1_000),
            every_type(-5),
            Record::new("Heartbeat", 7).with("Only", Value::Bool(false)),
            Record::new("Heartbeat", 8),
        ];
        let payload = encode_block(&records).unwrap();
        assert_eq!(
            decode(&payload, PayloadFormat::Binary, "Heartbeat").unwrap(),
            records
        );
        let names = payload
            .windows("Computer".len())
            .filter(|w| *w == b"Computer")
            .count();
        assert_eq!(names, 1, "a column name is written once per block");
        assert!(
            decode(&encode_block(&[]).unwrap(), PayloadFormat::Binary, "T")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn json_payloads_of_format_1_still_decode() {
        let records = vec![every_type(1_000), every_type(2_000)];
        let payload = encode_json_for_tests(&records);
        assert!(payload.starts_with(b"[{\"t\":1000"));
        assert_eq!(
            decode(&payload, PayloadFormat::Json, "Heartbeat").unwrap(),
            records
        );
    }

    #[test]
    fn a_corrupt_binary_payload_is_an_error_not_a_panic() {
        let payload = encode_block(&[every_type(1), every_type(2)]).unwrap();
        // Every truncation and every single-byte change either decodes to something or is an
        // error: the decoder never reads out of bounds.
        for n in 0..payload.len() {
            let _ = decode(&payload[..n], PayloadFormat::Binary, "T");
        }
        for i in 0..payload.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut bad = payload.clone();
                bad[i] ^= x;
                let _ = decode(&bad, PayloadFormat::Binary, "T");
            }
        }
        assert!(decode(&payload[..3], PayloadFormat::Binary, "T").is_err());
        let mut bad_tag = payload.clone();
        bad_tag[9 + 1] = 99; // first record: time (8), column count (1), name index (1), tag
        assert!(decode(&bad_tag, PayloadFormat::Binary, "T")
            .unwrap_err()
            .contains("unknown value tag 99"));
    }

    #[test]
    fn rollback_takes_back_the_last_record_and_its_new_names() {
        let a = Record::new("T", 1).with("x", Value::Long(1));
        let b = Record::new("T", 2).with("y", Value::Long(2));
        let mut encoder = BlockEncoder::new();
        encoder.push(&a).unwrap();
        let mark = encoder.mark();
        let len = encoder.encoded_len();
        encoder.push(&b).unwrap();
        encoder.rollback(mark);
        assert_eq!(encoder.encoded_len(), len);
        let (payload, records, min, max) = encoder.finish();
        assert_eq!((records, min, max), (1, 1, 1));
        assert_eq!(payload, encode_block(&[a]).unwrap());
    }

    #[test]
    fn validation_names_the_record() {
        let r = every_type(0);
        assert!(validate(0, &r, "Heartbeat").is_ok());
        assert!(validate(0, &r, "Perf").is_err());
        let nan = Record::new("T", 0).with("x", Value::Real(f64::NAN));
        assert!(matches!(
            validate(4, &nan, "T"),
            Err(DataError::InvalidRecord { index: 4, .. })
        ));
    }
}
