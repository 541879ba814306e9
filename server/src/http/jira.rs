//! `POST /api/v1/webhooks/jira`: Jira reports issues created, updated and deleted.
//!
//! The delivery is proven before its body is read as JSON: an `X-Hub-Signature`
//! (HMAC-SHA256, Jira Cloud) or a `?secret=` in the URL (Data Center / Server), both
//! compared in constant time. A delivery is applied at most once, de-duplicated by
//! `X-Atlassian-Webhook-Identifier` or, without one, by issue key and timestamp.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use super::api::ErrorBody;
use super::error::ApiError;
use crate::jira::webhook::{self, DELIVERY_HEADER, Event, MAX_BODY_BYTES, PayloadError, SIGNATURE_HEADER};
use crate::ledger::jira::{DeliveryOutcome, IssueChange};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/webhooks/jira", post(receive))
}

/// Declares how Jira webhooks prove themselves, for the OpenAPI document.
pub(super) struct WebhookSchemes;

impl utoipa::Modify for WebhookSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "jira_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Hub-Signature",
                "Jira Cloud: `sha256=` and the hex HMAC-SHA256 of the raw body under the webhook secret",
            ))),
        );
        components.add_security_scheme(
            "jira_secret",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "secret",
                "Jira Data Center / Server: the webhook secret itself, in the registered URL",
            ))),
        );
    }
}

/// What the endpoint answers, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Never built: only its shape is documented.
enum WebhookAnswers {
    #[response(status = 200, description = "Applied (`recorded`), or already applied (`duplicate`, `stale`)")]
    Applied,
    #[response(status = 202, description = "Verified but not used: another event type, or an issue that is no feature")]
    Ignored,
    #[response(status = 400, description = "The body is not JSON, or not a Jira webhook")]
    Malformed(ErrorBody),
    #[response(status = 401, description = "No valid signature or secret; nothing was stored")]
    Unauthorized(ErrorBody),
    #[response(status = 413, description = "The body is larger than 1 MiB")]
    TooLarge(ErrorBody),
}

/// Receive a Jira webhook (`jira:issue_created`, `jira:issue_updated`, `jira:issue_deleted`).
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/jira",
    request_body(content = Object, description = "Jira's webhook payload: `webhookEvent`, `timestamp`, `issue`"),
    params(
        ("X-Hub-Signature" = Option<String>, Header, description = "Jira Cloud: `sha256=<hex HMAC-SHA256 of the body>`"),
        ("X-Atlassian-Webhook-Identifier" = Option<String>, Header, description = "The delivery's id; replays carry the same"),
        ("secret" = Option<String>, Query, description = "Data Center / Server: the webhook secret"),
    ),
    security(("jira_signature" = []), ("jira_secret" = [])),
    responses(WebhookAnswers)
)]
pub(super) async fn receive(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(settings) = state.jira.as_deref() else {
        return Err(ApiError::Unauthorized("the Jira webhook is disabled: Landfall has no `[jira]` configured"));
    };
    let Some(secret) = settings.secret.as_ref() else {
        return Err(ApiError::Unauthorized(
            "the Jira webhook is disabled: the variable named by `jira.webhook_secret_env` is unset",
        ));
    };
    let too_large = || ApiError::PayloadTooLarge(format!("the body is larger than {MAX_BODY_BYTES} bytes"));
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| too_large())?;

    let signature = headers.get(SIGNATURE_HEADER).map(|value| value.to_str().unwrap_or_default());
    let query_secret = query.as_deref().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes()).find(|(name, _)| name == "secret").map(|(_, value)| value)
    });
    let verified = match (signature, query_secret) {
        (Some(signature), _) => secret.verify_signature(signature, &body),
        (None, Some(presented)) => secret.verify_query(&presented),
        (None, None) => {
            return Err(ApiError::Unauthorized(
                "send `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>` (Jira Cloud) or register the URL \
                 with `?secret=<the webhook secret>` (Data Center / Server)",
            ));
        }
    };
    if !verified {
        return Err(ApiError::Unauthorized("the webhook signature or secret is not valid"));
    }

    let event =
        webhook::parse(&body, &settings.base, settings.epic_link_field.as_deref()).map_err(|error| match error {
            PayloadError::NotJson(_) | PayloadError::NotWebhook(_) => ApiError::BadRequest(error.to_string()),
        })?;
    let (change, timestamp, complete) = match event {
        Event::Ignored(name) => {
            return Ok((StatusCode::ACCEPTED, Json(json!({ "status": "ignored", "event": name }))));
        }
        Event::Issue { change, timestamp, complete } => (change, timestamp, complete),
    };
    let key = match &change {
        IssueChange::Upsert(fact) => fact.key.clone(),
        IssueChange::Deleted { key } | IssueChange::Touched { key } => key.clone(),
    };
    let project = key.split_once('-').map(|(project, _)| project).unwrap_or_default();
    if !state.projects.iter().any(|p| p == project) && !state.ledger.feature_exists(&key).await? {
        let reason =
            format!("{key} is not a feature: no commit names it and its project is not in `[features] projects`");
        return Ok((StatusCode::ACCEPTED, Json(json!({ "status": "ignored", "key": key, "reason": reason }))));
    }
    // Without its fields the issue is fetched, not overwritten with blanks.
    let change = if complete { change } else { IssueChange::Touched { key: key.clone() } };
    let delivery = match headers.get(DELIVERY_HEADER).and_then(|value| value.to_str().ok()) {
        Some(id) if !id.is_empty() && id.len() <= 200 => format!("id:{id}"),
        _ => format!("issue:{key}@{timestamp}"),
    };
    let outcome = state.ledger.apply_jira_delivery(&delivery, timestamp, &change, crate::jira::now_ms()).await?;
    if outcome == DeliveryOutcome::Applied
        && matches!(change, IssueChange::Touched { .. })
        && let Some(refresh) = &settings.refresh
    {
        let _ = refresh.send(key.clone());
    }
    let status = match outcome {
        DeliveryOutcome::Applied => "recorded",
        DeliveryOutcome::Duplicate => "duplicate",
        DeliveryOutcome::Stale => "stale",
    };
    Ok((StatusCode::OK, Json(json!({ "status": status, "key": key }))))
}
