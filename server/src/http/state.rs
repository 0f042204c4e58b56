//! What every handler may use: the services and the settings they need.

use std::{net::IpAddr, sync::Arc};

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;

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
    /// Whether requests are counted for `/metrics`.
    pub metrics: bool,
    /// The site's CSS, inlined into pages (not under `cargo leptos watch`,
    /// which live-reloads the stylesheet link).
    pub inline_style: Option<app::InlineStyle>,
}

impl AppState {
    /// State over the stores the settings' database URL names.
    pub async fn open(settings: &Settings) -> Result<Self, OpenError> {
        Ok(Self::with_stores(
            settings,
            storage::open(&settings.database, settings.redis.as_ref()).await?,
        ))
    }

    /// The state over `stores`; inside a Tokio runtime, with the
    /// back-channel logout worker running (it ends with the state).
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
        let services = Services::new(
            stores,
            settings.ttls,
            settings.limits,
            settings.public_url.as_str(),
            settings.approvals,
        )
        .with_registration(settings.registration);
        if tokio::runtime::Handle::try_current().is_ok() {
            services.oidc.backchannel().spawn_worker();
        }
        Self(Arc::new(Shared {
            services,
            leptos_options,
            public_url: settings.public_url.clone(),
            trusted_proxies: settings.trusted_proxies.clone().into(),
            metrics: settings.metrics_addr.is_some(),
            inline_style: std::env::var_os("LEPTOS_WATCH")
                .is_none()
                .then(|| std::fs::read_to_string(settings.site_root.join("pkg/qrlogin.css")).ok())
                .flatten()
                .map(|css| app::InlineStyle(css.into())),
        }))
    }
}
