//! cmksim-hsm: an emulated PKCS#11-style hardware security module.
//!
//! The Key Vault of the simulator keeps its `RSA-HSM` and `EC-HSM` keys here: they are generated
//! inside the module, never leave it, and are used through object handles. The API is shaped
//! after PKCS#11 (`C_Login` is [`Module::c_login`], return codes are [`Ckr`] with the real
//! `CKR_*` names and numbers) so that what a drill shows is what a real HSM would answer,
//! including the codes common software tokens get wrong.
//!
//! Components:
//! - [`Module`] (in `module/`): the device, `Send + Sync`, one lock, crypto outside the lock.
//! - [`types`]: handles, attributes, user types; [`mechanism`]: mechanisms and their parameters.
//! - `object`: keys as typed records and the rules of their attributes.
//! - `token`: labels, PIN hashes and lockout; `store`: sled persistence and the master key that
//!   seals every secret at rest.
//! - `mechanisms/`: the cryptography (aws-lc-rs for RSA, ECDSA signing and AES key wrap; p256
//!   for EC key generation and ECDSA verification).
//! - [`fault`]: injected faults (device error, latency); [`Module::tamper`] zeroises the device.
//! - [`bench`]: throughput against aws-lc direct, SoftHSM2 and `openssl speed`, interleaved
//!   (`cmksim bench hsm`).
//!
//! Randomness: the master key, EC and AES keys and PIN salts come from the
//! [`cmksim_sim::RandomSource`] handed to [`Module::open`] (deterministic in simulation). RSA key
//! generation, OAEP/PSS padding and ECDSA nonces use aws-lc's internal OS-seeded generator,
//! which cannot be seeded: RSA keys and ECDSA signatures differ from run to run (neither reaches
//! the event log). Each ECDSA signature still draws 32 bytes from the handed-in source, so the
//! seeded stream, and every key generated after a signature, is unchanged.
//!
//! # Example: the Key Vault flow
//! ```
//! use cmksim_hsm::{Attribute, AttributeType, Mechanism, Module, ModuleConfig, SlotId, UserType};
//! use cmksim_sim::RandomSource;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let hsm = Module::open(dir.path(), ModuleConfig::default(), RandomSource::from_seed([7; 32])).unwrap();
//! let slot = SlotId(0);
//! hsm.c_init_token(slot, "so-pin-1234", "keyvault").unwrap();
//! let session = hsm.c_open_session(slot, true).unwrap();
//! hsm.c_login(session, UserType::So, "so-pin-1234").unwrap();
//! hsm.c_init_pin(session, "user-pin-1234").unwrap();
//! hsm.c_logout(session).unwrap();
//! hsm.c_login(session, UserType::User, "user-pin-1234").unwrap();
//!
//! let (public, private) = hsm
//!     .c_generate_key_pair(
//!         session,
//!         &Mechanism::RsaPkcsKeyPairGen,
//!         &[Attribute::Token(true), Attribute::ModulusBits(2048), Attribute::Label("kek-1".into())],
//!         &[Attribute::Token(true), Attribute::Label("kek-1".into()), Attribute::Id(b"kek-1/v1".to_vec())],
//!     )
//!     .unwrap();
//! // The public half, for the Key Vault's JWK (n, e).
//! let values = hsm
//!     .c_get_attribute_value(session, public, &[AttributeType::Modulus, AttributeType::PublicExponent])
//!     .unwrap();
//! assert!(matches!(&values[0], Attribute::Modulus(n) if n.len() == 256));
//!
//! // wrapKey with RSA-OAEP-256 ... and unwrapKey inside the HSM.
//! let dek = [42u8; 32];
//! let wrapped = hsm.c_encrypt(session, &Mechanism::rsa_oaep_sha256(), public, &dek).unwrap();
//! let unwrapped = hsm.c_decrypt(session, &Mechanism::rsa_oaep_sha256(), private, &wrapped).unwrap();
//! assert_eq!(unwrapped, dek);
//!
//! // The private key never leaves: its secret attributes are refused.
//! let refused = hsm.c_get_attribute_value(session, private, &[AttributeType::PrivateExponent]);
//! assert_eq!(refused.unwrap_err().to_string(), "CKR_ATTRIBUTE_SENSITIVE");
//! ```

#![deny(unsafe_code)] // one module, `mechanisms::bignum`, allows it: calls into aws-lc

pub mod bench;
pub mod config;
pub mod error;
pub mod fault;
pub mod mechanism;
mod mechanisms;
mod module;
mod object;
mod store;
mod token;
pub mod types;

pub use config::ModuleConfig;
pub use error::{Ckr, OpenError};
pub use fault::Fault;
pub use mechanism::{HashAlg, Mechanism, Mgf, OaepParams, PssParams};
pub use mechanisms::ec::P256_EC_PARAMS_DER;
pub use mechanisms::rsa::sha256_digest_info;
pub use mechanisms::rsa_keygen::{
    generate_rsa, prepare_rsa, GeneratedRsa, RsaKeySeed, GENERATED_KEYS_REMEMBERED_MAX,
};
pub use module::Module;
pub use types::{
    Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle, SessionHandle, SlotId, TokenInfo,
    UserType,
};

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn module_is_send_and_sync() {
        assert_send_sync::<super::Module>();
    }
}
