//! A GitHub REST API emulator (github.com at `/`, Enterprise Server at `/api/v3`), for the
//! calls Landfall makes, with the shapes of `shared/fixtures/github`:
//!
//! * `GET /repos/{owner}/{repo}/pulls/{number}`: a pull request (the REST example, with
//!   the seeded values in place of its own);
//! * `GET /repos/{owner}/{repo}/commits/{sha}/pulls`: the pull requests of a commit;
//! * `GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs`: `{"total_count", "jobs"}`.
//!
//! Lists are paged with `page` and `per_page` (30 by default, at most 100) and a `Link`
//! header (`next`, `last`, `first`, `prev`). A token is checked when sent
//! (`Authorization: Bearer` or `token`; 401 `Bad credentials` when unknown) and required
//! when [`Options::require_token`]. Every answer carries the `x-ratelimit-*` headers; when
//! the window's budget is spent, or a [`Fault`] says so, the answer is GitHub's 403 rate
//! limit. Webhook payloads (built from the fixture examples) are signed and sent to a
//! Landfall server by [`deliver`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

pub use crate::forge::{Delivered, Error, Fault, Seen};
use crate::forge::{Faults, Served, Shared, now_seconds, paging, slice};

const REST_PULL: &str = include_str!("../../../shared/fixtures/github/rest.pulls.get.spec-example.json");
const HOOK_PULL_CLOSED: &str = include_str!("../../../shared/fixtures/github/webhook.pull_request.closed.json");
const HOOK_PUSH: &str = include_str!("../../../shared/fixtures/github/webhook.push.new-branch.json");
const HOOK_RUN: &str =
    include_str!("../../../shared/fixtures/github/webhook.workflow_run.completed.with-pull-requests.json");

/// How the emulator behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// Tokens accepted; a request with another gets 401.
    pub tokens: Vec<String>,
    /// Refuse requests without a token (as for private repositories).
    pub require_token: bool,
    /// Requests allowed per window before the primary rate limit answers 403.
    pub rate_limit: u32,
    /// The rate-limit window.
    pub rate_window: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { tokens: Vec::new(), require_token: false, rate_limit: 5000, rate_window: Duration::from_secs(3600) }
    }
}

#[derive(Default)]
struct Data {
    pulls: HashMap<(String, i64), Value>,
    commit_pulls: HashMap<(String, String), Vec<i64>>,
    jobs: HashMap<(String, i64), Vec<Value>>,
    faults: Faults,
    seen: Vec<Seen>,
    window_start: u64,
    used: u32,
}

struct Inner {
    options: Options,
    state: Arc<Shared<Data>>,
}

/// Entry point: `GitHub::start(Options::default()).await?`.
pub struct GitHub;

impl GitHub {
    pub async fn start(options: Options) -> Result<Handle, Error> {
        let state = Shared::new(Data { window_start: now_seconds(), ..Data::default() });
        let inner = Arc::new(Inner { options, state: state.clone() });
        let router = Router::new().fallback(api).with_state(inner);
        let served = Served::start(router).await?;
        Ok(Handle { state, served })
    }
}

/// A running emulator; dropping it stops the server.
pub struct Handle {
    state: Arc<Shared<Data>>,
    served: Served,
}

impl Handle {
    /// The API's base URL as on github.com (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        self.served.url()
    }

    /// The API's base URL as on an Enterprise Server (`…/api/v3`).
    pub fn enterprise_url(&self) -> String {
        format!("{}/api/v3", self.served.url())
    }

    /// Serves `pull` for `owner/repo`.
    pub fn insert_pull_request(&self, full_name: &str, pull: &PullRequest) {
        let value = pull.to_rest(full_name);
        self.state.lock().pulls.insert((full_name.to_ascii_lowercase(), pull.number), value);
    }

    /// Lists pull request `number` among those of commit `sha`.
    pub fn link_commit(&self, full_name: &str, sha: &str, number: i64) {
        let mut state = self.state.lock();
        state.commit_pulls.entry((full_name.to_ascii_lowercase(), sha.to_string())).or_default().push(number);
    }

    /// Serves `jobs` (see [`job`]) for workflow run `run_id`.
    pub fn insert_run_jobs(&self, full_name: &str, run_id: i64, jobs: Vec<Value>) {
        self.state.lock().jobs.insert((full_name.to_ascii_lowercase(), run_id), jobs);
    }

    pub fn set_fault(&self, fault: Fault) {
        self.state.lock().faults.set(fault);
    }

    pub fn clear_faults(&self) {
        self.state.lock().faults = Faults::default();
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().seen.clone()
    }
}

/// A pull request to serve or to send in a webhook.
#[derive(Clone, Debug, Default)]
pub struct PullRequest {
    pub number: i64,
    pub title: String,
    pub body: Option<String>,
    pub author: String,
    pub head_branch: String,
    /// RFC 3339; `None` while open.
    pub merged_at: Option<String>,
    pub merge_commit_sha: Option<String>,
}

impl PullRequest {
    fn fill(&self, value: &mut Value, full_name: &str) {
        let api = format!("https://api.github.com/repos/{full_name}");
        value["number"] = json!(self.number);
        value["title"] = json!(self.title);
        value["body"] = json!(self.body);
        value["user"]["login"] = json!(self.author);
        value["head"]["ref"] = json!(self.head_branch);
        value["merged_at"] = json!(self.merged_at);
        value["merged"] = json!(self.merged_at.is_some());
        value["merge_commit_sha"] = json!(self.merge_commit_sha);
        value["state"] = json!(if self.merged_at.is_some() { "closed" } else { "open" });
        value["url"] = json!(format!("{api}/pulls/{}", self.number));
        value["html_url"] = json!(format!("https://github.com/{full_name}/pull/{}", self.number));
        value["base"]["repo"]["full_name"] = json!(full_name);
        value["base"]["repo"]["url"] = json!(api);
    }

    /// As `GET /repos/{owner}/{repo}/pulls/{number}` answers: the REST example with these values.
    pub fn to_rest(&self, full_name: &str) -> Value {
        let mut value: Value = serde_json::from_str(REST_PULL).expect("the fixture is JSON");
        self.fill(&mut value, full_name);
        value
    }

    /// A `pull_request` webhook payload: the `closed` example with these values (merged
    /// when `merged_at` is set).
    pub fn to_closed_event(&self, full_name: &str) -> Value {
        let mut value: Value = serde_json::from_str(HOOK_PULL_CLOSED).expect("the fixture is JSON");
        self.fill(&mut value["pull_request"], full_name);
        value["action"] = json!("closed");
        value["number"] = json!(self.number);
        value["repository"]["full_name"] = json!(full_name);
        value
    }
}

/// A `push` webhook payload: the new-branch example for `full_name`, pushing `after`.
pub fn push_event(full_name: &str, reference: &str, after: &str) -> Value {
    let mut value: Value = serde_json::from_str(HOOK_PUSH).expect("the fixture is JSON");
    value["repository"]["full_name"] = json!(full_name);
    value["ref"] = json!(reference);
    value["after"] = json!(after);
    value["head_commit"]["id"] = json!(after);
    value
}

/// A completed `workflow_run` payload: the example with pull requests, for `full_name`.
pub fn workflow_run_event(
    full_name: &str,
    run_id: i64,
    head_sha: &str,
    pull_request: Option<i64>,
    conclusion: &str,
) -> Value {
    let mut value: Value = serde_json::from_str(HOOK_RUN).expect("the fixture is JSON");
    value["repository"]["full_name"] = json!(full_name);
    let run = &mut value["workflow_run"];
    run["id"] = json!(run_id);
    run["head_sha"] = json!(head_sha);
    run["conclusion"] = json!(conclusion);
    run["status"] = json!("completed");
    run["html_url"] = json!(format!("https://github.com/{full_name}/actions/runs/{run_id}"));
    match pull_request {
        Some(number) => {
            let entry = &mut run["pull_requests"][0];
            entry["number"] = json!(number);
            entry["base"]["repo"]["url"] = json!(format!("https://api.github.com/repos/{full_name}"));
        }
        None => run["pull_requests"] = json!([]),
    }
    value
}

/// A job of `GET …/actions/runs/{run_id}/jobs`, completed with `conclusion`, with steps.
pub fn job(id: i64, name: &str, conclusion: &str, steps: &[&str]) -> Value {
    let at = "2024-05-01T12:00:00Z";
    let steps: Vec<Value> = steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            json!({ "name": step, "status": "completed", "conclusion": conclusion, "number": i + 1,
                    "started_at": at, "completed_at": at })
        })
        .collect();
    json!({
        "id": id, "run_id": 0, "name": name, "status": "completed", "conclusion": conclusion,
        "started_at": at, "completed_at": at, "steps": steps, "labels": ["ubuntu-latest"],
        "html_url": format!("https://github.com/jobs/{id}")
    })
}

/// The `X-Hub-Signature-256` GitHub sends for `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Sends `payload` as GitHub would to Landfall at `landfall_url`: to
/// `/api/v1/webhooks/github`, signed with `secret`, as event `event` and delivery `delivery`.
pub async fn deliver(
    landfall_url: &str,
    secret: &str,
    event: &str,
    delivery: &str,
    payload: &Value,
) -> Result<Delivered, Error> {
    let body = serde_json::to_vec(payload).expect("JSON values serialise");
    let headers = [
        ("x-github-event", event.to_string()),
        ("x-github-delivery", delivery.to_string()),
        ("x-hub-signature-256", signature(secret, &body)),
        ("user-agent", "GitHub-Hookshot/emulator".to_string()),
    ];
    crate::forge::deliver(&format!("{landfall_url}/api/v1/webhooks/github"), &headers, body).await
}

/// Sends any body with any headers to Landfall's GitHub endpoint, for the tests of what
/// it refuses.
pub async fn deliver_raw(landfall_url: &str, headers: &[(&str, String)], body: Vec<u8>) -> Result<Delivered, Error> {
    crate::forge::deliver(&format!("{landfall_url}/api/v1/webhooks/github"), headers, body).await
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "message": text, "documentation_url": "https://docs.github.com/rest" })))
        .into_response()
}

async fn api(State(inner): State<Arc<Inner>>, headers: HeaderMap, uri: Uri) -> Response {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("token ")))
        .map(str::to_string);
    let authenticated = presented.as_ref().is_some_and(|t| inner.options.tokens.contains(t));
    let mut response = answer(&inner, &headers, &uri, presented.is_some(), authenticated);
    let mut state = inner.state.lock();
    state.seen.push(Seen {
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        authenticated,
        status: response.status().as_u16(),
    });
    let reset = state.window_start + inner.options.rate_window.as_secs();
    let remaining = inner.options.rate_limit.saturating_sub(state.used);
    let response_headers = response.headers_mut();
    if !response_headers.contains_key("x-ratelimit-remaining") {
        for (name, value) in [
            ("x-ratelimit-limit", inner.options.rate_limit.to_string()),
            ("x-ratelimit-remaining", remaining.to_string()),
            ("x-ratelimit-reset", reset.to_string()),
            ("x-ratelimit-used", state.used.to_string()),
            ("x-ratelimit-resource", "core".to_string()),
        ] {
            response_headers.insert(name, value.parse().expect("a header value"));
        }
    }
    response
}

fn answer(inner: &Inner, headers: &HeaderMap, uri: &Uri, token_sent: bool, authenticated: bool) -> Response {
    let mut state = inner.state.lock();
    if state.faults.fail_next > 0 {
        state.faults.fail_next -= 1;
        return (StatusCode::BAD_GATEWAY, "<html><body><h1>502 Bad Gateway</h1></body></html>").into_response();
    }
    if state.faults.secondary_next > 0 {
        state.faults.secondary_next -= 1;
        let mut response = message(StatusCode::FORBIDDEN, "You have exceeded a secondary rate limit.");
        response.headers_mut().insert("retry-after", "1".parse().expect("a header value"));
        return response;
    }
    let now = now_seconds();
    if now >= state.window_start + inner.options.rate_window.as_secs() {
        state.window_start = now;
        state.used = 0;
    }
    let forced = state.faults.rate_limit_next > 0;
    if forced || state.used >= inner.options.rate_limit {
        let reset = if forced {
            state.faults.rate_limit_next -= 1;
            now + 1
        } else {
            state.window_start + inner.options.rate_window.as_secs()
        };
        let mut response = message(StatusCode::FORBIDDEN, "API rate limit exceeded for 127.0.0.1.");
        for (name, value) in [
            ("x-ratelimit-limit", inner.options.rate_limit.to_string()),
            ("x-ratelimit-remaining", "0".to_string()),
            ("x-ratelimit-reset", reset.to_string()),
            ("x-ratelimit-resource", "core".to_string()),
        ] {
            response.headers_mut().insert(name, value.parse().expect("a header value"));
        }
        return response;
    }
    state.used += 1;
    if token_sent && !authenticated {
        return message(StatusCode::UNAUTHORIZED, "Bad credentials");
    }
    if inner.options.require_token && !authenticated {
        return message(StatusCode::UNAUTHORIZED, "Requires authentication");
    }
    let path = uri.path();
    let prefix = if path.starts_with("/api/v3/") { "/api/v3" } else { "" };
    let segments: Vec<&str> = path[prefix.len()..].trim_matches('/').split('/').collect();
    let key = |owner: &str, repo: &str| format!("{owner}/{repo}").to_ascii_lowercase();
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let page_url = |page: usize, per_page: usize| format!("http://{host}{path}?per_page={per_page}&page={page}");
    match segments.as_slice() {
        ["repos", owner, repo, "pulls", number] => {
            let Ok(number) = number.parse::<i64>() else { return message(StatusCode::NOT_FOUND, "Not Found") };
            match state.pulls.get(&(key(owner, repo), number)) {
                Some(pull) => axum::Json(pull.clone()).into_response(),
                None => message(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
        ["repos", owner, repo, "commits", sha, "pulls"] => {
            let repository = key(owner, repo);
            let numbers = state.commit_pulls.get(&(repository.clone(), sha.to_string())).cloned().unwrap_or_default();
            let pulls: Vec<Value> =
                numbers.iter().filter_map(|n| state.pulls.get(&(repository.clone(), *n)).cloned()).collect();
            paged(&pulls, uri.query(), Value::Array, page_url)
        }
        ["repos", owner, repo, "actions", "runs", run, "jobs"] => {
            let Ok(run) = run.parse::<i64>() else { return message(StatusCode::NOT_FOUND, "Not Found") };
            let Some(jobs) = state.jobs.get(&(key(owner, repo), run)).cloned() else {
                return message(StatusCode::NOT_FOUND, "Not Found");
            };
            let total = jobs.len();
            paged(&jobs, uri.query(), |items| json!({ "total_count": total, "jobs": items }), page_url)
        }
        _ => message(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// One page of `items` and GitHub's `Link` header.
fn paged(
    items: &[Value],
    query: Option<&str>,
    wrap: impl Fn(Vec<Value>) -> Value,
    page_url: impl Fn(usize, usize) -> String,
) -> Response {
    let (page, per_page) = paging(query, 30);
    let (items, pages) = slice(items, page, per_page);
    let per_page = per_page.clamp(1, 100);
    let mut links = Vec::new();
    if page < pages {
        links.push(format!("<{}>; rel=\"next\"", page_url(page + 1, per_page)));
        links.push(format!("<{}>; rel=\"last\"", page_url(pages, per_page)));
    }
    if page > 1 {
        links.push(format!("<{}>; rel=\"first\"", page_url(1, per_page)));
        links.push(format!("<{}>; rel=\"prev\"", page_url(page - 1, per_page)));
    }
    let mut response = axum::Json(wrap(items)).into_response();
    if !links.is_empty() {
        response.headers_mut().insert("link", links.join(", ").parse().expect("a header value"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pages_auth_and_rate_limits_behave_like_github() {
        let github = GitHub::start(Options { tokens: vec!["t0k".into()], ..Options::default() }).await.unwrap();
        for number in 1..=3 {
            let pull =
                PullRequest { number, title: format!("PR {number}"), author: "alice".into(), ..Default::default() };
            github.insert_pull_request("acme/shop", &pull);
            github.link_commit("acme/shop", "abc", number);
        }
        let client = reqwest::Client::new();
        let url = format!("{}/repos/acme/shop/commits/abc/pulls?per_page=2", github.enterprise_url());
        let response = client.get(&url).bearer_auth("t0k").send().await.unwrap();
        assert_eq!(response.status(), 200);
        let link = response.headers()["link"].to_str().unwrap().to_string();
        assert!(link.contains("/api/v3/repos/acme/shop/commits/abc/pulls?per_page=2&page=2>; rel=\"next\""), "{link}");
        let page: Vec<Value> = response.json().await.unwrap();
        assert_eq!(page.len(), 2);
        assert_eq!(page[0]["user"]["login"], "alice");

        let response = client.get(&url).bearer_auth("wrong").send().await.unwrap();
        assert_eq!(response.status(), 401);
        github.set_fault(Fault::RateLimitNext(1));
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(
            (response.status().as_u16(), response.headers()["x-ratelimit-remaining"].to_str().unwrap()),
            (403, "0")
        );
        github.set_fault(Fault::FailNext(1));
        assert_eq!(client.get(&url).send().await.unwrap().status(), 502);
        assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
        assert_eq!(github.requests().len(), 5);
    }

    #[test]
    fn signatures_are_github_s() {
        // GitHub's documented example.
        assert_eq!(
            signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
