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
//! The per-sample work is four kernels over fixed-size chunks of plain slices (frame
//! energy, gain, summing into the total, N-1 output with saturation), written so that
//! the compiler vectorises them: integer arithmetic only, no branches or bounds checks
//! inside a chunk, and no allocation per tick. All participants' frames live in one
//! input and one output buffer, which each tick streams through.
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
use std::hash::{BuildHasherDefault, Hasher};

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

/// A participant's state; its frames are in the mixer's `inputs` and `outputs` at the
/// same position.
#[derive(Debug, Clone)]
struct Participant {
    id: ParticipantId,
    has_input: bool,
    /// Whether its (gained) input went into this tick's total.
    contributes: bool,
    muted: bool,
    deaf: bool,
    gain: Gain,
    talking: bool,
    quiet_frames: u32,
}

/// Hashes [`ParticipantId`]s with one multiplication (Fibonacci hashing) instead of
/// SipHash, which was a tenth of every [`Mixer::push_frame`]. Ids are chosen by the
/// application, not by a peer, so resistance to chosen-key flooding is not needed.
#[derive(Debug, Clone, Copy, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // The multiplication leaves the best-mixed bits at the top; fold them down so
        // that the bucket index (low bits) gets them too.
        self.0 ^ (self.0 >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached if `ParticipantId`'s `Hash` stops being one `write_u64`.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A conference bridge; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Mixer {
    config: MixerConfig,
    participants: Vec<Participant>,
    index: HashMap<ParticipantId, usize, BuildHasherDefault<IdHasher>>,
    /// Every participant's input frame, participant `i` at `i * frame_len`: one buffer,
    /// so that each tick streams through memory instead of chasing a pointer per
    /// participant. A gain other than unity is applied here in place during the tick
    /// (the frame is consumed by the tick anyway).
    inputs: Vec<i16>,
    /// Every participant's output frame, laid out as `inputs`.
    outputs: Vec<i16>,
    total: Vec<i32>,
    events: VecDeque<MixerEvent>,
    /// The least energy (sum of squared samples) of a frame that counts as speech, or
    /// `None` if no frame can (a NaN threshold, or one above full scale).
    vad_min_energy: Option<u64>,
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
        let vad_min_energy = min_energy_above(vad_threshold, config.rate.frame_len());
        Mixer {
            config,
            participants: Vec::new(),
            index: HashMap::default(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            total: vec![0; config.rate.frame_len()],
            events: VecDeque::new(),
            vad_min_energy,
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
            has_input: false,
            contributes: false,
            muted: false,
            deaf: false,
            gain: Gain::UNITY,
            talking: false,
            quiet_frames: 0,
        });
        self.inputs.resize(self.inputs.len() + n, 0);
        self.outputs.resize(self.outputs.len() + n, 0);
        Ok(())
    }

    /// Removes a participant; a talking one gets its [`MixerEvent::StoppedTalking`].
    pub fn remove(&mut self, id: ParticipantId) -> Result<(), MixerError> {
        let i = self
            .index
            .remove(&id)
            .ok_or(MixerError::UnknownParticipant(id))?;
        let removed = self.participants.swap_remove(i);
        let n = self.frame_len();
        let last = self.participants.len();
        if let Some(moved) = self.participants.get(i) {
            self.index.insert(moved.id, i);
            // Its frames follow it into the freed slot.
            self.inputs.copy_within(last * n..(last + 1) * n, i * n);
            self.outputs.copy_within(last * n..(last + 1) * n, i * n);
        }
        self.inputs.truncate(last * n);
        self.outputs.truncate(last * n);
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

    /// Whether a participant is muted (`None`: not in the conference).
    pub fn is_muted(&self, id: ParticipantId) -> Option<bool> {
        let i = *self.index.get(&id)?;
        self.participants.get(i).map(|p| p.muted)
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
        let unknown = MixerError::UnknownParticipant(id);
        let i = *self.index.get(&id).ok_or(unknown.clone())?;
        let (Some(p), Some(input)) = (
            self.participants.get_mut(i),
            self.inputs.get_mut(i * expected..(i + 1) * expected),
        ) else {
            return Err(unknown);
        };
        input.copy_from_slice(frame);
        p.has_input = true;
        Ok(())
    }

    /// Mixes one tick: computes every participant's output from the frames given since
    /// the previous tick, runs voice activity detection, and clears the inputs.
    pub fn mix(&mut self) {
        let n = self.frame_len();
        self.total.fill(0);
        for (p, input) in self
            .participants
            .iter_mut()
            .zip(self.inputs.chunks_exact_mut(n))
        {
            let talking_now =
                p.has_input && self.vad_min_energy.is_some_and(|min| energy(input) >= min);
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
                if p.gain != Gain::UNITY {
                    apply_gain(input, p.gain);
                }
                add_into(&mut self.total, input);
            }
            p.has_input = false;
        }
        let frames = self
            .inputs
            .chunks_exact(n)
            .zip(self.outputs.chunks_exact_mut(n));
        for (p, (input, output)) in self.participants.iter().zip(frames) {
            if p.deaf {
                output.fill(0);
            } else if p.contributes {
                mix_minus(&self.total, input, output);
            } else {
                saturate_into(&self.total, output);
            }
        }
    }

    /// A participant's output of the last [`Mixer::mix`].
    pub fn output(&self, id: ParticipantId) -> Option<&[i16]> {
        let i = *self.index.get(&id)?;
        let n = self.frame_len();
        self.outputs.get(i * n..(i + 1) * n)
    }

    /// The next talking event.
    pub fn poll_event(&mut self) -> Option<MixerEvent> {
        self.events.pop_front()
    }
}

/// Samples per chunk of the kernels below: a whole number of SIMD registers for `i32`
/// lanes at any common width (4 × 128, 2 × 256, 1 × 512 bits), and a divisor of both
/// frame lengths (160 and 320), so that the scalar remainder loops do not run for the
/// mixer's own frames.
const CHUNK: usize = 16;

fn saturate(x: i32) -> i16 {
    // In range after the clamp.
    x.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

/// `total += frame`, widened to `i32`.
// Not inlined: as a function of its own, its slices are known not to overlap, which
// the vectoriser needs; inlined into `mix` it fell back to scalar code.
#[inline(never)]
fn add_into(total: &mut [i32], frame: &[i16]) {
    let (totals, total_rest) = total.as_chunks_mut::<CHUNK>();
    let (frames, frame_rest) = frame.as_chunks::<CHUNK>();
    for (t, f) in totals.iter_mut().zip(frames) {
        for (t, f) in t.iter_mut().zip(f) {
            *t += i32::from(*f);
        }
    }
    for (t, f) in total_rest.iter_mut().zip(frame_rest) {
        *t += i32::from(*f);
    }
}

/// `out = saturate(total - own)`: the N-1 mix of one participant.
// Not inlined: as a function of its own, its slices are known not to overlap, which
// the vectoriser needs; inlined into `mix` it fell back to scalar code.
#[inline(never)]
fn mix_minus(total: &[i32], own: &[i16], out: &mut [i16]) {
    let (totals, total_rest) = total.as_chunks::<CHUNK>();
    let (owns, own_rest) = own.as_chunks::<CHUNK>();
    let (outs, out_rest) = out.as_chunks_mut::<CHUNK>();
    for ((o, t), s) in outs.iter_mut().zip(totals).zip(owns) {
        for ((o, t), s) in o.iter_mut().zip(t).zip(s) {
            *o = saturate(*t - i32::from(*s));
        }
    }
    for ((o, t), s) in out_rest.iter_mut().zip(total_rest).zip(own_rest) {
        *o = saturate(*t - i32::from(*s));
    }
}

/// `out = saturate(total)`: the mix of a participant who contributed nothing.
// Not inlined: as a function of its own, its slices are known not to overlap, which
// the vectoriser needs; inlined into `mix` it fell back to scalar code.
#[inline(never)]
fn saturate_into(total: &[i32], out: &mut [i16]) {
    let (totals, total_rest) = total.as_chunks::<CHUNK>();
    let (outs, out_rest) = out.as_chunks_mut::<CHUNK>();
    for (o, t) in outs.iter_mut().zip(totals) {
        for (o, t) in o.iter_mut().zip(t) {
            *o = saturate(*t);
        }
    }
    for (o, t) in out_rest.iter_mut().zip(total_rest) {
        *o = saturate(*t);
    }
}

/// `frame = saturate((frame × gain + ½) >> 16)`, rounding half up as in Q16.
///
/// The product needs 36 bits, but splitting the gain into its integer part `hi` (at most
/// 16) and fraction `lo` (below 2¹⁶) keeps every step in `i32`, which vectorises where
/// `i64` products do not: `(s × (hi·2¹⁶ + lo) + 2¹⁵) >> 16 = s × hi + ((s × lo + 2¹⁵) >> 16)`
/// exactly, since `s × hi · 2¹⁶` is a multiple of 2¹⁶ and `>>` is floor division. With
/// `|s| ≤ 2¹⁵` and `lo < 2¹⁶`, `|s × lo + 2¹⁵| < 2³¹` and `|s × hi| ≤ 2¹⁹`.
// Not inlined: as a function of its own, its slices are known not to overlap, which
// the vectoriser needs; inlined into `mix` it fell back to scalar code.
#[inline(never)]
fn apply_gain(frame: &mut [i16], gain: Gain) {
    // hi ≤ 16 (Gain::MAX) fits i16 and lo fits u16; typing them so tells the compiler
    // that the products are of 16-bit values, which makes the vector code about a third
    // faster than with i32 operands.
    let hi = (gain.q16() >> 16) as i16;
    let lo = (gain.q16() & 0xFFFF) as u16;
    let scale = |s: i16| {
        let s = i32::from(s);
        saturate(s * i32::from(hi) + ((s * i32::from(lo) + (1 << 15)) >> 16))
    };
    let (chunks, rest) = frame.as_chunks_mut::<CHUNK>();
    for chunk in chunks {
        for s in chunk {
            *s = scale(*s);
        }
    }
    for s in rest {
        *s = scale(*s);
    }
}

/// The least frame energy `e` (sum of squared samples over `len` samples) whose mean
/// square `e / len`, computed in `f64`, is above `threshold`.
///
/// Voice activity is defined by that `f64` comparison; finding its integer boundary
/// once, at construction, keeps the decision bit for bit while taking a division out of
/// every participant's tick. The comparison is monotonic in `e` (the conversion to
/// `f64` and the division by a positive constant both are), so a binary search finds
/// the boundary.
fn min_energy_above(threshold: f64, len: usize) -> Option<u64> {
    let mean_above = |e: u64| e as f64 / len as f64 > threshold;
    // The largest energy a frame can have: every sample at -32768.
    let mut high = (len as u64).checked_mul(1 << 30)?;
    if len == 0 || !mean_above(high) {
        return None;
    }
    let mut low = 0;
    if mean_above(low) {
        return Some(0);
    }
    // mean_above(low) is false and mean_above(high) is true.
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if mean_above(mid) {
            high = mid;
        } else {
            low = mid;
        }
    }
    Some(high)
}

/// The energy of a frame (the sum of its squared samples), for voice activity
/// detection.
///
/// The sum is exact (as `i64` arithmetic would give) but kept in `u32` lanes, which
/// vectorise where 64-bit accumulators do not: the square of an `i16` is at most 2³⁰,
/// so the sum `p` of two squares fits `u32` (at most 2³¹); its high and low 16 bits are
/// summed apart, `hi` (at most 2¹⁵ per pair) and `lo` (below 2¹⁶ per pair), and a block
/// of 2¹⁵ pairs cannot overflow either before they are combined in `u64` as
/// `hi · 2¹⁶ + lo`.
#[inline]
fn energy(frame: &[i16]) -> u64 {
    let square = |s: i16| (i32::from(s) * i32::from(s)) as u32;
    let mut sum = 0u64;
    for block in frame.chunks(1 << 16) {
        let (pairs, rest) = block.as_chunks::<2>();
        let (mut hi, mut lo) = (0u32, 0u32);
        for [a, b] in pairs {
            let p = square(*a) + square(*b);
            hi += p >> 16;
            lo += p & 0xFFFF;
        }
        sum += (u64::from(hi) << 16) + u64::from(lo);
        sum += rest.iter().map(|&s| u64::from(square(s))).sum::<u64>();
    }
    sum
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

/// The mixer as it was first written (per-participant `i32` contribution buffers,
/// scalar `i64` gain and energy), kept as the reference that the vectorised kernels
/// must match sample for sample and event for event.
#[cfg(test)]
mod reference {
    use super::{Gain, MixerConfig, MixerEvent, ParticipantId};

    pub(super) struct Member {
        pub(super) id: ParticipantId,
        pub(super) input: Option<Vec<i16>>,
        pub(super) muted: bool,
        pub(super) deaf: bool,
        pub(super) gain: Gain,
        pub(super) talking: bool,
        pub(super) quiet_frames: u32,
        pub(super) output: Vec<i16>,
    }

    /// One tick over `members`; returns the events in order.
    pub(super) fn mix(config: &MixerConfig, members: &mut [Member]) -> Vec<MixerEvent> {
        let n = config.rate.frame_len();
        let full_scale = f64::from(i16::MAX);
        let threshold =
            full_scale * full_scale * 10f64.powf(f64::from(config.vad_threshold_dbfs) / 10.0);
        let mut events = Vec::new();
        let mut total = vec![0i64; n];
        let mut contributions: Vec<Option<Vec<i64>>> = Vec::new();
        for m in members.iter_mut() {
            let energy = m.input.as_ref().map_or(0.0, |input| {
                let sum: i64 = input.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
                sum as f64 / input.len() as f64
            });
            if m.input.is_some() && energy > threshold {
                m.quiet_frames = 0;
                if !m.talking {
                    m.talking = true;
                    events.push(MixerEvent::Talking(m.id));
                }
            } else if m.talking {
                m.quiet_frames += 1;
                if m.quiet_frames > config.vad_hangover_frames {
                    m.talking = false;
                    events.push(MixerEvent::StoppedTalking(m.id));
                }
            }
            let contribution = match &m.input {
                Some(input) if !m.muted && m.gain != Gain::SILENT => {
                    let g = i64::from(m.gain.q16());
                    let c: Vec<i64> = input
                        .iter()
                        .map(|&s| ((i64::from(s) * g + (1 << 15)) >> 16).clamp(-32768, 32767))
                        .collect();
                    for (t, c) in total.iter_mut().zip(&c) {
                        *t += c;
                    }
                    Some(c)
                }
                _ => None,
            };
            contributions.push(contribution);
        }
        for (m, c) in members.iter_mut().zip(&contributions) {
            m.output = (0..n)
                .map(|i| {
                    if m.deaf {
                        0
                    } else {
                        let own = c.as_ref().map_or(0, |c| c[i]);
                        (total[i] - own).clamp(-32768, 32767) as i16
                    }
                })
                .collect();
        }
        events
    }
}

#[cfg(test)]
mod matches_reference {
    use super::*;
    use proptest::prelude::*;

    /// Per participant: mute, deafness, gain (unity, any up to the maximum, or
    /// silent), and per tick an optional frame drawn loud, quiet or at full scale.
    #[derive(Debug, Clone)]
    struct Script {
        muted: bool,
        deaf: bool,
        gain: u32,
        frames: Vec<Option<(i16, u64)>>,
    }

    fn frame(len: usize, (scale, seed): (i16, u64)) -> Vec<i16> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let raw = state as i16;
                match scale {
                    // Full scale, including i16::MIN, to reach every saturation.
                    0 => raw,
                    1 => {
                        if raw < 0 {
                            i16::MIN
                        } else {
                            i16::MAX
                        }
                    }
                    s => raw / s,
                }
            })
            .collect()
    }

    fn script(ticks: usize) -> impl Strategy<Value = Script> {
        (
            proptest::bool::weighted(0.2),
            proptest::bool::weighted(0.2),
            prop_oneof![
                Just(Gain::UNITY.q16()),
                Just(Gain::MAX.q16()),
                Just(0u32),
                0..=Gain::MAX.q16()
            ],
            proptest::collection::vec(
                proptest::option::weighted(0.8, (0i16..300, any::<u64>())),
                ticks,
            ),
        )
            .prop_map(|(muted, deaf, gain, frames)| Script {
                muted,
                deaf,
                gain,
                frames,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]

        #[test]
        fn vectorised_mixer_matches_the_reference(
            scripts in proptest::collection::vec(script(6), 1..40),
            wideband in any::<bool>(),
            removal in proptest::option::of((any::<usize>(), 1usize..6)),
        ) {
            let config = MixerConfig {
                rate: if wideband { SampleRate::Wideband } else { SampleRate::Narrowband },
                vad_hangover_frames: 1,
                ..MixerConfig::default()
            };
            let len = config.rate.frame_len();
            let mut mixer = Mixer::new(config);
            let mut members = Vec::new();
            for (i, s) in scripts.iter().enumerate() {
                let id = ParticipantId(i as u64);
                mixer.add(id).unwrap();
                mixer.set_muted(id, s.muted).unwrap();
                mixer.set_deaf(id, s.deaf).unwrap();
                mixer.set_gain(id, Gain(s.gain)).unwrap();
                members.push(reference::Member {
                    id,
                    input: None,
                    muted: s.muted,
                    deaf: s.deaf,
                    gain: Gain(s.gain),
                    talking: false,
                    quiet_frames: 0,
                    output: Vec::new(),
                });
            }
            for tick in 0..6 {
                // Removing one moves the last participant (and its frames) into its slot.
                if let Some((which, at)) = removal
                    && at == tick
                {
                    let gone = members.swap_remove(which % members.len());
                    mixer.remove(gone.id).unwrap();
                    let event = mixer.poll_event();
                    let expected = gone.talking.then_some(MixerEvent::StoppedTalking(gone.id));
                    prop_assert_eq!(event, expected);
                    prop_assert!(!mixer.contains(gone.id));
                }
                for m in &mut members {
                    let s = &scripts[m.id.0 as usize];
                    m.input = s.frames[tick].map(|f| frame(len, f));
                    if let Some(input) = &m.input {
                        mixer.push_frame(m.id, input).unwrap();
                    }
                }
                mixer.mix();
                let expected = reference::mix(&config, &mut members);
                let events: Vec<_> = std::iter::from_fn(|| mixer.poll_event()).collect();
                prop_assert_eq!(events, expected, "tick {}", tick);
                for m in &members {
                    prop_assert_eq!(mixer.output(m.id).unwrap(), &m.output[..], "{} tick {}", m.id, tick);
                    prop_assert_eq!(mixer.is_talking(m.id), Some(m.talking));
                }
            }
        }
    }

    #[test]
    fn kernels_handle_lengths_that_are_not_whole_chunks() {
        for len in [0, 1, 15, 17, 33] {
            let input: Vec<i16> = (0..len).map(|i| (i as i16 - 8) * 900).collect();
            let mut total = vec![80_000; len];
            add_into(&mut total, &input);
            let mut out = vec![0; len];
            mix_minus(&total, &input, &mut out);
            assert!(out.iter().all(|&o| o == i16::MAX), "{len}");
            saturate_into(&total, &mut out);
            out.copy_from_slice(&input);
            apply_gain(&mut out, Gain(3 << 15));
            for (o, s) in out.iter().zip(&input) {
                let expected = ((i64::from(*s) * (3 << 15) + (1 << 15)) >> 16).clamp(-32768, 32767);
                assert_eq!(i64::from(*o), expected);
            }
            let exact: i64 = input.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
            assert_eq!(energy(&input), exact as u64);
        }
        assert_eq!(energy(&[i16::MIN; 160]), 160 << 30);
    }

    /// The integer boundary gives the same decisions as the mean-square comparison,
    /// at and around it, for the thresholds in use and the edge cases.
    #[test]
    fn energy_boundary_matches_the_mean_square_comparison() {
        let full_scale = f64::from(i16::MAX);
        for len in [160, 320, 7] {
            for dbfs in [-80.0, -45.0, -45.5, -20.0, -3.0, 0.0, 0.1, 6.0, f64::NAN] {
                let threshold = full_scale * full_scale * 10f64.powf(dbfs / 10.0);
                let above = |e: u64| e as f64 / len as f64 > threshold;
                let max = len as u64 * (1 << 30);
                match min_energy_above(threshold, len) {
                    Some(min) => {
                        assert!(above(min), "{len} {dbfs}");
                        assert!(min == 0 || !above(min - 1), "{len} {dbfs}");
                        for e in [min.saturating_sub(1000), min + 1, min + 1000, max] {
                            assert_eq!(above(e), e >= min, "{len} {dbfs} {e}");
                        }
                    }
                    None => assert!(!above(max), "{len} {dbfs}"),
                }
            }
        }
        assert_eq!(min_energy_above(-1.0, 160), Some(0));
        assert_eq!(min_energy_above(1.0, 0), None);
    }
}
