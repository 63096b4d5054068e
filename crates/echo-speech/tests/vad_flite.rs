//! The speech detector on real speech: flite sentences with silences inserted by sox, fed in
//! blocks as a decoder hands them over.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;

use echo_speech::audio::decode_to_mono_16k;
use echo_speech::vad::{total_ms, Speech, SpeechDetector, VadSettings};
use echo_tests::pipeline::speak;

/// Runs sox with `args`, panicking with its stderr on failure.
fn sox(args: &[&str]) {
    let out = Command::new("sox")
        .args(args)
        .output()
        .expect("sox must be installed (apt install sox)");
    assert!(
        out.status.success(),
        "sox {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ms_of(samples: usize) -> u64 {
    samples as u64 * 1000 / 16_000
}

/// What the detector hears in `path`, fed in odd-sized blocks, and the file's length.
fn hear(path: &Path) -> (Speech, u64) {
    let samples = decode_to_mono_16k(path).unwrap();
    let mut detector = SpeechDetector::new(VadSettings::default());
    for block in samples.chunks(1_000) {
        detector.push(block);
    }
    (detector.finish(), ms_of(samples.len()))
}

/// The regions the detector finds in `path`, and the file's length.
fn detect(path: &Path) -> (Vec<Range<u64>>, u64) {
    let (speech, duration_ms) = hear(path);
    (speech.regions, duration_ms)
}

/// Milliseconds of `regions` inside `span`.
fn overlap_ms(regions: &[Range<u64>], span: &Range<u64>) -> u64 {
    regions
        .iter()
        .map(|r| r.end.min(span.end).saturating_sub(r.start.max(span.start)))
        .sum()
}

/// Two flite sentences: 2 s of silence, the first, 5 s, the second, 3 s.
fn speech_with_silences(dir: &Path) -> (PathBuf, Vec<Range<u64>>) {
    let first = speak(
        dir,
        "first.wav",
        "The morning train left the station a few minutes late.",
    )
    .unwrap();
    let second = speak(
        dir,
        "second.wav",
        "Children on the bank waved at the windows.",
    )
    .unwrap();
    let padded = dir.join("first-padded.wav");
    sox(&[
        first.to_str().unwrap(),
        padded.to_str().unwrap(),
        "pad",
        "2",
        "5",
    ]);
    let joined = dir.join("joined.wav");
    sox(&[
        padded.to_str().unwrap(),
        second.to_str().unwrap(),
        joined.to_str().unwrap(),
        "pad",
        "0",
        "3",
    ]);
    let first_ms = ms_of(decode_to_mono_16k(&first).unwrap().len());
    let second_ms = ms_of(decode_to_mono_16k(&second).unwrap().len());
    let second_at = 2_000 + first_ms + 5_000;
    let silences = vec![
        0..2_000,
        2_000 + first_ms..second_at,
        second_at + second_ms..second_at + second_ms + 3_000,
    ];
    (joined, silences)
}

#[test]
fn inserted_silences_are_not_speech_and_the_sentences_are() {
    let dir = tempfile::tempdir().unwrap();
    let (file, silences) = speech_with_silences(dir.path());
    let (regions, duration_ms) = detect(&file);
    let silence_ms: u64 = silences.iter().map(|s| s.end - s.start).sum();
    eprintln!("{duration_ms} ms, silences {silences:?}, speech regions {regions:?}");
    // Only the padding around speech may reach into an inserted silence.
    let pad = VadSettings::default().pad_ms;
    for silence in &silences {
        assert!(
            overlap_ms(&regions, silence) <= 2 * pad + 50,
            "speech heard in the silence {silence:?}: {regions:?}"
        );
    }
    // The sentences are heard: speech is what is left when the silences are taken out, give
    // or take flite's own short pauses and the padding.
    let speech_ms = total_ms(&regions);
    let expected = duration_ms - silence_ms;
    assert!(
        speech_ms.abs_diff(expected) <= expected / 5,
        "{speech_ms} ms of speech heard, {expected} ms spoken"
    );
    // No region spans an inserted silence: the two sentences are apart.
    let gap = &silences[1];
    assert!(regions
        .iter()
        .all(|r| r.end <= gap.start + pad + 50 || r.start + pad + 50 >= gap.end));
}

#[test]
fn silence_and_faint_hiss_hold_no_speech() {
    let dir = tempfile::tempdir().unwrap();
    let silence = dir.path().join("silence.wav");
    sox(&[
        "-n",
        "-r",
        "16000",
        "-b",
        "16",
        "-c",
        "1",
        silence.to_str().unwrap(),
        "trim",
        "0",
        "10",
    ]);
    assert_eq!(detect(&silence).0, Vec::<Range<u64>>::new());
    let hiss = dir.path().join("hiss.wav");
    sox(&[
        "-n",
        "-r",
        "16000",
        "-b",
        "16",
        "-c",
        "1",
        hiss.to_str().unwrap(),
        "synth",
        "10",
        "whitenoise",
        "vol",
        "0.01",
    ]);
    let (regions, _) = detect(&hiss);
    assert!(
        total_ms(&regions) < 500,
        "hiss heard as speech: {regions:?}"
    );
}

#[test]
fn a_reader_who_never_pauses_leaves_breaks_between_words() {
    // flite reads a paragraph without a pause as long as the detector's minimum: one region
    // longer than a whisper window, which can only be cut between words.
    let dir = tempfile::tempdir().unwrap();
    let text = "The committee met on Tuesday to review the budget for the coming year, and \
        after a long discussion about the cost of repairs to the old library building, the \
        members agreed that the roof should be replaced before the winter, that the heating \
        should be inspected by an engineer, and that the reading room should stay open in \
        the evenings for students who need a quiet place to work, while the question of new \
        computers was left for the next meeting in the spring, when the chair hopes that \
        the council will have approved the grant it asked for last autumn.";
    let file = speak(dir.path(), "paragraph.wav", text).unwrap();
    let (speech, duration_ms) = hear(&file);
    eprintln!("{duration_ms} ms: {speech:?}");
    let longest = speech
        .regions
        .iter()
        .map(|r| r.end - r.start)
        .max()
        .unwrap();
    assert!(longest > 25_000, "flite paused: {:?}", speech.regions);
    // Every break lies inside a region, and they come often enough to cut a window anywhere
    // (the planner looks for one in the second half of each window: 14 s).
    for b in &speech.breaks {
        assert!(b.end - b.start >= VadSettings::default().min_break_ms);
        assert!(
            speech
                .regions
                .iter()
                .any(|r| r.start <= b.start && b.end <= r.end),
            "{b:?}"
        );
    }
    let mut at = speech.regions[0].start;
    for b in &speech.breaks {
        assert!(
            b.start - at < 5_000,
            "no break between {at} and {} ms",
            b.start
        );
        at = b.end;
    }
}
