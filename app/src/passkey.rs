//! Passkeys on the phone: adding one on `/m`, signing in with one, and the
//! approve form that signs what is shown when approving needs a passkey.
//! The server (webauthn-rs) makes the options and checks the answers; the
//! browser's WebAuthn JSON methods carry them (see [`webauthn`]).

use leptos::prelude::*;

use crate::i18n::t;

#[cfg(feature = "hydrate")]
use crate::server_fns::{
    add_passkey, approval_options, approve_login, confirm_options, confirm_with_passkey,
    decide_device, device_approval_options, passkey_registration, passkey_sign_in,
    passkey_sign_in_options,
};

/// What a passkey step shows while it runs or when it failed.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Idle,
    Waiting,
    Failed(String),
}

/// A failure as the person reads it, from the server's machine code or
/// the browser's error.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn failure_text(code: &str) -> String {
    t().error(code).to_owned()
}

#[cfg(feature = "hydrate")]
fn reload_to(path: &str) {
    if let Some(window) = web_sys::window() {
        let _ = window.location().assign(path);
    }
}

/// Runs one passkey step: waiting while `work` runs, then to `done` (the
/// page shows the outcome), or the failure in the person's words.
#[cfg(feature = "hydrate")]
pub(crate) fn run_step(
    step: RwSignal<Step>,
    done: String,
    work: impl std::future::Future<Output = Result<(), String>> + 'static,
) {
    step.set(Step::Waiting);
    leptos::task::spawn_local(async move {
        match work.await {
            Ok(()) => reload_to(&done),
            Err(e) => step.set(Step::Failed(failure_text(&e))),
        }
    });
}

/// False until this island has hydrated: the server renders it false and
/// effects run only in the browser, once the island's lazily loaded code is
/// there. A button that needs that code stays disabled until then, so a
/// click before it does not vanish (or send a form without its passkey).
pub(crate) fn hydrated() -> RwSignal<bool> {
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    hydrated
}

/// Whether a step's button must stay disabled: before hydration (above)
/// and while the step runs.
pub(crate) fn step_busy(step: RwSignal<Step>) -> impl Fn() -> bool + Copy {
    let hydrated = hydrated();
    move || !hydrated.get() || step.get() == Step::Waiting
}

/// A step's failure, announced.
#[component]
pub(crate) fn StepFailure(step: RwSignal<Step>) -> impl IntoView {
    move || match step.get() {
        Step::Failed(text) => Some(view! { <p class="error" role="alert">{text}</p> }),
        _ => None,
    }
}

#[cfg(feature = "hydrate")]
pub(crate) fn error_text(err: impl std::fmt::Display) -> String {
    err.to_string()
}

/// Confirms it is the owner with one of the account's passkeys (user
/// verification): the step before a change to how the account signs in.
#[cfg(feature = "hydrate")]
async fn confirm_with_a_passkey() -> Result<(), String> {
    let started = confirm_options().await.map_err(error_text)?;
    let assertion = webauthn::get(&started.options).await?;
    confirm_with_passkey(started.ceremony, assertion)
        .await
        .map_err(error_text)
}

/// "Confirm with my passkey" on `/m` and on the admin console's pages:
/// then this page again, without its query (`?code=confirm_first`).
#[island(lazy)]
pub fn ConfirmWithPasskey() -> impl IntoView {
    let step = RwSignal::new(Step::Idle);
    #[cfg(feature = "hydrate")]
    let confirm = move |_| run_step(step, "?".into(), confirm_with_a_passkey());
    #[cfg(not(feature = "hydrate"))]
    let confirm = |_| ();
    view! {
        <div class="confirm-passkey">
            <button class="button" type="button" on:click=confirm disabled=step_busy(step)>
                {t().confirm_with_passkey}
            </button>
            <noscript><p class="hint">{t().passkey_needs_javascript}</p></noscript>
            <StepFailure step/>
        </div>
    }
}

/// "Add a passkey" on `/m`: a name, then the phone's own passkey prompt.
/// Without a fresh confirmation the server refuses; an account that
/// confirms with a passkey is then asked for an existing one first, here.
#[island(lazy)]
pub fn AddPasskey(confirm_with_passkey_first: bool) -> impl IntoView {
    let step = RwSignal::new(Step::Idle);
    let t = t();
    let name_input = NodeRef::<leptos::html::Input>::new();
    #[cfg(feature = "hydrate")]
    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        // Read when sent, not kept in a signal: a name typed before the
        // island's lazily loaded code arrived is only in the input.
        let name = name_input
            .get_untracked()
            .map(|input| input.value())
            .unwrap_or_default();
        run_step(step, "/m".into(), async move {
            let started = match passkey_registration().await {
                Err(e)
                    if confirm_with_passkey_first && error_text(&e).contains("confirm_first") =>
                {
                    confirm_with_a_passkey().await?;
                    passkey_registration().await
                }
                other => other,
            }
            .map_err(error_text)?;
            let credential = webauthn::create(&started.options).await?;
            add_passkey(started.ceremony, name, credential)
                .await
                .map_err(error_text)
        });
    };
    #[cfg(not(feature = "hydrate"))]
    let add = {
        let _ = confirm_with_passkey_first;
        |_: leptos::ev::SubmitEvent| ()
    };
    view! {
        <form class="form add-passkey" on:submit=add>
            <label>
                {t.passkey_name}
                <input
                    name="name"
                    required
                    maxlength="64"
                    value=t.passkey_default_name
                    node_ref=name_input
                />
            </label>
            <button class="button" type="submit" disabled=step_busy(step)>
                {t.add_passkey}
            </button>
            <noscript><p class="hint">{t.adding_needs_javascript}</p></noscript>
            <StepFailure step/>
        </form>
    }
}

/// "Sign in with a passkey" beside the password form; back to `next`.
#[island(lazy)]
pub fn PasskeySignIn(next: String) -> impl IntoView {
    let step = RwSignal::new(Step::Idle);
    #[cfg(feature = "hydrate")]
    let sign_in = move |_| {
        run_step(step, next.clone(), async move {
            let started = passkey_sign_in_options().await.map_err(error_text)?;
            let credential = webauthn::get(&started.options).await?;
            passkey_sign_in(started.ceremony, credential)
                .await
                .map_err(error_text)
        });
    };
    #[cfg(not(feature = "hydrate"))]
    let sign_in = {
        let _ = &next;
        |_| ()
    };
    view! {
        <div class="passkey-sign-in">
            <button class="button secondary" type="button" on:click=sign_in disabled=step_busy(step)>
                {t().sign_in_with_passkey}
            </button>
            <StepFailure step/>
        </div>
    }
}

/// The approve form of `/q/{id}`: pick the number, approve. When approving
/// needs a passkey, the passkey signs this attempt, the number picked and
/// who is asking before the form goes.
#[island(lazy)]
pub fn ApproveForm(
    id: String,
    choices: Vec<u8>,
    action: String,
    needs_passkey: bool,
    off_network: bool,
) -> impl IntoView {
    let step = RwSignal::new(Step::Idle);
    // Without a passkey the plain form works before hydration (and with
    // JavaScript off); with one it must wait for the island's code.
    let busy = step_busy(step);
    let form = NodeRef::<leptos::html::Form>::new();
    let t = t();
    #[cfg(feature = "hydrate")]
    let submit = {
        let id = id.clone();
        move |ev: leptos::ev::SubmitEvent| {
            if !needs_passkey {
                return; // the plain form post
            }
            ev.prevent_default();
            // Read when sent: a number picked before the island's code
            // arrived is only in the form.
            let Some(number) = form.get_untracked().and_then(|form| picked_number(&form)) else {
                return;
            };
            let id = id.clone();
            run_step(step, format!("/q/{id}"), async move {
                let options = approval_options(id.clone(), number)
                    .await
                    .map_err(error_text)?;
                let assertion = webauthn::get(&options).await?;
                approve_login(id, number, Some(assertion))
                    .await
                    .map_err(error_text)
            });
        }
    };
    #[cfg(not(feature = "hydrate"))]
    let submit = |_: leptos::ev::SubmitEvent| ();
    view! {
        <form method="post" action=action class="form" on:submit=submit node_ref=form>
            <input type="hidden" name="id" value=id/>
            <fieldset class="choices-group">
                <legend class="choose">{t.pick_number}</legend>
                <div class="choices">
                    {choices.into_iter().map(|n| view! {
                        <label class="choice">
                            <input
                                type="radio"
                                name="match_code"
                                value=n.to_string()
                                required
                            />
                            <span>{format!("{n:02}")}</span>
                        </label>
                    }).collect_view()}
                </div>
            </fieldset>
            // Off the phone's network the code may have been relayed: say
            // so above the buttons, and make Deny the prominent one.
            {off_network.then(|| view! {
                <p class="warning relay-warning" role="alert">{t.relay_warning}</p>
            })}
            {needs_passkey.then(|| view! {
                <p class="hint passkey-needed">{t.approve_needs_passkey}</p>
                <noscript><p class="hint">{t.passkey_needs_javascript}</p></noscript>
            })}
            <button
                class=if off_network { "button secondary" } else { "button" }
                type="submit"
                disabled=move || if needs_passkey { busy() } else { step.get() == Step::Waiting }
            >{if needs_passkey { t.approve_with_passkey } else { t.approve }}</button>
            <StepFailure step/>
        </form>
    }
}

/// The number checked in an approve form.
#[cfg(feature = "hydrate")]
fn picked_number(form: &web_sys::Element) -> Option<u8> {
    form.query_selector("input[name=match_code]:checked")
        .ok()??
        .get_attribute("value")?
        .parse()
        .ok()
}

/// The approve button of `/device` when approving needs a passkey.
#[island(lazy)]
pub fn DevicePasskeyApprove(user_code: String) -> impl IntoView {
    let step = RwSignal::new(Step::Idle);
    let t = t();
    #[cfg(feature = "hydrate")]
    let approve = move |_| {
        let code = user_code.clone();
        let done = format!("/device?user_code={code}&outcome=approved");
        run_step(step, done, async move {
            let options = device_approval_options(code.clone())
                .await
                .map_err(error_text)?;
            let assertion = webauthn::get(&options).await?;
            decide_device(code, "approve".into(), Some(assertion))
                .await
                .map_err(error_text)
        });
    };
    #[cfg(not(feature = "hydrate"))]
    let approve = {
        let _ = &user_code;
        |_| ()
    };
    view! {
        <div class="form">
            <p class="hint passkey-needed">{t.device_needs_passkey}</p>
            <noscript><p class="hint">{t.passkey_needs_javascript}</p></noscript>
            <button class="button" type="button" on:click=approve disabled=step_busy(step)>
                {t.device_approve_passkey}
            </button>
            <StepFailure step/>
        </div>
    }
}

/// `navigator.credentials` with the WebAuthn Level 3 JSON methods
/// (`parse…OptionsFromJSON`, `toJSON`): the server's options go in and the
/// answer comes out as JSON that webauthn-rs reads, with no hand-made
/// base64 or ArrayBuffer conversions here.
#[cfg(feature = "hydrate")]
pub(crate) mod webauthn {
    use js_sys::{Function, Object, Promise, Reflect, JSON};
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    fn get_property(target: &JsValue, name: &str) -> Result<JsValue, String> {
        Reflect::get(target, &JsValue::from_str(name)).map_err(describe)
    }

    fn describe(err: JsValue) -> String {
        get_property_raw(&err, "name")
            .as_string()
            .or_else(|| err.as_string())
            .unwrap_or_else(|| "unknown error".into())
    }

    fn get_property_raw(target: &JsValue, name: &str) -> JsValue {
        Reflect::get(target, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
    }

    fn call(target: &JsValue, method: &str, arg: &JsValue) -> Result<JsValue, String> {
        let function = get_property(target, method)?
            .dyn_into::<Function>()
            .map_err(|_| "unsupported".to_owned())?;
        function.call1(target, arg).map_err(describe)
    }

    /// `navigator.credentials.{create|get}({publicKey})` with the options
    /// of the server (`{publicKey: …}` as JSON); the credential's JSON.
    async fn ceremony(options: &str, parse: &str, method: &str) -> Result<String, String> {
        let options = JSON::parse(options).map_err(|_| "bad options".to_owned())?;
        let public_key = get_property(&options, "publicKey")?;
        let class = get_property(&js_sys::global(), "PublicKeyCredential")?;
        let parsed = call(&class, parse, &public_key)?;
        let request = Object::new();
        Reflect::set(&request, &"publicKey".into(), &parsed).map_err(describe)?;
        let window = web_sys::window().ok_or("no window")?;
        let credentials = get_property(window.navigator().as_ref(), "credentials")?;
        let promise = call(&credentials, method, &request)?
            .dyn_into::<Promise>()
            .map_err(|_| "unsupported".to_owned())?;
        let credential = JsFuture::from(promise).await.map_err(describe)?;
        let json = call(&credential, "toJSON", &JsValue::UNDEFINED)?;
        JSON::stringify(&json)
            .map(String::from)
            .map_err(|_| "unsupported".to_owned())
    }

    pub async fn create(options: &str) -> Result<String, String> {
        ceremony(options, "parseCreationOptionsFromJSON", "create").await
    }

    pub async fn get(options: &str) -> Result<String, String> {
        ceremony(options, "parseRequestOptionsFromJSON", "get").await
    }
}
