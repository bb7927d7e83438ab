//! `dynamic` column values as real nested values (`common.v1.Dynamic`), and their bound.
//!
//! Clients send a dynamic value as JSON text (the Logs Ingestion API's body); the ingest front
//! end parses it once, checks its nesting against [`DYNAMIC_DEPTH_MAX`] and hands storage a
//! `Dynamic` tree, which storage keeps and answers as such: no side re-parses text.
//!
//! Why a bound, and why 32: each JSON level costs two protobuf message levels (`Dynamic` →
//! `DynamicArray`/`DynamicObject` → ...), and a storage append wraps the value in four more
//! (`AppendRequest` → `Record` → `Column` → `Value`); prost refuses to decode beyond 100
//! levels. 32 JSON levels are 68 message levels, with room to spare, and far deeper than any
//! log record Azure Monitor documents. A deeper value is the caller's error (INVALID_ARGUMENT),
//! refused before anything is stored, never a storage failure.

use crate::common::v1::dynamic::Kind;
use crate::common::v1::{Dynamic, DynamicArray, DynamicMember, DynamicObject, Empty};

/// The deepest nesting a dynamic value may have: a scalar is depth 1, `[1]` depth 2.
pub const DYNAMIC_DEPTH_MAX: usize = 32;

/// The nesting depth of a JSON value (a scalar is 1, `{"a":[1]}` is 3).
pub fn json_depth(value: &serde_json::Value) -> usize {
    // Iterative, so that the depth of any parsed document is measured without recursion.
    let mut deepest = 0;
    let mut stack: Vec<(&serde_json::Value, usize)> = vec![(value, 1)];
    while let Some((v, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match v {
            serde_json::Value::Array(items) => {
                stack.extend(items.iter().map(|i| (i, depth + 1)));
            }
            serde_json::Value::Object(members) => {
                stack.extend(members.values().map(|m| (m, depth + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// A JSON value as a `Dynamic` (call after checking [`json_depth`] against the bound; the
/// recursion is as deep as the value).
pub fn dynamic_from_json(value: &serde_json::Value) -> Dynamic {
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(Empty {}),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Kind::LongValue(i),
            // serde_json numbers are finite; a u64 above i64::MAX is kept as a real.
            None => Kind::RealValue(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ArrayValue(DynamicArray {
            items: items.iter().map(dynamic_from_json).collect(),
        }),
        serde_json::Value::Object(members) => Kind::ObjectValue(DynamicObject {
            members: members
                .iter()
                .map(|(name, v)| DynamicMember {
                    name: name.clone(),
                    value: Some(dynamic_from_json(v)),
                })
                .collect(),
        }),
    };
    Dynamic { kind: Some(kind) }
}

/// A `Dynamic` back as JSON. A value without a kind, or a real JSON cannot hold (NaN,
/// infinity), is null.
pub fn dynamic_to_json(value: &Dynamic) -> serde_json::Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::LongValue(i)) => serde_json::Value::from(*i),
        Some(Kind::RealValue(r)) => serde_json::Number::from_f64(*r)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::ArrayValue(a)) => {
            serde_json::Value::Array(a.items.iter().map(dynamic_to_json).collect())
        }
        Some(Kind::ObjectValue(o)) => serde_json::Value::Object(
            o.members
                .iter()
                .map(|m| {
                    let v = m
                        .value
                        .as_ref()
                        .map(dynamic_to_json)
                        .unwrap_or(serde_json::Value::Null);
                    (m.name.clone(), v)
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_dynamic() {
        let json: serde_json::Value =
            serde_json::from_str(r#"{"a":[1,2.5,"x",null,true],"b":{"c":{}}}"#).unwrap();
        assert_eq!(dynamic_to_json(&dynamic_from_json(&json)), json);
        assert_eq!(json_depth(&json), 3);
        assert_eq!(json_depth(&serde_json::json!(1)), 1);
        assert_eq!(json_depth(&serde_json::json!([[1]])), 3);
    }

    #[test]
    fn the_deepest_allowed_value_decodes_inside_an_append() {
        use prost::Message;
        let mut text = String::new();
        for _ in 0..DYNAMIC_DEPTH_MAX - 1 {
            text.push('[');
        }
        text.push('1');
        for _ in 0..DYNAMIC_DEPTH_MAX - 1 {
            text.push(']');
        }
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json_depth(&json), DYNAMIC_DEPTH_MAX);
        let request = crate::storage::v1::AppendRequest {
            workspace_id: "w".into(),
            table: "T_CL".into(),
            records: vec![crate::storage::v1::Record {
                time_unix_ms: 1,
                columns: vec![crate::storage::v1::Column {
                    name: "D".into(),
                    value: Some(crate::storage::v1::Value {
                        kind: Some(crate::storage::v1::value::Kind::DynamicValue(
                            dynamic_from_json(&json),
                        )),
                    }),
                }],
            }],
        };
        let bytes = request.encode_to_vec();
        let back = crate::storage::v1::AppendRequest::decode(bytes.as_slice())
            .expect("within prost's recursion limit");
        assert_eq!(back, request);
    }
}
