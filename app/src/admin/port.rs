//! The admin console's port, filled in by the server crate beside
//! [`crate::backend::Backend`]: what the console's server functions may
//! ask. Every method decides who is looking first ([`Gate`]).

use async_trait::async_trait;
use http::request::Parts;
use leptos::prelude::ServerFnError;

use super::views::{
    AccountDetailView, AccountsView, AdminAction, AppRow, AuditFilterForm, AuditView, Gate,
    StatusView, TokenRow,
};

#[async_trait]
pub trait AdminBackend: Send + Sync + 'static {
    async fn status(&self, request: &Parts) -> Result<Gate<StatusView>, ServerFnError>;
    async fn accounts(
        &self,
        request: &Parts,
        search: &str,
        page: u32,
    ) -> Result<Gate<AccountsView>, ServerFnError>;
    /// `None` inside: no such account.
    async fn account(
        &self,
        request: &Parts,
        username: &str,
    ) -> Result<Gate<Option<AccountDetailView>>, ServerFnError>;
    async fn apps(&self, request: &Parts) -> Result<Gate<Vec<AppRow>>, ServerFnError>;
    async fn audit(
        &self,
        request: &Parts,
        filter: &AuditFilterForm,
        page: u32,
    ) -> Result<Gate<AuditView>, ServerFnError>;
    async fn tokens(&self, request: &Parts) -> Result<Gate<Vec<TokenRow>>, ServerFnError>;
    /// Carries out one form's action for an administrator whose form
    /// carried `csrf`, with the fresh proof when the action needs it. A
    /// refusal is a machine code (`confirm_first`, `last_admin`, …); a
    /// forged or foreign form changes nothing and is a 403.
    async fn act(
        &self,
        request: &Parts,
        csrf: &str,
        action: AdminAction,
    ) -> Result<(), ServerFnError>;
}
