//! The OpenID Connect provider's rules, free of I/O: clients and their
//! redirect URIs, PKCE, scopes, RFC 8628 user codes, and the records a
//! grant is made of. The services store these as JSON.

use std::fmt;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::{rngs::OsRng, Rng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{caller::Caller, time::UnixMillis};

/// How long each thing lives (ms).
pub mod lifetimes {
    /// An authorization code: used within seconds by a working client.
    pub const CODE_MS: u64 = 60_000;
    /// A used code is remembered this long, so that a second use is caught
    /// (and revokes what the first issued) rather than merely refused.
    pub const USED_CODE_MS: u64 = 10 * 60_000;
    pub const ACCESS_TOKEN_MS: u64 = 10 * 60_000;
    pub const ID_TOKEN_MS: u64 = 10 * 60_000;
    /// Refresh tokens (with `offline_access`): each use rotates it and
    /// starts this again.
    pub const REFRESH_TOKEN_MS: u64 = 30 * 24 * 3_600_000;
    /// An authorization request waits this long for the phone: enough for
    /// the login card's six codes.
    pub const AUTHORIZATION_REQUEST_MS: u64 = 10 * 60_000;
    /// RFC 8628 `expires_in`.
    pub const DEVICE_CODE_MS: u64 = 10 * 60_000;
    /// A finished or expired device authorization is remembered this long,
    /// so that its device hears `expired_token` rather than a bare refusal.
    pub const DEVICE_RETENTION_MS: u64 = 10 * 60_000;
    /// RFC 8628 `interval`: the least time between two polls.
    pub const DEVICE_POLL_INTERVAL_S: u64 = 5;
    /// A retired signing key stays published this long after it signed its
    /// last token.
    pub const RETIRED_KEY_MS: u64 = ID_TOKEN_MS + 5 * 60_000;
    /// A back-channel logout token is good this long after it is signed
    /// (each try signs a new one).
    pub const LOGOUT_TOKEN_MS: u64 = 2 * 60_000;
}

/// The scopes this provider knows; others are ignored (OpenID Connect Core
/// §3.1.2.1: unknown scopes SHOULD be ignored).
pub const SCOPES_SUPPORTED: [&str; 3] = ["openid", "profile", "offline_access"];

/// A random, server-made identifier (client ids, grant ids): 128 bits,
/// base64url, 22 characters.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `raw` could be an id this server made (a cheap check before any
/// lookup, and what keeps keys free of the store's separator).
pub fn plausible_id(raw: &str) -> bool {
    (1..=64).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// SHA-256 of a secret, hex: how codes, tokens and client secrets are
/// stored and looked up (they are 256-bit random, so no salt or stretching).
pub fn secret_digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("a client name is 1 to 64 characters, without control characters")]
    BadName,
    #[error("at least one --redirect-uri is needed")]
    NoRedirectUri,
    #[error("redirect URI {0:?} is not allowed: use an absolute https:// URL (http:// only for localhost, 127.0.0.1 or [::1]) without a fragment, at most 512 characters")]
    BadRedirectUri(String),
}

/// Where a client is told of logouts: where RP-initiated logout may send
/// the browser back to, and where back-channel logout tokens go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogoutUris {
    pub post_logout: Vec<String>,
    pub backchannel: Option<String>,
}

/// A relying party, as registered with `qrlogin client add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    /// SHA-256 (hex) of the secret of a confidential client; `None`: public
    /// (PKCE is then required).
    pub secret_digest: Option<String>,
    pub created_at: UnixMillis,
    /// Where RP-initiated logout may send the browser back to; absent (as
    /// for clients registered before this existed): its redirect URIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_logout_uris: Option<Vec<String>>,
    /// Where qrlogin POSTs a logout token when a person's session with
    /// the app ends (OpenID Connect Back-Channel Logout 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
}

impl Client {
    /// A new client; for a confidential one, also its secret (shown once).
    pub fn register(
        name: &str,
        redirect_uris: &[String],
        public: bool,
        now: UnixMillis,
    ) -> Result<(Self, Option<String>), ClientError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(ClientError::BadName);
        }
        if redirect_uris.is_empty() {
            return Err(ClientError::NoRedirectUri);
        }
        for uri in redirect_uris {
            check_redirect_uri(uri)?;
        }
        let secret = (!public).then(|| super::secret::Secret::new_random().encode());
        let client = Self {
            id: random_id(),
            name: name.to_owned(),
            redirect_uris: redirect_uris.to_vec(),
            secret_digest: secret.as_deref().map(secret_digest),
            created_at: now,
            post_logout_uris: None,
            backchannel_logout_uri: None,
        };
        Ok((client, secret))
    }

    /// [`Self::register`] with its own post-logout URIs (checked as
    /// redirect URIs are); empty: its redirect URIs serve.
    pub fn register_with_logout(
        name: &str,
        redirect_uris: &[String],
        logout: &LogoutUris,
        public: bool,
        now: UnixMillis,
    ) -> Result<(Self, Option<String>), ClientError> {
        let (mut client, secret) = Self::register(name, redirect_uris, public, now)?;
        if !logout.post_logout.is_empty() {
            for uri in &logout.post_logout {
                check_redirect_uri(uri)?;
            }
            client.post_logout_uris = Some(logout.post_logout.clone());
        }
        if let Some(uri) = &logout.backchannel {
            check_redirect_uri(uri)?;
            client.backchannel_logout_uri = Some(uri.clone());
        }
        Ok((client, secret))
    }

    /// A new secret for a confidential client (shown once); `None` for a
    /// public one, which has none.
    pub fn rotate_secret(&mut self) -> Option<String> {
        if self.is_public() {
            return None;
        }
        let secret = super::secret::Secret::new_random().encode();
        self.secret_digest = Some(secret_digest(&secret));
        Some(secret)
    }

    /// Where logout may go back to: the post-logout URIs, or the redirect
    /// URIs where it has none.
    pub fn logout_uris(&self) -> &[String] {
        self.post_logout_uris
            .as_deref()
            .unwrap_or(&self.redirect_uris)
    }

    /// Exact string match, as for redirects.
    pub fn allows_post_logout(&self, uri: &str) -> bool {
        self.logout_uris()
            .iter()
            .any(|registered| registered == uri)
    }

    pub fn is_public(&self) -> bool {
        self.secret_digest.is_none()
    }

    /// Exact string match (RFC 9700 §4.1.3): no prefixes, no patterns.
    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|registered| registered == uri)
    }

    /// Whether `secret` is this client's, in constant time.
    pub fn secret_matches(&self, secret: &str) -> bool {
        match &self.secret_digest {
            Some(digest) => bool::from(digest.as_bytes().ct_eq(secret_digest(secret).as_bytes())),
            None => false,
        }
    }
}

fn check_redirect_uri(raw: &str) -> Result<(), ClientError> {
    let bad = || ClientError::BadRedirectUri(raw.to_owned());
    if raw.len() > 512 {
        return Err(bad());
    }
    let url = url::Url::parse(raw).map_err(|_| bad())?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    // `Url` normalises what it parses: the registered string must be the
    // one clients send, so only an already-normal URI is taken.
    if !scheme_ok || url.fragment().is_some() || url.as_str() != raw {
        return Err(bad());
    }
    Ok(())
}

/// PKCE (RFC 7636), `S256` only: `plain` would send the secret itself
/// through the browser.
pub fn pkce_matches(challenge: &str, verifier: &str) -> bool {
    let verifier_ok = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    verifier_ok && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// A `code_challenge` as S256 makes it: 43 characters of base64url.
pub fn plausible_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The scopes granted for a request's `scope`: the known ones, in a fixed
/// order; `None` without `openid` (this is an OpenID provider only).
pub fn granted_scopes(requested: &str) -> Option<Vec<String>> {
    let asked: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
    if !asked.contains(&"openid") {
        return None;
    }
    Some(
        SCOPES_SUPPORTED
            .iter()
            .filter(|s| asked.contains(s))
            .map(|s| (*s).to_owned())
            .collect(),
    )
}

/// RFC 8628 §6.1: 20 consonants (no vowels, so no words; no look-alikes).
const USER_CODE_LETTERS: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// An RFC 8628 user code: 8 letters, 20^8 ≈ 2^34.6 of them, shown as
/// `XXXX-XXXX`; typed in any case, with or without the dash or spaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCode(String);

impl UserCode {
    pub fn new_random() -> Self {
        let mut rng = OsRng;
        Self(
            (0..8)
                .map(|_| char::from(USER_CODE_LETTERS[rng.gen_range(0..20)]))
                .collect(),
        )
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let letters: String = raw
            .chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let valid = letters.len() == 8 && letters.bytes().all(|b| USER_CODE_LETTERS.contains(&b));
        valid.then_some(Self(letters))
    }

    /// The key it is stored under.
    pub fn as_key(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b) = self.0.split_at(4);
        write!(f, "{a}-{b}")
    }
}

/// What the phone is shown of the device or browser that asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestOrigin {
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: String,
}

impl From<&Caller> for RequestOrigin {
    fn from(caller: &Caller) -> Self {
        Self {
            ip: caller.ip,
            user_agent: caller.user_agent.clone(),
        }
    }
}

/// An authorization request waiting for the phone (`/authorize?request=…`).
/// It travels sealed in that URL ([`to_bytes`](Self::to_bytes) is what is
/// sealed); a record of it is stored only once a login card makes codes
/// for it, keyed by the id sealed with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    /// The account the client expects (`login_hint`), a username.
    #[serde(default)]
    pub login_hint: Option<String>,
    pub created_at: UnixMillis,
    /// The login attempts made for it, newest last: the request goes on only
    /// after one of them was redeemed by the account that goes on.
    pub attempts: Vec<String>,
    /// Gone back to its client with a code: its URL is used up.
    #[serde(default)]
    pub completed: bool,
}

/// The random id sealed with a request: its record's key, once it has one.
pub type RequestId = [u8; 16];

/// A field of a sealed request: u16 length (big-endian; `u16::MAX` for
/// none), then UTF-8.
const ABSENT: u16 = u16::MAX;

impl AuthorizationRequest {
    /// The request as it is sealed (compact: every field at its longest
    /// gives about 1,750 bytes): the id, `created_at`, then each field.
    /// Attempts are not part of it. `None` when a field is longer than a
    /// request can have (the authorization endpoint bounds them).
    pub fn to_bytes(&self, id: &RequestId) -> Option<Vec<u8>> {
        let scopes = self.scopes.join(" ");
        let fields = [
            Some(self.client_id.as_str()),
            Some(self.redirect_uri.as_str()),
            Some(scopes.as_str()),
            self.state.as_deref(),
            self.nonce.as_deref(),
            self.code_challenge.as_deref(),
            self.login_hint.as_deref(),
        ];
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(id);
        out.extend_from_slice(&self.created_at.to_be_bytes());
        for field in fields {
            match field {
                None => out.extend_from_slice(&ABSENT.to_be_bytes()),
                Some(text) => {
                    let len = u16::try_from(text.len()).ok().filter(|&n| n <= 1024)?;
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(text.as_bytes());
                }
            }
        }
        Some(out)
    }

    /// The id and request [`to_bytes`](Self::to_bytes) made; `None` for
    /// anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<(RequestId, Self)> {
        let (id, rest) = bytes.split_first_chunk::<16>()?;
        let (created_at, mut rest) = rest.split_first_chunk::<8>()?;
        // `may_end`: a request sealed before this field existed ends here.
        let mut field = |may_end: bool| -> Option<Option<String>> {
            if may_end && rest.is_empty() {
                return Some(None);
            }
            let (len, tail) = rest.split_first_chunk::<2>()?;
            let len = u16::from_be_bytes(*len);
            if len == ABSENT {
                rest = tail;
                return Some(None);
            }
            let (text, tail) = tail.split_at_checked(usize::from(len))?;
            rest = tail;
            Some(Some(String::from_utf8(text.to_vec()).ok()?))
        };
        let client_id = field(false)??;
        let redirect_uri = field(false)??;
        let scopes = field(false)??;
        let state = field(false)?;
        let nonce = field(false)?;
        let code_challenge = field(false)?;
        let login_hint = field(true)?;
        if !rest.is_empty() {
            return None;
        }
        let request = Self {
            client_id,
            redirect_uri,
            scopes: scopes
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            state,
            nonce,
            code_challenge,
            login_hint,
            created_at: u64::from_be_bytes(*created_at),
            attempts: Vec::new(),
            completed: false,
        };
        Some((*id, request))
    }
}

/// What one sign-in to one client granted; codes and tokens point at it,
/// and removing it revokes them all (code reuse, refresh-token replay,
/// revocation, consent withdrawn on `/m`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub account_id: i64,
    pub client_id: String,
    pub scopes: Vec<String>,
    /// When the person signed in (the `auth_time` claim), unix seconds.
    pub auth_time: u64,
    /// The refresh token generation currently valid; an older one coming
    /// back is a replay.
    pub refresh_generation: u32,
    /// The qrlogin session the sign-in came from, as the app knows it
    /// (the ID token's `sid`, [`session_sid`]); `None` for the device flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// A session's `sid` (OpenID Connect Front-/Back-Channel Logout): derived
/// from its id, so that no app learns the id that names it on `/m` or its
/// start time (the id is a UUIDv7).
pub fn session_sid(session_id: &str) -> String {
    let digest = Sha256::digest(format!("qrlogin/sid/v1:{session_id}").as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// An app to be told, by a back-channel logout token, that the account's
/// session with it ended (`sid`), or all of them (`sid` absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutNotice {
    pub client_id: String,
    pub account_id: i64,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// The back-channel logout event's name (Back-Channel Logout 1.0 §2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A logout token's claims (Back-Channel Logout 1.0 §2.4): never a
/// `nonce`, so that it cannot pass for an ID token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogoutTokenClaims {
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub events: serde_json::Value,
}

impl Grant {
    /// Its store key: by account, then client, so that an account's grants
    /// to one client are revoked by prefix.
    pub fn key(account_id: i64, client_id: &str, grant_id: &str) -> String {
        format!("{account_id}:{client_id}:{grant_id}")
    }

    /// The account and client a grant key (or a consent key,
    /// `{account}:{client}`) names.
    pub fn key_owner(key: &str) -> (Option<i64>, &str) {
        let mut parts = key.split(':');
        let account_id = parts.next().and_then(|a| a.parse().ok());
        (account_id, parts.next().unwrap_or_default())
    }

    pub fn offline(&self) -> bool {
        self.scopes.iter().any(|s| s == "offline_access")
    }
}

/// An authorization code, stored by its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationCode {
    pub grant_key: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub used: bool,
}

/// An access or refresh token, stored by its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    pub grant_key: String,
    pub client_id: String,
    /// Refresh tokens only: the grant generation it belongs to.
    pub generation: Option<u32>,
    /// The DPoP key it is bound to (`cnf.jkt`, RFC 9449 §6): only a
    /// request that proves possession of that key may use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
}

/// Where a device authorization stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    Pending,
    Approved {
        account_id: i64,
    },
    Denied,
    /// Its tokens were handed out.
    Done,
}

/// An RFC 8628 device authorization, stored by its device code's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAuthorization {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub user_code: UserCode,
    pub origin: RequestOrigin,
    pub state: DeviceState,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    pub interval_s: u64,
    pub last_poll_at: Option<UnixMillis>,
}

/// What a device's poll of the token endpoint hears (RFC 8628 §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevicePoll {
    Pending,
    SlowDown,
    Denied,
    Expired,
    /// Tokens may be issued for this account, once.
    Approved {
        account_id: i64,
    },
    AlreadyUsed,
}

impl DeviceAuthorization {
    /// The answer to a poll at `now`, and the record as it is after it.
    pub fn poll(&self, now: UnixMillis) -> (DevicePoll, Self) {
        let mut next = self.clone();
        if now >= self.expires_at && !matches!(self.state, DeviceState::Done) {
            return (DevicePoll::Expired, next);
        }
        let answer = match self.state {
            DeviceState::Pending => {
                let too_soon = self
                    .last_poll_at
                    .is_some_and(|last| now < last + self.interval_s * 1000);
                if too_soon {
                    // RFC 8628 §3.5: every slow_down adds 5 s for good.
                    next.interval_s += 5;
                }
                next.last_poll_at = Some(now);
                if too_soon {
                    DevicePoll::SlowDown
                } else {
                    DevicePoll::Pending
                }
            }
            DeviceState::Denied => DevicePoll::Denied,
            DeviceState::Approved { account_id } => {
                next.state = DeviceState::Done;
                DevicePoll::Approved { account_id }
            }
            DeviceState::Done => DevicePoll::AlreadyUsed,
        };
        (answer, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(long: bool) -> AuthorizationRequest {
        let text = |n: usize, c: &str| c.repeat(n);
        AuthorizationRequest {
            client_id: if long { text(64, "c") } else { random_id() },
            redirect_uri: if long {
                format!("https://app.example/{}", text(492, "p"))
            } else {
                "http://localhost:4000/callback".into()
            },
            scopes: SCOPES_SUPPORTED.iter().map(|s| (*s).to_owned()).collect(),
            // 512 bytes of the longest characters, and controls.
            state: Some(if long {
                text(128, "\u{1F600}")
            } else {
                "st&ate=1 é/".into()
            }),
            nonce: Some(if long {
                text(512, "\u{1}")
            } else {
                "n-0S6".into()
            }),
            code_challenge: Some(text(43, "A")),
            login_hint: Some(if long { text(32, "h") } else { "alice".into() }),
            created_at: 1_700_000_000_000,
            attempts: Vec::new(),
            completed: false,
        }
    }

    #[test]
    fn a_sealed_request_reads_back_and_fits_its_bound_at_its_longest() {
        for long in [false, true] {
            let request = request(long);
            let id = [7u8; 16];
            let bytes = request.to_bytes(&id).unwrap();
            assert_eq!(
                AuthorizationRequest::from_bytes(&bytes),
                Some((id, request))
            );
            // Sealed: 16 bytes of salt and a 16-byte tag more, as base64url.
            let sealed = (bytes.len() + 32).div_ceil(3) * 4;
            assert!(sealed <= app::api::MAX_AUTHORIZATION_HANDLE, "{sealed}");
            for cut in [0, 1, 16, 24, 30, bytes.len() - 1] {
                assert_eq!(AuthorizationRequest::from_bytes(&bytes[..cut]), None);
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(AuthorizationRequest::from_bytes(&longer), None);
        }
        let without = AuthorizationRequest {
            state: None,
            nonce: None,
            code_challenge: None,
            login_hint: None,
            ..request(false)
        };
        let bytes = without.to_bytes(&[0; 16]).unwrap();
        assert_eq!(
            AuthorizationRequest::from_bytes(&bytes).map(|(_, r)| r),
            Some(without)
        );
        let too_long = AuthorizationRequest {
            state: Some("x".repeat(2000)),
            ..request(false)
        };
        assert_eq!(too_long.to_bytes(&[0; 16]), None);
    }

    #[test]
    fn redirect_uris_are_absolute_https_or_loopback_http() {
        let register = |uri: &str| Client::register("App", &[uri.to_owned()], false, 0);
        assert!(register("https://app.example/cb").is_ok());
        assert!(register("http://localhost:8080/cb").is_ok());
        assert!(register("http://127.0.0.1/cb").is_ok());
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#x",
            "/cb",
            "javascript:alert(1)",
            "HTTPS://APP.example/cb",
        ] {
            assert!(register(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Client::register("App", &[], true, 0).unwrap_err(),
            ClientError::NoRedirectUri
        );
        assert_eq!(
            Client::register(" ", &["https://a.example/".into()], true, 0).unwrap_err(),
            ClientError::BadName
        );
    }

    #[test]
    fn redirect_uris_match_exactly_and_secrets_in_constant_time() {
        let (client, secret) =
            Client::register("App", &["https://app.example/cb".into()], false, 0).unwrap();
        assert!(client.allows_redirect("https://app.example/cb"));
        assert!(!client.allows_redirect("https://app.example/cb/"));
        assert!(!client.allows_redirect("https://app.example/cb?x=1"));
        assert!(!client.allows_redirect("https://app.example/c"));
        let secret = secret.unwrap();
        assert!(client.secret_matches(&secret));
        assert!(!client.secret_matches(&format!("{secret}x")));
        let (public, none) =
            Client::register("App", &["https://app.example/cb".into()], true, 0).unwrap();
        assert!(none.is_none() && public.is_public() && !public.secret_matches(""));
    }

    #[test]
    fn pkce_is_s256_over_a_proper_verifier() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(plausible_challenge(challenge));
        assert!(pkce_matches(challenge, verifier));
        assert!(!pkce_matches(challenge, &verifier.replace('d', "e")));
        // `plain`: the verifier sent as the challenge never matches.
        assert!(!pkce_matches(verifier, verifier));
        assert!(!pkce_matches(challenge, "short"));
    }

    #[test]
    fn scopes_need_openid_and_drop_the_unknown() {
        assert_eq!(granted_scopes("profile"), None);
        assert_eq!(
            granted_scopes("email offline_access  openid profile").unwrap(),
            ["openid", "profile", "offline_access"]
        );
    }

    #[test]
    fn user_codes_are_eight_consonants_typed_loosely() {
        let code = UserCode::new_random();
        assert_eq!(code.as_key().len(), 8);
        let shown = code.to_string();
        assert_eq!(shown.len(), 9);
        assert_eq!(UserCode::parse(&shown.to_lowercase()), Some(code.clone()));
        assert_eq!(UserCode::parse(&shown.replace('-', " ")), Some(code));
        assert_eq!(UserCode::parse("BCDF-GHJ"), None);
        assert_eq!(UserCode::parse("BCDF-GHJA"), None, "vowels never occur");
    }

    #[test]
    fn device_polls_follow_rfc_8628() {
        let device = DeviceAuthorization {
            client_id: "c".into(),
            scopes: vec!["openid".into()],
            user_code: UserCode::new_random(),
            origin: RequestOrigin {
                ip: None,
                user_agent: String::new(),
            },
            state: DeviceState::Pending,
            created_at: 0,
            expires_at: 600_000,
            interval_s: 5,
            last_poll_at: None,
        };
        let (answer, device) = device.poll(1_000);
        assert_eq!((answer, device.interval_s), (DevicePoll::Pending, 5));
        let (answer, device) = device.poll(2_000);
        assert_eq!((answer, device.interval_s), (DevicePoll::SlowDown, 10));
        let (answer, _) = device.poll(12_000);
        assert_eq!(answer, DevicePoll::Pending);
        let approved = DeviceAuthorization {
            state: DeviceState::Approved { account_id: 7 },
            ..device.clone()
        };
        let (answer, done) = approved.poll(13_000);
        assert_eq!(answer, DevicePoll::Approved { account_id: 7 });
        assert_eq!(done.poll(14_000).0, DevicePoll::AlreadyUsed);
        assert_eq!(device.poll(600_000).0, DevicePoll::Expired);
        let denied = DeviceAuthorization {
            state: DeviceState::Denied,
            ..device
        };
        assert_eq!(denied.poll(20_000).0, DevicePoll::Denied);
    }
}
