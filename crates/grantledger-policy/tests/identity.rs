//! Workload identity tokens: every rejection has its own reason, and no
//! input makes verification panic.

use std::path::{Path, PathBuf};

use grantledger_events::Timestamp;
use grantledger_policy::identity::{Issuers, RejectionKind, load_jwks};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use proptest::prelude::*;
use serde_json::{Value, json};

fn testdata(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/identity")).join(name)
}

fn issuers() -> Issuers {
    Issuers::load(&testdata("issuers.toml")).unwrap()
}

const NOW_S: i64 = 1_795_435_200;
const SPIRE: &str = "https://spire.acme.internal";
const OIDC: &str = "https://accounts.acme.example";

fn now() -> Timestamp {
    Timestamp(NOW_S * 1000)
}

fn key(file: &str, algorithm: Algorithm) -> EncodingKey {
    let pem = std::fs::read(testdata(file)).unwrap();
    match algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
        other => panic!("no test key for {other:?}"),
    }
}

fn sign(algorithm: Algorithm, file: &str, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, &key(file, algorithm)).unwrap()
}

fn svid_claims() -> Value {
    json!({
        "iss": SPIRE,
        "sub": "spiffe://acme.internal/agents/coder",
        "aud": ["grantledger"],
        "exp": NOW_S + 300,
        "iat": NOW_S - 10,
    })
}

fn oidc_claims() -> Value {
    json!({
        "iss": OIDC,
        "sub": "ci-runner-42",
        "aud": "grantledger-staging",
        "exp": NOW_S + 600,
        "nbf": NOW_S - 60,
        "jti": "tok-1",
    })
}

fn b64(value: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[test]
fn valid_tokens_of_each_algorithm_verify_to_their_claims() {
    let issuers = issuers();
    let es = sign(
        Algorithm::ES256,
        "ec-signer.pem",
        Some("spire-ec-1"),
        &svid_claims(),
    );
    let claims = issuers.verify(&es, now()).unwrap();
    assert_eq!(claims.issuer, SPIRE);
    assert_eq!(
        claims.spiffe_id.as_deref(),
        Some("spiffe://acme.internal/agents/coder")
    );
    assert_eq!(claims.trust_domain.as_deref(), Some("acme.internal"));
    assert_eq!(claims.algorithm, "ES256");
    assert_eq!(claims.key_id.as_deref(), Some("spire-ec-1"));
    assert_eq!(claims.expires_at_s, NOW_S + 300);
    assert_eq!(claims.to_workload_identity().audience, vec!["grantledger"]);

    let ed = sign(
        Algorithm::EdDSA,
        "ed25519-signer.pem",
        Some("spire-ed-1"),
        &svid_claims(),
    );
    assert_eq!(issuers.verify(&ed, now()).unwrap().algorithm, "EdDSA");

    // The OIDC issuer has a single RS256 key, so a token without a kid uses it.
    let rs = sign(Algorithm::RS256, "rsa-signer.pem", None, &oidc_claims());
    let claims = issuers.verify(&rs, now()).unwrap();
    assert_eq!(claims.subject, "ci-runner-42");
    assert_eq!(claims.spiffe_id, None);
    assert_eq!(claims.token_id.as_deref(), Some("tok-1"));
    assert_eq!(claims.not_before_s, Some(NOW_S - 60));

    // The raw token is never kept.
    let recorded = serde_json::to_string(&claims).unwrap();
    let signature = rs.rsplit('.').next().unwrap();
    assert!(!recorded.contains(signature));
    assert!(!recorded.contains(rs.split('.').next().unwrap()));
}

/// Each row: a token and the one reason it must be rejected with.
#[test]
fn each_bad_token_is_rejected_with_its_own_reason() {
    let issuers = issuers();
    let good = sign(
        Algorithm::RS256,
        "rsa-signer.pem",
        Some("oidc-rsa-1"),
        &oidc_claims(),
    );
    let parts: Vec<&str> = good.split('.').collect();
    let mut tampered_claims = oidc_claims();
    tampered_claims["sub"] = json!("admin");
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = oidc_claims();
        change(&mut claims);
        sign(
            Algorithm::RS256,
            "rsa-signer.pem",
            Some("oidc-rsa-1"),
            &claims,
        )
    };
    let hmac_confusion = {
        // The classic attack: HS256 with the issuer's public key as secret.
        let public = std::fs::read(testdata("oidc.jwks.json")).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("oidc-rsa-1".into());
        encode(&header, &oidc_claims(), &EncodingKey::from_secret(&public)).unwrap()
    };
    let rows: Vec<(&str, String, RejectionKind)> = vec![
        (
            "forged: signed by a key not in the JWKS, claiming its kid",
            sign(
                Algorithm::RS256,
                "rsa-attacker.pem",
                Some("oidc-rsa-1"),
                &oidc_claims(),
            ),
            RejectionKind::BadSignature,
        ),
        (
            "altered: claims swapped after signing",
            format!("{}.{}.{}", parts[0], b64(&tampered_claims), parts[2]),
            RejectionKind::BadSignature,
        ),
        (
            "signature of another token",
            format!(
                "{}.{}.{}",
                parts[0],
                parts[1],
                sign(
                    Algorithm::RS256,
                    "rsa-signer.pem",
                    Some("oidc-rsa-1"),
                    &tampered_claims
                )
                .rsplit('.')
                .next()
                .unwrap()
            ),
            RejectionKind::BadSignature,
        ),
        (
            "expired",
            with(&|claims| claims["exp"] = json!(NOW_S - 1)),
            RejectionKind::Expired,
        ),
        (
            "expires exactly now",
            with(&|claims| claims["exp"] = json!(NOW_S)),
            RejectionKind::Expired,
        ),
        (
            "not yet valid",
            with(&|claims| claims["nbf"] = json!(NOW_S + 120)),
            RejectionKind::NotYetValid,
        ),
        (
            "wrong audience",
            with(&|claims| claims["aud"] = json!(["someone-else"])),
            RejectionKind::WrongAudience,
        ),
        (
            "no audience",
            with(&|claims| {
                claims.as_object_mut().unwrap().remove("aud");
            }),
            RejectionKind::WrongAudience,
        ),
        (
            "wrong issuer",
            with(&|claims| claims["iss"] = json!("https://evil.example")),
            RejectionKind::UnknownIssuer,
        ),
        (
            "unknown kid",
            sign(
                Algorithm::RS256,
                "rsa-signer.pem",
                Some("oidc-rsa-9"),
                &oidc_claims(),
            ),
            RejectionKind::UnknownKeyId,
        ),
        (
            "a kid of the issuer, but for another algorithm",
            sign(
                Algorithm::ES256,
                "ec-signer.pem",
                Some("oidc-rsa-1"),
                &oidc_claims(),
            ),
            RejectionKind::UnknownKeyId,
        ),
        (
            "alg none, no signature",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                parts[1]
            ),
            RejectionKind::AlgNone,
        ),
        (
            "alg None, with the original signature",
            format!("{}.{}.{}", b64(&json!({"alg": "None"})), parts[1], parts[2]),
            RejectionKind::AlgNone,
        ),
        (
            "HS256 with the public key as the secret",
            hmac_confusion,
            RejectionKind::UnsupportedAlgorithm,
        ),
        (
            "RS512",
            format!(
                "{}.{}.{}",
                b64(&json!({"alg": "RS512"})),
                parts[1],
                parts[2]
            ),
            RejectionKind::UnsupportedAlgorithm,
        ),
        (
            "missing exp",
            with(&|claims| {
                claims.as_object_mut().unwrap().remove("exp");
            }),
            RejectionKind::Malformed,
        ),
        (
            "exp as text",
            with(&|claims| claims["exp"] = json!("tomorrow")),
            RejectionKind::Malformed,
        ),
        (
            "two parts",
            format!("{}.{}", parts[0], parts[1]),
            RejectionKind::Malformed,
        ),
        ("four parts", format!("{good}.x"), RejectionKind::Malformed),
        ("empty", String::new(), RejectionKind::Malformed),
        (
            "garbage",
            "not a token at all".to_string(),
            RejectionKind::Malformed,
        ),
        (
            "header not JSON",
            format!("aGVsbG8.{}.{}", parts[1], parts[2]),
            RejectionKind::Malformed,
        ),
        (
            "signature not base64url",
            format!("{}.{}.***", parts[0], parts[1]),
            RejectionKind::Malformed,
        ),
        ("too large", "a".repeat(20_000), RejectionKind::Malformed),
        (
            "SVID outside the issuer's trust domain",
            sign(Algorithm::ES256, "ec-signer.pem", Some("spire-ec-1"), &{
                let mut claims = svid_claims();
                claims["sub"] = json!("spiffe://evil.example/agents/coder");
                claims
            }),
            RejectionKind::SubjectOutsideTrustDomain,
        ),
    ];
    for (name, token, expected) in rows {
        let rejection = issuers.verify(&token, now()).unwrap_err();
        assert_eq!(rejection.kind(), expected, "{name}: {rejection}");
        assert!(!rejection.message().is_empty());
        if token.len() > 40 {
            assert!(
                !rejection.to_string().contains(&token),
                "{name}: the message holds the token"
            );
        }
    }
}

#[test]
fn leeway_is_the_issuers_and_time_is_passed_in() {
    let issuers = issuers();
    let mut claims = svid_claims();
    claims["exp"] = json!(NOW_S - 20);
    claims["nbf"] = json!(NOW_S + 20);
    let token = sign(
        Algorithm::ES256,
        "ec-signer.pem",
        Some("spire-ec-1"),
        &claims,
    );
    // SPIRE allows 30 s of leeway: both are within it.
    assert!(issuers.verify(&token, now()).is_ok());
    assert_eq!(
        issuers
            .verify(&token, Timestamp((NOW_S + 11) * 1000))
            .unwrap_err()
            .kind(),
        RejectionKind::Expired
    );
    assert_eq!(
        issuers
            .verify(&token, Timestamp((NOW_S - 11) * 1000))
            .unwrap_err()
            .kind(),
        RejectionKind::NotYetValid
    );
}

#[test]
fn a_jwks_without_a_usable_key_is_refused_naming_the_file_and_why() {
    let error = load_jwks(&testdata("unusable.jwks.json")).unwrap_err();
    assert!(error.message().contains("unusable.jwks.json"), "{error}");
    assert!(error.message().contains("has no usable key"), "{error}");
    assert!(error.message().contains("holds `k`"), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let rows = [
        ("{\"keys\": []}", "the list is empty"),
        (
            "{\"keys\": [{\"kty\": \"RSA\", \"n\": \"AQAB\", \"e\": \"AQAB\"}]}",
            "RSA modulus of `17` bits",
        ),
        (
            "{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-384\", \"x\": \"AA\", \"y\": \"AA\"}]}",
            "a curve other than P-256 or Ed25519",
        ),
        ("[1, 2]", "has no `keys` list"),
        ("not json", "is not JSON"),
    ];
    for (text, fragment) in rows {
        let path = dir.path().join("bad.jwks.json");
        std::fs::write(&path, text).unwrap();
        let error = load_jwks(&path).unwrap_err();
        assert!(error.message().contains("bad.jwks.json"), "{text}: {error}");
        assert!(error.message().contains(fragment), "{text}: {error}");
    }
    // A private JWK next to a public one: the private one is skipped.
    let private = json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "kid": "priv", "x": "ivbPRRQ7a9XnFmW9TDGIMgEeXlD-8RXM_1M2gV_3Dso", "d": "AAAA"},
        {"kty": "OKP", "crv": "Ed25519", "kid": "pub", "x": "ivbPRRQ7a9XnFmW9TDGIMgEeXlD-8RXM_1M2gV_3Dso"}
    ]});
    let path = dir.path().join("mixed.jwks.json");
    std::fs::write(&path, private.to_string()).unwrap();
    let keys = load_jwks(&path).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].kid(), Some("pub"));

    let config = dir.path().join("issuers.toml");
    std::fs::write(
        &config,
        "[[issuer]]\nissuer = \"x\"\naudiences = []\njwks_path = \"mixed.jwks.json\"\n",
    )
    .unwrap();
    let error = Issuers::load(&config).unwrap_err();
    assert!(
        error
            .message()
            .contains("`audiences` must list at least one"),
        "{error}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_strings_never_panic(token in ".{0,400}") {
        let _ = issuers().verify(&token, now());
    }

    #[test]
    fn random_dotted_base64_never_panics(a in "[A-Za-z0-9_-]{0,80}", b in "[A-Za-z0-9_-]{0,80}", c in "[A-Za-z0-9_-]{0,90}") {
        let _ = issuers().verify(&format!("{a}.{b}.{c}"), now());
    }

    #[test]
    fn changing_any_character_of_a_valid_token_never_verifies(index in 0usize..1000, replacement in "[A-Za-z0-9_.-]") {
        let token = sign(Algorithm::EdDSA, "ed25519-signer.pem", Some("spire-ed-1"), &svid_claims());
        let index = index % token.len();
        let mut bytes = token.clone().into_bytes();
        let new = replacement.as_bytes()[0];
        prop_assume!(bytes[index] != new);
        bytes[index] = new;
        let mutated = String::from_utf8(bytes).unwrap();
        prop_assert!(issuers().verify(&mutated, now()).is_err());
    }
}
