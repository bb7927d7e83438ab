//! Data collection rules (`Microsoft.Insights/dataCollectionRules`): what a Logs Ingestion call
//! may send, and where it goes.
//!
//! A rule declares streams (`Custom-*`, each with typed columns), Log Analytics destinations
//! (workspace resource ids, each with a local name) and data flows (streams → destinations →
//! an output stream: `Custom-X_CL` writes the custom table `X_CL`, `Microsoft-Syslog` the
//! built-in `Syslog`). Its `immutableId` (`dcr-` + 32 hex) is what the ingestion URL names.
//!
//! The door owns rules: no service below it knows them (they are the Azure Monitor control
//! plane, in front of the ingestion front end), so they are kept in `DATA_DIR/dcrs.json`,
//! written whole and renamed on every change. [`Dcr::from_arm`] checks a rule as ARM would
//! before it is kept: a refused PUT changes nothing.
//!
//! Transformations: only `source` (the identity, the default) is run; a rule with another
//! `transformKql` is refused with a sentence that says so, rather than kept and ignored.
//!
//! The refusals carry ARM's code `InvalidPayload`; their texts are the simulator's (the seeds
//! give none).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{echo, RestError, RestResult};

/// Most rules kept (Azure's limit per subscription is in the low thousands).
pub const RULES_MAX: usize = 2_000;
/// The file in the data directory.
pub const DCRS_FILE: &str = "dcrs.json";

pub use cmksim_sim::dcr::{
    column_name_valid, custom_stream_valid, output_table, StreamType, COLUMNS_MAX, FLOWS_MAX,
    STREAMS_MAX,
};

/// A declared column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamColumn {
    pub name: String,
    pub column_type: StreamType,
}

/// A Log Analytics destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub name: String,
    /// The workspace's ARM id as the rule names it.
    pub workspace_resource_id: String,
}

/// A data flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub streams: Vec<String>,
    pub destinations: Vec<String>,
    pub output_stream: Option<String>,
    pub transform_kql: Option<String>,
}

/// A rule, as kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dcr {
    /// The ARM id as first written.
    pub id: String,
    pub name: String,
    pub location: String,
    pub kind: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub immutable_id: String,
    pub description: Option<String>,
    pub streams: BTreeMap<String, Vec<StreamColumn>>,
    pub destinations: Vec<Destination>,
    pub flows: Vec<Flow>,
}

/// Where one stream's records go: a workspace and a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub workspace_resource_id: String,
    pub table: String,
}

fn invalid(message: String) -> RestError {
    RestError::bad_request("InvalidPayload", message)
}

/// `properties.{name}` in any case.
fn field<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    object
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn string_list(value: Option<&Value>, what: &str) -> RestResult<Vec<String>> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let items = value
        .as_array()
        .ok_or_else(|| invalid(format!("{what} must be an array of strings.")))?;
    items
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid(format!("{what} must be an array of strings.")))
        })
        .collect()
}

impl Dcr {
    /// Reads and checks an ARM body (the `properties` of a rule) for `id`; `immutable_id` is the
    /// rule's (kept from an earlier version of the rule, or new).
    pub fn from_arm(id: &str, name: &str, body: &Value, immutable_id: String) -> RestResult<Dcr> {
        let location = field(body, "location")
            .and_then(Value::as_str)
            .filter(|l| !l.trim().is_empty())
            .ok_or_else(|| invalid("The data collection rule has no 'location'.".into()))?
            .to_string();
        let kind = field(body, "kind")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut tags = BTreeMap::new();
        if let Some(Value::Object(t)) = field(body, "tags") {
            for (k, v) in t {
                tags.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
            }
        }
        let props = field(body, "properties")
            .filter(|p| p.is_object())
            .ok_or_else(|| invalid("The data collection rule has no 'properties'.".into()))?;
        let description = field(props, "description")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut streams = BTreeMap::new();
        if let Some(declared) = field(props, "streamDeclarations") {
            let declared = declared
                .as_object()
                .ok_or_else(|| invalid("'streamDeclarations' must be an object.".into()))?;
            if declared.len() > STREAMS_MAX {
                return Err(invalid(format!(
                    "A data collection rule declares at most {STREAMS_MAX} streams."
                )));
            }
            for (stream, declaration) in declared {
                if !custom_stream_valid(stream) {
                    return Err(invalid(format!(
                        "Stream '{}' must be named 'Custom-<name>'.",
                        echo(stream)
                    )));
                }
                let columns = field(declaration, "columns")
                    .and_then(Value::as_array)
                    .ok_or_else(|| {
                        invalid(format!("Stream '{}' has no 'columns' array.", echo(stream)))
                    })?;
                if columns.is_empty() || columns.len() > COLUMNS_MAX {
                    return Err(invalid(format!(
                        "Stream '{}' must declare between 1 and {COLUMNS_MAX} columns.",
                        echo(stream)
                    )));
                }
                let mut out: Vec<StreamColumn> = Vec::new();
                for column in columns {
                    let name = field(column, "name").and_then(Value::as_str).unwrap_or("");
                    let type_name = field(column, "type").and_then(Value::as_str).unwrap_or("");
                    let column_type = StreamType::parse(type_name).ok_or_else(|| {
                        invalid(format!(
                            "Column '{}' of stream '{}' has type '{}'; expected string, int, \
                             long, real, boolean, datetime or dynamic.",
                            echo(name),
                            echo(stream),
                            echo(type_name)
                        ))
                    })?;
                    if !column_name_valid(name) {
                        return Err(invalid(format!(
                            "Column name '{}' of stream '{}' is not valid: letters, digits and \
                             '_', at most 64, not starting with a digit.",
                            echo(name),
                            echo(stream)
                        )));
                    }
                    if out.iter().any(|c| c.name.eq_ignore_ascii_case(name)) {
                        return Err(invalid(format!(
                            "Column '{}' is declared twice in stream '{}'.",
                            echo(name),
                            echo(stream)
                        )));
                    }
                    out.push(StreamColumn {
                        name: name.to_string(),
                        column_type,
                    });
                }
                streams.insert(stream.clone(), out);
            }
        }
        let mut destinations = Vec::new();
        if let Some(d) = field(props, "destinations") {
            if let Some(la) = field(d, "logAnalytics") {
                let la = la.as_array().ok_or_else(|| {
                    invalid("'destinations.logAnalytics' must be an array.".into())
                })?;
                for item in la.iter().take(FLOWS_MAX + 1) {
                    let name = field(item, "name").and_then(Value::as_str).unwrap_or("");
                    let workspace = field(item, "workspaceResourceId")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if name.is_empty() || workspace.is_empty() {
                        return Err(invalid(
                            "Every Log Analytics destination needs a 'name' and a \
                             'workspaceResourceId'."
                                .into(),
                        ));
                    }
                    destinations.push(Destination {
                        name: name.to_string(),
                        workspace_resource_id: workspace.to_string(),
                    });
                }
            }
        }
        let mut flows = Vec::new();
        if let Some(f) = field(props, "dataFlows") {
            let f = f
                .as_array()
                .ok_or_else(|| invalid("'dataFlows' must be an array.".into()))?;
            for item in f.iter().take(FLOWS_MAX + 1) {
                flows.push(Flow {
                    streams: string_list(field(item, "streams"), "'dataFlows[].streams'")?,
                    destinations: string_list(
                        field(item, "destinations"),
                        "'dataFlows[].destinations'",
                    )?,
                    output_stream: field(item, "outputStream")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    transform_kql: field(item, "transformKql")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                });
            }
        }
        if destinations.len() > FLOWS_MAX || flows.len() > FLOWS_MAX {
            return Err(invalid(format!(
                "A data collection rule has at most {FLOWS_MAX} destinations and data flows."
            )));
        }
        let dcr = Dcr {
            id: id.to_string(),
            name: name.to_string(),
            location,
            kind,
            tags,
            immutable_id,
            description,
            streams,
            destinations,
            flows,
        };
        dcr.check_flows()?;
        Ok(dcr)
    }

    /// Every flow names declared streams and destinations, writes a table, and transforms
    /// nothing (cmksim runs only `source`).
    fn check_flows(&self) -> RestResult<()> {
        for flow in &self.flows {
            if flow.streams.is_empty() || flow.destinations.is_empty() {
                return Err(invalid(
                    "Every data flow needs 'streams' and 'destinations'.".into(),
                ));
            }
            for stream in &flow.streams {
                if stream.starts_with("Custom-") && !self.streams.contains_key(stream) {
                    return Err(invalid(format!(
                        "Data flow stream '{}' is not declared in 'streamDeclarations'.",
                        echo(stream)
                    )));
                }
            }
            for destination in &flow.destinations {
                if !self.destinations.iter().any(|d| &d.name == destination) {
                    return Err(invalid(format!(
                        "Data flow destination '{}' is not one of 'destinations'.",
                        echo(destination)
                    )));
                }
            }
            let output = flow
                .output_stream
                .clone()
                .or_else(|| flow.streams.first().cloned())
                .unwrap_or_default();
            if output_table(&output).is_none() {
                return Err(invalid(format!(
                    "Output stream '{}' names no table ('Custom-<table>_CL' or \
                     'Microsoft-<table>').",
                    echo(&output)
                )));
            }
            if let Some(kql) = &flow.transform_kql {
                if kql.trim() != "source" {
                    return Err(invalid(format!(
                        "transformKql '{}': cmksim runs only the identity transformation \
                         'source' (simulator's limit).",
                        echo(kql)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Where records of `stream` go (one route per flow destination).
    pub fn routes(&self, stream: &str) -> Vec<Route> {
        let mut routes = Vec::new();
        for flow in self
            .flows
            .iter()
            .filter(|f| f.streams.iter().any(|s| s == stream))
        {
            let output = flow.output_stream.as_deref().unwrap_or(stream);
            let Some(table) = output_table(output) else {
                continue;
            };
            for name in &flow.destinations {
                if let Some(d) = self.destinations.iter().find(|d| &d.name == name) {
                    routes.push(Route {
                        workspace_resource_id: d.workspace_resource_id.clone(),
                        table: table.clone(),
                    });
                }
            }
        }
        routes
    }

    /// The ARM answer; `endpoint` is the door's URL (`properties.endpoints.logsIngestion`).
    pub fn to_arm(&self, endpoint: &str) -> Value {
        let streams: serde_json::Map<String, Value> = self
            .streams
            .iter()
            .map(|(name, columns)| {
                let columns: Vec<Value> = columns
                    .iter()
                    .map(|c| json!({"name": c.name, "type": c.column_type.name()}))
                    .collect();
                (name.clone(), json!({ "columns": columns }))
            })
            .collect();
        let destinations: Vec<Value> = self
            .destinations
            .iter()
            .map(|d| json!({"name": d.name, "workspaceResourceId": d.workspace_resource_id}))
            .collect();
        let flows: Vec<Value> = self
            .flows
            .iter()
            .map(|f| {
                let mut flow = json!({"streams": f.streams, "destinations": f.destinations});
                if let Some(o) = &f.output_stream {
                    flow["outputStream"] = json!(o);
                }
                if let Some(t) = &f.transform_kql {
                    flow["transformKql"] = json!(t);
                }
                flow
            })
            .collect();
        let mut properties = json!({
            "immutableId": self.immutable_id,
            "endpoints": {"logsIngestion": endpoint},
            "streamDeclarations": streams,
            "destinations": {"logAnalytics": destinations},
            "dataFlows": flows,
            "provisioningState": "Succeeded",
        });
        if let Some(d) = &self.description {
            properties["description"] = json!(d);
        }
        let mut out = json!({
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Insights/dataCollectionRules",
            "location": self.location,
            "tags": self.tags,
            "properties": properties,
        });
        if let Some(kind) = &self.kind {
            out["kind"] = json!(kind);
        }
        out
    }
}

/// The immutable id of a new rule: `dcr-` and 32 hex digits of SHA-256 over the door's seed and
/// the rule's id (deterministic for a seed, distinct per rule).
pub fn immutable_id(seed: u64, arm_id: &str) -> String {
    let mut input = seed.to_be_bytes().to_vec();
    input.extend_from_slice(arm_id.to_ascii_lowercase().as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("dcr-{hex}")
}

/// The rules, by lowercase ARM id, kept in `DATA_DIR/dcrs.json`.
pub struct DcrStore {
    path: PathBuf,
    rules: Mutex<BTreeMap<String, Dcr>>,
}

impl DcrStore {
    /// Opens the store in `dir` (empty when the file does not exist yet).
    pub fn open(dir: &Path) -> RestResult<DcrStore> {
        let path = dir.join(DCRS_FILE);
        let rules = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                RestError::startup(format!("{} is not a rules file: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(RestError::startup(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        Ok(DcrStore {
            path,
            rules: Mutex::new(rules),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Dcr>> {
        self.rules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The rule with this ARM id.
    pub fn get(&self, arm_id: &str) -> Option<Dcr> {
        self.lock().get(&arm_id.to_ascii_lowercase()).cloned()
    }

    /// The rule with this immutable id.
    pub fn by_immutable_id(&self, immutable_id: &str) -> Option<Dcr> {
        self.lock()
            .values()
            .find(|d| d.immutable_id.eq_ignore_ascii_case(immutable_id))
            .cloned()
    }

    /// Every rule whose ARM id starts with `prefix` (a subscription or resource group).
    pub fn list(&self, prefix: &str) -> Vec<Dcr> {
        let prefix = prefix.to_ascii_lowercase();
        self.lock()
            .iter()
            .filter(|(id, _)| id.starts_with(&prefix))
            .map(|(_, d)| d.clone())
            .collect()
    }

    /// Keeps `dcr` (new or replacing); written to disk before it counts. Returns whether it is
    /// new.
    pub fn put(&self, dcr: Dcr) -> RestResult<bool> {
        let mut rules = self.lock();
        let key = dcr.id.to_ascii_lowercase();
        let new = !rules.contains_key(&key);
        if new && rules.len() >= RULES_MAX {
            return Err(RestError::new(
                409,
                "QuotaExceeded",
                format!("cmksim keeps at most {RULES_MAX} data collection rules."),
            ));
        }
        let mut next = rules.clone();
        next.insert(key, dcr);
        self.write(&next)?;
        *rules = next;
        Ok(new)
    }

    /// Removes the rule; whether there was one.
    pub fn delete(&self, arm_id: &str) -> RestResult<bool> {
        let mut rules = self.lock();
        let key = arm_id.to_ascii_lowercase();
        if !rules.contains_key(&key) {
            return Ok(false);
        }
        let mut next = rules.clone();
        next.remove(&key);
        self.write(&next)?;
        *rules = next;
        Ok(true)
    }

    fn write(&self, rules: &BTreeMap<String, Dcr>) -> RestResult<()> {
        use std::io::Write;
        let fail = |e: std::io::Error| {
            RestError::new(
                500,
                "InternalServerError",
                format!("cannot write {}: {e}", self.path.display()),
            )
        };
        let text = serde_json::to_vec_pretty(rules)
            .map_err(|e| RestError::new(500, "InternalServerError", e.to_string()))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp).map_err(fail)?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(fail)?;
        std::fs::rename(&tmp, &self.path).map_err(fail)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws";

    fn body() -> Value {
        json!({
            "location": "eastus",
            "kind": "Direct",
            "properties": {
                "streamDeclarations": {"Custom-Drill": {"columns": [
                    {"name": "TimeGenerated", "type": "datetime"},
                    {"name": "Computer", "type": "string"},
                    {"name": "Level", "type": "long"}]}},
                "destinations": {"logAnalytics": [{"name": "la", "workspaceResourceId": WS}]},
                "dataFlows": [{"streams": ["Custom-Drill"], "destinations": ["la"],
                               "outputStream": "Custom-Drill_CL", "transformKql": "source"}]
            }
        })
    }

    #[test]
    fn a_rule_routes_its_stream_to_the_output_table_of_each_destination() {
        let dcr = Dcr::from_arm("/x", "r", &body(), immutable_id(1, "/x")).unwrap();
        assert_eq!(
            dcr.routes("Custom-Drill"),
            vec![Route {
                workspace_resource_id: WS.into(),
                table: "Drill_CL".into()
            }]
        );
        assert!(dcr.routes("Custom-Other").is_empty());
        let arm = dcr.to_arm("https://127.0.0.1:8443");
        assert_eq!(
            arm["properties"]["endpoints"]["logsIngestion"],
            "https://127.0.0.1:8443"
        );
        assert!(dcr.immutable_id.starts_with("dcr-") && dcr.immutable_id.len() == 36);
    }

    #[test]
    fn a_broken_rule_is_refused_with_what_is_wrong() {
        let cases: [(&str, Value); 5] = [
            (
                "Custom-",
                json!({"Custom-Drill": {"columns": [{"name": "A", "type": "float"}]}}),
            ),
            (
                "declared twice",
                json!({"Custom-Drill": {"columns": [
                {"name": "A", "type": "string"}, {"name": "a", "type": "string"}]}}),
            ),
            (
                "'Custom-<name>'",
                json!({"Drill": {"columns": [{"name": "A", "type": "string"}]}}),
            ),
            (
                "not valid",
                json!({"Custom-Drill": {"columns": [{"name": "1A", "type": "string"}]}}),
            ),
            ("columns", json!({"Custom-Drill": {}})),
        ];
        for (expected, streams) in cases {
            let mut b = body();
            b["properties"]["streamDeclarations"] = streams;
            let e = Dcr::from_arm("/x", "r", &b, "dcr-0".into()).unwrap_err();
            assert_eq!(e.status, 400);
            let expected = if expected == "Custom-" {
                "expected string, int"
            } else {
                expected
            };
            assert!(e.message.contains(expected), "{expected}: {}", e.message);
        }
        let mut b = body();
        b["properties"]["dataFlows"][0]["transformKql"] = json!("source | where Level > 1");
        assert!(Dcr::from_arm("/x", "r", &b, "dcr-0".into())
            .unwrap_err()
            .message
            .contains("only the identity"));
    }

    #[test]
    fn the_store_keeps_rules_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = DcrStore::open(dir.path()).unwrap();
        let dcr = Dcr::from_arm("/A/x", "x", &body(), immutable_id(1, "/A/x")).unwrap();
        assert!(store.put(dcr.clone()).unwrap());
        assert!(!store.put(dcr.clone()).unwrap());
        let reopened = DcrStore::open(dir.path()).unwrap();
        assert_eq!(reopened.get("/a/X"), Some(dcr.clone()));
        assert_eq!(reopened.by_immutable_id(&dcr.immutable_id), Some(dcr));
        assert!(reopened.delete("/a/x").unwrap());
        assert!(DcrStore::open(dir.path()).unwrap().get("/a/x").is_none());
    }
}
