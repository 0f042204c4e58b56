//! What the console's pages show, as the server hands it over: plain data,
//! the same on both sides of the port.

use serde::{Deserialize, Serialize};

use crate::{api::User, server_fns::ConfirmView};

/// Who is looking decides what a console page is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Gate<T> {
    /// Nobody (or a disabled account) is signed in: to `/login` first.
    SignIn,
    /// Signed in, not an administrator: 403.
    Forbidden,
    Ready(Console<T>),
}

/// A console page for an administrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Console<T> {
    pub me: User,
    /// What every form of the page carries back (checked before any change).
    pub csrf: String,
    /// How this administrator confirms it is them before a change, and
    /// whether they just did.
    pub confirm: ConfirmView,
    /// A secret made by the last action, shown on this view only.
    pub shown: Option<Shown>,
    pub view: T,
}

/// A secret shown once, right after the action that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shown {
    Invite {
        username: String,
        link: String,
        reset: bool,
        /// RFC 3339, UTC.
        expires_at: String,
    },
    AppSecret {
        name: String,
        client_id: String,
        /// `None` for a public client (it has none).
        secret: Option<String>,
    },
    Token {
        name: String,
        token: String,
    },
}

/// `/admin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    pub version: String,
    /// "SQLite" or "PostgreSQL".
    pub database: String,
    pub database_ok: bool,
    /// `None`: no Redis configured.
    pub redis_ok: Option<bool>,
    pub accounts: u64,
    pub sessions: u64,
    pub desktops_waiting: u64,
}

/// One row of `/admin/accounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRow {
    pub username: String,
    pub display_name: String,
    pub admin: bool,
    pub disabled: bool,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub passkeys: u64,
    pub sessions: u64,
}

/// `/admin/accounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountsView {
    pub rows: Vec<AccountRow>,
    pub page: u32,
    pub pages: u32,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRow {
    pub id: String,
    pub browser: String,
    pub os: String,
    pub ip: String,
    pub method: String,
    pub created_at: String,
    pub last_seen_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyRow {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRow {
    pub client_id: String,
    pub name: String,
    pub scopes: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRow {
    pub reset: bool,
    pub created_at: String,
    pub expires_at: String,
}

/// `/admin/accounts/{username}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDetailView {
    pub account: AccountRow,
    pub sessions: Vec<SessionRow>,
    pub passkeys: Vec<PasskeyRow>,
    pub grants: Vec<GrantRow>,
    pub invites: Vec<InviteRow>,
}

/// One row of `/admin/apps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRow {
    pub client_id: String,
    pub name: String,
    pub public: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_uris: Vec<String>,
    /// Where logout tokens are POSTed (back-channel logout), if anywhere.
    pub backchannel_logout_uri: Option<String>,
}

/// The audit page's filters, as the form and its URL carry them (the
/// times as `<input type="datetime-local">` writes them, read as UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilterForm {
    pub account: String,
    pub event: String,
    pub app: String,
    pub address: String,
    pub from: String,
    pub to: String,
}

impl AuditFilterForm {
    /// The filters as a query string (no leading `?`), the empty ones left
    /// out: for the page's links and the export's.
    pub fn query(&self) -> String {
        [
            ("account", &self.account),
            ("event", &self.event),
            ("app", &self.app),
            ("address", &self.address),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| format!("{name}={}", encode(value.trim())))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub at: String,
    pub event: String,
    pub account: String,
    pub app: String,
    pub address: String,
    pub actor: String,
    pub user_agent: String,
}

/// `/admin/audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditView {
    pub rows: Vec<AuditRow>,
    pub page: u32,
    pub pages: u32,
    pub total: u64,
    /// Every event name, for the filter's choices.
    pub events: Vec<String>,
    /// The same filters as the admin API reads them (times in unix ms),
    /// for the export links.
    pub export_query: String,
}

/// One row of `/admin/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub write: bool,
    pub created_at: String,
    pub expires_at: String,
}

/// What one console form asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminAction {
    CreateAccount {
        username: String,
        display_name: String,
        admin: bool,
    },
    Invite {
        username: String,
    },
    Reset {
        username: String,
        /// Every passkey, else those of `passkeys`.
        all: bool,
        passkeys: Vec<String>,
    },
    Disable {
        username: String,
    },
    Enable {
        username: String,
    },
    SetAdmin {
        username: String,
        admin: bool,
    },
    Remove {
        username: String,
    },
    RevokeSession {
        username: String,
        session_id: String,
    },
    RemovePasskey {
        username: String,
        passkey_id: String,
    },
    RevokeGrant {
        username: String,
        client_id: String,
    },
    AddApp {
        name: String,
        redirect_uris: Vec<String>,
        post_logout_uris: Vec<String>,
        backchannel_logout_uri: Option<String>,
        public: bool,
    },
    RotateSecret {
        client_id: String,
    },
    RemoveApp {
        client_id: String,
    },
    AddToken {
        name: String,
        write: bool,
        valid_days: u64,
    },
    RevokeToken {
        id: String,
    },
}

impl AdminAction {
    /// The console page the action's outcome is shown on.
    pub fn page(&self) -> String {
        match self {
            Self::CreateAccount { .. } | Self::Remove { .. } => "/admin/accounts".into(),
            Self::Invite { username }
            | Self::Reset { username, .. }
            | Self::Disable { username }
            | Self::Enable { username }
            | Self::SetAdmin { username, .. }
            | Self::RevokeSession { username, .. }
            | Self::RemovePasskey { username, .. }
            | Self::RevokeGrant { username, .. } => {
                format!("/admin/accounts/{}", encode(username))
            }
            Self::AddApp { .. } | Self::RotateSecret { .. } | Self::RemoveApp { .. } => {
                "/admin/apps".into()
            }
            Self::AddToken { .. } | Self::RevokeToken { .. } => "/admin/tokens".into(),
        }
    }

    /// The page its form is on (where a refusal is explained).
    pub fn form_page(&self) -> String {
        match self {
            Self::Remove { username } => format!("/admin/accounts/{}", encode(username)),
            other => other.page(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_a_query_and_names_a_path() {
        let filter = AuditFilterForm {
            account: "bob".into(),
            event: "signed_in".into(),
            from: "2026-12-01T10:00".into(),
            ..AuditFilterForm::default()
        };
        assert_eq!(
            filter.query(),
            "account=bob&event=signed_in&from=2026-12-01T10%3A00"
        );
        assert_eq!(AuditFilterForm::default().query(), "");
        let action = AdminAction::Disable {
            username: "a/b?c".into(),
        };
        assert_eq!(action.page(), "/admin/accounts/a%2Fb%3Fc");
        let remove = AdminAction::Remove {
            username: "bob".into(),
        };
        assert_eq!(remove.page(), "/admin/accounts");
        assert_eq!(remove.form_page(), "/admin/accounts/bob");
    }
}
