//! Every integration test, in one binary so it links once. A module per area; `common` holds
//! the shared helpers (a `weft` bound to a temporary database, a `weft serve` with an HTTP
//! client, readers for the records it prints).

mod browser;
mod common;
mod postgres;

mod actions;
mod approvals;
mod bench;
mod calendar;
mod client;
mod contracts;
mod durability;
mod grants;
mod hardening;
mod language;
mod lifecycle;
mod openapi;
mod operating;
mod plugins;
mod runners;
mod scaffold;
mod sdk;
mod store;
mod ui;
mod workflows;

// The API and authorization tests run once on each backend: the same file, included in two
// modules that differ only in `BACKEND`.
mod api {
    mod on_redb {
        const BACKEND: crate::common::Backend = crate::common::Backend::Redb;
        include!("api.rs");
    }
    mod on_postgres {
        const BACKEND: crate::common::Backend = crate::common::Backend::Postgres;
        include!("api.rs");
    }
}

mod auth {
    mod on_redb {
        const BACKEND: crate::common::Backend = crate::common::Backend::Redb;
        include!("auth.rs");
    }
    mod on_postgres {
        const BACKEND: crate::common::Backend = crate::common::Backend::Postgres;
        include!("auth.rs");
    }
}
