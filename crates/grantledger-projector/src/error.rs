//! The one error type of the projector crate, with a closed set of kinds.

use std::fmt;

/// What went wrong opening, applying to, querying or rebuilding a
/// projection. The message names the offending value and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectorError {
    kind: ProjectorErrorKind,
    detail: String,
}

/// The closed set of failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProjectorErrorKind {
    /// RocksDB failed to open, read or write.
    Storage,
    /// A stored value does not decode: the store was damaged or written by
    /// another version.
    Corrupt,
    /// The directory holds another projection's store.
    WrongProjection,
    /// No projection has this name.
    UnknownProjection,
    /// A rebuild was asked into a directory that already holds files.
    StoreNotEmpty,
    /// The event at the cursor has another hash than the one applied: the
    /// projection follows another log than the one delivering.
    Diverged,
    /// A committed event refers to something the projection never saw (a
    /// grant never issued, a request never recorded): the projection was
    /// fed a log that does not start at genesis, or a log the ledger would
    /// have refused.
    Inconsistent,
    /// A record of the log could not be read or decoded during a rebuild.
    Log,
}

impl ProjectorErrorKind {
    /// A stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            ProjectorErrorKind::Storage => "storage",
            ProjectorErrorKind::Corrupt => "corrupt",
            ProjectorErrorKind::WrongProjection => "wrong_projection",
            ProjectorErrorKind::UnknownProjection => "unknown_projection",
            ProjectorErrorKind::StoreNotEmpty => "store_not_empty",
            ProjectorErrorKind::Diverged => "diverged",
            ProjectorErrorKind::Inconsistent => "inconsistent",
            ProjectorErrorKind::Log => "log",
        }
    }
}

impl ProjectorError {
    pub(crate) fn new(kind: ProjectorErrorKind, detail: impl Into<String>) -> ProjectorError {
        ProjectorError {
            kind,
            detail: detail.into(),
        }
    }

    /// Which failure.
    pub fn kind(&self) -> ProjectorErrorKind {
        self.kind
    }

    /// The offending values.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for ProjectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (`{}`)", self.detail, self.kind.code())
    }
}

impl std::error::Error for ProjectorError {}
