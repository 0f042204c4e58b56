//! DPoP proofs (RFC 9449 §4.3), checked without any store: the JWT's
//! header (`typ: dpop+jwt`, an asymmetric algorithm, a public key and no
//! private one), its signature by that key, and its claims against the
//! request (`htm`, `htu` without query and fragment, `iat` within the
//! window, `ath` for an access token). What needs a store (a `jti` seen
//! before, the server's nonce) is the service's.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{
    jwk::{AlgorithmParameters, Jwk, ThumbprintHash},
    Algorithm, DecodingKey, Validation,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The algorithms a proof may be signed with (all asymmetric).
pub const SIGNING_ALGS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::PS256,
    Algorithm::RS256,
];

/// Their names, as discovery lists them.
pub const SIGNING_ALG_NAMES: [&str; 5] = ["ES256", "ES384", "EdDSA", "PS256", "RS256"];

/// A proof may be this old (its `jti` is remembered as long) …
pub const IAT_PAST_S: u64 = 300;
/// … and this far ahead of the server's clock.
pub const IAT_FUTURE_S: u64 = 60;

/// Members only a private JWK has (RFC 7517/7518): never in a proof.
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];
const MAX_JTI: usize = 256;

/// The request a proof must be for.
#[derive(Debug, Clone, Copy)]
pub struct ProofRequest<'a> {
    pub method: &'a str,
    /// The endpoint's URL as the client calls it (the issuer and path).
    pub url: &'a str,
    /// The access token presented with it (resource requests: `ath`).
    pub access_token: Option<&'a str>,
    /// Now, in unix seconds.
    pub now_s: u64,
}

/// A proof that holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The key's JWK SHA-256 thumbprint (RFC 7638): what tokens are bound to.
    pub jkt: String,
    pub jti: String,
    pub nonce: Option<String>,
}

/// Why a proof does not hold (`invalid_dpop_proof`'s description).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProofError(pub &'static str);

#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<u64>,
    ath: Option<String>,
    nonce: Option<String>,
}

/// `ath`: the access token's SHA-256, base64url.
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// Checks `proof` for `request` (RFC 9449 §4.3, steps 2–11 but the nonce
/// and replay).
pub fn check(proof: &str, request: &ProofRequest) -> Result<Proof, ProofError> {
    let header = jsonwebtoken::decode_header(proof).map_err(|_| ProofError("not a JWT"))?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err(ProofError("typ must be dpop+jwt"));
    }
    if !SIGNING_ALGS.contains(&header.alg) {
        return Err(ProofError(
            "the algorithm is not one of dpop_signing_alg_values_supported",
        ));
    }
    let jwk = header
        .jwk
        .as_ref()
        .ok_or(ProofError("the header has no jwk"))?;
    if has_private_members(proof) || matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
        return Err(ProofError("the jwk must be a public key"));
    }
    let claims = verified_claims(proof, jwk, header.alg)?;
    let jti = claims
        .jti
        .filter(|jti| !jti.is_empty() && jti.len() <= MAX_JTI)
        .ok_or(ProofError("jti is missing or too long"))?;
    if claims.htm.as_deref() != Some(request.method) {
        return Err(ProofError("htm is not this request's method"));
    }
    if !claims
        .htu
        .as_deref()
        .is_some_and(|htu| same_target(htu, request.url))
    {
        return Err(ProofError("htu is not this endpoint's URL"));
    }
    let iat = claims.iat.ok_or(ProofError("iat is missing"))?;
    if iat + IAT_PAST_S < request.now_s || iat > request.now_s + IAT_FUTURE_S {
        return Err(ProofError("iat is too far from now"));
    }
    match (request.access_token, claims.ath.as_deref()) {
        (Some(token), Some(ath)) if ath == access_token_hash(token) => {}
        (Some(_), _) => return Err(ProofError("ath is not the access token's hash")),
        (None, _) => {}
    }
    Ok(Proof {
        jkt: jwk.thumbprint(ThumbprintHash::SHA256),
        jti,
        nonce: claims.nonce,
    })
}

/// The claims, once the signature by the header's own key holds.
fn verified_claims(proof: &str, jwk: &Jwk, alg: Algorithm) -> Result<Claims, ProofError> {
    let key = DecodingKey::from_jwk(jwk).map_err(|_| ProofError("the jwk is not a usable key"))?;
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Claims>(proof, &key, &validation)
        .map(|data| data.claims)
        .map_err(|_| ProofError("the signature does not verify with the jwk"))
}

/// Whether the header's `jwk` carries a private key's members (which the
/// JWK type would silently drop).
fn has_private_members(proof: &str) -> bool {
    let Some(header) = proof.split('.').next() else {
        return true;
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(header) else {
        return true;
    };
    let Ok(header) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return true;
    };
    PRIVATE_MEMBERS
        .iter()
        .any(|member| header["jwk"].get(member).is_some())
}

/// `htu` names the same endpoint as `url`: scheme, host, port and path,
/// query and fragment ignored (§4.3 step 9).
fn same_target(htu: &str, url: &str) -> bool {
    let (Ok(htu), Ok(url)) = (url::Url::parse(htu), url::Url::parse(url)) else {
        return false;
    };
    htu.scheme() == url.scheme()
        && htu.host_str() == url.host_str()
        && htu.port_or_known_default() == url.port_or_known_default()
        && htu.path() == url.path()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use p256::{elliptic_curve::sec1::ToEncodedPoint, pkcs8::EncodePrivateKey, SecretKey};
    use rand::rngs::OsRng;
    use serde_json::{json, Value};

    const URL: &str = "https://id.example/oauth2/token";

    struct Key {
        encoding: EncodingKey,
        jwk: Value,
    }

    fn key() -> Key {
        let secret = SecretKey::random(&mut OsRng);
        let point = secret.public_key().to_encoded_point(false);
        let der = secret.to_pkcs8_der().unwrap();
        Key {
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwk: json!({
                "kty": "EC", "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
            }),
        }
    }

    fn proof(key: &Key, typ: &str, jwk: Value, claims: Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(typ.to_owned());
        header.jwk = Some(serde_json::from_value(jwk).unwrap());
        jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
    }

    fn claims(now: u64) -> Value {
        json!({ "jti": "j-1", "htm": "POST", "htu": URL, "iat": now })
    }

    fn request(now_s: u64) -> ProofRequest<'static> {
        ProofRequest {
            method: "POST",
            url: URL,
            access_token: None,
            now_s,
        }
    }

    #[test]
    fn a_proof_for_this_request_holds_and_names_its_keys_thumbprint() {
        let key = key();
        let now = 1_700_000_000;
        let with_query =
            json!({ "jti": "j-1", "htm": "POST", "htu": format!("{URL}?x=1#f"), "iat": now });
        for claims in [claims(now), with_query] {
            let checked = check(
                &proof(&key, "dpop+jwt", key.jwk.clone(), claims),
                &request(now),
            )
            .unwrap();
            let jwk: Jwk = serde_json::from_value(key.jwk.clone()).unwrap();
            assert_eq!(checked.jkt, jwk.thumbprint(ThumbprintHash::SHA256));
            assert_eq!(checked.jti, "j-1");
        }
    }

    #[test]
    fn proofs_for_another_request_time_or_token_are_refused() {
        let key = key();
        let now = 1_700_000_000;
        let refused = |claims: Value, request: ProofRequest| {
            check(&proof(&key, "dpop+jwt", key.jwk.clone(), claims), &request).unwrap_err()
        };
        let mut other = claims(now);
        other["htm"] = json!("GET");
        assert_eq!(
            refused(other, request(now)).0,
            "htm is not this request's method"
        );
        for htu in [
            "https://id.example/oauth2/userinfo",
            "http://id.example/oauth2/token",
            "https://evil.example/oauth2/token",
        ] {
            let mut other = claims(now);
            other["htu"] = json!(htu);
            assert_eq!(
                refused(other, request(now)).0,
                "htu is not this endpoint's URL"
            );
        }
        assert_eq!(
            refused(claims(now - IAT_PAST_S - 1), request(now)).0,
            "iat is too far from now"
        );
        assert_eq!(
            refused(claims(now + IAT_FUTURE_S + 1), request(now)).0,
            "iat is too far from now"
        );
        let mut without = claims(now);
        without.as_object_mut().unwrap().remove("jti");
        assert_eq!(
            refused(without, request(now)).0,
            "jti is missing or too long"
        );
        let with_token = ProofRequest {
            access_token: Some("the-token"),
            ..request(now)
        };
        let mut bound = claims(now);
        assert!(refused(bound.clone(), with_token).0.starts_with("ath"));
        bound["ath"] = json!(access_token_hash("another-token"));
        assert!(refused(bound.clone(), with_token).0.starts_with("ath"));
        bound["ath"] = json!(access_token_hash("the-token"));
        assert!(check(
            &proof(&key, "dpop+jwt", key.jwk.clone(), bound),
            &with_token
        )
        .is_ok());
    }

    #[test]
    fn a_proof_must_be_typed_signed_by_its_own_public_key() {
        let (key, other) = (key(), key());
        let now = 1_700_000_000;
        let err = |proof: String| check(&proof, &request(now)).unwrap_err().0;
        assert_eq!(
            err(proof(&key, "JWT", key.jwk.clone(), claims(now))),
            "typ must be dpop+jwt"
        );
        // Signed by one key, naming another.
        assert_eq!(
            err(proof(&key, "dpop+jwt", other.jwk.clone(), claims(now))),
            "the signature does not verify with the jwk"
        );
        let mut private = key.jwk.clone();
        private["d"] = json!("AAAA");
        // (signed by hand: the JWK type would drop the private member)
        let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": private });
        let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        let message = format!("{}.{}", part(&header), part(&claims(now)));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key.encoding, Algorithm::ES256)
                .unwrap();
        assert_eq!(
            err(format!("{message}.{signature}")),
            "the jwk must be a public key"
        );
        // A symmetric key (HS256 with a secret the client chose) is no proof.
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("dpop+jwt".into());
        header.jwk =
            Some(serde_json::from_value(json!({ "kty": "oct", "k": "c2VjcmV0" })).unwrap());
        let hs = jsonwebtoken::encode(&header, &claims(now), &EncodingKey::from_secret(b"secret"))
            .unwrap();
        assert_eq!(
            err(hs),
            "the algorithm is not one of dpop_signing_alg_values_supported"
        );
        assert_eq!(err("not.a.jwt".into()), "not a JWT");
    }
}
