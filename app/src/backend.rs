//! The port the server crate fills in: what the pages' server functions may
//! ask of the stores. (The server depends on this crate, not the reverse.)

use async_trait::async_trait;
use http::request::Parts;
use leptos::prelude::ServerFnError;

use crate::{
    api::User,
    server_fns::{AccountView, DeviceView, PhoneLoginView},
};

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn current_user(&self, request: &Parts) -> Result<Option<User>, ServerFnError>;
    async fn phone_login(&self, request: &Parts, id: &str)
        -> Result<PhoneLoginView, ServerFnError>;
    async fn approve(&self, request: &Parts, id: &str, match_code: u8)
        -> Result<(), ServerFnError>;
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
    ) -> Result<DeviceView, ServerFnError>;
    async fn withdraw_app(&self, request: &Parts, client_id: &str) -> Result<(), ServerFnError>;
}
