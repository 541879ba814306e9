//! The environment questions over REST: what entered an environment, what one has that
//! another lacks, who changed its manifests, and rollback plans (stored, so that one can
//! be executed later as shown: see `actions`).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::api::{ErrorBody, bounded};
use super::error::ApiError;
use crate::answer::AskResponse;
use crate::ledger::Ledger;
use crate::ledger::presence::Target;
use crate::ledger::questions::{
    ChangesPage, Comparison, DEFAULT_DEPLOYMENT_PAGE, DEPLOYMENT_LIMIT, EnvironmentChanges, EnvironmentId,
    ManifestChanges, PlanError, RollbackPlan,
};
use crate::timefmt::parse_rfc3339;

/// The window a `since` / `until` pair leaves open by default: the last seven days.
const DEFAULT_WINDOW_MS: i64 = 7 * 24 * 3_600_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/environments/compare", get(compare))
        .route("/api/v1/environments/{env}/changes", get(changes))
        .route("/api/v1/manifests/commits", get(manifest_commits))
        .route("/api/v1/rollback-plans", post(rollback_plan))
        .route("/api/v1/ask", get(ask))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::BadRequest(format!("{}; see /api/v1/openapi.json for the parameters", rejection.body_text()))
}

/// A parameter that must be present and not blank.
fn required(field: &'static str, value: Option<String>, what: &str) -> Result<String, ApiError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or(ApiError::BadParameter { field, message: format!("is required: {what}") })
}

/// `since` and `until` as RFC 3339 times (or dates), `until` after `since`.
fn window(since: Option<&str>, until: Option<&str>) -> Result<(i64, i64), ApiError> {
    let parse = |field: &'static str, text: &str| {
        let text = text.trim();
        let full = if text.len() == 10 { format!("{text}T00:00:00Z") } else { text.to_string() };
        parse_rfc3339(&full).ok_or_else(|| ApiError::BadParameter {
            field,
            message: format!(
                "is `{text}`; an RFC 3339 time such as 2026-11-27T09:00:00Z or a date such as 2026-11-27 is accepted"
            ),
        })
    };
    let until = match until {
        Some(text) => parse("until", text)?,
        None => now_ms(),
    };
    let since = match since {
        Some(text) => parse("since", text)?,
        None => until - DEFAULT_WINDOW_MS,
    };
    if since >= until {
        return Err(ApiError::BadParameter { field: "since", message: "must be before `until`".into() });
    }
    Ok((since, until))
}

/// An environment by name, or a 404 that lists the known ones.
pub(crate) async fn environment(ledger: &Ledger, name: &str) -> Result<EnvironmentId, ApiError> {
    if let Some(environment) = ledger.environment(name).await? {
        return Ok(environment);
    }
    let known = ledger.environment_names().await?;
    let known = if known.is_empty() { "none yet".to_string() } else { known.join(", ") };
    Err(ApiError::NotFound(format!("environment `{name}` is not in the ledger; known environments: {known}")))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ChangesQuery {
    /// Start of the window (inclusive), RFC 3339 or a date; default: 7 days before `until`.
    since: Option<String>,
    /// End of the window (exclusive), RFC 3339 or a date; default: now.
    until: Option<String>,
    /// Deployments per page, 1 to 500; default 20.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// The `next` of the previous page, to read the page after it.
    after: Option<String>,
}

/// The page a `limit` / `after` pair asks for.
fn page(limit: Option<&str>, after: Option<&str>) -> Result<ChangesPage, ApiError> {
    let limit = bounded("limit", limit, DEFAULT_DEPLOYMENT_PAGE, DEPLOYMENT_LIMIT)?;
    let after = match after.map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(text.parse().map_err(|()| ApiError::BadParameter {
            field: "after",
            message: format!("is `{text}`; pass the `next` of the previous page as it came"),
        })?),
    };
    Ok(ChangesPage { after, limit })
}

/// The deployments to an environment in a window, a page at a time, and the features and
/// pull requests that entered with them (question 7).
#[utoipa::path(
    get,
    path = "/api/v1/environments/{env}/changes",
    params(("env" = String, Path, description = "Environment name"), ChangesQuery),
    responses(
        (status = 200, description = "A page of the deployments in the window, oldest first, with what each changed; `next` reads the page after it", body = EnvironmentChanges),
        (status = 400, description = "A malformed parameter", body = ErrorBody),
        (status = 404, description = "Unknown environment", body = ErrorBody),
    )
)]
async fn changes(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ChangesQuery>, QueryRejection>,
) -> Result<Json<EnvironmentChanges>, ApiError> {
    let Path(env) = path.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    let Query(query) = query.map_err(query_error)?;
    let (since, until) = window(query.since.as_deref(), query.until.as_deref())?;
    let page = page(query.limit.as_deref(), query.after.as_deref())?;
    let environment = environment(&state.ledger, &env).await?;
    Ok(Json(state.ledger.environment_changes(&environment, since, until, page).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CompareQuery {
    /// One environment, e.g. `staging`.
    from: Option<String>,
    /// The other, e.g. `production`.
    to: Option<String>,
}

/// Features running in one environment now and not in the other, both ways.
#[utoipa::path(
    get,
    path = "/api/v1/environments/compare",
    params(CompareQuery),
    responses(
        (status = 200, description = "What each side has that the other lacks", body = Comparison),
        (status = 400, description = "A missing or malformed parameter", body = ErrorBody),
        (status = 404, description = "Unknown environment", body = ErrorBody),
    )
)]
async fn compare(
    State(state): State<AppState>,
    query: Result<Query<CompareQuery>, QueryRejection>,
) -> Result<Json<Comparison>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let from = required("from", query.from, "an environment name")?;
    let to = required("to", query.to, "an environment name")?;
    let from = environment(&state.ledger, &from).await?;
    let to = environment(&state.ledger, &to).await?;
    Ok(Json(state.ledger.compare_environments(&from, &to).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ManifestQuery {
    /// The environment whose applications' manifests changed.
    env: Option<String>,
    /// Start of the window (inclusive), RFC 3339 or a date; default: 7 days before `until`.
    since: Option<String>,
    /// End of the window (exclusive), RFC 3339 or a date; default: now.
    until: Option<String>,
}

/// Who changed an environment's manifests, with the commits (question 6).
#[utoipa::path(
    get,
    path = "/api/v1/manifests/commits",
    params(ManifestQuery),
    responses(
        (status = 200, description = "Committers and their commits to the environment's source paths", body = ManifestChanges),
        (status = 400, description = "A missing or malformed parameter", body = ErrorBody),
        (status = 404, description = "Unknown environment", body = ErrorBody),
    )
)]
async fn manifest_commits(
    State(state): State<AppState>,
    query: Result<Query<ManifestQuery>, QueryRejection>,
) -> Result<Json<ManifestChanges>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let env = required("env", query.env, "an environment name")?;
    let (since, until) = window(query.since.as_deref(), query.until.as_deref())?;
    let environment = environment(&state.ledger, &env).await?;
    Ok(Json(state.ledger.manifest_commits(&environment, since, until).await?))
}

/// What to roll back to just before: exactly one of `feature`, `pull_request`, `commit`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Environment name.
    pub environment: String,
    /// An issue key, e.g. `SHOP-2167`.
    pub feature: Option<String>,
    pub pull_request: Option<PullRequestTarget>,
    pub commit: Option<CommitTarget>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequestTarget {
    pub repo: String,
    pub number: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitTarget {
    pub repo: String,
    /// Full id or a unique prefix of at least 4 hexadecimal digits.
    pub sha: String,
}

/// Resolves the request's target. A commit must be in the ledger; whether a feature or
/// pull request is known is asked only when no plan comes of it (see `rollback_plan`).
pub(crate) async fn resolve_target(ledger: &Ledger, request: &RollbackRequest) -> Result<Target, ApiError> {
    let field = |field: &'static str, message: String| ApiError::BadParameter { field, message };
    match (&request.feature, &request.pull_request, &request.commit) {
        (Some(key), None, None) => Ok(Target::Feature(key.trim().to_ascii_uppercase())),
        (None, Some(pr), None) => {
            if pr.number <= 0 {
                return Err(field("pull_request.number", format!("is {}; a positive whole number", pr.number)));
            }
            Ok(Target::PullRequest { repo: pr.repo.clone(), number: pr.number })
        }
        (None, None, Some(commit)) => {
            let sha = commit.sha.trim().to_ascii_lowercase();
            if !super::api::is_commit_prefix(&sha) {
                return Err(field("commit.sha", format!("is `{sha}`; 4 to 64 hexadecimal digits are accepted")));
            }
            match ledger.commits_with_prefix(Some(&commit.repo), &sha).await?.as_slice() {
                [(repo, full)] => Ok(Target::Commit { repo: repo.clone(), sha: full.clone() }),
                [] => Err(ApiError::NotFound(format!("commit {sha} of {} is not in the ledger", commit.repo))),
                _ => Err(field("commit.sha", format!("prefix {sha} matches several commits; give more digits"))),
            }
        }
        _ => Err(ApiError::BadRequest(
            "give exactly one of `feature`, `pull_request` ({\"repo\", \"number\"}) or `commit` ({\"repo\", \"sha\"})"
                .into(),
        )),
    }
}

/// A rollback plan as stored: its id, for `POST /api/v1/rollback-plans/{id}/execute`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredRollbackPlan {
    pub id: i64,
    #[serde(flatten)]
    pub plan: RollbackPlan,
}

/// A plan for rolling an environment back to just before a feature, pull request or
/// commit shipped (question 4). Nothing is executed: the plan is stored, and
/// `POST /api/v1/rollback-plans/{id}/execute` carries it out.
#[utoipa::path(
    post,
    path = "/api/v1/rollback-plans",
    request_body = RollbackRequest,
    responses(
        (status = 200, description = "Per application: the deployment to return to and what leaves; `id` names the stored plan", body = StoredRollbackPlan),
        (status = 400, description = "A malformed request", body = ErrorBody),
        (status = 404, description = "Unknown environment or target, or a target that never reached the environment", body = ErrorBody),
    )
)]
async fn rollback_plan(
    State(state): State<AppState>,
    body: Result<Json<RollbackRequest>, JsonRejection>,
) -> Result<Json<StoredRollbackPlan>, ApiError> {
    let Json(request) = body?;
    let environment = environment(&state.ledger, &request.environment).await?;
    let target = resolve_target(&state.ledger, &request).await?;
    match state.ledger.rollback_plan(&environment, &target).await {
        Ok(plan) => {
            let id = state.ledger.store_rollback_plan(&plan, now_ms()).await?;
            Ok(Json(StoredRollbackPlan { id, plan }))
        }
        // Whether the ledger knows the target at all is asked only now: a target that
        // reached the environment has commits.
        Err(PlanError::NeverReached) if state.ledger.target_commits(&target).await?.is_empty() => {
            Err(ApiError::NotFound(match target {
                Target::Feature(_) => format!("feature {target} has no commits in the ledger"),
                _ => format!("{target} has no merge or squash commit in the ledger"),
            }))
        }
        Err(PlanError::NeverReached) => Err(ApiError::NotFound(format!(
            "{target} never reached {}: there is nothing to roll back",
            environment.name
        ))),
        Err(PlanError::Ledger(error)) => Err(error.into()),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AskQuery {
    /// The question, as typed: "Is SHOP-2356 deployed in production now?"
    q: Option<String>,
    /// The asker's time zone for phrases such as "this morning": an IANA name
    /// (Europe/Paris), an offset (+02:00) or UTC (the default).
    tz: Option<String>,
}

/// Answers a question in words: any of DESIGN.md's nine and their variations. The
/// answer says what was understood; a question it cannot read gets what it recognised
/// and examples, with status 200.
#[utoipa::path(
    get,
    path = "/api/v1/ask",
    params(AskQuery),
    responses(
        (status = 200, description = "What was understood, and the answer", body = AskResponse),
        (status = 400, description = "No question, or an unknown time zone", body = ErrorBody),
    )
)]
async fn ask(
    State(state): State<AppState>,
    query: Result<Query<AskQuery>, QueryRejection>,
) -> Result<Json<AskResponse>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let question = required("q", query.q, "a question such as \"Is SHOP-12 deployed in production now?\"")?;
    if question.len() > 1000 {
        return Err(ApiError::BadParameter { field: "q", message: "is longer than 1000 characters".into() });
    }
    let tz_name = query.tz.unwrap_or_default();
    let tz = crate::ask::parse_time_zone(&tz_name)
        .map_err(|message| ApiError::BadParameter { field: "tz", message: format!("is not accepted: {message}") })?;
    let vocabulary = crate::answer::vocabulary(&state.ledger, &state.projects, &question).await?;
    let response = crate::answer::answer(&state.ledger, &vocabulary, &question, &tz_name, &tz, now_ms()).await?;
    Ok(Json(response))
}
