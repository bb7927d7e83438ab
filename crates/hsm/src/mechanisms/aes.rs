//! AES key wrap (RFC 3394, `CKM_AES_KEY_WRAP`) and key wrap with padding (RFC 5649,
//! `CKM_AES_KEY_WRAP_KWP`) with aws-lc-rs, and the refusal codes for each failure:
//! a length the algorithm cannot have produced is `CKR_WRAPPED_KEY_LEN_RANGE`, a failed integrity
//! check is `CKR_WRAPPED_KEY_INVALID`.
//!
//! AES keys are 16 or 32 bytes (aws-lc's key wrap has no AES-192).

use aws_lc_rs::key_wrap::{AesKek, KeyWrap, KeyWrapPadded, AES_128, AES_256};
use zeroize::Zeroizing;

use crate::error::Ckr;
use crate::mechanism::Mechanism;

/// Key wrap's semiblock, in bytes.
const SEMIBLOCK_BYTES: usize = 8;
/// Largest key this module wraps or unwraps, in bytes (an RSA-4096 PKCS#8 is ~2.4 KiB).
const WRAPPED_LEN_MAX_BYTES: usize = 8192;

/// An AES key value; zeroised on drop.
pub(crate) type AesKey = Zeroizing<Vec<u8>>;

/// True for the AES key lengths this module supports.
pub(crate) fn supported_len(len_bytes: u64) -> bool {
    len_bytes == 16 || len_bytes == 32
}

fn kek(key: &[u8]) -> Result<AesKek, Ckr> {
    let cipher = match key.len() {
        16 => &AES_128,
        32 => &AES_256,
        _ => return Err(Ckr::KeyTypeInconsistent),
    };
    AesKek::new(cipher, key).map_err(|_| Ckr::DeviceError)
}

/// `C_WrapKey` with an AES wrapping key.
pub(crate) fn wrap(mechanism: &Mechanism, key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Ckr> {
    if plaintext.is_empty() || plaintext.len() > WRAPPED_LEN_MAX_BYTES {
        return Err(Ckr::KeySizeRange);
    }
    let mut out = vec![0u8; plaintext.len() + 2 * SEMIBLOCK_BYTES];
    let len = match mechanism {
        Mechanism::AesKeyWrap => {
            if !plaintext.len().is_multiple_of(SEMIBLOCK_BYTES)
                || plaintext.len() < 2 * SEMIBLOCK_BYTES
            {
                return Err(Ckr::KeySizeRange);
            }
            kek(key)?
                .wrap(plaintext, &mut out)
                .map_err(|_| Ckr::DeviceError)?
                .len()
        }
        Mechanism::AesKeyWrapKwp => kek(key)?
            .wrap_with_padding(plaintext, &mut out)
            .map_err(|_| Ckr::DeviceError)?
            .len(),
        _ => return Err(Ckr::MechanismInvalid),
    };
    out.truncate(len);
    Ok(out)
}

/// `C_UnwrapKey` with an AES unwrapping key; returns the unwrapped key value.
pub(crate) fn unwrap(
    mechanism: &Mechanism,
    key: &[u8],
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Ckr> {
    let len_ok =
        wrapped.len().is_multiple_of(SEMIBLOCK_BYTES) && wrapped.len() <= WRAPPED_LEN_MAX_BYTES;
    let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
    let len = match mechanism {
        Mechanism::AesKeyWrap => {
            if !len_ok || wrapped.len() < 3 * SEMIBLOCK_BYTES {
                return Err(Ckr::WrappedKeyLenRange);
            }
            kek(key)?
                .unwrap(wrapped, &mut out)
                .map_err(|_| Ckr::WrappedKeyInvalid)?
                .len()
        }
        Mechanism::AesKeyWrapKwp => {
            if !len_ok || wrapped.len() < 2 * SEMIBLOCK_BYTES {
                return Err(Ckr::WrappedKeyLenRange);
            }
            kek(key)?
                .unwrap_with_padding(wrapped, &mut out)
                .map_err(|_| Ckr::WrappedKeyInvalid)?
                .len()
        }
        _ => return Err(Ckr::MechanismInvalid),
    };
    out.truncate(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! Known-answer tests: RFC 3394 §4.1 and §4.6 for key wrap; for key wrap with padding the
    //! RFC 5649 §6 vectors use a 192-bit KEK, which aws-lc's key wrap lacks, so the NIST
    //! SP 800-38F CAVP KWP vectors for AES-256 (same algorithm) stand in.
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn rfc3394_4_1_128_bit_kek() {
        let kek = h("000102030405060708090A0B0C0D0E0F");
        let key = h("00112233445566778899AABBCCDDEEFF");
        let wrapped = h("1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5");
        assert_eq!(wrap(&Mechanism::AesKeyWrap, &kek, &key).unwrap(), wrapped);
        assert_eq!(
            unwrap(&Mechanism::AesKeyWrap, &kek, &wrapped)
                .unwrap()
                .to_vec(),
            key
        );
    }

    #[test]
    fn rfc3394_4_6_256_bit_key_with_256_bit_kek() {
        let kek = h("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F");
        let key = h("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F");
        let wrapped = h(
            "28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21",
        );
        assert_eq!(wrap(&Mechanism::AesKeyWrap, &kek, &key).unwrap(), wrapped);
        assert_eq!(
            unwrap(&Mechanism::AesKeyWrap, &kek, &wrapped)
                .unwrap()
                .to_vec(),
            key
        );
    }

    #[test]
    fn rfc3394_tampered_blob_is_wrapped_key_invalid() {
        let kek = h("000102030405060708090A0B0C0D0E0F");
        let mut wrapped = h("1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5");
        wrapped[5] ^= 1;
        assert_eq!(
            unwrap(&Mechanism::AesKeyWrap, &kek, &wrapped).unwrap_err(),
            Ckr::WrappedKeyInvalid
        );
        assert_eq!(
            unwrap(&Mechanism::AesKeyWrap, &kek, &wrapped[..20]).unwrap_err(),
            Ckr::WrappedKeyLenRange
        );
    }

    #[test]
    fn kwp_nist_aes256_wrap_31_bytes() {
        let kek = h("e9bb7f44c7baafbf392ab912589a2f8db53268106eafb74689bb1833136e6113");
        let key = h("ffe952604834bff899e63658f34246815c91597eb40a21729e0a8a959b61f2");
        let wrapped =
            h("15b9f06fbc765e5e3d55d6b824616f21921d2a6918ee7bf1406b524274e170b4a78333ca5ee92af5");
        assert_eq!(
            wrap(&Mechanism::AesKeyWrapKwp, &kek, &key).unwrap(),
            wrapped
        );
        assert_eq!(
            unwrap(&Mechanism::AesKeyWrapKwp, &kek, &wrapped)
                .unwrap()
                .to_vec(),
            key
        );
    }

    #[test]
    fn kwp_nist_aes256_unwrap_1_byte_and_failure() {
        let kek = h("20e4ff6a88ffa9a2818b81702793d8a016722c2fa1ff445f24b9db293cb12069");
        let wrapped = h("85011dc927b167f411b0b8e21b11d819");
        assert_eq!(
            unwrap(&Mechanism::AesKeyWrapKwp, &kek, &wrapped)
                .unwrap()
                .to_vec(),
            vec![0xd2]
        );
        let kek = h("c32cb3e1e41a4b9f4de79989957866f5dd48dba38c22a6ebb80e14c84bdd9534");
        let wrapped = h("c29b05c2619a58ecc1d239e7a34273cd");
        assert_eq!(
            unwrap(&Mechanism::AesKeyWrapKwp, &kek, &wrapped).unwrap_err(),
            Ckr::WrappedKeyInvalid
        );
        assert_eq!(
            unwrap(&Mechanism::AesKeyWrapKwp, &kek, &wrapped[..12]).unwrap_err(),
            Ckr::WrappedKeyLenRange
        );
    }
}
