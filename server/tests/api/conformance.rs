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
        approve_and_resume, authorize, card_desktop, card_request, client, location, query,
        redirect_params, sign_in_with, token_raw, verify_id_token, Client, CALLBACK, ISSUER,
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
    let (status, tokens) = code_grant(app, client, code, &[]).await;
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

/// A fresh browser's authorization request (`extra` added), approved on
/// the phone: the code the callback brought (checked as the suite checks
/// it), the request's `nonce`, and the browser's new session.
struct Approved {
    code: String,
    nonce: String,
    session: String,
}

async fn approved(
    app: &TestApp,
    client: &Client,
    phone: &Phone,
    extra: &[(&str, &str)],
) -> Approved {
    let (state, nonce) = (random_alnum(), random_alnum());
    let params = standard_params(client, &state, &nonce, extra);
    let request = card_request(app, &params).await;
    let (back, session) = sign_in_with(app, phone, &request).await;
    let got = checked_callback(&back, &state);
    Approved {
        code: got["code"].clone(),
        nonce,
        session,
    }
}

/// The token endpoint's code grant for `code` (`extra` form fields added),
/// the client authenticating with HTTP Basic.
async fn code_grant(
    app: &TestApp,
    client: &Client,
    code: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CALLBACK),
    ];
    form.extend_from_slice(extra);
    token_raw(app, &query(&form), Some(&basic(client))).await
}

/// A confidential client and alice's phone, on a new server.
async fn relying_party() -> (TestApp, Client, Phone) {
    let app = test_app().await;
    let client = client(&app, false).await;
    let phone = app.phone("alice", "Alice").await;
    (app, client, phone)
}

/// The standard flow with `extra` parameters: a fresh browser, the phone
/// approves, the code goes back, tokens and user info.
async fn standard_flow(extra: &[(&str, &str)]) {
    let (app, client, phone) = relying_party().await;
    let approved = approved(&app, &client, &phone, extra).await;
    tokens_and_userinfo(&app, &client, &approved.code, &approved.nonce).await;
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
    let (app, client, phone) = relying_party().await;
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

/// The scope modules (`AbstractOIDCCReturnedClaimsServerTest`): the
/// standard flow with the module's scope, then user info once more, whose
/// `sub` must be the ID token's. The suite skips a module whose scopes
/// discovery does not list: `scope` names the module's scopes, and
/// `listed` whether qrlogin lists them all (then the module runs and its
/// claims are checked; else the test asserts the skip's condition, and
/// that the request still succeeds with the scopes it does not know
/// ignored, as OpenID Connect Core §3.1.2.1 asks).
async fn scope_module(scope: &str, listed: bool, extra_claims: &[&str]) {
    let (app, client, phone) = relying_party().await;
    let discovery = crate::oidc::discovery(&app).await;
    let supported = discovery["scopes_supported"].as_array().unwrap();
    let all_listed = scope
        .split(' ')
        .all(|s| supported.contains(&Value::from(s)));
    assert_eq!(all_listed, listed, "{scope}: {supported:?}");
    let approved = approved(&app, &client, &phone, &[("scope", scope)]).await;
    let tokens = tokens_and_userinfo(&app, &client, &approved.code, &approved.nonce).await;
    let claims = id_token_claims(&app, &client, &tokens).await;
    let response = app
        .send(
            Call::new(Method::GET, paths::USERINFO)
                .bearer(tokens["access_token"].as_str().unwrap()),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let info: Value = json(response).await;
    assert_eq!(info["sub"], claims["sub"]);
    for claim in extra_claims {
        assert!(info[claim].is_string(), "{claim} in {info}");
    }
    // No claim of a scope qrlogin does not have is made up.
    for made_up in ["email", "email_verified", "address", "phone_number"] {
        assert!(info.get(made_up).is_none() && claims.get(made_up).is_none());
    }
}

#[tokio::test]
async fn oidcc_scope_profile() {
    scope_module("openid profile", true, &["name", "preferred_username"]).await;
}

#[tokio::test]
async fn oidcc_scope_email() {
    scope_module("openid email", false, &[]).await;
}

#[tokio::test]
async fn oidcc_scope_address() {
    scope_module("openid address", false, &[]).await;
}

#[tokio::test]
async fn oidcc_scope_phone() {
    scope_module("openid phone", false, &[]).await;
}

#[tokio::test]
async fn oidcc_scope_all() {
    scope_module("openid email phone address profile", false, &["name"]).await;
}

/// `oidcc-ensure-other-scope-order-succeeds`, now `oidcc-alternate-happy-flow`:
/// the scope in reverse order (`email openid`), and the request's
/// parameters in reverse alphabetical order.
#[tokio::test]
async fn oidcc_ensure_other_scope_order_succeeds() {
    let (app, client, phone) = relying_party().await;
    let (state, nonce) = (random_alnum(), random_alnum());
    let mut params = standard_params(&client, &state, &nonce, &[("scope", "profile openid")]);
    params.sort_by(|a, b| b.0.cmp(a.0));
    let request = card_request(&app, &params).await;
    let (back, _) = sign_in_with(&app, &phone, &request).await;
    let got = checked_callback(&back, &state);
    tokens_and_userinfo(&app, &client, &got["code"], &nonce).await;
    // The same with email, which the suite then skips (not listed).
    scope_module("email openid", false, &[]).await;
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
    let (app, client, phone) = relying_party().await;
    let pkce = [
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let approved = approved(&app, &client, &phone, &pkce).await;
    let verifier = [("code_verifier", verifier.as_str())];
    let (status, tokens) = code_grant(&app, &client, &approved.code, &verifier).await;
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
    let (app, client, phone) = relying_party().await;
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

/// The module sends the suite's user (`buffy@…`), which names no account
/// here: the standard flow. A `login_hint` naming an account here lets
/// only that account's phone scan the card's code; a browser signed in as
/// another account does not go straight through.
#[tokio::test]
async fn oidcc_login_hint() {
    standard_flow(&[("login_hint", "buffy@localhost:8443")]).await;

    let (app, client, alice) = relying_party().await;
    let bob = app.phone("bob", "Bob").await;
    let (state, nonce) = (random_alnum(), random_alnum());
    let params = standard_params(&client, &state, &nonce, &[("login_hint", "Bob")]);
    let request = card_request(&app, &params).await;
    let desktop = card_desktop(&app, &request).await;
    // Alice's phone is refused, and the code stays Bob's to scan.
    let refused = app.scan(&alice, &desktop.id).await;
    assert_eq!(
        error_body(refused, StatusCode::FORBIDDEN).await.error,
        "wrong_account"
    );
    let status = app.poll(&desktop).await;
    assert_eq!(
        (status.state, status.match_code),
        (app::api::LoginState::Pending, None)
    );
    let (back, bob_session) = approve_and_resume(&app, &bob, &request, &desktop).await;
    let got = checked_callback(&back, &state);
    let tokens = tokens_and_userinfo(&app, &client, &got["code"], &nonce).await;
    let claims = id_token_claims(&app, &client, &tokens).await;
    let bob_sub = claims["sub"].clone();

    // Alice signed in here and consented: a request for Bob still needs
    // Bob's phone (prompt=none: login_required), one for Alice does not.
    let alice_session = approved(&app, &client, &alice, &[]).await.session;
    let (state, nonce) = (random_alnum(), random_alnum());
    let for_bob = standard_params(
        &client,
        &state,
        &nonce,
        &[("login_hint", "bob"), ("prompt", "none")],
    );
    let got = error_callback(
        &location(&authorize(&app, &for_bob, Some(&alice_session)).await),
        Some(&state),
    );
    assert_eq!(got["error"], "login_required");
    let alice_claims =
        silent_authorization(&app, &client, &alice_session, &[("login_hint", "alice")]).await;
    assert_ne!(alice_claims["sub"], bob_sub);
    let bob_again =
        silent_authorization(&app, &client, &bob_session, &[("login_hint", "bob")]).await;
    assert_eq!(bob_again["sub"], bob_sub);
}

#[tokio::test]
async fn oidcc_ui_locales() {
    let (app, client, phone) = relying_party().await;
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
    let (back, session) = sign_in_with(&app, &phone, request).await;
    let got = checked_callback(&back, &state);
    tokens_and_userinfo(&app, &client, &got["code"], &nonce).await;

    // The card goes on in its language when it comes back to it (here: the
    // request, used once, cannot resume again).
    let resume = format!("{}?request={request}&lang=zh-CN", paths::AUTHORIZE_RESUME);
    let again = app
        .send(Call::new(Method::GET, &resume).cookie(&session))
        .await;
    assert_eq!(location(&again), card);

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

/// The first, standard authorization in a fresh browser (`extra` added):
/// the token response and the browser's session cookie, for the modules
/// that authorize twice.
async fn first_authorization(
    app: &TestApp,
    client: &Client,
    phone: &Phone,
    extra: &[(&str, &str)],
) -> (Value, String) {
    let approved = approved(app, client, phone, extra).await;
    let tokens = tokens_and_userinfo(app, client, &approved.code, &approved.nonce).await;
    (tokens, approved.session)
}

/// A second authorization in the same browser that must need no phone:
/// straight back with a code; the ID token's claims.
async fn silent_authorization(
    app: &TestApp,
    client: &Client,
    session: &str,
    extra: &[(&str, &str)],
) -> Value {
    let (state, nonce) = (random_alnum(), random_alnum());
    let params = standard_params(client, &state, &nonce, extra);
    let back = location(&authorize(app, &params, Some(session)).await);
    let got = checked_callback(&back, &state);
    let tokens = tokens_and_userinfo(app, client, &got["code"], &nonce).await;
    verify_id_token(app, tokens["id_token"].as_str().unwrap(), &client.id).await
}

async fn id_token_claims(app: &TestApp, client: &Client, tokens: &Value) -> Value {
    verify_id_token(app, tokens["id_token"].as_str().unwrap(), &client.id).await
}

#[tokio::test]
async fn oidcc_prompt_none_logged_in() {
    let (app, client, phone) = relying_party().await;
    let (tokens, session) = first_authorization(&app, &client, &phone, &[]).await;
    let first = id_token_claims(&app, &client, &tokens).await;
    let second = silent_authorization(&app, &client, &session, &[("prompt", "none")]).await;
    assert_eq!(second["sub"], first["sub"]);
    assert_eq!(second["auth_time"], first["auth_time"]);
}

#[tokio::test]
async fn oidcc_id_token_hint() {
    let (app, client, phone) = relying_party().await;
    let (tokens, session) = first_authorization(&app, &client, &phone, &[]).await;
    let first = id_token_claims(&app, &client, &tokens).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let second = silent_authorization(
        &app,
        &client,
        &session,
        &[("prompt", "none"), ("id_token_hint", hint)],
    )
    .await;
    assert_eq!(second["sub"], first["sub"]);
    assert_eq!(second["auth_time"], first["auth_time"]);
}

#[tokio::test]
async fn oidcc_max_age_10000() {
    let (app, client, phone) = relying_party().await;
    let (tokens, session) =
        first_authorization(&app, &client, &phone, &[("max_age", "15000")]).await;
    let first = id_token_claims(&app, &client, &tokens).await;
    assert!(first["auth_time"].is_u64(), "{first}");
    let second = silent_authorization(&app, &client, &session, &[("max_age", "10000")]).await;
    assert_eq!(second["sub"], first["sub"]);
    assert_eq!(second["auth_time"], first["auth_time"]);
}

/// The second request needs the phone again: the login card, not a code.
async fn needs_the_phone_again(
    app: &TestApp,
    client: &Client,
    phone: &Phone,
    session: &str,
    extra: &[(&str, &str)],
) -> Value {
    let (state, nonce) = (random_alnum(), random_alnum());
    let params = standard_params(client, &state, &nonce, extra);
    let card = location(&authorize(app, &params, Some(session)).await);
    let request = card
        .strip_prefix("/authorize?request=")
        .unwrap_or_else(|| panic!("to the login card again: {card}"));
    let (back, _) = sign_in_with(app, phone, request).await;
    let got = checked_callback(&back, &state);
    let tokens = tokens_and_userinfo(app, client, &got["code"], &nonce).await;
    id_token_claims(app, client, &tokens).await
}

#[tokio::test]
async fn oidcc_max_age_1() {
    let (app, client, phone) = relying_party().await;
    let (tokens, session) = first_authorization(&app, &client, &phone, &[]).await;
    let first = id_token_claims(&app, &client, &tokens).await;
    // The module waits 2 s: the session is then older than max_age=1
    // (auth_time is in whole seconds).
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let second = needs_the_phone_again(&app, &client, &phone, &session, &[("max_age", "1")]).await;
    let (before, after) = (
        first["auth_time"].as_u64().unwrap(),
        second["auth_time"].as_u64().unwrap(),
    );
    assert!(after > before, "auth_time {before} then {after}");
    assert!(after + 301 >= server::domain::time::now_millis() / 1000);
}

#[tokio::test]
async fn oidcc_prompt_login() {
    let (app, client, phone) = relying_party().await;
    let (tokens, session) = first_authorization(&app, &client, &phone, &[]).await;
    let first = id_token_claims(&app, &client, &tokens).await;
    // The module waits 1 s, so that a new auth_time is a later one.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second =
        needs_the_phone_again(&app, &client, &phone, &session, &[("prompt", "login")]).await;
    assert!(second["auth_time"].as_u64() > first["auth_time"].as_u64());
}

#[tokio::test]
async fn oidcc_codereuse() {
    code_reused_after(std::time::Duration::ZERO).await;
}

/// The same token request twice, `wait` apart: the second gets
/// `invalid_grant`, and the first one's tokens stop working.
async fn code_reused_after(wait: std::time::Duration) {
    let (app, client, phone) = relying_party().await;
    let approved = approved(&app, &client, &phone, &[]).await;
    let tokens = tokens_and_userinfo(&app, &client, &approved.code, &approved.nonce).await;
    tokio::time::sleep(wait).await;
    let (status, again) = code_grant(&app, &client, &approved.code, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{again}");
    assert_eq!(again["error"], "invalid_grant");
    // And the tokens of the first use are revoked (a SHOULD; a warning there).
    let access = tokens["access_token"].as_str().unwrap();
    let response = app
        .send(Call::new(Method::GET, paths::USERINFO).bearer(access))
        .await;
    assert!(response.status().is_client_error());
}

/// User info's checks (`AbstractOIDCCUserInfoTest`): 200, JSON, `sub` the
/// ID token's.
async fn userinfo_answers(response: axum::response::Response, sub: &Value) {
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let info: Value = json(response).await;
    assert_eq!(&info["sub"], sub);
}

#[tokio::test]
async fn oidcc_userinfo_get() {
    let (app, client, phone) = relying_party().await;
    let (tokens, _) = first_authorization(&app, &client, &phone, &[]).await;
    let sub = id_token_claims(&app, &client, &tokens).await["sub"].clone();
    let access = tokens["access_token"].as_str().unwrap();
    let response = app
        .send(Call::new(Method::GET, paths::USERINFO).bearer(access))
        .await;
    userinfo_answers(response, &sub).await;
}

#[tokio::test]
async fn oidcc_userinfo_post_header() {
    let (app, client, phone) = relying_party().await;
    let (tokens, _) = first_authorization(&app, &client, &phone, &[]).await;
    let sub = id_token_claims(&app, &client, &tokens).await["sub"].clone();
    let access = tokens["access_token"].as_str().unwrap();
    let response = app
        .send(
            Call::new(Method::POST, paths::USERINFO)
                .bearer(access)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
        )
        .await;
    userinfo_answers(response, &sub).await;
}

#[tokio::test]
async fn oidcc_userinfo_post_body() {
    let (app, client, phone) = relying_party().await;
    let (tokens, _) = first_authorization(&app, &client, &phone, &[]).await;
    let sub = id_token_claims(&app, &client, &tokens).await["sub"].clone();
    let access = tokens["access_token"].as_str().unwrap();
    let post = |body: String| {
        Call::new(Method::POST, paths::USERINFO)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.into_bytes())
    };
    let response = app.send(post(query(&[("access_token", access)]))).await;
    userinfo_answers(response, &sub).await;
    // In two places, or twice: refused (RFC 6750 §2: one method only).
    let response = app
        .send(post(query(&[("access_token", access)])).bearer(access))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = app
        .send(post(query(&[
            ("access_token", access),
            ("access_token", access),
        ])))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn oidcc_claims_essential() {
    standard_flow(&[("claims", r#"{"userinfo":{"name":{"essential":true}}}"#)]).await;
}

#[tokio::test]
async fn oidcc_refresh_token() {
    let app = test_app().await;
    let client1 = client(&app, false).await;
    let client2 = client(&app, false).await;
    let phone = app.phone("alice", "Alice").await;
    let extra = [("scope", "openid offline_access"), ("prompt", "consent")];
    let mut refresh_tokens = Vec::new();
    for (client, scope) in [(&client1, Some("openid offline_access")), (&client2, None)] {
        let (tokens, _) = first_authorization(&app, client, &phone, &extra).await;
        let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
        assert!(refresh_token.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        let original = id_token_claims(&app, client, &tokens).await;
        // The module waits 1 s before refreshing (a new ID token's iat
        // must differ from the first's).
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let response = app
            .send(
                Call::new(Method::POST, paths::TOKEN)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::AUTHORIZATION, format!("Basic {}", basic(client)))
                    .body(query(&form).into_bytes()),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let cache = response.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(cache.split(',').any(|d| d.trim() == "no-store"), "{cache}");
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        let refreshed: Value = json(response).await;
        assert!(refreshed["token_type"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("bearer"));
        let access = refreshed["access_token"].as_str().unwrap();
        assert_ne!(access, tokens["access_token"].as_str().unwrap());
        if let Some(id_token) = refreshed["id_token"].as_str() {
            let claims = verify_id_token(&app, id_token, &client.id).await;
            assert_eq!(
                (&claims["iss"], &claims["sub"]),
                (&original["iss"], &original["sub"])
            );
            assert_ne!(claims["iat"], original["iat"]);
            assert_eq!(claims["aud"], original["aud"]);
            if !claims["auth_time"].is_null() {
                assert_eq!(claims["auth_time"], original["auth_time"]);
            }
        }
        let response = app
            .send(Call::new(Method::GET, paths::USERINFO).bearer(access))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        refresh_tokens.push(
            refreshed["refresh_token"]
                .as_str()
                .unwrap_or(&refresh_token)
                .to_owned(),
        );
    }
    // Client 2's refresh token with client 1's credentials.
    let body = query(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh_tokens[1]),
    ]);
    let (status, error) = token_raw(&app, &body, Some(&basic(&client1))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"], "invalid_grant");
}

// ---- the config plan ----

#[tokio::test]
async fn oidcc_discovery_endpoint_verification() {
    let app = test_app().await;
    let response = app
        .send(Call::new(Method::GET, paths::OIDC_DISCOVERY))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let d: Value = json(response).await;
    // The issuer is where discovery is, minus the well-known path.
    assert_eq!(d["issuer"], ISSUER);
    assert!(paths::OIDC_DISCOVERY.ends_with("/.well-known/openid-configuration"));
    let issuer = url::Url::parse(ISSUER).unwrap();
    assert!(
        issuer.query().is_none() && issuer.fragment().is_none() && issuer.username().is_empty()
    );
    let list = |name: &str| -> Vec<String> {
        d[name]
            .as_array()
            .unwrap_or_else(|| panic!("{name} is an array"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert!(list("response_types_supported").contains(&"code".to_owned()));
    assert!(list("subject_types_supported").contains(&"public".to_owned()));
    assert!(!list("grant_types_supported").is_empty());
    assert!(list("scopes_supported").contains(&"openid".to_owned()));
    for scope in list("scopes_supported") {
        assert!(scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)));
    }
    for tag in list("ui_locales_supported") {
        assert!(
            app::i18n::Lang::from_tag(&tag).is_some_and(|l| l.tag() == tag),
            "{tag}"
        );
    }
    assert!(list("code_challenge_methods_supported").contains(&"S256".to_owned()));
    assert!(d["claims_supported"].is_array());
    // Every endpoint a URL under the issuer (https where the issuer is).
    for (name, value) in d.as_object().unwrap() {
        if name.ends_with("_endpoint") || name == "jwks_uri" {
            let url = value.as_str().unwrap();
            assert!(url.starts_with(ISSUER), "{name}: {url}");
            url::Url::parse(url).unwrap();
        }
    }
    assert!(d["userinfo_endpoint"].is_string() && d["end_session_endpoint"].is_string());
    // The suite requires RS256 among the ID token algorithms; qrlogin
    // signs with ES256 only (a smaller key, no RSA): the one check of this
    // module it fails on purpose, as design.md says.
    assert_eq!(list("id_token_signing_alg_values_supported"), ["ES256"]);

    // The JWKS: public keys only, each with a kid, kids distinct.
    let response = app.send(Call::new(Method::GET, paths::JWKS)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let jwks: Value = serde_json::from_slice(&body_bytes(response).await).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    let mut kids = std::collections::HashSet::new();
    for key in keys {
        assert_eq!(key["kty"], "EC");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "{key}");
        }
        assert!(
            kids.insert(key["kid"].as_str().unwrap().to_owned()),
            "{key}"
        );
    }
}

// ---- the RP-initiated logout plan ----

const POST_LOGOUT: &str = "http://localhost:4000/post_logout_redirect";

/// A confidential client that registered `POST_LOGOUT` apart from its
/// redirect URI.
async fn logout_client(app: &TestApp) -> Client {
    let logout = server::domain::oidc::LogoutUris {
        post_logout: vec![POST_LOGOUT.to_owned()],
        backchannel: None,
    };
    let client = crate::oidc::client_logging_out(app, logout).await;
    let secret = client.secret.as_deref().unwrap();
    assert!(secret.len() >= 32, "the suite HS256-signs with it");
    client
}

/// The module's `end_session_state`: letters, digits and punctuation.
const END_SESSION_STATE: &str =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX0123456789!\"#$%&'()*,-./:<=>?@[\\]^_`{|}~~~~!";

async fn end_session(
    app: &TestApp,
    session: &str,
    params: &[(&str, &str)],
) -> axum::response::Response {
    app.send(
        Call::new(
            Method::GET,
            &format!("{}?{}", paths::END_SESSION, query(params)),
        )
        .cookie(session)
        .header(header::USER_AGENT, DESKTOP_UA),
    )
    .await
}

/// The end of a "success" module: a second authorization with
/// `prompt=none` in the same browser gets an error (the session is over).
async fn signed_out(app: &TestApp, client: &Client, session: &str) {
    let (state, nonce) = (random_alnum(), random_alnum());
    let params = standard_params(client, &state, &nonce, &[("prompt", "none")]);
    let got = error_callback(
        &location(&authorize(app, &params, Some(session)).await),
        Some(&state),
    );
    assert_eq!(got["error"], "login_required");
}

/// A "must not redirect" module: nothing goes to the client.
fn not_redirected(response: &axum::response::Response) {
    assert!(
        response.headers().get(header::LOCATION).is_none(),
        "redirected to {:?}",
        response.headers().get(header::LOCATION)
    );
    assert!(!response.status().is_server_error());
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_discovery_endpoint_verification() {
    let app = test_app().await;
    let d = crate::oidc::discovery(&app).await;
    let end = d["end_session_endpoint"].as_str().unwrap();
    assert_eq!(end, format!("{ISSUER}{}", paths::END_SESSION));
}

#[tokio::test]
async fn oidcc_rp_initiated_logout() {
    let app = test_app().await;
    let client = logout_client(&app).await;
    let phone = app.phone("alice", "Alice").await;
    let (tokens, session) = first_authorization(&app, &client, &phone, &[]).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let response = end_session(
        &app,
        &session,
        &[
            ("id_token_hint", hint),
            ("post_logout_redirect_uri", POST_LOGOUT),
            ("state", END_SESSION_STATE),
        ],
    )
    .await;
    let back = location(&response);
    assert!(back.starts_with(POST_LOGOUT), "{back}");
    let got = redirect_params(&back);
    assert_eq!(
        got.get("state").map(String::as_str),
        Some(END_SESSION_STATE)
    );
    assert_eq!(got.len(), 1, "only state: {got:?}");
    signed_out(&app, &client, &session).await;
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_no_state() {
    let app = test_app().await;
    let client = logout_client(&app).await;
    let phone = app.phone("alice", "Alice").await;
    let (tokens, session) = first_authorization(&app, &client, &phone, &[]).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let response = end_session(
        &app,
        &session,
        &[
            ("id_token_hint", hint),
            ("post_logout_redirect_uri", POST_LOGOUT),
        ],
    )
    .await;
    let back = location(&response);
    assert!(back.starts_with(POST_LOGOUT), "{back}");
    assert!(!redirect_params(&back).contains_key("state"), "{back}");
    signed_out(&app, &client, &session).await;
}

/// A must-not-redirect module: its end-session request (`hint` replaced
/// by what `bad_hint` makes of the real one, `None`: no hint) changes
/// nothing the client can see.
async fn no_redirect_for(bad_hint: Option<fn(&str, &Client) -> String>, extra: &[(&str, &str)]) {
    let app = test_app().await;
    let client = logout_client(&app).await;
    let phone = app.phone("alice", "Alice").await;
    let (tokens, session) = first_authorization(&app, &client, &phone, &[]).await;
    let real = tokens["id_token"].as_str().unwrap();
    let hint = bad_hint.map(|make| make(real, &client));
    let mut params: Vec<(&str, &str)> = vec![("state", END_SESSION_STATE)];
    if let Some(hint) = &hint {
        params.push(("id_token_hint", hint));
    }
    for (name, value) in extra {
        params.retain(|(n, _)| n != name);
        params.push((name, value));
    }
    not_redirected(&end_session(&app, &session, &params).await);
}

fn same_hint(real: &str, _: &Client) -> String {
    real.to_owned()
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_bad_post_logout_redirect_uri() {
    let bad = "http://localhost:4000/bad_post_logout_redirect_uri";
    no_redirect_for(Some(same_hint), &[("post_logout_redirect_uri", bad)]).await;
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_query_added_to_post_logout_redirect_uri() {
    let with_query = format!("{POST_LOGOUT}?foo=bar");
    no_redirect_for(
        Some(same_hint),
        &[("post_logout_redirect_uri", &with_query)],
    )
    .await;
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_modified_id_token_hint() {
    fn alg_none(real: &str, _: &Client) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = real.split('.').nth(1).unwrap();
        format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#)
        )
    }
    no_redirect_for(Some(alg_none), &[("post_logout_redirect_uri", POST_LOGOUT)]).await;
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_bad_id_token_hint() {
    fn hs256_with_the_secret(_: &str, client: &Client) -> String {
        let now = server::domain::time::now_millis() / 1000;
        let claims = serde_json::json!({
            "iss": client.id, "aud": ISSUER, "sub": "SubjectID", "nonce": "flibble",
            "iat": now, "exp": now + 300,
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(client.secret.as_deref().unwrap().as_bytes()),
        )
        .unwrap()
    }
    no_redirect_for(
        Some(hs256_with_the_secret),
        &[("post_logout_redirect_uri", POST_LOGOUT)],
    )
    .await;
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_no_id_token_hint() {
    no_redirect_for(None, &[("post_logout_redirect_uri", POST_LOGOUT)]).await;
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_no_post_logout_redirect_uri() {
    let app = test_app().await;
    let client = logout_client(&app).await;
    let phone = app.phone("alice", "Alice").await;
    let (tokens, session) = first_authorization(&app, &client, &phone, &[]).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let response = end_session(&app, &session, &[("id_token_hint", hint), ("state", "s")]).await;
    not_redirected(&response);
    assert_eq!(response.status(), StatusCode::OK);
    let html = String::from_utf8(body_bytes(response).await).unwrap();
    assert!(html.contains("signed out"), "{html}");
    signed_out(&app, &client, &session).await;
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_only_state() {
    no_redirect_for(None, &[]).await;
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_no_params() {
    let app = test_app().await;
    let client = logout_client(&app).await;
    let phone = app.phone("alice", "Alice").await;
    let (_, session) = first_authorization(&app, &client, &phone, &[]).await;
    not_redirected(&end_session(&app, &session, &[]).await);
}

#[tokio::test]
async fn oidcc_server_client_secret_post() {
    let (app, client, phone) = relying_party().await;
    let approved = approved(&app, &client, &phone, &[]).await;
    let body = query(&[
        ("grant_type", "authorization_code"),
        ("code", &approved.code),
        ("redirect_uri", CALLBACK),
        ("client_id", &client.id),
        ("client_secret", client.secret.as_deref().unwrap()),
    ]);
    let (status, tokens) = token_raw(&app, &body, None).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify_id_token(&app, tokens["id_token"].as_str().unwrap(), &client.id).await;
    assert_eq!(claims["nonce"], approved.nonce.as_str());
}

#[tokio::test]
async fn oidcc_codereuse_30seconds() {
    // The module's wait: a provider that forgets used codes after a while
    // would take this one again.
    code_reused_after(std::time::Duration::from_secs(30)).await;
}
