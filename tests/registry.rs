//! The codec against the real schema registry: records are written with the schema the code
//! was built with, whatever newer version is registered, and the registry's errors are never
//! remembered, except briefly that an id does not exist. The registry's failures come from a
//! fault proxy in front of the real one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use echo_catalog::events::{self, CleanupCompleted};
use echo_catalog::record::{EventMetadata, Record};
use echo_runtime::codec::{Codec, DecodeError};
use echo_runtime::registry::{self, SubjectStatus};
use echo_runtime::Outgoing;
use echo_tests::TestEnv;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A `cleanup.completed` as this build writes it.
fn record() -> Outgoing {
    Outgoing::new(
        "r1",
        &CleanupCompleted {
            metadata: EventMetadata::new("e1", "r1", "test", 1),
            deleted_objects: 3,
        },
    )
}

/// The real topic and registry subject of `cleanup.completed` in `env`.
fn topic_and_subject(env: &TestEnv) -> (String, String) {
    let topic = env.topic(&env.catalogue.topic_of(CleanupCompleted::TYPE).unwrap().name);
    let info = events::info(CleanupCompleted::TYPE).unwrap();
    let subject = format!("{topic}-{}", info.record_name);
    (topic, subject)
}

/// The schema id in a Confluent-framed record.
fn id_of(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes[1..5].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_registered_version_changes_nothing_until_its_code_is_deployed() {
    let env = TestEnv::new("codec-newer").await.unwrap();
    let (topic, subject) = topic_and_subject(&env);
    let info = events::info(CleanupCompleted::TYPE).unwrap();
    let codec = Codec::new(&env.config.registry.url).unwrap();
    let built = codec.encode(&topic, info, record().value).await.unwrap();

    // A team registers the next version (a field with a default: compatible) before
    // deploying the code that writes it.
    let mut next: Value = serde_json::from_str(info.avsc).unwrap();
    next["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            { "name": "note", "type": "string", "default": "" }
        ));
    let status = registry::register_one(
        &reqwest::Client::new(),
        &env.config.registry,
        &subject,
        &next.to_string(),
    )
    .await
    .unwrap();
    let SubjectStatus::Registered(newer) = status else {
        panic!("{status:?}")
    };
    assert_ne!(u32::try_from(newer).unwrap(), id_of(&built));

    // A processor started now (a restart, a new instance) still writes the version it was
    // built with, and what it writes reads back.
    let restarted = Codec::new(&env.config.registry.url).unwrap();
    let written = restarted
        .encode(&topic, info, record().value)
        .await
        .expect("a newer registered version must not stop the old code from writing");
    assert_eq!(id_of(&written), id_of(&built));
    let decoded = restarted.decode(Some(&written)).await.unwrap();
    assert_eq!(decoded.info.type_name, CleanupCompleted::TYPE);
    assert_eq!(decoded.value, record().value);
}

/// A fault proxy in front of the registry: forwards connections while `failing` is off, and
/// answers every request with a 500 (as a proxy whose upstream is gone does) while it is on.
async fn fault_proxy(upstream: String, failing: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let (upstream, failing) = (upstream.clone(), failing.clone());
            tokio::spawn(async move {
                if failing.load(Ordering::SeqCst) {
                    let mut request = [0u8; 16 * 1024];
                    let _ = client.read(&mut request).await;
                    let answer = "HTTP/1.1 500 Internal Server Error\r\ncontent-type: \
                        application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
                    let _ = client.write_all(answer.as_bytes()).await;
                    return;
                }
                if let Ok(mut server) = TcpStream::connect(upstream.as_str()).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_errors_are_not_remembered_and_a_missing_id_is_undecodable() {
    let env = TestEnv::new("codec-errors").await.unwrap();
    let (topic, _) = topic_and_subject(&env);
    let info = events::info(CleanupCompleted::TYPE).unwrap();
    let bytes = Codec::new(&env.config.registry.url)
        .unwrap()
        .encode(&topic, info, record().value)
        .await
        .unwrap();

    let upstream = env
        .config
        .registry
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let failing = Arc::new(AtomicBool::new(true));
    let proxied = Codec::new(&fault_proxy(upstream, failing.clone()).await).unwrap();
    for _ in 0..2 {
        let answer = proxied.decode(Some(&bytes)).await;
        assert!(
            matches!(answer, Err(DecodeError::RegistryUnavailable(_))),
            "a 500 is the registry's trouble, not the record's: {answer:?}"
        );
    }
    failing.store(false, Ordering::SeqCst);
    let decoded = proxied
        .decode(Some(&bytes))
        .await
        .expect("the record decodes once the registry answers again");
    assert_eq!(decoded.value, record().value);

    // An id no registry handed out: the record's fault, and asked again only after a while.
    let mut made_up = bytes.clone();
    made_up[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
    for _ in 0..2 {
        let answer = proxied.decode(Some(&made_up)).await;
        assert!(
            matches!(answer, Err(DecodeError::Undecodable(_))),
            "{answer:?}"
        );
    }
}
