//! Several instances sharing PostgreSQL and Redis, with no stickiness: any
//! instance serves any request. Each instance here is a whole server of
//! its own (router, services, caches, Redis subscriber) in this process;
//! `faults.rs` runs them as separate processes.

use std::time::{Duration, Instant};

use crate::helpers::*;
use app::api::{LoginState, LoginStatus, Me, Redeemed};
use axum::http::{header, Method, StatusCode};
use server::{config::ServeArgs, storage::RedisSettings};

/// A long poll for `desktop` past `since`, on `app`.
fn long_poll(desktop: &Desktop, since: u64) -> Call {
    Call::new(
        Method::GET,
        &format!(
            "{}?since={since}&wait=10",
            paths::with_id(paths::LOGIN, &desktop.id)
        ),
    )
    .cookie(&desktop.cookie)
}

#[tokio::test]
async fn the_desktop_creates_and_waits_on_a_the_phone_approves_on_b_the_desktop_redeems_on_c() {
    let Some(apps) = cluster(3).await else { return };
    let [a, b, c] = [&apps[0], &apps[1], &apps[2]];
    let phone = b.phone("alice", "Alice").await;
    let desktop = a.desktop().await;

    // Waiting on A, woken by B's scan.
    let waiting = tokio::spawn({
        let router = a.router.clone();
        let call = long_poll(&desktop, 1);
        async move { send_to(router, call).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b.scan(&phone, &desktop.id).await.status(), StatusCode::OK);
    let scanned: LoginStatus = json(waiting.await.unwrap()).await;
    assert_eq!(scanned.state, LoginState::Scanned);
    let code = scanned.match_code.unwrap();

    assert_eq!(
        b.approve(&phone, &desktop.id, code).await.status(),
        StatusCode::OK
    );
    assert_eq!(c.poll(&desktop).await.state, LoginState::Approved);
    let response = c.redeem(&desktop).await;
    assert_eq!(response.status(), StatusCode::OK);
    let session = cookie_pair(&set_cookie(&response));
    let redeemed: Redeemed = json(response).await;
    assert_eq!(redeemed.user.username, "alice");

    // The new session works everywhere; the attempt is spent everywhere.
    for app in [a, b, c] {
        let response = app
            .send(Call::new(Method::GET, paths::ME).cookie(&session))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(app.poll(&desktop).await.state, LoginState::Redeemed);
    }
    assert_eq!(a.redeem(&desktop).await.status(), StatusCode::GONE);
}

#[tokio::test]
async fn the_long_poll_on_a_answers_within_milliseconds_of_an_approve_on_b() {
    let Some(apps) = cluster(2).await else { return };
    let (a, b) = (&apps[0], &apps[1]);
    let phone = b.phone("alice", "Alice").await;
    let desktop = a.desktop().await;
    let code = b.scan_and_read_code(&phone, &desktop).await;
    let version = a.poll(&desktop).await.version;

    let mut slowest = Duration::ZERO;
    let waiting = tokio::spawn({
        let router = a.router.clone();
        let call = long_poll(&desktop, version);
        async move {
            let response = send_to(router, call).await;
            (Instant::now(), response)
        }
    });
    // Let the poll settle into its wait first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let approved_at = Instant::now();
    assert_eq!(
        b.approve(&phone, &desktop.id, code).await.status(),
        StatusCode::OK
    );
    let (answered_at, response) = waiting.await.unwrap();
    let status: LoginStatus = json(response).await;
    assert_eq!(status.state, LoginState::Approved);
    slowest = slowest.max(answered_at.saturating_duration_since(approved_at));
    eprintln!("approve on B -> poll on A answered after {slowest:?}");
    assert!(
        slowest < Duration::from_millis(250),
        "the waiting desktop heard of it after {slowest:?}"
    );
}

#[tokio::test]
async fn of_racing_redeems_on_two_instances_exactly_one_succeeds() {
    let Some(apps) = cluster(2).await else { return };
    let phone = apps[0].phone("alice", "Alice").await;
    let desktop = apps[1].approved(&phone).await;
    let redeems = (0..8).map(|i| {
        let router = apps[i % 2].router.clone();
        let call = Call::new(
            Method::POST,
            &paths::with_id(paths::LOGIN_REDEEM, &desktop.id),
        )
        .cookie(&desktop.cookie)
        .header(header::USER_AGENT, DESKTOP_UA);
        tokio::spawn(send_to(router, call))
    });
    let mut ok = 0;
    for redeem in redeems {
        let status = redeem.await.unwrap().status();
        assert!(
            status == StatusCode::OK || status == StatusCode::GONE,
            "{status}"
        );
        ok += usize::from(status == StatusCode::OK);
    }
    assert_eq!(ok, 1);
    let sessions = apps[0].sessions(&phone).await;
    assert_eq!(sessions.iter().filter(|s| s.method == "qr").count(), 1);
}

#[tokio::test]
async fn the_eleventh_sign_in_in_a_minute_is_refused_whichever_instance_gets_it() {
    let Some(apps) = cluster(3).await else { return };
    apps[0].add_account("alice", "Alice").await;
    let try_sign_in = |i: usize| {
        apps[i % 3].send(
            Call::new(Method::POST, paths::SESSION)
                .peer_ip([198, 51, 100, 7])
                .json(serde_json::json!({ "username": "alice", "password": "wrong password" })),
        )
    };
    for i in 0..10 {
        assert_eq!(try_sign_in(i).await.status(), StatusCode::UNAUTHORIZED);
    }
    let response = try_sign_in(10).await;
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    assert_eq!(
        error_body(response, StatusCode::TOO_MANY_REQUESTS)
            .await
            .error,
        "rate_limited"
    );
}

#[tokio::test]
async fn a_session_revoked_on_a_is_refused_on_b_at_once() {
    let Some(apps) = cluster(2).await else { return };
    let (a, b) = (&apps[0], &apps[1]);
    let lost_phone = a.phone("alice", "Alice").await;
    let other_phone = Phone {
        token: sign_in(b, "alice").await,
    };
    let me = |app: &TestApp, phone: &Phone| {
        send_to(
            app.router.clone(),
            phone.auth(Call::new(Method::GET, paths::ME)),
        )
    };

    // B has the lost phone's session cached.
    let response = me(b, &lost_phone).await;
    assert_eq!(response.status(), StatusCode::OK);
    let lost: Me = json(response).await;
    assert_eq!(me(b, &lost_phone).await.status(), StatusCode::OK);

    let revoke = a
        .send(other_phone.auth(Call::new(
            Method::DELETE,
            &paths::with_id(paths::SESSION_BY_ID, &lost.session.id),
        )))
        .await;
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    error_body(me(b, &lost_phone).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(me(b, &other_phone).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_expiry_is_audited_once_however_many_instances_purge() {
    let Some(apps) = cluster_with(
        2,
        ServeArgs {
            pending_ttl: Some(1),
            ..ServeArgs::default()
        },
    )
    .await
    else {
        return;
    };
    let desktop = apps[0].desktop().await;
    // Past its end and the retention, each instance purges.
    let later = server::domain::time::now_millis() + 10 * 60 * 1000;
    tokio::join!(
        apps[0].state.services.logins.purge(later),
        apps[1].state.services.logins.purge(later),
    );
    // Each instance batches its own rows: flush both, then read the trail.
    apps[0].state.services.audit.flush().await;
    let expired = audit_events(
        &apps[1],
        AuditQuery {
            login_id: Some(desktop.id.clone()),
            event: Some(server::domain::audit::AuditEvent::LoginExpired),
            ..AuditQuery::default()
        },
    )
    .await;
    assert_eq!(expired.len(), 1, "{expired:?}");
}

/// An OpenID Connect authorization request travels sealed with a key every
/// instance shares (made once, by whichever instance seals first, even when
/// two race for it): one instance's request opens on any other.
#[tokio::test]
async fn an_authorization_request_sealed_by_one_instance_opens_on_another() {
    let Some(apps) = cluster(2).await else { return };
    let [a, b] = [&apps[0], &apps[1]];
    let callback = "http://localhost:4000/callback";
    let client = a
        .state
        .services
        .oidc
        .add_client("Grafana", &[callback.to_owned()], true)
        .await
        .unwrap();
    let uri = format!(
        "{}?client_id={}&redirect_uri={callback}&response_type=code&scope=openid&code_challenge={}&code_challenge_method=S256",
        paths::AUTHORIZE,
        client.client_id,
        "A".repeat(43)
    );
    let (on_a, on_b) = tokio::join!(
        a.send(Call::new(Method::GET, &uri)),
        b.send(Call::new(Method::GET, &uri))
    );
    for (response, other) in [(on_a, b), (on_b, a)] {
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let card = response.headers()[header::LOCATION].to_str().unwrap();
        let request = card.trim_start_matches("/authorize?request=");
        let created = other
            .send(Call::new(
                Method::POST,
                &format!("{}?authorization={request}", paths::LOGINS),
            ))
            .await;
        assert_eq!(created.status(), StatusCode::CREATED, "{card}");
    }
}

// ---- Redis round trips --------------------------------------------------

/// A Redis of this test's own, so that its command statistics count this
/// test's calls only; stopped when dropped.
struct OwnRedis {
    dir: tempfile::TempDir,
    url: String,
}

impl OwnRedis {
    /// `None` (the test skipped) where the test servers do not run.
    fn start() -> Option<Self> {
        server::storage::testing::fresh_redis()?;
        let dir = tempfile::Builder::new()
            .prefix("qrlogin-trips")
            .tempdir_in("/tmp")
            .expect("temp dir");
        crate::faults::services("services_prepare_dir", dir.path());
        crate::faults::services("start_redis", dir.path());
        let url = format!("redis+unix://{}/redis.sock", dir.path().display());
        Some(Self { dir, url })
    }

    fn settings(&self, prefix: &str) -> RedisSettings {
        RedisSettings {
            url: self.url.clone(),
            prefix: prefix.to_owned(),
        }
    }

    async fn command<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let client = redis::Client::open(self.url.as_str()).expect("redis url");
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command.query_async(&mut connection).await.expect(args[0])
    }

    /// Round trips qrlogin made so far: every call it makes is a script
    /// (`EVALSHA`, falling back to `SCRIPT LOAD` + `EVALSHA`).
    async fn round_trips(&self) -> u64 {
        let info: String = self.command(&["INFO", "commandstats"]).await;
        round_trips_in(&info)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        crate::faults::services("stop_redis", self.dir.path());
    }
}

/// The calls of scripts in `INFO commandstats` (the commands scripts run
/// inside are counted apart, under their own names, and left out).
fn round_trips_in(info: &str) -> u64 {
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            if !matches!(name, "evalsha" | "eval" | "script|load") {
                return None;
            }
            let calls = stats.split(',').find_map(|s| s.strip_prefix("calls="))?;
            calls.parse::<u64>().ok()
        })
        .sum()
}

/// Round trips of one sign-in, step by step: the desktop creates on `a`,
/// the phone scans and approves on `b` (the desktop long-polling on `a`
/// meanwhile), the desktop redeems on `a`.
async fn measured_sign_in(redis: &OwnRedis, a: &TestApp, b: &TestApp, phone: &Phone) -> [u64; 4] {
    let mut steps = [0; 4];
    let mut before = redis.round_trips().await;
    let mut step = |i: usize, now: u64| {
        steps[i] = now - before;
        before = now;
    };
    let desktop = a.desktop().await;
    step(0, redis.round_trips().await);

    let waiting = tokio::spawn(send_to(a.router.clone(), long_poll(&desktop, 1)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(b.scan(phone, &desktop.id).await.status(), StatusCode::OK);
    let scanned: LoginStatus = json(waiting.await.unwrap()).await;
    assert_eq!(scanned.state, LoginState::Scanned);
    step(1, redis.round_trips().await);

    let waiting = tokio::spawn(send_to(
        a.router.clone(),
        long_poll(&desktop, scanned.version),
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let code = scanned.match_code.expect("a match code");
    assert_eq!(
        b.approve(phone, &desktop.id, code).await.status(),
        StatusCode::OK
    );
    let approved: LoginStatus = json(waiting.await.unwrap()).await;
    assert_eq!(approved.state, LoginState::Approved);
    step(2, redis.round_trips().await);

    assert_eq!(a.redeem(&desktop).await.status(), StatusCode::OK);
    step(3, redis.round_trips().await);
    steps
}

/// Rate limits off (as the benchmark runs), then the defaults, for the record.
#[tokio::test]
async fn a_sign_in_across_two_instances_costs_at_most_six_redis_round_trips() {
    let Some(redis) = OwnRedis::start() else {
        return;
    };
    let limits_off = ServeArgs {
        limit_create: Some(0),
        limit_poll: Some(0),
        limit_scan: Some(0),
        limit_decide: Some(0),
        ..ServeArgs::default()
    };
    for (name, args, most) in [
        ("limits off", limits_off, 6),
        ("default limits", ServeArgs::default(), 10),
    ] {
        let Some(apps) = cluster_on(2, args, redis.settings(&format!("{name}:"))).await else {
            return;
        };
        let (a, b) = (&apps[0], &apps[1]);
        let phone = b.phone("alice", "Alice").await;
        // The first loads the scripts into Redis.
        measured_sign_in(&redis, a, b, &phone).await;
        let steps = measured_sign_in(&redis, a, b, &phone).await;
        let total: u64 = steps.iter().sum();
        eprintln!(
            "{name}: Redis round trips per sign-in {total} (create {}, scan {}, approve {}, redeem {})",
            steps[0], steps[1], steps[2], steps[3]
        );
        assert!(total <= most, "{name}: {total} round trips: {steps:?}");
    }
}

/// The approver is read from the database at the redeem, and every
/// instance's session cache hears of a disabling at once: neither an
/// approval given before nor one tried after gets anyone in.
#[tokio::test]
async fn a_disabled_approvers_approval_is_refused_on_the_other_instance() {
    let Some(apps) = cluster(2).await else { return };
    let (a, b) = (&apps[0], &apps[1]);
    let operator = server::domain::caller::Caller::new(None, "test operator");
    let phone = b.phone("alice", "Alice").await;
    // A has alice's session and account cached.
    let me = a.send(phone.auth(Call::new(Method::GET, paths::ME))).await;
    assert_eq!(me.status(), StatusCode::OK);

    // Approved on B, alice disabled on B: the redeem on A is refused.
    let desktop = a.desktop().await;
    let code = b.scan_and_read_code(&phone, &desktop).await;
    assert_eq!(
        b.approve(&phone, &desktop.id, code).await.status(),
        StatusCode::OK
    );
    b.state
        .services
        .disable_account("alice", &operator)
        .await
        .unwrap();
    assert_eq!(a.redeem(&desktop).await.status(), StatusCode::GONE);

    // Enabled again, a new phone scans on B (which caches its session);
    // alice disabled on A: the approval on B is refused.
    a.state
        .services
        .enable_account("alice", &operator)
        .await
        .unwrap();
    let phone = Phone {
        token: sign_in(b, "alice").await,
    };
    let desktop = a.desktop().await;
    let code = b.scan_and_read_code(&phone, &desktop).await;
    a.state
        .services
        .disable_account("alice", &operator)
        .await
        .unwrap();
    error_body(
        b.approve(&phone, &desktop.id, code).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(a.poll(&desktop).await.state, LoginState::Scanned);
}

/// Three scans a minute per address and per account, counted in Redis
/// for both instances; a scan's limits are one call, the gate, which also
/// reads the revocation clock for the phone's cached session: a scan is
/// two round trips (the gate, the scan), a refused one is one.
#[tokio::test]
async fn the_scan_limit_holds_across_instances_in_one_gate() {
    let Some(redis) = OwnRedis::start() else {
        return;
    };
    let args = ServeArgs {
        limit_scan: Some(3),
        ..ServeArgs::default()
    };
    let Some(apps) = cluster_on(2, args, redis.settings("scan-limit:")).await else {
        return;
    };
    let phone = apps[0].phone("alice", "Alice").await;
    let mut desktops = Vec::new();
    for app in &apps {
        for _ in 0..2 {
            desktops.push(app.desktop().await);
        }
        // Loads the scripts: the gate (a poll's limit), the clock.
        app.poll(&desktops[0]).await;
        let me = app
            .send(phone.auth(Call::new(Method::GET, paths::ME)))
            .await;
        assert_eq!(me.status(), StatusCode::OK);
    }
    for (i, desktop) in desktops.iter().enumerate() {
        let app = &apps[i % 2];
        let before = redis.round_trips().await;
        let response = app.scan(&phone, &desktop.id).await;
        let trips = redis.round_trips().await - before;
        eprintln!(
            "scan {}: {} in {trips} round trips",
            i + 1,
            response.status()
        );
        if i < 3 {
            assert_eq!(response.status(), StatusCode::OK);
            assert!(trips <= 2, "{trips} round trips");
        } else {
            assert!(response.headers().contains_key(header::RETRY_AFTER));
            let body = error_body(response, StatusCode::TOO_MANY_REQUESTS).await;
            assert_eq!(body.error, "rate_limited");
            assert!(trips <= 1, "{trips} round trips");
            assert_eq!(app.poll(desktop).await.state, LoginState::Pending);
        }
    }
}

/// Each instance answers from its copies of the attempts, kept fresh by
/// the change notices. A's subscriber loses its connection and cannot
/// subscribe again for a while, so the scan's notice never reaches it:
/// A drops its copies and reads Redis, and a long poll on A answers at
/// once with the scan, not with the copy it had. Once A listens again,
/// the approval reaches it as ever.
#[tokio::test]
async fn a_missed_notification_still_gives_the_right_answer() {
    let Some(redis) = OwnRedis::start() else {
        return;
    };
    let Some(apps) = cluster_on(2, ServeArgs::default(), redis.settings("missed:")).await else {
        return;
    };
    let (a, b) = (&apps[0], &apps[1]);
    let phone = b.phone("alice", "Alice").await;
    let desktop = a.desktop().await;
    let version: LoginStatus = json(send_to(a.router.clone(), long_poll(&desktop, 0)).await).await;
    assert_eq!(version.state, LoginState::Pending);

    let _: String = redis
        .command(&["ACL", "SETUSER", "default", "-subscribe"])
        .await;
    let _: u64 = redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]).await;
    // Both instances see the loss (and wait out their probe).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(b.scan(&phone, &desktop.id).await.status(), StatusCode::OK);

    let started = Instant::now();
    let response = send_to(a.router.clone(), long_poll(&desktop, version.version)).await;
    let scanned: LoginStatus = json(response).await;
    assert_eq!(scanned.state, LoginState::Scanned);
    assert!(started.elapsed() < Duration::from_secs(2));

    let _: String = redis
        .command(&["ACL", "SETUSER", "default", "+subscribe"])
        .await;
    // A subscribes again within its longest pause (1 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let waiting = tokio::spawn(send_to(
        a.router.clone(),
        long_poll(&desktop, scanned.version),
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let code = scanned.match_code.expect("a match code");
    assert_eq!(
        b.approve(&phone, &desktop.id, code).await.status(),
        StatusCode::OK
    );
    let started = Instant::now();
    let approved: LoginStatus = json(waiting.await.unwrap()).await;
    assert_eq!(approved.state, LoginState::Approved);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(a.redeem(&desktop).await.status(), StatusCode::OK);
}
