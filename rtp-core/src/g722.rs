//! G.722 wideband speech at 64 kbit/s (ITU-T G.722, sub-band ADPCM).
//!
//! 16 kHz 16-bit PCM is split by a 24-tap quadrature mirror filter (QMF) into a lower
//! (0–4 kHz) and a higher (4–8 kHz) band, each at 8 kHz. The lower band is coded with
//! 6-bit ADPCM, the higher band with 2-bit ADPCM; both share the structure of the
//! recommendation's blocks: a quantiser with a logarithmic scale factor adapted from
//! the previous codes (`LOGSCL`/`SCALEL`), and an adaptive predictor made of a
//! second-order pole section and a sixth-order zero section (`UPPOL1`, `UPPOL2`,
//! `UPZERO`, `FILTEP`, `FILTEZ`). Every two input samples make one byte: the two
//! higher-band bits on top, the six lower-band bits below.
//!
//! This is the 64 kbit/s mode only (mode 1); the 56 and 48 kbit/s modes, which drop
//! the one or two lowest bits of the lower-band code, are not offered.
//!
//! **Scaling.** The input and output are 16-bit linear PCM, not the recommendation's
//! 14-bit samples: the transmit QMF scales its output by 2⁻¹⁴ (instead of 2⁻¹³ on
//! 14-bit input) and the receive QMF by 2⁻¹¹, as do the common open-source
//! implementations (spandsp, FFmpeg). The encoder and decoder are bit-exact with
//! FFmpeg's `g722` codec (without trellis search), which the tests check against a
//! bitstream and PCM produced by FFmpeg (`tests/data/`).
//!
//! **RTP.** G.722 is static payload type 9 with an RTP clock rate of 8000 Hz although
//! it samples at 16 kHz (an error in RFC 1890 kept by RFC 3551 for compatibility), so
//! a 20 ms packet holds 320 samples in 160 bytes but advances the timestamp by 160.
//!
//! ```
//! use pbxkit_rtp::g722::{G722Decoder, G722Encoder};
//!
//! let pcm: Vec<i16> = (0..320).map(|i| ((i as f32 * 0.2).sin() * 8000.0) as i16).collect();
//! let mut encoder = G722Encoder::new();
//! let mut payload = Vec::new();
//! encoder.encode(&pcm, &mut payload)?;
//! assert_eq!(payload.len(), 160);
//!
//! let mut decoder = G722Decoder::new();
//! let mut decoded = Vec::new();
//! decoder.decode(&payload, &mut decoded);
//! assert_eq!(decoded.len(), 320);
//! # Ok::<(), pbxkit_rtp::codec::CodecError>(())
//! ```

use crate::codec::CodecError;

/// The transmit and receive QMF coefficients (G.722 Table 11, h0..h11; the filter is
/// symmetric, h23-i = hi).
const QMF: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];

/// Taps of the QMF: 24 samples at 16 kHz.
const QMF_TAPS: usize = 24;

/// Lower-band quantiser decision levels (G.722 Table 6, on the scale of `det` × 2¹⁰ /
/// 2¹⁰), for the magnitudes of the 6-bit quantiser.
const LOW_DECISION: [i32; 29] = [
    35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940, 1023,
    1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919,
];

/// Inverse quantiser of the 6-bit lower-band code (`QQ6`, with sign), indexed by code.
const LOW_INV6: [i32; 64] = [
    -17, -17, -17, -17, -3101, -2738, -2376, -2088, -1873, -1689, -1535, -1399, -1279, -1170,
    -1072, -982, -899, -822, -750, -682, -618, -558, -501, -447, -396, -347, -300, -254, -211,
    -170, -130, -91, 3101, 2738, 2376, 2088, 1873, 1689, 1535, 1399, 1279, 1170, 1072, 982, 899,
    822, 750, 682, 618, 558, 501, 447, 396, 347, 300, 254, 211, 170, 130, 91, 54, 17, -54, -17,
];

/// Inverse quantiser of the lower-band code truncated to 4 bits (`QQ4`, with sign),
/// which drives the lower band's adaptation in every mode.
const LOW_INV4: [i32; 16] = [
    0, -2557, -1612, -1121, -786, -530, -323, -150, 2557, 1612, 1121, 786, 530, 323, 150, 0,
];

/// Scale-factor multiplier steps of the lower band (`WL`, by the 4-bit code).
const LOW_LOG_STEP: [i32; 16] = [
    -60, 3042, 1198, 538, 334, 172, 58, -30, 3042, 1198, 538, 334, 172, 58, -30, -60,
];

/// Inverse quantiser of the 2-bit higher-band code (`QQ2`, with sign).
const HIGH_INV: [i32; 4] = [-926, -202, 926, 202];

/// Scale-factor multiplier steps of the higher band (`WH`, by the code's low bit).
const HIGH_LOG_STEP: [i32; 2] = [798, -214];

/// Antilogarithm table of `SCALEL`/`SCALEH`: 2^(i/32) × 2048.
const INV_LOG2: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

fn clamp16(x: i32) -> i32 {
    x.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

/// Turns a logarithmic scale factor (`nbl` minus the band's offset) into the linear
/// quantiser scale factor.
fn linear_scale(log: i32) -> i32 {
    let mantissa = INV_LOG2[((log >> 6) & 31) as usize];
    let shift = log >> 11;
    if shift < 0 {
        mantissa >> -shift
    } else {
        mantissa << shift
    }
}

/// The adaptive state of one sub-band: quantiser scale and predictor.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Band {
    /// Predictor output: the estimate of the next sub-band sample (`s`).
    estimate: i32,
    /// Output of the zero section (`sz`).
    zero_out: i32,
    /// Whether the last two partially reconstructed signals (`p`) were negative.
    p_negative: [bool; 2],
    /// The previous reconstructed signal, doubled and saturated (`r(n-1)`).
    prev_recon: i32,
    /// Pole coefficients `a1`, `a2`.
    pole: [i32; 2],
    /// The last six quantised differences, doubled and saturated (`d(n-1..n-6)`).
    diff: [i32; 6],
    /// Zero coefficients `b1..b6`.
    zero: [i32; 6],
    /// Logarithmic scale factor (`nbl`/`nbh`).
    log_scale: i32,
    /// Linear scale factor (`det`).
    scale: i32,
}

impl Band {
    fn new(scale: i32) -> Self {
        Band {
            estimate: 0,
            zero_out: 0,
            p_negative: [false; 2],
            prev_recon: 0,
            pole: [0; 2],
            diff: [0; 6],
            zero: [0; 6],
            log_scale: 0,
            scale,
        }
    }

    /// Updates the predictor with the quantised difference `dq` of this sample.
    fn adapt_predictor(&mut self, dq: i32) {
        // Signs of the partially reconstructed signal p = sz + dq, now and before.
        let p_negative = self.zero_out + dq < 0;
        let same1 = p_negative == self.p_negative[0];
        let same2 = p_negative == self.p_negative[1];
        self.p_negative = [p_negative, self.p_negative[0]];

        // UPPOL2, then UPPOL1 with the new a2 as its limit.
        let [a1, a2] = self.pole;
        let f = if same1 {
            -(a1.clamp(-8191, 8191))
        } else {
            a1.clamp(-8191, 8191)
        };
        let a2 =
            ((f >> 5) + if same2 { 128 } else { -128 } + ((a2 * 127) >> 7)).clamp(-12288, 12288);
        let limit = 15360 - a2;
        let a1 = (if same1 { 192 } else { -192 } + ((a1 * 255) >> 8)).clamp(-limit, limit);
        self.pole = [a1, a2];

        // UPZERO: sign-sign update with leakage.
        for (b, &d) in self.zero.iter_mut().zip(&self.diff) {
            let leaked = (*b * 255) >> 8;
            *b = if dq == 0 {
                leaked
            } else if (d ^ dq) < 0 {
                leaked - 128
            } else {
                leaked + 128
            };
        }
        self.diff.copy_within(0..5, 1);
        self.diff[0] = clamp16(dq << 1);

        // FILTEZ, FILTEP and the new estimate.
        self.zero_out = self
            .zero
            .iter()
            .zip(&self.diff)
            .map(|(&b, &d)| (b * d) >> 15)
            .sum();
        let recon = clamp16((self.estimate + dq) << 1);
        self.estimate =
            clamp16(self.zero_out + ((a1 * recon) >> 15) + ((a2 * self.prev_recon) >> 15));
        self.prev_recon = recon;
    }

    /// Adapts the lower band to its code truncated to 4 bits.
    fn adapt_low(&mut self, code4: usize) {
        self.adapt_predictor((self.scale * LOW_INV4[code4 & 15]) >> 10);
        self.log_scale = (((self.log_scale * 127) >> 7) + LOW_LOG_STEP[code4 & 15]).clamp(0, 18432);
        self.scale = linear_scale(self.log_scale - (8 << 11));
    }

    /// Adapts the higher band to its 2-bit code and the quantised difference `dq`.
    fn adapt_high(&mut self, dq: i32, code: usize) {
        self.adapt_predictor(dq);
        self.log_scale = (((self.log_scale * 127) >> 7) + HIGH_LOG_STEP[code & 1]).clamp(0, 22528);
        self.scale = linear_scale(self.log_scale - (10 << 11));
    }
}

/// The QMF delay line and its two polyphase outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Qmf {
    taps: [i32; QMF_TAPS],
}

impl Qmf {
    fn new() -> Self {
        Qmf {
            taps: [0; QMF_TAPS],
        }
    }

    /// Shifts in two samples (the earlier first) and returns the sums of the odd and
    /// of the even taps.
    fn push(&mut self, first: i32, second: i32) -> (i32, i32) {
        self.taps.copy_within(2.., 0);
        self.taps[QMF_TAPS - 2] = first;
        self.taps[QMF_TAPS - 1] = second;
        let mut odd = 0;
        let mut even = 0;
        for (i, pair) in self.taps.chunks_exact(2).enumerate() {
            even += pair[0] * QMF[i];
            odd += pair[1] * QMF[11 - i];
        }
        (odd, even)
    }
}

/// A G.722 64 kbit/s encoder: two 16 kHz samples in, one byte out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct G722Encoder {
    qmf: Qmf,
    low: Band,
    high: Band,
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Encoder {
    /// A new encoder in the recommendation's reset state.
    pub fn new() -> Self {
        G722Encoder {
            qmf: Qmf::new(),
            low: Band::new(8),
            high: Band::new(2),
        }
    }

    /// Returns the encoder to its reset state (for a new stream).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Encodes two consecutive 16 kHz samples into one G.722 byte.
    pub fn encode_pair(&mut self, first: i16, second: i16) -> u8 {
        let (odd, even) = self.qmf.push(i32::from(first), i32::from(second));
        let x_low = (odd + even) >> 14;
        let x_high = (odd - even) >> 14;

        // Higher band: 2-bit quantiser with one decision level.
        let e = clamp16(x_high - self.high.estimate);
        let magnitude = if e >= 0 { e } else { !e };
        let threshold = (141 * self.high.scale) >> 8;
        let high_code = usize::from(magnitude < threshold) + if e >= 0 { 2 } else { 0 };

        // Lower band: 6-bit quantiser; `level` is the interval of |e| among the
        // decision levels scaled by `det`.
        let e = clamp16(x_low - self.low.estimate);
        let magnitude = if e >= 0 { e } else { !e };
        let scaled = (magnitude + 1) << 10;
        let mut level = 0;
        if scaled > LOW_DECISION[8] * self.low.scale {
            level = 9;
        }
        while level < LOW_DECISION.len() && scaled > LOW_DECISION[level] * self.low.scale {
            level += 1;
        }
        let low_code = if e < 0 {
            if level < 2 { 63 - level } else { 33 - level }
        } else {
            61 - level
        };

        let dq_high = (self.high.scale * HIGH_INV[high_code]) >> 10;
        self.high.adapt_high(dq_high, high_code);
        self.low.adapt_low(low_code >> 2);
        // `high_code` < 4 and `low_code` < 64.
        ((high_code << 6) | low_code) as u8
    }

    /// Appends the G.722 bytes of `pcm` (16 kHz) to `out`, one byte per two samples.
    ///
    /// # Errors
    ///
    /// [`CodecError::FrameLength`] if `pcm` holds an odd number of samples; nothing is
    /// encoded then.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        if !pcm.len().is_multiple_of(2) {
            return Err(CodecError::FrameLength {
                codec: "G722",
                len: pcm.len(),
                multiple: 2,
            });
        }
        out.reserve(pcm.len() / 2);
        for pair in pcm.chunks_exact(2) {
            out.push(self.encode_pair(pair[0], pair[1]));
        }
        Ok(())
    }
}

/// A G.722 64 kbit/s decoder: one byte in, two 16 kHz samples out. Every byte is a
/// valid code, so decoding never fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct G722Decoder {
    qmf: Qmf,
    low: Band,
    high: Band,
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Decoder {
    /// A new decoder in the recommendation's reset state.
    pub fn new() -> Self {
        G722Decoder {
            qmf: Qmf::new(),
            low: Band::new(8),
            high: Band::new(2),
        }
    }

    /// Returns the decoder to its reset state (for a new stream).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Decodes one G.722 byte into two consecutive 16 kHz samples.
    pub fn decode_byte(&mut self, byte: u8) -> [i16; 2] {
        let high_code = usize::from(byte >> 6);
        let low_code = usize::from(byte & 0x3F);

        let r_low = (((self.low.scale * LOW_INV6[low_code]) >> 10) + self.low.estimate)
            .clamp(-16384, 16383);
        self.low.adapt_low(low_code >> 2);

        let dq_high = (self.high.scale * HIGH_INV[high_code]) >> 10;
        let r_high = (dq_high + self.high.estimate).clamp(-16384, 16383);
        self.high.adapt_high(dq_high, high_code);

        let (odd, even) = self.qmf.push(r_low + r_high, r_low - r_high);
        // Saturated to the i16 range, so the casts are exact.
        [clamp16(odd >> 11) as i16, clamp16(even >> 11) as i16]
    }

    /// Appends the samples of `payload` (two per byte, 16 kHz) to `out`.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        out.reserve(payload.len() * 2);
        for &byte in payload {
            out.extend(self.decode_byte(byte));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_stays_small() {
        let mut encoder = G722Encoder::new();
        let mut payload = Vec::new();
        encoder.encode(&[0; 320], &mut payload).ok();
        assert_eq!(payload.len(), 160);
        let mut decoder = G722Decoder::new();
        let mut pcm = Vec::new();
        decoder.decode(&payload, &mut pcm);
        assert!(pcm.iter().all(|s| s.abs() < 64), "{pcm:?}");
    }

    #[test]
    fn odd_frames_are_refused() {
        let mut encoder = G722Encoder::new();
        let mut payload = Vec::new();
        assert_eq!(
            encoder.encode(&[0; 3], &mut payload),
            Err(CodecError::FrameLength {
                codec: "G722",
                len: 3,
                multiple: 2
            })
        );
        assert!(payload.is_empty());
        assert_eq!(encoder, G722Encoder::new());
    }

    #[test]
    fn reset_restores_the_initial_state() {
        let mut encoder = G722Encoder::new();
        let mut decoder = G722Decoder::new();
        for i in 0..1000 {
            let b = encoder.encode_pair(i * 31, -i * 17);
            decoder.decode_byte(b);
        }
        encoder.reset();
        decoder.reset();
        assert_eq!(encoder, G722Encoder::new());
        assert_eq!(decoder, G722Decoder::new());
    }

    #[test]
    fn extreme_inputs_do_not_overflow() {
        let mut encoder = G722Encoder::new();
        let mut decoder = G722Decoder::new();
        for i in 0..20_000 {
            let s = if (i / 3) % 2 == 0 { i16::MAX } else { i16::MIN };
            decoder.decode_byte(encoder.encode_pair(s, s));
        }
        let mut decoder = G722Decoder::new();
        for byte in (0..=255u8).cycle().take(100_000) {
            decoder.decode_byte(byte);
        }
        for byte in [0x00u8, 0x3F, 0xC0, 0xFF, 0x20, 0xE0] {
            let mut decoder = G722Decoder::new();
            for _ in 0..10_000 {
                decoder.decode_byte(byte);
            }
        }
    }
}
