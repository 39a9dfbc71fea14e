//! Notifications: a JSON POST to the configured `notification_url` when a deploy succeeds,
//! fails or is rolled back. Sent from its own task, retried with exponential back-off, so a
//! slow or dead receiver never holds up a deploy. The URL may carry a token (chat webhooks
//! do), so logs name only its host.

use crate::Deployer;
use berth_domain::deploy::DeployState;
use berth_domain::plan::{fqdn, stage_subdomain, tag_subdomain};
use berth_store::DeployRecord;
use serde::Serialize;
use std::time::Duration;

/// What the receiver gets.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// `deploy.succeeded`, `deploy.failed` or `deploy.rolled_back`.
    pub event: String,
    pub deploy: String,
    pub project: String,
    pub stage: String,
    pub tag: String,
    pub image: String,
    pub digest: Option<String>,
    /// Where the stage is served (`https://` is the operator's business: berth sends the
    /// host name).
    pub domain: Option<String>,
    pub error: Option<String>,
    pub trigger: String,
    pub actor: String,
    /// A short line for chat: "shop/dev v2 is live at …".
    pub text: String,
}

/// How many times a notification is tried in all.
pub const ATTEMPTS: u32 = 5;

impl Deployer {
    /// Queues the notification of a finished deploy, if a URL is configured.
    pub(crate) async fn notify(&self, d: &DeployRecord, state: DeployState, error: Option<&str>) {
        if !matches!(
            state,
            DeployState::Succeeded | DeployState::Failed | DeployState::RolledBack
        ) {
            return;
        }
        let Ok(global) = self.store.global_settings().await else {
            return;
        };
        let Some(url) = global.notification_url.clone() else {
            return;
        };
        // The record as stored now: the digest was resolved after `d` was loaded.
        let fresh = self.store.deploy(&d.id).await;
        let d = fresh.as_ref().unwrap_or(d);
        let domain = self
            .store
            .project(&d.project)
            .await
            .ok()
            .flatten()
            .and_then(|p| {
                let s = p.stages.iter().find(|s| s.name.as_str() == d.stage)?;
                let label = if s.max_instances > 1 {
                    tag_subdomain(&p, s, &global, &d.tag)
                } else {
                    stage_subdomain(&p, s, &global)
                };
                Some(fqdn(&label, &global))
            });
        let text = match (state, &domain) {
            (DeployState::Succeeded, Some(dm)) => {
                format!("{}/{} {} is live at {dm}", d.project, d.stage, d.tag)
            }
            (DeployState::Succeeded, None) => {
                format!("{}/{} {} is live", d.project, d.stage, d.tag)
            }
            (DeployState::RolledBack, _) => format!(
                "{}/{} {} was rolled back: {}",
                d.project,
                d.stage,
                d.tag,
                error.unwrap_or("unhealthy")
            ),
            _ => format!(
                "{}/{} {} failed: {}",
                d.project,
                d.stage,
                d.tag,
                error.unwrap_or("unknown error")
            ),
        };
        let n = Notification {
            event: format!("deploy.{}", state.as_str()),
            deploy: d.id.clone(),
            project: d.project.clone(),
            stage: d.stage.clone(),
            tag: d.tag.clone(),
            image: d.image.clone(),
            digest: d.digest.clone(),
            domain,
            error: error.map(String::from),
            trigger: d.trigger.clone(),
            actor: d.actor.clone(),
            text,
        };
        let http = self.http.clone();
        let store = self.store.clone();
        let base = self.options.notify_backoff;
        // Not on the deploy tracker: shutdown does not wait minutes for a dead receiver.
        tokio::spawn(async move {
            let host = reqwest::Url::parse(&url)
                .ok()
                .and_then(|u| u.host_str().map(String::from))
                .unwrap_or_else(|| "the notification URL".into());
            let (level, line) = match send(&http, &url, &n, base).await {
                Ok(attempts) => (
                    "info",
                    format!("notified {host} (attempt {attempts} of {ATTEMPTS})"),
                ),
                Err(e) => (
                    "warn",
                    format!("could not notify {host} after {ATTEMPTS} attempts: {e}"),
                ),
            };
            tracing::info!(deploy.id = %n.deploy, "{line}");
            let _ = store.deploy_log(&n.deploy, level, &line).await;
        });
    }
}

/// POSTs `n` until a 2xx answer, at most [`ATTEMPTS`] times, waiting `base`, 2×, 4×… between.
/// Returns the attempt that succeeded, or the last error (status or cause, never the URL).
async fn send(
    http: &reqwest::Client,
    url: &str,
    n: &Notification,
    base: Duration,
) -> Result<u32, String> {
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match http
            .post(url)
            .timeout(Duration::from_secs(10))
            .json(n)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return Ok(attempt),
            Ok(r) => last = format!("answered {}", r.status()),
            Err(e) => {
                last = if e.is_timeout() {
                    "timed out".into()
                } else if e.is_connect() {
                    "connection refused or unreachable".into()
                } else {
                    "request failed".into()
                }
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(base * 2u32.pow(attempt - 1)).await;
        }
    }
    Err(last)
}
