//! Conversions between the `ingest.v1` protobuf messages and the domain types.
//!
//! Wire input is untrusted: a record without `time_generated` becomes a [`RawRecord`] without a
//! time (validation refuses it with its index), a value without a kind is a conversion error
//! naming the record and column. Output conversions cannot fail.

use cmksim_proto::common::v1::SimTime as PbTime;
use cmksim_proto::ingest::v1 as pb;
use cmksim_sim::SimTime;

use crate::outcome::{KeyProtection, Outcomes, RecordOutcome};
use crate::query::{CmpOp, Filter, Order, QueryAnswer, Tier};
use crate::record::{RawRecord, Record, Value};
use crate::routing::Destination;

/// A malformed message (a required field or oneof is missing).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConvertError(pub String);

pub fn time_to_pb(t: SimTime) -> PbTime {
    PbTime {
        unix_ms: t.unix_ms(),
    }
}

pub fn value_to_pb(value: &Value) -> pb::Value {
    use pb::value::Kind;
    let kind = match value {
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Long(v) => Kind::LongValue(*v),
        Value::Real(v) => Kind::RealValue(*v),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::DateTime(t) => Kind::DatetimeValue(time_to_pb(*t)),
        Value::Dynamic(s) => Kind::DynamicJson(s.clone()),
    };
    pb::Value { kind: Some(kind) }
}

/// A wire value as the domain's, taken (its text moves); `what` names it in the error and is
/// only formatted when there is one.
pub fn value_from_pb(
    value: pb::Value,
    what: impl FnOnce() -> String,
) -> Result<Value, ConvertError> {
    use pb::value::Kind;
    Ok(match value.kind {
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::LongValue(v)) => Value::Long(v),
        Some(Kind::RealValue(v)) => Value::Real(v),
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::DatetimeValue(t)) => Value::DateTime(SimTime(t.unix_ms)),
        Some(Kind::DynamicJson(s)) => Value::Dynamic(s),
        None => return Err(ConvertError(format!("{}: the value has no type", what()))),
    })
}

pub fn record_to_pb(record: &Record) -> pb::Record {
    pb::Record {
        time_generated: Some(time_to_pb(record.time_generated)),
        columns: record
            .columns
            .iter()
            .map(|(name, value)| pb::Column {
                name: name.clone(),
                value: Some(value_to_pb(value)),
            })
            .collect(),
    }
}

/// A wire record as received, taken: names and values move (the ingest path converts each
/// record once and keeps nothing of the message).
pub fn raw_record_from_pb(record: pb::Record, index: usize) -> Result<RawRecord, ConvertError> {
    let columns = record
        .columns
        .into_iter()
        .map(|c| {
            let what = |name: &str| format!("record {index}: column {name:?}");
            let Some(value) = c.value else {
                return Err(ConvertError(format!(
                    "{}: the value is missing",
                    what(&c.name)
                )));
            };
            let value = value_from_pb(value, || what(&c.name))?;
            Ok((c.name, value))
        })
        .collect::<Result<_, ConvertError>>()?;
    Ok(RawRecord {
        time_generated: record.time_generated.map(|t| SimTime(t.unix_ms)),
        columns,
    })
}

/// A record read back from storage (its time is required).
pub fn record_from_pb(record: pb::Record) -> Result<Record, ConvertError> {
    let raw = raw_record_from_pb(record, 0)?;
    Ok(Record {
        time_generated: raw
            .time_generated
            .ok_or_else(|| ConvertError("a stored record has no TimeGenerated".into()))?,
        columns: raw.columns.into_iter().collect(),
    })
}

pub fn storage_to_pb(destination: &Destination) -> pb::Storage {
    match destination {
        Destination::Shared => pb::Storage {
            kind: pb::StorageKind::Shared as i32,
            cluster: String::new(),
        },
        Destination::Cluster(name) => pb::Storage {
            kind: pb::StorageKind::Cluster as i32,
            cluster: name.clone(),
        },
    }
}

pub fn key_to_pb(key: &KeyProtection) -> pb::KeyProtection {
    match key {
        KeyProtection::Mmk => pb::KeyProtection {
            kind: pb::KeyKind::Mmk as i32,
            kid: String::new(),
            version: String::new(),
        },
        KeyProtection::Cmk { kid, version } => pb::KeyProtection {
            kind: pb::KeyKind::Cmk as i32,
            kid: kid.clone(),
            version: version.clone(),
        },
    }
}

/// A batch's outcomes as the answer's runs (one message per run, not per record).
pub fn outcome_runs_to_pb(outcomes: &Outcomes) -> Vec<pb::OutcomeRun> {
    outcomes
        .runs()
        .iter()
        .map(|run| pb::OutcomeRun {
            outcome: Some(outcome_to_pb(&run.outcome)),
            count: run.count,
        })
        .collect()
}

pub fn outcome_to_pb(outcome: &RecordOutcome) -> pb::RecordOutcome {
    use pb::record_outcome::Outcome;
    let outcome = match outcome {
        RecordOutcome::Stored { destination, key } => Outcome::Stored(pb::Stored {
            storage: Some(storage_to_pb(destination)),
            key: Some(key_to_pb(key)),
        }),
        RecordOutcome::Buffered { destination } => Outcome::Buffered(pb::Buffered {
            storage: Some(storage_to_pb(destination)),
        }),
        RecordOutcome::Dropped {
            destination,
            reason,
            detail,
        } => Outcome::Dropped(pb::Dropped {
            storage: destination.as_ref().map(storage_to_pb),
            reason: *reason as i32,
            reason_label: reason.label().to_string(),
            detail: detail.clone(),
        }),
    };
    pb::RecordOutcome {
        outcome: Some(outcome),
    }
}

pub fn filter_from_pb(filter: &pb::Filter, index: usize) -> Result<Filter, ConvertError> {
    use pb::filter::Op;
    let column = filter.column.clone();
    match &filter.op {
        Some(Op::Equals(v)) => Ok(Filter::Equals {
            value: value_from_pb(v.clone(), || format!("filter {index}"))?,
            column,
        }),
        Some(Op::Contains(text)) => Ok(Filter::Contains {
            column,
            text: text.clone(),
        }),
        Some(Op::Compare(c)) => {
            let op = match pb::Comparison::try_from(c.op) {
                Ok(pb::Comparison::Lt) => CmpOp::Lt,
                Ok(pb::Comparison::Le) => CmpOp::Le,
                Ok(pb::Comparison::Gt) => CmpOp::Gt,
                Ok(pb::Comparison::Ge) => CmpOp::Ge,
                _ => {
                    return Err(ConvertError(format!(
                        "filter {index}: comparison operator {} is not one of <, <=, >, >=",
                        c.op
                    )))
                }
            };
            Ok(Filter::Compare {
                column,
                op,
                value: c.value,
            })
        }
        None => Err(ConvertError(format!("filter {index}: no operator"))),
    }
}

pub fn order_from_pb(order: i32) -> Result<Order, ConvertError> {
    match pb::Order::try_from(order) {
        Ok(pb::Order::Asc) => Ok(Order::Asc),
        Ok(pb::Order::Desc) => Ok(Order::Desc),
        Err(_) => Err(ConvertError(format!(
            "order {order} is neither ASC nor DESC"
        ))),
    }
}

pub fn tier_to_pb(tier: Tier) -> pb::Tier {
    match tier {
        Tier::Hot => pb::Tier::Hot,
        Tier::Cold => pb::Tier::Cold,
    }
}

pub fn answer_to_pb(answer: &QueryAnswer) -> pb::QueryResponse {
    pb::QueryResponse {
        rows: answer
            .rows
            .iter()
            .map(|row| pb::Row {
                record: Some(record_to_pb(&row.record)),
                storage: Some(storage_to_pb(&row.destination)),
                tier: tier_to_pb(row.tier) as i32,
            })
            .collect(),
        count: answer.count,
        served_by: answer
            .served_by
            .iter()
            .map(|((destination, tier), n)| pb::ServedBy {
                storage: Some(storage_to_pb(destination)),
                tier: tier_to_pb(*tier) as i32,
                rows_matched: *n,
            })
            .collect(),
        truncated: answer.truncated,
    }
}

/// A KQL result table in the Logs Query API's encoding (see `ingest.v1.KqlTable`).
pub fn kql_table_to_pb(table: &cmksim_kql::Table) -> pb::KqlTable {
    // The crate's encoding of a cell, but for dynamic values, which the real service sends as
    // JSON text inside a string (clients parse it themselves).
    let cell = |value: &cmksim_kql::Value| -> serde_json::Value {
        match value {
            cmksim_kql::Value::Dynamic(d) => serde_json::Value::String(d.to_string()),
            other => other.to_json(),
        }
    };
    let rows: Vec<serde_json::Value> = table
        .rows
        .iter()
        .map(|row| serde_json::Value::Array(row.iter().map(cell).collect()))
        .collect();
    pb::KqlTable {
        name: table.name.clone(),
        columns: table
            .columns
            .iter()
            .map(|c| pb::KqlColumn {
                name: c.name.clone(),
                r#type: c.column_type.name().to_string(),
            })
            .collect(),
        rows_json: serde_json::Value::Array(rows).to_string(),
    }
}
