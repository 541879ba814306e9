//! Webhook deliveries: proving they come from the forge, and what each one asks of
//! Landfall. The HTTP handlers (`http::webhooks`) check, in this order: the body's size,
//! the signature or token (before anything is parsed), the JSON, the event type, and
//! whether the delivery was seen before; then the work is queued for [`super::worker`].

use sha2::{Digest, Sha256};

use super::PullRequestDetails;
use crate::ledger::PipelineRunFact;

/// The largest body accepted (5 MiB). GitHub caps payloads at 25 MB but sends far less
/// for the events Landfall uses; a bigger body is answered 413 before it is verified.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// Deliveries are remembered this long (and at least the 72 hours GitHub redelivers within),
/// so a replay is processed once.
pub const DELIVERY_MEMORY_MS: i64 = 7 * 24 * 3600 * 1000;

/// How a delivery names its repository: its path on the forge and, on GitLab, the
/// numeric project id too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub paths: Vec<String>,
}

impl Incoming {
    pub fn path(path: String) -> Incoming {
        Incoming { paths: vec![path] }
    }
}

/// What a delivery asks Landfall to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// GitHub's `ping` when a webhook is created.
    Ping,
    /// An event Landfall does not use, and why.
    Ignored(String),
    /// A merged pull (merge) request. `refresh`: the payload lacks details (GitLab's names
    /// no author) that the API gives, when a token is configured.
    Merged { incoming: Incoming, details: PullRequestDetails, refresh: bool },
    /// New commits: fetch the repository; `head` is the pushed tip, if one was.
    Push { incoming: Incoming, head: Option<String> },
    /// A CI run; its `repository` is filled in once placed. `github_run_id`: the jobs can
    /// be fetched from GitHub's API.
    Pipeline { incoming: Incoming, run: PipelineRunFact, github_run_id: Option<i64> },
}

/// Whether `header` (`X-Hub-Signature-256`: `sha256=` and the hex HMAC-SHA256 of the raw
/// body keyed with the secret) proves `body` came from a holder of `secret`. The MAC is
/// compared in constant time.
/// (<https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries>)
pub fn github_signature_valid(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    crate::signature::hmac_sha256_header_valid(secret, body, header)
}

/// Whether `X-Gitlab-Token` equals the configured secret. GitLab sends the secret
/// itself, not a signature; both sides are hashed first, so the comparison takes the
/// same time whatever the lengths.
pub fn gitlab_token_valid(secret: &str, header: Option<&str>) -> bool {
    header.is_some_and(|presented| crate::signature::secret_equals(secret, presented))
}

/// The delivery's id for de-duplication: the forge's own, or the body's digest when the
/// sender gave none (an identical body is then the same delivery).
pub fn delivery_id(header: Option<&str>, body: &[u8]) -> String {
    match header.map(str::trim).filter(|id| !id.is_empty() && id.len() <= 200) {
        Some(id) => id.to_string(),
        None => format!("sha256:{}", crate::signature::hex(&Sha256::digest(body))),
    }
}

/// The signature GitHub would send for `body`; for the emulators and tests.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    crate::signature::hmac_sha256_header(secret, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_signatures_are_checked_over_the_raw_body() {
        let body = br#"{"zen":"Design for failure."}"#;
        let signature = github_signature("It's a Secret to Everybody", body);
        assert!(github_signature_valid("It's a Secret to Everybody", body, Some(&signature)));
        assert!(!github_signature_valid("another secret", body, Some(&signature)));
        assert!(!github_signature_valid(
            "It's a Secret to Everybody",
            b"{\"zen\": \"Design for failure.\"}",
            Some(&signature)
        ));
        assert!(!github_signature_valid("It's a Secret to Everybody", body, None));
        assert!(!github_signature_valid(
            "It's a Secret to Everybody",
            body,
            Some(&signature.replace("sha256=", "sha1="))
        ));
        assert!(!github_signature_valid("It's a Secret to Everybody", body, Some("sha256=zz")));
        assert!(!github_signature_valid("s", body, Some(&format!("sha256={}", "é".repeat(32)))));
    }

    #[test]
    fn github_s_documented_example_signature_verifies() {
        // From GitHub's "Validating webhook deliveries": secret and payload as given there.
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(github_signature_valid("It's a Secret to Everybody", b"Hello, World!", Some(signature)));
    }

    #[test]
    fn gitlab_tokens_must_match_exactly() {
        assert!(gitlab_token_valid("s3cret", Some("s3cret")));
        assert!(!gitlab_token_valid("s3cret", Some("s3cret ")));
        assert!(!gitlab_token_valid("s3cret", Some("")));
        assert!(!gitlab_token_valid("s3cret", None));
    }

    #[test]
    fn deliveries_without_an_id_are_known_by_their_body() {
        assert_eq!(
            delivery_id(Some("72d3162e-cc78-11e3-81ab-4c9367dc0958"), b"x"),
            "72d3162e-cc78-11e3-81ab-4c9367dc0958"
        );
        assert_eq!(delivery_id(None, b"x"), delivery_id(Some("  "), b"x"));
        assert_ne!(delivery_id(None, b"x"), delivery_id(None, b"y"));
    }
}
