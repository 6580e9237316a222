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
        ("rtp_conference", rtp_conference),
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

    /// A room of three participants (PCMU with strict latching, G.722 with same-IP
    /// latching, PCMA with comedia) and, when the first byte says so, a fourth in Opus
    /// (strict). The first byte also picks the room's rate (bit 0: narrowband), rtcp-mux
    /// off for the G.722 participant (bit 1), an RTP timeout of 2 s (bit 2), telephone
    /// events (bit 3) and the Opus participant (bit 4, with the `opus` feature). Then each operation is an opcode
    /// byte (modulo 9) and its arguments, `k` being a participant (low two bits) and `s`
    /// a source (next two bits: its SDP address, another port of its IP, one of two
    /// strangers); missing argument bytes are zeros:
    ///
    /// - 0 `[ks, len, bytes…]`: a datagram on `k`'s RTP port from `s`;
    /// - 1 `[ks, flags, dseq, len, bytes…]`: an RTP packet to `k` from `s`: sequence
    ///   number the previous one plus `dseq` (as `i8`); payload type `k`'s own,
    ///   telephone-event, comfort noise or `flags >> 2` (`flags & 3`); a second SSRC
    ///   (bit 4), the marker (bit 5), a timestamp off by a quarter frame (bit 6); the
    ///   payload `bytes`, or with bit 7 a loud tone frame in `k`'s codec (no `bytes`);
    /// - 2 `[ks, len, bytes…]`: a datagram on `k`'s RTCP port from `s`;
    /// - 3 `[b]`: time advances by `b` ms (below 128), or by 2^(`b` & 31, at most 27)
    ///   ms, then `handle_timeout`;
    /// - 4 `[c]`: `c & 7` + 1 times, time goes to `poll_timeout` and `handle_timeout`
    ///   runs: the caller's loop;
    /// - 5 `[km]`: mutes `k` (bit 2 set) or unmutes it;
    /// - 6 `[kl]`: plays `kl >> 2` frames of a tone to `k` (0: stops playing to it; 63:
    ///   more than the room keeps);
    /// - 7 `[kh]`: `k` leaves, or rejoins on the channel it left with (bit 2) or on a
    ///   new one; with bit 3 while it is in the room, a second join, which must fail;
    /// - 8 `[kw]`: changes `k`'s channel: a new SDP address (bit 3), the RTP timeout
    ///   on or off (bit 2), else a source change mark.
    ///
    /// After each operation (and each `handle_timeout`) every transmit and event is
    /// drained and checked: transmits come from participants in the room and go to
    /// their channel's destination; RTP parses, in the participant's payload type and
    /// its channel's SSRC, one 20 ms frame long, with sequence numbers that follow each
    /// other and timestamps that go forward for the channel's whole life (rejoining on
    /// the same channel included); RTCP parses; each `handle_timeout` sends each
    /// participant one packet per tick due, at most `MAX_CATCH_UP`, and leaves
    /// `poll_timeout` after `now` and no later than the next tick; talking events
    /// alternate and come from participants in the room (or one that just left); a
    /// strict channel stays latched to its SDP address; mute, playing, membership and
    /// the channels' sent counters are as the operations made them.
    pub fn rtp_conference(data: &[u8]) {
        use crate::channel::{
            Channel, ChannelConfig, Event, Latching, Received, Transmit, TransmitKind,
        };
        use crate::codec::{Codec, G722};
        use crate::conference::{
            Conference, ConferenceConfig, ConferenceError, ConferenceEvent, MAX_CATCH_UP,
            MAX_PLAYING_SECONDS, TICK,
        };
        use crate::g711::Law;
        use crate::mixer::{MixerError, ParticipantId, SampleRate};
        use crate::relay::ChannelId;
        use crate::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc, rtcp};
        use std::net::SocketAddr;
        use std::time::{Duration, Instant};

        /// Ticks an input may run at most (2 s of audio), so that every input is quick.
        const MAX_TICKS: u64 = 100;
        const TE: u8 = 101;
        const OPUS: u8 = 111;

        type MakeCodec = fn() -> Box<dyn Codec + Send>;
        fn ulaw() -> Box<dyn Codec + Send> {
            Box::new(Law::Ulaw)
        }
        fn alaw() -> Box<dyn Codec + Send> {
            Box::new(Law::Alaw)
        }
        fn g722() -> Box<dyn Codec + Send> {
            Box::new(G722::new())
        }
        #[cfg(feature = "opus")]
        fn opus() -> Box<dyn Codec + Send> {
            match crate::opus::Opus::new(crate::opus::OpusConfig::default()) {
                Ok(opus) => Box::new(opus),
                Err(e) => panic!("libopus refused the default settings: {e}"),
            }
        }

        /// One participant's place, in the room or not, and what it was sent.
        struct Slot {
            id: ChannelId,
            pt: PayloadType,
            codec: MakeCodec,
            clock: u32,
            latching: Latching,
            rtcp_mux: bool,
            sdp: SocketAddr,
            in_room: bool,
            /// The channel given back by `leave`.
            parked: Option<Channel>,
            /// For the life of its channel: the last RTP sent and when, and how many.
            last_sent: Option<(SeqNo, RtpTimestamp, Instant)>,
            sent: u64,
            /// For its time in the room.
            muted: bool,
            talking: bool,
            playing: usize,
            /// What its phone sends.
            seq: u16,
            tone: Option<Vec<u8>>,
        }

        /// The room's clock as the caller sees it.
        struct Clock {
            t0: Instant,
            /// The last time handled, if any.
            handled: Option<Instant>,
            ticks: u64,
        }

        impl Clock {
            /// The index of the last tick at or before `at` (ticks are t0 + i × TICK).
            fn grid(&self, at: Instant) -> u64 {
                (at.duration_since(self.t0).as_nanos() / TICK.as_nanos()) as u64
            }

            /// Runs `handle_timeout(now)`; the ticks it must have run.
            fn handle(&mut self, room: &mut Conference, now: Instant) -> u64 {
                let due = match self.handled {
                    None => self.grid(now) + 1,
                    Some(previous) => self.grid(now) - self.grid(previous),
                };
                room.handle_timeout(now);
                self.handled = Some(now);
                let run = due.min(u64::from(MAX_CATCH_UP));
                self.ticks += run;
                let next = room.poll_timeout();
                assert!(next > now, "due again at once: {next:?} <= {now:?}");
                let tick = TICK.as_nanos() as u64;
                let next_tick = self.t0 + Duration::from_nanos((self.grid(now) + 1) * tick);
                assert!(next <= next_tick, "the next tick is late");
                run
            }
        }

        /// Drains and checks the room's outputs at `now`: `ticks` ran since the last
        /// drain (none: no `handle_timeout`); `left` may still have events.
        fn drain(
            room: &mut Conference,
            slots: &mut [Slot],
            now: Instant,
            ticks: Option<u64>,
            left: Option<ChannelId>,
            frame: usize,
        ) {
            let mut rtp_to = vec![0u64; slots.len()];
            while let Some((id, transmit)) = room.poll_transmit() {
                let Some(k) = slots.iter().position(|s| s.id == id && s.in_room) else {
                    panic!("{id:?} is not in the room: {transmit:?}");
                };
                let Some(channel) = room.channel(id) else {
                    panic!("{id:?} has no channel");
                };
                let slot = &mut slots[k];
                check_transmit(channel, slot.rtcp_mux, &transmit);
                if transmit.kind == TransmitKind::Rtcp {
                    continue;
                }
                rtp_to[k] += 1;
                slot.sent += 1;
                let Ok(packet) = RtpPacket::parse(transmit.payload.clone()) else {
                    panic!("our RTP does not parse: {transmit:?}");
                };
                assert_eq!(packet.payload_type(), slot.pt);
                assert_eq!(packet.ssrc(), channel.ssrc());
                if slot.pt.get() == OPUS {
                    assert!(!packet.payload().is_empty(), "an empty Opus frame");
                } else {
                    assert_eq!(packet.payload().len(), 160, "not one 20 ms frame");
                }
                if let Some((seq, ts, at)) = slot.last_sent {
                    assert_eq!(
                        packet.sequence(),
                        seq.next(),
                        "{id:?}: the stream's sequence number jumps from {seq:?}"
                    );
                    // Forward, unless so long ago that the timestamps wrapped (a day is
                    // 2^31 units at 24 kHz).
                    if now.duration_since(at) < Duration::from_secs(3600) {
                        assert!(
                            packet.timestamp().wrapping_diff(ts) > 0,
                            "{id:?}: timestamp {:?} after {ts:?}",
                            packet.timestamp()
                        );
                    }
                }
                slot.last_sent = Some((packet.sequence(), packet.timestamp(), now));
            }
            for (k, slot) in slots.iter_mut().enumerate() {
                match ticks {
                    Some(run) if slot.in_room => {
                        assert_eq!(rtp_to[k], run, "{:?}: packets for {run} ticks", slot.id);
                        slot.playing = slot.playing.saturating_sub(frame * run as usize);
                    }
                    _ => assert_eq!(rtp_to[k], 0, "RTP without a tick"),
                }
                let Some(channel) = room.channel(slot.id) else {
                    continue;
                };
                assert_eq!(channel.quality().packets_sent, slot.sent, "{:?}", slot.id);
                let latched = channel.latched();
                let sdp = channel.config().remote;
                match slot.latching {
                    Latching::Strict => assert!(latched.is_none_or(|a| Some(a) == sdp)),
                    Latching::SameIp => {
                        assert!(latched.is_none_or(|a| Some(a.ip()) == sdp.map(|s| s.ip())))
                    }
                    _ => {}
                }
            }
            while let Some((id, event)) = room.poll_event() {
                let Some(slot) = slots.iter_mut().find(|s| s.id == id) else {
                    panic!("an event from {id:?}");
                };
                let gone = left == Some(id);
                assert!(
                    slot.in_room || gone,
                    "{event:?} from {id:?}, not in the room"
                );
                match event {
                    ConferenceEvent::Talking => {
                        assert!(!gone && !slot.talking, "{id:?} talking twice");
                        slot.talking = true;
                    }
                    ConferenceEvent::StoppedTalking => {
                        assert!(slot.talking, "{id:?} stopped talking without talking");
                        slot.talking = false;
                    }
                    ConferenceEvent::Channel(Event::Latched { addr }) => {
                        assert!(!gone, "{event:?} after leaving");
                        if slot.latching == Latching::Strict {
                            let remote = room.channel(id).and_then(|c| c.config().remote);
                            assert_eq!(Some(addr), remote, "a strict channel latched elsewhere");
                        }
                    }
                    _ => assert!(!gone, "{event:?} after leaving"),
                }
            }
            for slot in slots.iter() {
                assert!(!(left == Some(slot.id) && slot.talking), "left talking");
                assert_eq!(
                    room.is_muted(slot.id),
                    slot.in_room.then_some(slot.muted),
                    "{:?}",
                    slot.id
                );
                assert_eq!(
                    room.is_playing(slot.id),
                    slot.playing > 0,
                    "{:?}: {} samples left",
                    slot.id,
                    slot.playing
                );
            }
            let ids: Vec<ChannelId> = slots.iter().filter(|s| s.in_room).map(|s| s.id).collect();
            assert_eq!(room.ids().collect::<Vec<_>>(), ids);
            assert_eq!(room.len(), ids.len());
            assert_eq!(room.dropped(), 0, "drained after every operation");
        }

        /// A transmit goes where its channel sends: RTP to its destination, RTCP there
        /// too with rtcp-mux (else to the port above or where the far end's RTCP came
        /// from); RTCP parses.
        fn check_transmit(channel: &Channel, rtcp_mux: bool, transmit: &Transmit) {
            let Some(destination) = channel.destination() else {
                panic!("sent with no destination: {transmit:?}");
            };
            match transmit.kind {
                TransmitKind::Rtp => assert_eq!(transmit.to, destination),
                TransmitKind::Rtcp => {
                    if rtcp_mux {
                        assert_eq!(transmit.to, destination);
                    }
                    if let Err(e) = rtcp::parse_compound(transmit.payload.clone()) {
                        panic!("our RTCP does not parse: {e}: {transmit:?}");
                    }
                }
            }
        }

        let Some((&setup, mut ops)) = data.split_first() else {
            return;
        };
        let rate = if setup & 1 != 0 {
            SampleRate::Narrowband
        } else {
            SampleRate::Wideband
        };
        let frame = rate.frame_len();
        let cap = MAX_PLAYING_SECONDS * rate.hz() as usize;
        let rtp_timeout = (setup & 4 != 0).then(|| Duration::from_secs(2));
        let events = setup & 8 != 0;
        let t0 = Instant::now();
        let mut now = t0;
        let mut clock = Clock {
            t0,
            handled: None,
            ticks: 0,
        };
        let mut room = Conference::new(
            ConferenceConfig {
                rate,
                ..ConferenceConfig::default()
            },
            t0,
        );
        // Opus joins only with its feature.
        #[cfg_attr(not(feature = "opus"), allow(unused_mut))]
        let mut kinds: Vec<(PayloadType, MakeCodec, Latching, bool)> = vec![
            (PayloadType::PCMU, ulaw, Latching::Strict, true),
            (PayloadType::G722, g722, Latching::SameIp, setup & 2 == 0),
            (PayloadType::PCMA, alaw, Latching::Comedia, true),
        ];
        #[cfg(feature = "opus")]
        if setup & 0x10 != 0 {
            let pt = PayloadType::new(OPUS).unwrap_or_default();
            kinds.push((pt, opus, Latching::Strict, true));
        }
        let mut slots: Vec<Slot> = kinds
            .into_iter()
            .zip(0u8..)
            .map(|((pt, codec, latching, rtcp_mux), k)| Slot {
                id: ChannelId(10 + u64::from(k)),
                pt,
                codec,
                clock: codec().clock_rate(),
                latching,
                rtcp_mux,
                sdp: SocketAddr::from(([192, 0, 2, 1 + k], 4000)),
                in_room: false,
                parked: None,
                last_sent: None,
                sent: 0,
                muted: false,
                talking: false,
                playing: 0,
                seq: 1000,
                tone: None,
            })
            .collect();
        let count = slots.len();
        let strangers = [
            SocketAddr::from(([198, 51, 100, 7], 4000)),
            SocketAddr::from(([203, 0, 113, 9], 9)),
        ];
        let mut seed = u64::from(setup) << 32;
        let mut new_channel = |slot: &Slot, now: Instant| {
            seed += 1;
            let mut config = ChannelConfig::new(slot.pt, slot.clock, seed);
            config.remote = Some(slot.sdp);
            config.latching = slot.latching;
            config.rtcp_mux = slot.rtcp_mux;
            config.rtp_timeout = rtp_timeout;
            config.telephone_event = PayloadType::new(TE).filter(|_| events);
            Channel::new(config, now)
        };
        for slot in &mut slots {
            let channel = new_channel(slot, t0);
            if let Err(e) = room.join(slot.id, channel, (slot.codec)()) {
                panic!("{:?} refused: {e}", slot.id);
            }
            slot.in_room = true;
        }
        let pick = |b: u8| usize::from(b & 3) % count;
        let source = |slot: &Slot, b: u8| match (b >> 2) & 3 {
            0 => slot.sdp,
            1 => SocketAddr::new(slot.sdp.ip(), slot.sdp.port() + 2),
            s => strangers[usize::from(s - 2)],
        };

        while let Some((&op, rest)) = ops.split_first() {
            ops = rest;
            // Takes `n` argument bytes, zeros past the end.
            let mut args = |n: usize| -> Vec<u8> {
                let (taken, rest) = ops.split_at(n.min(ops.len()));
                ops = rest;
                let mut v = taken.to_vec();
                v.resize(n, 0);
                v
            };
            let mut ticks = None;
            let mut left = None;
            match op % 9 {
                0 | 2 => {
                    let [ks, len] = args(2)[..] else { continue };
                    let k = pick(ks);
                    let datagram = args(usize::from(len));
                    let from = source(&slots[k], ks);
                    let got = if op % 9 == 0 {
                        room.receive(slots[k].id, datagram.into(), from, now)
                    } else {
                        room.receive_rtcp(slots[k].id, datagram.into(), from, now)
                    };
                    if !slots[k].in_room {
                        assert!(matches!(got, Received::Dropped(_)), "{got:?}");
                    }
                }
                1 => {
                    let [ks, flags, dseq, len] = args(4)[..] else {
                        continue;
                    };
                    let k = pick(ks);
                    let from = source(&slots[k], ks);
                    let slot = &mut slots[k];
                    let payload = if flags & 0x80 != 0 {
                        let codec = slot.codec;
                        slot.tone
                            .get_or_insert_with(|| {
                                let mut c = codec();
                                let n = c.sample_rate() as usize / 50;
                                let pcm: Vec<i16> = (0..n)
                                    .map(|i| if i % 20 < 10 { 9000 } else { -9000 })
                                    .collect();
                                let mut out = Vec::new();
                                if let Err(e) = c.encode(&pcm, &mut out) {
                                    panic!("a tone frame does not encode: {e}");
                                }
                                out
                            })
                            .clone()
                    } else {
                        args(usize::from(len))
                    };
                    let pt = match flags & 3 {
                        0 => slot.pt,
                        1 => PayloadType::new(TE).unwrap_or_default(),
                        2 => PayloadType::CN,
                        _ => PayloadType::new(flags >> 2).unwrap_or_default(),
                    };
                    slot.seq = slot.seq.wrapping_add_signed(i16::from(dseq as i8));
                    let step = slot.clock / 50;
                    let mut ts = u32::from(slot.seq).wrapping_mul(step);
                    if flags & 0x40 != 0 {
                        ts = ts.wrapping_add(step / 4);
                    }
                    let ssrc = Ssrc(0xabc0 + u32::from(flags & 0x10) * 0x100 + k as u32);
                    let mut packet =
                        RtpPacket::new(pt, SeqNo(slot.seq), RtpTimestamp(ts), ssrc, payload.into());
                    packet.set_marker(flags & 0x20 != 0);
                    room.receive(slot.id, packet.to_bytes(), from, now);
                }
                3 => {
                    let [b] = args(1)[..] else { continue };
                    now += if b < 0x80 {
                        Duration::from_millis(u64::from(b))
                    } else {
                        Duration::from_millis(1 << (b & 31).min(27))
                    };
                    ticks = Some(clock.handle(&mut room, now));
                }
                4 => {
                    let [c] = args(1)[..] else { continue };
                    for _ in 0..c & 7 {
                        now = now.max(room.poll_timeout());
                        let run = clock.handle(&mut room, now);
                        drain(&mut room, &mut slots, now, Some(run), None, frame);
                    }
                    now = now.max(room.poll_timeout());
                    ticks = Some(clock.handle(&mut room, now));
                }
                5 => {
                    let [km] = args(1)[..] else { continue };
                    let slot = &mut slots[pick(km)];
                    let muted = km & 4 != 0;
                    assert_eq!(room.set_muted(slot.id, muted), slot.in_room);
                    if slot.in_room {
                        slot.muted = muted;
                    }
                }
                6 => {
                    let [kl] = args(1)[..] else { continue };
                    let slot = &mut slots[pick(kl)];
                    let frames = usize::from(kl >> 2);
                    if frames == 0 {
                        room.stop_playing(slot.id);
                        slot.playing = 0;
                    } else {
                        let len = if frames == 63 {
                            cap + frame
                        } else {
                            frames * frame
                        };
                        let pcm: Vec<i16> = (0..len)
                            .map(|i| if i % 16 < 8 { 6000 } else { -6000 })
                            .collect();
                        assert_eq!(room.play(slot.id, &pcm), slot.in_room);
                        if slot.in_room {
                            slot.playing = (slot.playing + len).min(cap);
                        }
                    }
                }
                7 => {
                    let [kh] = args(1)[..] else { continue };
                    let k = pick(kh);
                    let fresh = new_channel(&slots[k], now);
                    let slot = &mut slots[k];
                    if slot.in_room && kh & 8 != 0 {
                        let refused = room.join(slot.id, fresh, (slot.codec)());
                        let present = MixerError::AlreadyPresent(ParticipantId(slot.id.0));
                        assert_eq!(refused, Err(ConferenceError::Mixer(present)));
                    } else if slot.in_room {
                        let Some(channel) = room.leave(slot.id) else {
                            panic!("{:?} was in the room", slot.id);
                        };
                        assert!(room.channel(slot.id).is_none());
                        slot.parked = Some(channel);
                        slot.in_room = false;
                        slot.playing = 0;
                        left = Some(slot.id);
                    } else {
                        assert!(room.leave(slot.id).is_none());
                        let channel = match slot.parked.take() {
                            Some(parked) if kh & 4 != 0 => parked,
                            _ => {
                                slot.last_sent = None;
                                slot.sent = 0;
                                fresh
                            }
                        };
                        if let Err(e) = room.join(slot.id, channel, (slot.codec)()) {
                            panic!("{:?} refused again: {e}", slot.id);
                        }
                        slot.in_room = true;
                        slot.muted = false;
                        slot.talking = false;
                        slot.playing = 0;
                    }
                }
                _ => {
                    let [kw] = args(1)[..] else { continue };
                    let slot = &mut slots[pick(kw)];
                    let changed = room.update(slot.id, |c| {
                        if kw & 8 != 0 {
                            let port = c.config().remote.map_or(4000, |a| a.port() ^ 0x10);
                            c.set_remote(SocketAddr::new(slot.sdp.ip(), port));
                        } else if kw & 4 != 0 {
                            let timeout = match c.config().rtp_timeout {
                                Some(_) => None,
                                None => Some(Duration::from_secs(2)),
                            };
                            c.set_rtp_timeout(timeout, now);
                        } else {
                            c.mark_source_change();
                        }
                    });
                    assert_eq!(changed.is_some(), slot.in_room);
                }
            }
            drain(&mut room, &mut slots, now, ticks, left, frame);
            if clock.ticks >= MAX_TICKS {
                break;
            }
        }
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
