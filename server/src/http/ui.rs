//! The Leptos pages and server functions. Server functions reach the ledger through the
//! app crate's `Backend` trait, implemented here and put in context per request.

use std::sync::Arc;

use axum::Router;
use landfall_app::api::{
    AppError, ApplicationHistory, ApplicationSummary, Backend, DeploymentSummary, EnvironmentSummary, FeatureSummary,
    HistoryEntry, Overview, QuestionAnswer, SearchResults, SourceStatus,
};
use landfall_app::{App, shell};
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};

use super::AppState;
use crate::ledger::{Ledger, LedgerError};

pub fn router(state: &AppState) -> Router<AppState> {
    let sources = Sources {
        argocd: state.argocd.clone(),
        clusters: state.clusters.clone(),
        jira: state.jira.as_ref().map(|jira| (jira.base.host_str().unwrap_or("site").to_string(), jira.status.clone())),
    };
    let backend: Arc<dyn Backend> =
        Arc::new(LedgerBackend(state.ledger.clone(), state.projects.clone(), sources, state.actions_enabled));
    let options = state.leptos.clone();
    let routes = generate_route_list(App);
    Router::new()
        .leptos_routes_with_context(
            state,
            routes,
            move || provide_context(backend.clone()),
            move || shell(options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
}

/// The ledger, the configured feature projects questions may name, the sources'
/// statuses, and whether actions are enabled.
struct LedgerBackend(Ledger, Arc<[String]>, Sources, bool);

/// Where the watches, cluster readers and the Jira refresher report how they fare.
struct Sources {
    argocd: crate::argocd::watch::WatchStatus,
    clusters: crate::cluster::ClusterStatuses,
    /// The Jira site's host, and the refresher's status.
    jira: Option<(String, Arc<crate::jira::JiraStatus>)>,
}

impl Sources {
    fn statuses(&self) -> Vec<SourceStatus> {
        let argocd = self.argocd.snapshot().into_iter().map(|instance| {
            let state = match (instance.connected, &instance.error) {
                (true, _) => "Connected",
                (false, None) => "Connecting",
                (false, Some(_)) => "Failing",
            };
            SourceStatus {
                kind: "Argo CD".into(),
                name: instance.name,
                ok: instance.connected,
                state: state.into(),
                error: instance.error,
            }
        });
        let clusters = self.clusters.snapshot().into_iter().map(|cluster| SourceStatus {
            kind: "Cluster".into(),
            name: cluster.name,
            ok: cluster.reachable,
            state: if cluster.reachable { "Reachable" } else { "Unreachable" }.into(),
            error: cluster.error,
        });
        let jira = self.jira.iter().map(|(site, status)| {
            let snapshot = status.snapshot();
            let (ok, state) = match snapshot.state {
                "ok" => (true, "Connected"),
                "starting" => (true, "Connecting"),
                "degraded" => (false, "Degraded"),
                "disabled" => (false, "Disabled"),
                _ => (false, "Failing"),
            };
            SourceStatus { kind: "Jira".into(), name: site.clone(), ok, state: state.into(), error: snapshot.error }
        });
        argocd.chain(clusters).chain(jira).collect()
    }
}

/// The page gets a clean message; the log gets the detail.
fn unavailable(error: LedgerError) -> AppError {
    match error {
        LedgerError::Invalid(message) => AppError::BadRequest(message),
        other => {
            tracing::error!(error = %other, "ledger query failed");
            AppError::LedgerUnavailable
        }
    }
}

#[async_trait::async_trait]
impl Backend for LedgerBackend {
    async fn overview(&self) -> Result<Overview, AppError> {
        self.0.overview().await.map_err(unavailable)
    }

    async fn environments(&self) -> Result<Vec<EnvironmentSummary>, AppError> {
        self.0.environments().await.map_err(unavailable)
    }

    async fn applications(&self) -> Result<Vec<ApplicationSummary>, AppError> {
        self.0.applications().await.map_err(unavailable)
    }

    async fn deployments(&self, limit: i64) -> Result<Vec<DeploymentSummary>, AppError> {
        self.0.recent_deployments(limit).await.map_err(unavailable)
    }

    async fn features(&self) -> Result<Vec<FeatureSummary>, AppError> {
        self.0.features().await.map_err(unavailable)
    }

    async fn connections(&self) -> Vec<SourceStatus> {
        self.2.statuses()
    }

    async fn application(&self, instance: &str, name: &str) -> Result<Option<ApplicationHistory>, AppError> {
        use crate::ledger::application_views::Lookup;
        let detail = match self.0.application_detail(instance, None, name, 200).await.map_err(unavailable)? {
            Lookup::Found(detail) => detail,
            Lookup::Missing | Lookup::Ambiguous(_) => return Ok(None),
        };
        let keys = |features: &[crate::ledger::cards::FeatureRef]| features.iter().map(|f| f.key.clone()).collect();
        let app = detail.application;
        // Argo CD's history holds only the application's current life, and returning to
        // the newest entry changes nothing.
        let current_life = app.incarnation;
        let newest = detail.deployments.iter().find(|d| d.phase == "Succeeded").map(|d| (d.incarnation, d.history_id));
        let present = app.deleted_at.is_none();
        Ok(Some(ApplicationHistory {
            instance: app.instance,
            namespace: app.namespace,
            name: app.name,
            project: app.project,
            environment: app.environment,
            sync_status: app.sync_status,
            health_status: app.health_status,
            automated_sync: app.automated_sync,
            deleted_at: app.deleted_at,
            deployments_total: detail.deployments_total,
            deployments: detail
                .deployments
                .into_iter()
                .map(|d| HistoryEntry {
                    can_roll_back: d.phase == "Succeeded"
                        && d.history_id >= 0
                        && d.incarnation == current_life
                        && newest != Some((d.incarnation, d.history_id))
                        && present,
                    history_id: d.history_id,
                    revision: d.revision,
                    deployed_at: d.finished_at.unwrap_or(d.started_at),
                    phase: d.phase,
                    initiated_by: d.initiated_by,
                    is_rollback: d.is_rollback,
                    images: d.images,
                    features_entered: d.changes.as_ref().map(|c| keys(&c.features_entered)).unwrap_or_default(),
                    features_left: d.changes.as_ref().map(|c| keys(&c.features_left)).unwrap_or_default(),
                })
                .collect(),
            actions_enabled: self.3,
        }))
    }

    /// Finds what the text names, and reads a query of several words as a question too
    /// (in UTC: the page does not send the browser's zone yet).
    async fn search(&self, query: &str) -> Result<SearchResults, AppError> {
        let mut results = self.0.search(query).await.map_err(unavailable)?;
        let words = query.split_whitespace().count();
        if words >= 2 {
            let vocabulary = crate::answer::vocabulary(&self.0, &self.1, query).await.map_err(unavailable)?;
            let now = super::questions::now_ms();
            let response = crate::answer::answer(&self.0, &vocabulary, query, "UTC", &jiff::tz::TimeZone::UTC, now)
                .await
                .map_err(unavailable)?;
            let understood = response.understood.is_some();
            // A couple of words that are not a question are just a search.
            if understood || words >= 3 || query.contains('?') {
                let (recognised, examples) =
                    response.not_understood.map(|n| (n.understood, n.examples)).unwrap_or_default();
                results.answer = Some(QuestionAnswer { understood, summary: response.summary, recognised, examples });
            }
        }
        Ok(results)
    }
}
