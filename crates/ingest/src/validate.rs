//! Batch validation: a batch is accepted whole or refused whole.
//!
//! Checks run in a fixed order so the same bad batch always gives the same error: empty batch,
//! size, then each record in order (TimeGenerated present and not too far in the future, each
//! column known, unique, of the declared type, and well-formed). Table and workspace are resolved
//! by the caller before the records are looked at.
//!
//! **How "1 MiB" is measured.** The Logs Ingestion API limits one call to 1 MB; the simulator
//! measures the batch as that API would receive it: the compact JSON array of the records, each
//! an object with `TimeGenerated` (RFC 3339) and its columns (dynamic columns embedded as JSON),
//! uncompressed, in UTF-8 bytes; the limit is 1 MiB = 1,048,576 bytes. The measure does not
//! depend on the transport (protobuf sizes differ), so a batch refused over gRPC would be refused
//! by a REST facade too.

use std::collections::BTreeMap;
use std::time::Duration;

use cmksim_sim::SimTime;

use crate::error::IngestError;
use crate::record::{ColumnType, RawRecord, Record, Value};
use crate::schema::{TableSchema, TIME_GENERATED};

/// The Logs Ingestion API's limit on one call: 1 MiB of JSON body.
pub const BATCH_BYTES_MAX: usize = 1024 * 1024;
/// How far in the future a `TimeGenerated` may be (Azure's standard-column rule: not more than a
/// day ahead of the time the service received it; Azure silently substitutes the ingestion time,
/// the simulator refuses so that the error is visible).
pub const FUTURE_SKEW_MAX: Duration = Duration::from_secs(24 * 3600);

/// The bounds validation applies; every value is named with its unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestLimits {
    pub batch_bytes_max: usize,
    pub future_skew_max: Duration,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            batch_bytes_max: BATCH_BYTES_MAX,
            future_skew_max: FUTURE_SKEW_MAX,
        }
    }
}

/// The size of the batch as a compact JSON body (see the module doc).
pub fn batch_json_bytes(records: &[RawRecord]) -> usize {
    // "[" + records joined by "," + "]"
    let separators = records.len().saturating_sub(1);
    let mut time_text = TimeText::default();
    2 + separators
        + records
            .iter()
            .map(|r| record_json_bytes(r, &mut time_text))
            .sum::<usize>()
}

/// Counts the bytes written to it, and keeps none (sizes without building the text).
#[derive(Default)]
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Compact JSON length of `value` (serialising to a counter cannot fail; 0 if it ever did).
fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    let mut count = ByteCount::default();
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => 0,
    }
}

/// The bytes serde_json writes for each UTF-8 byte inside a JSON string: `"` and `\` as two,
/// the control characters as two (`\b \t \n \f \r`) or six (`\u00XX`), every other byte
/// as itself (compact output leaves non-ASCII as UTF-8).
const JSON_STRING_BYTE_LEN: [u8; 256] = {
    let mut table = [1u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = match b {
            0x08 | 0x09 | 0x0A | 0x0C | 0x0D => 2,
            _ => 6,
        };
        b += 1;
    }
    table[b'"' as usize] = 2;
    table[b'\\' as usize] = 2;
    table
};

/// The length of `s` as a JSON string, quotes included: what [`json_len`] of `s` gives, by a
/// table instead of writing it through serde_json (a string cell's measure was about 3% of the
/// end-to-end ingest CPU that way; a test holds the two equal).
fn json_str_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| usize::from(JSON_STRING_BYTE_LEN[usize::from(b)]))
        .sum::<usize>()
}

/// The JSON length of the last `TimeGenerated` measured: the records of a batch mostly share
/// theirs, and formatting RFC 3339 text per record was a good part of the measure's cost.
#[derive(Default)]
struct TimeText {
    last: Option<(SimTime, usize)>,
}

impl TimeText {
    fn json_len(&mut self, t: SimTime) -> usize {
        match self.last {
            Some((at, len)) if at == t => len,
            _ => {
                let len = json_len(&t.to_rfc3339());
                self.last = Some((t, len));
                len
            }
        }
    }
}

/// The compact JSON length of one value as the Logs Ingestion API would receive it
/// ([`Value::to_json`], without building it where the text is known).
fn value_json_bytes(value: &Value, time_text: &mut TimeText) -> usize {
    match value {
        Value::String(s) => json_str_len(s),
        Value::DateTime(t) => time_text.json_len(*t),
        Value::Long(v) => json_len(v),
        Value::Bool(b) => json_len(b),
        Value::Real(_) | Value::Dynamic(_) => json_len(&value.to_json()),
    }
}

/// One record's object: `{`, then each member as `"name":value` joined by `,`, then `}`.
/// Every occurrence of a name counts, `TimeGenerated` first (a column of that name too): the
/// body as sent, duplicates included, before validation refuses them.
fn record_json_bytes(record: &RawRecord, time_text: &mut TimeText) -> usize {
    let mut members = 0usize;
    let mut bytes = 0usize;
    if let Some(t) = record.time_generated {
        members += 1;
        bytes += json_len(TIME_GENERATED) + 1 + time_text.json_len(t);
    }
    for (name, value) in &record.columns {
        members += 1;
        bytes += json_str_len(name) + 1 + value_json_bytes(value, time_text);
    }
    2 + bytes + members.saturating_sub(1)
}

/// Checks the batch's size before anything else is looked at.
pub fn check_size(records: &[RawRecord], limits: &IngestLimits) -> Result<(), IngestError> {
    if records.is_empty() {
        return Err(IngestError::EmptyBatch);
    }
    let bytes = batch_json_bytes(records);
    if bytes > limits.batch_bytes_max {
        return Err(IngestError::BatchTooLarge {
            bytes,
            limit_bytes: limits.batch_bytes_max,
        });
    }
    Ok(())
}

/// Validates every record against `schema`; all or nothing. The records are taken: their
/// names and values move into the validated records (nothing is copied per column).
pub fn validate_records(
    schema: &TableSchema,
    records: Vec<RawRecord>,
    now: SimTime,
    limits: &IngestLimits,
) -> Result<Vec<Record>, IngestError> {
    check_size(&records, limits)?;
    validate_sized(schema, records, now, limits)
}

/// [`validate_records`] for a batch whose size [`check_size`] has already passed (the front
/// end measures it first, before it looks the table up).
pub(crate) fn validate_sized(
    schema: &TableSchema,
    records: Vec<RawRecord>,
    now: SimTime,
    limits: &IngestLimits,
) -> Result<Vec<Record>, IngestError> {
    let latest_allowed = now.add(limits.future_skew_max);
    let mut types = ColumnTypes::new(schema);
    records
        .into_iter()
        .enumerate()
        .map(|(index, raw)| validate_record(&mut types, index, raw, now, latest_allowed, limits))
        .collect()
}

/// The schema's column types as a batch looks them up. The records of a batch nearly always
/// carry the same columns in the same order, so the type found for a record's `k`-th column is
/// kept and the next record's `k`-th column, when it has the same name, takes it with one
/// comparison instead of a search of the schema (the search and its string comparisons were a
/// visible share of the front end's time per record).
struct ColumnTypes<'s> {
    schema: &'s TableSchema,
    /// By position in the last record: the schema's name and its type.
    by_position: Vec<(&'s str, ColumnType)>,
}

impl<'s> ColumnTypes<'s> {
    /// The lookup of `schema`'s types. It remembers at most as many positions as the schema
    /// has columns: a record wider than that has an unknown or a repeated column and is refused.
    fn new(schema: &'s TableSchema) -> ColumnTypes<'s> {
        ColumnTypes {
            schema,
            by_position: Vec::with_capacity(schema.columns.len()),
        }
    }

    /// The schema's type of `column`, the record's `position`-th column.
    fn get(&mut self, position: usize, column: &str) -> Option<ColumnType> {
        if let Some(&(name, kind)) = self.by_position.get(position) {
            if name == column {
                return Some(kind);
            }
        }
        let (name, &kind) = self.schema.columns.get_key_value(column)?;
        if position < self.by_position.len() {
            self.by_position[position] = (name, kind);
        } else if position == self.by_position.len() && position < self.schema.columns.len() {
            self.by_position.push((name, kind));
        }
        Some(kind)
    }
}

fn validate_record(
    types: &mut ColumnTypes<'_>,
    record_index: usize,
    raw: RawRecord,
    now: SimTime,
    latest_allowed: SimTime,
    limits: &IngestLimits,
) -> Result<Record, IngestError> {
    let time_generated = raw
        .time_generated
        .ok_or(IngestError::MissingTimeGenerated { record_index })?;
    if time_generated > latest_allowed {
        return Err(IngestError::TimeGeneratedInFuture {
            record_index,
            time: time_generated,
            now,
            future_skew_max_secs: limits.future_skew_max.as_secs(),
        });
    }
    let schema = types.schema;
    let mut columns = BTreeMap::new();
    for (position, (column, value)) in raw.columns.into_iter().enumerate() {
        if column == TIME_GENERATED {
            return Err(IngestError::DuplicateColumn {
                record_index,
                column,
            });
        }
        let Some(expected) = types.get(position, &column) else {
            return Err(IngestError::UnknownColumn {
                table: schema.name.clone(),
                record_index,
                column,
            });
        };
        if value.column_type() != expected {
            return Err(IngestError::WrongColumnType {
                table: schema.name.clone(),
                record_index,
                column,
                expected,
                got: value.column_type(),
            });
        }
        check_value(record_index, &column, &value, expected)?;
        match columns.entry(column) {
            std::collections::btree_map::Entry::Occupied(taken) => {
                return Err(IngestError::DuplicateColumn {
                    record_index,
                    column: taken.key().clone(),
                });
            }
            std::collections::btree_map::Entry::Vacant(free) => {
                free.insert(value);
            }
        }
    }
    Ok(Record {
        time_generated,
        columns,
    })
}

fn check_value(
    record_index: usize,
    column: &str,
    value: &Value,
    expected: ColumnType,
) -> Result<(), IngestError> {
    match (expected, value) {
        (ColumnType::Dynamic, Value::Dynamic(text)) => {
            let json = serde_json::from_str::<serde_json::Value>(text).map_err(|e| {
                IngestError::InvalidDynamic {
                    record_index,
                    column: column.to_string(),
                    reason: e.to_string(),
                }
            })?;
            // Checked here, before anything is stored: storage's wire carries the value as a
            // nested message, which has a bound of its own (cmksim_proto::dynamic).
            let depth = cmksim_proto::dynamic::json_depth(&json);
            if depth > DYNAMIC_DEPTH_MAX {
                return Err(IngestError::DynamicTooDeep {
                    record_index,
                    column: column.to_string(),
                    depth,
                    depth_max: DYNAMIC_DEPTH_MAX,
                });
            }
            Ok(())
        }
        (ColumnType::Real, Value::Real(v)) if !v.is_finite() => Err(IngestError::NonFiniteReal {
            record_index,
            column: column.to_string(),
        }),
        _ => Ok(()),
    }
}

use cmksim_proto::dynamic::DYNAMIC_DEPTH_MAX;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::standard_table;

    #[test]
    fn a_strings_json_length_is_the_length_serde_json_writes() {
        let mut texts: Vec<String> = (0u32..0x800)
            .chain([0xFFFD, 0x2028, 0x1F600])
            .filter_map(char::from_u32)
            .map(|c| format!("a{c}b"))
            .collect();
        texts.extend(
            [
                "",
                "plain",
                "quote \" and back\\slash",
                "\u{1}\u{1f}\t\n\r\u{8}\u{c}",
                "é€😀",
            ]
            .map(String::from),
        );
        for text in &texts {
            assert_eq!(json_str_len(text), json_len(text.as_str()), "{text:?}");
        }
    }

    const NOW: SimTime = SimTime::DEFAULT_EPOCH;

    fn perf(time: Option<SimTime>, cols: Vec<(&str, Value)>) -> RawRecord {
        RawRecord {
            time_generated: time,
            columns: cols.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }

    fn ok_perf() -> RawRecord {
        perf(
            Some(NOW),
            vec![
                ("Computer", Value::String("vm1".into())),
                ("CounterValue", Value::Real(12.5)),
            ],
        )
    }

    fn check(records: Vec<RawRecord>) -> Result<Vec<Record>, IngestError> {
        validate_records(
            &standard_table("Perf").unwrap(),
            records,
            NOW,
            &IngestLimits::default(),
        )
    }

    #[test]
    fn accepts_a_good_batch() {
        let out = check(vec![ok_perf(), ok_perf()]).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].columns["CounterValue"], Value::Real(12.5));
    }

    #[test]
    fn each_fault_has_its_own_error() {
        assert_eq!(check(vec![]).unwrap_err(), IngestError::EmptyBatch);
        let e = check(vec![ok_perf(), perf(None, vec![])]).unwrap_err();
        assert_eq!(e, IngestError::MissingTimeGenerated { record_index: 1 });
        let e = check(vec![perf(Some(NOW), vec![("Nope", Value::Long(1))])]).unwrap_err();
        assert!(matches!(e, IngestError::UnknownColumn { ref column, .. } if column == "Nope"));
        let e = check(vec![perf(
            Some(NOW),
            vec![("CounterValue", Value::Long(1))],
        )])
        .unwrap_err();
        assert!(matches!(
            e,
            IngestError::WrongColumnType {
                expected: ColumnType::Real,
                got: ColumnType::Long,
                ..
            }
        ));
        let e = check(vec![perf(
            Some(NOW),
            vec![
                ("Computer", Value::String("a".into())),
                ("Computer", Value::String("b".into())),
            ],
        )])
        .unwrap_err();
        assert!(matches!(e, IngestError::DuplicateColumn { .. }));
        let e = check(vec![perf(
            Some(NOW),
            vec![("CounterValue", Value::Real(f64::NAN))],
        )])
        .unwrap_err();
        assert!(matches!(e, IngestError::NonFiniteReal { .. }));
    }

    #[test]
    fn a_column_is_typed_by_its_name_whatever_the_last_record_held_at_its_position() {
        let text = |s: &str| Value::String(s.into());
        // The first record teaches positions 0 and 1; the next ones reorder, rename or
        // mistype them, and each is judged by the schema, not by the position.
        let reordered = perf(
            Some(NOW),
            vec![("CounterValue", Value::Real(1.0)), ("Computer", text("a"))],
        );
        let out = check(vec![ok_perf(), reordered, ok_perf()]).unwrap();
        assert_eq!(out[1].columns["CounterValue"], Value::Real(1.0));
        assert_eq!(out[1].columns["Computer"], text("a"));
        let mistyped = perf(
            Some(NOW),
            vec![("Computer", text("b")), ("CounterName", Value::Real(2.0))],
        );
        let e = check(vec![ok_perf(), mistyped]).unwrap_err();
        assert!(
            matches!(e, IngestError::WrongColumnType { record_index: 1, ref column, expected: ColumnType::String, got: ColumnType::Real, .. } if column == "CounterName"),
            "{e:?}"
        );
        let unknown = perf(
            Some(NOW),
            vec![("Computer", text("c")), ("Nope", Value::Real(2.0))],
        );
        let e = check(vec![ok_perf(), unknown]).unwrap_err();
        assert!(
            matches!(e, IngestError::UnknownColumn { record_index: 1, ref column, .. } if column == "Nope"),
            "{e:?}"
        );
        // Wider than the schema: the duplicate is refused, whatever was remembered.
        let mut wide = ok_perf();
        wide.columns.extend(ok_perf().columns);
        let e = check(vec![ok_perf(), wide]).unwrap_err();
        assert!(
            matches!(
                e,
                IngestError::DuplicateColumn {
                    record_index: 1,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn future_bound_is_inclusive_and_named() {
        let edge = NOW.add(FUTURE_SKEW_MAX);
        assert!(check(vec![perf(Some(edge), vec![])]).is_ok());
        let e = check(vec![perf(Some(SimTime(edge.0 + 1)), vec![])]).unwrap_err();
        assert!(e.to_string().contains("future_skew_max"), "{e}");
    }

    #[test]
    fn size_is_the_json_body_and_the_limit_is_one_mib() {
        let one = perf(
            Some(SimTime(0)),
            vec![("Computer", Value::String("x".into()))],
        );
        let expected = r#"[{"Computer":"x","TimeGenerated":"1970-01-01T00:00:00.000Z"}]"#.len();
        assert_eq!(batch_json_bytes(std::slice::from_ref(&one)), expected);
        // Fill up to exactly the limit: accepted; one byte more: refused.
        let overhead = batch_json_bytes(&[perf(
            Some(NOW),
            vec![("Computer", Value::String(String::new()))],
        )]);
        let exact = perf(
            Some(NOW),
            vec![(
                "Computer",
                Value::String("a".repeat(BATCH_BYTES_MAX - overhead)),
            )],
        );
        assert_eq!(
            batch_json_bytes(std::slice::from_ref(&exact)),
            BATCH_BYTES_MAX
        );
        assert!(check(vec![exact.clone()]).is_ok());
        let mut over = exact;
        over.columns[0].1 = Value::String("a".repeat(BATCH_BYTES_MAX - overhead + 1));
        assert!(matches!(
            check(vec![over]).unwrap_err(),
            IngestError::BatchTooLarge {
                bytes: 1_048_577,
                limit_bytes: 1_048_576
            }
        ));
    }

    /// The measure as first written: the JSON object built and printed, a replaced member (a
    /// duplicate name) added back as it was sent.
    fn reference_json_bytes(records: &[RawRecord]) -> usize {
        let one = |record: &RawRecord| {
            let mut object = serde_json::Map::new();
            if let Some(t) = record.time_generated {
                object.insert(
                    TIME_GENERATED.to_string(),
                    serde_json::Value::String(t.to_rfc3339()),
                );
            }
            let mut duplicates = 0usize;
            for (name, value) in &record.columns {
                if let Some(previous) = object.insert(name.clone(), value.to_json()) {
                    duplicates += serde_json::to_string(name).unwrap().len()
                        + serde_json::to_string(&previous).unwrap().len()
                        + 2;
                }
            }
            serde_json::to_string(&serde_json::Value::Object(object))
                .unwrap()
                .len()
                + duplicates
        };
        2 + records.len().saturating_sub(1) + records.iter().map(one).sum::<usize>()
    }

    #[test]
    fn size_is_measured_without_building_the_text_and_agrees_with_it() {
        let records = [
            perf(None, vec![]),
            perf(Some(NOW), vec![]),
            perf(
                Some(SimTime(-1)),
                vec![
                    (
                        "Computer",
                        Value::String("quote \" back \\ nl \n tab \t é \u{1}".into()),
                    ),
                    ("Computer", Value::String("again".into())),
                    ("TimeGenerated", Value::DateTime(SimTime(86_400_000 * 400))),
                    ("na\"me", Value::Long(i64::MIN)),
                    ("R", Value::Real(0.1)),
                    ("Inf", Value::Real(f64::INFINITY)),
                    ("B", Value::Bool(false)),
                    ("J", Value::Dynamic("{ \"a\" : [1, 2.50, null] }".into())),
                    ("Bad", Value::Dynamic("{not json".into())),
                ],
            ),
            perf(Some(NOW), vec![("Computer", Value::String(String::new()))]),
            perf(Some(NOW.add(Duration::from_millis(1))), vec![]),
        ];
        for n in 0..=records.len() {
            assert_eq!(
                batch_json_bytes(&records[..n]),
                reference_json_bytes(&records[..n]),
                "first {n} records"
            );
        }
    }

    #[test]
    fn dynamic_must_be_json() {
        let mut schema = standard_table("Perf").unwrap();
        schema.columns.insert("Props".into(), ColumnType::Dynamic);
        let good = perf(
            Some(NOW),
            vec![("Props", Value::Dynamic("{\"a\":1}".into()))],
        );
        let bad = perf(Some(NOW), vec![("Props", Value::Dynamic("{a:1".into()))]);
        let limits = IngestLimits::default();
        assert!(validate_records(&schema, vec![good], NOW, &limits).is_ok());
        assert!(matches!(
            validate_records(&schema, vec![bad], NOW, &limits).unwrap_err(),
            IngestError::InvalidDynamic { .. }
        ));
    }

    #[test]
    fn dynamic_nesting_is_bounded() {
        let mut schema = standard_table("Perf").unwrap();
        schema.columns.insert("Props".into(), ColumnType::Dynamic);
        let nested = |depth: usize| {
            let mut text = "[".repeat(depth - 1);
            text.push('1');
            text.push_str(&"]".repeat(depth - 1));
            perf(Some(NOW), vec![("Props", Value::Dynamic(text))])
        };
        let limits = IngestLimits::default();
        assert!(validate_records(&schema, vec![nested(DYNAMIC_DEPTH_MAX)], NOW, &limits).is_ok());
        // 127 deep: valid JSON (serde_json parses up to 128), refused by the bound as the
        // caller's error (400), never passed on to fail in storage.
        let error = validate_records(&schema, vec![nested(127)], NOW, &limits).unwrap_err();
        assert!(matches!(
            error,
            IngestError::DynamicTooDeep {
                depth: 127,
                depth_max: DYNAMIC_DEPTH_MAX,
                ..
            }
        ));
        assert_eq!(error.shape().http_status, 400);
        assert!(
            error.to_string().contains("nests 127 levels deep"),
            "{error}"
        );
    }
}
