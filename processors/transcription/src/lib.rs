//! The `transcription` processor: turns a job's chunk transcripts into the resource's
//! transcript files.
//!
//! It consumes `echo.processing.events` and produces `echo.transcription.events` (see
//! `topics/topics.toml`):
//!
//! - `processing.job.created` and `chunk.processing.completed`, in any order, until every
//!   chunk of the job has a result → the transcript is assembled word by word
//!   ([`assemble`]), cleared of whisper's loops ([`guard`]), analysed ([`analysis`]), rendered ([`report`], captions cut by
//!   [`captions`]) and written to S3, then `transcription.started`
//!   and `transcription.completed` are emitted;
//! - `chunk.processing.failed` for a chunk without a result → `transcription.failed`.
//!
//! Like every processor it is split in three: [`config`] (its settings), [`decide`] (pure
//! logic, the Decider's `decide` and `evolve`) and `echo_storage` (the S3 I/O `observe`
//! does); assembly, analysis and rendering are pure functions too.

pub mod analysis;
pub mod assemble;
pub mod captions;
pub mod config;
pub mod decide;
pub mod guard;
pub mod report;

use anyhow::Result;
use echo_runtime::{Context, EchoConfig, HandlerError, Input, Processor, Registration, RunOptions};

pub use analysis::Analysis;
pub use assemble::ChunkTranscript;
pub use config::TranscriptionConfig;
pub use decide::{
    JobPlan, JobProgress, Observation, TranscriptionDecider, TranscriptionState, Written,
};
pub use echo_storage::S3Service;
pub use report::Transcript;

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

/// How `echoctl run transcription` finds and starts it.
pub const REGISTRATION: Registration = Registration {
    name: "transcription",
    summary: "Transcript assembly, analysis, report.",
    pooled: false,
    start: |config, options| Box::pin(start(config, options)),
};

/// Builds it from `[transcription]`, makes sure its bucket exists, and runs it until shutdown.
async fn start(config: EchoConfig, options: RunOptions) -> Result<()> {
    let p = TranscriptionProcessor::new(&config, config.section("transcription")?)?;
    p.s3().ensure_bucket().await?;
    echo_runtime::run(config, p, options).await
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
