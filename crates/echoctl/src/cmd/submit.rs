//! `echoctl submit FILE`: the client side of an upload. Publishes `upload.requested`, PUTs
//! the file to the pre-signed URL it gets back, sends `upload.finalize`, and prints the
//! resource's events until the upload is completed or failed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use echo_catalog::events::{UploadFailed, UploadFinalize, UploadRequested, UploadUrlGenerated};
use echo_catalog::record::{EventMetadata, Record};
use echo_runtime::driver::now_ms;
use echo_runtime::publisher::Publisher;
use echo_runtime::EchoConfig;

use crate::follow::{Followed, Follower};

/// `submit` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The audio file to upload.
    file: PathBuf,
    /// Content type; guessed from the extension when absent.
    #[arg(long)]
    content_type: Option<String>,
    /// How long to wait for each answer.
    #[arg(long, default_value = "60")]
    timeout_secs: u64,
}

/// Runs the client.
pub async fn run(config: &EchoConfig, args: Args) -> Result<ExitCode> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let filename = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let content_type = args
        .content_type
        .unwrap_or_else(|| guess_content_type(&filename).to_string());
    let resource = uuid::Uuid::new_v4().to_string();
    let patience = Duration::from_secs(args.timeout_secs);
    let follower = Follower::new(config, &["echo.upload.events"], &resource)?;
    let publisher = Publisher::new(config)?;
    println!("resource {resource}");

    let request = UploadRequested {
        metadata: client_metadata(&resource, None),
        filename,
        content_type: content_type.clone(),
        declared_size_bytes: bytes.len() as i64,
    };
    publisher.publish(&resource, &request).await?;
    print_event(UploadRequested::TYPE, &request.metadata);

    let answer = follower.next(patience).await?;
    print_event(answer.type_name, &answer.metadata);
    let url: UploadUrlGenerated = match answer.type_name {
        t if t == UploadUrlGenerated::TYPE => apache_avro::from_value(&answer.value)?,
        _ => return failed(&answer),
    };
    let response = reqwest::Client::new()
        .put(&url.upload_url)
        .header("Content-Type", &content_type)
        .body(bytes)
        .send()
        .await
        .context("uploading to the pre-signed URL")?;
    if !response.status().is_success() {
        bail!("the S3 server refused the upload: {}", response.status());
    }
    println!(
        "{:<28} {} bytes to {}",
        "uploaded", request.declared_size_bytes, url.object_key
    );

    let finalize = UploadFinalize {
        metadata: client_metadata(&resource, Some(&url.metadata.event_id)),
        etag: None,
    };
    publisher.publish(&resource, &finalize).await?;
    print_event(UploadFinalize::TYPE, &finalize.metadata);
    let outcome = follower.next(patience).await?;
    print_event(outcome.type_name, &outcome.metadata);
    match outcome.type_name {
        "upload.completed" => Ok(ExitCode::SUCCESS),
        _ => failed(&outcome),
    }
}

fn failed(event: &Followed) -> Result<ExitCode> {
    if event.type_name == UploadFailed::TYPE {
        let f: UploadFailed = apache_avro::from_value(&event.value)?;
        eprintln!("upload failed: {:?}: {}", f.reason_code, f.message);
    } else {
        eprintln!("unexpected event {}", event.type_name);
    }
    Ok(ExitCode::FAILURE)
}

fn print_event(type_name: &str, metadata: &EventMetadata) {
    println!(
        "{type_name:<28} by {:<12} id {}",
        metadata.producer, metadata.event_id
    );
}

/// Metadata of a record the client issues.
fn client_metadata(resource: &str, causation: Option<&str>) -> EventMetadata {
    EventMetadata {
        event_id: uuid::Uuid::new_v4().to_string(),
        correlation_id: resource.to_string(),
        causation_id: causation.map(str::to_string),
        occurred_at: now_ms(),
        producer: "echoctl".into(),
        schema_version: 1,
    }
}

fn guess_content_type(filename: &str) -> &'static str {
    let ext = filename
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ext.as_str() {
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "ogg" | "oga" => "audio/ogg",
        "mp3" => "audio/mpeg",
        _ => "application/octet-stream",
    }
}
