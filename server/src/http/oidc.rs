//! The OpenID Connect provider's endpoints: discovery, JWKS, authorize
//! (with the login card as its sign-in page), token, userinfo, revocation,
//! RP-initiated logout and the RFC 8628 device authorization endpoint.
//! They speak OAuth's error format (`{error, error_description}`), not
//! API v1's, and call the [`OidcService`](crate::services::oidc::OidcService).

use app::{
    api::paths,
    i18n::{fill, Lang},
};
use axum::{
    extract::{FromRequest, Request, State},
    http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::get,
    Json, Router,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use serde::{de::DeserializeOwned, Deserialize};
use tower_http::cors::{Any, CorsLayer};

use super::{
    cookies::clear_session_cookie,
    extract::{current_session, ApiQuery},
    state::AppState,
};
use crate::{
    domain::{
        authorization::{redirect_to, AuthorizeParams, Untrusted},
        caller::Caller,
        dpop::SIGNING_ALG_NAMES,
        oidc::SCOPES_SUPPORTED,
    },
    services::{
        accounts::CurrentSession,
        oidc::{
            authorize::{AuthorizeOutcome, LogoutOutcome},
            dpop::DpopRequest,
            tokens::TokenRequest,
            ClientCredentials, OidcError,
        },
    },
};

/// The endpoints a relying party's back end, a SPA or a device calls:
/// authenticated by client credentials, codes or tokens, never by a
/// cookie, so the cross-site guard does not apply and CORS allows any
/// origin (without credentials).
pub(crate) const CLIENT_ENDPOINTS: [&str; 4] = [
    paths::TOKEN,
    paths::REVOKE,
    paths::DEVICE_AUTHORIZATION,
    paths::USERINFO,
];

pub(crate) fn routes() -> Router<AppState> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(DPOP),
        ])
        // A browser client must read the nonce to put it in its next proof.
        .expose_headers([HeaderName::from_static(DPOP_NONCE)]);
    let for_clients = Router::new()
        .route(paths::OIDC_DISCOVERY, get(discovery))
        .route(paths::JWKS, get(jwks))
        .route(paths::TOKEN, axum::routing::post(token))
        .route(paths::USERINFO, get(userinfo).post(userinfo))
        .route(paths::REVOKE, axum::routing::post(revoke))
        .route(
            paths::DEVICE_AUTHORIZATION,
            axum::routing::post(device_authorization),
        )
        .layer(cors);
    Router::new()
        .route(paths::AUTHORIZE, get(authorize).post(authorize_post))
        .route(paths::AUTHORIZE_RESUME, get(resume))
        .route(paths::END_SESSION, get(logout).post(logout_confirmed))
        .merge(for_clients)
        .layer(axum::middleware::map_response(no_store))
}

/// Tokens and codes must never be cached (RFC 6749 §5.1).
async fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

// ---- errors ----

/// An OAuth error answer: status, `{error, error_description}`, and the
/// headers RFC 6749 §5.2 and RFC 6750 §3 ask for.
struct OAuthError {
    error: OidcError,
    /// The client authenticated with HTTP Basic (a 401 then says so).
    basic: bool,
    /// At a resource (user info) rather than the token endpoint: a DPoP
    /// error is a 401 with a `WWW-Authenticate: DPoP` challenge (RFC 9449
    /// §7.1, §9).
    resource: bool,
}

impl From<OidcError> for OAuthError {
    fn from(error: OidcError) -> Self {
        Self {
            error,
            basic: false,
            resource: false,
        }
    }
}

/// The `DPoP` request header, and the `DPoP-Nonce` response header.
const DPOP: &str = "dpop";
const DPOP_NONCE: &str = "dpop-nonce";

/// The request's DPoP proofs, for the endpoint at `path`.
fn dpop_request(
    state: &AppState,
    headers: &HeaderMap,
    method: &'static str,
    path: &str,
) -> DpopRequest {
    DpopRequest {
        proofs: headers
            .get_all(DPOP)
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .collect(),
        method,
        url: format!("{}{path}", state.services.oidc.issuer()),
    }
}

/// `response` with a fresh `DPoP-Nonce` (after a request that used DPoP:
/// the client's next proof needs no extra round trip).
async fn with_dpop_nonce(state: &AppState, dpop: &DpopRequest, mut response: Response) -> Response {
    if dpop.proofs.is_empty() {
        return response;
    }
    match state.services.oidc.dpop_nonce().await {
        Ok(nonce) => {
            if let Ok(value) = HeaderValue::from_str(&nonce) {
                response.headers_mut().insert(DPOP_NONCE, value);
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot make a DPoP nonce"),
    }
    response
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let (status, code) = match &self.error {
            OidcError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            OidcError::InvalidClient => (StatusCode::UNAUTHORIZED, "invalid_client"),
            OidcError::InvalidGrant(_) => (StatusCode::BAD_REQUEST, "invalid_grant"),
            OidcError::UnauthorizedClient(_) => (StatusCode::BAD_REQUEST, "unauthorized_client"),
            OidcError::UnsupportedGrantType => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
            OidcError::InvalidScope => (StatusCode::BAD_REQUEST, "invalid_scope"),
            OidcError::AuthorizationPending => (StatusCode::BAD_REQUEST, "authorization_pending"),
            OidcError::SlowDown => (StatusCode::BAD_REQUEST, "slow_down"),
            OidcError::AccessDenied => (StatusCode::BAD_REQUEST, "access_denied"),
            OidcError::ExpiredToken => (StatusCode::BAD_REQUEST, "expired_token"),
            OidcError::InvalidToken | OidcError::InvalidDpopToken(_) => {
                (StatusCode::UNAUTHORIZED, "invalid_token")
            }
            OidcError::InvalidDpopProof(_) if self.resource => {
                (StatusCode::UNAUTHORIZED, "invalid_dpop_proof")
            }
            OidcError::InvalidDpopProof(_) => (StatusCode::BAD_REQUEST, "invalid_dpop_proof"),
            OidcError::UseDpopNonce(_) if self.resource => {
                (StatusCode::UNAUTHORIZED, "use_dpop_nonce")
            }
            OidcError::UseDpopNonce(_) => (StatusCode::BAD_REQUEST, "use_dpop_nonce"),
            OidcError::UnknownUserCode => (StatusCode::NOT_FOUND, "invalid_request"),
            OidcError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            OidcError::Passkey(_) => (StatusCode::FORBIDDEN, "access_denied"),
            OidcError::Store(err) => {
                tracing::warn!(error = %err, "a store is unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
            }
            OidcError::Internal(err) => {
                tracing::error!(error = %err, "OpenID Connect request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "server_error")
            }
        };
        // Causes of 5xx are logged, not sent.
        let description = if status.is_server_error() {
            "the server cannot answer right now; try again".to_owned()
        } else {
            self.error.to_string()
        };
        let body = serde_json::json!({ "error": code, "error_description": description });
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match &self.error {
            OidcError::InvalidClient if self.basic => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"qrlogin\""),
                );
            }
            OidcError::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            OidcError::RateLimited(limited) => {
                let seconds = limited.retry_after.as_secs_f64().ceil() as u64;
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            _ => {}
        }
        if let OidcError::UseDpopNonce(nonce) = &self.error {
            if let Ok(value) = HeaderValue::from_str(nonce) {
                headers.insert(DPOP_NONCE, value);
            }
        }
        let dpop_challenge = matches!(
            self.error,
            OidcError::InvalidDpopToken(_)
                | OidcError::InvalidDpopProof(_)
                | OidcError::UseDpopNonce(_)
        );
        if dpop_challenge && self.resource {
            let challenge = format!(
                "DPoP error=\"{code}\", algs=\"{}\"",
                SIGNING_ALG_NAMES.join(" ")
            );
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

/// A form body (`application/x-www-form-urlencoded`), refused in OAuth's
/// format when it is not one (or names a parameter twice, RFC 6749 §3.1).
struct OAuthForm<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OAuthForm<T> {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(value)) => Ok(Self(value)),
            Err(rejection) => Err(OidcError::InvalidRequest(format!(
                "the body must be a form of the documented parameters: {}",
                rejection.body_text()
            ))
            .into()),
        }
    }
}

/// The client's credentials: HTTP Basic (`client_secret_basic`, its parts
/// form-encoded, RFC 6749 §2.3.1) or the body (`client_secret_post`, or
/// only `client_id` for a public client); using both is refused.
fn client_credentials(
    headers: &HeaderMap,
    body_id: Option<String>,
    body_secret: Option<String>,
) -> Result<(ClientCredentials, bool), OAuthError> {
    let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return Ok((
            ClientCredentials {
                client_id: body_id,
                client_secret: body_secret,
            },
            false,
        ));
    };
    let refused = || OAuthError {
        error: OidcError::InvalidClient,
        basic: true,
        resource: false,
    };
    if body_secret.is_some() {
        return Err(
            OidcError::InvalidRequest("use one client authentication method".into()).into(),
        );
    }
    let decoded = STANDARD.decode(basic.trim()).map_err(|_| refused())?;
    let decoded = String::from_utf8(decoded).map_err(|_| refused())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(refused)?;
    let unform = |part: &str| {
        percent_encoding::percent_decode_str(&part.replace('+', " "))
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| refused())
    };
    let id = unform(id)?;
    if body_id.as_ref().is_some_and(|body| *body != id) {
        return Err(refused());
    }
    Ok((
        ClientCredentials {
            client_id: Some(id),
            client_secret: Some(unform(secret)?),
        },
        true,
    ))
}

// ---- discovery ----

async fn discovery(State(state): State<AppState>) -> Json<serde_json::Value> {
    let issuer = state.services.oidc.issuer();
    let at = |path: &str| format!("{issuer}{path}");
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    Json(serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": at(paths::AUTHORIZE),
        "token_endpoint": at(paths::TOKEN),
        "userinfo_endpoint": at(paths::USERINFO),
        "jwks_uri": at(paths::JWKS),
        "revocation_endpoint": at(paths::REVOKE),
        "end_session_endpoint": at(paths::END_SESSION),
        "device_authorization_endpoint": at(paths::DEVICE_AUTHORIZATION),
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code"
        ],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login"],
        "ui_locales_supported": Lang::ALL.map(Lang::tag),
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce",
            "preferred_username", "name", "sid"
        ],
        "dpop_signing_alg_values_supported": SIGNING_ALG_NAMES,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false
    }))
}

async fn jwks(State(state): State<AppState>) -> Result<Response, OAuthError> {
    let keys = state
        .services
        .oidc
        .keys()
        .jwks()
        .await
        .map_err(OidcError::from)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/jwk-set+json"),
        )],
        keys.to_string(),
    )
        .into_response())
}

// ---- authorization ----

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A small page on qrlogin itself (these few are not Leptos routes: they
/// answer protocol requests). `body` is HTML, already escaped.
fn page_with(status: StatusCode, title: &str, body: &str) -> Response {
    page_with_lang(Lang::En, status, title, body)
}

/// [`page_with`] in `lang`.
fn page_with_lang(lang: Lang, status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        r#"<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{title} · qrlogin</title><link rel="stylesheet" href="/pkg/qrlogin.css"></head><body><main class="page"><section class="card"><header class="brand"><span class="brand-mark" aria-hidden="true"></span><span class="brand-name">qrlogin</span></header><h1>{title}</h1>{body}</section></main></body></html>"#,
        title = escape(title),
        lang = lang.tag(),
    );
    (status, Html(html)).into_response()
}

/// [`page`] in `lang`.
fn page_in(lang: Lang, status: StatusCode, title: &str, text: &str) -> Response {
    page_with_lang(
        lang,
        status,
        title,
        &format!(r#"<p class="lead">{}</p>"#, escape(text)),
    )
}

/// A page for what must not go back to the client, and other outcomes.
fn page(status: StatusCode, title: &str, text: &str) -> Response {
    page_in(Lang::En, status, title, text)
}

async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<CurrentSession>, OAuthError> {
    current_session(state, headers).await.map_err(|err| {
        err.log_cause();
        OAuthError::from(OidcError::Store(crate::storage::StoreError::Unavailable(
            "the session store cannot be read".into(),
        )))
    })
}

/// The language for a page the authorization endpoint shows: the
/// request's `ui_locales` where it names one the pages speak, else the
/// person's own (cookie, `Accept-Language`).
fn page_lang(ui_locales: Option<&str>, headers: &HeaderMap) -> Lang {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    ui_locales
        .and_then(Lang::from_ui_locales)
        .unwrap_or_else(|| Lang::negotiate(header(header::COOKIE), header(header::ACCEPT_LANGUAGE)))
}

/// `GET /oauth2/authorize`: the request in the query.
async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    query: Result<axum::extract::Query<AuthorizeParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let params = query.ok().map(|axum::extract::Query(params)| params);
    authorize_with(state, headers, caller, params).await
}

/// `POST /oauth2/authorize`: the same request as a form (OpenID Connect
/// Core §3.1.2.1).
async fn authorize_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    form: Result<axum::Form<AuthorizeParams>, axum::extract::rejection::FormRejection>,
) -> Response {
    let params = form.ok().map(|axum::Form(params)| params);
    authorize_with(state, headers, caller, params).await
}

/// The authorization endpoint's answer for `params` (`None`: malformed).
async fn authorize_with(
    state: AppState,
    headers: HeaderMap,
    caller: Caller,
    params: Option<AuthorizeParams>,
) -> Response {
    let Some(params) = params else {
        return malformed(page_lang(None, &headers));
    };
    let lang = page_lang(params.ui_locales.as_deref(), &headers);
    let current = match signed_in(&state, &headers).await {
        Ok(current) => current,
        Err(err) => return err.into_response(),
    };
    let outcome = state
        .services
        .oidc
        .authorize(&params, current.as_ref(), &caller)
        .await;
    match outcome {
        Ok(AuthorizeOutcome::Refused(untrusted)) => refused(lang, &untrusted),
        Ok(AuthorizeOutcome::Error {
            redirect_uri,
            state: client_state,
            error,
        }) => see_other(&redirect_to(
            &redirect_uri,
            &[
                ("error", error.code.as_str()),
                ("error_description", error.description),
            ],
            client_state.as_deref(),
            state.services.oidc.issuer(),
        )),
        Ok(AuthorizeOutcome::Redirect(url)) => see_other(&url),
        // The card in the language the client asked for, if it asked for
        // one the pages speak.
        Ok(AuthorizeOutcome::Phone { request }) => login_card(
            &request,
            params.ui_locales.as_deref().and_then(Lang::from_ui_locales),
        ),
        Err(err) => OAuthError::from(err).into_response(),
    }
}

/// The page for a request that must not go back to its client.
fn refused(lang: Lang, untrusted: &Untrusted) -> Response {
    let t = lang.text();
    let why = match untrusted {
        Untrusted::UnknownClient => t.authorize_unknown_client.to_owned(),
        Untrusted::UnregisteredRedirect { client_name } => {
            fill(t.authorize_unregistered_redirect, &[client_name])
        }
    };
    page_in(
        lang,
        StatusCode::BAD_REQUEST,
        t.authorize_refused_title,
        &why,
    )
}

/// `303 See Other` to `url`. Every URL given here is made by the server
/// (a `url::Url`, or a checked sealed request); one that still could not be
/// a `Location` header is refused with a page, never a 5xx.
fn see_other(url: &str) -> Response {
    match HeaderValue::from_str(url) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => {
            tracing::warn!("a redirect that is not a header value was refused");
            malformed(Lang::default())
        }
    }
}

/// The login card for a sealed request (already checked to be one), in
/// `lang` when the client asked for one (`ui_locales`), else in the
/// person's own.
fn login_card(request: &str, lang: Option<Lang>) -> Response {
    match lang {
        Some(lang) => see_other(&format!(
            "{}?request={request}&lang={}",
            paths::AUTHORIZE_PAGE,
            lang.tag()
        )),
        None => see_other(&format!("{}?request={request}", paths::AUTHORIZE_PAGE)),
    }
}

fn malformed(lang: Lang) -> Response {
    let t = lang.text();
    page_in(
        lang,
        StatusCode::BAD_REQUEST,
        t.authorize_refused_title,
        t.authorize_malformed,
    )
}

#[derive(Deserialize)]
struct ResumeParams {
    request: String,
    /// The card's language, for the card again.
    lang: Option<String>,
}

async fn resume(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    query: Result<axum::extract::Query<ResumeParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // Only what this server could have sealed goes back into a URL.
    let Ok(axum::extract::Query(params)) = query else {
        return malformed(page_lang(None, &headers));
    };
    let lang = params.lang.as_deref().and_then(Lang::from_tag);
    if !app::api::plausible_authorization(&params.request) {
        return malformed(lang.unwrap_or_else(|| page_lang(None, &headers)));
    }
    let card = || login_card(&params.request, lang);
    let current = match signed_in(&state, &headers).await {
        Ok(Some(current)) => current,
        Ok(None) => return card(),
        Err(err) => return err.into_response(),
    };
    match state
        .services
        .oidc
        .resume(&params.request, &current, &caller)
        .await
    {
        Ok(Some(url)) => see_other(&url),
        Ok(None) => card(),
        Err(err) => OAuthError::from(err).into_response(),
    }
}

// ---- token, userinfo, revocation, device authorization ----

#[derive(Deserialize)]
struct TokenForm {
    client_id: Option<String>,
    client_secret: Option<String>,
    #[serde(flatten)]
    request: TokenRequest,
}

/// A client endpoint's answer: JSON, or the error (saying Basic when the
/// client authenticated with it).
fn answer<T: serde::Serialize>(
    result: Result<T, OidcError>,
    basic: bool,
) -> Result<Response, OAuthError> {
    result
        .map(|value| Json(value).into_response())
        .map_err(|error| OAuthError {
            error,
            basic,
            resource: false,
        })
}

async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    OAuthForm(form): OAuthForm<TokenForm>,
) -> Result<Response, OAuthError> {
    let (credentials, basic) = client_credentials(&headers, form.client_id, form.client_secret)?;
    let dpop = dpop_request(&state, &headers, "POST", paths::TOKEN);
    let oidc = &state.services.oidc;
    let response = answer(
        oidc.token(&credentials, &form.request, &caller, &dpop)
            .await,
        basic,
    )?;
    Ok(with_dpop_nonce(&state, &dpop, response).await)
}

/// `GET` or `POST /oauth2/userinfo`: the access token in the
/// `Authorization` header (RFC 6750 §2.1, or RFC 9449 §7.1's `DPoP`
/// scheme with a proof; the scheme in any case), or in a POST's form body
/// (§2.2) — in one place only.
async fn userinfo(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let resource = |error: OidcError| OAuthError {
        error,
        basic: false,
        resource: true,
    };
    let mut as_dpop = false;
    let in_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| match v.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim()),
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("dpop") => {
                as_dpop = true;
                Some(token.trim())
            }
            _ => None,
        });
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let in_body: Vec<String> = if is_form {
        url::form_urlencoded::parse(&body)
            .filter(|(name, _)| name == "access_token")
            .map(|(_, value)| value.into_owned())
            .collect()
    } else {
        Vec::new()
    };
    let token = match (in_header, in_body.as_slice()) {
        (Some(Some(token)), []) => token,
        (None, [token]) => token.as_str(),
        (Some(_), [_, ..]) | (None, [_, _, ..]) => {
            return Err(OidcError::InvalidRequest(
                "the access token must be sent in one place, once".into(),
            )
            .into())
        }
        _ => return Err(OidcError::InvalidToken.into()),
    };
    let method = if method == Method::POST {
        "POST"
    } else {
        "GET"
    };
    let dpop = dpop_request(&state, &headers, method, paths::USERINFO);
    let info = state
        .services
        .oidc
        .userinfo(token, as_dpop, &dpop)
        .await
        .map_err(resource)?;
    Ok(with_dpop_nonce(&state, &dpop, Json(info).into_response()).await)
}

#[derive(Deserialize)]
struct RevokeForm {
    token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    OAuthForm(form): OAuthForm<RevokeForm>,
) -> Result<Response, OAuthError> {
    let (credentials, basic) = client_credentials(&headers, form.client_id, form.client_secret)?;
    let token = form
        .token
        .ok_or_else(|| OidcError::InvalidRequest("token is missing".into()))?;
    let dpop = dpop_request(&state, &headers, "POST", paths::REVOKE);
    let oidc = &state.services.oidc;
    // RFC 7009 §2.2: 200 with an empty body, known token or not.
    answer(
        oidc.revoke(&credentials, &token, &caller, &dpop).await,
        basic,
    )
    .map(|_| StatusCode::OK.into_response())
}

#[derive(Deserialize)]
struct DeviceForm {
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

async fn device_authorization(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    OAuthForm(form): OAuthForm<DeviceForm>,
) -> Result<Response, OAuthError> {
    let (credentials, basic) = client_credentials(&headers, form.client_id, form.client_secret)?;
    let oidc = &state.services.oidc;
    let scope = form.scope.as_deref();
    answer(
        oidc.device_authorize(&credentials, scope, &caller).await,
        basic,
    )
}

// ---- RP-initiated logout ----

#[derive(Deserialize)]
struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    ApiQuery(params): ApiQuery<LogoutParams>,
) -> Response {
    end_session(&state, &headers, &caller, params, false).await
}

async fn logout_confirmed(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    OAuthForm(params): OAuthForm<LogoutParams>,
) -> Response {
    end_session(&state, &headers, &caller, params, true).await
}

async fn end_session(
    state: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    params: LogoutParams,
    confirmed: bool,
) -> Response {
    let current = match signed_in(state, headers).await {
        Ok(current) => current,
        Err(err) => return err.into_response(),
    };
    let outcome = state
        .services
        .oidc
        .end_session(
            params.id_token_hint.as_deref(),
            params.post_logout_redirect_uri.as_deref(),
            params.state.as_deref(),
            confirmed,
            current.as_ref(),
            caller,
        )
        .await;
    let clear = [(
        header::SET_COOKIE,
        clear_session_cookie(state.public_url.is_https()),
    )];
    match outcome {
        // After the confirmation form, a link: the page's CSP lets forms
        // lead only to this site, redirects included.
        Ok(LogoutOutcome::Redirect(url)) if confirmed => (
            clear,
            page_with(
                StatusCode::OK,
                "Signed out",
                &format!(
                    r#"<p class="lead">You are signed out of qrlogin on this browser.</p><a class="button" href="{}">Back to the application</a>"#,
                    escape(&url)
                ),
            ),
        )
            .into_response(),
        Ok(LogoutOutcome::Redirect(url)) => (clear, see_other(&url)).into_response(),
        Ok(LogoutOutcome::SignedOut) => (
            clear,
            page(StatusCode::OK, "Signed out", "You are signed out of qrlogin on this browser."),
        )
            .into_response(),
        Ok(LogoutOutcome::Confirm) => confirm_logout_page(&params),
        Err(OidcError::InvalidRequest(why)) => page(StatusCode::BAD_REQUEST, "Cannot sign out", &why),
        Err(err) => OAuthError::from(err).into_response(),
    }
}

/// "Sign out of qrlogin?" with a button: a logout that does not prove it
/// comes from the client (no valid `id_token_hint`) is only done when the
/// person asks for it (a plain link cannot sign anybody out).
fn confirm_logout_page(params: &LogoutParams) -> Response {
    let hidden = [
        ("id_token_hint", &params.id_token_hint),
        ("post_logout_redirect_uri", &params.post_logout_redirect_uri),
        ("state", &params.state),
    ]
    .iter()
    .filter_map(|(name, value)| {
        value.as_deref().map(|v| {
            format!(
                r#"<input type="hidden" name="{name}" value="{}">"#,
                escape(v)
            )
        })
    })
    .collect::<String>();
    page_with(
        StatusCode::OK,
        "Sign out of qrlogin?",
        &format!(
            r#"<p class="lead">An application asked to sign you out of qrlogin on this browser.</p><form method="post" action="{}" class="form">{hidden}<button class="button" type="submit">Sign out</button></form>"#,
            paths::END_SESSION
        ),
    )
}
