//! 256-bit random secrets (bind secrets, session tokens) and their hashes.
//! Only hashes are stored; comparisons are constant-time.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::{rngs::OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub struct Secret([u8; 32]);

impl Secret {
    /// 256 bits from the OS CSPRNG.
    pub fn new_random() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The wire form: 43 characters of unpadded base64url.
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

    pub fn hash(&self) -> SecretHash {
        SecretHash(Sha256::digest(self.0).into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    /// Whether `secret` hashes to this, in constant time. Without a secret it
    /// still hashes and compares, so that a missing secret costs the same as
    /// a wrong one.
    pub fn matches(&self, secret: Option<&Secret>) -> bool {
        let candidate = match secret {
            Some(secret) => secret.hash(),
            None => Secret([0; 32]).hash(),
        };
        bool::from(self.0.ct_eq(&candidate.0)) && secret.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_only_its_own_hash_matches() {
        let secret = Secret::new_random();
        let decoded = Secret::decode(&secret.encode()).unwrap();
        let hash = secret.hash();
        assert!(hash.matches(Some(&decoded)));
        assert!(!hash.matches(Some(&Secret::new_random())));
        assert!(!hash.matches(None));
        assert!(Secret::decode("short").is_none());
        assert!(Secret::decode(&"!".repeat(43)).is_none());
    }
}
