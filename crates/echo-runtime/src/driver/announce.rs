//! Work announced before it is done: what a processor's `announce` returns for an input is
//! published and committed, with whatever the open transaction already holds, before
//! `observe` runs; the input itself (its offset, its outputs, its state) goes into the next
//! transaction. A crash while the work runs leaves the announcement and re-delivers the input.

use super::pipeline::ApplyError;
use super::Driver;
use crate::envelope::Outgoing;
use crate::handler::{Decider, HandlerError, Processor};

impl<P: Processor> Driver<P> {
    /// Publishes `records` (announcing work on an input of `partition`), commits them with
    /// the open transaction, and opens the next one for the work itself.
    pub(super) fn announce(
        &mut self,
        partition: i32,
        records: &[Outgoing],
    ) -> Result<(), ApplyError> {
        if records.is_empty() {
            return Ok(());
        }
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
        self.finish(open.offsets, &open.touched)?;
        // What the committed transaction changed is the state to fall back to from now on.
        self.store.commit();
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
