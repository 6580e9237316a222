//! Transcoding one RTP stream from one codec to another, packet by packet, as a B2BUA
//! does when its two legs share no codec (G.711 ↔ G.722 ↔ Opus).
//!
//! A [`Transcoder`] takes the packets one leg sends and gives the packets to send to
//! the other leg: audio is decoded, resampled when the rates differ, and encoded again
//! with the same duration per packet; RFC 4733 telephone events keep their content
//! and get the other leg's payload type (their timestamps and durations rescaled to
//! its clock); anything else (comfort noise, codecs not negotiated) is dropped,
//! because the other leg did not agree to receive it. Sequence numbers, SSRC and
//! marker are kept, so that the receiver's loss and jitter statistics stay true.
//!
//! ```
//! use bytes::Bytes;
//! use pbxkit_rtp::codec::G722;
//! use pbxkit_rtp::g711::Law;
//! use pbxkit_rtp::transcode::{Side, Transcoder};
//! use pbxkit_rtp::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
//!
//! // A phone sends PCMU (PT 0); the other one only does G.722 (PT 9).
//! let mut t = Transcoder::new(
//!     Side::new(PayloadType::PCMU, Box::new(Law::Ulaw)),
//!     Side::new(PayloadType::G722, Box::new(G722::new())),
//! );
//! let pcmu = RtpPacket::new(PayloadType::PCMU, SeqNo(1), RtpTimestamp(0), Ssrc(7),
//!     Bytes::from(vec![0xFF; 160]));
//! let mut out = Vec::new();
//! assert!(t.translate(&pcmu.to_bytes(), &mut out)?);
//! let g722 = RtpPacket::parse(out)?;
//! assert_eq!(g722.payload_type(), PayloadType::G722);
//! // 20 ms of G.722 is 160 bytes too (320 samples at 16 kHz, 4 bits each).
//! assert_eq!(g722.payload().len(), 160);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::codec::{Codec, CodecError};
use crate::packet::{ParseError, PayloadType, RtpPacket, RtpTimestamp};
use crate::resample::{ResampleError, Resampler};
use bytes::Bytes;

/// One leg of a transcoded stream: its audio payload type and codec, and its payload
/// type for telephone events if it negotiated them.
pub struct Side {
    payload_type: PayloadType,
    codec: Box<dyn Codec + Send>,
    events: Option<(PayloadType, u32)>,
}

impl std::fmt::Debug for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Side")
            .field("payload_type", &self.payload_type)
            .field("codec", &self.codec.name())
            .field("events", &self.events)
            .finish()
    }
}

impl Side {
    /// Audio as `codec` with `payload_type`, no telephone events.
    pub fn new(payload_type: PayloadType, codec: Box<dyn Codec + Send>) -> Side {
        Side {
            payload_type,
            codec,
            events: None,
        }
    }

    /// Telephone events (RFC 4733) with `payload_type` at `clock_rate` (8000 for
    /// narrowband legs, 48000 where an Opus leg announced it so).
    pub fn with_events(mut self, payload_type: PayloadType, clock_rate: u32) -> Side {
        self.events = Some((payload_type, clock_rate.max(1)));
        self
    }
}

/// Why a packet was not translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TranscodeError {
    /// The datagram is not an RTP packet.
    #[error("not an RTP packet: {0}")]
    Packet(#[from] ParseError),
    /// The codec refused the payload.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The two rates cannot be converted.
    #[error(transparent)]
    Resample(#[from] ResampleError),
}

/// Maps timestamps of one clock to another, following each packet's distance from the
/// previous one (so that wrap-around and a rate ratio that does not divide 2^32 are
/// both fine).
#[derive(Debug, Clone, Copy, Default)]
struct Clock {
    last: Option<(u32, u32)>,
}

impl Clock {
    fn map(&mut self, ts: u32, from_rate: u32, to_rate: u32) -> u32 {
        let out = match self.last {
            None => ts,
            Some((last_in, last_out)) => {
                // i128: a clock rate from SDP may be any u32, and delta × rate must not
                // overflow.
                let delta = i128::from(ts.wrapping_sub(last_in) as i32);
                let scaled = delta * i128::from(to_rate) / i128::from(from_rate.max(1));
                // Truncation to 32 bits is the wrap-around of RTP timestamps.
                last_out.wrapping_add(scaled as u32)
            }
        };
        self.last = Some((ts, out));
        out
    }
}

/// Translates the packets of one direction of a stream; see the [module docs](self).
#[derive(Debug)]
pub struct Transcoder {
    from: Side,
    to: Side,
    resampler: Option<Resampler>,
    audio_clock: Clock,
    event_clock: Clock,
    pcm: Vec<i16>,
    /// Resampled PCM not yet encoded (a resampler gives one sample more or less per call).
    pending: Vec<i16>,
    payload: Vec<u8>,
}

impl Transcoder {
    /// Translates what `from` sends into what `to` receives.
    ///
    /// # Panics
    ///
    /// Never: rates that the resampler cannot convert make every audio packet fail
    /// with [`TranscodeError::Resample`] instead.
    pub fn new(from: Side, to: Side) -> Transcoder {
        let (a, b) = (from.codec.sample_rate(), to.codec.sample_rate());
        let resampler = (a != b).then(|| Resampler::new(a, b).ok()).flatten();
        Transcoder {
            from,
            to,
            resampler,
            audio_clock: Clock::default(),
            event_clock: Clock::default(),
            pcm: Vec::new(),
            pending: Vec::new(),
            payload: Vec::new(),
        }
    }

    /// Translates one received datagram, appending the packet to send to `out`.
    /// `Ok(false)` when the packet is dropped (a payload type the other leg does not
    /// receive).
    ///
    /// # Errors
    ///
    /// When the datagram is not RTP or its payload does not decode; nothing is
    /// appended then.
    pub fn translate(
        &mut self,
        datagram: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool, TranscodeError> {
        let mut packet = RtpPacket::parse(Bytes::copy_from_slice(datagram))?;
        let pt = packet.payload_type();
        if pt == self.from.payload_type {
            self.audio(&mut packet)?;
        } else if let (Some((from_pt, from_clock)), Some((to_pt, to_clock))) =
            (self.from.events, self.to.events)
            && pt == from_pt
        {
            let ts = self
                .event_clock
                .map(packet.timestamp().0, from_clock, to_clock);
            packet.set_timestamp(RtpTimestamp(ts));
            packet.set_payload_type(to_pt);
            if from_clock != to_clock
                && let Some(event) = packet.payload().get(..4)
            {
                // The event's duration is in clock units too (RFC 4733 §2.3.5).
                let duration = u64::from(u16::from_be_bytes([event[2], event[3]]));
                // u64: the clocks come from SDP; the field saturates at its 16 bits.
                let scaled = (duration * u64::from(to_clock) / u64::from(from_clock))
                    .min(u64::from(u16::MAX)) as u16;
                let mut payload = packet.payload().to_vec();
                payload[2..4].copy_from_slice(&scaled.to_be_bytes());
                packet.set_payload(Bytes::from(payload));
            }
        } else {
            return Ok(false);
        }
        packet.write_to(out);
        Ok(true)
    }

    fn audio(&mut self, packet: &mut RtpPacket) -> Result<(), TranscodeError> {
        self.pcm.clear();
        self.from.codec.decode(packet.payload(), &mut self.pcm)?;
        let (in_rate, out_rate) = (self.from.codec.sample_rate(), self.to.codec.sample_rate());
        // The packet keeps its duration: this many samples at the other rate.
        let want = self.pcm.len() * out_rate as usize / in_rate.max(1) as usize;
        match &mut self.resampler {
            Some(r) => r.process(&self.pcm, &mut self.pending),
            None if in_rate == out_rate => self.pending.extend_from_slice(&self.pcm),
            None => return Err(ResampleError::UnsupportedRate(out_rate).into()),
        }
        // At the start the resampler may owe a sample: pad with silence, in front.
        if self.pending.len() < want {
            let missing = want - self.pending.len();
            self.pending.splice(0..0, std::iter::repeat_n(0, missing));
        }
        self.payload.clear();
        let frame = self.pending.get(..want).unwrap_or_default();
        self.to.codec.encode(frame, &mut self.payload)?;
        self.pending.drain(..want);
        let ts = self.audio_clock.map(
            packet.timestamp().0,
            self.from.codec.clock_rate(),
            self.to.codec.clock_rate(),
        );
        packet.set_timestamp(RtpTimestamp(ts));
        packet.set_payload_type(self.to.payload_type);
        packet.set_payload(Bytes::copy_from_slice(&self.payload));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::G722;
    use crate::g711::Law;
    use crate::packet::{SeqNo, Ssrc};

    fn tone(rate: u32, start: usize, len: usize) -> Vec<i16> {
        (start..start + len)
            .map(|n| {
                let t = n as f64 / f64::from(rate);
                (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16
            })
            .collect()
    }

    fn pt(value: u8) -> PayloadType {
        PayloadType::new(value).unwrap()
    }

    fn packet(kind: u8, seq: u16, ts: u32, payload: Vec<u8>) -> Vec<u8> {
        RtpPacket::new(
            pt(kind),
            SeqNo(seq),
            RtpTimestamp(ts),
            Ssrc(42),
            payload.into(),
        )
        .to_bytes()
        .to_vec()
    }

    /// How much of the energy of `x` (8 kHz) is the 1 kHz tone: 1.0 for a pure tone
    /// (a DFT bin, so that the codecs' and filters' fractional delays don't matter).
    fn purity(x: &[i16]) -> f64 {
        let n = x.len() as f64;
        let (mut re, mut im, mut energy) = (0.0, 0.0, 0.0);
        for (i, &s) in x.iter().enumerate() {
            let s = f64::from(s);
            let phase = 2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 8000.0;
            re += s * phase.cos();
            im -= s * phase.sin();
            energy += s * s;
        }
        2.0 * (re * re + im * im) / (n * energy.max(1.0))
    }

    #[test]
    fn pcmu_to_g722_and_back_keeps_the_tone_and_the_timing() {
        let mut up = Transcoder::new(
            Side::new(pt(0), Box::new(Law::Ulaw)),
            Side::new(pt(9), Box::new(G722::new())),
        );
        let mut down = Transcoder::new(
            Side::new(pt(9), Box::new(G722::new())),
            Side::new(pt(8), Box::new(Law::Alaw)),
        );
        let mut got = Vec::new();
        for i in 0..50u16 {
            let pcm = tone(8000, usize::from(i) * 160, 160);
            let mut payload = Vec::new();
            Law::Ulaw.encode(&pcm, &mut payload);
            let ts = 1000 + u32::from(i) * 160;
            let mut g722 = Vec::new();
            assert!(up.translate(&packet(0, i, ts, payload), &mut g722).unwrap());
            let p = RtpPacket::parse(g722.clone()).unwrap();
            assert_eq!(
                (p.payload_type(), p.sequence(), p.ssrc()),
                (pt(9), SeqNo(i), Ssrc(42))
            );
            // G.722's RTP clock is 8000 Hz like G.711's (RFC 3551): timestamps unchanged.
            assert_eq!(p.timestamp(), RtpTimestamp(ts));
            assert_eq!(p.payload().len(), 160);
            let mut alaw = Vec::new();
            assert!(down.translate(&g722, &mut alaw).unwrap());
            let p = RtpPacket::parse(alaw).unwrap();
            assert_eq!(p.payload().len(), 160);
            Law::Alaw.decode(p.payload(), &mut got);
        }
        // Past the filters' start, the tone survives two resamplings and three codecs,
        // at its level.
        let steady = &got[2000..6000];
        let quality = purity(steady);
        assert!(quality > 0.97, "purity {quality:.3}");
        let rms = (steady.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 4000.0).sqrt();
        assert!(
            (rms / (8000.0 / 2f64.sqrt()) - 1.0).abs() < 0.1,
            "rms {rms:.0}"
        );
    }

    #[test]
    fn telephone_events_change_payload_type_and_clock_and_the_rest_is_dropped() {
        let mut t = Transcoder::new(
            Side::new(pt(0), Box::new(Law::Ulaw)).with_events(pt(101), 8000),
            Side::new(pt(9), Box::new(G722::new())).with_events(pt(96), 48000),
        );
        let mut out = Vec::new();
        // Digit 5, volume 10, duration 800 (100 ms at 8 kHz).
        let event = vec![5, 10, 0x03, 0x20];
        assert!(
            t.translate(&packet(101, 1, 0, event.clone()), &mut out)
                .unwrap()
        );
        assert!(
            t.translate(&packet(101, 2, 0, event), &mut out.split_off(out.len()))
                .unwrap()
        );
        let p = RtpPacket::parse(out).unwrap();
        assert_eq!(p.payload_type(), pt(96));
        assert_eq!(&p.payload()[..], &[5, 10, 0x12, 0xC0]); // 4800 at 48 kHz
        // Comfort noise (PT 13) was not negotiated on the other leg.
        let mut none = Vec::new();
        assert!(!t.translate(&packet(13, 3, 0, vec![40]), &mut none).unwrap());
        assert!(none.is_empty());
        assert!(matches!(
            t.translate(&[1, 2, 3], &mut none),
            Err(TranscodeError::Packet(_))
        ));
        // Without events on the receiving leg, events are dropped too.
        let mut plain = Transcoder::new(
            Side::new(pt(0), Box::new(Law::Ulaw)).with_events(pt(101), 8000),
            Side::new(pt(8), Box::new(Law::Alaw)),
        );
        assert!(
            !plain
                .translate(&packet(101, 1, 0, vec![1, 0, 0, 160]), &mut none)
                .unwrap()
        );
    }

    #[test]
    fn any_clock_rate_from_sdp_is_safe() {
        let mut t = Transcoder::new(
            Side::new(pt(0), Box::new(Law::Ulaw)).with_events(pt(101), 1),
            Side::new(pt(8), Box::new(Law::Alaw)).with_events(pt(101), u32::MAX),
        );
        let mut out = Vec::new();
        for (seq, ts) in [(1, 0), (2, u32::MAX), (3, 1 << 31)] {
            out.clear();
            assert!(
                t.translate(&packet(101, seq, ts, vec![1, 0, 0xFF, 0xFF]), &mut out)
                    .unwrap()
            );
            // The duration saturates at its 16 bits.
            assert_eq!(
                &RtpPacket::parse(out.clone()).unwrap().payload()[2..],
                &[0xFF, 0xFF]
            );
        }
    }

    #[test]
    fn timestamps_follow_the_clock_ratio_across_wrap_around() {
        let mut c = Clock::default();
        assert_eq!(c.map(u32::MAX - 959, 48000, 8000), u32::MAX - 959);
        // 960 ticks at 48 kHz later (wrapping) is 160 at 8 kHz.
        assert_eq!(c.map(0, 48000, 8000), (u32::MAX - 959).wrapping_add(160));
        // A reordered, earlier packet maps backwards.
        assert_eq!(c.map(u32::MAX - 959, 48000, 8000), u32::MAX - 959);
    }
}
