//! "Add another phone": a signed-in phone with a fresh proof shows a
//! one-time link (5 minutes); the first phone to open it is shown a number
//! that the first phone must pick among three; only then does the second
//! phone enroll its own passkey on the account. A wrong pick ends the
//! link; a second scanner, another account, a stale session and an
//! expired link get nowhere.

use axum::http::{header, Method, StatusCode};
use server::domain::{audit::AuditEvent, caller::Caller, secret::Secret};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use app::server_fns::{InviteView, LinkView, LoadLink, PickLinkNumber, StartLink};

use crate::{enrolling::*, helpers::*};

/// A form post of a signed-in phone: where it sent the browser.
async fn form(app: &TestApp, phone: &Phone, call: Call) -> String {
    let response = app
        .send(phone.auth(call.header(header::ACCEPT, "text/html")))
        .await;
    assert!(response.status().is_redirection(), "{}", response.status());
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

/// "Add another phone": the link's token, or where the phone was sent.
async fn start_link(app: &TestApp, phone: &Phone) -> Result<String, String> {
    let location = form(app, phone, call::<StartLink>(&[], None)).await;
    match location.strip_prefix("/m/link/") {
        Some(token) => Ok(token.to_owned()),
        None => Err(location),
    }
}

async fn link_view(app: &TestApp, phone: &Phone, token: &str) -> LinkView {
    let response = app
        .send(phone.auth(call::<LoadLink>(&[("token", token)], None)))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    json(response).await
}

async fn pick(app: &TestApp, phone: &Phone, token: &str, number: u8) -> String {
    let number = number.to_string();
    form(
        app,
        phone,
        call::<PickLinkNumber>(&[("token", token), ("number", &number)], None),
    )
    .await
}

/// The second phone opens the link: its number and its claim cookie.
async fn open_link(app: &TestApp, token: &str) -> (u8, String) {
    let (page, cookie) = view(app, token, None).await;
    let InviteView::LinkNumber {
        number,
        display_name,
    } = page
    else {
        panic!("a number to show: {page:?}");
    };
    assert_eq!(display_name, "Alice");
    (number, cookie.expect("a claim cookie"))
}

fn choices(view: LinkView) -> Vec<u8> {
    match view {
        LinkView::Scanned { choices } => choices,
        other => panic!("three numbers to pick from: {other:?}"),
    }
}

async fn phone_events(app: &TestApp) -> Vec<AuditEvent> {
    events_of(app, "alice")
        .await
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                AuditEvent::PhoneLinkCreated
                    | AuditEvent::PhoneLinkRefused
                    | AuditEvent::PhoneLinked
                    | AuditEvent::PasskeyAdded
            )
        })
        .collect()
}

#[tokio::test]
async fn a_second_phone_joins_the_account_by_number() {
    let app = test_app_with(passkey_server()).await;
    // Signed in with the password just now: a fresh proof.
    let first = app.phone("alice", "Alice").await;
    let bob = app.phone("bob", "Bob").await;
    let token = start_link(&app, &first).await.unwrap();
    assert_eq!(
        link_view(&app, &first, &token).await,
        LinkView::Waiting {
            url: format!("{ORIGIN}/invite/{token}")
        }
    );
    // The page: a server-drawn QR that looks again by itself.
    let page = app
        .send(first.auth(
            Call::new(Method::GET, &format!("/m/link/{token}")).header(header::ACCEPT, "text/html"),
        ))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = String::from_utf8(body_bytes(page).await).unwrap();
    assert!(html.contains("data-testid=\"link-qr\""), "{html}");
    assert!(html.contains("<svg"), "{html}");
    assert!(html.contains("http-equiv=\"refresh\""), "{html}");
    // Only the session that made it sees it.
    assert_eq!(link_view(&app, &bob, &token).await, LinkView::Gone);

    let (number, claim) = open_link(&app, &token).await;
    let offered = choices(link_view(&app, &first, &token).await);
    assert_eq!(offered.len(), 3);
    assert!(offered.contains(&number));
    // A second scanner is refused; the claiming phone cannot enroll yet.
    assert_eq!(view(&app, &token, None).await.0, InviteView::Gone);
    let mut second = SoftPasskey::new(true);
    assert_eq!(
        start(&app, &token, Some(&claim), &mut second).await,
        Err(StatusCode::GONE)
    );
    // Another account's session cannot pick the number.
    let refused = app
        .send(bob.auth(call::<PickLinkNumber>(
            &[("token", &token), ("number", &number.to_string())],
            None,
        )))
        .await;
    assert_eq!(refused.status(), StatusCode::GONE);
    assert_eq!(choices(link_view(&app, &first, &token).await), offered);

    assert_eq!(
        pick(&app, &first, &token, number).await,
        format!("/m/link/{token}")
    );
    assert_eq!(link_view(&app, &first, &token).await, LinkView::Matched);
    // Still nobody but the claiming phone.
    assert_eq!(view(&app, &token, None).await.0, InviteView::Gone);
    let mut stranger = SoftPasskey::new(true);
    assert_eq!(
        enroll(&app, &token, None, &mut stranger).await,
        Err(StatusCode::GONE)
    );
    assert_eq!(
        view(&app, &token, Some(&claim)).await.0,
        InviteView::LinkReady {
            display_name: "Alice".into(),
            username: "alice".into(),
            site: "localhost:3000".into(),
        }
    );
    let session = enroll(&app, &token, Some(&claim), &mut second)
        .await
        .unwrap();
    let me = account(&app, &session).await.expect("signed in");
    assert_eq!(me.user.username, "alice");
    assert_eq!(me.passkeys.len(), 1);
    // Used up.
    assert_eq!(link_view(&app, &first, &token).await, LinkView::Gone);
    assert_eq!(view(&app, &token, Some(&claim)).await.0, InviteView::Gone);
    assert_eq!(
        phone_events(&app).await,
        [
            AuditEvent::PhoneLinkCreated,
            AuditEvent::PasskeyAdded,
            AuditEvent::PhoneLinked
        ]
    );
}

#[tokio::test]
async fn a_wrong_number_ends_the_link() {
    let app = test_app_with(passkey_server()).await;
    let first = app.phone("alice", "Alice").await;
    let token = start_link(&app, &first).await.unwrap();
    let (number, claim) = open_link(&app, &token).await;
    let wrong = choices(link_view(&app, &first, &token).await)
        .into_iter()
        .find(|n| *n != number)
        .unwrap();
    assert_eq!(
        pick(&app, &first, &token, wrong).await,
        format!("/m/link/{token}?wrong=1")
    );
    assert_eq!(link_view(&app, &first, &token).await, LinkView::Gone);
    // One try: the right number no longer helps.
    let again = app
        .send(first.auth(call::<PickLinkNumber>(
            &[("token", &token), ("number", &number.to_string())],
            None,
        )))
        .await;
    assert_eq!(again.status(), StatusCode::GONE);
    assert_eq!(view(&app, &token, Some(&claim)).await.0, InviteView::Gone);
    let mut second = SoftPasskey::new(true);
    assert_eq!(
        enroll(&app, &token, Some(&claim), &mut second).await,
        Err(StatusCode::GONE)
    );
    assert_eq!(passkey_count(&app, "alice").await, 0);
    assert_eq!(
        phone_events(&app).await,
        [AuditEvent::PhoneLinkCreated, AuditEvent::PhoneLinkRefused]
    );
}

#[tokio::test]
async fn an_expired_link_goes_nowhere() {
    let app = test_app_with(passkey_server()).await;
    let first = app.phone("alice", "Alice").await;
    let services = &app.state.services;
    let current = services
        .accounts
        .current(&Secret::decode(&first.token).unwrap())
        .await
        .unwrap()
        .unwrap();
    let (token, _) = services
        .passkeys
        .start_link_valid_for(&current, 1, &Caller::new(None, "test"))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let token = token.encode();
    assert_eq!(link_view(&app, &first, &token).await, LinkView::Gone);
    assert_eq!(view(&app, &token, None).await.0, InviteView::Gone);
    let mut second = SoftPasskey::new(true);
    assert_eq!(
        enroll(&app, &token, None, &mut second).await,
        Err(StatusCode::GONE)
    );
    assert_eq!(passkey_count(&app, "alice").await, 0);
}

/// A session without a fresh proof (a computer signed in by QR) is sent
/// back to confirm first, and no link is made; where passkeys are off
/// there is no linking.
#[tokio::test]
async fn linking_needs_a_fresh_proof_and_passkeys() {
    let app = test_app_with(passkey_server()).await;
    let phone = app.phone("alice", "Alice").await;
    let desktop = app.signed_in_desktop(&phone).await;
    let by_qr = Phone {
        token: desktop.split_once('=').unwrap().1.to_owned(),
    };
    assert_eq!(
        start_link(&app, &by_qr).await,
        Err("/m?choices=confirm_first".to_owned())
    );
    assert!(app.state.services.invites().await.unwrap().is_empty());
    assert_eq!(phone_events(&app).await, []);

    let ip_app = test_app().await;
    let phone = ip_app.phone("alice", "Alice").await;
    assert_eq!(
        start_link(&ip_app, &phone).await,
        Err("/m?choices=passkeys_unavailable".to_owned())
    );
}
