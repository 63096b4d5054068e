//! One module per subcommand: argument parsing next to what it executes.

pub mod dev;
pub mod dlq;
pub mod model;
pub mod processors;
pub mod resources;
pub mod run;
pub mod schemas;
pub mod status;
pub mod submit;
pub mod tenant;
pub mod topics;
pub mod trace;
pub mod transcribe;
