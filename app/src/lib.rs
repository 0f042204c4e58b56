//! qrlogin's pages and the types the server and the browser share.

pub mod admin;
pub mod api;
#[cfg(feature = "ssr")]
pub mod backend;
mod device;
pub mod i18n;
mod invite;
mod join;
mod link;
mod loader;
mod login;
mod passkey;
mod phone;
pub mod qr;
mod scanner;
pub mod server_fns;
mod words;

use leptos::{nonce::use_nonce, prelude::*};
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Redirect, Route, Router, Routes, A},
    path, SsrMode,
};

use crate::server_fns::{current_user, SignOut};

pub use device::DevicePage;
pub use invite::InvitePage;
pub use join::JoinPage;
pub use link::LinkPage;
pub use login::{AuthorizePage, LoginPage};
pub use phone::{PhoneHomePage, PhoneLoginPage};

/// The site's CSS, when the server inlines it into each page: a stylesheet
/// link blocks the page's scripts until it arrives, which delayed the first
/// QR by a round trip on a cold load. (5 kB; without it, a normal link.)
#[derive(Clone)]
pub struct InlineStyle(pub std::sync::Arc<str>);

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let inline_style = use_context::<InlineStyle>().map(|css| {
        view! { <style nonce=use_nonce() inner_html=css.0.to_string()></style> }
    });
    view! {
        <!DOCTYPE html>
        <html lang=i18n::lang().tag()>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <meta name="theme-color" content="#2563eb"/>
                <link rel="icon" href="/favicon.ico"/>
                // /m can be added to the home screen.
                <link rel="manifest" href="/manifest.webmanifest"/>
                <link rel="apple-touch-icon" href="/icons/icon-192.png"/>
                <AutoReload options=options.clone()/>
                <loader::IslandScripts options/>
                {inline_style}
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        {use_context::<InlineStyle>()
            .is_none()
            .then(|| view! { <Stylesheet id="leptos" href="/pkg/qrlogin.css"/> })}
        <Title text="qrlogin"/>
        <Router>
            <main class="page">
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=HomePage ssr=SsrMode::Async/>
                    <Route path=path!("/login") view=LoginPage/>
                    <Route path=path!("/authorize") view=AuthorizePage ssr=SsrMode::Async/>
                    <Route path=path!("/q/:id") view=PhoneLoginPage ssr=SsrMode::Async/>
                    <Route path=path!("/m") view=PhoneHomePage ssr=SsrMode::Async/>
                    <Route path=path!("/device") view=DevicePage ssr=SsrMode::Async/>
                    <Route path=path!("/invite/:token") view=InvitePage ssr=SsrMode::Async/>
                    <Route path=path!("/join") view=JoinPage ssr=SsrMode::Async/>
                    <Route path=path!("/m/link/:token") view=LinkPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin") view=admin::StatusPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/accounts") view=admin::AccountsPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/accounts/:username") view=admin::AccountPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/apps") view=admin::AppsPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/audit") view=admin::AuditPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/tokens") view=admin::TokensPage ssr=SsrMode::Async/>
                </Routes>
            </main>
            <footer class="page-footer">
                <i18n::LanguageSwitcher/>
            </footer>
        </Router>
    }
}

/// The brand line at the top of every card.
#[component]
pub(crate) fn Brand() -> impl IntoView {
    view! {
        <header class="brand">
            <span class="brand-mark" aria-hidden="true"></span>
            <span class="brand-name">"qrlogin"</span>
        </header>
    }
}

/// `/`: the signed-in desktop's page; sends others to `/login`.
#[component]
fn HomePage() -> impl IntoView {
    let user = Resource::new(|| (), |_| current_user());

    let body = move || {
        Suspend::new(async move {
            match user.await {
                Ok(Some(user)) => view! {
                    <SignedInHome
                        display_name=user.display_name
                        username=user.username
                        words=HomeWords::of(i18n::t())
                    />
                }
                .into_any(),
                _ => view! { <Redirect path="/login"/> }.into_any(),
            }
        })
    };
    view! {
        <Title text="qrlogin"/>
        <section class="card">
            <Brand/>
            <Suspense fallback=|| view! { <p class="lead">{i18n::t().loading}</p> }>{body}</Suspense>
        </section>
    }
}

i18n::words! {
    /// What [`SignedInHome`] says; given, since the login card's WASM
    /// draws it too and carries no catalogue.
    pub struct HomeWords { signed_in_as, home_lead, sign_out }
}

/// Who is signed in, and sign-out: the body of `/`, also shown by the
/// login card the moment it signs in (so the desktop never reloads).
#[component]
pub(crate) fn SignedInHome(
    display_name: String,
    username: String,
    words: HomeWords,
) -> impl IntoView {
    use leptos::server_fn::ServerFn;
    view! {
        <SessionWatch/>
        <h1 class="signed-in">{i18n::fill(&words.signed_in_as, &[&display_name])}</h1>
        <p class="lead">{i18n::fill(&words.home_lead, &[&username])}</p>
        // A plain form: works before (and without) any WASM.
        <form method="post" action=SignOut::url()>
            <input type="hidden" name="next" value="/login"/>
            <button class="button secondary" type="submit">{words.sign_out}</button>
        </form>
    }
}

/// The home page's only browser code: notices when this browser's session
/// is revoked elsewhere (e.g. from the phone) and goes back to `/login`.
#[island]
fn SessionWatch() -> impl IntoView {
    #[cfg(feature = "hydrate")]
    session_watch::start();
}

#[cfg(feature = "hydrate")]
mod session_watch {
    use std::sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    };

    use gloo_timers::future::TimeoutFuture;
    use leptos::{prelude::on_cleanup, task::spawn_local};

    const EVERY_MS: u32 = 3_000;

    pub fn start() {
        let alive = Arc::new(AtomicBool::new(true));
        let on_leave = alive.clone();
        on_cleanup(move || on_leave.store(false, Ordering::Relaxed));
        spawn_local(async move {
            while alive.load(Ordering::Relaxed) {
                TimeoutFuture::new(EVERY_MS).await;
                let Ok(response) = gloo_net::http::Request::get(crate::api::paths::ME)
                    .send()
                    .await
                else {
                    continue; // offline for a moment; try again
                };
                if response.status() == 401 && alive.load(Ordering::Relaxed) {
                    if let Some(window) = web_sys::window() {
                        let _ = window.location().assign("/login");
                    }
                    return;
                }
            }
        });
    }
}

#[component]
fn NotFound() -> impl IntoView {
    let t = i18n::t();
    view! {
        <Title text=t.not_found_title/>
        <section class="card">
            <Brand/>
            <h1>{t.not_found_heading}</h1>
            <p class="lead">{t.not_found_lead}</p>
            <A href="/login" attr:class="button">{t.go_to_sign_in}</A>
        </section>
    }
}
