//! Figures about a transcript, as a pure function of its segments: what the report's JSON and
//! the `transcription.completed` event tell a client about the recording.

use std::collections::BTreeMap;

use echo_catalog::events::Segment;
use serde::{Deserialize, Serialize};

/// A word whose confidence is below this is one whisper was unsure of.
pub const LOW_CONFIDENCE: f32 = 0.4;

/// A stretch of consecutive words whisper was unsure of: where a reader should check the
/// transcript against the audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stretch {
    /// Start of its first word, ms from the start of the audio.
    pub start_ms: i64,
    /// End of its last word.
    pub end_ms: i64,
    /// Its words.
    pub text: String,
}

/// What the analysis found; written into `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Duration of the audio in ms (from the job), the base of every rate and ratio.
    pub duration_ms: i64,
    /// Number of words; `transcription.completed` carries it for display and billing.
    pub word_count: i32,
    /// Number of segments (subtitle cues) in the transcript.
    pub segment_count: i32,
    /// Words per minute of speech (`speech_ms`, not the whole audio): how fast the speaker
    /// talks, whatever the pauses; 0 without speech.
    pub words_per_minute: f64,
    /// Milliseconds of speech: what the voice-activity detector heard when it ran, else the
    /// time covered by at least one segment (overlapping spans counted once), which counts
    /// the pauses inside a segment as speech.
    pub speech_ms: i64,
    /// Milliseconds of the audio that are not speech.
    pub silence_ms: i64,
    /// `speech_ms / duration_ms`, 0 for zero-length audio; tells mostly-silent recordings
    /// apart at a glance.
    pub speech_ratio: f64,
    /// Mean of the segments' recognition confidences (0 to 1; 0 without segments): a rough
    /// quality signal for the whole transcript.
    pub mean_confidence: f64,
    /// Whether some words are doubtful: `low_confidence` is not empty.
    pub has_low_confidence: bool,
    /// The stretches of consecutive words with a confidence below [`LOW_CONFIDENCE`], in
    /// time order.
    pub low_confidence: Vec<Stretch>,
    /// Words dropped by the hallucination guard (whisper repeating a phrase in a loop, see
    /// `guard`); not in the transcript, not in `word_count`.
    pub dropped_loop_words: i32,
    /// Segments whisper wrote for a stretch it heard as noise, music or silence (`[Music]`,
    /// `[BLANK_AUDIO]`): left out of the transcript and counted here (see `guard`).
    pub dropped_non_speech_segments: i32,
    /// Language of the transcript: the one a multilingual model detected in the chunks with
    /// the most words, the configured one otherwise.
    pub language: String,
    /// Words heard per language a multilingual model detected (by chunk); empty with a
    /// one-language model.
    #[serde(default)]
    pub languages: BTreeMap<String, i32>,
    /// No speech was recognised at all, so a client can say so instead of showing an empty
    /// transcript as if something went wrong.
    pub empty: bool,
}

/// What the hallucination guard dropped before the analysis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Words of whisper's loops.
    pub loop_words: usize,
    /// Segments whisper wrote for what was not speech.
    pub non_speech_segments: usize,
}

/// Analyses the assembled `segments` of audio lasting `duration_ms`, of which the
/// voice-activity detector heard `detected_speech_ms` as speech when it ran; the guard
/// dropped `dropped` before.
pub fn analyze(
    segments: &[Segment],
    duration_ms: i64,
    detected_speech_ms: Option<i64>,
    language: &str,
    dropped: Dropped,
) -> Analysis {
    let duration_ms = duration_ms.max(0);
    let word_count = saturating_i32(segments.iter().map(|s| count_words(&s.text)).sum());
    let speech_ms = match detected_speech_ms {
        Some(ms) => ms.clamp(0, duration_ms),
        None => covered_ms(segments, duration_ms),
    };
    let words_per_minute = if speech_ms > 0 {
        round(f64::from(word_count) * 60_000.0 / speech_ms as f64, 2)
    } else {
        0.0
    };
    let speech_ratio = if duration_ms > 0 {
        round(speech_ms as f64 / duration_ms as f64, 4)
    } else {
        0.0
    };
    let mean_confidence = if segments.is_empty() {
        0.0
    } else {
        let sum: f64 = segments.iter().map(|s| f64::from(s.confidence)).sum();
        round(sum / segments.len() as f64, 4)
    };
    let low_confidence = low_confidence_stretches(segments);
    Analysis {
        duration_ms,
        word_count,
        segment_count: saturating_i32(segments.len()),
        words_per_minute,
        speech_ms,
        silence_ms: duration_ms - speech_ms,
        speech_ratio,
        mean_confidence,
        has_low_confidence: !low_confidence.is_empty(),
        low_confidence,
        dropped_loop_words: saturating_i32(dropped.loop_words),
        dropped_non_speech_segments: saturating_i32(dropped.non_speech_segments),
        language: language.to_string(),
        languages: BTreeMap::new(),
        empty: word_count == 0,
    }
}

/// Maximal runs of consecutive words (across segments) below [`LOW_CONFIDENCE`].
fn low_confidence_stretches(segments: &[Segment]) -> Vec<Stretch> {
    let mut stretches: Vec<Stretch> = Vec::new();
    let mut open = false;
    for word in segments.iter().flat_map(|s| &s.words) {
        if word.confidence >= LOW_CONFIDENCE {
            open = false;
            continue;
        }
        match stretches.last_mut() {
            Some(stretch) if open => {
                stretch.end_ms = word.end_ms;
                stretch.text.push(' ');
                stretch.text.push_str(&word.text);
            }
            _ => stretches.push(Stretch {
                start_ms: word.start_ms,
                end_ms: word.end_ms,
                text: word.text.clone(),
            }),
        }
        open = true;
    }
    stretches
}

/// Words in a text: whitespace-separated tokens with a letter or digit (a lone dash is not a
/// word).
pub fn count_words(text: &str) -> usize {
    text.split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count()
}

/// Length of the union of the segments' spans, clipped to `[0, duration_ms)`: segments may
/// overlap slightly and whisper's centisecond timestamps may run past the end.
fn covered_ms(segments: &[Segment], duration_ms: i64) -> i64 {
    let mut spans: Vec<(i64, i64)> = segments
        .iter()
        .map(|s| {
            (
                s.start_ms.clamp(0, duration_ms),
                s.end_ms.clamp(0, duration_ms),
            )
        })
        .filter(|(start, end)| end > start)
        .collect();
    spans.sort_unstable();
    let mut covered = 0;
    let mut reached = 0;
    for (start, end) in spans {
        let from = start.max(reached);
        if end > from {
            covered += end - from;
            reached = end;
        }
    }
    covered
}

fn saturating_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Rounds to `digits` decimals, so the report shows 142.86, not 142.85714285714286.
fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start_ms: i64, end_ms: i64, text: &str, confidence: f32) -> Segment {
        Segment {
            start_ms,
            end_ms,
            text: text.into(),
            confidence,
            words: Vec::new(),
            speaker: None,
        }
    }

    #[test]
    fn speech_figures_of_a_simple_transcript() {
        let segments = [
            seg(0, 2_000, "Hello there, world.", 0.75),
            seg(1_500, 4_000, "How are you - today?", 0.25),
            seg(10_000, 12_000, "Fine.", 0.5),
        ];
        let a = analyze(&segments, 20_000, None, "en", Dropped::default());
        assert_eq!(a.duration_ms, 20_000);
        assert_eq!(a.word_count, 8);
        assert_eq!(a.segment_count, 3);
        // 8 words in 6 s of speech.
        assert_eq!(a.words_per_minute, 80.0);
        // [0, 4000) and [10000, 12000): the overlap of the first two is counted once.
        assert_eq!(a.speech_ms, 6_000);
        assert_eq!(a.silence_ms, 14_000);
        assert_eq!(a.speech_ratio, 0.3);
        assert_eq!(a.mean_confidence, 0.5);
        assert_eq!(a.language, "en");
        assert!(!a.empty);
    }

    #[test]
    fn detected_speech_replaces_the_segment_coverage() {
        // One segment covers the whole 20 s, pauses and all; the detector heard 12 s.
        let segments = [seg(0, 20_000, "words with long pauses between them", 0.9)];
        let a = analyze(&segments, 20_000, Some(12_000), "en", Dropped::default());
        assert_eq!(
            (a.speech_ms, a.silence_ms, a.speech_ratio),
            (12_000, 8_000, 0.6)
        );
        // Without a detector, the coverage stands in.
        let b = analyze(&segments, 20_000, None, "en", Dropped::default());
        assert_eq!((b.speech_ms, b.silence_ms), (20_000, 0));
        // A detector figure past the audio is clipped.
        let c = analyze(&segments, 20_000, Some(25_000), "en", Dropped::default());
        assert_eq!((c.speech_ms, c.silence_ms), (20_000, 0));
    }

    #[test]
    fn silence_only_audio_is_empty_without_dividing_by_anything() {
        let a = analyze(&[], 30_000, None, "en", Dropped::default());
        assert_eq!(a.word_count, 0);
        assert_eq!(a.segment_count, 0);
        assert_eq!(a.speech_ms, 0);
        assert_eq!(a.silence_ms, 30_000);
        assert_eq!(a.speech_ratio, 0.0);
        assert_eq!(a.words_per_minute, 0.0);
        assert_eq!(a.mean_confidence, 0.0);
        assert!(a.empty);
        assert!(serde_json::to_string(&a).is_ok());
    }

    #[test]
    fn zero_length_audio_and_spans_past_the_end_are_clipped() {
        let a = analyze(
            &[seg(0, 1_000, "hi", 1.0)],
            0,
            None,
            "en",
            Dropped::default(),
        );
        assert_eq!((a.speech_ms, a.silence_ms, a.speech_ratio), (0, 0, 0.0));
        assert_eq!(a.words_per_minute, 0.0);
        assert_eq!(a.word_count, 1);

        let b = analyze(
            &[seg(900, 1_500, "hi", 1.0)],
            1_000,
            None,
            "en",
            Dropped::default(),
        );
        assert_eq!((b.speech_ms, b.silence_ms), (100, 900));
    }

    #[test]
    fn rates_are_rounded_for_display() {
        let a = analyze(
            &[seg(0, 100, "one two three four five", 0.3)],
            2_100,
            None,
            "en",
            Dropped::default(),
        );
        // Five words in the 0.1 s a segment covers, of 2.1 s of audio.
        assert_eq!(a.words_per_minute, 3_000.0);
        assert_eq!(a.speech_ratio, 0.0476);
        assert_eq!(a.mean_confidence, 0.3);
    }

    #[test]
    fn doubtful_words_are_reported_as_stretches_and_loops_as_dropped() {
        let word = |start_ms, text: &str, confidence| echo_catalog::events::Word {
            start_ms,
            end_ms: start_ms + 200,
            text: text.into(),
            confidence,
        };
        let mut first = seg(0, 1_000, "we saw the", 0.7);
        first.words = vec![
            word(0, "we", 0.9),
            word(300, "saw", 0.3),
            word(600, "the", 0.2),
        ];
        let mut second = seg(1_000, 2_000, "harbour lights", 0.7);
        second.words = vec![word(1_000, "harbour", 0.35), word(1_400, "lights", 0.8)];
        let mut third = seg(3_000, 4_000, "again", 0.1);
        third.words = vec![word(3_000, "again", 0.1)];
        let a = analyze(
            &[first, second, third],
            5_000,
            Some(4_000),
            "en",
            Dropped {
                loop_words: 6,
                non_speech_segments: 2,
            },
        );
        assert!(a.has_low_confidence);
        assert_eq!(
            a.low_confidence,
            [
                Stretch {
                    start_ms: 300,
                    end_ms: 1_200,
                    text: "saw the harbour".into()
                },
                Stretch {
                    start_ms: 3_000,
                    end_ms: 3_200,
                    text: "again".into()
                }
            ]
        );
        assert_eq!(a.dropped_loop_words, 6);
        assert_eq!(a.dropped_non_speech_segments, 2);
        // Six words in 4 s of speech.
        assert_eq!(a.words_per_minute, 90.0);
        assert!(!analyze(&[], 1_000, None, "en", Dropped::default()).has_low_confidence);
    }
}
