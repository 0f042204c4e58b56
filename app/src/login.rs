//! The desktop's `/login` page: the QR code and the wait loop behind it.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::Brand;

/// What the QR area shows. (The server only ever renders `Preparing`.)
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Asking the server for a code (also what the server renders).
    Preparing,
    /// A code is on screen, waiting for a phone to scan it.
    Showing { login_id: String, svg: String },
    /// The page replaced expired codes as often as it may; a click restarts.
    Expired,
    /// The server could not be reached; the loop keeps retrying.
    Trouble(String),
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Self::Preparing => "preparing",
            Self::Showing { .. } => "pending",
            Self::Expired => "expired",
            Self::Trouble(_) => "trouble",
        }
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let phase = RwSignal::new(Phase::Preparing);
    // Whole seconds the current code stays valid, once there is one.
    let seconds_left = RwSignal::new(None::<u64>);

    #[cfg(feature = "hydrate")]
    {
        let alive = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let on_leave = alive.clone();
        on_cleanup(move || on_leave.store(false, std::sync::atomic::Ordering::Relaxed));
        Effect::new(move |_| wait_loop::start(phase, seconds_left, alive.clone()));
    }

    let restart = move |_| {
        #[cfg(feature = "hydrate")]
        wait_loop::start(
            phase,
            seconds_left,
            std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
        );
    };

    let qr_area = move || match phase.get() {
        Phase::Preparing => view! {
            <div class="qr-placeholder" aria-busy="true">
                <span class="spinner" aria-hidden="true"></span>
                <span>"Preparing your code…"</span>
            </div>
        }
        .into_any(),
        Phase::Showing { login_id, svg } => view! {
            <div
                class="qr"
                role="img"
                aria-label="QR code to sign in"
                data-login-id=login_id
                inner_html=svg
            ></div>
        }
        .into_any(),
        Phase::Expired => view! {
            <div class="qr-placeholder">
                <strong>"Code expired — refresh"</strong>
                <button class="button" on:click=restart>"Refresh code"</button>
            </div>
        }
        .into_any(),
        Phase::Trouble(message) => view! {
            <div class="qr-placeholder" role="alert">
                <span class="spinner" aria-hidden="true"></span>
                <span>{message}</span>
            </div>
        }
        .into_any(),
    };

    let validity = move || match seconds_left.get() {
        Some(s) => format!("Code valid for {}:{:02}", s / 60, s % 60),
        None => String::new(),
    };

    view! {
        <Title text="Sign in · qrlogin"/>
        <section class="card login" data-state=move || phase.with(Phase::name)>
            <Brand/>
            <h1>"Sign in with your phone"</h1>
            <div class="qr-frame" aria-live="polite">{qr_area}</div>
            <p class="status">"Scan with your phone"</p>
            <p class="validity">{validity}</p>
            <ol class="steps">
                <li>"Open the camera on a phone where you are signed in to qrlogin."</li>
                <li>"Point it at the code and open the link."</li>
                <li>"Check the request and confirm on your phone."</li>
            </ol>
            <noscript>
                <p class="notice">"This page needs JavaScript to show your sign-in code."</p>
            </noscript>
        </section>
    }
}

/// The browser side: create a code, show it, replace it when it runs out.
#[cfg(feature = "hydrate")]
mod wait_loop {
    use std::sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    };

    use gloo_net::http::Request;
    use gloo_timers::future::TimeoutFuture;
    use leptos::{prelude::*, task::spawn_local};

    use super::Phase;
    use crate::{
        api::{ApiErrorBody, LoginCreated, LOGINS_PATH},
        qr::qr_svg,
    };

    /// SPEC: an expired code is replaced by itself up to 5 times.
    const AUTOMATIC_REPLACEMENTS: u32 = 5;
    const MAX_BACKOFF_MS: u32 = 30_000;

    async fn create_login() -> Result<LoginCreated, String> {
        let response = Request::post(LOGINS_PATH)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|_| "cannot reach the server".to_owned())?;
        if response.status() == 201 {
            return response
                .json::<LoginCreated>()
                .await
                .map_err(|_| "unexpected answer from the server".to_owned());
        }
        Err(match response.json::<ApiErrorBody>().await {
            Ok(body) => body.message,
            Err(_) => format!("the server answered {}", response.status()),
        })
    }

    pub fn start(
        phase: RwSignal<Phase>,
        seconds_left: RwSignal<Option<u64>>,
        alive: Arc<AtomicBool>,
    ) {
        spawn_local(async move {
            let is_alive = || alive.load(Ordering::Relaxed);
            let mut codes_shown = 0;
            let mut backoff_ms = 1_000;
            while is_alive() {
                let created = match create_login().await {
                    Ok(created) => created,
                    Err(reason) => {
                        let wait_s = backoff_ms / 1000;
                        phase.try_set(Phase::Trouble(format!(
                            "Trouble connecting: {reason}. Retrying in {wait_s} s…"
                        )));
                        seconds_left.try_set(None);
                        TimeoutFuture::new(backoff_ms).await;
                        backoff_ms = (backoff_ms * 2).min(MAX_BACKOFF_MS);
                        continue;
                    }
                };
                backoff_ms = 1_000;
                codes_shown += 1;
                let svg = match qr_svg(&created.qr_url) {
                    Ok(svg) => svg,
                    Err(_) => {
                        phase.try_set(Phase::Trouble("Cannot draw the code.".into()));
                        return;
                    }
                };
                phase.try_set(Phase::Showing {
                    login_id: created.id.clone(),
                    svg,
                });
                // Count down on our own clock from the server's `expires_in`,
                // so a wrong desktop clock cannot shorten or stretch it.
                let deadline = js_sys::Date::now() + created.expires_in as f64 * 1000.0;
                loop {
                    let left_ms = deadline - js_sys::Date::now();
                    if left_ms <= 0.0 || !is_alive() {
                        break;
                    }
                    seconds_left.try_set(Some((left_ms / 1000.0).ceil() as u64));
                    let tick = left_ms % 1000.0;
                    TimeoutFuture::new(if tick < 1.0 { 1000 } else { tick as u32 }).await;
                }
                seconds_left.try_set(None);
                if codes_shown > AUTOMATIC_REPLACEMENTS {
                    phase.try_set(Phase::Expired);
                    return;
                }
            }
        });
    }
}
