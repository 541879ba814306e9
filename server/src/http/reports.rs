//! `POST /api/v1/reports/builds` and `/pipelines`: CI jobs report what they built and
//! ran. Authenticated by the bearer token from `[reports] token_env`, compared in
//! constant time; idempotent on the natural keys (digest; CI system and run id).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::AppState;
use super::api::ErrorBody;
use super::error::ApiError;
use crate::reports::{BuildReport, FieldError, PipelineReport};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/reports/builds", post(builds)).route("/api/v1/reports/pipelines", post(pipelines))
}

/// Proof that the request carried the report token.
pub struct Reporter;

impl FromRequestParts<AppState> for Reporter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(expected) = state.report_token.as_deref() else {
            return Err(ApiError::Unauthorized(
                "the report API is disabled: the server has no report token configured",
            ));
        };
        let presented = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized("send the report token as `Authorization: Bearer <token>`"))?;
        if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(Reporter)
        } else {
            Err(ApiError::Unauthorized("the report token is not valid"))
        }
    }
}

/// A repository unknown to the ledger is the reporter's mistake: say which ones exist.
async fn known_repository(state: &AppState, field: &str, name: &str) -> Result<(), ApiError> {
    let names = state.ledger.repository_names().await?;
    if names.iter().any(|n| n == name) {
        return Ok(());
    }
    let accepted = if names.is_empty() { "none are configured yet".to_string() } else { names.join(", ") };
    Err(FieldError {
        field: field.into(),
        message: format!("is `{name}`, which is not a repository Landfall knows; known: {accepted}"),
    }
    .into())
}

/// What both report endpoints answer, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Never built: only its shape is documented.
enum ReportAnswers {
    #[response(status = 200, description = "Recorded")]
    Recorded,
    #[response(status = 400, description = "The body is not JSON")]
    NotJson(ErrorBody),
    #[response(status = 401, description = "No valid report token")]
    Unauthorized(ErrorBody),
    #[response(status = 422, description = "A field is wrong; `field` names it")]
    Invalid(ErrorBody),
}

/// Record an image build (idempotent on `digest`).
#[utoipa::path(
    post,
    path = "/api/v1/reports/builds",
    request_body = BuildReport,
    security(("bearer" = [])),
    responses(ReportAnswers)
)]
pub(super) async fn builds(
    _: Reporter,
    State(state): State<AppState>,
    body: Result<Json<BuildReport>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(report) = body?;
    let fact = report.into_fact()?;
    known_repository(&state, "source_repository", &fact.repository).await?;
    state.ledger.record_build(&fact).await?;
    Ok(Json(json!({ "status": "recorded", "digest": fact.digest })))
}

/// Record a pipeline run and its steps (idempotent on `ci_system` and `run_id`).
#[utoipa::path(
    post,
    path = "/api/v1/reports/pipelines",
    request_body = PipelineReport,
    security(("bearer" = [])),
    responses(ReportAnswers)
)]
pub(super) async fn pipelines(
    _: Reporter,
    State(state): State<AppState>,
    body: Result<Json<PipelineReport>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(report) = body?;
    let fact = report.into_fact()?;
    if let Some(repository) = &fact.repository {
        known_repository(&state, "repository", repository).await?;
    }
    state.ledger.record_pipeline_run(&fact).await?;
    Ok(Json(json!({ "status": "recorded", "ci_system": fact.ci_system, "run_id": fact.run_id })))
}
