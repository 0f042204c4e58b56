//! The pages' language: the `lang` cookie, else `Accept-Language`, else
//! English; written into `<html lang>`, and the answer varies by both.

use axum::http::{header, Method, StatusCode};

use crate::helpers::*;

async fn login_page(app: &TestApp, headers: &[(header::HeaderName, &str)]) -> (String, String) {
    let mut call = Call::new(Method::GET, "/login").header(header::ACCEPT, "text/html");
    for (name, value) in headers {
        call = call.header(name, value);
    }
    let response = app.send(call).await;
    assert_eq!(response.status(), StatusCode::OK);
    let vary = response.headers()[header::VARY]
        .to_str()
        .unwrap()
        .to_owned();
    (String::from_utf8(body_bytes(response).await).unwrap(), vary)
}

#[tokio::test]
async fn pages_speak_the_cookies_language_else_the_browsers() {
    let app = test_app().await;
    let (html, vary) = login_page(&app, &[]).await;
    assert!(html.contains(r#"<html lang="en""#), "{html}");
    assert!(html.contains("Sign in with your phone"));
    assert_eq!(vary, "Accept-Language, Cookie");

    let chinese = [(header::ACCEPT_LANGUAGE, "zh-CN,zh;q=0.9,en;q=0.8")];
    let (html, _) = login_page(&app, &chinese).await;
    assert!(html.contains(r#"<html lang="zh-CN""#), "{html}");
    assert!(html.contains("用手机扫码登录"));
    assert!(!html.contains("Sign in with your phone"));

    // The switcher's cookie wins over the browser's languages.
    let chosen = [
        (header::ACCEPT_LANGUAGE, "zh-CN"),
        (header::COOKIE, "lang=en"),
    ];
    let (html, _) = login_page(&app, &chosen).await;
    assert!(html.contains(r#"<html lang="en""#));
    // A language we do not have: English.
    let (html, _) = login_page(&app, &[(header::ACCEPT_LANGUAGE, "fr-FR, de;q=0.5")]).await;
    assert!(html.contains(r#"<html lang="en""#));
}
