//! Single sign-on through an OpenID Connect provider: its settings, and the pure rules that
//! turn a provider's claims into a berth username and role.

use crate::{Role, Username, model::validate_http_url};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One rule: a user whose `role_claim` holds `value` (or equals it) gets `role`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRule {
    pub value: String,
    pub role: Role,
}

/// The provider and how its users become berth users. The client secret is kept apart,
/// sealed; it is never part of this value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// Shown on the login page: "Sign in with <display_name>".
    pub display_name: String,
    /// The issuer URL; discovery reads `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// Scopes asked for besides `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// berth's address as the browser reaches it; the provider must allow
    /// `<public_url>/api/auth/oidc/callback` as a redirect URI.
    pub public_url: String,
    /// The claim that names the user (`preferred_username`, `email`, …).
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// The claim whose values the rules match (`groups`, `roles`, …).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    #[serde(default)]
    pub role_rules: Vec<RoleRule>,
    /// The role of a new user no rule matches.
    #[serde(default = "default_role")]
    pub default_role: Role,
    /// Whether a first login creates the user; if not, only users an admin created
    /// (without a password) or who logged in before may sign in.
    #[serde(default = "yes")]
    pub allow_new_users: bool,
    /// Whether username/password login stays on. Turning it off needs an admin who has
    /// signed in through the provider; `BERTH_BREAK_GLASS_LOCAL_LOGIN=1` turns it back on.
    #[serde(default = "yes")]
    pub local_login: bool,
}

fn default_scopes() -> Vec<String> {
    vec!["profile".into(), "email".into()]
}
fn default_username_claim() -> String {
    "preferred_username".into()
}
fn default_role_claim() -> String {
    "groups".into()
}
fn default_role() -> Role {
    Role::Viewer
}
fn yes() -> bool {
    true
}

fn claim_name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_graphic())
}

impl OidcSettings {
    /// Trims and checks every field; the error names the field.
    pub fn validate(&mut self) -> Result<(), String> {
        self.display_name = self.display_name.trim().to_string();
        if self.display_name.is_empty() || self.display_name.len() > 40 {
            return Err("display_name: give the provider a name of 1 to 40 characters".into());
        }
        self.issuer = self.issuer.trim().trim_end_matches('/').to_string();
        validate_http_url("issuer", &self.issuer)?;
        self.public_url = self.public_url.trim().trim_end_matches('/').to_string();
        validate_http_url("public_url", &self.public_url)?;
        self.client_id = self.client_id.trim().to_string();
        if self.client_id.is_empty() || self.client_id.len() > 256 {
            return Err("client_id: give the client id the provider issued".into());
        }
        for s in &mut self.scopes {
            *s = s.trim().to_string();
        }
        self.scopes.retain(|s| !s.is_empty() && s != "openid");
        if let Some(bad) = self.scopes.iter().find(|s| {
            !s.chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
        }) {
            return Err(format!("scopes: {bad:?} is not a valid scope"));
        }
        let mut seen = std::collections::HashSet::new();
        self.scopes.retain(|s| seen.insert(s.clone()));
        for (field, v) in [
            ("username_claim", &mut self.username_claim),
            ("role_claim", &mut self.role_claim),
        ] {
            *v = v.trim().to_string();
            if !claim_name_ok(v) {
                return Err(format!("{field}: {v:?} is not a claim name"));
            }
        }
        for (i, r) in self.role_rules.iter_mut().enumerate() {
            r.value = r.value.trim().to_string();
            if r.value.is_empty() || r.value.len() > 256 {
                return Err(format!(
                    "role_rules[{i}].value: give the {} value to match",
                    self.role_claim
                ));
            }
        }
        Ok(())
    }

    /// The callback the provider redirects to.
    pub fn redirect_url(&self) -> String {
        format!("{}/api/auth/oidc/callback", self.public_url)
    }

    /// The role the rules give these claims: the highest role of every matching rule, or
    /// `None` if no rule matches. A claim may be a string or an array of strings.
    pub fn role_from_rules(&self, claims: &Map<String, Value>) -> Option<Role> {
        let values: Vec<&str> = match claims.get(&self.role_claim) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        self.role_rules
            .iter()
            .filter(|r| values.contains(&r.value.as_str()))
            .map(|r| r.role)
            .max()
    }

    /// The berth username these claims name, or a message saying why none can be made.
    pub fn username_from(&self, claims: &Map<String, Value>) -> Result<Username, String> {
        let raw = claims
            .get(&self.username_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                format!(
                    "the provider sent no {:?} claim to name you by; ask an admin to check the username claim",
                    self.username_claim
                )
            })?;
        Username::parse(raw).map_err(|e| format!("the {:?} claim: {e}", self.username_claim))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> OidcSettings {
        serde_json::from_value(json!({
            "display_name": " Authentik ",
            "issuer": "https://id.example.com/application/o/berth/",
            "client_id": "berth",
            "public_url": "https://berth.example.com/",
            "scopes": ["openid", "profile", " groups ", "profile"],
            "role_rules": [
                {"value": "ops", "role": "deployer"},
                {"value": "admins", "role": "admin"}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn validate_normalises_and_names_the_field() {
        let mut s = settings();
        s.validate().unwrap();
        assert_eq!(s.display_name, "Authentik");
        assert_eq!(s.issuer, "https://id.example.com/application/o/berth");
        assert_eq!(s.scopes, ["profile", "groups"]);
        assert_eq!(
            s.redirect_url(),
            "https://berth.example.com/api/auth/oidc/callback"
        );
        assert_eq!(s.default_role, Role::Viewer);
        assert!(s.allow_new_users && s.local_login);

        let mut bad = settings();
        bad.issuer = "id.example.com".into();
        assert!(bad.validate().unwrap_err().starts_with("issuer"));
        let mut bad = settings();
        bad.role_rules[1].value = " ".into();
        assert!(bad.validate().unwrap_err().starts_with("role_rules[1]"));
        let mut bad = settings();
        bad.role_claim = "has space".into();
        assert!(bad.validate().unwrap_err().starts_with("role_claim"));
        let mut bad = settings();
        bad.scopes.push("a\"b".into());
        assert!(bad.validate().unwrap_err().starts_with("scopes"));
    }

    #[test]
    fn rules_give_the_highest_matching_role() {
        let s = settings();
        let c = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            s.role_from_rules(&c(json!({"groups": ["ops", "admins"]}))),
            Some(Role::Admin)
        );
        assert_eq!(
            s.role_from_rules(&c(json!({"groups": "ops"}))),
            Some(Role::Deployer)
        );
        assert_eq!(s.role_from_rules(&c(json!({"groups": ["other"]}))), None);
        assert_eq!(s.role_from_rules(&c(json!({}))), None);
        assert_eq!(s.role_from_rules(&c(json!({"groups": [1, null]}))), None);
    }

    #[test]
    fn username_comes_from_the_claim() {
        let s = settings();
        let c = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            s.username_from(&c(json!({"preferred_username": "alice"})))
                .unwrap()
                .as_str(),
            "alice"
        );
        assert!(
            s.username_from(&c(json!({"email": "a@b"})))
                .unwrap_err()
                .contains("preferred_username")
        );
        assert!(
            s.username_from(&c(json!({"preferred_username": "a b"})))
                .unwrap_err()
                .contains("letters")
        );
    }
}
