//! The transcription processor's one kind of write outside Kafka: a file its decider asked
//! for, PUT under its key before the state relies on it (a chunk's kept result) or
//! `transcription.completed` announces it (a report file). Idempotent: a retried input asks
//! for the same bytes under the same key.

use echo_runtime::HandlerError;

use crate::observe::TranscriptionProcessor;
use crate::report::Artifact;

impl TranscriptionProcessor {
    /// Stores one rendered file.
    pub(crate) async fn write(&self, artifact: &Artifact) -> Result<(), HandlerError> {
        self.s3()
            .put_bytes(
                &artifact.key,
                artifact.body.as_bytes(),
                artifact.content_type,
            )
            .await?;
        tracing::info!(key = %artifact.key, bytes = artifact.body.len(), "file written");
        Ok(())
    }
}
