//! The `.avsc` files under `avro/`, the record table and `topics/topics.toml` must agree, and
//! the Rust types generated from avro/ must write and read what the schemas say; every test
//! here fails when one of them drifts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{from_value, to_value, Schema};
use echo_catalog::avsc::{self, AvscFile};
use echo_catalog::events::{self, *};
use echo_catalog::{Catalogue, EventMetadata, Record, RecordInfo, TopicKind};
use serde_json::Value;

fn avro_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../avro")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("valid JSON")
}

fn parse(info: &RecordInfo) -> Schema {
    info.schema()
        .unwrap_or_else(|e| panic!("{}: {e:#}", info.type_name))
}

/// Every named type is defined in one file of avro/: a type several records use has a file of
/// its own and the records name it, rather than each carrying a copy.
#[test]
fn every_named_type_is_defined_once() {
    fn definitions(v: &Value, found: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if matches!(
                    map.get("type").and_then(Value::as_str),
                    Some("record" | "enum" | "fixed")
                ) {
                    found.push(format!(
                        "{}.{}",
                        map["namespace"].as_str().unwrap_or("?"),
                        map["name"].as_str().unwrap_or("?")
                    ));
                }
                map.values().for_each(|x| definitions(x, found));
            }
            Value::Array(items) => items.iter().for_each(|x| definitions(x, found)),
            _ => {}
        }
    }
    let mut defined_in: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in avsc::read_dir(&avro_dir()).unwrap() {
        let mut found = Vec::new();
        definitions(&json(&file.text), &mut found);
        for name in found {
            defined_in
                .entry(name)
                .or_default()
                .push(format!("{}/{}", file.context, file.stem));
        }
    }
    let twice: Vec<_> = defined_in.iter().filter(|(_, f)| f.len() > 1).collect();
    assert!(twice.is_empty(), "defined in several files: {twice:?}");
    assert_eq!(
        defined_in["echo.common.EventMetadata"],
        ["common/EventMetadata"]
    );
}

/// What is registered is self-contained: each shared type defined at its first use and named
/// after it, so any Avro library reads it without the other files.
#[test]
fn a_shared_type_is_defined_at_its_first_use() {
    let file = |context: &str, stem: &str, text: &str| AvscFile {
        context: context.into(),
        stem: stem.into(),
        text: text.into(),
    };
    let files = [
        file(
            "common",
            "Point",
            r#"{"type": "record", "name": "Point", "namespace": "t.common",
                "fields": [{"name": "x", "type": "int"}]}"#,
        ),
        file(
            "line",
            "line.drawn",
            r#"{"type": "record", "name": "LineDrawn", "namespace": "t.line", "fields": [
                {"name": "from", "type": "t.common.Point"},
                {"name": "to", "type": ["null", "t.common.Point"], "default": null},
                {"name": "via", "type": {"type": "array", "items": "t.common.Point"}}]}"#,
        ),
    ];
    let shared = avsc::shared_types(&files).unwrap();
    let text = avsc::self_contained(&files[1], &shared).unwrap();
    let record = json(&text);
    assert_eq!(record["fields"][0]["type"]["name"], "Point");
    assert_eq!(record["fields"][1]["type"][1], "t.common.Point");
    assert_eq!(record["fields"][2]["type"]["items"], "t.common.Point");
    Schema::parse_str(&text).expect("self-contained");
    // The record file alone does not parse: the inlining is what makes it readable.
    assert!(Schema::parse_str(&files[1].text).is_err());

    // A shared type's file is named after the type it defines.
    let misnamed = file("common", "Coordinate", &files[0].text);
    let err = avsc::shared_types(&[misnamed]).unwrap_err();
    assert!(err.0.contains("named after it"), "{err}");
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

    let all = avsc::read_dir(&avro_dir()).unwrap();
    let shared = avsc::shared_types(&all).unwrap();
    let mut files = BTreeSet::new();
    for file in all.iter().filter(|f| !f.is_shared_type()) {
        let path = format!("{}/{}.avsc", file.context, file.stem);
        let info =
            events::info(&file.stem).unwrap_or_else(|| panic!("{path} is not in the record table"));
        assert_eq!(info.context, file.context, "{path} is in the wrong folder");
        // The compiled-in schema is the file's current one (a stale build would differ).
        assert_eq!(
            avsc::self_contained(file, &shared).unwrap(),
            info.avsc,
            "{path}"
        );
        files.insert(file.stem.clone());
    }
    let table: BTreeSet<_> = events::all()
        .iter()
        .map(|i| i.type_name.to_owned())
        .collect();
    assert_eq!(files, table);
}

/// Every record names `echo.common.EventMetadata` as its first field, and is registered with
/// the one definition of avro/common.
#[test]
fn metadata_is_the_same_everywhere() {
    let reference =
        json(&std::fs::read_to_string(avro_dir().join("common/EventMetadata.avsc")).unwrap());
    for file in avsc::read_dir(&avro_dir()).unwrap() {
        if file.is_shared_type() {
            continue;
        }
        let first = &json(&file.text)["fields"][0];
        assert_eq!(
            first["name"], "metadata",
            "{}: the first field is not metadata",
            file.stem
        );
        assert_eq!(first["type"], "echo.common.EventMetadata", "{}", file.stem);
        let registered = json(events::info(&file.stem).unwrap().avsc);
        assert_eq!(registered["fields"][0]["type"], reference, "{}", file.stem);
    }
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
        tenant_token: None,
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
            owner_token: None,
        },
        seen,
    );
    round_trip(
        UploadFinalize {
            metadata: metadata(1),
            etag: Some("\"abc\"".into()),
            owner_token: None,
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
            sealed_owner_token: None,
            owner_token_sha256: None,
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
        UploadRequested {
            metadata: metadata(3),
            filename: "talk.ogg".into(),
            content_type: "audio/ogg".into(),
            declared_size_bytes: 5_000_000,
            reply_key: None,
            tenant_token: Some("acme.bWFj".into()),
            options: None,
        },
        seen,
    );
    round_trip(
        QuotaReserve {
            metadata: metadata(3),
            tenant: "acme".into(),
            declared_size_bytes: 5_000_000,
        },
        seen,
    );
    round_trip(
        QuotaReserved {
            metadata: metadata(3),
            tenant: "acme".into(),
            reserved_bytes: 5_000_000,
        },
        seen,
    );
    round_trip(
        QuotaRefused {
            metadata: metadata(3),
            tenant: "acme".into(),
            limit: QuotaLimit::StoredBytes,
            message: "tenant acme: 50 GiB stored".into(),
        },
        seen,
    );
    round_trip(
        ResourceQuotaReleased {
            metadata: metadata(3),
            tenant: "acme".into(),
            job: true,
            stored_bytes: false,
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

/// The schema of the named type `name` (`TranscriptFormat`), as some record registers it.
fn named(name: &str) -> Schema {
    events::all()
        .iter()
        .find_map(|info| {
            let schema = parse(info);
            let resolved = apache_avro::schema::ResolvedSchema::try_from(&schema).unwrap();
            let found = resolved
                .get_names()
                .iter()
                .find(|(n, _)| n.name() == name)
                .map(|(_, s)| (*s).clone());
            found
        })
        .unwrap_or_else(|| panic!("no record uses {name}"))
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
    fn check<T: serde::Serialize>(variants: &[T]) {
        let name = std::any::type_name::<T>().rsplit("::").next().unwrap();
        let schema = named(name);
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
        U::UnknownTenant,
        U::QuotaRequestsPerMinute,
        U::QuotaJobsInFlight,
        U::QuotaStoredBytes,
    ]);
    check(&[
        QuotaLimit::RequestsPerMinute,
        QuotaLimit::JobsInFlight,
        QuotaLimit::StoredBytes,
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
        V::TimedOut,
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
