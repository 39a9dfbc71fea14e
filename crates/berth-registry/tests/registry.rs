//! The client against the real `docker-registry` of scripts/testenv: anonymous and with
//! htpasswd auth; tags with paging, digests checked against the manifest bytes, a config read
//! without a pull, a multi-platform index resolved per platform, and failures named.

use berth_crypto::SecretString;
use berth_domain::ImageRef;
use berth_registry::{Credentials, Platform, RegistryClient, RegistryError};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

fn env() -> Option<BTreeMap<String, String>> {
    let vars: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("BERTH_TEST_"))
        .collect();
    if vars.contains_key("BERTH_TEST_REGISTRY") {
        let _ = rustls::crypto::ring::default_provider().install_default();
        return Some(vars);
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "the test environment is not up: run scripts/testenv up"
    );
    eprintln!("skipped: no test environment");
    None
}

fn image(s: &str) -> ImageRef {
    ImageRef::parse(s).unwrap()
}

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The manifest bytes as stored, and their digest computed here.
async fn manifest_bytes(registry: &str, repo: &str, tag: &str) -> (Vec<u8>, String) {
    let body = reqwest::Client::new()
        .get(format!("http://{registry}/v2/{repo}/manifests/{tag}"))
        .header("accept", DOCKER_MANIFEST)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
    (body, digest)
}

#[tokio::test]
async fn tags_digests_and_configs_from_an_anonymous_registry() {
    let Some(env) = env() else { return };
    let reg = &env["BERTH_TEST_REGISTRY"];
    let c = RegistryClient::new();
    let app = image(&format!("{reg}/berth-test/app"));

    let all = c.tags(&app, None).await.unwrap();
    for t in ["v1", "v2", "v3", "v4", "unhealthy", "slow", "flaky"] {
        assert!(all.contains(&t.to_string()), "{t} in {all:?}");
    }
    // Two per page: the Link headers are followed to the same set.
    let mut paged = c.tags_paged(&app, None, 2).await.unwrap();
    let mut whole = all.clone();
    paged.sort();
    whole.sort();
    assert_eq!(paged, whole);

    let v1 = image(&format!("{reg}/berth-test/app:v1"));
    let (_, expected) = manifest_bytes(reg, "berth-test/app", "v1").await;
    assert_eq!(c.digest(&v1, None).await.unwrap(), expected);

    let cfg = c.inspect(&v1, &Platform::host(), None).await.unwrap();
    assert_eq!(cfg.info.exposed_tcp_ports, [8080]);
    assert!(cfg.info.healthcheck);
    assert_eq!(cfg.info.labels["org.opencontainers.image.version"], "v1");
    assert!(cfg.created.is_some());
    assert_eq!(cfg.manifest_digest, expected);

    let missing = image(&format!("{reg}/berth-test/app:no-such-tag"));
    assert!(matches!(
        c.digest(&missing, None).await,
        Err(RegistryError::NotFound(_))
    ));
    let nobody = image(&format!("{reg}/berth-test/nobody"));
    assert!(matches!(
        c.tags(&nobody, None).await,
        Err(RegistryError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_multi_platform_index_resolves_to_the_engine_s_platform() {
    let Some(env) = env() else { return };
    let reg = &env["BERTH_TEST_REGISTRY"];
    // An index in the app repository whose amd64 image is v1 and arm64 image is v2.
    let (m1, d1) = manifest_bytes(reg, "berth-test/app", "v1").await;
    let (m2, d2) = manifest_bytes(reg, "berth-test/app", "v2").await;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
            {"mediaType": DOCKER_MANIFEST, "size": m1.len(), "digest": d1,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": DOCKER_MANIFEST, "size": m2.len(), "digest": d2,
             "platform": {"architecture": "arm64", "os": "linux"}}
        ]
    });
    let put = reqwest::Client::new()
        .put(format!("http://{reg}/v2/berth-test/app/manifests/multi"))
        .header(
            "content-type",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        )
        .body(index.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 201, "{}", put.text().await.unwrap());

    let c = RegistryClient::new();
    let multi = image(&format!("{reg}/berth-test/app:multi"));
    let at = |arch: &str| Platform {
        os: "linux".into(),
        architecture: arch.into(),
    };
    let amd = c.inspect(&multi, &at("amd64"), None).await.unwrap();
    assert_eq!(amd.info.labels["org.opencontainers.image.version"], "v1");
    assert_eq!(amd.manifest_digest, d1);
    let arm = c.inspect(&multi, &at("arm64"), None).await.unwrap();
    assert_eq!(arm.info.labels["org.opencontainers.image.version"], "v2");
    let e = c.inspect(&multi, &at("s390x"), None).await.unwrap_err();
    assert!(e.to_string().contains("linux/s390x"), "{e}");
    // The tag's digest is the index's, as `docker pull` records it.
    let index_digest = format!("sha256:{}", hex::encode(Sha256::digest(index.to_string())));
    assert_eq!(c.digest(&multi, None).await.unwrap(), index_digest);
}

#[tokio::test]
async fn a_registry_behind_a_login() {
    let Some(env) = env() else { return };
    let reg = &env["BERTH_TEST_REGISTRY_AUTH"];
    let password = std::fs::read_to_string(&env["BERTH_TEST_REGISTRY_PASSWORD_FILE"]).unwrap();
    let good = Credentials {
        username: env["BERTH_TEST_REGISTRY_USER"].clone(),
        password: SecretString::new(password.trim()),
    };
    let bad = Credentials {
        username: good.username.clone(),
        password: SecretString::new("wrong"),
    };
    let c = RegistryClient::new();
    let private = image(&format!("{reg}/berth-test/private:v1"));
    let e = c.tags(&private, None).await.unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized(_)), "{e}");
    assert!(e.to_string().contains("needs a login"), "{e}");
    let e = c.tags(&private, Some(&bad)).await.unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized(_)), "{e}");
    assert_eq!(c.tags(&private, Some(&good)).await.unwrap(), ["v1"]);
    let cfg = c
        .inspect(&private, &Platform::host(), Some(&good))
        .await
        .unwrap();
    assert_eq!(cfg.info.exposed_tcp_ports, [8080]);
    c.check(reg, Some("berth-test/private"), Some(&good))
        .await
        .unwrap();
    assert!(matches!(
        c.check(reg, None, Some(&bad)).await,
        Err(RegistryError::Unauthorized(_))
    ));
}

#[tokio::test]
async fn connection_tests_say_what_failed() {
    let Some(env) = env() else { return };
    let c = RegistryClient::new();
    c.check(&env["BERTH_TEST_REGISTRY"], None, None)
        .await
        .unwrap();
    let e = c
        .check("registry.berth-test.invalid", None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::Dns(_)), "{e:?}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let e = c
        .check(&format!("127.0.0.1:{port}"), None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::Connect(_)), "{e:?}");
    // nginx answers, but it is no registry.
    let e = c
        .check(
            &format!("127.0.0.1:{}", env["BERTH_TEST_NGINX_PORT"]),
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::NotFound(_)), "{e:?}");
}

/// Debian's registry ignores `n` on tags/list, so paging is tested against a registry that
/// pages the way Quay does (the captured header in fixtures/oci/tags-list): a bearer token
/// from a realm, then pages linked by a relative URL with an opaque `next_page` cursor.
#[tokio::test]
async fn opaque_cursor_pages_and_the_token_flow() {
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let _ = rustls::crypto::ring::default_provider().install_default();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let token_calls = Arc::new(AtomicUsize::new(0));
    let all: Vec<String> = (0..7).map(|i| format!("t{i}")).collect();
    let app = axum::Router::new()
        .route(
            "/token",
            axum::routing::get(
                |State(calls): State<Arc<AtomicUsize>>, Query(q): Query<HashMap<String, String>>| async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(q["scope"], "repository:acme/app:pull");
                    assert_eq!(q["service"], "quay.test");
                    axum::Json(serde_json::json!({"token": "tok-1", "expires_in": 300}))
                },
            ),
        )
        .route(
            "/v2/acme/app/tags/list",
            axum::routing::get(move |headers: HeaderMap, Query(q): Query<HashMap<String, String>>| {
                let all = all.clone();
                async move {
                    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some("Bearer tok-1") {
                        return (
                            StatusCode::UNAUTHORIZED,
                            [(
                                header::WWW_AUTHENTICATE,
                                format!("Bearer realm=\"http://{addr}/token\",service=\"quay.test\",scope=\"repository:acme/app:pull\""),
                            )],
                        )
                            .into_response();
                    }
                    // The cursor is opaque to clients: here, the start index, disguised.
                    let start: usize = q
                        .get("next_page")
                        .map(|c| c.trim_start_matches("gAAAA").parse().unwrap())
                        .unwrap_or(0);
                    let end = (start + 3).min(all.len());
                    let body = axum::Json(serde_json::json!({"name": "acme/app", "tags": all[start..end]}));
                    if end < all.len() {
                        let link = format!("</v2/acme/app/tags/list?next_page=gAAAA{end}&n=3>; rel=\"next\"");
                        ([(header::LINK, link)], body).into_response()
                    } else {
                        body.into_response()
                    }
                }
            }),
        )
        .with_state(token_calls.clone());
    tokio::spawn(async move { axum::serve(l, app).await });

    let c = RegistryClient::new();
    let img = image(&format!("{addr}/acme/app"));
    let tags = c.tags_paged(&img, None, 3).await.unwrap();
    assert_eq!(tags, (0..7).map(|i| format!("t{i}")).collect::<Vec<_>>());
    // Once fetched, the token is reused until it expires.
    c.tags(&img, None).await.unwrap();
    assert_eq!(token_calls.load(Ordering::SeqCst), 1);
}
