//! The one integration-test binary: the real router with real stores, the
//! `qrlogin` binary itself, and the OpenAPI contract.

// A failing test should panic, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod basics;
mod cli;
mod cluster;
mod faults;
mod flow;
mod fuzz;
mod hardening;
mod helpers;
mod languages;
mod metrics;
mod oidc;
mod openapi;
mod passkeys;
mod security;
