//! The projections against real RocksDB stores in temp dirs, fed logs made
//! by the core's workload and the ledger, with the core's in-memory state as
//! the oracle; plus hand-built event lists for the edges (expiry exactly at
//! `expires_at`, the storm, the outbox across restarts, findings).

mod common;

use std::collections::BTreeSet;

use common::*;
use grantledger_core::State;
use grantledger_events::{
    ApprovalRecorded, ApprovalVerdict, BreakGlassInvoked, Committed, DecisionOutcome,
    DecisionRecorded, EntitlementId, Event, IdentityRefused, Principal, PrincipalId,
    PrincipalKind, PrincipalOffboarded, RequestId, RequestSubmitted, ResourceId, ReviewRecorded,
    ReviewVerdict, RevocationReason, Timestamp,
};
use grantledger_ledger::fold;
use grantledger_log::Log;
use grantledger_projector::{
    AuditEvidence, CurrentGrants, Digest, Evidence, ExpiryTimers, Finding, FindingRules,
    Projection, Projector, ProjectorErrorKind, TIMER_RESEND_AFTER_MS, rebuild_from_log,
};

/// A simulated log, its events and the core's state at its head.
struct Fixture {
    _dir: tempfile::TempDir,
    log: Log,
    events: Vec<Committed>,
    state: State,
}

fn fixture(requests: u64, seed: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), requests, seed);
    let log = Log::open_read_only(dir.path()).unwrap();
    let events = committed_events(&log);
    let state = fold(&log, None, u64::MAX, |_| {}).unwrap();
    Fixture {
        _dir: dir,
        log,
        events,
        state,
    }
}

fn clean_digest<P: Projection>(events: &[Committed]) -> Digest {
    let dir = tempfile::tempdir().unwrap();
    let mut projector = Projector::<P>::open(dir.path()).unwrap();
    let outcome = projector.apply(events).unwrap();
    assert_eq!(outcome.gap, None);
    assert_eq!(outcome.cursor, events.len() as u64);
    projector.digest().unwrap()
}

/// Delivers `events` in batches of varying size, each overlapping the
/// previous one (duplicates), dropping and reopening the store every few
/// batches (restarts).
fn messy_digest<P: Projection>(events: &[Committed], rng: &mut Rng) -> Digest {
    let dir = tempfile::tempdir().unwrap();
    let mut projector = Projector::<P>::open(dir.path()).unwrap();
    let mut next = 0usize;
    let mut batches = 0;
    let mut duplicates = 0;
    while next < events.len() {
        let size = [1, 3, 17, 250, 5000][rng.below(5) as usize];
        let overlap = rng.below(4) as usize;
        let from = next.saturating_sub(overlap);
        let to = (next + size).min(events.len());
        let outcome = projector.apply(&events[from..to]).unwrap();
        assert_eq!(outcome.gap, None);
        assert_eq!(outcome.cursor, to as u64);
        duplicates += outcome.duplicates;
        next = to;
        batches += 1;
        if batches % 7 == 0 {
            drop(projector);
            projector = Projector::<P>::open(dir.path()).unwrap();
            assert_eq!(
                projector.cursor(),
                to as u64,
                "the cursor survives a restart"
            );
        }
    }
    assert!(duplicates > 0, "the delivery repeated some events");
    projector.digest().unwrap()
}

fn assert_replays_bit_for_bit<P: Projection>(fixture: &Fixture) {
    let clean = clean_digest::<P>(&fixture.events);
    for seed in [1, 2] {
        let messy = messy_digest::<P>(&fixture.events, &mut Rng(seed));
        assert_eq!(messy, clean, "{}: seed {seed}", P::NAME);
    }
    let dir = tempfile::tempdir().unwrap();
    let rebuilt =
        rebuild_from_log(&fixture.log, P::NAME, &dir.path().join("store"), |_| {}).unwrap();
    assert_eq!(rebuilt, clean, "{}: offline rebuild", P::NAME);
    // A digest covers the state: one event fewer gives another digest.
    let shorter = clean_digest::<P>(&fixture.events[..fixture.events.len() - 1]);
    assert_ne!(shorter.digest, clean.digest);
}

#[test]
fn digests_are_independent_of_batches_duplicates_and_restarts() {
    let fixture = fixture(3_000, 7);
    assert_replays_bit_for_bit::<CurrentGrants>(&fixture);
    assert_replays_bit_for_bit::<ExpiryTimers>(&fixture);
    assert_replays_bit_for_bit::<AuditEvidence>(&fixture);
}

/// Out-of-order delivery is not buffered: the projector reports the gap,
/// the test (as the NATS runtime would) backfills exactly the missing range
/// from the log, and the digest converges to the clean replay's.
fn assert_gaps_backfill_to_clean<P: Projection>(events: &[Committed]) {
    let clean = clean_digest::<P>(events);
    let dir = tempfile::tempdir().unwrap();
    let mut projector = Projector::<P>::open(dir.path()).unwrap();
    let mut rng = Rng(11);
    // Deliver in windows of 16 shuffled events, as a redelivering consumer
    // might.
    let mut order: Vec<usize> = (0..events.len()).collect();
    for window in order.chunks_mut(16) {
        for index in (1..window.len()).rev() {
            window.swap(index, rng.below(index as u64 + 1) as usize);
        }
    }
    let mut gaps = 0;
    for index in order {
        let before = projector.cursor();
        let outcome = projector
            .apply(std::slice::from_ref(&events[index]))
            .unwrap();
        if let Some(gap) = outcome.gap {
            gaps += 1;
            assert_eq!(gap.from, before + 1);
            assert_eq!(gap.to, events[index].sequence - 1);
            assert_eq!(outcome.applied, 0);
            assert_eq!(outcome.cursor, before, "nothing past a gap is applied");
            let backfill = &events[(gap.from - 1) as usize..gap.to as usize];
            let filled = projector.apply(backfill).unwrap();
            assert_eq!(filled.applied, backfill.len() as u64);
            projector
                .apply(std::slice::from_ref(&events[index]))
                .unwrap();
        }
    }
    assert!(gaps > 0, "the shuffle caused gaps");
    assert_eq!(projector.digest().unwrap(), clean, "{}", P::NAME);
}

#[test]
fn out_of_order_delivery_reports_gaps_and_converges_after_backfill() {
    let fixture = fixture(400, 3);
    assert_gaps_backfill_to_clean::<CurrentGrants>(&fixture.events);
    assert_gaps_backfill_to_clean::<ExpiryTimers>(&fixture.events);
    assert_gaps_backfill_to_clean::<AuditEvidence>(&fixture.events);
}

#[test]
fn a_delivered_record_with_another_hash_at_the_cursor_is_divergence() {
    let dir = tempfile::tempdir().unwrap();
    let mut projector = Projector::<CurrentGrants>::open(dir.path()).unwrap();
    let at = START;
    let event = grant_issued("r1", "alice", "db/prod/x", &["read"], at, at.plus_ms(1000));
    projector
        .apply(&[committed(1, at, "r1", event.clone())])
        .unwrap();
    let mut forged = committed(1, at, "r1", event);
    forged.hash = "00".repeat(32);
    let error = projector.apply(&[forged]).unwrap_err();
    assert_eq!(error.kind(), ProjectorErrorKind::Diverged);
    assert!(error.to_string().contains("record `1`"), "{error}");
}

#[test]
fn stores_refuse_another_projection_and_rebuilds_refuse_a_non_empty_dir() {
    let dir = tempfile::tempdir().unwrap();
    drop(Projector::<CurrentGrants>::open(dir.path()).unwrap());
    let error = Projector::<AuditEvidence>::open(dir.path()).err().unwrap();
    assert_eq!(error.kind(), ProjectorErrorKind::WrongProjection);
    assert!(error.to_string().contains("`current-grants`"), "{error}");

    let log_dir = tempfile::tempdir().unwrap();
    simulate(log_dir.path(), 5, 1);
    let log = Log::open_read_only(log_dir.path()).unwrap();
    let error = rebuild_from_log(&log, "current-grants", dir.path(), |_| {}).unwrap_err();
    assert_eq!(error.kind(), ProjectorErrorKind::StoreNotEmpty);
    let error = rebuild_from_log(&log, "grants", &dir.path().join("new"), |_| {}).unwrap_err();
    assert_eq!(error.kind(), ProjectorErrorKind::UnknownProjection);
    assert!(error.to_string().contains("`grants`"), "{error}");
}

#[test]
fn an_event_about_an_unknown_grant_is_refused_and_nothing_of_its_batch_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut projector = Projector::<ExpiryTimers>::open(dir.path()).unwrap();
    let at = START;
    let events = [
        committed(
            1,
            at,
            "r1",
            grant_issued("r1", "alice", "db/x", &["read"], at, at.plus_ms(10)),
        ),
        committed(2, at, "r9", grant_revoked("r9", RevocationReason::Manual)),
    ];
    let error = projector.apply(&events).unwrap_err();
    assert_eq!(error.kind(), ProjectorErrorKind::Inconsistent);
    assert!(
        error.to_string().contains("record `2`") && error.to_string().contains("grant:r9"),
        "{error}"
    );
    assert_eq!(projector.cursor(), 0);
    assert_eq!(projector.due(at.plus_ms(10), 10).unwrap(), vec![]);
}

// ---- current-grants ----

#[test]
fn check_is_false_at_expires_at_exactly_with_no_revocation_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut projector = Projector::<CurrentGrants>::open(dir.path()).unwrap();
    let issued = START;
    let expires = issued.plus_ms(60_000);
    projector
        .apply(&[committed(
            1,
            issued,
            "r1",
            grant_issued("r1", "alice", "db/prod/x", &["read"], issued, expires),
        )])
        .unwrap();
    let alice = PrincipalId::new("alice").unwrap();
    let resource = ResourceId::new("db/prod/x").unwrap();
    assert!(projector.check(&alice, "read", &resource, issued).unwrap());
    assert!(
        projector
            .check(&alice, "read", &resource, Timestamp(expires.0 - 1))
            .unwrap()
    );
    assert!(!projector.check(&alice, "read", &resource, expires).unwrap());
    assert!(
        !projector
            .check(&alice, "read", &resource, expires.plus_ms(1))
            .unwrap()
    );
    assert!(!projector.check(&alice, "write", &resource, issued).unwrap());
    // The grant is still unrevoked in the log, so it is still counted, but
    // no query reports it in force.
    assert_eq!(
        projector.access_count(&alice, &resource, "read").unwrap(),
        1
    );
    assert_eq!(projector.grants_of(&alice, expires, 10).unwrap(), vec![]);
    assert_eq!(
        projector.holders_of(&resource, expires, 10).unwrap(),
        vec![]
    );
    assert_eq!(projector.grants_of(&alice, issued, 10).unwrap().len(), 1);
}

#[test]
fn overlapping_grants_are_counted_and_revoking_one_keeps_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let mut projector = Projector::<CurrentGrants>::open(dir.path()).unwrap();
    let at = START;
    let later = at.plus_ms(3_600_000);
    projector
        .apply(&[
            committed(
                1,
                at,
                "r1",
                grant_issued("r1", "alice", "db/x", &["read", "write"], at, later),
            ),
            committed(
                2,
                at,
                "r2",
                grant_issued("r2", "alice", "db/x", &["read"], at, later),
            ),
            committed(3, at, "r1", grant_revoked("r1", RevocationReason::Manual)),
        ])
        .unwrap();
    let alice = PrincipalId::new("alice").unwrap();
    let resource = ResourceId::new("db/x").unwrap();
    assert_eq!(
        projector.access_count(&alice, &resource, "read").unwrap(),
        1
    );
    assert_eq!(
        projector.access_count(&alice, &resource, "write").unwrap(),
        0
    );
    assert!(projector.check(&alice, "read", &resource, at).unwrap());
    assert!(!projector.check(&alice, "write", &resource, at).unwrap());
    let held: Vec<_> = projector
        .grants_of(&alice, at, 10)
        .unwrap()
        .into_iter()
        .map(|g| g.grant_id)
        .collect();
    assert_eq!(held, vec![grant_of("r2")]);
}

#[test]
fn current_grants_agree_with_the_core_state_on_a_simulated_log() {
    let fixture = fixture(3_000, 5);
    let dir = tempfile::tempdir().unwrap();
    let projector =
        Projector::<CurrentGrants>::rebuild(&fixture.log, &dir.path().join("s"), |_| {}).unwrap();
    let state = &fixture.state;
    let head = state.time_last().unwrap();
    let mut checked = 0;
    let mut true_answers = 0;
    for grant in state.grants() {
        for action in grant
            .actions
            .iter()
            .map(String::as_str)
            .chain(["no-such-action"])
        {
            for at in [head, head.plus_ms(60_000), head.plus_ms(3_600_000)] {
                let expected = state.check(&grant.principal.id, action, &grant.resource, at);
                let found = projector
                    .check(&grant.principal.id, action, &grant.resource, at)
                    .unwrap();
                assert_eq!(
                    found, expected,
                    "{} {action} {} at {at}",
                    grant.principal.id, grant.resource
                );
                checked += 1;
                true_answers += u64::from(found);
            }
            assert_eq!(
                projector
                    .access_count(&grant.principal.id, &grant.resource, action)
                    .unwrap(),
                state.access_count(&grant.principal.id, &grant.resource, action)
            );
        }
    }
    assert!(
        checked > 1000 && true_answers > 10,
        "{checked} checks, {true_answers} true"
    );
    let pending: Vec<(RequestId, Vec<PrincipalId>)> = projector
        .pending(10_000)
        .unwrap()
        .into_iter()
        .map(|p| (p.request_id, p.approvals))
        .collect();
    let expected: Vec<(RequestId, Vec<PrincipalId>)> = state
        .pending_requests(10_000)
        .into_iter()
        .map(|p| (p.request_id, p.approvals))
        .collect();
    let sorted = |mut list: Vec<(RequestId, Vec<PrincipalId>)>| {
        list.sort();
        list
    };
    assert_eq!(sorted(pending), sorted(expected));
}

// ---- expiry-timers ----

#[test]
fn expiry_timers_agree_with_the_core_state_on_a_simulated_log() {
    let fixture = fixture(3_000, 9);
    let dir = tempfile::tempdir().unwrap();
    let mut projector =
        Projector::<ExpiryTimers>::rebuild(&fixture.log, &dir.path().join("s"), |_| {}).unwrap();
    let state = &fixture.state;
    let now = state.time_last().unwrap().plus_ms(3_600_000);
    let due: BTreeSet<_> = projector
        .due(now, 10_000)
        .unwrap()
        .into_iter()
        .map(|t| t.grant_id().cloned().expect("the workload schedules no start"))
        .collect();
    let expected: BTreeSet<_> = state.due_expiries(now, 100_000).into_iter().collect();
    assert!(!expected.is_empty());
    assert_eq!(due, expected);
    let debt: BTreeSet<_> = projector
        .revocation_debt(now, 10_000)
        .unwrap()
        .into_iter()
        .filter(|item| item.reason.is_some())
        .map(|item| item.grant_id)
        .collect();
    let expected: BTreeSet<_> = state
        .revocation_debt(100_000)
        .into_iter()
        .map(|d| d.grant_id)
        .collect();
    assert_eq!(debt, expected);
    // Every revoked, unconfirmed grant is waiting in the outbox (nothing was
    // published yet).
    let outbox: BTreeSet<_> = projector
        .to_publish(10_000)
        .unwrap()
        .into_iter()
        .map(|p| p.grant_id)
        .collect();
    assert_eq!(outbox, expected);
}

#[test]
fn a_storm_of_100000_expiries_in_one_second_is_handed_out_once_in_bounded_batches() {
    const STORM: u64 = 100_000;
    const LATER: u64 = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let mut projector = Projector::<ExpiryTimers>::open(dir.path()).unwrap();
    let issued = START;
    let second = issued.plus_ms(3_600_000);
    let mut events = Vec::new();
    for index in 0..STORM + LATER {
        let request = format!("r{index}");
        // Spread over the same second; the later ones expire a day after.
        let expires = if index < STORM {
            second.plus_ms((index % 1000) as i64)
        } else {
            second.plus_ms(86_400_000)
        };
        let resource = if index % 2 == 0 {
            "db/prod/orders"
        } else {
            "deploy/prod/api"
        };
        events.push(committed(
            index + 1,
            issued,
            &request,
            grant_issued(&request, "svc", resource, &["read"], issued, expires),
        ));
    }
    for chunk in events.chunks(10_000) {
        projector.apply(chunk).unwrap();
    }
    let now = second.plus_ms(999);
    let mut seen = BTreeSet::new();
    let mut calls = 0;
    loop {
        let batch = projector.due(now, 1_000).unwrap();
        assert!(batch.len() <= 1_000);
        calls += 1;
        if batch.is_empty() {
            break;
        }
        for timer in batch {
            assert!(timer.at() <= now);
            let grant_id = timer.grant_id().expect("an expiry").clone();
            assert!(
                seen.insert(grant_id.clone()),
                "`{grant_id}` handed out twice"
            );
        }
    }
    assert_eq!(seen.len() as u64, STORM, "none lost");
    assert!(calls >= 100);
    // Within the resend interval nothing comes back; after it, the timers
    // the ledger has not recorded do.
    assert!(projector.due(now.plus_ms(1), 1_000).unwrap().is_empty());

    // A restart forgets the pass: every missed timer is due at once.
    drop(projector);
    let mut projector = Projector::<ExpiryTimers>::open(dir.path()).unwrap();
    let mut again = 0;
    loop {
        let batch = projector.due(now, 10_000).unwrap();
        if batch.is_empty() {
            break;
        }
        again += batch.len();
    }
    assert_eq!(again as u64, STORM);

    // The ledger records the expiries: nothing is due any more, and every
    // revocation is published once through the outbox.
    let mut sequence = STORM + LATER;
    let revocations: Vec<_> = seen
        .iter()
        .map(|grant_id| {
            sequence += 1;
            let request = grant_id.request().unwrap();
            committed(
                sequence,
                now,
                request.as_str(),
                grant_revoked(request.as_str(), RevocationReason::Expired),
            )
        })
        .collect();
    for chunk in revocations.chunks(10_000) {
        projector.apply(chunk).unwrap();
    }
    assert!(
        projector
            .due(now.plus_ms(TIMER_RESEND_AFTER_MS), 10_000)
            .unwrap()
            .is_empty()
    );
    let mut published = BTreeSet::new();
    loop {
        let batch = projector.to_publish(1_000).unwrap();
        if batch.is_empty() {
            break;
        }
        let ids: Vec<u64> = batch.iter().map(|p| p.id).collect();
        for publication in batch {
            let expected_kind = if publication.resource.as_str().starts_with("db/") {
                "db"
            } else {
                "deploy"
            };
            assert_eq!(publication.resource_kind, expected_kind);
            assert_eq!(publication.reason, RevocationReason::Expired);
            assert!(published.insert(publication.grant_id));
        }
        assert_eq!(projector.mark_published(&ids).unwrap(), ids.len());
    }
    assert_eq!(published, seen);
}

#[test]
fn the_outbox_reads_on_past_what_was_published_and_keeps_what_was_not() {
    // `to_publish` starts from the lowest id it last found: an item left
    // unpublished there (its publish failed) must still come back, and
    // revocations applied later must be found after the ones marked.
    let dir = tempfile::tempdir().unwrap();
    let mut projector = Projector::<ExpiryTimers>::open(dir.path()).unwrap();
    let at = START;
    let expires = at.plus_ms(60_000);
    let grants = ["a", "b", "c", "d", "e"];
    let mut sequence = 0;
    let mut next = || {
        sequence += 1;
        sequence
    };
    for request in grants {
        let issued = grant_issued(request, "alice", "db/x", &["read"], at, expires);
        projector.apply(&[committed(next(), at, request, issued)]).unwrap();
    }
    let ids = |projector: &Projector<ExpiryTimers>| -> Vec<u64> {
        projector.to_publish(10).unwrap().into_iter().map(|p| p.id).collect()
    };
    for request in ["a", "b", "c"] {
        let revoked = grant_revoked(request, RevocationReason::Manual);
        projector.apply(&[committed(next(), at.plus_ms(5), request, revoked)]).unwrap();
    }
    assert_eq!(ids(&projector), vec![6, 7, 8]);
    // The first item's publish failed; the others went out.
    assert_eq!(projector.mark_published(&[7, 8]).unwrap(), 2);
    assert_eq!(ids(&projector), vec![6]);
    for request in ["d", "e"] {
        let revoked = grant_revoked(request, RevocationReason::Manual);
        projector.apply(&[committed(next(), at.plus_ms(6), request, revoked)]).unwrap();
    }
    assert_eq!(ids(&projector), vec![6, 9, 10]);
    assert_eq!(projector.mark_published(&[6, 9, 10]).unwrap(), 3);
    assert_eq!(ids(&projector), Vec::<u64>::new());
}

#[test]
fn the_outbox_survives_restarts_and_empties_only_when_published_or_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let mut projector = Projector::<ExpiryTimers>::open(dir.path()).unwrap();
    let at = START;
    let expires = at.plus_ms(60_000);
    let mut events = Vec::new();
    for (index, request) in ["a", "b", "c"].iter().enumerate() {
        events.push(committed(
            index as u64 + 1,
            at,
            request,
            grant_issued(request, "alice", "db/x", &["read"], at, expires),
        ));
    }
    events.push(committed(
        4,
        at.plus_ms(5),
        "a",
        grant_revoked("a", RevocationReason::Manual),
    ));
    events.push(committed(
        5,
        at.plus_ms(6),
        "b",
        grant_revoked("b", RevocationReason::RiskSignal),
    ));
    events.push(committed(
        6,
        at.plus_ms(7),
        "c",
        grant_revoked("c", RevocationReason::TaskComplete),
    ));
    projector.apply(&events).unwrap();
    let digest_before = projector.digest().unwrap();
    let ids = |projector: &Projector<ExpiryTimers>| -> Vec<u64> {
        projector
            .to_publish(10)
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect()
    };
    assert_eq!(ids(&projector), vec![4, 5, 6]);
    // Publishing without marking (a crash before the mark): all come back.
    drop(projector);
    let mut projector = Projector::<ExpiryTimers>::open(dir.path()).unwrap();
    assert_eq!(ids(&projector), vec![4, 5, 6]);
    assert_eq!(projector.mark_published(&[4, 99]).unwrap(), 1);
    drop(projector);
    let mut projector = Projector::<ExpiryTimers>::open(dir.path()).unwrap();
    assert_eq!(ids(&projector), vec![5, 6]);
    // The outbox is delivery progress, not state: the digest ignores it.
    assert_eq!(projector.digest().unwrap(), digest_before);
    // A confirmation takes the grant out of the outbox and out of the debt.
    projector
        .apply(&[committed(7, at.plus_ms(8), "b", revocation_confirmed("b"))])
        .unwrap();
    assert_eq!(ids(&projector), vec![6]);
    let now = at.plus_ms(1_000);
    let debt = projector.revocation_debt(now, 10).unwrap();
    let debt: Vec<_> = debt
        .iter()
        .map(|d| (d.grant_id.clone(), d.reason, d.age_ms))
        .collect();
    assert_eq!(
        debt,
        vec![
            (grant_of("a"), Some(RevocationReason::Manual), 995),
            (grant_of("c"), Some(RevocationReason::TaskComplete), 993),
        ]
    );
}

#[test]
fn revocation_debt_counts_expired_grants_before_their_expiry_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut projector = Projector::<ExpiryTimers>::open(dir.path()).unwrap();
    let at = START;
    projector
        .apply(&[
            committed(
                1,
                at,
                "a",
                grant_issued("a", "alice", "db/x", &["read"], at, at.plus_ms(100)),
            ),
            committed(
                2,
                at,
                "b",
                grant_issued("b", "bob", "db/x", &["read"], at, at.plus_ms(500)),
            ),
            committed(
                3,
                at.plus_ms(200),
                "b",
                grant_revoked("b", RevocationReason::Manual),
            ),
        ])
        .unwrap();
    let debt = projector.revocation_debt(at.plus_ms(1_000), 10).unwrap();
    let debt: Vec<_> = debt
        .iter()
        .map(|d| (d.grant_id.clone(), d.reason, d.since, d.age_ms))
        .collect();
    assert_eq!(
        debt,
        vec![
            (grant_of("a"), None, at.plus_ms(100), 900),
            (
                grant_of("b"),
                Some(RevocationReason::Manual),
                at.plus_ms(200),
                800
            ),
        ]
    );
    assert_eq!(projector.next_expiry().unwrap(), Some(at.plus_ms(100)));
}

// ---- audit-evidence ----

#[test]
fn why_answers_agree_with_the_core_state_and_carry_the_evidence_chain() {
    let fixture = fixture(3_000, 13);
    let dir = tempfile::tempdir().unwrap();
    let projector =
        Projector::<AuditEvidence>::rebuild(&fixture.log, &dir.path().join("s"), |_| {}).unwrap();
    let state = &fixture.state;
    let catalog_hash = state.catalog_hash().unwrap().to_owned();
    let grants: Vec<_> = state.grants().collect();
    let mut rng = Rng(5);
    let mut with_access = 0;
    let mut an_answer_with_access = None;
    for _ in 0..400 {
        let grant = &grants[rng.below(grants.len() as u64) as usize];
        // A time inside the grant's life, at its start, at its end, after.
        let end = grant
            .revocation
            .as_ref()
            .map_or(grant.expires_at, |r| r.at.min(grant.expires_at));
        let span = (end.0 - grant.issued_at.0).max(1);
        let at = match rng.below(4) {
            0 => grant.issued_at,
            1 => Timestamp(grant.issued_at.0 + rng.below(span as u64) as i64),
            2 => end,
            _ => end.plus_ms(rng.below(3_600_000) as i64),
        };
        let answer = projector
            .why(&grant.principal.id, &grant.resource, at)
            .unwrap();
        let expected: BTreeSet<_> = grants
            .iter()
            .filter(|g| {
                g.principal.id == grant.principal.id
                    && g.resource == grant.resource
                    && g.is_active_at(at)
            })
            .map(|g| g.grant_id.clone())
            .collect();
        let found: BTreeSet<_> = answer.grants.iter().map(|g| g.grant_id.clone()).collect();
        assert_eq!(
            found, expected,
            "why {} {} at {at}",
            grant.principal.id, grant.resource
        );
        assert_eq!(answer.had_access, !expected.is_empty());
        with_access += usize::from(answer.had_access);
        if answer.had_access {
            an_answer_with_access = Some(answer.clone());
        }
        for evidence in &answer.grants {
            let chain = &evidence.chain;
            assert!(
                chain
                    .windows(2)
                    .all(|pair| pair[0].sequence < pair[1].sequence)
            );
            let issuance = chain
                .iter()
                .find(|item| matches!(&item.evidence, Evidence::Issuance { grant_id, .. } if *grant_id == evidence.grant_id));
            assert!(
                issuance.is_some(),
                "the chain of `{}` has its issuance",
                evidence.grant_id
            );
            let first = &chain[0].evidence;
            let core = state.grant(&evidence.grant_id).unwrap();
            if core.break_glass {
                assert!(
                    matches!(first, Evidence::BreakGlass { catalog_hash: Some(hash), .. } if *hash == catalog_hash)
                );
            } else {
                assert!(matches!(first, Evidence::Request { .. }), "{first:?}");
                let decision = chain.iter().find_map(|item| match &item.evidence {
                    Evidence::Decision {
                        catalog_hash,
                        outcome,
                        ..
                    } => Some((catalog_hash, outcome)),
                    _ => None,
                });
                let (hash, outcome) = decision.expect("a decision");
                assert_eq!(hash, &catalog_hash);
                assert_ne!(outcome, &DecisionOutcome::Deny);
                let approvals = chain
                    .iter()
                    .filter(|item| matches!(item.evidence, Evidence::Approval { .. }))
                    .count();
                assert_eq!(approvals > 0, core.approved);
            }
            // Every item is the record it claims to be.
            for item in chain {
                let committed = &fixture.events[(item.sequence - 1) as usize];
                assert_eq!(committed.hash, item.record_hash);
                assert_eq!(committed.time, item.time);
            }
        }
        // The same grants show under the resource and under the principal.
        let by_resource: BTreeSet<_> = projector
            .who_had_access(&grant.resource, at)
            .unwrap()
            .grants
            .into_iter()
            .filter(|g| g.principal.id == grant.principal.id)
            .map(|g| g.grant_id)
            .collect();
        assert_eq!(by_resource, expected);
        let by_principal: BTreeSet<_> = projector
            .could_do(&grant.principal.id, at)
            .unwrap()
            .grants
            .into_iter()
            .filter(|g| g.resource == grant.resource)
            .map(|g| g.grant_id)
            .collect();
        assert_eq!(by_principal, expected);
    }
    assert!(with_access > 50, "{with_access} answers with access");
    // The answer serializes for `grantledger why --json`, chain included.
    let json = serde_json::to_value(an_answer_with_access.unwrap()).unwrap();
    assert_eq!(json["had_access"], true);
    assert!(
        json["grants"][0]["chain"][0]["sequence"].as_u64().unwrap() > 0,
        "{json}"
    );
}

fn submitted(request: &str, principal: &str, justification: &str) -> Event {
    Event::RequestSubmitted(RequestSubmitted {
        request_id: RequestId::new(request).unwrap(),
        principal: human(principal),
        entitlement: EntitlementId::new("db-read").unwrap(),
        resource: ResourceId::new("db/prod/x").unwrap(),
        actions: vec!["read".into()],
        justification: justification.into(),
        ticket: None,
        ttl_requested_ms: None,
        starts_at: None,
    })
}

fn decided(request: &str, outcome: DecisionOutcome) -> Event {
    Event::DecisionRecorded(DecisionRecorded {
        request_id: RequestId::new(request).unwrap(),
        outcome,
        reasons: vec![],
        entitlement: EntitlementId::new("db-read").unwrap(),
        catalog_hash: "c".repeat(64),
        ttl_granted_ms: 1000,
        basis: grantledger_events::DecisionBasis::Catalog,
    })
}

#[test]
fn findings_name_unreviewed_break_glass_overdue_debt_and_retries_after_denial() {
    let dir = tempfile::tempdir().unwrap();
    let mut projector = Projector::<AuditEvidence>::open(dir.path()).unwrap();
    let t = START;
    let minute = 60_000;
    let break_glass = |request: &str| {
        Event::BreakGlassInvoked(BreakGlassInvoked {
            request_id: RequestId::new(request).unwrap(),
            principal: human("oncall"),
            entitlement: EntitlementId::new("db-read").unwrap(),
            resource: ResourceId::new("db/prod/x").unwrap(),
            actions: vec!["read".into()],
            reason: "incident".into(),
            ttl_ms: minute,
        })
    };
    let glass_grant = |request: &str, at: Timestamp| {
        let Event::GrantIssued(mut issued) = grant_issued(
            request,
            "oncall",
            "db/prod/x",
            &["read"],
            at,
            at.plus_ms(minute),
        ) else {
            unreachable!()
        };
        issued.break_glass = true;
        Event::GrantIssued(issued)
    };
    let review = |request: &str| {
        Event::ReviewRecorded(ReviewRecorded {
            grant_id: grant_of(request),
            reviewer: PrincipalId::new("sec").unwrap(),
            verdict: ReviewVerdict::Justified,
            notes: String::new(),
        })
    };
    let events = vec![
        // Break-glass reviewed in time, reviewed late, never reviewed.
        committed(1, t, "bg1", break_glass("bg1")),
        committed(2, t, "bg1", glass_grant("bg1", t)),
        committed(3, t, "bg2", break_glass("bg2")),
        committed(4, t, "bg2", glass_grant("bg2", t)),
        committed(5, t, "bg3", break_glass("bg3")),
        committed(6, t, "bg3", glass_grant("bg3", t)),
        committed(7, t.plus_ms(10 * minute), "bg1", review("bg1")),
        committed(8, t.plus_ms(90 * minute), "bg2", review("bg2")),
        // Denied, retried with the same words (no finding), then with others.
        committed(
            9,
            t.plus_ms(91 * minute),
            "d1",
            submitted("d1", "mallory", "need it"),
        ),
        committed(
            10,
            t.plus_ms(91 * minute),
            "d1",
            decided("d1", DecisionOutcome::Deny),
        ),
        committed(
            11,
            t.plus_ms(92 * minute),
            "d2",
            submitted("d2", "mallory", "need it"),
        ),
        committed(
            12,
            t.plus_ms(92 * minute),
            "d2",
            decided(
                "d2",
                DecisionOutcome::NeedsApproval {
                    approvers_required: 1,
                    group: "dba".into(),
                },
            ),
        ),
        committed(
            13,
            t.plus_ms(93 * minute),
            "d2",
            Event::ApprovalRecorded(ApprovalRecorded {
                request_id: RequestId::new("d2").unwrap(),
                approver: PrincipalId::new("dba-1").unwrap(),
                verdict: ApprovalVerdict::Deny,
                comment: "no".into(),
            }),
        ),
        committed(
            14,
            t.plus_ms(94 * minute),
            "d3",
            submitted("d3", "mallory", "CEO asked for it"),
        ),
        // A revocation left unconfirmed, and one confirmed.
        committed(
            15,
            t.plus_ms(95 * minute),
            "g1",
            grant_issued(
                "g1",
                "alice",
                "db/prod/y",
                &["read"],
                t.plus_ms(95 * minute),
                t.plus_ms(200 * minute),
            ),
        ),
        committed(
            16,
            t.plus_ms(95 * minute),
            "g2",
            grant_issued(
                "g2",
                "bob",
                "db/prod/y",
                &["read"],
                t.plus_ms(95 * minute),
                t.plus_ms(200 * minute),
            ),
        ),
        committed(
            17,
            t.plus_ms(96 * minute),
            "g1",
            grant_revoked("g1", RevocationReason::Manual),
        ),
        committed(
            18,
            t.plus_ms(96 * minute),
            "g2",
            grant_revoked("g2", RevocationReason::Manual),
        ),
        committed(19, t.plus_ms(97 * minute), "g2", revocation_confirmed("g2")),
    ];
    projector.apply(&events).unwrap();
    let now = t.plus_ms(200 * minute);
    let rules = FindingRules {
        review_window_ms: 60 * minute,
        debt_age_max_ms: 30 * minute,
    };
    let findings = projector.findings(now, rules).unwrap();
    assert!(!findings.truncated);
    let summary: Vec<String> = findings
        .findings
        .iter()
        .map(|finding| match finding {
            Finding::BreakGlassWithoutReview {
                grant_id,
                reviewed_at,
                ..
            } => format!("review {grant_id} {}", reviewed_at.is_some()),
            Finding::RevocationDebtOverdue {
                grant_id, age_ms, ..
            } => format!("debt {grant_id} {age_ms}"),
            Finding::DeniedRequestRetried {
                denied_request,
                retry_request,
                ..
            } => format!("retry {denied_request} {retry_request}"),
            Finding::GrantOutlivedOwner { grant_id, .. } => format!("outlived {grant_id}"),
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            "review grant:bg2 true".to_string(),
            "review grant:bg3 false".to_string(),
            format!("debt grant:g1 {}", 104 * minute),
            "retry d2 d3".to_string(),
        ]
    );
    // Before the window ends, nothing about break-glass is due.
    let early = projector.findings(t.plus_ms(59 * minute), rules).unwrap();
    assert!(
        !early
            .findings
            .iter()
            .any(|f| matches!(f, Finding::BreakGlassWithoutReview { .. }))
    );
}

/// A `GrantIssued` of request `request` to workload `workload`, owned by
/// `owner`.
fn workload_grant(request: &str, workload: &str, owner: &str, at: Timestamp, expires_at: Timestamp) -> Event {
    let Event::GrantIssued(mut issued) = grant_issued(request, workload, "db/prod/x", &["read"], at, expires_at) else {
        unreachable!()
    };
    issued.principal = Principal {
        id: PrincipalId::new(workload).unwrap(),
        kind: PrincipalKind::Workload,
        owner: Some(PrincipalId::new(owner).unwrap()),
    };
    Event::GrantIssued(issued)
}

fn offboarded(principal: &str) -> Event {
    Event::PrincipalOffboarded(PrincipalOffboarded {
        principal: PrincipalId::new(principal).unwrap(),
        by: PrincipalId::new("hr-system").unwrap(),
        detail: "left the company".into(),
    })
}

fn outlived(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .filter_map(|finding| match finding {
            Finding::GrantOutlivedOwner {
                grant_id,
                offboarded,
                revoked_at,
                ..
            } => Some(format!("{grant_id} {offboarded} {}", revoked_at.is_some())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_workload_grant_that_outlives_its_owners_offboarding_by_the_review_window_is_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let mut projector = Projector::<AuditEvidence>::open(dir.path()).unwrap();
    let t = START;
    let minute = 60_000;
    let day = 24 * 60 * minute;
    let events = vec![
        // dana's workloads: one left live, one revoked within the window,
        // one revoked after it, one expired before the offboarding; and
        // someone else's workload.
        committed(1, t, "w1", workload_grant("w1", "svc-etl", "dana", t, t.plus_ms(7 * day))),
        committed(2, t, "w2", workload_grant("w2", "svc-etl", "dana", t, t.plus_ms(7 * day))),
        committed(3, t, "w3", workload_grant("w3", "agent-sql", "dana", t, t.plus_ms(7 * day))),
        committed(4, t, "w4", workload_grant("w4", "svc-old", "dana", t, t.plus_ms(10 * minute))),
        committed(5, t, "w5", workload_grant("w5", "svc-other", "erin", t, t.plus_ms(7 * day))),
        committed(6, t.plus_ms(60 * minute), "offboard:dana", offboarded("dana")),
        committed(7, t.plus_ms(90 * minute), "w2", grant_revoked("w2", RevocationReason::OwnerGone)),
        committed(8, t.plus_ms(3 * 60 * minute), "w3", grant_revoked("w3", RevocationReason::OwnerGone)),
        // A grant issued after the offboarding was not live at it.
        committed(9, t.plus_ms(4 * 60 * minute), "w6", workload_grant("w6", "svc-etl", "dana", t.plus_ms(4 * 60 * minute), t.plus_ms(7 * day))),
    ];
    projector.apply(&events).unwrap();
    let rules = FindingRules {
        review_window_ms: 60 * minute,
        debt_age_max_ms: day,
    };
    // Within the window after the offboarding, nothing is due yet.
    let early = projector.findings(t.plus_ms(119 * minute), rules).unwrap();
    assert_eq!(outlived(&early.findings), Vec::<String>::new());
    // After it: the grant left live, and the one revoked late (with its
    // revocation). Not the one revoked in time, the expired one, another
    // owner's, or the one issued after.
    let late = projector.findings(t.plus_ms(5 * 60 * minute), rules).unwrap();
    assert!(!late.truncated);
    assert_eq!(outlived(&late.findings), ["grant:w1 dana false", "grant:w3 dana true"]);
    let Some(Finding::GrantOutlivedOwner { principal, offboarded_at, offboarded_sequence, review_window_ms, .. }) =
        late.findings.iter().find(|f| matches!(f, Finding::GrantOutlivedOwner { .. }))
    else {
        unreachable!()
    };
    assert_eq!(principal.id.as_str(), "svc-etl");
    assert_eq!((*offboarded_at, *offboarded_sequence, *review_window_ms), (t.plus_ms(60 * minute), 6, 60 * minute));
    // With a longer window, the late revocation was in time.
    let generous = FindingRules { review_window_ms: 3 * 60 * minute, ..rules };
    let findings = projector.findings(t.plus_ms(5 * 60 * minute), generous).unwrap();
    assert_eq!(outlived(&findings.findings), ["grant:w1 dana false"]);

    // The finding is a function of the log: a rebuild from the same events
    // gives the same digest.
    assert_eq!(projector.digest().unwrap(), clean_digest::<AuditEvidence>(&events));
}

#[test]
fn an_identity_refusal_is_in_its_requests_evidence_before_a_later_decision() {
    let dir = tempfile::tempdir().unwrap();
    let mut projector = Projector::<AuditEvidence>::open(dir.path()).unwrap();
    let t = START;
    let refused = Event::IdentityRefused(IdentityRefused {
        request_id: RequestId::new("r1").unwrap(),
        principal: human("mallory"),
        entitlement: EntitlementId::new("db-read").unwrap(),
        resource: ResourceId::new("db/prod/x").unwrap(),
        reason: "bad_signature".into(),
        detail: "the signature does not verify".into(),
    });
    let events = vec![
        committed(1, t, "r1", refused),
        committed(2, t.plus_ms(1), "r1", submitted("r1", "mallory", "need it")),
        committed(3, t.plus_ms(1), "r1", decided("r1", DecisionOutcome::Deny)),
    ];
    projector.apply(&events).unwrap();
    let (chain, truncated) = projector.evidence(&RequestId::new("r1").unwrap()).unwrap();
    assert!(!truncated);
    assert!(
        matches!(&chain[0].evidence, Evidence::IdentityRefusal { reason, principal, .. } if reason == "bad_signature" && principal.id.as_str() == "mallory"),
        "{chain:?}"
    );
    assert!(matches!(chain[1].evidence, Evidence::Request { .. }));
    assert!(matches!(chain[2].evidence, Evidence::Decision { .. }));
    assert_eq!(chain[0].sequence, 1);
    // current-grants and expiry-timers take both new kinds in their stride.
    let offboarding = committed(4, t.plus_ms(2), "offboard:mallory", offboarded("mallory"));
    let mut all = events.clone();
    all.push(offboarding);
    clean_digest::<CurrentGrants>(&all);
    clean_digest::<ExpiryTimers>(&all);
}

// ---- scheduled starts and request expiries ----

/// A catalog whose approver-gated entry has a request TTL of one day.
const SCHEDULE_CATALOG: &str = r#"
[groups]
dba = ["dana", "dmitri", "dora"]

[[entitlement]]
id = "db-read"
resource = "db/prod/*"
actions = ["read"]
ttl_default_s = 3600
ttl_max_s = 28800
principal_kinds = ["human"]
approval = "auto"

[[entitlement]]
id = "db-write"
resource = "db/prod/*"
actions = ["write"]
ttl_default_s = 1800
ttl_max_s = 7200
principal_kinds = ["human"]
approval = { approvers = 2, group = "dba" }
request_ttl_s = 86400
"#;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

fn schedule_request(id: &str, entitlement: &str, starts_at: Option<Timestamp>) -> grantledger_core::Command {
    grantledger_core::Command::Submit(grantledger_events::SubmitRequest {
        request_id: RequestId::new(id).unwrap(),
        tenant: grantledger_events::TenantId::new("sim").unwrap(),
        principal: human("alice"),
        entitlement: EntitlementId::new(entitlement).unwrap(),
        resource: ResourceId::new("db/prod/orders").unwrap(),
        actions: vec![if entitlement == "db-read" { "read" } else { "write" }.into()],
        justification: "maintenance window".into(),
        ticket: None,
        ttl_ms: None,
        starts_at_ms: starts_at.map(|at| at.0),
        groups: Vec::new(),
        context: Default::default(),
        identity_token: None,
    })
}

/// Decides and commits `commands` in one batch at `now`; returns the
/// committed records.
/// A ledger in `dir` (unsynced) with [`SCHEDULE_CATALOG`] published, and
/// the catalog's events.
fn scheduling_ledger(dir: &std::path::Path) -> (grantledger_ledger::Ledger, Vec<Committed>) {
    let options = grantledger_log::LogOptions {
        sync: false,
        ..grantledger_log::LogOptions::default()
    };
    let mut ledger = grantledger_ledger::Ledger::create(
        &dir.join("log"),
        grantledger_events::TenantId::new("sim").unwrap(),
        options,
    )
    .unwrap();
    let events = run_batch(
        &mut ledger,
        START,
        vec![grantledger_core::Command::PublishCatalog {
            text: SCHEDULE_CATALOG.into(),
            published_by: PrincipalId::new("catalog-admin").unwrap(),
        }],
    );
    (ledger, events)
}

/// `who` approves request `id`.
fn approve(id: &str, who: &str) -> grantledger_core::Command {
    grantledger_core::Command::Approve {
        request_id: RequestId::new(id).unwrap(),
        approver: PrincipalId::new(who).unwrap(),
        comment: "ok".into(),
    }
}

fn run_batch(
    ledger: &mut grantledger_ledger::Ledger,
    now: Timestamp,
    commands: Vec<grantledger_core::Command>,
) -> Vec<Committed> {
    let mut batch = ledger.begin(now).unwrap();
    for command in commands {
        let name = command.name();
        batch
            .stage(grantledger_ledger::Input {
                command,
                producer: "test".into(),
                causation: grantledger_events::Causation::Timer,
            })
            .unwrap_or_else(|rejection| panic!("`{name}` refused: {rejection}"));
    }
    batch.commit_records().unwrap().1
}

fn timer_names(timers: &[grantledger_projector::DueTimer]) -> BTreeSet<String> {
    timers
        .iter()
        .map(|timer| match timer {
            grantledger_projector::DueTimer::Expiry { grant_id, .. } => format!("expiry {grant_id}"),
            grantledger_projector::DueTimer::Start { request_id, .. } => format!("start {request_id}"),
            grantledger_projector::DueTimer::RequestExpiry { request_id, .. } => {
                format!("request_expiry {request_id}")
            }
        })
        .collect()
}

#[test]
fn due_hands_out_scheduled_starts_and_request_expiries_as_the_core_sees_them() {
    use grantledger_core::Command;
    let dir = tempfile::tempdir().unwrap();
    let (mut ledger, mut events) = scheduling_ledger(dir.path());
    events.extend(run_batch(
        &mut ledger,
        START,
        vec![
            // Allowed, to start in two hours and in one.
            schedule_request("s1", "db-read", Some(START.plus_ms(2 * HOUR))),
            schedule_request("s2", "db-read", Some(START.plus_ms(HOUR))),
            // Approved by two DBAs, to start in three hours.
            schedule_request("w1", "db-write", Some(START.plus_ms(3 * HOUR))),
            approve("w1", "dana"),
            approve("w1", "dmitri"),
            // Approved, then refused before its start: cancelled.
            schedule_request("w4", "db-write", Some(START.plus_ms(3 * HOUR))),
            approve("w4", "dana"),
            approve("w4", "dmitri"),
            Command::Deny {
                request_id: RequestId::new("w4").unwrap(),
                approver: PrincipalId::new("dora").unwrap(),
                comment: "window moved".into(),
            },
            // Waiting for approvers: expires with the request TTL.
            schedule_request("w2", "db-write", None),
            // Waiting, then refused: no timer.
            schedule_request("w3", "db-write", Some(START.plus_ms(HOUR))),
            Command::Deny {
                request_id: RequestId::new("w3").unwrap(),
                approver: PrincipalId::new("dora").unwrap(),
                comment: "no".into(),
            },
            // Its start already came: granted now, to expire in an hour.
            schedule_request("p1", "db-read", Some(START.plus_ms(-HOUR))),
        ],
    ));
    let state = ledger.state();
    let store = tempfile::tempdir().unwrap();
    let mut timers = Projector::<ExpiryTimers>::open(store.path()).unwrap();
    timers.apply(&events).unwrap();
    let mut current = Projector::<CurrentGrants>::open(&store.path().join("current")).unwrap();
    current.apply(&events).unwrap();

    // Before anything is due, nothing is handed out.
    assert!(timers.due(START.plus_ms(HOUR - 1), 100).unwrap().is_empty());
    assert_eq!(timers.next_expiry().unwrap(), Some(START.plus_ms(HOUR)));
    // Each time, the timers due are the core's: expiries, starts and
    // request expiries.
    for (offset, pass) in [(HOUR, 1), (3 * HOUR, 2), (24 * HOUR, 3)] {
        let now = START.plus_ms(offset);
        // A new pass each time: the resend interval has passed.
        let due = timers.due(now.plus_ms(pass * TIMER_RESEND_AFTER_MS), 100).unwrap();
        let mut expected: BTreeSet<String> = state
            .due_expiries(now.plus_ms(pass * TIMER_RESEND_AFTER_MS), 100)
            .iter()
            .map(|grant| format!("expiry {grant}"))
            .collect();
        expected.extend(
            state
                .due_starts(now.plus_ms(pass * TIMER_RESEND_AFTER_MS), 100)
                .iter()
                .map(|request| format!("start {request}")),
        );
        expected.extend(
            state
                .due_request_expiries(now.plus_ms(pass * TIMER_RESEND_AFTER_MS), 100)
                .iter()
                .map(|request| format!("request_expiry {request}")),
        );
        assert_eq!(timer_names(&due), expected, "at +{offset} ms");
    }
    let all = timer_names(&timers.due(START.plus_ms(24 * HOUR + 4 * TIMER_RESEND_AFTER_MS), 100).unwrap());
    let expected: BTreeSet<String> =
        ["expiry grant:p1", "start s2", "start s1", "start w1", "request_expiry w2"]
            .into_iter()
            .map(String::from)
            .collect();
    assert_eq!(all, expected);
    // Each timer's body is what the ledger takes.
    let due = timers.due(START.plus_ms(24 * HOUR + 5 * TIMER_RESEND_AFTER_MS), 100).unwrap();
    let bodies: Vec<serde_json::Value> = due.iter().map(|timer| timer.body()).collect();
    for expected in [
        serde_json::json!({"kind": "start", "request_id": "s1"}),
        serde_json::json!({"kind": "request_expiry", "request_id": "w2"}),
        serde_json::json!({"grant_id": "grant:p1"}),
    ] {
        assert!(bodies.contains(&expected), "{expected} not in {bodies:?}");
    }
    let start_of_s1 = due
        .iter()
        .find(|timer| timer.request_id().is_some_and(|id| id.as_str() == "s1"))
        .unwrap();
    assert_eq!(start_of_s1.at(), START.plus_ms(2 * HOUR));

    // current-grants lists the scheduled requests by start, none active.
    let scheduled: Vec<(String, Timestamp, bool)> = current
        .scheduled(100)
        .unwrap()
        .into_iter()
        .map(|item| (item.request_id.to_string(), item.starts_at, item.approved))
        .collect();
    assert_eq!(
        scheduled,
        vec![
            ("s2".into(), START.plus_ms(HOUR), false),
            ("s1".into(), START.plus_ms(2 * HOUR), false),
            ("w1".into(), START.plus_ms(3 * HOUR), true),
        ]
    );
    let pending: Vec<String> = current.pending(100).unwrap().into_iter().map(|p| p.request_id.to_string()).collect();
    assert_eq!(pending, vec!["w2".to_string()]);
    let alice = PrincipalId::new("alice").unwrap();
    let orders = ResourceId::new("db/prod/orders").unwrap();
    assert!(!current.check(&alice, "write", &orders, START.plus_ms(3 * HOUR)).unwrap());

    // The ledger records what the timers say: starts issue the grants, the
    // request expires, the early expiry is recorded.
    let start = |id: &str| Command::Start { request_id: RequestId::new(id).unwrap() };
    let mut later = run_batch(
        &mut ledger,
        START.plus_ms(HOUR),
        vec![start("s2"), Command::Expire { grant_id: grant_of("p1") }],
    );
    later.extend(run_batch(&mut ledger, START.plus_ms(2 * HOUR), vec![start("s1")]));
    later.extend(run_batch(&mut ledger, START.plus_ms(3 * HOUR), vec![start("w1")]));
    assert_eq!(
        ledger.state().grant(&grant_of("w1")).unwrap().expires_at,
        START.plus_ms(3 * HOUR + 30 * MINUTE),
        "from the start"
    );
    later.extend(run_batch(
        &mut ledger,
        START.plus_ms(24 * HOUR),
        vec![Command::ExpireRequest { request_id: RequestId::new("w2").unwrap() }],
    ));
    timers.apply(&later).unwrap();
    current.apply(&later).unwrap();
    // Only the new grants' expiries are left; no start or request expiry.
    let left = timer_names(&timers.due(START.plus_ms(48 * HOUR), 100).unwrap());
    let expected: BTreeSet<String> = ["expiry grant:s1", "expiry grant:s2", "expiry grant:w1"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(left, expected);
    assert!(current.scheduled(100).unwrap().is_empty());
    assert!(current.pending(100).unwrap().is_empty(), "the expired request left the pending view");
    assert!(current.check(&alice, "write", &orders, START.plus_ms(3 * HOUR)).unwrap());
    assert!(!current.check(&alice, "write", &orders, START.plus_ms(3 * HOUR + 30 * MINUTE)).unwrap());

    // audit-evidence: the chain shows the scheduling, the issue at the
    // start, and the expiry.
    let all_events: Vec<Committed> = events.iter().chain(&later).cloned().collect();
    let audit_dir = tempfile::tempdir().unwrap();
    let mut audit = Projector::<AuditEvidence>::open(audit_dir.path()).unwrap();
    audit.apply(&all_events).unwrap();
    let (chain, _) = audit.evidence(&RequestId::new("w1").unwrap()).unwrap();
    assert!(
        matches!(&chain[0].evidence, Evidence::ScheduledRequest { starts_at, .. } if *starts_at == START.plus_ms(3 * HOUR)),
        "{chain:?}"
    );
    let issuance = chain.last().unwrap();
    assert!(
        matches!(&issuance.evidence, Evidence::Issuance { issued_at, .. } if *issued_at == START.plus_ms(3 * HOUR)),
        "{chain:?}"
    );
    let (chain, _) = audit.evidence(&RequestId::new("w2").unwrap()).unwrap();
    assert!(
        matches!(
            &chain.last().unwrap().evidence,
            Evidence::RequestExpiry { reason: grantledger_events::RequestExpiryReason::RequestTtl, expired_at }
                if *expired_at == START.plus_ms(24 * HOUR)
        ),
        "{chain:?}"
    );
    // The log replays: every projection's digest is the same in one batch
    // and in small overlapping ones across restarts.
    fn small_batches<P: Projection>(events: &[Committed], size: usize) -> Digest {
        let dir = tempfile::tempdir().unwrap();
        let mut next = 0;
        while next < events.len() {
            let mut projector = Projector::<P>::open(dir.path()).unwrap();
            let to = (next + size).min(events.len());
            projector.apply(&events[next.saturating_sub(1)..to]).unwrap();
            next = to;
        }
        Projector::<P>::open(dir.path()).unwrap().digest().unwrap()
    }
    for size in [1, 2, 5] {
        assert_eq!(clean_digest::<ExpiryTimers>(&all_events), small_batches::<ExpiryTimers>(&all_events, size));
        assert_eq!(clean_digest::<CurrentGrants>(&all_events), small_batches::<CurrentGrants>(&all_events, size));
        assert_eq!(clean_digest::<AuditEvidence>(&all_events), small_batches::<AuditEvidence>(&all_events, size));
    }
}

/// A ledger holding alice's open requests, and the three projections fed
/// its events: `s1` allowed to start in two hours, `w1` approved to start
/// in three, `p1` waiting for its second approver (with a request TTL).
struct OpenRequests {
    ledger: grantledger_ledger::Ledger,
    events: Vec<Committed>,
    timers: Projector<ExpiryTimers>,
    current: Projector<CurrentGrants>,
    audit: Projector<AuditEvidence>,
}

fn open_requests(dir: &std::path::Path, store: &std::path::Path) -> OpenRequests {
    let (mut ledger, mut events) = scheduling_ledger(dir);
    events.extend(run_batch(
        &mut ledger,
        START,
        vec![
            schedule_request("s1", "db-read", Some(START.plus_ms(2 * HOUR))),
            schedule_request("w1", "db-write", Some(START.plus_ms(3 * HOUR))),
            approve("w1", "dana"),
            approve("w1", "dmitri"),
            schedule_request("p1", "db-write", None),
            approve("p1", "dana"),
        ],
    ));
    let mut timers = Projector::<ExpiryTimers>::open(&store.join("timers")).unwrap();
    let mut current = Projector::<CurrentGrants>::open(&store.join("current")).unwrap();
    let mut audit = Projector::<AuditEvidence>::open(&store.join("audit")).unwrap();
    timers.apply(&events).unwrap();
    current.apply(&events).unwrap();
    audit.apply(&events).unwrap();
    OpenRequests { ledger, events, timers, current, audit }
}

#[test]
fn a_risk_signal_closes_open_requests_and_every_projection_drops_their_timers() {
    use grantledger_core::Command;
    let dir = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let OpenRequests { mut ledger, events, mut timers, mut current, mut audit } = open_requests(dir.path(), store.path());
    let listed = |current: &Projector<CurrentGrants>| -> Vec<String> {
        current.scheduled(100).unwrap().into_iter().map(|item| item.request_id.to_string()).collect()
    };
    assert_eq!(listed(&current), ["s1", "w1"]);
    let pending = |current: &Projector<CurrentGrants>| -> Vec<String> {
        current.pending(100).unwrap().into_iter().map(|item| item.request_id.to_string()).collect()
    };
    assert_eq!(pending(&current), ["p1"]);
    let due = timer_names(&timers.due(START.plus_ms(3 * HOUR), 100).unwrap());
    assert_eq!(due, ["start s1", "start w1"].into_iter().map(String::from).collect());
    let due = timer_names(&timers.due(START.plus_ms(25 * HOUR), 100).unwrap());
    assert!(due.contains("request_expiry p1"), "{due:?}");

    // A risk signal about alice, before either start: both closed.
    let signal = run_batch(
        &mut ledger,
        START.plus_ms(HOUR),
        vec![Command::RiskSignal {
            principal: PrincipalId::new("alice").unwrap(),
            by: PrincipalId::new("risk-engine").unwrap(),
            detail: "impossible travel".into(),
        }],
    );
    let reasons: Vec<_> = signal
        .iter()
        .map(|committed| match &committed.envelope.event {
            Event::RequestExpired(expired) => (expired.request_id.to_string(), expired.reason, expired.expired_at),
            other => panic!("only the closures: {other:?}"),
        })
        .collect();
    let closed_at = START.plus_ms(HOUR);
    let risk = grantledger_events::RequestExpiryReason::RiskSignal;
    assert_eq!(
        reasons,
        [("s1".to_string(), risk, closed_at), ("w1".to_string(), risk, closed_at), ("p1".to_string(), risk, closed_at)]
    );
    timers.apply(&signal).unwrap();
    current.apply(&signal).unwrap();
    audit.apply(&signal).unwrap();

    // current-grants lists nothing scheduled, expiry-timers hands out no
    // start, and nothing gives access at the starts.
    assert!(listed(&current).is_empty());
    assert!(pending(&current).is_empty());
    assert!(timers.due(START.plus_ms(25 * HOUR + TIMER_RESEND_AFTER_MS), 100).unwrap().is_empty());
    let alice = PrincipalId::new("alice").unwrap();
    let orders = ResourceId::new("db/prod/orders").unwrap();
    assert!(!current.check(&alice, "read", &orders, START.plus_ms(2 * HOUR)).unwrap());
    assert!(!current.check(&alice, "write", &orders, START.plus_ms(3 * HOUR)).unwrap());
    assert!(ledger.state().scheduled_requests(100).is_empty());
    // audit-evidence: each chain ends with the closure and its reason.
    for id in ["s1", "w1", "p1"] {
        let (chain, _) = audit.evidence(&RequestId::new(id).unwrap()).unwrap();
        assert!(
            matches!(
                &chain.last().unwrap().evidence,
                Evidence::RequestExpiry { reason, expired_at }
                    if *reason == risk && *expired_at == closed_at
            ),
            "{id}: {chain:?}"
        );
    }
    // The projections are what a replay from the log gives.
    let all_events: Vec<Committed> = events.iter().chain(&signal).cloned().collect();
    assert_eq!(timers.digest().unwrap(), clean_digest::<ExpiryTimers>(&all_events));
    assert_eq!(current.digest().unwrap(), clean_digest::<CurrentGrants>(&all_events));
    assert_eq!(audit.digest().unwrap(), clean_digest::<AuditEvidence>(&all_events));
}

#[test]
fn a_withdrawn_request_leaves_every_projection_and_its_evidence_says_who_and_why() {
    use grantledger_core::Command;
    let dir = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let OpenRequests { mut ledger, events, mut timers, mut current, mut audit } = open_requests(dir.path(), store.path());

    // Alice withdraws the allowed one and the pending one; w1 stays.
    let withdraw = |request: &str| Command::Withdraw {
        request_id: RequestId::new(request).unwrap(),
        by: PrincipalId::new("alice").unwrap(),
        reason: "maintenance postponed".into(),
    };
    let withdrawals = run_batch(&mut ledger, START.plus_ms(HOUR), vec![withdraw("s1"), withdraw("p1")]);
    let closed: Vec<String> = withdrawals
        .iter()
        .map(|committed| match &committed.envelope.event {
            Event::RequestWithdrawn(e) => e.request_id.to_string(),
            other => panic!("only the withdrawals: {other:?}"),
        })
        .collect();
    assert_eq!(closed, ["s1", "p1"]);
    timers.apply(&withdrawals).unwrap();
    current.apply(&withdrawals).unwrap();
    audit.apply(&withdrawals).unwrap();

    let scheduled: Vec<String> =
        current.scheduled(100).unwrap().into_iter().map(|item| item.request_id.to_string()).collect();
    assert_eq!(scheduled, ["w1"]);
    assert!(current.pending(100).unwrap().is_empty());
    // Only w1's start is handed out; p1's request TTL timer is gone.
    let due = timer_names(&timers.due(START.plus_ms(25 * HOUR), 100).unwrap());
    assert_eq!(due, ["start w1"].into_iter().map(String::from).collect());
    let alice = PrincipalId::new("alice").unwrap();
    let orders = ResourceId::new("db/prod/orders").unwrap();
    assert!(!current.check(&alice, "read", &orders, START.plus_ms(2 * HOUR)).unwrap());
    for id in ["s1", "p1"] {
        let (chain, _) = audit.evidence(&RequestId::new(id).unwrap()).unwrap();
        assert!(
            matches!(
                &chain.last().unwrap().evidence,
                Evidence::Withdrawal { withdrawn_by, reason }
                    if *withdrawn_by == alice && reason == "maintenance postponed"
            ),
            "{id}: {chain:?}"
        );
    }
    let all_events: Vec<Committed> = events.iter().chain(&withdrawals).cloned().collect();
    assert_eq!(timers.digest().unwrap(), clean_digest::<ExpiryTimers>(&all_events));
    assert_eq!(current.digest().unwrap(), clean_digest::<CurrentGrants>(&all_events));
    assert_eq!(audit.digest().unwrap(), clean_digest::<AuditEvidence>(&all_events));
}
