//! `berth`: the binary. Reads configuration, opens the store, starts the engine monitor and
//! the HTTP server, and shuts them down in order on SIGTERM/SIGINT.
//!
//! Architecture invariant: glue only. Every decision lives in a library crate; this file
//! wires them and turns their errors into exit codes and messages for the operator.

use anyhow::{Context, bail};
use berth_config::seed::{IncludeSecrets, Seed};
use berth_config::{Config, LogFormat};
use berth_crypto::{Key, Keyring, SecretString};
use berth_docker::DockerEngine;
use berth_server::{App, ServerSettings};
use berth_store::Store;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Zero-downtime deploys for Docker hosts behind Nginx Proxy Manager"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (configuration from BERTH_* environment variables; see the README).
    Serve,
    /// Exit 0 if the server at BERTH_LISTEN answers /api/health with 200, else 1.
    Healthcheck,
    /// Print the version.
    Version,
    /// Write the configuration as seed YAML (secrets left out unless asked for).
    Export {
        /// Include credentials and secret env values in plain text.
        #[arg(long)]
        include_secrets: bool,
        /// Write to this file (mode 0600) instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Print a new random encryption key for BERTH_ENCRYPTION_KEY.
    GenKey,
    /// List the API routes and who may call them.
    Routes,
    /// Print the OpenAPI description of the API (JSON; docs/openapi.json is a copy).
    Openapi,
}

fn main() -> ExitCode {
    // One TLS crypto provider for every HTTPS client berth makes (ring; see toolchain notes).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("berth {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::GenKey => {
            println!("{}", Key::generate().to_base64().expose());
            ExitCode::SUCCESS
        }
        Command::Healthcheck => healthcheck(),
        command => {
            let config = match Config::from_env() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("berth: configuration error: {e}");
                    return ExitCode::from(2);
                }
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let result = rt.block_on(async move {
                match command {
                    Command::Serve => serve(config).await,
                    Command::Export {
                        include_secrets,
                        output,
                    } => export(config, include_secrets, output).await,
                    Command::Routes => routes(config, false).await,
                    Command::Openapi => routes(config, true).await,
                    _ => unreachable!(),
                }
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "berth stopped");
                    eprintln!("berth: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Pretty => builder.init(),
    }
}

/// The keyring from BERTH_ENCRYPTION_KEY, or from `<data>/encryption.key` (made on first start).
fn keyring(config: &Config) -> anyhow::Result<Keyring> {
    let old = config
        .encryption_old_keys
        .iter()
        .map(|k| Key::parse("BERTH_ENCRYPTION_OLD_KEYS", k.expose()))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(k) = &config.encryption_key {
        return Ok(Keyring::new(
            Key::parse("BERTH_ENCRYPTION_KEY", k.expose())?,
            old,
        ));
    }
    let path = config.data_dir.join("encryption.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let key = Key::parse(&path.display().to_string(), &text)?;
        return Ok(Keyring::new(key, old));
    }
    let key = Key::generate();
    write_private(&path, format!("{}\n", key.to_base64().expose()).as_bytes())?;
    tracing::warn!(
        key.file = %path.display(), key.id = %key.id(),
        "no BERTH_ENCRYPTION_KEY given: generated a new encryption key into the data directory. \
         Back it up: without it, stored credentials cannot be decrypted"
    );
    Ok(Keyring::new(key, old))
}

/// Writes a file readable only by its owner.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// The file behind a `sqlite:` URL, if it names one.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    if !config.data_dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.data_dir)
            .with_context(|| {
                format!("creating the data directory {}", config.data_dir.display())
            })?;
    }
    // The database holds password hashes and sealed secrets: create it private (SQLite gives
    // its -wal and -shm files the same mode).
    if let Some(db) = sqlite_path(&config.database_url)
        && !db.exists()
    {
        write_private(&db, b"")?;
    }
    let keyring = keyring(config)?;
    let store = Store::open(&config.database_url, keyring)
        .await
        .with_context(|| format!("opening the database {}", config.database_url))?;
    let unknown = store.unknown_key_ids().await?;
    if !unknown.is_empty() {
        bail!(
            "the database holds values encrypted with key id(s) {} but the configured key is {}. \
             Set BERTH_ENCRYPTION_KEY to the key berth used before, or give it in BERTH_ENCRYPTION_OLD_KEYS to rotate",
            unknown.join(", "),
            store.keyring().current_id()
        );
    }
    if !config.encryption_old_keys.is_empty() {
        let n = store.reseal_all().await?;
        tracing::info!(values = n, key.id = %store.keyring().current_id(), "re-encrypted stored values with the current key");
    }
    Ok(store)
}

/// The first start: seed import and the first admin, in one transaction.
async fn first_start(config: &Config, store: &Store) -> anyhow::Result<()> {
    let seed = match &config.seed_file {
        Some((path, explicit)) if path.exists() || *explicit => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the seed file {}", path.display()))?;
            let seed = Seed::parse(&text).map_err(|e| {
                anyhow::anyhow!("the seed file {} was not imported: {e}", path.display())
            })?;
            Some((path.clone(), seed))
        }
        _ => None,
    };
    let generated = config.admin_password.is_none();
    let password = config
        .admin_password
        .clone()
        .unwrap_or_else(berth_auth::generate_password);
    let pw = password.clone();
    let hash = tokio::task::spawn_blocking(move || berth_auth::hash_password(&pw))
        .await?
        .map_err(|e| anyhow::anyhow!("BERTH_ADMIN_PASSWORD: {e}"))?;
    let admin = berth_domain::Username::parse(config.admin_username.clone())?;
    let needs_admin = store.count_users().await? == 0;
    let ran = store
        .initialize(
            seed.as_ref().map(|(_, s)| s),
            needs_admin.then_some((&admin, hash.as_str())),
        )
        .await?;
    if !ran {
        if let Some((path, _)) = &seed {
            tracing::info!(seed.file = %path.display(), "database already initialised; the seed file is not read again");
        }
        return Ok(());
    }
    if let Some((path, s)) = &seed {
        tracing::info!(seed.file = %path.display(), projects = s.projects.len(), registries = s.registries.len(), "seed imported");
        store
            .audit(
                "system",
                "config.seeded",
                Some(&path.display().to_string()),
                None,
                None,
            )
            .await?;
    }
    if needs_admin {
        store
            .audit(
                "system",
                "user.created",
                Some(admin.as_str()),
                None,
                Some(serde_json::json!({"role": "admin", "first_admin": true})),
            )
            .await?;
        if generated {
            print_generated_password(admin.as_str(), &password);
        } else {
            tracing::info!(user.name = %admin, "first admin created with the password from BERTH_ADMIN_PASSWORD");
        }
    }
    Ok(())
}

fn print_generated_password(user: &str, password: &SecretString) {
    // Printed once, to the terminal, by design; it is not a log line.
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "\n==================================================================\n\
         berth: first start. An admin user was created:\n\
         \n    username: {user}\n    password: {}\n\n\
         This password is shown only this once. Change it after logging in,\n\
         or set BERTH_ADMIN_PASSWORD before the first start next time.\n\
         ==================================================================\n",
        password.expose()
    );
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    init_logging(&config);
    let store = open_store(&config).await?;
    first_start(&config, &store).await?;

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let engine = DockerEngine::new(config.docker_host.clone());
    tracker.spawn(engine.clone().monitor(cancel.clone()));
    {
        let (store, cancel) = (store.clone(), cancel.clone());
        tracker.spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                }
                match store.purge_expired_sessions().await {
                    Ok(n) if n > 0 => tracing::info!(sessions = n, "expired sessions removed"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "purging expired sessions failed"),
                }
            }
        });
    }

    if config.break_glass_local_login {
        tracing::warn!(
            "BERTH_BREAK_GLASS_LOCAL_LOGIN is set: password login works even where single sign-on turned it off; remove it once you are back in"
        );
    }
    let settings = ServerSettings {
        session_ttl: config.session_ttl,
        secure_cookies: config.public_url_is_https(),
        trust_proxy: config.trust_proxy,
        break_glass_local_login: config.break_glass_local_login,
        max_body_bytes: config.max_body_bytes,
    };
    let proxy: Arc<dyn berth_domain::ports::ProxyConnector> = Arc::new(berth_npm::NpmConnector);
    let deployer = berth_deployer::Deployer::new(
        store.clone(),
        engine.clone(),
        proxy.clone(),
        Default::default(),
    );
    {
        // Settle what a crash left unfinished once the engine answers (or after 10 s).
        let (engine, deployer) = (engine.clone(), deployer.clone());
        tracker.spawn(async move {
            for _ in 0..100 {
                if berth_domain::ports::ContainerEngine::status(engine.as_ref()).is_connected() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if let Err(e) = deployer.reconcile().await {
                tracing::error!(error = %e, "reconciliation failed");
            }
        });
    }
    let app = Arc::new(App::new(
        store.clone(),
        engine.clone(),
        proxy,
        deployer.clone(),
        settings,
    ));
    {
        // The registry poller: new tags for stages that deploy automatically.
        let poller = Arc::new(berth_deployer::Poller::new(
            deployer.clone(),
            store.clone(),
            app.registry.clone(),
        ));
        tracker.spawn(poller.run(cancel.clone()));
    }
    let (router, _) = berth_server::router(app.clone());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (BERTH_LISTEN)", config.listen))?;
    let local = listener.local_addr()?;
    let url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    tracing::info!(
        listen = %local, url = %url, docker.host = %engine.host(), data.dir = %config.data_dir.display(),
        startup.ms = started.elapsed().as_millis() as u64,
        "berth is listening: open {url} and log in as {}", config.admin_username
    );

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(berth_server::serve(listener, router, async move {
        let _ = stop_rx.await;
    }));
    tokio::select! {
        _ = shutdown_signal() => {}
        r = cancel.cancelled() => r,
    }
    app.shutting_down.store(true, Ordering::Relaxed);
    app.shutdown.cancel();
    cancel.cancel();
    let _ = stop_tx.send(());
    match tokio::time::timeout(config.shutdown_timeout, server).await {
        Ok(Ok(Ok(()))) => tracing::info!("HTTP server stopped"),
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "HTTP server failed"),
        Ok(Err(e)) => tracing::error!(error = %e, "HTTP server task failed"),
        Err(_) => tracing::warn!(
            timeout.secs = config.shutdown_timeout.as_secs(),
            "requests still open at the shutdown timeout; closing them"
        ),
    }
    // Deploys in flight get the shutdown timeout to finish; one cut short is settled by the
    // reconciliation at the next start.
    deployer.tracker().close();
    if tokio::time::timeout(config.shutdown_timeout, deployer.tracker().wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "a deploy was still running at the shutdown timeout; the next start settles it"
        );
    }
    tracker.close();
    if tokio::time::timeout(config.shutdown_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("background work did not stop within the shutdown timeout");
    }
    store.close().await;
    tracing::info!("berth stopped cleanly");
    Ok(())
}

async fn export(
    config: Config,
    include_secrets: bool,
    output: Option<PathBuf>,
) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let include = if include_secrets {
        IncludeSecrets::Yes
    } else {
        IncludeSecrets::No
    };
    let yaml = store.export_seed(include).await?.to_yaml(include);
    store
        .audit(
            "cli",
            "config.exported",
            None,
            None,
            Some(serde_json::json!({"include_secrets": include_secrets})),
        )
        .await?;
    store.close().await;
    match output {
        Some(path) => write_private(&path, yaml.as_bytes())?,
        None => std::io::stdout().write_all(yaml.as_bytes())?,
    }
    Ok(())
}

/// The route table (`berth routes`), or the OpenAPI description made from it.
async fn routes(config: Config, openapi: bool) -> anyhow::Result<()> {
    let store = Store::open_in_memory(Keyring::new(Key::generate(), vec![])).await?;
    let engine = DockerEngine::new(config.docker_host);
    let proxy: Arc<dyn berth_domain::ports::ProxyConnector> = Arc::new(berth_npm::NpmConnector);
    let deployer = berth_deployer::Deployer::new(
        store.clone(),
        engine.clone(),
        proxy.clone(),
        Default::default(),
    );
    let app = Arc::new(App::new(
        store,
        engine,
        proxy,
        deployer,
        ServerSettings::default(),
    ));
    let table = berth_server::router(app).1;
    let out = if openapi {
        berth_server::openapi::pretty(&table)
    } else {
        table
            .iter()
            .map(|r| {
                let who = match r.access {
                    berth_server::Access::Public => "public".to_string(),
                    berth_server::Access::Role(role) => role.to_string(),
                };
                format!("{:<7} {:<66} {:<9} {}\n", r.method, r.path, who, r.summary)
            })
            .collect()
    };
    // A reader that stops early (`| head`) is not an error.
    match std::io::stdout().write_all(out.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// `berth healthcheck`: one plain HTTP/1.0 GET, no TLS, no dependencies; for HEALTHCHECK.
fn healthcheck() -> ExitCode {
    use std::io::{BufRead, BufReader};
    let listen = std::env::var("BERTH_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let Ok(mut addr) = listen.parse::<std::net::SocketAddr>() else {
        eprintln!("healthcheck: BERTH_LISTEN {listen:?} is not address:port");
        return ExitCode::FAILURE;
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let probe = || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(s, "GET /api/health HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        Ok(line)
    };
    match probe() {
        Ok(line) if line.split_whitespace().nth(1) == Some("200") => ExitCode::SUCCESS,
        Ok(line) => {
            eprintln!("healthcheck: {}", line.trim());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("healthcheck: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}
