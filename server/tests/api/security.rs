//! The design's security rules 1–6 (docs/design.md), each as an attacker's request that must fail.

use crate::helpers::*;
use app::api::{LoginCreated, LoginState, Me, Redeemed, SignedIn};
use axum::http::{header, Method, StatusCode};

async fn unknown_id_answer(app: &TestApp) -> (StatusCode, Vec<u8>) {
    let uri = paths::with_id(paths::LOGIN, uuid::Uuid::new_v4());
    let response = app.send(Call::new(Method::GET, &uri)).await;
    (response.status(), body_bytes(response).await)
}

/// Rule 1: poll, redeem and cancel are bound to the creating browser.
#[tokio::test]
async fn rule1_other_browsers_get_exactly_the_unknown_id_answer() {
    let app = test_app().await;
    let phone = app.phone("alice", "Alice").await;
    let victim = app.approved(&phone).await;
    let attacker = app.desktop().await;
    let (unknown_status, unknown_body) = unknown_id_answer(&app).await;
    assert_eq!(unknown_status, StatusCode::NOT_FOUND);

    let forged = format!("qrlogin_bind={}", "A".repeat(43));
    let cookies = [
        None,
        Some(attacker.cookie.clone()),
        Some(forged),
        Some("qrlogin_bind=garbage".to_owned()),
    ];
    for cookie in &cookies {
        for (method, tail) in [
            (Method::GET, ""),
            (Method::POST, "/redeem"),
            (Method::DELETE, ""),
        ] {
            let mut call = Call::new(
                method.clone(),
                &format!("{}{tail}", paths::with_id(paths::LOGIN, &victim.id)),
            );
            if let Some(cookie) = cookie {
                call = call.cookie(cookie);
            }
            let response = app.send(call).await;
            assert_eq!(
                response.status(),
                unknown_status,
                "{method} {tail} {cookie:?}"
            );
            assert!(response.headers().get(header::SET_COOKIE).is_none());
            assert_eq!(
                body_bytes(response).await,
                unknown_body,
                "{method} {tail} {cookie:?}"
            );
        }
    }
    // None of that touched the victim's attempt: its browser still redeems.
    let status = app.poll(&victim).await;
    assert_eq!((status.state, status.version), (LoginState::Approved, 3));
    assert_eq!(app.redeem(&victim).await.status(), StatusCode::OK);
}

/// Rule 2: an attempt is redeemed at most once.
#[tokio::test]
async fn rule2_a_second_redeem_fails() {
    let app = test_app().await;
    let phone = app.phone("alice", "Alice").await;
    let desktop = app.approved(&phone).await;
    assert_eq!(app.redeem(&desktop).await.status(), StatusCode::OK);
    let error = error_body(app.redeem(&desktop).await, StatusCode::GONE).await;
    assert_eq!(error.error, "login_finished");
}

/// Rule 2: of racing redeems exactly one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rule2_racing_redeems_have_exactly_one_winner() {
    let app = test_app().await;
    let phone = app.phone("alice", "Alice").await;
    for _ in 0..5 {
        let desktop = app.approved(&phone).await;
        let redeems = (0..8).map(|_| app.redeem(&desktop));
        let statuses: Vec<StatusCode> = futures_util::future::join_all(redeems)
            .await
            .iter()
            .map(|r| r.status())
            .collect();
        let winners = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(winners, 1, "{statuses:?}");
        assert!(statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::GONE));
    }
}

/// Rule 3: the server makes the id; whatever the client sends is ignored.
#[tokio::test]
async fn rule3_a_client_cannot_choose_the_id() {
    let app = test_app().await;
    let chosen = "0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a59";
    let call = Call::new(Method::POST, &format!("{}?id={chosen}", paths::LOGINS))
        .header("X-Login-Id", chosen)
        .json(serde_json::json!({ "id": chosen }));
    let response = app.send(call).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: LoginCreated = json(response).await;
    assert_ne!(created.id, chosen);
    let unknown = app
        .send(Call::new(
            Method::GET,
            &paths::with_id(paths::LOGIN, chosen),
        ))
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

/// Rule 4: the approver is the phone's session, never the request body.
#[tokio::test]
async fn rule4_approve_naming_another_user_is_refused_and_the_session_counts() {
    let app = test_app().await;
    let alice = app.phone("alice", "Alice").await;
    app.add_account("mallory", "Mallory").await;
    let desktop = app.desktop().await;
    let code = app.scan_and_read_code(&alice, &desktop).await;

    for body in [
        serde_json::json!({ "match_code": code, "username": "mallory" }),
        serde_json::json!({ "match_code": code, "account_id": 2 }),
    ] {
        let call = alice.auth(
            Call::new(
                Method::POST,
                &paths::with_id(paths::LOGIN_APPROVE, &desktop.id),
            )
            .json(body),
        );
        error_body(app.send(call).await, StatusCode::BAD_REQUEST).await;
    }
    assert_eq!(app.poll(&desktop).await.state, LoginState::Scanned);

    assert_eq!(
        app.approve(&alice, &desktop.id, code).await.status(),
        StatusCode::OK
    );
    let redeemed: Redeemed = json(app.redeem(&desktop).await).await;
    assert_eq!(redeemed.user.username, "alice");
}

/// Rule 4: only the first account to scan may approve or deny.
#[tokio::test]
async fn rule4_a_second_phone_gets_409_and_cannot_approve_or_deny() {
    let app = test_app().await;
    let alice = app.phone("alice", "The Queen of Hearts").await;
    let mallory = app.phone("mallory", "Mallory").await;
    let desktop = app.desktop().await;
    let code = app.scan_and_read_code(&alice, &desktop).await;

    for response in [
        app.scan(&mallory, &desktop.id).await,
        app.approve(&mallory, &desktop.id, code).await,
        app.deny(&mallory, &desktop.id).await,
    ] {
        assert_eq!(
            error_body(response, StatusCode::CONFLICT).await.error,
            "already_scanned"
        );
    }
    let status = app.poll(&desktop).await;
    assert_eq!((status.state, status.version), (LoginState::Scanned, 2));
    assert_eq!(status.scanner.as_deref(), Some("The Queen of Hearts"));
}

/// QRLJacking: a code passed around to several accounts locks itself.
#[tokio::test]
async fn a_code_scanned_by_too_many_other_accounts_is_denied() {
    let app = test_app().await;
    let alice = app.phone("alice", "Alice").await;
    let desktop = app.desktop().await;
    let code = app.scan_and_read_code(&alice, &desktop).await;
    for name in ["m1", "m2", "m3"] {
        let other = app.phone(&format!("mallory-{name}"), "Mallory").await;
        let error = error_body(app.scan(&other, &desktop.id).await, StatusCode::CONFLICT).await;
        assert_eq!(error.error, "already_scanned");
    }
    assert_eq!(app.poll(&desktop).await.state, LoginState::Denied);
    let error = error_body(
        app.approve(&alice, &desktop.id, code).await,
        StatusCode::GONE,
    )
    .await;
    assert_eq!(error.error, "login_finished");
}

/// Phone calls without a working session are refused.
#[tokio::test]
async fn rule4_phone_calls_need_a_session() {
    let app = test_app().await;
    let desktop = app.desktop().await;
    for tail in ["scan", "approve", "deny"] {
        let uri = format!("{}/{tail}", paths::with_id(paths::LOGIN, &desktop.id));
        let calls = [
            Call::new(Method::POST, &uri).json(serde_json::json!({"match_code": 42})),
            Call::new(Method::POST, &uri)
                .bearer(&"A".repeat(43))
                .json(serde_json::json!({"match_code": 42})),
            Call::new(Method::POST, &uri)
                .cookie(&format!("qrlogin_session={}", "A".repeat(43)))
                .json(serde_json::json!({"match_code": 42})),
        ];
        for call in calls {
            let error = error_body(app.send(call).await, StatusCode::UNAUTHORIZED).await;
            assert_eq!(error.error, "not_signed_in");
        }
    }
    assert_eq!(app.poll(&desktop).await.version, 1);
}

/// Rule 5: before approval the desktop learns only the display name, and
/// only one that does not give the username away (more in leaks.rs).
#[tokio::test]
async fn rule5_the_desktop_sees_only_the_display_name() {
    let app = test_app().await;
    let phone = app.phone("alice", "The Queen of Hearts").await;
    let desktop = app.desktop().await;
    app.scan(&phone, &desktop.id).await;
    let uri = paths::with_id(paths::LOGIN, &desktop.id);
    let response = app
        .send(Call::new(Method::GET, &uri).cookie(&desktop.cookie))
        .await;
    let body: serde_json::Value = json(response).await;
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "expires_at",
            "expires_in",
            "id",
            "match_code",
            "scanner",
            "state",
            "version"
        ]
    );
    assert_eq!(body["scanner"], "The Queen of Hearts");
    let text = body.to_string().to_lowercase();
    for secret in ["alice", "192.168", "android", "pixel"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

/// Rule 6: no plaintext password or token in the database; argon2id hashes.
#[tokio::test]
async fn rule6_the_database_holds_no_password_or_token() {
    let app = test_app().await;
    let phone = app.phone("alice", "Alice").await;
    let session = app.signed_in_desktop(&phone).await;
    let desktop_token = session.split_once('=').unwrap().1.to_owned();

    // The database files as they are on disk (with the WAL), read raw.
    app.state.services.audit.flush().await;
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(app.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            stored.extend(std::fs::read(path).unwrap());
        }
    }
    let stored = String::from_utf8_lossy(&stored);
    assert!(stored.contains("alice"), "the files were read");
    assert!(
        stored.contains("$argon2id$v=19$"),
        "passwords are argon2id hashes"
    );
    for secret in [PASSWORD, &phone.token, &desktop_token] {
        assert!(!stored.contains(secret), "{secret} is stored in plain text");
    }
}

/// Rule 6: a revoked session stops working at once.
#[tokio::test]
async fn rule6_a_revoked_session_stops_working_at_once() {
    let app = test_app().await;
    let phone = app.phone("alice", "Alice").await;
    let desktop_session = app.signed_in_desktop(&phone).await;
    let me = Call::new(Method::GET, paths::ME).cookie(&desktop_session);
    assert_eq!(app.send(me).await.status(), StatusCode::OK);

    let sessions = app.sessions(&phone).await;
    assert_eq!(sessions.len(), 2);
    let desktop_id = &sessions.iter().find(|s| s.method == "qr").unwrap().id;
    assert!(sessions.iter().any(|s| s.current && s.method == "password"));

    // Another account cannot revoke it.
    let mallory = app.phone("mallory", "Mallory").await;
    let uri = paths::with_id(paths::SESSION_BY_ID, desktop_id);
    let error = error_body(
        app.send(mallory.auth(Call::new(Method::DELETE, &uri)))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(error.error, "session_not_found");

    let response = app.send(phone.auth(Call::new(Method::DELETE, &uri))).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let me = Call::new(Method::GET, paths::ME).cookie(&desktop_session);
    let error = error_body(app.send(me).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(error.error, "not_signed_in");
}

#[tokio::test]
async fn sign_in_failures_look_alike_and_sign_out_ends_the_session() {
    let app = test_app().await;
    app.add_account("alice", "Alice").await;
    let mut bodies = Vec::new();
    for (username, password) in [
        ("alice", "wrong password"),
        ("nobody", PASSWORD),
        ("x", "y"),
    ] {
        let call = Call::new(Method::POST, paths::SESSION)
            .json(serde_json::json!({ "username": username, "password": password }));
        let response = app.send(call).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        bodies.push(body_bytes(response).await);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));

    let call = Call::new(Method::POST, paths::SESSION)
        .json(serde_json::json!({ "username": "Alice", "password": PASSWORD }));
    let response = app.send(call).await;
    assert_eq!(response.status(), StatusCode::OK);
    let signed_in: SignedIn = json(response).await;
    let me: Me = json(
        app.send(Call::new(Method::GET, paths::ME).bearer(&signed_in.token))
            .await,
    )
    .await;
    assert!(me.session.current);

    let response = app
        .send(Call::new(Method::DELETE, paths::SESSION).bearer(&signed_in.token))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(set_cookie(&response).contains("Max-Age=0"));
    let response = app
        .send(Call::new(Method::GET, paths::ME).bearer(&signed_in.token))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// The audit trail holds every step of an attempt and every sign-in/out,
/// with time, address, browser and account.
#[tokio::test]
async fn the_audit_trail_records_every_step() {
    let app = test_app().await;
    let phone = app.phone("alice", "Alice").await;
    let desktop = app.approved(&phone).await;
    assert_eq!(app.redeem(&desktop).await.status(), StatusCode::OK);
    let denied = app.desktop().await;
    app.scan_and_read_code(&phone, &denied).await;
    app.deny(&phone, &denied.id).await;
    let cancelled = app.desktop().await;
    let cancel = Call::new(Method::DELETE, &paths::with_id(paths::LOGIN, &cancelled.id))
        .cookie(&cancelled.cookie);
    app.send(cancel).await;
    app.send(sign_in_failure()).await;
    app.send(phone.auth(Call::new(Method::DELETE, paths::SESSION)))
        .await;

    let expected = [
        ("signed_in", None),
        ("login_created", Some(&desktop.id)),
        ("login_scanned", Some(&desktop.id)),
        ("login_approved", Some(&desktop.id)),
        ("login_redeemed", Some(&desktop.id)),
        ("signed_in", None),
        ("login_created", Some(&denied.id)),
        ("login_scanned", Some(&denied.id)),
        ("login_denied", Some(&denied.id)),
        ("login_created", Some(&cancelled.id)),
        ("login_cancelled", Some(&cancelled.id)),
        ("sign_in_failed", None),
        ("signed_out", None),
    ];
    let rows = audit_events(&app, AuditQuery::default()).await;
    let got: Vec<(&str, Option<&String>)> = rows
        .iter()
        .map(|r| (r.event.as_str(), r.login_id.as_ref()))
        .collect();
    assert_eq!(got, expected);
    assert!(rows.iter().all(|r| r.ip == "192.168.1.10"));
    assert!(rows.iter().any(|r| r.user_agent.contains("Android")));
    let alice = rows.iter().find_map(|r| r.account_id).unwrap();
    let alice_events = audit_events(
        &app,
        AuditQuery {
            account_id: Some(alice),
            ..AuditQuery::default()
        },
    )
    .await;
    assert!(alice_events.len() >= 8, "{alice_events:?}");
}

fn sign_in_failure() -> Call {
    Call::new(Method::POST, paths::SESSION)
        .json(serde_json::json!({ "username": "alice", "password": "wrong password" }))
}

/// An attempt nobody touched after it ran out is audited when purged, once,
/// stamped with when it expired.
#[tokio::test]
async fn expiry_is_audited_once_when_the_attempt_is_purged() {
    let app = test_app().await;
    let desktop = app.desktop().await;
    let later = server::domain::time::now_millis() + 60_000 + 6 * 60_000;
    app.state.services.logins.purge(later).await;
    app.state.services.logins.purge(later + 1).await;
    let query = AuditQuery {
        login_id: Some(desktop.id.clone()),
        ..AuditQuery::default()
    };
    let rows = audit_events(&app, query).await;
    let events: Vec<&str> = rows.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(events, ["login_created", "login_expired"]);
    // Stamped when it expired (60 s after creation), not when it was purged
    // (6 min later); the creation row is written a moment after the attempt.
    let gap = rows[1].at as i64 - rows[0].at as i64;
    assert!((59_000..=60_000).contains(&gap), "{gap}");
}

/// `/m` lists recent sign-ins and marks those since the last look.
#[tokio::test]
async fn recent_sign_ins_are_marked_new_until_seen() {
    use app::backend::Backend;
    let app = test_app().await;
    let phone = app.phone("alice", "Alice").await;
    let parts = |token: &str| {
        axum::http::Request::builder()
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(())
            .unwrap()
            .into_parts()
            .0
    };
    app.signed_in_desktop(&phone).await;
    let view = app
        .state
        .account(&parts(&phone.token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.recent.len(), 2);
    let desktop_sign_in = &view.recent[0];
    assert!(desktop_sign_in.new && !desktop_sign_in.current);
    assert_eq!(desktop_sign_in.browser, "Chrome");
    assert!(desktop_sign_in.session_id.is_some());
    assert!(view.recent[1].current && !view.recent[1].new);

    let view = app
        .state
        .account(&parts(&phone.token))
        .await
        .unwrap()
        .unwrap();
    assert!(view.recent.iter().all(|r| !r.new), "seen now");
}
