//! The versioned REST API, `/api/v1`, and its OpenAPI document. The document is
//! generated from the same types and handler annotations the server runs, so the two
//! cannot drift apart.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::jira::WebhookSchemes;
use crate::ledger::cards::{CommitCard, FeatureCard, PullRequestCard, ShaMatch};

#[derive(OpenApi)]
#[openapi(
    info(title = "Landfall", description = "What shipped where, as features and pull requests."),
    paths(
        pull_request,
        commit,
        feature,
        super::questions::changes,
        super::questions::compare,
        super::questions::manifest_commits,
        super::questions::rollback_plan,
        super::actions::sync,
        super::actions::refresh,
        super::actions::terminate,
        super::actions::rollback,
        super::actions::create,
        super::actions::update,
        super::actions::delete,
        super::actions::execute_plan,
        super::actions::audit,
        super::questions::ask,
        super::reports::builds,
        super::reports::pipelines,
        super::webhooks::github_hook,
        super::webhooks::gitlab_hook,
        super::applications::list,
        super::applications::detail,
        super::forms::read_form,
        super::forms::check,
        super::forms::catalogue,
        super::jira::receive,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerScheme, &WebhookSchemes)
)]
pub struct ApiDoc;

/// Declares the `bearer` scheme the report endpoints require.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// Every error answer: what went wrong, and the field when one input was at fault.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub field: Option<String>,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/pull-requests/{repo}/{number}", get(pull_request))
        .route("/api/v1/commits/{repo}/{sha}", get(commit))
        .route("/api/v1/features/{key}", get(feature))
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// A commit id or a prefix of one: 4 to 64 hexadecimal digits.
pub(crate) fn is_commit_prefix(sha: &str) -> bool {
    (4..=64).contains(&sha.len()) && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A count from the query string, such as a page size: `default` when the parameter is absent
/// or blank, otherwise a whole number from 1 to `max`, or a 400 naming `field`. Handlers
/// read these parameters as text so that `limit=ten` is answered here, by name, rather than
/// by the query string's deserialiser.
pub(super) fn bounded(field: &'static str, text: Option<&str>, default: i64, max: i64) -> Result<i64, ApiError> {
    match text.map(str::trim) {
        None | Some("") => Ok(default),
        Some(text) => text.parse().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| ApiError::BadParameter {
            field,
            message: format!("is `{text}`; a whole number from 1 to {max} is accepted"),
        }),
    }
}

fn path_error(rejection: PathRejection, accepted: &str) -> ApiError {
    ApiError::BadRequest(format!("{}; {accepted}", rejection.body_text()))
}

/// Which feature a pull request implemented, which pipelines handled it, and which images
/// were built from it or from its merge commit (questions 1, 5 and 8).
#[utoipa::path(
    get,
    path = "/api/v1/pull-requests/{repo}/{number}",
    params(
        ("repo" = String, Path, description = "Repository name, as configured"),
        ("number" = i64, Path, description = "Pull (or merge) request number"),
    ),
    responses(
        (status = 200, description = "The pull request card", body = PullRequestCard),
        (status = 400, description = "A malformed parameter", body = ErrorBody),
        (status = 404, description = "No such pull request in the ledger", body = ErrorBody),
    )
)]
async fn pull_request(
    State(state): State<AppState>,
    path: Result<Path<(String, i64)>, PathRejection>,
) -> Result<Json<PullRequestCard>, ApiError> {
    let Path((repo, number)) = path.map_err(|r| path_error(r, "`number` must be a positive whole number"))?;
    if number <= 0 {
        return Err(ApiError::BadRequest(format!("`number` is {number}; a positive whole number is accepted")));
    }
    state
        .ledger
        .pull_request_card(&repo, number)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("pull request {repo}#{number} is not in the ledger")))
}

/// A commit by full id or unique prefix (at least 4 hexadecimal digits).
#[utoipa::path(
    get,
    path = "/api/v1/commits/{repo}/{sha}",
    params(
        ("repo" = String, Path, description = "Repository name, as configured"),
        ("sha" = String, Path, description = "Full commit id, or a unique prefix of at least 4 hexadecimal digits"),
    ),
    responses(
        (status = 200, description = "The commit card", body = CommitCard),
        (status = 400, description = "A malformed or ambiguous id", body = ErrorBody),
        (status = 404, description = "No such commit in the ledger", body = ErrorBody),
    )
)]
async fn commit(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<CommitCard>, ApiError> {
    let Path((repo, sha)) = path.map_err(|r| path_error(r, "a repository name and a commit id are expected"))?;
    if !is_commit_prefix(&sha) {
        return Err(ApiError::BadRequest(format!(
            "`sha` is `{sha}`; a commit id or a prefix of 4 to 64 hexadecimal digits is accepted"
        )));
    }
    match state.ledger.commit_card(&repo, &sha).await? {
        ShaMatch::One(card) => Ok(Json(*card)),
        ShaMatch::None => Err(ApiError::NotFound(format!("commit {sha} of {repo} is not in the ledger"))),
        ShaMatch::Ambiguous => {
            Err(ApiError::BadRequest(format!("`sha` prefix {sha} matches several commits of {repo}; give more digits")))
        }
    }
}

/// A feature's card: its commits, pull requests, committers, images and pipelines.
#[utoipa::path(
    get,
    path = "/api/v1/features/{key}",
    params(("key" = String, Path, description = "Issue key, such as SHOP-123")),
    responses(
        (status = 200, description = "The feature card", body = FeatureCard),
        (status = 404, description = "The ledger has never seen this key", body = ErrorBody),
    )
)]
async fn feature(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<FeatureCard>, ApiError> {
    let Path(key) = path.map_err(|r| path_error(r, "an issue key such as SHOP-123 is expected"))?;
    if let Some(card) = state.ledger.feature_card(&key).await? {
        return Ok(Json(card));
    }
    Err(ApiError::NotFound(if state.ledger.feature_excluded(&key).await? {
        format!("{key} is not a feature: Jira does not know it, and `[features] exclude_not_found` is on")
    } else {
        format!("feature {key} is not in the ledger")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(result: Result<i64, ApiError>) -> (&'static str, String) {
        match result {
            Err(ApiError::BadParameter { field, message }) => (field, message),
            other => panic!("expected a 400 naming the field, got {other:?}"),
        }
    }

    #[test]
    fn a_count_is_a_whole_number_within_its_bounds_or_its_default() {
        assert_eq!(bounded("limit", None, 20, 500).unwrap(), 20);
        assert_eq!(bounded("limit", Some(" "), 20, 500).unwrap(), 20);
        assert_eq!(bounded("limit", Some("1"), 20, 500).unwrap(), 1);
        assert_eq!(bounded("limit", Some(" 500 "), 20, 500).unwrap(), 500);
        for bad in ["0", "501", "-3", "ten", "2.5", "99999999999999999999"] {
            let (field, message) = refusal(bounded("deployments", Some(bad), 20, 500));
            assert_eq!(field, "deployments", "{bad}");
            assert!(message.contains(&format!("`{bad}`")) && message.contains("1 to 500"), "{bad}: {message}");
        }
    }
}
