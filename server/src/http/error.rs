//! The API's one error type: it logs what went wrong inside and answers with a clean
//! JSON message, `{"error": "...", "field": "..."}`, and the right status.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::ledger::LedgerError;
use crate::reports::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    BadRequest(String),
    /// A malformed query or path parameter, by name.
    #[error("`{field}` {message}")]
    BadParameter { field: &'static str, message: String },
    /// Refused by configuration, such as an action while `actions_enabled` is false.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be done in the current state (an operation is running,
    /// automated sync is on).
    #[error("{0}")]
    Conflict(String),
    /// Argo CD refused or could not be reached; the status says how to read it.
    #[error("{message}")]
    Upstream { status: StatusCode, message: String },
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Cannot take the request now (a full queue); the client should try again later.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(error) => {
                // serde's own words name the field and the expected type.
                let detail = std::error::Error::source(&error).map_or_else(|| error.body_text(), |s| s.to_string());
                ApiError::Invalid(FieldError { field: "body".into(), message: format!("does not fit: {detail}") })
            }
            JsonRejection::JsonSyntaxError(error) => {
                let detail = std::error::Error::source(&error).map_or_else(|| error.body_text(), |s| s.to_string());
                ApiError::BadRequest(format!("the body is not valid JSON: {detail}"))
            }
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::BadRequest("send the body as JSON, with Content-Type: application/json".into())
            }
            JsonRejection::BytesRejection(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge("the body is too large".into())
            }
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            ApiError::Unauthorized(message) => (StatusCode::UNAUTHORIZED, json!({ "error": message })),
            ApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, json!({ "error": message })),
            ApiError::BadParameter { field, .. } => {
                (StatusCode::BAD_REQUEST, json!({ "error": self.to_string(), "field": field }))
            }
            ApiError::Forbidden(message) => (StatusCode::FORBIDDEN, json!({ "error": message })),
            ApiError::NotFound(message) => (StatusCode::NOT_FOUND, json!({ "error": message })),
            ApiError::Conflict(message) => (StatusCode::CONFLICT, json!({ "error": message })),
            ApiError::Upstream { status, message } => {
                tracing::warn!(status = status.as_u16(), %message, "Argo CD did not do what was asked");
                (*status, json!({ "error": message }))
            }
            ApiError::PayloadTooLarge(message) => (StatusCode::PAYLOAD_TOO_LARGE, json!({ "error": message })),
            ApiError::Unavailable(message) => (StatusCode::SERVICE_UNAVAILABLE, json!({ "error": message })),
            ApiError::Invalid(error) => {
                (StatusCode::UNPROCESSABLE_ENTITY, json!({ "error": error.to_string(), "field": error.field }))
            }
            ApiError::Ledger(LedgerError::Invalid(message)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, json!({ "error": message }))
            }
            ApiError::Ledger(error) => {
                tracing::error!(%error, "ledger error while answering an API request");
                (StatusCode::SERVICE_UNAVAILABLE, json!({ "error": "the ledger is unavailable right now; try again" }))
            }
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}
