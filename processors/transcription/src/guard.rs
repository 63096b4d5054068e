//! The hallucination guard, as pure functions: what whisper writes for audio that is not
//! speech is dropped from the transcript and counted, not reported as speech. Two kinds:
//! annotations it writes for a window of noise, music or silence (`[Music]`,
//! `[BLANK_AUDIO]`), and loops its greedy decoding falls into on noise and long silences,
//! the same few words over and over ("thank you. thank you. thank you. …").

use echo_catalog::events::Segment;

use crate::assemble::{word_key, ChunkTranscript};

/// Whether a segment's text is speech: not blank, not punctuation only, and not a
/// non-speech annotation whisper writes for silence or noise (`[BLANK_AUDIO]`, `(music)`).
pub fn is_speech(text: &str) -> bool {
    let t = text.trim();
    let annotation = [('[', ']'), ('(', ')'), ('*', '*')]
        .iter()
        .any(|&(open, close)| t.len() >= 2 && t.starts_with(open) && t.ends_with(close));
    !annotation && t.chars().any(char::is_alphanumeric)
}

/// How many segments of `chunks` whisper wrote for what was not speech: text that is not
/// [`is_speech`] (blank segments say nothing and are not counted). Assembly leaves them out.
pub fn non_speech_segments(chunks: &[ChunkTranscript]) -> usize {
    chunks
        .iter()
        .flat_map(|c| &c.segments)
        .filter(|s| !s.text.trim().is_empty() && !is_speech(&s.text))
        .count()
}

/// Longest phrase, in words, whose repetition is looked for.
const MAX_PHRASE_WORDS: usize = 6;

/// How many times in a row a phrase must occur to be a loop. People repeat a word three
/// times ("no, no, no"); four and more in a row is whisper's loop, and sounds like one.
const LOOP_REPEATS: usize = 4;

/// `segments` with every loop cut back to its first occurrence, and how many words were
/// dropped. A loop is a phrase of 1 to [`MAX_PHRASE_WORDS`] words said [`LOOP_REPEATS`] or
/// more times in a row (compared without case and punctuation), across segment ends.
/// Segments left without words are removed; the others keep their times.
pub fn drop_loops(segments: Vec<Segment>) -> (Vec<Segment>, usize) {
    let keys: Vec<String> = segments
        .iter()
        .flat_map(|s| s.words.iter().map(|w| word_key(&w.text)))
        .collect();
    let mut keep = vec![true; keys.len()];
    let mut i = 0;
    while i < keys.len() {
        // The phrase length with the longest run of repeats starting here.
        let found = (1..=MAX_PHRASE_WORDS)
            .map(|n| (n, repeats(&keys, i, n)))
            .filter(|&(_, times)| times >= LOOP_REPEATS)
            .max_by_key(|&(n, times)| n * times);
        match found {
            Some((n, times)) => {
                keep[i + n..i + n * times]
                    .iter_mut()
                    .for_each(|k| *k = false);
                i += n * times;
            }
            None => i += 1,
        }
    }
    let dropped = keep.iter().filter(|k| !**k).count();
    if dropped == 0 {
        return (segments, 0);
    }
    let mut flags = keep.into_iter();
    let kept = segments
        .into_iter()
        .filter_map(|segment| {
            let words: Vec<_> = segment
                .words
                .iter()
                .filter(|_| flags.next().unwrap_or(true))
                .cloned()
                .collect();
            if words.is_empty() {
                return None;
            }
            let text = words
                .iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            Some(Segment {
                text,
                words,
                ..segment
            })
        })
        .collect();
    (kept, dropped)
}

/// How many times the `n` words at `at` occur in a row from there.
fn repeats(keys: &[String], at: usize, n: usize) -> usize {
    if at + n > keys.len() || keys[at..at + n].iter().any(String::is_empty) {
        return 0;
    }
    let phrase = &keys[at..at + n];
    let mut times = 1;
    while keys.get(at + n * times..at + n * (times + 1)) == Some(phrase) {
        times += 1;
    }
    times
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_blanks_and_punctuation_are_not_speech() {
        assert!(is_speech(" Hello."));
        assert!(!is_speech("[BLANK_AUDIO]"));
        assert!(!is_speech(" [Music]"));
        assert!(!is_speech("(music)"));
        assert!(!is_speech(" - "));
        assert!(!is_speech(""));
    }

    #[test]
    fn non_speech_segments_are_counted_per_chunk_blanks_not() {
        let segment = |text: &str| Segment {
            start_ms: 0,
            end_ms: 1_000,
            text: text.into(),
            confidence: 0.5,
            words: Vec::new(),
            speaker: None,
        };
        let chunk = |index, texts: &[&str]| ChunkTranscript {
            language: None,
            stored_at: None,
            index,
            start_ms: 0,
            end_ms: 30_000,
            segments: texts.iter().map(|t| segment(t)).collect(),
        };
        let chunks = [
            chunk(0, &[" Hello.", " [Music]", " "]),
            chunk(1, &["[BLANK_AUDIO]", " there"]),
        ];
        assert_eq!(non_speech_segments(&chunks), 2);
    }
    use echo_catalog::events::Word;

    fn segment(start_ms: i64, text: &str) -> Segment {
        let words: Vec<Word> = text
            .split_whitespace()
            .enumerate()
            .map(|(i, w)| Word {
                start_ms: start_ms + i as i64 * 300,
                end_ms: start_ms + i as i64 * 300 + 250,
                text: w.into(),
                confidence: 0.6,
            })
            .collect();
        Segment {
            start_ms,
            end_ms: start_ms + words.len() as i64 * 300,
            text: text.into(),
            confidence: 0.6,
            words,
            speaker: None,
        }
    }

    fn texts(segments: &[Segment]) -> Vec<&str> {
        segments.iter().map(|s| s.text.as_str()).collect()
    }

    #[test]
    fn a_phrase_looping_across_segments_is_cut_to_its_first_occurrence() {
        let (kept, dropped) = drop_loops(vec![
            segment(0, "We arrived late."),
            segment(2_000, "Thank you. Thank you."),
            segment(4_000, "Thank you. thank you"),
            segment(6_000, "Thank you."),
        ]);
        assert_eq!(texts(&kept), ["We arrived late.", "Thank you."]);
        assert_eq!(dropped, 8);
        assert_eq!(kept[1].words.len(), 2);
        assert_eq!(kept[1].start_ms, 2_000);
    }

    #[test]
    fn speech_that_repeats_a_little_is_kept() {
        let said = vec![
            segment(0, "No, no, no, I said."),
            segment(3_000, "Go team go team go team."),
            segment(6_000, "Very very very good."),
        ];
        let (kept, dropped) = drop_loops(said.clone());
        assert_eq!(dropped, 0);
        assert_eq!(kept, said);
    }

    #[test]
    fn a_single_word_loop_inside_a_segment_is_cut() {
        let (kept, dropped) = drop_loops(vec![segment(0, "and the the the the the end")]);
        assert_eq!(texts(&kept), ["and the end"]);
        assert_eq!(dropped, 4);
        assert!(drop_loops(Vec::new()).0.is_empty());
    }
}
