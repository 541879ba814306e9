//! The Jira REST client: JQL searches for batches of keys, on Cloud (REST v3,
//! `POST /rest/api/3/search/jql`, `nextPageToken` pages, email and API token as basic
//! auth) or Data Center (REST v2, `POST /rest/api/2/search`, `startAt` pages, a personal
//! access token as bearer). 429 and 5xx answers are retried after `Retry-After` or with
//! an exponential backoff.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::JiraError;
use super::wire::{self, ErrorCollection, FIELDS, JqlPage, OffsetPage};
use crate::config::JiraFlavor;
use crate::ledger::jira::IssueFact;

/// Keys per JQL search: `key in (...)` of 50 keys stays far below URL and JQL limits,
/// and one page (`maxResults` 50) holds them all.
pub const BATCH: usize = 50;

/// How failures are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// The first backoff after a 5xx or a connection failure; doubled each time.
    pub backoff: Duration,
    /// The longest wait, whether backoff or `Retry-After`.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 4, backoff: Duration::from_millis(500), max_wait: Duration::from_secs(60) }
    }
}

/// Credentials; never shown.
#[derive(Clone)]
enum Auth {
    Basic { email: String, token: String },
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Basic { email, .. } => write!(f, "Basic({email}, ***)"),
            Auth::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// What a search for some keys found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub issues: Vec<IssueFact>,
    /// Requested keys Jira does not know (or does not let this account see).
    pub not_found: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct JiraClient {
    http: reqwest::Client,
    base: url::Url,
    flavor: JiraFlavor,
    auth: Auth,
    retry: RetryPolicy,
    page_size: u32,
    epic_link_field: Option<String>,
}

impl JiraClient {
    /// `email` is required for Cloud and ignored for Data Center; the configuration
    /// checks both.
    pub fn new(base: url::Url, flavor: JiraFlavor, email: Option<&str>, token: String) -> Result<Self, JiraError> {
        let auth = match (flavor, email) {
            (JiraFlavor::Cloud, Some(email)) => Auth::Basic { email: email.to_string(), token },
            (JiraFlavor::Cloud, None) => return Err(JiraError::Config("Jira Cloud needs `email`".into())),
            (JiraFlavor::Datacenter, _) => Auth::Bearer(token),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("landfall/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| JiraError::Config(format!("cannot build the HTTP client: {error}")))?;
        Ok(JiraClient {
            http,
            base,
            flavor,
            auth,
            retry: RetryPolicy::default(),
            page_size: BATCH as u32,
            epic_link_field: None,
        })
    }

    /// Also asks for, and reads epics from, Data Center's *Epic Link* custom field.
    pub fn with_epic_link_field(mut self, field: Option<String>) -> Self {
        self.epic_link_field = field;
        self
    }

    /// The fields every search asks for.
    fn fields(&self) -> Vec<&str> {
        FIELDS.iter().copied().chain(self.epic_link_field.as_deref()).collect()
    }

    fn fact(&self, issue: &serde_json::Value) -> Option<IssueFact> {
        wire::issue_fact_with_epic(issue, &self.base, self.epic_link_field.as_deref())
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Issues per page asked for (`maxResults`); Jira may send fewer.
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    pub fn base(&self) -> &url::Url {
        &self.base
    }

    /// Looks `keys` up, [`BATCH`] at a time. A batch Jira refuses because some of its keys
    /// do not exist is asked again without them.
    pub async fn fetch(&self, keys: &[String]) -> Result<Found, JiraError> {
        let mut found = Found::default();
        for batch in keys.chunks(BATCH) {
            let part = self.fetch_batch(batch).await?;
            found.issues.extend(part.issues);
            found.not_found.extend(part.not_found);
        }
        Ok(found)
    }

    /// One batch of at most [`BATCH`] keys.
    pub async fn fetch_batch(&self, keys: &[String]) -> Result<Found, JiraError> {
        let mut remaining: Vec<String> = keys.iter().filter(|key| wire::is_issue_key(key)).cloned().collect();
        let mut found = Found {
            not_found: keys.iter().filter(|key| !wire::is_issue_key(key)).cloned().collect(),
            ..Found::default()
        };
        // Each round either succeeds or removes at least one key.
        while !remaining.is_empty() {
            match self.search(&remaining).await {
                Ok((issues, warnings)) => {
                    let returned: BTreeSet<&str> = issues.iter().map(|issue| issue.key.as_str()).collect();
                    // Keys Jira silently dropped, or named in warnings (`validateQuery=warn`).
                    let warned = wire::keys_named(&warnings, &remaining);
                    found.not_found.extend(
                        remaining
                            .iter()
                            .filter(|key| !returned.contains(key.as_str()) || warned.contains(key))
                            .cloned(),
                    );
                    found.issues.extend(issues);
                    break;
                }
                Err(JiraError::Refused { status: 400, messages }) => {
                    let unknown: Vec<String> = wire::keys_named(&messages, &remaining).into_iter().cloned().collect();
                    if unknown.is_empty() {
                        return Err(JiraError::Refused { status: 400, messages });
                    }
                    remaining.retain(|key| !unknown.contains(key));
                    found.not_found.extend(unknown);
                }
                Err(other) => return Err(other),
            }
        }
        found.not_found.sort();
        found.not_found.dedup();
        Ok(found)
    }

    /// Every page of `key in (...)`, and the warnings Jira sent with them.
    async fn search(&self, keys: &[String]) -> Result<(Vec<IssueFact>, Vec<String>), JiraError> {
        let jql = format!("key in ({}) ORDER BY key", keys.join(", "));
        let mut issues = Vec::new();
        let mut warnings = Vec::new();
        let mut pages = 0;
        match self.flavor {
            JiraFlavor::Cloud => {
                let mut token: Option<String> = None;
                loop {
                    let mut body = json!({ "jql": jql, "fields": self.fields(), "maxResults": self.page_size });
                    if let Some(token) = &token {
                        body["nextPageToken"] = json!(token);
                    }
                    let page: JqlPage = self.post(&["rest", "api", "3", "search", "jql"], &body).await?;
                    issues.extend(page.issues.iter().filter_map(|issue| self.fact(issue)));
                    pages += 1;
                    match page.next_page_token {
                        Some(next) if page.is_last != Some(true) && !page.issues.is_empty() && pages < 1000 => {
                            token = Some(next)
                        }
                        _ => break,
                    }
                }
            }
            JiraFlavor::Datacenter => {
                let mut start_at = 0i64;
                loop {
                    let body = json!({
                        "jql": jql, "fields": self.fields(), "startAt": start_at, "maxResults": self.page_size,
                    });
                    let page: OffsetPage = self.post(&["rest", "api", "2", "search"], &body).await?;
                    issues.extend(page.issues.iter().filter_map(|issue| self.fact(issue)));
                    warnings.extend(page.warning_messages);
                    start_at = page.start_at + page.issues.len() as i64;
                    pages += 1;
                    if page.issues.is_empty() || start_at >= page.total || pages >= 1000 {
                        break;
                    }
                }
            }
        }
        Ok((issues, warnings))
    }

    /// POSTs JSON to a path under the base URL, retrying what may pass.
    async fn post<T: serde::de::DeserializeOwned>(&self, path: &[&str], body: &Value) -> Result<T, JiraError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| JiraError::Config("`jira.url` cannot be a base URL".into()))?
            .pop_if_empty()
            .extend(path);
        let endpoint = format!("/{}", path.join("/"));
        let mut last = String::new();
        for attempt in 1..=self.retry.attempts.max(1) {
            let request = self.http.post(url.clone()).json(body).header("accept", "application/json");
            let request = match &self.auth {
                Auth::Basic { email, token } => request.basic_auth(email, Some(token)),
                Auth::Bearer(token) => request.bearer_auth(token),
            };
            let backoff = self.retry.backoff.saturating_mul(2u32.saturating_pow(attempt - 1)).min(self.retry.max_wait);
            let wait = match request.send().await {
                Err(error) => {
                    // reqwest's text names the URL, which holds no secret: credentials travel in headers.
                    last = format!("cannot reach Jira: {}", without_url(&error));
                    backoff
                }
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| value.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    if status.is_success() {
                        return response.json::<T>().await.map_err(|error| JiraError::Malformed {
                            endpoint: endpoint.clone(),
                            reason: without_url(&error),
                        });
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                        last = format!("Jira answered {status} to {endpoint}");
                        retry_after.unwrap_or(backoff).min(self.retry.max_wait)
                    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                        return Err(JiraError::Unauthorized { status: status.as_u16() });
                    } else {
                        let errors: ErrorCollection = response.json().await.unwrap_or_default();
                        return Err(JiraError::Refused { status: status.as_u16(), messages: errors.messages() });
                    }
                }
            };
            if attempt < self.retry.attempts {
                tracing::debug!(%endpoint, attempt, wait_ms = wait.as_millis() as u64, %last, "retrying Jira");
                tokio::time::sleep(wait).await;
            }
        }
        Err(JiraError::Unavailable { attempts: self.retry.attempts.max(1), last })
    }
}

/// A reqwest error's own words, without the URL it appends.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(&format!(" ({url})"), "").replace(url.as_str(), "Jira");
    }
    match std::error::Error::source(error) {
        Some(source) => format!("{text}: {source}"),
        None => text,
    }
}
