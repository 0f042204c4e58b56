//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0) to a real
//! HTTP receiver, as an app would run one: each logout token is verified
//! against the provider's JWKS with `jsonwebtoken`, and its claims checked
//! as §2.6 says a relying party must. The person signs out, revokes the
//! app on `/m`, and is disabled by an administrator; an app that answers
//! with an error is tried again; one that never answers slows nothing.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    extract::{Form, State},
    http::{header, Method, StatusCode},
    routing::post,
    Router,
};
use jsonwebtoken::{jwk::JwkSet, Algorithm, DecodingKey, Validation};
use leptos::server_fn::ServerFn;
use serde_json::Value;
use server::domain::{
    audit::AuditEvent,
    caller::Caller,
    oidc::{LogoutUris, BACKCHANNEL_LOGOUT_EVENT},
};
use server::storage::AuditQuery;
use tokio::sync::{mpsc, Mutex};

use crate::{
    helpers::*,
    oidc::{code_params, exchange, pkce, redirect_params, sign_in_for, Client, ISSUER},
};

/// A relying party's back-channel logout endpoint on a real port: every
/// logout token it is POSTed comes out of `tokens`; the first `refuse`
/// deliveries are answered 503.
struct Receiver {
    url: String,
    tokens: Mutex<mpsc::UnboundedReceiver<String>>,
}

#[derive(Clone)]
struct Endpoint {
    tokens: mpsc::UnboundedSender<String>,
    refuse: Arc<AtomicU32>,
}

async fn logout(
    State(endpoint): State<Endpoint>,
    Form(form): Form<HashMap<String, String>>,
) -> StatusCode {
    let refused = endpoint
        .refuse
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if refused {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match form.get("logout_token") {
        Some(token) => {
            let _ = endpoint.tokens.send(token.clone());
            StatusCode::OK
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn receiver(refuse: u32) -> Receiver {
    let (tx, rx) = mpsc::unbounded_channel();
    let endpoint = Endpoint {
        tokens: tx,
        refuse: Arc::new(AtomicU32::new(refuse)),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = Router::new()
        .route("/backchannel-logout", post(logout))
        .with_state(endpoint);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Receiver {
        url: format!("http://127.0.0.1:{port}/backchannel-logout"),
        tokens: Mutex::new(rx),
    }
}

impl Receiver {
    /// The next logout token the app receives (within 15 s: the first try
    /// is at once, a retry within seconds).
    async fn next(&self) -> String {
        tokio::time::timeout(Duration::from_secs(15), self.tokens.lock().await.recv())
            .await
            .expect("a logout token within 15 s")
            .expect("the receiver runs")
    }

    /// Nothing more arrives for a while.
    async fn quiet(&self) {
        let more =
            tokio::time::timeout(Duration::from_secs(3), self.tokens.lock().await.recv()).await;
        assert!(more.is_err(), "an unexpected logout token: {more:?}");
    }
}

/// A confidential app named Grafana whose back-channel logout URI is `uri`.
async fn app_logging_out_at(app: &TestApp, uri: &str) -> Client {
    let logout = LogoutUris {
        post_logout: Vec::new(),
        backchannel: Some(uri.to_owned()),
    };
    crate::oidc::client_logging_out(app, logout).await
}

/// The phone signs the desktop in to the app: the ID token's claims and
/// the desktop's qrlogin session.
async fn signed_in_to(app: &TestApp, client: &Client, phone: &Phone) -> (Value, String) {
    let (verifier, challenge) = pkce();
    let params = code_params(client, &challenge);
    let (back, session) = sign_in_for(app, phone, &params).await;
    let code = redirect_params(&back)["code"].clone();
    let (status, tokens) = exchange(app, client, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims =
        crate::oidc::verify_id_token(app, tokens["id_token"].as_str().unwrap(), &client.id).await;
    assert!(
        claims["sid"].as_str().is_some_and(|sid| !sid.is_empty()),
        "{claims}"
    );
    (claims, session)
}

/// Validates a logout token as Back-Channel Logout 1.0 §2.6 tells a
/// relying party to, with the keys the JWKS publishes; its claims.
async fn verified(app: &TestApp, client: &Client, token: &str) -> Value {
    let response = app.send(Call::new(Method::GET, paths::JWKS)).await;
    let jwks: JwkSet = serde_json::from_slice(&body_bytes(response).await).unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("a published key");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[&client.id]);
    validation.set_required_spec_claims(&["iss", "aud", "exp", "iat"]);
    let claims =
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .expect("a valid logout token")
            .claims;
    assert!(
        claims["jti"].as_str().is_some_and(|j| !j.is_empty()),
        "{claims}"
    );
    assert_eq!(
        claims["events"][BACKCHANNEL_LOGOUT_EVENT],
        serde_json::json!({}),
        "{claims}"
    );
    assert!(claims.get("nonce").is_none(), "{claims}");
    assert!(
        claims.get("sub").is_some() || claims.get("sid").is_some(),
        "{claims}"
    );
    claims
}

/// An app with a back-channel logout receiver (refusing its first
/// `refuse` deliveries), and alice signed in to it on a desktop.
struct Scene {
    app: TestApp,
    receiver: Receiver,
    client: Client,
    alice: Phone,
    /// The ID token's claims.
    id_token: Value,
    /// The desktop's qrlogin session.
    session: String,
}

async fn scene(refuse: u32) -> Scene {
    let app = test_app().await;
    let receiver = receiver(refuse).await;
    let client = app_logging_out_at(&app, &receiver.url).await;
    let alice = app.phone("alice", "Alice").await;
    let (id_token, session) = signed_in_to(&app, &client, &alice).await;
    Scene {
        app,
        receiver,
        client,
        alice,
        id_token,
        session,
    }
}

impl Scene {
    /// The next logout token the app receives, verified.
    async fn told(&self) -> Value {
        verified(&self.app, &self.client, &self.receiver.next().await).await
    }

    /// The desktop signs out of qrlogin.
    async fn sign_out_desktop(&self) {
        let response = self
            .app
            .send(Call::new(Method::DELETE, paths::SESSION).cookie(&self.session))
            .await;
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// A logout token for every session of alice's with the app.
    fn for_every_session(&self, claims: &Value) {
        assert_eq!(claims["sub"], self.id_token["sub"]);
        assert!(claims.get("sid").is_none(), "{claims}");
    }
}

#[tokio::test]
async fn signing_out_tells_the_app_with_the_sessions_sid() {
    let scene = scene(0).await;
    scene.sign_out_desktop().await;
    let claims = scene.told().await;
    assert_eq!(claims["sid"], scene.id_token["sid"]);
    assert_eq!(claims["sub"], scene.id_token["sub"]);
    // The phone's own session was not the app's: its sign-out tells nobody.
    let app = &scene.app;
    app.send(scene.alice.auth(Call::new(Method::DELETE, paths::SESSION)))
        .await;
    scene.receiver.quiet().await;

    let sent = audit(app, AuditEvent::AppLogoutSent).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].client_id.as_deref(), Some(scene.client.id.as_str()));
    assert_eq!(sent[0].actor.as_deref(), Some("back-channel logout"));
}

#[tokio::test]
async fn revoking_the_app_on_the_phone_tells_it() {
    let scene = scene(0).await;
    // `/m`'s "Revoke" on the app, as its form posts it.
    let body = query(&[("client_id", &scene.client.id)]);
    let response = scene
        .app
        .send(
            scene.alice.auth(
                Call::new(Method::POST, app::server_fns::WithdrawApp::url())
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::ACCEPT, "text/html")
                    .body(body.into_bytes()),
            ),
        )
        .await;
    assert!(response.status().is_redirection(), "{}", response.status());
    scene.for_every_session(&scene.told().await);
}

impl Scene {
    /// An administrator's API call (with a write token), answered 204.
    async fn as_administrator(&self, method: Method, path: &str) {
        let (_, token) = self
            .app
            .state
            .services
            .add_admin_token(
                &operator(),
                "ci",
                server::services::admin::TokenScope::Write,
                1,
            )
            .await
            .unwrap();
        let call = Call::new(method, path).bearer(&server::services::admin::token_text(&token));
        assert_eq!(self.app.send(call).await.status(), StatusCode::NO_CONTENT);
    }
}

#[tokio::test]
async fn an_account_disabled_by_an_administrator_is_logged_out_of_its_apps() {
    let scene = scene(0).await;
    scene
        .as_administrator(Method::POST, "/api/v1/admin/accounts/alice/disable")
        .await;
    scene.for_every_session(&scene.told().await);
}

#[tokio::test]
async fn a_removed_account_is_logged_out_of_its_apps() {
    let scene = scene(0).await;
    scene
        .as_administrator(Method::DELETE, "/api/v1/admin/accounts/alice")
        .await;
    scene.for_every_session(&scene.told().await);
}

#[tokio::test]
async fn an_app_that_fails_is_tried_again_and_each_try_is_audited() {
    let scene = scene(2).await;
    scene.sign_out_desktop().await;
    // Refused twice (503), taken on the third try, 1 s and 2 s later.
    let claims = scene.told().await;
    assert_eq!(claims["sid"], scene.id_token["sid"]);
    let app = &scene.app;
    assert_eq!(audit(app, AuditEvent::AppLogoutFailed).await.len(), 2);
    assert_eq!(audit(app, AuditEvent::AppLogoutSent).await.len(), 1);
    scene.receiver.quiet().await;
}

#[tokio::test]
async fn an_app_that_never_answers_slows_no_sign_out_and_no_sign_in() {
    // Takes connections and never answers them.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let app = test_app().await;
    let client = app_logging_out_at(&app, &format!("http://127.0.0.1:{port}/logout")).await;
    let alice = app.phone("alice", "Alice").await;
    for _ in 0..3 {
        let (_, session) = signed_in_to(&app, &client, &alice).await;
        let signed_out = tokio::time::timeout(
            Duration::from_secs(2),
            app.send(Call::new(Method::DELETE, paths::SESSION).cookie(&session)),
        )
        .await
        .expect("the sign-out does not wait for the app");
        assert!(signed_out.status().is_success());
    }
    // A plain sign-in meanwhile is not held up either.
    let desktop = tokio::time::timeout(Duration::from_secs(2), app.signed_in_desktop(&alice))
        .await
        .expect("sign-ins do not wait for the app");
    assert!(!desktop.is_empty());
}

async fn audit(app: &TestApp, event: AuditEvent) -> Vec<server::domain::audit::AuditRecord> {
    // The trail is written behind the request: wait for the rows.
    for _ in 0..50 {
        app.state.services.audit.flush().await;
        let rows = audit_events(
            app,
            AuditQuery {
                event: Some(event),
                ..AuditQuery::default()
            },
        )
        .await;
        if !rows.is_empty() {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Vec::new()
}

fn operator() -> Caller {
    Caller::new(None, "test").acting_as("operator")
}

fn query(pairs: &[(&str, &str)]) -> String {
    crate::oidc::query(pairs)
}

#[tokio::test]
async fn a_delivery_to_an_app_removed_meanwhile_is_dropped() {
    let scene = scene(1).await;
    scene.sign_out_desktop().await;
    let app = &scene.app;
    // The first try was refused; the app is removed before the retry.
    assert_eq!(audit(app, AuditEvent::AppLogoutFailed).await.len(), 1);
    app.state
        .services
        .oidc
        .remove_client_as(&scene.client.id, &operator())
        .await
        .unwrap();
    scene.receiver.quiet().await;
    // Not tried again: no second failure, nothing sent.
    assert_eq!(audit(app, AuditEvent::AppLogoutFailed).await.len(), 1);
    assert!(audit(app, AuditEvent::AppLogoutSent).await.is_empty());
}
