//! The setup link: while no enabled administrator can sign in, `serve`
//! prints a one-time link (24 h) that enrolls one; a new start replaces
//! it; it dies once used; a server with an administrator makes none.

use axum::http::StatusCode;
use server::{
    domain::{audit::AuditEvent, caller::Caller},
    services::invites::{InviteKind, SETUP_VALID_MS},
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use app::server_fns::InviteView;

use crate::{enrolling::*, helpers::*};

fn at_start() -> Caller {
    Caller::new(None, "qrlogin serve (setup link)")
}

async fn setup_link_enrolls_one_administrator(app: &TestApp) {
    let services = &app.state.services;
    let first = services
        .setup_link("admin", &at_start())
        .await
        .unwrap()
        .expect("no administrator: a setup link");
    assert_eq!(first.revoked, 0);
    assert!(first.made.created_account);
    assert_eq!(first.made.invite.kind, InviteKind::Setup);
    let valid = first.made.invite.expires_at - first.made.invite.created_at;
    assert_eq!(valid, SETUP_VALID_MS);
    let admin = services.accounts.account_named("admin").await.unwrap();
    assert!(!admin.admin, "an administrator only once the link is used");

    // Starting again: a new link, the old one revoked.
    let second = services
        .setup_link("admin", &at_start())
        .await
        .unwrap()
        .expect("still no administrator");
    assert_eq!(second.revoked, 1);
    let old = first.made.token.encode();
    assert_eq!(view(app, &old, None).await.0, InviteView::Gone);
    let token = second.made.token.encode();
    let (page, _) = view(app, &token, None).await;
    assert!(
        matches!(&page, InviteView::Ready { username, .. } if username == "admin"),
        "{page:?}"
    );

    let mut key = SoftPasskey::new(true);
    let session = enroll(app, &token, None, &mut key).await.unwrap();
    let me = account(app, &session).await.expect("signed in");
    assert_eq!(me.user.username, "admin");
    assert_eq!(me.passkeys.len(), 1);
    let admin = services.accounts.account_named("admin").await.unwrap();
    assert!(admin.admin);

    // Used: refused (410 invite_gone), nothing added.
    let mut other = SoftPasskey::new(true);
    assert_eq!(
        enroll(app, &token, None, &mut other).await,
        Err(StatusCode::GONE)
    );
    assert_eq!(passkey_count(app, "admin").await, 1);
    // An administrator can sign in now: no more setup links.
    assert!(services
        .setup_link("admin", &at_start())
        .await
        .unwrap()
        .is_none());
    let events: Vec<AuditEvent> = events_of(app, "admin")
        .await
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                AuditEvent::SetupLinkCreated
                    | AuditEvent::InviteRevoked
                    | AuditEvent::PasskeyAdded
                    | AuditEvent::AdminGranted
                    | AuditEvent::InviteUsed
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            AuditEvent::SetupLinkCreated,
            AuditEvent::InviteRevoked,
            AuditEvent::SetupLinkCreated,
            AuditEvent::PasskeyAdded,
            AuditEvent::AdminGranted,
            AuditEvent::InviteUsed,
        ]
    );
}

#[tokio::test]
async fn the_setup_link_enrolls_one_administrator_on_sqlite() {
    setup_link_enrolls_one_administrator(&test_app_with(passkey_server()).await).await;
}

#[tokio::test]
async fn the_setup_link_enrolls_one_administrator_on_postgres() {
    let Some(apps) = cluster_with(1, passkey_server()).await else {
        return;
    };
    setup_link_enrolls_one_administrator(&apps[0]).await;
}

/// An expired setup link changes nothing.
#[tokio::test]
async fn an_expired_setup_link_changes_nothing() {
    expired_setup_link(&test_app_with(passkey_server()).await).await;
}

#[tokio::test]
async fn an_expired_setup_link_changes_nothing_on_postgres() {
    let Some(apps) = cluster_with(1, passkey_server()).await else {
        return;
    };
    expired_setup_link(&apps[0]).await;
}

async fn expired_setup_link(app: &TestApp) {
    let made = app
        .state
        .services
        .invite("admin", None, InviteKind::Setup, 1, &at_start())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let token = made.token.encode();
    assert_eq!(view(app, &token, None).await.0, InviteView::Gone);
    let mut key = SoftPasskey::new(true);
    assert_eq!(
        enroll(app, &token, None, &mut key).await,
        Err(StatusCode::GONE)
    );
    let admin = app
        .state
        .services
        .accounts
        .account_named("admin")
        .await
        .unwrap();
    assert!(!admin.admin);
    assert_eq!(passkey_count(app, "admin").await, 0);
}

/// An administrator who can sign in (here by password) means no setup
/// link; a disabled one does not count.
#[tokio::test]
async fn a_server_with_an_administrator_makes_no_setup_link() {
    let app = test_app().await;
    let services = &app.state.services;
    app.add_account("root", "Root").await;
    services.set_admin("root", true, &at_start()).await.unwrap();
    assert!(services
        .setup_link("admin", &at_start())
        .await
        .unwrap()
        .is_none());
    assert!(services.accounts.account_named("admin").await.is_err());

    services.disable_account("root", &at_start()).await.unwrap();
    let link = services.setup_link("admin", &at_start()).await.unwrap();
    assert!(link.is_some(), "a disabled administrator cannot sign in");
}

/// Where passkeys are off, the setup link sets the administrator's
/// password.
#[tokio::test]
async fn without_passkeys_the_setup_link_sets_a_password() {
    use axum::http::header;
    let app = test_app().await;
    let link = app
        .state
        .services
        .setup_link("boss", &at_start())
        .await
        .unwrap()
        .unwrap();
    let token = link.made.token.encode();
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
    sign_in(&app, "boss").await;
    let boss = app
        .state
        .services
        .accounts
        .account_named("boss")
        .await
        .unwrap();
    assert!(boss.admin);
}

/// `qrlogin serve` with no administrator prints the link (and logs it);
/// started again, a new one, the old revoked; the link opens the page.
#[tokio::test]
async fn serve_prints_a_setup_link_that_opens() {
    use std::io::BufRead;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qrlogin.db").display().to_string();
    let client = reqwest::Client::new();
    let start = || {
        let mut server = Instance::start_logging(
            &["--database".into(), db.clone()],
            std::process::Stdio::piped(),
        );
        let stdout = server.child.stdout.take().unwrap();
        let (lines, read) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        (server, read)
    };
    // The link, logged and printed on a line of its own (the two may come
    // in either order), and every line read.
    let link_in = |read: &std::sync::mpsc::Receiver<String>| {
        let mut seen: Vec<String> = Vec::new();
        let mut logged: Option<String> = None;
        loop {
            if let Some(link) = &logged {
                if seen.iter().any(|line| line.trim() == link) {
                    return (link.clone(), seen);
                }
            }
            let line = read
                .recv_timeout(std::time::Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("no setup link in {seen:#?}"));
            if line.contains("setup link:") {
                let at = line.find("http://").unwrap();
                logged = Some(line[at..].split_whitespace().next().unwrap().to_owned());
            }
            seen.push(line);
        }
    };

    let (mut server, read) = start();
    server.ready(&client).await;
    let (first, _) = link_in(&read);
    assert!(
        first.starts_with("http://127.0.0.1:3000/invite/"),
        "{first}"
    );
    let path = &first["http://127.0.0.1:3000".len()..];
    let page = client.get(server.url(path)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Set up qrlogin for Administrator"), "{html}");
    server.terminate();

    let (mut server, read) = start();
    server.ready(&client).await;
    let (second, seen) = link_in(&read);
    assert_ne!(first, second);
    assert!(
        seen.iter()
            .any(|line| line.contains("previous setup link was revoked")),
        "{seen:#?}"
    );
    let page = client.get(server.url(path)).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("This invite cannot be used"), "{html}");
    server.terminate();
}
