//! `storage.v1.DataPlane`: append with routing decided at ingest time and an outcome per record,
//! queries that span every storage the workspace's data went to, storage state and stats.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use cmksim_proto::common::v1::{DropReason, Empty};
use cmksim_proto::storage::v1 as pb;
use cmksim_sim::SimTime;
use tonic::{Code, Request, Response, Status};

use crate::control::{ResourceKind, ResourceName, Routing};
use crate::data::tier::ScanRequest;
use crate::data::{DataError, Record, Sealing, Tier};
use crate::keyloop::{IngestDecision, Refusal, StateName};
use crate::service::state_view::storage_state;
use crate::service::status::{azure_status, control_status};

use super::convert::{cluster_name, protecting_key, record_from_pb, record_to_pb};
use super::core::{shared_account, ClusterRuntime, Core};
use super::host::ClusterHost;

/// The most records one query returns.
pub const QUERY_RECORDS_MAX: u32 = 100_000;
/// How long an append or query waits for a cluster's first unwrapKey after a restart (real
/// time, bounded polling).
const AEK_WAIT_ROUNDS: u32 = 100;
const AEK_WAIT_STEP: Duration = Duration::from_millis(20);

pub struct DataService {
    pub core: Arc<Core>,
}

fn internal(e: impl std::fmt::Display) -> Status {
    azure_status(Code::Internal, "InternalServerError", 500, &e.to_string())
}

fn data_status(e: DataError) -> Status {
    match e {
        DataError::InvalidName { .. }
        | DataError::InvalidRecord { .. }
        | DataError::RecordTooLarge { .. }
        | DataError::BatchTooLarge { .. }
        | DataError::InvalidTimeRange { .. } => {
            azure_status(Code::InvalidArgument, "BadRequest", 400, &e.to_string())
        }
        DataError::PermanentlyUnreadable { .. } => azure_status(
            Code::FailedPrecondition,
            "StorageShredded",
            410,
            &e.to_string(),
        ),
        DataError::QueryTooLarge { .. } | DataError::TooManyGroups { .. } => azure_status(
            Code::ResourceExhausted,
            "QueryTooLarge",
            400,
            &e.to_string(),
        ),
        other => internal(other),
    }
}

fn aek_missing(message: String) -> Status {
    azure_status(Code::Unavailable, "StorageStarting", 503, &message)
}

/// A refused cluster read, naming the cluster and its state (`inner_code` = the state word).
fn cluster_refusal(rt: &ClusterRuntime, refusal: &Refusal) -> Status {
    let (code, azure_code, http) = match refusal.state {
        StateName::Revoked | StateName::Resuming => {
            (Code::FailedPrecondition, "KeyAccessRevoked", 403)
        }
        StateName::Unavailable => (Code::Unavailable, "KeyVaultUnavailable", 503),
        // Gone for good, as a purged account answers (`DataError::PermanentlyUnreadable`).
        StateName::Shredded => (Code::FailedPrecondition, "StorageShredded", 410),
        StateName::Provisioning
        | StateName::HealthyMmk
        | StateName::HealthyCmk
        | StateName::Degraded
        | StateName::Deleted => (Code::FailedPrecondition, "Conflict", 409),
    };
    let message = format!(
        "cluster {} ({}): storage is {}: {}",
        rt.name, rt.arm_id, refusal.state, refusal.reason
    );
    cmksim_proto::azure::azure_status(code, azure_code, http, refusal.state.as_str(), &message)
}

/// `n` records with one outcome, as the answer's runs: one run, or none for no records.
fn uniform(outcome: pb::record_outcome::Outcome, detail: String, n: usize) -> Vec<pb::OutcomeRun> {
    if n == 0 {
        return Vec::new();
    }
    vec![pb::OutcomeRun {
        outcome: Some(pb::RecordOutcome {
            outcome: Some(outcome),
            detail,
        }),
        // A batch is far below 2^32 records (the data plane's batch bound); saturated if not.
        count: u32::try_from(n).unwrap_or(u32::MAX),
    }]
}

fn dropped(reason: DropReason, detail: &str, n: usize) -> Vec<pb::OutcomeRun> {
    uniform(
        pb::record_outcome::Outcome::Dropped(reason as i32),
        detail.to_string(),
        n,
    )
}

/// Runs a data-plane write (which flushes to disk before it returns) on tokio's blocking pool,
/// so that a disk flush never holds one of the few runtime workers the gRPC edges share (on two
/// cores, two workers: an append holding one stalled every other call, issue 15). Bounded by
/// tokio's blocking pool (512 threads by default) and, in practice, by the calls in flight; the
/// data plane's write lock still serialises the writes themselves. A write that panicked is an
/// internal error, typed like any other.
///
/// On a current-thread runtime (the simulated world: every host on one thread, paused clock)
/// the write runs in place, as Key Vault's audit flush does: there is no other worker to keep
/// free, and a write finishing on another thread at a moment of the wall clock's choosing would
/// make the order of simultaneous simulated events differ from run to run.
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Result<R, Status> {
    if tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::CurrentThread
    {
        return Ok(f());
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| internal(format!("a storage write task ended abnormally: {e}")))
}

/// Waits (bounded) until a cluster storage under the CMK has its AEK in memory.
async fn wait_for_aek(host: &ClusterHost) {
    for _ in 0..AEK_WAIT_ROUNDS {
        if host.has_aek() {
            return;
        }
        tokio::time::sleep(AEK_WAIT_STEP).await;
    }
}

/// The workspace an ARM id names (404 `ResourceNotFound` when it names none).
pub(super) fn parse_workspace(id: &str) -> Result<ResourceName, Status> {
    ResourceName::parse_arm_id(id, ResourceKind::Workspace).ok_or_else(|| {
        azure_status(
            Code::NotFound,
            "ResourceNotFound",
            404,
            &format!(
                "workspace_id {:?} is not a workspace resource id",
                cmksim_sim::text::echo(id)
            ),
        )
    })
}

impl DataService {
    fn count(&self, destination: &str, workspace: &str, runs: &[pb::OutcomeRun]) {
        self.core
            .stats()
            .update(|stats| super::persist::count(stats, destination, workspace, runs));
    }

    async fn append_to_cluster(
        &self,
        rt: &Arc<ClusterRuntime>,
        workspace: &str,
        table: &str,
        records: Vec<Record>,
        now: SimTime,
    ) -> Result<Vec<pb::OutcomeRun>, Status> {
        let n = records.len();
        match rt.handle.ingest_decision() {
            IngestDecision::Store { .. } => {
                if !rt.host.has_aek() {
                    wait_for_aek(&rt.host).await;
                }
                let now = self.core.now().max(now);
                let (core, host_rt) = (self.core.clone(), rt.clone());
                let (workspace_owned, table_owned) = (workspace.to_string(), table.to_string());
                let receipt = blocking(move || {
                    host_rt.host.seal(|sealing, key| {
                        core.data
                            .append(
                                &host_rt.account,
                                sealing,
                                &workspace_owned,
                                &table_owned,
                                &records,
                                now,
                            )
                            .map(|_| key)
                    })
                })
                .await?
                .map_err(aek_missing)?
                .map_err(data_status)?;
                let key = protecting_key(&receipt);
                Ok(uniform(
                    pb::record_outcome::Outcome::Stored(key),
                    String::new(),
                    n,
                ))
            }
            IngestDecision::Buffer => {
                let (core, account) = (self.core.clone(), rt.account.clone());
                let (workspace_owned, table_owned) = (workspace.to_string(), table.to_string());
                let appended = blocking(move || {
                    core.data
                        .buffer_append(&account, &workspace_owned, &table_owned, &records, now)
                })
                .await?;
                match appended {
                    Ok(_) => Ok(uniform(
                        pb::record_outcome::Outcome::Buffered(Empty {}),
                        format!(
                            "Key Vault unreachable beyond the outage grace: buffered under the Microsoft-managed key on cluster {}",
                            rt.name
                        ),
                        n,
                    )),
                    Err(DataError::BufferFull { .. }) => Ok(dropped(
                        DropReason::BufferFull,
                        &format!(
                            "{}: the outage buffer of the cluster is full",
                            DropReason::BufferFull.label()
                        ),
                        n,
                    )),
                    Err(e) => Err(data_status(e)),
                }
            }
            IngestDecision::Drop(reason) => {
                let reason = reason.to_pb();
                let word = reason.label();
                let refusal = rt.handle.query_allowed().err();
                let detail = match refusal {
                    Some(r) => format!("{word}: cluster {}: {}", rt.name, r.reason),
                    None => format!("{word}: cluster {}", rt.name),
                };
                Ok(dropped(reason, &detail, n))
            }
        }
    }
}

#[tonic::async_trait]
impl pb::data_plane_server::DataPlane for DataService {
    async fn append(
        &self,
        request: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        let mut req = request.into_inner();
        let core = &self.core;
        let resource = parse_workspace(&req.workspace_id)?;
        let records: Vec<Record> = std::mem::take(&mut req.records)
            .into_iter()
            .enumerate()
            .map(|(i, r)| record_from_pb(&req.table, i, r))
            .collect::<Result<_, _>>()
            .map_err(|e| azure_status(Code::InvalidArgument, "BadRequest", 400, &e))?;
        let now = core.now();
        let (routing, location) = {
            let control = core.control();
            let routing = control
                .routing(&resource, now)
                .map_err(|e| control_status(&control, &e))?;
            let location = control
                .get_workspace(&resource)
                .map(|w| w.location.clone())
                .unwrap_or_default();
            (routing, location)
        };
        let workspace = req.workspace_id.clone();
        let n = records.len();
        let (routed_to, outcomes) = match routing {
            Routing::Shared => {
                let account = shared_account(&location);
                if !core.data.account_exists(&account).map_err(data_status)? {
                    match core.data.create_account(&account, false, now) {
                        Ok(()) | Err(DataError::AccountExists(_)) => {}
                        Err(e) => return Err(data_status(e)),
                    }
                }
                if n > 0 {
                    let (data, workspace, table) =
                        (core.data.clone(), workspace.clone(), req.table.clone());
                    blocking(move || {
                        data.append(&account, Sealing::Mmk, &workspace, &table, &records, now)
                    })
                    .await?
                    .map_err(data_status)?;
                }
                let key = protecting_key(&crate::data::KeyRef::Mmk);
                let outcomes = uniform(pb::record_outcome::Outcome::Stored(key), String::new(), n);
                ("shared".to_string(), outcomes)
            }
            Routing::DropNotProvisioned { cluster } => {
                let name = crate::control::short(&cluster).to_string();
                let reason = DropReason::NotProvisioned;
                let outcomes = dropped(
                    reason,
                    &format!("{}: cluster {name} has not finished provisioning; data sent before it completes is dropped and not recoverable", reason.label()),
                    n,
                );
                (cluster, outcomes)
            }
            Routing::Cluster {
                cluster,
                cluster_id,
            } => {
                let rt = core
                    .runtime(&cluster_id)
                    .ok_or_else(|| internal(format!("cluster {cluster} has no running storage")))?;
                let outcomes = if n == 0 {
                    Vec::new()
                } else {
                    self.append_to_cluster(&rt, &workspace, &req.table, records, now)
                        .await?
                };
                (cluster, outcomes)
            }
        };
        self.count(&routed_to, &workspace, &outcomes);
        Ok(Response::new(pb::AppendResponse {
            routed_to,
            runs: outcomes,
        }))
    }

    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let req = request.into_inner();
        let core = &self.core;
        let resource = parse_workspace(&req.workspace_id)?;
        let now = core.now();
        let location = {
            let control = core.control();
            control
                .get_workspace(&resource)
                .map_err(|e| control_status(&control, &e))?
                .location
                .clone()
        };
        let destinations = core
            .history()
            .get(&resource.key(ResourceKind::Workspace))
            .cloned()
            .unwrap_or_default();
        // Check every cluster first: a refused storage fails the whole query, naming it.
        let mut clusters = Vec::new();
        for d in &destinations {
            let Some(rt) = core.runtime(&d.cluster_id) else {
                continue; // purged: its data is gone for good
            };
            rt.handle
                .query_allowed()
                .map_err(|r| cluster_refusal(&rt, &r))?;
            if !rt.host.has_aek() {
                wait_for_aek(&rt.host).await;
            }
            clusters.push(rt);
        }
        let from = SimTime(req.from_unix_ms);
        let to = SimTime(if req.to_unix_ms == 0 {
            i64::MAX
        } else {
            req.to_unix_ms
        });
        let limit = match req.limit {
            0 => QUERY_RECORDS_MAX,
            l => l.min(QUERY_RECORDS_MAX),
        } as usize;
        let pushdown = KqlPushdown::of(&req)?;
        let summarized = pushdown.as_ref().is_some_and(|p| p.plan.is_some());
        let mut rows = Earliest::new(limit);
        let mut parts = Vec::new();
        let mut seq = 0usize;
        let mut read = |storage: &str,
                        account: &str,
                        host: Option<&ClusterHost>,
                        rows: &mut Earliest|
         -> Result<(), Status> {
            let (mut count, mut scanned) = (0u64, 0u64);
            // A summarized part: its groups' bytes and the kept rows served from cold copies.
            let mut summary: Option<(Vec<u8>, u64)> = None;
            let mut scan = |aek: Option<&crate::data::Aek>| {
                let request = ScanRequest {
                    account,
                    aek,
                    workspace: &req.workspace_id,
                    table: &req.table,
                    from,
                    to,
                    now,
                };
                match &pushdown {
                    Some(KqlPushdown {
                        plan: Some(plan),
                        columns,
                        filter,
                        now_ms,
                    }) => {
                        let done = core.data.summarize_rows(
                            &request,
                            &crate::data::RowScan {
                                columns,
                                filter: filter.as_ref(),
                                now_ms: *now_ms,
                            },
                            plan,
                        )?;
                        scanned += done.stats.records;
                        count += done.groups.rows();
                        summary = Some((plan.encode(&done.groups), done.kept_from_cold));
                        Ok(crate::server::blocks::BlockScan {
                            blocks_from_hot: done.stats.served_from_hot,
                            blocks_from_cold: done.stats.served_from_cold,
                        })
                    }
                    None => core
                        .data
                        .scan_with_tiers(&request, &mut |tier, key, r: Record| {
                            scanned += 1;
                            count += 1;
                            seq += 1;
                            rows.offer(r.time_generated_ms, seq, || pb::QueriedRecord {
                                record: Some(record_to_pb(&r)),
                                storage: storage.to_string(),
                                tier: match tier {
                                    Tier::Hot => pb::Tier::Hot,
                                    _ => pb::Tier::Cold,
                                } as i32,
                                key: Some(protecting_key(key)),
                            });
                        }),
                    Some(p) => p.scan(
                        &core.data,
                        &request,
                        &mut scanned,
                        &mut |tier, key, time_ms, row| {
                            count += 1;
                            seq += 1;
                            rows.offer(time_ms, seq, || pb::QueriedRecord {
                                record: Some(p.record(time_ms, row)),
                                storage: storage.to_string(),
                                tier: match tier {
                                    Tier::Hot => pb::Tier::Hot,
                                    _ => pb::Tier::Cold,
                                } as i32,
                                key: Some(protecting_key(key)),
                            });
                        },
                    ),
                }
            };
            let scan = match host {
                Some(h) => h.with_aek(&mut scan),
                None => scan(None),
            };
            let scan = scan.map_err(|e| match e {
                DataError::KeyUnavailable { .. } => aek_missing(format!(
                    "{storage}: the account key is not in memory yet: {e}"
                )),
                other => data_status(other),
            })?;
            let (kql_groups, records_from_cold) = summary.unwrap_or_default();
            parts.push(pb::QueriedPart {
                storage: storage.to_string(),
                records: count,
                blocks_from_hot: scan.blocks_from_hot,
                blocks_from_cold: scan.blocks_from_cold,
                scanned,
                kql_groups,
                records_from_cold,
            });
            Ok(())
        };
        let shared = shared_account(&location);
        if core.data.account_exists(&shared).map_err(data_status)? {
            read("shared", &shared, None, &mut rows)?;
        }
        for rt in &clusters {
            read(&rt.arm_id, &rt.account, Some(&rt.host), &mut rows)?;
        }
        if summarized {
            let total = parts.iter().map(|p| p.records).sum();
            return Ok(Response::new(pb::QueryResponse {
                records: Vec::new(),
                total_matched: total,
                truncated: false,
                parts,
                kql_summarized: true,
            }));
        }
        let total = rows.matched;
        let records = rows.into_sorted();
        Ok(Response::new(pb::QueryResponse {
            records,
            total_matched: total,
            truncated: total > limit as u64,
            parts,
            kql_summarized: false,
        }))
    }

    async fn get_storage_state(
        &self,
        request: Request<pb::ClusterRef>,
    ) -> Result<Response<pb::StorageState>, Status> {
        let resource = cluster_name(Some(request.get_ref()));
        let core = &self.core;
        let (arm_id, cluster_id) = {
            let control = core.control();
            match control
                .state()
                .clusters
                .get(&resource.key(ResourceKind::Cluster))
            {
                Some(c) => (c.id.clone(), c.cluster_id.clone()),
                None => {
                    return Err(control_status(
                        &control,
                        &crate::control::ControlError::ClusterNotFound(
                            resource.arm_id(ResourceKind::Cluster),
                        ),
                    ))
                }
            }
        };
        let rt = core
            .runtime(&cluster_id)
            .ok_or_else(|| internal(format!("cluster {arm_id} has no running storage")))?;
        Ok(Response::new(storage_state(&arm_id, &rt.handle)))
    }

    async fn get_stats(
        &self,
        request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::Stats>, Status> {
        let req = request.into_inner();
        let core = &self.core;
        let mut out = pb::Stats::default();
        let mut names = Vec::new();
        core.stats().read(|stats| {
            for (dest, by_ws) in stats.iter() {
                if !req.cluster_resource_id.is_empty()
                    && !dest.eq_ignore_ascii_case(&req.cluster_resource_id)
                {
                    continue;
                }
                for (ws, c) in by_ws {
                    if !req.workspace_id.is_empty() && !ws.eq_ignore_ascii_case(&req.workspace_id) {
                        continue;
                    }
                    out.accepted += c.accepted;
                    out.stored += c.stored;
                    out.buffered += c.buffered;
                    out.drained += c.drained;
                    for (reason, n) in &c.dropped {
                        *out.dropped.entry(reason.clone()).or_default() += n;
                    }
                }
            }
        });
        for rt in core.runtimes() {
            if req.cluster_resource_id.is_empty()
                || rt.arm_id.eq_ignore_ascii_case(&req.cluster_resource_id)
            {
                names.push(format!("storage/{}", rt.name));
            }
        }
        for e in core.events.of_kind("storage.poll.") {
            if !names.contains(&e.source) {
                continue;
            }
            match e.kind.as_str() {
                "storage.poll.succeeded" => out.polls_succeeded += 1,
                "storage.poll.transient" => out.polls_transient += 1,
                "storage.poll.denied" => out.polls_denied += 1,
                _ => {}
            }
        }
        Ok(Response::new(out))
    }
}

/// A query's KQL pushdown (`QueryRequest.kql`): the query's projection of the caller's columns
/// and its leading filters bound to them, applied by `DataPlane::scan_rows`; and, when the
/// caller asks for it (`kql_summarize`) and the query has one, its summarize's plan, applied by
/// `DataPlane::summarize_rows`.
struct KqlPushdown {
    columns: Vec<cmksim_kql::Column>,
    filter: Option<cmksim_kql::RowFilter>,
    now_ms: i64,
    plan: Option<cmksim_kql::SummarizePlan>,
}

impl KqlPushdown {
    /// `None` when the request carries no KQL. A query or a column type that does not parse,
    /// or a filter that does not bind, is the caller's error (400).
    fn of(req: &pb::QueryRequest) -> Result<Option<KqlPushdown>, Status> {
        if req.kql.is_empty() {
            return Ok(None);
        }
        let bad = |m: String| azure_status(Code::InvalidArgument, "BadRequest", 400, &m);
        let query = cmksim_kql::parse(&req.kql).map_err(|e| bad(format!("kql: {e}")))?;
        let all = req
            .kql_columns
            .iter()
            .map(|c| {
                cmksim_kql::ColumnType::from_name(&c.r#type)
                    .map(|t| cmksim_kql::Column::new(c.name.clone(), t))
                    .ok_or_else(|| {
                        bad(format!(
                            "kql column {:?}: unknown type {:?}",
                            cmksim_sim::text::echo(&c.name),
                            cmksim_sim::text::echo(&c.r#type)
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let columns = query.projection(&req.table, &all).unwrap_or(all);
        let filter = query
            .row_filter(&req.table, &columns)
            .map_err(|e| bad(format!("kql: {e}")))?;
        let plan = if req.kql_summarize {
            query
                .summarize_plan(&req.table, &columns)
                .map_err(|e| bad(format!("kql: {e}")))?
        } else {
            None
        };
        Ok(Some(KqlPushdown {
            columns,
            filter,
            now_ms: req.kql_now_unix_ms,
            plan,
        }))
    }

    fn scan(
        &self,
        data: &crate::data::DataPlane,
        request: &ScanRequest<'_>,
        scanned: &mut u64,
        visit: &mut crate::data::rows::VisitRow<'_>,
    ) -> Result<crate::server::blocks::BlockScan, DataError> {
        let stats = data.scan_rows(
            request,
            &crate::data::RowScan {
                columns: &self.columns,
                filter: self.filter.as_ref(),
                now_ms: self.now_ms,
            },
            visit,
        )?;
        *scanned += stats.records;
        Ok(crate::server::blocks::BlockScan {
            blocks_from_hot: stats.served_from_hot,
            blocks_from_cold: stats.served_from_cold,
        })
    }

    /// A kept row as a wire record: its projected cells, nulls absent (as the wire says).
    fn record(&self, time_ms: i64, row: Vec<cmksim_kql::Value>) -> pb::Record {
        use cmksim_kql::Value as V;
        use pb::value::Kind;
        let columns = self
            .columns
            .iter()
            .zip(row)
            .filter_map(|(c, cell)| {
                let kind = match cell {
                    V::Null => return None,
                    _ if c.name == "TimeGenerated" => return None,
                    V::String(s) => Kind::StringValue(s),
                    V::Long(n) => Kind::LongValue(n),
                    V::Real(x) => Kind::RealValue(x),
                    V::Bool(b) => Kind::BoolValue(b),
                    V::DateTime(ms) => Kind::DatetimeUnixMs(ms),
                    // Storage holds no timespans; a long is its nearest wire form.
                    V::TimeSpan(ms) => Kind::LongValue(ms),
                    V::Dynamic(j) => {
                        Kind::DynamicValue(cmksim_proto::dynamic::dynamic_from_json(&j))
                    }
                };
                Some(pb::Column {
                    name: c.name.clone(),
                    value: Some(pb::Value { kind: Some(kind) }),
                })
            })
            .collect();
        pb::Record {
            time_unix_ms: time_ms,
            columns,
        }
    }
}

/// The `limit` earliest rows of a query by (TimeGenerated, scan order), kept while scanning: a
/// max-heap whose top is the latest row kept, so a query over more rows than it returns holds
/// only what it returns (at most `limit` rows, never the whole range), and a row that cannot
/// make the cut is never converted to its wire form.
struct Earliest {
    limit: usize,
    heap: BinaryHeap<EarliestRow>,
    /// Every row offered (the query's `total_matched`).
    matched: u64,
}

struct EarliestRow {
    time_ms: i64,
    seq: usize,
    record: pb::QueriedRecord,
}

impl PartialEq for EarliestRow {
    fn eq(&self, other: &Self) -> bool {
        (self.time_ms, self.seq) == (other.time_ms, other.seq)
    }
}

impl Eq for EarliestRow {}

impl PartialOrd for EarliestRow {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EarliestRow {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.time_ms, self.seq).cmp(&(other.time_ms, other.seq))
    }
}

impl Earliest {
    fn new(limit: usize) -> Earliest {
        Earliest {
            limit,
            heap: BinaryHeap::with_capacity(limit.min(4_096)),
            matched: 0,
        }
    }

    /// Counts a row and keeps it if it is among the `limit` earliest so far.
    fn offer(&mut self, time_ms: i64, seq: usize, record: impl FnOnce() -> pb::QueriedRecord) {
        self.matched += 1;
        if self.heap.len() < self.limit {
            self.heap.push(EarliestRow {
                time_ms,
                seq,
                record: record(),
            });
        } else if let Some(mut latest) = self.heap.peek_mut() {
            if (time_ms, seq) < (latest.time_ms, latest.seq) {
                *latest = EarliestRow {
                    time_ms,
                    seq,
                    record: record(),
                };
            }
        }
        debug_assert!(self.heap.len() <= self.limit);
    }

    /// The rows kept, earliest first.
    fn into_sorted(self) -> Vec<pb::QueriedRecord> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|row| row.record)
            .collect()
    }
}

#[cfg(test)]
mod earliest_tests {
    use super::*;

    fn record(n: i64) -> pb::QueriedRecord {
        pb::QueriedRecord {
            storage: n.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_the_earliest_rows_in_order_and_counts_all() {
        let times = [50, 10, 40, 10, 30, 20, 60, 5, 10];
        let mut kept = Earliest::new(4);
        for (seq, t) in times.iter().enumerate() {
            kept.offer(*t, seq, || record(seq as i64));
        }
        assert_eq!(kept.matched, 9);
        // (5, #7), (10, #1), (10, #3), (10, #8): ties keep scan order.
        let order: Vec<String> = kept.into_sorted().into_iter().map(|r| r.storage).collect();
        assert_eq!(order, vec!["7", "1", "3", "8"]);
    }

    #[test]
    fn a_row_that_misses_the_cut_is_never_built() {
        let mut kept = Earliest::new(1);
        kept.offer(1, 0, || record(0));
        kept.offer(2, 1, || panic!("a later row is not converted"));
        assert_eq!(kept.matched, 2);
        assert_eq!(kept.into_sorted().len(), 1);
    }
}
