//! The three JetStream streams of `DESIGN.md` and the check that refuses to
//! run against a wrongly configured one.
//!
//! The ledger owns these streams: it creates the missing ones, and when one
//! exists it reads its configuration back and stops, naming the stream, the
//! setting, what it expected and what it found, rather than publishing into
//! a stream that would lose events (memory storage, a purge, a limit that
//! discards) or capture the wrong subjects. It never updates a stream: that
//! is an operator's decision, taken with the admin user.
//!
//! Upgrades: a subject this version added to a stream
//! ([`GRANT_INPUT_SUBJECTS_ADDED`], the policy inputs) may be missing from a
//! stream an earlier version made. Such a stream is accepted, not refused,
//! so that upgrading the ledger does not stop a running deployment (and the
//! ledger could not fix it: the shipped config denies it stream updates);
//! [`StreamsReport`] names what it lacks, the ledger logs it and runs
//! without those inputs until an operator adds the subjects.

use std::fmt;
use std::time::Duration;

use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, ErrorCode};

use crate::subjects::{
    GRANT_EXPIRY_SUBJECTS, GRANT_INPUT_SUBJECTS, GRANT_INPUT_SUBJECTS_ADDED, LEDGER_EVENTS_SUBJECTS,
};

/// Inputs to the ledger: requests, approvals, signals, revocation reports,
/// timers, catalogs and policy sets.
pub const GRANT_INPUT_STREAM: &str = "GRANT_INPUT";

/// Events the ledger committed, and its checkpoints. Never purged, never
/// trimmed: it converges to the log.
pub const LEDGER_EVENTS_STREAM: &str = "LEDGER_EVENTS";

/// Expiry and early-revocation notices for revocation workers.
pub const GRANT_EXPIRY_STREAM: &str = "GRANT_EXPIRY";

/// JetStream's own default duplicate window.
pub const DUPLICATE_WINDOW_DEFAULT: Duration = Duration::from_secs(120);

/// The settings of the streams that a deployment chooses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsConfig {
    /// JetStream drops a message whose `Nats-Msg-Id` it has seen within this
    /// window. It saves the ledger work, and keeps republished events out of
    /// `LEDGER_EVENTS`; exactly one decision per request id does not depend
    /// on it (the ledger's request-id index answers after the window too).
    pub duplicate_window: Duration,
    /// Copies of each stream: 1 on a single server, 3 in a cluster.
    pub replicas: usize,
}

impl Default for StreamsConfig {
    fn default() -> StreamsConfig {
        StreamsConfig {
            duplicate_window: DUPLICATE_WINDOW_DEFAULT,
            replicas: 1,
        }
    }
}

/// The three streams as the ledger creates them: `GRANT_INPUT`,
/// `LEDGER_EVENTS` and `GRANT_EXPIRY`, on file storage with `config`'s
/// duplicate window and replicas, no limits, and on `LEDGER_EVENTS` no
/// message delete, no purge and no rollup.
pub fn stream_configs(config: &StreamsConfig) -> [Config; 3] {
    let base = |name: &str, subjects: &[&str]| Config {
        name: name.to_owned(),
        subjects: subjects
            .iter()
            .map(|subject| (*subject).to_owned())
            .collect(),
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        max_messages: UNLIMITED,
        max_bytes: UNLIMITED,
        max_messages_per_subject: UNLIMITED,
        max_age: Duration::ZERO,
        max_consumers: UNLIMITED as i32,
        duplicate_window: config.duplicate_window,
        num_replicas: config.replicas,
        ..Config::default()
    };
    let ledger_events = Config {
        description: Some("events the ledger committed; converges to the log".to_owned()),
        deny_delete: true,
        deny_purge: true,
        allow_rollup: false,
        ..base(LEDGER_EVENTS_STREAM, &LEDGER_EVENTS_SUBJECTS)
    };
    let grant_input = Config {
        description: Some("inputs to the ledger".to_owned()),
        ..base(GRANT_INPUT_STREAM, &GRANT_INPUT_SUBJECTS)
    };
    let grant_expiry = Config {
        description: Some("grants to remove at their target systems".to_owned()),
        ..base(GRANT_EXPIRY_STREAM, &GRANT_EXPIRY_SUBJECTS)
    };
    [grant_input, ledger_events, grant_expiry]
}

/// Creates each of the three streams that is missing, and checks each that
/// exists (or that another process created meanwhile) against
/// [`stream_configs`]; the first difference is the error. Bounded by the
/// context's request timeout: at most three JetStream requests per stream.
///
/// What is checked: subjects (as a set, except that subjects added by a
/// later version may be missing: see [`StreamsReport`]), storage,
/// retention, duplicate window, replicas, not sealed, acks on; on
/// `LEDGER_EVENTS` also deny delete, deny purge, no rollup and no limit that
/// discards events. Limits on `GRANT_INPUT` and `GRANT_EXPIRY` are left to
/// operators.
pub async fn ensure_streams(
    jetstream: &jetstream::Context,
    config: &StreamsConfig,
) -> Result<StreamsReport, StreamsError> {
    let mut report = StreamsReport::default();
    for expected in stream_configs(config) {
        for subject in ensure_stream(jetstream, &expected).await? {
            report.missing_subjects.push((expected.name.clone(), subject));
        }
    }
    Ok(report)
}

/// What [`ensure_streams`] accepted short of the expected configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamsReport {
    /// `(stream, subject)`: subjects a later version added to a stream
    /// (only [`GRANT_INPUT_SUBJECTS_ADDED`]) that the existing stream, made
    /// by an earlier version, does not capture. Nothing published on them
    /// is stored until an operator adds them to the stream (with the admin
    /// user; the ledger never updates a stream).
    pub missing_subjects: Vec<(String, String)>,
}

impl StreamsReport {
    /// True when `stream` exists without `subject`, which a later version added.
    pub fn lacks(&self, stream: &str, subject: &str) -> bool {
        self.missing_subjects
            .iter()
            .any(|(name, missing)| name == stream && missing == subject)
    }
}

/// The subjects of stream `name` that a version after the first added, and
/// that an existing stream may therefore lack.
fn subjects_added_later(name: &str) -> &'static [&'static str] {
    if name == GRANT_INPUT_STREAM {
        &GRANT_INPUT_SUBJECTS_ADDED
    } else {
        &[]
    }
}

/// Why [`ensure_streams`] refused to go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsError {
    kind: StreamsErrorKind,
    stream: String,
    detail: Detail,
}

/// What went wrong, one kind per checked setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamsErrorKind {
    /// Asking JetStream about the stream failed (no answer, JetStream off,
    /// no permission).
    Lookup,
    /// Creating the missing stream failed, for example because its subjects
    /// overlap another stream's.
    Create,
    /// The stream captures other subjects than expected.
    Subjects,
    /// The stream is not on file storage.
    Storage,
    /// The stream's retention policy is not `limits`.
    Retention,
    /// The stream's duplicate window is not the configured one.
    DuplicateWindow,
    /// The stream's replica count is not the configured one.
    Replicas,
    /// The stream is sealed: nothing can be added to it.
    Sealed,
    /// The stream does not acknowledge publishes.
    NoAck,
    /// `LEDGER_EVENTS` allows deleting messages.
    DenyDelete,
    /// `LEDGER_EVENTS` allows purging.
    DenyPurge,
    /// `LEDGER_EVENTS` allows rollups, which purge through a header.
    AllowRollup,
    /// `LEDGER_EVENTS` has a limit (messages, bytes, per-subject messages,
    /// age) that discards events.
    Limit,
}

impl StreamsErrorKind {
    /// True when the stream exists with a wrong setting (not when JetStream
    /// could not be asked, or the stream could not be created).
    pub fn is_misconfiguration(self) -> bool {
        !matches!(self, StreamsErrorKind::Lookup | StreamsErrorKind::Create)
    }
}

impl StreamsError {
    /// What went wrong.
    pub fn kind(&self) -> StreamsErrorKind {
        self.kind
    }

    /// The stream it went wrong with.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The setting that differs, as JetStream names it (`deny_purge`), for a
    /// misconfiguration.
    pub fn setting(&self) -> Option<&str> {
        match &self.detail {
            Detail::Mismatch { setting, .. } => Some(setting),
            Detail::Failure(_) => None,
        }
    }

    /// The value the ledger needs, for a misconfiguration.
    pub fn expected(&self) -> Option<&str> {
        match &self.detail {
            Detail::Mismatch { expected, .. } => Some(expected),
            Detail::Failure(_) => None,
        }
    }

    /// The value the stream has, for a misconfiguration.
    pub fn found(&self) -> Option<&str> {
        match &self.detail {
            Detail::Mismatch { found, .. } => Some(found),
            Detail::Failure(_) => None,
        }
    }

    fn mismatch(
        kind: StreamsErrorKind,
        stream: &str,
        setting: &'static str,
        expected: String,
        found: String,
    ) -> StreamsError {
        StreamsError {
            kind,
            stream: stream.to_owned(),
            detail: Detail::Mismatch {
                setting,
                expected,
                found,
            },
        }
    }

    fn failure(kind: StreamsErrorKind, stream: &str, cause: impl fmt::Display) -> StreamsError {
        StreamsError {
            kind,
            stream: stream.to_owned(),
            detail: Detail::Failure(cause.to_string()),
        }
    }
}

impl fmt::Display for StreamsError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stream = &self.stream;
        match (&self.detail, self.kind) {
            (
                Detail::Mismatch {
                    setting,
                    expected,
                    found,
                },
                _,
            ) => write!(
                formatter,
                "stream `{stream}` is misconfigured: `{setting}` is `{found}`, expected `{expected}`"
            ),
            (Detail::Failure(cause), StreamsErrorKind::Create) => {
                write!(formatter, "cannot create stream `{stream}`: {cause}")
            }
            (Detail::Failure(cause), _) => {
                write!(formatter, "cannot look up stream `{stream}`: {cause}")
            }
        }
    }
}

impl std::error::Error for StreamsError {}

/// JetStream's "no limit" for counts and sizes; the server turns 0 into it.
const UNLIMITED: i64 = -1;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Detail {
    Mismatch {
        setting: &'static str,
        expected: String,
        found: String,
    },
    /// The cause, as text: the async-nats error types stay inside this crate.
    Failure(String),
}

/// Creates or checks one stream; returns the subjects added later that it
/// lacks.
async fn ensure_stream(
    jetstream: &jetstream::Context,
    expected: &Config,
) -> Result<Vec<String>, StreamsError> {
    let name = expected.name.as_str();
    match jetstream.get_stream(name).await {
        Ok(stream) => return check_stream(expected, &stream.cached_info().config),
        Err(error) if is_stream_not_found(&error.kind()) => {}
        Err(error) => return Err(StreamsError::failure(StreamsErrorKind::Lookup, name, error)),
    }
    match jetstream.create_stream(expected.clone()).await {
        // The server fills in defaults and may adjust what it was given:
        // check what it created, not what was asked for.
        Ok(stream) => check_stream(expected, &stream.cached_info().config),
        Err(error) if is_stream_name_taken(&error.kind()) => {
            // Another process created it, differently, between the look-up and
            // the create (an identical create succeeds): check that one.
            let stream = jetstream
                .get_stream(name)
                .await
                .map_err(|error| StreamsError::failure(StreamsErrorKind::Lookup, name, error))?;
            check_stream(expected, &stream.cached_info().config)
        }
        Err(error) => Err(StreamsError::failure(StreamsErrorKind::Create, name, error)),
    }
}

fn is_stream_not_found(kind: &GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(error) if error.kind() == ErrorCode::STREAM_NOT_FOUND)
}

fn is_stream_name_taken(kind: &CreateStreamErrorKind) -> bool {
    matches!(kind, CreateStreamErrorKind::JetStream(error) if error.kind() == ErrorCode::STREAM_NAME_EXIST)
}

/// The first setting of `found` that differs from `expected` in a way the
/// ledger cannot accept; else the subjects a later version added to the
/// stream (see [`subjects_added_later`]) that `found` lacks, accepted.
fn check_stream(expected: &Config, found: &Config) -> Result<Vec<String>, StreamsError> {
    let stream = expected.name.as_str();
    let refuse = |kind, setting, expected: String, found: String| {
        Err(StreamsError::mismatch(
            kind, stream, setting, expected, found,
        ))
    };

    // A stream made before a subject was added lacks it: accepted (reported),
    // so that an upgrade keeps an existing deployment running. Any other
    // difference, a subject missing since the first version included, is
    // refused.
    let added_later = subjects_added_later(stream);
    let missing: Vec<String> = expected
        .subjects
        .iter()
        .filter(|subject| added_later.contains(&subject.as_str()) && !found.subjects.contains(subject))
        .cloned()
        .collect();
    let mut subjects_expected: Vec<String> = expected
        .subjects
        .iter()
        .filter(|subject| !missing.contains(subject))
        .cloned()
        .collect();
    let mut subjects_found = found.subjects.clone();
    subjects_expected.sort();
    subjects_found.sort();
    subjects_found.dedup();
    if subjects_expected != subjects_found {
        return refuse(
            StreamsErrorKind::Subjects,
            "subjects",
            expected.subjects.join(", "),
            found.subjects.join(", "),
        );
    }
    if found.storage != expected.storage {
        return refuse(
            StreamsErrorKind::Storage,
            "storage",
            storage_name(expected.storage).to_owned(),
            storage_name(found.storage).to_owned(),
        );
    }
    if found.retention != expected.retention {
        return refuse(
            StreamsErrorKind::Retention,
            "retention",
            retention_name(expected.retention).to_owned(),
            retention_name(found.retention).to_owned(),
        );
    }
    if found.duplicate_window != expected.duplicate_window {
        return refuse(
            StreamsErrorKind::DuplicateWindow,
            "duplicate_window",
            format!("{:?}", expected.duplicate_window),
            format!("{:?}", found.duplicate_window),
        );
    }
    if found.num_replicas != expected.num_replicas {
        return refuse(
            StreamsErrorKind::Replicas,
            "num_replicas",
            expected.num_replicas.to_string(),
            found.num_replicas.to_string(),
        );
    }
    // Protections the ledger asks for must be there; extra ones (deny_purge
    // on an input stream, say) are an operator's choice.
    let protections = [
        (
            StreamsErrorKind::DenyDelete,
            "deny_delete",
            expected.deny_delete,
            found.deny_delete,
        ),
        (
            StreamsErrorKind::DenyPurge,
            "deny_purge",
            expected.deny_purge,
            found.deny_purge,
        ),
    ];
    for (kind, setting, wanted, present) in protections {
        if wanted && !present {
            return refuse(kind, setting, wanted.to_string(), present.to_string());
        }
    }
    // Switches that block or drop events must be off unless asked for.
    let hazards = [
        (
            StreamsErrorKind::Sealed,
            "sealed",
            expected.sealed,
            found.sealed,
        ),
        (
            StreamsErrorKind::NoAck,
            "no_ack",
            expected.no_ack,
            found.no_ack,
        ),
        (
            StreamsErrorKind::AllowRollup,
            "allow_rollup_hdrs",
            expected.allow_rollup,
            found.allow_rollup,
        ),
    ];
    for (kind, setting, wanted, present) in hazards {
        if present && !wanted {
            return refuse(kind, setting, wanted.to_string(), present.to_string());
        }
    }
    if expected.deny_purge {
        // INVARIANT: the stream the ledger protects from purges is the one
        // that must keep every event, so no limit may discard one either.
        let limits = [
            ("max_msgs", found.max_messages),
            ("max_bytes", found.max_bytes),
            ("max_msgs_per_subject", found.max_messages_per_subject),
        ];
        for (setting, value) in limits {
            if value > 0 {
                return refuse(
                    StreamsErrorKind::Limit,
                    setting,
                    "unlimited".to_owned(),
                    value.to_string(),
                );
            }
        }
        if found.max_age != Duration::ZERO {
            return refuse(
                StreamsErrorKind::Limit,
                "max_age",
                "unlimited".to_owned(),
                format!("{:?}", found.max_age),
            );
        }
    }
    Ok(missing)
}

fn storage_name(storage: StorageType) -> &'static str {
    match storage {
        StorageType::File => "file",
        StorageType::Memory => "memory",
    }
}

fn retention_name(retention: RetentionPolicy) -> &'static str {
    match retention {
        RetentionPolicy::Limits => "limits",
        RetentionPolicy::Interest => "interest",
        RetentionPolicy::WorkQueue => "workqueue",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger_events() -> Config {
        stream_configs(&StreamsConfig::default())[1].clone()
    }

    #[test]
    fn the_three_streams_carry_the_subjects_of_the_design() {
        let [input, events, expiry] = stream_configs(&StreamsConfig::default());
        assert_eq!(input.name, GRANT_INPUT_STREAM);
        assert_eq!(events.name, LEDGER_EVENTS_STREAM);
        assert_eq!(expiry.name, GRANT_EXPIRY_STREAM);
        assert_eq!(events.subjects, ["ledger.events.>", "ledger.checkpoints"]);
        assert_eq!(expiry.subjects, ["grants.expiry.>"]);
        assert_eq!(input.subjects.len(), 6);
        assert!(input.subjects.contains(&"grants.policy.*".to_owned()));
        for stream in [&input, &events, &expiry] {
            assert_eq!(stream.storage, StorageType::File);
            assert_eq!(stream.duplicate_window, DUPLICATE_WINDOW_DEFAULT);
            assert_eq!(check_stream(stream, stream), Ok(Vec::new()));
        }
        assert!(events.deny_delete && events.deny_purge && !events.allow_rollup);
    }

    #[test]
    fn each_misconfiguration_is_refused_with_its_kind_and_setting() {
        type Spoil = fn(&mut Config);
        let rows: [(Spoil, StreamsErrorKind, &str, &str, &str); 12] = [
            (
                |c| c.subjects.push("extra".into()),
                StreamsErrorKind::Subjects,
                "subjects",
                "ledger.events.>, ledger.checkpoints",
                "ledger.events.>, ledger.checkpoints, extra",
            ),
            (
                |c| c.storage = StorageType::Memory,
                StreamsErrorKind::Storage,
                "storage",
                "file",
                "memory",
            ),
            (
                |c| c.retention = RetentionPolicy::WorkQueue,
                StreamsErrorKind::Retention,
                "retention",
                "limits",
                "workqueue",
            ),
            (
                |c| c.duplicate_window = Duration::from_secs(1),
                StreamsErrorKind::DuplicateWindow,
                "duplicate_window",
                "120s",
                "1s",
            ),
            (
                |c| c.num_replicas = 3,
                StreamsErrorKind::Replicas,
                "num_replicas",
                "1",
                "3",
            ),
            (
                |c| c.sealed = true,
                StreamsErrorKind::Sealed,
                "sealed",
                "false",
                "true",
            ),
            (
                |c| c.no_ack = true,
                StreamsErrorKind::NoAck,
                "no_ack",
                "false",
                "true",
            ),
            (
                |c| c.deny_delete = false,
                StreamsErrorKind::DenyDelete,
                "deny_delete",
                "true",
                "false",
            ),
            (
                |c| c.deny_purge = false,
                StreamsErrorKind::DenyPurge,
                "deny_purge",
                "true",
                "false",
            ),
            (
                |c| c.allow_rollup = true,
                StreamsErrorKind::AllowRollup,
                "allow_rollup_hdrs",
                "false",
                "true",
            ),
            (
                |c| c.max_messages = 1000,
                StreamsErrorKind::Limit,
                "max_msgs",
                "unlimited",
                "1000",
            ),
            (
                |c| c.max_age = Duration::from_secs(86_400),
                StreamsErrorKind::Limit,
                "max_age",
                "unlimited",
                "86400s",
            ),
        ];
        for (spoil, kind, setting, expected, found) in rows {
            let mut config = ledger_events();
            spoil(&mut config);
            let error = check_stream(&ledger_events(), &config).unwrap_err();
            assert_eq!(error.kind(), kind, "{error}");
            assert!(kind.is_misconfiguration());
            assert_eq!(error.stream(), LEDGER_EVENTS_STREAM);
            assert_eq!(error.setting(), Some(setting));
            assert_eq!(error.expected(), Some(expected));
            assert_eq!(error.found(), Some(found));
        }
    }

    #[test]
    fn subjects_compare_as_a_set_and_extra_protections_are_accepted() {
        let expected = stream_configs(&StreamsConfig::default())[0].clone();
        let mut found = expected.clone();
        found.subjects.reverse();
        found.deny_purge = true;
        found.deny_delete = true;
        found.max_age = Duration::from_secs(86_400 * 30);
        assert_eq!(check_stream(&expected, &found), Ok(Vec::new()));
    }

    #[test]
    fn an_input_stream_made_before_policy_inputs_is_accepted_and_what_it_lacks_reported() {
        let expected = stream_configs(&StreamsConfig::default())[0].clone();
        let mut earlier = expected.clone();
        earlier.subjects.retain(|subject| subject != "grants.policy.*");
        assert_eq!(earlier.subjects.len(), 5);
        assert_eq!(check_stream(&expected, &earlier), Ok(vec!["grants.policy.*".to_owned()]));

        // Only a subject added later may be missing: one the first version
        // had is still refused, naming every subject expected.
        let mut spoiled = earlier.clone();
        spoiled.subjects.retain(|subject| subject != "grants.timers.*");
        let error = check_stream(&expected, &spoiled).unwrap_err();
        assert_eq!(error.kind(), StreamsErrorKind::Subjects);
        assert!(error.expected().unwrap().contains("grants.policy.*"), "{error}");
        // And a subject added later is not missing from any other stream.
        let events = ledger_events();
        let mut spoiled = events.clone();
        spoiled.subjects.pop();
        assert_eq!(check_stream(&events, &spoiled).unwrap_err().kind(), StreamsErrorKind::Subjects);
    }

    #[test]
    fn the_message_names_stream_setting_found_and_expected() {
        let mut found = ledger_events();
        found.deny_purge = false;
        let error = check_stream(&ledger_events(), &found).unwrap_err();
        assert_eq!(
            error.to_string(),
            "stream `LEDGER_EVENTS` is misconfigured: `deny_purge` is `false`, expected `true`"
        );
        let error = StreamsError::failure(
            StreamsErrorKind::Create,
            GRANT_INPUT_STREAM,
            "subjects overlap",
        );
        assert_eq!(
            error.to_string(),
            "cannot create stream `GRANT_INPUT`: subjects overlap"
        );
        assert_eq!(error.setting(), None);
        assert!(!error.kind().is_misconfiguration());
    }
}
