//! WAV files made byte by byte, for tests whose header must say what no encoder would write
//! (a rate of two billion Hz, 64 channels, 4 GB of data that are not there).

/// A 16-bit PCM WAV whose header states `rate` Hz, `channels` channels and `data_bytes` bytes
/// of samples, followed by `present_bytes` bytes of a quiet square wave (whatever the header
/// says).
pub fn pcm_wav(rate: u32, channels: u16, data_bytes: u32, present_bytes: usize) -> Vec<u8> {
    let block_align = 2 * channels;
    let mut wav = Vec::new();
    wav.extend(b"RIFF");
    wav.extend(36u32.saturating_add(data_bytes).to_le_bytes());
    wav.extend(b"WAVEfmt ");
    wav.extend(16u32.to_le_bytes());
    wav.extend(1u16.to_le_bytes()); // PCM
    wav.extend(channels.to_le_bytes());
    wav.extend(rate.to_le_bytes());
    wav.extend(rate.wrapping_mul(u32::from(block_align)).to_le_bytes()); // bytes per second
    wav.extend(block_align.to_le_bytes());
    wav.extend(16u16.to_le_bytes()); // bits per sample
    wav.extend(b"data");
    wav.extend(data_bytes.to_le_bytes());
    wav.extend((0..present_bytes / 2).flat_map(|i| {
        let sample: i16 = if (i / 40) % 2 == 0 { 3_000 } else { -3_000 };
        sample.to_le_bytes()
    }));
    wav
}
