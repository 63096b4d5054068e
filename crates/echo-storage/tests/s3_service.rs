//! `S3Service` against the real local S3 server (s3s-fs on 127.0.0.1:9000 with the default
//! dev credentials, started by `scripts/stack/up.sh`). Fails, never skips, when the server is
//! not there: a pre-signed URL that does not enforce its content type must not go unnoticed.

use echo_runtime::EchoConfig;
use echo_storage::{Download, ObjectFacts, Pin, S3Service};

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

    let url = s3
        .presign_put(&key, "audio/wav", AUDIO.len() as i64, 60)
        .await
        .unwrap();
    let status = put(&url, Some("audio/wav"), AUDIO).await;
    assert!(status.is_success(), "PUT with the signed type: {status}");

    assert_eq!(
        s3.head(&key).await.unwrap(),
        Some(ObjectFacts {
            size: AUDIO.len() as i64,
            content_type: "audio/wav".into(),
            etag: s3.head(&key).await.unwrap().and_then(|o| o.etag),
        })
    );
    assert!(
        s3.head(&key).await.unwrap().unwrap().etag.is_some(),
        "the store names the version"
    );
}

#[tokio::test]
async fn a_presigned_put_with_another_content_type_is_rejected() {
    let s3 = service().await;
    let key = fresh_key();
    let url = s3
        .presign_put(&key, "audio/wav", AUDIO.len() as i64, 60)
        .await
        .unwrap();

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
    let url = s3
        .presign_put(&key, "audio/wav", AUDIO.len() as i64, 60)
        .await
        .unwrap();
    let swapped = url.replace(&key, &other);
    assert_ne!(url, swapped);
    let status = put(&swapped, Some("audio/wav"), AUDIO).await;
    assert!(status.is_client_error(), "PUT to another key: {status}");
    assert_eq!(s3.head(&other).await.unwrap(), None);
}

#[tokio::test]
async fn a_presigned_put_of_another_length_than_signed_is_rejected() {
    let s3 = service().await;
    let key = fresh_key();
    let url = s3
        .presign_put(&key, "audio/wav", AUDIO.len() as i64 - 1, 60)
        .await
        .unwrap();
    let status = put(&url, Some("audio/wav"), AUDIO).await;
    assert!(status.is_client_error(), "PUT of one byte more: {status}");
    assert_eq!(s3.head(&key).await.unwrap(), None, "nothing was stored");
    let status = put(&url, Some("audio/wav"), &AUDIO[..AUDIO.len() - 1]).await;
    assert!(status.is_success(), "PUT of the signed length: {status}");
}

#[tokio::test]
async fn a_pinned_download_gets_the_verified_version_or_says_it_changed() {
    let s3 = service().await;
    let key = fresh_key();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("download");
    let missing = s3.download_to(&key, &path, &Pin::default()).await.unwrap();
    assert_eq!(missing, Download::Missing);

    s3.put_bytes(&key, AUDIO, "audio/wav").await.unwrap();
    let verified = s3.head(&key).await.unwrap().unwrap();
    let pin = Pin {
        etag: verified.etag.clone(),
        max_bytes: Some(AUDIO.len() as u64),
    };
    let got = s3.download_to(&key, &path, &pin).await.unwrap();
    assert_eq!(got, Download::Stored(AUDIO.len() as u64));
    assert_eq!(std::fs::read(&path).unwrap(), AUDIO);

    // Same size, other bytes, written after the version was verified.
    let mut other = AUDIO.to_vec();
    other.reverse();
    s3.put_bytes(&key, &other, "audio/wav").await.unwrap();
    let got = s3.download_to(&key, &path, &pin).await.unwrap();
    assert!(matches!(got, Download::Changed { .. }), "{got:?}");
    assert!(!path.exists(), "no file is left behind");

    // A body longer than the verified size is cut off.
    let small = Pin {
        etag: None,
        max_bytes: Some(10),
    };
    let got = s3.download_to(&key, &path, &small).await.unwrap();
    assert!(matches!(got, Download::TooLarge { .. }), "{got:?}");
    assert!(!path.exists(), "no file is left behind");
}
