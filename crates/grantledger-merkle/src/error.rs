//! One error type per operation, each with a closed set of kinds.

use std::fmt;

use crate::node::NodeId;

/// A proof did not verify, or its inputs were malformed.
pub type ProofError = Error<ProofErrorKind>;

/// A proof cannot be planned for the given sizes or index.
pub type PlanError = Error<PlanErrorKind>;

/// Why [`crate::verify_inclusion`], [`crate::verify_consistency`] (and their
/// `root_from_*` forms) or [`crate::digest_from_slice`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProofErrorKind {
    /// The leaf index is not below the tree size.
    IndexBeyondSize,
    /// The second tree size is smaller than the first.
    Size2LessThanSize1,
    /// A consistency proof from the empty tree was asked for; it proves nothing.
    Size1Zero,
    /// The proof has more or fewer hashes than the path for this index and size (or these
    /// two sizes) has. Covers truncated, extended and, for equal sizes, non-empty proofs.
    ProofLengthWrong,
    /// The proof, chained from the leaf (or from the first root), does not lead to the
    /// expected root.
    RootMismatch,
    /// A consistency proof does not lead back to the first (smaller) tree's root.
    FirstRootMismatch,
    /// A byte string offered as a hash does not have [`crate::DIGEST_BYTES`] bytes.
    DigestLengthWrong,
}

/// Why [`crate::inclusion_plan`] or [`crate::consistency_plan`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlanErrorKind {
    /// The leaf index is not below the tree size.
    IndexBeyondSize,
    /// The second tree size is smaller than the first.
    Size2LessThanSize1,
    /// A consistency proof from the empty tree was asked for.
    Size1Zero,
}

impl ProofErrorKind {
    /// A stable snake_case name of the rule that was broken, for logs and evidence output.
    pub fn code(self) -> &'static str {
        match self {
            ProofErrorKind::IndexBeyondSize => "index_beyond_size",
            ProofErrorKind::Size2LessThanSize1 => "size2_less_than_size1",
            ProofErrorKind::Size1Zero => "size1_zero",
            ProofErrorKind::ProofLengthWrong => "proof_length_wrong",
            ProofErrorKind::RootMismatch => "root_mismatch",
            ProofErrorKind::FirstRootMismatch => "first_root_mismatch",
            ProofErrorKind::DigestLengthWrong => "digest_length_wrong",
        }
    }
}

impl PlanErrorKind {
    /// A stable snake_case name of the rule that was broken.
    pub fn code(self) -> &'static str {
        match self {
            PlanErrorKind::IndexBeyondSize => "index_beyond_size",
            PlanErrorKind::Size2LessThanSize1 => "size2_less_than_size1",
            PlanErrorKind::Size1Zero => "size1_zero",
        }
    }
}

/// An error of kind `K`, with a message in the project's style: lowercase, no final
/// period, values in backticks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error<K: fmt::Debug> {
    kind: K,
    message: String,
}

impl<K: fmt::Debug + Copy> Error<K> {
    pub(crate) fn new(kind: K, message: String) -> Self {
        Error { kind, message }
    }

    /// Which rule was broken.
    pub fn kind(&self) -> K {
        self.kind
    }
}

/// Generating a proof from a [`crate::NodeStore`] failed.
#[derive(Debug)]
pub enum ProveError<E> {
    /// The sizes or the index do not admit a proof.
    Plan(PlanError),
    /// The store could not produce a node the proof needs.
    Store(E),
}

impl<E: fmt::Display> fmt::Display for ProveError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProveError::Plan(error) => error.fmt(f),
            ProveError::Store(error) => write!(f, "reading a tree node failed: {error}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ProveError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProveError::Plan(error) => Some(error),
            ProveError::Store(error) => Some(error),
        }
    }
}

impl<E> From<PlanError> for ProveError<E> {
    fn from(error: PlanError) -> Self {
        ProveError::Plan(error)
    }
}

/// [`crate::MemoryNodeStore`] was asked for a node it does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no node is stored at level `{}` index `{}`", .node_id.level, .node_id.index)]
pub struct NodeMissingError {
    /// The node that was asked for.
    pub node_id: NodeId,
}

pub(crate) fn index_beyond_size(index: u64, size: u64) -> String {
    format!("leaf index `{index}` is beyond tree size `{size}`")
}

pub(crate) fn size2_less_than_size1(size1: u64, size2: u64) -> String {
    format!("second tree size `{size2}` is smaller than first tree size `{size1}`")
}

pub(crate) fn size1_zero(size2: u64) -> String {
    format!("a consistency proof from the empty tree to size `{size2}` is meaningless")
}
