//! Tag patterns: shell-style globs (`v*`, `dev-*`, `release-?.?`) matched against image tags.

use serde::{Deserialize, Serialize};
use std::fmt;
use wildmatch::WildMatch;

/// A validated glob over tags. `*` matches any run of characters, `?` one character.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TagPattern {
    source: String,
    #[serde(skip)]
    matcher: Option<WildMatch>,
}

impl TagPattern {
    pub fn parse(s: impl Into<String>) -> Result<Self, String> {
        let s: String = s.into();
        if s.is_empty() || s.len() > 128 {
            return Err(format!(
                "tag pattern {s:?} must be 1 to 128 characters long"
            ));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*' | '?'))
        {
            return Err(format!(
                "tag pattern {s:?} may hold only letters, digits, '.', '_', '-' and the wildcards '*' and '?'"
            ));
        }
        Ok(Self {
            matcher: Some(WildMatch::new(&s)),
            source: s,
        })
    }

    pub fn matches(&self, tag: &str) -> bool {
        match &self.matcher {
            Some(m) => m.matches(tag),
            None => WildMatch::new(&self.source).matches(tag),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl PartialEq for TagPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}
impl Eq for TagPattern {}

impl fmt::Debug for TagPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TagPattern({:?})", self.source)
    }
}
impl fmt::Display for TagPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}
impl TryFrom<String> for TagPattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(s)
    }
}
impl From<TagPattern> for String {
    fn from(p: TagPattern) -> String {
        p.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let p = TagPattern::parse("dev-*").unwrap();
        assert!(p.matches("dev-abc123"));
        assert!(!p.matches("v1.2.0"));
        let v = TagPattern::parse("v?.*").unwrap();
        assert!(v.matches("v1.2"));
        assert!(!v.matches("v10.2"));
        assert!(TagPattern::parse("").is_err());
        assert!(TagPattern::parse("v[0-9]").is_err());
        assert!(TagPattern::parse("a b").is_err());
    }
}
