//! The same primitives called straight on aws-lc-rs, without the module: the floor the module's
//! figures are compared with, so that module overhead and library speed are told apart.

use std::time::Duration;

use aws_lc_rs::digest::{Digest, SHA256};
use aws_lc_rs::key_wrap::{AesKek, KeyWrapPadded, AES_256};
use aws_lc_rs::rsa::{
    KeySize, OaepAlgorithm, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

use super::{slice, BenchOp, Tally, PAYLOAD};

type Error = aws_lc_rs::error::Unspecified;

/// One row's keys and input.
pub(crate) enum Prepared {
    Decrypt {
        key: Box<OaepPrivateDecryptingKey>,
        algorithm: &'static OaepAlgorithm,
        ciphertext: Vec<u8>,
    },
    Encrypt {
        key: Box<OaepPublicEncryptingKey>,
    },
    Sign {
        key: Box<EcdsaKeyPair>,
    },
    /// aws-lc's key-encryption key is consumed by each use, so it is rebuilt per call (as the
    /// module does).
    Unwrap {
        kek: [u8; 32],
        wrapped: Vec<u8>,
    },
    /// A new RSA-2048 key from aws-lc's own generator per call.
    GenerateRsa2048,
}

pub(crate) fn prepare(op: BenchOp) -> Result<Prepared, Error> {
    match op {
        BenchOp::Rsa2048KeyPairGen => {
            PrivateDecryptingKey::generate(KeySize::Rsa2048)?;
            Ok(Prepared::GenerateRsa2048)
        }
        BenchOp::EcdsaP256Sign => Ok(Prepared::Sign {
            key: Box::new(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)?),
        }),
        BenchOp::Aes256KwpUnwrap => {
            let kek = [0x11u8; 32];
            let mut wrapped = vec![0u8; PAYLOAD.len() + 16];
            let len = AesKek::new(&AES_256, &kek)?
                .wrap_with_padding(&PAYLOAD, &mut wrapped)?
                .len();
            wrapped.truncate(len);
            Ok(Prepared::Unwrap { kek, wrapped })
        }
        _ => {
            let size = if op.modulus_bits() == 3072 {
                KeySize::Rsa3072
            } else {
                KeySize::Rsa2048
            };
            let private = PrivateDecryptingKey::generate(size)?;
            let public = OaepPublicEncryptingKey::new(private.public_key())?;
            if op == BenchOp::Rsa2048OaepSha1Encrypt {
                return Ok(Prepared::Encrypt {
                    key: Box::new(public),
                });
            }
            let algorithm = if op.oaep_sha256() {
                &OAEP_SHA256_MGF1SHA256
            } else {
                &OAEP_SHA1_MGF1SHA1
            };
            let mut ciphertext = vec![0u8; private.key_size_bytes()];
            let len = public
                .encrypt(algorithm, &PAYLOAD, &mut ciphertext, None)?
                .len();
            ciphertext.truncate(len);
            Ok(Prepared::Decrypt {
                key: Box::new(OaepPrivateDecryptingKey::new(private)?),
                algorithm,
                ciphertext,
            })
        }
    }
}

pub(crate) fn run_slice(prepared: &Prepared, budget: Duration) -> Result<Tally, Error> {
    match prepared {
        Prepared::Decrypt {
            key,
            algorithm,
            ciphertext,
        } => {
            let mut out = vec![0u8; ciphertext.len()];
            slice(budget, || {
                key.decrypt(algorithm, ciphertext, &mut out, None).map(drop)
            })
        }
        Prepared::Encrypt { key } => {
            let mut out = vec![0u8; key.ciphertext_size()];
            slice(budget, || {
                key.encrypt(&OAEP_SHA1_MGF1SHA1, &PAYLOAD, &mut out, None)
                    .map(drop)
            })
        }
        Prepared::Sign { key } => slice(budget, || {
            let digest = Digest::import_less_safe(&PAYLOAD, &SHA256)?;
            key.sign_digest(&digest).map(drop)
        }),
        Prepared::Unwrap { kek, wrapped } => {
            let mut out = vec![0u8; wrapped.len()];
            slice(budget, || {
                AesKek::new(&AES_256, kek)?
                    .unwrap_with_padding(wrapped, &mut out)
                    .map(drop)
            })
        }
        Prepared::GenerateRsa2048 => slice(budget, || {
            PrivateDecryptingKey::generate(KeySize::Rsa2048).map(drop)
        }),
    }
}
