//! A KQL query over a table larger than one storage read (`KQL_PAGE_ROWS`) reads it page by
//! page and answers over every row, through the real gRPC server; the leading `where`s are
//! applied page by page.

mod common;

use cmksim_ingest::frontend::KQL_PAGE_ROWS;
use cmksim_proto::ingest::v1 as pb;
use cmksim_sim::Profile;
use common::*;
use std::time::Duration;

/// Records per batch (well under the 1 MiB batch limit).
const BATCH_RECORDS: usize = 5_000;

/// A query's own deadline: reading 1.3 pages of rows in a debug build on a loaded machine takes
/// longer than the harness's 10 s.
const KQL_TIMEOUT: Duration = Duration::from_secs(300);

async fn kql(h: &Harness, text: &str) -> Result<pb::KqlResponse, tonic::Status> {
    h.kql(text, KQL_TIMEOUT).await
}

#[tokio::test]
async fn a_table_larger_than_one_read_is_counted_whole() {
    let h = Harness::start(Profile::azure_current(), 1.0).await;
    // 1.3 pages of rows, 40 to a second (so pages end inside a second's rows), 5 hosts: the
    // first read is cut off, the rest is read in a second window.
    let total = KQL_PAGE_ROWS as usize * 13 / 10;
    let mut sent = 0usize;
    while sent < total {
        let n = BATCH_RECORDS.min(total - sent);
        let records = (sent..sent + n)
            .map(|i| {
                perf(
                    -3_600_000 + (i as i64 / 40) * 1_000,
                    &format!("h{}", i % 5),
                    1.0,
                )
            })
            .collect();
        let answer = h
            .ingestion()
            .ingest(batch("ws1", "Perf", records))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.accepted as usize, n, "batch at {sent}");
        sent += n;
    }

    let all = kql(&h, "Perf | count").await.unwrap();
    assert_eq!(all.tables[0].rows_json, format!("[[{total}]]"));
    assert_eq!(all.rows_read as usize, total, "every row read once");

    let one_host = kql(&h, "Perf | where Computer == 'h3' | summarize n = count()")
        .await
        .unwrap();
    assert_eq!(one_host.tables[0].rows_json, format!("[[{}]]", total / 5));
    assert_eq!(
        one_host.rows_read as usize, total,
        "the filter reads every row"
    );
}
