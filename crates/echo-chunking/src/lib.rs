//! How a file is cut into chunks, the unit of parallel transcription, as pure functions: at
//! fixed marks, or at the pauses of the speech a detector found; and the command each chunk
//! is transcribed by. Validation plans with them and issues the first commands; the job
//! aggregator re-derives the fixed plan of jobs whose creation event predates planned ranges
//! and re-issues late chunks; the chunk worker squeezes pauses with the same join.

use std::ops::Range;

use echo_catalog::events::ChunkProcess;
use echo_runtime::Outgoing;
use serde::{Deserialize, Serialize};

/// Longest silence kept between two speech regions, in ms: enough for whisper to hear a
/// sentence end (it ends a segment there and places its timestamps at the join), short
/// enough that a window holds little besides speech. 400 ms, picked by measuring WER on
/// flite speech with 1–5 s pauses (see docs/PIPELINE.md). The planner packs chunks with it,
/// and the chunk worker squeezes each chunk's pauses to it, so a chunk fits one window.
pub const JOIN_GAP_MS: u64 = 400;

/// The `attempt` of a chunk's first `chunk.process` command; the schema counts attempts from 1,
/// so "attempt N" reads as "the N-th try" in logs and in the job aggregator's limit.
pub const FIRST_ATTEMPT: i32 = 1;

/// A chunk command as an output, keyed by the chunk-commands topic's rule
/// (`echo_catalog::keys`), which the runtime also places it by: every attempt of a chunk on
/// one partition, a long job's chunks in runs of consecutive chunks per partition.
pub fn chunk_command(command: &ChunkProcess) -> Outgoing {
    Outgoing::new(
        echo_catalog::keys::chunk_key(&command.job_id, command.chunk_index),
        command,
    )
}

/// Which planner cuts a file into chunks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chunking {
    /// Chunks pack the detected speech up to a window's worth and are cut in its pauses; the
    /// silence between chunks is not transcribed at all ([`plan_at_pauses`]).
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

/// The limits [`plan_at_pauses`] packs within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PauseCut {
    /// Longest chunk cut where no pause was found, in ms: whisper's window.
    pub chunk_ms: i64,
    /// Overlap of two chunks cut where no pause was found, in ms, so a word cut there is whole
    /// in one of them.
    pub overlap_ms: i64,
    /// Most audio whisper hears of one chunk once its silence is squeezed out, in ms: the
    /// speech plus at most `gap_ms` per pause. A little under the window, so the chunk
    /// worker's own detection of the range, which may differ slightly, still fits one window.
    pub pack_ms: i64,
    /// Silence kept of each pause when it is squeezed, in ms ([`JOIN_GAP_MS`]).
    pub gap_ms: i64,
    /// Longest time from a chunk's first speech to its last, in ms: the chunk worker decodes
    /// all of it (and refuses ranges over `chunk_worker.max_chunk_ms`).
    pub max_span_ms: i64,
}

/// What the speech detector heard in a file, in ms, as the planner reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpeechMap {
    /// Where someone speaks: ordered, not overlapping (clipped to the file when planning).
    pub regions: Vec<Range<i64>>,
    /// Gaps between words inside the regions, ordered: where a region longer than a window
    /// is cut, so that no word is split and no overlap needs de-duplicating.
    pub breaks: Vec<Range<i64>>,
}

impl SpeechMap {
    /// Milliseconds of speech.
    pub fn speech_ms(&self) -> i64 {
        self.regions.iter().map(|r| r.end - r.start).sum()
    }
}

/// The chunks of a file of `duration_ms` whose speech `speech` maps.
///
/// Consecutive speech regions go into one chunk while their packed length (the regions plus
/// at most `gap_ms` of each pause between them: what whisper hears once the chunk worker
/// squeezes the silence out) stays within `pack_ms` and the chunk spans at most
/// `max_span_ms`; chunks are cut between regions, in pauses, and run from their first
/// region's start to their last region's end, so the silence between chunks is never sent.
/// A region longer than `pack_ms` (someone who talks on without pausing) is cut in the
/// middle of its longest break in the second half of each `pack_ms`, so every piece fits one
/// window and no word is split; only where no break lies there is it cut every `chunk_ms`,
/// the next piece starting `overlap_ms` earlier, as the fixed plan does. The rest of such a
/// region packs with the regions after it. No speech gives no chunks.
pub fn plan_at_pauses(duration_ms: i64, speech: &SpeechMap, cut: PauseCut) -> Vec<Range<i64>> {
    let regions = speech
        .regions
        .iter()
        .map(|r| r.start.max(0)..r.end.min(duration_ms))
        .filter(|r| r.end > r.start);
    let mut chunks = Vec::new();
    // The chunk being packed: its span and its packed length.
    let mut open: Option<(Range<i64>, i64)> = None;
    for mut region in regions {
        if region.end - region.start > cut.pack_ms {
            chunks.extend(open.take().map(|(span, _)| span));
            while region.end - region.start > cut.pack_ms {
                match best_break(&speech.breaks, region.start, cut.pack_ms) {
                    Some(at) => {
                        chunks.push(region.start..at);
                        region.start = at;
                    }
                    None => {
                        let end = (region.start + cut.chunk_ms).min(region.end);
                        chunks.push(region.start..end);
                        region.start = if end == region.end {
                            end
                        } else {
                            end - cut.overlap_ms
                        };
                    }
                }
            }
            if region.end > region.start {
                open = Some((region.clone(), region.end - region.start));
            }
            continue;
        }
        let length = region.end - region.start;
        if let Some((span, packed)) = &mut open {
            let grown = *packed + (region.start - span.end).min(cut.gap_ms) + length;
            if grown <= cut.pack_ms && region.end - span.start <= cut.max_span_ms {
                span.end = region.end;
                *packed = grown;
                continue;
            }
        }
        chunks.extend(open.replace((region, length)).map(|(span, _)| span));
    }
    chunks.extend(open.map(|(span, _)| span));
    chunks
}

/// Where to end a piece of continuous speech starting at `start`: the middle of the longest
/// break whose middle lies in the second half of the next `pack_ms` (the later of equals), so
/// pieces are neither tiny nor longer than a window. `None` when no break lies there.
fn best_break(breaks: &[Range<i64>], start: i64, pack_ms: i64) -> Option<i64> {
    breaks
        .iter()
        .map(|b| (b.end - b.start, b.start + (b.end - b.start) / 2))
        .filter(|&(_, middle)| start + pack_ms / 2 < middle && middle <= start + pack_ms)
        .max()
        .map(|(_, middle)| middle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUT: PauseCut = PauseCut {
        chunk_ms: 30_000,
        overlap_ms: 1_000,
        pack_ms: 28_000,
        gap_ms: 400,
        max_span_ms: 120_000,
    };

    /// Regions heard without a single break between words.
    fn heard(regions: &[Range<i64>]) -> SpeechMap {
        SpeechMap {
            regions: regions.to_vec(),
            breaks: Vec::new(),
        }
    }

    /// What whisper hears of `chunk`: its regions of `speech` and at most `gap_ms` of each
    /// pause between them.
    fn packed(chunk: &Range<i64>, speech: &[Range<i64>]) -> i64 {
        let inside: Vec<&Range<i64>> = speech
            .iter()
            .filter(|r| chunk.start <= r.start && r.end <= chunk.end)
            .collect();
        let gaps: i64 = inside
            .windows(2)
            .map(|p| (p[1].start - p[0].end).min(CUT.gap_ms))
            .sum();
        inside.iter().map(|r| r.end - r.start).sum::<i64>() + gaps
    }

    #[test]
    fn speech_that_packs_into_a_window_is_one_chunk_without_the_silence_around_it() {
        let plan = plan_at_pauses(60_000, &heard(&[5_000..9_000, 10_000..20_000]), CUT);
        assert_eq!(plan, vec![5_000..20_000]);
    }

    #[test]
    fn chunks_pack_speech_across_pauses_and_never_span_the_silence_between_them() {
        // Sentences of 6 s with pauses of 1-5 s: a third silence over nine minutes.
        let mut speech = Vec::new();
        let mut at = 0;
        for i in 0..60 {
            speech.push(at..at + 6_000);
            at += 6_000 + 1_000 + (i % 5) * 1_000;
        }
        let plan = plan_at_pauses(at, &heard(&speech), CUT);
        // Four sentences and three squeezed pauses (25.2 s) a chunk, though they span up to
        // 36 s: 15 windows, where cutting every 30 s of wall time takes 19.
        assert_eq!(plan.len(), 15, "{plan:?}");
        for chunk in &plan {
            assert!(packed(chunk, &speech) <= CUT.pack_ms, "{chunk:?}");
            // Cut in pauses: every chunk starts and ends with a region.
            assert!(speech.iter().any(|r| r.start == chunk.start), "{chunk:?}");
            assert!(speech.iter().any(|r| r.end == chunk.end), "{chunk:?}");
        }
        assert!(plan.iter().any(|c| c.end - c.start > CUT.chunk_ms));
        // The pause between two chunks is in neither.
        assert!(plan.windows(2).all(|p| p[0].end < p[1].start), "{plan:?}");
        // All the speech is in some chunk.
        assert!(speech
            .iter()
            .all(|r| plan.iter().any(|c| c.start <= r.start && r.end <= c.end)));
    }

    #[test]
    fn a_chunk_spans_at_most_max_span_ms() {
        // 1 s of speech every 40 s packs easily, but spans too long.
        let speech: Vec<Range<i64>> = (0..10).map(|i| i * 40_000..i * 40_000 + 1_000).collect();
        let plan = plan_at_pauses(400_000, &heard(&speech), CUT);
        assert_eq!(
            plan,
            vec![
                0..81_000,
                120_000..201_000,
                240_000..321_000,
                360_000..361_000
            ]
        );
    }

    #[test]
    fn a_region_longer_than_the_pack_falls_back_to_overlapping_cuts() {
        let speech = [0..5_000, 6_000..74_000, 75_000..78_000];
        let plan = plan_at_pauses(80_000, &heard(&speech), CUT);
        assert_eq!(
            plan,
            // The rest of the long region packs with what follows it.
            vec![0..5_000, 6_000..36_000, 35_000..65_000, 64_000..78_000]
        );
        // Longer than the pack, shorter than the window: one chunk.
        let plan = plan_at_pauses(80_000, &heard(std::slice::from_ref(&(1_000..30_000))), CUT);
        assert_eq!(plan, vec![1_000..30_000]);
    }

    #[test]
    fn continuous_speech_is_cut_between_words_at_the_longest_break() {
        // 70 s without a pause: a 120 ms gap between words every 3 s, and one of 300 ms.
        let mut breaks: Vec<Range<i64>> = (1..24).map(|k| k * 3_000..k * 3_000 + 120).collect();
        breaks.push(20_500..20_800);
        breaks.sort_by_key(|b| b.start);
        let speech = SpeechMap {
            regions: std::iter::once(0..70_000).collect(),
            breaks,
        };
        let plan = plan_at_pauses(70_000, &speech, CUT);
        // The longest break in the second half of the first 28 s; then the latest of equals.
        assert_eq!(plan, vec![0..20_650, 20_650..48_060, 48_060..70_000]);
        // Whole words on both sides, no overlap to de-duplicate, each piece one window.
        assert!(plan.windows(2).all(|p| p[0].end == p[1].start));
        assert!(plan.iter().all(|c| c.end - c.start <= CUT.pack_ms));
    }

    #[test]
    fn no_speech_gives_no_chunks_and_speech_is_clipped_to_the_file() {
        assert!(plan_at_pauses(60_000, &heard(&[]), CUT).is_empty());
        assert!(
            plan_at_pauses(60_000, &heard(std::slice::from_ref(&(70_000..80_000))), CUT).is_empty()
        );
        assert_eq!(
            plan_at_pauses(10_000, &heard(&[-50..3_000, 9_000..12_000]), CUT),
            vec![0..10_000]
        );
    }
}
