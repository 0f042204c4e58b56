//! The one integration-test binary: the real router with real stores, the
//! `qrlogin` binary itself, and the OpenAPI contract.

mod basics;
mod cli;
mod flow;
mod fuzz;
mod hardening;
mod helpers;
mod openapi;
mod security;
