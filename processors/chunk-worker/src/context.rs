//! What a chunk hears before its audio: the text of the chunk before it, when this worker
//! transcribed that one.
//!
//! whisper alone on a whole file gives each 30 s window the text of the windows before it as
//! its prompt; a chunk transcribed cold loses that, which cost 0.72 WER points on the
//! benchmark's file (docs/PERFORMANCE.md). A long job's chunks are placed in runs of
//! consecutive chunks per partition (`echo_catalog::keys::run_length`), so the worker that
//! transcribes a chunk has usually just transcribed the one before it. The text is kept in
//! memory only: a chunk whose neighbour went elsewhere (a run's first chunk, a rebalance, a
//! restart) is transcribed without it, less accurately but correctly.

use std::collections::VecDeque;
use std::sync::Mutex;

/// How many chunks' texts a worker remembers: one per run it is in the middle of, and a
/// worker owns at most a few partitions of the chunk-commands topic.
const REMEMBERED_CHUNKS: usize = 32;

/// Most characters of the chunk before that go into a prompt: about a chunk's worth (a 28 s
/// chunk is ~75 words). whisper keeps the last 224 tokens of a prompt, so a longer one would
/// push the upload's own prompt out.
pub const CONTEXT_CHARS: usize = 600;

/// The texts of the chunks this worker transcribed last, by job and index.
#[derive(Debug, Default)]
pub struct RecentText {
    /// `(job_id, chunk_index, text)`, oldest first, at most [`REMEMBERED_CHUNKS`].
    chunks: Mutex<VecDeque<(String, i32, String)>>,
}

impl RecentText {
    /// Remembers what chunk `chunk_index` of `job_id` was heard to say (its last
    /// [`CONTEXT_CHARS`]), forgetting the oldest chunk past the bound.
    pub fn remember(&self, job_id: &str, chunk_index: i32, text: &str) {
        let text = tail(text.trim(), CONTEXT_CHARS).to_string();
        let mut chunks = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        chunks.retain(|(job, index, _)| !(job == job_id && *index == chunk_index));
        if chunks.len() == REMEMBERED_CHUNKS {
            chunks.pop_front();
        }
        chunks.push_back((job_id.to_string(), chunk_index, text));
    }

    /// The remembered text of the chunk just before `chunk_index` in `job_id`, if any.
    pub fn before(&self, job_id: &str, chunk_index: i32) -> Option<String> {
        let previous = chunk_index.checked_sub(1)?;
        let chunks = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        chunks
            .iter()
            .find(|(job, index, _)| job == job_id && *index == previous)
            .map(|(_, _, text)| text.clone())
            .filter(|text| !text.is_empty())
    }
}

/// whisper's prompt for a chunk: the upload's own prompt (names, vocabulary) first, then the
/// text of the chunk before, nearest the audio as whisper's own context would be; `None`
/// when there is neither.
pub fn prompt(upload: Option<&str>, before: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [upload, before]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The end of `text`, at most `max_chars` characters, starting at a word.
fn tail(text: &str, max_chars: usize) -> &str {
    let Some((cut, _)) = text.char_indices().rev().nth(max_chars.saturating_sub(1)) else {
        return text;
    };
    if cut == 0 {
        return text;
    }
    let rest = &text[cut..];
    if text[..cut].ends_with(char::is_whitespace) {
        return rest;
    }
    match rest.find(char::is_whitespace) {
        Some(space) => rest[space..].trim_start(),
        None => rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_hears_the_chunk_before_it_of_its_own_job() {
        let recent = RecentText::default();
        recent.remember("a", 4, "the fourth");
        recent.remember("b", 5, "another job");
        assert_eq!(recent.before("a", 5).as_deref(), Some("the fourth"));
        assert_eq!(recent.before("a", 6), None, "not a chunk further back");
        assert_eq!(recent.before("b", 5), None);
        assert_eq!(recent.before("a", i32::MIN), None);
        recent.remember("a", 4, "heard again");
        assert_eq!(recent.before("a", 5).as_deref(), Some("heard again"));
    }

    #[test]
    fn the_oldest_chunks_are_forgotten() {
        let recent = RecentText::default();
        for index in 0..=REMEMBERED_CHUNKS as i32 {
            recent.remember("a", index, "words");
        }
        assert_eq!(recent.before("a", 1), None);
        assert!(recent.before("a", 2).is_some());
    }

    #[test]
    fn a_chunk_without_speech_gives_no_context() {
        let recent = RecentText::default();
        recent.remember("a", 0, "  ");
        assert_eq!(recent.before("a", 1), None);
    }

    #[test]
    fn the_prompt_is_the_uploads_then_the_chunk_before() {
        assert_eq!(prompt(None, None), None);
        assert_eq!(prompt(Some(" "), Some("")), None);
        assert_eq!(
            prompt(Some("Kafka, Avro."), None).as_deref(),
            Some("Kafka, Avro.")
        );
        assert_eq!(
            prompt(Some("Kafka, Avro."), Some("and then it stopped.")).as_deref(),
            Some("Kafka, Avro. and then it stopped.")
        );
    }

    #[test]
    fn long_text_keeps_its_end_from_a_word_on() {
        assert_eq!(tail("short", 10), "short");
        assert_eq!(tail("one two three four", 12), "three four");
        assert_eq!(tail("one two three four", 10), "three four");
        assert_eq!(tail("one two three four", 9), "four");
        assert_eq!(tail("ééé ààà", 4), "ààà");
        let long = "word ".repeat(500);
        assert!(tail(&long, CONTEXT_CHARS).len() <= CONTEXT_CHARS);
    }
}
