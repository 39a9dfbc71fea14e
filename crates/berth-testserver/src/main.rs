//! `berth-testserver`: the small HTTP server inside berth's test images.
//!
//! It uses only `std` so it links statically and runs in a `FROM scratch` image. Every flag
//! can also come from the environment (`TS_*`), so one binary yields many image variants.
//!
//! Endpoints:
//! - `GET /` and `GET /version`: the version string (plain text);
//! - `GET <health path>` (default `/health`): 200 `ok`, or 500 while told to fail;
//! - `POST /health/fail` and `POST /health/ok`: flip health at run time;
//! - `GET /env/<NAME>`: the value of an environment variable (404 if unset);
//! - `GET /file?path=/x`: a file's content (to check volume mounts);
//! - `PUT /file?path=/x`: write the request body to a file.
//!
//! `--check URL` makes one GET request and exits 0 on a 2xx: the image's HEALTHCHECK.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Opts {
    port: u16,
    version: String,
    start_delay: Duration,
    health_path: String,
    fail_health: bool,
    unhealthy_after: Option<Duration>,
    exit_after: Option<Duration>,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn parse_secs(flag: &str, v: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{flag}: expected seconds, got {v:?}"))
}

/// An optional duration from the environment; empty counts as unset (Dockerfile defaults).
fn optional_secs(name: &str) -> Result<Option<Duration>, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => parse_secs(name, &v).map(Some),
        _ => Ok(None),
    }
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        port: env_or("TS_PORT", "8080")
            .parse()
            .map_err(|_| "TS_PORT: not a port".to_string())?,
        version: env_or("TS_VERSION", "dev"),
        start_delay: parse_secs("TS_START_DELAY", &env_or("TS_START_DELAY", "0"))?,
        health_path: env_or("TS_HEALTH_PATH", "/health"),
        fail_health: env_or("TS_FAIL_HEALTH", "0") == "1",
        unhealthy_after: optional_secs("TS_UNHEALTHY_AFTER")?,
        exit_after: optional_secs("TS_EXIT_AFTER")?,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--port" => {
                o.port = val("--port")?
                    .parse()
                    .map_err(|_| "--port: not a port".to_string())?
            }
            "--version" => o.version = val("--version")?,
            "--start-delay" => o.start_delay = parse_secs("--start-delay", &val("--start-delay")?)?,
            "--health-path" => o.health_path = val("--health-path")?,
            "--fail-health" => o.fail_health = true,
            "--unhealthy-after" => {
                o.unhealthy_after =
                    Some(parse_secs("--unhealthy-after", &val("--unhealthy-after")?)?)
            }
            "--exit-after" => {
                o.exit_after = Some(parse_secs("--exit-after", &val("--exit-after")?)?)
            }
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    Ok(o)
}

/// One GET to `http://127.0.0.1:PORT/path`; exit status 0 on 2xx.
fn check(url: &str) -> i32 {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let Ok(mut s) = TcpStream::connect(hostport) else {
        return 1;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let req = format!("GET {path} HTTP/1.0\r\nHost: {hostport}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return 1;
    }
    let mut line = String::new();
    if BufReader::new(s).read_line(&mut line).is_err() {
        return 1;
    }
    match line.split_whitespace().nth(1) {
        Some(code) if code.starts_with('2') => 0,
        _ => 1,
    }
}

struct State {
    opts: Opts,
    started: Instant,
    force_fail: AtomicBool,
    requests: AtomicU64,
}

impl State {
    fn healthy(&self) -> bool {
        if self.force_fail.load(Ordering::Relaxed) {
            return false;
        }
        match self.opts.unhealthy_after {
            Some(d) => self.started.elapsed() < d,
            None => true,
        }
    }
}

fn respond(stream: &mut TcpStream, status: u16, body: &[u8]) {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn handle(mut stream: TcpStream, st: &State) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut content_length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            content_length = v.trim().parse().unwrap_or(0);
        }
    }
    st.requests.fetch_add(1, Ordering::Relaxed);
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match (method, path) {
        ("GET", "/") | ("GET", "/version") => respond(
            &mut stream,
            200,
            format!("{}\n", st.opts.version).as_bytes(),
        ),
        ("POST", "/health/fail") => {
            st.force_fail.store(true, Ordering::Relaxed);
            respond(&mut stream, 200, b"failing\n")
        }
        ("POST", "/health/ok") => {
            st.force_fail.store(false, Ordering::Relaxed);
            respond(&mut stream, 200, b"ok\n")
        }
        ("GET", p) if p == st.opts.health_path => {
            if st.healthy() {
                respond(&mut stream, 200, b"ok\n")
            } else {
                respond(&mut stream, 500, b"unhealthy\n")
            }
        }
        ("GET", p) if p.starts_with("/env/") => match std::env::var(&p[5..]) {
            Ok(v) => respond(&mut stream, 200, v.as_bytes()),
            Err(_) => respond(&mut stream, 404, b"unset\n"),
        },
        ("GET", "/file") => match query_param(query, "path").map(std::fs::read) {
            Some(Ok(b)) => respond(&mut stream, 200, &b),
            Some(Err(e)) => respond(&mut stream, 404, e.to_string().as_bytes()),
            None => respond(&mut stream, 400, b"path= missing\n"),
        },
        ("PUT", "/file") => {
            let mut body = vec![0u8; content_length.min(1 << 20)];
            if reader.read_exact(&mut body).is_err() {
                return respond(&mut stream, 400, b"short body\n");
            }
            match query_param(query, "path").map(|p| std::fs::write(p, &body)) {
                Some(Ok(())) => respond(&mut stream, 201, b"written\n"),
                Some(Err(e)) => respond(&mut stream, 500, e.to_string().as_bytes()),
                None => respond(&mut stream, 400, b"path= missing\n"),
            }
        }
        ("GET", _) => respond(&mut stream, 404, b"not found\n"),
        _ => respond(&mut stream, 405, b"method not allowed\n"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--check") {
        let url = args
            .get(1)
            .map(String::as_str)
            .unwrap_or("http://127.0.0.1:8080/health");
        std::process::exit(check(url));
    }
    let opts = match parse_opts(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("berth-testserver: {e}");
            std::process::exit(2);
        }
    };
    eprintln!(
        "berth-testserver {} on :{} (start delay {:?}, health {}{})",
        opts.version,
        opts.port,
        opts.start_delay,
        opts.health_path,
        if opts.fail_health { ", failing" } else { "" }
    );
    std::thread::sleep(opts.start_delay);
    if let Some(after) = opts.exit_after {
        std::thread::spawn(move || {
            std::thread::sleep(after);
            eprintln!("berth-testserver: exiting after {after:?} as asked");
            std::process::exit(3);
        });
    }
    let listener = TcpListener::bind(("0.0.0.0", opts.port)).unwrap_or_else(|e| {
        eprintln!("berth-testserver: bind :{}: {e}", opts.port);
        std::process::exit(1);
    });
    let state = Arc::new(State {
        force_fail: AtomicBool::new(opts.fail_health),
        opts,
        started: Instant::now(),
        requests: AtomicU64::new(0),
    });
    for stream in listener.incoming().flatten() {
        let st = Arc::clone(&state);
        std::thread::spawn(move || handle(stream, &st));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_defaults() {
        let args: Vec<String> = ["--port", "9000", "--version", "v7", "--start-delay", "1.5"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = parse_opts(&args).unwrap();
        assert_eq!(o.port, 9000);
        assert_eq!(o.version, "v7");
        assert_eq!(o.start_delay, Duration::from_millis(1500));
    }

    #[test]
    fn bad_flags_are_rejected() {
        let args = vec!["--port".to_string(), "x".to_string()];
        assert!(parse_opts(&args).unwrap_err().contains("--port"));
        assert!(parse_opts(&["--nope".to_string()]).is_err());
        assert!(parse_opts(&["--start-delay".to_string(), "-1".to_string()]).is_err());
    }
}
