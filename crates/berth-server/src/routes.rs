//! The API route table. Every route is added through [`Routes::add`] with an [`Access`]
//! decision, which wraps the handler in the authentication guard; the table is kept, so a
//! test can enumerate every route and check it answers anonymous and under-privileged
//! callers as declared. A route cannot be added without saying who may call it.

use crate::AppState;
use crate::auth::guard;
use axum::Router;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::MethodRouter;
use berth_domain::Role;
use serde::Serialize;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "role")]
pub enum Access {
    /// Anyone: health, login, webhooks (which authenticate by secret or signature).
    Public,
    /// A logged-in user or token with at least this role.
    Role(Role),
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct RouteInfo {
    pub method: String,
    pub path: &'static str,
    pub access: Access,
}

pub struct Routes {
    state: AppState,
    router: Router<AppState>,
    table: Vec<RouteInfo>,
}

impl Routes {
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// Adds `handler` for `method path`, callable by `access`.
    pub fn add(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: MethodRouter<AppState>,
    ) -> Self {
        let guarded = handler.route_layer(from_fn_with_state(
            self.state.clone(),
            move |st, req, next| guard(access, st, req, next),
        ));
        self.router = self.router.route(path, guarded);
        self.table.push(RouteInfo {
            method: method.to_string(),
            path,
            access,
        });
        self
    }

    pub fn finish(self) -> (Router<AppState>, Vec<RouteInfo>) {
        (self.router, self.table)
    }
}
