//! The REST API, one module per resource; [`routes`] is the table of every route and who may
//! call it.

use crate::AppState;
use crate::routes::{Access, RouteInfo, Routes};
use axum::Router;
use axum::http::Method;
use axum::routing::{delete, get, post, put};
use berth_domain::Role;

mod config;
mod containers;
mod deploys;
mod events;
mod health;
mod npm;
mod projects;
mod session;
mod settings;
mod users;

pub use health::Health;

const PUBLIC: Access = Access::Public;
const VIEWER: Access = Access::Role(Role::Viewer);
const DEPLOYER: Access = Access::Role(Role::Deployer);
const ADMIN: Access = Access::Role(Role::Admin);

pub fn routes(state: AppState) -> (Router<AppState>, Vec<RouteInfo>) {
    use Method as M;
    Routes::new(state)
        .add(M::GET, "/api/health", PUBLIC, get(health::get))
        .add(M::POST, "/api/auth/login", PUBLIC, post(session::login))
        .add(M::POST, "/api/auth/token", PUBLIC, post(session::token))
        .add(M::POST, "/api/auth/logout", VIEWER, post(session::logout))
        .add(M::GET, "/api/auth/me", VIEWER, get(session::me))
        .add(
            M::PUT,
            "/api/auth/password",
            VIEWER,
            put(session::change_password),
        )
        .add(M::GET, "/api/containers", VIEWER, get(containers::list))
        .add(M::GET, "/api/projects", VIEWER, get(projects::list))
        .add(M::POST, "/api/projects", ADMIN, post(projects::create))
        .add(
            M::GET,
            "/api/projects/{project}",
            VIEWER,
            get(projects::get),
        )
        .add(
            M::PUT,
            "/api/projects/{project}",
            ADMIN,
            put(projects::update),
        )
        .add(
            M::DELETE,
            "/api/projects/{project}",
            ADMIN,
            delete(projects::delete),
        )
        .add(
            M::POST,
            "/api/projects/{project}/stages",
            ADMIN,
            post(projects::add_stage),
        )
        .add(
            M::PUT,
            "/api/projects/{project}/stages/{stage}",
            ADMIN,
            put(projects::update_stage),
        )
        .add(
            M::DELETE,
            "/api/projects/{project}/stages/{stage}",
            ADMIN,
            delete(projects::delete_stage),
        )
        .add(
            M::POST,
            "/api/projects/{project}/stages/{stage}/instances/{instance}/stop",
            DEPLOYER,
            post(projects::stop),
        )
        .add(
            M::POST,
            "/api/projects/{project}/stages/{stage}/instances/{instance}/start",
            DEPLOYER,
            post(projects::start),
        )
        .add(
            M::POST,
            "/api/projects/{project}/stages/{stage}/instances/{instance}/restart",
            DEPLOYER,
            post(projects::restart),
        )
        .add(
            M::DELETE,
            "/api/projects/{project}/stages/{stage}/instances/{instance}",
            DEPLOYER,
            delete(projects::remove),
        )
        .add(
            M::POST,
            "/api/webhook/{secret}",
            PUBLIC,
            post(deploys::webhook),
        )
        .add(
            M::GET,
            "/api/settings/webhook",
            ADMIN,
            get(deploys::webhook_url),
        )
        .add(
            M::POST,
            "/api/settings/webhook/regenerate",
            ADMIN,
            post(deploys::regenerate_webhook),
        )
        .add(
            M::POST,
            "/api/projects/{project}/stages/{stage}/deploys",
            DEPLOYER,
            post(deploys::manual),
        )
        .add(
            M::POST,
            "/api/projects/{project}/stages/{stage}/rollback",
            DEPLOYER,
            post(deploys::rollback),
        )
        .add(
            M::GET,
            "/api/projects/{project}/stages/{stage}/instances",
            VIEWER,
            get(deploys::instances),
        )
        .add(M::GET, "/api/events", VIEWER, get(events::events))
        .add(
            M::GET,
            "/api/deploys/{id}/stream",
            VIEWER,
            get(events::deploy_stream),
        )
        .add(M::GET, "/api/deploys", VIEWER, get(deploys::list))
        .add(M::GET, "/api/deploys/{id}", VIEWER, get(deploys::get))
        .add(M::GET, "/api/deploys/{id}/logs", VIEWER, get(deploys::logs))
        .add(M::GET, "/api/settings", VIEWER, get(settings::get))
        .add(M::PUT, "/api/settings", ADMIN, put(settings::put))
        .add(M::GET, "/api/npm", ADMIN, get(npm::get))
        .add(M::PUT, "/api/npm", ADMIN, put(npm::put))
        .add(M::DELETE, "/api/npm", ADMIN, delete(npm::delete))
        .add(M::POST, "/api/npm/test", ADMIN, post(npm::test))
        .add(M::GET, "/api/config/export", ADMIN, get(config::export))
        .add(M::GET, "/api/users", ADMIN, get(users::list))
        .add(M::GET, "/api/audit", ADMIN, get(users::audit))
        .finish()
}
