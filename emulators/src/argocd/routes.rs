//! The HTTP routes and the transport rules every request passes through (API.md §0–§2, §5).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde_json::{Map, Value, json};

use super::operation;
use super::query::{Fields, Query, Selector};
use super::state::{AppKey, Shared, State as AppState, project_of, set_path};
use super::stream;
use super::time;
use super::wire::{ApiError, INTERNAL, ok, parse_body};

type Shr = State<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/version", get(version))
        .route("/api/v1/session", post(login).delete(logout))
        .route("/api/v1/session/userinfo", get(userinfo))
        .route("/api/v1/settings", get(settings))
        .route("/api/v1/account/can-i/{resource}/{action}/{subresource}", get(can_i))
        .route("/api/v1/applications", get(list).post(create))
        .route("/api/v1/applications/{name}", get(get_app).put(update).delete(delete_app).patch(patch))
        .route("/api/v1/applications/{name}/spec", put(update_spec))
        .route("/api/v1/applications/{name}/sync", post(operation::sync))
        .route("/api/v1/applications/{name}/rollback", post(operation::rollback))
        .route("/api/v1/applications/{name}/operation", delete(operation::terminate))
        .route("/api/v1/applications/{name}/resource-tree", get(resource_tree))
        .route("/api/v1/applications/{name}/managed-resources", get(managed_resources))
        .route("/api/v1/applications/{name}/events", get(events))
        .route("/api/v1/applications/{name}/syncwindows", get(sync_windows))
        .route("/api/v1/applications/{name}/revisions/{revision}/metadata", get(revision_metadata))
        .route("/api/v1/stream/applications", get(stream::watch))
        .route("/api/v1/stream/applications/{name}/resource-tree", get(stream::watch_tree))
        .route("/api/v1/projects", get(projects))
        .route("/api/v1/projects/{name}", get(project))
        .route("/api/v1/clusters", get(clusters))
        .route("/api/v1/repositories", get(repositories))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), transport))
        .with_state(shared)
}

/// Go's `http.Error` body: the text plus a newline, as `text/plain`.
fn plain(status: StatusCode, text: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{text}\n")).into_response()
}

async fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "Not Found")
}

/// Injected faults, then Argo CD's `enforceContentTypes` (which wraps the whole gateway, so
/// it answers before routing and authentication), then grpc-gateway's plain-text 405.
async fn transport(State(shared): Shr, request: Request, next: Next) -> Response {
    let (delay, fail) = {
        let mut st = shared.lock();
        let fail = st.faults.fail_next > 0;
        if fail {
            st.faults.fail_next -= 1;
        }
        (st.faults.delay, fail)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if fail {
        return ApiError::new(INTERNAL, "emulated fault: internal error").into_response();
    }
    let needs_json = matches!(*request.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if needs_json && !content_type.is_some_and(|c| c.eq_ignore_ascii_case("application/json")) {
        return plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Invalid content type");
    }
    let response = next.run(request).await;
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    response
}

/// The bearer value, or else the `argocd.token` cookie (API.md §1.2).
pub(crate) fn token_from(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|t| t.trim().to_string());
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix("argocd.token=").filter(|t| !t.is_empty()).map(String::from))
    })
}

/// The logged-in user; extracting it answers `401` for anonymous callers.
pub(crate) struct Caller(pub String);

impl FromRequestParts<Arc<Shared>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        shared.lock().authenticate(token_from(&parts.headers).as_deref()).map(Caller)
    }
}

async fn version(State(shared): Shr, headers: HeaderMap) -> Response {
    let logged_in = shared.lock().authenticate(token_from(&headers).as_deref()).is_ok();
    let v = &shared.options.version;
    if !logged_in {
        return ok(&json!({"Version": v}));
    }
    ok(&json!({
        "Version": v, "BuildDate": "2026-08-22T22:31:32Z", "GitCommit": "37ee0097cf851bc2dd7665fc081bbce61a7e836e",
        "GitTreeState": "clean", "GoVersion": "go1.24.6", "Compiler": "gc", "Platform": "linux/amd64",
        "KustomizeVersion": "v5.7.0", "HelmVersion": "v3.18.4", "KubectlVersion": "v0.33.1", "JsonnetVersion": "v0.21.0",
    }))
}

async fn login(State(shared): Shr, body: Bytes) -> Result<Response, ApiError> {
    let body = parse_body(&body)?;
    if body.get("token").and_then(Value::as_str).is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::unauthenticated(
            "token-based session creation no longer supported. please upgrade argocd cli to v0.7+",
        ));
    }
    let username = body.get("username").and_then(Value::as_str).unwrap_or("");
    let password = body.get("password").and_then(Value::as_str).unwrap_or("");
    if username.len() > 32 {
        return Err(ApiError::invalid("Username is too long (32 bytes max)"));
    }
    if username.is_empty() || password.is_empty() {
        return Err(ApiError::unauthenticated("no credentials supplied"));
    }
    let mut st = shared.lock();
    if !st.check_password(username, password) {
        return Err(ApiError::unauthenticated("Invalid username or password"));
    }
    let token = st.issue_token(username);
    let cookie = format!("argocd.token={token}; path=/; SameSite=lax; httpOnly");
    let mut response = ok(&json!({"token": token}));
    response.headers_mut().insert(header::SET_COOKIE, cookie.parse().expect("token is header-safe"));
    Ok(response)
}

async fn logout(State(shared): Shr, headers: HeaderMap) -> Response {
    if let Some(token) = token_from(&headers) {
        shared.lock().tokens.remove(&token);
    }
    let mut response = ok(&json!({"token": ""}));
    let cookie = "argocd.token=; path=/; SameSite=lax; httpOnly";
    response.headers_mut().insert(header::SET_COOKIE, header::HeaderValue::from_static(cookie));
    response
}

async fn userinfo(State(shared): Shr, headers: HeaderMap) -> Response {
    match shared.lock().authenticate(token_from(&headers).as_deref()) {
        Ok(user) => ok(&json!({"loggedIn": true, "username": user, "iss": "argocd"})),
        Err(_) => ok(&json!({})),
    }
}

async fn settings(State(shared): Shr, headers: HeaderMap) -> Response {
    let logged_in = shared.lock().authenticate(token_from(&headers).as_deref()).is_ok();
    let mut body = json!({
        "appLabelKey": "app.kubernetes.io/instance",
        "trackingMethod": "annotation",
        "appsInAnyNamespaceEnabled": true,
        "syncWithReplaceAllowed": shared.options.sync_with_replace_allowed,
        "kustomizeVersions": [],
    });
    if logged_in {
        body["controllerNamespace"] = json!(shared.options.namespace);
    }
    ok(&body)
}

async fn can_i(_caller: Caller) -> Response {
    ok(&json!({"value": "yes"}))
}

fn first_repo(app: &Value) -> Option<&str> {
    app.pointer("/spec/source/repoURL").or_else(|| app.pointer("/spec/sources/0/repoURL")).and_then(Value::as_str)
}

/// The list and watch filters shared by both endpoints (API.md §2.1, §3).
pub(crate) struct AppFilter {
    projects: Vec<String>,
    name: Option<String>,
    repo: Option<String>,
    namespace: Option<String>,
    selector: Selector,
}

impl AppFilter {
    pub fn from_query(query: &Query, with_repo: bool) -> Result<Self, ApiError> {
        let selector = match query.get("selector") {
            Some(raw) => {
                Selector::parse(raw).map_err(|e| ApiError::unknown(format!("error parsing the selector: {e}")))?
            }
            None => Selector::default(),
        };
        Ok(Self {
            projects: query.projects().into_iter().map(String::from).collect(),
            name: query.get("name").map(String::from),
            repo: if with_repo { query.get("repo").map(String::from) } else { None },
            namespace: query.get("appNamespace").map(String::from),
            selector,
        })
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn matches(&self, app: &Value) -> bool {
        let str_at = |p: &str| app.pointer(p).and_then(Value::as_str);
        (self.projects.is_empty() || self.projects.iter().any(|p| p == project_of(app)))
            && self.name.as_deref().is_none_or(|n| str_at("/metadata/name") == Some(n))
            && self.repo.as_deref().is_none_or(|r| first_repo(app) == Some(r))
            && self.namespace.as_deref().is_none_or(|ns| str_at("/metadata/namespace") == Some(ns))
            && self.selector.matches(app.pointer("/metadata/labels").and_then(Value::as_object))
    }
}

async fn list(State(shared): Shr, _caller: Caller, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref());
    let filter = AppFilter::from_query(&query, true)?;
    let fields = Fields::for_list(&query);
    let st = shared.lock();
    let mut items: Vec<&Value> = st.apps.values().filter(|a| filter.matches(a)).collect();
    items.sort_by_key(|a| a.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(""));
    let items: Vec<Value> =
        items.into_iter().map(|a| fields.as_ref().map_or_else(|| a.clone(), |f| f.apply(a))).collect();
    Ok(ok(&json!({"metadata": {"resourceVersion": st.rv.to_string()}, "items": items})))
}

/// `appNamespace` and the single allowed project of a per-app request.
pub(crate) fn app_key(st: &AppState, name: &str, query: &Query) -> Result<AppKey, ApiError> {
    let project = query.single_project()?;
    st.lookup(name, query.get("appNamespace"), project)
}

async fn get_app(
    State(shared): Shr,
    _caller: Caller,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref());
    let mut st = shared.lock();
    let key = app_key(&st, &name, &query)?;
    let app = st.apps[&key].clone();
    let Some(refresh) = query.get("refresh") else { return Ok(ok(&app)) };
    // Refresh: annotate, let the "controller" reconcile and drop the annotation, then answer
    // with the object it wrote (API.md §2.2), all before the response.
    let kind = if refresh == "hard" { "hard" } else { "normal" };
    let mut annotated = app;
    set_path(&mut annotated, &["metadata", "annotations", "argocd.argoproj.io/refresh"], json!(kind));
    let mut reconciled = st.commit(&key, annotated);
    if let Some(a) = reconciled.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
        a.remove("argocd.argoproj.io/refresh");
    }
    set_path(&mut reconciled, &["status", "reconciledAt"], json!(time::now_rfc3339()));
    Ok(ok(&st.commit(&key, reconciled)))
}

fn is_dns1123_subdomain(name: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    name.len() <= 253 && name.split('.').all(label_ok)
}

/// Shell-style `*` wildcards as Argo CD's glob match uses them for repos and destinations.
fn glob(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == value;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !value.starts_with(first) || !value[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &value[first.len()..value.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

fn strings(v: Option<&Value>) -> impl Iterator<Item = &str> {
    v.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
}

/// `validateAndNormalizeApp` as far as it needs no Git or cluster access (API.md §6.1).
pub(crate) fn validate_app(st: &AppState, app: &mut Value, validate: bool) -> Result<(), ApiError> {
    let name = app.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    if name.is_empty() {
        return Err(ApiError::unknown("resource name may not be empty"));
    }
    if !is_dns1123_subdomain(&name) {
        return Err(ApiError::invalid(format!(
            "Application.argoproj.io \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 \
             subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an \
             alphanumeric character (e.g. 'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )));
    }
    if !app.get("spec").is_some_and(Value::is_object) {
        set_path(app, &["spec"], json!({}));
    }
    if app.pointer("/spec/project").and_then(Value::as_str).unwrap_or("").is_empty() {
        set_path(app, &["spec", "project"], json!("default"));
    }
    let spec = &app["spec"];
    let sources: Vec<&Value> =
        spec.get("sources").and_then(Value::as_array).map(|s| s.iter().collect()).unwrap_or_default();
    let multi = !sources.is_empty();
    let mut seen = std::collections::HashSet::new();
    for n in sources.iter().filter_map(|s| s.get("name").and_then(Value::as_str)).filter(|n| !n.is_empty()) {
        if !seen.insert(n) {
            return Err(ApiError::unknown(format!("application {name} has duplicate source name: {n}")));
        }
    }
    let project_name = project_of(app);
    let namespace = app.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or(&st.namespace);
    let not_allowed = || {
        ApiError::invalid(format!("app is not allowed in project \"{project_name}\", or the project does not exist"))
    };
    let project = st.projects.get(project_name).ok_or_else(not_allowed)?;
    if namespace != st.namespace && !strings(project.pointer("/spec/sourceNamespaces")).any(|p| glob(p, namespace)) {
        return Err(not_allowed());
    }

    let dest = spec.get("destination").cloned().unwrap_or(json!({}));
    let dest_server = dest.get("server").and_then(Value::as_str).filter(|s| !s.is_empty());
    let dest_name = dest.get("name").and_then(Value::as_str).filter(|s| !s.is_empty());
    let dest_ns = dest.get("namespace").and_then(Value::as_str).unwrap_or("");
    let bad_dest =
        |msg: String| ApiError::invalid(format!("application destination spec for {name} is invalid: {msg}"));
    let server = match (dest_server, dest_name) {
        (Some(s), Some(n)) => {
            return Err(bad_dest(format!("application destination can't have both name and server defined: {n} {s}")));
        }
        (None, None) => return Err(bad_dest("Destination server missing from app spec".into())),
        (Some(s), None) => {
            if !st.clusters.iter().any(|c| c.get("server").and_then(Value::as_str) == Some(s)) {
                return Err(bad_dest(format!("there are no clusters with this URL: {s}")));
            }
            s.to_string()
        }
        (None, Some(n)) => {
            let matching: Vec<&Value> =
                st.clusters.iter().filter(|c| c.get("name").and_then(Value::as_str) == Some(n)).collect();
            match matching.as_slice() {
                [] => return Err(bad_dest(format!("there are no clusters with this name: {n}"))),
                [one] => one.get("server").and_then(Value::as_str).unwrap_or("").to_string(),
                many => return Err(bad_dest(format!("there are {} clusters with the same name: [{n}]", many.len()))),
            }
        }
    };

    let all_sources: Vec<&Value> = if multi { sources.clone() } else { spec.get("source").into_iter().collect() };
    if validate {
        for source in &all_sources {
            let tools: Vec<&str> =
                [("helm", "Helm"), ("kustomize", "Kustomize"), ("directory", "Directory"), ("plugin", "Plugin")]
                    .iter()
                    .filter(|(k, _)| source.get(*k).is_some_and(|v| !v.is_null()))
                    .map(|(_, t)| *t)
                    .collect();
            if tools.len() > 1 {
                return Err(ApiError::unknown(format!("multiple application sources defined: {}", tools.join(","))));
            }
        }
    }

    let mut conditions = Vec::new();
    let has = |s: &Value, k: &str| s.get(k).and_then(Value::as_str).is_some_and(|v| !v.is_empty());
    if let Some(hydrator) = spec.get("sourceHydrator").filter(|h| h.is_object()) {
        if hydrator.pointer("/drySource/repoURL").and_then(Value::as_str).unwrap_or("").is_empty() {
            conditions.push("spec.sourceHydrator.drySource.repoURL is required".to_string());
        }
        if hydrator.pointer("/syncSource/targetBranch").and_then(Value::as_str).unwrap_or("").is_empty() {
            conditions.push("spec.sourceHydrator.syncSource.targetBranch is required".to_string());
        }
        if hydrator
            .get("hydrateTo")
            .is_some_and(|h| h.get("targetBranch").and_then(Value::as_str).unwrap_or("").is_empty())
        {
            conditions.push("spec.sourceHydrator.hydrateTo.targetBranch is required if specified".to_string());
        }
    } else if multi {
        for s in &sources {
            if !has(s, "repoURL") || !(has(s, "path") || has(s, "chart") || has(s, "ref")) {
                conditions.push(
                    "spec.source.repoURL and either source.path, source.chart, or source.ref are required".into(),
                );
            } else if has(s, "chart") && !has(s, "targetRevision") {
                conditions.push("spec.source.targetRevision is required if the manifest source is a helm chart".into());
            }
        }
    } else {
        match spec.get("source") {
            Some(s) if has(s, "repoURL") && (has(s, "path") || has(s, "chart")) => {
                if has(s, "chart") && !has(s, "targetRevision") {
                    conditions
                        .push("spec.source.targetRevision is required if the manifest source is a helm chart".into());
                }
            }
            _ => conditions
                .push("spec.source.repoURL and either spec.source.path or spec.source.chart are required".into()),
        }
    }
    for source in &all_sources {
        if let Some(repo) = source.get("repoURL").and_then(Value::as_str).filter(|r| !r.is_empty())
            && !strings(project.pointer("/spec/sourceRepos")).any(|p| glob(p, repo))
        {
            conditions.push(format!("application repo {repo} is not permitted in project '{project_name}'"));
        }
    }
    let dest_ok = project.pointer("/spec/destinations").and_then(Value::as_array).into_iter().flatten().any(|d| {
        let server_ok = match (d.get("server").and_then(Value::as_str), d.get("name").and_then(Value::as_str)) {
            (Some(p), _) if !p.is_empty() => glob(p, &server),
            (_, Some(p)) if !p.is_empty() => dest_name.is_some_and(|n| glob(p, n)),
            _ => false,
        };
        server_ok && glob(d.get("namespace").and_then(Value::as_str).unwrap_or(""), dest_ns)
    });
    if !dest_ok {
        conditions.push(format!(
            "application destination server '{server}' and namespace '{dest_ns}' do not match any of the allowed destinations in project '{project_name}'"
        ));
    }
    if !conditions.is_empty() {
        let joined: Vec<String> = conditions.iter().map(|c| format!("InvalidSpecError: {c}")).collect();
        return Err(ApiError::invalid(format!("application spec for {name} is invalid: {}", joined.join(";"))));
    }
    Ok(())
}

/// The parts of an Application that create/update take from the request.
const USER_FIELDS: [&[&str]; 4] =
    [&["spec"], &["metadata", "labels"], &["metadata", "annotations"], &["metadata", "finalizers"]];

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(*k)).filter(|v| !v.is_null())
}

fn copy_user_fields(from: &Value, onto: &mut Value) -> bool {
    let mut spec_changed = false;
    for path in USER_FIELDS {
        let new = at(from, path).cloned();
        if path == ["spec"] {
            spec_changed = at(onto, path) != new.as_ref();
        }
        match new {
            Some(v) => set_path(onto, path, v),
            None => {
                if let Some(parent) =
                    onto.pointer_mut(&format!("/{}", path[..path.len() - 1].join("/"))).and_then(Value::as_object_mut)
                {
                    parent.remove(path[path.len() - 1]);
                }
            }
        }
    }
    spec_changed
}

fn bump_generation(app: &mut Value) {
    let generation = app.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
    set_path(app, &["metadata", "generation"], json!(generation + 1));
}

async fn create(
    State(shared): Shr,
    _caller: Caller,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref());
    let upsert = query.bool("upsert")?.unwrap_or(false);
    let validate = query.bool("validate")?.unwrap_or(true);
    let mut app = parse_body(&body)?;
    let mut st = shared.lock();
    validate_app(&st, &mut app, validate)?;
    let name = app.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let namespace = app.pointer("/metadata/namespace").and_then(Value::as_str).map(String::from);
    let key = st.key_in(&name, namespace.as_deref());
    if let Some(existing) = st.apps.get(&key).cloned() {
        if USER_FIELDS.iter().all(|p| at(&existing, p) == at(&app, p)) {
            return Ok(ok(&existing));
        }
        if !upsert {
            return Err(ApiError::invalid("existing application spec is different, use upsert flag to force update"));
        }
        let mut updated = existing;
        if copy_user_fields(&app, &mut updated) {
            bump_generation(&mut updated);
        }
        return Ok(ok(&st.commit(&key, updated)));
    }
    let mut created = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {}, "spec": {}});
    copy_user_fields(&app, &mut created);
    let uid = st.next_uid();
    let metadata = json!({"name": name, "namespace": key.0, "uid": uid, "generation": 1, "creationTimestamp": time::now_rfc3339()});
    for (k, v) in metadata.as_object().into_iter().flatten() {
        set_path(&mut created, &["metadata", k], v.clone());
    }
    let compared_to = json!({"source": created.pointer("/spec/source").cloned().unwrap_or(json!({"repoURL": ""})), "destination": created["spec"]["destination"]});
    set_path(
        &mut created,
        &["status"],
        json!({
            "sync": {"status": "OutOfSync", "comparedTo": compared_to},
            "health": {"status": "Missing"},
            "summary": {},
            "reconciledAt": time::now_rfc3339(),
        }),
    );
    Ok(ok(&st.commit(&key, created)))
}

async fn update(
    State(shared): Shr,
    _caller: Caller,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref());
    let validate = query.bool("validate")?.unwrap_or(true);
    let mut app = parse_body(&body)?;
    set_path(&mut app, &["metadata", "name"], json!(name));
    let mut st = shared.lock();
    let namespace =
        app.pointer("/metadata/namespace").and_then(Value::as_str).filter(|n| !n.is_empty()).map(String::from);
    let key = st.lookup(&name, namespace.as_deref(), query.single_project()?)?;
    validate_app(&st, &mut app, validate)?;
    let mut updated = st.apps[&key].clone();
    if copy_user_fields(&app, &mut updated) {
        bump_generation(&mut updated);
    }
    Ok(ok(&st.commit(&key, updated)))
}

async fn update_spec(
    State(shared): Shr,
    _caller: Caller,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref());
    let validate = query.bool("validate")?.unwrap_or(true);
    let spec = parse_body(&body)?;
    let mut st = shared.lock();
    let key = app_key(&st, &name, &query)?;
    let mut updated = st.apps[&key].clone();
    set_path(&mut updated, &["spec"], spec);
    validate_app(&st, &mut updated, validate)?;
    bump_generation(&mut updated);
    let committed = st.commit(&key, updated);
    Ok(ok(&committed["spec"]))
}

/// RFC 7386 merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().expect("made an object above");
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// RFC 6902 JSON patch: `add`, `remove`, `replace` and `test` over object keys and array
/// indexes (`-` appends); `move` and `copy` are refused.
fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    for op in ops.as_array().ok_or("json patch must be an array")? {
        let kind = op.get("op").and_then(Value::as_str).ok_or("operation without op")?;
        let path = op.get("path").and_then(Value::as_str).ok_or("operation without path")?;
        let (parent_ptr, last) = path.rsplit_once('/').ok_or_else(|| format!("invalid path {path}"))?;
        let last = last.replace("~1", "/").replace("~0", "~");
        if kind == "test" {
            if target.pointer(path) != op.get("value") {
                return Err(format!("testing value {path} failed"));
            }
            continue;
        }
        let parent = target.pointer_mut(parent_ptr).ok_or_else(|| format!("missing path {parent_ptr}"))?;
        let value = op.get("value").cloned();
        match (kind, parent) {
            ("add" | "replace", Value::Object(m)) => {
                m.insert(last, value.ok_or("operation without value")?);
            }
            ("remove", Value::Object(m)) => {
                m.remove(&last).ok_or_else(|| format!("missing path {path}"))?;
            }
            (kind @ ("add" | "replace" | "remove"), Value::Array(a)) => {
                let index =
                    if last == "-" { a.len() } else { last.parse().map_err(|_| format!("invalid index {last}"))? };
                match kind {
                    "add" if index <= a.len() => a.insert(index, value.ok_or("operation without value")?),
                    "replace" if index < a.len() => a[index] = value.ok_or("operation without value")?,
                    "remove" if index < a.len() => drop(a.remove(index)),
                    _ => return Err(format!("index out of range {path}")),
                }
            }
            (other, _) => return Err(format!("unsupported json patch operation {other} at {path}")),
        }
    }
    Ok(())
}

async fn patch(
    State(shared): Shr,
    _caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_body(&body)?;
    let text = body.get("patch").and_then(Value::as_str).unwrap_or("");
    let patch_type = body.get("patchType").and_then(Value::as_str).unwrap_or("");
    let namespace = body.get("appNamespace").and_then(Value::as_str).filter(|n| !n.is_empty());
    let project = body.get("project").and_then(Value::as_str).filter(|p| !p.is_empty());
    let mut st = shared.lock();
    let key = st.lookup(&name, namespace, project)?;
    let mut app = st.apps[&key].clone();
    let patch: Value = serde_json::from_str(text).map_err(|e| ApiError::invalid(e.to_string()))?;
    match patch_type {
        "merge" => merge_patch(&mut app, &patch),
        "json" => json_patch(&mut app, &patch).map_err(ApiError::invalid)?,
        other => return Err(ApiError::invalid(format!("Patch type '{other}' is not supported"))),
    }
    let mut checked = app.clone();
    validate_app(&st, &mut checked, true)?;
    let mut updated = st.apps[&key].clone();
    if copy_user_fields(&app, &mut updated) {
        bump_generation(&mut updated);
    }
    Ok(ok(&st.commit(&key, updated)))
}

const RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";

async fn delete_app(
    State(shared): Shr,
    _caller: Caller,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref());
    let cascade = query.bool("cascade")?.unwrap_or(true);
    let policy = query.get("propagationPolicy").unwrap_or("");
    if !cascade && !policy.is_empty() {
        return Err(ApiError::invalid("cannot set propagation policy when cascading is disabled"));
    }
    let finalizer = match policy.to_ascii_lowercase().as_str() {
        "" => RESOURCES_FINALIZER.to_string(),
        p @ ("foreground" | "background") => format!("{RESOURCES_FINALIZER}/{p}"),
        _ => return Err(ApiError::invalid(format!("invalid propagation policy: {policy}"))),
    };
    let mut st = shared.lock();
    let key = app_key(&st, &name, &query)?;
    let mut app = st.apps[&key].clone();
    let mut finalizers: Vec<String> = strings(app.pointer("/metadata/finalizers")).map(String::from).collect();
    let cascaded = finalizers.iter().any(|f| f.starts_with(RESOURCES_FINALIZER));
    if cascade && !cascaded {
        finalizers.push(finalizer);
    } else if !cascade {
        finalizers.retain(|f| !f.starts_with(RESOURCES_FINALIZER));
    }
    if finalizers.is_empty() {
        st.remove(&key);
        return Ok(ok(&json!({})));
    }
    if app.pointer("/metadata/deletionTimestamp").is_none() {
        set_path(&mut app, &["metadata", "finalizers"], json!(finalizers));
        let mut app = st.commit(&key, app);
        set_path(&mut app, &["metadata", "deletionTimestamp"], json!(time::now_rfc3339()));
        st.commit(&key, app);
    }
    if finalizers.iter().any(|f| f.starts_with(RESOURCES_FINALIZER)) {
        // The controller deletes the resources, then removes its finalizer; with no other
        // finalizer left, the app disappears.
        let (shared, delay) = (shared.clone(), shared.options.delete_duration);
        let only_ours = finalizers.iter().all(|f| f.starts_with(RESOURCES_FINALIZER));
        shared.runtime.clone().spawn(async move {
            tokio::time::sleep(delay).await;
            let mut st = shared.lock();
            let Some(mut app) = st.apps.get(&key).cloned() else { return };
            if only_ours {
                st.remove(&key);
            } else {
                let kept: Vec<String> = strings(app.pointer("/metadata/finalizers"))
                    .filter(|f| !f.starts_with(RESOURCES_FINALIZER))
                    .map(String::from)
                    .collect();
                set_path(&mut app, &["metadata", "finalizers"], json!(kept));
                st.commit(&key, app);
            }
        });
    }
    Ok(ok(&json!({})))
}

fn put_if(map: &mut Map<String, Value>, key: &str, value: Option<&Value>) {
    if let Some(v) = value.filter(|v| !v.is_null() && v.as_str() != Some("")) {
        map.insert(key.into(), v.clone());
    }
}

/// A tree derived from `status.resources` when the test set none: one node per resource.
fn derived_tree(app: &Value) -> Value {
    let app_uid = app.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
    let nodes: Vec<Value> = app
        .pointer("/status/resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, r)| {
            let mut node = Map::new();
            for k in ["group", "version", "kind", "namespace", "name"] {
                put_if(&mut node, k, r.get(k));
            }
            let uid = format!("{}-{i:04}", app_uid.get(..app_uid.len().saturating_sub(5)).unwrap_or(app_uid));
            node.insert("uid".into(), json!(uid));
            node.insert("resourceVersion".into(), json!("1"));
            put_if(&mut node, "health", r.get("health"));
            Value::Object(node)
        })
        .collect();
    if nodes.is_empty() { json!({}) } else { json!({"nodes": nodes}) }
}

/// The tree a test set for the app, else one derived from its `status.resources`.
pub(crate) fn tree_of(st: &AppState, key: &AppKey) -> Value {
    st.trees.get(&key.1).cloned().unwrap_or_else(|| derived_tree(&st.apps[key]))
}

async fn resource_tree(
    State(shared): Shr,
    _caller: Caller,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref());
    let st = shared.lock();
    let key = app_key(&st, &name, &query)?;
    Ok(ok(&tree_of(&st, &key)))
}

fn derived_diffs(app: &Value) -> Vec<Value> {
    let resources = app.pointer("/status/resources").and_then(Value::as_array).cloned().unwrap_or_default();
    resources
        .iter()
        .filter(|r| !r.get("hook").and_then(Value::as_bool).unwrap_or(false))
        .map(|r| {
            let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
            let group = s("group");
            let api_version =
                if group.is_empty() { s("version").to_string() } else { format!("{group}/{}", s("version")) };
            let manifest = json!({
                "apiVersion": api_version, "kind": s("kind"),
                "metadata": {"name": s("name"), "namespace": s("namespace")},
            })
            .to_string();
            let mut diff = Map::new();
            for k in ["group", "kind", "namespace", "name"] {
                put_if(&mut diff, k, r.get(k));
            }
            for k in ["liveState", "targetState", "normalizedLiveState", "predictedLiveState"] {
                diff.insert(k.into(), json!(manifest));
            }
            if s("status") == "OutOfSync" {
                diff.insert("modified".into(), json!(true));
            }
            Value::Object(diff)
        })
        .collect()
}

async fn managed_resources(
    State(shared): Shr,
    _caller: Caller,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref());
    let st = shared.lock();
    let key = app_key(&st, &name, &query)?;
    let items = st.managed.get(&name).cloned().unwrap_or_else(|| derived_diffs(&st.apps[&key]));
    let items: Vec<Value> = items
        .into_iter()
        .filter(|d| {
            ["namespace", "name", "group", "kind"]
                .iter()
                .all(|k| query.get(k).is_none_or(|want| d.get(*k).and_then(Value::as_str).unwrap_or("") == want))
        })
        .collect();
    Ok(ok(&if items.is_empty() { json!({}) } else { json!({"items": items}) }))
}

/// `GET .../events`: the app's own events, or those of one node of its tree (API.md §5.1).
async fn events(
    State(shared): Shr,
    _caller: Caller,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref());
    let st = shared.lock();
    let key = app_key(&st, &name, &query)?;
    let events = st.events_of.get(&name).cloned().unwrap_or_default();
    let (resource_name, resource_uid) = (query.get("resourceName"), query.get("resourceUID"));
    if resource_name.is_none() && resource_uid.is_none() {
        let own: Vec<Value> = events
            .into_iter()
            .filter(|e| e.pointer("/involvedObject/kind").and_then(Value::as_str) == Some("Application"))
            .collect();
        return Ok(ok(&json!({"metadata": {}, "items": own})));
    }
    let tree = tree_of(&st, &key);
    let wanted = [("namespace", query.get("resourceNamespace")), ("name", resource_name), ("uid", resource_uid)];
    let matches_node =
        |n: &Value| wanted.iter().all(|(k, v)| n.get(*k).and_then(Value::as_str).unwrap_or("") == v.unwrap_or(""));
    if !tree.get("nodes").and_then(Value::as_array).into_iter().flatten().any(matches_node) {
        let shown = resource_name.or(resource_uid).unwrap_or("");
        return Err(ApiError::invalid(format!("{shown} not found as part of application {name}")));
    }
    let items: Vec<Value> = events
        .into_iter()
        .filter(|e| {
            let involved = |k: &str| e.pointer(&format!("/involvedObject/{k}")).and_then(Value::as_str);
            resource_name.is_none_or(|n| involved("name") == Some(n))
                && resource_uid.is_none_or(|u| involved("uid") == Some(u))
        })
        .collect();
    Ok(ok(&json!({"metadata": {}, "items": items})))
}

/// `GET .../syncwindows`: sync windows are not emulated, so syncing is always allowed.
async fn sync_windows(
    State(shared): Shr,
    _caller: Caller,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref());
    app_key(&shared.lock(), &name, &query)?;
    Ok(ok(&json!({"canSync": true})))
}

fn is_commit_sha(revision: &str) -> bool {
    (7..=40).contains(&revision.len()) && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `GET .../revisions/{revision}/metadata`: what the test set with
/// `Handle::set_revision_metadata`, else a synthetic commit; non-SHAs are refused like the
/// repo server does (code 2, API.md §5.1).
async fn revision_metadata(
    State(shared): Shr,
    _caller: Caller,
    Path((name, revision)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref());
    let st = shared.lock();
    app_key(&st, &name, &query)?;
    if let Some(metadata) = st.revision_metadata.get(&revision) {
        return Ok(ok(metadata));
    }
    if !is_commit_sha(&revision) {
        return Err(ApiError::unknown(format!("revision {revision} must be resolved")));
    }
    Ok(ok(&json!({
        "author": "Emulated Author <author@example.com>",
        "date": "2024-03-04T22:00:06Z",
        "message": format!("Commit {revision}"),
    })))
}

async fn projects(State(shared): Shr, _caller: Caller) -> Response {
    let items: Vec<Value> = shared.lock().projects.values().cloned().collect();
    ok(&json!({"metadata": {}, "items": items}))
}

async fn project(State(shared): Shr, _caller: Caller, Path(name): Path<String>) -> Result<Response, ApiError> {
    let st = shared.lock();
    let project = st
        .projects
        .get(&name)
        .ok_or_else(|| ApiError::new(5, format!("appprojects.argoproj.io \"{name}\" not found")))?;
    Ok(ok(project))
}

async fn clusters(State(shared): Shr, _caller: Caller, RawQuery(raw): RawQuery) -> Response {
    let query = Query::parse(raw.as_deref());
    let st = shared.lock();
    let (by_server, by_name) = match (query.get("id.type"), query.get("id.value")) {
        (Some("name"), Some(v)) => (None, Some(v)),
        (_, Some(v)) => (Some(v), None),
        _ => (query.get("server"), query.get("name")),
    };
    let items: Vec<Value> = st
        .clusters
        .iter()
        .filter(|c| by_server.is_none_or(|s| c.get("server").and_then(Value::as_str) == Some(s)))
        .filter(|c| by_name.is_none_or(|n| c.get("name").and_then(Value::as_str) == Some(n)))
        .cloned()
        .collect();
    ok(&json!({"metadata": {}, "items": items}))
}

async fn repositories(State(shared): Shr, _caller: Caller, RawQuery(raw): RawQuery) -> Response {
    let query = Query::parse(raw.as_deref());
    let st = shared.lock();
    let mut items: Vec<Value> = st
        .repositories
        .iter()
        .filter(|r| query.get("repo").is_none_or(|want| r.get("repo").and_then(Value::as_str) == Some(want)))
        .cloned()
        .collect();
    let sort_key = |r: &Value| {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        format!("{}/{}", s("project"), s("repo"))
    };
    items.sort_by_key(sort_key);
    ok(&json!({"metadata": {}, "items": items}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_and_globs() {
        assert!(is_dns1123_subdomain("velero-test.a1"));
        assert!(!is_dns1123_subdomain("Velero"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(glob("*", "anything"));
        assert!(glob("https://github.com/foo/*", "https://github.com/foo/bar.git"));
        assert!(!glob("https://github.com/foo/*", "https://gitlab.com/foo/bar"));
        assert!(glob("a*c*e", "abcde"));
    }

    #[test]
    fn patches() {
        let mut v = json!({"spec": {"a": 1, "b": [1, 2]}});
        merge_patch(&mut v, &json!({"spec": {"a": null, "c": 3}}));
        assert_eq!(v, json!({"spec": {"b": [1, 2], "c": 3}}));
        json_patch(
            &mut v,
            &json!([{"op": "add", "path": "/spec/b/-", "value": 3}, {"op": "replace", "path": "/spec/c", "value": 4}]),
        )
        .unwrap();
        assert_eq!(v, json!({"spec": {"b": [1, 2, 3], "c": 4}}));
        assert!(json_patch(&mut v, &json!([{"op": "move", "from": "/spec/c", "path": "/spec/d"}])).is_err());
    }
}
