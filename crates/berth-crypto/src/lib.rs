//! Encryption at rest for credentials and secret values, and the secret types that carry
//! them through the program without ever printing.
//!
//! Values are sealed with AES-256-GCM under a fresh random 96-bit nonce each time, stored as
//! `nonce ‖ ciphertext+tag` beside the id of the key that sealed them, so that keys can be
//! rotated: a [`Keyring`] holds the current key (which seals) and older keys (which only open).
//! A context string is bound as associated data, so a value cannot be moved to another column.
//!
//! Architecture invariant: this crate never logs and never formats a secret; `Debug` on every
//! type here prints a placeholder.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::fmt;

mod secret;
pub use secret::SecretString;

const NONCE_LEN: usize = 12;

/// What a valid key looks like; shown in every key error.
pub const KEY_FORMAT_HELP: &str = "a key is 32 random bytes, written as 64 hex characters or as base64 \
(44 characters with padding); make one with `berth gen-key` or `openssl rand -base64 32`";

/// Why a key was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{what}: the key is empty; {KEY_FORMAT_HELP}")]
    Empty { what: String },
    #[error("{what}: the key is not hex or base64 of 32 bytes ({detail}); {KEY_FORMAT_HELP}")]
    Malformed { what: String, detail: String },
}

/// Why a sealed value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "no key with id {0} is configured; was BERTH_ENCRYPTION_KEY changed? Give the old key in BERTH_ENCRYPTION_OLD_KEYS"
    )]
    UnknownKey(String),
    #[error("a sealed value is corrupt or was sealed for another purpose")]
    Corrupt,
}

/// One AES-256 key with its id: the first 8 bytes of SHA-256 over the key, as hex.
#[derive(Clone)]
pub struct Key {
    id: String,
    cipher: Aes256Gcm,
    bytes: [u8; 32],
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.id)
    }
}

impl Key {
    fn from_bytes(bytes: [u8; 32]) -> Self {
        let id = hex::encode(&Sha256::digest(bytes)[..8]);
        let cipher = Aes256Gcm::new_from_slice(&bytes).expect("32-byte key");
        Self { id, cipher, bytes }
    }

    /// Parses 64 hex characters, or base64 (standard or URL-safe, padded or not) of 32 bytes.
    /// `what` names the source in errors (e.g. `BERTH_ENCRYPTION_KEY`).
    pub fn parse(what: &str, text: &str) -> Result<Self, KeyError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(KeyError::Empty { what: what.into() });
        }
        let decoded = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(t).map_err(|e| e.to_string())
        } else {
            use base64::engine::general_purpose::{
                STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
            };
            [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|e| e.decode(t).ok())
                .ok_or_else(|| "neither hex nor base64".to_string())
        };
        let bytes = decoded.map_err(|detail| KeyError::Malformed {
            what: what.into(),
            detail,
        })?;
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Malformed {
                what: what.into(),
                detail: format!("it decodes to {} bytes, not 32", bytes.len()),
            })?;
        Ok(Self::from_bytes(arr))
    }

    /// A new random key.
    pub fn generate() -> Self {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).expect("the OS random source failed");
        Self::from_bytes(b)
    }

    /// The key written as base64, for a key file. Handle the result as a secret.
    pub fn to_base64(&self) -> SecretString {
        SecretString::new(base64::engine::general_purpose::STANDARD.encode(self.bytes))
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A sealed value as stored: the id of the key and `nonce ‖ ciphertext+tag`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub blob: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed(key {}, {} bytes)", self.key_id, self.blob.len())
    }
}

/// The current key, which seals, and older keys, which still open.
#[derive(Clone, Debug)]
pub struct Keyring {
    current: Key,
    old: Vec<Key>,
}

impl Keyring {
    pub fn new(current: Key, old: Vec<Key>) -> Self {
        let old = old.into_iter().filter(|k| k.id != current.id).collect();
        Self { current, old }
    }

    /// A keyring with a fixed key, for tests.
    pub fn for_tests() -> Self {
        Self::new(Key::from_bytes([7u8; 32]), Vec::new())
    }

    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    pub fn knows(&self, key_id: &str) -> bool {
        self.current.id == key_id || self.old.iter().any(|k| k.id == key_id)
    }

    /// Seals `plaintext` under the current key, bound to `context` (e.g. `credential:npm`).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the OS random source failed");
        let ct = self
            .current
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        Sealed {
            key_id: self.current.id.clone(),
            blob,
        }
    }

    /// Seals a string secret.
    pub fn seal_str(&self, context: &str, secret: &SecretString) -> Sealed {
        self.seal(context, secret.expose().as_bytes())
    }

    /// Opens a sealed value with the key it names.
    pub fn open(&self, context: &str, sealed: &Sealed) -> Result<SecretString, OpenError> {
        let key = std::iter::once(&self.current)
            .chain(self.old.iter())
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| OpenError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.blob.len() < NONCE_LEN + 16 {
            return Err(OpenError::Corrupt);
        }
        let (nonce, ct) = sealed.blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError::Corrupt)?;
        let pt = key
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| OpenError::Corrupt)?;
        String::from_utf8(pt)
            .map(SecretString::new)
            .map_err(|_| OpenError::Corrupt)
    }

    /// Whether a value should be re-sealed under the current key (rotation).
    pub fn needs_reseal(&self, sealed: &Sealed) -> bool {
        sealed.key_id != self.current.id
    }
}

/// Compares two byte strings in constant time (for webhook secrets and tokens).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// `n` random bytes from the OS.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random source failed");
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_fresh_nonces() {
        let ring = Keyring::new(Key::generate(), vec![]);
        let a = ring.seal("credential:npm", b"hunter2");
        let b = ring.seal("credential:npm", b"hunter2");
        assert_ne!(a.blob, b.blob, "same nonce twice");
        assert_eq!(a.key_id, ring.current_id());
        assert_eq!(ring.open("credential:npm", &a).unwrap().expose(), "hunter2");
        assert!(!a.blob.windows(7).any(|w| w == b"hunter2"));
    }

    #[test]
    fn context_is_bound() {
        let ring = Keyring::for_tests();
        let s = ring.seal("credential:npm", b"x");
        assert!(matches!(ring.open("env:DB", &s), Err(OpenError::Corrupt)));
    }

    #[test]
    fn tampering_is_detected() {
        let ring = Keyring::for_tests();
        let mut s = ring.seal("c", b"value");
        let last = s.blob.len() - 1;
        s.blob[last] ^= 1;
        assert!(matches!(ring.open("c", &s), Err(OpenError::Corrupt)));
        s.blob.truncate(5);
        assert!(matches!(ring.open("c", &s), Err(OpenError::Corrupt)));
    }

    #[test]
    fn rotation_opens_old_values_and_flags_them() {
        let old = Key::generate();
        let sealed_old = Keyring::new(old.clone(), vec![]).seal("c", b"v1");
        let ring = Keyring::new(Key::generate(), vec![old]);
        assert!(ring.needs_reseal(&sealed_old));
        assert_eq!(ring.open("c", &sealed_old).unwrap().expose(), "v1");
        let fresh = ring.seal("c", b"v1");
        assert!(!ring.needs_reseal(&fresh));
        let without_old = Keyring::new(Key::generate(), vec![]);
        let err = without_old.open("c", &sealed_old).unwrap_err();
        assert!(matches!(err, OpenError::UnknownKey(_)));
        assert!(err.to_string().contains("BERTH_ENCRYPTION_OLD_KEYS"));
    }

    #[test]
    fn key_formats() {
        let k = Key::generate();
        let b64 = k.to_base64();
        let again = Key::parse("test", b64.expose()).unwrap();
        assert_eq!(again.id(), k.id());
        let hex = "00".repeat(32);
        Key::parse("test", &hex).unwrap();
        let unpadded = b64.expose().trim_end_matches('=').to_string();
        assert_eq!(Key::parse("test", &unpadded).unwrap().id(), k.id());
        for bad in ["", "short", &"zz".repeat(32), "AAAA"] {
            let e = Key::parse("BERTH_ENCRYPTION_KEY", bad)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("BERTH_ENCRYPTION_KEY") && e.contains("32"),
                "{e}"
            );
        }
    }

    #[test]
    fn debug_never_shows_key_material() {
        let k = Key::parse("t", &"ab".repeat(32)).unwrap();
        let d = format!("{:?} {:?}", k, Keyring::new(k.clone(), vec![]));
        assert!(!d.contains("abab"), "{d}");
    }
}
