//! API v1 basics against the real router: create, poll, errors.

use std::collections::HashSet;

use crate::helpers::*;
use app::api::{ApiErrorBody, LoginCreated, LoginState, LoginStatus};
use axum::http::{header, Method, StatusCode};
use server::config::ServeArgs;

#[tokio::test]
async fn create_answers_201_with_a_bound_cookie() {
    let app = test_app().await;
    let response = app.send(Call::new(Method::POST, paths::LOGINS)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers().get(header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
    let cookie = set_cookie(&response);
    let created: LoginCreated = json(response).await;

    assert_eq!(created.version, 1);
    assert_eq!(
        created.qr_url,
        format!("http://127.0.0.1:3000/q/{}", created.id)
    );
    assert!((59..=60).contains(&created.expires_in));
    assert!(created.expires_at.ends_with('Z'), "{}", created.expires_at);

    let attributes: Vec<&str> = cookie.split("; ").collect();
    let (name, value) = attributes[0].split_once('=').unwrap();
    assert_eq!(name, "qrlogin_bind");
    assert_eq!(value.len(), 43, "256 bits as unpadded base64url");
    assert!(attributes.contains(&"HttpOnly"), "{cookie}");
    assert!(attributes.contains(&"SameSite=Strict"), "{cookie}");
    let path = format!("Path=/api/v1/logins/{}", created.id);
    assert!(attributes.contains(&path.as_str()), "{cookie}");
    assert!(!attributes.contains(&"Secure"), "plain http: {cookie}");
}

#[tokio::test]
async fn https_public_url_makes_the_cookies_secure() {
    let app = test_app_with(ServeArgs {
        public_url: Some("https://login.example.com".into()),
        ..ServeArgs::default()
    })
    .await;
    let desktop = app.desktop().await;
    assert!(desktop.cookie.starts_with("__Secure-qrlogin_bind="));
    assert!(desktop
        .created
        .qr_url
        .starts_with("https://login.example.com/q/"));
    let response = app.send(Call::new(Method::POST, paths::LOGINS)).await;
    assert!(set_cookie(&response).split("; ").any(|a| a == "Secure"));
    assert_eq!(app.poll(&desktop).await.state, LoginState::Pending);

    app.add_account("alice", "Alice").await;
    let response = app
        .send(
            Call::new(Method::POST, paths::SESSION)
                .json(serde_json::json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    let session = set_cookie(&response);
    assert!(session.starts_with("__Host-qrlogin_session="), "{session}");
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.split("; ").any(|a| a == attribute), "{session}");
    }
}

#[tokio::test]
async fn the_creating_browser_can_poll() {
    let app = test_app().await;
    let desktop = app.desktop().await;
    let status = app.poll(&desktop).await;
    assert_eq!(status.id, desktop.id);
    assert_eq!(status.state, LoginState::Pending);
    assert_eq!(status.version, 1);
    assert_eq!(status.expires_at, desktop.created.expires_at);
    assert_eq!(status.scanner, None);
    assert_eq!(status.match_code, None);
}

#[tokio::test]
async fn malformed_ids_are_a_400_json_error() {
    let app = test_app().await;
    for id in [
        "123",
        "not-a-uuid",
        "0B8F6A52-2F6E-4B8E-9A4E-6F1D2C3B4A59",
        "0b8f6a522f6e4b8e9a4e6f1d2c3b4a59",
        "0b8f6a52-2f6e-1b8e-9a4e-6f1d2c3b4a59",
        "%FF%FE",
        &"a".repeat(5000),
    ] {
        for (method, tail) in [
            (Method::GET, ""),
            (Method::DELETE, ""),
            (Method::POST, "/redeem"),
            (Method::POST, "/scan"),
        ] {
            let uri = format!("{}{tail}", paths::with_id(paths::LOGIN, id));
            let body = error_body(
                app.send(Call::new(method, &uri)).await,
                StatusCode::BAD_REQUEST,
            )
            .await;
            assert_eq!(body.error, "invalid_login_id", "{uri}");
        }
    }
}

#[tokio::test]
async fn a_thousand_creates_give_a_thousand_distinct_v4_ids() {
    // From one address 1,000 creates would be throttled; that is tested elsewhere.
    let app = test_app_with(ServeArgs {
        limit_create: Some(0),
        ..ServeArgs::default()
    })
    .await;
    let mut ids = HashSet::new();
    for _ in 0..1000 {
        let desktop = app.desktop().await;
        let uuid = uuid::Uuid::parse_str(&desktop.id).unwrap();
        assert_eq!(uuid.get_version_num(), 4);
        ids.insert(desktop.id);
    }
    assert_eq!(ids.len(), 1000);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_json_errors() {
    let app = test_app().await;
    let some_id = "0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a59";
    for (method, uri, status) in [
        (
            Method::GET,
            "/api/v1/nothing-here".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/api/v2/logins".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (Method::GET, "/api".to_owned(), StatusCode::NOT_FOUND),
        (
            Method::GET,
            paths::LOGINS.to_owned(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::PUT,
            paths::LOGINS.to_owned(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::PATCH,
            paths::with_id(paths::LOGIN, some_id),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            paths::with_id(paths::LOGIN_REDEEM, some_id),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::POST,
            "/healthz".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::POST,
            "/login".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (Method::GET, paths::ME.to_owned(), StatusCode::UNAUTHORIZED),
        (
            Method::GET,
            paths::SESSIONS.to_owned(),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let response = app.send(Call::new(method.clone(), &uri)).await;
        assert_eq!(response.status(), status, "{method} {uri}");
        error_body(response, status).await;
    }
}

#[tokio::test]
async fn bad_bodies_and_queries_are_400_json_errors() {
    let app = test_app().await;
    let phone = app.phone("alice", "Alice").await;
    let desktop = app.desktop().await;
    let approve = paths::with_id(paths::LOGIN_APPROVE, &desktop.id);
    for body in [
        serde_json::json!("nope"),
        serde_json::json!({}),
        serde_json::json!({"match_code": 1000}),
        serde_json::json!({"match_code": "42"}),
    ] {
        let response = app
            .send(phone.auth(Call::new(Method::POST, &approve).json(body.clone())))
            .await;
        let error = error_body(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(error.error, "bad_request", "{body}");
    }
    let response = app
        .send(
            Call::new(Method::POST, paths::SESSION)
                .header(header::CONTENT_TYPE, "application/json")
                .json(serde_json::json!({"username": "alice"})),
        )
        .await;
    error_body(response, StatusCode::BAD_REQUEST).await;

    for query in [
        "since=x",
        "wait=31",
        "wait=-1",
        "since=1&wait=1e3",
        "bogus=1",
    ] {
        let uri = format!("{}?{query}", paths::with_id(paths::LOGIN, &desktop.id));
        let response = app
            .send(Call::new(Method::GET, &uri).cookie(&desktop.cookie))
            .await;
        let error: ApiErrorBody = error_body(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(error.error, "bad_request", "{query}");
    }
    // Nothing of that changed the attempt.
    let status: LoginStatus = app.poll(&desktop).await;
    assert_eq!((status.state, status.version), (LoginState::Pending, 1));
}

#[tokio::test]
async fn healthz_and_the_pages_answer() {
    let app = test_app().await;
    let response = app.send(Call::new(Method::GET, "/healthz")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app.send(Call::new(Method::GET, "/login")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = String::from_utf8(body_bytes(response).await).unwrap();
    assert!(html.contains("Scan with your phone"), "{html}");
    assert!(html.contains("/pkg/qrlogin.js"), "hydration script: {html}");

    let response = app.send(Call::new(Method::GET, "/no/such/page")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Signed out, the desktop home sends the browser to /login.
    let response = app
        .send(Call::new(Method::GET, "/").header(header::ACCEPT, "text/html"))
        .await;
    assert!(response.status().is_redirection(), "{}", response.status());
    assert_eq!(response.headers().get(header::LOCATION).unwrap(), "/login");
}
