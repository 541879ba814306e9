//! The HTTP side both forges share: authentication headers, retries with backoff on
//! 5xx and unreachable servers, waiting out rate limits as the forge asks, and pages.
//!
//! Rate limits, as documented: GitHub answers 403 or 429 with `x-ratelimit-remaining: 0`
//! and `x-ratelimit-reset` (epoch seconds) for its primary limit, and `retry-after`
//! (seconds) for its secondary limits
//! (<https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api>);
//! GitLab answers 429 with `Retry-After` and `RateLimit-Reset`
//! (<https://docs.gitlab.com/ee/user/admin_area/settings/user_and_ip_rate_limits.html>).
//! Pages follow `Link: <…>; rel="next"` (both forges send it) or GitLab's `x-next-page`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::de::DeserializeOwned;

use super::ForgeError;
use crate::config::{ForgeConfig, ForgeKind};

/// How hard a client tries before giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Tries per request, the first included.
    pub attempts: u32,
    /// The wait after the first failure; doubled after each further one.
    pub backoff: Duration,
    /// The longest rate-limit wait Landfall sits out; a longer one fails the request.
    pub max_wait: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 5,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(120),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Pages followed at most, so a misbehaving server cannot keep a client busy forever.
const MAX_PAGES: usize = 50;
/// Items asked for per page (both forges allow 100).
pub const PER_PAGE: &str = "100";

/// A forge's REST API.
pub struct Api {
    client: reqwest::Client,
    /// With a trailing slash, so relative paths join under it.
    base: url::Url,
    forge: String,
    kind: ForgeKind,
    headers: HeaderMap,
    retry: Retry,
}

impl Api {
    pub fn new(config: &ForgeConfig, token: Option<&str>, retry: Retry) -> Api {
        let mut base = config.url().to_string();
        if config.kind == ForgeKind::Gitlab && !base.ends_with("/api/v4") {
            base.push_str("/api/v4");
        }
        base.push('/');
        // Checked by the configuration already; a fallback keeps construction infallible.
        let base = url::Url::parse(&base).unwrap_or_else(|_| url::Url::parse("http://invalid.invalid/").unwrap());
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::USER_AGENT, HeaderValue::from_static("landfall"));
        match config.kind {
            ForgeKind::Github => {
                headers.insert(reqwest::header::ACCEPT, HeaderValue::from_static("application/vnd.github+json"));
                headers.insert("x-github-api-version", HeaderValue::from_static("2022-11-28"));
            }
            ForgeKind::Gitlab => {
                headers.insert(reqwest::header::ACCEPT, HeaderValue::from_static("application/json"));
            }
        }
        if let Some(token) = token {
            let (name, value) = match config.kind {
                ForgeKind::Github => (reqwest::header::AUTHORIZATION, format!("Bearer {token}")),
                ForgeKind::Gitlab => (HeaderName::from_static("private-token"), token.to_string()),
            };
            if let Ok(mut value) = HeaderValue::from_str(&value) {
                value.set_sensitive(true);
                headers.insert(name, value);
            }
        }
        let client = reqwest::Client::builder()
            .timeout(retry.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Api { client, base, forge: config.name.clone(), kind: config.kind, headers, retry }
    }

    pub fn base(&self) -> &url::Url {
        &self.base
    }

    /// `base` + `segments`, each percent-encoded as one segment (so GitLab's
    /// `group/project` becomes `group%2Fproject`), + `query`.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> url::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// One JSON document; `None` when the forge says 404 (or 410).
    pub async fn get<T: DeserializeOwned>(&self, url: url::Url, what: &str) -> Result<Option<T>, ForgeError> {
        let Some(response) = self.send(url, what).await? else { return Ok(None) };
        let bytes = response.bytes().await.map_err(|error| self.unreachable(what, &error))?;
        serde_json::from_slice(&bytes).map(Some).map_err(|error| self.decode(what, error))
    }

    /// Every page of a list, following the forge's pagination; `pick` takes the items
    /// out of one page's document (a bare array, or GitHub's `{"jobs": [...]}`).
    pub async fn get_all<P: DeserializeOwned, T>(
        &self,
        first: url::Url,
        what: &str,
        pick: impl Fn(P) -> Vec<T>,
    ) -> Result<Vec<T>, ForgeError> {
        let mut items = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            let Some(response) = self.send(url.clone(), what).await? else { break };
            next = self.next_page(&url, response.headers()).filter(|_| pages < MAX_PAGES);
            let bytes = response.bytes().await.map_err(|error| self.unreachable(what, &error))?;
            let page: P = serde_json::from_slice(&bytes).map_err(|error| self.decode(what, error))?;
            items.extend(pick(page));
        }
        Ok(items)
    }

    /// The next page's URL: the `Link` header's `rel="next"` when it points at this API
    /// (the token is never sent elsewhere), else GitLab's `x-next-page`.
    fn next_page(&self, current: &url::Url, headers: &HeaderMap) -> Option<url::Url> {
        let link = headers.get(reqwest::header::LINK).and_then(|v| v.to_str().ok()).and_then(next_link);
        if let Some(next) = link.and_then(|l| url::Url::parse(&l).ok()) {
            let same_origin = next.origin() == self.base.origin() && next.path().starts_with(self.base.path());
            return same_origin.then_some(next);
        }
        let page = headers.get("x-next-page").and_then(|v| v.to_str().ok()).map(str::trim).filter(|p| !p.is_empty())?;
        let page: u32 = page.parse().ok()?;
        let mut next = current.clone();
        let pairs: Vec<(String, String)> =
            current.query_pairs().filter(|(k, _)| k != "page").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        next.query_pairs_mut().clear().extend_pairs(pairs).append_pair("page", &page.to_string());
        Some(next)
    }

    /// Sends a GET, retrying 5xx answers and failed connections with backoff and sitting
    /// out rate limits; `None` for 404 and 410.
    async fn send(&self, url: url::Url, what: &str) -> Result<Option<reqwest::Response>, ForgeError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.retry.attempts;
            let backoff = self.retry.backoff * 2u32.saturating_pow(attempt - 1);
            let response = match self.client.get(url.clone()).headers(self.headers.clone()).send().await {
                Ok(response) => response,
                Err(error) if last => return Err(self.unreachable(what, &error)),
                Err(error) => {
                    tracing::debug!(forge = %self.forge, %what, error = %describe(&error), "forge unreachable; retrying");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            let status = response.status();
            if let Some(wait) = rate_limit_wait(status, response.headers(), now_seconds()) {
                if wait > self.retry.max_wait || last {
                    return Err(ForgeError::RateLimited {
                        forge: self.forge.clone(),
                        what: what.into(),
                        wait_seconds: wait.as_secs(),
                    });
                }
                tracing::info!(forge = %self.forge, %what, wait_ms = wait.as_millis() as u64, "rate limited; waiting as asked");
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_server_error() && !last {
                tracing::debug!(forge = %self.forge, %what, status = status.as_u16(), "forge error; retrying");
                tokio::time::sleep(backoff).await;
                continue;
            }
            return match status {
                s if s.is_success() => Ok(Some(response)),
                StatusCode::NOT_FOUND | StatusCode::GONE => Ok(None),
                StatusCode::UNAUTHORIZED => {
                    Err(ForgeError::Unauthorized { forge: self.forge.clone(), what: what.into() })
                }
                status => {
                    let body = response.text().await.unwrap_or_default();
                    Err(ForgeError::Status {
                        forge: self.forge.clone(),
                        what: what.into(),
                        status: status.as_u16(),
                        message: error_message(&body),
                    })
                }
            };
        }
    }

    fn unreachable(&self, what: &str, error: &reqwest::Error) -> ForgeError {
        let url = error.url().map(|u| format!("{}{}", u.origin().ascii_serialization(), u.path()));
        ForgeError::Unreachable {
            forge: self.forge.clone(),
            url: url.unwrap_or_else(|| what.to_string()),
            reason: describe(error),
        }
    }

    fn decode(&self, what: &str, error: serde_json::Error) -> ForgeError {
        let kind = match self.kind {
            ForgeKind::Github => "GitHub",
            ForgeKind::Gitlab => "GitLab",
        };
        ForgeError::Decode { forge: self.forge.clone(), kind, what: what.into(), reason: error.to_string() }
    }
}

/// How long a rate-limited answer asks to wait; `None` when the answer is not one.
pub fn rate_limit_wait(status: StatusCode, headers: &HeaderMap, now: u64) -> Option<Duration> {
    if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::FORBIDDEN {
        return None;
    }
    let number =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let exhausted = number("x-ratelimit-remaining") == Some(0);
    if let Some(seconds) = number("retry-after") {
        return Some(Duration::from_secs(seconds.max(1)));
    }
    let reset = number("x-ratelimit-reset").or_else(|| number("ratelimit-reset"));
    match (status, exhausted, reset) {
        (_, true, Some(reset)) | (StatusCode::TOO_MANY_REQUESTS, _, Some(reset)) => {
            // Either an epoch time (GitHub, GitLab's RateLimit-Reset) or, if small, seconds.
            let seconds = if reset > 1_000_000_000 { reset.saturating_sub(now) } else { reset };
            Some(Duration::from_secs(seconds.max(1)))
        }
        // GitHub: "wait at least one minute" when it says nothing more.
        (StatusCode::TOO_MANY_REQUESTS, _, None) | (_, true, None) => Some(Duration::from_secs(60)),
        _ => None,
    }
}

/// The URL of `rel="next"` in a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        is_next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

/// The forge's own words from an error body (`message` on both, `error` on some of
/// GitLab's), shortened; never the whole body.
fn error_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let text = parsed
        .as_ref()
        .and_then(|v| v.get("message").or_else(|| v.get("error")))
        .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string))
        .unwrap_or_else(|| body.trim().to_string());
    let mut text: String = text.chars().take(200).collect();
    if text.is_empty() {
        text = "no message".into();
    }
    text
}

/// What went wrong, without the URL (it is shown separately) and with its causes.
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "cannot connect".to_string()
    } else if error.is_body() || error.is_decode() {
        "the answer was cut short".to_string()
    } else {
        "the request failed".to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

fn now_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn rate_limits_are_read_as_each_forge_sends_them() {
        let now = 1_700_000_000;
        let primary = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1700000030")]);
        assert_eq!(rate_limit_wait(StatusCode::FORBIDDEN, &primary, now), Some(Duration::from_secs(30)));
        let secondary = headers(&[("retry-after", "7")]);
        assert_eq!(rate_limit_wait(StatusCode::FORBIDDEN, &secondary, now), Some(Duration::from_secs(7)));
        assert_eq!(rate_limit_wait(StatusCode::TOO_MANY_REQUESTS, &secondary, now), Some(Duration::from_secs(7)));
        let gitlab = headers(&[("ratelimit-reset", "1700000005")]);
        assert_eq!(rate_limit_wait(StatusCode::TOO_MANY_REQUESTS, &gitlab, now), Some(Duration::from_secs(5)));
        assert_eq!(
            rate_limit_wait(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), now),
            Some(Duration::from_secs(60))
        );
        let forbidden = headers(&[("x-ratelimit-remaining", "4999")]);
        assert_eq!(rate_limit_wait(StatusCode::FORBIDDEN, &forbidden, now), None, "a real 403");
        assert_eq!(rate_limit_wait(StatusCode::OK, &primary, now), None);
    }

    #[test]
    fn link_headers_name_the_next_page() {
        let header = "<https://api.github.com/repositories/1/pulls?page=2>; rel=\"next\", \
                      <https://api.github.com/repositories/1/pulls?page=5>; rel=\"last\"";
        assert_eq!(next_link(header).as_deref(), Some("https://api.github.com/repositories/1/pulls?page=2"));
        assert_eq!(next_link("<https://x/?page=1>; rel=\"prev\""), None);
    }

    #[test]
    fn error_bodies_are_shortened_to_their_message() {
        assert_eq!(error_message("{\"message\":\"Bad credentials\",\"documentation_url\":\"x\"}"), "Bad credentials");
        assert_eq!(error_message("{\"error\":\"insufficient_scope\"}"), "insufficient_scope");
        assert_eq!(error_message(&"x".repeat(500)).len(), 200);
        assert_eq!(error_message(""), "no message");
    }

    #[test]
    fn gitlab_project_paths_are_one_segment() {
        let config = ForgeConfig {
            name: "gl".into(),
            kind: ForgeKind::Gitlab,
            url: Some("https://gitlab.example.com/".into()),
            token_env: None,
            webhook_secret_env: None,
        };
        let api = Api::new(&config, Some("t"), Retry::default());
        let url = api.url(&["projects", "group/sub/project", "merge_requests", "7"], &[]);
        assert_eq!(url.as_str(), "https://gitlab.example.com/api/v4/projects/group%2Fsub%2Fproject/merge_requests/7");
        assert!(format!("{:?}", api.headers).contains("Sensitive"), "the token is marked sensitive");
    }
}
