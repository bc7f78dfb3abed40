//! Helpers shared by the projector tests and benchmark: simulated logs made
//! by the core's workload and the ledger (as `grantledger simulate` makes
//! them), and hand-built committed events for targeted cases.

#![allow(dead_code)]

use std::path::Path;

use grantledger_core::{Catalog, Command, DEFAULT_CATALOG, Workload};
use grantledger_events::{
    Causation, Committed, EntitlementId, Envelope, Event, GrantId, GrantIssued, GrantRevoked,
    Principal, PrincipalId, PrincipalKind, RequestId, ResourceId, RevocationConfirmed,
    RevocationReason, TenantId, Timestamp,
};
use grantledger_ledger::{Input, Ledger};
use grantledger_log::{Log, LogOptions};
use grantledger_projector::committed_from_record;

/// The simulated clock's start, as in `grantledger simulate`.
pub const START: Timestamp = Timestamp(1_767_225_600_000);

/// Writes a log of `requests` simulated requests into `dir` and returns the
/// head sequence. Unsynced: a throwaway fixture.
pub fn simulate(dir: &Path, requests: u64, seed: u64) -> u64 {
    let options = LogOptions {
        sync: false,
        ..LogOptions::default()
    };
    let mut ledger = Ledger::create(dir, TenantId::new("sim").unwrap(), options).unwrap();
    let catalog = Catalog::parse(DEFAULT_CATALOG).unwrap();
    let mut workload = Workload::new(seed, &catalog);
    let input = |command| Input {
        command,
        producer: "test".into(),
        causation: Causation::Timer,
    };
    let mut batch = ledger.begin(START).unwrap();
    let published_by = PrincipalId::new("catalog-admin").unwrap();
    batch
        .stage(input(Command::PublishCatalog {
            text: DEFAULT_CATALOG.into(),
            published_by,
        }))
        .unwrap();
    batch.commit().unwrap();
    let mut now = START;
    let mut submitted = 0;
    while submitted < requests {
        let mut batch = ledger.begin(now).unwrap();
        let mut next = batch.time();
        while batch.len() < 256 && submitted < requests {
            let (command, after) = workload.next(batch.state(), batch.time());
            next = next.max(after);
            submitted += u64::from(matches!(command, Command::Submit(_)));
            let _ = batch.stage(input(command));
        }
        batch.commit().unwrap();
        now = next;
    }
    ledger.log().head().sequence
}

/// Every committed event of the log, in order.
pub fn committed_events(log: &Log) -> Vec<Committed> {
    log.iter_from(1)
        .map(|record| committed_from_record(&record.unwrap()).unwrap())
        .collect()
}

/// A committed event, hand-built; the hash is derived from the sequence so
/// a replay of the same list has the same hashes.
pub fn committed(sequence: u64, time: Timestamp, request: &str, event: Event) -> Committed {
    Committed {
        sequence,
        time,
        hash: blake3::hash(&sequence.to_be_bytes()).to_hex().to_string(),
        envelope: Envelope {
            tenant: TenantId::new("acme").unwrap(),
            producer: "test".into(),
            correlation: RequestId::new(request).unwrap(),
            causation: Causation::Timer,
            event,
        },
    }
}

/// A human principal.
pub fn human(name: &str) -> Principal {
    Principal {
        id: PrincipalId::new(name).unwrap(),
        kind: PrincipalKind::Human,
        owner: None,
    }
}

/// A `GrantIssued` for request `request`, issued at `issued_at`.
pub fn grant_issued(
    request: &str,
    principal: &str,
    resource: &str,
    actions: &[&str],
    issued_at: Timestamp,
    expires_at: Timestamp,
) -> Event {
    let request_id = RequestId::new(request).unwrap();
    Event::GrantIssued(GrantIssued {
        grant_id: GrantId::for_request(&request_id),
        request_id,
        principal: human(principal),
        entitlement: EntitlementId::new("db-read").unwrap(),
        resource: ResourceId::new(resource).unwrap(),
        actions: actions.iter().map(|action| action.to_string()).collect(),
        issued_at,
        expires_at,
        expires_at_cap: expires_at.plus_ms(3_600_000),
        break_glass: false,
    })
}

/// A `GrantRevoked` of request `request`'s grant.
pub fn grant_revoked(request: &str, reason: RevocationReason) -> Event {
    Event::GrantRevoked(GrantRevoked {
        grant_id: grant_of(request),
        reason,
        revoked_by: None,
        detail: String::new(),
    })
}

/// A `RevocationConfirmed` of request `request`'s grant.
pub fn revocation_confirmed(request: &str) -> Event {
    Event::RevocationConfirmed(RevocationConfirmed {
        grant_id: grant_of(request),
        worker: "worker-1".into(),
    })
}

/// The grant id of request `request`.
pub fn grant_of(request: &str) -> GrantId {
    GrantId::for_request(&RequestId::new(request).unwrap())
}

/// A deterministic PRNG (splitmix64) for shuffles and picks.
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}
