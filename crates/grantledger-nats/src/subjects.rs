//! The subject names of `DESIGN.md` ("NATS"), built in one place.
//!
//! Every variable part (a tenant, an event kind, a resource kind) becomes one
//! subject token, so it is checked: a tenant id may hold `.`, `*` or `>` (the
//! id types only refuse whitespace), and such a value spliced into a subject
//! would address other subjects, or a wildcard.

use std::fmt;

/// The subjects of the `GRANT_INPUT` stream: what the ledger consumes.
pub const GRANT_INPUT_SUBJECTS: [&str; 6] = [
    "grants.requests.*",
    "grants.approvals.*",
    "grants.signals.*",
    "grants.revocations.*",
    "grants.timers.*",
    "grants.policy.*",
];

/// The subjects of [`GRANT_INPUT_SUBJECTS`] added after streams were first
/// deployed: a `GRANT_INPUT` stream made by an earlier version lacks them.
/// `ensure_streams` accepts such a stream and reports what it lacks (the
/// ledger may not update a stream; an operator adds them), and the ledger
/// runs without the inputs on them until then.
pub const GRANT_INPUT_SUBJECTS_ADDED: [&str; 1] = ["grants.policy.*"];

/// The subjects of the `LEDGER_EVENTS` stream: what the ledger committed.
pub const LEDGER_EVENTS_SUBJECTS: [&str; 2] = ["ledger.events.>", CHECKPOINTS_SUBJECT];

/// The subjects of the `GRANT_EXPIRY` stream: what revocation workers act on.
pub const GRANT_EXPIRY_SUBJECTS: [&str; 1] = ["grants.expiry.>"];

/// Where the ledger publishes its signed checkpoints.
pub const CHECKPOINTS_SUBJECT: &str = "ledger.checkpoints";

/// The longest tenant, event kind or resource kind a subject token may be,
/// in bytes; the same bound as the event crate's ids.
pub const SUBJECT_TOKEN_BYTES_MAX: usize = 256;

/// `grants.requests.<tenant>`: request submissions (`Nats-Msg-Id` = request id).
pub fn requests_subject(tenant: &str) -> Result<String, SubjectError> {
    input_subject(InputKind::Request, tenant)
}

/// `grants.approvals.<tenant>`: approvals and denials from approvers, via the API.
pub fn approvals_subject(tenant: &str) -> Result<String, SubjectError> {
    input_subject(InputKind::Approval, tenant)
}

/// `grants.signals.<tenant>`: task-complete and risk signals from producers.
pub fn signals_subject(tenant: &str) -> Result<String, SubjectError> {
    input_subject(InputKind::Signal, tenant)
}

/// `grants.revocations.<tenant>`: revocation workers' reports.
pub fn revocations_subject(tenant: &str) -> Result<String, SubjectError> {
    input_subject(InputKind::Revocation, tenant)
}

/// `grants.timers.<tenant>`: the expiry projector's "this time has come".
pub fn timers_subject(tenant: &str) -> Result<String, SubjectError> {
    input_subject(InputKind::Timer, tenant)
}

/// `grants.policy.<tenant>`: a catalog or a policy set to put in force,
/// from an admin or a policy author (policy administration of a running
/// ledger).
pub fn policy_subject(tenant: &str) -> Result<String, SubjectError> {
    input_subject(InputKind::Policy, tenant)
}

/// `grants.rejections.<tenant>`: inputs the ledger refused, with a named
/// reason. Plain NATS, in no stream.
pub fn rejections_subject(tenant: &str) -> Result<String, SubjectError> {
    check_token(TokenRole::Tenant, tenant)?;
    Ok(format!("grants.rejections.{tenant}"))
}

/// `ledger.events.<tenant>.<kind_name>`: one committed event (`Nats-Msg-Id` =
/// sequence number); `kind_name` is the event kind's snake_case name.
pub fn ledger_events_subject(tenant: &str, kind_name: &str) -> Result<String, SubjectError> {
    check_token(TokenRole::Tenant, tenant)?;
    check_token(TokenRole::EventKind, kind_name)?;
    Ok(format!("ledger.events.{tenant}.{kind_name}"))
}

/// `ledger.events.<tenant>.>`: a consumer filter for one tenant's events.
pub fn ledger_events_filter(tenant: &str) -> Result<String, SubjectError> {
    check_token(TokenRole::Tenant, tenant)?;
    Ok(format!("ledger.events.{tenant}.>"))
}

/// `grantledger.backfill.<tenant>`: projectors ask the ledger for committed
/// events from a sequence number on (NATS request/reply, in no stream). Not
/// under `ledger.>`, which only the ledger publishes to.
pub fn backfill_subject(tenant: &str) -> Result<String, SubjectError> {
    check_token(TokenRole::Tenant, tenant)?;
    Ok(format!("grantledger.backfill.{tenant}"))
}

/// `grants.query.<tenant>.<query>`: a question to a running projector (NATS
/// request/reply, in no stream): `check`, `grants`, `holders` and `pending`
/// go to current-grants, `why`, `who`, `could`, `evidence` and `findings`
/// to audit-evidence, `debt` to expiry-timers. `query` is one of the
/// projector's fixed names, never user input.
pub fn query_subject(tenant: &str, query: &str) -> Result<String, SubjectError> {
    check_token(TokenRole::Tenant, tenant)?;
    Ok(format!("grants.query.{tenant}.{query}"))
}

/// `grants.query.<tenant>.status.<projection>`: a projector's cursor, digest
/// and counters.
pub fn status_subject(tenant: &str, projection: &str) -> Result<String, SubjectError> {
    check_token(TokenRole::Tenant, tenant)?;
    Ok(format!("grants.query.{tenant}.status.{projection}"))
}

/// `grants.expiry.<tenant>.<resource_kind>`: remove this grant at the target.
pub fn expiry_subject(tenant: &str, resource_kind: &str) -> Result<String, SubjectError> {
    check_token(TokenRole::Tenant, tenant)?;
    check_token(TokenRole::ResourceKind, resource_kind)?;
    Ok(format!("grants.expiry.{tenant}.{resource_kind}"))
}

/// `grants.expiry.*.<resource_kind>`: a consumer filter for the revocation
/// worker of one kind of target system, across tenants.
pub fn expiry_filter(resource_kind: &str) -> Result<String, SubjectError> {
    check_token(TokenRole::ResourceKind, resource_kind)?;
    Ok(format!("grants.expiry.*.{resource_kind}"))
}

/// What a message on a `GRANT_INPUT` subject is, by its subject's second token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputKind {
    /// `grants.requests.<tenant>`
    Request,
    /// `grants.approvals.<tenant>`
    Approval,
    /// `grants.signals.<tenant>`
    Signal,
    /// `grants.revocations.<tenant>`
    Revocation,
    /// `grants.timers.<tenant>`
    Timer,
    /// `grants.policy.<tenant>`
    Policy,
}

impl InputKind {
    /// Every input kind, in the order of [`GRANT_INPUT_SUBJECTS`].
    pub const ALL: [InputKind; 6] = [
        InputKind::Request,
        InputKind::Approval,
        InputKind::Signal,
        InputKind::Revocation,
        InputKind::Timer,
        InputKind::Policy,
    ];

    /// The subject token after `grants.`.
    pub fn token(self) -> &'static str {
        match self {
            InputKind::Request => "requests",
            InputKind::Approval => "approvals",
            InputKind::Signal => "signals",
            InputKind::Revocation => "revocations",
            InputKind::Timer => "timers",
            InputKind::Policy => "policy",
        }
    }
}

/// A `GRANT_INPUT` subject taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSubject<'a> {
    /// Which input.
    pub kind: InputKind,
    /// The tenant it is for, a valid subject token.
    pub tenant: &'a str,
}

/// Takes apart `grants.<kind>.<tenant>`; `None` for any other subject.
pub fn parse_input_subject(subject: &str) -> Option<InputSubject<'_>> {
    let rest = subject.strip_prefix("grants.")?;
    let (kind_token, tenant) = rest.split_once('.')?;
    let kind = InputKind::ALL
        .into_iter()
        .find(|kind| kind.token() == kind_token)?;
    check_token(TokenRole::Tenant, tenant).ok()?;
    Some(InputSubject { kind, tenant })
}

/// A value that cannot be one subject token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectError {
    kind: SubjectErrorKind,
    role: TokenRole,
    token: String,
}

/// Why a value cannot be a subject token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectErrorKind {
    /// The value is empty.
    Empty,
    /// The value is longer than [`SUBJECT_TOKEN_BYTES_MAX`].
    TooLong,
    /// The value holds `.`, `*`, `>`, whitespace or a control character.
    ForbiddenCharacter(char),
}

/// What a subject token stands for, to name it in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenRole {
    /// A tenant id.
    Tenant,
    /// An event kind's name.
    EventKind,
    /// A resource kind.
    ResourceKind,
}

impl SubjectError {
    /// Why the value was refused.
    pub fn kind(&self) -> SubjectErrorKind {
        self.kind
    }

    /// What the value stood for.
    pub fn role(&self) -> TokenRole {
        self.role
    }

    /// The refused value.
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl fmt::Display for SubjectError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.role {
            TokenRole::Tenant => "tenant",
            TokenRole::EventKind => "event kind",
            TokenRole::ResourceKind => "resource kind",
        };
        // Escaped, so that a control character in the value shows in the message.
        let token = self.token.escape_debug();
        match self.kind {
            SubjectErrorKind::Empty => write!(
                formatter,
                "{role} is empty, so it cannot be a subject token"
            ),
            SubjectErrorKind::TooLong => write!(
                formatter,
                "{role} `{token}` is longer than {SUBJECT_TOKEN_BYTES_MAX} bytes, so it cannot be a subject token"
            ),
            SubjectErrorKind::ForbiddenCharacter(character) => write!(
                formatter,
                "{role} `{token}` holds `{}`, so it cannot be a subject token",
                character.escape_debug()
            ),
        }
    }
}

impl std::error::Error for SubjectError {}

fn input_subject(kind: InputKind, tenant: &str) -> Result<String, SubjectError> {
    check_token(TokenRole::Tenant, tenant)?;
    Ok(format!("grants.{}.{tenant}", kind.token()))
}

fn check_token(role: TokenRole, token: &str) -> Result<(), SubjectError> {
    let refuse = |kind| {
        Err(SubjectError {
            kind,
            role,
            token: token.to_owned(),
        })
    };
    if token.is_empty() {
        return refuse(SubjectErrorKind::Empty);
    }
    if token.len() > SUBJECT_TOKEN_BYTES_MAX {
        return refuse(SubjectErrorKind::TooLong);
    }
    let forbidden = |character: char| {
        matches!(character, '.' | '*' | '>') || character.is_whitespace() || character.is_control()
    };
    if let Some(character) = token.chars().find(|character| forbidden(*character)) {
        return refuse(SubjectErrorKind::ForbiddenCharacter(character));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_those_of_the_design() {
        assert_eq!(requests_subject("acme").unwrap(), "grants.requests.acme");
        assert_eq!(approvals_subject("acme").unwrap(), "grants.approvals.acme");
        assert_eq!(signals_subject("acme").unwrap(), "grants.signals.acme");
        assert_eq!(
            revocations_subject("acme").unwrap(),
            "grants.revocations.acme"
        );
        assert_eq!(timers_subject("acme").unwrap(), "grants.timers.acme");
        assert_eq!(policy_subject("acme").unwrap(), "grants.policy.acme");
        assert_eq!(
            rejections_subject("acme").unwrap(),
            "grants.rejections.acme"
        );
        assert_eq!(
            ledger_events_subject("acme", "grant_issued").unwrap(),
            "ledger.events.acme.grant_issued"
        );
        assert_eq!(
            ledger_events_filter("acme").unwrap(),
            "ledger.events.acme.>"
        );
        assert_eq!(
            expiry_subject("acme", "postgres").unwrap(),
            "grants.expiry.acme.postgres"
        );
        assert_eq!(
            expiry_filter("postgres").unwrap(),
            "grants.expiry.*.postgres"
        );
    }

    #[test]
    fn every_input_subject_is_in_the_input_stream_and_parses_back() {
        for kind in InputKind::ALL {
            let subject = input_subject(kind, "acme").unwrap();
            let pattern = format!("grants.{}.*", kind.token());
            assert!(
                GRANT_INPUT_SUBJECTS.contains(&pattern.as_str()),
                "{pattern}"
            );
            assert_eq!(
                parse_input_subject(&subject),
                Some(InputSubject {
                    kind,
                    tenant: "acme"
                })
            );
        }
    }

    #[test]
    fn parse_input_subject_refuses_other_subjects() {
        for subject in [
            "grants.requests",
            "grants.requests.",
            "grants.requests.acme.extra",
            "grants.policy.acme.extra",
            "grants.policies.acme",
            "grants.expiry.acme",
            "grants.rejections.acme",
            "ledger.events.acme.grant_issued",
            "requests.acme",
        ] {
            assert_eq!(parse_input_subject(subject), None, "{subject}");
        }
    }

    #[test]
    fn a_value_that_is_not_one_token_is_refused_with_its_reason() {
        let long = "t".repeat(SUBJECT_TOKEN_BYTES_MAX + 1);
        let rows: [(&str, SubjectErrorKind); 7] = [
            ("", SubjectErrorKind::Empty),
            (&long, SubjectErrorKind::TooLong),
            ("acme.eu", SubjectErrorKind::ForbiddenCharacter('.')),
            ("*", SubjectErrorKind::ForbiddenCharacter('*')),
            (">", SubjectErrorKind::ForbiddenCharacter('>')),
            ("ac me", SubjectErrorKind::ForbiddenCharacter(' ')),
            ("acme\n", SubjectErrorKind::ForbiddenCharacter('\n')),
        ];
        for (tenant, expected) in rows {
            let error = requests_subject(tenant).unwrap_err();
            assert_eq!(error.kind(), expected, "{tenant:?}");
            assert_eq!(error.role(), TokenRole::Tenant);
            assert_eq!(error.token(), tenant);
        }
        let error = expiry_subject("acme", "db.prod").unwrap_err();
        assert_eq!(error.role(), TokenRole::ResourceKind);
        assert_eq!(
            error.to_string(),
            "resource kind `db.prod` holds `.`, so it cannot be a subject token"
        );
        let error = ledger_events_subject("acme", "grant>").unwrap_err();
        assert_eq!(error.role(), TokenRole::EventKind);
        assert_eq!(
            requests_subject("a\tb").unwrap_err().to_string(),
            "tenant `a\\tb` holds `\\t`, so it cannot be a subject token"
        );
        assert!(requests_subject(&"t".repeat(SUBJECT_TOKEN_BYTES_MAX)).is_ok());
        for tenant in ["acme.eu", "*", ">", ""] {
            assert!(policy_subject(tenant).is_err(), "{tenant:?}");
        }
    }

    #[test]
    fn subjects_added_later_are_input_subjects() {
        for subject in GRANT_INPUT_SUBJECTS_ADDED {
            assert!(GRANT_INPUT_SUBJECTS.contains(&subject), "{subject}");
        }
    }
}
