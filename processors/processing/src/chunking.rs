//! How a file is cut into chunks, the unit of parallel transcription, as pure functions: at
//! fixed marks, or at the pauses of the speech a detector found. Validation plans with them; the
//! job aggregator re-derives the fixed plan of jobs whose creation event predates planned
//! ranges.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// Which planner cuts a file into chunks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chunking {
    /// Chunks start and end in pauses of the detected speech, and long silences are not
    /// transcribed at all ([`plan_at_pauses`]).
    #[default]
    Speech,
    /// Chunks of `chunk_ms` every `chunk_ms - overlap_ms`, whatever the audio holds
    /// ([`plan_fixed`]).
    Fixed,
}

/// The time ranges (ms, end exclusive) of the chunks a file of `duration_ms` is cut into.
///
/// Chunk `i` covers `[i * (chunk_ms - overlap_ms), min(that + chunk_ms, duration_ms))`; chunks
/// are planned until one reaches the end, so the last may be short, a file shorter than a chunk
/// has exactly one, and no chunk lies wholly inside its predecessor's overlap. An empty file
/// (or a nonsensical `chunk_ms`) has none. `overlap_ms` is clamped so the step is at least
/// 1 ms: a bad setting must not make this loop forever (`ValidationConfig::validate` refuses it
/// anyway).
pub fn plan_fixed(duration_ms: i64, chunk_ms: i64, overlap_ms: i64) -> Vec<Range<i64>> {
    if duration_ms <= 0 || chunk_ms <= 0 {
        return Vec::new();
    }
    let step = (chunk_ms - overlap_ms).clamp(1, chunk_ms);
    let mut chunks = Vec::new();
    let mut start: i64 = 0;
    loop {
        let end = start.saturating_add(chunk_ms).min(duration_ms);
        chunks.push(start..end);
        if end >= duration_ms {
            return chunks;
        }
        start += step;
    }
}

/// The limits [`plan_at_pauses`] cuts within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PauseCut {
    /// Longest chunk, in ms: whisper's window.
    pub chunk_ms: i64,
    /// Overlap of two chunks cut where no pause was found, in ms, so a word cut there is whole
    /// in one of them.
    pub overlap_ms: i64,
    /// Pauses at least this long, in ms, are not transcribed: no chunk spans one.
    pub skip_silence_ms: i64,
}

/// The chunks of a file of `duration_ms` whose speech lies in `speech` (ms ranges, as a
/// detector reports them: ordered, not overlapping; they are clipped to the file).
///
/// Speech separated by a pause shorter than `skip_silence_ms` forms one stretch; the silence
/// before, between and after stretches is left out. A stretch that fits `chunk_ms` is one
/// chunk; a longer one is cut in the middle of its longest pause in the window's last sixth
/// (else of its latest pause in the second half), so chunks fill the window and none is
/// shorter than half a window unless its speech ends; consecutive chunks meet there without
/// overlapping. Where the window's second half holds no pause at all, the
/// chunk is cut at `chunk_ms` and the next starts `overlap_ms` earlier, as the fixed plan does.
/// No speech gives no chunks.
pub fn plan_at_pauses(duration_ms: i64, speech: &[Range<i64>], cut: PauseCut) -> Vec<Range<i64>> {
    let regions: Vec<Range<i64>> = speech
        .iter()
        .map(|r| r.start.max(0)..r.end.min(duration_ms))
        .filter(|r| r.end > r.start)
        .collect();
    let mut chunks = Vec::new();
    let mut stretch_first = 0;
    for i in 1..=regions.len() {
        let ends_stretch = regions
            .get(i)
            .is_none_or(|next| next.start - regions[i - 1].end >= cut.skip_silence_ms);
        if ends_stretch {
            cut_stretch(&regions[stretch_first..i], cut, &mut chunks);
            stretch_first = i;
        }
    }
    chunks
}

/// The part of the window, from its end, in which the longest pause is preferred for a cut: a
/// sixth (5 s of 30 s), so chunks fill most of whisper's window.
const NEAR_END_FRACTION: i64 = 6;

/// Cuts the speech regions of one stretch (no pause in it reaches `skip_silence_ms`) into
/// chunks of at most `chunk_ms`.
fn cut_stretch(regions: &[Range<i64>], cut: PauseCut, chunks: &mut Vec<Range<i64>>) {
    let (Some(first), Some(last)) = (regions.first(), regions.last()) else {
        return;
    };
    // The pauses inside the stretch, as (start, end).
    let pauses: Vec<(i64, i64)> = regions
        .windows(2)
        .map(|pair| (pair[0].end, pair[1].start))
        .collect();
    let mut start = first.start;
    while last.end - start > cut.chunk_ms {
        let limit = start + cut.chunk_ms;
        // (length, middle) of the pauses a cut in whose middle leaves the chunk between
        // `from` and the window's end.
        let cuts_after = |from: i64| {
            pauses
                .iter()
                .map(|&(a, b)| (b - a, a + (b - a) / 2))
                .filter(move |&(_, middle)| middle > from && middle <= limit)
        };
        // The longest pause near the window's end (ties: the latest), else the latest pause
        // in its second half.
        let best = cuts_after(limit - cut.chunk_ms / NEAR_END_FRACTION)
            .max()
            .or_else(|| cuts_after(start + cut.chunk_ms / 2).max_by_key(|&(_, middle)| middle));
        match best {
            Some((_, middle)) => {
                chunks.push(start..middle);
                start = middle;
            }
            None => {
                chunks.push(start..limit);
                start = limit - cut.overlap_ms.clamp(0, cut.chunk_ms - 1);
            }
        }
    }
    chunks.push(start..last.end);
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUT: PauseCut = PauseCut {
        chunk_ms: 30_000,
        overlap_ms: 1_000,
        skip_silence_ms: 2_000,
    };

    #[test]
    fn speech_that_fits_a_window_is_one_chunk_without_the_silence_around_it() {
        let plan = plan_at_pauses(60_000, &[5_000..9_000, 10_000..20_000], CUT);
        assert_eq!(plan, vec![5_000..20_000]);
    }

    #[test]
    fn long_silences_are_skipped_between_chunks() {
        let plan = plan_at_pauses(60_000, &[1_000..4_000, 7_000..9_000, 9_500..12_000], CUT);
        assert_eq!(plan, vec![1_000..4_000, 7_000..12_000]);
    }

    #[test]
    fn a_long_stretch_is_cut_in_its_longest_pause_near_the_window_end() {
        // Pauses at 18-19.5 s (long, but far from the end), 25.5-26 s, 27-28 s (the longest of
        // the last 5 s) and 29-29.2 s.
        let speech = [
            0..18_000,
            19_500..25_500,
            26_000..27_000,
            28_000..29_000,
            29_200..50_000,
        ];
        let plan = plan_at_pauses(50_000, &speech, CUT);
        assert_eq!(plan, vec![0..27_500, 27_500..50_000]);
        // Without a pause near the end, the latest one of the second half.
        let plan = plan_at_pauses(60_000, &[0..18_000, 19_500..50_000], CUT);
        assert_eq!(plan[0], 0..18_750);
    }

    #[test]
    fn every_chunk_fits_the_window_and_starts_where_the_previous_ended() {
        // Speech of 2.5 s with 0.5 s pauses for ten minutes.
        let speech: Vec<Range<i64>> = (0..200).map(|i| i * 3_000..i * 3_000 + 2_500).collect();
        let plan = plan_at_pauses(600_000, &speech, CUT);
        assert!(
            plan.iter().all(|c| c.end - c.start <= CUT.chunk_ms),
            "{plan:?}"
        );
        assert!(plan.windows(2).all(|p| p[0].end == p[1].start), "{plan:?}");
        assert_eq!((plan[0].start, plan.last().unwrap().end), (0, 599_500));
        // Equal pauses: the latest wins, so the windows are full (29.75 s, then 30 s each).
        assert_eq!(plan.len(), 20);
        assert_eq!(plan[..3], [0..29_750, 29_750..59_750, 59_750..89_750]);
    }

    #[test]
    fn speech_without_pauses_falls_back_to_overlapping_cuts() {
        let plan = plan_at_pauses(80_000, std::slice::from_ref(&(2_000..70_000)), CUT);
        assert_eq!(plan, vec![2_000..32_000, 31_000..61_000, 60_000..70_000]);
    }

    #[test]
    fn no_speech_gives_no_chunks_and_speech_is_clipped_to_the_file() {
        assert!(plan_at_pauses(60_000, &[], CUT).is_empty());
        assert!(plan_at_pauses(60_000, std::slice::from_ref(&(70_000..80_000)), CUT).is_empty());
        assert_eq!(
            plan_at_pauses(10_000, &[-50..3_000, 9_000..12_000], CUT),
            vec![0..3_000, 9_000..10_000]
        );
    }
}
