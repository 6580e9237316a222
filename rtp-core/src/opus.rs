//! Opus (RFC 6716) for RTP (RFC 7587), through libopus (`audiopus`): feature `opus`.
//!
//! [`Opus`] is one mono encoder and decoder pair at 48 kHz implementing
//! [`Codec`]. The RTP clock is always 48 kHz for Opus, whatever bandwidth the encoder
//! chooses, and SDP announces it as `opus/48000/2` even for mono (RFC 7587 §7).
//!
//! Frames are 20 ms ([`FRAME_LEN`] samples) by default; the encoder also takes the other
//! Opus frame durations (2.5, 5, 10, 40 and 60 ms). Beyond the trait, a lost packet is
//! covered by [`Opus::conceal`] (packet loss concealment) or, when the next packet has
//! arrived and the sender uses in-band FEC, by [`Opus::recover`], which rebuilds the
//! lost frame from the redundancy carried in the next packet.
//!
//! ```
//! use pbxkit_rtp::codec::Codec;
//! use pbxkit_rtp::opus::{FRAME_LEN, Opus, OpusConfig};
//!
//! let mut opus = Opus::new(OpusConfig { bitrate: 24_000, ..OpusConfig::default() })?;
//! let mut payload = Vec::new();
//! opus.encode(&[0; FRAME_LEN], &mut payload)?;
//! let mut pcm = Vec::new();
//! opus.decode(&payload, &mut pcm)?;
//! assert_eq!(pcm.len(), FRAME_LEN);
//! // The next packet is lost: conceal one frame.
//! opus.conceal(&mut pcm)?;
//! assert_eq!(pcm.len(), 2 * FRAME_LEN);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::codec::{Codec, CodecError};
use crate::packet::PayloadType;
use audiopus::coder::{Decoder, Encoder, GenericCtl};
use audiopus::packet::Packet;
use audiopus::{Application, Bitrate, Channels, ErrorCode, MutSignals, SampleRate};

/// The sample rate of [`Opus`] PCM and of its RTP clock, in Hz.
pub const SAMPLE_RATE: u32 = 48_000;

/// Samples in a 20 ms frame at 48 kHz, the default packet duration.
pub const FRAME_LEN: usize = 960;

/// The frame lengths Opus can encode at 48 kHz: 2.5, 5, 10, 20, 40 and 60 ms.
pub const FRAME_LENS: [usize; 6] = [120, 240, 480, 960, 1920, 2880];

/// The longest packet duration Opus can carry (120 ms at 48 kHz), which bounds what a
/// decode may produce.
const MAX_PACKET_SAMPLES: usize = 5760;

/// The largest encoded packet libopus recommends room for.
const MAX_PAYLOAD: usize = 4000;

/// The bitrates RFC 7587 §3.1.1 describes for Opus, in bit/s.
pub const BITRATES: std::ops::RangeInclusive<u32> = 6_000..=510_000;

/// The name used in codec errors and SDP.
const NAME: &str = "opus";

/// Why an Opus codec could not be made or configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpusError {
    /// A bitrate outside [`BITRATES`].
    #[error("bitrate {0} bit/s is outside Opus' 6000..=510000")]
    Bitrate(u32),
    /// An expected packet loss above 100 %.
    #[error("expected packet loss of {0} % is above 100 %")]
    LossPercent(u8),
    /// libopus refused (it cannot allocate, or a setting it rejects).
    #[error("libopus: {0}")]
    Library(&'static str),
}

/// The settings of an [`Opus`] codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpusConfig {
    /// The target bitrate in bit/s, within [`BITRATES`]. 32 kbit/s gives fullband
    /// speech; 12–20 kbit/s is wideband speech.
    pub bitrate: u32,
    /// Whether to send in-band forward error correction (LBRR frames) so that the
    /// receiver can [`recover`](Opus::recover) a lost packet from the next one.
    pub inband_fec: bool,
    /// The packet loss the encoder should expect, in percent (0–100); libopus only
    /// adds FEC data when this is above zero.
    pub expected_loss_percent: u8,
}

impl Default for OpusConfig {
    fn default() -> Self {
        OpusConfig {
            bitrate: 32_000,
            inband_fec: true,
            expected_loss_percent: 5,
        }
    }
}

/// A mono Opus encoder and decoder pair at 48 kHz; see the [module docs](self).
#[derive(Debug)]
pub struct Opus {
    config: OpusConfig,
    encoder: Encoder,
    decoder: Decoder,
    /// Decoded PCM before it is appended to the caller's `out`: libopus writes into a
    /// slice, and a decode may produce up to 120 ms.
    scratch: Vec<i16>,
    /// The duration of the last decoded packet: concealment and FEC must produce
    /// exactly the missing duration, which is best guessed from the stream so far.
    last_frame_len: usize,
}

impl Opus {
    /// A new encoder and decoder pair with `config`.
    ///
    /// # Errors
    ///
    /// [`OpusError::Bitrate`] or [`OpusError::LossPercent`] for settings out of range;
    /// [`OpusError::Library`] if libopus cannot create its state.
    pub fn new(config: OpusConfig) -> Result<Opus, OpusError> {
        let encoder = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip)
            .map_err(|e| OpusError::Library(describe(e)))?;
        let decoder = Decoder::new(SampleRate::Hz48000, Channels::Mono)
            .map_err(|e| OpusError::Library(describe(e)))?;
        let mut opus = Opus {
            config,
            encoder,
            decoder,
            scratch: vec![0; MAX_PACKET_SAMPLES],
            last_frame_len: FRAME_LEN,
        };
        opus.set_bitrate(config.bitrate)?;
        opus.set_inband_fec(config.inband_fec, config.expected_loss_percent)?;
        Ok(opus)
    }

    /// The current settings.
    pub fn config(&self) -> &OpusConfig {
        &self.config
    }

    /// Changes the target bitrate (bit/s) from the next frame on, e.g. after a
    /// re-INVITE or when RTCP reports congestion.
    ///
    /// # Errors
    ///
    /// [`OpusError::Bitrate`] outside [`BITRATES`] (the bitrate is unchanged then).
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), OpusError> {
        if !BITRATES.contains(&bitrate) {
            return Err(OpusError::Bitrate(bitrate));
        }
        // In range of i32 by the check above.
        let bps = bitrate as i32;
        self.encoder
            .set_bitrate(Bitrate::BitsPerSecond(bps))
            .map_err(|e| OpusError::Library(describe(e)))?;
        self.config.bitrate = bitrate;
        Ok(())
    }

    /// Turns in-band FEC on or off and sets the packet loss the encoder expects.
    ///
    /// # Errors
    ///
    /// [`OpusError::LossPercent`] above 100 (nothing is changed then).
    pub fn set_inband_fec(&mut self, enabled: bool, loss_percent: u8) -> Result<(), OpusError> {
        if loss_percent > 100 {
            return Err(OpusError::LossPercent(loss_percent));
        }
        self.encoder
            .set_inband_fec(enabled)
            .and_then(|()| self.encoder.set_packet_loss_perc(loss_percent))
            .map_err(|e| OpusError::Library(describe(e)))?;
        self.config.inband_fec = enabled;
        self.config.expected_loss_percent = loss_percent;
        Ok(())
    }

    /// The encoder's delay in samples at 48 kHz: decoded audio lags the input by this
    /// much.
    ///
    /// # Errors
    ///
    /// [`OpusError::Library`] if libopus does not answer.
    pub fn lookahead(&self) -> Result<usize, OpusError> {
        self.encoder
            .lookahead()
            .map(|n| n as usize)
            .map_err(|e| OpusError::Library(describe(e)))
    }

    /// Appends one frame of packet loss concealment to `out`, for a packet that is
    /// missing (the jitter buffer's gap), as long as the last decoded packet.
    ///
    /// # Errors
    ///
    /// [`CodecError::Library`] if libopus fails; nothing is appended then.
    pub fn conceal(&mut self, out: &mut Vec<i16>) -> Result<(), CodecError> {
        self.decode_into(None, false, out)
    }

    /// Appends the frame *before* `next_payload`, which was lost, rebuilt from the
    /// in-band FEC data of `next_payload`; libopus falls back to concealment if that
    /// packet carries no FEC. Decode `next_payload` itself afterwards as usual.
    ///
    /// # Errors
    ///
    /// [`CodecError::InvalidPayload`] if `next_payload` is empty or not Opus; nothing is
    /// appended then.
    pub fn recover(&mut self, next_payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let packet = packet(next_payload)?;
        self.decode_into(Some(packet), true, out)
    }

    /// Decodes `packet` (or conceals when `None`) into the scratch buffer and appends
    /// the samples to `out`.
    fn decode_into(
        &mut self,
        packet: Option<Packet<'_>>,
        fec: bool,
        out: &mut Vec<i16>,
    ) -> Result<(), CodecError> {
        let payload_len = packet.as_ref().map_or(0, |p| p.i32_len() as usize);
        // Concealment and FEC produce exactly the frame size asked for, so they get the
        // duration of the last packet; a normal decode gets room for the longest one.
        let room = if packet.is_none() || fec {
            self.last_frame_len
        } else {
            MAX_PACKET_SAMPLES
        };
        let buffer = self.scratch.get_mut(..room).ok_or(CodecError::Library {
            codec: NAME,
            reason: "frame longer than 120 ms",
        })?;
        let signals = MutSignals::try_from(buffer).map_err(|e| CodecError::Library {
            codec: NAME,
            reason: describe(e),
        })?;
        let samples = match self.decoder.decode(packet, signals, fec) {
            Ok(samples) => samples,
            Err(audiopus::Error::Opus(ErrorCode::InvalidPacket)) => {
                return Err(CodecError::InvalidPayload {
                    codec: NAME,
                    len: payload_len,
                    reason: "corrupt or not Opus",
                });
            }
            Err(e) => {
                return Err(CodecError::Library {
                    codec: NAME,
                    reason: describe(e),
                });
            }
        };
        let decoded = self.scratch.get(..samples).ok_or(CodecError::Library {
            codec: NAME,
            reason: "decoded more samples than the buffer holds",
        })?;
        out.extend_from_slice(decoded);
        if !fec && samples > 0 {
            self.last_frame_len = samples;
        }
        Ok(())
    }
}

/// Wraps a payload for libopus, which refuses empty ones (an empty RTP payload is not
/// an Opus packet; a missing packet is [`Opus::conceal`]).
fn packet(payload: &[u8]) -> Result<Packet<'_>, CodecError> {
    Packet::try_from(payload).map_err(|e| CodecError::InvalidPayload {
        codec: NAME,
        len: payload.len(),
        reason: describe(e),
    })
}

/// A fixed description of a libopus error, so that our errors stay `Eq` and `'static`.
fn describe(e: audiopus::Error) -> &'static str {
    use audiopus::Error;
    match e {
        Error::Opus(ErrorCode::BadArgument) => "bad argument",
        Error::Opus(ErrorCode::BufferTooSmall) => "buffer too small",
        Error::Opus(ErrorCode::InternalError) => "internal error",
        Error::Opus(ErrorCode::InvalidPacket) => "invalid packet",
        Error::Opus(ErrorCode::Unimplemented) => "unimplemented request",
        Error::Opus(ErrorCode::InvalidState) => "invalid state",
        Error::Opus(ErrorCode::AllocFail) => "allocation failed",
        Error::Opus(ErrorCode::Unknown) => "unknown libopus error",
        Error::EmptyPacket => "empty packet",
        Error::PacketTooLarge => "packet too large",
        Error::SignalsTooLarge => "too many samples",
        Error::InvalidBitrate(_) => "invalid bitrate",
        Error::InvalidApplication
        | Error::InvalidBandwidth(_)
        | Error::InvalidSignal(_)
        | Error::InvalidComplexity(_)
        | Error::InvalidSampleRate(_)
        | Error::InvalidChannels(_)
        | Error::MappingExpectedLen(_) => "invalid setting",
    }
}

impl Codec for Opus {
    fn name(&self) -> &'static str {
        NAME
    }

    fn sample_rate(&self) -> u32 {
        SAMPLE_RATE
    }

    fn clock_rate(&self) -> u32 {
        SAMPLE_RATE
    }

    fn static_payload_type(&self) -> Option<PayloadType> {
        // Opus is always negotiated with a dynamic payload type.
        None
    }

    /// Encodes one frame of 2.5, 5, 10, 20, 40 or 60 ms ([`FRAME_LENS`]) into one packet.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        if !FRAME_LENS.contains(&pcm.len()) {
            return Err(CodecError::UnsupportedFrame {
                codec: NAME,
                len: pcm.len(),
            });
        }
        let start = out.len();
        out.resize(start + MAX_PAYLOAD, 0);
        let written = out
            .get_mut(start..)
            .map(|room| self.encoder.encode(pcm, room));
        match written {
            Some(Ok(n)) => {
                out.truncate(start + n);
                Ok(())
            }
            Some(Err(e)) => {
                out.truncate(start);
                Err(CodecError::Library {
                    codec: NAME,
                    reason: describe(e),
                })
            }
            None => {
                out.truncate(start);
                Err(CodecError::Library {
                    codec: NAME,
                    reason: "no room for the packet",
                })
            }
        }
    }

    /// Decodes one packet (up to 120 ms). An empty payload is an error: call
    /// [`Opus::conceal`] for a missing packet.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let packet = packet(payload)?;
        self.decode_into(Some(packet), false, out)
    }

    fn reset(&mut self) {
        // OPUS_RESET_STATE cannot fail on a state that libopus created; there is
        // nothing to report if it did, and the next packets would resynchronise.
        let _ = self.encoder.reset_state();
        let _ = self.decoder.reset_state();
        self.last_frame_len = FRAME_LEN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `seconds` of a `freq` Hz sine at 48 kHz with peak `amplitude`.
    fn sine(freq: f64, amplitude: f64, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|n| {
                let t = n as f64 / f64::from(SAMPLE_RATE);
                (amplitude * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16
            })
            .collect()
    }

    /// Least-squares fit of `a sin + b cos` at `freq` to `signal`; returns the signal
    /// power, the power of the fitted sine and the power of what remains.
    fn fit(signal: &[i16], freq: f64) -> (f64, f64, f64) {
        let w = 2.0 * std::f64::consts::PI * freq / f64::from(SAMPLE_RATE);
        let (mut ss, mut sc, mut cc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (n, &y) in signal.iter().enumerate() {
            let (s, c) = (w * n as f64).sin_cos();
            let y = f64::from(y);
            ss += s * s;
            sc += s * c;
            cc += c * c;
            ys += y * s;
            yc += y * c;
        }
        let det = ss * cc - sc * sc;
        let a = (ys * cc - yc * sc) / det;
        let b = (yc * ss - ys * sc) / det;
        let (mut total, mut fitted, mut residual) = (0.0, 0.0, 0.0);
        for (n, &y) in signal.iter().enumerate() {
            let (s, c) = (w * n as f64).sin_cos();
            let y = f64::from(y);
            let model = a * s + b * c;
            total += y * y;
            fitted += model * model;
            residual += (y - model) * (y - model);
        }
        let len = signal.len() as f64;
        (total / len, fitted / len, residual / len)
    }

    fn snr_db(signal: &[i16], freq: f64) -> f64 {
        let (_, fitted, residual) = fit(signal, freq);
        10.0 * (fitted / residual.max(1e-9)).log10()
    }

    fn round_trip(config: OpusConfig, input: &[i16]) -> Vec<i16> {
        let mut opus = Opus::new(config).unwrap();
        let mut out = Vec::new();
        for frame in input.chunks_exact(FRAME_LEN) {
            let mut payload = Vec::new();
            opus.encode(frame, &mut payload).unwrap();
            assert!(!payload.is_empty() && payload.len() <= MAX_PAYLOAD);
            opus.decode(&payload, &mut out).unwrap();
        }
        assert_eq!(out.len(), input.len());
        out
    }

    /// A 1 kHz tone survives a round trip as a 1 kHz tone.
    ///
    /// The SNR is measured against the best-fitting 1 kHz sine (any phase, so the codec
    /// delay does not matter) over the second half of one second: in the first few
    /// hundred milliseconds the encoder chooses its mode for the signal, and its switch
    /// from SILK or hybrid to CELT leaves one glitch (about 16 dB over 100 ms, with
    /// libopus 1.3). Opus is a perceptual codec, not a waveform coder, so it is not
    /// held to G.711's ~38 dB; libopus 1.3 gives 25–50 dB here depending on the
    /// bitrate. 20 dB (everything that is not the tone carries 1 % of the power) leaves
    /// room for other libopus versions, and still separates "the same sine back" from
    /// any failure by far: a wrong frequency fits at about 0 dB or below (checked with
    /// 1.1 kHz), silence or noise lower still.
    #[test]
    fn sine_round_trip_keeps_frequency_and_snr() {
        let input = sine(1000.0, 10_000.0, 50 * FRAME_LEN);
        let input_snr = snr_db(&input, 1000.0);
        assert!(
            input_snr > 60.0,
            "the test signal itself: {input_snr:.1} dB"
        );
        for bitrate in [16_000, 32_000, 64_000] {
            let config = OpusConfig {
                bitrate,
                ..OpusConfig::default()
            };
            let output = round_trip(config, &input);
            let steady = &output[25 * FRAME_LEN..];
            let snr = snr_db(steady, 1000.0);
            assert!(snr > 20.0, "{bitrate} bit/s: SNR {snr:.1} dB");
            // The level is kept too (within 1 dB).
            let (_, fitted, _) = fit(steady, 1000.0);
            let (_, expected, _) = fit(&input, 1000.0);
            let level_db = 10.0 * (fitted / expected).log10();
            assert!(
                level_db.abs() < 1.0,
                "{bitrate} bit/s: level {level_db:.2} dB"
            );
            // And it is not a neighbouring frequency: 1.1 kHz fits poorly.
            let wrong = snr_db(steady, 1100.0);
            assert!(wrong < 0.0, "{bitrate} bit/s: {wrong:.1} dB at 1.1 kHz");
        }
    }

    /// Encodes 50 frames of a 1 kHz tone with the default settings and 20 % expected
    /// loss; decodes them with frame `lost` missing, filled by `fill`.
    fn with_loss(lost: usize, fill: impl Fn(&mut Opus, &[u8], &mut Vec<i16>)) -> Vec<i16> {
        let input = sine(1000.0, 10_000.0, 50 * FRAME_LEN);
        let config = OpusConfig {
            expected_loss_percent: 20,
            ..OpusConfig::default()
        };
        let mut opus = Opus::new(config).unwrap();
        let payloads: Vec<Vec<u8>> = input
            .chunks_exact(FRAME_LEN)
            .map(|frame| {
                let mut payload = Vec::new();
                opus.encode(frame, &mut payload).unwrap();
                payload
            })
            .collect();
        let mut out = Vec::new();
        for (i, payload) in payloads.iter().enumerate() {
            if i == lost {
                let next = payloads.get(i + 1).map_or(&[][..], Vec::as_slice);
                fill(&mut opus, next, &mut out);
                continue;
            }
            opus.decode(payload, &mut out).unwrap();
        }
        assert_eq!(out.len(), input.len(), "the lost frame was filled, 20 ms");
        out
    }

    /// Mean power of a frame of a 10 000-peak sine: 10 000² / 2.
    const TONE_POWER: f64 = 5e7;

    fn power(pcm: &[i16]) -> f64 {
        pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len() as f64
    }

    /// Packet loss concealment extrapolates the tone and fades it: libopus 1.3 gives
    /// 0.3–0.6 of the power over the concealed 20 ms, the first 5 ms at 16–30 dB SNR
    /// against a 1 kHz sine, decaying after. The checks are that concealment is not
    /// silence (a tenth of the power), that it continues the tone at first (10 dB over
    /// 5 ms), and that decoding goes on afterwards.
    #[test]
    fn concealment_fills_a_missing_packet() {
        // No frame 99: nothing lost.
        let lossless = with_loss(99, |_, _, _| ());
        for lost in [12, 40] {
            let out = with_loss(lost, |opus, _, out| opus.conceal(out).unwrap());
            let concealed = &out[lost * FRAME_LEN..(lost + 1) * FRAME_LEN];
            assert!(
                power(concealed) > TONE_POWER / 10.0,
                "frame {lost}: near silent"
            );
            let start = snr_db(&concealed[..240], 1000.0);
            assert!(start > 10.0, "frame {lost}: first 5 ms at {start:.1} dB");
            // The stream goes on at the tone's level.
            let after = &out[(lost + 2) * FRAME_LEN..(lost + 7) * FRAME_LEN];
            let level = 10.0 * (power(after) / TONE_POWER).log10();
            assert!(
                level.abs() < 3.0,
                "frame {lost}: {level:.1} dB after the loss"
            );
        }
        // In SILK mode (frame 12), 100 ms after the loss decoding is as good as without
        // it (within 3 dB). CELT (frame 40) re-converges more slowly on a pure tone (its
        // band energies are predicted from frame to frame: about 20 dB after 200 ms with
        // libopus 1.3), so it is held only to the level above.
        let concealed = with_loss(12, |opus, _, out| opus.conceal(out).unwrap());
        let after = 17 * FRAME_LEN..19 * FRAME_LEN;
        let snr = snr_db(&concealed[after.clone()], 1000.0);
        let clean = snr_db(&lossless[after], 1000.0);
        assert!(
            snr > clean - 3.0,
            "{snr:.1} dB after the loss, {clean:.1} dB without"
        );

        // A 10 ms stream conceals 10 ms.
        let input = sine(1000.0, 10_000.0, 480);
        let mut opus = Opus::new(OpusConfig::default()).unwrap();
        let mut payload = Vec::new();
        opus.encode(&input, &mut payload).unwrap();
        let mut out = Vec::new();
        opus.decode(&payload, &mut out).unwrap();
        opus.conceal(&mut out).unwrap();
        assert_eq!(out.len(), 960);
    }

    /// With in-band FEC, the packet after a loss carries a low-bitrate copy of the lost
    /// frame. The encoder adds it in SILK and hybrid modes, which libopus 1.3 uses for
    /// the first half second of this tone at 32 kbit/s (frame 12); the recovered frame
    /// is then nearly as good as the frame itself (39 dB here), far above concealment
    /// (5 dB over the whole frame).
    #[test]
    fn fec_recovers_a_lost_packet() {
        let lost = 12;
        let recovered = with_loss(lost, |opus, next, out| opus.recover(next, out).unwrap());
        let concealed = with_loss(lost, |opus, _, out| opus.conceal(out).unwrap());
        let frame = lost * FRAME_LEN..(lost + 1) * FRAME_LEN;
        let fec_snr = snr_db(&recovered[frame.clone()], 1000.0);
        let plc_snr = snr_db(&concealed[frame.clone()], 1000.0);
        assert!(fec_snr > 20.0, "FEC {fec_snr:.1} dB");
        assert!(
            fec_snr > plc_snr + 10.0,
            "FEC {fec_snr:.1} dB, PLC {plc_snr:.1} dB"
        );
        let level = 10.0 * (power(&recovered[frame]) / TONE_POWER).log10();
        assert!(level.abs() < 1.0, "FEC level {level:.2} dB");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut opus = Opus::new(OpusConfig::default()).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            opus.decode(&[], &mut out),
            Err(CodecError::InvalidPayload {
                codec: "opus",
                len: 0,
                reason: "empty packet"
            })
        );
        // Code 3 (arbitrary frame count) with a count of zero frames: RFC 6716 §3.2.5
        // makes it invalid (R5).
        assert_eq!(
            opus.decode(&[0x03, 0x00], &mut out),
            Err(CodecError::InvalidPayload {
                codec: "opus",
                len: 2,
                reason: "corrupt or not Opus"
            })
        );
        // Code 3 with 48 frames of 20 ms: 960 ms is over the 120 ms limit (R5).
        assert!(matches!(
            opus.decode(&[0x7B, 48], &mut out),
            Err(CodecError::InvalidPayload { .. })
        ));
        // Code 1 (two frames of equal size) with an odd remaining length (R3).
        assert!(matches!(
            opus.decode(&[0x01, 1, 2, 3], &mut out),
            Err(CodecError::InvalidPayload { .. })
        ));
        assert!(out.is_empty(), "nothing appended on error");
        assert!(opus.recover(&[], &mut out).is_err());
        // Arbitrary bytes: errors or audio, never a panic, never more than 120 ms.
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len % 40)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let mut pcm = Vec::new();
            if opus.decode(&bytes, &mut pcm).is_ok() {
                assert!(pcm.len() <= MAX_PACKET_SAMPLES);
            }
        }
    }

    /// A codec moves with its call leg between threads (tokio tasks).
    #[test]
    fn opus_is_send() {
        fn send<T: Send>() {}
        send::<Opus>();
    }

    #[test]
    fn settings_and_frame_lengths() {
        assert_eq!(
            Opus::new(OpusConfig {
                bitrate: 5_999,
                ..OpusConfig::default()
            })
            .err(),
            Some(OpusError::Bitrate(5_999))
        );
        let mut opus = Opus::new(OpusConfig::default()).unwrap();
        assert_eq!(opus.set_bitrate(600_000), Err(OpusError::Bitrate(600_000)));
        assert_eq!(opus.config().bitrate, 32_000);
        opus.set_bitrate(16_000).unwrap();
        assert_eq!(opus.config().bitrate, 16_000);
        assert_eq!(
            opus.set_inband_fec(true, 101),
            Err(OpusError::LossPercent(101))
        );
        opus.set_inband_fec(false, 0).unwrap();
        assert!(!opus.config().inband_fec);
        assert!(opus.lookahead().unwrap() > 0);
        assert_eq!(opus.name(), "opus");
        assert_eq!(opus.clock_rate(), 48_000);
        assert_eq!(opus.sample_rate(), 48_000);
        assert_eq!(opus.static_payload_type(), None);

        let mut payload = vec![0xAA];
        assert_eq!(
            opus.encode(&[0; 160], &mut payload),
            Err(CodecError::UnsupportedFrame {
                codec: "opus",
                len: 160
            })
        );
        assert_eq!(payload, [0xAA], "nothing appended on error");
        for len in FRAME_LENS {
            let mut payload = vec![0xAA];
            opus.encode(&vec![0; len], &mut payload).unwrap();
            assert_eq!(payload[0], 0xAA, "appends after what was there");
            let mut pcm = Vec::new();
            opus.decode(&payload[1..], &mut pcm).unwrap();
            assert_eq!(pcm.len(), len);
        }
        opus.reset();
        let mut pcm = Vec::new();
        opus.conceal(&mut pcm).unwrap();
        assert_eq!(pcm.len(), FRAME_LEN, "reset forgets the last frame length");
    }
}
