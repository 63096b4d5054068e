//! The transcription processor's one write outside Kafka: a report file its decider rendered,
//! PUT under its key before `transcription.completed` announces it. Idempotent: a retried
//! input renders the same bytes for the same key.

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
        tracing::info!(key = %artifact.key, bytes = artifact.body.len(), "report file written");
        Ok(())
    }
}
