//! Opaque secrets for sessions and tokens: 32 random bytes, base64url; only the SHA-256 of a
//! secret is stored, so a database leak gives no usable session.

use base64::Engine;
use berth_crypto::SecretString;
use sha2::{Digest, Sha256};

/// A freshly made session secret: give `secret` to the client once, store `hash`.
pub struct SessionSecret {
    pub secret: SecretString,
    pub hash: String,
}

impl SessionSecret {
    /// `prefix` makes the kind visible in logs and secret scanners (`bs_` session, `bt_` token).
    pub fn generate(prefix: &str) -> Self {
        let raw = berth_crypto::random_bytes::<32>();
        let secret = format!(
            "{prefix}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        );
        let hash = hash_token(&secret);
        Self {
            secret: SecretString::new(secret),
            hash,
        }
    }
}

/// The stored form of a presented secret.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_hashed() {
        let a = SessionSecret::generate("bs_");
        let b = SessionSecret::generate("bs_");
        assert_ne!(a.secret.expose(), b.secret.expose());
        assert!(a.secret.expose().starts_with("bs_"));
        assert_eq!(a.hash, hash_token(a.secret.expose()));
        assert_eq!(a.hash.len(), 64);
    }
}
