//! Infrastructure that goes away for a while is waited out, never turned into loss: the
//! object store frozen (SIGSTOP, as a hung server or a partitioned network looks) in the
//! middle of a job, for longer than every retry tier together. The pipeline must pause, say
//! so on `/readyz` and in `echo_dependency_unavailable`, and finish the job once the store
//! answers again, with nothing dead-lettered, and log what it met without naming a local
//! path or a pre-signed URL. And the schema registry frozen when a client starts: the client
//! waits for it as the processors do.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use echo_catalog::topics::dlq_topic;
use echo_tests::endpoints::{free_port, get};
use echo_tests::pipeline::{speak, submit, Pipeline};
use echo_tests::running::signal;
use echo_tests::{read_topic, Isolation, TestEnv};

const BIN: &str = env!("CARGO_BIN_EXE_echoctl");

/// About a minute of speech: a dozen 5-second chunks, so the job is still running (chunks,
/// transcript, report) when the store is frozen right after the upload is verified.
const SPEECH: &str = "The morning train left the station a few minutes late. Most of the \
passengers were reading or looking out of the windows at the fields. A conductor walked \
slowly through the carriages and checked every ticket twice. Outside, the rain had \
stopped and the hills were green and quiet. ";

/// How long the store stays frozen: longer than the retry tiers of the test's settings
/// (backoffs scaled to 5 %, each attempt cut after a quarter of a 20-second transaction),
/// which dead-letter a transient failure within about half a minute.
const OUTAGE: Duration = Duration::from_secs(45);

/// A server of the test's own (the local stack's S3 server or schema registry, on another
/// port and directory), so freezing it leaves other tests' alone. Thawed and killed when
/// dropped.
struct OwnServer {
    child: Child,
    url: String,
}

impl OwnServer {
    /// Starts the stack's binary `name` (built beside echoctl) with `args` (`{port}` replaced
    /// by a free port) and `envs`, and waits until it accepts connections.
    fn start(name: &str, args: &[&str], envs: &[(&str, &str)]) -> OwnServer {
        let bin = Path::new(BIN).with_file_name(name);
        let port = free_port();
        let child = Command::new(bin)
            .args(args.iter().map(|a| a.replace("{port}", &port.to_string())))
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting the test's {name}: {e}"));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "{name} not up");
            std::thread::sleep(Duration::from_millis(100));
        }
        OwnServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// An S3 server keeping its objects under `root`.
    fn store(env: &TestEnv, root: &Path) -> OwnServer {
        std::fs::create_dir_all(root).unwrap();
        let root = root.to_str().unwrap();
        let secret = env.config.s3.secret_key.expose();
        OwnServer::start(
            "echo-dev-s3",
            &["--port", "{port}", root],
            &[
                ("ECHO_S3_ACCESS_KEY", env.config.s3.access_key.as_str()),
                ("ECHO_S3_SECRET_KEY", secret),
            ],
        )
    }

    /// A schema registry keeping its schemas in `file`, taking writes from `env`'s writer.
    fn registry(env: &TestEnv, file: &Path) -> OwnServer {
        let registry = &env.config.registry;
        let writer = format!("{}:{}", registry.username, registry.password.expose());
        OwnServer::start(
            "echo-schema-registry",
            &[
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--data-file",
                file.to_str().unwrap(),
            ],
            &[("ECHO_SCHEMA_REGISTRY_USER_INFO", writer.as_str())],
        )
    }

    fn signal(&self, name: &str) {
        signal(&self.child, name);
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.signal("CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `echoctl submit --wait` of `wav` in `env`, with `setting` set to `value` (the test's own
/// server), on a thread beside the test: its JSON report when it ends.
async fn client_beside(
    env: &TestEnv,
    wav: std::path::PathBuf,
    setting: &'static str,
    value: &str,
) -> std::thread::JoinHandle<anyhow::Result<serde_json::Value>> {
    let env = TestEnv::at(&env.config.kafka.topic_prefix).await.unwrap();
    let value = value.to_string();
    std::thread::spawn(move || submit(Path::new(BIN), &env, &wav, &[(setting, value.as_str())]))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_object_store_frozen_for_a_while_is_waited_out() {
    let env = TestEnv::new("outage-store").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wav = speak(dir.path(), "speech.wav", &SPEECH.repeat(3)).unwrap();
    let store = OwnServer::store(&env, &dir.path().join("store"));
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let settings = [
        ("ECHO_ENDPOINTS__LISTEN", listen.as_str()),
        ("ECHO_S3__ENDPOINT", store.url.as_str()),
        ("ECHO_VALIDATION__CHUNK_MS", "5000"),
        ("ECHO_KAFKA__TRANSACTION_TIMEOUT_MS", "20000"),
        ("ECHO_RUNTIME__RETRY_BACKOFF_SCALE", "0.05"),
        // Everything operators would read, to hold it against what it must not say.
        ("RUST_LOG", "info"),
    ];
    let _pipeline = Pipeline::start(Path::new(BIN), &env, 1, &settings).unwrap();
    let started = Instant::now();
    while get(port, "/readyz").await.0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(90), "never ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let client = client_beside(&env, wav, "ECHO_S3__ENDPOINT", &store.url).await;
    // Frozen as soon as the upload is verified: the job's reads and writes of the store
    // (validation, the chunk download, the transcript, the report) are all still ahead.
    let events = env.topic("echo.upload.events");
    let started = Instant::now();
    loop {
        let seen = read_topic(&env.config, &events, Isolation::Uncommitted)
            .await
            .unwrap();
        if seen.iter().any(|s| s.type_name == Some("upload.completed")) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no upload.completed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.signal("STOP");
    let frozen = Instant::now();
    let (mut not_ready, mut flagged) = (String::new(), false);
    while frozen.elapsed() < OUTAGE {
        let (status, body) = get(port, "/readyz").await;
        if status == 503 && body.contains("waiting_for=object-store") {
            not_ready = body;
        }
        let metrics = get(port, "/metrics").await.1;
        flagged |= metrics.lines().any(|l| {
            l.starts_with("echo_dependency_unavailable{")
                && l.contains("dependency=\"object-store\"")
                && l.ends_with(" 1")
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    store.signal("CONT");
    let thawed = Instant::now();

    let report = client.join().unwrap().unwrap();
    assert_eq!(report["status"], "ready", "{report:#}");
    assert!(
        !not_ready.is_empty(),
        "/readyz never said the pipeline waits for the store"
    );
    assert!(flagged, "echo_dependency_unavailable never showed the wait");
    while get(port, "/readyz").await.0 != 200 {
        assert!(
            thawed.elapsed() < Duration::from_secs(30),
            "not ready 30 s after the store came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Failures were logged (the store's), and none names a local path or carries a
    // pre-signed URL.
    let log = std::fs::read_to_string(
        std::env::temp_dir().join(format!("{}pipeline.log", env.config.kafka.topic_prefix)),
    )
    .unwrap();
    assert!(
        log.contains("dependency unavailable"),
        "the wait was not logged"
    );
    let cache = env.config.data_dir.join("cache");
    for secret in [
        cache.to_str().unwrap(),
        "X-Amz-Signature",
        "X-Amz-Credential",
    ] {
        assert!(
            !log.contains(secret),
            "the log names {secret}: {}",
            log.lines().find(|l| l.contains(secret)).unwrap_or_default()
        );
    }
    for processor in env.processor_names() {
        let dlq = env.topic(&dlq_topic(processor));
        let dead = read_topic(&env.config, &dlq, Isolation::Committed)
            .await
            .unwrap();
        assert!(
            dead.is_empty(),
            "{processor} dead-lettered {} records during the outage",
            dead.len()
        );
    }
}

/// How long the test's registry stays frozen before a client's first request: longer than
/// the client's request timeout (10 s), so a client that does not wait fails.
const REGISTRY_OUTAGE: Duration = Duration::from_secs(25);

/// A client starting while the schema registry does not answer waits for it, as the
/// processors do, and its upload goes through once the registry is back. Before, `echoctl
/// submit` gave up after its request timed out.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_starting_while_the_registry_is_frozen_waits_for_it() {
    let env = TestEnv::new("outage-registry").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wav = speak(dir.path(), "speech.wav", SPEECH).unwrap();
    // The environment's schemas, registered in a registry of the test's own.
    let registry = OwnServer::registry(&env, &dir.path().join("schemas.json"));
    let mut config = env.config.clone();
    config.registry.url = registry.url.clone();
    echo_runtime::registry::register(&config, &env.catalogue, false)
        .await
        .unwrap();
    let settings = [("ECHO_REGISTRY__URL", registry.url.as_str())];
    let _pipeline = Pipeline::start(Path::new(BIN), &env, 1, &settings).unwrap();

    registry.signal("STOP");
    let client = client_beside(&env, wav, "ECHO_REGISTRY__URL", &registry.url).await;
    tokio::time::sleep(REGISTRY_OUTAGE).await;
    assert!(
        !client.is_finished(),
        "the client ended while the registry was frozen"
    );
    registry.signal("CONT");
    let report = client.join().unwrap().unwrap();
    assert_eq!(report["status"], "ready", "{report:#}");
    for processor in env.processor_names() {
        let dlq = env.topic(&dlq_topic(processor));
        let dead = read_topic(&env.config, &dlq, Isolation::Committed)
            .await
            .unwrap();
        assert!(dead.is_empty(), "{processor} dead-lettered {}", dead.len());
    }
}
