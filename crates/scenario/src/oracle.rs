//! The oracle: the invariants of SPEC §8, checked over the event log of any run.
//!
//! Expectations are what a scenario's author asks for; invariants are what every run must
//! satisfy whatever the scenario. Each check is a pure function of the events (plus the
//! scenario, for its profile's deadlines and the keys the clusters start with) returning a
//! [`Verdict`] with evidence. Checked here: 1 (no silent loss), 2 (revocation honoured within
//! the deadline and kept until access returns), 3 (resume within the resume deadline), 4 (vault
//! failures shorter than the grace are invisible), 6 (every block decrypts after a key update),
//! 8 (no cross-workspace records), 7 (determinism) given two runs' events, and seed 002's
//! unsupported Sentinel configuration ([`sentinel_unsupported_flagged`]). Invariant 5 (no
//! plaintext or unwrapped key on disk) is about files, not events, and is the runner's to check.
//!
//! A check that the run never exercised is `NotApplicable`, never a silent pass; a deadline that
//! had not yet passed when the run ended is not a breach.

use std::collections::BTreeMap;
use std::time::Duration;

use cmksim_sim::{Event, SimTime};

use crate::events::{self, cluster_of, str_field, u64_field};
use crate::history::{self, RunSpan};
use crate::model::{Scenario, StorageState, VersionSel};
use crate::verdict::{Evidence, Outcome, Verdict};

/// Checks every event-based invariant, in SPEC order.
pub fn check_invariants(scenario: &Scenario, events: &[Event]) -> Vec<Verdict> {
    vec![
        no_silent_loss(events),
        revocation_honoured(scenario, events),
        resume_within_deadline(scenario, events),
        short_outages_invisible(scenario, events),
        blocks_decrypt_after_key_update(events),
        no_cross_workspace_records(events),
        sentinel_unsupported_flagged(scenario, events),
    ]
}

/// Seed 002's unsupported configuration, flagged: after a CMK onboarding, unlinking the
/// workspace or making its cluster non-CMK "is not supported and might lead to undefined and
/// undesired behavior". The service accepts it (as Azure would) and records
/// `sentinel.unsupported`; the oracle flags every such event as broken unless the scenario shows
/// it on purpose, i.e. has a `sentinel_unsupported` expectation for that workspace (then it is
/// held, and the detail still says what was reached). No such event: not applicable.
pub fn sentinel_unsupported_flagged(scenario: &Scenario, events: &[Event]) -> Verdict {
    const ID: &str = "sentinel-unsupported";
    const TITLE: &str =
        "no unsupported Sentinel configuration (seed 002) unless the scenario shows it on purpose";
    let run = RunSpan::of(events);
    let shown: Vec<&str> = scenario
        .expectations
        .iter()
        .filter_map(|x| match &x.subject {
            crate::model::Subject::SentinelUnsupported { workspace } => Some(workspace.as_str()),
            _ => None,
        })
        .collect();
    let found: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind == events::SENTINEL_UNSUPPORTED)
        .collect();
    if found.is_empty() {
        return Verdict::new(
            ID,
            TITLE,
            Outcome::NotApplicable,
            "no workspace reached an unsupported Sentinel configuration",
            vec![],
        );
    }
    let mut flagged: Vec<Evidence> = Vec::new();
    let mut acknowledged: Vec<Evidence> = Vec::new();
    for e in &found {
        let workspace = events::sentinel_workspace(e).unwrap_or("");
        let change = str_field(e, "change").unwrap_or("");
        let note = format!("{workspace}: {change} after CMK onboarding");
        if shown.contains(&workspace) {
            acknowledged.push(Evidence::of(e, format!("{note} (shown on purpose)")));
        } else {
            flagged.push(Evidence::of(e, format!("{note}: unsupported")));
        }
    }
    let first = t(run, found[0].at_ms);
    if flagged.is_empty() {
        Verdict::new(
            ID,
            TITLE,
            Outcome::Held,
            format!(
                "UNSUPPORTED configuration reached {} time(s), first at {first}, each one shown on \
                 purpose by a sentinel_unsupported expectation",
                acknowledged.len()
            ),
            acknowledged,
        )
    } else {
        Verdict::new(
            ID,
            TITLE,
            Outcome::Broken,
            format!(
                "UNSUPPORTED configuration reached {} time(s) without the scenario expecting it: {}",
                flagged.len(),
                crate::events::SENTINEL_UNSUPPORTED
            ),
            flagged,
        )
    }
}

fn t(run: RunSpan, at: i64) -> String {
    SimTime(at).offset_label(run.start)
}

/// Invariant 1: accepted = stored + buffered + dropped for every batch, every drop has a
/// reason, no buffer writes or expires more than it held, final counters agree. Records that
/// storage removed on purpose (retention, a completed purge, a table delete: seed 003) are
/// accounted as removed, not lost; storage never removes more records of a workspace than were
/// written to it (stored, or flushed from the buffer).
pub fn no_silent_loss(events: &[Event]) -> Verdict {
    const ID: &str = "invariant-1";
    const TITLE: &str =
        "no silent loss: accepted = stored + buffered + dropped, each drop with its reason";
    let mut broken: Vec<Evidence> = Vec::new();
    let mut sums: BTreeMap<String, [u64; 4]> = BTreeMap::new();
    let mut buffer_out: BTreeMap<String, u64> = BTreeMap::new();
    let mut flushed: BTreeMap<String, u64> = BTreeMap::new();
    // (retention, purge and table delete) per workspace.
    let mut removed: BTreeMap<String, [u64; 2]> = BTreeMap::new();
    let mut batches = 0u64;
    for e in events {
        let ws = str_field(e, "workspace").unwrap_or("").to_string();
        match e.kind.as_str() {
            events::INGEST_BATCH => {
                batches += 1;
                let [a, s, b, d] =
                    ["accepted", "stored", "buffered", "dropped"].map(|f| u64_field(e, f));
                if a != s + b + d {
                    broken.push(Evidence::of(
                        e,
                        format!("accepted {a} ≠ {s} stored + {b} buffered + {d} dropped"),
                    ));
                }
                if d > 0 && str_field(e, "reason").is_none_or(str::is_empty) {
                    broken.push(Evidence::of(
                        e,
                        format!("{d} records dropped without a reason"),
                    ));
                }
                let entry = sums.entry(ws).or_default();
                for (slot, v) in entry.iter_mut().zip([a, s, b, d]) {
                    *slot += v;
                }
            }
            events::RETENTION_REMOVED | events::PURGE_COMPLETED | events::TABLE_DELETED => {
                let slot = usize::from(e.kind != events::RETENTION_REMOVED);
                // A purge also removes matching records still in the outage buffer (issue 14):
                // those left the buffer, they were never written to a block.
                let from_buffer = u64_field(e, "buffered_records");
                if from_buffer > 0 {
                    let out = buffer_out.entry(ws.clone()).or_default();
                    *out += from_buffer;
                    let held = sums.get(&ws).map(|s| s[2]).unwrap_or(0);
                    if *out > held {
                        broken.push(Evidence::of(e, format!("the buffer of {ws} released {out} records but only {held} were buffered")));
                    }
                }
                let entry = removed.entry(ws.clone()).or_default();
                entry[slot] += u64_field(e, "records").saturating_sub(from_buffer);
                let written = sums.get(&ws).map(|s| s[1]).unwrap_or(0)
                    + flushed.get(&ws).copied().unwrap_or(0);
                if entry[0] + entry[1] > written {
                    broken.push(Evidence::of(
                        e,
                        format!(
                            "storage removed {} records of {ws} but only {written} were ever written",
                            entry[0] + entry[1]
                        ),
                    ));
                }
            }
            events::BUFFER_FLUSHED | events::BUFFER_EXPIRED => {
                if e.kind == events::BUFFER_FLUSHED {
                    *flushed.entry(ws.clone()).or_default() += u64_field(e, "records");
                }
                let out = buffer_out.entry(ws.clone()).or_default();
                *out += u64_field(e, "records");
                let held = sums.get(&ws).map(|s| s[2]).unwrap_or(0);
                if *out > held {
                    broken.push(Evidence::of(e, format!("the buffer of {ws} released {out} records but only {held} were buffered")));
                }
            }
            _ => {}
        }
    }
    for e in events.iter().filter(|e| e.kind == events::INGEST_TOTALS) {
        let ws = str_field(e, "workspace").unwrap_or("");
        let totals = ["accepted", "stored", "buffered", "dropped"].map(|f| u64_field(e, f));
        let seen = sums.get(ws).copied().unwrap_or_default();
        if totals != seen || totals[0] != totals[1] + totals[2] + totals[3] {
            broken.push(Evidence::of(e, format!("final counters {totals:?} ≠ sum of batches {seen:?} (accepted, stored, buffered, dropped)")));
        }
    }
    if batches == 0 {
        return Verdict::new(
            ID,
            TITLE,
            Outcome::NotApplicable,
            "no batch was ingested",
            vec![],
        );
    }
    let total = sums.values().fold([0u64; 4], |mut acc, s| {
        for (a, v) in acc.iter_mut().zip(s) {
            *a += v;
        }
        acc
    });
    let mut summary = format!(
        "{batches} batches: {} accepted = {} stored + {} buffered + {} dropped",
        total[0], total[1], total[2], total[3]
    );
    let [retention, purged] = removed
        .values()
        .fold([0u64; 2], |acc, r| [acc[0] + r[0], acc[1] + r[1]]);
    if retention + purged > 0 {
        summary.push_str(&format!(
            "; removed on purpose, not lost: {retention} by retention, {purged} by purge or table delete"
        ));
    }
    if broken.is_empty() {
        Verdict::new(ID, TITLE, Outcome::Held, summary, vec![])
    } else {
        Verdict::new(
            ID,
            TITLE,
            Outcome::Broken,
            format!("{} violations; {summary}", broken.len()),
            broken,
        )
    }
}

/// What a cluster's storage unwraps with: vault, key, and a pinned version ("" = versionless).
#[derive(Clone, Debug, PartialEq)]
struct Binding {
    vault: String,
    key: String,
    version: String,
}

/// The key each cluster uses over time: the scenario's initial keys (versions resolved from
/// `keyvault.key.created` events), then the key a `storage.cluster.key_updated` event names —
/// but only once the storage's `storage.key.rewrapped` confirms it. A key update whose rewrap
/// fails (`storage.key.rewrap_failed`) leaves the previous key in use, so disabling the old key
/// still revokes.
fn binding_at(
    scenario: &Scenario,
    events: &[Event],
    cluster: &str,
    at: SimTime,
) -> Option<Binding> {
    if let Some(binding) = rewrapped_binding(events, cluster, at) {
        return Some(binding);
    }
    let initial = scenario.initial_cluster_key(cluster)?;
    let name = format!("{}/{}", initial.vault, initial.key);
    let versions = history::key_versions(events, at);
    let list = versions.get(&name);
    // `latest` is the newest version when the run starts.
    let at_start = history::key_versions(events, RunSpan::of(events).start);
    let version = match initial.version {
        VersionSel::Versionless => String::new(),
        VersionSel::Latest => at_start
            .get(&name)
            .and_then(|l| l.last())
            .or_else(|| list.and_then(|l| l.first()))
            .cloned()
            .unwrap_or_default(),
        VersionSel::Nth(n) => list
            .and_then(|l| l.get(n as usize - 1))
            .cloned()
            .unwrap_or_default(),
    };
    Some(Binding {
        vault: initial.vault.clone(),
        key: initial.key.clone(),
        version,
    })
}

/// The key the last confirmed key update of `cluster` moved to, at `at`: a `key_updated` event
/// followed by a `rewrapped` event of the same cluster (a `rewrap_failed` cancels it).
fn rewrapped_binding(events: &[Event], cluster: &str, at: SimTime) -> Option<Binding> {
    let mut pending: Option<Binding> = None;
    let mut confirmed: Option<Binding> = None;
    for e in events
        .iter()
        .filter(|e| e.at_ms <= at.0 && cluster_of(e) == Some(cluster))
    {
        match e.kind.as_str() {
            events::CLUSTER_KEY_UPDATED => {
                pending = events::updated_key(e).map(|(vault, key, version)| Binding {
                    vault,
                    key,
                    version,
                });
            }
            events::KEY_REWRAPPED => {
                if let Some(binding) = pending.take() {
                    confirmed = Some(binding);
                }
            }
            events::KEY_REWRAP_FAILED => pending = None,
            _ => {}
        }
    }
    confirmed
}

/// Every cluster named by the scenario or by storage events.
fn clusters(scenario: &Scenario, events: &[Event]) -> Vec<String> {
    let mut out: Vec<String> = scenario
        .world
        .clusters
        .iter()
        .map(|c| c.name.clone())
        .collect();
    for e in events.iter().filter(|e| e.kind.starts_with("storage.")) {
        if let Some(c) = cluster_of(e) {
            if !out.iter().any(|x| x == c) {
                out.push(c.to_string());
            }
        }
    }
    out.sort();
    out
}

/// Whether a vault event denies (Some(true)) or restores (Some(false)) access for a cluster.
fn access_effect(scenario: &Scenario, events: &[Event], e: &Event, cluster: &str) -> Option<bool> {
    if e.kind == events::KEY_REWRAPPED {
        // The account key is wrapped by a key the cluster can use: access is there.
        return (cluster_of(e) == Some(cluster)).then_some(false);
    }
    if !e.kind.starts_with("keyvault.") {
        return None;
    }
    let b = binding_at(scenario, events, cluster, e.at())?;
    if str_field(e, "vault") != Some(b.vault.as_str()) {
        return None;
    }
    let same_key = str_field(e, "key") == Some(b.key.as_str());
    match e.kind.as_str() {
        events::KEY_DISABLED | events::KEY_ENABLED if same_key => {
            let version = str_field(e, "version").unwrap_or("");
            let newest = history::key_versions(events, e.at())
                .get(&format!("{}/{}", b.vault, b.key))
                .and_then(|v| v.last().cloned())
                .unwrap_or_default();
            let hits = version.is_empty()
                || version == b.version
                || (b.version.is_empty() && version == newest);
            hits.then_some(e.kind == events::KEY_DISABLED)
        }
        events::KEY_DELETED | events::KEY_PURGED if same_key => Some(true),
        events::KEY_RECOVERED if same_key => Some(false),
        events::VAULT_DELETED | events::VAULT_PURGED => Some(true),
        events::VAULT_RECOVERED => Some(false),
        events::POLICY_REMOVED | events::POLICY_SET => {
            if events::policy_cluster(events, e) != Some(cluster) {
                return None;
            }
            if e.kind == events::POLICY_REMOVED {
                return Some(true);
            }
            let perms: Vec<&str> = events::fields(e)
                .get("permissions")
                .and_then(|p| p.as_array())
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            Some(
                !events::CLUSTER_REQUIRED_PERMISSIONS
                    .iter()
                    .all(|p| perms.contains(p)),
            )
        }
        _ => None,
    }
}

/// Invariant 2: after a change in the vault that denies a cluster's access, its storage is
/// revoked within the revocation deadline, and stays revoked until access returns.
pub fn revocation_honoured(scenario: &Scenario, events: &[Event]) -> Verdict {
    const ID: &str = "invariant-2";
    let deadline = scenario.profile.key_access.revocation_deadline;
    let title = format!(
        "a revocation is honoured within {} and stays until access returns",
        cmksim_sim::format_duration(deadline)
    );
    let run = RunSpan::of(events);
    let mut held: Vec<Evidence> = Vec::new();
    let mut broken: Vec<Evidence> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut cases = 0usize;
    for cluster in clusters(scenario, events) {
        let mut denied_since: Option<&Event> = None;
        for e in events {
            let Some(denies) = access_effect(scenario, events, e, &cluster) else {
                continue;
            };
            match (denies, denied_since) {
                (true, None) => denied_since = Some(e),
                (false, Some(_)) => denied_since = None,
                _ => continue,
            }
            if !denies {
                continue;
            }
            cases += 1;
            let t0 = e.at();
            let restore = events
                .iter()
                .filter(|r| r.seq > e.seq)
                .find(|r| access_effect(scenario, events, r, &cluster) == Some(false));
            let limit = t0.add(deadline);
            let already = history::state_at(events, &cluster, t0);
            let revoked = events
                .iter()
                .filter(|s| s.seq > e.seq || s.at_ms > t0.0)
                .find(|s| {
                    cluster_of(s) == Some(cluster.as_str())
                        && matches!(
                            events::storage_state(s),
                            Some(StorageState::Revoked | StorageState::Shredded)
                        )
                });
            let in_time = revoked.filter(|s| s.at_ms <= limit.0);
            if matches!(
                already,
                Some(StorageState::Revoked | StorageState::Shredded | StorageState::Deleted)
            ) {
                notes.push(format!(
                    "{cluster} was already {} at {}",
                    already.map(|s| s.as_str()).unwrap_or(""),
                    t(run, t0.0)
                ));
                continue;
            }
            match in_time {
                Some(r) => {
                    held.push(Evidence::of(e, format!("access of {cluster} denied")));
                    held.push(Evidence::of(
                        r,
                        format!(
                            "revoked {} later",
                            cmksim_sim::format_duration(r.at().since(t0))
                        ),
                    ));
                    // Stays revoked until access returns.
                    let left = events.iter().filter(|s| s.seq > r.seq).find(|s| {
                        cluster_of(s) == Some(cluster.as_str())
                            && matches!(
                                events::storage_state(s),
                                Some(
                                    StorageState::Healthy
                                        | StorageState::Resuming
                                        | StorageState::Degraded
                                )
                            )
                    });
                    if let Some(left) = left {
                        if restore.is_none_or(|back| left.seq < back.seq) {
                            broken.push(Evidence::of(r, format!("{cluster} revoked")));
                            broken.push(Evidence::of(
                                left,
                                "left the revoked state before access returned",
                            ));
                        }
                    }
                }
                None => {
                    if restore.is_some_and(|back| back.at_ms < limit.0) {
                        notes.push(format!(
                            "access of {cluster} returned before the deadline at {}",
                            t(run, limit.0)
                        ));
                    } else if run.end < limit {
                        notes.push(format!(
                            "the run ended before the deadline of the denial at {}",
                            t(run, t0.0)
                        ));
                    } else {
                        broken.push(Evidence::of(e, format!("access of {cluster} denied")));
                        let note = match revoked {
                            Some(late) => {
                                broken.push(Evidence::of(late, "revoked too late"));
                                format!(
                                    "revoked only after {}",
                                    cmksim_sim::format_duration(late.at().since(t0))
                                )
                            }
                            None => format!("{cluster} was never revoked"),
                        };
                        notes.push(note);
                    }
                }
            }
        }
    }
    let detail = if notes.is_empty() {
        format!("{cases} denials checked")
    } else {
        format!("{cases} denials checked; {}", notes.join("; "))
    };
    verdict(ID, title, cases, held, broken, detail)
}

fn verdict(
    id: &str,
    title: String,
    cases: usize,
    held: Vec<Evidence>,
    broken: Vec<Evidence>,
    detail: String,
) -> Verdict {
    if cases == 0 {
        Verdict::new(
            id,
            title,
            Outcome::NotApplicable,
            "nothing in this run exercised it",
            vec![],
        )
    } else if broken.is_empty() {
        Verdict::new(id, title, Outcome::Held, detail, held)
    } else {
        Verdict::new(id, title, Outcome::Broken, detail, broken)
    }
}

/// Invariant 3: after access returns (the first successful poll of a revoked or unavailable
/// storage), the storage serves again within the resume deadline: healthy, or degraded (the
/// resume happened while Key Vault has transient failures: ingest and query are served from the
/// cached AEK, which is what "resume" means; the chaos sweep found the false alarm at seeds 34,
/// 143 and 145 of the revocation scenario).
pub fn resume_within_deadline(scenario: &Scenario, events: &[Event]) -> Verdict {
    const ID: &str = "invariant-3";
    let deadline = scenario.profile.key_access.resume_delay;
    let title = format!(
        "after access returns, ingest and query resume within {}",
        cmksim_sim::format_duration(deadline)
    );
    let run = RunSpan::of(events);
    let (mut held, mut broken, mut notes) = (Vec::new(), Vec::new(), Vec::new());
    let mut cases = 0usize;
    for (cluster, spans) in history::storage_spans(events, run.end) {
        for span in spans
            .iter()
            .filter(|s| matches!(s.state, StorageState::Revoked | StorageState::Unavailable))
        {
            let back = events.iter().find(|e| {
                e.kind == events::POLL_OK
                    && cluster_of(e) == Some(cluster.as_str())
                    && e.at_ms >= span.from_ms
            });
            let Some(back) = back else { continue };
            let limit = back.at().add(deadline);
            // Access lost again before the deadline (revoked or unavailable anew, before any
            // healthy state): this return never had its chance; the next span is judged instead.
            let next_state = events.iter().filter(|e| e.seq > back.seq).find_map(|e| {
                (cluster_of(e) == Some(cluster.as_str()))
                    .then(|| events::storage_state(e))
                    .flatten()
                    .filter(|s| *s != StorageState::Resuming)
                    .map(|s| (s, e.at_ms))
            });
            if let Some((state, at_ms)) = next_state {
                let lost_again = matches!(
                    state,
                    StorageState::Revoked
                        | StorageState::Unavailable
                        | StorageState::Shredded
                        | StorageState::Deleted
                );
                if lost_again && at_ms <= limit.0 {
                    notes.push(format!(
                        "{cluster}: access returned at {} and was lost again at {} before the resume deadline",
                        t(run, back.at_ms),
                        t(run, at_ms)
                    ));
                    continue;
                }
            }
            cases += 1;
            let healthy = events.iter().filter(|e| e.seq > back.seq).find(|e| {
                cluster_of(e) == Some(cluster.as_str())
                    && matches!(
                        events::storage_state(e),
                        Some(StorageState::Healthy | StorageState::Degraded)
                    )
            });
            match healthy {
                Some(h) if h.at_ms <= limit.0 => {
                    held.push(Evidence::of(back, "access returned"));
                    held.push(Evidence::of(
                        h,
                        format!(
                            "healthy {} later",
                            cmksim_sim::format_duration(h.at().since(back.at()))
                        ),
                    ));
                }
                _ if run.end < limit => notes.push(format!(
                    "{cluster}: the run ended before the resume deadline at {}",
                    t(run, limit.0)
                )),
                other => {
                    broken.push(Evidence::of(back, "access returned"));
                    if let Some(late) = other {
                        broken.push(Evidence::of(late, "healthy too late"));
                    }
                    notes.push(format!("{cluster} did not resume by {}", t(run, limit.0)));
                }
            }
        }
    }
    let detail = format!("{cases} returns of access checked{}", join_notes(&notes));
    verdict(ID, title, cases, held, broken, detail)
}

fn join_notes(notes: &[String]) -> String {
    if notes.is_empty() {
        String::new()
    } else {
        format!("; {}", notes.join("; "))
    }
}

/// Invariant 4: a Key Vault failure shorter than the outage grace causes no query failure, no
/// drop and no unavailable storage (observed until one poll interval after it ends).
pub fn short_outages_invisible(scenario: &Scenario, events: &[Event]) -> Verdict {
    const ID: &str = "invariant-4";
    let ka = &scenario.profile.key_access;
    let grace = ka.outage_grace;
    let title = match grace {
        Some(g) => format!(
            "vault failures shorter than {} cause no query failure and no drop",
            cmksim_sim::format_duration(g)
        ),
        None => "vault failures (ridden on the cached key) cause no query failure and no drop"
            .to_string(),
    };
    let run = RunSpan::of(events);
    let (mut held, mut broken, mut notes) = (Vec::new(), Vec::new(), Vec::new());
    let mut cases = 0usize;
    let mut i = 0;
    while i < events.len() {
        let e = &events[i];
        i += 1;
        let impairs = e.kind == events::FAULT_APPLIED
            && e.data.get("impairs_vault").and_then(|v| v.as_bool()) == Some(true);
        if !impairs {
            continue;
        }
        let end = events[i..].iter().find(|r| {
            r.kind == events::FAULT_RESTORED
                || (r.kind == events::FAULT_APPLIED
                    && r.data.get("impairs_vault").and_then(|v| v.as_bool()) == Some(false))
        });
        let end_at = end.map(Event::at).unwrap_or(run.end);
        let length = end_at.since(e.at());
        if grace.is_some_and(|g| length >= g) {
            notes.push(format!(
                "the failure at {} lasted {} (not shorter than the grace)",
                t(run, e.at_ms),
                cmksim_sim::format_duration(length)
            ));
            continue;
        }
        cases += 1;
        let window_end = end_at.add(ka.poll_interval_max);
        let visible: Vec<&Event> = events
            .iter()
            .filter(|x| x.at_ms >= e.at_ms && x.at_ms <= window_end.0)
            .filter(|x| {
                let outage_reason = matches!(
                    str_field(x, "reason"),
                    Some(events::reason::UNAVAILABLE | events::reason::BUFFER_EXPIRED)
                );
                (x.kind == events::QUERY_FAILED && outage_reason)
                    || (x.kind == events::INGEST_BATCH
                        && u64_field(x, "dropped") > 0
                        && outage_reason)
                    || events::storage_state(x) == Some(StorageState::Unavailable)
            })
            .collect();
        if visible.is_empty() {
            held.push(Evidence::of(
                e,
                format!("vault failure of {}", cmksim_sim::format_duration(length)),
            ));
            if let Some(end) = end {
                held.push(Evidence::of(end, "restored"));
            }
        } else {
            broken.push(Evidence::of(
                e,
                format!("vault failure of {}", cmksim_sim::format_duration(length)),
            ));
            for x in visible.into_iter().take(4) {
                broken.push(Evidence::of(
                    x,
                    "visible to users during a failure shorter than the grace",
                ));
            }
        }
    }
    let detail = format!("{cases} short vault failures checked{}", join_notes(&notes));
    verdict(ID, title, cases, held, broken, detail)
}

/// Invariant 6: after each successful key update, the storage verifies its blocks and every one
/// still decrypts.
pub fn blocks_decrypt_after_key_update(events: &[Event]) -> Verdict {
    const ID: &str = "invariant-6";
    let title = "after a successful key update every stored block still decrypts".to_string();
    let (mut held, mut broken) = (Vec::new(), Vec::new());
    let mut cases = 0usize;
    for (i, e) in events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == events::CLUSTER_KEY_UPDATED)
    {
        cases += 1;
        let cluster = cluster_of(e);
        let verified = events[i + 1..]
            .iter()
            .take_while(|x| !(x.kind == events::CLUSTER_KEY_UPDATED && cluster_of(x) == cluster))
            .find(|x| x.kind == events::BLOCKS_VERIFIED && cluster_of(x) == cluster);
        match verified {
            Some(v) if u64_field(v, "blocks_failed") == 0 => {
                held.push(Evidence::of(e, "key updated"));
                held.push(Evidence::of(
                    v,
                    format!("{} blocks decrypt", u64_field(v, "blocks_checked")),
                ));
            }
            Some(v) => {
                broken.push(Evidence::of(e, "key updated"));
                broken.push(Evidence::of(
                    v,
                    format!("{} blocks failed to decrypt", u64_field(v, "blocks_failed")),
                ));
            }
            None => {
                broken.push(Evidence::of(
                    e,
                    "key updated, but no storage.blocks.verified followed",
                ));
            }
        }
    }
    let detail = format!("{cases} key updates checked");
    verdict(ID, title, cases, held, broken, detail)
}

/// Invariant 8: a query of one workspace never returns another workspace's records.
pub fn no_cross_workspace_records(events: &[Event]) -> Verdict {
    const ID: &str = "invariant-8";
    let title = "a query of one workspace never returns another workspace's records".to_string();
    let (mut held, mut broken) = (Vec::new(), Vec::new());
    let mut cases = 0usize;
    for e in events.iter().filter(|e| e.kind == events::QUERY_OK) {
        let Some(seen) = e.data.get("record_workspaces").and_then(|v| v.as_array()) else {
            continue;
        };
        cases += 1;
        let ws = str_field(e, "workspace").unwrap_or("");
        let foreign: Vec<&str> = seen
            .iter()
            .filter_map(|v| v.as_str())
            .filter(|w| *w != ws)
            .collect();
        if foreign.is_empty() {
            if held.is_empty() {
                held.push(Evidence::of(e, "first query checked"));
            }
        } else {
            broken.push(Evidence::of(
                e,
                format!("query of {ws} returned records of {}", foreign.join(", ")),
            ));
        }
    }
    let detail = format!("{cases} successful queries checked");
    verdict(ID, title, cases, held, broken, detail)
}

/// Invariant 7: the same scenario, seed and configuration give a byte-identical event log.
pub fn deterministic(first: &[Event], second: &[Event]) -> Verdict {
    const ID: &str = "invariant-7";
    let title = "same scenario, seed and configuration → byte-identical event log".to_string();
    let n = first.len().max(second.len());
    for i in 0..n {
        let (a, b) = (first.get(i), second.get(i));
        let (la, lb) = (a.map(Event::to_json_line), b.map(Event::to_json_line));
        if la != lb {
            let evidence: Vec<Evidence> = [
                a.map(|e| Evidence::of(e, "first run")),
                b.map(|e| Evidence::of(e, "second run")),
            ]
            .into_iter()
            .flatten()
            .collect();
            return Verdict::new(
                ID,
                title,
                Outcome::Broken,
                format!("the logs differ at event {}", i + 1),
                evidence,
            );
        }
    }
    Verdict::new(
        ID,
        title,
        Outcome::Held,
        format!("{n} events identical"),
        vec![],
    )
}

/// How long a check may wait: exposed for the report's explanations.
pub fn deadlines(scenario: &Scenario) -> [(&'static str, Option<Duration>); 3] {
    let ka = &scenario.profile.key_access;
    [
        ("revocation deadline", Some(ka.revocation_deadline)),
        ("resume deadline", Some(ka.resume_delay)),
        ("outage grace", ka.outage_grace),
    ]
}
