//! The KQL pushdown over gRPC (`QueryRequest.kql`): storage returns only the rows the query's
//! leading filters keep, only the columns it reads, counts what it scanned, and refuses a query
//! it cannot parse; the rows it keeps are exactly the plain query's rows the filter keeps.

mod common;

use cmksim_proto::storage::v1 as pb;
use common::*;

fn kql_query(ws: &str, text: &str) -> pb::QueryRequest {
    let column = |name: &str, t: &str| pb::TableColumn {
        name: name.into(),
        r#type: t.into(),
    };
    pb::QueryRequest {
        workspace_id: World::ws_id(ws),
        table: "Heartbeat".into(),
        from_unix_ms: 0,
        to_unix_ms: i64::MAX,
        limit: 0,
        kql: text.into(),
        kql_columns: vec![
            column("TimeGenerated", "datetime"),
            column("Computer", "string"),
            column("Seq", "long"),
        ],
        kql_now_unix_ms: 0,
    }
}

fn computers(response: &pb::QueryResponse) -> Vec<String> {
    response
        .records
        .iter()
        .map(|r| {
            let record = r.record.as_ref().unwrap();
            match record.columns.iter().find(|c| c.name == "Computer") {
                Some(pb::Column {
                    value:
                        Some(pb::Value {
                            kind: Some(pb::value::Kind::StringValue(s)),
                        }),
                    ..
                }) => s.clone(),
                other => panic!("no Computer string: {other:?}"),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_applies_the_query_s_filter_and_projection() {
    let mut w = World::start(profile("azure-2020", "")).await;
    w.vault("kv1", true).await;
    w.provisioned_cluster("cl1", "kv1").await;
    w.workspace("wsp1").await;
    w.link("wsp1", "cl1").await;
    let bodies: Vec<String> = (0..12)
        .map(|i| format!("{}-{i:02}", ["web", "db", "app"][i % 3]))
        .collect();
    w.append("wsp1", &bodies).await;

    let plain = w.query("wsp1").await.unwrap();
    assert_eq!(plain.records.len(), 12);
    let expected: Vec<String> = computers(&plain)
        .into_iter()
        .filter(|c| c.contains("web"))
        .collect();
    assert_eq!(expected.len(), 4);

    let text = "Heartbeat | where Computer contains 'WEB' | summarize count() by Computer";
    let pushed = w
        .data
        .query(kql_query("wsp1", text))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        computers(&pushed),
        expected,
        "the filter's rows, in the plain order"
    );
    assert_eq!(pushed.total_matched, 4);
    assert!(!pushed.truncated);
    assert_eq!(pushed.parts.len(), 1);
    assert_eq!(pushed.parts[0].records, 4);
    assert_eq!(
        pushed.parts[0].scanned, 12,
        "every record in range was scanned"
    );
    // Only the column the query reads: Seq is not decoded, TimeGenerated is the record's time.
    for r in &pushed.records {
        let names: Vec<&str> = r
            .record
            .as_ref()
            .unwrap()
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, vec!["Computer"]);
    }

    // A query storage cannot parse or bind is the caller's error.
    for bad in ["Heartbeat | where", "Heartbeat | where Nope == 1 | count"] {
        let refused = w.data.query(kql_query("wsp1", bad)).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{bad}");
    }
    w.shutdown().await;
}
