//! The I/O of the `transcription` processor: once a job's chunks are all in, the transcript is
//! assembled and its report files are written to S3 (rewriting the same keys on a retry is
//! harmless), for `decide` to announce.

use anyhow::Result;
use echo_runtime::{Context, EchoConfig, HandlerError, Input, Processor};
use echo_storage::S3Service;

use crate::config::TranscriptionConfig;
use crate::decide::{Observation, TranscriptionDecider, TranscriptionState, Written};
use crate::report::Transcript;
use crate::{decide, report};

/// The transcription processor, run by `echo_runtime::run`.
#[derive(Debug, Clone)]
pub struct TranscriptionProcessor {
    /// How transcripts are described.
    transcription: TranscriptionConfig,
    /// Its decisions.
    decider: TranscriptionDecider,
    /// The bucket the report artifacts are written to.
    s3: S3Service,
}

impl TranscriptionProcessor {
    /// A processor over the bucket of `config.s3`; fails on unusable settings. Does no I/O:
    /// call [`S3Service::ensure_bucket`] on [`TranscriptionProcessor::s3`] at startup.
    pub fn new(
        config: &EchoConfig,
        transcription: TranscriptionConfig,
    ) -> Result<TranscriptionProcessor> {
        transcription.validate()?;
        Ok(TranscriptionProcessor {
            transcription,
            decider: TranscriptionDecider,
            s3: S3Service::new(config)?,
        })
    }

    /// The object store it uses, for startup checks.
    pub fn s3(&self) -> &S3Service {
        &self.s3
    }

    /// Its settings.
    pub fn config(&self) -> &TranscriptionConfig {
        &self.transcription
    }
}

impl Processor for TranscriptionProcessor {
    type Decider = TranscriptionDecider;

    fn decider(&self) -> &TranscriptionDecider {
        &self.decider
    }

    /// Writes the artifacts only for the input that completes a job, so every other input
    /// costs no S3 call. Writing is idempotent by key: a retry after a failed transaction
    /// writes the same bytes again.
    async fn observe(
        &self,
        state: &TranscriptionState,
        input: Input<'_>,
        _ctx: &Context,
    ) -> Result<Observation, HandlerError> {
        let Input::Record(record) = input else {
            return Ok(Observation::Nothing);
        };
        let Some(ready) = decide::ready_job(state, record)? else {
            return Ok(Observation::Nothing);
        };
        let resource = decide::resource_id(record)?;
        let transcript = Transcript::build(
            &ready.job_id,
            &ready.plan,
            &ready.chunks,
            &self.transcription.language,
        );
        let files = report::render(
            resource,
            &transcript,
            &self.transcription.captions,
            &ready.plan.options(),
        );
        for artifact in files {
            self.s3
                .put_bytes(
                    &artifact.key,
                    artifact.body.as_bytes(),
                    artifact.content_type,
                )
                .await?;
        }
        tracing::info!(
            resource,
            job_id = %ready.job_id,
            words = transcript.analysis.word_count,
            "transcript written"
        );
        Ok(Observation::Written(Written {
            job_id: ready.job_id,
            word_count: transcript.analysis.word_count,
            duration_ms: transcript.analysis.duration_ms,
        }))
    }
}
