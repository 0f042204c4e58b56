//! The client's address behind a trusted proxy, replayed against the real
//! router: whatever a client writes into the forwarding headers before what
//! the proxy appends never becomes its address (not on the phone's screen,
//! not in the audit trail, not in the rate limits); and per-address limits
//! count an IPv6 client by its /64.

use std::net::{Ipv6Addr, SocketAddr};

use crate::helpers::*;
use axum::http::{header, Method, StatusCode};
use server::{config::ServeArgs, domain::audit::AuditEvent};

const PROXY: [u8; 4] = [10, 0, 0, 1];
const RELAY_WARNING: &str = "The computer asking is not on your network. If someone sent you this code or asked you to scan it, deny.";

async fn behind_proxy(args: ServeArgs) -> TestApp {
    test_app_with(ServeArgs {
        trusted_proxies: Some(vec![PROXY.into()]),
        ..args
    })
    .await
}

/// A new attempt asked for through the proxy, which sent `header: value`.
fn create_via_proxy(header: &str, value: &str) -> Call {
    Call::new(Method::POST, paths::LOGINS)
        .header(header::USER_AGENT, DESKTOP_UA)
        .header(header, value)
        .peer_ip(PROXY)
}

/// The phone's page for attempt `id`, the phone at `phone_ip` behind the proxy.
async fn phone_page(app: &TestApp, phone: &Phone, id: &str, phone_ip: &str) -> String {
    let response = app
        .send(
            phone.auth(
                Call::new(Method::GET, &format!("/q/{id}"))
                    .header(header::ACCEPT, "text/html")
                    .header("x-forwarded-for", phone_ip)
                    .peer_ip(PROXY),
            ),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    String::from_utf8(body_bytes(response).await).unwrap()
}

/// The address the audit trail recorded for attempt `id`'s creation.
async fn created_from(app: &TestApp, id: &str) -> String {
    let rows = audit_events(
        app,
        AuditQuery {
            login_id: Some(id.to_owned()),
            event: Some(AuditEvent::LoginCreated),
            ..AuditQuery::default()
        },
    )
    .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0].ip.clone()
}

/// nginx's `$proxy_add_x_forwarded_for` appends the real address to what
/// the client sent: `198.51.100.7, x` arrives as `198.51.100.7, x, REAL`.
/// The client claimed the phone's network; the phone must still be warned.
#[tokio::test]
async fn a_forged_left_part_does_not_fake_the_phones_network() {
    let app = behind_proxy(ServeArgs::default()).await;
    let phone = app.phone("alice", "Alice").await;
    let forged = create_via_proxy("x-forwarded-for", "198.51.100.7, x, 203.0.113.9");
    let created: app::api::LoginCreated = json(app.send(forged).await).await;
    assert_eq!(created_from(&app, &created.id).await, "203.0.113.9");

    let html = phone_page(&app, &phone, &created.id, "198.51.100.20").await;
    let warned_at = html.find(RELAY_WARNING).expect("the relay warning");
    assert!(warned_at < html.find(">Approve<").unwrap());
    assert!(
        html.contains(r#"<button type="submit" class="button danger">Deny</button>"#),
        "{html}"
    );
    assert!(html.contains("203.0.113.9"), "the real address is shown");
    assert!(!html.contains("198.51.100.7"), "never the forged one");

    // The same forgery in `Forwarded`, quoted with a port, and over two
    // header lines (the client's, then the proxy's).
    let mut call = create_via_proxy("forwarded", "for=198.51.100.7, for=\"x");
    call = call.header("forwarded", "for=\"203.0.113.9:4711\"");
    let created: app::api::LoginCreated = json(app.send(call).await).await;
    assert_eq!(created_from(&app, &created.id).await, "203.0.113.9");
    let html = phone_page(&app, &phone, &created.id, "198.51.100.20").await;
    assert!(html.contains(RELAY_WARNING));
}

/// A trusted proxy that cannot name the client (`for=unknown`, an
/// obfuscated one, an empty hop): the client is unknown, never the hop
/// before, so it cannot look like the phone's network and is recorded
/// without an address.
#[tokio::test]
async fn a_client_the_proxy_cannot_name_is_unknown() {
    let app = behind_proxy(ServeArgs::default()).await;
    let phone = app.phone("alice", "Alice").await;
    for (name, value) in [
        ("forwarded", "for=198.51.100.7, for=unknown"),
        ("forwarded", "for=198.51.100.7, for=_hidden"),
        ("x-forwarded-for", "198.51.100.7,,10.0.0.1"),
    ] {
        let created: app::api::LoginCreated =
            json(app.send(create_via_proxy(name, value)).await).await;
        assert_eq!(created_from(&app, &created.id).await, "", "{value}");
        let html = phone_page(&app, &phone, &created.id, "198.51.100.20").await;
        assert!(html.contains(RELAY_WARNING), "{value}");
        assert!(!html.contains("198.51.100.7"), "{value}");
    }
}

/// A fresh forged left part per request is still the one real address:
/// the limit on new attempts holds.
#[tokio::test]
async fn forged_left_parts_do_not_escape_the_per_address_limit() {
    let app = behind_proxy(ServeArgs {
        limit_create: Some(3),
        ..ServeArgs::default()
    })
    .await;
    for i in 0..3 {
        let forged = format!("198.51.100.{i}, garbage{i}, 203.0.113.9");
        let response = app.send(create_via_proxy("x-forwarded-for", &forged)).await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let forged = "198.51.100.99, x, 203.0.113.9";
    let response = app.send(create_via_proxy("x-forwarded-for", forged)).await;
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let error = error_body(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(error.error, "rate_limited");
    assert!(retry_after.is_some());
    // Another real client behind the same proxy is not affected.
    let other = app
        .send(create_via_proxy("x-forwarded-for", "203.0.113.10"))
        .await;
    assert_eq!(other.status(), StatusCode::CREATED);
}

fn ipv6_peer(network: u64, host: u64) -> SocketAddr {
    let ip = Ipv6Addr::from((u128::from(network) << 64) | u128::from(host));
    SocketAddr::from((ip, 50000))
}

fn unknown_user_sign_in(n: u32) -> Call {
    Call::new(Method::POST, paths::SESSION).json(serde_json::json!({
        "username": format!("nobody{n}"),
        "password": "not the password",
    }))
}

/// A client with a /64 holds 2^64 addresses; each unknown-user sign-in
/// costs a password hash. The /64 is one client: ten tries a minute, not
/// ten per address. Another /64 is another client.
#[tokio::test]
async fn an_ipv6_64_is_one_client_for_the_limits() {
    let app = test_app().await;
    let network = 0x2001_0db8_0001_0002;
    let mut refused = 0;
    for i in 0..100u32 {
        let host = u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let response = app
            .send(unknown_user_sign_in(i).peer(ipv6_peer(network, host)))
            .await;
        match response.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => {
                let error = error_body(response, StatusCode::TOO_MANY_REQUESTS).await;
                assert_eq!(error.error, "rate_limited");
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(refused, 90, "the default ten a minute for the whole /64");
    let elsewhere = app
        .send(unknown_user_sign_in(1000).peer(ipv6_peer(network + 1, 1)))
        .await;
    assert_eq!(elsewhere.status(), StatusCode::UNAUTHORIZED);

    // New attempts too, and behind a trusted proxy naming IPv6 clients.
    let app = behind_proxy(ServeArgs {
        limit_create: Some(5),
        ..ServeArgs::default()
    })
    .await;
    let mut created = 0;
    for i in 0..100u32 {
        let client = format!("[2001:db8:1:2:{i:x}::{:x}]:443", i + 1);
        let response = app.send(create_via_proxy("x-forwarded-for", &client)).await;
        if response.status() == StatusCode::CREATED {
            created += 1;
        } else {
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        }
    }
    assert_eq!(created, 5);
    let response = app
        .send(create_via_proxy("x-forwarded-for", "2001:db8:1:3::1"))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

/// `--ipv6-limit-prefix` narrows or widens what one IPv6 client is.
#[tokio::test]
async fn the_ipv6_prefix_is_a_setting() {
    let app = test_app_with(ServeArgs {
        limit_create: Some(1),
        ipv6_limit_prefix: Some(48),
        ..ServeArgs::default()
    })
    .await;
    let create = |peer| Call::new(Method::POST, paths::LOGINS).peer(peer);
    let first = app.send(create(ipv6_peer(0x2001_0db8_0001_0002, 1))).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    // Another /64 of the same /48: the same client now.
    let same_48 = app.send(create(ipv6_peer(0x2001_0db8_0001_0003, 1))).await;
    assert_eq!(same_48.status(), StatusCode::TOO_MANY_REQUESTS);
    let other_48 = app.send(create(ipv6_peer(0x2001_0db8_0002_0002, 1))).await;
    assert_eq!(other_48.status(), StatusCode::CREATED);
    // An IPv4-mapped peer counts as its IPv4 address.
    let mapped = SocketAddr::from(("::ffff:192.0.2.1".parse::<Ipv6Addr>().unwrap(), 1));
    assert_eq!(app.send(create(mapped)).await.status(), StatusCode::CREATED);
    let plain = Call::new(Method::POST, paths::LOGINS).peer_ip([192, 0, 2, 1]);
    assert_eq!(
        app.send(plain).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// A proxy that adds its own `X-Request-Id` line after a client's: neither
/// is believed (the first would be the client's), the server makes its own.
#[tokio::test]
async fn a_request_id_on_several_lines_is_replaced() {
    let app = behind_proxy(ServeArgs::default()).await;
    let call = Call::new(Method::GET, "/healthz")
        .peer_ip(PROXY)
        .header("x-request-id", "forged-by-client")
        .header("x-request-id", "proxy-7f3a");
    let response = app.send(call).await;
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a new UUID, not {id}");
    let call = Call::new(Method::GET, "/healthz")
        .peer_ip(PROXY)
        .header("x-request-id", "proxy-7f3a");
    let response = app.send(call).await;
    assert_eq!(response.headers()["x-request-id"], "proxy-7f3a");
}
