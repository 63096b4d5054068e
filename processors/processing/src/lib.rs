//! The Processing context: three processors of the same shape (`config`, pure `decide`,
//! the I/O in `service`, tests).
//!
//! - [`validation`]: on `upload.completed`, probes the audio against the limits, and on a pass
//!   plans the chunks and issues one `chunk.process` command per chunk.
//! - [`chunk_worker`]: the consumer group on the chunk commands; transcribes one chunk.
//! - [`job_aggregator`]: deadlines per chunk; re-issues late chunks, fails them past a limit.
//!
//! [`chunking`] holds the chunk planners validation plans with; [`squeeze`] how a chunk worker
//! leaves the silence of its chunk out of what whisper hears.

pub mod chunk_worker;
pub mod chunking;
pub mod job_aggregator;
pub mod squeeze;
pub mod validation;
