//! Random methods, paths, queries, headers and bodies (huge and malformed
//! among them) against the real router. Whatever comes in: no 5xx, no
//! panic, every API 4xx a JSON `{error, message}`, and nothing stored
//! changes. `QRLOGIN_FUZZ_CASES` sets the number of requests (default 2000).
//!
//! Then every route the server has (as its OpenAPI document, its discovery
//! document, its page list and its server-function registry say), each
//! sent mutated requests built from its own inputs.

use crate::helpers::*;
use app::api::{ApiErrorBody, LoginState};
use axum::http::{header, Method, StatusCode};
use proptest::{prelude::*, test_runner::TestRunner};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use serde_json::Value;

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
        Just(paths::AUTHORIZE.to_owned()),
        Just(paths::AUTHORIZE_RESUME.to_owned()),
        Just(paths::TOKEN.to_owned()),
        Just("/oauth2/{}".to_owned()),
        Just("/fn/{}".to_owned()),
        Just("/authorize".to_owned()),
        Just("/device".to_owned()),
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
        "\\?(request|client_id|user_code|authorization)=[A-Za-z0-9%_-]{0,60}",
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

// ---- every route, with inputs from its description ----

/// How a route must refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refuses {
    /// API v1: JSON `{error, message}`.
    Api,
    /// An OAuth endpoint a client calls: JSON `{error, error_description}`.
    OAuth,
    /// Pages, the browser's OAuth steps and server functions: any 4xx.
    Browser,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Path,
    Query,
    Json,
    Form,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Text,
    Int,
    Object,
}

/// One input of a route: where it goes, its type, and values that could
/// be right (the rest are mutations of them, or junk).
#[derive(Debug, Clone)]
struct Input {
    name: String,
    at: At,
    ty: Ty,
    valid: Vec<String>,
}

/// The credentials a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    None,
    /// The phone's bearer token or the session cookie.
    Session,
    /// The bind cookie of the attempt in the path.
    Bind,
    /// Client credentials (HTTP Basic or in the form).
    Client,
}

#[derive(Debug, Clone)]
struct Route {
    method: Method,
    /// With `{id}` for a path input.
    path: String,
    refuses: Refuses,
    inputs: Vec<Input>,
    auth: Vec<Auth>,
}

/// What the fuzzer may use: one account's credentials (never the account
/// whose data must not change), ids the server made, a client.
struct Known {
    bearers: Vec<String>,
    cookies: Vec<String>,
    /// One of the actor's attempts and its bind cookie.
    attempt: (String, String),
    /// Ids that must not be touched by the actor (a foreign attempt, a
    /// foreign session): used only without the actor's credentials, or
    /// where the actor must be refused.
    foreign_attempt: String,
    foreign_session: String,
    own_session: String,
    client_id: String,
    client_secret: String,
    public_client_id: String,
    sealed_request: String,
    user_code: String,
    device_code: String,
    id_token: String,
}

/// Values that break things: empty, controls, huge, odd Unicode, escapes,
/// numbers at and past their edges, paths and markup.
const JUNK: &[&str] = &[
    "",
    "\n",
    "\r\nSet-Cookie: x=1",
    "\0",
    "\u{7f}",
    "a\tb",
    " ",
    "é😀\u{202e}",
    "\u{FFFD}",
    "../../../etc/passwd",
    "%2e%2e%2f",
    "%00",
    "%FF",
    "//evil.example/x",
    "https://evil.example/cb",
    "javascript:alert(1)",
    "<script>alert(1)</script>",
    "\"'><",
    "' OR 1=1 --",
    "{{7*7}}${7*7}",
    "-1",
    "0",
    "255",
    "256",
    "4294967296",
    "18446744073709551616",
    "1e309",
    "NaN",
    "0x10",
    "true",
    "null",
    "[]",
    "{}",
];

fn pick<'a>(rng: &mut StdRng, values: &'a [String]) -> Option<&'a String> {
    values.choose(rng)
}

/// A value for `input`: a valid one, a mutation of one, junk, or `None`
/// (left out). `careful`: valid nearly always, so that one bad value at a
/// time reaches the code past the first check.
fn value(rng: &mut StdRng, input: &Input, careful: bool) -> Option<String> {
    let valid = pick(rng, &input.valid).cloned();
    if careful && rng.gen_bool(0.9) {
        return valid;
    }
    match rng.gen_range(0..100) {
        0..=34 => valid.or_else(|| Some(String::new())),
        35..=44 => None,
        45..=74 => Some(JUNK.choose(rng).copied().unwrap_or_default().to_owned()),
        75..=84 => valid.map(|v| match rng.gen_range(0..5) {
            0 => format!("{v}\n"),
            1 => v.chars().rev().collect(),
            2 => v.to_uppercase(),
            3 => format!("{v}{v}"),
            _ => v
                .chars()
                .take(v.chars().count().saturating_sub(1))
                .collect(),
        }),
        85..=94 => Some("x".repeat(rng.gen_range(60..3000))),
        // (A URI holds at most 64 KiB.)
        _ => Some("a".repeat(rng.gen_range(10_000..25_000))),
    }
}

/// `value` as a JSON token for an input of type `ty`: as the schema says
/// most of the time, any other JSON type otherwise.
fn json_token(rng: &mut StdRng, ty: Ty, value: &str) -> String {
    if rng.gen_bool(0.2) {
        return [
            "null", "true", "[]", "{}", "1.5", "-1", "1e400", "\"\"", "[1,2]",
        ]
        .choose(rng)
        .copied()
        .unwrap_or("null")
        .to_owned();
    }
    match ty {
        Ty::Int if value.parse::<i128>().is_ok() => value.to_owned(),
        Ty::Object if value.starts_with('{') => value.to_owned(),
        _ => Value::String(value.to_owned()).to_string(),
    }
}

const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn form(pairs: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// One mutated request for `route`.
fn request(rng: &mut StdRng, route: &Route, known: &Known) -> (Method, String, String, Call) {
    let careful = rng.gen_bool(0.5);
    let mut method = route.method.clone();
    if !careful && rng.gen_bool(0.1) {
        method = [
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::HEAD,
            Method::OPTIONS,
        ]
        .choose(rng)
        .cloned()
        .unwrap_or(Method::PUT);
    }
    let mut path = route.path.clone();
    let (mut query, mut json, mut body_form) = (Vec::new(), Vec::new(), Vec::new());
    let mut foreign = false;
    for input in &route.inputs {
        let Some(value) = value(rng, input, careful) else {
            if input.at == At::Path {
                path = path.replace(&format!("{{{}}}", input.name), "");
            }
            continue;
        };
        foreign |= value == known.foreign_attempt;
        match input.at {
            At::Path => {
                let encoded = percent_encoding::utf8_percent_encode(&value, PATH_SEGMENT);
                path = path.replace(&format!("{{{}}}", input.name), &encoded.to_string());
            }
            At::Query => query.push((input.name.clone(), value)),
            At::Json => json.push(format!(
                "{}: {}",
                Value::String(input.name.clone()),
                json_token(rng, input.ty, &value)
            )),
            At::Form => body_form.push((input.name.clone(), value)),
        }
    }
    // Now and then a parameter twice, or one nobody asked for.
    if rng.gen_bool(0.1) {
        if let Some(first) = query.first().cloned() {
            query.push(first);
        }
        if let Some(first) = body_form.first().cloned() {
            body_form.push(first);
        }
    }
    if rng.gen_bool(0.1) {
        query.push(("unexpected".into(), "1".into()));
        json.push("\"unexpected\": 1".into());
    }
    // A URI holds at most 64 KiB: cut the longest values down to fit.
    while path.len() + form(&query).len() > 60_000 {
        if let Some(longest) = query.iter_mut().max_by_key(|(_, v)| v.len()) {
            longest.1.truncate(1000);
        }
    }
    let mut uri = path;
    if !query.is_empty() {
        uri = format!("{uri}?{}", form(&query));
    } else if rng.gen_bool(0.05) {
        uri.push_str(["?%FF%FE", "?&&=&", "?a=%C0%AF", "?=", "?a[]=1&a[x]=2"][rng.gen_range(0..5)]);
    }

    let mut call =
        Call::new(method.clone(), &uri).peer_ip([10, rng.gen(), rng.gen(), rng.gen_range(1..255)]);
    // The body: as the route takes it, most of the time.
    let (body, content_type) = if route.inputs.iter().any(|i| i.at == At::Json) {
        (
            format!("{{{}}}", json.join(", ")).into_bytes(),
            "application/json",
        )
    } else if route.inputs.iter().any(|i| i.at == At::Form) {
        (
            form(&body_form).into_bytes(),
            "application/x-www-form-urlencoded",
        )
    } else {
        (Vec::new(), "")
    };
    let (body, content_type) = match rng.gen_range(0..100) {
        _ if careful => (body, content_type.to_owned()),
        0..=59 => (body, content_type.to_owned()),
        80..=84 => (body, String::new()),
        85..=89 => (
            body,
            [
                "text/plain",
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "application/json; charset=utf-16",
                "*/*",
            ]
            .choose(rng)
            .copied()
            .unwrap_or("text/plain")
            .to_owned(),
        ),
        90..=94 => (
            (0..rng.gen_range(0..300)).map(|_| rng.gen()).collect(),
            content_type.to_owned(),
        ),
        _ => (
            vec![b'{'; rng.gen_range(1000..200_000)],
            content_type.to_owned(),
        ),
    };
    let shown = format!(
        "{content_type} {}",
        String::from_utf8_lossy(&body[..body.len().min(200)])
    );
    if !content_type.is_empty() {
        call = call.header(header::CONTENT_TYPE, content_type);
    }
    call = call.body(body);

    // Credentials: none, junk, or the actor's (never the other account's;
    // the actor's only where they cannot touch the other account's data).
    let auth = route.auth.choose(rng).copied().unwrap_or(Auth::None);
    let own = !foreign && rng.gen_bool(0.6);
    call = match (auth, own) {
        (Auth::None, _) => call,
        (Auth::Session, true) => {
            if rng.gen_bool(0.5) {
                call.bearer(pick(rng, &known.bearers).map_or("", String::as_str))
            } else {
                call.cookie(pick(rng, &known.cookies).map_or("", String::as_str))
            }
        }
        (Auth::Bind, true) => call.cookie(&known.attempt.1),
        (Auth::Client, true) => {
            use base64::{engine::general_purpose::STANDARD, Engine};
            let basic = STANDARD.encode(format!("{}:{}", known.client_id, known.client_secret));
            call.header(header::AUTHORIZATION, format!("Basic {basic}"))
        }
        (_, false) => match rng.gen_range(0..4) {
            0 => call.bearer("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            1 => call.cookie("qrlogin_session=junk; qrlogin_bind=junk"),
            2 => call.header(header::AUTHORIZATION, "Basic %%%"),
            _ => call,
        },
    };
    if rng.gen_bool(0.1) {
        call = call.header(header::ORIGIN, "https://evil.example");
    }
    if rng.gen_bool(0.3) {
        call = call.header(header::ACCEPT, "text/html");
    }
    (method, uri, shown, call)
}

/// Inputs of an API v1 operation, from its OpenAPI description.
fn api_inputs(doc: &Value, op: &Value, known: &Known) -> Vec<Input> {
    let mut inputs = Vec::new();
    let uuid = "0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a59".to_owned();
    for param in op["parameters"].as_array().into_iter().flatten() {
        let name = param["name"].as_str().unwrap_or_default().to_owned();
        let schema = &param["schema"];
        let at = if param["in"] == "path" {
            At::Path
        } else {
            At::Query
        };
        let (ty, valid) = match (name.as_str(), schema["type"].as_str()) {
            ("id", _) if schema["pattern"].is_string() => (
                Ty::Text,
                vec![
                    known.attempt.0.clone(),
                    known.foreign_attempt.clone(),
                    uuid.clone(),
                ],
            ),
            ("id", _) => (
                Ty::Text,
                vec![
                    known.foreign_session.clone(),
                    known.own_session.clone(),
                    uuid.clone(),
                ],
            ),
            ("authorization", _) => (Ty::Text, vec![known.sealed_request.clone()]),
            // Long polls: only waits of 0 or 1 s (the limit, 30, would
            // make the run about waiting).
            ("wait", _) => (Ty::Int, vec!["0".into(), "1".into()]),
            (_, Some("integer")) => {
                let min = schema["minimum"].as_i64().unwrap_or(0);
                let max = schema["maximum"].as_i64().unwrap_or(i64::MAX);
                (
                    Ty::Int,
                    vec![
                        min.to_string(),
                        max.to_string(),
                        max.saturating_add(1).to_string(),
                        (min - 1).to_string(),
                    ],
                )
            }
            _ => {
                let max = schema["maxLength"].as_u64().unwrap_or(64) as usize;
                (Ty::Text, vec!["x".repeat(max), "x".repeat(max + 1)])
            }
        };
        inputs.push(Input {
            name,
            at,
            ty,
            valid,
        });
    }
    let body = &op["requestBody"]["content"]["application/json"]["schema"]["$ref"];
    if let Some(reference) = body.as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        let schema = &doc["components"]["schemas"][name];
        for (field, property) in schema["properties"].as_object().into_iter().flatten() {
            let types: Vec<&str> = match &property["type"] {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let (ty, valid) = if types.contains(&"integer") {
                let max = property["maximum"].as_i64().unwrap_or(i64::MAX);
                let min = property["minimum"].as_i64().unwrap_or(0);
                let mut valid = vec![
                    min.to_string(),
                    max.to_string(),
                    max.saturating_add(1).to_string(),
                    "42".into(),
                ];
                valid.extend((0..3).map(|i| (i * 37 % 100).to_string()));
                (Ty::Int, valid)
            } else if types.contains(&"object") {
                (
                    Ty::Object,
                    vec!["{}".into(), r#"{"id":"x","response":{}}"#.into()],
                )
            } else {
                let valid = match field.as_str() {
                    "username" => vec!["bob".into(), "alice".into(), "nobody".into()],
                    "password" => vec![PASSWORD.into(), "wrong".into()],
                    _ => vec!["x".into()],
                };
                (Ty::Text, valid)
            };
            inputs.push(Input {
                name: field.clone(),
                at: At::Json,
                ty,
                valid,
            });
        }
    }
    inputs
}

fn text(name: &str, at: At, valid: &[&str]) -> Input {
    Input {
        name: name.into(),
        at,
        ty: Ty::Text,
        valid: valid.iter().map(|v| (*v).to_owned()).collect(),
    }
}

/// The OAuth and OpenID Connect endpoints with their parameters (RFC 6749,
/// 7009, 8628, OpenID Connect Core, RP-Initiated Logout).
fn oauth_routes(known: &Known) -> Vec<Route> {
    let k = known;
    let (_, challenge) = {
        use sha2::{Digest, Sha256};
        let verifier = "v".repeat(43);
        let challenge = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            Sha256::digest(verifier.as_bytes()),
        );
        (verifier, challenge)
    };
    let client_ids = [k.client_id.as_str(), k.public_client_id.as_str(), "unknown"];
    let authorize = |at: At| {
        vec![
            text("client_id", at, &client_ids),
            text(
                "redirect_uri",
                at,
                &[CALLBACK, "http://localhost:4000/other"],
            ),
            text("response_type", at, &["code", "token", "code id_token"]),
            text("response_mode", at, &["query", "fragment", "form_post"]),
            text(
                "scope",
                at,
                &["openid", "openid profile offline_access", "profile"],
            ),
            text("state", at, &["st&ate=1 é/"]),
            text("nonce", at, &["n-0S6"]),
            text("code_challenge", at, &[challenge.as_str()]),
            text("code_challenge_method", at, &["S256", "plain"]),
            text("prompt", at, &["none", "login", "none login", "consent"]),
            text("max_age", at, &["0", "60", "-1", "99999999999999999999"]),
            text("request", at, &["eyJhbGciOiJub25lIn0.e30."]),
            text("request_uri", at, &["urn:x"]),
        ]
    };
    let route =
        |method: Method, path: &str, refuses: Refuses, inputs: Vec<Input>, auth: Vec<Auth>| Route {
            method,
            path: path.into(),
            refuses,
            inputs,
            auth,
        };
    let client_form = |mut inputs: Vec<Input>| {
        inputs.push(text("client_id", At::Form, &client_ids));
        inputs.push(text(
            "client_secret",
            At::Form,
            &[k.client_secret.as_str(), "wrong"],
        ));
        inputs
    };
    let token_form = client_form(vec![
        text(
            "grant_type",
            At::Form,
            &[
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code",
                "password",
                "client_credentials",
            ],
        ),
        text(
            "code",
            At::Form,
            &["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
        ),
        text("redirect_uri", At::Form, &[CALLBACK]),
        text("code_verifier", At::Form, &[&"v".repeat(43)]),
        text(
            "refresh_token",
            At::Form,
            &["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
        ),
        text("device_code", At::Form, &[k.device_code.as_str()]),
        text("scope", At::Form, &["openid"]),
    ]);
    let logout = |at: At| {
        vec![
            text("id_token_hint", at, &[k.id_token.as_str(), "a.b.c"]),
            text(
                "post_logout_redirect_uri",
                at,
                &[CALLBACK, "https://evil.example/"],
            ),
            text("state", at, &["s"]),
        ]
    };
    let session = vec![Auth::None, Auth::Session];
    vec![
        route(
            Method::GET,
            paths::OIDC_DISCOVERY,
            Refuses::OAuth,
            vec![],
            vec![Auth::None],
        ),
        route(
            Method::GET,
            paths::JWKS,
            Refuses::OAuth,
            vec![],
            vec![Auth::None],
        ),
        route(
            Method::GET,
            paths::AUTHORIZE,
            Refuses::Browser,
            authorize(At::Query),
            session.clone(),
        ),
        route(
            Method::GET,
            paths::AUTHORIZE_RESUME,
            Refuses::Browser,
            vec![text(
                "request",
                At::Query,
                &[k.sealed_request.as_str(), "abc"],
            )],
            session.clone(),
        ),
        route(
            Method::POST,
            paths::TOKEN,
            Refuses::OAuth,
            token_form,
            vec![Auth::None, Auth::Client],
        ),
        route(
            Method::GET,
            paths::USERINFO,
            Refuses::OAuth,
            vec![],
            session.clone(),
        ),
        route(
            Method::POST,
            paths::USERINFO,
            Refuses::OAuth,
            vec![],
            session.clone(),
        ),
        route(
            Method::POST,
            paths::REVOKE,
            Refuses::OAuth,
            client_form(vec![
                text(
                    "token",
                    At::Form,
                    &["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
                ),
                text(
                    "token_type_hint",
                    At::Form,
                    &["refresh_token", "access_token"],
                ),
            ]),
            vec![Auth::None, Auth::Client],
        ),
        route(
            Method::GET,
            paths::END_SESSION,
            Refuses::Browser,
            logout(At::Query),
            session.clone(),
        ),
        route(
            Method::POST,
            paths::END_SESSION,
            Refuses::Browser,
            logout(At::Form),
            session.clone(),
        ),
        route(
            Method::POST,
            paths::DEVICE_AUTHORIZATION,
            Refuses::OAuth,
            client_form(vec![text("scope", At::Form, &["openid profile", "email"])]),
            vec![Auth::None, Auth::Client],
        ),
    ]
}

const CALLBACK: &str = "http://localhost:4000/callback";

/// An invite token of the right shape that no invite has.
const UNKNOWN_INVITE: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// The query parameters the pages read (and a few they do not).
fn page_inputs(known: &Known) -> Vec<Input> {
    vec![
        text("request", At::Query, &[known.sealed_request.as_str()]),
        text(
            "user_code",
            At::Query,
            &[known.user_code.as_str(), "BCDF-GHJK"],
        ),
        text("outcome", At::Query, &["approved", "denied"]),
        text("signin", At::Query, &["failed", "password_off"]),
        text("choices", At::Query, &["no_passkey"]),
        text("next", At::Query, &["/m"]),
        text("failed", At::Query, &["invite_gone"]),
        text("code", At::Query, &["done", "confirm_first"]),
    ]
}

/// Each server function of the pages and its arguments, read from
/// app/src/server_fns.rs and the admin console's app/src/admin/fns.rs:
/// `name` → `[(argument, type)]`.
fn server_fn_arguments() -> Vec<(String, Vec<(String, String)>)> {
    let sources = [
        include_str!("../../../app/src/server_fns.rs"),
        include_str!("../../../app/src/admin/fns.rs"),
    ];
    let mut fns = Vec::new();
    for part in sources
        .iter()
        .flat_map(|source| source.split("#[server(prefix").skip(1))
    {
        let Some(start) = part.find("pub async fn ") else {
            continue;
        };
        let rest = &part[start + "pub async fn ".len()..];
        let Some(open) = rest.find('(') else { continue };
        let name = rest[..open].trim().to_owned();
        let Some(close) = rest.find(") ->") else {
            continue;
        };
        let args = rest[open + 1..close]
            .split(',')
            .filter_map(|arg| {
                let arg = arg.trim();
                let arg = match arg.rfind(']') {
                    Some(end) if arg.starts_with("#[") => arg[end + 1..].trim(),
                    _ => arg,
                };
                let (name, ty) = arg.split_once(':')?;
                Some((name.trim().to_owned(), ty.trim().to_owned()))
            })
            .collect();
        fns.push((name, args));
    }
    fns
}

/// Valid-looking values of a server function's argument, by its name.
fn server_fn_input(name: &str, ty: &str, known: &Known) -> Input {
    let k = known;
    let values: Vec<String> = match name {
        "id" => vec![
            k.attempt.0.clone(),
            k.foreign_attempt.clone(),
            k.foreign_session.clone(),
            k.own_session.clone(),
        ],
        "match_code" => vec!["0".into(), "42".into(), "99".into()],
        "user_code" => vec![k.user_code.clone(), "BCDF-GHJK".into()],
        "decision" => vec!["approve".into(), "deny".into()],
        "client_id" => vec![k.client_id.clone(), k.public_client_id.clone()],
        "request" => vec![k.sealed_request.clone()],
        "next" => vec!["/m".into(), "/q/x?y=1".into(), "//evil.example".into()],
        "lang" => vec!["en".into(), "de".into(), "zz".into()],
        "username" => vec!["bob".into(), "alice".into()],
        "password" => vec![PASSWORD.into(), "wrong".into(), "on".into()],
        "approve_with_passkey" => vec!["on".into()],
        "ceremony" => vec!["AAAAAAAAAAAAAAAAAAAAAA".into()],
        "token" => vec![UNKNOWN_INVITE.into()],
        "credential" | "passkey" => {
            vec![r#"{"id":"x","rawId":"x","type":"public-key","response":{}}"#.into()]
        }
        _ => vec!["x".into()],
    };
    Input {
        name: name.into(),
        at: At::Form,
        ty: if ty.starts_with('u') || ty.starts_with('i') {
            Ty::Int
        } else {
            Ty::Text
        },
        valid: values,
    }
}

/// Every route the server has: API v1 as its OpenAPI document describes
/// it, the OAuth and OpenID Connect endpoints, the pages (the router's own
/// list) and every server function (the registry's own list), each sent
/// mutated requests built from its inputs. No 5xx, every API 4xx JSON
/// `{error, message}`, every OAuth client endpoint's 4xx JSON `{error,
/// error_description}`, and the other account's data unchanged.
/// `QRLOGIN_FUZZ_ROUTE_CASES` sets the requests per route (default 120),
/// `QRLOGIN_FUZZ_SEED` the seed, `QRLOGIN_FUZZ_VERBOSE` prints each
/// route's answers by status.
#[test]
fn every_route_with_inputs_from_its_description_never_breaks_the_server() {
    let per_route: usize = std::env::var("QRLOGIN_FUZZ_ROUTE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (app, alice, alice_desktop, alice_session, known, doc, discovery) = runtime.block_on(async {
        let app = test_app().await;
        // The fuzzer knows alice's name, not her password.
        const SECRET: &str = "a password the fuzzer never sends";
        app.state
            .services
            .accounts
            .add_account("alice", Some("Alice"), SECRET, server::domain::time::now_millis())
            .await
            .unwrap();
        let signed_in: app::api::SignedIn = json(
            app.send(
                Call::new(Method::POST, paths::SESSION)
                    .header(header::USER_AGENT, PHONE_UA)
                    .json(serde_json::json!({ "username": "alice", "password": SECRET })),
            )
            .await,
        )
        .await;
        let alice = Phone {
            token: signed_in.token,
        };
        let alice_session = app.signed_in_desktop(&alice).await;
        let alice_desktop = app.desktop().await;
        let bob = app.phone("bob", "Bob").await;
        let mut bearers = vec![bob.token.clone(), sign_in(&app, "bob").await];
        let mut cookies = Vec::new();
        for _ in 0..3 {
            cookies.push(app.signed_in_desktop(&bob).await);
        }
        bearers.push(sign_in(&app, "bob").await);
        let own_attempt = app.desktop().await;
        let oidc = &app.state.services.oidc;
        let confidential = oidc
            .add_client("Grafana", &[CALLBACK.to_owned()], false)
            .await
            .unwrap();
        let public = oidc.add_client("SPA", &[CALLBACK.to_owned()], true).await.unwrap();
        let authorize = format!(
            "{}?client_id={}&redirect_uri={CALLBACK}&response_type=code&scope=openid&code_challenge={}&code_challenge_method=S256",
            paths::AUTHORIZE,
            confidential.client_id,
            "A".repeat(43)
        );
        let response = app.send(Call::new(Method::GET, &authorize)).await;
        let card = response.headers()[header::LOCATION].to_str().unwrap().to_owned();
        let sealed_request = card.trim_start_matches("/authorize?request=").to_owned();
        let device: Value = json(
            app.send(
                Call::new(Method::POST, paths::DEVICE_AUTHORIZATION)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(format!("client_id={}&scope=openid", public.client_id).into_bytes()),
            )
            .await,
        )
        .await;
        let id_token = oidc
            .keys()
            .sign(&serde_json::json!({
                "iss": "http://127.0.0.1:3000", "sub": "2", "aud": confidential.client_id,
            }))
            .await
            .unwrap();
        let alice_sessions = app.sessions(&alice).await;
        let bob_sessions = app.sessions(&bob).await;
        let doc: Value = json(app.send(Call::new(Method::GET, paths::OPENAPI)).await).await;
        let discovery: Value =
            json(app.send(Call::new(Method::GET, paths::OIDC_DISCOVERY)).await).await;
        let known = Known {
            bearers,
            cookies,
            attempt: (own_attempt.id.clone(), own_attempt.cookie.clone()),
            foreign_attempt: alice_desktop.id.clone(),
            foreign_session: alice_sessions[0].id.clone(),
            own_session: bob_sessions[0].id.clone(),
            client_id: confidential.client_id,
            client_secret: confidential.client_secret.unwrap(),
            public_client_id: public.client_id,
            sealed_request,
            user_code: device["user_code"].as_str().unwrap().to_owned(),
            device_code: device["device_code"].as_str().unwrap().to_owned(),
            id_token,
        };
        (app, alice, alice_desktop, alice_session, known, doc, discovery)
    });
    let before = runtime.block_on(app.poll(&alice_desktop));

    // The routes, from what the server itself says it has.
    let mut routes = Vec::new();
    let api_paths = doc["paths"].as_object().unwrap();
    for (path, operations) in api_paths {
        for (method, op) in operations.as_object().unwrap() {
            let security: Vec<String> = op["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_object()?.keys().next().cloned())
                .collect();
            let mut auth = vec![Auth::None];
            if security
                .iter()
                .any(|s| s == "bearer" || s == "session_cookie")
            {
                auth.push(Auth::Session);
            }
            if security.iter().any(|s| s == "bind_cookie") {
                auth.push(Auth::Bind);
            }
            routes.push(Route {
                method: Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                path: path.clone(),
                refuses: Refuses::Api,
                inputs: api_inputs(&doc, op, &known),
                auth,
            });
        }
    }
    let api_operations = routes.len();
    // Not in the document: the API's fallbacks, and the health check.
    routes.push(Route {
        method: Method::GET,
        path: "/api/v1/{rest}".into(),
        refuses: Refuses::Api,
        inputs: vec![text("rest", At::Path, &["nothing", "logins/x/y"])],
        auth: vec![Auth::None, Auth::Session],
    });
    routes.push(Route {
        method: Method::GET,
        path: "/healthz".into(),
        refuses: Refuses::Browser,
        inputs: vec![],
        auth: vec![Auth::None],
    });
    let oauth = oauth_routes(&known);
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "end_session_endpoint",
        "device_authorization_endpoint",
    ] {
        let url = discovery[endpoint].as_str().unwrap();
        let path = url.trim_start_matches("http://127.0.0.1:3000");
        assert!(
            oauth.iter().any(|r| r.path == path),
            "discovery's {endpoint} {path} is not fuzzed"
        );
    }
    routes.extend(oauth);
    let pages = server::http::page_routes();
    for page in &pages {
        let path = page
            .path()
            .replace(":id", "{id}")
            .replace(":token", "{token}")
            .replace(":username", "{username}");
        let mut inputs = page_inputs(&known);
        if path.contains("{token}") {
            inputs.push(text("token", At::Path, &[UNKNOWN_INVITE]));
        }
        if path.contains("{username}") {
            inputs.push(text("username", At::Path, &["alice", "bob"]));
        }
        if path.contains("{id}") {
            inputs.push(text(
                "id",
                At::Path,
                &[known.attempt.0.as_str(), known.foreign_attempt.as_str()],
            ));
        }
        routes.push(Route {
            method: Method::GET,
            path,
            refuses: Refuses::Browser,
            inputs,
            auth: vec![Auth::None, Auth::Session],
        });
    }
    let page_count = pages.len();
    let arguments = server_fn_arguments();
    let registered: Vec<(&str, axum::http::Method)> =
        leptos::server_fn::axum::server_fn_paths().collect();
    for (path, method) in &registered {
        let name = path
            .trim_start_matches("/fn/")
            .trim_end_matches(|c: char| c.is_ascii_digit());
        let (_, args) = arguments
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("server function {path}: its arguments are not known"));
        routes.push(Route {
            method: method.clone(),
            path: (*path).to_owned(),
            refuses: Refuses::Browser,
            inputs: args
                .iter()
                .map(|(arg, ty)| server_fn_input(arg, ty, &known))
                .collect(),
            auth: vec![Auth::None, Auth::Session],
        });
    }
    assert_eq!(
        registered.len(),
        arguments.len(),
        "every #[server] function is registered and fuzzed"
    );
    assert!(api_operations >= 14 && page_count >= 6 && registered.len() >= 20);

    let mut rng = StdRng::seed_from_u64(
        std::env::var("QRLOGIN_FUZZ_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5),
    );
    let started = std::time::Instant::now();
    let mut sent = 0usize;
    let verbose = std::env::var_os("QRLOGIN_FUZZ_VERBOSE").is_some();
    for route in &routes {
        let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
        for _ in 0..per_route {
            let (method, uri, sent_body, call) = request(&mut rng, route, &known);
            let shown: String = uri.chars().take(200).collect();
            assert!(axum::http::Uri::try_from(uri.as_str()).is_ok(), "{shown}");
            let response = runtime.block_on(app.send(call));
            sent += 1;
            let status = response.status();
            *statuses.entry(status.as_u16()).or_default() += 1;
            if status.is_server_error() {
                let bytes = runtime.block_on(body_bytes(response));
                panic!(
                    "{method} {shown} [{sent_body}] → {status}: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
                );
            }
            if !status.is_client_error() || method == Method::HEAD {
                continue;
            }
            let on_route = method == route.method;
            let bytes = runtime.block_on(body_bytes(response));
            match route.refuses {
                Refuses::Api => {
                    let error: Result<ApiErrorBody, _> = serde_json::from_slice(&bytes);
                    assert!(
                        error.is_ok(),
                        "{method} {shown} → {status}: {}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
                // 413 and 405 come before the endpoint (the guard, the router).
                Refuses::OAuth if on_route && status != StatusCode::PAYLOAD_TOO_LARGE => {
                    let error: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                    assert!(
                        error["error"].is_string() && error["error_description"].is_string(),
                        "{method} {shown} → {status}: {}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
                _ => {}
            }
        }
        if verbose {
            eprintln!("{} {}: {statuses:?}", route.method, route.path);
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "fuzz (every route): {} routes ({api_operations} API operations, {} OAuth, {page_count} pages, {} server functions, 2 more), {sent} requests in {elapsed:.1?}",
        routes.len(),
        routes.len() - api_operations - page_count - registered.len() - 2,
        registered.len(),
    );

    // The other account's data is as it was.
    runtime.block_on(async {
        let after = app.poll(&alice_desktop).await;
        assert_eq!((after.state, after.version), (before.state, before.version));
        let me = Call::new(Method::GET, paths::ME).cookie(&alice_session);
        assert_eq!(app.send(me).await.status(), StatusCode::OK);
        assert_eq!(app.sessions(&alice).await.len(), 2);
    });
}
