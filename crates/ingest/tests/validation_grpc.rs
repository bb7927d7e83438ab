//! Every validation error over real gRPC: its own code, Azure error and message; nothing applied.

mod common;

use cmksim_ingest::grpc::status::azure_error;
use cmksim_proto::ingest::v1 as pb;
use cmksim_sim::Profile;
use common::*;
use tonic::Code;

async fn refused(h: &Harness, request: pb::IngestRequest) -> (Code, String, u32, String) {
    let status = h.ingestion().ingest(request).await.expect_err("refused");
    let azure = azure_error(&status).expect("AzureError details");
    assert_eq!(azure.message, status.message());
    (
        status.code(),
        azure.inner_code,
        azure.http_status,
        status.message().to_string(),
    )
}

#[tokio::test]
async fn each_validation_error_has_its_own_code_and_nothing_is_applied() {
    let h = Harness::start(Profile::azure_2020(), 1.0).await;
    let good = || perf(0, "vm1", 1.0);

    let cases: Vec<(pb::IngestRequest, Code, &str, u32, &str)> = vec![
        (
            batch("ws1", "Perf", vec![]),
            Code::InvalidArgument,
            "EmptyBatch",
            400,
            "no records",
        ),
        (
            batch("nope", "Perf", vec![good()]),
            Code::NotFound,
            "WorkspaceNotFound",
            404,
            "\"nope\"",
        ),
        (
            batch("ws1", "Nope", vec![good()]),
            Code::InvalidArgument,
            "UnknownTable",
            400,
            "\"Nope\"",
        ),
        (
            batch(
                "ws1",
                "Perf",
                vec![
                    good(),
                    pb::Record {
                        time_generated: Some(t(0)),
                        columns: vec![col("Colour", s("red"))],
                    },
                ],
            ),
            Code::InvalidArgument,
            "UnknownColumn",
            400,
            "record 1: column \"Colour\"",
        ),
        (
            batch(
                "ws1",
                "Perf",
                vec![pb::Record {
                    time_generated: Some(t(0)),
                    columns: vec![col("CounterValue", s("high"))],
                }],
            ),
            Code::InvalidArgument,
            "WrongColumnType",
            400,
            "is real, got a string value",
        ),
        (
            batch(
                "ws1",
                "Perf",
                vec![
                    good(),
                    pb::Record {
                        time_generated: None,
                        columns: vec![],
                    },
                ],
            ),
            Code::InvalidArgument,
            "MissingTimeGenerated",
            400,
            "record 1: TimeGenerated is missing",
        ),
        (
            batch("ws1", "Perf", vec![perf(2 * 86_400_000, "vm1", 1.0)]),
            Code::InvalidArgument,
            "TimeGeneratedInFuture",
            400,
            "future_skew_max",
        ),
        (
            batch(
                "ws1",
                "Perf",
                vec![pb::Record {
                    time_generated: Some(t(0)),
                    columns: vec![col("Computer", s("a")), col("Computer", s("b"))],
                }],
            ),
            Code::InvalidArgument,
            "DuplicateColumn",
            400,
            "more than once",
        ),
        (
            batch(
                "ws1",
                "Perf",
                vec![pb::Record {
                    time_generated: Some(t(0)),
                    columns: vec![col("Computer", Some(pb::Value { kind: None }))],
                }],
            ),
            Code::InvalidArgument,
            "MalformedRequest",
            400,
            "has no type",
        ),
        (
            batch(
                "ws1",
                "Perf",
                vec![pb::Record {
                    time_generated: Some(t(0)),
                    columns: vec![col("Computer", s(&"x".repeat(1024 * 1024)))],
                }],
            ),
            Code::ResourceExhausted,
            "BatchTooLarge",
            413,
            "limit is 1048576 bytes",
        ),
    ];
    for (request, code, inner, http, needle) in cases {
        let (got_code, got_inner, got_http, message) = refused(&h, request).await;
        assert_eq!(
            (got_code, got_inner.as_str(), got_http),
            (code, inner, http),
            "{message}"
        );
        assert!(message.contains(needle), "{inner}: {message}");
    }

    // Nothing was applied: no record counted as accepted, nothing stored, no data queryable.
    let metrics = h.server.frontend().metrics();
    assert!(metrics.records.is_empty(), "{metrics:?}");
    assert!(h
        .storage
        .stored(&cmksim_ingest::routing::Destination::Shared, "ws1", "Perf")
        .is_empty());
    let answer = h
        .query_client()
        .query(query("ws1", "Perf", 86_400_000))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.count, 0);
    // Refusals are counted and narrated.
    let text = h.server.frontend().metrics_text();
    assert!(
        text.contains(
            "cmksim_ingest_batches_rejected_total{error=\"UnknownColumn\",workspace=\"ws1\"} 1"
        ),
        "{text}"
    );
    assert_eq!(h.events.of_kind("ingest.batch.rejected").len(), 9);
}

fn declare(name: &str, ty: &str) -> pb::ColumnDeclaration {
    pb::ColumnDeclaration {
        name: name.into(),
        r#type: ty.into(),
    }
}

#[tokio::test]
async fn custom_tables_are_declared_and_a_refused_declaration_changes_nothing() {
    let h = Harness::start(Profile::azure_2020(), 1.0).await;
    let mut client = h.ingestion();
    let record = |props: &str| pb::Record {
        time_generated: Some(t(0)),
        columns: vec![
            col("Message", s("hello")),
            col(
                "Props",
                Some(pb::Value {
                    kind: Some(pb::value::Kind::DynamicJson(props.into())),
                }),
            ),
        ],
    };
    // A declaration carried by a batch with an invalid record: refused, table not registered.
    let mut request = batch("ws1", "App_CL", vec![record("{not json")]);
    request.declare_columns = vec![declare("Message", "string"), declare("Props", "dynamic")];
    let (code, inner, _, _) = refused(&h, request.clone()).await;
    assert_eq!(
        (code, inner.as_str()),
        (Code::InvalidArgument, "InvalidDynamic")
    );
    let (_, inner, _, _) = refused(&h, batch("ws1", "App_CL", vec![record("{}")])).await;
    assert_eq!(
        inner, "UnknownTable",
        "the refused declaration was not applied"
    );

    // The same declaration with good records registers the table.
    request.records = vec![record("{\"a\":1}")];
    let response = client.ingest(request).await.unwrap().into_inner();
    assert_eq!(response.stored, 1);
    let response = client
        .ingest(batch("ws1", "App_CL", vec![record("[1,2]")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.stored, 1);
    assert_eq!(h.events.of_kind("ingest.table.registered").len(), 1);

    // RegisterCustomTable adds a column; a type change is a conflict; other workspaces unaffected.
    let registered = client
        .register_custom_table(pb::RegisterCustomTableRequest {
            workspace_id: "ws1".into(),
            table: "App_CL".into(),
            columns: vec![declare("Count", "int")],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(registered.changed);
    let names: Vec<(String, String)> = registered
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.r#type.clone()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("Count".into(), "long".into()),
            ("Message".into(), "string".into()),
            ("Props".into(), "dynamic".into())
        ]
    );
    let conflict = client
        .register_custom_table(pb::RegisterCustomTableRequest {
            workspace_id: "ws1".into(),
            table: "App_CL".into(),
            columns: vec![declare("Count", "string")],
        })
        .await
        .unwrap_err();
    assert_eq!(conflict.code(), Code::FailedPrecondition);
    assert_eq!(azure_error(&conflict).unwrap().http_status, 409);
    let (_, inner, _, _) = refused(&h, batch("ws2", "App_CL", vec![record("{}")])).await;
    assert_eq!(inner, "UnknownTable");
    for (table, inner) in [
        ("App", "InvalidTableName"),
        ("Perf", "StandardTableDeclared"),
    ] {
        let status = client
            .register_custom_table(pb::RegisterCustomTableRequest {
                workspace_id: "ws1".into(),
                table: table.into(),
                columns: vec![declare("X", "string")],
            })
            .await
            .unwrap_err();
        assert_eq!(
            (
                status.code(),
                azure_error(&status).unwrap().inner_code.as_str()
            ),
            (Code::InvalidArgument, inner)
        );
    }
    // The dynamic value comes back as dynamic.
    let answer = h
        .query_client()
        .query(query("ws1", "App_CL", 1000))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.count, 2);
    let props = answer.rows[0]
        .record
        .as_ref()
        .unwrap()
        .columns
        .iter()
        .find(|c| c.name == "Props")
        .unwrap();
    assert!(matches!(
        props.value.as_ref().unwrap().kind,
        Some(pb::value::Kind::DynamicJson(_))
    ));
}
