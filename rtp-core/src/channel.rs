//! One RTP/RTCP endpoint of a call, sans-IO: the media side of a SIP leg.
//!
//! A [`Channel`] owns what one far end (a phone, a trunk) sees of the PBX's media: which
//! source it accepts packets from (latching, NAT-aware), the RFC 3550 reception
//! statistics of that source, its DTMF digits (RFC 4733), the stream it sends there
//! (packets from other channels rewritten into one continuous stream with our SSRC),
//! the RTCP reports both ways and the RTP timeout. It never touches a socket or the
//! clock: datagrams and [`Instant`]s go in, [`Transmit`]s and [`Event`]s come out.
//!
//! # Latching
//!
//! Which source address may feed the channel is the [`Latching`] mode:
//!
//! - [`Latching::Strict`]: only the address from SDP. The latch never moves except by
//!   [`Channel::set_remote`] (a re-INVITE), which moves it at once.
//! - [`Latching::SameIp`]: the SDP address's IP, any port: the port is learned as in
//!   comedia mode, but never off that IP.
//! - [`Latching::Comedia`] (symmetric RTP behind NAT): any source. A packet from the
//!   exact SDP address latches at once (the signalling vouched for it); any other
//!   source must first send [`ChannelConfig::probation`] (default 4) consecutive
//!   valid RTP packets — same address, same SSRC, sequence numbers following — with
//!   no packet from the latched source in between. A few sources are tracked at once,
//!   so two interleaved streams do not reset each other's run.
//!
//! A packet from the exact SDP address also takes the latch back at once from any
//! other source, so a stranger who sprays the port before the phone starts sending
//! loses the stream at the phone's first packet.
//!
//! Once latched, another source (a hijacker, or a stale stream) takes the latch over
//! only if it passes probation **and** the latched source has been silent for
//! [`ChannelConfig::relatch_after`] (default 1 s). Until then its packets are dropped
//! and counted in [`Quality::foreign`]. So a second sender that interleaves packets
//! with the real phone never moves the latch, and one that sends a burst while the
//! phone talks does not either. The price: in comedia modes a sender who outlasts a
//! silent phone (one on hold that sends nothing) by 1 s and then sends 4 packets in
//! order takes the stream over; use [`Latching::Strict`] where the far end's address is
//! known to be right.
//!
//! [`Channel::set_remote`] in the comedia modes restarts learning as at the start of a
//! call: the new SDP address latches on its first packet, another source by probation
//! (the silence rule waived, since the far end said it moved). If the old source wins
//! again, the latch did not move and no event is emitted.
//!
//! # Forwarding
//!
//! [`Channel::forward`] sends a packet received on another channel (or made by a
//! player) to this channel's far end with our SSRC. Within one source, sequence numbers
//! and timestamps are shifted by a fixed offset, so gaps and reordering pass through as
//! they are. When the source changes (another SSRC, or [`Channel::mark_source_change`]
//! after a re-bridge), the far end still sees one stream: the sequence number continues
//! at the last one sent plus one, the timestamp at the last one sent plus the wall time
//! elapsed since (at least one [`ChannelConfig::ptime`] frame), and the marker bit is
//! set on the first packet of the new source.
//!
//! # Run loop
//!
//! ```
//! use bytes::Bytes;
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//! use pbxkit_rtp::channel::{Channel, ChannelConfig, Event, Latching, Received};
//! use pbxkit_rtp::packet::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
//!
//! let phone: SocketAddr = "192.0.2.10:4000".parse()?;
//! let mut config = ChannelConfig::new(PayloadType::PCMU, 8000, 0x1234_5678_9abc_def0);
//! config.remote = Some(phone); // from the SDP
//! config.latching = Latching::Strict;
//! config.rtp_timeout = Some(Duration::from_secs(30));
//! let t0 = Instant::now(); // the caller's clock; tests use simulated instants
//! let mut channel = Channel::new(config, t0);
//!
//! // A datagram arrived on the channel's port.
//! let packet = RtpPacket::new(PayloadType::PCMU, SeqNo(1), RtpTimestamp(0), Ssrc(7), Bytes::from_static(&[0xFF; 160]));
//! let now = t0 + Duration::from_millis(20);
//! let Received::Media(media) = channel.receive(packet.to_bytes(), phone, now) else {
//!     panic!("dropped");
//! };
//! assert_eq!(channel.poll_event(), Some(Event::Latched { addr: phone }));
//!
//! // Relay it to another channel's far end (here, back to the same one).
//! let transmit = channel.forward(&media, now).expect("a destination");
//! assert_eq!(transmit.to, phone);
//! assert_eq!(RtpPacket::parse(transmit.payload)?.ssrc(), channel.ssrc());
//!
//! // The timer loop: sleep until `poll_timeout`, then handle it and drain the outputs.
//! let deadline = channel.poll_timeout().expect("RTCP is scheduled");
//! channel.handle_timeout(deadline);
//! while let Some(transmit) = channel.poll_transmit() {
//!     // socket.send_to(&transmit.payload, transmit.to): an RTCP SR with SDES CNAME.
//!     assert_eq!(transmit.to, phone);
//! }
//! while let Some(event) = channel.poll_event() {
//!     // Dtmf, RtpTimeout, RemoteReport, Relatched... to the call engine.
//!     let _ = event;
//! }
//! assert_eq!(channel.quality().packets_received, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::demux::{PacketClass, classify};
use crate::dtmf::{DtmfEvent, DtmfReceiver, EventCode};
use crate::packet::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
use crate::rtcp::{
    self, NtpTime, ReportBlock, RtcpPacket, SdesChunk, SdesItem, SenderReport, SourceDescription,
};
use crate::stats::{ReceptionStats, RtcpConfig, RtcpScheduler};
use bytes::Bytes;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Which sources a [`Channel`] accepts media from (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Latching {
    /// Only the exact address from SDP; nothing before one is known.
    Strict,
    /// The SDP address's IP, the port learned by probation; nothing before an SDP
    /// address is known.
    SameIp,
    /// Any source, learned by probation (symmetric RTP, for phones behind NAT).
    #[default]
    Comedia,
}

/// The settings of a [`Channel`]: what SDP negotiated and the PBX's policy.
///
/// Made with [`ChannelConfig::new`], then adjusted field by field.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ChannelConfig {
    /// Our SSRC (random: see [`ChannelConfig::new`]).
    pub ssrc: Ssrc,
    /// The negotiated audio payload type.
    pub payload_type: PayloadType,
    /// Its RTP clock rate in Hz (8000 for G.711 and G.722; 0 is taken as 8000).
    pub clock_rate: u32,
    /// The packet duration, the smallest timestamp step on a source change (20 ms).
    pub ptime: Duration,
    /// Other payload types taken as media: an SDP may list several codecs and the
    /// far end may switch between them (a relay forwards them all). Empty by default.
    pub also_accepted: Vec<PayloadType>,
    /// The negotiated telephone-event (RFC 4733) payload type, if any.
    pub telephone_event: Option<PayloadType>,
    /// The clock rate of the telephone-event payload type (by default `clock_rate`).
    pub telephone_event_clock_rate: u32,
    /// The far end's media address from SDP, if known yet.
    pub remote: Option<SocketAddr>,
    /// Which sources are accepted (comedia by default).
    pub latching: Latching,
    /// Consecutive valid RTP packets a new source must send to take the latch (4; at
    /// least 1).
    pub probation: u32,
    /// How long the latched source must have been silent before another one may take
    /// the latch over (1 s).
    pub relatch_after: Duration,
    /// Emit [`Event::RtpTimeout`] after this long without valid RTP (none by default).
    pub rtp_timeout: Option<Duration>,
    /// RTCP shares the RTP port (RFC 5761; true by default). Otherwise reports go to the
    /// RTP port plus one, or to where the far end's RTCP comes from.
    pub rtcp_mux: bool,
    /// The RTCP interval parameters (RFC 3550 §6.2).
    pub rtcp: RtcpConfig,
    /// Our SDES CNAME (by default derived from the random value, as RFC 7022 suggests;
    /// cut to 255 bytes).
    pub cname: String,
    /// The NTP wall-clock time at the `now` given to [`Channel::new`], for sender
    /// reports (see [`NtpTime::from_unix`]). Round-trip times are right whatever it is.
    pub ntp_at_start: NtpTime,
    /// Seeds the channel's generator: the RTCP interval randomisation and the first
    /// sequence number and timestamp sent.
    pub seed: u64,
}

impl ChannelConfig {
    /// A configuration for `payload_type` at `clock_rate` Hz. `random` must come from
    /// a good generator: it gives the SSRC, the CNAME and the seed.
    pub fn new(payload_type: PayloadType, clock_rate: u32, random: u64) -> ChannelConfig {
        // The low half is the SSRC; the whole value seeds the rest.
        let ssrc = Ssrc(random as u32);
        ChannelConfig {
            ssrc,
            payload_type,
            clock_rate,
            ptime: Duration::from_millis(20),
            also_accepted: Vec::new(),
            telephone_event: None,
            telephone_event_clock_rate: clock_rate,
            remote: None,
            latching: Latching::Comedia,
            probation: 4,
            relatch_after: Duration::from_secs(1),
            rtp_timeout: None,
            rtcp_mux: true,
            rtcp: RtcpConfig::default(),
            cname: format!("pbxkit-{random:016x}"),
            ntp_at_start: NtpTime::default(),
            seed: random,
        }
    }
}

/// Which socket a [`Transmit`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransmitKind {
    /// RTP, from the channel's RTP socket.
    Rtp,
    /// RTCP: from the RTP socket with rtcp-mux, otherwise from the RTCP socket.
    Rtcp,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transmit {
    /// The destination.
    pub to: SocketAddr,
    /// RTP or RTCP.
    pub kind: TransmitKind,
    /// The datagram.
    pub payload: Bytes,
}

/// Why [`Channel::receive`] dropped a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Not RTP or RTCP, or it does not parse ([`Quality::malformed`]).
    Malformed,
    /// A payload type that was not negotiated
    /// ([`Quality::unexpected_payload_type`]).
    PayloadType,
    /// From a source other than the latched one ([`Quality::foreign`]).
    Foreign,
    /// Nothing latched yet and this source is still on probation
    /// ([`Quality::learning`]).
    Learning,
}

/// What [`Channel::receive`] made of a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received {
    /// RTP from the latched source: audio, comfort noise or a telephone event (whose
    /// digits also come as [`Event::Dtmf`]). Play it, record it or
    /// [`forward`](Channel::forward) it.
    Media(RtpPacket),
    /// RTCP from the far end, taken into account.
    Rtcp,
    /// Dropped and counted.
    Dropped(DropReason),
}

/// The far end's view of our stream, from the last report block it sent about us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RemoteReport {
    /// Packets lost in its last interval, as a fraction of 256.
    pub fraction_lost: u8,
    /// Packets lost in all.
    pub cumulative_lost: i32,
    /// The interarrival jitter it measured.
    pub jitter: Duration,
    /// The round-trip time that report gave (RFC 3550 §6.4.1), if it echoed one of
    /// our sender reports.
    pub rtt: Option<Duration>,
}

/// What a [`Channel`] tells the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Event {
    /// The channel latched onto its first source.
    Latched {
        /// The source, now also the destination.
        addr: SocketAddr,
    },
    /// The latch moved (a re-INVITE, or the far end's NAT binding changed).
    Relatched {
        /// The previous source.
        from: SocketAddr,
        /// The new one.
        to: SocketAddr,
    },
    /// A DTMF key (or other telephone event) ended; reported once per key press,
    /// however many end packets carried it.
    Dtmf {
        /// The key.
        digit: EventCode,
        /// How long it was held.
        duration: Duration,
    },
    /// No valid RTP for [`ChannelConfig::rtp_timeout`]. Reported once; armed again
    /// when media resumes.
    RtpTimeout,
    /// The far end sent a report block about our stream.
    RemoteReport(RemoteReport),
}

/// The channel's counters and statistics, for CDRs and monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Quality {
    /// RTP packets accepted from the latched source.
    pub packets_received: u64,
    /// Payload octets in them.
    pub octets_received: u64,
    /// Packets lost, over every SSRC the far end used (RFC 3550 A.3: negative when
    /// duplicates outnumber losses).
    pub lost: i64,
    /// The interarrival jitter of the current source (RFC 3550 A.8).
    pub jitter: Duration,
    /// The last round-trip time measured from the far end's reports.
    pub rtt: Option<Duration>,
    /// Valid RTP dropped because another source held the latch.
    pub foreign: u64,
    /// Valid RTP dropped while nothing was latched and its source was on probation.
    pub learning: u64,
    /// Datagrams that are neither RTP nor RTCP, or do not parse.
    pub malformed: u64,
    /// RTP with a payload type that was not negotiated.
    pub unexpected_payload_type: u64,
    /// RTP packets sent by [`Channel::forward`].
    pub packets_sent: u64,
    /// Payload octets in them.
    pub octets_sent: u64,
    /// The last report of the far end about our stream.
    pub remote: Option<RemoteReport>,
}

/// Bytes of IPv4 and UDP headers, counted in the RTCP average packet size (§6.2).
const UDP_IP_OVERHEAD: usize = 28;
/// Outputs kept for the caller at most; older ones are dropped first.
const MAX_QUEUED: usize = 32;
/// Sender reports remembered to validate the LSR of the far end's report blocks.
const SENT_REPORTS: usize = 4;

/// One RTP/RTCP endpoint of a call (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Channel {
    config: ChannelConfig,
    started: Instant,
    rng: Rng,
    latch: Latch,
    /// Where the far end's RTCP comes from without rtcp-mux (symmetric RTCP).
    rtcp_source: Option<SocketAddr>,
    stats: ReceptionStats,
    /// The far end's current SSRC.
    remote_ssrc: Option<Ssrc>,
    /// Losses of the far end's previous SSRCs.
    past_lost: i64,
    /// The far end sent RTP since our last report.
    remote_sent: bool,
    dtmf: DtmfReceiver,
    out: Outbound,
    scheduler: RtcpScheduler,
    /// The middle 32 bits of our last sender reports' NTP times.
    sent_reports: VecDeque<u32>,
    last_media: Option<Instant>,
    /// When the RTP timeout was last (re)configured.
    timeout_armed_at: Instant,
    timed_out: bool,
    quality: Quality,
    events: VecDeque<Event>,
    transmits: VecDeque<Transmit>,
}

impl Channel {
    /// A channel with `config`, created at `now`.
    pub fn new(mut config: ChannelConfig, now: Instant) -> Channel {
        if config.clock_rate == 0 {
            config.clock_rate = 8000;
        }
        if config.telephone_event_clock_rate == 0 {
            config.telephone_event_clock_rate = config.clock_rate;
        }
        // An SDES item holds 255 bytes; a longer CNAME would make every report fail.
        if config.cname.len() > 255 {
            let mut end = 255;
            while !config.cname.is_char_boundary(end) {
                end -= 1;
            }
            config.cname.truncate(end);
        }
        let mut rng = Rng::new(config.seed);
        let scheduler = RtcpScheduler::new(config.rtcp, now, rng.unit());
        // RFC 3550 §5.1: the first sequence number and timestamp are random.
        let first = rng.next_u64();
        let out = Outbound {
            mapping: None,
            source_changed: false,
            first_seq: SeqNo(first as u16),
            first_ts: RtpTimestamp((first >> 32) as u32),
            last: None,
            packets: 0,
            octets: 0,
            since_report: false,
        };
        Channel {
            latch: Latch {
                mode: config.latching,
                probation: config.probation.max(1),
                relatch_after: config.relatch_after,
                sdp: config.remote,
                current: None,
                previous: None,
                heard: None,
                candidates: Candidates::default(),
            },
            rtcp_source: None,
            stats: ReceptionStats::new(config.clock_rate, 2),
            remote_ssrc: None,
            past_lost: 0,
            remote_sent: false,
            dtmf: DtmfReceiver::new(),
            out,
            scheduler,
            sent_reports: VecDeque::with_capacity(SENT_REPORTS),
            last_media: None,
            timeout_armed_at: now,
            timed_out: false,
            quality: Quality::default(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            started: now,
            rng,
            config,
        }
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> Ssrc {
        self.config.ssrc
    }

    /// The configuration, with `remote` and `rtp_timeout` as last set.
    pub fn config(&self) -> &ChannelConfig {
        &self.config
    }

    /// The source media is accepted from, once latched.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latch.current
    }

    /// Where RTP goes: the latched source, else the SDP address.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.latch.destination()
    }

    /// The far end's current SSRC, once it sent media.
    pub fn remote_ssrc(&self) -> Option<Ssrc> {
        self.remote_ssrc
    }

    /// The far end's SDP address changed (a re-INVITE): with [`Latching::Strict`] the
    /// latch moves at once (emitting [`Event::Relatched`] if it was latched); in the
    /// comedia modes learning starts over (see the [module docs](self)). The same
    /// address again (a session refresh) changes nothing.
    pub fn set_remote(&mut self, addr: SocketAddr) {
        if self.latch.sdp == Some(addr) {
            return;
        }
        self.rtcp_source = None;
        self.config.remote = Some(addr);
        if let Some(from) = self.latch.set_remote(addr) {
            self.push_event(Event::Relatched { from, to: addr });
        }
    }

    /// Changes the RTP timeout at `now` (for example none while on hold); the time
    /// without media is counted from `now` or the last packet, whichever is later.
    pub fn set_rtp_timeout(&mut self, timeout: Option<Duration>, now: Instant) {
        self.config.rtp_timeout = timeout;
        self.timeout_armed_at = now;
        self.timed_out = false;
    }

    /// Handles a datagram received on the channel's RTP port from `from` at `now`:
    /// RTP, or RTCP multiplexed on the same port (RFC 5761).
    pub fn receive(&mut self, datagram: Bytes, from: SocketAddr, now: Instant) -> Received {
        match classify(&datagram) {
            PacketClass::Rtp => self.receive_rtp(datagram, from, now),
            PacketClass::Rtcp => self.receive_rtcp_from(datagram, from, now, false),
            _ => self.malformed(),
        }
    }

    /// Handles a datagram received on the channel's separate RTCP port (without
    /// rtcp-mux). Reports are then sent back to where it came from (symmetric RTCP).
    pub fn receive_rtcp(&mut self, datagram: Bytes, from: SocketAddr, now: Instant) -> Received {
        match classify(&datagram) {
            PacketClass::Rtcp => self.receive_rtcp_from(datagram, from, now, true),
            _ => self.malformed(),
        }
    }

    fn malformed(&mut self) -> Received {
        self.quality.malformed += 1;
        Received::Dropped(DropReason::Malformed)
    }

    fn receive_rtp(&mut self, datagram: Bytes, from: SocketAddr, now: Instant) -> Received {
        let Ok(packet) = RtpPacket::parse(datagram) else {
            return self.malformed();
        };
        let pt = packet.payload_type();
        let is_event = self.config.telephone_event == Some(pt);
        if pt != self.config.payload_type
            && !is_event
            && pt != PayloadType::CN
            && !self.config.also_accepted.contains(&pt)
        {
            self.quality.unexpected_payload_type += 1;
            return Received::Dropped(DropReason::PayloadType);
        }
        match self
            .latch
            .admit(from, packet.ssrc(), packet.sequence(), now)
        {
            Admission::Accept => {}
            Admission::Foreign => {
                self.quality.foreign += 1;
                return Received::Dropped(DropReason::Foreign);
            }
            Admission::Learning => {
                self.quality.learning += 1;
                return Received::Dropped(DropReason::Learning);
            }
            Admission::Latched { previous } => match previous {
                None => self.push_event(Event::Latched { addr: from }),
                Some(previous) if previous != from => self.push_event(Event::Relatched {
                    from: previous,
                    to: from,
                }),
                Some(_) => {}
            },
        }
        self.last_media = Some(now);
        self.timed_out = false;
        self.remote_sent = true;
        self.quality.packets_received += 1;
        self.quality.octets_received += packet.payload().len() as u64;
        self.account(&packet, now);
        if is_event {
            // A payload that is not one event is the far end's problem; the packet is
            // still media for a relay.
            let _ = self
                .dtmf
                .handle_payload(packet.timestamp(), packet.payload());
            self.drain_dtmf();
        }
        Received::Media(packet)
    }

    /// Reception statistics, one SSRC at a time: a far end that changes SSRC (a
    /// re-INVITE, a transfer behind it) starts a new source; its losses are kept.
    fn account(&mut self, packet: &RtpPacket, now: Instant) {
        let ssrc = packet.ssrc();
        if self.remote_ssrc != Some(ssrc) {
            if let Some(old) = self.remote_ssrc.replace(ssrc) {
                if let Some(source) = self.stats.source(old) {
                    self.past_lost += source.cumulative_lost();
                }
                self.stats.remove(old);
            }
            // Telephone-event timestamps of the old source mean nothing now.
            self.dtmf.flush();
            self.drain_dtmf();
            self.dtmf = DtmfReceiver::new();
        }
        let is_event = self.config.telephone_event == Some(packet.payload_type());
        let _ = if is_event {
            self.stats.update_sequence(ssrc, packet.sequence(), now)
        } else {
            self.stats
                .update(ssrc, packet.sequence(), packet.timestamp(), now)
        };
    }

    fn drain_dtmf(&mut self) {
        while let Some(event) = self.dtmf.poll_event() {
            if let DtmfEvent::Ended {
                event, duration, ..
            } = event
            {
                let rate = u128::from(self.config.telephone_event_clock_rate);
                let nanos = u128::from(duration) * 1_000_000_000 / rate;
                self.push_event(Event::Dtmf {
                    digit: event,
                    duration: Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)),
                });
            }
        }
    }

    fn receive_rtcp_from(
        &mut self,
        datagram: Bytes,
        from: SocketAddr,
        now: Instant,
        own_port: bool,
    ) -> Received {
        // RTCP comes from the far end's host, on the RTP port or the next one; reports
        // from elsewhere could fake our round-trip time.
        if self.destination().is_none_or(|d| d.ip() != from.ip()) {
            self.quality.foreign += 1;
            return Received::Dropped(DropReason::Foreign);
        }
        let len = datagram.len();
        let Ok(packets) = rtcp::parse_compound(datagram) else {
            return self.malformed();
        };
        if own_port {
            self.rtcp_source = Some(from);
        }
        self.scheduler.on_rtcp_received(len + UDP_IP_OVERHEAD);
        for packet in &packets {
            let blocks = match packet {
                RtcpPacket::SenderReport(sr) => {
                    if let Some(source) = self.stats.source_mut(sr.ssrc) {
                        source.on_sender_report(sr.ntp_time, now);
                    }
                    &sr.reports
                }
                RtcpPacket::ReceiverReport(rr) => &rr.reports,
                _ => continue,
            };
            if let Some(block) = blocks.iter().find(|b| b.ssrc == self.config.ssrc) {
                let report = self.remote_report(block, now);
                if report.rtt.is_some() {
                    self.quality.rtt = report.rtt;
                }
                self.quality.remote = Some(report);
                self.push_event(Event::RemoteReport(report));
            }
        }
        Received::Rtcp
    }

    fn remote_report(&self, block: &ReportBlock, now: Instant) -> RemoteReport {
        // RFC 3550 §6.4.1: RTT = A - LSR - DLSR, all in 1/65536 s, where A is when the
        // report arrived on our NTP clock. Only an LSR we sent is trusted.
        let rtt = (block.last_sr != 0 && self.sent_reports.contains(&block.last_sr))
            .then(|| {
                let arrival = self.ntp(now).middle_32();
                let units = arrival
                    .wrapping_sub(block.last_sr)
                    .wrapping_sub(block.delay_since_last_sr);
                // A negative value is a far end whose DLSR is off: no measure.
                (units <= i32::MAX as u32)
                    .then(|| Duration::from_nanos(u64::from(units) * 1_000_000_000 / 65536))
            })
            .flatten();
        let nanos = u64::from(block.jitter) * 1_000_000_000 / u64::from(self.config.clock_rate);
        RemoteReport {
            fraction_lost: block.fraction_lost,
            cumulative_lost: block.cumulative_lost.get(),
            jitter: Duration::from_nanos(nanos),
            rtt,
        }
    }

    /// The next source forwarded starts a new stream segment even if its SSRC is the
    /// one forwarded before (call it when re-bridging: two phones may share an SSRC).
    pub fn mark_source_change(&mut self) {
        self.out.source_changed = true;
    }

    /// Rewrites `packet` (from another channel or a player) into this channel's
    /// stream: our SSRC, sequence numbers and timestamps mapped so that the far end sees
    /// one continuous stream (see the [module docs](self)). The payload type, marker
    /// and payload are kept; header extensions, CSRCs and padding are not.
    /// `None`, and nothing counted, while no destination is known.
    pub fn forward(&mut self, packet: &RtpPacket, now: Instant) -> Option<Transmit> {
        let to = self.destination()?;
        let frame = clock_units(self.config.ptime, self.config.clock_rate).max(1);
        let (sequence, timestamp, marker) =
            self.out.map(packet, now, self.config.clock_rate, frame);
        // Header extensions and CSRCs are left behind: their ids were negotiated
        // with the other leg, and we are the source this far end sees.
        let mut rewritten = RtpPacket::new(
            packet.payload_type(),
            sequence,
            timestamp,
            self.config.ssrc,
            packet.payload().clone(),
        );
        rewritten.set_marker(marker || packet.marker());
        self.out.packets += 1;
        self.out.octets += packet.payload().len() as u64;
        self.out.since_report = true;
        self.quality.packets_sent = self.out.packets;
        self.quality.octets_sent = self.out.octets;
        Some(Transmit {
            to,
            kind: TransmitKind::Rtp,
            payload: rewritten.to_bytes(),
        })
    }

    /// When [`Channel::handle_timeout`] must be called next: the RTCP report or the
    /// RTP timeout, whichever is first.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Timer::ALL.iter().filter_map(|&t| self.deadline(t)).min()
    }

    /// When `timer` fires, if it is armed.
    fn deadline(&self, timer: Timer) -> Option<Instant> {
        match timer {
            Timer::Rtcp => Some(self.scheduler.poll_timeout()),
            Timer::RtpTimeout => {
                let timeout = self.config.rtp_timeout.filter(|_| !self.timed_out)?;
                let since = match self.last_media {
                    Some(last) => last.max(self.timeout_armed_at),
                    None => self.timeout_armed_at,
                };
                since.checked_add(timeout)
            }
        }
    }

    /// Handles the timers due at `now`: the RTP timeout and the RTCP report, which
    /// then waits in [`Channel::poll_transmit`].
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in Timer::ALL {
            if self.deadline(timer).is_some_and(|deadline| deadline <= now) {
                match timer {
                    Timer::RtpTimeout => self.on_rtp_timeout(),
                    Timer::Rtcp => self.on_rtcp_timer(now),
                }
            }
        }
    }

    fn on_rtp_timeout(&mut self) {
        self.timed_out = true;
        // A key held when media stopped ends here.
        self.dtmf.flush();
        self.drain_dtmf();
        self.push_event(Event::RtpTimeout);
    }

    fn on_rtcp_timer(&mut self, now: Instant) {
        let remote = u32::from(self.remote_ssrc.is_some());
        let senders = u32::from(self.out.since_report) + u32::from(self.remote_sent);
        self.scheduler.set_we_sent(self.out.since_report);
        self.scheduler.set_members(1 + remote, senders, now);
        let random = self.rng.unit();
        if !self.scheduler.handle_timeout(now, random) {
            return;
        }
        let Some(to) = self.rtcp_destination() else {
            return; // no one to report to yet
        };
        let Ok(payload) = self.report(now) else {
            return;
        };
        let size = payload.len() + UDP_IP_OVERHEAD;
        self.push_transmit(Transmit {
            to,
            kind: TransmitKind::Rtcp,
            payload,
        });
        let random = self.rng.unit();
        self.scheduler.on_rtcp_sent(size, random);
        self.out.since_report = false;
        self.remote_sent = false;
    }

    fn rtcp_destination(&self) -> Option<SocketAddr> {
        let rtp = self.destination()?;
        if self.config.rtcp_mux {
            return Some(rtp);
        }
        if let Some(source) = self.rtcp_source {
            return Some(source);
        }
        let port = rtp.port().checked_add(1)?;
        Some(SocketAddr::new(rtp.ip(), port))
    }

    /// A compound report: SR if we sent since the last report, else RR; then SDES.
    fn report(&mut self, now: Instant) -> Result<Bytes, rtcp::BuildError> {
        let rr = self.stats.receiver_report(self.config.ssrc, now);
        let first = if self.out.since_report {
            let ntp_time = self.ntp(now);
            let rtp_time = match self.out.last {
                Some(last) => {
                    let elapsed = now.saturating_duration_since(last.at);
                    last.timestamp
                        .wrapping_add(clock_units(elapsed, self.config.clock_rate))
                }
                None => self.out.first_ts,
            };
            if self.sent_reports.len() == SENT_REPORTS {
                self.sent_reports.pop_front();
            }
            self.sent_reports.push_back(ntp_time.middle_32());
            RtcpPacket::SenderReport(SenderReport {
                ssrc: self.config.ssrc,
                ntp_time,
                rtp_time,
                // The counters wrap on the wire (RFC 3550 §6.4.1).
                packet_count: self.out.packets as u32,
                octet_count: self.out.octets as u32,
                reports: rr.reports,
                extension: Bytes::new(),
            })
        } else {
            RtcpPacket::ReceiverReport(rr)
        };
        let sdes = RtcpPacket::SourceDescription(SourceDescription {
            chunks: vec![SdesChunk {
                ssrc: self.config.ssrc,
                items: vec![SdesItem::cname(&self.config.cname)],
            }],
        });
        rtcp::serialize_compound(&[first, sdes])
    }

    fn ntp(&self, now: Instant) -> NtpTime {
        self.config
            .ntp_at_start
            .wrapping_add(now.saturating_duration_since(self.started))
    }

    /// The next datagram to send (RTCP reports).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The counters and statistics so far.
    pub fn quality(&self) -> Quality {
        let mut quality = self.quality;
        let current = self.remote_ssrc.and_then(|ssrc| self.stats.source(ssrc));
        quality.lost = self.past_lost + current.map_or(0, |s| s.cumulative_lost());
        quality.jitter = current.map_or(Duration::ZERO, |s| s.jitter_duration());
        quality
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() == MAX_QUEUED {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    fn push_transmit(&mut self, transmit: Transmit) {
        if self.transmits.len() == MAX_QUEUED {
            self.transmits.pop_front();
        }
        self.transmits.push_back(transmit);
    }
}

/// The channel's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// The next RTCP report (RFC 3550 A.7, with reconsideration).
    Rtcp,
    /// No valid RTP for the configured time.
    RtpTimeout,
}

impl Timer {
    /// Every timer, in the order [`Channel::handle_timeout`] checks them.
    const ALL: [Timer; 2] = [Timer::RtpTimeout, Timer::Rtcp];
}

/// `duration` in units of a `rate` Hz clock, wrapping like RTP timestamps do.
fn clock_units(duration: Duration, rate: u32) -> u32 {
    // Truncation to 32 bits is the timestamp wrap.
    (duration.as_nanos() * u128::from(rate) / 1_000_000_000) as u32
}

/// What the latch made of a valid RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// From the latched source.
    Accept,
    /// This packet's source took the latch; `previous` held it before.
    Latched { previous: Option<SocketAddr> },
    /// Nothing latched; its source is on probation.
    Learning,
    /// Another source holds the latch, or the mode refuses this source.
    Foreign,
}

/// A source on probation for the latch.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    from: SocketAddr,
    ssrc: Ssrc,
    seq: SeqNo,
    /// Consecutive valid packets so far.
    count: u32,
    heard: Instant,
}

/// Sources on probation, tracked separately: two sources interleaving their packets
/// (an old stream trickling in after a re-INVITE, or a second sender at call start)
/// must not keep resetting each other's run, or neither would ever latch.
const MAX_CANDIDATES: usize = 4;

#[derive(Debug, Clone, Default)]
struct Candidates(Vec<Candidate>);

impl Candidates {
    /// Accounts for a packet from `from`; returns its run of consecutive packets (same
    /// SSRC, each sequence number following the last), this one included.
    fn advance(&mut self, from: SocketAddr, ssrc: Ssrc, seq: SeqNo, now: Instant) -> u32 {
        let fresh = Candidate {
            from,
            ssrc,
            seq,
            count: 1,
            heard: now,
        };
        if let Some(c) = self.0.iter_mut().find(|c| c.from == from) {
            let count = if c.ssrc == ssrc && seq == c.seq.next() {
                c.count.saturating_add(1)
            } else {
                1
            };
            *c = Candidate { count, ..fresh };
            return count;
        }
        if self.0.len() < MAX_CANDIDATES {
            self.0.push(fresh);
        } else if let Some(oldest) = self.0.iter_mut().min_by_key(|c| c.heard) {
            // Bounded: many spoofed sources only evict each other.
            *oldest = fresh;
        }
        1
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// Which source the channel listens to (the rules are in the module docs).
#[derive(Debug, Clone)]
struct Latch {
    mode: Latching,
    probation: u32,
    relatch_after: Duration,
    sdp: Option<SocketAddr>,
    current: Option<SocketAddr>,
    /// What was latched before `set_remote` restarted learning, for the next event.
    previous: Option<SocketAddr>,
    /// The last valid packet from `current`.
    heard: Option<Instant>,
    candidates: Candidates,
}

impl Latch {
    fn destination(&self) -> Option<SocketAddr> {
        self.current.or(self.sdp)
    }

    fn admissible(&self, from: SocketAddr) -> bool {
        match (self.mode, self.sdp) {
            (Latching::Comedia, _) => true,
            (Latching::Strict, Some(sdp)) => from == sdp,
            (Latching::SameIp, Some(sdp)) => from.ip() == sdp.ip(),
            (_, None) => false,
        }
    }

    fn admit(&mut self, from: SocketAddr, ssrc: Ssrc, seq: SeqNo, now: Instant) -> Admission {
        if !self.admissible(from) {
            return Admission::Foreign;
        }
        if self.current == Some(from) {
            self.heard = Some(now);
            // A packet from the latched source breaks every candidate's run: taking
            // over needs a run the real source does not interrupt.
            self.candidates.clear();
            return Admission::Accept;
        }
        // The SDP address is vouched for by the signalling: no probation, and it
        // takes the latch from any other source at once (a stranger who sent to the
        // port before the phone did must not keep its stream).
        let vouched = self.sdp == Some(from);
        let count = self.candidates.advance(from, ssrc, seq, now);
        let silent = match (self.current, self.heard) {
            (Some(_), Some(heard)) => now.saturating_duration_since(heard) >= self.relatch_after,
            _ => true,
        };
        if vouched || (count >= self.probation && silent) {
            let previous = self.current.take().or(self.previous.take());
            self.current = Some(from);
            self.heard = Some(now);
            self.candidates.clear();
            return Admission::Latched { previous };
        }
        if self.current.is_some() {
            Admission::Foreign
        } else {
            Admission::Learning
        }
    }

    /// A new SDP address; returns the source the latch moved from, if it moved.
    fn set_remote(&mut self, addr: SocketAddr) -> Option<SocketAddr> {
        self.sdp = Some(addr);
        self.candidates.clear();
        match self.mode {
            Latching::Strict => {
                let from = self.current?;
                self.current = Some(addr);
                Some(from)
            }
            Latching::SameIp | Latching::Comedia => {
                // Learning again; keep the oldest latch for the next Relatched event.
                if let Some(current) = self.current.take() {
                    self.previous.get_or_insert(current);
                }
                self.heard = None;
                None
            }
        }
    }
}

/// The outgoing stream: how forwarded sources map onto our sequence and timestamps.
#[derive(Debug, Clone)]
struct Outbound {
    mapping: Option<Mapping>,
    /// [`Channel::mark_source_change`] was called.
    source_changed: bool,
    first_seq: SeqNo,
    first_ts: RtpTimestamp,
    /// The highest packet sent.
    last: Option<Sent>,
    packets: u64,
    octets: u64,
    since_report: bool,
}

/// The offsets from one source's numbering to ours.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    ssrc: Ssrc,
    seq_offset: u16,
    ts_offset: u32,
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    seq: SeqNo,
    timestamp: RtpTimestamp,
    at: Instant,
}

impl Outbound {
    /// Our sequence number, timestamp and whether to set the marker for `packet`.
    fn map(
        &mut self,
        packet: &RtpPacket,
        now: Instant,
        clock_rate: u32,
        frame: u32,
    ) -> (SeqNo, RtpTimestamp, bool) {
        let (seq, ts) = (packet.sequence(), packet.timestamp());
        let new_source =
            self.source_changed || self.mapping.is_none_or(|m| m.ssrc != packet.ssrc());
        if new_source {
            let (next_seq, next_ts) = match self.last {
                None => (self.first_seq, self.first_ts),
                Some(last) => {
                    let elapsed = clock_units(now.saturating_duration_since(last.at), clock_rate);
                    (
                        last.seq.next(),
                        last.timestamp.wrapping_add(elapsed.max(frame)),
                    )
                }
            };
            self.mapping = Some(Mapping {
                ssrc: packet.ssrc(),
                seq_offset: next_seq.0.wrapping_sub(seq.0),
                ts_offset: next_ts.0.wrapping_sub(ts.0),
            });
            self.source_changed = false;
        }
        let (seq_offset, ts_offset) = self.mapping.map_or((0, 0), |m| (m.seq_offset, m.ts_offset));
        let out_seq = SeqNo(seq.0.wrapping_add(seq_offset));
        let out_ts = ts.wrapping_add(ts_offset);
        // Only the newest packet moves the stream on: a late one must not make the
        // next source's numbers collide with packets already sent.
        if self
            .last
            .is_none_or(|last| out_seq.wrapping_diff(last.seq) > 0)
        {
            self.last = Some(Sent {
                seq: out_seq,
                timestamp: out_ts,
                at: now,
            });
        }
        (out_seq, out_ts, new_source)
    }
}

/// A small generator (xorshift64*) for what RFC 3550 wants random and a test wants
/// repeatable: the RTCP interval and the first sequence number and timestamp.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Xorshift is stuck at zero; mixing with a constant makes every seed usable
        // (only one seed maps to zero, and it is replaced).
        let state = seed ^ 0x9E37_79B9_7F4A_7C15;
        Rng(if state == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            state
        })
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        // 53 bits fit the mantissa exactly.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_in_range_and_seeded() {
        for seed in [0, 1, 0x9E37_79B9_7F4A_7C15, u64::MAX] {
            let mut a = Rng::new(seed);
            let mut b = Rng::new(seed);
            for _ in 0..1000 {
                let x = a.unit();
                assert!((0.0..1.0).contains(&x), "{x}");
                assert_eq!(x, b.unit());
            }
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn clock_units_wrap() {
        assert_eq!(clock_units(Duration::from_millis(20), 8000), 160);
        assert_eq!(clock_units(Duration::from_millis(20), 48000), 960);
        // 2^32 / 8000 s later the timestamp wrapped once.
        let wrap = Duration::from_secs((1u64 << 32) / 8000 + 1);
        assert_eq!(
            clock_units(wrap, 8000),
            (((1u64 << 32) / 8000 + 1) as u32).wrapping_mul(8000)
        );
    }
}
