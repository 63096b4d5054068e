//! The bad-input corpus: one test per kind of input echo must refuse with a named reason, or
//! survive, each run through the whole pipeline as operators and clients run it
//! (`echoctl run all` in a child process, `echoctl submit` or a deliberately misbehaving
//! client against it, on the real broker, registry, S3 server and whisper model).
//!
//! Every test asserts the named outcome (`validation.failed` → `resource.rejected` → cleanup,
//! `upload.failed` → cleanup, or a DLQ record with its class and message) and then that the
//! partition the bad input sat on keeps flowing: a good file submitted under a resource id
//! chosen to land on the same partition (`echoctl submit --resource-id`) becomes
//! `resource.ready`. The one exception is the replayed chunk command: a chunk's partition
//! follows its job, which no client chooses, so that test reads the worker group's committed
//! offset past the replay instead, then sees the next file transcribed.
//!
//! | case | test |
//! |------|------|
//! | empty file | [`an_empty_file_is_rejected_with_a_named_reason`] |
//! | truncated WAV/MP3 | [`truncated_wav_and_mp3_files_are_rejected_as_undecodable`] |
//! | random bytes with an audio extension | [`random_bytes_named_as_audio_are_rejected_as_undecodable`] |
//! | unsupported codec | [`an_unsupported_codec_in_a_valid_container_is_rejected_as_such`] |
//! | valid audio over the duration limit | [`audio_over_the_duration_limit_is_rejected_as_too_long`] |
//! | over the size limit | [`a_file_over_the_size_limit_is_refused_before_any_url`] |
//! | declared size ≠ actual (the URL signs the length) | [`a_put_of_another_length_than_declared_is_refused_by_s3`] |
//! | content type ≠ signed | [`a_content_type_other_than_the_signed_one_is_refused_by_s3`] |
//! | pure silence | [`pure_silence_gives_an_empty_transcript_and_the_report_says_so`] |
//! | extremely short audio (< 0.5 s) | [`extremely_short_audio_is_rejected_as_too_short`] |
//! | multichannel and odd sample rates | [`multichannel_audio_at_odd_sample_rates_is_transcribed`] |
//! | a record that is not Avro | [`a_record_that_is_not_avro_goes_to_the_dlq`] |
//! | Avro with an unknown schema id | [`avro_with_an_unknown_schema_id_goes_to_the_dlq`] |
//! | a known schema on the wrong topic | [`a_known_schema_on_the_wrong_topic_goes_to_the_dlq`] |
//! | replayed `upload.requested` | [`a_replayed_upload_request_gets_no_second_url`] |
//! | replayed `chunk.process` | [`a_replayed_chunk_command_has_no_second_transcription_effect`] |
//! | `upload.finalize` for an unknown upload | [`a_finalize_for_an_unknown_upload_goes_to_the_dlq`] |
//! | expired pre-signed URL | [`an_expired_upload_url_is_refused_by_s3_and_the_upload_expires`] |
//! | tampered pre-signed URL | [`a_tampered_upload_url_is_refused_by_s3`] |
//! | path tricks in the filename | [`path_tricks_in_the_filename_do_not_move_the_object_key`] |
//! | `upload.requested` keyed by another id, naming a ready resource | [`a_request_keyed_by_another_id_cannot_reach_an_existing_resource`] |
//! | `upload.requested` with the right key on another partition | [`a_request_on_another_partition_than_its_key_cannot_reach_an_existing_resource`] |
//! | `upload.finalize` keyed by another id | [`a_finalize_keyed_by_another_id_is_dead_lettered`] |
//! | `chunk.process` keyed by another chunk | [`a_chunk_command_keyed_by_another_chunk_is_dead_lettered`] |
//! | a second request for a used resource id, after its state retired (and for a refused one, which is free again) | [`a_used_resource_id_never_gets_a_url_again_even_after_its_state_is_retired`] |
//! | the object replaced after `upload.finalize` | [`a_file_replaced_after_finalize_is_not_transcribed`] |
//! | a PUT after the cleanup, with a still-valid URL | [`an_object_put_after_the_cleanup_is_swept_once_the_url_expired`] |
//! | another client reading the URL; a request with no key to seal it to | [`an_upload_url_is_readable_only_by_its_requester`] |
//! | a client tailing the events, finalizing others' uploads before their owners | [`a_client_racing_the_owner_cannot_finalize_its_upload`] |
//! | a tenant over its jobs in flight, stored bytes or requests per minute; forged and missing tenant tokens | [`a_tenant_at_its_limits_is_refused_while_another_is_served`] |
//! | a WAV header stating 2,147,483,647 Hz; a data chunk claiming 4 GB | [`a_wav_stating_two_billion_hz_is_refused_before_anything_is_sized`] |
//! | 16 and 64 channels | [`wavs_of_16_and_64_channels_are_refused`] |
//! | Avro claiming a 2 GB / 256 MB string | [`avro_claiming_a_huge_string_goes_to_the_dlq_undecoded`] |
//! | `chunk.process` for the range `0..i64::MAX` | [`a_chunk_command_for_an_endless_range_fails_the_chunk`] |
//!
//! The same inputs are also met at lower levels: the validation processor's own tests probe
//! garbage, empty, header-only and short files against S3 (`processors/validation/tests/
//! observe.rs`), the runtime's tests send garbage and wrong-topic records through a
//! test processor (`tests/runtime.rs`). This file is the one list, end to end, with the
//! partition checked after each.
//!
//! Each test starts its own pipeline (whisper included) on its own topic prefix; they run one
//! at a time.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use echo_catalog::events::{
    CaptionRules, ChunkProcess, ChunkProcessingCompleted, ChunkProcessingFailed,
    ChunkProcessingStarted, CleanupCompleted, ProcessingJobCreated, QuotaReserve, QuotaReserved,
    ResourceReady, ResourceRejected, TranscriptOptions, TranscriptionCompleted, UploadCompleted,
    UploadExpired, UploadFailed, UploadFailureReason, UploadFinalize, UploadRequested,
    UploadUrlGenerated, ValidationFailed, ValidationFailureReason, ValidationPassed,
};
use echo_catalog::record::{EventMetadata, Record};
use echo_catalog::sealed::ReplyKey;
use echo_runtime::driver::now_ms;
use echo_runtime::headers::{echo, HeaderList};
use echo_runtime::publisher::Publisher;
use echo_storage::{keys, S3Service};
use echo_tests::partition::{partition_of, resource_id_on};
use echo_tests::pipeline::{convert, event_types, speak, submit_with, word_error_rate, Pipeline};
use echo_tests::stack::PATIENCE;
use echo_tests::wav::pcm_wav;
use echo_tests::{read_topic, wait_for, Isolation, Seen, TestEnv};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_echoctl");

/// The good record every case is followed by: short, so whisper is quick, and spoken, so a
/// transcript is really made.
const GOOD_SENTENCE: &str = "Please call Stella.";

/// A longer sentence tiny.en transcribes exactly from flite (the one `pipeline.rs` measures).
const SENTENCE: &str =
    "Please call Stella and ask her to bring these things with her from the store.";

/// The topic every resource's records enter by; all resource-keyed topics share its
/// partition count (co-partitioning), so a resource's partition is the same in each.
const REQUESTS: &str = "echo.upload.requests";

/// Async-aware: a test holds its turn across awaits, and each test has its own runtime.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The `echoctl` binary under test, built by cargo for this test target.
fn bin() -> &'static Path {
    Path::new(BIN)
}

/// The records of `seen` that belong to resource `resource`.
fn of_resource<'a>(seen: &'a [Seen], resource: &'a str) -> impl Iterator<Item = &'a Seen> + 'a {
    seen.iter()
        .filter(move |s| s.metadata.as_ref().map(|m| m.correlation_id.as_str()) == Some(resource))
}

/// The catalogue record `R` a record read back holds (the caller knows its type).
fn decode<R: Record>(seen: &Seen) -> R {
    apache_avro::from_value(seen.value.as_ref().expect("decoded record")).unwrap()
}

/// Metadata of a record a client issues itself.
fn client_metadata(resource: &str, cause: Option<&str>) -> EventMetadata {
    EventMetadata::new(
        uuid::Uuid::new_v4().to_string(),
        resource.to_string(),
        "bad-input-client",
        now_ms(),
    )
    .with_cause(cause)
}

/// A client's `upload.requested` for `resource`: `declared_size` bytes of `content_type`.
fn upload_request(resource: &str, declared_size: usize, content_type: &str) -> UploadRequested {
    UploadRequested {
        metadata: client_metadata(resource, None),
        filename: "speech.wav".into(),
        content_type: content_type.into(),
        declared_size_bytes: declared_size as i64,
        reply_key: Some(CLIENT_KEY.public()),
        tenant_token: None,
        options: None,
    }
}

/// The misbehaving client's key pair: echo seals the upload URLs it asks for to it.
static CLIENT_KEY: LazyLock<ReplyKey> = LazyLock::new(ReplyKey::generate);

/// One case's world: its own topics and pipeline, a scratch directory, and the good file that
/// follows the bad input. Holds the turn until dropped (after the pipeline has stopped).
struct Case {
    env: TestEnv,
    publisher: Publisher,
    s3: S3Service,
    dir: tempfile::TempDir,
    good: PathBuf,
    pipeline: Pipeline,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Case {
    /// Prepares a fresh topic prefix and the good file (while another case may still run),
    /// then waits its turn and starts a pipeline there with extra `settings` (`ECHO_*`
    /// variables).
    async fn start(name: &str, settings: &[(&str, &str)]) -> Case {
        Case::start_with_chunk_workers(name, 1, settings).await
    }

    /// [`Case::start`] with `chunk_workers` chunk workers in the pipeline (none: the case
    /// starts one itself when it wants the chunks transcribed).
    async fn start_with_chunk_workers(
        name: &str,
        chunk_workers: usize,
        settings: &[(&str, &str)],
    ) -> Case {
        let env = TestEnv::new(name).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let good = speak(dir.path(), "good.wav", GOOD_SENTENCE).unwrap();
        let turn = ONE_AT_A_TIME.lock().await;
        let pipeline = Pipeline::start(bin(), &env, chunk_workers, settings).unwrap();
        Case {
            publisher: Publisher::new(&env.config).unwrap(),
            s3: S3Service::new(&env.config).unwrap(),
            env,
            dir,
            good,
            pipeline,
            _turn: turn,
        }
    }

    /// A path in the scratch directory.
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `bytes` to a scratch file and returns its path.
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// `file` converted by sox into a scratch file named `name` (format from its extension).
    fn converted(&self, file: &Path, name: &str, effects: &[&str]) -> PathBuf {
        let out = self.path(name);
        convert(file, &out, effects).unwrap();
        out
    }

    /// `echoctl submit FILE --wait --json` with extra `options`; its JSON report.
    fn submit(&self, file: &Path, options: &[&str]) -> Value {
        submit_with(bin(), &self.env, file, options, &[]).unwrap()
    }

    /// How many partitions the resource-keyed topics have.
    fn resource_partitions(&self) -> i32 {
        let catalogue = &self.env.catalogue;
        catalogue.partitions_of(catalogue.topic(REQUESTS).unwrap())
    }

    /// Every committed record of the catalogue topic `topic`.
    async fn topic(&self, topic: &str) -> Vec<Seen> {
        read_topic(
            &self.env.config,
            &self.env.topic(topic),
            Isolation::Committed,
        )
        .await
        .unwrap()
    }

    /// The records of type `R` about `resource` on the topic the catalogue puts `R` on.
    async fn events<R: Record>(&self, resource: &str) -> Vec<R> {
        let topic = &self.env.catalogue.topic_of(R::TYPE).unwrap().name;
        of_resource(&self.topic(topic).await, resource)
            .filter(|s| s.type_name == Some(R::TYPE))
            .map(decode)
            .collect()
    }

    /// Waits for the first record of type `R` about `resource` and decodes it.
    async fn wait_event<R: Record>(&self, resource: &str) -> R {
        let topic = self
            .env
            .topic(&self.env.catalogue.topic_of(R::TYPE).unwrap().name);
        let seen = wait_for(&self.env.config, &topic, Duration::from_secs(90), |s| {
            of_resource(s, resource).any(|r| r.type_name == Some(R::TYPE))
        })
        .await
        .unwrap();
        let found = of_resource(&seen, resource)
            .find(|r| r.type_name == Some(R::TYPE))
            .unwrap();
        decode(found)
    }

    /// The partition keeps flowing: the good file, submitted under a resource id whose records
    /// land on `partition`, becomes ready. Where its request really landed is read back, so the
    /// claim does not rest on the hash alone.
    async fn good_record_flows_on(&self, partition: i32) {
        let resource = resource_id_on(partition, self.resource_partitions());
        let report = self.submit(&self.good, &["--resource-id", &resource]);
        assert_eq!(
            report["status"], "ready",
            "the good record after the bad one on partition {partition}: {report:#}"
        );
        let placed: Vec<i32> = of_resource(&self.topic(REQUESTS).await, &resource)
            .map(|s| s.partition)
            .collect();
        assert_eq!(placed, [partition], "where the good request landed");
    }

    /// [`Case::good_record_flows_on`] the partition of resource `resource`.
    async fn good_record_flows_after(&self, resource: &str) {
        self.good_record_flows_on(partition_of(resource, self.resource_partitions()))
            .await;
    }

    /// A fresh resource id on the same partition as `resource`, for a second input that must
    /// meet what the first one left behind.
    fn beside(&self, resource: &str) -> String {
        let partitions = self.resource_partitions();
        resource_id_on(partition_of(resource, partitions), partitions)
    }

    /// Submits `file` (with extra submit `options`), which validation must refuse with
    /// `reason` and a message containing `says`; checks the whole failure path
    /// (`validation.failed` → `resource.rejected`, which tells the client the same → cleanup).
    /// Returns the resource id.
    async fn refused_by_validation(
        &self,
        file: &Path,
        options: &[&str],
        reason: ValidationFailureReason,
        says: &str,
    ) -> String {
        let report = self.submit(file, options);
        assert_eq!(report["status"], "rejected", "{report:#}");
        let types = event_types(&report);
        for step in [
            "upload.completed",
            "validation.started",
            "validation.failed",
            "resource.rejected",
            "cleanup.initiated",
            "cleanup.completed",
        ] {
            assert!(types.iter().any(|t| t == step), "{step} missing: {types:?}");
        }
        assert!(!types.iter().any(|t| t == "validation.passed"), "{types:?}");
        let resource = report["resource_id"].as_str().unwrap();
        let failed = self.events::<ValidationFailed>(resource).await;
        assert_eq!(failed.len(), 1, "one validation.failed");
        let failed = &failed[0];
        assert_eq!(failed.reason_code, reason, "{}", failed.message);
        assert!(
            failed.message.contains(says),
            "the message {:?} does not say {says:?}",
            failed.message
        );
        assert_eq!(
            report["reason"],
            format!("{:?}: {}", failed.reason_code, failed.message),
            "the client is told the reason"
        );
        resource.to_string()
    }

    /// [`Case::refused_by_validation`] of `file`, then the good record flows on its partition:
    /// the whole story of a single bad file.
    async fn rejected_then_flows(&self, file: &Path, reason: ValidationFailureReason, says: &str) {
        let resource = self.refused_by_validation(file, &[], reason, says).await;
        self.good_record_flows_after(&resource).await;
    }

    /// Waits for the upload of `resource` to fail with `reason` and a message containing
    /// `says`, then for its cleanup.
    async fn upload_fails(&self, resource: &str, reason: UploadFailureReason, says: &str) {
        let failed: UploadFailed = self.wait_event(resource).await;
        assert_eq!(failed.reason_code, reason, "{}", failed.message);
        assert!(
            failed.message.contains(says),
            "the message {:?} does not say {says:?}",
            failed.message
        );
        self.wait_event::<CleanupCompleted>(resource).await;
        assert_eq!(
            self.events::<UploadFailed>(resource).await.len(),
            1,
            "one upload.failed"
        );
    }

    /// Waits for the record published at `at` (partition, offset) on the catalogue topic
    /// `topic` to reach the DLQ of `processor` with error class `class` and a message
    /// containing `says`; checks the headers that trace it back.
    async fn dead_lettered(
        &self,
        processor: &str,
        topic: &str,
        at: (i32, i64),
        class: &str,
        says: &str,
    ) {
        let (partition, offset) = at;
        let is_it = |r: &Seen| {
            r.headers.get(echo::ORIGINAL_TOPIC) == Some(topic)
                && r.headers.get(echo::ORIGINAL_PARTITION) == Some(partition.to_string().as_str())
                && r.headers.get(echo::ORIGINAL_OFFSET) == Some(offset.to_string().as_str())
        };
        let dlq = self.env.topic(&format!("echo.{processor}.dlq"));
        let seen = wait_for(&self.env.config, &dlq, PATIENCE, |s| s.iter().any(is_it))
            .await
            .unwrap();
        let record = seen.iter().find(|r| is_it(r)).unwrap();
        assert_eq!(
            record.headers.get(echo::ERROR_CLASS),
            Some(class),
            "{:?}",
            record.headers
        );
        let message = record.headers.get(echo::ERROR_MESSAGE).unwrap_or_default();
        assert!(
            message.contains(says),
            "the DLQ message {message:?} does not say {says:?}"
        );
        assert_eq!(record.headers.get(echo::PROCESSOR), Some(processor));
    }

    /// Waits until the consumer group of `processor` has committed past `offset` on
    /// `partition` of the catalogue topic `topic`: it has handled that record and moved on.
    /// Processors commit their input offsets in the transaction of their outputs, so whatever
    /// the record caused is readable by then.
    async fn committed_past(&self, processor: &str, topic: &str, partition: i32, offset: i64) {
        let consumer: BaseConsumer = ClientConfig::new()
            .set(
                "bootstrap.servers",
                &self.env.config.kafka.bootstrap_servers,
            )
            .set("group.id", self.env.topic(&format!("echo.{processor}")))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut wanted = TopicPartitionList::new();
        wanted.add_partition(&self.env.topic(topic), partition);
        let started = std::time::Instant::now();
        loop {
            let committed = consumer
                .committed_offsets(wanted.clone(), Duration::from_secs(10))
                .unwrap();
            let at = committed.elements()[0].offset();
            if matches!(at, Offset::Offset(next) if next > offset) {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{processor} never committed past offset {offset} of {topic} [{partition}]: {at:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Publishes `payload` as it is to the requests topic under `key`: the upload processor must
    /// dead-letter it with error class `class` and a message containing `says`, and the next
    /// good record on its partition must flow.
    async fn raw_request_dead_lettered(&self, key: &str, payload: &[u8], class: &str, says: &str) {
        let at = self
            .publisher
            .publish_raw(
                &self.env.topic(REQUESTS),
                key,
                payload,
                HeaderList::default(),
            )
            .await
            .unwrap();
        self.dead_lettered("upload", REQUESTS, at, class, says)
            .await;
        self.good_record_flows_on(at.0).await;
    }

    /// Publishes `record` under `key` on `partition` of the topic the catalogue puts it on, as
    /// a client that picks the partition itself would (Confluent-framed Avro, a plain
    /// producer); where it landed.
    async fn publish_on<R: Record>(&self, partition: i32, key: &str, record: &R) -> (i32, i64) {
        let topic = self
            .env
            .topic(&self.env.catalogue.topic_of(R::TYPE).unwrap().name);
        let encoded = echo_runtime::codec::Codec::new(&self.env.config.registry.url)
            .unwrap()
            .encode(
                &topic,
                echo_catalog::events::info(R::TYPE).unwrap(),
                apache_avro::to_value(record).unwrap(),
            )
            .await
            .unwrap();
        let producer: FutureProducer = ClientConfig::new()
            .set(
                "bootstrap.servers",
                &self.env.config.kafka.bootstrap_servers,
            )
            .create()
            .unwrap();
        let sent = producer
            .send(
                FutureRecord::to(&topic)
                    .partition(partition)
                    .key(key)
                    .payload(&encoded),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        (sent.partition, sent.offset)
    }

    /// Asks for an upload URL as a client would, declaring `declared_size` bytes of
    /// `content_type`, and returns what the upload processor answered, its URL opened.
    async fn request_url(
        &self,
        resource: &str,
        declared_size: usize,
        content_type: &str,
    ) -> UploadUrlGenerated {
        let request = upload_request(resource, declared_size, content_type);
        self.publisher.publish(resource, &request).await.unwrap();
        let mut url: UploadUrlGenerated = self.wait_event(resource).await;
        assert_eq!(url.upload_url, "", "a URL never travels in clear");
        url.upload_url = CLIENT_KEY
            .open(url.sealed_upload_url.as_deref().expect("a sealed URL"))
            .unwrap();
        url
    }

    /// Finalizes the upload `url` was issued for although S3 refused every PUT: the upload fails
    /// as missing, and the next good record on its partition flows.
    async fn finalize_with_nothing_uploaded(&self, url: &UploadUrlGenerated) {
        let resource = &url.metadata.correlation_id;
        self.finalize(url).await;
        self.upload_fails(
            resource,
            UploadFailureReason::ObjectMissing,
            "nothing was uploaded",
        )
        .await;
        self.good_record_flows_after(resource).await;
    }

    /// Sends `upload.finalize` for the upload `url` was issued for.
    async fn finalize(&self, url: &UploadUrlGenerated) {
        let resource = &url.metadata.correlation_id;
        let finalize = UploadFinalize {
            metadata: client_metadata(resource, Some(&url.metadata.event_id)),
            etag: None,
            owner_token: Some(owner_token(url)),
        };
        self.publisher.publish(resource, &finalize).await.unwrap();
    }
}

/// The owner token `url` delivered, opened with the misbehaving client's key.
fn owner_token(url: &UploadUrlGenerated) -> String {
    CLIENT_KEY
        .open(url.sealed_owner_token.as_deref().expect("an owner token"))
        .unwrap()
}

/// PUTs `body` to a pre-signed `url` as `content_type`; the status and the S3 server's answer.
async fn put(url: &str, content_type: &str, body: Vec<u8>) -> (reqwest::StatusCode, String) {
    let response = reqwest::Client::new()
        .put(url)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

/// Asserts that S3 answered a PUT with 403 Forbidden and an error that says `says`.
fn refused_by_s3((status, answer): (reqwest::StatusCode, String), says: &str) {
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "{answer}");
    assert!(answer.contains(says), "{answer}");
}

/// Deterministic bytes with no structure (a multiplicative hash of the index).
fn noise(len: u32) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// The first `percent` of a file's bytes, as an interrupted transfer leaves it.
fn truncated(file: &Path, percent: usize) -> Vec<u8> {
    let bytes = std::fs::read(file).unwrap();
    bytes[..bytes.len() * percent / 100].to_vec()
}

/// `mp3` (a constant-bitrate stream of identical frames, as sox writes it) with an `Info` tag
/// frame in front stating its frame count, as LAME writes by default: the only way an MP3
/// states its length. A tagless stream cut at a frame boundary is just a shorter stream.
fn with_info_tag(mp3: &[u8]) -> Vec<u8> {
    let header = &mp3[..4];
    let frame_len = 4 + mp3[4..]
        .windows(4)
        .position(|w| w == header)
        .expect("a second frame");
    let frames = mp3.len() / frame_len;
    assert!(
        mp3.len().is_multiple_of(frame_len)
            && (0..frames).all(|i| &mp3[i * frame_len..][..4] == header),
        "not a stream of identical frames"
    );
    // MPEG-2 mono: 9 bytes of side information (zero) between the header and the tag.
    assert_eq!(header[1] & 0x18, 0x10, "MPEG-2");
    assert_eq!(header[3] >> 6, 3, "mono");
    let mut tag = header.to_vec();
    tag.extend([0u8; 9]);
    tag.extend(b"Info");
    tag.extend(1u32.to_be_bytes()); // flags: the frame count is present
    tag.extend((frames as u32).to_be_bytes());
    tag.resize(frame_len, 0);
    tag.extend(mp3);
    tag
}

/// An Ogg Opus stream (RFC 7845) of `seconds` of 20 ms packets: a valid container whose codec
/// echo's decoder does not implement. The packets' payload is filler; no decoder gets that far.
fn ogg_opus(seconds: u64) -> Vec<u8> {
    const PRE_SKIP: u16 = 312;
    let mut head = b"OpusHead".to_vec();
    head.push(1); // version
    head.push(1); // channels
    head.extend(PRE_SKIP.to_le_bytes());
    head.extend(48_000u32.to_le_bytes()); // input sample rate
    head.extend(0i16.to_le_bytes()); // output gain
    head.push(0); // channel mapping family: mono/stereo
    let mut tags = b"OpusTags".to_vec();
    tags.extend(4u32.to_le_bytes());
    tags.extend(b"echo");
    tags.extend(0u32.to_le_bytes()); // no user comments

    const BEGIN: u8 = 0x02;
    const END: u8 = 0x04;
    let mut out = ogg_page(BEGIN, 0, 0, &[&head]);
    out.extend(ogg_page(0, 0, 1, &[&tags]));
    // TOC 0xf8: CELT fullband, 20 ms, mono, one frame; 960 samples at 48 kHz each.
    let packet: &[u8] = &[0xf8, 0xff, 0xfe, 0x00, 0x11];
    for second in 0..seconds {
        let granule = u64::from(PRE_SKIP) + (second + 1) * 50 * 960;
        let flags = if second + 1 == seconds { END } else { 0 };
        let sequence = 2 + second as u32;
        out.extend(ogg_page(flags, granule, sequence, &[packet; 50]));
    }
    out
}

/// One Ogg page (RFC 3533) of whole `packets`, with its checksum.
fn ogg_page(flags: u8, granule: u64, sequence: u32, packets: &[&[u8]]) -> Vec<u8> {
    let mut lacing = Vec::new();
    for packet in packets {
        lacing.extend(std::iter::repeat_n(255u8, packet.len() / 255));
        lacing.push((packet.len() % 255) as u8);
    }
    let mut page = b"OggS".to_vec();
    page.push(0); // version
    page.push(flags);
    page.extend(granule.to_le_bytes());
    page.extend(0x0ec0u32.to_le_bytes()); // stream serial number
    page.extend(sequence.to_le_bytes());
    page.extend(0u32.to_le_bytes()); // checksum, filled in below
    page.push(lacing.len() as u8);
    page.extend(lacing);
    for packet in packets {
        page.extend(*packet);
    }
    let crc = ogg_crc(&page);
    page[22..26].copy_from_slice(&crc.to_le_bytes());
    page
}

/// Ogg's page checksum: CRC-32 with polynomial 0x04c11db7, unreflected, no final xor.
fn ogg_crc(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |mut crc, b| {
        crc ^= u32::from(*b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
        crc
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_file_is_rejected_with_a_named_reason() {
    let case = Case::start("empty", &[]).await;
    // Zero bytes: refused at the request, before any URL is issued.
    let empty = case.write("empty.wav", &[]);
    let report = case.submit(&empty, &[]);
    assert_eq!(report["status"], "upload_failed", "{report:#}");
    assert!(!event_types(&report)
        .iter()
        .any(|t| t == "upload.url.generated"));
    let resource = report["resource_id"].as_str().unwrap();
    case.upload_fails(
        resource,
        UploadFailureReason::InvalidRequest,
        "declared size must be positive, got 0",
    )
    .await;
    // A header and no samples, on the same partition: uploaded, then refused by validation.
    let header_only = case.write("header-only.wav", &pcm_wav(16_000, 1, 0, 0));
    let resource = case
        .refused_by_validation(
            &header_only,
            &["--resource-id", &case.beside(resource)],
            ValidationFailureReason::Empty,
            "no samples",
        )
        .await;
    case.good_record_flows_after(&resource).await;
}

/// Cut at 40 %, as an interrupted transfer leaves a file: both decode without error up to the
/// cut, so only the length their headers state gives them away (an MP3 states it in the
/// `Info` tag LAME writes; a tagless MP3 cut at a frame boundary is a valid shorter stream).
#[tokio::test(flavor = "multi_thread")]
async fn truncated_wav_and_mp3_files_are_rejected_as_undecodable() {
    let case = Case::start("truncated", &[]).await;
    let wav = speak(case.dir.path(), "sentence.wav", SENTENCE).unwrap();
    let sox_mp3 = case.converted(&wav, "sentence.mp3", &[]);
    let mp3 = case.write(
        "tagged.mp3",
        &with_info_tag(&std::fs::read(sox_mp3).unwrap()),
    );
    // The second goes on the first one's partition.
    let mut resource: Option<String> = None;
    for (name, whole) in [("cut.wav", &wav), ("cut.mp3", &mp3)] {
        let cut = case.write(name, &truncated(whole, 40));
        let beside = resource.as_deref().map(|r| case.beside(r));
        let options: Vec<&str> = beside.iter().flat_map(|id| ["--resource-id", id]).collect();
        let refused = case
            .refused_by_validation(
                &cut,
                &options,
                ValidationFailureReason::Undecodable,
                "the file is truncated: its header states",
            )
            .await;
        resource = Some(refused);
    }
    case.good_record_flows_after(&resource.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn random_bytes_named_as_audio_are_rejected_as_undecodable() {
    let case = Case::start("random", &[]).await;
    let garbage = case.write("noise.wav", &noise(20_000));
    case.rejected_then_flows(
        &garbage,
        ValidationFailureReason::Undecodable,
        "not a recognised audio format",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsupported_codec_in_a_valid_container_is_rejected_as_such() {
    let case = Case::start("codec", &[]).await;
    let opus = case.write("speech.ogg", &ogg_opus(2));
    case.rejected_then_flows(
        &opus,
        ValidationFailureReason::UnsupportedCodec,
        "unsupported audio codec",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn audio_over_the_duration_limit_is_rejected_as_too_long() {
    // The good sentence lasts about 1.5 s, the long one about 4.5 s.
    let case = Case::start("too-long", &[("ECHO_VALIDATION__MAX_DURATION_MS", "3000")]).await;
    let long = speak(case.dir.path(), "long.wav", SENTENCE).unwrap();
    case.rejected_then_flows(
        &long,
        ValidationFailureReason::TooLong,
        "at most 3000 ms are accepted",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_over_the_size_limit_is_refused_before_any_url() {
    let case = Case::start("too-large", &[("ECHO_UPLOAD__MAX_SIZE_BYTES", "100000")]).await;
    let large = case.converted(&case.good, "large.wav", &["pad", "0", "4"]);
    let size = std::fs::metadata(&large).unwrap().len();
    assert!(size > 100_000 && std::fs::metadata(&case.good).unwrap().len() < 100_000);
    let report = case.submit(&large, &[]);
    assert_eq!(report["status"], "upload_failed", "{report:#}");
    assert!(!event_types(&report)
        .iter()
        .any(|t| t == "upload.url.generated"));
    let resource = report["resource_id"].as_str().unwrap();
    case.upload_fails(
        resource,
        UploadFailureReason::TooLarge,
        &format!("declared size {size} bytes is over the limit of 100000 bytes"),
    )
    .await;
    case.good_record_flows_after(resource).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_content_type_other_than_the_signed_one_is_refused_by_s3() {
    let case = Case::start("content-type", &[]).await;
    let bytes = std::fs::read(&case.good).unwrap();
    let resource = uuid::Uuid::new_v4().to_string();
    let url = case.request_url(&resource, bytes.len(), "audio/wav").await;
    refused_by_s3(
        put(&url.upload_url, "audio/flac", bytes).await,
        "SignatureDoesNotMatch",
    );
    case.finalize_with_nothing_uploaded(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pure_silence_gives_an_empty_transcript_and_the_report_says_so() {
    let case = Case::start("silence", &[]).await;
    let silence = case.path("silence.wav");
    let status = std::process::Command::new("sox")
        .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
        .arg(&silence)
        .args(["trim", "0", "3"])
        .status()
        .unwrap();
    assert!(status.success());
    let report = case.submit(&silence, &[]);
    assert_eq!(report["status"], "ready", "{report:#}");
    assert_eq!(report["transcript"].as_str().unwrap().trim(), "");
    let resource = report["resource_id"].as_str().unwrap();
    let completed: TranscriptionCompleted = case.wait_event(resource).await;
    assert_eq!(completed.word_count, 0);
    let json = case
        .s3
        .get_bytes(&completed.artifacts.json_key)
        .await
        .unwrap()
        .expect("report.json is written");
    let written: Value = serde_json::from_slice(&json).unwrap();
    let analysis = &written["analysis"];
    assert_eq!(analysis["empty"], true, "{analysis:#}");
    assert_eq!(analysis["word_count"], 0, "{analysis:#}");
    assert_eq!(analysis["duration_ms"], 3000, "{analysis:#}");
    case.good_record_flows_after(resource).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn extremely_short_audio_is_rejected_as_too_short() {
    let case = Case::start("too-short", &[]).await;
    let short = case.converted(&case.good, "short.wav", &["trim", "0", "0.3"]);
    case.rejected_then_flows(
        &short,
        ValidationFailureReason::TooShort,
        "the audio lasts 300 ms; at least 500 ms are needed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn multichannel_audio_at_odd_sample_rates_is_transcribed() {
    let case = Case::start("multichannel", &[]).await;
    let wav = speak(case.dir.path(), "sentence.wav", SENTENCE).unwrap();
    // The second file goes on the first one's partition: it is the good record after it.
    let mut beside: Option<String> = None;
    for (name, channels, rate) in [("six.wav", 6, 11_025), ("three.flac", 3, 8_000)] {
        let options: Vec<&str> = beside.iter().flat_map(|id| ["--resource-id", id]).collect();
        let file = case.converted(
            &wav,
            name,
            &["rate", &rate.to_string(), "channels", &channels.to_string()],
        );
        let report = case.submit(&file, &options);
        assert_eq!(report["status"], "ready", "{name}: {report:#}");
        let wer = word_error_rate(SENTENCE, report["transcript"].as_str().unwrap());
        assert!(wer <= 0.2, "{name}: WER {wer:.2}: {}", report["transcript"]);
        let resource = report["resource_id"].as_str().unwrap();
        let passed: ValidationPassed = case.wait_event(resource).await;
        assert_eq!(
            (passed.channels, passed.sample_rate_hz),
            (channels, rate),
            "{name}"
        );
        if let Some(id) = &beside {
            assert_eq!(resource, id, "submitted beside the first");
        }
        beside = Some(case.beside(resource));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_that_is_not_avro_goes_to_the_dlq() {
    let case = Case::start("not-avro", &[]).await;
    let key = uuid::Uuid::new_v4().to_string();
    case.raw_request_dead_lettered(
        &key,
        b"{\"filename\": \"speech.wav\"}",
        "undecodable",
        "not Confluent-framed Avro",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn avro_with_an_unknown_schema_id_goes_to_the_dlq() {
    let case = Case::start("unknown-schema", &[]).await;
    let key = uuid::Uuid::new_v4().to_string();
    // Confluent framing (magic 0, schema id) around an id no registry has handed out.
    let mut framed = vec![0u8];
    framed.extend(0x7fff_fff0u32.to_be_bytes());
    framed.extend([0x02, 0x41, 0x00]);
    case.raw_request_dead_lettered(&key, &framed, "undecodable", "404")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_known_schema_on_the_wrong_topic_goes_to_the_dlq() {
    let case = Case::start("wrong-topic", &[]).await;
    let key = uuid::Uuid::new_v4().to_string();
    // An upload.url.generated, properly registered and encoded for echo.upload.events, sent to
    // the requests topic, which does not carry it.
    let stray = UploadUrlGenerated {
        metadata: client_metadata(&key, None),
        object_key: keys::upload(&key),
        upload_url: "http://example.invalid/".into(),
        content_type: "audio/wav".into(),
        expires_at: now_ms(),
        sealed_upload_url: None,
        sealed_owner_token: None,
        owner_token_sha256: None,
    };
    let encoded = echo_runtime::codec::Codec::new(&case.env.config.registry.url)
        .unwrap()
        .encode(
            &case.env.topic("echo.upload.events"),
            echo_catalog::events::info(UploadUrlGenerated::TYPE).unwrap(),
            apache_avro::to_value(&stray).unwrap(),
        )
        .await
        .unwrap();
    case.raw_request_dead_lettered(
        &key,
        &encoded,
        "wrong_topic",
        "upload.url.generated does not belong on echo.upload.requests",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_upload_request_gets_no_second_url() {
    let case = Case::start("replayed-request", &[]).await;
    let resource = uuid::Uuid::new_v4().to_string();
    let request = upload_request(&resource, 1000, "audio/wav");
    for _ in 0..2 {
        case.publisher.publish(&resource, &request).await.unwrap();
    }
    // The good record comes after both on the same partition, so both were handled by then.
    case.good_record_flows_after(&resource).await;
    let urls = case.events::<UploadUrlGenerated>(&resource).await;
    assert_eq!(
        urls.len(),
        1,
        "one URL for one request, however often it is delivered"
    );
    // request → one quota.reserve → its quota.reserved → the URL.
    let reserves = case.events::<QuotaReserve>(&resource).await;
    assert_eq!(reserves.len(), 1, "one reservation for one request");
    assert_eq!(
        reserves[0].metadata.causation_id.as_deref(),
        Some(request.metadata.event_id.as_str())
    );
    let reserved = case.events::<QuotaReserved>(&resource).await;
    assert_eq!(reserved.len(), 1);
    assert_eq!(
        urls[0].metadata.causation_id.as_deref(),
        Some(reserved[0].metadata.event_id.as_str())
    );
    assert!(case.topic("echo.upload.dlq").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_chunk_command_has_no_second_transcription_effect() {
    const COMMANDS: &str = "echo.processing.chunk-commands";
    let case = Case::start("replayed-chunk", &[]).await;
    let report = case.submit(&case.good, &[]);
    assert_eq!(report["status"], "ready", "{report:#}");
    let resource = report["resource_id"].as_str().unwrap();

    // Deliver its (only) chunk command a second time, where it was: same partition, same
    // record, as a producer retry or a re-read would.
    let commands = case.topic(COMMANDS).await;
    let original: Vec<&Seen> = of_resource(&commands, resource).collect();
    assert_eq!(original.len(), 1, "one chunk");
    let original = original[0];
    let producer: FutureProducer = ClientConfig::new()
        .set(
            "bootstrap.servers",
            &case.env.config.kafka.bootstrap_servers,
        )
        .create()
        .unwrap();
    let replay = producer
        .send(
            FutureRecord::to(&case.env.topic(COMMANDS))
                .partition(original.partition)
                .key(&original.key)
                .payload(&original.payload)
                .headers(original.headers.to_kafka()),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    assert_eq!(replay.partition, original.partition);

    // The worker group reads past the replay; whatever it did about it is committed with it.
    case.committed_past("chunk-worker", COMMANDS, replay.partition, replay.offset)
        .await;
    let started = case.events::<ChunkProcessingStarted>(resource).await;
    let completed = case.events::<ChunkProcessingCompleted>(resource).await;
    assert_eq!(
        (started.len(), completed.len()),
        (1, 1),
        "one transcription"
    );
    assert_eq!(
        case.events::<TranscriptionCompleted>(resource).await.len(),
        1
    );
    assert_eq!(case.events::<ResourceReady>(resource).await.len(), 1);
    assert!(case.topic("echo.chunk-worker.dlq").await.is_empty());
    // A chunk command's partition follows its job, which a client cannot choose: the
    // committed offset above shows the replay's partition moved on, and the next file is
    // transcribed.
    case.good_record_flows_after(resource).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finalize_for_an_unknown_upload_goes_to_the_dlq() {
    let case = Case::start("unknown-finalize", &[]).await;
    let resource = uuid::Uuid::new_v4().to_string();
    let finalize = UploadFinalize {
        metadata: client_metadata(&resource, None),
        etag: None,
        owner_token: None,
    };
    let at = case.publisher.publish(&resource, &finalize).await.unwrap();
    case.dead_lettered(
        "upload",
        "echo.upload.commands",
        at,
        "permanent",
        &format!("upload.finalize for unknown upload {resource}"),
    )
    .await;
    assert!(case.events::<UploadFailed>(&resource).await.is_empty());
    case.good_record_flows_on(at.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_upload_url_is_refused_by_s3_and_the_upload_expires() {
    let case = Case::start("expired-url", &[("ECHO_UPLOAD__URL_TTL_SECS", "4")]).await;
    let bytes = std::fs::read(&case.good).unwrap();
    let resource = uuid::Uuid::new_v4().to_string();
    let url = case.request_url(&resource, bytes.len(), "audio/wav").await;
    // upload.expired fires when the URL's lifetime is over.
    let expired: UploadExpired = case.wait_event(&resource).await;
    assert!(now_ms() >= expired.expired_at);
    refused_by_s3(put(&url.upload_url, "audio/wav", bytes).await, "expired");
    case.upload_fails(&resource, UploadFailureReason::Expired, "expired")
        .await;
    case.good_record_flows_after(&resource).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_upload_url_is_refused_by_s3() {
    let case = Case::start("tampered-url", &[]).await;
    let bytes = std::fs::read(&case.good).unwrap();
    let resource = uuid::Uuid::new_v4().to_string();
    let url = case.request_url(&resource, bytes.len(), "audio/wav").await;
    // Point the signed URL at another object key, keeping its signature.
    let tampered = url
        .upload_url
        .replacen(&url.object_key, &keys::upload("someone-else"), 1);
    assert_ne!(tampered, url.upload_url);
    refused_by_s3(
        put(&tampered, "audio/wav", bytes.clone()).await,
        "SignatureDoesNotMatch",
    );
    // And a signature with one character changed.
    let (head, signature) = url.upload_url.split_once("X-Amz-Signature=").unwrap();
    let flipped = if signature.starts_with('0') { '1' } else { '0' };
    let forged = format!("{head}X-Amz-Signature={flipped}{}", &signature[1..]);
    refused_by_s3(
        put(&forged, "audio/wav", bytes).await,
        "SignatureDoesNotMatch",
    );
    case.finalize_with_nothing_uploaded(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn path_tricks_in_the_filename_do_not_move_the_object_key() {
    let case = Case::start("path-tricks", &[]).await;
    let report = case.submit(
        &case.good,
        &["--filename", "../../../etc/passwd/..%2f..%2fspeech.wav"],
    );
    assert_eq!(report["status"], "ready", "{report:#}");
    let resource = report["resource_id"].as_str().unwrap();
    let url: UploadUrlGenerated = case.wait_event(resource).await;
    assert_eq!(url.object_key, keys::upload(resource));
    // The URL itself is sealed to the submitting client; its key is the object key above.
    assert_eq!(url.upload_url, "");
    assert!(url.sealed_upload_url.is_some());
    for artifact in report["artifacts"].as_object().unwrap().values() {
        assert!(
            artifact
                .as_str()
                .unwrap()
                .starts_with(&keys::prefix(resource)),
            "{artifact}"
        );
    }
    case.good_record_flows_after(resource).await;
}

// ---------------------------------------------------------------- hostile clients: identity

/// A resource that became ready, and its only `upload.url.generated`.
async fn ready_resource(case: &Case) -> (String, UploadUrlGenerated) {
    let report = case.submit(&case.good, &[]);
    assert_eq!(report["status"], "ready", "{report:#}");
    let resource = report["resource_id"].as_str().unwrap().to_string();
    let url: UploadUrlGenerated = case.wait_event(&resource).await;
    (resource, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_keyed_by_another_id_cannot_reach_an_existing_resource() {
    let case = Case::start("foreign-key-request", &[]).await;
    let (victim, _) = ready_resource(&case).await;
    // Names the ready resource in its metadata, under a key of its own: once asking for a
    // fresh URL to the victim's object, once with a refused content type (which would fail,
    // and clean up, the victim's upload).
    let key = case.beside(&victim);
    for content_type in ["audio/wav", "video/mp4"] {
        let request = upload_request(&victim, 1000, content_type);
        let at = case.publisher.publish(&key, &request).await.unwrap();
        case.dead_lettered("upload", REQUESTS, at, "key_mismatch", "KEY_MISMATCH")
            .await;
    }
    case.good_record_flows_after(&key).await;
    assert_eq!(
        case.events::<UploadUrlGenerated>(&victim).await.len(),
        1,
        "no second URL for the victim's object"
    );
    assert!(case.events::<UploadFailed>(&victim).await.is_empty());
    assert_eq!(case.events::<CleanupCompleted>(&victim).await.len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_on_another_partition_than_its_key_cannot_reach_an_existing_resource() {
    let case = Case::start("foreign-partition-request", &[]).await;
    let (victim, _) = ready_resource(&case).await;
    // The right key, but sent to another partition (any client may pick one, or use a
    // partitioner other than the Java client's), where the victim's state is not.
    let partitions = case.resource_partitions();
    let elsewhere = (partition_of(&victim, partitions) + 1) % partitions;
    let request = upload_request(&victim, 1000, "audio/wav");
    let at = case.publish_on(elsewhere, &victim, &request).await;
    case.dead_lettered(
        "upload",
        REQUESTS,
        at,
        "key_mismatch",
        "belongs on partition",
    )
    .await;
    case.good_record_flows_on(elsewhere).await;
    assert_eq!(
        case.events::<UploadUrlGenerated>(&victim).await.len(),
        1,
        "no second URL for the victim's object"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finalize_keyed_by_another_id_is_dead_lettered() {
    let case = Case::start("foreign-key-finalize", &[]).await;
    let bytes = std::fs::read(&case.good).unwrap();
    let victim = uuid::Uuid::new_v4().to_string();
    let url = case.request_url(&victim, bytes.len(), "audio/wav").await;
    let key = case.beside(&victim);
    let finalize = UploadFinalize {
        metadata: client_metadata(&victim, Some(&url.metadata.event_id)),
        etag: None,
        owner_token: None,
    };
    let at = case.publisher.publish(&key, &finalize).await.unwrap();
    case.dead_lettered(
        "upload",
        "echo.upload.commands",
        at,
        "key_mismatch",
        "KEY_MISMATCH",
    )
    .await;
    // Had it been handled, the victim's upload would have failed as missing.
    case.good_record_flows_after(&key).await;
    assert!(case.events::<UploadFailed>(&victim).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunk_command_keyed_by_another_chunk_is_dead_lettered() {
    const COMMANDS: &str = "echo.processing.chunk-commands";
    let case = Case::start("foreign-key-chunk", &[]).await;
    let (resource, _) = ready_resource(&case).await;
    let commands = case.topic(COMMANDS).await;
    let original = of_resource(&commands, &resource).next().unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set(
            "bootstrap.servers",
            &case.env.config.kafka.bootstrap_servers,
        )
        .create()
        .unwrap();
    // The resource's own chunk command, re-sent under another chunk's key.
    let forged = producer
        .send(
            FutureRecord::to(&case.env.topic(COMMANDS))
                .partition(original.partition)
                .key("another-job:0")
                .payload(&original.payload)
                .headers(original.headers.to_kafka()),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    case.dead_lettered(
        "chunk-worker",
        COMMANDS,
        (forged.partition, forged.offset),
        "key_mismatch",
        "KEY_MISMATCH",
    )
    .await;
    case.committed_past("chunk-worker", COMMANDS, forged.partition, forged.offset)
        .await;
    assert_eq!(
        case.events::<ChunkProcessingStarted>(&resource).await.len(),
        1
    );
    case.good_record_flows_after(&resource).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_used_resource_id_never_gets_a_url_again_even_after_its_state_is_retired() {
    let case = Case::start("used-id", &[("ECHO_RUNTIME__RETIRE_AFTER_MS", "1000")]).await;
    // Issued a URL, finalized with nothing uploaded: the upload ends, its key retires.
    let used = uuid::Uuid::new_v4().to_string();
    let url = case.request_url(&used, 1000, "audio/wav").await;
    case.finalize_with_nothing_uploaded(&url).await;
    // Refused at once (a content type echo does not take): it never used its id.
    let refused = case.beside(&used);
    let request = upload_request(&refused, 1000, "video/mp4");
    case.publisher.publish(&refused, &request).await.unwrap();
    case.upload_fails(
        &refused,
        UploadFailureReason::UnsupportedContentType,
        "video/mp4",
    )
    .await;
    // Well past the retirement, a new request (new event id, right key) for each id.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for resource in [&used, &refused] {
        let again = upload_request(resource, 1000, "audio/wav");
        case.publisher.publish(resource, &again).await.unwrap();
    }
    case.good_record_flows_after(&used).await;
    assert_eq!(
        case.events::<UploadUrlGenerated>(&used).await.len(),
        1,
        "a used resource id got a second URL"
    );
    // The refused request left nothing behind: its id is free, and the retry gets its URL.
    case.wait_event::<UploadUrlGenerated>(&refused).await;
}

// ---------------------------------------------------------------- hostile clients: uploads

#[tokio::test(flavor = "multi_thread")]
async fn a_file_replaced_after_finalize_is_not_transcribed() {
    // No chunk worker yet: the chunks wait while the client replaces the file.
    let case = Case::start_with_chunk_workers("replaced-after-finalize", 0, &[]).await;
    let verified = std::fs::read(&case.good).unwrap();
    let other = speak(
        case.dir.path(),
        "other.wav",
        "The train crossed a long bridge.",
    )
    .unwrap();
    // The other words, cut or padded to exactly the verified file's length.
    let samples = (verified.len() - 44) / 2;
    let replacement = case.converted(
        &other,
        "replacement.wav",
        &["pad", "0", "10", "trim", "0", &format!("{samples}s")],
    );
    let replacement = std::fs::read(replacement).unwrap();
    assert_eq!(
        replacement.len(),
        verified.len(),
        "same size as the verified file"
    );

    let resource = uuid::Uuid::new_v4().to_string();
    let url = case
        .request_url(&resource, verified.len(), "audio/wav")
        .await;
    let (status, answer) = put(&url.upload_url, "audio/wav", verified).await;
    assert!(status.is_success(), "{status}: {answer}");
    case.finalize(&url).await;
    let completed: UploadCompleted = case.wait_event(&resource).await;
    assert!(
        completed.etag.is_some(),
        "upload.completed records the ETag"
    );
    // Validation examined the verified file and planned the job; now the file is replaced
    // (the URL is still valid), before any worker reads it.
    case.wait_event::<ProcessingJobCreated>(&resource).await;
    let (status, answer) = put(&url.upload_url, "audio/wav", replacement).await;
    assert!(status.is_success(), "{status}: {answer}");
    // The job is one chunk: the express worker's (the pool passes over it).
    let _worker =
        Pipeline::start_processor(bin(), &case.env, "express-chunk-worker", "late", &[]).unwrap();

    let rejected: ResourceRejected = case.wait_event(&resource).await;
    assert!(
        rejected.message.contains("OBJECT_CHANGED"),
        "{:?}: {}",
        rejected.reason_code,
        rejected.message
    );
    assert!(case.events::<ResourceReady>(&resource).await.is_empty());
    case.good_record_flows_after(&resource).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_of_another_length_than_declared_is_refused_by_s3() {
    let case = Case::start("length-mismatch", &[]).await;
    let bytes = std::fs::read(&case.good).unwrap();
    let resource = uuid::Uuid::new_v4().to_string();
    let url = case
        .request_url(&resource, bytes.len() - 1000, "audio/wav")
        .await;
    refused_by_s3(
        put(&url.upload_url, "audio/wav", bytes).await,
        "SignatureDoesNotMatch",
    );
    case.finalize_with_nothing_uploaded(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_put_after_the_cleanup_is_swept_once_the_url_expired() {
    let case = Case::start(
        "swept",
        &[
            ("ECHO_UPLOAD__URL_TTL_SECS", "15"),
            ("ECHO_RESOURCE__SWEEP_GRACE_MS", "1000"),
        ],
    )
    .await;
    let junk = noise(4000);
    let resource = uuid::Uuid::new_v4().to_string();
    let url = case.request_url(&resource, junk.len(), "audio/wav").await;
    let (status, answer) = put(&url.upload_url, "audio/wav", junk.clone()).await;
    assert!(status.is_success(), "{status}: {answer}");
    case.finalize(&url).await;
    // Not audio: rejected and cleaned up while the URL is still valid.
    case.wait_event::<CleanupCompleted>(&resource).await;
    assert!(
        now_ms() < url.expires_at,
        "the cleanup came before the URL expired"
    );
    let (status, answer) = put(&url.upload_url, "audio/wav", junk).await;
    assert!(
        status.is_success(),
        "a PUT after the cleanup: {status}: {answer}"
    );
    let key = keys::upload(&resource);
    assert!(case.s3.head(&key).await.unwrap().is_some());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while case.s3.head(&key).await.unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the object PUT after the cleanup is still there 60 s later (URL expired at {})",
            url.expires_at
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        now_ms() >= url.expires_at,
        "swept only once the URL expired"
    );
    case.good_record_flows_after(&resource).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_url_is_readable_only_by_its_requester() {
    let case = Case::start("sealed-url", &[]).await;
    let resource = uuid::Uuid::new_v4().to_string();
    let url = case.request_url(&resource, 1000, "audio/wav").await;
    assert!(
        url.upload_url.contains("X-Amz-Signature="),
        "the requester opens it"
    );
    // What every other reader of the events topic sees.
    let seen = case.events::<UploadUrlGenerated>(&resource).await;
    assert_eq!(seen[0].upload_url, "");
    let sealed = seen[0].sealed_upload_url.as_deref().unwrap();
    assert!(!sealed.contains("X-Amz"), "{sealed}");
    assert!(
        ReplyKey::generate().open(sealed).is_err(),
        "another client cannot open it"
    );

    // A request with no key to seal to gets no URL at all.
    let other = case.beside(&resource);
    let request = UploadRequested {
        reply_key: None,
        tenant_token: None,
        ..upload_request(&other, 1000, "audio/wav")
    };
    case.publisher.publish(&other, &request).await.unwrap();
    case.upload_fails(
        &other,
        UploadFailureReason::InvalidRequest,
        "reply_key is required",
    )
    .await;
    assert!(case.events::<UploadUrlGenerated>(&other).await.is_empty());
    case.good_record_flows_after(&other).await;
}

/// Per-upload options a careless or hostile client could send: a prompt of 200 KB, caption
/// rules that would make every cue cost without bound, or nothing on screen. Each is refused
/// before a URL is issued; nothing of it reaches a transcription, and the partition flows on.
#[tokio::test(flavor = "multi_thread")]
async fn options_no_transcription_could_use_are_refused_before_any_url() {
    let case = Case::start("bad-options", &[]).await;
    let rules = CaptionRules::default();
    let cases = [
        (
            TranscriptOptions {
                prompt: Some("Quetzalcoatl ".repeat(16_000)),
                ..TranscriptOptions::default()
            },
            "prompt has 208000 characters",
        ),
        (
            TranscriptOptions {
                caption: Some(CaptionRules {
                    max_lines: 1_000_000,
                    ..rules.clone()
                }),
                ..TranscriptOptions::default()
            },
            "caption: max_lines must be 1 to 3",
        ),
        (
            TranscriptOptions {
                caption: Some(CaptionRules {
                    max_duration_ms: -5,
                    ..rules.clone()
                }),
                ..TranscriptOptions::default()
            },
            "caption: durations",
        ),
    ];
    let mut last = String::new();
    for (options, says) in cases {
        let resource = uuid::Uuid::new_v4().to_string();
        let request = UploadRequested {
            options: Some(options),
            ..upload_request(&resource, 1000, "audio/wav")
        };
        case.publisher.publish(&resource, &request).await.unwrap();
        case.upload_fails(&resource, UploadFailureReason::InvalidRequest, says)
            .await;
        assert!(case
            .events::<UploadUrlGenerated>(&resource)
            .await
            .is_empty());
        last = resource;
    }
    case.good_record_flows_after(&last).await;
}

/// Every client may read the upload events and write the upload commands, so a resource's id
/// is public as soon as its URL is issued. An attacker tails the events topic with a plain
/// consumer and at once sends `upload.finalize` for every resource it sees (once with no owner
/// token, once with a made-up one), before the owner's PUT, which comes 3 s later. Without
/// owner tokens the attacker's finalize found nothing uploaded and failed the owner's upload
/// (`OBJECT_MISSING`, its id spent); now each is refused to the upload DLQ as `unauthorized`,
/// and the owner's upload goes on to `resource.ready`.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_racing_the_owner_cannot_finalize_its_upload() {
    use rdkafka::consumer::StreamConsumer;
    use rdkafka::Message;

    let case = Case::start("hijack", &[]).await;
    let events = case.env.topic("echo.upload.events");
    let commands = case.env.topic("echo.upload.commands");
    let bootstrap = case.env.config.kafka.bootstrap_servers.clone();
    let codec = echo_runtime::codec::Codec::new(&case.env.config.registry.url).unwrap();
    let tail: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", format!("attacker-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    tail.subscribe(&[&events]).unwrap();
    // Placed as echo's clients are told to place records (the Java client's partitioner), so
    // its finalize lands where the owner's does, past the key and partition checks.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<(String, i32, i64)>();
    let attacker = tokio::spawn(async move {
        loop {
            let Ok(message) = tail.recv().await else {
                continue;
            };
            let Some(resource) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                continue;
            };
            let resource = resource.to_string();
            for owner_token in [None, Some(echo_catalog::owner::generate())] {
                let finalize = UploadFinalize {
                    metadata: EventMetadata::new(
                        uuid::Uuid::new_v4().to_string(),
                        resource.clone(),
                        "attacker",
                        now_ms(),
                    ),
                    etag: None,
                    owner_token,
                };
                let encoded = codec
                    .encode(
                        &commands,
                        echo_catalog::events::info(UploadFinalize::TYPE).unwrap(),
                        apache_avro::to_value(&finalize).unwrap(),
                    )
                    .await
                    .unwrap();
                let sent = producer
                    .send(
                        FutureRecord::to(&commands).key(&resource).payload(&encoded),
                        Duration::from_secs(30),
                    )
                    .await
                    .map_err(|(e, _)| e)
                    .unwrap();
                let _ = sent_tx.send((resource.clone(), sent.partition, sent.offset));
            }
        }
    });

    let bytes = std::fs::read(&case.good).unwrap();
    let resource = uuid::Uuid::new_v4().to_string();
    let url = case.request_url(&resource, bytes.len(), "audio/wav").await;
    // The attacker has finalized twice before the owner even starts its PUT.
    let mut forged = Vec::new();
    while forged.len() < 2 {
        let (of, partition, offset) = tokio::time::timeout(PATIENCE, sent_rx.recv())
            .await
            .expect("the attacker finalizes")
            .unwrap();
        if of == resource {
            forged.push((partition, offset));
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, answer) = put(&url.upload_url, "audio/wav", bytes).await;
    assert!(status.is_success(), "{status}: {answer}");
    case.finalize(&url).await;

    let ready: ResourceReady = case.wait_event(&resource).await;
    assert_eq!(ready.metadata.correlation_id, resource);
    attacker.abort();
    assert!(
        case.events::<UploadFailed>(&resource).await.is_empty(),
        "the attacker failed the owner's upload"
    );
    assert_eq!(case.events::<UploadCompleted>(&resource).await.len(), 1);
    for at in forged {
        case.dead_lettered(
            "upload",
            "echo.upload.commands",
            at,
            "unauthorized",
            echo_upload::decide::OWNER_TOKEN_REFUSED,
        )
        .await;
    }
}

// ---------------------------------------------------------------- hostile input: exhaustion
// Inputs that would exhaust memory or CPU if taken at their word.

/// Peak memory (KiB) a pipeline that meets the hostile files and then transcribes a good one
/// stays under: generous for whisper and every processor in one process (measured: about
/// 120 MB before the good file), far under what believing the header cost (23 GB).
const BOUNDED_PEAK_KIB: u64 = 1024 * 1024;

/// The file that took a whole `echoctl run all` to 23 GB: 32 KB whose header states
/// 2,147,483,647 Hz. Refused when opened, before a resampler is sized from the rate; the
/// process's peak memory stays where it was. Beside it, a header claiming 4 GB of samples
/// (32 KB present) is refused on the length it states, without being decoded.
#[tokio::test(flavor = "multi_thread")]
async fn a_wav_stating_two_billion_hz_is_refused_before_anything_is_sized() {
    let case = Case::start("two-billion-hz", &[]).await;
    let hostile = case.write(
        "two-billion-hz.wav",
        &pcm_wav(i32::MAX as u32, 1, 32_000, 32_000),
    );
    assert!(std::fs::metadata(&hostile).unwrap().len() < 33_000);
    let resource = case
        .refused_by_validation(
            &hostile,
            &[],
            ValidationFailureReason::Undecodable,
            "sample rate 2147483647 Hz is outside the accepted 8000..=192000 Hz",
        )
        .await;
    let peak = case
        .pipeline
        .peak_rss_kib()
        .expect("the pipeline is still running");
    eprintln!("peak RSS of echoctl run all after the hostile rate: {peak} KiB");
    assert!(peak < BOUNDED_PEAK_KIB, "peak RSS {peak} KiB");

    let liar = case.write("liar.wav", &pcm_wav(16_000, 1, u32::MAX - 64, 32_000));
    let resource = case
        .refused_by_validation(
            &liar,
            &["--resource-id", &case.beside(&resource)],
            ValidationFailureReason::TooLong,
            "at most 10800000 ms are accepted",
        )
        .await;
    case.good_record_flows_after(&resource).await;
    let peak = case
        .pipeline
        .peak_rss_kib()
        .expect("the pipeline is still running");
    eprintln!("peak RSS of echoctl run all after the good file: {peak} KiB");
    assert!(peak < BOUNDED_PEAK_KIB, "peak RSS {peak} KiB");
}

/// WAV's own limit is 26 channels, which the decoder enforces while reading the header; up to
/// that, echo's limit of 8 refuses the file by name before a decoder is built for it.
#[tokio::test(flavor = "multi_thread")]
async fn wavs_of_16_and_64_channels_are_refused() {
    let case = Case::start("channels", &[]).await;
    let sixteen = case.write(
        "sixteen.wav",
        &pcm_wav(16_000, 16, 16 * 32_000, 16 * 32_000),
    );
    let resource = case
        .refused_by_validation(
            &sixteen,
            &[],
            ValidationFailureReason::TooManyChannels,
            "the audio has 16 channels; at most 8 are accepted",
        )
        .await;
    let sixty_four = case.write(
        "sixty-four.wav",
        &pcm_wav(16_000, 64, 64 * 32_000, 64 * 32_000),
    );
    let resource = case
        .refused_by_validation(
            &sixty_four,
            &["--resource-id", &case.beside(&resource)],
            ValidationFailureReason::Undecodable,
            "invalid channel count",
        )
        .await;
    case.good_record_flows_after(&resource).await;
}

/// A well-framed `upload.requested` (magic byte, the registry's id of its schema) whose body
/// is a length claiming a 2 GB, then a 256 MB, event id: measured against the writer schema
/// before decoding and refused by name, where a decoder taking the claim at its word would
/// allocate first (and the 256 MB one stays under the Avro library's default limit).
#[tokio::test(flavor = "multi_thread")]
async fn avro_claiming_a_huge_string_goes_to_the_dlq_undecoded() {
    let case = Case::start("avro-huge-string", &[]).await;
    let key = uuid::Uuid::new_v4().to_string();
    let genuine = echo_runtime::codec::Codec::new(&case.env.config.registry.url)
        .unwrap()
        .encode(
            &case.env.topic(REQUESTS),
            echo_catalog::events::info(UploadRequested::TYPE).unwrap(),
            apache_avro::to_value(upload_request(&key, 1_000, "audio/wav")).unwrap(),
        )
        .await
        .unwrap();
    for claimed in [2_000_000_000i64, 256 * 1024 * 1024] {
        let mut hostile = genuine[..5].to_vec();
        // Avro's zigzag varint of the string length.
        let mut zigzag = (claimed << 1) as u64;
        while zigzag >= 0x80 {
            hostile.push(zigzag as u8 | 0x80);
            zigzag >>= 7;
        }
        hostile.push(zigzag as u8);
        hostile.extend(b"abc");
        assert!(hostile.len() < 20);
        case.raw_request_dead_lettered(
            &key,
            &hostile,
            "undecodable",
            "the record would decode into more than the limit of 16777216 bytes",
        )
        .await;
    }
}

/// A `chunk.process` for a real upload whose range is `0..i64::MAX`: the worker decodes only a
/// chunk's range and holds it in memory, so a range longer than `chunk_worker.max_chunk_ms` is
/// a failed chunk, not a request to decode (and hold) the whole file.
#[tokio::test(flavor = "multi_thread")]
async fn a_chunk_command_for_an_endless_range_fails_the_chunk() {
    const COMMANDS: &str = "echo.processing.chunk-commands";
    let case = Case::start("endless-chunk", &[]).await;
    let report = case.submit(&case.good, &[]);
    assert_eq!(report["status"], "ready", "{report:#}");
    let resource = report["resource_id"].as_str().unwrap();
    let commands = case.topic(COMMANDS).await;
    let original: ChunkProcess = decode(of_resource(&commands, resource).next().unwrap());

    let job_id = uuid::Uuid::new_v4().to_string();
    let endless = ChunkProcess {
        metadata: client_metadata(resource, None),
        job_id: job_id.clone(),
        start_ms: 0,
        end_ms: i64::MAX,
        ..original
    };
    // Keyed and placed as validation places a job's first chunk.
    let partitions = case
        .env
        .catalogue
        .partitions_of(case.env.catalogue.topic(COMMANDS).unwrap());
    let (partition, offset) = case
        .publish_on(
            echo_catalog::keys::chunk_partition(&job_id, 0, endless.chunk_count, partitions),
            &echo_catalog::keys::chunk_key(&job_id, 0),
            &endless,
        )
        .await;
    case.committed_past("chunk-worker", COMMANDS, partition, offset)
        .await;
    let failed: Vec<ChunkProcessingFailed> = case
        .events::<ChunkProcessingFailed>(resource)
        .await
        .into_iter()
        .filter(|f| f.job_id == job_id)
        .collect();
    assert_eq!(failed.len(), 1, "one chunk.processing.failed");
    assert!(
        failed[0]
            .reason
            .contains("is longer than the 600000 ms accepted"),
        "{}",
        failed[0].reason
    );
    let completed = case.events::<ChunkProcessingCompleted>(resource).await;
    assert!(
        completed.iter().all(|c| c.job_id != job_id),
        "not transcribed"
    );
    case.good_record_flows_after(resource).await;
}

// ---------------------------------------------------------------- hostile clients: tenants

/// The secret the quota case's deployment issues tenant tokens under.
const TENANT_SECRET: &str = "the quota case's tenant secret, 32+ bytes";

/// Publishes `upload.requested` for a fresh resource with `token`, declaring `declared_size`
/// bytes, as a plain client does (Confluent-framed Avro, the Java client's partitioner);
/// returns the resource id.
async fn request_as_tenant(
    case: &Case,
    producer: &FutureProducer,
    token: Option<&str>,
    declared_size: usize,
) -> String {
    let resource = uuid::Uuid::new_v4().to_string();
    let request = UploadRequested {
        tenant_token: token.map(String::from),
        ..upload_request(&resource, declared_size, "audio/wav")
    };
    let topic = case.env.topic(REQUESTS);
    let encoded = echo_runtime::codec::Codec::new(&case.env.config.registry.url)
        .unwrap()
        .encode(
            &topic,
            echo_catalog::events::info(UploadRequested::TYPE).unwrap(),
            apache_avro::to_value(&request).unwrap(),
        )
        .await
        .unwrap();
    producer
        .send(
            FutureRecord::to(&topic).key(&resource).payload(&encoded),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    resource
}

/// Waits for the request of `resource` to get its URL.
async fn admitted(case: &Case, resource: String) -> String {
    case.wait_event::<UploadUrlGenerated>(&resource).await;
    resource
}

/// Waits for the request of `resource` to fail with `reason` and a message containing `says`,
/// and checks it got no URL.
async fn refused(case: &Case, resource: String, reason: UploadFailureReason, says: &str) {
    let failed: UploadFailed = case.wait_event(&resource).await;
    assert_eq!(failed.reason_code, reason, "{}", failed.message);
    assert!(failed.message.contains(says), "{}", failed.message);
    assert!(
        case.events::<UploadUrlGenerated>(&resource)
            .await
            .is_empty(),
        "a refused request got a URL"
    );
}

/// A deployment that requires tenant tokens, with a greedy tenant allowed 2 jobs in flight, a
/// hoarder 1500 stored bytes and a hasty one 2 requests a minute. Each, with a plain Kafka
/// client, asks for more: the request over the limit fails with the limit's reason and gets no
/// URL (so nothing can be stored), while a polite tenant's file goes through `echoctl submit`
/// to `resource.ready` meanwhile. A job that ends gives its slot back: the greedy tenant's next
/// request is admitted. Forged and missing tokens fail `UNKNOWN_TENANT`. Without the quota
/// processor every one of these requests got its URL.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_at_its_limits_is_refused_while_another_is_served() {
    let case = Case::start(
        "quota",
        &[
            ("ECHO_UPLOAD__TENANT_SECRET", TENANT_SECRET),
            ("ECHO_UPLOAD__ALLOW_ANONYMOUS", "false"),
            ("ECHO_QUOTA__TENANTS__GREEDY__JOBS_IN_FLIGHT", "2"),
            ("ECHO_QUOTA__TENANTS__HOARDER__STORED_BYTES", "1500"),
            ("ECHO_QUOTA__TENANTS__HASTY__REQUESTS_PER_MINUTE", "2"),
        ],
    )
    .await;
    let token = |tenant: &str| echo_catalog::tenant::issue(TENANT_SECRET, tenant).unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set(
            "bootstrap.servers",
            &case.env.config.kafka.bootstrap_servers,
        )
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();

    let greedy = token("greedy");
    let first = admitted(
        &case,
        request_as_tenant(&case, &producer, Some(&greedy), 1000).await,
    )
    .await;
    admitted(
        &case,
        request_as_tenant(&case, &producer, Some(&greedy), 1000).await,
    )
    .await;
    refused(
        &case,
        request_as_tenant(&case, &producer, Some(&greedy), 1000).await,
        UploadFailureReason::QuotaJobsInFlight,
        "tenant greedy: 2 jobs in flight",
    )
    .await;

    let hoarder = token("hoarder");
    admitted(
        &case,
        request_as_tenant(&case, &producer, Some(&hoarder), 1000).await,
    )
    .await;
    refused(
        &case,
        request_as_tenant(&case, &producer, Some(&hoarder), 1000).await,
        UploadFailureReason::QuotaStoredBytes,
        "tenant hoarder: 1000 bytes stored",
    )
    .await;

    let hasty = token("hasty");
    for _ in 0..2 {
        admitted(
            &case,
            request_as_tenant(&case, &producer, Some(&hasty), 1000).await,
        )
        .await;
    }
    refused(
        &case,
        request_as_tenant(&case, &producer, Some(&hasty), 1000).await,
        UploadFailureReason::QuotaRequestsPerMinute,
        "tenant hasty: 2 requests admitted in the last minute",
    )
    .await;

    let forged = format!("polite.{}", greedy.split_once('.').unwrap().1);
    for token in [Some(forged.as_str()), None] {
        refused(
            &case,
            request_as_tenant(&case, &producer, token, 1000).await,
            UploadFailureReason::UnknownTenant,
            "tenant token",
        )
        .await;
    }

    // Another tenant is served while the greedy one is at its limit.
    let polite = token("polite");
    let report = submit_with(
        bin(),
        &case.env,
        &case.good,
        &[],
        &[("ECHO_TENANT_TOKEN", &polite)],
    )
    .unwrap();
    assert_eq!(report["status"], "ready", "{report:#}");

    // The greedy tenant's first job ends (nothing was uploaded): its slot is free again.
    let url: UploadUrlGenerated = case.wait_event(&first).await;
    case.finalize(&url).await;
    case.upload_fails(
        &first,
        UploadFailureReason::ObjectMissing,
        "nothing was uploaded",
    )
    .await;
    let started = std::time::Instant::now();
    loop {
        let resource = request_as_tenant(&case, &producer, Some(&greedy), 1000).await;
        let issued = tokio::time::timeout(
            Duration::from_secs(20),
            case.wait_event::<UploadUrlGenerated>(&resource),
        )
        .await;
        if issued.is_ok() {
            break;
        }
        // The release travels through the resource processor; until it lands, refused.
        let refusal = case.events::<UploadFailed>(&resource).await;
        assert_eq!(
            refusal[0].reason_code,
            UploadFailureReason::QuotaJobsInFlight
        );
        assert!(
            started.elapsed() < PATIENCE,
            "the greedy tenant's slot never came back"
        );
    }
}
