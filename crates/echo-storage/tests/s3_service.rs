//! `S3Service` against the real local S3 server (s3s-fs on 127.0.0.1:9000 with the default
//! dev credentials, started by `scripts/stack/up.sh`). Fails, never skips, when the server is
//! not there: a pre-signed URL that does not enforce its content type must not go unnoticed.

use echo_runtime::EchoConfig;
use echo_storage::{ObjectFacts, S3Service};

const AUDIO: &[u8] = b"RIFF\x24\x00\x00\x00WAVEfmt not really audio, just bytes";

async fn service() -> S3Service {
    let config = EchoConfig::default();
    let s3 = S3Service::new(&config).unwrap();
    if let Err(e) = s3.ensure_bucket().await {
        panic!(
            "S3 at {} is not usable ({e:#}); start the stack with scripts/stack/up.sh",
            config.s3.endpoint
        );
    }
    s3
}

fn fresh_key() -> String {
    echo_storage::keys::upload(&uuid::Uuid::new_v4().to_string())
}

async fn put(url: &str, content_type: Option<&str>, body: &'static [u8]) -> reqwest::StatusCode {
    let mut req = reqwest::Client::new().put(url).body(body);
    if let Some(ct) = content_type {
        req = req.header(reqwest::header::CONTENT_TYPE, ct);
    }
    req.send().await.unwrap().status()
}

#[tokio::test]
async fn ensure_bucket_is_idempotent() {
    let s3 = service().await;
    s3.ensure_bucket().await.unwrap();
    s3.ensure_bucket().await.unwrap();
}

#[tokio::test]
async fn a_presigned_put_with_the_signed_content_type_is_stored_and_headed() {
    let s3 = service().await;
    let key = fresh_key();
    assert_eq!(s3.head(&key).await.unwrap(), None, "nothing there yet");

    let url = s3.presign_put(&key, "audio/wav", 60).await.unwrap();
    let status = put(&url, Some("audio/wav"), AUDIO).await;
    assert!(status.is_success(), "PUT with the signed type: {status}");

    assert_eq!(
        s3.head(&key).await.unwrap(),
        Some(ObjectFacts {
            size: AUDIO.len() as i64,
            content_type: "audio/wav".into(),
        })
    );
}

#[tokio::test]
async fn a_presigned_put_with_another_content_type_is_rejected() {
    let s3 = service().await;
    let key = fresh_key();
    let url = s3.presign_put(&key, "audio/wav", 60).await.unwrap();

    let status = put(&url, Some("text/html"), AUDIO).await;
    assert!(status.is_client_error(), "PUT with another type: {status}");
    let status = put(&url, None, AUDIO).await;
    assert!(status.is_client_error(), "PUT with no type: {status}");
    assert_eq!(s3.head(&key).await.unwrap(), None, "nothing was stored");
}

#[tokio::test]
async fn a_presigned_url_is_only_for_its_key() {
    let s3 = service().await;
    let key = fresh_key();
    let other = fresh_key();
    let url = s3.presign_put(&key, "audio/wav", 60).await.unwrap();
    let swapped = url.replace(&key, &other);
    assert_ne!(url, swapped);
    let status = put(&swapped, Some("audio/wav"), AUDIO).await;
    assert!(status.is_client_error(), "PUT to another key: {status}");
    assert_eq!(s3.head(&other).await.unwrap(), None);
}

#[tokio::test]
async fn a_download_larger_than_its_cap_stops_and_leaves_no_file() {
    let s3 = service().await;
    let key = fresh_key();
    s3.put_bytes(&key, AUDIO, "audio/wav").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("object");
    let size = AUDIO.len() as u64;

    assert_eq!(
        s3.download_to(&key, &path, Some(size)).await.unwrap(),
        Some(size)
    );
    assert_eq!(std::fs::read(&path).unwrap(), AUDIO);
    assert_eq!(s3.download_to(&key, &path, None).await.unwrap(), Some(size));

    match s3.download_to(&key, &path, Some(size - 1)).await {
        Err(echo_runtime::HandlerError::Permanent(message)) => assert!(
            message.contains(&format!("larger than the {} bytes expected", size - 1)),
            "{message}"
        ),
        other => panic!("a download over its cap must fail permanently, got {other:?}"),
    }
    assert!(!path.exists(), "the partial file is deleted");
}
