//! The NPM client against the NPM double (and, for one test, the real nginx behind it).

use berth_crypto::SecretString;
use berth_domain::ports::{ProxyError, ProxyManager, RouteSpec};
use berth_npm::{NpmClient, NpmConfig};
use berth_npm_double::{Config, Double};
use std::time::Duration;

const EMAIL: &str = "berth@example.com";
const PASSWORD: &str = "npm-service-password";

async fn double(config: Config) -> (String, Double) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let d = Double::new(Config {
        initial_admin: Some((EMAIL.into(), PASSWORD.into())),
        ..config
    });
    tokio::spawn(berth_npm_double::serve(
        l,
        d.clone(),
        std::future::pending(),
    ));
    (url, d)
}

fn client(url: &str) -> NpmClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    NpmClient::new(NpmConfig::new(url, EMAIL, SecretString::new(PASSWORD)))
}

fn spec(domain: &str, port: u16) -> RouteSpec {
    RouteSpec {
        domain: domain.into(),
        forward_host: "127.0.0.1".into(),
        forward_port: port,
        certificate_id: None,
        websockets: false,
    }
}

#[tokio::test]
async fn check_reports_version_and_user() {
    let (url, _) = double(Config::default()).await;
    let info = client(&url).check().await.unwrap();
    assert_eq!(info.version, "2.15.1");
    assert_eq!(info.user, EMAIL);
    let bad = NpmClient::new(NpmConfig::new(&url, EMAIL, SecretString::new("wrong")));
    let e = bad.check().await.unwrap_err();
    assert!(
        matches!(e, ProxyError::Auth(ref m) if m.contains("Invalid email or password")),
        "{e}"
    );
}

#[tokio::test]
async fn unreachable_is_a_clean_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let e = client(&url)
        .ensure_route(&spec("a.test", 80))
        .await
        .unwrap_err();
    assert!(matches!(e, ProxyError::Unreachable(_)), "{e}");
}

#[tokio::test]
async fn ensure_creates_then_updates_the_same_host() {
    let (url, d) = double(Config::default()).await;
    let c = client(&url);
    let r = c
        .ensure_route(&spec("Stage-Dev-Web.example.test", 1001))
        .await
        .unwrap();
    assert_eq!(r.forward_port, 1001);
    let again = c
        .ensure_route(&spec("stage-dev-web.example.test", 1002))
        .await
        .unwrap();
    assert_eq!(
        again.id, r.id,
        "the domain's host is updated, not duplicated"
    );
    assert_eq!(again.forward_port, 1002);
    assert_eq!(d.hosts().len(), 1);
    let found = c
        .find_route("STAGE-DEV-WEB.example.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, r.id);
    assert!(
        c.find_route("example.test").await.unwrap().is_none(),
        "a substring is not a match"
    );
    c.remove_route(r.id).await.unwrap();
    c.remove_route(r.id).await.unwrap(); // already gone: fine
    assert!(d.hosts().is_empty());
}

#[tokio::test]
async fn a_host_made_by_hand_is_adopted() {
    let (url, d) = double(Config::default()).await;
    // An operator made the host in NPM's UI before berth ran.
    let manual = client(&url);
    let r = manual
        .ensure_route(&spec("legacy.example.test", 9000))
        .await
        .unwrap();
    let c = client(&url);
    let adopted = c
        .ensure_route(&spec("legacy.example.test", 9001))
        .await
        .unwrap();
    assert_eq!(adopted.id, r.id);
    assert_eq!(d.hosts().len(), 1);
}

#[tokio::test]
async fn expired_tokens_are_replaced_transparently() {
    // Tokens live 1 s and the client never refreshes early: it meets NPM's
    // "400 Token has expired" and must log in again once.
    let (url, _) = double(Config {
        token_ttl: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let mut cfg = NpmConfig::new(&url, EMAIL, SecretString::new(PASSWORD));
    cfg.refresh_before = Duration::ZERO;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = NpmClient::new(cfg);
    c.ensure_route(&spec("t1.example.test", 1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    c.ensure_route(&spec("t2.example.test", 2)).await.unwrap();

    // With a margin larger than the lifetime, it trades tokens before they expire.
    let (url, _) = double(Config {
        token_ttl: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    let mut cfg = NpmConfig::new(&url, EMAIL, SecretString::new(PASSWORD));
    cfg.refresh_before = Duration::from_secs(10);
    let c = NpmClient::new(cfg);
    for i in 0..3 {
        c.ensure_route(&spec(&format!("r{i}.example.test"), 3))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
}

#[tokio::test]
async fn a_lost_permission_is_reported_after_one_retry() {
    let (url, d) = double(Config::default()).await;
    let c = client(&url);
    c.ensure_route(&spec("p.example.test", 1)).await.unwrap();
    d.set_proxy_host_permission(EMAIL, "hidden");
    let e = c.find_route("p.example.test").await.unwrap_err();
    assert!(
        matches!(e, ProxyError::Auth(ref m) if m.contains("manage")),
        "{e}"
    );
    // remove_route must not mistake the quirk 404 for "already gone".
    let e = c.remove_route(1).await.unwrap_err();
    assert!(matches!(e, ProxyError::Auth(_)), "{e}");
    assert_eq!(d.hosts().len(), 1);
}

#[tokio::test]
async fn nginx_refusing_the_config_fails_with_its_words() {
    let Ok(prefix) = std::env::var("BERTH_TEST_NGINX_PREFIX") else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "the test environment is not up"
        );
        return;
    };
    let prefix = std::path::PathBuf::from(prefix);
    let hosts_dir = berth_npm_double::hosts_dir(&prefix, &format!("client-{}", std::process::id()));
    let nginx = berth_npm_double::NginxConfig {
        bin: "nginx".into(),
        conf: std::env::var("BERTH_TEST_NGINX_CONF").unwrap().into(),
        lock: prefix.join("proxy_host.lock"),
        // A listen address nginx cannot take: every new host fails `nginx -t`.
        listen: "127.0.0.1:0 invalid_listen_flag".into(),
        hosts_dir: hosts_dir.clone(),
        prefix,
    };
    let (url, d) = double(Config {
        nginx: Some(nginx),
        ..Default::default()
    })
    .await;
    let e = client(&url)
        .ensure_route(&spec("broken.example.test", 80))
        .await
        .unwrap_err();
    match e {
        ProxyError::Nginx(msg) => assert!(
            msg.contains("invalid_listen_flag") || msg.contains("emerg"),
            "{msg}"
        ),
        other => panic!("expected an nginx error, got {other}"),
    }
    assert!(
        d.hosts().is_empty(),
        "the failed host must be removed again"
    );
    let _ = std::fs::remove_dir_all(hosts_dir);
}
