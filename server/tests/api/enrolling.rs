//! What the setup link, open sign-up and phone-link tests share: the
//! invite page's server functions as a phone's browser calls them (with
//! its cookies), and passkeys made by webauthn-rs's software
//! authenticator.

use axum::http::{header, Method, StatusCode};
use leptos::server_fn::ServerFn;
use server::config::ServeArgs;
use webauthn_authenticator_rs::{
    prelude::{CreationChallengeResponse, Url},
    softpasskey::SoftPasskey,
    WebauthnAuthenticator,
};

use app::server_fns::{
    AccountView, EnrollPasskey, InvitePasskeyOptions, InviteView, LoadInvite, MyAccount,
};

use crate::helpers::*;

pub const ORIGIN: &str = "http://localhost:3000";

pub fn passkey_server() -> ServeArgs {
    ServeArgs {
        public_url: Some(ORIGIN.into()),
        ..ServeArgs::default()
    }
}

/// A server function called by a phone's page, with its cookies if any.
pub fn call<F: ServerFn>(pairs: &[(&str, &str)], cookie: Option<&str>) -> Call {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let call = Call::new(Method::POST, F::url())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::USER_AGENT, PHONE_UA)
        .body(body.into_bytes());
    match cookie {
        Some(cookie) => call.cookie(cookie),
        None => call,
    }
}

/// What the invite page shows this phone, and the cookie it was given
/// (`name=value`), if any.
pub async fn view(
    app: &TestApp,
    token: &str,
    cookie: Option<&str>,
) -> (InviteView, Option<String>) {
    let response = app
        .send(call::<LoadInvite>(&[("token", token)], cookie))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let given = response
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| cookie_pair(v.to_str().unwrap()));
    (json(response).await, given)
}

/// The ceremony and the authenticator's new credential.
pub async fn start(
    app: &TestApp,
    token: &str,
    cookie: Option<&str>,
    authenticator: &mut SoftPasskey,
) -> Result<(String, String), StatusCode> {
    let response = app
        .send(call::<InvitePasskeyOptions>(&[("token", token)], cookie))
        .await;
    if response.status() != StatusCode::OK {
        return Err(response.status());
    }
    let started: serde_json::Value = json(response).await;
    let ceremony = started["ceremony"].as_str().unwrap().to_owned();
    let mut options: CreationChallengeResponse =
        serde_json::from_str(started["options"].as_str().unwrap()).unwrap();
    // The software authenticator keeps no resident keys (as in
    // credentials.rs: the verification does not depend on it).
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.require_resident_key = false;
        selection.resident_key = None;
    }
    let credential = authenticator
        .do_registration(Url::parse(ORIGIN).unwrap(), options)
        .unwrap();
    Ok((ceremony, serde_json::to_string(&credential).unwrap()))
}

/// Keeps the passkey: the new session's token, or the refusal's status.
pub async fn finish(
    app: &TestApp,
    token: &str,
    cookie: Option<&str>,
    ceremony: &str,
    credential: &str,
) -> Result<String, StatusCode> {
    let response = app
        .send(call::<EnrollPasskey>(
            &[
                ("token", token),
                ("ceremony", ceremony),
                ("name", "My phone"),
                ("credential", credential),
            ],
            cookie,
        ))
        .await;
    if response.status() != StatusCode::OK {
        return Err(response.status());
    }
    let cookie = cookie_pair(&set_cookie(&response));
    Ok(cookie.split_once('=').unwrap().1.to_owned())
}

/// Creates a passkey with `authenticator` for the invite: the session's
/// token, or the status of the first refused step.
pub async fn enroll(
    app: &TestApp,
    token: &str,
    cookie: Option<&str>,
    authenticator: &mut SoftPasskey,
) -> Result<String, StatusCode> {
    let (ceremony, credential) = start(app, token, cookie, authenticator).await?;
    finish(app, token, cookie, &ceremony, &credential).await
}

/// What `/m` shows the session, `None` when it is not signed in.
pub async fn account(app: &TestApp, session: &str) -> Option<AccountView> {
    let response = app.send(call::<MyAccount>(&[], None).bearer(session)).await;
    assert_eq!(response.status(), StatusCode::OK);
    json(response).await
}

/// How many passkeys the account named `username` has.
pub async fn passkey_count(app: &TestApp, username: &str) -> usize {
    let account = app
        .state
        .services
        .accounts
        .account_named(username)
        .await
        .unwrap();
    app.state
        .services
        .passkeys
        .list(account.id)
        .await
        .unwrap()
        .len()
}

/// The audit events of the account named `username`, oldest first.
pub async fn events_of(app: &TestApp, username: &str) -> Vec<server::domain::audit::AuditEvent> {
    let account = app
        .state
        .services
        .accounts
        .account_named(username)
        .await
        .unwrap();
    app.state.services.audit.flush().await;
    audit_events(
        app,
        AuditQuery {
            account_id: Some(account.id),
            ..AuditQuery::default()
        },
    )
    .await
    .into_iter()
    .map(|e| e.event)
    .collect()
}
