//! The admin console, `/admin…`: server-rendered pages with plain HTML
//! forms (no island of its own, so the `/login` bundle does not grow; the
//! one island used is `/m`'s "Confirm with my passkey"). Its words are a
//! catalogue of their own ([`words`]), read only here.
//!
//! Who may look is the server's to say ([`views::Gate`]): nobody signed in
//! goes to `/login?next=…`, a signed-in non-administrator gets a 403 page.
//! Each form posts to a server function ([`fns`]) with the page's CSRF
//! token; the server asks for the fresh proof of "Confirm it's you" before
//! changes, and the page then shows that section.

pub mod fns;
#[cfg(feature = "ssr")]
pub mod port;
mod tables;
pub mod views;
pub mod words;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{
    components::Redirect,
    hooks::{use_location, use_params_map, use_query_map},
};

use crate::{
    api::User,
    i18n::fill,
    phone::{short_time, ConfirmSection},
    server_fns::ConfirmView,
    Brand,
};
use fns::*;
use views::{AuditFilterForm, Console, Gate, Shown};
use words::{words, Words};

/// The console's sections, as the navigation lists them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Status,
    Accounts,
    Apps,
    Audit,
    Tokens,
}

impl Section {
    const ALL: [Section; 5] = [
        Section::Status,
        Section::Accounts,
        Section::Apps,
        Section::Audit,
        Section::Tokens,
    ];

    fn path(self) -> &'static str {
        match self {
            Section::Status => "/admin",
            Section::Accounts => "/admin/accounts",
            Section::Apps => "/admin/apps",
            Section::Audit => "/admin/audit",
            Section::Tokens => "/admin/tokens",
        }
    }

    fn name(self, w: &'static Words) -> &'static str {
        match self {
            Section::Status => w.nav_status,
            Section::Accounts => w.nav_accounts,
            Section::Apps => w.nav_apps,
            Section::Audit => w.nav_audit,
            Section::Tokens => w.nav_tokens,
        }
    }
}

/// Where `/login` sends the desktop back to: this page, when its path is
/// plain (the login card follows only such paths).
fn sign_in_path() -> String {
    let path = use_location().pathname.get_untracked();
    let plain = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
    let next = if plain && path.starts_with("/admin") {
        path
    } else {
        "/admin".to_owned()
    };
    format!("/login?next={next}")
}

/// This answer's status (the page still renders).
fn set_status(_status: u16) {
    #[cfg(feature = "ssr")]
    if let (Some(response), Ok(status)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        http::StatusCode::from_u16(_status),
    ) {
        response.set_status(status);
    }
}

/// The page for who is looking: the sign-in redirect, the 403 page, or
/// the console page `render` makes.
fn gated<T>(
    loaded: Result<Gate<T>, ServerFnError>,
    section: Section,
    heading: String,
    render: impl FnOnce(String, T) -> AnyView,
) -> AnyView {
    let w = words();
    match loaded {
        Ok(Gate::SignIn) => view! { <Redirect path=sign_in_path()/> }.into_any(),
        Ok(Gate::Forbidden) => {
            set_status(403);
            view! {
                <Title text=fill("{0} · {1}", &[w.forbidden_heading, w.console])/>
                <section class="card">
                    <Brand/>
                    <h1 data-testid="admin-forbidden">{w.forbidden_heading}</h1>
                    <p class="lead">{w.forbidden_lead}</p>
                    <a href="/" class="button">{w.go_home}</a>
                </section>
            }
            .into_any()
        }
        Err(_) => view! {
            <Title text=w.console/>
            <section class="card">
                <Brand/>
                <h1>{w.console}</h1>
                <p class="error" role="alert">{w.cannot_load}</p>
            </section>
        }
        .into_any(),
        Ok(Gate::Ready(Console {
            me,
            csrf,
            confirm,
            shown,
            view,
        })) => {
            let content = render(csrf, view);
            view! {
                <Frame section heading me confirm shown>
                    {content}
                </Frame>
            }
            .into_any()
        }
    }
}

/// Every console page: the navigation, the one `h1`, the outcome of the
/// last form, "Confirm it's you" when asked for, a secret shown once.
#[component]
fn Frame(
    section: Section,
    heading: String,
    me: User,
    confirm: ConfirmView,
    shown: Option<Shown>,
    children: Children,
) -> impl IntoView {
    let w = words();
    let code = use_query_map().read_untracked().get("code");
    let asked = code.as_deref() == Some("confirm_first");
    let outcome = code.map(|code| match code.as_str() {
        "done" => {
            view! { <p class="hint" role="status" data-testid="admin-done">{w.done}</p> }.into_any()
        }
        code => view! {
            <p class="error" role="alert" data-testid="admin-refusal">{w.refusal(code)}</p>
        }
        .into_any(),
    });
    // Asked for, or just given (it says until when).
    let confirm = (asked || confirm.fresh_until.is_some()).then(|| {
        view! { <ConfirmSection confirm next=section_next(section)/> }
    });
    view! {
        <Title text=fill("{0} · {1}", &[&heading, w.console])/>
        <div class="card admin">
            <div class="admin-top">
                <Brand/>
                <p class="admin-me">{fill(w.signed_in_as, &[&me.display_name])}</p>
                <nav class="admin-nav" aria-label=w.nav_label data-testid="admin-nav">
                    <ul>
                        {Section::ALL.into_iter().map(|s| {
                            let current = (s == section).then_some("page");
                            view! { <li><a href=s.path() aria-current=current>{s.name(w)}</a></li> }
                        }).collect_view()}
                    </ul>
                </nav>
            </div>
            <h1>{heading}</h1>
            {outcome}
            {confirm}
            {shown.map(|shown| view! { <ShownOnce shown/> })}
            {children()}
        </div>
    }
}

/// Where the password confirmation comes back to: this page.
fn section_next(section: Section) -> String {
    let path = use_location().pathname.get_untracked();
    if path.starts_with("/admin") {
        path
    } else {
        section.path().to_owned()
    }
}

/// A secret made by the last action: an invite (link and QR), an app's
/// credentials, an API token. The server gave it for this view only.
#[component]
fn ShownOnce(shown: Shown) -> impl IntoView {
    let w = words();
    let body = match shown {
        Shown::Invite {
            username,
            link,
            reset,
            expires_at,
        } => {
            let heading = if reset {
                w.reset_invite_heading
            } else {
                w.invite_heading
            };
            let svg = crate::qr::qr_svg(&link).unwrap_or_default();
            view! {
                <h2 id="shown-heading">{fill(heading, &[&username])}</h2>
                <p>{fill(w.invite_lead, &[&short_time(&expires_at)])}</p>
                <div class="qr admin-qr" role="img" aria-label=w.invite_qr data-testid="invite-qr" inner_html=svg></div>
                <p class="secret-line">
                    <span class="secret-label">{w.invite_link}</span>
                    <code data-testid="invite-link">{link}</code>
                </p>
            }
            .into_any()
        }
        Shown::AppSecret {
            name,
            client_id,
            secret,
        } => view! {
            <h2 id="shown-heading">{fill(w.secret_heading, &[&name])}</h2>
            <p class="secret-line">
                <span class="secret-label">{w.client_id}</span>
                <code data-testid="app-client-id">{client_id}</code>
            </p>
            {secret.map(|secret| view! {
                <p class="secret-line">
                    <span class="secret-label">{w.client_secret}</span>
                    <code data-testid="app-secret">{secret}</code>
                </p>
            })}
        }
        .into_any(),
        Shown::Token { name, token } => view! {
            <h2 id="shown-heading">{fill(w.token_heading, &[&name])}</h2>
            <p>{w.token_lead}</p>
            <p class="secret-line">
                <span class="secret-label">{w.token_label}</span>
                <code data-testid="api-token">{token}</code>
            </p>
        }
        .into_any(),
    };
    view! {
        <section class="shown-once" aria-labelledby="shown-heading" data-testid="shown-once">
            {body}
            <p class="warning">{w.shown_once}</p>
        </section>
    }
}

/// The CSRF token every form carries.
#[component]
fn Csrf(token: String) -> impl IntoView {
    view! { <input type="hidden" name="csrf" value=token/> }
}

/// "Previous" / "Page n of m" / "Next" links; `link(page)` is a page's URL.
#[component]
fn Pager(page: u32, pages: u32, link: impl Fn(u32) -> String + 'static) -> impl IntoView {
    let w = words();
    let pages = pages.max(1);
    // One page: nothing to page through.
    (pages > 1).then(|| view! {
        <nav class="pager" aria-label=w.pages_label>
            {(page > 1).then(|| view! { <a href=link(page - 1) rel="prev" data-testid="page-previous">{w.previous}</a> })}
            <span>{fill(w.page_of, &[&page.to_string(), &pages.to_string()])}</span>
            {(page < pages).then(|| view! { <a href=link(page + 1) rel="next" data-testid="page-next">{w.next}</a> })}
        </nav>
    })
}

/// A page number from the query (1 when absent or nonsense).
fn page_number(raw: Option<String>) -> u32 {
    raw.and_then(|p| p.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1)
}

/// A time as the console shows it (UTC), or "never".
fn when(w: &'static Words, at: Option<&str>) -> String {
    at.map_or_else(|| w.never.to_owned(), short_time)
}

// ---- the pages ----

/// `/admin`: version, stores and their health, counts.
#[component]
pub fn StatusPage() -> impl IntoView {
    let page = Resource::new(|| (), |_| admin_status());
    let body = move || {
        Suspend::new(async move {
            let w = words();
            gated(
                page.await,
                Section::Status,
                w.status_heading.into(),
                |_, status| tables::status(w, status),
            )
        })
    };
    view! { <Suspense fallback=|| ()>{body}</Suspense> }
}

/// `/admin/accounts?q=…&page=n`: search, the list, "Create an account".
#[component]
pub fn AccountsPage() -> impl IntoView {
    let query = use_query_map();
    let search = move || query.read().get("q").unwrap_or_default();
    let number = move || page_number(query.read().get("page"));
    let page = Resource::new(
        move || (search(), number()),
        |(search, number)| admin_accounts(search, number),
    );
    let body = move || {
        Suspend::new(async move {
            let w = words();
            let searched = search();
            gated(
                page.await,
                Section::Accounts,
                w.accounts_heading.into(),
                move |csrf, accounts| {
                    let link = {
                        let searched = searched.clone();
                        move |n: u32| {
                            format!("/admin/accounts?q={}&page={n}", views::encode(&searched))
                        }
                    };
                    view! {
                    <form method="get" action="/admin/accounts" class="form inline-form" role="search" data-testid="account-search">
                        <label>
                            {w.search_label}
                            <input type="search" name="q" value=searched.clone() maxlength="64"/>
                        </label>
                        <button class="button small secondary" type="submit">{w.search}</button>
                    </form>
                    {tables::accounts(w, accounts.clone())}
                    <Pager page=accounts.page pages=accounts.pages link/>
                    <CreateAccount csrf/>
                }
                .into_any()
                },
            )
        })
    };
    view! { <Suspense fallback=|| ()>{body}</Suspense> }
}

#[component]
fn CreateAccount(csrf: String) -> impl IntoView {
    use leptos::server_fn::ServerFn;
    let w = words();
    view! {
        <section aria-labelledby="create-heading">
            <h2 id="create-heading">{w.create_heading}</h2>
            <form method="post" action=AdminCreateAccount::url() class="form" data-testid="create-account-form">
                <Csrf token=csrf/>
                <label>
                    {w.username}
                    <input name="username" required maxlength="32" autocomplete="off" autocapitalize="none" data-testid="new-username"/>
                </label>
                <label>
                    {w.display_name}
                    <input name="display_name" maxlength="64" autocomplete="off" data-testid="new-display-name"/>
                </label>
                <label class="check">
                    <input type="checkbox" name="admin" value="on" data-testid="new-admin"/>
                    {w.create_admin}
                </label>
                <button class="button" type="submit" data-testid="create-account">{w.create_button}</button>
            </form>
        </section>
    }
}

/// `/admin/accounts/{username}`: the account, its actions, its sessions,
/// passkeys, app grants and live invites.
#[component]
pub fn AccountPage() -> impl IntoView {
    let params = use_params_map();
    let username = move || params.read().get("username").unwrap_or_default();
    let page = Resource::new(username, admin_account);
    let body = move || {
        Suspend::new(async move {
            let w = words();
            let name = username();
            gated(
                page.await,
                Section::Accounts,
                name,
                move |csrf, detail| match detail {
                    None => {
                        set_status(404);
                        view! { <p class="error" role="alert">{w.not_found}</p> }.into_any()
                    }
                    Some(detail) => tables::account(w, detail, csrf),
                },
            )
        })
    };
    view! { <Suspense fallback=|| ()>{body}</Suspense> }
}

/// `/admin/apps`: the OpenID Connect clients; add, rotate, remove.
#[component]
pub fn AppsPage() -> impl IntoView {
    let page = Resource::new(|| (), |_| admin_apps());
    let body = move || {
        Suspend::new(async move {
            let w = words();
            gated(
                page.await,
                Section::Apps,
                w.apps_heading.into(),
                |csrf, apps| tables::apps(w, apps, csrf),
            )
        })
    };
    view! { <Suspense fallback=|| ()>{body}</Suspense> }
}

/// `/admin/audit?…`: the filters, the records newest first, the exports.
#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let filter = move || {
        let query = query.read();
        let field = |name: &str| query.get(name).unwrap_or_default();
        AuditFilterForm {
            account: field("account"),
            event: field("event"),
            app: field("app"),
            address: field("address"),
            from: field("from"),
            to: field("to"),
        }
    };
    let number = move || page_number(query.read().get("page"));
    let page = Resource::new(
        move || (filter(), number()),
        |(filter, number)| admin_audit(filter, number),
    );
    let body = move || {
        Suspend::new(async move {
            let w = words();
            let filter = filter();
            gated(
                page.await,
                Section::Audit,
                w.audit_heading.into(),
                move |_, audit| tables::audit(w, audit, filter),
            )
        })
    };
    view! { <Suspense fallback=|| ()>{body}</Suspense> }
}

/// `/admin/tokens`: admin API tokens; add (shown once), revoke.
#[component]
pub fn TokensPage() -> impl IntoView {
    let page = Resource::new(|| (), |_| admin_tokens());
    let body = move || {
        Suspend::new(async move {
            let w = words();
            gated(
                page.await,
                Section::Tokens,
                w.tokens_heading.into(),
                |csrf, tokens| tables::tokens(w, tokens, csrf),
            )
        })
    };
    view! { <Suspense fallback=|| ()>{body}</Suspense> }
}
