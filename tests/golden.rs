//! Golden vectors: a few envelopes, their encoded bodies and their record
//! hashes, kept as data in `schemas/golden/records.json` so that neither the
//! body codec nor the record hash can drift unnoticed. Tools that are not
//! ours can check their own encoder and hasher against the same file.
//!
//! If a change to the format is intended, regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test golden`, bump the codec or record
//! version, and say so in the commit.
//!
//! - `records-v3.json`: the current codec (header version 3): a request
//!   scheduled to start later, its decision and the grant its start timer
//!   issued, and a request that waited for approvers past its request TTL
//!   (`request_expired`, kind 15).
//! - `records.json`: a grant's chain as codec 2 wrote it, frozen (header
//!   version 2): its request reads with no scheduled start.
//! - `records-policy.json`: a policy set published and a decision of the
//!   policy engine citing it, as codec 2 wrote them, frozen.
//! - `records-appended.json`: the kinds appended to codec 2 after it first
//!   shipped, as codec 2 wrote them, frozen: a principal offboarded (kind 13)
//!   with its grant revoked, and an identity refusal (kind 14).
//! - `records-v1.json`: the chain as codec 1 wrote it, frozen: old logs must
//!   keep decoding (their decisions read as `basis: catalog`).

use std::path::PathBuf;

use grantledger_events::*;
use grantledger_log::{GENESIS_PARENT, RecordHeader};
use serde_json::{Value, json};

fn id<T>(make: fn(String) -> Result<T, IdError>, text: &str) -> T {
    make(text.to_string()).unwrap()
}

fn envelopes() -> Vec<(&'static str, Envelope)> {
    let tenant = id(TenantId::new, "acme");
    let request = id(RequestId::new, "req-0001");
    let grant = GrantId::for_request(&request);
    let alice = Principal { id: id(PrincipalId::new, "alice"), kind: PrincipalKind::Human, owner: None };
    let envelope = |causation: Causation, event: Event| Envelope {
        tenant: tenant.clone(),
        producer: "portal".into(),
        correlation: request.clone(),
        causation,
        event,
    };
    vec![
        (
            "request_submitted",
            envelope(
                Causation::Input("msg-1".into()),
                Event::RequestSubmitted(RequestSubmitted {
                    request_id: request.clone(),
                    principal: alice.clone(),
                    entitlement: id(EntitlementId::new, "db-read"),
                    resource: id(ResourceId::new, "db/prod/orders"),
                    actions: vec!["read".into()],
                    justification: "investigate INC-42".into(),
                    ticket: Some("INC-42".into()),
                    ttl_requested_ms: Some(3_600_000),
                    // Codec 2 had no scheduled starts.
                    starts_at: None,
                }),
            ),
        ),
        (
            "decision_recorded",
            envelope(
                Causation::Record(1),
                Event::DecisionRecorded(DecisionRecorded {
                    request_id: request.clone(),
                    outcome: DecisionOutcome::NeedsApproval { approvers_required: 2, group: "dba".into() },
                    reasons: vec!["approval_required".into()],
                    entitlement: id(EntitlementId::new, "db-read"),
                    catalog_hash: "00".repeat(32),
                    ttl_granted_ms: 3_600_000,
                    basis: DecisionBasis::Catalog,
                }),
            ),
        ),
        (
            "grant_issued",
            envelope(
                Causation::Record(2),
                Event::GrantIssued(GrantIssued {
                    grant_id: grant.clone(),
                    request_id: request.clone(),
                    principal: Principal {
                        id: id(PrincipalId::new, "deploy-bot"),
                        kind: PrincipalKind::Agent,
                        owner: Some(id(PrincipalId::new, "team-payments")),
                    },
                    entitlement: id(EntitlementId::new, "db-read"),
                    resource: id(ResourceId::new, "db/prod/orders"),
                    actions: vec!["read".into()],
                    issued_at: Timestamp(1_767_225_600_000),
                    expires_at: Timestamp(1_767_229_200_000),
                    expires_at_cap: Timestamp(1_767_254_400_000),
                    break_glass: false,
                }),
            ),
        ),
        (
            "grant_revoked",
            envelope(
                Causation::Timer,
                Event::GrantRevoked(GrantRevoked {
                    grant_id: grant,
                    reason: RevocationReason::Expired,
                    revoked_by: None,
                    detail: String::new(),
                }),
            ),
        ),
    ]
}

fn policy_envelopes() -> Vec<(&'static str, Envelope)> {
    let tenant = id(TenantId::new, "acme");
    let policy_text = "@id(\"routine-reads\")\npermit (principal, action == Action::\"request\", resource in Entitlement::\"db-read\");\n";
    let hash = policy_hash(policy_text, None);
    let request = id(RequestId::new, "req-0002");
    vec![
        (
            "policy_published",
            Envelope {
                tenant: tenant.clone(),
                producer: "cli".into(),
                correlation: id(RequestId::new, &format!("policy:{}", &hash[..16])),
                causation: Causation::Input("publish-1".into()),
                event: Event::PolicyPublished(PolicyPublished {
                    policy_hash: hash.clone(),
                    policy_text: policy_text.into(),
                    exceptions_text: None,
                    published_by: id(PrincipalId::new, "policy-admin"),
                }),
            },
        ),
        (
            "decision_recorded_by_policy",
            Envelope {
                tenant,
                producer: "portal".into(),
                correlation: request.clone(),
                causation: Causation::Input("msg-2".into()),
                event: Event::DecisionRecorded(DecisionRecorded {
                    request_id: request,
                    outcome: DecisionOutcome::Allow,
                    reasons: vec!["auto_approved".into()],
                    entitlement: id(EntitlementId::new, "db-read"),
                    catalog_hash: "00".repeat(32),
                    ttl_granted_ms: 3_600_000,
                    basis: DecisionBasis::Policy(PolicyBasis {
                        policy_hash: hash,
                        determining_policies: vec!["routine-reads".into()],
                        no_permit_matched: false,
                        exception: false,
                        cedar_version: "4.14.1".into(),
                        evaluated: vec![
                            EvaluatedValue { name: "context.device_managed".into(), value_json: "true".into() },
                            EvaluatedValue { name: "principal.groups".into(), value_json: "[\"dba\"]".into() },
                        ],
                    }),
                }),
            },
        ),
    ]
}

fn appended_envelopes() -> Vec<(&'static str, Envelope)> {
    let tenant = id(TenantId::new, "acme");
    let alice = id(PrincipalId::new, "alice");
    let hr = id(PrincipalId::new, "hr-system");
    let envelope = |correlation: &str, causation: Causation, event: Event| Envelope {
        tenant: tenant.clone(),
        producer: "nats:signals".into(),
        correlation: id(RequestId::new, correlation),
        causation,
        event,
    };
    vec![
        (
            "principal_offboarded",
            envelope(
                "offboard:alice",
                Causation::Input("GRANT_INPUT:7".into()),
                Event::PrincipalOffboarded(PrincipalOffboarded {
                    principal: alice.clone(),
                    by: hr.clone(),
                    detail: "termination HR-2231".into(),
                }),
            ),
        ),
        (
            "grant_revoked_owner_gone",
            envelope(
                "req-0001",
                Causation::Input("GRANT_INPUT:7".into()),
                Event::GrantRevoked(GrantRevoked {
                    grant_id: GrantId::for_request(&id(RequestId::new, "req-0001")),
                    reason: RevocationReason::OwnerGone,
                    revoked_by: Some(hr),
                    detail: "termination HR-2231".into(),
                }),
            ),
        ),
        (
            "identity_refused",
            Envelope {
                producer: "nats:requests".into(),
                ..envelope(
                    "req-0003",
                    Causation::Input("GRANT_INPUT:8".into()),
                    Event::IdentityRefused(IdentityRefused {
                        request_id: id(RequestId::new, "req-0003"),
                        principal: Principal {
                            id: id(PrincipalId::new, "deployer"),
                            kind: PrincipalKind::Workload,
                            owner: Some(id(PrincipalId::new, "team-payments")),
                        },
                        entitlement: id(EntitlementId::new, "ci-deploy-staging"),
                        resource: id(ResourceId::new, "deploy/staging/payments-api"),
                        reason: "bad_signature".into(),
                        detail: "the signature does not verify with issuer `https://spire.acme.internal`'s key `spire-ec-1`: the token is forged or altered".into(),
                    }),
                )
            },
        ),
    ]
}

fn scheduled_envelopes() -> Vec<(&'static str, Envelope)> {
    let tenant = id(TenantId::new, "acme");
    let scheduled = id(RequestId::new, "req-0004");
    let waiting = id(RequestId::new, "req-0005");
    let alice = Principal { id: id(PrincipalId::new, "alice"), kind: PrincipalKind::Human, owner: None };
    let starts_at = Timestamp(1_767_258_000_000); // 2026-01-01T09:00:00Z
    let envelope = |correlation: &RequestId, producer: &str, causation: Causation, event: Event| Envelope {
        tenant: tenant.clone(),
        producer: producer.into(),
        correlation: correlation.clone(),
        causation,
        event,
    };
    vec![
        (
            "request_submitted_scheduled",
            envelope(
                &scheduled,
                "portal",
                Causation::Input("GRANT_INPUT:10".into()),
                Event::RequestSubmitted(RequestSubmitted {
                    request_id: scheduled.clone(),
                    principal: alice.clone(),
                    entitlement: id(EntitlementId::new, "db-write"),
                    resource: id(ResourceId::new, "db/prod/orders"),
                    actions: vec!["write".into()],
                    justification: "maintenance window CHG-88".into(),
                    ticket: Some("CHG-88".into()),
                    ttl_requested_ms: Some(3_600_000),
                    starts_at: Some(starts_at),
                }),
            ),
        ),
        (
            "decision_recorded_scheduled",
            envelope(
                &scheduled,
                "portal",
                Causation::Input("GRANT_INPUT:10".into()),
                Event::DecisionRecorded(DecisionRecorded {
                    request_id: scheduled.clone(),
                    outcome: DecisionOutcome::Allow,
                    reasons: vec!["auto_approved".into()],
                    entitlement: id(EntitlementId::new, "db-write"),
                    catalog_hash: "00".repeat(32),
                    ttl_granted_ms: 3_600_000,
                    basis: DecisionBasis::Catalog,
                }),
            ),
        ),
        (
            "grant_issued_at_start",
            envelope(
                &scheduled,
                "expiry-timer",
                Causation::Input("GRANT_INPUT:11".into()),
                Event::GrantIssued(GrantIssued {
                    grant_id: GrantId::for_request(&scheduled),
                    request_id: scheduled.clone(),
                    principal: alice.clone(),
                    entitlement: id(EntitlementId::new, "db-write"),
                    resource: id(ResourceId::new, "db/prod/orders"),
                    actions: vec!["write".into()],
                    issued_at: Timestamp(starts_at.0 + 1_200),
                    expires_at: Timestamp(starts_at.0 + 3_600_000),
                    expires_at_cap: Timestamp(starts_at.0 + 7_200_000),
                    break_glass: false,
                }),
            ),
        ),
        (
            "request_submitted",
            envelope(
                &waiting,
                "portal",
                Causation::Input("GRANT_INPUT:12".into()),
                Event::RequestSubmitted(RequestSubmitted {
                    request_id: waiting.clone(),
                    principal: alice,
                    entitlement: id(EntitlementId::new, "db-write"),
                    resource: id(ResourceId::new, "db/prod/orders"),
                    actions: vec!["write".into()],
                    justification: "fix INC-51".into(),
                    ticket: Some("INC-51".into()),
                    ttl_requested_ms: None,
                    starts_at: None,
                }),
            ),
        ),
        (
            "request_expired",
            envelope(
                &waiting,
                "expiry-timer",
                Causation::Input("GRANT_INPUT:13".into()),
                Event::RequestExpired(RequestExpired {
                    request_id: waiting.clone(),
                    reason: RequestExpiryReason::RequestTtl,
                    expired_at: Timestamp(1_767_312_000_000),
                }),
            ),
        ),
    ]
}

fn generate(envelopes: Vec<(&'static str, Envelope)>) -> Value {
    let mut parent = GENESIS_PARENT;
    let mut vectors = Vec::new();
    for (index, (name, envelope)) in envelopes.into_iter().enumerate() {
        let body = encode_body(&envelope);
        let mut header = RecordHeader {
            version: CODEC_VERSION,
            sequence: index as u64 + 1,
            time_ms: 1_767_225_600_000 + index as i64,
            kind: envelope.event.kind().code(),
            body_len: body.len() as u32,
            parent,
            hash: [0; 32],
        };
        header.hash = header.compute_hash(&body);
        parent = header.hash;
        vectors.push(json!({
            "name": name,
            "envelope": envelope,
            "body_hex": hex::encode(&body),
            "header_hex": hex::encode(header.encode()),
            "record_hash": hex::encode(header.hash),
        }));
    }
    json!({
        "about": "grantledger golden vectors: records 1..n of one chain. body = bincode 2.0.1 standard encoding of `envelope`; record = header || body; see schemas/LOG_FORMAT.md",
        "codec_version": CODEC_VERSION,
        "records": vectors,
    })
}

fn check_generated(file: &str, generated: Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/golden").join(file);
    let generated = serde_json::to_string_pretty(&grantledger_events::schema::sorted_keys(generated)).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("schemas/golden/{file} exists"));
    // Compared as JSON values: whether serde_json keeps key order depends on
    // which crates of the workspace enable its `preserve_order` feature, and
    // that is no change of the vectors.
    let stored: serde_json::Value = serde_json::from_str(&stored).expect("the golden file is JSON");
    let generated: serde_json::Value = serde_json::from_str(&generated).expect("JSON");
    assert_eq!(stored, generated, "{file}: the body codec or the record hash changed");
}

#[test]
fn golden_vectors_match() {
    check_generated("records-v3.json", generate(scheduled_envelopes()));
}

/// Checks a stored golden file: every body decodes with today's code to the
/// envelope written beside it (after `adjust`), and the chain links.
fn check_stored(file: &str, version: u8, adjust: impl Fn(&mut Value)) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/golden").join(file);
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(stored["codec_version"], json!(version), "{file}");
    let mut parent = GENESIS_PARENT;
    for vector in stored["records"].as_array().unwrap() {
        let body = hex::decode(vector["body_hex"].as_str().unwrap()).unwrap();
        let header_bytes: [u8; 87] =
            hex::decode(vector["header_hex"].as_str().unwrap()).unwrap().try_into().unwrap();
        let header = RecordHeader::decode(&header_bytes);
        assert_eq!(header.version, version, "{file} {}: header version", vector["name"]);
        let envelope = decode_body(header.version, &body).unwrap();
        let mut expected = vector["envelope"].clone();
        adjust(&mut expected);
        let expected: Envelope = serde_json::from_value(expected).unwrap();
        assert_eq!(envelope, expected, "{file} {}", vector["name"]);
        assert_eq!(header.parent, parent, "{file} {}: chain link", vector["name"]);
        assert_eq!(header.compute_hash(&body), header.hash, "{file} {}: record hash", vector["name"]);
        assert_eq!(hex::encode(header.hash), vector["record_hash"].as_str().unwrap());
        parent = header.hash;
    }
}

#[test]
fn golden_bodies_decode_to_their_envelopes() {
    // Read the stored files, not the generated ones: the bytes on record must
    // decode with today's code to exactly the envelope written beside them.
    check_stored("records-v3.json", CODEC_VERSION, |_| {});
}

/// The envelopes a stored golden file decodes to, by name.
fn decoded(file: &str) -> Vec<(String, Envelope)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/golden").join(file);
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    stored["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|vector| {
            let body = hex::decode(vector["body_hex"].as_str().unwrap()).unwrap();
            let header_bytes: [u8; 87] =
                hex::decode(vector["header_hex"].as_str().unwrap()).unwrap().try_into().unwrap();
            let header = RecordHeader::decode(&header_bytes);
            (vector["name"].as_str().unwrap().to_owned(), decode_body(header.version, &body).unwrap())
        })
        .collect()
}

#[test]
fn codec_2_records_still_decode_and_their_requests_have_no_scheduled_start() {
    // The JSON beside them predates `starts_at`: it reads as none.
    check_stored("records.json", CODEC_VERSION_2, |_| {});
    check_stored("records-policy.json", CODEC_VERSION_2, |_| {});
    check_stored("records-appended.json", CODEC_VERSION_2, |_| {});
    for (file, expected) in [
        ("records.json", envelopes()),
        ("records-policy.json", policy_envelopes()),
        ("records-appended.json", appended_envelopes()),
    ] {
        let expected: Vec<(String, Envelope)> =
            expected.into_iter().map(|(name, envelope)| (name.to_owned(), envelope)).collect();
        assert_eq!(decoded(file), expected, "{file}");
    }
    // Only the request's layout changed: every other codec-2 body is its
    // codec-3 body, byte for byte, and the request's is one byte shorter
    // (no `starts_at`).
    for file in ["records.json", "records-policy.json", "records-appended.json"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/golden").join(file);
        let stored: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for (vector, (name, envelope)) in stored["records"].as_array().unwrap().iter().zip(decoded(file)) {
            let body = hex::decode(vector["body_hex"].as_str().unwrap()).unwrap();
            let now = encode_body(&envelope);
            if matches!(envelope.event, Event::RequestSubmitted(_)) {
                assert_eq!(now, [body.as_slice(), &[0]].concat(), "{file} {name}");
                assert!(decode_body(CODEC_VERSION, &body).is_err(), "{file} {name}: read as codec 3");
            } else {
                assert_eq!(now, body, "{file} {name}: the layout is unchanged");
            }
        }
    }
}

#[test]
fn codec_1_records_still_decode_and_their_decisions_read_as_catalog_decisions() {
    check_stored("records-v1.json", CODEC_VERSION_1, |envelope| {
        // Codec 1 had no scheduled starts: `starts_at` reads as none (the
        // JSON beside it has no such field).
        if let Some(decision) = envelope["event"].get_mut("decision_recorded") {
            decision["basis"] = json!("catalog");
        }
    });
    // And the old bytes are not readable as the new layout: the header
    // version is what tells them apart.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/golden/records-v1.json");
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let decision = stored["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|vector| vector["name"] == "decision_recorded")
        .unwrap();
    let body = hex::decode(decision["body_hex"].as_str().unwrap()).unwrap();
    assert!(decode_body(CODEC_VERSION, &body).is_err());
}
