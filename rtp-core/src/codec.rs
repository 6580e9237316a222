//! The [`Codec`] trait: frames of 16-bit linear PCM to RTP payloads and back, with the
//! rates and names that SDP needs, and its implementations for G.711 ([`Law`]), L16
//! ([`L16`]) and G.722 ([`G722`]); Opus is `pbxkit_rtp::opus::Opus` (feature `opus`).
//!
//! A codec object holds the state of one direction pair of one stream (G.722 is
//! adaptive, so its encoder and decoder each carry state from frame to frame); use one
//! per call leg. Codecs never allocate beyond `out` and never fail on received
//! payloads except where a payload cannot be whole (L16 with an odd byte count).
//!
//! ```
//! use pbxkit_rtp::codec::{Codec, G722};
//! use pbxkit_rtp::g711::Law;
//!
//! let mut codecs: Vec<Box<dyn Codec>> = vec![Box::new(Law::Alaw), Box::new(G722::new())];
//! for codec in &mut codecs {
//!     // A 20 ms frame at the codec's sample rate.
//!     let frame = vec![0i16; codec.sample_rate() as usize / 50];
//!     let mut payload = Vec::new();
//!     codec.encode(&frame, &mut payload)?;
//!     let mut pcm = Vec::new();
//!     codec.decode(&payload, &mut pcm)?;
//!     assert_eq!(pcm.len(), frame.len());
//!     // The RTP timestamp advances by the clock rate, which is 8000 Hz for both.
//!     assert_eq!(codec.clock_rate(), 8000);
//! }
//! # Ok::<(), pbxkit_rtp::codec::CodecError>(())
//! ```

use crate::g711::Law;
use crate::g722::{G722Decoder, G722Encoder};
use crate::packet::PayloadType;

/// Why a codec refused a frame or a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The PCM frame is not a whole number of the codec's sample groups (G.722 codes
    /// samples in pairs).
    #[error("{codec} encodes samples in groups of {multiple}, got {len} samples")]
    FrameLength {
        /// The payload type name of the codec.
        codec: &'static str,
        /// Samples in the frame.
        len: usize,
        /// The group size that the frame length must be a multiple of.
        multiple: usize,
    },
    /// The payload is not a whole number of the codec's code words (L16 has two bytes
    /// per sample).
    #[error("{codec} payload of {len} bytes is not a multiple of {multiple} bytes")]
    PayloadLength {
        /// The payload type name of the codec.
        codec: &'static str,
        /// Bytes in the payload.
        len: usize,
        /// The code word size in bytes.
        multiple: usize,
    },
    /// The codec cannot code a frame of this many samples (Opus takes 2.5, 5, 10, 20,
    /// 40 or 60 ms).
    #[error("{codec} cannot code a frame of {len} samples")]
    UnsupportedFrame {
        /// The encoding name of the codec.
        codec: &'static str,
        /// Samples in the frame.
        len: usize,
    },
    /// The payload is corrupt or not of this codec (an Opus packet that breaks the
    /// framing rules of RFC 6716 §3.4, or an empty one).
    #[error("{codec} payload of {len} bytes is invalid: {reason}")]
    InvalidPayload {
        /// The encoding name of the codec.
        codec: &'static str,
        /// Bytes in the payload.
        len: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The codec library failed for a reason that is not the input's.
    #[error("{codec} library failed: {reason}")]
    Library {
        /// The encoding name of the codec.
        codec: &'static str,
        /// What it reported.
        reason: &'static str,
    },
}

/// An audio codec for one mono RTP stream: PCM frames at [`sample_rate`](Codec::sample_rate)
/// in, payload bytes out, and back.
pub trait Codec {
    /// The encoding name used in SDP `a=rtpmap` (`PCMU`, `PCMA`, `G722`, `L16`).
    fn name(&self) -> &'static str;

    /// The sampling rate of the PCM that [`encode`](Codec::encode) takes and
    /// [`decode`](Codec::decode) produces, in Hz.
    fn sample_rate(&self) -> u32;

    /// The RTP timestamp clock rate in Hz, as in SDP `a=rtpmap`. It differs from the
    /// sample rate for G.722 (8000 against 16000, RFC 3551 §4.5.2).
    fn clock_rate(&self) -> u32;

    /// The static payload type of RFC 3551, if the codec has one at this rate.
    fn static_payload_type(&self) -> Option<PayloadType>;

    /// Appends the payload of the PCM frame `pcm` to `out`.
    ///
    /// # Errors
    ///
    /// [`CodecError::FrameLength`] if the frame is not a whole number of sample
    /// groups; nothing is appended then.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError>;

    /// Appends the PCM samples of `payload` to `out`.
    ///
    /// # Errors
    ///
    /// [`CodecError::PayloadLength`] if the payload is not a whole number of code
    /// words; nothing is appended then.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError>;

    /// Returns the encoder and decoder state to the start of a stream.
    fn reset(&mut self);
}

/// G.711 is stateless: the law itself is the codec (8 kHz, one byte per sample).
impl Codec for Law {
    fn name(&self) -> &'static str {
        match self {
            Law::Ulaw => "PCMU",
            Law::Alaw => "PCMA",
        }
    }

    fn sample_rate(&self) -> u32 {
        8000
    }

    fn clock_rate(&self) -> u32 {
        8000
    }

    fn static_payload_type(&self) -> Option<PayloadType> {
        Some(match self {
            Law::Ulaw => PayloadType::PCMU,
            Law::Alaw => PayloadType::PCMA,
        })
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        Law::encode(*self, pcm, out);
        Ok(())
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        Law::decode(*self, payload, out);
        Ok(())
    }

    fn reset(&mut self) {}
}

/// L16: uncompressed 16-bit linear PCM in network byte order (RFC 3551 §4.5.11), mono,
/// at any sample rate (the RTP clock rate is the sample rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct L16 {
    rate: u32,
}

impl L16 {
    /// L16 at `rate` Hz (commonly 8000, 16000 or 48000; 44100 has static payload type
    /// 11).
    pub const fn new(rate: u32) -> Self {
        L16 { rate }
    }
}

impl Codec for L16 {
    fn name(&self) -> &'static str {
        "L16"
    }

    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn clock_rate(&self) -> u32 {
        self.rate
    }

    fn static_payload_type(&self) -> Option<PayloadType> {
        // Payload type 11 is L16 mono at 44.1 kHz (10 is stereo).
        if self.rate == 44_100 {
            PayloadType::new(11)
        } else {
            None
        }
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.reserve(pcm.len() * 2);
        for s in pcm {
            out.extend_from_slice(&s.to_be_bytes());
        }
        Ok(())
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        if !payload.len().is_multiple_of(2) {
            return Err(CodecError::PayloadLength {
                codec: "L16",
                len: payload.len(),
                multiple: 2,
            });
        }
        out.extend(
            payload
                .chunks_exact(2)
                .map(|b| i16::from_be_bytes([b[0], b[1]])),
        );
        Ok(())
    }

    fn reset(&mut self) {}
}

/// G.722 at 64 kbit/s: 16 kHz PCM, one byte per two samples, RTP clock rate 8000 Hz
/// (see [`crate::g722`]). Frames must hold an even number of samples.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct G722 {
    encoder: G722Encoder,
    decoder: G722Decoder,
}

impl G722 {
    /// A new encoder and decoder pair in the reset state.
    pub fn new() -> Self {
        G722::default()
    }
}

impl Codec for G722 {
    fn name(&self) -> &'static str {
        "G722"
    }

    fn sample_rate(&self) -> u32 {
        16_000
    }

    fn clock_rate(&self) -> u32 {
        8000
    }

    fn static_payload_type(&self) -> Option<PayloadType> {
        Some(PayloadType::G722)
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.encoder.encode(pcm, out)
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        self.decoder.decode(payload, out);
        Ok(())
    }

    fn reset(&mut self) {
        self.encoder.reset();
        self.decoder.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l16_is_big_endian() {
        let mut codec = L16::new(16_000);
        let mut out = Vec::new();
        codec.encode(&[0x0102, -2], &mut out).ok();
        assert_eq!(out, [0x01, 0x02, 0xFF, 0xFE]);
        let mut pcm = Vec::new();
        assert_eq!(codec.decode(&out, &mut pcm), Ok(()));
        assert_eq!(pcm, [0x0102, -2]);
        assert_eq!(
            codec.decode(&[1, 2, 3], &mut pcm),
            Err(CodecError::PayloadLength {
                codec: "L16",
                len: 3,
                multiple: 2
            })
        );
        assert_eq!(pcm.len(), 2);
        assert_eq!(codec.clock_rate(), 16_000);
        assert_eq!(codec.static_payload_type(), None);
        assert_eq!(L16::new(44_100).static_payload_type(), PayloadType::new(11));
    }

    #[test]
    fn names_rates_and_payload_types() {
        type Row = (Box<dyn Codec>, &'static str, u32, u32, Option<u8>);
        let table: [Row; 4] = [
            (Box::new(Law::Ulaw), "PCMU", 8000, 8000, Some(0)),
            (Box::new(Law::Alaw), "PCMA", 8000, 8000, Some(8)),
            (Box::new(G722::new()), "G722", 16_000, 8000, Some(9)),
            (Box::new(L16::new(8000)), "L16", 8000, 8000, None),
        ];
        for (codec, name, rate, clock, pt) in table {
            assert_eq!(codec.name(), name);
            assert_eq!(codec.sample_rate(), rate, "{name}");
            assert_eq!(codec.clock_rate(), clock, "{name}");
            assert_eq!(
                codec.static_payload_type().map(PayloadType::get),
                pt,
                "{name}"
            );
        }
    }

    #[test]
    fn g711_through_the_trait_matches_the_module() {
        let pcm: Vec<i16> = (0..160).map(|i| (i * 397 - 30_000) as i16).collect();
        for law in [Law::Ulaw, Law::Alaw] {
            let mut direct = Vec::new();
            law.encode(&pcm, &mut direct);
            let mut codec = law;
            let mut via = Vec::new();
            Codec::encode(&mut codec, &pcm, &mut via).ok();
            assert_eq!(via, direct);
        }
    }
}
