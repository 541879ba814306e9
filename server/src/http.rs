//! The HTTP surface: each area exposes a `router()`, merged here behind the request
//! metrics and logging middleware.

mod actions;
pub mod api;
mod applications;
pub mod error;
mod forms;
mod health;
mod jira;
mod live;
mod metrics;
mod origin;
mod questions;
mod reports;
mod ui;
mod webhooks;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use leptos::config::LeptosOptions;

use crate::ledger::Ledger;
use crate::telemetry::HttpMetrics;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub ledger: Ledger,
    pub metrics: Arc<HttpMetrics>,
    pub leptos: LeptosOptions,
    /// The bearer token CI jobs present to the report API; `None` disables it.
    pub report_token: Option<Arc<str>>,
    /// `[features] projects`: the issue keys questions may name.
    pub projects: Arc<[String]>,
    /// How each Argo CD instance's watch stands.
    pub argocd: crate::argocd::watch::WatchStatus,
    /// Clients of the configured Argo CD instances, for actions and live reads.
    pub instances: crate::argocd::Instances,
    /// How each configured Kubernetes cluster's reading stands.
    pub clusters: crate::cluster::ClusterStatuses,
    /// Live updates for browsers, fed by the Argo CD watches.
    pub live: Arc<crate::live::Hub>,
    /// `[jira]`: the webhook's secret and site, and the refresher it nudges; `None`
    /// without a `[jira]` section.
    pub jira: Option<Arc<crate::jira::WebhookSettings>>,
    /// `actions_enabled`: whether actions may change Argo CD.
    pub actions_enabled: bool,
    /// The configured GitHub and GitLab instances, with their webhook secrets.
    pub forges: crate::forge::Forges,
    /// Where verified webhook deliveries are queued; `None` refuses them with 503.
    /// Wakes the forge worker when webhook work is queued in the ledger.
    pub forge_queue: Option<std::sync::Arc<tokio::sync::Notify>>,
}

impl axum::extract::FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(metrics::router())
        .merge(reports::router())
        .merge(jira::router())
        .merge(webhooks::router())
        .merge(api::router())
        .merge(questions::router())
        .merge(applications::router())
        .merge(live::router())
        .merge(forms::router())
        .merge(actions::router())
        .merge(ui::router(&state))
        .layer(axum::middleware::from_fn(origin::same_origin_only))
        .layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Counts and times every request by its route template and logs it at debug level.
/// Query strings are never logged: later features carry secrets in them.
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| fallback_route(request.uri().path()).to_string());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.observe(&method, &route, status, elapsed);
    tracing::debug!(%method, %route, status, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "request");
    response
}

/// Requests no route matched: static files from the site, or nothing.
fn fallback_route(path: &str) -> &'static str {
    if path.starts_with("/pkg/") { "/pkg/{file}" } else { "fallback" }
}
