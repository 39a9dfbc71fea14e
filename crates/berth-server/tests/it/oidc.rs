//! Single sign-on against a real OpenID provider: panva's `oidc-provider` (from the npm
//! registry, installed by `npm ci` in web/), started here as a process on 127.0.0.1. A small
//! cookie-keeping client plays the browser: berth's login redirect, the provider's login
//! form, and the redirect back to berth's callback.
//!
//! Without node or the package the tests say so and pass, except under `CI=true`, where
//! they fail.

use crate::support::{Answer, TestApp};
use axum::body::Body;
use axum::http::{Method, Request, header};
use berth_domain::Role;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PUBLIC_URL: &str = "http://berth.test";
const CLIENT_SECRET: &str = "idp-client-secret-for-tests";

struct Idp {
    child: Child,
    /// Kept open: a closed pipe would kill the provider at its next write.
    _stdout: BufReader<std::process::ChildStdout>,
    issuer: String,
    http: reqwest::Client,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Idp {
    fn start() -> Option<Idp> {
        let web = concat!(env!("CARGO_MANIFEST_DIR"), "/../../web");
        let script = format!("{web}/tests/oidc/idp.mjs");
        let ready = std::path::Path::new(&format!("{web}/node_modules/oidc-provider")).exists();
        let spawned = ready
            .then(|| {
                Command::new("node")
                    .arg(&script)
                    .current_dir(web)
                    .env("IDP_PORT", "0")
                    .env(
                        "IDP_REDIRECT_URIS",
                        format!("{PUBLIC_URL}/api/auth/oidc/callback"),
                    )
                    .env("IDP_CLIENT_SECRET", CLIENT_SECRET)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .ok()
            })
            .flatten();
        let Some(mut child) = spawned else {
            let why = "node or web/node_modules/oidc-provider is missing (run npm ci in web/)";
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("the OIDC tests need a real provider: {why}");
            }
            eprintln!("skipped: {why}");
            return None;
        };
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the test provider did not start ({e}): {line:?}"));
        let _ = rustls::crypto::ring::default_provider().install_default();
        Some(Idp {
            child,
            _stdout: stdout,
            issuer: v["issuer"].as_str().unwrap().to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        })
    }

    async fn tamper(&self, change: Value) {
        let r = self
            .http
            .post(format!("{}/__test/tamper", self.issuer))
            .json(&change)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
}

fn settings(idp: &Idp) -> Value {
    json!({
        "display_name": "Test IdP",
        "issuer": idp.issuer,
        "client_id": "berth",
        "client_secret": CLIENT_SECRET,
        "public_url": PUBLIC_URL,
        "scopes": ["profile", "email", "groups"],
        "role_rules": [
            {"value": "berth-admins", "role": "admin"},
            {"value": "berth-deployers", "role": "deployer"}
        ],
        "default_role": "viewer"
    })
}

async fn configured(idp: &Idp) -> (TestApp, String) {
    let t = TestApp::new().await;
    let admin = t.token(Role::Admin).await;
    let a = t
        .call(
            Method::PUT,
            "/api/settings/oidc",
            Some(&admin),
            Some(settings(idp)),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    (t, admin)
}

/// One browser: cookies for the provider, and berth's binding cookie.
struct Browser<'a> {
    idp: &'a Idp,
    jar: HashMap<String, String>,
    berth_binding: Option<String>,
}

fn set_cookies(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .collect()
}

fn location(a: &Answer) -> String {
    assert_eq!(a.status, 303, "expected a redirect: {}", a.text);
    a.headers[header::LOCATION].to_str().unwrap().to_string()
}

impl<'a> Browser<'a> {
    fn new(idp: &'a Idp) -> Self {
        Self {
            idp,
            jar: HashMap::new(),
            berth_binding: None,
        }
    }

    async fn idp_request(
        &mut self,
        method: Method,
        url: &str,
        form: Option<String>,
    ) -> (u16, String, String) {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.idp.issuer)
        } else {
            url.to_string()
        };
        let cookie = self
            .jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut b = self
            .idp
            .http
            .request(method, &url)
            .header(header::COOKIE, cookie);
        if let Some(f) = form {
            b = b
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(f);
        }
        let r = b.send().await.unwrap();
        for (k, v) in set_cookies(r.headers()) {
            self.jar.insert(k, v);
        }
        let status = r.status().as_u16();
        let loc = r
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, loc, r.text().await.unwrap())
    }

    /// berth's login redirect, then the provider until it sends the browser back to berth;
    /// returns the callback path (with its query).
    async fn through_provider(&mut self, t: &TestApp, user: &str, next: &str) -> String {
        let a = t
            .get(&format!("/api/auth/oidc/login?next={next}"), None)
            .await;
        let mut url = location(&a);
        assert!(url.starts_with(&self.idp.issuer), "{url}");
        for (k, v) in set_cookies(&a.headers) {
            if k == "berth_oidc" {
                self.berth_binding = Some(v);
            }
        }
        let set = a.headers[header::SET_COOKIE].to_str().unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Lax"),
            "{set}"
        );
        for q in [
            "code_challenge_method=S256",
            "state=",
            "nonce=",
            "scope=openid",
        ] {
            assert!(
                url.contains(q),
                "the authorization request lacks {q}: {url}"
            );
        }
        for _ in 0..10 {
            let (status, loc, body) = self.idp_request(Method::GET, &url, None).await;
            match status {
                303 | 302 if loc.starts_with(PUBLIC_URL) => {
                    return loc.trim_start_matches(PUBLIC_URL).to_string();
                }
                303 | 302 => url = loc,
                200 if body.contains("name=\"login\"") => {
                    let form = format!("login={}&password=wonderland", user.replace(' ', "+"));
                    let (s, loc, body) = self.idp_request(Method::POST, &url, Some(form)).await;
                    assert!(s == 303 || s == 302, "login refused ({s}): {body}");
                    url = loc;
                }
                _ => panic!("unexpected answer from the provider ({status}) at {url}: {body}"),
            }
        }
        panic!("the provider never redirected back to berth");
    }

    async fn callback(&self, t: &TestApp, path: &str) -> Answer {
        let mut req = Request::builder().method(Method::GET).uri(path);
        if let Some(b) = &self.berth_binding {
            req = req.header(header::COOKIE, format!("berth_oidc={b}"));
        }
        t.send(req.body(Body::empty()).unwrap()).await
    }
}

/// The session cookie a successful callback sets.
fn session_cookie(a: &Answer) -> Option<String> {
    set_cookies(&a.headers)
        .into_iter()
        .find(|(k, v)| k == "berth_session" && !v.is_empty())
        .map(|(_, v)| v)
}

async fn me(t: &TestApp, session: &str) -> Value {
    let req = Request::builder()
        .uri("/api/auth/me")
        .header(header::COOKIE, format!("berth_session={session}"))
        .body(Body::empty())
        .unwrap();
    let a = t.send(req).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.json()
}

fn login_error(a: &Answer) -> String {
    assert_eq!(location(a), "/", "not sent back to the login page");
    assert!(
        session_cookie(a).is_none(),
        "a refused sign-in set a session"
    );
    let q = set_cookies(&a.headers)
        .into_iter()
        .find(|(k, _)| k == "berth_login_error")
        .map(|(_, v)| v)
        .expect("the reason travels in a cookie");
    openidconnect::url::form_urlencoded::parse(format!("m={q}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned()
}

async fn sign_in(t: &TestApp, idp: &Idp, user: &str) -> Answer {
    let mut b = Browser::new(idp);
    let path = b.through_provider(t, user, "/deploys").await;
    b.callback(t, &path).await
}

#[tokio::test]
async fn sign_in_creates_users_and_maps_groups_to_roles() {
    let Some(idp) = Idp::start() else { return };
    let (t, admin) = configured(&idp).await;

    // The settings never show the client secret; the test endpoint reads discovery.
    let s = t.get("/api/settings/oidc", Some(&admin)).await;
    assert!(!s.text.contains(CLIENT_SECRET), "{}", s.text);
    assert_eq!(s.json()["client_secret"], "********");
    assert_eq!(
        s.json()["redirect_url"],
        format!("{PUBLIC_URL}/api/auth/oidc/callback")
    );
    let check = t
        .call(Method::POST, "/api/settings/oidc/test", Some(&admin), None)
        .await;
    assert_eq!(check.status, 200, "{}", check.text);
    assert_eq!(check.json()["issuer"], idp.issuer.as_str());
    assert_eq!(check.json()["signing_keys"], 1);
    let p = t.get("/api/auth/providers", None).await.json();
    assert_eq!(p["oidc"]["name"], "Test IdP");
    assert_eq!(p["local"], true);

    for (user, role) in [("alice", "admin"), ("bob", "deployer"), ("carol", "viewer")] {
        let a = sign_in(&t, &idp, user).await;
        assert_eq!(location(&a), "/deploys", "{user}");
        let cookie = session_cookie(&a).unwrap_or_else(|| panic!("{user}: no session"));
        let set = a.headers.get_all(header::SET_COOKIE);
        assert!(
            set.iter()
                .any(|v| v.to_str().unwrap().starts_with("berth_oidc=;")),
            "the binding cookie is cleared"
        );
        let m = me(&t, &cookie).await;
        assert_eq!(m["user"]["username"], user);
        assert_eq!(m["user"]["role"], role, "{user}");
    }
    // A second sign-in finds the same user through the linked identity.
    let before = t.app.store.list_users().await.unwrap().len();
    let a = sign_in(&t, &idp, "alice").await;
    assert!(session_cookie(&a).is_some());
    assert_eq!(t.app.store.list_users().await.unwrap().len(), before);
    let users = t.get("/api/users", Some(&admin)).await.json();
    let alice = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "alice")
        .unwrap();
    assert_eq!(alice["sso"], true);
    assert_eq!(alice["has_password"], false);

    // A username berth cannot use is refused, naming the claim; nobody is created.
    let a = sign_in(&t, &idp, "bad name").await;
    assert!(
        login_error(&a).contains("preferred_username"),
        "{a:?}",
        a = a.text
    );
    assert_eq!(t.app.store.list_users().await.unwrap().len(), before);

    // Sign-ins are audited as such, and the audit never holds the client secret.
    let audit = t
        .get("/api/audit?action=login.succeeded", Some(&admin))
        .await;
    assert!(audit.text.contains(r#"\"via\":\"oidc\""#), "{}", audit.text);
    let all = t.get("/api/audit?limit=500", Some(&admin)).await;
    assert!(!all.text.contains(CLIENT_SECRET));
}

#[tokio::test]
async fn tampered_or_foreign_sign_ins_are_refused_with_a_clear_message() {
    let Some(idp) = Idp::start() else { return };
    let (t, _admin) = configured(&idp).await;
    let users = t.app.store.list_users().await.unwrap().len();
    let now = chrono::Utc::now().timestamp();

    // The ID token changed by the provider's answer, re-signed with its own key: each
    // check of openidconnect must refuse it.
    let cases = [
        (json!({"claims": {"nonce": "not-the-one-sent"}}), "nonce"),
        (json!({"claims": {"aud": "someone-else"}}), "audience"),
        (
            json!({"claims": {"exp": now - 600, "iat": now - 1200}}),
            "expired",
        ),
        (json!({"claims": {"iss": "http://127.0.0.1:9"}}), "issuer"),
        (json!({"claims": {}, "foreign_key": true}), "signature"),
    ];
    for (change, word) in cases {
        let mut b = Browser::new(&idp);
        let path = b.through_provider(&t, "alice", "/").await;
        idp.tamper(change.clone()).await;
        let why = login_error(&b.callback(&t, &path).await);
        assert!(why.contains(word), "{change}: {why}");
    }

    // A state berth never issued.
    let mut b = Browser::new(&idp);
    let path = b.through_provider(&t, "alice", "/").await;
    let tampered = path.replace("state=", "state=x");
    let why = login_error(&b.callback(&t, &tampered).await);
    assert!(why.contains("state does not match"), "{why}");

    // The right state from another browser (no binding cookie).
    let mut b = Browser::new(&idp);
    let path = b.through_provider(&t, "alice", "/").await;
    let mut other = Browser::new(&idp);
    other.berth_binding = Some("bo_someone-else".into());
    let why = login_error(&other.callback(&t, &path).await);
    assert!(why.contains("another browser"), "{why}");

    // A callback used once cannot be replayed.
    let mut b = Browser::new(&idp);
    let path = b.through_provider(&t, "carol", "/").await;
    assert!(session_cookie(&b.callback(&t, &path).await).is_some());
    let why = login_error(&b.callback(&t, &path).await);
    assert!(why.contains("already used"), "{why}");

    // The provider's own refusal is passed on.
    let why = login_error(
        &b.callback(
            &t,
            "/api/auth/oidc/callback?error=access_denied&error_description=End-User+aborted",
        )
        .await,
    );
    assert!(
        why.contains("refused the sign-in: access_denied: End-User aborted"),
        "{why}"
    );

    // Only carol's good sign-in made a user; the failures are in the audit log.
    assert_eq!(t.app.store.list_users().await.unwrap().len(), users + 1);
    let failed = t
        .app
        .store
        .audit_search(
            &berth_store::AuditFilter {
                action: Some("login.failed".into()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert!(failed.len() >= 8, "{}", failed.len());
}

#[tokio::test]
async fn local_login_turns_off_only_with_an_sso_admin_and_break_glass_turns_it_on() {
    let Some(idp) = Idp::start() else { return };
    let (t, admin) = configured(&idp).await;
    t.token_for("root", Role::Admin, "correct horse battery")
        .await;
    let mut off = settings(&idp);
    off["local_login"] = json!(false);
    let refused = t
        .call(
            Method::PUT,
            "/api/settings/oidc",
            Some(&admin),
            Some(off.clone()),
        )
        .await
        .error(409);
    assert!(
        refused.contains("admin has signed in with Test IdP"),
        "{refused}"
    );
    assert_eq!(
        t.get("/api/auth/providers", None).await.json()["local"],
        true
    );

    // alice is an admin by her group; after her sign-in local login may go.
    assert!(session_cookie(&sign_in(&t, &idp, "alice").await).is_some());
    off.as_object_mut().unwrap().remove("client_secret");
    let a = t
        .call(Method::PUT, "/api/settings/oidc", Some(&admin), Some(off))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["client_secret"], "********", "left out: kept");
    assert_eq!(
        t.get("/api/auth/providers", None).await.json()["local"],
        false
    );
    let creds = json!({"username": "root", "password": "correct horse battery"});
    for path in ["/api/auth/login", "/api/auth/token"] {
        let why = t
            .call(Method::POST, path, None, Some(creds.clone()))
            .await
            .error(403);
        assert!(why.contains("BERTH_BREAK_GLASS_LOCAL_LOGIN"), "{why}");
    }
    // Tokens already issued keep working; single sign-on still works.
    assert_eq!(t.get("/api/auth/me", Some(&admin)).await.status, 200);
    assert!(session_cookie(&sign_in(&t, &idp, "bob").await).is_some());

    // The operator's way back in: the environment variable, on the same database.
    let glass = t.restarted(|s| s.break_glass_local_login = true);
    assert_eq!(
        glass.get("/api/auth/providers", None).await.json()["local"],
        true
    );
    let a = glass
        .call(Method::POST, "/api/auth/login", None, Some(creds))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
}

#[tokio::test]
async fn only_known_users_when_new_users_are_not_allowed() {
    let Some(idp) = Idp::start() else { return };
    let (t, admin) = configured(&idp).await;
    let mut s = settings(&idp);
    s["allow_new_users"] = json!(false);
    s.as_object_mut().unwrap().remove("client_secret");
    let a = t
        .call(Method::PUT, "/api/settings/oidc", Some(&admin), Some(s))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);

    let why = login_error(&sign_in(&t, &idp, "carol").await);
    assert!(why.contains("ask an admin to add carol"), "{why}");

    // An admin adds carol for single sign-on (no password) as a deployer: her first
    // sign-in links to that user, and no rule overrides the role.
    let made = t
        .call(
            Method::POST,
            "/api/users",
            Some(&admin),
            Some(json!({"username": "carol", "role": "deployer"})),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let a = sign_in(&t, &idp, "carol").await;
    let m = me(&t, &session_cookie(&a).expect("carol signs in")).await;
    assert_eq!(m["user"]["role"], "deployer");
    assert_eq!(m["user"]["id"], made.json()["id"]);

    // A disabled user is refused by name.
    let id = made.json()["id"].as_i64().unwrap();
    let d = t
        .call(
            Method::PATCH,
            &format!("/api/users/{id}"),
            Some(&admin),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(d.status, 200, "{}", d.text);
    let why = login_error(&sign_in(&t, &idp, "carol").await);
    assert!(why.contains("carol is disabled"), "{why}");
}
