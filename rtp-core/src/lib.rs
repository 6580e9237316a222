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
//! - [`channel`]: a [`Channel`], one RTP/RTCP endpoint of a call: NAT-aware latching
//!   that a second sender cannot hijack, reception statistics, DTMF digits, a relayed
//!   stream kept continuous across source changes, RTCP reports with round-trip time,
//!   and the RTP timeout.
//! - [`relay`]: a [`Relay`](relay::Relay) bridging channels by id, forwarding each
//!   packet through [`Channel::forward`] so a far end's stream stays continuous across
//!   re-bridges, one talker at a time in bridges of three or more.
//! - [`demux`]: [`classify`] for RTP, RTCP (rtcp-mux, RFC 5761), STUN and DTLS sharing a port.
//! - [`g711`]: µ-law and A-law, bit-exact with the ITU-T G.711 tables.
//! - [`dtmf`]: RFC 4733 telephone events, a [`DtmfSender`] and a [`DtmfReceiver`].
//! - [`stats`]: reception statistics (RFC 3550 A.1 sequence tracking, A.3 loss, A.8
//!   jitter), receiver report blocks and the A.7 RTCP report schedule.
//! - [`jitter`]: an adaptive, bounded [`JitterBuffer`] with reordering and loss
//!   concealment markers.
//! - [`mixer`]: a conference [`Mixer`] (N-1 sums, mute, deaf, gain, talking events).
//! - [`conference`]: a [`Conference`](conference::Conference) room: channels in their own
//!   codecs (G.711, G.722, Opus) mixed N-1 at 16 kHz every 20 ms, with jitter buffers,
//!   talking events and prompts played to one participant.
//! - [`tones`]: DTMF and call-progress tone generation with country tables;
//!   [`dtmf_detect`]: in-band DTMF detection (Goertzel, ITU-T Q.24 limits).
//! - [`codec`]: the [`Codec`](codec::Codec) trait over G.711, L16 and [`g722`] (64 kbit/s
//!   G.722, bit-exact with FFmpeg's).
//! - [`resample`]: a polyphase [`Resampler`](resample::Resampler) between 8, 16 and 48 kHz
//!   (and other rates).
//! - [`wav`]: prompts read as 8 kHz mono from any PCM WAV, and a two-leg call
//!   [`Recorder`](wav::Recorder) with pause and resume.
//! - [`transcode`]: a [`Transcoder`](transcode::Transcoder) from one leg's codec to
//!   another's, packet by packet, telephone events included.
//! - `opus` (feature `opus`, links libopus): an Opus codec at 48 kHz with a bitrate
//!   setting, packet loss concealment and in-band FEC recovery.
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
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod channel;
pub mod codec;
pub mod conference;
pub mod demux;
pub mod dtmf;
pub mod dtmf_detect;
pub mod g711;
pub mod g722;
pub mod jitter;
pub mod mixer;
#[cfg(feature = "opus")]
pub mod opus;
pub mod packet;
pub mod relay;
pub mod resample;
pub mod rtcp;
pub mod stats;
pub mod tones;
pub mod transcode;
pub mod wav;

pub use channel::{Channel, ChannelConfig};
pub use demux::{PacketClass, classify};
pub use dtmf::{DtmfEvent, DtmfReceiver, DtmfSender, EventCode, TelephoneEvent};
pub use jitter::{JitterBuffer, Playout};
pub use mixer::Mixer;
pub use packet::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
pub use rtcp::RtcpPacket;

/// Entry points for the fuzz targets in `fuzz/fuzz_targets/` and for replaying their
/// seed corpora in tests. Each function takes arbitrary bytes and must never panic
/// except on a broken invariant of this crate.
pub mod fuzzing {
    use crate::jitter::{JitterBuffer, JitterConfig};
    use crate::{RtpPacket, RtpTimestamp, SeqNo, Ssrc, rtcp};
    use std::time::{Duration, Instant};

    /// A fuzz target: takes arbitrary bytes.
    pub type Target = fn(&[u8]);

    /// Every fuzz target of this crate, by name, for the workspace's seed replay.
    pub const TARGETS: &[(&str, Target)] = &[
        ("rtp_packet", rtp_packet),
        ("rtcp_packet", rtcp_packet),
        ("rtp_jitter", rtp_jitter),
        ("rtp_g722", rtp_g722),
        ("rtp_resample", rtp_resample),
        ("rtp_wav", rtp_wav),
        ("rtp_transcode", rtp_transcode),
        ("rtp_channel", rtp_channel),
        // Only with libopus linked: the `rtp_opus` fuzz target needs the feature too.
        #[cfg(feature = "opus")]
        ("rtp_opus", rtp_opus),
    ];

    /// Transcoding: the first byte picks the two legs' codecs (PCMU, PCMA, G.722),
    /// whether each has telephone events and their clock rates; the rest is datagrams, each preceded by its
    /// length byte. Every translated packet must parse, with the receiving leg's
    /// payload type, and audio must keep its duration.
    pub fn rtp_transcode(data: &[u8]) {
        use crate::codec::{Codec, G722};
        use crate::g711::Law;
        use crate::transcode::{Side, Transcoder};
        let Some((&pick, mut rest)) = data.split_first() else {
            return;
        };
        let codec = |i: u8| -> (u8, Box<dyn Codec + Send>) {
            match i % 3 {
                0 => (0, Box::new(Law::Ulaw)),
                1 => (8, Box::new(Law::Alaw)),
                _ => (9, Box::new(G722::new())),
            }
        };
        let side = |i: u8, events: bool, clock: u32| {
            let (pt, c) = codec(i);
            let side = Side::new(crate::PayloadType::new(pt).unwrap_or_default(), c);
            match crate::PayloadType::new(101) {
                Some(te) if events => side.with_events(te, clock),
                _ => side,
            }
        };
        let from_pt = [0u8, 8, 9][usize::from(pick % 3)];
        let to_pt = [0u8, 8, 9][usize::from((pick / 3) % 3)];
        // Event clock rates come from SDP: any u32, the extremes included.
        let clock = |i: u8| [8000, 48000, 1, u32::MAX][usize::from(i % 4)];
        let mut t = Transcoder::new(
            side(pick % 3, pick & 0x40 != 0, clock(pick >> 4)),
            side((pick / 3) % 3, pick & 0x80 != 0, clock(pick >> 2)),
        );
        let mut out = Vec::new();
        while let Some((&len, tail)) = rest.split_first() {
            let (datagram, next) = tail.split_at(usize::from(len).min(tail.len()));
            rest = next;
            out.clear();
            let Ok(true) = t.translate(datagram, &mut out) else {
                assert!(out.is_empty(), "output on a dropped packet");
                continue;
            };
            let (Ok(input), Ok(output)) = (
                RtpPacket::parse(datagram.to_vec()),
                RtpPacket::parse(out.clone()),
            ) else {
                panic!("translated packet does not parse");
            };
            if input.payload_type().get() == from_pt {
                assert_eq!(output.payload_type().get(), to_pt);
                // One byte per 8 kHz sample (G.711), one per 16 kHz sample pair (G.722):
                // 20 ms is 160 bytes either way, so durations match byte for byte.
                assert_eq!(output.payload().len(), input.payload().len());
            } else {
                assert_eq!(output.payload_type().get(), 101);
            }
        }
    }

    /// G.722: decodes the bytes as a G.722 stream, then encodes them read as 16-bit PCM
    /// (little-endian pairs) and decodes that; every byte and sample count that fits
    /// must give two samples per byte.
    pub fn rtp_g722(data: &[u8]) {
        let mut decoder = crate::g722::G722Decoder::new();
        let mut pcm = Vec::new();
        decoder.decode(data, &mut pcm);
        assert_eq!(pcm.len(), data.len() * 2);
        let input: Vec<i16> = data
            .chunks_exact(4)
            .flat_map(|c| {
                [
                    i16::from_le_bytes([c[0], c[1]]),
                    i16::from_le_bytes([c[2], c[3]]),
                ]
            })
            .collect();
        let mut encoder = crate::g722::G722Encoder::new();
        let mut payload = Vec::new();
        if let Err(e) = encoder.encode(&input, &mut payload) {
            panic!("even frame refused: {e}");
        }
        assert_eq!(payload.len(), input.len() / 2);
        let mut decoded = Vec::new();
        crate::g722::G722Decoder::new().decode(&payload, &mut decoded);
        assert_eq!(decoded.len(), input.len());
    }

    /// Resampling: the first byte picks a pair of rates among 8, 16 and 48 kHz and the
    /// second a frame size; the rest is 16-bit PCM (little-endian), converted frame by
    /// frame. The output must be the input's length times the ratio, within one sample.
    pub fn rtp_resample(data: &[u8]) {
        const RATES: [u32; 3] = [8000, 16_000, 48_000];
        let [pick, frame, rest @ ..] = data else {
            return;
        };
        let from = RATES[usize::from(pick % 3)];
        let to = RATES[usize::from(pick / 3 % 3)];
        let Ok(mut resampler) = crate::resample::Resampler::new(from, to) else {
            panic!("{from} → {to} refused");
        };
        let pcm: Vec<i16> = rest
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        let mut out = Vec::new();
        for chunk in pcm.chunks(usize::from(*frame).max(1)) {
            resampler.process(chunk, &mut out);
        }
        let exact = pcm.len() as u64 * u64::from(to) / u64::from(from);
        assert!(out.len() as u64 <= exact + 1 && out.len() as u64 + 1 >= exact);
    }

    /// WAV reading: the bytes as a prompt file; errors are fine, panics are not.
    pub fn rtp_wav(data: &[u8]) {
        let _ = crate::wav::read_prompt(std::io::Cursor::new(data));
    }

    /// Opus decoding (feature `opus`): the bytes as one RTP payload, decoded, then
    /// used to recover a "lost" previous frame through FEC, then concealment of a lost
    /// next frame. Errors are fine; a decoded packet must be a whole number of 2.5 ms
    /// steps up to 120 ms, and recovery and concealment must produce the duration of
    /// the last packet.
    #[cfg(feature = "opus")]
    pub fn rtp_opus(data: &[u8]) {
        use crate::codec::Codec;
        use crate::opus::{FRAME_LEN, Opus, OpusConfig};
        let Ok(mut opus) = Opus::new(OpusConfig::default()) else {
            panic!("libopus refused the default settings");
        };
        let mut pcm = Vec::new();
        let frame = match opus.decode(data, &mut pcm) {
            Ok(()) => {
                assert!(pcm.len() <= 5760, "{} samples from one packet", pcm.len());
                assert_eq!(pcm.len() % 120, 0, "{} samples", pcm.len());
                if pcm.is_empty() { FRAME_LEN } else { pcm.len() }
            }
            Err(_) => {
                assert!(pcm.is_empty(), "samples appended on error");
                FRAME_LEN
            }
        };
        let mut recovered = Vec::new();
        if opus.recover(data, &mut recovered).is_ok() {
            assert_eq!(recovered.len(), frame);
        }
        let mut concealed = Vec::new();
        if let Err(e) = opus.conceal(&mut concealed) {
            panic!("concealment failed: {e}");
        }
        assert_eq!(concealed.len(), frame);
    }

    /// A media channel fed arbitrary datagrams from a few sources: the first byte
    /// picks the latching mode and rtcp-mux; then each operation is a header of
    /// three bytes (source, milliseconds to advance, length) and that many bytes
    /// of datagram, received on the RTP port (even source byte) or the RTCP port.
    /// Invariants: a strict channel is only ever latched to its SDP address;
    /// whatever it sends (forwarded RTP, its RTCP reports) parses; its counters
    /// add up; the timers never go backwards.
    pub fn rtp_channel(data: &[u8]) {
        use crate::channel::{Channel, ChannelConfig, Latching, Received, TransmitKind};
        use std::net::SocketAddr;
        let Some((&mode, mut rest)) = data.split_first() else {
            return;
        };
        let sources: [SocketAddr; 4] = [
            SocketAddr::from(([192, 0, 2, 10], 4000)),
            SocketAddr::from(([192, 0, 2, 10], 4002)),
            SocketAddr::from(([198, 51, 100, 7], 4000)),
            SocketAddr::from(([203, 0, 113, 9], 9)),
        ];
        let sdp = sources[0];
        let mut config = ChannelConfig::new(crate::PayloadType::PCMU, 8000, u64::from(mode));
        config.remote = Some(sdp);
        config.latching = match mode % 3 {
            0 => Latching::Strict,
            1 => Latching::SameIp,
            _ => Latching::Comedia,
        };
        config.rtcp_mux = mode & 4 != 0;
        config.telephone_event = crate::PayloadType::new(101);
        config.rtp_timeout = Some(Duration::from_secs(2));
        let strict = matches!(config.latching, Latching::Strict);
        let t0 = Instant::now();
        let mut now = t0;
        let mut channel = Channel::new(config, t0);
        let mut received: u64 = 0;
        while let [source, advance, len, tail @ ..] = rest {
            let len = usize::from(*len).min(tail.len());
            let (datagram, next) = tail.split_at(len);
            rest = next;
            now += Duration::from_millis(u64::from(*advance));
            let from = sources[usize::from(*source >> 1) % sources.len()];
            let datagram = bytes::Bytes::copy_from_slice(datagram);
            let got = if source & 1 == 0 {
                channel.receive(datagram, from, now)
            } else {
                channel.receive_rtcp(datagram, from, now)
            };
            if let Received::Media(packet) = got {
                received += 1;
                if let Some(t) = channel.forward(&packet, now) {
                    let out = RtpPacket::parse(t.payload).expect("forwarded RTP parses");
                    assert_eq!(out.ssrc(), channel.ssrc());
                }
            }
            if strict {
                assert!(
                    channel.latched().is_none_or(|a| a == sdp),
                    "strict latch moved to {:?}",
                    channel.latched()
                );
            }
            if let Some(at) = channel.poll_timeout()
                && at <= now
            {
                channel.handle_timeout(now);
            }
            while let Some(t) = channel.poll_transmit() {
                if t.kind == TransmitKind::Rtcp {
                    rtcp::parse_compound(t.payload).expect("our RTCP parses");
                }
            }
            while channel.poll_event().is_some() {}
        }
        let q = channel.quality();
        assert!(q.packets_received >= received, "{q:?}");
    }

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

    /// Drives a [`JitterBuffer`] with operations read from the bytes, 6 bytes each:
    /// `[kind, a, b, c, d, e]`. Time advances by `d` ms. If `kind` bit 0 is set, pops
    /// everything due; otherwise pushes a packet: sequence number previous + `a` (as
    /// `i8`), or `a b` big-endian if bit 1 is set; timestamp 160 per sequence number plus
    /// `b` (as `i8`) × 8, XOR `e << 20` if bit 2 is set; SSRC `c & 3`.
    ///
    /// Asserts: the buffer never holds more than its bound; within one SSRC and between
    /// two resets, the frames played have strictly increasing extended sequence numbers
    /// whose low 16 bits are the sequence number played.
    pub fn rtp_jitter(data: &[u8]) {
        let config = JitterConfig {
            max_packets: 8,
            max_conceal: 3,
            ..JitterConfig::default()
        };
        let Ok(mut jb) = JitterBuffer::new(config) else {
            return;
        };
        let t0 = Instant::now();
        let mut now = t0;
        let mut seq: u16 = 0;
        let mut last: Option<(Ssrc, u64, i64)> = None;
        for op in data.chunks_exact(6) {
            let &[kind, a, b, c, d, e] = op else {
                continue;
            };
            now += Duration::from_millis(u64::from(d));
            if kind & 1 == 1 {
                // At most a bounded number of pops per operation.
                for _ in 0..16 {
                    let Some(played) = jb.pop(now) else {
                        break;
                    };
                    let resets = jb.stats().resets;
                    let Some(ext) = jb.next_extended_seq().map(|next| next - 1) else {
                        panic!("played {played:?} without a playout position");
                    };
                    // The low 16 bits are the wire sequence number.
                    assert_eq!(ext as u16, played.sequence().0, "{played:?}");
                    if let Some((ssrc, epoch, previous)) = last
                        && ssrc == played.ssrc()
                        && epoch == resets
                    {
                        assert!(ext > previous, "played {ext} after {previous}");
                    }
                    last = Some((played.ssrc(), resets, ext));
                }
            } else {
                seq = if kind & 2 != 0 {
                    u16::from_be_bytes([a, b])
                } else {
                    seq.wrapping_add_signed(i16::from(a as i8))
                };
                let mut ts = u32::from(seq)
                    .wrapping_mul(160)
                    .wrapping_add_signed(i32::from(b as i8) * 8);
                if kind & 4 != 0 {
                    ts ^= u32::from(e) << 20;
                }
                let packet = RtpPacket::new(
                    crate::PayloadType::PCMU,
                    SeqNo(seq),
                    RtpTimestamp(ts),
                    Ssrc(u32::from(c & 3)),
                    bytes::Bytes::new(),
                );
                jb.push(packet, now);
            }
            assert!(jb.len() <= config.max_packets, "{} packets held", jb.len());
            let _ = jb.poll_timeout();
        }
    }
}

// The README's example is a doctest too: the crate's page on crates.io stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
