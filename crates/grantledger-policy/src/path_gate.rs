//! Path gates: which policies a catalog entitlement's requests can never
//! satisfy because of the resource path, found once when an engine loads.
//!
//! A policy whose first `when` condition starts with `resource.path like
//! "<pattern>"` is not satisfied, and cannot fail, for a request whose
//! resource path does not match the pattern: Cedar evaluates the scope and
//! then that conjunct first, and `&&` stops at `false`. A request the
//! engine slices is for a resource that matches its entitlement's catalog
//! pattern (the engine evaluates the others against the whole set), so a
//! policy whose pattern shares no string with the entitlement's pattern can
//! be left out of that entitlement's slice without changing any decision,
//! its determining policies or its errors.
//!
//! Both patterns are compared as globs where `*` matches any run of
//! characters. That is exactly Cedar's `like`; for the catalog it is wider
//! than the real pattern (where `*` stops at `/` and `**` is whole
//! segments), so the comparison can only keep a policy it might have left
//! out, never the reverse.

use grantledger_core::ResourcePattern;
use serde_json::Value;

/// A glob: `None` is a wildcard matching any run of characters (none
/// included), `Some(c)` the character `c`.
pub(crate) type Glob = Vec<Option<char>>;

/// The `like` pattern `policy` gates on, when its first condition is a
/// `when` whose leftmost conjunct is `resource.path like "..."`; `None`
/// for any other shape (such a policy stays in every slice it scopes to).
pub(crate) fn gate_of(policy: &cedar_policy::Policy) -> Option<Glob> {
    let est = policy.to_json().ok()?;
    let first = est.get("conditions")?.as_array()?.first()?;
    if first.get("kind")?.as_str()? != "when" {
        return None;
    }
    let mut body = first.get("body")?;
    while let Some(left) = body.get("&&").and_then(|and| and.get("left")) {
        body = left;
    }
    let like = body.get("like")?;
    let attribute = like.get("left")?.get(".")?;
    if attribute.get("left")?.get("Var")?.as_str()? != "resource"
        || attribute.get("attr")?.as_str()? != "path"
    {
        return None;
    }
    let mut glob = Glob::new();
    for element in like.get("pattern")?.as_array()? {
        match element {
            Value::String(wildcard) if wildcard == "Wildcard" => glob.push(None),
            Value::Object(literal) => {
                glob.extend(literal.get("Literal")?.as_str()?.chars().map(Some));
            }
            _ => return None,
        }
    }
    Some(glob)
}

/// A glob matching at least every resource `pattern` matches: each `*` is
/// a wildcard, and a `**` segment becomes a wildcard that also takes one of
/// the slashes beside it (so `a/**` matches `a`, and `a/**/b` matches
/// `a/b`).
pub(crate) fn catalog_glob(pattern: &ResourcePattern) -> Glob {
    let segments: Vec<&str> = pattern.as_str().split('/').collect();
    let mut glob = Glob::new();
    for (index, segment) in segments.iter().enumerate() {
        let double = *segment == "**";
        // The slash before this segment, unless a `**` takes it: this one,
        // or the first segment's when that is `**`.
        if index > 0 && !double && !(index == 1 && segments[0] == "**") {
            glob.push(Some('/'));
        }
        if double {
            glob.push(None);
        } else {
            glob.extend(segment.chars().map(|c| (c != '*').then_some(c)));
        }
    }
    glob
}

/// Whether some string matches both globs: a search over pairs of
/// positions, both reading the same characters.
pub(crate) fn overlap(a: &[Option<char>], b: &[Option<char>]) -> bool {
    let (n, m) = (a.len(), b.len());
    let mut seen = vec![false; (n + 1) * (m + 1)];
    let mut stack = vec![(0, 0)];
    while let Some((i, j)) = stack.pop() {
        if std::mem::replace(&mut seen[i * (m + 1) + j], true) {
            continue;
        }
        if i == n && j == m {
            return true;
        }
        // A wildcard may match nothing more.
        if i < n && a[i].is_none() {
            stack.push((i + 1, j));
        }
        if j < m && b[j].is_none() {
            stack.push((i, j + 1));
        }
        // Or both read one more character (two wildcards reading one stay
        // where they are: nothing new).
        if i < n && j < m {
            match (a[i], b[j]) {
                (Some(x), Some(y)) if x == y => stack.push((i + 1, j + 1)),
                (None, Some(_)) => stack.push((i, j + 1)),
                (Some(_), None) => stack.push((i + 1, j)),
                _ => {}
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(text: &str) -> Glob {
        text.chars().map(|c| (c != '*').then_some(c)).collect()
    }

    fn catalog(text: &str) -> Glob {
        catalog_glob(&ResourcePattern::parse(text).unwrap())
    }

    /// Cedar's `like`, for checking the glob against Cedar itself.
    fn cedar_like(pattern: &str, path: &str) -> bool {
        let policy: cedar_policy::Policy = format!(
            "permit (principal, action, resource) when {{ \"{path}\" like \"{pattern}\" }};"
        )
        .parse()
        .unwrap();
        let mut set = cedar_policy::PolicySet::new();
        set.add(policy).unwrap();
        let uid = |t: &str| format!("{t}::\"x\"").parse::<cedar_policy::EntityUid>().unwrap();
        let request = cedar_policy::Request::new(
            uid("U"),
            uid("A"),
            uid("R"),
            cedar_policy::Context::empty(),
            None,
        )
        .unwrap();
        cedar_policy::Authorizer::new()
            .is_authorized(&request, &set, &cedar_policy::Entities::empty())
            .decision()
            == cedar_policy::Decision::Allow
    }

    fn glob_matches(glob: &[Option<char>], path: &str) -> bool {
        let literal: Glob = path.chars().map(Some).collect();
        overlap(glob, &literal)
    }

    #[test]
    fn the_gate_is_the_leftmost_conjunct_of_a_first_when_on_resource_path() {
        let gate = |text: &str| gate_of(&text.parse::<cedar_policy::Policy>().unwrap());
        assert_eq!(
            gate("permit (principal, action, resource) when { resource.path like \"svc/7/*\" && context has change_record };"),
            Some(glob("svc/7/*"))
        );
        assert_eq!(
            gate("permit (principal, action, resource) when { resource.path like \"a*b\" && context.x && context.y };"),
            Some(glob("a*b"))
        );
        assert_eq!(
            gate("permit (principal, action, resource) when { resource.path like \"a\\*b\" };"),
            Some(vec![Some('a'), Some('*'), Some('b')]),
            "an escaped star is a literal"
        );
        // Not first, not `when`, not the path, or a disjunction: no gate.
        for text in [
            "permit (principal, action, resource) when { context.x && resource.path like \"a/*\" };",
            "permit (principal, action, resource) unless { resource.path like \"a/*\" };",
            "permit (principal, action, resource) when { principal.path like \"a/*\" };",
            "permit (principal, action, resource) when { resource.path like \"a/*\" || context.x };",
            "permit (principal, action, resource) when { !(resource.path like \"a/*\") };",
            "permit (principal, action, resource);",
        ] {
            assert_eq!(gate(text), None, "{text}");
        }
    }

    #[test]
    fn overlap_agrees_with_cedar_like_on_concrete_paths() {
        let patterns = ["svc/7/*", "*", "a*b", "*/x", "svc/*/db-*", "", "ab", "a**b"];
        let paths = ["svc/7/db-1", "svc/7/", "svc/17/db-1", "ab", "axxb", "a/x", "", "svc/x/db-"];
        for pattern in patterns {
            for path in paths {
                assert_eq!(
                    glob_matches(&glob(pattern), path),
                    cedar_like(pattern, path),
                    "`{path}` like `{pattern}`"
                );
            }
        }
    }

    #[test]
    fn overlap_finds_shared_strings_and_only_those() {
        let pairs = [
            ("svc/7/*", "svc/7/*", true),
            ("svc/7/*", "svc/12/*", false),
            ("svc/1/*", "svc/12/*", false),
            ("svc/*", "svc/12/*", true),
            ("*/orders", "db/*", true),
            ("*.eu", "db/*", true),
            ("x*", "y*", false),
            ("*x", "*y", false),
            ("a*b*c", "*bbb*", true),
            ("", "*", true),
            ("", "a", false),
        ];
        for (a, b, shared) in pairs {
            assert_eq!(overlap(&glob(a), &glob(b)), shared, "`{a}` and `{b}`");
            assert_eq!(overlap(&glob(b), &glob(a)), shared, "`{b}` and `{a}`");
        }
    }

    #[test]
    fn a_catalog_glob_matches_every_resource_its_pattern_matches() {
        let cases = [
            ("db/prod/*", &["db/prod/orders", "db/prod/"][..]),
            ("deploy/staging/**", &["deploy/staging", "deploy/staging/api", "deploy/staging/a/b"][..]),
            ("a/**/b", &["a/b", "a/x/b", "a/x/y/b"][..]),
            ("**/logs", &["logs", "x/logs", "x/y/logs"][..]),
            ("**", &["anything", "a/b/c"][..]),
            ("orders-*", &["orders-eu", "orders-"][..]),
        ];
        for (pattern, resources) in cases {
            let parsed = ResourcePattern::parse(pattern).unwrap();
            for resource in resources {
                if parsed.matches(resource) {
                    assert!(glob_matches(&catalog(pattern), resource), "`{pattern}` and `{resource}`");
                }
            }
            // And it says so for every resource the real pattern takes.
            assert!(resources.iter().any(|resource| parsed.matches(resource)), "{pattern}");
        }
        assert!(!overlap(&catalog("svc/12/*"), &glob("svc/7/*")));
        assert!(overlap(&catalog("svc/**"), &glob("svc/7/*")));
    }
}
