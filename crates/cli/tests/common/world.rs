//! A small world built over the services' gRPC APIs, for the multi-process tests: the
//! sequence an operator follows (tenant and operator → tokens → vault → key → cluster → access
//! policy for the cluster's identity → key update → workspace → link), with every wait bounded.
//!
//! Each test file names its own resources ([`WorldNames`]) and hands in its own channels (plain
//! or TLS), so that one sequence serves the crash tests and the TLS tests alike. The sequence
//! itself is `cmksim_setup`'s (shared with `cmksim bench ingest` and storage's tests); this
//! module turns its typed errors into test failures.

use tonic::transport::Channel;

use super::{POLLS_MAX, POLL_INTERVAL};

/// `SimTime::DEFAULT_EPOCH`: the simulated time at `--epoch`.
pub const SIM_EPOCH_MS: i64 = 1_593_907_200_000;

/// The names of a test's world (the one set-up sequence, `cmksim_setup`, builds it).
pub use cmksim_setup::WorldNames;

/// The simulated time now, for processes started with `--epoch epoch_ms` at `TIME_SCALE`.
pub fn sim_now_ms(epoch_ms: i64) -> i64 {
    SIM_EPOCH_MS + ((super::now_unix_ms() - epoch_ms) as f64 * super::TIME_SCALE) as i64
}

/// `message` with the bearer `token` (panics on a token that is no header value).
pub fn authorized<T>(token: &str, message: T) -> tonic::Request<T> {
    cmksim_setup::authorized(token, message).expect("a token is a header value")
}

/// The tests' bound on every wait.
const POLLING: cmksim_setup::Polling = cmksim_setup::Polling {
    interval: POLL_INTERVAL,
    polls_max: POLLS_MAX,
};

/// Polls `check` until it yields a value (bounded by `POLLS_MAX` × `POLL_INTERVAL`).
pub async fn poll<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    cmksim_setup::poll(what, POLLING, check)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The operator a world was built by: enough to ask for fresh tokens later (a token lives one
/// simulated hour, seconds of real time at 600×).
pub struct Operator(cmksim_setup::Operator);

impl Operator {
    /// A token of `audience` from the identity authority in the Key Vault process.
    pub async fn token(&self, kv: Channel, audience: &str) -> String {
        self.0.token(kv, audience).await.expect("issue token")
    }
}

/// Builds the world through the services' gRPC APIs, as an operator would
/// ([`cmksim_setup::build_world`]). Returns the operator.
/// The identity service's administrative calls carry the token of the administrator whose
/// credentials file is `admin_file` ([`super::admin_file`]).
pub async fn build_world(
    names: &WorldNames,
    kv: Channel,
    storage: Channel,
    admin_file: &std::path::Path,
) -> Operator {
    let admin =
        cmksim_identity::AdminCredentials::load(admin_file).unwrap_or_else(|e| panic!("{e}"));
    Operator(
        cmksim_setup::build_world(names, kv, storage, &admin, POLLING)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    )
}
