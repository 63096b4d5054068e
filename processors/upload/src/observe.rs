//! The I/O of the `upload` processor: pre-signing PUT URLs and reading the uploaded object's
//! facts (HEAD) for `decide`. `observe` only reads; it writes nothing outside Kafka.

use anyhow::Result;
use echo_catalog::events::{QuotaReserved, UploadFinalize};
use echo_runtime::prelude::*;
use echo_storage::S3Service;

use crate::config::UploadConfig;
use crate::decide::{self, DeliveredUrl, Observation, UploadDecider, UploadState};

/// The upload processor, run by `echo_runtime::run`.
#[derive(Debug, Clone)]
pub struct UploadProcessor {
    /// Its decisions, over what is accepted and for how long URLs are valid.
    decider: UploadDecider,
    /// The bucket uploads are PUT to and verified in.
    s3: S3Service,
}

impl UploadProcessor {
    /// A processor over the bucket of `config.s3`; fails on unusable settings. Does no I/O:
    /// call [`S3Service::ensure_bucket`] on [`UploadProcessor::s3`] at startup.
    pub fn new(config: &EchoConfig, upload: UploadConfig) -> Result<UploadProcessor> {
        upload.validate()?;
        Ok(UploadProcessor {
            decider: UploadDecider { config: upload },
            s3: S3Service::new(config)?,
        })
    }

    /// The object store it uses, for startup checks.
    pub fn s3(&self) -> &S3Service {
        &self.s3
    }

    /// Its settings.
    pub fn config(&self) -> &UploadConfig {
        &self.decider.config
    }
}

impl Processor for UploadProcessor {
    type Decider = UploadDecider;

    fn decider(&self) -> &UploadDecider {
        &self.decider
    }

    /// Presigns only for a request its tenant's quota admitted and that has no URL yet, and
    /// HEADs only for a finalize that will be checked, so refused and duplicate inputs cost no
    /// S3 call.
    async fn observe(
        &self,
        state: &UploadState,
        input: Input<'_>,
        _ctx: &Context,
    ) -> Result<Observation, HandlerError> {
        let Input::Record(record) = input else {
            return Ok(Observation::Nothing);
        };
        if record.is::<QuotaReserved>() {
            if let Some(requested) = decide::awaiting_url(state) {
                let url = self
                    .s3
                    .presign_put(
                        &requested.object_key,
                        &requested.content_type,
                        requested.declared_size_bytes,
                        self.decider.config.url_ttl_secs,
                    )
                    .await?;
                let delivered = match &requested.reply_key {
                    // The key was checked by `screen_request`; sealing cannot fail on it.
                    Some(key) => {
                        let seal = |plain: &str| {
                            echo_catalog::sealed::seal(key, plain)
                                .map_err(|e| HandlerError::Permanent(e.to_string()))
                        };
                        let token = echo_catalog::owner::generate();
                        DeliveredUrl::Sealed {
                            url: seal(&url)?,
                            owner_token: seal(&token)?,
                            owner_token_sha256: echo_catalog::owner::digest(&token),
                        }
                    }
                    None => DeliveredUrl::Clear(url),
                };
                return Ok(Observation::PresignedUrl(delivered));
            }
        } else if record.is::<UploadFinalize>() {
            let finalize: UploadFinalize = record.decode()?;
            if let Some(key) = decide::finalize_target(state, &finalize) {
                return Ok(Observation::Object(self.s3.head(key).await?));
            }
        }
        Ok(Observation::Nothing)
    }

    /// It writes nothing outside Kafka.
    /// The object store is this processor's dependency besides Kafka; it only reads.
    async fn probe(&self) -> Result<(), Unavailable> {
        self.s3.probe_reads().await
    }

    async fn effect(&self, effect: &NoEffect) -> Result<(), HandlerError> {
        match *effect {}
    }
}
