//! The upload processor's I/O: the object store, reached through rust-s3.
//!
//! Only the `observe` step and startup call this; `decide` gets what it found as plain data.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use echo_runtime::config::S3Config;
use echo_runtime::dependency::OBJECT_STORE;
use echo_runtime::{EchoConfig, HandlerError, Unavailable};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_MATCH};
use reqwest::StatusCode;
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::{Bucket, BucketConfiguration, Region};
use tokio::io::AsyncWriteExt;

/// How long one S3 call may take before it counts as a transient failure; short enough that
/// a hung object store does not stall a partition's transaction for long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long downloading a whole object (audio up to the upload limit) may take: far more
/// bytes than the small requests [`REQUEST_TIMEOUT`] is meant for.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(300);

/// How long each request of a probe may take: two of them fit the runtime's bound on a probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the URL of a pinned download is valid: it is used at once, by echo itself.
const PRESIGNED_GET_SECS: u32 = 60;

/// Which object a reader must get: the version verified at upload, no larger than it was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pin {
    /// The ETag the object had when it was verified; `None` accepts any version (records
    /// written before ETags were recorded).
    pub etag: Option<String>,
    /// The size it had; a longer body is cut off and refused. `None` for no cap.
    pub max_bytes: Option<u64>,
}

/// What a pinned download found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Download {
    /// The pinned object, this many bytes, is in the file.
    Stored(u64),
    /// Nothing is stored under the key.
    Missing,
    /// Another version is stored than the one pinned: the audio was replaced after it was
    /// verified. What was found instead, for the failure message.
    Changed {
        /// The ETag found, or why there is none.
        found: String,
    },
    /// The body ran past the pinned size (this many bytes read when it was cut off).
    TooLarge {
        /// Bytes received before giving up.
        at_least: u64,
    },
}

/// What a HEAD of the uploaded object says, the facts `upload.finalize` is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFacts {
    /// Stored size in bytes, compared with the declared size and the limit.
    pub size: i64,
    /// Stored `Content-Type` (empty when the store reports none), compared with the signed one.
    pub content_type: String,
    /// The object's ETag (quotes included, as the store sends it): which version of the
    /// object was verified, so readers can insist on exactly that one (`If-Match`).
    pub etag: Option<String>,
}

/// The bucket every upload lands in, with the two operations the processor needs.
#[derive(Debug, Clone)]
pub struct S3Service {
    /// Path-style bucket handle: the local server (and most self-hosted ones) has no
    /// per-bucket DNS names.
    bucket: Box<Bucket>,
    /// Endpoint and credentials, kept to create the bucket at startup.
    config: S3Config,
    /// Plain HTTP client for pinned downloads (see [`S3Service::download_to`]).
    http: reqwest::Client,
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
            http: reqwest::Client::new(),
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

    /// Whether the store answers reads: it lists a key within [`PROBE_TIMEOUT`]. A store
    /// that is down, hung or refusing echo's credentials fails it; what one input asked of it
    /// does not. For processors that only read (their credentials may allow nothing else).
    pub async fn probe_reads(&self) -> Result<(), Unavailable> {
        let listed = self
            .bucket
            .list_page(keys::ROOT.into(), None, None, None, Some(1));
        answered("listing objects", listed).await
    }

    /// Whether the store answers reads and writes: [`S3Service::probe_reads`], then a small
    /// object stored under [`keys::PROBE`] within [`PROBE_TIMEOUT`], which a store out of
    /// space fails too. For processors that write or delete.
    pub async fn probe(&self) -> Result<(), Unavailable> {
        self.probe_reads().await?;
        let body = [0u8; 4096];
        answered(
            "storing an object",
            self.bucket.put_object(keys::PROBE, &body),
        )
        .await
    }

    /// A URL that lets its holder PUT `key` for `ttl_secs`, only with exactly this
    /// `Content-Type` and exactly `content_length` bytes: both headers are part of the
    /// signature, so the store rejects any other type or size.
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: i64,
        ttl_secs: u32,
    ) -> Result<String, HandlerError> {
        let value = HeaderValue::from_str(content_type).map_err(|e| {
            HandlerError::Permanent(format!(
                "content type {content_type:?} is not a header: {e}"
            ))
        })?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, value);
        headers.insert(CONTENT_LENGTH, HeaderValue::from(content_length));
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
                etag: head.e_tag,
            })),
            // With `fail-on-err`, a missing object is an error carrying its status.
            Err(S3Error::HttpFailWithBody(404, _)) => Ok(None),
            Err(e) => Err(classify(e, "HEAD of the uploaded object")),
        }
    }

    /// Streams the version `pin` names of the object at `key` into the file at `path`
    /// (created or truncated). Streaming keeps large audio out of memory; callers wanting an
    /// all-or-nothing file download to a temporary path and rename it. Anything but
    /// [`Download::Stored`] leaves no file behind.
    ///
    /// The store is asked for exactly the pinned version (`If-Match`), and the answer's ETag is
    /// checked too, for stores that ignore the condition; the body is cut off past the pinned
    /// size, whatever the store claims the length is.
    pub async fn download_to(
        &self,
        key: &str,
        path: &Path,
        pin: &Pin,
    ) -> Result<Download, HandlerError> {
        let got = self.stream_to(key, path, pin).await;
        if !matches!(got, Ok(Download::Stored(_))) {
            // Never leave a partial or empty file behind that could pass for the object.
            let _ = tokio::fs::remove_file(path).await;
        }
        got
    }

    async fn stream_to(&self, key: &str, path: &Path, pin: &Pin) -> Result<Download, HandlerError> {
        let local = |e: std::io::Error| {
            HandlerError::Transient(format!("writing {key} to a local file: {e}"))
        };
        // A pre-signed GET through a plain HTTP client: rust-s3's streaming download neither
        // sends conditions nor shows the answer's headers.
        let url = self
            .bucket
            .presign_get(key, PRESIGNED_GET_SECS, None)
            .await
            .map_err(|e| classify(e, &format!("pre-signing a GET of {key}")))?;
        let mut request = self.http.get(url).timeout(TRANSFER_TIMEOUT);
        if let Some(etag) = &pin.etag {
            request = request.header(IF_MATCH, etag);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| HandlerError::Transient(format!("GET of {key}: {}", without_url(&e))))?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(Download::Missing);
        }
        if status == StatusCode::PRECONDITION_FAILED {
            return Ok(Download::Changed {
                found: "another version (the store refused If-Match)".into(),
            });
        }
        if !status.is_success() {
            return Err(HandlerError::Transient(format!(
                "GET of {key}: HTTP {status}"
            )));
        }
        let found = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(etag) = &pin.etag {
            if found.as_deref() != Some(etag.as_str()) {
                return Ok(Download::Changed {
                    found: found.unwrap_or_else(|| "no ETag".into()),
                });
            }
        }
        let mut file = tokio::fs::File::create(path).await.map_err(local)?;
        let mut size: u64 = 0;
        while let Some(bytes) = response
            .chunk()
            .await
            .map_err(|e| HandlerError::Transient(format!("GET of {key}: {}", without_url(&e))))?
        {
            size += bytes.len() as u64;
            if pin.max_bytes.is_some_and(|max| size > max) {
                return Ok(Download::TooLarge { at_least: size });
            }
            file.write_all(&bytes).await.map_err(local)?;
        }
        file.flush().await.map_err(local)?;
        Ok(Download::Stored(size))
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

    /// How many objects there are under `prefix`: what a cleanup is about to delete.
    pub async fn count_prefix(&self, prefix: &str) -> Result<u32, HandlerError> {
        let mut count = 0;
        let mut token = None;
        loop {
            let (page, _) = self
                .bucket
                .list_page(prefix.into(), None, token, None, Some(1000))
                .await
                .map_err(|e| classify(e, "listing objects"))?;
            count += u32::try_from(page.contents.len()).unwrap_or(u32::MAX);
            match page.next_continuation_token {
                Some(next) if page.is_truncated => token = Some(next),
                _ => return Ok(count),
            }
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
fn classify(e: S3Error, what: &str) -> HandlerError {
    match e {
        S3Error::MaxExpiry(_)
        | S3Error::InvalidHeaderValue(_)
        | S3Error::InvalidHeaderName(_)
        | S3Error::UrlParse(_) => HandlerError::Permanent(format!("{what}: {}", redacted(&e))),
        e => HandlerError::Transient(format!("{what}: {}", redacted(&e))),
    }
}

/// Whether one probing request (`what`) got an answer within [`PROBE_TIMEOUT`].
async fn answered<T>(
    what: &str,
    request: impl std::future::Future<Output = Result<T, S3Error>>,
) -> Result<(), Unavailable> {
    match tokio::time::timeout(PROBE_TIMEOUT, request).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Unavailable::new(
            OBJECT_STORE,
            format!("{what}: {}", redacted(&e)),
        )),
        Err(_) => Err(Unavailable::new(OBJECT_STORE, format!("{what}: no answer"))),
    }
}

/// An S3 error as operators may read it in logs and DLQ headers: without the request's URL,
/// which names the store's address and, for a pre-signed request, carries its signature.
fn redacted(e: &S3Error) -> String {
    match e {
        S3Error::Reqwest(e) => without_url(e),
        e => e.to_string(),
    }
}

/// An HTTP client error without the URL it was for.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    std::iter::successors(std::error::Error::source(e), |c| c.source())
        .fold(text, |text, cause| format!("{text}: {cause}"))
}

/// Where a resource's objects live: everything of one resource under one prefix, so cleanup
/// is a single prefix delete and no key is ever derived from client input.
pub mod keys {
    /// Prefix of all resources.
    pub const ROOT: &str = "resources/";

    /// The object [`super::S3Service::probe`] writes to see whether the store takes writes:
    /// outside every resource's prefix, so no cleanup ever deletes or counts it.
    pub const PROBE: &str = "echo/probe";

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
