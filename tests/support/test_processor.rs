//! A processor made for testing the runtime: it runs under the `upload` entry of the
//! catalogue (on a test's own topic prefix) and its behaviour is steered by the filename of
//! each `upload.requested`, so a test can ask for success, transient or permanent failure,
//! and timers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use echo_catalog::events::{UploadExpired, UploadRequested, UploadUrlGenerated};
use echo_catalog::record::EventMetadata;
use echo_runtime::{Context, Decision, Fact, HandlerError, Input, Outgoing, Processor};
use serde::{Deserialize, Serialize};

/// Filename prefix: fail transiently on the first N attempts (`transient-2-x`).
pub const TRANSIENT: &str = "transient-";
/// Filename prefix: fail permanently.
pub const PERMANENT: &str = "permanent";
/// Filename prefix: also schedule an expiry timer 2 s later.
pub const WITH_TIMER: &str = "timer";

/// How many requests a key has seen; proves state survives restarts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counter {
    /// Requests handled for this key.
    pub requests: u32,
}

/// The test processor. `calls` counts handler invocations per event id, across restarts
/// within one test process.
#[derive(Clone, Default)]
pub struct TestProcessor {
    /// Handler invocations per event id.
    pub calls: Arc<Mutex<HashMap<String, u32>>>,
}

impl Processor for TestProcessor {
    type State = Counter;
    type Observation = ();

    fn name(&self) -> &'static str {
        "upload"
    }

    async fn observe(&self, _: &Counter, _: Input<'_>, _: &Context) -> Result<(), HandlerError> {
        Ok(())
    }

    fn decide(
        &self,
        state: &Counter,
        input: Input<'_>,
        _: (),
        ctx: &Context,
    ) -> Result<Decision, HandlerError> {
        match input {
            Input::Record(incoming) => {
                let request: UploadRequested = incoming.decode()?;
                *self
                    .calls
                    .lock()
                    .unwrap()
                    .entry(incoming.metadata.event_id.clone())
                    .or_default() += 1;
                if let Some(n) = request.filename.strip_prefix(TRANSIENT) {
                    let failures: u32 = n.split('-').next().unwrap_or("0").parse().unwrap_or(0);
                    if incoming.attempt < failures {
                        return Err(HandlerError::Transient(format!(
                            "attempt {} of a flaky dependency",
                            incoming.attempt
                        )));
                    }
                }
                if request.filename.starts_with(PERMANENT) {
                    return Err(HandlerError::Permanent(
                        "this request can never work".into(),
                    ));
                }
                let url = UploadUrlGenerated {
                    metadata: ctx.metadata(),
                    object_key: format!("uploads/{}/source", incoming.key),
                    upload_url: format!("http://example.invalid/{}", state.requests + 1),
                    content_type: request.content_type,
                    expires_at: ctx.now_ms + 2_000,
                };
                let mut decision = Decision::emit(vec![Outgoing::new(&incoming.key, &url)]);
                if request.filename.starts_with(WITH_TIMER) {
                    decision
                        .schedule
                        .push(ctx.timer("expiry", ctx.now_ms + 2_000, &incoming.key));
                }
                Ok(decision)
            }
            Input::Timer(timer) => {
                let expired = UploadExpired {
                    metadata: ctx.metadata(),
                    object_key: format!("uploads/{}/source", timer.payload),
                    expired_at: ctx.now_ms,
                };
                Ok(Decision::emit(vec![Outgoing::new(
                    &timer.payload,
                    &expired,
                )]))
            }
        }
    }

    fn evolve(&self, mut state: Counter, fact: Fact<'_>) -> Counter {
        if let Fact::Consumed(_) = fact {
            state.requests += 1;
        }
        state
    }
}

/// An `upload.requested` from a client, with a fresh event id unless one is given.
pub fn request(resource: &str, filename: &str, event_id: Option<&str>) -> UploadRequested {
    UploadRequested {
        metadata: EventMetadata::new(
            event_id
                .map(str::to_string)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            resource.to_string(),
            "test-client",
            echo_runtime::driver::now_ms(),
        ),
        filename: filename.into(),
        content_type: "audio/wav".into(),
        declared_size_bytes: 1000,
    }
}
