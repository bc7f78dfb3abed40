//! Tree arithmetic of RFC 9162 section 2.1, shared by verification and proof planning.

use std::ops::Range;

use crate::node::NodeId;

/// The largest power of two strictly smaller than `n`: RFC 9162's split point `k`.
pub(crate) fn split_point(n: u64) -> u64 {
    assert!(n >= 2, "a tree of `{n}` leaves has no split point");
    1 << (63 - (n - 1).leading_zeros())
}

/// One proof hash, as the RFC 9162 recursion defines it: the Merkle Tree Hash of the
/// leaves in `leaves`. Steps are produced from the root downwards; proofs list them from
/// the leaf upwards.
pub(crate) type Step = Range<u64>;

/// The RFC 9162 `PATH(index, D[size])` subtrees, root first. Requires `index < size`.
pub(crate) fn inclusion_steps(index: u64, size: u64, mut on_step: impl FnMut(Step)) {
    debug_assert!(index < size);
    let (mut begin, mut end) = (0, size);
    while end - begin > 1 {
        let middle = begin + split_point(end - begin);
        if index < middle {
            on_step(middle..end);
            end = middle;
        } else {
            on_step(begin..middle);
            begin = middle;
        }
    }
}

/// The RFC 9162 `PROOF(size1, D[size2])` subtrees (`SUBPROOF(size1, D[size2], true)`),
/// root first. Requires `0 < size1 < size2`.
pub(crate) fn consistency_steps(size1: u64, size2: u64, mut on_step: impl FnMut(Step)) {
    debug_assert!(0 < size1 && size1 < size2);
    let (mut begin, mut end) = (0, size2);
    // Whether the current subtree's root is the first tree's root, which the verifier
    // already holds (the RFC's flag `b`).
    let mut first_root_known = true;
    loop {
        if size1 == end {
            if !first_root_known {
                on_step(begin..end);
            }
            return;
        }
        let middle = begin + split_point(end - begin);
        if size1 <= middle {
            on_step(middle..end);
            end = middle;
        } else {
            on_step(begin..middle);
            begin = middle;
            first_root_known = false;
        }
    }
}

/// The number of hashes in an inclusion proof for `index` in a tree of `size` leaves.
pub(crate) fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let mut length = 0;
    inclusion_steps(index, size, |_| length += 1);
    length
}

/// The number of hashes in a consistency proof from `size1` to `size2` leaves.
pub(crate) fn consistency_proof_len(size1: u64, size2: u64) -> usize {
    let mut length = 0;
    consistency_steps(size1, size2, |_| length += 1);
    length
}

/// The complete subtrees that exactly cover the leaves `begin..end`, left to right (for an
/// RFC 9162 subtree: largest first). At most 2 * 64 nodes; for the ranges the RFC
/// recursion produces, `popcount(end - begin)` nodes.
pub(crate) fn covering_nodes(leaves: Range<u64>, mut on_node: impl FnMut(NodeId)) {
    let (mut begin, end) = (leaves.start, leaves.end);
    while begin < end {
        let level_aligned = begin.trailing_zeros();
        let level_fits = 63 - (end - begin).leading_zeros();
        let level = level_aligned.min(level_fits);
        let level_u8 = u8::try_from(level).expect("levels are below 64");
        on_node(NodeId::new(level_u8, begin >> level));
        begin += 1 << level;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_point_is_the_largest_power_of_two_below_n() {
        let cases = [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (1 << 40, 1 << 39),
        ];
        for (n, k) in cases {
            assert_eq!(split_point(n), k, "n = {n}");
        }
        assert_eq!(split_point(u64::MAX), 1 << 63);
    }

    #[test]
    fn covering_nodes_of_a_prefix_follow_the_bits_of_its_size() {
        let mut nodes = Vec::new();
        covering_nodes(0..7, |id| nodes.push(id));
        assert_eq!(
            nodes,
            [NodeId::new(2, 0), NodeId::new(1, 2), NodeId::new(0, 6)]
        );

        nodes.clear();
        covering_nodes(0..u64::MAX, |id| nodes.push(id));
        assert_eq!(nodes.len(), 64);
        assert_eq!(nodes[0], NodeId::new(63, 0));
    }

    #[test]
    fn covering_nodes_of_an_unaligned_range_climb_then_descend() {
        let mut nodes = Vec::new();
        covering_nodes(3..13, |id| nodes.push(id));
        assert_eq!(
            nodes,
            [
                NodeId::new(0, 3),
                NodeId::new(2, 1),
                NodeId::new(2, 2),
                NodeId::new(0, 12)
            ]
        );
    }
}
