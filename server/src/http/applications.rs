//! Argo CD applications over REST, as the ledger holds them: the list with filters and
//! pages, and one application with its complete deployment history.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::api::{ErrorBody, bounded};
use super::error::ApiError;
use crate::ledger::application_views::{
    ApplicationDetail, ApplicationFilter, ApplicationPage, DEPLOYMENTS_LIMIT, Lookup, PAGE_LIMIT,
};

const SYNC_STATUSES: [&str; 3] = ["Synced", "OutOfSync", "Unknown"];
const HEALTH_STATUSES: [&str; 6] = ["Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"];
const DEFAULT_PAGE: i64 = 100;
const DEFAULT_DEPLOYMENTS: i64 = 100;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/applications", get(list)).route("/api/v1/applications/{instance}/{name}", get(detail))
}

fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::BadRequest(format!("{}; see /api/v1/openapi.json for the parameters", rejection.body_text()))
}

/// Argo CD's spelling of a status named in any case, or a 400 listing the accepted ones.
fn status_value(field: &'static str, value: Option<String>, accepted: &[&str]) -> Result<Option<String>, ApiError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else { return Ok(None) };
    match accepted.iter().find(|a| a.eq_ignore_ascii_case(value.trim())) {
        Some(found) => Ok(Some(found.to_string())),
        None => {
            Err(ApiError::BadParameter { field, message: format!("is `{value}`; accepted: {}", accepted.join(", ")) })
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Environment name (any case).
    environment: Option<String>,
    /// Argo CD instance name.
    instance: Option<String>,
    /// Argo CD project.
    project: Option<String>,
    /// `Synced`, `OutOfSync` or `Unknown`.
    sync: Option<String>,
    /// `Healthy`, `Progressing`, `Degraded`, `Suspended`, `Missing` or `Unknown`.
    health: Option<String>,
    /// Part of the name, project or service.
    text: Option<String>,
    /// Also list applications deleted from Argo CD (their history is kept).
    #[serde(default)]
    include_deleted: bool,
    /// Applications to skip; default 0.
    offset: Option<i64>,
    /// Page size; default 100, at most 500.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

/// Applications with their status, environment and current deployment, by name.
#[utoipa::path(
    get,
    path = "/api/v1/applications",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of the applications matching every filter given", body = ApplicationPage),
        (status = 400, description = "A malformed parameter", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ApplicationPage>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let offset = query.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::BadParameter { field: "offset", message: format!("is {offset}; accepted: 0 or more") });
    }
    let blank = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let filter = ApplicationFilter {
        environment: blank(query.environment),
        instance: blank(query.instance),
        project: blank(query.project),
        sync: status_value("sync", query.sync, &SYNC_STATUSES)?,
        health: status_value("health", query.health, &HEALTH_STATUSES)?,
        text: blank(query.text),
        include_deleted: query.include_deleted,
        offset,
        limit: bounded("limit", query.limit.as_deref(), DEFAULT_PAGE, PAGE_LIMIT)?,
    };
    Ok(Json(state.ledger.list_applications(&filter).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DetailQuery {
    /// The Application's namespace; needed only when the instance has several of that name.
    namespace: Option<String>,
    /// Deployments to list, newest first; default 100, at most 1000.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    deployments: Option<String>,
}

/// One application: status, sources, destination, environment, its deployments from the
/// ledger (newest first, each with its change set), its Kubernetes objects and its
/// status timeline.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{instance}/{name}",
    params(
        ("instance" = String, Path, description = "Argo CD instance name"),
        ("name" = String, Path, description = "Application name"),
        DetailQuery
    ),
    responses(
        (status = 200, description = "The application and its history", body = ApplicationDetail),
        (status = 400, description = "A malformed parameter, or a name several namespaces share", body = ErrorBody),
        (status = 404, description = "No such application", body = ErrorBody),
    )
)]
async fn detail(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<DetailQuery>, QueryRejection>,
) -> Result<Json<ApplicationDetail>, ApiError> {
    let Path((instance, name)) = path.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    let Query(query) = query.map_err(query_error)?;
    let deployments = bounded("deployments", query.deployments.as_deref(), DEFAULT_DEPLOYMENTS, DEPLOYMENTS_LIMIT)?;
    let namespace = query.namespace.filter(|n| !n.trim().is_empty());
    match state.ledger.application_detail(&instance, namespace.as_deref(), &name, deployments).await? {
        Lookup::Found(detail) => Ok(Json(detail)),
        Lookup::Missing => Err(ApiError::NotFound(match namespace {
            Some(namespace) => {
                format!("no application `{name}` in namespace `{namespace}` of Argo CD instance `{instance}`")
            }
            None => format!("no application `{name}` in Argo CD instance `{instance}`"),
        })),
        Lookup::Ambiguous(namespaces) => Err(ApiError::BadParameter {
            field: "namespace",
            message: format!(
                "is needed: instance `{instance}` has applications named `{name}` in namespaces {}",
                namespaces.join(", ")
            ),
        }),
    }
}
