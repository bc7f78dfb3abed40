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
