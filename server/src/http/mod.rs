//! The HTTP transport: API v1, the Leptos pages, `/healthz`, and the
//! defences every request passes. Handlers extract, call one service
//! method and map its result; [`error`] holds the one table from service
//! errors to statuses and machine codes.

pub(crate) mod admin_pages;
pub(crate) mod api;
pub(crate) mod cookies;
pub(crate) mod error;
pub(crate) mod extract;
pub mod metrics;
pub(crate) mod oidc;
pub(crate) mod openapi;
pub(crate) mod pages;
pub(crate) mod security;
pub(crate) mod state;
pub(crate) mod views;

use std::sync::{Arc, OnceLock};

use app::{admin::port::AdminBackend, backend::Backend, shell, App};
use axum::{
    http::{header, HeaderValue},
    middleware::from_fn_with_state,
    routing::{any, get},
    Json, Router,
};
use leptos::prelude::{provide_context, use_context};
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use tower::ServiceBuilder;
use tower_http::{
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    trace::TraceLayer,
};

pub use state::AppState;

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The JSON API, under `/api`: API v1's routes as its OpenAPI document
/// declares them, and fallbacks that keep every answer JSON.
fn api_routes() -> Router<AppState> {
    let (routes, _) = openapi::routes();
    routes
        .route("/api", any(error::route_not_found))
        .route("/api/{*rest}", any(error::route_not_found))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

/// The pages' routes, listed once per process. Listing renders the app
/// with leptos's process-wide "load no resources" flag set
/// (`SuppressResourceLoad`): a page rendered meanwhile on another thread
/// would wait forever for its data. Listed once, before any router exists,
/// no request can be under way while it is set (tests build many routers
/// in one process, while others serve).
pub fn page_routes() -> Vec<AxumRouteListing> {
    static ROUTES: OnceLock<Vec<AxumRouteListing>> = OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// The whole application; tests call this directly.
pub fn router(state: AppState) -> Router {
    let routes = page_routes();
    let leptos_options = state.leptos_options.clone();
    // The pages' server functions reach the services through this port.
    let backend: Arc<dyn Backend> = Arc::new(state.clone());
    // …and the admin console's, through its own.
    let admin_backend: Arc<dyn AdminBackend> = Arc::new(state.clone());
    let inline_style = state.inline_style.clone();
    let provide_backend = move || {
        provide_context(backend.clone());
        provide_context(admin_backend.clone());
        if let Some(style) = &inline_style {
            provide_context(style.clone());
        }
        // The scripts must carry the nonce the CSP header names.
        let nonce = use_context::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<security::CspNonce>().cloned());
        if let Some(security::CspNonce(nonce)) = nonce {
            provide_context(leptos::nonce::Nonce::from_value(nonce));
        }
    };
    let mut routes = Router::new()
        .merge(api_routes())
        .merge(oidc::routes())
        .route("/healthz", get(healthz))
        .leptos_routes_with_context(&state, routes, provide_backend.clone(), move || {
            shell(leptos_options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(provide_backend, shell))
        .method_not_allowed_fallback(error::method_not_allowed);
    // Only when metrics are on: the route label costs an allocation.
    if state.metrics {
        routes = routes.route_layer(axum::middleware::from_fn(metrics::tag_route));
    }
    // What every request passes, built as one service around the routes
    // rather than as `Router::layer`s: each of those wraps every route in
    // its own boxed service and future, which a waiting long poll holds for
    // as long as it waits (≈4 KiB per waiting desktop, see BENCHMARKS.md).
    let trusted_proxies = state.trusted_proxies.clone();
    let edge = ServiceBuilder::new()
        // Every log line of a request carries its id, and so does the
        // answer: a trusted proxy's X-Request-Id (so its logs and ours
        // meet), else a new UUID. A client's own never counts: it could
        // forge or collide with another request's lines.
        .map_request(move |request| proxy_request_id_only(&trusted_proxies, request))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .option_layer(
            state
                .metrics
                .then(|| axum::middleware::from_fn(metrics::record)),
        )
        .layer(from_fn_with_state(state.clone(), security::guard))
        .layer(RequestBodyLimitLayer::new(security::MAX_BODY_BYTES))
        .layer(axum::extract::DefaultBodyLimit::max(
            security::MAX_BODY_BYTES,
        ))
        .service(routes.with_state(state));
    Router::new().fallback_service(edge)
}

/// Keeps an incoming `X-Request-Id` only from a trusted proxy, and only a
/// plain one (at most 64 letters, digits, `-` and `_`) on a line of its
/// own: of several, the first may be a client's that a proxy passed on
/// when it added its own.
fn proxy_request_id_only(
    trusted_proxies: &[std::net::IpAddr],
    mut request: axum::extract::Request,
) -> axum::extract::Request {
    let from_proxy =
        extract::peer_ip(request.extensions()).is_some_and(|ip| trusted_proxies.contains(&ip));
    let mut ids = request.headers().get_all("x-request-id").iter();
    let plain = match (ids.next(), ids.next()) {
        (Some(id), None) => {
            id.len() <= 64
                && id
                    .as_bytes()
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        }
        _ => false,
    };
    if !(from_proxy && plain) {
        request.headers_mut().remove("x-request-id");
    }
    request
}

/// The span every log line of a request is recorded in.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|id| id.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        request_id,
        method = %request.method(),
        path = request.uri().path(),
    )
}
