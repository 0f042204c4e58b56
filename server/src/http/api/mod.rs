//! API v1: JSON in and out, under `/api/v1`.

pub(crate) mod accounts;
pub(crate) mod admin;
pub(crate) mod logins;
