//! Speech-to-text with whisper.cpp (through whisper-rs).
//!
//! A [`Transcriber`] loads the ggml model once and can then be shared by
//! reference (or in an `Arc`) between threads. Each call runs on a whisper state (KV caches,
//! mel and compute buffers, tens of megabytes) of its own, taken from a pool and put back
//! afterwards: calls never interfere, and a worker transcribing one chunk after another
//! allocates its buffers once instead of once per chunk.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::Instant;

use tracing::debug;

use crate::model::ModelName;
use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

/// Sample rate, in Hz, of the audio [`Transcriber::transcribe`] accepts.
pub const SAMPLE_RATE: u32 = crate::audio::TARGET_SAMPLE_RATE;

/// Silence put before every input, in ms. whisper was trained on windows that rarely open
/// mid-word, and audio whose speech starts at its very first sample can come back garbled
/// or all but dropped (measured: a 15 s chunk cut between two words of read speech came back
/// as one invented five-word sentence; with 300 ms of silence before it, word for word).
/// Chunks cut between words start that way; segment times are given without it.
pub const LEAD_IN_MS: u64 = 500;

/// Errors of model loading and transcription.
#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    /// whisper.cpp could not load the model file (missing, truncated, not ggml).
    #[error("loading whisper model {path}: {source}")]
    LoadModel {
        /// The model file that failed to load.
        path: PathBuf,
        /// whisper-rs's reason.
        source: whisper_rs::WhisperError,
    },
    /// A whisper.cpp call failed while transcribing.
    #[error("whisper transcription failed: {0}")]
    Whisper(#[from] whisper_rs::WhisperError),
    /// The deadline given to [`Transcriber::transcribe_until`] passed; whisper stopped.
    #[error("transcription stopped: its deadline passed")]
    DeadlinePassed,
    /// The configuration cannot be used (e.g. zero threads).
    #[error("invalid transcriber config: {0}")]
    InvalidConfig(String),
}

/// How transcription is run. Defaults: 1 thread, English, no flash attention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriberConfig {
    /// CPU threads per transcription call. Defaults to 1: on small, busy
    /// machines several workers with one thread each beat one worker with
    /// many threads (measured: 2 threads collapse under load).
    pub threads: usize,
    /// Spoken language code given to whisper ("en" for the English-only
    /// `tiny.en` model); fixing it skips language detection. "auto" detects
    /// it per call, with a multilingual model.
    pub language: String,
    /// Whether whisper.cpp computes attention with its fused flash-attention kernel (its own
    /// default) instead of two matrix products and a vectorised softmax. Off: the fused
    /// kernel takes a scalar `exp` per score, and without it a chunk took a third less time
    /// (the sums run in another order, so a word may come out differently). The price is the
    /// encoder's scores, ~50 MB more per whisper state. On where memory counts more than time.
    pub flash_attention: bool,
}

impl TranscriberConfig {
    /// The defaults for `model`: its language detected when it knows more than English.
    pub fn for_model(model: ModelName) -> Self {
        Self {
            language: if model.is_multilingual() {
                "auto"
            } else {
                "en"
            }
            .to_owned(),
            ..Self::default()
        }
    }
}

impl Default for TranscriberConfig {
    fn default() -> Self {
        Self {
            threads: 1,
            language: "en".to_owned(),
            flash_attention: false,
        }
    }
}

/// What one call heard: the segments and their language.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcription {
    /// The segments, in time order.
    pub segments: Vec<Segment>,
    /// Language code of the speech ("en", "de") as a multilingual model detected it, when the
    /// configured language is "auto"; `None` when it was fixed by the configuration.
    pub language: Option<String>,
}

/// One piece of transcript with its position in the audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Start of the segment, in milliseconds from the start of the samples
    /// given to [`Transcriber::transcribe`] (whisper resolution: 10 ms).
    pub start_ms: u64,
    /// End of the segment, in milliseconds, same origin as `start_ms`.
    pub end_ms: u64,
    /// Recognised text, trimmed of surrounding whitespace.
    pub text: String,
    /// Mean probability of the segment's text tokens (0..=1), a cheap signal
    /// for flagging doubtful segments; 0 when the segment has no text tokens.
    pub confidence: f32,
    /// The segment's words in order: joined by single spaces they are its text with the
    /// whitespace normalised (see [`words_of`]).
    pub words: Vec<Word>,
}

/// One word of a segment with its own times: what word-level seams, captions and per-word
/// confidence are built from.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// Start of the word, in ms, same origin as [`Segment::start_ms`]: the start of its first
    /// token as whisper.cpp's token timestamps place it.
    pub start_ms: u64,
    /// End of the word, in ms: the end of its last token.
    pub end_ms: u64,
    /// The word as written, punctuation attached ("Hello,").
    pub text: String,
    /// Confidence in the word (0..=1): the lowest probability of its tokens, so one unsure
    /// piece of a word makes the word unsure.
    pub confidence: f32,
}

/// One text token of a segment as whisper.cpp reports it: its bytes (a token may hold part of
/// a multi-byte character), times (ms, lead-in already removed) and probability.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedToken {
    /// The token's text bytes; a leading space starts a new word.
    pub bytes: Vec<u8>,
    /// Start of the token, in ms.
    pub start_ms: u64,
    /// End of the token, in ms.
    pub end_ms: u64,
    /// The token's probability.
    pub probability: f32,
}

/// Splits a segment's tokens into words at whitespace, so the words joined by single spaces
/// are exactly the segment's text with its whitespace normalised. A word's times run from its
/// first token's start to its last token's end; its confidence is its tokens' lowest
/// probability.
pub fn words_of(tokens: &[TimedToken]) -> Vec<Word> {
    struct Open {
        bytes: Vec<u8>,
        start_ms: u64,
        end_ms: u64,
        probability: f32,
    }
    fn close(open: &mut Option<Open>, words: &mut Vec<Word>) {
        if let Some(word) = open.take() {
            words.push(Word {
                start_ms: word.start_ms,
                end_ms: word.end_ms.max(word.start_ms),
                text: String::from_utf8_lossy(&word.bytes).into_owned(),
                confidence: word.probability,
            });
        }
    }
    let mut words = Vec::new();
    let mut open: Option<Open> = None;
    for token in tokens {
        for &byte in &token.bytes {
            if byte.is_ascii_whitespace() {
                close(&mut open, &mut words);
                continue;
            }
            let word = open.get_or_insert(Open {
                bytes: Vec::new(),
                start_ms: token.start_ms,
                end_ms: token.end_ms,
                probability: token.probability,
            });
            word.bytes.push(byte);
            word.end_ms = token.end_ms;
            word.probability = word.probability.min(token.probability);
        }
    }
    close(&mut open, &mut words);
    // A word whisper gave no time of its own (its tokens squeezed into an instant, as the
    // first word of a segment can be) lasts until the next one starts.
    for i in 1..words.len() {
        let next_start = words[i].start_ms;
        let word = &mut words[i - 1];
        if word.end_ms == word.start_ms && next_start > word.start_ms {
            word.end_ms = next_start;
        }
    }
    words
}

/// A loaded Whisper model, ready to transcribe from any thread.
#[derive(Debug)]
pub struct Transcriber {
    /// The model, loaded once; whisper-rs marks it `Send + Sync`.
    ctx: WhisperContext,
    /// Settings applied to every call.
    config: TranscriberConfig,
    /// States no call is using: one per call that ran at the same time as another, reused
    /// by the next calls. whisper.cpp resets a state at the start of every transcription.
    idle_states: Mutex<Vec<WhisperState>>,
}

impl Transcriber {
    /// Loads the ggml model at `model_path` (see [`crate::model::prepare`]).
    ///
    /// Also routes whisper.cpp's and ggml's logging into `tracing` (once per
    /// process) instead of letting it spam stderr.
    pub fn new(model_path: &Path, config: TranscriberConfig) -> Result<Self, TranscribeError> {
        if config.threads == 0 {
            return Err(TranscribeError::InvalidConfig(
                "threads must be at least 1".into(),
            ));
        }
        install_logging_hooks();
        let mut params = WhisperContextParameters::default();
        params.flash_attn(config.flash_attention);
        let ctx = WhisperContext::new_with_params(model_path, params).map_err(|source| {
            TranscribeError::LoadModel {
                path: model_path.to_owned(),
                source,
            }
        })?;
        Ok(Self {
            ctx,
            config,
            idle_states: Mutex::new(Vec::new()),
        })
    }

    /// Whisper states kept for the next calls (tens of megabytes each): as many as calls
    /// ever ran at once, not one per call made.
    pub fn idle_states(&self) -> usize {
        self.idle_states.lock().expect("idle states").len()
    }

    /// The settings this transcriber runs with.
    pub fn config(&self) -> &TranscriberConfig {
        &self.config
    }

    /// Transcribes 16 kHz mono samples (see [`crate::audio::decode_to_mono_16k`])
    /// with greedy decoding. Empty input gives no segments.
    pub fn transcribe(&self, samples_16k_mono: &[f32]) -> Result<Vec<Segment>, TranscribeError> {
        Ok(self
            .transcribe_until(samples_16k_mono, None, None)?
            .segments)
    }

    /// Like [`Transcriber::transcribe`], but whisper.cpp gives up once `deadline` has
    /// passed ([`TranscribeError::DeadlinePassed`]): a caller that has stopped waiting must
    /// not leave a transcription running on a core it needs for the next one. `prompt` is
    /// text whisper reads as if it had just been said (names, terms, style): its initial
    /// prompt.
    pub fn transcribe_until(
        &self,
        samples_16k_mono: &[f32],
        prompt: Option<&str>,
        deadline: Option<Instant>,
    ) -> Result<Transcription, TranscribeError> {
        if samples_16k_mono.is_empty() {
            return Ok(Transcription {
                segments: Vec::new(),
                language: None,
            });
        }
        let lead_in = (LEAD_IN_MS * u64::from(SAMPLE_RATE) / 1000) as usize;
        let mut heard = vec![0.0; lead_in];
        heard.extend_from_slice(samples_16k_mono);
        let idle = self.idle_states.lock().expect("idle states").pop();
        let mut state = match idle {
            Some(state) => state,
            None => self.ctx.create_state()?,
        };
        let heard = self.run(&mut state, &heard, prompt, deadline)?;
        self.idle_states.lock().expect("idle states").push(state);
        Ok(heard)
    }

    /// One transcription on `state`.
    fn run(
        &self,
        state: &mut WhisperState,
        samples_16k_mono: &[f32],
        prompt: Option<&str>,
        deadline: Option<Instant>,
    ) -> Result<Transcription, TranscribeError> {
        let detect = self.config.language == "auto" && self.ctx.is_multilingual();
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        let threads = i32::try_from(self.config.threads).unwrap_or(i32::MAX);
        params.set_n_threads(threads);
        // None: whisper detects the language from the first window.
        params.set_language((!detect).then_some(self.config.language.as_str()));
        params.set_translate(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        // Times per token, from which words get theirs.
        params.set_token_timestamps(true);
        if let Some(prompt) = prompt.filter(|p| !p.trim().is_empty()) {
            params.set_initial_prompt(prompt);
        }
        // whisper-rs's `set_abort_callback_safe` hands whisper.cpp a pointer of the wrong
        // type (0.16), so the callback is set by hand: a plain function and a pointer to
        // the deadline, which lives on this stack for the whole `full` call.
        let deadline_slot = deadline;
        if let Some(deadline) = &deadline_slot {
            // SAFETY: `past_deadline` reads `user_data` as the `Instant` it points at, and
            // `deadline_slot` outlives `state.full`, the only caller of the callback.
            unsafe {
                params.set_abort_callback(Some(past_deadline));
                params.set_abort_callback_user_data(
                    deadline as *const Instant as *mut std::ffi::c_void,
                );
            }
        }
        let ran = state.full(params, samples_16k_mono);
        // An abort is reported as a failure of whisper; one that finished anyway counts.
        if ran.is_err() && deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(TranscribeError::DeadlinePassed);
        }
        ran?;

        let eot = self.ctx.token_eot();
        let mut segments = Vec::new();
        // whisper timestamps are in centiseconds, from the start of the lead-in.
        let at = |cs: i64| (u64::try_from(cs).unwrap_or(0) * 10).saturating_sub(LEAD_IN_MS);
        for segment in state.as_iter() {
            let text = segment.to_str_lossy()?.trim().to_owned();
            let start_ms = at(segment.start_timestamp());
            let end_ms = at(segment.end_timestamp());
            let mut tokens = Vec::new();
            for token in (0..segment.n_tokens()).filter_map(|i| segment.get_token(i)) {
                // Ids from <|endoftext|> up are special/timestamp tokens.
                if token.token_id() >= eot {
                    continue;
                }
                let data = token.token_data();
                // Token times can stray a little outside their segment; words stay inside it.
                let start = at(data.t0).clamp(start_ms, end_ms);
                tokens.push(TimedToken {
                    bytes: token.to_bytes()?.to_vec(),
                    start_ms: start,
                    end_ms: at(data.t1).clamp(start, end_ms),
                    probability: token.token_probability(),
                });
            }
            let confidence = if tokens.is_empty() {
                0.0
            } else {
                tokens.iter().map(|t| t.probability).sum::<f32>() / tokens.len() as f32
            };
            debug!(start_ms, end_ms, confidence, %text, "segment");
            segments.push(Segment {
                start_ms,
                end_ms,
                text,
                confidence,
                words: words_of(&tokens),
            });
        }
        let language = detect
            .then(|| whisper_rs::get_lang_str(state.full_lang_id_from_state()))
            .flatten()
            .map(str::to_owned);
        Ok(Transcription { segments, language })
    }
}

/// Sends whisper.cpp/ggml logs to `tracing` (whisper-rs `tracing_backend`).
fn install_logging_hooks() {
    static ONCE: Once = Once::new();
    ONCE.call_once(whisper_rs::install_logging_hooks);
}

/// whisper.cpp's abort callback: true once the deadline `user_data` points at has passed.
unsafe extern "C" fn past_deadline(user_data: *mut std::ffi::c_void) -> bool {
    // SAFETY: set by `transcribe_until` to a live `Instant`.
    let deadline = unsafe { &*(user_data as *const Instant) };
    Instant::now() >= *deadline
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str, start_ms: u64, end_ms: u64, probability: f32) -> TimedToken {
        TimedToken {
            bytes: text.as_bytes().to_vec(),
            start_ms,
            end_ms,
            probability,
        }
    }

    #[test]
    fn words_start_at_a_space_and_span_their_tokens() {
        let tokens = [
            token(" Hel", 0, 200, 0.9),
            token("lo", 200, 400, 0.6),
            token(",", 400, 450, 0.95),
            token(" world", 500, 900, 0.8),
            token(".", 900, 950, 0.99),
        ];
        let words = words_of(&tokens);
        let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["Hello,", "world."]);
        assert_eq!((words[0].start_ms, words[0].end_ms), (0, 450));
        assert_eq!((words[1].start_ms, words[1].end_ms), (500, 950));
        assert_eq!(words[0].confidence, 0.6);
    }

    #[test]
    fn words_joined_are_the_text_even_with_inner_spaces_and_split_characters() {
        // "café" with its two-byte "é" split across two tokens, and a token holding a space.
        let e_acute = "é".as_bytes();
        let tokens = [
            TimedToken {
                bytes: [b" caf".as_slice(), &e_acute[..1]].concat(),
                start_ms: 0,
                end_ms: 300,
                probability: 0.7,
            },
            TimedToken {
                bytes: e_acute[1..].to_vec(),
                start_ms: 300,
                end_ms: 350,
                probability: 0.9,
            },
            token(" au lait ", 400, 800, 0.8),
        ];
        let words = words_of(&tokens);
        let joined: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(joined.join(" "), "café au lait");
        assert_eq!((words[0].start_ms, words[0].end_ms), (0, 350));
        assert_eq!((words[2].start_ms, words[2].end_ms), (400, 800));
        assert!(words_of(&[token("  ", 0, 10, 1.0)]).is_empty());
        // A word squeezed into an instant lasts until the next one.
        let words = words_of(&[token(" A", 0, 0, 0.9), token(" word", 240, 400, 0.9)]);
        assert_eq!((words[0].start_ms, words[0].end_ms), (0, 240));
    }
}
