//! The one error type of the HTTP API: each variant has a status and a stable
//! machine code; internal causes are logged, never sent.

use app::api::ApiErrorBody;

use crate::login::TransitionError;
use axum::{
    http::{header, HeaderValue, StatusCode},
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
    #[error("Sign in first.")]
    NotSignedIn,
    #[error("Wrong username or password.")]
    InvalidCredentials,
    #[error("Too many requests; try again in a moment.")]
    RateLimited { retry_after: std::time::Duration },
    #[error("This request came from another site and was refused.")]
    CrossSite,
    #[error("The request body is too large.")]
    PayloadTooLarge,
    #[error("The request headers are too large.")]
    HeadersTooLarge,
    #[error("No such session on this account.")]
    SessionNotFound,
    #[error("{0}")]
    Transition(#[from] TransitionError),
    #[error("There is nothing at this address.")]
    RouteNotFound,
    #[error("This address does not accept that method.")]
    MethodNotAllowed,
    #[error("Something went wrong on our side; please try again.")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::LoginNotFound => (StatusCode::NOT_FOUND, "login_not_found"),
            Self::InvalidLoginId => (StatusCode::BAD_REQUEST, "invalid_login_id"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::NotSignedIn => (StatusCode::UNAUTHORIZED, "not_signed_in"),
            Self::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            Self::SessionNotFound => (StatusCode::NOT_FOUND, "session_not_found"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::CrossSite => (StatusCode::FORBIDDEN, "cross_site_request"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            Self::Transition(e) => match e {
                TransitionError::ScannedByOther => (StatusCode::CONFLICT, "already_scanned"),
                TransitionError::NotScanned => (StatusCode::CONFLICT, "not_scanned"),
                TransitionError::NotApproved => (StatusCode::CONFLICT, "not_approved"),
                TransitionError::AlreadyApproved => (StatusCode::CONFLICT, "already_approved"),
                TransitionError::WrongMatchCode => (StatusCode::CONFLICT, "wrong_match_code"),
                TransitionError::Finished(_) => (StatusCode::GONE, "login_finished"),
            },
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
        let mut response = (status, Json(body)).into_response();
        if let Self::RateLimited { retry_after } = &self {
            let seconds = retry_after.as_secs_f64().ceil() as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

pub async fn route_not_found() -> ApiError {
    ApiError::RouteNotFound
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
