//! The error shapes grpc-gateway v1.16 writes (API.md §0.1) and the gRPC→HTTP status table.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub(crate) const UNKNOWN: i32 = 2;
pub(crate) const INVALID_ARGUMENT: i32 = 3;
pub(crate) const NOT_FOUND: i32 = 5;
pub(crate) const PERMISSION_DENIED: i32 = 7;
pub(crate) const FAILED_PRECONDITION: i32 = 9;
pub(crate) const INTERNAL: i32 = 13;
pub(crate) const UNAUTHENTICATED: i32 = 16;

/// A gRPC status as the gateway reports it; the message is both `error` and `message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("gRPC code {code}: {message}")]
pub(crate) struct ApiError {
    pub code: i32,
    pub message: String,
}

impl ApiError {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
    /// A plain Go error: Argo CD returns these as code 2, i.e. HTTP 500.
    pub fn unknown(message: impl Into<String>) -> Self {
        Self::new(UNKNOWN, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(INVALID_ARGUMENT, message)
    }
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(FAILED_PRECONDITION, message)
    }
    pub fn denied() -> Self {
        Self::new(PERMISSION_DENIED, "permission denied")
    }
    pub fn app_not_found(name: &str) -> Self {
        Self::new(NOT_FOUND, format!("applications.argoproj.io \"{name}\" not found"))
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(UNAUTHENTICATED, message)
    }

    pub fn status(&self) -> StatusCode {
        http_status(self.code)
    }

    /// `{"error":{"grpc_code","http_code","message","http_status"}}`, the streaming shape.
    pub fn stream_body(&self) -> Value {
        let status = self.status();
        json!({"error": {
            "grpc_code": self.code,
            "http_code": status.as_u16(),
            "message": self.message,
            "http_status": status.canonical_reason().unwrap_or(""),
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.message, "code": self.code, "message": self.message});
        (self.status(), [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }
}

/// `runtime/errors.go` `HTTPStatusFromCode` of grpc-gateway v1.16.
pub(crate) fn http_status(code: i32) -> StatusCode {
    match code {
        0 => StatusCode::OK,
        1 => StatusCode::REQUEST_TIMEOUT,
        3 | 9 | 11 => StatusCode::BAD_REQUEST,
        4 => StatusCode::GATEWAY_TIMEOUT,
        5 => StatusCode::NOT_FOUND,
        6 | 10 => StatusCode::CONFLICT,
        7 => StatusCode::FORBIDDEN,
        8 => StatusCode::TOO_MANY_REQUESTS,
        12 => StatusCode::NOT_IMPLEMENTED,
        14 => StatusCode::SERVICE_UNAVAILABLE,
        16 => StatusCode::UNAUTHORIZED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A JSON response with Go `encoding/json` content.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

pub(crate) fn ok(body: &Value) -> Response {
    json_response(StatusCode::OK, body)
}

/// Parses a request body as grpc-gateway does: empty means `{}`, bad JSON is InvalidArgument.
pub(crate) fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(e.to_string()))?;
    if value.is_object() { Ok(value) } else { Err(ApiError::invalid("request body must be a JSON object")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_precondition_is_400_not_412() {
        assert_eq!(http_status(FAILED_PRECONDITION), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(UNKNOWN), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn stream_error_shape() {
        let e = ApiError::denied().stream_body();
        assert_eq!(
            e,
            json!({"error":{"grpc_code":7,"http_code":403,"message":"permission denied","http_status":"Forbidden"}})
        );
    }
}
