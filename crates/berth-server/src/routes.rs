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
    /// One line for the OpenAPI description (and `berth routes`).
    pub summary: &'static str,
    /// The JSON body it takes, for the OpenAPI description.
    #[serde(skip)]
    pub body: Option<Body>,
}

/// A request body's schema, by name.
#[derive(Clone)]
pub struct Body {
    pub name: String,
    pub schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body").field("name", &self.name).finish()
    }
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
            summary: "",
            body: None,
        });
        self
    }

    /// Describes the route added last.
    pub fn doc(mut self, summary: &'static str) -> Self {
        self.table.last_mut().expect("doc follows add").summary = summary;
        self
    }

    /// Names the JSON body the route added last takes.
    pub fn body<T: utoipa::ToSchema>(mut self) -> Self {
        self.table.last_mut().expect("body follows add").body = Some(Body {
            name: T::name().into_owned(),
            schema: T::schema(),
        });
        self
    }

    pub fn finish(self) -> (Router<AppState>, Vec<RouteInfo>) {
        (self.router, self.table)
    }
}
