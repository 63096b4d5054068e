//! The I/O of the `transcription` processor: `observe` reads back the chunk results kept as
//! objects for the input that completes a job, and the chunk results and report files its
//! decider asks for are written by its effects (`effects.rs`).

use std::collections::BTreeMap;

use anyhow::Result;
use echo_runtime::prelude::*;
use echo_storage::S3Service;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::config::TranscriptionConfig;
use crate::decide::{self, TranscriptionDecider, TranscriptionState};
use crate::report::Artifact;
use crate::stored::{self, StoredResults};

/// Kept chunk results read at once: a three-hour job on two channels has some 750, and one
/// at a time they would cost its I/O budget on a store 40 ms away.
const PARALLEL_READS: usize = 16;

/// The transcription processor, run by `echo_runtime::run`.
#[derive(Debug, Clone)]
pub struct TranscriptionProcessor {
    /// Its decisions, over how transcripts are described.
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
            decider: TranscriptionDecider {
                config: transcription,
            },
            s3: S3Service::new(config)?,
        })
    }

    /// The object store it uses, for startup checks.
    pub fn s3(&self) -> &S3Service {
        &self.s3
    }

    /// Its settings.
    pub fn config(&self) -> &TranscriptionConfig {
        &self.decider.config
    }
}

impl Processor for TranscriptionProcessor {
    type Decider = TranscriptionDecider;

    fn decider(&self) -> &TranscriptionDecider {
        &self.decider
    }

    /// Reads only for the input that completes a job (its kept chunk results), so every
    /// other input costs no S3 call.
    async fn observe(
        &self,
        state: &TranscriptionState,
        input: Input<'_>,
        _ctx: &Context,
    ) -> Result<StoredResults, HandlerError> {
        let Input::Record(record) = input else {
            return Ok(StoredResults::default());
        };
        let Some(ready) = decide::ready_job(state, record)? else {
            return Ok(StoredResults::default());
        };
        let kept = ready
            .chunks
            .iter()
            .filter_map(|c| Some((c.index, c.stored_at.as_deref()?)));
        let objects: BTreeMap<i32, Option<Vec<u8>>> = stream::iter(kept)
            .map(|(index, key)| async move {
                Ok::<_, HandlerError>((index, self.s3.get_bytes(key).await?))
            })
            .buffer_unordered(PARALLEL_READS)
            .try_collect()
            .await?;
        Ok(stored::read_back(&ready, objects))
    }

    /// The object store is this processor's dependency besides Kafka; it writes there.
    async fn probe(&self) -> Result<(), Unavailable> {
        self.s3.probe().await
    }

    async fn effect(&self, artifact: &Artifact) -> Result<(), HandlerError> {
        self.write(artifact).await
    }
}
