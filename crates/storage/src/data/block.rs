//! The sealed block: the unit of storage, encryption and retention.
//!
//! A block holds up to `block_max_bytes` of encoded records of one account, workspace and table.
//! Its header is plaintext, so that queries and retention can select blocks without keys, and is
//! authenticated as the AAD of every encryption layer, so that changing any header field (a time
//! range, the table, the key reference, the format version) makes the block fail to open. The
//! header is the same in format versions 1, 2 and 3; the version says how the payload encodes
//! its records (1: JSON, written before issue 15, and 2: binary rows, written before issue 11's
//! columnar payload, both still read; 3: columnar, written now; see [`super::record`] and
//! [`super::columnar`]). All integers big-endian:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 4  | magic `CMKB` |
//! | 4  | 1  | format version: 1 (JSON payload), 2 (binary rows) or 3 (columnar) |
//! | 5  | 1  | tier: 0 cold, 1 hot (full hot copies, written before hot entries, see [`super::hot`]), 2 outage buffer |
//! | 6  | 8  | block id (u64; also the HKDF salt of its keys) |
//! | 14 | 8  | min TimeGenerated (i64 ms since the Unix epoch) |
//! | 22 | 8  | max TimeGenerated (i64 ms) |
//! | 30 | 4  | record count (u32) |
//! | 34 | 8  | written at (i64 ms, simulated time; for the buffer: when it was buffered) |
//! | 42 | 1  | key reference: 0 = MMK, 1 = CMK (the AEK, wrapped by the KEK `kid`/`version`) |
//! | 43 | 1  | inner algorithm: 1 = AES-256-GCM |
//! | 44 | 1  | outer algorithm: 0 = none, 2 = CHACHA20-POLY1305 (double encryption) |
//! | 45 | 12 | inner nonce (random) |
//! | 57 | 12 | outer nonce (random; zeros without double encryption) |
//! | 69 | …  | five strings, each a u16 length then UTF-8: account, workspace, table, kid, version (kid and version empty under the MMK) |
//! | …  | 4  | ciphertext length (u32) |
//! | …  | …  | ciphertext |
//!
//! Everything up to and including the ciphertext length is the header and the AAD. The
//! ciphertext is `ChaCha20-Poly1305(infra layer key, outer nonce, AAD, AES-256-GCM(DEK, inner
//! nonce, AAD, records))` with double encryption, or the inner layer alone; each layer appends its
//! 16-byte tag. The DEK is HKDF-SHA256 of the AEK (key reference CMK) or of the MMK (key reference
//! MMK), salt = block id followed, for cold and hot blocks, by the table's secret of the
//! generation that covers the block id (not in the header: a purge destroys it, see
//! [`super::shred`]); see [`super::keys`]. The payload is the record encoding of
//! [`super::record`].

use std::fmt;

use ring::aead;
use serde::{Deserialize, Serialize};

use super::keys::{self, SecretKey, NONCE_LEN_BYTES};
use super::record::PayloadFormat;

/// The magic bytes that open every block.
pub const BLOCK_MAGIC: &[u8; 4] = b"CMKB";
/// The block format version this code writes (columnar payload).
pub const BLOCK_FORMAT_VERSION: u8 = 3;
/// The format version of blocks whose records are binary rows (read, no longer written).
pub const BLOCK_FORMAT_VERSION_BINARY: u8 = 2;
/// The format version of blocks whose records are JSON (read, no longer written).
pub const BLOCK_FORMAT_VERSION_JSON: u8 = 1;

impl PayloadFormat {
    /// The block format version that says this payload format.
    pub(crate) fn version(self) -> u8 {
        match self {
            PayloadFormat::Json => BLOCK_FORMAT_VERSION_JSON,
            PayloadFormat::Binary => BLOCK_FORMAT_VERSION_BINARY,
            PayloadFormat::Columnar => BLOCK_FORMAT_VERSION,
        }
    }

    fn from_version(version: u8) -> Option<PayloadFormat> {
        match version {
            BLOCK_FORMAT_VERSION_JSON => Some(PayloadFormat::Json),
            BLOCK_FORMAT_VERSION_BINARY => Some(PayloadFormat::Binary),
            BLOCK_FORMAT_VERSION => Some(PayloadFormat::Columnar),
            _ => None,
        }
    }
}
/// Length of the fixed part of the header, in bytes.
const FIXED_HEADER_BYTES: usize = 69;
/// Longest string field, in bytes (the u16 length prefix).
pub const HEADER_STRING_MAX_BYTES: usize = u16::MAX as usize;

const ALG_AES_256_GCM: u8 = 1;
const ALG_NONE: u8 = 0;
const ALG_CHACHA20_POLY1305: u8 = 2;

/// Which key protects a block.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum KeyRef {
    /// The Microsoft-managed key (data written before CMK was configured, the 2020 hot tier's
    /// entries, the outage buffer). Readable without the AEK.
    Mmk,
    /// The AEK, wrapped at write time by the customer's key `kid`, version `version`.
    Cmk { kid: String, version: String },
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::Mmk => f.write_str("the Microsoft-managed key"),
            KeyRef::Cmk { kid, version } => {
                write!(f, "the customer-managed key {kid} version {version}")
            }
        }
    }
}

/// Where a block lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Cold,
    Hot,
    Buffer,
}

impl Tier {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Tier::Cold => "cold",
            Tier::Hot => "hot",
            Tier::Buffer => "outage buffer",
        }
    }

    fn code(self) -> u8 {
        match self {
            Tier::Cold => 0,
            Tier::Hot => 1,
            Tier::Buffer => 2,
        }
    }

    fn from_code(code: u8) -> Option<Tier> {
        match code {
            0 => Some(Tier::Cold),
            1 => Some(Tier::Hot),
            2 => Some(Tier::Buffer),
            _ => None,
        }
    }
}

/// The plaintext, authenticated header of a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    /// How the payload encodes its records (the format version byte).
    pub payload_format: PayloadFormat,
    pub tier: Tier,
    pub block_id: u64,
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    pub record_count: u32,
    pub written_at_ms: i64,
    pub key_ref: KeyRef,
    pub double_encryption: bool,
    pub inner_nonce: [u8; NONCE_LEN_BYTES],
    pub outer_nonce: [u8; NONCE_LEN_BYTES],
    pub account: String,
    pub workspace: String,
    pub table: String,
    pub ciphertext_bytes: u32,
}

impl BlockHeader {
    /// The header's bytes (the AAD).
    fn encode(&self) -> Vec<u8> {
        let (kid, version) = match &self.key_ref {
            KeyRef::Mmk => ("", ""),
            KeyRef::Cmk { kid, version } => (kid.as_str(), version.as_str()),
        };
        let strings = [
            self.account.as_str(),
            &self.workspace,
            &self.table,
            kid,
            version,
        ];
        let mut out = Vec::with_capacity(
            FIXED_HEADER_BYTES + 4 + strings.iter().map(|s| s.len() + 2).sum::<usize>(),
        );
        out.extend_from_slice(BLOCK_MAGIC);
        out.push(self.payload_format.version());
        out.push(self.tier.code());
        out.extend_from_slice(&self.block_id.to_be_bytes());
        out.extend_from_slice(&self.min_time_ms.to_be_bytes());
        out.extend_from_slice(&self.max_time_ms.to_be_bytes());
        out.extend_from_slice(&self.record_count.to_be_bytes());
        out.extend_from_slice(&self.written_at_ms.to_be_bytes());
        out.push(match self.key_ref {
            KeyRef::Mmk => 0,
            KeyRef::Cmk { .. } => 1,
        });
        out.push(ALG_AES_256_GCM);
        out.push(if self.double_encryption {
            ALG_CHACHA20_POLY1305
        } else {
            ALG_NONE
        });
        out.extend_from_slice(&self.inner_nonce);
        out.extend_from_slice(&self.outer_nonce);
        debug_assert_eq!(out.len(), FIXED_HEADER_BYTES);
        for s in strings {
            // Names are validated (≤ HEADER_STRING_MAX_BYTES) before a header is built.
            assert!(
                s.len() <= HEADER_STRING_MAX_BYTES,
                "header string longer than its u16 length"
            );
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        out.extend_from_slice(&self.ciphertext_bytes.to_be_bytes());
        out
    }

    /// Parses a stored block: its header, the header's length (the AAD), checking the ciphertext
    /// length. Does not authenticate anything (that is [`open`]'s job).
    pub fn parse(bytes: &[u8]) -> Result<(BlockHeader, usize), String> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4)? != BLOCK_MAGIC {
            return Err("bad magic".into());
        }
        let version = r.u8()?;
        let payload_format = PayloadFormat::from_version(version)
            .ok_or_else(|| format!("unsupported block format version {version}"))?;
        let tier = Tier::from_code(r.u8()?).ok_or("unknown tier code")?;
        let block_id = r.u64()?;
        let min_time_ms = r.u64()? as i64;
        let max_time_ms = r.u64()? as i64;
        let record_count = r.u32()?;
        let written_at_ms = r.u64()? as i64;
        let key_kind = r.u8()?;
        if r.u8()? != ALG_AES_256_GCM {
            return Err("unknown inner algorithm".into());
        }
        let double_encryption = match r.u8()? {
            ALG_NONE => false,
            ALG_CHACHA20_POLY1305 => true,
            _ => return Err("unknown outer algorithm".into()),
        };
        let inner_nonce: [u8; NONCE_LEN_BYTES] =
            r.take(NONCE_LEN_BYTES)?.try_into().expect("12 bytes");
        let outer_nonce: [u8; NONCE_LEN_BYTES] =
            r.take(NONCE_LEN_BYTES)?.try_into().expect("12 bytes");
        let account = r.string()?;
        let workspace = r.string()?;
        let table = r.string()?;
        let kid = r.string()?;
        let key_version = r.string()?;
        let key_ref = match key_kind {
            0 if kid.is_empty() && key_version.is_empty() => KeyRef::Mmk,
            1 => KeyRef::Cmk {
                kid,
                version: key_version,
            },
            _ => return Err("bad key reference".into()),
        };
        let ciphertext_bytes = r.u32()?;
        let header_len = r.at;
        if bytes.len() - header_len != ciphertext_bytes as usize {
            return Err(format!(
                "ciphertext is {} bytes, header says {ciphertext_bytes}",
                bytes.len() - header_len
            ));
        }
        if min_time_ms > max_time_ms {
            return Err("min time after max time".into());
        }
        let header = BlockHeader {
            payload_format,
            tier,
            block_id,
            min_time_ms,
            max_time_ms,
            record_count,
            written_at_ms,
            key_ref,
            double_encryption,
            inner_nonce,
            outer_nonce,
            account,
            workspace,
            table,
            ciphertext_bytes,
        };
        Ok((header, header_len))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or("truncated header")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn string(&mut self) -> Result<String, String> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize;
        String::from_utf8(self.take(len)?.to_vec())
            .map_err(|_| "header string is not UTF-8".to_string())
    }
}

/// Seals `payload` under `header` (whose nonces and ciphertext length are filled in here).
/// `outer_key` must be present exactly when `header.double_encryption` is set.
pub(crate) fn seal(
    mut header: BlockHeader,
    mut payload: Vec<u8>,
    dek: &SecretKey,
    outer_key: Option<&SecretKey>,
    rng: &mut dyn rand::RngCore,
) -> Vec<u8> {
    assert_eq!(
        header.double_encryption,
        outer_key.is_some(),
        "outer key iff double encryption"
    );
    rng.fill_bytes(&mut header.inner_nonce);
    if header.double_encryption {
        rng.fill_bytes(&mut header.outer_nonce);
    }
    let tag_bytes = aead::AES_256_GCM.tag_len()
        + if header.double_encryption {
            aead::CHACHA20_POLY1305.tag_len()
        } else {
            0
        };
    header.ciphertext_bytes =
        u32::try_from(payload.len() + tag_bytes).expect("blocks are far below 4 GiB");
    let aad = header.encode();
    keys::seal(
        &aead::AES_256_GCM,
        dek,
        header.inner_nonce,
        &aad,
        &mut payload,
    );
    if let Some(outer) = outer_key {
        keys::seal(
            &aead::CHACHA20_POLY1305,
            outer,
            header.outer_nonce,
            &aad,
            &mut payload,
        );
    }
    let mut out = aad;
    out.extend_from_slice(&payload);
    out
}

/// Opens a stored block whose header was parsed by [`BlockHeader::parse`] (`header_len` bytes).
/// `None` if any layer fails authentication.
pub(crate) fn open(
    bytes: &[u8],
    header: &BlockHeader,
    header_len: usize,
    dek: &SecretKey,
    outer_key: Option<&SecretKey>,
) -> Option<Vec<u8>> {
    let aad = &bytes[..header_len];
    let mut buf = bytes[header_len..].to_vec();
    if header.double_encryption {
        keys::open(
            &aead::CHACHA20_POLY1305,
            outer_key?,
            header.outer_nonce,
            aad,
            &mut buf,
        )?;
    }
    keys::open(&aead::AES_256_GCM, dek, header.inner_nonce, aad, &mut buf)?;
    Some(buf)
}
