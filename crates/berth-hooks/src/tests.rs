use super::*;
use serde_json::json;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pushes(o: Outcome) -> Vec<(String, String, Option<String>)> {
    match o {
        Outcome::Pushes(p) => p
            .into_iter()
            .map(|p| (p.repository, p.tag, p.digest))
            .collect(),
        Outcome::Ignored(why) => panic!("ignored: {why}"),
    }
}

fn ignored(o: Outcome) -> String {
    match o {
        Outcome::Ignored(why) => why,
        other => panic!("expected ignored, got {other:?}"),
    }
}

#[test]
fn github_s_published_test_vector_verifies_and_tampering_does_not() {
    let v: Value = serde_json::from_slice(&fixture("signature-test-vector.json")).unwrap();
    let secret = v["secret"].as_str().unwrap().as_bytes();
    let body = v["payload"].as_str().unwrap().as_bytes();
    let sig = v["X-Hub-Signature-256"].as_str().unwrap();
    let ok = h(&[("X-Hub-Signature-256", sig)]);
    assert_eq!(verify(Source::GitHub, secret, &ok, body), Ok(()));
    assert_eq!(
        verify(Source::GitHub, secret, &ok, b"Hello, World?"),
        Err(HookError::Unauthenticated)
    );
    assert_eq!(
        verify(Source::GitHub, b"another secret", &ok, body),
        Err(HookError::Unauthenticated)
    );
    assert_eq!(
        verify(Source::GitHub, secret, &h(&[]), body),
        Err(HookError::Unauthenticated)
    );
    assert_eq!(
        verify(
            Source::GitHub,
            secret,
            &h(&[("x-hub-signature-256", "sha256=zz")]),
            body
        ),
        Err(HookError::Unauthenticated)
    );
    // Gitea and Forgejo send the same HMAC, hex without a prefix, in their own header.
    let bare = sig.trim_start_matches("sha256=");
    for (source, name) in [
        (Source::Gitea, "X-Gitea-Signature"),
        (Source::Forgejo, "X-Forgejo-Signature"),
    ] {
        assert_eq!(verify(source, secret, &h(&[(name, bare)]), body), Ok(()));
        assert_eq!(
            verify(source, secret, &h(&[("X-Hub-Signature-256", sig)]), body),
            Err(HookError::Unauthenticated),
            "{source:?} reads its own header"
        );
    }
}

#[test]
fn token_sources_compare_the_header_with_the_secret() {
    for (source, name) in [
        (Source::GitLab, "X-Gitlab-Token"),
        (Source::Harbor, "Authorization"),
        (Source::Distribution, "Authorization"),
    ] {
        assert_eq!(
            verify(source, b"s3cret", &h(&[(name, "s3cret")]), b"{}"),
            Ok(())
        );
        assert_eq!(
            verify(source, b"s3cret", &h(&[(name, "Bearer s3cret")]), b"{}"),
            Ok(())
        );
        for wrong in ["s3cre", "s3cret!", "", "Bearer "] {
            assert_eq!(
                verify(source, b"s3cret", &h(&[(name, wrong)]), b"{}"),
                Err(HookError::Unauthenticated),
                "{source:?} {wrong:?}"
            );
        }
    }
}

#[test]
fn github_package_events_from_a_real_capture_and_the_docs() {
    let body = fixture("package.published.container.real-capture.multiarch.json");
    let got = pushes(parse(Source::GitHub, &h(&[("X-GitHub-Event", "package")]), &body).unwrap());
    assert_eq!(
        got,
        [(
            "ghcr.io/theryangeary/www".to_string(),
            "0e2a89b".to_string(),
            Some("sha256:89160c587d0c36bf54090497a465445c14980ba48efbcf3b0d03c49b76f3feb8".into())
        )]
    );
    // The documentation's examples carry an empty tag name: a digest-only version.
    for (event, file) in [
        ("package", "package.published.docker.json"),
        ("registry_package", "registry_package.published.docker.json"),
    ] {
        let why = ignored(
            parse(
                Source::GitHub,
                &h(&[("X-GitHub-Event", event)]),
                &fixture(file),
            )
            .unwrap(),
        );
        assert!(why.contains("untagged"), "{why}");
    }
    let why = ignored(
        parse(
            Source::GitHub,
            &h(&[("X-GitHub-Event", "push")]),
            &fixture("push.new-branch.json"),
        )
        .unwrap(),
    );
    assert!(why.contains("push events"), "{why}");
    assert_eq!(
        ignored(
            parse(
                Source::GitHub,
                &h(&[("X-GitHub-Event", "ping")]),
                br#"{"zen":"x"}"#
            )
            .unwrap()
        ),
        "ping"
    );
    assert!(matches!(
        parse(Source::GitHub, &h(&[]), &body),
        Err(HookError::Malformed(m)) if m.contains("X-GitHub-Event")
    ));
}

#[test]
fn docker_hub_pushes_name_the_repository_and_tag() {
    let got = pushes(parse(Source::DockerHub, &h(&[]), &fixture("dockerhub.push.json")).unwrap());
    assert_eq!(
        got,
        [(
            "docker.io/svendowideit/testhook".to_string(),
            "latest".to_string(),
            None
        )]
    );
}

#[test]
fn distribution_notifications_keep_tagged_manifest_pushes_only() {
    // The docs' v1 and v2 envelopes: a manifest pushed by digest plus two layers.
    for f in ["distribution.v1.push.json", "distribution.v2.push.json"] {
        let why = ignored(parse(Source::Distribution, &h(&[]), &fixture(f)).unwrap());
        assert!(
            why.contains("push manifest") && why.contains("push blob"),
            "{f}: {why}"
        );
    }
    let why = ignored(
        parse(
            Source::Distribution,
            &h(&[]),
            &fixture("distribution.v1.pull.json"),
        )
        .unwrap(),
    );
    assert!(why.contains("pull manifest"), "{why}");
    // The same envelope with the tag a `docker push host/repo:tag` sets.
    let mut v: Value = serde_json::from_slice(&fixture("distribution.v2.push.json")).unwrap();
    v["events"][0]["target"]["tag"] = json!("v1.2.0");
    let got = pushes(parse(Source::Distribution, &h(&[]), v.to_string().as_bytes()).unwrap());
    assert_eq!(
        got,
        [(
            "example.com/library/test".to_string(),
            "v1.2.0".to_string(),
            Some("sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf".into())
        )]
    );
}

/// Gitea's `PackagePayload` (modules/structs/hook.go) as its webhook sends it.
fn gitea_body(action: &str, kind: &str, version: &str) -> Vec<u8> {
    json!({
        "action": action,
        "package": {
            "id": 7, "type": kind, "name": "My-App", "version": version,
            "owner": {"id": 1, "login": "Alexei", "username": "Alexei"},
            "creator": {"id": 1, "login": "Alexei"},
            "html_url": "https://git.example.com/Alexei/-/packages/container/my-app/v1",
            "created_at": "2026-11-23T10:00:00Z"
        },
        "sender": {"id": 1, "login": "Alexei"}
    })
    .to_string()
    .into_bytes()
}

#[test]
fn gitea_and_forgejo_container_packages() {
    for source in [Source::Gitea, Source::Forgejo] {
        let got = pushes(
            parse(
                source,
                &h(&[("X-Gitea-Event", "package")]),
                &gitea_body("created", "container", "v1"),
            )
            .unwrap(),
        );
        assert_eq!(
            got,
            [(
                "git.example.com/alexei/my-app".to_string(),
                "v1".to_string(),
                None
            )]
        );
        for (action, kind, version, why) in [
            ("deleted", "container", "v1", "package deleted"),
            ("created", "npm", "1.0.0", "not a container"),
            ("created", "container", "sha256:abcd", "digest"),
        ] {
            let w = ignored(parse(source, &h(&[]), &gitea_body(action, kind, version)).unwrap());
            assert!(w.contains(why), "{w}");
        }
        let w = ignored(parse(source, &h(&[("X-Forgejo-Event", "push")]), b"{}").unwrap());
        assert!(w.contains("push events"), "{w}");
    }
}

#[test]
fn harbor_default_and_cloudevents_formats() {
    let data = json!({
        "resources": [{
            "digest": "sha256:6e17fb5c7d5b6d4e6d4e2e1a0c2a5d3c5b8f4e0a7b1c2d3e4f5a6b7c8d9e0f1a",
            "tag": "v2",
            "resource_url": "harbor.example.com/library/shop:v2"
        }],
        "repository": {"name": "shop", "namespace": "library", "repo_full_name": "library/shop", "repo_type": "private"}
    });
    let default = json!({"type": "PUSH_ARTIFACT", "occur_at": 1700000000, "operator": "ci", "event_data": data});
    let cloud = json!({
        "specversion": "1.0", "id": "1", "source": "/projects/1/webhook/policies/1",
        "type": "harbor.artifact.pushed", "datacontenttype": "application/json",
        "time": "2026-11-23T10:00:00Z", "data": data
    });
    for body in [default, cloud] {
        let got = pushes(parse(Source::Harbor, &h(&[]), body.to_string().as_bytes()).unwrap());
        assert_eq!(got[0].0, "harbor.example.com/library/shop");
        assert_eq!(got[0].1, "v2");
        assert!(got[0].2.as_deref().unwrap().starts_with("sha256:"));
    }
    let pulled = json!({"type": "PULL_ARTIFACT", "event_data": {"resources": []}});
    assert!(
        ignored(parse(Source::Harbor, &h(&[]), pulled.to_string().as_bytes()).unwrap())
            .contains("PULL_ARTIFACT")
    );
}

#[test]
fn quay_updated_tags_as_a_list_or_an_object() {
    for tags in [
        json!(["latest", "v3"]),
        json!({"latest": "abc", "v3": "def"}),
    ] {
        let body = json!({
            "repository": "acme/shop", "namespace": "acme", "name": "shop",
            "docker_url": "quay.io/acme/shop", "homepage": "https://quay.io/repository/acme/shop",
            "updated_tags": tags
        });
        let mut got: Vec<String> =
            pushes(parse(Source::Quay, &h(&[]), body.to_string().as_bytes()).unwrap())
                .into_iter()
                .map(|(r, t, _)| format!("{r}:{t}"))
                .collect();
        got.sort();
        assert_eq!(got, ["quay.io/acme/shop:latest", "quay.io/acme/shop:v3"]);
    }
}

#[test]
fn generic_and_gitlab_bodies() {
    let got = pushes(
        parse(
            Source::Generic,
            &h(&[]),
            br#"{"image":"127.0.0.1:15000/berth-test/app:v2"}"#,
        )
        .unwrap(),
    );
    assert_eq!(
        got,
        [(
            "127.0.0.1:15000/berth-test/app".to_string(),
            "v2".to_string(),
            None
        )]
    );
    let got = pushes(
        parse(
            Source::GitLab,
            &h(&[]),
            br#"{"image":"registry.gitlab.com/acme/shop:1.4"}"#,
        )
        .unwrap(),
    );
    assert_eq!(got[0].0, "registry.gitlab.com/acme/shop");
    let w = ignored(parse(Source::GitLab, &h(&[]), br#"{"object_kind":"pipeline"}"#).unwrap());
    assert!(w.contains("pipeline"), "{w}");
}

#[test]
fn malformed_bodies_get_a_message_naming_what_is_wrong() {
    let cases: &[(Source, &[u8], &str)] = &[
        (Source::Generic, b"{not json", "not JSON"),
        (Source::Generic, b"{}", "image: required"),
        (Source::Generic, br#"{"image":"app"}"#, "names no tag"),
        (Source::Generic, br#"{"image":"NOT A REF:v1"}"#, "image:"),
        (
            Source::DockerHub,
            br#"{"push_data":{"tag":"v1"}}"#,
            "repository.repo_name",
        ),
        (
            Source::Quay,
            br#"{"docker_url":"quay.io/a/b"}"#,
            "updated_tags",
        ),
        (
            Source::Quay,
            br#"{"docker_url":"quay.io/a/b","updated_tags":["bad tag!"]}"#,
            "",
        ),
        (
            Source::Distribution,
            br#"{"events":"x"}"#,
            "events: required",
        ),
        (Source::Harbor, br#"{"type":"PUSH_ARTIFACT"}"#, "event_data"),
    ];
    for (source, body, needle) in cases {
        match parse(*source, &h(&[]), body) {
            Err(HookError::Malformed(m)) => assert!(m.contains(needle), "{source:?}: {m}"),
            other => panic!("{source:?} {}: {other:?}", String::from_utf8_lossy(body)),
        }
    }
}

#[test]
fn sources_round_trip_their_names() {
    for s in Source::ALL {
        assert_eq!(Source::parse(s.as_str()), Some(s));
    }
    assert_eq!(Source::parse("nope"), None);
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[ -~]{0,40}".prop_map(Value::String),
            prop_oneof![
                Just("push"),
                Just("created"),
                Just("container"),
                Just("PUSH_ARTIFACT"),
                Just("published"),
                Just("v1"),
                Just("sha256:ab"),
                Just("reg.test/a/b:c"),
            ]
            .prop_map(|s| Value::String(s.into())),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let keys = prop_oneof![
                Just("image".to_string()),
                Just("events".to_string()),
                Just("target".to_string()),
                Just("tag".to_string()),
                Just("package".to_string()),
                Just("action".to_string()),
                Just("type".to_string()),
                Just("event_data".to_string()),
                Just("resources".to_string()),
                Just("updated_tags".to_string()),
                Just("docker_url".to_string()),
                Just("push_data".to_string()),
                Just("repository".to_string()),
                "[a-z_]{1,8}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys, inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
            for s in Source::ALL {
                let _ = parse(s, &h(&[("x-github-event", "package")]), &body);
                let _ = verify(s, b"k", &h(&[("x-hub-signature-256", "sha256=00"), ("authorization", "k")]), &body);
            }
        }

        #[test]
        fn arbitrary_json_never_panics_and_pushes_are_valid_images(v in json_value()) {
            let body = v.to_string();
            for s in Source::ALL {
                for event in ["package", "registry_package", "ping"] {
                    if let Ok(Outcome::Pushes(p)) = parse(s, &h(&[("x-github-event", event)]), body.as_bytes()) {
                        prop_assert!(!p.is_empty());
                        for push in p {
                            prop_assert!(push.image().is_ok());
                        }
                    }
                }
            }
        }
    }
}
