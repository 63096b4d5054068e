//! Owner tokens: what makes a resource its requester's.
//!
//! Every client may read the upload events topic and write the upload commands topic, so a
//! resource id and its `correlation_id` are public the moment `upload.url.generated` is
//! published. Commands that change a resource (`upload.finalize`) therefore carry a secret
//! only the requester has: 32 random bytes echo generates per resource and delivers sealed to
//! the request's `reply_key`, like the upload URL. echo keeps only the token's SHA-256 (it is
//! in `upload.url.generated`, so the state rebuilt from the events has it), never the token.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use crypto_box::aead::rand_core::RngCore;
use crypto_box::aead::OsRng;
use sha2::{Digest, Sha256};

/// A fresh owner token: 32 random bytes in base64 (standard alphabet).
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    STANDARD.encode(bytes)
}

/// The SHA-256 of `token`, hex: what is published and kept in place of the token.
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `presented` is the token whose digest is `expected_digest`. Compares digests
/// without an early exit, so the time taken says nothing about how much of it matched.
pub fn presented(expected_digest: &str, presented: Option<&str>) -> bool {
    let Some(token) = presented else {
        return false;
    };
    let actual = digest(token);
    actual.len() == expected_digest.len()
        && actual
            .bytes()
            .zip(expected_digest.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_itself_matches_its_digest() {
        let token = generate();
        let other = generate();
        assert_ne!(token, other, "tokens are random");
        assert_eq!(STANDARD.decode(&token).unwrap().len(), 32);
        let kept = digest(&token);
        assert_eq!(kept.len(), 64);
        assert!(presented(&kept, Some(&token)));
        assert!(!presented(&kept, Some(&other)));
        assert!(!presented(&kept, None));
        assert!(!presented(&kept, Some("")));
        assert!(
            !presented(&kept, Some(&kept)),
            "the public digest is no token"
        );
    }
}
