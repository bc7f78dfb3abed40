//! The log's Merkle tree against an in-memory oracle: grantledger-merkle's own tree built
//! from the same record hashes with every node kept, and its pure verifiers. Sizes that
//! are and are not multiples of `2^MERKLE_LEVEL_MIN`, on writable, reopened and read-only
//! handles.

mod common;

use std::path::Path;

use common::{Rng, append_records, body_for, kind_for, open_raw, time_for};
use grantledger_log::layout::{self, MERKLE_LEVEL_MIN};
use grantledger_log::{
    IndexKeys, Log, LogOptions, NewRecord, OpenErrorKind, RecordHeader, TreeErrorKind, verify,
};
use grantledger_merkle::{
    Blake3, CompactRange, Digest, MemoryNodeStore, MerkleHasher, NodeId, ProofErrorKind,
    consistency_proof, inclusion_proof, verify_consistency, verify_inclusion,
};

/// The whole tree in memory: every node of every level, and the root at every size.
struct Oracle {
    store: MemoryNodeStore,
    range: CompactRange,
    /// `roots[size]` is the root of the first `size` leaves.
    roots: Vec<Digest>,
    leaves: Vec<Digest>,
}

impl Oracle {
    fn new() -> Oracle {
        Oracle {
            store: MemoryNodeStore::new(),
            range: CompactRange::new(),
            roots: vec![Blake3.empty_root()],
            leaves: Vec::new(),
        }
    }

    /// The oracle of the log's records as they are stored now.
    fn of_log(log: &Log) -> Oracle {
        let mut oracle = Oracle::new();
        for record in log.iter_from(1) {
            oracle.push(&record.unwrap().header.hash);
        }
        oracle
    }

    fn push(&mut self, record_hash: &[u8; 32]) {
        // Computed here the way RFC 9162 says, not through the log's helper.
        let leaf_hash = Blake3.hash_leaf(record_hash);
        assert_eq!(layout::merkle_leaf_hash(record_hash), leaf_hash);
        let store = &mut self.store;
        self.range.append(&Blake3, leaf_hash, |node_id, hash| {
            store.insert(node_id, *hash)
        });
        self.roots.push(self.range.root(&Blake3));
        self.leaves.push(leaf_hash);
    }

    fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    fn range_at(&self, size: u64) -> CompactRange {
        CompactRange::from_store(&self.store, size).unwrap()
    }
}

fn unsynced() -> LogOptions {
    LogOptions {
        sync: false,
        ..LogOptions::default()
    }
}

/// Appends records `head + 1 ..= head + count` in batches whose sizes cycle through
/// `batch_sizes`, feeding the oracle from the returned headers.
fn append_varied(log: &mut Log, oracle: &mut Oracle, count: u64, batch_sizes: &[u64]) {
    append_bodies(log, oracle, count, batch_sizes, body_for);
}

/// [`append_varied`] with bodies from `body`.
fn append_bodies(
    log: &mut Log,
    oracle: &mut Oracle,
    count: u64,
    batch_sizes: &[u64],
    body: fn(u64) -> Vec<u8>,
) {
    let end = log.head().sequence + count;
    let mut turn = 0;
    while log.head().sequence < end {
        let first = log.head().sequence + 1;
        let batch_end = (first + batch_sizes[turn % batch_sizes.len()]).min(end + 1);
        turn += 1;
        let bodies: Vec<Vec<u8>> = (first..batch_end).map(body).collect();
        let records: Vec<NewRecord<'_>> = (first..batch_end)
            .zip(&bodies)
            .map(|(sequence, body)| NewRecord {
                time_ms: time_for(sequence),
                kind: kind_for(sequence),
                body,
                index: IndexKeys::default(),
            })
            .collect();
        for header in log.append_batch(&records).unwrap() {
            oracle.push(&header.hash);
        }
    }
}

/// Every root, every inclusion proof and every consistency proof of a tree of up to
/// `oracle.size()` leaves: equal to the oracle's and accepted by the pure verifiers.
fn check_everything(log: &Log, oracle: &Oracle) {
    assert_eq!(log.tree_size(), oracle.size());
    for size in 0..=oracle.size() {
        let root = log.merkle_root(size).unwrap();
        assert_eq!(root, oracle.roots[size as usize], "root at size {size}");
        for index in 0..size {
            let proof = log.inclusion_proof(index, size).unwrap();
            let expected = inclusion_proof(&Blake3, &oracle.store, index, size).unwrap();
            assert_eq!(proof, expected, "inclusion of {index} at size {size}");
            verify_inclusion(
                &Blake3,
                index,
                size,
                &oracle.leaves[index as usize],
                &proof,
                &root,
            )
            .unwrap();
        }
        for size1 in 1..=size {
            let proof = log.consistency_proof(size1, size).unwrap();
            let expected = consistency_proof(&Blake3, &oracle.store, size1, size).unwrap();
            assert_eq!(proof, expected, "consistency {size1} -> {size}");
            verify_consistency(
                &Blake3,
                size1,
                size,
                &proof,
                &oracle.roots[size1 as usize],
                &root,
            )
            .unwrap();
        }
    }
}

#[test]
fn every_root_and_proof_of_every_size_up_to_300_matches_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::create(dir.path(), unsynced()).unwrap();
    let mut oracle = Oracle::new();
    // Batches of 1 to 70 records: batch edges fall on and off the 64-leaf blocks.
    append_varied(&mut log, &mut oracle, 300, &[1, 2, 3, 7, 64, 70, 13, 5]);
    check_everything(&log, &oracle);
    drop(log);

    // A read-only handle answers from the store alone, the current size included.
    let reader = Log::open_read_only(dir.path()).unwrap();
    check_everything(&reader, &oracle);
    drop(reader);

    // A reopened writer restores the frontier and extends the same tree.
    let mut log = Log::open(dir.path(), unsynced()).unwrap();
    assert_eq!(log.merkle_root(300).unwrap(), oracle.roots[300]);
    append_varied(&mut log, &mut oracle, 29, &[4, 25]);
    assert_eq!(log.merkle_root(329).unwrap(), oracle.roots[329]);
    assert_eq!(
        log.merkle_root(300).unwrap(),
        oracle.roots[300],
        "old roots stay"
    );
    verify(&log, |_, _| {}, |_| Ok(())).unwrap();
}

#[test]
fn random_roots_and_proofs_of_a_bigger_log_match_the_oracle() {
    let mut rng = Rng::from_clock("random_roots_and_proofs_of_a_bigger_log_match_the_oracle");
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::create(dir.path(), unsynced()).unwrap();
    let mut oracle = Oracle::new();
    let records = 20_000 + rng.below(5_000);
    append_varied(&mut log, &mut oracle, records, &[1000, 4096, 333, 1]);
    drop(log);
    let log = Log::open(dir.path(), unsynced()).unwrap();
    // Interesting sizes first (block edges, powers of two), then random ones.
    let block = 1u64 << MERKLE_LEVEL_MIN;
    let mut sizes = vec![1, block - 1, block, block + 1, 4096, 4097, 16_384, records];
    sizes.extend((0..200).map(|_| 1 + rng.below(records)));
    for size in sizes {
        let root = log.merkle_root(size).unwrap();
        assert_eq!(root, oracle.roots[size as usize], "root at size {size}");
        for index in [0, size - 1, rng.below(size), rng.below(size)] {
            let proof = log.inclusion_proof(index, size).unwrap();
            assert_eq!(
                proof,
                inclusion_proof(&Blake3, &oracle.store, index, size).unwrap()
            );
            verify_inclusion(
                &Blake3,
                index,
                size,
                &oracle.leaves[index as usize],
                &proof,
                &root,
            )
            .unwrap();
        }
        for size1 in [1, size, 1 + rng.below(size), 1 + rng.below(size)] {
            let proof = log.consistency_proof(size1, size).unwrap();
            assert_eq!(
                proof,
                consistency_proof(&Blake3, &oracle.store, size1, size).unwrap()
            );
            verify_consistency(
                &Blake3,
                size1,
                size,
                &proof,
                &oracle.roots[size1 as usize],
                &root,
            )
            .unwrap();
        }
    }
}

#[test]
fn requests_outside_the_tree_are_refused_with_their_rule() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::create(dir.path(), unsynced()).unwrap();
    assert_eq!(log.tree_size(), 0);
    assert_eq!(log.merkle_root(0).unwrap(), Blake3.empty_root());
    append_records(&mut log, 10, 4);
    let cases = [
        (
            log.merkle_root(11).map(|_| ()),
            TreeErrorKind::SizeBeyondTree,
        ),
        (
            log.inclusion_proof(0, 11).map(|_| ()),
            TreeErrorKind::SizeBeyondTree,
        ),
        (
            log.inclusion_proof(10, 10).map(|_| ()),
            TreeErrorKind::IndexBeyondSize,
        ),
        (
            log.consistency_proof(3, 11).map(|_| ()),
            TreeErrorKind::SizeBeyondTree,
        ),
        (
            log.consistency_proof(5, 4).map(|_| ()),
            TreeErrorKind::Size2LessThanSize1,
        ),
        (
            log.consistency_proof(0, 4).map(|_| ()),
            TreeErrorKind::Size1Zero,
        ),
    ];
    for (result, kind) in cases {
        let error = result.unwrap_err();
        assert_eq!(error.kind(), kind, "{error}");
    }
    assert_eq!(
        log.merkle_root(11).unwrap_err().to_string(),
        "tree size `11` is beyond the log's tree size `10`"
    );
    assert_eq!(log.consistency_proof(0, 0).unwrap(), Vec::<Digest>::new());
    assert_eq!(log.consistency_proof(7, 7).unwrap(), Vec::<Digest>::new());
}

#[test]
fn only_complete_nodes_from_the_lowest_stored_level_up_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::create(dir.path(), unsynced()).unwrap();
    let mut oracle = Oracle::new();
    let records = 5 * 64 * 64 + 1000 + 17;
    append_varied(&mut log, &mut oracle, records, &[4096, 77]);
    drop(log);
    let db = open_raw(dir.path());
    let merkle = db.cf_handle(layout::CF_MERKLE).unwrap();
    let mut stored = 0u64;
    for entry in db.iterator_cf(merkle, rocksdb::IteratorMode::Start) {
        let (key, value) = entry.unwrap();
        let node_id = NodeId::from_key_bytes(key[..].try_into().unwrap()).unwrap();
        assert!(node_id.level >= MERKLE_LEVEL_MIN, "{node_id:?} is stored");
        assert!(node_id.is_complete_in(records), "{node_id:?} is incomplete");
        assert_eq!(
            value[..],
            grantledger_merkle::NodeStore::node_hash(&oracle.store, node_id).unwrap()
        );
        stored += 1;
    }
    let expected: u64 = (MERKLE_LEVEL_MIN..64).map(|level| records >> level).sum();
    assert_eq!(stored, expected);
    let meta = db.cf_handle(layout::CF_META).unwrap();
    let frontier = db.get_cf(meta, layout::META_KEY_TREE).unwrap().unwrap();
    assert_eq!(frontier, layout::encode_tree_frontier(&oracle.range));
    let (size, peaks) = layout::decode_tree_frontier(&frontier).unwrap();
    assert_eq!((size, &peaks[..]), (records, oracle.range.peaks()));
}

#[test]
fn a_log_created_without_the_tree_refuses_proofs_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::create_without_merkle_tree(dir.path(), unsynced()).unwrap();
    append_records(&mut log, 100, 30);
    let error = log.merkle_root(10).unwrap_err();
    assert_eq!(error.kind(), TreeErrorKind::TreeDisabled);
    assert_eq!(
        log.inclusion_proof(1, 10).unwrap_err().kind(),
        TreeErrorKind::TreeDisabled
    );
    drop(log);
    let error = Log::open(dir.path(), unsynced()).err().unwrap();
    assert_eq!(error.kind(), OpenErrorKind::TreeMismatch, "{error}");
    let db = open_raw(dir.path());
    let merkle = db.cf_handle(layout::CF_MERKLE).unwrap();
    assert!(
        db.iterator_cf(merkle, rocksdb::IteratorMode::Start)
            .next()
            .is_none()
    );
}

// ---------------------------------------------------------------------------------------
// Tampering with the tree itself.

const RECORDS: u64 = 300;

fn build(dir: &Path) -> Oracle {
    let mut log = Log::create(dir, unsynced()).unwrap();
    let mut oracle = Oracle::new();
    append_varied(&mut log, &mut oracle, RECORDS, &[50, 64, 1]);
    oracle
}

fn verify_dir(dir: &Path) -> Result<u64, grantledger_log::VerifyFailure> {
    let log = Log::open_read_only(dir).unwrap();
    verify(&log, |_, _| {}, |_| Ok(())).map(|report| report.records)
}

/// The sequence of the record whose append completes `node_id`.
fn completing_sequence(node_id: NodeId) -> u64 {
    node_id.first_leaf() + node_id.leaf_count()
}

#[test]
fn a_changed_node_is_named_by_verify_and_breaks_the_proofs_through_it() {
    let stored_nodes = [NodeId::new(6, 0), NodeId::new(6, 3), NodeId::new(8, 0)];
    for node_id in stored_nodes {
        let dir = tempfile::tempdir().unwrap();
        let oracle = build(dir.path());
        {
            let db = open_raw(dir.path());
            let merkle = db.cf_handle(layout::CF_MERKLE).unwrap();
            let key = layout::merkle_node_key(node_id);
            let mut value = db.get_cf(merkle, key).unwrap().unwrap();
            value[31] ^= 0x40;
            db.put_cf(merkle, key, value).unwrap();
        }
        let failure = verify_dir(dir.path()).unwrap_err();
        assert_eq!(
            (failure.sequence, failure.rule),
            (
                completing_sequence(node_id),
                grantledger_log::rule::MERKLE_NODE_MISMATCH
            ),
            "{node_id:?}: {failure}"
        );
        assert!(
            failure.detail.contains(&format!(
                "level `{}` index `{}`",
                node_id.level, node_id.index
            )),
            "{failure}"
        );

        // The leaves under the node's sibling have the node itself as a proof hash at
        // size 300 (for (8, 0): the leaves 256..300 on the root's right side). Their
        // proofs no longer lead to the signed root.
        let log = Log::open_read_only(dir.path()).unwrap();
        let leaf = node_id.sibling().first_leaf();
        let proof = log.inclusion_proof(leaf, RECORDS).unwrap();
        let error = verify_inclusion(
            &Blake3,
            leaf,
            RECORDS,
            &oracle.leaves[leaf as usize],
            &proof,
            &oracle.roots[RECORDS as usize],
        )
        .unwrap_err();
        assert_eq!(error.kind(), ProofErrorKind::RootMismatch, "{node_id:?}");
    }
}

#[test]
fn a_missing_node_is_named_by_verify_and_by_the_proofs_that_need_it() {
    let node_id = NodeId::new(7, 0);
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    {
        let db = open_raw(dir.path());
        let merkle = db.cf_handle(layout::CF_MERKLE).unwrap();
        db.delete_cf(merkle, layout::merkle_node_key(node_id))
            .unwrap();
    }
    let failure = verify_dir(dir.path()).unwrap_err();
    assert_eq!(
        (failure.sequence, failure.rule),
        (128, grantledger_log::rule::MERKLE_NODE_MISSING),
        "{failure}"
    );
    let log = Log::open_read_only(dir.path()).unwrap();
    // Leaf 130 is under (7, 1), so at size 256 its proof's top hash is (7, 0).
    let error = log.inclusion_proof(130, 256).unwrap_err();
    assert_eq!(error.kind(), TreeErrorKind::Corrupt);
    assert!(error.to_string().contains("level `7` index `0`"), "{error}");
    drop(log);
    let error = Log::open(dir.path(), unsynced()).map(|_| ());
    // The frontier at 300 is (8, 0), (5, 8), (3, 36), (2, 74): (7, 0) is not one of them,
    // so the writer still opens; only proofs through the node and verify notice.
    assert!(error.is_ok(), "{error:?}");
}

#[test]
fn extra_nodes_and_a_changed_frontier_are_named() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    {
        let db = open_raw(dir.path());
        let merkle = db.cf_handle(layout::CF_MERKLE).unwrap();
        db.put_cf(merkle, layout::merkle_node_key(NodeId::new(6, 4)), [7; 32])
            .unwrap();
    }
    let failure = verify_dir(dir.path()).unwrap_err();
    assert_eq!(
        (failure.sequence, failure.rule),
        (RECORDS + 1, grantledger_log::rule::MERKLE_NODE_UNEXPECTED),
        "{failure}"
    );

    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    {
        let db = open_raw(dir.path());
        let merkle = db.cf_handle(layout::CF_MERKLE).unwrap();
        db.put_cf(merkle, layout::merkle_node_key(NodeId::new(2, 0)), [7; 32])
            .unwrap();
    }
    let failure = verify_dir(dir.path()).unwrap_err();
    assert_eq!(
        failure.rule,
        grantledger_log::rule::MERKLE_NODE_UNEXPECTED,
        "{failure}"
    );

    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    {
        let db = open_raw(dir.path());
        let meta = db.cf_handle(layout::CF_META).unwrap();
        let mut frontier = db.get_cf(meta, layout::META_KEY_TREE).unwrap().unwrap();
        let last = frontier.len() - 1;
        frontier[last] ^= 1;
        db.put_cf(meta, layout::META_KEY_TREE, frontier).unwrap();
    }
    let failure = verify_dir(dir.path()).unwrap_err();
    assert_eq!(
        (failure.sequence, failure.rule),
        (RECORDS, grantledger_log::rule::MERKLE_FRONTIER_MISMATCH),
        "{failure}"
    );
    let error = Log::open(dir.path(), unsynced()).err().unwrap();
    assert_eq!(error.kind(), OpenErrorKind::TreeMismatch, "{error}");
    assert!(
        error.to_string().contains("node level `2` index `74`"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------
// Truncation and rewriting, done as an attacker with write access would: consistently.

/// Removes records `size + 1 ..= head` and rewrites the head and the tree frontier to
/// match, as someone covering their tracks would. With `delete_stale_nodes`, also
/// removes the stored nodes the shorter tree does not have.
fn truncate(dir: &Path, oracle: &Oracle, size: u64, delete_stale_nodes: bool) {
    let db = open_raw(dir);
    let records = db.cf_handle(layout::CF_RECORDS).unwrap();
    let meta = db.cf_handle(layout::CF_META).unwrap();
    let merkle = db.cf_handle(layout::CF_MERKLE).unwrap();
    for sequence in size + 1..=oracle.size() {
        db.delete_cf(records, layout::record_key(sequence)).unwrap();
    }
    let last = db
        .get_cf(records, layout::record_key(size))
        .unwrap()
        .unwrap();
    let header = RecordHeader::decode(last[..87].try_into().unwrap());
    let head = grantledger_log::Head {
        sequence: size,
        hash: header.hash,
        time_ms: header.time_ms,
    };
    db.put_cf(meta, layout::META_KEY_HEAD, layout::encode_head(&head))
        .unwrap();
    db.put_cf(
        meta,
        layout::META_KEY_TREE,
        layout::encode_tree_frontier(&oracle.range_at(size)),
    )
    .unwrap();
    if delete_stale_nodes {
        let stale: Vec<Box<[u8]>> = db
            .iterator_cf(merkle, rocksdb::IteratorMode::Start)
            .map(|entry| entry.unwrap().0)
            .filter(|key| {
                let node_id = NodeId::from_key_bytes(key[..].try_into().unwrap()).unwrap();
                !node_id.is_complete_in(size)
            })
            .collect();
        for key in stale {
            db.delete_cf(merkle, key).unwrap();
        }
    }
}

#[test]
fn a_truncated_log_cannot_produce_the_signed_root_or_a_proof_from_it() {
    for removed in 1..=100u64 {
        let dir = tempfile::tempdir().unwrap();
        let oracle = build(dir.path());
        // The auditor's signed checkpoint, and an older one.
        let (signed_size, signed_root) = (RECORDS, oracle.roots[RECORDS as usize]);
        let older_size = RECORDS - 150;
        let size = RECORDS - removed;

        truncate(dir.path(), &oracle, size, false);
        let stale_nodes = (MERKLE_LEVEL_MIN..64).any(|level| (RECORDS >> level) > (size >> level));
        match verify_dir(dir.path()) {
            Ok(records) => assert!(!stale_nodes && records == size, "k = {removed}"),
            Err(failure) => {
                assert!(stale_nodes, "k = {removed}: {failure}");
                assert_eq!(
                    (failure.sequence, failure.rule),
                    (size + 1, grantledger_log::rule::MERKLE_NODE_UNEXPECTED),
                    "k = {removed}"
                );
            }
        }
        truncate(dir.path(), &oracle, size, true);
        // Consistent to the chain: verify and open accept it; only the checkpoint can tell.
        assert_eq!(verify_dir(dir.path()), Ok(size), "k = {removed}");
        let mut log = Log::open(dir.path(), unsynced()).unwrap();
        assert_eq!(log.tree_size(), size);
        let error = log.merkle_root(signed_size).unwrap_err();
        assert_eq!(error.kind(), TreeErrorKind::SizeBeyondTree, "k = {removed}");
        let error = log.consistency_proof(signed_size, size).unwrap_err();
        assert_eq!(
            error.kind(),
            TreeErrorKind::Size2LessThanSize1,
            "k = {removed}"
        );
        let error = log.inclusion_proof(size, signed_size).unwrap_err();
        assert_eq!(error.kind(), TreeErrorKind::SizeBeyondTree, "k = {removed}");
        // The older checkpoint is still consistent: what was kept was not rewritten.
        let proof = log.consistency_proof(older_size, size).unwrap();
        verify_consistency(
            &Blake3,
            older_size,
            size,
            &proof,
            &oracle.roots[older_size as usize],
            &log.merkle_root(size).unwrap(),
        )
        .unwrap();

        // Growing the log back past the signed size with other records does not help.
        let mut forged = Oracle::of_log(&log);
        let other_body = |sequence| {
            let mut body = body_for(sequence);
            body.push(0xEE);
            body
        };
        append_bodies(&mut log, &mut forged, removed + 3, &[2, 9], other_body);
        let new_size = log.tree_size();
        assert!(new_size > signed_size);
        let new_root = log.merkle_root(new_size).unwrap();
        let proof = log.consistency_proof(signed_size, new_size).unwrap();
        let error = verify_consistency(
            &Blake3,
            signed_size,
            new_size,
            &proof,
            &signed_root,
            &new_root,
        )
        .unwrap_err();
        assert!(
            matches!(
                error.kind(),
                ProofErrorKind::FirstRootMismatch | ProofErrorKind::RootMismatch
            ),
            "k = {removed}: {error}"
        );
        assert_ne!(log.merkle_root(signed_size).unwrap(), signed_root);
        // And the rebuilt log is a valid log in its own right: only the checkpoint can tell.
        drop(log);
        assert_eq!(verify_dir(dir.path()), Ok(new_size));
    }
}

#[test]
fn a_rewritten_middle_record_with_the_chain_and_tree_recomputed_fails_the_older_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let oracle = build(dir.path());
    let signed_size = 200;
    let signed_root = oracle.roots[signed_size as usize];
    // Rewrite record 150's body, re-hash the chain after it, rebuild the whole tree.
    let mut forged = Oracle::new();
    {
        let db = open_raw(dir.path());
        let records = db.cf_handle(layout::CF_RECORDS).unwrap();
        let meta = db.cf_handle(layout::CF_META).unwrap();
        let merkle = db.cf_handle(layout::CF_MERKLE).unwrap();
        let mut parent = [0u8; 32];
        for sequence in 1..=RECORDS {
            let value = db
                .get_cf(records, layout::record_key(sequence))
                .unwrap()
                .unwrap();
            let mut header = RecordHeader::decode(value[..87].try_into().unwrap());
            let mut body = value[87..].to_vec();
            if sequence == 150 {
                body = b"access that never was".to_vec();
                header.body_len = body.len() as u32;
            }
            header.parent = parent;
            header.hash = header.compute_hash(&body);
            let mut rewritten = header.encode().to_vec();
            rewritten.extend_from_slice(&body);
            db.put_cf(records, layout::record_key(sequence), rewritten)
                .unwrap();
            parent = header.hash;
            forged.push(&header.hash);
            if sequence == RECORDS {
                let head = grantledger_log::Head {
                    sequence,
                    hash: header.hash,
                    time_ms: header.time_ms,
                };
                db.put_cf(meta, layout::META_KEY_HEAD, layout::encode_head(&head))
                    .unwrap();
            }
        }
        db.put_cf(
            meta,
            layout::META_KEY_TREE,
            layout::encode_tree_frontier(&forged.range),
        )
        .unwrap();
        for level in MERKLE_LEVEL_MIN..9 {
            for index in 0..RECORDS >> level {
                let node_id = NodeId::new(level, index);
                let hash =
                    grantledger_merkle::NodeStore::node_hash(&forged.store, node_id).unwrap();
                db.put_cf(merkle, layout::merkle_node_key(node_id), hash)
                    .unwrap();
            }
        }
    }
    // The forgery is internally consistent...
    assert_eq!(verify_dir(dir.path()), Ok(RECORDS));
    let log = Log::open(dir.path(), unsynced()).unwrap();
    // ...but not with what the auditor signed before it.
    assert_ne!(log.merkle_root(signed_size).unwrap(), signed_root);
    let proof = log.consistency_proof(signed_size, RECORDS).unwrap();
    let error = verify_consistency(
        &Blake3,
        signed_size,
        RECORDS,
        &proof,
        &signed_root,
        &log.merkle_root(RECORDS).unwrap(),
    )
    .unwrap_err();
    assert_eq!(error.kind(), ProofErrorKind::FirstRootMismatch, "{error}");
    // A checkpoint signed before record 150 is still consistent with the forgery.
    let early = 149;
    verify_consistency(
        &Blake3,
        early,
        RECORDS,
        &log.consistency_proof(early, RECORDS).unwrap(),
        &oracle.roots[early as usize],
        &log.merkle_root(RECORDS).unwrap(),
    )
    .unwrap();
}
