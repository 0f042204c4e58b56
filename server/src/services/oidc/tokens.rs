//! The token endpoint's grants (authorization code, refresh token with
//! rotation and replay detection, device code), userinfo, and revocation
//! (RFC 7009).

use serde::{Deserialize, Serialize};

use super::{dpop::DpopRequest, kinds, seconds, to_json, OidcError, OidcService};
use crate::{
    domain::{
        account::Account,
        caller::Caller,
        oidc::{
            lifetimes, pkce_matches, random_id, secret_digest, AuthorizationCode, Client,
            DevicePoll, Grant, IssuedToken,
        },
        secret::Secret,
        time::now_millis,
    },
    services::limits::ip_key,
    storage::StoreError,
};

/// How the client said who it is (`client_secret_basic`,
/// `client_secret_post`, or only its id for a public client).
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// A token request's parameters (RFC 6749 §4.1.3, §6; RFC 8628 §3.4).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub device_code: Option<String>,
}

/// A successful token response (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub id_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
}

/// The ID token's claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub auth_time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The qrlogin session the sign-in came from (Back-Channel Logout
    /// 1.0 §2.1), for the logout tokens that name it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// The userinfo answer (OpenID Connect Core §5.3).
#[derive(Debug, Clone, Serialize)]
pub struct UserInfo {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A parameter the grant cannot do without.
fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, OidcError> {
    value
        .as_deref()
        .ok_or_else(|| OidcError::InvalidRequest(format!("{name} is missing")))
}

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

impl OidcService {
    /// The client the credentials prove: a confidential client must show
    /// its secret; a public client must not claim one.
    pub(crate) async fn authenticate_client(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<Client, OidcError> {
        let id = credentials
            .client_id
            .as_deref()
            .ok_or(OidcError::InvalidClient)?;
        let client = self.client(id).await?.ok_or(OidcError::InvalidClient)?;
        let proven = match (&credentials.client_secret, client.is_public()) {
            (None, true) => true,
            (Some(secret), false) => client.secret_matches(secret),
            _ => false,
        };
        if !proven {
            return Err(OidcError::InvalidClient);
        }
        Ok(client)
    }

    /// `POST /oauth2/token`; with a DPoP proof, the tokens are bound to
    /// its key (`token_type` `DPoP`).
    pub async fn token(
        &self,
        credentials: &ClientCredentials,
        request: &TokenRequest,
        caller: &Caller,
        dpop: &DpopRequest,
    ) -> Result<TokenResponse, OidcError> {
        self.limits.token.check(&ip_key(caller.ip)).await?;
        let client = self.authenticate_client(credentials).await?;
        let jkt = self.dpop_key(dpop, None).await?;
        let jkt = jkt.as_deref();
        match request.grant_type.as_deref() {
            Some("authorization_code") => self.redeem_code(&client, request, caller, jkt).await,
            Some("refresh_token") => self.refresh(&client, request, caller, jkt).await,
            Some(DEVICE_CODE_GRANT) => self.redeem_device_code(&client, request, jkt).await,
            Some(_) => Err(OidcError::UnsupportedGrantType),
            None => Err(OidcError::InvalidRequest("grant_type is missing".into())),
        }
    }

    async fn redeem_code(
        &self,
        client: &Client,
        request: &TokenRequest,
        caller: &Caller,
        jkt: Option<&str>,
    ) -> Result<TokenResponse, OidcError> {
        let invalid = |why: &str| OidcError::InvalidGrant(why.to_owned());
        let code = required(&request.code, "code")?;
        let now = now_millis();
        let key = secret_digest(code);
        let (stored, record): (AuthorizationCode, _) = self
            .load(kinds::CODE, &key)
            .await?
            .ok_or_else(|| invalid("the code is unknown or expired"))?;
        // Another client's code (RFC 9700 §4.5: code injection).
        if stored.client_id != client.id {
            return Err(invalid("the code was issued to another client"));
        }
        if stored.used {
            // A second use: the code leaked. What the first use issued is
            // revoked (RFC 6749 §4.1.2).
            self.revoke_grant(&stored.grant_key, caller).await?;
            return Err(invalid("the code was already used; its tokens are revoked"));
        }
        if request.redirect_uri.as_deref() != Some(stored.redirect_uri.as_str()) {
            return Err(invalid(
                "redirect_uri differs from the authorization request's",
            ));
        }
        match (&stored.code_challenge, request.code_verifier.as_deref()) {
            (Some(challenge), Some(verifier)) if pkce_matches(challenge, verifier) => {}
            (Some(_), _) => return Err(invalid("the PKCE code_verifier is missing or wrong")),
            // RFC 9700 §4.8.2: a verifier for a code issued without a
            // challenge is a downgrade attempt.
            (None, Some(_)) => return Err(invalid("no code_challenge was sent for this code")),
            (None, None) => {}
        }
        let used = AuthorizationCode {
            used: true,
            ..stored.clone()
        };
        let until = now + lifetimes::USED_CODE_MS;
        if !self
            .store
            .replace(
                kinds::CODE,
                &key,
                record.version,
                &to_json(&used)?,
                until,
                now,
            )
            .await?
        {
            // Lost a race with another use of the same code.
            self.revoke_grant(&stored.grant_key, caller).await?;
            return Err(invalid("the code was already used; its tokens are revoked"));
        }
        let (grant, _) = self
            .grant(&stored.grant_key)
            .await?
            .ok_or_else(|| invalid("the grant was revoked"))?;
        self.issue(client, &stored.grant_key, &grant, stored.nonce, jkt)
            .await
    }

    async fn refresh(
        &self,
        client: &Client,
        request: &TokenRequest,
        caller: &Caller,
        jkt: Option<&str>,
    ) -> Result<TokenResponse, OidcError> {
        let invalid = |why: &str| OidcError::InvalidGrant(why.to_owned());
        let token = required(&request.refresh_token, "refresh_token")?;
        let now = now_millis();
        let (stored, _): (IssuedToken, _) = self
            .load(kinds::REFRESH_TOKEN, &secret_digest(token))
            .await?
            .ok_or_else(|| invalid("the refresh token is unknown, expired or revoked"))?;
        if stored.client_id != client.id {
            return Err(invalid("the refresh token was issued to another client"));
        }
        // A public client's refresh token is bound to its DPoP key (RFC
        // 9449 §5): without a proof of that key it is refused, unused.
        if stored.jkt.is_some() && stored.jkt.as_deref() != jkt {
            return Err(invalid(
                "the refresh token is bound to a DPoP key this request does not prove",
            ));
        }
        let (grant, grant_record) = self
            .grant(&stored.grant_key)
            .await?
            .ok_or_else(|| invalid("the refresh token was revoked"))?;
        // Before the rotation: a refresh refused while the account is
        // disabled (or gone) does not use the token up as well.
        if self
            .accounts
            .account_by_id(grant.account_id)
            .await?
            .is_none()
        {
            return Err(invalid("the account is disabled or no longer exists"));
        }
        if stored.generation != Some(grant.refresh_generation) {
            // An old refresh token came back: it was stolen, or the client
            // lost track. Either way the whole grant goes (RFC 9700 §4.14).
            self.revoke_grant(&stored.grant_key, caller).await?;
            return Err(invalid(
                "the refresh token was already used; the grant is revoked",
            ));
        }
        let rotated = Grant {
            refresh_generation: grant.refresh_generation + 1,
            ..grant
        };
        let until = now + lifetimes::REFRESH_TOKEN_MS;
        if !self
            .store
            .replace(
                kinds::GRANT,
                &stored.grant_key,
                grant_record.version,
                &to_json(&rotated)?,
                until,
                now,
            )
            .await?
        {
            // Two uses at once: one of them is not the client.
            self.revoke_grant(&stored.grant_key, caller).await?;
            return Err(invalid(
                "the refresh token was used twice; the grant is revoked",
            ));
        }
        self.issue(client, &stored.grant_key, &rotated, None, jkt)
            .await
    }

    async fn redeem_device_code(
        &self,
        client: &Client,
        request: &TokenRequest,
        jkt: Option<&str>,
    ) -> Result<TokenResponse, OidcError> {
        let device_code = required(&request.device_code, "device_code")?;
        let key = secret_digest(device_code);
        let now = now_millis();
        let (device, record) = self
            .device(&key)
            .await?
            .ok_or_else(|| OidcError::InvalidGrant("the device code is unknown".into()))?;
        if device.client_id != client.id {
            return Err(OidcError::InvalidGrant(
                "the device code was issued to another client".into(),
            ));
        }
        let (answer, next) = device.poll(now);
        if next != device
            && !self
                .store
                .replace(
                    kinds::DEVICE,
                    &key,
                    record.version,
                    &to_json(&next)?,
                    record.expires_at,
                    now,
                )
                .await?
        {
            // Another poll of the same code at the same moment.
            return Err(OidcError::SlowDown);
        }
        match answer {
            DevicePoll::Pending => Err(OidcError::AuthorizationPending),
            DevicePoll::SlowDown => Err(OidcError::SlowDown),
            DevicePoll::Denied => Err(OidcError::AccessDenied),
            DevicePoll::Expired => Err(OidcError::ExpiredToken),
            DevicePoll::AlreadyUsed => Err(OidcError::InvalidGrant(
                "the device code was already used".into(),
            )),
            DevicePoll::Approved { account_id } => {
                // Approved by an account removed or disabled since: no
                // grant is made for it (its id is never anyone else's).
                if self.accounts.account_by_id(account_id).await?.is_none() {
                    return Err(OidcError::InvalidGrant(
                        "the account is disabled or no longer exists".into(),
                    ));
                }
                let (grant_key, grant) = self
                    .new_grant(account_id, client, &device.scopes, seconds(now), None)
                    .await?;
                self.issue(client, &grant_key, &grant, None, jkt).await
            }
        }
    }

    /// A new grant of `scopes` to `client` for the account (through the
    /// session whose `sid` it is), and its key.
    pub(crate) async fn new_grant(
        &self,
        account_id: i64,
        client: &Client,
        scopes: &[String],
        auth_time: u64,
        sid: Option<String>,
    ) -> Result<(String, Grant), OidcError> {
        let grant = Grant {
            account_id,
            client_id: client.id.clone(),
            scopes: scopes.to_vec(),
            auth_time,
            refresh_generation: 0,
            sid,
        };
        let now = now_millis();
        let key = Grant::key(account_id, &client.id, &random_id());
        // Without offline_access it lives as long as its first tokens.
        let life = if grant.offline() {
            lifetimes::REFRESH_TOKEN_MS
        } else {
            lifetimes::CODE_MS + lifetimes::ACCESS_TOKEN_MS
        };
        self.store
            .insert(kinds::GRANT, &key, &to_json(&grant)?, now + life, now)
            .await?;
        Ok((key, grant))
    }

    /// Access token, ID token and (with `offline_access`) a refresh token;
    /// with `jkt`, the access token bound to that DPoP key, and a public
    /// client's refresh token too (a confidential client's is bound to its
    /// secret already, RFC 9449 §5).
    async fn issue(
        &self,
        client: &Client,
        grant_key: &str,
        grant: &Grant,
        nonce: Option<String>,
        jkt: Option<&str>,
    ) -> Result<TokenResponse, OidcError> {
        let account = self
            .accounts
            .account_by_id(grant.account_id)
            .await?
            .ok_or_else(|| {
                OidcError::InvalidGrant("the account is disabled or no longer exists".into())
            })?;
        let now = now_millis();
        let access_token = Secret::new_random().encode();
        let access = IssuedToken {
            grant_key: grant_key.to_owned(),
            client_id: client.id.clone(),
            generation: None,
            jkt: jkt.map(str::to_owned),
        };
        self.store
            .insert(
                kinds::ACCESS_TOKEN,
                &secret_digest(&access_token),
                &to_json(&access)?,
                now + lifetimes::ACCESS_TOKEN_MS,
                now,
            )
            .await?;
        let refresh_token = if grant.offline() {
            let token = Secret::new_random().encode();
            let refresh = IssuedToken {
                generation: Some(grant.refresh_generation),
                jkt: jkt.filter(|_| client.is_public()).map(str::to_owned),
                ..access
            };
            self.store
                .insert(
                    kinds::REFRESH_TOKEN,
                    &secret_digest(&token),
                    &to_json(&refresh)?,
                    now + lifetimes::REFRESH_TOKEN_MS,
                    now,
                )
                .await?;
            Some(token)
        } else {
            None
        };
        let profile = grant.scopes.iter().any(|s| s == "profile");
        let claims = IdTokenClaims {
            iss: self.issuer.to_string(),
            sub: account.subject.clone(),
            aud: client.id.clone(),
            iat: seconds(now),
            exp: seconds(now + lifetimes::ID_TOKEN_MS),
            auth_time: grant.auth_time,
            nonce,
            preferred_username: profile.then(|| account.username.clone()),
            name: profile.then(|| account.display_name.clone()),
            sid: grant.sid.clone(),
        };
        let id_token = self.keys.sign(&claims).await?;
        tracing::info!(client = %client.id, account = %account.username, "tokens issued");
        Ok(TokenResponse {
            access_token,
            token_type: if jkt.is_some() { "DPoP" } else { "Bearer" },
            expires_in: seconds(lifetimes::ACCESS_TOKEN_MS),
            id_token,
            refresh_token,
            scope: grant.scopes.join(" "),
        })
    }

    /// `GET /oauth2/userinfo` with an access token, sent as a bearer
    /// token or (`as_dpop`) with the DPoP scheme and a proof of its key.
    pub async fn userinfo(
        &self,
        access_token: &str,
        as_dpop: bool,
        dpop: &DpopRequest,
    ) -> Result<UserInfo, OidcError> {
        let unknown = || match as_dpop {
            true => OidcError::InvalidDpopToken("the access token is invalid"),
            false => OidcError::InvalidToken,
        };
        let (token, grant, account) = self.access(access_token).await?.ok_or_else(unknown)?;
        match (&token.jkt, as_dpop) {
            (Some(bound), true) => {
                let proven = self.dpop_key(dpop, Some(access_token)).await?;
                if proven.as_ref() != Some(bound) {
                    return Err(OidcError::InvalidDpopProof(
                        "the proof is not by the key the token is bound to".into(),
                    ));
                }
            }
            // A stolen DPoP-bound token passed off as a bearer token.
            (Some(_), false) => {
                return Err(OidcError::InvalidDpopToken(
                    "the access token is DPoP-bound: send it with the DPoP scheme and a proof",
                ))
            }
            (None, true) => {
                return Err(OidcError::InvalidDpopToken(
                    "the access token is not DPoP-bound",
                ))
            }
            (None, false) => {}
        }
        let profile = grant.scopes.iter().any(|s| s == "profile");
        Ok(UserInfo {
            sub: account.subject.clone(),
            preferred_username: profile.then(|| account.username.clone()),
            name: profile.then_some(account.display_name),
        })
    }

    /// The token, grant and account behind a live access token (none while
    /// the account is disabled).
    async fn access(
        &self,
        access_token: &str,
    ) -> Result<Option<(IssuedToken, Grant, Account)>, StoreError> {
        let Some((token, _)) = self
            .load::<IssuedToken>(kinds::ACCESS_TOKEN, &secret_digest(access_token))
            .await?
        else {
            return Ok(None);
        };
        let Some((grant, _)) = self.grant(&token.grant_key).await? else {
            return Ok(None);
        };
        let account = self.accounts.account_by_id(grant.account_id).await?;
        Ok(account.map(|account| (token, grant, account)))
    }

    /// `POST /oauth2/revoke` (RFC 7009): a refresh token takes its whole
    /// grant with it; an access token only itself. Unknown tokens, and
    /// tokens of other clients, are answered alike (and left alone).
    /// A DPoP proof sent along must hold (it is checked as at the token
    /// endpoint); none is needed.
    pub async fn revoke(
        &self,
        credentials: &ClientCredentials,
        token: &str,
        caller: &Caller,
        dpop: &DpopRequest,
    ) -> Result<(), OidcError> {
        self.limits.token.check(&ip_key(caller.ip)).await?;
        let client = self.authenticate_client(credentials).await?;
        self.dpop_key(dpop, None).await?;
        let key = secret_digest(token);
        for kind in [kinds::REFRESH_TOKEN, kinds::ACCESS_TOKEN] {
            let Some((stored, _)) = self.load::<IssuedToken>(kind, &key).await? else {
                continue;
            };
            if stored.client_id != client.id {
                return Ok(());
            }
            if kind == kinds::REFRESH_TOKEN {
                self.revoke_grant(&stored.grant_key, caller).await?;
            }
            self.store.remove_key(kind, &key).await?;
            return Ok(());
        }
        Ok(())
    }
}
