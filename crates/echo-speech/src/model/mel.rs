//! Mel filterbank written into the ggml header.
//!
//! whisper.cpp computes its log-mel spectrogram with the filters stored in the
//! model file. The reference converter copies them from openai/whisper's
//! `mel_filters.npz`, which was produced by
//! `librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)` (Slaney mel scale,
//! Slaney area normalisation). This module reproduces librosa's arithmetic step
//! by step (f64 throughout, weights stored as f32 before the normalisation as
//! librosa does). Transcendental functions come from the pure-Rust `libm`
//! crate, not the platform's libm, so the bytes are identical on every
//! machine.

/// Sample rate whisper expects.
const SAMPLE_RATE: f64 = 16_000.0;
/// FFT size whisper uses (25 ms window).
pub(crate) const N_FFT: usize = 400;
/// Number of FFT bins (`1 + n_fft / 2`).
pub(crate) const N_BINS: usize = N_FFT / 2 + 1;

// Slaney mel scale constants (librosa `hz_to_mel`/`mel_to_hz`, htk=False).
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn logstep() -> f64 {
    libm::log(6.4) / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + libm::log(hz / MIN_LOG_HZ) / logstep()
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * libm::exp(logstep() * (mel - MIN_LOG_MEL))
    } else {
        F_SP * mel
    }
}

/// Returns the `n_mels × 201` filterbank, row-major.
pub(crate) fn filters(n_mels: usize) -> Vec<f32> {
    // np.fft.rfftfreq(n=400, d=1/sr)
    let d = 1.0 / SAMPLE_RATE;
    let val = 1.0 / (N_FFT as f64 * d);
    let fftfreqs: Vec<f64> = (0..N_BINS).map(|k| k as f64 * val).collect();

    // mel_frequencies(n_mels + 2, fmin=0, fmax=sr/2): np.linspace in mel, then to Hz.
    let n_pts = n_mels + 2;
    let max_mel = hz_to_mel(SAMPLE_RATE / 2.0);
    let step = max_mel / (n_pts - 1) as f64;
    let mel_f: Vec<f64> = (0..n_pts)
        .map(|i| {
            let mel = if i == n_pts - 1 {
                max_mel
            } else {
                i as f64 * step
            };
            mel_to_hz(mel)
        })
        .collect();

    let mut out = vec![0f32; n_mels * N_BINS];
    for i in 0..n_mels {
        let fdiff_lo = mel_f[i + 1] - mel_f[i];
        let fdiff_hi = mel_f[i + 2] - mel_f[i + 1];
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for (k, &f) in fftfreqs.iter().enumerate() {
            let lower = -(mel_f[i] - f) / fdiff_lo;
            let upper = (mel_f[i + 2] - f) / fdiff_hi;
            // np.maximum(0, np.minimum(lower, upper)) with numpy's exact
            // semantics; f64::min/max leave the sign of a zero result
            // unspecified, which would make the bytes build-dependent.
            let tri = if lower <= upper { lower } else { upper };
            let w = if 0.0 >= tri { 0.0 } else { tri as f32 };
            out[i * N_BINS + k] = (f64::from(w) * enorm) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filterbank_shape_and_shape_of_triangles() {
        let f = filters(80);
        assert_eq!(f.len(), 80 * N_BINS);
        // Every filter has some weight; DC never contributes after the first.
        for i in 0..80 {
            let row = &f[i * N_BINS..(i + 1) * N_BINS];
            assert!(row.iter().any(|&w| w > 0.0), "empty filter {i}");
            assert!(row.iter().all(|&w| w >= 0.0));
        }
        // Known value of librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)[0, 1].
        assert!((f[1] - 0.024_862_595).abs() < 1e-7, "got {}", f[1]);
        // Zeros are +0.0, as numpy writes them (the sign would change the bytes).
        assert_eq!(f[0].to_bits(), 0);
    }
}
