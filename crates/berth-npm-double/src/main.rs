//! `berth-npm-double`: runs the Nginx Proxy Manager double.
//!
//! Environment: `NPM_DOUBLE_LISTEN` (127.0.0.1:8181), `INITIAL_ADMIN_EMAIL`,
//! `INITIAL_ADMIN_PASSWORD`, `NPM_DOUBLE_TOKEN_TTL_SECS` (86400), and for real nginx:
//! `NPM_DOUBLE_NGINX_PREFIX`, `NPM_DOUBLE_NGINX_CONF`, `NPM_DOUBLE_HOSTS_DIR`,
//! `NPM_DOUBLE_LISTEN_ROUTES` (what server blocks listen on). Prints `listening on <addr>`.

use berth_npm_double::{Config, Double, NginxConfig};
use std::path::PathBuf;
use std::time::Duration;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let nginx = var("NPM_DOUBLE_NGINX_PREFIX").map(|prefix| {
        let prefix = PathBuf::from(prefix);
        let hosts_dir = var("NPM_DOUBLE_HOSTS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| berth_npm_double::hosts_dir(&prefix, "default"));
        NginxConfig {
            bin: PathBuf::from(var("NPM_DOUBLE_NGINX_BIN").unwrap_or_else(|| "nginx".into())),
            conf: var("NPM_DOUBLE_NGINX_CONF")
                .map(PathBuf::from)
                .unwrap_or_else(|| prefix.join("nginx.conf")),
            lock: prefix.join("proxy_host.lock"),
            listen: var("NPM_DOUBLE_LISTEN_ROUTES").unwrap_or_else(|| "80".into()),
            hosts_dir,
            prefix,
        }
    });
    let config = Config {
        nginx,
        initial_admin: var("INITIAL_ADMIN_EMAIL").zip(var("INITIAL_ADMIN_PASSWORD")),
        token_ttl: Duration::from_secs(
            var("NPM_DOUBLE_TOKEN_TTL_SECS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(86400),
        ),
    };
    let listener = tokio::net::TcpListener::bind(
        var("NPM_DOUBLE_LISTEN").unwrap_or_else(|| "127.0.0.1:8181".into()),
    )
    .await?;
    println!("listening on {}", listener.local_addr()?);
    berth_npm_double::serve(listener, Double::new(config), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
