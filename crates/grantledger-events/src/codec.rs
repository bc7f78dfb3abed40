use crate::Envelope;

/// The body codec written in every record header: 1 = bincode 2.0.1,
/// standard configuration, through serde.
pub const CODEC_VERSION: u8 = 1;

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
    #[error("unknown codec version `{0}`: this build reads version 1")]
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
    if version != CODEC_VERSION {
        return Err(DecodeError {
            kind: DecodeErrorKind::UnknownCodecVersion(version),
        });
    }
    let (envelope, read) = bincode::serde::decode_from_slice::<Envelope, _>(body, config())
        .map_err(|error| DecodeError {
            kind: DecodeErrorKind::Malformed(error.to_string()),
        })?;
    if read != body.len() {
        return Err(DecodeError {
            kind: DecodeErrorKind::TrailingBytes(body.len() - read),
        });
    }
    Ok(envelope)
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
            decode_body(2, &body).unwrap_err().kind,
            DecodeErrorKind::UnknownCodecVersion(2)
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
