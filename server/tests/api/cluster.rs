//! Several instances sharing PostgreSQL and Redis, with no stickiness: any
//! instance serves any request. Each instance here is a whole server of
//! its own (router, services, caches, Redis subscriber) in this process;
//! `faults.rs` runs them as separate processes.

use std::time::{Duration, Instant};

use crate::helpers::*;
use app::api::{LoginState, LoginStatus, Me, Redeemed};
use axum::http::{header, Method, StatusCode};
use server::config::ServeArgs;

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
