//! A KQL summarize is run by storage where the rows lie and its groups merged by the front end
//! (`StorageBackend::summarize`): the answer is the one the rows path gives, with data in two
//! storages whose times repeat across them and go back and forth, including the order of the
//! groups (a `take` after the summarize keeps the same ones). Real gRPC over the in-memory
//! fake of storage, which summarizes as the storage service does.

mod common;

use cmksim_ingest::backend::memory::Route;
use cmksim_ingest::routing::Destination;
use cmksim_proto::ingest::v1 as pb;
use cmksim_sim::Profile;
use common::*;

async fn kql(h: &Harness, text: &str) -> pb::KqlResponse {
    h.kql(text, std::time::Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[tokio::test]
async fn a_summarize_in_storage_answers_as_the_rows_path() {
    let h = Harness::start(Profile::azure_2020(), 1.0).await;
    for i in 0..36i64 {
        let route = if i % 3 == 0 {
            Route::To(Destination::Cluster("c1".into()))
        } else {
            Route::To(Destination::Shared)
        };
        h.storage.set_route("ws1", route);
        let ms = ((i * 7) % 10) * 1_000;
        let computer = format!("vm{}", (i * 5) % 4);
        let answer = h
            .ingestion()
            .ingest(batch(
                "ws1",
                "Perf",
                vec![perf(ms, &computer, i as f64), perf(ms, "vm9", 1.0)],
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.stored, 2, "batch {i}");
    }
    for text in [
        "Perf | summarize count() by Computer",
        "Perf | summarize count() by Computer | take 2",
        "Perf | summarize count(), min(TimeGenerated) by Computer, bin(TimeGenerated, 2s) | take 5",
        "Perf | where Computer != 'vm2' | summarize count(), dcount(Computer)",
        "Perf | where Computer == 'nobody' | summarize count() by Computer",
    ] {
        let before = h.storage.summaries_answered();
        let summarized = kql(&h, text).await;
        assert_eq!(
            h.storage.summaries_answered(),
            before + 1,
            "{text}: storage summarized"
        );
        // The same query with an operator before its summarize has no plan: the rows path.
        let rows_path = text.replacen("Perf |", "Perf | extend Ignored = 1 |", 1);
        let rows = kql(&h, &rows_path).await;
        assert_eq!(h.storage.summaries_answered(), before + 1, "{rows_path}");
        assert_eq!(summarized.tables, rows.tables, "{text}");
        assert_eq!(summarized.rows_read, rows.rows_read, "{text}");
        assert_eq!(summarized.rows_read, 72, "{text}");
    }
}
