//! The pure parts: auth challenges, `Link` headers, platform selection, image configs. Every
//! input comes from a registry berth may not trust; nothing here panics (fuzzed).

use crate::Platform;
use berth_domain::ports::ImageInfo;
use reqwest::header::{HeaderMap, LINK};
use serde_json::Value;

/// What a `401`'s `WWW-Authenticate` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
pub fn parse_challenge(header: &str) -> Result<Challenge, String> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Ok(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(format!("unknown auth scheme {scheme:?}"));
    }
    let params = params(rest)?;
    let realm = params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("realm"))
        .map(|(_, v)| v.clone())
        .filter(|r| r.starts_with("https://") || r.starts_with("http://"))
        .ok_or_else(|| "the challenge names no http(s) realm".to_string())?;
    let service = params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("service"))
        .map(|(_, v)| v.clone());
    Ok(Challenge::Bearer { realm, service })
}

/// `k="v",k2=v2` (quoted values may hold commas), refusing an unterminated quote.
fn params(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let value = if chars.peek() == Some(&'"') {
            chars.next();
            let mut v = String::new();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            v.push(n)
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => v.push(c),
                }
            }
            if !closed {
                return Err(format!("unterminated quote in the challenge's {key}"));
            }
            v
        } else {
            chars.by_ref().take_while(|c| *c != ',').collect()
        };
        out.push((key.trim().to_string(), value));
    }
}

/// The `rel="next"` target of a `Link` header, made absolute against `base`
/// (`scheme://host`).
pub fn next_link(headers: &HeaderMap, base: &str) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|part| {
            let (url, attrs) = part.trim().split_once(';')?;
            let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
            attrs
                .split(';')
                .any(|a| {
                    let a = a.trim().replace(' ', "");
                    a == "rel=\"next\"" || a == "rel=next"
                })
                .then(|| {
                    if url.starts_with("http://") || url.starts_with("https://") {
                        url.to_string()
                    } else if url.starts_with('/') {
                        format!("{}{url}", base.trim_end_matches('/'))
                    } else {
                        format!("{}/{url}", base.trim_end_matches('/'))
                    }
                })
        })
}

/// From a manifest list or OCI index's `manifests`, the digest for `platform` (an exact
/// os/architecture match; variants are not told apart).
pub fn pick_platform(list: &[Value], platform: &Platform) -> Option<String> {
    list.iter().find_map(|m| {
        let p = m.get("platform")?;
        (p.get("os")?.as_str()? == platform.os
            && p.get("architecture")?.as_str()? == platform.architecture)
            .then(|| m.get("digest")?.as_str().map(String::from))
            .flatten()
    })
}

/// EXPOSE, HEALTHCHECK and labels from an image config blob.
pub fn image_info(config: &Value) -> ImageInfo {
    let c = config.get("config").unwrap_or(&Value::Null);
    let mut exposed_tcp_ports: Vec<u16> = c
        .get("ExposedPorts")
        .and_then(Value::as_object)
        .map(|o| {
            o.keys()
                .filter_map(|k| {
                    let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
                    (proto == "tcp").then(|| port.parse().ok()).flatten()
                })
                .collect()
        })
        .unwrap_or_default();
    exposed_tcp_ports.sort_unstable();
    exposed_tcp_ports.dedup();
    let healthcheck = c
        .get("Healthcheck")
        .and_then(|h| h.get("Test"))
        .and_then(Value::as_array)
        .and_then(|t| t.first())
        .and_then(Value::as_str)
        .is_some_and(|first| first != "NONE");
    let labels = c
        .get("Labels")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    ImageInfo {
        exposed_tcp_ports,
        healthcheck,
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn challenges_from_the_spec_and_ghcr_and_a_malformed_one() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#
            ),
            Ok(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:visualon/drone-git:pull""#
            ),
            Ok(Challenge::Bearer {
                realm: "https://ghcr.io/token".into(),
                service: Some("ghcr.io".into())
            })
        );
        let e = parse_challenge(r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:user/image:pull"#).unwrap_err();
        assert!(e.contains("unterminated"), "{e}");
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Ok(Challenge::Basic)
        );
        assert!(
            parse_challenge(r#"Bearer service="x""#).is_err(),
            "no realm"
        );
        assert!(parse_challenge(r#"Bearer realm="file:///etc/passwd""#).is_err());
        assert!(parse_challenge("Negotiate abc").is_err());
    }

    fn link(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(LINK, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn link_headers_from_quay_harbor_and_the_spec() {
        let base = "https://quay.io";
        // Quay: relative, opaque cursor.
        assert_eq!(
            next_link(&link(r#"</v2/invisionag/yet-another-cloudwatch-exporter/tags/list?next_page=gAAAAABg1i7jwRsgyD_X_wcMmj11T0waURK8w2MpuKG3a5B5C_iWzc1YMHTRDAPiwnqT4s0gkVdH7tUbc5HlXy7RxT139fZABKiEw7vtjNWj8D8dSAAy-fQ%3D&n=50>; rel="next""#), base).as_deref(),
            Some("https://quay.io/v2/invisionag/yet-another-cloudwatch-exporter/tags/list?next_page=gAAAAABg1i7jwRsgyD_X_wcMmj11T0waURK8w2MpuKG3a5B5C_iWzc1YMHTRDAPiwnqT4s0gkVdH7tUbc5HlXy7RxT139fZABKiEw7vtjNWj8D8dSAAy-fQ%3D&n=50")
        );
        // Harbor: last= before n=.
        assert_eq!(
            next_link(
                &link(r#"</v2/hello-wrold/tags/list?last=v10&n=10>; rel="next""#),
                "http://h"
            )
            .as_deref(),
            Some("http://h/v2/hello-wrold/tags/list?last=v10&n=10")
        );
        // Absolute, and other relations ignored.
        assert_eq!(
            next_link(
                &link(r#"<https://r.example/v2/a/tags/list?n=2&last=b>; rel="next""#),
                base
            )
            .as_deref(),
            Some("https://r.example/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(
            next_link(&link(r#"</v2/a/tags/list?n=2>; rel="prev""#), base),
            None
        );
        assert_eq!(next_link(&HeaderMap::new(), base), None);
        assert_eq!(next_link(&link("garbage"), base), None);
    }

    #[test]
    fn platforms_are_picked_from_the_fixtures_manifest_list() {
        let list: Value = serde_json::from_str(include_str!(
            "../tests/fixtures/docker-manifest-list.v2.json"
        ))
        .unwrap();
        let m = list["manifests"].as_array().unwrap();
        let amd64 = Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
        };
        let ppc = Platform {
            os: "linux".into(),
            architecture: "ppc64le".into(),
        };
        let arm = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
        };
        assert_eq!(
            pick_platform(m, &amd64).as_deref(),
            Some("sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270")
        );
        assert_eq!(
            pick_platform(m, &ppc).as_deref(),
            Some("sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f")
        );
        assert_eq!(pick_platform(m, &arm), None);
    }

    #[test]
    fn image_configs_give_ports_healthcheck_and_labels() {
        let c = serde_json::json!({
            "created": "2026-11-23T10:00:00Z",
            "config": {
                "ExposedPorts": {"8080/tcp": {}, "53/udp": {}, "9090": {}},
                "Healthcheck": {"Test": ["CMD", "/check"]},
                "Labels": {"org.opencontainers.image.version": "v1", "n": 3}
            }
        });
        let i = image_info(&c);
        assert_eq!(i.exposed_tcp_ports, [8080, 9090]);
        assert!(i.healthcheck);
        assert_eq!(i.labels.len(), 1);
        let none = serde_json::json!({"config": {"Healthcheck": {"Test": ["NONE"]}}});
        assert!(!image_info(&none).healthcheck);
        assert_eq!(image_info(&serde_json::json!([])), ImageInfo::default());
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]
            #[test]
            fn challenge_and_link_parsers_never_panic(s in "[ -~]{0,120}") {
                let _ = parse_challenge(&s);
                if let Ok(v) = HeaderValue::from_str(&s) {
                    let mut h = HeaderMap::new();
                    h.insert(LINK, v);
                    let _ = next_link(&h, "https://r");
                }
            }

            #[test]
            fn challenges_with_quotes_and_commas(realm in "[a-z/:.,]{1,30}", svc in "[a-zA-Z0-9 .,:;=/_-]{0,20}") {
                let h = format!("Bearer realm=\"https://{realm}\",service=\"{svc}\"");
                prop_assert_eq!(
                    parse_challenge(&h),
                    Ok(Challenge::Bearer { realm: format!("https://{realm}"), service: Some(svc) })
                );
            }
        }
    }
}
