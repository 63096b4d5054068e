//! Hostile headers and the streaming scan: a stream whose header states parameters outside
//! the limits is refused when opened, before anything is sized from them; `scan` proves a file
//! decodes and measures it without keeping samples, stopping at its limit.

use std::path::{Path, PathBuf};

use echo_speech::audio::{
    decode_range, decode_to_mono_16k, probe, scan, AudioError, Limit, ScanReport,
    TARGET_SAMPLE_RATE,
};

/// A 16-bit PCM WAV file in `dir` whose header states `rate` Hz, `channels` channels and
/// `stated_frames` frames of data, followed by `present_frames` frames of a quiet square wave.
fn pcm_wav(
    dir: &Path,
    name: &str,
    rate: u32,
    channels: u16,
    stated_frames: u32,
    present_frames: u32,
) -> PathBuf {
    let frame = 2 * u32::from(channels);
    let wav = echo_tests::wav::pcm_wav(
        rate,
        channels,
        stated_frames.saturating_mul(frame),
        (present_frames * frame) as usize,
    );
    let path = dir.join(name);
    std::fs::write(&path, wav).unwrap();
    path
}

/// Asserts that every way of opening `path` refuses it for breaking `limit`.
fn refused_everywhere(path: &Path, limit: Limit) {
    let out_of = |r: Result<(), AudioError>| match r {
        Err(AudioError::OutOfLimits { limit: l, .. }) => assert_eq!(l, limit),
        other => panic!("expected {limit:?}, got {other:?}"),
    };
    out_of(probe(path).map(drop));
    out_of(decode_to_mono_16k(path).map(drop));
    out_of(decode_range(path, 0..1_000, None).map(drop));
    out_of(scan(path, 60_000, None, None).map(drop));
}

#[test]
fn a_sample_rate_of_two_billion_hz_is_refused_before_anything_is_sized_from_it() {
    let dir = tempfile::tempdir().unwrap();
    // 32 KB, as the file that took a process to 23 GB.
    let wav = pcm_wav(
        dir.path(),
        "huge-rate.wav",
        i32::MAX as u32,
        1,
        16_000,
        16_000,
    );
    assert!(std::fs::metadata(&wav).unwrap().len() < 33_000);
    refused_everywhere(&wav, Limit::SampleRate(i32::MAX as u32));
    let message = probe(&wav).unwrap_err().to_string();
    assert!(
        message.contains("sample rate 2147483647 Hz is outside"),
        "{message}"
    );
}

#[test]
fn rates_outside_8_to_192_khz_are_refused_and_the_bounds_accepted() {
    let dir = tempfile::tempdir().unwrap();
    for rate in [7_999, 192_001, 1] {
        let wav = pcm_wav(dir.path(), &format!("{rate}.wav"), rate, 1, 8_000, 8_000);
        refused_everywhere(&wav, Limit::SampleRate(rate));
    }
    for rate in [8_000, 192_000] {
        let wav = pcm_wav(dir.path(), &format!("{rate}.wav"), rate, 1, rate, rate);
        let samples = decode_to_mono_16k(&wav).unwrap();
        assert_eq!(samples.len(), TARGET_SAMPLE_RATE as usize, "{rate} Hz, 1 s");
    }
}

#[test]
fn more_than_eight_channels_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // WAV's own limit is 26 channels (symphonia refuses more while reading the header).
    let wav = pcm_wav(dir.path(), "16ch.wav", 16_000, 16, 1_600, 1_600);
    refused_everywhere(&wav, Limit::Channels(16));
    let sixty_four = pcm_wav(dir.path(), "64ch.wav", 16_000, 64, 1_600, 1_600);
    let message = probe(&sixty_four).unwrap_err().to_string();
    assert!(message.contains("invalid channel count"), "{message}");
    let eight = pcm_wav(dir.path(), "8ch.wav", 16_000, 8, 1_600, 1_600);
    assert_eq!(probe(&eight).unwrap().channels, 8);
}

#[test]
fn scan_measures_the_audio_without_keeping_it_and_stops_past_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let wav = pcm_wav(dir.path(), "3s.wav", 44_100, 2, 3 * 44_100, 3 * 44_100);
    assert_eq!(
        scan(&wav, 60_000, None, None).unwrap(),
        ScanReport {
            decoded_ms: 3_000,
            over_limit: false,
            clock_ms: Some(3_000),
        }
    );
    let stopped = scan(&wav, 1_000, None, None).unwrap();
    assert!(stopped.over_limit, "{stopped:?}");
    // Stopped within a packet of the limit, not at the end of the file.
    assert!((1_001..1_200).contains(&stopped.decoded_ms), "{stopped:?}");
}

#[test]
fn a_data_chunk_claiming_more_frames_than_present_decodes_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    // The header states 100,000 s; 2 s are present.
    let wav = pcm_wav(dir.path(), "liar.wav", 16_000, 1, 1_600_000_000, 32_000);
    let stated = probe(&wav).unwrap().duration.unwrap();
    assert_eq!(stated.as_secs(), 100_000);
    assert_eq!(
        scan(&wav, 10_800_000, None, None).unwrap().decoded_ms,
        2_000
    );
    assert_eq!(decode_range(&wav, 0..u64::MAX, None).unwrap().len(), 32_000);
}

#[test]
fn a_range_decodes_to_at_most_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let wav = pcm_wav(dir.path(), "5s.wav", 22_050, 1, 5 * 22_050, 5 * 22_050);
    let middle = decode_range(&wav, 1_000..2_000, None).unwrap();
    assert_eq!(middle.len(), TARGET_SAMPLE_RATE as usize);
}

#[test]
fn a_container_clock_that_lies_cannot_make_a_range_keep_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let honest = dir.path().join("honest.mkv");
    std::fs::write(&honest, echo_tests::mkv::pcm_mkv(120, 1_000_000)).unwrap();
    assert_eq!(
        decode_range(&honest, 60_000..61_000, None).unwrap().len(),
        16_000
    );
    // Two minutes of audio whose clock runs a hundred times slow: by its timestamps, 1.2 s.
    let liar = dir.path().join("liar.mkv");
    std::fs::write(&liar, echo_tests::mkv::pcm_mkv(120, 10_000)).unwrap();
    // The scan counts what decodes, whatever the clock says, and reports where the clock
    // ended: the last block stamped at 1.19 s, plus the second it holds.
    let scanned = scan(&liar, 10_800_000, None, None).unwrap();
    assert_eq!(
        (scanned.decoded_ms, scanned.clock_ms),
        (120_000, Some(2_190))
    );
    let scanned = scan(&honest, 10_800_000, None, None).unwrap();
    assert_eq!(
        (scanned.decoded_ms, scanned.clock_ms),
        (120_000, Some(120_000))
    );
    // A chunk's range is positioned by the samples decoded, not by the lying clock: the
    // first two seconds keep two seconds, not the whole file.
    let first = decode_range(&liar, 0..2_000, None).unwrap();
    assert_eq!(
        first.len(),
        2 * TARGET_SAMPLE_RATE as usize,
        "the first two seconds kept {} s",
        first.len() / TARGET_SAMPLE_RATE as usize
    );
}

#[test]
fn a_scan_stops_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let wav = pcm_wav(dir.path(), "60s.wav", 16_000, 1, 60 * 16_000, 60 * 16_000);
    let soon = std::time::Instant::now() + std::time::Duration::from_millis(1);
    // Every packet handed on waits, as a file slow to read would make it.
    let mut slow = |_: &[f32]| std::thread::sleep(std::time::Duration::from_millis(5));
    match scan(&wav, 10_800_000, Some(soon), Some(&mut slow)) {
        Err(AudioError::PastDeadline { decoded_ms, .. }) => {
            assert!(decoded_ms < 60_000, "stopped after {decoded_ms} ms")
        }
        other => panic!("expected to stop at the deadline, got {other:?}"),
    }
    // With time to spare, the same scan ends.
    let later = std::time::Instant::now() + std::time::Duration::from_secs(60);
    assert_eq!(
        scan(&wav, 10_800_000, Some(later), None)
            .unwrap()
            .decoded_ms,
        60_000
    );
}

/// An MP4 whose time table has an entry per packet costs symphonia a walk of the table for
/// every packet (quadratic: a file of minutes takes hours); it is refused when opened, from
/// its box headers, while the same audio with the table as encoders write it decodes.
#[test]
fn an_mp4_whose_time_table_would_take_hours_to_read_is_refused_when_opened() {
    use echo_speech::mp4_tables::{measure, TableSize};
    use echo_tests::mp4::{pcm_mp4, TimeTable};
    let dir = tempfile::tempdir().unwrap();
    let compact = dir.path().join("compact.m4a");
    std::fs::write(&compact, pcm_mp4(10, TimeTable::Compact)).unwrap();
    let counted = |path: &Path| {
        let size: TableSize = measure(path).unwrap();
        (size.packets, size.time_entries)
    };
    assert_eq!(counted(&compact), (80_000, 1));
    assert_eq!(
        scan(&compact, 60_000, None, None).unwrap().decoded_ms,
        10_000
    );
    assert_eq!(
        decode_range(&compact, 4_000..5_000, None).unwrap().len(),
        TARGET_SAMPLE_RATE as usize
    );

    // The same ten seconds, the table an entry per packet: 80,000 × 80,000 steps to read.
    let quadratic = dir.path().join("quadratic.m4a");
    std::fs::write(&quadratic, pcm_mp4(10, TimeTable::EntryPerPacket)).unwrap();
    assert_eq!(counted(&quadratic), (80_000, 80_000));
    refused_everywhere(&quadratic, Limit::TimeTables(measure(&quadratic).unwrap()));
    let message = probe(&quadratic).unwrap_err().to_string();
    assert!(
        message.contains("80000 entries for 80000 packets"),
        "{message}"
    );

    // A size table that states one sample of a fixed size does not hide the packets: symphonia
    // reads as many as the time table lists.
    let understated = dir.path().join("understated.m4a");
    std::fs::write(&understated, pcm_mp4(10, TimeTable::EntryPerPacketOneSized)).unwrap();
    assert_eq!(counted(&understated), (80_000, 80_000));
    refused_everywhere(
        &understated,
        Limit::TimeTables(measure(&understated).unwrap()),
    );
}
