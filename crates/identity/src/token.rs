//! ES256 JWT access tokens: the [`Authority`] that signs them and the [`TokenVerifier`] that
//! checks them.
//!
//! Tokens have Entra ID's shape: header `{alg: ES256, typ: JWT, kid}`, claims `{iss, aud, tid,
//! oid, sub, appid, iat, nbf, exp}` with `iss = https://sts.windows.net/{tid}/` and times in
//! seconds of simulated time. The signature is ECDSA P-256 over SHA-256 in JWS form (`r || s`,
//! 64 bytes); p256 signs deterministically (RFC 6979), so the same run gives the same tokens.
//!
//! The verifier is separate from the authority and can be built from the authority's public
//! JWKs alone, so a service in another process verifies without ever holding the signing key.
//! Each refusal has its own [`VerifyError`] variant because Key Vault answers each with its own
//! Azure message (AKV10022 audience, AKV10032 issuer, S2S12086 expiry, ...). Nothing here reads a
//! clock: `now` is an argument.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use cmksim_sim::lru::Lru;
use cmksim_sim::SimTime;

use crate::directory::Principal;

/// The audiences of the simulated Azure world.
pub mod audience {
    /// Key Vault data plane (keys and their operations).
    pub const VAULT: &str = "https://vault.azure.net";
    /// Azure Resource Manager (vaults, access policies, clusters).
    pub const MANAGEMENT: &str = "https://management.azure.com";
    /// Azure Monitor: the Logs Ingestion API.
    pub const MONITOR: &str = "https://monitor.azure.com";
    /// The Logs Query API (Log Analytics).
    pub const LOG_ANALYTICS: &str = "https://api.loganalytics.io";
    /// Every audience the authority issues tokens for.
    pub const ALL: [&str; 4] = [VAULT, MANAGEMENT, MONITOR, LOG_ANALYTICS];
}

/// Lifetime of a token when the caller asks for none (Entra ID issues 60–90 minute tokens).
pub const DEFAULT_TOKEN_LIFETIME_SECONDS: u64 = 3_600;
/// Longest lifetime the authority grants, in simulated seconds: 90 days, so that a token the
/// HTTPS front door announces as valid for one wall-clock hour still fits at a time scale of
/// 2,160x (a one-hour token lasts `3600 × time scale` simulated seconds).
pub const MAX_TOKEN_LIFETIME_SECONDS: u64 = 90 * 86_400;
/// Clock skew tolerated on `nbf` and `exp` (Microsoft.IdentityModel's default is 5 minutes).
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 300;
/// Longest token accepted by the verifier, so that parsing is bounded.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Most tokens a verifier remembers as signature-checked ([`TokenVerifier`]); at most
/// [`MAX_TOKEN_BYTES`] each plus their claims, so the cache stays within about 10 MiB.
pub const VERIFIED_TOKENS_MAX: usize = 1_024;

/// The issuer URL of a tenant, as Entra ID v1 tokens carry it.
pub fn issuer_for(tenant_id: &str) -> String {
    format!("https://sts.windows.net/{tenant_id}/")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub tid: String,
    pub oid: String,
    pub sub: String,
    pub appid: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

/// A public signing key in JWK form (EC P-256).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kid: String,
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub y: String,
}

/// The token signer. Holds the private key; everything it hands out is public.
///
/// It keeps one [`TokenVerifier`] for its own key, and [`Authority::verifier`] hands out clones
/// of it, which share its remembered tokens: a service asking for the verifier on every call
/// (the identity service and its in-process guard do) still checks each token's signature once,
/// not once per call.
pub struct Authority {
    signing_key: SigningKey,
    kid: String,
    verifier: TokenVerifier,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").field("kid", &self.kid).finish()
    }
}

/// The key id: the first 16 bytes of SHA-256 over the uncompressed public point, base64url.
fn kid_of(verifying_key: &VerifyingKey) -> String {
    let point = verifying_key.to_encoded_point(false);
    let digest = ring::digest::digest(&ring::digest::SHA256, point.as_bytes());
    B64.encode(&digest.as_ref()[..16])
}

impl Authority {
    /// A new authority with a fresh P-256 key from `rng`.
    pub fn generate(rng: &mut (impl rand::RngCore + rand::CryptoRng)) -> Authority {
        Authority::with_key(SigningKey::random(rng))
    }

    fn with_key(signing_key: SigningKey) -> Authority {
        let kid = kid_of(signing_key.verifying_key());
        let mut keys = BTreeMap::new();
        let point = signing_key.verifying_key().to_encoded_point(false);
        keys.insert(kid.clone(), point.as_bytes().to_vec());
        Authority {
            signing_key,
            kid,
            verifier: TokenVerifier::with_keys(keys),
        }
    }

    /// Restores an authority from its 32-byte private scalar (see [`Authority::secret_scalar`]).
    pub fn from_secret_scalar(bytes: &[u8]) -> Result<Authority, VerifyError> {
        let signing_key = SigningKey::from_slice(bytes)
            .map_err(|_| VerifyError::Malformed("invalid P-256 private scalar".into()))?;
        Ok(Authority::with_key(signing_key))
    }

    /// The private scalar, for the store only.
    pub fn secret_scalar(&self) -> zeroize::Zeroizing<Vec<u8>> {
        zeroize::Zeroizing::new(self.signing_key.to_bytes().to_vec())
    }

    /// The id of the signing key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Jwk {
        let point = self.signing_key.verifying_key().to_encoded_point(false);
        Jwk {
            kid: self.kid.clone(),
            kty: "EC".into(),
            crv: "P-256".into(),
            x: B64.encode(point.x().map(|x| &x[..]).unwrap_or_default()),
            y: B64.encode(point.y().map(|y| &y[..]).unwrap_or_default()),
        }
    }

    /// A verifier for this authority's tokens: a clone of its one verifier, sharing the tokens
    /// it remembers.
    pub fn verifier(&self) -> TokenVerifier {
        self.verifier.clone()
    }

    /// Issues a token for `principal` and `aud`, valid from `now` for `lifetime_seconds` (0 =
    /// default, capped at the maximum). Returns the token and its expiry.
    pub fn issue(
        &self,
        principal: &Principal,
        aud: &str,
        now: SimTime,
        lifetime_seconds: u64,
    ) -> (String, SimTime) {
        let lifetime = match lifetime_seconds {
            0 => DEFAULT_TOKEN_LIFETIME_SECONDS,
            s => s.min(MAX_TOKEN_LIFETIME_SECONDS),
        } as i64;
        let now_s = now.0.div_euclid(1000);
        let claims = Claims {
            iss: issuer_for(&principal.tenant_id),
            aud: aud.to_string(),
            tid: principal.tenant_id.clone(),
            oid: principal.object_id.clone(),
            sub: principal.object_id.clone(),
            appid: principal.app_id.clone(),
            iat: now_s,
            nbf: now_s,
            exp: now_s + lifetime,
        };
        (self.sign(&claims), SimTime((now_s + lifetime) * 1000))
    }

    /// Signs arbitrary claims (tests use it to build tokens an honest issuer would not).
    pub fn sign(&self, claims: &Claims) -> String {
        let header = Header {
            alg: "ES256".into(),
            typ: "JWT".into(),
            kid: self.kid.clone(),
        };
        // Serialising plain structs of strings and integers cannot fail.
        let header_json = serde_json::to_vec(&header).unwrap_or_default();
        let claims_json = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!("{}.{}", B64.encode(header_json), B64.encode(claims_json));
        let signature: Signature = self.signing_key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(signature.to_bytes()))
    }
}

/// Why a token was refused. Each has its own Azure message at the Key Vault edge.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("unknown signing key {kid:?}")]
    UnknownKid { kid: String, encoded_header: String },
    #[error("the token signature is invalid")]
    InvalidSignature,
    #[error("invalid audience: expected {expected}, found {found}")]
    WrongAudience { expected: String, found: String },
    #[error("invalid issuer: expected {expected}, found {found}")]
    WrongTenant { expected: String, found: String },
    #[error("token expired at {exp_s}, now {now_s}")]
    Expired { exp_s: i64, now_s: i64 },
    #[error("token not valid before {nbf_s}, now {now_s}")]
    NotYetValid { nbf_s: i64, now_s: i64 },
}

/// What a verified token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    pub claims: Claims,
}

/// Checks tokens against a set of public keys.
///
/// Keys are validated as P-256 points with p256 when added, and kept as uncompressed SEC1 bytes:
/// signatures are checked with aws-lc's constant-time P-256, about ten times faster than p256's
/// verification, which matters because every Key Vault call verifies a token.
///
/// Verified tokens are remembered (at most [`VERIFIED_TOKENS_MAX`], least recently used evicted,
/// [`cmksim_sim::lru::Lru`]), keyed by the token's exact text: a token is immutable and so are
/// the verifier's keys, so the shape, key id and signature checks of a remembered token would
/// give the same answer again and are skipped. Audience, tenant, expiry and not-before are
/// checked on every call against that call's `now`, so an expired token is refused exactly as
/// without the cache (and forgotten). Clones share the cache (they share the keys too).
#[derive(Clone, Debug)]
pub struct TokenVerifier {
    keys: BTreeMap<String, Vec<u8>>,
    verified: Arc<VerifiedTokens>,
}

/// Claims of tokens whose signature checked, by token text. Its `Debug` shows only the count:
/// the keys are bearer tokens.
struct VerifiedTokens(Mutex<Lru<Claims>>);

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.0.lock().map(|c| c.len()).unwrap_or_default();
        write!(f, "VerifiedTokens({len})")
    }
}

fn decode_part(part: &str, what: &str) -> Result<Vec<u8>, VerifyError> {
    B64.decode(part)
        .map_err(|_| VerifyError::Malformed(format!("the {what} is not base64url")))
}

impl TokenVerifier {
    /// A verifier from published JWKs (e.g. `GetSigningKeys` of another process).
    pub fn from_jwks(jwks: &[Jwk]) -> Result<TokenVerifier, VerifyError> {
        let mut keys = BTreeMap::new();
        for jwk in jwks.iter().take(64) {
            if jwk.kty != "EC" || jwk.crv != "P-256" {
                return Err(VerifyError::Malformed(format!(
                    "JWK {} is not an EC P-256 key",
                    jwk.kid
                )));
            }
            let x = decode_part(&jwk.x, "JWK x")?;
            let y = decode_part(&jwk.y, "JWK y")?;
            if x.len() != 32 || y.len() != 32 {
                return Err(VerifyError::Malformed(
                    "JWK coordinates must be 32 bytes".into(),
                ));
            }
            let mut sec1 = Vec::with_capacity(65);
            sec1.push(4u8);
            sec1.extend_from_slice(&x);
            sec1.extend_from_slice(&y);
            VerifyingKey::from_sec1_bytes(&sec1)
                .map_err(|_| VerifyError::Malformed("JWK is not a point on P-256".into()))?;
            keys.insert(jwk.kid.clone(), sec1);
        }
        Ok(TokenVerifier::with_keys(keys))
    }

    fn with_keys(keys: BTreeMap<String, Vec<u8>>) -> TokenVerifier {
        TokenVerifier {
            keys,
            verified: Arc::new(VerifiedTokens(Mutex::new(Lru::new(VERIFIED_TOKENS_MAX)))),
        }
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, Lru<Claims>> {
        self.verified.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The same verifier remembering at most `capacity` tokens (tests of the bound).
    #[cfg(test)]
    fn with_cache_capacity(self, capacity: usize) -> TokenVerifier {
        TokenVerifier {
            verified: Arc::new(VerifiedTokens(Mutex::new(Lru::new(capacity)))),
            ..self
        }
    }

    /// How many verified tokens are remembered (at most [`VERIFIED_TOKENS_MAX`]).
    pub fn remembered_tokens(&self) -> usize {
        self.remembered().len()
    }

    /// Verifies `token` for `expected_audience` (and, when given, `expected_tenant`) at `now`.
    /// Checks in this order: shape, key id, signature, audience, tenant, expiry, not-before.
    pub fn verify(
        &self,
        token: &str,
        expected_audience: &str,
        expected_tenant: Option<&str>,
        now: SimTime,
    ) -> Result<VerifiedToken, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Malformed("the token is too long".into()));
        }
        let remembered = self.remembered().get(token);
        let claims = match remembered {
            Some(claims) => Claims::clone(&claims),
            None => {
                let claims = self.verify_signature(token)?;
                self.remembered().insert(token, Arc::new(claims.clone()));
                claims
            }
        };
        let checked = check_claims(claims, expected_audience, expected_tenant, now);
        if matches!(checked, Err(VerifyError::Expired { .. })) {
            // Expired for good once time has passed it: no use remembering it (a caller with
            // an earlier `now` only pays the signature check again).
            self.remembered().remove(token);
        }
        checked
    }

    /// Shape, key id and signature: what depends on the token and the keys alone. Returns the
    /// claims, not yet checked against audience, tenant or time.
    fn verify_signature(&self, token: &str) -> Result<Claims, VerifyError> {
        let parts: Vec<&str> = token.split('.').collect();
        let [header_b64, claims_b64, signature_b64] = parts[..] else {
            return Err(VerifyError::Malformed(
                "a JWT has three dot-separated parts".into(),
            ));
        };
        let header: Header = serde_json::from_slice(&decode_part(header_b64, "header")?)
            .map_err(|_| VerifyError::Malformed("the header is not a JWT header".into()))?;
        if header.alg != "ES256" {
            return Err(VerifyError::Malformed(format!(
                "unsupported alg {:?}",
                header.alg
            )));
        }
        let key = self
            .keys
            .get(&header.kid)
            .ok_or_else(|| VerifyError::UnknownKid {
                kid: header.kid.clone(),
                encoded_header: header_b64.to_string(),
            })?;
        let signature_bytes = decode_part(signature_b64, "signature")?;
        if signature_bytes.len() != 64 {
            return Err(VerifyError::InvalidSignature);
        }
        let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
            key,
        )
        .verify(signing_input.as_bytes(), &signature_bytes)
        .map_err(|_| VerifyError::InvalidSignature)?;
        serde_json::from_slice(&decode_part(claims_b64, "claims")?)
            .map_err(|_| VerifyError::Malformed("the claims are not access-token claims".into()))
    }
}

/// Audience, tenant, expiry and not-before of signature-checked `claims`, at `now`.
fn check_claims(
    claims: Claims,
    expected_audience: &str,
    expected_tenant: Option<&str>,
    now: SimTime,
) -> Result<VerifiedToken, VerifyError> {
    if claims.aud.trim_end_matches('/') != expected_audience.trim_end_matches('/')
        || claims.aud.ends_with('/')
    {
        return Err(VerifyError::WrongAudience {
            expected: expected_audience.to_string(),
            found: claims.aud,
        });
    }
    let issuer_consistent = claims.iss == issuer_for(&claims.tid);
    if let Some(tenant) = expected_tenant {
        if claims.tid != tenant || !issuer_consistent {
            return Err(VerifyError::WrongTenant {
                expected: issuer_for(tenant),
                found: claims.iss,
            });
        }
    } else if !issuer_consistent {
        return Err(VerifyError::Malformed(
            "the issuer does not match the tenant".into(),
        ));
    }
    let now_s = now.0.div_euclid(1000);
    if now_s >= claims.exp + MAX_CLOCK_SKEW_SECONDS {
        return Err(VerifyError::Expired {
            exp_s: claims.exp,
            now_s,
        });
    }
    if now_s + MAX_CLOCK_SKEW_SECONDS < claims.nbf {
        return Err(VerifyError::NotYetValid {
            nbf_s: claims.nbf,
            now_s,
        });
    }
    Ok(VerifiedToken { claims })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{Directory, PrincipalKind};
    use cmksim_sim::SeedTree;

    struct Fixture {
        authority: Authority,
        principal: Principal,
        tenant: String,
    }

    fn fixture(seed: u64) -> Fixture {
        let tree = SeedTree::new(seed);
        let mut rng = tree.source("identity");
        let mut d = Directory::default();
        let tenant = d.create_tenant("t", "", &mut rng).unwrap().tenant_id;
        let (principal, _) = d
            .create_principal(&tenant, "app", PrincipalKind::ServicePrincipal, &mut rng)
            .unwrap();
        let authority = Authority::generate(&mut tree.source("identity/signing-key"));
        Fixture {
            authority,
            principal,
            tenant,
        }
    }

    const NOW: SimTime = SimTime::DEFAULT_EPOCH;

    #[test]
    fn valid_token_verifies_from_authority_and_from_jwks() {
        let f = fixture(1);
        let (token, exp) = f.authority.issue(&f.principal, audience::VAULT, NOW, 0);
        assert_eq!(exp, NOW.add(std::time::Duration::from_secs(3600)));
        let v = f
            .authority
            .verifier()
            .verify(&token, audience::VAULT, Some(&f.tenant), NOW)
            .unwrap();
        assert_eq!(v.claims.oid, f.principal.object_id);
        assert_eq!(
            v.claims.iss,
            format!("https://sts.windows.net/{}/", f.tenant)
        );
        let remote = TokenVerifier::from_jwks(&[f.authority.jwk()]).unwrap();
        assert!(remote.verify(&token, audience::VAULT, None, NOW).is_ok());
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["typ"], "JWT");
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let f = fixture(1);
        let v = f.authority.verifier();
        for bad in ["", "abc", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(
                matches!(
                    v.verify(bad, audience::VAULT, None, NOW),
                    Err(VerifyError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_kid_is_refused() {
        let f = fixture(1);
        let other = fixture(2);
        let (token, _) = other.authority.issue(&f.principal, audience::VAULT, NOW, 0);
        assert!(matches!(
            f.authority
                .verifier()
                .verify(&token, audience::VAULT, None, NOW),
            Err(VerifyError::UnknownKid { .. })
        ));
    }

    #[test]
    fn forged_signature_is_refused() {
        let f = fixture(1);
        let (token, _) = f.authority.issue(&f.principal, audience::VAULT, NOW, 0);
        // Change the claims (claim another principal) but keep the original signature.
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut claims: Claims = serde_json::from_slice(&B64.decode(&parts[1]).unwrap()).unwrap();
        claims.oid = "00000000-0000-4000-8000-000000000000".into();
        parts[1] = B64.encode(serde_json::to_vec(&claims).unwrap());
        let forged = parts.join(".");
        assert_eq!(
            f.authority
                .verifier()
                .verify(&forged, audience::VAULT, None, NOW),
            Err(VerifyError::InvalidSignature)
        );
        // A token signed by another key that claims this authority's kid.
        let other = fixture(2);
        let mut forged2: Vec<String> = other
            .authority
            .issue(&f.principal, audience::VAULT, NOW, 0)
            .0
            .split('.')
            .map(String::from)
            .collect();
        forged2[0] = token.split('.').next().unwrap().to_string();
        assert_eq!(
            f.authority
                .verifier()
                .verify(&forged2.join("."), audience::VAULT, None, NOW),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn wrong_audience_is_refused() {
        let f = fixture(1);
        let (token, _) = f
            .authority
            .issue(&f.principal, audience::MANAGEMENT, NOW, 0);
        assert_eq!(
            f.authority
                .verifier()
                .verify(&token, audience::VAULT, None, NOW),
            Err(VerifyError::WrongAudience {
                expected: audience::VAULT.into(),
                found: audience::MANAGEMENT.into()
            })
        );
    }

    #[test]
    fn wrong_tenant_is_refused() {
        let f = fixture(1);
        let (token, _) = f.authority.issue(&f.principal, audience::VAULT, NOW, 0);
        let other_tenant = "11111111-1111-4111-8111-111111111111";
        assert_eq!(
            f.authority
                .verifier()
                .verify(&token, audience::VAULT, Some(other_tenant), NOW),
            Err(VerifyError::WrongTenant {
                expected: issuer_for(other_tenant),
                found: issuer_for(&f.tenant)
            })
        );
    }

    #[test]
    fn expiry_and_not_before_honour_the_bounded_skew() {
        let f = fixture(1);
        let (token, exp) = f.authority.issue(&f.principal, audience::VAULT, NOW, 600);
        let v = f.authority.verifier();
        let skew = std::time::Duration::from_secs(MAX_CLOCK_SKEW_SECONDS as u64);
        // Inside the skew after expiry: still accepted.
        assert!(v
            .verify(
                &token,
                audience::VAULT,
                None,
                exp.add(skew).sub(std::time::Duration::from_secs(1))
            )
            .is_ok());
        assert!(matches!(
            v.verify(&token, audience::VAULT, None, exp.add(skew)),
            Err(VerifyError::Expired { .. })
        ));
        assert!(v
            .verify(&token, audience::VAULT, None, NOW.sub(skew))
            .is_ok());
        assert!(matches!(
            v.verify(
                &token,
                audience::VAULT,
                None,
                NOW.sub(skew).sub(std::time::Duration::from_secs(1))
            ),
            Err(VerifyError::NotYetValid { .. })
        ));
    }

    #[test]
    fn remembered_tokens_are_bounded_and_still_checked_against_time_and_audience() {
        let f = fixture(1);
        let v = f.authority.verifier().with_cache_capacity(3);
        let tokens: Vec<(String, SimTime)> = (0..5u64)
            .map(|i| {
                f.authority
                    .issue(&f.principal, audience::VAULT, NOW, 600 + i)
            })
            .collect();
        for (token, _) in &tokens {
            v.verify(token, audience::VAULT, None, NOW).unwrap();
        }
        assert_eq!(v.remembered_tokens(), 3);
        // A remembered token is still refused for another audience ...
        let (token, exp) = &tokens[4];
        assert!(matches!(
            v.verify(token, audience::MANAGEMENT, None, NOW),
            Err(VerifyError::WrongAudience { .. })
        ));
        // ... and once expired, refused and forgotten.
        let skew = std::time::Duration::from_secs(MAX_CLOCK_SKEW_SECONDS as u64);
        assert!(matches!(
            v.verify(token, audience::VAULT, None, exp.add(skew)),
            Err(VerifyError::Expired { .. })
        ));
        assert_eq!(v.remembered_tokens(), 2);
        // A forged token is never remembered.
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(v.verify(&forged, audience::VAULT, None, NOW).is_err());
        assert_eq!(v.remembered_tokens(), 2);
        // Clones share what was remembered.
        assert_eq!(v.clone().remembered_tokens(), 2);
    }

    #[test]
    fn verifiers_of_one_authority_share_the_tokens_they_checked() {
        let f = fixture(4);
        let (token, _) = f.authority.issue(&f.principal, audience::VAULT, NOW, 0);
        f.authority
            .verifier()
            .verify(&token, audience::VAULT, None, NOW)
            .unwrap();
        // A verifier asked for later (as the identity service does per call) knows it already.
        assert_eq!(f.authority.verifier().remembered_tokens(), 1);
    }

    #[test]
    fn authority_round_trips_through_its_scalar() {
        let f = fixture(3);
        let restored = Authority::from_secret_scalar(&f.authority.secret_scalar()).unwrap();
        assert_eq!(restored.kid(), f.authority.kid());
        assert_eq!(restored.jwk(), f.authority.jwk());
    }
}
