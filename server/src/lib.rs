//! The qrlogin server: API v1, the Leptos pages, and the stores behind them.

pub mod config;
pub mod error;
pub mod login;

use std::{sync::Arc, time::Duration};

use app::{shell, App};
use axum::{
    extract::FromRef,
    http::{header, HeaderValue},
    routing::{any, get, post},
    Json, Router,
};
use leptos::prelude::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::{set_header::SetResponseHeaderLayer, trace::TraceLayer};

use crate::{
    config::{PublicUrl, Settings, Ttls},
    login::store::{LoginStore, MemoryLoginStore},
};

/// Everything a request handler may need; cheap to clone.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub logins: Arc<dyn LoginStore>,
    pub public_url: Arc<PublicUrl>,
    pub ttls: Ttls,
}

impl AppState {
    /// State with the default in-memory stores.
    pub fn new(settings: &Settings) -> Self {
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
        Self {
            leptos_options,
            logins: Arc::new(MemoryLoginStore::default()),
            public_url: Arc::new(settings.public_url.clone()),
            ttls: settings.ttls,
        }
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The JSON API, under `/api`. Its own fallbacks keep every answer JSON.
fn api_routes() -> Router<AppState> {
    use login::routes::{create_login, get_login};
    Router::new()
        .route(app::api::LOGINS_PATH, post(create_login))
        .route(&format!("{}/{{id}}", app::api::LOGINS_PATH), get(get_login))
        .route("/api", any(error::route_not_found))
        .route("/api/{*rest}", any(error::route_not_found))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

/// The whole application; tests call this directly.
pub fn app(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let leptos_options = state.leptos_options.clone();
    Router::new()
        .merge(api_routes())
        .route("/healthz", get(healthz))
        .leptos_routes(&state, routes, move || shell(leptos_options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Runs forever: drops attempts that ended long ago.
pub async fn purge_finished_logins(logins: Arc<dyn LoginStore>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match logins.purge(login::now_millis()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "purged finished login attempts"),
            Err(err) => tracing::warn!(error = %err, "purging login attempts failed"),
        }
    }
}
