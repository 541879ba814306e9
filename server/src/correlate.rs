//! DESIGN.md's correlation rules over text: which feature keys and which pull-request
//! numbers a commit message, branch name or pull-request title names.

use std::collections::BTreeSet;

/// The Jira project keys whose issue keys count as features. Keys of other projects
/// (and look-alikes such as `UTF-8`, `SHA-256` or `ISO-8601`) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeatureProjects {
    projects: BTreeSet<String>,
}

impl FeatureProjects {
    pub fn new<I, S>(projects: I) -> FeatureProjects
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        FeatureProjects { projects: projects.into_iter().map(Into::into).collect() }
    }

    pub fn is_empty(&self) -> bool {
        self.projects.is_empty()
    }

    /// Every feature key in `text`, in order of first appearance, each once.
    ///
    /// A key is `[A-Z][A-Z0-9_]+-[0-9]+`, not preceded by a letter or digit and not
    /// followed by a digit, whose project part is one of ours: `fix_PROJ-12_retry` and
    /// `user/PROJ-12` hold PROJ-12, `XPROJ-12` does not.
    pub fn keys_in(&self, text: &str) -> Vec<String> {
        let bytes = text.as_bytes();
        let mut keys: Vec<String> = Vec::new();
        for start in 0..bytes.len() {
            if !bytes[start].is_ascii_uppercase() || (start > 0 && bytes[start - 1].is_ascii_alphanumeric()) {
                continue;
            }
            let Some((project, end)) = key_at(bytes, start) else { continue };
            if self.projects.contains(project) {
                let key = &text[start..end];
                if !keys.iter().any(|k| k == key) {
                    keys.push(key.to_string());
                }
            }
        }
        keys
    }
}

/// The key starting at `start`, if one does: its project part and the end of the key.
fn key_at(bytes: &[u8], start: usize) -> Option<(&str, usize)> {
    let mut dash = start + 1;
    while dash < bytes.len()
        && (bytes[dash].is_ascii_uppercase() || bytes[dash].is_ascii_digit() || bytes[dash] == b'_')
    {
        dash += 1;
    }
    if dash - start < 2 || bytes.get(dash) != Some(&b'-') {
        return None;
    }
    let mut end = dash + 1;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    if end == dash + 1 {
        return None;
    }
    // The project part is ASCII, so slicing at these byte offsets is on char boundaries.
    let project = std::str::from_utf8(&bytes[start..dash]).ok()?;
    Some((project, end))
}

/// The pull (or merge) request a commit message says it came from, by the forges'
/// own formats:
/// - GitHub merge commits: `Merge pull request #N from owner/branch`;
/// - squash merges: a subject ending in `(#N)`;
/// - `Closes #N from owner/branch`;
/// - GitLab merge commits: `See merge request group/project!N` in the body.
pub fn pull_request_in(message: &str) -> Option<i64> {
    let subject = message.lines().next().unwrap_or_default().trim();
    if let Some(rest) = subject.strip_prefix("Merge pull request #") {
        return leading_number(rest).filter(|(_, tail)| tail.starts_with(" from ")).map(|(n, _)| n);
    }
    if let Some((_, inner)) = subject.strip_suffix(')').and_then(|s| s.rsplit_once("(#"))
        && let Some((number, "")) = leading_number(inner)
    {
        return Some(number);
    }
    for line in message.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Closes #")
            && let Some((number, tail)) = leading_number(rest)
            && tail.starts_with(" from ")
        {
            return Some(number);
        }
        if let Some(reference) = line.strip_prefix("See merge request ")
            && let Some((project, number)) = reference.rsplit_once('!')
            && !project.is_empty()
            && !project.contains(char::is_whitespace)
            && let Some((number, "")) = leading_number(number.trim_end_matches('.'))
        {
            return Some(number);
        }
    }
    None
}

/// The pull request named by one of a repository's own `patterns`, each text around a
/// `{number}` placeholder (`Merged PR {number}:` for Azure Repos, `PR-{number} ` ...),
/// matched anywhere in the message; the first pattern that matches wins.
pub fn pull_request_by_patterns(message: &str, patterns: &[String]) -> Option<i64> {
    patterns.iter().find_map(|pattern| {
        let (before, after) = pattern.split_once(PLACEHOLDER)?;
        if before.is_empty() {
            return None;
        }
        let mut rest = message;
        while let Some(at) = rest.find(before) {
            rest = &rest[at + before.len()..];
            if let Some((number, tail)) = leading_number(rest)
                && tail.starts_with(after)
            {
                return Some(number);
            }
        }
        None
    })
}

/// The placeholder a pull-request pattern marks the number with.
pub const PLACEHOLDER: &str = "{number}";

/// Why a pull-request pattern cannot be used, if it cannot.
pub fn pattern_problem(pattern: &str) -> Option<&'static str> {
    match pattern.split_once(PLACEHOLDER) {
        None => Some("has no `{number}` placeholder"),
        Some((_, after)) if after.contains(PLACEHOLDER) => Some("has more than one `{number}`"),
        Some(("", _)) => Some("needs text before `{number}` (a bare number would match every number)"),
        Some(_) => None,
    }
}

/// A positive decimal number at the start of `text`, and what follows it.
fn leading_number(text: &str) -> Option<(i64, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 12 {
        return None;
    }
    let number: i64 = text[..digits].parse().ok()?;
    (number > 0).then_some((number, &text[digits..]))
}

#[cfg(test)]
mod pattern_tests {
    use super::*;

    #[test]
    fn a_repository_s_own_patterns_name_pull_requests() {
        let patterns = vec!["Merged PR {number}:".to_string(), "(PR-{number})".to_string()];
        assert_eq!(pull_request_by_patterns("Merged PR 4312: Add the basket", &patterns), Some(4312));
        assert_eq!(pull_request_by_patterns("Fix totals (PR-77)\n\nSHOP-3", &patterns), Some(77));
        assert_eq!(pull_request_by_patterns("Merged PR 12 without colon", &patterns), None);
        assert_eq!(pull_request_by_patterns("Merged PR x: Merged PR 9: twice", &patterns), Some(9));
        assert_eq!(pull_request_by_patterns("nothing here", &patterns), None);
        assert_eq!(pull_request_by_patterns("Merged PR 1:", &[]), None);
    }

    #[test]
    fn unusable_patterns_are_named() {
        assert_eq!(pattern_problem("Merged PR {number}:"), None);
        assert!(pattern_problem("Merged PR").unwrap().contains("no `{number}`"));
        assert!(pattern_problem("{number}:").unwrap().contains("text before"));
        assert!(pattern_problem("PR {number} and {number}").unwrap().contains("more than one"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn projects() -> FeatureProjects {
        FeatureProjects::new(["PROJ", "SHOP", "PAY_2"])
    }

    #[test]
    fn keys_follow_the_design_rules() {
        let p = projects();
        assert_eq!(p.keys_in("PROJ-12: add cart"), ["PROJ-12"]);
        assert_eq!(p.keys_in("fix_PROJ-12_retry"), ["PROJ-12"]);
        assert_eq!(p.keys_in("user/PROJ-12"), ["PROJ-12"]);
        assert_eq!(p.keys_in("feature/SHOP-7-checkout and PAY_2-99"), ["SHOP-7", "PAY_2-99"]);
        assert_eq!(p.keys_in("SHOP-1, SHOP-2 and SHOP-1 again"), ["SHOP-1", "SHOP-2"]);
        assert_eq!(p.keys_in("body line\n\nRefs: PROJ-5\n"), ["PROJ-5"]);
        assert!(p.keys_in("XPROJ-12").is_empty(), "preceded by a letter");
        assert!(p.keys_in("9PROJ-12").is_empty(), "preceded by a digit");
        assert!(p.keys_in("PROJ-12345x").contains(&"PROJ-12345".to_string()), "a letter may follow");
        assert!(p.keys_in("PROJ-").is_empty() && p.keys_in("PROJ").is_empty() && p.keys_in("P-1").is_empty());
        assert!(p.keys_in("proj-12").is_empty(), "keys are upper case");
        assert_eq!(p.keys_in("é PROJ-3 ü"), ["PROJ-3"], "non-ASCII text around keys");
    }

    #[test]
    fn look_alikes_are_not_features() {
        let everything = FeatureProjects::new(["PROJ"]);
        for text in ["UTF-8", "SHA-256", "ISO-8601", "X-1", "RFC-3339", "AES-128-GCM", "HTTP-2"] {
            assert!(everything.keys_in(text).is_empty(), "{text}");
        }
        assert!(FeatureProjects::default().keys_in("PROJ-1").is_empty(), "no projects, no features");
    }

    #[test]
    fn pull_requests_in_the_forges_formats() {
        assert_eq!(pull_request_in("Merge pull request #432 from acme/SHOP-12-cart\n\nCart"), Some(432));
        assert_eq!(pull_request_in("Add saved cards (#156)"), Some(156));
        assert_eq!(pull_request_in("Add saved cards (#156)\n\n* SHOP-1 part one"), Some(156));
        assert_eq!(pull_request_in("Fix totals\n\nCloses #475 from alice/fix-totals"), Some(475));
        assert_eq!(
            pull_request_in("Merge branch 'SHOP-9' into 'main'\n\nCheckout\n\nSee merge request shop/api!12"),
            Some(12)
        );
        assert_eq!(pull_request_in("See merge request group/sub/project!7."), Some(7));
    }

    #[test]
    fn pull_request_look_alikes_are_ignored() {
        for message in [
            "Fix issue #12",
            "Closes #12",
            "Bump version (#abc)",
            "Revert (#12) partly",
            "Merge pull request #12",
            "Merge branch 'main' into feature",
            "See merge request !12",
            "Add (#0)",
            "",
        ] {
            assert_eq!(pull_request_in(message), None, "{message:?}");
        }
    }

    proptest! {
        #[test]
        fn an_embedded_key_is_found_between_separators(
            number in 1u32..10_000_000,
            before in "[ /_(\\[:.-]{1,2}",
            after in "[ /_)\\]:.a-z-]{0,2}",
            prefix in "[a-z ]{0,8}",
        ) {
            let text = format!("{prefix}{before}SHOP-{number}{after}tail");
            prop_assert_eq!(projects().keys_in(&text), vec![format!("SHOP-{number}")]);
        }

        #[test]
        fn a_key_glued_to_a_letter_or_digit_is_not_found(number in 1u32..10_000, glue in "[A-Za-z0-9]") {
            let text = format!("{glue}SHOP-{number}");
            let key = format!("SHOP-{number}");
            prop_assert!(!projects().keys_in(&text).contains(&key));
        }

        #[test]
        fn arbitrary_text_never_panics_and_yields_only_valid_keys(text in "\\PC{0,200}") {
            for key in projects().keys_in(&text) {
                let (project, number) = key.rsplit_once('-').unwrap();
                prop_assert!(["PROJ", "SHOP", "PAY_2"].contains(&project));
                prop_assert!(number.parse::<u64>().is_ok());
            }
            let _ = pull_request_in(&text);
        }

        #[test]
        fn squash_subjects_give_their_number(subject in "[A-Za-z ]{1,40}", number in 1i64..1_000_000) {
            prop_assert_eq!(pull_request_in(&format!("{subject} (#{number})")), Some(number));
        }
    }
}
