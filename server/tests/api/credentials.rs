//! Changing how an account signs in needs a fresh proof by a credential it
//! already has, never the session alone; and no two racing changes can
//! leave it without a way in. Passkeys here are real WebAuthn credentials
//! made by webauthn-rs's software authenticator, checked by the server's
//! webauthn-rs exactly as a phone's would be.

use axum::http::{header, Method, StatusCode};
use leptos::server_fn::ServerFn;
use server::{config::ServeArgs, domain::audit::AuditEvent};
use webauthn_authenticator_rs::{
    prelude::{CreationChallengeResponse, RequestChallengeResponse, Url},
    softpasskey::SoftPasskey,
    WebauthnAuthenticator,
};

use crate::helpers::*;

const ORIGIN: &str = "http://localhost:3000";

fn passkey_server() -> ServeArgs {
    ServeArgs {
        public_url: Some(ORIGIN.into()),
        ..ServeArgs::default()
    }
}

/// A server function called by a page's script (its answer is data).
fn call<F: ServerFn>(phone: &Phone, pairs: &[(&str, &str)]) -> Call {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    phone.auth(
        Call::new(Method::POST, F::url())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.into_bytes()),
    )
}

/// A plain form's post to a server function (its answer is a redirect).
fn form<F: ServerFn>(phone: &Phone, pairs: &[(&str, &str)]) -> Call {
    call::<F>(phone, pairs).header(header::ACCEPT, "text/html")
}

/// Where a plain-form server function sent the browser back to.
fn location(response: &axum::response::Response) -> String {
    assert!(response.status().is_redirection(), "{}", response.status());
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn ceremony(app: &TestApp, call: Call) -> Result<(String, String), StatusCode> {
    let response = app.send(call).await;
    if response.status() != StatusCode::OK {
        return Err(response.status());
    }
    let started: serde_json::Value = json(response).await;
    Ok((
        started["ceremony"].as_str().unwrap().to_owned(),
        started["options"].as_str().unwrap().to_owned(),
    ))
}

/// Adds a passkey made by `authenticator`: Ok, or the status of the first
/// refused step.
async fn add_passkey(
    app: &TestApp,
    phone: &Phone,
    authenticator: &mut SoftPasskey,
    name: &str,
) -> Result<(), StatusCode> {
    let (ceremony, options) = ceremony(
        app,
        call::<app::server_fns::PasskeyRegistration>(phone, &[]),
    )
    .await?;
    let mut options: CreationChallengeResponse = serde_json::from_str(&options).unwrap();
    // The software authenticator keeps no resident keys; the server asks
    // for one only so that phones can sign in without a username, and its
    // verification does not depend on it.
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.require_resident_key = false;
        selection.resident_key = None;
    }
    let credential = authenticator
        .do_registration(Url::parse(ORIGIN).unwrap(), options)
        .unwrap();
    let credential = serde_json::to_string(&credential).unwrap();
    let response = app
        .send(call::<app::server_fns::AddPasskey>(
            phone,
            &[
                ("ceremony", &ceremony),
                ("name", name),
                ("credential", &credential),
            ],
        ))
        .await;
    match response.status() {
        StatusCode::OK => Ok(()),
        status => Err(status),
    }
}

/// Confirms presence with a passkey of `authenticator`.
async fn confirm_with_passkey(
    app: &TestApp,
    phone: &Phone,
    authenticator: &mut SoftPasskey,
) -> Result<(), StatusCode> {
    let (ceremony, options) =
        ceremony(app, call::<app::server_fns::ConfirmOptions>(phone, &[])).await?;
    let options: RequestChallengeResponse = serde_json::from_str(&options).unwrap();
    assert_eq!(
        serde_json::to_value(&options).unwrap()["publicKey"]["userVerification"],
        "required"
    );
    let assertion = authenticator
        .do_authentication(Url::parse(ORIGIN).unwrap(), options)
        .map_err(|_| StatusCode::FORBIDDEN)?;
    let assertion = serde_json::to_string(&assertion).unwrap();
    let response = app
        .send(call::<app::server_fns::ConfirmWithPasskey>(
            phone,
            &[("ceremony", &ceremony), ("credential", &assertion)],
        ))
        .await;
    match response.status() {
        StatusCode::OK => Ok(()),
        status => Err(status),
    }
}

/// The sign-in choices form; where it sent the browser back to.
async fn set_choices(app: &TestApp, phone: &Phone, password: bool, approve: bool) -> String {
    let mut pairs = Vec::new();
    if password {
        pairs.push(("password", "on"));
    }
    if approve {
        pairs.push(("approve_with_passkey", "on"));
    }
    location(
        &app.send(form::<app::server_fns::SetSignInChoices>(phone, &pairs))
            .await,
    )
}

async fn remove_passkey(app: &TestApp, phone: &Phone, id: &str) -> String {
    location(
        &app.send(form::<app::server_fns::RemovePasskey>(phone, &[("id", id)]))
            .await,
    )
}

/// What `/m` would show about the account's credentials.
async fn account(app: &TestApp, phone: &Phone) -> app::server_fns::AccountView {
    let response = app
        .send(call::<app::server_fns::MyAccount>(phone, &[]))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let view: Option<app::server_fns::AccountView> = json(response).await;
    view.expect("signed in")
}

async fn account_id(app: &TestApp, username: &str) -> i64 {
    app.state
        .services
        .accounts
        .list_accounts()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.username.as_str() == username)
        .unwrap()
        .id
}

/// The account's audit events about its credentials, oldest first.
async fn credential_events(app: &TestApp, username: &str) -> Vec<AuditEvent> {
    let query = AuditQuery {
        account_id: Some(account_id(app, username).await),
        ..AuditQuery::default()
    };
    audit_events(app, query)
        .await
        .into_iter()
        .map(|e| e.event)
        .filter(|event| {
            matches!(
                event,
                AuditEvent::PasskeyAdded
                    | AuditEvent::PasskeyRemoved
                    | AuditEvent::SignInChoicesChanged
                    | AuditEvent::IdentityConfirmed
            )
        })
        .collect()
}

/// A phone signed in by scanning (a desktop's session: method "qr").
async fn qr_session(app: &TestApp, phone: &Phone) -> Phone {
    let desktop = app.desktop().await;
    let code = app.scan_and_read_code(phone, &desktop).await;
    assert_eq!(
        app.approve(phone, &desktop.id, code).await.status(),
        StatusCode::OK
    );
    let response = app.redeem(&desktop).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = cookie_pair(&set_cookie(&response));
    Phone {
        token: cookie.split_once('=').unwrap().1.to_owned(),
    }
}

/// The owner adds a passkey right after signing in with the password
/// (the sign-in is the proof while the account has no passkey); from then
/// on the passkey is what proves presence.
async fn alice_with_a_passkey(app: &TestApp) -> (Phone, SoftPasskey) {
    let phone = app.phone("alice", "Alice").await;
    let mut owner = SoftPasskey::new(true);
    add_passkey(app, &phone, &mut owner, "Alice's phone")
        .await
        .unwrap();
    (phone, owner)
}

/// A thief holding only the bearer token of the owner's session: every
/// change to how the account signs in or approves is refused with
/// `confirm_first`, and nothing changes; the owner, after confirming with
/// the passkey, makes each of them.
#[tokio::test]
async fn a_stolen_session_alone_changes_no_credential() {
    let app = test_app_with(passkey_server()).await;
    let (owner_phone, mut owner_key) = alice_with_a_passkey(&app).await;
    // A session made by scanning with the owner's phone (a QR sign-in
    // proves nothing of the device it went to).
    let thief_desktop = qr_session(&app, &owner_phone).await;
    // The owner asks for the passkey on every approval: stricter, no proof.
    assert_eq!(set_choices(&app, &owner_phone, true, true).await, "/m");
    let before = account(&app, &owner_phone).await;
    assert_eq!(before.passkeys.len(), 1);
    assert!(before.approve_with_passkey && !before.password_off);
    assert_eq!(before.confirm.with, app::server_fns::ConfirmWith::Passkey);
    // The password sign-in of this session no longer counts: the account
    // has a passkey now.
    assert_eq!(before.confirm.fresh_until, None);

    // The thief: the same bearer token, or the QR session.
    let thief = Phone {
        token: owner_phone.token.clone(),
    };
    let mut thief_key = SoftPasskey::new(true);
    for session in [&thief, &thief_desktop] {
        // "Ask for my passkey" off, password off, both.
        for (password, approve) in [(true, false), (false, true), (false, false)] {
            assert_eq!(
                set_choices(&app, session, password, approve).await,
                "/m?choices=confirm_first",
                "password {password}, approve {approve}"
            );
        }
        // A passkey of the thief's own: refused at the first step.
        assert_eq!(
            add_passkey(&app, session, &mut thief_key, "mine").await,
            Err(StatusCode::FORBIDDEN)
        );
        // The owner's passkey removed.
        assert_eq!(
            remove_passkey(&app, session, &before.passkeys[0].id).await,
            "/m?choices=confirm_first"
        );
        // Confirming with the password instead of the passkey: refused
        // (and it would be a guess).
        let response = app
            .send(form::<app::server_fns::ConfirmWithPassword>(
                session,
                &[("password", PASSWORD)],
            ))
            .await;
        assert_eq!(location(&response), "/m?choices=passkey_required");
        // A passkey the account does not have cannot confirm.
        assert_eq!(
            confirm_with_passkey(&app, session, &mut thief_key).await,
            Err(StatusCode::FORBIDDEN)
        );
    }
    let after = account(&app, &owner_phone).await;
    let ids = |view: &app::server_fns::AccountView| -> Vec<String> {
        view.passkeys.iter().map(|p| p.id.clone()).collect()
    };
    assert_eq!(ids(&after), ids(&before), "no passkey added or removed");
    assert_eq!(
        (after.password_off, after.approve_with_passkey),
        (before.password_off, before.approve_with_passkey)
    );
    let changes = credential_events(&app, "alice").await;
    assert_eq!(
        changes,
        [AuditEvent::PasskeyAdded, AuditEvent::SignInChoicesChanged],
        "the owner's first passkey and choice only"
    );

    // The owner confirms with the passkey: each change goes through.
    confirm_with_passkey(&app, &owner_phone, &mut owner_key)
        .await
        .unwrap();
    let confirmed = account(&app, &owner_phone).await;
    assert!(confirmed.confirm.fresh_until.is_some());
    let mut second = SoftPasskey::new(true);
    add_passkey(&app, &owner_phone, &mut second, "Tablet")
        .await
        .unwrap();
    assert_eq!(set_choices(&app, &owner_phone, false, false).await, "/m");
    let changed = account(&app, &owner_phone).await;
    assert_eq!(changed.passkeys.len(), 2);
    assert!(changed.password_off && !changed.approve_with_passkey);
    // Marked new on /m until the account has looked at it.
    assert!(changed.passkeys.iter().any(|p| p.new), "shown as new on /m");
    assert_eq!(
        remove_passkey(&app, &owner_phone, &changed.passkeys[1].id).await,
        "/m"
    );
    let last = account(&app, &owner_phone).await;
    assert_eq!(last.passkeys.len(), 1);
    assert_eq!(last.removed_passkeys.len(), 1, "the removal is shown");
    assert_eq!(last.removed_passkeys[0].name, "Tablet");
    // The confirmation was this session's: the thief's QR session still
    // cannot change anything.
    assert_eq!(
        set_choices(&app, &thief_desktop, true, false).await,
        "/m?choices=confirm_first"
    );
    // Every change is in the audit trail.
    let events = credential_events(&app, "alice").await;
    for event in [
        AuditEvent::IdentityConfirmed,
        AuditEvent::PasskeyAdded,
        AuditEvent::PasskeyRemoved,
        AuditEvent::SignInChoicesChanged,
    ] {
        assert!(events.contains(&event), "{event:?} in {events:?}");
    }
}

/// An account without a passkey proves itself with its password: a QR
/// session (or any session not just signed in with the password) must
/// give it before adding a passkey; a wrong one is refused and counted.
#[tokio::test]
async fn without_a_passkey_the_password_is_the_proof() {
    let app = test_app_with(passkey_server()).await;
    let phone = app.phone("bob", "Bob").await;
    let desktop = qr_session(&app, &phone).await;
    let view = account(&app, &desktop).await;
    assert_eq!(view.confirm.with, app::server_fns::ConfirmWith::Password);
    assert_eq!(view.confirm.fresh_until, None);
    let mut key = SoftPasskey::new(true);
    assert_eq!(
        add_passkey(&app, &desktop, &mut key, "thief").await,
        Err(StatusCode::FORBIDDEN)
    );
    let wrong = app
        .send(form::<app::server_fns::ConfirmWithPassword>(
            &desktop,
            &[("password", "not the password at all")],
        ))
        .await;
    assert_eq!(location(&wrong), "/m?choices=invalid_credentials");
    assert_eq!(
        add_passkey(&app, &desktop, &mut key, "thief").await,
        Err(StatusCode::FORBIDDEN)
    );
    assert!(account(&app, &phone).await.passkeys.is_empty());
    // With the password: the passkey is added.
    let right = app
        .send(form::<app::server_fns::ConfirmWithPassword>(
            &desktop,
            &[("password", PASSWORD)],
        ))
        .await;
    assert_eq!(location(&right), "/m");
    add_passkey(&app, &desktop, &mut key, "Laptop")
        .await
        .unwrap();
    assert_eq!(account(&app, &phone).await.passkeys.len(), 1);
}

/// Two removals of the last two passkeys of a password-off account, at
/// once (and a removal racing "password off"): the check and the write are
/// one compare-and-set, so at least one way in always remains.
async fn racing_removals_keep_a_way_in(apps: &[TestApp]) {
    let (a, b) = (&apps[0], &apps[apps.len() - 1]);
    let (phone, mut first) = alice_with_a_passkey(a).await;
    let mut second = SoftPasskey::new(true);
    confirm_with_passkey(a, &phone, &mut first).await.unwrap();
    add_passkey(a, &phone, &mut second, "Tablet").await.unwrap();
    assert_eq!(set_choices(a, &phone, false, false).await, "/m");
    let ids: Vec<String> = account(a, &phone)
        .await
        .passkeys
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids.len(), 2);
    let (one, two) = tokio::join!(
        remove_passkey(a, &phone, &ids[0]),
        remove_passkey(b, &phone, &ids[1]),
    );
    let outcomes = [one, two];
    assert_eq!(
        outcomes.iter().filter(|o| o.as_str() == "/m").count(),
        1,
        "exactly one removal wins: {outcomes:?}"
    );
    assert!(
        outcomes.contains(&"/m?choices=password_needed".to_owned()),
        "{outcomes:?}"
    );
    let left = account(a, &phone).await;
    assert_eq!(left.passkeys.len(), 1, "one way in remains");
    assert!(left.password_off);

    // The password back on racing the removal of the last passkey: either
    // order leaves a way in.
    let (on, removed) = tokio::join!(
        set_choices(b, &phone, true, false),
        remove_passkey(a, &phone, &left.passkeys[0].id),
    );
    let end = account(a, &phone).await;
    assert!(
        !end.password_off || !end.passkeys.is_empty(),
        "{on} {removed}: password off and no passkey"
    );
}

#[tokio::test]
async fn racing_removals_keep_a_way_in_on_sqlite() {
    let app = test_app_with(passkey_server()).await;
    racing_removals_keep_a_way_in(std::slice::from_ref(&app)).await;
}

#[tokio::test]
async fn racing_removals_keep_a_way_in_across_instances_on_postgres() {
    let Some(apps) = cluster_with(2, passkey_server()).await else {
        return;
    };
    racing_removals_keep_a_way_in(&apps).await;
}

/// A proof is for the session that made it and for five minutes: a
/// ceremony begun by one session cannot be finished by another.
#[tokio::test]
async fn a_confirmation_belongs_to_its_session() {
    let app = test_app_with(passkey_server()).await;
    let (owner, mut key) = alice_with_a_passkey(&app).await;
    let other = Phone {
        token: sign_in(&app, "alice").await,
    };
    let (ceremony, options) = ceremony(&app, call::<app::server_fns::ConfirmOptions>(&owner, &[]))
        .await
        .unwrap();
    let options: RequestChallengeResponse = serde_json::from_str(&options).unwrap();
    let assertion = key
        .do_authentication(Url::parse(ORIGIN).unwrap(), options)
        .unwrap();
    let assertion = serde_json::to_string(&assertion).unwrap();
    let response = app
        .send(call::<app::server_fns::ConfirmWithPasskey>(
            &other,
            &[("ceremony", &ceremony), ("credential", &assertion)],
        ))
        .await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert_eq!(account(&app, &other).await.confirm.fresh_until, None);
    confirm_with_passkey(&app, &owner, &mut key).await.unwrap();
    assert!(account(&app, &owner).await.confirm.fresh_until.is_some());
    // The other session of the same account still has no proof.
    assert_eq!(account(&app, &other).await.confirm.fresh_until, None);
}
