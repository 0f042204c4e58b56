//! Server functions behind the pages. On the server each one calls the
//! [`Backend`](crate::backend::Backend) the server crate provides; in the
//! browser they are HTTP calls. Every state change answers with a redirect
//! back to a page, so plain HTML forms work with JavaScript off.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api::{LoginState, RecentSignIn, Scanned, SessionInfo, User};

/// What the phone page `/q/{id}` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PhoneLoginView {
    /// Not signed in on this phone: show the sign-in form first.
    SignInNeeded,
    /// No such code (mistyped, or long gone).
    Unknown,
    /// Another account scanned it first.
    TakenByOther,
    /// The app asked for another account (`login_hint`) than this phone's.
    ForAnotherAccount,
    /// Scanned by this account: show who asks, the three numbers, approve/deny.
    Confirm { me: User, scanned: Scanned },
    /// Approved by this account; the computer is signing in.
    Approved,
    /// Ended: redeemed, denied, expired or cancelled.
    Finished { state: LoginState },
}

/// What `/m` shows to a signed-in phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub user: User,
    pub sessions: Vec<SessionInfo>,
    pub recent: Vec<RecentSignIn>,
    /// Applications (OpenID Connect clients) this account signed in to.
    pub apps: Vec<AppConsent>,
    /// This site's public URL: the only one the camera scanner follows.
    pub site: String,
    pub passkeys: Vec<PasskeyView>,
    /// Whether this server can use passkeys (its URL has a host name).
    pub passkeys_available: bool,
    pub password_off: bool,
    pub approve_with_passkey: bool,
    /// Passkeys removed since the account last looked at `/m`.
    pub removed_passkeys: Vec<RemovedPasskeyView>,
    /// How a change to the account's credentials is confirmed, and whether
    /// this session has just done so.
    pub confirm: ConfirmView,
}

/// What confirms a change to how the account signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfirmWith {
    Passkey,
    Password,
    /// Nothing but the session: an administrator must help.
    Nothing,
}

/// The session's standing to change the account's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmView {
    pub with: ConfirmWith,
    /// RFC 3339, UTC: until when changes go through without asking again.
    pub fresh_until: Option<String>,
}

/// A passkey removed from the account, as `/m` tells of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedPasskeyView {
    pub name: String,
    /// RFC 3339, UTC.
    pub removed_at: String,
}

/// One of the account's passkeys, as `/m` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyView {
    /// The credential id, base64url.
    pub id: String,
    pub name: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// Added since the account last looked at `/m`.
    pub new: bool,
}

/// A WebAuthn ceremony begun: its id and the options for the browser
/// (`publicKey`, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyCeremony {
    pub ceremony: String,
    pub options: String,
}

/// An application the account approved on its phone; withdrawing it signs
/// the application out (its tokens are revoked) and asks the phone again
/// next time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppConsent {
    pub client_id: String,
    pub name: String,
    /// RFC 3339, UTC.
    pub granted_at: String,
}

/// Who asked for a device sign-in (RFC 8628), as the phone is shown it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRequest {
    pub user_code: String,
    pub client: String,
    pub browser: String,
    pub os: String,
    pub ip: String,
    pub same_network: bool,
    pub age_s: u64,
    /// Approving needs a passkey that signs what is shown.
    pub needs_passkey: bool,
}

/// What the phone page `/device` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceView {
    /// No code given yet: the form to type one.
    EnterCode,
    SignInNeeded,
    /// No such code, or it expired (or was mistyped).
    Unknown,
    /// Too many codes tried: wait.
    TooMany,
    Confirm {
        me: User,
        request: DeviceRequest,
    },
    Approved {
        client: String,
    },
    Denied {
        client: String,
    },
}

/// What the invite page `/invite/{token}` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InviteView {
    /// A live invite: whom it sets up, on which site, and how (a passkey,
    /// or a password where passkeys are off).
    Ready {
        display_name: String,
        username: String,
        /// This site's host name.
        site: String,
        passkeys: bool,
    },
    /// Unknown, used, expired or revoked (one answer for all).
    Gone,
    /// Too many invites looked up from this address: wait.
    TooMany,
    /// A phone link this phone opened: the number to show, for the first
    /// phone to pick.
    LinkNumber { number: u8, display_name: String },
    /// A phone link whose number the first phone picked: create this
    /// phone's passkey on the account.
    LinkReady {
        display_name: String,
        username: String,
        site: String,
    },
}

/// What the first phone's `/m/link/{token}` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkView {
    SignInNeeded,
    /// Nobody opened the link yet: its URL, for the QR.
    Waiting {
        url: String,
    },
    /// A phone opened it: the three numbers to pick from.
    Scanned {
        choices: Vec<u8>,
    },
    /// The right number was picked: the other phone is finishing.
    Matched,
    /// Ended: used, expired, a wrong number, or not this phone's.
    Gone,
}

/// A machine code fit for a query string (letters and `_` only).
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
fn local_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_lowercase() || *c == '_')
        .take(40)
        .collect()
}

/// Only paths of this site may be redirect targets.
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
fn local_path(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && next.len() <= 200
        && next
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_?=&.%:+".contains(&b));
    if ok {
        next
    } else {
        "/m"
    }
}

#[cfg(feature = "ssr")]
fn backend() -> Result<
    (
        std::sync::Arc<dyn crate::backend::Backend>,
        http::request::Parts,
    ),
    ServerFnError,
> {
    let backend = use_context::<std::sync::Arc<dyn crate::backend::Backend>>()
        .ok_or_else(|| ServerFnError::new("no backend"))?;
    let parts =
        use_context::<http::request::Parts>().ok_or_else(|| ServerFnError::new("no request"))?;
    Ok((backend, parts))
}

#[cfg(feature = "ssr")]
fn set_cookie(value: String) {
    if let (Some(response), Ok(value)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        http::HeaderValue::from_str(&value),
    ) {
        response.append_header(http::header::SET_COOKIE, value);
    }
}

/// The signed-in account of this browser, if any.
#[server(prefix = "/fn")]
pub async fn current_user() -> Result<Option<User>, ServerFnError> {
    let (backend, parts) = backend()?;
    backend.current_user(&parts).await
}

/// Loads `/q/{id}` for this phone; for a signed-in phone this is the scan.
#[server(prefix = "/fn")]
pub async fn phone_login(id: String) -> Result<PhoneLoginView, ServerFnError> {
    let (backend, parts) = backend()?;
    backend.phone_login(&parts, &id).await
}

/// `passkey`: the assertion (`PublicKeyCredential.toJSON()`) when
/// approving needs one.
#[server(prefix = "/fn")]
pub async fn approve_login(
    id: String,
    match_code: u8,
    #[server(default)] passkey: Option<String>,
) -> Result<(), ServerFnError> {
    let (backend, parts) = backend()?;
    // Whatever happened (approved, or denied by a wrong pick), the page shows it.
    backend
        .approve(&parts, &id, match_code, passkey.as_deref())
        .await?;
    leptos_axum::redirect(local_path(&format!("/q/{id}")));
    Ok(())
}

/// WebAuthn options (JSON) whose challenge signs this attempt, this number
/// and who is asking.
#[server(prefix = "/fn")]
pub async fn approval_options(id: String, match_code: u8) -> Result<String, ServerFnError> {
    let (backend, parts) = backend()?;
    backend.approval_options(&parts, &id, match_code).await
}

/// WebAuthn options (JSON) for approving a device request.
#[server(prefix = "/fn")]
pub async fn device_approval_options(user_code: String) -> Result<String, ServerFnError> {
    let (backend, parts) = backend()?;
    backend.device_approval_options(&parts, &user_code).await
}

#[server(prefix = "/fn")]
pub async fn passkey_registration() -> Result<PasskeyCeremony, ServerFnError> {
    let (backend, parts) = backend()?;
    backend.passkey_registration(&parts).await
}

#[server(prefix = "/fn")]
pub async fn add_passkey(
    ceremony: String,
    name: String,
    credential: String,
) -> Result<(), ServerFnError> {
    let (backend, parts) = backend()?;
    backend
        .add_passkey(&parts, &ceremony, &name, &credential)
        .await
}

/// Removes a passkey; back to `/m`, which says why when it was refused
/// (e.g. no fresh confirmation).
#[server(prefix = "/fn")]
pub async fn remove_passkey(id: String) -> Result<(), ServerFnError> {
    let (backend, parts) = backend()?;
    back_to_m(backend.remove_passkey(&parts, &id).await)
}

/// Back to `/m`, with the refusal's machine code when there was one.
#[cfg(feature = "ssr")]
fn back_to_m(outcome: Result<(), ServerFnError>) -> Result<(), ServerFnError> {
    match outcome {
        Ok(()) => leptos_axum::redirect("/m"),
        Err(ServerFnError::ServerError(code)) => {
            leptos_axum::redirect(&format!("/m?choices={}", local_code(&code)))
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Options for confirming it is the owner with a passkey (the step before
/// a change to how the account signs in).
#[server(prefix = "/fn")]
pub async fn confirm_options() -> Result<PasskeyCeremony, ServerFnError> {
    let (backend, parts) = backend()?;
    backend.confirm_options(&parts).await
}

#[server(prefix = "/fn")]
pub async fn confirm_with_passkey(
    ceremony: String,
    credential: String,
) -> Result<(), ServerFnError> {
    let (backend, parts) = backend()?;
    backend
        .confirm_with_passkey(&parts, &ceremony, &credential)
        .await
}

/// Confirms with the password (a plain form: works without JavaScript);
/// back to `/m`, or to the admin console page named by `next`.
#[server(prefix = "/fn")]
pub async fn confirm_with_password(
    password: String,
    #[server(default)] next: Option<String>,
) -> Result<(), ServerFnError> {
    let (backend, parts) = backend()?;
    let outcome = backend.confirm_with_password(&parts, &password).await;
    match next.as_deref().map(local_path) {
        Some(page) if page.starts_with("/admin") => {
            let page = page.split('?').next().unwrap_or("/admin");
            match outcome {
                Ok(()) => leptos_axum::redirect(page),
                Err(ServerFnError::ServerError(code)) => {
                    leptos_axum::redirect(&format!("{page}?code={}", local_code(&code)))
                }
                Err(e) => return Err(e),
            }
            Ok(())
        }
        _ => back_to_m(outcome),
    }
}

/// The account's sign-in choices (a plain form: unchecked boxes are absent).
#[server(prefix = "/fn")]
pub async fn set_sign_in_choices(
    #[server(default)] password: Option<String>,
    #[server(default)] approve_with_passkey: Option<String>,
) -> Result<(), ServerFnError> {
    let (backend, parts) = backend()?;
    // The page says why when refused (e.g. no passkey yet).
    back_to_m(
        backend
            .set_sign_in_choices(&parts, password.is_some(), approve_with_passkey.is_some())
            .await,
    )
}

#[server(prefix = "/fn")]
pub async fn passkey_sign_in_options() -> Result<PasskeyCeremony, ServerFnError> {
    let (backend, parts) = backend()?;
    backend.passkey_sign_in_options(&parts).await
}

#[server(prefix = "/fn")]
pub async fn passkey_sign_in(ceremony: String, credential: String) -> Result<(), ServerFnError> {
    let (backend, parts) = backend()?;
    let cookie = backend
        .passkey_sign_in(&parts, &ceremony, &credential)
        .await?;
    set_cookie(cookie);
    Ok(())
}

#[server(prefix = "/fn")]
pub async fn deny_login(id: String) -> Result<(), ServerFnError> {
    let (backend, parts) = backend()?;
    backend.deny(&parts, &id).await?;
    leptos_axum::redirect(local_path(&format!("/q/{id}")));
    Ok(())
}

/// Username and password sign-in (phones); back to `next` either way, with
/// `?signin=failed` when it failed.
#[server(prefix = "/fn")]
pub async fn sign_in(
    username: String,
    password: String,
    next: String,
) -> Result<(), ServerFnError> {
    let (backend, parts) = backend()?;
    let next = local_path(&next)
        .split('?')
        .next()
        .unwrap_or("/m")
        .to_owned();
    match backend.sign_in(&parts, &username, &password).await {
        Ok(Some(cookie)) => {
            set_cookie(cookie);
            leptos_axum::redirect(&next);
        }
        Ok(None) => leptos_axum::redirect(&format!("{next}?signin=failed")),
        Err(ServerFnError::ServerError(code)) if code == "password_off" => {
            leptos_axum::redirect(&format!("{next}?signin=password_off"))
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

#[server(prefix = "/fn")]
pub async fn sign_out(next: String) -> Result<(), ServerFnError> {
    let (backend, parts) = backend()?;
    set_cookie(backend.sign_out(&parts).await?);
    leptos_axum::redirect(local_path(&next));
    Ok(())
}

#[server(prefix = "/fn")]
pub async fn my_account() -> Result<Option<AccountView>, ServerFnError> {
    let (backend, parts) = backend()?;
    backend.account(&parts).await
}

/// The name of the application a waiting OpenID Connect authorization
/// request is for (the `/login?authorization=…` heading).
#[server(prefix = "/fn")]
pub async fn authorization_client(request: String) -> Result<Option<String>, ServerFnError> {
    let (backend, _) = backend()?;
    backend.authorization_client(&request).await
}

/// Loads `/device` for this phone.
#[server(prefix = "/fn")]
pub async fn load_device(user_code: String) -> Result<DeviceView, ServerFnError> {
    let (backend, parts) = backend()?;
    backend.device_request(&parts, &user_code).await
}

/// Approves (`decision` = "approve") or denies a device sign-in; back to
/// its page, which then shows the outcome.
#[server(prefix = "/fn")]
pub async fn decide_device(
    user_code: String,
    decision: String,
    #[server(default)] passkey: Option<String>,
) -> Result<(), ServerFnError> {
    let (backend, parts) = backend()?;
    let view = backend
        .decide_device(
            &parts,
            &user_code,
            decision == "approve",
            passkey.as_deref(),
        )
        .await?;
    let outcome = match view {
        DeviceView::Approved { .. } => "approved",
        DeviceView::Denied { .. } => "denied",
        _ => "unknown",
    };
    let code: String = user_code
        .chars()
        .filter(|c| c.is_ascii_alphabetic() || *c == '-')
        .take(9)
        .collect();
    leptos_axum::redirect(&format!("/device?user_code={code}&outcome={outcome}"));
    Ok(())
}

/// Withdraws the account's consent to an application and revokes its tokens.
#[server(prefix = "/fn")]
pub async fn withdraw_app(client_id: String) -> Result<(), ServerFnError> {
    let (backend, parts) = backend()?;
    backend.withdraw_app(&parts, &client_id).await?;
    leptos_axum::redirect("/m");
    Ok(())
}

/// The language switcher: remembers `lang` in a cookie (a year) and goes
/// back to `next`.
#[server(prefix = "/fn")]
pub async fn set_language(lang: String, next: String) -> Result<(), ServerFnError> {
    let lang = crate::i18n::Lang::from_tag(&lang).unwrap_or_default();
    set_cookie(format!(
        "{}={}; Path=/; Max-Age=31536000; SameSite=Lax",
        crate::i18n::LANG_COOKIE,
        lang.tag()
    ));
    leptos_axum::redirect(local_path(&next));
    Ok(())
}

/// Loads `/invite/{token}`.
#[server(prefix = "/fn")]
pub async fn load_invite(token: String) -> Result<InviteView, ServerFnError> {
    let (backend, parts) = backend()?;
    backend.invite(&parts, &token).await
}

/// Starts creating the invited account's passkey (no session needed).
#[server(prefix = "/fn")]
pub async fn invite_passkey_options(token: String) -> Result<PasskeyCeremony, ServerFnError> {
    let (backend, parts) = backend()?;
    backend.invite_passkey_options(&parts, &token).await
}

/// Keeps the new passkey, uses the invite up and signs this phone in.
#[server(prefix = "/fn")]
pub async fn enroll_passkey(
    token: String,
    ceremony: String,
    name: String,
    credential: String,
) -> Result<(), ServerFnError> {
    let (backend, parts) = backend()?;
    let cookie = backend
        .enroll_passkey(&parts, &token, &ceremony, &name, &credential)
        .await?;
    set_cookie(cookie);
    Ok(())
}

/// Where passkeys are off: sets the password, uses the invite up and
/// signs this phone in, then to `/m` (a plain form). Refused: back to the
/// invite, which says why.
#[server(prefix = "/fn")]
pub async fn enroll_password(token: String, password: String) -> Result<(), ServerFnError> {
    let (backend, parts) = backend()?;
    match backend.enroll_password(&parts, &token, &password).await {
        Ok(cookie) => {
            set_cookie(cookie);
            leptos_axum::redirect("/m");
        }
        Err(ServerFnError::ServerError(code)) => {
            let back = format!("/invite/{token}?failed={}", local_code(&code));
            leptos_axum::redirect(local_path(&back));
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Begins an open sign-up (a plain form on `/join`): on to the invite page
/// that creates the passkey; refused, back to `/join`, which says why.
#[server(prefix = "/fn")]
pub async fn join_start(username: String, display_name: String) -> Result<(), ServerFnError> {
    let (backend, parts) = backend()?;
    match backend.join(&parts, &username, &display_name).await {
        Ok(token) => leptos_axum::redirect(local_path(&format!("/invite/{token}"))),
        Err(ServerFnError::ServerError(code)) => {
            leptos_axum::redirect(&format!("/join?failed={}", local_code(&code)))
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// "Add another phone" (a plain form on `/m`): on to the link's page;
/// refused (no fresh confirmation), back to `/m`, which says why.
#[server(prefix = "/fn")]
pub async fn start_link() -> Result<(), ServerFnError> {
    let (backend, parts) = backend()?;
    match backend.start_link(&parts).await {
        Ok(token) => leptos_axum::redirect(local_path(&format!("/m/link/{token}"))),
        Err(e) => return back_to_m(Err(e)),
    }
    Ok(())
}

/// Loads `/m/link/{token}`.
#[server(prefix = "/fn")]
pub async fn load_link(token: String) -> Result<LinkView, ServerFnError> {
    let (backend, parts) = backend()?;
    backend.link(&parts, &token).await
}

/// The number picked on the first phone (a plain form); back to the link's
/// page, told when it was wrong (the link then ended).
#[server(prefix = "/fn")]
pub async fn pick_link_number(token: String, number: u8) -> Result<(), ServerFnError> {
    let (backend, parts) = backend()?;
    let right = backend.pick_link_number(&parts, &token, number).await?;
    let back = match right {
        true => format!("/m/link/{token}"),
        false => format!("/m/link/{token}?wrong=1"),
    };
    leptos_axum::redirect(local_path(&back));
    Ok(())
}

#[server(prefix = "/fn")]
pub async fn revoke_session(id: String) -> Result<(), ServerFnError> {
    let (backend, parts) = backend()?;
    backend.revoke(&parts, &id).await?;
    leptos_axum::redirect("/m");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_local_paths_are_redirect_targets() {
        assert_eq!(
            local_path("/q/0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a59"),
            "/q/0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a59"
        );
        assert_eq!(local_path("//evil.example"), "/m");
        assert_eq!(local_path("https://evil.example"), "/m");
        assert_eq!(local_path("/x\r\nSet-Cookie: a=b"), "/m");
        // The admin console's filters (a time, encoded) survive a switch
        // of language.
        assert_eq!(
            local_path("/admin/audit?from=2026-12-01T10%3A00&account=a.b"),
            "/admin/audit?from=2026-12-01T10%3A00&account=a.b"
        );
        assert_eq!(local_path("/\\evil.example"), "/m");
    }
}
