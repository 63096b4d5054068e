//! The uploads of a chaos run, generated from the seed: spoken files (flite) of one or
//! several chunks, and bad files the pipeline must reject by name.

use std::path::{Path, PathBuf};

use anyhow::Result;
use echo_tests::pipeline::{convert, speak};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore};

use crate::audit::Expect;

/// One file to upload.
pub struct Upload {
    /// Where it is on disk; its file name is unique in the run and ties the resource back
    /// to this entry (`upload.requested` carries it).
    pub path: PathBuf,
    /// What it must come to.
    pub expect: Expect,
    /// The spoken text of a good file, for the word error rate of its transcript.
    pub text: Option<String>,
}

impl Upload {
    /// The file name the client sends.
    pub fn filename(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Sentences flite speaks clearly and tiny.en mostly gets right.
const SENTENCES: &[&str] = &[
    "The morning train left the station a few minutes late.",
    "A small dog slept under one of the seats near the door.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "The clouds were moving slowly across the sky.",
    "She told him about her new job at the library.",
    "Children on the bank waved at the windows as it passed.",
    "After an hour the train reached the city.",
    "In the afternoon the weather turned warm.",
    "A group of students sat on the grass and talked about their plans.",
    "The bells of the old church rang six times.",
    "The shops began to close for the evening.",
    "He checked every ticket with great care.",
    "We need a new table for the kitchen.",
    "The river was wide and the water was cold.",
    "My brother works at the hospital near the park.",
    "They opened the windows to let the fresh air in.",
];

/// Every fifth upload is bad; every fourth good one is long enough for several chunks.
const BAD_EVERY: usize = 5;
const LONG_EVERY: usize = 4;

/// Ways a file is bad.
const BAD_KINDS: &[&str] = &["noise", "empty", "text", "short"];

/// Writes `count` uploads into `dir`.
pub fn generate(dir: &Path, count: usize, rng: &mut StdRng) -> Result<Vec<Upload>> {
    let mut uploads = Vec::with_capacity(count);
    let mut good = 0;
    for i in 0..count {
        if i % BAD_EVERY == BAD_EVERY - 1 {
            let kind = BAD_KINDS.choose(rng).copied().unwrap_or("noise");
            uploads.push(bad(dir, i, kind, rng)?);
            continue;
        }
        good += 1;
        let sentences = if good % LONG_EVERY == 0 {
            rng.random_range(6..=10)
        } else {
            rng.random_range(1..=2)
        };
        let text: Vec<&str> = (0..sentences)
            .filter_map(|_| SENTENCES.choose(rng).copied())
            .collect();
        let text = text.join(" ");
        let path = speak(dir, &format!("good-{i:03}.wav"), &text)?;
        uploads.push(Upload {
            path,
            expect: Expect::Ready,
            text: Some(text),
        });
    }
    Ok(uploads)
}

/// A bad file of `kind`.
fn bad(dir: &Path, i: usize, kind: &str, rng: &mut StdRng) -> Result<Upload> {
    let path = match kind {
        "noise" => {
            let mut bytes = vec![0u8; rng.random_range(4_000..40_000)];
            rng.fill_bytes(&mut bytes);
            write(dir, &format!("bad-{i:03}-noise.wav"), &bytes)?
        }
        "empty" => write(dir, &format!("bad-{i:03}-empty.wav"), &[])?,
        "text" => write(
            dir,
            &format!("bad-{i:03}-text.mp3"),
            b"this is a text file, not audio\n",
        )?,
        _ => {
            let spoken = speak(dir, &format!("bad-{i:03}-long.wav"), SENTENCES[0])?;
            let clip = dir.join(format!("bad-{i:03}-short.wav"));
            convert(&spoken, &clip, &["trim", "0", "0.2"])?;
            std::fs::remove_file(spoken)?;
            clip
        }
    };
    Ok(Upload {
        path,
        expect: Expect::Rejected,
        text: None,
    })
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, bytes)?;
    Ok(path)
}
