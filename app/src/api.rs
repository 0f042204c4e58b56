//! The JSON shapes of HTTP API v1, shared by the server and the WASM client.

use serde::{Deserialize, Serialize};

/// Paths of API v1, so the router, the WASM client, the tests and the
/// benchmark cannot drift apart. `{id}` is filled in by [`paths::with_id`].
pub mod paths {
    pub const LOGINS: &str = "/api/v1/logins";
    pub const LOGIN: &str = "/api/v1/logins/{id}";
    pub const LOGIN_REDEEM: &str = "/api/v1/logins/{id}/redeem";
    pub const LOGIN_SCAN: &str = "/api/v1/logins/{id}/scan";
    pub const LOGIN_APPROVE: &str = "/api/v1/logins/{id}/approve";
    pub const LOGIN_APPROVE_OPTIONS: &str = "/api/v1/logins/{id}/approve/options";
    pub const LOGIN_DENY: &str = "/api/v1/logins/{id}/deny";
    pub const SESSION: &str = "/api/v1/session";
    pub const ME: &str = "/api/v1/me";
    pub const SESSIONS: &str = "/api/v1/sessions";
    pub const SESSION_BY_ID: &str = "/api/v1/sessions/{id}";
    pub const OPENAPI: &str = "/api/v1/openapi.json";

    /// The OpenID Connect provider (not part of API v1: these speak OAuth).
    pub const OIDC_DISCOVERY: &str = "/.well-known/openid-configuration";
    pub const AUTHORIZE: &str = "/oauth2/authorize";
    /// Where the login card goes once signed in for an application.
    pub const AUTHORIZE_RESUME: &str = "/oauth2/authorize/resume";
    /// The login card for an authorization request (`?request=…`).
    pub const AUTHORIZE_PAGE: &str = "/authorize";
    pub const TOKEN: &str = "/oauth2/token";
    pub const USERINFO: &str = "/oauth2/userinfo";
    pub const JWKS: &str = "/oauth2/jwks";
    pub const REVOKE: &str = "/oauth2/revoke";
    pub const END_SESSION: &str = "/oauth2/logout";
    pub const DEVICE_AUTHORIZATION: &str = "/oauth2/device_authorization";
    /// The phone's page for device sign-ins (RFC 8628 `verification_uri`).
    pub const DEVICE: &str = "/device";

    /// `template` with its `{id}` replaced by `id`.
    pub fn with_id(template: &str, id: impl std::fmt::Display) -> String {
        template.replace("{id}", &id.to_string())
    }
}

/// The longest `authorization=` / `request=` value: an OpenID Connect
/// authorization request travels sealed in it (base64url), instead of
/// being stored before a person acts on it. With every parameter at its
/// longest (a 512-character `redirect_uri`, `state` and `nonce`) it is
/// about 2,370 characters; usual ones are a few hundred.
pub const MAX_AUTHORIZATION_HANDLE: usize = 2400;

/// Whether `raw` could be a sealed authorization request: base64url, not
/// empty, at most [`MAX_AUTHORIZATION_HANDLE`] (it goes into URLs, a
/// `Location` header and the page's script, so nothing else is let in).
pub fn plausible_authorization(raw: &str) -> bool {
    (1..=MAX_AUTHORIZATION_HANDLE).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Where an attempt stands; see the state diagram in docs/design.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LoginState {
    Pending,
    Scanned,
    Approved,
    Redeemed,
    Expired,
    Denied,
    Cancelled,
}

impl LoginState {
    /// A terminal attempt never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Redeemed | Self::Expired | Self::Denied | Self::Cancelled
        )
    }
}

/// `201` answer to `POST /api/v1/logins`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct LoginCreated {
    pub id: String,
    /// What the QR code encodes: `{public_url}/q/{id}`.
    pub qr_url: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
    /// Seconds from now until `expires_at`, so clients need not trust their clock.
    pub expires_in: u64,
    pub version: u64,
}

/// `200` answer to `GET /api/v1/logins/{id}`, for the bound browser only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct LoginStatus {
    pub id: String,
    pub state: LoginState,
    pub version: u64,
    pub expires_at: String,
    pub expires_in: u64,
    /// Display name of the scanning account, once scanned, and only when
    /// the account chose one that does not give its username away; absent
    /// otherwise. The desktop learns the account itself when it redeems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner: Option<String>,
    /// The two digits the phone must pick, once scanned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_code: Option<u8>,
}

/// Every error answer: a stable machine code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ApiErrorBody {
    pub error: String,
    pub message: String,
}

/// An account as others may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct User {
    pub username: String,
    pub display_name: String,
}

/// `POST /api/v1/session` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    pub username: String,
    pub password: String,
}

/// `200` answer to `POST /api/v1/session`. `token` works as
/// `Authorization: Bearer <token>` for native apps and scripts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SignedIn {
    pub user: User,
    pub token: String,
}

/// One signed-in device, as its account sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    pub id: String,
    /// `password` or `qr`.
    pub method: String,
    pub browser: String,
    pub os: String,
    pub ip: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub last_seen_at: String,
    /// Whether this is the session making the request.
    pub current: bool,
}

/// `200` answer to `GET /api/v1/me`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Me {
    pub user: User,
    pub session: SessionInfo,
}

/// The desktop that asked to sign in, as the phone is shown it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Requester {
    pub browser: String,
    pub os: String,
    pub ip: String,
    /// Seconds since the desktop created the request.
    pub age_s: u64,
    /// Whether the desktop seems to be on the phone's network.
    pub same_network: bool,
    /// The application the sign-in is for (an OpenID Connect client, by
    /// its registered name); absent for qrlogin itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// `200` answer to `POST /api/v1/logins/{id}/scan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Scanned {
    pub requester: Requester,
    #[cfg_attr(feature = "ssr", schema(min_items = 3, max_items = 3))]
    pub match_choices: [u8; 3],
    pub state: LoginState,
    /// Whether approving needs a passkey assertion (`passkey` in the
    /// approve body), made with the options of `…/approve/options`.
    #[serde(default)]
    pub needs_passkey: bool,
}

/// `POST /api/v1/logins/{id}/approve` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    #[cfg_attr(feature = "ssr", schema(maximum = 255))]
    pub match_code: u8,
    /// The WebAuthn assertion (`PublicKeyCredential.toJSON()`) made with
    /// the options of `…/approve/options` for this `match_code`; needed
    /// when the scan said `needs_passkey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ssr", schema(value_type = Option<Object>))]
    pub passkey: Option<serde_json::Value>,
}

/// `POST /api/v1/logins/{id}/approve/options` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApproveOptionsRequest {
    #[cfg_attr(feature = "ssr", schema(maximum = 255))]
    pub match_code: u8,
}

/// `200` answer to approve, deny and cancel-like calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct StateChanged {
    pub state: LoginState,
}

/// `200` answer to `POST /api/v1/logins/{id}/redeem`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Redeemed {
    pub user: User,
}

/// One sign-in to the account, for the phone's "Recent sign-ins".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentSignIn {
    /// RFC 3339, UTC.
    pub at: String,
    pub browser: String,
    pub os: String,
    pub ip: String,
    /// The session it started, while that still works (so it can be revoked).
    pub session_id: Option<String>,
    /// Whether that is the session looking at the list.
    pub current: bool,
    /// Whether it happened since the account last looked.
    pub new: bool,
}
