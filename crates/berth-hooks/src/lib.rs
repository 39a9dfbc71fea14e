//! The webhook gateway's pure half: what registries and forges send, verified and turned into
//! "image pushed: repository, tag, digest" (or a reason to ignore it).
//!
//! [`Source`] names each sender; [`verify`] checks its signature or token with the secret
//! berth keeps for it, in constant time; [`parse`] reads the body. Both are pure: the HTTP
//! layer passes the headers and the raw body, and decides what to do with the outcome.
//!
//! Architecture invariant: no I/O, no clock; every input is untrusted, so every failure is an
//! error value with a message for the sender, never a panic (the parsers are fuzzed by
//! proptest).

use berth_domain::ImageRef;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

mod formats;

/// Who sent a delivery. The path segment of `POST /api/hooks/{source}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// `{"image": "registry/org/app:tag"}`, authenticated like Docker Hub (secret in the URL).
    Generic,
    DockerHub,
    GitHub,
    Gitea,
    Forgejo,
    GitLab,
    Harbor,
    Quay,
    /// The CNCF distribution registry's notifications (`registry:2`, GitLab's registry…).
    Distribution,
}

/// How a source proves a delivery is genuine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// The sender cannot sign: the secret is part of the URL (`/api/hooks/{source}/{secret}`).
    UrlSecret,
    /// HMAC-SHA256 of the raw body with the secret, hex, in this header (`sha256=` prefix
    /// allowed).
    Hmac(&'static str),
    /// The secret itself, in this header (`Bearer ` prefix allowed).
    Token(&'static str),
}

impl Source {
    pub const ALL: [Source; 9] = [
        Source::Generic,
        Source::DockerHub,
        Source::GitHub,
        Source::Gitea,
        Source::Forgejo,
        Source::GitLab,
        Source::Harbor,
        Source::Quay,
        Source::Distribution,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Generic => "generic",
            Source::DockerHub => "dockerhub",
            Source::GitHub => "github",
            Source::Gitea => "gitea",
            Source::Forgejo => "forgejo",
            Source::GitLab => "gitlab",
            Source::Harbor => "harbor",
            Source::Quay => "quay",
            Source::Distribution => "distribution",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn auth(self) -> Auth {
        match self {
            Source::Generic | Source::DockerHub | Source::Quay => Auth::UrlSecret,
            Source::GitHub => Auth::Hmac("x-hub-signature-256"),
            Source::Gitea => Auth::Hmac("x-gitea-signature"),
            Source::Forgejo => Auth::Hmac("x-forgejo-signature"),
            Source::GitLab => Auth::Token("x-gitlab-token"),
            // Harbor's "Auth Header" and the registry's `headers:` config send it as-is.
            Source::Harbor | Source::Distribution => Auth::Token("authorization"),
        }
    }

    /// The header that names a delivery uniquely, when the source sends one.
    pub fn delivery_header(self) -> Option<&'static str> {
        match self {
            Source::GitHub => Some("x-github-delivery"),
            Source::Gitea => Some("x-gitea-delivery"),
            Source::Forgejo => Some("x-forgejo-delivery"),
            Source::GitLab => Some("x-gitlab-event-uuid"),
            _ => None,
        }
    }
}

/// Request headers, names lowercased.
pub type Headers<'a> = [(String, String)];

fn header<'a>(headers: &'a Headers<'_>, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// Missing or wrong signature or token (answered 401, never saying which).
    #[error("the delivery is not signed with this source's secret")]
    Unauthenticated,
    /// The body is not what this source sends (answered 400 with the message).
    #[error("{0}")]
    Malformed(String),
}

/// Checks a delivery's signature or token. For [`Auth::UrlSecret`] sources the caller has
/// already compared the URL's secret; this returns `Ok`.
pub fn verify(
    source: Source,
    secret: &[u8],
    headers: &Headers<'_>,
    body: &[u8],
) -> Result<(), HookError> {
    match source.auth() {
        Auth::UrlSecret => Ok(()),
        Auth::Hmac(name) => {
            let given = header(headers, name).ok_or(HookError::Unauthenticated)?;
            let given = given.trim();
            let given = given.strip_prefix("sha256=").unwrap_or(given);
            let given = hex::decode(given).map_err(|_| HookError::Unauthenticated)?;
            let mut mac =
                Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
            mac.update(body);
            mac.verify_slice(&given)
                .map_err(|_| HookError::Unauthenticated)
        }
        Auth::Token(name) => {
            let given = header(headers, name).ok_or(HookError::Unauthenticated)?;
            let given = given.trim();
            let given = given.strip_prefix("Bearer ").unwrap_or(given);
            if berth_crypto::constant_time_eq(given.as_bytes(), secret) {
                Ok(())
            } else {
                Err(HookError::Unauthenticated)
            }
        }
    }
}

/// One image push a delivery reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// `registry/org/app` (lowercase, as engines pull it).
    pub repository: String,
    pub tag: String,
    /// The manifest digest, when the sender says it.
    pub digest: Option<String>,
}

impl Push {
    /// `repository:tag`, parsed.
    pub fn image(&self) -> Result<ImageRef, HookError> {
        ImageRef::parse(&format!("{}:{}", self.repository, self.tag))
            .map_err(|e| HookError::Malformed(e.to_string()))
    }
}

/// What a delivery means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// One or more images were pushed.
    Pushes(Vec<Push>),
    /// Not a push (a ping, a delete, a pull, another package type): answered 2xx, recorded,
    /// nothing deployed.
    Ignored(String),
}

/// Reads a delivery's body (and the event header where the source sends one).
pub fn parse(source: Source, headers: &Headers<'_>, body: &[u8]) -> Result<Outcome, HookError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| HookError::Malformed(format!("the body is not JSON: {e}")))?;
    let outcome = match source {
        Source::Generic => formats::generic(&v),
        Source::DockerHub => formats::dockerhub(&v),
        Source::GitHub => formats::github(header(headers, "x-github-event"), &v),
        Source::Gitea | Source::Forgejo => {
            let event =
                header(headers, "x-forgejo-event").or_else(|| header(headers, "x-gitea-event"));
            formats::gitea(event, &v)
        }
        Source::GitLab => formats::gitlab(&v),
        Source::Harbor => formats::harbor(&v),
        Source::Quay => formats::quay(&v),
        Source::Distribution => formats::distribution(&v),
    }?;
    // Every push must name a valid image: a sender's garbage stops here, with its words.
    if let Outcome::Pushes(p) = &outcome {
        if p.is_empty() {
            return Ok(Outcome::Ignored("no image tag in the delivery".into()));
        }
        for push in p {
            push.image()?;
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests;
