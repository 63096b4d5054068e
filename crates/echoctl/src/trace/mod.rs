//! One resource's chain of events across every context: read from the partitions its keys
//! map to, drawn as the tree of who caused whom, and judged against the target flow
//! (`topics/topics.toml`): ready, rejected, or where it stopped and why.

pub mod chain;
pub mod evidence;
pub mod read;
pub mod render;
pub mod verdict;
