//! Named limits on what a scenario may ask for.
//!
//! Every loop and collection driven by a scenario file is bounded, so that a mistyped file fails
//! validation with a clear message instead of exhausting memory or running for a simulated
//! century. Units are part of each name.

/// Largest scenario file read, in bytes.
pub const SCENARIO_FILE_MAX_BYTES: u64 = 1024 * 1024;
/// Longest scenario, in seconds (400 days: longer than any retention or soft-delete window).
pub const SCENARIO_DURATION_MAX_SECS: u64 = 400 * 86_400;
/// Most timeline steps in one scenario.
pub const TIMELINE_STEPS_MAX: usize = 10_000;
/// Most expectations in one scenario.
pub const EXPECTATIONS_MAX: usize = 1_000;
/// Most entities of one kind (vaults, keys, clusters, workspaces, agents, ...).
pub const ENTITIES_PER_KIND_MAX: usize = 1_000;
/// Longest entity name or step id, in characters (Azure's vault names stop at 24, resource
/// names at 63: the simulator accepts up to the larger).
pub const NAME_MAX_CHARS: usize = 63;
/// Shortest interval between two batches of one agent table, in milliseconds.
pub const AGENT_INTERVAL_MIN_MS: u64 = 1_000;
/// Most records in one batch (agent table or ingest action).
pub const BATCH_RECORDS_MAX: u64 = 1_000_000;
/// Most diagnostics reported for one file (the rest are counted, not listed).
pub const DIAGNOSTICS_MAX: usize = 100;
/// Key Vault soft-delete retention range, in days (SPEC §2).
pub const VAULT_RETENTION_MIN_DAYS: u32 = 7;
/// See [`VAULT_RETENTION_MIN_DAYS`].
pub const VAULT_RETENTION_MAX_DAYS: u32 = 90;
/// Largest cluster capacity written in a file, in GB per day; the exact range and step are the
/// service's rule (profile-dependent), this only catches obvious typos.
pub const CLUSTER_CAPACITY_MAX_GB_PER_DAY: u32 = 1_000_000;
