//! Scratch: per-call overhead of the module vs raw aws-lc, interleaved slices.
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey, OAEP_SHA1_MGF1SHA1};
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use cmksim_hsm::{Attribute, Mechanism, Module, ModuleConfig, SlotId, UserType};
use cmksim_sim::RandomSource;

fn slice(d: Duration, mut f: impl FnMut()) -> (u64, Duration) {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < d { f(); n += 1; }
    (n, start.elapsed())
}

fn main() {
    let rounds: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(10);
    let only = std::env::args().nth(2);
    let dir = tempfile::tempdir().unwrap();
    let hsm = Module::open(dir.path(), ModuleConfig::default(), RandomSource::Os).unwrap();
    hsm.c_init_token(SlotId(0), "pin-12345", "p").unwrap();
    let s = hsm.c_open_session(SlotId(0), true).unwrap();
    hsm.c_login(s, UserType::So, "pin-12345").unwrap();
    hsm.c_init_pin(s, "pin-12345").unwrap();
    hsm.c_logout(s).unwrap();
    hsm.c_login(s, UserType::User, "pin-12345").unwrap();
    let (public, private) = hsm.c_generate_key_pair(s, &Mechanism::RsaPkcsKeyPairGen, &[Attribute::ModulusBits(2048)], &[]).unwrap();
    let mech = Mechanism::rsa_oaep_sha1();
    let wrapped = hsm.c_encrypt(s, &mech, public, &[5; 32]).unwrap();

    let raw = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
    let pkcs8 = raw.as_der().unwrap().as_ref().to_vec();
    let oaep = OaepPrivateDecryptingKey::new(raw.clone()).unwrap();
    let pubk = OaepPublicEncryptingKey::new(raw.public_key()).unwrap();
    let mut ct = vec![0u8; 256];
    let ct = pubk.encrypt(&OAEP_SHA1_MGF1SHA1, &[5; 32], &mut ct, None).unwrap().to_vec();
    let pair = RsaKeyPair::from_pkcs8(&pkcs8).unwrap();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let parsed = OaepPrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(&pkcs8).unwrap()).unwrap();

    let names = ["module c_decrypt", "aws-lc oaep decrypt", "aws-lc pkcs1 sign", "from_pkcs8+decrypt", "parsed-once decrypt"];
    let mut totals = [(0u64, Duration::ZERO); 5];
    let d = Duration::from_millis(250);
    for _ in 0..rounds {
        for (i, total) in totals.iter_mut().enumerate() {
            if let Some(o) = &only { if o != &i.to_string() { continue; } }
            let (n, t) = match i {
                0 => slice(d, || { hsm.c_decrypt(s, &mech, private, &wrapped).unwrap(); }),
                1 => slice(d, || { let mut out = [0u8; 256]; oaep.decrypt(&OAEP_SHA1_MGF1SHA1, &ct, &mut out, None).unwrap(); }),
                2 => slice(d, || { let mut sig = [0u8; 256]; pair.sign(&RSA_PKCS1_SHA256, &rng, b"hello", &mut sig).unwrap(); }),
                4 => slice(d, || { let mut out = [0u8; 256]; parsed.decrypt(&OAEP_SHA1_MGF1SHA1, &ct, &mut out, None).unwrap(); }),
                _ => slice(d, || { let k = PrivateDecryptingKey::from_pkcs8(&pkcs8).unwrap(); let o = OaepPrivateDecryptingKey::new(k).unwrap(); let mut out = [0u8; 256]; o.decrypt(&OAEP_SHA1_MGF1SHA1, &ct, &mut out, None).unwrap(); }),
            };
            total.0 += n; total.1 += t;
        }
    }
    for (name, (n, t)) in names.iter().zip(totals) {
        if n > 0 { println!("{name:<24} {:>8.0} ops/s", n as f64 / t.as_secs_f64()); }
    }
    println!("loadavg {}", std::fs::read_to_string("/proc/loadavg").unwrap().trim());
}
