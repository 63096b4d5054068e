//! ggml's block quantization of weight matrices, bit for bit as whisper.cpp's `quantize` tool.
//!
//! Ports of ggml's reference quantizers `quantize_row_q8_0_ref`, `quantize_row_q5_0_ref` and
//! `quantize_row_q5_1_ref` (`ggml/src/ggml-quants.c`, whisper.cpp 1.8.3), the ones the tool
//! uses (it passes no importance matrix), with scales rounded to half precision by a port of
//! `ggml_compute_fp32_to_fp16`. A block holds 32 consecutive weights of a row (rows are whole
//! blocks), little endian (`ggml/src/ggml-common.h`):
//!
//! ```text
//! q8_0  f16 d, i8 q[32]                 w ≈ d·q,        d = amax / 127
//! q5_0  f16 d, u32 qh, u8 qs[16]        w ≈ d·(q − 16), d = max / −16 (max: largest |w|)
//! q5_1  f16 d, f16 m, u32 qh, u8 qs[16] w ≈ d·q + m,    d = (max − min) / 31, m = min
//! ```
//!
//! For 5-bit quants, `qs[j]` holds the low nibbles of weights `j` (low) and `j + 16` (high),
//! and bit `i` of `qh` the fifth bit of weight `i`. The arithmetic is single precision,
//! in ggml's order of operations, so rounding matches too.

/// Weights per block, in every format here.
pub(crate) const BLOCK_LEN: usize = 32;

/// A ggml block format whisper.cpp can compute with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockFormat {
    /// 8-bit quants and one scale: 34 bytes a block, the closest to f16.
    Q8_0,
    /// 5-bit quants symmetric around zero: 22 bytes a block.
    Q5_0,
    /// 5-bit quants with a scale and a minimum: 24 bytes a block.
    Q5_1,
}

impl BlockFormat {
    /// Bytes of one block of [`BLOCK_LEN`] weights.
    pub(crate) const fn block_bytes(self) -> usize {
        match self {
            BlockFormat::Q8_0 => 2 + BLOCK_LEN,
            BlockFormat::Q5_0 => 2 + 4 + BLOCK_LEN / 2,
            BlockFormat::Q5_1 => 2 + 2 + 4 + BLOCK_LEN / 2,
        }
    }

    /// Appends the blocks of `weights` to `out`. `weights.len()` must be a multiple of
    /// [`BLOCK_LEN`] (the caller checks the row length).
    pub(crate) fn quantize(self, weights: &[f32], out: &mut Vec<u8>) {
        assert!(
            weights.len().is_multiple_of(BLOCK_LEN),
            "{} weights are not whole blocks",
            weights.len()
        );
        out.reserve(weights.len() / BLOCK_LEN * self.block_bytes());
        for block in weights.chunks_exact(BLOCK_LEN) {
            match self {
                BlockFormat::Q8_0 => q8_0(block, out),
                BlockFormat::Q5_0 => q5_0(block, out),
                BlockFormat::Q5_1 => q5_1(block, out),
            }
        }
    }
}

/// `quantize_row_q8_0_ref` for one block.
fn q8_0(x: &[f32], out: &mut Vec<u8>) {
    // MAX(amax, |v|) as ggml writes it: `amax > |v| ? amax : |v|`.
    let amax = x.iter().fold(
        0.0f32,
        |amax, v| if amax > v.abs() { amax } else { v.abs() },
    );
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f32_to_f16(d).to_le_bytes());
    // roundf: halves away from zero, as f32::round.
    out.extend(x.iter().map(|v| (v * id).round() as i8 as u8));
}

/// `quantize_row_q5_0_ref` for one block.
fn q5_0(x: &[f32], out: &mut Vec<u8>) {
    // The first weight of the largest magnitude gives the scale, sign included.
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f32_to_f16(d).to_le_bytes());
    // (int8_t) truncates towards zero; a weight of magnitude |max| but the other sign would
    // be 32 and is clamped to 31.
    push_5_bit(x.iter().map(|v| ((v * id + 16.5) as i8).min(31) as u8), out);
}

/// `quantize_row_q5_1_ref` for one block.
fn q5_1(x: &[f32], out: &mut Vec<u8>) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f32_to_f16(d).to_le_bytes());
    out.extend_from_slice(&f32_to_f16(min).to_le_bytes());
    push_5_bit(x.iter().map(|v| ((v - min) * id + 0.5) as u8), out);
}

/// Appends 32 five-bit quants as `u32 qh, u8 qs[16]`.
fn push_5_bit(quants: impl Iterator<Item = u8>, out: &mut Vec<u8>) {
    let mut qh = 0u32;
    let mut qs = [0u8; BLOCK_LEN / 2];
    for (i, q) in quants.enumerate() {
        qs[i % 16] |= (q & 0x0f) << (4 * (i / 16));
        qh |= u32::from((q & 0x10) >> 4) << i;
    }
    out.extend_from_slice(&qh.to_le_bytes());
    out.extend_from_slice(&qs);
}

/// Single to half precision, rounding to nearest even: ggml's `ggml_compute_fp32_to_fp16`
/// (from Maratyszcza's FP16), which whisper.cpp stores every block scale with.
pub(crate) fn f32_to_f16(f: f32) -> u16 {
    let scale_to_inf = f32::from_bits(0x7780_0000); // 2^112
    let scale_to_zero = f32::from_bits(0x0880_0000); // 2^-110
    let mut base = (f.abs() * scale_to_inf) * scale_to_zero;

    let w = f.to_bits();
    let shl1_w = w.wrapping_add(w);
    let sign = w & 0x8000_0000;
    let bias = (shl1_w & 0xff00_0000).max(0x7100_0000);

    base += f32::from_bits((bias >> 1) + 0x0780_0000);
    let bits = base.to_bits();
    let exp_bits = (bits >> 13) & 0x0000_7c00;
    let mantissa_bits = bits & 0x0000_0fff;
    let nonsign = exp_bits + mantissa_bits;
    let half = (sign >> 16)
        | if shl1_w > 0xff00_0000 {
            0x7e00
        } else {
            nonsign
        };
    half as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ct2::f16_to_f32;

    /// ggml's `dequantize_row_*` for the blocks of `bytes`.
    fn dequantize(format: BlockFormat, bytes: &[u8]) -> Vec<f32> {
        let half = |b: &[u8], at: usize| f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]));
        let five_bit = |b: &[u8], i: usize| {
            let qh = u32::from_le_bytes(b[0..4].try_into().unwrap());
            let nibble = (b[4 + i % 16] >> (4 * (i / 16))) & 0x0f;
            f32::from(nibble | (((qh >> i) & 1) as u8) << 4)
        };
        let mut out = Vec::new();
        for b in bytes.chunks_exact(format.block_bytes()) {
            let d = half(b, 0);
            out.extend((0..BLOCK_LEN).map(|i| match format {
                BlockFormat::Q8_0 => d * f32::from(b[2 + i] as i8),
                BlockFormat::Q5_0 => (five_bit(&b[2..], i) - 16.0) * d,
                BlockFormat::Q5_1 => five_bit(&b[4..], i) * d + half(b, 2),
            }));
        }
        out
    }

    fn block(set: &[(usize, f32)]) -> Vec<f32> {
        let mut x = vec![0.0; BLOCK_LEN];
        for &(i, v) in set {
            x[i] = v;
        }
        x
    }

    fn quantized(format: BlockFormat, x: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        format.quantize(x, &mut out);
        out
    }

    #[test]
    fn half_precision_rounds_to_nearest_even() {
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f32_to_f16(-2.0), 0xc000);
        assert_eq!(f32_to_f16(0.0), 0x0000);
        assert_eq!(f32_to_f16(-0.0), 0x8000);
        // Halfway between 1 and the next half (1 + 2^-10): to the even one, 1.
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00);
        // Halfway between 1 + 2^-10 and 1 + 2^-9: to the even one, 1 + 2^-9.
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        // Just above halfway: up.
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11) + 2f32.powi(-20)), 0x3c01);
        // 1/127 = 2^-7 · 1.00787: mantissa 8.06 → 8; 4.375/127 = 2^-5 · 1.10236: 104.82 → 105.
        assert_eq!(f32_to_f16(1.0 / 127.0), 0x2008);
        assert_eq!(f32_to_f16(4.375 / 127.0), 0x2869);
        // Subnormals, overflow, NaN.
        assert_eq!(f32_to_f16(2f32.powi(-24)), 0x0001);
        assert_eq!(f32_to_f16(2f32.powi(-25)), 0x0000);
        assert_eq!(f32_to_f16(3.0 * 2f32.powi(-25)), 0x0002);
        assert_eq!(f32_to_f16(65504.0), 0x7bff);
        assert_eq!(f32_to_f16(65520.0), 0x7c00);
        assert_eq!(f32_to_f16(f32::NEG_INFINITY), 0xfc00);
        assert_eq!(f32_to_f16(f32::NAN), 0x7e00);
    }

    #[test]
    fn q8_0_block_by_hand() {
        // amax 127: d = 1 (f16 0x3c00), 1/d = 1, q = roundf(w): halves away from zero.
        let x = block(&[
            (0, -127.0),
            (1, 2.5),
            (2, -2.5),
            (3, 0.49),
            (4, 126.6),
            (5, -0.5),
        ]);
        let mut want = vec![0x00, 0x3c, 0x81, 0x03, 0xfd, 0x00, 0x7f, 0xff];
        want.resize(BlockFormat::Q8_0.block_bytes(), 0);
        assert_eq!(quantized(BlockFormat::Q8_0, &x), want);

        // amax 4.375: d = 4.375/127 = 2^-5 · 1.10236, mantissa 104.82, rounds up to f16
        // 0x2869; the quants use the f32 1/d (29.03): 1 → 29, -2 → -58.06 → -58.
        let x = block(&[(0, 4.375), (1, -4.375), (2, 1.0), (3, -2.0)]);
        let mut want = vec![0x69, 0x28, 0x7f, 0x81, 29, 0xc6];
        want.resize(BlockFormat::Q8_0.block_bytes(), 0);
        assert_eq!(quantized(BlockFormat::Q8_0, &x), want);
    }

    #[test]
    fn q5_0_block_by_hand() {
        // max = -16 (the first of largest magnitude; w[16] = +16 comes later): d = 1,
        // q = min(31, trunc(w + 16.5)).
        let x = block(&[
            (0, -16.0), // 0
            (1, 15.6),  // 32.1 → 31
            (3, 0.4),   // 16.9 → 16
            (4, 0.5),   // 17
            (5, -0.5),  // 16
            (6, -3.7),  // 12.8 → 12
            (16, 16.0), // 32.5 → 31
            (17, -1.0), // 15
            (20, 7.0),  // 23
        ]); // the rest: 0 → 16
        let want = [
            0x00, 0x3c, // d = 1
            // qh: fifth bits of q[0..32]; clear for q0, q6 and q17 only.
            0xbe, 0xff, 0xfd, 0xff, //
            // qs[j] = q[j] & 15 | (q[j + 16] & 15) << 4
            0xf0, 0xff, 0x00, 0x00, 0x71, 0x00, 0x0c, 0x00, //
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(quantized(BlockFormat::Q5_0, &x), want);
    }

    #[test]
    fn q5_1_block_by_hand() {
        // min = -1, max = 30: d = 1, m = -1 (f16 0xbc00), q = trunc(w + 1 + 0.5).
        let x = block(&[
            (0, -1.0),  // 0
            (1, 30.0),  // 31
            (3, 14.5),  // 16
            (4, 14.4),  // 15.9 → 15
            (16, 2.2),  // 3.7 → 3
            (31, 20.0), // 21
        ]); // the rest: 0 → 1
        let mut want = vec![
            0x00, 0x3c, 0x00, 0xbc, // d = 1, m = -1
            0x0a, 0x00, 0x00, 0x80, // qh: fifth bits of q1 = 31, q3 = 16, q31 = 21
            0x30, 0x1f, 0x11, 0x10, 0x1f,
        ];
        want.extend([0x11; 10]);
        want.push(0x51);
        assert_eq!(quantized(BlockFormat::Q5_1, &x), want);
    }

    #[test]
    fn zero_blocks_have_zero_scales() {
        let x = vec![0.0; BLOCK_LEN];
        for format in [BlockFormat::Q8_0, BlockFormat::Q5_0, BlockFormat::Q5_1] {
            let out = quantized(format, &x);
            assert_eq!(out.len(), format.block_bytes());
            assert_eq!(dequantize(format, &out), x, "{format:?}");
        }
    }

    /// Dequantized blocks stay within half a step of the weights, plus the f16 rounding of the
    /// scales; q5_0 within one step, as it clamps a weight of the largest magnitude but the
    /// other sign.
    #[test]
    fn round_trip_error_is_bounded_by_the_step() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        // 64 blocks, each at its own scale, some offset (as weights of a row may be).
        let x: Vec<f32> = (0..64 * BLOCK_LEN)
            .map(|i| {
                let block = (i / BLOCK_LEN) as f32;
                next() * 0.1 * (1.0 + block) + if block % 3.0 == 0.0 { 0.3 } else { 0.0 }
            })
            .collect();
        for format in [BlockFormat::Q8_0, BlockFormat::Q5_0, BlockFormat::Q5_1] {
            let y = dequantize(format, &quantized(format, &x));
            let (mut sum, mut count) = (0.0f64, 0usize);
            for (xb, yb) in x.chunks(BLOCK_LEN).zip(y.chunks(BLOCK_LEN)) {
                let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let (min, max) = xb
                    .iter()
                    .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                // The scale's f16 rounding (relative 2^-11) times the largest quant, and for
                // q5_1 the minimum's.
                let (step, bound) = match format {
                    BlockFormat::Q8_0 => (amax / 127.0, amax / 127.0 * (0.5 + 127.0 / 2048.0)),
                    BlockFormat::Q5_0 => (amax / 16.0, amax / 16.0 * (1.0 + 16.0 / 2048.0)),
                    BlockFormat::Q5_1 => {
                        let step = (max - min) / 31.0;
                        (step, step * (0.5 + 31.0 / 2048.0) + min.abs() / 2048.0)
                    }
                };
                for (v, w) in xb.iter().zip(yb) {
                    let err = (v - w).abs();
                    assert!(
                        err <= bound * 1.0001,
                        "{format:?}: {v} came back as {w} (step {step})"
                    );
                    sum += f64::from(err / step);
                    count += 1;
                }
            }
            // Uniform rounding errors average a quarter of a step.
            let mean = sum / count as f64;
            assert!(mean < 0.3, "{format:?}: mean error {mean} steps");
        }
    }
}
