//! Tests of the data lifecycle ([`super::lifecycle`]): the bounded retention pass, purge by
//! filter (with the canary that a purged record's sealed block is gone from the directory), and
//! table delete.

use std::path::Path;
use std::time::Duration;

use cmksim_sim::{Profile, RandomSource, SimTime};

use super::*;

const ACCOUNT: &str = "cluster:c1";
const DAY: Duration = Duration::from_secs(86_400);
const WS: &str =
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws1";

fn now() -> SimTime {
    SimTime::DEFAULT_EPOCH.add(DAY * 100)
}

fn open(dir: &Path) -> DataPlane {
    DataPlane::open(
        dir,
        RandomSource::from_seed([9; 32]),
        &Profile::azure_2020(),
    )
    .unwrap()
}

/// A data plane in `dir` with the test's account (`double_encryption` as given).
fn with_account(dir: &Path, double_encryption: bool) -> DataPlane {
    let plane = open(dir);
    plane
        .create_account(ACCOUNT, double_encryption, now())
        .unwrap();
    plane
}

/// A fresh directory with [`with_account`]'s data plane in it.
fn fixture(double_encryption: bool) -> (tempfile::TempDir, DataPlane) {
    let dir = tempfile::tempdir().unwrap();
    let plane = with_account(dir.path(), double_encryption);
    (dir, plane)
}

/// The account's counters, checked for conservation (every accepted record accounted for).
fn conserved_counters(plane: &DataPlane) -> AccountCounters {
    let c = plane.stats(ACCOUNT).unwrap().counters;
    assert!(c.conserved(), "counters lost a record: {c:?}");
    c
}

fn configure_cmk(plane: &DataPlane) -> Aek {
    let aek = plane.unwrap_with_mmk(ACCOUNT).unwrap();
    plane
        .set_kek_wrapping(
            ACCOUNT,
            &aek,
            "https://v1.vault.azure.net/keys/k1",
            "v1",
            b"wrapped",
        )
        .unwrap();
    aek
}

fn cmk(aek: &Aek) -> Sealing<'_> {
    Sealing::Cmk {
        aek,
        kid: "https://v1.vault.azure.net/keys/k1",
        version: "v1",
    }
}

/// `n` records one second apart from `start`, with `User` = `tag-i`.
fn batch(table: &str, start: SimTime, n: usize, tag: &str) -> Vec<Record> {
    (0..n)
        .map(|i| {
            Record::new(table, start.0 + i as i64 * 1000)
                .with("User", Value::String(format!("{tag}-{i}")))
        })
        .collect()
}

/// Every stored record of `table` (the whole time range).
fn all_records(plane: &DataPlane, aek: Option<&Aek>, table: &str) -> Vec<Record> {
    plane
        .query(
            ACCOUNT,
            aek,
            WS,
            table,
            SimTime(0),
            SimTime(i64::MAX / 2),
            now(),
        )
        .unwrap()
        .records
}

fn count(plane: &DataPlane, aek: Option<&Aek>, table: &str) -> usize {
    all_records(plane, aek, table).len()
}

#[test]
fn retention_removes_whole_old_blocks_only_and_is_bounded_per_pass() {
    let (_dir, plane) = fixture(true);
    // Three appends (three blocks) per table: 40, 35 and 2 days old.
    for table in ["A", "B"] {
        for (days, tag) in [(40, "old"), (35, "older"), (2, "new")] {
            let at = now().sub(DAY * days);
            plane
                .append(
                    ACCOUNT,
                    Sealing::Mmk,
                    WS,
                    table,
                    &batch(table, at, 5, tag),
                    at,
                )
                .unwrap();
        }
    }
    let cutoff = now().sub(DAY * 31);
    // A budget of 3 blocks: table A's two old blocks, then one of B's; more remain.
    let first = plane.retention_pass(ACCOUNT, WS, cutoff, 3, now()).unwrap();
    assert!(first.more);
    assert_eq!(
        first
            .removals
            .iter()
            .map(|r| (r.table.as_str(), r.blocks, r.records))
            .collect::<Vec<_>>(),
        vec![("A", 2, 10), ("B", 1, 5)]
    );
    assert_eq!(first.removals[0].from_ms, now().sub(DAY * 40).0);
    assert_eq!(first.removals[0].to_ms, now().sub(DAY * 35).0 + 4000);
    let second = plane.retention_pass(ACCOUNT, WS, cutoff, 3, now()).unwrap();
    assert!(!second.more);
    assert_eq!(second.removals.len(), 1);
    assert_eq!(
        (
            second.removals[0].table.as_str(),
            second.removals[0].records
        ),
        ("B", 5)
    );
    let third = plane.retention_pass(ACCOUNT, WS, cutoff, 3, now()).unwrap();
    assert_eq!(third, lifecycle::RetentionPass::default());
    assert_eq!(count(&plane, None, "A"), 5);
    assert_eq!(count(&plane, None, "B"), 5);
    let c = conserved_counters(&plane);
    assert_eq!(c.retention_removed_records, 20);
}

/// Issue 14: each table its own cutoff (the retention job passes a table's own retention or
/// its workspace's), in simulated time.
#[test]
fn retention_by_table_applies_each_tables_own_cutoff() {
    let (_dir, plane) = fixture(false);
    for table in ["Long", "Short"] {
        for days in [100, 40, 10] {
            let at = now().sub(DAY * days);
            plane
                .append(
                    ACCOUNT,
                    Sealing::Mmk,
                    WS,
                    table,
                    &batch(table, at, 2, "r"),
                    at,
                )
                .unwrap();
        }
    }
    // Long keeps 90 days of its own; Short follows a 31-day workspace retention.
    let cutoff_of = |table: &str| now().sub(DAY * if table == "Long" { 90 } else { 31 });
    let pass = plane
        .retention_pass_by_table(ACCOUNT, WS, &cutoff_of, 100, now())
        .unwrap();
    assert_eq!(
        pass.removals
            .iter()
            .map(|r| (r.table.as_str(), r.records))
            .collect::<Vec<_>>(),
        vec![("Long", 2), ("Short", 4)]
    );
    assert_eq!(count(&plane, None, "Long"), 4);
    assert_eq!(count(&plane, None, "Short"), 2);
    conserved_counters(&plane);
}

#[test]
fn retention_needs_no_key_and_keeps_a_block_straddling_the_cutoff() {
    let (_dir, plane) = fixture(false);
    let aek = configure_cmk(&plane);
    // One block from 32 days to 30 days old: straddles a 31-day cutoff.
    let start = now().sub(DAY * 32);
    let records: Vec<Record> = (0..3)
        .map(|i| Record::new("T", start.0 + i * DAY.as_millis() as i64))
        .collect();
    plane
        .append(ACCOUNT, cmk(&aek), WS, "T", &records, now())
        .unwrap();
    let old = batch("T", now().sub(DAY * 60), 4, "old");
    plane
        .append(ACCOUNT, cmk(&aek), WS, "T", &old, now())
        .unwrap();
    // No AEK handed in anywhere: the revoked storage still removes the old block.
    let pass = plane
        .retention_pass(ACCOUNT, WS, now().sub(DAY * 31), 100, now())
        .unwrap();
    assert_eq!(pass.removals[0].records, 4);
    assert_eq!(
        count(&plane, Some(&aek), "T"),
        3,
        "the straddling block is kept whole"
    );
    let later = plane
        .retention_pass(ACCOUNT, WS, now().sub(DAY * 29), 100, now())
        .unwrap();
    assert_eq!(later.removals[0].records, 3);
    assert_eq!(count(&plane, Some(&aek), "T"), 0);
}

#[test]
fn purge_rewrites_blocks_without_the_matching_records_and_keeps_their_key() {
    let (_dir, plane) = fixture(true);
    let at = now().sub(DAY);
    plane
        .append(
            ACCOUNT,
            Sealing::Mmk,
            WS,
            "T",
            &batch("T", at, 4, "mmk"),
            now(),
        )
        .unwrap();
    let aek = configure_cmk(&plane);
    plane
        .append(
            ACCOUNT,
            cmk(&aek),
            WS,
            "T",
            &batch("T", at, 4, "cmk"),
            now(),
        )
        .unwrap();
    plane
        .append(
            ACCOUNT,
            cmk(&aek),
            WS,
            "Other",
            &batch("Other", at, 4, "cmk"),
            now(),
        )
        .unwrap();
    let is_one =
        |r: &Record| matches!(r.columns.get("User"), Some(Value::String(s)) if s.ends_with("-1"));
    // Without the AEK the CMK block cannot be rewritten: refused, typed.
    let refused = plane.purge_records(ACCOUNT, None, WS, "T", &is_one, now());
    assert!(
        matches!(refused, Err(DataError::KeyUnavailable { .. })),
        "{refused:?}"
    );
    // The refused call changed nothing (the table holds a CMK block): the retry rewrites both
    // blocks and reports both records.
    assert_eq!(plane.stats(ACCOUNT).unwrap().counters.purged_records, 0);
    let report = plane
        .purge_records(ACCOUNT, Some(&aek), WS, "T", &is_one, now())
        .unwrap();
    assert_eq!((report.blocks_rewritten, report.records), (2, 2));
    let left = all_records(&plane, Some(&aek), "T");
    assert_eq!(left.len(), 6);
    assert!(!left.iter().any(is_one));
    assert_eq!(
        count(&plane, Some(&aek), "Other"),
        4,
        "another table is untouched"
    );
    // The rewritten MMK block stayed under the MMK (cold tier headers).
    let keys: Vec<KeyRef> = plane
        .trees
        .cold
        .scan_prefix(store::table_prefix(ACCOUNT, WS, "T"))
        .map(|i| BlockHeader::parse(&i.unwrap().1).unwrap().0.key_ref)
        .collect();
    assert_eq!(keys.iter().filter(|k| **k == KeyRef::Mmk).count(), 1);
    assert_eq!(keys.len(), 2);
    let c = conserved_counters(&plane);
    assert_eq!((c.purged_records, c.stored_records), (2, 10));
    // A second purge finds nothing (it re-seals the table's two blocks under a new key
    // generation all the same: that is what makes a purge final on disk).
    let again = plane
        .purge_records(ACCOUNT, Some(&aek), WS, "T", &is_one, now())
        .unwrap();
    assert_eq!(
        (again.records, again.blocks_rewritten, again.blocks_resealed),
        (0, 0, 2)
    );
    assert_eq!(count(&plane, Some(&aek), "T"), 6);
}

#[test]
fn delete_table_removes_every_block_of_that_table_only() {
    let (_dir, plane) = fixture(true);
    let aek = configure_cmk(&plane);
    for table in ["T", "U"] {
        plane
            .append(
                ACCOUNT,
                cmk(&aek),
                WS,
                table,
                &batch(table, now().sub(DAY), 3, "x"),
                now(),
            )
            .unwrap();
    }
    let removal = plane.delete_table(ACCOUNT, WS, "T").unwrap();
    assert_eq!((removal.blocks, removal.records), (1, 3));
    assert_eq!(count(&plane, Some(&aek), "T"), 0);
    assert_eq!(count(&plane, Some(&aek), "U"), 3);
    let c = conserved_counters(&plane);
    assert_eq!((c.purged_records, c.hot_blocks), (3, 1));
}

/// Issue 14: a purge reaches records still in the outage buffer, so they never come back when
/// the buffer drains; the rewritten entry keeps the time it was buffered (it expires on time),
/// and an entry of another table is untouched.
#[test]
fn purge_removes_matching_records_from_the_outage_buffer_before_it_drains() {
    let (dir, plane) = fixture(true);
    let aek = configure_cmk(&plane);
    let buffered_at = now().sub(Duration::from_secs(600));
    plane
        .buffer_append(
            ACCOUNT,
            WS,
            "T",
            &batch("T", buffered_at, 6, "b"),
            buffered_at,
        )
        .unwrap();
    plane
        .buffer_append(
            ACCOUNT,
            WS,
            "U",
            &batch("U", buffered_at, 6, "b"),
            buffered_at,
        )
        .unwrap();
    // An entry of T whose records all match: deleted, not rewritten.
    let lone = vec![Record::new("T", buffered_at.0).with("User", Value::String("b-1".into()))];
    plane
        .buffer_append(ACCOUNT, WS, "T", &lone, buffered_at)
        .unwrap();
    let is_one = |r: &Record| r.columns.get("User") == Some(&Value::String("b-1".into()));
    let report = plane
        .purge_records(ACCOUNT, None, WS, "T", &is_one, now())
        .unwrap();
    assert_eq!(
        (
            report.records,
            report.buffered_records,
            report.buffer_entries_rewritten
        ),
        (2, 2, 2)
    );
    let len = plane.buffer_len(ACCOUNT).unwrap();
    assert_eq!((len.entries, len.records), (2, 11));
    // Reopen (orphan files would be swept), then drain: the purged record does not come back.
    drop(plane);
    let plane = open(dir.path());
    let files = std::fs::read_dir(dir.path().join("buffer"))
        .unwrap()
        .count();
    assert_eq!(files, 2, "one file per indexed entry, the old ones deleted");
    let drained = plane.drain_buffer(ACCOUNT, cmk(&aek), now()).unwrap();
    assert_eq!(drained.written, 11);
    let t = all_records(&plane, Some(&aek), "T");
    assert_eq!(t.len(), 5);
    assert!(!t.iter().any(is_one));
    assert_eq!(
        count(&plane, Some(&aek), "U"),
        6,
        "another table is untouched"
    );
    let c = conserved_counters(&plane);
    assert_eq!((c.purged_records, c.buffered_records), (2, 0));
}

/// The rewritten buffer entry keeps its buffering time: it expires when the original would have.
#[test]
fn a_purged_buffer_entry_keeps_its_buffering_time() {
    let (_dir, plane) = fixture(false);
    let buffered_at = now().sub(DAY);
    plane
        .buffer_append(
            ACCOUNT,
            WS,
            "T",
            &batch("T", buffered_at, 4, "b"),
            buffered_at,
        )
        .unwrap();
    let is_one = |r: &Record| r.columns.get("User") == Some(&Value::String("b-1".into()));
    plane
        .purge_records(ACCOUNT, None, WS, "T", &is_one, now())
        .unwrap();
    // Expire what was buffered before buffered_at + 1 ms: the rewritten entry goes.
    let expired = plane
        .expire_buffer(ACCOUNT, buffered_at.add(Duration::from_millis(1)))
        .unwrap();
    assert_eq!(expired.dropped_expired, 3);
    let c = conserved_counters(&plane);
    assert_eq!((c.purged_records, c.dropped_expired_records), (1, 3));
}

/// Every file under `dir`, with its bytes (the data directory is small in these tests).
fn every_file(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut stack = vec![dir.to_path_buf()];
    let mut files = Vec::new();
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            files.push((path, bytes));
        }
    }
    assert!(!files.is_empty());
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The canary (issue 14): after a purge, the purged record is gone from every file of the data
/// directory, in the strong sense:
///
/// - its value is in no file and in no live block (every stored block opened with the AEK);
/// - it is in no outage-buffer entry either (it was buffered too);
/// - the table secret of the generation its blocks were sealed under is in no file (raw or hex);
/// - the old sealed blocks that held it — which sled may still keep in its log segments, as
///   this test reports — cannot be opened with everything the data directory holds (the MMK,
///   the infrastructure key, the table keys) plus the account key: the holder of the disk and
///   the customer's key gets `Integrity`, nothing readable.
///
/// Blocks under the MMK and under the CMK, cold and hot copies, double encryption on.
#[test]
fn canary_a_purged_record_is_gone_from_every_file_and_its_old_blocks_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    let marker = "CANARY-purge-3b1d9e4a-must-be-gone";
    let is_marker = |r: &Record| r.columns.get("User") == Some(&Value::String(marker.into()));
    let mut records = batch("T", now().sub(DAY), 20, "keep");
    records.push(Record::new("T", now().sub(DAY).0).with("User", Value::String(marker.into())));
    let (old_blocks, old_secrets, aek_bytes) = {
        let plane = with_account(dir.path(), true);
        plane
            .append(ACCOUNT, Sealing::Mmk, WS, "T", &records, now())
            .unwrap();
        let aek = configure_cmk(&plane);
        plane
            .append(ACCOUNT, cmk(&aek), WS, "T", &records, now())
            .unwrap();
        plane
            .buffer_append(ACCOUNT, WS, "T", &records, now())
            .unwrap();
        // Before: every block (cold and hot) holds the marker and opens.
        let mut old_blocks = Vec::new();
        let cold = plane.trees.cold.iter().map(|i| (Tier::Cold, i));
        let hot = plane.trees.hot.iter().map(|i| (Tier::Hot, i));
        for (tier, item) in cold.chain(hot) {
            let (key, bytes) = item.unwrap();
            let (_, opened) = plane.open_stored(tier, &key, &bytes, Some(&aek)).unwrap();
            assert!(opened.iter().any(is_marker));
            old_blocks.push((tier, key.to_vec(), bytes.to_vec()));
        }
        assert_eq!(old_blocks.len(), 4, "MMK and CMK blocks, cold and hot");
        let old_secrets: Vec<Vec<u8>> = plane
            .table_keys
            .generations(ACCOUNT, WS, "T")
            .iter()
            .map(|g| g.secret.to_vec())
            .collect();
        assert_eq!(old_secrets.len(), 1);
        let report = plane
            .purge_records(ACCOUNT, Some(&aek), WS, "T", &is_marker, now())
            .unwrap();
        assert_eq!(
            (
                report.records,
                report.buffered_records,
                report.blocks_rewritten
            ),
            (3, 1, 2)
        );
        let mut live = 0;
        let cold = plane.trees.cold.iter().map(|i| (Tier::Cold, i));
        let hot = plane.trees.hot.iter().map(|i| (Tier::Hot, i));
        for (tier, item) in cold.chain(hot) {
            let (key, bytes) = item.unwrap();
            let (_, opened) = plane.open_stored(tier, &key, &bytes, Some(&aek)).unwrap();
            live += opened.len();
            assert!(
                !opened.iter().any(is_marker),
                "a live block still holds the purged record"
            );
        }
        assert_eq!(
            live, 80,
            "40 records kept, each in a cold block and read through its hot entry"
        );
        plane.trees.db.flush().unwrap();
        (old_blocks, old_secrets, aek.expose_bytes().to_vec())
    };
    // The data directory as the holder of the disk finds it, with the account key in hand.
    let plane = open(dir.path());
    let aek = Aek::from_bytes(&aek_bytes).unwrap();
    let files = every_file(dir.path());
    let mut old_ciphertexts_in_files = 0;
    for (path, bytes) in &files {
        assert!(
            !contains(bytes, marker.as_bytes()),
            "marker in {}",
            path.display()
        );
        for secret in &old_secrets {
            assert!(
                !contains(bytes, secret) && !contains(bytes, hex::encode(secret).as_bytes()),
                "the destroyed table secret is in {}",
                path.display()
            );
        }
        for (_, _, block) in &old_blocks {
            // The last 64 bytes of the sealed block: ciphertext and tag.
            if contains(bytes, &block[block.len() - 64..]) {
                old_ciphertexts_in_files += 1;
            }
        }
    }
    println!(
        "{} of {} old sealed blocks are still in some file (sled's segments), undecryptable",
        old_ciphertexts_in_files,
        old_blocks.len()
    );
    for (tier, key, block) in &old_blocks {
        let opened = match hot::HotValue::parse(block) {
            // A hot entry (the block's DEK under the MMK and the table secret): tried against
            // the old cold block it stood for, as found in the segments.
            Ok(hot::HotValue::Entry {
                key: kind,
                block_id,
                bytes: entry,
            }) if *tier == Tier::Hot => {
                let (_, _, cold) = old_blocks
                    .iter()
                    .find(|(t, k, _)| *t == Tier::Cold && k == key)
                    .expect("every hot entry stands for a cold block");
                plane.open_hot_entry_with(key, kind, block_id, entry, cold, Some(&aek))
            }
            _ => plane.open_payload(*tier, key, block, Some(&aek)),
        };
        assert!(
            matches!(opened, Err(DataError::Integrity { .. })),
            "an old {tier:?} block opened: {opened:?}"
        );
    }
    // The buffer drained afterwards brings nothing back.
    let drained = plane.drain_buffer(ACCOUNT, cmk(&aek), now()).unwrap();
    assert_eq!(drained.written, 20);
    let all = all_records(&plane, Some(&aek), "T");
    assert_eq!(all.len(), 60);
    assert!(!all.iter().any(is_marker));
}

/// The retention canary (issue 14): a block that retention removed cannot be opened — once
/// the other blocks of its retention bucket have aged out too — with everything the data
/// directory holds (the MMK, the infrastructure key, the table keys) plus the account key: the
/// secret of its key generation is in no file, raw or hex, and the old sealed block, which
/// sled may keep in its segments, answers `Integrity`. The blocks still in retention open.
/// Before retention shredded, the generation outlived its blocks and the old block opened.
#[test]
fn canary_a_block_removed_by_retention_cannot_be_opened_once_its_bucket_aged_out() {
    let dir = tempfile::tempdir().unwrap();
    let marker = "CANARY-retention-8c2f41d0-must-be-gone";
    let retention = DAY * 2;
    let day = |d: u32| now().add(DAY * d);
    let (old_key, old_block, old_secret, aek_bytes) = {
        let plane = with_account(dir.path(), true);
        let aek = configure_cmk(&plane);
        // Day 0: the marker's block; the day's retention pass starts the next bucket.
        let mut first = batch("T", day(0), 5, "day0");
        first.push(Record::new("T", day(0).0 + 10_000).with("User", Value::String(marker.into())));
        plane
            .append(ACCOUNT, cmk(&aek), WS, "T", &first, day(0))
            .unwrap();
        let (old_key, old_block) = {
            let (key, bytes) = plane.trees.cold.iter().next().unwrap().unwrap();
            (key.to_vec(), bytes.to_vec())
        };
        let block_id = store::block_key_id(&old_key).unwrap();
        let old_secret = plane
            .table_keys
            .secret_for(ACCOUNT, WS, "T", block_id)
            .expect("sealed under a table secret")
            .to_vec();
        plane
            .retention_pass(ACCOUNT, WS, day(0).sub(retention), 100, day(0))
            .unwrap();
        // Day 1: the next bucket's data.
        plane
            .append(
                ACCOUNT,
                cmk(&aek),
                WS,
                "T",
                &batch("T", day(1), 5, "day1"),
                day(1),
            )
            .unwrap();
        plane
            .retention_pass(ACCOUNT, WS, day(1).sub(retention), 100, day(1))
            .unwrap();
        assert!(
            plane
                .open_payload(Tier::Cold, &old_key, &old_block, Some(&aek))
                .is_ok(),
            "in retention, the block opens"
        );
        // Day 3: day 0's block ages out (the cutoff is day 1); day 1's stays.
        let pass = plane
            .retention_pass(ACCOUNT, WS, day(3).sub(retention), 100, day(3))
            .unwrap();
        assert_eq!(pass.removals.iter().map(|r| r.blocks).sum::<u64>(), 1);
        let kept = all_records(&plane, Some(&aek), "T");
        assert_eq!(kept.len(), 5);
        assert!(kept
            .iter()
            .all(|r| r.columns["User"] != Value::String(marker.into())));
        (old_key, old_block, old_secret, aek.expose_bytes().to_vec())
    };
    // The data directory as the holder of the disk finds it, with the account key in hand.
    let plane = open(dir.path());
    let aek = Aek::from_bytes(&aek_bytes).unwrap();
    for (path, bytes) in every_file(dir.path()) {
        assert!(
            !contains(&bytes, marker.as_bytes()),
            "marker in {}",
            path.display()
        );
        assert!(
            !contains(&bytes, &old_secret)
                && !contains(&bytes, hex::encode(&old_secret).as_bytes()),
            "the destroyed generation's secret is in {}",
            path.display()
        );
    }
    let opened = plane.open_payload(Tier::Cold, &old_key, &old_block, Some(&aek));
    assert!(
        matches!(opened, Err(DataError::Integrity { .. })),
        "the removed block opened: {opened:?}"
    );
    assert_eq!(all_records(&plane, Some(&aek), "T").len(), 5);
}

/// The environment variables of the crash child ([`purge_crash_child`]).
const CRASH_DIR_VAR: &str = "CMKSIM_PURGE_CRASH_DIR";
const CRASH_STEP_VAR: &str = "CMKSIM_PURGE_CRASH_STEP";
const CRASH_AEK_VAR: &str = "CMKSIM_PURGE_CRASH_AEK";

/// The data of the crash test: `blocks` CMK blocks of table T (five records each, one of them
/// `doomed-i`) and one MMK block, a hot copy each, a buffered entry, and another table U.
/// Returns the AEK's bytes (the fixture's "Key Vault" wrapping is fake: the test keeps the key).
fn crash_fixture(dir: &Path, blocks: usize) -> Vec<u8> {
    let plane = with_account(dir, true);
    plane
        .append(ACCOUNT, Sealing::Mmk, WS, "T", &crash_batch(100), now())
        .unwrap();
    let aek = configure_cmk(&plane);
    for i in 0..blocks {
        plane
            .append(ACCOUNT, cmk(&aek), WS, "T", &crash_batch(i), now())
            .unwrap();
    }
    plane
        .append(
            ACCOUNT,
            cmk(&aek),
            WS,
            "U",
            &crash_batch_of("U", 200),
            now(),
        )
        .unwrap();
    plane
        .buffer_append(ACCOUNT, WS, "T", &crash_batch(300), now())
        .unwrap();
    aek.expose_bytes().to_vec()
}

/// Five records of T; the third is `doomed-<n>`, the others `keep-<n>-<i>`.
fn crash_batch(n: usize) -> Vec<Record> {
    crash_batch_of("T", n)
}

fn crash_batch_of(table: &str, n: usize) -> Vec<Record> {
    let at = now().sub(DAY).add(Duration::from_secs(n as u64 * 10));
    (0..5)
        .map(|i| {
            let user = if i == 2 {
                format!("doomed-{n}")
            } else {
                format!("keep-{n}-{i}")
            };
            Record::new(table, at.0 + i as i64 * 1000).with("User", Value::String(user))
        })
        .collect()
}

fn is_doomed(r: &Record) -> bool {
    matches!(r.columns.get("User"), Some(Value::String(s)) if s.starts_with("doomed-"))
}

/// The `User` values of a table's stored records, sorted.
fn users(plane: &DataPlane, aek: &Aek, table: &str) -> Vec<String> {
    let mut out: Vec<String> = all_records(plane, Some(aek), table)
        .iter()
        .filter_map(|r| match r.columns.get("User") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// Copies every file under `from` to `to`: what a crash at this instant leaves on disk.
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The child of the crash test: opens the directory it is given and purges the `doomed-`
/// records, aborting the process at the purge step it is given. Ignored: only the crash test
/// runs it, in a process of its own.
#[test]
#[ignore]
fn purge_crash_child() {
    let (Ok(dir), Ok(step), Ok(aek)) = (
        std::env::var(CRASH_DIR_VAR),
        std::env::var(CRASH_STEP_VAR),
        std::env::var(CRASH_AEK_VAR),
    ) else {
        return;
    };
    let plane = open(Path::new(&dir));
    let aek = Aek::from_bytes(&hex::decode(aek).unwrap()).unwrap();
    lifecycle::CRASH_STEPS.with(|c| c.set((0, step.parse().unwrap())));
    plane
        .purge_records(ACCOUNT, Some(&aek), WS, "T", &is_doomed, now())
        .unwrap();
}
/// Appends racing purges of the same table: an append that took its block ids before a purge
/// began seals under the generation the purge destroys, so the purge waits for it and re-seals
/// its blocks; every acknowledged record that the purges do not target stays readable.
#[test]
fn appends_racing_purges_of_the_same_table_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plane = std::sync::Arc::new(with_account(dir.path(), true));
    let aek = std::sync::Arc::new(configure_cmk(&plane));
    const BATCHES: usize = 60;
    let writer = {
        let (plane, aek) = (plane.clone(), aek.clone());
        std::thread::spawn(move || {
            for i in 0..BATCHES {
                let mut records = batch("T", now().sub(DAY), 4, &format!("keep{i}"));
                records.push(
                    Record::new("T", now().sub(DAY).0).with("User", Value::String("doomed".into())),
                );
                plane
                    .append(ACCOUNT, cmk(&aek), WS, "T", &records, now())
                    .unwrap();
            }
        })
    };
    let is_doomed = |r: &Record| r.columns.get("User") == Some(&Value::String("doomed".into()));
    let (mut purges, mut waits) = (0, 0);
    while !writer.is_finished() {
        let report = plane
            .purge_records(ACCOUNT, Some(&aek), WS, "T", &is_doomed, now())
            .unwrap();
        purges += 1;
        waits += report.append_waits;
    }
    // How often a purge met an append under way varies from run to run: printed, not asserted.
    println!("{purges} purges raced {BATCHES} appends, waiting {waits} times");
    writer.join().unwrap();
    plane
        .purge_records(ACCOUNT, Some(&aek), WS, "T", &is_doomed, now())
        .unwrap();
    let left = all_records(&plane, Some(&aek), "T");
    assert_eq!(left.len(), BATCHES * 4, "after {purges} racing purges");
    assert!(!left.iter().any(is_doomed));
    assert_eq!(plane.table_keys.generations(ACCOUNT, WS, "T").len(), 1);
    let c = conserved_counters(&plane);
    assert_eq!(c.purged_records, BATCHES as u64);
}

/// A measurement, not a check (no timed assertion): how long one bounded retention pass takes
/// to remove 4,096 blocks (the per-tick bound) of 10 records each, and a purge of one table of
/// 1,000 such blocks under the CMK. Run with
/// `cargo test -p cmksim-storage --lib lifecycle_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn lifecycle_cost() {
    let (_dir, plane) = fixture(true);
    let old = now().sub(DAY * 40);
    for i in 0..4_096 {
        let at = old.add(Duration::from_secs(i));
        plane
            .append(ACCOUNT, Sealing::Mmk, WS, "T", &batch("T", at, 10, "r"), at)
            .unwrap();
    }
    let started = std::time::Instant::now();
    let pass = plane
        .retention_pass(ACCOUNT, WS, now().sub(DAY * 31), 4_096, now())
        .unwrap();
    println!(
        "retention pass: {} blocks, {} records in {:?}",
        pass.removals[0].blocks,
        pass.removals[0].records,
        started.elapsed()
    );
    let aek = configure_cmk(&plane);
    for i in 0..1_000 {
        let at = now().sub(DAY).add(Duration::from_secs(i));
        plane
            .append(ACCOUNT, cmk(&aek), WS, "P", &batch("P", at, 10, "p"), now())
            .unwrap();
    }
    let started = std::time::Instant::now();
    let is_three = |r: &Record| r.columns.get("User") == Some(&Value::String("p-3".into()));
    let report = plane
        .purge_records(ACCOUNT, Some(&aek), WS, "P", &is_three, now())
        .unwrap();
    println!(
        "purge: {} blocks read, {} rewritten, {} records removed in {:?}",
        1_000,
        report.blocks_rewritten,
        report.records,
        started.elapsed()
    );
    // A purge that matches one record of one block still re-seals the whole table under a new
    // key generation (the cost of making it final on disk).
    let started = std::time::Instant::now();
    let is_one = |r: &Record| {
        r.columns.get("User") == Some(&Value::String("p-5".into()))
            && r.time_generated_ms == now().sub(DAY).0 + 5_000
    };
    let report = plane
        .purge_records(ACCOUNT, Some(&aek), WS, "P", &is_one, now())
        .unwrap();
    println!(
        "purge of one record: {} blocks rewritten, {} re-sealed, {} records removed in {:?}",
        report.blocks_rewritten,
        report.blocks_resealed,
        report.records,
        started.elapsed()
    );
}

/// The crash test (issue 14): a purge killed (`abort`, as abrupt as `kill -9`) at seeded steps —
/// after the new key generation is persisted, after any block's re-seal transaction, after the
/// flush, after the old generation is destroyed, inside the buffer's rewrite — then the
/// directory reopened: no acknowledged record that the purge does not target is lost (every
/// `keep-` record of T and U is readable, counters conserved); the purge, retried as the control
/// plane retries a pending one, completes; then no `doomed-` record is readable, the buffer
/// drained brings none back, and no generation of T's secret from before the purge is in any file.
#[test]
fn a_purge_killed_at_any_step_loses_no_record_and_completes_when_retried() {
    let template = tempfile::tempdir().unwrap();
    let aek_bytes = crash_fixture(template.path(), 6);
    let aek = Aek::from_bytes(&aek_bytes).unwrap();
    let (kept_t, kept_u, old_secrets) = {
        let plane = open(template.path());
        let all = users(&plane, &aek, "T");
        let kept: Vec<String> = all.into_iter().filter(|u| u.starts_with("keep-")).collect();
        let secrets: Vec<Vec<u8>> = plane
            .table_keys
            .generations(ACCOUNT, WS, "T")
            .iter()
            .map(|g| g.secret.to_vec())
            .collect();
        (kept, users(&plane, &aek, "U"), secrets)
    };
    assert_eq!(kept_t.len(), 28);
    // How many steps a whole purge has: run one in this process, counting.
    let steps = {
        let counting = tempfile::tempdir().unwrap();
        copy_dir(template.path(), counting.path());
        let plane = open(counting.path());
        lifecycle::CRASH_STEPS.with(|c| c.set((0, 0)));
        plane
            .purge_records(ACCOUNT, Some(&aek), WS, "T", &is_doomed, now())
            .unwrap();
        lifecycle::CRASH_STEPS.with(|c| c.get().0)
    };
    // 1 (new generation) + 2 per buffer entry + 1 per block re-sealed (7) + flush + destroy.
    assert_eq!(steps, 12);
    let mut rng = RandomSource::from_seed([14; 32]);
    let mut picks: Vec<u64> = vec![1, steps];
    while picks.len() < 6 {
        let step = 1 + rand::Rng::gen_range(&mut rng, 0..steps);
        if !picks.contains(&step) {
            picks.push(step);
        }
    }
    picks.sort();
    for step in picks {
        let work = tempfile::tempdir().unwrap();
        copy_dir(template.path(), work.path());
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "data::lifecycle_tests::purge_crash_child",
                "--ignored",
                "--test-threads=1",
            ])
            .env(CRASH_DIR_VAR, work.path())
            .env(CRASH_STEP_VAR, step.to_string())
            .env(CRASH_AEK_VAR, hex::encode(&aek_bytes))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "step {step}: the child was to abort");
        let plane = open(work.path());
        let after_crash = users(&plane, &aek, "T");
        for user in &kept_t {
            assert!(after_crash.contains(user), "step {step}: {user} lost");
        }
        assert!(after_crash
            .iter()
            .all(|u| u.starts_with("keep-") || u.starts_with("doomed-")));
        assert_eq!(users(&plane, &aek, "U"), kept_u, "step {step}");
        conserved_counters(&plane);
        plane
            .purge_records(ACCOUNT, Some(&aek), WS, "T", &is_doomed, now())
            .unwrap();
        assert_eq!(users(&plane, &aek, "T"), kept_t, "step {step}");
        assert_eq!(plane.table_keys.generations(ACCOUNT, WS, "T").len(), 1);
        let drained = plane.drain_buffer(ACCOUNT, cmk(&aek), now()).unwrap();
        assert_eq!(
            drained.written, 4,
            "step {step}: the buffered doomed record came back"
        );
        let c = conserved_counters(&plane);
        assert_eq!(c.purged_records, 8, "step {step}");
        drop(plane);
        for (path, bytes) in every_file(work.path()) {
            for secret in &old_secrets {
                assert!(
                    !contains(&bytes, hex::encode(secret).as_bytes()),
                    "step {step}: the destroyed table secret is in {}",
                    path.display()
                );
            }
        }
    }
}
