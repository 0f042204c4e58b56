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
