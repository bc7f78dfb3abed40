//! Decisions per second and latency percentiles of `Engine::evaluate` with
//! a generated catalog of 1,000 entitlements and 200 Cedar policies, on one
//! thread, in two mixes (10 or 40 of the 200 policies scoped to no
//! entitlement, so every request evaluates them), beside peers measured in
//! the same run:
//!
//! - `cedar raw (slice)`: Cedar's `is_authorized` alone on the same
//!   prepared slice (what the engine adds is the catalog, the annotations
//!   and the decision record);
//! - `engine unsliced`: the same decision evaluated against all 200
//!   policies (what slicing saves);
//! - `prepare only`: building Cedar's request, entities and the decision's
//!   record of evaluated values, without evaluating;
//! - `catalog only`: the catalog lookup, pattern match and TTL check alone.
//!
//! Run: `cargo bench -p grantledger-policy --bench policy_decide`.
//! Target: p99 of `engine evaluate` under 50 µs.

use std::hint::black_box;
use std::time::Instant;

use grantledger_events::PrincipalKind;
use grantledger_policy::{
    Engine, ExceptionRules, GrantledgerSchema, PolicyAction, PolicyRequest, PolicySet,
    PrincipalAttributes, RequestContext,
};
use hdrhistogram::Histogram;

/// The allocator the `grantledger` binary runs the policy engine with
/// (inside the ledger service): measured with it, not with the system's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ENTITLEMENTS: usize = 1_000;
const POLICIES: usize = 200;
const REQUESTS: usize = 4_096;
const ITERATIONS: usize = 100_000;

fn catalog_text() -> String {
    let mut text =
        String::from("[groups]\ndba = [\"d1\", \"d2\", \"d3\"]\nsre = [\"s1\", \"s2\", \"s3\"]\n");
    for index in 0..ENTITLEMENTS {
        let approval = match index % 10 {
            0..=6 => "\"auto\"".to_string(),
            7 | 8 => "{ approvers = 1, group = \"sre\" }".to_string(),
            _ => "{ approvers = 2, group = \"dba\" }".to_string(),
        };
        text.push_str(&format!(
            "[[entitlement]]\nid = \"ent-{index}\"\nresource = \"svc/{index}/*\"\nactions = [\"read\", \"write\"]\nttl_default_s = 900\nttl_max_s = 7200\nprincipal_kinds = [\"human\", \"workload\", \"agent\"]\napproval = {approval}\nbreak_glass_ttl_max_s = 600\n\n"
        ));
    }
    text
}

/// The generated policies. `global_per_20` of every 20 policies are scoped
/// to no entitlement (half forbids on the risk score, half permits on a
/// resource path), so every request evaluates them; the rest are scoped to
/// one entitlement each.
fn policy_text(global_per_20: usize) -> String {
    let mut text = String::new();
    for index in 0..POLICIES {
        let entitlement = (index * 7) % ENTITLEMENTS;
        let slot = index % 20;
        let kind = if slot < global_per_20 {
            8 + (index / 20 + slot) % 2
        } else {
            (index / 20 + slot) % 8
        };
        let policy = match kind {
            // Scoped permits with context conditions.
            0..=5 => format!(
                "@id(\"p{index}\")\npermit (principal, action == Action::\"request\", resource in Entitlement::\"ent-{entitlement}\")\nwhen {{ context.device_managed && (context.in_maintenance_window || principal.groups.contains(\"team-{index}\")) && context.requested_ttl_s <= 3600 }};\n"
            ),
            // Scoped step-up permits.
            6 => format!(
                "@id(\"p{index}\")\n@step_up(\"2\")\n@group(\"sre\")\npermit (principal is User, action == Action::\"request\", resource in Entitlement::\"ent-{entitlement}\")\nunless {{ context.on_call }};\n"
            ),
            // Scoped forbids.
            7 => format!(
                "@id(\"p{index}\")\n@reason(\"weekend_change\")\nforbid (principal, action, resource in Entitlement::\"ent-{entitlement}\")\nwhen {{ context.weekday_utc >= 6 && context.actions.contains(\"write\") }};\n"
            ),
            // Global forbids, evaluated for every request.
            8 => format!(
                "@id(\"p{index}\")\n@reason(\"risk_{index}\")\nforbid (principal, action, resource)\nwhen {{ context has risk_score && context.risk_score >= {} }};\n",
                80 + index % 20
            ),
            // Global permits over a resource path prefix.
            _ => format!(
                "@id(\"p{index}\")\npermit (principal, action in [Action::\"request\", Action::\"extend\"], resource)\nwhen {{ resource.path like \"svc/{entitlement}/*\" && context has change_record }};\n"
            ),
        };
        text.push_str(&policy);
    }
    text
}

/// A deterministic xorshift, so every run measures the same requests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn requests() -> Vec<PolicyRequest> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..REQUESTS)
        .map(|_| {
            // Bias towards entitlements that policies name, as real traffic
            // goes to entitlements that have rules.
            let entitlement = if rng.next().is_multiple_of(2) {
                ((rng.next() as usize % POLICIES) * 7) % ENTITLEMENTS
            } else {
                rng.next() as usize % ENTITLEMENTS
            };
            let kind = match rng.next() % 3 {
                0 => PrincipalKind::Human,
                1 => PrincipalKind::Workload,
                _ => PrincipalKind::Agent,
            };
            PolicyRequest {
                principal: PrincipalAttributes {
                    id: format!("user-{}", rng.next() % 500),
                    kind,
                    owner: Some("owner-team".to_string()),
                    groups: vec![format!("team-{}", rng.next() % POLICIES as u64)],
                },
                action: PolicyAction::Request,
                entitlement: format!("ent-{entitlement}"),
                resource: format!("svc/{entitlement}/db-{}", rng.next() % 8),
                actions: vec!["read".to_string()],
                ttl_requested_ms: Some(((rng.next() % 120) as i64 + 1) * 60_000),
                ticket: None,
                justification: "benchmark".to_string(),
                break_glass_reason: None,
                at_ms: 1_795_000_000_000 + (rng.next() % 604_800_000) as i64,
                context: RequestContext {
                    in_maintenance_window: rng.next().is_multiple_of(2),
                    device_managed: !rng.next().is_multiple_of(4),
                    on_call: rng.next().is_multiple_of(3),
                    change_record: rng.next().is_multiple_of(3).then(|| "CHG-1".to_string()),
                    incident: None,
                    risk_score: Some((rng.next() % 100) as i64),
                    workload_identity: None,
                    task: None,
                },
            }
        })
        .collect()
}

struct Figures {
    name: &'static str,
    per_second: f64,
    p50_ns: u64,
    p99_ns: u64,
    p999_ns: u64,
}

fn measure(
    name: &'static str,
    requests: &[PolicyRequest],
    mut run: impl FnMut(&PolicyRequest),
) -> Figures {
    // Warm up caches and the allocator.
    for request in requests.iter().take(2_000) {
        run(request);
    }
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds");
    let started = Instant::now();
    for iteration in 0..ITERATIONS {
        let request = &requests[iteration % requests.len()];
        let at = Instant::now();
        run(request);
        histogram.saturating_record(at.elapsed().as_nanos() as u64);
    }
    let elapsed = started.elapsed();
    Figures {
        name,
        per_second: ITERATIONS as f64 / elapsed.as_secs_f64(),
        p50_ns: histogram.value_at_quantile(0.50),
        p99_ns: histogram.value_at_quantile(0.99),
        p999_ns: histogram.value_at_quantile(0.999),
    }
}

fn main() {
    // Two mixes of the same 200 policies: mostly entitlement-scoped (10 of
    // 200 apply to every request, as risk and hygiene rules do), and
    // global-heavy (40 of 200 apply to every request).
    for (name, global_per_20) in [
        ("scoped (10 global policies)", 1),
        ("global-heavy (40 global policies)", 4),
    ] {
        run(name, global_per_20);
    }
}

fn run(mix: &str, global_per_20: usize) {
    let schema = GrantledgerSchema::shipped().expect("the shipped schema parses");
    let load_started = Instant::now();
    let catalog = grantledger_core::Catalog::parse(&catalog_text()).expect("generated catalog");
    let policies = PolicySet::parse(&policy_text(global_per_20), &schema)
        .expect("generated policies validate");
    let engine = Engine::new(catalog, policies, ExceptionRules::none()).expect("engine");
    let load_ms = load_started.elapsed().as_secs_f64() * 1e3;
    let requests = requests();

    let mut outcomes = [0usize; 3];
    for request in &requests {
        let decision = engine.evaluate(request).expect("evaluates");
        let unsliced = engine.evaluate_unsliced(request).expect("evaluates");
        assert_eq!(decision, unsliced, "slicing changed a decision");
        outcomes[match decision.outcome {
            grantledger_events::DecisionOutcome::Allow => 0,
            grantledger_events::DecisionOutcome::NeedsApproval { .. } => 1,
            grantledger_events::DecisionOutcome::Deny => 2,
        }] += 1;
    }

    let slice_policies: usize = requests
        .iter()
        .map(|request| engine.slice_len(request))
        .sum();
    let figures = [
        measure("engine evaluate", &requests, |request| {
            black_box(engine.evaluate(black_box(request)).expect("evaluates"));
        }),
        measure("cedar raw (slice)", &requests, |request| {
            black_box(engine.cedar_only(black_box(request)).expect("evaluates"));
        }),
        measure("engine unsliced", &requests, |request| {
            black_box(
                engine
                    .evaluate_unsliced(black_box(request))
                    .expect("evaluates"),
            );
        }),
        measure("prepare only", &requests, |request| {
            black_box(engine.prepare_only(black_box(request)).expect("prepares"));
        }),
        measure("catalog only", &requests, |request| {
            let entry = engine.catalog().entitlement(&request.entitlement);
            black_box(entry.is_some_and(|entry| {
                entry.resource.matches(&request.resource)
                    && request.ttl_requested_ms.unwrap_or(entry.ttl_default_ms) <= entry.ttl_max_ms
            }));
        }),
    ];

    println!(
        "\npolicy_decide, {mix}: {ENTITLEMENTS} entitlements, {POLICIES} policies, {REQUESTS} distinct requests, {ITERATIONS} decisions each, one thread"
    );
    println!(
        "load (parse + validate + slice): {load_ms:.1} ms; outcomes over the requests: {} allow, {} needs_approval, {} deny; policies per slice: {:.1} on average",
        outcomes[0],
        outcomes[1],
        outcomes[2],
        slice_policies as f64 / REQUESTS as f64
    );
    let base = figures[0].per_second;
    println!(
        "{:<20} {:>12} {:>9} {:>9} {:>9} {:>14}",
        "", "decisions/s", "p50 µs", "p99 µs", "p99.9 µs", "vs evaluate"
    );
    for figure in &figures {
        println!(
            "{:<20} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>13.2}x",
            figure.name,
            figure.per_second,
            figure.p50_ns as f64 / 1e3,
            figure.p99_ns as f64 / 1e3,
            figure.p999_ns as f64 / 1e3,
            figure.per_second / base
        );
    }
    let p99_us = figures[0].p99_ns as f64 / 1e3;
    println!(
        "target p99 < 50 µs for engine evaluate: {} ({p99_us:.2} µs)",
        if p99_us < 50.0 { "met" } else { "NOT met" }
    );
}
