//! Sealed upload URLs: what `upload.requested.reply_key` and
//! `upload.url.generated.sealed_upload_url` mean on the wire.
//!
//! Every client reads the shared upload events topic to find its own `upload.url.generated`,
//! and a pre-signed URL is a bearer credential for the resource's object. So the URL travels
//! sealed to a public key the requesting client put in its request: a libsodium sealed box
//! (X25519, XSalsa20-Poly1305, `crypto_box_seal`), base64 (standard alphabet). Any libsodium
//! binding opens it (PyNaCl's `SealedBox`, libsodium-wrappers, Java's lazysodium); only the
//! holder of the matching secret key can.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use crypto_box::aead::OsRng;
use crypto_box::{PublicKey, SecretKey, KEY_SIZE};

/// Why a key or a sealed value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealError(pub String);

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SealError {}

/// Reads a `reply_key`: a 32-byte X25519 public key in base64.
pub fn public_key(reply_key: &str) -> Result<PublicKey, SealError> {
    let bytes = STANDARD
        .decode(reply_key)
        .map_err(|e| SealError(format!("reply_key is not base64: {e}")))?;
    PublicKey::from_slice(&bytes).map_err(|_| {
        SealError(format!(
            "reply_key must be a {KEY_SIZE}-byte X25519 public key, got {} bytes",
            bytes.len()
        ))
    })
}

/// Seals `plaintext` to the client's `reply_key`; base64 of the sealed box.
pub fn seal(reply_key: &str, plaintext: &str) -> Result<String, SealError> {
    let sealed = public_key(reply_key)?
        .seal(&mut OsRng, plaintext.as_bytes())
        .map_err(|e| SealError(format!("sealing failed: {e}")))?;
    Ok(STANDARD.encode(sealed))
}

/// A client's key pair for one request: the public half goes into `reply_key`, the secret
/// half opens what was sealed to it.
pub struct ReplyKey {
    /// Never leaves the client.
    secret: SecretKey,
}

impl ReplyKey {
    /// A fresh random key pair.
    pub fn generate() -> ReplyKey {
        ReplyKey {
            secret: SecretKey::generate(&mut OsRng),
        }
    }

    /// The public key as `upload.requested.reply_key` carries it.
    pub fn public(&self) -> String {
        STANDARD.encode(self.secret.public_key().as_bytes())
    }

    /// Opens a value sealed to this key (`upload.url.generated.sealed_upload_url`).
    pub fn open(&self, sealed: &str) -> Result<String, SealError> {
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|e| SealError(format!("the sealed value is not base64: {e}")))?;
        let plain = self
            .secret
            .unseal(&bytes)
            .map_err(|_| SealError("the sealed value does not open with this key".into()))?;
        String::from_utf8(plain).map_err(|_| SealError("the sealed value is not text".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_requesting_client_opens_its_url() {
        let client = ReplyKey::generate();
        let sealed = seal(&client.public(), "https://s3.example/put?sig=1").unwrap();
        assert!(!sealed.contains("s3.example"));
        assert_eq!(
            client.open(&sealed).unwrap(),
            "https://s3.example/put?sig=1"
        );
        let other = ReplyKey::generate();
        assert!(
            other.open(&sealed).is_err(),
            "another client cannot open it"
        );
    }

    #[test]
    fn malformed_reply_keys_are_refused() {
        assert!(public_key("not base64!").is_err());
        assert!(public_key(&STANDARD.encode([1u8; 16])).is_err());
        assert!(seal(&STANDARD.encode([7u8; 32]), "x").is_ok());
    }
}
