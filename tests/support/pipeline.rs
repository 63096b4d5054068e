//! Running the whole pipeline as its operators do: `echoctl run all` in a child process on a
//! test's own topic prefix, and clients against it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::stack::TestEnv;

/// A running `echoctl run all`, stopped with SIGTERM when dropped.
pub struct Pipeline {
    child: Child,
}

/// `echoctl` with the test's environment: its topic prefix plus `settings` (`ECHO_*`).
pub fn echoctl(bin: &Path, env: &TestEnv, settings: &[(&str, &str)]) -> Command {
    let mut command = Command::new(bin);
    command
        .env("ECHO_KAFKA__TOPIC_PREFIX", &env.config.kafka.topic_prefix)
        .env("ECHO_RUNTIME__BATCH_LINGER_MS", "20")
        // Pipelines of several tests may run at once: each takes a free port for its
        // metrics and health (a test that scrapes them sets its own).
        .env("ECHO_ENDPOINTS__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn");
    for (k, v) in settings {
        command.env(k, v);
    }
    command
}

impl Pipeline {
    /// Starts every processor (and `chunk_workers` workers) with extra `settings`.
    pub fn start(
        bin: &Path,
        env: &TestEnv,
        chunk_workers: usize,
        settings: &[(&str, &str)],
    ) -> Result<Pipeline> {
        let log = std::fs::File::create(
            std::env::temp_dir().join(format!("{}pipeline.log", env.config.kafka.topic_prefix)),
        )?;
        let child = echoctl(bin, env, settings)
            .args(["run", "all", "--instance", "test", "--chunk-workers"])
            .arg(chunk_workers.to_string())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting echoctl run all")?;
        Ok(Pipeline { child })
    }

    /// Starts one processor (`upload`, `chunk-worker`, …) on its own, beside a pipeline
    /// started with fewer of it, under instance name `instance`.
    pub fn start_processor(
        bin: &Path,
        env: &TestEnv,
        processor: &str,
        instance: &str,
        settings: &[(&str, &str)],
    ) -> Result<Pipeline> {
        let log = std::fs::File::create(std::env::temp_dir().join(format!(
            "{}{processor}-{instance}.log",
            env.config.kafka.topic_prefix
        )))?;
        let child = echoctl(bin, env, settings)
            .args(["run", processor, "--instance", instance])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting echoctl run {processor}"))?;
        Ok(Pipeline { child })
    }
}

impl Pipeline {
    /// The most memory the pipeline process has held so far (its `VmHWM`, in KiB), so a test
    /// can tell a bounded hostile input from one that made it grow; `None` once it has exited.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
        line.trim().trim_end_matches("kB").trim().parse().ok()
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Runs `echoctl submit FILE --wait --json` and returns its JSON report.
pub fn submit(
    bin: &Path,
    env: &TestEnv,
    file: &Path,
    settings: &[(&str, &str)],
) -> Result<serde_json::Value> {
    submit_with(bin, env, file, &[], settings)
}

/// `echoctl submit FILE --wait --json` with extra submit `options`, not started: for a client
/// that runs beside the test.
pub fn submit_command(
    bin: &Path,
    env: &TestEnv,
    file: &Path,
    options: &[&str],
    settings: &[(&str, &str)],
) -> Command {
    let mut command = echoctl(bin, env, settings);
    command
        .args(["submit", "--wait", "--json", "--timeout-secs", "180"])
        .args(options)
        .arg(file);
    command
}

/// Runs `echoctl submit FILE --wait --json` with extra submit `options` (such as
/// `--resource-id ID`) and returns its JSON report.
pub fn submit_with(
    bin: &Path,
    env: &TestEnv,
    file: &Path,
    options: &[&str],
    settings: &[(&str, &str)],
) -> Result<serde_json::Value> {
    let output = submit_command(bin, env, file, options, settings)
        .output()
        .context("running echoctl submit")?;
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "submit printed no JSON (exit {:?}): {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Event types of a submit report, in order.
pub fn event_types(report: &serde_json::Value) -> Vec<String> {
    report["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| e["type"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Speaks `text` with flite into a WAV file in `dir`.
pub fn speak(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    let status = Command::new("flite")
        .args(["-voice", "slt", "-t", text, "-o"])
        .arg(&path)
        .status()
        .context("running flite")?;
    if !status.success() {
        bail!("flite failed");
    }
    Ok(path)
}

/// Speaks `text` in `language` (an espeak-ng voice: "de", "es", …) into a WAV file in `dir`:
/// speech in languages flite does not speak, for the multilingual model.
pub fn speak_in(dir: &Path, name: &str, language: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    let status = Command::new("espeak-ng")
        .args(["-v", language, "-w"])
        .arg(&path)
        .arg(text)
        .status()
        .context("running espeak-ng (scripts/stack/install.sh installs it)")?;
    if !status.success() {
        bail!("espeak-ng failed");
    }
    Ok(path)
}

/// One word of flite's speech and where flite put it, in ms from the start of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpokenWord {
    /// The word as written in the text, punctuation removed.
    pub text: String,
    /// Where its first phone starts.
    pub start_ms: u64,
    /// Where its last phone ends.
    pub end_ms: u64,
}

/// Speaks `text` like [`speak`] and says where each word lies: flite prints the end time of
/// every phone of the utterance (`-psdur`), and each word's phones, counted by speaking the
/// word alone, are matched to them in order. Fails when the counts do not add up (a word
/// pronounced differently in context), so a test never measures against misplaced words.
pub fn speak_with_word_times(
    dir: &Path,
    name: &str,
    text: &str,
) -> Result<(PathBuf, Vec<SpokenWord>)> {
    let path = dir.join(name);
    let flite = |args: &[&str]| -> Result<String> {
        let output = Command::new("flite")
            .args(["-voice", "slt"])
            .args(args)
            .output()
            .context("running flite")?;
        if !output.status.success() {
            bail!("flite failed");
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let out = path.to_string_lossy().into_owned();
    let phones: Vec<(String, f64)> = flite(&["-t", text, "-o", &out, "-psdur"])?
        .split_whitespace()
        .filter_map(|p| {
            let (phone, end) = p.rsplit_once(':')?;
            Some((phone.to_string(), end.parse().ok()?))
        })
        .collect();
    let mut words = Vec::new();
    let mut at = 0;
    let mut previous_end = 0.0;
    for word in text.split_whitespace() {
        let bare: String = word
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '\'')
            .collect();
        let count = flite(&["-t", &bare, "-o", "none", "-ps"])?
            .split_whitespace()
            .filter(|p| *p != "pau")
            .count();
        // Pauses flite put between words are nobody's.
        while phones.get(at).is_some_and(|(p, _)| p == "pau") {
            previous_end = phones[at].1;
            at += 1;
        }
        let Some(last) = phones.get(at + count - 1) else {
            bail!("flite's phones ran out at {word:?}");
        };
        if phones[at..at + count].iter().any(|(p, _)| p == "pau") {
            bail!("flite pronounced {word:?} differently in context");
        }
        words.push(SpokenWord {
            text: bare,
            start_ms: (previous_end * 1000.0).round() as u64,
            end_ms: (last.1 * 1000.0).round() as u64,
        });
        previous_end = last.1;
        at += count;
    }
    if phones[at..].iter().any(|(p, _)| p != "pau") {
        bail!("flite's phones do not add up to the words of {text:?}");
    }
    Ok((path, words))
}

/// Converts audio with sox (format from the extension of `to`); `effects` are sox effects.
pub fn convert(from: &Path, to: &Path, effects: &[&str]) -> Result<()> {
    let status = Command::new("sox")
        .arg(from)
        .arg(to)
        .args(effects)
        .status()
        .context("running sox")?;
    if !status.success() {
        bail!("sox failed converting to {}", to.display());
    }
    Ok(())
}

/// Word error rate of `hypothesis` against `reference`: word-level edit distance divided by
/// the reference length, after lowercasing and dropping punctuation.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let words = |s: &str| -> Vec<String> {
        s.split_whitespace()
            .map(|w| {
                w.chars()
                    .filter(|c| c.is_alphanumeric() || *c == '\'')
                    .collect::<String>()
                    .to_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect()
    };
    let (r, h) = (words(reference), words(hypothesis));
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let cost = usize::from(rw != hw);
            let next = (prev + cost).min(row[j] + 1).min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[h.len()] as f64 / r.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::word_error_rate;

    #[test]
    fn word_error_rate_counts_substitutions_insertions_and_deletions() {
        assert_eq!(word_error_rate("a b c d", "a b c d"), 0.0);
        assert_eq!(word_error_rate("a b c d", "A, b. c d!"), 0.0);
        assert_eq!(word_error_rate("a b c d", "a x c d"), 0.25);
        assert_eq!(word_error_rate("a b c d", "a b c d e"), 0.25);
        assert_eq!(word_error_rate("a b c d", "a c d"), 0.25);
    }
}
