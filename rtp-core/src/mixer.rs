//! A conference bridge over 20 ms frames of 16-bit PCM, sans-IO.
//!
//! Each tick, every participant may give one frame ([`Mixer::push_frame`]; a missing
//! frame is silence); [`Mixer::mix`] then computes, for each participant, the sum of
//! everybody else's contribution (N-1): the total of all contributions is computed once
//! in `i32`, each participant's own contribution is subtracted from it, and the result
//! saturates to `i16`. Mixing is O(N) per sample, not O(N²).
//!
//! - **Mute**: the participant contributes nothing (its talking events still fire).
//! - **Deaf**: the participant receives silence.
//! - **Gain**: applied to the participant's contribution, as a [`Gain`] in Q16 fixed
//!   point, made from decibels or a linear factor; the scaled contribution saturates to
//!   `i16` before summing.
//! - **Voice activity**: the energy of each input frame against a threshold, with a
//!   hangover, yields [`MixerEvent::Talking`] and [`MixerEvent::StoppedTalking`].
//!
//! The per-sample loops run over plain slices with no allocation, which the compiler
//! vectorises.
//!
//! ```
//! use pbxkit_rtp::mixer::{Mixer, MixerConfig, MixerEvent, ParticipantId};
//!
//! let mut mixer = Mixer::new(MixerConfig::default());
//! let (alice, bob, carol) = (ParticipantId(1), ParticipantId(2), ParticipantId(3));
//! for id in [alice, bob, carol] {
//!     mixer.add(id)?;
//! }
//! mixer.push_frame(alice, &[1000; 160])?;
//! mixer.push_frame(bob, &[-300; 160])?;
//! mixer.mix();
//! assert_eq!(mixer.output(alice).unwrap()[0], -300); // hears Bob
//! assert_eq!(mixer.output(bob).unwrap()[0], 1000); // hears Alice
//! assert_eq!(mixer.output(carol).unwrap()[0], 700); // hears both
//! assert_eq!(mixer.poll_event(), Some(MixerEvent::Talking(alice)));
//! # Ok::<(), pbxkit_rtp::mixer::MixerError>(())
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;

/// A participant of a conference, chosen by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParticipantId(pub u64);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "participant {}", self.0)
    }
}

/// The sample rate of a conference, which fixes the 20 ms frame length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SampleRate {
    /// 8 kHz narrowband: 160 samples per frame.
    #[default]
    Narrowband,
    /// 16 kHz wideband: 320 samples per frame.
    Wideband,
}

impl SampleRate {
    /// Samples in a 20 ms frame.
    pub const fn frame_len(self) -> usize {
        match self {
            SampleRate::Narrowband => 160,
            SampleRate::Wideband => 320,
        }
    }

    /// The rate in Hz.
    pub const fn hz(self) -> u32 {
        match self {
            SampleRate::Narrowband => 8000,
            SampleRate::Wideband => 16000,
        }
    }
}

/// A linear gain in Q16 fixed point (65536 = ×1, 0 dB), at most +24 dB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gain(u32);

impl Gain {
    /// ×1 (0 dB).
    pub const UNITY: Gain = Gain(1 << 16);
    /// ×0: silence.
    pub const SILENT: Gain = Gain(0);
    /// The largest gain, about +24 dB (×16).
    pub const MAX: Gain = Gain(16 << 16);

    /// The gain of `db` decibels, clamped to [`Gain::MAX`]; very negative values (and
    /// NaN) give silence.
    pub fn from_db(db: f32) -> Gain {
        if db.is_nan() {
            return Gain::SILENT;
        }
        Gain::from_linear(10f32.powf(db / 20.0))
    }

    /// The gain of a linear factor, clamped to `[0, 16]`.
    pub fn from_linear(factor: f32) -> Gain {
        if factor.is_nan() || factor <= 0.0 {
            return Gain::SILENT;
        }
        let q16 = (f64::from(factor) * 65536.0)
            .round()
            .min(f64::from(Gain::MAX.0));
        // In range by the clamp above.
        Gain(q16 as u32)
    }

    /// The Q16 value.
    pub const fn q16(self) -> u32 {
        self.0
    }
}

impl Default for Gain {
    fn default() -> Self {
        Gain::UNITY
    }
}

/// The settings of a [`Mixer`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixerConfig {
    /// The sample rate (frame length).
    pub rate: SampleRate,
    /// The most participants (at most [`MAX_PARTICIPANTS`], which keeps the `i32`
    /// total from overflowing).
    pub max_participants: usize,
    /// Frames whose mean power is above this level, in dB relative to a full-scale
    /// square wave (dBFS), count as speech.
    pub vad_threshold_dbfs: f32,
    /// Quiet frames after speech before [`MixerEvent::StoppedTalking`] (25 = 500 ms).
    pub vad_hangover_frames: u32,
}

impl Default for MixerConfig {
    fn default() -> Self {
        MixerConfig {
            rate: SampleRate::Narrowband,
            max_participants: 1000,
            vad_threshold_dbfs: -45.0,
            vad_hangover_frames: 25,
        }
    }
}

/// The most participants a mixer can hold: with every contribution within `i16`, the
/// `i32` total cannot overflow.
pub const MAX_PARTICIPANTS: usize = 65_535;

/// A talking event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MixerEvent {
    /// The participant started talking.
    Talking(ParticipantId),
    /// The participant stopped talking (after the hangover).
    StoppedTalking(ParticipantId),
}

/// Why a mixer operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MixerError {
    /// No such participant.
    #[error("{0} is not in the conference")]
    UnknownParticipant(ParticipantId),
    /// The participant is already in.
    #[error("{0} is already in the conference")]
    AlreadyPresent(ParticipantId),
    /// The conference is full.
    #[error("the conference is full ({max} participants)")]
    Full {
        /// The limit.
        max: usize,
    },
    /// A frame of the wrong length.
    #[error("frame of {len} samples from {id}, the conference uses {expected}")]
    FrameLength {
        /// The participant.
        id: ParticipantId,
        /// The length given.
        len: usize,
        /// The frame length.
        expected: usize,
    },
}

#[derive(Debug, Clone)]
struct Participant {
    id: ParticipantId,
    input: Vec<i16>,
    has_input: bool,
    /// The gained input, as summed into the total.
    contribution: Vec<i32>,
    contributes: bool,
    output: Vec<i16>,
    muted: bool,
    deaf: bool,
    gain: Gain,
    talking: bool,
    quiet_frames: u32,
}

/// A conference bridge; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Mixer {
    config: MixerConfig,
    participants: Vec<Participant>,
    index: HashMap<ParticipantId, usize>,
    total: Vec<i32>,
    events: VecDeque<MixerEvent>,
    /// Mean-square threshold of a frame, in sample units squared.
    vad_threshold: f64,
}

impl Mixer {
    /// An empty conference. `max_participants` is capped at [`MAX_PARTICIPANTS`].
    pub fn new(config: MixerConfig) -> Mixer {
        let config = MixerConfig {
            max_participants: config.max_participants.min(MAX_PARTICIPANTS),
            ..config
        };
        let full_scale = f64::from(i16::MAX);
        let vad_threshold =
            full_scale * full_scale * 10f64.powf(f64::from(config.vad_threshold_dbfs) / 10.0);
        Mixer {
            config,
            participants: Vec::new(),
            index: HashMap::new(),
            total: vec![0; config.rate.frame_len()],
            events: VecDeque::new(),
            vad_threshold,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MixerConfig {
        &self.config
    }

    /// The samples in a frame.
    pub fn frame_len(&self) -> usize {
        self.config.rate.frame_len()
    }

    /// The number of participants.
    pub fn len(&self) -> usize {
        self.participants.len()
    }

    /// True when nobody is in the conference.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// True if `id` is in the conference.
    pub fn contains(&self, id: ParticipantId) -> bool {
        self.index.contains_key(&id)
    }

    /// Adds a participant: unmuted, hearing, unity gain, not talking.
    pub fn add(&mut self, id: ParticipantId) -> Result<(), MixerError> {
        if self.index.contains_key(&id) {
            return Err(MixerError::AlreadyPresent(id));
        }
        if self.participants.len() >= self.config.max_participants {
            return Err(MixerError::Full {
                max: self.config.max_participants,
            });
        }
        let n = self.frame_len();
        self.index.insert(id, self.participants.len());
        self.participants.push(Participant {
            id,
            input: vec![0; n],
            has_input: false,
            contribution: vec![0; n],
            contributes: false,
            output: vec![0; n],
            muted: false,
            deaf: false,
            gain: Gain::UNITY,
            talking: false,
            quiet_frames: 0,
        });
        Ok(())
    }

    /// Removes a participant; a talking one gets its [`MixerEvent::StoppedTalking`].
    pub fn remove(&mut self, id: ParticipantId) -> Result<(), MixerError> {
        let i = self
            .index
            .remove(&id)
            .ok_or(MixerError::UnknownParticipant(id))?;
        let removed = self.participants.swap_remove(i);
        if let Some(moved) = self.participants.get(i) {
            self.index.insert(moved.id, i);
        }
        if removed.talking {
            self.events.push_back(MixerEvent::StoppedTalking(id));
        }
        Ok(())
    }

    fn participant(&mut self, id: ParticipantId) -> Result<&mut Participant, MixerError> {
        let i = *self
            .index
            .get(&id)
            .ok_or(MixerError::UnknownParticipant(id))?;
        self.participants
            .get_mut(i)
            .ok_or(MixerError::UnknownParticipant(id))
    }

    /// Mutes or unmutes a participant (a muted one contributes nothing).
    pub fn set_muted(&mut self, id: ParticipantId, muted: bool) -> Result<(), MixerError> {
        self.participant(id)?.muted = muted;
        Ok(())
    }

    /// Makes a participant deaf (receives silence) or hearing.
    pub fn set_deaf(&mut self, id: ParticipantId, deaf: bool) -> Result<(), MixerError> {
        self.participant(id)?.deaf = deaf;
        Ok(())
    }

    /// Sets the gain applied to a participant's contribution.
    pub fn set_gain(&mut self, id: ParticipantId, gain: Gain) -> Result<(), MixerError> {
        self.participant(id)?.gain = gain;
        Ok(())
    }

    /// True if the participant is talking, as the voice activity detector sees it.
    pub fn is_talking(&self, id: ParticipantId) -> Option<bool> {
        let i = *self.index.get(&id)?;
        self.participants.get(i).map(|p| p.talking)
    }

    /// Gives a participant's frame for this tick (replacing any earlier one).
    pub fn push_frame(&mut self, id: ParticipantId, frame: &[i16]) -> Result<(), MixerError> {
        let expected = self.frame_len();
        if frame.len() != expected {
            return Err(MixerError::FrameLength {
                id,
                len: frame.len(),
                expected,
            });
        }
        let p = self.participant(id)?;
        p.input.copy_from_slice(frame);
        p.has_input = true;
        Ok(())
    }

    /// Mixes one tick: computes every participant's output from the frames given since
    /// the previous tick, runs voice activity detection, and clears the inputs.
    pub fn mix(&mut self) {
        self.total.fill(0);
        for p in &mut self.participants {
            let talking_now = p.has_input && mean_square(&p.input) > self.vad_threshold;
            if talking_now {
                p.quiet_frames = 0;
                if !p.talking {
                    p.talking = true;
                    self.events.push_back(MixerEvent::Talking(p.id));
                }
            } else if p.talking {
                p.quiet_frames += 1;
                if p.quiet_frames > self.config.vad_hangover_frames {
                    p.talking = false;
                    self.events.push_back(MixerEvent::StoppedTalking(p.id));
                }
            }

            p.contributes = p.has_input && !p.muted && p.gain != Gain::SILENT;
            if p.contributes {
                apply_gain(&p.input, p.gain, &mut p.contribution);
                for (t, c) in self.total.iter_mut().zip(&p.contribution) {
                    *t += *c;
                }
            }
            p.has_input = false;
        }
        for p in &mut self.participants {
            if p.deaf {
                p.output.fill(0);
            } else if p.contributes {
                for ((o, t), c) in p.output.iter_mut().zip(&self.total).zip(&p.contribution) {
                    *o = saturate(*t - *c);
                }
            } else {
                for (o, t) in p.output.iter_mut().zip(&self.total) {
                    *o = saturate(*t);
                }
            }
        }
    }

    /// A participant's output of the last [`Mixer::mix`].
    pub fn output(&self, id: ParticipantId) -> Option<&[i16]> {
        let i = *self.index.get(&id)?;
        self.participants.get(i).map(|p| p.output.as_slice())
    }

    /// The next talking event.
    pub fn poll_event(&mut self) -> Option<MixerEvent> {
        self.events.pop_front()
    }
}

fn saturate(x: i32) -> i16 {
    // In range after the clamp.
    x.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

fn apply_gain(input: &[i16], gain: Gain, out: &mut [i32]) {
    if gain == Gain::UNITY {
        for (o, s) in out.iter_mut().zip(input) {
            *o = i32::from(*s);
        }
    } else {
        // |s| * 16 * 65536 < 2^36: the product needs i64.
        let g = i64::from(gain.q16());
        for (o, s) in out.iter_mut().zip(input) {
            let scaled = (i64::from(*s) * g + (1 << 15)) >> 16;
            *o = scaled.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i32;
        }
    }
}

fn mean_square(frame: &[i16]) -> f64 {
    if frame.is_empty() {
        return 0.0;
    }
    let sum: i64 = frame.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
    sum as f64 / frame.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ParticipantId = ParticipantId(1);
    const B: ParticipantId = ParticipantId(2);
    const C: ParticipantId = ParticipantId(3);

    fn three() -> Mixer {
        let mut m = Mixer::new(MixerConfig::default());
        for id in [A, B, C] {
            m.add(id).unwrap();
        }
        m
    }

    #[test]
    fn saturation() {
        let mut m = three();
        m.push_frame(A, &[30_000; 160]).unwrap();
        m.push_frame(B, &[30_000; 160]).unwrap();
        m.push_frame(C, &[-30_000; 160]).unwrap();
        m.mix();
        assert_eq!(m.output(A).unwrap()[5], 0);
        assert_eq!(m.output(C).unwrap()[5], i16::MAX);
        m.push_frame(A, &[-30_000; 160]).unwrap();
        m.push_frame(B, &[-30_000; 160]).unwrap();
        m.mix();
        assert_eq!(m.output(C).unwrap()[0], i16::MIN);
        // C sent nothing this tick: silence from C.
        assert_eq!(m.output(A).unwrap()[0], -30_000);
    }

    #[test]
    fn mute_deaf_gain() {
        let mut m = three();
        m.set_muted(A, true).unwrap();
        m.set_deaf(B, true).unwrap();
        m.set_gain(C, Gain::from_db(-6.0206)).unwrap();
        m.push_frame(A, &[1000; 160]).unwrap();
        m.push_frame(B, &[2000; 160]).unwrap();
        m.push_frame(C, &[4000; 160]).unwrap();
        m.mix();
        assert_eq!(m.output(A).unwrap()[0], 2000 + 2000);
        assert_eq!(m.output(B).unwrap(), &[0; 160][..]);
        assert_eq!(m.output(C).unwrap()[0], 2000);
        assert_eq!(Gain::from_linear(2.0).q16(), 2 << 16);
        assert_eq!(Gain::from_db(100.0), Gain::MAX);
        assert_eq!(Gain::from_db(-200.0), Gain::SILENT);
        assert_eq!(Gain::from_db(f32::NAN), Gain::SILENT);
        assert_eq!(Gain::from_db(0.0), Gain::UNITY);
        // A gain that overflows i16 saturates the contribution.
        m.set_gain(C, Gain::MAX).unwrap();
        m.push_frame(C, &[4000; 160]).unwrap();
        m.mix();
        assert_eq!(m.output(A).unwrap()[0], i16::MAX);
    }

    #[test]
    fn talking_events_with_hangover() {
        let config = MixerConfig {
            vad_hangover_frames: 2,
            ..MixerConfig::default()
        };
        let mut m = Mixer::new(config);
        m.add(A).unwrap();
        m.add(B).unwrap();
        let loud: Vec<i16> = (0..160)
            .map(|i| if i % 2 == 0 { 3000 } else { -3000 })
            .collect();
        let quiet = [3i16; 160];
        m.push_frame(A, &loud).unwrap();
        m.push_frame(B, &quiet).unwrap();
        m.mix();
        assert_eq!(m.poll_event(), Some(MixerEvent::Talking(A)));
        assert_eq!(m.poll_event(), None);
        assert_eq!(m.is_talking(A), Some(true));
        for _ in 0..2 {
            m.push_frame(A, &quiet).unwrap();
            m.mix();
            assert_eq!(m.poll_event(), None);
        }
        m.mix(); // no frame at all is quiet too
        assert_eq!(m.poll_event(), Some(MixerEvent::StoppedTalking(A)));
        // Muted participants still get talking events ("you are muted").
        m.set_muted(B, true).unwrap();
        m.push_frame(B, &loud).unwrap();
        m.mix();
        assert_eq!(m.poll_event(), Some(MixerEvent::Talking(B)));
        assert_eq!(m.output(A).unwrap()[0], 0);
        m.remove(B).unwrap();
        assert_eq!(m.poll_event(), Some(MixerEvent::StoppedTalking(B)));
    }

    #[test]
    fn membership_errors() {
        let mut m = Mixer::new(MixerConfig {
            max_participants: 2,
            rate: SampleRate::Wideband,
            ..MixerConfig::default()
        });
        m.add(A).unwrap();
        assert_eq!(m.add(A), Err(MixerError::AlreadyPresent(A)));
        m.add(B).unwrap();
        assert_eq!(m.add(C), Err(MixerError::Full { max: 2 }));
        assert_eq!(
            m.push_frame(A, &[0; 160]),
            Err(MixerError::FrameLength {
                id: A,
                len: 160,
                expected: 320
            })
        );
        assert_eq!(m.set_muted(C, true), Err(MixerError::UnknownParticipant(C)));
        m.remove(A).unwrap();
        assert_eq!(m.remove(A), Err(MixerError::UnknownParticipant(A)));
        // B moved into A's slot and still works.
        m.push_frame(B, &[7; 320]).unwrap();
        m.mix();
        assert_eq!(m.output(B).unwrap().len(), 320);
        assert!(m.contains(B) && !m.contains(A));
        m.remove(B).unwrap();
        assert!(m.is_empty());
    }
}
