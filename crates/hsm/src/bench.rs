//! `cmksim bench hsm`: throughput of the emulated HSM beside aws-lc, SoftHSM2 and `openssl speed`.
//!
//! Every row runs the same operation up to four ways: through [`crate::Module`]'s API (so the
//! lock, session and attribute checks are counted), straight on aws-lc-rs without the module
//! (the library floor: module overhead is the gap between the first two columns), through
//! SoftHSM2's PKCS#11 library with the `cryptoki` crate (when it is installed), and as
//! `openssl speed`'s figure for the same primitive (when `openssl` is on the PATH). The goal
//! figures: at least SoftHSM2 on every row, and RSA private operations at least 0.9x OpenSSL.
//! The key pair generation row runs cmksim's module on a seeded stream, the way every simulated
//! world's HSM and software keys are made (the project's own prime search, issue 12), beside
//! aws-lc's and SoftHSM2's generators on the OS's randomness.
//!
//! Like with like: `openssl speed rsa2048` times the RSA private operation through
//! `EVP_PKEY_sign` (PKCS#1 v1.5 padding, blinding on), which is the same CRT exponentiation an
//! OAEP decryption does; the padding differs by under 2% (aws-lc's PKCS#1 sign and OAEP decrypt
//! run within that of each other). OpenSSL 3.0's `-evp` flag applies to ciphers and digests
//! only: its RSA and ECDSA rows already go through EVP.
//!
//! Interleaving: the machine is shared, so a figure taken a minute after another is not
//! comparable with it. Keys are made first; then the run goes in [`BenchOptions::rounds`]
//! rounds, each giving every implementation of every row a slice of `row_duration / rounds`
//! (and running `openssl speed` once), so that load changes hit every column alike. The load
//! average is recorded before and after.
//!
//! This is a measuring tool, not domain logic: it reads the real clock (`Instant`) and the OS
//! random source, and it points SoftHSM2 at a temporary configuration through the
//! `SOFTHSM2_CONF` environment variable. Each slice is bounded by its time and by
//! [`ROW_ITERATIONS_MAX`].

mod awslc;
mod openssl;
mod softhsm;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use cmksim_sim::{RandomSource, SeedTree};
use serde::Serialize;

use crate::{
    Attribute, Mechanism, Module, ModuleConfig, ObjectHandle, SessionHandle, SlotId, UserType,
    P256_EC_PARAMS_DER,
};

/// Most iterations of one row, whatever the time budget.
pub const ROW_ITERATIONS_MAX: u64 = 1_000_000;

/// What to measure and for how long.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Time spent measuring each row on each implementation (split over the rounds).
    pub row_duration: Duration,
    /// Rounds the measuring is interleaved in (at least 1).
    pub rounds: u32,
    /// Also run `openssl speed` (about 7 s per round).
    pub openssl: bool,
    /// Also measure SoftHSM2 (when its module is found).
    pub softhsm: bool,
    /// Also measure aws-lc-rs directly, without the module.
    pub awslc: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            row_duration: Duration::from_secs(3),
            rounds: 3,
            openssl: true,
            softhsm: true,
            awslc: true,
        }
    }
}

/// The operations measured, one row each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BenchOp {
    /// RSA-2048 OAEP-SHA1 decrypt (Key Vault unwrapKey RSA-OAEP).
    Rsa2048OaepSha1Decrypt,
    /// RSA-3072 OAEP-SHA1 decrypt.
    Rsa3072OaepSha1Decrypt,
    /// RSA-2048 OAEP-SHA256 decrypt (RSA-OAEP-256).
    Rsa2048OaepSha256Decrypt,
    /// RSA-3072 OAEP-SHA256 decrypt.
    Rsa3072OaepSha256Decrypt,
    /// RSA-2048 OAEP-SHA1 public encrypt (wrapKey).
    Rsa2048OaepSha1Encrypt,
    /// ECDSA P-256 sign of a 32-byte digest.
    EcdsaP256Sign,
    /// AES-256 KWP unwrap of a 32-byte key into a session object (then destroyed).
    Aes256KwpUnwrap,
    /// RSA-2048 key pair generation (the pair then destroyed): cmksim's from a seeded stream, as
    /// every simulated world's keys are made (its own prime search, whose base-2 rounds use up
    /// to two threads since session 12), the others' from the OS, on one thread each.
    Rsa2048KeyPairGen,
}

impl BenchOp {
    /// Every row, in table order.
    pub const ALL: [BenchOp; 8] = [
        BenchOp::Rsa2048OaepSha1Decrypt,
        BenchOp::Rsa3072OaepSha1Decrypt,
        BenchOp::Rsa2048OaepSha256Decrypt,
        BenchOp::Rsa3072OaepSha256Decrypt,
        BenchOp::Rsa2048OaepSha1Encrypt,
        BenchOp::EcdsaP256Sign,
        BenchOp::Aes256KwpUnwrap,
        BenchOp::Rsa2048KeyPairGen,
    ];

    /// The row's label.
    pub fn label(self) -> &'static str {
        match self {
            BenchOp::Rsa2048OaepSha1Decrypt => "RSA-2048 OAEP-SHA1 unwrap (decrypt)",
            BenchOp::Rsa3072OaepSha1Decrypt => "RSA-3072 OAEP-SHA1 unwrap (decrypt)",
            BenchOp::Rsa2048OaepSha256Decrypt => "RSA-2048 OAEP-SHA256 unwrap (decrypt)",
            BenchOp::Rsa3072OaepSha256Decrypt => "RSA-3072 OAEP-SHA256 unwrap (decrypt)",
            BenchOp::Rsa2048OaepSha1Encrypt => "RSA-2048 OAEP-SHA1 wrap (public encrypt)",
            BenchOp::EcdsaP256Sign => "ECDSA P-256 sign",
            BenchOp::Aes256KwpUnwrap => "AES-256 KWP unwrap",
            BenchOp::Rsa2048KeyPairGen => "RSA-2048 key pair generation",
        }
    }

    fn modulus_bits(self) -> u64 {
        match self {
            BenchOp::Rsa3072OaepSha1Decrypt | BenchOp::Rsa3072OaepSha256Decrypt => 3072,
            _ => 2048,
        }
    }

    fn oaep_sha256(self) -> bool {
        matches!(
            self,
            BenchOp::Rsa2048OaepSha256Decrypt | BenchOp::Rsa3072OaepSha256Decrypt
        )
    }

    /// True for the RSA private-key rows (the ones held to 0.9x OpenSSL).
    pub fn is_rsa_private(self) -> bool {
        !matches!(
            self,
            BenchOp::Rsa2048OaepSha1Encrypt
                | BenchOp::EcdsaP256Sign
                | BenchOp::Aes256KwpUnwrap
                | BenchOp::Rsa2048KeyPairGen
        )
    }
}

/// One row of the report.
#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    /// What was measured.
    pub op: BenchOp,
    /// Its label.
    pub label: String,
    /// cmksim-hsm through `Module`, operations per second.
    pub cmksim_ops_per_s: Option<f64>,
    /// The same primitive on aws-lc-rs without the module, operations per second.
    pub awslc_ops_per_s: Option<f64>,
    /// SoftHSM2 through PKCS#11, operations per second.
    pub softhsm_ops_per_s: Option<f64>,
    /// `openssl speed`'s figure for the primitive, operations per second.
    pub openssl_ops_per_s: Option<f64>,
    /// cmksim / aws-lc direct (1.0 = no module overhead).
    pub ratio_awslc: Option<f64>,
    /// cmksim / SoftHSM2.
    pub ratio_softhsm: Option<f64>,
    /// cmksim / OpenSSL.
    pub ratio_openssl: Option<f64>,
}

/// The whole report (`--json` prints it).
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Measuring time per row and implementation, in milliseconds.
    pub row_duration_ms: u64,
    /// Rounds the measuring was interleaved in.
    pub rounds: u32,
    /// `/proc/loadavg` before measuring (1, 5, 15-minute load; absent off Linux).
    pub load_average_before: Option<String>,
    /// `/proc/loadavg` after measuring.
    pub load_average_after: Option<String>,
    /// The rows, in [`BenchOp::ALL`] order.
    pub rows: Vec<BenchRow>,
    /// What was missing or failed ("SoftHSM2 not found at ...").
    pub notes: Vec<String>,
}

/// Operations counted over some time; slices add up.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tally {
    ops: u64,
    elapsed: Duration,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.ops += other.ops;
        self.elapsed += other.elapsed;
    }

    fn ops_per_s(self) -> Option<f64> {
        (self.ops > 0 && !self.elapsed.is_zero())
            .then(|| self.ops as f64 / self.elapsed.as_secs_f64())
    }
}

/// Runs `op` repeatedly for `budget` (at least once, at most [`ROW_ITERATIONS_MAX`] times) and
/// counts it, or returns the first error. Warming up is the caller's (done when preparing).
pub(crate) fn slice<E>(
    budget: Duration,
    mut op: impl FnMut() -> Result<(), E>,
) -> Result<Tally, E> {
    let start = Instant::now();
    let mut ops = 0u64;
    while ops < ROW_ITERATIONS_MAX {
        op()?;
        ops += 1;
        if start.elapsed() >= budget {
            break;
        }
    }
    Ok(Tally {
        ops,
        elapsed: start.elapsed(),
    })
}

/// The 32 bytes every row wraps, signs or unwraps.
pub(crate) const PAYLOAD: [u8; 32] = [0x5A; 32];

fn load_average() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// One implementation's tallies, or why it has none.
struct Column {
    tallies: Vec<Tally>,
    failed: bool,
}

impl Column {
    fn new() -> Column {
        Column {
            tallies: vec![Tally::default(); BenchOp::ALL.len()],
            failed: false,
        }
    }

    fn rate(&self, index: usize) -> Option<f64> {
        if self.failed {
            return None;
        }
        self.tallies[index].ops_per_s()
    }
}

/// Runs every row and returns the report (print it with [`BenchReport::to_table`]).
pub fn run(options: &BenchOptions) -> BenchReport {
    let rounds = options.rounds.max(1);
    let budget = options.row_duration / rounds;
    let mut notes = Vec::new();

    // Keys first, for every implementation, so that only operations run in the rounds.
    let dir = std::env::temp_dir().join(format!("cmksim-hsm-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cmksim = match CmksimRows::prepare(&dir) {
        Ok(rows) => Some(rows),
        Err(e) => {
            notes.push(format!("cmksim-hsm failed: {e}"));
            None
        }
    };
    let awslc: Vec<Option<awslc::Prepared>> = BenchOp::ALL
        .iter()
        .map(|op| {
            if !options.awslc {
                return None;
            }
            awslc::prepare(*op)
                .map_err(|_| notes.push(format!("aws-lc failed to set up {}", op.label())))
                .ok()
        })
        .collect();
    let softhsm = if options.softhsm {
        softhsm::SoftHsm::open(&mut notes)
            .map_err(|note| notes.push(note))
            .ok()
    } else {
        None
    };

    let load_average_before = load_average();
    let mut columns = [Column::new(), Column::new(), Column::new()];
    let [cmksim_column, awslc_column, softhsm_column] = &mut columns;
    let mut openssl_runs: Vec<openssl::Speed> = Vec::new();
    let mut openssl_failed = !options.openssl;
    for _ in 0..rounds {
        for (index, awslc_prepared) in awslc.iter().enumerate() {
            if let Some(rows) = cmksim.as_ref().filter(|_| !cmksim_column.failed) {
                match rows.run_slice(index, budget) {
                    Ok(tally) => cmksim_column.tallies[index].add(tally),
                    Err(e) => {
                        notes.push(format!(
                            "cmksim-hsm failed on {}: {e}",
                            BenchOp::ALL[index].label()
                        ));
                        cmksim_column.failed = true;
                    }
                }
            }
            if let Some(prepared) = awslc_prepared {
                match awslc::run_slice(prepared, budget) {
                    Ok(tally) => awslc_column.tallies[index].add(tally),
                    Err(_) => {
                        notes.push(format!("aws-lc failed on {}", BenchOp::ALL[index].label()));
                        awslc_column.failed = true;
                    }
                }
            }
            if let Some(result) = softhsm
                .as_ref()
                .filter(|_| !softhsm_column.failed)
                .and_then(|s| s.run_slice(index, budget))
            {
                match result {
                    Ok(tally) => softhsm_column.tallies[index].add(tally),
                    Err(e) => {
                        notes.push(format!(
                            "SoftHSM2 failed on {}: {e}",
                            BenchOp::ALL[index].label()
                        ));
                        softhsm_column.failed = true;
                    }
                }
            }
        }
        if !openssl_failed {
            match openssl::speed() {
                Ok(speed) => openssl_runs.push(speed),
                Err(note) => {
                    notes.push(note);
                    openssl_failed = true;
                }
            }
        }
    }
    let load_average_after = load_average();
    drop(softhsm);
    drop(cmksim);
    let _ = std::fs::remove_dir_all(&dir);

    // OpenSSL's figure per row: the mean over the rounds it ran in.
    let openssl_rate = |op: BenchOp| {
        let rates: Vec<f64> = openssl_runs.iter().filter_map(|s| s.for_op(op)).collect();
        (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64)
    };
    let rows = BenchOp::ALL
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let cmksim = columns[0].rate(i);
            let awslc = columns[1].rate(i);
            let softhsm = columns[2].rate(i);
            let openssl = openssl_rate(*op);
            BenchRow {
                op: *op,
                label: op.label().to_string(),
                cmksim_ops_per_s: cmksim,
                awslc_ops_per_s: awslc,
                softhsm_ops_per_s: softhsm,
                openssl_ops_per_s: openssl,
                ratio_awslc: ratio(cmksim, awslc),
                ratio_softhsm: ratio(cmksim, softhsm),
                ratio_openssl: ratio(cmksim, openssl),
            }
        })
        .collect();
    BenchReport {
        row_duration_ms: options.row_duration.as_millis() as u64,
        rounds,
        load_average_before,
        load_average_after,
        rows,
        notes,
    }
}

impl BenchReport {
    /// The human-readable table.
    pub fn to_table(&self) -> String {
        // Key generation runs a few to a few dozen times a second: a decimal keeps it readable.
        let cell = |v: Option<f64>| match v {
            Some(v) if v < 100.0 => format!("{v:.1}"),
            Some(v) => format!("{v:.0}"),
            None => "-".to_string(),
        };
        let ratio = |v: Option<f64>| {
            v.map(|v| format!("{v:.2}x"))
                .unwrap_or_else(|| "-".to_string())
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<42} {:>10} {:>10} {:>10} {:>10} {:>8} {:>9} {:>9}",
            "operation (ops/s)",
            "cmksim",
            "aws-lc",
            "softhsm2",
            "openssl",
            "/aws-lc",
            "/softhsm",
            "/openssl"
        );
        for row in &self.rows {
            let _ = writeln!(
                out,
                "{:<42} {:>10} {:>10} {:>10} {:>10} {:>8} {:>9} {:>9}",
                row.label,
                cell(row.cmksim_ops_per_s),
                cell(row.awslc_ops_per_s),
                cell(row.softhsm_ops_per_s),
                cell(row.openssl_ops_per_s),
                ratio(row.ratio_awslc),
                ratio(row.ratio_softhsm),
                ratio(row.ratio_openssl)
            );
        }
        let load = |l: &Option<String>| l.clone().unwrap_or_else(|| "unknown".to_string());
        let _ = writeln!(
            out,
            "{} ms per row and implementation, interleaved in {} rounds; load average {} before, {} after",
            self.row_duration_ms,
            self.rounds,
            load(&self.load_average_before),
            load(&self.load_average_after)
        );
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        let _ = writeln!(out, "openssl column: `openssl speed -seconds 1 rsa2048 rsa3072 ecdsap256`, mean of the rounds (RSA private op via EVP_PKEY_sign, public op, ECDSA sign)");
        let _ = writeln!(out, "aws-lc column: the same primitive on aws-lc-rs without the module (AES: unwrap only, no object created)");
        let _ = writeln!(out, "key pair generation: cmksim from a seeded stream (a simulation's keys: its own prime search, each key from new seed bytes), aws-lc and SoftHSM2 from the OS; few keys per slice, and a key's cost follows its prime gap");
        out
    }
}

const BENCH_PIN: &str = "bench-pin-1234";

/// A module in a temporary directory with one prepared key set per row, and a second module
/// on a seeded stream for key generation (a simulated world's HSM).
struct CmksimRows {
    hsm: Module,
    session: SessionHandle,
    seeded: Module,
    seeded_session: SessionHandle,
    prepared: Vec<CmksimPrepared>,
}

enum CmksimPrepared {
    Decrypt {
        mechanism: Mechanism,
        key: ObjectHandle,
        wrapped: Vec<u8>,
    },
    Encrypt {
        mechanism: Mechanism,
        key: ObjectHandle,
    },
    Sign {
        key: ObjectHandle,
    },
    Unwrap {
        kek: ObjectHandle,
        wrapped: Vec<u8>,
    },
    /// On the seeded module.
    GenerateKeyPair,
}

impl CmksimRows {
    fn prepare(dir: &std::path::Path) -> Result<CmksimRows, String> {
        let hsm = Module::open(dir, ModuleConfig::default(), RandomSource::Os)
            .map_err(|e| e.to_string())?;
        let session = login(&hsm).map_err(|e| e.to_string())?;
        let seeded = Module::open(
            dir.join("seeded"),
            ModuleConfig::default(),
            SeedTree::new(SEEDED_ROOT).source("bench/hsm"),
        )
        .map_err(|e| e.to_string())?;
        let seeded_session = login(&seeded).map_err(|e| e.to_string())?;
        let prepared = BenchOp::ALL
            .iter()
            .map(|op| {
                if *op == BenchOp::Rsa2048KeyPairGen {
                    generate_key_pair(&seeded, seeded_session)?;
                    return Ok(CmksimPrepared::GenerateKeyPair);
                }
                prepare_cmksim_op(&hsm, session, *op)
            })
            .collect::<Result<_, crate::Ckr>>()
            .map_err(|e| e.to_string())?;
        Ok(CmksimRows {
            hsm,
            session,
            seeded,
            seeded_session,
            prepared,
        })
    }

    fn run_slice(&self, index: usize, budget: Duration) -> Result<Tally, crate::Ckr> {
        let (hsm, s) = (&self.hsm, self.session);
        match &self.prepared[index] {
            CmksimPrepared::Decrypt {
                mechanism,
                key,
                wrapped,
            } => slice(budget, || {
                hsm.c_decrypt(s, mechanism, *key, wrapped).map(drop)
            }),
            CmksimPrepared::Encrypt { mechanism, key } => slice(budget, || {
                hsm.c_encrypt(s, mechanism, *key, &PAYLOAD).map(drop)
            }),
            CmksimPrepared::Sign { key } => slice(budget, || {
                hsm.c_sign(s, &Mechanism::Ecdsa, *key, &PAYLOAD).map(drop)
            }),
            CmksimPrepared::Unwrap { kek, wrapped } => slice(budget, || {
                let key = hsm.c_unwrap_key(s, &Mechanism::AesKeyWrapKwp, *kek, wrapped, &[])?;
                hsm.c_destroy_object(s, key)
            }),
            CmksimPrepared::GenerateKeyPair => slice(budget, || {
                generate_key_pair(&self.seeded, self.seeded_session)
            }),
        }
    }
}

/// The root of the seeded module's stream: fixed, so that two runs of the bench generate the
/// same keys (a key's cost follows the gap before its primes).
const SEEDED_ROOT: u64 = 11;

/// One RSA-2048 key pair generated and destroyed (nothing piles up over a slice).
fn generate_key_pair(hsm: &Module, s: SessionHandle) -> Result<(), crate::Ckr> {
    let bits = Attribute::ModulusBits(2048);
    let (public, private) =
        hsm.c_generate_key_pair(s, &Mechanism::RsaPkcsKeyPairGen, &[bits], &[])?;
    hsm.c_destroy_object(s, public)?;
    hsm.c_destroy_object(s, private)
}

fn login(hsm: &Module) -> Result<SessionHandle, crate::Ckr> {
    hsm.c_init_token(SlotId(0), BENCH_PIN, "bench")?;
    let s = hsm.c_open_session(SlotId(0), true)?;
    hsm.c_login(s, UserType::So, BENCH_PIN)?;
    hsm.c_init_pin(s, BENCH_PIN)?;
    hsm.c_logout(s)?;
    hsm.c_login(s, UserType::User, BENCH_PIN)?;
    Ok(s)
}

/// Makes the row's keys and runs its operation once (a warm-up, and a fast failure).
fn prepare_cmksim_op(
    hsm: &Module,
    s: SessionHandle,
    op: BenchOp,
) -> Result<CmksimPrepared, crate::Ckr> {
    match op {
        BenchOp::EcdsaP256Sign => {
            let ec_params = Attribute::EcParams(P256_EC_PARAMS_DER.to_vec());
            let (_, key) =
                hsm.c_generate_key_pair(s, &Mechanism::EcKeyPairGen, &[ec_params], &[])?;
            hsm.c_sign(s, &Mechanism::Ecdsa, key, &PAYLOAD)?;
            Ok(CmksimPrepared::Sign { key })
        }
        BenchOp::Aes256KwpUnwrap => {
            let kek = hsm.c_generate_key(s, &Mechanism::AesKeyGen, &[Attribute::ValueLen(32)])?;
            let dek =
                hsm.c_generate_key(s, &Mechanism::AesKeyGen, &[Attribute::Extractable(true)])?;
            let wrapped = hsm.c_wrap_key(s, &Mechanism::AesKeyWrapKwp, kek, dek)?;
            let key = hsm.c_unwrap_key(s, &Mechanism::AesKeyWrapKwp, kek, &wrapped, &[])?;
            hsm.c_destroy_object(s, key)?;
            Ok(CmksimPrepared::Unwrap { kek, wrapped })
        }
        _ => {
            let bits = Attribute::ModulusBits(op.modulus_bits());
            let (public, private) =
                hsm.c_generate_key_pair(s, &Mechanism::RsaPkcsKeyPairGen, &[bits], &[])?;
            let mechanism = if op.oaep_sha256() {
                Mechanism::rsa_oaep_sha256()
            } else {
                Mechanism::rsa_oaep_sha1()
            };
            let wrapped = hsm.c_encrypt(s, &mechanism, public, &PAYLOAD)?;
            if op == BenchOp::Rsa2048OaepSha1Encrypt {
                return Ok(CmksimPrepared::Encrypt {
                    mechanism,
                    key: public,
                });
            }
            hsm.c_decrypt(s, &mechanism, private, &wrapped)?;
            Ok(CmksimPrepared::Decrypt {
                mechanism,
                key: private,
                wrapped,
            })
        }
    }
}
