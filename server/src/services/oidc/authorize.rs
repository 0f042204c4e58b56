//! The authorization endpoint with the phone as the sign-in: a request is
//! checked, then either answered at once (a browser already signed in,
//! whose account consented before), or sealed into the login card's URL
//! while the card shows its QR; once the phone approved and the desktop
//! redeemed, the request goes back to the client with a code. Also
//! RP-initiated logout.
//!
//! Nothing is stored for a request until a person acts on it: the
//! authorization endpoint only reads (the client, the session, the
//! consent) and hands the browser the request sealed
//! ([`Sealer`](super::sealing::Sealer)); its record is written when the
//! login card makes its first code for it, which counts against the
//! per-address limit on new attempts. A flood of authorization requests
//! therefore writes nothing and takes no lock sign-ins wait on.

use app::api::{plausible_authorization, MAX_AUTHORIZATION_HANDLE};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::{rngs::OsRng, RngCore};

use super::{kinds, seconds, to_json, OidcError, OidcService};
use crate::{
    domain::{
        attempt::LoginId,
        audit::AuditEvent,
        authorization::{
            check_request, redirect_to, AuthorizeError, AuthorizeErrorCode, AuthorizeParams,
            CheckedRequest, Untrusted,
        },
        caller::Caller,
        oidc::{
            lifetimes, secret_digest, session_sid, AuthorizationCode, AuthorizationRequest, Client,
            RequestId,
        },
        secret::Secret,
        time::now_millis,
    },
    services::{
        accounts::{AccountError, CurrentSession},
        logins::{Created, LoginError},
    },
    storage::{ProviderRecord, StoreError},
};

/// What a sealed authorization request is sealed for (nothing sealed for
/// another purpose opens as one).
const SEALED_REQUEST: &[u8] = b"qrlogin/oauth2/authorization-request/v1";

/// What the authorization endpoint does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeOutcome {
    /// A request that must not go back to the client (unknown client, a
    /// `redirect_uri` it did not register): a page on qrlogin says why.
    Refused(Untrusted),
    /// Back to the client's (trusted) `redirect_uri` with this error.
    Error {
        redirect_uri: String,
        state: Option<String>,
        error: AuthorizeError,
    },
    /// Back to the client with a code: this URL.
    Redirect(String),
    /// The phone must approve: the login card for this request, which
    /// travels sealed (URL-safe, at most
    /// [`MAX_AUTHORIZATION_HANDLE`] characters).
    Phone { request: String },
}

/// What RP-initiated logout does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutOutcome {
    /// Signed out; back to the client at this URL.
    Redirect(String),
    /// Signed out (or was not signed in); qrlogin's own page says so.
    SignedOut,
    /// No valid `id_token_hint`: the person must confirm, since anybody
    /// can link here.
    Confirm,
}

impl OidcService {
    /// `GET` or `POST /oauth2/authorize`: the client and its
    /// `redirect_uri` first (nothing goes back to a client that is not
    /// trusted), then the request's parameters, then the browser's session.
    pub async fn authorize(
        &self,
        params: &AuthorizeParams,
        current: Option<&CurrentSession>,
        caller: &Caller,
    ) -> Result<AuthorizeOutcome, OidcError> {
        let Some(client) = (match params.client_id.as_deref() {
            Some(id) => self.client(id).await?,
            None => None,
        }) else {
            return Ok(AuthorizeOutcome::Refused(Untrusted::UnknownClient));
        };
        let Some(redirect_uri) = params
            .redirect_uri
            .as_deref()
            .filter(|uri| client.allows_redirect(uri))
        else {
            return Ok(AuthorizeOutcome::Refused(Untrusted::UnregisteredRedirect {
                client_name: client.name,
            }));
        };
        let back = |error: AuthorizeError| AuthorizeOutcome::Error {
            redirect_uri: redirect_uri.to_owned(),
            state: params.state.clone(),
            error,
        };
        let checked = match check_request(params, client.is_public()) {
            Ok(checked) => checked,
            Err(error) => return Ok(back(error)),
        };
        let request = AuthorizationRequest {
            client_id: client.id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            scopes: checked.scopes.clone(),
            state: params.state.clone(),
            nonce: params.nonce.clone(),
            code_challenge: checked.code_challenge.clone(),
            login_hint: checked.login_hint.clone(),
            created_at: now_millis(),
            attempts: Vec::new(),
            completed: false,
        };
        // Signed in as another account than the client expects: as good as
        // not signed in for this request (that account's phone approves).
        let current = current.filter(|current| {
            request
                .login_hint
                .as_deref()
                .is_none_or(|hint| hint == current.account.username)
        });
        if let Some(current) = current {
            if let Some(url) = self
                .straight_through(&client, &request, current, &checked, caller)
                .await?
            {
                return Ok(AuthorizeOutcome::Redirect(url));
            }
        }
        if checked.prompt.none {
            return Ok(back(AuthorizeError {
                code: match current {
                    Some(_) => AuthorizeErrorCode::ConsentRequired,
                    None => AuthorizeErrorCode::LoginRequired,
                },
                description: "the person must approve on their phone",
            }));
        }
        self.seal_for_the_card(&request).await
    }

    /// A browser already signed in, whose account consented, goes back to
    /// the client with a code at once, unless the client wants a fresh
    /// sign-in (`prompt=login`, or a session older than `max_age`).
    async fn straight_through(
        &self,
        client: &Client,
        request: &AuthorizationRequest,
        current: &CurrentSession,
        checked: &CheckedRequest,
        caller: &Caller,
    ) -> Result<Option<String>, OidcError> {
        let age = now_millis().saturating_sub(current.session.created_at);
        let too_old = checked.max_age_ms.is_some_and(|max| age > max);
        if checked.prompt.login
            || too_old
            || !self.has_consent(current.account.id, &client.id).await?
        {
            return Ok(None);
        }
        self.code_redirect(client, request, current, caller)
            .await
            .map(Some)
    }

    /// The request, stored nowhere: sealed into the login card's URL.
    async fn seal_for_the_card(
        &self,
        request: &AuthorizationRequest,
    ) -> Result<AuthorizeOutcome, OidcError> {
        let mut id: RequestId = [0; 16];
        OsRng.fill_bytes(&mut id);
        let bytes = request
            .to_bytes(&id)
            .ok_or_else(|| OidcError::Internal("an authorization request too long".into()))?;
        let sealed = self.sealer.seal(SEALED_REQUEST, &bytes).await?;
        if !plausible_authorization(&sealed) {
            return Err(OidcError::Internal(format!(
                "a sealed authorization request over {MAX_AUTHORIZATION_HANDLE} characters"
            )));
        }
        Ok(AuthorizeOutcome::Phone { request: sealed })
    }

    /// The request a login card's URL carries, and the key of its record
    /// (which exists once the card made a code for it); `None` when it is
    /// not one this provider sealed, or its 10 minutes are over. Reads
    /// nothing but the sealing key.
    async fn unseal(
        &self,
        sealed: &str,
    ) -> Result<Option<(String, AuthorizationRequest)>, StoreError> {
        if !plausible_authorization(sealed) {
            return Ok(None);
        }
        let Some(bytes) = self.sealer.open(SEALED_REQUEST, sealed).await? else {
            return Ok(None);
        };
        let Some((id, request)) = AuthorizationRequest::from_bytes(&bytes) else {
            return Ok(None);
        };
        let expires_at = request
            .created_at
            .saturating_add(lifetimes::AUTHORIZATION_REQUEST_MS);
        if now_millis() >= expires_at {
            return Ok(None);
        }
        Ok(Some((URL_SAFE_NO_PAD.encode(id), request)))
    }

    /// The record of a request a login card made codes for.
    async fn request_record(
        &self,
        key: &str,
    ) -> Result<Option<(AuthorizationRequest, ProviderRecord)>, StoreError> {
        self.load(kinds::AUTHORIZATION, key).await
    }

    /// The name of the client a waiting request is for (the login page's
    /// heading); `None` when there is no such request (any more: expired,
    /// or already gone back to its client).
    pub async fn request_client_name(&self, sealed: &str) -> Result<Option<String>, StoreError> {
        let Some((key, request)) = self.unseal(sealed).await? else {
            return Ok(None);
        };
        if self
            .request_record(&key)
            .await?
            .is_some_and(|(stored, _)| stored.completed)
        {
            return Ok(None);
        }
        Ok(self.client(&request.client_id).await?.map(|c| c.name))
    }

    /// A login attempt for the waiting request: the phone shows the
    /// client's name, and the request's record (written now, at the first
    /// code: the first time a person acts on the request) remembers the
    /// attempt, so that only a sign-in approved for it lets it go on. The
    /// attempt counts against the per-address limit on new attempts before
    /// anything is written.
    pub async fn create_login(&self, sealed: &str, caller: &Caller) -> Result<Created, LoginError> {
        let Some((key, request)) = self.unseal(sealed).await? else {
            return Err(LoginError::NotFound);
        };
        let Some(client) = self.client(&request.client_id).await? else {
            return Err(LoginError::NotFound);
        };
        if self
            .request_record(&key)
            .await?
            .is_some_and(|(stored, _)| stored.completed)
        {
            return Err(LoginError::NotFound);
        }
        let expected_account = self.hinted_account(&request).await?;
        let created = self
            .logins
            .create_for(caller, Some(client.name), expected_account)
            .await?;
        let attempt = created.attempt.id.to_string();
        let expires_at = request
            .created_at
            .saturating_add(lifetimes::AUTHORIZATION_REQUEST_MS);
        for _ in 0..8 {
            let now = now_millis();
            let Some((mut stored, record)) = self.request_record(&key).await? else {
                let first = AuthorizationRequest {
                    attempts: vec![attempt.clone()],
                    ..request.clone()
                };
                let value = to_json(&first).map_err(|e| StoreError::Unavailable(e.to_string()))?;
                match self
                    .store
                    .insert(kinds::AUTHORIZATION, &key, &value, expires_at, now)
                    .await
                {
                    Ok(()) => {
                        tracing::debug!(client = %client.id, "authorization request acted on");
                        return Ok(created);
                    }
                    // Another tab's first code: add to its record.
                    Err(StoreError::Duplicate) => continue,
                    Err(err) => return Err(err.into()),
                }
            };
            if stored.completed {
                return Err(LoginError::NotFound);
            }
            stored.attempts.push(attempt.clone());
            // The card replaces codes at most 6 times; keep a few more.
            let excess = stored.attempts.len().saturating_sub(10);
            stored.attempts.drain(..excess);
            let value = to_json(&stored).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            if self
                .store
                .replace(
                    kinds::AUTHORIZATION,
                    &key,
                    record.version,
                    &value,
                    record.expires_at,
                    now,
                )
                .await?
            {
                return Ok(created);
            }
            // Changed meanwhile (another tab's code): read it again.
        }
        Err(StoreError::Unavailable("authorization request kept changing".into()).into())
    }

    /// The account the request's `login_hint` names, if there is one by
    /// that name (a hint that names nobody restricts nothing).
    async fn hinted_account(
        &self,
        request: &AuthorizationRequest,
    ) -> Result<Option<i64>, StoreError> {
        let Some(hint) = request.login_hint.as_deref() else {
            return Ok(None);
        };
        match self.accounts.account_named(hint).await {
            Ok(account) => Ok(Some(account.id)),
            Err(AccountError::Store(err)) => Err(err),
            Err(_) => Ok(None),
        }
    }

    /// `GET /oauth2/authorize/resume?request=…`, where the login card goes
    /// once signed in: the request goes back to its client with a code if
    /// one of its attempts was redeemed by the account signed in here (the
    /// phone's approval, which is also the consent). `None`: nothing to
    /// resume (no such request, or not approved for it): the caller shows
    /// the login card again.
    pub async fn resume(
        &self,
        sealed: &str,
        current: &CurrentSession,
        caller: &Caller,
    ) -> Result<Option<String>, OidcError> {
        let Some((key, _)) = self.unseal(sealed).await? else {
            return Ok(None);
        };
        let mut finished = None;
        for _ in 0..8 {
            // No record: no code was ever made for it, so none approved.
            let Some((stored, record)) = self.request_record(&key).await? else {
                return Ok(None);
            };
            if stored.completed || !self.approved_by(&stored, current.account.id).await? {
                return Ok(None);
            }
            // One use: the request is used up before its code is made (its
            // record stays until it expires, so the URL cannot start again).
            let done = AuthorizationRequest {
                attempts: Vec::new(),
                completed: true,
                ..stored.clone()
            };
            if self
                .store
                .replace(
                    kinds::AUTHORIZATION,
                    &key,
                    record.version,
                    &to_json(&done)?,
                    record.expires_at,
                    now_millis(),
                )
                .await?
            {
                finished = Some(stored);
                break;
            }
            // Changed meanwhile (a code made, or another tab resumed): again.
        }
        let Some(request) = finished else {
            return Ok(None);
        };
        let Some(client) = self.client(&request.client_id).await? else {
            return Ok(None);
        };
        self.remember_consent(current.account.id, &client.id)
            .await?;
        let url = self
            .code_redirect(&client, &request, current, caller)
            .await?;
        Ok(Some(url))
    }

    /// Whether one of the request's own attempts was redeemed by
    /// `account_id` (the phone's approval, for this request).
    async fn approved_by(
        &self,
        request: &AuthorizationRequest,
        account_id: i64,
    ) -> Result<bool, StoreError> {
        for attempt in request.attempts.iter().rev() {
            let Ok(id) = attempt.parse::<LoginId>() else {
                continue;
            };
            if self.logins.redeemed_by(id).await? == Some(account_id) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A new grant for the session's account, made through that session
    /// (its `sid`, its start as `auth_time`), and its code, as the
    /// redirect back to the client.
    async fn code_redirect(
        &self,
        client: &Client,
        request: &AuthorizationRequest,
        current: &CurrentSession,
        caller: &Caller,
    ) -> Result<String, OidcError> {
        let account_id = current.account.id;
        let session = &current.session;
        let (grant_key, _) = self
            .new_grant(
                account_id,
                client,
                &request.scopes,
                seconds(session.created_at),
                Some(session_sid(&session.id)),
            )
            .await?;
        let code = Secret::new_random().encode();
        let stored = AuthorizationCode {
            grant_key,
            client_id: client.id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            nonce: request.nonce.clone(),
            used: false,
        };
        let now = now_millis();
        self.store
            .insert(
                kinds::CODE,
                &secret_digest(&code),
                &to_json(&stored)?,
                now + lifetimes::CODE_MS,
                now,
            )
            .await?;
        self.audit.record_app(
            AuditEvent::AppSignedIn,
            Some(account_id),
            &client.id,
            caller,
        );
        Ok(redirect_to(
            &request.redirect_uri,
            &[("code", &code)],
            request.state.as_deref(),
            &self.issuer,
        ))
    }

    /// `GET /oauth2/logout` (RP-initiated logout): with a valid
    /// `id_token_hint` for the account signed in here, signs out and goes
    /// back to a `post_logout_redirect_uri` the client registered (one of
    /// its post-logout URIs, or of its redirect URIs where it registered
    /// none); without one, asks the person first.
    pub async fn end_session(
        &self,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
        confirmed: bool,
        current: Option<&CurrentSession>,
        caller: &Caller,
    ) -> Result<LogoutOutcome, OidcError> {
        #[derive(serde::Deserialize)]
        struct Hint {
            sub: String,
            aud: String,
        }
        let hint = match id_token_hint {
            Some(token) => self.keys.verify::<Hint>(token, &self.issuer).await,
            None => None,
        };
        if id_token_hint.is_some() && hint.is_none() {
            return Err(OidcError::InvalidRequest(
                "id_token_hint is not an ID token of this provider".into(),
            ));
        }
        let hint_matches = match (&hint, current) {
            (Some(hint), Some(current)) => hint.sub == current.account.subject,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !hint_matches && !confirmed && current.is_some() {
            return Ok(LogoutOutcome::Confirm);
        }
        if let Some(current) = current {
            self.accounts.sign_out(current, caller).await?;
        }
        let client = match &hint {
            Some(hint) => self.client(&hint.aud).await?,
            None => None,
        };
        match (client, post_logout_redirect_uri) {
            (Some(client), Some(uri)) if client.allows_post_logout(uri) => {
                let mut url = url::Url::parse(uri).map_err(|_| {
                    OidcError::InvalidRequest("bad post_logout_redirect_uri".into())
                })?;
                if let Some(state) = state {
                    url.query_pairs_mut().append_pair("state", state);
                }
                Ok(LogoutOutcome::Redirect(url.to_string()))
            }
            (_, Some(_)) => Err(OidcError::InvalidRequest(
                "post_logout_redirect_uri is not registered for the client of id_token_hint".into(),
            )),
            _ => Ok(LogoutOutcome::SignedOut),
        }
    }
}
