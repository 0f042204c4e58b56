//! `/m/link/{token}`: the first phone's side of "Add another phone". It
//! shows the link as a QR (server-rendered SVG) and looks again every two
//! seconds without any script (`<meta http-equiv="refresh">`); once a
//! phone has opened the link, three numbers to pick the one that phone
//! shows (a plain form); then where things stand.

use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::{
    i18n::t,
    phone::SignInForm,
    server_fns::{load_link, LinkView, PickLinkNumber},
    words::words,
    Brand,
};

#[component]
pub fn LinkPage() -> impl IntoView {
    let t = t();
    let w = words();
    let params = use_params_map();
    let query = use_query_map();
    let token = move || params.read().get("token").unwrap_or_default();
    let wrong = move || query.read().get("wrong").is_some();
    let page = Resource::new(token, load_link);
    let body = move || {
        Suspend::new(async move {
            match page.await {
                Err(_) => view! {
                    <h1>{t.something_wrong}</h1>
                    <p class="lead">{t.try_again_later}</p>
                }
                .into_any(),
                Ok(LinkView::SignInNeeded) => view! {
                    <h1>{t.phone_signed_out_heading}</h1>
                    <SignInForm next="/m".to_owned()/>
                }
                .into_any(),
                Ok(LinkView::Waiting { url }) => {
                    let svg = crate::qr::qr_svg(&url).unwrap_or_default();
                    view! {
                        <Meta http_equiv="refresh" content="2"/>
                        <h1>{w.add_phone}</h1>
                        <p class="lead">{w.link_waiting_lead}</p>
                        <div class="qr-frame">
                            <div class="qr link-qr" data-testid="link-qr" role="img"
                                aria-label=w.link_qr_label inner_html=svg></div>
                        </div>
                        <p><a href="/m" class="button secondary">{w.back_to_account}</a></p>
                    }
                    .into_any()
                }
                Ok(LinkView::Scanned { choices }) => {
                    use leptos::server_fn::ServerFn;
                    let url = PickLinkNumber::url();
                    let token = token();
                    view! {
                        <h1>{w.link_pick_heading}</h1>
                        <div class="choices link-choices">
                            {choices.into_iter().map(|number| {
                                let token = token.clone();
                                view! {
                                    <form method="post" action=url class="choice">
                                        <input type="hidden" name="token" value=token/>
                                        <input type="hidden" name="number" value=number.to_string()/>
                                        <button class="button" type="submit">{number.to_string()}</button>
                                    </form>
                                }
                            }).collect_view()}
                        </div>
                        <form method="post" action=url class="form">
                            <input type="hidden" name="token" value=token/>
                            <input type="hidden" name="number" value="0"/>
                            <button class="button secondary" type="submit">{w.link_pick_none}</button>
                        </form>
                    }
                    .into_any()
                }
                Ok(LinkView::Matched) => view! {
                    <h1 class="ok">{w.link_matched_heading}</h1>
                    <p class="lead">{w.link_matched_lead}</p>
                    <p><a href="/m" class="button">{w.back_to_account}</a></p>
                }
                .into_any(),
                Ok(LinkView::Gone) => view! {
                    <h1>{w.link_gone_heading}</h1>
                    {if wrong() {
                        view! { <p class="error" role="alert">{w.link_wrong}</p> }.into_any()
                    } else {
                        view! { <p class="lead">{w.link_gone_lead}</p> }.into_any()
                    }}
                    <p><a href="/m" class="button">{w.back_to_account}</a></p>
                }
                .into_any(),
            }
        })
    };
    view! {
        <Title text=w.link_title/>
        <section class="card phone">
            <Brand/>
            <Suspense fallback=move || view! { <p class="lead">{t.loading}</p> }>{body}</Suspense>
        </section>
    }
}

/// `/m`'s "Add another phone": a plain form (the page it leads to needs
/// the confirmation above, as adding a passkey does).
#[component]
pub(crate) fn AddPhone() -> impl IntoView {
    use leptos::server_fn::ServerFn;
    let w = words();
    view! {
        <form method="post" action=crate::server_fns::StartLink::url() class="form add-phone">
            <p class="hint">{w.add_phone_hint}</p>
            <button class="button secondary" type="submit">{w.add_phone}</button>
        </form>
    }
}
