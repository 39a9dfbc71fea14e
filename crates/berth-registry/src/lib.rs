//! A small client for the OCI distribution API (registry v2), as berth needs it: list a
//! repository's tags (following `Link` headers, opaque cursors included), resolve a tag's
//! manifest digest with a `HEAD`, read an image's config (EXPOSE, HEALTHCHECK, labels,
//! created) without pulling it (picking the engine's platform from a manifest list or OCI
//! index), and check a registry's credentials, saying what failed.
//!
//! Why not `oci-client`: its `list_tags` returns the body only and drops the `Link` header,
//! so registries that page with an opaque cursor (Quay's `next_page`) cannot be listed past
//! the first page, and its bearer token is internal, so a paging loop of our own could not
//! reuse it. Everything else here is the same few requests it makes.
//!
//! Architecture invariant: an adapter; it reaches only the registry it is asked about,
//! never logs credentials or tokens, and bounds every loop (pages, redirects, sizes).

use base64::Engine as _;
use berth_crypto::SecretString;
use berth_domain::ImageRef;
use berth_domain::ports::ImageInfo;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod parse;
pub use parse::{Challenge, next_link, parse_challenge};

/// The manifest types berth asks for (an index first, so multi-arch images resolve).
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";
/// At most this many tag pages (of up to 1,000 tags each) are read.
const MAX_PAGES: usize = 100;
/// Manifests and configs larger than this are refused.
const MAX_DOCUMENT: usize = 4 << 20;

/// A login for a registry.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: SecretString,
}

/// What went wrong, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot resolve {0}")]
    Dns(String),
    #[error("TLS failed: {0}")]
    Tls(String),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("the registry refused the credentials (401){0}")]
    Unauthorized(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("the registry answered unexpectedly: {0}")]
    Protocol(String),
}

type Result<T> = std::result::Result<T, RegistryError>;

/// The platform to pick from a multi-platform image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
}

impl Platform {
    /// The engine's usual platform on this machine (linux and the host's architecture).
    pub fn host() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "arm" => "arm",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
        }
    }
}

/// An image's config, as berth uses it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageConfig {
    pub info: ImageInfo,
    /// The image's creation time (RFC 3339), when the config says it.
    pub created: Option<String>,
    /// The digest of the manifest that was read (the platform's, for multi-arch images).
    pub manifest_digest: String,
}

pub struct RegistryClient {
    http: reqwest::Client,
    /// Bearer tokens by (registry, scope), until they expire.
    tokens: Mutex<HashMap<(String, String), (String, Instant)>>,
}

impl Default for RegistryClient {
    fn default() -> Self {
        Self::new()
    }
}

/// `http` for loopback registries (as the engine allows them), `https` otherwise.
pub fn base_url(registry: &str) -> String {
    if registry.starts_with("http://") || registry.starts_with("https://") {
        return registry.trim_end_matches('/').to_string();
    }
    let host = registry.split(':').next().unwrap_or(registry);
    let scheme = if host == "localhost" || host.starts_with("127.") || registry.starts_with("[::1]")
    {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{registry}")
}

/// Docker Hub's API lives at `registry-1.docker.io`.
fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

fn classify(e: &reqwest::Error, what: &str) -> RegistryError {
    let mut chain = String::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cur {
        chain.push_str(&c.to_string());
        chain.push_str(": ");
        cur = c.source();
    }
    let lower = chain.to_ascii_lowercase();
    if lower.contains("dns error")
        || lower.contains("failed to lookup")
        || lower.contains("name or service not known")
    {
        RegistryError::Dns(what.to_string())
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        RegistryError::Tls(chain.trim_end_matches(": ").to_string())
    } else if e.is_timeout() {
        RegistryError::Connect(format!("{what}: timed out"))
    } else {
        RegistryError::Connect(format!("{what}: {}", chain.trim_end_matches(": ")))
    }
}

impl RegistryClient {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client");
        Self {
            http,
            tokens: Mutex::default(),
        }
    }

    /// A request with the auth the registry asks for: sends it, and on a `401` challenge
    /// gets a bearer token (or uses basic auth) and sends it once more.
    async fn send(
        &self,
        method: Method,
        url: &str,
        registry: &str,
        scope: &str,
        accept: Option<&str>,
        creds: Option<&Credentials>,
    ) -> Result<reqwest::Response> {
        let key = (registry.to_string(), scope.to_string());
        let cached = self
            .tokens
            .lock()
            .expect("token cache")
            .get(&key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(t, _)| t.clone());
        let build = |auth: Option<String>| {
            let mut r = self.http.request(method.clone(), url);
            if let Some(a) = accept {
                r = r.header(ACCEPT, a);
            }
            if let Some(a) = auth {
                r = r.header(AUTHORIZATION, a);
            }
            r
        };
        let first = build(cached.map(|t| format!("Bearer {t}")))
            .send()
            .await
            .map_err(|e| classify(&e, registry))?;
        if first.status() != StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        let challenge = first
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(parse_challenge)
            .transpose()
            .map_err(RegistryError::Protocol)?;
        let auth = match challenge {
            Some(Challenge::Basic) => match creds {
                Some(c) => format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!(
                        "{}:{}",
                        c.username,
                        c.password.expose()
                    ))
                ),
                None => return Err(RegistryError::Unauthorized(": it needs a login".into())),
            },
            Some(Challenge::Bearer { realm, service }) => {
                let token = self.token(&realm, service.as_deref(), scope, creds).await?;
                self.tokens
                    .lock()
                    .expect("token cache")
                    .insert(key, (token.0.clone(), Instant::now() + token.1));
                format!("Bearer {}", token.0)
            }
            None => return Err(RegistryError::Unauthorized(String::new())),
        };
        let second = build(Some(auth))
            .send()
            .await
            .map_err(|e| classify(&e, registry))?;
        if second.status() == StatusCode::UNAUTHORIZED {
            return Err(RegistryError::Unauthorized(if creds.is_some() {
                String::new()
            } else {
                ": it needs a login".into()
            }));
        }
        Ok(second)
    }

    /// The token flow: GET realm?service=…&scope=… (with basic auth when there are
    /// credentials) → `token` or `access_token`, valid `expires_in` seconds (60 by default).
    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        creds: Option<&Credentials>,
    ) -> Result<(String, Duration)> {
        let mut r = self.http.get(realm).query(&[("scope", scope)]);
        if let Some(s) = service {
            r = r.query(&[("service", s)]);
        }
        if let Some(c) = creds {
            r = r.basic_auth(&c.username, Some(c.password.expose()));
        }
        let resp = r.send().await.map_err(|e| classify(&e, realm))?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized(" at the token service".into()));
        }
        if !resp.status().is_success() {
            return Err(RegistryError::Protocol(format!(
                "the token service answered {}",
                resp.status()
            )));
        }
        #[derive(serde::Deserialize)]
        struct T {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let t: T = resp
            .json()
            .await
            .map_err(|e| RegistryError::Protocol(format!("token response: {e}")))?;
        let token = t
            .token
            .or(t.access_token)
            .ok_or_else(|| RegistryError::Protocol("the token response holds no token".into()))?;
        // Renew a little early.
        let secs = t.expires_in.unwrap_or(60).clamp(10, 86_400);
        Ok((token, Duration::from_secs(secs.saturating_sub(5))))
    }

    /// Checks that the registry answers and accepts the credentials (`GET /v2/`; with a
    /// repository, its tags too, since token scopes are per repository).
    pub async fn check(
        &self,
        registry: &str,
        repository: Option<&str>,
        creds: Option<&Credentials>,
    ) -> Result<()> {
        let url = format!("{}/v2/", base_url(api_host(registry)));
        let scope = repository
            .map(|r| format!("repository:{r}:pull"))
            .unwrap_or_default();
        let r = self
            .send(Method::GET, &url, registry, &scope, None, creds)
            .await?;
        match r.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::NotFound(format!(
                    "{url} (is this a container registry?)"
                )));
            }
            s => return Err(RegistryError::Protocol(format!("{url} answered {s}"))),
        }
        if let Some(repo) = repository {
            let image = ImageRef::parse(&format!("{registry}/{repo}"))
                .map_err(|e| RegistryError::Protocol(e.to_string()))?;
            self.tags(&image, creds).await?;
        }
        Ok(())
    }

    /// Every tag of the image's repository, following `Link: <…>; rel="next"` (relative or
    /// absolute, `last=` or opaque cursors), at most [`MAX_PAGES`] pages.
    pub async fn tags(&self, image: &ImageRef, creds: Option<&Credentials>) -> Result<Vec<String>> {
        self.tags_paged(image, creds, 1000).await
    }

    /// [`tags`](Self::tags), asking for `page_size` tags per page.
    pub async fn tags_paged(
        &self,
        image: &ImageRef,
        creds: Option<&Credentials>,
        page_size: u32,
    ) -> Result<Vec<String>> {
        let base = base_url(api_host(&image.registry));
        let scope = format!("repository:{}:pull", image.repository);
        let mut url = format!(
            "{base}/v2/{}/tags/list?n={}",
            image.repository,
            page_size.clamp(1, 1000)
        );
        let mut tags = Vec::new();
        for _ in 0..MAX_PAGES {
            let r = self
                .send(Method::GET, &url, &image.registry, &scope, None, creds)
                .await?;
            match r.status() {
                s if s.is_success() => {}
                StatusCode::NOT_FOUND => return Err(RegistryError::NotFound(image.name())),
                s => {
                    return Err(RegistryError::Protocol(format!(
                        "tags of {} answered {s}",
                        image.name()
                    )));
                }
            }
            let next = next_link(r.headers(), &base);
            #[derive(serde::Deserialize)]
            struct Page {
                tags: Option<Vec<String>>,
            }
            let page: Page = r
                .json()
                .await
                .map_err(|e| RegistryError::Protocol(format!("tags list: {e}")))?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) if n != url => url = n,
                _ => return Ok(tags),
            }
        }
        Err(RegistryError::Protocol(format!(
            "more than {MAX_PAGES} pages of tags for {}",
            image.name()
        )))
    }

    async fn manifest(
        &self,
        image: &ImageRef,
        reference: &str,
        method: Method,
        creds: Option<&Credentials>,
    ) -> Result<reqwest::Response> {
        let url = format!(
            "{}/v2/{}/manifests/{reference}",
            base_url(api_host(&image.registry)),
            image.repository
        );
        let scope = format!("repository:{}:pull", image.repository);
        let r = self
            .send(
                method,
                &url,
                &image.registry,
                &scope,
                Some(MANIFEST_TYPES),
                creds,
            )
            .await?;
        match r.status() {
            s if s.is_success() => Ok(r),
            StatusCode::NOT_FOUND => Err(RegistryError::NotFound(format!(
                "{}:{reference}",
                image.name()
            ))),
            s => Err(RegistryError::Protocol(format!(
                "manifest {reference} of {} answered {s}",
                image.name()
            ))),
        }
    }

    /// The digest of the tag's manifest (for a multi-arch image, of its index), from a
    /// `HEAD`, the same digest `docker pull` records.
    pub async fn digest(&self, image: &ImageRef, creds: Option<&Credentials>) -> Result<String> {
        let reference = image
            .digest
            .clone()
            .or_else(|| image.tag.clone())
            .unwrap_or_else(|| "latest".into());
        let r = self
            .manifest(image, &reference, Method::HEAD, creds)
            .await?;
        header_digest(r.headers()).ok_or_else(|| {
            RegistryError::Protocol("the registry sent no Docker-Content-Digest".into())
        })
    }

    /// The image's config, read from the registry without pulling layers. A manifest list or
    /// OCI index is resolved to `platform`'s manifest.
    pub async fn inspect(
        &self,
        image: &ImageRef,
        platform: &Platform,
        creds: Option<&Credentials>,
    ) -> Result<ImageConfig> {
        let mut reference = image
            .digest
            .clone()
            .or_else(|| image.tag.clone())
            .unwrap_or_else(|| "latest".into());
        for _ in 0..2 {
            let r = self.manifest(image, &reference, Method::GET, creds).await?;
            let digest = header_digest(r.headers()).unwrap_or_default();
            let doc = read_json(r).await?;
            if let Some(list) = doc.get("manifests").and_then(|m| m.as_array()) {
                reference = parse::pick_platform(list, platform).ok_or_else(|| {
                    RegistryError::NotFound(format!(
                        "{image} has no {}/{} image",
                        platform.os, platform.architecture
                    ))
                })?;
                continue;
            }
            let config = doc
                .get("config")
                .and_then(|c| c.get("digest"))
                .and_then(|d| d.as_str())
                .ok_or_else(|| RegistryError::Protocol("the manifest names no config".into()))?;
            let blob = self.blob(image, config, creds).await?;
            return Ok(ImageConfig {
                info: parse::image_info(&blob),
                created: blob
                    .get("created")
                    .and_then(|c| c.as_str())
                    .map(String::from),
                manifest_digest: digest,
            });
        }
        Err(RegistryError::Protocol(
            "an index that points at another index".into(),
        ))
    }

    async fn blob(
        &self,
        image: &ImageRef,
        digest: &str,
        creds: Option<&Credentials>,
    ) -> Result<serde_json::Value> {
        let url = format!(
            "{}/v2/{}/blobs/{digest}",
            base_url(api_host(&image.registry)),
            image.repository
        );
        let scope = format!("repository:{}:pull", image.repository);
        let r = self
            .send(Method::GET, &url, &image.registry, &scope, None, creds)
            .await?;
        if !r.status().is_success() {
            return Err(RegistryError::Protocol(format!(
                "config blob {digest} answered {}",
                r.status()
            )));
        }
        read_json(r).await
    }
}

fn header_digest(h: &HeaderMap) -> Option<String> {
    h.get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .filter(|d| d.starts_with("sha256:"))
        .map(String::from)
}

async fn read_json(r: reqwest::Response) -> Result<serde_json::Value> {
    if r.content_length()
        .is_some_and(|l| l as usize > MAX_DOCUMENT)
    {
        return Err(RegistryError::Protocol("document too large".into()));
    }
    let bytes = r
        .bytes()
        .await
        .map_err(|e| RegistryError::Protocol(e.to_string()))?;
    if bytes.len() > MAX_DOCUMENT {
        return Err(RegistryError::Protocol("document too large".into()));
    }
    serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol(format!("not JSON: {e}")))
}

impl From<&berth_domain::ports::RegistryAuth> for Credentials {
    fn from(a: &berth_domain::ports::RegistryAuth) -> Self {
        Credentials {
            username: a.username.clone(),
            password: a.password.clone(),
        }
    }
}

impl berth_domain::ports::ImageRegistry for RegistryClient {
    fn tags<'a>(
        &'a self,
        image: &'a ImageRef,
        auth: Option<&'a berth_domain::ports::RegistryAuth>,
    ) -> futures::future::BoxFuture<'a, std::result::Result<Vec<String>, String>> {
        Box::pin(async move {
            let creds = auth.map(Credentials::from);
            RegistryClient::tags(self, image, creds.as_ref())
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn check<'a>(
        &'a self,
        registry: &'a str,
        repository: Option<&'a str>,
        auth: Option<&'a berth_domain::ports::RegistryAuth>,
    ) -> futures::future::BoxFuture<'a, std::result::Result<(), String>> {
        Box::pin(async move {
            let creds = auth.map(Credentials::from);
            RegistryClient::check(self, registry, repository, creds.as_ref())
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn digest<'a>(
        &'a self,
        image: &'a ImageRef,
        auth: Option<&'a berth_domain::ports::RegistryAuth>,
    ) -> futures::future::BoxFuture<'a, std::result::Result<String, String>> {
        Box::pin(async move {
            let creds = auth.map(Credentials::from);
            RegistryClient::digest(self, image, creds.as_ref())
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn inspect<'a>(
        &'a self,
        image: &'a ImageRef,
        auth: Option<&'a berth_domain::ports::RegistryAuth>,
    ) -> futures::future::BoxFuture<'a, std::result::Result<berth_domain::ports::RemoteImage, String>>
    {
        Box::pin(async move {
            let creds = auth.map(Credentials::from);
            let c = RegistryClient::inspect(self, image, &Platform::host(), creds.as_ref())
                .await
                .map_err(|e| e.to_string())?;
            Ok(berth_domain::ports::RemoteImage {
                info: c.info,
                created: c.created,
                digest: c.manifest_digest,
            })
        })
    }
}
