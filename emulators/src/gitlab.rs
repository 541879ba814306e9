//! A GitLab REST v4 emulator (gitlab.com or self-managed: the API is under `/api/v4`),
//! for the calls Landfall makes:
//!
//! * `GET /api/v4/projects/:id/merge_requests/:iid`;
//! * `GET /api/v4/projects/:id/repository/commits/:sha/merge_requests`;
//!
//! where `:id` is the numeric project id or its URL-encoded path (`group%2Fproject`).
//! Lists are paged with `page` and `per_page` (20 by default, at most 100) and the
//! `x-page`, `x-per-page`, `x-next-page` (empty on the last page), `x-prev-page`,
//! `x-total` and `x-total-pages` headers. A token (`PRIVATE-TOKEN` or
//! `Authorization: Bearer`) is checked when sent (401 `{"message":"401 Unauthorized"}`)
//! and required when [`Options::require_token`]. Rate limiting answers 429 with
//! `Retry-After` and the `RateLimit-*` headers. Webhook payloads are built from the
//! examples in `shared/fixtures/gitlab` (the push hook, which has no example there, from
//! the documented fields) and sent with the `X-Gitlab-Token` by [`deliver`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub use crate::forge::{Delivered, Error, Fault, Seen};
use crate::forge::{Faults, Served, Shared, now_seconds, paging, slice};

const HOOK_MERGE_REQUEST: &str = include_str!("../../../shared/fixtures/gitlab/webhook.merge_request.open.json");
const HOOK_PIPELINE: &str = include_str!("../../../shared/fixtures/gitlab/webhook.pipeline.success.gitlab-docs.json");

/// How the emulator behaves.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Tokens accepted; a request with another gets 401.
    pub tokens: Vec<String>,
    /// Refuse requests without a token (as for private projects).
    pub require_token: bool,
}

#[derive(Default)]
struct Data {
    /// Project id → path.
    projects: HashMap<i64, String>,
    merge_requests: HashMap<(i64, i64), Value>,
    commit_merge_requests: HashMap<(i64, String), Vec<i64>>,
    faults: Faults,
    seen: Vec<Seen>,
}

struct Inner {
    options: Options,
    data: Arc<Shared<Data>>,
}

/// Entry point: `GitLab::start(Options::default()).await?`.
pub struct GitLab;

impl GitLab {
    pub async fn start(options: Options) -> Result<Handle, Error> {
        let data = Shared::new(Data::default());
        let inner = Arc::new(Inner { options, data: data.clone() });
        let router = Router::new().fallback(api).with_state(inner);
        let served = Served::start(router).await?;
        Ok(Handle { data, served })
    }
}

/// A running emulator; dropping it stops the server.
pub struct Handle {
    data: Arc<Shared<Data>>,
    served: Served,
}

impl Handle {
    /// The instance's URL (`http://127.0.0.1:PORT`); the API is under `/api/v4`.
    pub fn url(&self) -> String {
        self.served.url()
    }

    /// Declares project `id` at `path` (`group/subgroup/project`).
    pub fn insert_project(&self, id: i64, path: &str) {
        self.data.lock().projects.insert(id, path.to_string());
    }

    /// Serves `request` in project `project_id`.
    pub fn insert_merge_request(&self, project_id: i64, request: &MergeRequest) {
        let mut data = self.data.lock();
        let path = data.projects.get(&project_id).cloned().unwrap_or_default();
        data.merge_requests.insert((project_id, request.iid), request.to_rest(project_id, &path));
    }

    /// Lists merge request `iid` among those of commit `sha`.
    pub fn link_commit(&self, project_id: i64, sha: &str, iid: i64) {
        self.data.lock().commit_merge_requests.entry((project_id, sha.to_string())).or_default().push(iid);
    }

    pub fn set_fault(&self, fault: Fault) {
        self.data.lock().faults.set(fault);
    }

    pub fn clear_faults(&self) {
        self.data.lock().faults = Faults::default();
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Seen> {
        self.data.lock().seen.clone()
    }
}

/// A merge request to serve or to send in a webhook.
#[derive(Clone, Debug, Default)]
pub struct MergeRequest {
    pub iid: i64,
    pub title: String,
    pub description: String,
    pub author: String,
    pub source_branch: String,
    /// ISO 8601; `None` while open.
    pub merged_at: Option<String>,
    pub merge_commit_sha: Option<String>,
}

impl MergeRequest {
    /// As the merge request API answers, with the documented fields.
    pub fn to_rest(&self, project_id: i64, path: &str) -> Value {
        let state = if self.merged_at.is_some() { "merged" } else { "opened" };
        json!({
            "id": project_id * 1000 + self.iid,
            "iid": self.iid,
            "project_id": project_id,
            "title": self.title,
            "description": self.description,
            "state": state,
            "created_at": "2024-05-01T10:00:00.000Z",
            "updated_at": self.merged_at.clone().unwrap_or_else(|| "2024-05-01T10:00:00.000Z".into()),
            "merged_at": self.merged_at,
            "merged_by": self.merged_at.as_ref().map(|_| json!({ "id": 2, "username": "maintainer", "name": "Maintainer" })),
            "author": { "id": 1, "username": self.author, "name": self.author, "state": "active",
                        "web_url": format!("https://gitlab.example.com/{}", self.author) },
            "source_branch": self.source_branch,
            "target_branch": "main",
            "sha": self.merge_commit_sha,
            "merge_commit_sha": self.merge_commit_sha,
            "squash_commit_sha": null,
            "draft": false,
            "web_url": format!("https://gitlab.example.com/{path}/-/merge_requests/{}", self.iid)
        })
    }

    /// A Merge Request Hook payload: the documented example with these values; action
    /// `merge` when merged, else `open`.
    pub fn to_event(&self, project_id: i64, path: &str) -> Value {
        let mut value: Value = serde_json::from_str(HOOK_MERGE_REQUEST).expect("the fixture is JSON");
        set_project(&mut value, project_id, path);
        let attributes = &mut value["object_attributes"];
        attributes["iid"] = json!(self.iid);
        attributes["title"] = json!(self.title);
        attributes["description"] = json!(self.description);
        attributes["source_branch"] = json!(self.source_branch);
        let merged = self.merged_at.is_some();
        attributes["action"] = json!(if merged { "merge" } else { "open" });
        attributes["state"] = json!(if merged { "merged" } else { "opened" });
        attributes["merge_commit_sha"] = json!(self.merge_commit_sha);
        if let Some(at) = &self.merged_at {
            attributes["updated_at"] = json!(at);
        }
        value
    }
}

fn set_project(value: &mut Value, project_id: i64, path: &str) {
    value["project"]["id"] = json!(project_id);
    value["project"]["path_with_namespace"] = json!(path);
    value["project"]["web_url"] = json!(format!("https://gitlab.example.com/{path}"));
}

/// A Pipeline Hook payload: the documented example (with its five jobs) for a pipeline
/// of `path` at `sha`, run for merge request `merge_request` when given.
pub fn pipeline_event(project_id: i64, path: &str, pipeline_id: i64, sha: &str, merge_request: Option<i64>) -> Value {
    let mut value: Value = serde_json::from_str(HOOK_PIPELINE).expect("the fixture is JSON");
    set_project(&mut value, project_id, path);
    value["object_attributes"]["id"] = json!(pipeline_id);
    value["object_attributes"]["sha"] = json!(sha);
    value["object_attributes"]["url"] = json!(format!("https://gitlab.example.com/{path}/-/pipelines/{pipeline_id}"));
    match merge_request {
        Some(iid) => value["merge_request"]["iid"] = json!(iid),
        None => value["merge_request"] = Value::Null,
    }
    value
}

/// A Push Hook payload with the documented fields (the fixtures hold no push example).
pub fn push_event(project_id: i64, path: &str, reference: &str, before: &str, after: &str) -> Value {
    let mut value = json!({
        "object_kind": "push", "event_name": "push", "before": before, "after": after, "ref": reference,
        "checkout_sha": after, "user_id": 1, "user_name": "Administrator", "user_username": "root",
        "project_id": project_id, "project": {},
        "commits": [], "total_commits_count": 0, "repository": { "name": path }
    });
    set_project(&mut value, project_id, path);
    value
}

/// Sends `payload` as GitLab would to Landfall at `landfall_url`: to
/// `/api/v1/webhooks/gitlab`, with `token` in `X-Gitlab-Token`, as `event` (such as
/// `Pipeline Hook`), with `uuid` as both `X-Gitlab-Event-UUID` and `Idempotency-Key`.
pub async fn deliver(
    landfall_url: &str,
    token: &str,
    event: &str,
    uuid: &str,
    payload: &Value,
) -> Result<Delivered, Error> {
    let headers = [
        ("x-gitlab-event", event.to_string()),
        ("x-gitlab-token", token.to_string()),
        ("x-gitlab-event-uuid", uuid.to_string()),
        ("idempotency-key", uuid.to_string()),
        ("user-agent", "GitLab/17.0.0".to_string()),
    ];
    let body = serde_json::to_vec(payload).expect("JSON values serialise");
    crate::forge::deliver(&format!("{landfall_url}/api/v1/webhooks/gitlab"), &headers, body).await
}

/// Sends any body with any headers to Landfall's GitLab endpoint.
pub async fn deliver_raw(landfall_url: &str, headers: &[(&str, String)], body: Vec<u8>) -> Result<Delivered, Error> {
    crate::forge::deliver(&format!("{landfall_url}/api/v1/webhooks/gitlab"), headers, body).await
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "message": text }))).into_response()
}

async fn api(State(inner): State<Arc<Inner>>, headers: HeaderMap, uri: Uri) -> Response {
    let presented = headers
        .get("private-token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")))
        .map(str::to_string);
    let authenticated = presented.as_ref().is_some_and(|t| inner.options.tokens.contains(t));
    let response = answer(&inner, &uri, presented.is_some(), authenticated);
    inner.data.lock().seen.push(Seen {
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        authenticated,
        status: response.status().as_u16(),
    });
    response
}

fn answer(inner: &Inner, uri: &Uri, token_sent: bool, authenticated: bool) -> Response {
    let mut data = inner.data.lock();
    if data.faults.fail_next > 0 {
        data.faults.fail_next -= 1;
        return (StatusCode::BAD_GATEWAY, "GitLab is not responding").into_response();
    }
    if data.faults.rate_limit_next > 0 || data.faults.secondary_next > 0 {
        data.faults.rate_limit_next = data.faults.rate_limit_next.saturating_sub(1);
        data.faults.secondary_next = data.faults.secondary_next.saturating_sub(1);
        let mut response = (StatusCode::TOO_MANY_REQUESTS, "Retry later").into_response();
        for (name, value) in [
            ("retry-after", "1".to_string()),
            ("ratelimit-limit", "600".to_string()),
            ("ratelimit-remaining", "0".to_string()),
            ("ratelimit-reset", (now_seconds() + 1).to_string()),
        ] {
            response.headers_mut().insert(name, value.parse().expect("a header value"));
        }
        return response;
    }
    if !authenticated && (token_sent || inner.options.require_token) {
        return message(StatusCode::UNAUTHORIZED, "401 Unauthorized");
    }
    let Some(rest) = uri.path().strip_prefix("/api/v4/projects/") else {
        return message(StatusCode::NOT_FOUND, "404 Not Found");
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let Some(project) = project_id(&data, segments[0]) else {
        return message(StatusCode::NOT_FOUND, "404 Project Not Found");
    };
    match &segments[1..] {
        ["merge_requests", iid] => {
            match iid.parse::<i64>().ok().and_then(|iid| data.merge_requests.get(&(project, iid))) {
                Some(request) => axum::Json(request.clone()).into_response(),
                None => message(StatusCode::NOT_FOUND, "404 Not found"),
            }
        }
        ["repository", "commits", sha, "merge_requests"] => {
            let iids = data.commit_merge_requests.get(&(project, sha.to_string())).cloned().unwrap_or_default();
            let requests: Vec<Value> =
                iids.iter().filter_map(|iid| data.merge_requests.get(&(project, *iid)).cloned()).collect();
            let (page, per_page) = paging(uri.query(), 20);
            let (items, pages) = slice(&requests, page, per_page);
            let mut response = axum::Json(Value::Array(items)).into_response();
            let next = if page < pages { (page + 1).to_string() } else { String::new() };
            let previous = if page > 1 { (page - 1).to_string() } else { String::new() };
            for (name, value) in [
                ("x-page", page.to_string()),
                ("x-per-page", per_page.clamp(1, 100).to_string()),
                ("x-next-page", next),
                ("x-prev-page", previous),
                ("x-total", requests.len().to_string()),
                ("x-total-pages", pages.to_string()),
            ] {
                response.headers_mut().insert(name, value.parse().expect("a header value"));
            }
            response
        }
        _ => message(StatusCode::NOT_FOUND, "404 Not Found"),
    }
}

/// A project by numeric id or URL-encoded path.
fn project_id(data: &Data, segment: &str) -> Option<i64> {
    if let Ok(id) = segment.parse::<i64>() {
        return data.projects.contains_key(&id).then_some(id);
    }
    let path: String = url::form_urlencoded::parse(format!("p={segment}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    data.projects.iter().find(|(_, p)| p.eq_ignore_ascii_case(&path)).map(|(id, _)| *id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn paths_pages_and_limits_behave_like_gitlab() {
        let gitlab = GitLab::start(Options { tokens: vec!["glpat".into()], require_token: true }).await.unwrap();
        gitlab.insert_project(7, "group/sub/shop");
        for iid in 1..=3 {
            let request = MergeRequest { iid, title: format!("MR {iid}"), author: "bob".into(), ..Default::default() };
            gitlab.insert_merge_request(7, &request);
            gitlab.link_commit(7, "abc", iid);
        }
        let client = reqwest::Client::new();
        let url = format!("{}/api/v4/projects/group%2Fsub%2Fshop/repository/commits/abc/merge_requests", gitlab.url());
        let response = client.get(format!("{url}?per_page=2")).header("private-token", "glpat").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-next-page"], "2");
        let page: Vec<Value> = response.json().await.unwrap();
        assert_eq!(page.len(), 2);
        let response =
            client.get(format!("{url}?per_page=2&page=2")).header("private-token", "glpat").send().await.unwrap();
        assert_eq!(response.headers()["x-next-page"], "");
        let single = client
            .get(format!("{}/api/v4/projects/7/merge_requests/2", gitlab.url()))
            .bearer_auth("glpat")
            .send()
            .await
            .unwrap();
        assert_eq!(single.json::<Value>().await.unwrap()["author"]["username"], "bob");
        assert_eq!(client.get(&url).send().await.unwrap().status(), 401, "a token is required");
        gitlab.set_fault(Fault::RateLimitNext(1));
        let limited = client.get(&url).header("private-token", "glpat").send().await.unwrap();
        assert_eq!((limited.status().as_u16(), limited.headers()["retry-after"].to_str().unwrap()), (429, "1"));
    }
}
