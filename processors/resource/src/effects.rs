//! The resource processor's one write outside Kafka: deleting every object under a resource's
//! prefix. Idempotent: a retried delete finds what is left, or nothing.

use echo_runtime::HandlerError;
use tracing::info;

use crate::observe::ResourceProcessor;

impl ResourceProcessor {
    /// Deletes every object under `prefix`, which `decide` checked is one resource's own (and
    /// the store refuses any other).
    pub(crate) async fn delete(&self, prefix: &str) -> Result<(), HandlerError> {
        let deleted = self.s3().delete_prefix(prefix).await?;
        info!(prefix, deleted, "deleted the objects of a resource");
        Ok(())
    }
}
