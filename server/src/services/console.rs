//! The admin console's own small state, all of it tied to the session
//! token of the browser looking (which only that browser holds; the store
//! keeps only its hash):
//!
//! - its forms' CSRF token, derived from the session token, so it needs
//!   no storage, is the same on every instance, and dies with the session;
//! - a secret just made (an invite link, an app's secret, an API token),
//!   kept for the next page view only: the form's answer is a redirect,
//!   and a secret never goes into a URL. It is kept a few minutes in the
//!   shared record store, encrypted with a key derived from the session
//!   token (a copy of the database reveals nothing), under a key derived
//!   from it too, and removed by the view that shows it.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::{rngs::OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Services;
use crate::{
    domain::{secret::Secret, time::now_millis},
    storage::StoreError,
};

/// The record kind: `{key derived from the session token}` → a sealed secret.
const KIND: &str = "console_shown";
/// How long a secret waits for the page that shows it.
const KEPT_FOR_MS: u64 = 5 * 60 * 1000;
const NONCE_LEN: usize = 16;

/// SHA-256 of `purpose`, the session token and `extra`: one value per
/// purpose, which nobody without the token can compute.
fn derive(token: &Secret, purpose: &str, extra: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"qrlogin console\0");
    hash.update(purpose.as_bytes());
    hash.update(b"\0");
    hash.update(token.encode().as_bytes());
    hash.update(extra);
    hash.finalize().into()
}

/// The console's CSRF token for the session holding `token`.
pub fn csrf_token(token: &Secret) -> String {
    URL_SAFE_NO_PAD.encode(derive(token, "csrf", &[]))
}

/// Whether a form's `presented` token is this session's (constant time).
pub fn csrf_matches(token: &Secret, presented: &str) -> bool {
    let expected = csrf_token(token);
    presented.len() == expected.len() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// `data` XORed with a keystream of SHA-256 blocks over the session
/// token and `nonce` (its own inverse).
fn keystream_xor(token: &Secret, nonce: &[u8], data: &[u8]) -> Vec<u8> {
    data.chunks(32)
        .enumerate()
        .flat_map(|(block, chunk)| {
            let mut extra = nonce.to_vec();
            extra.extend_from_slice(&(block as u64).to_be_bytes());
            let pad = derive(token, "shown stream", &extra);
            chunk
                .iter()
                .zip(pad)
                .map(|(byte, pad)| byte ^ pad)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn record_key(token: &Secret) -> String {
    URL_SAFE_NO_PAD.encode(derive(token, "shown key", &[]))
}

/// As the record holds it (the record store keeps JSON documents).
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    sealed: String,
}

fn stored(sealed: &str) -> String {
    serde_json::json!({ "sealed": sealed }).to_string()
}

fn seal(token: &Secret, plain: &str) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let sealed = keystream_xor(token, &nonce, plain.as_bytes());
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(nonce),
        URL_SAFE_NO_PAD.encode(sealed)
    )
}

fn open(token: &Secret, sealed: &str) -> Option<String> {
    let (nonce, data) = sealed.split_once('.')?;
    let nonce = URL_SAFE_NO_PAD.decode(nonce).ok()?;
    let data = URL_SAFE_NO_PAD.decode(data).ok()?;
    String::from_utf8(keystream_xor(token, &nonce, &data)).ok()
}

impl Services {
    /// Keeps `value` (a secret to show) for the next console page the
    /// session holding `token` views; replaces one not yet shown.
    pub async fn keep_for_next_view(&self, token: &Secret, value: &str) -> Result<(), StoreError> {
        let store = self.passkeys.provider_store();
        let key = record_key(token);
        let now = now_millis();
        store.remove_key(KIND, &key).await?;
        store
            .insert(
                KIND,
                &key,
                &stored(&seal(token, value)),
                now + KEPT_FOR_MS,
                now,
            )
            .await
    }

    /// The value kept for this view, removed as it is taken: of two views
    /// (or instances) racing, one shows it.
    pub async fn take_kept(&self, token: &Secret) -> Result<Option<String>, StoreError> {
        let store = self.passkeys.provider_store();
        let key = record_key(token);
        let Some(record) = store.get(KIND, &key, now_millis()).await? else {
            return Ok(None);
        };
        if !store.remove_key(KIND, &key).await? {
            return Ok(None);
        }
        let sealed = serde_json::from_str::<Stored>(&record.value).ok();
        Ok(sealed.and_then(|stored| open(token, &stored.sealed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_per_session_and_secrets_sealed() {
        let token = Secret::new_random();
        let other = Secret::new_random();
        let csrf = csrf_token(&token);
        assert!(csrf_matches(&token, &csrf));
        assert!(!csrf_matches(&other, &csrf));
        assert!(!csrf_matches(&token, ""));
        assert!(!csrf_matches(&token, &csrf[1..]));

        let plain =
            "https://login.example.com/invite/abcdefghijklmnopqrstuvwxyz0123456789_-ABCDEFG";
        let sealed = seal(&token, plain);
        assert!(!sealed.contains("invite"));
        assert_ne!(seal(&token, plain), sealed, "a fresh nonce each time");
        assert_eq!(open(&token, &sealed).as_deref(), Some(plain));
        assert_ne!(open(&other, &sealed).as_deref(), Some(plain));
        assert_eq!(open(&token, "garbage"), None);
    }
}
