//! `/join`: open sign-up (`--registration open`), a plain form for a
//! username and a display name; it leads to the invite page, which creates
//! the passkey (or sets the password where passkeys are off) with the
//! invite page's own components. With registration by invite, a 404.
//! Server-rendered, no script of its own.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    i18n::t,
    server_fns::JoinStart,
    words::{words, Words},
    Brand,
};

/// Whether anyone may make an account here.
pub(crate) fn registration_open() -> bool {
    #[cfg(feature = "ssr")]
    {
        use_context::<std::sync::Arc<dyn crate::backend::Backend>>()
            .is_some_and(|backend| backend.registration_open())
    }
    #[cfg(not(feature = "ssr"))]
    false
}

/// "Create an account", only where registration is open (`/login`, `/m`).
#[component]
pub(crate) fn JoinLink() -> impl IntoView {
    registration_open().then(|| {
        view! {
            <p class="hint join-link"><a href="/join">{words().join_link}</a></p>
        }
    })
}

#[component]
pub fn JoinPage() -> impl IntoView {
    let w = words();
    let t = t();
    if !registration_open() {
        #[cfg(feature = "ssr")]
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(http::StatusCode::NOT_FOUND);
        }
        return view! {
            <Title text=t.not_found_title/>
            <section class="card">
                <Brand/>
                <h1>{w.join_closed_heading}</h1>
                <p class="lead">{w.join_closed_lead}</p>
                <a href="/m" class="button">{t.go_to_sign_in}</a>
            </section>
        }
        .into_any();
    }
    view! {
        <Title text=w.join_title/>
        <section class="card phone">
            <Brand/>
            <h1>{w.join_heading}</h1>
            <JoinForm w/>
        </section>
    }
    .into_any()
}

#[component]
fn JoinForm(w: &'static Words) -> impl IntoView {
    use leptos::server_fn::ServerFn;
    let t = t();
    let query = use_query_map();
    let failed = move || {
        query
            .read()
            .get("failed")
            .map(|code| w.join_error(&code).unwrap_or_else(|| t.error(&code)))
    };
    let lead = if crate::phone::passkeys_available() {
        w.join_lead_passkey
    } else {
        w.join_lead_password
    };
    view! {
        <p class="lead">{lead}</p>
        <form method="post" action=JoinStart::url() class="form join">
            {move || failed().map(|text| view! { <p class="error" role="alert">{text}</p> })}
            <label>
                {t.username}
                <input name="username" autocomplete="username" autocapitalize="none"
                    required minlength="3" maxlength="32"/>
            </label>
            <label>
                {w.display_name}
                <input name="display_name" autocomplete="name" maxlength="64"/>
            </label>
            <button class="button" type="submit">{w.join_continue}</button>
        </form>
    }
}
