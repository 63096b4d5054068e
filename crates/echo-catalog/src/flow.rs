//! The target flow (`[outcome]` and `[[step]]` in `topics/topics.toml`): what must follow each
//! record of a resource and who brings it about, so a tool can tell where a resource's chain
//! stopped and who it waits for.

use anyhow::{bail, Result};
use serde::Deserialize;

use crate::events;

/// Who brings a step about when it is not a processor.
pub const CLIENT: &str = "client";

/// How a resource's chain can end.
#[derive(Debug, Clone, Deserialize)]
pub struct Outcomes {
    /// The record that says the resource is ready.
    pub ready: String,
    /// Records that end a resource in a refusal.
    pub rejected: Vec<String>,
}

/// One step of the flow: after a record of type `after`, one of `next` must follow.
#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    /// The record type the step starts from.
    pub after: String,
    /// Any of these, later in the same chain, is the step done.
    pub next: Vec<String>,
    /// The processor that must act, or [`CLIENT`].
    pub by: String,
    /// The step waits for every chunk of the job to settle before it can happen, so an open
    /// chunk, not this record, is where such a chain stands.
    #[serde(default)]
    pub after_chunks: bool,
    /// The timer that ends the wait when nothing follows.
    #[serde(default)]
    pub deadline: Option<Deadline>,
}

/// A processor's timer that fires when a step does not happen in time.
#[derive(Debug, Clone, Deserialize)]
pub struct Deadline {
    /// The processor whose state holds the timer.
    pub processor: String,
    /// The timer's name; `{chunk_index}` stands for the chunk's index.
    pub timer: String,
}

impl Deadline {
    /// The timer's name for a record of chunk `chunk` (none: a resource's own record).
    pub fn timer_name(&self, chunk: Option<i32>) -> String {
        match chunk {
            Some(index) => self.timer.replace("{chunk_index}", &index.to_string()),
            None => self.timer.clone(),
        }
    }
}

/// The whole target flow.
#[derive(Debug, Clone)]
pub struct Flow {
    /// How chains end.
    pub outcomes: Outcomes,
    /// Steps in declaration order, which also orders records stamped at the same millisecond.
    pub steps: Vec<Step>,
    /// What a chunk of the job that has no record yet waits for: its dispatch (`[dispatch]`).
    pub dispatch: Option<Step>,
}

impl Flow {
    /// The step that starts from `record_type`; `None` when such a record ends its chain.
    pub fn step_after(&self, record_type: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.after == record_type)
    }

    /// Where `record_type` sorts among records of one chain stamped at the same millisecond:
    /// the position of its step, and after every step for a record that ends a chain.
    pub fn rank(&self, record_type: &str) -> usize {
        self.steps
            .iter()
            .position(|s| s.after == record_type)
            .unwrap_or(self.steps.len())
    }

    /// Checks that every type is in the catalogue and every actor is `client` or one of
    /// `processors`.
    pub(crate) fn validate(&self, processors: &[&str]) -> Result<()> {
        let known = |t: &str| -> Result<()> {
            if events::info(t).is_none() {
                bail!("the flow names {t}, which is not an event or command of the catalogue");
            }
            Ok(())
        };
        known(&self.outcomes.ready)?;
        for t in &self.outcomes.rejected {
            known(t)?;
        }
        if let Some(dispatch) = &self.dispatch {
            known(&dispatch.after)?;
            for t in &dispatch.next {
                known(t)?;
            }
            if !processors.contains(&dispatch.by.as_str()) {
                bail!(
                    "chunks are dispatched by {}, which is no processor",
                    dispatch.by
                );
            }
        }
        for (i, step) in self.steps.iter().enumerate() {
            known(&step.after)?;
            if self.steps[..i].iter().any(|s| s.after == step.after) {
                bail!("the flow has two steps after {}", step.after);
            }
            for t in &step.next {
                known(t)?;
            }
            if step.by != CLIENT && !processors.contains(&step.by.as_str()) {
                bail!(
                    "the step after {} is by {}, which is no processor",
                    step.after,
                    step.by
                );
            }
            if let Some(d) = &step.deadline {
                if !processors.contains(&d.processor.as_str()) {
                    bail!(
                        "the deadline after {} is kept by {}, which is no processor",
                        step.after,
                        d.processor
                    );
                }
            }
        }
        Ok(())
    }
}
