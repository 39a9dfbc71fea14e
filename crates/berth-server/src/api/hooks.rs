//! The webhook gateway: `POST /api/hooks/{source}` for senders that sign (GitHub, Gitea,
//! Forgejo, GitLab, Harbor, the distribution registry) and `POST /api/hooks/{source}/{secret}`
//! for those that cannot (Docker Hub, Quay, the generic body). Every delivery is recorded
//! with what became of it (`GET /api/deliveries`); a sender's retry of a delivery already
//! taken, or the same image and digest again within ten minutes, deploys nothing twice.

use crate::AppState;
use crate::api::deploys::{WebhookAnswer, dispatch};
use crate::auth::{ClientAddr, CurrentUser};
use crate::error::{ApiError, ApiResult, Json, Query};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use berth_crypto::SecretString;
use berth_hooks::{Auth, HookError, Outcome, Source};
use berth_store::{Delivery, NewDelivery, StoreError};
use serde::{Deserialize, Serialize};

/// How long the same image and digest counts as the same push.
const SAME_PUSH_WINDOW_MINUTES: i64 = 10;

#[derive(Serialize)]
pub struct HookAnswer {
    delivery: i64,
    /// accepted, ignored or duplicate.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    results: Vec<WebhookAnswer>,
}

fn source(name: &str) -> ApiResult<Source> {
    Source::parse(name).ok_or_else(|| {
        let names: Vec<&str> = Source::ALL.iter().map(|s| s.as_str()).collect();
        ApiError::NotFound(format!(
            "no webhook source {name:?}; sources: {}",
            names.join(", ")
        ))
    })
}

/// Records a refused delivery and returns the error to answer.
async fn reject(
    st: &AppState,
    src: Source,
    delivery_id: Option<&str>,
    addr: &str,
    err: ApiError,
) -> ApiError {
    let reason = err.to_string();
    let _ = st
        .store
        .record_delivery(&NewDelivery {
            source: src.as_str(),
            delivery_id,
            outcome: "rejected",
            reason: Some(&reason),
            ip: Some(addr),
            ..Default::default()
        })
        .await;
    err
}

pub async fn signed(
    State(st): State<AppState>,
    Path(name): Path<String>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<HookAnswer>)> {
    let src = source(&name)?;
    if src.auth() == Auth::UrlSecret {
        return Err(ApiError::NotFound(format!(
            "{name} cannot sign its deliveries: POST to /api/hooks/{name}/<secret>"
        )));
    }
    receive(st, src, None, addr, headers, body).await
}

pub async fn with_secret(
    State(st): State<AppState>,
    Path((name, secret)): Path<(String, String)>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<HookAnswer>)> {
    let src = source(&name)?;
    if src.auth() != Auth::UrlSecret {
        return Err(ApiError::NotFound(format!(
            "{name} signs its deliveries: POST to /api/hooks/{name} and set the secret there"
        )));
    }
    receive(st, src, Some(secret), addr, headers, body).await
}

async fn receive(
    st: AppState,
    src: Source,
    url_secret: Option<String>,
    addr: String,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<HookAnswer>)> {
    let pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let delivery_id = src
        .delivery_header()
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect::<String>());
    let did = delivery_id.as_deref();

    // Authenticate before reading anything the sender says.
    let Some(secret) = st.store.hook_secret(src.as_str()).await? else {
        return Err(reject(
            &st,
            src,
            did,
            &addr,
            ApiError::NotFound(format!("no secret is set for {}", src.as_str())),
        )
        .await);
    };
    let authentic = match &url_secret {
        Some(given) => berth_crypto::constant_time_eq(given.as_bytes(), secret.expose().as_bytes()),
        None => berth_hooks::verify(src, secret.expose().as_bytes(), &pairs, &body).is_ok(),
    };
    if !authentic {
        let err = match url_secret {
            Some(_) => ApiError::NotFound(format!("no {} webhook has this secret", src.as_str())),
            None => ApiError::Unauthorized(HookError::Unauthenticated.to_string()),
        };
        return Err(reject(&st, src, did, &addr, err).await);
    }

    let outcome = match berth_hooks::parse(src, &pairs, &body) {
        Ok(o) => o,
        Err(e) => {
            return Err(reject(&st, src, did, &addr, ApiError::BadRequest(e.to_string())).await);
        }
    };
    let pushes = match outcome {
        Outcome::Ignored(why) => {
            let id = match st
                .store
                .record_delivery(&NewDelivery {
                    source: src.as_str(),
                    delivery_id: did,
                    outcome: "ignored",
                    reason: Some(&why),
                    ip: Some(&addr),
                    ..Default::default()
                })
                .await
            {
                Ok(id) => id,
                Err(StoreError::Conflict(_)) => return duplicate(&st, src, &addr).await,
                Err(e) => return Err(e.into()),
            };
            return Ok((
                StatusCode::OK,
                Json(HookAnswer {
                    delivery: id,
                    outcome: "ignored",
                    reason: Some(why),
                    results: vec![],
                }),
            ));
        }
        Outcome::Pushes(p) => p,
    };

    // Claim the delivery id before deploying anything, so a retry arriving meanwhile (or
    // later) is a duplicate; a delivery that ends rejected frees it for the sender's retry.
    let mut claim = match did {
        Some(_) => match st
            .store
            .record_delivery(&NewDelivery {
                source: src.as_str(),
                delivery_id: did,
                outcome: "accepted",
                reason: Some("processing"),
                ip: Some(&addr),
                ..Default::default()
            })
            .await
        {
            Ok(id) => Some(id),
            Err(StoreError::Conflict(_)) => return duplicate(&st, src, &addr).await,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let since = (chrono::Utc::now() - chrono::Duration::minutes(SAME_PUSH_WINDOW_MINUTES))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut results = Vec::new();
    let mut recorded = None;
    let mut first_error = None;
    for p in &pushes {
        let image = p.image().map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let reference = image.to_string();
        // Check-then-record must not interleave for one image: take its lock.
        let lock = st
            .hook_locks
            .lock()
            .expect("hook locks")
            .entry(reference.clone())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        if let Some(d) = &p.digest
            && st.store.accepted_since(&reference, d, &since).await?
        {
            drop(_one_at_a_time);
            forget_lock(&st, &reference, lock);
            continue;
        }
        let answer = dispatch(&st, &image, p.digest.as_deref(), src.as_str(), &addr).await;
        let (outcome, reason, queued) = match &answer {
            Ok(a) => ("accepted", None, a.deploy_ids()),
            Err(e) => ("rejected", Some(e.to_string()), vec![]),
        };
        let row = NewDelivery {
            source: src.as_str(),
            delivery_id: None,
            outcome,
            reason: reason.as_deref(),
            image: Some(&reference),
            digest: p.digest.as_deref(),
            deploys: &queued,
            ip: Some(&addr),
        };
        // The first push is written into the claimed row; further ones get rows of their own.
        let id = match claim.take() {
            Some(id) => {
                st.store.update_delivery(id, &row).await?;
                id
            }
            None => st.store.record_delivery(&row).await?,
        };
        recorded.get_or_insert(id);
        match answer {
            Ok(a) => results.push(a),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
        drop(_one_at_a_time);
        forget_lock(&st, &reference, lock);
    }
    if results.is_empty()
        && let Some(e) = first_error
    {
        return Err(e);
    }
    let Some(id) = recorded else {
        // Every push in it was the same image and digest as one accepted minutes ago.
        let row = NewDelivery {
            source: src.as_str(),
            outcome: "duplicate",
            reason: Some("the same image and digest was accepted minutes ago"),
            ip: Some(&addr),
            ..Default::default()
        };
        let id = match claim {
            Some(id) => {
                st.store.update_delivery(id, &row).await?;
                id
            }
            None => st.store.record_delivery(&row).await?,
        };
        return Ok((
            StatusCode::OK,
            Json(HookAnswer {
                delivery: id,
                outcome: "duplicate",
                reason: Some("already accepted".into()),
                results: vec![],
            }),
        ));
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(HookAnswer {
            delivery: id,
            outcome: "accepted",
            reason: None,
            results,
        }),
    ))
}

/// Drops an image's lock from the map once nobody else holds or waits for it, so the map
/// does not grow with every image ever pushed.
fn forget_lock(st: &AppState, reference: &str, lock: std::sync::Arc<tokio::sync::Mutex<()>>) {
    let mut map = st.hook_locks.lock().expect("hook locks");
    // Ours and the map's: no one else.
    if std::sync::Arc::strong_count(&lock) == 2 {
        map.remove(reference);
    }
}

async fn duplicate(
    st: &AppState,
    src: Source,
    addr: &str,
) -> ApiResult<(StatusCode, Json<HookAnswer>)> {
    let id = st
        .store
        .record_delivery(&NewDelivery {
            source: src.as_str(),
            outcome: "duplicate",
            reason: Some("the sender retried a delivery already received"),
            ip: Some(addr),
            ..Default::default()
        })
        .await?;
    Ok((
        StatusCode::OK,
        Json(HookAnswer {
            delivery: id,
            outcome: "duplicate",
            reason: Some("already received".into()),
            results: vec![],
        }),
    ))
}

/// A source as `GET /api/hooks` shows it.
#[derive(Serialize)]
pub struct SourceInfo {
    source: &'static str,
    /// `url_secret`, `hmac` or `token`.
    auth: &'static str,
    /// The header the secret or signature travels in, for signing senders.
    header: Option<&'static str>,
    /// The path to configure at the sender (`<secret>` for URL-secret sources).
    path: String,
    configured: bool,
    updated_at: Option<String>,
}

pub async fn list(State(st): State<AppState>) -> ApiResult<Json<Vec<SourceInfo>>> {
    let set = st.store.hook_sources().await?;
    Ok(Json(
        Source::ALL
            .iter()
            .map(|s| {
                let row = set.iter().find(|r| r.source == s.as_str());
                let (auth, header, path) = match s.auth() {
                    Auth::UrlSecret => (
                        "url_secret",
                        None,
                        format!("/api/hooks/{}/<secret>", s.as_str()),
                    ),
                    Auth::Hmac(h) => ("hmac", Some(h), format!("/api/hooks/{}", s.as_str())),
                    Auth::Token(h) => ("token", Some(h), format!("/api/hooks/{}", s.as_str())),
                };
                SourceInfo {
                    source: s.as_str(),
                    auth,
                    header,
                    path,
                    configured: row.is_some(),
                    updated_at: row.map(|r| r.updated_at.clone()),
                }
            })
            .collect(),
    ))
}

#[derive(Serialize)]
pub struct NewSecret {
    source: &'static str,
    /// Shown this once: paste it into the sender's webhook settings.
    secret: String,
    path: String,
}

/// `POST /api/hooks/{source}/secret`: a new random secret for a source (the old one stops
/// working at once), shown once.
pub async fn regenerate(
    State(st): State<AppState>,
    Path(name): Path<String>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
) -> ApiResult<Json<NewSecret>> {
    let src = source(&name)?;
    let secret = hex::encode(berth_crypto::random_bytes::<24>());
    st.store
        .set_hook_secret(src.as_str(), &SecretString::new(secret.clone()))
        .await?;
    st.store
        .audit(
            &me.user.username,
            "hook.secret_set",
            Some(src.as_str()),
            Some(&addr),
            None,
        )
        .await?;
    let path = match src.auth() {
        Auth::UrlSecret => format!("/api/hooks/{}/{secret}", src.as_str()),
        _ => format!("/api/hooks/{}", src.as_str()),
    };
    Ok(Json(NewSecret {
        source: src.as_str(),
        secret,
        path,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    source: Option<String>,
    limit: Option<i64>,
}

pub async fn deliveries(
    State(st): State<AppState>,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<Json<Vec<Delivery>>> {
    if let Some(s) = &q.source {
        source(s)?;
    }
    Ok(Json(
        st.store
            .deliveries(q.source.as_deref(), q.limit.unwrap_or(100))
            .await?,
    ))
}
