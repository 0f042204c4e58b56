//! Approvals that need a passkey, refused without one: by the server's rule
//! (`--approve-with passkey`), off the phone's network
//! (`--require-passkey-off-network`), and an account that cannot lock
//! itself out. Real assertions (made by Chromium's virtual authenticator)
//! and their binding to what was shown are tested in
//! `end2end/tests/passkeys.spec.ts`; the binding's arithmetic in
//! `domain::passkey`.

use axum::http::{header, Method, StatusCode};
use leptos::server_fn::ServerFn;
use serde_json::json;
use server::config::{ServeArgs, Settings};

use crate::helpers::*;

fn passkey_server(approve_with: &str) -> ServeArgs {
    ServeArgs {
        public_url: Some("http://localhost:3000".into()),
        approve_with: Some(approve_with.parse().unwrap()),
        ..ServeArgs::default()
    }
}

async fn approve_with(
    app: &TestApp,
    phone: &Phone,
    id: &str,
    code: u8,
    passkey: serde_json::Value,
) -> axum::response::Response {
    app.send(
        phone.auth(
            Call::new(Method::POST, &paths::with_id(paths::LOGIN_APPROVE, id))
                .json(json!({ "match_code": code, "passkey": passkey })),
        ),
    )
    .await
}

#[tokio::test]
async fn with_approve_with_passkey_a_session_alone_cannot_approve() {
    let app = test_app_with(passkey_server("passkey")).await;
    let phone = app.phone("alice", "Alice").await;
    let desktop = app.desktop().await;
    let scanned: app::api::Scanned = json(app.scan(&phone, &desktop.id).await).await;
    assert!(scanned.needs_passkey, "the phone is told before it tries");
    let code = app.poll(&desktop).await.match_code.unwrap();

    // A stolen phone session: the right number, no passkey.
    let body = error_body(
        app.approve(&phone, &desktop.id, code).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(body.error, "passkey_required");
    // Something that is not an assertion, and an assertion-shaped forgery
    // for an account with no passkey: refused, nothing changed.
    let response = approve_with(&app, &phone, &desktop.id, code, json!("junk")).await;
    assert_eq!(
        error_body(response, StatusCode::BAD_REQUEST).await.error,
        "bad_request"
    );
    let forged = json!({
        "id": "AAAA", "rawId": "AAAA", "type": "public-key",
        "response": { "authenticatorData": "AAAA", "clientDataJSON": "AAAA", "signature": "AAAA" },
        "extensions": {}
    });
    let response = approve_with(&app, &phone, &desktop.id, code, forged).await;
    assert_eq!(
        error_body(response, StatusCode::CONFLICT).await.error,
        "no_passkey"
    );
    let status = app.poll(&desktop).await;
    assert_eq!(status.state, app::api::LoginState::Scanned, "still waiting");

    // The options name no passkey either: there is none to ask for.
    let response = app
        .send(
            phone.auth(
                Call::new(
                    Method::POST,
                    &paths::with_id(paths::LOGIN_APPROVE_OPTIONS, &desktop.id),
                )
                .json(json!({ "match_code": code })),
            ),
        )
        .await;
    assert_eq!(
        error_body(response, StatusCode::CONFLICT).await.error,
        "no_passkey"
    );

    // Denying never needs the passkey.
    assert_eq!(app.deny(&phone, &desktop.id).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn off_the_phones_network_a_passkey_is_required_when_so_configured() {
    let app = test_app_with(ServeArgs {
        public_url: Some("http://localhost:3000".into()),
        require_passkey_off_network: true,
        trusted_proxies: Some(vec!["10.0.0.1".parse().unwrap()]),
        ..ServeArgs::default()
    })
    .await;
    let phone = app.phone("alice", "Alice").await;
    let via_proxy =
        |call: Call, ip: &str| call.header("x-forwarded-for", ip).peer_ip([10, 0, 0, 1]);
    let desktop_at = |ip: &'static str| {
        let app = &app;
        async move {
            let response = app
                .send(via_proxy(Call::new(Method::POST, paths::LOGINS), ip))
                .await;
            let cookie = cookie_pair(&set_cookie(&response));
            let created: app::api::LoginCreated = json(response).await;
            Desktop {
                id: created.id.clone(),
                cookie,
                created,
            }
        }
    };
    let scan = |id: String| {
        let call = phone.auth(Call::new(
            Method::POST,
            &paths::with_id(paths::LOGIN_SCAN, &id),
        ));
        app.send(via_proxy(call, "198.51.100.20"))
    };
    let approve = |id: String, code: u8| {
        let call = phone.auth(
            Call::new(Method::POST, &paths::with_id(paths::LOGIN_APPROVE, &id))
                .json(json!({ "match_code": code })),
        );
        app.send(via_proxy(call, "198.51.100.20"))
    };

    // Same network: the session is enough.
    let near = desktop_at("198.51.100.7").await;
    let scanned: app::api::Scanned = json(scan(near.id.clone()).await).await;
    assert!(scanned.requester.same_network && !scanned.needs_passkey);
    let code = app.poll(&near).await.match_code.unwrap();
    assert_eq!(approve(near.id, code).await.status(), StatusCode::OK);

    // Elsewhere (a relayed code): the passkey is required.
    let far = desktop_at("203.0.113.7").await;
    let scanned: app::api::Scanned = json(scan(far.id.clone()).await).await;
    assert!(!scanned.requester.same_network && scanned.needs_passkey);
    let code = app.poll(&far).await.match_code.unwrap();
    let body = error_body(approve(far.id, code).await, StatusCode::FORBIDDEN).await;
    assert_eq!(body.error, "passkey_required");
}

#[tokio::test]
async fn requiring_passkeys_needs_a_host_name_not_an_ip_address() {
    let args = ServeArgs {
        public_url: Some("http://127.0.0.1:3000".into()),
        ..passkey_server("passkey")
    };
    let err = Settings::resolve(&args).unwrap_err();
    assert!(err.to_string().contains("host name"), "{err}");
    // Without the requirement an IP address is fine; passkeys are off.
    let args = ServeArgs {
        public_url: Some("http://127.0.0.1:3000".into()),
        ..ServeArgs::default()
    };
    assert!(Settings::resolve(&args).is_ok());
}

/// An account without a passkey can neither turn its password off nor ask
/// for a passkey on every approval: it would lock itself out.
#[tokio::test]
async fn an_account_without_a_passkey_keeps_its_password() {
    let app = test_app_with(passkey_server("session")).await;
    let phone = app.phone("alice", "Alice").await;
    let response = app
        .send(
            phone.auth(
                Call::new(
                    Method::POST,
                    <app::server_fns::SetSignInChoices as ServerFn>::url(),
                )
                .header(header::ACCEPT, "text/html")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                // The password box unticked.
                .body(b"approve_with_passkey=on".to_vec()),
            ),
        )
        .await;
    assert!(response.status().is_redirection(), "{}", response.status());
    let location = response.headers()[header::LOCATION].to_str().unwrap();
    assert_eq!(location, "/m?choices=password_needed");
    // The password still signs in.
    sign_in(&app, "alice").await;
}

/// A passkey sign-in must finish a ceremony this server began, once: a
/// made-up or reused ceremony id is refused with a 4xx and no session.
#[tokio::test]
async fn a_passkey_sign_in_needs_a_ceremony_of_this_server() {
    let app = test_app_with(passkey_server("session")).await;
    let forged = json!({
        "id": "AAAA", "rawId": "AAAA", "type": "public-key",
        "response": { "authenticatorData": "AAAA", "clientDataJSON": "AAAA", "signature": "AAAA", "userHandle": "AAAA" },
        "extensions": {}
    })
    .to_string();
    let form = |ceremony: &str, credential: &str| {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("ceremony", ceremony)
            .append_pair("credential", credential)
            .finish();
        Call::new(
            Method::POST,
            <app::server_fns::PasskeySignIn as ServerFn>::url(),
        )
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.into_bytes())
    };
    let made_up = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let response = app.send(form(made_up, &forged)).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert!(response.headers().get(header::SET_COOKIE).is_none());
    // A real ceremony, answered with something that is no assertion: 400,
    // and the ceremony is not used up by it.
    let started = app
        .send(Call::new(
            Method::POST,
            <app::server_fns::PasskeySignInOptions as ServerFn>::url(),
        ))
        .await;
    assert_eq!(started.status(), StatusCode::OK);
    let started: serde_json::Value = json(started).await;
    let ceremony = started["ceremony"].as_str().unwrap();
    let options: serde_json::Value =
        serde_json::from_str(started["options"].as_str().unwrap()).unwrap();
    assert_eq!(options["publicKey"]["rpId"], "localhost");
    assert_eq!(options["publicKey"]["userVerification"], "required");
    let response = app.send(form(ceremony, "{}")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get(header::SET_COOKIE).is_none());
    // A forged assertion: refused, and the ceremony is spent.
    let response = app.send(form(ceremony, &forged)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get(header::SET_COOKIE).is_none());
    let response = app.send(form(ceremony, &forged)).await;
    assert_eq!(response.status(), StatusCode::GONE);
}

/// A device (RFC 8628) is approved under the same rule: without the
/// passkey the approval is refused and the device keeps waiting.
#[tokio::test]
async fn a_device_approval_needs_the_passkey_too() {
    let app = test_app_with(passkey_server("passkey")).await;
    let client = crate::oidc::client(&app, true).await;
    let phone = app.phone("alice", "Alice").await;
    let device = crate::oidc::device_code(&app, &client).await;
    let user_code = device["user_code"].as_str().unwrap();
    let device_code = device["device_code"].as_str().unwrap();
    let decide = |decision: &str| {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("user_code", user_code)
            .append_pair("decision", decision)
            .finish();
        phone.auth(
            Call::new(
                Method::POST,
                <app::server_fns::DecideDevice as ServerFn>::url(),
            )
            .header(header::ACCEPT, "text/html")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.into_bytes()),
        )
    };
    let response = app.send(decide("approve")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (_, answer) = crate::oidc::device_poll(&app, &client, device_code).await;
    assert_eq!(answer["error"], "authorization_pending", "still waiting");
    // Denying needs no passkey.
    let response = app.send(decide("deny")).await;
    assert!(response.status().is_redirection(), "{}", response.status());
}
