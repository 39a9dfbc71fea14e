//! Subdomains as seed 002 names them (`stage-{stage}-{project}`, `…-{tag}`, a custom name for
//! production), made DNS-safe: lowercase, dots and other characters to dashes, each label at
//! most 63 characters; a label that had to be cut ends in a short hash of the whole, so two
//! long tags never collide.

use sha2::{Digest, Sha256};

/// The longest DNS label.
pub const MAX_LABEL: usize = 63;

/// Turns any text into a DNS label: `[a-z0-9-]`, no leading/trailing/double dash, ≤ 63.
pub fn dns_label(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches('-').to_string();
    if trimmed.len() <= MAX_LABEL {
        return if trimmed.is_empty() {
            "x".to_string()
        } else {
            trimmed
        };
    }
    let hash = hex::encode(&Sha256::digest(raw.as_bytes())[..4]);
    let keep = MAX_LABEL - hash.len() - 1;
    format!("{}-{hash}", trimmed[..keep].trim_end_matches('-'))
}

/// Fills `{stage}`, `{project}` and `{tag}` in a pattern and makes the result one DNS label.
pub fn render(pattern: &str, project: &str, stage: &str, tag: Option<&str>) -> String {
    let base = pattern
        .replace("{stage}", stage)
        .replace("{project}", project);
    match tag {
        Some(t) if base.contains("{tag}") => dns_label(&base.replace("{tag}", t)),
        Some(t) => dns_label(&format!("{base}-{t}")),
        None => dns_label(&base.replace("{tag}", "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_002_examples() {
        let p = "stage-{stage}-{project}";
        assert_eq!(
            render(p, "web-app-launcher", "dev", None),
            "stage-dev-web-app-launcher"
        );
        assert_eq!(
            render(p, "web-app-launcher", "rel", Some("v1.2.0")),
            "stage-rel-web-app-launcher-v1-2-0"
        );
    }

    #[test]
    fn long_labels_are_cut_with_a_hash_and_do_not_collide() {
        let a = render(
            "stage-{stage}-{project}",
            "p",
            "dev",
            Some(&format!("{}a", "x".repeat(80))),
        );
        let b = render(
            "stage-{stage}-{project}",
            "p",
            "dev",
            Some(&format!("{}b", "x".repeat(80))),
        );
        assert!(a.len() <= MAX_LABEL && b.len() <= MAX_LABEL);
        assert_ne!(a, b);
        assert!(!a.contains("--") && !a.ends_with('-'));
    }

    #[test]
    fn odd_characters() {
        assert_eq!(dns_label("Feature/ABC_1.2"), "feature-abc-1-2");
        assert_eq!(dns_label("---"), "x");
    }
}
