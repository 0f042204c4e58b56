//! The qrlogin server: sign in on a desktop browser by scanning a QR code
//! with a phone that is already signed in.
//!
//! # Layout
//!
//! Dependencies run one way: `http` → `services` → `domain` ← `storage`.
//!
//! - [`domain`]: the login attempt's state machine and the newtypes
//!   (ids, secrets, names, sessions, audit events). Pure: no I/O.
//! - [`services`]: the use cases: login attempts, accounts and sessions,
//!   the audit trail, rate limits, and the OpenID Connect provider
//!   (clients, authorization codes, tokens, the device flow, signing keys). Each has its own error enum; they reach
//!   storage only through its traits.
//! - [`storage`]: the store traits, split by concern, and their back-ends
//!   (memory and SQLite for one process; PostgreSQL and Redis for several
//!   instances), chosen by `--database` URL and `--redis` in
//!   [`storage::open`]. A new back-end is one module there plus one match arm.
//! - [`http`]: the transport: API v1 handlers, the Leptos pages' backend,
//!   security headers and CSRF, the OpenAPI document, request ids and the
//!   Prometheus metrics; the one table from service errors to HTTP answers;
//!   `http::oidc`, the OpenID Connect endpoints, answering in OAuth's own
//!   error format.
//! - [`config`] resolves settings; [`cli`] is the `qrlogin` command;
//!   [`device_login`] is `qrlogin device-login`, a device-flow client that
//!   talks to a provider over HTTP only.
//!
//! docs/design.md is the contract all of this implements.

pub mod cli;
pub mod config;
pub mod device_login;
pub mod domain;
pub mod http;
pub mod services;
pub mod storage;

pub use http::{router as app, AppState};
