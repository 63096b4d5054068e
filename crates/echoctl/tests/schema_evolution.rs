//! Evolving a schema the way a team does, against the real registry and pipeline:
//! `upload.requested` version 2 adds per-upload options (prompt, formats, caption rules) with
//! defaults. `echoctl schemas register` adds it on top of version 1 (BACKWARD compatible) and
//! refuses a change that is not; a client still writing version 1 (its `.avsc` kept here as a
//! fixture) gets its transcript as before, and a client of version 2 gets what it asked for.

use std::path::{Path, PathBuf};
use std::time::Duration;

use echo_catalog::events::{ResourceReady, UploadFinalize, UploadUrlGenerated};
use echo_catalog::record::{EventMetadata, Record};
use echo_catalog::sealed::ReplyKey;
use echo_runtime::driver::now_ms;
use echo_runtime::publisher::Publisher;
use echo_runtime::registry::{self, SubjectStatus};
use echo_storage::S3Service;
use echo_tests::pipeline::{echoctl, speak, submit_with, Pipeline};
use echo_tests::{wait_for, Seen, TestEnv};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_echoctl");

/// `upload.requested` as it was before per-upload options: what an old client was built with.
const V1: &str = include_str!("fixtures/upload.requested.v1.avsc");

/// flite says it; tiny.en writes the name wrong unless the prompt spells it.
const SPOKEN: &str = "Please send the invoice to Xochitl Quetzalcoatl before Tuesday.";
const NAME: &str = "Quetzalcoatl";

fn bin() -> &'static Path {
    Path::new(BIN)
}

/// The registry subject of `upload.requested` in `env`.
fn subject(env: &TestEnv) -> String {
    registry::subjects(&env.config, &env.catalogue)
        .unwrap()
        .into_iter()
        .map(|(subject, _)| subject)
        .find(|s| s.ends_with("-echo.upload.UploadRequested"))
        .unwrap()
}

fn registry_url(env: &TestEnv) -> String {
    env.config.registry.url.trim_end_matches('/').to_string()
}

/// The versions registered under `subject`.
async fn versions(env: &TestEnv, subject: &str) -> Vec<i64> {
    let url = format!("{}/subjects/{subject}/versions", registry_url(env));
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// An environment whose registry holds `upload.requested` as a deployment of the previous
/// release left it (version 1 only), then upgraded with `echoctl schemas register`.
async fn upgraded(name: &str) -> TestEnv {
    let env = TestEnv::new(name).await.unwrap();
    let subject = subject(&env);
    echo_tests::stack::prune(&env.config, |s| s == subject)
        .await
        .unwrap();
    let status =
        registry::register_one(&reqwest::Client::new(), &env.config.registry, &subject, V1)
            .await
            .unwrap();
    assert!(matches!(status, SubjectStatus::Registered(_)), "{status:?}");
    assert_eq!(versions(&env, &subject).await, [1]);

    let (code, out) = schemas(&env, &["check"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        line_of(&out, &subject).contains("would register a new version"),
        "{out}"
    );
    let (code, out) = schemas(&env, &["register"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(line_of(&out, &subject).contains("registered (id"), "{out}");
    assert_eq!(versions(&env, &subject).await, [1, 2]);
    env
}

/// `echoctl schemas ARGS` in `env`: exit code and output.
fn schemas(env: &TestEnv, args: &[&str]) -> (Option<i32>, String) {
    let output = echoctl(bin(), env, &[])
        .arg("schemas")
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

fn line_of<'a>(out: &'a str, subject: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{subject} ")))
        .unwrap_or_else(|| panic!("no line for {subject} in:\n{out}"))
}

/// A copy of avro/ in which `upload.requested` gains `field`.
fn proposed_avro(dir: &Path, field: Value) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../avro");
    let copy = dir.join("avro");
    for context in std::fs::read_dir(&root).unwrap() {
        let context = context.unwrap().path();
        let into = copy.join(context.file_name().unwrap());
        std::fs::create_dir_all(&into).unwrap();
        for file in std::fs::read_dir(&context).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, into.join(file.file_name().unwrap())).unwrap();
        }
    }
    let path = copy.join("upload/upload.requested.avsc");
    let mut schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    schema["fields"].as_array_mut().unwrap().push(field);
    std::fs::write(&path, schema.to_string()).unwrap();
    copy
}

#[tokio::test(flavor = "multi_thread")]
async fn schemas_register_adds_a_compatible_version_and_refuses_an_incompatible_one() {
    let env = upgraded("evolve-registry").await;
    let subject = subject(&env);
    let dir = tempfile::tempdir().unwrap();

    // A new field without a default: records of versions 1 and 2 could not be read with it.
    let breaking = proposed_avro(
        dir.path(),
        serde_json::json!({"name": "speaker_count", "type": "int", "doc": "Speakers."}),
    );
    for action in ["check", "register"] {
        let (code, out) = schemas(&env, &["--avro", breaking.to_str().unwrap(), action]);
        assert_eq!(code, Some(1), "{action}: {out}");
        assert!(line_of(&out, &subject).contains("INCOMPATIBLE"), "{out}");
        assert!(out.contains("1 incompatible"), "{out}");
    }
    assert_eq!(versions(&env, &subject).await, [1, 2], "nothing registered");

    // The same field with a default is a version 3 the registry accepts.
    let dir = tempfile::tempdir().unwrap();
    let compatible = proposed_avro(
        dir.path(),
        serde_json::json!({"name": "speaker_count", "type": "int", "default": 1, "doc": "Speakers."}),
    );
    let (code, out) = schemas(&env, &["--avro", compatible.to_str().unwrap(), "register"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(versions(&env, &subject).await, [1, 2, 3]);
}

/// An `upload.requested` exactly as a client built against version 1 writes it: encoded with
/// the version-1 schema under the id the registry gives that schema, sent by a plain producer.
async fn send_version_1_request(env: &TestEnv, resource: &str, size: u64, reply_key: &ReplyKey) {
    let schema = apache_avro::Schema::parse_str(V1).unwrap();
    let lookup: Value = reqwest::Client::new()
        .post(format!("{}/subjects/{}", registry_url(env), subject(env)))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .json(&serde_json::json!({ "schema": V1 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = u32::try_from(lookup["id"].as_i64().expect("version 1 is registered")).unwrap();

    #[derive(serde::Serialize)]
    struct RequestV1 {
        metadata: EventMetadata,
        filename: String,
        content_type: String,
        declared_size_bytes: i64,
        reply_key: Option<String>,
    }
    let request = RequestV1 {
        metadata: EventMetadata::new(
            uuid::Uuid::new_v4().to_string(),
            resource,
            "old-client",
            now_ms(),
        ),
        filename: "invoice.wav".into(),
        content_type: "audio/wav".into(),
        declared_size_bytes: size as i64,
        reply_key: Some(reply_key.public()),
    };
    let value = apache_avro::to_value(&request)
        .unwrap()
        .resolve(&schema)
        .unwrap();
    let mut framed = vec![0];
    framed.extend_from_slice(&id.to_be_bytes());
    framed.extend(
        apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap(),
    );

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &env.config.kafka.bootstrap_servers)
        // The Java client's placement, which echo checks records against.
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&env.topic("echo.upload.requests"))
                .key(resource)
                .payload(&framed),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// The first record of type `R` about `resource`, waited for.
async fn wait_event<R: Record>(env: &TestEnv, resource: &str) -> R {
    let topic = env.topic(&env.catalogue.topic_of(R::TYPE).unwrap().name);
    let of = |s: &Seen| s.key == resource && s.type_name == Some(R::TYPE);
    let seen = wait_for(&env.config, &topic, Duration::from_secs(180), |seen| {
        seen.iter().any(of)
    })
    .await
    .unwrap();
    let found = seen.into_iter().find(of).unwrap();
    apache_avro::from_value(&found.value.unwrap()).unwrap()
}

/// The text lines of each cue of a WebVTT file.
fn vtt_cues(vtt: &str) -> Vec<Vec<&str>> {
    vtt.split("\n\n")
        .filter(|block| block.contains(" --> "))
        .map(|block| block.lines().skip(1).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_1_client_and_a_version_2_client_each_get_their_transcript() {
    let env = upgraded("evolve-clients").await;
    let dir = tempfile::tempdir().unwrap();
    let wav = speak(dir.path(), "invoice.wav", SPOKEN).unwrap();
    let _pipeline = Pipeline::start(bin(), &env, 1, &[]).unwrap();
    let s3 = S3Service::new(&env.config).unwrap();

    // Version 1: no options. Everything is written, captions by the deployment's rules.
    let resource = uuid::Uuid::new_v4().to_string();
    let size = std::fs::metadata(&wav).unwrap().len();
    let reply_key = ReplyKey::generate();
    send_version_1_request(&env, &resource, size, &reply_key).await;
    let url: UploadUrlGenerated = wait_event(&env, &resource).await;
    let put_url = reply_key
        .open(url.sealed_upload_url.as_deref().expect("a sealed URL"))
        .unwrap();
    let put = reqwest::Client::new()
        .put(put_url)
        .header("Content-Type", "audio/wav")
        .body(std::fs::read(&wav).unwrap())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{:?}", put.text().await);
    let finalize = UploadFinalize {
        metadata: EventMetadata::new(
            uuid::Uuid::new_v4().to_string(),
            resource.as_str(),
            "old-client",
            now_ms(),
        )
        .with_cause(Some(&url.metadata.event_id)),
        etag: None,
        owner_token: Some(
            reply_key
                .open(url.sealed_owner_token.as_deref().expect("an owner token"))
                .unwrap(),
        ),
    };
    Publisher::new(&env.config)
        .unwrap()
        .publish(&resource, &finalize)
        .await
        .unwrap();
    let ready: ResourceReady = wait_event(&env, &resource).await;
    assert_eq!(ready.metadata.schema_version, 2, "written with version 2");
    let artifacts = &ready.artifacts;
    let txt_key = artifacts.txt_key.as_deref().expect("a .txt by default");
    assert!(artifacts.srt_key.is_some() && artifacts.vtt_key.is_some());
    let text = String::from_utf8(s3.get_bytes(txt_key).await.unwrap().unwrap()).unwrap();
    assert!(text.contains("invoice"), "{text}");
    assert!(!text.contains(NAME), "without a prompt: {text}");

    // Version 2, through `echoctl submit`: the prompt spells the name, only the .vtt is
    // written besides report.json, and its cues follow the client's rules.
    let report = submit_with(
        bin(),
        &env,
        &wav,
        &[
            "--prompt",
            "Xochitl Quetzalcoatl",
            "--formats",
            "vtt",
            "--caption-chars",
            "16",
            "--caption-lines",
            "1",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(report["status"], "ready", "{report:#}");
    let transcript = report["transcript"].as_str().unwrap();
    assert!(transcript.contains(NAME), "{transcript}");
    let artifacts = &report["artifacts"];
    assert_eq!(artifacts["txt"], Value::Null, "{report:#}");
    assert_eq!(artifacts["srt"], Value::Null, "{report:#}");
    let resource = report["resource_id"].as_str().unwrap();
    for file in ["transcript.txt", "transcript.srt"] {
        let key = echo_storage::keys::report(resource, file);
        assert_eq!(s3.get_bytes(&key).await.unwrap(), None, "{key} was written");
    }
    let vtt_key = artifacts["vtt"].as_str().unwrap();
    let vtt = String::from_utf8(s3.get_bytes(vtt_key).await.unwrap().unwrap()).unwrap();
    let cues = vtt_cues(&vtt);
    assert!(cues.len() >= 4, "{vtt}");
    for cue in &cues {
        assert_eq!(cue.len(), 1, "one line a cue: {vtt}");
        let line = cue[0];
        assert!(
            line.chars().count() <= 16 || !line.contains(' '),
            "{line:?} is over 16 characters: {vtt}"
        );
    }
}
