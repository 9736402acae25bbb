//! Weft: a WebAssembly-extensible workflow runner with durable runs and human approvals.
//!
//! The crate is split along its real boundaries:
//! - [`limits`] and [`config`] hold every bound the server keeps and read `weft.toml`;
//! - [`nesting`] measures how deep a YAML or JSON text nests before anything parses it;
//! - [`workflow`] parses and validates definitions (the only place that checks them);
//! - [`schedule`] validates schedules and computes when they fire;
//! - [`run`] holds the run record, the one document the engine changes and the store keeps;
//! - [`store`] persists everything behind one interface (a redb file or PostgreSQL);
//! - [`plugins`] hosts untrusted WASM components under deadlines and memory caps;
//! - [`engine`] schedules steps, pauses for people, retries and fires timers;
//! - [`actions`] calls ordered WASM targets on API requests, events and engine hook points;
//! - [`auth`] says who may do what: tokens and roles;
//! - [`bundle`] exports and imports workflows with their plugins as one file;
//! - [`api`] serves the HTTP API over the same engine;
//! - [`ui`] serves the browser UI (inbox, forms, runs) over the same engine, with sessions;
//! - [`bench`] measures the figures `weft bench` prints;
//! - [`telemetry`] writes logs and keeps the metrics and traces operators read;
//! - [`cli`] is the `weft` command line.

pub mod actions;
pub mod api;
pub mod auth;
pub mod bench;
pub mod bundle;
pub mod cli;
pub mod config;
pub mod engine;
pub mod limits;
pub mod names;
pub mod nesting;
pub mod plugins;
pub mod run;
pub mod schedule;
pub mod store;
pub mod telemetry;
pub mod ui;
pub mod workflow;
