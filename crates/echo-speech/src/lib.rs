//! Speech side of echo: everything needed to turn an audio file into text.
//!
//! * [`model`]: reproducible preparation of the Whisper model (pinned PyPI
//!   wheel → ggml, checked by sha256).
//! * [`audio`]: probing and decoding audio files to 16 kHz mono `f32`.
//! * [`transcriber`]: whisper.cpp transcription of 16 kHz mono samples.
//!
//! [`default_data_dir`] says where models and caches live unless configured.

#![warn(missing_docs)]

pub mod audio;
mod data_dir;
pub mod model;
pub mod transcriber;

pub use data_dir::{default_data_dir, DATA_DIR_ENV};
