//! Custom-table (`*_CL`) declarations are durable and a column's type never changes (issue 17,
//! defect 4): an ingest front end over the real storage server registers a table and ingests
//! into it; then the front end is dropped and storage restarts on its directory; a new front end
//! queries the table (it was refused as unknown before, when the front end kept the
//! declarations in memory) and cannot redeclare a `string` column as `long`, through the front
//! end or through storage's own API.

mod common;

use std::sync::Arc;

use cmksim_ingest::backend::grpc::GrpcStorage;
use cmksim_ingest::frontend::IngestInput;
use cmksim_ingest::query::{Order, QuerySpec, TimeRange};
use cmksim_ingest::record::{ColumnType, RawRecord, Value};
use cmksim_ingest::{Frontend, IngestError};
use cmksim_proto::storage::v1 as pb;
use cmksim_sim::SimTime;
use common::*;

const WS: &str = "ws-custom";
const TABLE: &str = "App_CL";

fn frontend(world: &World) -> Frontend {
    Frontend::new(
        world.clock.clone(),
        world.events.clone(),
        world.profile.clone(),
        Arc::new(GrpcStorage::new(world.storage_channel.clone())),
    )
}

fn declare(columns: &[(&str, &str)]) -> Vec<(String, String)> {
    columns
        .iter()
        .map(|(c, t)| (c.to_string(), t.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declarations_survive_a_restart_and_a_column_type_never_changes() {
    let mut world = World::start(profile("azure-2020", "")).await;
    world.workspace(WS).await;
    let workspace = World::ws_id(WS);

    let before = frontend(&world);
    let (schema, changed) = before
        .register_custom_table(&workspace, TABLE, &declare(&[("Message", "string")]))
        .await
        .expect("register");
    assert!(changed);
    assert_eq!(schema.column_type("Message"), Some(ColumnType::String));
    let now = world.now();
    let output = before
        .ingest(IngestInput {
            workspace: workspace.clone(),
            table: TABLE.into(),
            records: vec![RawRecord {
                time_generated: Some(now),
                columns: vec![("Message".into(), Value::String("hello".into()))],
            }],
            declare_columns: Vec::new(),
        })
        .await
        .expect("ingest");
    assert_eq!(output.outcomes.len(), 1);
    drop(before);

    world.restart_storage().await;
    let after = frontend(&world);
    let answer = after
        .query(QuerySpec {
            workspace: workspace.clone(),
            table: TABLE.into(),
            range: TimeRange {
                from: SimTime(0),
                to: SimTime(i64::MAX),
            },
            filters: Vec::new(),
            count_only: false,
            limit: 0,
            order: Order::Asc,
            kql: None,
        })
        .await
        .expect("the table is still declared after the restart");
    assert_eq!(answer.count, 1);

    let refused = after
        .register_custom_table(&workspace, TABLE, &declare(&[("Message", "long")]))
        .await
        .unwrap_err();
    assert_eq!(
        refused,
        IngestError::ColumnTypeConflict {
            table: TABLE.into(),
            column: "Message".into(),
            registered: ColumnType::String,
            declared: ColumnType::Long,
        }
    );

    // Storage itself refuses the change (two front ends racing both reach it).
    let status = world
        .workspaces
        .declare_table(pb::DeclareTableRequest {
            workspace: Some(World::ws_ref(WS)),
            table: TABLE.into(),
            columns: vec![pb::TableColumn {
                name: "Message".into(),
                r#type: "long".into(),
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    for part in ["'Message'", "'App_CL'", "string", "long"] {
        assert!(status.message().contains(part), "{}", status.message());
    }
    let kept = world
        .workspaces
        .get_table(pb::GetTableRequest {
            workspace: Some(World::ws_ref(WS)),
            table: TABLE.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(kept.exists);
    assert_eq!(kept.columns.len(), 1);
    assert_eq!(kept.columns[0].r#type, "string");
    world.shutdown().await;
}
