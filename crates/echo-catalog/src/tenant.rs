//! Tenant tokens: who a request is charged to, in a form a client cannot forge.
//!
//! Every client may write the requests topic, and Kafka does not stamp a record with the
//! principal that produced it, so a tenant named in the payload would be whatever the client
//! claims. The deployment therefore issues each tenant a token, `<tenant>.<mac>`, where `mac` is
//! the HMAC-SHA256 of the tenant name under a secret only echo holds (`upload.tenant_secret`):
//! the upload processor recomputes it, so only a token the deployment issued names a tenant.
//! Requests travel on a topic only echo reads (the clients' ACLs allow writing it, not reading
//! it), so a token is as private as the client's Kafka credentials. Revoking one means changing
//! the secret and issuing the tenants' tokens again.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The tenant of requests without a token, where the deployment accepts them: all such
/// clients share its limits. No token is ever issued for it.
pub const ANONYMOUS: &str = "anonymous";

/// Why a tenant cannot have a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// The name is not 1–64 lower-case letters, digits or `-`.
    #[error("a tenant name is 1-64 lower-case letters, digits or '-', got {0:?}")]
    InvalidName(String),
    /// The name is reserved for requests without a token.
    #[error("{ANONYMOUS:?} is the tenant of requests without a token; it has no token")]
    Reserved,
    /// The deployment's secret is too short to make tokens that cannot be guessed.
    #[error("the tenant secret must be at least 32 bytes")]
    WeakSecret,
}

/// Shortest secret accepted: a token is only as hard to forge as the secret is to guess.
pub const MIN_SECRET_BYTES: usize = 32;

/// The token of `tenant` under `secret`.
pub fn issue(secret: &str, tenant: &str) -> Result<String, TenantError> {
    if !valid_name(tenant) {
        return Err(TenantError::InvalidName(tenant.to_string()));
    }
    if tenant == ANONYMOUS {
        return Err(TenantError::Reserved);
    }
    let mac = mac(secret, tenant)?.finalize().into_bytes();
    Ok(format!("{tenant}.{}", URL_SAFE_NO_PAD.encode(mac)))
}

/// The tenant `token` was issued for under `secret`, or `None` when it was not issued under
/// it. The MAC is compared in constant time.
pub fn verify(secret: &str, token: &str) -> Option<String> {
    let (tenant, encoded) = token.rsplit_once('.')?;
    if !valid_name(tenant) || tenant == ANONYMOUS {
        return None;
    }
    let presented = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    mac(secret, tenant)
        .ok()?
        .verify_slice(&presented)
        .ok()
        .map(|()| tenant.to_string())
}

/// Whether `name` can name a tenant: it becomes a record key and a metric label.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn mac(secret: &str, tenant: &str) -> Result<Hmac<Sha256>, TenantError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(TenantError::WeakSecret);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    // The domain, so a MAC made for anything else under the same secret is never a token.
    mac.update(b"echo tenant token v1\0");
    mac.update(tenant.as_bytes());
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "a deployment secret of at least 32 bytes";

    #[test]
    fn a_token_names_its_tenant_under_its_secret_only() {
        let token = issue(SECRET, "acme").unwrap();
        assert!(token.starts_with("acme."));
        assert_eq!(verify(SECRET, &token).as_deref(), Some("acme"));
        let other_secret = "another deployment's secret, 32+ bytes";
        assert_eq!(verify(other_secret, &token), None);
    }

    #[test]
    fn a_forged_or_altered_token_names_no_tenant() {
        let token = issue(SECRET, "acme").unwrap();
        let mac = token.split_once('.').unwrap().1;
        assert_eq!(verify(SECRET, &format!("globex.{mac}")), None);
        assert_eq!(verify(SECRET, "acme"), None);
        assert_eq!(verify(SECRET, "acme."), None);
        assert_eq!(verify(SECRET, &format!("{token}x")), None);
        assert_eq!(verify(SECRET, &format!("{ANONYMOUS}.{mac}")), None);
    }

    #[test]
    fn names_and_secrets_that_cannot_make_tokens_are_refused() {
        assert_eq!(issue(SECRET, ANONYMOUS), Err(TenantError::Reserved));
        for bad in ["", "Acme", "a.b", "a b", &"x".repeat(65)] {
            assert!(matches!(
                issue(SECRET, bad),
                Err(TenantError::InvalidName(_))
            ));
        }
        assert_eq!(issue("short", "acme"), Err(TenantError::WeakSecret));
        assert_eq!(verify("short", "acme.AAAA"), None);
    }
}
