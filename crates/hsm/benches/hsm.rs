//! Criterion micro-benchmarks of the module's hot paths (`cargo bench -p cmksim-hsm`).
//! The comparison with SoftHSM2 and OpenSSL lives in `cmksim_hsm::bench` (`cmksim bench hsm`).

use cmksim_hsm::{
    Attribute, Mechanism, Module, ModuleConfig, SlotId, UserType, P256_EC_PARAMS_DER,
};
use cmksim_sim::RandomSource;
use criterion::{criterion_group, criterion_main, Criterion};

fn hsm_ops(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let hsm = Module::open(dir.path(), ModuleConfig::default(), RandomSource::Os).expect("open");
    hsm.c_init_token(SlotId(0), "bench-pin", "bench")
        .expect("init token");
    let s = hsm.c_open_session(SlotId(0), true).expect("session");
    hsm.c_login(s, UserType::So, "bench-pin").expect("so login");
    hsm.c_init_pin(s, "bench-pin").expect("init pin");
    hsm.c_logout(s).expect("logout");
    hsm.c_login(s, UserType::User, "bench-pin").expect("login");

    let (public, private) = hsm
        .c_generate_key_pair(
            s,
            &Mechanism::RsaPkcsKeyPairGen,
            &[Attribute::ModulusBits(2048)],
            &[],
        )
        .expect("rsa");
    let oaep = Mechanism::rsa_oaep_sha256();
    let wrapped = hsm.c_encrypt(s, &oaep, public, &[7; 32]).expect("encrypt");
    c.bench_function("rsa2048_oaep_sha256_decrypt", |b| {
        b.iter(|| hsm.c_decrypt(s, &oaep, private, &wrapped))
    });
    c.bench_function("rsa2048_oaep_sha256_encrypt", |b| {
        b.iter(|| hsm.c_encrypt(s, &oaep, public, &[7; 32]))
    });

    let ec_params = Attribute::EcParams(P256_EC_PARAMS_DER.to_vec());
    let (_, ec) = hsm
        .c_generate_key_pair(s, &Mechanism::EcKeyPairGen, &[ec_params], &[])
        .expect("ec");
    c.bench_function("ecdsa_p256_sign", |b| {
        b.iter(|| hsm.c_sign(s, &Mechanism::Ecdsa, ec, &[9; 32]))
    });

    let kek = hsm
        .c_generate_key(s, &Mechanism::AesKeyGen, &[])
        .expect("kek");
    let dek = hsm
        .c_generate_key(s, &Mechanism::AesKeyGen, &[Attribute::Extractable(true)])
        .expect("dek");
    let blob = hsm
        .c_wrap_key(s, &Mechanism::AesKeyWrapKwp, kek, dek)
        .expect("wrap");
    c.bench_function("aes256_kwp_unwrap", |b| {
        b.iter(|| {
            let key = hsm
                .c_unwrap_key(s, &Mechanism::AesKeyWrapKwp, kek, &blob, &[])
                .expect("unwrap");
            hsm.c_destroy_object(s, key).expect("destroy")
        })
    });
}

criterion_group!(benches, hsm_ops);
criterion_main!(benches);
