//! The double against the contract in `npm-api.md`, in process (no nginx).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use berth_npm_double::{Config, Double, router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::time::Duration;
use tower::ServiceExt;

const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "changeme-please";

struct T {
    double: Double,
}

struct Res {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl T {
    fn new() -> Self {
        Self::with(Config {
            initial_admin: Some((EMAIL.into(), PASSWORD.into())),
            ..Default::default()
        })
    }
    fn with(config: Config) -> Self {
        Self {
            double: Double::new(config),
        }
    }
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Res {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "npm.test:81");
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let res = router(self.double.clone()).oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Res {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }
    async fn token(&self) -> String {
        let r = self
            .send(
                Method::POST,
                "/api/tokens",
                None,
                Some(json!({"identity": EMAIL, "secret": PASSWORD})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["token"].as_str().unwrap().to_string()
    }
    async fn create(&self, t: &str, body: Value) -> Res {
        self.send(Method::POST, "/api/nginx/proxy-hosts", Some(t), Some(body))
            .await
    }
}

fn host(domain: &str) -> Value {
    json!({"domain_names": [domain], "forward_scheme": "http", "forward_host": "127.0.0.1", "forward_port": 8080})
}

fn error(r: &Res, code: u16) -> String {
    assert_eq!(r.status.as_u16(), code, "{}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{}", r.body);
    r.body["error"]["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn health_setup_and_transport() {
    let t = T::with(Config::default());
    let r = t.send(Method::GET, "/api/", None, None).await;
    assert_eq!(
        r.body,
        json!({"status": "OK", "setup": false, "version": {"major": 2, "minor": 15, "revision": 1}})
    );
    assert_eq!(r.headers["x-served-by"], "npm.test");
    assert_eq!(r.headers["content-type"], "application/json; charset=utf-8");
    let r = t.send(Method::GET, "/api", None, None).await;
    assert_eq!(r.status, 302);
    assert_eq!(r.headers["location"], "/api/");
    let r = t
        .send(Method::OPTIONS, "/api/nginx/proxy-hosts", None, None)
        .await;
    assert_eq!(r.status, 204);
    let r = t.send(Method::GET, "/api/nope", None, None).await;
    assert_eq!(error(&r, 404), "Not Found - /nope");
    assert!(
        !r.headers.contains_key("x-served-by"),
        "errors carry no X-Served-By"
    );

    // Setup mode: an unauthenticated POST /api/users makes the first admin, then is refused.
    let body = json!({"name": "Admin User", "nickname": "admin", "email": "Admin@Example.com", "auth": {"type": "password", "secret": "changeme-please"}});
    let r = t
        .send(Method::POST, "/api/users", None, Some(body.clone()))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["roles"], json!(["admin"]));
    assert_eq!(r.body["permissions"]["proxy_hosts"], "manage");
    assert_eq!(
        t.send(Method::GET, "/api/", None, None).await.body["setup"],
        true
    );
    let r = t.send(Method::POST, "/api/users", None, Some(body)).await;
    assert_eq!(error(&r, 404), "Not Found - /users");
    // The email is matched lower-cased.
    let r = t
        .send(
            Method::POST,
            "/api/tokens",
            None,
            Some(json!({"identity": " admin@example.com ", "secret": "changeme-please"})),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn login_errors_are_word_for_word() {
    let t = T::new();
    let r = t
        .send(
            Method::POST,
            "/api/tokens",
            None,
            Some(json!({"identity": EMAIL, "secret": "wrong"})),
        )
        .await;
    assert_eq!(error(&r, 400), "Invalid email or password");
    assert_eq!(r.body["error"]["message_i18n"], "error.invalid-auth");
    let r = t
        .send(
            Method::POST,
            "/api/tokens",
            None,
            Some(json!({"identity": "nobody@x.y", "secret": "wrong"})),
        )
        .await;
    assert_eq!(error(&r, 400), "Invalid email or password");
    assert!(r.body["error"].get("message_i18n").is_none());
    let r = t
        .send(
            Method::POST,
            "/api/tokens",
            None,
            Some(json!({"identity": EMAIL})),
        )
        .await;
    assert_eq!(error(&r, 400), "data must have required property 'secret'");
    let r = t
        .send(
            Method::POST,
            "/api/tokens",
            None,
            Some(json!({"identity": EMAIL, "secret": PASSWORD, "expiry": "1d"})),
        )
        .await;
    assert_eq!(error(&r, 400), "data must NOT have additional properties");
    let r = t.send(Method::POST, "/api/tokens", None, None).await;
    assert_eq!(error(&r, 400), "Payload is undefined");
    let token = t.token().await;
    assert!(token.len() > 100);
    let r = t
        .send(Method::GET, "/api/users/me", Some(&token), None)
        .await;
    assert_eq!(r.body["email"], EMAIL);
    assert_eq!(r.body["avatar"], "");
}

#[tokio::test]
async fn token_quirks() {
    let t = T::new();
    let token = t.token().await;
    let r = t
        .send(Method::GET, "/api/tokens?expiry=1s", Some(&token), None)
        .await;
    assert_eq!(r.status, 200);
    let short = r.body["token"].as_str().unwrap().to_string();
    assert!(r.body["expires"].as_str().unwrap().ends_with('Z'));
    let r = t
        .send(Method::GET, "/api/tokens?expiry=soon", Some(&token), None)
        .await;
    assert_eq!(error(&r, 400), "Invalid expiry time: soon");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = t
        .send(Method::GET, "/api/nginx/proxy-hosts", Some(&short), None)
        .await;
    assert_eq!(error(&r, 400), "Token has expired");
    assert_eq!(r.body["error"]["message_i18n"]["name"], "TokenExpiredError");
    assert_eq!(r.body["error"]["message_i18n"]["message"], "jwt expired");
    let r = t.send(Method::GET, "/api/tokens", Some(&short), None).await;
    assert_eq!(error(&r, 400), "Token has expired");

    // No token: 404 on reads and writes of known routes, 500 on create and on /tokens, /users/me.
    for (m, p, code, msg) in [
        (
            Method::GET,
            "/api/nginx/proxy-hosts",
            404,
            "Not Found - /nginx/proxy-hosts",
        ),
        (
            Method::GET,
            "/api/nginx/proxy-hosts/1",
            404,
            "Not Found - /nginx/proxy-hosts/1",
        ),
        (
            Method::DELETE,
            "/api/nginx/proxy-hosts/1",
            404,
            "Not Found - /nginx/proxy-hosts/1",
        ),
        (
            Method::POST,
            "/api/nginx/proxy-hosts/1/enable",
            404,
            "Not Found - /nginx/proxy-hosts/1/enable",
        ),
        (
            Method::POST,
            "/api/nginx/proxy-hosts",
            500,
            "Internal Error",
        ),
        (Method::GET, "/api/tokens", 500, "Internal Error"),
        (Method::GET, "/api/users/me", 500, "Internal Error"),
    ] {
        let body = (m == Method::POST).then(|| host("a.test"));
        let r = t.send(m.clone(), p, None, body).await;
        assert_eq!(error(&r, code), msg, "{m} {p}");
    }
    // Garbage or a bad signature: 500.
    let r = t
        .send(Method::GET, "/api/nginx/proxy-hosts", Some("garbage"), None)
        .await;
    assert_eq!(error(&r, 500), "Internal Error");
    let other = T::new().token().await;
    let r = t
        .send(Method::GET, "/api/nginx/proxy-hosts", Some(&other), None)
        .await;
    assert_eq!(error(&r, 500), "Internal Error");
}

#[tokio::test]
async fn a_user_without_permission_gets_404_or_500() {
    let t = T::new();
    let token = t.token().await;
    t.double.set_proxy_host_permission(EMAIL, "view");
    assert_eq!(
        t.send(Method::GET, "/api/nginx/proxy-hosts", Some(&token), None)
            .await
            .status,
        200
    );
    assert_eq!(
        error(&t.create(&token, host("a.test")).await, 500),
        "Internal Error"
    );
    let r = t
        .send(
            Method::PUT,
            "/api/nginx/proxy-hosts/1",
            Some(&token),
            Some(json!({"forward_port": 1})),
        )
        .await;
    assert_eq!(error(&r, 404), "Not Found - /nginx/proxy-hosts/1");
    t.double.set_proxy_host_permission(EMAIL, "hidden");
    let r = t
        .send(Method::GET, "/api/nginx/proxy-hosts", Some(&token), None)
        .await;
    assert_eq!(error(&r, 404), "Not Found - /nginx/proxy-hosts");
}

#[tokio::test]
async fn proxy_host_lifecycle() {
    let t = T::new();
    let tk = t.token().await;
    let r = t.create(&tk, json!({"domain_names": ["b.example.test", "A.example.test"], "forward_scheme": "http", "forward_host": "127.0.0.1", "forward_port": "8080"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let h = &r.body;
    assert_eq!(h["id"], 1);
    assert_eq!(
        h["domain_names"],
        json!(["A.example.test", "b.example.test"]),
        "sorted, case kept"
    );
    assert_eq!(h["forward_port"], 8080, "coerced");
    assert_eq!(h["meta"], json!({}), "create answers the row before nginx");
    assert_eq!(h["owner"]["email"], EMAIL);
    assert_eq!(h["certificate"], Value::Null);
    assert_eq!(h["locations"], Value::Null);
    assert_eq!(h["enabled"], true);
    for f in [
        "access_list_id",
        "certificate_id",
        "ssl_forced",
        "caching_enabled",
        "block_exploits",
        "advanced_config",
        "allow_websocket_upgrade",
        "http2_support",
        "hsts_enabled",
        "hsts_subdomains",
        "trust_forwarded_proto",
        "owner_user_id",
        "created_on",
        "modified_on",
    ] {
        assert!(h.get(f).is_some(), "{f} missing");
    }
    assert_eq!(
        h["created_on"].as_str().unwrap().len(),
        19,
        "SQLite timestamp format"
    );
    let r = t
        .send(Method::GET, "/api/nginx/proxy-hosts/1", Some(&tk), None)
        .await;
    assert_eq!(
        r.body["meta"],
        json!({"nginx_online": true, "nginx_err": null})
    );
    assert!(r.body.get("owner").is_none(), "not expanded by default");

    // Duplicates, case-insensitively; a substring is no clash.
    assert_eq!(
        error(&t.create(&tk, host("a.EXAMPLE.test")).await, 400),
        "a.EXAMPLE.test is already in use"
    );
    assert_eq!(t.create(&tk, host("example.test")).await.status, 201);

    // Partial update; its own domains are not a clash.
    let r = t
        .send(
            Method::PUT,
            "/api/nginx/proxy-hosts/1",
            Some(&tk),
            Some(json!({"forward_port": 9090, "domain_names": ["a.example.test"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["forward_port"], 9090);
    assert_eq!(
        r.body["forward_host"], "127.0.0.1",
        "fields left out keep their values"
    );
    assert_eq!(r.body["meta"]["nginx_online"], true);
    let r = t
        .send(
            Method::PUT,
            "/api/nginx/proxy-hosts/1",
            Some(&tk),
            Some(json!({})),
        )
        .await;
    assert_eq!(error(&r, 400), "data must NOT have fewer than 1 properties");
    let r = t
        .send(
            Method::PUT,
            "/api/nginx/proxy-hosts/abc",
            Some(&tk),
            Some(json!({"forward_port": 1})),
        )
        .await;
    assert_eq!(error(&r, 400), "Internal Error");
    let r = t
        .send(
            Method::PUT,
            "/api/nginx/proxy-hosts/999",
            Some(&tk),
            Some(json!({"forward_port": 1})),
        )
        .await;
    assert_eq!(error(&r, 404), "Not Found - 999");

    // Listing: ordered by the JSON text of domain_names, ?query= and ?expand=.
    let r = t
        .send(
            Method::GET,
            "/api/nginx/proxy-hosts?expand=owner",
            Some(&tk),
            None,
        )
        .await;
    let names: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["domain_names"][0].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.example.test", "example.test"]);
    assert_eq!(r.body[0]["owner"]["id"], 1);
    let r = t
        .send(
            Method::GET,
            "/api/nginx/proxy-hosts?query=A.EXAMPLE",
            Some(&tk),
            None,
        )
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);

    // Enable/disable answer bare booleans and refuse no-ops.
    let r = t
        .send(
            Method::POST,
            "/api/nginx/proxy-hosts/1/enable",
            Some(&tk),
            None,
        )
        .await;
    assert_eq!(error(&r, 400), "Host is already enabled");
    assert_eq!(
        t.send(
            Method::POST,
            "/api/nginx/proxy-hosts/1/disable",
            Some(&tk),
            None
        )
        .await
        .body,
        json!(true)
    );
    let r = t
        .send(
            Method::POST,
            "/api/nginx/proxy-hosts/1/disable",
            Some(&tk),
            None,
        )
        .await;
    assert_eq!(error(&r, 400), "Host is already disabled");
    let r = t
        .send(
            Method::PUT,
            "/api/nginx/proxy-hosts/1",
            Some(&tk),
            Some(json!({"forward_port": 9091})),
        )
        .await;
    assert_eq!(
        r.body["meta"]["nginx_online"], true,
        "a disabled host's meta is left as it was"
    );

    // Delete is soft, answers `true`, frees the domains; ids are never reused.
    assert_eq!(
        t.send(Method::DELETE, "/api/nginx/proxy-hosts/1", Some(&tk), None)
            .await
            .body,
        json!(true)
    );
    assert_eq!(
        error(
            &t.send(Method::GET, "/api/nginx/proxy-hosts/1", Some(&tk), None)
                .await,
            404
        ),
        "Not Found - 1"
    );
    let r = t.create(&tk, host("a.example.test")).await;
    assert_eq!(r.body["id"], 3);
    let report = t
        .send(Method::GET, "/api/reports/hosts", Some(&tk), None)
        .await;
    assert_eq!(report.body["proxy"], 2);
    let audit = t.send(Method::GET, "/api/audit-log", Some(&tk), None).await;
    assert_eq!(audit.body[0]["action"], "created");
    assert_eq!(audit.body[0]["object_type"], "proxy-host");
}

#[tokio::test]
async fn validation_and_ssl_quirks() {
    let t = T::new();
    let tk = t.token().await;
    let r = t.create(&tk, json!({"domain_names": [], "forward_scheme": "ftp", "forward_host": "", "forward_port": 70000})).await;
    assert_eq!(
        error(&r, 400),
        "data/domain_names must NOT have fewer than 1 items, data/forward_scheme must be equal to one of the allowed values, data/forward_host must NOT have fewer than 1 characters, data/forward_port must be <= 65535"
    );
    let mut bad = host("x.test");
    bad["domain_names"] = json!(["bad domain"]);
    assert!(
        error(&t.create(&tk, bad).await, 400).starts_with("data/domain_names/0 must match pattern")
    );
    let req = Request::post("/api/nginx/proxy-hosts")
        .header(header::AUTHORIZATION, format!("Bearer {tk}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{broken"))
        .unwrap();
    let res = router(t.double.clone()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), 400);

    // Omitted certificate: SSL flags are cleaned; an explicit 0 keeps them (the quirk).
    let mut a = host("a.test");
    a["ssl_forced"] = json!(true);
    a["hsts_enabled"] = json!(true);
    let r = t.create(&tk, a).await;
    assert_eq!(
        (r.body["ssl_forced"].clone(), r.body["hsts_enabled"].clone()),
        (json!(false), json!(false))
    );
    let mut b = host("b.test");
    b["ssl_forced"] = json!(true);
    b["certificate_id"] = json!(0);
    let r = t.create(&tk, b).await;
    assert_eq!(r.body["ssl_forced"], true);
    assert_eq!(r.body["certificate_id"], 0);
    // Pointing at nothing is accepted.
    let mut c = host("c.test");
    c["certificate_id"] = json!(42);
    c["access_list_id"] = json!(7);
    assert_eq!(t.create(&tk, c).await.status, 201);
}
