//! # pbxkit-rtp
//!
//! The media crate of pbxkit: RTP/RTCP packets (RFC 3550), G.711 and RFC 4733 DTMF.
//! Every stateful piece is sans-IO: it takes packets and `Instant`s and returns what to
//! send, so it runs under tokio, in a simulation or in your own event loop.
//!
//! - [`packet`]: [`RtpPacket`], zero-copy parsing and serialisation with CSRCs, padding
//!   and RFC 8285 header extensions; newtype ids [`Ssrc`], [`SeqNo`], [`RtpTimestamp`],
//!   [`PayloadType`].
//! - [`rtcp`]: [`RtcpPacket`] (SR, RR, SDES, BYE, APP, unknown kinds kept raw) and
//!   compound packets.
//! - [`demux`]: [`classify`] for RTP, RTCP (rtcp-mux, RFC 5761), STUN and DTLS sharing a port.
//! - [`g711`]: µ-law and A-law, bit-exact with the ITU-T G.711 tables.
//! - [`dtmf`]: RFC 4733 telephone events, a [`DtmfSender`] and a [`DtmfReceiver`].
//!
//! Status: jitter buffer, statistics, G.722, L16, Opus, the mixer and WAV files are
//! being built (see the project issues).
//!
//! ```
//! use bytes::Bytes;
//! use pbxkit_rtp::{classify, g711::Law, PacketClass, PayloadType, RtpPacket};
//!
//! // A PCMU packet as received from a phone: 12-byte header, 4 samples.
//! let datagram = Bytes::from_static(&[
//!     0x80, 0x00, 0x00, 0x2A, // V=2, PT 0 (PCMU), sequence 42
//!     0x00, 0x00, 0x03, 0x20, // timestamp 800
//!     0x12, 0x34, 0x56, 0x78, // SSRC
//!     0xFF, 0x7E, 0x80, 0x00, // µ-law codes
//! ]);
//! assert_eq!(classify(&datagram), PacketClass::Rtp);
//! let packet = RtpPacket::parse(datagram)?;
//! assert_eq!(packet.payload_type(), PayloadType::PCMU);
//! assert_eq!(packet.sequence().0, 42);
//!
//! let mut pcm = Vec::new();
//! Law::Ulaw.decode(packet.payload(), &mut pcm);
//! assert_eq!(pcm, [0, -8, 32124, -32124]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod demux;
pub mod dtmf;
pub mod g711;
pub mod packet;
pub mod rtcp;

pub use demux::{PacketClass, classify};
pub use dtmf::{DtmfEvent, DtmfReceiver, DtmfSender, EventCode, TelephoneEvent};
pub use packet::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
pub use rtcp::RtcpPacket;

/// Entry points for the fuzz targets in `fuzz/fuzz_targets/` and for replaying their
/// seed corpora in tests. Each function takes arbitrary bytes and must never panic
/// except on a broken invariant of this crate.
pub mod fuzzing {
    use crate::{RtpPacket, rtcp};

    /// A fuzz target: takes arbitrary bytes.
    pub type Target = fn(&[u8]);

    /// Every fuzz target of this crate, by name, for the workspace's seed replay.
    pub const TARGETS: &[(&str, Target)] =
        &[("rtp_packet", rtp_packet), ("rtcp_packet", rtcp_packet)];

    /// Parses an RTP packet; one that parses must serialise to bytes that parse to the
    /// same packet, and to the same bytes again.
    pub fn rtp_packet(data: &[u8]) {
        let Ok(packet) = RtpPacket::parse(data.to_vec()) else {
            return;
        };
        let _ = crate::classify(data);
        let wire = packet.to_bytes();
        assert_eq!(wire.len(), packet.encoded_len());
        match RtpPacket::parse(wire.clone()) {
            Ok(again) => {
                assert_eq!(again, packet, "round trip changed {wire:?}");
                assert_eq!(again.to_bytes(), wire);
            }
            Err(e) => panic!("serialised RTP packet does not parse: {e}: {wire:?}"),
        }
    }

    /// Parses a compound RTCP packet; one that parses must serialise to bytes that
    /// parse to the same packets.
    pub fn rtcp_packet(data: &[u8]) {
        let Ok(packets) = rtcp::parse_compound(data.to_vec()) else {
            return;
        };
        let wire = match rtcp::serialize_compound(&packets) {
            Ok(wire) => wire,
            Err(e) => panic!("parsed RTCP does not serialise: {e}: {packets:?}"),
        };
        match rtcp::parse_compound(wire.clone()) {
            Ok(again) => assert_eq!(again, packets, "round trip changed {wire:?}"),
            Err(e) => panic!("serialised RTCP does not parse: {e}: {wire:?}"),
        }
    }
}
