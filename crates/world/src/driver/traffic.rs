//! The driver's traffic: agents, ingest and query steps, and the queries expectations need.
//!
//! A scenario agent becomes the ingestion crate's real agent (seed 003's behaviour: retry every
//! 8 minutes for 2 hours, then queue, dropping performance data first), configured from the
//! agent's tables: the Heartbeat rate, the Perf rate and counter count, and Event or Syslog
//! records per hour. Each agent runs as its own task of the driver client from T+0 to the end.
//!
//! An `ingest` step sends synthetic records of the table's standard schema (strings, numbers,
//! times derived from the record's index); a `query` step and every `query … at` expectation
//! query through the ingestion front end, which records `query.ok` or `query.failed` itself.
//! With `kql` they call `ingest.v1.Query/Kql` instead: a step over `[now - since, now]` (or with
//! no range when `since` is absent), a probe with no range (the query's own `TimeGenerated`
//! filters bound it); the front end records the same two events, `records` being result rows.

use std::time::Duration;

use cmksim_ingest::agent::{
    AgentConfig, AgentDriver, AgentMachine, AgentPolicy, OsType, PerfCounter, RecordSource,
};
use cmksim_ingest::record::{ColumnType, Record, Value};
use cmksim_proto::common::v1 as cp;
use cmksim_proto::ingest::v1 as ip;
use cmksim_scenario::model;
use cmksim_sim::SimTime;

use super::{Driver, StepError};

/// The counters an agent reports, in order; a `Perf` table with `records = n` uses the first n.
const PERF_COUNTERS: [(&str, &str, &str, f64, f64); 5] = [
    ("Processor", "% Processor Time", "_Total", 0.0, 100.0),
    ("Memory", "Available MBytes", "", 256.0, 16_384.0),
    ("LogicalDisk", "% Free Space", "C:", 5.0, 95.0),
    ("Network Interface", "Bytes Total/sec", "eth0", 0.0, 1.0e8),
    ("System", "Processor Queue Length", "", 0.0, 16.0),
];

/// Records one `ingest` or `upload` call carries at most; a step with more makes several calls,
/// in order (each well under the 1 MiB batch limit). Validation bounds a step's records
/// (`BATCH_RECORDS_MAX`), so the number of calls is bounded too.
const CALL_RECORDS_MAX: u64 = 1_000;

/// The ingestion agent configuration for a scenario agent.
pub fn agent_config(agent: &model::Agent) -> AgentConfig {
    // Tables an agent does not send get an interval longer than any scenario (never due).
    let never = Duration::from_secs(10 * 365 * 86_400);
    let mut config = AgentConfig::windows(&agent.name, &Driver::workspace_id(&agent.workspace));
    config.heartbeat_interval = never;
    config.perf_interval = never;
    config.perf_counters.clear();
    config.events_per_hour = 0;
    for table in &agent.tables {
        match table.table.as_str() {
            "Heartbeat" => config.heartbeat_interval = table.every,
            "Perf" => {
                config.perf_interval = table.every;
                config.perf_counters = PERF_COUNTERS
                    .iter()
                    .cycle()
                    .take(table.records.max(1) as usize)
                    .map(|(o, c, i, lo, hi)| PerfCounter::new(o, c, i, *lo, *hi))
                    .collect();
            }
            "Event" | "Syslog" => {
                if table.table == "Syslog" {
                    config.os_type = OsType::Linux;
                }
                let per_hour = table.records as f64 * 3600.0 / table.every.as_secs_f64().max(1.0);
                config.events_per_hour = per_hour.round().clamp(1.0, u32::MAX as f64) as u32;
            }
            _ => {}
        }
    }
    config
}

/// The columns of a standard table (an `ingest` step sends only those).
fn standard_columns(table: &str) -> Result<Vec<(String, ColumnType)>, StepError> {
    let schema = cmksim_ingest::schema::standard_table(table).ok_or_else(|| StepError {
        code: "UnknownTable".into(),
        status: None,
        line: None,
        message: format!(
            "ingest steps send standard tables only (Heartbeat, Perf, Event, Syslog), not {table}"
        ),
    })?;
    Ok(schema.columns.into_iter().collect())
}

/// Records `range` of `total` synthetic records with `columns`, values derived from each
/// record's index, record `i` at `now - (total - i)` ms (so the last is 1 ms before `now`).
pub fn synthetic_records(
    columns: &[(String, ColumnType)],
    range: std::ops::Range<u64>,
    total: u64,
    now: SimTime,
) -> Vec<ip::Record> {
    debug_assert!(range.end <= total, "records past the total");
    range
        .map(|i| {
            let at = now.sub(Duration::from_millis(total - i));
            let mut record = Record::new(at);
            for (column, kind) in columns {
                let value = match kind {
                    ColumnType::String => Value::String(format!("{column}-{i}")),
                    ColumnType::Long => Value::Long(i as i64),
                    ColumnType::Real => Value::Real(i as f64),
                    ColumnType::Bool => Value::Bool(i % 2 == 0),
                    ColumnType::DateTime => Value::DateTime(at),
                    ColumnType::Dynamic => Value::Dynamic("{}".into()),
                };
                record.columns.insert(column.clone(), value);
            }
            cmksim_ingest::grpc::convert::record_to_pb(&record)
        })
        .collect()
}

fn sim_time(t: SimTime) -> Option<cp::SimTime> {
    Some(cp::SimTime {
        unix_ms: t.unix_ms(),
    })
}

impl Driver {
    /// Starts every agent of the scenario as its own task, from now to the scenario's end.
    pub(super) fn start_agents(&self) {
        let end = self.start.add(self.scenario.meta.duration);
        for agent in &self.scenario.agents {
            let config = agent_config(agent);
            let rng = self.seeds.source(&format!("agent/{}", agent.name));
            let source = RecordSource::new(config.clone(), rng, self.start);
            let policy = AgentPolicy::from_profile(
                &self.scenario.profile.agent,
                config.send_interval,
                config.batch_records_max,
            );
            let machine = AgentMachine::new(&agent.name, &agent.workspace, policy, self.start);
            let mut driver = AgentDriver::new(
                source,
                machine,
                self.ingestion.clone(),
                self.clock.clone(),
                self.events.clone(),
            );
            tokio::spawn(async move { driver.run_until(end).await });
        }
    }

    /// Schedules the queries that `query … at` expectations judge.
    pub(super) fn start_query_probes(&self) {
        for probe in self.scenario.query_probes() {
            let mut query = self.query.clone();
            let clock = self.clock.clone();
            let at = self.start.add(probe.offset);
            let since_start = self.start;
            tokio::spawn(async move {
                clock.sleep_until(at).await;
                // The front end records the probe's `query.ok` / `query.failed`, which is what
                // the oracle judges; the answer itself is not needed here. A refusal is the
                // expected outcome of a `fails` probe, so it is only traced.
                let answered = match &probe.kql {
                    Some(text) => query
                        .kql(kql_request(&probe.workspace, text, None))
                        .await
                        .map(|_| ()),
                    None => query
                        .query(probe_request(&probe.workspace, since_start, clock.now()))
                        .await
                        .map(|_| ()),
                };
                if let Err(status) = answered {
                    tracing::debug!(
                        workspace = %probe.workspace,
                        code = ?status.code(),
                        "probe query refused: {}",
                        status.message()
                    );
                }
            });
        }
    }

    pub(super) async fn ingest(
        &mut self,
        workspace: &str,
        table: &str,
        records: u64,
    ) -> Result<(), StepError> {
        let columns = standard_columns(table)?;
        self.send_synthetic(workspace, table, &columns, Vec::new(), records)
            .await
    }

    /// An `upload` step: the rule's stream, typed by its declaration, to every table its data
    /// flows send the stream to, declaring the stream's columns as the real service does for a
    /// custom table.
    pub(super) async fn upload(
        &mut self,
        dcr: &str,
        stream: &str,
        records: u64,
    ) -> Result<(), StepError> {
        let refused = |message: String| StepError {
            code: "InvalidStream".into(),
            status: None,
            line: None,
            message,
        };
        let rule = self
            .scenario
            .world
            .dcrs
            .iter()
            .find(|d| d.name == dcr)
            .cloned()
            .ok_or_else(|| refused(format!("no data collection rule `{dcr}`")))?;
        let declared = rule
            .stream(stream)
            .ok_or_else(|| refused(format!("rule `{dcr}` declares no stream `{stream}`")))?;
        let mut columns = Vec::new();
        let mut declare = Vec::new();
        for (name, stream_type) in &declared.columns {
            if name == cmksim_ingest::schema::TIME_GENERATED {
                continue; // the record's own time
            }
            let column_type = ColumnType::parse(stream_type.table_type())
                .ok_or_else(|| refused(format!("column `{name}` has no table type")))?;
            columns.push((name.clone(), column_type));
            declare.push(ip::ColumnDeclaration {
                name: name.clone(),
                r#type: stream_type.table_type().to_string(),
            });
        }
        for table in rule.tables_of(stream) {
            self.send_synthetic(&rule.workspace, table, &columns, declare.clone(), records)
                .await?;
        }
        Ok(())
    }

    /// Sends `records` synthetic records of `columns` to `table`, [`CALL_RECORDS_MAX`] a call.
    async fn send_synthetic(
        &mut self,
        workspace: &str,
        table: &str,
        columns: &[(String, ColumnType)],
        declare_columns: Vec<ip::ColumnDeclaration>,
        records: u64,
    ) -> Result<(), StepError> {
        let now = self.clock.now();
        let mut start = 0;
        while start < records {
            let end = records.min(start + CALL_RECORDS_MAX);
            let request = ip::IngestRequest {
                workspace_id: Driver::workspace_id(workspace),
                table: table.to_string(),
                records: synthetic_records(columns, start..end, records, now),
                declare_columns: declare_columns.clone(),
            };
            self.ingestion.ingest(request).await?;
            start = end;
        }
        Ok(())
    }

    pub(super) async fn query_step(
        &mut self,
        workspace: &str,
        table: Option<&str>,
        since: Option<Duration>,
    ) -> Result<(), StepError> {
        let now = self.clock.now();
        let from = since.map(|d| now.sub(d)).unwrap_or(SimTime(0));
        let mut request = probe_request(workspace, from, now);
        if let Some(table) = table {
            request.table = table.to_string();
        }
        self.query.query(request).await?;
        Ok(())
    }

    /// A `query` step with `kql`: over the last `since` when given, else over whatever the
    /// query's own `TimeGenerated` filters allow.
    pub(super) async fn kql_step(
        &mut self,
        workspace: &str,
        kql: &model::KqlQuery,
        since: Option<Duration>,
    ) -> Result<(), StepError> {
        let now = self.clock.now();
        let range = since.map(|d| (now.sub(d), now));
        self.query
            .kql(kql_request(workspace, &kql.text, range))
            .await?;
        Ok(())
    }
}

/// A KQL query of a workspace over `[from, to]`, or with no range beyond the query's own.
fn kql_request(workspace: &str, text: &str, range: Option<(SimTime, SimTime)>) -> ip::KqlRequest {
    let (from, to) = match range {
        Some((from, to)) => (sim_time(from), sim_time(to.add(Duration::from_millis(1)))),
        None => (None, None),
    };
    ip::KqlRequest {
        workspace_id: Driver::workspace_id(workspace),
        query: text.to_string(),
        from,
        to,
    }
}

/// A query of a workspace's Heartbeat rows in `[from, to]`.
pub(super) fn probe_request(workspace: &str, from: SimTime, to: SimTime) -> ip::QueryRequest {
    ip::QueryRequest {
        workspace_id: Driver::workspace_id(workspace),
        table: "Heartbeat".into(),
        from: sim_time(from),
        to: sim_time(to.add(Duration::from_millis(1))),
        filters: Vec::new(),
        count_only: false,
        limit: 0,
        order: 0,
    }
}
