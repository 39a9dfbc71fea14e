//! argon2id password hashing (the crate's defaults: m=19 MiB, t=2, p=1, random salt).

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use berth_crypto::SecretString;
use std::sync::OnceLock;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be at least {0} characters long")]
    TooShort(usize),
    #[error("the password must be at most 1024 characters long")]
    TooLong,
    #[error("password hashing failed")]
    Hash,
}

pub const MIN_PASSWORD_LEN: usize = 10;

/// Hashes a new password into a PHC string (`$argon2id$v=19$…`).
pub fn hash_password(pw: &SecretString) -> Result<String, PasswordError> {
    let n = pw.expose().chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort(MIN_PASSWORD_LEN));
    }
    if pw.expose().len() > 1024 {
        return Err(PasswordError::TooLong);
    }
    Argon2::default()
        .hash_password(pw.expose().as_bytes())
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hash)
}

/// Checks a password against a stored PHC string. Any parse failure counts as a mismatch.
pub fn verify_password(pw: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(pw.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the same work as a real verification, for unknown users, so that timing does not
/// tell an unknown user from a wrong password.
pub fn verify_dummy(pw: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| {
        hash_password(&SecretString::new("berth-dummy-password")).expect("hash a constant")
    });
    let _ = verify_password(pw, phc);
}

/// A random password of 24 characters from an unambiguous alphabet (~137 bits).
pub fn generate_password() -> SecretString {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes = berth_crypto::random_bytes::<48>();
    let mut out = String::with_capacity(24);
    for b in bytes {
        // Rejection sampling keeps the distribution uniform.
        let limit = 256 - (256 % ALPHABET.len());
        if (b as usize) < limit {
            out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
        }
        if out.len() == 24 {
            break;
        }
    }
    while out.len() < 24 {
        let b = berth_crypto::random_bytes::<1>()[0] as usize;
        if b < 256 - (256 % ALPHABET.len()) {
            out.push(ALPHABET[b % ALPHABET.len()] as char);
        }
    }
    SecretString::new(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password(&SecretString::new("correct horse battery")).unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse battery!", &h));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn salts_differ() {
        let a = hash_password(&SecretString::new("same password")).unwrap();
        let b = hash_password(&SecretString::new("same password")).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn weak_passwords_are_refused() {
        assert!(matches!(
            hash_password(&SecretString::new("short")),
            Err(PasswordError::TooShort(_))
        ));
    }

    #[test]
    fn generated_passwords() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.expose().len(), 24);
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
