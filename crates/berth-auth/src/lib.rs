//! Authentication primitives: argon2id password hashes, opaque session/token secrets (stored
//! only as their SHA-256), and the throttle that slows down failed logins per account and per
//! address.
//!
//! Architecture invariant: no HTTP and no SQL here; the HTTP layer decides where a secret
//! travels (cookie or bearer), the store keeps only hashes.

mod password;
mod throttle;
mod token;

pub use password::{
    PasswordError, generate_password, hash_password, verify_dummy, verify_password,
};
pub use throttle::{LoginThrottle, ThrottleConfig, Throttled};
pub use token::{SessionSecret, hash_token};
