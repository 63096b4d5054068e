//! `echoctl processors`: the processors this binary runs, one per line (`name<TAB>summary`),
//! for people and for scripts (the Kubernetes check).

use std::process::ExitCode;

use crate::processors::PROCESSORS;

/// Prints the registered processors.
pub fn run() -> ExitCode {
    for r in PROCESSORS {
        println!("{}\t{}", r.name, r.summary);
    }
    ExitCode::SUCCESS
}
