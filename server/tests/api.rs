//! API v1 tests against the real router (no network, no mocks).

use std::collections::HashSet;

use app::api::{ApiErrorBody, LoginCreated, LoginStatus};
use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
    response::Response,
    Router,
};
use http_body_util::BodyExt;
use server::{
    app,
    config::{ServeArgs, Settings},
    AppState,
};
use tower::ServiceExt;

struct TestApp {
    router: Router,
    _dir: tempfile::TempDir,
}

fn test_app_with(args: ServeArgs) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = ServeArgs {
        database: Some(dir.path().join("qrlogin.db")),
        site_root: Some(dir.path().join("site")),
        ..args
    };
    let settings = Settings::resolve(&args).expect("settings");
    TestApp {
        router: app(AppState::new(&settings)),
        _dir: dir,
    }
}

fn test_app() -> TestApp {
    test_app_with(ServeArgs::default())
}

impl TestApp {
    async fn send(&self, request: Request<Body>) -> Response {
        self.router
            .clone()
            .oneshot(request)
            .await
            .expect("router is infallible")
    }

    async fn create(&self) -> (LoginCreated, String) {
        let response = self.send(post("/api/v1/logins")).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let cookie = set_cookie(&response);
        (json(response).await, cookie)
    }

    async fn poll(&self, id: &str, cookie: Option<&str>) -> Response {
        let mut request = Request::get(format!("/api/v1/logins/{id}"));
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }
}

fn post(uri: &str) -> Request<Body> {
    Request::post(uri).body(Body::empty()).unwrap()
}

fn set_cookie(response: &Response) -> String {
    response
        .headers()
        .get(header::SET_COOKIE)
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap()
        .to_owned()
}

/// The `name=value` part of a Set-Cookie header, as a browser sends it back.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn body_bytes(response: Response) -> Vec<u8> {
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

async fn json<T: serde::de::DeserializeOwned>(response: Response) -> T {
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let bytes = body_bytes(response).await;
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
}

async fn error_body(response: Response, status: StatusCode) -> ApiErrorBody {
    assert_eq!(response.status(), status);
    let body: ApiErrorBody = json(response).await;
    assert!(!body.error.is_empty() && !body.message.is_empty());
    body
}

#[tokio::test]
async fn create_answers_201_with_a_bound_cookie() {
    let app = test_app();
    let response = app.send(post("/api/v1/logins")).await;
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
async fn https_public_url_makes_the_bind_cookie_secure() {
    let app = test_app_with(ServeArgs {
        public_url: Some("https://login.example.com".into()),
        ..ServeArgs::default()
    });
    let (created, cookie) = app.create().await;
    assert!(cookie.starts_with("__Secure-qrlogin_bind="), "{cookie}");
    assert!(cookie.split("; ").any(|a| a == "Secure"), "{cookie}");
    assert!(created.qr_url.starts_with("https://login.example.com/q/"));
    let response = app.poll(&created.id, Some(&cookie_pair(&cookie))).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_creating_browser_can_poll() {
    let app = test_app();
    let (created, cookie) = app.create().await;
    let response = app.poll(&created.id, Some(&cookie_pair(&cookie))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let status: LoginStatus = json(response).await;
    assert_eq!(status.id, created.id);
    assert_eq!(status.state, app::api::LoginState::Pending);
    assert_eq!(status.version, 1);
    assert_eq!(status.expires_at, created.expires_at);
    assert_eq!(status.scanner, None);
    assert_eq!(status.match_code, None);
}

/// SPEC rule 1: without the right bind secret, an attempt looks exactly like
/// one that does not exist.
#[tokio::test]
async fn other_browsers_get_exactly_the_unknown_id_answer() {
    let app = test_app();
    let (created, _cookie) = app.create().await;
    let (_other, other_cookie) = app.create().await;

    let unknown = app.poll(&uuid::Uuid::new_v4().to_string(), None).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let unknown_headers = unknown.headers().clone();
    let unknown_body = body_bytes(unknown).await;

    let forged = format!("qrlogin_bind={}", "A".repeat(43));
    let attempts = [
        None,
        Some(cookie_pair(&other_cookie)),
        Some(forged),
        Some("qrlogin_bind=garbage".to_owned()),
    ];
    for cookie in attempts {
        let response = app.poll(&created.id, cookie.as_deref()).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{cookie:?}");
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE),
            unknown_headers.get(header::CONTENT_TYPE)
        );
        assert_eq!(body_bytes(response).await, unknown_body, "{cookie:?}");
    }
    let body: ApiErrorBody = serde_json::from_slice(&unknown_body).unwrap();
    assert_eq!(body.error, "login_not_found");
}

#[tokio::test]
async fn malformed_ids_are_a_400_json_error() {
    let app = test_app();
    for id in [
        "123",
        "not-a-uuid",
        "0B8F6A52-2F6E-4B8E-9A4E-6F1D2C3B4A59",
        "0b8f6a522f6e4b8e9a4e6f1d2c3b4a59",
        "0b8f6a52-2f6e-1b8e-9a4e-6f1d2c3b4a59",
        "%FF%FE",
        &"a".repeat(5000),
    ] {
        let body = error_body(app.poll(id, None).await, StatusCode::BAD_REQUEST).await;
        assert_eq!(body.error, "invalid_login_id", "{id}");
    }
}

/// SPEC rule 3: the server makes the id; whatever the client sends is ignored.
#[tokio::test]
async fn a_client_cannot_choose_the_id() {
    let app = test_app();
    let chosen = "0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a59";
    let request = Request::post(format!("/api/v1/logins?id={chosen}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(format!(r#"{{"id":"{chosen}"}}"#)))
        .unwrap();
    let response = app.send(request).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: LoginCreated = json(response).await;
    assert_ne!(created.id, chosen);
}

#[tokio::test]
async fn a_thousand_creates_give_a_thousand_distinct_v4_ids() {
    let app = test_app();
    let mut ids = HashSet::new();
    for _ in 0..1000 {
        let (created, _) = app.create().await;
        let uuid = uuid::Uuid::parse_str(&created.id).unwrap();
        assert_eq!(uuid.get_version_num(), 4);
        ids.insert(created.id);
    }
    assert_eq!(ids.len(), 1000);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_json_errors() {
    let app = test_app();
    for (method, uri, status) in [
        (Method::GET, "/api/v1/nothing-here", StatusCode::NOT_FOUND),
        (Method::POST, "/api/v2/logins", StatusCode::NOT_FOUND),
        (Method::GET, "/api", StatusCode::NOT_FOUND),
        (
            Method::GET,
            "/api/v1/logins",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::PUT,
            "/api/v1/logins",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::PATCH,
            "/api/v1/logins/0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a59",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (Method::POST, "/healthz", StatusCode::METHOD_NOT_ALLOWED),
        (Method::POST, "/login", StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let request = Request::builder()
            .method(method.clone())
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = app.send(request).await;
        assert_eq!(response.status(), status, "{method} {uri}");
        error_body(response, status).await;
    }
}

#[tokio::test]
async fn an_unscanned_code_expires_after_its_ttl() {
    let app = test_app_with(ServeArgs {
        pending_ttl: Some(1),
        ..ServeArgs::default()
    });
    let (created, cookie) = app.create().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let status: LoginStatus = json(app.poll(&created.id, Some(&cookie_pair(&cookie))).await).await;
    assert_eq!(status.state, app::api::LoginState::Expired);
    assert_eq!(status.version, 2, "expiry is a change of state");
}

#[tokio::test]
async fn healthz_and_the_login_page_answer() {
    let app = test_app();
    let response = app
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .send(Request::get("/login").body(Body::empty()).unwrap())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = String::from_utf8(body_bytes(response).await).unwrap();
    assert!(html.contains("Scan with your phone"), "{html}");
    assert!(html.contains("/pkg/qrlogin.js"), "hydration script: {html}");

    let response = app
        .send(Request::get("/no/such/page").body(Body::empty()).unwrap())
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
