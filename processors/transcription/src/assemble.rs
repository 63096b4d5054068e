//! Merging the segments of a job's chunks into one transcript, as a pure function.
//!
//! Consecutive chunks overlap (1 s by default) so that no word is cut at a boundary; the price
//! is that words spoken in an overlap are recognised twice. The merge keeps each chunk's
//! segments on its own side of the overlap's midpoint, then removes the run of words that is
//! still duplicated across the seam (a segment straddling the midpoint in both chunks).

use echo_catalog::events::Segment;
use serde::{Deserialize, Serialize};

/// What one chunk contributed: its time range and the segments recognised in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkTranscript {
    /// Position of the chunk in the job; orders chunks that start at the same time.
    pub index: i32,
    /// Start of the chunk in the whole audio (ms); with the previous chunk's end it gives the
    /// overlap to de-duplicate.
    pub start_ms: i64,
    /// End of the chunk in the whole audio (ms, exclusive).
    pub end_ms: i64,
    /// Recognised segments, timestamps already global (ms from the start of the audio).
    pub segments: Vec<Segment>,
}

/// Merges the chunks of one job into a single time-ordered segment list in which no word of
/// an overlap appears twice. Chunks may be given in any order; segments without speech
/// (blank text, `[BLANK_AUDIO]`-style annotations) are left out.
pub fn assemble(chunks: &[ChunkTranscript]) -> Vec<Segment> {
    let mut ordered: Vec<&ChunkTranscript> = chunks.iter().collect();
    ordered.sort_by_key(|c| (c.start_ms, c.index));

    let mut out: Vec<Segment> = Vec::new();
    // Where the previous chunk's segments begin in `out`, and where that chunk ends.
    let mut previous: Option<(usize, i64)> = None;
    for chunk in ordered {
        let mut segments: Vec<Segment> = chunk
            .segments
            .iter()
            .filter(|s| is_speech(&s.text))
            .map(|s| Segment {
                text: normalise_spaces(&s.text),
                ..s.clone()
            })
            .collect();
        segments.sort_by_key(|s| (s.start_ms, s.end_ms));

        if let Some((prev_first, prev_end)) = previous {
            let (a, b) = (chunk.start_ms, prev_end);
            if a < b {
                let mid = a + (b - a) / 2;
                // Each chunk keeps what lies on its side of the midpoint.
                let kept: Vec<Segment> = out
                    .drain(prev_first..)
                    .filter(|s| s.start_ms < mid)
                    .collect();
                out.extend(kept);
                segments.retain(|s| s.end_ms > mid);
                if !remove_seam_duplicates(&out[prev_first..], &mut segments, a, b) {
                    realign_seam(&mut out, prev_first, &mut segments, a, b);
                }
            }
        }
        previous = Some((out.len(), chunk.end_ms));
        out.extend(segments);
    }
    out
}

/// Removes from the head of `next` the longest run of words that also ends `previous`,
/// looking only at segments that reach into the overlap `[a, b)`: duplicates can only come
/// from there, and looking further would eat words legitimately said twice.
/// Returns whether it found such a run.
fn remove_seam_duplicates(previous: &[Segment], next: &mut Vec<Segment>, a: i64, b: i64) -> bool {
    let Some(seam_start) = previous.iter().position(|s| s.end_ms > a) else {
        return false;
    };
    let prev_words: Vec<String> = previous[seam_start..]
        .iter()
        .flat_map(|s| s.text.split_whitespace().map(word_key))
        .collect();
    let in_overlap = next.iter().take_while(|s| s.start_ms < b).count();
    let next_words: Vec<String> = next[..in_overlap]
        .iter()
        .flat_map(|s| s.text.split_whitespace().map(word_key))
        .collect();

    let longest = (1..=prev_words.len().min(next_words.len()))
        .rev()
        .find(|&k| prev_words[prev_words.len() - k..] == next_words[..k]);
    let Some(to_drop) = longest else {
        return false;
    };
    let prev_end = previous.last().map_or(i64::MIN, |s| s.end_ms);
    drop_words(next, 0, to_drop, End::Head);
    // The dropped words were the ones said before the previous segment ended, so the rest
    // starts no earlier than that: keeps cues from overlapping.
    if let Some(first) = next.first_mut() {
        if prev_end > first.start_ms && prev_end < first.end_ms {
            first.start_ms = prev_end;
        }
    }
    true
}

/// How far from the seam `realign_seam` looks, in words on each side.
const SEAM_WORDS: usize = 8;

/// When the two chunks disagree at the seam (the earlier one heard a word cut in half:
/// "the train crossed along." / "crossed a long bridge"), finds the longest run of words both
/// recognised near the seam and keeps the later chunk's version from there: the earlier
/// chunk's words from the run on are dropped, and so are the later chunk's words before it.
/// A single-word run must be a long word, so a stray "the" does not move the seam.
fn realign_seam(
    out: &mut Vec<Segment>,
    prev_first: usize,
    next: &mut Vec<Segment>,
    a: i64,
    b: i64,
) {
    let Some(offset) = out[prev_first..].iter().position(|s| s.end_ms > a) else {
        return;
    };
    let seam_start = prev_first + offset;
    let prev_words: Vec<String> = out[seam_start..]
        .iter()
        .flat_map(|s| s.text.split_whitespace().map(word_key))
        .collect();
    let in_overlap = next.iter().take_while(|s| s.start_ms < b).count();
    let next_words: Vec<String> = next[..in_overlap]
        .iter()
        .flat_map(|s| s.text.split_whitespace().map(word_key))
        .take(SEAM_WORDS)
        .collect();
    let tail_from = prev_words.len().saturating_sub(SEAM_WORDS);
    let mut best: Option<(usize, usize, usize)> = None; // (run length, prev index, next index)
    for i in tail_from..prev_words.len() {
        for j in 0..next_words.len() {
            let run = prev_words[i..]
                .iter()
                .zip(&next_words[j..])
                .take_while(|(p, n)| p == n && !p.is_empty())
                .count();
            let long_enough = run >= 2 || (run == 1 && prev_words[i].chars().count() >= 5);
            if long_enough && best.is_none_or(|(len, _, _)| run > len) {
                best = Some((run, i, j));
            }
        }
    }
    let Some((_, prev_cut, next_cut)) = best else {
        return;
    };
    drop_words(out, seam_start, prev_words.len() - prev_cut, End::Tail);
    drop_words(next, 0, next_cut, End::Head);
}

/// Which end of a run of segments words are removed from.
#[derive(Debug, Clone, Copy)]
enum End {
    /// The first words (the later chunk's side of a seam).
    Head,
    /// The last words (the earlier chunk's side of a seam).
    Tail,
}

/// Removes `count` words from one end of `segments[from..]`, dropping emptied segments.
fn drop_words(segments: &mut Vec<Segment>, from: usize, mut count: usize, end: End) {
    while count > 0 && segments.len() > from {
        let index = match end {
            End::Head => from,
            End::Tail => segments.len() - 1,
        };
        let words: Vec<&str> = segments[index].text.split_whitespace().collect();
        if words.len() <= count {
            count -= words.len();
            segments.remove(index);
        } else {
            let kept = match end {
                End::Head => &words[count..],
                End::Tail => &words[..words.len() - count],
            };
            segments[index].text = kept.join(" ");
            count = 0;
        }
    }
}

/// How words are compared across the seam: the two chunks may differ in case and
/// punctuation ("Hello," vs "hello").
fn word_key(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// One space between words, none around: whisper's leading spaces and any line break would
/// otherwise leak into subtitle cues (a blank line ends a cue).
fn normalise_spaces(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a segment's text is speech: not blank, not punctuation only, and not a
/// non-speech annotation whisper emits for silence or noise (`[BLANK_AUDIO]`, `(music)`).
pub fn is_speech(text: &str) -> bool {
    let t = text.trim();
    let annotation = [('[', ']'), ('(', ')'), ('*', '*')]
        .iter()
        .any(|&(open, close)| t.len() >= 2 && t.starts_with(open) && t.ends_with(close));
    !annotation && t.chars().any(char::is_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start_ms: i64, end_ms: i64, text: &str) -> Segment {
        Segment {
            start_ms,
            end_ms,
            text: text.into(),
            confidence: 0.9,
        }
    }

    fn chunk(index: i32, start_ms: i64, end_ms: i64, segments: Vec<Segment>) -> ChunkTranscript {
        ChunkTranscript {
            index,
            start_ms,
            end_ms,
            segments,
        }
    }

    fn texts(segments: &[Segment]) -> Vec<&str> {
        segments.iter().map(|s| s.text.as_str()).collect()
    }

    #[test]
    fn segments_wholly_on_the_wrong_side_of_the_overlap_midpoint_are_dropped() {
        // Chunks [0, 30000) and [29000, 59000): overlap [29000, 30000), midpoint 29500.
        let first = chunk(
            0,
            0,
            30_000,
            vec![
                seg(0, 5_000, "one two"),
                seg(28_000, 29_400, "three"),
                seg(29_600, 30_000, "four"),
            ],
        );
        let second = chunk(
            1,
            29_000,
            59_000,
            vec![
                seg(29_000, 29_450, "three"),
                seg(29_550, 31_000, "four five"),
            ],
        );
        let merged = assemble(&[first, second]);
        assert_eq!(texts(&merged), ["one two", "three", "four five"]);
        let starts: Vec<i64> = merged.iter().map(|s| s.start_ms).collect();
        assert_eq!(starts, [0, 28_000, 29_550]);
    }

    #[test]
    fn a_word_run_recognised_in_both_chunks_across_the_midpoint_appears_once() {
        // Both chunks hold a segment straddling the midpoint 29500 with the same words.
        let first = chunk(
            0,
            0,
            30_000,
            vec![
                seg(25_000, 28_000, "we went to"),
                seg(28_000, 29_900, "the big market,"),
            ],
        );
        let second = chunk(
            1,
            29_000,
            59_000,
            vec![
                seg(29_100, 31_000, "Big market and then"),
                seg(31_000, 33_000, "home again."),
            ],
        );
        let merged = assemble(&[second.clone(), first.clone()]);
        assert_eq!(
            texts(&merged),
            ["we went to", "the big market,", "and then", "home again."]
        );
        // The trimmed segment starts where the previous one ended: cues do not overlap.
        assert_eq!(merged[2].start_ms, 29_900);
        assert_eq!(merged[2].end_ms, 31_000);
        // Order of the inputs does not matter.
        assert_eq!(assemble(&[first, second]), merged);
    }

    #[test]
    fn a_duplicate_run_spanning_whole_segments_is_removed_entirely() {
        let first = chunk(0, 0, 30_000, vec![seg(28_000, 29_800, "hello there")]);
        let second = chunk(
            1,
            29_000,
            59_000,
            vec![
                seg(29_200, 29_600, "Hello"),
                seg(29_600, 32_000, "there friend"),
            ],
        );
        let merged = assemble(&[first, second]);
        assert_eq!(texts(&merged), ["hello there", "friend"]);
    }

    #[test]
    fn without_overlap_nothing_is_dropped_even_repeated_words() {
        let first = chunk(0, 0, 30_000, vec![seg(28_000, 29_900, "yes yes")]);
        let second = chunk(1, 30_000, 60_000, vec![seg(30_000, 31_000, "yes yes")]);
        let merged = assemble(&[first, second]);
        assert_eq!(texts(&merged), ["yes yes", "yes yes"]);
    }

    #[test]
    fn words_repeated_outside_the_overlap_are_kept() {
        let first = chunk(
            0,
            0,
            30_000,
            vec![seg(20_000, 22_000, "again"), seg(28_000, 29_000, "stop")],
        );
        let second = chunk(1, 29_000, 59_000, vec![seg(31_000, 32_000, "again")]);
        let merged = assemble(&[first, second]);
        assert_eq!(texts(&merged), ["again", "stop", "again"]);
    }

    #[test]
    fn empty_chunks_and_non_speech_segments_are_harmless() {
        assert!(assemble(&[]).is_empty());
        let silent = chunk(
            0,
            0,
            30_000,
            vec![
                seg(0, 30_000, " [BLANK_AUDIO]"),
                seg(0, 10, "  "),
                seg(5, 6, "..."),
            ],
        );
        assert!(assemble(std::slice::from_ref(&silent)).is_empty());

        let speech = chunk(
            2,
            58_000,
            70_000,
            vec![seg(60_000, 61_000, "  late   words ")],
        );
        let empty = chunk(1, 29_000, 59_000, Vec::new());
        let merged = assemble(&[speech, empty, silent]);
        assert_eq!(texts(&merged), ["late words"]);
    }

    #[test]
    fn segments_within_a_chunk_come_out_in_time_order() {
        let c = chunk(
            0,
            0,
            30_000,
            vec![seg(5_000, 6_000, "second"), seg(1_000, 2_000, "first")],
        );
        assert_eq!(texts(&assemble(&[c])), ["first", "second"]);
    }

    #[test]
    fn a_word_cut_in_half_at_the_seam_is_realigned_on_the_later_chunk() {
        // Both seams as whisper heard them in the 68 s sample cut at fixed 30 s points.
        let first = chunk(
            0,
            0,
            30_000,
            vec![
                seg(20_000, 25_000, "She told him about her new job."),
                seg(25_000, 30_000, "The train crossed along."),
            ],
        );
        let second = chunk(
            1,
            29_000,
            59_000,
            vec![
                seg(29_000, 33_000, "crossed a long bridge over a wide river."),
                seg(50_000, 58_500, "one of them wanted to travel to the map."),
            ],
        );
        let third = chunk(
            2,
            58_000,
            70_000,
            vec![seg(
                58_000,
                62_000,
                "to travel to the mountains, another hope.",
            )],
        );
        let merged = assemble(&[first, second, third]);
        let text = texts(&merged).join(" ");
        assert_eq!(
            text,
            "She told him about her new job. The train crossed a long bridge over a wide river. \
             one of them wanted to travel to the mountains, another hope."
        );
    }

    #[test]
    fn a_short_common_word_does_not_move_the_seam() {
        let first = chunk(0, 0, 30_000, vec![seg(25_000, 30_000, "and then the")]);
        let second = chunk(
            1,
            29_000,
            59_000,
            vec![seg(29_000, 33_000, "dog ran to the park")],
        );
        let merged = assemble(&[first, second]);
        assert_eq!(texts(&merged), ["and then the", "dog ran to the park"]);
    }

    #[test]
    fn speech_detection() {
        assert!(is_speech(" Hello."));
        assert!(!is_speech("[BLANK_AUDIO]"));
        assert!(!is_speech("(music)"));
        assert!(!is_speech(" - "));
        assert!(!is_speech(""));
    }
}
