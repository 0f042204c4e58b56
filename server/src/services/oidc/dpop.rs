//! DPoP (RFC 9449) at the token, user-info and revocation endpoints: what
//! the pure check in `domain::dpop` cannot do alone. A proof's `jti` is
//! used once across every instance (a provider record per key and `jti`,
//! kept for the proof's whole window), and a proof must carry a nonce this
//! server made in the last five minutes (§8, §9): a proof made ahead of
//! time, or captured and replayed later, is refused. Nonces are sealed
//! timestamps, so any instance checks any other's without storing them.

use super::{kinds, OidcError, OidcService};
use crate::{
    domain::{
        dpop::{self, Proof, ProofRequest, IAT_FUTURE_S, IAT_PAST_S},
        oidc::secret_digest,
        time::now_millis,
    },
    storage::StoreError,
};

/// What nonces are sealed for (nothing sealed for another purpose opens
/// as one).
const SEALED_NONCE: &[u8] = b"qrlogin/dpop-nonce/v1";
/// A nonce is good this long after it is made.
const NONCE_MS: u64 = 5 * 60_000;
/// A nonce is as long as a sealed timestamp can be, at most.
const MAX_NONCE: usize = 128;

/// A request's DPoP proofs, as the HTTP layer found them (the `DPoP`
/// header, every time it was sent), and the endpoint they must be for.
#[derive(Debug, Clone, Default)]
pub struct DpopRequest {
    pub proofs: Vec<String>,
    pub method: &'static str,
    /// The endpoint's URL: the issuer and the path.
    pub url: String,
}

impl OidcService {
    /// The key the request proves possession of, `None` without a proof;
    /// with `access_token`, the proof must be for that token too.
    pub(crate) async fn dpop_key(
        &self,
        request: &DpopRequest,
        access_token: Option<&str>,
    ) -> Result<Option<String>, OidcError> {
        let proof = match request.proofs.as_slice() {
            [] => return Ok(None),
            [proof] => proof,
            _ => return Err(OidcError::InvalidDpopProof("send one DPoP proof".into())),
        };
        let now = now_millis();
        let Proof { jkt, jti, nonce } = dpop::check(
            proof,
            &ProofRequest {
                method: request.method,
                url: &request.url,
                access_token,
                now_s: now / 1000,
            },
        )
        .map_err(|why| OidcError::InvalidDpopProof(why.to_string()))?;
        if !self.nonce_is_fresh(nonce.as_deref()).await? {
            return Err(OidcError::UseDpopNonce(self.dpop_nonce().await?));
        }
        // Once per key and jti, for as long as its iat is acceptable.
        let key = secret_digest(&format!("{jkt}:{jti}"));
        let window = (IAT_PAST_S + IAT_FUTURE_S) * 1000;
        match self
            .store
            .insert(kinds::DPOP_JTI, &key, "{}", now + window, now)
            .await
        {
            Ok(()) => Ok(Some(jkt)),
            Err(StoreError::Duplicate) => Err(OidcError::InvalidDpopProof(
                "the proof was used before".into(),
            )),
            Err(err) => Err(err.into()),
        }
    }

    /// A fresh nonce for the `DPoP-Nonce` header.
    pub async fn dpop_nonce(&self) -> Result<String, OidcError> {
        Ok(self
            .sealer
            .seal(SEALED_NONCE, &now_millis().to_be_bytes())
            .await?)
    }

    async fn nonce_is_fresh(&self, nonce: Option<&str>) -> Result<bool, StoreError> {
        let Some(nonce) = nonce.filter(|n| n.len() <= MAX_NONCE) else {
            return Ok(false);
        };
        let Some(made) = self.sealer.open(SEALED_NONCE, nonce).await? else {
            return Ok(false);
        };
        let Ok(made) = <[u8; 8]>::try_from(made.as_slice()) else {
            return Ok(false);
        };
        let made = u64::from_be_bytes(made);
        let now = now_millis();
        Ok(made <= now + 1000 && now < made + NONCE_MS)
    }
}
