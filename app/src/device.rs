//! `/device`: where a phone approves a TV's or a CLI's sign-in (RFC 8628).
//! The device's QR opens it with the code filled in; the code can also be
//! typed. Server-rendered with plain forms, like the other phone pages.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    i18n::{fill, t},
    server_fns::{load_device, DecideDevice, DeviceView},
    Brand,
};

/// The form to type the code a device shows.
#[component]
fn EnterCodeForm() -> impl IntoView {
    view! {
        <form method="get" action="/device" class="form">
            <label>
                {t().device_code_label}
                <input name="user_code" autocomplete="off" autocapitalize="characters"
                    required maxlength="9" placeholder="BCDF-GHJK"/>
            </label>
            <button class="button" type="submit">{t().continue_}</button>
        </form>
    }
}

#[component]
pub fn DevicePage() -> impl IntoView {
    let t = t();
    let query = use_query_map();
    let user_code = move || query.read().get("user_code").unwrap_or_default();
    let page = Resource::new(user_code, load_device);
    let body = move || {
        Suspend::new(async move {
            match page.await {
                Err(_) => view! {
                    <h1>{t.something_wrong}</h1>
                    <p class="lead">{t.try_again_later}</p>
                }
                .into_any(),
                Ok(DeviceView::SignInNeeded) => {
                    let code = user_code();
                    let next = if code.is_empty() {
                        "/device".to_owned()
                    } else {
                        format!("/device?user_code={code}")
                    };
                    view! {
                        <h1>{t.device_sign_in_to_approve}</h1>
                        <crate::phone::SignInForm next/>
                    }
                    .into_any()
                }
                Ok(DeviceView::EnterCode) => view! {
                    <h1>{t.device_enter_heading}</h1>
                    <p class="lead">{t.device_enter_lead}</p>
                    <EnterCodeForm/>
                }
                .into_any(),
                Ok(DeviceView::Unknown) => view! {
                    <h1>{t.unknown_code}</h1>
                    <p class="lead">{t.device_unknown_lead}</p>
                    <EnterCodeForm/>
                }
                .into_any(),
                Ok(DeviceView::TooMany) => view! {
                    <h1>{t.too_many_heading}</h1>
                    <p class="lead">{t.too_many_lead}</p>
                }
                .into_any(),
                Ok(DeviceView::Approved { client }) => view! {
                    <h1 class="ok">{t.approved}</h1>
                    <p class="lead">{fill(t.device_approved_lead, &[&client])}</p>
                }
                .into_any(),
                Ok(DeviceView::Denied { client }) => view! {
                    <h1>{t.denied}</h1>
                    <p class="lead">{fill(t.device_denied_lead, &[&client])}</p>
                }
                .into_any(),
                Ok(DeviceView::Confirm { me, request }) => {
                    let age = t.age(request.age_s);
                    let (phishing_before, phishing_after) =
                        t.device_phishing.split_once("{0}").unwrap_or(("", ""));
                    let code = request.user_code.clone();
                    let deny_code = request.user_code.clone();
                    let approve = ServerAction::<DecideDevice>::new();
                    let deny = ServerAction::<DecideDevice>::new();
                    view! {
                        <h1>{fill(t.device_heading, &[&request.client])}</h1>
                        <p class="lead">{fill(t.as_account, &[&me.display_name, &me.username])}</p>
                        <p class="device-code-line">{t.device_must_show}</p>
                        <p class="device-code" aria-label=t.device_code_aria>{request.user_code}</p>
                        <dl class="requester">
                            <dt>{t.application}</dt><dd class="requester-client">{request.client.clone()}</dd>
                            <dt>{t.started_from}</dt><dd>{fill(t.on_os, &[&request.browser, &request.os])}</dd>
                            <dt>{t.address}</dt><dd>{request.ip}</dd>
                            <dt>{t.started}</dt><dd>{age}</dd>
                        </dl>
                        {(!request.same_network).then(|| view! {
                            <p class="warning" role="alert">
                                {t.device_off_network}
                            </p>
                        })}
                        <p class="warning" role="note">
                            {phishing_before} <strong>{code.clone()}</strong> {phishing_after}
                        </p>
                        {if request.needs_passkey {
                            view! { <crate::passkey::DevicePasskeyApprove user_code=code/> }.into_any()
                        } else {
                            view! {
                                <ActionForm action=approve attr:class="form">
                                    <input type="hidden" name="user_code" value=code/>
                                    <input type="hidden" name="decision" value="approve"/>
                                    <button class="button" type="submit">{t.device_approve}</button>
                                </ActionForm>
                            }.into_any()
                        }}
                        <ActionForm action=deny attr:class="form">
                            <input type="hidden" name="user_code" value=deny_code/>
                            <input type="hidden" name="decision" value="deny"/>
                            <button class="button secondary" type="submit">{t.deny}</button>
                        </ActionForm>
                    }
                    .into_any()
                }
            }
        })
    };
    view! {
        <Title text=t.title_device/>
        <section class="card phone">
            <Brand/>
            <Suspense fallback=move || view! { <p class="lead">{t.loading}</p> }>{body}</Suspense>
        </section>
    }
}
