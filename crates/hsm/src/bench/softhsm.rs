//! The same rows on SoftHSM2, through its PKCS#11 library and the `cryptoki` crate.
//!
//! A fresh token directory and `softhsm2.conf` are created under the temporary directory and
//! `SOFTHSM2_CONF` is pointed at them before the library is initialised, so the user's own
//! SoftHSM2 tokens are never touched.

use std::path::PathBuf;
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

use super::{measure, BenchOp};

/// Where SoftHSM2's module is looked for (after `$SOFTHSM2_MODULE`).
const MODULE_PATHS: [&str; 2] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
];

const PIN: &str = "bench-pin-1234";

fn module_path() -> Option<PathBuf> {
    let from_env = std::env::var_os("SOFTHSM2_MODULE").map(PathBuf::from);
    from_env
        .into_iter()
        .chain(MODULE_PATHS.iter().map(PathBuf::from))
        .find(|p| p.exists())
}

/// Measures every row; `Err` is a note for the report (module absent or failing). A row
/// SoftHSM2 refuses (2.6 only does OAEP with SHA-1) is left empty with a note of its own.
pub(crate) fn measure_all(
    budget: Duration,
    notes: &mut Vec<String>,
) -> Result<Vec<Option<f64>>, String> {
    let path = module_path().ok_or_else(|| {
        format!("SoftHSM2 not found (set SOFTHSM2_MODULE, or install softhsm2: looked in {MODULE_PATHS:?}): softhsm2 column left empty")
    })?;
    let dir = std::env::temp_dir().join(format!("cmksim-softhsm-bench-{}", std::process::id()));
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).map_err(|e| format!("SoftHSM2 temp dir: {e}"))?;
    let conf = dir.join("softhsm2.conf");
    let conf_text = format!(
        "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
        tokens.display()
    );
    std::fs::write(&conf, conf_text).map_err(|e| format!("SoftHSM2 conf: {e}"))?;
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let result = run(&path, budget, notes).map_err(|e| format!("SoftHSM2 failed: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(
    path: &PathBuf,
    budget: Duration,
    notes: &mut Vec<String>,
) -> Result<Vec<Option<f64>>, cryptoki::error::Error> {
    let pkcs11 = Pkcs11::new(path)?;
    pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    let slot = pkcs11
        .get_slots_with_token()?
        .first()
        .copied()
        .ok_or(cryptoki::error::Error::NullFunctionPointer)?;
    let pin = AuthPin::from(PIN);
    pkcs11.init_token(slot, &pin, "bench")?;
    let session = pkcs11.open_rw_session(slot)?;
    session.login(UserType::So, Some(&pin))?;
    session.init_pin(&pin)?;
    session.logout()?;
    session.login(UserType::User, Some(&pin))?;
    let figures = BenchOp::ALL
        .iter()
        .map(|op| match measure_op(&session, *op, budget) {
            Ok(ops_per_s) => Some(ops_per_s),
            Err(e) => {
                notes.push(format!("SoftHSM2 refused {}: {e}", op.label()));
                None
            }
        })
        .collect();
    drop(session);
    pkcs11.finalize()?;
    Ok(figures)
}

fn oaep(sha256: bool) -> Mechanism<'static> {
    let (hash, mgf) = if sha256 {
        (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256)
    } else {
        (MechanismType::SHA1, PkcsMgfType::MGF1_SHA1)
    };
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(hash, mgf, PkcsOaepSource::empty()))
}

fn measure_op(
    session: &Session,
    op: BenchOp,
    budget: Duration,
) -> Result<f64, cryptoki::error::Error> {
    let payload = [0x5Au8; 32];
    match op {
        BenchOp::EcdsaP256Sign => {
            let public = [
                Attribute::EcParams(crate::P256_EC_PARAMS_DER.to_vec()),
                Attribute::Verify(true),
            ];
            let private = [
                Attribute::Sign(true),
                Attribute::Sensitive(true),
                Attribute::Private(true),
            ];
            let (_, key) =
                session.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)?;
            measure(budget, || {
                session.sign(&Mechanism::Ecdsa, key, &payload).map(drop)
            })
        }
        BenchOp::Aes256KwpUnwrap => {
            let kek_t = [
                Attribute::ValueLen(32.into()),
                Attribute::Wrap(true),
                Attribute::Unwrap(true),
            ];
            let kek = session.generate_key(&Mechanism::AesKeyGen, &kek_t)?;
            let dek_t = [Attribute::ValueLen(32.into()), Attribute::Extractable(true)];
            let dek = session.generate_key(&Mechanism::AesKeyGen, &dek_t)?;
            let wrapped = session.wrap_key(&Mechanism::AesKeyWrapPad, kek, dek)?;
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Sensitive(true),
                Attribute::Private(true),
            ];
            measure(budget, || {
                let key =
                    session.unwrap_key(&Mechanism::AesKeyWrapPad, kek, &wrapped, &template)?;
                session.destroy_object(key)
            })
        }
        _ => {
            let public = [
                Attribute::ModulusBits(op.modulus_bits().into()),
                Attribute::Encrypt(true),
            ];
            let private = [
                Attribute::Decrypt(true),
                Attribute::Sensitive(true),
                Attribute::Private(true),
            ];
            let (public, private) =
                session.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)?;
            let mechanism = oaep(op.oaep_sha256());
            if op == BenchOp::Rsa2048OaepSha1Encrypt {
                return measure(budget, || {
                    session.encrypt(&mechanism, public, &payload).map(drop)
                });
            }
            let wrapped = session.encrypt(&mechanism, public, &payload)?;
            measure(budget, || {
                session.decrypt(&mechanism, private, &wrapped).map(drop)
            })
        }
    }
}
