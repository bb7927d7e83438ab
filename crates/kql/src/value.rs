//! The data model: cells ([`Value`]), column types ([`ColumnType`]), columns and tables.
//!
//! These are the shapes the query API speaks (`{"name","type"}` columns, rows of cells), so they
//! stay plain data. Kusto's own rules live here too: which type names a declaration accepts
//! (`int` is stored as `long`, `guid` as `string`), how each value prints (`tostring()`), and how
//! a cell becomes JSON for the Logs Query API.

use crate::time::{format_datetime, format_timespan};

/// A value of a cell (Kusto scalar types).
///
/// Kusto's `string` has no null (an empty string plays that role), so a string cell read from
/// storage should be `String("")` rather than `Null`; the evaluator treats both as empty.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum Value {
    /// A missing value of any type.
    Null,
    /// `bool`.
    Bool(bool),
    /// `long` (and `int`, which Kusto widens).
    Long(i64),
    /// `real` (a 64-bit float).
    Real(f64),
    /// `string` (and `guid`, kept as its text).
    String(String),
    /// `datetime`, in Unix milliseconds (UTC).
    DateTime(i64),
    /// `timespan`, in milliseconds.
    TimeSpan(i64),
    /// `dynamic`: any JSON value.
    Dynamic(serde_json::Value),
}

impl Value {
    /// The column type this value belongs to; `None` for `Null`, which belongs to every type.
    pub fn column_type(&self) -> Option<ColumnType> {
        match self {
            Value::Null => None,
            Value::Bool(_) => Some(ColumnType::Bool),
            Value::Long(_) => Some(ColumnType::Long),
            Value::Real(_) => Some(ColumnType::Real),
            Value::String(_) => Some(ColumnType::String),
            Value::DateTime(_) => Some(ColumnType::DateTime),
            Value::TimeSpan(_) => Some(ColumnType::TimeSpan),
            Value::Dynamic(_) => Some(ColumnType::Dynamic),
        }
    }

    /// True for `Null`, an empty string and a JSON null (Kusto's `isempty()`).
    pub fn is_empty(&self) -> bool {
        match self {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Dynamic(serde_json::Value::Null) => true,
            Value::Dynamic(serde_json::Value::String(s)) => s.is_empty(),
            _ => false,
        }
    }

    /// The text of the value as Kusto's `tostring()` gives it: datetimes as ISO 8601 UTC
    /// (`2020-07-05T12:00:00Z`, seven fraction digits when there is a fraction), timespans as
    /// `[d.]hh:mm:ss[.fffffff]`, dynamic values as compact JSON (a JSON string without quotes),
    /// and null as the empty string.
    pub fn to_kusto_string(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Long(n) => n.to_string(),
            Value::Real(x) => format_real(*x),
            Value::String(s) => s.clone(),
            Value::DateTime(ms) => format_datetime(*ms),
            Value::TimeSpan(ms) => format_timespan(*ms),
            Value::Dynamic(serde_json::Value::String(s)) => s.clone(),
            Value::Dynamic(serde_json::Value::Null) => String::new(),
            Value::Dynamic(j) => j.to_string(),
        }
    }

    /// The cell as the Logs Query API writes it in a row: numbers and booleans as JSON numbers
    /// and booleans, datetimes and timespans as their Kusto text, dynamic values as JSON, nulls
    /// as `null`. A non-finite real (NaN, ±infinity) becomes its Kusto name as a string.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Long(n) => J::from(*n),
            Value::Real(x) => serde_json::Number::from_f64(*x)
                .map(J::Number)
                .unwrap_or_else(|| J::String(format_real(*x))),
            Value::String(s) => J::String(s.clone()),
            Value::DateTime(ms) => J::String(format_datetime(*ms)),
            Value::TimeSpan(ms) => J::String(format_timespan(*ms)),
            Value::Dynamic(j) => j.clone(),
        }
    }
}

/// Kusto prints reals without a trailing `.0` (`2`, `1.5`) and names the non-finite ones.
pub(crate) fn format_real(x: f64) -> String {
    if x.is_nan() {
        "NaN".to_string()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        format!("{x}")
    }
}

/// Kusto column types; [`ColumnType::name`] gives the name the Logs Query API uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ColumnType {
    /// `bool`.
    Bool,
    /// `long` (declared as `long` or `int`).
    Long,
    /// `real` (declared as `real` or `double`).
    Real,
    /// `string` (declared as `string` or `guid`).
    String,
    /// `datetime` (declared as `datetime` or `date`).
    DateTime,
    /// `timespan` (declared as `timespan` or `time`).
    TimeSpan,
    /// `dynamic`.
    Dynamic,
}

impl ColumnType {
    /// The Kusto name: "bool", "long", "real", "string", "datetime", "timespan", "dynamic".
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Bool => "bool",
            ColumnType::Long => "long",
            ColumnType::Real => "real",
            ColumnType::String => "string",
            ColumnType::DateTime => "datetime",
            ColumnType::TimeSpan => "timespan",
            ColumnType::Dynamic => "dynamic",
        }
    }

    /// The type a declaration names (a DCR stream column, a custom table), with Kusto's
    /// synonyms: `int` is stored as `long`, `guid` as `string`, `double` as `real`, `date` as
    /// `datetime`, `time` as `timespan`, `boolean` as `bool`. Case-sensitive, as in Kusto.
    pub fn from_name(name: &str) -> Option<ColumnType> {
        Some(match name {
            "bool" | "boolean" => ColumnType::Bool,
            "long" | "int" => ColumnType::Long,
            "real" | "double" => ColumnType::Real,
            "string" | "guid" => ColumnType::String,
            "datetime" | "date" => ColumnType::DateTime,
            "timespan" | "time" => ColumnType::TimeSpan,
            "dynamic" => ColumnType::Dynamic,
            _ => return None,
        })
    }
}

/// A column of a table: its name and its type.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Column {
    /// The column name, case-sensitive.
    pub name: String,
    /// The type every non-null cell of the column has.
    pub column_type: ColumnType,
}

impl Column {
    /// A column named `name` of type `column_type`.
    pub fn new(name: impl Into<String>, column_type: ColumnType) -> Column {
        Column {
            name: name.into(),
            column_type,
        }
    }
}

/// A table: a name, its columns, and rows with one cell per column.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Table {
    /// The table name (`Heartbeat`, `MyTable_CL`; the result of a query is `PrimaryResult`).
    pub name: String,
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// The rows; each has exactly `columns.len()` cells.
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    /// The index of the column named `name`, if any.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}
