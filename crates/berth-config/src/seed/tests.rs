use super::*;

const EXAMPLE: &str = include_str!("../../../../seed.example.yaml");

#[test]
fn the_example_file_is_valid_and_complete() {
    let seed = Seed::parse(EXAMPLE).unwrap_or_else(|e| panic!("seed.example.yaml: {e}"));
    assert_eq!(seed.global.domain.as_deref(), Some("example.com"));
    assert!(seed.npm.is_some());
    assert_eq!(seed.registries.len(), 2);
    let p = seed
        .projects
        .iter()
        .find(|p| p.name.as_str() == "web-app-launcher")
        .unwrap();
    assert_eq!(p.port, 3000);
    assert_eq!(p.stages.len(), 3);
    let prod = p.stages.iter().find(|s| s.name.as_str() == "prod").unwrap();
    assert_eq!(prod.promote_from.as_ref().map(|s| s.as_str()), Some("rel"));
    assert!(prod.confirm);
    assert!(matches!(p.env.get("SECRET_KEY"), Some(EnvValue::Secret(_))));
    assert_eq!(p.volumes.len(), 2);
}

#[test]
fn the_plan_s_own_example_parses() {
    // Seed 002's "Seed Config Format", verbatim but for the domain.
    let text = r#"
global:
  domain: dolgolyov-family.by
  server_ip: 93.84.96.191
  network: staging-net
  subdomain_pattern: "stage-{stage}-{project}"
  notification_url: https://notify.dolgolyov-family.by/webhook
npm:
  url: http://npm:81
  email: docker-watcher@dolgolyov-family.by
  password: "npm-password-here"
registries:
  gitea:
    url: https://git.dolgolyov-family.by
    type: gitea
    token: "gitea-token-here"
projects:
  web-app-launcher:
    registry: gitea
    image: git.dolgolyov-family.by/alexei/web-app-launcher
    port: 3000
    healthcheck: /api/health
    env:
      NODE_ENV: production
    stages:
      dev:
        tag_pattern: "dev-*"
        auto_deploy: true
        max_instances: 5
      rel:
        tag_pattern: "v*"
        auto_deploy: false
        max_instances: 2
      prod:
        tag_pattern: "v*"
        auto_deploy: false
        confirm: true
        promote_from: rel
        max_instances: 2
        subdomain: launcher
"#;
    let seed = Seed::parse(text).unwrap();
    assert_eq!(
        seed.registries[0].secret.as_ref().unwrap().expose(),
        "gitea-token-here"
    );
    assert_eq!(seed.projects[0].health, HealthCheck::http("/api/health"));
}

fn err(text: &str) -> SeedError {
    Seed::parse(text).expect_err("the seed should be refused")
}

#[test]
fn type_errors_name_line_and_field() {
    let e = err(
        "projects:\n  web:\n    image: r.io/a/web\n    port: lots\n    stages:\n      dev: {tag_pattern: '*'}\n",
    );
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.field.contains("port"), "{e}");
}

#[test]
fn unknown_fields_are_refused() {
    let e = err("global:\n  domian: example.com\n");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("domian"), "{e}");
}

#[test]
fn invalid_names_are_refused_through_their_types() {
    let e = err(
        "projects:\n  Web_App:\n    image: a/b\n    port: 80\n    stages: {dev: {tag_pattern: '*'}}\n",
    );
    assert!(e.to_string().contains("project name"), "{e}");
    assert_eq!(e.line, Some(2), "{e}");
}

#[test]
fn cross_references_are_checked_with_lines() {
    let text = "projects:\n  web:\n    image: r.io/a/web\n    port: 80\n    stages:\n      rel:\n        tag_pattern: 'v*'\n      prod:\n        tag_pattern: 'v*'\n        promote_from: staging\n";
    let e = err(text);
    assert_eq!(e.field, "projects.web.stages.prod.promote_from");
    assert_eq!(e.line, Some(10), "{e}");
    assert!(e.message.contains("staging"));

    let e = err(
        "projects:\n  web:\n    registry: nope\n    image: r.io/a/web\n    port: 80\n    stages: {dev: {tag_pattern: '*'}}\n",
    );
    assert_eq!(e.field, "projects.web.registry");
    assert_eq!(e.line, Some(3));
}

#[test]
fn semantic_errors() {
    let cases = [
        (
            "projects:\n  web:\n    image: r.io/a/web:v1\n    port: 80\n    stages: {dev: {tag_pattern: '*'}}\n",
            "without a tag",
        ),
        (
            "projects:\n  web:\n    image: r.io/a/web\n    port: 80\n    stages: {}\n",
            "at least one stage",
        ),
        (
            "projects:\n  web:\n    image: r.io/a/web\n    port: 80\n    memory: 2x\n    stages: {dev: {tag_pattern: '*'}}\n",
            "unit",
        ),
        (
            "projects:\n  web:\n    image: r.io/a/web\n    port: 80\n    env: {1BAD: x}\n    stages: {dev: {tag_pattern: '*'}}\n",
            "environment variable",
        ),
        (
            "projects:\n  web:\n    image: r.io/a/web\n    port: 80\n    volumes: [{source: rel, target: /x}]\n    stages: {dev: {tag_pattern: '*'}}\n",
            "absolute",
        ),
        (
            "projects:\n  web:\n    image: r.io/a/web\n    port: 80\n    stages: {dev: {tag_pattern: '*', max_instances: 0}}\n",
            "1 to 50",
        ),
        (
            "projects:\n  web:\n    image: r.io/a/web\n    port: 80\n    stages: {dev: {tag_pattern: '*', subdomain: 'Not A Label'}}\n",
            "DNS label",
        ),
        (
            "projects:\n  web:\n    image: r.io/a/web\n    port: 80\n    healthcheck: health\n    stages: {dev: {tag_pattern: '*'}}\n",
            "start with '/'",
        ),
        ("npm:\n  url: npm:81\n  email: a@b.c\n", "http://"),
        ("global:\n  subdomain_pattern: 'x-{stage}'\n", "{project}"),
        (
            "registries:\n  r:\n    url: https://r.io\n    type: nexus\n",
            "nexus",
        ),
    ];
    for (text, needle) in cases {
        let e = err(text);
        assert!(
            e.to_string().contains(needle),
            "expected {needle:?} in: {e}"
        );
        assert!(e.line.is_some(), "no line for: {e}");
    }
}

#[test]
fn not_yaml_at_all() {
    let e = err("projects: [unclosed\n");
    assert!(e.line.is_some(), "{e}");
}

#[test]
fn export_round_trips_and_hides_secrets() {
    let seed = Seed::parse(EXAMPLE).unwrap();
    let hidden = seed.to_yaml(IncludeSecrets::No);
    assert!(!hidden.contains("change-me-npm-password"), "{hidden}");
    assert!(!hidden.contains("s3cr3t-session-key"), "{hidden}");
    assert!(hidden.contains("secret: true"));
    // A secret-less export is refused as a seed (a secret has no value) rather than silently
    // importing empty secrets.
    assert!(
        Seed::parse(&hidden)
            .unwrap_err()
            .message
            .contains("secret without a value")
    );

    let full = seed.to_yaml(IncludeSecrets::Yes);
    assert!(full.contains("change-me-npm-password"));
    let again = Seed::parse(&full).unwrap_or_else(|e| panic!("{e}\n{full}"));
    assert_eq!(again, seed);
}

#[test]
fn projects_round_trip_through_the_api_shape_with_secrets_kept_sealed() {
    let seed = Seed::parse(EXAMPLE).unwrap();
    let p = seed
        .projects
        .iter()
        .find(|p| p.name.as_str() == "web-app-launcher")
        .unwrap();
    let json = project_to_json(p);
    assert_eq!(json["name"], "web-app-launcher");
    assert_eq!(
        json["env"]["SECRET_KEY"],
        serde_json::json!({"secret": true})
    );
    let EnvValue::Secret(secret) = &p.env["SECRET_KEY"] else {
        panic!("SECRET_KEY is a secret in the example")
    };
    assert!(!json.to_string().contains(secret.expose()));
    let names = ["gitea", "ghcr"];
    let back = project_from_json(json, &names).unwrap();
    assert_eq!(
        back.stages,
        p.stages
            .iter()
            .cloned()
            .map(|mut s| {
                for v in s.env.values_mut() {
                    if let EnvValue::Secret(_) = v {
                        *v = EnvValue::Secret(SecretString::default());
                    }
                }
                s
            })
            .collect::<Vec<_>>()
    );
    assert_eq!(back.port, p.port);
    assert_eq!(back.memory_bytes, p.memory_bytes);
    // "Keep the stored secret" comes back as an empty secret for the store to resolve.
    match &back.env["SECRET_KEY"] {
        EnvValue::Secret(s) => assert!(s.expose().is_empty()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn api_projects_are_validated_with_the_field_named() {
    let base = || {
        serde_json::json!({
            "name": "shop",
            "image": "127.0.0.1:15000/berth-test/app",
            "port": 8080,
            "stages": {"dev": {"tag_pattern": "v*"}}
        })
    };
    assert!(project_from_json(base(), &[]).is_ok());
    let cases: Vec<(serde_json::Value, &str, &str)> = vec![
        (serde_json::json!([]), "(body)", "JSON object"),
        (
            {
                let mut v = base();
                v.as_object_mut().unwrap().remove("name");
                v
            },
            "name",
            "required",
        ),
        (
            {
                let mut v = base();
                v["name"] = "Not A Name".into();
                v
            },
            "name",
            "",
        ),
        (
            {
                let mut v = base();
                v["port"] = 0.into();
                v
            },
            "port",
            "1 to 65535",
        ),
        (
            {
                let mut v = base();
                v["port"] = 70000.into();
                v
            },
            "(body)",
            "u16",
        ),
        (
            {
                let mut v = base();
                v["image"] = "x/app:v1".into();
                v
            },
            "image",
            "without a tag",
        ),
        (
            {
                let mut v = base();
                v["registry"] = "nope".into();
                v
            },
            "registry",
            "no registry named",
        ),
        (
            {
                let mut v = base();
                v["colour"] = "red".into();
                v
            },
            "(body)",
            "unknown field",
        ),
        (
            {
                let mut v = base();
                v["stages"] = serde_json::json!({});
                v
            },
            "stages",
            "at least one stage",
        ),
        (
            {
                let mut v = base();
                v["stages"]["dev"]["max_instances"] = 0.into();
                v
            },
            "stages.dev.max_instances",
            "1 to 50",
        ),
        (
            {
                let mut v = base();
                v["stages"]["dev"]["promote_from"] = "qa".into();
                v
            },
            "stages.dev.promote_from",
            "no stage qa",
        ),
        (
            {
                let mut v = base();
                v["stages"]["dev"]["subdomain"] = "a.b".into();
                v
            },
            "stages.dev.subdomain",
            "DNS label",
        ),
        (
            {
                let mut v = base();
                v["env"] = serde_json::json!({"BAD KEY": "x"});
                v
            },
            "env.BAD KEY",
            "",
        ),
        (
            {
                let mut v = base();
                v["env"] = serde_json::json!({"K": {"value": "", "secret": true}});
                v
            },
            "env.K",
            "needs a value",
        ),
        (
            {
                let mut v = base();
                v["labels"] = serde_json::json!({"berth.owner": "me"});
                v
            },
            "labels",
            "berth's own",
        ),
        (
            {
                let mut v = base();
                v["memory"] = "lots".into();
                v
            },
            "memory",
            "",
        ),
        (
            {
                let mut v = base();
                v["poll_interval_secs"] = 5.into();
                v
            },
            "poll_interval_secs",
            "10 seconds",
        ),
    ];
    for (body, field, message) in cases {
        let e = project_from_json(body.clone(), &[]).expect_err(&body.to_string());
        assert_eq!(e.field, field, "{body}: {e}");
        assert!(e.message.contains(message), "{body}: {e}");
        assert_eq!(e.line, None);
    }
}

#[test]
fn memory_is_written_in_the_unit_that_states_it_exactly() {
    assert_eq!(format_memory(512 << 20), "512m");
    assert_eq!(format_memory(2 << 30), "2g");
    assert_eq!(format_memory(1536 << 10), "1536k");
    assert_eq!(format_memory(1000), "1000");
}

#[test]
fn polling_is_off_at_zero_and_otherwise_at_least_ten_seconds() {
    let g = |secs: u64| GlobalSettings {
        poll_interval_secs: secs,
        ..Default::default()
    };
    assert_eq!(validate_global(&g(0)), Ok(()));
    assert_eq!(validate_global(&g(10)), Ok(()));
    let (field, message) = validate_global(&g(5)).unwrap_err();
    assert_eq!(field, "poll_interval_secs");
    assert!(message.contains("0 (no polling)"), "{message}");
}

#[test]
fn the_network_must_be_a_name_docker_accepts() {
    let g = |n: &str| GlobalSettings {
        network: n.into(),
        ..Default::default()
    };
    for ok in ["berth", "proxy_net", "a.b-c", "9net"] {
        assert_eq!(validate_global(&g(ok)), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "no spaces",
        "-dash-first",
        "semi;colon",
        &"n".repeat(65),
    ] {
        let (field, _) = validate_global(&g(bad)).unwrap_err();
        assert_eq!(field, "network", "{bad:?}");
    }
}
