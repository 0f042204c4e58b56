//! Sealing: what the provider hands the browser to carry instead of storing
//! it (a waiting authorization request), encrypted and authenticated with a
//! key only the servers know, so that nothing is written for a request until
//! a person acts on it, and nothing the browser brings back can be forged.
//!
//! AES-256-GCM with a fresh key for every message: HMAC-SHA-256 of the
//! server's key over 16 random bytes sent along (the nonce is then always
//! zero, each key sealing one message), so no number of sealed messages
//! ever makes a nonce repeat. The server's key (256 random bits) is one
//! provider record, made by the first seal, shared by every instance.

use std::sync::Arc;

use aes_gcm::{
    aead::{Aead, KeyInit, Nonce, Payload},
    Aes256Gcm,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use rand::{rngs::OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::OnceCell;

use super::keys::FOREVER;
use crate::{
    domain::time::{now_millis, UnixMillis},
    storage::{ProviderStore, StoreError},
};

const KIND: &str = "sealing_key";
const KEY: &str = "v1";
/// Random bytes sent with each message, from which its key is derived.
const SALT_LEN: usize = 16;
const TAG_LEN: usize = 16;

#[derive(Serialize, Deserialize)]
struct StoredKey {
    /// 32 bytes, base64url.
    key: String,
    created_at: UnixMillis,
}

#[derive(Clone)]
pub struct Sealer {
    store: Arc<dyn ProviderStore>,
    key: Arc<OnceCell<[u8; 32]>>,
}

impl Sealer {
    pub fn new(store: Arc<dyn ProviderStore>) -> Self {
        Self {
            store,
            key: Arc::default(),
        }
    }

    /// The server's key; made (once, by whichever instance is first) when
    /// `create` and there is none yet.
    async fn key(&self, create: bool) -> Result<Option<&[u8; 32]>, StoreError> {
        if let Some(key) = self.key.get() {
            return Ok(Some(key));
        }
        let read = self.read_key().await?;
        let key = match (read, create) {
            (Some(key), _) => key,
            (None, false) => return Ok(None),
            (None, true) => {
                let mut key = [0u8; 32];
                OsRng.fill_bytes(&mut key);
                let now = now_millis();
                let stored = StoredKey {
                    key: URL_SAFE_NO_PAD.encode(key),
                    created_at: now,
                };
                let value = serde_json::to_string(&stored)
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                match self.store.insert(KIND, KEY, &value, FOREVER, now).await {
                    Ok(()) => {
                        tracing::info!("new sealing key");
                        key
                    }
                    // Another instance made it first: use theirs.
                    Err(StoreError::Duplicate) => self.read_key().await?.ok_or_else(|| {
                        StoreError::Unavailable("the sealing key cannot be read".into())
                    })?,
                    Err(err) => return Err(err),
                }
            }
        };
        Ok(Some(self.key.get_or_init(|| async { key }).await))
    }

    async fn read_key(&self) -> Result<Option<[u8; 32]>, StoreError> {
        let Some(record) = self.store.get(KIND, KEY, now_millis()).await? else {
            return Ok(None);
        };
        let key = serde_json::from_str::<StoredKey>(&record.value)
            .ok()
            .and_then(|stored| URL_SAFE_NO_PAD.decode(stored.key).ok())
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| StoreError::Unavailable("the sealing key is damaged".into()))?;
        Ok(Some(key))
    }

    fn cipher(key: &[u8; 32], salt: &[u8], purpose: &[u8]) -> Result<Aes256Gcm, StoreError> {
        let broken = |_| StoreError::Unavailable("the sealing key cannot be used".into());
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(broken)?;
        mac.update(purpose);
        mac.update(salt);
        let derived = mac.finalize().into_bytes();
        Aes256Gcm::new_from_slice(&derived)
            .map_err(|_| StoreError::Unavailable("the sealing key cannot be used".into()))
    }

    /// `message` sealed for `purpose` (which must be given again to open
    /// it), as base64url: `4/3 × (message + 32)` characters.
    pub async fn seal(&self, purpose: &[u8], message: &[u8]) -> Result<String, StoreError> {
        let Some(key) = self.key(true).await? else {
            return Err(StoreError::Unavailable("no sealing key".into()));
        };
        let mut salt = [0u8; SALT_LEN];
        OsRng.fill_bytes(&mut salt);
        let sealed = Self::cipher(key, &salt, purpose)?
            .encrypt(
                &Nonce::<Aes256Gcm>::default(),
                Payload {
                    msg: message,
                    aad: purpose,
                },
            )
            .map_err(|_| StoreError::Unavailable("cannot seal".into()))?;
        let mut out = Vec::with_capacity(SALT_LEN + sealed.len());
        out.extend_from_slice(&salt);
        out.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// What [`seal`](Self::seal) sealed for `purpose`; `None` for anything
    /// else (altered, made for another purpose, by another server, or not
    /// base64url). Stores nothing.
    pub async fn open(&self, purpose: &[u8], sealed: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(sealed) else {
            return Ok(None);
        };
        if bytes.len() < SALT_LEN + TAG_LEN {
            return Ok(None);
        }
        let Some(key) = self.key(false).await? else {
            return Ok(None);
        };
        let (salt, body) = bytes.split_at(SALT_LEN);
        Ok(Self::cipher(key, salt, purpose)?
            .decrypt(
                &Nonce::<Aes256Gcm>::default(),
                Payload {
                    msg: body,
                    aad: purpose,
                },
            )
            .ok())
    }
}
