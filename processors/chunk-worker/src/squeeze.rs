//! Silence squeezed out of a chunk before whisper hears it, as pure functions.
//!
//! whisper pays per 30 s window however little speech it holds, so a chunk worker keeps only
//! the detected speech of its range, joined by at most [`JOIN_GAP_MS`] of the silence that
//! was there, and maps the times whisper reports back onto the chunk's own time line. The
//! planner packs chunks with the same join ([`echo_chunking::plan_at_pauses`]), so a
//! chunk's squeezed audio fits one window.

use std::ops::Range;

use echo_speech::transcriber::{Segment, Word};

pub use echo_chunking::JOIN_GAP_MS;

/// How close to the edge of a piece's speech whisper's times are taken to mean the edge, in
/// ms: its timestamps are coarse (it often ends a segment a few hundred ms before a sentence
/// ends and starts the next one there), and the detector's regions include 200 ms of margin.
const SNAP_MS: u64 = 400;

/// Samples per millisecond of the 16 kHz audio whisper takes.
const SAMPLES_PER_MS: u64 = echo_speech::audio::TARGET_SAMPLE_RATE as u64 / 1000;

/// One stretch of the chunk's audio kept for whisper.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Piece {
    /// Where it lies in the chunk, in ms.
    source: Range<u64>,
    /// Where its speech lies in the chunk, in ms: `source` less the silence kept around it,
    /// which whisper's times falling into are moved out of.
    speech: Range<u64>,
    /// Where it starts in the squeezed audio, in ms.
    packed_start: u64,
}

impl Piece {
    /// Where it ends in the squeezed audio, in ms.
    fn packed_end(&self) -> u64 {
        self.packed_start + (self.source.end - self.source.start)
    }

    /// From where a time is taken as the end of its speech: [`SNAP_MS`] before it, but not
    /// before its middle.
    fn near_end(&self) -> u64 {
        let middle = self.speech.start + (self.speech.end - self.speech.start) / 2;
        self.speech.end.saturating_sub(SNAP_MS).max(middle)
    }

    /// Up to where a time is taken as the start of its speech: [`SNAP_MS`] after it, but not
    /// after its middle.
    fn near_start(&self) -> u64 {
        let middle = self.speech.start + (self.speech.end - self.speech.start) / 2;
        (self.speech.start + SNAP_MS).min(middle)
    }

    /// The chunk time of `packed_ms`, which must not lie before the piece; times past its
    /// end map to its end.
    fn to_source(&self, packed_ms: u64) -> u64 {
        (self.source.start + (packed_ms - self.packed_start)).min(self.source.end)
    }
}

/// Which parts of a chunk whisper hears, and how its times map back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Squeeze {
    /// The kept stretches, in order, neither overlapping nor touching.
    pieces: Vec<Piece>,
}

impl Squeeze {
    /// Keeps the `speech` regions (ms into a chunk of `duration_ms`; ordered, not
    /// overlapping, as the detector reports them) each widened by half of `gap_ms` on both
    /// sides, so two regions are joined by at most `gap_ms` of their real silence (all of it
    /// when the pause is shorter).
    pub fn new(speech: &[Range<u64>], duration_ms: u64, gap_ms: u64) -> Squeeze {
        let half = gap_ms / 2;
        let mut pieces: Vec<Piece> = Vec::with_capacity(speech.len());
        for region in speech {
            let region = region.start.min(duration_ms)..region.end.min(duration_ms);
            let start = region.start.saturating_sub(half);
            let end = region.end.saturating_add(gap_ms - half).min(duration_ms);
            match pieces.last_mut() {
                Some(previous) if previous.source.end >= start => {
                    previous.source.end = previous.source.end.max(end);
                    previous.speech.end = previous.speech.end.max(region.end);
                }
                _ if region.end > region.start => {
                    let packed_start = pieces.last().map_or(0, Piece::packed_end);
                    pieces.push(Piece {
                        source: start..end,
                        speech: region,
                        packed_start,
                    });
                }
                _ => {}
            }
        }
        Squeeze { pieces }
    }

    /// Whether nothing is kept: the chunk holds no speech, and whisper need not run.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Milliseconds whisper hears.
    pub fn packed_ms(&self) -> u64 {
        self.pieces.last().map_or(0, Piece::packed_end)
    }

    /// The kept samples of the chunk's 16 kHz `samples`, joined.
    pub fn gather(&self, samples: &[f32]) -> Vec<f32> {
        let at = |ms: u64| {
            usize::try_from(ms * SAMPLES_PER_MS).map_or(samples.len(), |i| i.min(samples.len()))
        };
        let mut kept = Vec::with_capacity(at(self.packed_ms()));
        for piece in &self.pieces {
            kept.extend_from_slice(&samples[at(piece.source.start)..at(piece.source.end)]);
        }
        kept
    }

    /// The chunk time where something starting at `packed_ms` of the squeezed audio starts:
    /// whisper starts a segment where the previous one ended, so a start within [`SNAP_MS`]
    /// of the end of a piece's speech (or past it) moves to the next piece's speech, and one in
    /// the silence before a piece's speech to that speech.
    fn start_at(&self, packed_ms: u64) -> u64 {
        let index = self
            .pieces
            .partition_point(|p| p.packed_start <= packed_ms)
            .saturating_sub(1);
        let Some(piece) = self.pieces.get(index) else {
            return 0;
        };
        let start = piece.to_source(packed_ms);
        match self.pieces.get(index + 1) {
            Some(next) if start >= piece.near_end() => next.speech.start,
            _ => start.clamp(piece.speech.start, piece.speech.end),
        }
    }

    /// The chunk time where something ending at `packed_ms` of the squeezed audio ends: an
    /// end within [`SNAP_MS`] of the start of a piece's speech (or before it) moves back to
    /// the previous piece's speech end, and one in the silence after it to its end.
    fn end_at(&self, packed_ms: u64) -> u64 {
        let index = self
            .pieces
            .partition_point(|p| p.packed_start < packed_ms)
            .saturating_sub(1);
        let Some(piece) = self.pieces.get(index) else {
            return 0;
        };
        let end = piece.to_source(packed_ms.max(piece.packed_start));
        match index.checked_sub(1).and_then(|i| self.pieces.get(i)) {
            Some(previous) if end <= piece.near_start() => previous.speech.end,
            _ => end.clamp(piece.speech.start, piece.speech.end),
        }
    }

    /// A segment's words on the chunk's time line. Each word is placed in one piece, where
    /// it starts, with its end kept in that piece's speech (whisper stretches a sentence's
    /// last word to where the next one starts, over the join). A word starting before a
    /// piece's speech or within [`SNAP_MS`] of its start, right after a word of the same
    /// segment in the piece before, belongs to that earlier piece: whisper's token times lag
    /// at a join (measured: "as it passed." ended a sentence 3 s before the next, and whisper
    /// timed "passed." 80 ms into the next sentence's speech).
    fn place_words(&self, words: Vec<Word>) -> Vec<Word> {
        let mut previous_piece: Option<usize> = None;
        words
            .into_iter()
            .map(|word| {
                let mut index = self
                    .pieces
                    .partition_point(|p| p.packed_start <= word.start_ms)
                    .saturating_sub(1);
                let Some(piece) = self.pieces.get(index) else {
                    return Word {
                        start_ms: 0,
                        end_ms: 0,
                        ..word
                    };
                };
                let speech_starts = piece.packed_start + (piece.speech.start - piece.source.start);
                let lagging = word.start_ms < speech_starts + SNAP_MS;
                if lagging && index > 0 && previous_piece == Some(index - 1) {
                    index -= 1;
                }
                previous_piece = Some(index);
                let piece = &self.pieces[index];
                let at = |ms: u64| {
                    piece
                        .to_source(ms.max(piece.packed_start))
                        .clamp(piece.speech.start, piece.speech.end)
                };
                let start_ms = at(word.start_ms);
                Word {
                    start_ms,
                    end_ms: at(word.end_ms).max(start_ms),
                    ..word
                }
            })
            .collect()
    }

    /// whisper's segments of the squeezed audio with their times on the chunk's time line:
    /// start and end are mapped separately (a segment spanning a join covers the silence
    /// left out) and both maps only grow, so times stay in order.
    ///
    /// Their words are placed without snapping ([`Squeeze::place_words`]): a word lies where
    /// it was heard, so a sentence's last word keeps its place at the end of its piece.
    pub fn unsqueeze(&self, segments: Vec<Segment>) -> Vec<Segment> {
        segments
            .into_iter()
            .map(|segment| {
                let start_ms = self.start_at(segment.start_ms);
                Segment {
                    start_ms,
                    end_ms: self.end_at(segment.end_ms).max(start_ms),
                    words: self.place_words(segment.words),
                    ..segment
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(start_ms: u64, end_ms: u64) -> Segment {
        Segment {
            start_ms,
            end_ms,
            text: "words".into(),
            confidence: 0.9,
            words: Vec::new(),
        }
    }

    fn times(segments: &[Segment]) -> Vec<(u64, u64)> {
        segments.iter().map(|s| (s.start_ms, s.end_ms)).collect()
    }

    #[test]
    fn long_pauses_shrink_to_the_join_gap_and_short_ones_stay_whole() {
        // Pauses of 5 s (kept: 200 ms on each side) and 300 ms (kept whole).
        let squeeze = Squeeze::new(&[1_000..3_000, 8_000..9_000, 9_300..10_000], 12_000, 400);
        assert_eq!(
            squeeze.pieces,
            vec![
                Piece {
                    source: 800..3_200,
                    speech: 1_000..3_000,
                    packed_start: 0
                },
                Piece {
                    source: 7_800..10_200,
                    speech: 8_000..10_000,
                    packed_start: 2_400
                },
            ]
        );
        assert_eq!(squeeze.packed_ms(), 4_800);
    }

    #[test]
    fn the_kept_samples_are_the_pieces_joined() {
        let samples: Vec<f32> = (0..16 * 1_000).map(|i| i as f32).collect();
        let squeeze = Squeeze::new(&[100..200, 700..800], 1_000, 0);
        let kept = squeeze.gather(&samples);
        assert_eq!(kept.len(), 16 * 200);
        assert_eq!((kept[0], kept[16 * 100]), (16.0 * 100.0, 16.0 * 700.0));
        // Regions reaching past the samples keep what there is.
        let short = Squeeze::new(std::slice::from_ref(&(900..1_000)), 2_000, 0)
            .gather(&samples[..16 * 950]);
        assert_eq!(short.len(), 16 * 50);
    }

    #[test]
    fn segment_times_map_back_to_the_speech_of_the_chunk() {
        // Pieces 800..3_200 (packed 0..2_400, speech 1_000..3_000) and 7_800..10_200 (packed
        // 2_400..4_800, speech 8_000..10_000).
        let squeeze = Squeeze::new(&[1_000..3_000, 8_000..10_000], 12_000, 400);
        let mapped = squeeze.unsqueeze(vec![
            // Starts in the silence before the speech: at the speech.
            segment(0, 1_000),
            // Ends 100 ms before the first speech does.
            segment(1_500, 2_100),
            // Starts where the previous one ended, near the end of the first speech: at the
            // second speech.
            segment(2_100, 4_000),
            // whisper may place an end past the audio: the last speech's end.
            segment(4_400, 5_300),
        ]);
        assert_eq!(
            times(&mapped),
            vec![
                (1_000, 1_800),
                (2_300, 2_900),
                (8_000, 9_400),
                (9_800, 10_000)
            ]
        );
        assert!(mapped.windows(2).all(|p| p[0].end_ms <= p[1].start_ms));
        assert_eq!(mapped[0].text, "words");
        // An end just past the join is back at the first speech's end; a segment spanning
        // the join maps its start and end separately.
        let mapped = squeeze.unsqueeze(vec![segment(1_500, 2_500), segment(1_500, 3_200)]);
        assert_eq!(times(&mapped), vec![(2_300, 3_000), (2_300, 8_600)]);
    }

    #[test]
    fn no_speech_keeps_nothing() {
        let squeeze = Squeeze::new(&[], 30_000, 400);
        assert!(squeeze.is_empty());
        assert_eq!(squeeze.packed_ms(), 0);
        assert!(squeeze.gather(&[0.0; 160]).is_empty());
    }

    #[test]
    fn words_are_placed_in_the_piece_they_were_heard_in() {
        // Same pieces as above: packed 0..2_400 is chunk 800..3_200 (speech 1_000..3_000,
        // packed 200..2_200), packed 2_400..4_800 is chunk 7_800..10_200 (speech
        // 8_000..10_000, packed 2_600..4_600).
        let squeeze = Squeeze::new(&[1_000..3_000, 8_000..10_000], 12_000, 400);
        let word = |start_ms, end_ms, text: &str| Word {
            start_ms,
            end_ms,
            text: text.into(),
            confidence: 0.8,
        };
        let mapped = squeeze.unsqueeze(vec![
            Segment {
                words: vec![
                    // 300 ms before its piece's speech ends: a segment start there would
                    // snap to the next piece, a word stays.
                    word(1_800, 2_150, "the"),
                    // Stretched over the join to the next speech: ends with its piece's.
                    word(2_150, 2_700, "wide"),
                    // Timed after the join, but the segment's words before it are in the
                    // first piece: so is it.
                    word(2_500, 2_600, "river."),
                ],
                ..segment(1_800, 2_600)
            },
            Segment {
                // A new segment's first word in the silence before the second piece's
                // speech: at that speech.
                words: vec![word(2_500, 2_900, "Then"), word(2_900, 3_200, "on.")],
                ..segment(2_500, 3_200)
            },
        ]);
        let times = |s: &Segment| -> Vec<(u64, u64)> {
            s.words.iter().map(|w| (w.start_ms, w.end_ms)).collect()
        };
        assert_eq!(
            times(&mapped[0]),
            [(2_600, 2_950), (2_950, 3_000), (3_000, 3_000)]
        );
        assert_eq!(times(&mapped[1]), [(8_000, 8_300), (8_300, 8_600)]);
        assert_eq!(mapped[0].words[2].text, "river.");
    }
}
