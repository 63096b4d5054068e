//! What every processor's `decide.rs` and `observe.rs` use, in one import:
//! `use echo_runtime::prelude::*;`.

pub use crate::config::EchoConfig;
pub use crate::dependency::Unavailable;
pub use crate::envelope::{Incoming, Outgoing};
pub use crate::handler::{
    Context, Decider, Decision, Fact, HandlerError, Input, NoEffect, Processor, Pure, Timer,
};
pub use echo_catalog::record::Record;
