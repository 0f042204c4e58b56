//! The HTTP transport: API v1, the Leptos pages, `/healthz`, and the
//! defences every request passes. Handlers extract, call one service
//! method and map its result; [`error`] holds the one table from service
//! errors to statuses and machine codes.

pub(crate) mod api;
pub(crate) mod cookies;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod openapi;
pub(crate) mod pages;
pub(crate) mod security;
pub(crate) mod views;

use std::{net::IpAddr, sync::Arc};

use app::{backend::Backend, shell, App};
use axum::{
    extract::FromRef,
    http::{header, HeaderValue},
    middleware::from_fn_with_state,
    routing::{any, get},
    Json, Router,
};
use leptos::prelude::{provide_context, use_context, LeptosOptions};
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::{
    limit::RequestBodyLimitLayer, set_header::SetResponseHeaderLayer, trace::TraceLayer,
};

use crate::{
    config::{PublicUrl, Settings},
    services::Services,
    storage::{self, OpenError, Stores},
};

/// Everything a request handler may need. One `Arc`: axum clones the state
/// for every extractor and middleware of every request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    pub services: Services,
    pub leptos_options: LeptosOptions,
    pub public_url: PublicUrl,
    /// Proxies whose forwarding headers name the real client.
    pub trusted_proxies: Arc<[IpAddr]>,
    /// The OpenAPI document, as served.
    pub openapi: openapi::Document,
    /// The site's CSS, inlined into pages (not under `cargo leptos watch`,
    /// which live-reloads the stylesheet link).
    pub inline_style: Option<app::InlineStyle>,
}

impl AppState {
    /// State over the stores the settings' database URL names.
    pub async fn open(settings: &Settings) -> Result<Self, OpenError> {
        Ok(Self::with_stores(
            settings,
            storage::open(&settings.database).await?,
        ))
    }

    pub fn with_stores(settings: &Settings, stores: Stores) -> Self {
        let leptos_options = LeptosOptions::builder()
            .output_name("qrlogin")
            .site_root(settings.site_root.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .site_addr(settings.addr)
            .reload_port(
                std::env::var("LEPTOS_RELOAD_PORT")
                    .ok()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(3001),
            )
            .build();
        Self(Arc::new(Shared {
            services: Services::new(stores, settings.ttls, settings.limits),
            openapi: openapi::to_pretty_json(&openapi::routes().1).into(),
            leptos_options,
            public_url: settings.public_url.clone(),
            trusted_proxies: settings.trusted_proxies.clone().into(),
            inline_style: std::env::var_os("LEPTOS_WATCH")
                .is_none()
                .then(|| std::fs::read_to_string(settings.site_root.join("pkg/qrlogin.css")).ok())
                .flatten()
                .map(|css| app::InlineStyle(css.into())),
        }))
    }
}

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

/// The whole application; tests call this directly.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let leptos_options = state.leptos_options.clone();
    // The pages' server functions reach the services through this port.
    let backend: Arc<dyn Backend> = Arc::new(state.clone());
    let inline_style = state.inline_style.clone();
    let provide_backend = move || {
        provide_context(backend.clone());
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
    Router::new()
        .merge(api_routes())
        .route("/healthz", get(healthz))
        .leptos_routes_with_context(&state, routes, provide_backend.clone(), move || {
            shell(leptos_options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(provide_backend, shell))
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(
            security::MAX_BODY_BYTES,
        ))
        .layer(RequestBodyLimitLayer::new(security::MAX_BODY_BYTES))
        .layer(from_fn_with_state(state.clone(), security::guard))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
