//! qrlogin's pages and the types the server and the browser share.

pub mod api;
mod login;
pub mod qr;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    path,
};

pub use login::LoginPage;

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light"/>
                <link rel="icon" href="/favicon.ico"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
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
        <Stylesheet id="leptos" href="/pkg/qrlogin.css"/>
        <Title text="qrlogin"/>
        <Router>
            <main class="page">
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=HomePage/>
                    <Route path=path!("/login") view=LoginPage/>
                </Routes>
            </main>
        </Router>
    }
}

/// The brand line at the top of every card.
#[component]
fn Brand() -> impl IntoView {
    view! {
        <header class="brand">
            <span class="brand-mark" aria-hidden="true"></span>
            <span class="brand-name">"qrlogin"</span>
        </header>
    }
}

#[component]
fn HomePage() -> impl IntoView {
    view! {
        <Title text="qrlogin"/>
        <section class="card">
            <Brand/>
            <h1>"Welcome"</h1>
            <p class="lead">"You are not signed in on this browser."</p>
            <A href="/login" attr:class="button">"Sign in with your phone"</A>
        </section>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    view! {
        <Title text="Not found · qrlogin"/>
        <section class="card">
            <Brand/>
            <h1>"Page not found"</h1>
            <p class="lead">"There is nothing at this address."</p>
            <A href="/login" attr:class="button">"Go to sign-in"</A>
        </section>
    }
}
