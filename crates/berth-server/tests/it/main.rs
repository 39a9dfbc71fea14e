//! In-process API tests: the real router, a fresh in-memory database per test, the real
//! Docker adapter pointed at a socket that does not exist (the engine-present paths are
//! covered by the end-to-end tests of the `berth` binary).

mod support;

mod auth;
mod errors;
mod events;
mod hooks;
mod images;
mod oidc;
mod projects;
mod route_table;
mod settings;
mod tokens;
mod users;
