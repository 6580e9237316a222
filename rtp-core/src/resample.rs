//! Sample-rate conversion of 16-bit mono PCM by a rational factor: a polyphase FIR
//! resampler whose filter is a Kaiser-windowed sinc, computed in `f32`.
//!
//! Converting `from` → `to` Hz upsamples by `L = to / g` and downsamples by
//! `M = from / g` (`g` the greatest common divisor) without ever computing the
//! upsampled signal: each output sample is one phase of the filter (of `L`) applied to
//! the last input samples. The filter passes up to 0.43 × the lower of the two rates
//! (3.44 kHz when 8 kHz is involved) and attenuates by at least 80 dB from half the
//! lower rate (4 kHz), so that downsampling does not alias and upsampling leaves no
//! images. The state (the last input samples and the filter phase) is kept across
//! calls, so a stream converted in 20 ms frames is sample for sample the stream
//! converted at once: no clicks at frame boundaries.
//!
//! The common telephony rates 8, 16 and 48 kHz convert with small filters (between 73
//! and 433 taps per output sample); other rates such as 11.025, 22.05 or 44.1 kHz work
//! too (for loading prompts) with larger ones.
//!
//! ```
//! use pbxkit_rtp::resample::Resampler;
//!
//! let mut up = Resampler::new(8000, 16_000)?;
//! let mut out = Vec::new();
//! for frame in [[0i16; 160], [100; 160]] {
//!     up.process(&frame, &mut out);
//! }
//! assert_eq!(out.len(), 640);
//! # Ok::<(), pbxkit_rtp::resample::ResampleError>(())
//! ```

use std::f64::consts::PI;

/// The lowest rate accepted, in Hz.
pub const MIN_RATE: u32 = 1000;
/// The highest rate accepted, in Hz.
pub const MAX_RATE: u32 = 384_000;
/// The most filter phases (`L`) or decimation steps (`M`) of a conversion: enough for
/// any pair of the usual audio rates (44.1 kHz → 8 kHz is 80/441).
pub const MAX_FACTOR: u32 = 2048;

/// Passband edge as a fraction of the lower rate.
const PASSBAND: f64 = 0.43;
/// Stopband edge as a fraction of the lower rate (its Nyquist frequency).
const STOPBAND: f64 = 0.5;
/// Stopband attenuation in dB.
const ATTENUATION_DB: f64 = 80.0;

/// Why a resampler could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResampleError {
    /// A rate is outside [`MIN_RATE`]..=[`MAX_RATE`].
    #[error("sample rate {0} Hz is outside {MIN_RATE}..={MAX_RATE} Hz")]
    UnsupportedRate(u32),
    /// The ratio of the rates reduces to factors above [`MAX_FACTOR`].
    #[error("converting {from} Hz to {to} Hz needs factors above {MAX_FACTOR}")]
    RatioTooComplex {
        /// The input rate.
        from: u32,
        /// The output rate.
        to: u32,
    },
}

/// A streaming rational resampler for one mono stream.
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    /// Interpolation factor L.
    up: usize,
    /// Decimation factor M.
    down: usize,
    /// Taps per phase.
    taps: usize,
    /// `coeffs[p * taps + j]` multiplies `history[next - taps + 1 + j]` for phase `p`
    /// (each phase reversed so that the dot product runs forwards), scaled by L.
    coeffs: Vec<f32>,
    /// Past and pending input; the first `taps - 1` are zeros at the start.
    history: Vec<f32>,
    /// Index in `history` of the newest input sample of the next output.
    next: usize,
    /// Filter phase of the next output, in 0..L.
    phase: usize,
    /// Group delay of the filter in output samples.
    delay: usize,
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The zeroth-order modified Bessel function of the first kind (series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..64 {
        term *= half / f64::from(k);
        let t2 = term * term;
        sum += t2;
        if t2 < sum * 1e-17 {
            break;
        }
    }
    sum
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz.
    ///
    /// # Errors
    ///
    /// [`ResampleError::UnsupportedRate`] for a rate outside
    /// [`MIN_RATE`]..=[`MAX_RATE`], [`ResampleError::RatioTooComplex`] when the reduced
    /// ratio has a factor above [`MAX_FACTOR`].
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        for rate in [from, to] {
            if !(MIN_RATE..=MAX_RATE).contains(&rate) {
                return Err(ResampleError::UnsupportedRate(rate));
            }
        }
        let g = gcd(from, to);
        let (up, down) = (to / g, from / g);
        if up > MAX_FACTOR || down > MAX_FACTOR {
            return Err(ResampleError::RatioTooComplex { from, to });
        }
        let (up, down) = (up as usize, down as usize);
        if up == 1 && down == 1 {
            return Ok(Resampler {
                from,
                to,
                up,
                down,
                taps: 1,
                coeffs: vec![1.0],
                history: Vec::new(),
                next: 0,
                phase: 0,
                delay: 0,
            });
        }

        // Kaiser design at the upsampled rate R = from × L.
        let upsampled = f64::from(from) * up as f64;
        let lower = f64::from(from.min(to));
        let transition = (STOPBAND - PASSBAND) * lower / upsampled;
        let cutoff = (PASSBAND + STOPBAND) / 2.0 * lower / upsampled;
        let beta = 0.1102 * (ATTENUATION_DB - 8.7);
        let estimate = (ATTENUATION_DB - 8.0) / (2.285 * 2.0 * PI * transition) + 1.0;
        // An odd-length filter centred on a multiple of M delays the output by a whole
        // number of output samples; it is padded with zeros to K taps in each phase.
        let centre_steps = (estimate / 2.0 / down as f64).ceil().max(1.0) as usize;
        let centre_index = centre_steps * down;
        let length = 2 * centre_index + 1;
        let taps = length.div_ceil(up);
        let n = taps * up;
        let centre = centre_index as f64;
        let i0_beta = bessel_i0(beta);
        let mut h: Vec<f64> = (0..n)
            .map(|i| {
                let t = i as f64 - centre;
                let x = 2.0 * PI * cutoff * t;
                let sinc = if t == 0.0 { 1.0 } else { x.sin() / x };
                if i >= length {
                    return 0.0;
                }
                let r = t / centre;
                let window = bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / i0_beta;
                2.0 * cutoff * sinc * window
            })
            .collect();
        // Unity gain at DC after interpolation by L.
        let sum: f64 = h.iter().sum();
        for c in &mut h {
            *c *= up as f64 / sum;
        }
        let mut coeffs = vec![0f32; n];
        for p in 0..up {
            for j in 0..taps {
                coeffs[p * taps + j] = h[p + (taps - 1 - j) * up] as f32;
            }
        }
        Ok(Resampler {
            from,
            to,
            up,
            down,
            taps,
            coeffs,
            history: vec![0.0; taps - 1],
            next: taps - 1,
            phase: 0,
            delay: centre_steps,
        })
    }

    /// The input rate in Hz.
    pub fn from_rate(&self) -> u32 {
        self.from
    }

    /// The output rate in Hz.
    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// The delay that the filter adds, in output samples (half its length).
    pub fn delay(&self) -> usize {
        self.delay
    }

    /// The filter taps applied per output sample (1 when the rates are equal).
    pub fn taps_per_output(&self) -> usize {
        self.taps
    }

    /// Returns to the start of a stream: silence before it, phase zero.
    pub fn reset(&mut self) {
        self.history.clear();
        self.history.resize(self.taps - 1, 0.0);
        self.next = self.taps - 1;
        self.phase = 0;
    }

    /// Converts `input` (the next samples of the stream) and appends the output samples
    /// that are now complete to `out`. Over a stream, `n` input samples give
    /// `n × to / from` output samples, rounded down, give or take one per call.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.up == 1 && self.down == 1 {
            out.extend_from_slice(input);
            return;
        }
        self.history.extend(input.iter().map(|&s| f32::from(s)));
        out.reserve(input.len() * self.up / self.down + 1);
        while self.next < self.history.len() {
            let start = self.next + 1 - self.taps;
            let window = &self.history[start..=self.next];
            let phase = &self.coeffs[self.phase * self.taps..(self.phase + 1) * self.taps];
            let acc: f32 = window.iter().zip(phase).map(|(x, c)| x * c).sum();
            // Saturating float-to-int conversion.
            out.push(acc.round() as i16);
            self.phase += self.down;
            self.next += self.phase / self.up;
            self.phase %= self.up;
        }
        // Keep the last `taps - 1` samples before the next output's newest one.
        let drop = (self.next + 1)
            .saturating_sub(self.taps)
            .min(self.history.len());
        self.history.drain(..drop);
        self.next -= drop;
    }

    /// Feeds silence for the length of the filter's delay and appends the output, so
    /// that the end of the stream so far comes out.
    pub fn flush(&mut self, out: &mut Vec<i16>) {
        let input_delay = (self.delay * self.down).div_ceil(self.up) + 1;
        self.process(&vec![0; input_delay], out);
    }

    /// Converts a whole signal: the output is aligned with the input (the filter's
    /// delay removed) and holds `input.len() × to / from` samples, rounded.
    ///
    /// # Errors
    ///
    /// As [`Resampler::new`].
    pub fn convert(from: u32, to: u32, input: &[i16]) -> Result<Vec<i16>, ResampleError> {
        let mut resampler = Resampler::new(from, to)?;
        let mut out = Vec::with_capacity(input.len() * to as usize / from as usize + 2);
        resampler.process(input, &mut out);
        resampler.flush(&mut out);
        let want =
            ((input.len() as u64 * u64::from(to) + u64::from(from) / 2) / u64::from(from)) as usize;
        let skip = resampler.delay.min(out.len());
        let mut aligned = out.split_off(skip);
        aligned.resize(want, 0);
        Ok(aligned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f64, amplitude: f64, len: usize) -> Vec<i16> {
        (0..len)
            .map(|i| {
                (amplitude * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()).round() as i16
            })
            .collect()
    }

    /// Power of `freq` in `x` relative to a full-amplitude sine (Goertzel, Hann window).
    fn tone_level_db(x: &[i16], rate: u32, freq: f64) -> f64 {
        let n = x.len() as f64;
        let w = 2.0 * PI * freq / f64::from(rate);
        let (mut re, mut im) = (0.0, 0.0);
        for (i, &s) in x.iter().enumerate() {
            let hann = 0.5 - 0.5 * (2.0 * PI * i as f64 / n).cos();
            let v = f64::from(s) * hann;
            re += v * (w * i as f64).cos();
            im += v * (w * i as f64).sin();
        }
        // A sine of amplitude A gives |X| = A × n / 4 with a Hann window.
        let amplitude = (re * re + im * im).sqrt() * 4.0 / n;
        20.0 * (amplitude.max(1e-9) / 32767.0).log10()
    }

    fn rms_db(x: &[i16]) -> f64 {
        let p = x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64;
        10.0 * (p.max(1e-12) / (32767.0f64.powi(2) / 2.0)).log10()
    }

    const RATES: [u32; 3] = [8000, 16_000, 48_000];

    #[test]
    fn tones_keep_their_frequency_and_level() {
        for from in RATES {
            for to in RATES {
                let input = sine(from, 1000.0, 16_000.0, from as usize);
                let out = Resampler::convert(from, to, &input).unwrap_or_default();
                assert_eq!(out.len(), to as usize, "{from}→{to}");
                // Skip the edges; look at the steady state.
                let steady = &out[out.len() / 4..out.len() * 3 / 4];
                let level = tone_level_db(steady, to, 1000.0);
                let expected = 20.0 * (16_000.0f64 / 32767.0).log10();
                assert!((level - expected).abs() < 0.1, "{from}→{to}: {level:.2} dB");
                for off in [900.0, 1100.0, 3000.0] {
                    let other = tone_level_db(steady, to, off);
                    assert!(other < level - 40.0, "{from}→{to} at {off}: {other:.1} dB");
                }
                // The output is the input delayed by exactly the filter's delay: the
                // aligned output matches a sine generated at the output rate.
                let reference = sine(to, 1000.0, 16_000.0, to as usize);
                let err = steady
                    .iter()
                    .zip(&reference[out.len() / 4..])
                    .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
                    .max()
                    .unwrap_or(0);
                assert!(err < 40, "{from}→{to}: error {err}");
            }
        }
    }

    #[test]
    fn downsampling_attenuates_what_would_alias() {
        for (from, to, freq) in [
            (16_000, 8000, 4500.0),
            (16_000, 8000, 6000.0),
            (16_000, 8000, 7900.0),
            (48_000, 8000, 5000.0),
            (48_000, 8000, 12_000.0),
            (48_000, 8000, 20_000.0),
            (48_000, 16_000, 9000.0),
            (48_000, 16_000, 15_000.0),
        ] {
            let input = sine(from, freq, 32_000.0, from as usize / 2);
            let out = Resampler::convert(from, to, &input).unwrap_or_default();
            let level = rms_db(&out[200..out.len() - 200]);
            assert!(level < -75.0, "{from}→{to} {freq} Hz: {level:.1} dB");
        }
    }

    #[test]
    fn upsampling_leaves_no_images() {
        for (from, to) in [(8000, 16_000), (8000, 48_000), (16_000, 48_000)] {
            let input = sine(from, 1000.0, 32_000.0, from as usize);
            let out = Resampler::convert(from, to, &input).unwrap_or_default();
            let steady = &out[out.len() / 4..out.len() * 3 / 4];
            let from_f = f64::from(from);
            for image in [from_f - 1000.0, from_f + 1000.0] {
                if image < f64::from(to) / 2.0 {
                    let level = tone_level_db(steady, to, image);
                    assert!(level < -75.0, "{from}→{to} image {image}: {level:.1} dB");
                }
            }
        }
    }

    #[test]
    fn frames_give_the_same_stream_as_one_call() {
        for from in RATES {
            for to in RATES {
                let input = sine(from, 440.0, 20_000.0, from as usize / 5);
                let mut whole = Resampler::new(from, to).unwrap_or_else(|e| panic!("{e}"));
                let mut expected = Vec::new();
                whole.process(&input, &mut expected);
                let mut framed = Resampler::new(from, to).unwrap_or_else(|e| panic!("{e}"));
                let mut got = Vec::new();
                let mut rest = &input[..];
                for size in [1usize, 7, 160, 13, 320, 2, 960].iter().cycle() {
                    if rest.is_empty() {
                        break;
                    }
                    let n = (*size).min(rest.len());
                    framed.process(&rest[..n], &mut got);
                    rest = &rest[n..];
                }
                assert_eq!(got, expected, "{from}→{to}");
                // Exact output counts for 20 ms frames.
                let mut r = Resampler::new(from, to).unwrap_or_else(|e| panic!("{e}"));
                for _ in 0..5 {
                    let mut out = Vec::new();
                    r.process(&vec![0; from as usize / 50], &mut out);
                    assert_eq!(out.len(), to as usize / 50, "{from}→{to}");
                }
                // No clicks: a 440 Hz tone changes by at most 2π × 440 / rate × A per sample.
                let max_step = 2.0 * PI * 440.0 / f64::from(to) * 20_000.0 * 1.05 + 4.0;
                let steady = &got[got.len() / 4..];
                for w in steady.windows(2) {
                    let step = f64::from((i32::from(w[1]) - i32::from(w[0])).abs() as i16);
                    assert!(step <= max_step, "{from}→{to}: step {step}");
                }
            }
        }
    }

    #[test]
    fn full_scale_saturates_without_wrapping() {
        let mut square = Vec::new();
        for i in 0..8000 {
            square.push(if (i / 20) % 2 == 0 {
                i16::MAX
            } else {
                i16::MIN
            });
        }
        for to in [16_000, 48_000] {
            let out = Resampler::convert(8000, to, &square).unwrap_or_default();
            // Overshoot (Gibbs) saturates; a wrap would flip sign inside a half period.
            let period = (to / 200) as usize;
            for (k, chunk) in out[period..out.len() - period]
                .chunks(period / 2)
                .enumerate()
            {
                let positive = chunk.iter().filter(|&&s| s > 0).count();
                assert!(
                    positive > chunk.len() * 3 / 4 || positive < chunk.len() / 4,
                    "{to}: chunk {k}"
                );
            }
        }
    }

    #[test]
    fn other_rates_and_errors() {
        let input = sine(44_100, 500.0, 10_000.0, 44_100 / 2);
        let out = Resampler::convert(44_100, 8000, &input).unwrap_or_default();
        assert_eq!(out.len(), 4000);
        let level = tone_level_db(&out[1000..3000], 8000, 500.0);
        assert!((level - 20.0 * (10_000.0f64 / 32767.0).log10()).abs() < 0.1);
        assert!(Resampler::new(11_025, 8000).is_ok());
        assert!(Resampler::new(22_050, 16_000).is_ok());
        assert_eq!(
            Resampler::new(0, 8000).err(),
            Some(ResampleError::UnsupportedRate(0))
        );
        assert_eq!(
            Resampler::new(8000, 1_000_000).err(),
            Some(ResampleError::UnsupportedRate(1_000_000))
        );
        assert_eq!(
            Resampler::new(8000, 7919).err(),
            Some(ResampleError::RatioTooComplex {
                from: 8000,
                to: 7919
            })
        );
        // Equal rates copy.
        let mut same = Resampler::new(16_000, 16_000).unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        same.process(&[1, 2, 3], &mut out);
        assert_eq!(out, [1, 2, 3]);
        assert_eq!(Resampler::convert(8000, 8000, &[5, 6]), Ok(vec![5, 6]));
    }

    #[test]
    fn telephony_filters_stay_small() {
        let mut taps = Vec::new();
        for from in RATES {
            for to in RATES {
                if from != to {
                    let r = Resampler::new(from, to).unwrap_or_else(|e| panic!("{e}"));
                    taps.push(r.taps_per_output());
                }
            }
        }
        assert_eq!(taps.iter().min(), Some(&73));
        assert_eq!(taps.iter().max(), Some(&433));
    }

    #[test]
    fn reset_restarts_the_stream() {
        let input = sine(8000, 700.0, 9000.0, 800);
        let mut r = Resampler::new(8000, 48_000).unwrap_or_else(|e| panic!("{e}"));
        let mut first = Vec::new();
        r.process(&input, &mut first);
        r.reset();
        let mut second = Vec::new();
        r.process(&input, &mut second);
        assert_eq!(first, second);
        assert!(r.taps_per_output() > 1);
    }
}
