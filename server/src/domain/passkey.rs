//! Passkeys' rules that need no cryptography: what a passkey may be called,
//! when an approval needs one, and the challenge an approval signs.
//!
//! "Sign what is shown": the challenge of an approval's WebAuthn assertion
//! is not random but derived from exactly what the phone displayed (the
//! attempt or device code, the number picked, who is asking). An assertion
//! made for one attempt, number or requester therefore verifies for no
//! other: the server recomputes the challenge from what is submitted.

use sha2::{Digest, Sha256};

/// How approving a sign-in on the phone is authorised (`--approve-with`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApproveWith {
    /// The phone's signed-in session is enough (the demo's default).
    #[default]
    Session,
    /// Every approval needs a passkey assertion with user verification.
    Passkey,
}

impl std::str::FromStr for ApproveWith {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "session" => Ok(Self::Session),
            "passkey" => Ok(Self::Passkey),
            other => Err(format!("{other:?}: expected session or passkey")),
        }
    }
}

/// The server's approval rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApprovalPolicy {
    pub approve_with: ApproveWith,
    /// RFC 10027's cross-device advice: a requester off the phone's network
    /// may be a relay, so a passkey is required then.
    pub require_passkey_off_network: bool,
}

impl ApprovalPolicy {
    /// Whether this approval needs a passkey: by the server's rule, the
    /// account's own choice, or because the requester is elsewhere.
    pub fn needs_passkey(&self, account_wants_passkey: bool, same_network: bool) -> bool {
        self.approve_with == ApproveWith::Passkey
            || account_wants_passkey
            || (self.require_passkey_off_network && !same_network)
    }
}

/// What the phone displayed when its owner approved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownApproval<'a> {
    /// The login attempt's id, or a device request's user code.
    pub subject: &'a str,
    /// The number picked (device approvals have none).
    pub number: Option<u8>,
    pub browser: &'a str,
    pub os: &'a str,
    pub ip: &'a str,
    /// The application asking, if not qrlogin itself.
    pub client: Option<&'a str>,
}

impl ShownApproval<'_> {
    /// The WebAuthn challenge for approving exactly this: SHA-256 over a
    /// domain-separated, length-prefixed encoding (no two different
    /// displays encode alike).
    pub fn challenge(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(b"qrlogin approve v1\0");
        let number = self.number.map(|n| n.to_string()).unwrap_or_default();
        let fields = [
            self.subject,
            &number,
            self.browser,
            self.os,
            self.ip,
            self.client.unwrap_or(""),
        ];
        for field in fields {
            hash.update((field.len() as u64).to_be_bytes());
            hash.update(field.as_bytes());
        }
        hash.finalize().into()
    }
}

/// A passkey's name as its owner gave it: 1 to 64 characters, trimmed,
/// no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyName(String);

impl PasskeyName {
    pub fn parse(name: &str) -> Result<Self, super::account::InvalidInput> {
        let name = name.trim();
        let count = name.chars().count();
        if count == 0 || count > 64 || name.chars().any(char::is_control) {
            return Err(super::account::InvalidInput(
                "a passkey's name must be 1 to 64 characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown() -> ShownApproval<'static> {
        ShownApproval {
            subject: "0190f7a0-0000-7000-8000-000000000001",
            number: Some(42),
            browser: "Chrome",
            os: "Linux",
            ip: "192.0.2.1",
            client: None,
        }
    }

    #[test]
    fn the_challenge_changes_with_everything_shown() {
        let base = shown().challenge();
        assert_eq!(base, shown().challenge(), "deterministic");
        let others = [
            ShownApproval {
                subject: "0190f7a0-0000-7000-8000-000000000002",
                ..shown()
            },
            ShownApproval {
                number: Some(17),
                ..shown()
            },
            ShownApproval {
                number: None,
                ..shown()
            },
            ShownApproval {
                browser: "Firefox",
                ..shown()
            },
            ShownApproval {
                os: "Windows",
                ..shown()
            },
            ShownApproval {
                ip: "198.51.100.1",
                ..shown()
            },
            ShownApproval {
                client: Some("Grafana"),
                ..shown()
            },
            // Moving text between fields is a different display too.
            ShownApproval {
                browser: "ChromeL",
                os: "inux",
                ..shown()
            },
        ];
        for other in others {
            assert_ne!(base, other.challenge(), "{other:?}");
        }
    }

    #[test]
    fn a_passkey_is_needed_by_rule_by_choice_or_off_network() {
        let demo = ApprovalPolicy::default();
        assert!(!demo.needs_passkey(false, false));
        assert!(demo.needs_passkey(true, true));
        let strict = ApprovalPolicy {
            approve_with: ApproveWith::Passkey,
            ..demo
        };
        assert!(strict.needs_passkey(false, true));
        let relay = ApprovalPolicy {
            require_passkey_off_network: true,
            ..demo
        };
        assert!(!relay.needs_passkey(false, true));
        assert!(relay.needs_passkey(false, false));
    }

    #[test]
    fn passkey_names_are_short_printable_text() {
        assert_eq!(
            PasskeyName::parse("  Pixel 7 ").unwrap().as_str(),
            "Pixel 7"
        );
        assert_eq!(PasskeyName::parse("我的手机").unwrap().as_str(), "我的手机");
        assert!(PasskeyName::parse("  ").is_err());
        assert!(PasskeyName::parse(&"x".repeat(65)).is_err());
        assert!(PasskeyName::parse("a\nb").is_err());
    }
}
