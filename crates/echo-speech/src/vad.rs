//! Voice-activity detection: where someone speaks in 16 kHz mono audio.
//!
//! Frames of 16 ms are scored by earshot's network (compiled into the crate: nothing is
//! downloaded at build or run time); runs of voiced frames become speech regions, with a
//! hangover so that the short dips between words do not cut them. Those dips are kept too, as
//! the breaks where a region too long for one whisper window can be cut without cutting a
//! word. Samples are fed in blocks of any size and only regions and breaks are kept, so a
//! three-hour file costs a few kilobytes.

use std::ops::Range;

use earshot::Detector;

/// Samples per scored frame: earshot's frame, 16 ms at 16 kHz.
pub const FRAME_SAMPLES: usize = 256;

/// Milliseconds per scored frame.
const FRAME_MS: u64 = 16;

/// How voiced frames are turned into speech regions.
#[derive(Debug, Clone, PartialEq)]
pub struct VadSettings {
    /// Score (0 to 1) from which a frame counts as voiced; earshot's suggested 0.5.
    pub threshold: f32,
    /// Unvoiced stretches shorter than this do not end a region (the hangover): the gaps
    /// between words and syllables are shorter, so words stay whole. Default 400 ms.
    pub min_pause_ms: u64,
    /// Regions with fewer voiced milliseconds than this are dropped: a click or a knock is not
    /// speech worth a whisper window. Default 100 ms.
    pub min_speech_ms: u64,
    /// Margin added before and after each region: the network scores a window reaching 32 ms
    /// into the past, and soft onsets and trailing consonants score low. Default 200 ms.
    pub pad_ms: u64,
    /// Score below which a frame inside a region counts towards a break: the dip between two
    /// words. Higher than `threshold`, because the network still scores most such dips as
    /// voice (measured on read speech: at 0.5 a five-minute reading had breaks 30 s apart,
    /// at 0.9 never more than 3 s). Default 0.9.
    pub break_threshold: f32,
    /// Dips inside a region at least this long are reported as breaks. Continuous speech (a
    /// reader who never pauses for `min_pause_ms`) is cut there instead of mid-word.
    /// Default 48 ms (three frames).
    pub min_break_ms: u64,
}

impl Default for VadSettings {
    fn default() -> Self {
        VadSettings {
            threshold: 0.5,
            min_pause_ms: 400,
            min_speech_ms: 100,
            pad_ms: 200,
            break_threshold: 0.9,
            min_break_ms: 48,
        }
    }
}

/// A streaming speech detector over 16 kHz mono samples.
pub struct SpeechDetector {
    /// earshot's network and its state; boxed, as it holds about 8 KB of buffers.
    scorer: Box<Detector>,
    /// How regions are formed.
    settings: VadSettings,
    /// Samples of a frame not yet complete, carried to the next block.
    partial: Vec<i16>,
    /// Frames scored so far; the index of the next frame.
    frames: u64,
    /// The region being built, if the last voiced frame is recent enough to extend it.
    open: Option<VoicedRun>,
    /// Closed regions, in frames, unpadded.
    regions: Vec<Range<u64>>,
    /// Dips of at least `min_break_ms` inside regions (the open one included), in frames, in
    /// order.
    breaks: Vec<Range<u64>>,
    /// First frame of the dip under way inside the open region, if any.
    dip_from: Option<u64>,
}

/// What a detector heard in a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Speech {
    /// Where someone speaks, in ms from the start, padded by [`VadSettings::pad_ms`] (within
    /// the audio), in order, not overlapping.
    pub regions: Vec<Range<u64>>,
    /// The gaps between words inside `regions` (scored below
    /// [`VadSettings::break_threshold`] for at least [`VadSettings::min_break_ms`], unpadded,
    /// in ms, in order): where a region may be cut.
    pub breaks: Vec<Range<u64>>,
}

/// A region being built: its first and last voiced frame and how many of its frames were voiced.
#[derive(Debug, Clone, Copy)]
struct VoicedRun {
    /// First voiced frame.
    first: u64,
    /// Last voiced frame so far.
    last: u64,
    /// Voiced frames in it, compared with `min_speech_ms`.
    voiced: u64,
}

impl SpeechDetector {
    /// A detector with these settings, at the start of a stream.
    pub fn new(settings: VadSettings) -> Self {
        SpeechDetector {
            scorer: Detector::default_boxed(),
            settings,
            partial: Vec::with_capacity(FRAME_SAMPLES),
            frames: 0,
            open: None,
            regions: Vec::new(),
            breaks: Vec::new(),
            dip_from: None,
        }
    }

    /// Feeds the next 16 kHz mono samples in `[-1, 1]` (louder ones are clipped).
    pub fn push(&mut self, samples: &[f32]) {
        for &sample in samples {
            // Rounded to 16-bit, the scale earshot's features are computed at.
            self.partial
                .push((sample.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16);
            if self.partial.len() == FRAME_SAMPLES {
                let score = self.scorer.predict_i16(&self.partial);
                self.partial.clear();
                self.frame(score);
            }
        }
    }

    /// Folds in the score of the next frame.
    fn frame(&mut self, score: f32) {
        let index = self.frames;
        self.frames += 1;
        if self.open.is_some() {
            if score < self.settings.break_threshold {
                self.dip_from.get_or_insert(index);
            } else if let Some(from) = self.dip_from.take() {
                if (index - from) * FRAME_MS >= self.settings.min_break_ms {
                    self.breaks.push(from..index);
                }
            }
        }
        if score >= self.settings.threshold {
            let run = self.open.get_or_insert(VoicedRun {
                first: index,
                last: index,
                voiced: 0,
            });
            run.last = index;
            run.voiced += 1;
        } else if self
            .open
            .is_some_and(|run| (index - run.last) * FRAME_MS >= self.settings.min_pause_ms)
        {
            self.close();
        }
    }

    /// Ends the open region, keeping it if it holds enough speech (and its breaks with it).
    fn close(&mut self) {
        // A dip still under way is the pause that ends the region, not a break in it.
        self.dip_from = None;
        if let Some(run) = self.open.take() {
            if run.voiced * FRAME_MS >= self.settings.min_speech_ms {
                self.regions.push(run.first..run.last + 1);
            } else {
                self.breaks.retain(|b| b.end <= run.first);
            }
        }
    }

    /// What was heard in everything pushed. Regions that the padding makes touch are merged,
    /// and the pause between them becomes one of the merged region's breaks.
    pub fn finish(mut self) -> Speech {
        self.close();
        let samples = self.frames * FRAME_SAMPLES as u64 + self.partial.len() as u64;
        let duration_ms = samples * 1000 / u64::from(crate::audio::TARGET_SAMPLE_RATE);
        let pad = self.settings.pad_ms;
        let mut breaks: Vec<Range<u64>> = self
            .breaks
            .iter()
            .map(|b| b.start * FRAME_MS..b.end * FRAME_MS)
            .collect();
        let mut padded: Vec<Range<u64>> = Vec::with_capacity(self.regions.len());
        let mut last_voiced = 0;
        for frames in self.regions {
            let start = (frames.start * FRAME_MS).saturating_sub(pad);
            let end = (frames.end * FRAME_MS + pad).min(duration_ms);
            match padded.last_mut() {
                Some(previous) if previous.end >= start => {
                    previous.end = end;
                    breaks.push(last_voiced..frames.start * FRAME_MS);
                }
                _ if end > start => padded.push(start..end),
                _ => {}
            }
            last_voiced = frames.end * FRAME_MS;
        }
        breaks.sort_by_key(|b| b.start);
        Speech {
            regions: padded,
            breaks,
        }
    }
}

/// Total milliseconds of `regions` (which must not overlap, as [`SpeechDetector::finish`]
/// returns them).
pub fn total_ms(regions: &[Range<u64>]) -> u64 {
    regions.iter().map(|r| r.end - r.start).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A detector fed frame verdicts directly, bypassing the network.
    fn heard(verdicts: &str, settings: VadSettings) -> Speech {
        let mut detector = SpeechDetector::new(settings);
        for c in verdicts.chars() {
            detector.frame(match c {
                '#' => 1.0,
                '~' => 0.7,
                _ => 0.0,
            });
        }
        detector.finish()
    }

    fn regions_of(verdicts: &str, settings: VadSettings) -> Vec<Range<u64>> {
        heard(verdicts, settings).regions
    }

    fn unpadded() -> VadSettings {
        VadSettings {
            pad_ms: 0,
            min_pause_ms: 48,
            min_speech_ms: 32,
            min_break_ms: 32,
            ..VadSettings::default()
        }
    }

    #[test]
    fn dips_shorter_than_the_minimum_pause_do_not_split_a_region() {
        // Frames of 16 ms: a 2-frame dip (32 ms) is bridged, a 3-frame one (48 ms) splits.
        assert_eq!(regions_of("##..##...##", unpadded()), vec![0..96, 144..176]);
    }

    #[test]
    fn blips_shorter_than_the_minimum_speech_are_dropped() {
        assert_eq!(regions_of("#.....##....", unpadded()), vec![96..128]);
        assert!(regions_of("......", unpadded()).is_empty());
    }

    #[test]
    fn padding_widens_regions_within_the_audio_and_merges_neighbours() {
        let settings = VadSettings {
            pad_ms: 40,
            ..unpadded()
        };
        // 0..32 padded to 0..72; 112..144 to 72..184, touching it: merged. The last region
        // (304..336) ends with the audio, which the padding does not pass.
        let speech = heard("##.....##..........##", settings);
        assert_eq!(speech.regions, vec![0..184, 264..336]);
        assert_eq!(total_ms(&speech.regions), 256);
        // The pause the padding bridged is where the merged region may be cut.
        assert_eq!(speech.breaks, vec![32..112]);
    }

    #[test]
    fn gaps_between_words_are_breaks_inside_their_region() {
        // A 2-frame dip is a break (min_break_ms 32), a 1-frame one is not, whether the
        // frames are unvoiced or only weakly voiced (`~`); the 3-frame pause ends the region
        // and is no break.
        let speech = heard("##.##..##~~#~##...##", unpadded());
        assert_eq!(speech.regions, vec![0..240, 288..320]);
        assert_eq!(speech.breaks, vec![80..112, 144..176]);
    }

    #[test]
    fn a_dropped_blip_takes_its_breaks_with_it() {
        let settings = VadSettings {
            min_speech_ms: 48,
            ..unpadded()
        };
        let speech = heard("#..#......###", settings);
        assert_eq!(speech.regions, vec![160..208]);
        assert!(speech.breaks.is_empty(), "{:?}", speech.breaks);
    }
}
