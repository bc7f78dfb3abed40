//! `schemas/LOG_FORMAT.md` is the contract for tools that are not ours: its worked example
//! must be exactly what this crate writes, and its constants must match the code.

use grantledger_log::{
    BODY_BYTES_MAX, HASH_DOMAIN_TAG, HEADER_BYTES, Head, IndexKeys, Log, LogOptions, NewRecord,
    layout,
};

const DOC: &str = include_str!("../../../schemas/LOG_FORMAT.md");

/// The hex strings the document's example must contain, computed by writing the example
/// records into a real log and reading the raw RocksDB values back.
fn example_hex() -> Vec<(&'static str, String)> {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::create(dir.path(), LogOptions::default()).unwrap();
    let principals: [&[u8]; 1] = [b"alice"];
    log.append_batch(&[
        NewRecord {
            time_ms: 1_700_000_000_000,
            kind: 3,
            body: b"hello grantledger",
            index: IndexKeys {
                request: Some(b"req-1"),
                principal: &principals,
                ..IndexKeys::default()
            },
        },
        NewRecord {
            time_ms: 1_700_000_000_250,
            kind: 4,
            body: b"",
            index: IndexKeys::default(),
        },
    ])
    .unwrap();
    let head = log.head();
    let log_root = log.merkle_root(2).unwrap();
    drop(log);
    let db = rocksdb::DB::open_cf_descriptors_read_only(
        &layout::rocksdb_options(),
        dir.path(),
        layout::column_family_descriptors(),
        false,
    )
    .unwrap();
    let records = db.cf_handle(layout::CF_RECORDS).unwrap();
    let meta = db.cf_handle(layout::CF_META).unwrap();
    let value = |sequence| {
        db.get_cf(records, layout::record_key(sequence))
            .unwrap()
            .unwrap()
    };
    let (first, second) = (value(1), value(2));
    let stored_head = db.get_cf(meta, layout::META_KEY_HEAD).unwrap().unwrap();
    let stored_tree = db.get_cf(meta, layout::META_KEY_TREE).unwrap().unwrap();
    // The leaves and root as RFC 9162 defines them, computed here with blake3 directly.
    let leaf = |value: &[u8]| {
        let mut input = vec![0x00];
        input.extend_from_slice(&value[55..87]);
        *blake3::hash(&input).as_bytes()
    };
    let (leaf_1, leaf_2) = (leaf(&first), leaf(&second));
    let mut node_input = vec![0x01];
    node_input.extend_from_slice(&leaf_1);
    node_input.extend_from_slice(&leaf_2);
    let root_2 = *blake3::hash(&node_input).as_bytes();
    assert_eq!(log_root, root_2, "the log's root is the RFC 9162 root");
    let mut expected_tree = 2u64.to_be_bytes().to_vec();
    expected_tree.extend_from_slice(&root_2);
    assert_eq!(stored_tree, expected_tree);
    let merkle = db.cf_handle(layout::CF_MERKLE).unwrap();
    assert!(
        db.iterator_cf(merkle, rocksdb::IteratorMode::Start)
            .next()
            .is_none(),
        "no node is stored below level 6"
    );
    assert_eq!(layout::decode_head(&stored_head), Some(head));
    let mut request_entry = Vec::new();
    layout::index_entry_key(b"req-1", 1, &mut request_entry);
    let mut principal_entry = Vec::new();
    layout::index_entry_key(b"alice", 1, &mut principal_entry);
    assert!(
        db.get_cf(
            db.cf_handle(layout::CF_INDEX_REQUEST).unwrap(),
            &request_entry
        )
        .unwrap()
        .is_some()
    );
    assert!(
        db.get_cf(
            db.cf_handle(layout::CF_INDEX_PRINCIPAL).unwrap(),
            &principal_entry
        )
        .unwrap()
        .is_some()
    );
    vec![
        ("record 1 key", hex::encode(layout::record_key(1))),
        ("record 1 header", hex::encode(&first[..HEADER_BYTES])),
        ("record 1 body", hex::encode(&first[HEADER_BYTES..])),
        ("record 1 hash", hex::encode(&first[55..87])),
        ("record 2 header", hex::encode(&second[..HEADER_BYTES])),
        ("request index entry", hex::encode(&request_entry)),
        ("principal index entry", hex::encode(&principal_entry)),
        ("head", hex::encode(&stored_head)),
        ("merkle leaf 1", hex::encode(leaf_1)),
        ("merkle leaf 2", hex::encode(leaf_2)),
        ("merkle root 2", hex::encode(root_2)),
        ("tree frontier", hex::encode(&stored_tree)),
        (
            "empty tree frontier",
            hex::encode(layout::encode_tree_frontier(
                &grantledger_log::merkle::CompactRange::new(),
            )),
        ),
        ("empty head", hex::encode(layout::encode_head(&Head::EMPTY))),
    ]
}

/// The document without the whitespace that wraps long hex strings.
fn doc_squashed() -> String {
    DOC.split_whitespace().collect()
}

#[test]
fn the_format_document_example_is_what_the_log_writes() {
    let doc = doc_squashed();
    let mut missing = Vec::new();
    for (what, hex) in example_hex() {
        if !doc.contains(&hex) {
            missing.push(format!("{what}: {hex}"));
        }
    }
    assert!(
        missing.is_empty(),
        "schemas/LOG_FORMAT.md lacks:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_format_document_states_the_constants() {
    let tag = String::from_utf8_lossy(&HASH_DOMAIN_TAG[..HASH_DOMAIN_TAG.len() - 1]).into_owned();
    let must_appear = [
        format!("`{tag}\\0`"),
        format!("`{}`", hex::encode(HASH_DOMAIN_TAG)),
        format!("{BODY_BYTES_MAX}"),
        format!("{}", layout::INDEX_KEY_BYTES_MAX),
        format!("{}", layout::INDEX_PRINCIPALS_MAX),
        format!("`{}`", String::from_utf8_lossy(layout::FORMAT_MARKER)),
        format!("`MERKLE_LEVEL_MIN` = {}", layout::MERKLE_LEVEL_MIN),
        format!("at level **{}** and above", layout::MERKLE_LEVEL_MIN),
    ];
    let names = layout::COLUMN_FAMILIES
        .iter()
        .map(|name| format!("`{name}`"));
    for needle in must_appear.into_iter().chain(names) {
        assert!(
            DOC.contains(&needle),
            "schemas/LOG_FORMAT.md does not mention {needle}"
        );
    }
}
