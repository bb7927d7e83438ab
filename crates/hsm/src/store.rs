//! Persistence: sled for token state, and the module's master key that seals every secret.
//!
//! Layout of the data directory given to [`crate::Module::open`]:
//! - `master.key`: 32 random bytes, the device's internal key-encryption key. A real HSM keeps
//!   this in tamper-responsive hardware; here it is a file (mode 0600) so that the emulation can
//!   be restarted. Tamper overwrites it with a new key, which crypto-shreds every sealed secret,
//!   including copies sled's log-structured storage may still hold in old segments.
//! - `db/`: a sled database, keys `meta/*`, `token/{slot}` (JSON), `obj/{handle}` (JSON). The
//!   module owns its own database (rather than a tree in a shared one) so that the directory is
//!   the device: copy it and you have cloned the HSM, delete it and the device is gone.
//!
//! Secrets are sealed with AES-256-GCM under the master key. The nonce is the object handle
//! (zero-padded to 12 bytes) and the AAD names the handle: handles are never reused and a
//! secret is sealed exactly once per handle, so the nonce is unique per master key even when
//! the random source is seeded, and a sealed secret moved to another handle fails to open.
//!
//! Every write is followed by a flush before the call returns (the background flusher is off:
//! in simulation it would run on real time).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use serde::{de::DeserializeOwned, Serialize};
use zeroize::Zeroizing;

use crate::error::{Ckr, OpenError};
use crate::object::ObjectRecord;
use crate::token::TokenRecord;
use crate::types::ObjectHandle;

const MASTER_KEY_FILE: &str = "master.key";
const DB_DIR: &str = "db";
const MASTER_KEY_LEN_BYTES: usize = 32;
const FORMAT_KEY: &[u8] = b"meta/format";
const FORMAT_VALUE: &[u8] = b"cmksim-hsm/v1";
const HANDLE_RESERVED_KEY: &[u8] = b"meta/handle_reserved";
const TOKEN_PREFIX: &[u8] = b"token/";
const OBJECT_PREFIX: &[u8] = b"obj/";
const SEAL_AAD_PREFIX: &[u8] = b"cmksim-hsm/object-secret/v1/";

/// The device's persistent half.
pub(crate) struct Store {
    db: sled::Db,
    master: LessSafeKey,
    master_key_path: PathBuf,
}

impl Store {
    /// Opens (or creates) the store in `dir`; a new master key is drawn from `rng` on first open.
    pub(crate) fn open(dir: &Path, rng: &mut dyn RngCore) -> Result<Store, OpenError> {
        fs::create_dir_all(dir)?;
        let master_key_path = dir.join(MASTER_KEY_FILE);
        let master_bytes = if master_key_path.exists() {
            let bytes = Zeroizing::new(fs::read(&master_key_path)?);
            if bytes.len() != MASTER_KEY_LEN_BYTES {
                return Err(OpenError::Corrupt(format!(
                    "{MASTER_KEY_FILE} is not {MASTER_KEY_LEN_BYTES} bytes"
                )));
            }
            bytes
        } else {
            let mut bytes = Zeroizing::new(vec![0u8; MASTER_KEY_LEN_BYTES]);
            rng.fill_bytes(&mut bytes);
            write_master_key(&master_key_path, &bytes)?;
            bytes
        };
        let db = cmksim_sim::durable::open(&dir.join(DB_DIR))?;
        match db.get(FORMAT_KEY)? {
            Some(format) if format.as_ref() != FORMAT_VALUE => {
                return Err(OpenError::Corrupt("unknown store format".to_string()));
            }
            Some(_) => {}
            None => {
                db.insert(FORMAT_KEY, FORMAT_VALUE)?;
                cmksim_sim::durable::flush(&db)?;
            }
        }
        Ok(Store {
            db,
            master: master_key(&master_bytes),
            master_key_path,
        })
    }

    /// Every stored token, by slot number.
    pub(crate) fn load_tokens(&self) -> Result<Vec<(u64, TokenRecord)>, OpenError> {
        self.load_prefix(TOKEN_PREFIX)
    }

    /// Every stored token object.
    pub(crate) fn load_objects(&self) -> Result<Vec<(u64, ObjectRecord)>, OpenError> {
        self.load_prefix(OBJECT_PREFIX)
    }

    fn load_prefix<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<(u64, T)>, OpenError> {
        let mut out = Vec::new();
        for entry in self.db.scan_prefix(prefix) {
            let (key, value) = entry?;
            let id_bytes: [u8; 8] = key[prefix.len()..]
                .try_into()
                .map_err(|_| OpenError::Corrupt("bad key".to_string()))?;
            let record =
                serde_json::from_slice(&value).map_err(|e| OpenError::Corrupt(e.to_string()))?;
            out.push((u64::from_be_bytes(id_bytes), record));
        }
        Ok(out)
    }

    /// The first handle not yet reserved (handles below it may have been handed out).
    pub(crate) fn handle_reserved(&self) -> Result<u64, OpenError> {
        Ok(match self.db.get(HANDLE_RESERVED_KEY)? {
            Some(bytes) => u64::from_be_bytes(
                bytes
                    .as_ref()
                    .try_into()
                    .map_err(|_| OpenError::Corrupt("handle counter".to_string()))?,
            ),
            None => 1,
        })
    }

    /// Records that handles below `reserved` may be in use, durably.
    pub(crate) fn set_handle_reserved(&self, reserved: u64) -> Result<(), Ckr> {
        self.db
            .insert(HANDLE_RESERVED_KEY, &reserved.to_be_bytes())
            .map_err(device)?;
        self.flush()
    }

    /// Writes a token record (the caller flushes).
    pub(crate) fn put_token(&self, slot: u64, record: &TokenRecord) -> Result<(), Ckr> {
        self.put(TOKEN_PREFIX, slot, record)
    }

    /// Writes a token object (the caller flushes).
    pub(crate) fn put_object(&self, record: &ObjectRecord) -> Result<(), Ckr> {
        self.put(OBJECT_PREFIX, record.handle.0, record)
    }

    /// Removes a token object (the caller flushes).
    pub(crate) fn remove_object(&self, handle: ObjectHandle) -> Result<(), Ckr> {
        self.db
            .remove(key(OBJECT_PREFIX, handle.0))
            .map_err(device)?;
        Ok(())
    }

    fn put<T: Serialize>(&self, prefix: &[u8], id: u64, value: &T) -> Result<(), Ckr> {
        let bytes = serde_json::to_vec(value).map_err(|_| Ckr::DeviceError)?;
        self.db.insert(key(prefix, id), bytes).map_err(device)?;
        Ok(())
    }

    /// Makes every write so far durable.
    pub(crate) fn flush(&self) -> Result<(), Ckr> {
        cmksim_sim::durable::flush(&self.db).map_err(device)
    }

    /// Seals a secret for `handle`.
    pub(crate) fn seal(&self, handle: ObjectHandle, secret: &[u8]) -> Result<Vec<u8>, Ckr> {
        let mut sealed = secret.to_vec();
        self.master
            .seal_in_place_append_tag(nonce(handle), Aad::from(aad(handle)), &mut sealed)
            .map_err(|_| Ckr::DeviceError)?;
        Ok(sealed)
    }

    /// Opens a secret sealed for `handle`. Fails (`CKR_DEVICE_ERROR`) after tamper: the master
    /// key that sealed it is gone.
    pub(crate) fn unseal(
        &self,
        handle: ObjectHandle,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Ckr> {
        let mut buffer = Zeroizing::new(sealed.to_vec());
        let len = self
            .master
            .open_in_place(nonce(handle), Aad::from(aad(handle)), &mut buffer)
            .map_err(|_| Ckr::DeviceError)?
            .len();
        buffer.truncate(len);
        Ok(buffer)
    }

    /// Tamper response: forget every object and replace the master key (crypto-shredding).
    pub(crate) fn zeroise(&mut self, rng: &mut dyn RngCore) -> Result<(), Ckr> {
        let keys: Vec<sled::IVec> = self
            .db
            .scan_prefix(OBJECT_PREFIX)
            .keys()
            .collect::<Result<_, _>>()
            .map_err(device)?;
        for k in keys {
            self.db.remove(k).map_err(device)?;
        }
        self.flush()?;
        let mut bytes = Zeroizing::new(vec![0u8; MASTER_KEY_LEN_BYTES]);
        rng.fill_bytes(&mut bytes);
        write_master_key(&self.master_key_path, &bytes).map_err(|_| Ckr::DeviceError)?;
        self.master = master_key(&bytes);
        Ok(())
    }
}

fn master_key(bytes: &[u8]) -> LessSafeKey {
    // The length is checked by the callers; AES-256 accepts exactly 32 bytes.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte AES-256 key"))
}

/// Overwrites the master-key file in place and syncs it.
fn write_master_key(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.set_len(bytes.len() as u64)?;
    file.sync_all()
}

fn key(prefix: &[u8], id: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn nonce(handle: ObjectHandle) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&handle.0.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

fn aad(handle: ObjectHandle) -> Vec<u8> {
    let mut aad = SEAL_AAD_PREFIX.to_vec();
    aad.extend_from_slice(&handle.0.to_be_bytes());
    aad
}

fn device(_: sled::Error) -> Ckr {
    Ckr::DeviceError
}
