use crate::Envelope;

/// The body codec written in every record header, this build's: bincode
/// 2.0.1, standard configuration, through serde, of the event types as they
/// are now. Because bincode is not self-describing, a change of the layout
/// of an existing event is a new codec version:
///
/// - `1`: the first layout (eleven event kinds; `DecisionRecorded` without
///   `basis`). Still read: its decisions read as `basis: catalog`, which is
///   what made them.
/// - `2`: `DecisionRecorded` gains `basis` (catalog, or the policy engine's
///   account of the decision), and `PolicyPublished` (kind 12) is appended.
///   Later appended to codec 2, without a new version because no existing
///   event's layout changed (bincode writes the variant index, and the
///   indices before them are unchanged): `PrincipalOffboarded` (kind 13) and
///   `IdentityRefused` (kind 14). A reader older than them refuses such a
///   body as malformed rather than misreading it.
/// - `3`: `RequestSubmitted` gains `starts_at` (a scheduled start), and
///   `RequestExpired` (kind 15) is appended. Codec-1 and codec-2 requests
///   still decode, with no scheduled start. Later appended to codec 3,
///   without a new version because no existing layout changed (bincode
///   writes an enum's variant index, and the earlier indices are
///   unchanged): the `RequestExpiryReason`s `risk_signal` (index 3) and
///   `owner_offboarded` (index 4), and `RequestWithdrawn` (kind 16). A
///   reader older than them refuses such a body as malformed rather than
///   misreading it.
pub const CODEC_VERSION: u8 = 3;

/// The first codec version, still read.
pub const CODEC_VERSION_1: u8 = 1;

/// The second codec version, still read.
pub const CODEC_VERSION_2: u8 = 2;

/// Why a record body could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct DecodeError {
    /// What went wrong.
    pub kind: DecodeErrorKind,
}

/// The closed set of decoding failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    /// The header names a codec this build does not know.
    #[error("unknown codec version `{0}`: this build reads versions 1, 2 and 3")]
    UnknownCodecVersion(u8),
    /// The bytes are not a valid envelope.
    #[error("body does not decode: {0}")]
    Malformed(String),
    /// The envelope decoded but bytes were left over.
    #[error("body has `{0}` trailing bytes after the envelope")]
    TrailingBytes(usize),
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes an envelope as a record body with [`CODEC_VERSION`].
///
/// Encoding is deterministic: the same envelope always gives the same bytes,
/// which is what makes record hashes reproducible.
pub fn encode_body(envelope: &Envelope) -> Vec<u8> {
    // INVARIANT: every wire type serializes without error (no maps with
    // non-string keys, no `skip_serializing_if`), so failure here is a bug.
    bincode::serde::encode_to_vec(envelope, config()).expect("envelope encodes")
}

/// Decodes a record body written with codec `version`. Trailing bytes are an
/// error: a body has exactly one encoding.
pub fn decode_body(version: u8, body: &[u8]) -> Result<Envelope, DecodeError> {
    match version {
        CODEC_VERSION => decode_exact::<Envelope>(body),
        CODEC_VERSION_2 => decode_exact::<v2::Envelope>(body).map(v2::Envelope::upgrade),
        CODEC_VERSION_1 => decode_exact::<v1::Envelope>(body).map(v1::Envelope::upgrade),
        other => Err(DecodeError {
            kind: DecodeErrorKind::UnknownCodecVersion(other),
        }),
    }
}

fn decode_exact<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let (value, read) =
        bincode::serde::decode_from_slice::<T, _>(body, config()).map_err(|error| DecodeError {
            kind: DecodeErrorKind::Malformed(error.to_string()),
        })?;
    if read != body.len() {
        return Err(DecodeError {
            kind: DecodeErrorKind::TrailingBytes(body.len() - read),
        });
    }
    Ok(value)
}

/// The codec-2 layout, for reading old records. Only what changed is
/// redefined; every other event has the same layout in both versions.
mod v2 {
    use serde::Deserialize;

    use crate::{
        ApprovalRecorded, BreakGlassInvoked, CatalogPublished, Causation, DecisionRecorded,
        EntitlementId, GrantExtended, GrantIssued, GrantRevoked, IdentityRefused,
        PolicyPublished, Principal, PrincipalOffboarded, RequestId, ResourceId, ReviewRecorded,
        RevocationConfirmed, RevocationFailed, TenantId,
    };

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Envelope {
        tenant: TenantId,
        producer: String,
        correlation: RequestId,
        causation: Causation,
        event: Event,
    }

    // The variant order of codec 2: frozen.
    #[derive(Deserialize)]
    enum Event {
        CatalogPublished(CatalogPublished),
        RequestSubmitted(RequestSubmitted),
        DecisionRecorded(DecisionRecorded),
        ApprovalRecorded(ApprovalRecorded),
        GrantIssued(GrantIssued),
        GrantExtended(GrantExtended),
        GrantRevoked(GrantRevoked),
        RevocationConfirmed(RevocationConfirmed),
        RevocationFailed(RevocationFailed),
        BreakGlassInvoked(BreakGlassInvoked),
        ReviewRecorded(ReviewRecorded),
        PolicyPublished(PolicyPublished),
        PrincipalOffboarded(PrincipalOffboarded),
        IdentityRefused(IdentityRefused),
    }

    /// A request as codecs 1 and 2 wrote it: no scheduled start.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct RequestSubmitted {
        request_id: RequestId,
        principal: Principal,
        entitlement: EntitlementId,
        resource: ResourceId,
        actions: Vec<String>,
        justification: String,
        ticket: Option<String>,
        ttl_requested_ms: Option<i64>,
    }

    impl RequestSubmitted {
        pub(super) fn upgrade(self) -> crate::RequestSubmitted {
            crate::RequestSubmitted {
                request_id: self.request_id,
                principal: self.principal,
                entitlement: self.entitlement,
                resource: self.resource,
                actions: self.actions,
                justification: self.justification,
                ticket: self.ticket,
                ttl_requested_ms: self.ttl_requested_ms,
                // Codecs 1 and 2 had no scheduled starts.
                starts_at: None,
            }
        }
    }

    impl Envelope {
        pub(super) fn upgrade(self) -> crate::Envelope {
            use crate::Event as E;
            let event = match self.event {
                Event::CatalogPublished(e) => E::CatalogPublished(e),
                Event::RequestSubmitted(e) => E::RequestSubmitted(e.upgrade()),
                Event::DecisionRecorded(e) => E::DecisionRecorded(e),
                Event::ApprovalRecorded(e) => E::ApprovalRecorded(e),
                Event::GrantIssued(e) => E::GrantIssued(e),
                Event::GrantExtended(e) => E::GrantExtended(e),
                Event::GrantRevoked(e) => E::GrantRevoked(e),
                Event::RevocationConfirmed(e) => E::RevocationConfirmed(e),
                Event::RevocationFailed(e) => E::RevocationFailed(e),
                Event::BreakGlassInvoked(e) => E::BreakGlassInvoked(e),
                Event::ReviewRecorded(e) => E::ReviewRecorded(e),
                Event::PolicyPublished(e) => E::PolicyPublished(e),
                Event::PrincipalOffboarded(e) => E::PrincipalOffboarded(e),
                Event::IdentityRefused(e) => E::IdentityRefused(e),
            };
            crate::Envelope {
                tenant: self.tenant,
                producer: self.producer,
                correlation: self.correlation,
                causation: self.causation,
                event,
            }
        }
    }
}

/// The codec-1 layout, for reading old records. Only what changed is
/// redefined; every other event has the same layout in both versions.
mod v1 {
    use serde::Deserialize;

    use super::v2::RequestSubmitted;
    use crate::{
        ApprovalRecorded, BreakGlassInvoked, CatalogPublished, Causation, DecisionBasis,
        DecisionOutcome, EntitlementId, GrantExtended, GrantIssued, GrantRevoked, RequestId,
        ReviewRecorded, RevocationConfirmed, RevocationFailed, TenantId,
    };

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Envelope {
        tenant: TenantId,
        producer: String,
        correlation: RequestId,
        causation: Causation,
        event: Event,
    }

    // The variant order of codec 1: frozen.
    #[derive(Deserialize)]
    enum Event {
        CatalogPublished(CatalogPublished),
        RequestSubmitted(RequestSubmitted),
        DecisionRecorded(DecisionRecorded),
        ApprovalRecorded(ApprovalRecorded),
        GrantIssued(GrantIssued),
        GrantExtended(GrantExtended),
        GrantRevoked(GrantRevoked),
        RevocationConfirmed(RevocationConfirmed),
        RevocationFailed(RevocationFailed),
        BreakGlassInvoked(BreakGlassInvoked),
        ReviewRecorded(ReviewRecorded),
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct DecisionRecorded {
        request_id: RequestId,
        outcome: DecisionOutcome,
        reasons: Vec<String>,
        entitlement: EntitlementId,
        catalog_hash: String,
        ttl_granted_ms: i64,
    }

    impl Envelope {
        pub(super) fn upgrade(self) -> crate::Envelope {
            use crate::Event as E;
            let event = match self.event {
                Event::CatalogPublished(e) => E::CatalogPublished(e),
                Event::RequestSubmitted(e) => E::RequestSubmitted(e.upgrade()),
                Event::DecisionRecorded(e) => E::DecisionRecorded(crate::DecisionRecorded {
                    request_id: e.request_id,
                    outcome: e.outcome,
                    reasons: e.reasons,
                    entitlement: e.entitlement,
                    catalog_hash: e.catalog_hash,
                    ttl_granted_ms: e.ttl_granted_ms,
                    // Codec 1 had no policy engine: the catalog decided.
                    basis: DecisionBasis::Catalog,
                }),
                Event::ApprovalRecorded(e) => E::ApprovalRecorded(e),
                Event::GrantIssued(e) => E::GrantIssued(e),
                Event::GrantExtended(e) => E::GrantExtended(e),
                Event::GrantRevoked(e) => E::GrantRevoked(e),
                Event::RevocationConfirmed(e) => E::RevocationConfirmed(e),
                Event::RevocationFailed(e) => E::RevocationFailed(e),
                Event::BreakGlassInvoked(e) => E::BreakGlassInvoked(e),
                Event::ReviewRecorded(e) => E::ReviewRecorded(e),
            };
            crate::Envelope {
                tenant: self.tenant,
                producer: self.producer,
                correlation: self.correlation,
                causation: self.causation,
                event,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    fn sample() -> Envelope {
        Envelope {
            tenant: TenantId::new("acme").unwrap(),
            producer: "portal".into(),
            correlation: RequestId::new("req-1").unwrap(),
            causation: Causation::Input("msg-1".into()),
            event: Event::GrantRevoked(GrantRevoked {
                grant_id: GrantId::for_request(&RequestId::new("req-1").unwrap()),
                reason: RevocationReason::RiskSignal,
                revoked_by: None,
                detail: "impossible travel".into(),
            }),
        }
    }

    #[test]
    fn roundtrips_and_is_deterministic() {
        let body = encode_body(&sample());
        assert_eq!(body, encode_body(&sample()));
        assert_eq!(decode_body(CODEC_VERSION, &body).unwrap(), sample());
    }

    #[test]
    fn refuses_unknown_version_trailing_bytes_and_truncation() {
        let mut body = encode_body(&sample());
        assert_eq!(
            decode_body(4, &body).unwrap_err().kind,
            DecodeErrorKind::UnknownCodecVersion(4)
        );
        body.push(0);
        assert_eq!(
            decode_body(CODEC_VERSION, &body).unwrap_err().kind,
            DecodeErrorKind::TrailingBytes(1)
        );
        body.truncate(body.len() - 5);
        assert!(matches!(
            decode_body(CODEC_VERSION, &body).unwrap_err().kind,
            DecodeErrorKind::Malformed(_)
        ));
    }

    #[test]
    fn appended_kinds_roundtrip_with_the_next_variant_indices() {
        // Kinds 13 and 14 were appended to codec 2: bincode writes the
        // variant index (0-based, a one-byte varint here) right after the
        // causation, so the earlier kinds' bodies are unchanged.
        let offboarded = Envelope {
            event: Event::PrincipalOffboarded(PrincipalOffboarded {
                principal: PrincipalId::new("alice").unwrap(),
                by: PrincipalId::new("hr-system").unwrap(),
                detail: "left the company".into(),
            }),
            ..sample()
        };
        let refused = Envelope {
            event: Event::IdentityRefused(IdentityRefused {
                request_id: RequestId::new("req-1").unwrap(),
                principal: Principal {
                    id: PrincipalId::new("deployer").unwrap(),
                    kind: PrincipalKind::Workload,
                    owner: Some(PrincipalId::new("team-payments").unwrap()),
                },
                entitlement: EntitlementId::new("ci-deploy").unwrap(),
                resource: ResourceId::new("deploy/staging/api").unwrap(),
                reason: "bad_signature".into(),
                detail: "the signature does not verify".into(),
            }),
            ..sample()
        };
        let sample_body = encode_body(&sample());
        // tenant, producer, correlation, causation: the same in all three.
        let prefix = sample_body.len() - encode_event_len(&sample());
        for (envelope, index) in [(offboarded, 12u8), (refused, 13u8)] {
            let body = encode_body(&envelope);
            assert_eq!(decode_body(CODEC_VERSION, &body).unwrap(), envelope);
            assert_eq!(body[prefix], index, "{:?}", envelope.event.kind());
            let code_order = EventKind::ALL.iter().position(|kind| *kind == envelope.event.kind());
            assert_eq!(code_order, Some(usize::from(index)), "variant order is code order");
        }
        assert_eq!(sample_body[prefix], 6, "GrantRevoked keeps its index");
    }

    #[test]
    fn codec_3_requests_carry_a_start_and_older_requests_decode_without_one() {
        let request = |starts_at: Option<Timestamp>| Envelope {
            event: Event::RequestSubmitted(RequestSubmitted {
                request_id: RequestId::new("req-1").unwrap(),
                principal: Principal {
                    id: PrincipalId::new("alice").unwrap(),
                    kind: PrincipalKind::Human,
                    owner: None,
                },
                entitlement: EntitlementId::new("db-read").unwrap(),
                resource: ResourceId::new("db/prod/orders").unwrap(),
                actions: vec!["read".into()],
                justification: "window".into(),
                ticket: None,
                ttl_requested_ms: Some(3_600_000),
                starts_at,
            }),
            ..sample()
        };
        let unscheduled = encode_body(&request(None));
        let scheduled = encode_body(&request(Some(Timestamp(1_767_225_600_000))));
        assert_eq!(decode_body(CODEC_VERSION, &scheduled).unwrap(), request(Some(Timestamp(1_767_225_600_000))));
        // `starts_at` is the last field: codec 3 writes the codec-2 body and
        // one byte for `None`, so the codec-2 body is that minus its last byte.
        assert_eq!(unscheduled.last(), Some(&0));
        let codec_2 = &unscheduled[..unscheduled.len() - 1];
        for version in [CODEC_VERSION_1, CODEC_VERSION_2] {
            assert_eq!(decode_body(version, codec_2).unwrap(), request(None), "codec {version}");
        }
        // The header version tells the layouts apart: neither reads as the other.
        assert!(decode_body(CODEC_VERSION, codec_2).is_err());
        assert!(decode_body(CODEC_VERSION_2, &scheduled).is_err());
        // The other kinds keep their codec-2 layout.
        let body = encode_body(&sample());
        assert_eq!(decode_body(CODEC_VERSION_2, &body).unwrap(), sample());

        // Kind 15 is appended with the next variant index, and codec 2
        // refuses it rather than misreading it.
        let expired = Envelope {
            event: Event::RequestExpired(RequestExpired {
                request_id: RequestId::new("req-1").unwrap(),
                reason: RequestExpiryReason::RequestTtl,
                expired_at: Timestamp(1_767_312_000_000),
            }),
            ..sample()
        };
        let body = encode_body(&expired);
        assert_eq!(decode_body(CODEC_VERSION, &body).unwrap(), expired);
        let prefix = body.len() - encode_event_len(&expired);
        assert_eq!(body[prefix], 14);
        assert_eq!(EventKind::RequestExpired.code(), 15);
        assert!(decode_body(CODEC_VERSION_2, &body).is_err());
    }

    #[test]
    fn request_expiry_reasons_are_appended_with_the_next_variant_index() {
        let expired = |reason| Envelope {
            event: Event::RequestExpired(RequestExpired {
                request_id: RequestId::new("req-1").unwrap(),
                reason,
                expired_at: Timestamp(1_767_312_000_000),
            }),
            ..sample()
        };
        let reasons = [
            (RequestExpiryReason::RequestTtl, "request_ttl"),
            (
                RequestExpiryReason::StartWindowPassed,
                "start_window_passed",
            ),
            (
                RequestExpiryReason::PrincipalOffboarded,
                "principal_offboarded",
            ),
            (RequestExpiryReason::RiskSignal, "risk_signal"),
            (RequestExpiryReason::OwnerOffboarded, "owner_offboarded"),
        ];
        for (index, (reason, name)) in reasons.into_iter().enumerate() {
            let envelope = expired(reason);
            let body = encode_body(&envelope);
            assert_eq!(decode_body(CODEC_VERSION, &body).unwrap(), envelope);
            // The event's variant index, the request id (a length and
            // "req-1"), then the reason's variant index.
            let prefix = body.len() - encode_event_len(&envelope);
            assert_eq!(body[prefix], 14);
            assert_eq!(&body[prefix + 1..prefix + 7], b"\x05req-1");
            assert_eq!(usize::from(body[prefix + 7]), index, "`{name}` keeps index {index}");
            assert_eq!(reason.name(), name);
            assert_eq!(serde_json::to_value(reason).unwrap(), name);
        }
    }

    #[test]
    fn request_withdrawn_is_appended_as_kind_16_with_the_next_variant_index() {
        let withdrawn = Envelope {
            event: Event::RequestWithdrawn(RequestWithdrawn {
                request_id: RequestId::new("req-1").unwrap(),
                withdrawn_by: PrincipalId::new("alice").unwrap(),
                reason: "maintenance postponed".into(),
            }),
            ..sample()
        };
        let body = encode_body(&withdrawn);
        assert_eq!(decode_body(CODEC_VERSION, &body).unwrap(), withdrawn);
        let prefix = body.len() - encode_event_len(&withdrawn);
        assert_eq!(body[prefix], 15, "the variant after `request_expired`");
        assert_eq!(EventKind::RequestWithdrawn.code(), 16);
        assert_eq!(EventKind::from_code(16), Some(EventKind::RequestWithdrawn));
        // A codec-2 reader has no such variant and refuses the body.
        assert!(decode_body(CODEC_VERSION_2, &body).is_err());
    }

    fn encode_event_len(envelope: &Envelope) -> usize {
        bincode::serde::encode_to_vec(&envelope.event, config()).unwrap().len()
    }

    #[test]
    fn refuses_an_invalid_id_inside_a_body() {
        // An id that breaks its rule cannot be smuggled in through bincode.
        let mut envelope = sample();
        envelope.producer = "p".into();
        let body = encode_body(&envelope);
        let tenant_at = 1; // varint length 4, then "acme"
        assert_eq!(&body[tenant_at..tenant_at + 4], b"acme");
        let mut bad = body.clone();
        bad[tenant_at] = b' ';
        let error = decode_body(CODEC_VERSION, &bad).unwrap_err();
        assert!(error.to_string().contains("tenant id"), "{error}");
    }
}
