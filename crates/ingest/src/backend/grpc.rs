//! [`StorageBackend`] over the storage service's gRPC API (`storage.v1`).
//!
//! The storage service decides routing itself when it appends (its control plane knows the link
//! and provisioning state), so this backend passes the batch on in one `Append` and reports the
//! destination storage chose (`routed_to`). Its query fans out over the workspace's storages
//! itself (a revoked or unavailable cluster fails the query, naming the cluster and its state):
//! this backend reads the range once, without filters, capped at [`QUERY_SCAN_ROWS_MAX`], groups
//! the rows by storage and filters them in the front end.
//!
//! Identifiers: workspaces are named by their ARM resource id
//! (`/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{name}`),
//! clusters by theirs ([`Destination::Cluster`] holds the id as storage reports it). Records
//! travel as typed columns (`storage.v1.Value`: a dynamic value as a nested
//! `common.v1.Dynamic`), so storage keeps and answers the types the schema gave them.

use std::collections::BTreeMap;

use cmksim_identity::AuthChannel;
use cmksim_proto::storage::v1 as sb;
use cmksim_sim::text::echo;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use super::{AppendRequest, AppendResult, BackendError, StorageBackend, SummaryPart};
use crate::grpc::status::azure_error;
use crate::outcome::{DropReason, KeyProtection, Outcomes, RecordOutcome};
use crate::query::{filter_part, QuerySpec, StoragePart, Tier};
use crate::record::{conform, ColumnType, Record, Value};
use crate::routing::Destination;
use crate::schema::{TableKind, TableSchema};
use crate::server::ServerError;
use crate::BoxFuture;
use cmksim_proto::dynamic::{dynamic_from_json, dynamic_to_json};
use cmksim_proto::kid::KeyId;

/// The most rows one query reads from storage before filtering (storage may cap lower).
pub const QUERY_SCAN_ROWS_MAX: u32 = 100_000;
/// The largest answer read from storage: [`QUERY_SCAN_ROWS_MAX`] records of up to about a
/// kilobyte each (tonic's default of 4 MiB holds only a few thousand).
pub const QUERY_RESPONSE_BYTES_MAX: usize = 128 * 1024 * 1024;

/// The storage service, reached over gRPC.
#[derive(Clone, Debug)]
pub struct GrpcStorage {
    /// The channel, attaching the front end's own tokens when it has a principal.
    channel: AuthChannel,
}

impl GrpcStorage {
    /// A backend over an existing channel.
    pub fn new(channel: Channel) -> GrpcStorage {
        GrpcStorage {
            channel: AuthChannel::plain(channel),
        }
    }

    /// A backend over an existing channel, every call carrying a token of `tokens`.
    pub fn with_tokens(
        channel: Channel,
        tokens: std::sync::Arc<cmksim_identity::TokenSource>,
    ) -> GrpcStorage {
        GrpcStorage {
            channel: AuthChannel::new(channel, Some(tokens)),
        }
    }

    /// A backend connecting lazily to `endpoint` (e.g. `http://127.0.0.1:7002`).
    pub fn connect_lazy(endpoint: &str) -> Result<GrpcStorage, ServerError> {
        GrpcStorage::connect_lazy_with_tokens(endpoint, None)
    }

    /// A backend connecting lazily to `endpoint`, every call carrying a token of `tokens`.
    pub fn connect_lazy_with_tokens(
        endpoint: &str,
        tokens: Option<std::sync::Arc<cmksim_identity::TokenSource>>,
    ) -> Result<GrpcStorage, ServerError> {
        let channel = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| ServerError::InvalidEndpoint {
                endpoint: endpoint.to_string(),
                reason: e.to_string(),
            })?
            .connect_lazy();
        Ok(GrpcStorage {
            channel: AuthChannel::new(channel, tokens),
        })
    }

    fn data(&self) -> sb::data_plane_client::DataPlaneClient<AuthChannel> {
        sb::data_plane_client::DataPlaneClient::new(self.channel.clone())
            .max_decoding_message_size(QUERY_RESPONSE_BYTES_MAX)
    }

    async fn append_batch(&self, request: AppendRequest) -> Result<AppendResult, BackendError> {
        let message = sb::AppendRequest {
            workspace_id: request.workspace.clone(),
            table: request.table,
            records: request.records.into_iter().map(record_into_pb).collect(),
        };
        let response = match self.data().append(message).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::NotFound => {
                return Err(BackendError::WorkspaceNotFound {
                    workspace: request.workspace,
                })
            }
            Err(s) if s.code() == Code::InvalidArgument => {
                return Err(BackendError::Refused {
                    message: s.message().to_string(),
                })
            }
            Err(s) => return Err(unreachable(&s)),
        };
        let routed_to = destination_of(&response.routed_to);
        // One conversion per run (a kid parse and the strings), not per record.
        let mut outcomes = Outcomes::new();
        for run in &response.runs {
            let outcome = match &run.outcome {
                Some(o) => outcome_of(o, routed_to.as_ref()),
                None => outcome_of(&sb::RecordOutcome::default(), routed_to.as_ref()),
            };
            outcomes.push_run(outcome, u64::from(run.count));
        }
        Ok(AppendResult {
            routed_to,
            outcomes,
        })
    }

    /// The storage.v1 query of `spec` (its KQL pushdown included; `summarize`: ask storage to
    /// summarize it).
    fn query_message(spec: &QuerySpec, summarize: bool) -> sb::QueryRequest {
        sb::QueryRequest {
            workspace_id: spec.workspace.clone(),
            table: spec.table.clone(),
            from_unix_ms: spec.range.from.unix_ms(),
            to_unix_ms: spec.range.to.unix_ms(),
            limit: QUERY_SCAN_ROWS_MAX,
            kql: spec
                .kql
                .as_ref()
                .map_or_else(String::new, |k| k.text.clone()),
            kql_columns: spec.kql.as_ref().map_or_else(Vec::new, |k| {
                k.columns
                    .iter()
                    .map(|(name, t)| sb::TableColumn {
                        name: name.clone(),
                        r#type: t.clone(),
                    })
                    .collect()
            }),
            kql_now_unix_ms: spec.kql.as_ref().map_or(0, |k| k.now_ms),
            kql_summarize: summarize,
        }
    }

    async fn summarize_all(
        &self,
        spec: QuerySpec,
    ) -> Result<Option<Vec<SummaryPart>>, BackendError> {
        if spec.kql.is_none() {
            return Ok(None);
        }
        let message = Self::query_message(&spec, true);
        let response = match self.data().query(message).await {
            Ok(r) => r.into_inner(),
            // More groups than storage holds (`SUMMARIZE_GROUPS_MAX`, the rows path's bound on
            // kept rows): the rows path refuses the query with its own sentence.
            Err(s) if s.code() == Code::ResourceExhausted => return Ok(None),
            Err(s) => return Err(query_failure(&s, &spec.workspace)),
        };
        if !response.kql_summarized {
            return Ok(None);
        }
        let mut parts: Vec<SummaryPart> = Vec::with_capacity(response.parts.len());
        for p in response.parts {
            let Some(destination) = destination_of(&p.storage) else {
                continue;
            };
            let cold = p.records_from_cold.min(p.records);
            let kept = [(Tier::Hot, p.records - cold), (Tier::Cold, cold)]
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .collect();
            parts.push(SummaryPart {
                destination,
                groups: p.kql_groups,
                scanned: p.scanned,
                kept,
            });
        }
        parts.sort_by(|a, b| a.destination.cmp(&b.destination));
        Ok(Some(parts))
    }

    async fn query_all(
        &self,
        spec: QuerySpec,
        schema: TableSchema,
    ) -> Result<Vec<StoragePart>, BackendError> {
        let message = Self::query_message(&spec, false);
        let response = match self.data().query(message).await {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(query_failure(&s, &spec.workspace)),
        };
        // Every storage storage read has a part, with or without matching rows.
        let mut groups: BTreeMap<Destination, Vec<(Record, Tier)>> = response
            .parts
            .iter()
            .filter_map(|p| destination_of(&p.storage))
            .map(|d| (d, Vec::new()))
            .collect();
        for queried in &response.records {
            let Some(record) = queried.record.as_ref() else {
                continue;
            };
            let destination = destination_of(&queried.storage).unwrap_or(Destination::Shared);
            let tier = if queried.tier == sb::Tier::Cold as i32 {
                Tier::Cold
            } else {
                Tier::Hot
            };
            groups
                .entry(destination)
                .or_default()
                .push((conform(decode_record(record), &schema), tier));
        }
        Ok(groups
            .into_iter()
            .map(|(destination, rows)| {
                let mut part = filter_part(destination, rows, &spec);
                part.scan_truncated = response.truncated;
                // With a KQL pushdown, storage scanned more than it returned.
                part.scanned = response
                    .parts
                    .iter()
                    .filter(|p| destination_of(&p.storage).as_ref() == Some(&part.destination))
                    .map(|p| p.scanned)
                    .sum::<u64>()
                    .max(part.scanned);
                part
            })
            .collect())
    }
}

impl GrpcStorage {
    fn workspaces(&self) -> sb::workspaces_client::WorkspacesClient<AuthChannel> {
        sb::workspaces_client::WorkspacesClient::new(self.channel.clone())
    }

    async fn custom_table_of(
        &self,
        workspace: String,
        table: String,
    ) -> Result<Option<TableSchema>, BackendError> {
        let reference =
            workspace_ref(&workspace).ok_or_else(|| BackendError::WorkspaceNotFound {
                workspace: workspace.clone(),
            })?;
        let request = sb::GetTableRequest {
            workspace: Some(reference),
            table,
        };
        let declared = match self.workspaces().get_table(request).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::NotFound => {
                return Err(BackendError::WorkspaceNotFound { workspace })
            }
            Err(s) => return Err(unreachable(&s)),
        };
        if !declared.exists {
            return Ok(None);
        }
        schema_of_declaration(&declared).map(Some)
    }

    async fn declare(
        &self,
        workspace: String,
        schema: TableSchema,
    ) -> Result<TableSchema, BackendError> {
        let reference =
            workspace_ref(&workspace).ok_or_else(|| BackendError::WorkspaceNotFound {
                workspace: workspace.clone(),
            })?;
        let request = sb::DeclareTableRequest {
            workspace: Some(reference),
            table: schema.name.clone(),
            columns: schema
                .columns
                .iter()
                .map(|(name, t)| sb::TableColumn {
                    name: name.clone(),
                    r#type: t.name().to_string(),
                })
                .collect(),
        };
        match self.workspaces().declare_table(request).await {
            Ok(r) => schema_of_declaration(&r.into_inner()),
            Err(s) if s.code() == Code::NotFound => {
                Err(BackendError::WorkspaceNotFound { workspace })
            }
            Err(s)
                if matches!(
                    s.code(),
                    Code::FailedPrecondition | Code::InvalidArgument | Code::ResourceExhausted
                ) =>
            {
                Err(BackendError::DeclarationRefused {
                    message: s.message().to_string(),
                })
            }
            Err(s) => Err(unreachable(&s)),
        }
    }
}

/// A custom table's schema from storage's declaration (type names are the ones this front end
/// sent; any other is a storage fault, reported as such).
fn schema_of_declaration(declared: &sb::TableDeclaration) -> Result<TableSchema, BackendError> {
    let mut columns = BTreeMap::new();
    for column in &declared.columns {
        let column_type =
            ColumnType::parse(&column.r#type).ok_or_else(|| BackendError::Unreachable {
                reason: format!(
                    "storage answered column {:?} of table {:?} with unknown type {:?}",
                    echo(&column.name),
                    echo(&declared.table),
                    echo(&column.r#type)
                ),
            })?;
        columns.insert(column.name.clone(), column_type);
    }
    Ok(TableSchema {
        name: declared.table.clone(),
        kind: TableKind::Custom,
        columns,
    })
}

impl StorageBackend for GrpcStorage {
    fn lockbox_gate(&self) -> Option<cmksim_identity::LockboxGate> {
        Some(cmksim_identity::LockboxGate::new(self.channel.clone()))
    }

    fn append(&self, request: AppendRequest) -> BoxFuture<'_, Result<AppendResult, BackendError>> {
        Box::pin(self.append_batch(request))
    }

    fn query(
        &self,
        spec: QuerySpec,
        schema: TableSchema,
    ) -> BoxFuture<'_, Result<Vec<StoragePart>, BackendError>> {
        Box::pin(self.query_all(spec, schema))
    }

    fn summarize(
        &self,
        spec: QuerySpec,
        _schema: TableSchema,
    ) -> BoxFuture<'_, Result<Option<Vec<SummaryPart>>, BackendError>> {
        Box::pin(self.summarize_all(spec))
    }

    fn custom_table(
        &self,
        workspace: String,
        table: String,
    ) -> BoxFuture<'_, Result<Option<TableSchema>, BackendError>> {
        Box::pin(self.custom_table_of(workspace, table))
    }

    fn declare_custom_table(
        &self,
        workspace: String,
        schema: TableSchema,
    ) -> BoxFuture<'_, Result<TableSchema, BackendError>> {
        Box::pin(self.declare(workspace, schema))
    }
}

fn unreachable(status: &tonic::Status) -> BackendError {
    BackendError::Unreachable {
        reason: format!("{:?}: {}", status.code(), status.message()),
    }
}

/// The cluster a storage refusal names: its message starts `cluster {name} ({ARM id}): ...`.
fn refused_destination(message: &str) -> Destination {
    message
        .split_once(" (/subscriptions/")
        .and_then(|(_, rest)| rest.split_once("): "))
        .map(|(id, _)| Destination::Cluster(format!("/subscriptions/{id}")))
        .unwrap_or(Destination::Shared)
}

fn query_failure(status: &tonic::Status, workspace: &str) -> BackendError {
    match (status.code(), azure_error(status)) {
        (Code::NotFound, _) => BackendError::WorkspaceNotFound {
            workspace: workspace.to_string(),
        },
        (Code::FailedPrecondition | Code::Unavailable | Code::PermissionDenied, Some(azure)) => {
            let destination = refused_destination(status.message());
            let state = if azure.inner_code.is_empty() {
                azure.code
            } else {
                azure.inner_code
            };
            BackendError::Inaccessible {
                destination,
                state: state.to_ascii_lowercase(),
                detail: status.message().to_string(),
            }
        }
        _ => unreachable(status),
    }
}

/// `/subscriptions/{s}/resourceGroups/{rg}/providers/{provider}/{kind}/{name}` → (s, rg, name).
fn parse_arm(id: &str, kind: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        [sub_kw, sub, rg_kw, rg, prov_kw, _provider, k, name]
            if sub_kw.eq_ignore_ascii_case("subscriptions")
                && rg_kw.eq_ignore_ascii_case("resourceGroups")
                && prov_kw.eq_ignore_ascii_case("providers")
                && k.eq_ignore_ascii_case(kind) =>
        {
            Some((sub.to_string(), rg.to_string(), name.to_string()))
        }
        _ => None,
    }
}

/// A workspace ARM id as a `storage.v1.WorkspaceRef`.
pub fn workspace_ref(id: &str) -> Option<sb::WorkspaceRef> {
    parse_arm(id, "workspaces").map(|(subscription_id, resource_group, workspace_name)| {
        sb::WorkspaceRef {
            subscription_id,
            resource_group,
            workspace_name,
        }
    })
}

/// A cluster ARM id as a `storage.v1.ClusterRef`.
pub fn cluster_ref(id: &str) -> Option<sb::ClusterRef> {
    parse_arm(id, "clusters").map(|(subscription_id, resource_group, cluster_name)| {
        sb::ClusterRef {
            subscription_id,
            resource_group,
            cluster_name,
        }
    })
}

/// `shared` → shared storage, a cluster id → that cluster, empty → none.
pub fn destination_of(storage: &str) -> Option<Destination> {
    match storage {
        "" => None,
        s if s.eq_ignore_ascii_case("shared") => Some(Destination::Shared),
        s => Some(Destination::Cluster(s.to_string())),
    }
}

/// A kid with version (`https://v.vault.azure.net/keys/name/version`) as key id + version
/// (`cmksim_proto::kid`); a kid that does not parse is reported whole, without a version.
pub fn key_of(key: &sb::ProtectingKey) -> KeyProtection {
    match &key.key {
        Some(sb::protecting_key::Key::CmkKid(kid)) => match KeyId::parse(kid) {
            Some(id) => KeyProtection::Cmk {
                kid: id.base(),
                version: id.version,
            },
            None => KeyProtection::Cmk {
                kid: kid.clone(),
                version: String::new(),
            },
        },
        Some(sb::protecting_key::Key::Mmk(_)) | None => KeyProtection::Mmk,
    }
}

/// One storage outcome as the front end's; `destination` is where storage routed the batch
/// (`None`: nowhere; a stored or buffered record then counts as shared storage's, which is
/// where a batch without a route would be).
pub fn outcome_of(outcome: &sb::RecordOutcome, routed_to: Option<&Destination>) -> RecordOutcome {
    use sb::record_outcome::Outcome;
    let destination = &routed_to.cloned().unwrap_or(Destination::Shared);
    match &outcome.outcome {
        Some(Outcome::Stored(key)) => RecordOutcome::Stored {
            destination: destination.clone(),
            key: key_of(key),
        },
        Some(Outcome::Buffered(_)) => RecordOutcome::Buffered {
            destination: destination.clone(),
        },
        Some(Outcome::Dropped(reason)) => {
            let reason = match DropReason::try_from(*reason) {
                Ok(DropReason::Unspecified) | Err(_) => DropReason::StorageError,
                Ok(known) => known,
            };
            RecordOutcome::Dropped {
                destination: routed_to.cloned(),
                reason,
                detail: outcome.detail.clone(),
            }
        }
        None => RecordOutcome::Dropped {
            destination: routed_to.cloned(),
            reason: DropReason::StorageError,
            detail: "storage returned an empty outcome".into(),
        },
    }
}

/// A validated record as storage's typed record. A dynamic value travels as a nested
/// `common.v1.Dynamic` (validation checked that it parses and its depth); a dynamic text that
/// does not parse (never after validation) travels as a string.
pub fn encode_record(record: &Record) -> sb::Record {
    record_into_pb(record.clone())
}

/// [`encode_record`] taking the record: its names and strings move into the message (the
/// append path, where the record is not needed after).
pub fn record_into_pb(record: Record) -> sb::Record {
    use sb::value::Kind;
    sb::Record {
        time_unix_ms: record.time_generated.unix_ms(),
        columns: record
            .columns
            .into_iter()
            .map(|(name, value)| {
                let kind = match value {
                    Value::String(s) => Kind::StringValue(s),
                    Value::Long(l) => Kind::LongValue(l),
                    Value::Real(r) => Kind::RealValue(r),
                    Value::Bool(b) => Kind::BoolValue(b),
                    Value::DateTime(t) => Kind::DatetimeUnixMs(t.unix_ms()),
                    Value::Dynamic(text) => match serde_json::from_str(&text) {
                        Ok(json) => Kind::DynamicValue(dynamic_from_json(&json)),
                        Err(_) => Kind::StringValue(text),
                    },
                };
                sb::Column {
                    name,
                    value: Some(sb::Value { kind: Some(kind) }),
                }
            })
            .collect(),
    }
}

/// A storage record back, with the types storage kept ([`crate::record::conform`] still
/// adapts a column whose declared type is wider, e.g. a long stored before a column became
/// real). A column without a value is left out.
pub fn decode_record(record: &sb::Record) -> Record {
    use sb::value::Kind;
    let mut out = Record::new(cmksim_sim::SimTime(record.time_unix_ms));
    for column in &record.columns {
        let Some(kind) = column.value.as_ref().and_then(|v| v.kind.as_ref()) else {
            continue;
        };
        let value = match kind {
            Kind::StringValue(s) => Value::String(s.clone()),
            Kind::LongValue(l) => Value::Long(*l),
            Kind::RealValue(r) => Value::Real(*r),
            Kind::BoolValue(b) => Value::Bool(*b),
            Kind::DatetimeUnixMs(t) => Value::DateTime(cmksim_sim::SimTime(*t)),
            Kind::DynamicValue(d) => Value::Dynamic(dynamic_to_json(d).to_string()),
        };
        out.columns.insert(column.name.clone(), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ColumnType;
    use cmksim_sim::SimTime;

    #[test]
    fn arm_ids_parse_to_references() {
        let ws = workspace_ref("/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.OperationalInsights/workspaces/ws1").unwrap();
        assert_eq!(
            (
                ws.subscription_id.as_str(),
                ws.resource_group.as_str(),
                ws.workspace_name.as_str()
            ),
            ("s1", "rg1", "ws1")
        );
        assert!(workspace_ref("ws1").is_none());
        let c = cluster_ref("/subscriptions/s1/resourcegroups/rg1/providers/Microsoft.OperationalInsights/clusters/c1").unwrap();
        assert_eq!(c.cluster_name, "c1");
        assert_eq!(destination_of("shared"), Some(Destination::Shared));
        assert_eq!(destination_of(""), None);
    }

    #[test]
    fn keys_and_outcomes_map() {
        let cmk = sb::ProtectingKey {
            key: Some(sb::protecting_key::Key::CmkKid(
                "https://kv1.vault.azure.net/keys/k1/0123abcd".into(),
            )),
        };
        assert_eq!(
            key_of(&cmk),
            KeyProtection::Cmk {
                kid: "https://kv1.vault.azure.net/keys/k1".into(),
                version: "0123abcd".into()
            }
        );
        let mmk = sb::ProtectingKey {
            key: Some(sb::protecting_key::Key::Mmk(
                cmksim_proto::common::v1::Empty {},
            )),
        };
        assert_eq!(key_of(&mmk), KeyProtection::Mmk);
        let dropped = sb::RecordOutcome {
            outcome: Some(sb::record_outcome::Outcome::Dropped(
                DropReason::Resuming as i32,
            )),
            detail: "resuming".into(),
        };
        let d = Destination::Cluster("c".into());
        assert!(matches!(
            outcome_of(&dropped, Some(&d)),
            RecordOutcome::Dropped {
                reason: DropReason::Resuming,
                ..
            }
        ));
    }

    #[test]
    fn records_round_trip_through_typed_columns() {
        let record = Record::new(SimTime(5))
            .with("S", Value::String("x".into()))
            .with("L", Value::Long(7))
            .with("R", Value::Real(2.0))
            .with("B", Value::Bool(true))
            .with("D", Value::DateTime(SimTime(99)))
            .with("J", Value::Dynamic("{\"a\":[1,2]}".into()));
        let wire = encode_record(&record);
        let schema = TableSchema {
            name: "T_CL".into(),
            kind: crate::schema::TableKind::Custom,
            columns: [
                ("S", ColumnType::String),
                ("L", ColumnType::Long),
                ("R", ColumnType::Real),
                ("B", ColumnType::Bool),
                ("D", ColumnType::DateTime),
                ("J", ColumnType::Dynamic),
            ]
            .into_iter()
            .map(|(n, t)| (n.to_string(), t))
            .collect(),
        };
        assert_eq!(decode_record(&wire), record);
        assert_eq!(conform(decode_record(&wire), &schema), record);
    }

    #[test]
    fn refusals_name_the_cluster_in_their_message() {
        let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/clusters/c1";
        assert_eq!(
            refused_destination(&format!(
                "cluster c1 ({id}): storage is revoked: key disabled"
            )),
            Destination::Cluster(id.into())
        );
        assert_eq!(refused_destination("no cluster here"), Destination::Shared);
    }
}
