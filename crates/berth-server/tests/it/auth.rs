//! Logging in and out, cookies and tokens, throttling, password changes, cross-site writes.

use crate::support::TestApp;
use axum::body::Body;
use axum::http::{Method, Request, header};
use berth_domain::Role;
use serde_json::json;

async fn login(t: &TestApp, user: &str, pw: &str) -> crate::support::Answer {
    t.call(
        Method::POST,
        "/api/auth/login",
        None,
        Some(json!({"username": user, "password": pw})),
    )
    .await
}

fn session_cookie(a: &crate::support::Answer) -> String {
    let c = a.headers[header::SET_COOKIE].to_str().unwrap().to_string();
    c.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_that_authenticates() {
    let t = TestApp::new().await;
    t.token_for("alice", Role::Deployer, "correct horse battery")
        .await;
    let a = login(&t, "alice", "correct horse battery").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["user"]["role"], "deployer");
    let set = a.headers[header::SET_COOKIE].to_str().unwrap();
    for attr in ["berth_session=bs_", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{attr} missing in {set}");
    }
    assert!(!set.contains("Secure"), "Secure over plain http: {set}");
    assert!(
        !a.text.contains("bs_"),
        "the session secret leaked into the body"
    );

    let cookie = session_cookie(&a);
    let me = t
        .send(
            Request::get("/api/auth/me")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["user"]["username"], "alice");
    assert_eq!(me.json()["via"], "cookie");

    // Logout ends the session and clears the cookie.
    let out = t
        .send(
            Request::post("/api/auth/logout")
                .header(header::COOKIE, &cookie)
                .header("sec-fetch-site", "same-origin")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(out.status, 204, "{}", out.text);
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let me = t
        .send(
            Request::get("/api/auth/me")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    me.error(401);
}

#[tokio::test]
async fn cookies_are_secure_when_served_over_https() {
    let t = TestApp::builder()
        .settings(|s| s.secure_cookies = true)
        .build()
        .await;
    t.token_for("alice", Role::Viewer, "correct horse battery")
        .await;
    let a = login(&t, "alice", "correct horse battery").await;
    assert!(
        a.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );

    let t = TestApp::builder()
        .settings(|s| s.trust_proxy = true)
        .build()
        .await;
    t.token_for("alice", Role::Viewer, "correct horse battery")
        .await;
    let a = t
        .send(
            Request::post("/api/auth/login")
                .header(header::CONTENT_TYPE, "application/json")
                .header("x-forwarded-proto", "https")
                .body(Body::from(
                    r#"{"username":"alice","password":"correct horse battery"}"#,
                ))
                .unwrap(),
        )
        .await;
    assert!(
        a.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same() {
    let t = TestApp::new().await;
    t.token_for("alice", Role::Viewer, "correct horse battery")
        .await;
    let wrong = login(&t, "alice", "wrong password!!").await;
    let unknown = login(&t, "mallory", "wrong password!!").await;
    assert_eq!(wrong.error(401), unknown.error(401));
    assert_eq!(wrong.text, unknown.text);
    assert!(wrong.headers.get(header::SET_COOKIE).is_none());
    // Both failures are in the audit log, without the password.
    let audit = t.app.store.audit_entries(10).await.unwrap();
    assert_eq!(
        audit.iter().filter(|e| e.action == "login.failed").count(),
        2
    );
    assert!(!format!("{audit:?}").contains("wrong password"));
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account() {
    let t = TestApp::new().await;
    t.token_for("alice", Role::Viewer, "correct horse battery")
        .await;
    for _ in 0..5 {
        login(&t, "alice", "guess-guess-guess").await.error(401);
    }
    // Now even the right password waits.
    let a = login(&t, "alice", "correct horse battery").await;
    let msg = a.error(429);
    assert!(msg.contains("try again"), "{msg}");
    assert!(a.headers.contains_key(header::RETRY_AFTER));
    // Another account is not affected.
    t.token_for("bob", Role::Viewer, "correct horse battery")
        .await;
    assert_eq!(login(&t, "bob", "correct horse battery").await.status, 200);
}

#[tokio::test]
async fn script_tokens_work_as_bearer_and_are_revoked_by_logout() {
    let t = TestApp::new().await;
    t.token_for("ci", Role::Deployer, "correct horse battery")
        .await;
    let a = t
        .call(
            Method::POST,
            "/api/auth/token",
            None,
            Some(json!({"username": "ci", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let token = a.json()["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("bt_"));
    assert!(
        a.headers.get(header::SET_COOKIE).is_none(),
        "a script token must not set a cookie"
    );
    let me = t.get("/api/auth/me", Some(&token)).await;
    assert_eq!(me.json()["via"], "bearer");
    assert_eq!(
        t.call(Method::POST, "/api/auth/logout", Some(&token), None)
            .await
            .status,
        204
    );
    t.get("/api/auth/me", Some(&token)).await.error(401);
}

#[tokio::test]
async fn cross_site_cookie_writes_are_refused() {
    let t = TestApp::new().await;
    t.token_for("alice", Role::Admin, "correct horse battery")
        .await;
    let cookie = session_cookie(&login(&t, "alice", "correct horse battery").await);
    let a = t
        .send(
            Request::post("/api/auth/logout")
                .header(header::COOKIE, &cookie)
                .header("sec-fetch-site", "cross-site")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(a.error(403), "cross-site request refused");
    let a = t
        .send(
            Request::post("/api/auth/logout")
                .header(header::COOKIE, &cookie)
                .header(header::HOST, "berth.example")
                .header(header::ORIGIN, "https://evil.example")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    a.error(403);
    // The session survived both attempts.
    let me = t
        .send(
            Request::get("/api/auth/me")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(me.status, 200);
}

#[tokio::test]
async fn changing_the_password_ends_other_sessions() {
    let t = TestApp::new().await;
    let other = t
        .token_for("alice", Role::Viewer, "correct horse battery")
        .await;
    let mine = t
        .token_for("alice", Role::Viewer, "correct horse battery")
        .await;
    let change = |cur: &str, new: &str| json!({"current_password": cur, "new_password": new});
    let a = t
        .call(
            Method::PUT,
            "/api/auth/password",
            Some(&mine),
            Some(change("nope nope nope", "brand new password")),
        )
        .await;
    a.error(403);
    let a = t
        .call(
            Method::PUT,
            "/api/auth/password",
            Some(&mine),
            Some(change("correct horse battery", "short")),
        )
        .await;
    assert!(a.error(400).contains("at least 10"));
    let a = t
        .call(
            Method::PUT,
            "/api/auth/password",
            Some(&mine),
            Some(change("correct horse battery", "brand new password")),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    t.get("/api/auth/me", Some(&other)).await.error(401);
    assert_eq!(t.get("/api/auth/me", Some(&mine)).await.status, 200);
    assert_eq!(login(&t, "alice", "brand new password").await.status, 200);
    login(&t, "alice", "correct horse battery").await.error(401);
}
