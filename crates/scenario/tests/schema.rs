//! schema/scenario.schema.json stays in sync with the parser: it is valid JSON Schema (of the
//! subset used), every library scenario and the every-construct fixture validate against it,
//! files the parser rejects for shape reasons are rejected by it too, and its vocabularies
//! (actions, step keys) are the parser's.

use std::path::{Path, PathBuf};

use cmksim_scenario::model::ACTION_NAMES;
use cmksim_scenario::validate::action_parameters;
use cmksim_scenario::validate_file;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn schema() -> Value {
    let text = std::fs::read_to_string(root().join("schema/scenario.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn toml_to_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    let value: toml::Value = toml::from_str(&text).unwrap();
    serde_json::to_value(value).unwrap()
}

/// A validator for the JSON Schema 2020-12 keywords the schema uses. Returns the errors as
/// `json-pointer: message`.
fn check(schema: &Value, root: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(s) = schema.as_object() else { return };
    if let Some(Value::String(r)) = s.get("$ref") {
        let target = r
            .strip_prefix("#/")
            .unwrap()
            .split('/')
            .fold(root, |v, part| &v[part]);
        assert!(!target.is_null(), "dangling $ref {r}");
        check(target, root, value, at, errors);
    }
    if let Some(t) = s.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            other => panic!("type {other} not supported"),
        };
        if !ok {
            errors.push(format!("{at}: expected {t}, got {value}"));
            return;
        }
    }
    if let Some(Value::Array(options)) = s.get("enum") {
        if !options.contains(value) {
            errors.push(format!("{at}: {value} not in enum"));
        }
    }
    if let Some(c) = s.get("const") {
        if c != value {
            errors.push(format!("{at}: {value} ≠ const {c}"));
        }
    }
    if let Some(n) = value.as_f64() {
        if s.get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n < m)
        {
            errors.push(format!("{at}: {n} below minimum"));
        }
        if s.get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n > m)
        {
            errors.push(format!("{at}: {n} above maximum"));
        }
        if s.get("exclusiveMinimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n <= m)
        {
            errors.push(format!("{at}: {n} not above exclusiveMinimum"));
        }
    }
    if let Some(text) = value.as_str() {
        if s.get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| (text.chars().count() as u64) < m)
        {
            errors.push(format!("{at}: {text:?} too short"));
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            if !regex::Regex::new(p).unwrap().is_match(text) {
                errors.push(format!("{at}: {text:?} does not match {p}"));
            }
        }
    }
    if let Some(items) = value.as_array() {
        if s.get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| (items.len() as u64) < m)
        {
            errors.push(format!("{at}: too few items"));
        }
        if s.get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| (items.len() as u64) > m)
        {
            errors.push(format!("{at}: too many items"));
        }
        if let Some(item_schema) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(item_schema, root, item, &format!("{at}/{i}"), errors);
            }
        }
    }
    if let Some(object) = value.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        for (key, v) in object {
            match props.and_then(|p| p.get(key)) {
                Some(p) => check(p, root, v, &format!("{at}/{key}"), errors),
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{at}: unknown key {key}"))
                }
                None => {}
            }
        }
        for key in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !object.contains_key(key.as_str().unwrap()) {
                errors.push(format!("{at}: missing {key}"));
            }
        }
        if let Some(Value::Object(deps)) = s.get("dependentRequired") {
            for (key, needs) in deps {
                if object.contains_key(key) {
                    for need in needs.as_array().unwrap() {
                        if !object.contains_key(need.as_str().unwrap()) {
                            errors.push(format!("{at}: {key} needs {need}"));
                        }
                    }
                }
            }
        }
    }
    let passes = |sub: &Value| {
        let mut e = Vec::new();
        check(sub, root, value, at, &mut e);
        e.is_empty()
    };
    if let Some(Value::Array(subs)) = s.get("oneOf") {
        let n = subs.iter().filter(|x| passes(x)).count();
        if n != 1 {
            errors.push(format!("{at}: matches {n} of oneOf"));
        }
    }
    if let Some(Value::Array(subs)) = s.get("anyOf") {
        if !subs.iter().any(passes) {
            errors.push(format!("{at}: matches none of anyOf"));
        }
    }
    if let Some(not) = s.get("not") {
        if passes(not) {
            errors.push(format!("{at}: matches `not`"));
        }
    }
}

fn schema_errors(value: &Value) -> Vec<String> {
    let schema = schema();
    let mut errors = Vec::new();
    check(&schema, &schema, value, "", &mut errors);
    errors
}

fn scenario_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/everything.toml"));
    files.sort();
    files
}

#[test]
fn schema_is_draft_2020_12() {
    let s = schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(s["additionalProperties"], false);
}

#[test]
fn every_scenario_and_the_fixture_validate_against_the_schema_and_the_parser() {
    for file in scenario_files() {
        if let Err(diags) = validate_file(&file) {
            panic!(
                "{}",
                diags
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        let errors = schema_errors(&toml_to_json(&file));
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
    }
}

#[test]
fn the_schema_rejects_what_the_parser_rejects() {
    let base = toml_to_json(&root().join("scenarios/revocation.toml"));
    type Mutation = (&'static str, fn(&mut Value));
    let mutations: [Mutation; 7] = [
        ("unknown key", |v| {
            v["vaults"][0]["purge_protecton"] = true.into()
        }),
        ("wrong type", |v| {
            v["vaults"][0]["retention_days"] = "ninety".into()
        }),
        ("unknown kty", |v| v["keys"][0]["kty"] = "AES".into()),
        ("bad duration", |v| {
            v["scenario"]["duration"] = "4 hours".into()
        }),
        ("unknown action", |v| {
            v["timeline"][1]["action"] = "disable-key".into()
        }),
        ("two subjects", |v| {
            v["expect"][0]["query"] = "ws-ops".into()
        }),
        ("within without after_step", |v| {
            v["expect"][0].as_object_mut().unwrap().remove("after_step");
        }),
    ];
    for (what, mutate) in mutations {
        let mut v = base.clone();
        mutate(&mut v);
        assert!(!schema_errors(&v).is_empty(), "schema accepted: {what}");
    }
}

#[test]
fn schema_vocabularies_match_the_parser() {
    let s = schema();
    let actions: Vec<&str> = s["$defs"]["step"]["properties"]["action"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(actions, ACTION_NAMES.to_vec());
    let mut step_keys: Vec<&str> = s["$defs"]["step"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    step_keys.sort();
    let mut expected: Vec<&str> = vec![
        "id", "at", "after", "action", "fault", "narrate", "duration",
    ];
    for action in ACTION_NAMES {
        let (required, optional) = action_parameters(action).unwrap();
        expected.extend(required.iter().chain(optional));
    }
    expected.sort();
    expected.dedup();
    assert_eq!(step_keys, expected);
}
