//! What operators see: Prometheus metrics on their own address, and a
//! request id on every log line of a request (and on its answer).

use std::{io::Read, time::Duration};

use crate::helpers::*;
use axum::http::header;

#[tokio::test]
async fn metrics_are_served_apart_and_count_requests_attempts_and_waits() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log_path = dir.path().join("qrlogin.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let args = [
        "--database".to_owned(),
        dir.path().join("q.db").display().to_string(),
        "--metrics-addr".to_owned(),
        format!("127.0.0.1:{metrics_port}"),
        "--log-format".to_owned(),
        "json".to_owned(),
    ];
    let mut instance = Instance::start_logging(&args, log);
    let http = reqwest::Client::new();
    instance.ready(&http).await;

    let created = http
        .post(instance.url(paths::LOGINS))
        .header("x-request-id", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let request_id = created.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        request_id.len(),
        36,
        "our own UUID, not the client's: {request_id}"
    );
    // A made-up method is counted as "other", never as a series of its own.
    let odd = reqwest::Method::from_bytes(b"BREW").unwrap();
    http.request(odd, instance.url(paths::LOGINS))
        .send()
        .await
        .unwrap();
    let cookie = cookie_pair(created.headers()[header::SET_COOKIE].to_str().unwrap());
    let id = created.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A desktop waiting now, seen while it waits.
    let poll = tokio::spawn(
        http.get(instance.url(&format!(
            "{}?since=1&wait=2",
            paths::with_id(paths::LOGIN, &id)
        )))
        .header(header::COOKIE, &cookie)
        .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let scrape = || async {
        http.get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let during = scrape().await;
    assert!(during.contains("qrlogin_desktops_waiting 1"), "{during}");
    poll.await.unwrap().unwrap();

    let text = scrape().await;
    for expected in [
        r#"qrlogin_http_requests_total{route="/api/v1/logins",method="POST",status="201"} 1"#,
        r#"qrlogin_attempts_total{outcome="login_created"} 1"#,
        r#"method="other""#,
        "qrlogin_desktops_waiting 0",
        r#"qrlogin_http_request_duration_seconds_bucket{route="/api/v1/logins/{id}",le="5"} 1"#,
    ] {
        assert!(text.contains(expected), "no {expected} in\n{text}");
    }
    assert!(!text.contains("BREW"), "{text}");
    // Never on the public address.
    let public = http.get(instance.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);

    // The request's log lines carry its id.
    instance.terminate();
    let mut logged = String::new();
    std::fs::File::open(&log_path)
        .unwrap()
        .read_to_string(&mut logged)
        .unwrap();
    let line = logged
        .lines()
        .find(|line| line.contains("login attempt created"))
        .unwrap_or_else(|| panic!("no creation logged in\n{logged}"));
    assert!(line.contains(&request_id), "{line}");
}

#[tokio::test]
async fn a_request_id_is_taken_only_from_a_trusted_proxy() {
    let app = test_app_with(server::config::ServeArgs {
        trusted_proxies: Some(vec![[10, 0, 0, 2].into()]),
        ..server::config::ServeArgs::default()
    })
    .await;
    let id_answered = |call: Call| async {
        let response = app.send(call).await;
        response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let from_proxy = Call::new(axum::http::Method::GET, "/healthz")
        .peer_ip([10, 0, 0, 2])
        .header("x-request-id", "proxy-7f3a");
    assert_eq!(id_answered(from_proxy).await, "proxy-7f3a");
    let from_client = Call::new(axum::http::Method::GET, "/healthz")
        .peer_ip([192, 0, 2, 7])
        .header("x-request-id", "proxy-7f3a");
    assert_eq!(id_answered(from_client).await.len(), 36, "a new UUID");
    let odd = Call::new(axum::http::Method::GET, "/healthz")
        .peer_ip([10, 0, 0, 2])
        .header("x-request-id", "two words");
    assert_eq!(id_answered(odd).await.len(), 36, "a new UUID");
}
