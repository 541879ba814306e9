//! Probes for orchestrators: `/healthz` says the process is up, `/readyz` that it can
//! serve (database reachable, schema current).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = state.ledger.readiness().await;
    let ready = database.is_ready();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    // An Argo CD, cluster or Jira that cannot be reached does not make Landfall unready (it
    // still serves its ledger), but the details say so, with the reason.
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {
            "database": database,
            "argocd": state.argocd.snapshot(),
            "clusters": state.clusters.snapshot(),
            "jira": state.jira.as_ref().map(|jira| jira.status.snapshot()),
        },
    });
    (status, Json(body))
}
