//! `/invite/{token}`: where an invited person sets up their account on
//! their phone, with no session and no password handed over. It names the
//! account and the site (so a forwarded link is recognised for what it
//! is), then makes a passkey (a small island) or, where passkeys are off,
//! sets a password with a plain form. Server-rendered like `/m`. The same
//! page serves the setup link, an open sign-up's second step, and the
//! second phone of "Add another phone" (its number first, then its
//! passkey).

use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::{
    i18n::{fill, t},
    passkey::{Step, StepFailure},
    server_fns::{load_invite, EnrollPassword, InviteView},
    words::words,
    Brand,
};

#[cfg(feature = "hydrate")]
use crate::{
    passkey::{error_text, run_step, webauthn},
    server_fns::{enroll_passkey, invite_passkey_options},
};

#[component]
pub fn InvitePage() -> impl IntoView {
    let t = t();
    let params = use_params_map();
    let token = move || params.read().get("token").unwrap_or_default();
    let page = Resource::new(token, load_invite);
    let body = move || {
        Suspend::new(async move {
            match page.await {
                Err(_) => view! {
                    <h1>{t.something_wrong}</h1>
                    <p class="lead">{t.try_again_later}</p>
                }
                .into_any(),
                Ok(InviteView::Gone) => view! {
                    <h1>{t.invite_gone_heading}</h1>
                    <p class="lead">{t.invite_gone}</p>
                }
                .into_any(),
                Ok(InviteView::TooMany) => view! {
                    <h1>{t.too_many_heading}</h1>
                    <p class="lead">{t.too_many_lead}</p>
                }
                .into_any(),
                // A phone link: the number for the first phone to pick; the
                // page looks again every two seconds (no script).
                Ok(InviteView::LinkNumber {
                    number,
                    display_name,
                }) => {
                    let w = words();
                    view! {
                        <Meta http_equiv="refresh" content="2"/>
                        <h1>{w.link_number_heading}</h1>
                        <p class="match-code" data-testid="link-number">{number.to_string()}</p>
                        <p class="lead">{fill(w.link_number_lead, &[&display_name])}</p>
                    }
                    .into_any()
                }
                Ok(InviteView::LinkReady {
                    display_name,
                    username,
                    site,
                }) => {
                    let w = words();
                    view! {
                        <h1>{fill(w.link_ready_heading, &[&display_name, &site])}</h1>
                        <p class="meta invite-account">{fill(t.invite_account, &[&username])}</p>
                        <p class="lead">{w.link_ready_lead}</p>
                        <EnrollPasskey token=token()/>
                    }
                    .into_any()
                }
                Ok(InviteView::Ready {
                    display_name,
                    username,
                    site,
                    passkeys,
                }) => view! {
                    <h1>{fill(t.invite_heading, &[&display_name, &site])}</h1>
                    <p class="meta invite-account">{fill(t.invite_account, &[&username])}</p>
                    {if passkeys {
                        view! {
                            <p class="lead">{t.invite_lead_passkey}</p>
                            <EnrollPasskey token=token()/>
                        }
                        .into_any()
                    } else {
                        view! { <PasswordForm token=token()/> }.into_any()
                    }}
                }
                .into_any(),
            }
        })
    };
    view! {
        <Title text=t.title_invite/>
        <section class="card">
            <Brand/>
            <Suspense fallback=move || view! { <p class="lead">{t.loading}</p> }>{body}</Suspense>
        </section>
    }
}

/// Where passkeys are off: the new password, a plain form (no WASM).
#[component]
fn PasswordForm(token: String) -> impl IntoView {
    use leptos::server_fn::ServerFn;
    let t = t();
    let query = use_query_map();
    let failed = move || query.read().get("failed").map(|code| t.error(&code));
    view! {
        <p class="lead">{t.invite_lead_password}</p>
        <form method="post" action=EnrollPassword::url() class="form">
            {move || failed().map(|text| view! { <p class="error" role="alert">{text}</p> })}
            <input type="hidden" name="token" value=token/>
            <label>
                {t.invite_new_password}
                <input name="password" type="password" autocomplete="new-password"
                    required minlength="8" maxlength="128"/>
            </label>
            <button class="button" type="submit">{t.invite_set_password}</button>
        </form>
    }
}

/// "Create a passkey": the phone's own prompt, for the invited account;
/// then signed in, to `/m`.
#[island(lazy)]
fn EnrollPasskey(token: String) -> impl IntoView {
    let step = RwSignal::new(Step::Idle);
    #[cfg(feature = "hydrate")]
    let enroll = move |_| {
        let token = token.clone();
        run_step(step, "/m".into(), async move {
            let started = invite_passkey_options(token.clone())
                .await
                .map_err(error_text)?;
            let credential = webauthn::create(&started.options).await?;
            let name = t().passkey_default_name.to_owned();
            enroll_passkey(token, started.ceremony, name, credential)
                .await
                .map_err(error_text)
        });
    };
    #[cfg(not(feature = "hydrate"))]
    let enroll = {
        let _ = &token;
        |_| ()
    };
    view! {
        <div class="form">
            <button class="button" type="button" on:click=enroll disabled=crate::passkey::step_busy(step)>
                {t().invite_create_passkey}
            </button>
            <noscript><p class="hint">{t().passkey_needs_javascript}</p></noscript>
            <StepFailure step/>
        </div>
    }
}
