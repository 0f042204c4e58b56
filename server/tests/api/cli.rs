//! The `qrlogin` binary's account commands, run for real.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

fn qrlogin(args: &[&str], stdin: &str, db: &std::path::Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qrlogin"))
        .args(args)
        .arg("--database")
        .arg(db)
        .env_remove("QRLOGIN_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run qrlogin");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn user_add_list_remove() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested/dir/qrlogin.db");

    let out = qrlogin(
        &["user", "add", "Alice", "--display-name", "Alice L."],
        "a long password\n",
        &db,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "added alice (Alice L.)\n");

    let out = qrlogin(&["user", "add", "alice"], "another password\n", &db);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );

    let out = qrlogin(&["user", "add", "bob"], "short\n", &db);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("8 to 128"),
        "{}",
        text(&out.stderr)
    );

    let out = qrlogin(&["user", "add", "bad name!"], "a long password\n", &db);
    assert!(!out.status.success());

    let out = qrlogin(&["user", "list"], "", &db);
    assert_eq!(text(&out.stdout), "alice\tAlice L.\n");

    let out = qrlogin(&["user", "remove", "alice"], "", &db);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = qrlogin(&["user", "remove", "alice"], "", &db);
    assert!(!out.status.success());
    assert_eq!(text(&qrlogin(&["user", "list"], "", &db).stdout), "");
}

#[test]
fn help_documents_every_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_qrlogin"))
        .arg("--help")
        .output()
        .unwrap();
    let help = text(&out.stdout);
    for setting in [
        "--addr",
        "QRLOGIN_ADDR",
        "--public-url",
        "QRLOGIN_PUBLIC_URL",
        "--database",
        "QRLOGIN_DATABASE",
        "--config",
        "QRLOGIN_CONFIG",
        "--log-format",
        "--pending-ttl",
        "--demo",
        "--registration",
        "QRLOGIN_REGISTRATION",
        "--setup-admin",
        "QRLOGIN_SETUP_ADMIN",
    ] {
        assert!(help.contains(setting), "{setting} missing from:\n{help}");
    }
}

#[test]
fn the_database_is_named_by_url_and_unknown_schemes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("by-url.db");
    let url = format!("sqlite://{}", path.display());
    let out = qrlogin(&["user", "add", "carol"], "a long password\n", &path);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The same file through its URL: the account is there.
    let out = Command::new(env!("CARGO_BIN_EXE_qrlogin"))
        .args(["user", "list", "--database", &url])
        .env_remove("QRLOGIN_CONFIG")
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "carol\tcarol\n", "{}", text(&out.stderr));

    let out = Command::new(env!("CARGO_BIN_EXE_qrlogin"))
        .args(["user", "list", "--database", "mysql://db.example/qrlogin"])
        .env_remove("QRLOGIN_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not supported"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn client_add_list_remove() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qrlogin.db");
    let cb = "https://notes.example/callback";

    let out = qrlogin(
        &[
            "client",
            "add",
            "Notes",
            "--redirect-uri",
            cb,
            "--redirect-uri",
            "http://localhost:8080/cb",
            "--json",
        ],
        "",
        &db,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let added: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = added["client_id"].as_str().unwrap().to_owned();
    assert_eq!(
        added["client_secret"].as_str().unwrap().len(),
        43,
        "a confidential client's secret, once"
    );

    let out = qrlogin(
        &[
            "client",
            "add",
            "SPA",
            "--redirect-uri",
            cb,
            "--public",
            "--json",
        ],
        "",
        &db,
    );
    let public: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(public.get("client_secret").is_none());

    // Wrong input: a clear message, nothing stored.
    for bad in [
        vec![
            "client",
            "add",
            "Evil",
            "--redirect-uri",
            "http://evil.example/cb",
        ],
        vec![
            "client",
            "add",
            "Frag",
            "--redirect-uri",
            "https://a.example/cb#x",
        ],
        vec!["client", "add", "", "--redirect-uri", cb],
        vec!["client", "add", "NoUri"],
    ] {
        let out = qrlogin(&bad, "", &db);
        assert!(!out.status.success(), "{bad:?}");
        assert!(!text(&out.stderr).is_empty(), "{bad:?}");
    }
    let out = qrlogin(&["client", "list", "--json"], "", &db);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Notes", "SPA"]);
    assert!(
        !text(&out.stdout).contains(added["client_secret"].as_str().unwrap()),
        "secrets are never listed"
    );

    let out = qrlogin(&["client", "remove", &id], "", &db);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = qrlogin(&["client", "remove", &id], "", &db);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no client"),
        "{}",
        text(&out.stderr)
    );
    let out = qrlogin(&["client", "list"], "", &db);
    assert_eq!(text(&out.stdout).lines().count(), 1);

    let out = qrlogin(&["keys", "rotate"], "", &db);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("new signing key"));
}

/// `qrlogin device-login` against a running server, the phone approving
/// on `/device` as a person would (by the code the terminal shows).
#[tokio::test]
async fn device_login_signs_a_terminal_in_from_the_phone() {
    use std::io::{BufRead, BufReader};

    use crate::helpers::{Instance, PASSWORD};
    use leptos::server_fn::ServerFn;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qrlogin.db");
    let out = qrlogin(
        &["user", "add", "alice", "--display-name", "Alice L."],
        &format!("{PASSWORD}\n"),
        &db,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = qrlogin(
        &[
            "client",
            "add",
            "Terminal",
            "--redirect-uri",
            "http://localhost/cb",
            "--public",
            "--json",
        ],
        "",
        &db,
    );
    let client: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let client_id = client["client_id"].as_str().unwrap();

    let db_arg = db.display().to_string();
    let mut server = Instance::start_public(&["--database".into(), db_arg]);
    let http = reqwest::Client::new();
    server.ready(&http).await;
    let mut device = Command::new(env!("CARGO_BIN_EXE_qrlogin"))
        .args([
            "device-login",
            "--issuer",
            &server.base,
            "--client-id",
            client_id,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(device.stdout.take().unwrap()).lines();
    let mut shown = String::new();
    let user_code = loop {
        let line = lines.next().expect("device-login ended early").unwrap();
        shown.push_str(&line);
        shown.push('\n');
        if let Some(code) = line.strip_prefix("and enter the code  ") {
            break code.trim().to_owned();
        }
    };
    assert!(
        shown.contains('▀') || shown.contains('▄') || shown.contains('█'),
        "a QR of half blocks:\n{shown}"
    );

    // The phone signs in and approves that code.
    let signed_in: serde_json::Value = http
        .post(server.url("/api/v1/session"))
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signed_in["token"].as_str().unwrap();
    let response = http
        .post(server.url(<app::server_fns::DecideDevice as ServerFn>::url()))
        .bearer_auth(token)
        .header("accept", "text/html")
        .form(&[("user_code", user_code.as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());

    let rest: Vec<String> =
        tokio::task::spawn_blocking(move || lines.map_while(Result::ok).collect())
            .await
            .unwrap();
    let status = device.wait().unwrap();
    assert!(status.success(), "{rest:?}");
    assert!(
        rest.iter().any(|l| l == "Signed in as Alice L. (alice)"),
        "{rest:?}"
    );
    server.terminate();
}

/// `qrlogin user reset` (for the day an account is lost or stolen): every
/// session ends, a new password is printed once and works (even where the
/// account had turned its password off), the old one does not, and the
/// audit trail says so.
#[tokio::test]
async fn user_reset_ends_sessions_and_gives_a_new_password() {
    use axum::http::{header, Method, StatusCode};
    use server::{
        config::ServeArgs,
        domain::audit::AuditEvent,
        storage::{self, DatabaseUrl},
    };

    use crate::helpers::*;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qrlogin.db");
    let url = format!("sqlite://{}", db.display());
    let out = qrlogin(&["user", "add", "alice"], &format!("{PASSWORD}\n"), &db);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let open = || {
        test_app_with(ServeArgs {
            database: Some(url.clone()),
            ..ServeArgs::default()
        })
    };
    async fn sign_in_with(app: &TestApp, password: &str) -> axum::response::Response {
        app.send(
            Call::new(Method::POST, paths::SESSION)
                .header(header::USER_AGENT, PHONE_UA)
                .json(serde_json::json!({ "username": "alice", "password": password })),
        )
        .await
    }

    // Alice is signed in twice, then turns her password off (as she may
    // with a passkey; written here directly).
    let before = open().await;
    let phones = [
        sign_in(&before, "alice").await,
        sign_in(&before, "alice").await,
    ];
    let alice = before
        .state
        .services
        .accounts
        .account_named("alice")
        .await
        .unwrap();
    let stores = storage::open(&DatabaseUrl::parse(&url).unwrap(), None)
        .await
        .unwrap();
    let now = server::domain::time::now_millis();
    let off = r#"{"password_off":true,"approve_with_passkey":true}"#;
    let key = alice.id.to_string();
    stores
        .provider
        .insert("account_settings", &key, off, u64::MAX / 2, now)
        .await
        .unwrap();
    let refused = sign_in_with(&before, PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let out = qrlogin(&["user", "reset", "alice"], "", &db);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let password = stdout
        .lines()
        .find_map(|line| line.strip_prefix("new password: "))
        .unwrap_or_else(|| panic!("no new password in {stdout}"))
        .to_owned();
    assert!(password.len() >= 20, "{password}");
    assert!(stdout.contains("passkeys were kept"), "{stdout}");
    let out = qrlogin(&["user", "reset", "nobody"], "", &db);
    assert!(!out.status.success());

    // A server started now (one running meanwhile sees it within its
    // session cache's revalidation, or at once with Redis).
    let after = open().await;
    for token in &phones {
        let response = after
            .send(Call::new(Method::GET, paths::ME).bearer(token))
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        sign_in_with(&after, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in_with(&after, &password).await.status(),
        StatusCode::OK
    );
    let settings = stores
        .provider
        .get("account_settings", &key, now)
        .await
        .unwrap()
        .unwrap();
    let settings: serde_json::Value = serde_json::from_str(&settings.value).unwrap();
    assert_eq!(settings["password_off"], false);
    assert_eq!(settings["approve_with_passkey"], true, "the rest is kept");
    let events = audit_events(
        &after,
        AuditQuery {
            account_id: Some(alice.id),
            event: Some(AuditEvent::AccountReset),
            ..AuditQuery::default()
        },
    )
    .await;
    assert_eq!(events.len(), 1);
}

/// `qrlogin user add --admin`, `user admin NAME on|off`, `user disable`
/// and `user enable`: what the list shows, what a server then does, and
/// the audit trail's operator.
#[tokio::test]
async fn user_admin_disable_and_enable() {
    use axum::http::{header, Method, StatusCode};
    use server::{config::ServeArgs, domain::audit::AuditEvent};

    use crate::helpers::*;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qrlogin.db");
    let url = format!("sqlite://{}", db.display());
    let run = |args: &[&str]| {
        let out = qrlogin(args, &format!("{PASSWORD}\n"), &db);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let list = || run(&["user", "list"]);
    assert_eq!(
        run(&["user", "add", "alice", "--admin"]),
        "added alice (alice), administrator\n"
    );
    run(&["user", "add", "bob"]);
    assert_eq!(list(), "alice\talice\tadmin\nbob\tbob\n");
    assert_eq!(
        run(&["user", "admin", "bob", "on"]),
        "bob is an administrator\n"
    );
    assert_eq!(
        run(&["user", "admin", "alice", "off"]),
        "alice is not an administrator\n"
    );
    assert_eq!(list(), "alice\talice\nbob\tbob\tadmin\n");
    for refused in [
        &["user", "admin", "bob", "maybe"][..],
        &["user", "admin", "nobody", "on"],
        &["user", "disable", "nobody"],
        &["user", "enable", "nobody"],
    ] {
        let out = qrlogin(refused, "", &db);
        assert!(!out.status.success(), "{refused:?}");
    }

    let out = run(&["user", "disable", "bob"]);
    assert!(
        out.starts_with("disabled bob: every session ended"),
        "{out}"
    );
    assert_eq!(list(), "alice\talice\nbob\tbob\tadmin,disabled\n");
    let app = test_app_with(ServeArgs {
        database: Some(url.clone()),
        ..ServeArgs::default()
    })
    .await;
    let server = &app;
    let sign_in_as = move |username: &'static str| {
        server.send(
            Call::new(Method::POST, paths::SESSION)
                .header(header::USER_AGENT, PHONE_UA)
                .json(serde_json::json!({ "username": username, "password": PASSWORD })),
        )
    };
    assert_eq!(sign_in_as("bob").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sign_in_as("alice").await.status(), StatusCode::OK);
    let out = run(&["user", "enable", "bob"]);
    assert!(out.starts_with("enabled bob"), "{out}");
    assert_eq!(list(), "alice\talice\nbob\tbob\tadmin\n");
    assert_eq!(sign_in_as("bob").await.status(), StatusCode::OK);

    let accounts = &app.state.services.accounts;
    let (alice, bob) = (
        accounts.account_named("alice").await.unwrap(),
        accounts.account_named("bob").await.unwrap(),
    );
    for (account, event) in [
        (alice.id, AuditEvent::AdminGranted),
        (alice.id, AuditEvent::AdminRevoked),
        (bob.id, AuditEvent::AdminGranted),
        (bob.id, AuditEvent::AccountDisabled),
        (bob.id, AuditEvent::AccountEnabled),
    ] {
        let rows = audit_events(
            &app,
            AuditQuery {
                account_id: Some(account),
                event: Some(event),
                ..AuditQuery::default()
            },
        )
        .await;
        assert_eq!(rows.len(), 1, "{event:?} of {account}: {rows:?}");
        assert_eq!(rows[0].user_agent, "qrlogin (operator command)");
    }
}

/// `qrlogin serve --demo` makes the demo account an administrator.
#[tokio::test]
async fn the_demo_account_is_an_administrator() {
    use crate::helpers::Instance;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qrlogin.db");
    let db_arg = db.display().to_string();
    let mut server = Instance::start(&["--database".into(), db_arg, "--demo".into()]);
    server.ready(&reqwest::Client::new()).await;
    server.terminate();
    let out = qrlogin(&["user", "list"], "", &db);
    assert_eq!(
        text(&out.stdout),
        "demo\tDemo User\tadmin\n",
        "{}",
        text(&out.stderr)
    );
}

/// `qrlogin user invite` prints a link (and its QR) that sets the account
/// up; `user invites` lists live invites without their links; `user
/// uninvite` revokes them.
#[tokio::test]
async fn user_invite_prints_a_link_that_works() {
    use axum::http::{header, Method};
    use leptos::server_fn::ServerFn;
    use server::config::ServeArgs;

    use crate::helpers::*;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qrlogin.db");
    let out = qrlogin(
        &["user", "invite", "alice", "--display-name", "Alice Liddell"],
        "",
        &db,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let prefix = "http://127.0.0.1:3000/invite/";
    let link = stdout
        .lines()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no link in {stdout}"));
    let token = link.strip_prefix(prefix).unwrap().to_owned();
    assert_eq!(token.len(), 43, "{link}");
    assert!(
        stdout.contains('█') || stdout.contains('▀'),
        "a QR: {stdout}"
    );
    assert!(stdout.contains("added alice (Alice Liddell)"), "{stdout}");

    let out = qrlogin(&["user", "invites"], "", &db);
    let listed = text(&out.stdout);
    assert!(listed.starts_with("alice\tenroll\texpires "), "{listed}");
    assert!(!listed.contains(&token), "{listed}");
    // An account that cannot sign in yet gets an enroll invite again; one
    // that can needs --reset.
    let out = qrlogin(
        &[
            "user",
            "invite",
            "alice",
            "--valid-hours",
            "1",
            "--public-url",
            "https://login.example.com",
        ],
        "",
        &db,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("https://login.example.com/invite/"));
    let out = qrlogin(&["user", "invite", "alice", "--valid-hours", "0"], "", &db);
    assert!(!out.status.success());

    // The first link sets the password (this server's URL is an IP
    // address: no passkeys) and signs the phone in.
    let app = test_app_with(ServeArgs {
        database: Some(format!("sqlite://{}", db.display())),
        ..ServeArgs::default()
    })
    .await;
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("token", token.as_str()), ("password", PASSWORD)])
        .finish();
    let response = app
        .send(
            Call::new(Method::POST, app::server_fns::EnrollPassword::url())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ACCEPT, "text/html")
                .body(body.into_bytes()),
        )
        .await;
    assert!(response.status().is_redirection());
    assert_eq!(response.headers()[header::LOCATION], "/m");
    sign_in(&app, "alice").await;
    let out = qrlogin(&["user", "invite", "alice"], "", &db);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--reset"),
        "{}",
        text(&out.stderr)
    );

    // The second (enroll) invite no longer works; a reset one is revoked.
    let out = qrlogin(&["user", "invite", "alice", "--reset"], "", &db);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = qrlogin(&["user", "uninvite", "alice"], "", &db);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "revoked 2 invite(s) of alice\n");
    assert_eq!(text(&qrlogin(&["user", "invites"], "", &db).stdout), "");
}
