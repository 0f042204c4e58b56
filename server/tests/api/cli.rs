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
