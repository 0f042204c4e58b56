//! Checking an authorization request (OpenID Connect Core §3.1.2.1) once
//! its client and `redirect_uri` are known to be trusted: every parameter
//! the provider reads, and the typed error (RFC 6749 §4.1.2.1, OpenID
//! Connect Core §3.1.2.6) for the first one that is wrong. What a request
//! that must not go back to its client says is [`Untrusted`]. The HTTP
//! layer renders both: an error redirect, or a page in the person's
//! language.

use serde::Deserialize;

use super::{
    account::Username,
    oidc::{granted_scopes, plausible_challenge},
};

/// Request values are echoed and stored: keep them bounded.
const MAX_PARAM: usize = 512;

/// The authorization request's parameters, as sent (OpenID Connect Core
/// §3.1.2.1), by GET in the query or by POST in a form body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizeParams {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub response_mode: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
    /// The person's preferred languages for the pages, best first.
    pub ui_locales: Option<String>,
    /// The account the client expects (a username here): only its phone
    /// may approve.
    pub login_hint: Option<String>,
}

/// Why a request is not sent back to the client at all (its
/// `redirect_uri` cannot be trusted): a page on qrlogin says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untrusted {
    /// No `client_id`, or one nobody registered.
    UnknownClient,
    /// A `redirect_uri` the client did not register (compared exactly).
    UnregisteredRedirect { client_name: String },
}

/// The `error` of an error redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizeErrorCode {
    InvalidRequest,
    UnsupportedResponseType,
    InvalidScope,
    LoginRequired,
    ConsentRequired,
    RequestNotSupported,
    RequestUriNotSupported,
}

impl AuthorizeErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::RequestNotSupported => "request_not_supported",
            Self::RequestUriNotSupported => "request_uri_not_supported",
        }
    }
}

/// An error that goes back to the client's (trusted) `redirect_uri`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorizeError {
    pub code: AuthorizeErrorCode,
    /// `error_description`: for the client's developer, in English.
    pub description: &'static str,
}

impl AuthorizeError {
    const fn new(code: AuthorizeErrorCode, description: &'static str) -> Self {
        Self { code, description }
    }

    fn invalid(description: &'static str) -> Self {
        Self::new(AuthorizeErrorCode::InvalidRequest, description)
    }
}

/// What `prompt` asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// Answer without showing anything, or with an error.
    pub none: bool,
    /// A fresh sign-in even where the browser is signed in.
    pub login: bool,
}

/// A request whose parameters are all acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRequest {
    pub scopes: Vec<String>,
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    /// `max_age`, in milliseconds.
    pub max_age_ms: Option<u64>,
    /// `login_hint`, where it can be a username (as a username reads):
    /// a hint that cannot name an account here is no hint.
    pub login_hint: Option<String>,
}

/// Checks `params` for a client whose `redirect_uri` is trusted; `public`:
/// the client has no secret, so PKCE is required. The first wrong
/// parameter decides the error, in the order the checks read here.
pub fn check_request(
    params: &AuthorizeParams,
    public: bool,
) -> Result<CheckedRequest, AuthorizeError> {
    use AuthorizeErrorCode as Code;
    let bounded = |value: &Option<String>| value.as_deref().is_none_or(|s| s.len() <= MAX_PARAM);
    if !bounded(&params.state) || !bounded(&params.nonce) {
        return Err(AuthorizeError::invalid(
            "state and nonce are at most 512 characters",
        ));
    }
    // Request objects are not supported: refused rather than ignored, since
    // the parameters that matter may be only inside them.
    if params.request_uri.is_some() {
        return Err(AuthorizeError::new(
            Code::RequestUriNotSupported,
            "request_uri is not supported",
        ));
    }
    if params.request.is_some() {
        return Err(AuthorizeError::new(
            Code::RequestNotSupported,
            "request objects are not supported",
        ));
    }
    if params.response_type.as_deref() != Some("code") {
        return Err(AuthorizeError::new(
            Code::UnsupportedResponseType,
            "only response_type=code is supported",
        ));
    }
    if params
        .response_mode
        .as_deref()
        .is_some_and(|mode| mode != "query")
    {
        return Err(AuthorizeError::invalid(
            "only response_mode=query is supported",
        ));
    }
    let scopes = params
        .scope
        .as_deref()
        .and_then(granted_scopes)
        .ok_or(AuthorizeError::new(
            Code::InvalidScope,
            "the scope must include openid",
        ))?;
    Ok(CheckedRequest {
        scopes,
        code_challenge: code_challenge(params, public)?,
        prompt: prompt(params.prompt.as_deref())?,
        max_age_ms: max_age_ms(params.max_age.as_deref())?,
        login_hint: params
            .login_hint
            .as_deref()
            .and_then(|hint| Username::parse(hint).ok())
            .map(|name| name.to_string()),
    })
}

/// PKCE (RFC 7636): S256 only; required of public clients.
fn code_challenge(
    params: &AuthorizeParams,
    public: bool,
) -> Result<Option<String>, AuthorizeError> {
    match (
        params.code_challenge.as_deref(),
        params.code_challenge_method.as_deref(),
    ) {
        (Some(challenge), Some("S256")) if plausible_challenge(challenge) => {
            Ok(Some(challenge.to_owned()))
        }
        (Some(_), Some("S256")) => Err(AuthorizeError::invalid(
            "code_challenge is not an S256 challenge",
        )),
        (Some(_), _) => Err(AuthorizeError::invalid(
            "code_challenge_method must be S256 (plain is not accepted)",
        )),
        (None, Some(_)) => Err(AuthorizeError::invalid(
            "code_challenge_method without code_challenge",
        )),
        (None, None) if public => Err(AuthorizeError::invalid(
            "PKCE (code_challenge, S256) is required",
        )),
        (None, None) => Ok(None),
    }
}

fn prompt(prompt: Option<&str>) -> Result<Prompt, AuthorizeError> {
    let values: Vec<&str> = prompt
        .unwrap_or("")
        .split(' ')
        .filter(|v| !v.is_empty())
        .collect();
    let none = values.contains(&"none");
    if none && values.len() > 1 {
        return Err(AuthorizeError::invalid("prompt=none cannot be combined"));
    }
    Ok(Prompt {
        none,
        login: values.contains(&"login"),
    })
}

fn max_age_ms(max_age: Option<&str>) -> Result<Option<u64>, AuthorizeError> {
    match max_age.map(str::parse::<u64>) {
        None => Ok(None),
        Some(Ok(seconds)) => Ok(Some(seconds.saturating_mul(1000))),
        Some(Err(_)) => Err(AuthorizeError::invalid("max_age must be whole seconds")),
    }
}

/// `redirect_uri` with `pairs`, then `state` (as sent) and `iss` (RFC 9207)
/// added to its query; the URI's own query is kept. A URI that does not
/// parse (none is registered that does not) is returned as it is.
pub fn redirect_to(
    redirect_uri: &str,
    pairs: &[(&str, &str)],
    state: Option<&str>,
    issuer: &str,
) -> String {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return redirect_uri.to_owned();
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            query.append_pair(name, value);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", issuer);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> AuthorizeParams {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        serde_urlencoded::from_str(&query).unwrap()
    }

    const GOOD: &[(&str, &str)] = &[
        ("client_id", "c"),
        ("redirect_uri", "https://rp.example/cb"),
        ("response_type", "code"),
        ("scope", "openid profile"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> AuthorizeParams {
        let mut pairs = GOOD.to_vec();
        for (name, value) in extra {
            pairs.retain(|(n, _)| n != name);
            pairs.push((name, value));
        }
        params(&pairs)
    }

    fn code(params: &AuthorizeParams) -> AuthorizeErrorCode {
        check_request(params, false).unwrap_err().code
    }

    #[test]
    fn a_plain_confidential_code_request_passes_without_pkce() {
        let checked = check_request(&with(&[]), false).unwrap();
        assert_eq!(checked.scopes, ["openid", "profile"]);
        assert_eq!(checked.code_challenge, None);
        assert_eq!(checked.prompt, Prompt::default());
        assert_eq!(checked.max_age_ms, None);
    }

    #[test]
    fn each_wrong_parameter_has_its_own_error() {
        use AuthorizeErrorCode as C;
        let mut no_type = GOOD.to_vec();
        no_type.retain(|(n, _)| *n != "response_type");
        assert_eq!(code(&params(&no_type)), C::UnsupportedResponseType);
        assert_eq!(
            code(&with(&[("response_type", "token")])),
            C::UnsupportedResponseType
        );
        assert_eq!(
            code(&with(&[("request_uri", "https://x/r")])),
            C::RequestUriNotSupported
        );
        assert_eq!(
            code(&with(&[("request", "e30.e30.")])),
            C::RequestNotSupported
        );
        assert_eq!(code(&with(&[("scope", "profile")])), C::InvalidScope);
        assert_eq!(
            code(&with(&[("response_mode", "fragment")])),
            C::InvalidRequest
        );
        assert_eq!(code(&with(&[("max_age", "soon")])), C::InvalidRequest);
        assert_eq!(code(&with(&[("prompt", "none login")])), C::InvalidRequest);
        assert_eq!(
            code(&with(&[
                ("code_challenge_method", "plain"),
                ("code_challenge", "x")
            ])),
            C::InvalidRequest
        );
        let long: &'static str = Box::leak("s".repeat(513).into_boxed_str());
        assert_eq!(code(&with(&[("state", long)])), C::InvalidRequest);
    }

    #[test]
    fn public_clients_need_pkce() {
        let error = check_request(&with(&[]), true).unwrap_err();
        assert_eq!(error.code, AuthorizeErrorCode::InvalidRequest);
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        let checked = check_request(
            &with(&[
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ]),
            true,
        )
        .unwrap();
        assert_eq!(checked.code_challenge.as_deref(), Some(challenge));
    }

    #[test]
    fn prompt_and_max_age_are_read() {
        let checked = check_request(
            &with(&[("prompt", "login consent"), ("max_age", "1")]),
            false,
        )
        .unwrap();
        assert!(checked.prompt.login && !checked.prompt.none);
        assert_eq!(checked.max_age_ms, Some(1000));
    }

    #[test]
    fn error_redirects_keep_the_uris_query_and_add_state_and_issuer() {
        let url = redirect_to(
            "https://rp.example/cb?tenant=a",
            &[("error", "login_required")],
            Some("s &1"),
            "https://id.example",
        );
        assert_eq!(
            url,
            "https://rp.example/cb?tenant=a&error=login_required&state=s+%261&iss=https%3A%2F%2Fid.example"
        );
    }
}
