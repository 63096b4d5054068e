//! The Kafka users of k8s/base/kafka.yaml, enforced by a real broker: each processor signs in
//! as its own SCRAM user on the local stack's SASL listener, which holds it to the ACLs
//! `echo_catalog::strimzi` generates (the same function that writes the Strimzi
//! `KafkaUser`s), and the whole pipeline still takes an upload to `resource.ready`: no ACL a
//! processor needs is missing. A processor's credentials cannot write what another processor
//! owns: no ACL is too wide where it matters. The users and ACLs are created with Kafka's own
//! tools (`kafka-configs`, `kafka-acls`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use echo_catalog::strimzi::{self, ClusterSettings};
use echo_tests::pipeline::{speak, submit, Pipeline};
use echo_tests::TestEnv;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_echoctl");

/// The local stack's SASL listener (scripts/stack/lib.sh).
fn sasl_bootstrap() -> String {
    let port = std::env::var("ECHO_KAFKA_SASL_PORT").unwrap_or_else(|_| "9192".into());
    let address = format!("127.0.0.1:{port}");
    assert!(
        std::net::TcpStream::connect(&address).is_ok(),
        "no SASL listener on {address}: a broker started before it was added runs on; \
         restart the local stack (`echoctl dev down && echoctl dev up`)"
    );
    address
}

/// Runs one of Kafka's tools against the stack's open listener (whose principal is a super
/// user, as an operator's is).
fn kafka_tool(class: &str, args: &[String]) {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/stack/kafka-tool.sh");
    let output = Command::new("bash")
        .arg(tool)
        .arg(class)
        .args(args)
        .output()
        .expect("running kafka-tool.sh");
    assert!(
        output.status.success(),
        "{class} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Creates SCRAM user `name` with `password` and grants it the ACLs of its `KafkaUser`
/// (`spec.authorization.acls`), one `kafka-acls` call per pattern type and operation set.
fn create_user(bootstrap: &str, user: &Value, password: &str) {
    let name = user["metadata"]["name"].as_str().unwrap();
    kafka_tool(
        "org.apache.kafka.tools.ConfigCommand",
        &[
            "--bootstrap-server".into(),
            bootstrap.into(),
            "--alter".into(),
            "--entity-type".into(),
            "users".into(),
            "--entity-name".into(),
            name.into(),
            "--add-config".into(),
            format!("SCRAM-SHA-512=[iterations=4096,password={password}]"),
        ],
    );
    let mut calls: BTreeMap<(String, Vec<String>), Vec<String>> = BTreeMap::new();
    for acl in user["spec"]["authorization"]["acls"].as_array().unwrap() {
        let resource = &acl["resource"];
        let pattern = resource["patternType"].as_str().unwrap();
        let pattern = if pattern == "prefix" {
            "prefixed"
        } else {
            pattern
        };
        let operations = acl["operations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap().to_string())
            .collect();
        let option = match resource["type"].as_str().unwrap() {
            "topic" => "--topic",
            "group" => "--group",
            "transactionalId" => "--transactional-id",
            other => panic!("no kafka-acls option for resource type {other}"),
        };
        calls
            .entry((pattern.to_string(), operations))
            .or_default()
            .extend([
                option.to_string(),
                resource["name"].as_str().unwrap().into(),
            ]);
    }
    for ((pattern, operations), resources) in calls {
        let mut args: Vec<String> = vec![
            "--bootstrap-server".into(),
            bootstrap.into(),
            "--add".into(),
            "--allow-principal".into(),
            format!("User:{name}"),
            "--resource-pattern-type".into(),
            pattern,
        ];
        for operation in operations {
            args.extend(["--operation".into(), operation]);
        }
        args.extend(resources);
        kafka_tool("org.apache.kafka.tools.AclCommand", &args);
    }
}

/// The settings that make an echo process sign in as `user` on the SASL listener.
fn signed_in_as<'a>(
    bootstrap: &'a str,
    user: &'a str,
    password: &'a str,
) -> [(&'a str, &'a str); 3] {
    [
        ("ECHO_KAFKA__BOOTSTRAP_SERVERS", bootstrap),
        ("ECHO_KAFKA__SASL__USERNAME", user),
        ("ECHO_KAFKA__SASL__PASSWORD", password),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_processor_runs_on_its_generated_acls_and_no_wider() {
    let env = TestEnv::new("kafka-users").await.unwrap();
    let bootstrap = sasl_bootstrap();
    let settings = ClusterSettings {
        cluster: "local".into(),
        topic_prefix: env.config.kafka.topic_prefix.clone(),
        replicas: env.config.kafka.replication_factor,
        min_insync_replicas: env.config.kafka.min_insync_replicas,
    };
    let resources = strimzi::resources(&env.catalogue, &settings);
    let password = uuid::Uuid::new_v4().simple().to_string();
    let users: Vec<String> = env
        .processor_names()
        .iter()
        .map(|p| settings.processor_user(p))
        .collect();
    for user in &users {
        let resource = resources
            .iter()
            .find(|r| r["kind"] == "KafkaUser" && r["metadata"]["name"] == user.as_str())
            .unwrap_or_else(|| panic!("no KafkaUser {user}"));
        create_user("127.0.0.1:9092", resource, &password);
    }

    // Every processor in a process of its own, signed in as its own user.
    let _processors: Vec<Pipeline> = env
        .processor_names()
        .iter()
        .zip(&users)
        .map(|(processor, user)| {
            let mut settings = signed_in_as(&bootstrap, user, &password).to_vec();
            settings.push(("ECHO_CHUNK_WORKER__THREADS", "1"));
            Pipeline::start_processor(Path::new(BIN), &env, processor, "acl", &settings).unwrap()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let wav = speak(dir.path(), "acl.wav", "Every processor signs in as itself.").unwrap();
    let report = submit(Path::new(BIN), &env, &wav, &[]).unwrap();
    assert_eq!(
        report["status"], "ready",
        "the pipeline under its users' ACLs did not finish (a missing ACL stops a processor; \
         their logs are in the temp dir under {}*): {report:#}",
        env.config.kafka.topic_prefix
    );

    // The upload processor's credentials cannot command a chunk (the validation processor's
    // and job aggregator's topic) or forge a transcript.
    let upload_user = settings.processor_user("upload");
    let mut client = ClientConfig::new();
    for (key, value) in [
        ("bootstrap.servers", bootstrap.as_str()),
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", upload_user.as_str()),
        ("sasl.password", password.as_str()),
        ("message.timeout.ms", "10000"),
    ] {
        client.set(key, value);
    }
    let producer: FutureProducer = client.create().unwrap();
    for topic in [
        "echo.processing.chunk-commands",
        "echo.transcription.events",
    ] {
        let topic = env.topic(topic);
        let refused = producer
            .send(
                FutureRecord::to(&topic).key("victim").payload(b"forged"),
                Duration::from_secs(10),
            )
            .await
            .expect_err("a processor wrote a topic it does not own");
        assert!(
            refused.0.to_string().contains("Authorization"),
            "{topic}: {}",
            refused.0
        );
    }
}
