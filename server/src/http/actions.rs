//! Actions on Argo CD over REST: sync, refresh, terminate, rollback, create, update,
//! delete, and executing a stored rollback plan; and the audit log that records every
//! attempt.
//!
//! Actions are refused (403) unless `actions_enabled` is set. Every attempt is audited,
//! whether Landfall refused it (`refused`: nothing was sent), Argo CD refused it or could
//! not be reached (`failed`), or it was done (`ok`). Argo CD's answers are passed on
//! (`shared/fixtures/argocd/API.md` §4, §2.3–2.5): a refusal for the application's state
//! (gRPC FailedPrecondition, "another operation is already in progress", automated sync,
//! a sync window) is 409; any other 400 stays 400; when Argo CD denies Landfall's own
//! account (401, 403), does not know the path (404), fails (5xx) or cannot be reached,
//! the answer is 502, because the fault is not in the request.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::api::{ErrorBody, bounded};
use super::error::ApiError;
use super::questions::now_ms;
use crate::argocd::client::{ArgoError, Client, Refresh};
use crate::argocd::wire::Application;
use crate::ledger::audit::{AUDIT_LIMIT, AuditEntry, AuditRecord};
use crate::ledger::presence::ApplicationRef;
use crate::reports::FieldError;

/// Who acts, until Landfall has users.
const ACTOR: &str = "anonymous";

/// How many times a rollback is retried while Argo CD still sees the automated sync
/// Landfall has just turned off.
const ROLLBACK_RETRIES: u32 = 5;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/applications/{instance}", post(create))
        .route("/api/v1/applications/{instance}/{name}", put(update).delete(delete))
        .route("/api/v1/applications/{instance}/{name}/sync", post(sync))
        .route("/api/v1/applications/{instance}/{name}/refresh", post(refresh))
        .route("/api/v1/applications/{instance}/{name}/terminate", post(terminate))
        .route("/api/v1/applications/{instance}/{name}/rollback", post(rollback))
        .route("/api/v1/rollback-plans/{id}/execute", post(execute_plan))
        .route("/api/v1/audit", get(audit))
}

/// What an action did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionResponse {
    /// What was done, in words.
    pub message: String,
    /// Argo CD's answer: the Application after the action, when it sends one.
    pub application: Option<Value>,
}

/// One attempt, written to the audit log when it ends.
struct Attempt {
    action: &'static str,
    instance: Option<String>,
    namespace: Option<String>,
    application: Option<String>,
    parameters: Value,
}

impl Attempt {
    fn new(action: &'static str, instance: &str, application: Option<&str>) -> Attempt {
        Attempt {
            action,
            instance: Some(instance.to_string()),
            namespace: None,
            application: application.map(str::to_string),
            parameters: json!({}),
        }
    }

    /// Writes the entry. A ledger that cannot take it is logged, not reported: the
    /// action has already happened (or not) in Argo CD either way.
    async fn record(&self, state: &AppState, outcome: &'static str, message: &str) {
        let record = AuditRecord {
            at: now_ms(),
            actor: ACTOR.into(),
            action: self.action.into(),
            instance: self.instance.clone(),
            namespace: self.namespace.clone(),
            application: self.application.clone(),
            parameters: self.parameters.clone(),
            outcome,
            message: message.to_string(),
        };
        if let Err(error) = state.ledger.record_audit(&record).await {
            tracing::error!(%error, action = self.action, outcome, "cannot write the audit log");
        }
    }

    /// Records how the attempt ended and passes the result on.
    async fn finish(
        self,
        state: &AppState,
        result: Result<ActionResponse, ApiError>,
    ) -> Result<Json<ActionResponse>, ApiError> {
        match &result {
            Ok(response) => self.record(state, "ok", &response.message).await,
            Err(error) => self.record(state, outcome_of(error), &error.to_string()).await,
        }
        result.map(Json)
    }
}

/// `failed` when Argo CD (or the ledger) did not do what was asked; `refused` when
/// Landfall turned the request down before sending anything.
fn outcome_of(error: &ApiError) -> &'static str {
    match error {
        ApiError::Upstream { .. } | ApiError::Ledger(_) => "failed",
        _ => "refused",
    }
}

/// 403 while actions are off.
fn allowed(state: &AppState, what: &str) -> Result<(), ApiError> {
    if state.actions_enabled {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "actions are disabled: set actions_enabled = true in the configuration to allow {what}"
    )))
}

/// Argo CD's refusal or failure, with the status a Landfall client should see.
fn upstream(error: ArgoError) -> ApiError {
    let ArgoError::Api { status, code, message } = error else {
        return ApiError::Upstream { status: StatusCode::BAD_GATEWAY, message: error.to_string() };
    };
    let state_conflict = code == Some(9)
        || ["already in progress", "auto-sync", "Automatic Sync Policy", "sync window", "is deleting"]
            .iter()
            .any(|phrase| message.contains(phrase));
    let (mapped, hint) = match status {
        400 | 403 | 409 if state_conflict => (StatusCode::CONFLICT, ""),
        409 => (StatusCode::CONFLICT, ""),
        400 => (StatusCode::BAD_REQUEST, ""),
        401 | 403 => (
            StatusCode::BAD_GATEWAY,
            "; Landfall's Argo CD account may lack the permission, or the application no longer exists",
        ),
        408 | 504 => (StatusCode::GATEWAY_TIMEOUT, ""),
        _ => (StatusCode::BAD_GATEWAY, ""),
    };
    ApiError::Upstream { status: mapped, message: format!("Argo CD answered {status}: {message}{hint}") }
}

/// An application's instance client and namespace, once both are known to exist.
struct Target {
    client: Arc<Client>,
    namespace: String,
}

pub(super) fn client(state: &AppState, instance: &str) -> Result<Arc<Client>, ApiError> {
    state.instances.get(instance).ok_or_else(|| {
        let names = state.instances.names();
        let known = if names.is_empty() { "none".to_string() } else { names.join(", ") };
        ApiError::NotFound(format!("Argo CD instance `{instance}` is not configured; configured instances: {known}"))
    })
}

/// The application's namespace: the one given, else the ledger's. One given that the
/// ledger does not know yet (created moments ago) is checked with Argo CD.
async fn resolve(state: &AppState, instance: &str, name: &str, namespace: Option<String>) -> Result<Target, ApiError> {
    let client = client(state, instance)?;
    let known = state.ledger.application_namespaces(instance, name).await?;
    let namespace = match namespace.filter(|ns| !ns.trim().is_empty()) {
        Some(namespace) if known.contains(&namespace) => namespace,
        Some(namespace) => match client.application(name, &namespace, None).await {
            Ok(_) => namespace,
            Err(ArgoError::Api { status: 403 | 404, .. }) => {
                return Err(ApiError::NotFound(format!(
                    "application `{namespace}/{name}` is not in Argo CD instance `{instance}`"
                )));
            }
            Err(error) => return Err(upstream(error)),
        },
        None => match known.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(ApiError::NotFound(format!(
                    "application `{name}` of Argo CD instance `{instance}` is not in the ledger; if it was created \
                     moments ago, name its namespace with ?namespace="
                )));
            }
            several => {
                return Err(ApiError::BadParameter {
                    field: "namespace",
                    message: format!("is required: `{name}` exists in namespaces {}", several.join(", ")),
                });
            }
        },
    };
    Ok(Target { client, namespace })
}

/// A JSON body, or the defaults when there is none.
fn body<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => {
            ApiError::Invalid(FieldError { field: "body".into(), message: format!("does not fit: {error}") })
        }
        _ => ApiError::BadRequest(format!("the body is not valid JSON: {error}")),
    })
}

fn app_path(path: Result<Path<(String, String)>, PathRejection>) -> Result<(String, String), ApiError> {
    path.map(|Path(pair)| pair).map_err(|r| ApiError::BadRequest(r.body_text()))
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|r| ApiError::BadRequest(format!("{}; see /api/v1/openapi.json for the parameters", r.body_text())))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct NamespaceQuery {
    /// The Application's namespace; default: the one the ledger knows for this name.
    namespace: Option<String>,
}

/// `POST …/sync`: what to sync and how (Argo CD's `ApplicationSyncRequest`, API.md §4.1).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SyncRequest {
    /// Branch, tag, commit or chart version; default: the spec's `targetRevision`.
    pub revision: Option<String>,
    /// A multi-source application's revisions, one per source in order.
    pub revisions: Vec<String>,
    /// Delete resources no longer in Git.
    pub prune: bool,
    pub dry_run: bool,
    /// Apply the manifests without running hooks (Argo CD's `apply` strategy, not `hook`).
    pub apply_only: bool,
    /// Delete and re-create resources that cannot be patched.
    pub force: bool,
    /// Sync only these resources.
    pub resources: Vec<SyncResource>,
    /// Replace the application's sync options for this sync, e.g. `CreateNamespace=true`.
    pub sync_options: Option<Vec<String>>,
    /// Override the application's retry policy.
    pub retry: Option<RetryRequest>,
}

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncResource {
    #[serde(default)]
    pub group: String,
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// Attempts; a negative number retries without end.
    pub limit: i64,
    #[serde(default)]
    pub backoff: Option<Backoff>,
}

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// A Go duration such as `5s`.
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub factor: Option<i64>,
    /// A Go duration such as `3m`.
    #[serde(default)]
    pub max_duration: Option<String>,
}

/// A Go duration: numbers each followed by a unit, such as `5s`, `1m30s` or `1.5h`.
fn is_go_duration(text: &str) -> bool {
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) = ["ns", "us", "µs", "ms", "s", "m", "h"].iter().find(|u| rest.starts_with(**u)) else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

impl SyncRequest {
    /// Argo CD's `ApplicationSyncRequest` for this request.
    pub fn to_argo(&self) -> Result<Value, ApiError> {
        let bad = |field: &'static str, message: String| ApiError::BadParameter { field, message };
        let mut request = json!({
            "prune": self.prune,
            "dryRun": self.dry_run,
            "strategy": if self.apply_only {
                json!({"apply": {"force": self.force}})
            } else {
                json!({"hook": {"force": self.force}})
            },
        });
        match (self.revision.as_deref().filter(|r| !r.is_empty()), self.revisions.is_empty()) {
            (Some(_), false) => {
                return Err(bad(
                    "revisions",
                    "cannot be given with `revision`: use `revision` for a single-source application, `revisions` \
                     for a multi-source one"
                        .into(),
                ));
            }
            (Some(revision), true) => request["revision"] = json!(revision),
            (None, false) => {
                request["revisions"] = json!(self.revisions);
                request["sourcePositions"] = json!((1..=self.revisions.len() as i64).collect::<Vec<_>>());
            }
            (None, true) => {}
        }
        if !self.resources.is_empty() {
            if let Some(r) = self.resources.iter().find(|r| r.kind.is_empty() || r.name.is_empty()) {
                return Err(bad("resources", format!("has {r:?}; each resource needs a `kind` and a `name`")));
            }
            request["resources"] = json!(self.resources);
        }
        if let Some(options) = &self.sync_options {
            if let Some(option) = options.iter().find(|o| !o.contains('=')) {
                return Err(bad(
                    "sync_options",
                    format!("has `{option}`; accepted: Key=value options such as CreateNamespace=true"),
                ));
            }
            request["syncOptions"] = json!({ "items": options });
        }
        if let Some(retry) = &self.retry {
            let mut strategy = json!({ "limit": retry.limit });
            if let Some(backoff) = &retry.backoff {
                for (field, value) in [
                    ("retry.backoff.duration", &backoff.duration),
                    ("retry.backoff.max_duration", &backoff.max_duration),
                ] {
                    if let Some(value) = value.as_deref().filter(|v| !is_go_duration(v)) {
                        return Err(bad(field, format!("is `{value}`; accepted: a duration such as 5s, 3m or 1h30m")));
                    }
                }
                let mut out = serde_json::Map::new();
                if let Some(duration) = &backoff.duration {
                    out.insert("duration".into(), json!(duration));
                }
                if let Some(factor) = backoff.factor {
                    out.insert("factor".into(), json!(factor));
                }
                if let Some(max) = &backoff.max_duration {
                    out.insert("maxDuration".into(), json!(max));
                }
                strategy["backoff"] = Value::Object(out);
            }
            request["retryStrategy"] = strategy;
        }
        Ok(request)
    }
}

/// Starts a sync of an application (API.md §4.1).
#[utoipa::path(
    post,
    path = "/api/v1/applications/{instance}/{name}/sync",
    params(
        ("instance" = String, Path, description = "Argo CD instance, as configured"),
        ("name" = String, Path, description = "Application name"),
        NamespaceQuery,
    ),
    request_body = SyncRequest,
    responses(
        (status = 200, description = "The sync started; Argo CD's Application", body = ActionResponse),
        (status = 400, description = "A malformed request, or one Argo CD rejected", body = ErrorBody),
        (status = 403, description = "Actions are disabled", body = ErrorBody),
        (status = 404, description = "Unknown instance or application", body = ErrorBody),
        (status = 409, description = "Another operation runs, automated sync forbids the revision, or a sync window blocks it", body = ErrorBody),
        (status = 502, description = "Argo CD failed, denied Landfall's account or could not be reached", body = ErrorBody),
    )
)]
async fn sync(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    namespace: Result<Query<NamespaceQuery>, QueryRejection>,
    bytes: Bytes,
) -> Result<Json<ActionResponse>, ApiError> {
    let (instance, name) = app_path(path)?;
    let mut attempt = Attempt::new("sync", &instance, Some(&name));
    let result = async {
        let request = body::<SyncRequest>(&bytes);
        if let Ok(request) = &request {
            attempt.parameters = json!(request);
        }
        allowed(&state, "syncs")?;
        let request = request?;
        let argo_request = request.to_argo()?;
        let target = resolve(&state, &instance, &name, query(namespace)?.namespace).await?;
        attempt.namespace = Some(target.namespace.clone());
        let app = target.client.sync(&name, &target.namespace, &argo_request).await.map_err(upstream)?;
        let revision = request.revision.map(|r| format!(" to {r}")).unwrap_or_default();
        let dry = if request.dry_run { " (dry run)" } else { "" };
        Ok(ActionResponse { message: format!("sync of {name}{revision} started{dry}"), application: Some(app) })
    }
    .await;
    attempt.finish(&state, result).await
}

/// `POST …/refresh`.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RefreshRequest {
    /// Also drop Argo CD's cache of rendered manifests.
    pub hard: bool,
}

/// Makes Argo CD compare the application with Git now, and answers with the result
/// (API.md §2.2).
#[utoipa::path(
    post,
    path = "/api/v1/applications/{instance}/{name}/refresh",
    params(
        ("instance" = String, Path, description = "Argo CD instance, as configured"),
        ("name" = String, Path, description = "Application name"),
        NamespaceQuery,
    ),
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "The refreshed Application", body = ActionResponse),
        (status = 403, description = "Actions are disabled", body = ErrorBody),
        (status = 404, description = "Unknown instance or application", body = ErrorBody),
        (status = 502, description = "Argo CD failed, denied Landfall's account or could not be reached", body = ErrorBody),
    )
)]
async fn refresh(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    namespace: Result<Query<NamespaceQuery>, QueryRejection>,
    bytes: Bytes,
) -> Result<Json<ActionResponse>, ApiError> {
    let (instance, name) = app_path(path)?;
    let mut attempt = Attempt::new("refresh", &instance, Some(&name));
    let result = async {
        let request = body::<RefreshRequest>(&bytes);
        if let Ok(request) = &request {
            attempt.parameters = json!(request);
        }
        allowed(&state, "refreshes")?;
        let request = request?;
        let target = resolve(&state, &instance, &name, query(namespace)?.namespace).await?;
        attempt.namespace = Some(target.namespace.clone());
        let kind = if request.hard { Refresh::Hard } else { Refresh::Normal };
        let app = target.client.application(&name, &target.namespace, Some(kind)).await.map_err(upstream)?;
        let hard = if request.hard { "hard " } else { "" };
        Ok(ActionResponse { message: format!("{hard}refresh of {name} done"), application: Some(app) })
    }
    .await;
    attempt.finish(&state, result).await
}

/// Stops the running sync (API.md §4.3).
#[utoipa::path(
    post,
    path = "/api/v1/applications/{instance}/{name}/terminate",
    params(
        ("instance" = String, Path, description = "Argo CD instance, as configured"),
        ("name" = String, Path, description = "Application name"),
        NamespaceQuery,
    ),
    responses(
        (status = 200, description = "Argo CD is terminating the operation", body = ActionResponse),
        (status = 400, description = "No operation is in progress", body = ErrorBody),
        (status = 403, description = "Actions are disabled", body = ErrorBody),
        (status = 404, description = "Unknown instance or application", body = ErrorBody),
        (status = 502, description = "Argo CD failed, denied Landfall's account or could not be reached", body = ErrorBody),
    )
)]
async fn terminate(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    namespace: Result<Query<NamespaceQuery>, QueryRejection>,
) -> Result<Json<ActionResponse>, ApiError> {
    let (instance, name) = app_path(path)?;
    let mut attempt = Attempt::new("terminate", &instance, Some(&name));
    let result = async {
        allowed(&state, "terminating operations")?;
        let target = resolve(&state, &instance, &name, query(namespace)?.namespace).await?;
        attempt.namespace = Some(target.namespace.clone());
        target.client.terminate(&name, &target.namespace).await.map_err(upstream)?;
        Ok(ActionResponse { message: format!("the operation on {name} is terminating"), application: None })
    }
    .await;
    attempt.finish(&state, result).await
}

/// `POST …/rollback`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackActionRequest {
    /// The history entry to return to (`status.history[].id`).
    pub history_id: i64,
    #[serde(default)]
    pub prune: bool,
    #[serde(default)]
    pub dry_run: bool,
    /// Argo CD refuses to roll back while automated sync is on: with `true`, Landfall
    /// first removes `spec.syncPolicy.automated` (audited as `disable_automated_sync`).
    #[serde(default)]
    pub disable_automated_sync: bool,
    /// The entry's revision, as the ledger recorded it. With it, Landfall rolls back
    /// only when Argo CD's entry `history_id` still has this revision; when the entry
    /// has left Argo CD's history (past `revisionHistoryLimit`, or an application
    /// created again counts its ids from 0 again), it syncs to the revision instead
    /// (audited as `sync`). Single-source applications only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

impl Default for RollbackActionRequest {
    fn default() -> Self {
        RollbackActionRequest {
            history_id: -1,
            prune: false,
            dry_run: false,
            disable_automated_sync: false,
            revision: None,
        }
    }
}

fn automated_refusal(name: &str) -> ApiError {
    ApiError::Conflict(format!(
        "{name} has automated sync on, and Argo CD refuses to roll back an application while it is; send \
         \"disable_automated_sync\": true to have Landfall turn it off first (it stays off until you turn it back on)"
    ))
}

/// Removes `spec.syncPolicy.automated`, as its own audited step.
async fn disable_automated_sync(
    state: &AppState,
    instance: &str,
    name: &str,
    target: &Target,
    live: &Value,
    reason: Value,
) -> Result<(), ApiError> {
    let mut attempt = Attempt::new("disable_automated_sync", instance, Some(name));
    attempt.namespace = Some(target.namespace.clone());
    attempt.parameters = reason;
    let mut app = live.clone();
    if let Some(policy) = app.pointer_mut("/spec/syncPolicy").and_then(Value::as_object_mut) {
        policy.remove("automated");
    }
    // Only the policy changes, so Argo CD need not validate the sources again.
    let result = target.client.update(&app, false).await.map(|_| ()).map_err(upstream);
    match &result {
        Ok(()) => attempt.record(state, "ok", &format!("automated sync of {name} turned off")).await,
        Err(error) => attempt.record(state, outcome_of(error), &error.to_string()).await,
    }
    result
}

/// Rolls back; right after automated sync was turned off, Argo CD may still see it for
/// a moment, so that refusal is retried briefly.
async fn roll_back(
    target: &Target,
    name: &str,
    history_id: i64,
    prune: bool,
    dry_run: bool,
    just_disabled: bool,
) -> Result<Value, ApiError> {
    let mut tries = 0;
    loop {
        match target.client.rollback(name, &target.namespace, history_id, prune, dry_run).await {
            Err(ArgoError::Api { message, .. })
                if just_disabled && message.contains("auto-sync") && tries < ROLLBACK_RETRIES =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            result => return result.map_err(upstream),
        }
    }
}

/// Whether Argo CD's history still holds entry `id` with `revision`. The revision too: an
/// application created again under its old name counts its history ids from 0 again, so
/// an id alone may name another deployment.
fn history_holds(app: &Application, id: i64, revision: &str) -> bool {
    app.status.history.iter().any(|entry| entry.id == id && entry.revision == revision)
}

/// Refuses (409) to return a multi-source application to an entry Argo CD no longer
/// holds: the sync that would replace the rollback takes one revision, which cannot
/// restore several sources.
fn one_revision_restores(app: &Application, name: &str, id: i64, revision: &str) -> Result<(), ApiError> {
    let sources = app.spec.effective_sources().len();
    if sources > 1 && !history_holds(app, id, revision) {
        return Err(ApiError::Conflict(format!(
            "history {id} ({revision}) is no longer in Argo CD's history of {name}, and {name} has {sources} \
             sources, which one revision cannot restore; sync each source to its revision instead"
        )));
    }
    Ok(())
}

/// The sync that returns an application to a revision whose history entry Argo CD no
/// longer holds, in place of a rollback.
fn sync_to(revision: &str, prune: bool, dry_run: bool) -> Value {
    json!({ "revision": revision, "prune": prune, "dryRun": dry_run, "strategy": {"hook": {"force": false}} })
}

fn live_state(live: &Value) -> Application {
    serde_json::from_value(live.clone()).unwrap_or_default()
}

/// Rolls an application back to a history entry (API.md §4.2).
#[utoipa::path(
    post,
    path = "/api/v1/applications/{instance}/{name}/rollback",
    params(
        ("instance" = String, Path, description = "Argo CD instance, as configured"),
        ("name" = String, Path, description = "Application name"),
        NamespaceQuery,
    ),
    request_body = RollbackActionRequest,
    responses(
        (status = 200, description = "The rollback started; Argo CD's Application", body = ActionResponse),
        (status = 400, description = "A malformed request, or a history id Argo CD does not have", body = ErrorBody),
        (status = 403, description = "Actions are disabled", body = ErrorBody),
        (status = 404, description = "Unknown instance or application", body = ErrorBody),
        (status = 409, description = "Automated sync is on (see `disable_automated_sync`), or another operation runs", body = ErrorBody),
        (status = 422, description = "The body does not fit, such as a missing `history_id`", body = ErrorBody),
        (status = 502, description = "Argo CD failed, denied Landfall's account or could not be reached", body = ErrorBody),
    )
)]
async fn rollback(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    namespace: Result<Query<NamespaceQuery>, QueryRejection>,
    bytes: Bytes,
) -> Result<Json<ActionResponse>, ApiError> {
    let (instance, name) = app_path(path)?;
    let mut attempt = Attempt::new("rollback", &instance, Some(&name));
    let result = async {
        let request = if bytes.iter().all(u8::is_ascii_whitespace) {
            Err(ApiError::Invalid(FieldError { field: "history_id".into(), message: "is required".into() }))
        } else {
            body::<RollbackActionRequest>(&bytes)
        };
        if let Ok(request) = &request {
            attempt.parameters = json!(request);
        }
        allowed(&state, "rollbacks")?;
        let request = request?;
        if request.revision.as_deref().is_some_and(|revision| revision.trim().is_empty()) {
            return Err(ApiError::Invalid(FieldError {
                field: "revision".into(),
                message: "is empty; a commit sha or tag, or no `revision` at all, is accepted".into(),
            }));
        }
        let target = resolve(&state, &instance, &name, query(namespace)?.namespace).await?;
        attempt.namespace = Some(target.namespace.clone());
        let live = target.client.application(&name, &target.namespace, None).await.map_err(upstream)?;
        let live_app = live_state(&live);
        let automated = live_app.spec.automated_sync();
        // An entry Argo CD no longer holds under this id and revision: return by syncing.
        let gone =
            request.revision.as_deref().filter(|revision| !history_holds(&live_app, request.history_id, revision));
        if let Some(revision) = gone {
            one_revision_restores(&live_app, &name, request.history_id, revision)?;
        }
        if automated {
            if !request.disable_automated_sync {
                return Err(automated_refusal(&name));
            }
            let reason = json!({ "before": "rollback", "history_id": request.history_id });
            disable_automated_sync(&state, &instance, &name, &target, &live, reason).await?;
        }
        let turned_off = if automated { " after turning automated sync off" } else { "" };
        if let Some(revision) = gone {
            attempt.action = "sync";
            let sync = sync_to(revision, request.prune, request.dry_run);
            let app = target.client.sync(&name, &target.namespace, &sync).await.map_err(upstream)?;
            return Ok(ActionResponse {
                message: format!(
                    "history {} is no longer in Argo CD's history of {name}; sync to its revision {revision} \
                     started{turned_off}",
                    request.history_id
                ),
                application: Some(app),
            });
        }
        let app = roll_back(&target, &name, request.history_id, request.prune, request.dry_run, automated).await?;
        Ok(ActionResponse {
            message: format!("rollback of {name} to history {} started{turned_off}", request.history_id),
            application: Some(app),
        })
    }
    .await;
    attempt.finish(&state, result).await
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CreateQuery {
    /// Replace an existing application whose spec differs (default false).
    upsert: Option<bool>,
    /// Let Argo CD check the sources and destination first (default true).
    validate: Option<bool>,
}

/// What the audit keeps of an Application body: where it deploys from and to, never
/// its Helm values or plugin settings, which may hold secrets.
fn application_summary(app: &Value) -> Value {
    let sources: Vec<&Value> = match app.pointer("/spec/sources").and_then(Value::as_array) {
        Some(sources) if !sources.is_empty() => sources.iter().collect(),
        _ => app.pointer("/spec/source").into_iter().collect(),
    };
    let sources: Vec<Value> = sources
        .into_iter()
        .map(|s| json!({"repoURL": s.get("repoURL"), "path": s.get("path"), "chart": s.get("chart"), "targetRevision": s.get("targetRevision")}))
        .collect();
    json!({
        "project": app.pointer("/spec/project"),
        "sources": sources,
        "destination": app.pointer("/spec/destination"),
        "automated_sync": app.pointer("/spec/syncPolicy/automated").is_some(),
    })
}

fn application_body(bytes: &Bytes) -> Result<Value, ApiError> {
    let app: Value = body(bytes)?;
    if !app.is_object() {
        return Err(ApiError::BadRequest("the body must be an Argo CD Application object".into()));
    }
    Ok(app)
}

/// The form model's checks (what Argo CD would reject), before anything is sent.
fn form_checks(app: &Value) -> Result<(), ApiError> {
    let form = landfall_app::applications::form::ApplicationForm::from_value(app.clone())
        .map_err(|e| ApiError::Invalid(FieldError { field: "body".into(), message: e.to_string() }))?;
    let mut errors = form.validate().into_iter();
    let Some(first) = errors.next() else { return Ok(()) };
    let more = errors.count();
    let message = if more == 0 {
        first.message
    } else {
        format!("{} (and {more} more; POST /api/v1/applications/{{instance}}/form/check lists them all)", first.message)
    };
    Err(ApiError::Invalid(FieldError { field: first.field, message }))
}

/// Creates an application (API.md §2.3); the body is the Application object.
#[utoipa::path(
    post,
    path = "/api/v1/applications/{instance}",
    params(("instance" = String, Path, description = "Argo CD instance, as configured"), CreateQuery),
    request_body(content = Object, description = "An Argo CD Application: metadata, spec"),
    responses(
        (status = 200, description = "The created (or identical existing) Application", body = ActionResponse),
        (status = 400, description = "A malformed Application, or one Argo CD rejected", body = ErrorBody),
        (status = 403, description = "Actions are disabled", body = ErrorBody),
        (status = 404, description = "Unknown instance", body = ErrorBody),
        (status = 409, description = "It exists already", body = ErrorBody),
        (status = 502, description = "Argo CD failed, denied Landfall's account or could not be reached", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    options: Result<Query<CreateQuery>, QueryRejection>,
    bytes: Bytes,
) -> Result<Json<ActionResponse>, ApiError> {
    let Path(instance) = path.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    let mut attempt = Attempt::new("create", &instance, None);
    let result = async {
        let app = application_body(&bytes);
        if let Ok(app) = &app {
            attempt.application = app.pointer("/metadata/name").and_then(Value::as_str).map(String::from);
            attempt.namespace = app.pointer("/metadata/namespace").and_then(Value::as_str).map(String::from);
            attempt.parameters = application_summary(app);
        }
        allowed(&state, "creating applications")?;
        let app = app?;
        form_checks(&app)?;
        let options = query(options)?;
        let (upsert, validate) = (options.upsert.unwrap_or(false), options.validate.unwrap_or(true));
        attempt.parameters["upsert"] = json!(upsert);
        attempt.parameters["validate"] = json!(validate);
        let name = match app.pointer("/metadata/name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => {
                return Err(ApiError::Invalid(FieldError {
                    field: "metadata.name".into(),
                    message: "is required".into(),
                }));
            }
        };
        let client = client(&state, &instance)?;
        let created = client.create(&app, upsert, validate).await.map_err(upstream)?;
        Ok(ActionResponse { message: format!("application {name} created"), application: Some(created) })
    }
    .await;
    attempt.finish(&state, result).await
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UpdateQuery {
    /// The Application's namespace; default: the body's, else the one the ledger knows.
    namespace: Option<String>,
    /// Let Argo CD check the sources and destination first (default true).
    validate: Option<bool>,
}

/// Replaces an application's spec, labels, annotations and finalizers (API.md §2.4).
#[utoipa::path(
    put,
    path = "/api/v1/applications/{instance}/{name}",
    params(
        ("instance" = String, Path, description = "Argo CD instance, as configured"),
        ("name" = String, Path, description = "Application name"),
        UpdateQuery,
    ),
    request_body(content = Object, description = "The full Argo CD Application"),
    responses(
        (status = 200, description = "The updated Application", body = ActionResponse),
        (status = 400, description = "A malformed Application, or one Argo CD rejected", body = ErrorBody),
        (status = 403, description = "Actions are disabled", body = ErrorBody),
        (status = 404, description = "Unknown instance or application", body = ErrorBody),
        (status = 502, description = "Argo CD failed, denied Landfall's account or could not be reached", body = ErrorBody),
    )
)]
async fn update(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    options: Result<Query<UpdateQuery>, QueryRejection>,
    bytes: Bytes,
) -> Result<Json<ActionResponse>, ApiError> {
    let (instance, name) = app_path(path)?;
    let mut attempt = Attempt::new("update", &instance, Some(&name));
    let result = async {
        let app = application_body(&bytes);
        if let Ok(app) = &app {
            attempt.parameters = application_summary(app);
        }
        allowed(&state, "updating applications")?;
        let mut app = app?;
        let options = query(options)?;
        let validate = options.validate.unwrap_or(true);
        attempt.parameters["validate"] = json!(validate);
        match app.pointer("/metadata/name").and_then(Value::as_str) {
            None | Some("") => app["metadata"]["name"] = json!(name),
            Some(other) if other != name => {
                return Err(ApiError::Invalid(FieldError {
                    field: "metadata.name".into(),
                    message: format!("is `{other}` but the path names `{name}`; renaming is not possible"),
                }));
            }
            Some(_) => {}
        }
        form_checks(&app)?;
        let body_namespace = app.pointer("/metadata/namespace").and_then(Value::as_str).map(String::from);
        let target = resolve(&state, &instance, &name, options.namespace.or(body_namespace)).await?;
        attempt.namespace = Some(target.namespace.clone());
        app["metadata"]["namespace"] = json!(target.namespace);
        let updated = target.client.update(&app, validate).await.map_err(upstream)?;
        Ok(ActionResponse { message: format!("application {name} updated"), application: Some(updated) })
    }
    .await;
    attempt.finish(&state, result).await
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeleteQuery {
    /// The Application's namespace; default: the one the ledger knows for this name.
    namespace: Option<String>,
    /// Delete the Kubernetes resources it manages too (default true).
    cascade: Option<bool>,
}

/// Deletes an application (API.md §2.5).
#[utoipa::path(
    delete,
    path = "/api/v1/applications/{instance}/{name}",
    params(
        ("instance" = String, Path, description = "Argo CD instance, as configured"),
        ("name" = String, Path, description = "Application name"),
        DeleteQuery,
    ),
    responses(
        (status = 200, description = "Argo CD is deleting it", body = ActionResponse),
        (status = 403, description = "Actions are disabled", body = ErrorBody),
        (status = 404, description = "Unknown instance or application", body = ErrorBody),
        (status = 502, description = "Argo CD failed, denied Landfall's account or could not be reached", body = ErrorBody),
    )
)]
async fn delete(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    options: Result<Query<DeleteQuery>, QueryRejection>,
) -> Result<Json<ActionResponse>, ApiError> {
    let (instance, name) = app_path(path)?;
    let mut attempt = Attempt::new("delete", &instance, Some(&name));
    let result = async {
        let options = query(options);
        let cascade = options.as_ref().ok().and_then(|o| o.cascade).unwrap_or(true);
        attempt.parameters = json!({ "cascade": cascade });
        allowed(&state, "deleting applications")?;
        let options = options?;
        let target = resolve(&state, &instance, &name, options.namespace).await?;
        attempt.namespace = Some(target.namespace.clone());
        target.client.delete(&name, &target.namespace, cascade).await.map_err(upstream)?;
        let what = if cascade { " with the resources it manages" } else { "; its resources stay" };
        Ok(ActionResponse { message: format!("application {name} is being deleted{what}"), application: None })
    }
    .await;
    attempt.finish(&state, result).await
}

/// `POST /api/v1/rollback-plans/{id}/execute`.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ExecuteRequest {
    /// Turn automated sync off first where it is on; otherwise those applications are
    /// refused, as Argo CD would.
    pub disable_automated_sync: bool,
}

/// What executing a plan did, per application.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanExecution {
    pub plan_id: i64,
    pub environment: String,
    pub target: String,
    pub applications: Vec<StepExecution>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepExecution {
    pub application: ApplicationRef,
    /// The plan's action for it: `rollback`, `none` or `impossible`.
    pub planned: String,
    /// `rolled_back` (to the history entry), `synced` (to its revision, when Argo CD no
    /// longer keeps the entry), `refused`, `failed` or `skipped`.
    pub outcome: String,
    pub history_id: Option<i64>,
    pub revision: Option<String>,
    /// Landfall turned automated sync off first.
    pub automated_sync_disabled: bool,
    pub message: String,
}

/// The parts of a stored plan that execution reads.
#[derive(Debug, Deserialize)]
struct StoredPlan {
    environment: String,
    target: String,
    applications: Vec<StoredStep>,
}

#[derive(Debug, Deserialize)]
struct StoredStep {
    application: ApplicationRef,
    action: String,
    return_to: Option<StoredReturn>,
}

#[derive(Debug, Deserialize)]
struct StoredReturn {
    history_id: i64,
    revision: String,
}

/// Executes a stored rollback plan: each application whose step is `rollback` returns
/// to the planned deployment, by Argo CD rollback while the history entry is still
/// kept, else by a sync to its revision.
#[utoipa::path(
    post,
    path = "/api/v1/rollback-plans/{id}/execute",
    params(("id" = i64, Path, description = "The plan's id, from POST /api/v1/rollback-plans")),
    request_body = ExecuteRequest,
    responses(
        (status = 200, description = "What was done per application", body = PlanExecution),
        (status = 403, description = "Actions are disabled", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody),
    )
)]
async fn execute_plan(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    bytes: Bytes,
) -> Result<Json<PlanExecution>, ApiError> {
    let Path(id) = path.map_err(|r| ApiError::BadRequest(format!("{}; a plan id is a number", r.body_text())))?;
    let mut attempt = Attempt {
        action: "execute_rollback_plan",
        instance: None,
        namespace: None,
        application: None,
        parameters: json!({ "plan_id": id }),
    };
    let prepared = async {
        let request = body::<ExecuteRequest>(&bytes);
        if let Ok(request) = &request {
            attempt.parameters["disable_automated_sync"] = json!(request.disable_automated_sync);
        }
        allowed(&state, "executing rollback plans")?;
        let request = request?;
        let stored = state.ledger.stored_rollback_plan(id).await?.ok_or_else(|| {
            ApiError::NotFound(format!(
                "rollback plan {id} does not exist; create one with POST /api/v1/rollback-plans"
            ))
        })?;
        let plan: StoredPlan = serde_json::from_str(&stored.plan)
            .map_err(|e| ApiError::BadRequest(format!("rollback plan {id} cannot be read: {e}")))?;
        Ok((request, plan))
    }
    .await;
    let (request, plan) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            attempt.record(&state, outcome_of(&error), &error.to_string()).await;
            return Err(error);
        }
    };
    let mut applications = Vec::new();
    for step in &plan.applications {
        applications.push(execute_step(&state, id, step, request.disable_automated_sync).await);
    }
    state.ledger.mark_rollback_plan_executed(id, now_ms()).await?;
    Ok(Json(PlanExecution { plan_id: id, environment: plan.environment, target: plan.target, applications }))
}

async fn execute_step(state: &AppState, plan_id: i64, step: &StoredStep, disable: bool) -> StepExecution {
    let app = &step.application;
    let mut execution = StepExecution {
        application: app.clone(),
        planned: step.action.clone(),
        outcome: "skipped".into(),
        history_id: None,
        revision: None,
        automated_sync_disabled: false,
        message: String::new(),
    };
    let Some(to) = step.return_to.as_ref().filter(|_| step.action == "rollback") else {
        execution.message = format!("nothing to do: the plan's action for {} is `{}`", app.name, step.action);
        return execution;
    };
    execution.history_id = Some(to.history_id);
    execution.revision = Some(to.revision.clone());
    let mut attempt = Attempt::new("rollback", &app.instance, Some(&app.name));
    attempt.namespace = Some(app.namespace.clone());
    attempt.parameters = json!({
        "plan_id": plan_id, "history_id": to.history_id, "revision": to.revision, "disable_automated_sync": disable,
    });
    let result = async {
        let target = Target { client: client(state, &app.instance)?, namespace: app.namespace.clone() };
        let live = target.client.application(&app.name, &app.namespace, None).await.map_err(upstream)?;
        let live_state = live_state(&live);
        one_revision_restores(&live_state, &app.name, to.history_id, &to.revision)?;
        if live_state.spec.automated_sync() {
            if !disable {
                return Err(automated_refusal(&app.name));
            }
            let reason = json!({ "before": "rollback", "plan_id": plan_id });
            disable_automated_sync(state, &app.instance, &app.name, &target, &live, reason).await?;
            execution.automated_sync_disabled = true;
        }
        let just_disabled = execution.automated_sync_disabled;
        if history_holds(&live_state, to.history_id, &to.revision) {
            roll_back(&target, &app.name, to.history_id, false, false, just_disabled).await?;
            Ok(("rolled_back", format!("rolling {} back to history {} ({})", app.name, to.history_id, to.revision)))
        } else {
            attempt.action = "sync";
            target
                .client
                .sync(&app.name, &app.namespace, &sync_to(&to.revision, false, false))
                .await
                .map_err(upstream)?;
            Ok((
                "synced",
                format!(
                    "history {} is no longer in Argo CD's history of {}; syncing to its revision {} instead",
                    to.history_id, app.name, to.revision
                ),
            ))
        }
    }
    .await;
    match result {
        Ok((outcome, message)) => {
            attempt.record(state, "ok", &message).await;
            execution.outcome = outcome.into();
            execution.message = message;
        }
        Err(error) => {
            let outcome = outcome_of(&error);
            attempt.record(state, outcome, &error.to_string()).await;
            execution.outcome = outcome.into();
            execution.message = error.to_string();
        }
    }
    execution
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// How many entries, newest first: 1 to 1000, default 100.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// `GET /api/v1/audit`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLog {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
}

/// Every action attempt, newest first: who, what, on which application, with which
/// parameters, and how it ended.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "The newest audit entries", body = AuditLog),
        (status = 400, description = "A malformed `limit`", body = ErrorBody),
    )
)]
async fn audit(
    State(state): State<AppState>,
    options: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditLog>, ApiError> {
    let limit = bounded("limit", query(options)?.limit.as_deref(), 100, AUDIT_LIMIT)?;
    Ok(Json(AuditLog { entries: state.ledger.audit_entries(limit).await? }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_request_becomes_argo_cds() {
        let request: SyncRequest = serde_json::from_value(json!({
            "revision": "abc123", "prune": true, "apply_only": true, "force": true,
            "resources": [{"kind": "Deployment", "name": "api", "namespace": "shop"}],
            "sync_options": ["CreateNamespace=true"],
            "retry": {"limit": 3, "backoff": {"duration": "5s", "factor": 2, "max_duration": "3m"}}
        }))
        .unwrap();
        assert_eq!(
            request.to_argo().unwrap(),
            json!({
                "revision": "abc123", "prune": true, "dryRun": false,
                "strategy": {"apply": {"force": true}},
                "resources": [{"group": "", "kind": "Deployment", "name": "api", "namespace": "shop"}],
                "syncOptions": {"items": ["CreateNamespace=true"]},
                "retryStrategy": {"limit": 3, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"}}
            })
        );
        let multi = SyncRequest { revisions: vec!["a".into(), "b".into()], ..SyncRequest::default() };
        let argo = multi.to_argo().unwrap();
        assert_eq!((argo["revisions"].clone(), argo["sourcePositions"].clone()), (json!(["a", "b"]), json!([1, 2])));
        assert_eq!(argo["strategy"], json!({"hook": {"force": false}}), "hooks run unless apply_only");
    }

    #[test]
    fn bad_sync_requests_name_the_field() {
        let both = SyncRequest { revision: Some("a".into()), revisions: vec!["b".into()], ..SyncRequest::default() };
        assert!(matches!(both.to_argo(), Err(ApiError::BadParameter { field: "revisions", .. })));
        let option = SyncRequest { sync_options: Some(vec!["Prune".into()]), ..SyncRequest::default() };
        assert!(matches!(option.to_argo(), Err(ApiError::BadParameter { field: "sync_options", .. })));
        let retry = SyncRequest {
            retry: Some(RetryRequest {
                limit: 1,
                backoff: Some(Backoff { duration: Some("5 sec".into()), ..Backoff::default() }),
            }),
            ..SyncRequest::default()
        };
        assert!(matches!(retry.to_argo(), Err(ApiError::BadParameter { field: "retry.backoff.duration", .. })));
        assert!(is_go_duration("1h30m") && is_go_duration("1.5s") && !is_go_duration("") && !is_go_duration("5"));
    }

    #[test]
    fn argo_cd_refusals_map_to_statuses() {
        let api = |status, code, message: &str| ArgoError::Api { status, code, message: message.into() };
        let status = |error: ApiError| match error {
            ApiError::Upstream { status, .. } => status.as_u16(),
            other => panic!("{other:?}"),
        };
        assert_eq!(status(upstream(api(400, Some(9), "another operation is already in progress"))), 409);
        assert_eq!(status(upstream(api(400, Some(9), "rollback cannot be initiated when auto-sync is enabled"))), 409);
        assert_eq!(status(upstream(api(400, Some(3), "application spec is invalid"))), 400);
        assert_eq!(status(upstream(api(403, Some(7), "cannot sync: blocked by sync window"))), 409);
        assert_eq!(status(upstream(api(403, Some(7), "permission denied"))), 502);
        assert_eq!(status(upstream(api(500, Some(2), "boom"))), 502);
        assert_eq!(status(upstream(ArgoError::Unreachable("connection refused".into()))), 502);
        let message = upstream(api(403, Some(7), "permission denied")).to_string();
        assert!(message.contains("permission denied") && message.contains("account"), "{message}");
    }

    #[test]
    fn the_audit_keeps_no_helm_values() {
        let app = json!({
            "metadata": {"name": "shop"},
            "spec": {"project": "default", "source": {"repoURL": "https://git.example/x.git", "path": "p",
                "helm": {"values": "password: hunter2"}}, "destination": {"namespace": "shop"}}
        });
        let summary = application_summary(&app).to_string();
        assert!(summary.contains("git.example") && !summary.contains("hunter2"), "{summary}");
    }
}
