//! An account's end (security review, finding 3): removing one removes
//! everything that hangs off it, in one transaction, and its id and
//! OpenID Connect subject are never anyone else's. Before, SQLite gave a
//! removed account's id to the next one, which inherited its passkeys,
//! consents and refresh tokens. Also `qrlogin user reset` (finding 7).
//!
//! The passkey is made by a small software authenticator below: it makes a
//! discoverable credential and answers a username-less sign-in with its
//! user handle, as a phone does (webauthn-authenticator-rs's keeps no
//! resident keys, so it cannot sign in without a username).

use axum::http::{header, Method, StatusCode};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use leptos::server_fn::ServerFn;
use p256::ecdsa::{signature::Signer, Signature, SigningKey};
use serde_json::{json, Value};
use server::{
    config::ServeArgs,
    domain::{audit::AuditEvent, caller::Caller},
    storage::{self, DatabaseUrl},
};
use sha2::{Digest, Sha256};

use crate::{helpers::*, oidc};

const ORIGIN: &str = "http://localhost:3000";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A CBOR item's head: major type and length.
fn cbor_head(major: u8, len: usize) -> Vec<u8> {
    let major = major << 5;
    match u8::try_from(len) {
        Ok(small) if small < 24 => vec![major | small],
        Ok(byte) => vec![major | 24, byte],
        Err(_) => [vec![major | 25], (len as u16).to_be_bytes().to_vec()].concat(),
    }
}

fn cbor_bytes(bytes: &[u8]) -> Vec<u8> {
    [cbor_head(2, bytes.len()), bytes.to_vec()].concat()
}

fn cbor_text(text: &str) -> Vec<u8> {
    [cbor_head(3, text.len()), text.as_bytes().to_vec()].concat()
}

/// One discoverable P-256 passkey for `localhost`, with user verification.
pub(crate) struct SoftPasskey {
    key: SigningKey,
    id: Vec<u8>,
    user_handle: Vec<u8>,
}

impl SoftPasskey {
    fn client_data(kind: &str, options: &Value) -> String {
        json!({
            "type": kind,
            "challenge": options["publicKey"]["challenge"],
            "origin": ORIGIN,
            "crossOrigin": false,
        })
        .to_string()
    }

    /// `navigator.credentials.create(options)`: the passkey and its answer
    /// ("none" attestation).
    fn create(options: &Value) -> (Self, String) {
        let user_handle = URL_SAFE_NO_PAD
            .decode(options["publicKey"]["user"]["id"].as_str().unwrap())
            .unwrap();
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let id = uuid::Uuid::new_v4().as_bytes().to_vec();
        let point = key.verifying_key().to_encoded_point(false);
        // COSE_Key {kty: EC2, alg: ES256, crv: P-256, x, y}
        let cose = [
            vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21],
            cbor_bytes(point.x().unwrap()),
            vec![0x22],
            cbor_bytes(point.y().unwrap()),
        ]
        .concat();
        let auth_data = [
            Sha256::digest(b"localhost").to_vec(),
            // user present, user verified, attested credential data
            vec![0x45],
            0u32.to_be_bytes().to_vec(),
            vec![0; 16],
            (id.len() as u16).to_be_bytes().to_vec(),
            id.clone(),
            cose,
        ]
        .concat();
        let attestation = [
            vec![0xa3],
            cbor_text("fmt"),
            cbor_text("none"),
            cbor_text("attStmt"),
            vec![0xa0],
            cbor_text("authData"),
            cbor_bytes(&auth_data),
        ]
        .concat();
        let client_data = Self::client_data("webauthn.create", options);
        let credential = json!({
            "id": b64(&id),
            "rawId": b64(&id),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(client_data.as_bytes()),
            },
            "extensions": {},
        });
        let passkey = Self {
            key,
            id,
            user_handle,
        };
        (passkey, credential.to_string())
    }

    /// `navigator.credentials.get(options)` with no username: an assertion
    /// that names the user by its handle.
    fn assert(&self, options: &Value, counter: u32) -> String {
        let auth_data = [
            Sha256::digest(b"localhost").to_vec(),
            vec![0x05],
            counter.to_be_bytes().to_vec(),
        ]
        .concat();
        let client_data = Self::client_data("webauthn.get", options);
        let signed = [
            auth_data.clone(),
            Sha256::digest(client_data.as_bytes()).to_vec(),
        ]
        .concat();
        let signature: Signature = self.key.sign(&signed);
        json!({
            "id": b64(&self.id),
            "rawId": b64(&self.id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(client_data.as_bytes()),
                "signature": b64(signature.to_der().as_bytes()),
                "userHandle": b64(&self.user_handle),
            },
            "extensions": {},
        })
        .to_string()
    }
}

/// A server function called as a page's script calls it.
fn server_fn<F: ServerFn>(pairs: &[(&str, &str)]) -> Call {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    Call::new(Method::POST, F::url())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.into_bytes())
}

/// A ceremony's id and its WebAuthn options.
async fn ceremony(app: &TestApp, call: Call) -> (String, Value) {
    let response = app.send(call).await;
    assert_eq!(response.status(), StatusCode::OK);
    let started: Value = json(response).await;
    let options = serde_json::from_str(started["options"].as_str().unwrap()).unwrap();
    (started["ceremony"].as_str().unwrap().to_owned(), options)
}

/// Adds a passkey to the phone's account, made by the soft authenticator.
pub(crate) async fn add_passkey(app: &TestApp, phone: &Phone) -> SoftPasskey {
    let call = phone.auth(server_fn::<app::server_fns::PasskeyRegistration>(&[]));
    let (ceremony, options) = ceremony(app, call).await;
    let (passkey, credential) = SoftPasskey::create(&options);
    let pairs = [
        ("ceremony", ceremony.as_str()),
        ("name", "Phone"),
        ("credential", &credential),
    ];
    let response = app
        .send(phone.auth(server_fn::<app::server_fns::AddPasskey>(&pairs)))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    passkey
}

/// Signs in with the passkey alone (no username): the session cookie, or
/// the refusal's status.
pub(crate) async fn passkey_sign_in(
    app: &TestApp,
    passkey: &SoftPasskey,
    counter: u32,
) -> Result<String, StatusCode> {
    let call = server_fn::<app::server_fns::PasskeySignInOptions>(&[]);
    let (ceremony, options) = ceremony(app, call).await;
    let assertion = passkey.assert(&options, counter);
    let pairs = [("ceremony", ceremony.as_str()), ("credential", &assertion)];
    let response = app
        .send(server_fn::<app::server_fns::PasskeySignIn>(&pairs))
        .await;
    match response.status() {
        StatusCode::OK => Ok(cookie_pair(&set_cookie(&response))),
        status => {
            assert!(response.headers().get(header::SET_COOKIE).is_none());
            Err(status)
        }
    }
}

/// Who the session cookie signs in, if anyone.
pub(crate) async fn me(app: &TestApp, cookie: &str) -> Option<String> {
    let response = app
        .send(Call::new(Method::GET, paths::ME).cookie(cookie))
        .await;
    if response.status() == StatusCode::UNAUTHORIZED {
        return None;
    }
    let me: app::api::Me = json(response).await;
    Some(me.user.username)
}

/// The ID token's claims, as any holder can read them.
fn claims(id_token: &str) -> Value {
    let payload = id_token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

pub(crate) fn operator() -> Caller {
    Caller::new(None, "test operator")
}

/// Bob, with a passkey, an app holding an offline refresh token, and a
/// device he approved, is removed; Carol is added after him. Nothing of
/// Bob's is Carol's, nothing of Bob's works, and nothing of Bob's is left.
async fn a_removed_accounts_identity_is_never_the_next_ones(app: &TestApp, database: &str) {
    let accounts = &app.state.services.accounts;
    let client = oidc::client(app, true).await;
    let bob_phone = app.phone("bob", "Bob").await;
    let bob = accounts.account_named("bob").await.unwrap();

    // The app: Bob signs in and consents; offline_access gives it a
    // refresh token; Bob's `sub` is his subject, not his id.
    let (verifier, challenge) = oidc::pkce();
    let params = oidc::code_params(&client, &challenge);
    let (back, bob_desktop) = oidc::sign_in_for(app, &bob_phone, &params).await;
    let code = oidc::redirect_params(&back)["code"].clone();
    let (status, tokens) = oidc::exchange(app, &client, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let bob_claims = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(bob_claims["sub"], bob.subject.as_str());
    assert_ne!(bob_claims["sub"], bob.id.to_string());
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let access_token = tokens["access_token"].as_str().unwrap().to_owned();
    // Consented: the app gets a code for Bob without asking the phone.
    let response = oidc::authorize(app, &params, Some(&bob_desktop)).await;
    assert!(oidc::redirect_params(&oidc::location(&response)).contains_key("code"));

    // A device (RFC 8628) Bob approved, whose code was not redeemed yet.
    let device = oidc::device_code(app, &client).await;
    oidc::decide(
        app,
        &bob_phone,
        device["user_code"].as_str().unwrap(),
        "approve",
    )
    .await;

    // Bob's passkey signs Bob in.
    let passkey = add_passkey(app, &bob_phone).await;
    let cookie = passkey_sign_in(app, &passkey, 1).await.unwrap();
    assert_eq!(me(app, &cookie).await.as_deref(), Some("bob"));
    let handle = uuid::Uuid::from_slice(&passkey.user_handle).unwrap();

    app.state
        .services
        .remove_account("bob", &operator())
        .await
        .unwrap();
    let carol_phone = app.phone("carol", "Carol").await;
    let carol = accounts.account_named("carol").await.unwrap();
    assert!(carol.id > bob.id, "carol {} after bob {}", carol.id, bob.id);
    assert_ne!(carol.subject, bob.subject);

    // Nothing of Bob's works, for anyone.
    app_and_device_refused(app, &client, &refresh_token, &access_token, &device).await;
    assert_eq!(
        passkey_sign_in(app, &passkey, 2).await,
        Err(StatusCode::FORBIDDEN)
    );
    for session in [&cookie, &bob_desktop] {
        assert_eq!(me(app, session).await, None);
    }

    // Carol is asked before the app hears of her, and is not Bob to it.
    let carol_desktop = app.signed_in_desktop(&carol_phone).await;
    let response = oidc::authorize(app, &params, Some(&carol_desktop)).await;
    let card = oidc::location(&response);
    assert!(card.starts_with("/authorize?request="), "{card}");
    let (verifier, challenge) = oidc::pkce();
    let params = oidc::code_params(&client, &challenge);
    let (back, _) = oidc::sign_in_for(app, &carol_phone, &params).await;
    let code = oidc::redirect_params(&back)["code"].clone();
    let (status, tokens) = oidc::exchange(app, &client, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let carol_claims = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(carol_claims["sub"], carol.subject.as_str());
    assert_eq!(carol_claims["preferred_username"], "carol");

    // Nothing keyed by Bob is left; the audit trail keeps his removal.
    let stores = storage::open(&DatabaseUrl::parse(database).unwrap(), None)
        .await
        .unwrap();
    let now = server::domain::time::now_millis();
    let id = bob.id.to_string();
    for kind in [
        "account_settings",
        "passkey_user",
        "passkey",
        "consent",
        "grant",
    ] {
        for (key, record) in stores.provider.list(kind, "", now).await.unwrap() {
            let owner = key.split(':').next().unwrap();
            assert!(
                owner != id && owner != handle.to_string(),
                "{kind} {key} of bob's is left: {}",
                record.value
            );
        }
    }
    let removed = audit_events(
        app,
        AuditQuery {
            account_id: Some(bob.id),
            event: Some(AuditEvent::AccountRemoved),
            ..AuditQuery::default()
        },
    )
    .await;
    assert_eq!(removed.len(), 1);
}

pub(crate) fn passkey_server() -> ServeArgs {
    ServeArgs {
        public_url: Some(ORIGIN.into()),
        ..ServeArgs::default()
    }
}

#[tokio::test]
async fn on_sqlite_a_removed_accounts_identity_is_never_the_next_ones() {
    let app = test_app_with(passkey_server()).await;
    let database = format!("sqlite://{}", app.dir.path().join("qrlogin.db").display());
    a_removed_accounts_identity_is_never_the_next_ones(&app, &database).await;
}

#[tokio::test]
async fn on_postgres_a_removed_accounts_identity_is_never_the_next_ones() {
    let Some(database) = storage::testing::fresh_postgres().await else {
        return;
    };
    let Some(redis) = storage::testing::fresh_redis() else {
        return;
    };
    let app = test_app_with(ServeArgs {
        database: Some(database.clone()),
        redis: Some(redis.url),
        redis_prefix: Some(redis.prefix),
        ..passkey_server()
    })
    .await;
    a_removed_accounts_identity_is_never_the_next_ones(&app, &database).await;
}

/// The app's refresh and access tokens and the device approved before are
/// all refused: `invalid_grant`, 401, `invalid_grant`.
pub(crate) async fn app_and_device_refused(
    app: &TestApp,
    client: &oidc::Client,
    refresh_token: &str,
    access_token: &str,
    device: &serde_json::Value,
) {
    let (status, answer) = oidc::refresh(app, client, refresh_token).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{answer}"
    );
    assert_eq!(
        oidc::userinfo(app, access_token).await,
        StatusCode::UNAUTHORIZED
    );
    let device_code = device["device_code"].as_str().unwrap();
    let (status, answer) = oidc::device_poll(app, client, device_code).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{answer}"
    );
}
