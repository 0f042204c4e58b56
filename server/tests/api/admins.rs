//! Running qrlogin for a team (issue 21): administrators, and disabling an
//! account. A disabled account's sessions end at once, on every instance;
//! its password and passkey are refused as wrong ones are; its apps are
//! signed out (grants revoked), a desktop it approved gets no session and
//! a device it approved no tokens; enabled again, it signs in anew and has
//! lost nothing else (id, subject, passkeys). The operator's commands call
//! the services used here.

use axum::http::{header, Method, StatusCode};
use server::{config::ServeArgs, domain::audit::AuditEvent, storage};

use crate::{
    accounts_lifecycle::{
        add_passkey, app_and_device_refused, me, operator, passkey_server, passkey_sign_in,
    },
    helpers::*,
    oidc,
};

/// Password sign-in as a phone does it: the status, and the error code of
/// a refusal.
async fn password_sign_in(app: &TestApp, username: &str) -> (StatusCode, Option<String>) {
    let response = app
        .send(
            Call::new(Method::POST, paths::SESSION)
                .header(header::USER_AGENT, PHONE_UA)
                .json(serde_json::json!({ "username": username, "password": PASSWORD })),
        )
        .await;
    match response.status() {
        StatusCode::OK => (StatusCode::OK, None),
        status => (status, Some(error_body(response, status).await.error)),
    }
}

/// `GET /api/v1/me` with the phone's bearer token: its status.
async fn phone_me(app: &TestApp, phone: &Phone) -> StatusCode {
    app.send(phone.auth(Call::new(Method::GET, paths::ME)))
        .await
        .status()
}

/// Whether `username` is an administrator, and disabled, as listed.
async fn listed(app: &TestApp, username: &str) -> (bool, bool) {
    let accounts = app.state.services.accounts.list_accounts().await.unwrap();
    let account = accounts
        .iter()
        .find(|a| a.username == username)
        .unwrap_or_else(|| panic!("{username} not listed"));
    (account.admin, account.disabled)
}

/// How many `event` rows the audit trail has for the account, each
/// recorded as the operator's doing.
async fn operator_events(app: &TestApp, account_id: i64, event: AuditEvent) -> usize {
    let rows = audit_events(
        app,
        AuditQuery {
            account_id: Some(account_id),
            event: Some(event),
            ..AuditQuery::default()
        },
    )
    .await;
    assert!(
        rows.iter().all(|r| r.user_agent == "test operator"),
        "{rows:?}"
    );
    rows.len()
}

async fn administrators_and_disabled_accounts(app: &TestApp) {
    let services = &app.state.services;
    let accounts = &services.accounts;
    let client = oidc::client(app, true).await;
    let phone = app.phone("alice", "Alice").await;
    let bob_phone = app.phone("bob", "Bob").await;
    let alice = accounts.account_named("alice").await.unwrap();
    assert!(!alice.admin && !alice.disabled);

    // Administrator on, off and on again, as the list shows it, and as
    // the (cached) account by id is seen at once. (That a cached session's
    // account is never stale either: storage/contract.rs.)
    let id = alice.id;
    let admin_by_id = move || async move {
        let account = accounts.account_by_id(id).await.unwrap().unwrap();
        account.admin
    };
    assert!(!admin_by_id().await);
    services
        .set_admin("alice", true, &operator())
        .await
        .unwrap();
    assert_eq!(listed(app, "alice").await, (true, false));
    assert!(admin_by_id().await);
    services
        .set_admin("alice", false, &operator())
        .await
        .unwrap();
    assert_eq!(listed(app, "alice").await, (false, false));
    assert!(!admin_by_id().await);
    services
        .set_admin("alice", true, &operator())
        .await
        .unwrap();
    assert_eq!(listed(app, "bob").await, (false, false));
    assert!(services
        .set_admin("nobody", true, &operator())
        .await
        .is_err());

    // Alice's app holds a refresh token and an access token.
    let (verifier, challenge) = oidc::pkce();
    let params = oidc::code_params(&client, &challenge);
    let (back, app_desktop) = oidc::sign_in_for(app, &phone, &params).await;
    let code = oidc::redirect_params(&back)["code"].clone();
    let (status, tokens) = oidc::exchange(app, &client, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let access_token = tokens["access_token"].as_str().unwrap().to_owned();
    // A device she approved, whose code was not redeemed yet.
    let device = oidc::device_code(app, &client).await;
    oidc::decide(
        app,
        &phone,
        device["user_code"].as_str().unwrap(),
        "approve",
    )
    .await;
    // A desktop she signed in, one she approved that has not collected
    // its session yet, and one she has scanned but not approved.
    let desktop = app.signed_in_desktop(&phone).await;
    let approved = app.approved(&phone).await;
    let pending = app.desktop().await;
    let match_code = app.scan_and_read_code(&phone, &pending).await;
    // A passkey, which signs her in.
    let passkey = add_passkey(app, &phone).await;
    let passkey_session = passkey_sign_in(app, &passkey, 1).await.unwrap();
    assert_eq!(me(app, &passkey_session).await.as_deref(), Some("alice"));

    services
        .disable_account("alice", &operator())
        .await
        .unwrap();
    assert_eq!(listed(app, "alice").await, (true, true));

    // Every session ended at once: the phone's, the desktops', the passkey's.
    assert_eq!(phone_me(app, &phone).await, StatusCode::UNAUTHORIZED);
    for session in [&desktop, &app_desktop, &passkey_session] {
        assert_eq!(me(app, session).await, None);
    }
    // The approved desktop gets no session.
    let redeemed = app.redeem(&approved).await;
    assert_ne!(redeemed.status(), StatusCode::OK);
    assert!(redeemed.headers().get(header::SET_COOKIE).is_none());
    // No approval, no sign-in (as a wrong password is answered), no passkey.
    assert_eq!(
        app.approve(&phone, &pending.id, match_code).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        password_sign_in(app, "alice").await,
        (
            StatusCode::UNAUTHORIZED,
            Some("invalid_credentials".to_owned())
        )
    );
    assert_eq!(
        passkey_sign_in(app, &passkey, 2).await,
        Err(StatusCode::FORBIDDEN)
    );
    // Her app is signed out, and the device gets nothing.
    app_and_device_refused(app, &client, &refresh_token, &access_token, &device).await;
    // Bob is not touched.
    assert_eq!(phone_me(app, &bob_phone).await, StatusCode::OK);
    assert_eq!(listed(app, "bob").await, (false, false));

    // Enabled again: she signs in, with her password and her passkey; what
    // ended stays ended; she is who she was.
    services.enable_account("alice", &operator()).await.unwrap();
    assert_eq!(listed(app, "alice").await, (true, false));
    assert_eq!(password_sign_in(app, "alice").await, (StatusCode::OK, None));
    let again = passkey_sign_in(app, &passkey, 3).await.unwrap();
    assert_eq!(me(app, &again).await.as_deref(), Some("alice"));
    assert_eq!(phone_me(app, &phone).await, StatusCode::UNAUTHORIZED);
    for session in [&desktop, &passkey_session] {
        assert_eq!(me(app, session).await, None);
    }
    let (status, answer) = oidc::refresh(app, &client, &refresh_token).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{answer}"
    );
    let after = accounts.account_named("alice").await.unwrap();
    assert_eq!(
        (
            after.id,
            after.subject.as_str(),
            after.admin,
            after.disabled
        ),
        (alice.id, alice.subject.as_str(), true, false)
    );

    // The audit trail: each change, as the operator's.
    for (event, count) in [
        (AuditEvent::AdminGranted, 2),
        (AuditEvent::AdminRevoked, 1),
        (AuditEvent::AccountDisabled, 1),
        (AuditEvent::AccountEnabled, 1),
    ] {
        assert_eq!(
            operator_events(app, alice.id, event).await,
            count,
            "{event:?}"
        );
    }
    assert!(services
        .disable_account("nobody", &operator())
        .await
        .is_err());
    assert!(services
        .enable_account("nobody", &operator())
        .await
        .is_err());
}

#[tokio::test]
async fn on_sqlite_administrators_and_disabled_accounts() {
    let app = test_app_with(passkey_server()).await;
    administrators_and_disabled_accounts(&app).await;
}

#[tokio::test]
async fn on_postgres_administrators_and_disabled_accounts() {
    let Some(database) = storage::testing::fresh_postgres().await else {
        return;
    };
    let Some(redis) = storage::testing::fresh_redis() else {
        return;
    };
    let app = test_app_with(ServeArgs {
        database: Some(database),
        redis: Some(redis.url),
        redis_prefix: Some(redis.prefix),
        ..passkey_server()
    })
    .await;
    administrators_and_disabled_accounts(&app).await;
}

/// Two instances: B has Alice's session and account cached (used just
/// before); Alice is disabled through A; B refuses the session, her
/// password and her approval at once, and sees her enabled again at once.
/// An administrator change through A is seen by B's cache at once too.
#[tokio::test]
async fn an_account_disabled_on_one_instance_is_refused_on_another_at_once() {
    let Some(apps) = cluster_with(2, ServeArgs::default()).await else {
        return;
    };
    let (a, b) = (&apps[0], &apps[1]);
    let phone = a.phone("alice", "Alice").await;
    assert_eq!(phone_me(b, &phone).await, StatusCode::OK);
    let on_b = &b.state.services.accounts;
    let alice = on_b.account_named("alice").await.unwrap();
    let id = alice.id;
    let admin_on_b = move || async move {
        let account = on_b.account_by_id(id).await.unwrap().unwrap();
        account.admin
    };
    assert!(!admin_on_b().await, "now cached on B");
    a.state
        .services
        .set_admin("alice", true, &operator())
        .await
        .unwrap();
    assert!(admin_on_b().await);

    let pending = b.desktop().await;
    let match_code = b.scan_and_read_code(&phone, &pending).await;
    a.state
        .services
        .disable_account("alice", &operator())
        .await
        .unwrap();
    assert_eq!(phone_me(b, &phone).await, StatusCode::UNAUTHORIZED);
    assert!(on_b.account_by_id(alice.id).await.unwrap().is_none());
    assert_eq!(
        b.approve(&phone, &pending.id, match_code).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        password_sign_in(b, "alice").await.0,
        StatusCode::UNAUTHORIZED
    );

    a.state
        .services
        .enable_account("alice", &operator())
        .await
        .unwrap();
    assert!(on_b.account_by_id(alice.id).await.unwrap().is_some());
    assert_eq!(password_sign_in(b, "alice").await, (StatusCode::OK, None));
    assert_eq!(phone_me(b, &phone).await, StatusCode::UNAUTHORIZED);
}
