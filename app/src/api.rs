//! The JSON shapes of HTTP API v1, shared by the server and the WASM client.

use serde::{Deserialize, Serialize};

/// Paths of the API, so the client and the router cannot drift apart.
pub const LOGINS_PATH: &str = "/api/v1/logins";

/// Where an attempt stands; see the state diagram in SPEC.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
pub struct LoginStatus {
    pub id: String,
    pub state: LoginState,
    pub version: u64,
    pub expires_at: String,
    pub expires_in: u64,
    /// Display name of the scanning account, once scanned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner: Option<String>,
    /// The two digits the phone must pick, once scanned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_code: Option<String>,
}

/// Every error answer: a stable machine code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub error: String,
    pub message: String,
}
