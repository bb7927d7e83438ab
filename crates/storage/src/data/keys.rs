//! The key hierarchy below the customer's key: AEK, DEK, and the two service keys.
//!
//! ```text
//! KEK (customer key, in Key Vault / HSM; never seen here)
//!  └─ wraps ─ AEK (random 256 bits per storage account; on disk only wrapped)
//!              ├─ HKDF-SHA256 ─ DEK (per block: salt = block id ‖ table secret, info = "cmksim dek v1" ‖ ws ‖ table)
//!              └─ HKDF-SHA256 ─ hot wrapping key (current profile: wraps the DEK in the hot entry)
//! MMK (Microsoft-managed key, a service key file)
//!  ├─ wraps the AEK (AES-256-GCM) until CMK is configured
//!  ├─ HKDF-SHA256 ─ DEK of blocks written under the MMK (pre-CMK data, the buffer)
//!  └─ HKDF-SHA256 ─ hot wrapping key (2020 profile: wraps the DEK in the hot entry, see `hot`)
//! Table secret (per table and generation, `table-keys.json`, see `shred`)
//!  └─ mixed into the salt of the table's DEKs and hot wrapping keys: a purge destroys it
//! Infrastructure key (service key file)
//!  └─ HKDF-SHA256 ─ per-block key of the second, ChaCha20-Poly1305 layer (double encryption)
//! ```
//!
//! The MMK and the infrastructure key emulate Microsoft's own key store: they are 32 random bytes
//! each in `service-keys/` under the data directory, created on first open. They are the only key
//! material on disk in plaintext, by design (SPEC §5: data under the MMK is not protected by the
//! customer). The AEK is a distinct type, [`Aek`]: it zeroizes on drop, never prints its bytes and
//! is never serialised; only its fingerprint (an HMAC of a fixed label) is stored, so that a wrong
//! AEK is refused before it can write blocks nobody can read.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;
use ring::{aead, hkdf, hmac};
use zeroize::Zeroizing;

use super::error::DataError;

/// Length of every symmetric key in the hierarchy, in bytes (256 bits).
pub const KEY_LEN_BYTES: usize = 32;
/// Length of an AEAD nonce (AES-256-GCM and ChaCha20-Poly1305), in bytes.
pub const NONCE_LEN_BYTES: usize = 12;

const DEK_INFO: &[u8] = b"cmksim dek v1";
const MMK_DEK_INFO: &[u8] = b"cmksim mmk dek v1";
const INFRA_INFO: &[u8] = b"cmksim infra v1";
const HOT_WRAP_INFO: &[u8] = b"cmksim hot dek v1";
const AEK_WRAP_AAD: &[u8] = b"cmksim aek wrap v1";
const FINGERPRINT_LABEL: &[u8] = b"cmksim aek fingerprint v1";

/// An unwrapped account encryption key. Lives in memory only.
pub struct Aek {
    bytes: Zeroizing<[u8; KEY_LEN_BYTES]>,
}

impl Aek {
    /// An AEK from its raw bytes, e.g. just unwrapped through Key Vault (must be 32 bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Aek, DataError> {
        let array: [u8; KEY_LEN_BYTES] =
            bytes.try_into().map_err(|_| DataError::InvalidKeyLength {
                what: "AEK",
                got_bytes: bytes.len(),
                want_bytes: KEY_LEN_BYTES,
            })?;
        Ok(Aek {
            bytes: Zeroizing::new(array),
        })
    }

    /// A fresh random AEK.
    pub(crate) fn generate(rng: &mut dyn RngCore) -> Aek {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN_BYTES]);
        rng.fill_bytes(bytes.as_mut());
        Aek { bytes }
    }

    /// The raw bytes, for wrapping through Key Vault. Never log or persist them.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN_BYTES] {
        &self.bytes
    }

    /// A one-way fingerprint (HMAC-SHA256 of a fixed label, 16 bytes): safe to store and print.
    pub fn fingerprint(&self) -> [u8; 16] {
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, self.bytes.as_ref()),
            FINGERPRINT_LABEL,
        );
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag.as_ref()[..16]);
        out
    }
}

impl fmt::Debug for Aek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Aek(fingerprint {})", hex::encode(self.fingerprint()))
    }
}

/// A 256-bit key that zeroizes on drop (DEKs, layer keys, service keys).
pub(crate) struct SecretKey(Zeroizing<[u8; KEY_LEN_BYTES]>);

impl SecretKey {
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN_BYTES] {
        &self.0
    }

    /// A key from 32 bytes (e.g. a DEK just unwrapped from a hot entry); `None` otherwise.
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<SecretKey> {
        let array: [u8; KEY_LEN_BYTES] = bytes.try_into().ok()?;
        Some(SecretKey(Zeroizing::new(array)))
    }
}

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        KEY_LEN_BYTES
    }
}

/// HKDF-SHA256(ikm, salt, info parts joined by NUL) → 32 bytes.
fn hkdf32(ikm: &[u8], salt: &[u8], info: &[&[u8]]) -> SecretKey {
    let mut joined: Vec<&[u8]> = Vec::with_capacity(info.len() * 2);
    for (i, part) in info.iter().enumerate() {
        if i > 0 {
            joined.push(b"\0");
        }
        joined.push(part);
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let okm = prk
        .expand(&joined, Len32)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    let mut out = Zeroizing::new([0u8; KEY_LEN_BYTES]);
    okm.fill(out.as_mut())
        .expect("the output buffer has the requested length");
    SecretKey(out)
}

/// The HKDF salt of a block's DEK: its id, followed by its table's secret when it has one (see
/// [`super::shred`]; blocks of a table written before table keys existed have none).
fn dek_salt(block_id: u64, table_secret: Option<&[u8; KEY_LEN_BYTES]>) -> Zeroizing<Vec<u8>> {
    let mut salt = Zeroizing::new(Vec::with_capacity(8 + KEY_LEN_BYTES));
    salt.extend_from_slice(&block_id.to_be_bytes());
    if let Some(secret) = table_secret {
        salt.extend_from_slice(secret);
    }
    salt
}

/// The DEK of a block under the AEK: salt = block id ‖ table secret, info = "cmksim dek v1" ‖
/// workspace ‖ table. Without the table secret (destroyed by a purge) the AEK alone does not
/// give it.
pub(crate) fn dek_from_aek(
    aek: &Aek,
    block_id: u64,
    workspace: &str,
    table: &str,
    table_secret: Option<&[u8; KEY_LEN_BYTES]>,
) -> SecretKey {
    hkdf32(
        aek.expose_bytes(),
        &dek_salt(block_id, table_secret),
        &[DEK_INFO, workspace.as_bytes(), table.as_bytes()],
    )
}

/// The DEK of a block under the MMK (salt as [`dek_from_aek`]); the account is part of the info
/// because the MMK is shared.
pub(crate) fn dek_from_mmk(
    mmk: &SecretKey,
    block_id: u64,
    account: &str,
    workspace: &str,
    table: &str,
    table_secret: Option<&[u8; KEY_LEN_BYTES]>,
) -> SecretKey {
    hkdf32(
        mmk.bytes(),
        &dek_salt(block_id, table_secret),
        &[
            MMK_DEK_INFO,
            account.as_bytes(),
            workspace.as_bytes(),
            table.as_bytes(),
        ],
    )
}

/// The key of the second (ChaCha20-Poly1305) layer of a block, from the infrastructure key.
pub(crate) fn infra_layer_key(infra: &SecretKey, block_id: u64, account: &str) -> SecretKey {
    hkdf32(
        infra.bytes(),
        &block_id.to_be_bytes(),
        &[INFRA_INFO, account.as_bytes()],
    )
}

/// The key that wraps a block's DEK in its hot entry ([`super::hot`]): HKDF-SHA256 of `ikm` (the
/// MMK in the 2020 profile, the AEK in the current one), salt as the DEK's (block id ‖ table
/// secret), info = "cmksim hot dek v1" ‖ account ‖ workspace ‖ table.
pub(crate) fn hot_wrap_key(
    ikm: &[u8; KEY_LEN_BYTES],
    block_id: u64,
    account: &str,
    workspace: &str,
    table: &str,
    table_secret: Option<&[u8; KEY_LEN_BYTES]>,
) -> SecretKey {
    hkdf32(
        ikm,
        &dek_salt(block_id, table_secret),
        &[
            HOT_WRAP_INFO,
            account.as_bytes(),
            workspace.as_bytes(),
            table.as_bytes(),
        ],
    )
}

/// Seals `plaintext` in place (tag appended) with `alg` under `key`.
pub(crate) fn seal(
    alg: &'static aead::Algorithm,
    key: &SecretKey,
    nonce: [u8; NONCE_LEN_BYTES],
    aad: &[u8],
    in_out: &mut Vec<u8>,
) {
    let key = aead::LessSafeKey::new(
        aead::UnboundKey::new(alg, key.bytes()).expect("32-byte key for a 256-bit AEAD"),
    );
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::from(aad),
        in_out,
    )
    .expect("AEAD sealing of an in-memory buffer cannot fail below the size limit");
}

/// Opens `in_out` in place; on success truncates it to the plaintext. `None` if not authentic.
pub(crate) fn open(
    alg: &'static aead::Algorithm,
    key: &SecretKey,
    nonce: [u8; NONCE_LEN_BYTES],
    aad: &[u8],
    in_out: &mut Vec<u8>,
) -> Option<()> {
    let key = aead::LessSafeKey::new(
        aead::UnboundKey::new(alg, key.bytes()).expect("32-byte key for a 256-bit AEAD"),
    );
    let plain_len = key
        .open_in_place(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad),
            in_out,
        )
        .ok()?
        .len();
    in_out.truncate(plain_len);
    Some(())
}

/// The AEK wrapped under the MMK: AES-256-GCM, AAD = label ‖ account, stored as nonce ‖ ct ‖ tag.
pub(crate) fn wrap_with_mmk(
    mmk: &SecretKey,
    account: &str,
    aek: &Aek,
    rng: &mut dyn RngCore,
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN_BYTES];
    rng.fill_bytes(&mut nonce);
    let mut buf = aek.expose_bytes().to_vec();
    seal(&aead::AES_256_GCM, mmk, nonce, &wrap_aad(account), &mut buf);
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    // The temporary copy of the plaintext AEK was sealed in place: nothing to zeroize in `buf`.
    out
}

/// Unwraps an AEK wrapped by [`wrap_with_mmk`]. `None` if the bytes are not authentic.
pub(crate) fn unwrap_with_mmk(mmk: &SecretKey, account: &str, wrapped: &[u8]) -> Option<Aek> {
    if wrapped.len() != NONCE_LEN_BYTES + KEY_LEN_BYTES + aead::AES_256_GCM.tag_len() {
        return None;
    }
    let mut nonce = [0u8; NONCE_LEN_BYTES];
    nonce.copy_from_slice(&wrapped[..NONCE_LEN_BYTES]);
    let mut buf = Zeroizing::new(wrapped[NONCE_LEN_BYTES..].to_vec());
    open(&aead::AES_256_GCM, mmk, nonce, &wrap_aad(account), &mut buf)?;
    Aek::from_bytes(&buf).ok()
}

fn wrap_aad(account: &str) -> Vec<u8> {
    let mut aad = AEK_WRAP_AAD.to_vec();
    aad.push(0);
    aad.extend_from_slice(account.as_bytes());
    aad
}

/// The two service keys, loaded from (or created in) `<data dir>/service-keys/`.
pub(crate) struct ServiceKeys {
    pub(crate) mmk: SecretKey,
    pub(crate) infra: SecretKey,
}

impl ServiceKeys {
    /// Loads `mmk.key` and `infrastructure.key`, creating each (32 random bytes) if absent.
    pub(crate) fn load_or_create(
        dir: &Path,
        rng: &mut dyn RngCore,
    ) -> Result<ServiceKeys, DataError> {
        fs::create_dir_all(dir).map_err(|e| DataError::ServiceKey {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(ServiceKeys {
            mmk: load_or_create_key(&dir.join("mmk.key"), rng)?,
            infra: load_or_create_key(&dir.join("infrastructure.key"), rng)?,
        })
    }
}

fn load_or_create_key(path: &Path, rng: &mut dyn RngCore) -> Result<SecretKey, DataError> {
    let failed = |reason: String| DataError::ServiceKey {
        path: path.to_path_buf(),
        reason,
    };
    if path.exists() {
        let bytes = Zeroizing::new(fs::read(path).map_err(|e| failed(e.to_string()))?);
        let array: [u8; KEY_LEN_BYTES] = bytes.as_slice().try_into().map_err(|_| {
            failed(format!(
                "expected {KEY_LEN_BYTES} bytes, found {}",
                bytes.len()
            ))
        })?;
        return Ok(SecretKey(Zeroizing::new(array)));
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN_BYTES]);
    rng.fill_bytes(key.as_mut());
    // Write to a temporary name, sync, then rename: a crash never leaves a short key file.
    let tmp: PathBuf = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(key.as_ref())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| failed(e.to_string()))?;
    Ok(SecretKey(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmksim_sim::RandomSource;

    #[test]
    fn mmk_wrap_round_trip_is_bound_to_the_account() {
        let mut rng = RandomSource::from_seed([1; 32]);
        let mmk = SecretKey(Zeroizing::new([7; 32]));
        let aek = Aek::generate(&mut rng);
        let wrapped = wrap_with_mmk(&mmk, "cluster:c1", &aek, &mut rng);
        let back = unwrap_with_mmk(&mmk, "cluster:c1", &wrapped).unwrap();
        assert_eq!(back.expose_bytes(), aek.expose_bytes());
        assert!(unwrap_with_mmk(&mmk, "cluster:c2", &wrapped).is_none());
        assert!(!format!("{aek:?}").contains(&hex::encode(aek.expose_bytes())));
    }

    #[test]
    fn deks_differ_per_block_and_table() {
        let aek = Aek::from_bytes(&[9; 32]).unwrap();
        let a = dek_from_aek(&aek, 1, "ws", "T", None);
        assert_ne!(a.bytes(), dek_from_aek(&aek, 2, "ws", "T", None).bytes());
        assert_ne!(a.bytes(), dek_from_aek(&aek, 1, "ws", "U", None).bytes());
        // The table secret changes the DEK: without it, the AEK alone does not give it.
        let shredded = dek_from_aek(&aek, 1, "ws", "T", Some(&[5; 32]));
        assert_ne!(a.bytes(), shredded.bytes());
        assert_ne!(
            shredded.bytes(),
            dek_from_aek(&aek, 1, "ws", "T", Some(&[6; 32])).bytes()
        );
        assert!(Aek::from_bytes(&[0; 31]).is_err());
    }
}
