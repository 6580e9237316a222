//! In-band DTMF detection with the Goertzel algorithm, for peers that send digits as
//! tones in the audio instead of RFC 4733 events.
//!
//! The signal is analysed in windows of 12.75 ms (102 samples at 8 kHz, 204 at
//! 16 kHz), a new one every half window. For each window the Goertzel power is computed at the eight DTMF frequencies, at
//! 4.5 % either side of each, and at their second harmonics. A window holds a digit
//! when all of these hold (limits after ITU-T Q.24 and its annex of national values):
//!
//! - **Level**: each of the two tones is at least `min_level_dbm0`.
//! - **Frequency**: each tone is closer to its nominal frequency than to the bins at
//!   ±4.5 %, which accepts deviations up to about ±2.25 %: everything within ±1.5 %
//!   (Q.24 "operate") and nothing beyond ±3.5 % (Q.24 "non-operate").
//! - **Twist**: the high-group tone is at most `normal_twist_db` (4 dB) above the
//!   low-group tone, and at most `reverse_twist_db` (8 dB) below it.
//! - **Purity**: the two tones carry at least `min_purity` (75 %) of the window's
//!   energy; each is the strongest of its group by 8 dB.
//! - **Second harmonic**: the second harmonic of each tone is weak (column tones:
//!   10 dB below the fundamental; row tones, whose harmonic bin also picks up the column
//!   tone: 3 dB), as it is for a tone generator and is not for a voice.
//!
//! A digit starts after four consecutive windows hold it: a tone of 40 ms (320
//! samples at 8 kHz) covers at least four windows whatever its alignment, while a tone
//! of 25 ms or less covers at most three with the 75 % purity (Q.24: 40 ms must be
//! detected, under 23 ms must not). It ends after four consecutive windows without it:
//! a 10 ms break spoils at most three windows, so it does not split a digit.
//!
//! ```
//! use std::time::Duration;
//! use pbxkit_rtp::dtmf::EventCode;
//! use pbxkit_rtp::dtmf_detect::{DtmfDetector, DetectorConfig, InbandDtmf};
//! use pbxkit_rtp::tones;
//!
//! let mut detector = DtmfDetector::new(DetectorConfig::default())?;
//! let mut audio = tones::dtmf(EventCode(7), -20.0, Duration::from_millis(60), 8000)?;
//! audio.extend([0i16; 400]);
//! for frame in audio.chunks(160) {
//!     detector.process(frame);
//! }
//! assert!(matches!(detector.poll_event(), Some(InbandDtmf::Started { event: EventCode(7), .. })));
//! assert!(matches!(detector.poll_event(), Some(InbandDtmf::Ended { event: EventCode(7), .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::dtmf::EventCode;
use crate::tones::{DTMF_COLUMNS, DTMF_ROWS, dbm0_to_amplitude, dtmf_event_at};
use std::collections::VecDeque;

/// The settings of a [`DtmfDetector`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// The sample rate, 8000–48000 Hz.
    pub sample_rate: u32,
    /// The lowest level of each tone, in dBm0.
    pub min_level_dbm0: f32,
    /// How far the high-group tone may be above the low-group tone, in dB.
    pub normal_twist_db: f32,
    /// How far the high-group tone may be below the low-group tone, in dB.
    pub reverse_twist_db: f32,
    /// The smallest share of a block's energy the two tones must carry (0–1).
    pub min_purity: f32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            sample_rate: 8000,
            min_level_dbm0: -30.0,
            normal_twist_db: 4.0,
            reverse_twist_db: 8.0,
            min_purity: 0.75,
        }
    }
}

/// Why a [`DetectorConfig`] is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DetectorError {
    /// The sample rate is outside 8000–48000 Hz.
    #[error("sample rate {0} Hz is outside 8000..=48000")]
    SampleRate(u32),
    /// A threshold is not a number or out of range.
    #[error("detector threshold {name} = {value} is out of range")]
    Threshold {
        /// The field.
        name: &'static str,
        /// Its value.
        value: f32,
    },
}

/// A detected digit. Sample positions count from the first sample given to the
/// detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InbandDtmf {
    /// A digit started.
    Started {
        /// The digit.
        event: EventCode,
        /// The first sample of the first window that held it.
        sample: u64,
    },
    /// The digit ended.
    Ended {
        /// The digit.
        event: EventCode,
        /// Where it started, as in `Started`.
        sample: u64,
        /// Its length in samples, from the first window that held it to the end of
        /// the last one (a multiple of half a window).
        duration: u64,
    },
}

/// One Goertzel filter.
#[derive(Debug, Clone, Copy)]
struct Goertzel {
    coeff: f32,
    s1: f32,
    s2: f32,
}

impl Goertzel {
    fn new(frequency: f64, rate: u32) -> Goertzel {
        let coeff = 2.0 * (std::f64::consts::TAU * frequency / f64::from(rate)).cos();
        Goertzel {
            coeff: coeff as f32,
            s1: 0.0,
            s2: 0.0,
        }
    }

    fn update(&mut self, x: f32) {
        let s = x + self.coeff * self.s1 - self.s2;
        self.s2 = self.s1;
        self.s1 = s;
    }

    /// |X(f)|² over the block, then resets.
    fn take_power(&mut self) -> f32 {
        let p = self.s1 * self.s1 + self.s2 * self.s2 - self.coeff * self.s1 * self.s2;
        self.s1 = 0.0;
        self.s2 = 0.0;
        p.max(0.0)
    }
}

/// Filters per DTMF frequency: nominal, -4.5 %, +4.5 %, second harmonic.
const PER_FREQUENCY: usize = 4;
const SIDE: f64 = 0.045;
/// Consecutive windows (half a block apart) that must hold a digit to start it.
const MIN_HITS: u32 = 4;
/// Consecutive windows without the digit that end it.
const MIN_MISSES: u32 = 4;

/// One window's filters and energy.
#[derive(Debug, Clone)]
struct Bank {
    /// 8 frequencies (rows then columns) × [`PER_FREQUENCY`].
    filters: Vec<Goertzel>,
    in_block: usize,
    energy: f32,
}

/// An in-band DTMF detector for one audio stream; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    config: DetectorConfig,
    block_len: usize,
    /// Two banks of windows, half a block apart.
    banks: [Bank; 2],
    /// Samples processed.
    position: u64,
    candidate: Option<(EventCode, u64)>,
    hits: u32,
    /// The digit held: event, first sample, end of the last window that held it.
    current: Option<(EventCode, u64, u64)>,
    misses: u32,
    events: VecDeque<InbandDtmf>,
    min_power: f32,
    normal_twist: f32,
    reverse_twist: f32,
}

impl DtmfDetector {
    /// A detector, after checking the configuration.
    pub fn new(config: DetectorConfig) -> Result<DtmfDetector, DetectorError> {
        let rate = config.sample_rate;
        if !(8000..=48_000).contains(&rate) {
            return Err(DetectorError::SampleRate(rate));
        }
        let checks = [
            (
                "min_level_dbm0",
                config.min_level_dbm0,
                -90.0,
                crate::tones::FULL_SCALE_SINE_DBM0 as f32,
            ),
            ("normal_twist_db", config.normal_twist_db, 0.0, 40.0),
            ("reverse_twist_db", config.reverse_twist_db, 0.0, 40.0),
            ("min_purity", config.min_purity, 0.0, 1.0),
        ];
        for (name, value, lo, hi) in checks {
            if !(lo..=hi).contains(&value) {
                return Err(DetectorError::Threshold { name, value });
            }
        }
        // 12.75 ms blocks.
        let block_len = (u64::from(rate) * 102 / 8000) as usize;
        let mut filters = Vec::with_capacity(8 * PER_FREQUENCY);
        for &f in DTMF_ROWS.iter().chain(&DTMF_COLUMNS) {
            let f = f64::from(f);
            filters.push(Goertzel::new(f, rate));
            filters.push(Goertzel::new(f * (1.0 - SIDE), rate));
            filters.push(Goertzel::new(f * (1.0 + SIDE), rate));
            filters.push(Goertzel::new(2.0 * f, rate));
        }
        let bank = |in_block| Bank {
            filters: filters.clone(),
            in_block,
            energy: 0.0,
        };
        // The second bank's first window is half a block short (as if it started in
        // silence before the stream).
        let banks = [bank(0), bank(block_len / 2)];
        // A tone of peak amplitude A gives a power of (A N / 2)².
        let amplitude = dbm0_to_amplitude(f64::from(config.min_level_dbm0));
        let min_power = (amplitude * block_len as f64 / 2.0).powi(2) as f32;
        let db = |x: f32| 10f32.powf(x / 10.0);
        Ok(DtmfDetector {
            config,
            block_len,
            banks,
            position: 0,
            candidate: None,
            hits: 0,
            current: None,
            misses: 0,
            events: VecDeque::new(),
            min_power,
            normal_twist: db(config.normal_twist_db),
            reverse_twist: db(config.reverse_twist_db),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// The block length in samples.
    pub fn block_len(&self) -> usize {
        self.block_len
    }

    /// Takes the next samples (any number).
    pub fn process(&mut self, samples: &[i16]) {
        for &sample in samples {
            let x = f32::from(sample);
            self.position += 1;
            for b in 0..self.banks.len() {
                let Some(bank) = self.banks.get_mut(b) else {
                    continue;
                };
                for filter in &mut bank.filters {
                    filter.update(x);
                }
                bank.energy += x * x;
                bank.in_block += 1;
                if bank.in_block == self.block_len {
                    let digit = self.classify_window(b);
                    self.step(digit);
                }
            }
        }
    }

    /// The next detected event.
    pub fn poll_event(&mut self) -> Option<InbandDtmf> {
        self.events.pop_front()
    }

    /// The digit being held, if any.
    pub fn current(&self) -> Option<EventCode> {
        self.current.map(|(event, _, _)| event)
    }

    /// Evaluates the window of bank `b` just completed and resets the bank.
    fn classify_window(&mut self, b: usize) -> Option<EventCode> {
        let bank = self.banks.get_mut(b)?;
        let mut powers = [[0f32; PER_FREQUENCY]; 8];
        for (power, filters) in powers
            .iter_mut()
            .zip(bank.filters.chunks_mut(PER_FREQUENCY))
        {
            for (p, f) in power.iter_mut().zip(filters) {
                *p = f.take_power();
            }
        }
        let energy = bank.energy;
        bank.energy = 0.0;
        bank.in_block = 0;
        let (rows, columns) = powers.split_at(4);
        let best = |group: &[[f32; PER_FREQUENCY]]| {
            let mut best = 0;
            for (i, p) in group.iter().enumerate() {
                if p[0] > group.get(best).map_or(0.0, |b| b[0]) {
                    best = i;
                }
            }
            best
        };
        let (r, c) = (best(rows), best(columns));
        let (row, column) = (rows.get(r)?, columns.get(c)?);
        let (pr, pc) = (row[0], column[0]);
        // Level.
        if pr < self.min_power || pc < self.min_power {
            return None;
        }
        // Twist.
        if pc > pr * self.normal_twist || pr > pc * self.reverse_twist {
            return None;
        }
        // Frequency: the nominal bin beats both side bins.
        if row[1] > pr || row[2] > pr || column[1] > pc || column[2] > pc {
            return None;
        }
        // Purity: share of the block's energy. A tone of amplitude A on its bin gives
        // a power of (A N / 2)² and an energy of A² N / 2.
        let n = self.block_len as f32;
        if pr + pc < self.config.min_purity * energy * n / 2.0 {
            return None;
        }
        // Relative peak within each group (8 dB).
        const PEAK: f32 = 6.3;
        for (i, p) in rows.iter().enumerate() {
            if i != r && p[0] * PEAK > pr {
                return None;
            }
        }
        for (i, p) in columns.iter().enumerate() {
            if i != c && p[0] * PEAK > pc {
                return None;
            }
        }
        // Second harmonics.
        if column[3] > pc * 0.1 || row[3] > pr * 0.5 {
            return None;
        }
        dtmf_event_at(r, c)
    }

    /// Advances the digit state machine by one window, which ended at `self.position`.
    fn step(&mut self, digit: Option<EventCode>) {
        let end = self.position;
        let start = end.saturating_sub(self.block_len as u64);
        match (digit, self.candidate) {
            (Some(d), Some((c, _))) if d == c => self.hits += 1,
            (Some(d), _) => {
                self.candidate = Some((d, start));
                self.hits = 1;
            }
            (None, _) => {
                self.candidate = None;
                self.hits = 0;
            }
        }
        if let Some((event, first, last_end)) = self.current {
            if digit == Some(event) {
                self.misses = 0;
                self.current = Some((event, first, end));
            } else {
                self.misses += 1;
                if self.misses >= MIN_MISSES {
                    self.events.push_back(InbandDtmf::Ended {
                        event,
                        sample: first,
                        duration: last_end.saturating_sub(first),
                    });
                    self.current = None;
                    self.misses = 0;
                }
            }
        }
        if self.current.is_none()
            && let Some((event, first)) = self.candidate
            && self.hits >= MIN_HITS
        {
            self.current = Some((event, first, end));
            self.misses = 0;
            self.events.push_back(InbandDtmf::Started {
                event,
                sample: first,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tones::{self, ToneGenerator};
    use std::time::Duration;

    fn detect(samples: &[i16], config: DetectorConfig) -> Vec<InbandDtmf> {
        let mut d = DtmfDetector::new(config).unwrap();
        for chunk in samples.chunks(160) {
            d.process(chunk);
        }
        // Flush with silence.
        d.process(&vec![0; config.sample_rate as usize / 10]);
        std::iter::from_fn(|| d.poll_event()).collect()
    }

    fn starts(events: &[InbandDtmf]) -> Vec<EventCode> {
        events
            .iter()
            .filter_map(|e| match e {
                InbandDtmf::Started { event, .. } => Some(*event),
                _ => None,
            })
            .collect()
    }

    fn two_tones(f1: f64, f2: f64, level_dbm0: f64, ms: u32, rate: u32) -> Vec<i16> {
        let a = dbm0_to_amplitude(level_dbm0);
        let n = (ms * rate / 1000) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                let v = a * (std::f64::consts::TAU * f1 * t).sin()
                    + a * (std::f64::consts::TAU * f2 * t).sin();
                v.round() as i16
            })
            .collect()
    }

    #[test]
    fn config_is_checked() {
        let bad = DetectorConfig {
            sample_rate: 4000,
            ..DetectorConfig::default()
        };
        assert_eq!(
            DtmfDetector::new(bad).unwrap_err(),
            DetectorError::SampleRate(4000)
        );
        let bad = DetectorConfig {
            min_purity: f32::NAN,
            ..DetectorConfig::default()
        };
        assert!(DtmfDetector::new(bad).is_err());
    }

    #[test]
    fn frequency_tolerance() {
        let config = DetectorConfig::default();
        for (r, c) in [(697.0, 1209.0), (941.0, 1633.0), (770.0, 1477.0)] {
            for (deviation, expected) in [
                (0.0, 1),
                (0.015, 1),
                (-0.015, 1),
                (0.035, 0),
                (-0.035, 0),
                (0.05, 0),
            ] {
                let k = 1.0 + deviation;
                let signal = two_tones(r * k, c * k, -20.0, 100, 8000);
                assert_eq!(
                    starts(&detect(&signal, config)).len(),
                    expected,
                    "{r}/{c} Hz {deviation:+}"
                );
                // Only one of the two tones off.
                let signal = two_tones(r, c * k, -20.0, 100, 8000);
                assert_eq!(starts(&detect(&signal, config)).len(), expected);
                let signal = two_tones(r * k, c, -20.0, 100, 8000);
                assert_eq!(starts(&detect(&signal, config)).len(), expected);
            }
        }
    }

    #[test]
    fn twist_limits() {
        let config = DetectorConfig::default();
        let with_levels = |low: f64, high: f64| {
            let a = two_tones(852.0, 0.0, low, 100, 8000);
            let b = two_tones(1336.0, 0.0, high, 100, 8000);
            a.iter().zip(&b).map(|(x, y)| x + y).collect::<Vec<i16>>()
        };
        // (Each helper call adds a 0 Hz "tone", a constant 0: sin(0) = 0.)
        assert_eq!(starts(&detect(&with_levels(-20.0, -17.0), config)).len(), 1);
        assert_eq!(starts(&detect(&with_levels(-20.0, -15.0), config)).len(), 0);
        assert_eq!(starts(&detect(&with_levels(-13.0, -20.0), config)).len(), 1);
        assert_eq!(starts(&detect(&with_levels(-11.0, -20.0), config)).len(), 0);
    }

    #[test]
    fn duration_limits() {
        let config = DetectorConfig::default();
        for offset in 0..20 {
            // Silence of varying length first, to try every alignment.
            let mut signal = vec![0i16; offset * 5];
            signal
                .extend(tones::dtmf(EventCode(9), -20.0, Duration::from_millis(40), 8000).unwrap());
            assert_eq!(
                starts(&detect(&signal, config)),
                [EventCode(9)],
                "offset {offset}"
            );
            let mut signal = vec![0i16; offset * 5];
            signal
                .extend(tones::dtmf(EventCode(9), -20.0, Duration::from_millis(22), 8000).unwrap());
            assert!(
                starts(&detect(&signal, config)).is_empty(),
                "offset {offset}"
            );
        }
        // Too quiet.
        let quiet = tones::dtmf(EventCode(1), -40.0, Duration::from_millis(100), 8000).unwrap();
        assert!(starts(&detect(&quiet, config)).is_empty());
    }

    #[test]
    fn a_short_break_does_not_split_a_digit() {
        let config = DetectorConfig::default();
        let mut signal =
            tones::dtmf(EventCode(4), -20.0, Duration::from_millis(100), 8000).unwrap();
        signal.extend([0i16; 80]); // 10 ms
        signal.extend(tones::dtmf(EventCode(4), -20.0, Duration::from_millis(100), 8000).unwrap());
        let events = detect(&signal, config);
        assert_eq!(starts(&events), [EventCode(4)]);
        let Some(InbandDtmf::Ended { duration, .. }) = events.last() else {
            panic!("{events:?}");
        };
        assert!((1500..=1800).contains(duration), "{duration}");
    }

    #[test]
    fn dial_tones_are_not_digits() {
        let config = DetectorConfig::default();
        for country in tones::Country::ALL {
            for kind in [
                tones::CallProgress::Dial,
                tones::CallProgress::Ringback,
                tones::CallProgress::Busy,
                tones::CallProgress::Congestion,
            ] {
                let mut g = ToneGenerator::new(country.tone(kind), 8000, -10.0).unwrap();
                let mut pcm = vec![0i16; 8000 * 3];
                g.fill(&mut pcm);
                assert!(
                    starts(&detect(&pcm, config)).is_empty(),
                    "{country:?} {kind:?}"
                );
            }
        }
    }
}
