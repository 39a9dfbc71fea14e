//! Image references (`registry/org/app:tag@sha256:…`), parsed by the grammar of the
//! distribution project's `reference` package, with Docker Hub's defaults made explicit.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The registry Docker uses when a reference names none.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed image reference. `registry` is always set (Docker Hub when the text named none),
/// `repository` is the path (`library/nginx` for `nginx`), `tag` and `digest` are optional.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Why an image reference was refused; the message is safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image reference {input:?} is not valid: {reason}")]
pub struct ImageRefError {
    pub input: String,
    pub reason: String,
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
    if c.is_empty() {
        return false;
    }
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    // [\w][\w.-]{0,127}
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

fn valid_digest(d: &str) -> bool {
    match d.split_once(':') {
        Some(("sha256", hex)) => {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|x| x.is_ascii_digit() || (b'a'..=b'f').contains(&x))
        }
        Some(("sha512", hex)) => {
            hex.len() == 128
                && hex
                    .bytes()
                    .all(|x| x.is_ascii_digit() || (b'a'..=b'f').contains(&x))
        }
        _ => false,
    }
}

fn valid_domain(d: &str) -> bool {
    // host[:port], host being DNS-ish labels or an IPv4 address ([IPv6] is left out on purpose)
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|x| x.is_ascii_digit()))
    {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|x| x.is_ascii_alphanumeric() || x == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<Self, ImageRefError> {
        let err = |reason: &str| ImageRefError {
            input: input.chars().take(300).collect(),
            reason: reason.to_string(),
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        if s.len() > 512 {
            return Err(err("it is longer than 512 characters"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("it contains white space"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !valid_digest(d) {
                    return Err(err(
                        "the digest must be sha256:<64 hex> or sha512:<128 hex>",
                    ));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                if !valid_tag(t) {
                    return Err(err(
                        "the tag must be 1 to 128 of letters, digits, '_', '.', '-', not starting with '.' or '-'",
                    ));
                }
                (&rest[..last_slash + i], Some(t.to_string()))
            }
            None => (rest, None),
        };
        let mut parts: Vec<&str> = name.split('/').collect();
        let first = parts[0];
        let has_domain =
            parts.len() > 1 && (first.contains('.') || first.contains(':') || first == "localhost");
        let registry = if has_domain {
            if !valid_domain(first) {
                return Err(err("the registry host is not a valid host[:port]"));
            }
            parts.remove(0);
            first.to_string()
        } else {
            DOCKER_HUB.to_string()
        };
        if parts.is_empty() || parts.iter().any(|p| !valid_path_component(p)) {
            return Err(err(
                "the repository path must be lowercase letters and digits, separated by '/', and one of '.', '_', '__' or dashes",
            ));
        }
        let mut repository = parts.join("/");
        if registry == DOCKER_HUB && parts.len() == 1 {
            repository = format!("library/{repository}");
        }
        if repository.len() > 255 {
            return Err(err("the repository path is longer than 255 characters"));
        }
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, the name an engine pulls, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The last path component (`app` for `reg/org/app`): a starting point for a project name.
    pub fn short_name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }

    /// The same reference with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Self {
        Self {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl TryFrom<String> for ImageRef {
    type Error = ImageRefError;
    fn try_from(s: String) -> Result<Self, ImageRefError> {
        Self::parse(&s)
    }
}
impl From<ImageRef> for String {
    fn from(r: ImageRef) -> String {
        r.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn docker_hub_defaults() {
        let r = p("nginx");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/nginx")
        );
        assert_eq!(r.tag, None);
        let r = p("grafana/grafana:10.1");
        assert_eq!(r.repository, "grafana/grafana");
        assert_eq!(r.tag.as_deref(), Some("10.1"));
    }

    #[test]
    fn registries_ports_and_digests() {
        let r = p("127.0.0.1:5000/berth-test/app:v1");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "berth-test/app");
        assert_eq!(r.short_name(), "app");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = p(&format!("ghcr.io/org/app:v2@{d}"));
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.to_string(), format!("ghcr.io/org/app:v2@{d}"));
        let r = p("localhost/app");
        assert_eq!(r.registry, "localhost");
        assert_eq!(
            p("git.example.by/alexei/web-app-launcher:dev-abc123")
                .tag
                .as_deref(),
            Some("dev-abc123")
        );
    }

    #[test]
    fn refusals_name_the_problem() {
        for (bad, needle) in [
            ("", "empty"),
            ("UPPER/case", "lowercase"),
            ("app:", "tag"),
            ("app:-x", "tag"),
            ("app@sha256:xyz", "digest"),
            ("a b", "white space"),
            ("reg.io:99999999/app", "host"),
            ("reg.io//app", "repository"),
        ] {
            let e = ImageRef::parse(bad).unwrap_err();
            assert!(e.to_string().contains(needle), "{bad:?}: {e}");
        }
    }

    #[test]
    fn round_trip() {
        for s in [
            "docker.io/library/nginx:1.25",
            "127.0.0.1:5000/a/b/c:v1.0.0-rc.1",
        ] {
            assert_eq!(p(s).to_string(), s);
        }
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        /// Any input: an error with a reason, or a reference that prints back to itself.
        #[test]
        fn never_panics_and_what_parses_round_trips(s in "[ -~]{0,80}") {
            match ImageRef::parse(&s) {
                Ok(r) => {
                    let again = ImageRef::parse(&r.to_string()).unwrap();
                    prop_assert_eq!(again, r);
                }
                Err(e) => prop_assert!(!e.reason.is_empty()),
            }
        }

        /// Reference-shaped input (what webhooks send) parses, keeping tag and registry.
        #[test]
        fn well_formed_references_parse(
            host in "[a-z]([a-z0-9-]{0,8}[a-z0-9])?\\.[a-z]{2,4}(:[1-9][0-9]{1,4})?",
            path in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}",
            tag in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}",
        ) {
            let r = ImageRef::parse(&format!("{host}/{path}:{tag}")).unwrap();
            prop_assert_eq!(r.registry, host);
            prop_assert_eq!(r.repository, path);
            prop_assert_eq!(r.tag.as_deref(), Some(tag.as_str()));
        }
    }
}
