//! The whole pipeline end to end, as operators and clients run it: `echoctl run all` in a
//! child process and clients against it, on the real broker, registry, S3 server and whisper
//! model. Each test has its own topic prefix; they run one at a time (each starts whisper).

use std::path::Path;
use std::time::Duration;

use echo_catalog::events::{
    ChunkProcessingCompleted, ChunkProcessingStarted, ProcessingJobCreated,
};
use echo_catalog::record::Record;
use echo_tests::pipeline::{
    convert, event_types, speak, submit, submit_with, word_error_rate, Pipeline,
};
use echo_tests::{wait_for, Seen, TestEnv};

const BIN: &str = env!("CARGO_BIN_EXE_echoctl");

/// A bit over a minute of speech in flite's voice: several chunks.
const SCRIPT: &str = "The morning train left the station a few minutes late. Most of the passengers \
were reading or looking out of the windows at the fields. A small dog slept under one of the seats \
near the door. When the conductor came through the car, he checked every ticket with great care. \
Outside, the clouds were moving slowly across the sky, and the light changed from grey to gold. \
A woman near the back of the car was writing a letter to her brother. She told him about her new \
job at the library and the people she had met there. The train crossed a long bridge over a wide \
river. Children on the bank waved at the windows as it passed. After an hour the train reached the \
city, and everyone stood up to collect their bags. The dog woke up, stretched, and followed its \
owner onto the platform. It was going to be a busy day in town. In the afternoon the weather turned \
warm, and many people walked along the river to enjoy the sun. A group of students sat on the grass \
and talked about their plans for the summer. One of them wanted to travel to the mountains, another \
hoped to work on a farm near the coast. Later, the bells of the old church rang six times, and the \
shops began to close for the evening.";

/// A short sentence tiny.en transcribes exactly from flite.
const SENTENCE: &str =
    "Please call Stella and ask her to bring these things with her from the store.";

/// Measured on the 68 s script with tiny.en: 0.022 in 30 s chunks (five misheard words such
/// as "grey to gold"); the test cuts 10 s chunks, so more seams. The bound leaves room for
/// seam effects without hiding a lost chunk, which would cost at least an eighth of the words.
const MAX_WER: f64 = 0.12;

/// The text of the artifact `kind` ("txt", "srt", "vtt", "json") of a submit report.
async fn artifact(env: &TestEnv, report: &serde_json::Value, kind: &str) -> String {
    let key = report["artifacts"][kind].as_str().unwrap();
    let bytes = echo_storage::S3Service::new(&env.config)
        .unwrap()
        .get_bytes(key)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{key} was not written"));
    String::from_utf8(bytes).unwrap()
}

/// One caption cue as read back from a file: times in ms and its lines.
#[derive(Debug)]
struct ReadCue {
    start_ms: i64,
    end_ms: i64,
    lines: Vec<String>,
}

/// The cues of an SRT or VTT file (`HH:MM:SS,mmm` or `.mmm`; numbers and header skipped).
fn read_cues(file: &str) -> Vec<ReadCue> {
    let ms = |t: &str| -> i64 {
        let t = t.trim().replace(',', ".");
        let (hms, milli) = t.split_once('.').unwrap();
        let parts: Vec<i64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
        ((parts[0] * 60 + parts[1]) * 60 + parts[2]) * 1_000 + milli.parse::<i64>().unwrap()
    };
    file.split("\n\n")
        .filter_map(|block| {
            let mut lines = block.lines().skip_while(|l| !l.contains(" --> "));
            let (start, end) = lines.next()?.split_once(" --> ")?;
            Some(ReadCue {
                start_ms: ms(start),
                end_ms: ms(end),
                lines: lines.map(str::to_string).collect(),
            })
        })
        .collect()
}

/// Checks every cue against the default caption rules: at most 2 lines of at most 42
/// characters, on screen at most 7 s and at least 1 s unless the next cue starts sooner,
/// cues in order and not overlapping; and that the cues say `transcript`'s words.
fn assert_caption_rules(file: &str, transcript: &str) {
    let cues = read_cues(file);
    assert!(!cues.is_empty(), "no cues in {file}");
    for (i, cue) in cues.iter().enumerate() {
        assert!((1..=2).contains(&cue.lines.len()), "{cue:?}");
        for line in &cue.lines {
            assert!(line.chars().count() <= 42, "line too long in {cue:?}");
        }
        let shown = cue.end_ms - cue.start_ms;
        assert!(shown <= 7_000, "{cue:?} is on screen {shown} ms");
        let next = cues.get(i + 1).map_or(i64::MAX, |c| c.start_ms);
        assert!(
            shown >= 1_000 || cue.end_ms == next,
            "{cue:?} is on screen {shown} ms"
        );
        assert!(cue.end_ms <= next, "{cue:?} overlaps the next cue");
    }
    let said: Vec<String> = cues.iter().map(|c| c.lines.join(" ")).collect();
    assert_eq!(
        said.join(" "),
        transcript.split_whitespace().collect::<Vec<_>>().join(" ")
    );
}

// Async-aware: a test holds its turn across awaits, and each test has its own runtime.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn bin() -> &'static Path {
    Path::new(BIN)
}

fn decode<R: Record>(seen: &Seen) -> R {
    apache_avro::from_value(seen.value.as_ref().expect("decoded record")).unwrap()
}

/// The records of `resource` on the test's `topic`, read committed.
async fn events_of(env: &TestEnv, topic: &str, resource: &str) -> Vec<Seen> {
    wait_for(
        &env.config,
        &env.topic(topic),
        Duration::from_secs(30),
        |_| true,
    )
    .await
    .unwrap()
    .into_iter()
    .filter(|s| s.metadata.as_ref().map(|m| m.correlation_id.as_str()) == Some(resource))
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_spoken_file_goes_through_the_whole_flow_shared_by_two_workers() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::new("e2e").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wav = speak(dir.path(), "speech.wav", SCRIPT).unwrap();
    // 10 s chunks: enough of them that a two-worker group always shares the job.
    let _pipeline =
        Pipeline::start(bin(), &env, 2, &[("ECHO_VALIDATION__CHUNK_MS", "10000")]).unwrap();
    let report = submit(bin(), &env, &wav, &[]).unwrap();

    assert_eq!(report["status"], "ready", "{report:#}");
    let transcript = report["transcript"].as_str().unwrap();
    let wer = word_error_rate(SCRIPT, transcript);
    eprintln!(
        "WER {wer:.3} on {} words",
        SCRIPT.split_whitespace().count()
    );
    assert!(wer <= MAX_WER, "WER {wer:.3} over {MAX_WER}: {transcript}");

    // Read continuously (flite pauses well under 2 s), the text is one paragraph: seams
    // between the 10 s chunks and whisper's segment ends break no line.
    let txt = artifact(&env, &report, "txt").await;
    assert_eq!(txt.trim_end().lines().count(), 1, "{txt}");
    // Captions follow the caption rules, in both formats, and say the transcript.
    assert_caption_rules(&artifact(&env, &report, "srt").await, &txt);
    assert_caption_rules(&artifact(&env, &report, "vtt").await, &txt);
    // report.json has every word with its times, in order, inside its segment.
    let json: serde_json::Value =
        serde_json::from_str(&artifact(&env, &report, "json").await).unwrap();
    let mut words = Vec::new();
    for segment in json["segments"].as_array().unwrap() {
        let (start, end) = (
            segment["start_ms"].as_i64().unwrap(),
            segment["end_ms"].as_i64().unwrap(),
        );
        for word in segment["words"].as_array().unwrap() {
            let (w_start, w_end) = (
                word["start_ms"].as_i64().unwrap(),
                word["end_ms"].as_i64().unwrap(),
            );
            assert!(
                start <= w_start && w_start <= w_end && w_end <= end,
                "{word} in {segment}"
            );
            let confidence = word["confidence"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&confidence), "{word}");
            words.push((w_start, word["text"].as_str().unwrap().to_string()));
        }
    }
    assert!(
        words.windows(2).all(|w| w[0].0 <= w[1].0),
        "words out of order"
    );
    let spelled: Vec<&str> = words.iter().map(|(_, w)| w.as_str()).collect();
    assert_eq!(spelled.join(" "), txt.trim_end());
    // The hallucination guard leaves real speech alone; doubtful stretches are listed.
    let analysis = &json["analysis"];
    assert_eq!(analysis["dropped_loop_words"], 0, "{analysis}");
    assert_eq!(
        analysis["has_low_confidence"].as_bool().unwrap(),
        !analysis["low_confidence"].as_array().unwrap().is_empty()
    );

    // The target flow, in causal order.
    let types = event_types(&report);
    let flow = [
        "upload.requested",
        "upload.url.generated",
        "upload.completed",
        "validation.started",
        "validation.passed",
        "processing.job.created",
        "chunk.processing.started",
        "chunk.processing.completed",
        "transcription.started",
        "transcription.completed",
        "resource.ready",
    ];
    let mut position = 0;
    for step in flow {
        let found = types[position..].iter().position(|t| t == step);
        position += found.unwrap_or_else(|| panic!("{step} missing or out of order in {types:?}"));
    }
    // Every event's cause came before it, but for those caused by records on topics a client
    // does not read: chunk events (by chunk commands) and the URL (by the quota's answer).
    let events = report["events"].as_array().unwrap();
    for (i, e) in events.iter().enumerate() {
        let Some(cause) = e["causation_id"].as_str() else {
            continue;
        };
        let kind = e["type"].as_str().unwrap();
        if kind.starts_with("chunk.processing") || kind == "upload.url.generated" {
            continue;
        }
        assert!(
            events[..i]
                .iter()
                .any(|earlier| earlier["event_id"] == cause),
            "{} came before its cause",
            e["type"]
        );
    }
    assert_eq!(types.iter().filter(|t| *t == "resource.ready").count(), 1);

    let resource = report["resource_id"].as_str().unwrap();
    let mine = events_of(&env, "echo.processing.events", resource).await;
    let job: ProcessingJobCreated = mine
        .iter()
        .find(|s| s.type_name == Some(ProcessingJobCreated::TYPE))
        .map(decode)
        .unwrap();
    assert!(job.chunk_count >= 7, "{} chunks", job.chunk_count);
    let completed: Vec<ChunkProcessingCompleted> = mine
        .iter()
        .filter(|s| s.type_name == Some(ChunkProcessingCompleted::TYPE))
        .map(decode)
        .collect();
    let mut indexes: Vec<i32> = completed.iter().map(|c| c.chunk_index).collect();
    indexes.sort();
    assert_eq!(
        indexes,
        (0..job.chunk_count).collect::<Vec<_>>(),
        "one completion per chunk"
    );
    // Events are stamped when their fact happens: a chunk completes after whisper ran on it
    // (at least a second on any machine), not at the moment its worker took it up.
    let started_at: std::collections::HashMap<i32, i64> = mine
        .iter()
        .filter(|s| s.type_name == Some(ChunkProcessingStarted::TYPE))
        .map(decode::<ChunkProcessingStarted>)
        .map(|c| (c.chunk_index, c.metadata.occurred_at))
        .collect();
    for chunk in &completed {
        let took = chunk.metadata.occurred_at - started_at[&chunk.chunk_index];
        assert!(
            took >= 200,
            "chunk {} completed {took} ms after it started",
            chunk.chunk_index
        );
    }
    let workers: std::collections::BTreeSet<String> = mine
        .iter()
        .filter(|s| s.type_name == Some(ChunkProcessingStarted::TYPE))
        .map(|s| decode::<ChunkProcessingStarted>(s).worker)
        .collect();
    assert_eq!(
        workers.len(),
        2,
        "both workers must have processed chunks: {workers:?}"
    );
    let ready = events_of(&env, "echo.resource.events", resource)
        .await
        .into_iter()
        .filter(|s| s.type_name == Some("resource.ready"))
        .count();
    assert_eq!(ready, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn wav_flac_ogg_and_mp3_uploads_are_all_transcribed() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::new("formats").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wav = speak(dir.path(), "sentence.wav", SENTENCE).unwrap();
    let _pipeline = Pipeline::start(bin(), &env, 1, &[]).unwrap();
    let mut files = vec![wav.clone()];
    // Other containers, and a CD-like stereo 44.1 kHz layout, so resampling and downmix run.
    for (name, effects) in [
        ("sentence.flac", &["rate", "44100", "channels", "2"][..]),
        ("sentence.ogg", &["rate", "44100", "channels", "2"][..]),
        ("sentence.mp3", &["rate", "44100", "channels", "2"][..]),
        ("sentence-22k.wav", &["rate", "22050"][..]),
    ] {
        let out = dir.path().join(name);
        convert(&wav, &out, effects).unwrap();
        files.push(out);
    }
    for file in files {
        let report = submit(bin(), &env, &file, &[]).unwrap();
        assert_eq!(report["status"], "ready", "{}: {report:#}", file.display());
        let wer = word_error_rate(SENTENCE, report["transcript"].as_str().unwrap());
        assert!(
            wer <= 0.15,
            "{}: WER {wer:.2}: {}",
            file.display(),
            report["transcript"]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_chunk_worker_times_out_and_the_job_still_ends_explicitly() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::new("hung").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wav = speak(dir.path(), "sentence.wav", SENTENCE).unwrap();
    // The worker takes 6 s longer than usual, past a 3 s deadline: the aggregator times the
    // chunk out and re-issues it; the late result still settles it.
    let _pipeline = Pipeline::start(
        bin(),
        &env,
        1,
        &[
            ("ECHO_CHUNK_WORKER__TEST_DELAY_MS", "6000"),
            ("ECHO_JOB_AGGREGATOR__CHUNK_DEADLINE_MS", "3000"),
            ("ECHO_JOB_AGGREGATOR__QUEUE_ALLOWANCE_MS", "0"),
            ("ECHO_JOB_AGGREGATOR__MAX_ATTEMPTS", "5"),
        ],
    )
    .unwrap();
    let report = submit(bin(), &env, &wav, &[]).unwrap();
    let types = event_types(&report);
    assert!(
        types.iter().any(|t| t == "processing.timeout"),
        "no timeout in {types:?}"
    );
    match report["status"].as_str().unwrap() {
        "ready" => assert!(types.iter().any(|t| t == "transcription.completed")),
        "rejected" => assert!(types.iter().any(|t| t == "chunk.processing.failed")),
        other => panic!("the job ended as {other}: {types:?}"),
    }
}

/// Sentences tiny.en transcribes well from flite, each followed by the seconds of silence
/// inserted after it: over half of the file is silence, most of it in pauses longer than the
/// 2.5 s from which the test has silence skipped.
const PAUSED: &[(&str, u32)] = &[
    ("The morning train left the station a few minutes late.", 4),
    ("A small dog slept under one of the seats near the door.", 1),
    ("The train crossed a long bridge over a wide river.", 6),
    ("Children on the bank waved at the windows as it passed.", 3),
    ("After an hour the train reached the city.", 5),
];

/// How far the report's speech figure may be from the speech spoken: the detector's padding
/// (200 ms each side of a region) and flite's own short pauses.
const SPEECH_TOLERANCE: f64 = 0.2;

#[tokio::test(flavor = "multi_thread")]
async fn pauses_are_skipped_and_the_report_counts_them_as_silence() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::new("pauses").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut parts = Vec::new();
    let mut inserted_ms = 0;
    for (i, (sentence, pause_s)) in PAUSED.iter().enumerate() {
        let spoken = speak(dir.path(), &format!("s{i}.wav"), sentence).unwrap();
        let paused = dir.path().join(format!("p{i}.wav"));
        convert(&spoken, &paused, &["pad", "0", &pause_s.to_string()]).unwrap();
        inserted_ms += i64::from(*pause_s) * 1_000;
        parts.push(paused);
    }
    let file = dir.path().join("paused.wav");
    let status = std::process::Command::new("sox")
        .args(&parts)
        .arg(&file)
        .status()
        .unwrap();
    assert!(status.success());
    let _pipeline = Pipeline::start(bin(), &env, 1, &[]).unwrap();

    let report = submit(bin(), &env, &file, &[]).unwrap();
    assert_eq!(report["status"], "ready", "{report:#}");
    let script: String = PAUSED.iter().map(|(s, _)| *s).collect::<Vec<_>>().join(" ");
    let transcript = report["transcript"].as_str().unwrap();
    let wer = word_error_rate(&script, transcript);
    assert!(wer <= 0.1, "WER {wer:.3}: {transcript}");

    let resource = report["resource_id"].as_str().unwrap();
    let job: ProcessingJobCreated = events_of(&env, "echo.processing.events", resource)
        .await
        .iter()
        .find(|s| s.type_name == Some(ProcessingJobCreated::TYPE))
        .map(decode)
        .unwrap();
    // The 18 s of speech pack into one window once the worker squeezes the pauses out, and
    // the trailing 5 s pause is not even decoded.
    let chunks = job.chunks.clone().expect("the planned chunks are listed");
    let sent_ms: i64 = chunks.iter().map(|c| c.end_ms - c.start_ms).sum();
    assert_eq!(chunks.len(), 1, "{chunks:?}");
    assert!(chunks[0].end_ms <= job.duration_ms - 4_000, "{chunks:?}");

    let json_key = report["artifacts"]["json"].as_str().unwrap();
    let bytes = echo_storage::S3Service::new(&env.config)
        .unwrap()
        .get_bytes(json_key)
        .await
        .unwrap()
        .unwrap();
    let analysis = &serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["analysis"];
    let (speech_ms, silence_ms) = (
        analysis["speech_ms"].as_i64().unwrap(),
        analysis["silence_ms"].as_i64().unwrap(),
    );
    let spoken_ms = job.duration_ms - inserted_ms;
    eprintln!(
        "{} ms: {inserted_ms} ms of silence inserted; report: {speech_ms} ms speech, \
         {silence_ms} ms silence; {} chunks spanning {sent_ms} ms",
        job.duration_ms,
        chunks.len()
    );
    assert!(
        (speech_ms - spoken_ms).abs() as f64 <= spoken_ms as f64 * SPEECH_TOLERANCE,
        "report says {speech_ms} ms of speech, {spoken_ms} ms were spoken"
    );
    // Words per minute over the time spoken: flite reads at about 200 words a minute, and the
    // 19 s of inserted silence must not halve that.
    let wpm = analysis["words_per_minute"].as_f64().unwrap();
    assert!((150.0..=260.0).contains(&wpm), "{wpm} words per minute");
    // The silence reported is the inserted silence, less the detector's margins around speech.
    assert!(
        (silence_ms - inserted_ms).abs() <= inserted_ms / 10,
        "{silence_ms} ms of silence reported, {inserted_ms} ms inserted"
    );

    // A paragraph ends where a sentence is followed by 2 s of silence or more (4, 6 and 3 s
    // were inserted after sentences 1, 3 and 4; 1 s after sentence 2), wherever whisper
    // heard it: word times are mapped back from the squeezed audio to the file's.
    let txt = artifact(&env, &report, "txt").await;
    let paragraphs: Vec<&str> = txt.trim_end().split("\n\n").collect();
    assert_eq!(paragraphs.len(), 4, "{txt}");
    assert!(paragraphs.iter().all(|p| !p.contains('\n')), "{txt}");
    assert_caption_rules(&artifact(&env, &report, "srt").await, &txt);

    // A file with no speech at all: no chunk, and the job still ends, with an empty transcript.
    let silent = dir.path().join("silent.wav");
    convert(&parts[0], &silent, &["trim", "0", "4", "vol", "0"]).unwrap();
    let report = submit(bin(), &env, &silent, &[]).unwrap();
    assert_eq!(report["status"], "ready", "{report:#}");
    assert_eq!(report["transcript"].as_str().unwrap().trim(), "");
    let types = event_types(&report);
    assert!(
        types.iter().any(|t| t == "transcription.completed")
            && !types.iter().any(|t| t.starts_with("chunk.")),
        "{types:?}"
    );
}

/// A deployment that lets whisper hear every second (fixed chunks, no voice-activity
/// detection) sends it a minute of silence and a minute of a buzzing tone between two
/// sentences: whisper writes `[BLANK_AUDIO]` for the silent windows and `[Music]` for the
/// buzzing ones. The hallucination guard leaves those out of every artifact and counts them
/// in the report, so the transcript holds only what was said.
#[tokio::test(flavor = "multi_thread")]
async fn what_whisper_writes_for_silence_and_noise_is_dropped_and_counted() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::new("noise").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spoken = speak(dir.path(), "spoken.wav", SENTENCE).unwrap();
    let speech = dir.path().join("speech.wav");
    convert(&spoken, &speech, &["rate", "16000"]).unwrap();
    // A sawtooth at a voice's pitch, pulsing four times a second like syllables.
    let buzz = dir.path().join("buzz.wav");
    let made = std::process::Command::new("sox")
        .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
        .arg(&buzz)
        .args([
            "synth", "60", "sawtooth", "160", "tremolo", "4", "90", "vol", "0.3",
        ])
        .status()
        .unwrap();
    assert!(made.success());
    let silence = dir.path().join("silence.wav");
    let made = std::process::Command::new("sox")
        .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
        .arg(&silence)
        .args(["trim", "0", "60"])
        .status()
        .unwrap();
    assert!(made.success());
    let file = dir.path().join("sandwich.wav");
    let joined = std::process::Command::new("sox")
        .args([&speech, &silence, &buzz, &speech])
        .arg(&file)
        .status()
        .unwrap();
    assert!(joined.success());
    let settings = [
        ("ECHO_VALIDATION__CHUNKING", "fixed"),
        ("ECHO_CHUNK_WORKER__SQUEEZE_SILENCE", "false"),
    ];
    let _pipeline = Pipeline::start(bin(), &env, 1, &settings).unwrap();

    let report = submit(bin(), &env, &file, &[]).unwrap();
    assert_eq!(report["status"], "ready", "{report:#}");
    let said = format!("{SENTENCE} {SENTENCE}");
    let transcript = report["transcript"].as_str().unwrap();
    let wer = word_error_rate(&said, transcript);
    assert!(wer <= 0.15, "WER {wer:.3}: {transcript}");
    let report_json: serde_json::Value =
        serde_json::from_str(&artifact(&env, &report, "json").await).unwrap();
    let dropped = report_json["analysis"]["dropped_non_speech_segments"].as_i64();
    // At least a window of each: a silent one and a buzzing one.
    assert!(
        dropped.is_some_and(|d| d >= 2),
        "{:#}",
        report_json["analysis"]
    );
    for kind in ["txt", "srt", "vtt", "json"] {
        let text = artifact(&env, &report, kind).await;
        let annotated = ["[BLANK_AUDIO]", "[Music]", "[MUSIC]"]
            .iter()
            .any(|a| text.contains(a));
        assert!(!annotated, "{kind}: {text}");
    }
}

/// A deployment that runs the multilingual model (`chunk_worker.model = "base"`): each chunk's
/// language is detected and reported, and the report says the transcript's language; German
/// speech comes back in German.
#[tokio::test(flavor = "multi_thread")]
async fn the_multilingual_model_reports_the_language_it_heard() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::new("languages").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let german = echo_tests::pipeline::speak_in(
        dir.path(),
        "de.wav",
        "de",
        "Der Zug fuhr über eine lange Brücke und hielt dann am Bahnhof.",
    )
    .unwrap();
    let _pipeline =
        Pipeline::start(bin(), &env, 1, &[("ECHO_CHUNK_WORKER__MODEL", "base")]).unwrap();

    let report = submit(bin(), &env, &german, &[]).unwrap();
    assert_eq!(report["status"], "ready", "{report:#}");
    let transcript = report["transcript"].as_str().unwrap();
    assert!(transcript.contains("Zug"), "{transcript}");
    let resource = report["resource_id"].as_str().unwrap();
    let chunks: Vec<ChunkProcessingCompleted> = events_of(&env, "echo.processing.events", resource)
        .await
        .iter()
        .filter(|s| s.type_name == Some(ChunkProcessingCompleted::TYPE))
        .map(decode)
        .collect();
    assert!(!chunks.is_empty());
    assert!(
        chunks.iter().all(|c| c.language.as_deref() == Some("de")),
        "{:?}",
        chunks.iter().map(|c| &c.language).collect::<Vec<_>>()
    );
    let report_json: serde_json::Value =
        serde_json::from_str(&artifact(&env, &report, "json").await).unwrap();
    let analysis = &report_json["analysis"];
    assert_eq!(analysis["language"], "de", "{analysis:#}");
    assert!(
        analysis["languages"]["de"].as_i64().is_some_and(|w| w > 0),
        "{analysis:#}"
    );
}

/// A call recorded with one speaker per channel: with `--speaker-per-channel` each channel is
/// transcribed on its own, and the text, the captions and the report say who spoke; without
/// it the channels are mixed and nobody is labelled.
#[tokio::test(flavor = "multi_thread")]
async fn a_two_channel_call_is_transcribed_speaker_by_speaker() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::new("speakers").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = speak(
        dir.path(),
        "agent.wav",
        "Hello, this is the help desk. How can I help you today?",
    )
    .unwrap();
    let second = speak(
        dir.path(),
        "caller.wav",
        "My printer will not print anything at all.",
    )
    .unwrap();
    // The agent on the left channel, then the caller on the right one, a second later.
    let left = dir.path().join("left.wav");
    convert(&first, &left, &["rate", "16000", "pad", "0", "6"]).unwrap();
    let agent_s = echo_speech::audio::probe(&first)
        .unwrap()
        .duration
        .unwrap()
        .as_secs_f64();
    let right = dir.path().join("right.wav");
    convert(
        &second,
        &right,
        &[
            "rate",
            "16000",
            "pad",
            &format!("{:.2}", agent_s + 1.0),
            "0",
        ],
    )
    .unwrap();
    let call = dir.path().join("call.wav");
    let merged = std::process::Command::new("sox")
        .arg("-M")
        .args([&left, &right])
        .arg(&call)
        .status()
        .unwrap();
    assert!(merged.success());
    let _pipeline = Pipeline::start(bin(), &env, 1, &[]).unwrap();

    let report = submit_with(bin(), &env, &call, &["--speaker-per-channel"], &[]).unwrap();
    assert_eq!(report["status"], "ready", "{report:#}");
    let txt = artifact(&env, &report, "txt").await;
    let turns: Vec<&str> = txt.trim_end().split("\n\n").collect();
    assert_eq!(turns.len(), 2, "{txt}");
    assert!(
        turns[0].starts_with("Speaker 1: ") && turns[0].to_lowercase().contains("help desk"),
        "{txt}"
    );
    assert!(
        turns[1].starts_with("Speaker 2: ") && turns[1].contains("printer"),
        "{txt}"
    );
    let vtt = artifact(&env, &report, "vtt").await;
    assert!(
        vtt.contains("<v Speaker 1>Hello") && vtt.contains("<v Speaker 2>My printer"),
        "{vtt}"
    );
    let srt = artifact(&env, &report, "srt").await;
    assert!(srt.contains("Speaker 2: My printer"), "{srt}");
    let report_json: serde_json::Value =
        serde_json::from_str(&artifact(&env, &report, "json").await).unwrap();
    for segment in report_json["segments"].as_array().unwrap() {
        let text = segment["text"].as_str().unwrap();
        let expected = if text.contains("printer") {
            "Speaker 2"
        } else {
            "Speaker 1"
        };
        assert_eq!(segment["speaker"], expected, "{segment:#}");
    }

    // The same call without the option: one mixed transcript, nobody labelled.
    let mixed = submit_with(bin(), &env, &call, &[], &[]).unwrap();
    assert_eq!(mixed["status"], "ready", "{mixed:#}");
    let txt = artifact(&env, &mixed, "txt").await;
    assert!(!txt.contains("Speaker"), "{txt}");
    assert!(
        txt.contains("help desk") && txt.contains("printer"),
        "{txt}"
    );
}

/// `echoctl transcribe`, the benchmark's compute limit, runs the same model as the workers on
/// a whole file, outside the pipeline, with the quantization asked for.
#[tokio::test(flavor = "multi_thread")]
async fn transcribe_runs_the_model_alone_on_a_whole_file() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let wav = speak(dir.path(), "speech.wav", SCRIPT).unwrap();
    for quantization in ["f16", "q8_0"] {
        let out = std::process::Command::new(bin())
            .args(["transcribe", "--json", "--threads", "2", "--quantization"])
            .arg(quantization)
            .arg(&wav)
            // Its own choice of OpenBLAS kernels, not one handed down.
            .env_remove("OPENBLAS_CORETYPE")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["quantization"], quantization);
        // OpenBLAS's generic kernels where the CPU has better ones (an unrecognised CPU)
        // doubled whisper's time; echoctl restarts itself on the right ones.
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            assert_ne!(report["blas_kernels"], "Prescott", "{report:#}");
        }
        let wer = word_error_rate(SCRIPT, report["text"].as_str().unwrap());
        assert!(wer <= MAX_WER, "{quantization}: WER {wer:.3}: {report:#}");
        let segments = report["segments"].as_array().unwrap();
        let last_end = segments.last().unwrap()["end_ms"].as_u64().unwrap();
        let audio_ms = report["audio_ms"].as_u64().unwrap();
        // whisper may stamp the last segment past the audio's end; it must reach its last part.
        assert!(
            last_end > audio_ms * 3 / 4,
            "segments cover the file: the last ends at {last_end} of {audio_ms} ms"
        );
    }
}
