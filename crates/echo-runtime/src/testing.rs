//! Stepping a [`Decider`] through inputs exactly as the runtime does, for decider tests: the
//! same context (clock, cause, id seed), announcements published before the decision, the
//! state evolved over the input and then every output, timers set, moved, cancelled and fired.
//! No Kafka, no I/O: what `observe` would have found is the test's to give, and the effects a
//! decision asks for are in it to look at.

use crate::envelope::Incoming;
use crate::handler::{
    evolved, Context, Decider, Decision, EffectOf, Fact, HandlerError, Input, Processor, StateOf,
    Timer,
};

/// Handles `input` on a key in `state` at `now_ms`, given what `observe` found: announce,
/// decide, then evolve over the input and every decided output (an announcement is no fact).
/// Returns everything published for the input, in order (the announcement, then the decided
/// outputs) with the decision's timers to set and cancel, and the key's state afterwards. A
/// refused input changes nothing, as in the runtime (it goes to a retry tier or the DLQ).
/// As in the runtime, a record of a type the decider does not handle is skipped (nothing
/// decided, nothing changed), and an output of a type it does not emit refuses the input.
pub fn step<D: Decider>(
    decider: &D,
    state: &D::State,
    input: Input<'_>,
    observed: D::Observation,
    now_ms: i64,
) -> Result<(Decision<D::Effect>, D::State), HandlerError> {
    if let Input::Record(record) = input {
        if !decider.handles().contains(&record.type_name) {
            return Ok((Decision::default(), state.clone()));
        }
    }
    let ctx = Context::for_input(decider.name(), now_ms, input);
    let mut published = decider.announce(state, input, &ctx);
    let decision = decider.decide(state, input, observed, &ctx)?;
    if let Some(out) = published
        .iter()
        .chain(&decision.emit)
        .find(|out| !decider.emits().contains(&out.type_name))
    {
        return Err(HandlerError::Permanent(format!(
            "processor {} may not emit {}",
            decider.name(),
            out.type_name
        )));
    }
    let fact = match input {
        Input::Record(record) => Fact::Consumed(record),
        Input::Timer(timer) => Fact::TimerFired(timer),
    };
    let state = evolved(decider, state.clone(), fact, &decision.emit);
    published.extend(decision.emit);
    let decision = Decision {
        emit: published,
        ..decision
    };
    Ok((decision, state))
}

/// Fails unless `decider` declares exactly what its entry in `topics/topics.toml` lists: the
/// runtime refuses to start code that declares more, and a type the entry lists but the code
/// does not declare would be documented (EVENTS.md, AsyncAPI) yet never handled or emitted.
pub fn assert_declared_as_catalogued<D: Decider>(decider: &D) {
    let catalogue = echo_catalog::Catalogue::load().expect("topics/topics.toml loads");
    let entry = catalogue
        .processor(decider.name())
        .unwrap_or_else(|e| panic!("{e:#}"));
    let sorted = |types: &[&str]| {
        let mut v: Vec<String> = types.iter().map(|t| t.to_string()).collect();
        v.sort();
        v
    };
    let listed = |types: &[String]| sorted(&types.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        sorted(decider.handles()),
        listed(&entry.handles),
        "what processor {} handles",
        decider.name()
    );
    assert_eq!(
        sorted(decider.emits()),
        listed(&entry.emits),
        "what processor {} emits",
        decider.name()
    );
}

/// Handles `input` as the runtime does with a whole processor: its `observe`, the step, then
/// its effects (for tests of what a processor reads and writes, against real services).
pub async fn handle<P: Processor>(
    processor: &P,
    state: &StateOf<P>,
    input: Input<'_>,
    now_ms: i64,
) -> Result<(Decision<EffectOf<P>>, StateOf<P>), HandlerError> {
    let decider = processor.decider();
    let ctx = Context::for_input(decider.name(), now_ms, input);
    let observed = processor.observe(state, input, &ctx).await?;
    let (decision, state) = step(decider, state, input, observed, now_ms)?;
    for effect in &decision.effects {
        processor.effect(effect).await?;
    }
    Ok((decision, state))
}

/// One key of a processor, with its state and pending timers, fed inputs one at a time.
#[derive(Debug)]
pub struct Harness<D: Decider> {
    /// The processor's pure half.
    pub decider: D,
    /// The key's state.
    pub state: D::State,
    /// The key's pending timers, in the order they were set.
    pub timers: Vec<Timer>,
}

impl<D: Decider> Harness<D> {
    /// A key `decider` has never seen.
    pub fn new(decider: D) -> Harness<D> {
        Harness {
            decider,
            state: D::State::default(),
            timers: Vec::new(),
        }
    }

    /// Handles a record at `now_ms`; see [`step`].
    pub fn record(
        &mut self,
        input: &Incoming,
        observed: D::Observation,
        now_ms: i64,
    ) -> Result<Decision<D::Effect>, HandlerError> {
        self.apply(Input::Record(input), observed, now_ms)
    }

    /// Fires the pending timer `name` at its due time, as the runtime does: it is removed
    /// from the key's timers, then handled. Panics when no such timer is pending.
    pub fn fire(
        &mut self,
        name: &str,
        observed: D::Observation,
    ) -> Result<Decision<D::Effect>, HandlerError> {
        let at = self
            .timers
            .iter()
            .position(|t| t.name == name)
            .unwrap_or_else(|| panic!("no timer {name} is pending: {:?}", self.timers));
        let timer = self.timers.remove(at);
        self.fire_timer(&timer, observed)
    }

    /// Handles `timer` at its due time, whether or not it is pending (a timer of an older
    /// version of the processor, one the key no longer holds).
    pub fn fire_timer(
        &mut self,
        timer: &Timer,
        observed: D::Observation,
    ) -> Result<Decision<D::Effect>, HandlerError> {
        self.apply(Input::Timer(timer), observed, timer.due_at_ms)
    }

    /// The pending timer `name`.
    pub fn timer(&self, name: &str) -> Option<&Timer> {
        self.timers.iter().find(|t| t.name == name)
    }

    fn apply(
        &mut self,
        input: Input<'_>,
        observed: D::Observation,
        now_ms: i64,
    ) -> Result<Decision<D::Effect>, HandlerError> {
        let (decision, state) = step(&self.decider, &self.state, input, observed, now_ms)?;
        self.state = state;
        self.timers.retain(|t| !decision.cancel.contains(&t.name));
        for timer in &decision.schedule {
            self.timers.retain(|t| t.name != timer.name);
            self.timers.push(timer.clone());
        }
        Ok(decision)
    }
}

/// The types of what a decision publishes, in order.
pub fn types<E>(decision: &Decision<E>) -> Vec<&'static str> {
    decision.emit.iter().map(|o| o.type_name).collect()
}

#[cfg(test)]
mod tests {
    use echo_catalog::events::{UploadExpired, UploadFinalize};
    use echo_catalog::record::EventMetadata;

    use super::*;
    use crate::envelope::Outgoing;

    /// Announces, emits two expiries and sets a timer per finalize; logs every fact it
    /// evolves on, so the order the runtime folds them in shows.
    struct Recorder;

    fn expired(ctx: &Context) -> Outgoing {
        let record = UploadExpired {
            metadata: ctx.metadata(),
            object_key: "k".into(),
            expired_at: ctx.now_ms,
        };
        Outgoing::new("r1", &record)
    }

    impl Decider for Recorder {
        type State = Vec<String>;
        type Observation = bool;
        type Effect = crate::NoEffect;

        fn name(&self) -> &'static str {
            "upload"
        }

        fn handles(&self) -> &'static [&'static str] {
            &["upload.finalize"]
        }

        fn emits(&self) -> &'static [&'static str] {
            &["upload.expired"]
        }

        fn announce(&self, _: &Vec<String>, _: Input<'_>, ctx: &Context) -> Vec<Outgoing> {
            vec![expired(ctx)]
        }

        fn decide(
            &self,
            _: &Vec<String>,
            input: Input<'_>,
            accept: bool,
            ctx: &Context,
        ) -> Result<Decision, HandlerError> {
            if !accept {
                return Err(HandlerError::Permanent("refused".into()));
            }
            let mut decision = Decision::emit(vec![expired(ctx), expired(ctx)]);
            if let Input::Record(_) = input {
                decision.schedule.push(ctx.timer("t", ctx.now_ms + 10, ""));
            }
            Ok(decision)
        }

        fn evolve(&self, mut state: Vec<String>, fact: Fact<'_>) -> Vec<String> {
            state.push(match fact {
                Fact::Consumed(r) => format!("consumed {}", r.metadata.event_id),
                Fact::TimerFired(t) => format!("fired {}@{}", t.name, t.due_at_ms),
                Fact::Emitted(o) => format!("emitted {}", o.metadata.event_id),
            });
            state
        }
    }

    fn finalize() -> Incoming {
        let record = UploadFinalize {
            metadata: EventMetadata::new("f1", "r1", "client", 1),
            etag: None,
            owner_token: None,
        };
        Incoming::from_record("r1", &record, "echo.upload.commands")
    }

    #[test]
    fn a_step_publishes_the_announcement_first_and_folds_the_input_then_each_output() {
        let input = finalize();
        let (decision, state) =
            step(&Recorder, &Vec::new(), Input::Record(&input), true, 5).unwrap();
        let ids: Vec<&str> = decision
            .emit
            .iter()
            .map(|o| o.metadata.event_id.as_str())
            .collect();
        assert_eq!(ids.len(), 3);
        // The ids the runtime derives: the context of a record seeded by its event id.
        let ctx = Context::for_input("upload", 5, Input::Record(&input));
        let expected: Vec<String> = (0..3).map(|_| ctx.metadata().event_id).collect();
        assert_eq!(ids, expected);
        assert_eq!(
            state,
            [
                "consumed f1".to_string(),
                format!("emitted {}", ids[1]),
                format!("emitted {}", ids[2]),
            ],
            "the announcement is no fact"
        );
        let refused = step(&Recorder, &state, Input::Record(&input), false, 6);
        assert!(refused.is_err());
    }

    #[test]
    fn a_harness_keeps_timers_and_fires_them_at_their_due_time() {
        let mut h = Harness::new(Recorder);
        h.record(&finalize(), true, 100).unwrap();
        assert_eq!(h.timer("t").map(|t| t.due_at_ms), Some(110));
        h.fire("t", true).unwrap();
        assert!(h.timers.is_empty());
        assert_eq!(h.state[3], "fired t@110");
    }
}
