//! The proof subcommands: `keys` (signing keys for checkpoints) and
//! `verify-bundle` (an evidence bundle checked with no database and no
//! network).

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Subcommand;
use grantledger_events::{Committed, Timestamp, decode_body};
use grantledger_proof::{BUNDLE_JSON_BYTES_MAX, Bundle, SignerKey, VerifierKey};

use crate::Failure;

/// `grantledger keys ...`
#[derive(Subcommand, Debug)]
pub enum KeysAction {
    /// Make a new Ed25519 signing key for a log's checkpoints.
    ///
    /// The key is named after the log's origin (for example
    /// `ledger.example.com/acme`), as checkpoints must be signed by a key of
    /// their origin's name. Writes the private key (mode 0600) and the
    /// public verifier key, in the text formats of C2SP signed notes and Go's
    /// `golang.org/x/mod/sumdb/note`; refuses to overwrite either file.
    ///
    /// Rotation: generate a new key with the same name and give it to the
    /// ledger; its checkpoints then carry the new key's ID. Auditors add the
    /// new public key to the ones they trust and keep the old one for as long
    /// as they check checkpoints it signed.
    Generate {
        /// The log's origin, which names the key.
        #[arg(long, value_name = "ORIGIN")]
        name: String,
        /// Where to write the private key (kept by the ledger only).
        #[arg(long, value_name = "FILE")]
        private: PathBuf,
        /// Where to write the public verifier key (given to auditors).
        #[arg(long, value_name = "FILE")]
        public: PathBuf,
    },
    /// Print the public verifier key of a private key.
    Public {
        /// The private key file.
        #[arg(long, value_name = "FILE")]
        private: PathBuf,
    },
}

/// Runs `grantledger keys ...`.
pub fn keys(action: KeysAction) -> Result<(), Failure> {
    match action {
        KeysAction::Generate { name, private, public } => {
            if public.exists() {
                return Err(anyhow!("`{}` exists: refusing to overwrite a key file", public.display()).into());
            }
            let key = SignerKey::generate(&name).map_err(|e| anyhow!("key name `{name}`: {e}"))?;
            key.write_new_file(&private).map_err(|e| anyhow!("{e}"))?;
            key.verifier_key().write_new_file(&public).map_err(|e| anyhow!("{e}"))?;
            println!("{}", key.verifier_key());
            eprintln!(
                "wrote the private key to `{}` (keep it with the ledger only) and the public key to `{}` (give it to auditors)",
                private.display(),
                public.display()
            );
            Ok(())
        }
        KeysAction::Public { private } => {
            let key = SignerKey::read_file(&private).map_err(|e| anyhow!("{e}"))?;
            println!("{}", key.verifier_key());
            Ok(())
        }
    }
}

/// Reads trusted verifier keys, naming the file that fails.
pub fn read_public_keys(paths: &[PathBuf]) -> Result<Vec<VerifierKey>, Failure> {
    paths
        .iter()
        .map(|path| VerifierKey::read_file(path).map_err(|e| Failure::Error(anyhow!("{e}"))))
        .collect()
}

/// Runs `grantledger verify-bundle FILE --public-key KEY...`: the bundle's
/// checkpoint signature, every record's hash and inclusion proof, and that
/// each event shown for people is what its record's body says.
pub fn verify_bundle(path: &Path, public_keys: &[PathBuf], json: bool) -> Result<(), Failure> {
    let keys = read_public_keys(public_keys)?;
    let size = std::fs::metadata(path).with_context(|| format!("cannot read `{}`", path.display()))?.len();
    if size > BUNDLE_JSON_BYTES_MAX as u64 {
        return Err(anyhow!("`{}` is {size} bytes; a bundle is at most {BUNDLE_JSON_BYTES_MAX}", path.display()).into());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let outcome = Bundle::from_json(&text).and_then(|bundle| bundle.verify(&keys).map(|report| (bundle, report)));
    let (bundle, report) = match outcome {
        Ok(ok) => ok,
        Err(error) => return damaged(json, &error.to_string()),
    };
    // The `event` fields are for people; they must say what the records say.
    for (verified, shown) in report.events.iter().zip(&bundle.events) {
        let sequence = verified.header.sequence;
        let envelope = match decode_body(verified.header.version, &verified.body) {
            Ok(envelope) => envelope,
            Err(error) => return damaged(json, &format!("event {sequence}: the record's body does not decode: {error}")),
        };
        let committed = Committed {
            sequence,
            time: Timestamp(verified.header.time_ms),
            hash: hex::encode(verified.header.hash),
            envelope,
        };
        let decoded = serde_json::to_value(&committed).expect("serializable");
        if decoded != shown.event && !older_renderings(verified.header.version, &decoded).contains(&shown.event) {
            return damaged(
                json,
                &format!("event {sequence}: the `event` shown differs from the record's body, which says {decoded}"),
            );
        }
    }
    if json {
        let events: Vec<_> = bundle.events.iter().map(|e| &e.event).collect();
        let out = serde_json::json!({
            "verified": true,
            "origin": report.origin,
            "tree_size": report.checkpoint.tree_size,
            "checkpoint_time_ms": report.checkpoint.time_ms,
            "signed_by": report.signed_by.iter().map(|(name, id)| format!("{name}+{id}")).collect::<Vec<_>>(),
            "events": events,
        });
        println!("{out}");
    } else {
        println!(
            "bundle verified: {} events of `{}`, included in its tree of {} records, checkpoint signed at {} by {}",
            report.events.len(),
            report.origin,
            report.checkpoint.tree_size,
            Timestamp(report.checkpoint.time_ms),
            report.signed_by.iter().map(|(name, id)| format!("{name}+{id}")).collect::<Vec<_>>().join(", ")
        );
        for event in &bundle.events {
            let kind = event.event["envelope"]["event"].as_object().and_then(|o| o.keys().next().cloned());
            println!("  {:>10}  {}", event.sequence, kind.unwrap_or_default());
        }
    }
    Ok(())
}

fn damaged(json: bool, message: &str) -> Result<(), Failure> {
    if json {
        println!("{}", serde_json::json!({ "verified": false, "error": message }));
    } else {
        println!("bundle does NOT verify: {message}");
    }
    Err(Failure::Damaged)
}

/// How the tools of older codecs rendered a record of their codec: the same
/// JSON, less what the codec did not have. Codec 2's tools show a request
/// without `starts_at` (today's reader gives codec-1 and codec-2 requests
/// `starts_at: null`); codec 1's show, in addition, a decision without
/// `basis` (today's reader gives it `basis: catalog`). Bundles made before a
/// codec show events that way, and they still say exactly what their records
/// say.
fn older_renderings(version: u8, decoded: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut renderings = Vec::new();
    if version > grantledger_events::CODEC_VERSION_2 {
        return renderings;
    }
    let mut rendered = decoded.clone();
    if let Some(request) = rendered
        .pointer_mut("/envelope/event/request_submitted")
        .and_then(serde_json::Value::as_object_mut)
        && request.get("starts_at") == Some(&serde_json::Value::Null)
    {
        request.remove("starts_at");
    }
    renderings.push(rendered.clone());
    if version == grantledger_events::CODEC_VERSION_1
        && let Some(decision) = rendered
            .pointer_mut("/envelope/event/decision_recorded")
            .and_then(serde_json::Value::as_object_mut)
        && decision.get("basis") == Some(&serde_json::Value::from("catalog"))
    {
        decision.remove("basis");
        renderings.push(rendered);
    }
    renderings
}
