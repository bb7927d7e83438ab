//! KQL over a workspace: the Logs Query API's queries, run by the front end that already knows
//! where a workspace's data lives.
//!
//! A query is parsed first (a syntax error is a 400 with line and column, before any storage is
//! asked), then each table it names is read once over the time range: the intersection of the
//! caller's timespan and the bounds the query's own `TimeGenerated` filters imply
//! (`cmksim_kql::Query::time_bounds`), which is what the block scan is narrowed to. Reading goes
//! through the same path as a plain query, so a storage that is revoked or unavailable fails the
//! query naming the cluster and its state, exactly as `Query` does. Then the query runs over the
//! decoded rows (`cmksim_kql::execute`).
//!
//! Limits: each table contributes at most [`KQL_SOURCE_ROWS_MAX`] rows (storage's own cap per
//! read); a table with more in range refuses the query (narrow the timespan) rather than
//! answering from a silent sample.

use std::collections::BTreeMap;

use cmksim_kql as kql;
use cmksim_sim::SimTime;

use super::{workspace_name, Frontend, EVENT_SOURCE};
use crate::error::{ErrorClass, ErrorShape, QueryError};
use crate::events::IngestEvent;
use crate::query::{Order, QuerySpec, TimeRange};
use crate::record::{ColumnType, Value};

/// Most rows one table contributes to a query.
pub const KQL_SOURCE_ROWS_MAX: u32 = 100_000;
/// The widest range a query without bounds reads: all of simulated time that storage can hold.
const RANGE_UNBOUNDED: TimeRange = TimeRange {
    from: SimTime(i64::MIN / 4),
    to: SimTime(i64::MAX / 4),
};

/// Why a KQL query failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum KqlError {
    #[error("{0}")]
    Syntax(kql::ParseError),
    #[error("{0}")]
    Semantic(kql::ExecError),
    #[error(transparent)]
    Read(QueryError),
    #[error(
        "table {table:?} has more than {max} rows in the query's time range: narrow the timespan \
         (or add a TimeGenerated filter)"
    )]
    TooManyRows { table: String, max: u32 },
}

impl KqlError {
    /// The presentation of this error (the Logs Query API's codes: `BadArgumentError` with
    /// `SyntaxError` or `SemanticError` inside).
    pub fn shape(&self) -> ErrorShape {
        match self {
            KqlError::Syntax(_) => ErrorShape {
                class: ErrorClass::InvalidArgument,
                code: "BadArgumentError",
                inner_code: "SyntaxError",
                http_status: 400,
            },
            KqlError::Semantic(_) | KqlError::TooManyRows { .. } => ErrorShape {
                class: ErrorClass::InvalidArgument,
                code: "BadArgumentError",
                inner_code: "SemanticError",
                http_status: 400,
            },
            KqlError::Read(e) => e.shape(),
        }
    }
}

/// A query's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct KqlAnswer {
    /// The result (`PrimaryResult`).
    pub table: kql::Table,
    /// Rows read from storage, over every table.
    pub rows_read: u64,
    /// Rows read per storage and tier (`cluster:NAME (hot)`), over every table.
    pub served_by: BTreeMap<String, u64>,
}

fn kql_type(column_type: ColumnType) -> kql::ColumnType {
    match column_type {
        ColumnType::String => kql::ColumnType::String,
        ColumnType::Long => kql::ColumnType::Long,
        ColumnType::Real => kql::ColumnType::Real,
        ColumnType::Bool => kql::ColumnType::Bool,
        ColumnType::DateTime => kql::ColumnType::DateTime,
        ColumnType::Dynamic => kql::ColumnType::Dynamic,
    }
}

fn kql_value(value: &Value) -> kql::Value {
    match value {
        Value::String(s) => kql::Value::String(s.clone()),
        Value::Long(n) => kql::Value::Long(*n),
        Value::Real(x) => kql::Value::Real(*x),
        Value::Bool(b) => kql::Value::Bool(*b),
        Value::DateTime(t) => kql::Value::DateTime(t.unix_ms()),
        // Validated as JSON when ingested; a document that no longer parses reads as its text.
        Value::Dynamic(text) => serde_json::from_str(text)
            .map(kql::Value::Dynamic)
            .unwrap_or_else(|_| kql::Value::String(text.clone())),
    }
}

impl Frontend {
    /// Runs `text` over `workspace`, reading each table in `range` (the caller's timespan;
    /// `None`: unbounded) narrowed by the query's own time filters. One event records the
    /// query, served or failed.
    pub async fn kql(
        &self,
        workspace: &str,
        text: &str,
        range: Option<TimeRange>,
    ) -> Result<KqlAnswer, KqlError> {
        let now = self.clock.now();
        let result = self.kql_inner(workspace, text, range, now).await;
        let tables = kql::parse(text)
            .map(|q| q.tables().join(","))
            .unwrap_or_else(|_| "(unparsed)".into());
        let event = match &result {
            Ok(answer) => IngestEvent::QueryServed {
                workspace: workspace_name(workspace).to_string(),
                table: tables,
                records: answer.table.rows.len() as u64,
                record_workspaces: vec![workspace_name(workspace).to_string()],
                count: answer.rows_read,
                served_by: answer.served_by.clone(),
            },
            Err(e) => IngestEvent::QueryFailed {
                workspace: workspace_name(workspace).to_string(),
                table: tables,
                error_code: e.shape().inner_code.to_string(),
                reason: e.to_string(),
            },
        };
        let label = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => e.shape().inner_code.to_string(),
        };
        self.lock().metrics.count_query(workspace, &label);
        self.events.record(now, EVENT_SOURCE, &event);
        result
    }

    async fn kql_inner(
        &self,
        workspace: &str,
        text: &str,
        range: Option<TimeRange>,
        now: SimTime,
    ) -> Result<KqlAnswer, KqlError> {
        let query = kql::parse(text).map_err(KqlError::Syntax)?;
        let base = range.unwrap_or(RANGE_UNBOUNDED);
        let (from, to) = query.time_bounds(now.unix_ms());
        let range = TimeRange {
            from: SimTime(from.map_or(base.from.0, |f| f.max(base.from.0))),
            to: SimTime(to.map_or(base.to.0, |t| t.min(base.to.0))),
        };
        let mut tables = BTreeMap::new();
        let mut rows_read = 0u64;
        let mut served_by = BTreeMap::new();
        for name in query.tables() {
            let table = if range.from >= range.to {
                self.empty_table(workspace, &name).await?
            } else {
                let (table, served) = self.read_table(workspace, &name, range).await?;
                for (storage, rows) in served {
                    *served_by.entry(storage).or_insert(0) += rows;
                }
                table
            };
            rows_read += table.rows.len() as u64;
            tables.insert(name, table);
        }
        let table = kql::execute(&query, &tables, now.unix_ms()).map_err(KqlError::Semantic)?;
        Ok(KqlAnswer {
            table,
            rows_read,
            served_by,
        })
    }

    /// The table's schema with no rows (a time range that excludes everything).
    async fn empty_table(&self, workspace: &str, name: &str) -> Result<kql::Table, KqlError> {
        let schema = self.schema_for_query(workspace, name).await?;
        Ok(kql::Table {
            name: name.to_string(),
            columns: columns_of(&schema),
            rows: Vec::new(),
        })
    }

    async fn schema_for_query(
        &self,
        workspace: &str,
        name: &str,
    ) -> Result<crate::schema::TableSchema, KqlError> {
        self.table_schema(workspace, name)
            .await
            .map_err(|e| KqlError::Read(super::query_backend_error(e)))?
            .ok_or_else(|| {
                KqlError::Read(QueryError::UnknownTable {
                    workspace: workspace_name(workspace).to_string(),
                    table: name.to_string(),
                })
            })
    }

    /// Every row of `name` in `range`, through the plain query path (storage reads every
    /// storage the workspace's data went to), as a KQL table, with the rows each storage and
    /// tier served.
    async fn read_table(
        &self,
        workspace: &str,
        name: &str,
        range: TimeRange,
    ) -> Result<(kql::Table, BTreeMap<String, u64>), KqlError> {
        let schema = self.schema_for_query(workspace, name).await?;
        let spec = QuerySpec {
            workspace: workspace.to_string(),
            table: name.to_string(),
            range,
            filters: Vec::new(),
            count_only: false,
            limit: KQL_SOURCE_ROWS_MAX,
            order: Order::Asc,
        };
        let parts = self
            .backend
            .query(spec.clone(), schema.clone())
            .await
            .map_err(|e| KqlError::Read(super::query_backend_error(e)))?;
        let answer = crate::query::merge(&spec, parts);
        if answer.truncated {
            return Err(KqlError::TooManyRows {
                table: name.to_string(),
                max: KQL_SOURCE_ROWS_MAX,
            });
        }
        let columns = columns_of(&schema);
        let rows = answer
            .rows
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .map(|c| {
                        if c.name == crate::schema::TIME_GENERATED {
                            kql::Value::DateTime(row.record.time_generated.unix_ms())
                        } else {
                            row.record
                                .columns
                                .get(&c.name)
                                .map(kql_value)
                                .unwrap_or(kql::Value::Null)
                        }
                    })
                    .collect()
            })
            .collect();
        let served = answer
            .served_by
            .iter()
            .map(|((d, t), n)| (format!("{} ({})", d.label(), t.label()), *n))
            .collect();
        let table = kql::Table {
            name: name.to_string(),
            columns,
            rows,
        };
        Ok((table, served))
    }
}

/// `TimeGenerated` first, then the schema's columns by name.
fn columns_of(schema: &crate::schema::TableSchema) -> Vec<kql::Column> {
    let mut columns = vec![kql::Column {
        name: crate::schema::TIME_GENERATED.to_string(),
        column_type: kql::ColumnType::DateTime,
    }];
    for (name, column_type) in &schema.columns {
        if name != crate::schema::TIME_GENERATED {
            columns.push(kql::Column {
                name: name.clone(),
                column_type: kql_type(*column_type),
            });
        }
    }
    columns
}
