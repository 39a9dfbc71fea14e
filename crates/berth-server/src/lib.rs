//! berth's HTTP layer: the REST API under `/api`, its authentication and error envelope, and
//! the embedded single-page app for everything else.
//!
//! [`router`] builds the whole service from an [`App`] without I/O; [`serve`] runs it on a
//! listener until a shutdown signal, letting requests in flight finish.
//!
//! Architecture invariant: only this crate knows HTTP and response shapes. Handlers are thin:
//! parse, authorise (by the route table), call the store or a port, shape the answer.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Request, header};
use axum::middleware;
use berth_auth::LoginThrottle;
use berth_domain::ports::{ContainerEngine, ProxyConnector};
use berth_store::Store;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub mod api;
pub mod auth;
pub mod error;
pub mod oidc;
pub mod openapi;
pub mod routes;
mod spa;

pub use routes::{Access, RouteInfo};

/// Settings of the HTTP layer, from the environment.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub session_ttl: Duration,
    /// Mark cookies `Secure` (berth is reached over https).
    pub secure_cookies: bool,
    /// Trust `X-Forwarded-For` / `X-Forwarded-Proto`.
    pub trust_proxy: bool,
    pub max_body_bytes: usize,
    /// `BERTH_BREAK_GLASS_LOCAL_LOGIN`: password login works even where the settings
    /// turned it off (an identity provider is down or misconfigured).
    pub break_glass_local_login: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            secure_cookies: false,
            trust_proxy: false,
            max_body_bytes: 1 << 20,
            break_glass_local_login: false,
        }
    }
}

/// Everything a request handler may need; built once in `main`.
pub struct App {
    pub store: Store,
    pub engine: Arc<dyn ContainerEngine>,
    /// Makes Nginx Proxy Manager clients from the stored connection settings.
    pub proxy: Arc<dyn ProxyConnector>,
    pub deployer: Arc<berth_deployer::Deployer>,
    /// Registries' APIs: tags and image configs without a pull.
    pub registry: Arc<dyn berth_domain::ports::ImageRegistry>,
    /// One webhook delivery at a time per image, so a burst of notifications for one push
    /// deploys once.
    pub hook_locks:
        std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub throttle: LoginThrottle,
    /// Single sign-on through an OpenID Connect provider: sign-ins in flight, discovery.
    pub oidc: oidc::Oidc,
    pub settings: ServerSettings,
    /// Set when berth is shutting down: health says so, so a load balancer drains it.
    pub shutting_down: std::sync::atomic::AtomicBool,
    /// Cancelled at shutdown: long-lived answers (event streams) end so the server can stop.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl App {
    pub fn new(
        store: Store,
        engine: Arc<dyn ContainerEngine>,
        proxy: Arc<dyn ProxyConnector>,
        deployer: Arc<berth_deployer::Deployer>,
        settings: ServerSettings,
    ) -> Self {
        Self {
            store,
            engine,
            proxy,
            deployer,
            registry: Arc::new(berth_registry::RegistryClient::new()),
            hook_locks: Default::default(),
            throttle: LoginThrottle::default(),
            oidc: oidc::Oidc::new(),
            settings,
            shutting_down: Default::default(),
            shutdown: Default::default(),
        }
    }
}

/// The shared state handed to handlers.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// The whole service, and the API route table (for tests and `berth routes`).
pub fn router(app: Arc<App>) -> (Router, Vec<RouteInfo>) {
    let state = AppState(app);
    let max_body = state.settings.max_body_bytes;
    let (api, table) = api::routes(state.clone());
    let x_request_id = HeaderName::from_static("x-request-id");
    let router = Router::new()
        .merge(api)
        .fallback(spa::serve)
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body))
        .layer(middleware::from_fn(error::envelope_errors))
        .layer(CompressionLayer::new())
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; \
                 frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'",
            ),
        ))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", request.id = %id, http.method = %req.method(), http.path = %req.uri().path())
            }),
        )
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid));
    (router, table)
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
