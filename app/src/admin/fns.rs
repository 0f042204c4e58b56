//! The console's server functions: the pages' loads, and one per form.
//! Each form carries the page's CSRF token and answers with a redirect to
//! the page that shows its outcome (`?code=done`, or the refusal's code:
//! `confirm_first` brings up "Confirm it's you"); a forged, foreign or
//! non-administrator's form is refused with its status (403) instead. (A
//! missing token is an empty one: refused the same way.)

use leptos::prelude::*;

#[cfg(feature = "ssr")]
use super::views::AdminAction;
use super::views::{
    AccountDetailView, AccountsView, AppRow, AuditFilterForm, AuditView, Gate, StatusView, TokenRow,
};

#[cfg(feature = "ssr")]
fn port() -> Result<
    (
        std::sync::Arc<dyn super::port::AdminBackend>,
        http::request::Parts,
    ),
    ServerFnError,
> {
    let port = use_context::<std::sync::Arc<dyn super::port::AdminBackend>>()
        .ok_or_else(|| ServerFnError::new("no admin backend"))?;
    let parts =
        use_context::<http::request::Parts>().ok_or_else(|| ServerFnError::new("no request"))?;
    Ok((port, parts))
}

/// Refusals the page explains (back to it with the code); any other is
/// the server function's error, with its status.
#[cfg(feature = "ssr")]
const SHOWN_ON_PAGE: [&str; 11] = [
    "confirm_first",
    "last_admin",
    "own_account",
    "username_taken",
    "bad_request",
    "not_found",
    "account_not_found",
    "app_not_found",
    "token_not_found",
    "no_passkeys",
    "rate_limited",
];

/// Carries out `action`, then back to the page that shows how it went.
#[cfg(feature = "ssr")]
async fn act(csrf: String, action: AdminAction) -> Result<(), ServerFnError> {
    let (port, parts) = port()?;
    let done = action.page();
    let form = action.form_page();
    match port.act(&parts, &csrf, action).await {
        Ok(()) => leptos_axum::redirect(&format!("{done}?code=done")),
        Err(ServerFnError::ServerError(code)) if SHOWN_ON_PAGE.contains(&code.as_str()) => {
            leptos_axum::redirect(&format!("{form}?code={code}"))
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// A checkbox's value: present when ticked.
#[cfg(feature = "ssr")]
fn ticked(value: &Option<String>) -> bool {
    value.is_some()
}

/// Lines of a textarea, trimmed, the empty ones dropped.
#[cfg(feature = "ssr")]
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

// ---- loads ----

#[server(prefix = "/fn")]
pub async fn admin_status() -> Result<Gate<StatusView>, ServerFnError> {
    let (port, parts) = port()?;
    port.status(&parts).await
}

#[server(prefix = "/fn")]
pub async fn admin_accounts(
    search: String,
    page: u32,
) -> Result<Gate<AccountsView>, ServerFnError> {
    let (port, parts) = port()?;
    port.accounts(&parts, &search, page).await
}

#[server(prefix = "/fn")]
pub async fn admin_account(
    username: String,
) -> Result<Gate<Option<AccountDetailView>>, ServerFnError> {
    let (port, parts) = port()?;
    port.account(&parts, &username).await
}

#[server(prefix = "/fn")]
pub async fn admin_apps() -> Result<Gate<Vec<AppRow>>, ServerFnError> {
    let (port, parts) = port()?;
    port.apps(&parts).await
}

#[server(prefix = "/fn")]
pub async fn admin_audit(
    filter: AuditFilterForm,
    page: u32,
) -> Result<Gate<AuditView>, ServerFnError> {
    let (port, parts) = port()?;
    port.audit(&parts, &filter, page).await
}

#[server(prefix = "/fn")]
pub async fn admin_tokens() -> Result<Gate<Vec<TokenRow>>, ServerFnError> {
    let (port, parts) = port()?;
    port.tokens(&parts).await
}

// ---- forms ----

#[server(prefix = "/fn")]
pub async fn admin_create_account(
    #[server(default)] csrf: String,
    username: String,
    #[server(default)] display_name: String,
    #[server(default)] admin: Option<String>,
) -> Result<(), ServerFnError> {
    let admin = ticked(&admin);
    act(
        csrf,
        AdminAction::CreateAccount {
            username,
            display_name,
            admin,
        },
    )
    .await
}

#[server(prefix = "/fn")]
pub async fn admin_invite(
    #[server(default)] csrf: String,
    username: String,
) -> Result<(), ServerFnError> {
    act(csrf, AdminAction::Invite { username }).await
}

/// `passkeys[]`: the ticked passkeys' ids; `all`: every passkey.
#[server(prefix = "/fn")]
pub async fn admin_reset(
    #[server(default)] csrf: String,
    username: String,
    #[server(default)] all: Option<String>,
    #[server(default)] passkeys: Vec<String>,
) -> Result<(), ServerFnError> {
    let all = ticked(&all);
    act(
        csrf,
        AdminAction::Reset {
            username,
            all,
            passkeys,
        },
    )
    .await
}

#[server(prefix = "/fn")]
pub async fn admin_disable(
    #[server(default)] csrf: String,
    username: String,
) -> Result<(), ServerFnError> {
    act(csrf, AdminAction::Disable { username }).await
}

#[server(prefix = "/fn")]
pub async fn admin_enable(
    #[server(default)] csrf: String,
    username: String,
) -> Result<(), ServerFnError> {
    act(csrf, AdminAction::Enable { username }).await
}

/// `admin`: "on" to make an administrator, anything else to stop being one.
#[server(prefix = "/fn")]
pub async fn admin_set_admin(
    #[server(default)] csrf: String,
    username: String,
    admin: String,
) -> Result<(), ServerFnError> {
    let admin = admin == "on";
    act(csrf, AdminAction::SetAdmin { username, admin }).await
}

#[server(prefix = "/fn")]
pub async fn admin_remove_account(
    #[server(default)] csrf: String,
    username: String,
) -> Result<(), ServerFnError> {
    act(csrf, AdminAction::Remove { username }).await
}

#[server(prefix = "/fn")]
pub async fn admin_revoke_session(
    #[server(default)] csrf: String,
    username: String,
    session_id: String,
) -> Result<(), ServerFnError> {
    act(
        csrf,
        AdminAction::RevokeSession {
            username,
            session_id,
        },
    )
    .await
}

#[server(prefix = "/fn")]
pub async fn admin_remove_passkey(
    #[server(default)] csrf: String,
    username: String,
    passkey_id: String,
) -> Result<(), ServerFnError> {
    act(
        csrf,
        AdminAction::RemovePasskey {
            username,
            passkey_id,
        },
    )
    .await
}

#[server(prefix = "/fn")]
pub async fn admin_revoke_grant(
    #[server(default)] csrf: String,
    username: String,
    client_id: String,
) -> Result<(), ServerFnError> {
    act(
        csrf,
        AdminAction::RevokeGrant {
            username,
            client_id,
        },
    )
    .await
}

/// `kind`: "public" or "confidential".
#[server(prefix = "/fn")]
pub async fn admin_add_app(
    #[server(default)] csrf: String,
    name: String,
    redirect_uris: String,
    #[server(default)] post_logout_uris: String,
    #[server(default)] backchannel_logout_uri: String,
    kind: String,
) -> Result<(), ServerFnError> {
    let backchannel_logout_uri = backchannel_logout_uri.trim();
    let action = AdminAction::AddApp {
        name,
        redirect_uris: lines(&redirect_uris),
        post_logout_uris: lines(&post_logout_uris),
        backchannel_logout_uri: (!backchannel_logout_uri.is_empty())
            .then(|| backchannel_logout_uri.to_owned()),
        public: kind == "public",
    };
    act(csrf, action).await
}

#[server(prefix = "/fn")]
pub async fn admin_rotate_secret(
    #[server(default)] csrf: String,
    client_id: String,
) -> Result<(), ServerFnError> {
    act(csrf, AdminAction::RotateSecret { client_id }).await
}

#[server(prefix = "/fn")]
pub async fn admin_remove_app(
    #[server(default)] csrf: String,
    client_id: String,
) -> Result<(), ServerFnError> {
    act(csrf, AdminAction::RemoveApp { client_id }).await
}

/// `scope`: "write" or "read"; `valid_days`: whole days.
#[server(prefix = "/fn")]
pub async fn admin_add_token(
    #[server(default)] csrf: String,
    name: String,
    scope: String,
    valid_days: String,
) -> Result<(), ServerFnError> {
    let action = AdminAction::AddToken {
        name,
        write: scope == "write",
        // Not a number: zero, which the service refuses as invalid.
        valid_days: valid_days.trim().parse().unwrap_or(0),
    };
    act(csrf, action).await
}

#[server(prefix = "/fn")]
pub async fn admin_revoke_token(
    #[server(default)] csrf: String,
    id: String,
) -> Result<(), ServerFnError> {
    act(csrf, AdminAction::RevokeToken { id }).await
}
