//! Table tests for policy authors, kept next to the catalog and policies.
//!
//! A policy directory holds `catalog.toml`, `policies.cedar`, optionally
//! `exceptions.toml`, and any number of `*.test.toml` files:
//!
//! ```toml
//! [defaults.request]                 # merged under every case's request
//! at = "2026-11-21T02:00:00Z"        # RFC 3339 or integer ms; becomes `at_ms`
//! justification = "routine work"
//!
//! [[case]]
//! name = "inside the window: allowed"
//! expect = "allow"                   # allow | needs_approval | deny | error
//! expect_approvers = 2               # needs_approval only
//! expect_group = "dba"               # needs_approval only
//! expect_policies = ["repo-admin"]   # optional: the exact sorted determining ids
//! expect_reasons = ["auto_approved"] # optional: the exact sorted reason codes
//! expect_ttl_granted_ms = 1800000    # optional
//! expect_exception = false           # optional
//! expect_error = "context_value_wrong_type"  # with expect = "error": the error code
//! unset = ["context.change_record"] # optional: remove what the defaults give
//! [case.request]                     # a PolicyRequest, deep-merged over the defaults
//! principal = { id = "alice", kind = "human", groups = ["payments"] }
//! action = "request"
//! entitlement = "repo-admin"
//! resource = "git/acme/payments-api"
//! actions = ["admin"]
//! [case.request.context]
//! in_maintenance_window = true
//! ```
//!
//! [`run_dir`] runs every case of every file (files in name order, cases in
//! file order) and reports each as passed or failed with a diff of what
//! differs.

use std::fmt;
use std::path::{Path, PathBuf};

use grantledger_events::{DecisionOutcome, Timestamp};
use serde::Deserialize;
use serde_json::Value;

use crate::engine::{Engine, PolicyDecision, PolicyRequest};
use crate::error::{LoadError, LoadErrorKind};

/// The most cases one directory may hold.
pub const CASES_MAX: usize = 10_000;

/// The result of a directory's table tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Every case, in order.
    pub cases: Vec<CaseResult>,
}

/// One case's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseResult {
    /// The test file.
    pub file: PathBuf,
    /// The case's name.
    pub name: String,
    /// Empty when it passed; otherwise one line per difference.
    pub differences: Vec<String>,
}

impl CaseResult {
    /// True when the decision was as expected.
    pub fn passed(&self) -> bool {
        self.differences.is_empty()
    }
}

impl Report {
    /// How many cases passed.
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|case| case.passed()).count()
    }

    /// The cases that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(|case| !case.passed())
    }

    /// True when every case passed (and there was at least one).
    pub fn all_passed(&self) -> bool {
        !self.cases.is_empty() && self.cases.iter().all(CaseResult::passed)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for case in &self.cases {
            let file = case.file.file_name().map_or_else(
                || case.file.display().to_string(),
                |name| name.to_string_lossy().into_owned(),
            );
            if case.passed() {
                writeln!(f, "ok    {file}: {}", case.name)?;
            } else {
                writeln!(f, "FAIL  {file}: {}", case.name)?;
                for difference in &case.differences {
                    writeln!(f, "        {difference}")?;
                }
            }
        }
        write!(
            f,
            "{} passed, {} failed",
            self.passed(),
            self.cases.len() - self.passed()
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    defaults: Option<Defaults>,
    #[serde(default, rename = "case")]
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    #[serde(default)]
    request: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    expect: String,
    #[serde(default)]
    expect_approvers: Option<u32>,
    #[serde(default)]
    expect_group: Option<String>,
    #[serde(default)]
    expect_policies: Option<Vec<String>>,
    #[serde(default)]
    expect_reasons: Option<Vec<String>>,
    #[serde(default)]
    expect_ttl_granted_ms: Option<i64>,
    #[serde(default)]
    expect_exception: Option<bool>,
    #[serde(default)]
    expect_error: Option<String>,
    #[serde(default)]
    unset: Vec<String>,
    #[serde(default)]
    request: toml::Table,
}

/// Runs every `*.test.toml` in `dir` against the engine loaded from `dir`.
/// A directory whose catalog, policies or test files do not load is an
/// error; a case whose decision differs is a failed case in the report.
pub fn run_dir(dir: &Path) -> Result<Report, LoadError> {
    let engine = Engine::load_dir(dir)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|error| {
            LoadError::new(
                LoadErrorKind::Io,
                format!("cannot list `{}`: {error}", dir.display()),
            )
        })?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with(".test.toml"))
        })
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|error| {
            LoadError::new(
                LoadErrorKind::Io,
                format!("cannot read `{}`: {error}", file.display()),
            )
        })?;
        cases.extend(run_text(&engine, &file, &text)?);
        if cases.len() > CASES_MAX {
            return Err(LoadError::new(
                LoadErrorKind::TooLarge,
                format!("more than `{CASES_MAX}` cases in `{}`", dir.display()),
            ));
        }
    }
    Ok(Report { cases })
}

/// Runs the cases of one test file's text against `engine`.
pub fn run_text(engine: &Engine, file: &Path, text: &str) -> Result<Vec<CaseResult>, LoadError> {
    let parsed: TestFile = toml::from_str(text).map_err(|error| {
        LoadError::new(
            LoadErrorKind::TestsInvalid,
            format!(
                "`{}`: {}",
                file.display(),
                error.message().trim_end_matches('.')
            ),
        )
    })?;
    let defaults = parsed
        .defaults
        .map(|defaults| defaults.request)
        .unwrap_or_default();
    let mut results = Vec::with_capacity(parsed.cases.len());
    for case in parsed.cases {
        let differences =
            run_case(engine, &defaults, &case).unwrap_or_else(|problem| vec![problem]);
        results.push(CaseResult {
            file: file.to_path_buf(),
            name: case.name,
            differences,
        });
    }
    Ok(results)
}

/// The differences between the expected and the actual decision, or a
/// problem with the case itself.
fn run_case(engine: &Engine, defaults: &toml::Table, case: &Case) -> Result<Vec<String>, String> {
    let mut request = defaults.clone();
    merge(&mut request, &case.request);
    for path in &case.unset {
        unset(&mut request, path)?;
    }
    let mut json =
        serde_json::to_value(&request).map_err(|error| format!("case request: {error}"))?;
    if let Some(map) = json.as_object_mut()
        && let Some(at) = map.remove("at")
    {
        let at_ms = match &at {
            Value::String(text) => Timestamp::parse(text)
                .map_err(|error| format!("case `at`: {error}"))?
                .as_millis(),
            Value::Number(number) => number
                .as_i64()
                .ok_or("case `at` must be whole milliseconds")?,
            other => {
                return Err(format!(
                    "case `at` must be RFC 3339 text or milliseconds, found `{other}`"
                ));
            }
        };
        map.insert("at_ms".into(), Value::from(at_ms));
    }
    let result = PolicyRequest::from_json_value(json).and_then(|request| engine.evaluate(&request));
    let mut differences = Vec::new();
    let decision = match (case.expect.as_str(), result) {
        ("error", Err(error)) => {
            if let Some(code) = &case.expect_error
                && code != error.kind().code()
            {
                differences.push(format!(
                    "error: expected `{code}`, got `{}` ({error})",
                    error.kind().code()
                ));
            }
            return Ok(differences);
        }
        ("error", Ok(decision)) => {
            differences.push(format!(
                "expected an error, got a decision: {}",
                describe(&decision)
            ));
            return Ok(differences);
        }
        (_, Err(error)) => {
            differences.push(format!(
                "expected `{}`, got error `{}`: {error}",
                case.expect,
                error.kind().code()
            ));
            return Ok(differences);
        }
        (_, Ok(decision)) => decision,
    };
    let (outcome, approvers, group) = match &decision.outcome {
        DecisionOutcome::Allow => ("allow", None, None),
        DecisionOutcome::NeedsApproval {
            approvers_required,
            group,
        } => (
            "needs_approval",
            Some(*approvers_required),
            Some(group.as_str()),
        ),
        DecisionOutcome::Deny => ("deny", None, None),
    };
    if !matches!(case.expect.as_str(), "allow" | "needs_approval" | "deny") {
        return Err(format!(
            "`expect = \"{}\"` is not one of `allow`, `needs_approval`, `deny`, `error`",
            case.expect
        ));
    }
    if outcome != case.expect {
        differences.push(format!(
            "outcome: expected `{}`, got `{outcome}` ({})",
            case.expect,
            describe(&decision)
        ));
    }
    if let Some(expected) = case.expect_approvers
        && Some(expected) != approvers
    {
        differences.push(format!(
            "approvers: expected `{expected}`, got `{approvers:?}`"
        ));
    }
    if let Some(expected) = &case.expect_group
        && Some(expected.as_str()) != group
    {
        differences.push(format!("group: expected `{expected}`, got `{group:?}`"));
    }
    if let Some(expected) = &case.expect_policies {
        list_difference(
            "determining policies",
            expected,
            &decision.determining_policies,
            &mut differences,
        );
    }
    if let Some(expected) = &case.expect_reasons {
        list_difference("reasons", expected, &decision.reasons, &mut differences);
    }
    if let Some(expected) = case.expect_ttl_granted_ms
        && expected != decision.ttl_granted_ms
    {
        differences.push(format!(
            "ttl_granted_ms: expected `{expected}`, got `{}`",
            decision.ttl_granted_ms
        ));
    }
    if let Some(expected) = case.expect_exception
        && expected != decision.exception
    {
        differences.push(format!(
            "exception: expected `{expected}`, got `{}`",
            decision.exception
        ));
    }
    Ok(differences)
}

fn list_difference(
    what: &str,
    expected: &[String],
    actual: &[String],
    differences: &mut Vec<String>,
) {
    let mut expected_sorted = expected.to_vec();
    expected_sorted.sort();
    if expected_sorted == actual {
        return;
    }
    let missing: Vec<&String> = expected_sorted
        .iter()
        .filter(|item| !actual.contains(item))
        .collect();
    let extra: Vec<&String> = actual
        .iter()
        .filter(|item| !expected_sorted.contains(item))
        .collect();
    differences.push(format!(
        "{what}: expected {expected_sorted:?}, got {actual:?} (missing {missing:?}, unexpected {extra:?})"
    ));
}

fn describe(decision: &PolicyDecision) -> String {
    format!(
        "reasons {:?}, policies {:?}; {}",
        decision.reasons,
        decision.determining_policies,
        decision.details.join("; ")
    )
}

/// Removes a dotted path (`context.change_record`) from a merged request,
/// so a case can take away what the defaults give.
fn unset(table: &mut toml::Table, path: &str) -> Result<(), String> {
    match path.split_once('.') {
        None => table
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| format!("`unset` names `{path}`, which the request does not have")),
        Some((head, rest)) => match table.get_mut(head) {
            Some(toml::Value::Table(inner)) => unset(inner, rest),
            _ => Err(format!(
                "`unset` names `{path}`, which the request does not have"
            )),
        },
    }
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else
/// replaces.
fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(over_table)) => {
                merge(base_table, over_table);
            }
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}
