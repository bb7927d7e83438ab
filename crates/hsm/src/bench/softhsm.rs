//! The same rows on SoftHSM2, through its PKCS#11 library and the `cryptoki` crate.
//!
//! A fresh token directory and `softhsm2.conf` are created under the temporary directory and
//! `SOFTHSM2_CONF` is pointed at them before the library is initialised, so the user's own
//! SoftHSM2 tokens are never touched. Keys are made once per row; [`SoftHsm::run_slice`] then
//! measures a row for a short slice, so that the caller can interleave SoftHSM2 with the other
//! implementations.

use std::path::PathBuf;
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

use super::{slice, BenchOp, Tally, PAYLOAD};

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

/// An initialised SoftHSM2 token with one prepared key set per row, measured slice by slice.
pub(crate) struct SoftHsm {
    session: Option<Session>,
    pkcs11: Option<Pkcs11>,
    dir: PathBuf,
    /// Per row of [`BenchOp::ALL`]: its keys, or `None` when SoftHSM2 refused to set it up.
    prepared: Vec<Option<Prepared>>,
}

/// One row's key handles and input.
pub(crate) enum Prepared {
    Decrypt {
        key: ObjectHandle,
        mechanism: Mechanism<'static>,
        wrapped: Vec<u8>,
    },
    Encrypt {
        key: ObjectHandle,
        mechanism: Mechanism<'static>,
    },
    Sign {
        key: ObjectHandle,
    },
    Unwrap {
        kek: ObjectHandle,
        wrapped: Vec<u8>,
    },
    /// A new RSA-2048 key pair per call, destroyed after.
    GenerateKeyPair,
}

impl SoftHsm {
    /// Opens SoftHSM2 on a fresh token and prepares every row; `Err` is a note for the report
    /// (module absent or failing). A row SoftHSM2 refuses (2.6 only does OAEP with SHA-1) is
    /// left empty with a note of its own.
    pub(crate) fn open(notes: &mut Vec<String>) -> Result<SoftHsm, String> {
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
        let mut softhsm = SoftHsm {
            session: None,
            pkcs11: None,
            dir,
            prepared: Vec::new(),
        };
        softhsm
            .start(&path, notes)
            .map_err(|e| format!("SoftHSM2 failed: {e}"))?;
        Ok(softhsm)
    }

    fn start(
        &mut self,
        path: &PathBuf,
        notes: &mut Vec<String>,
    ) -> Result<(), cryptoki::error::Error> {
        let pkcs11 = Pkcs11::new(path)?;
        pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
        self.pkcs11 = Some(pkcs11.clone());
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
        self.prepared = BenchOp::ALL
            .iter()
            .map(|op| match prepare(&session, *op) {
                Ok(prepared) => Some(prepared),
                Err(e) => {
                    notes.push(format!("SoftHSM2 refused {}: {e}", op.label()));
                    None
                }
            })
            .collect();
        self.session = Some(session);
        Ok(())
    }

    /// Measures row `index` of [`BenchOp::ALL`] for `budget`; `None` for a refused row.
    pub(crate) fn run_slice(
        &self,
        index: usize,
        budget: Duration,
    ) -> Option<Result<Tally, cryptoki::error::Error>> {
        let session = self.session.as_ref()?;
        let prepared = self.prepared.get(index)?.as_ref()?;
        Some(run_slice(session, prepared, budget))
    }
}

impl Drop for SoftHsm {
    fn drop(&mut self) {
        drop(self.session.take());
        if let Some(pkcs11) = self.pkcs11.take() {
            let _ = pkcs11.finalize();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn oaep(sha256: bool) -> Mechanism<'static> {
    let (hash, mgf) = if sha256 {
        (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256)
    } else {
        (MechanismType::SHA1, PkcsMgfType::MGF1_SHA1)
    };
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(hash, mgf, PkcsOaepSource::empty()))
}

const UNWRAP_TEMPLATE: [Attribute; 4] = [
    Attribute::Class(ObjectClass::SECRET_KEY),
    Attribute::KeyType(KeyType::AES),
    Attribute::Sensitive(true),
    Attribute::Private(true),
];

fn prepare(session: &Session, op: BenchOp) -> Result<Prepared, cryptoki::error::Error> {
    match op {
        BenchOp::Rsa2048KeyPairGen => {
            generate_key_pair(session)?;
            Ok(Prepared::GenerateKeyPair)
        }
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
            session.sign(&Mechanism::Ecdsa, key, &PAYLOAD)?;
            Ok(Prepared::Sign { key })
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
            let key =
                session.unwrap_key(&Mechanism::AesKeyWrapPad, kek, &wrapped, &UNWRAP_TEMPLATE)?;
            session.destroy_object(key)?;
            Ok(Prepared::Unwrap { kek, wrapped })
        }
        _ => {
            let (public, private) = rsa_key_pair(session, op.modulus_bits())?;
            let mechanism = oaep(op.oaep_sha256());
            let wrapped = session.encrypt(&mechanism, public, &PAYLOAD)?;
            if op == BenchOp::Rsa2048OaepSha1Encrypt {
                return Ok(Prepared::Encrypt {
                    key: public,
                    mechanism,
                });
            }
            session.decrypt(&mechanism, private, &wrapped)?;
            Ok(Prepared::Decrypt {
                key: private,
                mechanism,
                wrapped,
            })
        }
    }
}

fn run_slice(
    session: &Session,
    prepared: &Prepared,
    budget: Duration,
) -> Result<Tally, cryptoki::error::Error> {
    match prepared {
        Prepared::Decrypt {
            key,
            mechanism,
            wrapped,
        } => slice(budget, || {
            session.decrypt(mechanism, *key, wrapped).map(drop)
        }),
        Prepared::Encrypt { key, mechanism } => slice(budget, || {
            session.encrypt(mechanism, *key, &PAYLOAD).map(drop)
        }),
        Prepared::Sign { key } => slice(budget, || {
            session.sign(&Mechanism::Ecdsa, *key, &PAYLOAD).map(drop)
        }),
        Prepared::Unwrap { kek, wrapped } => slice(budget, || {
            let key =
                session.unwrap_key(&Mechanism::AesKeyWrapPad, *kek, wrapped, &UNWRAP_TEMPLATE)?;
            session.destroy_object(key)
        }),
        Prepared::GenerateKeyPair => slice(budget, || generate_key_pair(session)),
    }
}

/// One RSA-2048 key pair generated and destroyed.
fn generate_key_pair(session: &Session) -> Result<(), cryptoki::error::Error> {
    let (public, private) = rsa_key_pair(session, 2048)?;
    session.destroy_object(public)?;
    session.destroy_object(private)
}

/// A new RSA key pair for encryption: its public and private handles.
fn rsa_key_pair(
    session: &Session,
    modulus_bits: u64,
) -> Result<(ObjectHandle, ObjectHandle), cryptoki::error::Error> {
    let public = [
        Attribute::ModulusBits(modulus_bits.into()),
        Attribute::Encrypt(true),
    ];
    let private = [
        Attribute::Decrypt(true),
        Attribute::Sensitive(true),
        Attribute::Private(true),
    ];
    session.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
}
