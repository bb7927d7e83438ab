//! Runs `openssl speed` and reads its ops/s: the reference for the raw primitives.

use std::process::Command;

use super::BenchOp;

/// `openssl speed`'s figures (operations per second).
pub(crate) struct Speed {
    rsa2048: Option<(f64, f64)>,
    rsa3072: Option<(f64, f64)>,
    ecdsa_p256_sign: Option<f64>,
}

impl Speed {
    /// The figure comparable with `op`: the private op for decryption, the public op for
    /// encryption; none for AES key wrap and key pair generation (`openssl speed` has no such
    /// rows).
    pub(crate) fn for_op(&self, op: BenchOp) -> Option<f64> {
        match op {
            BenchOp::Rsa2048OaepSha1Decrypt | BenchOp::Rsa2048OaepSha256Decrypt => {
                self.rsa2048.map(|(p, _)| p)
            }
            BenchOp::Rsa3072OaepSha1Decrypt | BenchOp::Rsa3072OaepSha256Decrypt => {
                self.rsa3072.map(|(p, _)| p)
            }
            BenchOp::Rsa2048OaepSha1Encrypt => self.rsa2048.map(|(_, v)| v),
            BenchOp::EcdsaP256Sign => self.ecdsa_p256_sign,
            BenchOp::Aes256KwpUnwrap | BenchOp::Rsa2048KeyPairGen => None,
        }
    }
}

/// Runs `openssl speed -seconds 1 rsa2048 rsa3072 ecdsap256`.
pub(crate) fn speed() -> Result<Speed, String> {
    let output = Command::new("openssl")
        .args(["speed", "-seconds", "1", "rsa2048", "rsa3072", "ecdsap256"])
        .output()
        .map_err(|e| format!("openssl not available ({e}): openssl column left empty"))?;
    if !output.status.success() {
        return Err(format!(
            "openssl speed failed with {}: openssl column left empty",
            output.status
        ));
    }
    Ok(parse(&String::from_utf8_lossy(&output.stdout)))
}

/// The last two numbers of the first line containing `marker` (`sign/s verify/s`).
fn last_two(text: &str, marker: &str) -> Option<(f64, f64)> {
    let line = text.lines().find(|l| l.contains(marker))?;
    let numbers: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match numbers.as_slice() {
        [.., a, b] => Some((*a, *b)),
        _ => None,
    }
}

/// Parses OpenSSL 3.x output: `rsa 2048 bits 0.000570s 0.000017s 1754.0 59011.1` and
/// `256 bits ecdsa (nistp256) 0.0000s 0.0001s 41046.8 13409.7`. OpenSSL >= 3.2 adds
/// encrypt/decrypt columns to RSA rows; the first sign/s column is found by position then.
fn parse(text: &str) -> Speed {
    let rsa = |marker: &str| {
        let line = text.lines().find(|l| l.contains(marker))?;
        let rates: Vec<f64> = line
            .split_whitespace()
            .filter(|w| !w.ends_with('s'))
            .filter_map(|w| w.parse().ok())
            .collect();
        // [bits, sign/s, verify/s] (3.0/3.1) or [bits, sign/s, verify/s, encr/s, decr/s] (3.2+).
        match rates.as_slice() {
            [_, sign, verify, ..] => Some((*sign, *verify)),
            _ => None,
        }
    };
    Speed {
        rsa2048: rsa("rsa 2048 bits"),
        rsa3072: rsa("rsa 3072 bits"),
        ecdsa_p256_sign: last_two(text, "(nistp256)").map(|(sign, _)| sign),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openssl_3_0_output() {
        let text = "                  sign    verify    sign/s verify/s\n\
            rsa 2048 bits 0.000570s 0.000017s   1754.0  59011.1\n\
            rsa 3072 bits 0.001780s 0.000036s    561.8  27777.0\n\
                                      sign    verify    sign/s verify/s\n \
            256 bits ecdsa (nistp256)   0.0000s   0.0001s  41046.8  13409.7\n";
        let speed = parse(text);
        assert_eq!(speed.rsa2048, Some((1754.0, 59011.1)));
        assert_eq!(speed.rsa3072, Some((561.8, 27777.0)));
        assert_eq!(speed.ecdsa_p256_sign, Some(41046.8));
    }
}
