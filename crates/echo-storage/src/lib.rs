//! The upload processor's I/O: the object store, reached through rust-s3.
//!
//! Only the `observe` step and startup call this; `decide` gets what it found as plain data.

use std::time::Duration;

use anyhow::{Context as _, Result};
use echo_runtime::config::S3Config;
use echo_runtime::{EchoConfig, HandlerError};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::{Bucket, BucketConfiguration, Region};

/// How long one S3 call may take before it counts as a transient failure; short enough that
/// a hung object store does not stall a partition's transaction for long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What a HEAD of the uploaded object says, the facts `upload.finalize` is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFacts {
    /// Stored size in bytes, compared with the declared size and the limit.
    pub size: i64,
    /// Stored `Content-Type` (empty when the store reports none), compared with the signed one.
    pub content_type: String,
}

/// The bucket every upload lands in, with the two operations the processor needs.
#[derive(Debug, Clone)]
pub struct S3Service {
    /// Path-style bucket handle: the local server (and most self-hosted ones) has no
    /// per-bucket DNS names.
    bucket: Box<Bucket>,
    /// Endpoint and credentials, kept to create the bucket at startup.
    config: S3Config,
}

impl S3Service {
    /// A handle on the bucket of `config.s3`; does no I/O.
    pub fn new(config: &EchoConfig) -> Result<S3Service> {
        let s3 = &config.s3;
        let bucket = Bucket::new(&s3.bucket, region(s3), credentials(s3)?)
            .with_context(|| format!("S3 bucket {} at {}", s3.bucket, s3.endpoint))?
            .with_path_style()
            .with_request_timeout(REQUEST_TIMEOUT)
            .context("S3 request timeout")?;
        Ok(S3Service {
            bucket,
            config: s3.clone(),
        })
    }

    /// Name of the bucket uploads go to.
    pub fn bucket_name(&self) -> &str {
        &self.bucket.name
    }

    /// Creates the bucket if it does not exist yet; safe to call from every instance at
    /// startup, concurrently.
    pub async fn ensure_bucket(&self) -> Result<()> {
        if self.bucket_exists().await {
            return Ok(());
        }
        let name = &self.config.bucket;
        let created = Bucket::create_with_path_style(
            name,
            region(&self.config),
            credentials(&self.config)?,
            BucketConfiguration::default(),
        )
        .await;
        match created {
            Ok(_) => Ok(()),
            // BucketAlreadyOwnedByYou / BucketAlreadyExists: another instance was first.
            Err(S3Error::HttpFailWithBody(409, _)) => Ok(()),
            // A create racing another one can fail otherwise (s3s-fs answers 500); what
            // matters is whether the bucket is there now.
            Err(_) if self.bucket_exists().await => Ok(()),
            Err(e) => Err(e)
                .with_context(|| format!("creating bucket {name} at {}", self.config.endpoint)),
        }
    }

    /// Whether the bucket is there and readable. Lists at most one key: ListBuckets needs
    /// rights on every bucket and rust-s3 cannot parse s3s-fs's answer (no `Owner`), and
    /// rust-s3's GetBucketLocation is broken with path-style addressing.
    async fn bucket_exists(&self) -> bool {
        self.bucket
            .list_page(keys::ROOT.into(), None, None, None, Some(1))
            .await
            .is_ok()
    }

    /// A URL that lets its holder PUT `key` for `ttl_secs`, only with exactly this
    /// `Content-Type`: the header is part of the signature, so the store rejects any other.
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        ttl_secs: u32,
    ) -> Result<String, HandlerError> {
        let value = HeaderValue::from_str(content_type).map_err(|e| {
            HandlerError::Permanent(format!(
                "content type {content_type:?} is not a header: {e}"
            ))
        })?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, value);
        self.bucket
            .presign_put(key, ttl_secs, Some(headers), None)
            .await
            .map_err(|e| classify(e, "pre-signing a PUT"))
    }

    /// Size and type of the object at `key`, or `None` if nothing is stored there.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectFacts>, HandlerError> {
        match self.bucket.head_object(key).await {
            Ok((head, _)) => Ok(Some(ObjectFacts {
                size: head.content_length.unwrap_or(0),
                content_type: head.content_type.unwrap_or_default(),
            })),
            // With `fail-on-err`, a missing object is an error carrying its status.
            Err(S3Error::HttpFailWithBody(404, _)) => Ok(None),
            Err(e) => Err(classify(e, "HEAD of the uploaded object")),
        }
    }
}

/// The endpoint as a custom region, so any S3-compatible server works.
fn region(s3: &S3Config) -> Region {
    Region::Custom {
        region: s3.region.clone(),
        endpoint: s3.endpoint.clone(),
    }
}

/// Static credentials from the config; never the environment or instance metadata, so what
/// echo signs with is exactly what its config says.
fn credentials(s3: &S3Config) -> Result<Credentials> {
    Credentials::new(
        Some(&s3.access_key),
        Some(s3.secret_key.expose()),
        None,
        None,
        None,
    )
    .context("S3 credentials")
}

/// Errors from talking to the store are transient: the store being down, slow or
/// misconfigured is not the input's fault, and the retry tiers give operators time to fix it.
/// Errors raised before any request (a URL or header that cannot be built) never go away.
fn classify(e: S3Error, what: &str) -> HandlerError {
    match e {
        S3Error::MaxExpiry(_)
        | S3Error::InvalidHeaderValue(_)
        | S3Error::InvalidHeaderName(_)
        | S3Error::UrlParse(_) => HandlerError::Permanent(format!("{what}: {e}")),
        e => HandlerError::Transient(format!("{what}: {e}")),
    }
}

/// Where a resource's objects live: everything of one resource under one prefix, so cleanup
/// is a single prefix delete and no key is ever derived from client input.
pub mod keys {
    /// Prefix of all resources.
    pub const ROOT: &str = "resources/";

    /// Every object of a resource starts with this.
    pub fn prefix(resource_id: &str) -> String {
        format!("{ROOT}{resource_id}/")
    }

    /// The uploaded source audio.
    pub fn upload(resource_id: &str) -> String {
        format!("{}upload", prefix(resource_id))
    }

    /// A report artifact (`transcript.txt`, `transcript.srt`, …).
    pub fn report(resource_id: &str, file: &str) -> String {
        format!("{}report/{file}", prefix(resource_id))
    }
}
