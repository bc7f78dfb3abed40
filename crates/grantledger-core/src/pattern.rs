//! Resource patterns: the glob an entitlement's `resource` is written in.

use grantledger_events::ResourceId;

/// A resource pattern from the catalog, such as `db/prod/*` or
/// `deploy/staging/**`.
///
/// A pattern is a list of segments separated by `/`:
///
/// - In a segment, `*` matches any run of characters other than `/`,
///   including none: `db/prod/*` matches `db/prod/orders` but not
///   `db/prod/orders/archive` nor `db/prod`; `orders-*` matches `orders-eu`.
/// - A segment that is exactly `**` matches any number of whole segments,
///   including none: `deploy/staging/**` matches `deploy/staging`,
///   `deploy/staging/api` and `deploy/staging/api/eu-west-1`.
/// - Every other character matches itself, byte for byte (case-sensitive).
///   There is no other glob syntax: no `?`, no `[...]`, no `{a,b}`.
///
/// Patterns have no empty segment (no leading, trailing or doubled `/`), and
/// `**` only ever stands as a whole segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePattern {
    text: String,
    segments: Vec<Segment>,
}

/// Why a resource pattern is malformed: the rule it breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern is empty.
    #[error("must not be empty")]
    Empty,
    /// Longer than a resource id may be.
    #[error("must be at most 256 bytes")]
    TooLong,
    /// Contains whitespace or a control character.
    #[error("must not contain whitespace or control characters")]
    Whitespace,
    /// A leading, trailing or doubled `/`.
    #[error("must not have an empty segment (a leading, trailing or doubled `/`)")]
    EmptySegment,
    /// `**` inside a segment, such as `a**` or `***`.
    #[error("`**` must stand alone as a whole segment")]
    DoubleStarInSegment,
}

impl ResourcePattern {
    /// Parses and checks a pattern.
    pub fn parse(text: &str) -> Result<ResourcePattern, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text.len() > ResourceId::BYTES_MAX {
            return Err(PatternError::TooLong);
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(PatternError::Whitespace);
        }
        let mut segments = Vec::new();
        for segment in text.split('/') {
            if segment.is_empty() {
                return Err(PatternError::EmptySegment);
            }
            if segment == "**" {
                segments.push(Segment::AnySegments);
            } else if segment.contains("**") {
                return Err(PatternError::DoubleStarInSegment);
            } else {
                segments.push(Segment::Glob(segment.to_string()));
            }
        }
        Ok(ResourcePattern {
            text: text.to_string(),
            segments,
        })
    }

    /// The pattern as written in the catalog.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when `resource` matches the pattern.
    pub fn matches(&self, resource: &str) -> bool {
        let parts: Vec<&str> = resource.split('/').collect();
        // matched[j]: the pattern segments seen so far match parts[..j].
        // Dynamic programming keeps several `**` linear in the segment count
        // instead of exponential, as naive backtracking would be.
        let mut matched = vec![false; parts.len() + 1];
        matched[0] = true;
        for segment in &self.segments {
            let mut next = vec![false; parts.len() + 1];
            match segment {
                Segment::AnySegments => {
                    let mut reachable = false;
                    for (j, slot) in next.iter_mut().enumerate() {
                        reachable |= matched[j];
                        *slot = reachable;
                    }
                }
                Segment::Glob(glob) => {
                    for j in 1..=parts.len() {
                        next[j] = matched[j - 1] && glob_matches(glob, parts[j - 1]);
                    }
                }
            }
            matched = next;
        }
        matched[parts.len()]
    }
}

impl std::fmt::Display for ResourcePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// True when `resource` names one concrete resource: no `*` and no empty
/// segment. A request for `db/prod/*` would let a revocation worker read a
/// wildcard into it, so requests must name exactly one resource.
pub fn is_concrete_resource(resource: &str) -> bool {
    !resource.contains('*') && resource.split('/').all(|segment| !segment.is_empty())
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// `**`: any number of whole segments.
    AnySegments,
    /// Literal text in which `*` matches any run of non-`/` characters.
    Glob(String),
}

/// Wildcard match of one segment, where only `*` is special. Greedy with a
/// single backtrack point, which is exact for `*`-only globs.
fn glob_matches(glob: &str, text: &str) -> bool {
    let glob = glob.as_bytes();
    let text = text.as_bytes();
    let (mut g, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if g < glob.len() && glob[g] == b'*' {
            star = Some((g, t));
            g += 1;
        } else if g < glob.len() && glob[g] == text[t] {
            g += 1;
            t += 1;
        } else if let Some((star_g, star_t)) = star {
            g = star_g + 1;
            t = star_t + 1;
            star = Some((star_g, star_t + 1));
        } else {
            return false;
        }
    }
    glob[g..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_star_stays_within_one_segment_and_double_star_crosses() {
        let rows: &[(&str, &str, bool)] = &[
            ("db/prod/*", "db/prod/orders", true),
            ("db/prod/*", "db/prod/orders/archive", false),
            ("db/prod/*", "db/prod", false),
            ("db/prod/*", "db/staging/orders", false),
            ("db/*/orders", "db/prod/orders", true),
            ("db/prod/orders-*", "db/prod/orders-eu", true),
            ("db/prod/orders-*", "db/prod/users", false),
            ("db/prod/*-eu", "db/prod/orders-eu", true),
            ("deploy/staging/**", "deploy/staging", true),
            ("deploy/staging/**", "deploy/staging/api", true),
            ("deploy/staging/**", "deploy/staging/api/eu-west-1", true),
            ("deploy/staging/**", "deploy/prod/api", false),
            ("a/**/z", "a/z", true),
            ("a/**/z", "a/b/c/z", true),
            ("a/**/z", "a/b/c/y", false),
            ("a/**/*/**/z", "a/b/z", true),
            ("git/acme/payments-api", "git/acme/payments-api", true),
            ("git/acme/payments-api", "git/acme/payments-api2", false),
            ("git/acme/payments-api", "Git/acme/payments-api", false),
        ];
        for &(pattern, resource, expected) in rows {
            let parsed = ResourcePattern::parse(pattern).unwrap();
            assert_eq!(
                parsed.matches(resource),
                expected,
                "`{pattern}` on `{resource}`"
            );
        }
    }

    #[test]
    fn malformed_patterns_name_their_rule() {
        let rows: &[(&str, PatternError)] = &[
            ("", PatternError::Empty),
            ("/db/prod", PatternError::EmptySegment),
            ("db/prod/", PatternError::EmptySegment),
            ("db//prod", PatternError::EmptySegment),
            ("db/prod**", PatternError::DoubleStarInSegment),
            ("db/***", PatternError::DoubleStarInSegment),
            ("db/ prod", PatternError::Whitespace),
        ];
        for &(pattern, expected) in rows {
            assert_eq!(
                ResourcePattern::parse(pattern),
                Err(expected),
                "`{pattern}`"
            );
        }
        assert_eq!(
            ResourcePattern::parse(&"a".repeat(300)),
            Err(PatternError::TooLong)
        );
    }

    #[test]
    fn concrete_resources_have_no_wildcard_and_no_empty_segment() {
        assert!(is_concrete_resource("db/prod/orders"));
        assert!(!is_concrete_resource("db/prod/*"));
        assert!(!is_concrete_resource("db//orders"));
        assert!(!is_concrete_resource("db/prod/"));
    }
}
