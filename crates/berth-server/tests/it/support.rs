use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use berth_config::seed::Seed;
use berth_crypto::{Keyring, SecretString};
use berth_domain::{Role, Username};
use berth_server::{App, RouteInfo, ServerSettings};
use berth_store::{SessionKind, Store};
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

pub const EXAMPLE_SEED: &str = include_str!("../../../../seed.example.yaml");

pub struct TestApp {
    pub router: Router,
    pub table: Vec<RouteInfo>,
    pub app: Arc<App>,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    /// Asserts berth's error envelope and returns its message.
    pub fn error(&self, status: u16) -> String {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        let v = self.json();
        assert_eq!(v["error"]["status"], status, "{v}");
        assert!(v["error"]["code"].is_string(), "{v}");
        v["error"]["message"].as_str().expect("message").to_string()
    }
}

pub struct Builder {
    settings: ServerSettings,
    seed: Option<Seed>,
}

impl TestApp {
    pub fn builder() -> Builder {
        Builder {
            settings: ServerSettings::default(),
            seed: None,
        }
    }

    pub async fn new() -> Self {
        Self::builder().build().await
    }

    /// Creates a user with `role` and returns a bearer token for them.
    pub async fn token(&self, role: Role) -> String {
        self.token_for(&format!("{role}-user"), role, "correct horse battery")
            .await
    }

    pub async fn token_for(&self, name: &str, role: Role, password: &str) -> String {
        let store = &self.app.store;
        let user = match store.user_for_login(name).await.unwrap() {
            Some((u, _)) => u,
            None => {
                let hash = berth_auth::hash_password(&SecretString::new(password)).unwrap();
                store
                    .create_user(&Username::parse(name).unwrap(), &hash, role)
                    .await
                    .unwrap()
            }
        };
        let s = berth_auth::SessionSecret::generate("bt_");
        store
            .create_session(
                user.id,
                &s.hash,
                SessionKind::Script,
                Duration::from_secs(3600),
                None,
                None,
            )
            .await
            .unwrap();
        s.secret.expose().to_string()
    }

    /// A token that has already expired.
    pub async fn expired_token(&self) -> String {
        let hash = berth_auth::hash_password(&SecretString::new("correct horse battery")).unwrap();
        let u = self
            .app
            .store
            .create_user(
                &Username::parse("expired-user").unwrap(),
                &hash,
                Role::Admin,
            )
            .await
            .unwrap();
        let s = berth_auth::SessionSecret::generate("bt_");
        self.app
            .store
            .create_session(
                u.id,
                &s.hash,
                SessionKind::Script,
                Duration::from_millis(1),
                None,
                None,
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        s.secret.expose().to_string()
    }

    pub async fn send(&self, req: Request<Body>) -> Answer {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        // An event stream does not end: answer with its status and headers only.
        if headers
            .get("content-type")
            .is_some_and(|v| v == "text/event-stream")
        {
            return Answer {
                status,
                headers,
                text: String::new(),
            };
        }
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// A request with an optional bearer token and an optional JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        };
        self.send(req.unwrap()).await
    }

    /// Another berth on the same database, with other server settings (a restart with a
    /// changed environment).
    pub fn restarted(&self, f: impl FnOnce(&mut ServerSettings)) -> TestApp {
        let mut settings = self.app.settings.clone();
        f(&mut settings);
        let app = Arc::new(App::new(
            self.app.store.clone(),
            self.app.engine.clone(),
            self.app.proxy.clone(),
            self.app.deployer.clone(),
            settings,
        ));
        let (router, table) = berth_server::router(app.clone());
        TestApp { router, table, app }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Method::GET, path, token, None).await
    }
}

impl Builder {
    pub fn settings(mut self, f: impl FnOnce(&mut ServerSettings)) -> Self {
        f(&mut self.settings);
        self
    }

    pub fn seed(mut self, text: &str) -> Self {
        self.seed = Some(Seed::parse(text).unwrap());
        self
    }

    pub async fn build(self) -> TestApp {
        // As in main: one TLS provider for every HTTP client (the deployer makes one).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = Store::open_in_memory(Keyring::for_tests()).await.unwrap();
        if let Some(seed) = &self.seed {
            store.initialize(Some(seed), None).await.unwrap();
        }
        let engine =
            berth_docker::DockerEngine::new(Some("unix:///nonexistent/berth-api-test.sock".into()));
        engine.connect().await;
        let proxy: Arc<dyn berth_domain::ports::ProxyConnector> = Arc::new(berth_npm::NpmConnector);
        let deployer = berth_deployer::Deployer::new(
            store.clone(),
            engine.clone(),
            proxy.clone(),
            Default::default(),
        );
        let app = Arc::new(App::new(store, engine, proxy, deployer, self.settings));
        let (router, table) = berth_server::router(app.clone());
        TestApp { router, table, app }
    }
}
