//! The OpenAPI 3.1 document of API v1, served at `GET /api/v1/openapi.json`
//! and committed as `docs/openapi.json`. Paths, parameters, bodies and
//! success answers come from the handlers' `#[utoipa::path]` and the shared
//! types; the error answers from [`ERRORS`], which lists every machine code
//! each operation can answer with (the statuses from [`ApiError::CODES`]).

use std::collections::BTreeMap;

use app::api::paths;
use axum::{
    http::{header, HeaderValue},
    response::IntoResponse,
    routing::get,
    Router,
};
use serde_json::{json, Value};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    api::{accounts, admin, logins},
    error::ApiError,
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "qrlogin API v1",
        description = "Sign in on a desktop browser by scanning a QR code with a signed-in phone. \
                       Errors are `{error, message}` with a stable machine code in `error`; \
                       see docs/design.md."
    ),
    paths(openapi),
    components(schemas(app::api::ApiErrorBody)),
    tags(
        (name = "desktop", description = "The browser that wants to sign in; bound to its attempt by the bind cookie"),
        (name = "phone", description = "The signed-in phone: session cookie or `Authorization: Bearer`"),
        (name = "admin", description = "Administration: an administrator's session (cookie or Bearer session token; changes need a fresh proof of presence) or an admin API token (`Authorization: Bearer qra_…`; a `read` token may only GET)"),
    )
)]
struct ApiDoc;

/// Answers every request may get from the guard in front of the handlers.
const ANY_REQUEST: &[&str] = &["payload_too_large", "headers_too_large"];
/// And every request that changes state (the CSRF check).
const STATE_CHANGING: &[&str] = &["cross_site_request"];
/// And every admin operation (`admin_…`): who may administer.
const ADMIN_ANY: &[&str] = &[
    "not_signed_in",
    "invalid_token",
    "not_admin",
    "rate_limited",
    "unavailable",
];
/// And every admin operation that changes state: a read token's refusal
/// and a session's step-up.
const ADMIN_CHANGING: &[&str] = &["read_only_token", "confirm_first", "no_credential"];

/// Operation id → the machine codes its handler can answer with.
const ERRORS: &[(&str, &[&str])] = &[
    (
        "create_login",
        &[
            "bad_request",
            "login_not_found",
            "rate_limited",
            "unavailable",
            "internal",
        ],
    ),
    (
        "get_login",
        &[
            "invalid_login_id",
            "bad_request",
            "login_not_found",
            "rate_limited",
            "unavailable",
        ],
    ),
    (
        "cancel_login",
        &[
            "invalid_login_id",
            "login_not_found",
            "login_finished",
            "rate_limited",
            "unavailable",
        ],
    ),
    (
        "redeem_login",
        &[
            "invalid_login_id",
            "login_not_found",
            "not_approved",
            "login_finished",
            "rate_limited",
            "unavailable",
        ],
    ),
    (
        "scan_login",
        &[
            "invalid_login_id",
            "not_signed_in",
            "login_not_found",
            "already_scanned",
            "wrong_account",
            "login_finished",
            "rate_limited",
            "unavailable",
        ],
    ),
    (
        "approve_login",
        &[
            "invalid_login_id",
            "bad_request",
            "not_signed_in",
            "login_not_found",
            "already_scanned",
            "not_scanned",
            "wrong_match_code",
            "login_finished",
            "passkey_required",
            "passkey_refused",
            "no_passkey",
            "rate_limited",
            "unavailable",
        ],
    ),
    (
        "approve_options",
        &[
            "invalid_login_id",
            "bad_request",
            "not_signed_in",
            "login_not_found",
            "already_scanned",
            "no_passkey",
            "passkeys_unavailable",
            "unavailable",
        ],
    ),
    (
        "deny_login",
        &[
            "invalid_login_id",
            "not_signed_in",
            "login_not_found",
            "already_scanned",
            "not_scanned",
            "already_approved",
            "login_finished",
            "rate_limited",
            "unavailable",
        ],
    ),
    (
        "sign_in",
        &[
            "bad_request",
            "invalid_credentials",
            "password_off",
            "rate_limited",
            "unavailable",
            "internal",
        ],
    ),
    ("sign_out", &["unavailable"]),
    ("me", &["not_signed_in", "unavailable"]),
    ("list_sessions", &["not_signed_in", "unavailable"]),
    (
        "revoke_session",
        &[
            "bad_request",
            "not_signed_in",
            "session_not_found",
            "unavailable",
        ],
    ),
    ("openapi", &[]),
    ("admin_list_accounts", &["bad_request"]),
    (
        "admin_create_account",
        &["bad_request", "username_taken", "internal"],
    ),
    ("admin_get_account", &["bad_request", "account_not_found"]),
    (
        "admin_remove_account",
        &[
            "bad_request",
            "account_not_found",
            "last_admin",
            "own_account",
        ],
    ),
    (
        "admin_disable_account",
        &[
            "bad_request",
            "account_not_found",
            "last_admin",
            "own_account",
        ],
    ),
    (
        "admin_enable_account",
        &["bad_request", "account_not_found"],
    ),
    (
        "admin_set_admin",
        &[
            "bad_request",
            "account_not_found",
            "last_admin",
            "own_account",
        ],
    ),
    (
        "admin_reset_account",
        &["bad_request", "account_not_found", "not_found", "internal"],
    ),
    (
        "admin_invite_account",
        &["bad_request", "account_not_found"],
    ),
    (
        "admin_revoke_session",
        &["bad_request", "account_not_found", "not_found"],
    ),
    (
        "admin_remove_passkey",
        &[
            "bad_request",
            "account_not_found",
            "not_found",
            "password_needed",
        ],
    ),
    (
        "admin_revoke_grant",
        &["bad_request", "account_not_found", "not_found"],
    ),
    ("admin_list_apps", &[]),
    ("admin_add_app", &["bad_request"]),
    ("admin_rotate_app_secret", &["bad_request", "app_not_found"]),
    ("admin_remove_app", &["bad_request", "app_not_found"]),
    ("admin_audit", &["bad_request"]),
    ("admin_audit_export", &["bad_request", "internal"]),
    ("admin_status", &[]),
    ("admin_list_tokens", &[]),
    ("admin_add_token", &["bad_request", "session_only"]),
    ("admin_revoke_token", &["bad_request", "token_not_found"]),
];

/// API v1's routes, each registered from its handler's documentation, and
/// the finished document.
pub(crate) fn routes() -> (Router<AppState>, Value) {
    let (router, api) = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .routes(routes!(logins::create_login))
        .routes(routes!(logins::get_login, logins::cancel_login))
        .routes(routes!(logins::redeem_login))
        .routes(routes!(logins::scan_login))
        .routes(routes!(logins::approve_login))
        .routes(routes!(logins::approve_options))
        .routes(routes!(logins::deny_login))
        .routes(routes!(accounts::sign_in, accounts::sign_out))
        .routes(routes!(accounts::me))
        .routes(routes!(accounts::list_sessions))
        .routes(routes!(accounts::revoke_session))
        .routes(routes!(
            admin::admin_list_accounts,
            admin::admin_create_account
        ))
        .routes(routes!(
            admin::admin_get_account,
            admin::admin_remove_account
        ))
        .routes(routes!(admin::admin_disable_account))
        .routes(routes!(admin::admin_enable_account))
        .routes(routes!(admin::admin_set_admin))
        .routes(routes!(admin::admin_reset_account))
        .routes(routes!(admin::admin_invite_account))
        .routes(routes!(admin::admin_revoke_session))
        .routes(routes!(admin::admin_remove_passkey))
        .routes(routes!(admin::admin_revoke_grant))
        .routes(routes!(admin::admin_list_apps, admin::admin_add_app))
        .routes(routes!(admin::admin_remove_app))
        .routes(routes!(admin::admin_rotate_app_secret))
        .routes(routes!(admin::admin_audit))
        .routes(routes!(admin::admin_audit_export))
        .routes(routes!(admin::admin_status))
        .routes(routes!(admin::admin_list_tokens, admin::admin_add_token))
        .routes(routes!(admin::admin_revoke_token))
        .split_for_parts();
    // Serialising a document of plain strings and maps cannot fail.
    let mut doc = serde_json::to_value(&api).unwrap_or_default();
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    add_security_schemes(&mut doc);
    add_error_answers(&mut doc);
    // The document serves itself; the layer sits on its route alone.
    let served: Document = to_pretty_json(&doc).into();
    let router = router.route(paths::OPENAPI, get(openapi).layer(axum::Extension(served)));
    (router, doc)
}

/// The document as served (and committed).
fn to_pretty_json(doc: &Value) -> String {
    let mut text = serde_json::to_string_pretty(doc).unwrap_or_default();
    text.push('\n');
    text
}

/// This document.
#[utoipa::path(get, path = paths::OPENAPI, tag = "meta",
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi(axum::Extension(doc): axum::Extension<Document>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        doc,
    )
}

/// The served text, made once (cheap to clone).
type Document = axum::body::Bytes;

fn add_security_schemes(doc: &mut Value) {
    doc["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "The `token` of `POST /api/v1/session`"
        },
        "session_cookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": "qrlogin_session",
            "description": "Set by sign-in or redeem; `__Host-qrlogin_session` when the public URL is https"
        },
        "bind_cookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": "qrlogin_bind",
            "description": "Set by `POST /api/v1/logins` for that attempt's path only; `__Secure-qrlogin_bind` over https"
        },
        "admin_token": {
            "type": "http",
            "scheme": "bearer",
            "description": "An admin API token, `qra_…` (`qrlogin token add`, or `POST /api/v1/admin/tokens`)"
        }
    });
}

/// Adds each operation's error answers: one per status, its body an
/// `ApiErrorBody` whose `error` is one of that status's codes.
fn add_error_answers(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            let id = operation["operationId"].as_str().unwrap_or_default();
            let own = ERRORS
                .iter()
                .find(|(op, _)| *op == id)
                .map_or(&[][..], |(_, codes)| *codes);
            let changes_state = !matches!(method.as_str(), "get" | "head" | "options" | "trace");
            let administers = id.starts_with("admin_");
            let codes = own
                .iter()
                .chain(ANY_REQUEST)
                .chain(STATE_CHANGING.iter().filter(|_| changes_state))
                .chain(ADMIN_ANY.iter().filter(|_| administers))
                .chain(
                    ADMIN_CHANGING
                        .iter()
                        .filter(|_| administers && changes_state),
                );
            let mut by_status: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
            for code in codes {
                if let Some((_, status)) = ApiError::CODES.iter().find(|(c, _)| c == code) {
                    by_status.entry(status.as_u16()).or_default().push(code);
                }
            }
            for (status, codes) in by_status {
                operation["responses"][status.to_string()] = error_answer(status, &codes);
            }
        }
    }
}

fn error_answer(status: u16, codes: &[&str]) -> Value {
    let mut answer = json!({
        "description": format!("`error` is one of: {}", codes.join(", ")),
        "content": {
            "application/json": {
                "schema": {
                    "allOf": [
                        { "$ref": "#/components/schemas/ApiErrorBody" },
                        { "type": "object", "properties": { "error": { "type": "string", "enum": codes } } }
                    ]
                }
            }
        }
    });
    if status == 429 {
        answer["headers"] = json!({
            "Retry-After": {
                "description": "Seconds until a retry may succeed",
                "required": true,
                "schema": { "type": "integer", "minimum": 1 }
            }
        });
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_code_is_a_real_one_and_every_operation_is_listed() {
        let shared = [ANY_REQUEST, STATE_CHANGING, ADMIN_ANY, ADMIN_CHANGING];
        for code in shared.iter().flat_map(|codes| codes.iter()) {
            assert!(ApiError::CODES.iter().any(|(c, _)| c == code), "{code}");
        }
        for (op, codes) in ERRORS {
            for code in *codes {
                assert!(
                    ApiError::CODES.iter().any(|(c, _)| c == code),
                    "{op}: {code}"
                );
            }
        }
        let (_, doc) = routes();
        let mut operations = 0;
        for item in doc["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                let id = operation["operationId"].as_str().unwrap();
                assert!(ERRORS.iter().any(|(op, _)| *op == id), "{id}");
                operations += 1;
            }
        }
        assert_eq!(operations, ERRORS.len());
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
