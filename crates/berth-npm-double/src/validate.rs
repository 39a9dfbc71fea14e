//! Proxy-host request validation as NPM's ajv does it (`coerceTypes: true`, all errors
//! listed, comma-separated), with its messages word for word.

use serde_json::{Map, Value};

pub const DOMAIN_PATTERN: &str = r#"^[^&| @!#%^();:/\\}{=+?<>,~`'"]+$"#;

const BOOLEANS: [&str; 9] = [
    "ssl_forced",
    "hsts_enabled",
    "hsts_subdomains",
    "http2_support",
    "block_exploits",
    "caching_enabled",
    "allow_websocket_upgrade",
    "trust_forwarded_proto",
    "enabled",
];
const KNOWN: [&str; 17] = [
    "domain_names",
    "forward_scheme",
    "forward_host",
    "forward_port",
    "certificate_id",
    "ssl_forced",
    "hsts_enabled",
    "hsts_subdomains",
    "http2_support",
    "block_exploits",
    "caching_enabled",
    "allow_websocket_upgrade",
    "trust_forwarded_proto",
    "enabled",
    "access_list_id",
    "advanced_config",
    "meta",
];
const LOCATION_KEYS: [&str; 7] = [
    "path",
    "forward_scheme",
    "forward_host",
    "forward_port",
    "id",
    "forward_path",
    "advanced_config",
];

fn domain_ok(d: &str) -> bool {
    !d.is_empty()
        && !d
            .chars()
            .any(|c| "&| @!#%^();:/\\}{=+?<>,~`'\"".contains(c))
}

/// ajv's integer coercion: numbers without a fraction, numeric strings, booleans (0/1).
fn coerce_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|_| !s.trim().is_empty()),
        Value::Bool(b) => Some(*b as i64),
        Value::Null => Some(0),
        _ => None,
    }
}

/// ajv's boolean coercion: "true"/"false", 1/0, null → false.
fn coerce_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        Value::Number(n) if n.as_f64() == Some(1.0) => Some(true),
        Value::Number(n) if n.as_f64() == Some(0.0) => Some(false),
        Value::Null => Some(false),
        _ => None,
    }
}

fn coerce_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Validates and coerces a create (`required`) or update body. On success returns the object
/// with values coerced; `certificate_id` keeps NPM's quirk (an explicit number becomes a
/// string, so `0` stays "truthy" for the SSL clean-up).
pub fn proxy_host(body: &Value, create: bool) -> Result<Map<String, Value>, String> {
    let Some(obj) = body.as_object() else {
        return Err("data must be object".into());
    };
    let mut errors = Vec::new();
    if create {
        for r in [
            "domain_names",
            "forward_scheme",
            "forward_host",
            "forward_port",
        ] {
            if !obj.contains_key(r) {
                errors.push(format!("data must have required property '{r}'"));
            }
        }
    } else if obj.is_empty() {
        errors.push("data must NOT have fewer than 1 properties".into());
    }
    if obj
        .keys()
        .any(|k| !KNOWN.contains(&k.as_str()) && k != "locations")
    {
        errors.push("data must NOT have additional properties".into());
    }
    let mut out = Map::new();
    // ajv reports in the schema's property order, whatever the body's order.
    let in_schema_order = KNOWN
        .iter()
        .chain(std::iter::once(&"locations"))
        .filter_map(|k| obj.get_key_value(*k));
    for (k, v) in in_schema_order {
        let path = format!("data/{k}");
        match k.as_str() {
            "domain_names" => match v.as_array() {
                None => errors.push(format!("{path} must be array")),
                Some(a) => {
                    if a.is_empty() {
                        errors.push(format!("{path} must NOT have fewer than 1 items"));
                    }
                    if a.len() > 100 {
                        errors.push(format!("{path} must NOT have more than 100 items"));
                    }
                    let mut names = Vec::new();
                    for (i, d) in a.iter().enumerate() {
                        match coerce_string(d) {
                            Some(s) if domain_ok(&s) => names.push(s),
                            Some(_) => errors.push(format!("{path}/{i} must match pattern \"{}\"", DOMAIN_PATTERN.replace('\\', "\\\\").replace('"', "\\\""))),
                            None => errors.push(format!("{path}/{i} must be string")),
                        }
                    }
                    for i in 0..names.len() {
                        for j in i + 1..names.len() {
                            if names[i] == names[j] {
                                errors.push(format!("{path} must NOT have duplicate items (items ## {j} and {i} are identical)"));
                            }
                        }
                    }
                    out.insert(k.clone(), Value::from(names));
                }
            },
            "forward_scheme" => match coerce_string(v).as_deref() {
                Some(s @ ("http" | "https")) => {
                    out.insert(k.clone(), Value::from(s));
                }
                _ => errors.push(format!("{path} must be equal to one of the allowed values")),
            },
            "forward_host" => match coerce_string(v) {
                Some(s) if s.is_empty() => errors.push(format!("{path} must NOT have fewer than 1 characters")),
                Some(s) if s.chars().count() > 255 => errors.push(format!("{path} must NOT have more than 255 characters")),
                Some(s) => {
                    out.insert(k.clone(), Value::from(s));
                }
                None => errors.push(format!("{path} must be string")),
            },
            "forward_port" => match coerce_int(v) {
                Some(p) if p < 1 => errors.push(format!("{path} must be >= 1")),
                Some(p) if p > 65535 => errors.push(format!("{path} must be <= 65535")),
                Some(p) => {
                    out.insert(k.clone(), Value::from(p));
                }
                None => errors.push(format!("{path} must be integer")),
            },
            "access_list_id" => match coerce_int(v) {
                Some(p) if p >= 0 => {
                    out.insert(k.clone(), Value::from(p));
                }
                Some(_) => errors.push(format!("{path} must be >= 0")),
                None => errors.push(format!("{path} must be integer")),
            },
            "certificate_id" => match v {
                Value::String(s) if s == "new" => {
                    out.insert(k.clone(), v.clone());
                }
                // The quirk: anyOf [integer, "new"] coerces an explicit number to a string.
                other => match coerce_int(other) {
                    Some(n) if n >= 0 => {
                        out.insert(k.clone(), Value::from(n.to_string()));
                    }
                    _ => errors.push(format!("{path} must be integer, {path} must be equal to one of the allowed values, {path} must match a schema in anyOf")),
                },
            },
            "advanced_config" => match coerce_string(v) {
                Some(s) => {
                    out.insert(k.clone(), Value::from(s));
                }
                None => errors.push(format!("{path} must be string")),
            },
            "meta" => match v {
                Value::Object(_) => {
                    out.insert(k.clone(), v.clone());
                }
                _ => errors.push(format!("{path} must be object")),
            },
            "locations" => match v.as_array() {
                None => errors.push(format!("{path} must be array")),
                Some(a) => {
                    for (i, l) in a.iter().enumerate() {
                        let lp = format!("{path}/{i}");
                        let Some(lo) = l.as_object() else {
                            errors.push(format!("{lp} must be object"));
                            continue;
                        };
                        for r in ["path", "forward_scheme", "forward_host", "forward_port"] {
                            if !lo.contains_key(r) {
                                errors.push(format!("{lp} must have required property '{r}'"));
                            }
                        }
                        if lo.keys().any(|k| !LOCATION_KEYS.contains(&k.as_str())) {
                            errors.push(format!("{lp} must NOT have additional properties"));
                        }
                        if lo.get("path").and_then(Value::as_str).is_some_and(str::is_empty) {
                            errors.push(format!("{lp}/path must NOT have fewer than 1 characters"));
                        }
                    }
                    out.insert(k.clone(), v.clone());
                }
            },
            b if BOOLEANS.contains(&b) => match coerce_bool(v) {
                Some(x) => {
                    out.insert(k.clone(), Value::from(x));
                }
                None => errors.push(format!("{path} must be boolean")),
            },
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documented_messages() {
        let e = proxy_host(
            &json!({"domain_names": ["a.test"], "forward_scheme": "http", "forward_host": "x"}),
            true,
        )
        .unwrap_err();
        assert_eq!(e, "data must have required property 'forward_port'");
        let e = proxy_host(&json!({"domain_names": [], "forward_scheme": "ftp", "forward_host": "", "forward_port": 70000}), true).unwrap_err();
        assert_eq!(
            e,
            "data/domain_names must NOT have fewer than 1 items, data/forward_scheme must be equal to one of the allowed values, data/forward_host must NOT have fewer than 1 characters, data/forward_port must be <= 65535"
        );
        let e = proxy_host(&json!({"domain_names": ["a.test"], "forward_scheme": "http", "forward_host": "x", "forward_port": 1, "expiry": 1}), true).unwrap_err();
        assert_eq!(e, "data must NOT have additional properties");
        let e = proxy_host(&json!({"domain_names": ["a b"]}), false).unwrap_err();
        assert_eq!(
            e,
            r#"data/domain_names/0 must match pattern "^[^&| @!#%^();:/\\\\}{=+?<>,~`'\"]+$""#
        );
        assert_eq!(
            proxy_host(&json!({}), false).unwrap_err(),
            "data must NOT have fewer than 1 properties"
        );
    }

    #[test]
    fn coercion() {
        let o = proxy_host(&json!({"forward_port": "8443", "ssl_forced": "false", "http2_support": 1, "certificate_id": 0}), false).unwrap();
        assert_eq!(o["forward_port"], 8443);
        assert_eq!(o["ssl_forced"], false);
        assert_eq!(o["http2_support"], true);
        assert_eq!(
            o["certificate_id"], "0",
            "the quirk: an explicit number becomes a string"
        );
    }
}
