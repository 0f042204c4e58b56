//! The OpenID Foundation's conformance plans, module by module, through
//! the real router: each test is named after its module
//! (`oidcc-response-type-missing` → `oidcc_response_type_missing`), makes
//! the module's requests and asserts what the module asserts (read in the
//! suite's `openid/*.java` and `condition/client/*.java`). As in the
//! suite, the relying party is a confidential client authenticating with
//! `client_secret_basic`, without PKCE unless the module sends it; ID
//! tokens are checked against the JWKS with `jsonwebtoken`.
//!
//! Where a module ends in a screenshot a person reviews (an error page
//! instead of a redirect), the test asserts the page and that nothing
//! went to the client.

use std::collections::HashMap;

use axum::http::{header, Method, StatusCode};
use base64::{engine::general_purpose::STANDARD, Engine};
use serde_json::Value;

use crate::{
    helpers::*,
    oidc::{
        authorize, card_request, client, location, query, redirect_params, sign_in_with, token_raw,
        verify_id_token, Client, CALLBACK, ISSUER,
    },
};

/// 10 random alphanumerics, as the suite's `state` and `nonce`.
fn random_alnum() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

/// The suite's authorization request (`CreateAuthorizationRequestSteps`):
/// its parameters in alphabetical order, `extra` added (replacing one of
/// the same name).
fn standard_params<'a>(
    client: &'a Client,
    state: &'a str,
    nonce: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut params = vec![
        ("client_id", client.id.as_str()),
        ("nonce", nonce),
        ("redirect_uri", CALLBACK),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", state),
    ];
    for (name, value) in extra {
        params.retain(|(n, _)| n != name);
        params.push((name, value));
    }
    params
}

/// `Authorization: Basic` as RFC 6749 §2.3.1 builds it (form-encoded id
/// and secret).
fn basic(client: &Client) -> String {
    let enc = |s: &str| query(&[("x", s)])[2..].to_owned();
    STANDARD.encode(format!(
        "{}:{}",
        enc(&client.id),
        enc(client.secret.as_deref().unwrap_or(""))
    ))
}

/// What the suite's standard flow checks on the callback
/// (`CheckMatchingCallbackParameters`, `ValidateIssIfPresentInAuthorizationResponse`,
/// `CheckIfAuthorizationEndpointError`, `CheckStateInAuthorizationResponse`):
/// back at the registered URI, `iss` the issuer, no error, `state` exact, a
/// code of at least 128 bits.
fn checked_callback(location: &str, state: &str) -> HashMap<String, String> {
    assert!(location.starts_with(CALLBACK), "{location}");
    let got = redirect_params(location);
    assert_eq!(got.get("iss").map(String::as_str), Some(ISSUER), "{got:?}");
    assert!(!got.contains_key("error"), "{got:?}");
    assert_eq!(got.get("state").map(String::as_str), Some(state), "{got:?}");
    assert!(got["code"].len() >= 22, "{got:?}");
    got
}

/// An error redirect as the suite checks one: at the registered URI, the
/// error in the query, `state` echoed exactly, no code.
fn error_callback(location: &str, state: Option<&str>) -> HashMap<String, String> {
    assert!(location.starts_with(CALLBACK), "{location}");
    let got = redirect_params(location);
    assert_eq!(got.get("state").map(String::as_str), state, "{got:?}");
    assert!(!got.contains_key("code"), "{got:?}");
    assert_eq!(got.get("iss").map(String::as_str), Some(ISSUER), "{got:?}");
    got
}

/// The token request and what the suite checks on its answer and on the
/// ID token (`PerformStandardIdTokenChecks`), then user info by GET with
/// the token type as returned. Returns the token response.
async fn tokens_and_userinfo(app: &TestApp, client: &Client, code: &str, nonce: &str) -> Value {
    let body = query(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CALLBACK),
    ]);
    let (status, tokens) = token_raw(app, &body, Some(&basic(client))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens["access_token"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    let token_type = tokens["token_type"].as_str().unwrap();
    assert!(token_type.eq_ignore_ascii_case("bearer"), "{tokens}");
    let expires_in = tokens["expires_in"].as_u64().unwrap();
    assert!(expires_in > 0 && expires_in <= 31_536_000);
    let claims = verify_id_token(app, tokens["id_token"].as_str().unwrap(), &client.id).await;
    assert_eq!(claims["nonce"], nonce);
    let sub = claims["sub"].as_str().unwrap();
    assert!(!sub.is_empty() && sub.len() <= 255 && sub.bytes().all(|b| b.is_ascii_graphic()));
    let now = server::domain::time::now_millis() / 1000;
    assert!(claims["exp"].as_u64().unwrap() > now);
    assert!(claims["iat"].as_u64().unwrap() <= now + 300);

    let response = app
        .send(Call::new(Method::GET, paths::USERINFO).header(
            header::AUTHORIZATION,
            format!("{token_type} {}", tokens["access_token"].as_str().unwrap()),
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let info: Value = json(response).await;
    assert_eq!(info["sub"], claims["sub"]);
    tokens
}

/// The standard flow with `extra` parameters: a fresh browser, the phone
/// approves, the code goes back, tokens and user info.
async fn standard_flow(extra: &[(&str, &str)]) {
    let app = test_app().await;
    let client = client(&app, false).await;
    let phone = app.phone("alice", "Alice").await;
    let (state, nonce) = (random_alnum(), random_alnum());
    let params = standard_params(&client, &state, &nonce, extra);
    let request = card_request(&app, &params).await;
    let (back, _) = sign_in_with(&app, &phone, &request).await;
    let got = checked_callback(&back, &state);
    tokens_and_userinfo(&app, &client, &got["code"], &nonce).await;
}

/// A request that must not go back to the client: a page, no redirect.
async fn refused_with_a_page(response: axum::response::Response) -> String {
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get(header::LOCATION).is_none());
    String::from_utf8(body_bytes(response).await).unwrap()
}

#[tokio::test]
async fn oidcc_server() {
    standard_flow(&[]).await;
}

#[tokio::test]
async fn oidcc_response_type_missing() {
    let app = test_app().await;
    let client = client(&app, false).await;
    let (state, nonce) = (random_alnum(), random_alnum());
    let mut params = standard_params(&client, &state, &nonce, &[]);
    params.retain(|(name, _)| *name != "response_type");
    let got = error_callback(
        &location(&authorize(&app, &params, None).await),
        Some(&state),
    );
    assert!(
        ["invalid_request", "unsupported_response_type"].contains(&got["error"].as_str()),
        "{got:?}"
    );
}

#[tokio::test]
async fn oidcc_ensure_request_without_nonce_succeeds_for_code_flow() {
    let app = test_app().await;
    let client = client(&app, false).await;
    let phone = app.phone("alice", "Alice").await;
    let state = random_alnum();
    let mut params = standard_params(&client, &state, "", &[]);
    params.retain(|(name, _)| *name != "nonce");
    let request = card_request(&app, &params).await;
    let (back, _) = sign_in_with(&app, &phone, &request).await;
    let got = checked_callback(&back, &state);
    let body = query(&[
        ("grant_type", "authorization_code"),
        ("code", &got["code"]),
        ("redirect_uri", CALLBACK),
    ]);
    let (status, tokens) = token_raw(&app, &body, Some(&basic(&client))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify_id_token(&app, tokens["id_token"].as_str().unwrap(), &client.id).await;
    assert!(claims.get("nonce").is_none(), "{claims}");
}

#[tokio::test]
async fn oidcc_display_page() {
    standard_flow(&[("display", "page")]).await;
}

#[tokio::test]
async fn oidcc_display_popup() {
    standard_flow(&[("display", "popup")]).await;
}

#[tokio::test]
async fn oidcc_ensure_request_with_unknown_parameter_succeeds() {
    standard_flow(&[("extra", "foobar")]).await;
}

#[tokio::test]
async fn oidcc_claims_locales() {
    standard_flow(&[("claims_locales", "se")]).await;
}

#[tokio::test]
async fn oidcc_ensure_request_with_acr_values_succeeds() {
    standard_flow(&[("acr_values", "1 2")]).await;
}

#[tokio::test]
async fn oidcc_ensure_request_with_valid_pkce_succeeds() {
    let (verifier, challenge) = crate::oidc::pkce();
    let app = test_app().await;
    let client = client(&app, false).await;
    let phone = app.phone("alice", "Alice").await;
    let (state, nonce) = (random_alnum(), random_alnum());
    let params = standard_params(
        &client,
        &state,
        &nonce,
        &[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let request = card_request(&app, &params).await;
    let (back, _) = sign_in_with(&app, &phone, &request).await;
    let got = checked_callback(&back, &state);
    let body = query(&[
        ("grant_type", "authorization_code"),
        ("code", &got["code"]),
        ("redirect_uri", CALLBACK),
        ("code_verifier", &verifier),
    ]);
    let (status, tokens) = token_raw(&app, &body, Some(&basic(&client))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
}

#[tokio::test]
async fn oidcc_ensure_registered_redirect_uri() {
    let app = test_app().await;
    let client = client(&app, false).await;
    let (state, nonce) = (random_alnum(), random_alnum());
    let bad = format!("{CALLBACK}/{}", random_alnum());
    let params = standard_params(&client, &state, &nonce, &[("redirect_uri", &bad)]);
    let html = refused_with_a_page(authorize(&app, &params, None).await).await;
    assert!(html.contains("not registered"), "{html}");
}

#[tokio::test]
async fn oidcc_ensure_request_object_with_redirect_uri() {
    let app = test_app().await;
    let client = client(&app, false).await;
    let (state, nonce) = (random_alnum(), random_alnum());
    let object = unsigned_request_object(&client, &state, &nonce);
    let invalid = format!("{CALLBACK}_invalid");
    let params = vec![
        ("client_id", client.id.as_str()),
        ("redirect_uri", invalid.as_str()),
        ("request", object.as_str()),
        ("response_type", "code"),
        ("scope", "openid"),
    ];
    // Neither to the URI in the query nor to the one in the object.
    refused_with_a_page(authorize(&app, &params, None).await).await;
}

/// An `alg: none` request object with the whole request inside.
fn unsigned_request_object(client: &Client, state: &str, nonce: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    let claims = serde_json::json!({
        "iss": client.id, "aud": ISSUER, "client_id": client.id,
        "redirect_uri": CALLBACK, "response_type": "code", "scope": "openid",
        "state": state, "nonce": nonce,
    });
    format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

#[tokio::test]
async fn oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported() {
    let app = test_app().await;
    let client = client(&app, false).await;
    let (state, nonce) = (random_alnum(), random_alnum());
    let object = unsigned_request_object(&client, &state, &nonce);
    // state and nonce only inside the object, as the module sends them.
    let params = [
        ("client_id", client.id.as_str()),
        ("redirect_uri", CALLBACK),
        ("request", object.as_str()),
        ("response_type", "code"),
        ("scope", "openid"),
    ];
    let got = error_callback(&location(&authorize(&app, &params, None).await), None);
    assert_eq!(got["error"], "request_not_supported");
}

#[tokio::test]
async fn oidcc_request_uri_unsigned_supported_correctly_or_rejected_as_unsupported() {
    let app = test_app().await;
    let client = client(&app, false).await;
    let uri = format!("https://rp.example/requesturi/{}#frag", random_alnum());
    let params = [
        ("client_id", client.id.as_str()),
        ("redirect_uri", CALLBACK),
        ("request_uri", uri.as_str()),
        ("response_type", "code"),
        ("scope", "openid"),
    ];
    let got = error_callback(&location(&authorize(&app, &params, None).await), None);
    assert_eq!(got["error"], "request_uri_not_supported");
}

#[tokio::test]
async fn oidcc_prompt_none_not_logged_in() {
    let app = test_app().await;
    let client = client(&app, false).await;
    // The module's 128-character state: 124 alphanumerics and `-._~`.
    let state = format!("{}-._~", "aB3".repeat(41) + "x");
    assert_eq!(state.len(), 128);
    let nonce = random_alnum();
    let params = standard_params(&client, &state, &nonce, &[("prompt", "none")]);
    let got = error_callback(
        &location(&authorize(&app, &params, None).await),
        Some(&state),
    );
    assert!(
        [
            "interaction_required",
            "login_required",
            "account_selection_required",
            "consent_required"
        ]
        .contains(&got["error"].as_str()),
        "{got:?}"
    );
}

#[tokio::test]
async fn oidcc_ensure_post_request_succeeds() {
    let app = test_app().await;
    let client = client(&app, false).await;
    let phone = app.phone("alice", "Alice").await;
    let (state, nonce) = (random_alnum(), random_alnum());
    let params = standard_params(&client, &state, &nonce, &[]);
    // A form the relying party's page posts: cross-site, as it is.
    let response = app
        .send(
            Call::new(Method::POST, paths::AUTHORIZE)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("sec-fetch-site", "cross-site")
                .header(header::ORIGIN, "http://localhost:4000")
                .header(header::USER_AGENT, DESKTOP_UA)
                .body(query(&params).into_bytes()),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let card = location(&response);
    let request = card
        .strip_prefix("/authorize?request=")
        .unwrap_or_else(|| panic!("to the login card: {card}"));
    let (back, _) = sign_in_with(&app, &phone, request).await;
    let got = checked_callback(&back, &state);
    tokens_and_userinfo(&app, &client, &got["code"], &nonce).await;

    // A POST that is not a form, or repeats a parameter: the page, no 405.
    let mut repeated = params.clone();
    repeated.push(("state", "again"));
    for (content_type, body) in [
        ("application/json", "{}".to_owned()),
        ("application/x-www-form-urlencoded", query(&repeated)),
    ] {
        let response = app
            .send(
                Call::new(Method::POST, paths::AUTHORIZE)
                    .header(header::CONTENT_TYPE, content_type)
                    .body(body.into_bytes()),
            )
            .await;
        refused_with_a_page(response).await;
    }
}

#[tokio::test]
async fn oidcc_ui_locales() {
    let app = test_app().await;
    let client = client(&app, false).await;
    let phone = app.phone("alice", "Alice").await;
    let (state, nonce) = (random_alnum(), random_alnum());

    // The suite's default, a language the pages do not speak: no error,
    // the card in the person's own language.
    let params = standard_params(&client, &state, &nonce, &[("ui_locales", "se")]);
    let response = authorize(&app, &params, None).await;
    assert!(location(&response).starts_with("/authorize?request="));
    assert!(!location(&response).contains("lang="));

    // One it speaks, after one it does not: the card in Chinese, and the
    // flow goes on as usual.
    let params = standard_params(&client, &state, &nonce, &[("ui_locales", "se zh-CN en")]);
    let response = authorize(&app, &params, None).await;
    let card = location(&response);
    assert!(card.ends_with("&lang=zh-CN"), "{card}");
    let page = app
        .send(
            Call::new(Method::GET, &card)
                .header(header::ACCEPT, "text/html")
                .header(header::ACCEPT_LANGUAGE, "en"),
        )
        .await;
    let html = String::from_utf8(body_bytes(page).await).unwrap();
    assert!(html.contains(r#"<html lang="zh-CN""#), "{html}");
    let request = card
        .trim_start_matches("/authorize?request=")
        .trim_end_matches("&lang=zh-CN");
    let (back, _) = sign_in_with(&app, &phone, request).await;
    let got = checked_callback(&back, &state);
    tokens_and_userinfo(&app, &client, &got["code"], &nonce).await;

    // A refusal page speaks it too.
    let bad = format!("{CALLBACK}/elsewhere");
    let params = standard_params(
        &client,
        &state,
        &nonce,
        &[("redirect_uri", &bad), ("ui_locales", "zh-CN")],
    );
    let html = refused_with_a_page(authorize(&app, &params, None).await).await;
    assert!(
        html.contains(r#"<html lang="zh-CN">"#) && html.contains("无法登录"),
        "{html}"
    );
}
