//! Settings of the upload processor, loaded from the `upload` section of echo's configuration.

use anyhow::{ensure, Result};
use echo_runtime::config::Secret;
use serde::{Deserialize, Serialize};

/// Rust-s3 refuses pre-signed URLs valid longer than this (the S3 SigV4 maximum: one week).
const MAX_URL_TTL_SECS: u32 = 604_800;

/// What the upload processor accepts and for how long a pre-signed URL is valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UploadConfig {
    /// Lifetime of a pre-signed PUT URL in seconds; also the deadline for `upload.finalize`,
    /// after which the upload expires. Short, because the URL is a bearer credential.
    pub url_ttl_secs: u32,
    /// Largest audio file accepted, in bytes; bounds storage and the work one upload can cause.
    pub max_size_bytes: i64,
    /// MIME types echo can decode; anything else is refused before a URL is issued.
    pub allowed_content_types: Vec<String>,
    /// Whether a request without `reply_key` gets its URL in clear on the shared events topic,
    /// where every client can read it. Off: such a request is refused, so no URL is ever
    /// readable by anyone but its requester. Only for clients that cannot seal yet.
    pub allow_clear_urls: bool,
    /// How long an ended upload's state is kept, in ms, before only how it ended remains (for
    /// a request refused without a URL, nothing: it never used its resource id). Every input
    /// that could still come for an ended upload is answered by that residue, so this need not
    /// be the topics' retention; it only bounds what a flood of requests leaves behind.
    /// Default 10 minutes.
    pub retire_after_ms: i64,
    /// The secret tenant tokens are issued and verified under (`echoctl tenant token`; see
    /// `echo_catalog::tenant`), at least 32 bytes; set it from the environment
    /// (`ECHO_UPLOAD__TENANT_SECRET`), never in a file. Unset: no token is valid, and every
    /// request belongs to the anonymous tenant.
    pub tenant_secret: Option<Secret>,
    /// Whether a request without a tenant token is accepted, as the anonymous tenant's (all
    /// such clients share its limits). Off: every client must present a token the deployment
    /// issued, and a request without one fails `UNKNOWN_TENANT`.
    pub allow_anonymous: bool,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            url_ttl_secs: 900,
            max_size_bytes: 512 * 1024 * 1024,
            allowed_content_types: [
                "audio/wav",
                "audio/x-wav",
                "audio/flac",
                "audio/ogg",
                "audio/mpeg",
            ]
            .map(String::from)
            .to_vec(),
            allow_clear_urls: false,
            retire_after_ms: 10 * 60 * 1000,
            tenant_secret: None,
            allow_anonymous: true,
        }
    }
}

impl UploadConfig {
    /// Fails on settings that would make every upload fail, so a bad config stops the
    /// processor at startup instead of sending every request to the DLQ.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            (1..=MAX_URL_TTL_SECS).contains(&self.url_ttl_secs),
            "upload.url_ttl_secs must be between 1 and {MAX_URL_TTL_SECS}, got {}",
            self.url_ttl_secs
        );
        ensure!(
            self.retire_after_ms >= 0,
            "upload.retire_after_ms must not be negative, got {}",
            self.retire_after_ms
        );
        ensure!(
            self.max_size_bytes > 0,
            "upload.max_size_bytes must be positive, got {}",
            self.max_size_bytes
        );
        ensure!(
            !self.allowed_content_types.is_empty(),
            "upload.allowed_content_types must not be empty"
        );
        if let Some(secret) = &self.tenant_secret {
            ensure!(
                secret.expose().len() >= echo_catalog::tenant::MIN_SECRET_BYTES,
                "upload.tenant_secret must be at least {} bytes",
                echo_catalog::tenant::MIN_SECRET_BYTES
            );
        }
        ensure!(
            self.allow_anonymous || self.tenant_secret.is_some(),
            "upload.allow_anonymous is off but no upload.tenant_secret is set: every request \
             would be refused"
        );
        Ok(())
    }

    /// Whether echo accepts audio of this MIME type (MIME types are case-insensitive).
    pub fn allows(&self, content_type: &str) -> bool {
        self.allowed_content_types
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(content_type))
    }

    /// The URL lifetime in milliseconds, the unit of every timestamp in echo's records.
    pub fn url_ttl_ms(&self) -> i64 {
        i64::from(self.url_ttl_secs) * 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_partial_sections_keep_them() {
        let c = UploadConfig::default();
        c.validate().unwrap();
        assert_eq!(c.url_ttl_secs, 900);
        assert_eq!(c.max_size_bytes, 536_870_912);
        assert!(c.allows("audio/wav") && c.allows("AUDIO/MPEG") && !c.allows("video/mp4"));

        let partial: UploadConfig = serde_json::from_str(r#"{"url_ttl_secs": 60}"#).unwrap();
        assert_eq!(partial.url_ttl_secs, 60);
        assert_eq!(partial.allowed_content_types, c.allowed_content_types);
    }

    #[test]
    fn unusable_settings_are_refused() {
        let bad = |f: fn(&mut UploadConfig)| {
            let mut c = UploadConfig::default();
            f(&mut c);
            c.validate().is_err()
        };
        assert!(bad(|c| c.url_ttl_secs = 0));
        assert!(bad(|c| c.url_ttl_secs = MAX_URL_TTL_SECS + 1));
        assert!(bad(|c| c.max_size_bytes = 0));
        assert!(bad(|c| c.allowed_content_types.clear()));
        assert!(bad(|c| c.tenant_secret = Some(Secret("too short".into()))));
        assert!(bad(|c| c.allow_anonymous = false));
    }
}
