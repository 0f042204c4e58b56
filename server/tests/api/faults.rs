//! Faults a cluster survives, for real: an instance killed with SIGKILL,
//! Redis stopped and started again, PostgreSQL stopped and started again.
//! Each test starts private servers (scripts/services.sh's own functions)
//! so that stopping them disturbs no other test.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::helpers::*;
use app::api::{LoginState, LoginStatus};
use axum::http::{header, Method, StatusCode};
use server::config::ServeArgs;

/// Runs one of scripts/services.sh's functions on `dir`.
pub(crate) fn services(function: &str, dir: &Path) {
    services_with(function, dir, "");
}

/// The same, with more arguments after the folder.
fn services_with(function: &str, dir: &Path, more: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/services.sh");
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && {function} '{}' {more}",
            script.display(),
            dir.display()
        ))
        .status()
        .expect("bash");
    assert!(status.success(), "{function} {} failed", dir.display());
}

/// Redis and PostgreSQL of this test's own, stopped when dropped.
struct PrivateServers {
    dir: tempfile::TempDir,
}

impl PrivateServers {
    /// `None` (the test skipped) where the test servers do not run.
    fn start() -> Option<Self> {
        server::storage::testing::fresh_redis()?;
        let dir = tempfile::Builder::new()
            .prefix("qrlogin-fault")
            .tempdir_in("/tmp")
            .expect("temp dir");
        services("services_prepare_dir", dir.path());
        services("start_redis", dir.path());
        let servers = Self { dir };
        servers.postgres("start_postgres");
        Some(servers)
    }

    /// Starts or stops PostgreSQL (without fsync: throwaway data).
    fn postgres(&self, function: &str) {
        services_with(function, self.dir.path(), "fast");
    }

    fn redis_url(&self) -> String {
        format!("redis+unix://{}/redis.sock", self.dir.path().display())
    }

    fn postgres_url(&self) -> String {
        format!(
            "postgres://postgres@localhost/postgres?host={}&port=5432",
            self.dir.path().display()
        )
    }

    fn args(&self) -> ServeArgs {
        ServeArgs {
            database: Some(self.postgres_url()),
            redis: Some(self.redis_url()),
            ..ServeArgs::default()
        }
    }

    fn stop_redis(&self) {
        services("stop_redis", self.dir.path());
    }

    fn start_redis(&self) {
        services("start_redis", self.dir.path());
    }
}

impl Drop for PrivateServers {
    fn drop(&mut self) {
        services("stop_redis", self.dir.path());
        services("stop_postgres", self.dir.path());
    }
}

/// Asserts the answer is the JSON 503 of a store that is down, and came
/// within a second.
async fn unavailable_within_a_second(app: &TestApp, call: Call) {
    let started = Instant::now();
    let response = app.send(call).await;
    let took = started.elapsed();
    let body = error_body(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body.error, "unavailable");
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
}

/// Retries `call` until it answers `status` (the stores reconnect by
/// themselves), for up to ten seconds.
async fn recovers(app: &TestApp, call: impl Fn() -> Call, status: StatusCode) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let got = app.send(call()).await.status();
        if got == status {
            return;
        }
        assert!(Instant::now() < until, "still {got} after ten seconds");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn redis_down_answers_503_at_once_and_everything_carries_on_when_it_is_back() {
    let Some(servers) = PrivateServers::start() else {
        return;
    };
    let a = test_app_with(servers.args()).await;
    let b = test_app_with(servers.args()).await;
    let phone = a.phone("alice", "Alice").await;
    // Approved before the restart; redeemed after it.
    let approved = a.approved(&phone).await;
    let waiting = b.desktop().await;

    // A desktop already waiting hears of the outage at once, as a 503.
    let waiting_poll = tokio::spawn(send_to(
        b.router.clone(),
        Call::new(
            Method::GET,
            &format!(
                "{}?since=1&wait=20",
                paths::with_id(paths::LOGIN, &waiting.id)
            ),
        )
        .cookie(&waiting.cookie),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    servers.stop_redis();
    let stopped = Instant::now();
    let answer = waiting_poll.await.unwrap();
    assert!(
        stopped.elapsed() < Duration::from_secs(1),
        "the waiting poll answered {:?} after the stop",
        stopped.elapsed()
    );
    assert_eq!(
        error_body(answer, StatusCode::SERVICE_UNAVAILABLE)
            .await
            .error,
        "unavailable"
    );
    let create = || Call::new(Method::POST, paths::LOGINS);
    unavailable_within_a_second(&a, create()).await;
    unavailable_within_a_second(
        &b,
        Call::new(Method::GET, &paths::with_id(paths::LOGIN, &waiting.id)).cookie(&waiting.cookie),
    )
    .await;
    unavailable_within_a_second(
        &a,
        phone.auth(Call::new(
            Method::POST,
            &paths::with_id(paths::LOGIN_SCAN, &waiting.id),
        )),
    )
    .await;
    // Sign-ins too: their rate limit lives in Redis, and is not dropped.
    unavailable_within_a_second(
        &b,
        Call::new(Method::POST, paths::SESSION)
            .json(serde_json::json!({ "username": "alice", "password": PASSWORD })),
    )
    .await;

    servers.start_redis();
    recovers(&a, create, StatusCode::CREATED).await;
    recovers(&b, create, StatusCode::CREATED).await;
    assert_eq!(a.redeem(&approved).await.status(), StatusCode::OK);

    // The subscriber is back: a desktop waiting on B hears a scan on A.
    let version = b.poll(&waiting).await.version;
    let poll = tokio::spawn(send_to(
        b.router.clone(),
        Call::new(
            Method::GET,
            &format!(
                "{}?since={version}&wait=10",
                paths::with_id(paths::LOGIN, &waiting.id)
            ),
        )
        .cookie(&waiting.cookie),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let scanned_at = Instant::now();
    assert_eq!(a.scan(&phone, &waiting.id).await.status(), StatusCode::OK);
    let status: LoginStatus = json(poll.await.unwrap()).await;
    assert_eq!(status.state, LoginState::Scanned);
    assert!(scanned_at.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn postgres_down_answers_503_loses_nothing_and_recovers_by_itself() {
    let Some(servers) = PrivateServers::start() else {
        return;
    };
    let app = test_app_with(servers.args()).await;
    let phone = app.phone("alice", "Alice").await;
    let approved = app.approved(&phone).await;

    servers.postgres("stop_postgres");
    let sign_in = || {
        Call::new(Method::POST, paths::SESSION)
            .header(header::USER_AGENT, PHONE_UA)
            .json(serde_json::json!({ "username": "alice", "password": PASSWORD }))
    };
    let body = error_body(app.send(sign_in()).await, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body.error, "unavailable");
    let body = error_body(app.redeem(&approved).await, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body.error, "unavailable");
    // The approval survived the failed redeem.
    assert_eq!(app.poll(&approved).await.state, LoginState::Approved);

    servers.postgres("start_postgres");
    recovers(&app, sign_in, StatusCode::OK).await;
    let response = app.redeem(&approved).await;
    assert_eq!(response.status(), StatusCode::OK);
    // The account and its earlier session are still there.
    assert_eq!(app.sessions(&phone).await.len(), 3);
    // And the audit rows queued while it was down were written after.
    let sign_ins = audit_events(
        &app,
        AuditQuery {
            event: Some(server::domain::audit::AuditEvent::SignedIn),
            ..AuditQuery::default()
        },
    )
    .await;
    assert_eq!(sign_ins.len(), 3);
}

/// `name=value` of the response's first cookie.
fn first_cookie(response: &reqwest::Response) -> String {
    let set = response.headers()[header::SET_COOKIE].to_str().unwrap();
    cookie_pair(set)
}

#[tokio::test]
async fn an_instance_killed_with_sigkill_loses_nothing_its_desktops_carry_on_elsewhere() {
    let Some(servers) = PrivateServers::start() else {
        return;
    };
    let site = PathBuf::from(servers.dir.path()).join("site");
    let args = |site: &Path| {
        let mut args = vec![
            "--database".to_owned(),
            servers.postgres_url(),
            "--redis".to_owned(),
            servers.redis_url(),
            "--site-root".to_owned(),
        ];
        args.push(site.display().to_string());
        args
    };
    let mut a = Instance::start(&args(&site));
    let b = Instance::start(&args(&site));
    let http = reqwest::Client::new();
    a.ready(&http).await;
    b.ready(&http).await;

    // The phone's account, through the shared database.
    let setup = test_app_with(servers.args()).await;
    let phone = setup.phone("alice", "Alice").await;
    let bearer = format!("Bearer {}", phone.token);

    // Two desktops on A: one approved, one waiting in a long poll.
    let mut desktops = Vec::new();
    for _ in 0..2 {
        let response = http.post(a.url(paths::LOGINS)).send().await.unwrap();
        assert_eq!(response.status(), 201);
        let cookie = first_cookie(&response);
        let created: serde_json::Value = response.json().await.unwrap();
        desktops.push((created["id"].as_str().unwrap().to_owned(), cookie));
    }
    let (approved_id, approved_cookie) = desktops[0].clone();
    let (waiting_id, waiting_cookie) = desktops[1].clone();
    let scan = |base: &Instance, id: &str| {
        http.post(base.url(&paths::with_id(paths::LOGIN_SCAN, id)))
            .header(header::AUTHORIZATION, &bearer)
            .send()
    };
    let approve = |base: &Instance, id: &str, code: u8| {
        http.post(base.url(&paths::with_id(paths::LOGIN_APPROVE, id)))
            .header(header::AUTHORIZATION, &bearer)
            .json(&serde_json::json!({ "match_code": code }))
            .send()
    };
    let status = |base: &Instance, id: &str, cookie: &str, query: &str| {
        http.get(base.url(&format!("{}{query}", paths::with_id(paths::LOGIN, id))))
            .header(header::COOKIE, cookie)
            .send()
    };
    assert_eq!(scan(&a, &approved_id).await.unwrap().status(), 200);
    let seen: LoginStatus = status(&a, &approved_id, &approved_cookie, "")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = seen.match_code.unwrap();
    assert_eq!(approve(&a, &approved_id, code).await.unwrap().status(), 200);

    let long_poll = tokio::spawn(status(&a, &waiting_id, &waiting_cookie, "?since=1&wait=20"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();
    assert!(
        long_poll.await.unwrap().is_err(),
        "the poll on A broke with its instance"
    );

    // The waiting desktop's next poll lands on B and carries on there.
    let long_poll = tokio::spawn(status(&b, &waiting_id, &waiting_cookie, "?since=1&wait=20"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(scan(&b, &waiting_id).await.unwrap().status(), 200);
    let woken: LoginStatus = long_poll.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(woken.state, LoginState::Scanned);
    let code = woken.match_code.unwrap();
    assert_eq!(approve(&b, &waiting_id, code).await.unwrap().status(), 200);

    // Both sign in on B, the one approved on A before the kill included.
    for (id, cookie) in [
        (&approved_id, &approved_cookie),
        (&waiting_id, &waiting_cookie),
    ] {
        let response = http
            .post(b.url(&paths::with_id(paths::LOGIN_REDEEM, id)))
            .header(header::COOKIE, cookie.as_str())
            .header(header::ORIGIN, "http://127.0.0.1:3000")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
}
