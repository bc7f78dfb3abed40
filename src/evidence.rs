//! Checkpoints and evidence from a log directory: `checkpoint`,
//! `verify --checkpoint`, `evidence`.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use grantledger_events::{GrantId, Timestamp};
use grantledger_log::{Log, LogOptions};
use grantledger_proof::{BundleBuilder, Checkpoint, SignedCheckpoint, SignerKey, Subject, check_extends_signed};

use crate::Failure;
use crate::proofs::read_public_keys;

/// The most records one grant's evidence may hold.
const EVIDENCE_RECORDS_MAX: usize = 1024;

/// `grantledger checkpoint --data DIR --key FILE [--out FILE]`: signs the
/// Merkle root of the whole log with the ledger's key, stores the checkpoint
/// in the log's metadata, prints it, and writes it to `--out` for an auditor.
pub fn checkpoint(data: &Path, key: &Path, out: Option<&Path>) -> Result<(), Failure> {
    let key = SignerKey::read_file(key).map_err(|e| anyhow!("{e}"))?;
    if let Some(out) = out
        && out.exists()
    {
        return Err(anyhow!("`{}` exists: refusing to overwrite a checkpoint an auditor may hold", out.display()).into());
    }
    let log = Log::open(data, LogOptions::default())
        .with_context(|| format!("cannot open the log in `{}` for writing (is the ledger running?)", data.display()))?;
    let signed = sign_head(&log, &key)?;
    if let Some(out) = out {
        std::fs::write(out, signed.as_str()).with_context(|| format!("cannot write `{}`", out.display()))?;
    }
    print!("{}", signed.as_str());
    Ok(())
}

/// Signs and stores a checkpoint of the log's whole tree.
pub fn sign_head(log: &Log, key: &SignerKey) -> anyhow::Result<SignedCheckpoint> {
    let head = log.head();
    if head.sequence == 0 {
        return Err(anyhow!("the log is empty: there is nothing to checkpoint"));
    }
    let root = log.merkle_root(head.sequence).map_err(|e| anyhow!("{e}"))?;
    let checkpoint = Checkpoint {
        origin: key.name().to_owned(),
        tree_size: head.sequence,
        root_hash: root,
        time_ms: head.time_ms,
    };
    let signed = checkpoint.sign(key).map_err(|e| anyhow!("{e}"))?;
    log.store_checkpoint(head.sequence, signed.as_str()).map_err(|e| anyhow!("{e}"))?;
    Ok(signed)
}

/// After the chain verified: does the log extend the trusted checkpoint?
/// `Ok(message)` or `Err(message)` naming truncation or rewritten history.
pub fn check_checkpoint(log: &Log, checkpoint: &Path, public_keys: &[PathBuf]) -> Result<Result<String, String>, Failure> {
    let keys = read_public_keys(public_keys)?;
    let text = std::fs::read_to_string(checkpoint).with_context(|| format!("cannot read `{}`", checkpoint.display()))?;
    let signed = SignedCheckpoint::parse(&text).map_err(|e| anyhow!("`{}`: {e}", checkpoint.display()))?;
    let claimed = signed.unverified_checkpoint().tree_size;
    let size = log.tree_size();
    let root = log.merkle_root(size).map_err(|e| anyhow!("{e}"))?;
    let proof = if claimed > 0 && claimed <= size {
        log.consistency_proof(claimed, size).map_err(|e| anyhow!("{e}"))?
    } else {
        Vec::new()
    };
    Ok(match check_extends_signed(&signed, &keys, size, &root, &proof) {
        Ok(checkpoint) => Ok(format!(
            "the log ({size} records) is an append-only extension of the checkpoint of {} records signed at {}",
            checkpoint.tree_size,
            Timestamp(checkpoint.time_ms)
        )),
        Err(error) => Err(error.to_string()),
    })
}

/// `grantledger evidence --data DIR --grant ID [--checkpoint FILE]`: the
/// grant's evidence chain as a bundle on stdout.
pub fn evidence(data: &Path, grant: &str, checkpoint: Option<&Path>) -> Result<(), Failure> {
    let grant_id = GrantId::new(grant.to_owned()).map_err(|e| anyhow!("--grant `{grant}`: {e}"))?;
    let log = Log::open_read_only(data).with_context(|| format!("cannot open the log in `{}`", data.display()))?;
    let subject = Subject::Grant { grant_id: grant_id.as_str().to_owned() };
    let bundle = bundle(&log, subject, std::slice::from_ref(&grant_id), checkpoint)?;
    println!("{bundle}");
    Ok(())
}

/// The records of the grants' evidence chains (each grant's records and its
/// request's), with inclusion proofs against `checkpoint` or the smallest
/// stored checkpoint that covers them, as bundle JSON.
pub fn bundle(log: &Log, subject: Subject, grants: &[GrantId], checkpoint: Option<&Path>) -> Result<String, Failure> {
    let mut sequences = Vec::new();
    for grant_id in grants {
        sequences.extend(
            log.sequences_for_grant(grant_id.as_str().as_bytes(), EVIDENCE_RECORDS_MAX).map_err(|e| anyhow!("{e}"))?,
        );
        if let Some(request) = grant_id.request() {
            sequences.extend(
                log.sequences_for_request(request.as_str().as_bytes(), EVIDENCE_RECORDS_MAX)
                    .map_err(|e| anyhow!("{e}"))?,
            );
        }
    }
    sequences.sort_unstable();
    sequences.dedup();
    let Some(&last) = sequences.last() else {
        let names: Vec<&str> = grants.iter().map(GrantId::as_str).collect();
        return Err(anyhow!("the log holds no record of {}", names.join(", ")).into());
    };
    let text = match checkpoint {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?,
        None => log
            .checkpoints(last, 1)
            .map_err(|e| anyhow!("{e}"))?
            .into_iter()
            .next()
            .map(|(_, text)| text)
            .ok_or_else(|| {
                anyhow!("no stored checkpoint covers record `{last}` yet: make one with `grantledger checkpoint`")
            })?,
    };
    let signed = SignedCheckpoint::parse(&text).map_err(|e| anyhow!("the checkpoint: {e}"))?;
    let size = signed.unverified_checkpoint().tree_size;
    if size < last || size > log.tree_size() {
        return Err(anyhow!(
            "the checkpoint covers `{size}` records: it must cover record `{last}` and not exceed the log's `{}`",
            log.tree_size()
        )
        .into());
    }
    let mut builder = BundleBuilder::new(signed, subject);
    for sequence in sequences {
        let record = log.read(sequence).map_err(|e| anyhow!("{e}"))?.ok_or_else(|| anyhow!("record `{sequence}` is missing"))?;
        let mut stored = record.header.encode().to_vec();
        stored.extend_from_slice(&record.body);
        let committed = grantledger_ledger::committed(&record).map_err(|e| anyhow!("{e}"))?;
        let proof = log.inclusion_proof(sequence - 1, size).map_err(|e| anyhow!("{e}"))?;
        builder
            .push_event(&stored, &proof, serde_json::to_value(&committed).expect("serializable"))
            .map_err(|e| anyhow!("{e}"))?;
    }
    Ok(builder.build().map_err(|e| anyhow!("{e}"))?.to_json())
}
