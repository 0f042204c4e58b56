//! The port the server crate fills in: what the pages' server functions may
//! ask of the stores. (The server depends on this crate, not the reverse.)

use async_trait::async_trait;
use http::request::Parts;
use leptos::prelude::ServerFnError;

use crate::{
    api::User,
    server_fns::{AccountView, DeviceView, InviteView, LinkView, PasskeyCeremony, PhoneLoginView},
};

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Whether passkeys work here (the public URL has a host name).
    fn passkeys_available(&self) -> bool;
    /// Whether anyone may make an account on `/join` (`--registration open`).
    fn registration_open(&self) -> bool;
    /// Begins an open sign-up: the token of the invite page that finishes
    /// it (`registration_closed`, `username_taken`, `bad_request`,
    /// `rate_limited` refuse).
    async fn join(
        &self,
        request: &Parts,
        username: &str,
        display_name: &str,
    ) -> Result<String, ServerFnError>;
    /// "Add another phone": a phone link's token for the signed-in account
    /// (needs the fresh proof of a credential change).
    async fn start_link(&self, request: &Parts) -> Result<String, ServerFnError>;
    /// Where the signed-in phone's link stands.
    async fn link(&self, request: &Parts, token: &str) -> Result<LinkView, ServerFnError>;
    /// Picks the number the other phone shows: whether it was right.
    async fn pick_link_number(
        &self,
        request: &Parts,
        token: &str,
        number: u8,
    ) -> Result<bool, ServerFnError>;
    async fn current_user(&self, request: &Parts) -> Result<Option<User>, ServerFnError>;
    async fn phone_login(&self, request: &Parts, id: &str)
        -> Result<PhoneLoginView, ServerFnError>;
    async fn approve(
        &self,
        request: &Parts,
        id: &str,
        match_code: u8,
        passkey: Option<&str>,
    ) -> Result<(), ServerFnError>;
    /// WebAuthn request options (JSON) for approving `id` with `match_code`.
    async fn approval_options(
        &self,
        request: &Parts,
        id: &str,
        match_code: u8,
    ) -> Result<String, ServerFnError>;
    async fn deny(&self, request: &Parts, id: &str) -> Result<(), ServerFnError>;
    /// The session's Set-Cookie value, or `None` for wrong credentials.
    async fn sign_in(
        &self,
        request: &Parts,
        username: &str,
        password: &str,
    ) -> Result<Option<String>, ServerFnError>;
    /// Ends the session; returns the Set-Cookie value that clears it.
    async fn sign_out(&self, request: &Parts) -> Result<String, ServerFnError>;
    async fn account(&self, request: &Parts) -> Result<Option<AccountView>, ServerFnError>;
    async fn revoke(&self, request: &Parts, session_id: &str) -> Result<(), ServerFnError>;
    /// The name of the client a waiting authorization request is for.
    async fn authorization_client(&self, request_id: &str)
        -> Result<Option<String>, ServerFnError>;
    async fn device_request(
        &self,
        request: &Parts,
        user_code: &str,
    ) -> Result<DeviceView, ServerFnError>;
    async fn decide_device(
        &self,
        request: &Parts,
        user_code: &str,
        approve: bool,
        passkey: Option<&str>,
    ) -> Result<DeviceView, ServerFnError>;
    /// WebAuthn request options (JSON) for approving a device request.
    async fn device_approval_options(
        &self,
        request: &Parts,
        user_code: &str,
    ) -> Result<String, ServerFnError>;
    /// Starts adding a passkey: the ceremony id and the creation options.
    async fn passkey_registration(&self, request: &Parts)
        -> Result<PasskeyCeremony, ServerFnError>;
    async fn add_passkey(
        &self,
        request: &Parts,
        ceremony: &str,
        name: &str,
        credential: &str,
    ) -> Result<(), ServerFnError>;
    async fn remove_passkey(&self, request: &Parts, id: &str) -> Result<(), ServerFnError>;
    /// `password`: allow password sign-in; `approve_with_passkey`: always
    /// ask for the passkey to approve.
    async fn set_sign_in_choices(
        &self,
        request: &Parts,
        password: bool,
        approve_with_passkey: bool,
    ) -> Result<(), ServerFnError>;
    /// Starts confirming presence with a passkey before a credential change.
    async fn confirm_options(&self, request: &Parts) -> Result<PasskeyCeremony, ServerFnError>;
    /// Checks the confirming assertion; the session may then change its
    /// credentials for five minutes.
    async fn confirm_with_passkey(
        &self,
        request: &Parts,
        ceremony: &str,
        credential: &str,
    ) -> Result<(), ServerFnError>;
    /// Confirms presence with the password (accounts without a passkey).
    async fn confirm_with_password(
        &self,
        request: &Parts,
        password: &str,
    ) -> Result<(), ServerFnError>;
    /// Starts a passkey sign-in: the ceremony id and the request options.
    async fn passkey_sign_in_options(
        &self,
        request: &Parts,
    ) -> Result<PasskeyCeremony, ServerFnError>;
    /// The session's Set-Cookie value.
    async fn passkey_sign_in(
        &self,
        request: &Parts,
        ceremony: &str,
        credential: &str,
    ) -> Result<String, ServerFnError>;
    async fn withdraw_app(&self, request: &Parts, client_id: &str) -> Result<(), ServerFnError>;
    /// What `/invite/{token}` shows (each look-up is rate-limited).
    async fn invite(&self, request: &Parts, token: &str) -> Result<InviteView, ServerFnError>;
    /// Starts creating the invited account's passkey.
    async fn invite_passkey_options(
        &self,
        request: &Parts,
        token: &str,
    ) -> Result<PasskeyCeremony, ServerFnError>;
    /// Keeps the passkey and uses the invite up; the new session's
    /// Set-Cookie value.
    async fn enroll_passkey(
        &self,
        request: &Parts,
        token: &str,
        ceremony: &str,
        name: &str,
        credential: &str,
    ) -> Result<String, ServerFnError>;
    /// Sets the password (passkeys off) and uses the invite up; the new
    /// session's Set-Cookie value.
    async fn enroll_password(
        &self,
        request: &Parts,
        token: &str,
        password: &str,
    ) -> Result<String, ServerFnError>;
}
