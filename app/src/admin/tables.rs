//! The console pages' contents: tables (each with its caption and column
//! headers) and the forms beside them. Every form is a plain post with
//! the page's CSRF token; its button has a `data-testid`.

use leptos::{prelude::*, server_fn::ServerFn};

use super::{
    fns::*,
    views::{
        encode, AccountDetailView, AccountRow, AccountsView, AppRow, AuditFilterForm, AuditView,
        StatusView, TokenRow,
    },
    when,
    words::Words,
    Csrf, Pager,
};
use crate::{i18n::fill, phone::short_time};

/// A table that scrolls sideways on a narrow screen (and can be scrolled
/// from the keyboard).
#[component]
fn Wide(label: String, children: Children) -> impl IntoView {
    view! {
        <div class="table-wrap" tabindex="0" role="region" aria-label=label>
            {children()}
        </div>
    }
}

pub(super) fn status(w: &'static Words, status: StatusView) -> AnyView {
    let health = |ok: bool| if ok { w.healthy } else { w.unhealthy };
    let redis = match status.redis_ok {
        None => w.not_configured,
        Some(ok) => health(ok),
    };
    view! {
        <p class="lead">{w.version} " " <strong data-testid="version">{status.version}</strong></p>
        <Wide label=w.stores_caption.to_owned()>
            <table data-testid="stores">
                <caption>{w.stores_caption}</caption>
                <thead><tr>
                    <th scope="col">{w.store}</th>
                    <th scope="col">{w.kind}</th>
                    <th scope="col">{w.health}</th>
                </tr></thead>
                <tbody>
                    <tr>
                        <th scope="row">{w.database}</th>
                        <td>{status.database}</td>
                        <td data-testid="database-health">{health(status.database_ok)}</td>
                    </tr>
                    <tr>
                        <th scope="row">{w.redis}</th>
                        <td>{if status.redis_ok.is_some() { "Redis" } else { "—" }}</td>
                        <td data-testid="redis-health">{redis}</td>
                    </tr>
                </tbody>
            </table>
        </Wide>
        <Wide label=w.counts_caption.to_owned()>
            <table data-testid="counts">
                <caption>{w.counts_caption}</caption>
                <thead><tr>
                    <th scope="col">{w.what}</th>
                    <th scope="col">{w.how_many}</th>
                </tr></thead>
                <tbody>
                    <tr><th scope="row">{w.accounts_count}</th><td data-testid="count-accounts">{status.accounts}</td></tr>
                    <tr><th scope="row">{w.sessions_count}</th><td data-testid="count-sessions">{status.sessions}</td></tr>
                    <tr><th scope="row">{w.desktops_waiting}</th><td data-testid="count-desktops">{status.desktops_waiting}</td></tr>
                </tbody>
            </table>
        </Wide>
    }
    .into_any()
}

fn role(w: &'static Words, account: &AccountRow) -> &'static str {
    if account.admin {
        w.role_admin
    } else {
        w.role_member
    }
}

fn state(w: &'static Words, account: &AccountRow) -> &'static str {
    if account.disabled {
        w.state_disabled
    } else {
        w.state_active
    }
}

pub(super) fn accounts(w: &'static Words, accounts: AccountsView) -> AnyView {
    let caption = fill(w.accounts_caption, &[&accounts.total.to_string()]);
    if accounts.rows.is_empty() {
        return view! { <p class="lead" data-testid="no-accounts">{w.no_accounts}</p> }.into_any();
    }
    view! {
        <Wide label=caption.clone()>
            <table data-testid="accounts">
                <caption>{caption}</caption>
                <thead><tr>
                    <th scope="col">{w.username}</th>
                    <th scope="col">{w.display_name}</th>
                    <th scope="col">{w.role}</th>
                    <th scope="col">{w.state}</th>
                    <th scope="col">{w.passkeys_count}</th>
                    <th scope="col">{w.sessions_count}</th>
                    <th scope="col">{w.created}</th>
                </tr></thead>
                <tbody>
                    {accounts.rows.into_iter().map(|a| view! {
                        <tr data-username=a.username.clone() class:disabled=a.disabled>
                            <th scope="row">
                                <a href=format!("/admin/accounts/{}", encode(&a.username))>{a.username.clone()}</a>
                            </th>
                            <td>{a.display_name.clone()}</td>
                            <td>{role(w, &a)}</td>
                            <td>{state(w, &a)}</td>
                            <td>{a.passkeys}</td>
                            <td>{a.sessions}</td>
                            <td>{short_time(&a.created_at)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </Wide>
    }
    .into_any()
}

/// A form with one button that acts on the account.
fn account_button(
    url: &'static str,
    csrf: &str,
    username: &str,
    label: &'static str,
    testid: &'static str,
    class: &'static str,
    extra: Option<(&'static str, &'static str)>,
) -> impl IntoView {
    view! {
        <form method="post" action=url class="inline-form">
            <Csrf token=csrf.to_owned()/>
            <input type="hidden" name="username" value=username.to_owned()/>
            {extra.map(|(name, value)| view! { <input type="hidden" name=name value=value/> })}
            <button class=class type="submit" data-testid=testid>{label}</button>
        </form>
    }
}

pub(super) fn account(w: &'static Words, detail: AccountDetailView, csrf: String) -> AnyView {
    let a = detail.account.clone();
    let csrf = csrf.as_str();
    let username = a.username.clone();
    let toggle = if a.disabled {
        account_button(
            AdminEnable::url(),
            csrf,
            &username,
            w.enable,
            "enable-account",
            "button small",
            None,
        )
        .into_any()
    } else {
        account_button(
            AdminDisable::url(),
            csrf,
            &username,
            w.disable,
            "disable-account",
            "button small danger",
            None,
        )
        .into_any()
    };
    let admin = if a.admin {
        account_button(
            AdminSetAdmin::url(),
            csrf,
            &username,
            w.remove_admin,
            "remove-admin",
            "button small secondary",
            Some(("admin", "off")),
        )
        .into_any()
    } else {
        account_button(
            AdminSetAdmin::url(),
            csrf,
            &username,
            w.make_admin,
            "make-admin",
            "button small secondary",
            Some(("admin", "on")),
        )
        .into_any()
    };
    view! {
        <section aria-labelledby="details-heading">
            <h2 id="details-heading">{w.details_heading}</h2>
            <Wide label=w.details_caption.to_owned()>
                <table data-testid="account-details" data-username=a.username.clone()>
                    <caption>{w.details_caption}</caption>
                    <tbody>
                        <tr><th scope="row">{w.username}</th><td>{a.username.clone()}</td></tr>
                        <tr><th scope="row">{w.display_name}</th><td>{a.display_name.clone()}</td></tr>
                        <tr><th scope="row">{w.role}</th><td data-testid="account-role">{role(w, &a)}</td></tr>
                        <tr><th scope="row">{w.state}</th><td data-testid="account-state">{state(w, &a)}</td></tr>
                        <tr><th scope="row">{w.created}</th><td>{short_time(&a.created_at)}</td></tr>
                    </tbody>
                </table>
            </Wide>
            <div class="actions" role="group" aria-label=w.actions>
                {toggle}
                {admin}
            </div>
        </section>
        <section aria-labelledby="invite-heading">
            <h2 id="invite-heading">{w.new_invite}</h2>
            <p>{w.new_invite_lead}</p>
            {account_button(AdminInvite::url(), csrf, &username, w.new_invite, "new-invite", "button small secondary", None)}
        </section>
        <Sessions w detail=detail.clone() csrf=csrf.to_owned()/>
        <Passkeys w detail=detail.clone() csrf=csrf.to_owned()/>
        <Grants w detail=detail.clone() csrf=csrf.to_owned()/>
        <Invites w detail=detail.clone()/>
        <Reset w detail=detail.clone() csrf=csrf.to_owned()/>
        <section aria-labelledby="remove-heading">
            <h2 id="remove-heading">{w.remove_heading}</h2>
            <p>{w.remove_lead}</p>
            {account_button(AdminRemoveAccount::url(), csrf, &username, w.remove_button, "remove-account", "button small danger", None)}
        </section>
    }
    .into_any()
}

#[component]
fn Sessions(w: &'static Words, detail: AccountDetailView, csrf: String) -> impl IntoView {
    let username = detail.account.username.clone();
    let body = if detail.sessions.is_empty() {
        view! { <p data-testid="no-sessions">{w.no_sessions}</p> }.into_any()
    } else {
        view! {
            <Wide label=w.sessions_caption.to_owned()>
                <table data-testid="sessions">
                    <caption>{w.sessions_caption}</caption>
                    <thead><tr>
                        <th scope="col">{w.device}</th>
                        <th scope="col">{w.address}</th>
                        <th scope="col">{w.signed_in_at}</th>
                        <th scope="col">{w.last_active}</th>
                        <th scope="col">{w.actions}</th>
                    </tr></thead>
                    <tbody>
                        {detail.sessions.into_iter().map(|s| {
                            let row_id = s.id.clone();
                            view! {
                            <tr data-session-id=row_id>
                                <th scope="row">{format!("{} · {}", s.browser, s.os)}</th>
                                <td>{s.ip}</td>
                                <td>{format!("{} ({})", short_time(&s.created_at), s.method)}</td>
                                <td>{short_time(&s.last_seen_at)}</td>
                                <td>
                                    <form method="post" action=AdminRevokeSession::url() class="inline-form">
                                        <Csrf token=csrf.clone()/>
                                        <input type="hidden" name="username" value=username.clone()/>
                                        <input type="hidden" name="session_id" value=s.id/>
                                        <button class="button small secondary" type="submit" data-testid="revoke-session">{w.revoke}</button>
                                    </form>
                                </td>
                            </tr>
                        }}).collect_view()}
                    </tbody>
                </table>
            </Wide>
        }
        .into_any()
    };
    view! {
        <section aria-labelledby="sessions-heading">
            <h2 id="sessions-heading">{w.sessions_heading}</h2>
            {body}
        </section>
    }
}

#[component]
fn Passkeys(w: &'static Words, detail: AccountDetailView, csrf: String) -> impl IntoView {
    let username = detail.account.username.clone();
    let body = if detail.passkeys.is_empty() {
        view! { <p data-testid="no-passkeys">{w.no_passkeys}</p> }.into_any()
    } else {
        view! {
            <Wide label=w.passkeys_caption.to_owned()>
                <table data-testid="passkeys">
                    <caption>{w.passkeys_caption}</caption>
                    <thead><tr>
                        <th scope="col">{w.name}</th>
                        <th scope="col">{w.added}</th>
                        <th scope="col">{w.last_used}</th>
                        <th scope="col">{w.actions}</th>
                    </tr></thead>
                    <tbody>
                        {detail.passkeys.into_iter().map(|p| {
                            let row_id = p.id.clone();
                            view! {
                            <tr data-passkey-id=row_id>
                                <th scope="row">{p.name}</th>
                                <td>{short_time(&p.created_at)}</td>
                                <td>{when(w, p.last_used_at.as_deref())}</td>
                                <td>
                                    <form method="post" action=AdminRemovePasskey::url() class="inline-form">
                                        <Csrf token=csrf.clone()/>
                                        <input type="hidden" name="username" value=username.clone()/>
                                        <input type="hidden" name="passkey_id" value=p.id/>
                                        <button class="button small secondary" type="submit" data-testid="remove-passkey">{w.remove}</button>
                                    </form>
                                </td>
                            </tr>
                        }}).collect_view()}
                    </tbody>
                </table>
            </Wide>
        }
        .into_any()
    };
    view! {
        <section aria-labelledby="passkeys-heading">
            <h2 id="passkeys-heading">{w.passkeys_heading}</h2>
            {body}
        </section>
    }
}

#[component]
fn Grants(w: &'static Words, detail: AccountDetailView, csrf: String) -> impl IntoView {
    let username = detail.account.username.clone();
    let body = if detail.grants.is_empty() {
        view! { <p data-testid="no-grants">{w.no_grants}</p> }.into_any()
    } else {
        view! {
            <Wide label=w.grants_caption.to_owned()>
                <table data-testid="grants">
                    <caption>{w.grants_caption}</caption>
                    <thead><tr>
                        <th scope="col">{w.app}</th>
                        <th scope="col">{w.client_id}</th>
                        <th scope="col">{w.scopes}</th>
                        <th scope="col">{w.actions}</th>
                    </tr></thead>
                    <tbody>
                        {detail.grants.into_iter().map(|g| {
                            let row_id = g.client_id.clone();
                            let shown_id = g.client_id.clone();
                            view! {
                            <tr data-client-id=row_id>
                                <th scope="row">{g.name}</th>
                                <td><code>{shown_id}</code></td>
                                <td>{g.scopes}</td>
                                <td>
                                    <form method="post" action=AdminRevokeGrant::url() class="inline-form">
                                        <Csrf token=csrf.clone()/>
                                        <input type="hidden" name="username" value=username.clone()/>
                                        <input type="hidden" name="client_id" value=g.client_id/>
                                        <button class="button small secondary" type="submit" data-testid="revoke-grant">{w.revoke}</button>
                                    </form>
                                </td>
                            </tr>
                        }}).collect_view()}
                    </tbody>
                </table>
            </Wide>
        }
        .into_any()
    };
    view! {
        <section aria-labelledby="grants-heading">
            <h2 id="grants-heading">{w.grants_heading}</h2>
            {body}
        </section>
    }
}

#[component]
fn Invites(w: &'static Words, detail: AccountDetailView) -> impl IntoView {
    let body = if detail.invites.is_empty() {
        view! { <p data-testid="no-invites">{w.no_invites}</p> }.into_any()
    } else {
        view! {
            <Wide label=w.invites_caption.to_owned()>
                <table data-testid="invites">
                    <caption>{w.invites_caption}</caption>
                    <thead><tr>
                        <th scope="col">{w.invite_kind}</th>
                        <th scope="col">{w.created}</th>
                        <th scope="col">{w.expires}</th>
                    </tr></thead>
                    <tbody>
                        {detail.invites.into_iter().map(|i| view! {
                            <tr>
                                <th scope="row">{if i.reset { w.kind_reset } else { w.kind_enroll }}</th>
                                <td>{short_time(&i.created_at)}</td>
                                <td>{short_time(&i.expires_at)}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </Wide>
        }
        .into_any()
    };
    view! {
        <section aria-labelledby="invites-heading">
            <h2 id="invites-heading">{w.invites_heading}</h2>
            {body}
        </section>
    }
}

/// "Reset for a lost phone": which passkeys go (each, or all), then the
/// reset invite.
#[component]
fn Reset(w: &'static Words, detail: AccountDetailView, csrf: String) -> impl IntoView {
    view! {
        <section aria-labelledby="reset-heading">
            <h2 id="reset-heading">{w.reset_heading}</h2>
            <p>{w.reset_lead}</p>
            <form method="post" action=AdminReset::url() class="form" data-testid="reset-form">
                <Csrf token=csrf/>
                <input type="hidden" name="username" value=detail.account.username.clone()/>
                <fieldset class="choices-group">
                    <legend>{w.reset_which}</legend>
                    <label class="check">
                        <input type="checkbox" name="all" value="on" checked data-testid="reset-all"/>
                        {w.reset_all}
                    </label>
                    {detail.passkeys.into_iter().map(|p| view! {
                        <label class="check">
                            <input type="checkbox" name="passkeys[]" value=p.id data-testid="reset-passkey"/>
                            {p.name}
                        </label>
                    }).collect_view()}
                </fieldset>
                <button class="button small danger" type="submit" data-testid="reset-account">{w.reset_button}</button>
            </form>
        </section>
    }
}

pub(super) fn apps(w: &'static Words, apps: Vec<AppRow>, csrf: String) -> AnyView {
    let add_csrf = csrf.clone();
    let list = if apps.is_empty() {
        view! { <p data-testid="no-apps">{w.no_apps}</p> }.into_any()
    } else {
        view! {
            <Wide label=w.apps_caption.to_owned()>
                <table data-testid="apps">
                    <caption>{w.apps_caption}</caption>
                    <thead><tr>
                        <th scope="col">{w.name}</th>
                        <th scope="col">{w.client_id}</th>
                        <th scope="col">{w.client_type}</th>
                        <th scope="col">{w.redirect_uris}</th>
                        <th scope="col">{w.post_logout_uris}</th>
                        <th scope="col">{w.backchannel_logout_uri}</th>
                        <th scope="col">{w.actions}</th>
                    </tr></thead>
                    <tbody>
                        {apps.into_iter().map(|app| {
                            let id = app.client_id.clone();
                            view! {
                                <tr data-client-id=id.clone()>
                                    <th scope="row">{app.name.clone()}</th>
                                    <td><code>{id.clone()}</code></td>
                                    <td>{if app.public { w.public } else { w.confidential }}</td>
                                    <td class="uris">{app.redirect_uris.join("\n")}</td>
                                    <td class="uris">{app.post_logout_uris.join("\n")}</td>
                                    <td class="uris">{app.backchannel_logout_uri.clone().unwrap_or_default()}</td>
                                    <td class="actions">
                                        {(!app.public).then(|| view! {
                                            <form method="post" action=AdminRotateSecret::url() class="inline-form">
                                                <Csrf token=csrf.to_owned()/>
                                                <input type="hidden" name="client_id" value=id.clone()/>
                                                <button class="button small secondary" type="submit" data-testid="rotate-secret">{w.rotate_secret}</button>
                                            </form>
                                        })}
                                        <form method="post" action=AdminRemoveApp::url() class="inline-form">
                                            <Csrf token=csrf.to_owned()/>
                                            <input type="hidden" name="client_id" value=id.clone()/>
                                            <button class="button small danger" type="submit" data-testid="remove-app">{w.remove}</button>
                                        </form>
                                    </td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </Wide>
        }
        .into_any()
    };
    view! {
        {list}
        <section aria-labelledby="add-app-heading">
            <h2 id="add-app-heading">{w.add_app_heading}</h2>
            <form method="post" action=AdminAddApp::url() class="form" data-testid="add-app-form">
                <Csrf token=add_csrf/>
                <label>
                    {w.name}
                    <input name="name" required maxlength="64" autocomplete="off" data-testid="app-name"/>
                </label>
                <label>
                    {format!("{} ({})", w.redirect_uris, w.one_a_line)}
                    <textarea name="redirect_uris" required rows="2" data-testid="app-redirect-uris"></textarea>
                </label>
                <label>
                    {format!("{} ({})", w.post_logout_uris, w.one_a_line)}
                    <textarea name="post_logout_uris" rows="2" data-testid="app-post-logout-uris"></textarea>
                </label>
                <label>
                    {w.backchannel_logout_uri}
                    <input name="backchannel_logout_uri" type="url" maxlength="512" autocomplete="off" data-testid="app-backchannel-logout-uri"/>
                </label>
                <fieldset class="choices-group">
                    <legend>{w.client_type}</legend>
                    <label class="check">
                        <input type="radio" name="kind" value="confidential" checked data-testid="app-confidential"/>
                        {w.confidential}
                    </label>
                    <label class="check">
                        <input type="radio" name="kind" value="public" data-testid="app-public"/>
                        {w.public}
                    </label>
                </fieldset>
                <button class="button" type="submit" data-testid="add-app">{w.add_app_button}</button>
            </form>
        </section>
    }
    .into_any()
}

pub(super) fn audit(w: &'static Words, audit: AuditView, filter: AuditFilterForm) -> AnyView {
    let query = filter.query();
    let export = |format: &str| {
        let mut url = format!("/api/v1/admin/audit/export?format={format}");
        if !audit.export_query.is_empty() {
            url.push('&');
            url.push_str(&audit.export_query);
        }
        url
    };
    let link = {
        let query = query.clone();
        move |n: u32| {
            if query.is_empty() {
                format!("/admin/audit?page={n}")
            } else {
                format!("/admin/audit?{query}&page={n}")
            }
        }
    };
    let caption = fill(w.audit_caption, &[&audit.total.to_string()]);
    let table = if audit.rows.is_empty() {
        view! { <p data-testid="no-records">{w.no_records}</p> }.into_any()
    } else {
        view! {
            <Wide label=caption.clone()>
                <table class="audit" data-testid="audit">
                    <caption>{caption}</caption>
                    <thead><tr>
                        <th scope="col">{w.time}</th>
                        <th scope="col">{w.event}</th>
                        <th scope="col">{w.account}</th>
                        <th scope="col">{w.app}</th>
                        <th scope="col">{w.address}</th>
                        <th scope="col">{w.by}</th>
                        <th scope="col">{w.browser}</th>
                    </tr></thead>
                    <tbody>
                        {audit.rows.into_iter().map(|r| view! {
                            <tr data-event=r.event.clone()>
                                <th scope="row">{short_time(&r.at)}</th>
                                <td>{r.event.clone()}</td>
                                <td>{r.account.clone()}</td>
                                <td>{r.app.clone()}</td>
                                <td>{r.address.clone()}</td>
                                <td>{r.actor.clone()}</td>
                                <td class="user-agent">{r.user_agent.clone()}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </Wide>
        }
        .into_any()
    };
    let selected = filter.event.clone();
    view! {
        <form method="get" action="/admin/audit" class="form filters" role="search" aria-label=w.filters data-testid="audit-filter">
            <label>{w.account}<input name="account" value=filter.account.clone() maxlength="64" autocomplete="off"/></label>
            <label>
                {w.event}
                <select name="event">
                    <option value="">{w.any_event}</option>
                    {audit.events.iter().map(|e| view! {
                        <option value=e.clone() selected=*e == selected>{e.clone()}</option>
                    }).collect_view()}
                </select>
            </label>
            <label>{w.app}<input name="app" value=filter.app.clone() maxlength="128" autocomplete="off"/></label>
            <label>{w.address}<input name="address" value=filter.address.clone() maxlength="64" autocomplete="off"/></label>
            <label>{w.from}<input type="datetime-local" name="from" value=filter.from.clone()/></label>
            <label>{w.to}<input type="datetime-local" name="to" value=filter.to.clone()/></label>
            <div class="actions">
                <button class="button small" type="submit" data-testid="audit-filter-submit">{w.filter_button}</button>
                <a href="/admin/audit" class="button small secondary">{w.clear_filters}</a>
            </div>
        </form>
        <p class="actions exports">
            <a href=export("csv") class="button small secondary" data-testid="export-csv" download>{w.export_csv}</a>
            <a href=export("jsonl") class="button small secondary" data-testid="export-jsonl" download>{w.export_jsonl}</a>
        </p>
        {table}
        <Pager page=audit.page pages=audit.pages link/>
    }
    .into_any()
}

pub(super) fn tokens(w: &'static Words, tokens: Vec<TokenRow>, csrf: String) -> AnyView {
    let add_csrf = csrf.clone();
    let list = if tokens.is_empty() {
        view! { <p data-testid="no-tokens">{w.no_tokens}</p> }.into_any()
    } else {
        view! {
            <Wide label=w.tokens_caption.to_owned()>
                <table data-testid="tokens">
                    <caption>{w.tokens_caption}</caption>
                    <thead><tr>
                        <th scope="col">{w.name}</th>
                        <th scope="col">{w.scope}</th>
                        <th scope="col">{w.created}</th>
                        <th scope="col">{w.expires}</th>
                        <th scope="col">{w.actions}</th>
                    </tr></thead>
                    <tbody>
                        {tokens.into_iter().map(|t| view! {
                            <tr data-token-id=t.id.clone()>
                                <th scope="row">{t.name.clone()}</th>
                                <td>{if t.write { w.scope_write } else { w.scope_read }}</td>
                                <td>{short_time(&t.created_at)}</td>
                                <td>{short_time(&t.expires_at)}</td>
                                <td>
                                    <form method="post" action=AdminRevokeToken::url() class="inline-form">
                                        <Csrf token=csrf.to_owned()/>
                                        <input type="hidden" name="id" value=t.id.clone()/>
                                        <button class="button small danger" type="submit" data-testid="revoke-token">{w.revoke}</button>
                                    </form>
                                </td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </Wide>
        }
        .into_any()
    };
    view! {
        {list}
        <section aria-labelledby="add-token-heading">
            <h2 id="add-token-heading">{w.add_token_heading}</h2>
            <form method="post" action=AdminAddToken::url() class="form" data-testid="add-token-form">
                <Csrf token=add_csrf/>
                <label>
                    {w.name}
                    <input name="name" required maxlength="64" autocomplete="off" data-testid="token-name"/>
                </label>
                <fieldset class="choices-group">
                    <legend>{w.scope}</legend>
                    <label class="check">
                        <input type="radio" name="scope" value="read" checked data-testid="token-read"/>
                        {w.scope_read}
                    </label>
                    <label class="check">
                        <input type="radio" name="scope" value="write" data-testid="token-write"/>
                        {w.scope_write}
                    </label>
                </fieldset>
                <label>
                    {w.valid_days}
                    <input type="number" name="valid_days" value="90" min="1" max="365" required data-testid="token-days"/>
                </label>
                <button class="button" type="submit" data-testid="add-token">{w.add_token_button}</button>
            </form>
        </section>
    }
    .into_any()
}
