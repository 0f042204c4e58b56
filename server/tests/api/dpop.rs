//! DPoP (RFC 9449) through the real router: tokens bound to the client's
//! key, proofs checked as §4.3 says, the server's nonces, and the attacks
//! refused with nothing changed: a replayed proof (on the same instance
//! and on another), a proof for another URL or method, a stolen access
//! token without the key (as a bearer token, or with the thief's own
//! key), a stolen refresh token of a public client. (openid-client's own
//! DPoP runs in end2end/tests/oidc.spec.ts.)

use axum::http::{header, Method, StatusCode};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::{elliptic_curve::sec1::ToEncodedPoint, pkcs8::EncodePrivateKey, SecretKey};
use rand::rngs::OsRng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{
    helpers::*,
    oidc::{client, pkce, query, redirect_params, sign_in_for, Client, CALLBACK, ISSUER},
};

/// A client's DPoP key pair, making proofs as a client library does.
struct DpopKey {
    encoding: EncodingKey,
    jwk: Value,
}

impl DpopKey {
    fn new() -> Self {
        let secret = SecretKey::random(&mut OsRng);
        let point = secret.public_key().to_encoded_point(false);
        Self {
            encoding: EncodingKey::from_ec_der(secret.to_pkcs8_der().unwrap().as_bytes()),
            jwk: json!({
                "kty": "EC", "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
            }),
        }
    }

    /// A proof for `method` at `path`, with the server's `nonce` and (for a
    /// resource request) the access token's hash.
    fn proof(&self, method: &str, path: &str, nonce: Option<&str>, token: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(serde_json::from_value(self.jwk.clone()).unwrap());
        let mut claims = json!({
            "jti": uuid::Uuid::new_v4().to_string(),
            "htm": method,
            "htu": format!("{ISSUER}{path}"),
            "iat": server::domain::time::now_millis() / 1000,
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        if let Some(token) = token {
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())));
        }
        jsonwebtoken::encode(&header, &claims, &self.encoding).unwrap()
    }
}

/// A token request with a DPoP proof (the form as `oidc::token` builds it).
async fn token_with(
    app: &TestApp,
    client: &Client,
    form: &[(&str, &str)],
    proof: &str,
) -> (StatusCode, Option<String>, Value) {
    let mut pairs = form.to_vec();
    pairs.push(("client_id", &client.id));
    if let Some(secret) = &client.secret {
        pairs.push(("client_secret", secret));
    }
    let response = app
        .send(
            Call::new(Method::POST, paths::TOKEN)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("dpop", proof)
                .body(query(&pairs).into_bytes()),
        )
        .await;
    let status = response.status();
    let nonce = dpop_nonce(&response);
    (status, nonce, json(response).await)
}

fn dpop_nonce(response: &axum::response::Response) -> Option<String> {
    response
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// User info with the DPoP scheme and `proof` (`None`: as a bearer token).
async fn userinfo_with(
    app: &TestApp,
    token: &str,
    proof: Option<&str>,
) -> axum::response::Response {
    let call = Call::new(Method::GET, paths::USERINFO);
    let call = match proof {
        Some(proof) => call
            .header(header::AUTHORIZATION, format!("DPoP {token}"))
            .header("dpop", proof),
        None => call.bearer(token),
    };
    app.send(call).await
}

/// A server nonce, as the first proof without one is told it.
async fn first_nonce(app: &TestApp, client: &Client, key: &DpopKey) -> String {
    let (status, nonce, body) = token_with(
        app,
        client,
        &[("grant_type", "refresh_token"), ("refresh_token", "x")],
        &key.proof("POST", paths::TOKEN, None, None),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("use_dpop_nonce"))
    );
    nonce.expect("a DPoP-Nonce header")
}

/// A public client signed in with DPoP: its tokens, and the nonce to use.
struct Bound {
    client: Client,
    key: DpopKey,
    tokens: Value,
    nonce: String,
}

impl Bound {
    fn access(&self) -> &str {
        self.tokens["access_token"].as_str().unwrap()
    }

    /// A fresh proof of the client's own, for user info with its token.
    fn userinfo_proof(&self) -> String {
        self.key.proof(
            "GET",
            paths::USERINFO,
            Some(&self.nonce),
            Some(self.access()),
        )
    }

    /// User info, as the client itself asks for it.
    async fn userinfo(&self, app: &TestApp) -> axum::response::Response {
        userinfo_with(app, self.access(), Some(&self.userinfo_proof())).await
    }

    /// The refresh grant for `refresh_token`, with the client's own proof.
    async fn refresh(&self, app: &TestApp, refresh_token: &str) -> (StatusCode, Value) {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        let proof = self
            .key
            .proof("POST", paths::TOKEN, Some(&self.nonce), None);
        let (status, _, body) = token_with(app, &self.client, &form, &proof).await;
        (status, body)
    }
}

async fn dpop_sign_in(app: &TestApp) -> Bound {
    let client = client(app, true).await;
    let key = DpopKey::new();
    let phone = app.phone("alice", "Alice").await;
    let (verifier, challenge) = pkce();
    let params = vec![
        ("client_id", client.id.as_str()),
        ("redirect_uri", CALLBACK),
        ("response_type", "code"),
        ("scope", "openid profile offline_access"),
        ("state", "s"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let (back, _) = sign_in_for(app, &phone, &params).await;
    let code = redirect_params(&back)["code"].clone();
    let nonce = first_nonce(app, &client, &key).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, next_nonce, tokens) = token_with(
        app,
        &client,
        &form,
        &key.proof("POST", paths::TOKEN, Some(&nonce), None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "DPoP");
    Bound {
        client,
        key,
        tokens,
        nonce: next_nonce.expect("a fresh nonce with the tokens"),
    }
}

#[tokio::test]
async fn discovery_names_the_proof_algorithms() {
    let app = test_app().await;
    let doc = crate::oidc::discovery(&app).await;
    let algs = doc["dpop_signing_alg_values_supported"].as_array().unwrap();
    assert!(algs.contains(&json!("ES256")));
    assert!(!algs.iter().any(|a| a.as_str().unwrap().starts_with("HS")));
}

#[tokio::test]
async fn tokens_are_bound_to_the_key_that_proved_possession() {
    let app = test_app().await;
    let bound = dpop_sign_in(&app).await;
    let response = bound.userinfo(&app).await;
    assert_eq!(response.status(), StatusCode::OK);
    let info: Value = json(response).await;
    assert_eq!(info["preferred_username"], "alice");

    // The refresh token too (a public client's): with the key, a new pair.
    let (status, renewed) = bound
        .refresh(&app, bound.tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(renewed["token_type"], "DPoP");
}

#[tokio::test]
async fn a_proof_without_the_servers_nonce_is_told_one() {
    let app = test_app().await;
    let bound = dpop_sign_in(&app).await;
    let access = bound.access();
    for nonce in [None, Some("made-up"), Some("")] {
        let proof = bound.key.proof("GET", paths::USERINFO, nonce, Some(access));
        let response = userinfo_with(&app, access, Some(&proof)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with("DPoP error=\"use_dpop_nonce\""),
            "{challenge}"
        );
        let fresh = dpop_nonce(&response).expect("a DPoP-Nonce header");
        let proof = bound
            .key
            .proof("GET", paths::USERINFO, Some(&fresh), Some(access));
        assert_eq!(
            userinfo_with(&app, access, Some(&proof)).await.status(),
            StatusCode::OK
        );
    }
}

/// An attack on user info: 401 with this error, and user info still works
/// for the client with its key afterwards.
async fn refused_at_userinfo(
    app: &TestApp,
    bound: &Bound,
    response: axum::response::Response,
    error: &str,
) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = json(response).await;
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(bound.userinfo(app).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let app = test_app().await;
    let bound = dpop_sign_in(&app).await;
    let access = bound.access();
    let proof = bound.userinfo_proof();
    assert_eq!(
        userinfo_with(&app, access, Some(&proof)).await.status(),
        StatusCode::OK
    );
    let again = userinfo_with(&app, access, Some(&proof)).await;
    refused_at_userinfo(&app, &bound, again, "invalid_dpop_proof").await;
}

#[tokio::test]
async fn a_proof_for_another_url_or_method_is_refused() {
    let app = test_app().await;
    let bound = dpop_sign_in(&app).await;
    let access = bound.access();
    let nonce = Some(bound.nonce.as_str());
    for proof in [
        bound.key.proof("GET", paths::TOKEN, nonce, Some(access)),
        bound
            .key
            .proof("POST", paths::USERINFO, nonce, Some(access)),
        bound
            .key
            .proof("GET", "/oauth2/userinfo/other", nonce, Some(access)),
        // For another token.
        bound
            .key
            .proof("GET", paths::USERINFO, nonce, Some("another-token")),
    ] {
        let response = userinfo_with(&app, access, Some(&proof)).await;
        refused_at_userinfo(&app, &bound, response, "invalid_dpop_proof").await;
    }
    // Two proofs at once.
    let call = Call::new(Method::GET, paths::USERINFO)
        .header(header::AUTHORIZATION, format!("DPoP {access}"))
        .header("dpop", bound.userinfo_proof())
        .header("dpop", bound.userinfo_proof());
    let response = app.send(call).await;
    refused_at_userinfo(&app, &bound, response, "invalid_dpop_proof").await;
}

#[tokio::test]
async fn a_stolen_access_token_is_useless_without_the_key() {
    let app = test_app().await;
    let bound = dpop_sign_in(&app).await;
    let access = bound.access();
    // As a bearer token.
    let response = userinfo_with(&app, access, None).await;
    refused_at_userinfo(&app, &bound, response, "invalid_token").await;
    // With the thief's own key.
    let thief = DpopKey::new();
    let proof = thief.proof("GET", paths::USERINFO, Some(&bound.nonce), Some(access));
    let response = userinfo_with(&app, access, Some(&proof)).await;
    refused_at_userinfo(&app, &bound, response, "invalid_dpop_proof").await;
    // In a form body (a bearer token's other place).
    let response = app
        .send(
            Call::new(Method::POST, paths::USERINFO)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(query(&[("access_token", access)]).into_bytes()),
        )
        .await;
    refused_at_userinfo(&app, &bound, response, "invalid_token").await;
}

fn invalid_grant((status, body): (StatusCode, Value)) {
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
}

#[tokio::test]
async fn a_stolen_public_refresh_token_is_useless_without_the_key() {
    let app = test_app().await;
    let bound = dpop_sign_in(&app).await;
    let refresh = bound.tokens["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let thief = DpopKey::new();
    let thief_nonce = first_nonce(&app, &bound.client, &thief).await;
    let proof = thief.proof("POST", paths::TOKEN, Some(&thief_nonce), None);
    let (status, _, body) = token_with(&app, &bound.client, &form, &proof).await;
    invalid_grant((status, body));
    // Without any proof.
    invalid_grant(crate::oidc::refresh(&app, &bound.client, refresh).await);
    // The token was not used up: the client, with its key, still refreshes.
    let (status, renewed) = bound.refresh(&app, refresh).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
}

#[tokio::test]
async fn a_proof_replayed_on_another_instance_is_refused() {
    let Some(apps) = cluster(2).await else { return };
    let [a, b] = [&apps[0], &apps[1]];
    let bound = dpop_sign_in(a).await;
    let access = bound.access();
    let proof = bound.userinfo_proof();
    assert_eq!(
        userinfo_with(a, access, Some(&proof)).await.status(),
        StatusCode::OK
    );
    // B takes A's nonce, and refuses A's proof again.
    let response = userinfo_with(b, access, Some(&proof)).await;
    refused_at_userinfo(b, &bound, response, "invalid_dpop_proof").await;
}

#[tokio::test]
async fn revocation_checks_a_proof_sent_along() {
    let app = test_app().await;
    let bound = dpop_sign_in(&app).await;
    let revoke = |token: &str, proof: String| {
        Call::new(Method::POST, paths::REVOKE)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("dpop", proof)
            .body(query(&[("token", token), ("client_id", &bound.client.id)]).into_bytes())
    };
    let refresh = bound.tokens["refresh_token"].as_str().unwrap();
    let wrong = bound
        .key
        .proof("POST", paths::TOKEN, Some(&bound.nonce), None);
    let response = app.send(revoke(refresh, wrong)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = json(response).await;
    assert_eq!(body["error"], "invalid_dpop_proof");
    // Refused, it revoked nothing: the refresh token still works …
    let (status, renewed) = bound.refresh(&app, refresh).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    // … and a right proof revokes the new one.
    let refresh = renewed["refresh_token"].as_str().unwrap();
    let right = bound
        .key
        .proof("POST", paths::REVOKE, Some(&bound.nonce), None);
    assert_eq!(
        app.send(revoke(refresh, right)).await.status(),
        StatusCode::OK
    );
    invalid_grant(bound.refresh(&app, refresh).await);
}
