//! Settings of the transcription processor, loaded from the `transcription` section of echo's
//! configuration.

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};

use crate::captions::CaptionRules;

/// How the transcript is described in its report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TranscriptionConfig {
    /// Language written into the analysis (BCP-47 primary tag) when the chunks carry none: the
    /// default model (`tiny.en`) is English-only, so the language is known up front; with a
    /// multilingual model (`chunk_worker.model = "base"`) the detected one is reported.
    pub language: String,
    /// How `transcript.srt` and `transcript.vtt` cut their cues (`[transcription.captions]`).
    pub captions: CaptionRules,
}

impl Default for TranscriptionConfig {
    fn default() -> Self {
        TranscriptionConfig {
            language: "en".into(),
            captions: CaptionRules::default(),
        }
    }
}

impl TranscriptionConfig {
    /// Fails on settings that would put garbage in every report, so a bad config stops the
    /// processor at startup instead of writing wrong artifacts for every resource.
    pub fn validate(&self) -> Result<()> {
        let ok = (2..=8).contains(&self.language.len())
            && self.language.bytes().all(|b| b.is_ascii_alphabetic());
        ensure!(
            ok,
            "transcription.language must be a 2-8 letter language tag such as \"en\", got {:?}",
            self.language
        );
        if let Some(problem) = self.captions.problem() {
            bail!("transcription.captions: {problem}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_partial_sections_keep_them() {
        let c = TranscriptionConfig::default();
        c.validate().unwrap();
        assert_eq!(c.language, "en");
        let partial: TranscriptionConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(partial, c);
        let de: TranscriptionConfig = serde_json::from_str(r#"{"language": "de"}"#).unwrap();
        assert_eq!(de.language, "de");
        let narrow: TranscriptionConfig =
            serde_json::from_str(r#"{"captions": {"max_chars_per_line": 32}}"#).unwrap();
        assert_eq!(narrow.captions.max_chars_per_line, 32);
        assert_eq!(narrow.captions.max_lines, 2);
    }

    #[test]
    fn caption_rules_that_cannot_cut_cues_are_refused() {
        let with = |captions: CaptionRules| TranscriptionConfig {
            captions,
            ..TranscriptionConfig::default()
        };
        let rules = CaptionRules::default();
        for bad in [
            CaptionRules {
                max_chars_per_line: 5,
                ..rules.clone()
            },
            CaptionRules {
                max_lines: 0,
                ..rules.clone()
            },
            CaptionRules {
                max_lines: 4,
                ..rules.clone()
            },
            CaptionRules {
                max_chars_per_line: 150,
                ..rules.clone()
            },
            CaptionRules {
                min_duration_ms: 8_000,
                ..rules.clone()
            },
        ] {
            let error = with(bad).validate().unwrap_err().to_string();
            assert!(error.starts_with("transcription.captions: "), "{error}");
        }
    }

    #[test]
    fn unusable_languages_are_refused() {
        for bad in ["", "e", "en-US", "english!", "abcdefghi"] {
            let c = TranscriptionConfig {
                language: bad.into(),
                ..TranscriptionConfig::default()
            };
            assert!(c.validate().is_err(), "{bad:?}");
        }
    }
}
