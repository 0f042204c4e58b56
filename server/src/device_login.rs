//! `qrlogin device-login`: a client of an OpenID Connect provider's device
//! flow (RFC 8628), standing in for a TV or a CLI. It discovers the
//! endpoints, asks for a device code, draws the QR of the verification URL
//! in the terminal (Unicode half blocks: two rows of modules per line),
//! polls the token endpoint as RFC 8628 §3.5 says, and prints who signed
//! in. It talks to the provider over HTTP like any other client: nothing
//! of the server's own code runs here.

use std::time::Duration;

use qrcode::{render::unicode::Dense1x2, QrCode};
use serde::Deserialize;

use crate::config::DeviceLoginArgs;

type BoxError = Box<dyn std::error::Error>;

#[derive(Deserialize)]
struct Discovery {
    device_authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
}

#[derive(Deserialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: u64,
    interval: Option<u64>,
}

#[derive(Deserialize)]
struct Tokens {
    access_token: String,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct UserInfo {
    sub: String,
    preferred_username: Option<String>,
    name: Option<String>,
}

/// The QR of `text` for a terminal, light modules as spaces: dark on light
/// with a quiet zone, whatever the terminal's colours.
fn terminal_qr(text: &str) -> Result<String, BoxError> {
    let code = QrCode::new(text.as_bytes())?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .build())
}

pub async fn run(args: DeviceLoginArgs) -> Result<(), BoxError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("qrlogin-device-login/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let issuer = args.issuer.trim_end_matches('/');
    let discovery: Discovery = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;

    let mut form = vec![
        ("client_id", args.client_id.clone()),
        ("scope", args.scope.clone()),
    ];
    if let Some(secret) = &args.client_secret {
        form.push(("client_secret", secret.clone()));
    }
    let response = http
        .post(&discovery.device_authorization_endpoint)
        .form(&form)
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(oauth_error(response).await.into());
    }
    let device: DeviceAuthorization = response.json().await?;
    let url = device
        .verification_uri_complete
        .clone()
        .unwrap_or_else(|| device.verification_uri.clone());
    println!("{}", terminal_qr(&url)?);
    println!("Scan the code with a phone signed in to qrlogin, or open");
    println!("  {}", device.verification_uri);
    println!("and enter the code  {}", device.user_code);
    println!("Check that your phone shows the same code before you approve.");
    println!();

    let mut interval = Duration::from_secs(device.interval.unwrap_or(5).max(1));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(device.expires_in);
    let mut poll = vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:device_code".to_owned(),
        ),
        ("device_code", device.device_code.clone()),
        ("client_id", args.client_id.clone()),
    ];
    if let Some(secret) = &args.client_secret {
        poll.push(("client_secret", secret.clone()));
    }
    let tokens: Tokens = loop {
        tokio::time::sleep(interval).await;
        if tokio::time::Instant::now() > deadline {
            return Err("the code expired before it was approved; run the command again".into());
        }
        let response = http
            .post(&discovery.token_endpoint)
            .form(&poll)
            .send()
            .await?;
        if response.status().is_success() {
            break response.json().await?;
        }
        let error: OAuthErrorBody = response.json().await?;
        match error.error.as_str() {
            "authorization_pending" => {}
            // RFC 8628 §3.5: every slow_down adds 5 seconds for good.
            "slow_down" => interval += Duration::from_secs(5),
            "access_denied" => return Err("the sign-in was denied on the phone".into()),
            "expired_token" => {
                return Err("the code expired before it was approved; run the command again".into())
            }
            other => {
                return Err(format!(
                    "the server refused: {other}: {}",
                    error.error_description.unwrap_or_default()
                )
                .into())
            }
        }
    };

    let user: UserInfo = http
        .get(&discovery.userinfo_endpoint)
        .bearer_auth(&tokens.access_token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let name = user.name.unwrap_or_else(|| user.sub.clone());
    match user.preferred_username {
        Some(username) => println!("Signed in as {name} ({username})"),
        None => println!("Signed in as {name} (subject {})", user.sub),
    }
    Ok(())
}

async fn oauth_error(response: reqwest::Response) -> String {
    let status = response.status();
    match response.json::<OAuthErrorBody>().await {
        Ok(body) => format!(
            "the server refused: {}: {}",
            body.error,
            body.error_description.unwrap_or_default()
        ),
        Err(_) => format!("the server answered {status}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_terminal_qr_is_half_blocks() {
        let qr = super::terminal_qr("http://localhost:3000/device?user_code=BCDF-GHJK").unwrap();
        assert!(qr.lines().count() > 10);
        assert!(qr.contains('▀') || qr.contains('▄') || qr.contains('█'));
    }
}
