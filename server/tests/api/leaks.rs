//! Rule 5 against the data leak (F6) of the 2025 study: whoever shows a QR
//! code learns nothing about the account that scans it before that account
//! approves; above all not its username, which is also its display name
//! unless another was chosen (`qrlogin user add NAME`). Every answer the
//! desktop (or a device) can get before the approval, and what the attempt
//! store keeps, is searched for the username; only the redeem may carry it.

use std::time::Duration;

use app::api::{LoginState, LoginStatus, Redeemed};
use axum::{
    http::{header, Method, StatusCode},
    response::Response,
};
use leptos::server_fn::ServerFn;
use serde_json::Value;
use server::{config::ServeArgs, domain::time::now_millis};

use crate::helpers::*;

/// An account made without a display name: its display name is this.
const USERNAME: &str = "jabberwock";

/// Makes the account the way `qrlogin user add jabberwock` does, with no
/// `--display-name`, and signs a phone in as it.
async fn phone_without_display_name(app: &TestApp) -> Phone {
    let account = app
        .state
        .services
        .accounts
        .add_account(USERNAME, None, PASSWORD, now_millis())
        .await
        .unwrap();
    assert_eq!(account.display_name, USERNAME);
    Phone {
        token: sign_in(app, USERNAME).await,
    }
}

/// Everything the desktop was answered, as text: status, headers, body.
#[derive(Default)]
struct Answers(Vec<(String, String)>);

impl Answers {
    /// Keeps `response` under `what`; returns its status and body.
    async fn keep(&mut self, what: &str, response: Response) -> (StatusCode, String) {
        let status = response.status();
        let headers = format!("{:?}", response.headers());
        let body = String::from_utf8_lossy(&body_bytes(response).await).into_owned();
        self.0
            .push((what.to_owned(), format!("{status}\n{headers}\n{body}")));
        (status, body)
    }

    fn keep_text(&mut self, what: &str, text: String) {
        self.0.push((what.to_owned(), text));
    }

    /// None of them names the account, in any case.
    fn assert_no_username(&self) {
        assert!(!self.0.is_empty());
        for (what, text) in &self.0 {
            assert!(
                !text.to_lowercase().contains(USERNAME),
                "{what} gave the username away: {text}"
            );
        }
    }
}

fn get(uri: &str) -> Call {
    Call::new(Method::GET, uri)
        .header(header::USER_AGENT, DESKTOP_UA)
        .header(header::ACCEPT, "text/html")
}

/// A new attempt from `app`, its answer kept.
async fn new_desktop(app: &TestApp, answers: &mut Answers, query: &str) -> Desktop {
    let response = app
        .send(
            Call::new(Method::POST, &format!("{}{query}", paths::LOGINS))
                .header(header::USER_AGENT, DESKTOP_UA),
        )
        .await;
    let cookie = cookie_pair(&set_cookie(&response));
    let (status, body) = answers.keep("POST /logins", response).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let created: app::api::LoginCreated = serde_json::from_str(&body).unwrap();
    Desktop {
        id: created.id.clone(),
        cookie,
        created,
    }
}

fn status_call(desktop: &Desktop, query: &str) -> Call {
    Call::new(
        Method::GET,
        &format!("{}{query}", paths::with_id(paths::LOGIN, &desktop.id)),
    )
    .cookie(&desktop.cookie)
}

/// The attempt's status as the desktop polls it, kept.
async fn status(app: &TestApp, desktop: &Desktop, answers: &mut Answers) -> LoginStatus {
    let (code, body) = answers
        .keep("GET /logins/{id}", app.send(status_call(desktop, "")).await)
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The desktop's other calls, whatever they answer: redeem and cancel
/// (before approval they are refused; the refusals are kept too).
async fn redeem_and_cancel(app: &TestApp, desktop: &Desktop, answers: &mut Answers) {
    answers.keep("redeem", app.redeem(desktop).await).await;
    let cancel = Call::new(Method::DELETE, &paths::with_id(paths::LOGIN, &desktop.id))
        .cookie(&desktop.cookie);
    answers.keep("cancel", app.send(cancel).await).await;
}

/// The scan → deny story, desktop on `desktop_app`, phone on `phone_app`
/// (the same app, or two instances sharing the stores). Returns what the
/// desktop was answered.
async fn scan_then_deny(desktop_app: &TestApp, phone_app: &TestApp, phone: &Phone) -> Answers {
    let mut answers = Answers::default();
    // Pages the desktop may load.
    for uri in ["/login", "/"] {
        let response = desktop_app.send(get(uri)).await;
        answers.keep(uri, response).await;
    }
    let desktop = new_desktop(desktop_app, &mut answers, "").await;

    // A long poll woken by the scan.
    let waiting = tokio::spawn(send_to(
        desktop_app.router.clone(),
        status_call(&desktop, "?since=1&wait=10"),
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        phone_app.scan(phone, &desktop.id).await.status(),
        StatusCode::OK
    );
    let (code, body) = answers.keep("long poll", waiting.await.unwrap()).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let woken: LoginStatus = serde_json::from_str(&body).unwrap();
    assert_eq!(woken.state, LoginState::Scanned);

    let scanned = status(desktop_app, &desktop, &mut answers).await;
    assert_eq!(scanned.state, LoginState::Scanned);
    assert_eq!(scanned.scanner, None);
    assert!(scanned.match_code.is_some());
    answers
        .keep("redeem", desktop_app.redeem(&desktop).await)
        .await;

    // Denied: still nothing.
    assert_eq!(
        phone_app.deny(phone, &desktop.id).await.status(),
        StatusCode::OK
    );
    let denied = status(desktop_app, &desktop, &mut answers).await;
    assert_eq!((denied.state, denied.scanner), (LoginState::Denied, None));
    let response = desktop_app
        .send(status_call(&desktop, "?since=2&wait=10"))
        .await;
    answers.keep("long poll after deny", response).await;
    redeem_and_cancel(desktop_app, &desktop, &mut answers).await;
    answers
}

/// Scan → approve → redeem: nothing before the redeem, the account with it.
async fn scan_approve_redeem(desktop_app: &TestApp, phone_app: &TestApp, phone: &Phone) {
    let mut answers = Answers::default();
    let desktop = new_desktop(desktop_app, &mut answers, "").await;
    assert_eq!(
        phone_app.scan(phone, &desktop.id).await.status(),
        StatusCode::OK
    );
    let scanned = status(desktop_app, &desktop, &mut answers).await;
    let code = scanned.match_code.unwrap();
    assert_eq!(
        phone_app.approve(phone, &desktop.id, code).await.status(),
        StatusCode::OK
    );
    let approved = status(desktop_app, &desktop, &mut answers).await;
    assert_eq!(
        (approved.state, approved.scanner),
        (LoginState::Approved, None)
    );
    answers.assert_no_username();

    // Redeemed: the desktop is signed in as the account, and may know it.
    let response = desktop_app.redeem(&desktop).await;
    assert_eq!(response.status(), StatusCode::OK);
    let redeemed: Redeemed = json(response).await;
    assert_eq!(redeemed.user.username, USERNAME);
}

#[tokio::test]
async fn the_desktop_learns_no_username_before_approval() {
    let app = test_app().await;
    let phone = phone_without_display_name(&app).await;
    scan_then_deny(&app, &app, &phone)
        .await
        .assert_no_username();
    scan_approve_redeem(&app, &app, &phone).await;
}

/// Only a display name the account chose, and that does not give the
/// username away, is shown before approval.
#[tokio::test]
async fn a_chosen_display_name_is_shown_one_containing_the_username_is_not() {
    let app = test_app().await;
    for (username, display_name, shown) in [
        ("dodo", "The Mad Hatter", Some("The Mad Hatter")),
        ("alice", "Alice Liddell", None),
        ("queen", "QUEEN", None),
    ] {
        let phone = app.phone(username, display_name).await;
        let desktop = app.desktop().await;
        assert_eq!(app.scan(&phone, &desktop.id).await.status(), StatusCode::OK);
        let status = app.poll(&desktop).await;
        assert_eq!(status.scanner.as_deref(), shown, "{display_name}");
        let code = status.match_code.unwrap();
        app.approve(&phone, &desktop.id, code).await;
        assert_eq!(app.poll(&desktop).await.scanner.as_deref(), shown);
        let redeemed: Redeemed = json(app.redeem(&desktop).await).await;
        assert_eq!(redeemed.user.display_name, display_name);
    }
}

/// The same through an application's login card (`/authorize`), and the
/// device flow, whose device hears only "pending" and then "denied".
#[tokio::test]
async fn an_application_or_a_device_learns_no_username_before_approval() {
    let app = test_app().await;
    let phone = phone_without_display_name(&app).await;
    let mut answers = Answers::default();

    let client_id = app
        .state
        .services
        .oidc
        .add_client(
            "Grafana",
            &["http://localhost:4000/callback".to_owned()],
            true,
        )
        .await
        .unwrap()
        .client_id;
    let authorize = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", client_id.as_str()),
            ("redirect_uri", "http://localhost:4000/callback"),
            ("response_type", "code"),
            ("scope", "openid profile"),
            ("state", "s"),
            // RFC 7636's example challenge.
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    let response = app
        .send(get(&format!("{}?{authorize}", paths::AUTHORIZE)))
        .await;
    let card = response
        .headers()
        .get(header::LOCATION)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let request = card.strip_prefix("/authorize?request=").unwrap().to_owned();
    answers.keep("/authorize", app.send(get(&card)).await).await;
    let desktop = new_desktop(&app, &mut answers, &format!("?authorization={request}")).await;
    assert_eq!(app.scan(&phone, &desktop.id).await.status(), StatusCode::OK);
    assert_eq!(status(&app, &desktop, &mut answers).await.scanner, None);
    assert_eq!(app.deny(&phone, &desktop.id).await.status(), StatusCode::OK);
    status(&app, &desktop, &mut answers).await;
    redeem_and_cancel(&app, &desktop, &mut answers).await;
    let resume = format!("{}?request={request}", paths::AUTHORIZE_RESUME);
    answers.keep("resume", app.send(get(&resume)).await).await;

    // The device flow: the phone looks the code up (its "scan"), denies.
    let client = crate::oidc::client(&app, true).await;
    let device = crate::oidc::device_code(&app, &client).await;
    answers.keep_text("device authorization", device.to_string());
    let device_code = device["device_code"].as_str().unwrap();
    let user_code = device["user_code"].as_str().unwrap();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("user_code", user_code)
        .finish();
    let page = app
        .send(phone.auth(get(&format!("{}?{query}", paths::DEVICE))))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let (_, pending) = crate::oidc::device_poll(&app, &client, device_code).await;
    assert_eq!(pending["error"], "authorization_pending");
    answers.keep_text("device poll", pending.to_string());
    let decide = Call::new(
        Method::POST,
        <app::server_fns::DecideDevice as ServerFn>::url(),
    )
    .header(header::ACCEPT, "text/html")
    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
    .body(format!("{query}&decision=deny").into_bytes());
    assert!(app.send(phone.auth(decide)).await.status().is_redirection());
    let (_, denied): (_, Value) = crate::oidc::device_poll(&app, &client, device_code).await;
    assert_eq!(denied["error"], "access_denied");
    answers.keep_text("device poll after deny", denied.to_string());

    answers.assert_no_username();
}

/// The same on instances sharing PostgreSQL and the Redis attempt store
/// (the desktop on one, the phone on the other); and what Redis keeps of
/// the attempt holds no username either.
#[tokio::test]
async fn with_the_redis_attempt_store_neither_the_desktop_nor_redis_holds_the_username() {
    let Some(database) = server::storage::testing::fresh_postgres().await else {
        return;
    };
    let Some(redis) = server::storage::testing::fresh_redis() else {
        return;
    };
    let mut apps = Vec::new();
    for _ in 0..2 {
        apps.push(
            test_app_with(ServeArgs {
                database: Some(database.clone()),
                redis: Some(redis.url.clone()),
                redis_prefix: Some(redis.prefix.clone()),
                ..ServeArgs::default()
            })
            .await,
        );
    }
    let [a, b] = [&apps[0], &apps[1]];
    let phone = phone_without_display_name(b).await;
    let mut answers = scan_then_deny(a, b, &phone).await;

    // A scanned attempt, as Redis stores it.
    let desktop = a.desktop().await;
    assert_eq!(b.scan(&phone, &desktop.id).await.status(), StatusCode::OK);
    let mut connection = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}attempt*", redis.prefix))
        .query_async(&mut connection)
        .await
        .unwrap();
    let mut attempts = 0;
    for key in keys {
        // An attempt is a hash: its version and its JSON.
        let fields: Vec<String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .unwrap_or_default();
        let value = fields.join("\n");
        attempts += usize::from(value.contains(&desktop.id));
        answers.keep_text(&format!("redis {key}"), value);
    }
    assert!(attempts >= 1, "the scanned attempt was not found in Redis");
    answers.assert_no_username();
    scan_approve_redeem(a, b, &phone).await;
}
