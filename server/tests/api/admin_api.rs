//! The admin API (`/api/v1/admin/…`, issue 21): only administrators (by
//! session, with the step-up for changes) and admin API tokens (by scope,
//! until expiry or revocation) get in, on every operation the OpenAPI
//! document lists, and a refusal changes nothing; accounts are created
//! with an invite, reset for a lost phone (exactly the chosen passkeys
//! go), disabled and enabled, never leaving no administrator; the audit
//! trail's filters narrow it and its exports hold exactly the listed rows.
//! On SQLite and on PostgreSQL; and across two instances.

use std::collections::BTreeSet;

use axum::http::{header, Method, StatusCode};
use leptos::server_fn::ServerFn;
use serde_json::{json, Value};
use server::{
    config::ServeArgs,
    domain::{caller::Caller, time::now_millis},
    services::admin::{token_text, TokenScope},
    storage,
};

use crate::{
    accounts_lifecycle::{add_passkey, passkey_server, passkey_sign_in},
    helpers::*,
    oidc,
};

const ADMIN_PREFIX: &str = "/api/v1/admin";
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

fn operator() -> Caller {
    Caller::new(None, "test operator").acting_as("operator")
}

/// A server function posted as a plain form (its answer is a redirect).
fn form<F: ServerFn>(pairs: &[(&str, &str)]) -> Call {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    Call::new(Method::POST, F::url())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "text/html")
        .header(header::USER_AGENT, PHONE_UA)
        .body(body.into_bytes())
}

/// An admin API token made on the server (as `qrlogin token add` does).
async fn token(app: &TestApp, name: &str, scope: TokenScope) -> (String, String) {
    let (view, secret) = app
        .state
        .services
        .add_admin_token(&operator(), name, scope, 1)
        .await
        .unwrap();
    (view.id, token_text(&secret))
}

/// `root`, an administrator signed in by password a moment ago (so its
/// session holds a fresh proof: it has no passkey), and `mallory`, who is
/// not one.
async fn root_and_mallory(app: &TestApp) -> (Phone, Phone) {
    let root = app.phone("root", "Root").await;
    app.state
        .services
        .set_admin("root", true, &operator())
        .await
        .unwrap();
    let mallory = app.phone("mallory", "Mallory").await;
    (root, mallory)
}

async fn send_json(app: &TestApp, call: Call) -> (StatusCode, Value) {
    let response = app.send(call).await;
    let status = response.status();
    let bytes = body_bytes(response).await;
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

/// What a refused request must leave as it was: the accounts and their
/// flags, sessions and passkeys, the apps, the tokens, the invites and the
/// audit trail's length.
async fn snapshot(app: &TestApp) -> String {
    let services = &app.state.services;
    let mut out = String::new();
    for account in services.accounts.list_accounts().await.unwrap() {
        let sessions = services
            .accounts
            .sessions_of(account.id)
            .await
            .unwrap()
            .len();
        let passkeys = services.passkeys.list(account.id).await.unwrap().len();
        out += &format!(
            "{} {} {} {} {sessions} {passkeys}\n",
            account.id, account.username, account.admin, account.disabled
        );
    }
    for client in services.oidc.clients().await.unwrap() {
        out += &format!("{:?}\n", client);
    }
    for token in services.admin_tokens().await.unwrap() {
        out += &format!("{token:?}\n");
    }
    out += &format!("{} invites\n", services.invites().await.unwrap().len());
    let rows = services.audit.count(&AuditQuery::default()).await.unwrap();
    out += &format!("{rows} audit rows\n");
    out
}

/// Every operation under `/api/v1/admin` in the served OpenAPI document:
/// its method and its path with each parameter filled in from `values`.
async fn admin_operations(app: &TestApp, values: &[(&str, String)]) -> Vec<(Method, String)> {
    let response = app.send(Call::new(Method::GET, paths::OPENAPI)).await;
    let doc: Value = json(response).await;
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with(ADMIN_PREFIX) {
            continue;
        }
        let mut uri = path.clone();
        for (name, value) in values {
            uri = uri.replace(&format!("{{{name}}}"), value);
        }
        assert!(!uri.contains('{'), "{uri}: a parameter without a value");
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            operations.push((method, uri.clone()));
        }
    }
    operations
}

/// A body each write would accept from an administrator: a refusal must
/// come from who asks, never from the body.
fn plausible_body(method: &Method, uri: &str) -> Option<Value> {
    if *method == Method::GET || *method == Method::DELETE {
        return None;
    }
    Some(if uri.ends_with("/accounts") {
        json!({ "username": "eve", "admin": true })
    } else if uri.ends_with("/admin") {
        json!({ "admin": true })
    } else if uri.ends_with("/reset") {
        json!({})
    } else if uri.ends_with("/apps") {
        json!({ "name": "Evil", "redirect_uris": ["https://evil.example/cb"] })
    } else if uri.ends_with("/tokens") {
        json!({ "name": "evil", "scope": "write" })
    } else {
        json!({})
    })
}

/// Anonymous callers, non-administrators, and tokens that are read-only
/// (on writes), expired or revoked are refused on every admin operation
/// of the document, and nothing changes.
async fn everyone_else_is_refused_everywhere(app: &TestApp) {
    let (root, mallory) = root_and_mallory(app).await;
    let services = &app.state.services;
    oidc::client(app, false).await;
    let apps = services.apps().await.unwrap();
    let (token_id, _write) = token(app, "ci", TokenScope::Write).await;
    let (_, read) = token(app, "dashboard", TokenScope::Read).await;
    let (revoked_id, revoked) = token(app, "old", TokenScope::Write).await;
    services
        .revoke_admin_token(&operator(), &revoked_id)
        .await
        .unwrap();
    let (_, expired) = {
        let (view, secret) = services
            .add_admin_token_at(
                &operator(),
                "expired",
                TokenScope::Write,
                1,
                now_millis() - 2 * DAY_MS,
            )
            .await
            .unwrap();
        (view.id, token_text(&secret))
    };
    let root_session = services
        .accounts
        .sessions_of(services.accounts.account_named("root").await.unwrap().id)
        .await
        .unwrap()[0]
        .id
        .clone();
    let values = [
        ("username", "root".to_owned()),
        ("client_id", apps[0].client_id.clone()),
        ("id", token_id.clone()),
    ];
    let operations = admin_operations(app, &values).await;
    assert!(operations.len() >= 22, "{operations:?}");
    // The session and passkey paths name `{id}` too: a session of root's.
    let before = snapshot(app).await;
    for (method, uri) in &operations {
        let uri = uri.replace(
            &format!("/sessions/{token_id}"),
            &format!("/sessions/{root_session}"),
        );
        let call = || {
            let call = Call::new(method.clone(), &uri).header(header::USER_AGENT, PHONE_UA);
            match plausible_body(method, &uri) {
                Some(body) => call.json(body),
                None => call,
            }
        };
        let writes = *method != Method::GET;
        let refusals: Vec<(&str, Call, StatusCode, &str)> = vec![
            (
                "anonymous",
                call(),
                StatusCode::UNAUTHORIZED,
                "not_signed_in",
            ),
            (
                "not an administrator",
                mallory.auth(call()),
                StatusCode::FORBIDDEN,
                "not_admin",
            ),
            (
                "a revoked token",
                call().bearer(&revoked),
                StatusCode::UNAUTHORIZED,
                "invalid_token",
            ),
            (
                "an expired token",
                call().bearer(&expired),
                StatusCode::UNAUTHORIZED,
                "invalid_token",
            ),
            (
                "a made-up token",
                call().bearer("qra_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                StatusCode::UNAUTHORIZED,
                "invalid_token",
            ),
        ];
        for (who, call, status, code) in refusals {
            let response = app.send(call).await;
            assert_eq!(response.status(), status, "{who}: {method} {uri}");
            assert_eq!(
                error_body(response, status).await.error,
                code,
                "{who}: {method} {uri}"
            );
        }
        if writes {
            let response = app.send(call().bearer(&read)).await;
            assert_eq!(
                error_body(response, StatusCode::FORBIDDEN).await.error,
                "read_only_token",
                "{method} {uri}"
            );
        } else {
            let response = app.send(call().bearer(&read)).await;
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "read token: {method} {uri}"
            );
            let response = app.send(root.auth(call())).await;
            assert_eq!(response.status(), StatusCode::OK, "root: {method} {uri}");
        }
        assert_eq!(
            snapshot(app).await,
            before,
            "{method} {uri} changed something"
        );
    }
}

/// A write token acts; a token cannot make tokens; a revoked one stops at
/// once; the audit trail names the token as who did it.
async fn tokens_act_until_revoked(app: &TestApp) {
    let services = &app.state.services;
    let (id, write) = token(app, "ci", TokenScope::Write).await;
    let disable = Call::new(Method::POST, "/api/v1/admin/accounts/mallory/disable");
    assert_eq!(
        app.send(disable.bearer(&write)).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(
        services
            .accounts
            .account_named("mallory")
            .await
            .unwrap()
            .disabled
    );
    let mallory = services.accounts.account_named("mallory").await.unwrap();
    let rows = audit_events(
        app,
        AuditQuery {
            account_id: Some(mallory.id),
            event: Some(server::domain::audit::AuditEvent::AccountDisabled),
            ..AuditQuery::default()
        },
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].actor.as_deref(),
        Some(format!("token:ci ({id})").as_str())
    );
    let enable = Call::new(Method::POST, "/api/v1/admin/accounts/mallory/enable");
    assert_eq!(
        app.send(enable.bearer(&write)).await.status(),
        StatusCode::NO_CONTENT
    );
    // A token cannot mint tokens.
    let mint = Call::new(Method::POST, "/api/v1/admin/tokens")
        .json(json!({ "name": "child", "scope": "write" }))
        .bearer(&write);
    let response = app.send(mint).await;
    assert_eq!(
        error_body(response, StatusCode::FORBIDDEN).await.error,
        "session_only"
    );
    // Revoked through the API (by the token itself): refused at once.
    let revoke = Call::new(Method::DELETE, &format!("/api/v1/admin/tokens/{id}")).bearer(&write);
    assert_eq!(app.send(revoke).await.status(), StatusCode::NO_CONTENT);
    let list = Call::new(Method::GET, "/api/v1/admin/status").bearer(&write);
    let response = app.send(list).await;
    assert_eq!(
        error_body(response, StatusCode::UNAUTHORIZED).await.error,
        "invalid_token"
    );
}

/// A session's changes need the step-up: a desktop signed in by QR (which
/// proves nothing of who sits there) is refused `confirm_first` until it
/// confirms with the password; reading needs none.
async fn session_changes_need_the_step_up(app: &TestApp, root: &Phone) {
    let desktop = app.signed_in_desktop(root).await;
    let disable = || {
        Call::new(Method::POST, "/api/v1/admin/accounts/mallory/disable")
            .cookie(&desktop)
            .header(header::USER_AGENT, DESKTOP_UA)
    };
    let before = snapshot(app).await;
    let response = app.send(disable()).await;
    assert_eq!(
        error_body(response, StatusCode::FORBIDDEN).await.error,
        "confirm_first"
    );
    assert_eq!(snapshot(app).await, before);
    let status = Call::new(Method::GET, "/api/v1/admin/status").cookie(&desktop);
    assert_eq!(app.send(status).await.status(), StatusCode::OK);
    // The password confirms it is root (no passkey on this account).
    let confirm =
        form::<app::server_fns::ConfirmWithPassword>(&[("password", PASSWORD)]).cookie(&desktop);
    let response = app.send(confirm).await;
    assert!(response.status().is_redirection(), "{}", response.status());
    assert_eq!(app.send(disable()).await.status(), StatusCode::NO_CONTENT);
    let enable = Call::new(Method::POST, "/api/v1/admin/accounts/mallory/enable").cookie(&desktop);
    assert_eq!(app.send(enable).await.status(), StatusCode::NO_CONTENT);
}

/// Created through the API, an account gets an invite that sets its
/// password (passkeys are off on this server) and signs it in, once.
async fn created_accounts_enroll_by_invite(app: &TestApp, root: &Phone) {
    let create = Call::new(Method::POST, "/api/v1/admin/accounts")
        .json(json!({ "username": "dora", "display_name": "Dora", "valid_hours": 2 }));
    let (status, made) = send_json(app, root.auth(create)).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["kind"], "enroll");
    let token = made["token"].as_str().unwrap().to_owned();
    assert!(made["invite_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/invite/{token}")));
    // The same name again: refused.
    let again =
        Call::new(Method::POST, "/api/v1/admin/accounts").json(json!({ "username": "dora" }));
    let response = app.send(root.auth(again)).await;
    assert_eq!(
        error_body(response, StatusCode::CONFLICT).await.error,
        "username_taken"
    );
    let detail = Call::new(Method::GET, "/api/v1/admin/accounts/dora");
    let (status, detail) = send_json(app, root.auth(detail)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["invites"].as_array().unwrap().len(), 1);

    let enroll =
        || form::<app::server_fns::EnrollPassword>(&[("token", &token), ("password", PASSWORD)]);
    let set = app.send(enroll()).await;
    assert!(set.status().is_redirection());
    assert_eq!(set.headers()[header::LOCATION], "/m");
    let cookie = cookie_pair(&set_cookie(&set));
    let me = app
        .send(Call::new(Method::GET, paths::ME).cookie(&cookie))
        .await;
    let me: app::api::Me = json(me).await;
    assert_eq!(me.user.username, "dora");
    let used = app.send(enroll()).await;
    assert!(used.headers().get(header::SET_COOKIE).is_none());
    // Dora signs in with her password; the row says root made her.
    sign_in(app, "dora").await;
    let dora = app
        .state
        .services
        .accounts
        .account_named("dora")
        .await
        .unwrap();
    let rows = audit_events(
        app,
        AuditQuery {
            account_id: Some(dora.id),
            event: Some(server::domain::audit::AuditEvent::AccountCreated),
            ..AuditQuery::default()
        },
    )
    .await;
    assert_eq!(rows[0].actor.as_deref(), Some("admin:root"));
}

/// Disabled and enabled through the API: the phone's session ends; its
/// password works again afterwards. The last enabled administrator cannot
/// be demoted, disabled or removed, and nobody acts on their own account.
async fn disabling_and_the_last_administrator(app: &TestApp, root: &Phone) {
    let services = &app.state.services;
    let phone = Phone {
        token: sign_in(app, "mallory").await,
    };
    let call = |method: Method, uri: &str| root.auth(Call::new(method, uri));
    let disable = call(Method::POST, "/api/v1/admin/accounts/mallory/disable");
    assert_eq!(app.send(disable).await.status(), StatusCode::NO_CONTENT);
    let me = app
        .send(phone.auth(Call::new(Method::GET, paths::ME)))
        .await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    let detail = call(Method::GET, "/api/v1/admin/accounts/mallory");
    let (_, detail) = send_json(app, detail).await;
    assert_eq!(detail["disabled"], true);
    assert!(detail["sessions"].as_array().unwrap().is_empty());
    let enable = call(Method::POST, "/api/v1/admin/accounts/mallory/enable");
    assert_eq!(app.send(enable).await.status(), StatusCode::NO_CONTENT);
    sign_in(app, "mallory").await;

    let (_, write) = token(app, "ops", TokenScope::Write).await;
    let before = snapshot(app).await;
    for (method, uri, body, code) in [
        (
            Method::PUT,
            "/api/v1/admin/accounts/root/admin",
            Some(json!({"admin": false})),
            "last_admin",
        ),
        (
            Method::POST,
            "/api/v1/admin/accounts/root/disable",
            None,
            "last_admin",
        ),
        (
            Method::DELETE,
            "/api/v1/admin/accounts/root",
            None,
            "last_admin",
        ),
    ] {
        let mut by_token = Call::new(method.clone(), uri).bearer(&write);
        let mut by_root = call(method.clone(), uri);
        if let Some(body) = body {
            by_token = by_token.json(body.clone());
            by_root = by_root.json(body);
        }
        let response = app.send(by_token).await;
        assert_eq!(
            error_body(response, StatusCode::CONFLICT).await.error,
            code,
            "{uri}"
        );
        let response = app.send(by_root).await;
        assert_eq!(
            error_body(response, StatusCode::CONFLICT).await.error,
            "own_account",
            "{uri}"
        );
    }
    assert_eq!(snapshot(app).await, before);
    // With a second administrator, root may be demoted (by the token).
    let promote =
        call(Method::PUT, "/api/v1/admin/accounts/mallory/admin").json(json!({"admin": true}));
    assert_eq!(app.send(promote).await.status(), StatusCode::NO_CONTENT);
    let demote = Call::new(Method::PUT, "/api/v1/admin/accounts/root/admin")
        .json(json!({"admin": false}))
        .bearer(&write);
    assert_eq!(app.send(demote).await.status(), StatusCode::NO_CONTENT);
    assert!(!services.accounts.account_named("root").await.unwrap().admin);
    // Root is no administrator now: refused.
    let status = call(Method::GET, "/api/v1/admin/status");
    let response = app.send(status).await;
    assert_eq!(
        error_body(response, StatusCode::FORBIDDEN).await.error,
        "not_admin"
    );
    // Put back for what follows.
    services.set_admin("root", true, &operator()).await.unwrap();
    services
        .set_admin("mallory", false, &operator())
        .await
        .unwrap();
}

/// The rows of one audit page and of both exports, for `query`.
async fn listed_and_exported(app: &TestApp, root: &Phone, query: &str) -> (Vec<i64>, u64) {
    let list = root.auth(Call::new(
        Method::GET,
        &format!("/api/v1/admin/audit?per_page=100&{query}"),
    ));
    let (status, page) = send_json(app, list).await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    let ids: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    let total = page["total"].as_u64().unwrap();
    assert_eq!(ids.len() as u64, total.min(100), "{query}");
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "newest first");

    let export = |format: &str| {
        root.auth(Call::new(
            Method::GET,
            &format!("/api/v1/admin/audit/export?format={format}&{query}"),
        ))
    };
    let response = app.send(export("csv")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let csv = String::from_utf8(body_bytes(response).await).unwrap();
    let mut lines = csv.split("\r\n").filter(|l| !l.is_empty());
    assert!(lines.next().unwrap().starts_with("id,at,event"));
    let csv_ids: Vec<i64> = lines
        .map(|line| line.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        csv_ids, ids,
        "{query}: the CSV holds exactly the listed rows"
    );
    let response = app.send(export("jsonl")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let jsonl = String::from_utf8(body_bytes(response).await).unwrap();
    let jsonl_ids: Vec<i64> = jsonl
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        jsonl_ids, ids,
        "{query}: the JSON Lines hold exactly the listed rows"
    );
    (ids, total)
}

/// Each filter narrows the trail to the rows that match it; pages are
/// disjoint, newest first; exports hold exactly the filtered rows.
async fn audit_filters_and_exports(app: &TestApp, root: &Phone) {
    let services = &app.state.services;
    // Sign-ins from two addresses, and an app with a revoked grant.
    let start = now_millis();
    for ip in [[198, 51, 100, 7], [203, 0, 113, 9]] {
        let response = app
            .send(
                Call::new(Method::POST, paths::SESSION)
                    .peer_ip(ip)
                    .json(json!({ "username": "mallory", "password": PASSWORD })),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let client = services.apps().await.unwrap()[0].client_id.clone();
    let remove = root.auth(Call::new(
        Method::DELETE,
        &format!("/api/v1/admin/apps/{client}"),
    ));
    assert_eq!(app.send(remove).await.status(), StatusCode::NO_CONTENT);
    services.audit.flush().await;
    let end = now_millis();

    let (all, total) = listed_and_exported(app, root, "").await;
    assert!(total > 10, "{total}");
    let mallory = services.accounts.account_named("mallory").await.unwrap();
    let filters = [
        (
            "account=mallory".to_owned(),
            Some(mallory.id),
            None,
            None,
            None,
        ),
        (
            "event=signed_in".to_owned(),
            None,
            Some("signed_in"),
            None,
            None,
        ),
        (
            format!("app={client}"),
            None,
            None,
            Some(client.clone()),
            None,
        ),
        (
            "address=203.0.113.9".to_owned(),
            None,
            None,
            None,
            Some("203.0.113.9"),
        ),
    ];
    for (query, account, event, app_id, address) in filters {
        let (ids, filtered) = listed_and_exported(app, root, &query).await;
        assert!(
            filtered > 0 && filtered < total,
            "{query}: {filtered} of {total}"
        );
        let rows = audit_events(app, AuditQuery::default()).await;
        for id in &ids {
            let row = rows.iter().find(|r| r.id == *id).unwrap();
            if let Some(account) = account {
                assert_eq!(row.account_id, Some(account), "{query}");
            }
            if let Some(event) = event {
                assert_eq!(row.event.as_str(), event, "{query}");
            }
            if let Some(app_id) = &app_id {
                assert_eq!(row.client_id.as_ref(), Some(app_id), "{query}");
            }
            if let Some(address) = address {
                assert_eq!(row.ip, address, "{query}");
            }
        }
        // Every matching row is listed, none left out.
        let matching = rows
            .iter()
            .filter(|r| account.is_none_or(|a| r.account_id == Some(a)))
            .filter(|r| event.is_none_or(|e| r.event.as_str() == e))
            .filter(|r| {
                app_id
                    .as_ref()
                    .is_none_or(|c| r.client_id.as_ref() == Some(c))
            })
            .filter(|r| address.is_none_or(|a| r.ip == a))
            .count();
        assert_eq!(matching as u64, filtered, "{query}");
    }
    // A time range: the rows of this test's last moments.
    let (ids, in_range) = listed_and_exported(app, root, &format!("from={start}&to={end}")).await;
    assert!(in_range >= 3 && in_range < total, "{in_range} of {total}");
    assert!(ids.iter().all(|id| all.contains(id)));
    // Filters combine.
    let (_, both) = listed_and_exported(
        app,
        root,
        "account=mallory&event=signed_in&address=198.51.100.7",
    )
    .await;
    assert_eq!(both, 1);
    // Pages: disjoint, in order.
    let page = |n: u32| {
        root.auth(Call::new(
            Method::GET,
            &format!("/api/v1/admin/audit?per_page=5&page={n}"),
        ))
    };
    let (_, first) = send_json(app, page(1)).await;
    let (_, second) = send_json(app, page(2)).await;
    let ids = |page: &Value| -> Vec<i64> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!([ids(&first), ids(&second)].concat(), all[..10].to_vec());
    // An unknown event is a bad request, not an empty list.
    let bad = root.auth(Call::new(Method::GET, "/api/v1/admin/audit?event=nonsense"));
    assert_eq!(
        error_body(app.send(bad).await, StatusCode::BAD_REQUEST)
            .await
            .error,
        "bad_request"
    );
}

/// Apps through the API: added with post-logout URIs, the secret rotated
/// (the old one stops), listed.
async fn apps_through_the_api(app: &TestApp, root: &Phone) {
    let add = root.auth(Call::new(Method::POST, "/api/v1/admin/apps").json(json!({
        "name": "Wiki",
        "redirect_uris": ["https://wiki.example/cb"],
        "post_logout_uris": ["https://wiki.example/bye"],
    })));
    let (status, added) = send_json(app, add).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(
        added["app"]["post_logout_uris"],
        json!(["https://wiki.example/bye"])
    );
    let id = added["app"]["client_id"].as_str().unwrap().to_owned();
    let first = added["client_secret"].as_str().unwrap().to_owned();
    let rotate = root.auth(Call::new(
        Method::POST,
        &format!("/api/v1/admin/apps/{id}/secret"),
    ));
    let (status, rotated) = send_json(app, rotate).await;
    assert_eq!(status, StatusCode::OK);
    let second = rotated["client_secret"].as_str().unwrap();
    assert_ne!(first, second);
    let client = app.state.services.oidc.clients().await.unwrap();
    let client = client.iter().find(|c| c.id == id).unwrap();
    assert!(client.secret_matches(second) && !client.secret_matches(&first));
    let list = root.auth(Call::new(Method::GET, "/api/v1/admin/apps"));
    let (_, list) = send_json(app, list).await;
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["client_id"] == id.as_str()));
    let bad = root.auth(Call::new(Method::POST, "/api/v1/admin/apps").json(json!({
        "name": "Bad", "redirect_uris": ["ftp://x"],
    })));
    assert_eq!(
        error_body(app.send(bad).await, StatusCode::BAD_REQUEST)
            .await
            .error,
        "bad_request"
    );
}

async fn the_admin_api(app: &TestApp) {
    everyone_else_is_refused_everywhere(app).await;
    let root = Phone {
        token: sign_in(app, "root").await,
    };
    tokens_act_until_revoked(app).await;
    session_changes_need_the_step_up(app, &root).await;
    created_accounts_enroll_by_invite(app, &root).await;
    disabling_and_the_last_administrator(app, &root).await;
    apps_through_the_api(app, &root).await;
    audit_filters_and_exports(app, &root).await;
}

#[tokio::test]
async fn on_sqlite_the_admin_api() {
    let app = test_app().await;
    the_admin_api(&app).await;
}

#[tokio::test]
async fn on_postgres_the_admin_api() {
    let Some(database) = storage::testing::fresh_postgres().await else {
        return;
    };
    let app = test_app_with(ServeArgs {
        database: Some(database),
        ..ServeArgs::default()
    })
    .await;
    the_admin_api(&app).await;
}

/// A lost phone: the administrator picks which of Carol's passkeys to
/// remove; exactly those go, every session ends, and a reset invite is
/// made. An unknown passkey id refuses the whole reset.
async fn a_reset_removes_exactly_the_chosen_passkeys(app: &TestApp) {
    let (root, _) = root_and_mallory(app).await;
    let phone = app.phone("carol", "Carol").await;
    let first = add_passkey(app, &phone).await;
    // The second passkey needs a passkey's proof: signed in with the first.
    let cookie = passkey_sign_in(app, &first, 1).await.unwrap();
    let with_passkey = Phone {
        token: cookie.split_once('=').unwrap().1.to_owned(),
    };
    add_passkey(app, &with_passkey).await;
    let detail = || root.auth(Call::new(Method::GET, "/api/v1/admin/accounts/carol"));
    let (_, before) = send_json(app, detail()).await;
    let ids: Vec<String> = before["passkeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{before}");

    let reset = |body: Value| {
        root.auth(Call::new(Method::POST, "/api/v1/admin/accounts/carol/reset").json(body))
    };
    let unchanged = snapshot(app).await;
    let response = app
        .send(reset(json!({ "passkeys": [ids[0], "no-such-passkey"] })))
        .await;
    assert_eq!(
        error_body(response, StatusCode::NOT_FOUND).await.error,
        "not_found"
    );
    assert_eq!(snapshot(app).await, unchanged);

    let (status, invite) = send_json(app, reset(json!({ "passkeys": [ids[0]] }))).await;
    assert_eq!(status, StatusCode::CREATED, "{invite}");
    assert_eq!(invite["kind"], "reset");
    let (_, after) = send_json(app, detail()).await;
    let left: Vec<&str> = after["passkeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(left, [ids[1].as_str()]);
    assert!(after["sessions"].as_array().unwrap().is_empty());
    assert_eq!(after["invites"].as_array().unwrap().len(), 1);
    let me = app
        .send(phone.auth(Call::new(Method::GET, paths::ME)))
        .await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);

    // All of them (the default), with a new invite replacing the first.
    let (status, _) = send_json(app, reset(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, after) = send_json(app, detail()).await;
    assert!(after["passkeys"].as_array().unwrap().is_empty());
    assert_eq!(after["invites"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn on_sqlite_a_reset_removes_exactly_the_chosen_passkeys() {
    let app = test_app_with(passkey_server()).await;
    a_reset_removes_exactly_the_chosen_passkeys(&app).await;
}

#[tokio::test]
async fn on_postgres_a_reset_removes_exactly_the_chosen_passkeys() {
    let Some(database) = storage::testing::fresh_postgres().await else {
        return;
    };
    let app = test_app_with(ServeArgs {
        database: Some(database),
        ..passkey_server()
    })
    .await;
    a_reset_removes_exactly_the_chosen_passkeys(&app).await;
}

/// Failed admin tokens count against the address's token allowance: a
/// guesser is slowed down (429) like any other bearer guesser.
#[tokio::test]
async fn failed_tokens_are_rate_limited() {
    let app = test_app_with(ServeArgs {
        limit_token: Some(3),
        ..ServeArgs::default()
    })
    .await;
    let mut statuses = BTreeSet::new();
    for _ in 0..10 {
        let call = Call::new(Method::GET, "/api/v1/admin/status")
            .bearer("qra_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        statuses.insert(app.send(call).await.status());
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

/// Two instances: an account disabled through instance A's API is
/// refused on B at once (B had its session cached).
#[tokio::test]
async fn an_account_disabled_through_the_api_on_one_instance_is_refused_on_another() {
    let Some(apps) = cluster(2).await else {
        return;
    };
    let (a, b) = (&apps[0], &apps[1]);
    let (root, mallory) = root_and_mallory(a).await;
    let me = |phone: &Phone| phone.auth(Call::new(Method::GET, paths::ME));
    assert_eq!(b.send(me(&mallory)).await.status(), StatusCode::OK);
    let disable = root.auth(Call::new(
        Method::POST,
        "/api/v1/admin/accounts/mallory/disable",
    ));
    assert_eq!(a.send(disable).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        b.send(me(&mallory)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let sign_in = Call::new(Method::POST, paths::SESSION)
        .json(json!({ "username": "mallory", "password": PASSWORD }));
    assert_eq!(b.send(sign_in).await.status(), StatusCode::UNAUTHORIZED);
    // And B's admin API sees it.
    let detail = root.auth(Call::new(Method::GET, "/api/v1/admin/accounts/mallory"));
    let (status, detail) = send_json(b, detail).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["disabled"], true);
}

/// An app registered with post-logout URIs (through the services the API
/// and `qrlogin client add --post-logout-uri` use) is sent back only to
/// those after logout, no longer to its redirect URIs; one without them
/// keeps its redirect URIs (oidc.rs).
#[tokio::test]
async fn logout_returns_only_to_the_post_logout_uris() {
    const CALLBACK: &str = "http://localhost:4000/callback";
    const BYE: &str = "http://localhost:4000/bye";
    let app = test_app().await;
    let added = app
        .state
        .services
        .add_app(
            &server::services::admin::AdminActor::operator(&operator()),
            server::services::admin::NewApp {
                name: "Grafana".into(),
                redirect_uris: vec![CALLBACK.into()],
                post_logout_uris: vec![BYE.into()],
                backchannel_logout_uri: None,
                public: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(added.app.post_logout_uris, [BYE]);
    let client = oidc::Client {
        id: added.app.client_id,
        secret: None,
    };
    let phone = app.phone("alice", "Alice").await;
    let (verifier, challenge) = oidc::pkce();
    let (back, session) =
        oidc::sign_in_for(&app, &phone, &oidc::code_params(&client, &challenge)).await;
    let code = oidc::redirect_params(&back)["code"].clone();
    let (status, tokens) = oidc::exchange(&app, &client, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let id_token = tokens["id_token"].as_str().unwrap();
    let logout = |uri: &str| {
        Call::new(
            Method::GET,
            &format!(
                "{}?{}",
                paths::END_SESSION,
                oidc::query(&[
                    ("id_token_hint", id_token),
                    ("post_logout_redirect_uri", uri)
                ])
            ),
        )
    };
    let refused = app.send(logout(CALLBACK)).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let response = app.send(logout(BYE).cookie(&session)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(oidc::location(&response), BYE);
}

/// `qrlogin` itself on `db`: its exit status and standard output.
fn qrlogin(args: &[&str], db: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qrlogin"))
        .args(args)
        .arg("--database")
        .arg(db)
        .env_remove("QRLOGIN_CONFIG")
        .output()
        .expect("run qrlogin");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `qrlogin token add|list|revoke`: the token is printed once and works
/// on the API until revoked; `client add --post-logout-uri` and `user
/// reset --invite` act through the same services as the API.
#[tokio::test]
async fn the_token_client_and_reset_commands() {
    let app = test_app().await;
    let db = app.dir.path().join("qrlogin.db");
    let (ok, out) = qrlogin(
        &[
            "token",
            "add",
            "ci",
            "--scope",
            "write",
            "--valid-days",
            "7",
        ],
        &db,
    );
    assert!(ok, "{out}");
    let secret = out
        .lines()
        .find(|l| l.starts_with("qra_"))
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    let (ok, listed) = qrlogin(&["token", "list"], &db);
    assert!(ok && listed.contains("\tci\twrite\t"), "{listed}");
    let id = listed.split('\t').next().unwrap().to_owned();
    assert!(!listed.contains(&secret), "never listed");
    let status = || Call::new(Method::GET, "/api/v1/admin/status").bearer(&secret);
    let (code, body) = send_json(&app, status()).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["database"], "sqlite");
    let (ok, out) = qrlogin(&["token", "add", "x", "--valid-days", "400"], &db);
    assert!(!ok && out.contains("365"), "{out}");

    let (ok, out) = qrlogin(
        &[
            "client",
            "add",
            "Wiki",
            "--redirect-uri",
            "https://wiki.example/cb",
            "--post-logout-uri",
            "https://wiki.example/bye",
            "--json",
        ],
        &db,
    );
    assert!(ok, "{out}");
    let (code, apps) = send_json(
        &app,
        Call::new(Method::GET, "/api/v1/admin/apps").bearer(&secret),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        apps[0]["post_logout_uris"],
        json!(["https://wiki.example/bye"])
    );

    app.add_account("carol", "Carol").await;
    let (ok, out) = qrlogin(&["user", "reset", "carol", "--invite"], &db);
    assert!(ok, "{out}");
    assert!(out.contains("reset invite for carol"), "{out}");
    assert!(out.contains("/invite/"), "{out}");
    let (code, carol) = send_json(
        &app,
        Call::new(Method::GET, "/api/v1/admin/accounts/carol").bearer(&secret),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(carol["invites"][0]["kind"], "reset");

    let (ok, out) = qrlogin(&["token", "revoke", &id], &db);
    assert!(ok, "{out}");
    let response = app.send(status()).await;
    assert_eq!(
        error_body(response, StatusCode::UNAUTHORIZED).await.error,
        "invalid_token"
    );
    // The trail says who: the operator.
    let rows = audit_events(
        &app,
        AuditQuery {
            event: Some(server::domain::audit::AuditEvent::AdminTokenRevoked),
            ..AuditQuery::default()
        },
    )
    .await;
    assert_eq!(rows[0].actor.as_deref(), Some("operator"));
}
