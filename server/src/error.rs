//! The one error type of the HTTP API: each variant has a status and a stable
//! machine code; internal causes are logged, never sent.

use app::api::ApiErrorBody;
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Unknown id, or a request without the creating browser's bind secret:
    /// the two must be indistinguishable.
    #[error("No sign-in request with this id exists for this browser.")]
    LoginNotFound,
    #[error("The sign-in id is malformed: it must be a UUID as issued by this server.")]
    InvalidLoginId,
    #[error("{0}")]
    BadRequest(String),
    #[error("There is nothing at this address.")]
    RouteNotFound,
    #[error("This address does not accept that method.")]
    MethodNotAllowed,
    #[error("Something went wrong on our side; please try again.")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::LoginNotFound => (StatusCode::NOT_FOUND, "login_not_found"),
            Self::InvalidLoginId => (StatusCode::BAD_REQUEST, "invalid_login_id"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::RouteNotFound => (StatusCode::NOT_FOUND, "route_not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(source) = &self {
            tracing::error!(error = %source, "request failed");
        }
        let body = ApiErrorBody {
            error: code.to_owned(),
            message: self.to_string(),
        };
        (status, Json(body)).into_response()
    }
}

pub async fn route_not_found() -> ApiError {
    ApiError::RouteNotFound
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
