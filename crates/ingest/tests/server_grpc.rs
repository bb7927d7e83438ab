//! The server's surroundings: health, reflection, GetMetrics and the live /metrics endpoint.

mod common;

use cmksim_proto::ingest::v1 as pb;
use cmksim_sim::Profile;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn health_reflection_and_metrics() {
    let h = Harness::start(Profile::azure_2020(), 1.0).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(h.channel.clone());
    for service in ["ingest.v1.Ingestion", "ingest.v1.Query"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            status.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }
    // Reflection lists the services (the descriptor set includes ingest.v1).
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(
            h.channel.clone(),
        );
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let text = format!("{response:?}");
    assert!(
        text.contains("ingest.v1.Ingestion") && text.contains("ingest.v1.Query"),
        "{text}"
    );

    h.ingestion()
        .ingest(batch(
            "ws1",
            "Perf",
            vec![perf(0, "vm1", 1.0), perf(1, "vm1", 2.0)],
        ))
        .await
        .unwrap();
    let metrics = h
        .ingestion()
        .get_metrics(pb::GetMetricsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        metrics
            .prometheus_text
            .contains("cmksim_ingest_records_total{outcome=\"stored\",workspace=\"ws1\"} 2\n"),
        "{}",
        metrics.prometheus_text
    );

    // The live endpoint serves the same text.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = h.server.clone();
    let task = tokio::spawn(async move {
        server
            .serve_metrics(listener, async {
                let _ = rx.await;
            })
            .await
    });
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with(&metrics.prometheus_text), "{response}");
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    // The batch is also in the event log with the running totals.
    let batches = h.events.of_kind("ingest.batch");
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].message, "2 Perf records for ws1 routed to shared: 2 stored under the Microsoft-managed key, 0 buffered");
    assert_eq!(batches[0].data["totals"]["stored"], 2);
}
