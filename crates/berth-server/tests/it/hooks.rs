//! The webhook gateway through the real router: per-source secrets, signatures checked before
//! anything is read, every delivery recorded, retries and repeated pushes deployed once.

use crate::support::{EXAMPLE_SEED, TestApp};
use axum::body::Body;
use axum::http::{Method, Request};
use berth_domain::Role;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

fn sign(secret: &str, body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

async fn post(
    t: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> crate::support::Answer {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    t.send(b.body(Body::from(body.to_vec())).unwrap()).await
}

async fn secret_for(t: &TestApp, admin: &str, source: &str) -> (String, String) {
    let a = t
        .call(
            Method::POST,
            &format!("/api/settings/hooks/{source}/secret"),
            Some(admin),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    (
        v["secret"].as_str().unwrap().to_string(),
        v["path"].as_str().unwrap().to_string(),
    )
}

/// Gitea's package event for the example seed's project (stage dev takes `dev-*`).
fn gitea_push(tag: &str) -> Vec<u8> {
    json!({
        "action": "created",
        "package": {
            "type": "container", "name": "web-app-launcher", "version": tag,
            "owner": {"login": "alexei"},
            "html_url": "https://git.example.com/alexei/-/packages/container/web-app-launcher/1"
        }
    })
    .to_string()
    .into_bytes()
}

async fn deliveries(t: &TestApp, token: &str) -> Vec<Value> {
    t.get("/api/deliveries?source=gitea", Some(token))
        .await
        .json()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_signed_forge_push_deploys_once_and_every_delivery_is_recorded() {
    let t = TestApp::builder().seed(EXAMPLE_SEED).build().await;
    let admin = t.token(Role::Admin).await;
    let viewer = t.token(Role::Viewer).await;

    // No secret yet: refused, and recorded.
    let body = gitea_push("dev-1a2b3c");
    post(&t, "/api/hooks/gitea", &[], &body).await.error(404);
    let (secret, path) = secret_for(&t, &admin, "gitea").await;
    assert_eq!(path, "/api/hooks/gitea");
    let list = t.get("/api/settings/hooks", Some(&admin)).await.json();
    let gitea = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "gitea")
        .unwrap();
    assert_eq!(gitea["configured"], true);
    assert_eq!(gitea["auth"], "hmac");
    assert!(
        !list.to_string().contains(&secret),
        "the secret is shown once only"
    );

    // Bad and missing signatures: 401, nothing deployed.
    let wrong = sign("not-the-secret", &body);
    for h in [vec![("X-Gitea-Signature", wrong.as_str())], vec![]] {
        let msg = post(&t, "/api/hooks/gitea", &h, &body).await.error(401);
        assert!(msg.contains("not signed"), "{msg}");
    }
    // A signature over another body does not carry over.
    let sig = sign(&secret, &body);
    post(
        &t,
        "/api/hooks/gitea",
        &[("X-Gitea-Signature", sig.as_str())],
        &gitea_push("dev-other"),
    )
    .await
    .error(401);
    assert_eq!(t.get("/api/deploys", Some(&viewer)).await.json(), json!([]));

    // Signed: accepted, one deploy queued for dev.
    let headers = [
        ("X-Gitea-Signature", sig.as_str()),
        ("X-Gitea-Delivery", "d-1"),
        ("X-Gitea-Event", "package"),
    ];
    let a = post(&t, "/api/hooks/gitea", &headers, &body).await;
    assert_eq!(a.status, 202, "{}", a.text);
    let v = a.json();
    assert_eq!(v["outcome"], "accepted");
    assert_eq!(v["results"][0]["project"], "web-app-launcher");
    assert_eq!(v["results"][0]["deploys"][0]["stage"], "dev");
    // Gitea retries the same delivery: recorded, deployed nothing.
    let a = post(&t, "/api/hooks/gitea", &headers, &body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["outcome"], "duplicate");
    let deploys = t.get("/api/deploys", Some(&viewer)).await.json();
    assert_eq!(deploys.as_array().unwrap().len(), 1, "{deploys}");
    assert_eq!(deploys[0]["actor"], "gitea");

    // Not a push: 200, recorded as ignored with the reason.
    let deleted = json!({"action": "deleted", "package": {"type": "container"}}).to_string();
    let sig2 = sign(&secret, deleted.as_bytes());
    let a = post(
        &t,
        "/api/hooks/gitea",
        &[("X-Gitea-Signature", sig2.as_str())],
        deleted.as_bytes(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["outcome"], "ignored");

    // Signed garbage: 400 with the parser's words, recorded as rejected.
    let junk = b"{\"action\": \"created\", \"package\": {\"type\": \"container\"}}";
    let sig3 = sign(&secret, junk);
    let msg = post(
        &t,
        "/api/hooks/gitea",
        &[("X-Gitea-Signature", sig3.as_str())],
        junk,
    )
    .await
    .error(400);
    assert!(msg.contains("package.version"), "{msg}");

    let outcomes: Vec<String> = deliveries(&t, &viewer)
        .await
        .iter()
        .map(|d| d["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        outcomes,
        [
            "rejected",
            "ignored",
            "duplicate",
            "accepted",
            "rejected",
            "rejected",
            "rejected",
            "rejected"
        ],
        "newest first"
    );
    // Regenerating stops the old secret at once.
    let (_new, _) = secret_for(&t, &admin, "gitea").await;
    post(&t, "/api/hooks/gitea", &headers, &body)
        .await
        .error(401);
}

#[tokio::test]
async fn url_secret_sources_and_repeated_digests() {
    let t = TestApp::builder().seed(EXAMPLE_SEED).build().await;
    let admin = t.token(Role::Admin).await;
    let viewer = t.token(Role::Viewer).await;
    let (secret, path) = secret_for(&t, &admin, "generic").await;
    assert_eq!(path, format!("/api/hooks/generic/{secret}"));
    let body =
        br#"{"image": "git.example.com/alexei/web-app-launcher:dev-77", "digest": "sha256:aaaa"}"#;
    post(&t, "/api/hooks/generic/wrong-secret", &[], body)
        .await
        .error(404);
    post(&t, "/api/hooks/generic", &[], body).await.error(404);
    post(&t, "/api/hooks/github/some-secret", &[], body)
        .await
        .error(404);
    post(&t, "/api/hooks/nonsense", &[], body).await.error(404);
    let a = post(&t, &path, &[], body).await;
    assert_eq!(a.status, 202, "{}", a.text);
    // The same image and digest again (a registry notifying twice): deployed once.
    let a = post(&t, &path, &[], body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["outcome"], "duplicate");
    let deploys = t.get("/api/deploys", Some(&viewer)).await.json();
    assert_eq!(deploys.as_array().unwrap().len(), 1, "{deploys}");
    // An image no project deploys: 404, recorded as rejected with the reason.
    let other = br#"{"image": "git.example.com/alexei/unknown:v1"}"#;
    let msg = post(&t, &path, &[], other).await.error(404);
    assert!(msg.contains("no project"), "{msg}");
    let d = t
        .get("/api/deliveries?source=generic", Some(&viewer))
        .await
        .json();
    assert_eq!(d[0]["outcome"], "rejected");
    assert!(d[0]["reason"].as_str().unwrap().contains("no project"));
    t.get("/api/deliveries?source=nope", Some(&viewer))
        .await
        .error(404);

    // A digest already live in the stage is not deployed again.
    let (pid, sid) = t
        .app
        .store
        .stage_ids("web-app-launcher", "dev")
        .await
        .unwrap()
        .unwrap();
    t.app
        .store
        .create_instance(&berth_store::InstanceRecord {
            id: "live-1".into(),
            project_id: pid,
            stage_id: sid,
            deploy_id: None,
            container_id: Some("c1".into()),
            container_name: "berth-web-app-launcher-dev-live".into(),
            tag: "dev-live".into(),
            digest: Some("sha256:bbbb".into()),
            subdomain: "stage-dev-web-app-launcher".into(),
            status: "live".into(),
            route_id: None,
            created_at: "2026-11-23T00:00:00.000Z".into(),
            updated_at: "2026-11-23T00:00:00.000Z".into(),
        })
        .await
        .unwrap();
    let same = br#"{"image": "git.example.com/alexei/web-app-launcher:dev-again", "digest": "sha256:bbbb"}"#;
    let a = post(&t, &path, &[], same).await;
    assert_eq!(a.status, 202, "{}", a.text);
    let v = a.json();
    assert_eq!(v["results"][0]["deploys"], json!([]), "{v}");
    assert!(
        v["results"][0]["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("already live"),
        "{v}"
    );
}

#[tokio::test]
async fn a_burst_of_notifications_for_one_push_deploys_once() {
    let t = TestApp::builder().seed(EXAMPLE_SEED).build().await;
    let admin = t.token(Role::Admin).await;
    let (_, path) = secret_for(&t, &admin, "generic").await;
    let body = br#"{"image": "git.example.com/alexei/web-app-launcher:dev-burst", "digest": "sha256:cccc"}"#;
    let answers = futures::future::join_all((0..20).map(|_| post(&t, &path, &[], body))).await;
    let mut outcomes: Vec<String> = answers
        .iter()
        .map(|a| a.json()["outcome"].as_str().unwrap().to_string())
        .collect();
    outcomes.sort();
    outcomes.dedup_by(|a, b| a == b);
    let accepted = answers.iter().filter(|a| a.status == 202).count();
    assert_eq!(accepted, 1, "{outcomes:?}");
    let deploys = t.get("/api/deploys", Some(&admin)).await.json();
    assert_eq!(deploys.as_array().unwrap().len(), 1, "{deploys}");
    assert!(
        t.app.hook_locks.lock().unwrap().is_empty(),
        "locks are forgotten"
    );
}

/// (source, event header, body, status with good auth, what the answer says)
type Case<'a> = (&'a str, Option<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../berth-hooks/tests/fixtures");

/// Every sender's format through the real endpoint, with its real authentication: the good
/// one gets through to the parser (202 for a push berth deploys, 404 naming the repository
/// it has no project for, 200 for what is not a push); a wrong one is 401/404 and recorded.
#[tokio::test]
async fn every_source_format_through_the_endpoint_with_good_and_bad_authentication() {
    let t = TestApp::builder().seed(EXAMPLE_SEED).build().await;
    let admin = t.token(Role::Admin).await;
    let fixture = |f: &str| std::fs::read(format!("{FIXTURES}/{f}")).unwrap();
    let mut tagged_registry: Value =
        serde_json::from_slice(&fixture("distribution.v2.push.json")).unwrap();
    tagged_registry["events"][0]["target"]["tag"] = json!("dev-9");
    tagged_registry["events"][0]["target"]["url"] =
        json!("https://git.example.com/v2/alexei/web-app-launcher/manifests/sha256:x");
    tagged_registry["events"][0]["target"]["repository"] = json!("alexei/web-app-launcher");
    let harbor = json!({"type": "PUSH_ARTIFACT", "event_data": {"resources": [
        {"tag": "dev-h", "digest": "sha256:dd", "resource_url": "git.example.com/alexei/web-app-launcher:dev-h"}]}});
    let quay =
        json!({"docker_url": "git.example.com/alexei/web-app-launcher", "updated_tags": ["dev-q"]});
    let cases: Vec<Case> = vec![
        (
            "github",
            Some(("X-GitHub-Event", "package")),
            fixture("package.published.container.real-capture.multiarch.json"),
            404,
            "ghcr.io/theryangeary/www",
        ),
        (
            "github",
            Some(("X-GitHub-Event", "ping")),
            br#"{"zen": "Keep it logically awesome."}"#.to_vec(),
            200,
            "ignored",
        ),
        (
            "github",
            Some(("X-GitHub-Event", "push")),
            fixture("push.new-branch.json"),
            200,
            "ignored",
        ),
        (
            "dockerhub",
            None,
            fixture("dockerhub.push.json"),
            404,
            "docker.io/svendowideit/testhook",
        ),
        (
            "distribution",
            None,
            fixture("distribution.v1.push.json"),
            200,
            "ignored",
        ),
        (
            "distribution",
            None,
            tagged_registry.to_string().into_bytes(),
            202,
            "accepted",
        ),
        (
            "gitea",
            Some(("X-Gitea-Event", "package")),
            gitea_push("dev-g"),
            202,
            "accepted",
        ),
        (
            "forgejo",
            Some(("X-Forgejo-Event", "package")),
            gitea_push("dev-f"),
            202,
            "accepted",
        ),
        (
            "gitlab",
            None,
            br#"{"image": "git.example.com/alexei/web-app-launcher:dev-l"}"#.to_vec(),
            202,
            "accepted",
        ),
        (
            "harbor",
            None,
            harbor.to_string().into_bytes(),
            202,
            "accepted",
        ),
        ("quay", None, quay.to_string().into_bytes(), 202, "accepted"),
    ];
    for (source, event, body, want, says) in cases {
        let (secret, path) = secret_for(&t, &admin, source).await;
        let sig = sign(&secret, &body);
        let bearer = format!("Bearer {secret}");
        let mut good: Vec<(&str, &str)> = event.into_iter().collect();
        let mut bad = good.clone();
        match berth_hooks::Source::parse(source).unwrap().auth() {
            berth_hooks::Auth::UrlSecret => {}
            berth_hooks::Auth::Hmac(h) => {
                good.push((h, sig.as_str()));
                bad.push((h, "00ff"));
            }
            berth_hooks::Auth::Token(h) => {
                good.push((
                    h,
                    if h == "authorization" {
                        bearer.as_str()
                    } else {
                        secret.as_str()
                    },
                ));
                bad.push((h, "not-it"));
            }
        }
        let wrong_path = if path.ends_with(&secret) {
            path.replace(&secret, "not-the-secret")
        } else {
            path.clone()
        };
        let a = post(&t, &wrong_path, &bad, &body).await;
        assert!(
            a.status == 401 || a.status == 404,
            "{source} bad auth: {} {}",
            a.status,
            a.text
        );
        let a = post(&t, &path, &good, &body).await;
        assert_eq!(a.status.as_u16(), want, "{source}: {}", a.text);
        assert!(a.text.contains(says), "{source}: {}", a.text);
    }
    let all = t
        .get("/api/deliveries?limit=1000", Some(&admin))
        .await
        .json();
    assert_eq!(
        all.as_array().unwrap().len(),
        22,
        "every delivery recorded: {all}"
    );
}
