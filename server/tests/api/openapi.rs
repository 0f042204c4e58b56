//! The OpenAPI document: served, committed as docs/openapi.json, and true
//! to the router.

use axum::http::{Method, StatusCode};

use crate::helpers::*;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");

async fn served(app: &TestApp) -> String {
    let response = app.send(Call::new(Method::GET, paths::OPENAPI)).await;
    assert_eq!(response.status(), StatusCode::OK);
    String::from_utf8(body_bytes(response).await).unwrap()
}

/// `UPDATE_OPENAPI=1 cargo test -p server --test api openapi` rewrites the
/// committed copy after a deliberate change.
#[tokio::test]
async fn the_served_document_is_the_committed_one() {
    let app = test_app().await;
    let served = served(&app).await;
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, &served).unwrap();
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        served == committed,
        "docs/openapi.json differs from GET {}: run UPDATE_OPENAPI=1 cargo test -p server --test api openapi",
        paths::OPENAPI
    );
}

/// Every documented operation is routed (no route_not_found or
/// method_not_allowed), every answer it documents has a JSON body but 204s,
/// and every error code listed is one the API has.
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = test_app().await;
    let doc: serde_json::Value = serde_json::from_str(&served(&app).await).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let uri = with_every_param(path, "0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a59");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app.send(Call::new(method.clone(), &uri)).await;
            let status = response.status();
            if !status.is_success() {
                let body = error_body(response, status).await;
                assert!(
                    !["route_not_found", "method_not_allowed"].contains(&body.error.as_str()),
                    "{method} {uri}: {}",
                    body.error
                );
            }
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.contains_key(status.as_str()),
                "{method} {uri} answered {status}, which is not documented"
            );
            for code in ["413", "431"] {
                assert!(responses.contains_key(code), "{method} {uri} lacks {code}");
            }
        }
    }
    assert_eq!(operations, 36);
}

/// `template` with every `{param}` replaced by `value`.
pub(crate) fn with_every_param(template: &str, value: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                value
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}
