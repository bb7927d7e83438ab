//! Behaviour of the emulated HSM through its public API: round trips, attribute rules,
//! persistence, tamper, lockout, and every refusal code triggered by its real condition.

use cmksim_hsm::{
    sha256_digest_info, Attribute, AttributeType, Ckr, Fault, HashAlg, KeyType, Mechanism, Mgf,
    Module, ModuleConfig, OaepParams, ObjectClass, ObjectHandle, PssParams, SessionHandle, SlotId,
    UserType, P256_EC_PARAMS_DER,
};
use cmksim_sim::RandomSource;
use std::path::Path;
use std::time::Duration;

const SO_PIN: &str = "so-pin-0000";
const USER_PIN: &str = "user-pin-0000";
const SLOT: SlotId = SlotId(0);

fn config() -> ModuleConfig {
    ModuleConfig {
        pin_kdf_iterations: 100,
        slot_count: 2,
        ..ModuleConfig::default()
    }
}

fn open(dir: &Path) -> Module {
    Module::open(dir, config(), RandomSource::from_seed([1; 32])).unwrap()
}

/// An initialised token with a user PIN, and a read-write session logged in as the user.
fn setup() -> (tempfile::TempDir, Module, SessionHandle) {
    let dir = tempfile::tempdir().unwrap();
    let hsm = open(dir.path());
    let session = user_session(&hsm, "test");
    (dir, hsm, session)
}

/// Initialises `hsm`'s token as `label` with the SO and user PINs, and opens a read-write
/// session logged in as the user.
fn user_session(hsm: &Module, label: &str) -> SessionHandle {
    hsm.c_init_token(SLOT, SO_PIN, label).unwrap();
    let session = hsm.c_open_session(SLOT, true).unwrap();
    hsm.c_login(session, UserType::So, SO_PIN).unwrap();
    hsm.c_init_pin(session, USER_PIN).unwrap();
    hsm.c_logout(session).unwrap();
    hsm.c_login(session, UserType::User, USER_PIN).unwrap();
    session
}

fn rsa_pair(
    hsm: &Module,
    session: SessionHandle,
    private_extra: &[Attribute],
) -> (ObjectHandle, ObjectHandle) {
    let mut private = vec![Attribute::Token(true), Attribute::Label("rsa".into())];
    private.extend_from_slice(private_extra);
    hsm.c_generate_key_pair(
        session,
        &Mechanism::RsaPkcsKeyPairGen,
        &[
            Attribute::Token(true),
            Attribute::ModulusBits(2048),
            Attribute::Label("rsa".into()),
        ],
        &private,
    )
    .unwrap()
}

fn ec_pair(hsm: &Module, session: SessionHandle) -> (ObjectHandle, ObjectHandle) {
    hsm.c_generate_key_pair(
        session,
        &Mechanism::EcKeyPairGen,
        &[Attribute::EcParams(P256_EC_PARAMS_DER.to_vec())],
        &[Attribute::Label("ec".into())],
    )
    .unwrap()
}

fn aes_key(hsm: &Module, session: SessionHandle, extra: &[Attribute]) -> ObjectHandle {
    let mut template = vec![Attribute::ValueLen(32)];
    template.extend_from_slice(extra);
    hsm.c_generate_key(session, &Mechanism::AesKeyGen, &template)
        .unwrap()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    digest.as_ref().try_into().unwrap()
}

// ---------------------------------------------------------------- round trips

#[test]
fn oaep_sha1_sha256_and_pkcs1_round_trips() {
    let (_dir, hsm, s) = setup();
    let (public, private) = rsa_pair(&hsm, s, &[]);
    for mechanism in [
        Mechanism::rsa_oaep_sha1(),
        Mechanism::rsa_oaep_sha256(),
        Mechanism::RsaPkcs,
    ] {
        let dek = [7u8; 32];
        let wrapped = hsm.c_encrypt(s, &mechanism, public, &dek).unwrap();
        assert_eq!(wrapped.len(), 256);
        assert_eq!(
            hsm.c_decrypt(s, &mechanism, private, &wrapped).unwrap(),
            dek,
            "{}",
            mechanism.name()
        );
    }
    // A SHA-1 ciphertext does not decrypt as SHA-256.
    let wrapped = hsm
        .c_encrypt(s, &Mechanism::rsa_oaep_sha1(), public, b"dek")
        .unwrap();
    assert_eq!(
        hsm.c_decrypt(s, &Mechanism::rsa_oaep_sha256(), private, &wrapped),
        Err(Ckr::EncryptedDataInvalid)
    );
}

#[test]
fn rsa_signatures_verify() {
    let (_dir, hsm, s) = setup();
    let (public, private) = rsa_pair(&hsm, s, &[]);
    let message = b"log batch 42";
    let digest = sha256(message);
    let cases: Vec<(Mechanism, Vec<u8>)> = vec![
        (Mechanism::Sha256RsaPkcs, message.to_vec()),
        (
            Mechanism::Sha256RsaPkcsPss(PssParams::sha256()),
            message.to_vec(),
        ),
        (Mechanism::RsaPkcs, sha256_digest_info(&digest)),
        (Mechanism::RsaPkcsPss(PssParams::sha256()), digest.to_vec()),
    ];
    for (mechanism, data) in &cases {
        let signature = hsm.c_sign(s, mechanism, private, data).unwrap();
        hsm.c_verify(s, mechanism, public, data, &signature)
            .unwrap();
        let mut bad = signature.clone();
        bad[10] ^= 1;
        assert_eq!(
            hsm.c_verify(s, mechanism, public, data, &bad),
            Err(Ckr::SignatureInvalid)
        );
    }
    // RS256 over a message and over its DigestInfo are the same PKCS#1 v1.5 signature.
    let a = hsm
        .c_sign(s, &Mechanism::Sha256RsaPkcs, private, message)
        .unwrap();
    let b = hsm
        .c_sign(
            s,
            &Mechanism::RsaPkcs,
            private,
            &sha256_digest_info(&digest),
        )
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn ecdsa_signature_verifies_with_p256() {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let (_dir, hsm, s) = setup();
    let (public, private) = ec_pair(&hsm, s);
    let digest = sha256(b"token");
    let signature = hsm.c_sign(s, &Mechanism::Ecdsa, private, &digest).unwrap();
    assert_eq!(signature.len(), 64);
    hsm.c_verify(s, &Mechanism::Ecdsa, public, &digest, &signature)
        .unwrap();
    let values = hsm
        .c_get_attribute_value(
            s,
            public,
            &[AttributeType::EcPoint, AttributeType::EcParams],
        )
        .unwrap();
    let Attribute::EcPoint(der) = &values[0] else {
        panic!("EC_POINT")
    };
    assert_eq!(&der[..3], &[0x04, 0x41, 0x04]);
    assert_eq!(values[1], Attribute::EcParams(P256_EC_PARAMS_DER.to_vec()));
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&der[2..]).unwrap();
    let sig = p256::ecdsa::Signature::from_slice(&signature).unwrap();
    key.verify_prehash(&digest, &sig).unwrap();
}

#[test]
fn aes_kw_and_kwp_round_trips_through_the_module() {
    let (_dir, hsm, s) = setup();
    let kek = aes_key(&hsm, s, &[]);
    let dek = aes_key(
        &hsm,
        s,
        &[Attribute::Extractable(true), Attribute::Sensitive(false)],
    );
    let Attribute::Value(dek_value) = hsm
        .c_get_attribute_value(s, dek, &[AttributeType::Value])
        .unwrap()
        .remove(0)
    else {
        panic!("VALUE")
    };
    for (mechanism, len) in [(Mechanism::AesKeyWrap, 40), (Mechanism::AesKeyWrapKwp, 40)] {
        let wrapped = hsm.c_wrap_key(s, &mechanism, kek, dek).unwrap();
        assert_eq!(wrapped.len(), len);
        let copy = hsm
            .c_unwrap_key(
                s,
                &mechanism,
                kek,
                &wrapped,
                &[Attribute::Sensitive(false), Attribute::Extractable(true)],
            )
            .unwrap();
        let values = hsm
            .c_get_attribute_value(
                s,
                copy,
                &[
                    AttributeType::Value,
                    AttributeType::Local,
                    AttributeType::AlwaysSensitive,
                ],
            )
            .unwrap();
        assert_eq!(
            values,
            vec![
                Attribute::Value(dek_value.clone()),
                Attribute::Local(false),
                Attribute::AlwaysSensitive(false)
            ]
        );
    }
}

#[test]
fn rsa_oaep_unwrap_creates_a_secret_key() {
    let (_dir, hsm, s) = setup();
    let (public, private) = rsa_pair(&hsm, s, &[]);
    let dek = aes_key(&hsm, s, &[Attribute::Extractable(true)]);
    let wrapped = hsm
        .c_wrap_key(s, &Mechanism::rsa_oaep_sha256(), public, dek)
        .unwrap();
    let copy = hsm
        .c_unwrap_key(
            s,
            &Mechanism::rsa_oaep_sha256(),
            private,
            &wrapped,
            &[Attribute::Label("dek".into())],
        )
        .unwrap();
    let values = hsm
        .c_get_attribute_value(
            s,
            copy,
            &[
                AttributeType::Class,
                AttributeType::KeyType,
                AttributeType::ValueLen,
            ],
        )
        .unwrap();
    assert_eq!(
        values,
        vec![
            Attribute::Class(ObjectClass::SecretKey),
            Attribute::KeyType(KeyType::Aes),
            Attribute::ValueLen(32)
        ]
    );
    // The unwrapped key works as a KEK.
    hsm.c_wrap_key(s, &Mechanism::AesKeyWrapKwp, copy, dek)
        .unwrap();
}

#[test]
fn find_objects_by_label_and_id() {
    let (_dir, hsm, s) = setup();
    let (public, private) = rsa_pair(&hsm, s, &[Attribute::Id(b"kek/v1".to_vec())]);
    assert_eq!(
        hsm.c_find_objects(s, &[Attribute::Label("rsa".into())])
            .unwrap(),
        vec![public, private]
    );
    assert_eq!(
        hsm.c_find_objects(s, &[Attribute::Id(b"kek/v1".to_vec())])
            .unwrap(),
        vec![private]
    );
    assert_eq!(
        hsm.c_find_objects(
            s,
            &[
                Attribute::Class(ObjectClass::PublicKey),
                Attribute::KeyType(KeyType::Rsa)
            ]
        )
        .unwrap(),
        vec![public]
    );
    // Without a user login only public objects are found.
    hsm.c_logout(s).unwrap();
    assert_eq!(
        hsm.c_find_objects(s, &[Attribute::Label("rsa".into())])
            .unwrap(),
        vec![public]
    );
}

#[test]
fn attributes_track_sensitivity_and_extractability() {
    let (_dir, hsm, s) = setup();
    let (_public, private) = rsa_pair(&hsm, s, &[]);
    let flags = [
        AttributeType::Sensitive,
        AttributeType::Extractable,
        AttributeType::AlwaysSensitive,
        AttributeType::NeverExtractable,
        AttributeType::Local,
    ];
    assert_eq!(
        hsm.c_get_attribute_value(s, private, &flags).unwrap(),
        vec![
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::AlwaysSensitive(true),
            Attribute::NeverExtractable(true),
            Attribute::Local(true)
        ]
    );
    let (public, _) = rsa_pair(&hsm, s, &[]);
    let values = hsm
        .c_get_attribute_value(
            s,
            public,
            &[AttributeType::ModulusBits, AttributeType::PublicExponent],
        )
        .unwrap();
    assert_eq!(
        values,
        vec![
            Attribute::ModulusBits(2048),
            Attribute::PublicExponent(vec![1, 0, 1])
        ]
    );
    // Label and usage flags change; SENSITIVE may be turned on.
    let key = aes_key(
        &hsm,
        s,
        &[Attribute::Sensitive(false), Attribute::Extractable(true)],
    );
    hsm.c_set_attribute_value(
        s,
        key,
        &[
            Attribute::Label("renamed".into()),
            Attribute::Sensitive(true),
        ],
    )
    .unwrap();
    assert_eq!(
        hsm.c_get_attribute_value(s, key, &[AttributeType::Label])
            .unwrap(),
        vec![Attribute::Label("renamed".into())]
    );
    assert_eq!(
        hsm.c_get_attribute_value(s, key, &[AttributeType::Value]),
        Err(Ckr::AttributeSensitive)
    );
}

#[test]
fn non_sensitive_rsa_private_exponent_is_readable() {
    let (_dir, hsm, s) = setup();
    let (_public, private) = rsa_pair(
        &hsm,
        s,
        &[Attribute::Sensitive(false), Attribute::Extractable(true)],
    );
    let values = hsm
        .c_get_attribute_value(s, private, &[AttributeType::PrivateExponent])
        .unwrap();
    let Attribute::PrivateExponent(d) = &values[0] else {
        panic!("D")
    };
    assert!(d.len() > 250 && d.len() <= 256);
}

#[test]
fn session_objects_vanish_when_the_session_closes() {
    let (_dir, hsm, s) = setup();
    let other = hsm.c_open_session(SLOT, true).unwrap();
    let key = aes_key(&hsm, other, &[Attribute::Label("ephemeral".into())]);
    assert_eq!(
        hsm.c_find_objects(s, &[Attribute::Label("ephemeral".into())])
            .unwrap(),
        vec![key]
    );
    hsm.c_close_session(other).unwrap();
    assert!(hsm
        .c_find_objects(s, &[Attribute::Label("ephemeral".into())])
        .unwrap()
        .is_empty());
    assert_eq!(
        hsm.c_get_attribute_value(s, key, &[AttributeType::Label]),
        Err(Ckr::ObjectHandleInvalid)
    );
}

// ---------------------------------------------------------------- persistence, tamper, lockout

#[test]
fn keys_survive_a_restart_with_the_same_handles() {
    let dir = tempfile::tempdir().unwrap();
    let (public, private, ec_private, wrapped) = {
        let hsm = open(dir.path());
        let s = user_session(&hsm, "kv");
        let (public, private) = rsa_pair(&hsm, s, &[]);
        let (_, ec_private) = hsm
            .c_generate_key_pair(
                s,
                &Mechanism::EcKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::EcParams(P256_EC_PARAMS_DER.to_vec()),
                ],
                &[Attribute::Token(true)],
            )
            .unwrap();
        let wrapped = hsm
            .c_encrypt(s, &Mechanism::rsa_oaep_sha1(), public, b"data key")
            .unwrap();
        (public, private, ec_private, wrapped)
    };
    let hsm = open(dir.path());
    assert!(hsm.c_get_token_info(SLOT).unwrap().initialized);
    let s = hsm.c_open_session(SLOT, false).unwrap();
    hsm.c_login(s, UserType::User, USER_PIN).unwrap();
    assert_eq!(
        hsm.c_decrypt(s, &Mechanism::rsa_oaep_sha1(), private, &wrapped)
            .unwrap(),
        b"data key"
    );
    assert_eq!(
        hsm.c_find_objects(s, &[Attribute::Label("rsa".into())])
            .unwrap(),
        vec![public, private]
    );
    hsm.c_sign(s, &Mechanism::Ecdsa, ec_private, &[1; 32])
        .unwrap();
    // New handles never collide with old ones.
    let fresh = hsm.c_generate_key(s, &Mechanism::AesKeyGen, &[]).unwrap();
    assert!(fresh.0 > ec_private.0);
}

#[test]
fn no_secret_is_stored_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let hsm = open(dir.path());
    let s = user_session(&hsm, "kv");
    // Non-sensitive, extractable token keys so that the test can read what must not be on disk.
    let readable = [
        Attribute::Token(true),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    let aes = aes_key(&hsm, s, &readable);
    let (_, rsa) = rsa_pair(
        &hsm,
        s,
        &[Attribute::Sensitive(false), Attribute::Extractable(true)],
    );
    let (_, ec) = hsm
        .c_generate_key_pair(
            s,
            &Mechanism::EcKeyPairGen,
            &[Attribute::EcParams(P256_EC_PARAMS_DER.to_vec())],
            &readable,
        )
        .unwrap();
    let value = |h, t| match hsm.c_get_attribute_value(s, h, &[t]).unwrap().remove(0) {
        Attribute::Value(v) | Attribute::PrivateExponent(v) => v,
        other => panic!("{other:?}"),
    };
    let secrets = [
        value(aes, AttributeType::Value),
        value(rsa, AttributeType::PrivateExponent),
        value(ec, AttributeType::Value),
    ];
    drop(hsm);
    let mut files = 0;
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).unwrap();
        for secret in &secrets {
            // Look for any 16-byte window of the secret, not only the whole of it.
            for window in secret.windows(16) {
                assert!(
                    !bytes.windows(16).any(|w| w == window),
                    "secret bytes found in {}",
                    path.display()
                );
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(USER_PIN) && !text.contains(SO_PIN),
            "PIN found in {}",
            path.display()
        );
    }
    assert!(files >= 2);
}

#[test]
fn tamper_zeroises_every_key_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let (private, wrapped) = {
        let hsm = open(dir.path());
        let s = user_session(&hsm, "kv");
        let (public, private) = rsa_pair(&hsm, s, &[]);
        let wrapped = hsm
            .c_encrypt(s, &Mechanism::rsa_oaep_sha256(), public, b"dek")
            .unwrap();
        let master_before = std::fs::read(dir.path().join("master.key")).unwrap();
        hsm.tamper().unwrap();
        assert_ne!(
            std::fs::read(dir.path().join("master.key")).unwrap(),
            master_before
        );
        let info = hsm.c_get_token_info(SLOT).unwrap();
        assert!(info.tampered && !info.initialized && info.object_count == 0);
        assert_eq!(
            hsm.c_decrypt(s, &Mechanism::rsa_oaep_sha256(), private, &wrapped),
            Err(Ckr::DeviceRemoved)
        );
        assert_eq!(hsm.c_open_session(SLOT, true), Err(Ckr::DeviceRemoved));
        (private, wrapped)
    };
    // After a restart and re-initialisation the old handle is simply gone.
    let hsm = open(dir.path());
    assert!(hsm.c_get_token_info(SLOT).unwrap().tampered);
    let s = user_session(&hsm, "kv-new");
    assert_eq!(
        hsm.c_decrypt(s, &Mechanism::rsa_oaep_sha256(), private, &wrapped),
        Err(Ckr::KeyHandleInvalid)
    );
    assert!(hsm.c_find_objects(s, &[]).unwrap().is_empty());
}

#[test]
fn pin_lockout_after_three_failures_survives_restart() {
    let (dir, hsm, s) = setup();
    hsm.c_logout(s).unwrap();
    for _ in 0..3 {
        assert_eq!(
            hsm.c_login(s, UserType::User, "wrong-pin"),
            Err(Ckr::PinIncorrect)
        );
    }
    assert_eq!(
        hsm.c_login(s, UserType::User, USER_PIN),
        Err(Ckr::PinLocked)
    );
    assert!(hsm.c_get_token_info(SLOT).unwrap().user_pin_locked);
    drop(hsm);
    let hsm = open(dir.path());
    let s = hsm.c_open_session(SLOT, true).unwrap();
    assert_eq!(
        hsm.c_login(s, UserType::User, USER_PIN),
        Err(Ckr::PinLocked)
    );
    // The SO unlocks by setting a new user PIN.
    hsm.c_login(s, UserType::So, SO_PIN).unwrap();
    hsm.c_init_pin(s, "new-user-pin").unwrap();
    hsm.c_logout(s).unwrap();
    hsm.c_login(s, UserType::User, "new-user-pin").unwrap();
}

#[test]
fn a_right_pin_resets_the_failure_count() {
    let (_dir, hsm, s) = setup();
    hsm.c_logout(s).unwrap();
    for _ in 0..2 {
        assert_eq!(
            hsm.c_login(s, UserType::User, "wrong-pin"),
            Err(Ckr::PinIncorrect)
        );
    }
    hsm.c_login(s, UserType::User, USER_PIN).unwrap();
    hsm.c_logout(s).unwrap();
    assert_eq!(
        hsm.c_login(s, UserType::User, "wrong-pin"),
        Err(Ckr::PinIncorrect)
    );
    hsm.c_login(s, UserType::User, USER_PIN).unwrap();
}

#[test]
fn faults_device_error_and_latency() {
    let (_dir, hsm, s) = setup();
    hsm.set_fault(Fault::DeviceError);
    assert_eq!(hsm.c_find_objects(s, &[]), Err(Ckr::DeviceError));
    assert_eq!(hsm.c_get_slot_list(), Err(Ckr::DeviceError));
    hsm.set_fault(Fault::Latency(Duration::from_millis(250)));
    assert_eq!(hsm.added_latency(), Duration::from_millis(250));
    hsm.c_find_objects(s, &[]).unwrap();
    hsm.set_fault(Fault::None);
    assert_eq!(hsm.added_latency(), Duration::ZERO);
}

#[test]
fn ckr_names_and_codes() {
    assert_eq!(Ckr::PinIncorrect.to_string(), "CKR_PIN_INCORRECT");
    assert_eq!(Ckr::PinIncorrect.code(), 0xA0);
    assert_eq!(Ckr::WrappedKeyInvalid.code(), 0x110);
    assert_eq!(Ckr::DeviceRemoved.code(), 0x32);
    let mut codes: Vec<u64> = Ckr::ALL.iter().map(|c| c.code()).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), Ckr::ALL.len(), "codes are distinct");
    assert!(Ckr::ALL.iter().all(|c| c.to_string().starts_with("CKR_")));
}

// ---------------------------------------------------------------- refusals, each by its real condition

/// Every refusal code, each caused by the condition PKCS#11 names.
#[test]
fn refusal_codes() {
    let (_dir, hsm, s) = setup();
    let (public, private) = rsa_pair(&hsm, s, &[]);
    let (ec_public, ec_private) = ec_pair(&hsm, s);
    let kek = aes_key(&hsm, s, &[]);
    let locked_in = aes_key(&hsm, s, &[Attribute::Extractable(false)]);
    let oaep = Mechanism::rsa_oaep_sha256();
    let wrapped = hsm.c_encrypt(s, &oaep, public, &[1; 32]).unwrap();
    let mut corrupted = wrapped.clone();
    corrupted[0] ^= 0x55;
    corrupted[100] ^= 0x55;
    let digest = [9u8; 32];
    let kw_blob = hsm
        .c_wrap_key(
            s,
            &Mechanism::AesKeyWrap,
            kek,
            aes_key(&hsm, s, &[Attribute::Extractable(true)]),
        )
        .unwrap();
    let mut kw_bad = kw_blob.clone();
    kw_bad[3] ^= 1;
    let ro = hsm.c_open_session(SLOT, false).unwrap();

    let cases: Vec<(&str, Result<(), Ckr>, Ckr)> = vec![
        (
            "ECDSA over a non-digest",
            hsm.c_sign(s, &Mechanism::Ecdsa, ec_private, b"short")
                .map(drop),
            Ckr::DataLenRange,
        ),
        (
            "over-long template",
            hsm.c_find_objects(s, &[]).map(drop).and_then(|_| {
                hsm.c_generate_key(
                    s,
                    &Mechanism::AesKeyGen,
                    &vec![Attribute::Label("x".into()); 65],
                )
                .map(drop)
            }),
            Ckr::ArgumentsBad,
        ),
        (
            "MODULUS is read-only",
            hsm.c_set_attribute_value(s, public, &[Attribute::Modulus(vec![1])]),
            Ckr::AttributeReadOnly,
        ),
        (
            "SENSITIVE cannot be turned off",
            hsm.c_set_attribute_value(s, private, &[Attribute::Sensitive(false)]),
            Ckr::AttributeReadOnly,
        ),
        (
            "EXTRACTABLE cannot be turned on",
            hsm.c_set_attribute_value(s, private, &[Attribute::Extractable(true)]),
            Ckr::AttributeReadOnly,
        ),
        (
            "ALWAYS_SENSITIVE cannot be set",
            hsm.c_set_attribute_value(s, kek, &[Attribute::AlwaysSensitive(false)]),
            Ckr::AttributeReadOnly,
        ),
        (
            "private exponent of a sensitive key",
            hsm.c_get_attribute_value(s, private, &[AttributeType::PrivateExponent])
                .map(drop),
            Ckr::AttributeSensitive,
        ),
        (
            "VALUE of a sensitive AES key",
            hsm.c_get_attribute_value(s, kek, &[AttributeType::Value])
                .map(drop),
            Ckr::AttributeSensitive,
        ),
        (
            "MODULUS of an AES key",
            hsm.c_get_attribute_value(s, kek, &[AttributeType::Modulus])
                .map(drop),
            Ckr::AttributeTypeInvalid,
        ),
        (
            "RSA exponent 3",
            hsm.c_generate_key_pair(
                s,
                &Mechanism::RsaPkcsKeyPairGen,
                &[
                    Attribute::ModulusBits(2048),
                    Attribute::PublicExponent(vec![3]),
                ],
                &[],
            )
            .map(drop),
            Ckr::AttributeValueInvalid,
        ),
        (
            "RSA-1024",
            hsm.c_generate_key_pair(
                s,
                &Mechanism::RsaPkcsKeyPairGen,
                &[Attribute::ModulusBits(1024)],
                &[],
            )
            .map(drop),
            Ckr::KeySizeRange,
        ),
        (
            "AES-24-byte",
            hsm.c_generate_key(s, &Mechanism::AesKeyGen, &[Attribute::ValueLen(24)])
                .map(drop),
            Ckr::KeySizeRange,
        ),
        (
            "corrupted OAEP ciphertext",
            hsm.c_decrypt(s, &oaep, private, &corrupted).map(drop),
            Ckr::EncryptedDataInvalid,
        ),
        (
            "short OAEP ciphertext",
            hsm.c_decrypt(s, &oaep, private, &wrapped[1..]).map(drop),
            Ckr::EncryptedDataLenRange,
        ),
        (
            "OAEP plaintext too long",
            hsm.c_encrypt(s, &oaep, public, &[0; 200]).map(drop),
            Ckr::DataLenRange,
        ),
        (
            "decrypt with a destroyed handle",
            hsm.c_decrypt(s, &oaep, ObjectHandle(999_999), &wrapped)
                .map(drop),
            Ckr::KeyHandleInvalid,
        ),
        (
            "decrypt with an EC key",
            hsm.c_decrypt(s, &oaep, ec_private, &wrapped).map(drop),
            Ckr::KeyTypeInconsistent,
        ),
        (
            "ECDSA with an RSA key",
            hsm.c_sign(s, &Mechanism::Ecdsa, private, &digest).map(drop),
            Ckr::KeyTypeInconsistent,
        ),
        (
            "wrap a private key",
            hsm.c_wrap_key(s, &Mechanism::AesKeyWrapKwp, kek, private)
                .map(drop),
            Ckr::KeyNotWrappable,
        ),
        (
            "wrap a non-extractable key",
            hsm.c_wrap_key(s, &Mechanism::AesKeyWrapKwp, kek, locked_in)
                .map(drop),
            Ckr::KeyUnextractable,
        ),
        (
            "ECDSA used to decrypt",
            hsm.c_decrypt(s, &Mechanism::Ecdsa, private, &wrapped)
                .map(drop),
            Ckr::MechanismInvalid,
        ),
        (
            "generate AES with EC mechanism",
            hsm.c_generate_key(s, &Mechanism::EcKeyPairGen, &[])
                .map(drop),
            Ckr::MechanismInvalid,
        ),
        (
            "OAEP hash/MGF mismatch",
            hsm.c_decrypt(
                s,
                &Mechanism::RsaPkcsOaep(OaepParams {
                    hash: HashAlg::Sha256,
                    mgf: Mgf::Mgf1Sha1,
                    source_data: vec![],
                }),
                private,
                &wrapped,
            )
            .map(drop),
            Ckr::MechanismParamInvalid,
        ),
        (
            "OAEP SHA-512",
            hsm.c_decrypt(
                s,
                &Mechanism::RsaPkcsOaep(OaepParams {
                    hash: HashAlg::Sha512,
                    mgf: Mgf::Mgf1Sha512,
                    source_data: vec![],
                }),
                private,
                &wrapped,
            )
            .map(drop),
            Ckr::MechanismParamInvalid,
        ),
        (
            "OAEP with a label",
            hsm.c_encrypt(
                s,
                &Mechanism::RsaPkcsOaep(OaepParams {
                    source_data: b"label".to_vec(),
                    ..OaepParams::sha1()
                }),
                public,
                b"x",
            )
            .map(drop),
            Ckr::MechanismParamInvalid,
        ),
        (
            "PSS salt 20",
            hsm.c_sign(
                s,
                &Mechanism::RsaPkcsPss(PssParams {
                    salt_len_bytes: 20,
                    ..PssParams::sha256()
                }),
                private,
                &digest,
            )
            .map(drop),
            Ckr::MechanismParamInvalid,
        ),
        (
            "attributes of an unknown object",
            hsm.c_get_attribute_value(s, ObjectHandle(424_242), &[AttributeType::Label])
                .map(drop),
            Ckr::ObjectHandleInvalid,
        ),
        (
            "destroy an unknown object",
            hsm.c_destroy_object(s, ObjectHandle(424_242)),
            Ckr::ObjectHandleInvalid,
        ),
        (
            "unknown session",
            hsm.c_find_objects(SessionHandle(777), &[]).map(drop),
            Ckr::SessionHandleInvalid,
        ),
        (
            "token key in an RO session",
            hsm.c_generate_key(ro, &Mechanism::AesKeyGen, &[Attribute::Token(true)])
                .map(drop),
            Ckr::SessionReadOnly,
        ),
        (
            "destroy a token key in an RO session",
            hsm.c_destroy_object(ro, private),
            Ckr::SessionReadOnly,
        ),
        (
            "init PIN in an RO session",
            hsm.c_set_pin(ro, USER_PIN, "another-pin"),
            Ckr::SessionReadOnly,
        ),
        (
            "bad ECDSA signature",
            hsm.c_verify(s, &Mechanism::Ecdsa, ec_public, &digest, &[1; 64]),
            Ckr::SignatureInvalid,
        ),
        (
            "short RSA signature",
            hsm.c_verify(s, &Mechanism::Sha256RsaPkcs, public, b"m", &[1; 10]),
            Ckr::SignatureLenRange,
        ),
        (
            "unknown slot",
            hsm.c_open_session(SlotId(9), true).map(drop),
            Ckr::SlotIdInvalid,
        ),
        (
            "uninitialised token",
            hsm.c_open_session(SlotId(1), true).map(drop),
            Ckr::TokenNotRecognized,
        ),
        (
            "RSA without MODULUS_BITS",
            hsm.c_generate_key_pair(s, &Mechanism::RsaPkcsKeyPairGen, &[], &[])
                .map(drop),
            Ckr::TemplateIncomplete,
        ),
        (
            "EC without EC_PARAMS",
            hsm.c_generate_key_pair(s, &Mechanism::EcKeyPairGen, &[], &[])
                .map(drop),
            Ckr::TemplateIncomplete,
        ),
        (
            "AES template says RSA",
            hsm.c_generate_key(
                s,
                &Mechanism::AesKeyGen,
                &[Attribute::KeyType(KeyType::Rsa)],
            )
            .map(drop),
            Ckr::TemplateInconsistent,
        ),
        (
            "template gives a VALUE",
            hsm.c_generate_key(s, &Mechanism::AesKeyGen, &[Attribute::Value(vec![0; 32])])
                .map(drop),
            Ckr::TemplateInconsistent,
        ),
        (
            "P-384 requested",
            hsm.c_generate_key_pair(
                s,
                &Mechanism::EcKeyPairGen,
                &[Attribute::EcParams(vec![
                    0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22,
                ])],
                &[],
            )
            .map(drop),
            Ckr::CurveNotSupported,
        ),
        (
            "user logs in twice",
            hsm.c_login(s, UserType::User, USER_PIN),
            Ckr::UserAlreadyLoggedIn,
        ),
        (
            "SO while user is in",
            hsm.c_login(s, UserType::So, SO_PIN),
            Ckr::UserAnotherAlreadyLoggedIn,
        ),
        (
            "context-specific login",
            hsm.c_login(s, UserType::ContextSpecific, USER_PIN),
            Ckr::UserTypeInvalid,
        ),
        (
            "init PIN as user",
            hsm.c_init_pin(s, "another-pin"),
            Ckr::UserNotLoggedIn,
        ),
        (
            "too short PIN",
            hsm.c_set_pin(s, USER_PIN, "12"),
            Ckr::PinLenRange,
        ),
        (
            "AES-KW blob of wrong length",
            hsm.c_unwrap_key(s, &Mechanism::AesKeyWrap, kek, &kw_blob[..30], &[])
                .map(drop),
            Ckr::WrappedKeyLenRange,
        ),
        (
            "AES-KW integrity failure",
            hsm.c_unwrap_key(s, &Mechanism::AesKeyWrap, kek, &kw_bad, &[])
                .map(drop),
            Ckr::WrappedKeyInvalid,
        ),
        (
            "OAEP-wrapped key of wrong length",
            hsm.c_unwrap_key(s, &oaep, private, &wrapped[..100], &[])
                .map(drop),
            Ckr::WrappedKeyLenRange,
        ),
        (
            "OAEP-wrapped key corrupted",
            hsm.c_unwrap_key(s, &oaep, private, &corrupted, &[])
                .map(drop),
            Ckr::WrappedKeyInvalid,
        ),
        (
            "wrap with an unknown key",
            hsm.c_wrap_key(s, &Mechanism::AesKeyWrap, ObjectHandle(5555), kek)
                .map(drop),
            Ckr::WrappingKeyHandleInvalid,
        ),
        (
            "wrap with an EC key",
            hsm.c_wrap_key(s, &Mechanism::AesKeyWrap, ec_private, kek)
                .map(drop),
            Ckr::WrappingKeyTypeInconsistent,
        ),
        (
            "unwrap with an unknown key",
            hsm.c_unwrap_key(s, &oaep, ObjectHandle(5555), &wrapped, &[])
                .map(drop),
            Ckr::UnwrappingKeyHandleInvalid,
        ),
        (
            "unwrap with an AES key under OAEP",
            hsm.c_unwrap_key(s, &oaep, kek, &wrapped, &[]).map(drop),
            Ckr::UnwrappingKeyTypeInconsistent,
        ),
        (
            "SIGN on a public key",
            hsm.c_generate_key_pair(
                s,
                &Mechanism::EcKeyPairGen,
                &[
                    Attribute::EcParams(P256_EC_PARAMS_DER.to_vec()),
                    Attribute::Sign(true),
                ],
                &[],
            )
            .map(drop),
            Ckr::AttributeTypeInvalid,
        ),
    ];
    for (what, result, expected) in cases {
        assert_eq!(result, Err(expected), "{what}");
    }
}

#[test]
fn key_function_not_permitted() {
    let (_dir, hsm, s) = setup();
    let (public, private) = rsa_pair(&hsm, s, &[Attribute::Decrypt(false)]);
    let wrapped = hsm
        .c_encrypt(s, &Mechanism::rsa_oaep_sha1(), public, b"k")
        .unwrap();
    assert_eq!(
        hsm.c_decrypt(s, &Mechanism::rsa_oaep_sha1(), private, &wrapped),
        Err(Ckr::KeyFunctionNotPermitted)
    );
    hsm.c_set_attribute_value(s, private, &[Attribute::Decrypt(true)])
        .unwrap();
    hsm.c_decrypt(s, &Mechanism::rsa_oaep_sha1(), private, &wrapped)
        .unwrap();
}

#[test]
fn user_not_logged_in_for_private_keys() {
    let (_dir, hsm, s) = setup();
    let (public, private) = rsa_pair(&hsm, s, &[]);
    let wrapped = hsm
        .c_encrypt(s, &Mechanism::rsa_oaep_sha1(), public, b"k")
        .unwrap();
    hsm.c_logout(s).unwrap();
    assert_eq!(
        hsm.c_decrypt(s, &Mechanism::rsa_oaep_sha1(), private, &wrapped),
        Err(Ckr::UserNotLoggedIn)
    );
    assert_eq!(
        hsm.c_generate_key(s, &Mechanism::AesKeyGen, &[]),
        Err(Ckr::UserNotLoggedIn)
    );
    assert_eq!(hsm.c_logout(s), Err(Ckr::UserNotLoggedIn));
    // The public key still works without a login.
    hsm.c_encrypt(s, &Mechanism::rsa_oaep_sha1(), public, b"k")
        .unwrap();
}

#[test]
fn session_and_token_state_codes() {
    let dir = tempfile::tempdir().unwrap();
    let hsm = open(dir.path());
    hsm.c_init_token(SLOT, SO_PIN, "t").unwrap();
    let ro = hsm.c_open_session(SLOT, false).unwrap();
    assert_eq!(hsm.c_init_token(SLOT, SO_PIN, "t"), Err(Ckr::SessionExists));
    assert_eq!(
        hsm.c_login(ro, UserType::So, SO_PIN),
        Err(Ckr::SessionReadOnlyExists)
    );
    assert_eq!(
        hsm.c_login(ro, UserType::User, USER_PIN),
        Err(Ckr::UserPinNotInitialized)
    );
    hsm.c_close_session(ro).unwrap();
    assert_eq!(hsm.c_close_session(ro), Err(Ckr::SessionHandleInvalid));
    assert_eq!(
        hsm.c_init_token(SLOT, "wrong-so-pin", "t"),
        Err(Ckr::PinIncorrect)
    );
    assert_eq!(
        hsm.c_init_token(SLOT, SO_PIN, &"x".repeat(33)),
        Err(Ckr::ArgumentsBad)
    );
    let small = ModuleConfig {
        sessions_max: 1,
        objects_max: 1,
        ..config()
    };
    let dir2 = tempfile::tempdir().unwrap();
    let hsm = Module::open(dir2.path(), small, RandomSource::from_seed([2; 32])).unwrap();
    hsm.c_init_token(SLOT, SO_PIN, "t").unwrap();
    let s = hsm.c_open_session(SLOT, true).unwrap();
    assert_eq!(hsm.c_open_session(SLOT, true), Err(Ckr::SessionCount));
    hsm.c_login(s, UserType::So, SO_PIN).unwrap();
    hsm.c_init_pin(s, USER_PIN).unwrap();
    hsm.c_logout(s).unwrap();
    hsm.c_login(s, UserType::User, USER_PIN).unwrap();
    hsm.c_generate_key(s, &Mechanism::AesKeyGen, &[]).unwrap();
    assert_eq!(
        hsm.c_generate_key(s, &Mechanism::AesKeyGen, &[]),
        Err(Ckr::DeviceMemory)
    );
}

/// The module's `CKA_MODULUS` of a new RSA pair, on a fresh token whose random source is `seed`.
fn generated_modulus(seed: [u8; 32]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let hsm = Module::open(dir.path(), config(), RandomSource::from_seed(seed)).unwrap();
    let session = user_session(&hsm, "test");
    let (public, _private) = rsa_pair(&hsm, session, &[]);
    match &hsm
        .c_get_attribute_value(session, public, &[AttributeType::Modulus])
        .unwrap()[..]
    {
        [Attribute::Modulus(n)] => n.clone(),
        other => panic!("expected the modulus, got {other:?}"),
    }
}

#[test]
fn rsa_key_pairs_come_from_the_seeded_source() {
    let first = generated_modulus([1; 32]);
    assert_eq!(first.len(), 256);
    assert_eq!(generated_modulus([1; 32]), first, "same seed, same key");
    assert_ne!(
        generated_modulus([2; 32]),
        first,
        "another seed, another key"
    );
}
