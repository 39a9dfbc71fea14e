//! `BERTH_*` environment variables.

use berth_crypto::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// One documented environment variable.
pub struct VarDoc {
    pub name: &'static str,
    pub default: &'static str,
    /// Whether `<NAME>_FILE` may give the value instead (secrets).
    pub secret: bool,
    pub help: &'static str,
}

/// Every variable berth reads. The README's configuration table lists exactly these.
pub const VARIABLES: &[VarDoc] = &[
    VarDoc {
        name: "BERTH_LISTEN",
        default: "127.0.0.1:8080",
        secret: false,
        help: "Address and port the HTTP server binds.",
    },
    VarDoc {
        name: "BERTH_DATA_DIR",
        default: "./data",
        secret: false,
        help: "Directory for the SQLite database and the generated encryption key.",
    },
    VarDoc {
        name: "BERTH_DATABASE_URL",
        default: "sqlite://<data dir>/berth.db",
        secret: false,
        help: "SQLite database URL.",
    },
    VarDoc {
        name: "BERTH_ENCRYPTION_KEY",
        default: "generated into <data dir>/encryption.key",
        secret: true,
        help: "32-byte key (64 hex or base64) that encrypts credentials and secret values at rest.",
    },
    VarDoc {
        name: "BERTH_ENCRYPTION_OLD_KEYS",
        default: "(none)",
        secret: true,
        help: "Comma-separated previous keys: values sealed with them are re-encrypted with the current key at start.",
    },
    VarDoc {
        name: "BERTH_ADMIN_USERNAME",
        default: "admin",
        secret: false,
        help: "Name of the first admin, created when there are no users.",
    },
    VarDoc {
        name: "BERTH_ADMIN_PASSWORD",
        default: "generated and printed once",
        secret: true,
        help: "Password of the first admin (at least 10 characters).",
    },
    VarDoc {
        name: "BERTH_SEED_FILE",
        default: "./seed.yaml if it exists",
        secret: false,
        help: "Seed YAML imported on first start (see seed.example.yaml).",
    },
    VarDoc {
        name: "BERTH_LOG_FORMAT",
        default: "json",
        secret: false,
        help: "`json` (one object per line) or `pretty`.",
    },
    VarDoc {
        name: "BERTH_LOG",
        default: "info",
        secret: false,
        help: "Log filter, e.g. `info,berth_server=debug`.",
    },
    VarDoc {
        name: "BERTH_PUBLIC_URL",
        default: "(none)",
        secret: false,
        help: "The URL users reach berth at; `https://` marks session cookies Secure and is used in printed links.",
    },
    VarDoc {
        name: "BERTH_TRUST_PROXY",
        default: "false",
        secret: false,
        help: "Trust `X-Forwarded-For`/`X-Forwarded-Proto` from a reverse proxy in front of berth.",
    },
    VarDoc {
        name: "BERTH_BREAK_GLASS_LOCAL_LOGIN",
        default: "false",
        secret: false,
        help: "`true` lets password login work even where the settings turned it off for single sign-on (the identity provider is down or misconfigured). Remove it once you are back in.",
    },
    VarDoc {
        name: "BERTH_SESSION_TTL_HOURS",
        default: "168",
        secret: false,
        help: "Lifetime of a login session and of a script token, in hours.",
    },
    VarDoc {
        name: "BERTH_MAX_BODY_BYTES",
        default: "1048576",
        secret: false,
        help: "Largest accepted request body.",
    },
    VarDoc {
        name: "BERTH_SHUTDOWN_TIMEOUT_SECS",
        default: "30",
        secret: false,
        help: "How long a graceful shutdown waits for requests and work in flight.",
    },
    VarDoc {
        name: "DOCKER_HOST",
        default: "unix:///var/run/docker.sock",
        secret: false,
        help: "The Docker engine berth manages (`unix://…` or `tcp://…`).",
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// berth's settings from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub encryption_key: Option<SecretString>,
    pub encryption_old_keys: Vec<SecretString>,
    pub admin_username: String,
    pub admin_password: Option<SecretString>,
    /// The seed file and whether it was named explicitly (then it must exist).
    pub seed_file: Option<(PathBuf, bool)>,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub public_url: Option<String>,
    pub trust_proxy: bool,
    pub break_glass_local_login: bool,
    pub session_ttl: Duration,
    pub max_body_bytes: usize,
    pub shutdown_timeout: Duration,
    pub docker_host: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {message}")]
    Invalid { name: String, message: String },
    #[error("{name} and {name}_FILE are both set; set only one")]
    Both { name: String },
    #[error("{name}_FILE: cannot read {path}: {error}")]
    File {
        name: String,
        path: String,
        error: String,
    },
}

fn invalid(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_string(),
        message: message.into(),
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| get(name).filter(|v| !v.is_empty());
        let secret = |name: &str| -> Result<Option<SecretString>, ConfigError> {
            let direct = var(name);
            let file = var(&format!("{name}_FILE"));
            match (direct, file) {
                (Some(_), Some(_)) => Err(ConfigError::Both { name: name.into() }),
                (Some(v), None) => Ok(Some(SecretString::new(v))),
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .map(|s| {
                        Some(SecretString::new(
                            s.trim_end_matches(['\n', '\r']).to_string(),
                        ))
                    })
                    .map_err(|e| ConfigError::File {
                        name: name.into(),
                        path,
                        error: e.to_string(),
                    }),
                (None, None) => Ok(None),
            }
        };
        let parse_num = |name: &str, default: u64| -> Result<u64, ConfigError> {
            match var(name) {
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| invalid(name, format!("{v:?} is not a whole number"))),
                None => Ok(default),
            }
        };
        let listen_text = var("BERTH_LISTEN").unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "BERTH_LISTEN",
                format!(
                    "{listen_text:?} is not an address:port such as 127.0.0.1:8080 or 0.0.0.0:8080"
                ),
            )
        })?;
        let data_dir = PathBuf::from(var("BERTH_DATA_DIR").unwrap_or_else(|| "./data".into()));
        let database_url = var("BERTH_DATABASE_URL")
            .unwrap_or_else(|| format!("sqlite://{}/berth.db", data_dir.display()));
        if !database_url.starts_with("sqlite:") {
            return Err(invalid(
                "BERTH_DATABASE_URL",
                "only SQLite is supported: use sqlite://path/to/berth.db",
            ));
        }
        let encryption_old_keys = secret("BERTH_ENCRYPTION_OLD_KEYS")?
            .map(|s| {
                s.expose()
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(SecretString::new)
                    .collect()
            })
            .unwrap_or_default();
        let admin_username = var("BERTH_ADMIN_USERNAME").unwrap_or_else(|| "admin".into());
        berth_domain::Username::parse(admin_username.clone())
            .map_err(|e| invalid("BERTH_ADMIN_USERNAME", e.to_string()))?;
        let seed_file = match var("BERTH_SEED_FILE") {
            Some(p) => Some((PathBuf::from(p), true)),
            None => Some((PathBuf::from("./seed.yaml"), false)),
        };
        let log_format = match var("BERTH_LOG_FORMAT").as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(invalid(
                    "BERTH_LOG_FORMAT",
                    format!("{other:?}: use json or pretty"),
                ));
            }
        };
        let public_url = var("BERTH_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_string());
        if let Some(u) = &public_url {
            berth_domain::model::validate_http_url("BERTH_PUBLIC_URL", u)
                .map_err(|m| invalid("BERTH_PUBLIC_URL", m))?;
        }
        let trust_proxy = match var("BERTH_TRUST_PROXY").as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(invalid(
                    "BERTH_TRUST_PROXY",
                    format!("{other:?}: use true or false"),
                ));
            }
        };
        let break_glass_local_login = match var("BERTH_BREAK_GLASS_LOCAL_LOGIN").as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(invalid(
                    "BERTH_BREAK_GLASS_LOCAL_LOGIN",
                    format!("{other:?}: use true or false"),
                ));
            }
        };
        let ttl_hours = parse_num("BERTH_SESSION_TTL_HOURS", 168)?;
        if ttl_hours == 0 || ttl_hours > 24 * 366 {
            return Err(invalid(
                "BERTH_SESSION_TTL_HOURS",
                "must be 1 to 8784 hours",
            ));
        }
        let max_body = parse_num("BERTH_MAX_BODY_BYTES", 1 << 20)?;
        if !(1024..=(64 << 20)).contains(&max_body) {
            return Err(invalid(
                "BERTH_MAX_BODY_BYTES",
                "must be 1024 to 67108864 bytes",
            ));
        }
        Ok(Self {
            listen,
            data_dir,
            database_url,
            encryption_key: secret("BERTH_ENCRYPTION_KEY")?,
            encryption_old_keys,
            admin_username,
            admin_password: secret("BERTH_ADMIN_PASSWORD")?,
            seed_file,
            log_format,
            log_filter: var("BERTH_LOG").unwrap_or_else(|| "info".into()),
            public_url,
            trust_proxy,
            break_glass_local_login,
            session_ttl: Duration::from_secs(ttl_hours * 3600),
            max_body_bytes: max_body as usize,
            shutdown_timeout: Duration::from_secs(parse_num("BERTH_SHUTDOWN_TIMEOUT_SECS", 30)?),
            docker_host: var("DOCKER_HOST"),
        })
    }

    /// Whether cookies should be marked `Secure` regardless of the request.
    pub fn public_url_is_https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://./data/berth.db");
        assert_eq!(c.admin_username, "admin");
        assert!(c.admin_password.is_none() && c.encryption_key.is_none());
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.seed_file, Some((PathBuf::from("./seed.yaml"), false)));
    }

    #[test]
    fn file_variants_read_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "from-a-file-123\n").unwrap();
        let c = cfg(&[("BERTH_ADMIN_PASSWORD_FILE", p.to_str().unwrap())]).unwrap();
        assert_eq!(c.admin_password.unwrap().expose(), "from-a-file-123");
        let e = cfg(&[
            ("BERTH_ADMIN_PASSWORD_FILE", p.to_str().unwrap()),
            ("BERTH_ADMIN_PASSWORD", "x"),
        ])
        .unwrap_err();
        assert!(matches!(e, ConfigError::Both { .. }));
        let e = cfg(&[("BERTH_ENCRYPTION_KEY_FILE", "/nonexistent/key")]).unwrap_err();
        assert!(e.to_string().contains("BERTH_ENCRYPTION_KEY_FILE"), "{e}");
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (k, v) in [
            ("BERTH_LISTEN", "localhost"),
            ("BERTH_LOG_FORMAT", "xml"),
            ("BERTH_SESSION_TTL_HOURS", "0"),
            ("BERTH_SESSION_TTL_HOURS", "ten"),
            ("BERTH_DATABASE_URL", "postgres://x"),
            ("BERTH_PUBLIC_URL", "berth.example.com"),
            ("BERTH_ADMIN_USERNAME", "no spaces"),
        ] {
            let e = cfg(&[(k, v)]).unwrap_err().to_string();
            assert!(e.contains(k), "{k}={v}: {e}");
        }
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let c = cfg(&[
            ("BERTH_ADMIN_PASSWORD", "very-secret-pw"),
            ("BERTH_ENCRYPTION_KEY", "k3y-material"),
        ])
        .unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("very-secret-pw") && !d.contains("k3y-material"));
    }

    #[test]
    fn the_readme_documents_exactly_these_variables() {
        let readme = include_str!("../../../README.md");
        let documented: Vec<&str> = readme
            .lines()
            .filter(|l| l.starts_with("| `"))
            .filter_map(|l| l.split('`').nth(1))
            .collect();
        let known: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
        assert_eq!(
            documented, known,
            "README.md's configuration table and VARIABLES differ"
        );
        for v in VARIABLES.iter().filter(|v| v.secret) {
            assert!(
                readme.contains(&format!("`{}_FILE`", v.name)),
                "{}_FILE undocumented",
                v.name
            );
        }
    }

    #[test]
    fn old_keys_split() {
        let c = cfg(&[("BERTH_ENCRYPTION_OLD_KEYS", "a, b,,c")]).unwrap();
        assert_eq!(c.encryption_old_keys.len(), 3);
    }
}
