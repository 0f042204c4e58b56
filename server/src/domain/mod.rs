//! The domain: the login attempt's state machine and the newtypes every
//! layer shares. Pure: no I/O, no HTTP, no storage. Everything else
//! depends on this; this depends on nothing of ours but the shared API
//! types of the `app` crate.

pub(crate) mod account;
pub(crate) mod attempt;
pub mod audit;
pub(crate) mod authorization;
pub mod caller;
pub(crate) mod credentials;
pub(crate) mod dpop;
pub mod oidc;
pub(crate) mod passkey;
pub mod secret;
pub mod time;
