//! What a client may choose per upload (`echo.upload.TranscriptOptions`): the checks its
//! choices must pass, which the schema cannot express.

use super::{CaptionRules, TranscriptFormat, TranscriptOptions};

/// The most characters a prompt may have: whisper reads at most 224 tokens of prompt, which
/// 500 characters of English stay under.
pub const MAX_PROMPT_CHARS: usize = 500;

impl TranscriptOptions {
    /// Why a client's options cannot be used, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if let Some(prompt) = &self.prompt {
            let chars = prompt.chars().count();
            if chars > MAX_PROMPT_CHARS {
                return Some(format!(
                    "prompt has {chars} characters, the most is {MAX_PROMPT_CHARS}"
                ));
            }
            if prompt.chars().any(char::is_control) {
                return Some("prompt must not contain control characters".into());
            }
        }
        self.caption
            .as_ref()
            .and_then(CaptionRules::problem)
            .map(|p| format!("caption: {p}"))
    }

    /// Whether the transcript file of `format` is to be written.
    pub fn wants(&self, format: TranscriptFormat) -> bool {
        self.formats.as_ref().is_none_or(|f| f.contains(&format))
    }
}

/// The longest a cue may stay on screen, and the longest pause rule, in ms: no caption
/// guideline asks for more, and longer cues only make wrapping them cost more.
pub const MAX_CUE_MS: i32 = 60_000;

impl CaptionRules {
    /// Why these rules cannot cut cues, if they cannot.
    pub fn problem(&self) -> Option<String> {
        // Bounded so wrapping a cue (every split of its words is tried) stays cheap.
        if !(10..=100).contains(&self.max_chars_per_line) {
            return Some(format!(
                "max_chars_per_line must be 10 to 100, got {}",
                self.max_chars_per_line
            ));
        }
        if !(1..=3).contains(&self.max_lines) {
            return Some(format!("max_lines must be 1 to 3, got {}", self.max_lines));
        }
        if self.min_duration_ms < 0
            || !(1_000..=MAX_CUE_MS).contains(&self.max_duration_ms)
            || self.min_duration_ms > self.max_duration_ms
        {
            return Some(format!(
                "durations need 0 <= min_duration_ms <= max_duration_ms and 1000 <= \
                 max_duration_ms <= {MAX_CUE_MS}, got min {} max {}",
                self.min_duration_ms, self.max_duration_ms
            ));
        }
        if !(0..=MAX_CUE_MS).contains(&self.pause_ms) {
            return Some(format!(
                "pause_ms must be 0 to {MAX_CUE_MS}, got {}",
                self.pause_ms
            ));
        }
        None
    }
}
