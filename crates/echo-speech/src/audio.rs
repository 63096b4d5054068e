//! Audio file probing and decoding to what Whisper consumes: 16 kHz mono `f32`.
//!
//! Containers and codecs are handled by symphonia (WAV/PCM, FLAC, Ogg Vorbis,
//! MP3 and the rest of its default set); channels are averaged to mono and the
//! sample rate is converted with rubato's FFT resampler, streaming, so memory
//! holds only the 16 kHz output and never the source-rate signal.
//!
//! Every file is hostile until proven otherwise: a stream whose header states a
//! sample rate, channel count or packet size outside [`Limit`] is refused when it
//! is opened, before any buffer or resampler is sized from those numbers, and
//! [`scan`] proves a whole file decodes while holding one packet at a time.

use std::fmt;
use std::fs::File;
use std::ops::{ControlFlow, Range};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::{Error as SymphoniaError, SeekErrorKind};
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, SeekMode, SeekTo, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::units::{Time, TimeBase};
use tracing::warn;

use crate::mp4_tables::{self, TableSize, MAX_BOXES, MAX_TABLE_STEPS};

/// Sample rate, in Hz, of everything this module returns (Whisper's rate).
pub const TARGET_SAMPLE_RATE: u32 = 16_000;

/// Lowest sample rate accepted, in Hz: telephone audio, the least any speech recording uses.
pub const MIN_SAMPLE_RATE: u32 = 8_000;

/// Highest sample rate accepted, in Hz: the most any recording format in use offers. The
/// resampler's tables grow with the ratio of the rate to 16 kHz, so a header claiming
/// 2,147,483,647 Hz would otherwise cost tens of GB before a single sample is read.
pub const MAX_SAMPLE_RATE: u32 = 192_000;

/// Most channels accepted: 7.1 surround, the widest layout of any consumer format. Speech is
/// recorded in one or two, and every channel multiplies the decoder's per-packet buffers.
pub const MAX_CHANNELS: usize = 8;

/// Most frames one packet may announce: the decoder sizes its buffer (times the channels) from
/// this header field. 2^18 is over a second at 192 kHz and four times FLAC's largest block
/// (65,535), the largest of the codecs decoded here.
pub const MAX_FRAMES_PER_PACKET: u64 = 1 << 18;

/// symphonia's name for the MP4 family (MP4, M4A, MOV), whose tables are measured before a read.
const ISOMP4: &str = "isomp4";

/// A stream parameter outside what this module decodes, as stated by the file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A sample rate outside [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`] Hz.
    SampleRate(u32),
    /// More than [`MAX_CHANNELS`] channels.
    Channels(usize),
    /// Packets of more than [`MAX_FRAMES_PER_PACKET`] frames.
    FramesPerPacket(u64),
    /// An MP4 whose sample tables cost more than [`MAX_TABLE_STEPS`] to read.
    TimeTables(TableSize),
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::SampleRate(hz) => write!(
                f,
                "sample rate {hz} Hz is outside the accepted {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz"
            ),
            Limit::Channels(n) => write!(
                f,
                "the audio has {n} channels; at most {MAX_CHANNELS} are accepted"
            ),
            Limit::FramesPerPacket(n) => write!(
                f,
                "packets of {n} frames are stated; at most {MAX_FRAMES_PER_PACKET} are accepted"
            ),
            Limit::TimeTables(size) if size.boxes > MAX_BOXES => {
                write!(f, "it is made of more than {MAX_BOXES} boxes")
            }
            Limit::TimeTables(size) => write!(
                f,
                "its time tables hold {} entries for {} packets: reading them would take {} \
                 steps, at most {MAX_TABLE_STEPS} are accepted",
                size.time_entries,
                size.packets,
                size.steps()
            ),
        }
    }
}

impl Limit {
    /// The first limit a stream of these parameters breaks, if any.
    pub fn check(
        sample_rate: u32,
        channels: usize,
        frames_per_packet: Option<u64>,
    ) -> Option<Limit> {
        if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
            return Some(Limit::SampleRate(sample_rate));
        }
        if channels > MAX_CHANNELS {
            return Some(Limit::Channels(channels));
        }
        frames_per_packet
            .filter(|&n| n > MAX_FRAMES_PER_PACKET)
            .map(Limit::FramesPerPacket)
    }
}

/// Why an audio file could not be probed or decoded.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The bytes are not a container format symphonia recognises (e.g. not
    /// audio at all).
    #[error("{path}: unsupported or unrecognised audio format ({reason})")]
    UnsupportedFormat {
        /// The file concerned.
        path: PathBuf,
        /// symphonia's reason.
        reason: String,
    },
    /// The container holds no audio track.
    #[error("{path}: no audio track")]
    NoAudioTrack {
        /// The file concerned.
        path: PathBuf,
    },
    /// The audio track uses a codec there is no decoder for.
    #[error("{path}: unsupported audio codec {codec}")]
    UnsupportedCodec {
        /// The file concerned.
        path: PathBuf,
        /// The codec as symphonia names it.
        codec: String,
    },
    /// The file is recognised but its data is malformed or truncated.
    #[error("{path}: corrupt audio data ({reason})")]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The header states parameters outside the [`Limit`]s: the audio's fault, refused
    /// before anything is sized from them.
    #[error("{path}: unsupported stream ({limit})")]
    OutOfLimits {
        /// The file concerned.
        path: PathBuf,
        /// The limit it breaks.
        limit: Limit,
    },
    /// Decoding was still going when its deadline passed: the file decodes too slowly to
    /// finish in the time the caller has (a container built to be slow to read, or a machine
    /// too busy), and the work stopped there rather than run on unseen.
    #[error("{path}: decoding stopped at its deadline after {decoded_ms} ms of audio")]
    PastDeadline {
        /// The file concerned.
        path: PathBuf,
        /// Audio decoded by then, in ms.
        decoded_ms: u64,
    },
    /// The requested time range is empty or reversed.
    #[error("invalid time range {start_ms}..{end_ms} ms")]
    InvalidRange {
        /// Requested start, in ms.
        start_ms: u64,
        /// Requested end, in ms.
        end_ms: u64,
    },
    /// The channel asked for is not in the audio.
    #[error("channel {channel} asked for, the audio has {channels}")]
    NoSuchChannel {
        /// The channel asked for, from 0.
        channel: usize,
        /// How many the audio has.
        channels: usize,
    },
    /// Sample-rate conversion failed (not expected for valid rates).
    #[error("resampling {from_hz} Hz to 16 kHz failed: {reason}")]
    Resample {
        /// Source sample rate.
        from_hz: u32,
        /// rubato's reason.
        reason: String,
    },
}

impl AudioError {
    /// What went wrong, without the local file's path: the message clients are told (in
    /// `validation.failed`, `resource.rejected`) and operators read in DLQ headers, where a
    /// worker's cache or temporary path means nothing and tells outsiders about the machine.
    pub fn without_path(&self) -> String {
        match self {
            AudioError::Io { source, .. } => format!("cannot read the audio file: {source}"),
            AudioError::UnsupportedFormat { reason, .. } => {
                format!("not a recognised audio format ({reason})")
            }
            AudioError::NoAudioTrack { .. } => "the file holds no audio track".into(),
            AudioError::UnsupportedCodec { codec, .. } => {
                format!("unsupported audio codec {codec}")
            }
            AudioError::Corrupt { reason, .. } => format!("corrupt audio data ({reason})"),
            AudioError::OutOfLimits { limit, .. } => format!("unsupported audio stream: {limit}"),
            AudioError::PastDeadline { decoded_ms, .. } => {
                format!("decoding stopped at its deadline after {decoded_ms} ms of audio")
            }
            other @ (AudioError::InvalidRange { .. }
            | AudioError::NoSuchChannel { .. }
            | AudioError::Resample { .. }) => other.to_string(),
        }
    }
}

/// Facts about an audio file, as found by [`probe`]; used to validate uploads
/// and to plan chunked decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioInfo {
    /// Container format, symphonia's short name (e.g. `wave`, `flac`, `ogg`, `mp3`).
    pub container: String,
    /// Codec of the audio track, symphonia's short name (e.g. `pcm_s16le`, `flac`, `vorbis`, `mp3`).
    pub codec: String,
    /// Number of channels of the audio track.
    pub channels: usize,
    /// Native sample rate of the audio track, in Hz.
    pub sample_rate: u32,
    /// Number of frames (samples per channel) when the container states it.
    pub frames: Option<u64>,
    /// Playing time when the container states it (or it follows from `frames`).
    pub duration: Option<Duration>,
}

/// Reads the container headers of `path` and reports what it holds, without
/// decoding the whole file. Fails with a typed error for non-audio files and
/// unsupported codecs.
pub fn probe(path: &Path) -> Result<AudioInfo, AudioError> {
    Ok(Source::open(path)?.info)
}

/// Decodes the whole file to 16 kHz mono samples in `[-1, 1]`.
pub fn decode_to_mono_16k(path: &Path) -> Result<Vec<f32>, AudioError> {
    decode(path, None, None)
}

/// Decodes only `range_ms` (milliseconds from the start; the end is clamped
/// to the end of the file) to 16 kHz mono samples, seeking instead of decoding
/// from the start where the container allows. Meant for transcribing long
/// files chunk by chunk. With `channel` (from 0), only that channel instead of all of them
/// averaged: one speaker of a call recorded on two channels.
pub fn decode_range(
    path: &Path,
    range_ms: Range<u64>,
    channel: Option<usize>,
) -> Result<Vec<f32>, AudioError> {
    if range_ms.start >= range_ms.end {
        return Err(AudioError::InvalidRange {
            start_ms: range_ms.start,
            end_ms: range_ms.end,
        });
    }
    decode(path, Some(range_ms), channel)
}

/// Where decoded 16 kHz mono samples are handed over, block by block, as they are decoded.
pub type SampleSink<'a> = &'a mut dyn FnMut(&[f32]);

/// What [`scan`] found by decoding a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanReport {
    /// Playing time of the samples decoded, in ms; at least `max_ms` when the scan stopped
    /// there (rounded down to whole ms).
    pub decoded_ms: u64,
    /// True when the scan stopped at `max_ms` instead of at the end of the file.
    pub over_limit: bool,
    /// Where the container's own clock (its packets' timestamps) put the end of the last
    /// packet decoded, in ms; `None` when its packets carry none. A file whose clock runs
    /// behind its samples is lying about time.
    pub clock_ms: Option<u64>,
}

/// Decodes `path` from the start, packet by packet, keeping no samples: proof that it decodes,
/// and its true length. Stops as soon as more than `max_ms` have decoded, so the work is
/// bounded too whatever the container claims, and with [`AudioError::PastDeadline`] once
/// `deadline` has passed, so a file that is slow to read (a container whose tables cost more
/// per packet the further it goes) cannot keep a thread busy after its caller gave up.
/// `on_samples`, when given, is handed the audio as 16 kHz mono in blocks as it is decoded (a
/// speech detector's input); without it nothing is resampled.
pub fn scan(
    path: &Path,
    max_ms: u64,
    deadline: Option<Instant>,
    mut on_samples: Option<SampleSink<'_>>,
) -> Result<ScanReport, AudioError> {
    let mut src = Source::open(path)?;
    let rate = u64::from(src.info.sample_rate);
    let max_frames = u128::from(max_ms) * u128::from(rate) / 1000;
    let mut resampler = match on_samples {
        Some(_) => Some(StreamResampler::new(src.info.sample_rate)?),
        None => None,
    };
    let mut frames: u64 = 0;
    src.decode_frames(0, i64::MAX, None, deadline, |mono| {
        frames += mono.len() as u64;
        if let (Some(resampler), Some(sink)) = (resampler.as_mut(), on_samples.as_mut()) {
            resampler.push(mono, &mut **sink)?;
        }
        Ok(if u128::from(frames) > max_frames {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    if let (Some(resampler), Some(sink)) = (resampler, on_samples) {
        resampler.finish(sink)?;
    }
    Ok(ScanReport {
        decoded_ms: frames.saturating_mul(1000) / rate,
        over_limit: u128::from(frames) > max_frames,
        clock_ms: src
            .clock_end
            .and_then(|end| u64::try_from(end).ok())
            .map(|end| end.saturating_mul(1000) / rate),
    })
}

/// An opened file: demuxer, decoder and what is known about the track.
struct Source {
    path: PathBuf,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    time_base: Option<TimeBase>,
    info: AudioInfo,
    /// The end of the last packet decoded by the container's clock, in source frames.
    clock_end: Option<i64>,
}

impl Source {
    fn open(path: &Path) -> Result<Self, AudioError> {
        let file = File::open(path).map_err(|source| AudioError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let format = symphonia::default::get_probe()
            .probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| match e {
                SymphoniaError::IoError(source)
                    if source.kind() != std::io::ErrorKind::UnexpectedEof =>
                {
                    AudioError::Io {
                        path: path.to_owned(),
                        source,
                    }
                }
                other => AudioError::UnsupportedFormat {
                    path: path.to_owned(),
                    reason: other.to_string(),
                },
            })?;

        if format.format_info().short_name == ISOMP4 {
            let size = mp4_tables::measure(path).map_err(|source| AudioError::Io {
                path: path.to_owned(),
                source,
            })?;
            if size.steps() > MAX_TABLE_STEPS {
                return Err(AudioError::OutOfLimits {
                    path: path.to_owned(),
                    limit: Limit::TimeTables(size),
                });
            }
        }

        let track =
            format
                .default_track(TrackType::Audio)
                .ok_or_else(|| AudioError::NoAudioTrack {
                    path: path.to_owned(),
                })?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| AudioError::NoAudioTrack {
                path: path.to_owned(),
            })?
            .clone();
        let track_id = track.id;
        let time_base = track.time_base;
        let frames = track.num_frames;
        let track_duration = track.duration;

        // Before the decoder (and later the resampler) sizes anything from these numbers. A
        // stream stating no rate has its channels and packet size checked all the same (it is
        // refused as corrupt further down).
        let stated_channels = params.channels.as_ref().map_or(0, |c| c.count());
        let stated_rate = params.sample_rate.unwrap_or(MIN_SAMPLE_RATE);
        if let Some(limit) =
            Limit::check(stated_rate, stated_channels, params.max_frames_per_packet)
        {
            return Err(AudioError::OutOfLimits {
                path: path.to_owned(),
                limit,
            });
        }

        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(&params, &AudioDecoderOptions::default())
            .map_err(|e| AudioError::UnsupportedCodec {
                path: path.to_owned(),
                codec: format!("{} ({e})", params.codec),
            })?;
        let codec = decoder.codec_info().short_name.to_owned();
        let container = format.format_info().short_name.to_owned();

        let sample_rate = params.sample_rate.ok_or_else(|| AudioError::Corrupt {
            path: path.to_owned(),
            reason: "sample rate not stated".into(),
        })?;
        let channels =
            params
                .channels
                .as_ref()
                .map(|c| c.count())
                .ok_or_else(|| AudioError::Corrupt {
                    path: path.to_owned(),
                    reason: "channel layout not stated".into(),
                })?;
        if sample_rate == 0 || channels == 0 {
            return Err(AudioError::Corrupt {
                path: path.to_owned(),
                reason: format!("{channels} channels at {sample_rate} Hz"),
            });
        }
        let duration = frames
            .map(|n| Duration::from_secs_f64(n as f64 / f64::from(sample_rate)))
            .or_else(|| {
                let (tb, d) = (time_base?, track_duration?);
                let t = tb.calc_duration(d)?;
                let (secs, nanos) = t.parts();
                Some(Duration::new(u64::try_from(secs).ok()?, nanos))
            });

        Ok(Self {
            path: path.to_owned(),
            format,
            decoder,
            track_id,
            time_base,
            clock_end: None,
            info: AudioInfo {
                container,
                codec,
                channels,
                sample_rate,
                frames,
                duration,
            },
        })
    }

    fn corrupt(&self, reason: impl Into<String>) -> AudioError {
        AudioError::Corrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// Seeks so that decoding resumes at or before `start_ms`. Returns false
    /// when the position lies beyond the end of the stream.
    fn seek_to(&mut self, start_ms: u64) -> Result<bool, AudioError> {
        let Ok(ms) = i64::try_from(start_ms) else {
            return Ok(false);
        };
        let to = SeekTo::Time {
            time: Time::from_millis(ms),
            track_id: Some(self.track_id),
        };
        match self.format.seek(SeekMode::Accurate, to) {
            Ok(_) => {
                self.decoder.reset();
                Ok(true)
            }
            Err(SymphoniaError::SeekError(SeekErrorKind::OutOfRange)) => Ok(false),
            // Unseekable streams are decoded from the start; frames before the
            // range are dropped by position.
            Err(SymphoniaError::SeekError(_)) => Ok(true),
            Err(e) => Err(self.corrupt(format!("seeking to {start_ms} ms: {e}"))),
        }
    }
}

fn decode(
    path: &Path,
    range_ms: Option<Range<u64>>,
    channel: Option<usize>,
) -> Result<Vec<f32>, AudioError> {
    let mut src = Source::open(path)?;
    if let Some(channel) = channel.filter(|&c| c >= src.info.channels) {
        return Err(AudioError::NoSuchChannel {
            channel,
            channels: src.info.channels,
        });
    }
    let rate = src.info.sample_rate;
    let ms_to_frames =
        |ms: u64| i64::try_from(u128::from(ms) * u128::from(rate) / 1000).unwrap_or(i64::MAX);
    let (start_frame, end_frame) = match &range_ms {
        Some(r) => (ms_to_frames(r.start), ms_to_frames(r.end)),
        None => (0, i64::MAX),
    };
    if start_frame > 0 && !src.seek_to(range_ms.as_ref().map_or(0, |r| r.start))? {
        return Ok(Vec::new());
    }
    let mut samples = Vec::new();
    let mut keep = |block: &[f32]| samples.extend_from_slice(block);
    let mut resampler = StreamResampler::new(rate)?;
    src.decode_frames(start_frame, end_frame, channel, None, |mono| {
        resampler.push(mono, &mut keep)?;
        Ok(ControlFlow::Continue(()))
    })?;
    resampler.finish(&mut keep)?;
    Ok(samples)
}

impl Source {
    /// Decodes packet by packet from the current position and hands `on_mono` the frames of
    /// each that lie in `start_frame..end_frame` (source frames), averaged to mono (or only
    /// `channel`), until the range or the stream ends or `on_mono` breaks, or fails with
    /// [`AudioError::PastDeadline`] at the first packet read after `deadline`. Only one packet
    /// is held at a time: what is kept is up to `on_mono`.
    fn decode_frames(
        &mut self,
        start_frame: i64,
        end_frame: i64,
        channel: Option<usize>,
        deadline: Option<Instant>,
        mut on_mono: impl FnMut(&[f32]) -> Result<ControlFlow<()>, AudioError>,
    ) -> Result<(), AudioError> {
        let rate = self.info.sample_rate;
        let mut interleaved: Vec<f32> = Vec::new();
        let mut mono: Vec<f32> = Vec::new();
        // Position (in source frames) of the next decoded frame by counting. A packet is
        // placed at its timestamp or its count, whichever is later: a timestamp ahead of the
        // count (a recorder's gap, a skipped packet, an encoder's priming) places it, but a
        // clock that runs slower than the audio cannot hold positions back and so stretch a
        // range over the whole file.
        let mut next_pos: Option<i64> = None;
        let mut decoded_any = false;
        let mut bad_packets = 0usize;
        let mut last_error = String::new();
        // Frames handed on, for what a stop at the deadline reports.
        let mut handed: u64 = 0;

        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(AudioError::PastDeadline {
                    path: self.path.clone(),
                    decoded_ms: handed.saturating_mul(1000) / u64::from(rate),
                });
            }
            let packet = match self.format.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(SymphoniaError::IoError(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    break
                }
                Err(SymphoniaError::ResetRequired) => {
                    return Err(self.corrupt("stream layout changes mid-file"));
                }
                Err(e) => return Err(self.corrupt(e.to_string())),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            let stamped = self.time_base.and_then(|tb| {
                let frames =
                    i128::from(packet.pts.get()) * i128::from(tb.numer.get()) * i128::from(rate)
                        / i128::from(tb.denom.get());
                i64::try_from(frames).ok()
            });
            let buf = match self.decoder.decode(&packet) {
                Ok(buf) => buf,
                Err(SymphoniaError::DecodeError(msg)) => {
                    // A damaged packet is skipped (as players do); a file where
                    // nothing decodes is reported as corrupt below.
                    bad_packets += 1;
                    last_error = msg.to_owned();
                    continue;
                }
                Err(SymphoniaError::IoError(e)) => {
                    bad_packets += 1;
                    last_error = e.to_string();
                    continue;
                }
                Err(e) => return Err(self.corrupt(e.to_string())),
            };
            let channels = buf.spec().channels().count();
            let frames = buf.frames();
            if channels == 0 || frames == 0 {
                continue;
            }
            decoded_any = true;
            buf.copy_to_vec_interleaved(&mut interleaved);
            self.clock_end = stamped.map(|at| at.saturating_add(frames as i64));
            let pos = match (next_pos, stamped) {
                (Some(counted), Some(stamped)) => counted.max(stamped),
                (counted, stamped) => counted.or(stamped).unwrap_or(0),
            };
            let after = pos.saturating_add(frames as i64);
            next_pos = Some(after);
            if after <= start_frame {
                continue;
            }
            if pos >= end_frame {
                break;
            }
            let skip = usize::try_from(start_frame.saturating_sub(pos)).unwrap_or(0);
            let take =
                usize::try_from(end_frame.saturating_sub(pos)).map_or(frames, |n| n.min(frames));
            mono.clear();
            let scale = 1.0 / channels as f32;
            let frames_of = interleaved.chunks_exact(channels).take(take).skip(skip);
            match channel {
                Some(c) => mono.extend(frames_of.map(|frame| frame.get(c).copied().unwrap_or(0.0))),
                None => mono.extend(frames_of.map(|frame| frame.iter().sum::<f32>() * scale)),
            }
            handed += mono.len() as u64;
            if on_mono(&mono)?.is_break() || after >= end_frame {
                break;
            }
        }

        if bad_packets > 0 {
            if !decoded_any {
                return Err(self.corrupt(format!("no packet could be decoded: {last_error}")));
            }
            warn!(path = %self.path.display(), bad_packets, %last_error, "skipped undecodable packets");
        }
        Ok(())
    }
}

/// Converts a mono stream to 16 kHz chunk by chunk, trimming the resampler's
/// delay so output sample `i` lines up with time `i / 16000` s, and hands the output to a
/// sink as it comes: only one chunk of output is held at a time.
struct StreamResampler {
    from_hz: u32,
    /// `None` when the source is already at 16 kHz.
    fft: Option<Fft<f32>>,
    pending: Vec<f32>,
    /// Output not yet handed to the sink.
    out: Vec<f32>,
    frames_in: u64,
    /// Output samples produced so far, the resampler's delay included.
    produced: u64,
}

impl StreamResampler {
    /// Input chunk size handed to rubato; any size works, this one is a good
    /// balance of speed and memory.
    const CHUNK: usize = 4096;

    fn new(from_hz: u32) -> Result<Self, AudioError> {
        let fft = if from_hz == TARGET_SAMPLE_RATE {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    from_hz as usize,
                    TARGET_SAMPLE_RATE as usize,
                    Self::CHUNK,
                    1,
                    FixedSync::Input,
                )
                .map_err(|e| AudioError::Resample {
                    from_hz,
                    reason: e.to_string(),
                })?,
            )
        };
        Ok(Self {
            from_hz,
            fft,
            pending: Vec::new(),
            out: Vec::new(),
            frames_in: 0,
            produced: 0,
        })
    }

    /// The resampler's delay in output samples: what is trimmed from the front.
    fn delay(&self) -> u64 {
        self.fft.as_ref().map_or(0, |f| f.output_delay() as u64)
    }

    fn push(&mut self, samples: &[f32], sink: &mut dyn FnMut(&[f32])) -> Result<(), AudioError> {
        self.frames_in += samples.len() as u64;
        if self.fft.is_none() {
            self.produced += samples.len() as u64;
            sink(samples);
            return Ok(());
        }
        self.pending.extend_from_slice(samples);
        let mut consumed = 0;
        loop {
            let need = self.fft.as_ref().map_or(0, |f| f.input_frames_next());
            if self.pending.len() - consumed < need {
                break;
            }
            let chunk = std::mem::take(&mut self.pending);
            let result = self.process(&chunk[consumed..consumed + need], None);
            self.pending = chunk;
            result?;
            consumed += need;
        }
        self.pending.drain(..consumed);
        self.emit(u64::MAX, sink);
        Ok(())
    }

    /// Hands the sink the output produced so far, less the delay at the front and anything
    /// past `limit` output samples.
    fn emit(&mut self, limit: u64, sink: &mut dyn FnMut(&[f32])) {
        let delay = self.delay();
        let first = self.produced - self.out.len() as u64;
        let from = usize::try_from(delay.saturating_sub(first)).unwrap_or(usize::MAX);
        let to = usize::try_from(delay.saturating_add(limit).saturating_sub(first))
            .unwrap_or(usize::MAX);
        let (from, to) = (from.min(self.out.len()), to.min(self.out.len()));
        if from < to {
            sink(&self.out[from..to]);
        }
        self.out.clear();
    }

    /// Runs one chunk; `partial` marks the final, short (or empty) chunk,
    /// which rubato pads with silence.
    fn process(&mut self, input: &[f32], partial: Option<usize>) -> Result<(), AudioError> {
        let from_hz = self.from_hz;
        let err = |e: &dyn std::fmt::Display| AudioError::Resample {
            from_hz,
            reason: e.to_string(),
        };
        let Some(fft) = self.fft.as_mut() else {
            return Ok(());
        };
        let in_len = fft.input_frames_next();
        let padded;
        let input = if input.len() < in_len {
            padded = [input, &vec![0.0; in_len - input.len()]].concat();
            &padded[..]
        } else {
            input
        };
        let adapter_in = InterleavedSlice::new(input, 1, input.len()).map_err(|e| err(&e))?;
        let n_out = fft.output_frames_next();
        let old = self.out.len();
        self.out.resize(old + n_out, 0.0);
        let mut adapter_out =
            InterleavedSlice::new_mut(&mut self.out[old..], 1, n_out).map_err(|e| err(&e))?;
        let indexing = partial.map(|n| Indexing::new().partial_len(n));
        let (_, written) = fft
            .process_into_buffer(&adapter_in, &mut adapter_out, indexing.as_ref())
            .map_err(|e| err(&e))?;
        self.out.truncate(old + written);
        self.produced += written as u64;
        Ok(())
    }

    /// Flushes the last input and the delayed tail: the sink has then received exactly
    /// `frames_in` at 16 kHz (rounded up).
    fn finish(mut self, sink: &mut dyn FnMut(&[f32])) -> Result<(), AudioError> {
        if self.fft.is_none() {
            return Ok(());
        }
        let expected =
            (self.frames_in * u64::from(TARGET_SAMPLE_RATE)).div_ceil(u64::from(self.from_hz));
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.process(&rest, Some(rest.len()))?;
            self.emit(expected, sink);
        }
        // Pump silence until the delayed tail has come out.
        while self.produced < expected + self.delay() {
            self.process(&[], Some(0))?;
            self.emit(expected, sink);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_clients_and_operators_are_told_names_no_local_path() {
        let path = PathBuf::from("/var/lib/echo/cache/objects/3f6c2a10");
        let errors = [
            AudioError::Io {
                path: path.clone(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            },
            AudioError::UnsupportedFormat {
                path: path.clone(),
                reason: "no probe".into(),
            },
            AudioError::NoAudioTrack { path: path.clone() },
            AudioError::UnsupportedCodec {
                path: path.clone(),
                codec: "alac".into(),
            },
            AudioError::Corrupt {
                path: path.clone(),
                reason: "truncated".into(),
            },
            AudioError::OutOfLimits {
                path: path.clone(),
                limit: Limit::Channels(9),
            },
        ];
        for error in &errors {
            assert!(error.to_string().contains("/var/lib/echo"), "{error}");
            let told = error.without_path();
            assert!(!told.contains("/var/lib/echo"), "{told}");
            assert!(!told.is_empty());
        }
    }

    #[test]
    fn limits_refuse_rates_channels_and_packet_sizes_outside_the_bounds() {
        assert_eq!(Limit::check(16_000, 1, Some(1_152)), None);
        assert_eq!(Limit::check(MIN_SAMPLE_RATE, MAX_CHANNELS, None), None);
        assert_eq!(
            Limit::check(MAX_SAMPLE_RATE, 2, Some(MAX_FRAMES_PER_PACKET)),
            None
        );
        assert_eq!(Limit::check(7_999, 1, None), Some(Limit::SampleRate(7_999)));
        assert_eq!(
            Limit::check(2_147_483_647, 1, None),
            Some(Limit::SampleRate(2_147_483_647))
        );
        assert_eq!(Limit::check(48_000, 9, None), Some(Limit::Channels(9)));
        assert_eq!(
            Limit::check(48_000, 2, Some(MAX_FRAMES_PER_PACKET + 1)),
            Some(Limit::FramesPerPacket(MAX_FRAMES_PER_PACKET + 1))
        );
    }
}
