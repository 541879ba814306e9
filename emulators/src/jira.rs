//! A Jira emulator: the issue search of Jira Cloud and of Jira Data Center / Server, and
//! a sender of webhooks as Jira delivers them.
//!
//! Built from `shared/fixtures/jira` (Atlassian's OpenAPI extract, its examples, and
//! recorded payloads; see SOURCE.md there):
//!
//! * **Cloud** ([`Flavor::Cloud`]): `GET`/`POST /rest/api/3/search/jql`, the
//!   `SearchAndReconcileResults` envelope `{issues, nextPageToken, isLast}` with no
//!   `nextPageToken` on the last page, `fields` defaulting to `id` only (so a client
//!   that asks for nothing gets keys and ids), basic auth with email and API token.
//! * **Data Center** ([`Flavor::DataCenter`]): `GET`/`POST /rest/api/2/search`, the
//!   `SearchResults` envelope `{expand, startAt, maxResults, total, issues}` (plus
//!   `warningMessages` with `validateQuery=warn`), `fields` defaulting to every field,
//!   a personal access token as bearer.
//! * **JQL**: `key in (A-1, "B-2")` and `key = A-1`, with an optional `ORDER BY key`.
//!   A key that does not exist makes the whole query `400` with Jira's error collection,
//!   `{"errorMessages": ["An issue with key 'X' does not exist for field 'key'."], "errors": {}}`,
//!   unless `validateQuery=warn` (Data Center), which turns it into a warning.
//! * **Faults**: `429` with `Retry-After`, `500`s, and an outage (`503`) until cleared.
//!
//! The 401 body and the exact wording of JQL syntax errors are not in the fixtures; the
//! emulator uses Jira's error-collection shape for them.

mod search;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

/// What can go wrong when starting the emulator, seeding it, or sending a webhook.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not bind the emulator's listener on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    #[error("invalid issue: {0}; expected a JSON object with a `key` such as SHOP-1 and a `fields` object")]
    InvalidIssue(String),
    #[error("no issue {0} in the emulator")]
    NoSuchIssue(String),
    #[error("cannot deliver the webhook: {0}")]
    Delivery(String),
}

/// Which Jira is emulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// REST v3, `/rest/api/3/search/jql`, email and API token.
    Cloud,
    /// REST v2, `/rest/api/2/search`, personal access token.
    DataCenter,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub flavor: Flavor,
    /// Cloud: the account the token belongs to.
    pub email: String,
    /// Cloud: the API token; Data Center: the personal access token.
    pub token: String,
    /// The most issues one page holds, whatever `maxResults` asks (Jira caps it too).
    pub max_page_size: usize,
}

impl Options {
    pub fn cloud(email: &str, token: &str) -> Self {
        Options { flavor: Flavor::Cloud, email: email.into(), token: token.into(), max_page_size: 100 }
    }

    pub fn data_center(token: &str) -> Self {
        Options { flavor: Flavor::DataCenter, email: String::new(), token: token.into(), max_page_size: 100 }
    }
}

/// Misbehaviour to inject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer the next `requests` searches with `429` and `Retry-After: retry_after_seconds`.
    RateLimit { requests: u32, retry_after_seconds: u64 },
    /// Answer the next `n` searches with `500`.
    FailNext(u32),
    /// Answer every search with `503` until [`Handle::clear_faults`].
    Outage,
}

/// One request the emulator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// The JQL searched for, when there was one.
    pub jql: Option<String>,
}

#[derive(Default)]
pub(crate) struct Faults {
    pub rate_limited: u32,
    pub retry_after_seconds: u64,
    pub fail_next: u32,
    pub outage: bool,
}

pub(crate) struct State {
    pub options: Options,
    pub base_url: String,
    /// Issues by key, as seeded (`id`, `key`, `self`, `fields`).
    pub issues: BTreeMap<String, Value>,
    pub faults: Faults,
    pub served: Vec<Served>,
    pub next_id: u64,
}

pub(crate) type Shared = Arc<Mutex<State>>;

pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Entry point: `Jira::start(Options::cloud("bot@acme.com", "token")).await?`.
pub struct Jira;

impl Jira {
    /// Binds `127.0.0.1:0` and serves until the [`Handle`] is dropped.
    pub async fn start(options: Options) -> Result<Handle, Error> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let base_url = format!("http://{addr}");
        let shared: Shared = Arc::new(Mutex::new(State {
            options,
            base_url: base_url.clone(),
            issues: BTreeMap::new(),
            faults: Faults::default(),
            served: Vec::new(),
            next_id: 10_000,
        }));
        let router = search::router(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        tracing::debug!(url = %base_url, "Jira emulator listening");
        Ok(Handle { shared, base_url, task })
    }
}

/// A running emulator; dropping it stops the server.
pub struct Handle {
    shared: Shared,
    base_url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// Base URL without a trailing slash: what `[jira] url` points at.
    pub fn url(&self) -> String {
        self.base_url.clone()
    }

    /// Adds or replaces an issue: a JSON object with `key` and `fields` in the flavour's
    /// shape (a fixture, or [`issue`]). `id` and `self` are filled in when missing.
    pub fn insert_issue(&self, mut issue: Value) -> Result<(), Error> {
        let key = issue.get("key").and_then(Value::as_str).map(str::to_string);
        let Some(key) = key.filter(|key| search::is_key(key)) else {
            return Err(Error::InvalidIssue(format!("`key` is {}", issue.get("key").unwrap_or(&Value::Null))));
        };
        if !issue.get("fields").is_some_and(Value::is_object) {
            return Err(Error::InvalidIssue(format!("{key} has no `fields` object")));
        }
        let mut st = lock(&self.shared);
        if issue.get("id").is_none() {
            st.next_id += 1;
            issue["id"] = json!(st.next_id.to_string());
        }
        if issue.get("self").is_none() {
            let version = if st.options.flavor == Flavor::Cloud { 3 } else { 2 };
            issue["self"] =
                json!(format!("{}/rest/api/{version}/issue/{}", st.base_url, issue["id"].as_str().unwrap_or("0")));
        }
        st.issues.insert(key, issue);
        Ok(())
    }

    /// Changes an issue in place, as someone editing it in Jira would.
    pub fn update_issue(&self, key: &str, change: impl FnOnce(&mut Value)) -> Result<Value, Error> {
        let mut st = lock(&self.shared);
        let issue = st.issues.get_mut(key).ok_or_else(|| Error::NoSuchIssue(key.into()))?;
        change(issue);
        Ok(issue.clone())
    }

    /// Deletes an issue; searches naming it then fail as on a real Jira.
    pub fn remove_issue(&self, key: &str) -> Result<Value, Error> {
        lock(&self.shared).issues.remove(key).ok_or_else(|| Error::NoSuchIssue(key.into()))
    }

    pub fn issue(&self, key: &str) -> Option<Value> {
        lock(&self.shared).issues.get(key).cloned()
    }

    pub fn set_fault(&self, fault: Fault) {
        let mut st = lock(&self.shared);
        match fault {
            Fault::RateLimit { requests, retry_after_seconds } => {
                st.faults.rate_limited = requests;
                st.faults.retry_after_seconds = retry_after_seconds;
            }
            Fault::FailNext(n) => st.faults.fail_next = n,
            Fault::Outage => st.faults.outage = true,
        }
    }

    pub fn clear_faults(&self) {
        lock(&self.shared).faults = Faults::default();
    }

    /// Every request answered so far, oldest first.
    pub fn served(&self) -> Vec<Served> {
        lock(&self.shared).served.clone()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An issue in the shape both flavours search results use, with the fields Landfall
/// reads. `status_category` is `new`, `indeterminate` or `done`.
pub fn issue(key: &str, summary: &str, status: &str, status_category: &str) -> Value {
    json!({
        "key": key,
        "fields": {
            "summary": summary,
            "issuetype": {"name": "Story", "subtask": false},
            "status": {"name": status, "statusCategory": {"key": status_category, "name": status}},
            "priority": {"name": "Medium"},
            "assignee": {"accountId": "5b10a2844c20165700ede21g", "displayName": "Mia Krystof"},
            "reporter": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Ada Lovelace"},
            "labels": [],
            "components": [],
            "fixVersions": [],
            "updated": "2024-05-01T12:00:00.000+0000",
            "description": "plain text in v2, an ADF document in v3; Landfall does not read it"
        }
    })
}

/// A webhook body as Jira sends it (`timestamp`, `webhookEvent`, `user`, `issue`), for
/// `jira:issue_created`, `jira:issue_updated` or `jira:issue_deleted`.
pub fn issue_event(event: &str, issue: &Value, timestamp: i64) -> Value {
    json!({
        "timestamp": timestamp,
        "webhookEvent": event,
        "issue_event_type_name": if event == "jira:issue_created" { "issue_created" } else { "issue_generic" },
        "user": {"accountId": "5b10a2844c20165700ede21g", "displayName": "Mia Krystof"},
        "issue": issue,
    })
}

/// How a delivery proves it comes from Jira.
#[derive(Debug, Clone, Copy)]
pub enum Signing<'a> {
    /// Jira Cloud: `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    Hmac(&'a str),
    /// Jira Data Center / Server: the secret in the URL's `secret` parameter.
    QuerySecret(&'a str),
    /// Nothing at all.
    Unsigned,
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`, as Jira Cloud signs.
pub fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("sha256={}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// POSTs `body` to `url` (such as `http://127.0.0.1:3000/api/v1/webhooks/jira`) as Jira
/// would, with the delivery's identifier header when given. Answers the status and body.
pub async fn send_webhook(
    url: &str,
    body: &[u8],
    signing: Signing<'_>,
    identifier: Option<&str>,
) -> Result<(u16, String), Error> {
    let mut target = url::Url::parse(url).map_err(|error| Error::Delivery(format!("`{url}`: {error}")))?;
    let client = reqwest::Client::new();
    let mut request = client.post(url).header("content-type", "application/json");
    match signing {
        Signing::Hmac(secret) => request = request.header("x-hub-signature", signature(secret, body)),
        Signing::QuerySecret(secret) => {
            target.query_pairs_mut().append_pair("secret", secret);
            request = client.post(target).header("content-type", "application/json");
        }
        Signing::Unsigned => {}
    }
    if let Some(identifier) = identifier {
        request = request.header("x-atlassian-webhook-identifier", identifier);
    }
    let response = request.body(body.to_vec()).send().await.map_err(|error| Error::Delivery(error.to_string()))?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.unwrap_or_default()))
}

#[cfg(test)]
mod tests;
