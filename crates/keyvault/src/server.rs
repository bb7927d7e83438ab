//! [`KeyVaultServer`]: the Key Vault process — open on a data directory, then serve.
//!
//! Data directory layout:
//! - `keyvault/`: the sled database of vaults, keys and audit ([`crate::store`]);
//! - `master.key`: the vault service's 32-byte master key. Software keys are sealed under it
//!   with AES-256-GCM; the HSM PINs are derived from it. It is a plain file (mode 0600 on Unix)
//!   in the data directory, the simulator's trust boundary: whoever reads the data directory can
//!   read the software keys, as whoever holds a real HSM-less vault's storage and key-encryption
//!   key could. HSM keys do not depend on it for secrecy: they are sealed by the HSM's own
//!   master key in `hsm/`.
//! - `hsm/`: the emulated HSM's token (premium vaults' `-HSM` keys);
//! - `identity/`: the identity authority (it lives in the Key Vault process for now).
//!
//! One server hosts `keyvault.v1.KeyVault`, `keyvault.v1.ChaosControl`, `identity.v1.Identity`,
//! `grpc.health.v1.Health` and server reflection. A background task purges soft-deleted vaults
//! and keys at their scheduled purge date: it sleeps on the simulation clock until the earliest
//! one, and is woken whenever records change (a new deletion may be earlier). With nothing
//! scheduled it holds no timer at all, so a paused or simulated runtime never jumps for it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rand::RngCore;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_stream::Stream;
use tonic::transport::server::Connected;

use cmksim_identity::{IdentityAuthority, IdentityService};
use cmksim_proto::keyvault::v1 as pb;
use cmksim_sim::{Clock, EventLog, RandomSource, SeedTree};

use crate::backend::Crypto;
use crate::chaos::Chaos;
use crate::errors::KvError;
use crate::hsm::HsmKeys;
use crate::service::{ChaosControlService, Core, Inner, KeyVaultService};
use crate::store::KeyVaultStore;

/// Server configuration.
#[derive(Clone, Debug, Default)]
pub struct KeyVaultConfig {
    /// Draw key material (master key, EC keys, nonces) from the OS instead of the seed tree (live
    /// mode). Key versions, ids and chaos draws stay seeded either way.
    pub os_key_material: bool,
    /// Run without the emulated HSM (HSM key types are then refused with an internal error).
    pub without_hsm: bool,
    /// The root seed of the key material's streams (master key, RSA and EC keys, nonces:
    /// `keyvault/key-material` and `keyvault/hsm`) when it is not the run's seed. A simulated
    /// world passes its scenario's own seed, so that every seed of a chaos sweep (whose seed
    /// picks the faults and the timing) runs over the same keys, as a test rig reuses its vault:
    /// key material never reaches an output, and a key generated once is remembered for the
    /// process (`cmksim_hsm`'s RSA generator), so a sweep pays the RSA key generation once, not
    /// once a seed. `None`: the run's seed tree. Ignored with `os_key_material`.
    pub key_material_seed: Option<u64>,
}

/// Why the server could not open or serve.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("Key Vault data directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Key Vault: {0}")]
    KeyVault(#[from] KvError),
    #[error("identity authority: {0}")]
    Identity(#[from] cmksim_identity::IdentityError),
    #[error("reflection: {0}")]
    Reflection(String),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Bind(#[from] cmksim_sim::net::BindError),
}

/// An opened Key Vault process, ready to serve.
pub struct KeyVaultServer {
    core: Arc<Core>,
    identity: Arc<Mutex<IdentityAuthority>>,
    clock: Clock,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ServerError + '_ {
    move |source| ServerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The stream a Key Vault's master key and software keys are drawn from.
fn material_source(material_seeds: &SeedTree) -> RandomSource {
    material_seeds.source("keyvault/key-material")
}

/// A new master key: the first 32 bytes of the key-material stream.
fn draw_master_key(rng: &mut RandomSource) -> [u8; 32] {
    let mut key = [0u8; 32];
    rng.fill_bytes(&mut key);
    key
}

/// Starts generating, on another thread, the software RSA key of `modulus_bits` that a Key
/// Vault opened on a fresh directory with `key_material_seed` (`KeyVaultConfig`) makes first,
/// if its first draw from the key-material stream after the master key is that key's
/// ([`cmksim_hsm::prepare_rsa`]). A simulated world whose first declared key is a software RSA
/// key calls this before it builds its services, so the key search overlaps their set-up on a
/// second core. A wrong guess (an EC key first, an existing directory) costs only that core's
/// time: the key a seed gives is the same whoever searched for it. Returns whether a search
/// was started.
pub fn prepare_first_rsa_key(key_material_seed: u64, modulus_bits: u32) -> bool {
    cmksim_hsm::prepare_rsa(
        u64::from(modulus_bits),
        &first_rsa_key_seed(key_material_seed),
    )
}

/// The seed of the first software RSA key of a Key Vault opened on a fresh directory with
/// `key_material_seed`, if its first draw after the master key is that key's.
pub(crate) fn first_rsa_key_seed(key_material_seed: u64) -> cmksim_hsm::RsaKeySeed {
    let mut rng = material_source(&SeedTree::new(key_material_seed));
    draw_master_key(&mut rng);
    cmksim_hsm::RsaKeySeed::draw(&mut rng)
}

fn load_or_create_master_key(path: &Path, rng: &mut RandomSource) -> Result<[u8; 32], ServerError> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() == 32 => {
            let mut key = [0u8; 32];
            key.copy_from_slice(&bytes);
            Ok(key)
        }
        Ok(bytes) => Err(ServerError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("master key has {} bytes, expected 32", bytes.len()),
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = draw_master_key(rng);
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, key).map_err(io_error(&tmp))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                    .map_err(io_error(&tmp))?;
            }
            std::fs::rename(&tmp, path).map_err(io_error(path))?;
            Ok(key)
        }
        Err(e) => Err(ServerError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

impl KeyVaultServer {
    /// Opens (or creates) the Key Vault state in `data_dir`.
    pub fn open(
        data_dir: &Path,
        clock: Clock,
        seeds: SeedTree,
        events: EventLog,
        config: KeyVaultConfig,
    ) -> Result<KeyVaultServer, ServerError> {
        std::fs::create_dir_all(data_dir).map_err(io_error(data_dir))?;
        let material_seeds = config.key_material_seed.map_or(seeds, SeedTree::new);
        let mut material_rng = if config.os_key_material {
            RandomSource::Os
        } else {
            material_source(&material_seeds)
        };
        let master_key =
            load_or_create_master_key(&data_dir.join("master.key"), &mut material_rng)?;
        let hsm = if config.without_hsm {
            None
        } else {
            let hsm_rng = if config.os_key_material {
                RandomSource::Os
            } else {
                material_seeds.source("keyvault/hsm")
            };
            Some(HsmKeys::open(&data_dir.join("hsm"), &master_key, hsm_rng)?)
        };
        let crypto = Crypto::new(&master_key, material_rng, hsm)?;
        let store = KeyVaultStore::open(&data_dir.join("keyvault"))?;
        let state = store.load()?;
        let identity_rng = if config.os_key_material {
            RandomSource::Os
        } else {
            seeds.source("identity")
        };
        let identity = IdentityAuthority::open(&data_dir.join("identity"), identity_rng)?;
        let verifier = identity.verifier();
        let core = Arc::new(Core {
            inner: Mutex::new(Inner {
                state,
                crypto,
                store,
                version_rng: seeds.source("keyvault/key-versions"),
            }),
            clock: clock.clone(),
            events,
            verifier,
            chaos: Chaos::new(clock.clone(), seeds.source("keyvault/chaos")),
            schedule_changed: tokio::sync::Notify::new(),
        });
        Ok(KeyVaultServer {
            core,
            identity: Arc::new(Mutex::new(identity)),
            clock,
        })
    }

    /// The identity authority hosted by this process (scenario setup creates tenants and
    /// principals through it directly or over gRPC).
    pub fn identity(&self) -> Arc<Mutex<IdentityAuthority>> {
        self.identity.clone()
    }

    #[cfg(test)]
    pub(crate) fn core(&self) -> Arc<Core> {
        self.core.clone()
    }

    /// Purges what is due now (the background task calls this; tests may too).
    pub fn purge_due(&self) -> Result<usize, KvError> {
        self.core.purge_due()
    }

    /// Serves on `addr` until `shutdown` completes.
    pub async fn serve(
        self,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        let incoming = cmksim_sim::net::bind_tcp(addr).await?;
        self.serve_with_incoming(incoming, shutdown).await
    }

    /// Serves the connections of `incoming` (real TCP, turmoil, in-memory) until `shutdown`.
    pub async fn serve_with_incoming<I, IO, IE>(
        self,
        incoming: I,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError>
    where
        I: Stream<Item = Result<IO, IE>> + Send + 'static,
        IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
        IE: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (health_service, reflection) = cmksim_sim::net::health_and_reflection(
            &[pb::key_vault_server::SERVICE_NAME],
            cmksim_proto::FILE_DESCRIPTOR_SET,
        )
        .await
        .map_err(|e| ServerError::Reflection(e.to_string()))?;
        let keyvault = pb::key_vault_server::KeyVaultServer::new(KeyVaultService {
            core: self.core.clone(),
        });
        let chaos = pb::chaos_control_server::ChaosControlServer::new(ChaosControlService {
            core: self.core.clone(),
        });
        let identity =
            IdentityService::new(self.identity.clone(), self.clock.clone()).into_server();

        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let purge_core = self.core.clone();
        let clock = self.clock.clone();
        let purge_task = tokio::spawn(async move {
            loop {
                let next = purge_core.next_purge();
                let due = async {
                    match next {
                        Some(at) => clock.sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    // Biased: one simulated runtime must poll branches in one order (seed-for-seed
                    // determinism); tokio's default order is random.
                    biased;
                    _ = due => {
                        if let Err(e) = purge_core.purge_due() {
                            tracing::warn!("scheduled purge failed: {e}");
                        }
                    }
                    _ = purge_core.schedule_changed.notified() => {}
                    _ = stop_rx.changed() => break,
                }
            }
        });
        let (events, shutdown) = cmksim_events::events_service(
            "keyvault",
            "",
            self.core.events.clone(),
            self.clock.clone(),
            shutdown,
        );
        let result = tonic::transport::Server::builder()
            .add_service(events)
            .add_service(keyvault)
            .add_service(chaos)
            .add_service(identity)
            .add_service(health_service)
            .add_service(reflection)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        // The purge task holds the receiver; if it has ended already, there is no one to stop.
        let _ = stop_tx.send(true);
        if let Err(e) = purge_task.await {
            tracing::error!("the scheduled purge task ended abnormally: {e}");
        }
        result.map_err(ServerError::from)
    }
}
