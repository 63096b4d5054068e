//! The report artifacts, rendered as pure functions of the transcript: plain text in
//! paragraphs, SubRip and WebVTT captions cut by caption rules, and JSON with every word.
//! Deterministic, so a retried handler writes byte-identical objects.

use std::collections::BTreeMap;

use echo_catalog::events::{
    Segment, TranscriptArtifacts, TranscriptFormat, TranscriptOptions, Word,
};
use serde::{Deserialize, Serialize};

use crate::analysis::{analyze, Analysis, Dropped};
use crate::assemble::{assemble, ChunkTranscript};
use crate::captions::{cues, ends_sentence, CaptionRules, Cue};
use crate::guard::{drop_loops, is_speech, non_speech_segments};
use crate::plan::JobPlan;

/// A silence between two sentences at least this long (ms) starts a new paragraph of
/// `transcript.txt`: where a speaker stops for a breath or two, a reader expects a break.
pub const PARAGRAPH_PAUSE_MS: i64 = 2_000;

/// An assembled and analysed transcript: what `report.json` holds and every other file is
/// rendered from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// The job it was assembled from, so a report can be traced to its chunk events.
    pub job_id: String,
    /// Figures about the recording.
    pub analysis: Analysis,
    /// The merged segments, in time order, timestamps in ms from the start of the audio; each
    /// with its `words` (start and end ms, text, confidence).
    pub segments: Vec<Segment>,
}

impl Transcript {
    /// Assembles the chunks of job `job_id` planned as `plan`, drops whisper's loops (the
    /// hallucination guard) and analyses the result; its language is the one detected in the
    /// chunks holding most words, `language` (the configured one) when none was detected.
    pub fn build(
        job_id: &str,
        plan: &JobPlan,
        chunks: &[ChunkTranscript],
        language: &str,
    ) -> Transcript {
        let (segments, loop_words) = by_speaker(plan, chunks);
        let dropped = Dropped {
            loop_words,
            non_speech_segments: non_speech_segments(chunks),
        };
        let languages = detected_languages(chunks);
        let language = languages
            .iter()
            .max_by_key(|(_, words)| **words)
            .map_or(language, |(language, _)| language.as_str());
        let mut analysis = analyze(
            &segments,
            plan.duration_ms,
            plan.speech_ms,
            language,
            dropped,
        );
        analysis.languages = languages;
        Transcript {
            job_id: job_id.to_string(),
            analysis,
            segments,
        }
    }

    /// Every word of the transcript, in time order.
    pub fn words(&self) -> Vec<Word> {
        self.segments
            .iter()
            .flat_map(|s| s.words.iter().cloned())
            .collect()
    }

    /// The transcript's turns: runs of consecutive segments of one speaker, each with its
    /// words; one turn without a speaker when nobody is labelled.
    pub fn turns(&self) -> Vec<Turn> {
        let mut turns: Vec<Turn> = Vec::new();
        for segment in &self.segments {
            match turns.last_mut() {
                Some(turn) if turn.speaker == segment.speaker => {
                    turn.words.extend(segment.words.iter().cloned());
                }
                _ => turns.push(Turn {
                    speaker: segment.speaker.clone(),
                    words: segment.words.clone(),
                }),
            }
        }
        turns
    }
}

/// What one speaker says before the other speaks.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// Its label (`Speaker 1`), `None` when speakers are not told apart.
    pub speaker: Option<String>,
    /// Its words, in time order.
    pub words: Vec<Word>,
}

/// The label of the speaker recorded on `channel` (from 0).
pub fn speaker_of(channel: i32) -> String {
    format!("Speaker {}", channel + 1)
}

/// The chunks assembled and cleared of whisper's loops, and how many loop words were
/// dropped: all of them as one stream, or, when the plan gives chunks a channel (a speaker
/// per channel), each channel on its own, its segments labelled with its speaker, then
/// merged in time order.
fn by_speaker(plan: &JobPlan, chunks: &[ChunkTranscript]) -> (Vec<Segment>, usize) {
    let channel_of = |c: &ChunkTranscript| {
        usize::try_from(c.index)
            .ok()
            .and_then(|i| plan.channels.get(i).copied().flatten())
    };
    let mut channels: Vec<Option<i32>> = chunks.iter().map(channel_of).collect();
    channels.sort_unstable();
    channels.dedup();
    let mut segments = Vec::new();
    let mut dropped = 0;
    for channel in channels {
        let own: Vec<ChunkTranscript> = chunks
            .iter()
            .filter(|c| channel_of(c) == channel)
            .cloned()
            .collect();
        let (mut heard, looped) = drop_loops(assemble(&own));
        for segment in &mut heard {
            segment.speaker = channel.map(speaker_of);
        }
        segments.extend(heard);
        dropped += looped;
    }
    segments.sort_by_key(|s| (s.start_ms, s.end_ms));
    (segments, dropped)
}

/// Words heard per detected language, over the chunks a multilingual model transcribed.
fn detected_languages(chunks: &[ChunkTranscript]) -> BTreeMap<String, i32> {
    let mut words = BTreeMap::new();
    for chunk in chunks {
        if let Some(language) = &chunk.language {
            let heard: usize = chunk
                .segments
                .iter()
                .filter(|s| is_speech(&s.text))
                .map(|s| s.words.len().max(1))
                .sum();
            *words.entry(language.clone()).or_insert(0) += i32::try_from(heard).unwrap_or(i32::MAX);
        }
    }
    words
}

/// One rendered file: where it goes, its bytes and the type it is served as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Object key under the resource's report prefix.
    pub key: String,
    /// The file's content (UTF-8).
    pub body: String,
    /// `Content-Type` stored with the object, so a pre-signed GET serves it properly.
    pub content_type: &'static str,
}

/// File name of the plain-text transcript under `keys::report`.
pub const TXT: &str = "transcript.txt";
/// SubRip subtitles.
pub const SRT: &str = "transcript.srt";
/// WebVTT subtitles.
pub const VTT: &str = "transcript.vtt";
/// Segments plus analysis.
pub const JSON: &str = "report.json";

/// The object keys of a resource's transcript files, as `transcription.completed` announces
/// them: the files `options` leaves out have none.
pub fn artifact_keys(resource_id: &str, options: &TranscriptOptions) -> TranscriptArtifacts {
    let key = |file| echo_storage::keys::report(resource_id, file);
    let wanted = |format, file| options.wants(format).then(|| key(file));
    TranscriptArtifacts {
        txt_key: wanted(TranscriptFormat::Txt, TXT),
        srt_key: wanted(TranscriptFormat::Srt, SRT),
        vtt_key: wanted(TranscriptFormat::Vtt, VTT),
        json_key: key(JSON),
    }
}

/// The files of `transcript` for resource `resource_id` that `options` asks for (report.json
/// always), captions cut by the upload's rules or else the deployment's `rules`.
pub fn render(
    resource_id: &str,
    transcript: &Transcript,
    rules: &CaptionRules,
    options: &TranscriptOptions,
) -> Vec<Artifact> {
    let keys = artifact_keys(resource_id, options);
    let rules = options.caption.as_ref().unwrap_or(rules);
    let turns = transcript.turns();
    let mut cues: Vec<Cue> = turns
        .iter()
        .flat_map(|turn| {
            cues(&turn.words, rules).into_iter().map(|cue| Cue {
                speaker: turn.speaker.clone(),
                ..cue
            })
        })
        .collect();
    in_time_order(&mut cues);
    let files = [
        (
            keys.txt_key,
            labelled_txt(&turns),
            "text/plain; charset=utf-8",
        ),
        (
            keys.srt_key,
            srt(&cues),
            "application/x-subrip; charset=utf-8",
        ),
        (keys.vtt_key, vtt(&cues), "text/vtt; charset=utf-8"),
        (Some(keys.json_key), json(transcript), "application/json"),
    ];
    files
        .into_iter()
        .filter_map(|(key, body, content_type)| {
            key.map(|key| Artifact {
                key,
                body,
                content_type,
            })
        })
        .collect()
}

/// Cues of several turns in the order they start (caption files are read in order), each
/// gone when the next one appears: one speaker's cue held for its minimum must not stay over
/// the other speaker's reply. Cues of one turn already are so.
fn in_time_order(cues: &mut [Cue]) {
    cues.sort_by_key(|c| c.start_ms);
    for i in 1..cues.len() {
        let next_start = cues[i].start_ms;
        let cue = &mut cues[i - 1];
        if next_start > cue.start_ms {
            cue.end_ms = cue.end_ms.min(next_start);
        }
    }
}

/// The turns as plain text ([`txt`]), each turn's paragraphs starting with its speaker
/// (`Speaker 1: …`) when speakers are told apart.
fn labelled_txt(turns: &[Turn]) -> String {
    let mut out = String::new();
    for turn in turns {
        let text = txt(&turn.words);
        if text.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        if let Some(speaker) = &turn.speaker {
            out.push_str(speaker);
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Plain text in paragraphs: the words joined by spaces, a paragraph (one line, a blank line
/// between two) ending at a sentence end followed by [`PARAGRAPH_PAUSE_MS`] of silence, so
/// chunk seams and whisper's segment ends never break the text. Empty without speech.
pub fn txt(words: &[Word]) -> String {
    let mut out = String::new();
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            let previous = &words[i - 1];
            let paragraph = ends_sentence(&previous.text)
                && word.start_ms - previous.end_ms >= PARAGRAPH_PAUSE_MS;
            out.push_str(if paragraph { "\n\n" } else { " " });
        }
        out.push_str(&word.text);
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// SubRip: numbered cues from 1, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, a blank line after each.
pub fn srt(cues: &[Cue]) -> String {
    cues.iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "{}\n{} --> {}\n{}\n\n",
                i + 1,
                timestamp(c.start_ms, ','),
                timestamp(c.end_ms, ','),
                match &c.speaker {
                    Some(speaker) => format!("{speaker}: {}", cue_text(&c.lines)),
                    None => cue_text(&c.lines),
                }
            )
        })
        .collect()
}

/// WebVTT: the `WEBVTT` header, then cues `HH:MM:SS.mmm --> HH:MM:SS.mmm`.
pub fn vtt(cues: &[Cue]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for c in cues {
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            timestamp(c.start_ms, '.'),
            timestamp(c.end_ms, '.'),
            // WebVTT's voice span names the speaker; players show or style it.
            match &c.speaker {
                Some(speaker) => format!("<v {speaker}>{}", cue_text(&c.lines)),
                None => cue_text(&c.lines),
            }
        ));
    }
    out
}

/// The transcript as pretty JSON with a final newline.
pub fn json(transcript: &Transcript) -> String {
    let mut out = serde_json::to_string_pretty(transcript).expect("a transcript always serializes");
    out.push('\n');
    out
}

/// `HH:MM:SS<sep>mmm`; hours grow past two digits rather than wrap, negatives clamp to 0.
fn timestamp(ms: i64, separator: char) -> String {
    let ms = ms.max(0);
    let (h, m, s, milli) = (
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1_000 % 60,
        ms % 1_000,
    );
    format!("{h:02}:{m:02}:{s:02}{separator}{milli:03}")
}

/// A cue's lines that cannot break the cue: `-->` would be read as a timing line.
fn cue_text(lines: &[String]) -> String {
    lines.join("\n").replace("-->", "->")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(start_ms: i64, end_ms: i64, text: &str) -> Word {
        Word {
            start_ms,
            end_ms,
            text: text.into(),
            confidence: 0.5,
        }
    }

    fn example() -> Vec<Segment> {
        let first = vec![word(0, 1_000, "Hello"), word(1_100, 2_500, "world.")];
        let second = vec![
            word(3_723_004, 3_724_000, "Second"),
            word(3_724_100, 3_725_010, "line."),
        ];
        vec![
            Segment {
                start_ms: 0,
                end_ms: 2_500,
                text: "Hello world.".into(),
                confidence: 0.5,
                words: first,
                speaker: None,
            },
            Segment {
                start_ms: 3_723_004,
                end_ms: 3_725_010,
                text: "Second line.".into(),
                confidence: 0.75,
                words: second,
                speaker: None,
            },
        ]
    }

    fn words_of(segments: &[Segment]) -> Vec<Word> {
        segments.iter().flat_map(|s| s.words.clone()).collect()
    }

    #[test]
    fn plain_text_is_paragraphs_broken_only_at_a_long_pause_after_a_sentence() {
        assert_eq!(txt(&words_of(&example())), "Hello world.\n\nSecond line.\n");
        assert_eq!(txt(&[]), "");
        // A long pause mid-sentence, or a short one after a sentence, does not break it.
        let words = [
            word(0, 500, "The"),
            word(3_000, 3_500, "train."),
            word(3_600, 4_000, "It"),
            word(4_100, 4_500, "left."),
        ];
        assert_eq!(txt(&words), "The train. It left.\n");
    }

    #[test]
    fn srt_cues_are_numbered_with_comma_milliseconds() {
        let cues = cues(&words_of(&example()), &CaptionRules::default());
        assert_eq!(
            srt(&cues),
            "1\n00:00:00,000 --> 00:00:02,500\nHello world.\n\n\
             2\n01:02:03,004 --> 01:02:05,010\nSecond line.\n\n"
        );
        assert_eq!(srt(&[]), "");
    }

    #[test]
    fn vtt_has_its_header_and_dot_milliseconds() {
        let cues = cues(&words_of(&example()), &CaptionRules::default());
        assert_eq!(
            vtt(&cues),
            "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello world.\n\n\
             01:02:03.004 --> 01:02:05.010\nSecond line.\n\n"
        );
        assert_eq!(vtt(&[]), "WEBVTT\n\n");
    }

    #[test]
    fn json_holds_segments_with_their_words_and_analysis() {
        let segments = example();
        let transcript = Transcript {
            job_id: "job-1".into(),
            analysis: analyze(&segments, 3_730_000, None, "en", Dropped::default()),
            segments,
        };
        let text = json(&transcript);
        assert!(text.ends_with("}\n"));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["job_id"], "job-1");
        assert_eq!(value["segments"][1]["start_ms"], 3_723_004);
        assert_eq!(value["segments"][1]["text"], "Second line.");
        assert_eq!(value["segments"][0]["confidence"], 0.5);
        let first_word = &value["segments"][0]["words"][0];
        assert_eq!(first_word["text"], "Hello");
        assert_eq!(first_word["start_ms"], 0);
        assert_eq!(first_word["end_ms"], 1_000);
        assert_eq!(first_word["confidence"], 0.5);
        assert_eq!(value["analysis"]["word_count"], 4);
        assert_eq!(value["analysis"]["language"], "en");
        assert_eq!(value["analysis"]["empty"], false);
        let back: Transcript = serde_json::from_str(&text).unwrap();
        assert_eq!(back, transcript);
    }

    #[test]
    fn timestamps_clamp_negatives_and_outgrow_two_hour_digits() {
        assert_eq!(timestamp(-5, ','), "00:00:00,000");
        assert_eq!(timestamp(100 * 3_600_000 + 1, '.'), "100:00:00.001");
        assert_eq!(cue_text(&["a --> b".into(), "c".into()]), "a -> b\nc");
    }

    #[test]
    fn artifacts_live_under_the_resource_report_prefix() {
        let keys = artifact_keys("r1", &TranscriptOptions::default());
        let key = |k: &Option<String>| k.clone().unwrap();
        assert_eq!(key(&keys.txt_key), "resources/r1/report/transcript.txt");
        assert_eq!(key(&keys.srt_key), "resources/r1/report/transcript.srt");
        assert_eq!(key(&keys.vtt_key), "resources/r1/report/transcript.vtt");
        assert_eq!(keys.json_key, "resources/r1/report/report.json");
        let plan = JobPlan {
            chunk_count: 0,
            duration_ms: 1_000,
            speech_ms: None,
            options: None,
            channels: Vec::new(),
        };
        let t = Transcript::build("j", &plan, &[], "en");
        let files = render(
            "r1",
            &t,
            &CaptionRules::default(),
            &TranscriptOptions::default(),
        );
        let names: Vec<String> = files.iter().map(|f| f.key.clone()).collect();
        assert_eq!(
            names,
            [
                key(&keys.txt_key),
                key(&keys.srt_key),
                key(&keys.vtt_key),
                keys.json_key
            ]
        );
        assert!(t.analysis.empty);
    }

    #[test]
    fn an_upload_gets_the_files_and_caption_rules_it_asked_for() {
        let words: Vec<Word> = "one two three four five six seven eight nine ten"
            .split(' ')
            .enumerate()
            .map(|(i, w)| Word {
                start_ms: i as i64 * 300,
                end_ms: i as i64 * 300 + 250,
                text: w.into(),
                confidence: 0.9,
            })
            .collect();
        let segment = Segment {
            start_ms: 0,
            end_ms: 3_000,
            text: "one two three four five six seven eight nine ten".into(),
            confidence: 0.9,
            words,
            speaker: None,
        };
        let plan = JobPlan {
            chunk_count: 1,
            duration_ms: 3_000,
            speech_ms: None,
            options: None,
            channels: Vec::new(),
        };
        let chunk = ChunkTranscript {
            language: None,
            stored_at: None,
            index: 0,
            start_ms: 0,
            end_ms: 3_000,
            segments: vec![segment],
        };
        let t = Transcript::build("j", &plan, &[chunk], "en");
        let options = TranscriptOptions {
            prompt: None,
            formats: Some(vec![TranscriptFormat::Vtt]),
            caption: Some(CaptionRules {
                max_chars_per_line: 10,
                max_lines: 1,
                ..CaptionRules::default()
            }),
            speaker_per_channel: false,
        };
        let keys = artifact_keys("r1", &options);
        assert_eq!((keys.txt_key, keys.srt_key), (None, None));
        let files = render("r1", &t, &CaptionRules::default(), &options);
        let names: Vec<&str> = files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            names,
            [
                "resources/r1/report/transcript.vtt",
                "resources/r1/report/report.json"
            ]
        );
        let cue_lines: Vec<&str> = files[0]
            .body
            .lines()
            .filter(|l| l.chars().next().is_some_and(char::is_alphabetic) && *l != "WEBVTT")
            .collect();
        assert!(cue_lines.len() >= 5, "{}", files[0].body);
        assert!(cue_lines.iter().all(|l| l.len() <= 10), "{cue_lines:?}");
        // The deployment's rules (42 characters, 2 lines) put it all in one cue.
        let default = render(
            "r1",
            &t,
            &CaptionRules::default(),
            &TranscriptOptions::default(),
        );
        assert_eq!(
            default[2].body.matches(" --> ").count(),
            1,
            "{}",
            default[2].body
        );
    }

    /// The transcript of a job of two chunks over the same `duration_ms`, one per channel of a
    /// call, holding `first` and `second`.
    fn two_channels(duration_ms: i64, first: Vec<Segment>, second: Vec<Segment>) -> Transcript {
        let chunk = |index, segments| ChunkTranscript {
            index,
            start_ms: 0,
            end_ms: duration_ms,
            segments,
            language: None,
            stored_at: None,
        };
        let plan = JobPlan {
            chunk_count: 2,
            duration_ms,
            speech_ms: None,
            options: None,
            channels: vec![Some(0), Some(1)],
        };
        Transcript::build("j", &plan, &[chunk(0, first), chunk(1, second)], "en")
    }

    #[test]
    fn chunks_of_two_channels_become_two_speakers_turns() {
        let said = |start_ms: i64, text: &str| Segment {
            start_ms,
            end_ms: start_ms + 1_000,
            text: text.into(),
            confidence: 0.9,
            words: vec![word(start_ms, start_ms + 1_000, text)],
            speaker: None,
        };
        // Both channels cover the same time: assembled apart, nothing is taken for overlap.
        let t = two_channels(
            10_000,
            vec![said(0, "Hello."), said(4_000, "Bye.")],
            vec![said(2_000, "Hi.")],
        );
        let turns = t.turns();
        let turns: Vec<(Option<&str>, usize)> = turns
            .iter()
            .map(|turn| (turn.speaker.as_deref(), turn.words.len()))
            .collect();
        assert_eq!(
            turns,
            [
                (Some("Speaker 1"), 1),
                (Some("Speaker 2"), 1),
                (Some("Speaker 1"), 1)
            ]
        );
        let files = render(
            "r",
            &t,
            &CaptionRules::default(),
            &TranscriptOptions::default(),
        );
        assert_eq!(
            files[0].body,
            "Speaker 1: Hello.\n\nSpeaker 2: Hi.\n\nSpeaker 1: Bye.\n"
        );
        assert!(
            files[2].body.contains("<v Speaker 2>Hi."),
            "{}",
            files[2].body
        );
    }

    #[test]
    fn a_reply_inside_a_long_turn_keeps_the_cues_in_time_order() {
        let words = |from_ms: i64, text: &str| -> Vec<Word> {
            text.split(' ')
                .enumerate()
                .map(|(i, w)| word(from_ms + i as i64 * 400, from_ms + i as i64 * 400 + 350, w))
                .collect()
        };
        let segment = |words: Vec<Word>| Segment {
            start_ms: words[0].start_ms,
            end_ms: words[words.len() - 1].end_ms,
            text: words
                .iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            confidence: 0.9,
            words,
            speaker: None,
        };
        let long = "one two three four five six seven eight nine ten eleven twelve thirteen \
                    fourteen fifteen sixteen seventeen eighteen nineteen twenty twenty-one \
                    twenty-two twenty-three twenty-four twenty-five twenty-six twenty-seven";
        let t = two_channels(
            15_000,
            vec![segment(words(0, long))],
            vec![segment(words(3_000, "Yeah."))],
        );
        let files = render(
            "r",
            &t,
            &CaptionRules::default(),
            &TranscriptOptions::default(),
        );
        let times: Vec<(String, String)> = files[2]
            .body
            .lines()
            .filter_map(|l| l.split_once(" --> "))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert!(times.len() >= 3, "{}", files[2].body);
        for pair in times.windows(2) {
            assert!(
                pair[0].0 <= pair[1].0,
                "cues out of order: {}",
                files[2].body
            );
            assert!(pair[0].1 <= pair[1].0, "cues overlap: {}", files[2].body);
        }
    }
}
