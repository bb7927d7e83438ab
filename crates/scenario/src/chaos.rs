//! Chaos sweeps: the fault space of a `[chaos]` table, the seeded draw of one fault schedule,
//! the scenario that schedule makes, the shrinking of a failing schedule, and the regression
//! file written from it (SPEC §11).
//!
//! A sweep runs the same world and traffic under many random fault schedules. Everything here is
//! pure: the draw is a function of (fault space, seed) through [`cmksim_sim::SeedTree`]'s
//! `chaos` stream, so seed 17 of a sweep is seed 17 of a replay on any machine, and nothing here
//! reads a clock, a file or a global RNG. Running the scenarios is the caller's business (the
//! CLI, over `cmksim_world`), which keeps this module independent of the simulation engine.
//!
//! **One home for faults.** A chaos fault is not a new kind of event: each [`ChaosKind`] becomes
//! ordinary timeline steps of [`crate::model`] — a [`Fault`] with a `duration` (Key Vault modes,
//! partitions, a storage crash, an HSM device error) or a pair of [`Action`]s (disable the
//! cluster's key then enable it; remove the cluster identity's access policy then grant it
//! again). The generated [`Scenario`] is therefore exactly what a person could have written, the
//! driver runs it unchanged, and a shrunk schedule is written back as an ordinary file.
//!
//! **Expectations.** The file's timeline is kept (it is part of the workload) and the chaos steps
//! are added to it, so `after_step` references still resolve. But an expectation states what
//! happens under the file's own faults; random extra faults can legitimately break it (a query
//! that succeeds at 3h45m fails when a drawn key-disable lands at 3h30m). So a sweep judges the
//! invariants of SPEC §8 always and the file's expectations only when the table says
//! `judge_expectations = true` (for expectations that hold under any fault, e.g. a
//! `no_loss_before` of the warm-up); otherwise they are reported, not counted.

use std::time::Duration;

use cmksim_sim::net::LinkQuality;
use rand::RngCore;

use crate::model::{
    AccessPolicy, Action, Fault, Host, HsmFault, PrincipalRef, Scenario, Step, StepKind,
    VaultFault, VersionSel,
};

/// The kinds of fault a sweep draws from, with their names in the `[chaos]` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChaosKind {
    /// `keyvault = "down"`: connections refused.
    VaultDown,
    /// `keyvault = "blackhole"`: requests time out.
    VaultBlackhole,
    /// `keyvault = "throttle"`: 429.
    VaultThrottle,
    /// `keyvault = "error-rate"` at the table's `error_rate`.
    VaultErrorRate,
    /// `keyvault = "latency"` of the table's `latency`.
    VaultLatency,
    /// `partition = ["storage", "keyvault"]`.
    PartitionStorageVault,
    /// `partition = ["ingest", "storage"]`.
    PartitionIngestStorage,
    /// `crash = "storage"`, restarted after the duration.
    StorageCrash,
    /// `update-key enabled = false` on the first cluster's key, `enabled = true` after.
    KeyDisable,
    /// `remove-access-policy` of the first cluster's identity, `set-access-policy` after.
    AccessPolicyRemove,
    /// `hsm = "device-error"`.
    HsmDeviceError,
    /// `link = ["storage", "keyvault"]` with the table's `link_latency` and `link_jitter`
    /// (the event-driven engine's network; not in the default space, see [`CHAOS_KINDS`]).
    LinkLatencyStorageVault,
    /// `link = ["storage", "keyvault"]` with the table's `link_loss` (likewise).
    LinkLossStorageVault,
}

/// The default fault space: every kind but the link kinds, in the order of the format. The
/// link kinds are drawn only when a `[chaos]` table names them, so that a seed of a sweep over
/// the defaults draws the same schedule as it did before they existed (saved results and
/// `--replay` of older sweeps stay valid).
pub const CHAOS_KINDS: [ChaosKind; 11] = [
    ChaosKind::VaultDown,
    ChaosKind::VaultBlackhole,
    ChaosKind::VaultThrottle,
    ChaosKind::VaultErrorRate,
    ChaosKind::VaultLatency,
    ChaosKind::PartitionStorageVault,
    ChaosKind::PartitionIngestStorage,
    ChaosKind::StorageCrash,
    ChaosKind::KeyDisable,
    ChaosKind::AccessPolicyRemove,
    ChaosKind::HsmDeviceError,
];

impl ChaosKind {
    /// The name in the `[chaos]` table and in the sweep's JSON lines.
    pub fn as_str(self) -> &'static str {
        match self {
            ChaosKind::VaultDown => "vault-down",
            ChaosKind::VaultBlackhole => "vault-blackhole",
            ChaosKind::VaultThrottle => "vault-throttle",
            ChaosKind::VaultErrorRate => "vault-error-rate",
            ChaosKind::VaultLatency => "vault-latency",
            ChaosKind::PartitionStorageVault => "partition-storage-vault",
            ChaosKind::PartitionIngestStorage => "partition-ingest-storage",
            ChaosKind::StorageCrash => "storage-crash",
            ChaosKind::KeyDisable => "key-disable",
            ChaosKind::AccessPolicyRemove => "access-policy-remove",
            ChaosKind::HsmDeviceError => "hsm-device-error",
            ChaosKind::LinkLatencyStorageVault => "link-latency-storage-vault",
            ChaosKind::LinkLossStorageVault => "link-loss-storage-vault",
        }
    }

    /// Whether this kind needs a cluster with a customer-managed key and its identity's access
    /// policy in the world (the targets of [`Targets`]).
    pub fn needs_key(self) -> bool {
        matches!(self, ChaosKind::KeyDisable | ChaosKind::AccessPolicyRemove)
    }
}

/// Most faults one run may draw (a bound on the schedule and on shrinking's work).
pub const FAULTS_PER_RUN_MAX: u32 = 32;

/// A validated `[chaos]` table: what a sweep may draw.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultSpace {
    /// The kinds drawn from, uniformly; sorted, no duplicates, never empty.
    pub kinds: Vec<ChaosKind>,
    /// How many faults per run, drawn uniformly in `faults_min..=faults_max`.
    pub faults_min: u32,
    pub faults_max: u32,
    /// How long each fault lasts, drawn uniformly (whole seconds) in this range.
    pub duration_min: Duration,
    pub duration_max: Duration,
    /// Faults start in `window_from..=window_until` (offsets from T+0).
    pub window_from: Duration,
    pub window_until: Duration,
    /// The fraction of failing requests for `vault-error-rate`.
    pub error_rate: f64,
    /// The extra delay for `vault-latency`.
    pub latency: Duration,
    /// The link quality of `link-latency-storage-vault` (`latency`, `jitter`) and of
    /// `link-loss-storage-vault` (`loss`).
    pub link_latency: Duration,
    pub link_jitter: Duration,
    pub link_loss: f64,
    /// Whether the file's own expectations count toward a seed's verdict (see the module doc).
    pub judge_expectations: bool,
}

impl FaultSpace {
    /// The defaults for a scenario of `duration`: every kind, 1 to 3 faults of 1 to 45 minutes
    /// (short and long against the 2020 profile's 30-minute outage grace), starting between
    /// T+10m (the cluster has settled) and `duration - duration_max - 1h` (so that a fault's
    /// aftermath — a resume takes up to 31 minutes — is inside the run), or T+10m when the
    /// scenario is too short for that; error rate 0.5; latency 5s; link latency 2s with 1s of
    /// jitter (slow calls, well inside the clients' 30-second timeout); link loss 0.1 (a tenth
    /// of the writes reset their connection).
    pub fn defaults(duration: Duration) -> FaultSpace {
        let duration_max = Duration::from_secs(45 * 60);
        let window_from = Duration::from_secs(10 * 60);
        let window_until = duration
            .saturating_sub(duration_max + Duration::from_secs(3600))
            .max(window_from);
        FaultSpace {
            kinds: CHAOS_KINDS.to_vec(),
            faults_min: 1,
            faults_max: 3,
            duration_min: Duration::from_secs(60),
            duration_max,
            window_from,
            window_until,
            error_rate: 0.5,
            latency: Duration::from_secs(5),
            link_latency: Duration::from_secs(2),
            link_jitter: Duration::from_secs(1),
            link_loss: 0.1,
            judge_expectations: false,
        }
    }
}

impl FaultSpace {
    /// The scenario's `[chaos]` table, or the defaults for its duration without the kinds whose
    /// target its world lacks (what `cmksim chaos` sweeps over a file without the table).
    pub fn of(scenario: &Scenario) -> FaultSpace {
        scenario.chaos.clone().unwrap_or_else(|| {
            let mut space = FaultSpace::defaults(scenario.meta.duration);
            let targets = Targets::of(scenario);
            space.kinds.retain(|k| Targets::allow(targets.as_ref(), *k));
            space
        })
    }
}

/// One drawn fault: a kind, when it starts and how long it lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct ChaosFault {
    #[serde(serialize_with = "kind_name")]
    pub kind: ChaosKind,
    /// Offset from T+0, whole seconds.
    #[serde(rename = "start_s", serialize_with = "secs")]
    pub start: Duration,
    /// Whole seconds, at least one.
    #[serde(rename = "duration_s", serialize_with = "secs")]
    pub duration: Duration,
}

fn kind_name<S: serde::Serializer>(kind: &ChaosKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

impl ChaosFault {
    /// `key-disable at T+01:10:00 for 12m`.
    pub fn describe(&self) -> String {
        let start = cmksim_sim::SimTime(0);
        format!(
            "{} at {} for {}",
            self.kind.as_str(),
            start.add(self.start).offset_label(start),
            cmksim_sim::format_duration(self.duration)
        )
    }
}

/// A uniform draw in `lo..=hi` (u64), by a widening multiply: no modulo bias worth naming for
/// the small ranges drawn here, and one `next_u64` per draw so the stream never stalls.
fn uniform(rng: &mut impl RngCore, lo: u64, hi: u64) -> u64 {
    debug_assert!(lo <= hi);
    let span = hi - lo + 1;
    lo + ((u128::from(rng.next_u64()) * u128::from(span)) >> 64) as u64
}

/// Draws the fault schedule of one seed: a pure function of the space and the seed (the
/// `chaos` stream of [`cmksim_sim::SeedTree`], so the services' own streams of the same seed
/// are untouched). Sorted by start, then kind.
pub fn draw(space: &FaultSpace, seed: u64) -> Vec<ChaosFault> {
    let mut rng = cmksim_sim::SeedTree::new(seed).stream("chaos");
    let count = uniform(
        &mut rng,
        u64::from(space.faults_min),
        u64::from(space.faults_max.min(FAULTS_PER_RUN_MAX)),
    );
    let mut faults: Vec<ChaosFault> = (0..count)
        .map(|_| {
            let kind = space.kinds[uniform(&mut rng, 0, space.kinds.len() as u64 - 1) as usize];
            let start = uniform(
                &mut rng,
                space.window_from.as_secs(),
                space.window_until.as_secs(),
            );
            let duration = uniform(
                &mut rng,
                space.duration_min.as_secs().max(1),
                space.duration_max.as_secs().max(1),
            );
            ChaosFault {
                kind,
                start: Duration::from_secs(start),
                duration: Duration::from_secs(duration),
            }
        })
        .collect();
    sort_by_start(&mut faults);
    faults
}

/// Start order (then kind, then duration): the order of the timeline and of the summary.
fn sort_by_start(faults: &mut [ChaosFault]) {
    faults.sort_by_key(|f| (f.start, f.kind, f.duration));
}

/// What the key faults act on: the first world cluster with a customer-managed key, its key,
/// and its identity's access policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Targets {
    pub vault: String,
    pub key: String,
    pub policy: Option<AccessPolicy>,
}

impl Targets {
    /// The targets in a scenario's world, `None` when no world cluster has a key.
    pub fn of(scenario: &Scenario) -> Option<Targets> {
        Targets::in_world(&scenario.world)
    }

    /// Whether a kind can be drawn given a world's targets (key faults need them).
    pub fn allow(targets: Option<&Targets>, kind: ChaosKind) -> bool {
        match kind {
            ChaosKind::KeyDisable => targets.is_some(),
            ChaosKind::AccessPolicyRemove => targets.is_some_and(|t| t.policy.is_some()),
            _ => true,
        }
    }

    /// The targets in a world, `None` when no cluster has a key.
    pub fn in_world(world: &crate::model::World) -> Option<Targets> {
        let cluster = world.clusters.iter().find(|c| c.key.is_some())?;
        let key = cluster.key.as_ref()?;
        let policy = world
            .access_policies
            .iter()
            .find(|p| {
                p.vault == key.vault && p.principal == PrincipalRef::Cluster(cluster.name.clone())
            })
            .cloned();
        Some(Targets {
            vault: key.vault.clone(),
            key: key.key.clone(),
            policy,
        })
    }
}

/// Why a schedule cannot become a scenario.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChaosError {
    #[error("{kind} needs a world cluster with a customer-managed key{what}")]
    NoTarget {
        kind: &'static str,
        what: &'static str,
    },
}

/// The id of the `n`-th chaos step (from 1), and of the step that ends it for action pairs.
pub fn step_id(n: usize) -> String {
    format!("chaos-{n}")
}

/// The scenario a schedule makes: the file's world, traffic, timeline and expectations, plus,
/// for each fault, the ordinary steps of [`crate::model`] that inject and end it (ids
/// `chaos-N`, and `chaos-N-end` for action pairs), merged into the timeline by offset (a chaos
/// step at the same offset as a file step runs after it). The seed of the result is `seed`.
pub fn apply(
    scenario: &Scenario,
    space: &FaultSpace,
    faults: &[ChaosFault],
    seed: u64,
) -> Result<Scenario, ChaosError> {
    let targets = Targets::of(scenario);
    let mut out = scenario.clone();
    out.meta.seed = seed;
    let mut index = scenario.timeline.iter().map(|s| s.index).max().unwrap_or(0);
    let mut added: Vec<Step> = Vec::with_capacity(faults.len() * 2);
    let mut push = |id: String, offset: Duration, what: StepKind| {
        index += 1;
        added.push(Step {
            index,
            id: Some(id),
            offset,
            what,
            narrate: None,
            line: 0,
        });
    };
    for (i, fault) in faults.iter().enumerate() {
        let id = step_id(i + 1);
        let timed = |f: Fault| StepKind::Fault {
            fault: f,
            duration: Some(fault.duration),
        };
        let vault = |mode: VaultFault| timed(Fault::Keyvault(mode));
        match fault.kind {
            ChaosKind::VaultDown => push(id, fault.start, vault(VaultFault::Down)),
            ChaosKind::VaultBlackhole => push(id, fault.start, vault(VaultFault::Blackhole)),
            ChaosKind::VaultThrottle => push(id, fault.start, vault(VaultFault::Throttle)),
            ChaosKind::VaultErrorRate => push(
                id,
                fault.start,
                vault(VaultFault::ErrorRate(space.error_rate)),
            ),
            ChaosKind::VaultLatency => {
                push(id, fault.start, vault(VaultFault::Latency(space.latency)))
            }
            ChaosKind::PartitionStorageVault => push(
                id,
                fault.start,
                timed(Fault::Partition(Host::Storage, Host::Keyvault)),
            ),
            ChaosKind::PartitionIngestStorage => push(
                id,
                fault.start,
                timed(Fault::Partition(Host::Ingest, Host::Storage)),
            ),
            ChaosKind::StorageCrash => push(id, fault.start, timed(Fault::Crash(Host::Storage))),
            ChaosKind::HsmDeviceError => {
                push(id, fault.start, timed(Fault::Hsm(HsmFault::DeviceError)))
            }
            ChaosKind::LinkLatencyStorageVault => push(
                id,
                fault.start,
                timed(Fault::Link(
                    Host::Storage,
                    Host::Keyvault,
                    LinkQuality {
                        latency: space.link_latency,
                        jitter: space.link_jitter,
                        loss: 0.0,
                    },
                )),
            ),
            ChaosKind::LinkLossStorageVault => push(
                id,
                fault.start,
                timed(Fault::Link(
                    Host::Storage,
                    Host::Keyvault,
                    LinkQuality {
                        loss: space.link_loss,
                        ..LinkQuality::default()
                    },
                )),
            ),
            ChaosKind::KeyDisable => {
                let t = targets.as_ref().ok_or(ChaosError::NoTarget {
                    kind: "key-disable",
                    what: "",
                })?;
                let update = |enabled: bool| {
                    StepKind::Action(Action::UpdateKey {
                        vault: t.vault.clone(),
                        key: t.key.clone(),
                        version: VersionSel::Latest,
                        enabled: Some(enabled),
                        not_before: None,
                        expires: None,
                        ops: None,
                    })
                };
                let end = format!("{id}-end");
                push(id, fault.start, update(false));
                push(end, fault.start + fault.duration, update(true));
            }
            ChaosKind::AccessPolicyRemove => {
                let policy = targets.as_ref().and_then(|t| t.policy.clone()).ok_or(
                    ChaosError::NoTarget {
                        kind: "access-policy-remove",
                        what: " and an access policy for its identity",
                    },
                )?;
                let end = format!("{id}-end");
                push(
                    id,
                    fault.start,
                    StepKind::Action(Action::RemoveAccessPolicy {
                        vault: policy.vault.clone(),
                        principal: policy.principal.clone(),
                    }),
                );
                push(
                    end,
                    fault.start + fault.duration,
                    StepKind::Action(Action::SetAccessPolicy(policy)),
                );
            }
        }
    }
    out.timeline.extend(added);
    // Stable: file steps keep their order, and precede chaos steps at the same offset.
    out.timeline.sort_by_key(|s| s.offset);
    Ok(out)
}

/// Most schedules a shrink tries (each try is one simulated run).
pub const SHRINK_ATTEMPTS_MAX: usize = 64;

/// What shrinking found.
#[derive(Clone, Debug, PartialEq)]
pub struct Shrunk {
    /// The smallest schedule found that still fails the same way.
    pub faults: Vec<ChaosFault>,
    /// Runs made (at most the bound given).
    pub attempts: usize,
    /// Whether the bound stopped it before no smaller candidate was left.
    pub exhausted: bool,
}

/// The candidates one step smaller than `faults`, most reducing first: each fault dropped; each
/// fault's duration halved (to no less than `duration_min`); each fault moved later by half its
/// distance to `window_until`. A candidate equal to `faults` is never offered.
pub fn shrink_candidates(faults: &[ChaosFault], space: &FaultSpace) -> Vec<Vec<ChaosFault>> {
    let mut out: Vec<Vec<ChaosFault>> = Vec::new();
    for i in 0..faults.len() {
        let mut fewer = faults.to_vec();
        fewer.remove(i);
        out.push(fewer);
    }
    for i in 0..faults.len() {
        let floor = space.duration_min.as_secs().max(1);
        let halved = (faults[i].duration.as_secs() / 2).max(floor);
        if halved < faults[i].duration.as_secs() {
            let mut shorter = faults.to_vec();
            shorter[i].duration = Duration::from_secs(halved);
            out.push(shorter);
        }
    }
    for i in 0..faults.len() {
        let start = faults[i].start.as_secs();
        let until = space.window_until.as_secs();
        let later = start + until.saturating_sub(start) / 2;
        if later > start {
            let mut moved = faults.to_vec();
            moved[i].start = Duration::from_secs(later);
            sort_by_start(&mut moved);
            out.push(moved);
        }
    }
    out
}

/// Greedy shrinking: repeatedly takes the first candidate of [`shrink_candidates`] for which
/// `still_fails` says the same check still breaks, until no candidate does or `attempts_max`
/// runs were made. `still_fails` is the caller's run-and-judge (the only impure part).
pub fn shrink(
    faults: &[ChaosFault],
    space: &FaultSpace,
    attempts_max: usize,
    mut still_fails: impl FnMut(&[ChaosFault]) -> bool,
) -> Shrunk {
    let mut current = faults.to_vec();
    let mut attempts = 0usize;
    // Bounded: every accepted candidate is strictly smaller (fewer faults, a shorter one, or a
    // later one within a finite window), and every try counts against `attempts_max`.
    'outer: loop {
        for candidate in shrink_candidates(&current, space) {
            if attempts >= attempts_max {
                return Shrunk {
                    faults: current,
                    attempts,
                    exhausted: true,
                };
            }
            attempts += 1;
            if still_fails(&candidate) {
                current = candidate;
                continue 'outer;
            }
        }
        return Shrunk {
            faults: current,
            attempts,
            exhausted: false,
        };
    }
}

/// A TOML string literal.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn dur(d: Duration) -> String {
    quoted(&cmksim_sim::format_duration(d))
}

/// The `[[timeline]]` entries of a schedule, as a person would write them (the same steps
/// [`apply`] adds).
pub fn timeline_toml(
    scenario: &Scenario,
    space: &FaultSpace,
    faults: &[ChaosFault],
) -> Result<String, ChaosError> {
    let applied = apply(scenario, space, faults, scenario.meta.seed)?;
    let mut out = String::new();
    for step in applied
        .timeline
        .iter()
        .filter(|s| s.id.as_deref().is_some_and(|id| id.starts_with("chaos-")))
    {
        let id = step.id.as_deref().unwrap_or_default();
        out.push_str(&format!(
            "[[timeline]]\nid = {}\nat = {}\n",
            quoted(id),
            dur(step.offset)
        ));
        match &step.what {
            StepKind::Fault { fault, duration } => {
                out.push_str(&format!("fault = {}\n", fault_toml(fault)));
                if let Some(d) = duration {
                    out.push_str(&format!("duration = {}\n", dur(*d)));
                }
            }
            StepKind::Action(Action::UpdateKey {
                vault,
                key,
                enabled,
                ..
            }) => out.push_str(&format!(
                "action = \"update-key\"\nvault = {}\nkey = {}\nenabled = {}\n",
                quoted(vault),
                quoted(key),
                enabled.unwrap_or(true)
            )),
            StepKind::Action(Action::RemoveAccessPolicy { vault, principal }) => {
                out.push_str(&format!(
                    "action = \"remove-access-policy\"\nvault = {}\nprincipal = {}\n",
                    quoted(vault),
                    quoted(&principal.label())
                ))
            }
            StepKind::Action(Action::SetAccessPolicy(policy)) => {
                let permissions: Vec<String> = policy
                    .permissions
                    .iter()
                    .map(|p| {
                        serde_json::to_value(p)
                            .ok()
                            .and_then(|v| v.as_str().map(quoted))
                            .unwrap_or_default()
                    })
                    .collect();
                out.push_str(&format!(
                    "action = \"set-access-policy\"\nvault = {}\nprincipal = {}\npermissions = [{}]\n",
                    quoted(&policy.vault),
                    quoted(&policy.principal.label()),
                    permissions.join(", ")
                ))
            }
            // `apply` makes no other step.
            StepKind::Action(_) | StepKind::Narrate => {}
        }
        out.push('\n');
    }
    Ok(out)
}

/// A fault as the inline table of the format.
fn fault_toml(fault: &Fault) -> String {
    let pair = |verb: &str, a: Host, b: Host| {
        format!("{{ {verb} = [\"{}\", \"{}\"] }}", a.as_str(), b.as_str())
    };
    match *fault {
        Fault::Keyvault(VaultFault::Down) => "{ keyvault = \"down\" }".into(),
        Fault::Keyvault(VaultFault::Blackhole) => "{ keyvault = \"blackhole\" }".into(),
        Fault::Keyvault(VaultFault::Throttle) => "{ keyvault = \"throttle\" }".into(),
        Fault::Keyvault(VaultFault::ErrorRate(rate)) => {
            format!("{{ keyvault = \"error-rate\", error_rate = {rate:?} }}")
        }
        Fault::Keyvault(VaultFault::Latency(d)) => {
            format!("{{ keyvault = \"latency\", latency = {} }}", dur(d))
        }
        Fault::Keyvault(VaultFault::Up) => "{ keyvault = \"up\" }".into(),
        Fault::Partition(a, b) => pair("partition", a, b),
        Fault::Repair(a, b) => pair("repair", a, b),
        Fault::Hold(a, b) => pair("hold", a, b),
        Fault::Release(a, b) => pair("release", a, b),
        Fault::Crash(h) => format!("{{ crash = \"{}\" }}", h.as_str()),
        Fault::Restart(h) => format!("{{ restart = \"{}\" }}", h.as_str()),
        Fault::Hsm(HsmFault::DeviceError) => "{ hsm = \"device-error\" }".into(),
        Fault::Hsm(HsmFault::Tamper) => "{ hsm = \"tamper\" }".into(),
        Fault::Hsm(HsmFault::Latency(d)) => {
            format!("{{ hsm = \"latency\", latency = {} }}", dur(d))
        }
        Fault::Hsm(HsmFault::Ok) => "{ hsm = \"ok\" }".into(),
        Fault::Link(a, b, quality) => {
            let mut table = format!("{{ link = [\"{}\", \"{}\"]", a.as_str(), b.as_str());
            if !quality.latency.is_zero() {
                table.push_str(&format!(", latency = {}", dur(quality.latency)));
            }
            if !quality.jitter.is_zero() {
                table.push_str(&format!(", jitter = {}", dur(quality.jitter)));
            }
            if quality.loss > 0.0 {
                table.push_str(&format!(", loss = {:?}", quality.loss));
            }
            table.push_str(" }");
            table
        }
    }
}

/// The regression file of a shrunk schedule: the original file's text with its `[chaos]` table
/// removed and its seed set to the failing seed, then a comment naming what broke, then the
/// schedule's steps. `cmksim validate` accepts it and `cmksim run` checks every invariant, so
/// it fails (exit 1) for as long as the bug is there.
///
/// `chaos_header_line` is the 1-based line of `[chaos]` in `original` (the table runs to the
/// next table header); `broken` lists the checks that broke (`invariant-3: title`).
pub fn regression_file(
    original: &str,
    scenario: &Scenario,
    space: &FaultSpace,
    faults: &[ChaosFault],
    seed: u64,
    broken: &[String],
) -> Result<String, ChaosError> {
    let mut kept: Vec<&str> = Vec::new();
    let mut in_chaos = false;
    let mut seed_written = false;
    let mut in_meta = false;
    for line in original.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            let header = trimmed.trim_end();
            in_chaos = header == "[chaos]";
            in_meta = header == "[scenario]";
        }
        if in_chaos {
            continue;
        }
        if in_meta && (trimmed.starts_with("seed ") || trimmed.starts_with("seed=")) {
            seed_written = true;
            kept.push("__SEED__");
            continue;
        }
        kept.push(line);
    }
    let seed_line = format!("seed = {seed}");
    let mut out = String::new();
    out.push_str(&format!(
        "# Shrunk by `cmksim chaos` from seed {seed} of scenario {}: {} fault(s).\n",
        scenario.meta.name,
        faults.len()
    ));
    for b in broken {
        out.push_str(&format!("# Broke {}\n", cmksim_sim::text::echo(b)));
    }
    out.push_str("# `cmksim run` checks every invariant: it exits 1 while the bug is present.\n\n");
    let mut inserted = seed_written;
    for line in kept {
        if line == "__SEED__" {
            out.push_str(&seed_line);
            out.push('\n');
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if !inserted && line.trim() == "[scenario]" {
            out.push_str(&seed_line);
            out.push('\n');
            inserted = true;
        }
    }
    out.push_str("\n# The shrunk fault schedule.\n");
    let mut with_seed = scenario.clone();
    with_seed.meta.seed = seed;
    out.push_str(&timeline_toml(&with_seed, space, faults)?);
    Ok(out)
}
