//! A processor made for testing the runtime: it runs under the `upload` entry of the
//! catalogue (on a test's own topic prefix) and its behaviour is steered by the filename of
//! each `upload.requested`, so a test can ask for success, transient or permanent failure,
//! and timers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use echo_catalog::events::{UploadCompleted, UploadExpired, UploadRequested, UploadUrlGenerated};
use echo_catalog::record::{EventMetadata, Record};
use echo_runtime::{Context, Decider, Decision, Fact, HandlerError, Input, Outgoing, Processor};
use serde::{Deserialize, Serialize};

/// Filename prefix: fail transiently on the first N attempts (`transient-2-x`).
pub const TRANSIENT: &str = "transient-";
/// Filename prefix: fail permanently.
pub const PERMANENT: &str = "permanent";
/// Filename prefix: also schedule an expiry timer 2 s later (`timer-25000-x`: 25 s later).
pub const WITH_TIMER: &str = "timer";
/// Filename prefix: `observe` takes this many milliseconds (`slow-1500-x`).
pub const SLOW: &str = "slow-";
/// Filename prefix: `observe` takes this many milliseconds, and so does the effect the
/// decision asks for (`slowio-1500-x`).
pub const SLOW_IO: &str = "slowio-";
/// Filename prefix: the output's URL has this many bytes (`huge-1100000-x`).
pub const HUGE: &str = "huge-";
/// Filename prefix: the request's work is announced (an `upload.expired` committed before
/// `observe`), then `observe` takes this many milliseconds (`announced-3000-x`).
pub const ANNOUNCED: &str = "announced-";
/// Filename prefix: the request's work is announced, then `observe` aborts the process, as
/// an out-of-memory kill ends it (`crashing-x`).
pub const CRASHING: &str = "crashing";
/// Filename prefix: the handler panics.
pub const PANIC: &str = "panic";
/// Filename prefix: the key is finished after this request (see `Processor::is_finished`).
pub const FINISH: &str = "finish";
/// Filename prefix: the handler emits an `upload.completed`, a type it does not declare.
pub const UNDECLARED: &str = "undeclared";

/// The number after `prefix` in a filename like `slow-1500-x`.
fn number_after(filename: &str, prefix: &str) -> Option<u64> {
    filename
        .strip_prefix(prefix)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// How many requests a key has seen; proves state survives restarts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counter {
    /// Requests handled for this key.
    pub requests: u32,
    /// Set by a `finish` request.
    #[serde(default)]
    pub finished: bool,
}

/// The test processor. `calls` counts handler invocations per event id, across restarts
/// within one test process.
#[derive(Clone)]
pub struct TestProcessor {
    /// Handler invocations per event id.
    pub calls: Arc<Mutex<HashMap<String, u32>>>,
    /// The catalogue processor whose topics it runs on.
    pub name: &'static str,
    /// What it declares it handles and emits, when a test sets it (see `declaring`).
    declares: Option<(&'static [&'static str], &'static [&'static str])>,
}

impl Default for TestProcessor {
    fn default() -> Self {
        TestProcessor::named("upload")
    }
}

impl TestProcessor {
    /// A test processor on the topics of catalogue processor `name`.
    pub fn named(name: &'static str) -> TestProcessor {
        TestProcessor {
            calls: Arc::default(),
            name,
            declares: None,
        }
    }

    /// The same processor declaring that it handles and emits these types.
    pub fn declaring(
        self,
        handles: &'static [&'static str],
        emits: &'static [&'static str],
    ) -> TestProcessor {
        TestProcessor {
            declares: Some((handles, emits)),
            ..self
        }
    }
}

impl Decider for TestProcessor {
    type State = Counter;
    type Observation = ();
    type Effect = TestEffect;

    fn name(&self) -> &'static str {
        self.name
    }

    /// As `upload` it handles requests; under any other entry nothing (a test sends that
    /// processor only records its runtime must refuse before any handler).
    fn handles(&self) -> &'static [&'static str] {
        if let Some((handles, _)) = self.declares {
            handles
        } else if self.name == "upload" {
            &[UploadRequested::TYPE]
        } else {
            &[]
        }
    }

    fn emits(&self) -> &'static [&'static str] {
        if let Some((_, emits)) = self.declares {
            emits
        } else if self.name == "upload" {
            &[UploadUrlGenerated::TYPE, UploadExpired::TYPE]
        } else {
            &[]
        }
    }

    fn announce(&self, _: &Counter, input: Input<'_>, ctx: &Context) -> Vec<Outgoing> {
        let Input::Record(incoming) = input else {
            return Vec::new();
        };
        match incoming.decode::<UploadRequested>() {
            Ok(request)
                if request.filename.starts_with(ANNOUNCED)
                    || request.filename.starts_with(CRASHING) =>
            {
                let started = UploadExpired {
                    metadata: ctx.metadata(),
                    object_key: format!("uploads/{}/source", incoming.key),
                    expired_at: ctx.now_ms,
                };
                vec![Outgoing::new(&incoming.key, &started)]
            }
            _ => Vec::new(),
        }
    }

    fn decide(
        &self,
        state: &Counter,
        input: Input<'_>,
        _: (),
        ctx: &Context,
    ) -> Result<Decision<TestEffect>, HandlerError> {
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
                if request.filename.starts_with(PANIC) {
                    panic!("a bug in the handler");
                }
                if request.filename.starts_with(UNDECLARED) {
                    let completed = UploadCompleted {
                        metadata: ctx.metadata(),
                        object_key: format!("uploads/{}/source", incoming.key),
                        size_bytes: 1,
                        content_type: request.content_type,
                        etag: None,
                        options: None,
                    };
                    return Ok(Decision::emit(vec![Outgoing::new(
                        &incoming.key,
                        &completed,
                    )]));
                }
                let mut upload_url = format!("http://example.invalid/{}", state.requests + 1);
                if let Some(bytes) = number_after(&request.filename, HUGE) {
                    upload_url.push_str(&"x".repeat(bytes as usize));
                }
                let url = UploadUrlGenerated {
                    metadata: ctx.metadata(),
                    object_key: format!("uploads/{}/source", incoming.key),
                    upload_url,
                    content_type: request.content_type,
                    expires_at: ctx.now_ms + 2_000,
                    sealed_upload_url: None,
                    sealed_owner_token: None,
                    owner_token_sha256: None,
                };
                let mut decision = Decision::emit(vec![Outgoing::new(&incoming.key, &url)]);
                if let Some(ms) = number_after(&request.filename, SLOW_IO) {
                    decision.effects.push(TestEffect::Sleep(ms));
                }
                if request.filename.starts_with(WITH_TIMER) {
                    let after = number_after(&request.filename, "timer-").unwrap_or(2_000);
                    decision.schedule.push(ctx.timer(
                        "expiry",
                        ctx.now_ms + after as i64,
                        &incoming.key,
                    ));
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
        if let Fact::Consumed(incoming) = fact {
            state.requests += 1;
            if let Ok(request) = incoming.decode::<UploadRequested>() {
                state.finished |= request.filename.starts_with(FINISH);
            }
        }
        state
    }

    fn is_finished(&self, state: &Counter) -> bool {
        state.finished
    }
}

impl Processor for TestProcessor {
    type Decider = TestProcessor;

    fn decider(&self) -> &TestProcessor {
        self
    }

    async fn observe(
        &self,
        _: &Counter,
        input: Input<'_>,
        _: &Context,
    ) -> Result<(), HandlerError> {
        if let Input::Record(incoming) = input {
            let request: UploadRequested = incoming.decode()?;
            if request.filename.starts_with(CRASHING) {
                std::process::abort();
            }
            let slow = number_after(&request.filename, SLOW)
                .or_else(|| number_after(&request.filename, SLOW_IO))
                .or_else(|| number_after(&request.filename, ANNOUNCED));
            if let Some(ms) = slow {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
        }
        Ok(())
    }

    async fn effect(&self, effect: &TestEffect) -> Result<(), HandlerError> {
        match effect {
            TestEffect::Sleep(ms) => {
                tokio::time::sleep(std::time::Duration::from_millis(*ms)).await
            }
        }
        Ok(())
    }
}

/// The test processor's write outside Kafka: only time passing, to test its bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestEffect {
    /// Takes this many milliseconds.
    Sleep(u64),
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
        reply_key: None,
        tenant_token: None,
        options: None,
    }
}
