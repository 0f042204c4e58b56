//! Issue 4's defences, each as a request that must fail: rate limits, CSRF,
//! security headers, size limits, proxies.

use crate::helpers::*;
use app::api::{ApiErrorBody, LoginState, Scanned};
use axum::http::{header, Method, StatusCode};
use server::config::ServeArgs;

fn sign_in_call(username: &str, password: &str) -> Call {
    Call::new(Method::POST, paths::SESSION)
        .json(serde_json::json!({ "username": username, "password": password }))
}

async fn assert_rate_limited(response: axum::response::Response) {
    let retry_after: u64 = response
        .headers()
        .get(header::RETRY_AFTER)
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    let error = error_body(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(error.error, "rate_limited");
}

#[tokio::test]
async fn the_eleventh_sign_in_in_a_minute_gets_429() {
    let app = test_app().await;
    app.add_account("alice", "Alice").await;
    for _ in 0..10 {
        let response = app.send(sign_in_call("alice", "wrong password")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // Even the right password waits now: the limit counts tries, not failures.
    assert_rate_limited(app.send(sign_in_call("alice", PASSWORD)).await).await;
    // Another address is not affected by this one's tries ...
    let response = app
        .send(sign_in_call("bob", "whatever pw").peer_ip([10, 0, 0, 2]))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sign_in_throttles_per_username_alike_for_real_and_unknown_accounts() {
    let app = test_app().await;
    app.add_account("alice", "Alice").await;
    let mut answers = Vec::new();
    for username in ["alice", "nobody"] {
        // Ten addresses, one try each, all on the same name.
        for i in 0..10 {
            let call = sign_in_call(username, "wrong password").peer_ip([10, 1, 0, i]);
            assert_eq!(app.send(call).await.status(), StatusCode::UNAUTHORIZED);
        }
        let response = app
            .send(sign_in_call(username, "wrong password").peer_ip([10, 2, 0, 1]))
            .await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        answers.push(body_bytes(response).await);
    }
    assert_eq!(
        answers[0], answers[1],
        "throttling must not reveal which account exists"
    );
}

#[tokio::test]
async fn creating_and_scanning_are_rate_limited() {
    let app = test_app_with(ServeArgs {
        limit_create: Some(3),
        limit_scan: Some(2),
        ..ServeArgs::default()
    })
    .await;
    for _ in 0..3 {
        app.desktop().await;
    }
    assert_rate_limited(app.send(Call::new(Method::POST, paths::LOGINS)).await).await;

    let phone = app.phone("alice", "Alice").await;
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..3 {
            let response = app
                .send(Call::new(Method::POST, paths::LOGINS).peer_ip([10, 9, 0, i]))
                .await;
            ids.push(json::<app::api::LoginCreated>(response).await.id);
        }
        ids
    };
    assert_eq!(app.scan(&phone, &ids[0]).await.status(), StatusCode::OK);
    assert_eq!(app.scan(&phone, &ids[1]).await.status(), StatusCode::OK);
    assert_rate_limited(app.scan(&phone, &ids[2]).await).await;
}

#[tokio::test]
async fn cross_site_state_changes_are_refused() {
    let app = test_app().await;
    let phone = app.phone("alice", "Alice").await;
    let desktop = app.desktop().await;
    let scan = paths::with_id(paths::LOGIN_SCAN, &desktop.id);
    let attacks = [
        Call::new(Method::POST, &scan).header("sec-fetch-site", "cross-site"),
        Call::new(Method::POST, &scan).header("sec-fetch-site", "same-site"),
        Call::new(Method::POST, &scan).header(header::ORIGIN, "https://evil.example"),
        Call::new(Method::POST, &scan).header(header::ORIGIN, "null"),
    ];
    for call in attacks {
        let error = error_body(app.send(phone.auth(call)).await, StatusCode::FORBIDDEN).await;
        assert_eq!(error.error, "cross_site_request");
    }
    // The page's own server functions are guarded the same way.
    let form = Call::new(Method::POST, "/fn/sign_in")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    assert_eq!(app.send(form).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.poll(&desktop).await.state, LoginState::Pending);

    // Same origin, and apps that send neither header, pass.
    let same = phone.auth(Call::new(Method::POST, &scan).header("sec-fetch-site", "same-origin"));
    let scanned: Scanned = json(app.send(same).await).await;
    assert_eq!(scanned.state, LoginState::Scanned);
    let same =
        phone.auth(Call::new(Method::POST, &scan).header(header::ORIGIN, "http://127.0.0.1:3000"));
    assert_eq!(app.send(same).await.status(), StatusCode::OK);
    // Reading is never blocked.
    let read = Call::new(Method::GET, &paths::with_id(paths::LOGIN, &desktop.id))
        .cookie(&desktop.cookie)
        .header("sec-fetch-site", "cross-site");
    assert_eq!(app.send(read).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = test_app_with(ServeArgs {
        public_url: Some("https://login.example.com".into()),
        ..ServeArgs::default()
    })
    .await;
    for uri in ["/login", paths::ME, "/healthz", "/no/such/page"] {
        let response = app.send(Call::new(Method::GET, uri)).await;
        let headers = response.headers();
        let csp = headers
            .get(header::CONTENT_SECURITY_POLICY)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{uri}: {csp}");
        assert_eq!(headers.get(header::X_FRAME_OPTIONS).unwrap(), "DENY");
        assert_eq!(headers.get(header::REFERRER_POLICY).unwrap(), "no-referrer");
        assert_eq!(
            headers.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(),
            "nosniff"
        );
        let hsts = headers
            .get(header::STRICT_TRANSPORT_SECURITY)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(hsts.starts_with("max-age="), "{uri}");
    }
    let plain = test_app().await;
    let response = plain.send(Call::new(Method::GET, "/login")).await;
    assert!(response
        .headers()
        .get(header::STRICT_TRANSPORT_SECURITY)
        .is_none());
}

#[tokio::test]
async fn pages_carry_a_csp_nonce_that_matches_their_scripts() {
    let app = test_app().await;
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let response = app.send(Call::new(Method::GET, "/login")).await;
        let csp = response
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .expect("a nonce")
            .to_owned();
        assert!(nonce.len() >= 16, "{nonce}");
        let html = String::from_utf8(body_bytes(response).await).unwrap();
        let scripts = html.matches("<script").count();
        assert!(scripts >= 1);
        assert_eq!(
            html.matches(&format!("nonce=\"{nonce}\"")).count(),
            scripts,
            "every inline script carries the nonce: {html}"
        );
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1], "a fresh nonce per response");
}

#[tokio::test]
async fn oversized_bodies_and_headers_are_json_errors() {
    let app = test_app().await;
    let phone = app.phone("alice", "Alice").await;
    let desktop = app.desktop().await;
    let approve = paths::with_id(paths::LOGIN_APPROVE, &desktop.id);
    let huge = "x".repeat(100_000);
    let call = phone.auth(
        Call::new(Method::POST, &approve).json(serde_json::json!({ "match_code": 1, "pad": huge })),
    );
    let error = error_body(app.send(call).await, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(error.error, "payload_too_large");

    let call = Call::new(Method::GET, paths::ME).header("x-padding", "y".repeat(20_000));
    let error = error_body(
        app.send(call).await,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    )
    .await;
    assert_eq!(error.error, "headers_too_large");
    assert_eq!(app.poll(&desktop).await.version, 1);
}

#[tokio::test]
async fn proxy_headers_are_ignored_unless_the_proxy_is_trusted() {
    // Not trusted (the default): the phone sees the real peer, not the claim.
    let app = test_app().await;
    let phone = app.phone("alice", "Alice").await;
    let forged = Call::new(Method::POST, paths::LOGINS)
        .peer_ip([203, 0, 113, 5])
        .header("x-forwarded-for", "192.168.1.77");
    let created: app::api::LoginCreated = json(app.send(forged).await).await;
    let scanned: Scanned = json(app.scan(&phone, &created.id).await).await;
    assert_eq!(scanned.requester.ip, "203.0.113.5");
    assert!(
        !scanned.requester.same_network,
        "a forged header must not fake 'same network'"
    );

    let app = test_app_with(ServeArgs {
        trusted_proxies: Some(vec!["10.0.0.1".parse().unwrap()]),
        ..ServeArgs::default()
    })
    .await;
    let phone = app.phone("alice", "Alice").await;
    let via_proxy = Call::new(Method::POST, paths::LOGINS)
        .peer_ip([10, 0, 0, 1])
        .header("x-forwarded-for", "198.51.100.20");
    let created: app::api::LoginCreated = json(app.send(via_proxy).await).await;
    let scanned: Scanned = json(app.scan(&phone, &created.id).await).await;
    assert_eq!(scanned.requester.ip, "198.51.100.20");
}

#[tokio::test]
async fn rejected_requests_change_nothing_stored() {
    let app = test_app().await;
    let phone = app.phone("alice", "Alice").await;
    let desktop = app.desktop().await;
    let before: ApiErrorBody = error_body(
        app.send(
            phone.auth(
                Call::new(
                    Method::POST,
                    &paths::with_id(paths::LOGIN_APPROVE, &desktop.id),
                )
                .json(serde_json::json!({"match_code": 5})),
            ),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(before.error, "not_scanned");
    let status = app.poll(&desktop).await;
    assert_eq!((status.state, status.version), (LoginState::Pending, 1));
}
