//! The node lists of transparency-dev/merkle's `proof/proof_test.go`: which complete
//! subtrees, addressed `(level, index)`, an inclusion or consistency proof is built from,
//! and which of them fold into the one ephemeral (incomplete) node.

mod common;

use common::read_testdata_json;
use grantledger_merkle::{NodeId, ProofPlan, consistency_plan, inclusion_plan};
use serde::Deserialize;

#[derive(Deserialize)]
struct PlanVectors {
    inclusion: Vec<InclusionCase>,
    consistency: Vec<ConsistencyCase>,
}

#[derive(Deserialize)]
struct InclusionCase {
    size: u64,
    index: u64,
    #[serde(rename = "wantErr", default)]
    want_err: bool,
    want: Option<Want>,
}

#[derive(Deserialize)]
struct ConsistencyCase {
    size1: u64,
    size2: u64,
    #[serde(rename = "wantErr", default)]
    want_err: bool,
    want: Option<Want>,
}

#[derive(Deserialize)]
struct Want {
    ids: Vec<(u8, u64)>,
    rehash: Option<(usize, usize)>,
}

fn check(plan: &ProofPlan, want: &Want, case: &str) {
    let ids: Vec<NodeId> = want
        .ids
        .iter()
        .map(|&(level, index)| NodeId::new(level, index))
        .collect();
    assert_eq!(plan.node_ids(), ids.as_slice(), "{case}");
    let rehash = want.rehash.map_or(0..0, |(begin, end)| begin..end);
    assert_eq!(plan.ephemeral_range(), rehash, "{case}");
}

#[test]
fn inclusion_plans_name_the_published_nodes() {
    let vectors: PlanVectors = read_testdata_json("transparency-dev-merkle/proof_nodes.json");
    assert_eq!(vectors.inclusion.len(), 25);
    for case in &vectors.inclusion {
        let name = format!("inclusion index {} size {}", case.index, case.size);
        match inclusion_plan(case.index, case.size) {
            Ok(plan) => check(
                &plan,
                case.want.as_ref().expect("a want for a valid case"),
                &name,
            ),
            Err(error) => assert!(case.want_err, "{name}: {error}"),
        }
        if case.want_err {
            assert!(
                inclusion_plan(case.index, case.size).is_err(),
                "{name} accepted"
            );
        }
    }
}

#[test]
fn consistency_plans_name_the_published_nodes() {
    let vectors: PlanVectors = read_testdata_json("transparency-dev-merkle/proof_nodes.json");
    assert_eq!(vectors.consistency.len(), 27);
    for case in &vectors.consistency {
        let name = format!("consistency {} -> {}", case.size1, case.size2);
        match consistency_plan(case.size1, case.size2) {
            Ok(plan) => check(
                &plan,
                case.want.as_ref().expect("a want for a valid case"),
                &name,
            ),
            Err(error) => assert!(case.want_err, "{name}: {error}"),
        }
        if case.want_err {
            assert!(
                consistency_plan(case.size1, case.size2).is_err(),
                "{name} accepted"
            );
        }
    }
}
