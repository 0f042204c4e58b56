//! One real router per test, with its own SQLite database and in-memory
//! attempt store, opened by URL exactly as `qrlogin serve` opens them;
//! requests go through `tower::ServiceExt::oneshot`. A desktop and a phone
//! are what the tests drive it with.

use std::net::SocketAddr;

pub use app::api::paths;
use app::api::{ApiErrorBody, LoginCreated, LoginStatus, SignedIn};
use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{header, Method, Request, StatusCode},
    response::Response,
    Router,
};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use server::{
    app,
    config::{ServeArgs, Settings},
    domain::time::now_millis,
    AppState,
};
pub use server::{domain::audit::AuditRecord, storage::AuditQuery};
use tower::ServiceExt;

pub const DESKTOP_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
pub const PHONE_UA: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36";
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub dir: tempfile::TempDir,
}

/// A request under construction: method, path, headers, body, peer address.
pub struct Call {
    builder: axum::http::request::Builder,
    body: Body,
    peer: SocketAddr,
}

impl Call {
    pub fn new(method: Method, uri: &str) -> Self {
        Self {
            builder: Request::builder().method(method).uri(uri),
            body: Body::empty(),
            peer: SocketAddr::from(([192, 168, 1, 10], 50000)),
        }
    }

    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.builder = self.builder.header(name.as_ref(), value.as_ref());
        self
    }

    pub fn cookie(self, cookie: &str) -> Self {
        self.header(header::COOKIE, cookie)
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header(header::AUTHORIZATION, format!("Bearer {token}"))
    }

    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.builder = self
            .builder
            .header(header::CONTENT_TYPE, "application/json");
        self.body = Body::from(body.to_string());
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = Body::from(body);
        self
    }

    pub fn peer_ip(mut self, ip: [u8; 4]) -> Self {
        self.peer = SocketAddr::from((ip, 50000));
        self
    }

    /// The connection's peer, any address (IPv6 too).
    pub fn peer(mut self, peer: SocketAddr) -> Self {
        self.peer = peer;
        self
    }
}

pub async fn test_app_with(args: ServeArgs) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = ServeArgs {
        database: args.database.or(Some(format!(
            "sqlite://{}",
            dir.path().join("qrlogin.db").display()
        ))),
        site_root: Some(dir.path().join("site")),
        ..args
    };
    let settings = Settings::resolve(&args).expect("settings");
    let state = AppState::open(&settings).await.expect("state");
    TestApp {
        router: app(state.clone()),
        state,
        dir,
    }
}

pub async fn test_app() -> TestApp {
    test_app_with(ServeArgs::default()).await
}

/// `n` instances sharing a fresh PostgreSQL database and Redis, each with
/// its own router, caches and subscriber, as separate processes would be;
/// `None` (the test skipped) without the test servers.
pub async fn cluster_with(n: usize, args: ServeArgs) -> Option<Vec<TestApp>> {
    let redis = server::storage::testing::fresh_redis()?;
    cluster_on(n, args, redis).await
}

/// As [`cluster_with`], on the Redis `redis` names.
pub async fn cluster_on(
    n: usize,
    args: ServeArgs,
    redis: server::storage::RedisSettings,
) -> Option<Vec<TestApp>> {
    let database = server::storage::testing::fresh_postgres().await?;
    let mut apps = Vec::new();
    for _ in 0..n {
        let args = ServeArgs {
            database: Some(database.clone()),
            redis: Some(redis.url.clone()),
            redis_prefix: Some(redis.prefix.clone()),
            ..args.clone()
        };
        apps.push(test_app_with(args).await);
    }
    Some(apps)
}

pub async fn cluster(n: usize) -> Option<Vec<TestApp>> {
    cluster_with(n, ServeArgs::default()).await
}

/// A phone signed in as one account.
pub struct Phone {
    pub token: String,
}

impl Phone {
    pub fn auth(&self, call: Call) -> Call {
        call.bearer(&self.token)
            .header(header::USER_AGENT, PHONE_UA)
    }
}

/// A desktop browser holding one attempt's bind cookie.
pub struct Desktop {
    pub id: String,
    pub cookie: String,
    pub created: LoginCreated,
}

/// Sends `call` through `router` (for a request made from a spawned task).
/// Longer than any answer may take (a long poll waits at most 30 s): a
/// request still unanswered then is a hang, failed with its name rather
/// than left to stop the whole run.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(90);

pub async fn send_to(router: Router, call: Call) -> Response {
    let mut request = call.builder.body(call.body).expect("request");
    request.extensions_mut().insert(ConnectInfo(call.peer));
    let what = format!("{} {}", request.method(), request.uri());
    tokio::time::timeout(ANSWER_WITHIN, router.oneshot(request))
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {ANSWER_WITHIN:?}"))
        .expect("router is infallible")
}

/// Signs `username` in with the test password; returns the bearer token.
pub async fn sign_in(app: &TestApp, username: &str) -> String {
    let response = app
        .send(
            Call::new(Method::POST, paths::SESSION)
                .header(header::USER_AGENT, PHONE_UA)
                .json(serde_json::json!({ "username": username, "password": PASSWORD })),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let signed_in: SignedIn = json(response).await;
    signed_in.token
}

impl TestApp {
    pub async fn send(&self, call: Call) -> Response {
        send_to(self.router.clone(), call).await
    }

    pub async fn add_account(&self, username: &str, display_name: &str) {
        self.state
            .services
            .accounts
            .add_account(username, Some(display_name), PASSWORD, now_millis())
            .await
            .expect("account");
    }

    /// Creates the account and signs a phone in with its password.
    pub async fn phone(&self, username: &str, display_name: &str) -> Phone {
        self.add_account(username, display_name).await;
        Phone {
            token: sign_in(self, username).await,
        }
    }

    pub async fn desktop(&self) -> Desktop {
        let response = self
            .send(Call::new(Method::POST, paths::LOGINS).header(header::USER_AGENT, DESKTOP_UA))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let cookie = cookie_pair(&set_cookie(&response));
        let created: LoginCreated = json(response).await;
        Desktop {
            id: created.id.clone(),
            cookie,
            created,
        }
    }

    pub async fn poll(&self, desktop: &Desktop) -> LoginStatus {
        let response = self
            .send(
                Call::new(Method::GET, &paths::with_id(paths::LOGIN, &desktop.id))
                    .cookie(&desktop.cookie),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        json(response).await
    }

    pub async fn scan(&self, phone: &Phone, id: &str) -> Response {
        self.send(phone.auth(Call::new(
            Method::POST,
            &paths::with_id(paths::LOGIN_SCAN, id),
        )))
        .await
    }

    pub async fn approve(&self, phone: &Phone, id: &str, code: u8) -> Response {
        self.send(
            phone.auth(
                Call::new(Method::POST, &paths::with_id(paths::LOGIN_APPROVE, id))
                    .json(serde_json::json!({ "match_code": code })),
            ),
        )
        .await
    }

    pub async fn deny(&self, phone: &Phone, id: &str) -> Response {
        self.send(phone.auth(Call::new(
            Method::POST,
            &paths::with_id(paths::LOGIN_DENY, id),
        )))
        .await
    }

    pub async fn redeem(&self, desktop: &Desktop) -> Response {
        self.send(
            Call::new(
                Method::POST,
                &paths::with_id(paths::LOGIN_REDEEM, &desktop.id),
            )
            .cookie(&desktop.cookie)
            .header(header::USER_AGENT, DESKTOP_UA),
        )
        .await
    }

    /// Scans with `phone` and returns the code the desktop is shown.
    pub async fn scan_and_read_code(&self, phone: &Phone, desktop: &Desktop) -> u8 {
        assert_eq!(self.scan(phone, &desktop.id).await.status(), StatusCode::OK);
        self.poll(desktop).await.match_code.expect("a match code")
    }

    /// Runs the whole flow: the desktop ends signed in; returns its session
    /// cookie as the browser would send it.
    pub async fn signed_in_desktop(&self, phone: &Phone) -> String {
        let desktop = self.approved(phone).await;
        let response = self.redeem(&desktop).await;
        assert_eq!(response.status(), StatusCode::OK);
        cookie_pair(&set_cookie(&response))
    }

    /// The phone account's sessions, as `GET /api/v1/sessions` lists them.
    pub async fn sessions(&self, phone: &Phone) -> Vec<app::api::SessionInfo> {
        let response = self
            .send(phone.auth(Call::new(Method::GET, paths::SESSIONS)))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        json(response).await
    }

    /// Runs the whole flow up to an approved attempt.
    pub async fn approved(&self, phone: &Phone) -> Desktop {
        let desktop = self.desktop().await;
        let code = self.scan_and_read_code(phone, &desktop).await;
        assert_eq!(
            self.approve(phone, &desktop.id, code).await.status(),
            StatusCode::OK
        );
        desktop
    }
}

pub fn set_cookie(response: &Response) -> String {
    response
        .headers()
        .get(header::SET_COOKIE)
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap()
        .to_owned()
}

/// The `name=value` part of a Set-Cookie header, as a browser sends it back.
pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

pub async fn body_bytes(response: Response) -> Vec<u8> {
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

pub async fn json<T: DeserializeOwned>(response: Response) -> T {
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let bytes = body_bytes(response).await;
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
}

/// The audit rows `query` selects, oldest first, through the audit store.
pub async fn audit_events(app: &TestApp, query: AuditQuery) -> Vec<AuditRecord> {
    app.state.services.audit.events(&query).await.unwrap()
}

pub async fn error_body(response: Response, status: StatusCode) -> ApiErrorBody {
    assert_eq!(response.status(), status);
    let body: ApiErrorBody = json(response).await;
    assert!(!body.error.is_empty() && !body.message.is_empty());
    body
}

/// A `qrlogin serve` process on a port of its own, killed when dropped.
pub struct Instance {
    pub child: std::process::Child,
    pub base: String,
}

impl Instance {
    /// Starts `qrlogin serve --addr 127.0.0.1:PORT` with `args` after it.
    pub fn start(args: &[String]) -> Self {
        Self::spawn(args, "warn", std::process::Stdio::null(), false)
    }

    /// As [`Self::start`], with its own address as its public URL (the
    /// OpenID issuer clients discover); the others all share the default,
    /// as instances behind one balancer do.
    pub fn start_public(args: &[String]) -> Self {
        Self::spawn(args, "warn", std::process::Stdio::null(), true)
    }

    /// As [`Self::start`], logging at debug level to `log`.
    pub fn start_logging(args: &[String], log: impl Into<std::process::Stdio>) -> Self {
        Self::spawn(args, "warn,server=debug", log.into(), false)
    }

    fn spawn(
        args: &[String],
        log_filter: &str,
        log: std::process::Stdio,
        own_public_url: bool,
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let public_url = match own_public_url {
            true => vec!["--public-url".to_owned(), base.clone()],
            false => vec![],
        };
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_qrlogin"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .args(public_url)
            .args(args)
            .env_remove("QRLOGIN_CONFIG")
            .env("QRLOGIN_LOG", log_filter)
            .stdout(log)
            .spawn()
            .expect("start qrlogin");
        Self { child, base }
    }

    /// Waits until `/healthz` answers.
    pub async fn ready(&self, client: &reqwest::Client) {
        for _ in 0..200 {
            if let Ok(response) = client.get(format!("{}/healthz", self.base)).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{} did not start", self.base);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops it as an operator would (SIGTERM: a graceful shutdown).
    pub fn terminate(&mut self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = self.child.wait().expect("wait");
        assert!(exit.success(), "qrlogin exited with {exit}");
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
