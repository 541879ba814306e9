//! `POST /api/v1/webhooks/github` and `/gitlab`: the forges tell Landfall what changed.
//! Each delivery is checked in this order, and nothing is stored before the check that
//! proves its origin: size (413), signature or token (401), JSON (400), event type (202,
//! ignored), repository (202, ignored), replay (200, not processed again). Then its work
//! is queued for the forge worker and the answer (202) goes back at once.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use super::api::ErrorBody;
use super::error::ApiError;
use crate::config::ForgeKind;
use crate::forge::webhook::{self, DELIVERY_MEMORY_MS, Event, MAX_BODY_BYTES};
use crate::forge::worker::{Job, QUEUE_CAPACITY, Work};
use crate::forge::{Forge, github, gitlab};
use crate::ledger::Acceptance;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/webhooks/github", post(github_hook))
        .route("/api/v1/webhooks/gitlab", post(gitlab_hook))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn body_of(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!(
                "the body is larger than {} MiB, the most a webhook delivery may be",
                MAX_BODY_BYTES / (1024 * 1024)
            ))
        } else {
            ApiError::BadRequest(format!("the body could not be read: {}", rejection.body_text()))
        }
    })
}

/// What both endpoints answer, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Never built: only its shape is documented.
enum HookAnswers {
    #[response(status = 200, description = "`ping` answered, or a replayed delivery that was already processed")]
    Done,
    #[response(
        status = 202,
        description = "Queued, or ignored (an event or repository Landfall does not use); `status` says which"
    )]
    Accepted,
    #[response(status = 400, description = "The body is not JSON, or not the payload its event header names")]
    BadRequest(ErrorBody),
    #[response(
        status = 401,
        description = "The signature (GitHub) or token (GitLab) is missing or wrong; nothing was stored"
    )]
    Unauthorized(ErrorBody),
    #[response(status = 413, description = "The body is larger than 5 MiB")]
    TooLarge(ErrorBody),
    #[response(status = 503, description = "The queue is full or the ledger unavailable; the forge should redeliver")]
    Unavailable(ErrorBody),
}

/// A GitHub webhook delivery: `pull_request` (merged), `push`, `workflow_run`, `ping`.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/github",
    request_body(content = Object, description = "The event's payload, as GitHub sends it (application/json)"),
    params(
        ("X-Hub-Signature-256" = String, Header, description = "`sha256=` and the HMAC-SHA256 of the raw body, keyed with the webhook secret"),
        ("X-GitHub-Event" = String, Header, description = "pull_request, push, workflow_run or ping; others are ignored"),
        ("X-GitHub-Delivery" = Option<String>, Header, description = "The delivery's id; a replay of it is processed once"),
    ),
    responses(HookAnswers)
)]
pub(super) async fn github_hook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let body = body_of(body)?;
    let signature = header(&headers, "x-hub-signature-256");
    let forge =
        verified(&state, ForgeKind::Github, |secret| webhook::github_signature_valid(secret, &body, signature))?;
    let event = header(&headers, "x-github-event")
        .ok_or_else(|| ApiError::BadRequest("the `X-GitHub-Event` header is missing; GitHub always sends it".into()))?;
    let parsed = github::parse(event, &body).map_err(|error| not_payload(event, &error))?;
    let delivery = webhook::delivery_id(header(&headers, "x-github-delivery"), &body);
    accept(&state, forge, parsed, &delivery).await
}

/// A GitLab webhook delivery: Merge Request Hook (merged), Push Hook, Pipeline Hook.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/gitlab",
    request_body(content = Object, description = "The event's payload, as GitLab sends it (application/json)"),
    params(
        ("X-Gitlab-Token" = String, Header, description = "The webhook's secret token"),
        ("X-Gitlab-Event" = String, Header, description = "Merge Request Hook, Push Hook or Pipeline Hook; others are ignored"),
        ("Idempotency-Key" = Option<String>, Header, description = "The delivery's id, kept across GitLab's retries"),
        ("X-Gitlab-Event-UUID" = Option<String>, Header, description = "Used when Idempotency-Key is absent"),
    ),
    responses(HookAnswers)
)]
pub(super) async fn gitlab_hook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let body = body_of(body)?;
    let token = header(&headers, "x-gitlab-token");
    let forge = verified(&state, ForgeKind::Gitlab, |secret| webhook::gitlab_token_valid(secret, token))?;
    let event = header(&headers, "x-gitlab-event")
        .ok_or_else(|| ApiError::BadRequest("the `X-Gitlab-Event` header is missing; GitLab always sends it".into()))?;
    let parsed = gitlab::parse(event, &body).map_err(|error| not_payload(event, &error))?;
    let id = header(&headers, "idempotency-key").or_else(|| header(&headers, "x-gitlab-event-uuid"));
    let delivery = webhook::delivery_id(id, &body);
    accept(&state, forge, parsed, &delivery).await
}

/// The configured forge of `kind` whose secret `valid` accepts. Every forge of the kind
/// is tried, so several instances (github.com and an Enterprise Server) share a URL.
fn verified(state: &AppState, kind: ForgeKind, valid: impl Fn(&str) -> bool) -> Result<&Forge, ApiError> {
    let mut with_secret = state.forges.of_kind(kind).filter_map(|f| f.secret().map(|s| (f, s))).peekable();
    if with_secret.peek().is_none() {
        return Err(ApiError::Unauthorized(match kind {
            ForgeKind::Github => {
                "GitHub webhooks are disabled: no [[forge]] of kind github has its webhook_secret_env set"
            }
            ForgeKind::Gitlab => {
                "GitLab webhooks are disabled: no [[forge]] of kind gitlab has its webhook_secret_env set"
            }
        }));
    }
    with_secret.find(|(_, secret)| valid(secret.expose())).map(|(forge, _)| forge).ok_or(ApiError::Unauthorized(
        match kind {
            ForgeKind::Github => "the X-Hub-Signature-256 header is missing or does not match the body; sign the raw body with the webhook secret (HMAC-SHA256)",
            ForgeKind::Gitlab => "the X-Gitlab-Token header is missing or is not the webhook's secret token",
        },
    ))
}

fn not_payload(event: &str, error: &serde_json::Error) -> ApiError {
    if error.is_syntax() || error.is_eof() {
        ApiError::BadRequest(format!("the body is not valid JSON: {error}"))
    } else {
        ApiError::BadRequest(format!("the body is not a `{event}` payload: {error}"))
    }
}

async fn accept(state: &AppState, forge: &Forge, event: Event, delivery: &str) -> Answer {
    let answer = |status: StatusCode, body: Value| Ok((status, Json(body)));
    let (incoming, job) = match event {
        Event::Ping => return answer(StatusCode::OK, json!({ "status": "pong", "forge": forge.name() })),
        Event::Ignored(reason) => {
            tracing::debug!(forge = %forge.name(), %reason, "webhook ignored");
            return answer(StatusCode::ACCEPTED, json!({ "status": "ignored", "reason": reason }));
        }
        Event::Merged { incoming, details, refresh } => (incoming, Job::Merged { details, refresh }),
        Event::Push { incoming, head } => (incoming, Job::Push { head }),
        Event::Pipeline { incoming, run, github_run_id } => (incoming, Job::Pipeline { run, github_run_id }),
    };
    let paths: Vec<&str> = incoming.paths.iter().map(String::as_str).collect();
    let Some(placement) = state.forges.repository_for(forge.name(), &paths) else {
        let reason = format!(
            "repository `{}` is not a configured [[repository]] of forge `{}`",
            paths.first().copied().unwrap_or_default(),
            forge.name()
        );
        return answer(StatusCode::ACCEPTED, json!({ "status": "ignored", "reason": reason }));
    };
    let Some(worker) = &state.forge_queue else {
        return Err(ApiError::Unavailable("the forge worker is not running".into()));
    };
    let work = Work {
        forge: forge.name().to_string(),
        repository: placement.repository.clone(),
        project: placement.project.clone(),
        job,
    };
    let work = serde_json::to_string(&work)
        .map_err(|e| ApiError::BadRequest(format!("the delivery cannot be queued: {e}")))?;
    let accepted =
        state.ledger.accept_delivery(forge.name(), delivery, now(), DELIVERY_MEMORY_MS, &work, QUEUE_CAPACITY).await?;
    match accepted {
        Acceptance::Queued => worker.notify_one(),
        Acceptance::Duplicate => {
            return answer(StatusCode::OK, json!({ "status": "duplicate", "delivery": delivery }));
        }
        Acceptance::Full => {
            return Err(ApiError::Unavailable(
                "too many webhook deliveries are waiting; deliver this one again later".into(),
            ));
        }
    }
    answer(
        StatusCode::ACCEPTED,
        json!({ "status": "queued", "repository": placement.repository, "delivery": delivery }),
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
