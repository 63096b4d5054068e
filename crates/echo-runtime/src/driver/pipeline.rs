//! One record through the processor: decode → check it belongs here → dedup → hold it
//! behind its key's parked record → observe and decide → apply (evolve the state, produce
//! the outputs) or reroute it to a retry tier or the DLQ. And the key's due work: timers,
//! the drain of held records, retirement.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use anyhow::anyhow;
use apache_avro::types::Value;
use echo_catalog::events;
use echo_catalog::record::EventMetadata;
use echo_catalog::topics::dlq_topic;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::BaseRecord;
use tracing::{debug, error, info_span, warn};

use super::announce::announced;
use super::now_ms;
use super::txn_error::TxnError;
use super::Driver;
use crate::codec::{DecodeError, EncodeError};
use crate::config::EchoConfig;
use crate::dead_letter::{self, capped_message, dead_letter, MAX_RECORD_BYTES};
use crate::dependency::{Unavailable, SCHEMA_REGISTRY};
use crate::envelope::{metadata_of, Incoming, Outgoing, SourcePosition};
use crate::handler::{
    evolved, timer_seed, Context, Decider, Decision, EffectOf, Fact, HandlerError, Input,
    Processor, StateOf, Timer,
};
use crate::headers::{self, echo, HeaderList};
use crate::metrics::{metrics, RerouteLabels, TypeLabels};
use crate::retry::{reroute, ErrorClass, Failure, KEY_MISMATCH};
use crate::spans::{resource_trace_id, span_id_of, RecordSpan, TraceParent};
use crate::state::{encode_changelog, DueWork, HeldRecord, KeyState};
use opentelemetry::KeyValue;

/// The longest a probe of a dependency may take; a dependency slower than that to answer
/// whether it is there is waited out like one that is not.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A record as the pipeline sees it: just read, or held in its key's state and handled now.
pub(super) struct RecordIn<'a> {
    /// Real name of the topic it was read from.
    pub topic: &'a str,
    /// Partition (the same number in every co-partitioned topic and the state).
    pub partition: i32,
    /// Offset it was read at.
    pub offset: i64,
    /// Its key.
    pub key: Option<&'a [u8]>,
    /// Its value.
    pub value: Option<&'a [u8]>,
    /// Its headers.
    pub headers: HeaderList,
    /// Where it was first read, for a record that was held in its key's state.
    pub held_from: Option<&'a SourcePosition>,
}

impl<'a> RecordIn<'a> {
    /// A record just read from a source topic or a retry tier.
    pub fn of(msg: &'a OwnedMessage) -> RecordIn<'a> {
        RecordIn {
            topic: msg.topic(),
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key(),
            value: msg.payload(),
            headers: HeaderList::from_kafka(msg.headers()),
            held_from: None,
        }
    }

    /// A record that waited in its key's state.
    pub(super) fn held(record: &'a HeldRecord) -> RecordIn<'a> {
        RecordIn {
            topic: &record.topic,
            partition: record.source.partition,
            offset: record.source.offset,
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: record.header_list(),
            held_from: Some(&record.source),
        }
    }

    /// The record, to wait in its key's state.
    fn to_held(&self, source: &SourcePosition) -> HeldRecord {
        HeldRecord {
            topic: self.topic.to_string(),
            source: source.clone(),
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.map(<[u8]>::to_vec),
            headers: self.headers.0.clone(),
        }
    }
}

/// Why a decision could not be carried out.
pub(super) enum ApplyError {
    /// The decision cannot be written (an output too large or not encodable, a state too
    /// large): the input fails with this error.
    Refused(HandlerError),
    /// The transaction failed.
    Txn(TxnError),
}

impl From<TxnError> for ApplyError {
    fn from(e: TxnError) -> ApplyError {
        ApplyError::Txn(e)
    }
}

/// An output encoded and checked, ready to produce.
pub(super) struct Encoded {
    topic: String,
    key: String,
    /// The partition its topic's key rule places it on (`echo_catalog::keys`).
    partition: i32,
    bytes: Vec<u8>,
    headers: HeaderList,
}

impl<P: Processor> Driver<P> {
    /// Handles one record inside the open transaction.
    pub(super) fn handle_record(&mut self, rec: &RecordIn<'_>) -> Result<(), TxnError> {
        let (source, attempt) = self.source_of(rec);
        let from_retry = self.retry_tiers.contains_key(rec.topic);
        let decoded = match self.handle.block_on(self.codec.decode(rec.value)) {
            Ok(d) => d,
            Err(DecodeError::RegistryUnavailable(e)) => return Err(self.registry_trouble(e)),
            Err(e) => {
                let failure = Failure::new(ErrorClass::Undecodable, e.to_string());
                return self.dead_end(rec, "unknown", &failure, attempt, &source);
            }
        };
        let type_name = decoded.info.type_name;
        let carried = self
            .catalogue
            .topic(&source.topic)
            .is_ok_and(|t| t.carries.iter().any(|c| c == type_name));
        if !carried {
            let message = format!("{type_name} does not belong on {}", source.topic);
            let failure = Failure::new(ErrorClass::WrongTopic, message);
            return self.dead_end(rec, type_name, &failure, attempt, &source);
        }
        let Some(metadata) = metadata_of(&decoded.value) else {
            let failure = Failure::new(ErrorClass::Undecodable, "record has no readable metadata");
            return self.dead_end(rec, type_name, &failure, attempt, &source);
        };
        // State is kept by the record key, handlers act on what the record names: the two
        // must be one, or a record could read and change another resource's state.
        let checked = self.checked_key(
            &source.topic,
            rec.key,
            rec.partition,
            &metadata,
            &decoded.value,
        );
        let key = match checked {
            Ok(key) => key,
            Err(message) => {
                let failure = Failure::new(ErrorClass::KeyMismatch, message);
                return self.dead_end(rec, type_name, &failure, attempt, &source);
            }
        };
        // The source topics carry types of other consumers too: the processor sees only what
        // it declares it handles.
        if !self.processor.decider().handles().contains(&type_name) {
            // Back from a retry tier (parked by a version that handled the type): the records
            // held behind it may follow.
            if from_retry {
                self.unpark(rec.partition, &key, Some(&metadata.event_id));
            }
            self.record_done(type_name, "skipped");
            return Ok(());
        }
        self.span = Some(self.record_span(rec, type_name, &metadata));
        let span = info_span!("handle", processor = %self.spec.name, event_type = type_name,
            correlation_id = %metadata.correlation_id, event_id = %metadata.event_id);
        let _entered = span.enter();
        let partition = rec.partition;
        let mut key_state = self.store.get(partition, &key);
        if key_state.has_seen(&metadata.event_id) {
            debug!("duplicate event skipped");
            self.record_done(type_name, "duplicate");
            return Ok(());
        }
        let behind_parked = key_state.parked.is_some() || !key_state.waiting.is_empty();
        if !from_retry && rec.held_from.is_none() && behind_parked {
            self.record_done(type_name, "held");
            return self.hold_behind(rec, &source, partition, &key, key_state);
        }
        // The key's parked record is back from its retry tier: whatever happens to it now,
        // the records behind it may follow.
        let was_parked = from_retry && key_state.parked.as_deref() == Some(&metadata.event_id);
        if was_parked {
            key_state.parked = None;
        }
        let incoming = Incoming {
            type_name,
            key: key.clone(),
            metadata: metadata.clone(),
            value: decoded.value,
            source: source.clone(),
            attempt,
        };
        let input = Input::Record(&incoming);
        let mut ctx = Context::for_input(&self.spec.name, now_ms(), input);
        let started = std::time::Instant::now();
        // Announced before a crash or a retry: the announcement stands, and is not repeated.
        let announced_before = key_state.announced.take().as_ref() == Some(&metadata.event_id);
        let began = std::mem::take(&mut key_state.work_began);
        // Begun in an earlier life of the processor, which ended before the work did.
        let relived = announced_before
            && !self
                .begun
                .lock()
                .expect("begun")
                .contains(&metadata.event_id);
        if relived && began >= self.config.runtime.poison_after_failures {
            self.store.put(partition, &key, key_state);
            let message = format!(
                "its work began {began} times and the processor died each time before it \
                 ended (out of memory, an abort, a kill): quarantined"
            );
            error!(event_id = %metadata.event_id, began, "{message}");
            let failure = Failure::new(ErrorClass::Poison, message);
            return self.dead_end(rec, type_name, &failure, attempt, &source);
        }
        // Announced work runs in a transaction of its own: whatever is open is committed with
        // the announcement (or, for work announced before, with the mark alone), so no
        // transaction waits on the work and its budget is the announced work's.
        let handled = announced(self.processor.decider(), &key_state.state, input, &ctx)
            .map_err(ApplyError::Refused)
            .and_then(|records| {
                let (records, began) = match (announced_before, relived) {
                    (true, false) => (Vec::new(), began),
                    (true, true) => (Vec::new(), began + 1),
                    (false, _) if records.is_empty() => {
                        return Ok(IoBudget::of_input(&self.config))
                    }
                    (false, _) => (records, 1),
                };
                let event_id = &metadata.event_id;
                self.announce(partition, &key, &key_state, event_id, &records, began)?;
                Ok(IoBudget::of_announced_work(&self.config))
            })
            .and_then(|budget| {
                self.decide(&key_state, input, &mut ctx, budget)
                    .map_err(ApplyError::Refused)
            })
            .and_then(|decided| {
                let fact = Fact::Consumed(&incoming);
                let id = Some(metadata.event_id.as_str());
                self.apply(partition, &key, key_state, fact, decided, id)
            });
        let m = metrics();
        m.handler_seconds
            .get_or_create(&TypeLabels {
                processor: self.spec.name.clone(),
                r#type: type_name.to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
        let failure = match handled {
            Ok(()) => {
                self.open.ended.push(metadata.event_id.clone());
                self.record_done(type_name, "handled");
                return Ok(());
            }
            Err(ApplyError::Txn(e)) => return Err(e),
            Err(ApplyError::Refused(e)) => e,
        };
        self.unless_infrastructure_down(&failure)?;
        warn!(error = %failure, attempt, "handler failed");
        let retried = self.reroute(rec, &failure.into(), attempt, &source)?;
        self.record_done(type_name, if retried { "retried" } else { "dead_lettered" });
        let mut key_state = self.store.get(partition, &key);
        let ended_here = !retried && key_state.announced.as_ref() == Some(&metadata.event_id);
        if ended_here {
            // Its work ended in the DLQ: a redriven copy is work begun anew.
            key_state.announced = None;
            key_state.work_began = 0;
            self.open.ended.push(metadata.event_id.clone());
        }
        if retried {
            key_state.parked = Some(metadata.event_id.clone());
        } else if was_parked {
            key_state.parked = None;
        } else if !ended_here {
            return Ok(());
        }
        self.store.put(partition, &key, key_state);
        Ok(())
    }

    /// The key a record belongs to: its Kafka key, which must be the one its source topic's
    /// [`KeyRule`](echo_catalog::KeyRule) derives from what the record names (the resource
    /// in `correlation_id`, the chunk in the payload), on the partition the rule places that
    /// key on (state is kept per partition: elsewhere the key would meet an empty state);
    /// otherwise why not, as the DLQ reason.
    fn checked_key(
        &self,
        source_topic: &str,
        key: Option<&[u8]>,
        partition: i32,
        metadata: &EventMetadata,
        value: &Value,
    ) -> Result<String, String> {
        let topic = self
            .catalogue
            .topic(source_topic)
            .map_err(|e| format!("{KEY_MISMATCH}: {e:#}"))?;
        let rule = topic
            .key_rule()
            .map_err(|e| format!("{KEY_MISMATCH}: {e:#}"))?;
        let expected = rule
            .expected(&metadata.correlation_id, value)
            .map_err(|e| format!("{KEY_MISMATCH}: {e}"))?;
        let placed = rule
            .partition(&expected, value, self.catalogue.partitions_of(topic))
            .map_err(|e| format!("{KEY_MISMATCH}: {e}"))?;
        match key.map(std::str::from_utf8) {
            Some(Ok(key)) if key == expected && partition != placed => Err(format!(
                "{KEY_MISMATCH}: the record is on partition {partition}, its key {expected:?} \
                 belongs on partition {placed} ({rule:?}; resource keys are placed by the Java \
                 client's murmur2 partitioner, librdkafka's murmur2_random)"
            )),
            Some(Ok(key)) if key == expected => Ok(expected),
            Some(Ok(key)) => Err(format!(
                "{KEY_MISMATCH}: the record key {:?} is not {expected:?}, the key the record \
                 names ({rule:?})",
                capped_message(key)
            )),
            Some(Err(_)) => Err(format!(
                "{KEY_MISMATCH}: the record key is not UTF-8; it must be {expected:?} ({rule:?})"
            )),
            None => Err(format!(
                "{KEY_MISMATCH}: the record has no key; it must be {expected:?} ({rule:?})"
            )),
        }
    }

    /// Sends a record that cannot be handled at all (undecodable, on the wrong topic, keyed
    /// by something else than it names) to the DLQ. One that came back from a retry tier was
    /// its key's parked record: the records held behind it may follow now.
    fn dead_end(
        &mut self,
        rec: &RecordIn<'_>,
        type_name: &str,
        failure: &Failure,
        attempt: u32,
        source: &SourcePosition,
    ) -> Result<(), TxnError> {
        self.reroute(rec, failure, attempt, source)?;
        self.record_done(type_name, "dead_lettered");
        if self.retry_tiers.contains_key(rec.topic) {
            if let Some(key) = rec.key.and_then(|k| std::str::from_utf8(k).ok()) {
                self.unpark(rec.partition, key, None);
            }
        }
        Ok(())
    }

    /// Clears a key's parked record (it left the retry tiers without being handled): the one
    /// with `event_id`, or whichever it is when the record's id cannot be read.
    pub(super) fn unpark(&mut self, partition: i32, key: &str, event_id: Option<&str>) {
        let mut key_state = self.store.get(partition, key);
        let is_it = |parked: &String| event_id.is_none_or(|id| id == parked);
        if key_state.parked.as_ref().is_some_and(is_it) {
            key_state.parked = None;
            self.store.put(partition, key, key_state);
        }
    }

    /// Keeps a record of a key whose earlier record is in a retry tier in the key's state,
    /// to be handled after it. A key whose backlog would make its state too large to
    /// changelog sends the record to the DLQ instead.
    fn hold_behind(
        &mut self,
        rec: &RecordIn<'_>,
        source: &SourcePosition,
        partition: i32,
        key: &str,
        mut key_state: KeyState<StateOf<P>>,
    ) -> Result<(), TxnError> {
        key_state.waiting.push_back(rec.to_held(source));
        if !changelog_fits(key, &key_state) {
            let message = format!(
                "{} records of key {key} already wait behind one in a retry tier; no room for more",
                key_state.waiting.len() - 1
            );
            let failure = Failure::new(ErrorClass::Permanent, message);
            return self.reroute(rec, &failure, 0, source).map(drop);
        }
        debug!(
            waiting = key_state.waiting.len(),
            "held behind the key's record in a retry tier"
        );
        self.store.put(partition, key, key_state);
        Ok(())
    }

    /// Runs due work of a key.
    pub(super) fn run_due(
        &mut self,
        partition: i32,
        key: &str,
        work: &DueWork,
    ) -> Result<(), TxnError> {
        match work {
            DueWork::Timer(name) => {
                // Looked up again: a record of this transaction may have moved or dropped it.
                let timer = self.store.get(partition, key).timers.get(name).cloned();
                match timer {
                    Some(timer) if timer.due_at_ms <= now_ms() => {
                        self.fire_timer(partition, key, timer)
                    }
                    _ => Ok(()),
                }
            }
            DueWork::Drain => self.drain(partition, key),
            DueWork::Retire => {
                let mut ks = self.store.get(partition, key);
                let Some(at) = ks.retire_at_ms.filter(|at| *at <= now_ms()) else {
                    return Ok(());
                };
                let idle = ks.timers.is_empty() && ks.parked.is_none() && ks.waiting.is_empty();
                if idle && self.finished(&ks.state) {
                    debug!(key, retire_at_ms = at, "finished key retired");
                    match self.residue(&ks.state) {
                        Some(state) => self.store.put(
                            partition,
                            key,
                            KeyState {
                                state,
                                ..KeyState::default()
                            },
                        ),
                        None => self.store.remove(partition, key),
                    }
                } else {
                    // Work came back to the key since it finished: it lives on.
                    ks.retire_at_ms = None;
                    self.store.put(partition, key, ks);
                }
                Ok(())
            }
        }
    }

    /// Handles the records held behind a key's parked record, oldest first, until one of them
    /// is parked in turn or the transaction's budget is spent (the rest is due again). While
    /// the replay guard isolates, one record per transaction, so the one that fails is the
    /// one a quarantine of the drain takes out.
    fn drain(&mut self, partition: i32, key: &str) -> Result<(), TxnError> {
        let one = self.guard.isolating();
        loop {
            let mut key_state = self.store.get(partition, key);
            if key_state.parked.is_some() {
                return Ok(());
            }
            let Some(next) = key_state.waiting.pop_front() else {
                return Ok(());
            };
            self.store.put(partition, key, key_state);
            self.handle_record(&RecordIn::held(&next))?;
            if one || self.budget_spent() {
                return Ok(());
            }
        }
    }

    fn fire_timer(&mut self, partition: i32, key: &str, timer: Timer) -> Result<(), TxnError> {
        let mut key_state = self.store.get(partition, key);
        key_state.timers.remove(&timer.name);
        let seed = timer_seed(&timer);
        let mut ctx = Context::for_input(&self.spec.name, now_ms(), Input::Timer(&timer));
        self.span = Some(self.timer_span(&timer, &seed));
        let span = info_span!("timer", processor = %self.spec.name, timer = %timer.name,
            correlation_id = %timer.scheduled_by.correlation_id);
        let _entered = span.enter();
        let budget = IoBudget::of_input(&self.config);
        let failure = match self.decide(&key_state, Input::Timer(&timer), &mut ctx, budget) {
            Ok(decided) => {
                let fact = Fact::TimerFired(&timer);
                match self.apply(partition, key, key_state.clone(), fact, decided, None) {
                    Ok(()) => {
                        self.end_span("handled");
                        return Ok(());
                    }
                    Err(ApplyError::Txn(e)) => return Err(e),
                    Err(ApplyError::Refused(e)) => e,
                }
            }
            Err(e) => e,
        };
        self.unless_infrastructure_down(&failure)?;
        self.end_span("failed");
        match failure {
            HandlerError::Transient(e) => {
                let backoff = self.spec.retry_backoff_ms.first().copied().unwrap_or(1000);
                warn!(error = %e, backoff, "timer handler failed; rescheduled");
                let mut again = timer.clone();
                again.due_at_ms = now_ms() + backoff as i64;
                key_state.timers.insert(again.name.clone(), again);
            }
            HandlerError::Permanent(e) | HandlerError::Unauthorized(e) => {
                error!(error = %e, "timer handler failed permanently; timer dropped");
                let value = serde_json::to_vec(&timer).expect("timers serialize");
                self.dead_letter_due(partition, key, &timer.name, &e, &value)?;
            }
        }
        self.store.put(partition, key, key_state);
        Ok(())
    }

    /// Counts a record's outcome and ends its span.
    fn record_done(&mut self, type_name: &str, outcome: &str) {
        metrics().record(&self.spec.name, type_name, outcome);
        self.end_span(outcome);
    }

    /// Ends the span of what is being handled, if there is one.
    fn end_span(&mut self, outcome: &str) {
        if let Some(span) = self.span.take() {
            self.spans.end(span, outcome);
        }
    }

    /// The span of handling `rec`: in the trace its `traceparent` names (the resource's when
    /// it names none), a child of the span that produced it.
    fn record_span(
        &self,
        rec: &RecordIn<'_>,
        type_name: &str,
        metadata: &EventMetadata,
    ) -> RecordSpan {
        let parent = rec
            .headers
            .get(headers::TRACEPARENT)
            .and_then(TraceParent::parse);
        // Built for every record only when spans leave the process; the ids always are.
        let attributes = if !self.spans.exporting() {
            Vec::new()
        } else {
            vec![
                KeyValue::new("messaging.system", "kafka"),
                KeyValue::new("messaging.operation.type", "process"),
                KeyValue::new("messaging.destination.name", rec.topic.to_string()),
                KeyValue::new(
                    "messaging.destination.partition.id",
                    rec.partition.to_string(),
                ),
                KeyValue::new("messaging.kafka.offset", rec.offset),
                KeyValue::new(
                    "messaging.consumer.group.name",
                    self.config.topic(&format!("echo.{}", self.spec.name)),
                ),
                KeyValue::new("messaging.message.id", metadata.event_id.clone()),
                KeyValue::new("echo.event_type", type_name.to_string()),
                KeyValue::new("echo.resource_id", metadata.correlation_id.clone()),
            ]
        };
        RecordSpan {
            context: TraceParent {
                trace_id: parent.map_or_else(
                    || resource_trace_id(&metadata.correlation_id),
                    |p| p.trace_id,
                ),
                span_id: span_id_of(&self.spec.name, &metadata.event_id),
            },
            parent: parent.map(|p| p.span_id),
            name: format!("process {type_name}"),
            started: std::time::SystemTime::now(),
            attributes,
        }
    }

    /// The span of a timer firing: a child of the span that handled the record that set it.
    fn timer_span(&self, timer: &Timer, seed: &str) -> RecordSpan {
        let cause = &timer.scheduled_by;
        RecordSpan {
            context: TraceParent {
                trace_id: resource_trace_id(&cause.correlation_id),
                span_id: span_id_of(&self.spec.name, seed),
            },
            parent: Some(span_id_of(&self.spec.name, &cause.event_id)),
            name: format!("timer {}", timer.name),
            started: std::time::SystemTime::now(),
            attributes: vec![
                KeyValue::new("echo.timer", timer.name.clone()),
                KeyValue::new("echo.resource_id", cause.correlation_id.clone()),
            ],
        }
    }

    /// Runs `observe` and `decide`, and starts the input's I/O budget (the observe timeout),
    /// which `observe` and then the decision's effects share. A panic is the input's
    /// failure, not the end of the processor: in `decide` (pure, so it would panic again)
    /// a permanent one; in `observe` (I/O, which may not) a transient one. `decide` sees the
    /// time `observe` ended, so what it emits is stamped when its fact happened (after a
    /// chunk's whisper run, not before it).
    fn decide(
        &self,
        key_state: &KeyState<StateOf<P>>,
        input: Input<'_>,
        ctx: &mut Context,
        io: IoBudget,
    ) -> Result<Decided<EffectOf<P>>, HandlerError> {
        let observe = || {
            self.handle.block_on(async {
                tokio::time::timeout_at(
                    io.deadline,
                    self.processor.observe(&key_state.state, input, ctx),
                )
                .await
            })
        };
        let observed = catch_unwind(AssertUnwindSafe(observe))
            .map_err(|panic| HandlerError::Transient(panicked("observe", panic)))?
            .map_err(|_| io.overrun("observe"))??;
        ctx.now_ms = now_ms();
        let ctx = &*ctx;
        let decide = || {
            self.processor
                .decider()
                .decide(&key_state.state, input, observed, ctx)
        };
        let decision = catch_unwind(AssertUnwindSafe(decide))
            .unwrap_or_else(|panic| Err(HandlerError::Permanent(panicked("decide", panic))))?;
        Ok(Decided { decision, io })
    }

    /// Whether a handler's `failure` is its infrastructure's rather than its input's: after
    /// a transient failure, a dependency that does not answer its probe ends the handling
    /// (its span as `waiting`) with [`TxnError::Unavailable`], to be waited out.
    fn unless_infrastructure_down(&mut self, failure: &HandlerError) -> Result<(), TxnError> {
        if !matches!(failure, HandlerError::Transient(_)) {
            return Ok(());
        }
        self.probe(None).map_err(|down| {
            self.end_span("waiting");
            TxnError::Unavailable(down)
        })
    }

    /// What a registry error other than "no such schema" asks of the loop: a registry that
    /// does not answer its probe is waited out; one that answers it but not this record's
    /// request (a 500 or 403 for one id or subject) leaves the record suspect, replayed on
    /// its own and quarantined if it keeps failing, so it cannot hold the processor.
    fn registry_trouble(&self, error: String) -> TxnError {
        match self.probe(Some(SCHEMA_REGISTRY)) {
            Err(down) => TxnError::Unavailable(down),
            Ok(()) => TxnError::Suspect(anyhow!(
                "the schema registry answers, but not for this record: {error}"
            )),
        }
    }

    /// Probes `dependency` (`None`: the processor's own, [`Processor::probe`]), bounded by
    /// [`PROBE_TIMEOUT`] whatever the probe does.
    pub(super) fn probe(&self, dependency: Option<&'static str>) -> Result<(), Unavailable> {
        let answer = self.handle.block_on(async {
            match dependency {
                Some(SCHEMA_REGISTRY) => {
                    tokio::time::timeout(PROBE_TIMEOUT, self.codec.probe()).await
                }
                _ => tokio::time::timeout(PROBE_TIMEOUT, self.processor.probe()).await,
            }
        });
        answer.unwrap_or_else(|_| {
            Err(Unavailable::new(
                dependency.unwrap_or("dependencies"),
                format!("no answer to a probe within {} s", PROBE_TIMEOUT.as_secs()),
            ))
        })
    }

    /// How long a finished key in `state` is kept: the decider's `retire_after_ms`, never
    /// longer than the runtime's setting (a panic in it: the runtime's).
    fn retire_delay(&self, state: &StateOf<P>) -> i64 {
        let runtime = self.config.runtime.retire_after_ms;
        catch_unwind(AssertUnwindSafe(|| {
            self.processor.decider().retire_after_ms(state)
        }))
        .ok()
        .flatten()
        .map_or(runtime, |ms| ms.clamp(0, runtime))
    }

    /// `retired`, a panic in which keeps nothing.
    fn residue(&self, state: &StateOf<P>) -> Option<StateOf<P>> {
        catch_unwind(AssertUnwindSafe(|| self.processor.decider().retired(state))).unwrap_or(None)
    }

    /// `is_finished`, a panic in which counts as not finished (the key is kept).
    fn finished(&self, state: &StateOf<P>) -> bool {
        catch_unwind(AssertUnwindSafe(|| {
            self.processor.decider().is_finished(state)
        }))
        .unwrap_or(false)
    }

    /// Carries out a decision: encodes and checks every output, evolves the state over the
    /// fact and every output, updates timers, dedup memory and retirement, checks the state
    /// still fits a changelog record, and only then produces (inside the open transaction).
    fn apply(
        &mut self,
        partition: i32,
        key: &str,
        mut key_state: KeyState<StateOf<P>>,
        fact: Fact<'_>,
        decided: Decided<EffectOf<P>>,
        processed_id: Option<&str>,
    ) -> Result<(), ApplyError> {
        let Decided { decision, io } = decided;
        let encoded = decision
            .emit
            .iter()
            .map(|out| self.encode(out))
            .collect::<Result<Vec<_>, _>>()?;
        let evolved = catch_unwind(AssertUnwindSafe(|| {
            evolved(
                self.processor.decider(),
                key_state.state,
                fact,
                &decision.emit,
            )
        }));
        let state = evolved.map_err(|panic| {
            ApplyError::Refused(HandlerError::Permanent(panicked("evolve", panic)))
        })?;
        for name in &decision.cancel {
            key_state.timers.remove(name);
        }
        for timer in decision.schedule {
            key_state.timers.insert(timer.name.clone(), timer);
        }
        key_state.state = state;
        if let Some(id) = processed_id {
            key_state.remember(id, self.config.runtime.dedup_window);
        }
        let finished = self.finished(&key_state.state)
            && key_state.timers.is_empty()
            && key_state.parked.is_none()
            && key_state.waiting.is_empty();
        key_state.retire_at_ms = match (finished, key_state.retire_at_ms) {
            (true, Some(at)) => Some(at),
            (true, None) => Some(now_ms() + self.retire_delay(&key_state.state)),
            (false, _) => None,
        };
        if !changelog_fits(key, &key_state) {
            return Err(ApplyError::Refused(HandlerError::Permanent(format!(
                "the state of key {key} would be {} bytes, more than a changelog record may hold",
                encode_changelog(&key_state).len()
            ))));
        }
        self.carry_out(&decision.effects, &io)?;
        for out in &encoded {
            self.produce(out)?;
        }
        self.store.put(partition, key, key_state);
        Ok(())
    }

    /// Carries out a decision's effects (writes outside Kafka) within what is left of the
    /// input's I/O budget, before its outputs are produced: outputs never announce a write
    /// that did not happen. A failure, an overrun or a panic is the input's transient failure;
    /// the effects are idempotent, so the retry asks for and does the same again.
    fn carry_out(&self, effects: &[EffectOf<P>], io: &IoBudget) -> Result<(), ApplyError> {
        for effect in effects {
            let run = || {
                self.handle.block_on(async {
                    tokio::time::timeout_at(io.deadline, self.processor.effect(effect)).await
                })
            };
            catch_unwind(AssertUnwindSafe(run))
                .map_err(|panic| HandlerError::Transient(panicked("effect", panic)))
                .and_then(|done| done.map_err(|_| io.overrun("an effect")))
                .and_then(|done| done)
                .map_err(ApplyError::Refused)?;
        }
        Ok(())
    }

    /// Produces an encoded output inside the open transaction.
    pub(super) fn produce(&self, out: &Encoded) -> Result<(), TxnError> {
        let record = BaseRecord::to(&out.topic)
            .key(&out.key)
            .payload(&out.bytes)
            .headers(out.headers.to_kafka())
            .partition(out.partition);
        self.send(record)
    }

    /// An output in its topic's wire format, or why it cannot be written.
    pub(super) fn encode(&self, out: &Outgoing) -> Result<Encoded, ApplyError> {
        let fatal = |e: anyhow::Error| ApplyError::Txn(TxnError::Fatal(e));
        if !self.processor.decider().emits().contains(&out.type_name) {
            return Err(ApplyError::Refused(HandlerError::Permanent(format!(
                "processor {} may not emit {}: its code and its entry in topics/topics.toml \
                 declare {}",
                self.spec.name,
                out.type_name,
                self.processor.decider().emits().join(", ")
            ))));
        }
        let info = events::info(out.type_name)
            .ok_or_else(|| fatal(anyhow!("{} is not in the catalogue", out.type_name)))?;
        let topic_spec = self.catalogue.topic_of(out.type_name).map_err(fatal)?;
        // What echo writes passes the key check its consumers make.
        let rule = topic_spec.key_rule().map_err(fatal)?;
        match rule.expected(&out.metadata.correlation_id, &out.value) {
            Ok(expected) if expected == out.key => {}
            Ok(expected) => {
                return Err(ApplyError::Refused(HandlerError::Permanent(format!(
                    "output {} is keyed {:?}, its topic's key is {expected:?}",
                    out.type_name, out.key
                ))))
            }
            Err(e) => {
                return Err(ApplyError::Refused(HandlerError::Permanent(format!(
                    "output {}: {e}",
                    out.type_name
                ))))
            }
        }
        let topic = self.config.topic(&topic_spec.name);
        let bytes = self
            .handle
            .block_on(self.codec.encode(&topic, info, out.value.clone()))
            .map_err(|e| {
                let message = format!("encoding {} for {topic}: {e}", out.type_name);
                match e {
                    // Not the input's fault: no output of the type can be written, so the
                    // processor stops instead of dead-lettering every input that emits one.
                    EncodeError::Unregistered(_) => {
                        ApplyError::Txn(TxnError::Fatal(anyhow!(message)))
                    }
                    EncodeError::RegistryUnavailable(e) => {
                        ApplyError::Txn(self.registry_trouble(e))
                    }
                    EncodeError::Invalid(_) => {
                        ApplyError::Refused(HandlerError::Permanent(message))
                    }
                }
            })?;
        let trace = self
            .span
            .as_ref()
            .map_or_else(|| TraceParent::own(&out.metadata), |s| s.context);
        let headers = headers::cloud_event(&out.metadata, out.type_name, &trace);
        if !dead_letter::fits(Some(out.key.as_bytes()), Some(&bytes), &headers) {
            return Err(ApplyError::Refused(HandlerError::Permanent(format!(
                "output {} would be {} bytes, more than the {MAX_RECORD_BYTES} a record may have",
                out.type_name,
                dead_letter::record_bytes(Some(out.key.as_bytes()), Some(&bytes), &headers)
            ))));
        }
        // Placed by the rule its consumers check, which for chunk commands needs the
        // partition count (a job's runs are spread over all of them).
        let partition = rule
            .partition(
                &out.key,
                &out.value,
                self.catalogue.partitions_of(topic_spec),
            )
            .map_err(|e| {
                ApplyError::Refused(HandlerError::Permanent(format!(
                    "output {}: {e}",
                    out.type_name
                )))
            })?;
        Ok(Encoded {
            topic,
            key: out.key.clone(),
            partition,
            bytes,
            headers,
        })
    }

    /// Where a record really comes from, and how often it failed before.
    pub(super) fn source_of(&self, rec: &RecordIn<'_>) -> (SourcePosition, u32) {
        if let Some(source) = rec.held_from {
            return (source.clone(), 0);
        }
        let headers = &rec.headers;
        if self.retry_tiers.contains_key(rec.topic) {
            let source = SourcePosition {
                topic: headers
                    .get(echo::ORIGINAL_TOPIC)
                    .unwrap_or_default()
                    .to_string(),
                partition: parse_or(headers.get(echo::ORIGINAL_PARTITION), rec.partition),
                offset: parse_or(headers.get(echo::ORIGINAL_OFFSET), rec.offset),
            };
            return (source, parse_or(headers.get(echo::ATTEMPT), 0));
        }
        let prefix = &self.config.kafka.topic_prefix;
        let topic = rec.topic.strip_prefix(prefix.as_str()).unwrap_or(rec.topic);
        let source = SourcePosition {
            topic: topic.to_string(),
            partition: rec.partition,
            offset: rec.offset,
        };
        (source, 0)
    }

    /// Sends a failed record to its retry tier (whole) or the DLQ (cut to fit if it must
    /// be); whether it went to a retry tier.
    pub(super) fn reroute(
        &self,
        rec: &RecordIn<'_>,
        failure: &Failure,
        attempt: u32,
        source: &SourcePosition,
    ) -> Result<bool, TxnError> {
        let route_with = |forwardable| {
            reroute(
                &self.spec.name,
                &self.spec.retry_backoff_ms,
                failure,
                attempt,
                source,
                &rec.headers,
                now_ms(),
                forwardable,
            )
        };
        let mut route = route_with(true);
        // A retry tier gets the record whole, with the routing headers: if that is too
        // large, it cannot be retried.
        if route.topic != dlq_topic(&self.spec.name)
            && !dead_letter::fits(rec.key, rec.value, &route.headers)
        {
            route = route_with(false);
        }
        let to_dlq = route.topic == dlq_topic(&self.spec.name);
        metrics()
            .rerouted
            .get_or_create(&RerouteLabels {
                processor: self.spec.name.clone(),
                destination: route.topic.clone(),
                class: failure.class.as_str().to_string(),
            })
            .inc();
        warn!(to = %route.topic, class = failure.class.as_str(), message = %failure.message,
            "record rerouted");
        let topic = self.config.topic(&route.topic);
        let (key, value, headers) = if to_dlq {
            let letter = dead_letter(rec.key, rec.value, route.headers);
            (letter.key, letter.value, letter.headers)
        } else {
            (
                rec.key.map(<[u8]>::to_vec),
                rec.value.map(<[u8]>::to_vec),
                route.headers,
            )
        };
        self.send_raw(
            &topic,
            rec.partition,
            key.as_deref(),
            value.as_deref(),
            &headers,
        )?;
        Ok(!to_dlq)
    }

    /// Writes a dead letter for due work of a key that could not run (a timer: the timer
    /// as JSON is its value), so every dropped piece of work is named somewhere.
    pub(super) fn dead_letter_due(
        &self,
        partition: i32,
        key: &str,
        what: &str,
        reason: &str,
        value: &[u8],
    ) -> Result<(), TxnError> {
        let mut headers = HeaderList::default();
        headers.set(echo::ERROR_CLASS, ErrorClass::Permanent.as_str());
        headers.set(echo::ERROR_MESSAGE, format!("{what}: {reason}"));
        headers.set(
            echo::ORIGINAL_TOPIC,
            echo_catalog::topics::changelog_topic(&self.spec.name),
        );
        headers.set(echo::ORIGINAL_PARTITION, partition);
        headers.set(echo::PROCESSOR, &self.spec.name);
        let letter = dead_letter(Some(key.as_bytes()), Some(value), headers);
        let topic = self.config.topic(&dlq_topic(&self.spec.name));
        self.send_raw(
            &topic,
            partition,
            letter.key.as_deref(),
            letter.value.as_deref(),
            &letter.headers,
        )
    }

    /// Produces bytes as they are (a rerouted record, a dead letter) to `partition` of
    /// `topic`; an absent key or value stays absent.
    fn send_raw(
        &self,
        topic: &str,
        partition: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &HeaderList,
    ) -> Result<(), TxnError> {
        let mut record = BaseRecord::<[u8], [u8]>::to(topic)
            .partition(partition)
            .headers(headers.to_kafka());
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        self.send(record)
    }
}

/// What a caught panic says, for the DLQ.
pub(super) fn panicked(step: &str, panic: Box<dyn std::any::Any + Send>) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    format!("handler panicked in {step}: {what}")
}

/// Whether a key's state can be written to the changelog as one record.
fn changelog_fits<S: serde::Serialize + serde::de::DeserializeOwned>(
    key: &str,
    key_state: &KeyState<S>,
) -> bool {
    let json = encode_changelog(key_state);
    dead_letter::fits(Some(key.as_bytes()), Some(&json), &HeaderList::default())
}

fn parse_or<T: std::str::FromStr>(v: Option<&str>, default: T) -> T {
    v.and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// A decision with the I/O budget its effects must finish within: what is left of the
/// input's after `observe`, so that one input's I/O stays within its budget however it is
/// split between reads and writes.
struct Decided<E> {
    /// What `decide` returned.
    decision: Decision<E>,
    /// The input's I/O budget.
    io: IoBudget,
}

/// How long one input's I/O (`observe` and the effects together) may take, from now.
#[derive(Debug, Clone, Copy)]
struct IoBudget {
    /// When it runs out.
    deadline: tokio::time::Instant,
    /// How long it was.
    length: Duration,
    /// What it is the budget of, for the failure's message.
    of: &'static str,
}

impl IoBudget {
    fn new(length: Duration, of: &'static str) -> IoBudget {
        IoBudget {
            deadline: tokio::time::Instant::now() + length,
            length,
            of,
        }
    }

    /// An input handled inside the open transaction: a quarter of the transaction timeout.
    fn of_input(config: &EchoConfig) -> IoBudget {
        IoBudget::new(
            config.kafka.observe_timeout(),
            "a quarter of the transaction timeout",
        )
    }

    /// Announced work, in a transaction of its own: half the consumer's poll interval.
    fn of_announced_work(config: &EchoConfig) -> IoBudget {
        IoBudget::new(
            config.kafka.announced_work_timeout(),
            "announced work: half the consumer's poll interval",
        )
    }

    /// The transient failure of an input whose I/O outran this budget in `step`.
    fn overrun(&self, step: &str) -> HandlerError {
        HandlerError::Transient(format!(
            "{step} ran past the input's I/O budget of {} ms ({}, for observe and effects \
             together)",
            self.length.as_millis(),
            self.of
        ))
    }
}
