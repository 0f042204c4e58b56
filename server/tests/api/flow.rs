//! The attempt state machine through HTTP: every transition, the illegal
//! ones, expiry, and the long poll.

use std::time::{Duration, Instant};

use crate::helpers::*;
use app::api::{LoginState, LoginStatus, Me, Redeemed, Scanned, StateChanged};
use axum::http::{Method, StatusCode};
use server::config::ServeArgs;

fn short_ttls(pending: u64, scanned: u64, approved: u64) -> ServeArgs {
    ServeArgs {
        pending_ttl: Some(pending),
        scanned_ttl: Some(scanned),
        approved_ttl: Some(approved),
        ..ServeArgs::default()
    }
}

#[tokio::test]
async fn the_whole_flow_signs_the_desktop_in_as_the_approver() {
    let app = test_app().await;
    let phone = app.phone("alice", "Alice Liddell").await;
    let desktop = app.desktop().await;

    let response = app.scan(&phone, &desktop.id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let scanned: Scanned = json(response).await;
    assert_eq!(scanned.state, LoginState::Scanned);
    assert_eq!(scanned.requester.browser, "Chrome");
    assert_eq!(scanned.requester.os, "Linux");
    assert_eq!(scanned.requester.ip, "192.168.1.10");
    assert!(scanned.requester.same_network);
    assert!(scanned.requester.age_s < 5);

    let status = app.poll(&desktop).await;
    assert_eq!((status.state, status.version), (LoginState::Scanned, 2));
    // "Alice Liddell" gives the username away: not shown (rule 5).
    assert_eq!(status.scanner, None);
    let code = status.match_code.unwrap();
    assert!(scanned.match_choices.contains(&code));

    let response = app.approve(&phone, &desktop.id, code).await;
    assert_eq!(response.status(), StatusCode::OK);
    let changed: StateChanged = json(response).await;
    assert_eq!(changed.state, LoginState::Approved);
    let status = app.poll(&desktop).await;
    assert_eq!((status.state, status.version), (LoginState::Approved, 3));
    assert_eq!(status.match_code, None);

    let response = app.redeem(&desktop).await;
    assert_eq!(response.status(), StatusCode::OK);
    let session_cookie = cookie_pair(&set_cookie(&response));
    let redeemed: Redeemed = json(response).await;
    assert_eq!(redeemed.user.username, "alice");
    assert_eq!(app.poll(&desktop).await.state, LoginState::Redeemed);

    // The desktop is now signed in, by QR, from its own browser.
    let response = app
        .send(Call::new(Method::GET, paths::ME).cookie(&session_cookie))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let me: Me = json(response).await;
    assert_eq!(me.user.display_name, "Alice Liddell");
    assert_eq!(me.session.method, "qr");
    assert_eq!(me.session.browser, "Chrome");
}

#[tokio::test]
async fn a_desktop_elsewhere_is_flagged_to_the_phone() {
    let app = test_app().await;
    let phone = app.phone("alice", "Alice").await;
    let response = app
        .send(Call::new(Method::POST, paths::LOGINS).peer_ip([203, 0, 113, 7]))
        .await;
    let created: app::api::LoginCreated = json(response).await;
    let scanned: Scanned = json(app.scan(&phone, &created.id).await).await;
    assert_eq!(scanned.requester.ip, "203.0.113.7");
    assert!(!scanned.requester.same_network);
}

/// The phone's page for a code asked for from another network (behind a
/// trusted proxy, by its forwarding header): the relay warning above the
/// buttons, and Deny the prominent one. On the same network: neither.
#[tokio::test]
async fn the_phone_page_warns_of_a_relay_and_makes_deny_prominent() {
    let app = test_app_with(ServeArgs {
        trusted_proxies: Some(vec!["10.0.0.1".parse().unwrap()]),
        ..ServeArgs::default()
    })
    .await;
    let phone = app.phone("alice", "Alice").await;
    let page = |id: &str, phone_ip: &str| {
        phone.auth(
            Call::new(Method::GET, &format!("/q/{id}"))
                .header(axum::http::header::ACCEPT, "text/html")
                .header("x-forwarded-for", phone_ip)
                .peer_ip([10, 0, 0, 1]),
        )
    };
    let create = |desktop_ip: &str| {
        Call::new(Method::POST, paths::LOGINS)
            .header("x-forwarded-for", desktop_ip)
            .peer_ip([10, 0, 0, 1])
    };
    let far: app::api::LoginCreated = json(app.send(create("203.0.113.7")).await).await;
    let html = String::from_utf8(body_bytes(app.send(page(&far.id, "198.51.100.20")).await).await)
        .unwrap();
    let warning = "The computer asking is not on your network. If someone sent you this code or asked you to scan it, deny.";
    let warned_at = html.find(warning).expect("the relay warning");
    assert!(
        warned_at < html.find(">Approve<").unwrap(),
        "above the buttons"
    );
    assert!(
        html.contains(r#"<button type="submit" class="button danger">Deny</button>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<button type="submit" class="button secondary">Approve</button>"#),
        "{html}"
    );

    let near: app::api::LoginCreated = json(app.send(create("198.51.100.7")).await).await;
    let html = String::from_utf8(body_bytes(app.send(page(&near.id, "198.51.100.20")).await).await)
        .unwrap();
    assert!(!html.contains(warning));
    assert!(
        html.contains(r#"<button type="submit" class="button">Approve</button>"#),
        "{html}"
    );
}

#[tokio::test]
async fn deny_ends_the_attempt() {
    let app = test_app().await;
    let phone = app.phone("alice", "Alice").await;
    let desktop = app.desktop().await;
    app.scan_and_read_code(&phone, &desktop).await;
    let changed: StateChanged = json(app.deny(&phone, &desktop.id).await).await;
    assert_eq!(changed.state, LoginState::Denied);
    assert_eq!(app.poll(&desktop).await.state, LoginState::Denied);
    let error = error_body(app.redeem(&desktop).await, StatusCode::GONE).await;
    assert_eq!(error.error, "login_finished");
}

#[tokio::test]
async fn a_wrong_number_denies_the_attempt() {
    let app = test_app().await;
    let phone = app.phone("alice", "Alice").await;
    let desktop = app.desktop().await;
    let code = app.scan_and_read_code(&phone, &desktop).await;
    let wrong = if code == 99 { 10 } else { code + 1 };
    let error = error_body(
        app.approve(&phone, &desktop.id, wrong).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(error.error, "wrong_match_code");
    assert_eq!(app.poll(&desktop).await.state, LoginState::Denied);
    // Even the right number cannot bring it back.
    error_body(
        app.approve(&phone, &desktop.id, code).await,
        StatusCode::GONE,
    )
    .await;
}

#[tokio::test]
async fn illegal_transitions_give_the_documented_status_and_change_nothing() {
    let app = test_app().await;
    let phone = app.phone("alice", "Alice").await;

    let desktop = app.desktop().await;
    let cases = [
        (
            app.approve(&phone, &desktop.id, 42).await,
            StatusCode::CONFLICT,
            "not_scanned",
        ),
        (
            app.deny(&phone, &desktop.id).await,
            StatusCode::CONFLICT,
            "not_scanned",
        ),
        (
            app.redeem(&desktop).await,
            StatusCode::CONFLICT,
            "not_approved",
        ),
    ];
    for (response, status, code) in cases {
        assert_eq!(error_body(response, status).await.error, code);
    }
    let status = app.poll(&desktop).await;
    assert_eq!((status.state, status.version), (LoginState::Pending, 1));

    app.scan_and_read_code(&phone, &desktop).await;
    let error = error_body(app.redeem(&desktop).await, StatusCode::CONFLICT).await;
    assert_eq!(error.error, "not_approved");
    let status = app.poll(&desktop).await;
    assert_eq!((status.state, status.version), (LoginState::Scanned, 2));

    // Cancel, then nothing moves it again.
    let cancel = Call::new(Method::DELETE, &paths::with_id(paths::LOGIN, &desktop.id))
        .cookie(&desktop.cookie);
    assert_eq!(app.send(cancel).await.status(), StatusCode::NO_CONTENT);
    let status = app.poll(&desktop).await;
    assert_eq!((status.state, status.version), (LoginState::Cancelled, 3));
    for response in [
        app.scan(&phone, &desktop.id).await,
        app.approve(&phone, &desktop.id, 42).await,
        app.deny(&phone, &desktop.id).await,
        app.redeem(&desktop).await,
    ] {
        assert_eq!(
            error_body(response, StatusCode::GONE).await.error,
            "login_finished"
        );
    }
    let cancel = Call::new(Method::DELETE, &paths::with_id(paths::LOGIN, &desktop.id))
        .cookie(&desktop.cookie);
    assert_eq!(
        app.send(cancel).await.status(),
        StatusCode::NO_CONTENT,
        "cancel is idempotent"
    );
    assert_eq!(app.poll(&desktop).await.version, 3);
}

#[tokio::test]
async fn every_waiting_state_expires_with_short_ttls() {
    let app = test_app_with(short_ttls(1, 1, 1)).await;
    let phone = app.phone("alice", "Alice").await;

    let pending = app.desktop().await;
    let scanned = app.desktop().await;
    app.scan_and_read_code(&phone, &scanned).await;
    let approved = app.approved(&phone).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    for desktop in [&pending, &scanned, &approved] {
        assert_eq!(app.poll(desktop).await.state, LoginState::Expired);
    }
    let error = error_body(app.redeem(&approved).await, StatusCode::GONE).await;
    assert_eq!(error.error, "login_finished");
    error_body(app.approve(&phone, &scanned.id, 42).await, StatusCode::GONE).await;
}

async fn long_poll(app: &TestApp, desktop: &Desktop, since: u64, wait: u64) -> LoginStatus {
    let uri = format!(
        "{}?since={since}&wait={wait}",
        paths::with_id(paths::LOGIN, &desktop.id)
    );
    let response = app
        .send(Call::new(Method::GET, &uri).cookie(&desktop.cookie))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    json(response).await
}

#[tokio::test]
async fn the_long_poll_answers_when_the_attempt_changes() {
    let app = test_app().await;
    let phone = app.phone("alice", "Alice").await;
    let desktop = app.desktop().await;

    // Already newer than `since`: answers at once.
    let status = long_poll(&app, &desktop, 0, 30).await;
    assert_eq!(status.version, 1);

    let started = Instant::now();
    let (status, _) = tokio::join!(long_poll(&app, &desktop, 1, 30), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.scan(&phone, &desktop.id).await
    });
    assert_eq!((status.state, status.version), (LoginState::Scanned, 2));
    assert!(status.match_code.is_some());
    // Far less than the 30 s it could have waited.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_long_poll_returns_at_wait_when_nothing_happens() {
    let app = test_app().await;
    let desktop = app.desktop().await;
    let started = Instant::now();
    let status = long_poll(&app, &desktop, 1, 1).await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!((status.state, status.version), (LoginState::Pending, 1));
}

#[tokio::test]
async fn the_long_poll_reports_expiry_without_another_request() {
    let app = test_app_with(short_ttls(1, 90, 30)).await;
    let desktop = app.desktop().await;
    let status = long_poll(&app, &desktop, 1, 10).await;
    assert_eq!((status.state, status.version), (LoginState::Expired, 2));
}
