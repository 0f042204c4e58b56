//! The qrlogin server: API v1, the Leptos pages, and the stores behind them.

pub mod account;
pub mod audit;
pub mod client;
pub mod config;
pub mod error;
pub mod extract;
pub mod limits;
pub mod login;
pub mod pages;
pub mod secret;
pub mod session;
pub mod sqlite_writer;
pub mod web_security;

use std::{sync::Arc, time::Duration};

use app::{backend::Backend, shell, App};
use axum::middleware::from_fn_with_state;
use axum::{
    extract::FromRef,
    http::{header, HeaderValue},
    routing::{any, delete, get, post},
    Json, Router,
};
use leptos::prelude::{provide_context, use_context, LeptosOptions};
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::{
    limit::RequestBodyLimitLayer, set_header::SetResponseHeaderLayer, trace::TraceLayer,
};

use crate::{
    account::{
        cache::CachedSessions,
        store::{AccountStore, AccountStoreError, SqliteAccountStore},
    },
    config::{PublicUrl, Settings, Ttls},
    limits::RateLimits,
    login::store::{LoginStore, MemoryLoginStore},
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
    pub leptos_options: LeptosOptions,
    pub logins: Arc<dyn LoginStore>,
    pub accounts: Arc<dyn AccountStore>,
    pub audit: audit::AuditLog,
    pub public_url: Arc<PublicUrl>,
    pub ttls: Ttls,
    pub limits: Arc<RateLimits>,
    /// Proxies whose forwarding headers name the real client.
    pub trusted_proxies: Arc<[std::net::IpAddr]>,
    /// The site's CSS, inlined into pages (not under `cargo leptos watch`,
    /// which live-reloads the stylesheet link).
    pub inline_style: Option<app::InlineStyle>,
}

impl AppState {
    /// State with the default stores: attempts in memory, accounts and
    /// sessions in the SQLite file of the settings.
    pub async fn open(settings: &Settings) -> Result<Self, AccountStoreError> {
        let accounts = SqliteAccountStore::open(&settings.database).await?;
        let audit = audit::AuditLog::new(accounts.writer().clone());
        Ok(Self::with_stores(
            settings,
            Arc::new(MemoryLoginStore::default()),
            Arc::new(CachedSessions::new(accounts)),
            audit,
        ))
    }

    pub fn with_stores(
        settings: &Settings,
        logins: Arc<dyn LoginStore>,
        accounts: Arc<dyn AccountStore>,
        audit: audit::AuditLog,
    ) -> Self {
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
            leptos_options,
            logins,
            accounts,
            audit,
            public_url: Arc::new(settings.public_url.clone()),
            ttls: settings.ttls,
            limits: RateLimits::new(settings.limits),
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

/// The JSON API, under `/api`. Its own fallbacks keep every answer JSON.
fn api_routes() -> Router<AppState> {
    use account::routes::{list_sessions, me, revoke_session, sign_in, sign_out};
    use login::routes::{
        approve_login, cancel_login, create_login, deny_login, get_login, redeem_login, scan_login,
    };
    let login = |tail: &str| format!("{}/{{id}}{tail}", app::api::LOGINS_PATH);
    Router::new()
        .route(app::api::LOGINS_PATH, post(create_login))
        .route(&login(""), get(get_login).delete(cancel_login))
        .route(&login("/redeem"), post(redeem_login))
        .route(&login("/scan"), post(scan_login))
        .route(&login("/approve"), post(approve_login))
        .route(&login("/deny"), post(deny_login))
        .route("/api/v1/session", post(sign_in).delete(sign_out))
        .route("/api/v1/me", get(me))
        .route("/api/v1/sessions", get(list_sessions))
        .route("/api/v1/sessions/{id}", delete(revoke_session))
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
    // The pages' server functions reach the stores through this port.
    let backend: Arc<dyn Backend> = Arc::new(state.clone());
    let inline_style = state.inline_style.clone();
    let provide_backend = move || {
        provide_context(backend.clone());
        if let Some(style) = &inline_style {
            provide_context(style.clone());
        }
        // The scripts must carry the nonce the CSP header names.
        let nonce = use_context::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<web_security::CspNonce>().cloned());
        if let Some(web_security::CspNonce(nonce)) = nonce {
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
            web_security::MAX_BODY_BYTES,
        ))
        .layer(RequestBodyLimitLayer::new(web_security::MAX_BODY_BYTES))
        .layer(from_fn_with_state(state.clone(), web_security::guard))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Runs forever: every `every`, [`purge_once`].
pub async fn purge_finished_logins(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        purge_once(&state, login::now_millis()).await;
    }
}

/// Drops attempts that ended long ago (auditing the ones that expired) and
/// idle rate-limit keys.
pub async fn purge_once(state: &AppState, now: login::UnixMillis) {
    state.limits.forget_idle();
    match state.logins.purge(now).await {
        Ok(purged) => {
            for attempt in purged
                .iter()
                .filter(|a| a.state == app::api::LoginState::Expired)
            {
                state.audit.record_expired(attempt);
            }
            if !purged.is_empty() {
                tracing::debug!(purged = purged.len(), "purged finished login attempts");
            }
        }
        Err(err) => tracing::warn!(error = %err, "purging login attempts failed"),
    }
}
