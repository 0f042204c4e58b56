//! The one error type of the HTTP API: each variant has a status and a stable
//! machine code; internal causes are logged, never sent. The `From` impls
//! below are the one table from the services' errors to what a client
//! hears (the pages show the same codes).

use app::api::ApiErrorBody;

use crate::{
    domain::attempt::TransitionError,
    services::{
        accounts::AccountError, admin::AdminError, limits::RateLimited, logins::LoginError,
        passkeys::PasskeyError,
    },
    storage::StoreError,
};
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
    #[error("This account signs in with a passkey only.")]
    PasswordOff,
    /// A passkey refusal; its message says what to do.
    #[error("{}", passkey_message(.0))]
    Passkey(PasskeyError),
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
    #[error("The service is unavailable for a moment; please try again.")]
    Unavailable(#[source] StoreError),
    #[error("Something went wrong on our side; please try again.")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An administration refusal; its message says what to do.
    #[error("{}", sentence(.0))]
    Admin(AdminError),
}

impl ApiError {
    pub(crate) fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }

    /// Every machine code this API can answer with, and its status.
    pub(crate) const CODES: [(&'static str, StatusCode); 45] = [
        ("login_not_found", StatusCode::NOT_FOUND),
        ("invalid_login_id", StatusCode::BAD_REQUEST),
        ("bad_request", StatusCode::BAD_REQUEST),
        ("not_signed_in", StatusCode::UNAUTHORIZED),
        ("invalid_credentials", StatusCode::UNAUTHORIZED),
        ("password_off", StatusCode::FORBIDDEN),
        ("passkey_required", StatusCode::FORBIDDEN),
        ("passkey_refused", StatusCode::FORBIDDEN),
        ("no_passkey", StatusCode::CONFLICT),
        ("password_needed", StatusCode::CONFLICT),
        ("passkeys_unavailable", StatusCode::CONFLICT),
        ("passkey_expired", StatusCode::GONE),
        ("passkey_not_found", StatusCode::NOT_FOUND),
        ("invite_gone", StatusCode::GONE),
        ("registration_closed", StatusCode::FORBIDDEN),
        ("username_taken", StatusCode::CONFLICT),
        ("confirm_first", StatusCode::FORBIDDEN),
        ("no_credential", StatusCode::CONFLICT),
        ("session_not_found", StatusCode::NOT_FOUND),
        ("rate_limited", StatusCode::TOO_MANY_REQUESTS),
        ("cross_site_request", StatusCode::FORBIDDEN),
        ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE),
        (
            "headers_too_large",
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ),
        ("already_scanned", StatusCode::CONFLICT),
        ("wrong_account", StatusCode::FORBIDDEN),
        ("not_scanned", StatusCode::CONFLICT),
        ("not_approved", StatusCode::CONFLICT),
        ("already_approved", StatusCode::CONFLICT),
        ("wrong_match_code", StatusCode::CONFLICT),
        ("login_finished", StatusCode::GONE),
        ("route_not_found", StatusCode::NOT_FOUND),
        ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
        ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
        ("internal", StatusCode::INTERNAL_SERVER_ERROR),
        ("invalid_token", StatusCode::UNAUTHORIZED),
        ("not_admin", StatusCode::FORBIDDEN),
        ("read_only_token", StatusCode::FORBIDDEN),
        ("session_only", StatusCode::FORBIDDEN),
        ("account_not_found", StatusCode::NOT_FOUND),
        ("app_not_found", StatusCode::NOT_FOUND),
        ("token_not_found", StatusCode::NOT_FOUND),
        ("not_found", StatusCode::NOT_FOUND),
        ("username_taken", StatusCode::CONFLICT),
        ("last_admin", StatusCode::CONFLICT),
        ("own_account", StatusCode::CONFLICT),
    ];

    /// The machine code; its status is the one [`Self::CODES`] gives it.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::LoginNotFound => "login_not_found",
            Self::InvalidLoginId => "invalid_login_id",
            Self::BadRequest(_) => "bad_request",
            Self::NotSignedIn => "not_signed_in",
            Self::InvalidCredentials => "invalid_credentials",
            Self::PasswordOff => "password_off",
            Self::Passkey(e) => match e {
                PasskeyError::Required => "passkey_required",
                PasskeyError::Refused => "passkey_refused",
                PasskeyError::NoPasskey => "no_passkey",
                PasskeyError::LastWayIn => "password_needed",
                PasskeyError::Unavailable => "passkeys_unavailable",
                PasskeyError::CeremonyGone => "passkey_expired",
                PasskeyError::NotFound => "passkey_not_found",
                PasskeyError::InviteGone => "invite_gone",
                PasskeyError::RegistrationClosed => "registration_closed",
                PasskeyError::UsernameTaken(_) => "username_taken",
                PasskeyError::ConfirmFirst => "confirm_first",
                PasskeyError::NoCredential => "no_credential",
                PasskeyError::WrongPassword => "invalid_credentials",
                PasskeyError::InvalidInput(_) | PasskeyError::TooMany => "bad_request",
                // Mapped to their own variants by `From`.
                PasskeyError::RateLimited(_) | PasskeyError::Store(_) => "unavailable",
                PasskeyError::Internal(_) => "internal",
            },
            Self::SessionNotFound => "session_not_found",
            Self::RateLimited { .. } => "rate_limited",
            Self::CrossSite => "cross_site_request",
            Self::PayloadTooLarge => "payload_too_large",
            Self::HeadersTooLarge => "headers_too_large",
            Self::Transition(e) => match e {
                TransitionError::ScannedByOther => "already_scanned",
                TransitionError::ForAnotherAccount => "wrong_account",
                TransitionError::NotScanned => "not_scanned",
                TransitionError::NotApproved => "not_approved",
                TransitionError::AlreadyApproved => "already_approved",
                TransitionError::WrongMatchCode => "wrong_match_code",
                TransitionError::Finished(_) => "login_finished",
            },
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
            Self::Admin(e) => match e {
                AdminError::NotSignedIn => "not_signed_in",
                AdminError::InvalidToken => "invalid_token",
                AdminError::NotAdmin => "not_admin",
                AdminError::ConfirmFirst => "confirm_first",
                AdminError::ReadOnlyToken => "read_only_token",
                AdminError::SessionOnly => "session_only",
                AdminError::NoSuchAccount(_) => "account_not_found",
                AdminError::NoSuchApp(_) => "app_not_found",
                AdminError::NoSuchToken(_) => "token_not_found",
                AdminError::NotFound(_) => "not_found",
                AdminError::UsernameTaken(_) => "username_taken",
                AdminError::LastAdmin => "last_admin",
                AdminError::OwnAccount => "own_account",
                AdminError::InvalidInput(_) => "bad_request",
                // Mapped to their own variants by `From`.
                AdminError::RateLimited(_) | AdminError::Store(_) => "unavailable",
                AdminError::Account(_) | AdminError::Passkey(_) | AdminError::Oidc(_) => "internal",
            },
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        let code = self.code();
        Self::CODES
            .iter()
            .find(|(listed, _)| *listed == code)
            .map_or(StatusCode::INTERNAL_SERVER_ERROR, |(_, status)| *status)
    }

    /// Logs what the client is not told: the cause of a 500 or a 503.
    pub(crate) fn log_cause(&self) {
        match self {
            Self::Internal(source) => tracing::error!(error = %source, "request failed"),
            Self::Unavailable(source) => {
                metrics::counter!("qrlogin_store_errors_total").increment(1);
                tracing::warn!(error = %source, "a store is unavailable");
            }
            _ => {}
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log_cause();
        let body = ApiErrorBody {
            error: self.code().to_owned(),
            message: self.to_string(),
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Self::RateLimited { retry_after } = &self {
            let seconds = retry_after.as_secs_f64().ceil() as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

impl From<RateLimited> for ApiError {
    fn from(RateLimited { retry_after }: RateLimited) -> Self {
        Self::RateLimited { retry_after }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        Self::Unavailable(err)
    }
}

impl From<LoginError> for ApiError {
    fn from(err: LoginError) -> Self {
        match err {
            LoginError::NotFound => Self::LoginNotFound,
            LoginError::Transition(e) => Self::Transition(e),
            e @ LoginError::WaitTooLong => Self::BadRequest(format!("{e}.")),
            LoginError::NotSignedIn => Self::NotSignedIn,
            LoginError::RateLimited(e) => e.into(),
            LoginError::Passkey(e) => e.into(),
            LoginError::Store(e) => e.into(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        match err {
            // Malformed names or passwords fail like wrong ones: the answer
            // tells nothing about which accounts exist.
            AccountError::InvalidCredentials | AccountError::InvalidInput(_) => {
                Self::InvalidCredentials
            }
            AccountError::SessionNotFound => Self::SessionNotFound,
            AccountError::PasswordOff => Self::PasswordOff,
            AccountError::RateLimited(e) => e.into(),
            AccountError::Store(e) => e.into(),
            e @ (AccountError::UsernameTaken(_)
            | AccountError::NoSuchAccount(_)
            | AccountError::Password(_)) => Self::internal(e),
        }
    }
}

impl From<PasskeyError> for ApiError {
    fn from(err: PasskeyError) -> Self {
        match err {
            PasskeyError::RateLimited(e) => e.into(),
            PasskeyError::Store(e) => e.into(),
            e @ PasskeyError::Internal(_) => Self::internal(e),
            e => Self::Passkey(e),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(err: AdminError) -> Self {
        match err {
            AdminError::RateLimited(e) => e.into(),
            AdminError::Store(e) => e.into(),
            AdminError::Passkey(e) => e.into(),
            AdminError::Account(e) => match e {
                AccountError::RateLimited(e) => e.into(),
                AccountError::Store(e) => e.into(),
                e => Self::internal(e),
            },
            e @ AdminError::Oidc(_) => Self::internal(e),
            e => Self::Admin(e),
        }
    }
}

/// An error's text as a sentence: capitalised, with a full stop.
fn sentence(err: &impl std::fmt::Display) -> String {
    let text = err.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => text,
    }
}

/// A passkey refusal as a sentence.
fn passkey_message(err: &PasskeyError) -> String {
    let text = err.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => text,
    }
}

pub(crate) async fn route_not_found() -> ApiError {
    ApiError::RouteNotFound
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant's code is in the published table (which gives its
    /// status), none falls back to 500.
    #[test]
    fn every_variant_answers_a_listed_code_and_status() {
        let transitions = [
            TransitionError::ScannedByOther,
            TransitionError::ForAnotherAccount,
            TransitionError::NotScanned,
            TransitionError::NotApproved,
            TransitionError::AlreadyApproved,
            TransitionError::WrongMatchCode,
            TransitionError::Finished(app::api::LoginState::Denied),
        ];
        let mut errors = vec![
            ApiError::LoginNotFound,
            ApiError::InvalidLoginId,
            ApiError::BadRequest("x".into()),
            ApiError::NotSignedIn,
            ApiError::InvalidCredentials,
            ApiError::RateLimited {
                retry_after: std::time::Duration::from_secs(1),
            },
            ApiError::CrossSite,
            ApiError::PayloadTooLarge,
            ApiError::HeadersTooLarge,
            ApiError::SessionNotFound,
            ApiError::RouteNotFound,
            ApiError::MethodNotAllowed,
            ApiError::Unavailable(StoreError::Unavailable("down".into())),
            ApiError::internal(StoreError::Duplicate),
            ApiError::Admin(AdminError::NotSignedIn),
            ApiError::Admin(AdminError::InvalidToken),
            ApiError::Admin(AdminError::NotAdmin),
            ApiError::Admin(AdminError::ConfirmFirst),
            ApiError::Admin(AdminError::ReadOnlyToken),
            ApiError::Admin(AdminError::SessionOnly),
            ApiError::Admin(AdminError::NoSuchAccount("x".into())),
            ApiError::Admin(AdminError::NoSuchApp("x".into())),
            ApiError::Admin(AdminError::NoSuchToken("x".into())),
            ApiError::Admin(AdminError::NotFound("passkey")),
            ApiError::Admin(AdminError::UsernameTaken("x".into())),
            ApiError::Admin(AdminError::LastAdmin),
            ApiError::Admin(AdminError::OwnAccount),
            ApiError::Admin(AdminError::InvalidInput("x".into())),
        ];
        errors.extend(transitions.map(ApiError::Transition));
        for error in errors {
            let code = error.code();
            assert!(
                ApiError::CODES.iter().any(|(listed, _)| *listed == code),
                "{code}"
            );
            let internal = code == "internal";
            assert_eq!(
                error.status() == StatusCode::INTERNAL_SERVER_ERROR,
                internal,
                "{code}"
            );
        }
    }
}
