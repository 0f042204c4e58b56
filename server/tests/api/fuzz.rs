//! Random methods, paths, queries, headers and bodies (huge and malformed
//! among them) against the real router. Whatever comes in: no 5xx, no
//! panic, every API 4xx a JSON `{error, message}`, and nothing stored
//! changes. `QRLOGIN_FUZZ_CASES` sets the number of requests (default 2000).

use crate::helpers::*;
use app::api::{ApiErrorBody, LoginState};
use axum::http::{header, Method, StatusCode};
use proptest::{prelude::*, test_runner::TestRunner};

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::DELETE),
        Just(Method::PUT),
        Just(Method::PATCH),
        Just(Method::HEAD),
        Just(Method::OPTIONS),
        "[A-Z]{1,10}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap_or(Method::GET)),
    ]
}

/// A path segment: real-looking ids, near-misses, junk and escapes.
fn segment(known_id: String) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(known_id),
        Just("0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a59".to_owned()),
        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        "[a-zA-Z0-9._~-]{0,40}",
        "(%[0-9A-F]{2}){1,12}",
        Just("..".to_owned()),
        Just("%00".to_owned()),
        "[a-z]{1000,5000}",
    ]
}

fn path(known_id: String) -> impl Strategy<Value = String> {
    let templates = prop_oneof![
        Just(paths::LOGIN.replace("{id}", "{}")),
        Just(paths::LOGIN_REDEEM.replace("{id}", "{}")),
        Just(paths::LOGIN_SCAN.replace("{id}", "{}")),
        Just(paths::LOGIN_APPROVE.replace("{id}", "{}")),
        Just(paths::LOGIN_DENY.replace("{id}", "{}")),
        Just(paths::SESSION_BY_ID.replace("{id}", "{}")),
        Just(paths::LOGINS.to_owned()),
        Just(paths::SESSION.to_owned()),
        Just(paths::ME.to_owned()),
        Just(paths::SESSIONS.to_owned()),
        Just("/api/v1/{}".to_owned()),
        Just("/api/{}/{}".to_owned()),
        Just("/healthz".to_owned()),
        Just("/q/{}".to_owned()),
        Just("/{}".to_owned()),
    ];
    (templates, segment(known_id.clone()), segment(known_id))
        .prop_map(|(t, a, b)| t.replacen("{}", &a, 1).replacen("{}", &b, 1))
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        (0u64..5, 0u64..40).prop_map(|(s, w)| format!("?since={s}&wait={}", w % 2)),
        "\\?[a-z=&%0-9-]{0,60}",
        Just("?since=18446744073709551616&wait=1".to_owned()),
        Just("?wait=99999999999999999999".to_owned()),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        Just("cookie".to_owned()),
        Just("authorization".to_owned()),
        Just("content-type".to_owned()),
        Just("origin".to_owned()),
        Just("sec-fetch-site".to_owned()),
        Just("x-forwarded-for".to_owned()),
        Just("forwarded".to_owned()),
        Just("accept".to_owned()),
        Just("user-agent".to_owned()),
        "x-[a-z]{1,12}",
    ];
    let value = prop_oneof![
        "[ -~]{0,80}",
        "qrlogin_bind=[A-Za-z0-9_-]{43}",
        "qrlogin_session=[A-Za-z0-9_-]{0,60}",
        "Bearer [A-Za-z0-9_-]{0,60}",
        Just("application/json".to_owned()),
        Just("application/x-www-form-urlencoded".to_owned()),
        "[a-z]{5000,20000}",
    ];
    proptest::collection::vec((name, value), 0..6)
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 0..256),
        "\\{\"[a-z_]{1,12}\": ?(-?[0-9]{1,25}|\"[ -~]{0,20}\"|null|\\[\\]|\\{\\})\\}"
            .prop_map(String::into_bytes),
        Just(br#"{"match_code": 42}"#.to_vec()),
        Just(br#"{"username": "alice", "password": "x"}"#.to_vec()),
        Just(b"username=alice&password=x&next=%2Fm".to_vec()),
        (1usize..200_000).prop_map(|n| vec![b'{'; n]),
    ]
}

#[test]
fn random_requests_never_break_the_server_or_its_data() {
    let cases: u32 = std::env::var("QRLOGIN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (app, phone, desktop, desktop_session) = runtime.block_on(async {
        let app = test_app().await;
        let phone = app.phone("alice", "Alice").await;
        let session = app.signed_in_desktop(&phone).await;
        let pending = app.desktop().await;
        (app, phone, pending, session)
    });
    let before = runtime.block_on(app.poll(&desktop));

    let strategy = (
        method(),
        path(desktop.id.clone()),
        query(),
        headers(),
        body(),
    );
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let started = std::time::Instant::now();
    let result = runner.run(&strategy, |(method, path, query, headers, body)| {
        let uri = format!("{path}{query}");
        let response = runtime.block_on(async {
            let mut call = Call::new(method.clone(), &uri);
            for (name, value) in &headers {
                call = call.header(name, value);
            }
            app.send(call.body(body.clone())).await
        });
        let status = response.status();
        prop_assert!(
            !status.is_server_error(),
            "{method} {uri} {headers:?} → {status}"
        );
        if status.is_client_error() && path.starts_with("/api/") && method != Method::HEAD {
            let is_json = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v == "application/json");
            prop_assert!(is_json, "{method} {uri} → {status} without JSON");
            let bytes = runtime.block_on(body_bytes(response));
            let error: Result<ApiErrorBody, _> = serde_json::from_slice(&bytes);
            prop_assert!(
                error.is_ok(),
                "{method} {uri} → {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(())
    });
    let elapsed = started.elapsed();
    if let Err(failure) = result {
        panic!("{failure}");
    }
    eprintln!("fuzz: {cases} requests in {elapsed:.1?}");

    // Nothing stored changed: the bound attempt, and both sessions.
    runtime.block_on(async {
        let after = app.poll(&desktop).await;
        assert_eq!((after.state, after.version), (before.state, before.version));
        assert_eq!(after.state, LoginState::Pending);
        let me = Call::new(Method::GET, paths::ME).cookie(&desktop_session);
        assert_eq!(app.send(me).await.status(), StatusCode::OK);
        assert_eq!(app.sessions(&phone).await.len(), 2);
    });
}
