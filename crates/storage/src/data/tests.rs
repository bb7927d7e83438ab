//! Tests of the data plane through its public facade (plus direct sled access to tamper).

use std::path::Path;
use std::time::Duration;

use cmksim_sim::{Profile, RandomSource, SimTime};

use super::*;

const ACCOUNT: &str = "cluster:c1";
const DAY: Duration = Duration::from_secs(86_400);
const HOUR: Duration = Duration::from_secs(3_600);

fn now() -> SimTime {
    SimTime::DEFAULT_EPOCH.add(DAY * 100)
}

fn open(dir: &Path, profile: &Profile) -> DataPlane {
    DataPlane::open(dir, RandomSource::from_seed([7; 32]), profile).unwrap()
}

fn open_with(dir: &Path, change: impl FnOnce(&mut DataConfig)) -> DataPlane {
    let mut config = DataConfig::from_profile(&Profile::azure_2020());
    change(&mut config);
    DataPlane::open_with_config(dir, RandomSource::from_seed([7; 32]), config).unwrap()
}

fn records(table: &str, start: SimTime, n: usize, tag: &str) -> Vec<Record> {
    (0..n)
        .map(|i| {
            Record::new(table, start.0 + i as i64 * 1000)
                .with("Computer", Value::String(format!("{tag}-{i}")))
                .with("Seq", Value::Long(i as i64))
        })
        .collect()
}

fn seqs(result: &QueryResult) -> Vec<String> {
    result
        .records
        .iter()
        .map(|r| match &r.columns["Computer"] {
            Value::String(s) => s.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

/// Configures CMK the way the access loop does: unwrap under the MMK, "wrap through Key Vault".
fn configure_cmk(plane: &DataPlane, account: &str) -> Aek {
    let aek = plane.unwrap_with_mmk(account).unwrap();
    plane
        .set_kek_wrapping(
            account,
            &aek,
            "https://v1.vault.azure.net/keys/k1",
            "v1",
            b"wrapped-by-key-vault",
        )
        .unwrap();
    aek
}

fn cmk<'a>(aek: &'a Aek) -> Sealing<'a> {
    Sealing::Cmk {
        aek,
        kid: "https://v1.vault.azure.net/keys/k1",
        version: "v1",
    }
}

fn all_time() -> (SimTime, SimTime) {
    (SimTime(i64::MIN / 2), SimTime(i64::MAX / 2))
}

#[test]
fn data_plane_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DataPlane>();
}

#[test]
fn round_trip_with_and_without_double_encryption() {
    let dir = tempfile::tempdir().unwrap();
    let plane = open(dir.path(), &Profile::azure_2020());
    let (from, to) = all_time();
    for (account, double) in [("cluster:single", false), ("cluster:double", true)] {
        plane.create_account(account, double, now()).unwrap();
        let aek = configure_cmk(&plane, account);
        let batch = records("Heartbeat", now().sub(HOUR), 50, "r");
        let receipt = plane
            .append(account, cmk(&aek), "ws1", "Heartbeat", &batch, now())
            .unwrap();
        assert_eq!((receipt.records, receipt.block_ids.len()), (50, 1));
        let result = plane
            .query(account, Some(&aek), "ws1", "Heartbeat", from, to, now())
            .unwrap();
        assert_eq!(result.records, batch);
        // The sealed cold copy is marked with its algorithms in the authenticated header.
        let (_, cold) = plane
            .trees
            .cold
            .scan_prefix(store::account_prefix(account))
            .next()
            .unwrap()
            .unwrap();
        let (header, _) = BlockHeader::parse(&cold).unwrap();
        assert_eq!(header.double_encryption, double);
        assert!(matches!(header.key_ref, KeyRef::Cmk { .. }));
        assert!(plane.stats(account).unwrap().counters.conserved());
        // Another workspace or table sees nothing (invariant 8).
        assert!(plane
            .query(account, Some(&aek), "ws2", "Heartbeat", from, to, now())
            .unwrap()
            .records
            .is_empty());
        assert!(plane
            .query(account, Some(&aek), "ws1", "Perf", from, to, now())
            .unwrap()
            .records
            .is_empty());
    }
    assert!(matches!(
        plane.unwrap_with_mmk("cluster:single"),
        Err(DataError::NotMmkWrapped { .. })
    ));
}

#[test]
fn blocks_split_at_block_max_bytes_and_keep_order() {
    let dir = tempfile::tempdir().unwrap();
    let plane = open_with(dir.path(), |c| c.block_max_bytes = 256);
    plane.create_account(ACCOUNT, true, now()).unwrap();
    let batch = records("Perf", now().sub(HOUR), 100, "r");
    let receipt = plane
        .append(ACCOUNT, Sealing::Mmk, "ws1", "Perf", &batch, now())
        .unwrap();
    assert!(receipt.block_ids.len() > 5, "{receipt:?}");
    let (from, to) = all_time();
    let result = plane
        .query(ACCOUNT, None, "ws1", "Perf", from, to, now())
        .unwrap();
    assert_eq!(result.records, batch);
    assert_eq!(result.stats.blocks_read, receipt.block_ids.len() as u64);
    // Time range is [from, to).
    let part = plane
        .query(
            ACCOUNT,
            None,
            "ws1",
            "Perf",
            SimTime(batch[10].time_generated_ms),
            SimTime(batch[20].time_generated_ms),
            now(),
        )
        .unwrap();
    assert_eq!(part.records, batch[10..20].to_vec());
    // Too large a record, a bad table, bad names: typed errors, nothing written.
    let big = vec![Record::new("Perf", 0).with("x", Value::String("y".repeat(2000)))];
    assert!(matches!(
        plane.append(ACCOUNT, Sealing::Mmk, "ws1", "Perf", &big, now()),
        Err(DataError::RecordTooLarge { .. })
    ));
    assert!(matches!(
        plane.append(ACCOUNT, Sealing::Mmk, "ws1", "Heartbeat", &batch, now()),
        Err(DataError::InvalidRecord { index: 0, .. })
    ));
    assert!(matches!(
        plane.append(ACCOUNT, Sealing::Mmk, "w\0s", "Perf", &batch, now()),
        Err(DataError::InvalidName { .. })
    ));
    assert!(matches!(
        plane.create_account("c1", false, now()),
        Err(DataError::InvalidName { .. })
    ));
    assert!(matches!(
        plane.create_account(ACCOUNT, false, now()),
        Err(DataError::AccountExists(_))
    ));
    assert_eq!(plane.stats(ACCOUNT).unwrap().counters.stored_records, 100);
}

#[test]
fn mmk_then_cmk_data_is_queried_together() {
    let dir = tempfile::tempdir().unwrap();
    let plane = open(dir.path(), &Profile::azure_2020());
    plane.create_account(ACCOUNT, true, now()).unwrap();
    // Old data (outside the hot window) so that the cold tier answers.
    let before = records("T", now().sub(DAY * 30), 5, "mmk");
    plane
        .append(ACCOUNT, Sealing::Mmk, "ws1", "T", &before, now())
        .unwrap();
    let aek = configure_cmk(&plane, ACCOUNT);
    assert!(
        matches!(plane.account_wrapping(ACCOUNT).unwrap(), AekWrapping::Kek { ref version, .. } if version == "v1")
    );
    // Once CMK is configured, new data cannot go under the MMK.
    assert!(matches!(
        plane.append(ACCOUNT, Sealing::Mmk, "ws1", "T", &before, now()),
        Err(DataError::SealingMismatch { .. })
    ));
    let after = records("T", now().sub(DAY * 20), 5, "cmk");
    plane
        .append(ACCOUNT, cmk(&aek), "ws1", "T", &after, now())
        .unwrap();
    let (from, to) = all_time();
    let result = plane
        .query(ACCOUNT, Some(&aek), "ws1", "T", from, to, now())
        .unwrap();
    assert_eq!(result.records, [before.clone(), after].concat());
    assert_eq!(result.stats.served_from_cold, 2);
    // Without the AEK the MMK data is readable, the CMK data is a typed error.
    let mmk_only = plane
        .query(
            ACCOUNT,
            None,
            "ws1",
            "T",
            from,
            SimTime(now().sub(DAY * 25).0),
            now(),
        )
        .unwrap();
    assert_eq!(mmk_only.records, before);
    assert!(matches!(
        plane.query(ACCOUNT, None, "ws1", "T", from, to, now()),
        Err(DataError::KeyUnavailable { .. })
    ));
    // Rotation: a new KEK version rewraps the same AEK; every block still decrypts (invariant 6).
    plane
        .set_kek_wrapping(
            ACCOUNT,
            &aek,
            "https://v1.vault.azure.net/keys/k1",
            "v2",
            b"rewrapped",
        )
        .unwrap();
    assert_eq!(
        plane
            .query(ACCOUNT, Some(&aek), "ws1", "T", from, to, now())
            .unwrap()
            .records
            .len(),
        10
    );
}

#[test]
fn wrong_aek_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let plane = open(dir.path(), &Profile::azure_current());
    plane.create_account(ACCOUNT, false, now()).unwrap();
    let aek = configure_cmk(&plane, ACCOUNT);
    plane
        .append(
            ACCOUNT,
            cmk(&aek),
            "ws1",
            "T",
            &records("T", now(), 3, "r"),
            now(),
        )
        .unwrap();
    let wrong = Aek::from_bytes(&[0x42; 32]).unwrap();
    let (from, to) = all_time();
    assert!(matches!(
        plane.query(ACCOUNT, Some(&wrong), "ws1", "T", from, to, now()),
        Err(DataError::WrongAek { .. })
    ));
    assert!(matches!(
        plane.append(ACCOUNT, cmk(&wrong), "ws1", "T", &[], now()),
        Err(DataError::WrongAek { .. })
    ));
    assert!(matches!(
        plane.set_kek_wrapping(ACCOUNT, &wrong, "k", "v", b"w"),
        Err(DataError::WrongAek { .. })
    ));
    // Even past the fingerprint check, a wrong key fails authentication rather than giving garbage.
    let (key, cold) = plane.trees.cold.iter().next().unwrap().unwrap();
    assert!(matches!(
        plane.open_stored(Tier::Cold, &key, &cold, Some(&wrong)),
        Err(DataError::Integrity { .. })
    ));
}

#[test]
fn tampered_blocks_and_headers_fail_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let plane = open(dir.path(), &Profile::azure_current());
    plane.create_account(ACCOUNT, true, now()).unwrap();
    let aek = configure_cmk(&plane, ACCOUNT);
    plane
        .append(
            ACCOUNT,
            cmk(&aek),
            "ws1",
            "T",
            &records("T", now().sub(DAY * 30), 3, "r"),
            now(),
        )
        .unwrap();
    let (from, to) = all_time();
    let (key, original) = plane.trees.cold.iter().next().unwrap().unwrap();
    let (_, header_len) = BlockHeader::parse(&original).unwrap();
    // Offsets: 30 = record count, 44 = outer algorithm, 70 = inside the account name,
    // header_len + 5 = ciphertext, last byte = the outer tag.
    for offset in [30, 44, 70, header_len + 5, original.len() - 1] {
        let mut tampered = original.to_vec();
        tampered[offset] ^= 0x01;
        plane.trees.cold.insert(&key, tampered).unwrap();
        let err = plane
            .query(ACCOUNT, Some(&aek), "ws1", "T", from, to, now())
            .unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Integrity { .. } | DataError::MalformedBlock { .. }
            ),
            "offset {offset}: {err}"
        );
    }
    // A header byte change that still parses is an integrity failure, not a parse error.
    let mut tampered = original.to_vec();
    tampered[30 + 3] ^= 0x01;
    plane.trees.cold.insert(&key, tampered).unwrap();
    assert!(matches!(
        plane.query(ACCOUNT, Some(&aek), "ws1", "T", from, to, now()),
        Err(DataError::Integrity { .. })
    ));
    // A genuine block moved under another table's key is refused too.
    plane.trees.cold.insert(&key, original.clone()).unwrap();
    let moved = store::block_key(ACCOUNT, "ws1", "U", i64::MAX / 4, 1);
    plane.trees.cold.insert(&moved, original.clone()).unwrap();
    assert!(matches!(
        plane.query(ACCOUNT, Some(&aek), "ws1", "U", from, to, now()),
        Err(DataError::Integrity { .. })
    ));
    assert_eq!(
        plane
            .query(ACCOUNT, Some(&aek), "ws1", "T", from, to, now())
            .unwrap()
            .records
            .len(),
        3
    );
}

#[test]
fn hot_tier_is_deleted_then_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let plane = open(dir.path(), &Profile::azure_2020());
    plane.create_account(ACCOUNT, true, now()).unwrap();
    let aek = configure_cmk(&plane, ACCOUNT);
    let recent = records("T", now().sub(DAY), 4, "recent");
    let old = records("T", now().sub(DAY * 20), 4, "old");
    plane
        .append(ACCOUNT, cmk(&aek), "ws1", "T", &recent, now())
        .unwrap();
    plane
        .append(ACCOUNT, cmk(&aek), "ws1", "T", &old, now())
        .unwrap();
    let (from, to) = all_time();
    let result = plane
        .query(ACCOUNT, Some(&aek), "ws1", "T", from, to, now())
        .unwrap();
    assert_eq!(
        (result.stats.served_from_hot, result.stats.served_from_cold),
        (1, 1)
    );
    assert_eq!(plane.delete_hot_tier(ACCOUNT).unwrap(), 1);
    assert_eq!(plane.stats(ACCOUNT).unwrap().counters.hot_blocks, 0);
    let result = plane
        .query(ACCOUNT, Some(&aek), "ws1", "T", from, to, now())
        .unwrap();
    assert_eq!(
        (result.stats.served_from_hot, result.stats.served_from_cold),
        (0, 2)
    );
    assert_eq!(
        plane.rebuild_hot_tier(ACCOUNT, Some(&aek), now()).unwrap(),
        1
    );
    assert_eq!(
        plane.rebuild_hot_tier(ACCOUNT, Some(&aek), now()).unwrap(),
        0
    );
    let result = plane
        .query(ACCOUNT, Some(&aek), "ws1", "T", from, to, now())
        .unwrap();
    assert_eq!(
        (result.stats.served_from_hot, result.stats.served_from_cold),
        (1, 1)
    );
    assert_eq!(result.records, [old, recent].concat());
    // Fifteen days later the hot copy has left the window: eviction removes it.
    assert_eq!(
        plane.evict_hot_tier(ACCOUNT, now().add(DAY * 15)).unwrap(),
        1
    );
    assert_eq!(plane.stats(ACCOUNT).unwrap().counters.hot_blocks, 0);
}

#[test]
fn hot_tier_key_follows_the_profile() {
    let (from, to) = all_time();
    for (profile, opens_without_aek) in [
        (Profile::azure_2020(), true),
        (Profile::azure_current(), false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let plane = open(dir.path(), &profile);
        plane.create_account(ACCOUNT, false, now()).unwrap();
        let aek = configure_cmk(&plane, ACCOUNT);
        let batch = records("T", now().sub(HOUR), 3, "r");
        plane
            .append(ACCOUNT, cmk(&aek), "ws1", "T", &batch, now())
            .unwrap();
        let (_, hot) = plane.trees.hot.iter().next().unwrap().unwrap();
        // The hot tier holds the block's DEK under its key, not a second copy of the data.
        assert_eq!(hot.len(), hot::HOT_ENTRY_BYTES);
        let Ok(hot::HotValue::Entry { key: kind, .. }) = hot::HotValue::parse(&hot) else {
            panic!("a hot entry");
        };
        let without = plane.query(ACCOUNT, None, "ws1", "T", from, to, now());
        if opens_without_aek {
            assert_eq!(kind, hot::HotKey::Mmk);
            assert_eq!(without.unwrap().records, batch);
        } else {
            assert_eq!(kind, hot::HotKey::Cmk);
            assert!(matches!(without, Err(DataError::KeyUnavailable { .. })));
        }
        let with = plane
            .query(ACCOUNT, Some(&aek), "ws1", "T", from, to, now())
            .unwrap();
        assert_eq!((with.records, with.stats.served_from_hot), (batch, 1));
    }
}

/// A full hot copy written before hot entries (a sealed block of tier hot) is still read.
#[test]
fn a_legacy_full_hot_copy_is_still_read() {
    let (from, to) = all_time();
    let dir = tempfile::tempdir().unwrap();
    let plane = open(dir.path(), &Profile::azure_2020());
    plane.create_account(ACCOUNT, true, now()).unwrap();
    let aek = configure_cmk(&plane, ACCOUNT);
    let batch = records("T", now().sub(HOUR), 3, "r");
    let receipt = plane
        .append(ACCOUNT, cmk(&aek), "ws1", "T", &batch, now())
        .unwrap();
    let (key, _) = plane.trees.hot.iter().next().unwrap().unwrap();
    let chunk = plane.split(&batch, "T").unwrap().pop().unwrap();
    let legacy = plane.seal(
        Tier::Hot,
        &plane.account_record(ACCOUNT).unwrap(),
        Sealing::Mmk,
        "ws1",
        "T",
        chunk,
        receipt.block_ids[0],
        now(),
        &mut RandomSource::from_seed([4; 32]),
    );
    plane.trees.hot.insert(&key, legacy).unwrap();
    let result = plane
        .query(ACCOUNT, None, "ws1", "T", from, to, now())
        .unwrap();
    assert_eq!((result.records, result.stats.served_from_hot), (batch, 1));
}

/// A hot entry opens only the block it was made for, and not once changed.
#[test]
fn a_hot_entry_under_another_block_or_changed_does_not_open() {
    let (from, to) = all_time();
    let dir = tempfile::tempdir().unwrap();
    let plane = open(dir.path(), &Profile::azure_2020());
    plane.create_account(ACCOUNT, true, now()).unwrap();
    let aek = configure_cmk(&plane, ACCOUNT);
    for start in [now().sub(HOUR * 2), now().sub(HOUR)] {
        plane
            .append(
                ACCOUNT,
                cmk(&aek),
                "ws1",
                "T",
                &records("T", start, 3, "r"),
                now(),
            )
            .unwrap();
    }
    let entries: Vec<(sled::IVec, sled::IVec)> =
        plane.trees.hot.iter().map(|i| i.unwrap()).collect();
    assert_eq!(entries.len(), 2);
    let integrity = |plane: &DataPlane| {
        matches!(
            plane.query(ACCOUNT, None, "ws1", "T", from, to, now()),
            Err(DataError::Integrity { tier: "hot", .. })
        )
    };
    // The first block's entry under the second block's key.
    plane
        .trees
        .hot
        .insert(&entries[1].0, &entries[0].1)
        .unwrap();
    assert!(integrity(&plane), "an entry moved to another block opened");
    let mut changed = entries[1].1.to_vec();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    plane.trees.hot.insert(&entries[1].0, changed).unwrap();
    assert!(integrity(&plane), "a changed entry opened");
    plane
        .trees
        .hot
        .insert(&entries[1].0, &entries[1].1)
        .unwrap();
    assert_eq!(
        plane
            .query(ACCOUNT, None, "ws1", "T", from, to, now())
            .unwrap()
            .stats
            .served_from_hot,
        2
    );
}

#[test]
fn buffer_drains_in_order_exactly_once_and_drops_expired_entries() {
    let dir = tempfile::tempdir().unwrap();
    let plane = open(dir.path(), &Profile::azure_2020()); // buffer_window = 6h
    let window = plane.config().buffer_window;
    plane.create_account(ACCOUNT, true, now()).unwrap();
    let aek = configure_cmk(&plane, ACCOUNT);
    let t0 = now();
    let expired = records("T", t0, 3, "expired");
    let kept_a = records("T", t0.add(HOUR * 2), 4, "a");
    let kept_b = records("T", t0.add(HOUR * 3), 5, "b");
    plane
        .buffer_append(ACCOUNT, "ws1", "T", &expired, t0)
        .unwrap();
    plane
        .buffer_append(ACCOUNT, "ws1", "T", &kept_a, t0.add(HOUR * 2))
        .unwrap();
    plane
        .buffer_append(ACCOUNT, "ws1", "T", &kept_b, t0.add(HOUR * 3))
        .unwrap();
    assert_eq!(plane.buffer_len(ACCOUNT).unwrap().records, 12);
    // Buffered entries are under the MMK, not the CMK.
    let (key, index) = plane.trees.buffer.iter().next().unwrap().unwrap();
    let entry = plane.read_entry(&key, &index).unwrap();
    assert_eq!(BlockHeader::parse(&entry).unwrap().0.key_ref, KeyRef::Mmk);
    let drain_at = t0.add(window).add(HOUR); // the first entry is 7h old, the others 5h and 4h
    let report = plane.drain_buffer(ACCOUNT, cmk(&aek), drain_at).unwrap();
    assert_eq!(
        report,
        DrainReport {
            written: 9,
            written_blocks: 2,
            dropped_expired: 3,
            dropped_entries: 1,
            written_by_workspace: [(
                "ws1".to_string(),
                buffer::WorkspaceRecords {
                    records: 9,
                    buffered_from_ms: t0.add(HOUR * 2).0
                }
            )]
            .into(),
            expired_by_workspace: [(
                "ws1".to_string(),
                buffer::WorkspaceRecords {
                    records: 3,
                    buffered_from_ms: t0.0
                }
            )]
            .into(),
        }
    );
    assert_eq!(
        plane.drain_buffer(ACCOUNT, cmk(&aek), drain_at).unwrap(),
        DrainReport::default()
    );
    let (from, to) = all_time();
    let result = plane
        .query(ACCOUNT, Some(&aek), "ws1", "T", from, to, drain_at)
        .unwrap();
    assert_eq!(
        seqs(&result),
        seqs(&QueryResult {
            records: [kept_a, kept_b].concat(),
            stats: ScanStats::default()
        })
    );
    // Every block written by the drain is under the CMK.
    for item in plane.trees.cold.iter() {
        let (_, v) = item.unwrap();
        assert!(matches!(
            BlockHeader::parse(&v).unwrap().0.key_ref,
            KeyRef::Cmk { .. }
        ));
    }
    let c = plane.stats(ACCOUNT).unwrap().counters;
    assert_eq!(
        (
            c.accepted_records,
            c.stored_records,
            c.buffered_records,
            c.dropped_expired_records
        ),
        (12, 9, 0, 3)
    );
    assert!(c.conserved());
}

#[test]
fn buffer_lives_on_disk_and_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let batch = records("T", now(), 20, "buffered");
    {
        let plane = open_with(dir.path(), |c| c.buffer_max_bytes = 2048);
        plane.create_account(ACCOUNT, false, now()).unwrap();
        let receipt = plane
            .buffer_append(ACCOUNT, "ws1", "T", &batch, now())
            .unwrap();
        assert!(receipt.bytes < 2048);
        let err = plane
            .buffer_append(
                ACCOUNT,
                "ws1",
                "T",
                // Ten times the first batch's records (not copies of them: the columnar
                // payload stores a repeated value once).
                &records("T", now(), 200, "overflowing"),
                now(),
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                DataError::BufferFull {
                    buffer_max_bytes: 2048,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(plane.buffer_len(ACCOUNT).unwrap().records, 20);
    }
    let entry_files = |dir: &Path| std::fs::read_dir(dir.join("buffer")).unwrap().count();
    assert_eq!(entry_files(dir.path()), 1, "one entry, one file");
    // An entry file nobody indexed (a crash between file write and index) is removed at open.
    std::fs::write(
        dir.path().join("buffer").join("00000000000000999999.blk"),
        b"orphan",
    )
    .unwrap();
    let plane = open_with(dir.path(), |c| c.buffer_max_bytes = 2048);
    assert_eq!(entry_files(dir.path()), 1);
    assert_eq!(plane.buffer_len(ACCOUNT).unwrap().records, 20);
    let aek = configure_cmk(&plane, ACCOUNT);
    assert_eq!(
        plane
            .drain_buffer(ACCOUNT, cmk(&aek), now())
            .unwrap()
            .written,
        20
    );
    assert_eq!(
        entry_files(dir.path()),
        0,
        "drained entries' files are deleted"
    );
    let (from, to) = all_time();
    assert_eq!(
        plane
            .query(ACCOUNT, Some(&aek), "ws1", "T", from, to, now())
            .unwrap()
            .records,
        batch
    );
}

#[test]
fn retention_removes_old_blocks_only() {
    let dir = tempfile::tempdir().unwrap();
    let plane = open(dir.path(), &Profile::azure_2020());
    plane.create_account(ACCOUNT, false, now()).unwrap();
    let old = records("T", now().sub(DAY * 40), 3, "old");
    let old_other_table = records("U", now().sub(DAY * 35), 2, "old");
    let young = records("T", now().sub(DAY * 10), 3, "young");
    let other_ws = records("T", now().sub(DAY * 40), 3, "other");
    plane
        .append(ACCOUNT, Sealing::Mmk, "ws1", "T", &old, now())
        .unwrap();
    plane
        .append(ACCOUNT, Sealing::Mmk, "ws1", "U", &old_other_table, now())
        .unwrap();
    plane
        .append(ACCOUNT, Sealing::Mmk, "ws1", "T", &young, now())
        .unwrap();
    plane
        .append(ACCOUNT, Sealing::Mmk, "ws2", "T", &other_ws, now())
        .unwrap();
    assert_eq!(
        plane
            .apply_retention(ACCOUNT, "ws1", DAY * 31, now())
            .unwrap(),
        2
    );
    let (from, to) = all_time();
    assert_eq!(
        plane
            .query(ACCOUNT, None, "ws1", "T", from, to, now())
            .unwrap()
            .records,
        young
    );
    assert!(plane
        .query(ACCOUNT, None, "ws1", "U", from, to, now())
        .unwrap()
        .records
        .is_empty());
    assert_eq!(
        plane
            .query(ACCOUNT, None, "ws2", "T", from, to, now())
            .unwrap()
            .records,
        other_ws
    );
    let c = plane.stats(ACCOUNT).unwrap().counters;
    assert_eq!(
        (
            c.retention_removed_records,
            c.stored_records,
            c.stored_blocks
        ),
        (5, 6, 2)
    );
    assert!(c.conserved());
}

#[test]
fn purge_makes_data_permanently_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let plane = open(dir.path(), &Profile::azure_2020());
        plane.create_account(ACCOUNT, true, now()).unwrap();
        plane
            .append(
                ACCOUNT,
                Sealing::Mmk,
                "ws1",
                "T",
                &records("T", now(), 3, "mmk"),
                now(),
            )
            .unwrap();
        let aek = configure_cmk(&plane, ACCOUNT);
        plane
            .append(
                ACCOUNT,
                cmk(&aek),
                "ws1",
                "T",
                &records("T", now(), 3, "cmk"),
                now(),
            )
            .unwrap();
        plane
            .buffer_append(ACCOUNT, "ws1", "T", &records("T", now(), 2, "buf"), now())
            .unwrap();
        plane.purge_account(ACCOUNT, now()).unwrap();
        let (from, to) = all_time();
        let err = plane
            .query(ACCOUNT, Some(&aek), "ws1", "T", from, to, now())
            .unwrap_err();
        assert!(matches!(err, DataError::PermanentlyUnreadable { .. }));
        assert!(err.to_string().contains("permanently unreadable"), "{err}");
        assert!(matches!(
            plane.unwrap_with_mmk(ACCOUNT),
            Err(DataError::PermanentlyUnreadable { .. })
        ));
        assert!(matches!(
            plane.create_account(ACCOUNT, true, now()),
            Err(DataError::PermanentlyUnreadable { .. })
        ));
        let c = plane.stats(ACCOUNT).unwrap().counters;
        assert_eq!(
            (c.purged_records, c.stored_records, c.buffered_records),
            (8, 0, 0)
        );
        assert!(c.conserved());
        assert_eq!(
            plane.trees.cold.len()
                + plane.trees.hot.len()
                + plane.trees.buffer.len()
                + std::fs::read_dir(dir.path().join("buffer"))
                    .unwrap()
                    .count(),
            0
        );
    }
    let plane = open(dir.path(), &Profile::azure_2020());
    assert!(matches!(
        plane.account_wrapping(ACCOUNT),
        Err(DataError::PermanentlyUnreadable { .. })
    ));
}

#[test]
fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let batch = records("T", now().sub(HOUR), 10, "r");
    let first_ids;
    {
        let plane = open(dir.path(), &Profile::azure_2020());
        plane.create_account(ACCOUNT, true, now()).unwrap();
        let aek = configure_cmk(&plane, ACCOUNT);
        first_ids = plane
            .append(ACCOUNT, cmk(&aek), "ws1", "T", &batch, now())
            .unwrap()
            .block_ids;
    }
    let plane = open(dir.path(), &Profile::azure_2020());
    let AekWrapping::Kek { wrapped, .. } = plane.account_wrapping(ACCOUNT).unwrap() else {
        panic!("not KEK-wrapped")
    };
    assert_eq!(wrapped, b"wrapped-by-key-vault");
    // Block ids keep increasing across a restart (they are HKDF salts: never reused).
    plane.create_account("cluster:c2", false, now()).unwrap();
    let ids = plane
        .append("cluster:c2", Sealing::Mmk, "ws1", "T", &batch, now())
        .unwrap()
        .block_ids;
    assert!(ids[0] > first_ids[0]);
    let stats = plane.stats(ACCOUNT).unwrap();
    assert_eq!(
        (stats.counters.stored_records, stats.counters.hot_blocks),
        (10, 1)
    );
    let (from, to) = all_time();
    assert!(
        matches!(plane.query(ACCOUNT, None, "ws1", "T", from, to, now()), Ok(r) if r.records == batch)
    ); // hot copy under the MMK (2020)
}

#[test]
fn canary_no_plaintext_or_aek_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let marker = "CANARY-5f0e2b7c-plaintext-must-never-reach-disk";
    let aek_bytes;
    {
        let plane = open(dir.path(), &Profile::azure_2020());
        plane.create_account(ACCOUNT, false, now()).unwrap();
        let batch: Vec<Record> = (0..50)
            .map(|i| {
                Record::new("T", now().sub(HOUR).0 + i)
                    .with("Message", Value::String(format!("{marker} {i}")))
            })
            .collect();
        plane
            .append(ACCOUNT, Sealing::Mmk, "ws1", "T", &batch, now())
            .unwrap();
        let aek = configure_cmk(&plane, ACCOUNT);
        aek_bytes = aek.expose_bytes().to_vec();
        plane
            .append(ACCOUNT, cmk(&aek), "ws1", "T", &batch, now())
            .unwrap();
        plane
            .buffer_append(ACCOUNT, "ws1", "T", &batch, now())
            .unwrap();
        plane.drain_buffer(ACCOUNT, cmk(&aek), now()).unwrap();
        plane
            .buffer_append(ACCOUNT, "ws1", "T", &batch, now())
            .unwrap();
        plane.delete_hot_tier(ACCOUNT).unwrap();
        plane.rebuild_hot_tier(ACCOUNT, Some(&aek), now()).unwrap();
        let (from, to) = all_time();
        assert_eq!(
            plane
                .query(ACCOUNT, Some(&aek), "ws1", "T", from, to, now())
                .unwrap()
                .records
                .len(),
            150
        );
        plane.trees.db.flush().unwrap();
    }
    let needles: [(&str, Vec<u8>); 3] = [
        ("marker", marker.as_bytes().to_vec()),
        ("AEK", aek_bytes.clone()),
        ("AEK hex", hex::encode(&aek_bytes).into_bytes()),
    ];
    let mut files = 0;
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        files += 1;
        for (name, needle) in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                "{name} found in {}",
                path.display()
            );
        }
    }
    assert!(
        files >= 3,
        "expected sled files and service keys, found {files}"
    );
}

/// The scan opens blocks on several threads (here the most it may use, whatever the machine),
/// a window at a time: records still come in block order (the same order a block-by-block scan gives, whatever the threads do), every window
/// size edge is crossed, and a broken block stops the scan after exactly the blocks before it.
#[test]
fn parallel_scan_keeps_block_order_and_stops_at_the_first_bad_block() {
    let dir = tempfile::tempdir().unwrap();
    // Small blocks: a few records each, so one append makes many blocks.
    let plane = open_with(dir.path(), |c| c.block_max_bytes = 100);
    plane.create_account(ACCOUNT, true, now()).unwrap();
    let aek = configure_cmk(&plane, ACCOUNT);
    let blocks_wanted = tier::SCAN_WINDOW_BLOCKS * 3 + 1;
    let mut written = Vec::new();
    let mut block_ids = Vec::new();
    // Oldest batch last, so block order (by max time) differs from write order.
    for batch in (0..3).rev() {
        let start = now().sub(DAY * 30).add(HOUR * batch);
        let batch = records("T", start, blocks_wanted, &format!("b{batch}"));
        let receipt = plane
            .append(ACCOUNT, cmk(&aek), "ws1", "T", &batch, now())
            .unwrap();
        block_ids.extend(receipt.block_ids);
        written.extend(batch);
    }
    assert!(
        block_ids.len() > tier::SCAN_WINDOW_BLOCKS * 2,
        "{} blocks",
        block_ids.len()
    );

    // Expected: block by block in key order (max time), records in block order.
    let (from, to) = all_time();
    let mut expected = Vec::new();
    for item in plane.trees.cold.iter() {
        let (key, bytes) = item.unwrap();
        let (_, records) = plane
            .open_stored(Tier::Cold, &key, &bytes, Some(&aek))
            .unwrap();
        expected.extend(records);
    }
    assert_eq!(expected.len(), written.len());
    let mut seen = Vec::new();
    let mut keys = Vec::new();
    let stats = plane
        .scan_on(
            tier::SCAN_THREADS_MAX,
            &tier::ScanRequest {
                account: ACCOUNT,
                aek: Some(&aek),
                workspace: "ws1",
                table: "T",
                from,
                to,
                now: now(),
            },
            &mut |tier, key, r| {
                assert_eq!(tier, Tier::Cold);
                keys.push(key.clone());
                seen.push(r);
            },
        )
        .unwrap();
    assert_eq!(seen, expected);
    assert_eq!(stats.blocks_read, block_ids.len() as u64);
    assert_eq!(stats.records, written.len() as u64);
    assert!(keys.iter().all(|k| *k == cmk(&aek).key_ref()));

    // Break the block in the middle of the second window.
    let bad_index = tier::SCAN_WINDOW_BLOCKS + tier::SCAN_WINDOW_BLOCKS / 2;
    let (bad_key, bad) = plane.trees.cold.iter().nth(bad_index).unwrap().unwrap();
    let mut broken = bad.to_vec();
    let last = broken.len() - 1;
    broken[last] ^= 0x01;
    plane.trees.cold.insert(&bad_key, broken).unwrap();
    let before: usize = plane
        .trees
        .cold
        .iter()
        .take(bad_index)
        .map(|item| {
            let (_, bytes) = item.unwrap();
            BlockHeader::parse(&bytes).unwrap().0.record_count as usize
        })
        .sum();
    let mut visited = Vec::new();
    let err = plane
        .scan_on(
            tier::SCAN_THREADS_MAX,
            &tier::ScanRequest {
                account: ACCOUNT,
                aek: Some(&aek),
                workspace: "ws1",
                table: "T",
                from,
                to,
                now: now(),
            },
            &mut |_, _, r| visited.push(r),
        )
        .unwrap_err();
    assert!(matches!(err, DataError::Integrity { .. }), "{err}");
    assert_eq!(visited, expected[..before].to_vec());
}

/// Blocks written before issue 15 (format version 1, JSON records) stay readable: a block sealed
/// the old way sits beside new binary blocks, a query returns both, and a hot-tier rebuild of
/// the old block writes its copy in the new format.
#[test]
fn json_blocks_of_format_1_are_still_read_beside_binary_ones() {
    let dir = tempfile::tempdir().unwrap();
    let plane = open_with(dir.path(), |_| {});
    plane.create_account(ACCOUNT, true, now()).unwrap();
    let aek = configure_cmk(&plane, ACCOUNT);
    let old = records("T", now().sub(HOUR * 3), 5, "old");
    let key = insert_old_block(&plane, &aek, &old, record::PayloadFormat::Json);
    let new = records("T", now().sub(HOUR), 5, "new");
    let receipt = plane
        .append(ACCOUNT, cmk(&aek), "ws1", "T", &new, now())
        .unwrap();
    let new_block = plane.trees.cold.get(store::block_key(
        ACCOUNT,
        "ws1",
        "T",
        new[4].time_generated_ms,
        receipt.block_ids[0],
    ));
    assert_eq!(
        new_block.unwrap().unwrap()[4],
        block::BLOCK_FORMAT_VERSION,
        "new blocks are binary"
    );
    let (from, to) = all_time();
    let all = [old.clone(), new.clone()].concat();
    let result = plane
        .query(ACCOUNT, Some(&aek), "ws1", "T", from, to, now())
        .unwrap();
    assert_eq!(result.records, all);
    // The hot copy of the old block, rebuilt, is binary and reads the same.
    assert_eq!(
        plane.rebuild_hot_tier(ACCOUNT, Some(&aek), now()).unwrap(),
        1
    );
    let hot = plane.trees.hot.get(&key).unwrap().unwrap();
    assert!(matches!(
        hot::HotValue::parse(&hot),
        Ok(hot::HotValue::Entry { .. })
    ));
    let result = plane
        .query(ACCOUNT, Some(&aek), "ws1", "T", from, to, now())
        .unwrap();
    assert_eq!(result.records, all);
    assert_eq!(result.stats.served_from_hot, 2);
}

/// Seals `old` (in time order) as one cold block of the CMK account in an older payload
/// `format` (JSON or binary rows), as the code before wrote it, and stores it; its key.
fn insert_old_block(
    plane: &DataPlane,
    aek: &Aek,
    old: &[Record],
    format: record::PayloadFormat,
) -> Vec<u8> {
    let account_record = plane.account_record(ACCOUNT).unwrap();
    // An id taken like any block's: below every id the new appends take (and below the table's
    // first key generation, as a block written before table keys existed is).
    let block_id = {
        let mut write = plane.lock_write();
        write.next_block_id += 1;
        write.next_block_id - 1
    };
    let payload = match format {
        record::PayloadFormat::Json => record::encode_json_for_tests(old),
        _ => record::encode_block(old).unwrap(),
    };
    let last_ms = old[old.len() - 1].time_generated_ms;
    let chunk = tier::Chunk {
        payload,
        format,
        records: old.len() as u32,
        min_time_ms: old[0].time_generated_ms,
        max_time_ms: last_ms,
    };
    let sealed = {
        let mut rng = plane.lock_rng();
        plane.seal(
            Tier::Cold,
            &account_record,
            cmk(aek),
            "ws1",
            "T",
            chunk,
            block_id,
            now(),
            &mut *rng,
        )
    };
    assert_eq!(sealed[4], format.version());
    let key = store::block_key(ACCOUNT, "ws1", "T", last_ms, block_id);
    plane.trees.cold.insert(key.as_slice(), sealed).unwrap();
    key
}

/// Issue 11's columnar payload (block format 3) read beside blocks of formats 1 (JSON) and 2
/// (binary rows) in one workspace: a KQL scan with the filter per dictionary entry, the
/// projection and the summarize in the scan gives the answer of the query over every record as
/// `query` decodes them. The data has a column absent in some records, a column of the schema
/// absent everywhere (all null), dynamic values, a string column with one distinct value, one
/// with every value distinct, a long over 128 bytes and a name whose values change type.
#[test]
fn columnar_blocks_scan_beside_json_and_binary_ones_with_the_same_answers() {
    use cmksim_kql as kql;
    let dir = tempfile::tempdir().unwrap();
    let plane = open_with(dir.path(), |c| c.block_max_bytes = 2048);
    plane.create_account(ACCOUNT, true, now()).unwrap();
    let aek = configure_cmk(&plane, ACCOUNT);
    let record = |n: i64, t: SimTime| {
        let mut r = Record::new("T", t.0)
            .with("One", Value::String("same".into()))
            .with(
                "Uniq",
                Value::String(format!("u{n}-{}", "x".repeat(130 * (n % 2) as usize))),
            );
        if n % 4 != 1 {
            let kind = ["web", "db", "app"][(n % 3) as usize];
            r = r.with("Computer", Value::String(format!("{kind}-{}", n % 7)));
        }
        if n % 5 == 0 {
            // The same name with another type in some records.
            r = r.with("Level", Value::String("high".into()));
        } else {
            r = r.with("Level", Value::Long(n % 6));
        }
        if n % 3 == 0 {
            r = r.with(
                "Props",
                Value::Dynamic(serde_json::json!({"k": n % 4, "a": [n]})),
            );
        }
        r
    };
    let batch = |first: i64, start: SimTime| -> Vec<Record> {
        (first..first + 40)
            .map(|n| record(n, start.add(Duration::from_secs(n as u64))))
            .collect()
    };
    // Formats 1 and 2, sealed as the code before wrote them.
    for (format, first) in [
        (record::PayloadFormat::Json, 0),
        (record::PayloadFormat::Binary, 40),
    ] {
        insert_old_block(&plane, &aek, &batch(first, now().sub(HOUR * 5)), format);
    }
    // Format 3, appended: several blocks of 2 KiB.
    let receipt = plane
        .append(
            ACCOUNT,
            cmk(&aek),
            "ws1",
            "T",
            &batch(80, now().sub(HOUR * 4)),
            now(),
        )
        .unwrap();
    assert!(receipt.block_ids.len() >= 2, "{receipt:?}");
    let columns: Vec<kql::Column> = [
        ("TimeGenerated", kql::ColumnType::DateTime),
        ("Computer", kql::ColumnType::String),
        ("Level", kql::ColumnType::Dynamic),
        ("Missing", kql::ColumnType::String),
        ("One", kql::ColumnType::String),
        ("Props", kql::ColumnType::Dynamic),
        ("Uniq", kql::ColumnType::String),
    ]
    .into_iter()
    .map(|(n, t)| kql::Column::new(n, t))
    .collect();
    let (from, to) = all_time();
    let request = tier::ScanRequest {
        account: ACCOUNT,
        aek: Some(&aek),
        workspace: "ws1",
        table: "T",
        from,
        to,
        now: now(),
    };
    let everything = plane
        .query(ACCOUNT, Some(&aek), "ws1", "T", from, to, now())
        .unwrap();
    assert_eq!(everything.records.len(), 120);
    let full = kql::Table {
        name: "T".into(),
        columns: columns.clone(),
        rows: everything
            .records
            .into_iter()
            .map(|mut r| {
                columns
                    .iter()
                    .map(|c| match c.name.as_str() {
                        "TimeGenerated" => kql::Value::DateTime(r.time_generated_ms),
                        // As the scan conforms a stored value to a dynamic column.
                        "Level" | "Props" => match r.columns.remove(&c.name) {
                            Some(Value::Long(v)) => kql::Value::Dynamic(v.into()),
                            Some(Value::String(s)) => kql::Value::Dynamic(s.into()),
                            Some(v) => record::kql_cell(v),
                            None => kql::Value::Null,
                        },
                        name => r
                            .columns
                            .remove(name)
                            .map_or(kql::Value::Null, record::kql_cell),
                    })
                    .collect()
            })
            .collect(),
    };
    let tables = std::collections::BTreeMap::from([("T".to_string(), full)]);
    let queries = [
        "T | where Computer contains 'web' | summarize count() by Computer, bin(TimeGenerated, 10m)",
        "T | where One == 'same' and Uniq startswith 'u1' | project TimeGenerated, Uniq, Computer",
        "T | where isnull(Computer) | summarize count() by One",
        "T | where isnull(Missing) and Computer != 'db-3' | summarize dcount(Uniq) by Computer",
        "T | where isnotempty(Missing) | count",
        "T | where Level == 'high' or Props.k == 2 | project TimeGenerated, Level, Props",
        "T | where Uniq has 'xxx' | summarize count()",
        "T | where TimeGenerated > ago(4h) and Computer in ('app-2', 'web-0') | project Computer, Uniq",
        "T | where One != 'same' | summarize count() by Computer",
        "T | where TimeGenerated > ago(4h) | summarize count() by One, Computer, bin(TimeGenerated, 7m)",
        "T | where Computer startswith 'a' | summarize count() by Missing, Uniq",
        "T | summarize count() by Level, Computer",
    ];
    for text in queries {
        let query = kql::parse(text).unwrap();
        let expected = kql::execute(&query, &tables, now().unix_ms()).unwrap();
        let projected = query.projection("T", &columns).unwrap_or(columns.clone());
        let filter = query.row_filter("T", &projected).unwrap();
        let scan = RowScan {
            columns: &projected,
            filter: filter.as_ref(),
            now_ms: now().unix_ms(),
        };
        let mut rows = Vec::new();
        let stats = plane
            .scan_rows_on(1, &request, &scan, &mut |_, _, t, row| rows.push((t, row)))
            .unwrap();
        assert_eq!(stats.records, 120, "{text}");
        rows.sort_by_key(|(t, _)| *t);
        let kept = kql::Table {
            name: "T".into(),
            columns: projected.clone(),
            rows: rows.into_iter().map(|(_, r)| r).collect(),
        };
        let got = kql::execute(
            &query,
            &std::collections::BTreeMap::from([("T".to_string(), kept)]),
            now().unix_ms(),
        )
        .unwrap();
        assert_eq!(got, expected, "{text}");
        if let Some(plan) = query.summarize_plan("T", &projected).unwrap() {
            let done = plane
                .summarize_rows_on(2, &request, &scan, &plan, SUMMARIZE_GROUPS_MAX)
                .unwrap();
            assert_eq!(
                plan.finish(done.groups, now().unix_ms()).unwrap(),
                expected,
                "{text}"
            );
        }
    }
}
