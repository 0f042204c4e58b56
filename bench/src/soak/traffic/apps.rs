//! What the OpenID Connect provider serves apps: the code flow (through the
//! login card and a QR sign-in) with refresh and revocation, and the device
//! flow approved or denied from the phone's page.

use app::api::paths;
use hyper::header;
use serde_json::Value;

use super::{
    check_refused,
    qr::{qr_flow, Decision},
    sleep_s, PhoneSession, Rng, World,
};
use crate::soak::{
    http::{form, query_param, Http, Req},
    log::{DeviceRecord, Invariant},
};

fn client_form<'a>(world: &'a World, pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = pairs.to_vec();
    all.push(("client_id", &world.client.id));
    all.push(("client_secret", &world.client.secret));
    all
}

/// `GET /oauth2/userinfo`: whose tokens these are.
async fn userinfo(http: &mut Http, access_token: &str) -> Option<String> {
    let reply = http
        .until_answered("userinfo", 20.0, || {
            Req::get(paths::USERINFO).bearer(access_token)
        })
        .await;
    let value: Value = reply.json().filter(|_| reply.is(200))?;
    value
        .get("preferred_username")
        .and_then(Value::as_str)
        .map(ToOwned::to_owned)
}

/// The code flow as a web app runs it: authorize → login card → phone →
/// resume → token → userinfo → refresh → revoke.
pub(super) async fn oidc_code(world: &World, rng: &mut Rng, phone: &PhoneSession) {
    let log = &world.log;
    let client = &world.client;
    let state = rng.hex();
    let nonce = rng.hex();
    let query = form(&[
        ("client_id", &client.id),
        ("redirect_uri", &client.redirect_uri),
        ("response_type", "code"),
        ("scope", "openid profile offline_access"),
        ("state", &state),
        ("nonce", &nonce),
    ]);
    let mut browser = world.front();
    let reply = browser
        .until_answered("authorize", 20.0, || {
            Req::get(format!("{}?{query}", paths::AUTHORIZE))
        })
        .await;
    let Some(request) = reply.location().and_then(|l| query_param(l, "request")) else {
        log.unexpected(format!("authorize: {}", reply.describe()));
        return;
    };
    let Some((session, _)) = qr_flow(world, rng, phone, Decision::Approve, Some(&request)).await
    else {
        return;
    };
    let resume = format!(
        "{}?{}",
        paths::AUTHORIZE_RESUME,
        form(&[("request", &request)])
    );
    let reply = browser
        .until_answered("authorize_resume", 20.0, || {
            Req::get(resume.clone()).cookie(&session)
        })
        .await;
    let location = reply.location().unwrap_or_default().to_owned();
    let Some(code) =
        query_param(&location, "code").filter(|_| location.starts_with(&client.redirect_uri))
    else {
        log.unexpected(format!("authorize_resume: {} {location}", reply.describe()));
        return;
    };
    if query_param(&location, "state").as_deref() != Some(state.as_str()) {
        log.unexpected("authorize_resume: the state came back changed");
    }
    // The app's back end.
    let mut app = world.front();
    let exchange = client_form(
        world,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &client.redirect_uri),
        ],
    );
    let reply = app
        .until_answered("token_code", 20.0, || {
            Req::post(paths::TOKEN).form(&exchange)
        })
        .await;
    let Some(tokens) = reply.json::<Value>().filter(|_| reply.is(200)) else {
        log.unexpected(format!("token (code): {}", reply.describe()));
        return;
    };
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let (access, refresh) = (
        text(&tokens, "access_token"),
        text(&tokens, "refresh_token"),
    );
    if let Some(user) = userinfo(&mut app, &access).await {
        log.checked(Invariant::NoSessionWithoutApproval);
        if user != phone.username {
            log.finding(
                Invariant::NoSessionWithoutApproval,
                format!(
                    "the app was given {user}'s tokens; {} approved",
                    phone.username
                ),
            );
        }
    }
    let renew = client_form(
        world,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    );
    let reply = app
        .until_answered("token_refresh", 20.0, || {
            Req::post(paths::TOKEN).form(&renew)
        })
        .await;
    let Some(renewed) = reply.json::<Value>().filter(|_| reply.is(200)) else {
        log.unexpected(format!("token (refresh): {}", reply.describe()));
        return;
    };
    let (access, refresh) = (
        text(&renewed, "access_token"),
        text(&renewed, "refresh_token"),
    );
    let revoke = client_form(world, &[("token", &refresh)]);
    let reply = app
        .until_answered("oauth_revoke", 20.0, || {
            Req::post(paths::REVOKE).form(&revoke)
        })
        .await;
    if !reply.is(200) {
        log.unexpected(format!("revoke: {}", reply.describe()));
        return;
    }
    let again = client_form(
        world,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    );
    check_refused(
        world,
        "a revoked refresh token",
        "token_after_revoke",
        || Req::post(paths::TOKEN).form(&again),
    )
    .await;
    check_refused(
        world,
        "the access token of a revoked grant",
        "userinfo_after_revoke",
        || Req::get(paths::USERINFO).bearer(&access),
    )
    .await;
}

/// `action="…"` of the device page's decide form.
fn decide_action(html: &str) -> Option<String> {
    html.split("action=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|action| action.contains("decide_device"))
        .map(|a| a.replace("&amp;", "&"))
}

/// The phone opens the device's code and approves or denies it; true when
/// it was told that worked.
async fn device_decide(
    world: &World,
    phone: &PhoneSession,
    user_code: &str,
    approve: bool,
) -> bool {
    let log = &world.log;
    let mut http = world.front();
    let page = format!("{}?{}", paths::DEVICE, form(&[("user_code", user_code)]));
    let until = log.now() + 30.0;
    let action = loop {
        let reply = http
            .call(
                "device_page",
                Req::get(page.clone())
                    .bearer(&phone.token)
                    .header(header::ACCEPT, "text/html"),
            )
            .await;
        if let Some(action) = reply
            .is(200)
            .then(|| decide_action(&String::from_utf8_lossy(&reply.body)))
            .flatten()
        {
            break action;
        }
        if log.now() > until {
            log.unexpected(format!(
                "device page without its form: {}",
                reply.describe()
            ));
            return false;
        }
        sleep_s(0.5).await;
    };
    let referer = format!("http://{}{page}", world.front);
    let decision = if approve { "approve" } else { "deny" };
    loop {
        let reply = http
            .call(
                "device_decide",
                Req::post(action.clone())
                    .bearer(&phone.token)
                    .header(header::ACCEPT, "text/html")
                    .header(header::REFERER, referer.clone())
                    .form(&[("user_code", user_code), ("decision", decision)]),
            )
            .await;
        let location = reply.location().unwrap_or_default();
        match reply.status {
            Some(s) if (300..400).contains(&s) && !location.contains("__err") => return true,
            Some(s) if (300..400).contains(&s) || reply.retryable() => {}
            _ => {
                log.unexpected(format!("device decide: {}", reply.describe()));
                return false;
            }
        }
        if log.now() > until {
            log.unexpected(format!(
                "device decide kept failing: {} {location}",
                reply.describe()
            ));
            return false;
        }
        sleep_s(0.5).await;
    }
}

/// RFC 8628 as a TV runs it, the phone approving (or denying) its code.
pub(super) async fn device(world: &World, phone: &PhoneSession, approve: bool) {
    let log = &world.log;
    let mut tv = world.front();
    let start = client_form(world, &[("scope", "openid profile")]);
    let reply = tv
        .until_answered("device_authorization", 20.0, || {
            Req::post(paths::DEVICE_AUTHORIZATION)
                .header(header::USER_AGENT, "SmartTV/1.0 (Linux)")
                .form(&start)
        })
        .await;
    let Some(authorization) = reply.json::<Value>().filter(|_| reply.is(200)) else {
        log.unexpected(format!("device_authorization: {}", reply.describe()));
        return;
    };
    let text = |k: &str| {
        authorization
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (device_code, user_code) = (text("device_code"), text("user_code"));
    let mut interval = authorization
        .get("interval")
        .and_then(Value::as_u64)
        .unwrap_or(5)
        .max(1) as f64;
    let mut record = DeviceRecord {
        approve,
        ..DeviceRecord::default()
    };
    record.told_ok = device_decide(world, phone, &user_code, approve).await;
    let poll = client_form(
        world,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", &device_code),
        ],
    );
    let until = log.now() + 90.0;
    let mut broken = false;
    loop {
        sleep_s(interval).await;
        let reply = tv
            .call("token_device", Req::post(paths::TOKEN).form(&poll))
            .await;
        let error = reply.error_code();
        match (reply.status, error.as_deref()) {
            (Some(200), _) => {
                let tokens: Value = reply.json().unwrap_or_default();
                let access = tokens
                    .get("access_token")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                record.tokens_for = userinfo(&mut tv, &access).await;
                record.outcome = "tokens".into();
                break;
            }
            (Some(400), Some("authorization_pending")) => {}
            (Some(400), Some("slow_down")) => interval += 5.0,
            (Some(400), Some("access_denied")) => {
                record.outcome = "denied".into();
                break;
            }
            (Some(400), Some("expired_token")) => {
                record.outcome = "expired".into();
                break;
            }
            (Some(400), Some("invalid_grant")) if broken => {
                // Tokens issued in an answer a kill broke.
                record.outcome = "tokens (answer lost)".into();
                break;
            }
            _ if reply.retryable() => broken |= reply.status.is_none() || reply.balancer,
            _ => {
                log.unexpected(format!("token (device): {}", reply.describe()));
                record.outcome = reply.describe();
                break;
            }
        }
        if log.now() > until {
            record.outcome = "still pending after 90 s".into();
            break;
        }
    }
    if approve && record.told_ok {
        log.checked(Invariant::ApprovalsKept);
        if !record.outcome.starts_with("tokens") && record.outcome != "expired" {
            log.finding(
                Invariant::ApprovalsKept,
                format!(
                    "a device approval the phone was told succeeded ended {}",
                    record.outcome
                ),
            );
        }
    }
    if let Some(user) = &record.tokens_for {
        log.checked(Invariant::NoSessionWithoutApproval);
        if !approve {
            log.finding(
                Invariant::NoSessionWithoutApproval,
                format!("a device the phone denied got {user}'s tokens"),
            );
        } else if *user != phone.username {
            log.finding(
                Invariant::NoSessionWithoutApproval,
                format!(
                    "a device approved by {} got {user}'s tokens",
                    phone.username
                ),
            );
        }
    }
    log.device(record);
}
