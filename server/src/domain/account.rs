//! Accounts and their sessions: who may approve a sign-in. Names and
//! passwords are checked at the edge by their newtypes; passwords are
//! hashed with argon2id (callers run that off the async threads).

use std::fmt;

use super::time::UnixMillis;

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};

/// A login name: 3–32 of `a-z 0-9 . _ -`, starting with a letter or digit.
/// Upper-case input is folded, so `Alice` and `alice` are one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let name = raw.trim().to_ascii_lowercase();
        let ok = (3..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && name.as_bytes()[0].is_ascii_alphanumeric();
        if ok {
            Ok(Self(name))
        } else {
            Err(InvalidInput(
                "A username is 3 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit.",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What other people see: 1–64 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let name = raw.trim();
        let chars = name.chars().count();
        if (1..=64).contains(&chars) && !name.chars().any(char::is_control) {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidInput(
                "A display name is 1 to 64 characters, without control characters.",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed: 8–128 characters. Never logged, never stored.
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let chars = raw.chars().count();
        if (8..=128).contains(&chars) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidInput("A password is 8 to 128 characters."))
        }
    }

    /// An argon2id PHC string; ≈20 ms of CPU, so not on an async thread.
    pub fn hash(&self) -> Result<String, PasswordError> {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(self.0.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|_| PasswordError)
    }

    /// Checks against a stored hash; as slow as [`Self::hash`].
    pub fn verify(&self, stored: &str) -> Result<bool, PasswordError> {
        let parsed = PasswordHash::new(stored).map_err(|_| PasswordError)?;
        Ok(Argon2::default()
            .verify_password(self.0.as_bytes(), &parsed)
            .is_ok())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub &'static str);

#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("password hashing failed")]
pub struct PasswordError;

/// A stored account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The store's key; never reused, on any back-end, once removed.
    pub id: i64,
    /// The stable, opaque identifier relying parties see (OpenID Connect's
    /// `sub`): a random UUID, or the id as text for accounts made before
    /// subjects existed (so that their `sub` did not change). Never reused.
    pub subject: String,
    pub username: String,
    pub display_name: String,
    pub created_at: i64,
    /// May administer the others (`qrlogin user admin NAME on`); what an
    /// administrator may do is for the services that ask.
    pub admin: bool,
    /// Kept (id, subject, passkeys) but shut out: no session of it works,
    /// it cannot sign in, approve, or have tokens issued, until enabled.
    pub disabled: bool,
}

impl Account {
    /// A new account's subject: random, so it says nothing about the
    /// account and cannot collide with an old, numeric one.
    pub fn new_subject() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    pub fn to_api(&self) -> app::api::User {
        app::api::User {
            username: self.username.clone(),
            display_name: self.display_name.clone(),
        }
    }
}

/// A session unused for this long stops working.
pub const SESSION_IDLE_LIMIT_MS: u64 = 30 * 24 * 3600 * 1000;

/// How a session was signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMethod {
    /// Username and password (phones).
    Password,
    /// By scanning a QR code with a signed-in phone (desktops).
    Qr,
    /// With a passkey (phones).
    Passkey,
}

impl SignInMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Qr => "qr",
            Self::Passkey => "passkey",
        }
    }
}

/// What a new session is made of; the store gives it its id and times.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub account_id: i64,
    pub method: SignInMethod,
    pub user_agent: String,
    pub ip: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub account_id: i64,
    pub method: String,
    pub user_agent: String,
    pub ip: String,
    pub created_at: UnixMillis,
    pub last_seen_at: UnixMillis,
}

impl Session {
    /// A new session for `new`, as of `now`. Its id is time-ordered (74
    /// random bits after the time), so new rows go to the end of an index
    /// instead of a random page of it.
    pub fn start(new: &NewSession, now: UnixMillis) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            account_id: new.account_id,
            method: new.method.as_str().to_owned(),
            user_agent: new.user_agent.clone(),
            ip: new.ip.clone(),
            created_at: now,
            last_seen_at: now,
        }
    }

    /// Whether it still works at `now` (not idle too long).
    pub fn is_live(&self, now: UnixMillis) -> bool {
        self.last_seen_at > now.saturating_sub(SESSION_IDLE_LIMIT_MS)
    }
}

/// One sign-in from the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInRecord {
    pub at: UnixMillis,
    /// The session it started, while that session still works.
    pub active_session: Option<String>,
    pub ip: String,
    pub user_agent: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_folded_and_checked() {
        assert_eq!(Username::parse(" Alice.B ").unwrap().as_str(), "alice.b");
        for bad in ["ab", "-alice", "al ice", "ålice", &"a".repeat(33), ""] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_names_and_passwords_have_bounds() {
        assert_eq!(DisplayName::parse(" Ada L. ").unwrap().as_str(), "Ada L.");
        assert!(DisplayName::parse("").is_err());
        assert!(DisplayName::parse("a\u{7}b").is_err());
        assert!(DisplayName::parse(&"é".repeat(65)).is_err());
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert!(Password::parse("long enough").is_ok());
    }

    #[test]
    fn argon2id_hashes_verify_only_the_right_password() {
        let hash = Password::parse("correct horse").unwrap().hash().unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        let right = Password::parse("correct horse").unwrap();
        assert!(right.verify(&hash).unwrap());
        let wrong = Password::parse("wrong horse").unwrap();
        assert!(!wrong.verify(&hash).unwrap());
    }
}
