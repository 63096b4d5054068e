//! `echoctl submit FILE [--wait] [--json]`: the client side of the pipeline. Publishes
//! `upload.requested`, PUTs the file to the pre-signed URL it gets back (with a progress bar),
//! sends `upload.finalize`, and with `--wait` follows the resource's events until a terminal
//! one, then prints the transcript or the failure.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use echo_catalog::events::{
    CaptionRules, ProcessingJobCreated, ResourceReady, ResourceRejected, TranscriptArtifacts,
    TranscriptFormat, TranscriptOptions, UploadFailed, UploadFinalize, UploadRequested,
    UploadUrlGenerated,
};
use echo_catalog::record::{EventMetadata, Record};
use echo_catalog::sealed::ReplyKey;
use echo_runtime::driver::now_ms;
use echo_runtime::publisher::Publisher;
use echo_runtime::EchoConfig;
use echo_storage::S3Service;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tokio_util::io::ReaderStream;

use crate::follow::{Followed, Follower};

/// `submit` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The audio file to upload.
    file: PathBuf,
    /// Content type; guessed from the extension when absent.
    #[arg(long)]
    content_type: Option<String>,
    /// Follow the resource to a terminal event and print the transcript.
    #[arg(long)]
    wait: bool,
    /// Print one JSON object (resource, status, transcript, artifacts, events) instead of lines.
    #[arg(long)]
    json: bool,
    /// How long to wait for the next event before giving up.
    #[arg(long, default_value = "300")]
    timeout_secs: u64,
    /// The resource id to submit under; a fresh UUID when absent. A client may choose its own
    /// (to retry idempotently, or to place the resource's records on a chosen partition); the
    /// upload processor refuses ids that are not 1-128 letters, digits, '-' or '_'.
    #[arg(long)]
    resource_id: Option<String>,
    /// The file name announced in `upload.requested`; the file's own name when absent. It is
    /// informational only: the object key is chosen by the server.
    #[arg(long)]
    filename: Option<String>,
    /// Text whisper reads before every chunk as if just said: names, terms, spelling, style
    /// (the upload's `options.prompt`, at most 500 characters).
    #[arg(long)]
    prompt: Option<String>,
    /// The transcript files to write besides report.json, comma-separated (`txt,srt,vtt`);
    /// all of them when absent.
    #[arg(long, value_delimiter = ',')]
    formats: Option<Vec<Format>>,
    /// Longest caption line, in characters (10 to 100); the deployment's rules when absent.
    #[arg(long)]
    caption_chars: Option<i32>,
    /// Most lines a caption shows (1 to 3); the deployment's rules when absent.
    #[arg(long)]
    caption_lines: Option<i32>,
    /// A two-channel recording with one speaker per channel: each channel transcribed on its
    /// own, words and captions labelled by speaker.
    #[arg(long)]
    speaker_per_channel: bool,
    /// The tenant token the deployment issued (`echoctl tenant token`), from the environment
    /// only, as it is a credential; the anonymous tenant when unset.
    #[arg(skip = std::env::var("ECHO_TENANT_TOKEN").ok())]
    tenant_token: Option<String>,
}

/// A transcript file, as `--formats` names it.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Txt,
    Srt,
    Vtt,
}

impl Args {
    /// The request's options; `None` when no option was given, so the request is the same
    /// as one of a client that knows no options.
    fn options(&self) -> Option<TranscriptOptions> {
        let caption = (self.caption_chars.is_some() || self.caption_lines.is_some()).then(|| {
            let rules = CaptionRules::default();
            CaptionRules {
                max_chars_per_line: self.caption_chars.unwrap_or(rules.max_chars_per_line),
                max_lines: self.caption_lines.unwrap_or(rules.max_lines),
                ..rules
            }
        });
        let formats = self.formats.as_ref().map(|formats| {
            formats
                .iter()
                .map(|f| match f {
                    Format::Txt => TranscriptFormat::Txt,
                    Format::Srt => TranscriptFormat::Srt,
                    Format::Vtt => TranscriptFormat::Vtt,
                })
                .collect()
        });
        let options = TranscriptOptions {
            prompt: self.prompt.clone(),
            formats,
            caption,
            speaker_per_channel: self.speaker_per_channel,
        };
        (options != TranscriptOptions::default()).then_some(options)
    }
}

/// How a submission ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// The upload was verified (without `--wait`).
    Uploaded,
    /// `resource.ready`: transcript and report are written.
    Ready,
    /// `resource.rejected`: the audio failed validation or transcription.
    Rejected,
    /// `upload.failed`: the upload never became usable.
    UploadFailed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Uploaded => "uploaded",
            Status::Ready => "ready",
            Status::Rejected => "rejected",
            Status::UploadFailed => "upload_failed",
        }
    }
}

/// The client session: what it saw so far.
struct Session {
    json: bool,
    events: Vec<(String, EventMetadata)>,
    chunks: Option<ProgressBar>,
    chunks_done: BTreeSet<i64>,
}

impl Session {
    fn record(&mut self, type_name: &str, metadata: &EventMetadata) {
        if !self.json {
            let line = format!(
                "{type_name:<28} by {:<16} id {}",
                metadata.producer, metadata.event_id
            );
            // A hidden bar (no terminal) swallows its printlns.
            match &self.chunks {
                Some(bar) if !bar.is_hidden() => bar.println(line),
                _ => println!("{line}"),
            }
        }
        self.events.push((type_name.to_string(), metadata.clone()));
    }

    fn note(&self, line: String) {
        if !self.json {
            println!("{line}");
        }
    }

    /// Keeps the chunk progress bar in step with the events.
    fn track_chunks(&mut self, event: &Followed) -> Result<()> {
        if event.type_name == ProcessingJobCreated::TYPE && !self.json {
            let job: ProcessingJobCreated = apache_avro::from_value(&event.value)?;
            let bar = ProgressBar::new(job.chunk_count as u64).with_style(
                ProgressStyle::with_template("chunks {bar:30} {pos}/{len}")
                    .expect("static template"),
            );
            self.chunks = Some(bar);
        }
        if event.type_name == "chunk.processing.completed" {
            if let apache_avro::types::Value::Record(fields) = &event.value {
                let index = fields
                    .iter()
                    .find(|(n, _)| n == "chunk_index")
                    .map(|(_, v)| v);
                if let Some(apache_avro::types::Value::Int(i)) = index {
                    self.chunks_done.insert(*i as i64);
                }
            }
            if let Some(bar) = &self.chunks {
                bar.set_position(self.chunks_done.len() as u64);
            }
        }
        Ok(())
    }
}

/// Runs the client.
pub async fn run(config: &EchoConfig, args: Args) -> Result<ExitCode> {
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?
        .len();
    let filename = args.filename.clone().unwrap_or_else(|| {
        args.file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let content_type = args
        .content_type
        .clone()
        .unwrap_or_else(|| guess_content_type(&filename).to_string());
    let resource = args
        .resource_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let patience = Duration::from_secs(args.timeout_secs);
    let topics = [
        "echo.upload.events",
        "echo.processing.events",
        "echo.transcription.events",
        "echo.resource.events",
    ];
    let follower = Follower::new(config, &topics, &resource)?;
    let publisher = Publisher::new(config)?;
    let mut session = Session {
        json: args.json,
        events: Vec::new(),
        chunks: None,
        chunks_done: BTreeSet::new(),
    };
    session.note(format!("resource {resource}"));

    // The URL comes back sealed to this key: only this client can read it.
    let reply_key = ReplyKey::generate();
    let request = UploadRequested {
        metadata: client_metadata(&resource, None),
        filename,
        content_type: content_type.clone(),
        declared_size_bytes: size as i64,
        reply_key: Some(reply_key.public()),
        tenant_token: args.tenant_token.clone(),
        options: args.options(),
    };
    publisher.publish(&resource, &request).await?;
    session.record(UploadRequested::TYPE, &request.metadata);

    let answer = follower.next(patience).await?;
    session.record(answer.type_name, &answer.metadata);
    if answer.type_name != UploadUrlGenerated::TYPE {
        return finish(config, &args, &follower, session, &resource, answer).await;
    }
    let url: UploadUrlGenerated = apache_avro::from_value(&answer.value)?;
    let sealed = url
        .sealed_upload_url
        .as_deref()
        .context("upload.url.generated carries no sealed URL")?;
    let upload_url = reply_key.open(sealed)?;
    upload(&args, &upload_url, &content_type, size, url.expires_at).await?;
    session.note(format!(
        "{:<28} {size} bytes to {}",
        "uploaded", url.object_key
    ));

    // Proof that this finalize comes from the requester: anyone can read the resource id.
    let owner_token = url
        .sealed_owner_token
        .as_deref()
        .map(|sealed| reply_key.open(sealed))
        .transpose()?;
    let finalize = UploadFinalize {
        metadata: client_metadata(&resource, Some(&url.metadata.event_id)),
        etag: None,
        owner_token,
    };
    publisher.publish(&resource, &finalize).await?;
    session.record(UploadFinalize::TYPE, &finalize.metadata);
    let next = follower.next(patience).await?;
    session.record(next.type_name, &next.metadata);
    finish(config, &args, &follower, session, &resource, next).await
}

/// Follows events after the upload until the outcome is known, then reports it.
async fn finish(
    config: &EchoConfig,
    args: &Args,
    follower: &Follower,
    mut session: Session,
    resource: &str,
    mut event: Followed,
) -> Result<ExitCode> {
    let patience = Duration::from_secs(args.timeout_secs);
    let mut reason = None;
    let mut ready = None;
    let status = loop {
        session.track_chunks(&event)?;
        match event.type_name {
            "upload.completed" if !args.wait => break Status::Uploaded,
            "upload.failed" => {
                let f: UploadFailed = apache_avro::from_value(&event.value)?;
                reason = Some(format!("{:?}: {}", f.reason_code, f.message));
                if !args.wait {
                    break Status::UploadFailed;
                }
            }
            "resource.rejected" => {
                let r: ResourceRejected = apache_avro::from_value(&event.value)?;
                reason = Some(format!("{:?}: {}", r.reason_code, r.message));
                if !args.wait {
                    break Status::Rejected;
                }
            }
            "resource.ready" => {
                ready = Some(apache_avro::from_value::<ResourceReady>(&event.value)?);
                break Status::Ready;
            }
            // Cleanup ends every failed resource's chain.
            "cleanup.completed" if reason.is_some() => {
                let rejected = session
                    .events
                    .iter()
                    .any(|(t, _)| t == ResourceRejected::TYPE);
                break if rejected {
                    Status::Rejected
                } else {
                    Status::UploadFailed
                };
            }
            _ => {}
        }
        event = follower.next(patience).await?;
        session.record(event.type_name, &event.metadata);
    };
    if let Some(bar) = &session.chunks {
        bar.finish_and_clear();
    }
    let transcript = match &ready {
        Some(r) => Some(transcript_of(config, &r.artifacts).await?),
        None => None,
    };
    if args.json {
        let report = json!({
            "resource_id": resource,
            "status": status.as_str(),
            "reason": reason,
            "transcript": transcript,
            "artifacts": ready.as_ref().map(|r| json!({
                "txt": r.artifacts.txt_key,
                "srt": r.artifacts.srt_key,
                "vtt": r.artifacts.vtt_key,
                "json": r.artifacts.json_key,
            })),
            "events": session.events.iter().map(|(t, m)| json!({
                "type": t,
                "time": m.occurred_at,
                "producer": m.producer,
                "event_id": m.event_id,
                "causation_id": m.causation_id,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if let Some(text) = &transcript {
            println!("\ntranscript:\n{}", text.trim_end());
        }
        if let Some(why) = &reason {
            eprintln!("{}: {why}", status.as_str());
        }
    }
    Ok(match status {
        Status::Uploaded | Status::Ready => ExitCode::SUCCESS,
        Status::Rejected | Status::UploadFailed => ExitCode::FAILURE,
    })
}

/// The transcript's text: transcript.txt, or the segments of report.json when the upload
/// asked for no .txt.
async fn transcript_of(config: &EchoConfig, artifacts: &TranscriptArtifacts) -> Result<String> {
    let s3 = S3Service::new(config)?;
    let key = artifacts.txt_key.as_ref().unwrap_or(&artifacts.json_key);
    let bytes = s3
        .get_bytes(key)
        .await?
        .with_context(|| format!("transcript {key} is missing"))?;
    if artifacts.txt_key.is_some() {
        return Ok(String::from_utf8_lossy(&bytes).into_owned());
    }
    let report: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{key} is not JSON"))?;
    let segments = report["segments"].as_array().cloned().unwrap_or_default();
    let texts: Vec<&str> = segments.iter().filter_map(|s| s["text"].as_str()).collect();
    Ok(texts.join(" ") + "\n")
}

/// PUTs the file to the pre-signed URL, streaming it with a progress bar. A store that does
/// not answer, or answers that it cannot take it now (5xx), is waited out as the processors
/// wait it out, the PUT tried again with backoff until the URL expires at `expires_at_ms`.
async fn upload(
    args: &Args,
    url: &str,
    content_type: &str,
    size: u64,
    expires_at_ms: i64,
) -> Result<()> {
    let mut pause = Duration::from_secs(1);
    loop {
        match put(args, url, content_type, size, expires_at_ms).await? {
            None => return Ok(()),
            Some(why) if now_ms() + (pause.as_millis() as i64) < expires_at_ms => {
                tracing::warn!(error = %why, "the object store does not take the upload; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(15));
            }
            Some(why) => {
                bail!("the object store did not take the upload before its URL expired: {why}")
            }
        }
    }
}

/// One PUT of the file, given up on when the URL expires at `expires_at_ms`: `None` once
/// stored, `Some(why)` when the store could not take it now (no answer, or a 5xx); a refusal
/// (4xx) is an error. Errors never carry the URL, which is the upload's credential.
async fn put(
    args: &Args,
    url: &str,
    content_type: &str,
    size: u64,
    expires_at_ms: i64,
) -> Result<Option<String>> {
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(size).with_style(
            ProgressStyle::with_template("upload {bar:30} {bytes}/{total_bytes}")
                .expect("static template"),
        )
    };
    let file = tokio::fs::File::open(&args.file).await?;
    let progress = bar.clone();
    let stream = futures_util::StreamExt::inspect(ReaderStream::new(file), move |chunk| {
        if let Ok(bytes) = chunk {
            progress.inc(bytes.len() as u64);
        }
    });
    // A store that accepts the connection and then never answers (frozen, partitioned) is
    // given up on after a while without progress, and tried again.
    let left = u64::try_from(expires_at_ms - now_ms())
        .unwrap_or(0)
        .max(1_000);
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .timeout(Duration::from_millis(left))
        .build()?;
    let sent = client
        .put(url)
        .header("Content-Type", content_type)
        .header("Content-Length", size)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    bar.finish_and_clear();
    let response = match sent {
        Ok(response) => response,
        Err(e) => return Ok(Some(e.without_url().to_string())),
    };
    match response.status() {
        status if status.is_success() => Ok(None),
        status if status.is_server_error() => Ok(Some(format!("the S3 server answered {status}"))),
        status => bail!("the S3 server refused the upload: {status}"),
    }
}

/// Metadata of a record the client issues.
fn client_metadata(resource: &str, causation: Option<&str>) -> EventMetadata {
    EventMetadata::new(
        uuid::Uuid::new_v4().to_string(),
        resource.to_string(),
        "echoctl",
        now_ms(),
    )
    .with_cause(causation)
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
