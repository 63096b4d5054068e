//! Speech side of echo: everything needed to turn an audio file into text.
//!
//! * [`model`]: reproducible preparation of the Whisper model (pinned PyPI
//!   wheel → ggml, checked by sha256).
//! * [`audio`]: probing and decoding audio files to 16 kHz mono `f32`.
//! * [`transcriber`]: whisper.cpp transcription of 16 kHz mono samples.
//! * [`vad`]: voice-activity detection: where in the audio someone speaks.
//! * [`blas`]: OpenBLAS kernels that fit the CPU (whisper.cpp's large products run there).
//! * [`llamafile`]: whether ggml's tiled kernels (the other products) are compiled in.
//!
//! Where models and caches live is the caller's choice (`data_dir` in echo's configuration).

#![warn(missing_docs)]

pub mod audio;
pub mod blas;
pub mod llamafile;
pub mod model;
pub mod mp4_tables;
pub mod transcriber;
pub mod vad;
