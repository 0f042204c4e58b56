//! Open sign-up (`--registration open`): `/join` takes a username and a
//! display name and leads to the invite page, whose passkey (or password)
//! makes the account; off by default (`invite`): the page is a 404 and its
//! server functions refuse. Rate-limited per address; taken and malformed
//! names are refused and change nothing.

use axum::http::{header, Method, StatusCode};
use server::{config::ServeArgs, domain::audit::AuditEvent, services::invites::Registration};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use app::server_fns::{InviteView, JoinStart};

use crate::{enrolling::*, helpers::*};

fn open(args: ServeArgs) -> ServeArgs {
    ServeArgs {
        registration: Some(Registration::Open),
        ..args
    }
}

/// The `/join` form, from `ip`: where it sent the browser.
async fn join_from(app: &TestApp, username: &str, display_name: &str, ip: [u8; 4]) -> String {
    let response = app
        .send(
            call::<JoinStart>(
                &[("username", username), ("display_name", display_name)],
                None,
            )
            .header(header::ACCEPT, "text/html")
            .peer_ip(ip),
        )
        .await;
    assert!(response.status().is_redirection(), "{}", response.status());
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn join(app: &TestApp, username: &str, display_name: &str) -> String {
    join_from(app, username, display_name, [192, 168, 1, 10]).await
}

/// The invite token a successful `/join` leads to.
fn token_of(location: &str) -> String {
    location
        .strip_prefix("/invite/")
        .unwrap_or_else(|| panic!("not an invite page: {location}"))
        .to_owned()
}

async fn page_status(app: &TestApp, path: &str) -> (StatusCode, String) {
    let response = app
        .send(Call::new(Method::GET, path).header(header::ACCEPT, "text/html"))
        .await;
    let status = response.status();
    (
        status,
        String::from_utf8(body_bytes(response).await).unwrap(),
    )
}

#[tokio::test]
async fn open_registration_makes_an_account_with_a_passkey() {
    let app = test_app_with(open(passkey_server())).await;
    let (status, html) = page_status(&app, "/join").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("name=\"display_name\""), "{html}");
    for page in ["/login", "/m"] {
        let (_, html) = page_status(&app, page).await;
        assert!(html.contains("href=\"/join\""), "{page} links to /join");
    }

    let token = token_of(&join(&app, "Carol", "Carol Ann").await);
    // Nothing is made before the passkey is.
    assert!(app
        .state
        .services
        .accounts
        .account_named("carol")
        .await
        .is_err());
    assert_eq!(
        view(&app, &token, None).await.0,
        InviteView::Ready {
            display_name: "Carol Ann".into(),
            username: "carol".into(),
            site: "localhost:3000".into(),
            passkeys: true,
        }
    );
    let mut key = SoftPasskey::new(true);
    let session = enroll(&app, &token, None, &mut key).await.unwrap();
    let me = account(&app, &session).await.expect("signed in");
    assert_eq!(me.user.username, "carol");
    assert_eq!(me.user.display_name, "Carol Ann");
    assert_eq!(me.passkeys.len(), 1);
    // It signs in with its passkey only.
    assert!(me.password_off);
    let mut other = SoftPasskey::new(true);
    assert_eq!(
        enroll(&app, &token, None, &mut other).await,
        Err(StatusCode::GONE)
    );
    let events = events_of(&app, "carol").await;
    assert!(events.contains(&AuditEvent::AccountJoined), "{events:?}");
    assert!(events.contains(&AuditEvent::PasskeyAdded), "{events:?}");
}

#[tokio::test]
async fn registration_by_invite_refuses_sign_ups() {
    let app = test_app_with(passkey_server()).await;
    let (status, html) = page_status(&app, "/join").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!html.contains("name=\"display_name\""), "{html}");
    for page in ["/login", "/m"] {
        let (_, html) = page_status(&app, page).await;
        assert!(!html.contains("href=\"/join\""), "{page}");
    }
    assert_eq!(
        join(&app, "carol", "Carol").await,
        "/join?failed=registration_closed"
    );
    assert!(app
        .state
        .services
        .accounts
        .list_accounts()
        .await
        .unwrap()
        .is_empty());

    // A sign-up begun while registration was open stops when it closes.
    let open_app = test_app_with(open(ServeArgs {
        database: Some(format!(
            "sqlite://{}",
            app.dir.path().join("qrlogin.db").display()
        )),
        ..passkey_server()
    }))
    .await;
    let token = token_of(&join(&open_app, "carol", "Carol").await);
    assert_eq!(view(&app, &token, None).await.0, InviteView::Gone);
    let refused = app
        .send(call::<app::server_fns::InvitePasskeyOptions>(
            &[("token", &token)],
            None,
        ))
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body = String::from_utf8(body_bytes(refused).await).unwrap();
    assert!(body.contains("registration_closed"), "{body}");
    assert!(app
        .state
        .services
        .accounts
        .list_accounts()
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn sign_ups_are_limited_per_address() {
    let app = test_app_with(open(passkey_server())).await;
    for i in 0..5 {
        let location = join_from(&app, &format!("user{i}"), "", [10, 0, 0, 7]).await;
        token_of(&location);
    }
    assert_eq!(
        join_from(&app, "user5", "", [10, 0, 0, 7]).await,
        "/join?failed=rate_limited"
    );
    // Another address is not held up.
    token_of(&join_from(&app, "user5", "", [10, 0, 0, 8]).await);
}

#[tokio::test]
async fn taken_and_malformed_names_are_refused_and_change_nothing() {
    let app = test_app_with(open(passkey_server())).await;
    app.add_account("alice", "Alice").await;
    assert_eq!(
        join(&app, "Alice", "Mallory").await,
        "/join?failed=username_taken"
    );
    for bad in ["al", "-alice", "alice smith", &"a".repeat(33)] {
        assert_eq!(
            join(&app, bad, "").await,
            "/join?failed=bad_request",
            "{bad}"
        );
    }
    let (_, html) = page_status(&app, "/join?failed=username_taken").await;
    assert!(html.contains("That username is taken"), "{html}");
    // Alice is as she was: her name, her password, no passkey.
    let alice = app
        .state
        .services
        .accounts
        .account_named("alice")
        .await
        .unwrap();
    assert_eq!(alice.display_name, "Alice");
    sign_in(&app, "alice").await;
    assert_eq!(passkey_count(&app, "alice").await, 0);

    // Two sign-ups for one free name: the first to finish gets it.
    let first = token_of(&join(&app, "dave", "Dave").await);
    let second = token_of(&join(&app, "dave", "Other Dave").await);
    let mut one = SoftPasskey::new(true);
    let mut two = SoftPasskey::new(true);
    let (c2, k2) = start(&app, &second, None, &mut two).await.unwrap();
    enroll(&app, &first, None, &mut one).await.unwrap();
    assert_eq!(
        finish(&app, &second, None, &c2, &k2).await,
        Err(StatusCode::CONFLICT)
    );
    let dave = app
        .state
        .services
        .accounts
        .account_named("dave")
        .await
        .unwrap();
    assert_eq!(dave.display_name, "Dave");
    assert_eq!(passkey_count(&app, "dave").await, 1);
}

/// Where passkeys are off, a sign-up sets a password.
#[tokio::test]
async fn without_passkeys_a_sign_up_sets_a_password() {
    let app = test_app_with(open(ServeArgs::default())).await;
    let token = token_of(&join(&app, "erin", "Erin").await);
    let set = app
        .send(
            call::<app::server_fns::EnrollPassword>(
                &[("token", &token), ("password", PASSWORD)],
                None,
            )
            .header(header::ACCEPT, "text/html"),
        )
        .await;
    assert_eq!(set.headers()[header::LOCATION], "/m");
    sign_in(&app, "erin").await;
}
