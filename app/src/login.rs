//! The desktop's `/login` page: the QR code and the wait loop behind it,
//! which moves "Scan with your phone" → "Confirm on your phone" →
//! "Signed in as …" without a reload.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    i18n::{fill, t, words, ErrorWords},
    Brand, HomeWords, SignedInHome,
};

words! {
    /// What the login card says (and its wait loop), in the page's
    /// language: island props, so `/login`'s WASM carries no catalogue.
    pub struct LoginWords {
        heading_sign_in, heading_sign_in_to, returning_to, signed_in_as, requested_by,
        status_scan, status_confirm, status_denied, status_expired,
        preparing, qr_label, pick_this_number, number_to_pick, nobody_signed_in, try_again,
        code_no_longer_valid, refresh_code, valid_for, waiting_for_approval,
        step_open_camera, step_point, step_check, needs_javascript,
        server_answered, cannot_reach_server, reconnecting, trouble_connecting,
        unexpected_answer, connection_lost, cannot_draw, could_not_finish,
    }
}

/// What the page shows. (The server only ever renders `Preparing`.)
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Asking the server for a code.
    Preparing,
    /// A code is on screen, waiting for a phone to scan it.
    Showing { login_id: String, svg: String },
    /// A phone scanned it; its owner must pick `match_code` and approve.
    /// `scanner` is the account's display name when it chose one the server
    /// may show before approval; usually there is none (rule 5).
    Confirm {
        scanner: Option<String>,
        match_code: u8,
    },
    /// Approved and redeemed: the card becomes the home page, at `/`.
    SignedIn { name: String, username: String },
    /// The phone declined (or picked the wrong number).
    Denied,
    /// The page replaced expired codes as often as it may; a click restarts.
    Expired,
    /// No code can be had right now; the loop keeps retrying.
    Trouble(String),
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Self::Preparing => "preparing",
            Self::Showing { .. } => "pending",
            Self::Confirm { .. } => "scanned",
            Self::SignedIn { .. } => "signed-in",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Trouble(_) => "trouble",
        }
    }

    fn status(&self, words: &LoginWords) -> String {
        match self {
            Self::Preparing | Self::Showing { .. } | Self::Trouble(_) => words.status_scan.clone(),
            Self::Confirm { .. } => words.status_confirm.clone(),
            Self::SignedIn { name, .. } => fill(&words.signed_in_as, &[name]),
            Self::Denied => words.status_denied.clone(),
            Self::Expired => words.status_expired.clone(),
        }
    }
}

/// The page's signals, shared with the wait loop.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Clone, Copy)]
struct LoginSignals {
    phase: RwSignal<Phase>,
    /// When the current state runs out, on this browser's clock (ms).
    deadline: RwSignal<Option<f64>>,
    /// Whole seconds until `deadline`, ticking.
    seconds_left: RwSignal<Option<u64>>,
    /// A passing problem shown under the code, e.g. a lost connection.
    notice: RwSignal<Option<String>>,
}

/// Where the page leaves the request for its first code (a `Promise` of
/// the `Response`), for the card to take.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
const FIRST_CODE_KEY: &str = "__qrloginFirstCode";

/// Where the card asks for codes: for an OpenID Connect authorization
/// request, codes made for it.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn logins_url(authorization: Option<&str>) -> String {
    match authorization {
        Some(request) => format!("{}?authorization={request}", crate::api::paths::LOGINS),
        None => crate::api::paths::LOGINS.to_owned(),
    }
}

/// Whether `/login?next=` may send the browser to `next` after signing
/// in: only a path on this site made of letters, digits and `/-_.` (no
/// `//host`, no scheme, no escapes, no query), so it is never an open
/// redirect.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn plain_local_path(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && next
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
}

/// Asks for the first code while the page is still parsed, instead of
/// after the WASM has loaded and hydrated (one round trip less before the
/// QR is drawn). Without JavaScript it does nothing.
#[component]
fn AskEarly(authorization: Option<String>) -> impl IntoView {
    let ask_early = format!(
        r#"window.{FIRST_CODE_KEY} = fetch("{}", {{ method: "POST", headers: {{ Accept: "application/json" }} }});"#,
        logins_url(authorization.as_deref())
    );
    view! { <script nonce=leptos::nonce::use_nonce() inner_html=ask_early></script> }
}

/// "Requested by ⟨name⟩", the name marked.
fn requested_by(template: &str, name: &str) -> impl IntoView {
    let (before, after) = template.split_once("{0}").unwrap_or(("", ""));
    let (before, after) = (before.to_owned(), after.to_owned());
    view! { {before} <strong class="scanner">{name.to_owned()}</strong> {after} }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    view! {
        <Title text=t().title_sign_in/>
        <AskEarly authorization=None/>
        <LoginCard words=LoginWords::of(t()) errors=ErrorWords::of(t()) home=HomeWords::of(t())/>
        <crate::join::JoinLink/>
    }
}

/// `/authorize?request=…`: the login card for an application's OpenID
/// Connect authorization request, named after the application.
#[component]
pub fn AuthorizePage() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    // Only a value this server could have made goes into the page's script.
    let request = move || {
        query
            .read()
            .get("request")
            .filter(|r| crate::api::plausible_authorization(r))
    };
    let client = Resource::new(request, |request| async move {
        match request {
            Some(request) => crate::server_fns::authorization_client(request.clone())
                .await
                .map(|name| name.map(|name| (request, name))),
            None => Ok(None),
        }
    });
    let body = move || {
        Suspend::new(async move {
            match client.await {
                Ok(Some((request, name))) => view! {
                    <Title text=fill(t().title_sign_in_to, &[&name])/>
                    <AskEarly authorization=Some(request.clone())/>
                    <LoginCard
                        words=LoginWords::of(t())
                        errors=ErrorWords::of(t())
                        home=HomeWords::of(t())
                        authorization=request
                        client=name
                    />
                }
                .into_any(),
                _ => view! {
                    <Title text=t().title_request_expired/>
                    <section class="card">
                        <Brand/>
                        <h1>{t().request_expired_heading}</h1>
                        <p class="lead">{t().request_expired_lead}</p>
                    </section>
                }
                .into_any(),
            }
        })
    };
    view! { <Suspense fallback=|| ()>{body}</Suspense> }
}

/// The card with the code: an island, the one part of the page that runs
/// in the browser. With `authorization`, it signs in for that OpenID
/// Connect request and then goes back to the application (`client`).
#[island]
fn LoginCard(
    words: LoginWords,
    errors: ErrorWords,
    home: HomeWords,
    #[prop(optional)] authorization: Option<String>,
    #[prop(optional)] client: Option<String>,
) -> impl IntoView {
    let signals = LoginSignals {
        phase: RwSignal::new(Phase::Preparing),
        deadline: RwSignal::new(None),
        seconds_left: RwSignal::new(None),
        notice: RwSignal::new(None),
    };
    let LoginSignals {
        phase,
        seconds_left,
        notice,
        ..
    } = signals;

    #[cfg(feature = "hydrate")]
    let restart = {
        // Stored, so the handlers below are `Copy`.
        let run = StoredValue::new(wait_loop::WaitLoop::mount(
            signals,
            authorization.clone(),
            wait_loop::Said::new(words.clone(), errors),
        ));
        Effect::new(move |_| run.with_value(|run| run.start()));
        move |_| run.with_value(|run| run.start())
    };
    #[cfg(not(feature = "hydrate"))]
    let restart = |_| ();
    #[cfg(not(feature = "hydrate"))]
    let _ = (&authorization, &errors);
    let heading = match &client {
        Some(name) => fill(&words.heading_sign_in_to, &[name]),
        None => words.heading_sign_in.clone(),
    };
    // Stored, so that the closures below stay `Copy`.
    let heading = StoredValue::new(heading);
    let words = StoredValue::new(words);
    let home = StoredValue::new(home);
    let say = move |word: fn(&LoginWords) -> &String| words.with_value(|w| word(w).clone());

    let qr_area = move || {
        match phase.get() {
        Phase::Preparing => view! {
            <div class="qr-placeholder" aria-busy="true">
                <span class="spinner" aria-hidden="true"></span>
                <span>{say(|w| &w.preparing)}</span>
            </div>
        }
        .into_any(),
        Phase::Showing { login_id, svg } => view! {
            <div
                class="qr"
                role="img"
                aria-label=say(|w| &w.qr_label)
                data-login-id=login_id
                inner_html=svg
            ></div>
        }
        .into_any(),
        Phase::Confirm {
            scanner,
            match_code,
        } => view! {
            <div class="confirm">
                {scanner.map(|name| view! { <p>{requested_by(&say(|w| &w.requested_by), &name)}</p> })}
                <p class="pick">{say(|w| &w.pick_this_number)}</p>
                <p class="match-code" aria-label=say(|w| &w.number_to_pick)>{format!("{match_code:02}")}</p>
            </div>
        }
        .into_any(),
        // Never drawn: once signed in, the card becomes the home page (below).
        Phase::SignedIn { .. } => ().into_any(),
        Phase::Denied => view! {
            <div class="qr-placeholder">
                <strong>{say(|w| &w.nobody_signed_in)}</strong>
                <button class="button" on:click=restart>{say(|w| &w.try_again)}</button>
            </div>
        }
        .into_any(),
        Phase::Expired => view! {
            <div class="qr-placeholder">
                <strong>{say(|w| &w.code_no_longer_valid)}</strong>
                <button class="button" on:click=restart>{say(|w| &w.refresh_code)}</button>
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
    }
    };

    let validity = move || {
        let left = seconds_left.get()?;
        let time = format!("{}:{:02}", left / 60, left % 60);
        match phase.with(Phase::name) {
            "pending" => Some(fill(&say(|w| &w.valid_for), &[&time])),
            "scanned" => Some(fill(&say(|w| &w.waiting_for_approval), &[&time])),
            _ => None,
        }
    };

    let signed_in = move || match phase.get() {
        Phase::SignedIn { name, username } => Some((name, username)),
        _ => None,
    };
    let returning = client.clone();
    let login_body = move || {
        view! {
            <h1>{heading.get_value()}</h1>
            <div class="qr-frame" aria-live="polite">{qr_area}</div>
            <p class="status" aria-live="polite">{move || words.with_value(|w| phase.with(|p| p.status(w)))}</p>
            <p class="validity">{validity}</p>
            <p class="notice" role="status">{move || notice.get()}</p>
            <ol class="steps">
                <li>{say(|w| &w.step_open_camera)}</li>
                <li>{say(|w| &w.step_point)}</li>
                <li>{say(|w| &w.step_check)}</li>
            </ol>
            <noscript>
                <p class="notice">{say(|w| &w.needs_javascript)}</p>
            </noscript>
        }
    };

    view! {
        <section class="card login" data-state=move || phase.with(Phase::name)>
            <Brand/>
            <Show when=move || signed_in().is_none() fallback=move || {
                match (returning.clone(), signed_in()) {
                    (Some(app), Some((name, _))) => view! {
                        <h1 class="signed-in">{fill(&say(|w| &w.signed_in_as), &[&name])}</h1>
                        <p class="lead">{fill(&say(|w| &w.returning_to), &[&app])}</p>
                    }.into_any(),
                    (None, Some((name, username))) => view! { <SignedInHome display_name=name username words=home.get_value()/> }.into_any(),
                    _ => ().into_any(),
                }
            }>
                {login_body}
            </Show>
        </section>
    }
}

/// The browser side: create a code, show it, long-poll its state, redeem.
#[cfg(feature = "hydrate")]
mod wait_loop {
    use std::sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    };

    use gloo_net::http::{Request, Response};
    use gloo_timers::future::TimeoutFuture;
    use leptos::{ev, prelude::*, task::spawn_local};
    use wasm_bindgen::JsCast;

    use super::{LoginSignals, LoginWords, Phase};
    use crate::i18n::{fill, ErrorWords};
    use crate::{
        api::{paths, ApiErrorBody, LoginCreated, LoginState, LoginStatus, Redeemed},
        qr::qr_svg,
    };

    /// docs/design.md: an expired code is replaced by itself up to 5 times.
    const AUTOMATIC_REPLACEMENTS: u32 = 5;
    const FIRST_BACKOFF_MS: u32 = 1_000;
    /// A store outage is usually seconds: the page is back soon after.
    const MAX_BACKOFF_MS: u32 = 8_000;
    /// Long-poll length; below the server's 30 s cap and common proxy limits.
    const WAIT_S: u32 = 25;

    fn now() -> f64 {
        js_sys::Date::now()
    }

    /// The words the loop shows, as the page gave them.
    pub struct Said {
        words: LoginWords,
        errors: ErrorWords,
    }

    impl Said {
        pub fn new(words: LoginWords, errors: ErrorWords) -> Arc<Self> {
            Arc::new(Self { words, errors })
        }

        async fn error_message(&self, response: Response) -> String {
            if response.status() == 503 {
                // A store the server needs is down; it reconnects by itself.
                return RECONNECTING.to_owned();
            }
            match response.json::<ApiErrorBody>().await {
                Ok(body) => self.errors.error(&body.error).to_owned(),
                Err(_) => fill(
                    &self.words.server_answered,
                    &[&response.status().to_string()],
                ),
            }
        }

        fn offline<E>(&self, _: E) -> String {
            self.words.cannot_reach_server.clone()
        }

        fn unexpected<E>(&self, _: E) -> String {
            self.words.unexpected_answer.clone()
        }

        fn lost<E>(&self, _: E) -> String {
            self.words.connection_lost.clone()
        }

        /// What the page says while it retries after `reason`.
        fn retrying(&self, reason: &str, backoff_ms: u32) -> String {
            let wait = backoff_ms / 1000;
            if reason == RECONNECTING {
                fill(&self.words.reconnecting, &[&wait.to_string()])
            } else {
                fill(&self.words.trouble_connecting, &[reason, &wait.to_string()])
            }
        }
    }

    /// The request for a first code the page made before the WASM ran
    /// (see `LoginPage`); taken once.
    fn take_early_request() -> Option<js_sys::Promise> {
        let window = web_sys::window()?;
        let key = wasm_bindgen::JsValue::from_str(super::FIRST_CODE_KEY);
        let request = js_sys::Reflect::get(&window, &key).ok()?;
        js_sys::Reflect::delete_property(&window, &key).ok()?;
        request.dyn_into().ok()
    }

    const RECONNECTING: &str = "the server is reconnecting";

    async fn create_login(
        said: &Said,
        authorization: Option<&str>,
    ) -> Result<LoginCreated, String> {
        let response = match take_early_request() {
            Some(early) => {
                let raw = wasm_bindgen_futures::JsFuture::from(early)
                    .await
                    .map_err(|e| said.offline(e))?;
                Response::from(
                    raw.dyn_into::<web_sys::Response>()
                        .map_err(|e| said.offline(e))?,
                )
            }
            None => Request::post(&super::logins_url(authorization))
                .header("Accept", "application/json")
                .send()
                .await
                .map_err(|e| said.offline(e))?,
        };
        if response.status() != 201 {
            return Err(said.error_message(response).await);
        }
        response.json().await.map_err(|e| said.unexpected(e))
    }

    enum Polled {
        Status(LoginStatus),
        /// The server forgot the attempt (restart, or long gone).
        Gone,
    }

    /// The attempt past `since`, waiting up to `wait_s` for a change.
    async fn poll(said: &Said, id: &str, since: u64, wait_s: u32) -> Result<Polled, String> {
        let url = format!(
            "{}?since={since}&wait={wait_s}",
            paths::with_id(paths::LOGIN, id)
        );
        let response = Request::get(&url).send().await.map_err(|e| said.lost(e))?;
        match response.status() {
            200 => response
                .json()
                .await
                .map(Polled::Status)
                .map_err(|e| said.unexpected(e)),
            404 => Ok(Polled::Gone),
            _ => Err(said.error_message(response).await),
        }
    }

    async fn redeem(said: &Said, id: &str) -> Result<Redeemed, String> {
        let response = Request::post(&paths::with_id(paths::LOGIN_REDEEM, id))
            .send()
            .await
            .map_err(|e| said.lost(e))?;
        if response.status() != 200 {
            return Err(said.error_message(response).await);
        }
        response.json().await.map_err(|e| said.unexpected(e))
    }

    /// Tells the server the page was left, even while it unloads.
    fn cancel(id: &str) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let init = web_sys::RequestInit::new();
        init.set_method("DELETE");
        // `keepalive` lets the request outlive the page; web-sys has no setter.
        let _ = js_sys::Reflect::set(
            &init,
            &wasm_bindgen::JsValue::from_str("keepalive"),
            &wasm_bindgen::JsValue::TRUE,
        );
        let _ = window.fetch_with_str_and_init(&paths::with_id(paths::LOGIN, id), &init);
    }

    /// One page's wait loop. `start` (again) abandons any earlier run.
    #[derive(Clone)]
    pub struct WaitLoop {
        signals: LoginSignals,
        /// Which run is current; older runs stop at their next step.
        run: Arc<AtomicU64>,
        mounted: Arc<AtomicBool>,
        /// The attempt to cancel if the page is left before it ends.
        open_attempt: StoredValue<Option<String>>,
        /// The OpenID Connect request this sign-in is for, if any.
        authorization: Option<Arc<str>>,
        said: Arc<Said>,
    }

    impl WaitLoop {
        pub fn mount(
            signals: LoginSignals,
            authorization: Option<String>,
            said: Arc<Said>,
        ) -> Self {
            let this = Self {
                said,
                signals,
                run: Arc::new(AtomicU64::new(0)),
                mounted: Arc::new(AtomicBool::new(true)),
                open_attempt: StoredValue::new(None),
                authorization: authorization.map(Arc::from),
            };
            let on_leave = this.clone();
            on_cleanup(move || {
                on_leave.mounted.store(false, Ordering::Relaxed);
                on_leave.cancel_open();
            });
            let on_hide = this.clone();
            let handle = window_event_listener(ev::pagehide, move |_| on_hide.cancel_open());
            on_cleanup(move || handle.remove());
            this.tick();
            this
        }

        fn cancel_open(&self) {
            if let Some(Some(id)) = self.open_attempt.try_get_value() {
                cancel(&id);
                self.open_attempt.try_set_value(None);
            }
        }

        /// Keeps `seconds_left` in step with `deadline`, once a second.
        fn tick(&self) {
            let this = self.clone();
            spawn_local(async move {
                while this.mounted.load(Ordering::Relaxed) {
                    let left = this
                        .signals
                        .deadline
                        .try_get_untracked()
                        .flatten()
                        .map(|d| ((d - now()).max(0.0) / 1000.0).ceil() as u64);
                    this.signals.seconds_left.try_set(left);
                    TimeoutFuture::new(1_000).await;
                }
            });
        }

        pub fn start(&self) {
            let run = self.run.fetch_add(1, Ordering::Relaxed) + 1;
            let this = self.clone();
            spawn_local(async move { this.codes(run).await });
        }

        fn current(&self, run: u64) -> bool {
            self.mounted.load(Ordering::Relaxed) && self.run.load(Ordering::Relaxed) == run
        }

        fn show(&self, phase: Phase) {
            self.signals.phase.try_set(phase);
        }

        /// Shows codes until one is approved, denied, or replaced too often.
        async fn codes(&self, run: u64) {
            self.cancel_open();
            let mut shown = 0;
            let mut backoff = FIRST_BACKOFF_MS;
            while self.current(run) {
                let created = match create_login(&self.said, self.authorization.as_deref()).await {
                    Ok(created) => created,
                    Err(reason) => {
                        self.show(Phase::Trouble(self.said.retrying(&reason, backoff)));
                        self.signals.deadline.try_set(None);
                        TimeoutFuture::new(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF_MS);
                        continue;
                    }
                };
                backoff = FIRST_BACKOFF_MS;
                shown += 1;
                let Ok(svg) = qr_svg(&created.qr_url) else {
                    self.show(Phase::Trouble(self.said.words.cannot_draw.clone()));
                    return;
                };
                self.open_attempt.try_set_value(Some(created.id.clone()));
                self.signals
                    .deadline
                    .try_set(Some(now() + created.expires_in as f64 * 1000.0));
                self.show(Phase::Showing {
                    login_id: created.id.clone(),
                    svg,
                });
                match self.wait(run, &created).await {
                    // Replacements of any cause count, so a browser that
                    // drops the bind cookie (every poll a 404) cannot loop.
                    Ended::Replace | Ended::Expired if shown <= AUTOMATIC_REPLACEMENTS => {}
                    Ended::Replace | Ended::Expired => {
                        self.show(Phase::Expired);
                        self.signals.deadline.try_set(None);
                        return;
                    }
                    Ended::Done => return,
                }
            }
        }

        /// Long-polls one attempt until it ends.
        async fn wait(&self, run: u64, created: &LoginCreated) -> Ended {
            let id = created.id.as_str();
            let mut version = created.version;
            let mut backoff = FIRST_BACKOFF_MS;
            while self.current(run) {
                // After trouble, one quick read first: the notice goes as
                // soon as the server answers, not when a long poll ends.
                let wait_s = if backoff == FIRST_BACKOFF_MS {
                    WAIT_S
                } else {
                    0
                };
                let status = match poll(&self.said, id, version, wait_s).await {
                    Ok(Polled::Status(status)) => status,
                    Ok(Polled::Gone) => return Ended::Replace,
                    Err(reason) => {
                        self.signals
                            .notice
                            .try_set(Some(self.said.retrying(&reason, backoff)));
                        TimeoutFuture::new(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF_MS);
                        continue;
                    }
                };
                self.signals.notice.try_set(None);
                backoff = FIRST_BACKOFF_MS;
                if !self.current(run) {
                    break;
                }
                version = status.version;
                self.signals
                    .deadline
                    .try_set(Some(now() + status.expires_in as f64 * 1000.0));
                match status.state {
                    LoginState::Pending => {}
                    LoginState::Scanned => self.show(Phase::Confirm {
                        scanner: status.scanner,
                        match_code: status.match_code.unwrap_or_default(),
                    }),
                    LoginState::Approved => {
                        self.open_attempt.try_set_value(None);
                        return self.finish(id).await;
                    }
                    LoginState::Denied => {
                        self.open_attempt.try_set_value(None);
                        self.signals.deadline.try_set(None);
                        self.show(Phase::Denied);
                        return Ended::Done;
                    }
                    LoginState::Expired => {
                        self.open_attempt.try_set_value(None);
                        return Ended::Expired;
                    }
                    LoginState::Redeemed | LoginState::Cancelled => {
                        self.open_attempt.try_set_value(None);
                        return Ended::Replace;
                    }
                }
            }
            Ended::Done
        }

        async fn finish(&self, id: &str) -> Ended {
            self.signals.deadline.try_set(None);
            // The approval waits on the server (for its approved TTL) while
            // a store reconnects: keep trying rather than start over.
            let mut backoff = FIRST_BACKOFF_MS;
            let mut redeemed = redeem(&self.said, id).await;
            while matches!(&redeemed, Err(reason) if reason == RECONNECTING) {
                self.signals
                    .notice
                    .try_set(Some(self.said.retrying(RECONNECTING, backoff)));
                TimeoutFuture::new(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF_MS);
                redeemed = redeem(&self.said, id).await;
            }
            self.signals.notice.try_set(None);
            match redeemed {
                Ok(redeemed) => {
                    self.show(Phase::SignedIn {
                        name: redeemed.user.display_name,
                        username: redeemed.user.username,
                    });
                    // For an application: back to it, through the provider,
                    // which checks this sign-in was approved for it (in the
                    // page's language, should it show the card again).
                    if let Some(request) = &self.authorization {
                        if let Some(window) = web_sys::window() {
                            let lang = crate::i18n::lang().tag();
                            let _ = window.location().assign(&format!(
                                "{}?request={request}&lang={lang}",
                                paths::AUTHORIZE_RESUME
                            ));
                        }
                        return Ended::Done;
                    }
                    // Sent here by a page that needs a session
                    // (`/login?next=/admin`): back to it.
                    if let Some(next) = next_page() {
                        if let Some(window) = web_sys::window() {
                            let _ = window.location().assign(&next);
                        }
                        return Ended::Done;
                    }
                    // The card now shows the home page; the address follows
                    // without a load (a reload renders `/` on the server).
                    if let Some(window) = web_sys::window() {
                        if let Ok(history) = window.history() {
                            let _ = history.replace_state_with_url(
                                &wasm_bindgen::JsValue::NULL,
                                "",
                                Some("/"),
                            );
                        }
                        if let Some(document) = window.document() {
                            document.set_title("qrlogin");
                        }
                    }
                    Ended::Done
                }
                Err(reason) => {
                    self.signals
                        .notice
                        .try_set(Some(fill(&self.said.words.could_not_finish, &[&reason])));
                    Ended::Replace
                }
            }
        }
    }

    /// `/login?next=/path`: where to go once signed in, when it is a plain
    /// path of this site (letters, digits, `/-_.`; never `//host`).
    fn next_page() -> Option<String> {
        let search = web_sys::window()?.location().search().ok()?;
        let next = search
            .trim_start_matches('?')
            .split('&')
            .find_map(|pair| pair.strip_prefix("next="))?;
        super::plain_local_path(next).then(|| next.to_owned())
    }

    enum Ended {
        /// Show a new code at once (not counted as an expiry).
        Replace,
        /// The code ran out.
        Expired,
        /// Nothing more to do.
        Done,
    }
}

#[cfg(test)]
mod tests {
    use super::plain_local_path;

    #[test]
    fn next_is_followed_only_to_plain_local_paths() {
        for good in ["/admin", "/admin/accounts/erin", "/m", "/a-b_c.d"] {
            assert!(plain_local_path(good), "{good}");
        }
        for bad in [
            "",
            "admin",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "/%2F%2Fevil.example",
            "/admin?x=1",
            "/admin#x",
            "/a b",
            "javascript:alert(1)",
        ] {
            assert!(!plain_local_path(bad), "{bad}");
        }
    }
}
