//! `/device`: where a phone approves a TV's or a CLI's sign-in (RFC 8628).
//! The device's QR opens it with the code filled in; the code can also be
//! typed. Server-rendered with plain forms, like the other phone pages.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    server_fns::{load_device, DecideDevice, DeviceView},
    Brand,
};

/// The form to type the code a device shows.
#[component]
fn EnterCodeForm() -> impl IntoView {
    view! {
        <form method="get" action="/device" class="form">
            <label>
                "Code shown on the device"
                <input name="user_code" autocomplete="off" autocapitalize="characters"
                    required maxlength="9" placeholder="BCDF-GHJK"/>
            </label>
            <button class="button" type="submit">"Continue"</button>
        </form>
    }
}

#[component]
pub fn DevicePage() -> impl IntoView {
    let query = use_query_map();
    let user_code = move || query.read().get("user_code").unwrap_or_default();
    let page = Resource::new(user_code, load_device);
    let body = move || {
        Suspend::new(async move {
            match page.await {
                Err(_) => view! {
                    <h1>"Something went wrong"</h1>
                    <p class="lead">"Please try again in a moment."</p>
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
                        <h1>"Sign in to approve a device"</h1>
                        <crate::phone::SignInForm next/>
                    }
                    .into_any()
                }
                Ok(DeviceView::EnterCode) => view! {
                    <h1>"Sign in a device"</h1>
                    <p class="lead">"Type the code the TV or app shows."</p>
                    <EnterCodeForm/>
                }
                .into_any(),
                Ok(DeviceView::Unknown) => view! {
                    <h1>"Unknown code"</h1>
                    <p class="lead">"This code does not exist or has expired. Check the code on the device, or start again there."</p>
                    <EnterCodeForm/>
                }
                .into_any(),
                Ok(DeviceView::TooMany) => view! {
                    <h1>"Too many tries"</h1>
                    <p class="lead">"Wait a minute before trying another code."</p>
                }
                .into_any(),
                Ok(DeviceView::Approved { client }) => view! {
                    <h1 class="ok">"Approved"</h1>
                    <p class="lead">{client} " on the device is signing in now. You can close this page."</p>
                }
                .into_any(),
                Ok(DeviceView::Denied { client }) => view! {
                    <h1>"Denied"</h1>
                    <p class="lead">{client} " was not signed in."</p>
                }
                .into_any(),
                Ok(DeviceView::Confirm { me, request }) => {
                    let age = if request.age_s < 60 {
                        format!("{} s ago", request.age_s)
                    } else {
                        format!("{} min ago", request.age_s / 60)
                    };
                    let code = request.user_code.clone();
                    let deny_code = request.user_code.clone();
                    let approve = ServerAction::<DecideDevice>::new();
                    let deny = ServerAction::<DecideDevice>::new();
                    view! {
                        <h1>"Sign in " {request.client.clone()} " on a device?"</h1>
                        <p class="lead">"As " <strong>{me.display_name}</strong> " (" {me.username} ")"</p>
                        <p class="device-code-line">"The device must show this code:"</p>
                        <p class="device-code" aria-label="code the device shows">{request.user_code}</p>
                        <dl class="requester">
                            <dt>"Application"</dt><dd class="requester-client">{request.client.clone()}</dd>
                            <dt>"Started from"</dt><dd>{request.browser} " on " {request.os}</dd>
                            <dt>"Address"</dt><dd>{request.ip}</dd>
                            <dt>"Started"</dt><dd>{age}</dd>
                        </dl>
                        {(!request.same_network).then(|| view! {
                            <p class="warning" role="alert">
                                "The device that asked is not on your network."
                            </p>
                        })}
                        <p class="warning" role="note">
                            "Approve only if you started this yourself on a device in front of you and it shows "
                            <strong>{code.clone()}</strong>
                            ". If you did not start it, or someone sent you this link or code, deny."
                        </p>
                        {if request.needs_passkey {
                            view! { <crate::passkey::DevicePasskeyApprove user_code=code/> }.into_any()
                        } else {
                            view! {
                                <ActionForm action=approve attr:class="form">
                                    <input type="hidden" name="user_code" value=code/>
                                    <input type="hidden" name="decision" value="approve"/>
                                    <button class="button" type="submit">"The device shows this code: approve"</button>
                                </ActionForm>
                            }.into_any()
                        }}
                        <ActionForm action=deny attr:class="form">
                            <input type="hidden" name="user_code" value=deny_code/>
                            <input type="hidden" name="decision" value="deny"/>
                            <button class="button secondary" type="submit">"Deny"</button>
                        </ActionForm>
                    }
                    .into_any()
                }
            }
        })
    };
    view! {
        <Title text="Sign in a device · qrlogin"/>
        <section class="card phone">
            <Brand/>
            <Suspense fallback=|| view! { <p class="lead">"Loading…"</p> }>{body}</Suspense>
        </section>
    }
}
