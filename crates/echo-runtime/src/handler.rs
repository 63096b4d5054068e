//! The contract between a processor and the runtime: the Decider pattern.
//!
//! A [`Decider`]'s `decide(state, input) -> decision` and `evolve(state, fact) -> state` are
//! pure; a [`Processor`] adds the `observe` step that reads what a decision needs (an S3 HEAD,
//! a pre-signed URL) and the `effect` step that writes what a decision asks for outside Kafka
//! (a report file), so that `decide` stays pure. Transactions, dedup, state, timers, retries
//! and the DLQ are the runtime's job, written once.

use std::cell::Cell;
use std::future::Future;

use echo_catalog::record::EventMetadata;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::dependency::Unavailable;
use crate::envelope::{Incoming, Outgoing};

/// Why a handler could not handle an input; decides between retry and DLQ.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Might work later (a dependency is down): goes through the retry tiers.
    #[error("transient: {0}")]
    Transient(String),
    /// Will never work (bad input): goes to the DLQ at once.
    #[error("permanent: {0}")]
    Permanent(String),
    /// The sender may not do this to the key (a command without the resource's owner token):
    /// goes to the DLQ at once, apart from bad input, and the key's state is not touched.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
}

/// A deadline a handler asked for; kept in the key's state so it survives restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    /// Name, unique per key: scheduling the same name again moves the deadline.
    pub name: String,
    /// When it fires, milliseconds since the epoch.
    pub due_at_ms: i64,
    /// Anything the handler wants back when it fires.
    pub payload: String,
    /// Metadata of the record that scheduled it, so fired events keep the causal chain.
    pub scheduled_by: EventMetadata,
}

/// What a handler is asked to react to.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A record from one of the processor's source topics.
    Record(&'a Incoming),
    /// A timer of the key that came due.
    Timer(&'a Timer),
}

/// What a handler decided; the runtime carries it out: its effects first, then its outputs,
/// timers and state in one transaction.
#[derive(Debug, Clone)]
pub struct Decision<E = NoEffect> {
    /// Events and commands to publish.
    pub emit: Vec<Outgoing>,
    /// Timers to set (or move) for this key.
    pub schedule: Vec<Timer>,
    /// Names of this key's timers to drop.
    pub cancel: Vec<String>,
    /// Writes outside Kafka (a report file) the processor's `effect` carries out before the
    /// outputs are produced; idempotent, as a retried input asks for them again.
    pub effects: Vec<E>,
}

impl<E> Default for Decision<E> {
    fn default() -> Self {
        Decision {
            emit: Vec::new(),
            schedule: Vec::new(),
            cancel: Vec::new(),
            effects: Vec::new(),
        }
    }
}

impl<E> Decision<E> {
    /// A decision that emits these records.
    pub fn emit(emit: Vec<Outgoing>) -> Decision<E> {
        Decision {
            emit,
            ..Decision::default()
        }
    }
}

/// The effect of a processor that writes nothing outside Kafka: there is none to carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoEffect {}

/// A fact the state evolves on: what the processor consumed and what it emitted.
#[derive(Debug, Clone, Copy)]
pub enum Fact<'a> {
    /// An input record that was handled.
    Consumed(&'a Incoming),
    /// A timer that fired.
    TimerFired(&'a Timer),
    /// An output the processor emitted.
    Emitted(&'a Outgoing),
}

/// What a handler may know besides state and input: the clock and the cause, fixed for one
/// input so `decide` is a deterministic function.
#[derive(Debug)]
pub struct Context {
    /// The processor's name, written as `producer`.
    pub processor: String,
    /// Wall-clock time of the step at hand, so what it emits is stamped when its fact
    /// happened: for `announce`, when handling the input began; for `decide`, when `observe`
    /// (which may run for seconds, e.g. whisper) ended.
    pub now_ms: i64,
    /// Metadata of the input being handled (for a timer: of the record that set it).
    pub cause: EventMetadata,
    /// What output ids are derived from: the input's event id, or a timer's identity.
    id_seed: String,
    issued: Cell<u32>,
}

/// What the ids of a timer's outputs are derived from.
pub fn timer_seed(timer: &Timer) -> String {
    format!(
        "{}/timer/{}/{}",
        timer.scheduled_by.event_id, timer.name, timer.due_at_ms
    )
}

/// Namespace of the deterministic ids echo derives for emitted records.
const EVENT_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5c1d_06a0_4d0e_4b5e_9a3e_ec40_0000_0001);

impl Context {
    /// A context for handling an input caused by `cause`.
    pub fn new(processor: &str, now_ms: i64, cause: EventMetadata, id_seed: &str) -> Context {
        Context {
            processor: processor.to_string(),
            now_ms,
            cause,
            id_seed: id_seed.to_string(),
            issued: Cell::new(0),
        }
    }

    /// The context the runtime gives `processor` for `input` at `now_ms`: a record is its own
    /// cause and seeds ids with its event id; a timer's cause is the record that set it, and
    /// its ids are seeded by that record, the timer's name and its due time (a timer moved to
    /// another time is another firing).
    pub fn for_input(processor: &str, now_ms: i64, input: Input<'_>) -> Context {
        match input {
            Input::Record(record) => Context::new(
                processor,
                now_ms,
                record.metadata.clone(),
                &record.metadata.event_id,
            ),
            Input::Timer(timer) => Context::new(
                processor,
                now_ms,
                timer.scheduled_by.clone(),
                &timer_seed(timer),
            ),
        }
    }

    /// Metadata for the next record this input causes. Its id is derived from the cause and
    /// a counter, so handling the same input again (after an aborted transaction) yields the
    /// same ids, and downstream dedup sees the same events.
    pub fn metadata(&self) -> EventMetadata {
        let n = self.issued.get();
        self.issued.set(n + 1);
        let name = format!("{}/{}/{n}", self.id_seed, self.processor);
        EventMetadata::new(
            uuid::Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes()).to_string(),
            self.cause.correlation_id.clone(),
            self.processor.clone(),
            self.now_ms,
        )
        .with_cause(Some(&self.cause.event_id))
    }

    /// A timer due at `due_at_ms`, remembering this input as its cause.
    pub fn timer(&self, name: &str, due_at_ms: i64, payload: impl Into<String>) -> Timer {
        Timer {
            name: name.to_string(),
            due_at_ms,
            payload: payload.into(),
            scheduled_by: self.cause.clone(),
        }
    }
}

/// The pure half of a processor (the Decider pattern): what it handles and emits, and how it
/// decides and evolves per-key state. Built from configuration alone, so a test steps it
/// through inputs ([`crate::testing`]) without Kafka, S3 or a model.
pub trait Decider: Send + Sync + 'static {
    /// The per-key state; changelogged as JSON.
    type State: Default + Clone + Serialize + DeserializeOwned + Send + 'static;
    /// What the processor's `observe` found out in the world, handed to `decide`.
    type Observation;
    /// A write outside Kafka its decisions ask for ([`NoEffect`] when there is none).
    type Effect: std::fmt::Debug + Send + Sync + 'static;

    /// The processor's name in topics/topics.toml.
    fn name(&self) -> &'static str;

    /// The record types it handles (`Record::TYPE`s). The runtime refuses to start it if its
    /// entry in topics/topics.toml does not list each of them under `handles`, and passes it
    /// records of these types only (its source topics carry others).
    fn handles(&self) -> &'static [&'static str];

    /// The record types it emits. The runtime refuses to start it if its entry does not list
    /// each of them under `emits`, and refuses to publish any other type (the input that
    /// caused it goes to the DLQ).
    fn emits(&self) -> &'static [&'static str];

    /// Records saying that work on `input` begins (a chunk's `chunk.processing.started`):
    /// the runtime publishes and commits them on their own before `observe` runs, so the
    /// chain shows work while it runs, not only once it is over. They are not facts the state
    /// evolves on: work cut short by a crash is announced again (with the same ids, which
    /// consumers deduplicate) and done again. The default announces nothing.
    fn announce(&self, _state: &Self::State, _input: Input<'_>, _ctx: &Context) -> Vec<Outgoing> {
        Vec::new()
    }

    /// Decides what to emit, which timers to set and what to write outside Kafka.
    fn decide(
        &self,
        state: &Self::State,
        input: Input<'_>,
        observed: Self::Observation,
        ctx: &Context,
    ) -> Result<Decision<Self::Effect>, HandlerError>;

    /// Folds one fact into the state.
    fn evolve(&self, state: Self::State, fact: Fact<'_>) -> Self::State;

    /// Whether a key in `state` has reached its end: nothing it could still receive would
    /// change what it does. The runtime deletes such a key (and tombstones its changelog
    /// record) once no timer of it is pending and the retention grace period has passed, so
    /// state does not grow with every resource ever seen. The default keeps every key.
    fn is_finished(&self, _state: &Self::State) -> bool {
        false
    }

    /// Work a key holds back that no topic shows yet (a job's chunks waiting for dispatch):
    /// summed over the owned keys into `echo_backlog`, so that autoscaling sees work that is
    /// not consumer lag. The default holds none back.
    fn backlog(_state: &Self::State) -> usize
    where
        Self: Sized,
    {
        0
    }

    /// How long a finished key is kept before it retires, in ms, where that may be sooner
    /// than `runtime.retire_after_ms` (the topics' retention, so that dedup sees any replay):
    /// for a key whose `retired` residue already refuses whatever could replay into it, or
    /// that never started anything (a refused request), so that state does not grow with what
    /// clients merely ask for. The runtime never keeps a key longer than its own setting.
    /// The default: the runtime's setting.
    fn retire_after_ms(&self, _state: &Self::State) -> Option<i64> {
        None
    }

    /// What of a finished key must outlive its retirement, kept as the key's whole state
    /// (without dedup memory or timers) instead of deleting it: for facts that must hold for
    /// ever, such as "this resource id was used". The default keeps nothing.
    fn retired(&self, _state: &Self::State) -> Option<Self::State> {
        None
    }
}

/// A stream processor: its [`Decider`], plus the I/O a decision needs.
pub trait Processor: Send + Sync + 'static {
    /// Its pure half.
    type Decider: Decider;

    /// The decider the runtime steps every input through.
    fn decider(&self) -> &Self::Decider;

    /// Reads what a decision on `input` needs from the world (an S3 HEAD, a pre-signed URL,
    /// a whisper run); only reads, so running it again after a crash changes nothing.
    fn observe(
        &self,
        state: &StateOf<Self>,
        input: Input<'_>,
        ctx: &Context,
    ) -> impl Future<Output = Result<ObservationOf<Self>, HandlerError>>;

    /// Carries out one effect its decider asked for, after `decide` and before the decision's
    /// outputs are produced. Idempotent: an input whose transaction aborts is decided again
    /// and asks for the same effect. A failure is the input's (transient: it is retried).
    fn effect(&self, effect: &EffectOf<Self>) -> impl Future<Output = Result<(), HandlerError>>;

    /// Whether the infrastructure `observe` and `effect` use (the object store) answers at
    /// all, asked after one of them failed transiently: if it does not, the failure is the
    /// infrastructure's, and the runtime waits it out instead of failing the input
    /// ([`crate::dependency`]). Answers within a few seconds; the default has nothing to ask.
    fn probe(&self) -> impl Future<Output = Result<(), Unavailable>> {
        async { Ok(()) }
    }
}

/// A processor whose decisions need nothing from outside Kafka: its `observe` reads nothing
/// and its decider asks for no effect, so every verdict comes from its records and timers.
#[derive(Debug, Clone)]
pub struct Pure<D>(pub D);

impl<D> Processor for Pure<D>
where
    D: Decider<Observation = (), Effect = NoEffect> + Send + Sync + 'static,
{
    type Decider = D;

    fn decider(&self) -> &D {
        &self.0
    }

    async fn observe(&self, _: &D::State, _: Input<'_>, _: &Context) -> Result<(), HandlerError> {
        Ok(())
    }

    async fn effect(&self, effect: &NoEffect) -> Result<(), HandlerError> {
        match *effect {}
    }
}

/// The per-key state of processor `P`.
pub type StateOf<P> = <<P as Processor>::Decider as Decider>::State;

/// A write outside Kafka processor `P`'s decisions ask for.
pub type EffectOf<P> = <<P as Processor>::Decider as Decider>::Effect;

/// What processor `P`'s `observe` hands to its `decide`.
pub type ObservationOf<P> = <<P as Processor>::Decider as Decider>::Observation;

/// The state after a decided input: `state` evolved over the input's `fact`, then over every
/// output in the order it is published.
pub fn evolved<D: Decider + ?Sized>(
    decider: &D,
    state: D::State,
    fact: Fact<'_>,
    emitted: &[Outgoing],
) -> D::State {
    emitted
        .iter()
        .fold(decider.evolve(state, fact), |state, out| {
            decider.evolve(state, Fact::Emitted(out))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause() -> EventMetadata {
        EventMetadata::new("e1", "r1", "client", 1)
    }

    #[test]
    fn metadata_ids_are_deterministic_per_cause_and_distinct_per_output() {
        let a = Context::new("upload", 5, cause(), "e1");
        let b = Context::new("upload", 5, cause(), "e1");
        let (a1, a2) = (a.metadata(), a.metadata());
        let (b1, b2) = (b.metadata(), b.metadata());
        assert_eq!(a1, b1);
        assert_eq!(a2, b2);
        assert_ne!(a1.event_id, a2.event_id);
        assert_eq!(a1.causation_id.as_deref(), Some("e1"));
        assert_eq!(a1.correlation_id, "r1");
    }
}
