//! HS256 JSON Web Tokens carrying NPM's payload.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

pub fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("random bytes");
    b
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

pub fn sign(key: &[u8], payload: &Value) -> String {
    let head = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = B64.encode(payload.to_string());
    let signed = format!("{head}.{body}");
    let sig = B64.encode(mac(key, signed.as_bytes()));
    format!("{signed}.{sig}")
}

/// The payload, if the signature is ours.
pub fn verify(key: &[u8], token: &str) -> Option<Value> {
    let (signed, sig) = token.rsplit_once('.')?;
    let sig = B64.decode(sig).ok()?;
    let mut m = Hmac::<Sha256>::new_from_slice(key).ok()?;
    m.update(signed.as_bytes());
    m.verify_slice(&sig).ok()?;
    let body = signed.split('.').nth(1)?;
    serde_json::from_slice(&B64.decode(body).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let k = random::<32>();
        let t = sign(&k, &serde_json::json!({"attrs": {"id": 1}, "exp": 5}));
        assert_eq!(verify(&k, &t).unwrap()["attrs"]["id"], 1);
        assert!(verify(&random::<32>(), &t).is_none());
        assert!(verify(&k, "garbage").is_none());
        let mut bad = t.clone();
        bad.insert(bad.len() / 2, 'x');
        assert!(verify(&k, &bad).is_none());
    }
}
