//! The OpenID Connect relying party: discovery (cached), the authorization request with PKCE,
//! state and nonce, and the code exchange with the ID token checked by `openidconnect`
//! (signature against the provider's keys, issuer, audience, expiry, nonce).
//!
//! A sign-in in flight is kept in memory for ten minutes, keyed by its `state`, and bound
//! to the browser that started it by a cookie whose hash it stores: a callback with a
//! state berth never issued, issued to another browser, or already used is refused before
//! anything is sent to the provider.

use berth_crypto::SecretString;
use berth_domain::oidc::OidcSettings;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AsyncHttpClient, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    HttpRequest, HttpResponse, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    Scope,
};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a sign-in may take between leaving for the provider and coming back.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// How many sign-ins may be in flight at once (a flood of starts cannot grow memory).
const MAX_PENDING: usize = 1024;
/// How long discovery (and the provider's keys) is reused.
const METADATA_TTL: Duration = Duration::from_secs(300);

/// Why a sign-in was refused, in words for the person signing in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

fn refuse(msg: impl Into<String>) -> Refusal {
    Refusal(msg.into())
}

struct Pending {
    nonce: Nonce,
    verifier: PkceCodeVerifier,
    binding_hash: String,
    next: String,
    started: Instant,
}

/// A signed-in identity: who the provider says it is, with every claim of the ID token
/// (and of the userinfo answer, when the provider has one).
#[derive(Debug)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub claims: Map<String, Value>,
    /// Where the user wanted to go.
    pub next: String,
}

/// What a started sign-in gives the browser.
pub struct Started {
    pub authorize_url: String,
    /// Set as a short-lived cookie; the callback must bring it back.
    pub binding: SecretString,
}

/// The discovered provider, as the test endpoint reports it.
#[derive(Debug, serde::Serialize)]
pub struct ProviderCheck {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub signing_keys: usize,
    pub redirect_url: String,
}

pub struct Oidc {
    http: OidcHttp,
    pending: Mutex<HashMap<String, Pending>>,
    metadata: Mutex<Option<(String, Instant, CoreProviderMetadata)>>,
}

impl Default for Oidc {
    fn default() -> Self {
        Self::new()
    }
}

impl Oidc {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the OIDC HTTP client builds");
        Self {
            http: OidcHttp(http),
            pending: Mutex::default(),
            metadata: Mutex::default(),
        }
    }

    /// Drops the cached discovery document (settings changed, or a key did not verify).
    pub fn forget_provider(&self) {
        *self.metadata.lock().expect("metadata lock") = None;
    }

    async fn provider(&self, issuer: &str) -> Result<CoreProviderMetadata, Refusal> {
        if let Some((iss, at, m)) = &*self.metadata.lock().expect("metadata lock")
            && iss == issuer
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        let url = IssuerUrl::new(issuer.to_string())
            .map_err(|e| refuse(format!("the issuer URL {issuer:?} is not valid: {e}")))?;
        let m = CoreProviderMetadata::discover_async(url, &self.http)
            .await
            .map_err(|e| {
                refuse(format!(
                    "cannot read the identity provider's discovery document at {issuer}/.well-known/openid-configuration: {}",
                    error_chain(&e)
                ))
            })?;
        *self.metadata.lock().expect("metadata lock") =
            Some((issuer.to_string(), Instant::now(), m.clone()));
        Ok(m)
    }

    fn client(
        meta: CoreProviderMetadata,
        s: &OidcSettings,
        secret: Option<&SecretString>,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        Refusal,
    > {
        let redirect = RedirectUrl::new(s.redirect_url())
            .map_err(|e| refuse(format!("public_url does not make a redirect URL: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            meta,
            ClientId::new(s.client_id.clone()),
            secret.map(|p| ClientSecret::new(p.expose().to_string())),
        )
        .set_redirect_uri(redirect))
    }

    /// Discovery succeeds and names what berth will use.
    pub async fn check(&self, s: &OidcSettings) -> Result<ProviderCheck, Refusal> {
        self.forget_provider();
        let m = self.provider(&s.issuer).await?;
        Ok(ProviderCheck {
            issuer: m.issuer().to_string(),
            authorization_endpoint: m.authorization_endpoint().to_string(),
            token_endpoint: m.token_endpoint().map(|u| u.to_string()),
            userinfo_endpoint: m.userinfo_endpoint().map(|u| u.to_string()),
            signing_keys: m.jwks().keys().len(),
            redirect_url: s.redirect_url(),
        })
    }

    /// Starts a sign-in: the provider's authorization URL and the browser binding.
    pub async fn begin(
        &self,
        s: &OidcSettings,
        secret: Option<&SecretString>,
        next: &str,
    ) -> Result<Started, Refusal> {
        let client = Self::client(self.provider(&s.issuer).await?, s, secret)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in &s.scopes {
            req = req.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = req.url();
        let binding = berth_auth::SessionSecret::generate("bo_");
        let mut pending = self.pending.lock().expect("pending lock");
        pending.retain(|_, p| p.started.elapsed() < PENDING_TTL);
        if pending.len() >= MAX_PENDING {
            return Err(refuse(
                "too many sign-ins are in progress; try again in a few minutes",
            ));
        }
        pending.insert(
            state.secret().clone(),
            Pending {
                nonce,
                verifier,
                binding_hash: binding.hash,
                next: next.to_string(),
                started: Instant::now(),
            },
        );
        Ok(Started {
            authorize_url: url.to_string(),
            binding: binding.secret,
        })
    }

    /// Finishes a sign-in: checks state and binding, exchanges the code (with the PKCE
    /// verifier), and validates the ID token. Each state works once.
    pub async fn finish(
        &self,
        s: &OidcSettings,
        secret: Option<&SecretString>,
        state: &str,
        code: &str,
        binding: Option<&str>,
    ) -> Result<Identity, Refusal> {
        let pending = self
            .pending
            .lock()
            .expect("pending lock")
            .remove(state)
            .filter(|p| p.started.elapsed() < PENDING_TTL)
            .ok_or_else(|| {
                refuse(
                    "this sign-in was not started here, was already used or has expired (the state does not match); start again",
                )
            })?;
        let bound = binding.is_some_and(|b| {
            berth_crypto::constant_time_eq(
                berth_auth::hash_token(b).as_bytes(),
                pending.binding_hash.as_bytes(),
            )
        });
        if !bound {
            return Err(refuse(
                "this sign-in was started in another browser (its cookie is missing); start again",
            ));
        }
        let meta = self.provider(&s.issuer).await?;
        let userinfo_url = meta.userinfo_endpoint().map(|u| u.url().clone());
        let client = Self::client(meta, s, secret)?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| refuse(format!("the identity provider has no token endpoint: {e}")))?
            .set_pkce_verifier(pending.verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| {
                refuse(format!(
                    "the identity provider did not accept the sign-in code: {}",
                    error_chain(&e)
                ))
            })?;
        use openidconnect::OAuth2TokenResponse;
        use openidconnect::TokenResponse;
        let id_token = token
            .id_token()
            .ok_or_else(|| refuse("the identity provider sent no ID token"))?;
        let verifier = client.id_token_verifier();
        let verified = id_token.claims(&verifier, &pending.nonce).map_err(|e| {
            if matches!(e, ClaimsVerificationError::SignatureVerification(_)) {
                // Perhaps the provider rotated its keys: read them again next time.
                self.forget_provider();
            }
            refuse(explain(&e))
        })?;
        let subject = verified.subject().to_string();
        // The signature covers exactly these bytes, so every claim in them can be trusted.
        let mut claims = payload_claims(&id_token.to_string())
            .ok_or_else(|| refuse("the ID token's claims cannot be read"))?;
        if let Some(url) = userinfo_url {
            let info = self
                .userinfo(url, token.access_token().secret())
                .await
                .map_err(|e| refuse(format!("the identity provider's userinfo failed: {e}")))?;
            if info.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
                return Err(refuse(
                    "the identity provider's userinfo names another subject than the ID token",
                ));
            }
            for (k, v) in info {
                claims.entry(k).or_insert(v);
            }
        }
        Ok(Identity {
            issuer: s.issuer.clone(),
            subject,
            claims,
            next: pending.next,
        })
    }

    async fn userinfo(
        &self,
        url: openidconnect::url::Url,
        access: &str,
    ) -> Result<Map<String, Value>, String> {
        let res = self
            .http
            .0
            .get(url)
            .bearer_auth(access)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        if !res.status().is_success() {
            return Err(format!("HTTP {}", res.status()));
        }
        res.json::<Map<String, Value>>().await.map_err(|_| {
            "its answer is not a JSON object (signed userinfo is not supported)".into()
        })
    }
}

/// The claims of a JWT's payload (call only after its signature was verified).
fn payload_claims(jwt: &str) -> Option<Map<String, Value>> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A verification failure in words for the person signing in.
fn explain(e: &ClaimsVerificationError) -> String {
    use ClaimsVerificationError as E;
    match e {
        E::Expired(_) => "the identity provider's ID token has expired; check the clocks of berth and the provider, then start again".into(),
        E::InvalidAudience(_) => "the ID token was issued to another client (its audience is not berth's client id)".into(),
        E::InvalidIssuer(_) => "the ID token was issued by another issuer than the one configured".into(),
        E::InvalidNonce(_) => "the ID token's nonce does not match this sign-in (a replayed or foreign token)".into(),
        E::SignatureVerification(s) => format!("the ID token's signature does not verify with the provider's keys ({s})"),
        other => format!("the ID token was refused: {other}"),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

/// `openidconnect`'s HTTP client on reqwest 0.13 (its own feature pulls reqwest 0.12).
pub struct OidcHttp(pub reqwest::Client);

#[derive(Debug, thiserror::Error)]
pub enum OidcHttpError {
    #[error(transparent)]
    Reqwest(#[from] reqwest::Error),
    #[error(transparent)]
    Http(#[from] openidconnect::http::Error),
}

impl<'c> AsyncHttpClient<'c> for OidcHttp {
    type Error = OidcHttpError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, Self::Error>> + Send + Sync + 'c>,
    >;
    fn call(&'c self, req: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let resp = self
                .0
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut b = openidconnect::http::Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                b = b.header(k, v);
            }
            Ok(b.body(resp.bytes().await?.to_vec())?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_claims_reads_the_middle_part() {
        use base64::Engine;
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let jwt = format!(
            "{}.{}.sig",
            enc(r#"{"alg":"RS256"}"#),
            enc(r#"{"sub":"a","groups":["x"]}"#)
        );
        let c = payload_claims(&jwt).unwrap();
        assert_eq!(c["groups"][0], "x");
        assert!(payload_claims("nonsense").is_none());
    }
}
