//! The OpenAPI document: served, committed, and true to the router.
