//! The `ingest.v1.Ingestion` and `ingest.v1.Query` services over a shared [`Frontend`].

use std::sync::Arc;

use cmksim_proto::ingest::v1 as pb;
use cmksim_sim::SimTime;
use tonic::{Request, Response, Status};

use super::convert::{self, ConvertError};
use super::status::{ingest_status, kql_status, malformed, query_status};
use crate::frontend::{Frontend, IngestInput};
use crate::query::{QuerySpec, TimeRange};

/// The Ingestion service.
#[derive(Clone)]
pub struct IngestionService {
    frontend: Arc<Frontend>,
}

impl IngestionService {
    pub fn new(frontend: Arc<Frontend>) -> IngestionService {
        IngestionService { frontend }
    }
}

fn declarations(columns: &[pb::ColumnDeclaration]) -> Vec<(String, String)> {
    columns
        .iter()
        .map(|c| (c.name.clone(), c.r#type.clone()))
        .collect()
}

fn bad(e: ConvertError) -> Status {
    malformed(e.0)
}

#[tonic::async_trait]
impl pb::ingestion_server::Ingestion for IngestionService {
    async fn ingest(
        &self,
        request: Request<pb::IngestRequest>,
    ) -> Result<Response<pb::IngestResponse>, Status> {
        let request = request.into_inner();
        let declare_columns = declarations(&request.declare_columns);
        let records = request
            .records
            .into_iter()
            .enumerate()
            .map(|(i, r)| convert::raw_record_from_pb(r, i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let input = IngestInput {
            workspace: request.workspace_id,
            table: request.table,
            records,
            declare_columns,
        };
        let output = self
            .frontend
            .ingest(input)
            .await
            .map_err(|e| ingest_status(&e))?;
        let count = |kind: &str| output.outcomes.count(kind);
        Ok(Response::new(pb::IngestResponse {
            workspace_id: output.workspace.clone(),
            table: output.table.clone(),
            routed_to: output.routed_to.as_ref().map(convert::storage_to_pb),
            accepted: output.outcomes.len(),
            stored: count("stored"),
            buffered: count("buffered"),
            dropped: count("dropped"),
            ingested_at: Some(convert::time_to_pb(output.ingested_at)),
            outcome_runs: convert::outcome_runs_to_pb(&output.outcomes),
        }))
    }

    async fn register_custom_table(
        &self,
        request: Request<pb::RegisterCustomTableRequest>,
    ) -> Result<Response<pb::RegisterCustomTableResponse>, Status> {
        let request = request.into_inner();
        let (schema, changed) = self
            .frontend
            .register_custom_table(
                &request.workspace_id,
                &request.table,
                &declarations(&request.columns),
            )
            .await
            .map_err(|e| ingest_status(&e))?;
        Ok(Response::new(pb::RegisterCustomTableResponse {
            table: schema.name.clone(),
            columns: schema
                .columns
                .iter()
                .map(|(name, t)| pb::ColumnDeclaration {
                    name: name.clone(),
                    r#type: t.name().to_string(),
                })
                .collect(),
            changed,
        }))
    }

    async fn get_metrics(
        &self,
        _request: Request<pb::GetMetricsRequest>,
    ) -> Result<Response<pb::GetMetricsResponse>, Status> {
        Ok(Response::new(pb::GetMetricsResponse {
            prometheus_text: self.frontend.metrics_text(),
        }))
    }
}

/// The Query service.
#[derive(Clone)]
pub struct QueryService {
    frontend: Arc<Frontend>,
}

impl QueryService {
    pub fn new(frontend: Arc<Frontend>) -> QueryService {
        QueryService { frontend }
    }
}

/// A query request as a domain query.
pub fn spec_from_pb(request: &pb::QueryRequest) -> Result<QuerySpec, ConvertError> {
    let time = |t: &Option<cmksim_proto::common::v1::SimTime>, name: &str| {
        t.map(|t| SimTime(t.unix_ms))
            .ok_or_else(|| ConvertError(format!("the time range's {name:?} is required")))
    };
    Ok(QuerySpec {
        workspace: request.workspace_id.clone(),
        table: request.table.clone(),
        range: TimeRange {
            from: time(&request.from, "from")?,
            to: time(&request.to, "to")?,
        },
        filters: request
            .filters
            .iter()
            .enumerate()
            .map(|(i, f)| convert::filter_from_pb(f, i))
            .collect::<Result<_, _>>()?,
        count_only: request.count_only,
        limit: request.limit,
        order: convert::order_from_pb(request.order)?,
        kql: None,
    })
}

#[tonic::async_trait]
impl pb::query_server::Query for QueryService {
    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let spec = spec_from_pb(request.get_ref()).map_err(bad)?;
        let answer = self
            .frontend
            .query(spec)
            .await
            .map_err(|e| query_status(&e))?;
        Ok(Response::new(convert::answer_to_pb(&answer)))
    }

    async fn kql(
        &self,
        request: Request<pb::KqlRequest>,
    ) -> Result<Response<pb::KqlResponse>, Status> {
        let request = request.into_inner();
        let range = match (&request.from, &request.to) {
            (Some(from), Some(to)) => Some(TimeRange {
                from: SimTime(from.unix_ms),
                to: SimTime(to.unix_ms),
            }),
            (None, None) => None,
            _ => return Err(malformed("give both from and to, or neither".into())),
        };
        let answer = self
            .frontend
            .kql(&request.workspace_id, &request.query, range)
            .await
            .map_err(|e| kql_status(&e))?;
        Ok(Response::new(pb::KqlResponse {
            tables: vec![convert::kql_table_to_pb(&answer.table)],
            rows_read: answer.rows_read,
            render_json: answer
                .visualization
                .as_ref()
                .map(|v| v.to_json().to_string())
                .unwrap_or_default(),
        }))
    }
}
