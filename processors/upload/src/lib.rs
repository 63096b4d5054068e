//! The `upload` processor: the entry point of echo's pipeline.
//!
//! It consumes `echo.upload.requests` and `echo.upload.commands` and produces
//! `echo.upload.events` (see `topics/topics.toml`):
//!
//! - `upload.requested` → a pre-signed PUT URL for a server-chosen object key, signed for the
//!   declared content type and size and sealed to the client's `reply_key`
//!   (`upload.url.generated`), or `upload.failed` when the request is refused;
//! - `upload.finalize` → a HEAD of the object, checked against the request
//!   (`upload.completed` or `upload.failed`);
//! - no finalize before the URL expires → `upload.expired` and `upload.failed`.
//!
//! Like every processor it is split in three: [`config`] (its settings), [`decide`] (pure
//! logic, the Decider's `decide` and `evolve`) and `echo_storage` (the S3 I/O `observe` does).

pub mod config;
pub mod decide;

use anyhow::Result;
use echo_catalog::events::{UploadFinalize, UploadRequested};
use echo_runtime::{Context, Decision, EchoConfig, Fact, HandlerError, Input, Processor};

pub use config::UploadConfig;
pub use decide::{DeliveredUrl, Observation, RequestedUpload, UploadState};
pub use echo_storage::{ObjectFacts, S3Service};

/// The upload processor, run by `echo_runtime::run`.
#[derive(Debug, Clone)]
pub struct UploadProcessor {
    /// What is accepted and for how long URLs are valid.
    upload: UploadConfig,
    /// The bucket uploads are PUT to and verified in.
    s3: S3Service,
}

impl UploadProcessor {
    /// A processor over the bucket of `config.s3`; fails on unusable settings. Does no I/O:
    /// call [`S3Service::ensure_bucket`] on [`UploadProcessor::s3`] at startup.
    pub fn new(config: &EchoConfig, upload: UploadConfig) -> Result<UploadProcessor> {
        upload.validate()?;
        Ok(UploadProcessor {
            upload,
            s3: S3Service::new(config)?,
        })
    }

    /// The object store it uses, for startup checks.
    pub fn s3(&self) -> &S3Service {
        &self.s3
    }

    /// Its settings.
    pub fn config(&self) -> &UploadConfig {
        &self.upload
    }
}

impl Processor for UploadProcessor {
    type State = UploadState;
    type Observation = Observation;

    fn name(&self) -> &'static str {
        "upload"
    }

    fn handles(&self) -> &'static [&'static str] {
        decide::HANDLES
    }

    fn emits(&self) -> &'static [&'static str] {
        decide::EMITS
    }

    /// Presigns only for a request that will get a URL, and HEADs only for a finalize that
    /// will be checked, so refused and duplicate inputs cost no S3 call.
    async fn observe(
        &self,
        state: &UploadState,
        input: Input<'_>,
        _ctx: &Context,
    ) -> Result<Observation, HandlerError> {
        let Input::Record(record) = input else {
            return Ok(Observation::Nothing);
        };
        if record.is::<UploadRequested>() {
            let request: UploadRequested = record.decode()?;
            let verdict = decide::screen_request(
                &self.upload,
                state,
                &record.metadata.correlation_id,
                &request,
            );
            if let decide::RequestVerdict::Issue { object_key } = verdict {
                let url = self
                    .s3
                    .presign_put(
                        &object_key,
                        &request.content_type,
                        request.declared_size_bytes,
                        self.upload.url_ttl_secs,
                    )
                    .await?;
                let delivered = match &request.reply_key {
                    // The key was checked by `screen_request`; sealing cannot fail on it.
                    Some(key) => DeliveredUrl::Sealed(
                        echo_catalog::sealed::seal(key, &url)
                            .map_err(|e| HandlerError::Permanent(e.to_string()))?,
                    ),
                    None => DeliveredUrl::Clear(url),
                };
                return Ok(Observation::PresignedUrl(delivered));
            }
        } else if record.is::<UploadFinalize>() {
            if let Some(key) = decide::finalize_target(state) {
                return Ok(Observation::Object(self.s3.head(key).await?));
            }
        }
        Ok(Observation::Nothing)
    }

    fn decide(
        &self,
        state: &UploadState,
        input: Input<'_>,
        observed: Observation,
        ctx: &Context,
    ) -> Result<Decision, HandlerError> {
        decide::decide(&self.upload, state, input, observed, ctx)
    }

    fn evolve(&self, state: UploadState, fact: Fact<'_>) -> UploadState {
        decide::evolve(state, fact)
    }

    fn is_finished(&self, state: &UploadState) -> bool {
        state.is_finished()
    }

    /// A resource id, once used, is never issued a URL again: its retired state keeps how
    /// the upload ended.
    fn retired(&self, state: &UploadState) -> Option<UploadState> {
        Some(state.residue())
    }
}
