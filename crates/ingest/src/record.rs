//! Log records as the front end sees them: a `TimeGenerated` and typed columns.
//!
//! Two shapes on purpose. [`RawRecord`] is what arrives on the wire: `TimeGenerated` may be
//! missing and a column may appear twice, because the caller is not trusted. [`Record`] is what
//! validation produces: `TimeGenerated` present, columns unique and in a `BTreeMap` so that every
//! rendering (JSON size, query output, events) is in one deterministic order.

use std::collections::BTreeMap;
use std::fmt;

use cmksim_sim::SimTime;
use serde::{Deserialize, Serialize};

/// The column types of Azure Monitor Logs that the simulator carries (`int` is folded into
/// `long`, `guid` into `string`: they differ only in range or formatting, not in behaviour here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    Long,
    Real,
    Bool,
    DateTime,
    /// A JSON document carried as its text.
    Dynamic,
}

impl ColumnType {
    /// The name Azure Monitor uses (`string`, `long`, `real`, `bool`, `datetime`, `dynamic`).
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Long => "long",
            ColumnType::Real => "real",
            ColumnType::Bool => "bool",
            ColumnType::DateTime => "datetime",
            ColumnType::Dynamic => "dynamic",
        }
    }

    /// Parses an Azure type name (`int` is accepted as `long`, `guid` as `string`).
    pub fn parse(name: &str) -> Option<ColumnType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "string" | "guid" => ColumnType::String,
            "long" | "int" => ColumnType::Long,
            "real" => ColumnType::Real,
            "bool" | "boolean" => ColumnType::Bool,
            "datetime" => ColumnType::DateTime,
            "dynamic" => ColumnType::Dynamic,
            _ => return None,
        })
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One typed column value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    String(String),
    Long(i64),
    Real(f64),
    Bool(bool),
    DateTime(SimTime),
    /// JSON text (validated to parse as JSON before it is accepted).
    Dynamic(String),
}

impl Value {
    /// The value as a KQL cell. A dynamic value was validated as JSON when it was ingested; a
    /// document that no longer parses reads as its text.
    pub fn to_kql(&self) -> cmksim_kql::Value {
        use cmksim_kql::Value as K;
        match self {
            Value::String(s) => K::String(s.clone()),
            Value::Long(n) => K::Long(*n),
            Value::Real(x) => K::Real(*x),
            Value::Bool(b) => K::Bool(*b),
            Value::DateTime(t) => K::DateTime(t.unix_ms()),
            Value::Dynamic(text) => serde_json::from_str(text)
                .map(K::Dynamic)
                .unwrap_or_else(|_| K::String(text.clone())),
        }
    }

    /// The type of this value.
    pub fn column_type(&self) -> ColumnType {
        match self {
            Value::String(_) => ColumnType::String,
            Value::Long(_) => ColumnType::Long,
            Value::Real(_) => ColumnType::Real,
            Value::Bool(_) => ColumnType::Bool,
            Value::DateTime(_) => ColumnType::DateTime,
            Value::Dynamic(_) => ColumnType::Dynamic,
        }
    }

    /// The value as a number, for numeric comparisons (datetimes as Unix milliseconds).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Long(v) => Some(*v as f64),
            Value::Real(v) => Some(*v),
            Value::DateTime(t) => Some(t.unix_ms() as f64),
            _ => None,
        }
    }

    /// The value as the Logs Ingestion API would receive it in its JSON body.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Long(v) => serde_json::Value::from(*v),
            Value::Real(v) => serde_json::Number::from_f64(*v)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::DateTime(t) => serde_json::Value::String(t.to_rfc3339()),
            // Embedded as a JSON value when it parses, as a string otherwise (size measurement
            // happens before validation, so invalid JSON must still be measurable).
            Value::Dynamic(text) => serde_json::from_str(text)
                .unwrap_or_else(|_| serde_json::Value::String(text.clone())),
        }
    }
}

/// A record as it arrives: not yet trusted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawRecord {
    pub time_generated: Option<SimTime>,
    pub columns: Vec<(String, Value)>,
}

/// A validated record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    #[serde(rename = "TimeGenerated")]
    pub time_generated: SimTime,
    pub columns: BTreeMap<String, Value>,
}

impl Record {
    /// The record as a KQL row of `columns` (in their order): `TimeGenerated` is the record's
    /// time, a column the record lacks is null. Every reader that hands rows to `cmksim_kql`
    /// (the front end's KQL, the in-memory backend's summarize) converts them here.
    pub fn kql_cells(&self, columns: &[cmksim_kql::Column]) -> Vec<cmksim_kql::Value> {
        columns
            .iter()
            .map(|c| {
                if c.name == crate::schema::TIME_GENERATED {
                    cmksim_kql::Value::DateTime(self.time_generated.unix_ms())
                } else {
                    self.columns
                        .get(&c.name)
                        .map(Value::to_kql)
                        .unwrap_or(cmksim_kql::Value::Null)
                }
            })
            .collect()
    }

    /// A record with no columns yet.
    pub fn new(time_generated: SimTime) -> Record {
        Record {
            time_generated,
            columns: BTreeMap::new(),
        }
    }

    /// Adds a column (builder style).
    pub fn with(mut self, name: &str, value: Value) -> Record {
        self.columns.insert(name.to_string(), value);
        self
    }

    /// A column by name; `TimeGenerated` is answered from the record's time.
    pub fn get(&self, column: &str) -> Option<Value> {
        if column == crate::schema::TIME_GENERATED {
            return Some(Value::DateTime(self.time_generated));
        }
        self.columns.get(column).cloned()
    }

    /// The record back in its wire shape.
    pub fn to_raw(&self) -> RawRecord {
        RawRecord {
            time_generated: Some(self.time_generated),
            columns: self
                .columns
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// Restores the schema's types on a record read back from storage as plain JSON: integers in
/// datetime columns become datetimes, integers in real columns reals, and any value in a dynamic
/// column its JSON text. Values already of the right type, and columns the schema does not know,
/// are left as they are.
pub fn conform(mut record: Record, schema: &crate::schema::TableSchema) -> Record {
    for (name, value) in record.columns.iter_mut() {
        let Some(expected) = schema.columns.get(name) else {
            continue;
        };
        let converted = match (*expected, &*value) {
            (ColumnType::DateTime, Value::Long(ms)) => Some(Value::DateTime(SimTime(*ms))),
            (ColumnType::Real, Value::Long(v)) => Some(Value::Real(*v as f64)),
            (ColumnType::Dynamic, Value::Dynamic(_)) => None,
            (ColumnType::Dynamic, other) => Some(Value::Dynamic(other.to_json().to_string())),
            _ => None,
        };
        if let Some(v) = converted {
            *value = v;
        }
    }
    record
}
