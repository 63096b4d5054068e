//! Work announced before it is done: what a processor's `announce` returns for an input is
//! published and committed, with whatever the open transaction already holds, before
//! `observe` runs; the input itself (its offset, its outputs, its state) goes into the next
//! transaction. A crash while the work runs leaves the announcement and re-delivers the input;
//! the key's state, committed with the announcement, says it was made, so the input is not
//! announced again. It also counts the lives of the processor that began the work: a restarted
//! one that finds the work begun commits the count again before it begins, and one that finds
//! it begun `runtime.poison_after_failures` times quarantines the input instead (each of those
//! lives ended while doing it: out of memory, an abort), so no input can crash a processor in
//! a loop.

use super::pipeline::ApplyError;
use super::Driver;
use crate::envelope::Outgoing;
use crate::handler::{Decider, HandlerError, Processor, StateOf};
use crate::state::KeyState;

impl<P: Processor> Driver<P> {
    /// Publishes `records` (announcing work on the input `event_id` of `key` on `partition`,
    /// whose state is `key_state`; none when it was announced in an earlier life), commits
    /// them with the open transaction and the key's state marked as announced and the work
    /// as begun for the `began`th time, and opens the next transaction for the work itself.
    pub(super) fn announce(
        &mut self,
        partition: i32,
        key: &str,
        key_state: &KeyState<StateOf<P>>,
        event_id: &str,
        records: &[Outgoing],
        began: u32,
    ) -> Result<(), ApplyError> {
        let mut marked = key_state.clone();
        marked.announced = Some(event_id.to_string());
        marked.work_began = began;
        self.store.put(partition, key, marked);
        let encoded = records
            .iter()
            .map(|out| self.encode(out))
            .collect::<Result<Vec<_>, _>>()?;
        for out in &encoded {
            self.produce(out)?;
        }
        // The partition's offset (where its state was last committed, before this input)
        // goes with the announcement, so an instance that lost the partition cannot commit it.
        self.open.touched.insert(partition);
        let open = std::mem::take(&mut self.open);
        self.finish(open)?;
        // What the committed transaction changed is the state to fall back to from now on.
        self.store.commit();
        self.announcements += 1;
        self.begun
            .lock()
            .expect("begun")
            .insert(event_id.to_string());
        self.begin()?;
        Ok(())
    }
}

/// A panic in `announce` (pure, so it would panic again) is the input's permanent failure.
pub(super) fn announced<D: Decider>(
    decider: &D,
    state: &D::State,
    input: crate::handler::Input<'_>,
    ctx: &crate::handler::Context,
) -> Result<Vec<Outgoing>, HandlerError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decider.announce(state, input, ctx)
    }))
    .map_err(|panic| HandlerError::Permanent(super::pipeline::panicked("announce", panic)))
}
