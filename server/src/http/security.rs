//! Browser-facing defences: security headers on every response, and a CSRF
//! check on state-changing requests (on top of SameSite cookies).

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderName, HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{error::ApiError, state::AppState};

/// The policy for everything that is not a page (JSON, static files): load
/// nothing, be framed by nobody.
pub(crate) const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The policy of an HTML page: only this origin's scripts and the inline
/// hydration script carrying `nonce`; WebAssembly compiled from them.
pub(crate) fn page_csp(nonce: &str, reload_port: Option<u32>) -> String {
    // `cargo leptos watch` reloads the page over a websocket on its own port.
    let reload = reload_port
        .map(|port| format!(" ws://127.0.0.1:{port} ws://localhost:{port}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; connect-src 'self'{reload}; \
         manifest-src 'self'; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
}

/// This request's CSP nonce, made here and handed to Leptos (through the
/// request's extensions), so the header and the page's scripts agree.
#[derive(Debug, Clone)]
pub(crate) struct CspNonce(pub String);

impl CspNonce {
    fn new_random() -> Self {
        use base64::{engine::general_purpose::STANDARD_NO_PAD, Engine};
        let mut bytes = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        Self(STANDARD_NO_PAD.encode(bytes))
    }
}

fn set_if_absent(headers: &mut HeaderMap, name: HeaderName, value: &'static str) {
    if !headers.contains_key(&name) {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// The one middleware every request passes: size limits and the CSRF check
/// before any handler, then the security headers on whatever answers; the
/// handler runs in the request's own [`scope`](crate::storage::scope). (One
/// layer rather than three: each `from_fn` layer costs a service clone and
/// a boxed future per request.)
pub(crate) async fn guard(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    // Only pages need a nonce; the API (most requests) never answers HTML.
    let nonce = (!request.uri().path().starts_with("/api/")).then(CspNonce::new_random);
    let server_fn = request.uri().path().starts_with(SERVER_FN_PREFIX);
    let mut response = match oversized(&request).or_else(|| cross_site(&state, &request)) {
        Some(refusal) => refusal.into_response(),
        None => {
            if let Some(nonce) = &nonce {
                request.extensions_mut().insert(nonce.clone());
            }
            // The revocation clock is read at most once per request.
            crate::storage::scope::run(next.run(request)).await
        }
    };
    if server_fn {
        response = server_fn_refusal(response).await;
    }
    add_security_headers(&state, response.headers_mut(), nonce);
    response
}

/// Adds the security headers a response lacks; pages get the policy that
/// names their `nonce`.
fn add_security_headers(state: &AppState, headers: &mut HeaderMap, nonce: Option<CspNonce>) {
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if let Some(nonce) = nonce.filter(|_| is_html) {
        if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
            let reload_port =
                std::env::var_os("LEPTOS_WATCH").map(|_| state.leptos_options.reload_port);
            if let Ok(value) = HeaderValue::from_str(&page_csp(&nonce.0, reload_port)) {
                headers.insert(header::CONTENT_SECURITY_POLICY, value);
            }
        }
        // A page's language comes from these (the `lang` cookie first).
        set_if_absent(headers, header::VARY, "Accept-Language, Cookie");
    }
    set_if_absent(headers, header::CONTENT_SECURITY_POLICY, DEFAULT_CSP);
    set_if_absent(headers, header::X_FRAME_OPTIONS, "DENY");
    // Login ids appear in URLs: never leak them to other sites.
    set_if_absent(headers, header::REFERRER_POLICY, "no-referrer");
    set_if_absent(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set_if_absent(
        headers,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if state.public_url.is_https() {
        set_if_absent(
            headers,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        );
    }
}

/// Whether a state-changing request may come from where the browser says it
/// comes from. Requests that carry neither `Sec-Fetch-Site` nor `Origin`
/// are not from a browser's cross-site form or fetch (apps, scripts).
pub(crate) fn same_origin_request(headers: &HeaderMap, public_origin: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        // "none": typed into the address bar or a bookmark.
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        None => true,
        Some(origin) => {
            origin == public_origin
                || headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .is_some_and(|host| {
                        origin == format!("http://{host}") || origin == format!("https://{host}")
                    })
        }
    }
}

/// Cross-site POST/PUT/PATCH/DELETE are refused with 403.
fn cross_site(state: &AppState, request: &Request) -> Option<ApiError> {
    let changes_state = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    // The OAuth endpoints clients call take no cookie: nothing to forge.
    // The authorization endpoint's POST is its GET as a form (OpenID
    // Connect Core §3.1.2.1), which any site may send a browser to.
    let exempt = super::oidc::CLIENT_ENDPOINTS.contains(&request.uri().path())
        || request.uri().path() == app::api::paths::AUTHORIZE;
    if changes_state
        && !exempt
        && !same_origin_request(request.headers(), state.public_url.origin())
    {
        tracing::warn!(
            method = %request.method(),
            path = request.uri().path(),
            origin = ?request.headers().get(header::ORIGIN),
            "cross-site request refused"
        );
        return Some(ApiError::CrossSite);
    }
    None
}

/// Largest request body anything here accepts (JSON calls and forms are tiny).
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest total size of a request's header names and values.
pub(crate) const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Where the pages' server functions are (`#[server(prefix = "/fn")]`).
const SERVER_FN_PREFIX: &str = "/fn/";

/// The errors `server_fn` raises itself before a server function runs,
/// all of them about what the client sent: arguments missing, repeated or
/// not of their type, a body it cannot read.
const SERVER_FN_INPUT_ERRORS: [&str; 4] = ["Args|", "MissingArg|", "Deserialization|", "Request|"];

/// `server_fn` answers every error with 500; one about the request (bad
/// arguments, a body it cannot read) is the client's: 400. The server
/// functions' own refusals already carry their status (`page_error`), and
/// their failures stay 5xx.
async fn server_fn_refusal(response: Response) -> Response {
    if response.status() != axum::http::StatusCode::INTERNAL_SERVER_ERROR
        || !response.headers().contains_key("serverfnerror")
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Its errors are a line of text; anything longer is not one of these.
    let bytes = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(bytes) => bytes,
        Err(err) => return ApiError::internal(err).into_response(),
    };
    if SERVER_FN_INPUT_ERRORS
        .iter()
        .any(|prefix| bytes.starts_with(prefix.as_bytes()))
    {
        parts.status = axum::http::StatusCode::BAD_REQUEST;
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Oversized headers and declared bodies are refused with JSON errors.
/// (Undeclared, streamed bodies are cut off by the body limit layer while
/// they are read.)
fn oversized(request: &Request) -> Option<ApiError> {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Some(ApiError::HeadersTooLarge);
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    declared
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        .then_some(ApiError::PayloadTooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn the_page_policy_allows_only_own_and_nonced_scripts() {
        let csp = page_csp("abc", None);
        assert!(csp.contains("script-src 'self' 'nonce-abc' 'wasm-unsafe-eval';"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"));
        assert!(page_csp("abc", Some(3001)).contains("ws://127.0.0.1:3001"));
        assert_ne!(CspNonce::new_random().0, CspNonce::new_random().0);
    }

    #[test]
    fn only_same_origin_browsers_and_non_browsers_pass() {
        let origin = "https://login.example.com";
        assert!(same_origin_request(&headers(&[]), origin));
        assert!(same_origin_request(
            &headers(&[("sec-fetch-site", "same-origin")]),
            origin
        ));
        assert!(!same_origin_request(
            &headers(&[("sec-fetch-site", "cross-site")]),
            origin
        ));
        assert!(!same_origin_request(
            &headers(&[("sec-fetch-site", "same-site")]),
            origin
        ));
        assert!(same_origin_request(
            &headers(&[("origin", "https://login.example.com")]),
            origin
        ));
        assert!(!same_origin_request(
            &headers(&[("origin", "https://evil.example")]),
            origin
        ));
        assert!(!same_origin_request(
            &headers(&[("origin", "null")]),
            origin
        ));
        assert!(same_origin_request(
            &headers(&[
                ("origin", "http://127.0.0.1:3000"),
                ("host", "127.0.0.1:3000")
            ]),
            origin
        ));
    }
}
