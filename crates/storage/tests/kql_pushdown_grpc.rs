//! The KQL pushdown over gRPC (`QueryRequest.kql`): storage returns only the rows the query's
//! leading filters keep, only the columns it reads, counts what it scanned, and refuses a query
//! it cannot parse; the rows it keeps are exactly the plain query's rows the filter keeps. With
//! `kql_summarize` it answers a summarize's groups, which give the answer the rows give.

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
        kql_summarize: false,
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

/// The rows of a plain KQL read (`kql_summarize` unset) as a KQL table of `columns`, in the
/// order storage answers them (time, then scan order): what the front end's rows path groups.
fn rows_table(response: &pb::QueryResponse, columns: &[cmksim_kql::Column]) -> cmksim_kql::Table {
    use cmksim_kql::Value as V;
    let rows = response
        .records
        .iter()
        .map(|q| {
            let record = q.record.as_ref().unwrap();
            columns
                .iter()
                .map(|c| {
                    if c.name == "TimeGenerated" {
                        return V::DateTime(record.time_unix_ms);
                    }
                    let value = record.columns.iter().find(|x| x.name == c.name);
                    match value.and_then(|x| x.value.as_ref()?.kind.clone()) {
                        Some(pb::value::Kind::StringValue(s)) => V::String(s),
                        Some(pb::value::Kind::LongValue(n)) => V::Long(n),
                        None => V::Null,
                        other => panic!("an unexpected cell {other:?}"),
                    }
                })
                .collect()
        })
        .collect();
    cmksim_kql::Table {
        name: "Heartbeat".into(),
        columns: columns.to_vec(),
        rows,
    }
}

/// `kql_summarize`: storage answers a summarize's groups instead of its rows, and the groups,
/// decoded and finished by the same query's plan, are the answer the rows give: the same
/// groups with the same values, in the same order (by each group's first row in time, then
/// scan order), with records out of time order within and across blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_summarizes_where_the_rows_lie_and_answers_as_the_rows_do() {
    let mut w = World::start(profile("azure-2020", "")).await;
    w.vault("kv1", true).await;
    w.provisioned_cluster("cl1", "kv1").await;
    w.workspace("wsp1").await;
    w.link("wsp1", "cl1").await;
    // Three batches (blocks) of records whose times go back and forth over two hours.
    let now = w.now().0;
    for batch in 0..3i64 {
        let records = (0..40i64)
            .map(|i| {
                let n = batch * 40 + i;
                let minutes = (n * 37) % 120;
                let mut columns = vec![column("Seq", pb::value::Kind::LongValue(n % 7))];
                if n % 11 != 0 {
                    let host = format!("{}-{:02}", ["web", "db", "app"][(n % 3) as usize], n % 4);
                    columns.push(column("Computer", pb::value::Kind::StringValue(host)));
                }
                pb::Record {
                    time_unix_ms: now - 7_200_000 + minutes * 60_000,
                    columns,
                }
            })
            .collect();
        let answer = w
            .data
            .append(pb::AppendRequest {
                workspace_id: World::ws_id("wsp1"),
                table: "Heartbeat".into(),
                records,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.runs.iter().map(|r| r.count).sum::<u32>(), 40);
    }
    let columns = vec![
        cmksim_kql::Column::new("TimeGenerated", cmksim_kql::ColumnType::DateTime),
        cmksim_kql::Column::new("Computer", cmksim_kql::ColumnType::String),
        cmksim_kql::Column::new("Seq", cmksim_kql::ColumnType::Long),
    ];
    for text in [
        "Heartbeat | summarize count() by Computer",
        "Heartbeat | summarize count() by Computer | take 3",
        "Heartbeat | summarize count() by Computer, bin(TimeGenerated, 10m) | take 7",
        "Heartbeat | where Computer contains 'WEB' | summarize count(), dcount(Seq), min(TimeGenerated), max(Seq) by Computer",
        "Heartbeat | where Seq > 2 | summarize sum(Seq) by bin(TimeGenerated, 30m) | take 2",
        "Heartbeat | summarize count(), max(Computer)",
        "Heartbeat | where Computer == 'none' | summarize count() by Computer",
    ] {
        let query = cmksim_kql::parse(text).unwrap();
        let projected = query
            .projection("Heartbeat", &columns)
            .unwrap_or(columns.clone());
        let plan = query
            .summarize_plan("Heartbeat", &projected)
            .unwrap()
            .expect("a plan");
        let rows = w
            .data
            .query(kql_query("wsp1", text))
            .await
            .unwrap()
            .into_inner();
        assert!(!rows.kql_summarized, "{text}");
        let expected = cmksim_kql::execute(
            &query,
            &std::collections::BTreeMap::from([(
                "Heartbeat".to_string(),
                rows_table(&rows, &projected),
            )]),
            0,
        )
        .unwrap();

        let mut request = kql_query("wsp1", text);
        request.kql_summarize = true;
        let summarized = w.data.query(request).await.unwrap().into_inner();
        assert!(summarized.kql_summarized, "{text}");
        assert!(summarized.records.is_empty(), "{text}: no rows cross");
        assert_eq!(summarized.parts.len(), 1, "{text}");
        let part = &summarized.parts[0];
        assert_eq!(part.scanned, 120, "{text}");
        assert_eq!(part.records, rows.records.len() as u64, "{text}: rows kept");
        assert!(part.records_from_cold <= part.records);
        assert_eq!(summarized.total_matched, part.records);
        let groups = plan.decode(&part.kql_groups, 0).unwrap();
        assert_eq!(groups.rows(), part.records, "{text}");
        assert_eq!(plan.finish(groups, 0).unwrap(), expected, "{text}");
    }
    // A query without a summarize plan is answered with rows, as without the flag.
    let mut request = kql_query("wsp1", "Heartbeat | where Seq == 1 | project Computer");
    request.kql_summarize = true;
    let rows = w.data.query(request).await.unwrap().into_inner();
    assert!(!rows.kql_summarized);
    assert_eq!(rows.records.len(), rows.parts[0].records as usize);
    assert!(!rows.records.is_empty());
    w.shutdown().await;
}
