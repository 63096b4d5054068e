//! The client examples of other ecosystems (examples/python, examples/typescript) against a
//! running pipeline: each submits a file with its own Kafka client, Avro serializer and
//! registry client, and a downstream consumer of its own reads `resource.ready` and fetches
//! the report; a request echo refuses comes back to the client as `upload.failed`, and audio
//! that fails validation reaches the consumer as `resource.rejected`. The test command
//! installs their packages (`scripts/examples/install.sh`); a test fails, never skips, when
//! they are missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use echo_tests::pipeline::{speak, Pipeline};
use echo_tests::TestEnv;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_echoctl");
const SPOKEN: &str = "Please ask her to bring these things with her from the store.";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// One example client: how to start its two programs.
struct Client {
    name: &'static str,
    /// The program and the arguments before the example's own.
    submit: Vec<String>,
    consume_ready: Vec<String>,
    dir: PathBuf,
}

impl Client {
    fn python() -> Client {
        let dir = examples().join("python");
        let python = dir.join(".venv/bin/python").display().to_string();
        Client {
            name: "python",
            submit: vec![python.clone(), "submit.py".into()],
            consume_ready: vec![python, "consume_ready.py".into()],
            dir,
        }
    }

    fn typescript() -> Client {
        let dir = examples().join("typescript");
        let tsx = dir.join("node_modules/.bin/tsx").display().to_string();
        Client {
            name: "typescript",
            submit: vec![tsx.clone(), "src/submit.ts".into()],
            consume_ready: vec![tsx, "src/consume-ready.ts".into()],
            dir,
        }
    }

    /// Runs one of the client's programs against the test's environment.
    fn run(&self, program: &[String], env: &TestEnv, args: &[&str]) -> (Option<i32>, Value) {
        assert!(
            Path::new(&program[0]).exists(),
            "{} is not installed: run `bash scripts/examples/install.sh` (the test command does)",
            program[0]
        );
        let config = &env.config;
        let output: Output = Command::new(&program[0])
            .args(&program[1..])
            .args(args)
            .args(["--bootstrap-servers", &config.kafka.bootstrap_servers])
            .args(["--registry-url", &config.registry.url])
            .args(["--topic-prefix", &config.kafka.topic_prefix])
            .env("AWS_ACCESS_KEY_ID", &config.s3.access_key)
            .env("AWS_SECRET_ACCESS_KEY", config.s3.secret_key.expose())
            .current_dir(&self.dir)
            .output()
            .expect("starting the example");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "{} {:?} printed no JSON ({e}), exit {:?}\nstdout: {stdout}\nstderr: {}",
                self.name,
                program[1],
                output.status.code(),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output.status.code(), report)
    }

    /// Submits `file` under a fresh resource id; the id, the exit code and the report.
    fn submit(&self, env: &TestEnv, file: &Path, extra: &[&str]) -> (String, Option<i32>, Value) {
        let resource = uuid::Uuid::new_v4().to_string();
        let mut args = vec![file.to_str().unwrap(), "--resource-id", &resource];
        args.extend_from_slice(extra);
        let (code, report) = self.run(&self.submit, env, &args);
        (resource, code, report)
    }

    /// The consumer's report of `resource`'s outcome, read in a group of its own.
    fn outcome(&self, env: &TestEnv, resource: &str) -> (Option<i32>, Value) {
        let group = format!("{}{}-reports", env.config.kafka.topic_prefix, self.name);
        let args = [
            "--resource-id",
            resource,
            "--group",
            &group,
            "--timeout",
            "240",
        ];
        self.run(&self.consume_ready, env, &args)
    }
}

/// Submits speech, a request echo refuses and a file that is not audio through `client`, and
/// checks what its producer and its consumer get back.
fn exercise(client: &Client, env: &TestEnv, dir: &Path) {
    let name = client.name;
    let wav = speak(dir, &format!("{name}.wav"), SPOKEN).unwrap();
    let (resource, code, report) = client.submit(env, &wav, &[]);
    assert_eq!(code, Some(0), "{name} submit: {report:#}");
    assert_eq!(report["status"], "uploaded", "{name}: {report:#}");
    assert_eq!(report["resource_id"], resource.as_str());

    let (code, ready) = client.outcome(env, &resource);
    assert_eq!(code, Some(0), "{name} consumer: {ready:#}");
    assert_eq!(ready["status"], "resource.ready", "{name}: {ready:#}");
    let text = ready["text"].as_str().unwrap().to_lowercase();
    assert!(
        text.contains("bring these things"),
        "{name}: the report's text is {text:?}"
    );
    assert!(
        ready["report"]["segments"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "{name}: {ready:#}"
    );

    // Refused before any URL is issued: the client hears why.
    let (_, code, refused) = client.submit(env, &wav, &["--content-type", "text/plain"]);
    assert_eq!(code, Some(1), "{name}: {refused:#}");
    assert_eq!(refused["status"], "upload_failed", "{name}: {refused:#}");
    assert_eq!(
        refused["reason_code"], "UNSUPPORTED_CONTENT_TYPE",
        "{name}: {refused:#}"
    );

    // Uploaded, but not audio: the consumer hears the rejection.
    let noise = dir.join(format!("{name}-not-audio.wav"));
    std::fs::write(&noise, b"these bytes are no RIFF header".repeat(64)).unwrap();
    let (resource, code, report) = client.submit(env, &noise, &[]);
    assert_eq!(code, Some(0), "{name} submit: {report:#}");
    let (code, rejected) = client.outcome(env, &resource);
    assert_eq!(code, Some(1), "{name} consumer: {rejected:#}");
    assert_eq!(
        rejected["status"], "resource.rejected",
        "{name}: {rejected:#}"
    );
    assert!(
        rejected["reason_code"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{name}: {rejected:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn python_and_typescript_clients_submit_and_consume_through_kafka_and_the_registry() {
    let env = TestEnv::new("clients").await.unwrap();
    let _pipeline = Pipeline::start(Path::new(BIN), &env, 1, &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    exercise(&Client::python(), &env, dir.path());
    exercise(&Client::typescript(), &env, dir.path());
}
