//! `cmksim bench hsm`: throughput of the emulated HSM beside SoftHSM2 and `openssl speed`.
//!
//! Every row runs the same operation three ways: through [`crate::Module`]'s API (so the lock,
//! session and attribute checks are counted), through SoftHSM2's PKCS#11 library with the
//! `cryptoki` crate (when it is installed), and as `openssl speed`'s raw figure for the same
//! primitive (when `openssl` is on the PATH). The goal figures: at least SoftHSM2 on every row,
//! and RSA private operations at least 0.9x OpenSSL.
//!
//! This is a measuring tool, not domain logic: it reads the real clock (`Instant`) and the OS
//! random source, and it points SoftHSM2 at a temporary configuration through the
//! `SOFTHSM2_CONF` environment variable. Each row is bounded by `row_duration` and by
//! [`ROW_ITERATIONS_MAX`].

mod openssl;
mod softhsm;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use cmksim_sim::RandomSource;
use serde::Serialize;

use crate::{
    Attribute, Mechanism, Module, ModuleConfig, SessionHandle, SlotId, UserType, P256_EC_PARAMS_DER,
};

/// Most iterations of one row, whatever the time budget.
pub const ROW_ITERATIONS_MAX: u64 = 1_000_000;

/// What to measure and for how long.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Time spent measuring each row on each implementation.
    pub row_duration: Duration,
    /// Also run `openssl speed` (about 7 s).
    pub openssl: bool,
    /// Also measure SoftHSM2 (when its module is found).
    pub softhsm: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            row_duration: Duration::from_secs(1),
            openssl: true,
            softhsm: true,
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
}

impl BenchOp {
    /// Every row, in table order.
    pub const ALL: [BenchOp; 7] = [
        BenchOp::Rsa2048OaepSha1Decrypt,
        BenchOp::Rsa3072OaepSha1Decrypt,
        BenchOp::Rsa2048OaepSha256Decrypt,
        BenchOp::Rsa3072OaepSha256Decrypt,
        BenchOp::Rsa2048OaepSha1Encrypt,
        BenchOp::EcdsaP256Sign,
        BenchOp::Aes256KwpUnwrap,
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
            BenchOp::Rsa2048OaepSha1Encrypt | BenchOp::EcdsaP256Sign | BenchOp::Aes256KwpUnwrap
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
    /// SoftHSM2 through PKCS#11, operations per second.
    pub softhsm_ops_per_s: Option<f64>,
    /// `openssl speed`'s figure for the primitive, operations per second.
    pub openssl_ops_per_s: Option<f64>,
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
    /// The rows, in [`BenchOp::ALL`] order.
    pub rows: Vec<BenchRow>,
    /// What was missing or failed ("SoftHSM2 not found at ...").
    pub notes: Vec<String>,
}

/// Runs `op` repeatedly for `budget` (at most [`ROW_ITERATIONS_MAX`] times) and returns
/// operations per second, or the first error.
pub(crate) fn measure<E>(
    budget: Duration,
    mut op: impl FnMut() -> Result<(), E>,
) -> Result<f64, E> {
    op()?; // warm-up, and fail fast
    let start = Instant::now();
    let mut iterations = 0u64;
    while iterations < ROW_ITERATIONS_MAX {
        op()?;
        iterations += 1;
        if iterations.is_multiple_of(8) && start.elapsed() >= budget {
            break;
        }
    }
    Ok(iterations as f64 / start.elapsed().as_secs_f64())
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Runs every row and returns the report (print it with [`BenchReport::to_table`]).
pub fn run(options: &BenchOptions) -> BenchReport {
    let mut notes = Vec::new();
    let cmksim = match measure_cmksim(options.row_duration) {
        Ok(figures) => figures,
        Err(e) => {
            notes.push(format!("cmksim-hsm failed: {e}"));
            vec![None; BenchOp::ALL.len()]
        }
    };
    let softhsm = if options.softhsm {
        match softhsm::measure_all(options.row_duration, &mut notes) {
            Ok(figures) => figures,
            Err(note) => {
                notes.push(note);
                vec![None; BenchOp::ALL.len()]
            }
        }
    } else {
        vec![None; BenchOp::ALL.len()]
    };
    let openssl = if options.openssl {
        match openssl::speed() {
            Ok(speed) => BenchOp::ALL.iter().map(|op| speed.for_op(*op)).collect(),
            Err(note) => {
                notes.push(note);
                vec![None; BenchOp::ALL.len()]
            }
        }
    } else {
        vec![None; BenchOp::ALL.len()]
    };
    let rows = BenchOp::ALL
        .iter()
        .enumerate()
        .map(|(i, op)| BenchRow {
            op: *op,
            label: op.label().to_string(),
            cmksim_ops_per_s: cmksim[i],
            softhsm_ops_per_s: softhsm[i],
            openssl_ops_per_s: openssl[i],
            ratio_softhsm: ratio(cmksim[i], softhsm[i]),
            ratio_openssl: ratio(cmksim[i], openssl[i]),
        })
        .collect();
    BenchReport {
        row_duration_ms: options.row_duration.as_millis() as u64,
        rows,
        notes,
    }
}

impl BenchReport {
    /// The human-readable table.
    pub fn to_table(&self) -> String {
        let cell = |v: Option<f64>| {
            v.map(|v| format!("{v:.0}"))
                .unwrap_or_else(|| "-".to_string())
        };
        let ratio = |v: Option<f64>| {
            v.map(|v| format!("{v:.2}x"))
                .unwrap_or_else(|| "-".to_string())
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<42} {:>12} {:>12} {:>12} {:>10} {:>10}",
            "operation (ops/s)", "cmksim", "softhsm2", "openssl", "/softhsm", "/openssl"
        );
        for row in &self.rows {
            let _ = writeln!(
                out,
                "{:<42} {:>12} {:>12} {:>12} {:>10} {:>10}",
                row.label,
                cell(row.cmksim_ops_per_s),
                cell(row.softhsm_ops_per_s),
                cell(row.openssl_ops_per_s),
                ratio(row.ratio_softhsm),
                ratio(row.ratio_openssl)
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        let _ = writeln!(out, "openssl column: `openssl speed -seconds 1 rsa2048 rsa3072 ecdsap256` (raw RSA private/public op, ECDSA sign)");
        out
    }
}

const BENCH_PIN: &str = "bench-pin-1234";

/// Measures every row on a fresh module in a temporary directory.
fn measure_cmksim(budget: Duration) -> Result<Vec<Option<f64>>, String> {
    let dir = std::env::temp_dir().join(format!("cmksim-hsm-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = (|| {
        let hsm = Module::open(&dir, ModuleConfig::default(), RandomSource::Os)
            .map_err(|e| e.to_string())?;
        let s = login(&hsm).map_err(|e| e.to_string())?;
        BenchOp::ALL
            .iter()
            .map(|op| {
                measure_cmksim_op(&hsm, s, *op, budget)
                    .map(Some)
                    .map_err(|e| e.to_string())
            })
            .collect()
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
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

fn measure_cmksim_op(
    hsm: &Module,
    s: SessionHandle,
    op: BenchOp,
    budget: Duration,
) -> Result<f64, crate::Ckr> {
    let payload = [0x5Au8; 32];
    match op {
        BenchOp::EcdsaP256Sign => {
            let ec_params = Attribute::EcParams(P256_EC_PARAMS_DER.to_vec());
            let (_, private) =
                hsm.c_generate_key_pair(s, &Mechanism::EcKeyPairGen, &[ec_params], &[])?;
            measure(budget, || {
                hsm.c_sign(s, &Mechanism::Ecdsa, private, &payload)
                    .map(drop)
            })
        }
        BenchOp::Aes256KwpUnwrap => {
            let kek = hsm.c_generate_key(s, &Mechanism::AesKeyGen, &[Attribute::ValueLen(32)])?;
            let dek =
                hsm.c_generate_key(s, &Mechanism::AesKeyGen, &[Attribute::Extractable(true)])?;
            let wrapped = hsm.c_wrap_key(s, &Mechanism::AesKeyWrapKwp, kek, dek)?;
            measure(budget, || {
                let key = hsm.c_unwrap_key(s, &Mechanism::AesKeyWrapKwp, kek, &wrapped, &[])?;
                hsm.c_destroy_object(s, key)
            })
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
            if op == BenchOp::Rsa2048OaepSha1Encrypt {
                return measure(budget, || {
                    hsm.c_encrypt(s, &mechanism, public, &payload).map(drop)
                });
            }
            let wrapped = hsm.c_encrypt(s, &mechanism, public, &payload)?;
            measure(budget, || {
                hsm.c_decrypt(s, &mechanism, private, &wrapped).map(drop)
            })
        }
    }
}
