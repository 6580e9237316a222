//! Tone generation: DTMF digits and call-progress tones (dial, ringback, busy,
//! congestion) with per-country tables.
//!
//! Levels are in dBm0 per frequency component. The reference is G.711: a full-scale
//! sine (peak 32767 in 16-bit linear PCM) is [`FULL_SCALE_SINE_DBM0`] = +3.14 dBm0 (the
//! A-law overload point; µ-law's is +3.17 dBm0).
//!
//! A [`ToneGenerator`] plays a sequence of [`Segment`]s (one or two frequencies, or
//! silence, for a duration), once or repeated, into frames of any length; its phase and
//! cadence position carry over from one frame to the next.
//!
//! ```
//! use std::time::Duration;
//! use pbxkit_rtp::dtmf::EventCode;
//! use pbxkit_rtp::tones::{self, CallProgress, Country, ToneGenerator};
//!
//! // 100 ms of the digit 5 at -10 dBm0 per tone, 8 kHz.
//! let five = tones::dtmf(EventCode(5), -10.0, Duration::from_millis(100), 8000)?;
//! assert_eq!(five.len(), 800);
//!
//! // French ringback: 440 Hz, 1.5 s on, 3.5 s off, 20 ms at a time.
//! let mut ringback = ToneGenerator::new(Country::Fr.tone(CallProgress::Ringback), 8000, -13.0)?;
//! let mut frame = [0i16; 160];
//! ringback.fill(&mut frame);
//! assert!(frame.iter().any(|&s| s != 0));
//! # Ok::<(), tones::ToneError>(())
//! ```

use crate::dtmf::EventCode;
use std::time::Duration;

/// The level of a full-scale sine in 16-bit linear PCM, in dBm0 (G.711 A-law).
// Written as a quotient: the literal 3.14 reads as an approximation of pi to clippy.
pub const FULL_SCALE_SINE_DBM0: f64 = 314.0 / 100.0;

/// The DTMF low-group (row) frequencies in Hz (ITU-T Q.23).
pub const DTMF_ROWS: [u16; 4] = [697, 770, 852, 941];
/// The DTMF high-group (column) frequencies in Hz (ITU-T Q.23).
pub const DTMF_COLUMNS: [u16; 4] = [1209, 1336, 1477, 1633];

/// The (row, column) frequencies of a DTMF event: 0–9, `*` (10), `#` (11), A–D (12–15).
pub fn dtmf_frequencies(event: EventCode) -> Option<(u16, u16)> {
    // (row, column) of each key on the 4x4 keypad.
    let (row, column) = match event.0 {
        1 => (0, 0),
        2 => (0, 1),
        3 => (0, 2),
        12 => (0, 3),
        4 => (1, 0),
        5 => (1, 1),
        6 => (1, 2),
        13 => (1, 3),
        7 => (2, 0),
        8 => (2, 1),
        9 => (2, 2),
        14 => (2, 3),
        10 => (3, 0),
        0 => (3, 1),
        11 => (3, 2),
        15 => (3, 3),
        _ => return None,
    };
    Some((DTMF_ROWS[row], DTMF_COLUMNS[column]))
}

/// The DTMF event with these (row, column) indices.
pub(crate) fn dtmf_event_at(row: usize, column: usize) -> Option<EventCode> {
    const KEYPAD: [[u8; 4]; 4] = [[1, 2, 3, 12], [4, 5, 6, 13], [7, 8, 9, 14], [10, 0, 11, 15]];
    KEYPAD
        .get(row)
        .and_then(|r| r.get(column))
        .map(|&e| EventCode(e))
}

/// The peak amplitude (16-bit linear) of a sine at `level_dbm0`.
pub fn dbm0_to_amplitude(level_dbm0: f64) -> f64 {
    f64::from(i16::MAX) * 10f64.powf((level_dbm0 - FULL_SCALE_SINE_DBM0) / 20.0)
}

/// One step of a cadence: up to two frequencies (0 = unused; both 0 = silence) for a
/// duration in milliseconds (0 = for ever).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Segment {
    /// The frequencies in Hz, 0 for none.
    pub frequencies: [u16; 2],
    /// The duration in milliseconds; 0 means the segment never ends.
    pub duration_ms: u32,
}

impl Segment {
    /// A tone of one frequency.
    pub const fn single(frequency: u16, duration_ms: u32) -> Segment {
        Segment {
            frequencies: [frequency, 0],
            duration_ms,
        }
    }

    /// A tone of two frequencies.
    pub const fn dual(f1: u16, f2: u16, duration_ms: u32) -> Segment {
        Segment {
            frequencies: [f1, f2],
            duration_ms,
        }
    }

    /// Silence.
    pub const fn silence(duration_ms: u32) -> Segment {
        Segment {
            frequencies: [0, 0],
            duration_ms,
        }
    }
}

/// A tone: its segments, played once or repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ToneSpec {
    /// The segments in order.
    pub segments: &'static [Segment],
    /// True if the sequence repeats.
    pub repeat: bool,
}

/// A call-progress tone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallProgress {
    /// Dial tone (continuous).
    Dial,
    /// Ringback: the called party is being alerted.
    Ringback,
    /// Busy (engaged).
    Busy,
    /// Congestion (reorder): no route or resources.
    Congestion,
}

/// A country whose call-progress tones this module knows.
///
/// The tables follow the ITU-T E.180 supplement ("Various tones used in national
/// networks", Operational Bulletin annex, 2003 edition, `tones-0203.pdf`), as collated
/// in Asterisk's `indications.conf.sample`; where the ITU list has no entry (French
/// congestion) the common practice from that file is used. The UK congestion cadence is
/// BT SIN 350's "beep-bip" tone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Country {
    /// France.
    Fr,
    /// United States (and North America, "precise tone plan").
    Us,
    /// United Kingdom.
    Uk,
    /// Germany.
    De,
}

// France: 440 Hz. Ringback 1.5 s on / 3.5 s off, busy 0.5 / 0.5, congestion 0.25 / 0.25.
const FR_DIAL: &[Segment] = &[Segment::single(440, 0)];
const FR_RINGBACK: &[Segment] = &[Segment::single(440, 1500), Segment::silence(3500)];
const FR_BUSY: &[Segment] = &[Segment::single(440, 500), Segment::silence(500)];
const FR_CONGESTION: &[Segment] = &[Segment::single(440, 250), Segment::silence(250)];
// United States precise tone plan: dial 350+440, ringback 440+480 2 s / 4 s, busy
// 480+620 0.5 / 0.5, reorder 480+620 0.25 / 0.25.
const US_DIAL: &[Segment] = &[Segment::dual(350, 440, 0)];
const US_RINGBACK: &[Segment] = &[Segment::dual(440, 480, 2000), Segment::silence(4000)];
const US_BUSY: &[Segment] = &[Segment::dual(480, 620, 500), Segment::silence(500)];
const US_CONGESTION: &[Segment] = &[Segment::dual(480, 620, 250), Segment::silence(250)];
// United Kingdom: dial 350+440, ringback 400+450 0.4 / 0.2 / 0.4 / 2.0, busy 400
// 0.375 / 0.375, congestion 400 0.4 / 0.35 / 0.225 / 0.525.
const UK_DIAL: &[Segment] = &[Segment::dual(350, 440, 0)];
const UK_RINGBACK: &[Segment] = &[
    Segment::dual(400, 450, 400),
    Segment::silence(200),
    Segment::dual(400, 450, 400),
    Segment::silence(2000),
];
const UK_BUSY: &[Segment] = &[Segment::single(400, 375), Segment::silence(375)];
const UK_CONGESTION: &[Segment] = &[
    Segment::single(400, 400),
    Segment::silence(350),
    Segment::single(400, 225),
    Segment::silence(525),
];
// Germany: 425 Hz. Ringback 1 s / 4 s, busy 0.48 / 0.48, congestion 0.24 / 0.24.
const DE_DIAL: &[Segment] = &[Segment::single(425, 0)];
const DE_RINGBACK: &[Segment] = &[Segment::single(425, 1000), Segment::silence(4000)];
const DE_BUSY: &[Segment] = &[Segment::single(425, 480), Segment::silence(480)];
const DE_CONGESTION: &[Segment] = &[Segment::single(425, 240), Segment::silence(240)];

impl Country {
    /// Every country in the table.
    pub const ALL: [Country; 4] = [Country::Fr, Country::Us, Country::Uk, Country::De];

    /// The country of an ISO 3166 alpha-2 code (either case; `gb` is the UK).
    pub fn from_code(code: &str) -> Option<Country> {
        match code.to_ascii_lowercase().as_str() {
            "fr" => Some(Country::Fr),
            "us" => Some(Country::Us),
            "uk" | "gb" => Some(Country::Uk),
            "de" => Some(Country::De),
            _ => None,
        }
    }

    /// The country's tone of `kind`.
    pub fn tone(self, kind: CallProgress) -> ToneSpec {
        let segments = match (self, kind) {
            (Country::Fr, CallProgress::Dial) => FR_DIAL,
            (Country::Fr, CallProgress::Ringback) => FR_RINGBACK,
            (Country::Fr, CallProgress::Busy) => FR_BUSY,
            (Country::Fr, CallProgress::Congestion) => FR_CONGESTION,
            (Country::Us, CallProgress::Dial) => US_DIAL,
            (Country::Us, CallProgress::Ringback) => US_RINGBACK,
            (Country::Us, CallProgress::Busy) => US_BUSY,
            (Country::Us, CallProgress::Congestion) => US_CONGESTION,
            (Country::Uk, CallProgress::Dial) => UK_DIAL,
            (Country::Uk, CallProgress::Ringback) => UK_RINGBACK,
            (Country::Uk, CallProgress::Busy) => UK_BUSY,
            (Country::Uk, CallProgress::Congestion) => UK_CONGESTION,
            (Country::De, CallProgress::Dial) => DE_DIAL,
            (Country::De, CallProgress::Ringback) => DE_RINGBACK,
            (Country::De, CallProgress::Busy) => DE_BUSY,
            (Country::De, CallProgress::Congestion) => DE_CONGESTION,
        };
        ToneSpec {
            segments,
            repeat: true,
        }
    }
}

/// Why a tone cannot be generated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ToneError {
    /// The sample rate is outside 8000–48000 Hz.
    #[error("sample rate {0} Hz is outside 8000..=48000")]
    SampleRate(u32),
    /// A frequency at or above half the sample rate.
    #[error("{frequency} Hz cannot be generated at {rate} Hz")]
    Frequency {
        /// The frequency.
        frequency: u16,
        /// The sample rate.
        rate: u32,
    },
    /// The level is above full scale or not a number.
    #[error("level {0} dBm0 is above the +3.14 dBm0 full scale")]
    Level(f32),
    /// The event is not one of the 16 DTMF keys.
    #[error("{0} is not a DTMF key")]
    NotDtmf(EventCode),
    /// A tone with no segment.
    #[error("a tone needs at least one segment")]
    Empty,
}

/// Plays a [`ToneSpec`] (or any segments) into PCM frames.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    segments: Vec<Segment>,
    repeat: bool,
    rate: u32,
    amplitude: f64,
    index: usize,
    /// Samples played in the current segment.
    position: u64,
    finished: bool,
}

impl ToneGenerator {
    /// A generator of `spec` at `rate` Hz with each frequency at `level_dbm0`.
    pub fn new(spec: ToneSpec, rate: u32, level_dbm0: f32) -> Result<ToneGenerator, ToneError> {
        ToneGenerator::from_segments(spec.segments.to_vec(), spec.repeat, rate, level_dbm0)
    }

    /// A generator of arbitrary segments.
    pub fn from_segments(
        segments: Vec<Segment>,
        repeat: bool,
        rate: u32,
        level_dbm0: f32,
    ) -> Result<ToneGenerator, ToneError> {
        if !(8000..=48_000).contains(&rate) {
            return Err(ToneError::SampleRate(rate));
        }
        // Levels above the full scale would clip; a combined level of two tones may
        // still clip and saturates.
        if level_dbm0.is_nan() || f64::from(level_dbm0) > FULL_SCALE_SINE_DBM0 {
            return Err(ToneError::Level(level_dbm0));
        }
        if segments.is_empty() {
            return Err(ToneError::Empty);
        }
        for segment in &segments {
            for &frequency in &segment.frequencies {
                if u32::from(frequency) * 2 >= rate {
                    return Err(ToneError::Frequency { frequency, rate });
                }
            }
        }
        Ok(ToneGenerator {
            segments,
            repeat,
            rate,
            amplitude: dbm0_to_amplitude(f64::from(level_dbm0)),
            index: 0,
            position: 0,
            finished: false,
        })
    }

    /// True once a non-repeating tone has played all its segments.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Fills `out` with the next samples; after the end of a non-repeating tone the
    /// rest is silence. Returns the number of samples that were part of the tone.
    pub fn fill(&mut self, out: &mut [i16]) -> usize {
        let mut written = 0;
        while written < out.len() && !self.finished {
            let Some(segment) = self.segments.get(self.index).copied() else {
                self.finished = true;
                break;
            };
            let length = u64::from(segment.duration_ms) * u64::from(self.rate) / 1000;
            let remaining = if segment.duration_ms == 0 {
                u64::MAX
            } else {
                length.saturating_sub(self.position)
            };
            let room = (out.len() - written) as u64;
            let n = usize::try_from(remaining.min(room)).unwrap_or(0);
            let chunk = out.get_mut(written..written + n).unwrap_or_default();
            self.synthesize(segment, chunk);
            self.position += n as u64;
            written += n;
            if segment.duration_ms != 0 && self.position >= length {
                self.position = 0;
                self.index += 1;
                if self.index >= self.segments.len() {
                    if self.repeat {
                        self.index = 0;
                    } else {
                        self.finished = true;
                    }
                }
            }
        }
        if let Some(rest) = out.get_mut(written..) {
            rest.fill(0);
        }
        written
    }

    fn synthesize(&self, segment: Segment, out: &mut [i16]) {
        let rate = f64::from(self.rate);
        let steps = segment
            .frequencies
            .map(|f| std::f64::consts::TAU * f64::from(f) / rate);
        for (i, sample) in out.iter_mut().enumerate() {
            // The phase restarts with each segment (no click at a tone's start).
            let n = (self.position + i as u64) as f64;
            let mut value = 0.0;
            for (step, &f) in steps.iter().zip(&segment.frequencies) {
                if f != 0 {
                    value += (step * n).sin();
                }
            }
            let scaled = (value * self.amplitude).round();
            // Clamped into range.
            *sample = scaled.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16;
        }
    }
}

/// A DTMF digit: both frequencies at `level_dbm0` each, for `duration`, at `rate` Hz.
pub fn dtmf(
    event: EventCode,
    level_dbm0: f32,
    duration: Duration,
    rate: u32,
) -> Result<Vec<i16>, ToneError> {
    let (row, column) = dtmf_frequencies(event).ok_or(ToneError::NotDtmf(event))?;
    let ms = u32::try_from(duration.as_millis())
        .unwrap_or(u32::MAX)
        .max(1);
    let mut generator = ToneGenerator::from_segments(
        vec![Segment::dual(row, column, ms)],
        false,
        rate,
        level_dbm0,
    )?;
    let samples = u64::from(ms) * u64::from(rate) / 1000;
    let mut out = vec![0; usize::try_from(samples).unwrap_or(0)];
    generator.fill(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn dtmf_keypad() {
        assert_eq!(dtmf_frequencies(EventCode(1)), Some((697, 1209)));
        assert_eq!(dtmf_frequencies(EventCode(0)), Some((941, 1336)));
        assert_eq!(dtmf_frequencies(EventCode(11)), Some((941, 1477)));
        assert_eq!(dtmf_frequencies(EventCode(15)), Some((941, 1633)));
        assert_eq!(dtmf_frequencies(EventCode(16)), None);
        for e in 0..16 {
            let (r, c) = dtmf_frequencies(EventCode(e)).unwrap();
            let ri = DTMF_ROWS.iter().position(|&f| f == r).unwrap();
            let ci = DTMF_COLUMNS.iter().position(|&f| f == c).unwrap();
            assert_eq!(dtmf_event_at(ri, ci), Some(EventCode(e)));
        }
    }

    #[test]
    fn dtmf_level_and_length() {
        // Two sines of peak A have an RMS of A (each A / sqrt 2).
        let tone = dtmf(EventCode(5), -10.0, Duration::from_millis(1000), 8000).unwrap();
        assert_eq!(tone.len(), 8000);
        let expected = dbm0_to_amplitude(-10.0);
        assert!((rms(&tone) / expected - 1.0).abs() < 0.01, "{}", rms(&tone));
        assert_eq!(
            dtmf(EventCode(16), -10.0, Duration::from_millis(50), 8000),
            Err(ToneError::NotDtmf(EventCode(16)))
        );
        assert!(dtmf(EventCode(1), 4.0, Duration::from_millis(50), 8000).is_err());
        assert!(dtmf(EventCode(1), -10.0, Duration::from_millis(50), 4000).is_err());
        assert_eq!(
            dtmf(EventCode(1), -10.0, Duration::from_millis(50), 16000)
                .unwrap()
                .len(),
            800
        );
    }

    #[test]
    fn cadences_follow_the_tables() {
        for country in Country::ALL {
            for kind in [
                CallProgress::Dial,
                CallProgress::Ringback,
                CallProgress::Busy,
                CallProgress::Congestion,
            ] {
                let spec = country.tone(kind);
                let mut g = ToneGenerator::new(spec, 8000, -13.0).unwrap();
                // Play two full cycles in odd-sized frames and check each segment.
                let cycle: u32 = spec.segments.iter().map(|s| s.duration_ms).sum();
                let cycle = if cycle == 0 { 1000 } else { cycle };
                let total = (cycle * 2 * 8) as usize;
                let mut pcm = vec![0i16; total];
                for chunk in pcm.chunks_mut(77) {
                    g.fill(chunk);
                }
                assert!(!g.is_finished());
                let mut at = 0usize;
                for _ in 0..2 {
                    for s in spec.segments {
                        let len = if s.duration_ms == 0 {
                            total
                        } else {
                            s.duration_ms as usize * 8
                        };
                        let part = &pcm[at..(at + len).min(total)];
                        let silent = s.frequencies == [0, 0];
                        assert_eq!(
                            rms(part) < 1.0,
                            silent,
                            "{country:?} {kind:?} segment {s:?}"
                        );
                        at += len;
                        if at >= total {
                            break;
                        }
                    }
                }
            }
        }
        assert_eq!(Country::from_code("GB"), Some(Country::Uk));
        assert_eq!(Country::from_code("xx"), None);
    }

    #[test]
    fn non_repeating_tone_ends() {
        let mut g =
            ToneGenerator::from_segments(vec![Segment::single(1000, 10)], false, 8000, -10.0)
                .unwrap();
        let mut frame = [1i16; 160];
        assert_eq!(g.fill(&mut frame), 80);
        assert!(g.is_finished());
        assert!(frame[80..].iter().all(|&s| s == 0));
        assert_eq!(g.fill(&mut frame), 0);
        assert!(ToneGenerator::from_segments(vec![], true, 8000, 0.0).is_err());
        assert!(
            ToneGenerator::from_segments(vec![Segment::single(4000, 10)], true, 8000, 0.0).is_err()
        );
        assert!(
            ToneGenerator::from_segments(vec![Segment::single(400, 10)], true, 8000, f32::NAN)
                .is_err()
        );
    }
}
