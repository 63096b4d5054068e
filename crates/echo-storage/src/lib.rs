//! The upload processor's I/O: the object store, reached through rust-s3.
//!
//! Only the `observe` step and startup call this; `decide` gets what it found as plain data.

use std::path::Path;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result};
use echo_runtime::config::S3Config;
use echo_runtime::{EchoConfig, HandlerError};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::{Bucket, BucketConfiguration, Region};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// How long one S3 call may take before it counts as a transient failure; short enough that
/// a hung object store does not stall a partition's transaction for long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long downloading a whole object (audio up to the upload limit) may take: far more
/// bytes than the small requests [`REQUEST_TIMEOUT`] is meant for.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(300);

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

    /// Streams the object at `key` into the file at `path` (created or truncated) and returns
    /// its size, or `None` (leaving no file) when nothing is stored there. Streaming keeps
    /// large audio out of memory; callers wanting an all-or-nothing file download to a
    /// temporary path and rename it. An object larger than `max_bytes` is not the one the
    /// caller was promised: the download stops there, the partial file is deleted, and the
    /// error is permanent (the same bytes would be refused again).
    pub async fn download_to(
        &self,
        key: &str,
        path: &Path,
        max_bytes: Option<u64>,
    ) -> Result<Option<u64>, HandlerError> {
        let local = |e: std::io::Error| {
            HandlerError::Transient(format!("writing {key} to {}: {e}", path.display()))
        };
        let file = tokio::fs::File::create(path).await.map_err(local)?;
        let mut file = Capped::new(file, max_bytes);
        // A whole object can take longer than one small request may.
        let bucket = self
            .bucket
            .with_request_timeout(TRANSFER_TIMEOUT)
            .map_err(|e| classify(e, "configuring a download"))?;
        let got = bucket.get_object_to_writer(key, &mut file).await;
        let flushed = file.flush().await;
        let over_cap = file.over_cap;
        drop(file);
        let failure = match (got, flushed) {
            _ if over_cap => Some(HandlerError::Permanent(format!(
                "GET of {key}: the object is larger than the {} bytes expected",
                max_bytes.unwrap_or_default()
            ))),
            (Ok(status), Ok(())) if (200..300).contains(&status) => {
                let size = tokio::fs::metadata(path).await.map_err(local)?.len();
                return Ok(Some(size));
            }
            (Err(S3Error::HttpFailWithBody(404, _)) | Ok(404), _) => None,
            (Err(e), _) => Some(classify(e, &format!("GET of {key}"))),
            (Ok(status), Ok(())) => Some(HandlerError::Transient(format!(
                "GET of {key}: HTTP {status}"
            ))),
            (Ok(_), Err(e)) => Some(local(e)),
        };
        // Never leave a partial or empty file behind that could pass for the object.
        let _ = tokio::fs::remove_file(path).await;
        failure.map_or(Ok(None), Err)
    }

    /// Stores `bytes` at `key` with this `Content-Type`, replacing what was there: writing
    /// the same bytes again is harmless, so a retried handler may simply write again.
    pub async fn put_bytes(
        &self,
        key: &str,
        bytes: &[u8],
        content_type: &str,
    ) -> Result<(), HandlerError> {
        self.bucket
            .put_object_with_content_type(key, bytes, content_type)
            .await
            .map(|_| ())
            .map_err(|e| classify(e, &format!("PUT of {key}")))
    }

    /// The bytes stored at `key`, or `None` if nothing is stored there.
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, HandlerError> {
        match self.bucket.get_object(key).await {
            Ok(response) => Ok(Some(response.to_vec())),
            // With `fail-on-err`, a missing object is an error carrying its status.
            Err(S3Error::HttpFailWithBody(404, _)) => Ok(None),
            Err(e) => Err(classify(e, &format!("GET of {key}"))),
        }
    }

    /// Deletes every object under `prefix` and returns how many were deleted; idempotent, so
    /// a retried cleanup deletes what is left (0 when nothing is). Only a whole resource's
    /// prefix is accepted: an empty or foreign prefix would delete other resources' objects.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u32, HandlerError> {
        if !keys::is_resource_prefix(prefix) {
            return Err(HandlerError::Permanent(format!(
                "refusing to delete under {prefix:?}: not the prefix of one resource"
            )));
        }
        let mut deleted = 0;
        loop {
            // Always the first page: what was listed before is deleted by now, so there is no
            // continuation token to keep. `list_page`, not `list`: the latter fails on s3s-fs.
            let (page, _) = self
                .bucket
                .list_page(prefix.into(), None, None, None, Some(1000))
                .await
                .map_err(|e| classify(e, "listing objects to delete"))?;
            for object in &page.contents {
                match self.bucket.delete_object(&object.key).await {
                    Ok(_) => deleted += 1,
                    // Gone between list and delete (a concurrent cleanup): not ours to count.
                    Err(S3Error::HttpFailWithBody(404, _)) => {}
                    Err(e) => return Err(classify(e, "deleting an object")),
                }
            }
            if page.contents.is_empty() || !page.is_truncated {
                return Ok(deleted);
            }
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
/// A writer that refuses bytes past a cap, so a download larger than promised stops at the
/// cap instead of filling the disk.
struct Capped<W> {
    /// Where the accepted bytes go.
    inner: W,
    /// How many more bytes are accepted; `None` for no cap.
    left: Option<u64>,
    /// Set once a write would have passed the cap, so the caller can tell this refusal from
    /// an I/O failure.
    over_cap: bool,
}

impl<W> Capped<W> {
    fn new(inner: W, cap: Option<u64>) -> Self {
        Capped {
            inner,
            left: cap,
            over_cap: false,
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Capped<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.left.is_some_and(|left| buf.len() as u64 > left) {
            self.over_cap = true;
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "larger than expected",
            )));
        }
        let written = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        if let Some(left) = self.left.as_mut() {
            *left -= written as u64;
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

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

    /// Whether `prefix` is exactly one resource's [`prefix`] (`resources/<id>/`, the id
    /// non-empty, without `/` and not `.` or `..`): the only prefixes a cleanup may delete.
    pub fn is_resource_prefix(prefix: &str) -> bool {
        prefix
            .strip_prefix(ROOT)
            .and_then(|rest| rest.strip_suffix('/'))
            .is_some_and(|id| !id.is_empty() && !id.contains('/') && id != "." && id != "..")
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
