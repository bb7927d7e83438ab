//! `| render VISUALIZATION [with (PROPERTY = VALUE, ...)]`: the chart a query asks its client to
//! draw. The rows pass unchanged; the request is kept so that the Logs Query API can answer it
//! when the caller asks (`Prefer: include-render=true`, `LogsQueryClient`'s
//! `include_visualization=True`), as a `render` object in the answer.
//!
//! The visualizations and properties are Kusto's (the `render` operator's documentation); a name
//! outside them is a parse error that lists them, rather than a hint silently dropped. The
//! answer's object names every property, null (or Kusto's default) where the query set none, as
//! the real service does.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// The visualizations `render` accepts.
pub const VISUALIZATIONS: [&str; 15] = [
    "anomalychart",
    "areachart",
    "barchart",
    "card",
    "columnchart",
    "ladderchart",
    "linechart",
    "piechart",
    "pivotchart",
    "scatterchart",
    "stackedareachart",
    "table",
    "timechart",
    "timepivot",
    "treemap",
];

/// The properties `with (...)` accepts, as written in a query, and the answer's name for each.
pub const PROPERTIES: [(&str, &str); 15] = [
    ("accumulate", "accumulate"),
    ("anomalycolumns", "anomalyColumns"),
    ("kind", "kind"),
    ("legend", "legend"),
    ("series", "series"),
    ("title", "title"),
    ("xaxis", "xAxis"),
    ("xcolumn", "xColumn"),
    ("xtitle", "xTitle"),
    ("yaxis", "yAxis"),
    ("ycolumns", "yColumns"),
    ("ymax", "yMax"),
    ("ymin", "yMin"),
    ("ysplit", "ySplit"),
    ("ytitle", "yTitle"),
];

/// Properties whose value is a list of column names (`ycolumns = a, b`).
pub(crate) const LIST_PROPERTIES: [&str; 3] = ["anomalycolumns", "series", "ycolumns"];

/// A property's value as written.
#[derive(Clone, Debug, PartialEq)]
pub enum RenderValue {
    /// A string literal or a bare word (`kind = stacked`, `title = "Errors"`).
    Text(String),
    /// A number (`ymin = 0`).
    Number(f64),
    /// `true` / `false` (`accumulate = true`).
    Bool(bool),
    /// Column names (`ycolumns = a, b`).
    Names(Vec<String>),
}

impl RenderValue {
    fn to_json(&self) -> Value {
        match self {
            RenderValue::Text(s) => json!(s),
            RenderValue::Number(x) => json!(x),
            RenderValue::Bool(b) => json!(b),
            RenderValue::Names(names) => json!(names),
        }
    }
}

/// What `render` asked for (from [`crate::Query::visualization`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Visualization {
    /// One of [`VISUALIZATIONS`].
    pub visualization: String,
    /// By property name as written (lowercase), in name order.
    pub properties: BTreeMap<String, RenderValue>,
}

impl Visualization {
    /// The Logs Query API's `render` object: `visualization` and every property, null where
    /// the query set none (`accumulate` and `isQuerySorted` false, `yMin`/`yMax` "NaN").
    pub fn to_json(&self) -> Value {
        let mut object = serde_json::Map::new();
        object.insert("visualization".into(), json!(self.visualization));
        for (written, answered) in PROPERTIES {
            let value = match (self.properties.get(written), written) {
                (Some(v), _) => v.to_json(),
                (None, "accumulate") => json!(false),
                (None, "ymin" | "ymax") => json!("NaN"),
                (None, _) => Value::Null,
            };
            object.insert(answered.into(), value);
        }
        object.insert("isQuerySorted".into(), json!(false));
        Value::Object(object)
    }
}

/// The property's canonical (lowercase) name, if `render` knows it.
pub(crate) fn property(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    PROPERTIES.iter().map(|(w, _)| *w).find(|w| *w == lower)
}
