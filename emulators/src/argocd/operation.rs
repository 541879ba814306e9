//! Sync, rollback and terminate (API.md §4), and the simulated application controller that
//! carries an operation from Running to Succeeded or Failed and records the deployment.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::Error;
use super::routes::Caller;
use super::state::{AppKey, Shared, State as AppState, set_path};
use super::time;
use super::wire::{ApiError, ok, parse_body};

/// `IsAutomatedSyncEnabled`: `automated` present and `enabled` not false.
pub(crate) fn automated(app: &Value) -> Option<&Value> {
    app.pointer("/spec/syncPolicy/automated")
        .filter(|a| a.is_object() && a.get("enabled").and_then(Value::as_bool) != Some(false))
}

fn in_progress(app: &Value) -> bool {
    let phase = app.pointer("/status/operationState/phase").and_then(Value::as_str);
    app.get("operation").is_some_and(|o| !o.is_null()) || matches!(phase, Some("Running" | "Terminating"))
}

fn deleting(app: &Value) -> bool {
    app.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null())
}

fn sources(app: &Value) -> Option<&Vec<Value>> {
    app.pointer("/spec/sources").and_then(Value::as_array).filter(|s| !s.is_empty())
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// What the repo server would resolve a requested revision to: the pushed head when the
/// request names the tracked branch (or nothing), otherwise the request verbatim.
fn resolve(st: &AppState, name: &str, target: &str, requested: &str) -> String {
    if !requested.is_empty() && requested != target {
        return requested.to_string();
    }
    match st.heads.get(name) {
        Some(head) => head.clone(),
        None if target.is_empty() => "HEAD".into(),
        None => target.to_string(),
    }
}

/// `operation` is set and `operationState` cleared; the controller takes it from there.
fn start(shared: &Arc<Shared>, st: &mut AppState, key: &AppKey, mut app: Value, operation: Value) -> Value {
    app["operation"] = operation;
    if let Some(status) = app.get_mut("status").and_then(Value::as_object_mut) {
        status.remove("operationState");
    }
    let committed = st.commit(key, app);
    st.op_seq += 1;
    let seq = st.op_seq;
    st.operations.insert(key.clone(), seq);
    shared.runtime.spawn(run_controller(shared.clone(), key.clone(), seq));
    committed
}

async fn run_controller(shared: Arc<Shared>, key: AppKey, seq: u64) {
    {
        let mut st = shared.lock();
        if st.operations.get(&key) != Some(&seq) {
            return;
        }
        let Some(mut app) = st.apps.get(&key).cloned() else { return };
        let operation = app.get("operation").cloned().unwrap_or(json!({}));
        let state = json!({
            "operation": operation, "phase": "Running",
            "message": "one or more tasks are running", "startedAt": time::now_rfc3339(),
        });
        set_path(&mut app, &["status", "operationState"], state);
        st.commit(&key, app);
    }
    tokio::time::sleep(shared.options.sync_duration).await;
    let mut st = shared.lock();
    if st.operations.get(&key) != Some(&seq) {
        return;
    }
    st.operations.remove(&key);
    let Some(app) = st.apps.get(&key).cloned() else { return };
    let app = finish(&st, &key.1, app);
    st.commit(&key, app);
    maybe_auto_sync(&shared, &mut st, &key);
}

/// The controller's end of an operation: result, history, sync and health status.
fn finish(st: &AppState, name: &str, mut app: Value) -> Value {
    let now = time::now_rfc3339();
    let operation = app.get("operation").cloned().unwrap_or(json!({}));
    let sync = operation.get("sync").cloned().unwrap_or(json!({}));
    let dry_run = sync.get("dryRun").and_then(Value::as_bool).unwrap_or(false);
    let started_at = app.pointer("/status/operationState/startedAt").cloned().unwrap_or(json!(now));
    let terminating = app.pointer("/status/operationState/phase").and_then(Value::as_str) == Some("Terminating");
    let revision = str_of(&sync, "revision").to_string();
    let revisions: Vec<String> = sync
        .get("revisions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    let failing = |r: &str| st.failing_revisions.contains(r) || r.starts_with("fail");
    let fails = st.failing_apps.contains(name) || failing(&revision) || revisions.iter().any(|r| failing(r));
    let (phase, message) = match (terminating, fails) {
        (true, _) => ("Failed", "Operation terminated".to_string()),
        (false, true) => ("Failed", "one or more objects failed to apply, reason: emulated sync failure".to_string()),
        (false, false) => ("Succeeded", "successfully synced (all tasks run)".to_string()),
    };
    let succeeded = phase == "Succeeded";

    let resources: Vec<Value> = app
        .pointer("/status/resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let mut out = Map::new();
            for k in ["group", "version", "kind", "namespace", "name"] {
                out.insert(k.into(), r.get(k).cloned().unwrap_or(json!("")));
            }
            let kind = str_of(r, "kind").to_ascii_lowercase();
            let (status, msg) = if succeeded {
                ("Synced", format!("{kind}/{} configured", str_of(r, "name")))
            } else {
                ("SyncFailed", "emulated sync failure".to_string())
            };
            out.insert("status".into(), json!(status));
            out.insert("message".into(), json!(msg));
            out.insert("hookPhase".into(), json!("Running"));
            out.insert("syncPhase".into(), json!("Sync"));
            Value::Object(out)
        })
        .collect();
    let mut result = json!({"resources": resources});
    let multi = !revisions.is_empty();
    if multi {
        result["revisions"] = json!(revisions);
        result["sources"] = sync.get("sources").cloned().unwrap_or(json!([]));
    } else {
        result["revision"] = json!(revision);
        result["source"] = sync.get("source").cloned().unwrap_or(json!({}));
    }
    let state = json!({
        "operation": operation, "phase": phase, "message": message,
        "startedAt": started_at, "finishedAt": now, "syncResult": result,
    });
    set_path(&mut app, &["status", "operationState"], state);
    if let Some(m) = app.as_object_mut() {
        m.remove("operation");
    }
    set_path(&mut app, &["status", "reconciledAt"], json!(now));
    if !succeeded || dry_run {
        return app;
    }

    // `persistRevisionHistory`: next id = last id + 1, trimmed to revisionHistoryLimit.
    let mut history: Vec<Value> = app.pointer("/status/history").and_then(Value::as_array).cloned().unwrap_or_default();
    let next_id = history.last().and_then(|h| h.get("id")).and_then(Value::as_i64).map_or(0, |id| id + 1);
    let mut entry = json!({"id": next_id, "deployStartedAt": started_at, "deployedAt": now});
    if multi {
        entry["revisions"] = json!(revisions);
        entry["sources"] = result["sources"].clone();
    } else {
        entry["revision"] = json!(revision);
        entry["source"] = result["source"].clone();
    }
    if let Some(by) = operation.get("initiatedBy") {
        entry["initiatedBy"] = by.clone();
    }
    history.push(entry);
    let limit = app.pointer("/spec/revisionHistoryLimit").and_then(Value::as_i64).unwrap_or(10).max(0) as usize;
    let excess = history.len().saturating_sub(limit);
    history.drain(..excess);
    set_path(&mut app, &["status", "history"], json!(history));

    let mut compared_to = json!({"destination": app.pointer("/spec/destination").cloned().unwrap_or(json!({}))});
    let mut sync_status = json!({"status": "Synced"});
    if multi {
        compared_to["sources"] = result["sources"].clone();
        sync_status["revisions"] = json!(revisions);
    } else {
        compared_to["source"] = result["source"].clone();
        sync_status["revision"] = json!(revision);
    }
    sync_status["comparedTo"] = compared_to;
    set_path(&mut app, &["status", "sync"], sync_status);
    set_path(&mut app, &["status", "health"], json!({"status": "Healthy"}));
    let images = if multi { revisions.iter().find_map(|r| st.images.get(r)) } else { st.images.get(&revision) };
    if let Some(images) = images {
        set_path(&mut app, &["status", "summary", "images"], json!(images));
    }
    if let Some(list) = app.pointer_mut("/status/resources").and_then(Value::as_array_mut) {
        for r in list {
            r["status"] = json!("Synced");
        }
    }
    app
}

fn body_str<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn spec_sync_options(app: &Value) -> Option<Value> {
    app.pointer("/spec/syncPolicy/syncOptions").filter(|o| !o.is_null()).cloned()
}

fn spec_retry(app: &Value) -> Value {
    app.pointer("/spec/syncPolicy/retry").filter(|o| !o.is_null()).cloned().unwrap_or(json!({}))
}

/// `POST /api/v1/applications/{name}/sync`.
pub(crate) async fn sync(
    State(shared): State<Arc<Shared>>,
    Caller(user): Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = parse_body(&body)?;
    let mut st = shared.lock();
    let key = st.lookup(&name, body_str(&req, "appNamespace"), body_str(&req, "project"))?;
    let app = st.apps[&key].clone();
    if deleting(&app) {
        return Err(ApiError::precondition("application is deleting"));
    }
    let dry_run = req.get("dryRun").and_then(Value::as_bool).unwrap_or(false);
    let requested = body_str(&req, "revision").unwrap_or("");
    let target = app.pointer("/spec/source/targetRevision").and_then(Value::as_str).unwrap_or("");
    if automated(&app).is_some() && !dry_run {
        if !requested.is_empty() && requested != target {
            return Err(ApiError::precondition(format!(
                "Cannot sync to {requested}: auto-sync currently set to {target}"
            )));
        }
        if req.get("manifests").and_then(Value::as_array).is_some_and(|m| !m.is_empty()) {
            return Err(ApiError::precondition(
                "cannot use local sync when Automatic Sync Policy is enabled unless for dry run",
            ));
        }
    }
    let sync_options = match req.pointer("/syncOptions/items") {
        Some(items) if !items.is_null() => Some(items.clone()),
        _ if req.get("syncOptions").is_some_and(Value::is_object) => Some(json!([])),
        _ => spec_sync_options(&app),
    };
    let replace = sync_options.as_ref().and_then(Value::as_array).into_iter().flatten().any(|o| o == "Replace=true");
    if replace && !shared.options.sync_with_replace_allowed {
        return Err(ApiError::invalid(
            "sync with replace was disabled on the API Server level via the server configuration",
        ));
    }

    let mut op_sync = Map::new();
    if let Some(sources) = sources(&app) {
        let mut revisions: Vec<String> =
            sources.iter().map(|s| resolve(&st, &name, str_of(s, "targetRevision"), "")).collect();
        let wanted = req.get("revisions").and_then(Value::as_array).cloned().unwrap_or_default();
        let positions = req.get("sourcePositions").and_then(Value::as_array).cloned().unwrap_or_default();
        for (revision, position) in wanted.iter().zip(positions.iter()) {
            let index = position.as_i64().or_else(|| position.as_str().and_then(|p| p.parse().ok())).unwrap_or(0);
            let slot = usize::try_from(index - 1).ok().and_then(|i| revisions.get_mut(i));
            let slot = slot.ok_or_else(|| ApiError::unknown("source position is out of range"))?;
            *slot = revision.as_str().unwrap_or("").to_string();
        }
        op_sync.insert("revisions".into(), json!(revisions));
        op_sync.insert("sources".into(), json!(sources));
    } else {
        op_sync.insert("revision".into(), json!(resolve(&st, &name, target, requested)));
        if let Some(source) = app.pointer("/spec/source") {
            op_sync.insert("source".into(), source.clone());
        }
    }
    if req.get("prune").and_then(Value::as_bool) == Some(true) {
        op_sync.insert("prune".into(), json!(true));
    }
    if dry_run {
        op_sync.insert("dryRun".into(), json!(true));
    }
    if let Some(options) = sync_options {
        op_sync.insert("syncOptions".into(), options);
    }
    for (from, to) in [("strategy", "syncStrategy"), ("resources", "resources"), ("manifests", "manifests")] {
        if let Some(v) = req.get(from).filter(|v| !v.is_null()) {
            op_sync.insert(to.into(), v.clone());
        }
    }
    if in_progress(&app) {
        return Err(ApiError::precondition("another operation is already in progress"));
    }
    let mut operation = json!({
        "sync": op_sync,
        "initiatedBy": {"username": user},
        "retry": req.get("retryStrategy").filter(|r| !r.is_null()).cloned().unwrap_or_else(|| spec_retry(&app)),
    });
    if let Some(infos) = req.get("infos").filter(|i| !i.is_null()) {
        operation["info"] = infos.clone();
    }
    Ok(ok(&start(&shared, &mut st, &key, app, operation)))
}

/// `POST /api/v1/applications/{name}/rollback`.
pub(crate) async fn rollback(
    State(shared): State<Arc<Shared>>,
    Caller(user): Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = parse_body(&body)?;
    let id = req.get("id").and_then(|id| id.as_i64().or_else(|| id.as_str().and_then(|s| s.parse().ok())));
    // proto2 `required`: the gateway's marshal fails, a plain error (API.md §4.2).
    let id = id.ok_or_else(|| ApiError::unknown("proto: required field \"id\" not set"))?;
    let mut st = shared.lock();
    let key = st.lookup(&name, body_str(&req, "appNamespace"), body_str(&req, "project"))?;
    let app = st.apps[&key].clone();
    if deleting(&app) {
        return Err(ApiError::precondition("application is deleting"));
    }
    if automated(&app).is_some() {
        return Err(ApiError::precondition("rollback cannot be initiated when auto-sync is enabled"));
    }
    let history = app.pointer("/status/history").and_then(Value::as_array);
    let entry = history.into_iter().flatten().find(|h| h.get("id").and_then(Value::as_i64) == Some(id));
    let entry = entry.ok_or_else(|| {
        ApiError::invalid(format!("application {}/{} does not have deployment with id {id}", key.0, key.1))
    })?;
    let has_source = entry.get("source").is_some_and(|s| s.as_object().is_some_and(|o| !o.is_empty()));
    let has_sources = entry.get("sources").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
    if !has_source && !has_sources {
        return Err(ApiError::invalid(
            "cannot rollback to revision deployed with Argo CD v0.11 or lower. sync to revision instead.",
        ));
    }
    if in_progress(&app) {
        return Err(ApiError::precondition("another operation is already in progress"));
    }
    let mut op_sync = Map::new();
    if has_sources {
        op_sync.insert("revisions".into(), entry.get("revisions").cloned().unwrap_or(json!([])));
        op_sync.insert("sources".into(), entry["sources"].clone());
    } else {
        op_sync.insert("revision".into(), entry.get("revision").cloned().unwrap_or(json!("")));
        op_sync.insert("source".into(), entry["source"].clone());
    }
    for k in ["prune", "dryRun"] {
        if req.get(k).and_then(Value::as_bool) == Some(true) {
            op_sync.insert(k.into(), json!(true));
        }
    }
    op_sync.insert("syncStrategy".into(), json!({"apply": {}}));
    if let Some(options) = spec_sync_options(&app) {
        op_sync.insert("syncOptions".into(), options);
    }
    let operation = json!({"sync": op_sync, "initiatedBy": {"username": user}, "retry": {}});
    Ok(ok(&start(&shared, &mut st, &key, app, operation)))
}

/// `DELETE /api/v1/applications/{name}/operation`.
pub(crate) async fn terminate(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    Path(name): Path<String>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let query = super::query::Query::parse(raw.as_deref());
    let mut st = shared.lock();
    let key = super::routes::app_key(&st, &name, &query)?;
    let mut app = st.apps[&key].clone();
    let running = app.get("operation").is_some_and(|o| !o.is_null())
        && app.pointer("/status/operationState").is_some_and(|s| !s.is_null());
    if !running {
        return Err(ApiError::precondition("Unable to terminate operation. No operation is in progress"));
    }
    set_path(&mut app, &["status", "operationState", "phase"], json!("Terminating"));
    st.commit(&key, app);
    Ok(ok(&json!({})))
}

/// A new commit on the tracked branch: OutOfSync at `revision`, then auto-sync if enabled.
pub(crate) fn push_revision(shared: &Arc<Shared>, name: &str, revision: &str) -> Result<(), Error> {
    let mut st = shared.lock();
    let key = st.key_for(name).ok_or_else(|| Error::NoSuchApplication(name.into()))?;
    st.heads.insert(name.into(), revision.into());
    let mut app = st.apps[&key].clone();
    let synced_at = app.pointer("/status/sync/revision").and_then(Value::as_str);
    let synced = app.pointer("/status/sync/status").and_then(Value::as_str) == Some("Synced");
    if !(synced && synced_at == Some(revision)) {
        set_path(&mut app, &["status", "sync", "status"], json!("OutOfSync"));
        set_path(&mut app, &["status", "sync", "revision"], json!(revision));
        st.commit(&key, app);
    }
    maybe_auto_sync(shared, &mut st, &key);
    Ok(())
}

/// The controller's auto-sync: once per new head, never while an operation runs, and not
/// again for a revision whose automated sync already failed (`alreadyAttemptedSync`).
fn maybe_auto_sync(shared: &Arc<Shared>, st: &mut AppState, key: &AppKey) {
    let Some(app) = st.apps.get(key).cloned() else { return };
    let Some(auto) = automated(&app) else { return };
    let Some(head) = st.heads.get(&key.1).cloned() else { return };
    let synced = app.pointer("/status/sync/status").and_then(Value::as_str) == Some("Synced")
        && app.pointer("/status/sync/revision").and_then(Value::as_str) == Some(head.as_str());
    let attempted = app.pointer("/status/operationState/syncResult/revision").and_then(Value::as_str)
        == Some(head.as_str())
        && app.pointer("/status/operationState/phase").and_then(Value::as_str) != Some("Succeeded");
    if synced || attempted || in_progress(&app) || deleting(&app) {
        return;
    }
    let mut op_sync = Map::new();
    op_sync.insert("revision".into(), json!(head));
    if let Some(source) = app.pointer("/spec/source") {
        op_sync.insert("source".into(), source.clone());
    }
    if auto.get("prune").and_then(Value::as_bool) == Some(true) {
        op_sync.insert("prune".into(), json!(true));
    }
    if let Some(options) = spec_sync_options(&app) {
        op_sync.insert("syncOptions".into(), options);
    }
    let operation = json!({"sync": op_sync, "initiatedBy": {"automated": true}, "retry": spec_retry(&app)});
    start(shared, st, key, app, operation);
}
