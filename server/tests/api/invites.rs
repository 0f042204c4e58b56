//! Invites: a one-time link sets up one account (a passkey, or a password
//! where passkeys are off) with no session; used at most once, even by two
//! racing phones; expired, revoked and used ones change nothing. Passkeys
//! are made by webauthn-rs's software authenticator.

use axum::http::{header, Method, StatusCode};
use leptos::server_fn::ServerFn;
use server::{
    config::ServeArgs,
    domain::{audit::AuditEvent, caller::Caller},
    services::invites::{InviteKind, NewInvite},
};
use webauthn_authenticator_rs::{
    prelude::{CreationChallengeResponse, Url},
    softpasskey::SoftPasskey,
    WebauthnAuthenticator,
};

use app::server_fns::{
    EnrollPasskey, EnrollPassword, InvitePasskeyOptions, InviteView, LoadInvite, MyAccount,
};

use crate::helpers::*;

const ORIGIN: &str = "http://localhost:3000";
const HOUR_MS: u64 = 3_600_000;

fn passkey_server() -> ServeArgs {
    ServeArgs {
        public_url: Some(ORIGIN.into()),
        ..ServeArgs::default()
    }
}

/// A server function called by the page's script, with no session.
fn call<F: ServerFn>(pairs: &[(&str, &str)]) -> Call {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    Call::new(Method::POST, F::url())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::USER_AGENT, PHONE_UA)
        .body(body.into_bytes())
}

fn operator() -> Caller {
    Caller::new(None, "test operator")
}

async fn invite(app: &TestApp, username: &str, kind: InviteKind, valid_ms: u64) -> String {
    make_invite(app, username, kind, valid_ms)
        .await
        .unwrap()
        .token
        .encode()
}

async fn make_invite(
    app: &TestApp,
    username: &str,
    kind: InviteKind,
    valid_ms: u64,
) -> Result<NewInvite, String> {
    app.state
        .services
        .invite(username, Some("Alice Liddell"), kind, valid_ms, &operator())
        .await
        .map_err(|e| e.to_string())
}

async fn view(app: &TestApp, token: &str) -> InviteView {
    let response = app.send(call::<LoadInvite>(&[("token", token)])).await;
    assert_eq!(response.status(), StatusCode::OK);
    json(response).await
}

/// Creates a passkey for the invite with `authenticator`; the session's
/// token, or the status of the first refused step.
async fn enroll(
    app: &TestApp,
    token: &str,
    authenticator: &mut SoftPasskey,
) -> Result<String, StatusCode> {
    let (ceremony, credential) = start(app, token, authenticator).await?;
    finish(app.router.clone(), token, &ceremony, &credential).await
}

/// The ceremony and the authenticator's new credential.
async fn start(
    app: &TestApp,
    token: &str,
    authenticator: &mut SoftPasskey,
) -> Result<(String, String), StatusCode> {
    let response = app
        .send(call::<InvitePasskeyOptions>(&[("token", token)]))
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

async fn finish(
    router: axum::Router,
    token: &str,
    ceremony: &str,
    credential: &str,
) -> Result<String, StatusCode> {
    let response = send_to(
        router,
        call::<EnrollPasskey>(&[
            ("token", token),
            ("ceremony", ceremony),
            ("name", "My phone"),
            ("credential", credential),
        ]),
    )
    .await;
    if response.status() != StatusCode::OK {
        return Err(response.status());
    }
    let cookie = cookie_pair(&set_cookie(&response));
    Ok(cookie.split_once('=').unwrap().1.to_owned())
}

/// What `/m` shows the session, `None` when it is not signed in.
async fn account(app: &TestApp, session: &str) -> Option<app::server_fns::AccountView> {
    let response = app.send(call::<MyAccount>(&[]).bearer(session)).await;
    assert_eq!(response.status(), StatusCode::OK);
    json(response).await
}

async fn passkey_count(app: &TestApp, username: &str) -> usize {
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

async fn events(app: &TestApp, username: &str) -> Vec<AuditEvent> {
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
    .filter(|e| {
        matches!(
            e,
            AuditEvent::InviteCreated
                | AuditEvent::InviteUsed
                | AuditEvent::InviteRevoked
                | AuditEvent::PasskeyAdded
        )
    })
    .collect()
}

/// Create, the page names the account, use: signed in with the new
/// passkey; a second use is refused and changes nothing.
async fn lifecycle(app: &TestApp) {
    let token = invite(app, "alice", InviteKind::Enroll, 72 * HOUR_MS).await;
    // The new account has no way in until the invite is used.
    let refused = app
        .send(
            Call::new(Method::POST, paths::SESSION)
                .json(serde_json::json!({ "username": "alice", "password": PASSWORD })),
        )
        .await;
    assert_ne!(refused.status(), StatusCode::OK);

    assert_eq!(
        view(app, &token).await,
        InviteView::Ready {
            display_name: "Alice Liddell".into(),
            username: "alice".into(),
            site: "localhost:3000".into(),
            passkeys: true,
        }
    );
    let page = app
        .send(
            Call::new(Method::GET, &format!("/invite/{token}")).header(header::ACCEPT, "text/html"),
        )
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
    let html = String::from_utf8(body_bytes(page).await).unwrap();
    assert!(
        html.contains("Set up qrlogin for Alice Liddell on localhost:3000"),
        "{html}"
    );

    let mut key = SoftPasskey::new(true);
    let session = enroll(app, &token, &mut key).await.unwrap();
    let me = account(app, &session).await.expect("signed in");
    assert_eq!(me.user.username, "alice");
    assert_eq!(me.passkeys.len(), 1);

    // Used: the page says so, and a second passkey is refused.
    assert_eq!(view(app, &token).await, InviteView::Gone);
    let mut other = SoftPasskey::new(true);
    assert_eq!(enroll(app, &token, &mut other).await, Err(StatusCode::GONE));
    assert_eq!(passkey_count(app, "alice").await, 1);
    assert_eq!(
        events(app, "alice").await,
        [
            AuditEvent::InviteCreated,
            AuditEvent::PasskeyAdded,
            AuditEvent::InviteUsed
        ]
    );
    // An enroll invite for an account that can sign in is not even made.
    let again = make_invite(app, "alice", InviteKind::Enroll, HOUR_MS).await;
    assert!(again.err().unwrap().contains("--reset"));
}

#[tokio::test]
async fn an_invite_sets_up_the_account_once_on_sqlite() {
    lifecycle(&test_app_with(passkey_server()).await).await;
}

#[tokio::test]
async fn an_invite_sets_up_the_account_once_on_postgres() {
    let Some(apps) = cluster_with(1, passkey_server()).await else {
        return;
    };
    lifecycle(&apps[0]).await;
}

#[tokio::test]
async fn expired_and_revoked_invites_change_nothing() {
    dead_invites(&test_app_with(passkey_server()).await).await;
}

#[tokio::test]
async fn expired_and_revoked_invites_change_nothing_on_postgres() {
    let Some(apps) = cluster_with(1, passkey_server()).await else {
        return;
    };
    dead_invites(&apps[0]).await;
}

async fn dead_invites(app: &TestApp) {
    let expired = invite(app, "alice", InviteKind::Enroll, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(view(app, &expired).await, InviteView::Gone);
    let mut key = SoftPasskey::new(true);
    assert_eq!(enroll(app, &expired, &mut key).await, Err(StatusCode::GONE));

    let revoked = invite(app, "alice", InviteKind::Enroll, HOUR_MS).await;
    let live = app.state.services.invites().await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].username, "alice");
    assert_eq!(live[0].invite.kind, InviteKind::Enroll);
    // A ceremony begun before the revocation cannot finish after it.
    let (ceremony, credential) = start(app, &revoked, &mut key).await.unwrap();
    assert_eq!(
        app.state
            .services
            .uninvite("alice", &operator())
            .await
            .unwrap(),
        1
    );
    assert!(app.state.services.invites().await.unwrap().is_empty());
    assert_eq!(view(app, &revoked).await, InviteView::Gone);
    assert_eq!(
        finish(app.router.clone(), &revoked, &ceremony, &credential).await,
        Err(StatusCode::GONE)
    );
    assert_eq!(passkey_count(app, "alice").await, 0);
    // Unknown and malformed tokens read the same.
    assert_eq!(view(app, "not-a-token").await, InviteView::Gone);
    let unknown = "A".repeat(43);
    assert_eq!(view(app, &unknown).await, InviteView::Gone);
    assert!(events(app, "alice")
        .await
        .contains(&AuditEvent::InviteRevoked));
}

/// An enroll invite stops working once its account has a way in (here:
/// another invite used first); a reset invite works for such an account.
#[tokio::test]
async fn enroll_needs_an_account_without_a_way_in_and_reset_does_not() {
    invite_kinds(&test_app_with(passkey_server()).await).await;
}

#[tokio::test]
async fn enroll_needs_an_account_without_a_way_in_and_reset_does_not_on_postgres() {
    let Some(apps) = cluster_with(1, passkey_server()).await else {
        return;
    };
    invite_kinds(&apps[0]).await;
}

async fn invite_kinds(app: &TestApp) {
    let first = invite(app, "alice", InviteKind::Enroll, HOUR_MS).await;
    let second = invite(app, "alice", InviteKind::Enroll, HOUR_MS).await;
    let mut key = SoftPasskey::new(true);
    enroll(app, &first, &mut key).await.unwrap();
    assert_eq!(view(app, &second).await, InviteView::Gone);
    let mut other = SoftPasskey::new(true);
    assert_eq!(
        enroll(app, &second, &mut other).await,
        Err(StatusCode::GONE)
    );
    assert_eq!(passkey_count(app, "alice").await, 1);

    // Bob signs in with a password; a reset invite adds a passkey.
    app.add_account("bob", "Bob").await;
    assert!(make_invite(app, "bob", InviteKind::Enroll, HOUR_MS)
        .await
        .is_err());
    let reset = invite(app, "bob", InviteKind::Reset, HOUR_MS).await;
    let mut bobs = SoftPasskey::new(true);
    let session = enroll(app, &reset, &mut bobs).await.unwrap();
    assert_eq!(account(app, &session).await.unwrap().user.username, "bob");
    assert_eq!(passkey_count(app, "bob").await, 1);
    // A reset invite makes no account.
    assert!(make_invite(app, "nobody", InviteKind::Reset, HOUR_MS)
        .await
        .is_err());
}

/// Two phones finish with the same invite at once: exactly one passkey is
/// added and one session started.
async fn racing_uses(app: &TestApp) {
    let token = invite(app, "alice", InviteKind::Enroll, HOUR_MS).await;
    let mut one = SoftPasskey::new(true);
    let mut two = SoftPasskey::new(true);
    let (c1, k1) = start(app, &token, &mut one).await.unwrap();
    let (c2, k2) = start(app, &token, &mut two).await.unwrap();
    let a = tokio::spawn({
        let (router, token) = (app.router.clone(), token.clone());
        async move { finish(router, &token, &c1, &k1).await }
    });
    let b = tokio::spawn({
        let (router, token) = (app.router.clone(), token.clone());
        async move { finish(router, &token, &c2, &k2).await }
    });
    let results = [a.await.unwrap(), b.await.unwrap()];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results.contains(&Err(StatusCode::GONE)), "{results:?}");
    assert_eq!(passkey_count(app, "alice").await, 1);
}

#[tokio::test]
async fn racing_uses_of_one_invite_one_wins_on_sqlite() {
    racing_uses(&test_app_with(passkey_server()).await).await;
}

#[tokio::test]
async fn racing_uses_of_one_invite_one_wins_on_postgres() {
    let Some(apps) = cluster_with(1, passkey_server()).await else {
        return;
    };
    racing_uses(&apps[0]).await;
}

/// Where passkeys are off (an IP address as public URL), the invite sets a
/// password (the usual rules: a short one is refused without using the
/// invite up) and turns password sign-in on.
#[tokio::test]
async fn without_passkeys_an_invite_sets_a_password() {
    let app = test_app().await;
    let token = invite(&app, "alice", InviteKind::Enroll, HOUR_MS).await;
    let InviteView::Ready { passkeys, .. } = view(&app, &token).await else {
        panic!("a live invite");
    };
    assert!(!passkeys);
    let form = |password: &str| {
        call::<EnrollPassword>(&[("token", &token), ("password", password)])
            .header(header::ACCEPT, "text/html")
    };
    let short = app.send(form("short")).await;
    assert!(short.status().is_redirection());
    assert_eq!(
        short.headers()[header::LOCATION],
        format!("/invite/{token}?failed=bad_request").as_str()
    );
    // Passkeys are off here: no ceremony.
    assert_eq!(
        app.send(call::<InvitePasskeyOptions>(&[("token", &token)]))
            .await
            .status(),
        StatusCode::CONFLICT
    );

    let set = app.send(form(PASSWORD)).await;
    assert!(set.status().is_redirection());
    assert_eq!(set.headers()[header::LOCATION], "/m");
    let cookie = cookie_pair(&set_cookie(&set));
    let session = cookie.split_once('=').unwrap().1;
    assert_eq!(account(&app, session).await.unwrap().user.username, "alice");
    sign_in(&app, "alice").await;

    // Used: a second password is not set.
    let again = app.send(form("another password")).await;
    assert_eq!(
        again.headers()[header::LOCATION],
        format!("/invite/{token}?failed=invite_gone").as_str()
    );
    sign_in(&app, "alice").await;
    assert_eq!(
        events(&app, "alice").await,
        [AuditEvent::InviteCreated, AuditEvent::InviteUsed]
    );
}
