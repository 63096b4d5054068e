//! Merging the segments of a job's chunks into one transcript, word by word, as a pure
//! function.
//!
//! Consecutive chunks overlap (1 s by default) so that no word is cut at a boundary; the price
//! is that words spoken in an overlap are recognised twice. The merge keeps each chunk's words
//! on its own side of the overlap's midpoint (a word across it stays in both, so none is lost),
//! then removes the run of words that is still duplicated across the seam, or, where the two
//! chunks disagree, keeps the later chunk's version from the longest run both heard near it. Segments are rebuilt from the
//! words left, so a segment cut at a seam gets the times of the words it keeps.

use echo_catalog::events::{Segment, Word};
use serde::{Deserialize, Serialize};

use crate::guard;

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
    /// The language a multilingual model detected in the chunk; `None` with a one-language
    /// model (and in state written before it existed).
    #[serde(default)]
    pub language: Option<String>,
    /// Where its segments are kept as an object ([`crate::stored`]); `segments` is then
    /// empty. `None` for the segments at hand (and in state written before results were
    /// kept as objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_at: Option<String>,
}

/// A word on its way through the merge, with the segment it came from.
#[derive(Debug, Clone)]
struct Placed {
    /// The word, global times.
    word: Word,
    /// Index of its segment in the merge's segment table.
    segment: usize,
    /// Its position among that segment's words: tells whether a rebuilt segment still starts
    /// (or ends) where whisper put it.
    position: usize,
}

/// Merges the chunks of one job into a single time-ordered segment list in which no word of
/// an overlap appears twice. Chunks may be given in any order; segments without speech
/// (blank text, `[BLANK_AUDIO]`-style annotations) are left out. Every segment of the result
/// has its words, joined by single spaces in its text.
pub fn assemble(chunks: &[ChunkTranscript]) -> Vec<Segment> {
    let mut ordered: Vec<&ChunkTranscript> = chunks.iter().collect();
    ordered.sort_by_key(|c| (c.start_ms, c.index));

    let mut table: Vec<Segment> = Vec::new();
    let mut out: Vec<Placed> = Vec::new();
    // Where the previous chunk's words begin in `out`, and where that chunk ends.
    let mut previous: Option<(usize, i64)> = None;
    for chunk in ordered {
        let mut segments: Vec<&Segment> = chunk
            .segments
            .iter()
            .filter(|s| guard::is_speech(&s.text))
            .collect();
        segments.sort_by_key(|s| (s.start_ms, s.end_ms));
        let mut words = Vec::new();
        for segment in segments {
            let words_of_segment = words_of(segment);
            let index = table.len();
            table.push(Segment {
                words: words_of_segment.clone(),
                ..segment.clone()
            });
            words.extend(
                words_of_segment
                    .into_iter()
                    .enumerate()
                    .map(|(position, word)| Placed {
                        word,
                        segment: index,
                        position,
                    }),
            );
        }

        if let Some((prev_first, prev_end)) = previous {
            let (a, b) = (chunk.start_ms, prev_end);
            if a < b {
                let mid = a + (b - a) / 2;
                // Each chunk keeps what lies on its side of the midpoint.
                let kept: Vec<Placed> = out
                    .drain(prev_first..)
                    .filter(|p| p.word.start_ms < mid)
                    .collect();
                out.extend(kept);
                words.retain(|p| p.word.end_ms > mid);
                if !remove_seam_duplicates(&out[prev_first..], &mut words, a, b) {
                    realign_seam(&mut out, prev_first, &mut words, a, b);
                }
            }
        }
        previous = Some((out.len(), chunk.end_ms));
        out.extend(words);
    }
    regroup(&table, out)
}

/// A segment's words: whisper's, when they spell its text; otherwise (records written before
/// words were recorded) its text's words spread over its span in proportion to their length.
pub fn words_of(segment: &Segment) -> Vec<Word> {
    let text = normalise_spaces(&segment.text);
    let spelled = segment
        .words
        .iter()
        .map(|w| w.text.as_str())
        .collect::<Vec<_>>();
    if !segment.words.is_empty() && spelled.join(" ") == text {
        return segment.words.clone();
    }
    let pieces: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
    let weights: Vec<i64> = pieces
        .iter()
        .map(|w| w.chars().count() as i64 + 1)
        .collect();
    let total: i64 = weights.iter().sum::<i64>().max(1);
    let span = (segment.end_ms - segment.start_ms).max(0);
    let mut before = 0;
    pieces
        .iter()
        .zip(&weights)
        .map(|(piece, weight)| {
            let start_ms = segment.start_ms + span * before / total;
            before += weight;
            Word {
                start_ms,
                end_ms: segment.start_ms + span * before / total,
                text: (*piece).to_string(),
                confidence: segment.confidence,
            }
        })
        .collect()
}

/// Rebuilds segments from the merged words: consecutive words of one source segment form
/// one, keeping whisper's segment times where its first (last) word survived and taking the
/// word's time where the seam cut it. A segment never starts before the previous one ends.
fn regroup(table: &[Segment], words: Vec<Placed>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    // The segment being rebuilt: its table index, its first word's position, its words.
    let mut open: Option<(usize, usize, Vec<Word>)> = None;
    for placed in words {
        match &mut open {
            Some((index, first, words))
                if *index == placed.segment && *first + words.len() == placed.position =>
            {
                words.push(placed.word);
            }
            _ => {
                if let Some((index, first, words)) = open.take() {
                    let segment = rebuild(&table[index], first, words, out.last_mut());
                    out.push(segment);
                }
                open = Some((placed.segment, placed.position, vec![placed.word]));
            }
        }
    }
    if let Some((index, first, words)) = open {
        let segment = rebuild(&table[index], first, words, out.last_mut());
        out.push(segment);
    }
    out
}

/// The part of `source` made of `words` (non-empty, consecutive, the first at position
/// `first`), placed after `previous`, whose end it may pull back to its last word.
fn rebuild(
    source: &Segment,
    first: usize,
    words: Vec<Word>,
    previous: Option<&mut Segment>,
) -> Segment {
    let (head, tail) = (&words[0], &words[words.len() - 1]);
    let mut start_ms = if first == 0 {
        source.start_ms
    } else {
        head.start_ms
    };
    let end_ms = if first + words.len() == source.words.len() {
        source.end_ms
    } else {
        tail.end_ms
    };
    // whisper's segment times are coarse: keeps segments from overlapping, ending the
    // previous one with its last word if that is enough.
    if let Some(previous) = previous {
        if previous.end_ms > start_ms {
            let last_word_end = previous.words.last().map_or(previous.end_ms, |w| w.end_ms);
            previous.end_ms = last_word_end.max(start_ms).max(previous.start_ms);
        }
        if previous.end_ms > start_ms && previous.end_ms < end_ms {
            start_ms = previous.end_ms;
        }
    }
    Segment {
        start_ms,
        end_ms: end_ms.max(start_ms),
        text: words
            .iter()
            .map(|w| w.text.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        confidence: source.confidence,
        words,
        speaker: None,
    }
}

/// Removes from the head of `next` the longest run of words that also ends `previous`,
/// looking only at words that reach into the overlap `[a, b)` (give or take [`SLACK_MS`]):
/// duplicates can only come from there, and looking further would eat words legitimately
/// said twice. Returns whether it found such a run.
fn remove_seam_duplicates(previous: &[Placed], next: &mut Vec<Placed>, a: i64, b: i64) -> bool {
    let Some(seam_start) = previous.iter().position(|p| p.word.end_ms > a - SLACK_MS) else {
        return false;
    };
    let prev_words: Vec<String> = previous[seam_start..].iter().map(key).collect();
    let in_overlap = next
        .iter()
        .take_while(|p| p.word.start_ms < b + SLACK_MS)
        .count();
    let next_words: Vec<String> = next[..in_overlap].iter().map(key).collect();

    let longest = (1..=prev_words.len().min(next_words.len()))
        .rev()
        .find(|&k| prev_words[prev_words.len() - k..] == next_words[..k]);
    let Some(to_drop) = longest else {
        return false;
    };
    next.drain(..to_drop);
    true
}

/// How far word times may be off, in ms: whisper's token times are coarse, and words of
/// records written before words were recorded are only spread over their segment.
const SLACK_MS: i64 = 500;

/// How far from the seam `realign_seam` looks, in words on each side.
const SEAM_WORDS: usize = 8;

/// How far from the overlap `realign_seam` looks, in ms on each side: a word misheard at a
/// cut throws whisper off for a second or two, not more.
const SEAM_MS: i64 = 3_000;

/// When the two chunks disagree at the seam (the earlier one heard a word cut in half:
/// "the train crossed along." / "crossed a long bridge"), finds the longest run of words both
/// recognised near the seam (the last and first [`SEAM_WORDS`] words within [`SEAM_MS`] of the
/// overlap `[a, b)`) and keeps the later chunk's version from there: the earlier chunk's words
/// from the run on are dropped, and so are the later chunk's words before it. A single-word
/// run must be a long word, so a stray "the" does not move the seam.
fn realign_seam(out: &mut Vec<Placed>, prev_first: usize, next: &mut Vec<Placed>, a: i64, b: i64) {
    let Some(offset) = out[prev_first..]
        .iter()
        .position(|p| p.word.end_ms > a - SEAM_MS)
    else {
        return;
    };
    let seam_start = prev_first + offset;
    let prev_words: Vec<String> = out[seam_start..].iter().map(key).collect();
    let near = next
        .iter()
        .take_while(|p| p.word.start_ms < b + SEAM_MS)
        .count();
    let next_words: Vec<String> = next[..near].iter().map(key).take(SEAM_WORDS).collect();
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
    out.truncate(seam_start + prev_cut);
    next.drain(..next_cut);
}

/// How words are compared across the seam: the two chunks may differ in case and
/// punctuation ("Hello," vs "hello").
fn key(placed: &Placed) -> String {
    word_key(&placed.word.text)
}

/// A word without case and punctuation: how words are compared wherever whisper may have
/// written the same word differently.
pub fn word_key(word: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start_ms: i64, end_ms: i64, text: &str) -> Segment {
        Segment {
            start_ms,
            end_ms,
            text: text.into(),
            confidence: 0.9,
            words: Vec::new(),
            speaker: None,
        }
    }

    fn chunk(index: i32, start_ms: i64, end_ms: i64, segments: Vec<Segment>) -> ChunkTranscript {
        ChunkTranscript {
            language: None,
            stored_at: None,
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
        // The trimmed segment starts with its first word left ("and", spread over the
        // segment in proportion to length: 29_100 + 1_900 * 11 / 20), after the previous one.
        assert_eq!(merged[2].start_ms, 30_145);
        assert_eq!(merged[2].end_ms, 31_000);
        assert_eq!(merged[2].words[0].text, "and");
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

    fn timed(start_ms: i64, end_ms: i64, words: &[(i64, i64, &str)]) -> Segment {
        let words: Vec<Word> = words
            .iter()
            .map(|&(start_ms, end_ms, text)| Word {
                start_ms,
                end_ms,
                text: text.into(),
                confidence: 0.8,
            })
            .collect();
        Segment {
            start_ms,
            end_ms,
            text: words
                .iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            confidence: 0.9,
            words,
            speaker: None,
        }
    }

    #[test]
    fn a_segment_cut_at_the_seam_keeps_its_words_and_their_times() {
        // Overlap [29_000, 30_000), midpoint 29_500; "bridge" spans it and both chunks heard it.
        let first = chunk(
            0,
            0,
            30_000,
            vec![timed(
                27_000,
                30_000,
                &[
                    (27_000, 27_600, "a"),
                    (27_600, 28_500, "long"),
                    (28_600, 29_700, "bridge"),
                ],
            )],
        );
        let second = chunk(
            1,
            29_000,
            59_000,
            vec![timed(
                29_000,
                31_500,
                &[
                    (29_000, 29_300, "long"),
                    (29_300, 29_750, "bridge,"),
                    (29_800, 30_400, "over"),
                    (30_500, 31_500, "water."),
                ],
            )],
        );
        let merged = assemble(&[first, second]);
        assert_eq!(texts(&merged), ["a long bridge", "over water."]);
        // The later segment starts with its first word left, not where whisper began it.
        assert_eq!((merged[1].start_ms, merged[1].end_ms), (29_800, 31_500));
        let times: Vec<(i64, i64)> = merged
            .iter()
            .flat_map(|s| s.words.iter().map(|w| (w.start_ms, w.end_ms)))
            .collect();
        assert_eq!(
            times,
            [
                (27_000, 27_600),
                (27_600, 28_500),
                (28_600, 29_700),
                (29_800, 30_400),
                (30_500, 31_500)
            ]
        );
    }

    #[test]
    fn words_that_do_not_spell_the_text_are_replaced_by_spread_ones() {
        // A record written before words were recorded, and one whose words disagree.
        let old = seg(1_000, 2_000, "ab abcd");
        let words = words_of(&old);
        let spans: Vec<(i64, i64, &str)> = words
            .iter()
            .map(|w| (w.start_ms, w.end_ms, w.text.as_str()))
            .collect();
        // Weights 3 and 5 (length + 1) over 1 s.
        assert_eq!(spans, [(1_000, 1_375, "ab"), (1_375, 2_000, "abcd")]);
        let mut odd = timed(0, 1_000, &[(0, 500, "other")]);
        odd.text = "some words".into();
        let texts: Vec<String> = words_of(&odd).into_iter().map(|w| w.text).collect();
        assert_eq!(texts, ["some", "words"]);
    }
}
