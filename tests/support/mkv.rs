//! Matroska files made element by element, for tests whose container must lie about time
//! (a clock that runs a hundred times slow), which no muxer writes.

/// One second per block, a block per cluster: timestamps in whole seconds of the file's clock.
const BLOCK_SECONDS: u64 = 1;

/// A Matroska file of `seconds` seconds of 16 kHz mono 16-bit PCM (a quiet tone) whose clock
/// ticks `timestamp_scale_ns` nanoseconds: 1,000,000 is the honest millisecond; 10,000 makes
/// every timestamp and the stated duration a hundredth of the truth, while every second of
/// audio is still there.
pub fn pcm_mkv(seconds: u64, timestamp_scale_ns: u64) -> Vec<u8> {
    const RATE: u64 = 16_000;
    let ms_per_block = BLOCK_SECONDS * 1_000;
    let info = [
        element(&[0x2A, 0xD7, 0xB1], &uint(timestamp_scale_ns)),
        // Duration, in ticks of the clock: the true length in ms, read in the lying unit.
        element(&[0x44, 0x89], &((seconds * 1_000) as f64).to_be_bytes()),
        element(&[0x4D, 0x80], b"echo tests"),
        element(&[0x57, 0x41], b"echo tests"),
    ]
    .concat();
    let audio = [
        element(&[0xB5], &(RATE as f64).to_be_bytes()),
        element(&[0x9F], &uint(1)),
        element(&[0x62, 0x64], &uint(16)),
    ]
    .concat();
    let track = [
        element(&[0xD7], &uint(1)),
        element(&[0x73, 0xC5], &uint(1)),
        element(&[0x83], &uint(2)),
        element(&[0x86], b"A_PCM/INT/LIT"),
        element(&[0xE1], &audio),
    ]
    .concat();
    let mut segment = [
        element(&[0x15, 0x49, 0xA9, 0x66], &info),
        element(&[0x16, 0x54, 0xAE, 0x6B], &element(&[0xAE], &track)),
    ]
    .concat();
    let samples: Vec<u8> = (0..RATE * BLOCK_SECONDS)
        .flat_map(|i| {
            let tone = if (i / 20) % 2 == 0 { 3_000i16 } else { -3_000 };
            tone.to_le_bytes()
        })
        .collect();
    for block in 0..seconds / BLOCK_SECONDS {
        // Track 1, timestamp 0 relative to the cluster, a keyframe.
        let simple_block = [&[0x81, 0x00, 0x00, 0x80][..], &samples].concat();
        let cluster = [
            element(&[0xE7], &uint(block * ms_per_block)),
            element(&[0xA3], &simple_block),
        ]
        .concat();
        segment.extend(element(&[0x1F, 0x43, 0xB6, 0x75], &cluster));
    }
    let header = [
        element(&[0x42, 0x86], &uint(1)),
        element(&[0x42, 0xF7], &uint(1)),
        element(&[0x42, 0xF2], &uint(4)),
        element(&[0x42, 0xF3], &uint(8)),
        element(&[0x42, 0x82], b"matroska"),
        element(&[0x42, 0x87], &uint(4)),
        element(&[0x42, 0x85], &uint(2)),
    ]
    .concat();
    [
        element(&[0x1A, 0x45, 0xDF, 0xA3], &header),
        element(&[0x18, 0x53, 0x80, 0x67], &segment),
    ]
    .concat()
}

/// An EBML element: its id, its size as an eight-byte variable-length integer, its data.
fn element(id: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = id.to_vec();
    out.push(0x01);
    out.extend(&(data.len() as u64).to_be_bytes()[1..]);
    out.extend(data);
    out
}

/// An unsigned integer element's data, big-endian in eight bytes.
fn uint(value: u64) -> Vec<u8> {
    value.to_be_bytes().to_vec()
}
