//! Decoding real files made by sox/flite: formats, channels, rates, ranges,
//! and clear errors for garbage.

use std::path::{Path, PathBuf};
use std::process::Command;

use echo_speech::audio::{decode_range, decode_to_mono_16k, probe, AudioError};

/// Long enough that MP3's encoder delay and padding (~50 ms, which sox's
/// LAME output does not describe for gapless trimming) stay well inside 1%.
const SECONDS: f64 = 10.0;
const SINE_HZ: f64 = 440.0;

/// Runs sox with `args`, panicking with its stderr on failure.
fn sox(args: &[&str]) {
    let out = Command::new("sox")
        .args(args)
        .output()
        .expect("sox must be installed (apt install sox libsox-fmt-all)");
    assert!(
        out.status.success(),
        "sox {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 440 Hz, half-scale sine of [`SECONDS`] as 44.1 kHz stereo 16-bit in the
/// format of `ext`.
fn sine_file(dir: &Path, ext: &str) -> PathBuf {
    let path = dir.join(format!("sine.{ext}"));
    let secs = SECONDS.to_string();
    let freq = SINE_HZ.to_string();
    let mut args = vec!["-n"];
    if matches!(ext, "wav" | "flac") {
        args.extend(["-b", "16"]); // lossy codecs choose their own precision
    }
    args.extend(["-r", "44100", "-c", "2", path.to_str().unwrap()]);
    args.extend(["synth", &secs, "sine", &freq, "vol", "0.5"]);
    sox(&args);
    path
}

fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= expected * tolerance,
        "{what}: {actual} not within {}% of {expected}",
        tolerance * 100.0
    );
}

/// Checks that samples are the 440 Hz half-scale sine at 16 kHz: right
/// length, loudness and pitch (so rate conversion and downmix are right).
fn assert_is_sine(samples: &[f32], seconds: f64, what: &str) {
    assert_close(samples.len() as f64, seconds * 16_000.0, 0.01, what);
    // Skip the edges, where codecs fade in/out.
    let body = &samples[1_600..samples.len() - 1_600];
    let rms = (body.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / body.len() as f64).sqrt();
    assert_close(rms, 0.5 / 2f64.sqrt(), 0.1, &format!("{what} rms"));
    let crossings = body
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count() as f64;
    let body_secs = body.len() as f64 / 16_000.0;
    assert_close(
        crossings / body_secs / 2.0,
        SINE_HZ,
        0.01,
        &format!("{what} pitch"),
    );
}

#[test]
fn stereo_44k1_files_decode_to_16k_mono_of_the_right_length() {
    let tmp = tempfile::tempdir().unwrap();
    for (ext, container, codec) in [
        ("wav", "wave", "pcm_s16le"),
        ("flac", "flac", "flac"),
        ("ogg", "ogg", "vorbis"),
        ("mp3", "mp3", "mp3"),
    ] {
        let path = sine_file(tmp.path(), ext);

        let info = probe(&path).unwrap_or_else(|e| panic!("probe {ext}: {e}"));
        assert_eq!(info.container, container, "{info:?}");
        assert_eq!(info.codec, codec, "{info:?}");
        assert_eq!(info.channels, 2, "{info:?}");
        assert_eq!(info.sample_rate, 44_100, "{info:?}");
        let duration = info.duration.expect("duration known").as_secs_f64();
        assert_close(duration, SECONDS, 0.01, &format!("{ext} probed duration"));

        let samples = decode_to_mono_16k(&path).unwrap_or_else(|e| panic!("decode {ext}: {e}"));
        assert_is_sine(&samples, SECONDS, ext);
    }
}

#[test]
fn ranges_decode_only_the_requested_span() {
    let tmp = tempfile::tempdir().unwrap();
    for ext in ["wav", "flac", "ogg", "mp3"] {
        let path = sine_file(tmp.path(), ext);
        let middle =
            decode_range(&path, 1_000..2_500, None).unwrap_or_else(|e| panic!("{ext}: {e}"));
        assert_is_sine(&middle, 1.5, &format!("{ext} 1000..2500 ms"));

        // Seeking lands on the right samples: the range matches the same span
        // of a full decode (away from the edges, where resampling differs).
        let full = decode_to_mono_16k(&path).unwrap();
        let max_diff = (400..middle.len() - 400)
            .map(|i| (middle[i] - full[16_000 + i]).abs())
            .fold(0f32, f32::max);
        assert!(
            max_diff < 0.01,
            "{ext}: range differs from full decode by {max_diff}"
        );

        // The end is clamped to the end of the file.
        let tail =
            decode_range(&path, 2_000..60_000, None).unwrap_or_else(|e| panic!("{ext}: {e}"));
        assert_is_sine(&tail, SECONDS - 2.0, &format!("{ext} tail"));

        let beyond =
            decode_range(&path, 20_000..21_000, None).unwrap_or_else(|e| panic!("{ext}: {e}"));
        assert!(
            beyond.len() < 160,
            "{ext}: {} samples past the end",
            beyond.len()
        );
    }
}

#[test]
fn flite_speech_wav_at_16k_passes_through_unchanged_in_length() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("speech.wav");
    let status = Command::new("flite")
        .args(["-voice", "slt", "-t", "Testing one two three.", "-o"])
        .arg(&wav)
        .status()
        .expect("flite must be installed");
    assert!(status.success());

    let info = probe(&wav).unwrap();
    assert_eq!((info.channels, info.sample_rate), (1, 16_000), "{info:?}");
    let samples = decode_to_mono_16k(&wav).unwrap();
    assert_eq!(Some(samples.len() as u64), info.frames);

    // Same speech as 44.1 kHz stereo FLAC: same length after decoding.
    let flac = tmp.path().join("speech.flac");
    sox(&[
        wav.to_str().unwrap(),
        "-r",
        "44100",
        "-c",
        "2",
        flac.to_str().unwrap(),
    ]);
    let resampled = decode_to_mono_16k(&flac).unwrap();
    assert!(
        resampled.len().abs_diff(samples.len()) <= 1,
        "{} vs {}",
        resampled.len(),
        samples.len()
    );
}

/// Deterministic pseudo-random bytes (xorshift), no rand dependency needed.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn random_bytes_are_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        "noise.bin",
        "noise.wav",
        "noise.flac",
        "noise.ogg",
        "noise.mp3",
    ] {
        let path = tmp.path().join(name);
        std::fs::write(&path, noise(256 * 1024)).unwrap();

        let err = decode_to_mono_16k(&path).expect_err(name);
        assert!(
            matches!(
                err,
                AudioError::UnsupportedFormat { .. } | AudioError::Corrupt { .. }
            ),
            "{name}: {err:?}"
        );
        assert!(
            err.to_string().contains(name),
            "{name}: message lacks path: {err}"
        );
        assert!(probe(&path).is_err() || matches!(err, AudioError::Corrupt { .. }));
    }
}

#[test]
fn missing_file_and_bad_range_are_typed_errors() {
    let missing = Path::new("/nonexistent/audio.wav");
    assert!(matches!(
        decode_to_mono_16k(missing),
        Err(AudioError::Io { .. })
    ));
    assert!(matches!(probe(missing), Err(AudioError::Io { .. })));
    #[allow(clippy::reversed_empty_ranges)] // the point of the check
    let reversed = 2_000..1_000;
    assert!(matches!(
        decode_range(missing, reversed, None),
        Err(AudioError::InvalidRange { .. })
    ));
    assert!(matches!(
        decode_range(missing, 1_000..1_000, None),
        Err(AudioError::InvalidRange { .. })
    ));
}

/// One channel of a two-channel recording decodes on its own: the sine on the left, silence
/// on the right (a call with one speaker per channel); all channels averaged halve the sine.
#[test]
fn one_channel_decodes_without_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let left = tmp.path().join("left.wav");
    let right = tmp.path().join("right.wav");
    let both = tmp.path().join("both.wav");
    let secs = SECONDS.to_string();
    let freq = SINE_HZ.to_string();
    let mono = |path: &Path, effect: &[&str]| {
        let mut args = vec![
            "-n",
            "-b",
            "16",
            "-r",
            "16000",
            "-c",
            "1",
            path.to_str().unwrap(),
        ];
        args.extend_from_slice(effect);
        sox(&args);
    };
    mono(&left, &["synth", &secs, "sine", &freq, "vol", "0.5"]);
    mono(&right, &["trim", "0", &secs]);
    sox(&[
        "-M",
        left.to_str().unwrap(),
        right.to_str().unwrap(),
        both.to_str().unwrap(),
    ]);
    let range = 0..(SECONDS as u64 * 1_000);
    let first = decode_range(&both, range.clone(), Some(0)).unwrap();
    assert_is_sine(&first, SECONDS, "left channel");
    let second = decode_range(&both, range.clone(), Some(1)).unwrap();
    assert!(
        second.iter().all(|s| s.abs() < 1e-3),
        "the right channel is silent"
    );
    let mixed = decode_range(&both, range.clone(), None).unwrap();
    let peak = mixed.iter().fold(0f32, |m, s| m.max(s.abs()));
    assert!((0.2..0.3).contains(&peak), "mixed peak {peak}");
    assert!(matches!(
        decode_range(&both, range, Some(2)),
        Err(AudioError::NoSuchChannel {
            channel: 2,
            channels: 2
        })
    ));
}
