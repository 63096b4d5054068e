//! The `.avsc` files under `avro/`, the Rust types of `echo_catalog::events`, the record table
//! and `topics/topics.toml` must agree; every test here fails when one of them drifts.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{from_value, to_value, AvroSchema, Schema};
use echo_catalog::events::{self, *};
use echo_catalog::{Catalogue, EventMetadata, Record, RecordInfo, TopicKind};
use serde_json::Value;

fn avro_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../avro")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("valid JSON")
}

/// `None` when the two schemas have the same Parsing Canonical Form (what decides whether bytes
/// written with one can be read with the other), else both forms.
fn canonical_drift(avsc: &Schema, derived: &Schema) -> Option<String> {
    let (a, d) = (avsc.canonical_form(), derived.canonical_form());
    (a != d).then(|| difference(&a, &d))
}

/// Where two renderings of a schema first differ, with some context, then both in full.
fn difference(avsc: &str, derived: &str) -> String {
    let (a, d): (Vec<char>, Vec<char>) = (avsc.chars().collect(), derived.chars().collect());
    let at = a
        .iter()
        .zip(&d)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(d.len()));
    let around = |s: &[char]| -> String {
        s[at.saturating_sub(80)..(at + 80).min(s.len())]
            .iter()
            .collect()
    };
    format!(
        "  first difference at char {at}:\n    .avsc:   …{}…\n    derived: …{}…\n  \
         .avsc:   {avsc}\n  derived: {derived}",
        around(&a),
        around(&d)
    )
}

/// The schema as JSON without what the Parsing Canonical Form ignores on purpose but a drift
/// test must not: `doc` (whitespace-normalised, since Rust doc comments wrap), `default`,
/// `aliases`, logical types. Only the custom `x-*` attributes, which the Rust side cannot
/// express, are removed.
fn documented_form(schema: &Schema) -> Value {
    fn normalise(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.retain(|k, _| !k.starts_with("x-"));
                if let Some(Value::String(doc)) = map.get_mut("doc") {
                    *doc = doc.split_whitespace().collect::<Vec<_>>().join(" ");
                }
                map.values_mut().for_each(normalise);
            }
            Value::Array(items) => items.iter_mut().for_each(normalise),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(schema).expect("a schema serialises");
    normalise(&mut v);
    v
}

fn documented_drift(avsc: &Schema, derived: &Schema) -> Option<String> {
    let (a, d) = (documented_form(avsc), documented_form(derived));
    (a != d).then(|| difference(&a.to_string(), &d.to_string()))
}

fn parse(info: &RecordInfo) -> Schema {
    info.schema()
        .unwrap_or_else(|e| panic!("{}: {e:#}", info.type_name))
}

#[test]
fn every_avsc_has_the_canonical_form_of_its_rust_type() {
    let drift: Vec<String> = events::all()
        .iter()
        .filter_map(|info| {
            canonical_drift(&parse(info), &(info.derived_schema)())
                .map(|d| format!("{}:\n{d}", info.type_name))
        })
        .collect();
    assert!(
        drift.is_empty(),
        "avro/ and the Rust types differ:\n{}",
        drift.join("\n")
    );
}

#[test]
fn every_avsc_has_the_docs_and_defaults_of_its_rust_type() {
    let drift: Vec<String> = events::all()
        .iter()
        .filter_map(|info| {
            documented_drift(&parse(info), &(info.derived_schema)())
                .map(|d| format!("{}:\n{d}", info.type_name))
        })
        .collect();
    assert!(
        drift.is_empty(),
        "docs, defaults or logical types differ between avro/ and the Rust doc comments:\n{}",
        drift.join("\n")
    );
}

/// The comparisons above can fail: altered copies of a real `.avsc` are caught.
#[test]
fn drift_is_detected() {
    let info = events::info("upload.requested").unwrap();
    let derived = (info.derived_schema)();
    let altered = |from: &str, to: &str| {
        assert!(info.avsc.contains(from), "{from} is not in the .avsc");
        Schema::parse_str(&info.avsc.replace(from, to)).expect("the altered .avsc still parses")
    };

    let original = parse(info);
    assert!(canonical_drift(&original, &derived).is_none());
    assert!(documented_drift(&original, &derived).is_none());

    // A renamed field, a changed type and a renamed record change the canonical form.
    for (from, to) in [
        (r#""name": "filename""#, r#""name": "file_name""#),
        (
            r#""name": "declared_size_bytes",
      "type": "long""#,
            r#""name": "declared_size_bytes",
      "type": "int""#,
        ),
        (r#""name": "UploadRequested""#, r#""name": "UploadRequest""#),
        (r#""name": "schema_version""#, r#""name": "version""#),
    ] {
        let schema = altered(from, to);
        assert!(
            canonical_drift(&schema, &derived).is_some(),
            "{to} not detected"
        );
        assert!(
            documented_drift(&schema, &derived).is_some(),
            "{to} not detected"
        );
    }

    // A changed doc and a dropped default are invisible to the canonical form, but not to the
    // documented form.
    for (from, to) in [
        (
            "used to name the downloadable",
            "used to label the downloadable",
        ),
        (r#""default": null,"#, ""),
    ] {
        let schema = altered(from, to);
        assert!(
            canonical_drift(&schema, &derived).is_none(),
            "{to} changed the canonical form"
        );
        assert!(
            documented_drift(&schema, &derived).is_some(),
            "{to} not detected"
        );
    }

    // The spec strips logical types from the canonical form; apache-avro leaves
    // `{"type":"long"}` where `"long"` was, so either comparison notices an added one.
    let schema = altered(
        r#""name": "occurred_at",
            "type": "long""#,
        r#""name": "occurred_at",
            "type": {"type": "long", "logicalType": "timestamp-millis"}"#,
    );
    assert!(
        documented_drift(&schema, &derived).is_some(),
        "a logical type not detected"
    );

    // Custom attributes are not drift.
    let schema = altered(
        r#""x-trigger": "A client asks to upload an audio file.""#,
        r#""x-trigger": "something else""#,
    );
    assert!(canonical_drift(&schema, &derived).is_none());
    assert!(documented_drift(&schema, &derived).is_none());
    // The parser keeps them, so a registered schema still carries them.
    let Schema::Record(record) = &schema else {
        panic!("not a record")
    };
    assert_eq!(record.attributes["x-trigger"], "something else");
}

#[test]
fn record_names_follow_the_convention() {
    for info in events::all() {
        let pascal: String = info
            .type_name
            .split('.')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .unwrap()
                    .to_uppercase()
                    .chain(c)
                    .collect::<String>()
            })
            .collect();
        let expected = format!("echo.{}.{pascal}", info.context);
        assert_eq!(info.record_name, expected);
        let avsc_name = parse(info).name().unwrap().fullname(None);
        assert_eq!(avsc_name, expected, "{}", info.type_name);
        let derived_name = (info.derived_schema)().name().unwrap().fullname(None);
        assert_eq!(derived_name, expected, "{}", info.type_name);
    }
}

#[test]
fn lookups() {
    assert_eq!(
        events::info("upload.finalize").unwrap().record_name,
        "echo.upload.UploadFinalize"
    );
    assert_eq!(
        events::by_record_name("echo.processing.ChunkProcess")
            .unwrap()
            .type_name,
        "chunk.process"
    );
    assert!(events::info("upload.requestd").is_none());
    assert!(events::by_record_name("echo.upload.upload.requested").is_none());
    let names: BTreeSet<_> = events::all().iter().map(|i| i.type_name).collect();
    assert_eq!(names.len(), events::all().len(), "a type is listed twice");
    for info in events::all() {
        assert!(events::CONTEXTS.contains(&info.context), "{}", info.context);
    }
}

/// topics.toml, the table and the files under `avro/` name the same types.
#[test]
fn catalogue_table_and_files_agree() {
    let catalogue = Catalogue::load().unwrap();
    let mut carried = BTreeSet::new();
    for topic in &catalogue.topics {
        for ty in &topic.carries {
            carried.insert(ty.as_str());
            let info = events::info(ty)
                .unwrap_or_else(|| panic!("{ty} (carried by {}) has no table row", topic.name));
            assert_eq!(
                info.context, topic.context,
                "{ty} is carried by another context's topic"
            );
            let file = avro_dir().join(info.context).join(format!("{ty}.avsc"));
            assert!(file.is_file(), "{} is missing", file.display());
        }
    }
    for info in events::all() {
        assert!(
            carried.contains(info.type_name),
            "no topic carries {}",
            info.type_name
        );
    }

    let mut files = BTreeSet::new();
    for dir in std::fs::read_dir(avro_dir()).unwrap() {
        let dir = dir.unwrap().path();
        let context = dir.file_name().unwrap().to_str().unwrap().to_owned();
        if !dir.is_dir() || context == "common" {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            let name = file.file_name().unwrap().to_str().unwrap().to_owned();
            let ty = name
                .strip_suffix(".avsc")
                .unwrap_or_else(|| panic!("{} is not an .avsc file", file.display()));
            let info = events::info(ty)
                .unwrap_or_else(|| panic!("{} is not in the record table", file.display()));
            assert_eq!(
                info.context,
                context,
                "{} is in the wrong folder",
                file.display()
            );
            // The compiled-in text is the file's current text (a stale build would differ).
            assert_eq!(
                std::fs::read_to_string(&file).unwrap(),
                info.avsc,
                "{}",
                file.display()
            );
            files.insert(ty.to_owned());
        }
    }
    let table: BTreeSet<_> = events::all()
        .iter()
        .map(|i| i.type_name.to_owned())
        .collect();
    assert_eq!(files, table);
}

/// Every record embeds the same `echo.common.EventMetadata` as its first field, equal to the
/// reference copy and to what `EventMetadata` derives.
#[test]
fn metadata_is_the_same_everywhere() {
    let reference_text =
        std::fs::read_to_string(avro_dir().join("common/EventMetadata.avsc")).unwrap();
    let reference = json(&reference_text);
    for info in events::all() {
        let record = json(info.avsc);
        let first = &record["fields"][0];
        assert_eq!(
            first["name"], "metadata",
            "{}: the first field is not metadata",
            info.type_name
        );
        assert_eq!(
            first["type"], reference,
            "{}: metadata differs from avro/common",
            info.type_name
        );
    }
    let reference = Schema::parse_str(&reference_text).unwrap();
    let derived = EventMetadata::get_schema();
    assert_eq!(canonical_drift(&reference, &derived), None);
    assert_eq!(documented_drift(&reference, &derived), None);
}

/// Every record, field and named type says what it is: a consumer reads the docs in the
/// registry, not in this repository.
#[test]
fn everything_has_a_doc_and_annotations() {
    fn check(v: &Value, path: &str, missing: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                let is_named = matches!(
                    map.get("type").and_then(Value::as_str),
                    Some("record" | "enum")
                );
                let is_field = map.contains_key("name") && !is_named;
                if is_named || is_field {
                    let name = map.get("name").and_then(Value::as_str).unwrap_or("?");
                    let doc = map.get("doc").and_then(Value::as_str).unwrap_or("");
                    if doc.trim().is_empty() {
                        missing.push(format!("{path}/{name}"));
                    }
                }
                for (k, x) in map {
                    check(x, &format!("{path}/{k}"), missing);
                }
            }
            Value::Array(items) => items.iter().for_each(|x| check(x, path, missing)),
            _ => {}
        }
    }
    let mut missing = Vec::new();
    for info in events::all() {
        check(&json(info.avsc), info.type_name, &mut missing);
        info.annotations().unwrap_or_else(|e| panic!("{e:#}"));
    }
    assert!(missing.is_empty(), "no doc: {missing:?}");
}

/// Who writes a type is the catalogue's, and it keeps to the contexts: a processor emits only
/// its own context's types, and only clients write the Upload context's entry topics.
#[test]
fn producers_come_from_the_catalogue_and_keep_to_their_context() {
    let catalogue = Catalogue::load().unwrap();
    for info in events::all() {
        let producers = catalogue.producers_of(info.type_name);
        assert!(!producers.is_empty(), "{} has no producer", info.type_name);
        for name in producers.iter().filter(|n| **n != "client") {
            assert_eq!(
                catalogue.processor(name).unwrap().context,
                info.context,
                "{name} emits {} of another context",
                info.type_name
            );
        }
    }
    for ty in ["upload.requested", "upload.finalize"] {
        assert_eq!(catalogue.producers_of(ty), ["client"]);
    }
}

#[test]
fn commands_are_on_command_topics() {
    let catalogue = Catalogue::load().unwrap();
    for ty in ["upload.finalize", "chunk.process"] {
        assert_eq!(
            catalogue.topic_of(ty).unwrap().kind,
            TopicKind::Commands,
            "{ty}"
        );
    }
}

// ---------------------------------------------------------------- round trips

fn metadata(n: u8) -> EventMetadata {
    EventMetadata::new(
        format!("00000000-0000-7000-8000-0000000000{n:02}"),
        "0190b6c0-0000-7000-8000-000000000001",
        "test",
        1_750_000_000_000 + i64::from(n),
    )
    .with_cause(
        (n > 0)
            .then(|| format!("00000000-0000-7000-8000-0000000000{:02}", n - 1))
            .as_deref(),
    )
}

/// Encodes with the registered (`.avsc`) schema and decodes again, both through
/// `apache_avro::types::Value` (`to_value`, `resolve`, `from_value`) and directly through serde
/// (`write_ser`, `read_deser`); both must give the same bytes and the original record.
fn round_trip<T: Record + PartialEq + Debug>(record: T, seen: &mut BTreeSet<&'static str>) {
    let ty = T::TYPE;
    let info = events::info(ty).unwrap_or_else(|| panic!("{ty} has no table row"));
    assert_eq!(
        T::get_schema().name().unwrap().fullname(None),
        info.record_name
    );
    assert_eq!(
        record.metadata().correlation_id,
        "0190b6c0-0000-7000-8000-000000000001"
    );
    let schema = parse(info);
    let writer = GenericDatumWriter::builder(&schema).build().unwrap();
    let reader = GenericDatumReader::builder(&schema).build().unwrap();

    let value = to_value(&record)
        .and_then(|v| v.resolve(&schema))
        .unwrap_or_else(|e| panic!("{ty}: {e}"));
    let bytes = writer
        .write_value_to_vec(value)
        .unwrap_or_else(|e| panic!("{ty}: {e}"));
    let decoded = reader
        .read_value(&mut bytes.as_slice())
        .unwrap_or_else(|e| panic!("{ty}: {e}"));
    let back: T = from_value(&decoded).unwrap_or_else(|e| panic!("{ty}: {e}"));
    assert_eq!(back, record, "{ty} via Value");

    let direct = writer
        .write_ser_to_vec(&record)
        .unwrap_or_else(|e| panic!("{ty}: {e}"));
    assert_eq!(direct, bytes, "{ty}: serde and Value encodings differ");
    let back: T = reader
        .read_deser(&mut direct.as_slice())
        .unwrap_or_else(|e| panic!("{ty}: {e}"));
    assert_eq!(back, record, "{ty} via serde");
    seen.insert(ty);
}

fn artifacts() -> TranscriptArtifacts {
    TranscriptArtifacts {
        txt_key: Some("r/transcript.txt".into()),
        srt_key: None,
        vtt_key: Some("r/transcript.vtt".into()),
        json_key: "r/transcript.json".into(),
    }
}

fn options() -> TranscriptOptions {
    TranscriptOptions {
        prompt: Some("Aoife and Siobhán discuss Kafka.".into()),
        formats: Some(vec![TranscriptFormat::Vtt, TranscriptFormat::Txt]),
        caption: Some(CaptionRules {
            max_chars_per_line: 32,
            ..CaptionRules::default()
        }),
        speaker_per_channel: false,
    }
}

#[test]
fn every_type_round_trips_through_its_avsc() {
    let seen = &mut BTreeSet::new();
    let job_id = || "job-1".to_owned();
    let key = || "uploads/r/audio.ogg".to_owned();

    let request = UploadRequested {
        metadata: metadata(0),
        filename: "talk.ogg".into(),
        content_type: "audio/ogg".into(),
        declared_size_bytes: 5_000_000,
        reply_key: None,
        options: None,
    };
    round_trip(
        UploadRequested {
            options: Some(options()),
            ..request.clone()
        },
        seen,
    );
    round_trip(request, seen);
    round_trip(
        UploadFinalize {
            metadata: metadata(1),
            etag: None,
        },
        seen,
    );
    round_trip(
        UploadFinalize {
            metadata: metadata(1),
            etag: Some("\"abc\"".into()),
        },
        seen,
    );
    round_trip(
        UploadUrlGenerated {
            metadata: metadata(2),
            object_key: key(),
            upload_url: "https://s3.local/uploads/r/audio.ogg?X-Amz-Signature=x".into(),
            content_type: "audio/ogg".into(),
            expires_at: 1_750_000_900_000,
            sealed_upload_url: None,
        },
        seen,
    );
    round_trip(
        UploadCompleted {
            metadata: metadata(3),
            object_key: key(),
            size_bytes: 5_000_000,
            content_type: "audio/ogg".into(),
            etag: None,
            options: Some(options()),
        },
        seen,
    );
    round_trip(
        UploadFailed {
            metadata: metadata(3),
            reason_code: UploadFailureReason::ContentTypeMismatch,
            message: "stored as video/mp4".into(),
        },
        seen,
    );
    round_trip(
        UploadExpired {
            metadata: metadata(3),
            object_key: key(),
            expired_at: 1_750_000_900_000,
        },
        seen,
    );
    round_trip(
        ValidationStarted {
            metadata: metadata(4),
            object_key: key(),
        },
        seen,
    );
    round_trip(
        ValidationPassed {
            metadata: metadata(5),
            container: "ogg".into(),
            codec: "opus".into(),
            channels: 2,
            sample_rate_hz: 48_000,
            duration_ms: 3_600_000,
        },
        seen,
    );
    round_trip(
        ValidationFailed {
            metadata: metadata(5),
            reason_code: ValidationFailureReason::TooManyChannels,
            message: "8 channels".into(),
        },
        seen,
    );
    round_trip(
        ProcessingJobCreated {
            metadata: metadata(6),
            job_id: job_id(),
            object_key: key(),
            chunk_count: 121,
            chunk_ms: 30_000,
            overlap_ms: 1_000,
            duration_ms: 3_600_000,
            etag: None,
            size_bytes: None,
            chunks: None,
            speech_ms: None,
            options: None,
        },
        seen,
    );
    round_trip(
        ProcessingJobCreated {
            metadata: metadata(6),
            job_id: job_id(),
            object_key: key(),
            chunk_count: 2,
            chunk_ms: 30_000,
            overlap_ms: 1_000,
            duration_ms: 60_000,
            etag: Some("\"abc\"".into()),
            size_bytes: Some(1_920_044),
            chunks: Some(vec![
                ChunkRange {
                    start_ms: 1_200,
                    end_ms: 29_500,
                    channel: None,
                },
                ChunkRange {
                    start_ms: 35_000,
                    end_ms: 52_000,
                    channel: None,
                },
            ]),
            speech_ms: Some(43_100),
            options: Some(TranscriptOptions {
                prompt: None,
                formats: Some(vec![]),
                caption: None,
                speaker_per_channel: false,
            }),
        },
        seen,
    );
    round_trip(
        ChunkProcess {
            metadata: metadata(7),
            job_id: job_id(),
            chunk_index: 120,
            chunk_count: 121,
            object_key: key(),
            start_ms: 3_570_000,
            end_ms: 3_600_000,
            attempt: 2,
            etag: None,
            size_bytes: None,
            prompt: Some("Zoë, Kubernetes".into()),
            channel: None,
        },
        seen,
    );
    round_trip(
        ChunkProcessingStarted {
            metadata: metadata(8),
            job_id: job_id(),
            chunk_index: 0,
            worker: "worker-3".into(),
            attempt: 1,
        },
        seen,
    );
    round_trip(
        ChunkProcessingCompleted {
            metadata: metadata(9),
            job_id: job_id(),
            chunk_index: 0,
            start_ms: 0,
            end_ms: 30_000,
            segments: vec![
                Segment {
                    start_ms: 0,
                    end_ms: 2_500,
                    text: "Hello.".into(),
                    confidence: 0.5,
                    words: vec![Word {
                        start_ms: 40,
                        end_ms: 2_400,
                        text: "Hello.".into(),
                        confidence: 0.5,
                    }],
                    speaker: None,
                },
                Segment {
                    start_ms: 2_500,
                    end_ms: 4_000,
                    text: "Welcome!".into(),
                    confidence: 0.875,
                    words: Vec::new(),
                    speaker: None,
                },
            ],
            language: None,
        },
        seen,
    );
    round_trip(
        ChunkProcessingCompleted {
            metadata: metadata(9),
            job_id: job_id(),
            chunk_index: 1,
            start_ms: 29_000,
            end_ms: 59_000,
            segments: vec![],
            language: None,
        },
        seen,
    );
    round_trip(
        ChunkProcessingFailed {
            metadata: metadata(9),
            job_id: job_id(),
            chunk_index: 3,
            reason: "model error".into(),
            attempt: 1,
        },
        seen,
    );
    round_trip(
        ProcessingTimeout {
            metadata: metadata(9),
            job_id: job_id(),
            chunk_index: 4,
            attempt: 1,
            deadline_ms: 1_750_000_300_000,
        },
        seen,
    );
    round_trip(
        TranscriptionStarted {
            metadata: metadata(10),
            job_id: job_id(),
            chunk_count: 121,
        },
        seen,
    );
    round_trip(
        TranscriptionCompleted {
            metadata: metadata(11),
            job_id: job_id(),
            artifacts: artifacts(),
            word_count: 9_000,
            duration_ms: 3_600_000,
        },
        seen,
    );
    round_trip(
        TranscriptionFailed {
            metadata: metadata(11),
            job_id: job_id(),
            reason: "chunk 4".into(),
        },
        seen,
    );
    round_trip(
        ResourceReady {
            metadata: metadata(12),
            artifacts: artifacts(),
        },
        seen,
    );
    round_trip(
        ResourceRejected {
            metadata: metadata(6),
            reason_code: ValidationFailureReason::Undecodable,
            message: "not audio".into(),
        },
        seen,
    );
    round_trip(
        ResourceTtlReached {
            metadata: metadata(13),
            expires_at: 1_750_604_800_000,
        },
        seen,
    );
    round_trip(
        CleanupInitiated {
            metadata: metadata(14),
            reason: CleanupReason::TtlReached,
            prefix: "uploads/r/".into(),
        },
        seen,
    );
    round_trip(
        CleanupCompleted {
            metadata: metadata(15),
            deleted_objects: 5,
        },
        seen,
    );

    let all: BTreeSet<_> = events::all().iter().map(|i| i.type_name).collect();
    let missing: Vec<_> = all.difference(seen).collect();
    assert!(
        missing.is_empty(),
        "add a round-trip sample for {missing:?}"
    );
}

/// Every enum symbol round-trips, with the spelling of the `.avsc`.
#[test]
fn enum_symbols_match_serde_names() {
    fn symbols_of(schema: &Schema) -> Vec<String> {
        match schema {
            Schema::Enum(e) => e.symbols.clone(),
            other => panic!("not an enum: {other:?}"),
        }
    }
    fn check<T: AvroSchema + serde::Serialize>(variants: &[T]) {
        let schema = T::get_schema();
        let names: Vec<String> = variants
            .iter()
            .map(|v| match to_value(v).unwrap() {
                apache_avro::types::Value::Enum(_, s) | apache_avro::types::Value::String(s) => s,
                other => panic!("a unit variant became {other:?}"),
            })
            .collect();
        assert_eq!(names, symbols_of(&schema));
    }
    use UploadFailureReason as U;
    check(&[
        U::Expired,
        U::ObjectMissing,
        U::SizeMismatch,
        U::TooLarge,
        U::ContentTypeMismatch,
        U::UnsupportedContentType,
        U::InvalidRequest,
    ]);
    use ValidationFailureReason as V;
    check(&[
        V::Undecodable,
        V::UnsupportedCodec,
        V::TooLong,
        V::TooShort,
        V::Empty,
        V::TooManyChannels,
        V::ObjectChanged,
    ]);
    check(&[
        TranscriptFormat::Txt,
        TranscriptFormat::Srt,
        TranscriptFormat::Vtt,
    ]);
    check(&[
        CleanupReason::UploadFailed,
        CleanupReason::Rejected,
        CleanupReason::TtlReached,
    ]);
}
