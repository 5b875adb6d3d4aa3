//! API errors: one enum, converted at the edge into a status code and `{"error","detail"}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Everything an API request can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A query or path parameter is malformed or out of range (400).
    #[error("invalid parameter: {0}")]
    BadRequest(String),
    /// No or an unusable `Authorization` header, or an unknown/revoked token (401).
    #[error("authentication required: {0}")]
    Unauthorized(String),
    /// The token is valid but may not do this (403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No such host for this caller, or no such route (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The route exists but not for this method (405).
    #[error("method not allowed: {0}")]
    MethodNotAllowed(String),
    /// A dependency (the database) is unavailable (503).
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A server fault; never used for client mistakes (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status code.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The short `error` field.
    fn title(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not found",
            Self::MethodNotAllowed(_) => "method not allowed",
            Self::Unavailable(_) => "service unavailable",
            Self::Internal(_) => "internal error",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Self::BadRequest(detail)
            | Self::Unauthorized(detail)
            | Self::Forbidden(detail)
            | Self::NotFound(detail)
            | Self::MethodNotAllowed(detail)
            | Self::Unavailable(detail)
            | Self::Internal(detail) => detail,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.title(), "detail": self.detail() }));
        let mut response = (self.status(), body).into_response();
        if matches!(self, Self::Unauthorized(_)) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"prism\""),
            );
        }
        response
    }
}
