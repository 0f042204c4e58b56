//! The admin console, `/admin…`: its pages are an administrator's only
//! (the anonymous are sent to sign in, anyone else gets a 403), and its
//! forms change nothing unless an administrator's own page sent them
//! (CSRF token, same origin) after a fresh "Confirm it's you". A secret an
//! action makes (an invite) is shown on the next page view, once.

use axum::http::{header, Method, StatusCode};
use leptos::server_fn::ServerFn;
use server::{config::ServeArgs, domain::caller::Caller};

use crate::helpers::*;
use app::admin::fns::*;

/// Every console page (`root` is the administrator below).
const PAGES: [&str; 6] = [
    "/admin",
    "/admin/accounts",
    "/admin/accounts/root",
    "/admin/apps",
    "/admin/audit",
    "/admin/tokens",
];

/// A browser signed in as one account (its session cookie).
struct Browser {
    cookie: String,
}

impl Browser {
    fn get(&self, path: &str) -> Call {
        Call::new(Method::GET, path)
            .header(header::ACCEPT, "text/html")
            .header(header::USER_AGENT, DESKTOP_UA)
            .cookie(&self.cookie)
    }

    /// A plain form's post from this site's own page.
    fn form<F: ServerFn>(&self, pairs: &[(&str, &str)]) -> Call {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        Call::new(Method::POST, F::url())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "text/html")
            .header(header::USER_AGENT, DESKTOP_UA)
            .header("sec-fetch-site", "same-origin")
            .cookie(&self.cookie)
            .body(body.into_bytes())
    }
}

fn operator() -> Caller {
    Caller::new(None, "test operator")
}

/// `root` (an administrator, password only) on a desktop signed in by
/// QR, `mallory` (not one) and `bob` (the account they act on) signed in
/// with their passwords.
async fn console_app() -> (TestApp, Browser, Browser, Browser) {
    console_app_on(None).await
}

/// The same, on the database `database` (SQLite when `None`).
async fn console_app_on(database: Option<String>) -> (TestApp, Browser, Browser, Browser) {
    let app = test_app_with(ServeArgs {
        database,
        ..ServeArgs::default()
    })
    .await;
    let services = &app.state.services;
    let root = app.phone("root", "Root").await;
    services.set_admin("root", true, &operator()).await.unwrap();
    let mallory = app.phone("mallory", "Mallory").await;
    let bob = app.phone("bob", "Bob").await;
    let browser = |phone: Phone| Browser {
        cookie: format!("qrlogin_session={}", phone.token),
    };
    // The administrator's desktop signs in the qrlogin way (a QR sign-in
    // proves nothing of its own: changes wait for "Confirm it's you").
    let desktop = Browser {
        cookie: app.signed_in_desktop(&root).await,
    };
    (app, desktop, browser(mallory), browser(bob))
}

async fn page(app: &TestApp, call: Call) -> (StatusCode, String) {
    let response = app.send(call).await;
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .map(|l| l.to_str().unwrap().to_owned());
    let body = String::from_utf8(body_bytes(response).await).unwrap();
    (status, location.unwrap_or(body))
}

/// The value of the first `name="{name}"` input of `html`.
fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!(r#"name="{name}""#))?;
    let start = at + html[at..].find("value=\"")? + "value=\"".len();
    let end = start + html[start..].find('"')?;
    Some(html[start..end].to_owned())
}

/// The console page's CSRF token, as its forms carry it.
async fn csrf(app: &TestApp, admin: &Browser) -> String {
    let (status, html) = page(app, admin.get("/admin/accounts")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    input_value(&html, "csrf").expect("the forms carry a CSRF token")
}

/// The text of the element marked `data-testid="{id}"`, if any.
fn testid_text(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!(r#"data-testid="{id}""#))?;
    let start = at + html[at..].find('>')? + 1;
    let end = start + html[start..].find('<')?;
    Some(html[start..end].to_owned())
}

/// What the forms could change, to check that a refused one did not.
async fn snapshot(app: &TestApp) -> String {
    let services = &app.state.services;
    let accounts: Vec<_> = services
        .accounts
        .list_accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.username, a.admin, a.disabled))
        .collect();
    let apps: Vec<_> = services
        .apps()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.client_id)
        .collect();
    let tokens: Vec<_> = services
        .admin_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    let bob = services.account_detail("bob").await.unwrap();
    format!(
        "{accounts:?} {apps:?} {tokens:?} sessions={} invites={}",
        bob.sessions.len(),
        bob.invites.len()
    )
}

/// Every console form, filled in (all but the CSRF token) to act on bob,
/// the app `client` and the token `token`.
fn every_form(
    client: &str,
    token: &str,
    session: &str,
) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let bob = || ("username", "bob".to_owned());
    vec![
        (
            AdminCreateAccount::url(),
            vec![
                ("username", "carol".into()),
                ("display_name", "Carol".into()),
                ("admin", "on".into()),
            ],
        ),
        (AdminInvite::url(), vec![bob()]),
        (AdminReset::url(), vec![bob(), ("all", "on".into())]),
        (AdminDisable::url(), vec![bob()]),
        (AdminEnable::url(), vec![bob()]),
        (AdminSetAdmin::url(), vec![bob(), ("admin", "on".into())]),
        (AdminRemoveAccount::url(), vec![bob()]),
        (
            AdminRevokeSession::url(),
            vec![bob(), ("session_id", session.to_owned())],
        ),
        (
            AdminRemovePasskey::url(),
            vec![bob(), ("passkey_id", "AAAA".into())],
        ),
        (
            AdminRevokeGrant::url(),
            vec![bob(), ("client_id", client.to_owned())],
        ),
        (
            AdminAddApp::url(),
            vec![
                ("name", "Wiki".into()),
                ("redirect_uris", "https://wiki.example/callback".into()),
                ("kind", "confidential".into()),
            ],
        ),
        (
            AdminRotateSecret::url(),
            vec![("client_id", client.to_owned())],
        ),
        (
            AdminRemoveApp::url(),
            vec![("client_id", client.to_owned())],
        ),
        (
            AdminAddToken::url(),
            vec![
                ("name", "ci".into()),
                ("scope", "write".into()),
                ("valid_days", "30".into()),
            ],
        ),
        (AdminRevokeToken::url(), vec![("id", token.to_owned())]),
    ]
}

/// What the forms act on besides bob: an app and an admin API token.
async fn app_and_token(app: &TestApp) -> (String, String, String) {
    let services = &app.state.services;
    let client = services
        .oidc
        .add_client(
            "Grafana",
            &["http://localhost:4000/callback".to_owned()],
            false,
        )
        .await
        .unwrap();
    let (token, _) = services
        .add_admin_token(
            &operator(),
            "ops",
            server::services::admin::TokenScope::Read,
            30,
        )
        .await
        .unwrap();
    let bob = services.account_detail("bob").await.unwrap();
    (client.client_id, token.id, bob.sessions[0].id.clone())
}

fn with<'a>(
    pairs: &'a [(&'static str, String)],
    extra: &[(&'static str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    pairs
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(extra.iter().copied())
        .collect()
}

#[tokio::test]
async fn every_console_page_is_an_administrators_only() {
    pages_for_administrators_only(console_app().await).await;
}

#[tokio::test]
async fn every_console_page_is_an_administrators_only_on_postgres() {
    let Some(database) = server::storage::testing::fresh_postgres().await else {
        return;
    };
    pages_for_administrators_only(console_app_on(Some(database)).await).await;
}

async fn pages_for_administrators_only(
    (app, root, mallory, _): (TestApp, Browser, Browser, Browser),
) {
    let anonymous = Browser {
        cookie: "lang=en".into(),
    };
    for path in PAGES {
        let (status, location) = page(&app, anonymous.get(path)).await;
        assert!(status.is_redirection(), "{path}: {status}");
        assert!(
            location.starts_with("/login?next=/admin"),
            "{path}: {location}"
        );

        let (status, html) = page(&app, mallory.get(path)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {html}");
        assert!(html.contains("Administrators only"), "{path}");
        assert!(!html.contains(r#"name="csrf""#), "{path}");

        let (status, html) = page(&app, root.get(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        assert_eq!(html.matches("<h1").count(), 1, "{path}: one h1");
        assert!(html.contains(r#"data-testid="admin-nav""#), "{path}");
    }
    // The console speaks Chinese too.
    let chinese = Browser {
        cookie: format!("{}; lang=zh-CN", root.cookie),
    };
    let (_, html) = page(&app, chinese.get("/admin/accounts")).await;
    assert!(html.contains("创建账户"), "{html}");
    // An administrator disabled is as good as signed out.
    app.state
        .services
        .disable_account("mallory", &operator())
        .await
        .unwrap();
    let (status, _) = page(&app, mallory.get("/admin")).await;
    assert!(status.is_redirection());
    // No such account: a page that says so.
    let (status, _) = page(&app, root.get("/admin/accounts/nobody")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_console_form_refuses_others_forgeries_and_other_sites() {
    forms_refuse_forgeries(console_app().await).await;
}

#[tokio::test]
async fn every_console_form_refuses_others_forgeries_and_other_sites_on_postgres() {
    let Some(database) = server::storage::testing::fresh_postgres().await else {
        return;
    };
    forms_refuse_forgeries(console_app_on(Some(database)).await).await;
}

async fn forms_refuse_forgeries((app, root, mallory, _): (TestApp, Browser, Browser, Browser)) {
    let (client, token, session) = app_and_token(&app).await;
    let csrf = csrf(&app, &root).await;
    // Confirmed: only the CSRF token and the origin stand in the way.
    let confirm = root.form::<app::server_fns::ConfirmWithPassword>(&[
        ("password", PASSWORD),
        ("next", "/admin"),
    ]);
    assert_eq!(
        page(&app, confirm).await,
        (StatusCode::FOUND, "/admin".into())
    );
    let before = snapshot(&app).await;
    for (url, pairs) in every_form(&client, &token, &session) {
        let post = |browser: &Browser, extra: &[(&'static str, &str)]| {
            let body: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(with(&pairs, extra))
                .finish();
            Call::new(Method::POST, url)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ACCEPT, "text/html")
                .cookie(&browser.cookie)
                .body(body.into_bytes())
        };
        let refused = [
            // Not an administrator, with the administrator's token or none.
            post(&mallory, &[("csrf", &csrf)]).header("sec-fetch-site", "same-origin"),
            post(&mallory, &[]).header("sec-fetch-site", "same-origin"),
            // The administrator's browser, without the token, or a wrong one.
            post(&root, &[]).header("sec-fetch-site", "same-origin"),
            post(&root, &[("csrf", "forged")]).header("sec-fetch-site", "same-origin"),
            post(&root, &[("csrf", &csrf[1..])]).header("sec-fetch-site", "same-origin"),
            // With the token, from another site.
            post(&root, &[("csrf", &csrf)]).header("sec-fetch-site", "cross-site"),
            post(&root, &[("csrf", &csrf)]).header(header::ORIGIN, "https://evil.example"),
        ];
        for (i, call) in refused.into_iter().enumerate() {
            let (status, body) = page(&app, call).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{url} #{i}: {body}");
            assert_eq!(snapshot(&app).await, before, "{url} #{i} changed something");
        }
    }
    // Another session's token is not this one's.
    let other = Browser {
        cookie: format!("qrlogin_session={}", sign_in(&app, "root").await),
    };
    let call = other.form::<AdminDisable>(&[("username", "bob"), ("csrf", &csrf)]);
    assert_eq!(page(&app, call).await.0, StatusCode::FORBIDDEN);
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn changes_wait_for_confirm_its_you() {
    let (app, root, _, bob) = console_app().await;
    let (client, token, session) = app_and_token(&app).await;
    let csrf = csrf(&app, &root).await;
    let before = snapshot(&app).await;
    for (url, pairs) in every_form(&client, &token, &session) {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(with(&pairs, &[("csrf", &csrf)]))
            .finish();
        let call = Call::new(Method::POST, url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "text/html")
            .header("sec-fetch-site", "same-origin")
            .cookie(&root.cookie)
            .body(body.into_bytes());
        let (status, location) = page(&app, call).await;
        assert_eq!(status, StatusCode::FOUND, "{url}: {location}");
        assert!(
            location.starts_with("/admin") && location.ends_with("?code=confirm_first"),
            "{url}: {location}"
        );
        assert_eq!(snapshot(&app).await, before, "{url} changed something");
    }
    // The page it comes back to offers the confirmation (a password here).
    let (_, html) = page(&app, root.get("/admin/accounts/bob?code=confirm_first")).await;
    assert!(html.contains("confirm-password"), "{html}");
    assert_eq!(
        input_value(&html, "next").as_deref(),
        Some("/admin/accounts/bob")
    );
    let wrong = root.form::<app::server_fns::ConfirmWithPassword>(&[
        ("password", "not it"),
        ("next", "/admin/accounts/bob"),
    ]);
    let (_, location) = page(&app, wrong).await;
    assert!(
        location.starts_with("/admin/accounts/bob?code="),
        "{location}"
    );
    let confirm = root.form::<app::server_fns::ConfirmWithPassword>(&[
        ("password", PASSWORD),
        ("next", "/admin/accounts/bob"),
    ]);
    assert_eq!(
        page(&app, confirm).await,
        (StatusCode::FOUND, "/admin/accounts/bob".into())
    );
    // Then it goes through, and bob's phone is signed out.
    let disable = root.form::<AdminDisable>(&[("username", "bob"), ("csrf", &csrf)]);
    assert_eq!(
        page(&app, disable).await,
        (StatusCode::FOUND, "/admin/accounts/bob?code=done".into())
    );
    let bob_account = app
        .state
        .services
        .accounts
        .account_named("bob")
        .await
        .unwrap();
    assert!(bob_account.disabled);
    assert_eq!(
        app.send(Call::new(Method::GET, paths::ME).cookie(&bob.cookie))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // An administrator cannot shut themselves out: the page says why.
    let own = root.form::<AdminDisable>(&[("username", "root"), ("csrf", &csrf)]);
    assert_eq!(
        page(&app, own).await,
        (
            StatusCode::FOUND,
            "/admin/accounts/root?code=own_account".into()
        )
    );
    let (_, html) = page(&app, root.get("/admin/accounts/root?code=own_account")).await;
    assert!(html.contains(r#"data-testid="admin-refusal""#));
}

#[tokio::test]
async fn a_new_accounts_invite_is_shown_once() {
    invite_shown_once(console_app().await).await;
}

/// The sealed secret kept between the post and the view, on PostgreSQL.
#[tokio::test]
async fn a_new_accounts_invite_is_shown_once_on_postgres() {
    let Some(database) = server::storage::testing::fresh_postgres().await else {
        return;
    };
    invite_shown_once(console_app_on(Some(database)).await).await;
}

async fn invite_shown_once((app, root, _, _): (TestApp, Browser, Browser, Browser)) {
    let csrf = csrf(&app, &root).await;
    let confirm = root.form::<app::server_fns::ConfirmWithPassword>(&[
        ("password", PASSWORD),
        ("next", "/admin/accounts"),
    ]);
    assert_eq!(page(&app, confirm).await.0, StatusCode::FOUND);
    let create = root.form::<AdminCreateAccount>(&[
        ("csrf", &csrf),
        ("username", "carol"),
        ("display_name", "Carol Example"),
    ]);
    let (status, location) = page(&app, create).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::FOUND, "/admin/accounts?code=done")
    );

    // The next view shows the link and its QR code…
    let (status, html) = page(&app, root.get(&location)).await;
    assert_eq!(status, StatusCode::OK);
    let link = testid_text(&html, "invite-link").expect("the invite link is shown");
    assert!(link.starts_with("http://127.0.0.1:3000/invite/"), "{link}");
    assert!(html.contains(r#"data-testid="invite-qr""#) && html.contains("<svg"));
    let carol = app
        .state
        .services
        .accounts
        .account_named("carol")
        .await
        .unwrap();
    assert!(!carol.admin && !carol.disabled);
    assert_eq!(carol.display_name, "Carol Example");
    // …which opens carol's invite…
    let path = link.trim_start_matches("http://127.0.0.1:3000");
    let (status, invite) = page(
        &app,
        Call::new(Method::GET, path).header(header::ACCEPT, "text/html"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(invite.contains("Carol Example"), "{invite}");
    // Kept between the post and the view sealed, never as it is shown
    // (SQLite: the database's files, freed pages included).
    let token = path.trim_start_matches("/invite/");
    for entry in std::fs::read_dir(app.dir.path()).unwrap() {
        let file = entry.unwrap().path();
        if file.is_file() {
            let bytes = std::fs::read(&file).unwrap();
            let found = bytes.windows(token.len()).any(|w| w == token.as_bytes());
            assert!(!found, "{} holds the invite token", file.display());
        }
    }
    // …and the view after it no longer does.
    let (_, again) = page(&app, root.get("/admin/accounts")).await;
    assert!(!again.contains(r#"data-testid="invite-link""#));
    assert!(!again.contains(path));
    // The audit page lists it, with who did it.
    let (_, audit) = page(&app, root.get("/admin/audit?event=account_created")).await;
    assert!(audit.contains("admin:root"), "{audit}");
    assert!(
        audit.contains("/api/v1/admin/audit/export?format=csv&amp;event=account_created")
            || audit.contains("/api/v1/admin/audit/export?format=csv&event=account_created"),
        "{audit}"
    );

    // A username taken: the page says so, nothing is made.
    let again = root.form::<AdminCreateAccount>(&[("csrf", &csrf), ("username", "carol")]);
    assert_eq!(
        page(&app, again).await,
        (
            StatusCode::FOUND,
            "/admin/accounts?code=username_taken".into()
        )
    );
}
