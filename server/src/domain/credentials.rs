//! The rules for changing how an account signs in and approves, which need
//! no cryptography: which changes need a fresh proof that the owner is
//! present, what such a proof is, and which changes would leave the
//! account with no way in.
//!
//! A stolen phone session (its bearer token) must not be enough to weaken
//! an account or to add a way in of the thief's own: adding or removing a
//! passkey, turning the password on or off, and turning "ask for my
//! passkey" off each need a proof made with a credential the account
//! already has — a passkey assertion with user verification when it has a
//! passkey, else its password — within [`FRESH_PROOF_MS`], for this very
//! session. A passkey's name aside, nothing about the account's
//! credentials changes on the session alone.

use serde::{Deserialize, Serialize};

use super::time::UnixMillis;

/// How long a proof lets credential changes through.
pub const FRESH_PROOF_MS: UnixMillis = 5 * 60 * 1000;

/// The credential a proof was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProofKind {
    /// A passkey assertion with user verification.
    Passkey,
    Password,
}

/// A proof that the account's owner was present, for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub account_id: i64,
    pub kind: ProofKind,
    pub at: UnixMillis,
}

/// What the account has to sign in with, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialState {
    pub passkeys: usize,
    pub password_on: bool,
    pub approve_with_passkey: bool,
}

/// The proof a credential change asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofNeeded {
    /// The change weakens nothing (say, "ask for my passkey" turned on).
    None,
    Passkey,
    Password,
    /// The account has nothing but the session: it cannot change its
    /// credentials at all (an administrator resets it).
    Impossible,
}

impl CredentialState {
    /// The proof this account gives: its passkey when it has one.
    pub fn proof_needed(&self) -> ProofNeeded {
        if self.passkeys > 0 {
            ProofNeeded::Passkey
        } else if self.password_on {
            ProofNeeded::Password
        } else {
            ProofNeeded::Impossible
        }
    }
}

/// A change to how the account signs in or approves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialChange {
    AddPasskey,
    RemovePasskey,
    /// The choices form: both values as wanted after the change.
    Choices {
        password_on: bool,
        approve_with_passkey: bool,
    },
}

/// Why a change is refused outright, whatever the proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChangeRefused {
    /// It would leave the account with neither a passkey nor a password.
    #[error("the account would have no way to sign in")]
    LastWayIn,
    /// "Ask for my passkey" needs a passkey to ask for.
    #[error("asking for a passkey needs a passkey")]
    NoPasskey,
}

impl CredentialChange {
    /// The proof `self` needs on an account in `state`.
    pub fn proof_needed(&self, state: &CredentialState) -> ProofNeeded {
        let weakens = match *self {
            Self::AddPasskey | Self::RemovePasskey => true,
            Self::Choices {
                password_on,
                approve_with_passkey,
            } => {
                password_on != state.password_on
                    || (state.approve_with_passkey && !approve_with_passkey)
            }
        };
        if weakens {
            state.proof_needed()
        } else {
            ProofNeeded::None
        }
    }

    /// The account's state after `self`, or why it may not happen.
    pub fn apply(&self, state: &CredentialState) -> Result<CredentialState, ChangeRefused> {
        let next = match *self {
            Self::AddPasskey => CredentialState {
                passkeys: state.passkeys + 1,
                ..*state
            },
            Self::RemovePasskey => {
                let passkeys = state.passkeys.saturating_sub(1);
                CredentialState {
                    passkeys,
                    // Without a passkey, "ask for my passkey" could only
                    // lock the account's approvals.
                    approve_with_passkey: state.approve_with_passkey && passkeys > 0,
                    ..*state
                }
            }
            Self::Choices {
                password_on,
                approve_with_passkey,
            } => CredentialState {
                password_on,
                approve_with_passkey,
                ..*state
            },
        };
        if next.passkeys == 0 && !next.password_on {
            return Err(ChangeRefused::LastWayIn);
        }
        if next.approve_with_passkey && !state.approve_with_passkey && next.passkeys == 0 {
            return Err(ChangeRefused::NoPasskey);
        }
        Ok(next)
    }
}

impl Proof {
    /// Whether this proof lets a change needing `needed` through for
    /// `account_id` at `now`.
    pub fn allows(&self, needed: ProofNeeded, account_id: i64, now: UnixMillis) -> bool {
        let kind_fits = match needed {
            ProofNeeded::None => return true,
            ProofNeeded::Impossible => return false,
            ProofNeeded::Passkey => self.kind == ProofKind::Passkey,
            // A passkey proves at least as much as the password.
            ProofNeeded::Password => true,
        };
        kind_fits
            && self.account_id == account_id
            && self.at <= now
            && now - self.at <= FRESH_PROOF_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD_ONLY: CredentialState = CredentialState {
        passkeys: 0,
        password_on: true,
        approve_with_passkey: false,
    };
    const ONE_PASSKEY_NO_PASSWORD: CredentialState = CredentialState {
        passkeys: 1,
        password_on: false,
        approve_with_passkey: true,
    };

    #[test]
    fn every_weakening_change_needs_the_strongest_credential_the_account_has() {
        let two = CredentialState {
            passkeys: 2,
            password_on: true,
            approve_with_passkey: true,
        };
        for change in [
            CredentialChange::AddPasskey,
            CredentialChange::RemovePasskey,
            CredentialChange::Choices {
                password_on: false,
                approve_with_passkey: true,
            },
            CredentialChange::Choices {
                password_on: true,
                approve_with_passkey: false,
            },
        ] {
            assert_eq!(
                change.proof_needed(&two),
                ProofNeeded::Passkey,
                "{change:?}"
            );
        }
        assert_eq!(
            CredentialChange::AddPasskey.proof_needed(&PASSWORD_ONLY),
            ProofNeeded::Password
        );
        // Turning the password back on is a change of how it signs in too.
        let choices = CredentialChange::Choices {
            password_on: true,
            approve_with_passkey: true,
        };
        assert_eq!(
            choices.proof_needed(&ONE_PASSKEY_NO_PASSWORD),
            ProofNeeded::Passkey
        );
        // Nothing changed, or only made stricter: no proof.
        let same = CredentialChange::Choices {
            password_on: true,
            approve_with_passkey: true,
        };
        assert_eq!(same.proof_needed(&two), ProofNeeded::None);
        let stricter = CredentialChange::Choices {
            password_on: true,
            approve_with_passkey: true,
        };
        let lax = CredentialState {
            approve_with_passkey: false,
            ..two
        };
        assert_eq!(stricter.proof_needed(&lax), ProofNeeded::None);
        // Only the session: no change is possible.
        let nothing = CredentialState {
            passkeys: 0,
            password_on: false,
            approve_with_passkey: false,
        };
        assert_eq!(
            CredentialChange::AddPasskey.proof_needed(&nothing),
            ProofNeeded::Impossible
        );
    }

    #[test]
    fn no_change_leaves_the_account_without_a_way_in() {
        assert_eq!(
            CredentialChange::RemovePasskey.apply(&ONE_PASSKEY_NO_PASSWORD),
            Err(ChangeRefused::LastWayIn)
        );
        let off = CredentialChange::Choices {
            password_on: false,
            approve_with_passkey: false,
        };
        assert_eq!(off.apply(&PASSWORD_ONLY), Err(ChangeRefused::LastWayIn));
        let ask = CredentialChange::Choices {
            password_on: true,
            approve_with_passkey: true,
        };
        assert_eq!(ask.apply(&PASSWORD_ONLY), Err(ChangeRefused::NoPasskey));
        // Removing the last passkey of a password account turns "ask" off.
        let last = CredentialState {
            passkeys: 1,
            password_on: true,
            approve_with_passkey: true,
        };
        assert_eq!(
            CredentialChange::RemovePasskey.apply(&last),
            Ok(CredentialState {
                passkeys: 0,
                password_on: true,
                approve_with_passkey: false,
            })
        );
    }

    #[test]
    fn a_proof_counts_for_its_account_its_kind_and_five_minutes() {
        let proof = Proof {
            account_id: 7,
            kind: ProofKind::Password,
            at: 1_000_000,
        };
        assert!(proof.allows(ProofNeeded::Password, 7, 1_000_000 + FRESH_PROOF_MS));
        assert!(!proof.allows(ProofNeeded::Password, 7, 1_000_001 + FRESH_PROOF_MS));
        assert!(!proof.allows(ProofNeeded::Password, 8, 1_000_000));
        assert!(!proof.allows(ProofNeeded::Passkey, 7, 1_000_000));
        assert!(!proof.allows(ProofNeeded::Impossible, 7, 1_000_000));
        assert!(
            !proof.allows(ProofNeeded::Password, 7, 999_999),
            "not from the future"
        );
        let passkey = Proof {
            kind: ProofKind::Passkey,
            ..proof
        };
        assert!(passkey.allows(ProofNeeded::Passkey, 7, 1_000_000));
        assert!(passkey.allows(ProofNeeded::Password, 7, 1_000_000));
    }
}
