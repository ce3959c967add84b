//! API errors and their one mapping to HTTP: every error is `{"error": "..."}` JSON.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use skyrelay_common::cpapi::ErrorBody;

use crate::store::StoreError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed or invalid input (400).
    #[error("{0}")]
    BadRequest(String),
    /// No valid session (401).
    #[error("authentication required")]
    Unauthorized,
    /// Wrong user name or password (401).
    #[error("invalid user name or password")]
    BadCredentials,
    /// Node-only endpoint without the node credential (401).
    #[error("node credential required")]
    NodeOnly,
    /// Authenticated but not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such resource (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Method not allowed on this path (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The name is taken (409).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// Body of the wrong content type (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too many attempts (429).
    #[error("too many attempts; try again later")]
    TooManyRequests,
    /// No node can serve the request (503).
    #[error("{0}")]
    Unavailable(String),
    /// A fault of the control plane itself (500); details are logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::BadCredentials | ApiError::NodeOnly => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => ApiError::Conflict("resource"),
            StoreError::NotFound => ApiError::NotFound("resource"),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "control-plane request failed");
        }
        (self.status(), Json(ErrorBody { error: self.to_string() })).into_response()
    }
}
