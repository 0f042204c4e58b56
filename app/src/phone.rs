//! The phone's pages: `/q/{id}` (what the QR opens) and `/m` (home).
//! Both render fully on the server and use plain forms, so they work with
//! JavaScript off.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::{
    api::{LoginState, RecentSignIn, SessionInfo},
    i18n::{fill, t},
    server_fns::{
        my_account, phone_login, AppConsent, ApproveLogin, ConfirmView, ConfirmWith,
        ConfirmWithPassword, DenyLogin, PasskeyView, PhoneLoginView, RemovePasskey,
        RemovedPasskeyView, RevokeSession, SetSignInChoices, SignIn, SignOut, WithdrawApp,
    },
    Brand,
};

/// Username and password; returns to `next` afterwards. A plain form post
/// (with or without JavaScript): signing in loads the next page afresh.
#[component]
pub(crate) fn SignInForm(next: String) -> impl IntoView {
    use leptos::server_fn::ServerFn;
    let action = <SignIn as ServerFn>::url();
    let query = use_query_map();
    let failed = move || query.read().get("signin").as_deref() == Some("failed");
    let password_off = move || query.read().get("signin").as_deref() == Some("password_off");
    let passkeys = passkeys_available();
    let t = t();
    let passkey_next = next.clone();
    view! {
        <form method="post" action=action class="form">
            <p class="lead">{t.sign_in_lead}</p>
            <Show when=failed>
                <p class="error" role="alert">{t.wrong_password}</p>
            </Show>
            <Show when=password_off>
                <p class="error" role="alert">{t.password_only_passkey}</p>
            </Show>
            <input type="hidden" name="next" value=next/>
            <label>
                {t.username}
                <input name="username" autocomplete="username" autocapitalize="none" required maxlength="32"/>
            </label>
            <label>
                {t.password}
                <input name="password" type="password" autocomplete="current-password" required maxlength="128"/>
            </label>
            <button class="button" type="submit">{t.sign_in}</button>
        </form>
        {passkeys.then(|| view! { <crate::passkey::PasskeySignIn next=passkey_next/> })}
    }
}

/// Whether this server can use passkeys (its public URL has a host name).
pub(crate) fn passkeys_available() -> bool {
    #[cfg(feature = "ssr")]
    {
        use_context::<std::sync::Arc<dyn crate::backend::Backend>>()
            .is_some_and(|backend| backend.passkeys_available())
    }
    #[cfg(not(feature = "ssr"))]
    false
}

fn finished_text(state: LoginState) -> (&'static str, &'static str) {
    let t = t();
    match state {
        LoginState::Redeemed => t.finished_redeemed,
        LoginState::Denied => t.finished_denied,
        LoginState::Expired => t.finished_expired,
        LoginState::Cancelled => t.finished_cancelled,
        _ => t.finished_other,
    }
}

/// `/q/{id}`: who is asking, pick the number, approve or deny.
#[component]
pub fn PhoneLoginPage() -> impl IntoView {
    let t = t();
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let deny = ServerAction::<DenyLogin>::new();
    let page = Resource::new(
        move || (id(), deny.version().get()),
        |(id, _)| phone_login(id),
    );

    let body = move || {
        Suspend::new(async move {
            let login = page.await;
            let id = id();
            match login {
                Err(_) => view! {
                    <h1>{t.something_wrong}</h1>
                    <p class="lead">{t.scan_again}</p>
                }
                .into_any(),
                Ok(PhoneLoginView::SignInNeeded) => view! {
                    <h1>{t.sign_in_to_approve}</h1>
                    <SignInForm next=format!("/q/{id}")/>
                }
                .into_any(),
                Ok(PhoneLoginView::Unknown) => view! {
                    <h1>{t.unknown_code}</h1>
                    <p class="lead">{t.unknown_login_code}</p>
                }
                .into_any(),
                Ok(PhoneLoginView::TakenByOther) => view! {
                    <h1>{t.taken_heading}</h1>
                    <p class="lead">{t.taken_lead}</p>
                }
                .into_any(),
                Ok(PhoneLoginView::ForAnotherAccount) => view! {
                    <h1>{t.other_account_heading}</h1>
                    <p class="lead">{t.other_account_lead}</p>
                }
                .into_any(),
                Ok(PhoneLoginView::Approved) => view! {
                    <h1 class="ok">{t.approved}</h1>
                    <p class="lead">{t.approved_lead}</p>
                }
                .into_any(),
                Ok(PhoneLoginView::Finished { state }) => {
                    let (title, text) = finished_text(state);
                    view! {
                        <h1>{title}</h1>
                        <p class="lead">{text}</p>
                    }
                    .into_any()
                }
                Ok(PhoneLoginView::Confirm { me, scanned }) => {
                    let requester = scanned.requester;
                    let age = t.age(requester.age_s);
                    let deny_id = id.clone();
                    let approve_url = {
                        use leptos::server_fn::ServerFn;
                        <ApproveLogin as ServerFn>::url().to_owned()
                    };
                    let heading = match &requester.client {
                        Some(client) => fill(
                            t.client_wants_sign_in,
                            &[client, &requester.browser, &requester.os],
                        ),
                        None => t.sign_in_on_computer.to_owned(),
                    };
                    view! {
                        <h1>{heading}</h1>
                        <p class="lead">{fill(t.as_account, &[&me.display_name, &me.username])}</p>
                        {requester.client.clone().map(|client| view! {
                            <p class="hint requester-client-hint">{fill(t.approving_signs_in_to, &[&client])}</p>
                        })}
                        <dl class="requester">
                            <dt>{t.browser}</dt><dd class="requester-browser">{requester.browser}</dd>
                            <dt>{t.system}</dt><dd>{requester.os}</dd>
                            <dt>{t.address}</dt><dd>{requester.ip}</dd>
                            <dt>{t.requested}</dt><dd>{age}</dd>
                        </dl>
                        {requester.same_network.then(|| view! {
                            <p class="hint">{t.same_network}</p>
                        })}
                        <crate::passkey::ApproveForm
                            id=id
                            choices=scanned.match_choices.to_vec()
                            action=approve_url.clone()
                            needs_passkey=scanned.needs_passkey
                            off_network=!requester.same_network
                        />
                        <ActionForm action=deny attr:class="form">
                            <input type="hidden" name="id" value=deny_id/>
                            <button
                                class=if requester.same_network { "button secondary" } else { "button danger" }
                                type="submit"
                            >{t.deny}</button>
                        </ActionForm>
                    }
                    .into_any()
                }
            }
        })
    };

    view! {
        <Title text=t.title_approve/>
        <section class="card phone">
            <Brand/>
            <Suspense fallback=move || view! { <p class="lead">{t.loading}</p> }>{body}</Suspense>
        </section>
    }
}

/// A time as a person reads it: the server writes it in UTC (what shows
/// with JavaScript off); in the browser it becomes "2 min ago" when recent,
/// else the date and time in the person's own time zone.
#[island(lazy)]
fn LocalTime(at: String) -> impl IntoView {
    let text = RwSignal::new(short_time(&at));
    #[cfg(feature = "hydrate")]
    {
        let at = at.clone();
        Effect::new(move |_| text.set(local_time::describe(&at, js_sys::Date::now())));
    }
    view! { <time datetime=at>{move || text.get()}</time> }
}

#[cfg(feature = "hydrate")]
mod local_time {
    /// "just now", "5 min ago", "3 h ago", else e.g. "2 Dec 2026, 14:05".
    pub fn describe(rfc3339: &str, now_ms: f64) -> String {
        let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(rfc3339));
        let at = date.get_time();
        if at.is_nan() {
            return super::short_time(rfc3339);
        }
        let minutes = ((now_ms - at) / 60_000.0).floor();
        let t = crate::i18n::t();
        if (0.0..1.0).contains(&minutes) {
            return t.just_now.into();
        }
        if (1.0..60.0).contains(&minutes) {
            return crate::i18n::fill(t.minutes_ago, &[&minutes.to_string()]);
        }
        if (60.0..(24.0 * 60.0)).contains(&minutes) {
            return crate::i18n::fill(t.hours_ago, &[&(minutes / 60.0).floor().to_string()]);
        }
        let options = js_sys::Object::new();
        for (key, value) in [
            ("day", "numeric"),
            ("month", "short"),
            ("year", "numeric"),
            ("hour", "2-digit"),
            ("minute", "2-digit"),
        ] {
            let _ = js_sys::Reflect::set(&options, &key.into(), &value.into());
        }
        String::from(date.to_locale_string(crate::i18n::lang().tag(), &options))
    }
}

/// "2026-11-22T19:02:12.72Z" → "2026-11-22 19:02 UTC".
pub(crate) fn short_time(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(11..16)) {
        (Some(date), Some(time)) => format!("{date} {time} UTC"),
        _ => rfc3339.to_owned(),
    }
}

/// One signed-in device and what it did last; `new` when it signed in
/// since the phone last looked.
#[component]
fn SessionRow(
    session: SessionInfo,
    new: bool,
    revoke: ServerAction<RevokeSession>,
) -> impl IntoView {
    let t = t();
    let kind = match session.method.as_str() {
        "qr" => t.method_qr,
        "passkey" => t.method_passkey,
        _ => t.method_password,
    };
    let id = session.id.clone();
    view! {
        <li class="session device" class:new=new data-session-id=id>
            <div>
                <strong>{fill(t.on_os, &[&session.browser, &session.os])}</strong>
                {new.then(|| view! { <span class="badge new">{t.new_badge}</span> })}
                {session.current.then(|| view! { <span class="badge">{t.this_phone}</span> })}
                <div class="meta">{t.last_active} " " <LocalTime at=session.last_seen_at/> " · " {kind} " " <LocalTime at=session.created_at/> " · " {session.ip}</div>
            </div>
            <ActionForm action=revoke>
                <input type="hidden" name="id" value=session.id/>
                <button class="button small secondary" type="submit">{t.revoke}</button>
            </ActionForm>
        </li>
    }
}

/// A recent sign-in whose session has ended (revoked, signed out, idle).
#[component]
fn EndedRow(sign_in: RecentSignIn) -> impl IntoView {
    let t = t();
    view! {
        <li class="session recent" class:new=sign_in.new>
            <div>
                <strong>{fill(t.on_os, &[&sign_in.browser, &sign_in.os])}</strong>
                {sign_in.new.then(|| view! { <span class="badge new">{t.new_badge}</span> })}
                <div class="meta">{t.signed_in_at} " " <LocalTime at=sign_in.at/> " · " {sign_in.ip} " · " {t.ended}</div>
            </div>
        </li>
    }
}

/// An application the account approved, and how to sign it out.
#[component]
fn AppRow(app: AppConsent, withdraw: ServerAction<WithdrawApp>) -> impl IntoView {
    let t = t();
    let client_id = app.client_id.clone();
    view! {
        <li class="session app" data-client-id=client_id>
            <div>
                <strong>{app.name}</strong>
                <div class="meta">{t.approved_at} " " <LocalTime at=app.granted_at/></div>
            </div>
            <ActionForm action=withdraw>
                <input type="hidden" name="client_id" value=app.client_id/>
                <button class="button small secondary" type="submit">{t.forget_app}</button>
            </ActionForm>
        </li>
    }
}

/// `/m`'s "Confirm it's you": a change to how the account signs in needs
/// a fresh proof with a credential it already has (its passkey, else its
/// password), not the session alone. (The admin console shows it too,
/// with `next`: where the password confirmation comes back to.)
#[component]
pub(crate) fn ConfirmSection(
    confirm: ConfirmView,
    #[prop(optional)] next: Option<String>,
) -> impl IntoView {
    use leptos::server_fn::ServerFn;
    let t = t();
    let password_url = <ConfirmWithPassword as ServerFn>::url();
    let body = match (confirm.fresh_until, confirm.with) {
        (Some(until), _) => view! {
            <p class="hint confirmed">{fill(t.confirmed_until, &[&short_time(&until)])}</p>
        }
        .into_any(),
        (None, ConfirmWith::Passkey) => view! {
            <p class="hint">{t.confirm_lead_passkey}</p>
            <crate::passkey::ConfirmWithPasskey/>
        }
        .into_any(),
        (None, ConfirmWith::Password) => view! {
            <p class="hint">{t.confirm_lead_password}</p>
            <form method="post" action=password_url class="form confirm-password">
                {next.map(|next| view! { <input type="hidden" name="next" value=next/> })}
                <label>
                    {t.password}
                    <input type="password" name="password" autocomplete="current-password" required/>
                </label>
                <button class="button" type="submit">{t.confirm_with_password}</button>
            </form>
        }
        .into_any(),
        (None, ConfirmWith::Nothing) => view! { <p class="hint">{t.confirm_impossible}</p> }.into_any(),
    };
    view! {
        <section class="confirm" aria-labelledby="confirm-heading">
            <h3 id="confirm-heading">{t.confirm_heading}</h3>
            {body}
        </section>
    }
}

/// `/m`'s passkeys: the list (remove each), "Add a passkey", and the
/// account's sign-in choices (password on or off, always ask for the
/// passkey to approve). Plain forms but for adding, which needs WebAuthn;
/// each change needs the confirmation above.
#[component]
fn PasskeysSection(
    passkeys: Vec<PasskeyView>,
    removed: Vec<RemovedPasskeyView>,
    password_off: bool,
    approve_with_passkey: bool,
    confirm: ConfirmView,
    remove: ServerAction<RemovePasskey>,
) -> impl IntoView {
    use leptos::server_fn::ServerFn;
    let query = use_query_map();
    let t = t();
    let refusal = move || query.read().get("choices").map(|code| t.error(&code));
    let choices_url = <SetSignInChoices as ServerFn>::url();
    let has_passkey = !passkeys.is_empty();
    let confirm_with_passkey_first = confirm.with == ConfirmWith::Passkey;
    view! {
        <h2>{t.passkeys}</h2>
        {move || refusal().map(|text| view! { <p class="error" role="alert">{text}</p> })}
        <ConfirmSection confirm/>
        <ul class="sessions passkeys">
            {passkeys.into_iter().map(|p| {
                let id = p.id.clone();
                let new = p.new;
                view! {
                <li class="session passkey" class:new=new data-passkey-id=id>
                    <div>
                        <strong>{p.name}</strong>
                        {new.then(|| view! { " " <span class="badge new">{t.new_badge}</span> })}
                        <div class="meta">
                            {t.passkey_added} " " <LocalTime at=p.created_at/>
                            {p.last_used_at.map(|at| view! { " · " {t.passkey_last_used} " " <LocalTime at=at/> })}
                        </div>
                    </div>
                    <ActionForm action=remove>
                        <input type="hidden" name="id" value=p.id/>
                        <button class="button small secondary" type="submit">{t.remove}</button>
                    </ActionForm>
                </li>
            }}).collect_view()}
        </ul>
        {(!removed.is_empty()).then(|| view! {
            <h3>{t.removed_passkeys}</h3>
            <ul class="sessions removed-passkeys">
                {removed.into_iter().map(|r| view! {
                    <li class="session removed-passkey new">
                        <div>
                            <strong>{r.name}</strong> " " <span class="badge new">{t.new_badge}</span>
                            <div class="meta">{t.passkey_removed_at} " " <LocalTime at=r.removed_at/></div>
                        </div>
                    </li>
                }).collect_view()}
            </ul>
        })}
        {(!has_passkey).then(|| view! { <p class="hint">{t.no_passkeys}</p> })}
        <crate::passkey::AddPasskey confirm_with_passkey_first/>
        <crate::link::AddPhone/>
        <form method="post" action=choices_url class="form sign-in-choices">
            <label class="check">
                <input type="checkbox" name="password" value="on" checked=!password_off/>
                {t.allow_password}
            </label>
            <label class="check">
                <input type="checkbox" name="approve_with_passkey" value="on" checked=approve_with_passkey disabled=!has_passkey/>
                {t.always_passkey}
            </label>
            <button class="button small secondary" type="submit">{t.save_choices}</button>
        </form>
    }
}

/// `/m`: the signed-in phone's home.
#[component]
pub fn PhoneHomePage() -> impl IntoView {
    let t = t();
    let revoke = ServerAction::<RevokeSession>::new();
    let sign_out = ServerAction::<SignOut>::new();
    let withdraw = ServerAction::<WithdrawApp>::new();
    let remove_passkey = ServerAction::<RemovePasskey>::new();
    let account = Resource::new(
        move || {
            (
                revoke.version().get(),
                sign_out.version().get(),
                withdraw.version().get(),
                remove_passkey.version().get(),
            )
        },
        |_| my_account(),
    );
    let body = move || {
        Suspend::new(async move {
            match account.await {
                Ok(Some(account)) => {
                    // Sign-ins whose session has ended (revoked, signed out, idle).
                    let ended: Vec<RecentSignIn> = account
                        .recent
                        .iter()
                        .filter(|r| r.session_id.is_none())
                        .cloned()
                        .collect();
                    view! {
                    <h1>{fill(t.signed_in_as_heading, &[&account.user.display_name])}</h1>
                    <p class="lead">{t.phone_home_lead}</p>
                    <crate::scanner::CameraScanner site=account.site/>
                    // One list of the devices signed in, each with what it
                    // did last; new sign-ins marked.
                    <h2>{t.your_devices}</h2>
                    <ul class="sessions devices">
                        {account.sessions.into_iter().map(|s| {
                            let new = account.recent.iter().any(|r| r.new && r.session_id.as_deref() == Some(s.id.as_str()));
                            view! { <SessionRow session=s new revoke=revoke/> }
                        }).collect_view()}
                    </ul>
                    {(!ended.is_empty()).then(|| view! {
                        <h2>{t.ended_recently}</h2>
                        <ul class="sessions ended-sign-ins">
                            {ended.into_iter().map(|r| view! { <EndedRow sign_in=r/> }).collect_view()}
                        </ul>
                    })}
                    {account.passkeys_available.then(|| view! {
                        <PasskeysSection
                            passkeys=account.passkeys.clone()
                            removed=account.removed_passkeys.clone()
                            password_off=account.password_off
                            approve_with_passkey=account.approve_with_passkey
                            confirm=account.confirm.clone()
                            remove=remove_passkey
                        />
                    })}
                    {(!account.apps.is_empty()).then(|| view! {
                        <h2>{t.apps_signed_in}</h2>
                        <ul class="sessions apps">
                            {account.apps.into_iter().map(|app| view! { <AppRow app=app withdraw=withdraw/> }).collect_view()}
                        </ul>
                    })}
                    <ActionForm action=sign_out>
                        <input type="hidden" name="next" value="/m"/>
                        <button class="button secondary" type="submit">{t.sign_out}</button>
                    </ActionForm>
                    }
                    .into_any()
                }
                Ok(None) => view! {
                    <h1>{t.phone_signed_out_heading}</h1>
                    <SignInForm next="/m".to_owned()/>
                    <crate::join::JoinLink/>
                }
                .into_any(),
                Err(_) => view! { <p class="error">{t.cannot_load_account}</p> }.into_any(),
            }
        })
    };
    view! {
        <Title text="qrlogin"/>
        <section class="card phone">
            <Brand/>
            <Suspense fallback=move || view! { <p class="lead">{t.loading}</p> }>{body}</Suspense>
        </section>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_shortened_for_people() {
        assert_eq!(
            super::short_time("2026-11-22T19:02:12.72Z"),
            "2026-11-22 19:02 UTC"
        );
        assert_eq!(super::short_time("garbage"), "garbage");
    }
}
