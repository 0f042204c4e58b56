//! The provider's signing keys: ES256 (P-256), made at first start and
//! kept in the database with the other provider records, so that every
//! instance signs with the same key and publishes the same set.
//! `qrlogin keys rotate` adds a new key; the old one stays published until
//! the last ID token it signed has expired.

use std::sync::Arc;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::{elliptic_curve::sec1::ToEncodedPoint, pkcs8::EncodePrivateKey, SecretKey};
use rand::rngs::OsRng;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::{
    domain::{
        oidc::{lifetimes, random_id},
        time::{now_millis, UnixMillis},
    },
    storage::{ProviderStore, StoreError},
};

const KIND: &str = "signing_key";
/// Keys are read again this often, so that a key another instance (or
/// `qrlogin keys rotate`) added is used and published everywhere.
const RELOAD_EVERY_MS: u64 = 30_000;
/// Records that live until removed.
pub(super) const FOREVER: UnixMillis = i64::MAX as u64;

/// One key as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    /// PKCS#8 DER, base64url.
    private_pkcs8: String,
    /// The public point, base64url (as the JWK has them).
    x: String,
    y: String,
    created_at: UnixMillis,
    /// Set by a rotation: signs nothing more, published until it expires.
    retired_at: Option<UnixMillis>,
}

impl StoredKey {
    fn generate(now: UnixMillis) -> Result<Self, KeyError> {
        let secret = SecretKey::random(&mut OsRng);
        let der = secret
            .to_pkcs8_der()
            .map_err(|e| KeyError::Crypto(e.to_string()))?;
        let point = secret.public_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(KeyError::Crypto("no affine point".into()));
        };
        Ok(Self {
            kid: random_id(),
            private_pkcs8: URL_SAFE_NO_PAD.encode(der.as_bytes()),
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
            created_at: now,
            retired_at: None,
        })
    }

    fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": self.x, "y": self.y,
            "kid": self.kid, "use": "sig", "alg": "ES256",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing key: {0}")]
    Crypto(String),
}

/// A loaded key: what signs, and what verifies.
struct LoadedKey {
    stored: StoredKey,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

struct KeySet {
    keys: Vec<LoadedKey>,
    loaded_at: UnixMillis,
}

/// The signing keys, cached, read again every [`RELOAD_EVERY_MS`].
#[derive(Clone)]
pub struct SigningKeys {
    store: Arc<dyn ProviderStore>,
    cached: Arc<RwLock<Option<Arc<KeySet>>>>,
}

impl SigningKeys {
    pub fn new(store: Arc<dyn ProviderStore>) -> Self {
        Self {
            store,
            cached: Arc::default(),
        }
    }

    /// Adds a key when there is none yet (the first start).
    pub async fn ensure(&self) -> Result<(), KeyError> {
        let now = now_millis();
        let live = self.store.list(KIND, "", now).await?;
        if live
            .iter()
            .all(|(_, r)| stored(&r.value).is_some_and(|k| k.retired_at.is_some()))
        {
            self.add(now).await?;
        }
        *self.cached.write().await = None;
        Ok(())
    }

    /// `qrlogin keys rotate`: a new key signs from now on; the others are
    /// retired and stay published until their last tokens expire.
    /// Returns the new key's id.
    pub async fn rotate(&self) -> Result<String, KeyError> {
        let now = now_millis();
        for (kid, record) in self.store.list(KIND, "", now).await? {
            let Some(mut key) = stored(&record.value) else {
                continue;
            };
            if key.retired_at.is_none() {
                key.retired_at = Some(now);
                let value = to_json(&key)?;
                let until = now + lifetimes::RETIRED_KEY_MS;
                self.store
                    .replace(KIND, &kid, record.version, &value, until, now)
                    .await?;
            }
        }
        let kid = self.add(now).await?;
        *self.cached.write().await = None;
        Ok(kid)
    }

    async fn add(&self, now: UnixMillis) -> Result<String, KeyError> {
        let key = StoredKey::generate(now)?;
        self.store
            .insert(KIND, &key.kid, &to_json(&key)?, FOREVER, now)
            .await?;
        tracing::info!(kid = %key.kid, "new signing key");
        Ok(key.kid)
    }

    async fn current(&self) -> Result<Arc<KeySet>, KeyError> {
        let now = now_millis();
        if let Some(set) = self.cached.read().await.as_ref() {
            if now < set.loaded_at + RELOAD_EVERY_MS {
                return Ok(set.clone());
            }
        }
        let mut keys = Vec::new();
        for (_, record) in self.store.list(KIND, "", now).await? {
            let Some(stored) = stored(&record.value) else {
                continue;
            };
            let Ok(der) = URL_SAFE_NO_PAD.decode(&stored.private_pkcs8) else {
                continue;
            };
            let decoding = DecodingKey::from_ec_components(&stored.x, &stored.y)
                .map_err(|e| KeyError::Crypto(e.to_string()))?;
            keys.push(LoadedKey {
                encoding: EncodingKey::from_ec_der(&der),
                decoding,
                stored,
            });
        }
        // Newest first: it is the one that signs.
        keys.sort_by(|a, b| {
            (
                a.stored.retired_at.is_none(),
                a.stored.created_at,
                &a.stored.kid,
            )
                .cmp(&(
                    b.stored.retired_at.is_none(),
                    b.stored.created_at,
                    &b.stored.kid,
                ))
                .reverse()
        });
        let set = Arc::new(KeySet {
            keys,
            loaded_at: now,
        });
        *self.cached.write().await = Some(set.clone());
        Ok(set)
    }

    /// The JWKS document: every published key.
    pub async fn jwks(&self) -> Result<serde_json::Value, KeyError> {
        let set = self.current().await?;
        let keys: Vec<_> = set.keys.iter().map(|k| k.stored.jwk()).collect();
        Ok(serde_json::json!({ "keys": keys }))
    }

    /// `claims` as a JWT signed ES256 by the current key.
    pub async fn sign(&self, claims: &impl Serialize) -> Result<String, KeyError> {
        self.sign_typed(claims, "JWT").await
    }

    /// [`Self::sign`], with `typ` in the header (`logout+jwt`: a token no
    /// ID token can be taken for).
    pub async fn sign_typed(&self, claims: &impl Serialize, typ: &str) -> Result<String, KeyError> {
        let mut set = self.current().await?;
        if !set.keys.iter().any(|k| k.stored.retired_at.is_none()) {
            // Started without `serve` (tests, embedders): make one now.
            self.ensure().await?;
            set = self.current().await?;
        }
        let key = set
            .keys
            .iter()
            .find(|k| k.stored.retired_at.is_none())
            .ok_or_else(|| KeyError::Crypto("no signing key".into()))?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.stored.kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| KeyError::Crypto(e.to_string()))
    }

    /// The claims of a JWT this provider signed, checked against its
    /// published keys with ES256 only (`none`, HS256 and every other
    /// algorithm are refused), for `issuer`; expiry is not checked (an
    /// `id_token_hint` may have expired). `None` for anything else.
    pub async fn verify<T: DeserializeOwned>(&self, token: &str, issuer: &str) -> Option<T> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::ES256 {
            return None;
        }
        let set = self.current().await.ok()?;
        let key = set
            .keys
            .iter()
            .find(|k| Some(&k.stored.kid) == header.kid.as_ref())?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["iss", "sub", "aud"]);
        jsonwebtoken::decode::<T>(token, &key.decoding, &validation)
            .ok()
            .map(|data| data.claims)
    }
}

fn stored(json: &str) -> Option<StoredKey> {
    serde_json::from_str(json).ok()
}

fn to_json(value: &impl Serialize) -> Result<String, KeyError> {
    serde_json::to_string(value).map_err(|e| KeyError::Crypto(e.to_string()))
}
