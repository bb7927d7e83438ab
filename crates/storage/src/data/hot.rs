//! The hot tier's entry: a block's DEK, wrapped under the hot tier's key, instead of a second
//! sealed copy of the block.
//!
//! Why: the hot tier (the last `hot_tier_window` of data, the SSD cache of the real service) is
//! a *key* matter, not a second store. In the 2020 profile its data "remains encrypted with
//! Microsoft keys regardless CMK configuration" (seed 000) and is deleted on revocation; in the
//! current profile it is under the CMK. Until issue 15 every recent block was sealed twice (the
//! cold copy under the account's key, the hot copy under the hot tier's) and both copies were
//! written and flushed with the append: twice the encryption and twice the bytes on disk per
//! append, for bytes that sled holds once anyway. Now a hot entry holds the cold block's DEK
//! sealed under a key of the hot tier; a reader with that key opens the cold block's ciphertext
//! with it. What the seeds require holds: under the 2020 profile a hot block reads without the
//! customer's key (the MMK opens the entry), deleting the entry (revocation) takes that way
//! away, and the rebuild re-wraps the DEKs without re-encrypting any data.
//!
//! The wrapping key is HKDF-SHA256 of the MMK (2020) or of the AEK (current), salt = block id ‖
//! the table's secret ([`super::shred`]), info = `cmksim hot dek v1` ‖ account ‖ workspace ‖
//! table ([`super::keys::hot_wrap_key`]): a purge that destroys the table secret makes every
//! entry of the purged generation unopenable, as it does the blocks. The entry is bound to its
//! block: the AAD is the block's key in sled followed by the entry's own header.
//!
//! Layout (integers big-endian):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 4  | magic `CMKH` |
//! | 4  | 1  | entry format version: 1 |
//! | 5  | 1  | wrapping key: 0 = MMK, 1 = CMK (the AEK) |
//! | 6  | 8  | block id |
//! | 14 | 12 | nonce (random) |
//! | 26 | 48 | AES-256-GCM(wrapping key, nonce, AAD, DEK) ‖ tag |
//!
//! A hot value that starts with the block magic `CMKB` is a full hot copy written before this
//! format (a sealed block of tier hot); it is still read as such ([`HotValue::parse`]).

use ring::aead;

use super::block::{BlockHeader, Tier, BLOCK_MAGIC};
use super::keys::{self, Aek, SecretKey, KEY_LEN_BYTES, NONCE_LEN_BYTES};
use super::tier::malformed;
use super::{store, DataError, DataPlane, Result, Sealing};

/// The magic bytes that open every hot entry.
pub const HOT_ENTRY_MAGIC: &[u8; 4] = b"CMKH";
/// The hot entry format this code writes.
pub const HOT_ENTRY_VERSION: u8 = 1;
/// The header of an entry (magic, version, key kind, block id): the part the AAD repeats.
const ENTRY_HEADER_BYTES: usize = 14;
/// Length of an entry, in bytes.
pub const HOT_ENTRY_BYTES: usize = ENTRY_HEADER_BYTES + NONCE_LEN_BYTES + KEY_LEN_BYTES + 16;

/// Which key wraps a hot entry's DEK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HotKey {
    /// The Microsoft-managed key (the 2020 profile).
    Mmk,
    /// The account's AEK, under the customer's key (the current profile).
    Cmk,
}

/// A value of the hot tree.
#[derive(Debug, PartialEq, Eq)]
pub enum HotValue<'a> {
    /// An entry of this format: the key that wraps it and the block it belongs to.
    Entry {
        key: HotKey,
        block_id: u64,
        bytes: &'a [u8],
    },
    /// A full sealed hot copy, written before hot entries existed.
    LegacyCopy(&'a [u8]),
}

impl<'a> HotValue<'a> {
    /// Tells an entry from a legacy copy and checks an entry's layout (not its authenticity).
    pub fn parse(bytes: &'a [u8]) -> std::result::Result<HotValue<'a>, String> {
        if bytes.starts_with(BLOCK_MAGIC) {
            return Ok(HotValue::LegacyCopy(bytes));
        }
        if !bytes.starts_with(HOT_ENTRY_MAGIC) {
            return Err("bad hot entry magic".into());
        }
        if bytes.len() != HOT_ENTRY_BYTES {
            return Err(format!(
                "hot entry is {} bytes, expected {HOT_ENTRY_BYTES}",
                bytes.len()
            ));
        }
        if bytes[4] != HOT_ENTRY_VERSION {
            return Err(format!("unsupported hot entry version {}", bytes[4]));
        }
        let key = match bytes[5] {
            0 => HotKey::Mmk,
            1 => HotKey::Cmk,
            other => return Err(format!("unknown hot entry key kind {other}")),
        };
        let block_id = u64::from_be_bytes(bytes[6..14].try_into().expect("8 bytes"));
        Ok(HotValue::Entry {
            key,
            block_id,
            bytes,
        })
    }
}

fn aad(block_key: &[u8], header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(block_key.len() + header.len());
    aad.extend_from_slice(block_key);
    aad.extend_from_slice(header);
    aad
}

/// Wraps `dek`, the DEK of block `block_id` stored under `block_key`, under `wrapping` (the
/// [`keys::hot_wrap_key`] of `key`).
pub(crate) fn seal_entry(
    key: HotKey,
    block_id: u64,
    block_key: &[u8],
    dek: &SecretKey,
    wrapping: &SecretKey,
    rng: &mut dyn rand::RngCore,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HOT_ENTRY_BYTES);
    out.extend_from_slice(HOT_ENTRY_MAGIC);
    out.push(HOT_ENTRY_VERSION);
    out.push(match key {
        HotKey::Mmk => 0,
        HotKey::Cmk => 1,
    });
    out.extend_from_slice(&block_id.to_be_bytes());
    let mut nonce = [0u8; NONCE_LEN_BYTES];
    rng.fill_bytes(&mut nonce);
    let mut sealed = dek.bytes().to_vec();
    keys::seal(
        &aead::AES_256_GCM,
        wrapping,
        nonce,
        &aad(block_key, &out),
        &mut sealed,
    );
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    debug_assert_eq!(out.len(), HOT_ENTRY_BYTES);
    out
}

/// The DEK in an entry parsed by [`HotValue::parse`], if it authenticates under `wrapping` for
/// the block stored under `block_key`.
pub(crate) fn open_entry(
    entry: &[u8],
    block_key: &[u8],
    wrapping: &SecretKey,
) -> Option<SecretKey> {
    if entry.len() != HOT_ENTRY_BYTES {
        return None;
    }
    let (header, rest) = entry.split_at(ENTRY_HEADER_BYTES);
    let nonce: [u8; NONCE_LEN_BYTES] = rest[..NONCE_LEN_BYTES].try_into().ok()?;
    let mut sealed = zeroize::Zeroizing::new(rest[NONCE_LEN_BYTES..].to_vec());
    keys::open(
        &aead::AES_256_GCM,
        wrapping,
        nonce,
        &aad(block_key, header),
        &mut sealed,
    )?;
    SecretKey::from_slice(&sealed)
}

impl DataPlane {
    /// The hot wrapping key of a block for a hot tier sealed per `hot` (the MMK, or the AEK
    /// of a CMK sealing), with the table secret that covers the block.
    fn hot_wrapping(
        &self,
        ikm: &[u8; KEY_LEN_BYTES],
        account: &str,
        workspace: &str,
        table: &str,
        block_id: u64,
    ) -> SecretKey {
        let secret = self
            .table_keys
            .secret_for(account, workspace, table, block_id);
        keys::hot_wrap_key(ikm, block_id, account, workspace, table, secret.as_deref())
    }

    /// The hot entry of block `block_id` (stored under `block_key`, sealed with `dek`) for a
    /// hot tier sealed per `hot` ([`DataPlane::hot_sealing`] of the block's own sealing).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn hot_entry(
        &self,
        account: &str,
        workspace: &str,
        table: &str,
        block_id: u64,
        block_key: &[u8],
        dek: &SecretKey,
        hot: Sealing<'_>,
        rng: &mut dyn rand::RngCore,
    ) -> Vec<u8> {
        let (kind, ikm) = match hot {
            Sealing::Mmk => (HotKey::Mmk, self.keys.mmk.bytes()),
            Sealing::Cmk { aek, .. } => (HotKey::Cmk, aek.expose_bytes()),
        };
        let wrapping = self.hot_wrapping(ikm, account, workspace, table, block_id);
        seal_entry(kind, block_id, block_key, dek, &wrapping, rng)
    }

    /// Opens the block a hot entry stands for: the cold block under the same `key`, with the
    /// DEK the entry holds. The header returned is the cold block's. An entry whose block is
    /// gone, or that does not authenticate for it, is an integrity failure of the hot tier; an
    /// entry under the CMK without `aek` is [`DataError::KeyUnavailable`].
    pub(crate) fn open_hot_entry(
        &self,
        key: &[u8],
        kind: HotKey,
        block_id: u64,
        entry: &[u8],
        aek: Option<&Aek>,
    ) -> Result<(BlockHeader, Vec<u8>)> {
        let cold = self.trees.cold.get(key)?.ok_or_else(|| {
            malformed(
                Tier::Hot,
                key,
                "the hot entry's block is not in the cold tier".into(),
            )
        })?;
        self.open_hot_entry_with(key, kind, block_id, entry, &cold, aek)
    }

    /// [`DataPlane::open_hot_entry`] with the cold block's bytes given (`cold`): what a holder
    /// of old bytes, an entry and the block it stood for, could try.
    pub(crate) fn open_hot_entry_with(
        &self,
        key: &[u8],
        kind: HotKey,
        block_id: u64,
        entry: &[u8],
        cold: &[u8],
        aek: Option<&Aek>,
    ) -> Result<(BlockHeader, Vec<u8>)> {
        let (header, header_len) =
            BlockHeader::parse(cold).map_err(|reason| malformed(Tier::Cold, key, reason))?;
        let integrity = || DataError::Integrity {
            account: header.account.clone(),
            block_id: header.block_id,
            tier: Tier::Hot.name(),
        };
        let expected_key = store::block_key(
            &header.account,
            &header.workspace,
            &header.table,
            header.max_time_ms,
            header.block_id,
        );
        if header.tier != Tier::Cold || header.block_id != block_id || expected_key != key {
            return Err(integrity());
        }
        let ikm = match (kind, aek) {
            (HotKey::Mmk, _) => self.keys.mmk.bytes(),
            (HotKey::Cmk, Some(aek)) => aek.expose_bytes(),
            (HotKey::Cmk, None) => {
                return Err(DataError::KeyUnavailable {
                    account: header.account.clone(),
                    block_id: header.block_id,
                    key_ref: header.key_ref.clone(),
                })
            }
        };
        let wrapping = self.hot_wrapping(
            ikm,
            &header.account,
            &header.workspace,
            &header.table,
            block_id,
        );
        let dek = open_entry(entry, key, &wrapping).ok_or_else(integrity)?;
        let outer = header
            .double_encryption
            .then(|| keys::infra_layer_key(&self.keys.infra, header.block_id, &header.account));
        let payload = super::block::open(cold, &header, header_len, &dek, outer.as_ref())
            .ok_or_else(integrity)?;
        Ok((header, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmksim_sim::RandomSource;

    fn key(byte: u8) -> SecretKey {
        SecretKey::from_slice(&[byte; KEY_LEN_BYTES]).unwrap()
    }

    #[test]
    fn an_entry_opens_only_under_its_key_for_its_block() {
        let mut rng = RandomSource::from_seed([3; 32]);
        let dek = key(1);
        let entry = seal_entry(HotKey::Mmk, 7, b"block-key", &dek, &key(2), &mut rng);
        assert_eq!(
            HotValue::parse(&entry).unwrap(),
            HotValue::Entry {
                key: HotKey::Mmk,
                block_id: 7,
                bytes: &entry
            }
        );
        let opened = open_entry(&entry, b"block-key", &key(2)).unwrap();
        assert_eq!(opened.bytes(), dek.bytes());
        assert!(open_entry(&entry, b"other-key", &key(2)).is_none());
        assert!(open_entry(&entry, b"block-key", &key(3)).is_none());
        let mut tampered = entry.clone();
        tampered[13] ^= 1;
        assert!(open_entry(&tampered, b"block-key", &key(2)).is_none());
    }

    #[test]
    fn a_legacy_copy_and_a_malformed_value_are_told_apart() {
        let legacy = [BLOCK_MAGIC.as_slice(), &[2, 1, 0]].concat();
        assert_eq!(
            HotValue::parse(&legacy).unwrap(),
            HotValue::LegacyCopy(&legacy)
        );
        assert!(HotValue::parse(b"CMKHshort").is_err());
        assert!(HotValue::parse(b"nonsense").is_err());
    }
}
