//! The one integration-test binary: the real router with real stores, the
//! `qrlogin` binary itself, and the OpenAPI contract.

// A failing test should panic, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts_lifecycle;
mod admin_api;
mod admin_console;
mod admins;
mod backchannel;
mod basics;
mod cli;
mod cluster;
mod conformance;
mod credentials;
mod dpop;
mod enrolling;
mod faults;
mod flow;
mod fuzz;
mod hardening;
mod helpers;
mod invites;
mod languages;
mod leaks;
mod link_phone;
mod metrics;
mod oidc;
mod openapi;
mod passkeys;
mod proxies;
mod security;
mod setup_link;
mod signup;
