//! Support for echo's integration tests: each test gets its own topic prefix on the real
//! local stack (started by `echoctl dev up`), so tests never see each other's records.

pub mod endpoints;
pub mod mkv;
pub mod mp4;
pub mod partition;
pub mod pipeline;
pub mod probe;
pub mod running;
pub mod stack;
pub mod test_processor;
pub mod wav;

pub use probe::{read_topic, records_of, wait_for, Isolation, Seen};
pub use stack::TestEnv;
