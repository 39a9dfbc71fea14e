//! Health gates: is a new container ready, and does it stay healthy.

use berth_domain::model::HealthCheck;
use berth_domain::ports::ContainerEngine;
use std::time::{Duration, Instant};

/// Where berth reaches a container from its own network namespace.
#[derive(Debug, Clone)]
pub struct Probe {
    pub host: String,
    pub port: u16,
}

/// How long an image's own HEALTHCHECK may take to report.
const IMAGE_HEALTH_LIMIT: Duration = Duration::from_secs(180);

/// One look: `Ok(true)` healthy, `Ok(false)` not yet / not now, `Err` hopeless (exited).
async fn look(
    engine: &dyn ContainerEngine,
    http: &reqwest::Client,
    check: &HealthCheck,
    id: &str,
    probe: &Probe,
) -> Result<bool, String> {
    let st = engine.inspect(id).await.map_err(|e| e.to_string())?;
    if !st.running {
        return Err(format!(
            "the container stopped (state {}, exit code {})",
            st.state,
            st.exit_code.map(|c| c.to_string()).unwrap_or("?".into())
        ));
    }
    match check {
        HealthCheck::None => Ok(true),
        HealthCheck::Image => match st.health.as_deref() {
            Some("healthy") => Ok(true),
            Some("unhealthy") => Err("the image's HEALTHCHECK reports unhealthy".into()),
            // No HEALTHCHECK in the image: running is all we can know.
            None => Ok(true),
            _ => Ok(false),
        },
        HealthCheck::Http {
            path,
            expected_status,
            timeout_secs,
            ..
        } => {
            let url = format!("http://{}:{}{path}", probe.host, probe.port);
            match http
                .get(&url)
                .timeout(Duration::from_secs((*timeout_secs).max(1) as u64))
                .send()
                .await
            {
                Ok(r) if r.status().as_u16() == *expected_status => Ok(true),
                _ => Ok(false),
            }
        }
        HealthCheck::Tcp { timeout_secs, .. } => {
            let conn = tokio::net::TcpStream::connect((probe.host.as_str(), probe.port));
            Ok(matches!(
                tokio::time::timeout(Duration::from_secs((*timeout_secs).max(1) as u64), conn)
                    .await,
                Ok(Ok(_))
            ))
        }
    }
}

fn timing(check: &HealthCheck) -> (Duration, Duration, u32) {
    match check {
        HealthCheck::Http {
            interval_secs,
            retries,
            start_period_secs,
            ..
        }
        | HealthCheck::Tcp {
            interval_secs,
            retries,
            start_period_secs,
            ..
        } => (
            Duration::from_millis(*interval_secs as u64 * 1000).max(Duration::from_millis(200)),
            Duration::from_secs(*start_period_secs as u64),
            *retries,
        ),
        // The engine's health is a cheap inspect: look often, so a ready container goes live at once.
        _ => (Duration::from_millis(100), Duration::ZERO, 0),
    }
}

/// Waits until the container is healthy. HTTP/TCP: after the start period, `retries` failed
/// looks in a row fail the gate; the image's check: until it says healthy or unhealthy.
pub async fn gate(
    engine: &dyn ContainerEngine,
    http: &reqwest::Client,
    check: &HealthCheck,
    id: &str,
    probe: &Probe,
) -> Result<Duration, String> {
    let t0 = Instant::now();
    let (interval, start_period, retries) = timing(check);
    let mut failures = 0u32;
    loop {
        if look(engine, http, check, id, probe).await? {
            return Ok(t0.elapsed());
        }
        let in_start_period = t0.elapsed() < start_period;
        match check {
            HealthCheck::Http {
                path,
                expected_status,
                ..
            } if !in_start_period => {
                failures += 1;
                if failures >= retries.max(1) {
                    return Err(format!(
                        "GET {path} did not answer {expected_status} after {failures} tries"
                    ));
                }
            }
            HealthCheck::Tcp { .. } if !in_start_period => {
                failures += 1;
                if failures >= retries.max(1) {
                    return Err(format!(
                        "no TCP connection to port {} after {failures} tries",
                        probe.port
                    ));
                }
            }
            _ if t0.elapsed() > IMAGE_HEALTH_LIMIT => {
                return Err("the image's HEALTHCHECK did not report healthy in time".into());
            }
            _ => {}
        }
        tokio::time::sleep(interval).await;
    }
}

/// One look during the watch window; three failed HTTP/TCP looks in a row count as unhealthy.
pub struct Watch {
    failures: u32,
}

impl Watch {
    pub fn new() -> Self {
        Self { failures: 0 }
    }

    pub async fn still_healthy(
        &mut self,
        engine: &dyn ContainerEngine,
        http: &reqwest::Client,
        check: &HealthCheck,
        id: &str,
        probe: &Probe,
    ) -> Result<(), String> {
        match look(engine, http, check, id, probe).await {
            Ok(true) => {
                self.failures = 0;
                Ok(())
            }
            Ok(false) => {
                self.failures += 1;
                if self.failures >= 3 {
                    Err("it stopped answering its health check".into())
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(e),
        }
    }
}

impl Default for Watch {
    fn default() -> Self {
        Self::new()
    }
}
