//! Jira webhooks: proving a delivery came from Jira, and reading what it reports.
//!
//! Jira Cloud admin webhooks registered with a secret sign the raw body with
//! HMAC-SHA256 and send `X-Hub-Signature: sha256=<hex>`. Jira Data Center / Server
//! webhooks are not signed, so their URL carries the secret (`?secret=...`). Both are
//! compared in constant time, and before the body is parsed.

use serde_json::Value;

use crate::ledger::jira::{IssueChange, IssueFact};

/// The largest body accepted; Jira's issue payloads are a few tens of KiB, and one with
/// every comment and worklog inlined stays well below this.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The header Jira Cloud signs with.
pub const SIGNATURE_HEADER: &str = "x-hub-signature";
/// The header naming a delivery; the same on Jira's retries of it.
pub const DELIVERY_HEADER: &str = "x-atlassian-webhook-identifier";

/// The secret webhooks are verified with; never shown.
#[derive(Clone)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub fn new(secret: String) -> Option<Self> {
        (!secret.is_empty()).then_some(WebhookSecret(secret))
    }

    /// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under the secret.
    pub fn verify_signature(&self, header: &str, body: &[u8]) -> bool {
        crate::signature::hmac_sha256_header_valid(&self.0, body, Some(header))
    }

    /// Whether the URL's `secret` is this one.
    pub fn verify_query(&self, presented: &str) -> bool {
        crate::signature::secret_equals(&self.0, presented)
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// What a delivery asks of Landfall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An issue was created, updated or deleted, at `timestamp` (epoch milliseconds).
    Issue { change: IssueChange, timestamp: i64, complete: bool },
    /// An event Landfall does not use (comments, worklogs, sprints...), by name.
    Ignored(String),
}

/// Why a body is not a delivery Landfall can read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is not a Jira webhook: {0}")]
    NotWebhook(&'static str),
}

/// Reads a verified body. `complete` says whether the issue came with its fields (Jira
/// can be told to leave them out), or must be fetched.
pub fn parse(body: &[u8], base: &url::Url, epic_link_field: Option<&str>) -> Result<Event, PayloadError> {
    let value: Value = serde_json::from_slice(body).map_err(|error| PayloadError::NotJson(error.to_string()))?;
    let event = value
        .get("webhookEvent")
        .and_then(Value::as_str)
        .ok_or(PayloadError::NotWebhook("it has no `webhookEvent`"))?;
    if !matches!(event, "jira:issue_created" | "jira:issue_updated" | "jira:issue_deleted") {
        return Ok(Event::Ignored(event.to_string()));
    }
    let timestamp = value
        .get("timestamp")
        .and_then(Value::as_i64)
        .ok_or(PayloadError::NotWebhook("an issue event needs a numeric `timestamp`"))?;
    let issue = value.get("issue").ok_or(PayloadError::NotWebhook("an issue event needs an `issue`"))?;
    let fact: IssueFact = super::wire::issue_fact_with_epic(issue, base, epic_link_field)
        .ok_or(PayloadError::NotWebhook("`issue.key` is missing or is not an issue key such as SHOP-12"))?;
    if event == "jira:issue_deleted" {
        return Ok(Event::Issue { change: IssueChange::Deleted { key: fact.key }, timestamp, complete: true });
    }
    let complete = issue.get("fields").is_some_and(|fields| fields.get("summary").is_some());
    Ok(Event::Issue { change: IssueChange::Upsert(Box::new(fact)), timestamp, complete })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/../../shared/fixtures/jira/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn base() -> url::Url {
        url::Url::parse("http://localhost:2990/jira").unwrap()
    }

    #[test]
    fn signatures_are_checked() {
        let secret = WebhookSecret::new("It's a Secret to Everybody".into()).unwrap();
        // GitHub's documented HMAC-SHA256 test vector: the same construction Jira Cloud uses.
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(secret.verify_signature(good, b"Hello, World!"));
        assert!(!secret.verify_signature(good, b"Hello, World?"));
        assert!(!secret.verify_signature(&good.replace("sha256=", "sha1="), b"Hello, World!"));
        assert!(!secret.verify_signature("sha256=zz", b"Hello, World!"));
        assert!(!secret.verify_signature("", b"Hello, World!"));
        assert!(secret.verify_query("It's a Secret to Everybody"));
        assert!(!secret.verify_query("It's a secret to everybody"));
        assert!(WebhookSecret::new(String::new()).is_none());
        assert!(!format!("{secret:?}").contains("Secret to"));
    }

    #[test]
    fn fixture_deliveries_are_read() {
        let event = parse(&fixture("webhook.jira-issue_updated.status-changed.server.json"), &base(), None).unwrap();
        let Event::Issue { change: IssueChange::Upsert(fact), timestamp, complete } = event else {
            panic!("{event:?}")
        };
        assert_eq!((fact.key.as_str(), fact.status.as_deref()), ("TEST-11", Some("Done")));
        assert_eq!(timestamp, 1_452_812_797_049);
        assert!(complete);
        let event = parse(&fixture("webhook.jira-issue_updated.fields-changed.server.json"), &base(), None).unwrap();
        assert!(
            matches!(event, Event::Issue { change: IssueChange::Upsert(ref f), .. } if f.summary.as_deref() == Some("summary updated"))
        );
        let event = parse(&fixture("webhook.comment_created.cloud.json"), &base(), None).unwrap();
        assert_eq!(event, Event::Ignored("comment_created".into()));
    }

    #[test]
    fn deletions_and_bad_bodies() {
        let deleted = br#"{"timestamp": 5, "webhookEvent": "jira:issue_deleted", "issue": {"key": "SHOP-3"}}"#;
        assert_eq!(
            parse(deleted, &base(), None).unwrap(),
            Event::Issue { change: IssueChange::Deleted { key: "SHOP-3".into() }, timestamp: 5, complete: true }
        );
        let bare = br#"{"timestamp": 5, "webhookEvent": "jira:issue_created", "issue": {"key": "SHOP-3"}}"#;
        assert!(matches!(parse(bare, &base(), None).unwrap(), Event::Issue { complete: false, .. }));
        assert!(matches!(parse(b"{not json", &base(), None), Err(PayloadError::NotJson(_))));
        assert!(matches!(parse(b"[]", &base(), None), Err(PayloadError::NotWebhook(_))));
        let bad_key = br#"{"timestamp": 5, "webhookEvent": "jira:issue_updated", "issue": {"key": "x'y"}}"#;
        assert!(matches!(parse(bad_key, &base(), None), Err(PayloadError::NotWebhook(_))));
    }
}
