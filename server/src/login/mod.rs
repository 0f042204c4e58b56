//! Login attempts: what the desktop creates, the phone approves and the
//! desktop redeems.

pub mod routes;
pub mod store;

use std::{fmt, str::FromStr, time::SystemTime};

use app::api::LoginState;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::{rngs::OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// A login attempt id: a version-4 UUID from the OS CSPRNG, made by this
/// server only. Parsing accepts only the canonical hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoginId(Uuid);

impl LoginId {
    pub fn new_random() -> Self {
        // `new_v4` draws 122 random bits from `getrandom`, i.e. the OS CSPRNG.
        Self(Uuid::new_v4())
    }
}

impl FromStr for LoginId {
    type Err = InvalidLoginId;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        // `Uuid::try_parse` also takes braced, URN and un-hyphenated forms;
        // one spelling per id keeps logs, caches and rate limits honest.
        if raw.len() != 36 || raw.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(InvalidLoginId);
        }
        let uuid = Uuid::try_parse(raw).map_err(|_| InvalidLoginId)?;
        if uuid.get_version_num() != 4 {
            return Err(InvalidLoginId);
        }
        Ok(Self(uuid))
    }
}

impl fmt::Display for LoginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidLoginId;

/// The 256-bit secret that binds an attempt to the browser that created it.
/// Only its SHA-256 is stored.
pub struct BindSecret([u8; 32]);

impl BindSecret {
    pub fn new_random() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The cookie form: 43 characters of unpadded base64url.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    pub fn decode(raw: &str) -> Option<Self> {
        if raw.len() != 43 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    pub fn hash(&self) -> BindHash {
        BindHash(Sha256::digest(self.0).into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindHash(pub [u8; 32]);

impl BindHash {
    /// Compares in constant time, so timing tells nothing about the secret.
    pub fn matches(&self, secret: Option<&BindSecret>) -> bool {
        // Without a secret we still hash and compare something, so that a
        // request without a cookie costs the same as one with a wrong cookie.
        let candidate = match secret {
            Some(secret) => secret.hash(),
            None => BindSecret([0; 32]).hash(),
        };
        bool::from(self.0.ct_eq(&candidate.0)) && secret.is_some()
    }
}

/// Milliseconds since the Unix epoch.
pub type UnixMillis = u64;

pub fn now_millis() -> UnixMillis {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One login attempt as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: LoginId,
    pub bind_hash: BindHash,
    pub state: LoginState,
    /// Bumped on every change of state.
    pub version: u64,
    pub created_at: UnixMillis,
    /// When the current state runs out (for a terminal state: when it ended).
    pub expires_at: UnixMillis,
}

impl Attempt {
    /// Moves a waiting attempt whose time ran out to `expired`; returns
    /// whether it changed.
    pub fn expire_if_due(&mut self, now: UnixMillis) -> bool {
        if !self.state.is_terminal() && now >= self.expires_at {
            self.state = LoginState::Expired;
            self.version += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_ids_are_strict_v4_uuids() {
        let id = LoginId::new_random();
        assert_eq!(id.to_string().parse::<LoginId>(), Ok(id));
        for bad in [
            "",
            "x",
            "0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a5",
            "0B8F6A52-2F6E-4B8E-9A4E-6F1D2C3B4A59",
            "0b8f6a522f6e4b8e9a4e6f1d2c3b4a59",
            "{0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a59}",
            "0b8f6a52-2f6e-1b8e-9a4e-6f1d2c3b4a59",
            "0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a5z",
        ] {
            assert_eq!(bad.parse::<LoginId>(), Err(InvalidLoginId), "{bad}");
        }
    }

    #[test]
    fn bind_secret_round_trips_and_only_its_own_hash_matches() {
        let secret = BindSecret::new_random();
        let decoded = BindSecret::decode(&secret.encode()).unwrap();
        let hash = secret.hash();
        assert!(hash.matches(Some(&decoded)));
        assert!(!hash.matches(Some(&BindSecret::new_random())));
        assert!(!hash.matches(None));
        assert!(BindSecret::decode("short").is_none());
        assert!(BindSecret::decode(&"!".repeat(43)).is_none());
    }
}
