//! What the Leptos pages' server functions may do, on top of the same
//! functions the JSON API uses.

use app::{
    api::{LoginState, User},
    backend::Backend,
    server_fns::{AccountView, PhoneLoginView},
};
use async_trait::async_trait;
use axum::http::request::Parts;
use leptos::prelude::ServerFnError;

use crate::{
    account::{
        routes::{authenticate, end_session, recent_sign_ins, revoke, sessions_of},
        store::SignInMethod,
    },
    client::ClientContext,
    error::ApiError,
    login::{
        now_millis,
        routes::{approve, deny, scan, scanned_view},
        LoginId, TransitionError,
    },
    session::{clear_session_cookie, session_cookie, start_session, CurrentSession},
    AppState,
};

/// Internal causes are logged by the API error; the page gets only the code.
fn page_error(err: ApiError) -> ServerFnError {
    if let ApiError::Internal(source) = &err {
        tracing::error!(error = %source, "page request failed");
    }
    ServerFnError::new(err.code())
}

fn header_string(value: axum::http::HeaderValue) -> String {
    value.to_str().unwrap_or_default().to_owned()
}

impl AppState {
    /// Who is calling, seen through the trusted proxies.
    fn client(&self, request: &Parts) -> ClientContext {
        ClientContext::from_parts(request, &self.trusted_proxies)
    }

    async fn signed_in(&self, request: &Parts) -> Result<Option<CurrentSession>, ServerFnError> {
        CurrentSession::from_headers(self, &request.headers)
            .await
            .map_err(page_error)
    }
}

/// Refusals the phone page shows from the attempt's state; others are errors.
fn shown_by_page(result: Result<(), ApiError>) -> Result<(), ServerFnError> {
    match result {
        Ok(()) | Err(ApiError::Transition(_) | ApiError::LoginNotFound) => Ok(()),
        Err(e) => Err(page_error(e)),
    }
}

#[async_trait]
impl Backend for AppState {
    async fn current_user(&self, request: &Parts) -> Result<Option<User>, ServerFnError> {
        Ok(self.signed_in(request).await?.map(|c| c.account.to_api()))
    }

    async fn phone_login(
        &self,
        request: &Parts,
        id: &str,
    ) -> Result<PhoneLoginView, ServerFnError> {
        let Some(current) = self.signed_in(request).await? else {
            return Ok(PhoneLoginView::SignInNeeded);
        };
        let Ok(id) = id.parse::<LoginId>() else {
            return Ok(PhoneLoginView::Unknown);
        };
        let client = self.client(request);
        match scan(self, id, &current, &client).await {
            Ok(attempt) => Ok(match attempt.state {
                LoginState::Scanned => PhoneLoginView::Confirm {
                    me: current.account.to_api(),
                    scanned: scanned_view(&attempt, &client, now_millis()),
                },
                LoginState::Approved => PhoneLoginView::Approved,
                state => PhoneLoginView::Finished { state },
            }),
            Err(ApiError::LoginNotFound) => Ok(PhoneLoginView::Unknown),
            Err(ApiError::Transition(TransitionError::ScannedByOther)) => {
                Ok(PhoneLoginView::TakenByOther)
            }
            Err(ApiError::Transition(TransitionError::Finished(state))) => {
                Ok(PhoneLoginView::Finished { state })
            }
            Err(e) => Err(page_error(e)),
        }
    }

    async fn approve(
        &self,
        request: &Parts,
        id: &str,
        match_code: u8,
    ) -> Result<(), ServerFnError> {
        let (Some(current), Ok(id)) = (self.signed_in(request).await?, id.parse::<LoginId>())
        else {
            return Ok(());
        };
        let client = self.client(request);
        shown_by_page(
            approve(self, id, &current, &client, match_code)
                .await
                .map(drop),
        )
    }

    async fn deny(&self, request: &Parts, id: &str) -> Result<(), ServerFnError> {
        let (Some(current), Ok(id)) = (self.signed_in(request).await?, id.parse::<LoginId>())
        else {
            return Ok(());
        };
        let client = self.client(request);
        shown_by_page(deny(self, id, &current, &client).await.map(drop))
    }

    async fn sign_in(
        &self,
        request: &Parts,
        username: &str,
        password: &str,
    ) -> Result<Option<String>, ServerFnError> {
        let client = self.client(request);
        let account = match authenticate(self, username, password, &client).await {
            Ok(account) => account,
            // A refused or throttled sign-in shows the same message.
            Err(ApiError::InvalidCredentials | ApiError::RateLimited { .. }) => return Ok(None),
            Err(e) => return Err(page_error(e)),
        };
        let (token, _) = start_session(self, &account, SignInMethod::Password, &client)
            .await
            .map_err(page_error)?;
        Ok(Some(header_string(session_cookie(
            &token,
            self.public_url.is_https(),
        ))))
    }

    async fn sign_out(&self, request: &Parts) -> Result<String, ServerFnError> {
        let client = self.client(request);
        end_session(self, &request.headers, &client)
            .await
            .map_err(page_error)?;
        Ok(header_string(clear_session_cookie(
            self.public_url.is_https(),
        )))
    }

    async fn account(&self, request: &Parts) -> Result<Option<AccountView>, ServerFnError> {
        let Some(current) = self.signed_in(request).await? else {
            return Ok(None);
        };
        let sessions = sessions_of(self, &current).await.map_err(page_error)?;
        let recent = recent_sign_ins(self, &current).await.map_err(page_error)?;
        Ok(Some(AccountView {
            user: current.account.to_api(),
            sessions,
            recent,
        }))
    }

    async fn revoke(&self, request: &Parts, session_id: &str) -> Result<(), ServerFnError> {
        let Some(current) = self.signed_in(request).await? else {
            return Ok(());
        };
        let client = self.client(request);
        match revoke(self, &current, session_id, &client).await {
            Ok(()) | Err(ApiError::SessionNotFound) => Ok(()),
            Err(e) => Err(page_error(e)),
        }
    }
}
