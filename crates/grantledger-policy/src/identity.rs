//! Workload identity: verifying a SPIFFE JWT-SVID or an OIDC ID token
//! against configured issuers and their JWKS files.
//!
//! ```toml
//! [[issuer]]
//! issuer = "https://spire.acme.internal"   # the `iss` the tokens carry
//! audiences = ["grantledger"]              # a token must name at least one
//! jwks_path = "spire.jwks.json"            # relative to this file's directory
//! leeway_s = 30                            # optional, default 0, at most 300
//! trust_domain = "acme.internal"           # optional: `sub` must be a SPIFFE ID in it
//! ```
//!
//! [`Issuers::verify`] takes the time as a value (pure) and checks, in this
//! order: the token's shape (three base64url parts, JSON header and claims,
//! bounded size), the algorithm (`none` is [`RejectionKind::AlgNone`];
//! only RS256, ES256 and EdDSA are accepted, so an HMAC token signed with a
//! public key as its secret is refused before any key is touched), the
//! issuer, the key (by `kid`, or the issuer's only key for that algorithm),
//! the signature, then expiry, not-before and audience. Claims are read only
//! from a token whose signature verified; the raw token is never kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use grantledger_events::Timestamp;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::WorkloadIdentity;

/// The longest token accepted, in bytes.
pub const TOKEN_BYTES_MAX: usize = 16 * 1024;
/// The largest leeway an issuer may configure, in seconds.
pub const LEEWAY_S_MAX: u64 = 300;
/// The most keys one JWKS file may hold.
pub const JWKS_KEYS_MAX: usize = 64;
/// The largest config or JWKS file read, in bytes.
pub const IDENTITY_FILE_BYTES_MAX: usize = 1024 * 1024;
/// The smallest RSA modulus accepted, in bits.
pub const RSA_MODULUS_BITS_MIN: usize = 2048;

/// Why an issuer config or JWKS file was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IdentityConfigError {
    message: String,
}

impl IdentityConfigError {
    fn new(message: impl Into<String>) -> IdentityConfigError {
        IdentityConfigError {
            message: message.into(),
        }
    }

    /// The message, naming the file and the rule.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Why a token was rejected: a kind and a message. The message never holds
/// the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("token rejected ({}): {message}", kind.code())]
pub struct TokenRejection {
    kind: RejectionKind,
    message: String,
}

/// The closed set of reasons a token is rejected; each has its own code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionKind {
    /// Not a JWS compact token, not base64url, not JSON, too large, or a
    /// required claim is missing or of the wrong type.
    Malformed,
    /// `alg: none`: an unsigned token.
    AlgNone,
    /// An algorithm other than RS256, ES256 and EdDSA.
    UnsupportedAlgorithm,
    /// The `iss` is not a configured issuer.
    UnknownIssuer,
    /// No key of the issuer matches the `kid` (or, without a `kid`, the
    /// issuer has no single key for the algorithm).
    UnknownKeyId,
    /// The signature does not verify: forged or altered.
    BadSignature,
    /// `exp` has passed.
    Expired,
    /// `nbf` is still ahead.
    NotYetValid,
    /// No `aud` value is a configured audience.
    WrongAudience,
    /// The `sub` is not a SPIFFE ID of the issuer's trust domain.
    SubjectOutsideTrustDomain,
}

impl RejectionKind {
    /// The stable snake_case code, recorded with the rejection.
    pub fn code(self) -> &'static str {
        match self {
            RejectionKind::Malformed => "malformed",
            RejectionKind::AlgNone => "alg_none",
            RejectionKind::UnsupportedAlgorithm => "unsupported_algorithm",
            RejectionKind::UnknownIssuer => "unknown_issuer",
            RejectionKind::UnknownKeyId => "unknown_key_id",
            RejectionKind::BadSignature => "bad_signature",
            RejectionKind::Expired => "expired",
            RejectionKind::NotYetValid => "not_yet_valid",
            RejectionKind::WrongAudience => "wrong_audience",
            RejectionKind::SubjectOutsideTrustDomain => "subject_outside_trust_domain",
        }
    }
}

impl TokenRejection {
    fn new(kind: RejectionKind, message: impl Into<String>) -> TokenRejection {
        TokenRejection {
            kind,
            message: message.into(),
        }
    }

    /// Why.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The message, naming the offending value (never the token).
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The claims of a verified token: what the ledger records instead of the
/// token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedClaims {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `aud`, sorted and distinct.
    pub audience: Vec<String>,
    /// The SPIFFE ID, when `sub` is one.
    pub spiffe_id: Option<String>,
    /// Its trust domain.
    pub trust_domain: Option<String>,
    /// `exp`, seconds since the epoch.
    pub expires_at_s: i64,
    /// `nbf`, when present.
    pub not_before_s: Option<i64>,
    /// `iat`, when present.
    pub issued_at_s: Option<i64>,
    /// `jti`, when present.
    pub token_id: Option<String>,
    /// The `kid` of the key that verified it, when it had one.
    pub key_id: Option<String>,
    /// `RS256`, `ES256` or `EdDSA`.
    pub algorithm: String,
}

impl VerifiedClaims {
    /// The claims as the policy engine's context sees them.
    pub fn to_workload_identity(&self) -> WorkloadIdentity {
        WorkloadIdentity {
            issuer: self.issuer.clone(),
            subject: self.subject.clone(),
            audience: self.audience.clone(),
            spiffe_id: self.spiffe_id.clone(),
            trust_domain: self.trust_domain.clone(),
        }
    }
}

/// The configured issuers and their keys.
#[derive(Debug)]
pub struct Issuers {
    issuers: BTreeMap<String, Issuer>,
}

#[derive(Debug)]
struct Issuer {
    audiences: Vec<String>,
    leeway_s: i64,
    trust_domain: Option<String>,
    keys: Vec<JwksKey>,
}

/// A public verification key read from a JWKS file, bound to the one
/// algorithm its type allows.
pub struct JwksKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for JwksKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default, rename = "issuer")]
    issuers: Vec<RawIssuer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuer {
    issuer: String,
    audiences: Vec<String>,
    jwks_path: PathBuf,
    #[serde(default)]
    leeway_s: u64,
    #[serde(default)]
    trust_domain: Option<String>,
}

fn read_bounded(path: &Path) -> Result<String, IdentityConfigError> {
    let metadata = std::fs::metadata(path).map_err(|error| {
        IdentityConfigError::new(format!("cannot read `{}`: {error}", path.display()))
    })?;
    if metadata.len() > IDENTITY_FILE_BYTES_MAX as u64 {
        return Err(IdentityConfigError::new(format!(
            "`{}` is `{}` bytes: at most `{IDENTITY_FILE_BYTES_MAX}` are allowed",
            path.display(),
            metadata.len()
        )));
    }
    std::fs::read_to_string(path).map_err(|error| {
        IdentityConfigError::new(format!("cannot read `{}`: {error}", path.display()))
    })
}

impl JwksKey {
    /// Its `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm it verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl Issuers {
    /// Reads an issuer config file and every JWKS file it names (relative
    /// paths are relative to the config file's directory).
    pub fn load(config_path: &Path) -> Result<Issuers, IdentityConfigError> {
        let text = read_bounded(config_path)?;
        let base = config_path.parent().unwrap_or(Path::new("."));
        Issuers::from_toml(&text, base).map_err(|error| {
            IdentityConfigError::new(format!("`{}`: {}", config_path.display(), error.message))
        })
    }

    /// Reads an issuer config from text; JWKS paths are relative to `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Issuers, IdentityConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|error| {
            IdentityConfigError::new(format!(
                "issuer config: {}",
                error.message().trim_end_matches('.')
            ))
        })?;
        let mut issuers = BTreeMap::new();
        for issuer in raw.issuers {
            let name = issuer.issuer;
            if name.is_empty() {
                return Err(IdentityConfigError::new(
                    "an issuer's `issuer` must not be empty",
                ));
            }
            if issuers.contains_key(&name) {
                return Err(IdentityConfigError::new(format!(
                    "issuer `{name}` is configured twice"
                )));
            }
            if issuer.audiences.is_empty() || issuer.audiences.iter().any(String::is_empty) {
                return Err(IdentityConfigError::new(format!(
                    "issuer `{name}`: `audiences` must list at least one non-empty audience: a token for any audience would be accepted otherwise"
                )));
            }
            if issuer.leeway_s > LEEWAY_S_MAX {
                return Err(IdentityConfigError::new(format!(
                    "issuer `{name}`: leeway_s `{}` is above `{LEEWAY_S_MAX}` seconds",
                    issuer.leeway_s
                )));
            }
            let jwks_path = base.join(&issuer.jwks_path);
            let keys = load_jwks(&jwks_path)?;
            issuers.insert(
                name,
                Issuer {
                    audiences: issuer.audiences,
                    leeway_s: issuer.leeway_s as i64,
                    trust_domain: issuer.trust_domain,
                    keys,
                },
            );
        }
        Ok(Issuers { issuers })
    }

    /// Verifies `token` at time `now`. Never panics, whatever the input.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<VerifiedClaims, TokenRejection> {
        use RejectionKind as Kind;
        let malformed = |why: &str| TokenRejection::new(Kind::Malformed, why.to_string());
        if token.len() > TOKEN_BYTES_MAX {
            return Err(TokenRejection::new(
                Kind::Malformed,
                format!(
                    "the token is `{}` bytes: at most `{TOKEN_BYTES_MAX}` are allowed",
                    token.len()
                ),
            ));
        }
        let parts: Vec<&str> = token.trim().split('.').collect();
        let [header_b64, claims_b64, signature_b64] = parts[..] else {
            return Err(malformed(
                "a token is three base64url parts separated by `.`",
            ));
        };
        let header = decode_json_object(header_b64)
            .ok_or_else(|| malformed("the header is not base64url-encoded JSON object"))?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("the header has no `alg` string"))?;
        let algorithm = match alg {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            "EdDSA" => Algorithm::EdDSA,
            other if other.eq_ignore_ascii_case("none") => {
                return Err(TokenRejection::new(
                    Kind::AlgNone,
                    "`alg` is `none`: unsigned tokens are never accepted",
                ));
            }
            other => {
                return Err(TokenRejection::new(
                    Kind::UnsupportedAlgorithm,
                    format!(
                        "`alg` is `{}`: only `RS256`, `ES256` and `EdDSA` are accepted",
                        shorten(other)
                    ),
                ));
            }
        };
        if header.contains_key("crit") {
            return Err(TokenRejection::new(
                Kind::UnsupportedAlgorithm,
                "the header has `crit` extensions, which are not understood",
            ));
        }
        let claims = decode_json_object(claims_b64)
            .ok_or_else(|| malformed("the claims are not a base64url-encoded JSON object"))?;
        let issuer_name = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("claim `iss` (a string) is required"))?;
        let Some(issuer) = self.issuers.get(issuer_name) else {
            return Err(TokenRejection::new(
                Kind::UnknownIssuer,
                format!("issuer `{}` is not configured", shorten(issuer_name)),
            ));
        };
        let kid = header.get("kid").and_then(Value::as_str);
        let key = match kid {
            Some(kid) => issuer
                .keys
                .iter()
                .find(|key| key.kid.as_deref() == Some(kid) && key.algorithm == algorithm)
                .ok_or_else(|| {
                    TokenRejection::new(
                        Kind::UnknownKeyId,
                        format!(
                            "issuer `{issuer_name}` has no `{alg}` key with kid `{}`",
                            shorten(kid)
                        ),
                    )
                })?,
            None => {
                let mut candidates = issuer.keys.iter().filter(|key| key.algorithm == algorithm);
                match (candidates.next(), candidates.next()) {
                    (Some(key), None) => key,
                    _ => {
                        return Err(TokenRejection::new(
                            Kind::UnknownKeyId,
                            format!(
                                "the token has no `kid` and issuer `{issuer_name}` has no single `{alg}` key to use"
                            ),
                        ));
                    }
                }
            }
        };
        if URL_SAFE_NO_PAD.decode(signature_b64).is_err() {
            return Err(malformed("the signature is not base64url"));
        }
        let message = &token.trim()[..header_b64.len() + 1 + claims_b64.len()];
        let verified =
            jsonwebtoken::crypto::verify(signature_b64, message.as_bytes(), &key.key, algorithm)
                .unwrap_or(false);
        if !verified {
            return Err(TokenRejection::new(
                Kind::BadSignature,
                format!(
                    "the signature does not verify with issuer `{issuer_name}`'s key `{}`: the token is forged or altered",
                    key.kid.as_deref().unwrap_or("(no kid)")
                ),
            ));
        }

        // Claims are trusted from here on: the issuer signed them.
        let now_s = now.as_millis().div_euclid(1000);
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|sub| !sub.is_empty())
            .ok_or_else(|| malformed("claim `sub` (a non-empty string) is required"))?;
        let expires_at_s = numeric_date(&claims, "exp")?
            .ok_or_else(|| malformed("claim `exp` is required: every token must expire"))?;
        let not_before_s = numeric_date(&claims, "nbf")?;
        let issued_at_s = numeric_date(&claims, "iat")?;
        if now_s >= expires_at_s.saturating_add(issuer.leeway_s) {
            return Err(TokenRejection::new(
                Kind::Expired,
                format!(
                    "the token expired at `{expires_at_s}` (leeway `{}` s); it is now `{now_s}`",
                    issuer.leeway_s
                ),
            ));
        }
        if let Some(nbf) = not_before_s
            && now_s.saturating_add(issuer.leeway_s) < nbf
        {
            return Err(TokenRejection::new(
                Kind::NotYetValid,
                format!(
                    "the token is not valid before `{nbf}` (leeway `{}` s); it is now `{now_s}`",
                    issuer.leeway_s
                ),
            ));
        }
        let mut audience: Vec<String> = match claims.get("aud") {
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) if many.len() <= crate::context::AUDIENCES_MAX => many
                .iter()
                .map(|value| value.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| malformed("claim `aud` must be a string or a list of strings"))?,
            Some(_) => {
                return Err(malformed(
                    "claim `aud` must be a string or a list of at most 16 strings",
                ));
            }
            None => Vec::new(),
        };
        audience.sort_unstable();
        audience.dedup();
        if !audience.iter().any(|aud| issuer.audiences.contains(aud)) {
            return Err(TokenRejection::new(
                Kind::WrongAudience,
                format!(
                    "audience {} names none of issuer `{issuer_name}`'s configured audiences {}",
                    if audience.is_empty() {
                        "(none)".to_string()
                    } else {
                        audience
                            .iter()
                            .map(|aud| format!("`{}`", shorten(aud)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    issuer
                        .audiences
                        .iter()
                        .map(|aud| format!("`{aud}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let spiffe = parse_spiffe_id(subject);
        if let Some(required) = &issuer.trust_domain
            && spiffe.as_ref().map(|(domain, _)| domain.as_str()) != Some(required.as_str())
        {
            return Err(TokenRejection::new(
                Kind::SubjectOutsideTrustDomain,
                format!(
                    "subject `{}` is not a SPIFFE ID in trust domain `{required}`",
                    shorten(subject)
                ),
            ));
        }
        let (spiffe_id, trust_domain) = match spiffe {
            Some((domain, id)) => (Some(id), Some(domain)),
            None => (None, None),
        };
        Ok(VerifiedClaims {
            issuer: issuer_name.to_string(),
            subject: subject.to_string(),
            audience,
            spiffe_id,
            trust_domain,
            expires_at_s,
            not_before_s,
            issued_at_s,
            token_id: claims
                .get("jti")
                .and_then(Value::as_str)
                .map(str::to_string),
            key_id: key.kid.clone(),
            algorithm: alg.to_string(),
        })
    }
}

fn shorten(text: &str) -> String {
    let cleaned: String = text.chars().filter(|c| !c.is_control()).take(80).collect();
    if text.chars().count() > 80 {
        format!("{cleaned}...")
    } else {
        cleaned
    }
}

fn decode_json_object(part: &str) -> Option<serde_json::Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// A JWT NumericDate (seconds, possibly fractional), floored.
fn numeric_date(
    claims: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<i64>, TokenRejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_i64()
            .or_else(|| {
                value
                    .as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 1e15)
                    .map(|f| f.floor() as i64)
            })
            .map(Some)
            .ok_or_else(|| {
                TokenRejection::new(
                    RejectionKind::Malformed,
                    format!("claim `{name}` must be a number of seconds"),
                )
            }),
    }
}

/// `spiffe://trust-domain/path` → (trust domain, the ID). A SPIFFE ID has
/// a lowercase trust domain and a non-empty path, no query or fragment.
fn parse_spiffe_id(subject: &str) -> Option<(String, String)> {
    let rest = subject.strip_prefix("spiffe://")?;
    let (domain, path) = rest.split_once('/')?;
    let domain_ok = !domain.is_empty()
        && domain
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'));
    let path_ok = !path.is_empty()
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'));
    (domain_ok && path_ok).then(|| (domain.to_string(), subject.to_string()))
}

/// Loads the usable public keys of a JWKS file. Unusable keys are skipped;
/// a file with none is an error listing why each key was refused.
pub fn load_jwks(path: &Path) -> Result<Vec<JwksKey>, IdentityConfigError> {
    let text = read_bounded(path)?;
    let file = path.display();
    let value: Value = serde_json::from_str(&text)
        .map_err(|error| IdentityConfigError::new(format!("JWKS `{file}` is not JSON: {error}")))?;
    let Some(keys) = value.get("keys").and_then(Value::as_array) else {
        return Err(IdentityConfigError::new(format!(
            "JWKS `{file}` has no `keys` list"
        )));
    };
    if keys.len() > JWKS_KEYS_MAX {
        return Err(IdentityConfigError::new(format!(
            "JWKS `{file}` has `{}` keys: at most `{JWKS_KEYS_MAX}` are allowed",
            keys.len()
        )));
    }
    let mut usable = Vec::new();
    let mut refused = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        match usable_key(key) {
            Ok(key) => usable.push(key),
            Err(why) => refused.push(format!("key {index}: {why}")),
        }
    }
    if usable.is_empty() {
        return Err(IdentityConfigError::new(format!(
            "JWKS `{file}` has no usable key ({})",
            if refused.is_empty() {
                "the list is empty".to_string()
            } else {
                refused.join("; ")
            }
        )));
    }
    Ok(usable)
}

fn usable_key(value: &Value) -> Result<JwksKey, String> {
    let object = value.as_object().ok_or("not a JSON object")?;
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        if object.contains_key(private) {
            return Err(format!(
                "holds `{private}`: a JWKS for verification must hold public keys only (a symmetric or private key is refused)"
            ));
        }
    }
    let jwk: Jwk =
        serde_json::from_value(value.clone()).map_err(|error| format!("not a JWK: {error}"))?;
    if let Some(key_use) = &jwk.common.public_key_use
        && *key_use != PublicKeyUse::Signature
    {
        return Err("`use` is not `sig`".to_string());
    }
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(params) => {
            let modulus = URL_SAFE_NO_PAD
                .decode(&params.n)
                .map_err(|_| "`n` is not base64url".to_string())?;
            let bits = modulus.len() * 8
                - modulus
                    .first()
                    .map_or(8, |byte| byte.leading_zeros() as usize);
            if bits < RSA_MODULUS_BITS_MIN {
                return Err(format!(
                    "RSA modulus of `{bits}` bits: at least `{RSA_MODULUS_BITS_MIN}` are required"
                ));
            }
            Algorithm::RS256
        }
        AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        AlgorithmParameters::OctetKeyPair(params) if params.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::EllipticCurve(_) | AlgorithmParameters::OctetKeyPair(_) => {
            return Err("a curve other than P-256 or Ed25519".to_string());
        }
        _ => return Err("a key type other than RSA, EC P-256 or OKP Ed25519".to_string()),
    };
    if let Some(declared) = jwk.common.key_algorithm {
        let matches = matches!(
            (declared, algorithm),
            (KeyAlgorithm::RS256, Algorithm::RS256)
                | (KeyAlgorithm::ES256, Algorithm::ES256)
                | (KeyAlgorithm::EdDSA, Algorithm::EdDSA)
        );
        if !matches {
            return Err(format!(
                "`alg` `{declared:?}` does not fit the key type (expected `{algorithm:?}`)"
            ));
        }
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|error| format!("unreadable key: {error}"))?;
    Ok(JwksKey {
        kid: jwk.common.key_id.clone(),
        algorithm,
        key,
    })
}
