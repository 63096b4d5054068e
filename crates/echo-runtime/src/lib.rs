//! echo's stream-processing runtime, written once for every processor.
//!
//! A processor is a pure handler ([`handler::Processor`]) plus its entry in
//! `topics/topics.toml`; [`driver::run`] does the rest: `read_committed` consumption, one
//! Kafka transaction per batch (outputs, state changelog, reroutes and consumer offsets),
//! dedup by event id, durable timers, retry tiers and the DLQ, graceful shutdown.

pub mod codec;
pub mod config;
pub mod dead_letter;
pub mod decoded_size;
pub mod dependency;
pub mod driver;
pub mod endpoints;
pub mod envelope;
pub mod handler;
pub mod headers;
pub mod health;
pub mod metrics;
pub mod prelude;
pub mod publisher;
pub mod registration;
pub mod replay_guard;
pub mod retry;
pub mod shutdown;
pub mod spans;
pub mod state;
pub mod testing;

pub use config::EchoConfig;
pub use dependency::Unavailable;
pub use driver::{run, RunOptions};
pub use envelope::{Incoming, Outgoing};
pub use handler::{
    Context, Decider, Decision, Fact, HandlerError, Input, NoEffect, Processor, Pure, Timer,
};
pub use registration::{Instances, Registration};
pub use shutdown::Shutdown;

pub mod admin;
pub mod operations;
pub mod registry;
pub mod telemetry;
pub mod topology;
