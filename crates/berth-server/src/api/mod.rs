//! The REST API, one module per resource; [`routes`] is the table of every route and who may
//! call it.

use crate::AppState;
use crate::routes::{Access, RouteInfo, Routes};
use axum::Router;
use axum::http::Method;
use axum::routing::{delete, get, patch, post, put};
use berth_domain::Role;

mod account;
mod config;
mod containers;
mod deploys;
mod events;
mod health;
mod hooks;
mod images;
mod npm;
mod oidc;
mod overview;
mod projects;
mod registries;
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
        .doc("Liveness and readiness: database, container engine, shutdown")
        .add(M::POST, "/api/auth/login", PUBLIC, post(session::login))
        .doc("Log in with a password; sets the session cookie")
        .body::<session::Credentials>()
        .add(M::POST, "/api/auth/token", PUBLIC, post(session::token))
        .doc("Exchange a password for a script token (Bearer)")
        .body::<session::Credentials>()
        .add(M::POST, "/api/auth/logout", VIEWER, post(session::logout))
        .doc("End the current session or revoke the token in use")
        .add(M::GET, "/api/auth/me", VIEWER, get(session::me))
        .doc("The logged-in user")
        .add(
            M::PUT,
            "/api/auth/password",
            VIEWER,
            put(session::change_password),
        )
        .doc("Change your password (ends your other sessions)")
        .body::<session::PasswordChange>()
        .add(M::GET, "/api/containers", VIEWER, get(containers::list))
        .doc("Every container on the engine")
        .add(M::GET, "/api/projects", VIEWER, get(projects::list))
        .doc("Projects with their stages")
        .add(M::POST, "/api/projects", ADMIN, post(projects::create))
        .doc("Create a project (body: a seed.example.yaml project entry as JSON, plus name)")
        .add(
            M::GET,
            "/api/projects/{project}",
            VIEWER,
            get(projects::get),
        )
        .doc("A project (secrets shown as {\"secret\": true}) and its instances per stage")
        .add(
            M::PUT,
            "/api/projects/{project}",
            ADMIN,
            put(projects::update),
        )
        .doc("Replace a project's configuration; stages are matched by name")
        .add(
            M::DELETE,
            "/api/projects/{project}",
            ADMIN,
            delete(projects::delete),
        )
        .doc("Remove a project's containers and routes, then the project")
        .add(
            M::POST,
            "/api/projects/{project}/stages",
            ADMIN,
            post(projects::add_stage),
        )
        .doc("Add a stage (body: a stage entry as JSON, plus name)")
        .add(
            M::PUT,
            "/api/projects/{project}/stages/{stage}",
            ADMIN,
            put(projects::update_stage),
        )
        .doc("Replace a stage's configuration")
        .add(
            M::DELETE,
            "/api/projects/{project}/stages/{stage}",
            ADMIN,
            delete(projects::delete_stage),
        )
        .doc("Remove a stage's containers and routes, then the stage")
        .add(
            M::POST,
            "/api/projects/{project}/stages/{stage}/instances/{instance}/stop",
            DEPLOYER,
            post(projects::stop),
        )
        .doc("Stop a live instance (its route stays)")
        .add(
            M::POST,
            "/api/projects/{project}/stages/{stage}/instances/{instance}/start",
            DEPLOYER,
            post(projects::start),
        )
        .doc("Start a stopped instance, health-gated, and route it again")
        .add(
            M::POST,
            "/api/projects/{project}/stages/{stage}/instances/{instance}/restart",
            DEPLOYER,
            post(projects::restart),
        )
        .doc("Restart a live instance, health-gated")
        .add(
            M::DELETE,
            "/api/projects/{project}/stages/{stage}/instances/{instance}",
            DEPLOYER,
            delete(projects::remove),
        )
        .doc("Remove an instance's container (and its route if it serves one)")
        .add(
            M::POST,
            "/api/webhook/{secret}",
            PUBLIC,
            post(deploys::webhook),
        )
        .doc("CI webhook: deploy a pushed image to the stages whose pattern matches (202)")
        .body::<deploys::WebhookBody>()
        .add(
            M::GET,
            "/api/settings/webhook",
            ADMIN,
            get(deploys::webhook_url),
        )
        .doc("The secret webhook's path")
        .add(
            M::POST,
            "/api/settings/webhook/regenerate",
            ADMIN,
            post(deploys::regenerate_webhook),
        )
        .doc("A new webhook secret; the old one stops working at once")
        .add(
            M::POST,
            "/api/projects/{project}/stages/{stage}/deploys",
            DEPLOYER,
            post(deploys::manual),
        )
        .doc("Deploy a tag to a stage (202 with the deploy id)")
        .body::<deploys::ManualDeploy>()
        .add(
            M::POST,
            "/api/projects/{project}/stages/{stage}/rollback",
            DEPLOYER,
            post(deploys::rollback),
        )
        .doc("Roll back to a kept release, pinned to its digest")
        .body::<deploys::RollbackBody>()
        .add(
            M::GET,
            "/api/projects/{project}/stages/{stage}/instances",
            VIEWER,
            get(deploys::instances),
        )
        .doc("A stage's instances (live, kept, stopped)")
        .add(M::POST, "/api/hooks/{source}", PUBLIC, post(hooks::signed))
        .doc("Webhook gateway for senders that sign (github, gitea, forgejo, gitlab, harbor, distribution)")
        .add(
            M::POST,
            "/api/hooks/{source}/{secret}",
            PUBLIC,
            post(hooks::with_secret),
        )
        .doc("Webhook gateway for senders that cannot sign (dockerhub, quay, generic): the secret is in the URL")
        .add(M::GET, "/api/settings/hooks", ADMIN, get(hooks::list))
        .doc("Webhook sources: how each authenticates, its path, whether a secret is set")
        .add(
            M::POST,
            "/api/settings/hooks/{source}/secret",
            ADMIN,
            post(hooks::regenerate),
        )
        .doc("A new secret for a webhook source, shown once; the old one stops working")
        .add(M::GET, "/api/deliveries", VIEWER, get(hooks::deliveries))
        .doc("Webhook deliveries, newest first, with what became of each (?source=&limit=)")
        .add(M::POST, "/api/deploy/inspect", DEPLOYER, post(images::inspect))
        .doc("What berth would make of an image, read from its registry without a pull")
        .body::<images::InspectBody>()
        .add(M::POST, "/api/deploy/quick", ADMIN, post(images::quick))
        .doc("Create a project for an image and deploy it in one step (202)")
        .body::<images::QuickBody>()
        .add(
            M::GET,
            "/api/projects/{project}/stages/{stage}/tags",
            VIEWER,
            get(images::stage_tags),
        )
        .doc("The tags a stage can deploy, newest first (promotion stages: tags live in the source)")
        .add(M::GET, "/api/registries", DEPLOYER, get(registries::list))
        .doc("Registries (credentials shown only as set or not)")
        .add(M::POST, "/api/registries", ADMIN, post(registries::create))
        .doc("Add a registry")
        .body::<registries::RegistryBody>()
        .add(
            M::PUT,
            "/api/registries/{name}",
            ADMIN,
            put(registries::update),
        )
        .doc("Update a registry (password: left out keeps it, null clears it)")
        .body::<registries::RegistryBody>()
        .add(
            M::DELETE,
            "/api/registries/{name}",
            ADMIN,
            delete(registries::delete),
        )
        .doc("Delete a registry no project pulls through")
        .add(
            M::POST,
            "/api/registries/{name}/test",
            ADMIN,
            post(registries::test),
        )
        .doc("Log in to a registry with its stored credentials; 502 says what failed (?repository=)")
        .add(M::GET, "/api/events", VIEWER, get(events::events))
        .doc("Server-sent events: deploy progress and instance changes (?project=)")
        .add(
            M::GET,
            "/api/deploys/{id}/stream",
            VIEWER,
            get(events::deploy_stream),
        )
        .doc("Server-sent events: one deploy's log from the start until it ends")
        .add(M::GET, "/api/overview", VIEWER, get(overview::get))
        .doc("The dashboard in one call: projects, stages, instances by health, latest deploys")
        .add(M::GET, "/api/deploys", VIEWER, get(deploys::list))
        .doc("Recent deploys across all projects")
        .add(M::GET, "/api/deploys/{id}", VIEWER, get(deploys::get))
        .doc("A deploy with its steps")
        .add(M::GET, "/api/deploys/{id}/logs", VIEWER, get(deploys::logs))
        .doc("A deploy's log lines (?after= for the next page)")
        .add(M::GET, "/api/settings", VIEWER, get(settings::get))
        .doc("Global settings")
        .add(M::PUT, "/api/settings", ADMIN, put(settings::put))
        .doc("Replace the global settings (validated whole)")
        .add(M::GET, "/api/npm", ADMIN, get(npm::get))
        .doc("The Nginx Proxy Manager connection (password shown as set or not)")
        .add(M::PUT, "/api/npm", ADMIN, put(npm::put))
        .doc("Set the Nginx Proxy Manager connection")
        .body::<npm::NpmUpdate>()
        .add(M::DELETE, "/api/npm", ADMIN, delete(npm::delete))
        .doc("Forget the Nginx Proxy Manager connection")
        .add(M::POST, "/api/npm/test", ADMIN, post(npm::test))
        .doc("Log in to Nginx Proxy Manager with the stored settings and report")
        .add(M::GET, "/api/config/export", ADMIN, get(config::export))
        .doc("The configuration as seed YAML (?secrets=true to include them)")
        .add(M::GET, "/api/users", ADMIN, get(users::list))
        .doc("Users with their role, state, sign-in methods and live sessions")
        .add(M::POST, "/api/users", ADMIN, post(users::create))
        .doc("Add a user: with a password, or (none given) for single sign-on only")
        .body::<users::NewUser>()
        .add(M::PATCH, "/api/users/{id}", ADMIN, patch(users::update))
        .doc("Change a user's role, disable or enable them, or set a new password")
        .body::<users::UserChange>()
        .add(M::DELETE, "/api/users/{id}", ADMIN, delete(users::delete))
        .doc("Delete a user with their sessions and tokens")
        .add(M::GET, "/api/auth/providers", PUBLIC, get(oidc::providers))
        .doc("What the login page offers: password login, and the identity provider's name")
        .add(M::GET, "/api/auth/oidc/login", PUBLIC, get(oidc::login))
        .doc("Start single sign-on: redirects the browser to the identity provider (?next=)")
        .add(
            M::GET,
            "/api/auth/oidc/callback",
            PUBLIC,
            get(oidc::callback),
        )
        .doc("The identity provider's redirect back: sets the session cookie, or returns to / with the reason in the berth_login_error cookie")
        .add(M::GET, "/api/settings/oidc", ADMIN, get(oidc::get_settings))
        .doc("The identity provider settings (client secret shown as set or not)")
        .add(M::PUT, "/api/settings/oidc", ADMIN, put(oidc::put_settings))
        .doc("Set the identity provider: issuer, client, scopes, role rules, local login (client_secret: left out keeps it, null clears it)")
        .add(
            M::DELETE,
            "/api/settings/oidc",
            ADMIN,
            delete(oidc::delete_settings),
        )
        .doc("Forget the identity provider (password login works again)")
        .add(M::POST, "/api/settings/oidc/test", ADMIN, post(oidc::test))
        .doc("Read the provider's discovery document with the stored settings and report")
        .add(
            M::POST,
            "/api/projects/{project}/stages/{stage}/webhook",
            ADMIN,
            post(deploys::stage_webhook_create),
        )
        .doc("A webhook secret for this stage only, shown once (replaces an earlier one)")
        .add(
            M::DELETE,
            "/api/projects/{project}/stages/{stage}/webhook",
            ADMIN,
            delete(deploys::stage_webhook_delete),
        )
        .doc("Remove the stage's own webhook")
        .add(
            M::POST,
            "/api/users/{id}/sessions/revoke",
            ADMIN,
            post(account::end_user_sessions),
        )
        .doc("End every session and token of a user")
        .add(M::GET, "/api/auth/sessions", VIEWER, get(account::list))
        .doc("Your browser sessions and API tokens (ids, never secrets)")
        .add(
            M::DELETE,
            "/api/auth/sessions/{id}",
            VIEWER,
            delete(account::revoke),
        )
        .doc("End one of your sessions or revoke one of your tokens")
        .add(
            M::POST,
            "/api/auth/sessions/revoke-all",
            VIEWER,
            post(account::revoke_all),
        )
        .doc("Log out everywhere: every session and token of yours, this one too")
        .add(M::POST, "/api/auth/tokens", VIEWER, post(account::create_token))
        .doc("A named API token with a role up to yours and an expiry, shown once")
        .body::<account::NewToken>()
        .add(M::GET, "/api/audit", ADMIN, get(users::audit))
        .doc("The audit log, newest first (?actor=&action=<prefix>&since=&until=&before=<id>&limit=)")
        .add(M::GET, "/api/openapi.json", VIEWER, get(openapi_json))
        .doc("This OpenAPI description")
        .finish()
}

/// `GET /api/openapi.json`: the description of every route, from the same table.
async fn openapi_json(
    axum::extract::State(st): axum::extract::State<AppState>,
) -> axum::Json<utoipa::openapi::OpenApi> {
    let (_, table) = routes(st);
    axum::Json(crate::openapi::document(&table))
}
