//! Validated names: projects, stages, users. Parsed once at the edge, trusted after.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a name was refused. The message is safe to show to a user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not valid: {reason}")]
pub struct NameError {
    pub what: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// A DNS-label-like slug: `[a-z0-9-]`, starts with a letter, no trailing or double dash,
/// at most `max` characters. Project and stage names end up in container names and
/// subdomains, so they must be safe there.
fn check_slug(what: &'static str, s: &str, max: usize) -> Result<(), NameError> {
    let err = |reason| NameError {
        what,
        value: s.to_string(),
        reason,
    };
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    if s.len() > max {
        return Err(err("it is too long"));
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(err("it must start with a lowercase letter"));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(err("use only lowercase letters, digits and '-'"));
    }
    if s.ends_with('-') || s.contains("--") {
        return Err(err("it must not end with '-' or contain '--'"));
    }
    Ok(())
}

macro_rules! slug_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                check_slug($what, &s, $max)?;
                Ok(Self(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::parse(s)
            }
        }
        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

slug_type!(
    /// A project's name: a slug of at most 40 characters (it goes into subdomains).
    ProjectName,
    "project name",
    40
);
slug_type!(
    /// A stage's name (`dev`, `rel`, `prod`…): a slug of at most 20 characters.
    StageName,
    "stage name",
    20
);

/// A local user's login name: 1–64 characters of letters, digits, `.`, `_`, `-`, `@`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    pub fn parse(s: impl Into<String>) -> Result<Self, NameError> {
        let s: String = s.into();
        let err = |reason| NameError {
            what: "username",
            value: s.clone(),
            reason,
        };
        if s.is_empty() || s.len() > 64 {
            return Err(err("it must be 1 to 64 characters long"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
        {
            return Err(err("use only letters, digits and . _ - @"));
        }
        Ok(Self(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for Username {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::parse(s)
    }
}
impl From<Username> for String {
    fn from(n: Username) -> String {
        n.0
    }
}
impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["web", "web-app-launcher", "a1", "x"] {
            ProjectName::parse(ok).unwrap();
        }
        for bad in [
            "",
            "Web",
            "1web",
            "web-",
            "we--b",
            "web_app",
            "web.app",
            &"a".repeat(41),
        ] {
            assert!(ProjectName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(StageName::parse("a".repeat(21)).is_err());
    }

    #[test]
    fn names_deserialize_through_validation() {
        let ok: ProjectName = serde_json::from_str("\"shop\"").unwrap();
        assert_eq!(ok.as_str(), "shop");
        let err = serde_json::from_str::<ProjectName>("\"Shop\"").unwrap_err();
        assert!(err.to_string().contains("lowercase"), "{err}");
    }

    #[test]
    fn usernames() {
        Username::parse("alice@example.com").unwrap();
        assert!(Username::parse("al ice").is_err());
        assert!(Username::parse("").is_err());
    }
}
