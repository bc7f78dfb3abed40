//! `recheck`: every recorded decision evaluated again with what was in force
//! at its sequence number, the log alone as input.

use std::collections::HashMap;
use std::sync::Arc;

use grantledger_core::{State, apply};
use grantledger_events::{DecisionBasis, DecisionRecorded, Event, RequestId, RequestSubmitted, Timestamp};
use grantledger_log::Log;
use grantledger_policy::Engine;
use serde_json::json;

use crate::engine::{policy_request, recorded_inputs, to_engine_decision};
use crate::{LedgerError, decode_record, engine_after};

/// A recorded decision that does not come out the same when evaluated again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// The `DecisionRecorded` record.
    pub sequence: u64,
    /// The request decided.
    pub request_id: RequestId,
    /// What the record says (the fields that differ, as JSON).
    pub recorded: String,
    /// What the evaluation gives now (the same fields, as JSON), or why the
    /// recorded request cannot be evaluated again.
    pub rechecked: String,
}

/// What a recheck found.
#[derive(Debug)]
pub struct RecheckReport {
    /// Records read.
    pub records: u64,
    /// Decisions re-evaluated by the policy engine.
    pub by_policy: u64,
    /// Decisions made by the catalog rules alone, re-run by the core's
    /// `apply` (a differing one fails the replay at its sequence).
    pub by_catalog: u64,
    /// Every policy decision that came out differently, in log order.
    pub differences: Vec<Difference>,
    /// The record at which the replay had to stop, when one breaks a rule
    /// of the ledger (or does not decode); nothing after it was checked.
    pub broken: Option<LedgerError>,
    /// The state at the last record applied.
    pub state: State,
}

/// Replays the whole log and evaluates every decision of the policy engine
/// again, with the policy set and catalog in force at its sequence number,
/// the request as recorded, the context values the decision recorded and
/// the record's ledger time. Every difference is reported; the replay goes
/// on past them (they are well formed, or `apply` would refuse them).
pub fn recheck(log: &Log, mut progress: impl FnMut(u64)) -> Result<RecheckReport, LedgerError> {
    let mut report = RecheckReport {
        records: 0,
        by_policy: 0,
        by_catalog: 0,
        differences: Vec::new(),
        broken: None,
        state: State::default(),
    };
    let mut engine: Option<Arc<Engine>> = None;
    // Requests recorded and not yet decided (a decision follows its request
    // in the same input, so this stays small).
    let mut undecided: HashMap<RequestId, RequestSubmitted> = HashMap::new();
    for record in log.iter_from(1) {
        let record = record?;
        let sequence = record.header.sequence;
        let time = Timestamp(record.header.time_ms);
        let envelope = match decode_record(record.header.version, sequence, &record.body) {
            Ok(envelope) => envelope,
            Err(error) => {
                report.broken = Some(error);
                break;
            }
        };
        match &envelope.event {
            Event::RequestSubmitted(e) => {
                undecided.insert(e.request_id.clone(), e.clone());
            }
            Event::DecisionRecorded(decision) => {
                let submitted = undecided.remove(&decision.request_id);
                match (&decision.basis, &engine, submitted) {
                    (DecisionBasis::Catalog, _, _) => report.by_catalog += 1,
                    (DecisionBasis::Policy(_), Some(engine), Some(submitted)) => {
                        report.by_policy += 1;
                        let in_force = report.state.policy_hash().unwrap_or_default().to_string();
                        if let Some(difference) =
                            reevaluate(engine, &in_force, &submitted, decision, time, sequence)
                        {
                            report.differences.push(difference);
                        }
                    }
                    // No engine in force, or no request: `apply` refuses it below.
                    (DecisionBasis::Policy(_), _, _) => {}
                }
            }
            _ => {}
        }
        if let Err(error) = apply(&mut report.state, &envelope.event, time) {
            report.broken = Some(LedgerError::Apply { sequence, error });
            break;
        }
        match engine_after(&report.state, &envelope.event, sequence) {
            Ok(Some(next)) => engine = Some(next),
            Ok(None) => {}
            Err(error) => {
                report.broken = Some(error);
                break;
            }
        }
        report.records = sequence;
        progress(sequence);
    }
    Ok(report)
}

fn reevaluate(
    engine: &Engine,
    policy_hash: &str,
    submitted: &RequestSubmitted,
    recorded: &DecisionRecorded,
    time: Timestamp,
    sequence: u64,
) -> Option<Difference> {
    let DecisionBasis::Policy(basis) = &recorded.basis else { return None };
    let cannot = |why: String| Difference {
        sequence,
        request_id: recorded.request_id.clone(),
        recorded: summary(recorded, None),
        rechecked: format!("cannot be evaluated again: {why}"),
    };
    let (groups, context) = match recorded_inputs(&basis.evaluated) {
        Ok(inputs) => inputs,
        Err(why) => return Some(cannot(why)),
    };
    let request = match policy_request(submitted, groups, &context, time) {
        Ok(request) => request,
        Err(error) => return Some(cannot(error.to_string())),
    };
    let decision = match engine.evaluate(&request) {
        Ok(decision) => to_engine_decision(decision, policy_hash),
        Err(error) => return Some(cannot(error.to_string())),
    };
    let again = DecisionRecorded {
        request_id: recorded.request_id.clone(),
        outcome: decision.outcome,
        reasons: decision.reasons,
        entitlement: recorded.entitlement.clone(),
        catalog_hash: decision.catalog_hash,
        ttl_granted_ms: decision.ttl_granted_ms,
        basis: DecisionBasis::Policy(decision.basis),
    };
    if again == *recorded {
        return None;
    }
    Some(Difference {
        sequence,
        request_id: recorded.request_id.clone(),
        recorded: summary(recorded, Some(&again)),
        rechecked: summary(&again, Some(recorded)),
    })
}

/// The fields of `decision` that differ from `other` (all of them when
/// there is nothing to compare with), as compact JSON.
fn summary(decision: &DecisionRecorded, other: Option<&DecisionRecorded>) -> String {
    // INVARIANT: events always serialize to JSON.
    let mine = serde_json::to_value(decision).expect("events render as JSON");
    let theirs = other.map(|other| serde_json::to_value(other).expect("events render as JSON"));
    let mut fields = serde_json::Map::new();
    let flatten = |value: &serde_json::Value| {
        let mut flat = serde_json::Map::new();
        if let Some(map) = value.as_object() {
            for (key, item) in map {
                if key == "basis" {
                    if let Some(policy) = item.get("policy").and_then(|p| p.as_object()) {
                        for (inner, v) in policy {
                            flat.insert(inner.clone(), v.clone());
                        }
                        continue;
                    }
                }
                flat.insert(key.clone(), item.clone());
            }
        }
        flat
    };
    let mine = flatten(&mine);
    let theirs = theirs.as_ref().map(flatten);
    for (key, value) in &mine {
        if theirs.as_ref().is_none_or(|theirs| theirs.get(key) != Some(value)) {
            fields.insert(key.clone(), value.clone());
        }
    }
    json!(fields).to_string()
}
