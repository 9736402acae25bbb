//! Every integration test, in one binary so it links once. A module per area; `common` holds
//! the shared helpers (a `weft` bound to a temporary database, a `weft serve` with an HTTP
//! client, readers for the records it prints).

mod common;

mod actions;
mod api;
mod approvals;
mod auth;
mod bench;
mod client;
mod durability;
mod grants;
mod hardening;
mod lifecycle;
mod plugins;
mod workflows;
